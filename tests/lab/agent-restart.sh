#!/usr/bin/env bash
# agent-restart: kill -9 the agent while traffic flows; the tunnel keeps carrying it (the
# userspace engine is its own process); the restarted agent adopts the interface without
# resetting the WireGuard session, and follows netmap changes again.
#
#        n1 10.99.0.11 ---- br0 (ns inet, control 10.99.0.1:8080) ---- n2 10.99.0.12
#                                         |
#                                     n3 10.99.0.13 (joins after the restart)
source "$(dirname "$0")/lib.sh"
lab_init

lab_star n1 n2 n3
lab_up n1 n2
n2v4=$(node_addr n2 4)
ping_within n1 "$n2v4" 5 || lab_die "initial ping" "$(node_log n1)"
if1=$(ifname_of n1)
key2=$(cat "$LAB_DIR/n2/$(profile_of n2)/wg.pub")
hs_before=$(nsx n1 wg show "$if1" latest-handshakes | awk '{print $2}')
ifindex_before=$(nsx n1 ip -j link show "$if1" | jq '.[0].ifindex')
engine_pid=$(nsx n1 ss -xlpn | grep -o "$if1.sock.*pid=[0-9]*" | grep -o 'pid=[0-9]*' | head -1)
[ -n "$engine_pid" ] && ok "engine process serves the UAPI socket ($engine_pid)" || fail "engine pid" "$(nsx n1 ss -xlpn)"

# 50 pings over 10 s; the agent dies 2 s in and comes back 4 s later
nsx n1 ping -i 0.2 -c 50 -W 1 "$n2v4" >"$LAB_DIR/ping.txt" 2>&1 &
ping_pid=$!
sleep 2
agent_kill n1 -9
ok "agent n1 killed with SIGKILL"
sleep 1
ping_ok n1 "$n2v4" && ok "overlay still carries traffic with no agent" || fail "traffic without agent"
check_eq "interface still there" "$ifindex_before" "$(nsx n1 ip -j link show "$if1" | jq '.[0].ifindex')"
sleep 3
agent_start n1
wait "$ping_pid"
recv=$(grep -o '[0-9]* received' "$LAB_DIR/ping.txt" | awk '{print $1}')
lab_log "ping: $(grep received "$LAB_DIR/ping.txt")"
((recv >= 49)) && ok "ping kept flowing across the agent restart ($recv/50)" || fail "ping across restart" "$(cat "$LAB_DIR/ping.txt")"
st=$(lsx n1 status --json)
check_eq "restarted agent adopted the interface" true "$(jq -r .adopted <<<"$st")"
grep -q "adopted the running userspace engine" "$LAB_DIR/n1.agent.log" && ok "agent log says it adopted the engine" || fail "adopt log"
check_eq "same interface (ifindex)" "$ifindex_before" "$(nsx n1 ip -j link show "$if1" | jq '.[0].ifindex')"
check_eq "same engine process" "$engine_pid" "$(nsx n1 ss -xlpn | grep -o "$if1.sock.*pid=[0-9]*" | grep -o 'pid=[0-9]*' | head -1)"
check_eq "no handshake reset (same latest handshake)" "$hs_before" \
	"$(nsx n1 wg show "$if1" latest-handshakes | grep "$key2" | awk '{print $2}')"
check_eq "peer still configured" "$key2" "$(nsx n1 wg show "$if1" peers)"

# the restarted agent follows the netmap again
node_init n3 "$LAB_TOK"
agent_start n3
wait_for 10 "restarted n1 learns n3" peer_count n1 2 && ok "restarted agent applies new peers" || fail "n1 learns n3" "$(node_log n1)"
ping_within n1 "$(node_addr n3 4)" 5 && ok "n1 reaches n3" || fail "n1 -> n3"
# without --foreground the agent detaches and says where it logs
out=$(lsx n2 agent 2>&1)
dpid=$(grep -o 'pid [0-9]*' <<<"$out" | awk '{print $2}')
[ -n "$dpid" ] && LAB_PIDS+=("$dpid")
# the foreground agent holds the profile: the detached one must refuse to run
wait_for 5 "second agent exits" sh -c "! kill -0 $dpid 2>/dev/null"
if [ -n "$dpid" ] && kill -0 "$dpid" 2>/dev/null; then fail "second agent for a held profile exits" "$out"; else
	grep -q "another agent runs for profile" "/run/lightscale/$(profile_of n2).log" && ok "a second agent for the same profile refuses to run" ||
		fail "second agent message" "$(cat "/run/lightscale/$(profile_of n2).log" 2>&1)"
fi
agent_kill n2
out=$(lsx n2 agent 2>&1)
dpid=$(grep -o 'pid [0-9]*' <<<"$out" | awk '{print $2}')
[ -n "$dpid" ] && LAB_PIDS+=("$dpid")
[[ $out == *"started (pid "*"log /run/lightscale/"* ]] && ok "agent detaches without --foreground" || fail "detached agent" "$out"
wait_for 10 "detached agent answers" peer_count n2 2 && ok "detached agent serves status" || fail "detached status"
kill "$dpid"
sleep 0.5
nsx n2 ip link show "$(ifname_of n2)" >/dev/null 2>&1 && ok "SIGTERM leaves the interface up" || fail "SIGTERM left it"

# --down-on-exit takes it all down
agent_start n2 --down-on-exit
wait_for 10 "n2 back" peer_count n2 2
agent_kill n2
nsx n2 ip link show "$(ifname_of n2)" >/dev/null 2>&1 && fail "--down-on-exit removes the interface" || ok "--down-on-exit removes the interface"
tap_done
