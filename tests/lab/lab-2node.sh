#!/usr/bin/env bash
# lab-2node: two nodes register and reach each other over the overlay (IPv4, IPv6);
# status, netmap and relay list are checked field by field; a third node joins and is
# reachable within 3 s without restarting anyone; deleting it removes it everywhere.
# n1 and n3 run the built-in userspace engine, n2 runs wireguard-go (interop).
#
#        n1 10.99.0.11        n2 10.99.0.12        n3 10.99.0.13
#        fd99::11 |           fd99::12 |           fd99::13 |
#                 +------------ br0 (ns inet) -------------+
#                           10.99.0.1 fd99::1
#                      lightscale-control :8080 (+ PostgreSQL)
source "$(dirname "$0")/lib.sh"
lab_init

lab_ns inet
lab_bridge inet br0 10.99.0.1/24 fd99::1/64
for i in 1 2 3; do lab_node n$i inet br0 10.99.0.1$i/24 fd99::1$i/64; done
CONTROL_CONFIG='{"relays": {"stun": ["10.99.0.1:3478"], "stream": ["10.99.0.1:8443"], "udp": ["10.99.0.1:3479"],
  "turn": [{"url": "turn:10.99.0.1:3478", "username": "labuser", "credential": "labpass"}]}}'
control_start inet 10.99.0.1 8080
ok "control plane with embedded PostgreSQL answers /v1/health"
net_create home
tok=$(token_create home 5)
[[ $tok == lst_* ]] && ok "enrollment token" || lab_die "enrollment token" "$tok"

node_init n1 "$tok"
node_init n2 "$tok"
pdir="$LAB_DIR/n1/$(profile_of n1)"
check_eq "init: profile directory mode 0700" 700 "$(stat -c %a "$pdir")"
check_eq "init: private keys and token mode 0600" "600 600 600" \
	"$(stat -c %a "$pdir/wg.key" "$pdir/machine.key" "$pdir/token" | tr '\n' ' ' | sed 's/ $//')"
check_eq "init: interface name" "$(ifname_of n1)" "$(jq -r .interface "$pdir/config.json")"
check_eq "register: n1 is node 'n1'" n1 "$(jq -r .node.name "$LAB_DIR/n1.register.json")"
NODE_ENGINE[n2]=wireguard-go
agent_start n1
agent_start n2
wait_for 10 "n1 configures n2" peer_count n1 1 && ok "n1's agent configured its peer" || fail "n1 peer" "$(node_log n1)"
wait_for 10 "n2 configures n1" peer_count n2 1 && ok "n2's agent configured its peer" || fail "n2 peer" "$(node_log n2)"

n1v4=$(node_addr n1 4) n1v6=$(node_addr n1 6) n2v4=$(node_addr n2 4) n2v6=$(node_addr n2 6)
lab_log "n1 $n1v4 $n1v6, n2 $n2v4 $n2v6"
ping_within n1 "$n2v4" 5 && ok "n1 pings n2 over IPv4 overlay ($n2v4)" || fail "ping n1 -> n2 v4" "$(node_log n1)"
ping_within n2 "$n1v4" 5 && ok "n2 pings n1 over IPv4 overlay" || fail "ping n2 -> n1 v4"
ping_within n1 "$n2v6" 5 && ok "n1 pings n2 over IPv6 overlay ($n2v6)" || fail "ping n1 -> n2 v6"
ping_within n2 "$n1v6" 5 && ok "n2 pings n1 over IPv6 overlay" || fail "ping n2 -> n1 v6"

# status --json, field by field
st=$(lsx n1 status --json)
check_eq "status: profile" "$(profile_of n1)" "$(jq -r .profile <<<"$st")"
check_eq "status: interface" "$(ifname_of n1)" "$(jq -r .interface <<<"$st")"
check_eq "status: engine" userspace "$(jq -r .engine <<<"$st")"
eng_cmd() { nsx "$1" ss -xlpn | grep -o "$(ifname_of "$1").sock.*users:((\"[^\"]*" | sed 's/.*"//'; }
if [ -z "${LIGHTSCALE_WG_USERSPACE:-}" ]; then
	check_eq "n1's engine is the built-in one" lightscale "$(eng_cmd n1)"
