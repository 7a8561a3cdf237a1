#!/usr/bin/env bash
# lab-5node: full mesh of five nodes (v4 and v6 ping matrix); a subnet router (n4) for a
# LAN behind it; an exit node (n5) in front of an "internet" host that has no route back
# to the overlay (only masquerading can make it work), used by n1, whose own control
# and WireGuard traffic stays outside the tunnel; dns export in both formats; wg-down
# removes everything wg-up made.
#
#   ctl 10.98.0.1 (lightscale-control)            lan 192.168.50.2 fd50::2
#        | 10.98.0.254                                  |
#   [inet: router + br0 10.99.0.1 fd99::1]            n4 eth1 192.168.50.1 fd50::1
#        |  br0: n1 .11  n2 .12  n3 .13  n4 .14  n5 .15  (fd99::1N)
#                                                   n5 eth1 198.51.100.254 fd51::fe
#                                                        |
#                                                   www 198.51.100.1 fd51::1 (no route back)
source "$(dirname "$0")/lib.sh"
lab_init

lab_ns inet ctl lan www
lab_bridge inet br0 10.99.0.1/24 fd99::1/64
lab_link inet eth-ctl ctl eth0
lab_addr inet eth-ctl 10.98.0.254/24 fd98::fe/64
lab_addr ctl eth0 10.98.0.1/24 fd98::1/64
nsx ctl ip route add default via 10.98.0.254
nsx ctl ip -6 route add default via fd98::fe
nsx inet sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
for i in 1 2 3 4 5; do
	lab_node n$i inet br0 10.99.0.1$i/24 fd99::1$i/64
	nsx n$i ip route add default via 10.99.0.1
	nsx n$i ip -6 route add default via fd99::1
done
lab_link n4 eth1 lan eth0
lab_addr n4 eth1 192.168.50.1/24 fd50::1/64
lab_addr lan eth0 192.168.50.2/24 fd50::2/64
nsx lan ip route add default via 192.168.50.1
nsx lan ip -6 route add default via fd50::1
lab_link n5 eth1 www eth0
lab_addr n5 eth1 198.51.100.254/24 fd51::fe/64
lab_addr www eth0 198.51.100.1/24 fd51::1/64 # and no route back anywhere

control_start ctl 10.98.0.1 8080
net_create home
tok=$(token_create home 10)
node_init n1 "$tok"
node_init n2 "$tok"
node_init n3 "$tok"
node_init n4 "$tok" --advertise-routes 192.168.50.0/24,fd50::/64
node_init n5 "$tok" --advertise-routes 0.0.0.0/0,::/0
for i in 1 2 3 4 5; do agent_start n$i --apply-routes; done
for i in 1 2 3 4 5; do
	wait_for 15 "n$i has 4 peers" peer_count n$i 4 || fail "n$i configured 4 peers" "$(node_log n$i)"
done
ok "five agents configured their four peers each"

# full-mesh ping matrix, IPv4 and IPv6
bad=()
for i in 1 2 3 4 5; do
	for j in 1 2 3 4 5; do
		[ $i = $j ] && continue
		for f in 4 6; do
			ping_within n$i "$(node_addr n$j $f)" 5 || bad+=("n$i->n$j/v$f")
		done
	done
done
check_eq "ping matrix: 20 pairs x (IPv4, IPv6), failures" "" "${bad[*]}"

# the subnet router: its LAN reachable from the others through their profile table
nm=$(lsx n1 netmap --json)
check_eq "netmap: n4 routes (primary, in AllowedIPs)" "192.168.50.0/24 fd50::/64" \
	"$(jq -r '.peers[] | select(.name == "n4") | .allowed_ips | map(select(startswith("192.168") or startswith("fd50"))) | join(" ")' <<<"$nm")"
check_eq "netmap: n5 is an exit node" true "$(jq -r '.peers[] | select(.name == "n5") | .exit_node' <<<"$nm")"
check_eq "netmap: the default route is not in n5's AllowedIPs" 0 \
	"$(jq '[.peers[] | select(.name == "n5") | .allowed_ips[] | select(. == "0.0.0.0/0" or . == "::/0")] | length' <<<"$nm")"
