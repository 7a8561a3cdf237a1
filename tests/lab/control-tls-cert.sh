#!/usr/bin/env bash
# Staged rotation for a server started with --tls-cert/--tls-key (an operator's pair, e.g.
# from a CA): `tls rotate --cert F --key F' stages the next pair, endorsed and published in
# netmaps while the old one is served; `tls activate' serves it and says where to install
# it; a restart with the pair installed serves it without an unstaged-key warning.
# Refused: rotate without a pair, a mismatched pair, the pair served now.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh
source tests/control/pg.sh

T=$(mktemp -d /tmp/lsc2-tlscert-XXXXXX)
D=$T/state
cleanup() {
	[ "$_tap_failed" -gt 0 ] && [ -f "$D/serve.log" ] && grep -v debug "$D/serve.log" | tail -15 | sed 's/^/#   /'
	lsc_stop s
	rm -rf "$T"
}
trap cleanup EXIT
C() { "$LSC_BIN" "$@" --state-dir "$D"; }
N() { "$LSC_NODECLI" "$@"; }
# the operator's pairs (ECDSA P-256, self-signed: pinning is the trust)
mkpair() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=$1" \
		-keyout "$T/$1.key" -out "$T/$1.crt" 2>/dev/null
}
pin_of() { echo "sha256//$(openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)"; }
mkpair a
mkpair b
mkdir -p "$T/etc"
cp "$T/a.crt" "$T/etc/server.crt"
cp "$T/a.key" "$T/etc/server.key"
PA=$(pin_of "$T/a.crt") PB=$(pin_of "$T/b.crt")

lsc_serve s --state-dir "$D" --tls-cert "$T/etc/server.crt" --tls-key "$T/etc/server.key" ||
	{ fail "server starts with --tls-cert"; exit 1; }
U=$SRV_URL_s
serves() { curl -sk --max-time 5 --pinnedpubkey "$1" "$U/v1/health" | jq -e .ok >/dev/null 2>&1; }
check "the server serves the operator's pair A" serves "$PA"
tls_state() { C tls status --json | jq -r --arg p "$1" '.pins[] | select(.pin == $p) | .state'; }

# ---- refusals
out=$(C tls rotate 2>&1)
check_eq "tls rotate without a pair on a --tls-cert server: refused (exit 1)" "1 yes" \
	"$? $(grep -q "tls rotate --cert F --key F" <<<"$out" && echo yes)"
out=$(C tls rotate --cert "$T/b.crt" --key "$T/a.key" 2>&1)
check_eq "a certificate with another key: 400, named" "1 yes" \
	"$? $(grep -q "bad_request.*b.crt.*does not load" <<<"$out" && echo yes)"
out=$(C tls rotate --cert "$T/etc/server.crt" --key "$T/etc/server.key" 2>&1)
check_eq "the pair served now: 409" "1 yes" "$? $(grep -q "is the key served now" <<<"$out" && echo yes)"
out=$(C tls rotate --cert "$T/b.crt" 2>&1)
check_eq "--cert without --key: usage error (exit 2)" 2 "$?"
out=$(C tls rotate --cert "$T/nosuch.crt" --key "$T/b.key" 2>&1)
check_eq "a missing file: usage error naming it" "2 yes" "$? $(grep -q "nosuch.crt" <<<"$out" && echo yes)"
check_eq "nothing staged by the refusals" "none" "$(C tls status | sed -n 's/^staged *//p')"

# ---- a node enrolled pinned to A
C network create home >/dev/null
TOK=$(C token create --network home --uses 2 --json | jq -r .token)
N keygen "$T/n1"
export LS_NODECLI_PINS=$PA
N register -s "$U" -k "$T/n1" -t "$TOK" -H n1 >/dev/null || fail "node registers"

# ---- stage B
out=$(C tls rotate --cert "$T/b.crt" --key "$T/b.key" --json)
check_eq "tls rotate --cert --key stages the operator's pair B (its pin, state next)" "$PB next" \
	"$(jq -r '"\(.pin) \(.state)"' <<<"$out")"
check_eq "tls status: B next, A active, B staged" "next active $PB" \
	"$(tls_state "$PB") $(tls_state "$PA") $(C tls status --json | jq -r .server.staged)"
check "the server still serves A" serves "$PA"
check "... not B yet" bash -c '! "$@"' _ serves "$PB"
check_eq "the staged copy is DIR/tls-next.*, key mode 0600" "$PB 600" \
	"$(pin_of "$D/tls-next.crt") $(stat -c %a "$D/tls-next.key")"
m=$(N netmap -s "$U" -k "$T/n1")
check "published before it is served: the node's netmap carries B's pin" \
	jq -e --arg p "$PB" '[.control.pins[].pin] | index($p) != null' <<<"$m"

# ---- activate
out=$(C tls activate --retire-after 1h)
grep -q "^serving $PB" <<<"$out" && grep -q "install $D/tls.crt and $D/tls.key as --tls-cert $T/etc/server.crt" <<<"$out" &&
	ok "tls activate serves B and says to install it as --tls-cert" || fail "activate" "$out"
check "the server serves B from the next handshake" serves "$PB"
check "... and no longer A" bash -c '! "$@"' _ serves "$PA"
check_eq "tls status: B active, A retiring" "active retiring" "$(tls_state "$PB") $(tls_state "$PA")"
check_eq "DIR/tls.pin follows" "$PB" "$(cat "$D/tls.pin")"
LS_NODECLI_PINS="$PA;$PB" N netmap -s "$U" -k "$T/n1" | jq -e .version >/dev/null &&
	ok "the node (pinning A and the published B) reaches the server" || fail "node after activate"

# ---- install and restart
cp "$D/tls.crt" "$T/etc/server.crt"
cp "$D/tls.key" "$T/etc/server.key"
lsc_stop s
lsc_serve s --state-dir "$D" --tls-cert "$T/etc/server.crt" --tls-key "$T/etc/server.key" ||
	{ fail "server restarts"; exit 1; }
check "after the restart with B installed: the server serves B" serves "$PB"
check_eq "tls status after the restart: B active, A retiring" "active retiring" "$(tls_state "$PB") $(tls_state "$PA")"
check "no unstaged-key warning at the restart" bash -c '! grep -q "which was not staged" "$0"' "$D/serve.log"
tap_done
