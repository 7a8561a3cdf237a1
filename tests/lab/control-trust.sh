#!/usr/bin/env bash
# Control-plane trust, negative paths first: admin approval of nodes (pending nodes see
# nothing and are seen by no one), reject, revoke (peers drop the node at their long-poll,
# its requests get 403), route approval (unapproved routes and exits are not in netmaps),
# ACL policies compiled into netmaps (visibility, packet_filter, acl test, a rejected
# policy keeps the old one), the audit log (hash chain, signed heads, a tampered row is
# named by `audit verify'), and a table of malformed admin requests changing nothing.
#
#   ls-nodecli A..H ── HTTPS 127.0.0.1:<any> (pinned) ── lightscale-control serve ── postgres (DIR/pg)
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh
source tests/control/pg.sh

T=$(mktemp -d /tmp/lsc-trust-XXXXXX)
D=$T/state
cleanup() {
	if [ "$_tap_failed" -gt 0 ]; then
		echo "# serve.log:"
		grep -v debug "$D/serve.log" | tail -25 | sed 's/^/#   /'
	fi
	lsc_stop main
	lsc_stop tls
	rm -rf "$T"
}
trap cleanup EXIT

C() { "$LSC_BIN" "$@" --state-dir "$D"; }
N() { "$LSC_NODECLI" "$@"; }
api() { N raw -s "$U" --admin-key-file "$D/admin.key" "$@"; }
sql() { psql -X -q -t -A -h "$D/run" -U lightscale -d lightscale -c "$1"; }
peers() { N netmap -s "$U" -k "$T/$1" | jq -c '[.peers[].name] | sort'; }
status_of() { echo "${1%% *}"; }

lsc_serve main --state-dir "$D" || { fail "server starts"; exit 1; }
U=$SRV_URL_main
ok "server starts"
check_eq "identity key made on first start (0600) with its public half" "600 44" \
	"$(stat -c %a "$D/identity.key") $(tr -d '\n' <"$D/identity.pub" | wc -c)"

for n in a b c d e f g h e2 r1 r2; do N keygen "$T/$n"; done

# ---- admin approval
C network create appr --require-approval >/dev/null
check_eq "network create --require-approval" true "$(C network show appr --json | jq .require_approval)"
TOK=$(C token create --network appr --uses 10 --json | jq -r .token)
A=$(N register -s "$U" -k "$T/a" -t "$TOK" -H alpha | jq .node.id)
B=$(N register -s "$U" -k "$T/b" -t "$TOK" -H beta | jq .node.id)
check_eq "a new node of an approval network is pending" "pending pending" \
	"$(C node list --network appr --json | jq -r '[.nodes[].status] | join(" ")')"
m=$(N netmap -s "$U" -k "$T/a")
check_eq "pending node: its netmap has its status and no peers" "pending 0" \
	"$(echo "$m" | jq -r '"\(.self.status) \(.peers | length)"')"
C node approve "$A" >/dev/null
check_eq "approved A does not see pending B" "[]" "$(peers a)"
check_eq "pending B does not see approved A" "[]" "$(peers b)"
VA=$(N netmap -s "$U" -k "$T/a" | jq .version)
N netmap -s "$U" -k "$T/a" --since "$VA" --wait 20 >"$T/lp" &
lp=$!
sleep 0.5
C node approve "$B" >/dev/null
wait $lp
check_eq "approving B wakes A's long-poll with B" '["beta"]' "$(jq -c '[.peers[].name]' "$T/lp")"
VB=$(jq .version <<<"$m")
mb=$(N netmap -s "$U" -k "$T/b" --since "$VB")
check_eq "B's next netmap after approval is full and has A" "true [\"alpha\"] active" \
	"$(echo "$mb" | jq -c -r '"\(.full) \([.peers[].name]) \(.self.status)"')"
out=$(C node approve "$B" --json | jq -r .status)
check_eq "approving again changes nothing" active "$out"

