#!/usr/bin/env bash
# Two nodes, each behind its own NAT router, reach each other directly after STUN and
# probes. Each router maps its node's WireGuard port 51820 to another public port, so
# the address the control plane sees (public address + listen port) is wrong and only
# the STUN-discovered one works; both routers drop unsolicited inbound traffic, so the
# direct path opens only when both sides send at once (pings from the WireGuard port,
# started by a probe through the stream relay).
#
# Then forged discovery messages from a's router (which can send to a's WireGuard port):
# an unauthenticated version 1 pong, a version 2 pong sealed with a wrong key, a genuine
# pong of b's (captured on the router) with its tag changed, that pong and a ping of b's
# replayed verbatim, forged pings (version 1, and version 2 with a wrong key). And a
# genuine fresh pong of b's delivered from another address than a pinged: it moves
# nothing. a counts every one as bad (by reason), answers none,
# and keeps b's endpoint.
#
# Then forged probes through the stream relay: a third node c joins (its agent never
# runs) and a forger connects to the relay with c's key (the relay has no allowed-keys
# list) and sends b probes, each naming an address of its own: unsealed (the JSON of
# before), sealed under a wrong key, tampered, an old one replayed behind a newer one,
# and a genuine one (sealed with c's real pair key) sent twice. b pings no address that
# only a refused probe named (counted at b's output), counts each refusal by reason, and
# still acts on the genuine one (pings its address: the counting sees pings).
#
#            ns inet: br0 203.0.113.1/24 (the internet)
#            control 203.0.113.1:8080, lightscale-relay --udp 3478 --stream 8443
#              |                                         |
#   ns na: eth0 203.0.113.11                   ns nb: eth0 203.0.113.12
#          51820 -> :41641, masquerade                51820 -> :41642, masquerade
#          lan0 10.1.0.1/24                           lan0 10.2.0.1/24
#              |                                         |
#   ns a: eth0 10.1.0.2 (agent)                ns b: eth0 10.2.0.2 (agent)
source "$(dirname "$0")/nat-lib.sh"

lab_ns inet
lab_bridge inet br0 203.0.113.1/24
for x in a b; do
	n=$([ $x = a ] && echo 1 || echo 2)
	lab_node n$x inet br0 203.0.113.1$n/24
	lab_ns $x
	lab_link n$x lan0 $x eth0
	lab_addr n$x lan0 10.$n.0.1/24
	lab_addr $x eth0 10.$n.0.2/24
	nsx n$x ip route add default via 203.0.113.1
	nsx $x ip route add default via 10.$n.0.1
	nat_box "$(nsname n$x)" eth0 lan0 203.0.113.1$n 51820 4164$n
done
relay_start r1 "$(nsname inet)" --udp 203.0.113.1:3478 --stream 203.0.113.1:8443 || lab_die "relay starts"
nat_control "$(relays_config 203.0.113.1:3478 203.0.113.1:8443 "")"
t0=$(date +%s%N)
nat_agents

# STUN from the WireGuard port finds the router's mapping of it.
stun_mapped() { [ "$(lsx "$1" status --json | jq -r '.nat.stun[0].mapped')" = "$2" ]; }
check "a's STUN answer is its router's mapping of port 51820 (203.0.113.11:41641)" \
	wait_for 15 "a stun" stun_mapped a 203.0.113.11:41641
check "b's STUN answer is 203.0.113.12:41642" wait_for 15 "b stun" stun_mapped b 203.0.113.12:41642
# The heartbeat carries it; the server adds what it sees (the router, with the listen port).
b_has_ep() { lsx a netmap --json | jqe --arg k "$pb" --arg e "$1" '.peers[] | select(.wg_key == $k) | .endpoints | index($e)' >/dev/null; }
check "a's netmap lists b's STUN endpoint 203.0.113.12:41642" wait_for 40 "b's stun endpoint" b_has_ep 203.0.113.12:41642
check "a's netmap lists b's server-observed endpoint 203.0.113.12:51820" b_has_ep 203.0.113.12:51820
check "a's netmap lists b's local endpoint 10.2.0.2:51820" b_has_ep 10.2.0.2:51820

