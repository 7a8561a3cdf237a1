#!/usr/bin/env bash
# The relay proxy's TURN path against coturn: two nodes whose direct UDP is
# dropped, with a stream relay (for signalling: each side's TURN relayed address
# travels in a probe) and a TURN server; no UDP relay.
#
#   ns lsp-$$-a  10.99.1.2 --- 10.99.1.1  ns lsp-$$-r  10.99.2.1 --- 10.99.2.2  ns lsp-$$-b
#                                         lightscale-relay --stream 3478
#                                         turnserver :3480 (relay-ip 10.99.1.1)
#                                         forward: UDP dropped
# Checks: both allocate, learn each other's relayed address, switch to TURN;
# ping across it; the module's own probes do not reach the agent's callback;
# coturn killed mid-ping: traffic continues through the stream relay.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
BUILD=${BUILD:-build}
source tests/lab/relay-lib.sh
RELAY=$PWD/$BUILD/lightscale-relay
WG_BIN=$PWD/$BUILD/lightscale-wg
DRIVER=$PWD/$BUILD/tests/ls-rproxy-driver

for b in "$RELAY" "$WG_BIN" "$DRIVER"; do
	[ -x "$b" ] || { fail "$b is built"; tap_done; exit 1; }
done
if ! command -v turnserver >/dev/null; then
	fail "coturn's turnserver is installed (apt-get install coturn)"
	tap_done
	exit 1
fi
ns_a=lsp-$$-a ns_b=lsp-$$-b ns_r=lsp-$$-r
if_a=lspa$$ if_b=lspb$$
tmp=$(mktemp -d /tmp/lsp-turn.XXXXXX)
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
}
NFT

relay_init "$tmp"
relay_start s $ns_r --stream 3478 || fail "stream relay starts"
turn_start $ns_r 10.99.1.1 3480 lsp-node correct-horse 10.99.2.1 || fail "coturn starts"

ka=$(wg genkey) kb=$(wg genkey)
pa=$(wg pubkey <<<"$ka") pb=$(wg pubkey <<<"$kb")
echo "$ka" >"$tmp/ka"; echo "$kb" >"$tmp/kb"
check "engine a starts" env LIGHTSCALE_WG_LOG_FILE="$tmp/wg-a.log" ip netns exec $ns_a "$WG_BIN" $if_a
check "engine b starts" env LIGHTSCALE_WG_LOG_FILE="$tmp/wg-b.log" ip netns exec $ns_b "$WG_BIN" $if_b

ip netns exec $ns_a "$DRIVER" --wg-port 51820 --wg-keyfile "$tmp/ka" --peer "$pb" \
	--stream 10.99.1.1:3478 --turn turn:10.99.1.1:3480,lsp-node,correct-horse \
	--endpoints-file "$tmp/ep-a" --status-file "$tmp/status-a.json" \
	>"$tmp/driver-a.out" 2>"$tmp/driver-a.log" &
pids+=($!)
ip netns exec $ns_b "$DRIVER" --wg-port 51820 --wg-keyfile "$tmp/kb" --peer "$pa" \
	--stream 10.99.2.1:3478 --turn turn:10.99.2.1:3480?transport=udp,lsp-node,correct-horse \
	--endpoints-file "$tmp/ep-b" --status-file "$tmp/status-b.json" \
	>"$tmp/driver-b.out" 2>"$tmp/driver-b.log" &
pids+=($!)
for _ in $(seq 50); do [ -s "$tmp/ep-a" ] && [ -s "$tmp/ep-b" ] && break; sleep 0.1; done
ep_a=$(awk -v k="$pb" '$1 == k { print $2 }' "$tmp/ep-a")
ep_b=$(awk -v k="$pa" '$1 == k { print $2 }' "$tmp/ep-b")
A wg set $if_a private-key "$tmp/ka" listen-port 51820 peer "$pb" allowed-ips 10.77.0.2/32 endpoint "$ep_a"
B wg set $if_b private-key "$tmp/kb" listen-port 51820 peer "$pa" allowed-ips 10.77.0.1/32 endpoint "$ep_b"
ip -n $ns_a addr add 10.77.0.1/24 dev $if_a; ip -n $ns_a link set $if_a up
ip -n $ns_b addr add 10.77.0.2/24 dev $if_b; ip -n $ns_b link set $if_b up

check "a allocates on coturn" wait_for 10 a '.turn[0].state' up
check "b allocates on coturn" wait_for 10 b '.turn[0].state' up
check_eq "a's relayed address is on coturn's relay address" 10.99.1.1 "$(st a '.turn[0].relayed' | cut -d: -f1)"
if wait_for 15 a '.peers[0].path' turn && wait_for 5 b '.peers[0].path' turn; then
	ok "both switch to TURN"
else fail "both switch to TURN" "$(cat "$tmp/status-a.json")" "$(tail -20 "$tmp/driver-a.log")"; fi
check_eq "a learned b's relayed address" "$(st b '.turn[0].relayed')" "$(st a '.peers[0].turn_peer')"
check "ping a -> b through TURN" A ping -c 5 -i 0.2 -W 3 10.77.0.2
check "ping b -> a" B ping -c 2 -i 0.3 -W 2 10.77.0.1
sleep 0.4
check "a sent through TURN" test "$(st a '.peers[0].tx.turn.packets')" -ge 5
check "b received through TURN" test "$(st b '.peers[0].rx.turn.packets')" -ge 5
check_eq "nothing went over the stream relay while TURN worked" 0 "$(st a '.peers[0].tx.stream.packets')"
check_eq "the module's own probes did not reach the agent's callback" 0 \
	"$(grep -c "probe from" "$tmp/driver-a.out" "$tmp/driver-b.out" | awk -F: '{ s += $2 } END { print s + 0 }')"

A ping -c 50 -i 0.2 -W 1 10.77.0.2 >"$tmp/ping-turn-down" 2>&1 & ping_pid=$!
sleep 1
turn_stop; wait $ping_pid
rx=$(received "$tmp/ping-turn-down") gap=$(max_gap "$tmp/ping-turn-down" 50)
check_eq "a is back on the stream relay" stream "$(st a '.peers[0].path')"
check "traffic continues when coturn dies ($rx of 50 received, $gap lost in a row at 5/s)" \
	test "${rx:-0}" -ge 30 -a "$gap" -le 20
[ -n "${KEEP:-}" ] && echo "# kept $tmp"
tap_done
