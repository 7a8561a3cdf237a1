#!/usr/bin/env bash
# The relay fallback data path (userspace/relayproxy.c) between two WireGuard
# engines whose direct UDP is dropped: each node's WireGuard points its peer at
# the loopback endpoint of ls-rproxy-driver, which carries the packets through
# lightscale-relay.
#
#   ns lsp-$$-a                     ns lsp-$$-r                     ns lsp-$$-b
#   lightscale-wg 10.77.0.1  <-->  10.99.1.1  routes  10.99.2.1  <-->  lightscale-wg 10.77.0.2
#   ls-rproxy-driver   10.99.1.2   forward: UDP dropped          10.99.2.2  ls-rproxy-driver
#                                  relay U: --udp 3478 (a: over IPv6)
#                                  relay S1: --stream 3478, relay S2: --stream 3479
#
# a's stream list: S1, S2; b's: a dead port, S1, S2 (first down -> next).
# (Background processes start with `ip netns exec` itself, which execs: $! is
# their PID, for kill.)
# Checks: ping through the stream relay while UDP to the relay is dropped; a
# probe each way; the UDP relay once UDP is let through; back to the stream
# when UDP is dropped again mid-ping; S1 killed mid-ping, traffic continues
# through S2, and both return to S1 once it is back; the relay sockets carry
# the fwmark (a routes unmarked traffic as behind an exit node); status JSON.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
BUILD=${BUILD:-build}
source tests/lab/relay-lib.sh
RELAY=$PWD/$BUILD/lightscale-relay
WG_BIN=$PWD/$BUILD/lightscale-wg
DRIVER=$PWD/$BUILD/tests/ls-rproxy-driver

for b in "$RELAY" "$WG_BIN" "$DRIVER"; do
	[ -x "$b" ] || { fail "$b is built"; tap_done; exit 1; }
done
ns_a=lsp-$$-a ns_b=lsp-$$-b ns_r=lsp-$$-r
if_a=lspa$$ if_b=lspb$$
tmp=$(mktemp -d /tmp/lsp-lab.XXXXXX)
pids=()

