#!/usr/bin/env bash
# Control plane end to end through the HTTP API, the admin CLI and ls-nodecli, on one
# `lightscale-control serve` with its embedded PostgreSQL cluster.
#
#   ls-nodecli A ──┐
#   ls-nodecli B ──┼── HTTPS 127.0.0.1:<any> (pinned: DIR/tls.pin) ── lightscale-control serve ── postgres (DIR/pg, unix socket)
#   ls-nodecli C ──┘                               │
#   lightscale-control network/token/node ─────────┘ (admin key from DIR/admin.key)
#
# Covers: networks, tokens (every refused case), registration, DNS labels, signed requests
# (unsigned, tampered, stale, replayed, unknown), a table of malformed bodies, netmaps,
# route primaries, heartbeat endpoint merge, long-poll deltas, node delete, restart and
# kill -9 with the embedded cluster, schema refusal.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh
source tests/control/pg.sh

T=$(mktemp -d /tmp/lsc-api-XXXXXX)
D=$T/state
cleanup() {
	lsc_stop main
	# a cluster orphaned by the kill -9 case is stopped through its pid file
	if [ -f "$D/pg/postmaster.pid" ]; then
		kill -INT "$(head -1 "$D/pg/postmaster.pid")" 2>/dev/null
		sleep 1
	fi
	rm -rf "$T"
}
trap cleanup EXIT

