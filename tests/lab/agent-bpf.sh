#!/usr/bin/env bash
# agent-bpf: `lightscale agent --bpf` attaches the BPF data plane to the overlay; the
# netmap's routes land in the route maps and `lightscale routes` counts the traffic per
# route; the pinned programs outlive an agent restart; wg-down removes the pins.
#
#   n1 10.99.0.11 ---- br0 (ns inet, control 10.99.0.1:8080) ---- n2 10.99.0.12
#   (agent --bpf --apply-routes)                                   | eth1 192.168.60.1
#                                                                 lan 192.168.60.2
source "$(dirname "$0")/lib.sh"
lab_init
mountpoint -q /sys/fs/bpf || { echo "ok 1 # SKIP no bpffs at /sys/fs/bpf"; exit 0; }

lab_ns inet lan
lab_bridge inet br0 10.99.0.1/24 fd99::1/64
lab_node n1 inet br0 10.99.0.11/24 fd99::11/64
lab_node n2 inet br0 10.99.0.12/24 fd99::12/64
lab_link n2 eth1 lan eth0
lab_addr n2 eth1 192.168.60.1/24
lab_addr lan eth0 192.168.60.2/24
nsx lan ip route add default via 192.168.60.1
control_start inet 10.99.0.1 8080
net_create home
tok=$(token_create home 5)
node_init n1 "$tok"
node_init n2 "$tok" --advertise-routes 192.168.60.0/24
agent_start n1 --bpf --apply-routes
agent_start n2
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
