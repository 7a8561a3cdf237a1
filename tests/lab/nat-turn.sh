#!/usr/bin/env bash
# TURN through the agent: the netmap lists a stream relay (signalling) and a TURN
# server (coturn), no UDP relay. The direct path between a and b is blocked (b drops UDP
# from a), UDP to coturn passes: both agents allocate, swap relayed addresses through
# the stream relay, and carry the overlay through TURN (with a path MTU of 1392 for
# TURN's framing); coturn killed mid-ping, the stream relay takes over.
#
#   ns inet: br0 203.0.113.1/24, control :8080, lightscale-relay --stream 8443,
#            turnserver 203.0.113.1:3480 (user lsnt, relayed addresses on 203.0.113.1)
#     |                                  |
#   ns a: eth0 203.0.113.11            ns b: eth0 203.0.113.12 (drops UDP from a)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/relay-lib.sh"
lab_init
command -v turnserver >/dev/null || lab_die "coturn's turnserver is installed (apt-get install coturn)"
relay_init "$LAB_DIR/relays" || exit 1
trap 'relay_stop_all; lab_cleanup' EXIT

nat_pair
nsx b nft add table inet lsntpeer
nsx b nft add chain inet lsntpeer lsin '{ type filter hook input priority -10; }'
nsx b nft add rule inet lsntpeer lsin ip saddr 203.0.113.11 meta l4proto udp counter drop
relay_start r1 "$(nsname inet)" --stream 203.0.113.1:8443 || lab_die "relay starts"
turn_start "$(nsname inet)" 203.0.113.1 3480 lsnt turn-secret || lab_die "coturn starts"
nat_control "$(relays_config "" 203.0.113.1:8443 "" turn:203.0.113.1:3480 lsnt turn-secret)"
nat_agents
path_is() { [ "$(pj "$1" "$2" .path)" = relayed ] && [ "$(pj "$1" "$2" .via)" = "$3" ]; }

check "a allocates on coturn" wait_for 30 "a turn" \
	bash -c "[ \"\$(nsenter --net=/run/netns/$(nsname a) $LS status --profile $(profile_of a) --state-dir $LAB_DIR/a --json | jq -r '.nat.relays.turn[0].state')\" = up ]"
check_eq "a's relayed address is on coturn" 203.0.113.1 "$(lsx a status --json | jq -r '.nat.relays.turn[0].relayed' | cut -d: -f1)"
check "a reaches b through TURN" wait_for 40 "a via turn" path_is a "$pb" turn
check "b reaches a through TURN" wait_for 20 "b via turn" path_is b "$pa" turn
check_eq "a's status names the TURN server" turn:203.0.113.1:3480 "$(pj a "$pb" .relay)"
check "ping a -> b through TURN" ping_within a "$ab" 15
# TURN's Send/Data indications (47 bytes over IPv4): the path MTU is 1392, on a route
check_eq "a's status: b's path MTU through TURN is 1392" 1392 "$(pj a "$pb" .mtu)"
check "a's route to b carries mtu 1392" \
	bash -c "nsenter --net=/run/netns/$(nsname a) ip route show table main proto 76 $ab | grep -q 'mtu 1392'"
check "ping -M do -s 1364 (1392 bytes) a -> b through TURN" nsx a ping -c 2 -i 0.3 -W 2 -M do -s 1364 "$ab"
check "b dropped a's direct UDP" test "$(nsx b nft list table inet lsntpeer | grep -o 'packets [0-9]*' | awk '{ print $2 }')" -ge 1

nsx a ping -c 50 -i 0.25 -W 1 "$ab" >"$LAB_DIR/ping-turn" 2>&1 &
ping_pid=$!
sleep 2
turn_stop
check "a moves to the stream relay when coturn dies" wait_for 20 "a via stream" path_is a "$pb" stream
wait $ping_pid
rx=$(received "$LAB_DIR/ping-turn")
check "traffic continues when coturn dies ($rx of 50 received)" test "${rx:-0}" -ge 30
tap_done
