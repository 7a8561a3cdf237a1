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

FWDBENCH := $(BUILD)/bench/forward/forward
BINS     += $(FWDBENCH)
GEN_SKEL := $(BUILD)/bench/forward/gen.skel.h

$(BUILD)/bench/forward/gen.bpf.o: bench/forward/gen.bpf.c
	$(call msg,BPF,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(GEN_SKEL): $(BUILD)/bench/forward/gen.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name gen > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/bench/forward/forward.o: $(GEN_SKEL) $(BPF_SKEL)

$(FWDBENCH): $(BUILD)/obj/bench/forward/forward.o $(BUILD)/liblsbpf.a $(LIBLS)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(filter %.o,$^) $(filter %.a,$^) $(ALL_LIBS) -o $@
