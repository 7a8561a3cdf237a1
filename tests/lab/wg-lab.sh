#!/usr/bin/env bash
# The userspace WireGuard engine against a peer, both configured with `wg`.
# Sourced by wg-interop.sh (peer: Debian's wireguard-go) and wg-engine-pair.sh
# (peer: our engine too); PEER_IMPL says which.
#
#   ns lsw-$$-a                                  ns lsw-$$-b
#   +----------------------------+               +----------------------------+
#   | lightscale-wg  lswa$$      |               | $PEER_IMPL  lswb$$         |
#   |   10.77.0.1/24 fd77::1/64  |               |   10.77.0.2/24 fd77::2/64  |
#   | va$$ 192.168.241.1/24      |<--- veth ---->| vb$$ 192.168.241.2/24      |
#   +----------------------------+               +----------------------------+
#
# Checks: each side initiating, ping (v4, v6) and iperf3 TCP both ways, no
# underlay fragmentation (IpFragCreates, outer sizes), wg showconf/setconf, a
# forced rekey (LIGHTSCALE_WG_REKEY_AFTER_TIME=3 on our side), roaming of
# each side, persistent keepalives on the wire, fwmark on our UDP socket,
# cookie replies under load (b retries with MAC2), a wrong public key, a
# second engine refused, exit when the TUN device is deleted.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lab/wg-lib.sh
PEER_IMPL=${PEER_IMPL:-wireguard-go}

ns_a=lsw-$$-a ns_b=lsw-$$-b
if_a=lswa$$ if_b=lswb$$
va=va$$ vb=vb$$
ua=192.168.241.1 ub=192.168.241.2
tmp=$(mktemp -d /tmp/lsw-lab.XXXXXX)
WG_SOCKS=/var/run/wireguard/lswc$$.sock

A() { ip netns exec $ns_a "$@"; }
B() { ip netns exec $ns_b "$@"; }
# stat NS IF NAME: one counter of our engine
stat() { ip netns exec "$1" "$WG_BIN" --stats "$2" | awk -F': ' -v k="$3" '$1 == k { print $2 }'; }
hs_time() { ip netns exec "$1" wg show "$2" latest-handshakes | awk '{ print $2 }'; }
endpoint_of() { ip netns exec "$1" wg show "$2" endpoints | awk '{ print $2 }'; }

start_ours() { # NS IF LOG
	LIGHTSCALE_WG_REKEY_AFTER_TIME=3 LIGHTSCALE_WG_LOG_FILE=$3 ip netns exec "$1" "$WG_BIN" "$2"
}
start_peer() {
	if [ "$PEER_IMPL" = ours ]; then
		start_ours $ns_b $if_b "$tmp/b.log"
	else
		LOG_LEVEL=error ip netns exec $ns_b wireguard-go "$if_b" >"$tmp/b.log" 2>&1
	fi
}

wg_pair ${ua%.*}
for x in "$ns_a $va" "$ns_b $vb"; do
	set -- $x
	# Deleting the old address must keep the new one (roaming below).
	ip netns exec "$1" sysctl -qw net.ipv4.conf.all.promote_secondaries=1 net.ipv4.conf."$2".promote_secondaries=1
	# Segment GSO datagrams before the capture point: tcpdump then sees the
	# packets a NIC would put on the wire.
	ip -n "$1" link set "$2" gso_max_segs 1
done