t1=$(jq -r .table "$LAB_DIR/n1/$(profile_of n1)/config.json")
nsx n1 ip route show table "$t1" | grep -q "^192.168.50.0/24 dev $(ifname_of n1)" && ok "n1: LAN route in table $t1" ||
	fail "n1 LAN route" "$(nsx n1 ip route show table "$t1")"
for i in 1 2 3; do
	ping_within n$i 192.168.50.2 5 && ok "n$i reaches the LAN host 192.168.50.2 through n4" || fail "n$i -> LAN v4" "$(node_log n$i)"
	ping_within n$i fd50::2 5 && ok "n$i reaches the LAN host fd50::2 through n4" || fail "n$i -> LAN v6"
done
st4=$(lsx n4 status --json)
check_eq "n4 masquerades (nft table inet lightscale-P)" true "$(jq -r .masquerade <<<"$st4")"
nsx n4 nft list table inet "lightscale-$(profile_of n4)" >/dev/null 2>&1 && ok "n4: nft table exists" || fail "n4 nft table"
check_eq "n4: forwarding set and reported" 1 "$(jq -r '.sysctls["net.ipv4.ip_forward"]' <<<"$st4")"

# exit node: n1 picks n5
el=$(lsx n1 exit-node list --json)
check_eq "exit-node list: n5 offered" n5 "$(jq -r '.exit_nodes[0].name' <<<"$el")"
check_eq "exit-node list: nothing selected yet" false "$(jq -r '.exit_nodes[0].selected' <<<"$el")"
ping_ok n1 198.51.100.1 && fail "www unreachable before the exit node is used" || ok "www unreachable before the exit node is used"
lsx n1 exit-node use n5 >/dev/null && ok "exit-node use n5" || fail "exit-node use n5"
wait_for 10 "n1 default route via the tunnel" sh -c "nsenter --net=/run/netns/$(nsname n1) ip route show table $t1 | grep -q '^default dev $(ifname_of n1)'" &&
	ok "n1: default route in table $t1" || fail "n1 default route" "$(nsx n1 ip route show table "$t1")" "$(node_log n1)"
check_eq "status: exit node n5" n5 "$(lsx n1 status --json | jq -r .exit_node.name)"
ping_within n1 198.51.100.1 5 && ok "n1 reaches the internet host 198.51.100.1 through n5 (masquerade)" || fail "n1 -> www v4" "$(node_log n5)"
ping_within n1 fd51::1 5 && ok "n1 reaches the internet host fd51::1 through n5 (masquerade)" || fail "n1 -> www v6"
ping_ok n2 198.51.100.1 && fail "n2 (no exit node) does not reach www" || ok "n2 (no exit node) does not reach www"
# the client's own traffic stays outside the tunnel
fw=$(jq -r .fwmark "$LAB_DIR/n1/$(profile_of n1)/config.json")
check_eq "n1: www goes via the tunnel" "$(ifname_of n1)" "$(nsx n1 ip -j route get 198.51.100.1 | jq -r '.[0].dev')"
check_eq "n1: the control plane goes via eth0" eth0 "$(nsx n1 ip -j route get 10.98.0.1 | jq -r '.[0].dev')"
check_eq "n1: WireGuard's marked UDP goes via eth0" eth0 "$(nsx n1 ip -j route get 198.51.100.1 mark "$fw" | jq -r '.[0].dev')"
check_eq "n1: marked IPv6 goes via eth0" eth0 "$(nsx n1 ip -j -6 route get fd51::1 mark "$fw" | jq -r '.[0].dev')"
check_eq "n1: WireGuard fwmark set on the engine" "$(printf '0x%x' "$fw")" "$(nsx n1 wg show "$(ifname_of n1)" fwmark)"
check_eq "n1: src_valid_mark" 1 "$(nsx n1 sysctl -n net.ipv4.conf.all.src_valid_mark)"
v0=$(lsx n1 netmap --json | jq .version)
lsx n3 heartbeat >/dev/null # a change elsewhere: n1's long-poll must still work
lsx n1 netmap --fetch --json >/dev/null && ok "n1 reaches the control plane with the exit node on" || fail "n1 control with exit"
# the agent's control connections (long-poll, heartbeat) carry the profile's fwmark, so
# they stay outside any profile's tunnel even without the to-CONTROL rule
ctl_marks=$(nsx n1 ss -tne "dst 10.98.0.1" | grep -o 'fwmark:0x[0-9a-f]*' | sort -u | tr '\n' ' ')
check_eq "n1: the agent's control connections are marked" "fwmark:$(printf '0x%x' "$fw") " "$ctl_marks"
ping_ok n1 "$(node_addr n2 4)" && ok "n1 still reaches n2 directly" || fail "n1 -> n2 with exit"