# Direct: the path to b is its STUN endpoint.
peer_path() { lsx "$1" status --json | jq -r --arg k "$2" ".peers[] | select(.public_key == \$k) | $3"; }
direct_to() { [ "$(peer_path "$1" "$2" .path.path)" = direct ] && [ "$(peer_path "$1" "$2" .path.endpoint)" = "$3" ]; }
if wait_for 60 "a direct to b" direct_to a "$pb" 203.0.113.12:41642 && wait_for 10 "b direct to a" direct_to b "$pa" 203.0.113.11:41641; then
	ok "both go direct to each other's STUN endpoint ($((($(date +%s%N) - t0) / 1000000)) ms after the agents started)"
else
	fail "both go direct to each other's STUN endpoint" "a: $(lsx a status --json | jq -c '.peers[0].path')" \
		"b: $(lsx b status --json | jq -c '.peers[0].path')" "$(node_log a 20)"
fi
check "ping a -> b over the overlay" ping_within a "$ab" 20
check "ping b -> a" ping_within b "$aa" 10
check_eq "wg on a sends to b's mapped address" 203.0.113.12:41642 \
	"$(nsx a wg show "$(ifname_of a)" endpoints | awk '{ print $2 }')"
check "a saw a handshake with b" test "$(peer_path a "$pb" .last_handshake)" != null
check_eq "status text names the path" "direct 203.0.113.12:41642" \
	"$(lsx a status | sed -n 's/^  path: *//p' | head -1)"
check "b's pings were answered (pongs counted)" test "$(peer_path b "$pa" .path.pongs)" -ge 1
check "probes crossed the stream relay" test "$(lsx a status --json | jq '.nat.counters.probes_received')" -ge 1
# Nothing of the overlay went through the relay: its relay-proxy counters stay small
# (probes and hellos only) while the ping traffic went direct.
rel_tx=$(lsx a status --json | jq '[.nat.relays.peers[]? | .tx.stream.packets + .tx.udp.packets] | add // 0')
nsx a ping -c 20 -i 0.05 -q "$ab" >/dev/null 2>&1
rel_tx2=$(lsx a status --json | jq '[.nat.relays.peers[]? | .tx.stream.packets + .tx.udp.packets] | add // 0')
check_eq "20 pings went direct (no relay packets meanwhile)" "$rel_tx" "$rel_tx2"

# Forged pings and pongs, injected by a's router na from 10.1.0.1:40000 to 10.1.0.2:51820.
# Traffic keeps both sides pinging (busy peers ping their direct endpoint every 2.5 s),
# so na sees b's sealed pongs and pings go by to a: it captures one of each.
nsx a ping -c 100 -i 0.2 -q "$ab" >/dev/null 2>&1 &
traffic=$!
counters() { lsx a status --json | jq -c '.nat.counters'; }
c0=$(counters)
{ disco_py; cat <<'PY'; } | nsx na python3 - "$pa" "$pb" >"$LAB_DIR/inject.out" 2>&1
import base64, os, socket, sys
pa, pb = (base64.b64decode(k) for k in sys.argv[1:3])
# to a's WireGuard port, b's sealed (version 2) ping and pong to a
got = capture_disco("lan0", pb, pa, (1, 2), 20, dport=51820)
print("captured", sorted(got))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.1.0.1", 40000))
a = ("10.1.0.2", 51820)
sent = 0
def send(what, m):
    global sent
    s.sendto(m, a)
    sent += 1
    print("sent", what)
send("v1 pong", b"\xffLSD\x02\0\0\0" + os.urandom(8) + pb + pa)
send("v1 ping", b"\xffLSD\x01\0\0\0" + os.urandom(8) + pb + pa)
send("v2 pong, wrong key", b"\xffLSD\x02\x02\0\0" + pb + pa + os.urandom(56))
send("v2 ping, wrong key", b"\xffLSD\x01\x02\0\0" + pb + pa + os.urandom(56))
if 2 in got:
    t = bytearray(got[2]); t[-1] ^= 1
    send("pong, tag changed", bytes(t))
    send("pong, replayed", got[2])
if 1 in got:
    send("ping, replayed", got[1])
s.settimeout(3)
answers = 0
try:
    while True:
        s.recv(2048)
        answers += 1
except socket.timeout:
    pass