check "our engine starts and daemonizes" start_ours $ns_a $if_a "$tmp/a.log"
check "$PEER_IMPL starts" start_peer
check "our UAPI socket exists" test -S /var/run/wireguard/$if_a.sock
out=$(A "$WG_BIN" $if_a 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "already served" <<<"$out"; then ok "a second engine for the same interface is refused"
else fail "a second engine for the same interface is refused" "rc=$rc" "$out"; fi

ka=$(wg genkey) kb=$(wg genkey)
pa=$(wg pubkey <<<"$ka") pb=$(wg pubkey <<<"$kb")
echo "$ka" >"$tmp/ka"; echo "$kb" >"$tmp/kb"

configure() { # A_ENDPOINT(yes/no) B_ENDPOINT(yes/no)
	local epa=() epb=()
	[ "$1" = yes ] && epa=(endpoint $ub:51821)
	[ "$2" = yes ] && epb=(endpoint $ua:51820)
	A wg set $if_a peer "$pb" remove 2>/dev/null
	B wg set $if_b peer "$pa" remove 2>/dev/null
	A wg set $if_a private-key "$tmp/ka" listen-port 51820 \
		peer "$pb" allowed-ips 10.77.0.2/32,fd77::2/128 "${epa[@]}" &&
	B wg set $if_b private-key "$tmp/kb" listen-port 51821 \
		peer "$pa" allowed-ips 10.77.0.1/32,fd77::1/128 "${epb[@]}"
}

# 1. We initiate: b does not know our endpoint.
check "wg set configures both sides" configure yes no
ip -n $ns_a addr add 10.77.0.1/24 dev $if_a; ip -n $ns_a addr add fd77::1/64 dev $if_a nodad
ip -n $ns_b addr add 10.77.0.2/24 dev $if_b; ip -n $ns_b addr add fd77::2/64 dev $if_b nodad
ip -n $ns_a link set $if_a up; ip -n $ns_b link set $if_b up
check_eq "wg show reads our listen port" 51820 "$(A wg show $if_a listen-port)"
check_eq "wg show reads our public key" "$pa" "$(A wg show $if_a public-key)"
check "ping a -> b (we initiate)" A ping -c 3 -i 0.3 -W 2 10.77.0.2
check "our engine sent the initiation" test "$(stat $ns_a $if_a tx_initiations)" -ge 1
check_eq "b learned our endpoint from the handshake" "$ua:51820" "$(endpoint_of $ns_b $if_b)"
check "ping b -> a" B ping -c 3 -i 0.3 -W 2 10.77.0.1
check "ping6 a -> b" A ping -6 -c 3 -i 0.3 -W 2 fd77::2
check "wg show on our side shows a handshake" test "$(hs_time $ns_a $if_a)" -gt 0

# 2. They initiate: fresh peers, we do not know their endpoint.
configure no yes
before=$(stat $ns_a $if_a rx_initiations)
check "ping b -> a (they initiate)" B ping -c 3 -i 0.3 -W 2 10.77.0.1
check "our engine answered their initiation" test "$(stat $ns_a $if_a rx_initiations)" -gt "$before"
check "our engine sent a response" test "$(stat $ns_a $if_a tx_responses)" -ge 1
check_eq "we learned b's endpoint from the handshake" "$ub:51821" "$(endpoint_of $ns_a $if_a)"
check "ping a -> b" A ping -c 2 -i 0.3 -W 2 10.77.0.2

# 2b. Preshared keys: the same one on both sides works, different ones never do.
(umask 077; wg genpsk >"$tmp/psk"; wg genpsk >"$tmp/psk2")
configure yes yes
A wg set $if_a peer "$pb" preshared-key "$tmp/psk"
B wg set $if_b peer "$pa" preshared-key "$tmp/psk"
check "ping a -> b with a preshared key" A ping -c 2 -i 0.3 -W 2 10.77.0.2
check_eq "wg show reads our preshared key back" "$(cat "$tmp/psk")" "$(A wg show $if_a preshared-keys | awk '{ print $2 }')"
configure yes yes
A wg set $if_a peer "$pb" preshared-key "$tmp/psk"
B wg set $if_b peer "$pa" preshared-key "$tmp/psk2"
if A ping -c 2 -i 0.5 -W 1 10.77.0.2 >/dev/null 2>&1; then fail "different preshared keys never complete a handshake"
else ok "different preshared keys never complete a handshake"; fi
check_eq "no handshake with different preshared keys" 0 "$(hs_time $ns_a $if_a)"
configure yes yes
A wg set $if_a peer "$pb" preshared-key "$tmp/psk"
B wg set $if_b peer "$pa" preshared-key "$tmp/psk"
check "ping b -> a with a preshared key (they initiate)" B ping -c 2 -i 0.3 -W 2 10.77.0.1

# 3. TCP both ways, with no fragmentation on the underlay.
frag_a0=$(A nstat -asz IpFragCreates | awk '/IpFragCreates/ { print $2 }'); frag_a0=${frag_a0:-0}
frag_b0=$(B nstat -asz IpFragCreates | awk '/IpFragCreates/ { print $2 }'); frag_b0=${frag_b0:-0}
B iperf3 -s -D -I "$tmp/iperf.pid" >/dev/null 2>&1
sleep 0.5
A tcpdump -i $va -nn -e -l "udp and src host $ua" >"$tmp/dump-a" 2>/dev/null & dump_a=$!
B tcpdump -i $vb -nn -e -l "udp and src host $ub" >"$tmp/dump-b" 2>/dev/null & dump_b=$!
sleep 1
for dir in "a->b" "b->a"; do
	args=(); [ "$dir" = "b->a" ] && args=(-R)
	res=$(A timeout 20 iperf3 -c 10.77.0.2 -t 3 -J "${args[@]}" 2>&1)
	bps=$(python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))' <<<"$res" 2>/dev/null)
	if [ -n "$bps" ] && [ "$bps" -gt 10000000 ]; then ok "iperf3 TCP $dir: $((bps / 1000000)) Mbit/s"
	else fail "iperf3 TCP $dir" "$(tail -5 <<<"$res")"; fi
