#!/usr/bin/env bash
# agent-snat: `lightscale agent --bpf --snat-subnet-routes' on a subnet router that is also
# an exit node. Overlay traffic leaving for its LAN gets the router's LAN address, traffic
# for the internet its uplink address, both from the BPF programs (no nftables table);
# neither the LAN host nor the internet host has a route back to the overlay. Then routed
# mode (`--no-bpf --no-masquerade'): the agent prints the return routes, and with exactly
# the printed one installed the LAN host answers the overlay addresses themselves.
#
#   c1 10.99.0.11 --+                                         lan 192.168.70.10, fd00:70::10
#   c2 10.99.0.12 --+-- br0 (ns inet, control 10.99.0.1:8080)   |  (no route back)
#   (--apply-routes --exit-node r)     |                     eth1 192.168.70.1, fd00:70::1
#                                     r 10.99.0.13 ------------+
#   advertises 192.168.70.0/24,      (agent --bpf             eth2 203.0.113.1, 2001:db8:70::1
#   fd00:70::/64, 0.0.0.0/0, ::/0     --snat-subnet-routes)     |  default via 203.0.113.254 / 2001:db8:70::fe
#                                                             wan 203.0.113.254, 2001:db8:70::fe
#                                                                 + "internet" 198.51.100.7, 2001:db8:99::7
#                                                                 (no route back)
# Both hosts run a TCP echo on 8080 and a UDP echo on 9000 that answer with their name and
# the peer address they see, and iperf3.
source "$(dirname "$0")/lib.sh"
lab_init
mountpoint -q /sys/fs/bpf || { echo "ok 1 # SKIP no bpffs at /sys/fs/bpf"; exit 0; }
command -v bpftool >/dev/null || { echo "ok 1 # SKIP no bpftool"; exit 0; }
PORTS=61000-61019

lab_star c1=11 c2=12 r=13
lab_ns lan wan
lab_link r eth1 lan eth0
lab_addr r eth1 192.168.70.1/24 fd00:70::1/64
lab_addr lan eth0 192.168.70.10/24 fd00:70::10/64
lab_link r eth2 wan eth0
lab_addr r eth2 203.0.113.1/24 2001:db8:70::1/64
lab_addr wan eth0 203.0.113.254/24 2001:db8:70::fe/64
lab_addr wan lo 198.51.100.7/32 2001:db8:99::7/128
nsx r ip route add default via 203.0.113.254
nsx r ip -6 route add default via 2001:db8:70::fe

cat >"$LAB_DIR/srv.py" <<'PY'
import socket, sys, threading
name = sys.argv[1]
t = socket.socket(socket.AF_INET6); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); t.bind(("::", 8080)); t.listen(64)
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); u.bind(("::", 9000))
def plain(a): return a[7:] if a.startswith("::ffff:") else a
def udp():
    while True:
        d, a = u.recvfrom(2048); u.sendto(("%s %s" % (name, plain(a[0]))).encode(), a)
threading.Thread(target=udp, daemon=True).start()
while True:
    c, a = t.accept(); c.recv(1024)
    c.sendall(("%s %s\n" % (name, plain(a[0]))).encode()); c.close()
PY
for h in lan wan; do
	bg $h "$LAB_DIR/$h.srv.log" python3 "$LAB_DIR/srv.py" $h
	nsx $h iperf3 -s -D -I "$LAB_DIR/$h.iperf.pid" >/dev/null
done
wait_for 5 "iperf3 servers" test -s "$LAB_DIR/wan.iperf.pid"
for h in lan wan; do LAB_PIDS+=("$(cat "$LAB_DIR/$h.iperf.pid" 2>/dev/null)"); done
# ask NODE ADDR: the TCP echo's answer ("lan 192.168.70.1")
ask() { nsx "$1" timeout 5 bash -c "exec 3<>/dev/tcp/$2/8080; echo hi >&3; cat <&3" 2>/dev/null; }
iperf_ok() {
	nsx "$1" iperf3 -c "$2" -t 2 -J 2>/dev/null | python3 -c '
import json,sys
d=json.load(sys.stdin)
print("# iperf3 %.0f Mbit/s" % (d["end"]["sum_received"]["bits_per_second"]/1e6))
sys.exit(0 if d["end"]["sum_received"]["bytes"] > 100000 and not d.get("error") else 1)'
}
# nat_ports DST PORT: the SNAT ports ls_nat_out holds for flows to DST:PORT (IPv4), sorted
PIN=/sys/fs/bpf/lightscale/$(profile_of r)
nat_ports() {
	bpftool map dump pinned "$PIN/nat_out" | python3 -c '
import json, socket, sys
d = json.load(sys.stdin); dst = socket.inet_aton(sys.argv[1]) + bytes(12)
print(" ".join(sorted(str(socket.ntohs(e["value"]["port"])) for e in d
      if bytes(int(x, 0) if isinstance(x, str) else x for x in e["key"]["daddr"]) == dst and socket.ntohs(e["key"]["dport"]) == int(sys.argv[2]))))' "$1" "$2"
}
reserved() { nsx r cat /proc/sys/net/ipv4/ip_local_reserved_ports; }

