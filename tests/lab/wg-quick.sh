#!/usr/bin/env bash
# wg-quick users: WG_QUICK_USERSPACE_IMPLEMENTATION=lightscale-wg brings an
# interface up from a wg-quick config (this kernel has no WireGuard, so
# wg-quick falls back to the userspace implementation), and `wg-quick down`
# deletes it, which ends our engine; SIGTERM ends one cleanly as well.
#
#   ns lsw-$$-a: wg-quick up lswq$$ (ours)      ns lsw-$$-b: lightscale-wg lswr$$ + wg
#     10.66.0.1/24  va$$ 192.168.242.1 <-- veth --> vb$$ 192.168.242.2  10.66.0.2/24
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lab/wg-lib.sh
ns_a=lsw-$$-qa ns_b=lsw-$$-qb if_a=lswq$$ if_b=lswr$$
tmp=$(mktemp -d /tmp/lsw-quick.XXXXXX)
trap wg_cleanup EXIT
if ! command -v wg-quick >/dev/null; then fail "wg-quick is installed (wireguard-tools)"; exit 1; fi

wg_pair 192.168.242
ka=$(wg genkey) kb=$(wg genkey)
pa=$(wg pubkey <<<"$ka") pb=$(wg pubkey <<<"$kb")
echo "$kb" >"$tmp/kb"

ip netns exec $ns_b "$WG_BIN" $if_b
ip netns exec $ns_b wg set $if_b private-key "$tmp/kb" listen-port 51900 peer "$pa" allowed-ips 10.66.0.1/32
ip -n $ns_b addr add 10.66.0.2/24 dev $if_b; ip -n $ns_b link set $if_b up

cat >"$tmp/$if_a.conf" <<CONF
[Interface]
PrivateKey = $ka
Address = 10.66.0.1/24
ListenPort = 51901

[Peer]
PublicKey = $pb
AllowedIPs = 10.66.0.2/32
Endpoint = 192.168.242.2:51900
PersistentKeepalive = 15
CONF
chmod 600 "$tmp/$if_a.conf"
out=$(WG_QUICK_USERSPACE_IMPLEMENTATION=$WG_BIN ip netns exec $ns_a wg-quick up "$tmp/$if_a.conf" 2>&1)
check "wg-quick up with our engine" test $? -eq 0
echo "$out" | sed 's/^/# /'
check "ping through the wg-quick interface" ip netns exec $ns_a ping -c 2 -i 0.3 -W 2 10.66.0.2
check_eq "wg show sees wg-quick's settings" 15 "$(ip netns exec $ns_a wg show $if_a persistent-keepalive | awk '{ print $2 }')"
check_eq "wg-quick set the MTU" 1420 "$(ip -n $ns_a -o link show $if_a | grep -o 'mtu [0-9]*' | awk '{ print $2 }')"
# Taking b's interface down and up again does not end its engine.
pid_b=$(wg_engine_pid $ns_b)
ip -n $ns_b link set $if_b down; sleep 1; ip -n $ns_b link set $if_b up
check "an engine survives its interface going down and up" kill -0 "$pid_b"
check "ping b -> a after down/up" ip netns exec $ns_b ping -c 2 -i 0.3 -W 2 10.66.0.1
pid=$(wg_engine_pid $ns_a)
check "wg-quick down" ip netns exec $ns_a wg-quick down "$tmp/$if_a.conf"
for _ in $(seq 30); do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then ok "our engine exited after wg-quick down"
else fail "our engine exited after wg-quick down" "pid $pid"; fi
check "its UAPI socket is gone" test ! -e /var/run/wireguard/$if_a.sock

# SIGTERM ends an engine cleanly too (b's, started by hand).
pid=$(wg_engine_pid $ns_b)
kill -TERM "$pid"
for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if ! kill -0 "$pid" 2>/dev/null; then ok "SIGTERM ends the engine"; else fail "SIGTERM ends the engine" "pid $pid"; fi
check "it removed its UAPI socket" test ! -e /var/run/wireguard/$if_b.sock
check "wg no longer lists it" bash -c "! wg show interfaces | tr ' ' '\n' | grep -qx $if_b"
tap_done