fi
check_eq "n2's engine is wireguard-go" wireguard-go "$(eng_cmd n2)"
check_eq "status names n2's engine process" wireguard-go "$(lsx n2 status --json | jq -r .engine_process.name)"
check_eq "status: served by the agent" true "$(jq -r .agent <<<"$st")"
check_eq "status: interface up" true "$(jq -r .up <<<"$st")"
check_eq "status: listen port" 51820 "$(jq -r .listen_port <<<"$st")"
check_eq "status: mtu" 1420 "$(jq -r .mtu <<<"$st")"
check_eq "status: MTU on the interface" 1420 "$(nsx n1 ip -j link show "$(ifname_of n1)" | jq '.[0].mtu')"
check_eq "status: public key is the profile's" "$(cat "$LAB_DIR/n1/$(profile_of n1)/wg.pub")" "$(jq -r .public_key <<<"$st")"
check_eq "status: IPv4 overlay address" 1 "$(jq --arg a "$n1v4" '[.addresses[] | select(startswith($a + "/"))] | length' <<<"$st")"
check_eq "status: IPv6 overlay address" 1 "$(jq --arg a "$n1v6" '[.addresses[] | select(startswith($a + "/"))] | length' <<<"$st")"
check_eq "status: one peer" 1 "$(jq '.peers | length' <<<"$st")"
check_eq "status: peer name" n2 "$(jq -r '.peers[0].name' <<<"$st")"
check_eq "status: peer id" "$(node_id n2)" "$(jq -r '.peers[0].id' <<<"$st")"
# n2 is reachable at both of its underlay addresses: the path probe settles on either
ep=$(jq -r '.peers[0].endpoint' <<<"$st")
[[ $ep == 10.99.0.12:51820 || $ep == "[fd99::12]:51820" ]] && ok "status: peer endpoint is one of n2's addresses ($ep)" ||
	fail "status: peer endpoint" "$ep"
check_eq "status: peer public key" "$(cat "$LAB_DIR/n2/$(profile_of n2)/wg.pub")" "$(jq -r '.peers[0].public_key' <<<"$st")"
check_eq "status: peer allowed IPs" "$n2v4/32 $n2v6/128" "$(jq -r '.peers[0].allowed_ips | join(" ")' <<<"$st")"
hs=$(jq -r '.peers[0].last_handshake' <<<"$st")
now=$(date +%s)
[[ $hs =~ ^[0-9]+$ ]] && ((now - hs < 60)) && ok "status: recent handshake ($((now - hs)) s ago)" || fail "status: handshake" "$hs"
(($(jq '.peers[0].rx_bytes' <<<"$st") > 0 && $(jq '.peers[0].tx_bytes' <<<"$st") > 0)) &&
	ok "status: rx/tx bytes counted" || fail "status: rx/tx" "$st"
check_eq "status: no exit node" null "$(jq -r .exit_node <<<"$st")"
lsx n1 status | grep -q "peer $(node_id n2): n2" && ok "status text names the peer" || fail "status text"
# the same through wg(8) on the engine's UAPI socket
check_eq "wg show lists the peer's key" "$(cat "$LAB_DIR/n2/$(profile_of n2)/wg.pub")" \
	"$(nsx n1 wg show "$(ifname_of n1)" peers)"

