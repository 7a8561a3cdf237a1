#!/usr/bin/env bash
# trust-audit: agents check every netmap against the signed audit log (userspace/trust.c).
# A restored older control database (a rolled-back log) makes the agents refuse its
# netmaps and keep their data plane; a peer key injected into the database outside the
# log is refused too.
#
#   n1 10.99.0.11 ---- br0 (ns inet, control 10.99.0.1:8080) ---- n2 10.99.0.12
source "$(dirname "$0")/lib.sh"
lab_init
lab_star n1 n2 n3
lab_up n1 n2
ping_within n1 "$(node_addr n2 4)" 10 && ok "ping n1 -> n2" || fail "ping" "$(node_log n1)"
tj=$(find "$LAB_DIR/n1" -name trust.json | head -1)
check_eq "n1 trusts the deployment's identity (first use)" "$(tr -d '\n' <"$CONTROL_DIR/identity.pub")" \
	"$(jq -r .identity "$tj" 2>/dev/null)"

out=$(lsx n2 audit verify)
check "lightscale audit verify: verified" grep -q "^audit: verified: head [0-9]* signed by" <<<"$out"
# a backup of the control database, then more events
control_stop
cp -a "$CONTROL_DIR/pg" "$LAB_DIR/pg.bak"
control_start inet 10.99.0.1 8080
node_init n3 "$LAB_TOK"
wait_for 40 "n1 sees n3" peer_count n1 2 || fail "n1 sees n3" "$(node_log n1)"
seen=$(jq .head.seq "$tj")
lab_log "n1 accepted audit head $seen"

# restore the older database: its log is a prefix of what the agents saw
control_stop
rm -rf "$CONTROL_DIR/pg"
cp -a "$LAB_DIR/pg.bak" "$CONTROL_DIR/pg"
control_start inet 10.99.0.1 8080
wait_for 40 "n1 refuses the rolled-back log" grep -q "netmap refused (nothing changed): the audit log was rolled back" \
	"$LAB_DIR/n1.agent.log" && ok "agents refuse the netmap of a restored older database (rolled-back log)" ||
	fail "rollback refused" "$(node_log n1)"
check_eq "n1 keeps its data plane (n3 still configured)" 2 "$(lsx n1 status --json | jq '.peers | length')"
check_eq "n1's trusted head did not move back" "$seen" "$(jq .head.seq "$tj")"
ping_ok n1 "$(node_addr n2 4)" && ok "traffic continues meanwhile" || fail "ping during refusal"
out=$(lsx n2 audit verify --json)
check_eq "lightscale audit verify refuses the rolled-back log (exit 3)" "3 false" "$? $(jq .ok <<<"$out")"
check "and says why" jq -e '.error | test("rolled back")' <<<"$out"
tap_done
