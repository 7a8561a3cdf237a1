#!/usr/bin/env bash
# Auth-URL onboarding in a real browser: a node registers with a token of an approval
# network and gets an approval link; headless Chromium, driven through chromedriver's
# WebDriver HTTP API, opens the page, signs in with an admin key, sees the device and
# clicks Approve (then, for a second node, Reject). Negative paths: a wrong admin key is
# refused, a used link is dead, an invalid one too, an action without a session is
# refused. Skips when chromium/chromedriver are not installed (scripts/deps.sh).
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh
source tests/control/pg.sh

source tests/lab/onboard-lib.sh
wd_need
T=$(mktemp -d /tmp/lsc-browser-XXXXXX)
D=$T/state
cleanup() {
	wd_stop
	lsc_stop main
	rm -rf "$T"
}
trap cleanup EXIT
C() { "$LSC_BIN" "$@" --state-dir "$D"; }
N() { "$LSC_NODECLI" "$@"; }

lsc_serve main --state-dir "$D" --insecure-http || { fail "server starts"; exit 1; }
U=$SRV_URL_main
C network create lobby --require-approval >/dev/null
TOK=$(C token create --network lobby --uses 5 --json | jq -r .token)
N keygen "$T/n1"
N keygen "$T/n2"
R1=$(N register -s "$U" -k "$T/n1" -t "$TOK" -H kiosk-1)
URL1=$(echo "$R1" | jq -r .approval_url)
ID1=$(echo "$R1" | jq .node.id)
[[ "$URL1" =~ ^http://127\.0\.0\.1:[0-9]+/approve/[0-9a-f]{32}$ ]] && ok "register of a pending node returns an approval link" ||
	fail "approval link" "$R1"

wd_session

go "$URL1"
check_eq "the link opens the approval page" "Approve a device" "$(title)"
e=$(el "#admin_key")
[ -n "$e" ] && ok "the page asks for an admin key" || fail "admin key field"
typein "$e" "lsa_$(printf '%064d' 0)"
click "$(el '#signin')"
check_eq "a wrong admin key is refused" "That admin key is not valid." "$(text "$(el '#error')")"
check_eq "the node is still pending" pending "$(C node show "$ID1" --json | jq -r .status)"
typein "$(el '#admin_key')" "$(cat "$D/admin.key")"
click "$(el '#signin')"
dev=$(text "$(el '#device')")
grep -q "kiosk-1" <<<"$dev" && grep -qF "$(cat "$T/n1/wg.pub")" <<<"$dev" && grep -q "127.0.0.1" <<<"$dev" &&
	grep -q "Registered" <<<"$dev" && ok "signed in: the page shows hostname, key, time and source address" ||
	fail "device details" "$dev"
click "$(el '#approve')"
check_eq "clicking Approve approves" "Device $ID1 approved." "$(text "$(el '#result')")"
check_eq "the node is active" active "$(C node show "$ID1" --json | jq -r .status)"
go "$URL1"
check "the link is single use" grep -q "invalid, expired or already used" <<<"$(page_source)"

R2=$(N register -s "$U" -k "$T/n2" -t "$TOK" -H kiosk-2)
URL2=$(echo "$R2" | jq -r .approval_url)
ID2=$(echo "$R2" | jq .node.id)
go "$URL2"
typein "$(el '#admin_key')" "$(cat "$D/admin.key")"
click "$(el '#signin')"
click "$(el '#reject')"
check_eq "clicking Reject rejects" "Device $ID2 rejected." "$(text "$(el '#result')")"
check_eq "the node is rejected" rejected "$(C node show "$ID2" --json | jq -r .status)"
check_eq "the approved node sees no rejected peer" "[]" "$(N netmap -s "$U" -k "$T/n1" | jq -c '[.peers[].name]')"

# without a browser: forged and session-less posts
st=$(curl -s -o /dev/null -w '%{http_code}' "$U/approve/$(printf '%032d' 0)")
check_eq "an unknown code: 404" 404 "$st"
st=$(curl -s -o /dev/null -w '%{http_code}' "$U/approve/..%2f..%2fv1%2fhealth")
check_eq "a malformed code: 404" 404 "$st"
N keygen "$T/n3"
URL3=$(N register -s "$U" -k "$T/n3" -t "$TOK" -H kiosk-3 | jq -r .approval_url)
st=$(curl -s -o /dev/null -w '%{http_code}' -d action=approve "$URL3")
check_eq "approve without signing in: 401" 401 "$st"
check_eq "and the node stays pending" pending "$(C node list --network lobby --json | jq -r '.nodes[] | select(.name == "kiosk-3") | .status')"
hdr=$(curl -s -D - -o /dev/null -d "admin_key=$(cat "$D/admin.key")" "$URL3")
check "the session cookie is HttpOnly and SameSite=Strict" grep -qi "^set-cookie: lsc_approve=[0-9a-f]*; Path=/approve/; Max-Age=600; HttpOnly; SameSite=Strict" <<<"$hdr"
check "the page forbids framing and foreign scripts" grep -qi "^content-security-policy: default-src 'none'" <<<"$hdr"
# the node CLI prints the link
LS=${LIGHTSCALE_BUILD:-build}/lightscale
"$LS" init --profile "lstb$$" --state-dir "$T/cli" --control "$U" --token "$TOK" --hostname kiosk-4 >/dev/null 2>&1
out=$("$LS" register --profile "lstb$$" --state-dir "$T/cli" 2>&1)
check "lightscale register prints the approval link" grep -qE "^  http://127.0.0.1:[0-9]+/approve/[0-9a-f]{32}$" <<<"$out"
# on a terminal it waits: approve through the page while it waits
"$LS" init --profile "lstw$$" --state-dir "$T/cli2" --control "$U" --token "$TOK" --hostname kiosk-5 >/dev/null 2>&1
timeout 60 script -qec "$LS register --profile lstw$$ --state-dir $T/cli2" /dev/null >"$T/wait.out" 2>&1 &
wp=$!
wait_url() { grep -qE "^  http://.*/approve/" "$T/wait.out"; }
for _ in $(seq 300); do wait_url && break; sleep 0.1; done
URL5=$(grep -oE "http://[^ ]*/approve/[0-9a-f]{32}" "$T/wait.out" | tr -d '\r')
go "$URL5"
typein "$(el '#admin_key')" "$(cat "$D/admin.key")"
click "$(el '#signin')"
click "$(el '#approve')"
wait $wp
check_eq "lightscale register waits on a terminal and ends when the page approves" "0 yes" \
	"$? $(grep -q 'the device is active' "$T/wait.out" && echo yes)"
tap_done
