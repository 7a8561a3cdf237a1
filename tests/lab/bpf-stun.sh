#!/usr/bin/env bash
# Lab: STUN port sharing on the underlay.
#
#   lsb-$$-a (node)                                  lsb-$$-s (STUN server / peer)
#   u0 10.9.0.1  ------------- veth -------------   s0 10.9.0.2
#   :51820 "WireGuard" socket, :40000 agent's STUN socket
#
# Ingress: STUN to 51820 lands on the agent's socket (bpf_sk_assign, no header rewrite);
# anything else to 51820 stays WireGuard's. Egress: the agent's STUN request leaves with
# source port 51820, so the server's answer (and the NAT mapping) is WireGuard's port's.
# Run twice: attached with tcx, and with clsact (the path of Debian 12's 6.1 kernel).
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lab/bpf-lib.sh

lsb_ns a; lsb_ns s
lsb_link a u0 s s0
ip -n lsb-$$-a addr add 10.9.0.1/24 dev u0
ip -n lsb-$$-s addr add 10.9.0.2/24 dev s0
for MODE in tcx clsact; do
P=$(lsb_pin "a-$MODE")
check "$MODE: attach underlay" in_ns a env LIGHTSCALE_BPF_TC_MODE=$MODE $LSB --pin-dir "$P" attach u0 underlay
m=$(in_ns a $LSB --pin-dir "$P" status --json | python3 -c 'import json,sys; print(",".join(sorted({a["mode"] for a in json.load(sys.stdin)["attachments"] if a["attached"]})))')
check_eq "$MODE: status shows the programs attached with $MODE" "$MODE" "$m"
check "$MODE: STUN state: WireGuard 51820, agent 40000" in_ns a $LSB --pin-dir "$P" set --stages stun --wg-port 51820 --stun-port 40000

LOGS=$PWD/$BUILD/test-logs
cat >"$LOGS/lsb-$$-node.py" <<'PY'
# node: listens on 51820 (WireGuard stand-in) and 40000 (agent); the agent sends one STUN
# request to the server from 40000; prints "SOCKET:what" for each datagram received.
import os, select, socket, struct, sys, time
w = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); w.bind(("0.0.0.0", 51820))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 40000))
print("ready", flush=True)
req = struct.pack("!HHI12s", 1, 0, 0x2112A442, b"agentrequest")
time.sleep(0.5)
s.sendto(req, ("10.9.0.2", 3478))
end = time.time() + 4
while time.time() < end:
    r, _, _ = select.select([w, s], [], [], 0.2)
    for x in r:
        d, a = x.recvfrom(2048)
        kind = "stun" if len(d) >= 20 and d[4:8] == b"\x21\x12\xa4\x42" else d[:8].decode(errors="replace")
        print("%s:%s:%d" % ("wg" if x is w else "agent", kind, a[1]), flush=True)
PY
cat >"$LOGS/lsb-$$-server.py" <<'PY'
# server: answers the node's STUN request (printing the source port it came from), then
# sends a STUN request and a non-STUN datagram to the node's WireGuard port.
import socket, struct
srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); srv.bind(("0.0.0.0", 3478)); srv.settimeout(5)
d, a = srv.recvfrom(2048)
print("request-from-port:%d" % a[1], flush=True)
resp = struct.pack("!HHI12s", 0x0101, 0, 0x2112A442, d[8:20])
srv.sendto(resp, a)
o = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
o.sendto(struct.pack("!HHI12s", 1, 0, 0x2112A442, b"probe0000000"), ("10.9.0.1", 51820))
o.sendto(b"wgpacket" + b"\0" * 40, ("10.9.0.1", 51820))
PY
ip netns exec lsb-$$-s python3 "$LOGS/lsb-$$-server.py" >"$LOGS/lsb-$$-server.out" 2>&1 &
SP=$!; LSB_PIDS+=("$SP")
sleep 0.3
node=$(ip netns exec lsb-$$-a python3 "$LOGS/lsb-$$-node.py" 2>&1)
wait "$SP" 2>/dev/null
srv=$(cat "$LOGS/lsb-$$-server.out")
check_eq "$MODE: the agent's STUN request left from the WireGuard port" "request-from-port:51820" "$srv"
echo "$node" | grep -q "^agent:stun:3478$" && ok "$MODE: the server's STUN answer to 51820 reached the agent's socket" ||
	fail "$MODE: answer to the agent" "$node"
! echo "$node" | grep -q "^wg:stun" && ok "$MODE: no STUN reached the WireGuard socket" ||
	fail "$MODE: no STUN on the WireGuard socket" "$node"
echo "$node" | grep -q "^wg:wgpacket" && ok "$MODE: non-STUN to 51820 still reaches WireGuard" || fail "$MODE: non-STUN to WireGuard" "$node"
n=$(echo "$node" | grep -c "^agent:stun")
check_eq "$MODE: two STUN messages steered to the agent (answer + probe)" "2" "$n"
assign=$(lsb_counter "$P" stun stun_to_agent)
sport=$(lsb_counter "$P" stun stun_source_port)
check_eq "$MODE: counter stun_to_agent" "2" "$assign"
check_eq "$MODE: counter stun_source_port" "1" "$sport"
in_ns a $LSB --pin-dir "$P" down >/dev/null 2>&1
done
tap_done