Cn=$(N register -s "$U" -k "$T/c" -t "$TOK" -H gamma | jq .node.id)
C node reject "$Cn" >/dev/null
check_eq "rejected node: status rejected" rejected "$(C node show "$Cn" --json | jq -r .status)"
out=$(N netmap -s "$U" -k "$T/c")
check "rejected node's requests: 403 node_revoked" grep -q "^error 403 node_revoked" <<<"$out"
check_eq "no one ever saw the rejected node" '["beta"]' "$(peers a)"
out=$(C node approve "$Cn" 2>&1)
check "a rejected node cannot be approved (409)" grep -q "conflict" <<<"$out"
out=$(C node reject "$A" 2>&1)
check "an active node cannot be rejected (revoke it)" grep -q "revoke it instead" <<<"$out"

# ---- revocation: peers drop the node within one long-poll, its requests get 403
VA=$(N netmap -s "$U" -k "$T/a" | jq .version)
N netmap -s "$U" -k "$T/a" --since "$VA" --wait 20 >"$T/lp" &
lp=$!
sleep 0.5
t0=$(lsc_ms)
C node revoke "$B" >/dev/null
wait $lp
t1=$(lsc_ms)
check_eq "revoking B: A's long-poll answers with B removed" "[$B]" "$(jq -c .peers_removed "$T/lp")"
echo "# revocation reached A's long-poll in $((t1 - t0)) ms"
out=$(N netmap -s "$U" -k "$T/b")
check "revoked node's signed requests: 403 node_revoked" grep -q "^error 403 node_revoked" <<<"$out"
out=$(N heartbeat -s "$U" -k "$T/b" 2>&1)
check "revoked node's heartbeat: 403" grep -q "403" <<<"$out"
check_eq "node list shows revoked" revoked "$(C node show "$B" --json | jq -r .status)"
check_eq "A's full map no longer has B" "[]" "$(peers a)"

# ---- token revocation takes effect for the next registration
TR_J=$(C token create --network appr --json)
C token revoke "$(echo "$TR_J" | jq -r .id)" >/dev/null
out=$(N register -s "$U" -k "$T/h" -t "$(echo "$TR_J" | jq -r .token)" -H h)
check "revoked token refused" grep -q "token_revoked" <<<"$out"

# ---- route approval
C network set appr --route-approval >/dev/null
check_eq "network set --route-approval" "true true" "$(C network show appr --json | jq -r '"\(.require_approval) \(.route_approval)"')"
Dn=$(N register -s "$U" -k "$T/d" -t "$TOK" -H delta -r 10.1.0.0/24 -r 0.0.0.0/0 | jq .node.id)
C node approve "$Dn" >/dev/null
pd() { N netmap -s "$U" -k "$T/a" | jq -c '.peers[] | select(.name == "delta") | [.routes, .exit_node, (.allowed_ips | length)]'; }
check_eq "unapproved route and exit: not in A's netmap" '[[],false,2]' "$(pd)"
check_eq "route list: two unapproved routes" "false false" \
	"$(C route list --network appr --json | jq -r '[.routes[].approved] | map(tostring) | join(" ")')"
C route approve "$Dn" 10.1.0.0/24 >/dev/null
check_eq "approved subnet route: in routes and allowed_ips, still no exit" '[["10.1.0.0/24"],false,3]' "$(pd)"
C route approve "$Dn" 0.0.0.0/0 >/dev/null
check_eq "approved exit: exit_node, never in allowed_ips" '[["0.0.0.0/0","10.1.0.0/24"],true,3]' "$(pd)"
C route reject "$Dn" 0.0.0.0/0 >/dev/null
check_eq "rejected exit: no longer an exit" '[["10.1.0.0/24"],false,3]' "$(pd)"
out=$(C route approve "$Dn" 10.9.0.0/16 2>&1)
check "approving a route the node does not advertise: 409" grep -q "does not advertise" <<<"$out"
# auto-approval by the policy (tag and prefix)
cat >"$T/auto.json" <<'P'
{"rules": [{"src": ["*"], "dst": ["*"]}],
 "auto_approve": {"routes": {"10.50.0.0/16": ["tag:router"]}, "exit_node": ["tag:router"]}}
