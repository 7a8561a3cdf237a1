#!/usr/bin/env bash
# trust-enroll: `lightscale init --token TOKEN@IDENTITY@PIN` against `serve --tls`: the
# profile keeps the identity key and the pins, register and netmap go over https pinned
# from the first request (no trust on first use); an enrollment string with a pin of
# another key is refused naming both fingerprints, and nothing is registered. A plain
# token still works (over http).
#
#   lightscale (profiles in $T/ls) ── HTTPS 127.0.0.1:<any> ── lightscale-control serve --tls
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh
source tests/control/pg.sh

LS=${LIGHTSCALE_BUILD:-build}/lightscale
T=$(mktemp -d /tmp/lse-enroll-XXXXXX)
cleanup() {
	if [ "$_tap_failed" -gt 0 ]; then
		echo "# serve.log:"
		grep -v debug "$T/tls/serve.log" | tail -25 | sed 's/^/#   /'
	fi
	lsc_stop tls
	rm -rf "$T"
}
trap cleanup EXIT

C() { "$LSC_BIN" "$@" --state-dir "$T/tls"; }
L() { "$LS" "$@" --state-dir "$T/ls"; }
nodes() { C node list --network sec --json | jq -c '[.[].name? // .nodes[]?.name] | sort'; }

lsc_serve tls --state-dir "$T/tls" --tls || { fail "serve --tls starts"; exit 1; }
UT=$SRV_URL_tls
PIN=$(cat "$T/tls/tls.pin")
IDENT=$(tr -d '\n' <"$T/tls/identity.pub")
BAD="sha256//$(head -c 32 /dev/urandom | base64)"
C network create sec >/dev/null || fail "network create over https"
EN=$(C token create --network sec --uses 5 --json | jq -r .enroll)
check "token create gives an enrollment string TOKEN@IDENTITY@PIN" grep -q "^lst_.*@$IDENT@$PIN\$" <<<"$EN"

# the enrollment string: identity and pins kept in the profile, the token alone as the token
L init --profile good --control "$UT" --token "$EN" --hostname good --json >/dev/null ||
	fail "init with the enrollment string"
check_eq "init keeps the identity and the pin in config.json (0600)" "$IDENT $PIN 600" \
	"$(jq -r '"\(.identity) \(.tls_pins)"' "$T/ls/good/config.json") $(stat -c %a "$T/ls/good/config.json")"
check_eq "the token file holds only the token" "${EN%%@*}" "$(cat "$T/ls/good/token")"
out=$(L register --profile good --json 2>&1)
check_eq "register over https, pinned from the first request" good "$(jq -r .node.name <<<"$out" 2>/dev/null)"
out=$(L netmap --profile good --fetch --json 2>&1)
check_eq "netmap over https (pinned, signed by the enrolled identity)" "good sec" \
	"$(jq -r '"\(.self.name) \(.network.name)"' <<<"$out" 2>/dev/null)"
OTHER=$(head -c 32 /dev/urandom | base64)
jq --arg k "$OTHER" '.identity = $k' "$T/ls/good/config.json" >"$T/c.json" && cp "$T/c.json" "$T/ls/good/config.json"
out=$(L netmap --profile good --fetch --json 2>&1)
check "a profile enrolled with another identity refuses the netmap" grep -q "signature" <<<"$out"

# another key's pin: refused before anything is sent, naming both fingerprints
L init --profile evil --control "$UT" --token "${EN%@*}@$BAD" --hostname evil --json >/dev/null ||
	fail "init with another pin"
out=$(L register --profile evil 2>&1)
rc=$?
check "register with another pin fails" test "$rc" -ne 0
check "the refusal names the server's key and the pinned one" \
	bash -c 'grep -q "pin_mismatch\|not one of the pinned" <<<"$0" && grep -qF "$1" <<<"$0" && grep -qF "$2" <<<"$0"' \
	"$out" "$PIN" "$BAD"
check_eq "and nothing is registered" '["good"]' "$(nodes)"

# a malformed enrollment string is refused by init
out=$(L init --profile broken --control "$UT" --token "${EN%%@*}@notakey@$PIN" 2>&1)
check "init refuses an enrollment string with an invalid identity" grep -q "invalid enrollment string" <<<"$out"
check "(and creates no profile)" test ! -e "$T/ls/broken/config.json"

# a plain token keeps working (no identity, no pins; https without a pin is refused by curl's CA check)
TOK=$(C token create --network sec --json | jq -r .token)
L init --profile plain --control "$UT" --token "$TOK" --hostname plain --json >/dev/null || fail "init with a plain token"
check_eq "a plain token stores no identity" "null" "$(jq -r .identity "$T/ls/plain/config.json")"
lsc_stop tls
tap_done
