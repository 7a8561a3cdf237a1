#!/usr/bin/env bash
# v6only-relay: relay fallback on an IPv6-only underlay. Node a drops every UDP datagram
# (in and out), so WireGuard cannot go direct; the stream relay, listening on IPv6 only,
# carries the overlay (IPv4 and IPv6) between a and b. Lifting the block goes direct
# over IPv6.
#
#   ns inet: br0 fd99::1/64, control https://[fd99::1]:8080 (--tls),
#            lightscale-relay --udp [fd99::1]:3478 --stream [fd99::1]:8443
#     |                                  |
#   ns a: eth0 fd99::11 (agent)        ns b: eth0 fd99::12 (agent)
#   firewall on a's eth0: all UDP dropped; no IPv4 address on any link
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/relay-lib.sh"
lab_init
relay_init "$LAB_DIR/relays" || exit 1
trap 'relay_stop_all; lab_cleanup' EXIT

lab_ns inet
lab_bridge inet br0 fd99::1/64
lab_node a inet br0 fd99::11/64
lab_node b inet br0 fd99::12/64
relay_start r1 "$(nsname inet)" --udp "[fd99::1]:3478" --stream "[fd99::1]:8443" || lab_die "relay starts on IPv6"
relays_config "[fd99::1]:3478" "[fd99::1]:8443" "[fd99::1]:3478" >"$LAB_DIR/control.json"
CONTROL_NS=inet CONTROL_DIR="$LAB_DIR/control" CONTROL_URL="https://[fd99::1]:8080"
mkdir -p "$CONTROL_DIR"
chmod 755 "$CONTROL_DIR"
bg inet "$LAB_DIR/control.log" "$LSC" serve --tls --listen "[::]:8080" --state-dir "$CONTROL_DIR" --config "$LAB_DIR/control.json"
wait_for 60 "control health" nsx inet curl -gsfk "$CONTROL_URL/v1/health" || lab_die "control starts" "$(tail "$LAB_DIR/control.log")"
net_create home
tok=$(lsc token create --network home --uses 5 --json | jq -r .enroll)
node_init a "$tok"
node_init b "$tok"
check_eq "no IPv4 address on the links" "" "$(for n in inet a b; do nsx $n ip -4 -o addr show | grep -v ' lo '; done)"
udp_block "$(nsname a)" eth0
agent_start a
agent_start b
pa=$(lsx a status --json | jq -r .public_key)
pb=$(lsx b status --json | jq -r .public_key)
aa=$(node_addr a 4) ab=$(node_addr b 4) ab6=$(node_addr b 6)
path_is() { [ "$(pj "$1" "$2" .path)" = "$3" ] && { [ -z "${4:-}" ] || [ "$(pj "$1" "$2" .via)" = "$4" ]; }; }

if wait_for 40 "a relayed to b" path_is a "$pb" relayed stream; then
	ok "a reaches b through the IPv6 stream relay"
else
	fail "a relays through the stream relay" "$(lsx a status --json | jq -c '.peers[0].path')" "$(node_log a 20)"
fi
check_eq "a's status names the IPv6 relay" "[fd99::1]:8443" "$(pj a "$pb" .relay)"
check "ping a -> b (IPv4 overlay) through the IPv6 relay" ping_within a "$ab" 20
check "ping a -> b (IPv6 overlay) through the IPv6 relay" ping_within a "$ab6" 10
check "ping b -> a" ping_within b "$aa" 10
check "the firewall dropped a's UDP" test "$(udp_block_count "$(nsname a)")" -ge 1
check "the relay carried frames" test "$(relay_status r1 '[.counters | to_entries[] | select(.key | test("frames|packets")) | .value] | add // 0')" -ge 1

udp_unblock "$(nsname a)"
if wait_for 40 "a direct to b" path_is a "$pb" direct; then
	ok "a goes direct over IPv6 once UDP passes"
else
	fail "a goes direct" "$(lsx a status --json | jq -c '.peers[0].path')" "$(node_log a 20)"
fi
check_eq "a's endpoint for b is b's IPv6 address" "[fd99::12]:51820" "$(pj a "$pb" .endpoint)"
check "ping a -> b direct" ping_within a "$ab" 10
tap_done
