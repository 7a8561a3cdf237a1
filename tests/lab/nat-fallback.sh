#!/usr/bin/env bash
# Relay fallback and the way back: a node behind a firewall that drops every UDP
# datagram reaches its peer through the stream relay, and goes direct once the block is
# lifted; blocked again mid-ping, it falls back to the relay with traffic continuing.
# When only the direct path is blocked (UDP to the relay still passes), the UDP relay
# carries it, also after the agent restarts.
#
#   ns inet: br0 203.0.113.1/24, control :8080, lightscale-relay --udp 3478 --stream 8443
#     |                                  |
#   ns a: eth0 203.0.113.11 (agent)    ns b: eth0 203.0.113.12 (agent)
#   firewall on a's eth0: all UDP dropped (in, out), TCP passes
source "$(dirname "$0")/nat-lib.sh"

nat_relays_up
udp_block "$(nsname a)" eth0
t0=$(date +%s%N)
nat_agents

# 1. All UDP dropped at a: the stream relay.
if wait_for 40 "a relayed to b" path_is a "$pb" relayed stream && wait_for 10 "b relayed to a" path_is b "$pa" relayed stream; then
	ok "both relay through the stream relay ($(ms $t0) ms after the agents started)"
else
	fail "both relay through the stream relay" "$(lsx a status --json | jq -c '.peers[0].path')" "$(node_log a 20)"
fi
check_eq "a's status names the relay" 203.0.113.1:8443 "$(pj a "$pb" .relay)"
# a UDP relay is listed, so the path MTU stays at its 1392 on the stream relay too
check_eq "status text: relayed via stream relay" "relayed via stream relay 203.0.113.1:8443, path MTU 1392" \
	"$(lsx a status | sed -n 's/^  path: *//p' | head -1)"
check "wg on a sends to the relay proxy's loopback address" \
	bash -c "nsenter --net=/run/netns/$(nsname a) wg show $(ifname_of a) endpoints | grep -q '127\\.77\\.[0-9]*\\.[0-9]*:'"
check "ping a -> b through the stream relay" ping_within a "$ab" 20
check "ping b -> a through the stream relay" ping_within b "$aa" 10
check "the firewall dropped a's UDP" test "$(udp_block_count "$(nsname a)")" -ge 1
check "the relay carried frames" test "$(relay_status r1 '[.counters | to_entries[] | select(.key | test("frames|packets")) | .value] | add // 0')" -ge 1

# 2. The block is lifted: back to direct.
udp_unblock "$(nsname a)"
t1=$(date +%s%N)
if wait_for 40 "a direct to b" path_is a "$pb" direct && wait_for 15 "b direct to a" path_is b "$pa" direct; then
	ok "both go direct once UDP passes ($(ms $t1) ms after the block was lifted)"
	echo "# time to direct: $(ms $t1) ms"
else
	fail "both go direct once UDP passes" "$(lsx a status --json | jq -c '.peers[0].path')" "$(node_log a 20)"
fi
check_eq "a's endpoint for b is b's address" 203.0.113.12:51820 "$(pj a "$pb" .endpoint)"
check "a counted the return to direct" test "$(pj a "$pb" .returns)" -ge 1
check "ping a -> b direct" ping_within a "$ab" 10

# 3. Blocked again mid-ping: the relay takes over, traffic continues.
nsx a ping -c 100 -i 0.25 -W 1 "$ab" >"$LAB_DIR/ping-block" 2>&1 &
ping_pid=$!
sleep 2
udp_block "$(nsname a)" eth0
t2=$(date +%s%N)
if wait_for 30 "a relayed again" path_is a "$pb" relayed stream; then
	ok "a falls back to the stream relay ($(ms $t2) ms after UDP was blocked)"
	echo "# time to fall back: $(ms $t2) ms"
else
	fail "a falls back to the stream relay" "$(lsx a status --json | jq -c '.peers[0].path')"
fi
wait $ping_pid
# 25 s of pings, blocked 2 s in: the fallback (a lost pong is noticed after 9 s) may cost
# up to 12 s of them; every other ping must get through, before and after
rx=$(received "$LAB_DIR/ping-block") gap=$(max_gap "$LAB_DIR/ping-block" 100)
check "traffic continues across the fallback ($rx of 100 received, $gap lost in a row at 4/s; at most 48)" \
	test "${rx:-0}" -ge $((100 - 48 - 2)) -a "$gap" -le 48
check "a counted the fall back" test "$(pj a "$pb" .fallbacks)" -ge 1
udp_unblock "$(nsname a)"
check "direct again after the second lift" wait_for 40 "a direct" path_is a "$pb" direct

# 4. Only the direct path is blocked (b drops UDP from a; the relay's UDP passes): the UDP relay.
peer_udp_drop b 203.0.113.11
if wait_for 40 "a via the UDP relay" path_is a "$pb" relayed udp; then
	ok "a relays through the UDP relay when only the direct path is blocked"
else
	fail "a relays through the UDP relay when only the direct path is blocked" "$(lsx a status --json | jq -c '.peers[0].path, .nat.relays.udp')"
fi
check_eq "a's status names the UDP relay" 203.0.113.1:3478 "$(pj a "$pb" .relay)"
check "ping a -> b through the UDP relay" ping_within a "$ab" 15
check "status --json has the relay lists" test "$(lsx a status --json | jq '.nat.relays.stream.relays | length')" = 1

# 5. The agent restarts while relayed: its relay proxy (new loopback sockets) takes the
# peer back, the engine kept running.
agent_kill a
agent_start a
t5=$(date +%s%N)
if wait_for 30 "a relayed after restart" path_is a "$pb" relayed udp; then
	ok "a restarted agent relays b again ($(ms $t5) ms after it started)"
else
	fail "a restarted agent relays b again" "$(lsx a status --json | jq -c '.peers[0].path')"
fi
check "ping a -> b after the agent restart" ping_within a "$ab" 15
tap_done