# netmap --json
nm=$(lsx n1 netmap --json)
check_eq "netmap: full" true "$(jq -r .full <<<"$nm")"
check_eq "netmap: network" home "$(jq -r .network.name <<<"$nm")"
check_eq "netmap: self id" "$(node_id n1)" "$(jq -r .self.id <<<"$nm")"
check_eq "netmap: self name" n1 "$(jq -r .self.name <<<"$nm")"
check_eq "netmap: self status" active "$(jq -r .self.status <<<"$nm")"
check_eq "netmap: self addresses" "$n1v4 $n1v6" "$(jq -r '.self.addresses | join(" ")' <<<"$nm")"
check_eq "netmap: peer" n2 "$(jq -r '.peers[0].name' <<<"$nm")"
check_eq "netmap: peer DNS name" "n2.home.ls.internal" "$(jq -r '.peers[0].dns_name' <<<"$nm")"
check_eq "netmap: peer addresses" "$n2v4 $n2v6" "$(jq -r '.peers[0].addresses | join(" ")' <<<"$nm")"
jq -e '.peers[0].endpoints | index("10.99.0.12:51820")' <<<"$nm" >/dev/null &&
	ok "netmap: peer endpoint from heartbeat" || fail "netmap: peer endpoints" "$(jq -c .peers[0].endpoints <<<"$nm")"
check_eq "netmap: version matches status" "$(jq -r .netmap_version <<<"$st")" "$(jq -r .version <<<"$nm")"
fetched=$(lsx n1 netmap --fetch --json)
check_eq "netmap --fetch: same peers as the agent's" "$(jq -c '[.peers[].id]' <<<"$nm")" "$(jq -c '[.peers[].id]' <<<"$fetched")"

# relay list --json
rl=$(lsx n1 relay list --json)
check_eq "relay list: stun" '["10.99.0.1:3478"]' "$(jq -c .stun <<<"$rl")"
check_eq "relay list: stream" '["10.99.0.1:8443"]' "$(jq -c .stream <<<"$rl")"
check_eq "relay list: udp" '["10.99.0.1:3479"]' "$(jq -c .udp <<<"$rl")"
check_eq "relay list: turn url" "turn:10.99.0.1:3478" "$(jq -r '.turn[0].url' <<<"$rl")"
check_eq "relay list: turn user" labuser "$(jq -r '.turn[0].username' <<<"$rl")"
lsx n1 relay list | grep -q "^stun    10.99.0.1:3478" && ok "relay list text" || fail "relay list text" "$(lsx n1 relay list)"

# endpoints follow the addresses: a new address on n2 reaches n1's netmap by heartbeat
nsx n2 ip addr add 10.99.0.22/24 dev eth0
ep_has() { lsx n1 netmap --json | jqe '.peers[] | select(.name == "n2") | .endpoints | index("10.99.0.22:51820")' >/dev/null; }
wait_for 5 "n2's new endpoint in n1's netmap" ep_has && ok "address change: heartbeat carries the new endpoint to n1" ||
	fail "endpoint change" "$(lsx n1 netmap --json | jq -c '.peers[].endpoints')" "$(node_log n2)"

# the kernel engine is not available here: a clear error, not a half-made interface
out=$(lsx n1 agent --engine kernel --foreground 2>&1) && fail "agent --engine kernel fails here" ||
	{ [[ $out == *"kernel WireGuard is not available"*"--engine userspace"* ]] && ok "agent --engine kernel: clear error" || fail "kernel error text" "$out"; }
out=$(lsx n2 wg-up --engine kernel 2>&1) && fail "wg-up --engine kernel fails here" ||
	{ [[ $out == *"kernel WireGuard is not available"* ]] && ok "wg-up --engine kernel: clear error" || fail "wg-up kernel error text" "$out"; }

# errors say what was wrong and what to do
out=$(nsx n1 "$LS" status --profile nosuch --state-dir "$LAB_DIR/n1" 2>&1) && fail "status of a missing profile fails" ||
	{ [[ $out == *"no profile 'nosuch'"*"lightscale init --profile nosuch"* ]] && ok "missing profile: says to run init" || fail "missing profile text" "$out"; }
