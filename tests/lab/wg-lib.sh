# What the userspace WireGuard labs (wg-lab.sh, wg-long.sh, wg-quick.sh) share. Source it
# after tests/lib/tap.sh from the repository root, with ns_a, ns_b (namespaces), if_a, if_b
# (interfaces) and tmp (a temporary directory) set:
#
#   wg_pair NET      namespaces ns_a and ns_b (lo up) joined by veth va$$ (NET.1/24, in
#                    ns_a) and vb$$ (NET.2/24, in ns_b), both up. At exit every process in
#                    them is killed, the namespaces, tmp and the UAPI sockets of if_a, if_b
#                    (and those named in WG_SOCKS) are removed.
#   wg_engine_pid NS the pid of our engine (WG_BIN) running in NS, if any
BUILD=${BUILD:-build}
WG_BIN=$PWD/$BUILD/lightscale-wg
WG_SOCKS=

wg_cleanup() {
	local ns pid
	for ns in $ns_a $ns_b; do
		for pid in $(ip netns pids $ns 2>/dev/null); do kill "$pid" 2>/dev/null; done
	done
	sleep 0.3
	ip netns del $ns_a 2>/dev/null
	ip netns del $ns_b 2>/dev/null
	rm -f /var/run/wireguard/$if_a.sock /var/run/wireguard/$if_b.sock $WG_SOCKS
	rm -rf "$tmp"
}

wg_pair() {
	trap wg_cleanup EXIT
	ip netns add $ns_a && ip netns add $ns_b || { fail "create namespaces"; exit 1; }
	ip link add va$$ netns $ns_a type veth peer name vb$$ netns $ns_b
	ip -n $ns_a addr add $1.1/24 dev va$$; ip -n $ns_a link set va$$ up; ip -n $ns_a link set lo up
	ip -n $ns_b addr add $1.2/24 dev vb$$; ip -n $ns_b link set vb$$ up; ip -n $ns_b link set lo up
}

wg_engine_pid() {
	ip netns pids "$1" | while read -r p; do [ "$(readlink /proc/$p/exe)" = "$WG_BIN" ] && echo "$p"; done | head -1
}
