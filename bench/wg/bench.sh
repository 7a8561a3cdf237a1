#!/usr/bin/env bash
# Benchmark: our userspace WireGuard engine vs Debian's wireguard-go vs plain
# veth, over the same two-namespace topology, runs alternated (A B C A B C ...).
#
#   ns lsw-$$-a                                   ns lsw-$$-b
#   lswba$$ (ours)        10.77.0.1  <-- UDP -->  10.77.0.2  lswbb$$ (ours)
#   lswga$$ (wireguard-go) 10.78.0.1 <-- UDP -->  10.78.0.2  lswgb$$ (wireguard-go)
#   va$$ 192.168.241.1/24   <------- veth ------->   vb$$ 192.168.241.2/24   (plain)
#
# iperf3 TCP with 1 and 4 streams, and UDP (unlimited rate, 1372-byte
# datagrams). ROUNDS (default 5) rounds of DURATION (default 5) seconds each.
# Prints the median and spread (min..max) per case, the ratios, and the CPU
# seconds per GB transferred used by the two engine processes (both ends).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
WG_BIN=$PWD/$BUILD/lightscale-wg
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
ns_a=lsw-$$-a ns_b=lsw-$$-b
tmp=$(mktemp -d /tmp/lsw-bench.XXXXXX)

cleanup() {
	for ns in $ns_a $ns_b; do
		for pid in $(ip netns pids $ns 2>/dev/null); do kill "$pid" 2>/dev/null; done
	done
	sleep 0.3
	ip netns del $ns_a 2>/dev/null
	ip netns del $ns_b 2>/dev/null
	rm -f /var/run/wireguard/lsw[bg][ab]$$.sock
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "uptime: $(uptime)"
echo "kernel $(uname -r), $(nproc) cores; wireguard-go $(wireguard-go --version 2>/dev/null | head -1)"
ip netns add $ns_a; ip netns add $ns_b
ip link add va$$ netns $ns_a type veth peer name vb$$ netns $ns_b
ip -n $ns_a addr add 192.168.241.1/24 dev va$$
ip -n $ns_b addr add 192.168.241.2/24 dev vb$$
for x in "$ns_a va$$" "$ns_b vb$$"; do set -- $x; ip -n "$1" link set lo up; ip -n "$1" link set "$2" up; done

ka=$(wg genkey) kb=$(wg genkey)
pa=$(wg pubkey <<<"$ka") pb=$(wg pubkey <<<"$kb")
echo "$ka" >"$tmp/ka"; echo "$kb" >"$tmp/kb"
setup_pair() { # IMPL IF_A IF_B NET PORT_A PORT_B
	local impl=$1 ia=$2 ib=$3 net=$4
	if [ "$impl" = ours ]; then
		ip netns exec $ns_a "$WG_BIN" "$ia" && ip netns exec $ns_b "$WG_BIN" "$ib"
	else
		LOG_LEVEL=error ip netns exec $ns_a wireguard-go "$ia" >/dev/null 2>&1 &&
			LOG_LEVEL=error ip netns exec $ns_b wireguard-go "$ib" >/dev/null 2>&1
	fi || { echo "cannot start $impl" >&2; exit 1; }
	ip netns exec $ns_a wg set "$ia" private-key "$tmp/ka" listen-port "$5" peer "$pb" allowed-ips "$net.2/32" endpoint "192.168.241.2:$6"
	ip netns exec $ns_b wg set "$ib" private-key "$tmp/kb" listen-port "$6" peer "$pa" allowed-ips "$net.1/32" endpoint "192.168.241.1:$5"
	ip -n $ns_a addr add "$net.1/24" dev "$ia"; ip -n $ns_a link set "$ia" up
	ip -n $ns_b addr add "$net.2/24" dev "$ib"; ip -n $ns_b link set "$ib" up
	ip netns exec $ns_a ping -c 1 -W 3 "$net.2" >/dev/null || { echo "$impl tunnel does not work" >&2; exit 1; }
}
setup_pair ours lswba$$ lswbb$$ 10.77.0 51820 51821
setup_pair wggo lswga$$ lswgb$$ 10.78.0 51830 51831

# PIDs of the engine processes of each implementation (both namespaces).
pids_of() {
	for ns in $ns_a $ns_b; do
		for p in $(ip netns pids $ns); do
			exe=$(readlink /proc/$p/exe 2>/dev/null)
			case "$1:$exe" in
			ours:"$WG_BIN" | wggo:*wireguard-go) echo "$p" ;;
			esac
		done
	done
}
cpu_ticks() { # sum of utime+stime (all threads) of the given pids
	local t=0
	for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' /proc/$p/stat))); done
	echo $t
}
pids_ours=$(pids_of ours) pids_wggo=$(pids_of wggo)
hz=$(getconf CLK_TCK)

