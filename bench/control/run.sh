#!/usr/bin/env bash
# lightscale-control benchmark: netmap build per node at 1,000 and 10,000 nodes, and 5,000
# concurrent long-polls in the 10,000-node network while one node changes.
#
#   control-bench (epoll, 5,000 keep-alive connections) ── lightscale-control serve ── postgres
#                 (also seeds the networks with COPY)                                  (own, unix socket)
#
# WAITERS, ROUNDS and SAMPLES override the defaults (5000, 5, 20).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
export LIGHTSCALE_BUILD=$BUILD
source tests/control/pg.sh

T=$(mktemp -d /tmp/lsc-bench-XXXXXX)
cleanup() {
	lsc_stop b
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
LIGHTSCALE_LOG=warn lsc_serve b --state-dir "$T/s" --db "$DSN" --config "$T/config.json" || exit 1
"$BUILD/bench/control-bench" --server "$SRV_URL_b" --db "$DSN" --admin-key-file "$T/s/admin.key" \
	--pid "$SRV_PID_b" --waiters "${WAITERS:-5000}" --rounds "${ROUNDS:-5}" --samples "${SAMPLES:-20}"
