#!/usr/bin/env bash
# Lightscale demo: the product end to end on one machine, in network namespaces.
#
#     n1 10.98.0.11      n2 10.98.0.12      n3 10.98.0.13
#          |                  |                  |
#          +------------ br0 (ns inet) ----------+
#                      10.98.0.1
#      lightscale-control :8080 (HTTPS, embedded PostgreSQL)
#      lightscale-relay   :3478 (STUN, UDP relay, stream relay)
#
# The control plane starts on its own PostgreSQL cluster and serves HTTPS with a key it
# makes itself, a relay starts beside it, three nodes join the network "demo" with one
# enrollment string (the token, the deployment's identity key and the server's key pin:
# every node request is pinned from the first one), their agents bring up the
# mesh, and every node pings every other over the overlay (IPv4 and IPv6). Then the
# status of one node and its relays are shown. Everything is removed at the end, or on
# Ctrl-C. DEMO_HOLD=1 keeps the mesh up until Ctrl-C so you can look around.
set -u
cd "$(dirname "$0")/.."
export LIGHTSCALE_BUILD=${BUILD:-build}
source tests/lab/lib.sh

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

lab_init
LSR="$BUILD/lightscale-relay"
[ -x "$LSR" ] || lab_die "lightscale-relay binary" "missing $LSR"

say "Network namespaces: an 'internet' bridge and three nodes"
lab_ns inet
lab_bridge inet br0 10.98.0.1/24 fd98::1/64
for i in 1 2 3; do lab_node n$i inet br0 10.98.0.1$i/24 fd98::1$i/64; done
echo "namespaces: ${LAB_NS[*]}"

say "Relay: STUN, UDP relay and stream relay on 10.98.0.1:3478"
bg inet "$LAB_DIR/relay.log" "$LSR" serve --stun 10.98.0.1:3478 --udp 10.98.0.1:3479 --stream 10.98.0.1:3478 \
	--foreground --control "$LAB_DIR/relay.sock"
wait_for 10 "relay status" "$LSR" status --control "$LAB_DIR/relay.sock" || lab_die "relay starts" "$(tail "$LAB_DIR/relay.log")"
nsx inet "$LSR" stun-query 10.98.0.1:3478 --bind 10.98.0.1:0 | sed 's/^/  /'

say "Control plane: lightscale-control on its embedded PostgreSQL, over HTTPS"
CONTROL_CONFIG='{"relays": {"stun": ["10.98.0.1:3478"], "udp": ["10.98.0.1:3479"], "stream": ["10.98.0.1:3478"]}}'
control_start inet 10.98.0.1 8080
echo "control plane at $CONTROL_URL, state in $CONTROL_DIR (PostgreSQL in $CONTROL_DIR/pg)"
echo "its TLS key (self-signed, endorsed by the identity key): $(cat "$CONTROL_DIR/tls.pin")"
printf '$ lightscale-control network create demo\n'
lsc network create demo
printf '$ lightscale-control token create --network demo --uses 3 --ttl 1h\n'
tok=$(lsc token create --network demo --uses 3 --ttl 1h --json | jq -r .enroll)
echo "enrollment string: ${tok:0:12}...@IDENTITY@PIN (the token is secret; stored hashed on the server)"

say "Three nodes join with the enrollment string and start their agents"
for n in n1 n2 n3; do
	node_init "$n" "$tok"
	echo "$n: node $(node_id "$n"), $(node_addr "$n" 4), $(node_addr "$n" 6)"
	agent_start "$n"
done
for n in n1 n2 n3; do
	wait_for 15 "$n has two peers" peer_count "$n" 2 || lab_die "$n configures its peers" "$(node_log "$n")"
done
printf '$ lightscale-control node list --network demo\n'
lsc node list --network demo

say "Ping matrix over the overlay (IPv4 and IPv6)"
bad=0
for a in n1 n2 n3; do
	for b in n1 n2 n3; do
		[ "$a" = "$b" ] && continue
		for f in 4 6; do
			addr=$(node_addr "$b" $f)
			if ping_within "$a" "$addr" 10; then
				printf '  %s -> %s  %-28s ok\n' "$a" "$b" "$addr"
			else
				printf '  %s -> %s  %-28s FAILED\n' "$a" "$b" "$addr"
				bad=$((bad + 1))
			fi
		done
	done
done

say "Status of n1"
printf '$ lightscale status\n'
lsx n1 status
say "Relays n1 learned from its netmap"
printf '$ lightscale relay list\n'
lsx n1 relay list
say "The same interface through wg(8)"
printf '$ wg show %s\n' "$(ifname_of n1)"
nsx n1 wg show "$(ifname_of n1)"

if [ "${DEMO_HOLD:-0}" = 1 ]; then
	say "The mesh stays up; enter a node with: nsenter --net=/run/netns/$(nsname n1) bash. Ctrl-C ends the demo."
	while :; do sleep 3600; done
fi
say "Done: every namespace and process is removed now"
if ((bad)); then
	echo "demo: $bad pings failed" >&2
	exit 1
fi