cleanup() {
	relay_stop_all
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for ns in $ns_a $ns_b $ns_r; do
		for pid in $(ip netns pids $ns 2>/dev/null); do kill "$pid" 2>/dev/null; done
	done
	sleep 0.3
	for ns in $ns_a $ns_b $ns_r; do ip netns del $ns 2>/dev/null; done
	rm -f /var/run/wireguard/$if_a.sock /var/run/wireguard/$if_b.sock
	[ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

A() { ip netns exec $ns_a "$@"; }
B() { ip netns exec $ns_b "$@"; }
R() { ip netns exec $ns_r "$@"; }
st() { jq -r "$2" "$tmp/status-$1.json" 2>/dev/null; } # st a|b JQ
# wait_for SECONDS a|b JQ VALUE: until the status says so
wait_for() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do
		[ "$(st "$2" "$3")" = "$4" ] && return 0
		sleep 0.1
	done
	return 1
}

ip netns add $ns_a && ip netns add $ns_b && ip netns add $ns_r || { fail "create namespaces"; tap_done; exit 1; }
ip link add ra$$ netns $ns_r type veth peer name va$$ netns $ns_a
ip link add rb$$ netns $ns_r type veth peer name vb$$ netns $ns_b
ip -n $ns_r addr add 10.99.1.1/24 dev ra$$
ip -n $ns_r addr add 10.99.2.1/24 dev rb$$
ip -n $ns_a addr add 10.99.1.2/24 dev va$$
# a reaches the UDP relay over IPv6 (the stream relays over IPv4).
ip -n $ns_r addr add fd99:1::1/64 dev ra$$ nodad
ip -n $ns_a addr add fd99:1::2/64 dev va$$ nodad
ip -n $ns_b addr add 10.99.2.2/24 dev vb$$
for x in "$ns_r ra$$" "$ns_r rb$$" "$ns_a va$$" "$ns_b vb$$"; do
	set -- $x
	ip -n "$1" link set lo up
	ip -n "$1" link set "$2" up
done
ip -n $ns_a route add default via 10.99.1.1
ip -n $ns_b route add default via 10.99.2.1
R sysctl -qw net.ipv4.ip_forward=1
# No UDP between a and b (no direct path); the UDP relay's port is closed for now.
R nft -f - <<NFT
table inet lsp {
	chain forward { type filter hook forward priority 0; meta l4proto udp counter drop; }
	chain input { type filter hook input priority 0; }
}
NFT
block_udp() { R nft add rule inet lsp input udp dport 3478 counter drop; }
unblock_udp() { R nft flush chain inet lsp input; }
block_udp

relay_init "$tmp"
relay_start u $ns_r --udp 3478 || fail "UDP relay starts"
relay_start s1 $ns_r --stream 3478 || fail "stream relay S1 starts"
relay_start s2 $ns_r --stream 3479 || fail "stream relay S2 starts"

# a runs as behind an exit node: whatever is not marked 0x5a (the relay
# proxy's sockets) is routed by table 100, where only the overlay goes anywhere.
ip -n $ns_a route add blackhole default table 100
ip -n $ns_a rule add not fwmark 0x5a table 100 pref 100
ip -n $ns_a -6 route add blackhole default table 100
ip -n $ns_a -6 rule add not fwmark 0x5a table 100 pref 100

ka=$(wg genkey) kb=$(wg genkey)
pa=$(wg pubkey <<<"$ka") pb=$(wg pubkey <<<"$kb")
echo "$ka" >"$tmp/ka"; echo "$kb" >"$tmp/kb"

check "engine a starts" env LIGHTSCALE_WG_LOG_FILE="$tmp/wg-a.log" ip netns exec $ns_a "$WG_BIN" $if_a
check "engine b starts" env LIGHTSCALE_WG_LOG_FILE="$tmp/wg-b.log" ip netns exec $ns_b "$WG_BIN" $if_b

ip netns exec $ns_a "$DRIVER" --wg-port 51820 --wg-keyfile "$tmp/ka" --peer "$pb" --fwmark 0x5a --prefer-interval-ms 2000 \
	--stream 10.99.1.1:3478 --stream 10.99.1.1:3479 --udp [fd99:1::1]:3478 \
	--probe-endpoint 10.99.1.2:51820 --endpoints-file "$tmp/ep-a" --status-file "$tmp/status-a.json" \
	>"$tmp/driver-a.out" 2>"$tmp/driver-a.log" & drv_a=$!
pids+=($drv_a)
ip netns exec $ns_b "$DRIVER" --wg-port 51820 --wg-keyfile "$tmp/kb" --peer "$pa" --fwmark 0x5a --prefer-interval-ms 2000 \
	--stream 10.99.2.1:3477 --stream 10.99.2.1:3478 --stream 10.99.2.1:3479 --udp 10.99.2.1:3478 \
	--probe-endpoint 10.99.2.2:51820 --endpoints-file "$tmp/ep-b" --status-file "$tmp/status-b.json" \
	>"$tmp/driver-b.out" 2>"$tmp/driver-b.log" & drv_b=$!
pids+=($drv_b)
for _ in $(seq 50); do [ -s "$tmp/ep-a" ] && [ -s "$tmp/ep-b" ] && break; sleep 0.1; done
ep_a=$(awk -v k="$pb" '$1 == k { print $2 }' "$tmp/ep-a")
ep_b=$(awk -v k="$pa" '$1 == k { print $2 }' "$tmp/ep-b")
if [[ "$ep_a" == 127.77.*:* && "$ep_b" == 127.77.*:* ]]; then ok "drivers give loopback endpoints ($ep_a, $ep_b)"
else fail "drivers give loopback endpoints" "a: $ep_a b: $ep_b" "$(cat "$tmp"/driver-*.log)"; fi

A wg set $if_a private-key "$tmp/ka" listen-port 51820 peer "$pb" allowed-ips 10.77.0.2/32 endpoint "$ep_a"
B wg set $if_b private-key "$tmp/kb" listen-port 51820 peer "$pa" allowed-ips 10.77.0.1/32 endpoint "$ep_b"
ip -n $ns_a addr add 10.77.0.1/24 dev $if_a; ip -n $ns_a link set $if_a up
ip -n $ns_a route add 10.77.0.0/24 dev $if_a table 100
ip -n $ns_b addr add 10.77.0.2/24 dev $if_b; ip -n $ns_b link set $if_b up

# 1. Stream relay only.
check "a connects to its first stream relay" wait_for 5 a .stream.state up
check_eq "a uses the first relay of its list" 10.99.1.1:3478 "$(st a .stream.current)"
check "b connects past its dead first stream relay" wait_for 5 b .stream.state up
check_eq "b skipped the dead one for the next" 10.99.2.1:3478 "$(st b .stream.current)"
check "b's dead relay is in backoff or was tried" test "$(st b '.stream.relays[0].failures')" -ge 1
check "UDP relay not registered while its port is dropped" test "$(st a .udp.state)" != up
check "ping a -> b through the stream relay" A ping -c 3 -i 0.3 -W 3 10.77.0.2
check "ping b -> a" B ping -c 2 -i 0.3 -W 2 10.77.0.1
sleep 0.4
check_eq "a's path to b is the stream relay" stream "$(st a '.peers[0].path')"
check "a sent over the stream" test "$(st a '.peers[0].tx.stream.packets')" -ge 3
check "b received over the stream" test "$(st b '.peers[0].rx.stream.packets')" -ge 3
check_eq "wg on a sees b at the loopback endpoint" "$ep_a" "$(A wg show $if_a endpoints | awk '{ print $2 }')"
check_eq "no UDP went directly between a and b (forward drops)" 0 \
	"$(R nft list chain inet lsp forward | grep -o 'packets [0-9]*' | awk '{ print $2 }')"
check "the relay's stream socket carries fwmark 0x5a" \
	bash -c "ip netns exec $ns_a ss -tnie dst 10.99.1.1 | grep -q 'fwmark:0x5a'"
if A timeout 3 bash -c 'exec 3<>/dev/tcp/10.99.1.1/3479' 2>/dev/null; then
	fail "on a, an unmarked connection to the relay is blackholed (the exit-node routing works)"
else ok "on a, an unmarked connection to the relay is blackholed (so a's relay sockets are marked from the SYN on)"; fi

# 2. Probes: a asks b to send UDP now; b answers with its endpoints.
kill -USR2 $drv_a
for _ in $(seq 30); do grep -q "probe from" "$tmp/driver-a.out" && break; sleep 0.1; done
check_eq "b received a's probe with a's endpoints" "probe from $pa reply=0 endpoints=10.99.1.2:51820" \
	"$(grep "probe from" "$tmp/driver-b.out" | head -1)"
check_eq "a received b's answer" "probe from $pb reply=1 endpoints=10.99.2.2:51820" \
	"$(grep "probe from" "$tmp/driver-a.out" | head -1)"

# 3. UDP to the relay allowed: both register, hear each other, switch to it.
unblock_udp
t0=$(date +%s%N)
if wait_for 15 a '.peers[0].path' udp && wait_for 5 b '.peers[0].path' udp; then
	ok "both switch to the UDP relay ($((($(date +%s%N) - t0) / 1000000)) ms after UDP was let through)"
else fail "both switch to the UDP relay" "$(cat "$tmp/status-a.json")"; fi
check_eq "a's UDP relay registration (IPv6) observed a's address" "[fd99:1::2]" "$(st a .udp.observed | sed 's/:[0-9]*$//')"
check "a's UDP relay socket carries fwmark 0x5a" \
	bash -c "ip netns exec $ns_a ss -uanie dst [fd99:1::1] | grep -q 'fwmark:0x5a'"
udp0=$(st a '.peers[0].tx.udp.packets')
check "ping a -> b through the UDP relay" A ping -c 5 -i 0.2 -W 2 10.77.0.2
sleep 0.4
check "a's pings left through the UDP relay" test "$(st a '.peers[0].tx.udp.packets')" -ge $((udp0 + 5))
check "b received through the UDP relay" test "$(st b '.peers[0].rx.udp.packets')" -ge 5

# 3b. The UDP relay restarts (forgets every registration): the silent hellos make
# both sides fall back to the stream, then register again and return to it.
A ping -c 75 -i 0.2 -W 1 10.77.0.2 >"$tmp/ping-udp-restart" 2>&1 & ping_pid=$!
sleep 1
relay_stop u
check "a falls back to the stream relay while the UDP relay is down" wait_for 5 a '.peers[0].path' stream
relay_start u $ns_r --udp 3478
t0=$(date +%s%N)
if wait_for 14 a '.peers[0].path' udp && wait_for 5 b '.peers[0].path' udp; then
	ok "both back on the restarted UDP relay ($((($(date +%s%N) - t0) / 1000000)) ms after it started)"
else fail "both back on the restarted UDP relay" "$(cat "$tmp/status-a.json")"; fi
wait $ping_pid
rx=$(received "$tmp/ping-udp-restart") gap=$(max_gap "$tmp/ping-udp-restart" 75)
check "traffic continues while the UDP relay restarts ($rx of 75 received, $gap lost in a row at 5/s)" \
	test "${rx:-0}" -ge 50 -a "$gap" -le 20

# 4. UDP dropped again mid-ping: back to the stream relay within seconds.
A ping -c 50 -i 0.2 -W 1 10.77.0.2 >"$tmp/ping-udp-drop" 2>&1 & ping_pid=$!
sleep 1
block_udp
wait $ping_pid
rx=$(received "$tmp/ping-udp-drop") gap=$(max_gap "$tmp/ping-udp-drop" 50)
check_eq "a's path is the stream relay again" stream "$(st a '.peers[0].path')"
check "traffic continues after UDP to the relay is dropped ($rx of 50 received, $gap lost in a row at 5/s)" \
	test "${rx:-0}" -ge 25 -a "$gap" -le 20

# 5. Stream relay S1 killed mid-ping: both move to S2.
A ping -c 40 -i 0.2 -W 1 10.77.0.2 >"$tmp/ping-failover" 2>&1 & ping_pid=$!
sleep 1.5
relay_stop s1
wait $ping_pid
rx=$(received "$tmp/ping-failover") gap=$(max_gap "$tmp/ping-failover" 40)
check "traffic continues through the second stream relay ($rx of 40 received, $gap lost in a row at 5/s)" \
	test "${rx:-0}" -ge 28 -a "$gap" -le 15
check_eq "a now uses the second stream relay" 10.99.1.1:3479 "$(st a .stream.current)"
check_eq "b now uses the second stream relay" 10.99.2.1:3479 "$(st b .stream.current)"
check "a counted the disconnect from the first" test "$(st a '.stream.relays[0].disconnects')" -ge 1
check "ping b -> a after failover" B ping -c 2 -i 0.3 -W 2 10.77.0.1

# 5b. S1 is back: both return to it (their first working relay), so nodes that
# failed over meet on one relay again (the relays do not forward to each other).
relay_start s1 $ns_r --stream 3478
t0=$(date +%s%N)
if wait_for 25 a .stream.current 10.99.1.1:3478 && wait_for 25 b .stream.current 10.99.2.1:3478; then
	ok "both return to the first stream relay once it is back ($((($(date +%s%N) - t0) / 1000000)) ms)"
else fail "both return to the first stream relay once it is back" "a: $(st a .stream.current) b: $(st b .stream.current)"; fi
check "ping a -> b on the first relay again" A ping -c 3 -i 0.3 -W 2 10.77.0.2
check_eq "b still skips its dead first entry" 10.99.2.1:3478 "$(st b .stream.current)"

# 6. Status document.
check "status: peer entry has the loopback endpoint" test "$(st a '.peers[0].endpoint')" = "$ep_a"
check "status: UDP relay hellos were exchanged" test "$(st a .counters.hellos_received)" -ge 1
check "status: no bad frames" test "$(st a .counters.bad_frames)" = 0
check "drivers still running" kill -0 $drv_a $drv_b
[ -n "${KEEP:-}" ] && echo "# kept $tmp"
tap_done
