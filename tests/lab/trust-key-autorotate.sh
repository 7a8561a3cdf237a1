#!/usr/bin/env bash
# trust-key-autorotate: a network whose node keys live 60 s. The agents rotate their
# WireGuard keys on their own before expiry (a third of the lifetime before; POST /v1/rotate
# signed by the machine key), the peer picks the new key up at its next long-poll, a ping
# runs across it (the longest gap is reported), `node list' shows the later expiry and no
# node ever expires.
#
#   n1 10.99.0.11 ---- br0 (ns inet, control 10.99.0.1:8080, HTTPS) ---- n2 10.99.0.12
source "$(dirname "$0")/lib.sh"
lab_init
lab_star n1 n2
LIFETIME=60
lsc network set home --key-lifetime ${LIFETIME}s >/dev/null || lab_die "network set --key-lifetime"
node_init n1 "$LAB_TOK"
node_init n2 "$LAB_TOK"
node_json() { lsc node list --network home --json | jq -c --arg n "$1" '.nodes[] | select(.name == $n)'; }
exp0=$(node_json n2 | jq .key_expiry)
now=$(date +%s)
((exp0 > now && exp0 <= now + LIFETIME)) && ok "node list: n2's key expires within the lifetime ($((exp0 - now)) s)" ||
	fail "initial expiry" "$(node_json n2)"
# a poll at least every 5 s: the rotation is decided on netmap answers
agent_start n1 --poll-wait 5
agent_start n2 --poll-wait 5
wait_for 40 "n1 peer" peer_count n1 1 || lab_die "n1 sees n2" "$(node_log n1)"
A2=$(node_addr n2 4)
ping_within n1 "$A2" 10 && ok "ping n1 -> n2" || fail "ping" "$(node_log n1)"
k0=$(node_json n2 | jq -r .wg_key)

nsx n1 ping -D -i 0.05 -w $((LIFETIME + 5)) "$A2" >"$LAB_DIR/ping.txt" 2>&1 &
pp=$!
rotated() { grep -q "rotated the WireGuard key: new public key" "$LAB_DIR/$1.agent.log"; }
wait_for $((LIFETIME + 5)) "n2 rotates on its own" rotated n2 &&
	ok "n2's agent rotated its key on its own ($(grep -o 'expires in [0-9]* s' "$LAB_DIR/n2.agent.log" | head -1) when it did)" ||
	fail "n2 rotates" "$(node_log n2)"
k1=$(grep -o "rotated the WireGuard key: new public key .*" "$LAB_DIR/n2.agent.log" | head -1 | awk '{print $NF}')
t_rot=$(date +%s)
[ -n "$k1" ] && [ "$k1" != "$k0" ] && ok "a new key ($k1)" || fail "new key" "$k0 -> $k1"
check "before expiry" test "$t_rot" -lt "$exp0"
grep -q "following the rotated WireGuard key $k1" "$LAB_DIR/n2.agent.log" && ok "n2's data plane follows its new key" ||
	fail "n2 follows" "$(node_log n2)"
peer_key() { lsx n1 netmap --json | jq -r '.peers[0].wg_key'; }
wait_for 10 "n1 has n2's new key" sh -c "[ \"\$(nsenter --net=/run/netns/$(nsname n1) $LS netmap --profile $(profile_of n1) --state-dir $LAB_DIR/n1 --json | jq -r '.peers[0].wg_key')\" = '$k1' ]" &&
	ok "the peer picked up the new key at its long-poll" || fail "n1's netmap" "$(peer_key)" "$(node_log n1)"
check_eq "n1's WireGuard has n2's new key" "$k1" "$(nsx n1 wg show "$(ifname_of n1)" peers)"
j=$(node_json n2)
check_eq "node list: n2 has the new key" "$k1" "$(jq -r .wg_key <<<"$j")"
(($(jq .key_expiry <<<"$j") > exp0)) && ok "node list: the new expiry is later ($(jq .key_expiry <<<"$j") > $exp0)" ||
	fail "new expiry" "$j"
check_eq "node list: n2 is active" active "$(jq -r .status <<<"$j")"
wait $pp
ping_summary "$LAB_DIR/ping.txt"
lab_log "automatic rotation: ping $PING_RECV/$PING_SENT replies, longest gap ${PING_GAP} ms"
((PING_RECV > 0 && PING_GAP < 6000)) && ok "traffic continues across the automatic rotation (longest gap ${PING_GAP} ms, $PING_RECV/$PING_SENT replies)" ||
	fail "traffic across rotation" "gap ${PING_GAP} ms, $PING_RECV/$PING_SENT"
# n1 rotated too (same lifetime); nobody expired
rotated n1 && ok "n1 rotated on its own too" || fail "n1 rotates" "$(node_log n1)"
check_eq "no node expired" '["active","active"]' "$(lsc node list --network home --json | jq -c '[.nodes[].status]')"
ping_ok n1 "$A2" && ok "ping after the rotations" || fail "ping after"
check_eq "lightscale audit verify accepts the rotated keys" 0 "$(lsx n1 audit verify >/dev/null; echo $?)"
tap_done
