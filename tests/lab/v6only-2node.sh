#!/usr/bin/env bash
# v6only-2node: the IPv6-only server strategy. The underlay has no IPv4 address at all;
# the control plane listens on [::]:8080 (HTTPS, pinned by the enrollment string), a
# second control server of the same database on [fd99::2]:8081 is the nodes' failover
# URL, the relay serves STUN and the stream relay on [::]:3478. Nodes are init'ed with
# both IPv6 control URLs; WireGuard endpoints are IPv6; the overlay carries IPv4 and
# IPv6 across it; status --json shows the IPv6 endpoints. Then control server A is
# stopped: a node that joins through B reaches n1, whose agent fails over to B.
#
#        n1 fd99::11           n2 fd99::12           n3 fd99::13 (joins later)
#             |                     |                     |
#             +--------------- br0 (ns inet) -------------+
#                   fd99::1  control A [::]:8080 (embedded PostgreSQL)
#                   fd99::2  control B [fd99::2]:8081 (A's database)
#                            relay [::]:3478 (STUN udp, stream tcp)
#   (no IPv4 address on any link; only lo keeps 127.0.0.1)
source "$(dirname "$0")/lib.sh"
lab_init
RELAY_BIN="$BUILD/lightscale-relay"
[ -x "$RELAY_BIN" ] || lab_die "lightscale-relay binary" "missing $RELAY_BIN"

lab_ns inet
lab_bridge inet br0 fd99::1/64 fd99::2/64
for i in 1 2 3; do lab_node n$i inet br0 fd99::1$i/64; done
# IPv6-only: the kernel must not invent IPv4 either
for n in inet n1 n2 n3; do nsx $n sysctl -qw net.ipv6.conf.all.forwarding=0; done

v4_on_links() {
	local n
	for n in inet n1 n2 n3; do nsx $n ip -4 -o addr show | grep -v ' lo ' ; done
}
check_eq "underlay: no IPv4 address on any namespace link" "" "$(v4_on_links)"

# one PostgreSQL (Unix socket only) shared by both control servers
source "$LAB_ROOT/tests/control/pg.sh"
trap 'lsc_pg_stop; lab_cleanup' EXIT
lsc_pg_start "$LAB_DIR/pg" || lab_die "PostgreSQL starts"
lsc_psql postgres "CREATE DATABASE lightscale" >/dev/null
DSN="host=$LSC_PG_SOCK dbname=lightscale user=lightscale"

# control A: listens on the IPv6 wildcard, HTTPS
CONTROL_NS=inet CONTROL_DIR="$LAB_DIR/control" CONTROL_URL="https://[fd99::1]:8080"
mkdir -p "$CONTROL_DIR" "$LAB_DIR/control-b"
cat >"$LAB_DIR/control.json" <<'EOF2'
{"relays": {"stun": ["[fd99::1]:3478"], "stream": ["[fd99::1]:3478"]}}
EOF2
bg inet "$LAB_DIR/control.log" "$LSC" serve --tls --listen "[::]:8080" --state-dir "$CONTROL_DIR" \
	--config "$LAB_DIR/control.json" --db "$DSN"
CONTROL_PID=$BG_PID
health() { nsx inet curl -gsfk "$1/v1/health"; }
wait_for 60 "control A health" health "$CONTROL_URL" || lab_die "control A starts on [::]:8080" "$(tail -20 "$LAB_DIR/control.log")"
ok "control A serves HTTPS on [::]:8080, reached at $CONTROL_URL"
nsx inet ss -6Htln 'sport = :8080' | grep -Eq '(\[::\]|\*):8080' && ok "control A's socket is the IPv6 wildcard" ||
	fail "control A listens on [::]:8080" "$(nsx inet ss -tln)"

# control B: the same database and deployment identity, on one IPv6 address
cp "$CONTROL_DIR/identity.key" "$LAB_DIR/control-b/identity.key"
bg inet "$LAB_DIR/control-b.log" "$LSC" serve --tls --listen "[fd99::2]:8081" --state-dir "$LAB_DIR/control-b" \
	--config "$LAB_DIR/control.json" --db "$DSN"
CONTROL_B_PID=$BG_PID
URL_B="https://[fd99::2]:8081"
wait_for 30 "control B health" health "$URL_B" || lab_die "control B starts on [fd99::2]:8081" "$(tail -20 "$LAB_DIR/control-b.log")"
ok "control B (same database) serves HTTPS on [fd99::2]:8081"

# the relay: STUN and the stream relay on [::]:3478
bg inet "$LAB_DIR/relay.log" "$RELAY_BIN" serve --foreground --stun "[::]:3478" --stream "[::]:3478" --control "$LAB_DIR/relay.sock"
wait_for 10 "relay listens" sh -c "nsenter --net=/run/netns/$(nsname inet) ss -Htln 'sport = :3478' | grep -q ."

