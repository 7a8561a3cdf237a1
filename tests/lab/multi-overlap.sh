#!/usr/bin/env bash
# multi-overlap: one client in two networks whose subnet routers both route the same LAN
# 192.168.1.0/24. The client's agents detect the overlap through the shared state in
# /run/lightscale, map each network's 192.168.1.0/24 to its own virtual prefix (from
# 10.200.0.0/13) and translate it with the BPF program on each overlay interface; a host
# on each LAN is reached by ping and TCP through its virtual prefix. Forwarding between the
# two networks through the client is dropped until --allow-forward opens it. The LANs'
# IPv6 prefix fd00:a8:1::/64 overlaps too and is mapped into fd4c:5300::/32.
#
#   ha 192.168.1.10 -- ra (neta) --+                          +-- rb (netb) -- hb 192.168.1.10
#                                  br0 (ns inet, control 10.99.0.1:8080)
#                                        |
#                                  c 10.99.0.11: profiles ca (neta) and cb (netb)
# ca also advertises rb's overlay address into neta, so ra -> rb goes through c (the
# forwarding case).
source "$(dirname "$0")/lib.sh"
lab_init

CA_ADVERTISE_RB=1 multi_setup 192.168.1.0/24,fd00:a8:1::/64
rb4=$(node_addr rb 4)

agent_start ra --apply-routes
agent_start rb --apply-routes
multi_agent ca --apply-routes
multi_agent cb --apply-routes

mapped() { lsp "$1" routes --json | jqe '.mappings[] | select(.real == "192.168.1.0/24" and .virtual != null)' >/dev/null; }
wait_for 20 "ca maps 192.168.1.0/24" mapped ca && ok "ca: overlapping 192.168.1.0/24 mapped" ||
	fail "ca mapping" "$(lsp ca routes --json)" "$(node_log ca)"
wait_for 20 "cb maps 192.168.1.0/24" mapped cb && ok "cb: overlapping 192.168.1.0/24 mapped" ||
	fail "cb mapping" "$(lsp cb routes --json)" "$(node_log cb)"
ra_json=$(lsp ca routes --json) rb_json=$(lsp cb routes --json)
lab_log "ca routes: $(jq -c . <<<"$ra_json")"
lab_log "cb routes: $(jq -c . <<<"$rb_json")"
va=$(jq -r '.mappings[] | select(.real == "192.168.1.0/24") | .virtual' <<<"$ra_json")
vb=$(jq -r '.mappings[] | select(.real == "192.168.1.0/24") | .virtual' <<<"$rb_json")
check_eq "routes --json: the conflict names the other profile (ca)" "$(profile_of cb)" \
	"$(jq -r '.conflicts[] | select(.real == "192.168.1.0/24") | .conflicts_with[0]' <<<"$ra_json")"
check_eq "routes --json: the conflict names the other profile (cb)" "$(profile_of ca)" \
	"$(jq -r '.conflicts[] | select(.real == "192.168.1.0/24") | .conflicts_with[0]' <<<"$rb_json")"
[ -n "$va" ] && [ -n "$vb" ] && [ "$va" != "$vb" ] && ok "distinct virtual prefixes $va and $vb" || fail "virtual prefixes" "$va" "$vb"
python3 -c "import ipaddress,sys; p=ipaddress.ip_network('10.200.0.0/13'); sys.exit(0 if all(ipaddress.ip_network(x).subnet_of(p) and ipaddress.ip_network(x).prefixlen == 24 for x in sys.argv[1:]) else 1)" "$va" "$vb" &&
	ok "virtual prefixes are /24s from the default pool 10.200.0.0/13" || fail "pool" "$va $vb"
check_eq "routes --json: BPF attached (ca)" attached "$(jq -r .bpf <<<"$ra_json")"
check_eq "routes --json: ca's real routes recorded" '["192.168.1.0/24","fd00:a8:1::/64"]' "$(jq -c .real_routes <<<"$ra_json")"
check_eq "status: mapping shown" "$va" "$(lsp ca status --json | jq -r '.multinet.mappings[] | select(.real == "192.168.1.0/24") | .virtual')"

ta=$(jq -r .table "$LAB_DIR/ca/$(profile_of ca)/config.json")
tb=$(jq -r .table "$LAB_DIR/cb/$(profile_of cb)/config.json")
[ "$ta" != "$tb" ] && ok "the profiles got distinct tables from the shared state ($ta, $tb)" || fail "tables" "$ta" "$tb"
in_table() { nsx c ip route show table "$1" | grep -q "^$2 dev $3"; }
wait_for 90 "virtual route in ca's table" in_table "$ta" "$va" "$(ifname_of ca)" && ok "virtual route $va in ca's table" ||
	fail "ca table" "$(nsx c ip route show table "$ta")" "$(node_log ca 40)"
wait_for 90 "virtual route in cb's table" in_table "$tb" "$vb" "$(ifname_of cb)" && ok "virtual route $vb in cb's table" ||
	fail "cb table" "$(nsx c ip route show table "$tb")"
(nsx c ip route show table "$ta"; nsx c ip route show table "$tb") | grep -q "^192.168.1.0/24" &&
	fail "the ambiguous real prefix is in neither table" "$(nsx c ip route show table "$ta")" || ok "the ambiguous real prefix is in neither table"

