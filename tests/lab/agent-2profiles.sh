#!/usr/bin/env bash
# agent-2profiles: one machine in two networks (two profiles, two agents, two
# interfaces, distinct tables, fwmarks and rule priorities); each reaches its own
# network; taking one profile down leaves the other untouched.
#
#   n2 (home) 10.99.0.12 --+                     +-- n3 (work) 10.99.0.13
#                          br0 (ns inet, control 10.99.0.1:8080)
#                                    |
#                 n1 10.99.0.11: profiles "home" (ls-...h) and "work" (ls-...w)
source "$(dirname "$0")/lib.sh"
lab_init

lab_ns inet
lab_bridge inet br0 10.99.0.1/24
for i in 1 2 3; do lab_node n$i inet br0 10.99.0.1$i/24; done
control_start inet 10.99.0.1 8080
net_create home
net_create work
th=$(token_create home 5)
tw=$(token_create work 5)

# n1 carries two profiles: its own state dirs and names (n1h, n1w) in namespace n1
LAB_NODES+=(n1h n1w)
NODE_NS[n1h]=n1 NODE_NS[n1w]=n1
p1h=$(profile_of n1h) p1w=$(profile_of n1w)
mkdir -p "$LAB_DIR/n1h" "$LAB_DIR/n1w"
lsp() { local p=$1 c=$2; shift 2; nsx n1 "$LS" "$c" --profile "$(profile_of "$p")" --state-dir "$LAB_DIR/$p" "$@"; }
lsp n1h init --control "$CONTROL_URL" --token "$th" --hostname n1 --listen-port 51820 >/dev/null
lsp n1w init --control "$CONTROL_URL" --token "$tw" --hostname n1 --listen-port 51821 >/dev/null
lsp n1h register --json >"$LAB_DIR/n1h.register.json" || lab_die "register home"
lsp n1w register --json >"$LAB_DIR/n1w.register.json" || lab_die "register work"
node_init n2 "$th"
node_init n3 "$tw"

bg n1 "$LAB_DIR/n1h.agent.log" "$LS" agent --foreground --profile "$p1h" --state-dir "$LAB_DIR/n1h" --apply-routes
AGENT_PID[n1h]=$BG_PID
bg n1 "$LAB_DIR/n1w.agent.log" "$LS" agent --foreground --profile "$p1w" --state-dir "$LAB_DIR/n1w" --apply-routes
AGENT_PID[n1w]=$BG_PID
agent_start n2
agent_start n3
wait_for 15 "home peer" sh -c "[ \"\$(nsenter --net=/run/netns/$(nsname n1) $LS status --profile $p1h --state-dir $LAB_DIR/n1h --json | jq '[.peers[] | select(.configured)] | length')\" = 1 ]" &&
	ok "home profile configured its peer" || fail "home peer" "$(tail "$LAB_DIR/n1h.agent.log")"
wait_for 15 "work peer" sh -c "[ \"\$(nsenter --net=/run/netns/$(nsname n1) $LS status --profile $p1w --state-dir $LAB_DIR/n1w --json | jq '[.peers[] | select(.configured)] | length')\" = 1 ]" &&
	ok "work profile configured its peer" || fail "work peer" "$(tail "$LAB_DIR/n1w.agent.log")"
# the two profiles do not share an interface, table, fwmark or rule priority (allocated
# through the namespace's multi-network state when the data plane came up)
ch=$(jq -c '[.interface, .table, .fwmark, .rule_priority]' "$LAB_DIR/n1h/$p1h/config.json")
cw=$(jq -c '[.interface, .table, .fwmark, .rule_priority]' "$LAB_DIR/n1w/$p1w/config.json")
jq -e -n --argjson a "$ch" --argjson b "$cw" '[range(0; 4) | select($a[.] == $b[.])] | length == 0' >/dev/null &&
	ok "profiles get distinct interface, table, fwmark, rule priorities ($ch vs $cw)" || fail "distinct settings" "$ch" "$cw"
state=/run/lightscale/multinet-$(stat -L -c %i /run/netns/$(nsname n1)).json
check_eq "the shared state records both profiles with their tables" "$(jq -c '[.[1]]' <<<"$ch")$(jq -c '[.[1]]' <<<"$cw")" \
	"$(jq -c --arg h "$p1h" '[.profiles[$h].table]' "$state")$(jq -c --arg w "$p1w" '[.profiles[$w].table]' "$state")"
check_eq "home: its peer is n2" n2 "$(lsp n1h status --json | jq -r '.peers[0].name')"
check_eq "work: its peer is n3" n3 "$(lsp n1w status --json | jq -r '.peers[0].name')"
ping_within n1 "$(node_addr n2 4)" 5 && ok "n1 reaches n2 over home" || fail "n1 -> n2"
ping_within n1 "$(node_addr n3 4)" 5 && ok "n1 reaches n3 over work" || fail "n1 -> n3"
ping_within n2 "$(jq -r '.node.addresses[0]' "$LAB_DIR/n1h.register.json")" 5 && ok "n2 reaches n1's home address" || fail "n2 -> n1"
ping_ok n2 "$(node_addr n3 4)" && fail "n2 (home) cannot reach n3 (work)" || ok "n2 (home) cannot reach n3 (work)"

# one profile down: the other keeps working
kill "${AGENT_PID[n1w]}"; wait "${AGENT_PID[n1w]}" 2>/dev/null
lsp n1w wg-down && ok "work profile down" || fail "work down"
check_eq "wg-down released work's entry in the shared state" null "$(jq -c --arg w "$p1w" '.profiles[$w]' "$state")"
nsx n1 ip link show "$(ifname_of n1w)" >/dev/null 2>&1 && fail "work interface removed" || ok "work interface removed"
nsx n1 ip link show "$(ifname_of n1h)" >/dev/null 2>&1 && ok "home interface untouched" || fail "home interface"
ping_ok n1 "$(node_addr n2 4)" && ok "home still carries traffic" || fail "home after work down"
# a crashed agent (SIGKILL) keeps its slot while its data plane is up
kill -9 "${AGENT_PID[n1h]}"; wait "${AGENT_PID[n1h]}" 2>/dev/null
check_eq "a killed agent's entry stays while its interface is up" "$(jq -c '.[1]' <<<"$ch")" \
	"$(jq -c --arg h "$p1h" '.profiles[$h].table' "$state")"
prio_h=$(jq -r .rule_priority "$LAB_DIR/n1h/$p1h/config.json")
check_eq "home's rules untouched (to control, suppress, not fwmark)" 3 \
	"$(nsx n1 ip -j rule show | jq --argjson p "$prio_h" '[.[] | select(.priority >= $p and .priority <= $p + 2)] | length')"
tap_done
