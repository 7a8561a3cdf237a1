#!/usr/bin/env bash
# lightscale-control benchmark: netmap build per node at 1,000 and 10,000 nodes, and 5,000
# concurrent long-polls in a 10,000-node network while one node changes, over plain HTTP
# and over HTTPS side by side (two servers sharing one database, rounds alternating).
#
#   control-bench ──(epoll, 5,000 keep-alive connections)──── serve --insecure-http ──┐
#    (seeds the networks   ──(epoll, 5,000 GnuTLS sessions,── serve --tls ────────────┼─ postgres
#     with COPY)              pinned by an enrollment string)                          │  (own, unix socket)
#                                                                                      │
# WAITERS, ROUNDS and SAMPLES override the defaults (5000, 5, 20); MODES="http tls" (default)
# picks the servers; BENCH_DEBUG=1 prints set-up times per batch and two differing deltas.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
export LIGHTSCALE_BUILD=$BUILD
source tests/control/pg.sh
MODES=${MODES:-http tls}

T=$(mktemp -d /tmp/lsc-bench-XXXXXX)
cleanup() {
	lsc_stop b
	lsc_stop t
	lsc_pg_stop
	rm -rf "$T"
}
trap cleanup EXIT

lsc_pg_start "$T/pg" || exit 1
lsc_psql postgres "CREATE DATABASE lightscale" >/dev/null
DSN="host=$LSC_PG_SOCK dbname=lightscale user=lightscale"
cat >"$T/config.json" <<'JSON'
{"rate_limits": {"address": {"burst": 1000000, "per_second": 1000000},
                 "node": {"burst": 1000, "per_second": 1000}},
 "connection_limit": 60000}
JSON
args=()
ident=()
if [[ " $MODES " == *" http "* ]]; then
	LIGHTSCALE_LOG=warn lsc_serve b --state-dir "$T/s" --db "$DSN" --config "$T/config.json" \
		--insecure-http || exit 1
	args+=(--server "$SRV_URL_b" --pid "$SRV_PID_b" --admin-key-file "$T/s/admin.key")
	# the second server of the database needs the deployment's identity key
	ident=(--identity-key "$T/s/identity.key")
fi
if [[ " $MODES " == *" tls "* ]]; then
	LIGHTSCALE_LOG=warn lsc_serve t --state-dir "$T/t" --db "$DSN" --config "$T/config.json" \
		--tls "${ident[@]}" || exit 1
	# the waiters trust what a node trusts: the pins of an enrollment string (token create)
	"$LSC_BIN" network create benchpins --state-dir "$T/t" >/dev/null || exit 1
	EN=$("$LSC_BIN" token create --network benchpins --state-dir "$T/t" --json | jq -r .enroll)
	[[ "$EN" == *@*@sha256//* ]] || { echo "control-bench: no enrollment string with pins: $EN" >&2; exit 1; }
	args+=(--tls-server "$SRV_URL_t" --tls-pid "$SRV_PID_t" --enroll "$EN")
	[ ${#ident[@]} -eq 0 ] && args+=(--admin-key-file "$T/t/admin.key")
fi
[ ${#args[@]} -gt 0 ] || { echo "control-bench: MODES=\"$MODES\" names no server (http, tls)" >&2; exit 2; }
"$BUILD/bench/control-bench" --db "$DSN" "${args[@]}" \
	--waiters "${WAITERS:-5000}" --rounds "${ROUNDS:-5}" --samples "${SAMPLES:-20}"