node_init c1 "$LAB_TOK"
node_init c2 "$LAB_TOK"
node_init r "$LAB_TOK" --advertise-routes 192.168.70.0/24,fd00:70::/64,0.0.0.0/0,::/0
# what an earlier run without --snat-subnet-routes leaves: the nftables masquerade table
nsx r nft add table inet "lightscale-$(profile_of r)"
agent_start r --bpf --snat-subnet-routes --snat-ports $PORTS --snat-timeouts 7440,180,2
agent_start c1 --apply-routes --exit-node r
agent_start c2 --apply-routes --exit-node r
for n in c1 c2; do
	wait_for 40 "$n configures r" peer_count $n 2 || lab_die "$n peers" "$(node_log $n)"
done
snat_up() { lsx r status --json | jqe '.snat.mode == "bpf" and (.snat.interfaces | length) == 2'; }
wait_for 20 "r's SNAT on eth1 and eth2" snat_up || fail "r: SNAT interfaces" "$(lsx r status --json | jq -c .snat)" "$(node_log r 30)"
nsx r nft list tables | grep -q "lightscale-$(profile_of r)" &&
	fail "no nftables masquerade table on the router" "$(nsx r nft list tables)" ||
	ok "no nftables masquerade table on the router (the one an earlier run left is gone)"

# LAN and internet hosts see the router's addresses, v4 and v6
ping_within c1 192.168.70.10 10 || fail "ping LAN host" "$(node_log c1)"
check_eq "LAN host sees the router's LAN address (v4)" "lan 192.168.70.1" "$(ask c1 192.168.70.10)"
check_eq "LAN host sees the router's LAN address (v6)" "lan fd00:70::1" "$(ask c1 fd00:70::10)"
ping_within c1 198.51.100.7 10 || fail "ping internet host" "$(node_log c1)"
check_eq "internet host sees the uplink address (v4)" "wan 203.0.113.1" "$(ask c1 198.51.100.7)"
check_eq "internet host sees the uplink address (v6)" "wan 2001:db8:70::1" "$(ask c1 2001:db8:99::7)"
nsx c2 ping -c 2 -W 2 -q fd00:70::10 >/dev/null && ok "ICMPv6 echo through SNAT" || fail "ping6 LAN host"

# two clients, one source port, one destination: two SNAT ports
udp_from() { # NODE SRC-ADDR SRC-PORT DST
	nsx "$1" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], int(sys.argv[2]))); s.settimeout(3)
s.sendto(b"x", (sys.argv[3], 9000))
try: print(s.recvfrom(100)[0].decode())
except Exception: print("timeout")' "$2" "$3" "$4"
}
check_eq "client c1 from port 7777 answered" "lan 192.168.70.1" "$(udp_from c1 "$(node_addr c1 4)" 7777 192.168.70.10)"
check_eq "client c2 from port 7777 answered" "lan 192.168.70.1" "$(udp_from c2 "$(node_addr c2 4)" 7777 192.168.70.10)"
np=$(nat_ports 192.168.70.10 9000)
set -- $np
[ $# = 2 ] && [ "$1" != "$2" ] && ok "... through two distinct SNAT ports ($np, from ls_nat_out)" || fail "two SNAT ports" "$np"

# the range is reserved; router-local sockets inside it keep working while SNAT flows run
grep -q "61000-61019" <<<"$(reserved)" && ok "ip_local_reserved_ports holds $PORTS" || fail "reserved ports" "$(reserved)"
before=$(nat_ports 192.168.70.10 9000)
bg r "$LAB_DIR/local.log" python3 -c '
import select, socket
ss = []
for p in range(61000, 61005):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("192.168.70.1", p)); ss.append(u)
print("ready", flush=True)
while True:
    for u in select.select(ss, [], [])[0]:
        d, a = u.recvfrom(100); u.sendto(b"router-" + d, a)'
