#!/usr/bin/env bash
# A relayed peer's path MTU. Over the UDP relay each WireGuard datagram carries the
# relay's 40-byte header, so with the interface MTU 1420 a full-size packet would leave
# as a 1520-byte datagram and fragment on the underlay. While b is relayed, a's agent
# gives b's overlay addresses host routes with MTU 1392 (1500 - 20 IPv4 - 8 UDP - 40
# relay header - 32 WireGuard = 1400, down to a multiple of 16 for WireGuard's padding):
# `ping -M do -s 1364` (1392 bytes) gets through, -s 1365 gets "message too long,
# mtu=1392", a 1420-byte ping without DF is cut in the overlay, and neither a nor the
# relay ever makes or sees an IP fragment of the underlay. Back to direct (after an agent
# restart, which removes the routes the old agent left): no route. Over the stream relay
# (TCP) the MTU stays 1392 while the UDP relay is in the lists (the relay proxy may move
# b to it at any moment; nat-relay-failover has stream relays alone: 1420).
#
#   ns inet: br0 203.0.113.1/24 (MTU 1500), control :8080,
#            lightscale-relay --udp 3478 --stream 8443
#     |                                  |
#   ns a: eth0 203.0.113.11 (agent)    ns b: eth0 203.0.113.12 (agent, drops UDP from a)
source "$(dirname "$0")/nat-lib.sh"

nat_relays_up
# only the direct path is blocked: b drops UDP from a (the relay's UDP passes)
peer_udp_drop b 203.0.113.11
nat_agents
a6=$(node_addr a 6) b6=$(node_addr b 6)
ifa=$(ifname_of a)
# snmp NODE FIELD: an Ip counter of /proc/net/snmp in NODE's namespace
snmp() { nsx "$1" awk -v f="$2" '$1 == "Ip:" && !h { for (i = 2; i <= NF; i++) c[i] = $i; h = 1; next }
	$1 == "Ip:" { for (i = 2; i <= NF; i++) if (c[i] == f) print $i }' /proc/net/snmp; }
mtu_route() { nsx "$1" ip -"$2" route show table main proto 76 "$3" | grep -o 'mtu [0-9]*' | awk '{ print $2 }'; }

if wait_for 40 "a via the UDP relay" path_is a "$pb" relayed udp && wait_for 20 "b via the UDP relay" path_is b "$pa" relayed udp; then
	ok "a and b relay through the UDP relay"
else
	fail "a and b relay through the UDP relay" "$(lsx a status --json | jq -c '.peers[0].path')" "$(node_log a 20)"
fi
check_eq "a's status: b's path MTU is 1392 (UDP relay over IPv4)" 1392 "$(pj a "$pb" .mtu)"
check_eq "b's status: a's path MTU is 1392" 1392 "$(pj b "$pa" .mtu)"
check_eq "the interface MTU stays 1420" 1420 "$(nsx a ip -j link show "$ifa" | jq '.[0].mtu')"
check_eq "a has a host route to b's overlay address with mtu 1392" 1392 "$(mtu_route a 4 "$ab")"
[ -n "$b6" ] && check_eq "... and to b's IPv6 overlay address" 1392 "$(mtu_route a 6 "$b6")"
check "ip route get $ab on a shows mtu 1392" bash -c "nsenter --net=/run/netns/$(nsname a) ip route get $ab | grep -q 'mtu 1392'"
check "ping a -> b through the UDP relay" ping_within a "$ab" 15

# DF pings: 1392 bytes go through, 1393 are refused locally with the path MTU
relayed() { relay_status r1 '.counters["udp.forwarded_packets"] // 0'; }
reasm0=$(snmp inet ReasmReqds) frag0=$(snmp a FragCreates) rel0=$(relayed)
check "ping -M do -s 1364 (1392 bytes) a -> b gets through" nsx a ping -c 3 -i 0.3 -W 2 -M do -s 1364 "$ab"
out=$(nsx a ping -c 1 -W 2 -M do -s 1365 "$ab" 2>&1)
check "ping -M do -s 1365 (1393 bytes) gets 'message too long, mtu=1392'" grep -q 'mtu=1392' <<<"$out"
check "ping -M do -s 1252 (1280 bytes) a -> b gets through" nsx a ping -c 2 -i 0.3 -W 2 -M do -s 1252 "$ab"
[ -n "$b6" ] && check "ping -6 -M do -s 1344 (1392 bytes) a -> b gets through" \
	nsx a ping -6 -c 2 -i 0.3 -W 2 -M do -s 1344 "$b6"
check_eq "a created no IP fragments for those (Ip FragCreates)" "$frag0" "$(snmp a FragCreates)"
# without DF, a 1420-byte ping is cut in the overlay (before WireGuard), not on the underlay
check "ping -s 1392 (1420 bytes, no DF) a -> b gets through" nsx a ping -c 3 -i 0.3 -W 2 -s 1392 "$ab"
check "b -> a with 1392 bytes and DF" nsx b ping -c 2 -i 0.3 -W 2 -M do -s 1364 "$aa"
check_eq "the relay reassembled no fragments (its Ip ReasmReqds)" "$reasm0" "$(snmp inet ReasmReqds)"
check "the relay carried those pings (its UDP packet counters grew by at least 20)" test "$(relayed)" -ge $((rel0 + 20))

# a's agent stops while b is relayed (the data plane and the MTU routes stay), b lets
# a's UDP in, and the agent starts again: it removes the routes the earlier run left,
# and b is direct, with the interface's MTU.
agent_kill a
check "a's MTU route outlives its agent" test -n "$(mtu_route a 4 "$ab")"
nsx b nft delete table inet lsntpeer
agent_start a
if wait_for 40 "a direct to b" path_is a "$pb" direct; then
	ok "a's new agent goes direct once b lets its UDP in"
else
	fail "a's new agent goes direct once b lets its UDP in" "$(lsx a status --json | jq -c '.peers[0].path')"
fi
check "the MTU routes to b are removed" wait_for 5 "no mtu route" \
	bash -c "[ -z \"\$(nsenter --net=/run/netns/$(nsname a) ip route show table all proto 76)\" ]"
check_eq "a's status: b's path MTU is 1420 again" 1420 "$(pj a "$pb" .mtu)"
check "ping -M do -s 1392 (1420 bytes) a -> b direct" nsx a ping -c 2 -i 0.3 -W 2 -M do -s 1392 "$ab"

# The stream relay (all UDP of a dropped): the UDP relay is still in the lists and the
# relay proxy may move b to it at any moment, so the MTU stays the UDP relay's.
udp_block "$(nsname a)" eth0
if wait_for 40 "a via the stream relay" path_is a "$pb" relayed stream; then
	ok "a relays through the stream relay when its UDP is blocked"
else
	fail "a relays through the stream relay when its UDP is blocked" "$(lsx a status --json | jq -c '.peers[0].path')"
fi
check_eq "a's status: b's path MTU over the stream relay is still 1392" 1392 "$(pj a "$pb" .mtu)"
check_eq "... on the route to b" 1392 "$(mtu_route a 4 "$ab")"
check "ping -M do -s 1364 (1392 bytes) through the stream relay" nsx a ping -c 2 -i 0.3 -W 3 -M do -s 1364 "$ab"
udp_unblock "$(nsname a)"
tap_done
