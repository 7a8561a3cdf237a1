# tests/vm/: the VM lab (qemu guests with Debian kernels, kernel WireGuard, the kernel matrix)
# and the NixOS test syntax check.
#
#   make check-vm KERNELS="6.1 6.12"     (default both; the host kernel's matrix runs too)
#
# Downloaded kernels, initramfs images and run folders live under $(BUILD)/vm/.
VM_TOOLS := $(BUILD)/vm/probe.bpf.o $(BUILD)/vm/lsv-tcx-attach $(BUILD)/vm/lsv-offload

$(BUILD)/vm/probe.bpf.o: tests/vm/probe.bpf.c
	$(call msg,BPF,$<)
	@mkdir -p $(@D)
	$(Q)$(CLANG) -target bpf -O2 -g -Wall -Werror -I/usr/include/$(shell uname -m)-linux-gnu \
		-c $< -o $@

$(BUILD)/vm/lsv-tcx-attach: $(BUILD)/obj/tests/vm/tcx-attach.o
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(shell pkg-config --libs libbpf) -o $@

$(BUILD)/vm/lsv-offload: $(BUILD)/obj/tests/vm/offload.o
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ -o $@

check-vm: $(VM_TOOLS)
build-all: $(VM_TOOLS)

# Fast: nix-instantiate --parse of every .nix file in nixos-vm/.
CHECK_LABS += tests/vm/nix-parse.sh
# The VM lab itself (CI runs `make check'): Debian 6.1 and 6.12 unless KERNELS says
# otherwise, and the host kernel's matrix. Kernels come from Debian's registry through
# apt-get download on the first run and stay cached in $(BUILD)/vm/. It must stay well
# inside tests/run.sh's TEST_TIMEOUT (900 s); see tests/vm/README.md for its timings.
CHECK_LABS += tests/vm/check-vm.sh
