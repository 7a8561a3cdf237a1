#!/usr/bin/env bash
# Multi-relay failover: the netmap lists two stream relays; the first is down, so both
# nodes (all their UDP dropped) meet on the second. When the first comes up they return
# to it (the list's order is the preference); killed mid-ping, traffic moves to the
# second again. Stream relays alone lower no MTU (TCP segments, never IP fragments).
#
#   ns inet: br0 203.0.113.1/24, control :8080
#            relay r1 --stream 203.0.113.1:8443 (down at first), r2 --stream 203.0.113.1:8444
#     |                                  |
#   ns a: eth0 203.0.113.11            ns b: eth0 203.0.113.12
#   all UDP dropped                    all UDP dropped
source "$(dirname "$0")/nat-lib.sh"

nat_pair
relay_start r2 "$(nsname inet)" --stream 203.0.113.1:8444 || lab_die "relay r2 starts"
nat_control "$(relays_config "" 203.0.113.1:8443,203.0.113.1:8444 "")"
udp_block "$(nsname a)" eth0
udp_block "$(nsname b)" eth0
nat_agents
relay_is() { [ "$(pj "$1" "$2" .path)" = relayed ] && [ "$(pj "$1" "$2" .relay)" = "$3" ]; }

# 1. The first relay is down: the second.
check "a relays to b through the second stream relay" wait_for 40 "a on r2" relay_is a "$pb" 203.0.113.1:8444
check "b relays to a through the second stream relay" wait_for 10 "b on r2" relay_is b "$pa" 203.0.113.1:8444
check "a tried the first relay (failures counted)" \
	test "$(lsx a status --json | jq '.nat.relays.stream.relays[0].failures')" -ge 1
check "ping a -> b through the second relay" ping_within a "$ab" 20
# stream relays alone: TCP carries WireGuard's datagrams, nothing fragments, no MTU route
check_eq "a's status: b's path MTU over stream relays is the interface's 1420" 1420 "$(pj a "$pb" .mtu)"
check_eq "no MTU route on a" "" "$(nsx a ip route show table all proto 76)"
check "ping -M do -s 1392 (1420 bytes) a -> b through the stream relay" nsx a ping -c 2 -i 0.3 -W 3 -M do -s 1392 "$ab"
check_eq "r2 has both nodes' keys" "$(printf '%s\n' "$pa" "$pb" | sort | tr '\n' ' ')" \
	"$(relay_status r2 '.stream_peers[].key' | sort | tr '\n' ' ')"
check_eq "status text shows the stream relay in use" "connected" \
	"$(lsx a status | grep -c 'stream relay: up 203.0.113.1:8444' | sed 's/^1$/connected/')"

# 2. The first relay comes up: both return to it.
relay_start r1 "$(nsname inet)" --stream 203.0.113.1:8443 || lab_die "relay r1 starts"
t1=$(date +%s%N)
if wait_for 60 "a on r1" relay_is a "$pb" 203.0.113.1:8443 && wait_for 30 "b on r1" relay_is b "$pa" 203.0.113.1:8443; then
	ok "both return to the first relay once it is up ($(ms $t1) ms)"
else
	fail "both return to the first relay once it is up" "$(lsx a status --json | jq -c '.nat.relays.stream')"
fi
check "ping a -> b through the first relay" ping_within a "$ab" 10

# 3. The first relay dies mid-ping: the second carries on.
nsx a ping -c 60 -i 0.25 -W 1 "$ab" >"$LAB_DIR/ping-failover" 2>&1 &
ping_pid=$!
sleep 2
relay_stop r1
t2=$(date +%s%N)
if wait_for 30 "a on r2 again" relay_is a "$pb" 203.0.113.1:8444; then
	ok "a fails over to the second relay ($(ms $t2) ms after the first died)"
else
	fail "a fails over to the second relay" "$(lsx a status --json | jq -c '.nat.relays.stream')"
fi
wait $ping_pid
rx=$(received "$LAB_DIR/ping-failover") gap=$(max_gap "$LAB_DIR/ping-failover" 60)
check "traffic continues across the relay failover ($rx of 60 received, $gap lost in a row at 4/s; at most 20)" \
	test "${rx:-0}" -ge 35 -a "$gap" -le 20
check "a counted the disconnect from the first relay" \
	test "$(lsx a status --json | jq '.nat.relays.stream.relays[0].disconnects')" -ge 1
tap_done
