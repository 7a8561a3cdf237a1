# userspace/: the `lightscale` CLI and agent.
#
# $(BUILD)/libuserspace.a holds everything but main() (unit tests link it); the binary
# links the userspace WireGuard engine (LIB_wgu) and the BPF loader (LIB_bpf) when those
# components define them.
US_SRCS := $(filter-out userspace/main.c,$(wildcard userspace/*.c))
US_OBJS := $(US_SRCS:%.c=$(BUILD)/obj/%.o)
LIB_userspace := $(BUILD)/libuserspace.a
US_EXTRA_LIBS := $(LIB_wgu) $(LIB_bpf)

# Compile-time switches for the optional engines.
US_DEFS :=
# (the wgu engine becomes the default userspace engine once it is wired: US_WGU=1)
US_WGU ?= 0
ifeq ($(US_WGU),1)
US_DEFS += -DLS_HAVE_WGU
else
US_EXTRA_LIBS := $(filter-out $(LIB_wgu),$(US_EXTRA_LIBS))
endif
US_BPF ?= 0
ifeq ($(US_BPF),1)
US_DEFS += -DLS_HAVE_BPF
else
US_EXTRA_LIBS := $(filter-out $(LIB_bpf),$(US_EXTRA_LIBS))
endif
$(US_OBJS) $(BUILD)/obj/userspace/main.o: ALL_CFLAGS += $(US_DEFS)

$(LIB_userspace): $(US_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/lightscale: $(BUILD)/obj/userspace/main.o $(LIB_userspace) $(US_EXTRA_LIBS) $(LIBLS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) $(filter %.o,$^) $(filter %.a,$^) $(ALL_LIBS) -o $@

BINS += $(BUILD)/lightscale

# UAPI parser fuzz harness.
$(BUILD)/fuzz/uapi_fuzz: userspace/fuzz/uapi_fuzz.c userspace/wg_uapi.c $(LIB_FUZZ_SRCS)
	$(call msg,FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -D_GNU_SOURCE $^ $(ALL_LIBS) -o $@

fuzz: $(BUILD)/fuzz/uapi_fuzz