P
C acl set --network appr "$T/auto.json" >/dev/null
TRt=$(C token create --network appr --tag router --json | jq -r .token)
R1=$(N register -s "$U" -k "$T/r1" -t "$TRt" -H rtr -r 10.50.1.0/24 -r 10.60.0.0/24 -r 0.0.0.0/0 | jq .node.id)
R2=$(N register -s "$U" -k "$T/r2" -t "$TOK" -H untagged -r 10.50.2.0/24 | jq .node.id)
C node approve "$R1" >/dev/null
C node approve "$R2" >/dev/null
check_eq "auto_approve: the tagged node's route inside the prefix and its exit are approved, not the other" \
	"0.0.0.0/0:true 10.50.1.0/24:true 10.50.2.0/24:false 10.60.0.0/24:false" \
	"$(C route list --network appr --json | jq -r --argjson a "$R1" --argjson b "$R2" \
		'[.routes[] | select(.node == $a or .node == $b) | "\(.prefix):\(.approved)"] | sort | join(" ")')"
check_eq "auto-approved routes are in A's netmap, the exit too" '[["0.0.0.0/0","10.50.1.0/24"],true]' \
	"$(N netmap -s "$U" -k "$T/a" | jq -c '.peers[] | select(.name == "rtr") | [.routes, .exit_node]')"
check "auto-approval is audited" grep -q route_auto_approve <<<"$(C audit list --json | jq -r '.entries[].type')"
C node delete "$R1" >/dev/null
C node delete "$R2" >/dev/null
C acl delete --network appr >/dev/null
C network set appr --no-route-approval >/dev/null
check_eq "route approval off: every advertised route counts again" '[["0.0.0.0/0","10.1.0.0/24"],true,3]' "$(pd)"

# ---- ACL policy end to end into netmaps
C network create acl >/dev/null
TW=$(C token create --network acl --tag web --json | jq -r .token)
TD=$(C token create --network acl --tag db --json | jq -r .token)
TM=$(C token create --network acl --json | jq -r .token)
N register -s "$U" -k "$T/e" -t "$TW" -H web1 >/dev/null
N register -s "$U" -k "$T/f" -t "$TD" -H db1 >/dev/null
N register -s "$U" -k "$T/g" -t "$TM" -H misc >/dev/null
check_eq "no policy: allow all (misc sees both)" '["db1","web1"]' "$(peers g)"
out=$(C acl test --network acl --src misc --dst db1:5432/tcp)
check "no policy: acl test allows" grep -q "allowed (no policy" <<<"$out"
cat >"$T/pol.json" <<'P'
{"groups": {"frontends": ["tag:web"]},
 "rules": [{"src": ["group:frontends"], "dst": ["tag:db"], "ports": ["5432"], "proto": "tcp"}]}
P
C acl set --network acl "$T/pol.json" >/dev/null && ok "acl set" || fail "acl set"
check_eq "web1 sees db1 only" '["db1"]' "$(peers e)"
check_eq "db1 sees web1 (visibility is symmetric)" '["web1"]' "$(peers f)"
check_eq "misc sees no one (default deny)" '[]' "$(peers g)"
pf=$(N netmap -s "$U" -k "$T/f" | jq -c .packet_filter)
w4=$(C node list --network acl --json | jq -r '.nodes[] | select(.name == "web1") | .addresses[0]')
check_eq "db1's packet filter: web1 to port 5432/tcp" "[\"$w4/32\"] [\"5432\"] tcp" \
	"$(echo "$pf" | jq -r -c '.[0] | "\(.src | map(select(contains(".")))) \(.ports) \(.proto)"')"
