# tests/: unit tests (cmocka), one program per tests/unit/test_*.c.
#
# tests/unit/test_COMP_*.c links $(LIB_COMP) when a component defines it (for example
# LIB_wgu := $(BUILD)/libwgu.a in userspace/wgu/build.mk makes test_wgu_noise.c link
# libwgu.a), then liblightscale.a. A test thus builds even while another component
# is broken.
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)
TEST_BINS += $(UNIT_BINS)

test_comp = $(firstword $(subst _, ,$(1)))
test_libs = $(LIB_$(call test_comp,$(1)))

.SECONDEXPANSION:
$(BUILD)/tests/unit/test_%: $(BUILD)/obj/tests/unit/test_%.o $$(call test_libs,$$*) $(LIBLS)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(filter %.o,$^) $(filter %.a,$^) $(ALL_LIBS) -lcmocka -o $@

-include tests/lab/build.mk