C() { "$LSC_BIN" "$@" --state-dir "$D"; }
N() { "$LSC_NODECLI" "$@"; }
# api METHOD PATH [BODY]: admin request, prints "STATUS BODY"
api() { N raw -s "$SRV_URL_main" --admin-key-file "$D/admin.key" "$@"; }
status_of() { echo "${1%% *}"; }
code_of() { echo "${1#* }" | jq -r '.error.code // empty' 2>/dev/null; }
count_nodes() { C network show home --json | jq .nodes; }
ip4int() { local IFS=.; set -- $1; echo $((($1 << 24) + ($2 << 16) + ($3 << 8) + $4)); }
# in4 ADDR PREFIX/LEN: is ADDR inside the prefix?
in4() {
	local l=${2#*/} m
	m=$(((0xffffffff << (32 - l)) & 0xffffffff))
	[ $(($(ip4int "$1") & m)) -eq $(($(ip4int "${2%/*}") & m)) ]
}

lsc_serve main --state-dir "$D" || { fail "server starts"; exit 1; }
ok "server starts with an embedded cluster"
U=$SRV_URL_main

h=$(N health -s "$U")
check_eq "health: database ok" "ok" "$(echo "$h" | jq -r .database)"
latest=$("$LSC_BIN" version | sed -n 's/.*schema \([0-9]*\)).*/\1/p')
check_eq "health: schema version is the binary's latest" "$latest" "$(echo "$h" | jq .schema_version)"
check_eq "admin.key is mode 600" "600" "$(stat -c %a "$D/admin.key")"
check_eq "postgres runs as an unprivileged user" "postgres" \
	"$(ps -o user= -p "$(head -1 "$D/pg/postmaster.pid")" | tr -d ' ')"

# ---- networks
out=$(C network create home)
check "network create prints the network" grep -q "^network home" <<<"$out"
j=$(C network show home --json)
v4=$(echo "$j" | jq -r .ipv4)
v6=$(echo "$j" | jq -r .ipv6)
in4 "${v4%/*}" 100.64.0.0/10 && [ "${v4#*/}" -ge 10 ] && [[ "$v6" =~ ^fd[0-9a-f]{2}(:[0-9a-f]{1,4}){0,2}::/48$ ]] &&
	ok "derived prefixes: IPv4 inside 100.64.0.0/10, IPv6 a ULA /48" || fail "derived prefixes" "$v4 $v6"
out=$(C network create home 2>&1)
rc=$?
check_eq "duplicate network refused" "1 yes" "$rc $(grep -q network_exists <<<"$out" && echo yes)"
C network create lab --ipv4 10.77.0.0/16 --ipv6 fd00:77::/48 --dns-suffix lab.example >/dev/null
j=$(C network show lab --json)
check_eq "explicit prefixes and suffix kept" "10.77.0.0/16 fd00:77::/48 lab.example" \
	"$(echo "$j" | jq -r '"\(.ipv4) \(.ipv6) \(.dns_suffix)"')"
check_eq "network list shows both" "home lab" "$(C network list --json | jq -r '[.networks[].name] | join(" ")')"
check "network list text has a header" grep -q "^NAME" <<<"$(C network list)"
out=$(C network show nope 2>&1)
check "unknown network: unknown_network" grep -q unknown_network <<<"$out"

# ---- tokens
tok=$(C token create --network home --uses 2 --ttl 1h --tag tag:web --json)
T1=$(echo "$tok" | jq -r .token)
T1_ID=$(echo "$tok" | jq -r .id)
check "token is lst_ + 64 hex (256 bits)" grep -qE '^lst_[0-9a-f]{64}$' <<<"$T1"
check_eq "token tags" "tag:web" "$(echo "$tok" | jq -r '.tags | join(",")')"
ttl=$(echo "$tok" | jq '.expires_at - .created_at')
check_eq "token ttl 1h" "3600" "$ttl"
check "token list never shows the secret" bash -c "! C() { :; }; ! '$LSC_BIN' token list --network home --state-dir '$D' --json | grep -q '${T1#lst_}'"
check "token text list" grep -q "$T1_ID" <<<"$(C token list --network home)"
out=$(C token create --network nope 2>&1)
check "token for unknown network refused" grep -q unknown_network <<<"$out"

# ---- registration
for n in a b c d e x; do N keygen "$T/$n"; done
ra=$(N register -s "$U" -k "$T/a" -t "$T1" -H Laptop -r 192.168.1.0/24 -e 192.0.2.1:51820 -p 51820)
check_eq "register A: DNS label from hostname" "laptop laptop.home.ls.internal" \
	"$(echo "$ra" | jq -r '"\(.node.name) \(.node.dns_name)"')"
A_ID=$(echo "$ra" | jq .node.id)
a4=$(echo "$ra" | jq -r '.node.addresses[0]')
in4 "$a4" "$v4" &&
	ok "A's IPv4 is inside the network's prefix" || fail "A's IPv4 is inside the network's prefix" "$a4 $v4"
rb=$(N register -s "$U" -k "$T/b" -t "$T1" -H laptop.corp.example -r 192.168.1.0/24)
check_eq "register B: same hostname gets laptop-2" "laptop-2" "$(echo "$rb" | jq -r .node.name)"
B_ID=$(echo "$rb" | jq .node.id)
before=$(count_nodes)
out=$(N register -s "$U" -k "$T/c" -t "$T1" -H c)
check "used-up token: token_used_up" grep -q "^error 403 token_used_up" <<<"$out"
ra2=$(N register -s "$U" -k "$T/a" -t "$T1" -H Laptop)
check_eq "re-register with the same machine key returns the same node" "$A_ID" "$(echo "$ra2" | jq .node.id)"
out=$(N register -s "$U" -k "$T/c" -t "lst_$(printf '%064d' 0)" -H c)
check "unknown token: token_invalid" grep -q "^error 401 token_invalid" <<<"$out"
TE=$(C token create --network home --ttl 1s --json | jq -r .token)
TR_J=$(C token create --network home --json)
TR=$(echo "$TR_J" | jq -r .token)
C token revoke "$(echo "$TR_J" | jq -r .id)" >/dev/null
check_eq "token list shows revoked" "revoked" \
	"$(C token list --network home --json | jq -r --arg id "$(echo "$TR_J" | jq -r .id)" '.tokens[] | select(.id == $id) | .status')"
out=$(N register -s "$U" -k "$T/c" -t "$TR" -H c)
check "revoked token: token_revoked" grep -q "^error 403 token_revoked" <<<"$out"
sleep 2
out=$(N register -s "$U" -k "$T/c" -t "$TE" -H c)
check "expired token: token_expired with the expiry time" grep -qE "^error 403 token_expired .*expired at [0-9]{4}-" <<<"$out"
check_eq "refused tokens registered nothing" "$before" "$(count_nodes)"
out=$(C token revoke nosuchtoken 2>&1)
check "revoking an unknown token: not_found" grep -q not_found <<<"$out"

# ---- malformed bodies: each is refused with 4xx JSON and changes nothing
TV=$(C token create --network home --uses 100 --json | jq -r .token)
WG=$(cat "$T/c/wg.pub")
MK=$(cat "$T/c/machine.pub")
networks_before=$(C network list --json | jq '.networks | length')
while IFS='|' read -r name path want body; do
	[ -z "$name" ] && continue
	res=$(api POST "$path" "$body")
	st=$(status_of "$res")
	code=$(code_of "$res")
	check_eq "malformed: $name -> $want" "$want" "$st $code"
done <<EOF
not JSON|/v1/register|400 bad_request|this is not json
JSON array|/v1/register|400 bad_request|[]
empty object|/v1/register|400 bad_request|{}
token is a number|/v1/register|400 bad_request|{"token":5,"wg_key":"$WG","machine_key":"$MK","hostname":"c"}
missing wg_key|/v1/register|400 bad_request|{"token":"$TV","machine_key":"$MK","hostname":"c"}
wg_key not base64|/v1/register|400 bad_request|{"token":"$TV","wg_key":"not-a-key","machine_key":"$MK","hostname":"c"}
routes not an array|/v1/register|400 bad_request|{"token":"$TV","wg_key":"$WG","machine_key":"$MK","hostname":"c","routes":"10.0.0.0/8"}
route with host bits|/v1/register|400 bad_request|{"token":"$TV","wg_key":"$WG","machine_key":"$MK","hostname":"c","routes":["10.0.0.1/8"]}
bad endpoint|/v1/register|400 bad_request|{"token":"$TV","wg_key":"$WG","machine_key":"$MK","hostname":"c","endpoints":["nowhere"]}
listen_port out of range|/v1/register|400 bad_request|{"token":"$TV","wg_key":"$WG","machine_key":"$MK","hostname":"c","listen_port":70000}
listen_port a string|/v1/register|400 bad_request|{"token":"$TV","wg_key":"$WG","machine_key":"$MK","hostname":"c","listen_port":"1"}
hostname with a control character|/v1/register|400 bad_request|{"token":"$TV","wg_key":"$WG","machine_key":"$MK","hostname":"a\u0001b"}
duplicate member|/v1/register|400 bad_request|{"token":"$TV","token":"$TV","wg_key":"$WG","machine_key":"$MK","hostname":"c"}
truncated JSON|/v1/register|400 bad_request|{"token":"$TV",
network name with a space|/v1/admin/networks|400 bad_request|{"name":"bad name"}
network ipv4 not a prefix|/v1/admin/networks|400 bad_request|{"name":"n1","ipv4":"300.1.1.0/24"}
network ipv6 given IPv4|/v1/admin/networks|400 bad_request|{"name":"n1","ipv6":"10.0.0.0/8"}
network dns suffix invalid|/v1/admin/networks|400 bad_request|{"name":"n1","dns_suffix":"a..b"}
token ttl a string|/v1/admin/networks/home/tokens|400 bad_request|{"ttl":"1h"}
token uses zero|/v1/admin/networks/home/tokens|400 bad_request|{"uses":0}
token tags not strings|/v1/admin/networks/home/tokens|400 bad_request|{"tags":[1]}
token for an unknown network|/v1/admin/networks/nope/tokens|404 unknown_network|{}
EOF
head -c 1100000 /dev/zero | tr '\0' 'a' >"$T/big.json"
res=$(lsc_curl "$D" -s -w '\n%{http_code}' -H 'Content-Type: application/json' --data-binary @"$T/big.json" "$U/v1/register")
check_eq "malformed: body over 1 MiB -> 413" "413 body_too_large" "$(echo "$res" | tail -1) $(echo "$res" | head -1 | jq -r .error.code)"
res=$(N raw -s "$U" POST /v1/register)
check_eq "malformed: empty body -> 400" "400 bad_request" "$(status_of "$res") $(code_of "$res")"
res=$(N raw -s "$U" GET /v1/admin/networks)
check_eq "admin API without a key -> 401" "401 bad_admin_key" "$(status_of "$res") $(code_of "$res")"
check_eq "malformed bodies registered nothing" "$before" "$(count_nodes)"
check_eq "malformed bodies created no network" "$networks_before" "$(C network list --json | jq '.networks | length')"
check_eq "malformed bodies created no token" "0" "$(C token list --network home --json | jq '[.tokens[] | select(.uses > 0 and .max_uses == 100)] | length')"

# ---- signed requests
res=$(N raw -s "$U" GET /v1/netmap)
check_eq "unsigned request -> 401 bad_signature" "401 bad_signature" "$(status_of "$res") $(code_of "$res")"
res=$(N raw -s "$U" -k "$T/a" --tamper POST /v1/heartbeat '{"endpoints":[]}')
check_eq "tampered body -> 401 bad_signature" "401 bad_signature" "$(status_of "$res") $(code_of "$res")"
res=$(N raw -s "$U" -k "$T/a" --skew -3600 GET /v1/netmap)
check_eq "request an hour old -> 401 stale_request" "401 stale_request" "$(status_of "$res") $(code_of "$res")"
check "stale_request message names the clock skew" grep -qE "36[0-9]{2} s behind" <<<"$res"
res=$(N raw -s "$U" -k "$T/a" --replay GET /v1/netmap)
check_eq "replayed request: first 200, second 401 replayed_request" "200 401 replayed_request" \
	"$(echo "$res" | head -1 | cut -d' ' -f1) $(echo "$res" | tail -1 | cut -d' ' -f1) $(code_of "$(echo "$res" | tail -1)")"
res=$(N raw -s "$U" -k "$T/x" GET /v1/netmap)
check_eq "unregistered machine key -> 404 unknown_node" "404 unknown_node" "$(status_of "$res") $(code_of "$res")"
res=$(N raw -s "$U" -k "$T/a" POST /v1/heartbeat '{"endpoints":"x"}')
check_eq "signed heartbeat with a malformed body -> 400" "400 bad_request" "$(status_of "$res") $(code_of "$res")"
res=$(N raw -s "$U" -k "$T/a" GET '/v1/netmap?since=abc')
check_eq "netmap since=abc -> 400" "400 bad_request" "$(status_of "$res") $(code_of "$res")"

# ---- netmaps, route primaries, heartbeat
ma=$(N netmap -s "$U" -k "$T/a")
mb=$(N netmap -s "$U" -k "$T/b")
check_eq "A sees B as a peer" "$B_ID" "$(echo "$ma" | jq '.peers[].id')"
check_eq "B sees A as a peer" "$A_ID" "$(echo "$mb" | jq '.peers[].id')"
check_eq "netmap is full with network, relays and dns" "true true true true" \
	"$(echo "$ma" | jq -r '"\(.full) \(.network != null) \(.relays != null) \(.dns.records | length == 4)"')"
check_eq "B's view: A is primary for 192.168.1.0/24" "true" \
	"$(echo "$mb" | jq '.peers[0].allowed_ips | index("192.168.1.0/24") != null')"
check_eq "A's view: B has it as standby, not in allowed_ips" "false true" \
	"$(echo "$ma" | jq -r '"\(.peers[0].allowed_ips | index("192.168.1.0/24") != null) \(.peers[0].standby_routes == ["192.168.1.0/24"])"')"
hb=$(N heartbeat -s "$U" -k "$T/b" -p 41641 -e 198.51.100.7:41641)
check_eq "heartbeat reports the observed endpoint" "127.0.0.1:41641" "$(echo "$hb" | jq -r .observed)"
ma=$(N netmap -s "$U" -k "$T/a")
check_eq "B's endpoints merge the observed one" '["198.51.100.7:41641","127.0.0.1:41641"]' \
	"$(echo "$ma" | jq -c '.peers[0].endpoints')"
V=$(echo "$ma" | jq .version)
hb2=$(N heartbeat -s "$U" -k "$T/b" -p 41641 -e 198.51.100.7:41641)
check_eq "an unchanged heartbeat does not move the version" "$V" "$(echo "$hb2" | jq .version)"

# ---- long-poll: a waiter on since=V returns within 1 s of a third node registering
N netmap -s "$U" -k "$T/a" --since "$V" --wait 20 >"$T/lp.out" &
lp=$!
sleep 0.5
# (timed from the registration's answer: a new client's TLS handshake is not the long-poll's)
rc_=$(N register -s "$U" -k "$T/c" -t "$TV" -H server -r 192.168.1.0/24 -r 0.0.0.0/0)
t0=$(lsc_ms)
C_ID=$(echo "$rc_" | jq .node.id)
wait $lp
t1=$(lsc_ms)
dt=$((t1 - t0))
[ "$dt" -lt 1000 ] && ok "long-poll answered ${dt} ms after the registration" || fail "long-poll within 1 s" "took $dt ms"
d=$(cat "$T/lp.out")
check_eq "the answer is a delta carrying the new peer" "false true" \
	"$(echo "$d" | jq -r --argjson c "$C_ID" '"\(.full) \([.peers[].id] | index($c) != null)"')"
check_eq "the delta carries the DNS section (a name was added)" "6" "$(echo "$d" | jq '.dns.records | length')"
mc=$(N netmap -s "$U" -k "$T/c")
check_eq "C: exit node flag, default route not in allowed_ips" "false" \
	"$(N netmap -s "$U" -k "$T/a" | jq --argjson c "$C_ID" '.peers[] | select(.id == $c) | .allowed_ips | index("0.0.0.0/0") != null')"
check_eq "C is an exit node in A's netmap" "true" \
	"$(N netmap -s "$U" -k "$T/a" | jq --argjson c "$C_ID" '.peers[] | select(.id == $c) | .exit_node')"
owners=$(echo "$mc" | jq '[.peers[] | select(.allowed_ips | index("192.168.1.0/24"))] | length')
check_eq "of three advertisers, one peer carries 192.168.1.0/24 in AllowedIPs" "1" "$owners"
V2=$(echo "$mc" | jq .version)
res=$(N netmap -s "$U" -k "$T/a" --since "$V2")
check_eq "since=current without wait: unchanged" "true" "$(echo "$res" | jq .unchanged)"
t0=$(lsc_ms)
res=$(N netmap -s "$U" -k "$T/a" --since "$V2" --wait 1)
dt=$(($(lsc_ms) - t0))
check_eq "wait=1 with no change: unchanged after about 1 s" "true yes" \
	"$(echo "$res" | jq .unchanged) $([ $dt -ge 900 ] && [ $dt -lt 2500 ] && echo yes || echo "no ($dt ms)")"

# one long-poll per node: a second one answers the first at once (a restarted agent)
N netmap -s "$U" -k "$T/b" --since "$V2" --wait 20 >"$T/first.out" &
lp=$!
sleep 0.5
t0=$(lsc_ms)
N netmap -s "$U" -k "$T/b" --since "$V2" --wait 1 >/dev/null &
lp2=$!
wait $lp
dt=$(($(lsc_ms) - t0))
wait $lp2
check_eq "a node's second long-poll answers its first: unchanged" "true" "$(jq .unchanged "$T/first.out")"
[ "$dt" -lt 900 ] && ok "... at once (${dt} ms)" || fail "the first long-poll answered at once" "took $dt ms"

# ---- admin node commands, delete -> peers_removed
check "node list text" grep -q "laptop-2.home.ls.internal" <<<"$(C node list --network home)"
check_eq "node list --json has 3 nodes" "3" "$(C node list --network home --json | jq '.nodes | length')"
check "node show" grep -q "machine key  $(cat "$T/b/machine.pub")" <<<"$(C node show "$B_ID")"
N netmap -s "$U" -k "$T/a" --since "$V2" --wait 20 >"$T/lp2.out" &
lp=$!
sleep 0.3
C node delete "$C_ID" >/dev/null
wait $lp
check_eq "deleting C: A's delta lists it in peers_removed" "[$C_ID]" "$(jq -c .peers_removed "$T/lp2.out")"
res=$(N netmap -s "$U" -k "$T/c")
check "deleted node's requests: unknown_node" grep -q "^error 404 unknown_node" <<<"$res"

# ---- --help on every command
for c in "serve" "network create" "network list" "network show" "token create" "token list" \
	"token revoke" "node list" "node show" "node delete"; do
	# shellcheck disable=SC2086
	out=$("$LSC_BIN" $c --help 2>&1)
	check "--help: $c" grep -q "^Usage: lightscale-control $c" <<<"$out"
done

# ---- /v1/admin/tls: malformed and refused requests answer 4xx and change nothing
tls_before=$(C tls status --json | jq -c '[.server, .pins]')
PINNOW=$(cat "$D/tls.pin")
bad=0
while IFS='|' read -r method path body want; do
	res=$(api "$method" "$path" ${body:+"$body"})
	got="$(status_of "$res") $(code_of "$res")"
	[ "$got" = "$want" ] || { bad=$((bad + 1)); lab_note="$method $path $body: $got (want $want)"; echo "# $lab_note"; }
done <<EOF2
POST|/v1/admin/tls/activate||409 conflict
POST|/v1/admin/tls/activate|{"retire_after": "1h"}|400 bad_request
POST|/v1/admin/tls/activate|{"retire_after": -1}|400 bad_request
POST|/v1/admin/tls/activate|[1]|400 bad_request
POST|/v1/admin/tls/withdraw||400 bad_request
POST|/v1/admin/tls/withdraw|{"pin": 5}|400 bad_request
POST|/v1/admin/tls/withdraw|{"pin": "md5//x"}|400 bad_request
POST|/v1/admin/tls/withdraw|{"pin": "sha256//' OR '1'='1"}|404 not_found
POST|/v1/admin/tls/withdraw|{"pin": "$PINNOW"}|409 conflict
GET|/v1/admin/tls/rotate||404 not_found
DELETE|/v1/admin/tls||404 not_found
POST|/v1/admin/tls/rotate/x||404 not_found
EOF2
[ $bad = 0 ] && ok "malformed /v1/admin/tls requests: all 4xx as expected" || fail "malformed /v1/admin/tls requests"
check_eq "... and nothing changed (served key, staged key, pins)" "$tls_before" "$(C tls status --json | jq -c '[.server, .pins]')"
res=$(N raw -s "$U" POST /v1/admin/tls/rotate)
check_eq "tls rotate without an admin key -> 401" "401 bad_admin_key" "$(status_of "$res") $(code_of "$res")"
out=$(C tls withdraw "$PINNOW" 2>&1)
check "tls withdraw of the served pin is refused by name" grep -qF "$PINNOW is served by server" <<<"$out"

# ---- restart: prefixes unchanged; kill -9: the cluster is adopted
before_net=$(C network show home --json | jq -c '[.id, .ipv4, .ipv6]')
lsc_stop main
check "SIGTERM stops the embedded cluster" bash -c "! test -f '$D/pg/postmaster.pid'"
lsc_serve main --state-dir "$D" || fail "restart"
check_eq "prefixes unchanged after a restart" "$before_net" "$(C network show home --json | jq -c '[.id, .ipv4, .ipv6]')"
pm=$(head -1 "$D/pg/postmaster.pid")
kill -9 "$SRV_PID_main"
wait "$SRV_PID_main" 2>/dev/null
SRV_PID_main=
check "after kill -9 the postmaster still runs" kill -0 "$pm"
lsc_serve main --state-dir "$D" || fail "start after kill -9"
check "the next start adopts it" grep -q "adopting the running postmaster $pm" "$D/serve.log"
check_eq "state intact after kill -9" "$before_net 2" \
	"$(C network show home --json | jq -c '[.id, .ipv4, .ipv6]') $(count_nodes)"
ma=$(N netmap -s "$SRV_URL_main" -k "$T/a")
check_eq "netmap after the restarts" "$B_ID" "$(echo "$ma" | jq '.peers[].id')"

# ---- migrations landing out of order: a later one recorded, 008 not (branches merged in
# either order): the missing one is applied at the next start
latest=$(N health -s "$SRV_URL_main" | jq .schema_version)
psql -X -q -h "$D/run" -U lightscale -d lightscale -c "DELETE FROM lsc_schema WHERE version = 8;
	ALTER TABLE tls_pins DROP COLUMN server_id, DROP COLUMN state, DROP COLUMN activated_at, DROP COLUMN retire_at"
lsc_stop main
n8=$(grep -c "applied migration 008_" "$D/serve.log")
lsc_serve main --state-dir "$D" || fail "start with a gap in the recorded migrations"
check_eq "a missing migration below the newest recorded one is applied" "$((n8 + 1))" "$(grep -c "applied migration 008_" "$D/serve.log")"
check_eq "... and the schema is the latest again" "$latest" "$(N health -s "$SRV_URL_main" | jq .schema_version)"
check_eq "tls status works on it" active "$(C tls status --json | jq -r '.pins[0].state')"

# ---- an older binary refuses a newer schema
psql -X -q -h "$D/run" -U lightscale -d lightscale \
	-c "INSERT INTO lsc_schema (version, name) VALUES (999, '999_future.sql')"
lsc_stop main
timeout 60 "$LSC_BIN" serve --listen 127.0.0.1:0 --state-dir "$D" >"$T/s2.log" 2>&1
rc=$?
check_eq "serve exits non-zero on a newer schema" "1" "$rc"
check "... saying the schema is newer" grep -q "schema is version 999, newer than this lightscale-control" "$T/s2.log"
tap_done
