#!/usr/bin/env bash
# Scale lab: ten nodes, a mix of direct and relayed paths, full-mesh ping.
#
#   ns inet: br0 203.0.113.1/24, control :8080, lightscale-relay --udp 3478 --stream 8443
#     |- n1..n4   203.0.113.21-24  public addresses
#     |- x5  203.0.113.15  NAT -- n5 10.5.0.2
#     |- x6  203.0.113.16  NAT -- n6 10.6.0.2
#     |- n7, n8   203.0.113.27-28  all UDP dropped (firewall): relayed (stream relay)
#     `- x9  203.0.113.19  NAT -- lan 10.9.0.0/24: n9 10.9.0.2, n10 10.9.0.3 (one LAN)
#
# Expected: every pair pings; pairs with n7 or n8 are relayed through the stream relay,
# every other pair is direct (n5<->n6 through both NATs, n9<->n10 over their LAN).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/relay-lib.sh"
lab_init
relay_init "$LAB_DIR/relays" || exit 1
trap 'relay_stop_all; lab_cleanup' EXIT
NODES="n1 n2 n3 n4 n5 n6 n7 n8 n9 n10"

lab_ns inet
lab_bridge inet br0 203.0.113.1/24
for i in 1 2 3 4 7 8; do lab_node n$i inet br0 203.0.113.2$i/24; done
for i in 5 6 9; do
	lab_node x$i inet br0 203.0.113.1$i/24
	nsx x$i ip route add default via 203.0.113.1
	nsx x$i ip link add lan0 type bridge
	nsx x$i ip link set lan0 up
	lab_addr x$i lan0 10.$i.0.1/24
	nat_box "$(nsname x$i)" eth0 lan0 203.0.113.1$i
done
lan_node() { # NODE NAT ADDR
	lab_ns "$1"
	lab_link "$1" eth0 "$2" "v-$1"
	nsx "$2" ip link set "v-$1" master lan0
	lab_addr "$1" eth0 "$3/24"
	nsx "$1" ip route add default via "${3%.*}.1"
}
lan_node n5 x5 10.5.0.2
lan_node n6 x6 10.6.0.2
lan_node n9 x9 10.9.0.2
lan_node n10 x9 10.9.0.3
udp_block "$(nsname n7)" eth0
udp_block "$(nsname n8)" eth0
relay_start r1 "$(nsname inet)" --udp 203.0.113.1:3478 --stream 203.0.113.1:8443 || lab_die "relay starts"
CONTROL_CONFIG=$(relays_config 203.0.113.1:3478 203.0.113.1:8443 "")
control_start inet 203.0.113.1 8080
net_create home
tok=$(token_create home 20)
for n in $NODES; do node_init $n "$tok"; done
t0=$(date +%s%N)
for n in $NODES; do agent_start $n; done
declare -A ADDR KEY
for n in $NODES; do
	ADDR[$n]=$(node_addr $n 4)
	KEY[$n]=$(lsx $n status --json | jq -r .public_key)
done
relayed_pair() { case " $1 $2 " in *" n7 "* | *" n8 "*) return 0 ;; esac; return 1; }

check "every node sees 9 peers" wait_for 60 "peers" bash -c "for n in $NODES; do
	[ \"\$(nsenter --net=/run/netns/$LAB_ID-\$n $LS status --profile ${LAB_ID}\$n --state-dir $LAB_DIR/\$n --json | jq '[.peers[] | select(.configured)] | length')\" = 9 ] || exit 1; done"

# every node's view of every peer settles: relayed for n7/n8 pairs, direct for the rest
settled() {
	local n m p
	for n in $NODES; do
		lsx $n status --json >"$LAB_DIR/st-$n.json" || return 1
		for m in $NODES; do
			[ $n = $m ] && continue
			p=$(jq -r --arg k "${KEY[$m]}" '.peers[] | select(.public_key == $k) | .path.path' "$LAB_DIR/st-$n.json")
			if relayed_pair $n $m; then [ "$p" = relayed ] || return 1
			else [ "$p" = direct ] || return 1; fi
		done
	done
}
if wait_for 120 "paths settle" settled; then
	ok "all 90 paths settled: 34 relayed (n7, n8), 56 direct ($((($(date +%s%N) - t0) / 1000000)) ms after the agents started)"
else
	bad=""
	for n in $NODES; do for m in $NODES; do
		[ $n = $m ] && continue
		p=$(jq -r --arg k "${KEY[$m]}" '.peers[] | select(.public_key == $k) | .path.path' "$LAB_DIR/st-$n.json" 2>/dev/null)
		if relayed_pair $n $m; then [ "$p" = relayed ] || bad+="$n->$m:$p "; else [ "$p" = direct ] || bad+="$n->$m:$p "; fi
	done; done
	fail "all 90 paths settled" "not as expected: $bad"
fi
lan_ep=$(jq -r --arg k "${KEY[n10]}" '.peers[] | select(.public_key == $k) | .path.endpoint' "$LAB_DIR/st-n9.json")
check_eq "n9 reaches n10 over their LAN" 10.9.0.3:51820 "$lan_ep"
nat_ep=$(jq -r --arg k "${KEY[n6]}" '.peers[] | select(.public_key == $k) | .path.endpoint' "$LAB_DIR/st-n5.json")
check_eq "n5 reaches n6 at its NAT's public address" 203.0.113.16 "${nat_ep%:*}"

# full mesh: every node pings every other (in parallel per source, 3 tries each)
mesh_pids=()
for n in $NODES; do
	(
		for m in $NODES; do
			[ $n = $m ] && continue
			r=fail
			for t in 1 2 3; do
				nsx $n ping -c 1 -W 2 "${ADDR[$m]}" >/dev/null 2>&1 && { r=ok; break; }
			done
			echo "$n $m $r"
		done >"$LAB_DIR/mesh-$n"
	) &
	mesh_pids+=($!)
done
wait "${mesh_pids[@]}" # (a bare wait would wait for the agents too)
okn=$(cat "$LAB_DIR"/mesh-* | grep -c ' ok$')
check_eq "full mesh: 90 of 90 pairs ping" 90 "$okn" || cat "$LAB_DIR"/mesh-* | grep -v ' ok$' | sed 's/^/# /'
relayed_ok=$(cat "$LAB_DIR"/mesh-* | awk '($1 == "n7" || $1 == "n8" || $2 == "n7" || $2 == "n8") && $3 == "ok"' | wc -l)
check_eq "the 34 pairs with a relayed node ping through the stream relay" 34 "$relayed_ok"
check_eq "the relay has n7's and n8's stream connections (and the others')" 10 "$(relay_status r1 '.stream.connections')"
tap_done
