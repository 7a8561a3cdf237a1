#!/usr/bin/env bash
# trust-tls-rotate: staged rotation of the control plane's TLS key with pinned agents.
# `tls rotate' endorses and publishes a new key while the old one is served; the agents
# pick its pin up from their netmaps; `tls activate' switches (the server restarts too, so
# every agent connection makes a new handshake); the agents keep long-polling and
# heartbeating without re-enrollment and a ping runs across it all; the old pin is
# withdrawn at its retire time. SIGHUP and a restart switch to a staged key as well. Refused: a client that never saw the new pin (named
# fingerprints), a staged key that is not endorsed (withdrawn, or a forged endorsement in
# the database), and agents ignore a forged pin. HA: a second server's key is endorsed and
# published before it serves, and the agents fail over to it.
#
#   n1 10.99.0.11 ──┐                      ┌─ lightscale-control s1 10.99.0.1:8080 (HTTPS) ─┐
#                   br0 (ns inet) ─────────┤                                                 ├─ postgres (s1's)
#   n2 10.99.0.12 ──┘                      └─ lightscale-control s2 10.99.0.1:8081 (HTTPS) ─┘
#   n4 10.99.0.14 (a client enrolled with the old pin only: refused)
source "$(dirname "$0")/lib.sh"
lab_init
lab_star n1 n2 n4=14
S2_URL=https://10.99.0.1:8081
NODE_CONTROL_URL="$CONTROL_URL,$S2_URL"
EN=$LAB_TOK
P0=$CONTROL_PIN
lab_up n1 n2
A2=$(node_addr n2 4)
ping_within n1 "$A2" 10 && ok "ping n1 -> n2 (agents enrolled pinned to $P0)" || fail "ping" "$(node_log n1)"

trust_pins() { jq -r '.pin_list // ""' "$LAB_DIR/$1/$(profile_of "$1")/trust.json" 2>/dev/null; }
has_pin() { [[ ";$(trust_pins "$1");" == *";$2;"* ]]; }
sql() { nsx inet psql -X -q -t -A -h "$CONTROL_DIR/run" -U lightscale -d lightscale -c "$1"; }
NODECLI="$BUILD/tests/ls-nodecli"
# serves ADDR:PORT PIN: the server presents the key with this pin (a client pinning only it
# gets an answer)
serves() { nsx inet "$NODECLI" health -s "https://$1" --pin "$2" | jq -e .ok >/dev/null 2>&1; }
tls_state() { lsc tls status --json | jq -r --arg p "$1" '.pins[] | select(.pin == $p) | .state'; }

nsx n1 ping -D -i 0.05 -w 60 "$A2" >"$LAB_DIR/ping.txt" 2>&1 &
pp=$!

