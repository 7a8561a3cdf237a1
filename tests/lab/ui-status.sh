#!/usr/bin/env bash
# ui-status: the agent's local UI. A read-only status page and JSON on
# /run/lightscale/P/ui.sock (curl --unix-socket), optionally on loopback TCP (off by
# default; Host header checked); `lightscale ui' prints where; `ui serve' runs the same
# server on its own when the agent is not serving it.
#
#        n1 10.99.0.11 (ui)        n2 10.99.0.12
#                 +------ br0 (ns inet) ------+
#                    10.99.0.1 control :8080
source "$(dirname "$0")/lib.sh"
lab_init

lab_mesh n1 n2
ping_within n1 "$(node_addr n2 4)" 5 || lab_die "overlay ping"
sock="/run/lightscale/$(profile_of n1)/ui.sock"
ui_cleanup() { lab_cleanup; rm -rf "/run/lightscale/$(profile_of n1)" "/run/lightscale/$(profile_of n2)"; }
trap ui_cleanup EXIT

u=$(lsx n1 ui --json)
check_eq "ui: the socket path" "$sock" "$(jq -r .socket <<<"$u")"
check_eq "ui: the agent serves it" true "$(jq -r .serving <<<"$u")"
check_eq "ui: TCP is off by default" null "$(jq -r .listen <<<"$u")"
check_eq "socket mode 0600" 600 "$(stat -c %a "$sock")"
lsx n1 ui | grep -q "curl --unix-socket $sock" && ok "ui text: says how to reach it" || fail "ui text" "$(lsx n1 ui)"

get() { nsx n1 curl -s --max-time 5 --unix-socket "$sock" "http://lightscale$1"; }
code() { nsx n1 curl -s -o /dev/null -w '%{http_code}' --max-time 5 --unix-socket "$sock" "${@:2}" "http://lightscale$1"; }
st=$(get /api/status)
check_eq "/api/status: profile" "$(profile_of n1)" "$(jq -r .profile <<<"$st")"
check_eq "/api/status: the peer n2" n2 "$(jq -r '.status.peers[0].name' <<<"$st")"
# n2 is reachable at both of its underlay addresses: the endpoint is whichever the agent's
# path probe settled on, one of the two, and the same one `lightscale status' shows
ep=$(lsx n1 status --json | jq -r '.peers[0].endpoint')
[[ $ep == 10.99.0.12:51820 || $ep == "[fd99::12]:51820" ]] && ok "status: n2's endpoint is one of its addresses ($ep)" ||
	fail "status endpoint" "$ep"
check_eq "/api/status: its endpoint" "$ep" "$(jq -r '.status.peers[0].endpoint' <<<"$st")"
[[ $(jq -r '.status.peers[0].last_handshake' <<<"$st") =~ ^[0-9]+$ ]] && ok "/api/status: a handshake time" || fail "handshake" "$st"
check_eq "/api/status: the same peers as lightscale status" "$(lsx n1 status --json | jq -c '[.peers[].public_key]')" \
	"$(jq -c '[.status.peers[].public_key]' <<<"$st")"
check_eq "/api/status: DNS resolver" "$(lsx n1 dns status --json | jq -r .listen)" "$(jq -r .dns.listen <<<"$st")"
check_eq "/api/status: exit policy" first "$(jq -r .exit_policy.auto <<<"$st")"
check_eq "/api/status: no app routes, no L2 segments" "0 0" "$(jq -r '"\(.app_routes | length) \(.l2_segments | length)"' <<<"$st")"
check_eq "/api/peers: one peer" 1 "$(get /api/peers | jq length)"
check_eq "/api/routes: the profile's table" "$(lsx n1 status --json | jq .table)" "$(get /api/routes | jq .table)"
check_eq "/api/exit-node: none" null "$(get /api/exit-node | jq -r .exit_node)"
check_eq "/api/dns: the suffix" "$(lsx n1 dns status --json | jq -r .suffix)" "$(get /api/dns | jq -r .dns.suffix)"
html=$(get /)
[[ $html == *'<table id="peers">'* && $html == *'>n2<'* && $html == *"$ep"* ]] && ok "/: the HTML page lists n2 and its endpoint" ||
	fail "html" "$html"
