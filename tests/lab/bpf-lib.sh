# Helpers for the BPF labs (tests/lab/bpf-*.sh). Source after tests/lib/tap.sh.
# Every namespace is named lsb-$$-NAME and removed on exit; every pin directory is
# /sys/fs/bpf/lsb-$$-NAME and removed on exit; processes we start are killed by PID.
BUILD=${BUILD:-${LIGHTSCALE_BUILD:-build}}
LSB=$BUILD/lightscale-bpf
LSB_NS=()
LSB_PIDS=()
LSB_PINS=()

lsb_cleanup() {
	local p
	for p in "${LSB_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.2
	for p in "${LSB_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	# pin dirs are made in $(...) subshells, so find them by name rather than by array
	for p in /sys/fs/bpf/lsb-$$-*; do
		[ -d "$p" ] || continue
		"$LSB" --pin-dir "$p" down >/dev/null 2>&1
		rm -rf "$p"
		rm -f "/run/lightscale/bpf-locks/$(echo "$p" | tr / _).lock"
	done
	for p in "${LSB_NS[@]}"; do ip netns del "$p" 2>/dev/null; done
}
trap lsb_cleanup EXIT

lsb_ns() { # NAME: creates lsb-$$-NAME with lo up
	local n=lsb-$$-$1
	ip netns add "$n" && LSB_NS+=("$n")
	ip -n "$n" link set lo up
}
# Run in a namespace with bpffs visible (ip netns exec would hide it).
in_ns() { local n=lsb-$$-$1; shift; nsenter --net=/run/netns/"$n" "$@"; }
lsb_pin() { echo "/sys/fs/bpf/lsb-$$-$1"; }
# Waits (up to 60 s: loading and verifying the object is slow on a busy machine) for
# "ready" in a log file.
lsb_wait_ready() { for i in $(seq 600); do grep -q ready "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# veth pair A:IFA <-> B:IFB
lsb_link() {
	ip link add "$2" netns lsb-$$-"$1" type veth peer name "$4" netns lsb-$$-"$3"
	ip -n lsb-$$-"$1" link set "$2" up
	ip -n lsb-$$-"$3" link set "$4" up
}
# counter PINDIR PROGRAM REASON -> packets
lsb_counter() {
	"$LSB" --pin-dir "$1" status --json | python3 -c '
import json,sys
d=json.load(sys.stdin)
print(sum(c["packets"] for c in d["counters"] if c["program"]==sys.argv[1] and c["reason"]==sys.argv[2]))' "$2" "$3"
}
