#!/usr/bin/env bash
# trust-rotate: `lightscale rotate-key` on a node with a running agent: the request is
# signed by the machine key, the agent follows the new key, the peer picks it up at its
# next long-poll, and a ping running across the rotation keeps going (the gap is reported).
# Then a rotation refused by the server (revoked node) changes nothing locally.
#
#   n1 10.99.0.11 ---- br0 (ns inet, control 10.99.0.1:8080) ---- n2 10.99.0.12
source "$(dirname "$0")/lib.sh"
lab_init
lab_mesh n1 n2
A2=$(node_addr n2 4)
ping_within n1 "$A2" 10 && ok "ping n1 -> n2" || fail "ping" "$(node_log n1)"
old=$(lsx n1 netmap --json | jq -r '.peers[0].wg_key')

# a ping every 50 ms across the rotation
nsx n1 ping -D -i 0.05 -w 12 "$A2" >"$LAB_DIR/ping.txt" 2>&1 &
pp=$!
sleep 2
out=$(lsx n2 rotate-key --json)
new=$(echo "$out" | jq -r .wg_key)
[ -n "$new" ] && [ "$new" != "$old" ] && ok "rotate-key: a new key ($new)" || fail "rotate-key" "$out"
wait_for 10 "n1's netmap has n2's new key" sh -c "[ \"\$(nsenter --net=/run/netns/$(nsname n1) $LS netmap --profile $(profile_of n1) --state-dir $LAB_DIR/n1 --json | jq -r '.peers[0].wg_key')\" = '$new' ]" &&
	ok "the peer picked up the new key at its long-poll" || fail "peer key" "$(node_log n1)"
grep -q "following the rotated WireGuard key $new" "$LAB_DIR/n2.agent.log" && ok "n2's agent follows its rotated key" ||
	fail "agent follows" "$(node_log n2)"
wait $pp
# the longest gap between two replies
ping_summary "$LAB_DIR/ping.txt"
lab_log "rotation: ping $PING_RECV/$PING_SENT replies, longest gap ${PING_GAP} ms"
((PING_RECV > 0 && PING_GAP < 6000)) && ok "traffic continues across the rotation (longest gap ${PING_GAP} ms, $PING_RECV/$PING_SENT replies)" ||
	fail "traffic across rotation" "gap ${PING_GAP} ms, $PING_RECV/$PING_SENT"
ping_ok n1 "$A2" && ok "ping after the rotation" || fail "ping after rotation"
check_eq "lightscale audit verify accepts the rotated key" 0 "$(lsx n1 audit verify >/dev/null; echo $?)"

# refused: a revoked node's rotation changes nothing
lsc node revoke "$(node_id n2)" >/dev/null
k=$(find "$LAB_DIR/n2" -name wg.key | head -1)
before=$(cat "$k")
out=$(lsx n2 rotate-key 2>&1)
check "a revoked node's rotation is refused (403)" grep -q "node_revoked" <<<"$out"
check_eq "and its key file is unchanged" "$before" "$(cat "$k")"
tap_done