wait_for 10 "router-local sockets bound" grep -q ready "$LAB_DIR/local.log"
burst=$(nsx c1 python3 -c '
import socket
ok = 0
for p in range(20000, 20010):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("", p)); s.settimeout(3)
    s.sendto(b"x", ("192.168.70.10", 9000))
    try: ok += s.recvfrom(100)[0].decode() == "lan 192.168.70.1"
    except Exception: pass
print(ok)')
check_eq "10 more SNAT flows to the LAN host while router-local sockets hold 61000-61004" 10 "$burst"
np=$(nat_ports 192.168.70.10 9000)
new=$(comm -13 <(tr ' ' '\n' <<<"$before" | sort) <(tr ' ' '\n' <<<"$np" | sort) | tr '\n' ' ')
clash=$(for p in $new; do ((p >= 61000 && p <= 61004)) && echo "$p"; done)
[ -z "$clash" ] && [ "$(wc -w <<<"$new")" = 10 ] &&
	ok "no new SNAT flow took a port a router-local socket holds (the 10 new: $new)" ||
	fail "SNAT ports vs local sockets" "before: $before" "after: $np"
loc=$(nsx lan python3 -c '
import socket
out = []
for p in range(61000, 61005):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); s.sendto(b"local", ("192.168.70.1", p))
    try: out.append(s.recvfrom(100)[0].decode())
    except Exception: out.append("timeout")
print(" ".join(sorted(set(out))))')
check_eq "router-local sockets on 61000-61004 still answer" "router-local" "$loc"

# bulk TCP through SNAT, checksum offload left on
iperf_ok c1 192.168.70.10 && ok "iperf3 TCP through SNAT to the LAN host" || fail "iperf3 LAN"
iperf_ok c2 198.51.100.7 && ok "iperf3 TCP through SNAT to the internet host" || fail "iperf3 internet"

# the agent's garbage collector forgets idle connections (ICMP after 2 s here)
icmp_flows() {
	bpftool map dump pinned "$PIN/nat_out" | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin) if e["key"]["proto"] in (1, 58)))'
}
no_icmp_flows() { [ "$(icmp_flows)" = 0 ]; }
nsx c1 ping -c 1 -W 2 -q 192.168.70.10 >/dev/null
n=$(icmp_flows)
((n >= 1)) && wait_for 15 "idle ICMP flows collected" no_icmp_flows &&
	ok "the agent's GC removed the idle ICMP flow(s) ($n) after the 2 s timeout" || fail "SNAT GC" "icmp flows: $n -> $(icmp_flows)"

# status --json and text
st=$(lsx r status --json)
lab_log "status .snat: $(jq -c .snat <<<"$st")"
check_eq "status: snat mode" bpf "$(jq -r .snat.mode <<<"$st")"
check_eq "status: snat ports" "$PORTS" "$(jq -r .snat.ports <<<"$st")"
check_eq "status: ports reserved" true "$(jq -r .snat.reserved <<<"$st")"
check_eq "status: timeouts" "7440 180 2" "$(jq -r '.snat.timeouts | "\(.tcp) \(.udp) \(.icmp)"' <<<"$st")"
check_eq "status: masquerade off" false "$(jq -r .masquerade <<<"$st")"
check_eq "status: eth1 is a LAN, 192.168.70.1 and fd00:70::1" "lan 192.168.70.1 fd00:70::1" \
	"$(jq -r '.snat.interfaces[] | select(.interface == "eth1") | "\(.role) \(.ipv4) \(.ipv6)"' <<<"$st")"
check_eq "status: eth2 is the uplink, 203.0.113.1 and 2001:db8:70::1" "uplink 203.0.113.1 2001:db8:70::1" \
	"$(jq -r '.snat.interfaces[] | select(.interface == "eth2") | "\(.role) \(.ipv4) \(.ipv6)"' <<<"$st")"
hooks=$(jq -c '[.snat.interfaces[] | select(.interface == "eth1") | .hooks[] | select(.attached) | .hook] | sort' <<<"$st")
check_eq "status: eth1 runs lan_in and lan_out (attached)" '["lan_in","lan_out"]' "$hooks"
jq -e '[.snat.interfaces[].hooks[].mode] | all(. == "tcx" or . == "clsact")' <<<"$st" >/dev/null &&
	ok "status: hooks say their mode ($(jq -r '[.snat.interfaces[].hooks[].mode] | unique | join(",")' <<<"$st"); veth: no XDP)" ||
	fail "status hook modes" "$(jq -c .snat <<<"$st")"
check_eq "status: no return routes with SNAT" "[]" "$(jq -c .return_routes <<<"$st")"
bs=$(lsx r bpf status --json)
check_eq "bpf status: the interface map holds eth2's SNAT sources" "203.0.113.1 2001:db8:70::1" \
	"$(jq -r '.interfaces[] | select(.interface == "eth2") | "\(.snat4) \(.snat6)"' <<<"$bs")"
