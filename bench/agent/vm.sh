#!/usr/bin/env bash
# bench/agent on kernel WireGuard: the host kernel has none, so bench/agent/bench.sh runs
# with ENGINE=kernel inside a qemu guest per Debian kernel (the VM lab, tests/vm/lib.sh),
# with its yardsticks (`wg set`, `wg setconf`, full resync, replace) in the same rounds.
#
#   bench/agent/vm.sh                       KERNELS="6.12 6.1", SIZES="1000 10000", ROUNDS=5
#   bench/agent/bench.sh --vm               the same
#
# The guests run under TCG (software emulation, one vCPU): every figure is slower than on
# hardware, by roughly the factor printed first (a fixed CPU loop timed on the host and in
# the guest). Compare the ratios against the yardsticks, not the milliseconds; the
# milliseconds are an upper bound of what the same kernel would do on real hardware.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
VM_NS=${VM_NS:-lsvb-$$}
VM_MEM=${VM_MEM:-1024}
VM_LIFETIME=${VM_LIFETIME:-3600}
source tests/vm/lib.sh
KERNELS=${KERNELS:-6.12 6.1}
ROUNDS=${ROUNDS:-5}
SIZES=${SIZES-1000 10000}

for f in "$VM_BUILD/bench/agent_apply" "$VM_BUILD/lightscale"; do
	[ -x "$f" ] || { echo "bench/agent vm: build $f first"; exit 1; }
done
cleanup() {
	vm_cleanup
	[ "${keep:-${KEEP:-0}}" = 1 ] || rm -rf "$VM_RUN"
}
trap cleanup EXIT
trap "exit 130" INT TERM

# A fixed CPU loop (no system calls), in seconds.
CALIB='s=$(date +%s%N); awk "BEGIN { for (i = 0; i < 4000000; i++) s += i % 7 }"; echo $((($(date +%s%N) - s) / 1000000))'

echo "== bench/agent on kernel WireGuard, in qemu guests (TCG: software emulation)"
echo "host: $(uname -r), uptime: $(uptime)"
vm_net_up || exit 1
rc=0
for k in $KERNELS; do
	g=b${k//./}
	echo
	if ! out=$(vm_kernel "$k" 2>&1); then
		echo "kernel $k: cannot fetch it: $out"
		rc=1
		continue
	fi
	vm_start "$g" "$k" 10.77.0.11
	if ! vm_wait_ready "$g"; then
		vm_log "$g" | tail -n 20
		rc=1 keep=1
		continue
	fi
	host_ms=$(bash -c "$CALIB")
	guest_ms=$(vm_exec "$g" "$CALIB")
	echo "--- Debian kernel $(cat "$VM_RUN/$g/ready") in a TCG guest (1 vCPU, $VM_MEM MiB)"
	echo "TCG slowdown on a fixed CPU loop: host $host_ms ms, guest $guest_ms ms:" \
		"$(awk -v h="$host_ms" -v g="$guest_ms" 'BEGIN { printf "%.1fx", (h > 0 ? g / h : 0) }')"
	t=$(date +%s)
	vm_exec -t $((VM_LIFETIME - 120)) "$g" "modprobe wireguard &&
		ENGINE=kernel BENCH_VM=0 LSA_BENCH_SMAPS=${LSA_BENCH_SMAPS:-} LSA_AGENT_ENV='${LSA_AGENT_ENV:-}' LSA_AGENT_WRAP='${LSA_AGENT_WRAP:-}' LSA_AGENT_WAIT=${LSA_AGENT_WAIT:-600} BUILD=$VM_BUILD ROUNDS=$ROUNDS SIZES='$SIZES' bench/agent/bench.sh" || {
		rc=1 keep=1
		vm_log "$g" | tail -n 20
	}
	echo "(guest run took $(($(date +%s) - t)) s)"
	vm_stop "$g"
done
exit $rc