done
for dir in "a->b" "b->a"; do
	args=(); [ "$dir" = "b->a" ] && args=(-R)
	res=$(A timeout 20 iperf3 -c 10.77.0.2 -u -b 300M -l 1372 -t 2 -J "${args[@]}" 2>/dev/null)
	bps=$(python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))' <<<"$res" 2>/dev/null)
	if [ -n "$bps" ] && [ "$bps" -gt 10000000 ]; then ok "iperf3 UDP $dir: $((bps / 1000000)) Mbit/s received"
	else fail "iperf3 UDP $dir" "$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("error"), d.get("end", {}).get("sum_received"))' <<<"$res" 2>&1 | tail -3)"; fi
done
kill $dump_a $dump_b 2>/dev/null; wait $dump_a $dump_b 2>/dev/null
kill "$(cat "$tmp/iperf.pid" 2>/dev/null)" 2>/dev/null
frag_a1=$(A nstat -asz IpFragCreates | awk '/IpFragCreates/ { print $2 }'); frag_a1=${frag_a1:-0}
frag_b1=$(B nstat -asz IpFragCreates | awk '/IpFragCreates/ { print $2 }'); frag_b1=${frag_b1:-0}
check_eq "no IP fragments created on a during iperf3" "$frag_a0" "$frag_a1"
check_eq "no IP fragments created on b during iperf3" "$frag_b0" "$frag_b1"
# Ethernet frame length = 14 + IP length; the limit is inner MTU 1420 + 80.
max_a=$(awk '{ for (i = 1; i < NF; i++) if ($i == "length") { v = $(i + 1); sub(":", "", v); if (v + 0 > m) m = v + 0; break } } END { print m + 0 }' "$tmp/dump-a")
max_b=$(awk '{ for (i = 1; i < NF; i++) if ($i == "length") { v = $(i + 1); sub(":", "", v); if (v + 0 > m) m = v + 0; break } } END { print m + 0 }' "$tmp/dump-b")
n_a=$(wc -l <"$tmp/dump-a")
if [ "$n_a" -gt 1000 ] && [ "$max_a" -le $((1420 + 80 + 14)) ] && [ "$max_a" -gt 1400 ]; then
	ok "our outer packets are at most MTU + 80 bytes ($n_a captured, largest frame $max_a)"
else fail "our outer packets are at most MTU + 80 bytes" "captured $n_a, largest frame $max_a"; fi
if [ "$max_b" -le $((1420 + 80 + 14)) ]; then ok "their outer packets are at most MTU + 80 bytes (largest frame $max_b)"
else fail "their outer packets are at most MTU + 80 bytes" "largest frame $max_b"; fi

# 4. wg showconf / setconf round trip through our UAPI.
A wg showconf $if_a >"$tmp/conf1"
check "wg setconf accepts what wg showconf printed" A wg setconf $if_a "$tmp/conf1"
A wg showconf $if_a >"$tmp/conf2"
check "wg showconf is unchanged after setconf" diff "$tmp/conf1" "$tmp/conf2"

# 5. Forced rekey: our side rekeys every 3 s while it sends; nothing is lost.
before=$(stat $ns_a $if_a tx_initiations)
out=$(A ping -c 40 -i 0.25 -W 1 10.77.0.2 2>&1)
after=$(stat $ns_a $if_a tx_initiations)
if [ $((after - before)) -ge 2 ]; then ok "rekeyed $((after - before)) times in 10 s of traffic"
else fail "rekeyed while sending" "initiations before $before after $after"; fi
loss=$(grep -o '[0-9.]*% packet loss' <<<"$out")
check_eq "no ping lost across rekeys" "0% packet loss" "$loss"

