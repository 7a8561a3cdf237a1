# bpf/: the data plane. One BPF object (bpf/lightscale.bpf.c and the stage headers),
# compiled with clang -target bpf, and its libbpf skeleton generated with bpftool.
# No vmlinux.h: the programs only touch packets and uapi structs, so the object loads
# unchanged on any kernel with the helpers it uses (6.1 and later).

BPF_ARCH    := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
BPF_CFLAGS  := -g -O2 -target bpf -D__TARGET_ARCH_$(BPF_ARCH) -Wall -Werror \
               -Wno-unused-function -Iinclude -Ibpf \
               -I/usr/include/$(shell $(CC) -dumpmachine)
BPF_SRCS    := bpf/lightscale.bpf.c
BPF_HDRS    := $(wildcard bpf/*.bpf.h) include/lightscale/bpf_maps.h
BPF_OBJ     := $(BUILD)/bpf/lightscale.bpf.o
BPF_SKEL    := $(BUILD)/bpf/lightscale.skel.h

$(BPF_OBJ): $(BPF_SRCS) $(BPF_HDRS)
	$(call msg,BPF,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BPF_SKEL): $(BPF_OBJ)
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name lightscale > $@.tmp && mv $@.tmp $@

# Table tests: tests/bpf/test_bpf_*.c, each linked with the shared harness.
BPF_TEST_SRCS := $(wildcard tests/bpf/test_bpf_*.c)
BPF_TESTS     := $(BPF_TEST_SRCS:tests/bpf/%.c=$(BUILD)/tests/bpf/%)
BPF_TEST_LIB  := $(BUILD)/obj/tests/bpf/harness.o
TEST_BINS     += $(BPF_TESTS)

$(BUILD)/obj/tests/bpf/%.o: $(BPF_SKEL)

$(BUILD)/tests/bpf/test_bpf_%: $(BUILD)/obj/tests/bpf/test_bpf_%.o $(BPF_TEST_LIB) $(BUILD)/liblsbpf.a $(LIBLS)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(filter %.o,$^) $(filter %.a,$^) $(ALL_LIBS) -o $@

bpf: $(BPF_SKEL)
.PHONY: bpf

# Labs (netns, root): fast ones in make check, long ones in make check-lab.
CHECK_LABS += tests/lab/bpf-attach.sh tests/lab/bpf-stun.sh
# back in make check: its fast-path count failed when TCP's GSO packets were left to the
# stack (the TC fast path passed their IP length to the FIB lookup's MTU check); fixed in
# bpf/fwd.bpf.h, 15 runs passed (5 with two extra busy loops, load average 8-18)
CHECK_LABS += tests/lab/bpf-isolate-filter.sh
LONG_LABS  += tests/lab/bpf-overlap.sh
-include bench/forward/build.mk