one=$(token_create home 1)
mkdir -p "$LAB_DIR/x1" "$LAB_DIR/x2"
nsx n1 "$LS" init --profile "${LAB_ID}x1" --state-dir "$LAB_DIR/x1" --control "$CONTROL_URL" --token "$one" >/dev/null
nsx n1 "$LS" register --profile "${LAB_ID}x1" --state-dir "$LAB_DIR/x1" >/dev/null && ok "a one-use token registers once" || fail "one-use token"
nsx n1 "$LS" init --profile "${LAB_ID}x2" --state-dir "$LAB_DIR/x2" --control "$CONTROL_URL" --token "$one" >/dev/null
out=$(nsx n1 "$LS" register --profile "${LAB_ID}x2" --state-dir "$LAB_DIR/x2" 2>&1) && fail "a used-up token is refused" ||
	{ [[ $out == *token_used_up*"HTTP 403"*"token create"* || $out == *token_used_up*"token create"* ]] && ok "used-up token: code and what to do" || fail "used-up token text" "$out"; }
lsc node delete "$(nsx n1 "$LS" netmap --fetch --json --profile "${LAB_ID}x1" --state-dir "$LAB_DIR/x1" | jq .self.id)" >/dev/null

# a third node joins: reachable from n1 and n2 within 3 s of its agent starting, and
# n1's session with n2 is not reset by it
# (the x1 node just deleted must be gone from n1's WireGuard first: one line, n2's)
wait_for 5 "x1 removed from n1" sh -c "[ \$(nsenter --net=/run/netns/$(nsname n1) wg show $(ifname_of n1) peers | wc -l) = 1 ]"
hs12=$(nsx n1 wg show "$(ifname_of n1)" latest-handshakes | awk '{print $2}')
node_init n3 "$tok"
# a long-poll from the CLI (n3 has no agent yet: the server keeps one poll per node):
# with nothing changing the request is held, and answers "unchanged"
v=$(lsx n3 netmap --fetch --json | jq .version)
t0=$(date +%s%N)
u=$(lsx n3 netmap --since "$v" --wait 2 --json | jq .unchanged)
held=$((($(date +%s%N) - t0) / 1000000))
check_eq "netmap --since V --wait 2: unchanged" true "$u"
((held >= 1500)) && ok "netmap --wait held the request ($held ms)" || fail "long-poll held" "$held ms"
t0=$(date +%s%N)
agent_start n3
n3v4=$(node_addr n3 4) n3v6=$(node_addr n3 6)
if wait_for 3 "n1 -> n3" ping_ok n1 "$n3v4" && wait_for 3 "n2 -> n3" ping_ok n2 "$n3v6"; then
	ok "n3 reachable from n1 (v4) and n2 (v6) $((($(date +%s%N) - t0) / 1000000)) ms after its agent started"
else
	fail "n3 reachable within 3 s" "$(node_log n1)" "$(node_log n3)"
fi
check_eq "n1's handshake with n2 untouched by n3 joining" "$hs12" \
	"$(nsx n1 wg show "$(ifname_of n1)" latest-handshakes | grep "$(cat "$LAB_DIR/n2/$(profile_of n2)/wg.pub")" | awk '{print $2}')"
check_eq "n1's agent did not restart (same pid)" 1 "$(kill -0 "${AGENT_PID[n1]}" && echo 1)"

# n3 is deleted: it disappears from n1 and n2
lsc node delete "$(node_id n3)" >/dev/null && ok "admin deletes n3" || fail "node delete"
wait_for 5 "n1 drops n3" peer_count n1 1 && ok "n3 gone from n1" || fail "n1 drops n3" "$(lsx n1 status --json | jq -c '[.peers[].name]')"
wait_for 5 "n2 drops n3" peer_count n2 1 && ok "n3 gone from n2" || fail "n2 drops n3"
check_eq "n1's WireGuard has only n2" "$(cat "$LAB_DIR/n2/$(profile_of n2)/wg.pub")" "$(nsx n1 wg show "$(ifname_of n1)" peers)"
check_eq "n1's netmap no longer lists n3" '["n2"]' "$(lsx n1 netmap --json | jq -c '[.peers[].name]')"
ping_ok n1 "$n2v4" && ok "n1 still reaches n2" || fail "n1 -> n2 after delete"

tap_done
