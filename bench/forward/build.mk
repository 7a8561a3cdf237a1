# bench/forward: program cost (BPF_PROG_TEST_RUN) and forwarding through a router
# namespace against nftables (run by make bench).
PROGBENCH := $(BUILD)/bench/forward/progbench
BINS      += $(PROGBENCH)
BENCHES   += bench/forward/run.sh

$(PROGBENCH): $(BUILD)/obj/bench/forward/progbench.o $(BUILD)/obj/tests/bpf/harness.o $(BUILD)/liblsbpf.a $(LIBLS)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(filter %.o,$^) $(filter %.a,$^) $(ALL_LIBS) -o $@
$(BUILD)/obj/bench/forward/progbench.o: $(BPF_SKEL)