print("answers", answers)
PY
kill $traffic 2>/dev/null; wait $traffic 2>/dev/null
c1=$(counters)
d() { echo $(($(jq ".$1" <<<"$c1") - $(jq ".$1" <<<"$c0"))); }
check "na captured one of b's sealed pongs and pings to a" grep -q 'captured \[1, 2\]' "$LAB_DIR/inject.out"
check_eq "na sent its 7 forged or replayed messages" 7 "$(grep -c '^sent' "$LAB_DIR/inject.out")"
check_eq "a answered none of them" "answers 0" "$(grep '^answers' "$LAB_DIR/inject.out")"
check "a counted the version 1 pong and ping (rejected.version1)" test "$(d rejected.version1)" -ge 2
check "a counted the wrong-key pong and ping and the changed tag (rejected.unauthenticated)" \
	test "$(d rejected.unauthenticated)" -ge 3
check "a counted the replayed pong and ping (rejected.replayed)" test "$(d rejected.replayed)" -ge 2
check "all of them are counted bad ($(d bad))" test "$(d bad)" -ge 7
check "a still goes direct to b's STUN endpoint" direct_to a "$pb" 203.0.113.12:41642
check "the injector's address is not one of b's candidates" \
	test "$(peer_path a "$pb" '.path.candidates | index("10.1.0.1:40000")')" = null
check_eq "wg on a still sends to b's mapped address" 203.0.113.12:41642 \
	"$(nsx a wg show "$(ifname_of a)" endpoints | awk '{ print $2 }')"
check "ping a -> b still works" ping_within a "$ab" 10

# A genuine, fresh pong from the wrong address: nb holds back one of a's pings to b (so
# b never saw it), replays it to b from 10.2.0.1:40000 and keeps b's answer; na hands
# that pong to a from 10.1.0.1:40000. It opens and is new, but its txid belongs to the
# address a pinged (b's 203.0.113.12:41642): it moves nothing, and a pings the address
# it came from at most once.
nsx a ping -c 100 -i 0.2 -q "$ab" >/dev/null 2>&1 &
traffic=$!
c0=$(counters)
{ disco_py; cat <<'PY'; } | nsx nb python3 - "$pa" "$pb" "$LAB_DIR/pong.bin" >"$LAB_DIR/steal.out" 2>&1
import base64, socket, subprocess, sys
pa, pb = (base64.b64decode(k) for k in sys.argv[1:3])
nft = lambda *a: subprocess.run(["nft", *a], check=True)
# a's pings to b stop here for a moment (forward, after the port mapping)
nft("add", "table", "inet", "lsntsteal")
nft("add", "chain", "inet", "lsntsteal", "lsfwd", "{ type filter hook forward priority -10; }")
nft("add", "rule", "inet", "lsntsteal", "lsfwd", "udp", "dport", "51820", "udp", "length", "136", "drop")
# a's sealed (version 2) ping to b, as it arrives from the internet
ping = capture_disco("eth0", pa, pb, (1,), 15).get(1)
nft("delete", "table", "inet", "lsntsteal")
print("held a ping", ping is not None)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.2.0.1", 40000))
s.settimeout(3)
if ping:
    s.sendto(ping, ("10.2.0.2", 51820))
    try:
        pong = s.recv(2048)
        print("b answered", len(pong), pong[4])
        open(sys.argv[3], "wb").write(pong)
    except socket.timeout:
        print("b did not answer")
PY
nsx na python3 - "$LAB_DIR/pong.bin" >"$LAB_DIR/wrongaddr.out" 2>&1 <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.1.0.1", 40000))
s.sendto(open(sys.argv[1], "rb").read(), ("10.1.0.2", 51820))
s.settimeout(3)
got = []
try:
    while True:
        got.append(s.recv(2048))
except socket.timeout:
    pass
print("back", len(got), " ".join("%d:%d" % (len(m), m[4]) for m in got))
PY
kill $traffic 2>/dev/null; wait $traffic 2>/dev/null
c1=$(counters)
check "nb held back one of a's pings and b answered it (a sealed pong)" \
	bash -c "grep -q 'held a ping True' '$LAB_DIR/steal.out' && grep -q 'b answered 128 2' '$LAB_DIR/steal.out'"
