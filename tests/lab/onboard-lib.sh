# WebDriver helpers for the browser labs (control-approve-browser.sh, onboard-*.sh): headless
# Chromium driven through chromedriver's WebDriver HTTP API, with curl and jq. Source it after
# tests/lib/tap.sh, with T set to the lab's temporary directory.
#
#   wd_have || skip           chromium and chromedriver are installed
#   wd_need                   the same, or the lab ends here as skipped
#   wd_start [CHROMIUM ARGS]  chromedriver on a free loopback port and one browser session;
#                             sets WD, S, DRV_PID; 1 (with the reason in WD_ERR) on failure
#   wd_session [CHROMIUM ARGS] wd_start as a test ("headless Chromium session"); the lab
#                             ends when it fails
#   wd_stop                   ends the session and chromedriver (by pid); call from the trap
#   go URL | el CSS | typein EL TEXT | click EL | text EL | title | page_source
#
# Why the browser lab failed in full runs ("chromium session", twice): its readiness loop
# `curl -s $WD/status | jq -e .value.ready && break` never waited. While chromedriver is not
# listening yet, curl prints nothing, and jq 1.6 -e on empty input exits 0, so the loop broke
# at once and the session request raced chromedriver's bind (50-150 ms here, more under
# load): connection refused, an empty session id. Now readiness means /status said
# "ready": true (_wd_ready), with up to 60 s for it; the port is one the kernel just handed
# out; a session that does not start is retried, and every failure reports chromedriver's
# answer and log.
CHROMIUM=$(command -v chromium || true)
DRIVER=$(command -v chromedriver || true)
DRV_PID=
S=
WD=
WD_ERR=

wd_have() { [ -n "$CHROMIUM" ] && [ -n "$DRIVER" ]; }

wd_need() {
	wd_have && return 0
	echo "ok 1 # SKIP chromium or chromedriver not installed"
	exit 0
}

# a loopback TCP port nobody listens on (bound and released: the kernel does not hand it out
# again at once)
_wd_free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# chromedriver answers /status with "ready": true (not: jq -e on empty input succeeds)
_wd_ready() {
	[ "$(curl -s --max-time 2 "$WD/status" | jq -r '.value.ready // false' 2>/dev/null)" = true ]
}

_wd_driver() {
	local port i
	port=$(_wd_free_port) || return 1
	"$DRIVER" --port="$port" --allowed-ips=127.0.0.1 >"$T/driver.log" 2>&1 &
	DRV_PID=$!
	WD=http://127.0.0.1:$port
	for i in $(seq 600); do
		_wd_ready && return 0
		kill -0 "$DRV_PID" 2>/dev/null || break
		sleep 0.1
	done
	WD_ERR="chromedriver on port $port did not become ready ($((i / 10)) s): $(tail -3 "$T/driver.log" | tr '\n' ' ')"
	kill "$DRV_PID" 2>/dev/null
	wait "$DRV_PID" 2>/dev/null
	DRV_PID=
	return 1
}

wd_start() {
	local try caps ans args
	args=$(printf '%s\n' "$@" | jq -R . | jq -s -c 'map(select(. != ""))')
	for try in 1 2 3; do
		if [ -z "$DRV_PID" ] && ! _wd_driver; then
			continue
		fi
		caps=$(jq -n --arg bin "$CHROMIUM" --arg dir "$T/chrome-profile-$try" --argjson extra "$args" \
			'{capabilities: {alwaysMatch: {browserName: "chrome", "goog:chromeOptions": {binary: $bin,
			args: (["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-dev-shm-usage",
			"--no-first-run", "--disable-background-networking", "--disable-component-update",
			"--disable-sync", ("--user-data-dir=" + $dir)] + $extra)}}}}')
		ans=$(curl -s --max-time 150 -X POST -H 'Content-Type: application/json' -d "$caps" "$WD/session")
		S=$(jq -r '.value.sessionId // empty' <<<"$ans" 2>/dev/null)
		[ -n "$S" ] && return 0
		WD_ERR="session (try $try): $(head -c 400 <<<"$ans") | driver log: $(tail -3 "$T/driver.log" | tr '\n' ' ')"
		echo "# $WD_ERR"
		# a driver that no longer answers is restarted for the next try
		_wd_ready || {
			kill "$DRV_PID" 2>/dev/null
			wait "$DRV_PID" 2>/dev/null
			DRV_PID=
		}
	done
	return 1
}

wd_session() {
	wd_start "$@" && ok "headless Chromium session" || { fail "chromium session" "$WD_ERR"; exit 1; }
}

wd_stop() {
	[ -n "$S" ] && curl -s --max-time 10 -X DELETE "$WD/session/$S" >/dev/null 2>&1
	S=
	if [ -n "$DRV_PID" ]; then
		kill "$DRV_PID" 2>/dev/null
		wait "$DRV_PID" 2>/dev/null
	fi
	DRV_PID=
}

wd() { curl -s --max-time 60 -X "$1" -H 'Content-Type: application/json' ${3:+-d "$3"} "$WD/session/$S$2"; }
go() { wd POST /url "$(jq -n --arg u "$1" '{url: $u}')" >/dev/null; }
el() { wd POST /element "$(jq -n --arg c "$1" '{using: "css selector", value: $c}')" | jq -r '.value["element-6066-11e4-a52e-4f735466cecf"] // empty'; }
typein() { wd POST "/element/$1/value" "$(jq -n --arg t "$2" '{text: $t}')" >/dev/null; }
click() { wd POST "/element/$1/click" '{}' >/dev/null; }
text() { wd GET "/element/$1/text" | jq -r .value; }
title() { wd GET /title | jq -r .value; }
page_source() { wd GET /source | jq -r .value; }
