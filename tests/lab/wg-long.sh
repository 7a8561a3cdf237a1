#!/usr/bin/env bash
# Production timers, no shortcuts: our engine and wireguard-go exchange pings
# for 200 s. Past REKEY_AFTER_TIME (120 s) the initiator must have rekeyed
# with no ping lost, and the passive keepalive must have flowed.
#
#   ns lsw-$$-la: lightscale-wg lswl$$ 10.55.0.1  <-- veth 192.168.243.0/24 -->  ns lsw-$$-lb: wireguard-go lswm$$ 10.55.0.2
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lab/wg-lib.sh
ns_a=lsw-$$-la ns_b=lsw-$$-lb if_a=lswl$$ if_b=lswm$$
SECONDS_TOTAL=${LSW_LONG_SECONDS:-200}
tmp=$(mktemp -d /tmp/lsw-long.XXXXXX)
stat() { ip netns exec $ns_a "$WG_BIN" --stats $if_a | awk -F': ' -v k="$1" '$1 == k { print $2 }'; }

wg_pair 192.168.243
ka=$(wg genkey) kb=$(wg genkey)
(umask 077; echo "$ka" >"$tmp/ka"; echo "$kb" >"$tmp/kb")
env -u LIGHTSCALE_WG_REKEY_AFTER_TIME ip netns exec $ns_a "$WG_BIN" $if_a
LOG_LEVEL=error ip netns exec $ns_b wireguard-go $if_b >/dev/null 2>&1
ip netns exec $ns_a wg set $if_a private-key "$tmp/ka" listen-port 51950 peer "$(wg pubkey <"$tmp/kb")" allowed-ips 10.55.0.2/32 endpoint 192.168.243.2:51951
ip netns exec $ns_b wg set $if_b private-key "$tmp/kb" listen-port 51951 peer "$(wg pubkey <"$tmp/ka")" allowed-ips 10.55.0.1/32
ip -n $ns_a addr add 10.55.0.1/24 dev $if_a; ip -n $ns_a link set $if_a up
ip -n $ns_b addr add 10.55.0.2/24 dev $if_b; ip -n $ns_b link set $if_b up

count=$((SECONDS_TOTAL * 2))
out=$(ip netns exec $ns_a ping -c $count -i 0.5 -W 2 10.55.0.2 2>&1)
rx=$(grep -o '[0-9]* received' <<<"$out" | awk '{ print $1 }')
check_eq "every ping answered over $SECONDS_TOTAL s" "$count" "${rx:-0}"
n=$(stat tx_initiations)
check "we rekeyed after REKEY_AFTER_TIME (initiations: $n)" test "${n:-0}" -ge 2
check "no decryption or replay drops" test "$(stat rx_drop_decrypt)" -eq 0 -a "$(stat rx_drop_replay)" -eq 0
tap_done