ip netns exec $ns_b iperf3 -s -D -I "$tmp/iperf.pid" >/dev/null 2>&1
sleep 0.5
target() { case $1 in ours) echo 10.77.0.2 ;; wggo) echo 10.78.0.2 ;; veth) echo 192.168.241.2 ;; esac; }

echo "round,impl,test,bits_per_second,bytes,cpu_seconds" >"$tmp/results.csv"
for r in $(seq "$ROUNDS"); do
	for t in tcp1 tcp4 udp; do
		for impl in ours wggo veth; do
			case $t in
			tcp1) args=() ;;
			tcp4) args=(-P 4) ;;
			udp) args=(-u -b 0 -l 1372) ;;
			esac
			pids=""; [ "$impl" = ours ] && pids=$pids_ours; [ "$impl" = wggo ] && pids=$pids_wggo
			c0=$(cpu_ticks $pids)
			json=$(ip netns exec $ns_a timeout $((DURATION + 15)) iperf3 -c "$(target $impl)" -t "$DURATION" -J "${args[@]}" 2>/dev/null)
			c1=$(cpu_ticks $pids)
			read -r bps bytes < <(python3 -c '
import json, sys
try:
    e = json.load(sys.stdin)["end"]
    s = e.get("sum_received") or e.get("sum")
    print(int(s["bits_per_second"]), int(s["bytes"]))
except Exception:
    print(0, 0)' <<<"$json")
			echo "$r,$impl,$t,$bps,$bytes,$(python3 -c "print(($c1 - $c0) / $hz)")" >>"$tmp/results.csv"
			printf '  round %d %-4s %-4s %8.0f Mbit/s\n' "$r" "$impl" "$t" "$(python3 -c "print($bps / 1e6)")"
		done
	done
done

python3 - "$tmp/results.csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def get(impl, test, key):
    return [float(r[key]) for r in rows if r["impl"] == impl and r["test"] == test]
print()
print("%-5s %-5s %10s %18s %12s" % ("test", "impl", "median", "spread (min..max)", "CPU s/GB"))
med = {}
for test in ("tcp1", "tcp4", "udp"):
    for impl in ("ours", "wggo", "veth"):
        bps = get(impl, test, "bits_per_second")
        if not bps:
            continue
        m = statistics.median(bps)
        med[(impl, test)] = m
        cpu = sum(get(impl, test, "cpu_seconds")); gb = sum(get(impl, test, "bytes")) / 1e9
        cpg = "%.2f" % (cpu / gb) if impl != "veth" and gb > 0 else "-"
        med[(impl, test, "cpg")] = cpu / gb if gb > 0 else 0
        print("%-5s %-5s %7.0f Mb/s   %6.0f..%-6.0f Mb/s %12s" % (test, impl, m / 1e6, min(bps) / 1e6, max(bps) / 1e6, cpg))
print()
for test in ("tcp1", "tcp4", "udp"):
    o, w, v = med.get(("ours", test), 0), med.get(("wggo", test), 0), med.get(("veth", test), 0)
    oc, wc = med.get(("ours", test, "cpg"), 0), med.get(("wggo", test, "cpg"), 0)
    print("%-5s ours/wireguard-go throughput %5.2fx   ours/veth %5.2f   CPU per GB ours/wireguard-go %5.2f" %
          (test, o / w if w else 0, o / v if v else 0, oc / wc if wc else 0))
PY
echo "uptime: $(uptime)"
