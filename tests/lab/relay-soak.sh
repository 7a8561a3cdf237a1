#!/usr/bin/env bash
# Timers of lightscale-relay on loopback (slow: about 20 s):
#
#   lsr-e2e --expiry (nodes A, B, K over UDP; K also over TCP) --> lightscale-relay
#                                                                   --udp-lifetime 10s
#   bash /dev/tcp (connects, never says hello)               -->   --idle-timeout 5s
#                                                                   --hello-timeout 2s
# Registrations expire without refresh and stay with it; a silent stream client
# and a client that never finishes its hello are closed; the counters agree.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
BUILD=${BUILD:-build}
RELAY=$BUILD/lightscale-relay

tmp=$(mktemp -d /tmp/lsr-$$-XXXX)
relay_pid=
cleanup() {
	[ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

ctl=$tmp/relay.sock
$RELAY serve --foreground --udp 127.0.0.1:0 --stream 127.0.0.1:0 --udp-lifetime 10s \
	--idle-timeout 5s --hello-timeout 2s --control "$ctl" 2>"$tmp/relay.log" &
relay_pid=$!
for _ in $(seq 50); do [ -S "$ctl" ] && break; sleep 0.1; done
st=$($RELAY status --control "$ctl" --json) || { fail "relay started" "$(cat "$tmp/relay.log")"; exit 1; }
udp=$(jq -r '.listeners[] | select(.kind=="udp").address' <<<"$st")
stream=$(jq -r '.listeners[] | select(.kind=="stream").address' <<<"$st")

# A client that connects and never sends its hello.
port=${stream##*:}
exec 3<>/dev/tcp/127.0.0.1/"$port"
"$BUILD/relay/lsr-e2e" --udp "$udp" --stream "$stream" --expiry 10
check_eq "lsr-e2e --expiry exits 0" 0 "$?"
if timeout 2 cat <&3 >"$tmp/hello-timeout.bin"; then ok "the relay closed the client that never said hello"
else fail "the relay closed the client that never said hello"; fi
exec 3<&-

st=$($RELAY status --control "$ctl" --json)
check_eq "counter: two registrations expired (A, B)" 2 "$(jq -r '.counters["udp.expired"]' <<<"$st")"
check_eq "counter: two stream timeouts (silent, no hello)" 2 "$(jq -r '.counters["stream.timeouts"]' <<<"$st")"
check_eq "gauge: K and A registered" 2 "$(jq -r '.udp.registrations' <<<"$st")"
tap_done
