#!/usr/bin/env bash
# multi-exit: one client in two networks that both offer an exit node. Exactly one
# profile owns the default route at a time (/run/lightscale multi-network state):
# `exit-node use' in a profile takes it and the other profile's default route is
# withdrawn; `none' releases it (a profile that still wants one gets it back).
#
#   ha (198.51.100.1: "A") -- ra (neta exit) --+            +-- rb (netb exit) -- hb (198.51.100.1: "B")
#                                              br0 (ns inet, control 10.99.0.1:8080)
#                                                  |
#                                              c 10.99.0.11: profiles ca (neta) and cb (netb)
source "$(dirname "$0")/lib.sh"
lab_init

CA_ADVERTISE_RB=1 multi_setup 0.0.0.0/0
rb4=$(node_addr rb 4)
agent_start ra --apply-routes
agent_start rb
multi_agent ca --apply-routes
multi_agent cb --apply-routes
multi_peers_up
# no overlapping routes here, so no BPF: forwarding between the two networks (ca
# advertises rb's address into neta) is dropped by the nft isolation table
iso_drops() { nsx c nft -j list table inet "lightscale-iso-$(profile_of cb)" | jq '[.. | objects | .counter? | objects | .packets] | add // 0'; }
wait_for 5 "nft isolation table" nsx c nft list table inet "lightscale-iso-$(profile_of cb)" &&
	ok "without BPF the isolation is an nft table" || fail "nft iso table" "$(nsx c nft list ruleset)"
wait_for 15 "ra routes $rb4 via its overlay" sh -c "nsenter --net=/run/netns/$(nsname ra) ip route get $rb4 | grep -q $(ifname_of ra)" &&
	ok "ra routes rb's address to c (ca advertises it)" || fail "ra route to $rb4" "$(nsx ra ip route show table all | grep -v local)" "$(node_log ra)"
wait_for 15 "ra's peer c configured" sh -c "[ \"\$(nsenter --net=/run/netns/$(nsname ra) $LS status --json --profile $(profile_of ra) --state-dir $LAB_DIR/ra | jq '[.peers[] | select(.configured)] | length')\" = 1 ]"
# ping until the packets reach c's forwarding path (the nft counter moves); none may pass
leaked=0
for _ in $(seq 20); do
	ping_ok ra "$rb4" && leaked=1
	(($(iso_drops) >= 1)) && break
done
((leaked == 0)) && ok "forwarding neta -> netb dropped (nft)" || fail "forwarding neta -> netb dropped (nft)"
(($(iso_drops) >= 1)) && ok "the nft isolation rule counted the drop ($(iso_drops))" ||
	fail "nft counter" "$(nsx c nft list table inet "lightscale-iso-$(profile_of cb)")" "$(nsx ra wg show)" "$(nsx c ip route get "$rb4")"
agent_kill cb
multi_agent cb --apply-routes --allow-forward "$(profile_of ca)"
wait_for 10 "forwarding allowed" ping_ok ra "$rb4" && ok "--allow-forward (on cb): ra reaches rb through c" ||
	fail "allow-forward nft" "$(nsx c nft list ruleset)"
ta=$(jq -r .table "$LAB_DIR/ca/$(profile_of ca)/config.json")
tb=$(jq -r .table "$LAB_DIR/cb/$(profile_of cb)/config.json")
has_default() { nsx c ip route show table "$1" | grep -q "^default dev $2"; }
no_default() { ! nsx c ip route show table "$1" | grep -q "^default"; }
owner() { lsp ca exit-node list --json | jq -r '.default_owner // "none"'; }
via() { nsx c ip -j route get 198.51.100.1 | jq -r '.[0].dev'; }

no_default "$ta" && no_default "$tb" && ok "no default route before an exit node is chosen" || fail "defaults before"
check_eq "nobody owns the default route" none "$(owner)"