# another manager deletes our rule and route: the agent puts them back
prio1=$(jq -r .rule_priority "$LAB_DIR/n1/$(profile_of n1)/config.json")
nsx n1 ip rule del priority $((prio1 + 2))
nsx n1 ip route del 192.168.50.0/24 table "$t1"
rule_back() { nsx n1 ip rule show priority $((prio1 + 2)) | grep -q "not from all fwmark"; }
route_back() { nsx n1 ip route show table "$t1" | grep -q "^192.168.50.0/24"; }
wait_for 3 "rule re-applied" rule_back && ok "deleted ip rule re-applied by the agent" || fail "rule re-applied" "$(nsx n1 ip rule)"
wait_for 3 "route re-applied" route_back && ok "deleted route re-applied by the agent" || fail "route re-applied"
ping_within n1 198.51.100.1 3 && ok "exit traffic flows again" || fail "exit after re-apply"

# a peer route colliding with the host's own (n2 gets an address in n4's LAN): refused
nsx n2 ip addr add 192.168.50.77/24 dev eth0
t2=$(jq -r .table "$LAB_DIR/n2/$(profile_of n2)/config.json")
refused() { lsx n2 status --json | jqe '.refused_routes[] | select(.route == "192.168.50.0/24" and .peer == "n4")'; }
wait_for 5 "n2 refuses n4's LAN route" refused && ok "colliding route refused and reported" || fail "collision" "$(lsx n2 status --json | jq -c .refused_routes)"
nsx n2 ip route show table "$t2" | grep -q "^192.168.50.0/24" && fail "refused route not in n2's table" || ok "refused route not in n2's table"
lsx n2 status | grep -q "refused:    192.168.50.0/24 from n4: overlaps the host route 192.168.50.0/24 dev eth0" &&
	ok "status text names the collision" || fail "status text collision" "$(lsx n2 status)"
check_eq "fd50::/64 from n4 still routed on n2" 1 "$(nsx n2 ip -6 route show table "$t2" | grep -c '^fd50::/64')"
nsx n2 ip addr del 192.168.50.77/24 dev eth0
wait_for 5 "n2 routes n4's LAN again" sh -c "nsenter --net=/run/netns/$(nsname n2) ip route show table $t2 | grep -q '^192.168.50.0/24'" &&
	ok "route applied once the collision is gone" || fail "route after collision"

# the overlay over a host route (an underlay in 100.64/10): reported, still working
nsx n2 ip route add 100.64.0.0/10 via 10.99.0.1
ov=$(jq -r .network.ipv4 <<<"$(lsx n2 netmap --json)")
conflict() { lsx n2 status --json | jqe --arg p "$ov" '.overlay_conflicts[] | select(.prefix == $p)'; }
wait_for 5 "n2 reports the overlay conflict" conflict && ok "overlay overlapping a host route is reported" ||
	fail "overlay conflict" "$(lsx n2 status --json | jq -c .overlay_conflicts)"
ping_ok n2 "$(node_addr n1 4)" && ok "overlay still works over the conflicting host route" || fail "overlay with conflict"
nsx n2 ip route del 100.64.0.0/10 via 10.99.0.1

# dns export against the netmap
nm=$(lsx n1 netmap --json)
hosts=$(lsx n1 dns export --format hosts)
want=$(jq -r '([.self] + .peers)[] | . as $n | .addresses[] | "\(.)\t\($n.dns_name) \($n.name)"' <<<"$nm" | sort)
check_eq "dns export hosts: one line per address of self and peers" "$want" "$(grep -v '^#' <<<"$hosts" | sort)"
dj=$(lsx n1 dns export --format json)
check_eq "dns export json: suffix" "$(jq -r .network.dns_suffix <<<"$nm")" "$(jq -r .suffix <<<"$dj")"
check_eq "dns export json: records" \
	"$(jq -c '[([.self] + .peers)[] | . as $n | .addresses[] | {name: $n.dns_name, value: .}] | sort' <<<"$nm")" \
	"$(jq -c '[.records[] | {name, value}] | sort' <<<"$dj")"