# 6. Roaming: our underlay address changes mid-stream, then theirs.
A ping -c 30 -i 0.2 -W 1 10.77.0.2 >"$tmp/ping-roam" 2>&1 & pingpid=$!
sleep 1
ip -n $ns_a addr add 192.168.241.11/24 dev $va
ip -n $ns_a addr del $ua/24 dev $va
wait $pingpid
check_eq "b follows our new endpoint" "192.168.241.11:51820" "$(endpoint_of $ns_b $if_b)"
rx=$(grep -o '[0-9]* received' "$tmp/ping-roam" | awk '{ print $1 }')
check "traffic continues after we roam ($rx of 30 received)" test "${rx:-0}" -ge 25
# b moves to a new address and port (like a NAT rebinding). The new port
# also makes wireguard-go rebind its socket: Debian's 0.0.20220316 otherwise
# keeps sending from the deleted address (its sticky source; ENETUNREACH).
ip -n $ns_b addr add 192.168.241.12/24 dev $vb
ip -n $ns_b addr del $ub/24 dev $vb
B wg set $if_b listen-port 51822
check "ping b -> a from b's new address and port" B ping -c 3 -i 0.3 -W 2 10.77.0.1
check_eq "we follow b's new endpoint" "192.168.241.12:51822" "$(endpoint_of $ns_a $if_a)"
ua=192.168.241.11 ub=192.168.241.12

# 7. Persistent keepalive on the wire: quiet tunnel, keepalive every second.
A wg set $if_a peer "$pb" persistent-keepalive 1
check_eq "wg show reads the keepalive interval" 1 "$(A wg show $if_a persistent-keepalive | awk '{ print $2 }')"
B tcpdump -i $vb -nn -l "udp and src host $ua" >"$tmp/dump-ka" 2>/dev/null & dump=$!
sleep 4.5
kill $dump; wait $dump 2>/dev/null
n=$(grep -c "UDP, length 32$" "$tmp/dump-ka")
check "persistent keepalives (32-byte messages) seen on the wire: $n in 3.5 s" test "$n" -ge 2
A wg set $if_a peer "$pb" persistent-keepalive 0

# 8. fwmark (SO_MARK) set through the UAPI reaches our UDP socket: a rule
# sends marked packets to an unreachable route, so the tunnel stops until
# the mark is cleared.
A wg set $if_a fwmark 0x77
check_eq "wg show reads the fwmark" 0x77 "$(A wg show $if_a fwmark)"
A ip rule add fwmark 0x77 lookup 177 pref 177
A ip route add unreachable 192.168.241.0/24 table 177
if A ping -c 2 -i 0.3 -W 1 10.77.0.2 >/dev/null 2>&1; then fail "marked tunnel packets follow the fwmark rule"
else ok "marked tunnel packets follow the fwmark rule"; fi
A wg set $if_a fwmark 0
check_eq "wg show: fwmark off" off "$(A wg show $if_a fwmark)"
check "ping works again with the fwmark cleared" A ping -c 2 -i 0.3 -W 2 10.77.0.2
A ip rule del pref 177

# 9. Cookies: a second engine of ours (lswc$$, in a) that acts as if under
# load answers b's first initiation with a cookie reply; b must retry with
# MAC2 (after REKEY_TIMEOUT, 5 s) and then get through.
if_c=lswc$$
kc2=$(wg genkey); pc2=$(wg pubkey <<<"$kc2"); echo "$kc2" >"$tmp/kc2"
LIGHTSCALE_WG_UNDER_LOAD=1 LIGHTSCALE_WG_LOG_FILE=$tmp/c.log ip netns exec $ns_a "$WG_BIN" $if_c
A wg set $if_c private-key "$tmp/kc2" listen-port 51823 peer "$pb" allowed-ips 10.88.0.2/32
ip -n $ns_a addr add 10.88.0.3/32 dev $if_c; ip -n $ns_a link set $if_c up
ip -n $ns_a route add 10.88.0.2/32 dev $if_c
B wg set $if_b peer "$pc2" allowed-ips 10.88.0.3/32 endpoint $ua:51823
ip -n $ns_b addr add 10.88.0.2/32 dev $if_b; ip -n $ns_b route add 10.88.0.3/32 dev $if_b
check "ping b -> c through a cookie round trip" B ping -c 1 -W 9 -I 10.88.0.2 10.88.0.3
check "c sent a cookie reply" test "$(stat $ns_a $if_c tx_cookie_replies)" -ge 1
check "c accepted the retried initiation (with MAC2)" test "$(stat $ns_a $if_c rx_initiations)" -ge 1
ip -n $ns_a link del $if_c
B wg set $if_b peer "$pc2" remove

# 9b. An IPv6 underlay: the same socket serves both families.
ip -n $ns_a addr add fd99::1/64 dev $va nodad
ip -n $ns_b addr add fd99::2/64 dev $vb nodad
A wg set $if_a peer "$pb" endpoint "[fd99::2]:51822"
check "ping a -> b over an IPv6 underlay" A ping -c 3 -i 0.3 -W 2 10.77.0.2
check_eq "b sees our IPv6 endpoint" "[fd99::1]:51820" "$(endpoint_of $ns_b $if_b)"
check_eq "wg show prints the IPv6 endpoint we use" "[fd99::2]:51822" "$(endpoint_of $ns_a $if_a)"

