#!/usr/bin/env bash
# Dynamic endpoint rotation: b has two uplinks, so its netmap entry lists two endpoints.
# No relays here. When the endpoint a uses goes stale (UDP on that uplink dropped), a
# moves to b's other endpoint: at once through the pings (the other one answers), and,
# with the pings themselves dropped by a middlebox, by rotating through b's endpoints
# when WireGuard keeps sending and hears nothing.
#
#   ns inet: routes between br0 203.0.113.1/24 and br1 198.51.100.1/24, control :8080
#     |                          |                 |
#   ns a: eth0 203.0.113.11    ns b: eth0 203.0.113.12   eth1 198.51.100.12
#                              (replies leave by the uplink they belong to)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/relay-lib.sh"
lab_init

lab_ns inet
lab_bridge inet br0 203.0.113.1/24
lab_bridge inet br1 198.51.100.1/24
nsx inet sysctl -qw net.ipv4.ip_forward=1
lab_node a inet br0 203.0.113.11/24
lab_node b inet br0 203.0.113.12/24
lab_link b eth1 inet v-b1
nsx inet ip link set v-b1 master br1
lab_addr b eth1 198.51.100.12/24
nsx a ip route add default via 203.0.113.1
nsx b ip route add default via 203.0.113.1
nsx b ip route add default via 198.51.100.1 table 100
nsx b ip rule add from 198.51.100.12 table 100 pref 100
nat_control
nat_agents
wg_ep() { nsx a wg show "$(ifname_of a)" endpoints | awk '{ print $2 }'; }
iface_of() { case "$1" in 203.0.113.12:*) echo eth0 ;; 198.51.100.12:*) echo eth1 ;; *) echo "?" ;; esac; }
two_eps() { [ "$(lsx a netmap --json | jq --arg k "$pb" '[.peers[] | select(.wg_key == $k) | .endpoints[] | select(test("^(203.0.113.12|198.51.100.12):51820$"))] | length')" = 2 ]; }
direct_not() { [ "$(pj a "$pb" .path)" = direct ] && [ "$(pj a "$pb" .endpoint)" != "$1" ]; }

check "a's netmap lists both of b's uplinks" wait_for 40 "two endpoints" two_eps
check "a goes direct to b" wait_for 30 "a direct" bash -c "[ \"\$(nsenter --net=/run/netns/$(nsname a) $LS status --profile $(profile_of a) --state-dir $LAB_DIR/a --json | jq -r '.peers[0].path.path')\" = direct ]"
check "ping a -> b" ping_within a "$ab" 15
e1=$(pj a "$pb" .endpoint)
if1=$(iface_of "$e1")
check "the endpoint in use is one of b's uplinks ($e1)" test "$if1" != "?"

# 1. The endpoint in use goes stale: the other one answers the pings.
udp_block "$(nsname b)" "$if1"
t1=$(date +%s%N)
if wait_for 30 "a moves off $e1" direct_not "$e1"; then
	ok "a moves to b's other endpoint $(pj a "$pb" .endpoint) ($(ms $t1) ms after $e1 went stale)"
else
	fail "a moves to b's other endpoint" "$(lsx a status --json | jq -c '.peers[0].path')"
fi
check_eq "wg on a uses it" "$(pj a "$pb" .endpoint)" "$(wg_ep)"
check "ping a -> b over the other uplink" ping_within a "$ab" 10
udp_unblock "$(nsname b)"

# 2. A middlebox drops the pings too: rotation on the stale handshake.
nsx b nft -f - <<'NFT'
table inet lsntdisco {
	chain lsin { type filter hook input priority -20; udp dport 51820 @th,64,32 0xff4c5344 drop; }
	chain lsout { type filter hook output priority -20; udp sport 51820 @th,64,32 0xff4c5344 drop; }
}
NFT
check "without pongs a rotates (no relay to fall back to)" \
	wait_for 30 "a rotating" bash -c "[ \"\$(nsenter --net=/run/netns/$(nsname a) $LS status --profile $(profile_of a) --state-dir $LAB_DIR/a --json | jq -r '.peers[0].path.path')\" = rotating ]"
check "ping a -> b while rotating" ping_within a "$ab" 10
e2=$(pj a "$pb" .endpoint)
if2=$(iface_of "$e2")
r0=$(pj a "$pb" .rotations)
nsx a ping -c 160 -i 0.25 -W 1 "$ab" >"$LAB_DIR/ping-rotate" 2>&1 &
ping_pid=$!
sleep 1
udp_block "$(nsname b)" "$if2"
t2=$(date +%s%N)
moved() { [ "$(pj a "$pb" .endpoint)" != "$e2" ] && [ "$(pj a "$pb" .rotations)" -gt "$r0" ]; }
if wait_for 40 "a rotates off $e2" moved; then
	ok "a rotates to $(pj a "$pb" .endpoint) when $e2 goes stale ($(ms $t2) ms)"
else
	fail "a rotates off the stale endpoint $e2" "$(lsx a status --json | jq -c '.peers[0].path')" "$(node_log a 10)"
fi
check_eq "wg on a follows" "$(pj a "$pb" .endpoint)" "$(wg_ep)"
check "ping a -> b after the rotation" ping_within a "$ab" 15
sleep 2
kill $ping_pid 2>/dev/null
wait $ping_pid 2>/dev/null
# the same ping stream: answers resumed after the block (sequence numbers past 8 = 2 s)
after=$(grep -o 'icmp_seq=[0-9]*' "$LAB_DIR/ping-rotate" | cut -d= -f2 | awk '$1 > 8 { n++ } END { print n + 0 }')
check "the ping running across the rotation gets answers again ($after after the block)" test "$after" -ge 4
tap_done
