#!/usr/bin/env bash
# Two control servers sharing one external PostgreSQL (started by this test).
#
#   ls-nodecli A ── server 1 (127.0.0.1:<any>) ──┐
#                                                 ├── postgres (test's own, unix socket)
#   ls-nodecli B ── server 2 (127.0.0.1:<any>) ──┘        ▲
#   server 3: multi-host DSN "host=/nonexistent,<sock>" ──┘ (config: relays, tight rate limits)
#
# Covers: a change written through server 2 wakes a long-poll on server 1; the LISTEN
# connection is killed and the waiter still wakes; the replay window holds across servers;
# client failover across control URLs; a multi-host DSN; relays from the config file;
# registration rate limit; an older schema migrated by a newer binary.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh
source tests/control/pg.sh

T=$(mktemp -d /tmp/lsc-ha-XXXXXX)
cleanup() {
	if [ "$_tap_failed" -gt 0 ]; then
		for f in "$T"/s1/serve.log "$T"/s2/serve.log; do
			echo "# $f:"
			grep -v "debug" "$f" | tail -25 | sed 's/^/#   /'
		done
	fi
	lsc_stop s1
	lsc_stop s2
	lsc_stop s3
	lsc_stop s4
	lsc_stop s5
	lsc_stop bad
	lsc_pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
N() { "$LSC_NODECLI" "$@"; }

lsc_pg_start "$T/pg" || { fail "test PostgreSQL starts"; exit 1; }
lsc_psql postgres "CREATE DATABASE lightscale" >/dev/null
lsc_psql postgres "CREATE DATABASE lsc_old" >/dev/null
DSN="host=$LSC_PG_SOCK dbname=lightscale user=lightscale"
lsc_serve s1 --state-dir "$T/s1" --db "$DSN" && ok "server 1 starts on the external database" || fail "server 1"
mkdir -p "$T/s2" "$T/bad"
lsc_serve bad --state-dir "$T/bad" --db "$DSN" 2>/dev/null && fail "a server without the identity key refuses to start" ||
	ok "a server without the deployment's identity key refuses to start"
check "and says to copy identity.key" grep -q "copy the identity.key" "$T/bad/serve.log"
# the servers of one database share the identity key, like a CA key
cp "$T/s1/identity.key" "$T/s2/identity.key"
lsc_serve s2 --state-dir "$T/s2" --db "$DSN" && ok "server 2 shares it" || fail "server 2"
U1=$SRV_URL_s1
U2=$SRV_URL_s2
C1() { "$LSC_BIN" "$@" --state-dir "$T/s1"; }
C2() { "$LSC_BIN" "$@" --state-dir "$T/s2"; }

C1 network create home >/dev/null
check_eq "a network created through server 1 is seen by server 2" "home" "$(C2 network list --json | jq -r '.networks[].name')"
TOK=$(C2 token create --network home --uses 10 --json | jq -r .token)
for n in a b c d; do N keygen "$T/$n"; done
A_ID=$(N register -s "$U1" -k "$T/a" -t "$TOK" -H alpha | jq .node.id)
B_ID=$(N register -s "$U2" -k "$T/b" -t "$TOK" -H beta | jq .node.id)
check_eq "A (via server 1) sees B (registered via server 2)" "$B_ID" "$(N netmap -s "$U1" -k "$T/a" | jq '.peers[].id')"
V=$(N netmap -s "$U1" -k "$T/a" | jq .version)

# a registration through server 2 wakes a waiter on server 1
N netmap -s "$U1" -k "$T/a" --since "$V" --wait 20 >"$T/lp1" &
lp=$!
sleep 0.5
t0=$(lsc_ms)
C_ID=$(N register -s "$U2" -k "$T/c" -t "$TOK" -H gamma | jq .node.id)
wait $lp
dt=$(($(lsc_ms) - t0))
[ "$dt" -lt 1000 ] && ok "server 1's long-poll woke ${dt} ms after a registration on server 2" ||
	fail "cross-server wake within 1 s" "took $dt ms"
check_eq "... with a delta carrying the new peer" "false true" \
	"$(jq -r --argjson c "$C_ID" '"\(.full) \([.peers[].id] | index($c) != null)"' "$T/lp1")"

# kill server 1's LISTEN connection: it reconnects, re-LISTENs and resyncs
V=$(jq .version "$T/lp1")
lsc_psql lightscale "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = 'lightscale'" >/dev/null
N netmap -s "$U1" -k "$T/a" --since "$V" --wait 20 >"$T/lp2" &
lp=$!
sleep 0.5
t0=$(lsc_ms)
N heartbeat -s "$U2" -k "$T/c" -p 5555 -e 203.0.113.5:5555 >/dev/null
wait $lp
dt=$(($(lsc_ms) - t0))
[ "$dt" -lt 3000 ] && ok "after losing its LISTEN connection server 1 still wakes (${dt} ms)" ||
	fail "wake after LISTEN loss" "took $dt ms"
check_eq "... and the delta has C's new endpoint" "true" \
	"$(jq --argjson c "$C_ID" '[.peers[] | select(.id == $c) | .endpoints | index("203.0.113.5:5555") != null] | any' "$T/lp2")"
check "server 1 logged the lost LISTEN connection" grep -q "LISTEN connection was lost" "$T/s1/serve.log"

# concurrent registrations of one hostname through both servers: unique names and addresses
TOKC=$(C1 token create --network home --uses 20 --json | jq -r .token)
racers=()
for i in $(seq 12); do
	N keygen "$T/r$i"
	u=$U1
	[ $((i % 2)) = 0 ] && u=$U2
	N register -s "$u" -k "$T/r$i" -t "$TOKC" -H racer >"$T/r$i.json" &
	racers+=($!)
done
wait "${racers[@]}"
names=$(cat "$T"/r*.json | jq -r .node.name | sort -u | wc -l)
addrs=$(cat "$T"/r*.json | jq -r '.node.addresses[]' | sort -u | wc -l)
check_eq "12 concurrent registrations via two servers: 12 distinct DNS labels" "12" "$names"
check_eq "... and 24 distinct addresses" "24" "$addrs"
check_eq "... named racer, racer-2 .. racer-12" "racer $(seq -f 'racer-%g' 2 12 | tr '\n' ' ' | sed 's/ $//')" \
	"$(cat "$T"/r*.json | jq -r .node.name | sort -V | tr '\n' ' ' | sed 's/ $//')"
check_eq "the token counted 12 uses" "12" \
	"$(C2 token list --network home --json | jq --arg t "$(C1 token list --network home --json | jq -r '.tokens[] | select(.max_uses == 20) | .id')" '.tokens[] | select(.id == $t) | .uses')"
for i in $(seq 12); do C1 node delete "$(jq .node.id "$T/r$i.json")" >/dev/null; done

# the replay window lives in the database: a request replayed on the other server is refused
res=$(N raw -s "$U1" -k "$T/a" --replay-to "$U2" GET /v1/netmap)
check_eq "replayed on the other server: 401 replayed_request" "200 401" \
	"$(echo "$res" | head -1 | cut -d' ' -f1) $(echo "$res" | tail -1 | cut -d' ' -f1)"

# client failover: the first control URL refuses connections
res=$(N netmap -s "http://127.0.0.1:1,$U2" -k "$T/a")
check_eq "client fails over to the second control URL" "true" "$(echo "$res" | jq .full)"
res=$(N health -s "http://127.0.0.1:1,http://127.0.0.1:2")
check "no URL reachable: connect_failed" grep -q "^error 0 connect_failed" <<<"$res"

# server 3: multi-host DSN (first host missing), config with relays and rate limits
cat >"$T/s3.json" <<'EOF'
{"relays": {"stun": ["192.0.2.1:3478"], "stream": ["192.0.2.1:8443"], "udp": ["192.0.2.1:3479"],
            "turn": [{"url": "turn:192.0.2.1:3478", "username": "u", "credential": "c"}]},
 "dns": {"resolvers": ["100.100.100.100"]},
 "rate_limits": {"register": {"burst": 2, "per_second": 0.01}, "node": {"burst": 4, "per_second": 0.01}}}
EOF
mkdir -p "$T/s3" "$T/s5" && cp "$T/s1/identity.key" "$T/s3/" && cp "$T/s1/identity.key" "$T/s5/"
lsc_serve s3 --state-dir "$T/s3" --config "$T/s3.json" \
	--db "host=/nonexistent-lsc,$LSC_PG_SOCK dbname=lightscale user=lightscale" &&
	ok "server 3 starts with a multi-host DSN" || fail "server 3"
U3=$SRV_URL_s3
m=$(N netmap -s "$U3" -k "$T/a")
check_eq "relays come from the config file" "192.0.2.1:3478 turn:192.0.2.1:3478 192.0.2.1:8443 192.0.2.1:3479" \
	"$(echo "$m" | jq -r '"\(.relays.stun[0]) \(.relays.turn[0].url) \(.relays.stream[0]) \(.relays.udp[0])"')"
check_eq "DNS resolvers from the config file" "100.100.100.100" "$(echo "$m" | jq -r '.dns.resolvers[0]')"
N register -s "$U3" -k "$T/d" -t "lst_bad1" -H d >/dev/null
N register -s "$U3" -k "$T/d" -t "lst_bad2" -H d >/dev/null
res=$(N register -s "$U3" -k "$T/d" -t "$TOK" -H d)
check "third registration in a burst of 2: 429 rate_limited" grep -q "^error 429 rate_limited" <<<"$res"
res=$(N register -s "$U1" -k "$T/d" -t "$TOK" -H d)
check "the limit is per server and address: server 1 registers it" grep -q '"name":"d"' <<<"$res"
for i in 1 2 3 4; do N netmap -s "$U3" -k "$T/b" >/dev/null; done
res=$(N netmap -s "$U3" -k "$T/b")
check "fifth signed request of a node in a burst of 4: 429 rate_limited" grep -q "^error 429 rate_limited" <<<"$res"
check_eq "another node is not limited by it" "true" "$(N netmap -s "$U3" -k "$T/c" | jq .full)"

# an older schema is migrated by a newer binary
OLD="host=$LSC_PG_SOCK dbname=lsc_old user=lightscale"
LIGHTSCALE_SCHEMA_TARGET=1 lsc_serve s4 --state-dir "$T/s4" --db "$OLD"
check_eq "a database at schema 1" "1" "$(N health -s "$SRV_URL_s4" | jq .schema_version)"
lsc_stop s4
lsc_serve s4 --state-dir "$T/s4" --db "$OLD"
latest=$("$LSC_BIN" version | sed -n 's/.*schema \([0-9]*\)).*/\1/p')
check_eq "the newer binary migrates it to the latest schema" "$latest" "$(N health -s "$SRV_URL_s4" | jq .schema_version)"
check_eq "lsc_schema records every migration" "$(seq -s, 1 "$latest")" \
	"$(lsc_psql lsc_old "SELECT string_agg(version::text, ',' ORDER BY version) FROM lsc_schema")"

# deltas span at most delta_versions versions; an older client gets the full map
echo '{"delta_versions": 2}' >"$T/s5.json"
lsc_psql lightscale "INSERT INTO nonces (machine_key, nonce, seen_at) VALUES ('k', 'old', now() - interval '1 hour'), ('k', 'new', now())" >/dev/null
lsc_serve s5 --state-dir "$T/s5" --config "$T/s5.json" --db "$DSN" || fail "server 5"
sleep 1.5 # housekeeping runs on the first turn of the loop (within a second)
check_eq "housekeeping prunes nonces older than the skew window, keeps recent ones" "new" \
	"$(lsc_psql lightscale "SELECT string_agg(nonce, ',') FROM nonces WHERE machine_key = 'k'")"
check_eq "housekeeping prunes the change log to delta_versions" "0 true" \
	"$(lsc_psql lightscale "SELECT count(*) FROM changes JOIN networks ON networks.id = changes.network_id WHERE changes.version <= networks.version - 2") $(lsc_psql lightscale "SELECT log_floor = version - 2 FROM networks WHERE name = 'home'" | sed 's/t/true/')"
V0=$(N netmap -s "$SRV_URL_s5" -k "$T/a" | jq .version)
for i in 1 2 3; do N heartbeat -s "$SRV_URL_s5" -k "$T/c" -p 5555 -e "203.0.113.$i:5555" >/dev/null; done
check_eq "since 3 versions back with delta_versions 2: full map" "true" \
	"$(N netmap -s "$SRV_URL_s5" -k "$T/a" --since "$V0" | jq .full)"
check_eq "since 1 version back: delta" "false" \
	"$(N netmap -s "$SRV_URL_s5" -k "$T/a" --since $((V0 + 2)) | jq .full)"
lsc_stop s5

# database outage: health and requests say so; after it, long-polls work again
lsc_stop s3
lsc_stop s4
lsc_pg_stop
res=$(N health -s "$U1")
check "database down: health 503 unavailable" grep -q "^error 503 unavailable" <<<"$res"
res=$(N netmap -s "$U1" -k "$T/a")
check "database down: netmap 503 unavailable" grep -q "^error 503 unavailable" <<<"$res"
lsc_pg_restart || fail "PostgreSQL restarts"
for _ in $(seq 50); do
	N health -s "$U1" >/dev/null && break
	sleep 0.2
done
check_eq "database back: health ok again" "ok" "$(N health -s "$U1" | jq -r .database)"
V=$(N netmap -s "$U1" -k "$T/a" | jq .version)
sleep 1.5 # the LISTEN connection reconnects within a second
N netmap -s "$U1" -k "$T/a" --since "$V" --wait 20 >"$T/lp3" &
lp=$!
sleep 0.5
t0=$(lsc_ms)
hb=$(N heartbeat -s "$U2" -k "$T/c" -p 5555 -e 203.0.113.77:5555)
wait $lp
check "the first request after the outage succeeds (the idle connection was replaced)" grep -q '"ok":true' <<<"$hb"
dt=$(($(lsc_ms) - t0))
[ "$dt" -lt 1000 ] && ok "after the outage a change on server 2 wakes server 1 (${dt} ms)" ||
	fail "wake after the outage" "took $dt ms"
check "no token secret in any server log" bash -c "! grep -q '${TOK#lst_}' '$T'/s*/serve.log"
tap_done