check "a counted b's pong from 10.1.0.1:40000 as unmatched" test "$(d pongs_unmatched)" -ge 1
check_eq "... and not as bad" 0 "$(d bad)"
check "a pinged 10.1.0.1:40000 at most once (a sealed ping, nothing else)" \
	grep -Eq '^back (0 |1 128:1$)' "$LAB_DIR/wrongaddr.out"
check "a still goes direct to b's STUN endpoint" direct_to a "$pb" 203.0.113.12:41642
check_eq "a's direct endpoint for b is still b's mapped address" 203.0.113.12:41642 \
	"$(peer_path a "$pb" .path.direct_endpoint)"
# Forged probes through the stream relay, from "c" (registered, agent never started: the
# relay takes its key from whoever proves it with any Ed25519 key). b's pings to each
# named address are counted at b's output.
lab_node c inet br0 203.0.113.13/24
node_init c "$(token_create home 1)"
kc=$(find "$LAB_DIR/c" -name wg.key | head -1)
pc=$(wg pubkey <"$kc")
# (c in b's path state: its netmap endpoint is a candidate)
b_knows_c() { lsx b status --json | jqe --arg k "$pc" '.peers[] | select(.public_key == $k) | .path.candidates | length > 0' >/dev/null; }
check "b has c in its netmap and path state" wait_for 40 "b knows c" b_knows_c
nsx b nft add table inet lsntforge
nsx b nft add chain inet lsntforge lsout '{ type filter hook output priority -10; }'
for i in 1 2 3 4 5; do nsx b nft add rule inet lsntforge lsout ip daddr 198.51.100.$i udp dport 4444 counter; done
pings_to() { nsx b nft list chain inet lsntforge lsout | awk -v a="198.51.100.$1" '$0 ~ a" " { for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1) }'; }
counters() { lsx b status --json | jq -c '.nat.counters'; }
c0=$(counters)
DRIVER=${RPROXY_DRIVER:-$BUILD/tests/ls-rproxy-driver}
nsx inet "$DRIVER" --forge-to "$pb" --wg-keyfile "$kc" --stream 203.0.113.1:8443 \
	--forge unsealed=198.51.100.1:4444 --forge wrongkey=198.51.100.2:4444 --forge tampered=198.51.100.3:4444 \
	--forge genuine=198.51.100.4:4444 --forge old=198.51.100.5:4444 --forge replayed=198.51.100.4:4444 \
	>"$LAB_DIR/forge.out" 2>&1
sleep 3
c1=$(counters)
check_eq "the forger sent its 6 probes as c" 6 "$(grep -c '^forged .*: ok$' "$LAB_DIR/forge.out")"
check_eq "b pinged the unsealed probe's address 0 times" 0 "$(pings_to 1)"
check_eq "b pinged the wrong-key probe's address 0 times" 0 "$(pings_to 2)"
check_eq "b pinged the tampered probe's address 0 times" 0 "$(pings_to 3)"
check_eq "b pinged the old (replayed) probe's address 0 times" 0 "$(pings_to 5)"
check "b pinged the genuine probe's address ($(pings_to 4) times)" test "$(pings_to 4)" -ge 1
check "b counted the unsealed probe (rejected.probes.unsealed)" test "$(d rejected.probes.unsealed)" -ge 1
check "b counted the wrong-key and tampered probes (rejected.probes.unauthenticated)" \
	test "$(d rejected.probes.unauthenticated)" -ge 2
check "b counted the old and the verbatim replayed probe (rejected.probes.replayed)" \
	test "$(d rejected.probes.replayed)" -ge 2
check_eq "only the genuine probe counted as received" 1 "$(d probes_received)"
cands=$(lsx b status --json | jq -c --arg k "$pc" '[.peers[] | select(.public_key == $k) | .path.candidates[]?]')
check_eq "c's candidates on b: the genuine probe's address, no forged one ($cands)" "true 0" \
	"$(jq 'index("198.51.100.4:4444") != null' <<<"$cands") $(jq '[.[] | select(test("^198\\.51\\.100\\.[1235]:"))] | length' <<<"$cands")"
check "a and b still go direct" direct_to a "$pb" 203.0.113.12:41642
tap_done