check_eq "misc's packet filter is empty" "[]" "$(N netmap -s "$U" -k "$T/g" | jq -c .packet_filter)"
out=$(C acl test --network acl --src web1 --dst db1:5432/tcp)
check "acl test: web1 -> db1:5432/tcp allowed by rules[0]" grep -q "allowed by rules\[0\]" <<<"$out"
C acl test --network acl --src db1 --dst web1:22/tcp >/dev/null
check_eq "acl test: db1 -> web1:22 denied (exit 3)" 3 $?
C acl test --network acl --src web1 --dst db1:5433/tcp >/dev/null
check_eq "acl test: another port denied" 3 $?
echo '{"rules": [{"src": ["*"], "dst": ["*"], "ports": ["70000"]}]}' >"$T/bad.json"
out=$(C acl set --network acl "$T/bad.json" 2>&1)
check "invalid policy refused naming rule index and field" grep -q "rules\[0\].ports\[0\]" <<<"$out"
echo '{"rules": [' >"$T/bad2.json"
out=$(C acl set --network acl "$T/bad2.json" 2>&1)
check "policy that is not JSON refused" grep -q "bad_policy" <<<"$out"
check_eq "a refused policy leaves the old one active" "$(jq -c -S . "$T/pol.json")" \
	"$(C acl get --network acl --json | jq -c -S .policy)"
check_eq "and the netmaps unchanged" '[]' "$(peers g)"
C acl delete --network acl >/dev/null
check_eq "acl delete: allow all again" '["db1","web1"]' "$(peers g)"
check_eq "no policy: no packet_filter" null "$(N netmap -s "$U" -k "$T/g" | jq -c .packet_filter)"

# ---- malformed admin requests: 4xx, nothing changed
ver_before=$(C network show appr --json | jq .version)
audit_before=$(sql "SELECT max(seq) FROM audit_log")
bad=0
while IFS='|' read -r method path body want; do
	[ -n "$method" ] || continue
	r=$(api "$method" "$path" "$body")
	st=$(status_of "$r")
	if [ "$st" != "$want" ]; then
		bad=1
		echo "# $method $path $body -> $r (want $want)"
	fi
