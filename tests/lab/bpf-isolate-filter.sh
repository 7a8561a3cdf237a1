#!/usr/bin/env bash
# Lab: isolation between two networks on one node, the node's packet filter, and the
# filter enforcing while its loader is killed and restarted (pinned links).
#
#   lsb-$$-x                 lsb-$$-n (forwarding)                       lsb-$$-y
#   ex 10.1.0.2 ---veth--- ov1 10.1.0.1 | ov2 10.2.0.1 ---veth--- ey 10.2.0.2
#   (network 1)            profile A    | profile B                 (network 2)
#
# The overlays are veth stand-ins (Ethernet: the loader sees the link type and attaches
# programs that parse after a 14-byte header); each profile has its own pin dir and lists
# both overlay interfaces with their networks. x also has 10.1.0.3, used only by the pings
# whose count is checked (its own /32 route), so no trailing packet of an earlier TCP test
# from 10.1.0.2 can land in the count.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lab/bpf-lib.sh

lsb_ns x; lsb_ns n; lsb_ns y
lsb_link x ex n ov1
lsb_link n ov2 y ey
ip -n lsb-$$-x addr add 10.1.0.2/24 dev ex
ip -n lsb-$$-x addr add 10.1.0.3/24 dev ex
ip -n lsb-$$-n addr add 10.1.0.1/24 dev ov1
ip -n lsb-$$-n addr add 10.2.0.1/24 dev ov2
ip -n lsb-$$-y addr add 10.2.0.2/24 dev ey
ip -n lsb-$$-x route add default via 10.1.0.1
ip -n lsb-$$-y route add default via 10.2.0.1
ip netns exec lsb-$$-n sysctl -qw net.ipv4.ip_forward=1
PA=$(lsb_pin a); PB=$(lsb_pin b)
A="$LSB --pin-dir $PA"
B="$LSB --pin-dir $PB"
IFS_ARGS="--iface ov1:1:overlay --iface ov2:2:overlay"
ping_ok() { ip netns exec lsb-$$-"$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1; }
tcp_ok() { ip netns exec lsb-$$-"$1" timeout 2 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; }

check "attach profile A to ov1" in_ns n $A attach ov1 overlay
check "attach profile B to ov2" in_ns n $B attach ov2 overlay
ping_ok x 10.2.0.2 && ok "before isolation: x reaches y through n" || fail "x reaches y before isolation"

# fast forwarding (Ethernet ingress): x -> y forwarded by ov1's program itself
ip netns exec lsb-$$-y iperf3 -s -p 5301 -D -I "$PWD/$BUILD/test-logs/lsb-$$-5301.pid" >/dev/null
sleep 0.3
LSB_PIDS+=("$(cat "$BUILD/test-logs/lsb-$$-5301.pid")")
check "profile A: fast forwarding to ov2" in_ns n $A set --stages fast-forward --iface ov1:1:overlay --iface ov2:2:overlay,fwd-target
fb=$(lsb_counter "$PA" forward forwarded_in_bpf); sb=$(lsb_counter "$PA" forward forwarded_by_stack)
check "iperf3 TCP x -> y through the BPF fast path" ip netns exec lsb-$$-x iperf3 -c 10.2.0.2 -p 5301 -t 1
fa=$(lsb_counter "$PA" forward forwarded_in_bpf); sa=$(lsb_counter "$PA" forward forwarded_by_stack)
# every x -> y packet qualifies (neighbour resolved by the ping, TTL 64, GSO packets
# checked against the MTU by the kernel): at most 1% may be left to the stack
[ "$((fa - fb))" -gt 100 ] && [ "$(( (sa - sb) * 100 ))" -le "$((fa - fb))" ] && ok "ov1's program forwarded $((fa - fb)) packets itself ($((sa - sb)) left to the stack)" ||
	fail "fast path used" "forwarded_in_bpf $fb -> $fa, forwarded_by_stack $sb -> $sa"

check "isolate on in both profiles" in_ns n $A set --stages isolate $IFS_ARGS
in_ns n $B set --stages isolate $IFS_ARGS
ping_ok x 10.2.0.2 && fail "isolation drops network 1 -> network 2" || ok "isolation drops network 1 -> network 2"
ping_ok y 10.2.0.1 && ok "each network still reaches the node itself" || fail "y reaches n"
denied=$(lsb_counter "$PB" isolate denied_between_networks)
[ "$denied" -ge 1 ] && ok "profile B counted the drop ($denied)" || fail "drop counted" "$denied"

in_ns n $A set --stages isolate $IFS_ARGS --allow 1:2
in_ns n $B set --stages isolate $IFS_ARGS --allow 1:2
ping_ok x 10.2.0.2 && ok "an allow rule opens the pair" || fail "allow opens the pair"
in_ns n $A set --stages isolate $IFS_ARGS
in_ns n $B set --stages isolate $IFS_ARGS
ping_ok x 10.2.0.2 && fail "withdrawn allow closes it again" || ok "withdrawn allow closes it again"

# filter on profile A: tcp 5201 and icmp from network 1 to the node, nothing else
ip netns exec lsb-$$-n iperf3 -s -p 5201 -D -I "$PWD/$BUILD/test-logs/lsb-$$-5201.pid" >/dev/null
ip netns exec lsb-$$-n iperf3 -s -p 5202 -D -I "$PWD/$BUILD/test-logs/lsb-$$-5202.pid" >/dev/null
sleep 0.3
LSB_PIDS+=("$(cat "$BUILD/test-logs/lsb-$$-5201.pid")" "$(cat "$BUILD/test-logs/lsb-$$-5202.pid")")
ip netns exec lsb-$$-x iperf3 -s -p 7000 -D -I "$PWD/$BUILD/test-logs/lsb-$$-7000.pid" >/dev/null
sleep 0.3
LSB_PIDS+=("$(cat "$BUILD/test-logs/lsb-$$-7000.pid")")
FILTER="--stages filter,metrics --rule 10.1.0.0/24|10.1.0.1/32|tcp|5201 --rule 10.1.0.0/24|10.1.0.1/32|icmp|* --route 10.1.0.0/24,1,1,net1 --route 10.1.0.3/32,1,1,pinger"
tcp_ok x 10.1.0.1 5202 && ok "without the filter port 5202 is open" || fail "5202 open before filter"
rm -f "$BUILD/test-logs/bpf-isolate-run.log"
nsenter --net=/run/netns/lsb-$$-n $A run $FILTER >"$BUILD/test-logs/bpf-isolate-run.log" 2>&1 &
RUN=$!
LSB_PIDS+=("$RUN")
lsb_wait_ready "$BUILD/test-logs/bpf-isolate-run.log"
tcp_ok x 10.1.0.1 5201 && ok "filter allows tcp 5201" || fail "5201 allowed"
tcp_ok x 10.1.0.1 5202 && fail "filter denies tcp 5202" || ok "filter denies tcp 5202"
tcp_ok n 10.1.0.2 7000 && ok "a flow the node opens gets its replies (flow table)" || fail "replies to our flow"

rx_of() { $LSB --pin-dir "$PA" routes --json | python3 -c 'import json,sys; print([r for r in json.load(sys.stdin) if r["prefix"]==sys.argv[1]][0]["rx_packets"])' "$1"; }
before=$(rx_of 10.1.0.3/32)
ip netns exec lsb-$$-x ping -I 10.1.0.3 -c 5 -i 0.2 -W 1 10.1.0.1 >/dev/null
after=$(rx_of 10.1.0.3/32)
check_eq "route counter (10.1.0.3/32) grew by the 5 pings sent from 10.1.0.3" "5" "$((after - before))"
bpftool map dump pinned "$PA/route_stats" | grep -q '"rx_packets"' && ok "bpftool map dump route_stats prints field names" ||
	fail "route_stats field names"

kill -9 "$RUN"; wait "$RUN" 2>/dev/null
tcp_ok x 10.1.0.1 5202 && fail "loader killed: 5202 stays denied" || ok "loader killed: 5202 stays denied"
tcp_ok x 10.1.0.1 5201 && ok "loader killed: 5201 still allowed" || fail "5201 while killed"
rm -f "$BUILD/test-logs/bpf-isolate-run2.log"
nsenter --net=/run/netns/lsb-$$-n $A run $FILTER >"$BUILD/test-logs/bpf-isolate-run2.log" 2>&1 &
RUN=$!
LSB_PIDS+=("$RUN")
lsb_wait_ready "$BUILD/test-logs/bpf-isolate-run2.log"
grep -q "adopted" "$BUILD/test-logs/bpf-isolate-run2.log" && ok "restarted loader adopted the pinned links" || fail "adopted" "$(cat "$BUILD/test-logs/bpf-isolate-run2.log")"
tcp_ok x 10.1.0.1 5202 && fail "after restart: 5202 denied" || ok "after restart: 5202 denied"
tcp_ok x 10.1.0.1 5201 && ok "after restart: 5201 allowed" || fail "5201 after restart"
deny=$(lsb_counter "$PA" filter filter_deny)
[ "$deny" -ge 3 ] && ok "filter_deny counted every attempt ($deny)" || fail "deny counted" "$deny"
tap_done