net_create home
tok=$(lsc token create --network home --uses 10 --json | jq -r .enroll)
[[ $tok == lst_*@*@sha256//* ]] && ok "enrollment string with the TLS pins" || lab_die "enrollment string" "$tok"
pins=${tok##*@}
[[ $pins == *,* || $pins == *";"* ]] && ok "the enrollment string pins both servers" ||
	lab_log "the enrollment string carries one pin: $pins"

NODE_CONTROL_URL="$CONTROL_URL,$URL_B"
node_init n1 "$tok"
node_init n2 "$tok"
check_eq "init keeps both IPv6 control URLs" "$NODE_CONTROL_URL" \
	"$(jq -r '.control | if type == "array" then join(",") else . end' "$LAB_DIR/n1/$(profile_of n1)/config.json")"
agent_start n1
agent_start n2
wait_for 15 "n1 configures n2" peer_count n1 1 && ok "n1's agent configured its peer" || fail "n1 peer" "$(node_log n1)"
wait_for 15 "n2 configures n1" peer_count n2 1 && ok "n2's agent configured its peer" || fail "n2 peer" "$(node_log n2)"

n1v4=$(node_addr n1 4) n1v6=$(node_addr n1 6) n2v4=$(node_addr n2 4) n2v6=$(node_addr n2 6)
lab_log "n1 $n1v4 $n1v6, n2 $n2v4 $n2v6"
ping_within n1 "$n2v4" 10 && ok "overlay IPv4 across the IPv6-only underlay (n1 -> $n2v4)" || fail "ping v4" "$(node_log n1)"
ping_within n2 "$n1v4" 5 && ok "overlay IPv4 back (n2 -> n1)" || fail "ping v4 back"
ping_within n1 "$n2v6" 5 && ok "overlay IPv6 (n1 -> $n2v6)" || fail "ping v6"
ping_within n2 "$n1v6" 5 && ok "overlay IPv6 back (n2 -> n1)" || fail "ping v6 back"

st=$(lsx n1 status --json)
check_eq "status: n2's WireGuard endpoint is IPv6" "[fd99::12]:51820" "$(jq -r '.peers[0].endpoint' <<<"$st")"
check_eq "n2 status: n1's WireGuard endpoint is IPv6" "[fd99::11]:51820" \
	"$(lsx n2 status --json | jq -r '.peers[0].endpoint')"
hs=$(jq -r '.peers[0].last_handshake' <<<"$st")
[[ $hs =~ ^[0-9]+$ ]] && ok "status: a handshake over IPv6" || fail "handshake" "$st"
lsx n1 status | grep -q "endpoint: *\[fd99::12\]:51820" && ok "status text shows the IPv6 endpoint" ||
	fail "status text endpoint" "$(lsx n1 status)"
nm=$(lsx n1 netmap --json)
check_eq "netmap: every endpoint of n2 is IPv6" "true" \
	"$(jq '[.peers[0].endpoints[] | startswith("[")] | all and length > 0' <<<"$nm")"
lab_log "n2's endpoints in n1's netmap: $(jq -c '.peers[0].endpoints' <<<"$nm")"
check_eq "netmap: no link-local endpoint is advertised" 0 "$(jq '[.peers[].endpoints[] | select(startswith("[fe80"))] | length' <<<"$nm")"
check_eq "wg show: endpoint" "[fd99::12]:51820" \
	"$(nsx n1 wg show "$(ifname_of n1)" endpoints | awk '{print $2}')"

# the relay over IPv6: listed in the netmap, and its STUN answers with our IPv6 address
rl=$(lsx n1 relay list --json)
check_eq "relay list: IPv6 STUN" '["[fd99::1]:3478"]' "$(jq -c .stun <<<"$rl")"
check_eq "relay list: IPv6 stream relay" '["[fd99::1]:3478"]' "$(jq -c .stream <<<"$rl")"
sq=$(nsx n1 "$RELAY_BIN" stun-query "[fd99::1]:3478" --bind "[fd99::11]:40001" --json 2>&1)
jq -e '.. | strings | select(test("fd99::11"))' <<<"$sq" >/dev/null &&
	ok "STUN over IPv6: the relay maps n1 to [fd99::11]:40001" || fail "stun over IPv6" "$sq"

# failover: control A stops; the tunnels stay up, and a node that joins through B
# shows up at n1 and n2 (their long-polls moved to B)
kill "$CONTROL_PID"
wait "$CONTROL_PID" 2>/dev/null
health "$CONTROL_URL" && fail "control A is down" || ok "control A is down"
ping_ok n1 "$n2v6" && ok "the tunnel stays up without control A" || fail "tunnel after A stopped"
lsb() { nsx inet "$LSC" "$@" --state-dir "$LAB_DIR/control-b"; }
tok3=$(lsb token create --network home --uses 1 --json | jq -r .enroll)
NODE_CONTROL_URL="$URL_B"
node_init n3 "$tok3"
agent_start n3
n3v4=$(node_addr n3 4) n3v6=$(node_addr n3 6)
t0=$(date +%s)
wait_for 45 "n1 configures n3 through B" peer_count n1 2 && ok "n1 failed over to control B: n3 configured ($(($(date +%s) - t0)) s)" ||
	fail "n1 failover" "$(node_log n1)"
ping_within n1 "$n3v4" 10 && ok "n1 reaches n3 (IPv4 overlay) after the failover" || fail "ping n3 v4" "$(node_log n3)"
ping_within n3 "$n1v6" 5 && ok "n3 reaches n1 (IPv6 overlay)" || fail "ping n1 v6 from n3"
check_eq "status: n3's endpoint is IPv6" "[fd99::13]:51820" \
	"$(lsx n1 status --json | jq -r '.peers[] | select(.name == "n3") | .endpoint')"
tap_done