done <<EOF2
PATCH|/v1/admin/networks/appr|{"require_approval": "yes"}|400
PATCH|/v1/admin/networks/appr|{"require_approval": true, "x": 1}|400
PATCH|/v1/admin/networks/appr|{}|400
PATCH|/v1/admin/networks/appr|[true]|400
PATCH|/v1/admin/networks/appr|{"require_approval": tru|400
PATCH|/v1/admin/networks/appr%27%3BDROP%20TABLE%20nodes%3B--|{"require_approval": true}|404
POST|/v1/admin/nodes/$Dn/approve-routes|{"routes": "10.1.0.0/24"}|400
POST|/v1/admin/nodes/$Dn/approve-routes|{"routes": ["10.1.0.1/24"]}|400
POST|/v1/admin/nodes/$Dn/approve-routes|{"routes": []}|400
POST|/v1/admin/nodes/$Dn/approve-routes|{"routes": [1]}|400
POST|/v1/admin/nodes/$Dn/approve-routes|{"routes": ["'); DELETE FROM nodes; --"]}|400
POST|/v1/admin/nodes/1%3BDROP%20TABLE%20nodes/approve||404
POST|/v1/admin/nodes/99999999/approve||404
POST|/v1/admin/nodes/-1/revoke||404
POST|/v1/admin/nodes/$Dn/explode||404
GET|/v1/admin/nodes/$Dn/approve||405
PUT|/v1/admin/networks/appr/acl|{"rules": [{"src": 5}]}|400
PUT|/v1/admin/networks/appr/acl|"policy"|400
PUT|/v1/admin/networks/nope/acl|{"rules": []}|404
POST|/v1/admin/networks/acl/acl-test|{"src": 1, "dst": "db1"}|400
POST|/v1/admin/networks/acl/acl-test|{"src": "web1", "dst": "db1", "port": 70000}|400
POST|/v1/admin/networks/acl/acl-test|{"src": "web1", "dst": "db1", "proto": "sctp"}|400
POST|/v1/admin/networks/acl/acl-test|{"src": "web1' OR '1'='1", "dst": "db1"}|404
EOF2
[ $bad = 0 ] && ok "malformed admin requests: all 4xx as expected" || fail "malformed admin requests"
{ printf '{"x": "'; head -c 3000000 /dev/zero | tr '\0' 'a'; printf '"}'; } >"$T/huge.json"
st=$(lsc_curl "$D" -s -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $(cat "$D/admin.key")" \
	--data-binary @"$T/huge.json" "$U/v1/admin/networks/appr/acl")
check_eq "huge body: 413" 413 "$st"
check_eq "nothing changed: network version" "$ver_before" "$(C network show appr --json | jq .version)"
check_eq "nothing changed: audit log" "$audit_before" "$(sql "SELECT max(seq) FROM audit_log")"
check_eq "nothing changed: tables intact" 7 "$(sql "SELECT count(*) FROM nodes")"

# ---- admin keys: create, list, revoke, expire, rotate
check_eq "admin-key list: the first key, valid and current" "valid true" \
	"$(C admin-key list --json | jq -r '.admin_keys[0] | "\(.status) \(.current)"')"
k2=$(C admin-key create --name ci --ttl 1h --json)
echo "$k2" | jq -r .key >"$T/k2"
check_eq "a new admin key works" "ci" "$(C admin-key list --json --admin-key-file "$T/k2" | jq -r '.admin_keys[] | select(.current) | .name')"
C admin-key revoke "$(echo "$k2" | jq -r .id)" >/dev/null
out=$(C network list --admin-key-file "$T/k2" 2>&1)
check "a revoked admin key: 401 bad_admin_key" grep -q "bad_admin_key" <<<"$out"
k3=$(C admin-key create --name short --ttl 60 --json)
echo "$k3" | jq -r .key >"$T/k3"
sql "UPDATE admin_keys SET expires_at = now() WHERE substr(encode(hash, 'hex'), 1, 12) = '$(echo "$k3" | jq -r .id)'" >/dev/null
out=$(C network list --admin-key-file "$T/k3" 2>&1)
check "an expired admin key: 401" grep -q "bad_admin_key" <<<"$out"
check_eq "admin-key list shows revoked and expired" "expired revoked" \
	"$(C admin-key list --json | jq -r '[.admin_keys[] | select(.name != "initial") | .status] | sort | join(" ")')"
out=$(C admin-key revoke "$(C admin-key list --json | jq -r '.admin_keys[] | select(.current) | .id')" 2>&1)
check "the last valid admin key cannot be revoked (409)" grep -q "last valid one" <<<"$out"
cp "$D/admin.key" "$T/old.key"
C admin-key rotate >/dev/null && ok "admin-key rotate" || fail "admin-key rotate"
out=$(C network list --admin-key-file "$T/old.key" 2>&1)
check "after rotate the old key is refused" grep -q "bad_admin_key" <<<"$out"
check "and the new one (written to DIR/admin.key) works" C network list
check_eq "admin key events are audited" "admin_key_create admin_key_revoke" \
	"$(C audit list --json | jq -r '[.entries[].type | select(startswith("admin_key"))] | unique | join(" ")')"

# ---- audit log
types=$(C audit list --json | jq -r '[.entries[].type] | unique | join(" ")')
for t in network_create token_create token_revoke register approve reject revoke route_approve route_reject network_set acl; do
	grep -qw "$t" <<<"$types" || { fail "audit log has $t events" "$types"; continue; }
done
ok "audit log records network, token, register, approve, reject, revoke, route, ACL events"
logged=$(C audit list --json | jq -r '.entries[] | select(.type == "register") | .data | fromjson | .wg_key')
missing=0
for k in $(sql "SELECT wg_key FROM nodes"); do grep -qxF "$k" <<<"$logged" || missing=$((missing + 1)); done
check_eq "every node's key is in the log (register events)" 0 "$missing"
out=$(C audit verify)
check "audit verify: chain and signed head verify" grep -q "chain and signed head verify" <<<"$out"
hd=$(N netmap -s "$U" -k "$T/a" | jq -c .audit)
APPR_ID=$(C network show appr --json | jq -r .id)
last_appr=$(sql "SELECT max(seq) FROM audit_log WHERE data LIKE '%$APPR_ID%'")
hs=$(echo "$hd" | jq .seq)
check_eq "netmaps carry the signed audit head (identity, hash of the entry it names)" \
	"$(tr -d '\n' <"$D/identity.pub") $(sql "SELECT encode(hash, 'hex') FROM audit_log WHERE seq = $hs")" \
	"$(echo "$hd" | jq -r '"\(.identity) \(.hash)"')"
[ "$hs" -ge "$last_appr" ] && ok "the head covers the network's last event ($hs >= $last_appr)" ||
	fail "head covers the network's last event" "$hs < $last_appr"
r=$(N raw -s "$U" -k "$T/a" GET "/v1/audit?since=3")
check_eq "GET /v1/audit with a signed node request: entries after 3" "200 4" \
	"$(status_of "$r") $(echo "${r#* }" | jq '.entries[0].seq')"
r=$(N raw -s "$U" GET "/v1/audit?since=0" --unsigned)
check_eq "GET /v1/audit unauthenticated: 401" 401 "$(status_of "$r")"
sql "UPDATE audit_log SET data = replace(data, 'beta', 'evil') WHERE seq = (SELECT min(seq) FROM audit_log WHERE type = 'register' AND data LIKE '%beta%')"
seq=$(sql "SELECT seq FROM audit_log WHERE data LIKE '%evil%'")
out=$(C audit verify)
rc=$?
check_eq "a tampered row: audit verify fails (exit 3)" 3 "$rc"
check "and names the entry" grep -q "entry $seq (register) does not verify" <<<"$out"
sql "DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)"
sql "UPDATE audit_log SET data = replace(data, 'evil', 'beta') WHERE seq = $seq"
out=$(C audit verify)
check "a truncated log: the signed head still matches the served entries (server signs what it has)" grep -q "verify" <<<"$out"
out=$(C audit verify --identity "$(N keygen "$T/x" >/dev/null; cat "$T/x/machine.pub")")
check "audit verify with another identity key: head not signed by it" grep -q "not signed by the identity key" <<<"$out"

# ---- key transparency on the node side (userspace/trust.c through ls-nodecli --trust)
TA=$T/trust-a
mkdir -p "$TA"
tn() { N netmap -s "$U" -k "$T/a" --trust "$TA"; }
out=$(tn)
check_eq "trust: first netmap accepted (identity trusted on first use)" "$(tr -d '\n' <"$D/identity.pub")" \
	"$(jq -r .identity "$TA/trust.json")"
# a peer key injected into the database outside the log
good=$(sql "SELECT wg_key FROM nodes WHERE id = $Dn")
evil=$(cat "$T/h/wg.pub")
bump="UPDATE networks SET version = version + 1, log_floor = version + 1 WHERE name = 'appr'; SELECT pg_notify('lsc_netmap', (SELECT id::text || ' ' || version FROM networks WHERE name = 'appr'))"
sql "UPDATE nodes SET wg_key = '$evil' WHERE id = $Dn; $bump" >/dev/null
out=$(tn)
check "trust: a peer key injected outside the log is refused" grep -q "trust_refused peer $Dn (delta) has WireGuard key .* not in the audit log" <<<"$out"
sql "UPDATE nodes SET wg_key = '$good' WHERE id = $Dn; $bump" >/dev/null
out=$(tn)
check "trust: the logged key again: accepted" jq -e .version <<<"$out"
# key rotation: signed by the machine key, peers get the new key at their next long-poll,
# and the rotation is in the log (the trust check accepts the new key)
VA=$(N netmap -s "$U" -k "$T/a" | jq .version)
N netmap -s "$U" -k "$T/a" --since "$VA" --wait 20 >"$T/lp" &
lp=$!
sleep 0.5
oldkey=$(cat "$T/d/wg.pub")
rot=$(N rotate -s "$U" -k "$T/d")
wait $lp
newkey=$(cat "$T/d/wg.pub")
check_eq "rotate: the server has the new key" "$newkey" "$(echo "$rot" | jq -r .node.wg_key)"
check_eq "rotate: A's long-poll carries D's new key" "$newkey" "$(jq -r '.peers[] | select(.name == "delta") | .wg_key' "$T/lp")"
[ "$oldkey" != "$newkey" ] && ok "rotate: the key changed" || fail "rotate: the key changed"
check_eq "rotate: in the audit log with the old key" "$oldkey" \
	"$(C audit list --json | jq -r '[.entries[] | select(.type == "rotate")][-1].data | fromjson | .old_wg_key')"
out=$(tn)
check "trust: the rotated key (in the log) is accepted" jq -e '.peers[] | select(.name == "delta")' <<<"$out"
r=$(N raw -s "$U" -k "$T/d" POST /v1/rotate "{\"wg_key\": \"$(cat "$T/h/wg.pub")\"}" --replay)
check_eq "a replayed rotation is refused" "replayed_request" "$(echo "$r" | tail -1 | cut -d' ' -f2- | jq -r .error.code)"
out=$(N rotate -s "$U" -k "$T/b")
check "a revoked node cannot rotate: 403" grep -q "^error 403 node_revoked" <<<"$out"
r=$(N raw -s "$U" -k "$T/d" POST /v1/rotate '{"wg_key": "not-a-key"}')
check_eq "a malformed rotation: 400" 400 "$(status_of "$r")"
# expiry: an expired key leaves its peers' netmaps at their next long-poll
VA=$(N netmap -s "$U" -k "$T/a" | jq .version)
N netmap -s "$U" -k "$T/a" --since "$VA" --wait 20 >"$T/lp" &
lp=$!
sleep 0.5
sql "UPDATE nodes SET key_expiry = now() WHERE id = $Dn" >/dev/null
wait $lp
check_eq "expired key: A's long-poll drops D" "[$Dn]" "$(jq -c .peers_removed "$T/lp")"
check_eq "node list shows expired" expired "$(C node list --network appr --json | jq -r ".nodes[] | select(.id == $Dn) | .status")"
N rotate -s "$U" -k "$T/d" >/dev/null
check_eq "after a rotation D is back" '["delta"]' "$(peers a)"
C network set appr --key-lifetime 1h >/dev/null
check_eq "network set --key-lifetime" 3600 "$(C network show appr --json | jq .key_lifetime)"
exp=$(N rotate -s "$U" -k "$T/d" | jq .node.key_expiry)
now=$(date +%s)
[ $((exp - now)) -ge 3590 ] && [ $((exp - now)) -le 3610 ] && ok "a rotation moves the expiry by the lifetime" ||
	fail "rotation expiry" "$exp vs $now"
C network set appr --key-lifetime none >/dev/null
out=$(tn)
check "trust: accepted after the rotations" jq -e .version <<<"$out"
# a restored older database: a rolled-back log
lsc_stop main
cp -a "$D/pg" "$T/pg.bak"
lsc_serve main --state-dir "$D" || fail "server restarts"
U=$SRV_URL_main
En=$(N register -s "$U" -k "$T/e2" -t "$TOK" -H echo | jq .node.id)
C node approve "$En" >/dev/null
out=$(tn)
check "trust: the new node's key is in the log: accepted" jq -e '.peers[] | select(.name == "echo")' <<<"$out"
seen=$(jq .head.seq "$TA/trust.json")
lsc_stop main
rm -rf "$D/pg"
cp -a "$T/pg.bak" "$D/pg"
lsc_serve main --state-dir "$D" || fail "server restarts on the restored dump"
U=$SRV_URL_main
out=$(tn)
check "trust: a restored older database (rolled-back log) is refused" grep -q "trust_refused the audit log was rolled back: head [0-9]* is older than $seen" <<<"$out"
out=$(N netmap -s "$U" -k "$T/a")
check "(the server itself serves the old map without complaint)" jq -e .version <<<"$out"

# ---- HTTPS with pinned keys (serve --tls)
lsc_serve tls --state-dir "$T/tls" --tls || fail "serve --tls starts"
UT=$SRV_URL_tls
PIN=$(cat "$T/tls/tls.pin")
check "serve --tls: control.url is https://" grep -q "^https://127.0.0.1:" "$T/tls/control.url"
check "tls.pin is sha256//BASE64" grep -qE '^sha256//[A-Za-z0-9+/]{43}=$' "$T/tls/tls.pin"
check_eq "pinned client: health over HTTPS" ok "$(N health -s "$UT" --pin "$PIN" | jq -r .database)"
BAD="sha256//$(head -c 32 /dev/urandom | base64)"
out=$(N health -s "$UT" --pin "$BAD")
check "a wrong pin is refused, naming the server's key and the pinned one" \
	grep -qF "pin_mismatch $UT: the server's TLS key $PIN is not one of the pinned keys $BAD" <<<"$out"
out=$(LS_NODECLI_PINS= N health -s "$UT")
check "no pin and no CA: the self-signed certificate is refused" grep -q "certificate verification failed" <<<"$out"
check_eq "a pin list: any listed key is accepted" ok "$(N health -s "$UT" --pin "$BAD;$PIN" | jq -r .database)"
out=$(N health -s "$UT,$U" --pin "$BAD;$SRV_PIN_main")
check "failover: a server with a wrong pin is skipped for the next URL" jq -e .ok <<<"$out"
CT() { "$LSC_BIN" "$@" --state-dir "$T/tls"; }
CT network create sec >/dev/null && ok "admin CLI over HTTPS (pin from DIR/tls.pin)" || fail "admin CLI over HTTPS"
TT=$(CT token create --network sec --json | jq -r .token)
N register -s "$UT" --pin "$PIN" -k "$T/x" -t "$TT" -H tlsnode >/dev/null
m=$(N netmap -s "$UT" --pin "$PIN" -k "$T/x")
check_eq "netmaps publish the endorsed TLS keys and the identity" "$PIN $(tr -d '\n' <"$T/tls/identity.pub")" \
	"$(echo "$m" | jq -r '"\(.control.pins[0].pin) \(.control.identity)"')"
# enrollment strings carry the identity key and the endorsed pins
EJ=$(CT token create --network sec --uses 3 --json)
EN=$(echo "$EJ" | jq -r .enroll)
check_eq "token create: enroll = TOKEN@IDENTITY@PIN" "$(echo "$EJ" | jq -r .token)@$(tr -d '\n' <"$T/tls/identity.pub")@$PIN" "$EN"
N keygen "$T/y"
out=$(N register -s "$UT" -k "$T/y" -t "$EN" -H enrolled)
check_eq "register with the enrollment string: pinned from it, no other configuration" enrolled "$(echo "$out" | jq -r .node.name)"
N keygen "$T/z"
out=$(N register -s "$UT" -k "$T/z" -t "${EN%@*}@$BAD" -H evil)
check "an enrollment string with another pin: the server is refused" grep -q "pin_mismatch" <<<"$out"
mkdir -p "$T/trust-x"
sqlt() { psql -X -q -t -A -h "$T/tls/run" -U lightscale -d lightscale -c "$1"; }
sqlt "INSERT INTO tls_pins (pin, not_after, sig, server) VALUES ('$BAD', 4102444800, '$(head -c 64 /dev/urandom | base64 -w0)', 'forged')" >/dev/null
sqlt "UPDATE networks SET version = version + 1, log_floor = version + 1; SELECT pg_notify('lsc_netmap', (SELECT id::text || ' ' || version FROM networks WHERE name = 'sec'))" >/dev/null
N netmap -s "$UT" --pin "$PIN" -k "$T/x" --trust "$T/trust-x" >/dev/null
check_eq "trust: the endorsed pin is kept, a pin not endorsed by the identity is ignored" "[\"$PIN\"]" \
	"$(jq -c '[.pins[].pin]' "$T/trust-x/trust.json")"
out=$(N netmap -s "$UT" --pin "$PIN" -k "$T/x" --trust "$TA")
check "netmaps are signed: a map signed by another deployment's identity is refused" grep -qE "^error [0-9]+ bad_netmap_signature" <<<"$out"
h=$(lsc_curl "$D" -s -D - -o /dev/null "$U/v1/health")
check "health over HTTPS with curl trusting only DIR/tls.crt" grep -q "^HTTP/1.1 200" <<<"$h"
check_eq "(only netmaps carry the signature)" 0 "$(grep -ci "x-lightscale-netmap-signature" <<<"$h")"
r=$(lsc_curl "$D" -s -D - -o /dev/null "$U/v1/netmap" | grep -ci "x-lightscale-netmap-signature")
check_eq "(nor refused netmap requests)" 0 "$r"
lsc_stop tls

tap_done