hosta=${va%.0/24}.10 hostb=${vb%.0/24}.10
ping_within c "$hosta" 10 && ok "ping ha through $hosta" || fail "ping $hosta" "$(node_log ca)"
ping_within c "$hostb" 10 && ok "ping hb through $hostb" || fail "ping $hostb" "$(node_log cb)"
check_eq "TCP: $hosta:8080 is host A" A "$(http_who c "http://$hosta:8080")"
check_eq "TCP: $hostb:8080 is host B" B "$(http_who c "http://$hostb:8080")"
# IPv6: fd00:a8:1::/64 overlaps too, mapped into the ULA pool fd4c:5300::/32
va6=$(lsp ca routes --json | jq -r '.mappings[] | select(.real == "fd00:a8:1::/64") | .virtual')
vb6=$(lsp cb routes --json | jq -r '.mappings[] | select(.real == "fd00:a8:1::/64") | .virtual')
[[ "$va6" == fd4c:5300:*/64 && "$vb6" == fd4c:5300:*/64 && "$va6" != "$vb6" ]] && ok "IPv6 LANs mapped to distinct /64s of fd4c:5300::/32 ($va6, $vb6)" ||
	fail "v6 mappings" "$va6" "$vb6"
ha6=${va6%/64}10 hb6=${vb6%/64}10
ping_within c "$ha6" 10 && ok "ping6 ha through $ha6" || fail "ping6 $ha6" "$(nsx c ip -6 route show table "$ta")"
check_eq "TCP over IPv6: [$hb6]:8080 is host B" B "$(http_who c "http://[$hb6]:8080")"

# stable across an agent restart
agent_kill ca
multi_agent ca --apply-routes
wait_for 15 "ca maps again" mapped ca
check_eq "mapping stable across an agent restart" "$va" "$(lsp ca routes --json | jq -r '.mappings[] | select(.real == "192.168.1.0/24") | .virtual')"
check_eq "TCP after the restart: host A" A "$(http_who c "http://$hosta:8080")"

# --map: cb reaches its LAN as 10.77.1.0/24 instead of the automatic prefix
agent_kill cb
multi_agent cb --apply-routes --map 10.77.1.0/24=192.168.1.0/24
manual() { lsp cb routes --json | jqe '.mappings[] | select(.source == "manual" and .virtual == "10.77.1.0/24" and (.conflicts_with | length) == 1)'; }
wait_for 15 "cb's manual map" manual && ok "--map: recorded as the manual mapping of the conflicting prefix" || fail "manual map" "$(lsp cb routes --json)"
check_eq "--map: no automatic mapping left for cb's 192.168.1.0/24" 1 "$(lsp cb routes --json | jq '[.mappings[] | select(.real == "192.168.1.0/24")] | length')"
wait_for 90 "TCP via 10.77.1.10" sh -c "[ \"\$(nsenter --net=/run/netns/$(nsname c) curl -s --max-time 2 http://10.77.1.10:8080/who)\" = B ]" &&
	ok "TCP: 10.77.1.10:8080 is host B (manual map)" || fail "manual map TCP" "$(nsx c ip route show table "$tb")" "$(node_log cb)"
check_eq "TCP: host A still through $hosta" A "$(http_who c "http://$hosta:8080")"

# forwarding between the networks through c: ra -> rb's overlay address (ca advertises it)
wait_for 15 "ra routes $rb4 via its overlay" sh -c "nsenter --net=/run/netns/$(nsname ra) ip route get $rb4 | grep -q $(ifname_of ra)" ||
	lab_log "ra has no route to $rb4: $(nsx ra ip route show table all | grep "$rb4")"
ping_ok ra "$rb4" && fail "forwarding neta -> netb dropped by default" || ok "forwarding neta -> netb dropped by default"
dropped=$(nsx c "$LS" bpf status --profile "$(profile_of cb)" --json 2>/dev/null | jq '[.counters[] | select(.reason == "denied_between_networks") | .packets] | add // 0')
((dropped >= 1)) && ok "cb's BPF isolate program counted the drops ($dropped)" ||
	fail "isolate counter" "$(nsx c "$LS" bpf status --profile "$(profile_of cb)" --json | jq -c .counters)"
lab_log "ca routes (BPF counters): $(lsp ca routes --json | jq -c .routes)"
agent_kill ca
multi_agent ca --apply-routes --allow-forward "$(profile_of cb)"
wait_for 15 "forwarding allowed" ping_ok ra "$rb4" && ok "--allow-forward: ra reaches rb through c" ||
	fail "allow-forward" "$(node_log ca)" "$(node_log cb)"
check_eq "state records the allow" "$(profile_of cb)" "$(lsp ca routes --json | jq -r '.allow_forward[0]')"

# without BPF (--no-bpf) nothing is translated: status says so and the real route stays
agent_kill cb
multi_agent cb --apply-routes --no-bpf
nobpf() { lsp cb status --json | jqe '.multinet.mappings[] | select(.real == "192.168.1.0/24") | .error | contains("BPF unavailable")'; }
wait_for 15 "cb reports untranslated" nobpf && ok "status: mapping not translated, BPF unavailable (--no-bpf)" ||
	fail "no-bpf status" "$(lsp cb status --json | jq -c '.multinet, .bpf')"
check_eq "status: bpf line" "unavailable: --no-bpf (mapped routes are not translated)" "$(lsp cb status --json | jq -r .bpf)"
wait_for 10 "real route back in cb's table" in_table "$tb" 192.168.1.0/24 "$(ifname_of cb)" &&
	ok "without translation the real prefix stays in cb's table" || fail "no-bpf route" "$(nsx c ip route show table "$tb")"
[ -d "/sys/fs/bpf/lightscale/$(profile_of cb)" ] && fail "--no-bpf removed the pinned programs" ||
	ok "--no-bpf removed the pinned programs"
tap_done