# 9b2. Sticky source: b reaches us at a second address of ours; we answer
# from that address (as kernel WireGuard does), so b's endpoint stays there
# instead of roaming to our primary address.
ip -n $ns_a addr add 192.168.241.21/24 dev $va
B wg set $if_b peer "$pa" endpoint 192.168.241.21:51820
check "ping b -> a at our second address" B ping -c 3 -i 0.3 -W 2 10.77.0.1
check_eq "we answer from the address b used" "192.168.241.21:51820" "$(endpoint_of $ns_b $if_b)"
check_eq "we learned b's IPv4 endpoint again" "$ub:51822" "$(endpoint_of $ns_a $if_a)"
# That address goes away: we fall back to another source, b follows.
ip -n $ns_a addr del 192.168.241.21/24 dev $va
check "ping a -> b after our second address is gone" A ping -c 3 -i 0.3 -W 2 10.77.0.2
check_eq "b follows us back to our primary address" "$ua:51820" "$(endpoint_of $ns_b $if_b)"

# 9c. Reconfiguration under load: peers removed and added again, and our
# listen port changed, while iperf3 runs; the engine survives and traffic
# resumes.
B iperf3 -s -D -I "$tmp/iperf2.pid" >/dev/null 2>&1
sleep 0.3
A timeout 15 iperf3 -c 10.77.0.2 -t 4 >/dev/null 2>&1 & iperfpid=$!
for i in $(seq 8); do
	sleep 0.3
	A wg set $if_a peer "$pb" remove
	A wg set $if_a listen-port $((51850 + i % 2)) peer "$pb" allowed-ips 10.77.0.2/32,fd77::2/128 \
		endpoint "$ub:51822" preshared-key "$tmp/psk"
done
A wg set $if_a listen-port 51820
wait $iperfpid
kill "$(cat "$tmp/iperf2.pid" 2>/dev/null)" 2>/dev/null
check "ping after reconfiguring under load" A ping -c 3 -i 0.3 -W 3 10.77.0.2
check_eq "our listen port is back" 51820 "$(A wg show $if_a listen-port)"
# A port someone else holds: wg reports the engine's error, nothing changes.
A python3 -c 'import socket, time; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::", 51860)); time.sleep(3)' &
holder=$!
sleep 0.5
out=$(A wg set $if_a listen-port 51860 2>&1)
if grep -q "Address already in use" <<<"$out"; then ok "wg set reports a port in use: $out"
else fail "wg set reports a port in use" "$out" "$(A ss -uanp)"; fi
check_eq "the listen port is unchanged" 51820 "$(A wg show $if_a listen-port)"
kill $holder 2>/dev/null; wait $holder 2>/dev/null

# 10. A wrong public key never completes a handshake.
kc=$(wg genkey); pc=$(wg pubkey <<<"$kc")
A wg set $if_a peer "$pb" remove
B wg set $if_b peer "$pa" remove
A wg set $if_a peer "$pc" allowed-ips 10.77.0.2/32 endpoint $ub:51822
B wg set $if_b peer "$pa" allowed-ips 10.77.0.1/32
if A ping -c 3 -i 0.5 -W 1 10.77.0.2 >/dev/null 2>&1; then fail "ping with a wrong public key fails"
else ok "ping with a wrong public key fails"; fi
check_eq "no handshake on our side with a wrong key" 0 "$(hs_time $ns_a $if_a)"
check_eq "no handshake on their side with a wrong key" 0 "$(hs_time $ns_b $if_b)"
if [ "$PEER_IMPL" = ours ]; then
	check "their engine counted the bad MAC1s" test "$(stat $ns_b $if_b rx_drop_mac)" -ge 1
fi

# 11. Deleting the TUN device ends the engine, which removes its socket.
pid=$(ip netns pids $ns_a | while read -r p; do
	[ "$(readlink /proc/$p/exe)" = "$WG_BIN" ] && echo "$p"; done | head -1)
ip -n $ns_a link del $if_a
for _ in $(seq 30); do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then ok "engine exits when its TUN device is deleted"
else fail "engine exits when its TUN device is deleted" "pid $pid"; fi
check "engine removed its UAPI socket" test ! -e /var/run/wireguard/$if_a.sock
grep -q "deleted\|gone" "$tmp/a.log" && ok "engine logged why it exited" || fail "engine logged why it exited" "$(tail -3 "$tmp/a.log")"
tap_done
