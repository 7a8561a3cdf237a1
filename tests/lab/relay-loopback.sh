#!/usr/bin/env bash
# lightscale-relay on loopback, driven by real clients.
#
#   lsr-e2e (lib/relayclient: nodes A..E, UDP and stream) ---\
#   lightscale-relay stun-query, coturn's turnutils_stunclient --+--> lightscale-relay
#   bash /dev/udp (malformed STUN)                             --/      127.0.0.1:{udp,stream}
#                                                                        + control socket
#
# Asserts what an operator would check: payloads arrive, probes are delivered, a
# reconnect replaces the old connection, a malformed frame closes only that
# connection, STUN answers with the client's address (ours and coturn's client),
# and the counters in `status --json` say what happened.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
BUILD=${BUILD:-build}
RELAY=$BUILD/lightscale-relay
E2E=$BUILD/relay/lsr-e2e

tmp=$(mktemp -d /tmp/lsr-$$-XXXX)
relay_pid=
cleanup() {
	[ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

ctl=$tmp/relay.sock
$RELAY serve --foreground --udp 127.0.0.1:0 --stream 127.0.0.1:0 --stun '[::1]:0' \
	--udp '[::1]:0' --stream '[::1]:0' --queue-limit 64K --control "$ctl" 2>"$tmp/relay.log" &
relay_pid=$!
for _ in $(seq 50); do [ -S "$ctl" ] && break; sleep 0.1; done
status() { $RELAY status --control "$ctl" --json; }
counter() { status | jq -r --arg k "$1" '.counters[$k]'; }

st=$(status) || { fail "relay started" "$(cat "$tmp/relay.log")"; tap_done; exit 1; }
ok "relay started and answers status"
udp=$(jq -r '.listeners[] | select(.kind=="udp").address | select(startswith("127."))' <<<"$st")
stream=$(jq -r '.listeners[] | select(.kind=="stream").address | select(startswith("127."))' <<<"$st")
udp6=$(jq -r '.listeners[] | select(.kind=="udp").address | select(startswith("["))' <<<"$st")
stream6=$(jq -r '.listeners[] | select(.kind=="stream").address | select(startswith("["))' <<<"$st")
stun6=$(jq -r '.listeners[] | select(.kind=="stun").address' <<<"$st")
echo "# udp $udp stream $stream stun $stun6"

# --- the relay clients (TAP lines pass through)
"$E2E" --udp "$udp" --stream "$stream"
e2e_rc=$?
check_eq "lsr-e2e exits 0" 0 "$e2e_rc"

check_eq "counter: UDP payloads forwarded" 7 "$(counter udp.forwarded_packets)"
check_eq "counter: UDP unknown destination" 1 "$(counter udp.unknown_destination)"
check_eq "counter: UDP unregistered source" 1 "$(counter udp.unregistered_source)"
check_eq "counter: UDP rejected (signature, stale, replay, takeover)" 4 "$(counter udp.rejected)"
check_eq "counter: stream hellos refused (signature, takeover)" 2 "$(counter stream.hello_failed)"
check_eq "counter: stream replaced" 1 "$(counter stream.replaced)"
check_eq "counter: stream malformed" 1 "$(counter stream.malformed)"
check_eq "counter: stream protocol errors" 1 "$(counter stream.protocol_errors)"
check_eq "counter: stream probes" 1 "$(counter stream.probes)"
drops=$(counter stream.queue_drops)
if [ "$drops" -gt 0 ]; then ok "counter: slow reader's overflow dropped ($drops frames)"
else fail "counter: slow reader's overflow dropped" "stream.queue_drops=$drops"; fi

# --- who is on the relay: the registrations still alive, by key and address
st=$(status)
regs=$(jq -r .udp.registrations <<<"$st")
check_eq "status lists every UDP registration ($regs)" "$regs" "$(jq -r '.udp_peers | length' <<<"$st")"
check_eq "... each with a base64 key and a 127.0.0.1 address" "$regs" \
	"$(jq -r '[.udp_peers[] | select((.key | length) == 44 and (.address | startswith("127.0.0.1:")))] | length' <<<"$st")"
check_eq "... and so does the text form" "$regs" "$($RELAY status --control "$ctl" | grep -c '^peer udp ')"

# --- the same clients over IPv6
echo "# again over IPv6: udp $udp6 stream $stream6"
"$E2E" --udp "$udp6" --stream "$stream6"
check_eq "lsr-e2e over IPv6 exits 0" 0 "$?"

# --- STUN, ours: the mapped address is the socket we sent from
out=$($RELAY stun-query "$udp" --bind 127.0.0.1:0 --json)
check_eq "stun-query (IPv4, UDP relay port): mapped == local" \
	"$(jq -r .local <<<"$out")" "$(jq -r .mapped <<<"$out")"
out=$($RELAY stun-query "$stun6" --bind '[::1]:0' --json)
check_eq "stun-query (IPv6, STUN-only port): mapped == local" \
	"$(jq -r .local <<<"$out")" "$(jq -r .mapped <<<"$out")"
if $RELAY stun-query 127.0.0.1:9 --timeout 1s >/dev/null 2>"$tmp/err"; then
	fail "stun-query without a server fails"
else
	check_eq "stun-query without a server fails, saying why" 1 "$(grep -c 'timed out' "$tmp/err")"
fi

# --- STUN, coturn's client against our server
if command -v turnutils_stunclient >/dev/null; then
	out=$(timeout 10 turnutils_stunclient -p "${udp##*:}" -L 127.0.0.1 127.0.0.1 2>&1)
	if grep -q 'UDP reflexive addr: 127.0.0.1:[0-9]' <<<"$out"; then
		ok "coturn turnutils_stunclient gets our XOR-MAPPED-ADDRESS"
	else
		fail "coturn turnutils_stunclient gets our XOR-MAPPED-ADDRESS" "$out"
	fi
	out=$(timeout 10 turnutils_stunclient -p "${stun6##*:}" -L ::1 ::1 2>&1)
	if grep -q 'reflexive addr: ::1:[0-9]\|reflexive addr: \[::1\]:[0-9]' <<<"$out"; then
		ok "coturn turnutils_stunclient over IPv6"
	else
		fail "coturn turnutils_stunclient over IPv6" "$out"
	fi
else
	fail "coturn's turnutils_stunclient is installed (apt-get install coturn)"
fi

# --- malformed STUN is counted and ignored; the server keeps answering
before=$(counter stun.malformed)
port=${udp##*:}
printf '\x00\x01\x00\x05\x21\x12\xa4\x42abcdefghijkl\x00' >/dev/udp/127.0.0.1/"$port"   # length not /4
printf '\x00\x01\x00\x08\x21\x12\xa4\x42abcdefghijkl\x80\x28\x00\x04\x00\x00\x00\x00' \
	>/dev/udp/127.0.0.1/"$port"                                                  # bad FINGERPRINT
printf '\x00\x01\x00\x04\x21\x12\xa4\x42abcdefghijkl\x00\x20\x00\x40' >/dev/udp/127.0.0.1/"$port" # attr past end
sleep 0.2
check_eq "malformed STUN is counted" $((before + 3)) "$(counter stun.malformed)"
check "STUN still answered after malformed input" $RELAY stun-query "$udp" --timeout 2s

# --- text status comes from the same document
text=$($RELAY status --control "$ctl")
check_eq "text status shows the same counter" "counter stun.requests $(counter stun.requests)" \
	"$(grep '^counter stun.requests ' <<<"$text")"

# --- SIGUSR1 logs counters
replaced=$(counter stream.replaced)
kill -USR1 "$relay_pid"; sleep 0.2
check "SIGUSR1 logs the counters ($replaced replaced)" grep -q "counter stream.replaced $replaced\$" "$tmp/relay.log"

# --- usage errors quote the bad value and exit 2
$RELAY serve --foreground --udp 127.0.0.1:99999 2>"$tmp/err"; rc=$?
check_eq "a bad listen address exits 2" 2 "$rc"
check "... and quotes it" grep -q "\`127.0.0.1:99999'" "$tmp/err"
check "--help reads like a man page" bash -c "$RELAY --help | grep -q '^SYNOPSIS' && $RELAY --help | grep -q '^SIGNALS'"

# --- the example config file is valid (listen options from the command line)
$RELAY serve --foreground --config relay/relay.conf.example --udp 127.0.0.1:0 --stream 127.0.0.1:0 \
	--control "$tmp/example.sock" 2>"$tmp/example.log" &
ex_pid=$!
# the socket file appears at bind(), before listen(): wait for an answer, not the file
for _ in $(seq 100); do $RELAY status --control "$tmp/example.sock" >/dev/null 2>&1 && break; sleep 0.1; done
check_eq "relay/relay.conf.example loads (queue limit 1M)" 1048576 \
	"$($RELAY status --control "$tmp/example.sock" --json | jq -r .stream.queue_limit)"
kill "$ex_pid"; wait "$ex_pid"

# --- shutdown is clean
kill "$relay_pid"; wait "$relay_pid"; rc=$?; relay_pid=
check_eq "SIGTERM: the relay exits 0" 0 "$rc"
check "... and removes its control socket" test ! -e "$ctl"

# --- without --foreground: detaches once bound, logs to --log-file, obeys signals
$RELAY serve --udp 127.0.0.1:0 --control "$tmp/d.sock" --pid-file "$tmp/d.pid" --log-file "$tmp/d.log"
check_eq "serve detaches and the parent exits 0" 0 "$?"
for _ in $(seq 30); do [ -s "$tmp/d.pid" ] && break; sleep 0.1; done
dpid=$(cat "$tmp/d.pid" 2>/dev/null)
check "the detached relay answers status" $RELAY status --control "$tmp/d.sock"
kill -USR1 "$dpid" 2>/dev/null; kill "$dpid" 2>/dev/null
for _ in $(seq 30); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
check "the detached relay exits on SIGTERM" bash -c "! kill -0 $dpid 2>/dev/null"
check "... removing its pid file" test ! -e "$tmp/d.pid"
check "... having logged its counters on SIGUSR1" grep -q 'counter control.requests 1' "$tmp/d.log"
tap_done
