# lib/: the static library every binary links.
LIB_SRCS := $(wildcard lib/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LIBLS    := $(BUILD)/liblightscale.a

$(LIBLS): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

# libFuzzer harnesses for lib/ parsers: lib/fuzz/NAME_fuzz.c -> $(BUILD)/fuzz/NAME_fuzz,
# built with clang and the sources they exercise (sanitizers see all of it).
# `make fuzz` builds them; run one with `$(BUILD)/fuzz/acl_fuzz -max_total_time=60`.
FUZZ_CC     ?= clang
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -I. -Iinclude -Ilib $(PKG_CFLAGS)
LIB_FUZZ_SRCS := $(filter-out lib/fuzz/%,$(LIB_SRCS))

$(BUILD)/fuzz/%_fuzz: lib/fuzz/%_fuzz.c $(LIB_FUZZ_SRCS)
	$(call msg,FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -D_GNU_SOURCE $^ $(ALL_LIBS) -o $@

fuzz: $(patsubst lib/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard lib/fuzz/*_fuzz.c))
