# bpf/perapp.mk: the per-app routing program (bpf/perapp.bpf.c), a cgroup/sock_create
# program that marks the sockets of one cgroup, and its skeleton for userspace/perapp.c.
# Included after bpf/build.mk (uses its BPF_CFLAGS).

PERAPP_BPF_OBJ  := $(BUILD)/bpf/perapp.bpf.o
PERAPP_BPF_SKEL := $(BUILD)/bpf/perapp.skel.h

$(PERAPP_BPF_OBJ): bpf/perapp.bpf.c
	$(call msg,BPF,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(PERAPP_BPF_SKEL): $(PERAPP_BPF_OBJ)
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name ls_perapp > $@.tmp && mv $@.tmp $@

# userspace/perapp.c includes the skeleton
$(BUILD)/obj/userspace/perapp.o: $(PERAPP_BPF_SKEL)

bpf: $(PERAPP_BPF_SKEL)

# libFuzzer harness for the app-routes.json parser (make fuzz).
$(BUILD)/fuzz/perapp_fuzz: userspace/fuzz/perapp_fuzz.c userspace/perapp_rules.c
	$(call msg,FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) -g -O1 -fsanitize=fuzzer,address -D_GNU_SOURCE -I. -Iinclude -Ilib -Iuserspace \
		$^ $(shell pkg-config --libs jansson) -o $@

fuzz: $(BUILD)/fuzz/perapp_fuzz
