#!/usr/bin/env bash
# lib/turnclient against coturn (a real TURN server) on loopback, and STUN interop
# in the other direction (our client, coturn's server).
#
#   lsr-turn: node A (TURN) --\                         /--> peer P (plain UDP)
#             node B (TURN) ---+--> turnserver 127.0.0.1 +--> A <-> B relay to relay
#   lightscale-relay stun-query                 (long-term credentials, realm
#                                                lightscale.test, loopback peers allowed)
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
BUILD=${BUILD:-build}
RELAY=$BUILD/lightscale-relay

if ! command -v turnserver >/dev/null; then
	fail "coturn's turnserver is installed (apt-get install coturn)"
	tap_done
	exit 1
fi
tmp=$(mktemp -d /tmp/lsr-$$-XXXX)
turn_pid=
cleanup() {
	[ -n "$turn_pid" ] && kill "$turn_pid" 2>/dev/null && wait "$turn_pid" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

# Ports from our PID, so parallel runs do not collide; skip ones in use.
free_udp() { [ -z "$(ss -Hlun "sport = :$1" 2>/dev/null)" ]; }
port=$((20000 + ($$ % 2000) * 2))
for _ in 1 2 3 4 5 6 7 8; do free_udp "$port" && break; port=$((port + 4001)); done
rmin=$((40000 + ($$ % 1000) * 16))
cat >"$tmp/turnserver.conf" <<CONF
listening-ip=127.0.0.1
relay-ip=127.0.0.1
listening-port=$port
min-port=$rmin
max-port=$((rmin + 15))
lt-cred-mech
realm=lightscale.test
user=lsr-node:correct-horse
allow-loopback-peers
no-tls
no-dtls
no-cli
userdb=$tmp/turndb
pidfile=$tmp/turnserver.pid
log-file=$tmp/turnserver.log
simple-log
CONF
turnserver -c "$tmp/turnserver.conf" >"$tmp/turnserver.out" 2>&1 &
turn_pid=$!

up=
for _ in $(seq 50); do
	if out=$($RELAY stun-query 127.0.0.1:$port --timeout 1s --json 2>/dev/null); then up=1; break; fi
	kill -0 "$turn_pid" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$up" ]; then
	fail "coturn started on 127.0.0.1:$port" "$(tail -20 "$tmp/turnserver.out" "$tmp"/turnserver*.log 2>/dev/null)"
	tap_done
	exit 1
fi
ok "coturn started on 127.0.0.1:$port"
check_eq "our STUN client against coturn's server: mapped == local" \
	"$(jq -r .local <<<"$out" | sed 's/^0.0.0.0/127.0.0.1/')" "$(jq -r .mapped <<<"$out")"

"$BUILD/relay/lsr-turn" --server 127.0.0.1:$port --user lsr-node --password correct-horse
check_eq "lsr-turn exits 0" 0 "$?"
tap_done
