# userspace/rproxy.mk: the relay fallback data path (userspace/relayproxy.c, compiled into
# libuserspace.a by userspace/build.mk) and its test driver, built standalone from
# liblightscale.a so the labs run even while the rest of userspace/ is mid-edit.
#
#   $(BUILD)/tests/ls-rproxy-driver  one node's relay proxy with relays from the command line
RPROXY_DRIVER := $(BUILD)/tests/ls-rproxy-driver
RPROXY_DRIVER_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/rproxy/*.c)) \
	$(BUILD)/obj/userspace/relayproxy.o

$(RPROXY_DRIVER): $(RPROXY_DRIVER_OBJS) $(LIBLS)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(filter %.o,$^) $(filter %.a,$^) $(ALL_LIBS) -o $@

# The unit test links the module's object alone, not libuserspace.a (this explicit
# rule replaces tests/build.mk's pattern rule for it), so it builds and runs
# whatever state the rest of userspace/ is in.
$(BUILD)/tests/unit/test_userspace_rproxy: $(BUILD)/obj/tests/unit/test_userspace_rproxy.o \
		$(BUILD)/obj/userspace/relayproxy.o $(LIBLS)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(filter %.o,$^) $(filter %.a,$^) $(ALL_LIBS) -lcmocka -o $@

# The sealed ping/pong codec of direct path discovery and the relayed path MTU
# (relayproxy.h), likewise from the module's object alone.
$(BUILD)/tests/unit/test_userspace_disco: $(BUILD)/obj/tests/unit/test_userspace_disco.o \
		$(BUILD)/obj/userspace/relayproxy.o $(LIBLS)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(filter %.o,$^) $(filter %.a,$^) $(ALL_LIBS) -lcmocka -o $@

CHECK_LABS += tests/lab/rproxy-fallback.sh tests/lab/rproxy-turn.sh
LONG_LABS  += tests/lab/rproxy-soak.sh
build-all: $(RPROXY_DRIVER) $(BUILD)/lightscale-relay $(BUILD)/lightscale-wg

# libFuzzer harness for the probe payload decoder and the address parser:
#   $(BUILD)/fuzz/rproxy_probe_fuzz -max_total_time=60
$(BUILD)/fuzz/rproxy_probe_fuzz: tests/rproxy/fuzz/rproxy_probe_fuzz.c userspace/relayproxy.c $(LIB_FUZZ_SRCS)
	$(call msg,FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -D_GNU_SOURCE $^ $(ALL_LIBS) -o $@

fuzz: $(BUILD)/fuzz/rproxy_probe_fuzz

# ... and for the sealed ping/pong decoder and the replay window:
#   $(BUILD)/fuzz/disco_fuzz -max_total_time=60
$(BUILD)/fuzz/disco_fuzz: tests/rproxy/fuzz/disco_fuzz.c userspace/relayproxy.c $(LIB_FUZZ_SRCS)
	$(call msg,FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -D_GNU_SOURCE $^ $(ALL_LIBS) -o $@

fuzz: $(BUILD)/fuzz/disco_fuzz
