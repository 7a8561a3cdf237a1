#!/usr/bin/env bash
# l2-segment: an optional L2 segment bridged over the overlay. n1 and n2 enable segment
# "lab" (bridge lsbr-lab + VXLAN lsvx-lab over WireGuard) with a host attached on each
# side; h1 and h2 share one IPv4/IPv6 subnet and find each other by ARP/ND as on one
# switch. n3 (same network) does not enable it. Removing the segment cuts it.
#
#   h1 192.168.77.1 fd77::1          h2 192.168.77.2 fd77::2
#      | eth0 (MTU 1370)                | eth0
#   v-h1 in lsbr-lab on n1           v-h2 in lsbr-lab on n2          n3 (no segment)
#   n1 10.99.0.11 ----------- br0 (ns inet, control :8080) ----------- n2 10.99.0.12, n3 .13
source "$(dirname "$0")/lib.sh"
lab_init

lab_star n1 n2 n3
for i in 1 2; do
	lab_ns h$i
	lab_link h$i eth0 n$i v-h$i
	nsx h$i ip link set eth0 mtu 1370
	lab_addr h$i eth0 192.168.77.$i/24 fd77::$i/64
done
lab_up n1 n2 n3
ok "three nodes configured"

check_eq "off by default: no segment" 0 "$(lsx n1 l2 list --json | jq '.segments | length')"
nsx n1 ip link show lsvx-lab >/dev/null 2>&1 && fail "no VXLAN device by default" || ok "no VXLAN device by default"
lsx n1 l2 list | grep -q "off unless enabled" && ok "l2 list text says it is off" || fail "list text" "$(lsx n1 l2 list)"

out=$(lsx n1 l2 add "bad name" 2>&1) && fail "a bad segment name is refused" ||
	{ [[ $out == *"invalid segment name"* ]] && ok "a bad segment name is refused" || fail "bad name message" "$out"; }
out=$(lsx n1 l2 add lab --attach nosuch0 2>&1) && fail "a missing interface is refused" ||
	{ [[ $out == *nosuch0* ]] && ok "a missing interface to attach is refused, naming it" || fail "attach message" "$out"; }

lsx n1 l2 add lab --attach v-h1 >/dev/null && ok "n1: l2 add lab --attach v-h1" || fail "n1 add" "$(lsx n1 l2 add lab --attach v-h1 2>&1)"
lsx n2 l2 add lab --attach v-h2 >/dev/null && ok "n2: l2 add lab --attach v-h2" || fail "n2 add"
l1=$(lsx n1 l2 list --json) l2=$(lsx n2 l2 list --json)
check_eq "both nodes derive the same VNI" "$(jq .segments[0].vni <<<"$l1")" "$(jq .segments[0].vni <<<"$l2")"
check_eq "n1: segment up, MTU 1420-50" "true 1370" "$(jq -r '.segments[0] | "\(.up) \(.mtu)"' <<<"$l1")"
check_eq "n1: local end is its overlay address" "$(node_addr n1 4)" "$(jq -r .segments[0].local <<<"$l1")"
check_eq "n1: floods to both peers" "n2 n3" "$(jq -r '[.segments[0].peers[].name] | sort | join(" ")' <<<"$l1")"
check_eq "the VXLAN device is in the bridge" lsbr-lab "$(nsx n1 ip -j link show lsvx-lab | jq -r '.[0].master')"
check_eq "v-h1 is in the bridge" lsbr-lab "$(nsx n1 ip -j link show v-h1 | jq -r '.[0].master')"
check_eq "VXLAN VNI and local address (ip -d)" "$(jq .segments[0].vni <<<"$l1") $(node_addr n1 4)" \
	"$(nsx n1 ip -j -d link show lsvx-lab | jq -r '.[0].linkinfo.info_data | "\(.id) \(.local)"')"

ping_within h1 192.168.77.2 10 && ok "h1 pings h2 across the segment (IPv4)" ||
	fail "ping over L2" "$(lsx n1 l2 list)" "$(nsx n1 bridge fdb show dev lsvx-lab)" "$(node_log n1)"
mac2=$(nsx h2 ip -j link show eth0 | jq -r ".[0].address")
check_eq "ARP: h1 learned h2's own MAC (bridged, not routed)" "$mac2" \
	"$(nsx h1 ip -j neigh show 192.168.77.2 | jq -r '.[0].lladdr')"
ping_within h2 fd77::1 10 && ok "h2 pings h1 over IPv6 (neighbour discovery crosses)" || fail "ping6 over L2"
nsx n1 bridge fdb show dev lsvx-lab | grep -q "^$mac2 .*dst $(node_addr n2 4)" &&
	ok "n1 learned h2's MAC behind n2's overlay address" || fail "fdb learning" "$(nsx n1 bridge fdb show dev lsvx-lab)"
nsx h1 ping -c 1 -W 2 -M do -s 1342 192.168.77.2 >/dev/null && ok "a full 1370-byte frame crosses (no fragmentation)" ||
	fail "mtu 1370"
nsx n3 ip link show lsvx-lab >/dev/null 2>&1 && fail "n3 has no segment" || ok "n3 (not enabled) has no segment device"

# --peers: flooding only to n2
lsx n1 l2 add lab --attach v-h1 --peers n2 >/dev/null
check_eq "--peers n2: floods to n2 only" "n2" "$(lsx n1 l2 list --json | jq -r '[.segments[0].peers[].name] | join(" ")')"
check_eq "... and the FDB has one flood entry" 1 "$(nsx n1 bridge fdb show dev lsvx-lab | grep -c '^00:00:00:00:00:00')"
nsx h1 ip neigh flush dev eth0
ping_within h1 192.168.77.2 5 && ok "still reachable with --peers n2" || fail "ping after --peers"

# a restarted agent keeps the segment (kernel devices) and the node keeps its config
agent_kill n1
agent_start n1
ping_within h1 192.168.77.2 5 && ok "the segment stays across an agent restart" || fail "after restart"

lsx n1 l2 remove lab >/dev/null && ok "l2 remove lab" || fail "remove"
nsx n1 ip link show lsvx-lab >/dev/null 2>&1 && fail "the devices are gone" || ok "the devices are gone"
nsx h1 ip neigh flush dev eth0
ping_ok h1 192.168.77.2 && fail "the segment is cut" || ok "the segment is cut"
out=$(lsx n1 l2 remove lab 2>&1) && fail "removing it twice fails" ||
	{ [[ $out == *"no L2 segment"* ]] && ok "removing it twice: no L2 segment" || fail "remove twice message" "$out"; }
tap_done
