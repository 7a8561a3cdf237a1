#!/usr/bin/env bash
# agent-control-outage: lightscale-control stops; overlay traffic keeps flowing for 60 s
# (an agent restarted meanwhile reapplies its cached netmap); the control plane comes
# back and netmap updates resume.
#
#        n1 10.99.0.11 ---- br0 (ns inet, control 10.99.0.1:8080) ---- n2 10.99.0.12
#                                         |
#                                     n3 10.99.0.13 (joins after the outage)
source "$(dirname "$0")/lib.sh"
lab_init

lab_ns inet
lab_bridge inet br0 10.99.0.1/24 fd99::1/64
for i in 1 2 3; do lab_node n$i inet br0 10.99.0.1$i/24 fd99::1$i/64; done
control_start inet 10.99.0.1 8080
net_create home
tok=$(token_create home 5)
node_init n1 "$tok"
node_init n2 "$tok"
node_init n3 "$tok" # registered now, its agent starts after the outage
agent_start n1
agent_start n2
wait_for 10 "n1 peers" peer_count n1 2 || lab_die "n1 peers" "$(node_log n1)"
wait_for 10 "n2 peers" peer_count n2 2 || lab_die "n2 peers"
n2v4=$(node_addr n2 4) n2v6=$(node_addr n2 6)
ping_within n1 "$n2v4" 5 || lab_die "initial ping"
v_before=$(lsx n1 status --json | jq .netmap_version)

control_stop
nsx inet curl -sf -m 2 "$CONTROL_URL/v1/health" >/dev/null && fail "control plane is down" || ok "control plane is down"
nsx n1 ping -i 0.5 -c 120 -W 1 "$n2v4" >"$LAB_DIR/ping4.txt" 2>&1 &
p4=$!
nsx n2 ping -i 1 -c 60 -W 1 "$(node_addr n1 6)" >"$LAB_DIR/ping6.txt" 2>&1 &
p6=$!
sleep 20
# an agent restarted during the outage comes back from its cached netmap
agent_kill n2
agent_start n2
wait_for 5 "n2 back from cache" peer_count n2 2 && ok "n2's restarted agent reapplied the cached netmap (no control plane)" ||
	fail "n2 from cache" "$(node_log n2)"
grep -q "reapplying the cached netmap" "$LAB_DIR/n2.agent.log" && ok "n2 log: cached netmap reapplied" || fail "cache log"
wait "$p4" "$p6"
r4=$(grep -o '[0-9]* received' "$LAB_DIR/ping4.txt" | awk '{print $1}')
r6=$(grep -o '[0-9]* received' "$LAB_DIR/ping6.txt" | awk '{print $1}')
lab_log "v4: $(grep received "$LAB_DIR/ping4.txt"); v6: $(grep received "$LAB_DIR/ping6.txt")"
((r4 >= 118)) && ok "IPv4 overlay traffic flowed for 60 s without the control plane ($r4/120)" || fail "v4 during outage" "$(tail -3 "$LAB_DIR/ping4.txt")"
((r6 >= 58)) && ok "IPv6 overlay traffic flowed for 60 s without the control plane ($r6/60)" || fail "v6 during outage"
check_eq "n1 kept both peers" 2 "$(lsx n1 status --json | jq '[.peers[] | select(.configured)] | length')"
grep -q "keeping the current data plane" "$LAB_DIR/n1.agent.log" && ok "n1 log: control plane unreachable, data plane kept" || fail "outage log" "$(node_log n1)"

control_start inet 10.99.0.1 8080
ok "control plane restarted on the same state"
# a change after the outage reaches both agents
lsc node delete "$(node_id n3)" >/dev/null
wait_for 20 "n1 sees the change" peer_count n1 1 && ok "n1's netmap updates resumed" || fail "n1 resumes" "$(node_log n1)"
wait_for 20 "n2 sees the change" peer_count n2 1 && ok "n2's netmap updates resumed" || fail "n2 resumes" "$(node_log n2)"
(($(lsx n1 status --json | jq .netmap_version) > v_before)) && ok "netmap version advanced" || fail "version"
ping_ok n1 "$n2v6" && ok "n1 reaches n2 after the outage" || fail "n1 -> n2 after"
tap_done