[[ $html == *'http-equiv="refresh"'* ]] && ok "/: the page refreshes itself" || fail "refresh"
check_eq "content type of /" "text/html; charset=utf-8" \
	"$(nsx n1 curl -s -o /dev/null -w '%{content_type}' --unix-socket "$sock" http://lightscale/)"
check_eq "unknown path: 404" 404 "$(code /nosuch)"
check_eq "unknown API: 404" 404 "$(code /api/nosuch)"
check_eq "POST: 405 (read-only)" 405 "$(code /api/status -X POST -d x=1)"
check_eq "DELETE: 405" 405 "$(code / -X DELETE)"

# loopback TCP: refused for other addresses, on when configured, Host header checked
out=$(lsx n1 ui --listen 10.99.0.11:8765 2>&1) && fail "a non-loopback address is refused" ||
	{ [[ $out == *"not a loopback"* ]] && ok "a non-loopback address is refused" || fail "non-loopback message" "$out"; }
nsx n1 ss -Htln 'sport = :8765' | grep -q . && fail "nothing listens on 8765 yet" || ok "nothing listens on TCP by default"
lsx n1 ui --listen 127.0.0.1:8765 >/dev/null && ok "ui --listen 127.0.0.1:8765" || fail "ui --listen"
agent_kill n1
[ -e "$sock" ] && fail "the agent removes its socket when it stops" || ok "the agent removes its socket when it stops"
agent_start n1
wait_for 5 "ui socket" test -S "$sock" || fail "ui socket after restart"
wait_for 5 "tcp ui" sh -c "nsenter --net=/run/netns/$(nsname n1) curl -sf http://127.0.0.1:8765/api/peers >/dev/null" &&
	ok "after a restart the agent serves http://127.0.0.1:8765" || fail "tcp ui" "$(node_log n1)"
check_eq "TCP /api/peers: n2" n2 "$(nsx n1 curl -s http://127.0.0.1:8765/api/peers | jq -r '.[0].name')"
check_eq "TCP: another Host header is refused (403)" 403 \
	"$(nsx n1 curl -s -o /dev/null -w '%{http_code}' -H 'Host: evil.example:8765' http://127.0.0.1:8765/api/status)"
check_eq "TCP: Host localhost:8765 is fine" 200 \
	"$(nsx n1 curl -s -o /dev/null -w '%{http_code}' -H 'Host: localhost:8765' http://127.0.0.1:8765/)"
check_eq "TCP listens on loopback only" "127.0.0.1:8765" "$(nsx n1 ss -Htln 'sport = :8765' | awk '{print $4}')"
check_eq "ui --json: the URL" "http://127.0.0.1:8765/" "$(lsx n1 ui --json | jq -r .url)"
lsx n1 ui --listen off >/dev/null && check_eq "ui --listen off" null "$(lsx n1 ui --json | jq -r .listen)"

# ui serve: refused while the agent serves; on its own it says when no agent answers
out=$(timeout 5 nsenter --net=/run/netns/$(nsname n1) "$LS" ui serve --profile "$(profile_of n1)" --state-dir "$LAB_DIR/n1" 2>&1) && fail "ui serve refuses a socket the agent serves" ||
	{ [[ $out == *"served already"* ]] && ok "ui serve refuses a socket the agent serves" || fail "serve message" "$out"; }
agent_kill n2
sock2="/run/lightscale/$(profile_of n2)/ui.sock"
bg n2 "$LAB_DIR/ui-serve.log" "$LS" ui serve --profile "$(profile_of n2)" --state-dir "$LAB_DIR/n2"
serve_pid=$BG_PID
wait_for 5 "ui serve socket" test -S "$sock2" && ok "ui serve: serving without an agent" || fail "ui serve" "$(cat "$LAB_DIR/ui-serve.log")"
e=$(nsx n2 curl -s --unix-socket "$sock2" http://lightscale/api/status)
[[ $(jq -r .error <<<"$e") == *"no agent answers"*"lightscale agent"* ]] && ok "ui serve: no agent -> says so and what to do" ||
	fail "serve error doc" "$e"
nsx n2 curl -s --unix-socket "$sock2" http://lightscale/ | grep -q 'id="error"' && ok "ui serve: the page shows the error" ||
	fail "serve html error"
kill "$serve_pid"
wait "$serve_pid" 2>/dev/null
[ -e "$sock2" ] && fail "ui serve removes its socket on SIGTERM" || ok "ui serve removes its socket on SIGTERM"
tap_done
