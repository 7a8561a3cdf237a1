#!/usr/bin/env bash
# Auth-URL onboarding without a token, end to end over HTTPS, with two control servers on
# one database (an HA set) and headless Chromium clicking the approval page.
#
#   lightscale register (no token) ──https──> server 1 ──┐
#   lightscale register (no token) ──https──> server 2 ──┼── PostgreSQL (the test's own)
#   Chromium (pinned to both servers' keys) ─────────────┘
#   ls-nodecli raw (signed requests by hand) ──http──> server 3 (same database)
#
# A device inits with only the deployment's identity and TLS pins (@IDENTITY@PINS), runs
# `lightscale register`, which prints https://CONTROL/approve/CODE and waits; nothing exists
# on the server but the request (no node, no address). The admin signs in on the page, picks
# the network and approves: register completes. Negative paths: a wrong admin key, approving
# without a network, a reused link, a rejected device (register says so, still no node), an
# expired link (register says so), sessions: one made on server 1 is honoured by server 2,
# one signed out on server 2 is refused by server 1, an expired session and one whose admin
# key was revoked are refused; the admin API with a wrong key; an unsigned or wrongly signed
# or replayed tokenless registration; the per-source cap of waiting devices and the rate
# limit on tokenless registrations.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh
source tests/control/pg.sh
source tests/lab/onboard-lib.sh
wd_need
LS=${LIGHTSCALE_BUILD:-build}/lightscale
T=$(mktemp -d /tmp/lsap-onboard-XXXXXX)
WAITERS=()
cleanup() {
	local p
	if [ "$_tap_failed" -gt 0 ]; then
		for f in "$T"/s1/serve.log "$T"/s2/serve.log; do
			echo "# $f:"
			grep -v debug "$f" | tail -15 | sed 's/^/#   /'
		done
	fi
	for p in "${WAITERS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	wd_stop
	lsc_stop s1
	lsc_stop s2
	lsc_stop s3
	lsc_pg_stop
	rm -rf "$T"
}
trap cleanup EXIT
C1() { "$LSC_BIN" "$@" --state-dir "$T/s1"; }
Q() { lsc_psql lightscale "$1"; }
L() { local p=$1 c=$2; shift 2; "$LS" "$c" --profile "$p" --state-dir "$T/ls" "$@"; }

lsc_pg_start "$T/pg" || { fail "test PostgreSQL starts"; exit 1; }
lsc_psql postgres "CREATE DATABASE lightscale" >/dev/null
DSN="host=$LSC_PG_SOCK dbname=lightscale user=lightscale"
lsc_serve s1 --state-dir "$T/s1" --db "$DSN" --tls || { fail "server 1 starts"; exit 1; }
mkdir -p "$T/s2" "$T/s3"
cp "$T/s1/identity.key" "$T/s2/identity.key"
cp "$T/s1/identity.key" "$T/s3/identity.key"
lsc_serve s2 --state-dir "$T/s2" --db "$DSN" --tls || { fail "server 2 starts"; exit 1; }
lsc_serve s3 --state-dir "$T/s3" --db "$DSN" --insecure-http || { fail "server 3 starts"; exit 1; }
U1=$SRV_URL_s1 U2=$SRV_URL_s2 U3=$SRV_URL_s3
PIN1=$(cat "$T/s1/tls.pin") PIN2=$(cat "$T/s2/tls.pin")
IDENT=$(tr -d '\n' <"$T/s1/identity.pub")
AK=$(cat "$T/s1/admin.key")
# curl trusting exactly the two servers' self-signed certificates, and pinning their keys
cat "$T/s1/tls.crt" "$T/s2/tls.crt" >"$T/servers.pem"
cx() { curl -s --cacert "$T/servers.pem" --pinnedpubkey "$PIN1;$PIN2" "$@"; }
C1 network create home >/dev/null
C1 network create office >/dev/null
nodes() { Q "SELECT count(*) FROM nodes"; }

# register NAME URL: init from the identity and pins only, register in the background
# (it waits); sets WPID, the link in LINK (empty if none came)
register_bg() {
	local n=$1 u=$2 i
	L "$n" init --control "$u" --token "@$IDENT@$PIN1,$PIN2" --hostname "$n" >/dev/null 2>"$T/$n.init.err" ||
		fail "init $n without a token" "$(cat "$T/$n.init.err")"
	L "$n" register >"$T/$n.out" 2>"$T/$n.err" &
	WPID=$!
	WAITERS+=("$WPID")
	LINK=
	for i in $(seq 300); do
		LINK=$(grep -oE "https://[^ ]*/approve/[0-9a-f]{32}" "$T/$n.out" | head -1)
		[ -n "$LINK" ] && return 0
		kill -0 "$WPID" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}
