# relay/: lightscale-relay (STUN server, UDP relay, stream relay).
#
# librelay.a holds everything but main.c, so unit tests (tests/unit/test_relay_*.c)
# and the libFuzzer harnesses link the real server code.
RELAY_SRCS := $(filter-out relay/main.c,$(wildcard relay/*.c))
RELAY_OBJS := $(RELAY_SRCS:%.c=$(BUILD)/obj/%.o)
LIB_relay  := $(BUILD)/librelay.a

$(LIB_relay): $(RELAY_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/lightscale-relay: $(BUILD)/obj/relay/main.o $(LIB_relay) $(LIBLS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) $(filter %.o,$^) $(filter %.a,$^) $(ALL_LIBS) -o $@

# Test clients the labs drive (not installed).
RELAY_TOOLS := $(BUILD)/relay/lsr-e2e
$(BUILD)/relay/%: $(BUILD)/obj/relay/tests/%.o $(LIB_relay) $(LIBLS)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(filter %.o,$^) $(filter %.a,$^) $(ALL_LIBS) -o $@

BINS       += $(BUILD)/lightscale-relay
CHECK_LABS += tests/lab/relay-loopback.sh tests/lab/relay-stun-netns.sh
LONG_LABS  += tests/lab/relay-soak.sh

# The labs need the test clients; make check builds them through build-all.
build-all: $(RELAY_TOOLS)

# libFuzzer harnesses (clang, ASan): make fuzz, then run e.g. build/fuzz/stun_fuzz -max_total_time=60
RELAY_FUZZ := $(BUILD)/fuzz/stun_fuzz $(BUILD)/fuzz/relay_udp_fuzz $(BUILD)/fuzz/relay_stream_fuzz
RELAY_FUZZ_LIBSRC := lib/stun.c lib/relayclient.c lib/keys.c lib/util.c lib/log.c lib/prefix.c
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -I. -Iinclude -Ilib \
	$(shell pkg-config --cflags libsodium jansson 2>/dev/null)
FUZZ_LIBS := $(shell pkg-config --libs libsodium jansson 2>/dev/null)

$(BUILD)/fuzz/stun_fuzz: lib/fuzz/stun_fuzz.c lib/stun.c lib/util.c
	$(call msg,FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $^ $(FUZZ_LIBS) -o $@

$(BUILD)/fuzz/relay_%_fuzz: relay/fuzz/%_fuzz.c $(RELAY_SRCS) $(RELAY_FUZZ_LIBSRC)
	$(call msg,FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $^ $(FUZZ_LIBS) -o $@

fuzz: $(RELAY_FUZZ)
