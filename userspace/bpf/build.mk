# userspace/bpf/: liblsbpf (the BPF loader the agent calls) and lightscale-bpf, a small
# standalone tool over it for labs and operators (attach, detach, set, status, gc, down).
LSBPF_SRCS := userspace/bpf/lsbpf.c userspace/bpf/state.c userspace/bpf/status.c userspace/bpf/net.c userspace/bpf/cli_bpf.c
LSBPF_OBJS := $(LSBPF_SRCS:%.c=$(BUILD)/obj/%.o)
LIB_bpf    := $(BUILD)/liblsbpf.a
LSBPF_TOOL := $(BUILD)/lightscale-bpf
BINS       += $(LSBPF_TOOL)

# Every object that includes the skeleton waits for it.
$(LSBPF_OBJS) $(BUILD)/obj/userspace/bpf/tool.o: $(BPF_SKEL)

$(LIB_bpf): $(LSBPF_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(LSBPF_TOOL): $(BUILD)/obj/userspace/bpf/tool.o $(LIB_bpf) $(LIBLS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(ALL_LIBS) -o $@

# Paths are built with snprintf into PATH_MAX buffers and checked where it matters.
$(LSBPF_OBJS) $(BUILD)/obj/userspace/bpf/tool.o: ALL_CFLAGS += -Wno-format-truncation

# libFuzzer harness for the state parsers (make fuzz).
LSBPF_FUZZ := $(BUILD)/fuzz/fuzz_lsbpf_state_args
fuzz: $(LSBPF_FUZZ)
$(LSBPF_FUZZ): userspace/bpf/fuzz/fuzz_state_args.c userspace/bpf/state.c lib/prefix.c lib/log.c lib/util.c $(BPF_SKEL)
	$(call msg,FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) -g -O1 -fsanitize=fuzzer,address -D_GNU_SOURCE -I. -Iinclude -Ilib -I$(BUILD) \
		$(filter %.c,$^) $(shell pkg-config --libs libbpf jansson) -lelf -lz -o $@
