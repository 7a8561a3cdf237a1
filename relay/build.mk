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
RELAY_TOOLS := $(BUILD)/relay/lsr-e2e $(BUILD)/relay/lsr-turn
$(BUILD)/relay/%: $(BUILD)/obj/relay/tests/%.o $(LIB_relay) $(LIBLS)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(filter %.o,$^) $(filter %.a,$^) $(ALL_LIBS) -o $@

BINS       += $(BUILD)/lightscale-relay
CHECK_LABS += tests/lab/relay-loopback.sh tests/lab/relay-stun-netns.sh tests/lab/relay-turn.sh
LONG_LABS  += tests/lab/relay-soak.sh tests/lab/relay-scale.sh

# The labs need the test clients; make check builds them through build-all.
build-all: $(RELAY_TOOLS)

# libFuzzer harnesses: lib/fuzz/{stun,turn}_fuzz.c are built by lib/build.mk's rule; the
# relay's two (UDP datagrams, stream frames) link the relay sources and lib/.
# Run one with `$(BUILD)/fuzz/relay_stream_fuzz -max_total_time=60`; seeds for STUN and
# TURN are in relay/fuzz/corpus/ (name a scratch directory first, which gets new inputs:
# `$(BUILD)/fuzz/turn_fuzz /tmp/turn-corpus relay/fuzz/corpus/turn`).
$(BUILD)/fuzz/relay_%_fuzz: relay/fuzz/%_fuzz.c $(RELAY_SRCS) $(LIB_FUZZ_SRCS)
	$(call msg,FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -D_GNU_SOURCE $^ $(ALL_LIBS) -o $@

fuzz: $(BUILD)/fuzz/stun_fuzz $(BUILD)/fuzz/turn_fuzz $(BUILD)/fuzz/relay_udp_fuzz $(BUILD)/fuzz/relay_stream_fuzz

# Benchmarks (make bench): the relays against a bare forwarder, side by side.
BENCHES += bench/relay/run.sh
bench: $(BUILD)/relay/lsr-bench $(BUILD)/lightscale-relay
