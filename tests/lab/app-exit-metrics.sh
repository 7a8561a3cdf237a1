#!/usr/bin/env bash
# app-exit-metrics: exit node latency. `exit-node list' measures each exit's round-trip
# time through the tunnel; e1's underlay is slowed with a token bucket (tbf: 8 kbit/s,
# so the second of three echo replies queues ~80 ms, the third ~220 ms), e2's is not. `use auto --by
# latency' makes the agent take the faster exit, and follow when the slow one moves.
# `--by first' goes back to the first exit by id.
#
#        e1 (exit, tbf on eth0)    e2 (exit)
#          | 10.99.0.21              | 10.99.0.22
#          +-------- br0 (ns inet: 10.99.0.1, control :8080) --------+
#                                     |
#                                  c 10.99.0.11
source "$(dirname "$0")/lib.sh"
lab_init
export LIGHTSCALE_EXIT_PROBE_INTERVAL=3

lab_star c e1=21 e2=22
lab_exits_up
# the first probe also makes the handshakes
ping_within c "$(node_addr e1 4)" 5 && ping_within c "$(node_addr e2 4)" 5 || lab_die "overlay to the exits"

slow() { nsx "$1" tc qdisc replace dev eth0 root tbf rate 8kbit burst 200 latency 5s; }
fast() { nsx "$1" tc qdisc del dev eth0 root 2>/dev/null; true; }
lat() { jq -r --arg n "$2" '.exit_nodes[] | select(.name == $n) | .latency_ms' <<<"$1"; }
slow e1

l=$(lsx c exit-node list --json)
l1=$(lat "$l" e1) l2=$(lat "$l" e2)
lab_log "latency e1 $l1 ms, e2 $l2 ms"
[[ $l1 =~ ^[0-9.]+$ && $l2 =~ ^[0-9.]+$ ]] && ok "list: both exits have a latency" || fail "latency numbers" "$l"
awk -v a="$l1" -v b="$l2" 'BEGIN { exit !(a > b + 20) }' && ok "list: the slowed exit e1 is slower than e2 by > 20 ms" ||
	fail "e1 slower" "$l"
check_eq "list: three echoes answered by e2, to its overlay address" "3 $(node_addr e2 4)" \
	"$(jq -r '.exit_nodes[] | select(.name == "e2") | "\(.probe.received) \(.probe.address)"' <<<"$l")"
check_eq "list: auto picks by first (default)" first "$(jq -r .auto_by <<<"$l")"
lsx c exit-node list | grep -Eq "e2 .*[0-9.]+ ms" && ok "list text shows the latency" || fail "list text" "$(lsx c exit-node list)"
check_eq "list --no-probe: no latency" null "$(lsx c exit-node list --no-probe --json | jq -r '.exit_nodes[0].latency_ms')"

out=$(lsx c exit-node use auto --by fastest 2>&1) && fail "--by fastest is refused" ||
	{ [[ $out == *fastest* ]] && ok "--by fastest refused, naming it" || fail "--by message" "$out"; }
out=$(lsx c exit-node use e1 --by latency 2>&1) && fail "--by with a named exit is refused" || ok "--by goes with auto only"

lsx c exit-node use auto --by latency >/dev/null && ok "exit-node use auto --by latency" || fail "use auto --by latency"
check_eq "the policy is kept in the profile" latency "$(jq -r .auto "$LAB_DIR/c/$(profile_of c)/exit-policy.json")"
l=$(lsx c exit-node list --json)
check_eq "list: auto by latency selects e2" "e2 latency" \
	"$(jq -r '"\([.exit_nodes[] | select(.selected) | .name][0]) \(.auto_by)"' <<<"$l")"
agent_exit() { lsx c status --json | jq -r '.exit_node.name // "none"'; }
wait_for 15 "agent uses e2" sh -c "[ \"\$(nsenter --net=/run/netns/$(nsname c) $LS status --json --profile $(profile_of c) --state-dir $LAB_DIR/c | jq -r '.exit_node.name // empty')\" = e2 ]" &&
	ok "the agent's exit node is the faster e2" || fail "agent exit e2" "$(agent_exit)" "$(node_log c)"

# the slow one moves: e2 slowed, e1 fast
fast e1
slow e2
wait_for 25 "agent moves to e1" sh -c "[ \"\$(nsenter --net=/run/netns/$(nsname c) $LS status --json --profile $(profile_of c) --state-dir $LAB_DIR/c | jq -r '.exit_node.name // empty')\" = e1 ]" &&
	ok "e2 slowed: the agent moves to e1" || fail "agent exit e1" "$(agent_exit)" "$(node_log c)"
fast e2

lsx c exit-node use auto --by first >/dev/null
check_eq "--by first: policy first" first "$(lsx c exit-node list --json --no-probe | jq -r .auto_by)"
first=$(lsx c exit-node list --json --no-probe | jq -r '[.exit_nodes[]] | min_by(.id) | .name')
wait_for 10 "agent uses the first exit" sh -c "[ \"\$(nsenter --net=/run/netns/$(nsname c) $LS status --json --profile $(profile_of c) --state-dir $LAB_DIR/c | jq -r '.exit_node.name // empty')\" = $first ]" &&
	ok "--by first: the agent uses the first exit by id ($first)" || fail "agent first" "$(agent_exit)"
tap_done
