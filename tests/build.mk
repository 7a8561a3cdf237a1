# tests/: unit tests (cmocka), one program per tests/unit/test_*.c.
# Components add their static libraries to COMPONENT_LIBS so tests can reach their code.
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)
TEST_BINS += $(UNIT_BINS)

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(COMPONENT_LIBS) $(LIBLS)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $< $(COMPONENT_LIBS) $(LIBLS) $(ALL_LIBS) -lcmocka -o $@

-include tests/lab/build.mk
