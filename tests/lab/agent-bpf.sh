#!/usr/bin/env bash
# agent-bpf: `lightscale agent --bpf` attaches the BPF data plane to the overlay; the
# netmap's routes land in the route maps and `lightscale routes` counts the traffic per
# route; the pinned programs outlive an agent restart; wg-down removes the pins.
# The subnet router n2 runs `--bpf --fast-forward': its LAN interfaces get the LAN
# programs as fast-forwarding targets (LAN -> LAN forwarded in BPF; overlay -> LAN,
# from an L3 device, still by the stack, see bpf/fwd.bpf.h); n1 without it has the flag off.
#
#   n1 10.99.0.11 ---- br0 (ns inet, control 10.99.0.1:8080) ---- n2 10.99.0.12
#   (agent --bpf --apply-routes)          (agent --bpf --fast-forward) | eth1 192.168.60.1
#                                                                 lan 192.168.60.2  | eth2 192.168.61.1
#                                                                              lan2 192.168.61.2
source "$(dirname "$0")/lib.sh"
lab_init
mountpoint -q /sys/fs/bpf || { echo "ok 1 # SKIP no bpffs at /sys/fs/bpf"; exit 0; }

lab_ns inet lan lan2
lab_bridge inet br0 10.99.0.1/24 fd99::1/64
lab_node n1 inet br0 10.99.0.11/24 fd99::11/64
lab_node n2 inet br0 10.99.0.12/24 fd99::12/64
lab_link n2 eth1 lan eth0
lab_addr n2 eth1 192.168.60.1/24
lab_addr lan eth0 192.168.60.2/24
lab_link n2 eth2 lan2 eth0
lab_addr n2 eth2 192.168.61.1/24
lab_addr lan2 eth0 192.168.61.2/24
nsx lan ip route add default via 192.168.60.1
nsx lan2 ip route add default via 192.168.61.1
control_start inet 10.99.0.1 8080
net_create home
tok=$(token_create home 5)
node_init n1 "$tok"
node_init n2 "$tok" --advertise-routes 192.168.60.0/24,192.168.61.0/24
agent_start n1 --bpf --apply-routes
agent_start n2 --bpf --fast-forward
# fwd_counter NODE REASON: packets the forward stage counted with REASON
fwd_counter() { lsx "$1" bpf status --json | jq '[.counters[]? | select(.program == "forward" and .reason == "'"$2"'") | .packets] | add // 0'; }
wait_for 90 "n1 peer" peer_count n1 1 || lab_die "n1 peer" "$(node_log n1)"
grep -q "bpf: programs attached to $(ifname_of n1)" "$LAB_DIR/n1.agent.log" && ok "agent attached the BPF programs" ||
	fail "bpf attach" "$(node_log n1)"
check_eq "status: bpf attached" attached "$(lsx n1 status --json | jq -r .bpf)"
pin=/sys/fs/bpf/lightscale/$(profile_of n1)
[ -d "$pin" ] && ok "maps and links pinned in $pin" || fail "pin dir" "$(ls /sys/fs/bpf/lightscale 2>&1)"

ping_within n1 "$(node_addr n2 4)" 5 && ok "overlay ping with the BPF programs attached" || fail "ping n2" "$(node_log n1)"
ping_within n1 192.168.60.2 5 && ok "LAN behind n2 reachable" || fail "ping LAN"
nsx n1 ping -c 5 -i 0.2 -q 192.168.60.2 >/dev/null
routes=$(lsx n1 routes --json)
[ -n "$routes" ] && ok "routes --json answers" || fail "routes --json answers"
lab_log "routes: $(jq -c . <<<"$routes" | head -c 600)"
lan_tx=$(jq '[.routes[] | select(.prefix == "192.168.60.0/24") | .tx_packets] | first // 0' <<<"$routes")
((lan_tx >= 5)) && ok "routes: 192.168.60.0/24 counted $lan_tx packets out" || fail "routes LAN counter" "$routes"
jq -e '[.routes[] | select(.prefix == "192.168.60.0/24" and .via == "n2")] | length == 1' <<<"$routes" >/dev/null && ok "routes: the route names its peer" || fail "routes name" "$routes"
bs=$(lsx n1 bpf status --json 2>&1)
grep -q "$(ifname_of n1)" <<<"$bs" && ok "bpf status lists the overlay interface" || fail "bpf status" "$bs"
jq -e '.config.stages | index("fast_forward") | not' <<<"$bs" >/dev/null && ok "without --fast-forward the fast_forward flag is off" ||
	fail "n1 fast_forward off" "$(jq -c .config <<<"$bs")"

# --fast-forward on the subnet router n2
bs2=$(lsx n2 bpf status --json 2>&1)
jq -e '.config.stages | index("fast_forward")' <<<"$bs2" >/dev/null && ok "n2 --fast-forward: the fast_forward flag is on" ||
	fail "n2 fast_forward on" "$(jq -c .config <<<"$bs2" 2>&1 | head -c 400)"
for i in eth1 eth2; do
	grep -q "bpf: fast forwarding: LAN programs attached to $i" "$LAB_DIR/n2.agent.log" && ok "n2 attached the LAN programs to $i" ||
		fail "n2 LAN attach $i" "$(node_log n2)"
done
fb=$(fwd_counter n2 forwarded_in_bpf); sb=$(fwd_counter n2 forwarded_by_stack)
nsx n1 ping -c 10 -i 0.1 -q 192.168.60.2 >/dev/null && ok "fast-forward: peer n1 -> LAN host 192.168.60.2" || fail "ping LAN with fast-forward"
nsx n1 ping -c 5 -i 0.1 -q 192.168.61.2 >/dev/null && ok "fast-forward: peer n1 -> LAN host 192.168.61.2" || fail "ping LAN2 with fast-forward"
sm=$(fwd_counter n2 forwarded_by_stack)
((sm >= sb + 10)) && ok "n2's LAN program saw the replies and left them to the stack (toward the L3 overlay: $sb -> $sm)" ||
	fail "forward stage on LAN ingress" "forwarded_by_stack $sb -> $sm"
nsx lan ping -c 3 -i 0.1 -q 192.168.61.2 >/dev/null
nsx lan ping -c 20 -i 0.05 -q 192.168.61.2 >/dev/null && ok "LAN -> LAN through the router" || fail "LAN -> LAN ping"
fa=$(fwd_counter n2 forwarded_in_bpf)
((fa >= fb + 20)) && ok "fast path used: forwarded_in_bpf $fb -> $fa" || fail "fast path counter" "forwarded_in_bpf $fb -> $fa: $(jq -c '[.counters[]? | select(.program == "forward")]' <<<"$(lsx n2 bpf status --json)")"

# restart: the programs keep counting, the new agent adopts them
agent_kill n1
nsx n1 ping -c 3 -i 0.2 -q 192.168.60.2 >/dev/null && ok "traffic with the agent stopped" || fail "ping agent stopped"
agent_start n1 --bpf --apply-routes
wait_for 40 "n1 back" peer_count n1 1
nsx n1 ping -c 3 -i 0.2 -q 192.168.60.2 >/dev/null
after=$(lsx n1 routes --json | jq '[.routes[] | select(.prefix == "192.168.60.0/24") | .tx_packets] | first // 0')
((after >= lan_tx + 6)) && ok "counters kept counting across the restart ($lan_tx -> $after)" || fail "counters across restart" "$lan_tx -> $after"

agent_kill n1
lsx n1 wg-down && ok "wg-down" || fail "wg-down"
[ -e "$pin" ] && fail "wg-down removed the pins" "$(ls -R "$pin")" || ok "wg-down removed the pins"
tap_done