# waitpid PID: its exit status, within 60 s
waitrc() {
	local i
	for i in $(seq 600); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	wait "$1"
}

# ---- 1. a device without a token gets a link and waits; nothing exists yet ----
register_bg kiosk-1 "$U1"
[[ "$LINK" == "$U1/approve/"* ]] && ok "register without a token prints an https approval link of the server" ||
	fail "approval link" "$(cat "$T/kiosk-1.out" "$T/kiosk-1.err")"
L1=$LINK P1=$WPID
check_eq "no node row and no address exist before approval" "0 0" \
	"$(nodes) $(C1 node list --network home --json | jq '.nodes | length')"
check_eq "the request waits in the database (no network)" "waiting kiosk-1" \
	"$(Q "SELECT status || ' ' || hostname FROM device_requests" | head -1)"
kill -0 "$P1" 2>/dev/null && ok "register keeps waiting" || fail "register waits" "$(cat "$T/kiosk-1.err")"

# ---- 2. the admin in Chromium (pinned to both servers' keys) ----
wd_session "--ignore-certificate-errors-spki-list=${PIN1#sha256//},${PIN2#sha256//}"
go "$L1"
check_eq "the link opens the approval page over https" "Approve a device" "$(title)"
typein "$(el '#admin_key')" "lsa_$(printf '%064d' 0)"
click "$(el '#signin')"
check_eq "a wrong admin key is refused" "That admin key is not valid." "$(text "$(el '#error')")"
typein "$(el '#admin_key')" "$AK"
click "$(el '#signin')"
dev=$(text "$(el '#device')")
grep -q "kiosk-1" <<<"$dev" && grep -qF "$(jq -r .wg_public_key <<<"$(L kiosk-1 init --json 2>/dev/null)")" <<<"$dev" &&
	grep -q "127.0.0.1" <<<"$dev" && grep -q "Requested" <<<"$dev" &&
	ok "signed in: the device's hostname, key, time and source address" || fail "device details" "$dev"
check_eq "the admin chooses among the networks" "(choose a network),home,office" \
	"$(text "$(el '#network')" | paste -sd,)"
click "$(el '#approve')"
grep -q "choose the network" <<<"$(text "$(el '#error')")" && ok "approving without a network is refused" ||
	fail "no network" "$(page_source | head -c 600)"
check_eq "... and nothing was created" 0 "$(nodes)"
click "$(el '#network option[value="office"]')"
click "$(el '#approve')"
res=$(text "$(el '#result')")
[[ "$res" =~ ^Device\ kiosk-1\ approved:\ node\ [0-9]+\ .kiosk-1.\ in\ network\ office\.$ ]] &&
	ok "clicking Approve admits the device to the chosen network" || fail "approve" "$res"
waitrc "$P1"
check_eq "lightscale register completes (exit 0) with the node" "0 office" \
	"$? $(grep -q '^registered as node' "$T/kiosk-1.out" && sed -n 's/^network: //p' "$T/kiosk-1.out")"
check_eq "the node is active in office" "active" \
	"$(C1 node list --network office --json | jq -r '.nodes[] | select(.name == "kiosk-1") | .status')"
out=$(L kiosk-1 netmap --fetch --json 2>&1)
check_eq "its netmap comes over https (pinned, signed by the identity)" "kiosk-1 office" \
	"$(jq -r '"\(.self.name) \(.network.name)"' <<<"$out" 2>/dev/null)"
go "$L1"
check "the link is single use" grep -q "invalid, expired or already used" <<<"$(page_source)"
st=$(cx -o /dev/null -w '%{http_code}' "$L1")
check_eq "a used link answers 404" 404 "$st"

# ---- 3. HA: the session made on server 1 is known to server 2; reject there ----
ADMIN_ID=$(printf %s "$AK" | sha256sum | cut -c1-12)
register_bg kiosk-2 "$U2"
L2=$LINK P2=$WPID
[[ "$L2" == "$U2/approve/"* ]] && ok "a device registering through server 2 gets server 2's link" || fail "link 2" "$L2"
go "$L2"
check_eq "server 2 shows the device at once: the session made on server 1 is recognised" "$ADMIN_ID" \
	"$(text "$(el '#admin')")"
check_eq "the session is stored hashed, not as the cookie's id" 0 \
	"$(Q "SELECT count(*) FROM approval_sessions WHERE encode(hash, 'hex') = '$(wd GET /cookie/lsc_approve | jq -r .value.value)'")"
