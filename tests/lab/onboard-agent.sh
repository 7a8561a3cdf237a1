#!/usr/bin/env bash
# onboard-agent: a node without a token, run by the agent. The agent files one device
# request (its log names the approval link), keeps it (no new link every retry) while it
# waits, and once an admin admits the device through the admin API it registers, gets its
# netmap and reaches the node that joined with a token. Nothing exists for the waiting
# device before that: no node, no address, no peer in n1's netmap.
#
#        n1 10.99.0.11 (token)          n2 10.99.0.12 (no token: approval)
#                 +------------ br0 (ns inet) ------------+
#                           10.99.0.1
#                 lightscale-control :8080 (HTTPS, + PostgreSQL)
source "$(dirname "$0")/lib.sh"
lab_init
lab_star n1 n2
node_init n1 "$LAB_TOK"
agent_start n1

# n2: only the deployment's identity and the server's pin
IDENT=$(tr -d '\n' <"$CONTROL_DIR/identity.pub")
LAB_NODES+=(n2)
mkdir -p "$LAB_DIR/n2"
lsx n2 init --control "$CONTROL_URL" --pin "$CONTROL_PIN" --identity "$IDENT" --hostname n2 --json >"$LAB_DIR/n2.init.json" ||
	lab_die "init n2 without a token"
check_eq "init without a token: pinned, identity kept, no token" "true true false" \
	"$(jq -r '"\(.pinned) \(.identity) \(.token)"' "$LAB_DIR/n2.init.json")"
bg n2 "$LAB_DIR/n2.agent.log" env LIGHTSCALE_LOG=info "$LS" agent --foreground --profile "$(profile_of n2)" \
	--state-dir "$LAB_DIR/n2" --poll-wait 30
AGENT_PID[n2]=$BG_PID
wait_for 20 "n2's agent asks for approval" grep -q "approval at https://10.99.0.1:8080/approve/" "$LAB_DIR/n2.agent.log" &&
	ok "the agent files a request and logs its approval link" || fail "agent approval link" "$(node_log n2)"
sleep 12 # the agent retries every 10 s
adm() { control_curl -H "Authorization: Bearer $(cat "$CONTROL_DIR/admin.key")" "$@"; }
devs=$(adm "$CONTROL_URL/v1/admin/devices")
check_eq "while waiting it keeps its one request (no new link per retry)" "1 waiting n2" \
	"$(jq -r '"\(.devices | length) \(.devices[0].status) \(.devices[0].hostname)"' <<<"$devs")"
check_eq "no node and no address for the waiting device" "1 0" \
	"$(lsc node list --network home --json | jq '.nodes | length') $(lsx n1 status --json | jq '.peers | length')"
RID=$(jq '.devices[0].id' <<<"$devs")
out=$(adm -d '{"network":"home"}' "$CONTROL_URL/v1/admin/devices/$RID/approve")
check_eq "the admin admits it to home" "n2 active" "$(jq -r '"\(.node.name) \(.node.status)"' <<<"$out")"
n2v4=$(jq -r '.node.addresses[0]' <<<"$out")
wait_for 30 "n2 registered" grep -q "registered as node" "$LAB_DIR/n2.agent.log" &&
	ok "the agent picks its node up" || fail "agent registers" "$(node_log n2)"
wait_for 30 "n2 configures n1" peer_count n2 1 && ok "n2's agent configured n1" || fail "n2 peer" "$(node_log n2)"
ping_within n1 "$n2v4" 20 && ok "n1 reaches the admitted device over the overlay ($n2v4)" ||
	fail "ping n1 -> n2" "$(node_log n1)" "$(node_log n2)"
tap_done
