#!/usr/bin/env bash
# STUN and the UDP relay see a client's real source address, across addresses and
# across a NAT.
#
#   lsr-PID-c (client)          lsr-PID-r (router, NAT)            lsr-PID-s (relay)
#   10.77.1.2/24 ---- veth ---- 10.77.1.1/24 | 10.77.2.1/24 ---- veth ---- 10.77.2.2/24
#                                                                           10.77.2.3/24
#   fd77:1::2/64                 fd77:1::1 | fd77:2::1                       fd77:2::2/64
#                                nft masquerade (IPv4 and IPv6) out          fd77:2::3/64
#                                towards the relay
#
# 1. In the relay's namespace, a client bound to the second address (10.77.2.3,
#    fd77:2::3) is told exactly that address and its port (ours and coturn's client).
# 2. Behind the NAT, the client is told the router's outside address (10.77.2.1 /
#    fd77:2::1), not its own; a UDP relay registration reports the same.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
BUILD=${BUILD:-build}
RELAY=$(realpath "$BUILD/lightscale-relay")

c=lsr-$$-c r=lsr-$$-r s=lsr-$$-s
tmp=$(mktemp -d /tmp/lsr-$$-XXXX)
relay_pid=
cleanup() {
	[ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
	for n in $c $r $s; do ip netns del "$n" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

for n in $c $r $s; do ip netns add "$n" && ip -n "$n" link set lo up; done
ip link add lsr$$c netns "$c" type veth peer name lsr$$rc netns "$r"
ip link add lsr$$s netns "$s" type veth peer name lsr$$rs netns "$r"
ip -n "$c" addr add 10.77.1.2/24 dev lsr$$c
ip -n "$c" addr add fd77:1::2/64 dev lsr$$c nodad
ip -n "$r" addr add 10.77.1.1/24 dev lsr$$rc
ip -n "$r" addr add fd77:1::1/64 dev lsr$$rc nodad
ip -n "$r" addr add 10.77.2.1/24 dev lsr$$rs
ip -n "$r" addr add fd77:2::1/64 dev lsr$$rs nodad
ip -n "$s" addr add 10.77.2.2/24 dev lsr$$s
ip -n "$s" addr add 10.77.2.3/24 dev lsr$$s
ip -n "$s" addr add fd77:2::2/64 dev lsr$$s nodad
ip -n "$s" addr add fd77:2::3/64 dev lsr$$s nodad
for n in $c $r $s; do for l in $(ip -n "$n" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1); do
	ip -n "$n" link set "$l" up; done; done
ip -n "$c" route add default via 10.77.1.1
ip -n "$c" -6 route add default via fd77:1::1
ip -n "$s" route add 10.77.1.0/24 via 10.77.2.1   # unused once NATed; keeps the test honest
ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip netns exec "$r" nft -f - <<NFT
table inet lsr_nat {
	chain post { type nat hook postrouting priority srcnat; oifname "lsr$$rs" masquerade; }
}
NFT
ok "topology: client, NAT router, relay namespaces"

ip netns exec "$s" "$RELAY" serve --foreground --udp '[::]:3478' --stream '[::]:3478' \
	--control "$tmp/relay.sock" 2>"$tmp/relay.log" &
relay_pid=$!
for _ in $(seq 50); do [ -S "$tmp/relay.sock" ] && break; sleep 0.1; done
check "relay listens on [::]:3478 (dual-stack)" test -S "$tmp/relay.sock"

# query NS SERVER BIND -> "local mapped" (two different words when there is no answer)
query() {
	local out
	out=$(ip netns exec "$1" "$RELAY" stun-query "$2" --bind "$3" --timeout 3s --json 2>>"$tmp/query.err" |
		jq -r '"\(.local) \(.mapped)"' 2>/dev/null)
	echo "${out:-no-answer(local) no-answer(mapped)}"
}

read -r local mapped <<<"$(query "$s" 10.77.2.2:3478 10.77.2.3:0)"
check_eq "second IPv4 address: mapped is the client's source" "$local" "$mapped"
case "$mapped" in 10.77.2.3:*) ok "... which is 10.77.2.3 ($mapped)" ;; *) fail "... which is 10.77.2.3" "got $mapped" ;; esac
read -r local mapped <<<"$(query "$s" '[fd77:2::2]:3478' '[fd77:2::3]:0')"
check_eq "second IPv6 address: mapped is the client's source" "$local" "$mapped"
case "$mapped" in "[fd77:2::3]:"*) ok "... which is fd77:2::3 ($mapped)" ;; *) fail "... which is fd77:2::3" "got $mapped" ;; esac

out=$(ip netns exec "$s" timeout 10 turnutils_stunclient -p 3478 -L 10.77.2.3 10.77.2.2 2>&1)
if grep -q 'UDP reflexive addr: 10.77.2.3:' <<<"$out"; then ok "coturn's client from 10.77.2.3 is told 10.77.2.3"
else fail "coturn's client from 10.77.2.3 is told 10.77.2.3" "$out"; fi

read -r local mapped <<<"$(query "$c" 10.77.2.2:3478 10.77.1.2:0)"
case "$local $mapped" in
"10.77.1.2:"*" 10.77.2.1:"*) ok "behind the NAT (IPv4): local $local, mapped $mapped (the router)" ;;
*) fail "behind the NAT (IPv4): mapped is the router's address" "local $local mapped $mapped" ;;
esac
read -r local mapped <<<"$(query "$c" '[fd77:2::2]:3478' '[fd77:1::2]:0')"
case "$local $mapped" in
"[fd77:1::2]:"*" [fd77:2::1]:"*) ok "behind the NAT (IPv6): local $local, mapped $mapped" ;;
*) fail "behind the NAT (IPv6): mapped is the router's address" "local $local mapped $mapped" ;;
esac

out=$(ip netns exec "$c" timeout 10 turnutils_stunclient -p 3478 10.77.2.2 2>&1)
if grep -q 'UDP reflexive addr: 10.77.2.1:' <<<"$out"; then ok "coturn's client behind the NAT is told 10.77.2.1"
else fail "coturn's client behind the NAT is told 10.77.2.1" "$out"; fi

st=$(ip netns exec "$s" "$RELAY" status --control "$tmp/relay.sock" --json)
n=$(jq -r '.counters["stun.requests"]' <<<"$st")
if [ "$n" -ge 6 ]; then ok "the relay answered every Binding request ($n)"; else fail "the relay answered every Binding request" "stun.requests=$n"; fi
check_eq "none of them counted as malformed" 0 "$(jq -r '.counters["stun.malformed"]' <<<"$st")"
tap_done