click "$(el '#reject')"
check_eq "clicking Reject rejects" "Device kiosk-2 rejected." "$(text "$(el '#result')")"
waitrc "$P2"
rc=$?
check_eq "register ends with exit 1 and says the admin rejected it" "1 yes" \
	"$rc $(grep -q 'rejected this device' "$T/kiosk-2.err" && echo yes)"
check_eq "a rejected device has no node" 1 "$(nodes)"
out=$(L kiosk-2 register 2>&1)
check "the rejected machine key cannot ask again" grep -q "an admin rejected this machine key" <<<"$out"

# ---- 4. sign out on server 2: server 1 refuses the session ----
register_bg kiosk-3 "$U1"
L3=$LINK P3=$WPID
go "${L3/$U1/$U2}"
check_eq "the code works on either server" "$ADMIN_ID" "$(text "$(el '#admin')")"
click "$(el '#signout')"
check_eq "sign out on server 2" "Signed out." "$(text "$(el '#result')")"
go "$L3"
[ -n "$(el '#admin_key')" ] && [ -z "$(el '#admin')" ] &&
	ok "server 1 refuses the session signed out on server 2 (asks to sign in)" || fail "signed-out session" "$(page_source | head -c 500)"
check_eq "signing out removed the session row" 0 "$(Q "SELECT count(*) FROM approval_sessions WHERE expires_at > now()")"

# ---- 5. an expired link: refused on the page and by the admin API; register says so ----
Q "UPDATE device_requests SET expires_at = now() - interval '1 second' WHERE hostname = 'kiosk-3'" >/dev/null
go "$L3"
check "an expired link is refused" grep -q "invalid, expired or already used" <<<"$(page_source)"
R3=$(Q "SELECT id FROM device_requests WHERE hostname = 'kiosk-3'")
st=$(cx -o "$T/exp.json" -w '%{http_code}' -H "Authorization: Bearer $AK" -d '{"network":"home"}' "$U1/v1/admin/devices/$R3/approve")
check_eq "the admin API cannot approve an expired request either" "409 expired" "$st $(jq -r .error.message "$T/exp.json" | grep -o expired | head -1)"
waitrc "$P3"
rc=$?
check_eq "register ends with exit 1 and says the link expired" "1 yes" \
	"$rc $(grep -q 'approval link expired' "$T/kiosk-3.err" && echo yes)"
check_eq "still only the one approved node" 1 "$(nodes)"

# ---- 6. sessions by hand (curl): HA, expiry, a revoked admin key ----
L kiosk-4 init --control "$U1" --token "@$IDENT@$PIN1,$PIN2" --hostname kiosk-4 >/dev/null 2>&1
L4=$(L kiosk-4 register --no-wait | grep -oE "https://[^ ]*/approve/[0-9a-f]{32}")
[ -n "$L4" ] && ok "register --no-wait prints the link and returns" || fail "no-wait"
signin() { cx -D - -o /dev/null --data-urlencode "admin_key=$1" "$2" | sed -n 's/^[Ss]et-[Cc]ookie: \(lsc_approve=[0-9a-f]*\);.*/\1/p'; }
CK=$(signin "$AK" "$L4")
[[ "$CK" =~ ^lsc_approve=[0-9a-f]{64}$ ]] && ok "sign-in on server 1 sets a session cookie" || fail "cookie" "$CK"
hdr=$(cx -D - -o /dev/null --data-urlencode "admin_key=$AK" "$L4")
check "the cookie is Secure, HttpOnly and SameSite=Strict over https" \
	grep -qi "^set-cookie: lsc_approve=[0-9a-f]*; Path=/approve/; Max-Age=600; HttpOnly; SameSite=Strict; Secure" <<<"$hdr"
has_admin() { cx -H "Cookie: $1" "$2" | grep -q 'id="admin"'; }
has_admin "$CK" "${L4/$U1/$U2}" && ok "server 2 honours a cookie from server 1" || fail "cross-server cookie"
Q "UPDATE approval_sessions SET expires_at = now() - interval '1 second'" >/dev/null
has_admin "$CK" "$L4" && fail "an expired session is refused" || ok "an expired session is refused"
st=$(cx -o /dev/null -w '%{http_code}' -H "Cookie: $CK" -d "action=approve&network=home" "$L4")
check_eq "approving with an expired session: 401, nothing created" "401 1" "$st $(nodes)"
K2=$(C1 admin-key create --name second --json)
K2KEY=$(jq -r .key <<<"$K2") K2ID=$(jq -r .id <<<"$K2")
CK2=$(signin "$K2KEY" "$L4")
has_admin "$CK2" "$L4" && ok "a second admin key signs in" || fail "second key" "$K2"
C1 admin-key revoke "$K2ID" >/dev/null
has_admin "$CK2" "${L4/$U1/$U2}" && fail "revoking the admin key ends its sessions" || ok "revoking the admin key ends its sessions"
R4=$(Q "SELECT id FROM device_requests WHERE hostname = 'kiosk-4'")
st=$(cx -o /dev/null -w '%{http_code}' -H "Authorization: Bearer lsa_$(printf '%064d' 7)" -d '{"network":"home"}' \
	"$U2/v1/admin/devices/$R4/approve")
