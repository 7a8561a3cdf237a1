#!/usr/bin/env bash
# Throughput and loss through the relay proxy (make check-lab): iperf3 TCP across
# the overlay through the UDP relay, then through the stream relay (UDP to the
# relay dropped), with a flood ping checking for loss on each path. Prints the
# figures; asserts that bulk traffic gets through each path without stalls.
#
#   ns lsp-$$-a 10.99.1.2 --- 10.99.1.1 [ns lsp-$$-r: lightscale-relay --udp 3478 --stream 3478,
#                                        forward: UDP dropped] 10.99.2.1 --- 10.99.2.2 ns lsp-$$-b
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
BUILD=${BUILD:-build}
source tests/lab/relay-lib.sh
RELAY=$PWD/$BUILD/lightscale-relay
WG_BIN=$PWD/$BUILD/lightscale-wg
DRIVER=$PWD/$BUILD/tests/ls-rproxy-driver
SECS=${RPROXY_SOAK_SECS:-5}

for b in "$RELAY" "$WG_BIN" "$DRIVER"; do
	[ -x "$b" ] || { fail "$b is built"; tap_done; exit 1; }
done
ns_a=lsp-$$-a ns_b=lsp-$$-b ns_r=lsp-$$-r
if_a=lspa$$ if_b=lspb$$
tmp=$(mktemp -d /tmp/lsp-soak.XXXXXX)
pids=()
cleanup() {
	relay_stop_all
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for ns in $ns_a $ns_b $ns_r; do
		for pid in $(ip netns pids $ns 2>/dev/null); do kill "$pid" 2>/dev/null; done
	done
	sleep 0.3
	for ns in $ns_a $ns_b $ns_r; do ip netns del $ns 2>/dev/null; done
	rm -f /var/run/wireguard/$if_a.sock /var/run/wireguard/$if_b.sock
	[ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
A() { ip netns exec $ns_a "$@"; }
B() { ip netns exec $ns_b "$@"; }
R() { ip netns exec $ns_r "$@"; }
st() { jq -r "$2" "$tmp/status-$1.json" 2>/dev/null; }
wait_for() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do
		[ "$(st "$2" "$3")" = "$4" ] && return 0
		sleep 0.1
	done
	return 1
}

ip netns add $ns_a && ip netns add $ns_b && ip netns add $ns_r || { fail "create namespaces"; tap_done; exit 1; }
ip link add ra$$ netns $ns_r type veth peer name va$$ netns $ns_a
ip link add rb$$ netns $ns_r type veth peer name vb$$ netns $ns_b
ip -n $ns_r addr add 10.99.1.1/24 dev ra$$
ip -n $ns_r addr add 10.99.2.1/24 dev rb$$
ip -n $ns_a addr add 10.99.1.2/24 dev va$$
ip -n $ns_b addr add 10.99.2.2/24 dev vb$$
for x in "$ns_r ra$$" "$ns_r rb$$" "$ns_a va$$" "$ns_b vb$$"; do
	set -- $x
	ip -n "$1" link set lo up
	ip -n "$1" link set "$2" up
done
ip -n $ns_a route add default via 10.99.1.1
ip -n $ns_b route add default via 10.99.2.1
R sysctl -qw net.ipv4.ip_forward=1
R nft -f - <<NFT
table inet lsp {
	chain forward { type filter hook forward priority 0; meta l4proto udp counter drop; }
	chain input { type filter hook input priority 0; }
}
NFT
relay_init "$tmp"
relay_start r $ns_r --udp 3478 --stream 3478 || fail "relay starts"
ka=$(wg genkey) kb=$(wg genkey)
pa=$(wg pubkey <<<"$ka") pb=$(wg pubkey <<<"$kb")
echo "$ka" >"$tmp/ka"; echo "$kb" >"$tmp/kb"
check "engine a starts" env LIGHTSCALE_WG_LOG_FILE="$tmp/wg-a.log" ip netns exec $ns_a "$WG_BIN" $if_a
check "engine b starts" env LIGHTSCALE_WG_LOG_FILE="$tmp/wg-b.log" ip netns exec $ns_b "$WG_BIN" $if_b
ip netns exec $ns_a "$DRIVER" --wg-port 51820 --wg-keyfile "$tmp/ka" --peer "$pb" --stream 10.99.1.1:3478 \
	--udp 10.99.1.1:3478 --endpoints-file "$tmp/ep-a" --status-file "$tmp/status-a.json" 2>"$tmp/driver-a.log" >/dev/null &
pids+=($!)
ip netns exec $ns_b "$DRIVER" --wg-port 51820 --wg-keyfile "$tmp/kb" --peer "$pa" --stream 10.99.2.1:3478 \
	--udp 10.99.2.1:3478 --endpoints-file "$tmp/ep-b" --status-file "$tmp/status-b.json" 2>"$tmp/driver-b.log" >/dev/null &
pids+=($!)
for _ in $(seq 50); do [ -s "$tmp/ep-a" ] && [ -s "$tmp/ep-b" ] && break; sleep 0.1; done
A wg set $if_a private-key "$tmp/ka" listen-port 51820 peer "$pb" allowed-ips 10.77.0.2/32 \
	endpoint "$(awk '{ print $2 }' "$tmp/ep-a")"
B wg set $if_b private-key "$tmp/kb" listen-port 51820 peer "$pa" allowed-ips 10.77.0.1/32 \
	endpoint "$(awk '{ print $2 }' "$tmp/ep-b")"
ip -n $ns_a addr add 10.77.0.1/24 dev $if_a; ip -n $ns_a link set $if_a up
ip -n $ns_b addr add 10.77.0.2/24 dev $if_b; ip -n $ns_b link set $if_b up
B iperf3 -s -D -I "$tmp/iperf.pid" >/dev/null 2>&1

measure() { # PATH
	local res bps out loss
	check_eq "path is $1" "$1" "$(st a '.peers[0].path')"
	for dir in "a->b" "b->a"; do
		args=(); [ "$dir" = "b->a" ] && args=(-R)
		res=$(A timeout $((SECS + 15)) iperf3 -c 10.77.0.2 -t "$SECS" -J "${args[@]}" 2>&1)
		bps=$(jq -r '.end.sum_received.bits_per_second | floor' <<<"$res" 2>/dev/null)
		if [ -n "$bps" ] && [ "$bps" != null ] && [ "$bps" -gt 5000000 ]; then
			ok "iperf3 TCP $dir through the $1 relay: $((bps / 1000000)) Mbit/s"
		else fail "iperf3 TCP $dir through the $1 relay" "$(tail -5 <<<"$res")"; fi
	done
	out=$(A ping -f -c 2000 -W 1 10.77.0.2 2>&1)
	loss=$(grep -o '[0-9.]*% packet loss' <<<"$out" | cut -d% -f1)
	if [ -n "$loss" ] && awk -v l="$loss" 'BEGIN { exit !(l <= 1) }'; then
		ok "flood ping through the $1 relay: ${loss}% loss ($(grep -o 'rtt.*' <<<"$out"))"
	else fail "flood ping through the $1 relay" "$out"; fi
	check_eq "still on the $1 relay after the load" "$1" "$(st a '.peers[0].path')"
}

A ping -c 1 -W 3 10.77.0.2 >/dev/null
check "both on the UDP relay" wait_for 10 a '.peers[0].path' udp
measure udp
R nft add rule inet lsp input udp dport 3478 drop
check "both on the stream relay once UDP is dropped" wait_for 10 a '.peers[0].path' stream
measure stream
check_eq "no bad frames" 0 "$(st a .counters.bad_frames)"
echo "# stream queue full drops: a $(st a .counters.stream_send_full) b $(st b .counters.stream_send_full)"
tap_done
