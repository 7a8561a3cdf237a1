# userspace/: the `lightscale` CLI and agent.
#
# $(BUILD)/libuserspace.a holds everything but main() (unit tests link it); the binary
# links the userspace WireGuard engine (LIB_wgu) and the BPF loader (LIB_bpf) when those
# components define them.
# US_EXCLUDE leaves files out (e.g. another component's work in progress).
US_EXCLUDE ?=
US_SRCS := $(filter-out userspace/main.c $(US_EXCLUDE),$(wildcard userspace/*.c))
US_OBJS := $(US_SRCS:%.c=$(BUILD)/obj/%.o)
US_LIB := $(BUILD)/libuserspace.a
US_EXTRA_LIBS := $(LIB_wgu) $(LIB_bpf)

# Compile-time switches for the optional engines.
US_DEFS :=
# The built-in engine (wgu) is the default userspace engine when it is there; US_WGU=0
# builds without it (wireguard-go, or $$LIGHTSCALE_WG_USERSPACE, then serves the socket).
US_WGU ?= $(if $(and $(LIB_wgu),$(wildcard userspace/wgu/wgu.h)),1,0)
ifeq ($(US_WGU),1)
US_DEFS += -DLS_HAVE_WGU
else
US_EXTRA_LIBS := $(filter-out $(LIB_wgu),$(US_EXTRA_LIBS))
endif
US_BPF ?= $(if $(and $(LIB_bpf),$(wildcard userspace/bpf/lsbpf.h)),1,0)
ifeq ($(US_BPF),1)
US_DEFS += -DLS_HAVE_BPF
else
US_EXTRA_LIBS := $(filter-out $(LIB_bpf),$(US_EXTRA_LIBS))
endif
$(US_OBJS) $(BUILD)/obj/userspace/main.o: ALL_CFLAGS += $(US_DEFS)

# Objects rebuild when the switches change (the stamp is rewritten only then).
US_DEFS_STAMP := $(BUILD)/obj/userspace/defs.stamp
$(shell mkdir -p $(BUILD)/obj/userspace; [ "$$(cat $(US_DEFS_STAMP) 2>/dev/null)" = "$(US_DEFS)" ] || echo "$(US_DEFS)" >$(US_DEFS_STAMP))
$(US_OBJS): $(US_DEFS_STAMP)

# What a unit test of userspace/ links: the library and the engine/loader it calls into.
LIB_userspace := $(US_LIB) $(US_EXTRA_LIBS)

$(US_LIB): $(US_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/lightscale: $(BUILD)/obj/userspace/main.o $(LIB_userspace) $(LIBLS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) $(filter %.o,$^) $(filter %.a,$^) $(ALL_LIBS) -o $@

BINS += $(BUILD)/lightscale

# UAPI parser fuzz harness.
$(BUILD)/fuzz/uapi_fuzz: userspace/fuzz/uapi_fuzz.c userspace/wg_uapi.c $(LIB_FUZZ_SRCS)
	$(call msg,FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -D_GNU_SOURCE $^ $(ALL_LIBS) -o $@

# resolv.conf reader and DNS record builder of the split-DNS resolver.
$(BUILD)/fuzz/resolv_fuzz: userspace/fuzz/resolv_fuzz.c userspace/dnsd.c $(LIB_FUZZ_SRCS)
	$(call msg,FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -D_GNU_SOURCE $^ $(ALL_LIBS) -lpthread -o $@

fuzz: $(BUILD)/fuzz/uapi_fuzz $(BUILD)/fuzz/resolv_fuzz

# bench/agent: apply and delta benchmark (run by `make bench`).
$(BUILD)/bench/agent_apply: $(BUILD)/obj/bench/agent/bench_apply.o $(LIB_userspace) $(LIBLS)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(filter %.o,$^) $(filter %.a,$^) $(ALL_LIBS) -o $@

BENCHES += bench/agent/bench.sh