check_eq "dns export json: record types" "$(jq '[([.self] + .peers)[].addresses[] | select(contains(":"))] | length' <<<"$nm")" \
	"$(jq '[.records[] | select(.type == "AAAA")] | length' <<<"$dj")"

# wg-down removes everything wg-up made (n3: its agent stops, leaving the data plane up)
agent_kill n3
p3=$(profile_of n3) if3=$(ifname_of n3)
t3=$(jq -r .table "$LAB_DIR/n3/$p3/config.json") prio3=$(jq -r .rule_priority "$LAB_DIR/n3/$p3/config.json")
ping_ok n3 "$(node_addr n1 4)" && ok "n3's tunnel outlives its agent (SIGTERM)" || fail "n3 tunnel after SIGTERM"
our_rules() { nsx n3 ip -j rule show | jq --argjson p "$prio3" '[.[] | select(.priority >= $p and .priority <= $p + 2)] | length'; }
our_rules6() { nsx n3 ip -6 -j rule show | jq --argjson p "$prio3" '[.[] | select(.priority >= $p and .priority <= $p + 2)] | length'; }
lsx n3 wg-down && ok "wg-down" || fail "wg-down"
nsx n3 ip link show "$if3" >/dev/null 2>&1 && fail "wg-down: interface gone" || ok "wg-down: interface gone"
check_eq "wg-down: no IPv4 rules" 0 "$(our_rules)"
check_eq "wg-down: no IPv6 rules" 0 "$(our_rules6)"
check_eq "wg-down: table empty" "" "$(nsx n3 ip route show table "$t3"; nsx n3 ip -6 route show table "$t3")"
lsx n3 wg-up --apply-routes --exit-node n5 --json >"$LAB_DIR/n3.up.json" && ok "wg-up --apply-routes --exit-node n5" ||
	fail "wg-up" "$(cat "$LAB_DIR/n3.up.json")"
check_eq "wg-up: IPv4 address" 1 "$(nsx n3 ip -j addr show dev "$if3" | jq --arg a "$(node_addr n3 4)" '[.[0].addr_info[] | select(.local == $a)] | length')"
check_eq "wg-up: IPv6 address" 1 "$(nsx n3 ip -j addr show dev "$if3" | jq --arg a "$(node_addr n3 6)" '[.[0].addr_info[] | select(.local == $a)] | length')"
check_eq "wg-up: rules (to control, suppress, not fwmark)" 3 "$(our_rules)"
check_eq "wg-up: IPv6 rules (suppress, not fwmark)" 2 "$(our_rules6)"
check_eq "wg-up: routes in table $t3" "0.0.0.0/0 192.168.50.0/24" \
	"$(nsx n3 ip -j route show table "$t3" | jq -r '[.[].dst | sub("^default$"; "0.0.0.0/0")] | sort | join(" ")')"
ping_within n3 "$(node_addr n2 4)" 5 && ok "wg-up: n3 reaches n2" || fail "wg-up n3 -> n2"
ping_within n3 198.51.100.1 5 && ok "wg-up: n3 reaches www through n5" || fail "wg-up n3 -> www"
lsx n3 wg-down && ok "wg-down after wg-up" || fail "wg-down after wg-up"
nsx n3 ip link show "$if3" >/dev/null 2>&1 && fail "interface removed" "$(nsx n3 ip addr)" || ok "interface removed"
check_eq "no IPv4 rules left" 0 "$(our_rules)"
check_eq "no IPv6 rules left" 0 "$(our_rules6)"
check_eq "no routes left in table $t3" "" "$(nsx n3 ip route show table "$t3"; nsx n3 ip -6 route show table "$t3")"
[ -S "/var/run/wireguard/$if3.sock" ] && fail "engine socket removed" || ok "engine process and socket gone"
lsx n3 wg-down && ok "wg-down twice is fine" || fail "wg-down twice"

tap_done
