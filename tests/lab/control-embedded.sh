#!/usr/bin/env bash
# The embedded cluster in awkward state directories.
#
#   /tmp/lsc-emb-XXXX (0700, root)            <- postgres cannot traverse it
#     └── aaaa.../bbbb.../state (path > 107 bytes: too long for a Unix socket path)
#           ├── pg/   run/   admin.key   control.url
#   lightscale-control serve ── postgres (as user postgres, socket reached via /tmp/lsc-pg-*)
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh
source tests/control/pg.sh

T=$(mktemp -d /tmp/lsc-emb-XXXXXX)
chmod 700 "$T"
D=$T/$(printf 'a%.0s' $(seq 40))/$(printf 'b%.0s' $(seq 40))/state
cleanup() {
	lsc_stop e
	rm -rf "$T"
}
trap cleanup EXIT

mkdir -p "$D" && chmod 700 "$D"
check "the socket path would exceed 107 bytes" test "$(printf '%s' "$D/run/.s.PGSQL.5432" | wc -c)" -gt 107
lsc_serve e --state-dir "$D" && ok "serve starts in a deep state dir under a 0700 directory" || fail "serve starts"
check_eq "health" "ok" "$("$LSC_NODECLI" health -s "$SRV_URL_e" | jq -r .database)"
check "the socket is reached through a short link" grep -q "reached through /tmp/lsc-pg-" "$D/serve.log"
if [ "$(id -u)" = 0 ]; then
	check_eq "postgres runs as postgres" "postgres" \
		"$(ps -o user= -p "$(head -1 "$D/pg/postmaster.pid")" | tr -d ' ')"
	check_eq "the state dir itself stays 0700" "700" "$(stat -c %a "$D")"
fi
"$LSC_BIN" network create deep --state-dir "$D" >/dev/null
check_eq "admin commands work" "deep" "$("$LSC_BIN" network list --json --state-dir "$D" | jq -r '.networks[0].name')"
lsc_stop e
# IPv6 listener: [::1]:0, the URL file and the observed endpoint in IPv6 form; no flag
# serves HTTPS (the default), pinned by the key in DIR/tls.pin
rm -f "$D/control.url"
"$LSC_BIN" serve --listen '[::1]:0' --state-dir "$D" >>"$D/serve.log" 2>&1 &
SRV_PID_e=$!
for _ in $(seq 100); do [ -s "$D/control.url" ] && break; sleep 0.1; done
U6=$(cat "$D/control.url")
check "IPv6 listener writes an https://[::1] URL (HTTPS without a flag)" grep -q '^https://\[::1\]:[0-9]*$' <<<"$U6"
check_eq "health over IPv6, pinned" "ok" "$("$LSC_NODECLI" health -s "$U6" --pin "$(cat "$D/tls.pin")" | jq -r .database)"
# (the certificate names localhost and the first start's listen address, 127.0.0.1)
check_eq "curl trusting only DIR/tls.crt (no -k) reaches it" "true" \
	"$(lsc_curl "$D" -s "${U6/\[::1\]/localhost}/v1/health" | jq -r .ok)"
out=$("$LSC_NODECLI" health -s "$U6" --pin "sha256//$(head -c 32 /dev/urandom | base64)")
check "another pin is refused, naming the server's key" grep -qF "$(cat "$D/tls.pin")" <<<"$out"
export LS_NODECLI_PINS=$(cat "$D/tls.pin")
tok=$("$LSC_BIN" token create --network deep --state-dir "$D" --json | jq -r .token)
"$LSC_NODECLI" keygen "$T/k6"
"$LSC_NODECLI" register -s "$U6" -k "$T/k6" -t "$tok" -H six >/dev/null
check_eq "observed endpoint over IPv6" "[::1]:51820" \
	"$("$LSC_NODECLI" heartbeat -s "$U6" -k "$T/k6" -p 51820 | jq -r .observed)"
lsc_stop e
# the embedded postmaster dies under the server: the server stops and says so
# --insecure-http: plain HTTP, said in the log
lsc_serve e --state-dir "$D" --insecure-http || fail "restart with --insecure-http"
check "--insecure-http serves http://" grep -q '^http://127.0.0.1:' "$D/control.url"
check "... and warns" grep -q "warning: serving plain HTTP (--insecure-http)" "$D/serve.log"
check_eq "admin commands work over plain HTTP" "deep" "$("$LSC_BIN" network list --json --state-dir "$D" | jq -r '.networks[0].name')"
out=$("$LSC_BIN" serve --listen 127.0.0.1:0 --state-dir "$T/other2" --tls --insecure-http 2>&1)
check "--tls with --insecure-http is refused" grep -q "contradicts" <<<"$out"
lsc_stop e
lsc_serve e --state-dir "$D" || fail "restart"
check "the restarted server serves HTTPS with the same key" bash -c '[ "$(cat "$0/tls.pin")" = "$1" ] && grep -q "^https://" "$0/control.url"' "$D" "$LS_NODECLI_PINS"
pm=$(head -1 "$D/pg/postmaster.pid")
kill -9 "$pm"
for _ in $(seq 50); do kill -0 "$SRV_PID_e" 2>/dev/null || break; sleep 0.1; done
wait "$SRV_PID_e"
rc=$?
SRV_PID_e=
check_eq "the server exits with status 1 when its postmaster dies" "1" "$rc"
check "... naming it" grep -q "the embedded PostgreSQL (postmaster $pm) exited; stopping" "$D/serve.log"
out=$("$LSC_BIN" serve --listen 127.0.0.1:0 --state-dir "$T/other" --pg-user no-such-user-lsc 2>&1)
check "an unknown --pg-user is refused by name" grep -q "no user \`no-such-user-lsc'" <<<"$out"
out=$("$LSC_BIN" serve --listen 127.0.0.1:99999 --state-dir "$T/other" 2>&1)
check "an invalid --listen is refused by value" grep -q "invalid listen address \`127.0.0.1:99999'" <<<"$out"
tap_done