check_eq "bpf status: the overlay is where SNAT traffic comes from" true \
	"$(jq -r --arg o "$(ifname_of r)" '.interfaces[] | select(.interface == $o) | .roles | index("snat_from") != null' <<<"$bs")"
txt=$(lsx r status)
grep -q "snat: *bpf, ports $PORTS (reserved" <<<"$txt" && grep -q "eth2 *uplink as 203.0.113.1, 2001:db8:70::1" <<<"$txt" &&
	ok "status text: SNAT ports and the uplink's addresses" || fail "status text" "$txt"

# address changes: the SNAT source follows the interface's address; an interface that
# gains an address inside an advertised route gets the programs, and loses them with it
snat_if() { lsx r status --json | jq -r --arg i "$1" '.snat.interfaces[] | select(.interface == $i) | "\(.role) \(.ipv4) \(.ipv6)"'; }
snat_if_is() { [ "$(snat_if "$1")" = "$2" ]; }
nsx r ip addr del fd00:70::1/64 dev eth1
nsx r ip addr add fd00:70::2/64 dev eth1 nodad
wait_for 10 "eth1's new IPv6 address" snat_if_is eth1 "lan 192.168.70.1 fd00:70::2" &&
	ok "status follows eth1's new address fd00:70::2" || fail "new v6 address" "$(snat_if eth1)"
check_eq "LAN host sees the new address (v6)" "lan fd00:70::2" "$(ask c1 fd00:70::10)"
nsx r ip addr del fd00:70::2/64 dev eth1
nsx r ip addr add fd00:70::1/64 dev eth1 nodad
nsx r ip link add eth3 type veth peer name eth3p
nsx r ip link set eth3 up
nsx r ip addr add 192.168.70.200/32 dev eth3
bpf_on() { lsx r bpf status --json | jqe --arg i "$1" '[.attachments[] | select(.interface == $i)] | length > 0'; }
wait_for 10 "eth3 is a LAN" snat_if_is eth3 "lan 192.168.70.200 null" && bpf_on eth3 &&
	ok "eth3 with an address in 192.168.70.0/24 becomes a SNAT LAN with the programs" || fail "eth3 LAN" "$(snat_if eth3)"
nsx r ip addr del 192.168.70.200/32 dev eth3
wait_for 10 "eth3 no longer a LAN" snat_if_is eth3 "" && ! bpf_on eth3 &&
	ok "eth3 without it loses the programs (pin records gone)" || fail "eth3 detach" "$(lsx r bpf status --json | jq -c .attachments)"
nsx r ip link del eth3
wait_for 10 "eth1's address back" snat_if_is eth1 "lan 192.168.70.1 fd00:70::1" || fail "v6 address back" "$(snat_if eth1)"

# a default route with two next hops names no uplink: the agent falls back to the nftables
# masquerade (and says why), and goes back to BPF SNAT when the route is single again
nsx r ip route replace default nexthop via 203.0.113.254 dev eth2 nexthop via 192.168.70.10 dev eth1
mode_is() { [ "$(lsx r status --json | jq -r .snat.mode)" = "$1" ]; }
wait_for 10 "nftables fallback" mode_is nftables && nsx r nft list tables | grep -q "lightscale-$(profile_of r)" &&
	lsx r status --json | jqe '.snat.why | test("default route names no single interface")' >/dev/null &&
	ok "multipath default route: nftables masquerade instead ($(lsx r status --json | jq -r .snat.why))" ||
	fail "multipath fallback" "$(lsx r status --json | jq -c .snat)" "$(node_log r 10)"
nsx r ip route replace default via 203.0.113.254 dev eth2
wait_for 10 "BPF SNAT again" mode_is bpf && ! nsx r nft list tables | grep -q "lightscale-$(profile_of r)" &&
	ok "single default route again: BPF SNAT, the nftables table gone" || fail "back to BPF SNAT" "$(lsx r status --json | jq -c .snat)"
check_eq "... and the internet host sees the uplink address again" "wan 203.0.113.1" "$(ask c1 198.51.100.7)"