check_eq "the admin API with a wrong admin key: 401, still waiting" "401 waiting" \
	"$st $(Q "SELECT status FROM device_requests WHERE id = $R4")"
st=$(cx -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $AK" -d '{"network":"nosuch"}' "$U2/v1/admin/devices/$R4/approve")
check_eq "approving into a network that does not exist: 404" 404 "$st"
out=$(cx -H "Authorization: Bearer $AK" -d '{"network":"home"}' "$U2/v1/admin/devices/$R4/approve")
check_eq "the admin API approves through server 2" "kiosk-4 active" "$(jq -r '"\(.node.name) \(.node.status)"' <<<"$out")"
out=$(L kiosk-4 register --json 2>&1)
check_eq "register afterwards returns the node" "kiosk-4 home" "$(jq -r '"\(.node.name) \(.network.name)"' <<<"$out" 2>/dev/null)"

# ---- 7. abuse: unsigned, wrongly signed, replayed, too many waiting, too many requests ----
N() { "$LSC_NODECLI" "$@"; }
N keygen "$T/a" && N keygen "$T/b"
body() { jq -nc --arg w "$(cat "$T/$1/wg.pub")" --arg m "$(cat "$T/$1/machine.pub")" --arg h "$2" \
	'{wg_key: $w, machine_key: $m, hostname: $h}'; }
st=$(curl -s -o "$T/u.json" -w '%{http_code}' -H 'Content-Type: application/json' -d "$(body a evil)" "$U3/v1/register")
check_eq "an unsigned registration without a token: 401 bad_signature" "401 bad_signature" "$st $(jq -r .error.code "$T/u.json")"
out=$(N raw -s "$U3" -k "$T/b" POST /v1/register "$(body a evil)")
check "a registration signed by another machine key: 401" grep -q "^401 .*not by the machine key it registers" <<<"$out"
out=$(N raw -s "$U3" -k "$T/a" --replay POST /v1/register "$(body a ra)")
check_eq "a replayed signed registration is refused the second time" "202 401" "$(cut -d' ' -f1 <<<"$out" | paste -sd' ')"
grep -q replayed_request <<<"$out" && ok "... as replayed_request" || fail "replay code" "$out"
LA=$(head -1 <<<"$out" | cut -d' ' -f2- | jq -r .approval_url)
codes=$(for i in $(seq 13); do curl -s -o /dev/null -w '%{http_code}\n' --data-urlencode "admin_key=lsa_$(printf '%064d' "$i")" "$LA"; done |
	sort | uniq -c | awk '{print $2 ":" $1}' | paste -sd' ')
check_eq "sign-in attempts are rate-limited per address (10, then 429)" "401:10 429:3" "$codes"
check_eq "still no node for them" 2 "$(nodes)"
Q "INSERT INTO device_requests (code_hash, machine_key, wg_key, hostname, source, expires_at)
   SELECT sha256(('x' || g)::bytea), 'k' || g, 'w' || g, 'flood-' || g, '127.0.0.1', now() + interval '5 minutes'
   FROM generate_series(1, 20) g" >/dev/null
L kiosk-5 init --control "$U1" --token "@$IDENT@$PIN1,$PIN2" --hostname kiosk-5 >/dev/null 2>&1
out=$(L kiosk-5 register --no-wait 2>&1)
check "20 devices waiting from one address: the next is refused (429)" grep -q "devices are already waiting for approval from 127.0.0.1.*HTTP 429" <<<"$out"
Q "DELETE FROM device_requests WHERE hostname LIKE 'flood-%'" >/dev/null
codes=$(for i in $(seq 14); do curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' -d "$(body b x$i)" "$U3/v1/register"; done | sort | uniq -c | awk '{print $2 ":" $1}' | paste -sd' ')
grep -q "429:" <<<"$codes" && ok "tokenless registrations are rate-limited per source ($codes)" || fail "rate limit" "$codes"
tap_done
