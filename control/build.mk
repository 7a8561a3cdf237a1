# control/: lightscale-control, the HTTP control plane (libmicrohttpd + PostgreSQL).
#
# libcontrol.a holds everything but main.c, so unit tests (tests/unit/test_control_*.c)
# link it. The SQL migrations in control/schema/NNN_*.sql are embedded into the binary
# as C strings ($(BUILD)/gen/control/schema_sql.c), so the binary is self-contained.

CONTROL_SRCS := $(filter-out control/main.c,$(wildcard control/*.c))
CONTROL_OBJS := $(CONTROL_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/control/schema_sql.o
CONTROL_SQL  := $(sort $(wildcard control/schema/[0-9][0-9][0-9]_*.sql))
LIB_control  := $(BUILD)/libcontrol.a

BINS += $(BUILD)/lightscale-control

$(BUILD)/gen/control/schema_sql.c: $(CONTROL_SQL) control/build.mk
	$(call msg,GEN,$@)
	@mkdir -p $(@D)
	$(Q){ echo '/* generated from control/schema/ by control/build.mk */'; \
	  echo '#include "control/control.h"'; \
	  echo 'const struct lsc_migration lsc_migrations[] = {'; \
	  for f in $(CONTROL_SQL); do \
	    b=$$(basename $$f); n=$$(echo $$b | sed 's/^0*\([0-9][0-9]*\)_.*/\1/'); \
	    echo "{ $$n, \"$$b\","; \
	    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $$f; \
	    echo '},'; \
	  done; \
	  echo '};'; \
	  echo 'const size_t lsc_n_migrations = sizeof(lsc_migrations) / sizeof(lsc_migrations[0]);'; \
	} >$@.tmp && mv $@.tmp $@

$(BUILD)/obj/gen/control/schema_sql.o: $(BUILD)/gen/control/schema_sql.c
	$(call msg,CC,$<)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB_control): $(CONTROL_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/lightscale-control: $(BUILD)/obj/control/main.o $(LIB_control) $(LIBLS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(ALL_LIBS) -o $@

# Test tools: a node client on lib/ctlclient, and the long-poll benchmark client.
$(BUILD)/tests/ls-nodecli: $(BUILD)/obj/tests/control/nodecli.o $(BUILD)/obj/userspace/trust.o $(LIBLS)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(ALL_LIBS) -o $@

$(BUILD)/bench/control-bench: $(BUILD)/obj/bench/control/bench.o $(LIB_control) $(LIBLS)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $^ $(ALL_LIBS) -o $@

build-all: $(BUILD)/tests/ls-nodecli
CHECK_LABS += tests/lab/control-api.sh tests/lab/control-ha.sh tests/lab/control-embedded.sh \
              tests/lab/control-trust.sh tests/lab/trust-enroll.sh
# the browser labs: WebDriver start made robust in tests/lab/onboard-lib.sh (15/15 under load)
CHECK_LABS += tests/lab/control-approve-browser.sh tests/lab/onboard-browser.sh tests/lab/onboard-devices.sh
CHECK_LABS += tests/lab/control-tls-cert.sh
LONG_LABS  += tests/lab/control-approve-browser.sh tests/lab/onboard-browser.sh tests/lab/onboard-agent.sh
LONG_LABS  += tests/lab/trust-acl.sh tests/lab/trust-audit.sh tests/lab/trust-rotate.sh
BENCHES    += bench/control/run.sh
bench: $(BUILD)/bench/control-bench

# libFuzzer harness for the request-body parsers.
$(BUILD)/fuzz/control_body_fuzz: control/fuzz/body_fuzz.c control/body.c $(LIB_FUZZ_SRCS)
	$(call msg,FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -I$(shell pg_config --includedir) -D_GNU_SOURCE $^ $(ALL_LIBS) -o $@

fuzz: $(BUILD)/fuzz/control_body_fuzz

# libFuzzer harness for the approval page's input parsers (form fields, cookies, the code).
$(BUILD)/fuzz/control_approve_fuzz: control/fuzz/approve_fuzz.c control/body.c $(LIB_FUZZ_SRCS)
	$(call msg,FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -I$(shell pg_config --includedir) -D_GNU_SOURCE $^ $(ALL_LIBS) -o $@

fuzz: $(BUILD)/fuzz/control_approve_fuzz