lsp ca exit-node use ra >/dev/null && ok "ca: exit-node use ra" || fail "ca use ra"
wait_for 8 "ca's default route" has_default "$ta" "$(ifname_of ca)" && ok "ca's table gets the default route" ||
	fail "ca default" "$(nsx c ip route show table "$ta")" "$(node_log ca)"
check_eq "ca owns the default route" "$(profile_of ca)" "$(owner)"
check_eq "the internet goes through ca" "$(ifname_of ca)" "$(via)"
wait_for 5 "www via ra" sh -c "[ \"\$(nsenter --net=/run/netns/$(nsname c) curl -s --max-time 2 http://198.51.100.1:8080/who)\" = A ]" &&
	ok "198.51.100.1 answers as A (through ra)" || fail "www via ra" "$(http_who c http://198.51.100.1:8080)"
check_eq "status (ca): owns the default route" true "$(lsp ca status --json | jq -r .multinet.owns_default_route)"

out=$(lsp cb exit-node use rb) && ok "cb: exit-node use rb" || fail "cb use rb" "$out"
grep -q "withdrew profile '$(profile_of ca)'" <<<"$out" && ok "exit-node use withdrew ca's default route at once" || fail "withdraw message" "$out"
wait_for 8 "cb's default route" has_default "$tb" "$(ifname_of cb)" && ok "cb's table gets the default route" ||
	fail "cb default" "$(nsx c ip route show table "$tb")" "$(node_log cb)"
wait_for 8 "ca's default withdrawn" no_default "$ta" && ok "ca's default route withdrawn" || fail "ca withdrawn" "$(nsx c ip route show table "$ta")"
sleep 3 # ca's agent does not put it back
no_default "$ta" && ok "ca's agent keeps it withdrawn" || fail "ca re-added its default" "$(node_log ca)"
check_eq "cb owns the default route" "$(profile_of cb)" "$(owner)"
check_eq "the internet goes through cb" "$(ifname_of cb)" "$(via)"
wait_for 5 "www via rb" sh -c "[ \"\$(nsenter --net=/run/netns/$(nsname c) curl -s --max-time 2 http://198.51.100.1:8080/who)\" = B ]" &&
	ok "198.51.100.1 answers as B (through rb)" || fail "www via rb" "$(http_who c http://198.51.100.1:8080)"
lsp ca status --json | jqe '.exit_reason | contains("belongs to profile")' >/dev/null &&
	ok "status (ca) says who owns the default route" || fail "ca exit_reason" "$(lsp ca status --json | jq .exit_reason)"
lsp ca status | grep -q "^default route: $(profile_of cb)" && ok "status text shows the owner" || fail "status text" "$(lsp ca status)"

# control traffic stays outside the exit tunnel (marked sockets)
lsp ca netmap --fetch --json >/dev/null && ok "ca reaches its control plane while cb's exit owns the default" || fail "ca control"
lsp cb netmap --fetch --json >/dev/null && ok "cb reaches its control plane through its own exit setup" || fail "cb control"

lsp cb exit-node use none >/dev/null && ok "cb: exit-node use none" || fail "cb none"
wait_for 8 "cb's default removed" no_default "$tb" && ok "cb's default route removed" || fail "cb none" "$(nsx c ip route show table "$tb")"
wait_for 8 "ca takes it back" has_default "$ta" "$(ifname_of ca)" && ok "ca (still choosing ra) gets the default route back" ||
	fail "ca back" "$(nsx c ip route show table "$ta")" "$(node_log ca)"
check_eq "ca owns the default route again" "$(profile_of ca)" "$(owner)"
lsp ca exit-node use none >/dev/null
wait_for 8 "no default anywhere" sh -c "! nsenter --net=/run/netns/$(nsname c) ip route show table all | grep -q '^default dev ls-'" &&
	ok "none everywhere: no default route in any profile" || fail "defaults left" "$(nsx c ip route show table all | grep default)"
check_eq "nobody owns the default route at the end" none "$(owner)"
tap_done