# kill -9: the pinned programs keep translating; the restarted agent adopts them
agent_kill r -9
ok "router agent killed with SIGKILL"
check_eq "new TCP flow through SNAT with no agent (LAN)" "lan 192.168.70.1" "$(ask c2 192.168.70.10)"
check_eq "new TCP flow through SNAT with no agent (internet)" "wan 203.0.113.1" "$(ask c2 198.51.100.7)"
rm -f "/run/lightscale/$(profile_of r).sock"
agent_start r --bpf --snat-subnet-routes --snat-ports $PORTS --snat-timeouts 7440,180,2
wait_for 20 "restarted r's SNAT" snat_up && ok "restarted agent: SNAT on both interfaces again" || fail "restart SNAT" "$(node_log r 30)"
grep -q "eth1 lan_out: adopted pinned link" "$LAB_DIR/r.agent.log" && ok "restarted agent adopted the pinned LAN links" ||
	fail "adopt log" "$(grep bpf: "$LAB_DIR/r.agent.log" | tail -20)"
check_eq "after the restart: LAN host answers through SNAT" "lan 192.168.70.1" "$(ask c1 192.168.70.10)"
check_eq "after the restart: the c1 port-7777 flow kept its SNAT entry" "lan 192.168.70.1" \
	"$(udp_from c1 "$(node_addr c1 4)" 7777 192.168.70.10)"
check_eq "... and no new one (12 flows to the LAN host's UDP echo)" 12 "$(wc -w <<<"$(nat_ports 192.168.70.10 9000)")"
grep -q "61000-61019" <<<"$(reserved)" && ok "ports still reserved after the restart" || fail "reserved after restart" "$(reserved)"

# teardown gives everything back
agent_kill r
lsx r wg-down >"$LAB_DIR/r.down.log" 2>&1 && ok "wg-down" || fail "wg-down" "$(cat "$LAB_DIR/r.down.log")"
[ -e "$PIN" ] && fail "wg-down removed the pins" "$(ls -R "$PIN")" || ok "wg-down removed the pins"
grep -q "61000-61019" <<<"$(reserved)" && fail "wg-down gave the ports back" "$(reserved)" || ok "wg-down gave the reserved ports back"

# routed mode, without BPF: no translation; the printed route makes the LAN host answer
agent_start r --no-bpf --no-masquerade
routed() { lsx r status --json | jqe '.snat.mode == "routed" and (.return_routes | length) >= 4'; }
wait_for 30 "r in routed mode" routed || fail "routed mode status" "$(lsx r status --json | jq -c '{snat, return_routes}')"
st=$(lsx r status --json)
lab_log "return_routes: $(jq -c .return_routes <<<"$st")"
ov4=$(jq -r .network.ipv4 <<<"$st") ov6=$(jq -r .network.ipv6 <<<"$st")
rr4=$(jq -r '.return_routes[] | select(.interface == "eth1" and (.via | contains(":") | not)) | .command' <<<"$st")
rr6=$(jq -r '.return_routes[] | select(.interface == "eth1" and (.via | contains(":"))) | .command' <<<"$st")
check_eq "status: the LAN gateway's IPv4 return route" "ip route add $ov4 via 192.168.70.1" "$rr4"
check_eq "status: the LAN gateway's IPv6 return route" "ip -6 route add $ov6 via fd00:70::1" "$rr6"
check_eq "status: the uplink's return route too" "ip route add $ov4 via 203.0.113.1" \
	"$(jq -r '.return_routes[] | select(.interface == "eth2" and (.via | contains(":") | not)) | .command' <<<"$st")"
grep -qF "$rr4" "$LAB_DIR/r.agent.log" && grep -qF "$rr6" "$LAB_DIR/r.agent.log" && ok "the agent log prints both routes" ||
	fail "routes in the log" "$(node_log r 20)"
grep -q "snat: *none (routed" <<<"$(lsx r status)" && ok "status text: routed, with the routes" || fail "status text routed" "$(lsx r status)"
nsx r nft list tables | grep -q "lightscale-$(profile_of r)" && fail "routed: no nftables table" || ok "routed: no nftables table"
# r's engine starts afresh: c1 notices the lost session and handshakes again (<= ~20 s)
ping_within c1 "$(node_addr r 4)" 40 || fail "c1 reaches r again" "$(node_log c1)"
[ -z "$(ask c1 192.168.70.10)" ] && ok "routed, no return route: the LAN host cannot answer" || fail "LAN host answered without a route"
nsx lan $rr4 && nsx lan $rr6 && ok "installed the printed routes on the LAN host" || fail "install routes"
check_eq "routed with the printed route: the LAN host sees c1's overlay address (v4)" "lan $(node_addr c1 4)" \
	"$(ask c1 192.168.70.10)"
check_eq "routed with the printed route: the LAN host sees c1's overlay address (v6)" "lan $(node_addr c1 6)" \
	"$(ask c1 fd00:70::10)"
tap_done
