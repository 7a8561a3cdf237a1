#!/usr/bin/env bash
# Tokenless registration without a browser: the server's config limits device requests
# (device_requests.lifetime and waiting_per_source are honoured, out-of-range values stop
# the server at start with a message naming the member), and an admin decides from the
# command line: lightscale-control device list|approve|reject (text and --json), after
# which the waiting `lightscale register' completes or is refused.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh
source tests/control/pg.sh

LS=${LIGHTSCALE_BUILD:-build}/lightscale
T=$(mktemp -d /tmp/lsc2-devices-XXXXXX)
cleanup() {
	[ "$_tap_failed" -gt 0 ] && [ -f "$T/s/serve.log" ] && grep -v debug "$T/s/serve.log" | tail -15 | sed 's/^/#   /'
	[ -n "${WPID:-}" ] && kill "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null
	lsc_stop s
	rm -rf "$T"
}
trap cleanup EXIT
C() { "$LSC_BIN" "$@" --state-dir "$T/s"; }
L() { local p=$1 c=$2; shift 2; "$LS" "$c" --profile "$p" --state-dir "$T/ls" "$@"; }

# ---- the config: out-of-range values are refused at start, naming the member ----
refused() { # NAME JSON EXPECTED-SUBSTRING
	local out rc
	echo "$2" >"$T/bad.json"
	out=$(timeout 20 "$LSC_BIN" serve --listen 127.0.0.1:0 --state-dir "$T/bad" --insecure-http \
		--config "$T/bad.json" 2>&1)
	rc=$?
	[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -qF -- "$3" <<<"$out" && ok "$1" || fail "$1" "rc $rc: $out"
}
refused "lifetime 5 s: the server does not start and names device_requests.lifetime" \
	'{"device_requests": {"lifetime": 5}}' "device_requests: \`lifetime' must be an integer in 30..604800"
refused "waiting_per_source 0: refused, named" \
	'{"device_requests": {"waiting_per_source": 0}}' "device_requests: \`waiting_per_source'"
refused "waiting_max as a string: refused, named" \
	'{"device_requests": {"waiting_max": "9"}}' "device_requests: \`waiting_max'"
refused "rate_limits.device_request.per_second 0: refused, named" \
	'{"rate_limits": {"device_request": {"burst": 5, "per_second": 0}}}' "rate_limits.device_request.per_second"
refused "device_requests not an object: refused" '{"device_requests": 3}' "device_requests' must be an object"

cat >"$T/config.json" <<EOF
{"device_requests": {"lifetime": 120, "waiting_per_source": 2},
 "rate_limits": {"device_request": {"burst": 50, "per_second": 1}}}
EOF
lsc_serve s --state-dir "$T/s" --tls --config "$T/config.json" || { fail "server starts with the config"; exit 1; }
U=$SRV_URL_s
IDENT=$(tr -d '\n' <"$T/s/identity.pub")
PIN=$(cat "$T/s/tls.pin")
C network create home >/dev/null
C network create lab >/dev/null

init() { L "$1" init --control "$U" --token "@$IDENT@$PIN" --hostname "$1" >/dev/null 2>"$T/$1.init.err" ||
	fail "init $1 without a token" "$(cat "$T/$1.init.err")"; }
for n in kiosk-1 kiosk-2 kiosk-3; do init $n; done
# kiosk-1 waits for the admin (register); kiosk-2 only asks (--no-wait)
L kiosk-1 register >"$T/k1.out" 2>"$T/k1.err" &
WPID=$!
for _ in $(seq 100); do grep -qE "$U/approve/[0-9a-f]{32}" "$T/k1.out" && break; sleep 0.1; done
grep -qE "$U/approve/[0-9a-f]{32}" "$T/k1.out" && ok "register without a token prints an approval link and waits" ||
	fail "link" "$(cat "$T/k1.out" "$T/k1.err")"
L kiosk-2 register --no-wait >"$T/k2.out" 2>&1 || fail "kiosk-2 asks" "$(cat "$T/k2.out")"

# ---- device list ----
J=$(C device list --json)
R1=$(jq -r '.devices[] | select(.hostname == "kiosk-1") | .id' <<<"$J")
R2=$(jq -r '.devices[] | select(.hostname == "kiosk-2") | .id' <<<"$J")
check_eq "device list --json: both requests waiting" "waiting waiting" \
	"$(jq -r '[.devices[] | select(.hostname == "kiosk-1" or .hostname == "kiosk-2") | .status] | join(" ")' <<<"$J")"
check_eq "the link lives device_requests.lifetime (120 s), not the default 600" 120 \
	"$(jq '.devices[] | select(.hostname == "kiosk-1") | .expires_at - .created_at' <<<"$J")"
out=$(L kiosk-3 register --no-wait 2>&1)
rc=$?
[ "$rc" -ne 0 ] && grep -qi "waiting" <<<"$out" &&
	ok "a third waiting request of the same source is refused (waiting_per_source 2), naming the limit" ||
	fail "waiting_per_source" "rc $rc: $out"
txt=$(C device list)
head -1 <<<"$txt" | grep -q "^ID *HOSTNAME *SOURCE *STATUS *NODE" && ok "device list: a header" || fail "header" "$txt"
grep -qE "^$R1 +kiosk-1 +127\.0\.0\.1 +waiting +- +- " <<<"$txt" &&
	ok "device list: id, hostname, source, waiting, no node, undecided" || fail "list row" "$txt"

# ---- approve and reject ----
out=$(C device approve "$R1" 2>&1)
check_eq "device approve without --network: usage error (exit 2)" "2 yes" \
	"$? $(grep -q -- "--network NAME required" <<<"$out" && echo yes)"
out=$(C device approve "$R1" --network home)
[[ "$out" =~ ^"device request $R1 approved: node "[0-9]+" kiosk-1.home.ls.internal"$ ]] &&
	ok "device approve ID --network home: the node it made" || fail "approve text" "$out"
for _ in $(seq 100); do kill -0 "$WPID" 2>/dev/null || break; sleep 0.1; done
wait "$WPID"
rc=$?
WPID=
check_eq "the waiting register completes (exit 0) in network home" "0 home" \
	"$rc $(sed -n 's/^network: //p' "$T/k1.out")"
check_eq "the node is active in home" "kiosk-1 active" \
	"$(C node list --network home --json | jq -r '.nodes[] | "\(.hostname) \(.status)"')"
out=$(C device approve "$R1" --network home 2>&1)
rc=$?
[ "$rc" -eq 1 ] && grep -q "409\|already\|conflict" <<<"$out" && ok "approving it again: refused (exit 1)" ||
	fail "second approve" "rc $rc: $out"
out=$(C device reject "$R2" --json)
check_eq "device reject --json: the server's answer" "$R2 rejected" "$(jq -r '"\(.request) \(.status)"' <<<"$out")"
out=$(C device reject 999999 2>&1)
rc=$?
[ "$rc" -eq 1 ] && grep -q "999999" <<<"$out" && ok "an unknown request: exit 1, named" || fail "unknown" "rc $rc: $out"
out=$(C device reject '../x' 2>&1)
check_eq "a malformed id: usage error (exit 2)" 2 "$?"
out=$(L kiosk-2 register 2>&1)
rc=$?
[ "$rc" -ne 0 ] && grep -qi "reject" <<<"$out" && ok "the rejected device's register says so" ||
	fail "rejected register" "rc $rc: $out"
txt=$(C device list)
grep -qE "^$R1 +kiosk-1 +127\.0\.0\.1 +approved +[0-9]+ +[0-9a-f]{12} " <<<"$txt" &&
	grep -qE "^$R2 +kiosk-2 +127\.0\.0\.1 +rejected +- +[0-9a-f]{12} " <<<"$txt" &&
	ok "device list: approved with its node and deciding key, rejected" || fail "list after" "$txt"
out=$(L kiosk-3 register --no-wait 2>&1)
[ $? -eq 0 ] && ok "with the requests decided, the source may ask again" || fail "kiosk-3 again" "$out"
check_eq "node list unchanged by rejects: one node in lab" 0 \
	"$(C node list --network lab --json | jq '.nodes | length')"

# ---- help ----
out=$(C device --help)
grep -q "Usage: lightscale-control device list" <<<"$out" && grep -q "Usage: lightscale-control device approve ID --network NAME" <<<"$out" &&
	grep -q -- "--json" <<<"$out" && ok "device --help: every subcommand and the common options" || fail "help" "$out"
"$LSC_BIN" --help 2>&1 | grep -q "device list|approve|reject" && ok "lightscale-control --help lists device" ||
	fail "top help"
tap_done
