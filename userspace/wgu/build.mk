# userspace/wgu/: the userspace WireGuard engine (issue 4).
#
# libwgu.a holds the whole engine; the `lightscale` CLI links it and calls
# wgu_cmd_main() for `lightscale wg-userspace IF`. lightscale-wg is the same
# engine as a standalone binary (for tests, and for wg-quick users through
# WG_QUICK_USERSPACE_IMPLEMENTATION).
WGU_SRCS := $(filter-out userspace/wgu/lightscale-wg.c,$(wildcard userspace/wgu/*.c))
WGU_OBJS := $(WGU_SRCS:%.c=$(BUILD)/obj/%.o)
LIB_wgu  := $(BUILD)/libwgu.a

$(LIB_wgu): $(WGU_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

# Linked statically (it needs only libsodium and libc), so the same file runs
# unchanged in the qemu guests of the VM labs, whatever their libraries.
$(BUILD)/lightscale-wg: $(BUILD)/obj/userspace/wgu/lightscale-wg.o $(LIB_wgu) $(LIBLS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -static $^ -lsodium -lpthread -o $@

BINS += $(BUILD)/lightscale-wg

# Labs in namespaces (wg, wireguard-go, wg-quick, iperf3, tcpdump); wg-lab.sh
# is their common body. wg-interop.sh takes about a minute; the pair of our
# own engines and the 200 s run with production timers are in check-lab.
CHECK_LABS += $(wildcard tests/lab/wg-interop.sh tests/lab/wg-quick.sh)
# The engine in qemu guests with Debian 6.1 (no USO: the fallback) and 6.12 (USO):
# about two minutes, kernels fetched once into $(BUILD)/vm/ (tests/vm/lib.sh).
CHECK_LABS += $(wildcard tests/vm/wgu-offload.sh)
LONG_LABS  += $(wildcard tests/lab/wg-engine-pair.sh tests/lab/wg-long.sh)
BENCHES    += $(wildcard bench/wg/bench.sh)

# libFuzzer harnesses: the receive path and the UAPI parser.
WGU_FUZZ_SRCS := $(filter-out userspace/wgu/lightscale-wg.c,$(WGU_SRCS)) $(filter-out lib/fuzz/%,$(LIB_SRCS))

$(BUILD)/fuzz/wgu_%_fuzz: userspace/wgu/fuzz/%_fuzz.c $(WGU_FUZZ_SRCS)
	$(call msg,FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -D_GNU_SOURCE -DLSW_FUZZ $^ $(ALL_LIBS) -o $@

fuzz: $(patsubst userspace/wgu/fuzz/%_fuzz.c,$(BUILD)/fuzz/wgu_%_fuzz,$(wildcard userspace/wgu/fuzz/*_fuzz.c))
