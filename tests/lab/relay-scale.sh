#!/usr/bin/env bash
# Many nodes on one relay process (one epoll loop, no thread per client).
#
#   lsr-e2e --scale 1000: 1000 TCP clients + 1000 UDP clients --> lightscale-relay
#   each node sends to the next around a ring, on both relays        127.0.0.1
#
# While they are all on, status must count them and the relay's memory stays small;
# then every frame and datagram of the ring arrives from the right node.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
BUILD=${BUILD:-build}
RELAY=$BUILD/lightscale-relay
N=${N:-1000}

tmp=$(mktemp -d /tmp/lsr-$$-XXXX)
relay_pid= e2e_pid=
cleanup() {
	[ -n "$e2e_pid" ] && kill "$e2e_pid" 2>/dev/null
	[ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
ulimit -n 8192

# Every hello comes from 127.0.0.1: no per-address limit here.
$RELAY serve --foreground --udp 127.0.0.1:0 --stream 127.0.0.1:0 --proof-rate 0 \
	--control "$tmp/relay.sock" 2>"$tmp/relay.log" &
relay_pid=$!
for _ in $(seq 50); do [ -S "$tmp/relay.sock" ] && break; sleep 0.1; done
st=$($RELAY status --control "$tmp/relay.sock" --json) || { fail "relay started"; exit 1; }
udp=$(jq -r '.listeners[] | select(.kind=="udp").address' <<<"$st")
stream=$(jq -r '.listeners[] | select(.kind=="stream").address' <<<"$st")
rss0=$(awk '/VmRSS/ {print $2}' /proc/$relay_pid/status)

"$BUILD/relay/lsr-e2e" --udp "$udp" --stream "$stream" --scale "$N" >"$tmp/e2e.out" 2>&1 &
e2e_pid=$!
for _ in $(seq 600); do grep -q '^# hold' "$tmp/e2e.out" && break; kill -0 "$e2e_pid" 2>/dev/null || break; sleep 0.1; done
st=$($RELAY status --control "$tmp/relay.sock" --json)
check_eq "status counts $N stream connections" "$N" "$(jq -r .stream.connections <<<"$st")"
check_eq "status counts $N UDP registrations" "$N" "$(jq -r .udp.registrations <<<"$st")"
check_eq "status lists the first 1000 of each" "$((N < 1000 ? N : 1000)) $((N < 1000 ? N : 1000))" \
	"$(jq -r '"\(.stream_peers | length) \(.udp_peers | length)"' <<<"$st")"
rss=$(awk '/VmRSS/ {print $2}' /proc/$relay_pid/status)
per=$(((rss - rss0) * 1024 / (2 * N)))
echo "# relay RSS ${rss0} kB idle, ${rss} kB with $N + $N nodes (about $per bytes per node)"
if [ "$per" -lt 16384 ]; then ok "memory per node under 16 KiB ($per bytes)"
else fail "memory per node under 16 KiB" "$per bytes"; fi
wait "$e2e_pid"; rc=$?; e2e_pid=
cat "$tmp/e2e.out"
check_eq "lsr-e2e --scale exits 0" 0 "$rc"
check "the relay is still up" kill -0 "$relay_pid"
tap_done