# ---- rotate: endorsed and published, not served
out=$(lsc tls rotate --json)
P1=$(jq -r .pin <<<"$out")
[[ $P1 == sha256//* && $P1 != "$P0" ]] && ok "tls rotate stages a new key ($P1)" || fail "tls rotate" "$out"
check_eq "tls status: the new pin is next, the old one active" "next active" "$(tls_state "$P1") $(tls_state "$P0")"
check_eq "tls status: the staged key and the one served" "$P1 $P0" \
	"$(lsc tls status --json | jq -r '"\(.server.staged) \(.server.serving)"')"
check "the server still serves the old key" serves 10.99.0.1:8080 "$P0"
wait_for 35 "n1 and n2 pin the staged key" bash -c "$(declare -f trust_pins has_pin profile_of); LAB_DIR=$LAB_DIR LAB_ID=$LAB_ID; has_pin n1 '$P1' && has_pin n2 '$P1'" &&
	ok "published before it is served: both agents pin it from their netmaps" ||
	fail "agents learn the staged pin" "$(trust_pins n1)" "$(node_log n1)"
seen_all() { lsc tls status --json | jq -e --arg p "$P1" '.pins[] | select(.pin == $p) | .nodes_seen_since == .nodes and .nodes == 2' >/dev/null; }
wait_for 20 "tls status: both nodes seen since" seen_all && ok "tls status: 2 of 2 nodes made a request since the key was published" ||
	fail "tls status node count" "$(lsc tls status)"
out=$(lsc tls rotate 2>&1)
check "a second rotate while a key is staged is refused" grep -q "a key is staged already ($P1)" <<<"$out"

# ---- activate
out=$(lsc tls activate --retire-after 20s --json)
check_eq "tls activate serves the staged key" "$P1" "$(jq -r .pin <<<"$out")"
check "the server presents it from the next handshake (no restart)" serves 10.99.0.1:8080 "$P1"
check "... and no longer the old key" bash -c '! "$@"' _ serves 10.99.0.1:8080 "$P0"
check_eq "DIR/tls.pin follows" "$P1" "$(cat "$CONTROL_DIR/tls.pin")"
# (the pin computed by openssl, independently)
check_eq "the replaced key is kept as DIR/tls-prev.*" "$P0" \
	"sha256//$(openssl x509 -in "$CONTROL_DIR/tls-prev.crt" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)"
cp "$CONTROL_DIR/tls-prev.crt" "$LAB_DIR/p0.crt"
cp "$CONTROL_DIR/tls-prev.key" "$LAB_DIR/p0.key"
check_eq "the old pin retires, still published" "active retiring" "$(tls_state "$P1") $(tls_state "$P0")"
check_eq "the admin commands still reach the server (pinned from the state dir)" home \
	"$(lsc network list --json | jq -r '.networks[0].name')"

# a client that never saw the new pin: refused, naming the server's key and its pins
mkdir -p "$LAB_DIR/old"
nsx n4 "$LS" init --profile "${LAB_ID}old" --state-dir "$LAB_DIR/old" --control "$CONTROL_URL" \
	--token "${EN%@*}@$P0" --hostname old >/dev/null || fail "init with the old pin"
out=$(nsx n4 "$LS" register --profile "${LAB_ID}old" --state-dir "$LAB_DIR/old" 2>&1)
check "a client pinned only to the old key is refused" grep -q "pin_mismatch\|not one of the pinned" <<<"$out"
check "... the refusal names the server's new key and the pinned old one" \
	bash -c 'grep -qF "$1" <<<"$0" && grep -qF "$2" <<<"$0"' "$out" "$P1" "$P0"

# the restart makes every agent connection a new handshake with the new key; the pins the
# agents follow come from their netmaps, not from the enrollment string
control_stop
control_start inet 10.99.0.1 8080
check "after a restart the server serves the activated key" serves 10.99.0.1:8080 "$P1"
EN2=$(token_create home 5)
check "a new enrollment string carries the new pin" grep -qF "$P1" <<<"$EN2"
# a change after the switch reaches both agents through long-polls over the new key
# (a settings change, not a peer joining: peers come and go in lab-2node)
nmv() { lsx "$1" status --json | jq -r .netmap_version; }
v0=$(lsc network show home --json | jq -r .version)
lsc network set home --key-lifetime 2h >/dev/null || fail "network set"
newer() { (($(nmv "$1") > v0)); }
wait_for 40 "n1 gets the change" newer n1 && ok "n1 long-polls over the new key: gets a change" || fail "n1 after the switch" "$(node_log n1)"
wait_for 20 "n2 gets the change" newer n2 && ok "n2 long-polls over the new key: gets a change" || fail "n2 after the switch" "$(node_log n2)"
ping_ok n1 "$A2" && ok "ping n1 -> n2 after the switch" || fail "ping after the switch"
hb_ok() { lsc node list --network home --json | jq -e --arg n "$1" '.nodes[] | select(.name == $n) | .last_seen > '"$2" >/dev/null; }
t_act=$(date +%s)
wait_for 40 "n1 heartbeats after the switch" hb_ok n1 "$t_act" && ok "n1 heartbeats over the new key" ||
	fail "n1 heartbeat" "$(lsc node list --network home --json | jq -c '.nodes[] | [.name, .last_seen]')"
st=$(lsx n1 status --json)
check_eq "lightscale status: n1 has its peer, configured" '["n2",true]' "$(jq -c '[.peers[] | .name, .configured]' <<<"$st")"
check "no agent logged a pin mismatch" bash -c '! grep -l "pin_mismatch\|not one of the pinned" "$0"/n1.agent.log "$0"/n2.agent.log' "$LAB_DIR"

# ---- the old pin is withdrawn at its retire time; the agents stop pinning it
wait_for 40 "the old pin withdrawn" sh -c "[ -z \"\$(nsenter --net=/run/netns/$(nsname inet) $LSC tls status --json --state-dir $CONTROL_DIR | jq -r '.pins[] | select(.pin == \"$P0\") | .pin')\" ]" &&
	ok "the retiring pin is withdrawn at its retire time" || fail "withdrawal" "$(lsc tls status)"
wait_for 40 "agents drop the old pin" bash -c "$(declare -f trust_pins has_pin profile_of); LAB_DIR=$LAB_DIR LAB_ID=$LAB_ID; ! has_pin n1 '$P0' && ! has_pin n2 '$P0' && has_pin n1 '$P1'" &&
	ok "the agents follow the withdrawal (pin set: $(trust_pins n1))" || fail "agents drop the old pin" "$(trust_pins n1)"

# ---- SIGHUP and a restart switch to a staged key too (once endorsed and published)
P2=$(lsc tls rotate --json | jq -r .pin)
wait_for 35 "agents pin P2" bash -c "$(declare -f trust_pins has_pin profile_of); LAB_DIR=$LAB_DIR LAB_ID=$LAB_ID; has_pin n1 '$P2' && has_pin n2 '$P2'" ||
	fail "agents learn P2" "$(trust_pins n1)"
kill -HUP "$CONTROL_PID"
wait_for 5 "SIGHUP switch" serves 10.99.0.1:8080 "$P2" && ok "SIGHUP switches to the staged key" ||
	fail "SIGHUP switch" "$(grep -v debug "$LAB_DIR/control.log" | tail -5)"
P3=$(lsc tls rotate --json | jq -r .pin)
wait_for 35 "agents pin P3" bash -c "$(declare -f trust_pins has_pin profile_of); LAB_DIR=$LAB_DIR LAB_ID=$LAB_ID; has_pin n1 '$P3' && has_pin n2 '$P3'" ||
	fail "agents learn P3" "$(trust_pins n1)"
control_stop
control_start inet 10.99.0.1 8080
check "a restart switches to the staged key" serves 10.99.0.1:8080 "$P3"
check_eq "tls status: P3 active, P1 and P2 retiring" "active retiring retiring" "$(tls_state "$P3") $(tls_state "$P1") $(tls_state "$P2")"
v0=$(nmv n1)
lsc network set home --key-lifetime 4h >/dev/null
wait_for 40 "n1 gets a change after the restart switch" newer n1 && ok "the agents follow both switches" ||
	fail "agents after SIGHUP and restart switches" "$(node_log n1)"

# ---- unendorsed keys
# a key whose endorsement was withdrawn (the first one) staged by hand: refused
cp "$LAB_DIR/p0.crt" "$CONTROL_DIR/tls-next.crt"
cp "$LAB_DIR/p0.key" "$CONTROL_DIR/tls-next.key"
out=$(lsc tls activate 2>&1)
check "activating an unendorsed staged key is refused" grep -q "refused: $P0 is not endorsed" <<<"$out"
check "... and the server keeps serving its key" serves 10.99.0.1:8080 "$P3"
# a forged endorsement written into the database (not signed by the identity key)
forged=$(head -c 64 /dev/urandom | base64 -w0)
sql "INSERT INTO tls_pins (pin, not_after, sig, server, server_id, state) VALUES ('$P0', 4102444800, '$forged', 'x', '$(cat "$CONTROL_DIR/server.id")', 'next');
     WITH v AS (UPDATE networks SET version = version + 1 RETURNING id, version) SELECT pg_notify('lsc_netmap', v.id || ' ' || v.version) FROM v" >/dev/null
out=$(lsc tls activate 2>&1)
check "a staged key with a forged endorsement is refused" grep -q "refused: the endorsement of $P0 does not verify" <<<"$out"
check_eq "tls status marks it unendorsed" false "$(lsc tls status --json | jq -r --arg p "$P0" '.pins[] | select(.pin == $p) | .endorsed')"
wait_for 20 "n1 ignores the forged pin" grep -q "ignoring TLS pin $P0: not endorsed" "$LAB_DIR/n1.agent.log" &&
	ok "the agents ignore a published pin without a valid endorsement" || fail "forged pin" "$(node_log n1)"
check "... and do not pin it" bash -c '! grep -qF "$1" <<<"$0"' "$(trust_pins n1)" "$P0"
sql "DELETE FROM tls_pins WHERE pin = '$P0'" >/dev/null
rm -f "$CONTROL_DIR/tls-next.crt" "$CONTROL_DIR/tls-next.key"

# ---- HA: a second server's key is endorsed and published before it serves
mkdir -p "$LAB_DIR/s2"
bg inet "$LAB_DIR/s2.log" "$LSC" serve --tls --listen 10.99.0.1:8081 --state-dir "$LAB_DIR/s2" \
	--db "host=$CONTROL_DIR/run dbname=lightscale user=lightscale" --identity-key "$CONTROL_DIR/identity.key"
S2_PID=$BG_PID
wait_for 30 "s2 up" test -s "$LAB_DIR/s2/control.url" || fail "s2 starts" "$(tail "$LAB_DIR/s2.log")"
PS2=$(cat "$LAB_DIR/s2/tls.pin")
e=$(grep -n "TLS key $PS2 endorsed" "$LAB_DIR/s2.log" | cut -d: -f1)
l=$(grep -n "listening on https" "$LAB_DIR/s2.log" | cut -d: -f1)
[ -n "$e" ] && [ -n "$l" ] && ((e < l)) && ok "s2 endorsed and published its key before listening" ||
	fail "s2 order" "$(grep -v debug "$LAB_DIR/s2.log" | tail)"
wait_for 35 "n1 and n2 pin s2's key" bash -c "$(declare -f trust_pins has_pin profile_of); LAB_DIR=$LAB_DIR LAB_ID=$LAB_ID; has_pin n1 '$PS2' && has_pin n2 '$PS2'" &&
	ok "the agents pin s2's key from their netmaps" || fail "agents learn s2's pin" "$(trust_pins n1)"
# s1 dies (kill -9: its embedded PostgreSQL keeps running for s2, as an external one would)
t_fo=$(date +%s%N)
kill -9 "$CONTROL_PID"
wait "$CONTROL_PID" 2>/dev/null
check "s1 is down" bash -c '! "$@"' _ serves 10.99.0.1:8080 "$P3"
v0=$(nmv n1)
nsx inet "$LSC" network set home --key-lifetime 5h --state-dir "$LAB_DIR/s2" --admin-key-file "$CONTROL_DIR/admin.key" >/dev/null ||
	fail "network set through s2"
wait_for 60 "n1 gets the change through s2" newer n1 &&
	ok "with s1 gone the agents fail over to s2 (pinned by the published set) and get a change ($((($(date +%s%N) - t_fo) / 1000000)) ms after s1 died)" ||
	fail "failover to s2" "$(node_log n1)"

# s1 again (adopts its cluster; stopping it at the end stops the cluster)
control_start inet 10.99.0.1 8080
kill -INT "$pp" 2>/dev/null
wait $pp
ping_summary "$LAB_DIR/ping.txt"
lab_log "TLS rotation: ping $PING_RECV/$PING_SENT replies, longest gap ${PING_GAP} ms"
((PING_RECV > 0 && PING_GAP < 2000)) && ok "the ping ran across rotate, activate, restart, withdrawal (longest gap ${PING_GAP} ms, $PING_RECV/$PING_SENT)" ||
	fail "ping across the rotation" "gap ${PING_GAP} ms, $PING_RECV/$PING_SENT"
# ---- a restart after activate + withdraw (after the ping: a restart stops n1's tunnel):
# the enrollment string pinned only P0, and P1, P2 are withdrawn now too: no server
# serves or publishes any of them; the agent and the CLI pin what trust.json remembers
for p in "$P1" "$P2"; do lsc tls withdraw "$p" >/dev/null || fail "withdraw $p"; done
wait_for 40 "n1 drops P1 and P2" bash -c "$(declare -f trust_pins has_pin profile_of); LAB_DIR=$LAB_DIR LAB_ID=$LAB_ID; ! has_pin n1 '$P1' && ! has_pin n1 '$P2' && has_pin n1 '$P3' && has_pin n1 '$PS2'" &&
	ok "n1 pins only the served keys now ($(trust_pins n1))" || fail "n1 pin set" "$(trust_pins n1)"
check "n1's enrollment pinned only the old key" bash -c '[[ "$0" == *"$1"* && "$0" != *"$2"* ]]' "$EN" "$P0" "$P1"
agent_kill n1
out=$(lsx n1 netmap --fetch --json 2>&1)
check_eq "with the agent down, lightscale netmap --fetch reaches the control plane (its peer)" "n2" \
	"$(jq -r '.peers[0].name' <<<"$out" 2>/dev/null || echo "$out")"
mark=$(wc -l <"$LAB_DIR/n1.agent.log")
agent_start n1
wait_for 40 "restarted n1 sees n2" peer_count n1 1 && ok "n1 restarted after the withdrawal has its peer" ||
	fail "restarted n1" "$(node_log n1)"
v0=$(nmv n1)
lsc network set home --key-lifetime 6h >/dev/null || fail "network set"
wait_for 40 "restarted n1 gets a change" newer n1 && ok "... and long-polls: gets a change" || fail "restarted n1 long-poll" "$(node_log n1)"
check "... without a pin mismatch" bash -c '! tail -n +"$1" "$0" | grep -q "pin_mismatch\|not one of the pinned"' \
	"$LAB_DIR/n1.agent.log" "$((mark + 1))"
st=$(lsx n1 status --json)
check_eq "lightscale status of the restarted n1: its peer, configured" '["n2",true]' "$(jq -c '[.peers[] | .name, .configured]' <<<"$st")"
out=$(lsx n1 netmap --fetch --json)
check_eq "lightscale netmap --fetch reaches the control plane with the remembered pins" n2 "$(jq -r '.peers[0].name' <<<"$out")"
ping_within n1 "$A2" 10 && ok "ping n1 -> n2 after the restart" || fail "ping after the restart"
tap_done
