# Shared relay setup of the NAT and relay labs (nat-*.sh, relay-*.sh, rproxy-*.sh).
# Source it after tests/lib/tap.sh (and tests/lab/lib.sh when the lab uses it):
#
#   source tests/lab/relay-lib.sh
#   relay_init DIR                       # logs, control sockets and coturn files go to DIR
#   relay_start r1 NETNS --udp 3478 --stream 8443     # lightscale-relay in /run/netns/NETNS
#   relay_stop r1; relay_restart r1      # the same arguments again
#   relay_status r1 '.counters'          # jq over `lightscale-relay status --json`
#   turn_start NETNS RELAY_IP PORT USER PASS [LISTEN_IP...]   # coturn (long-term credentials)
#   relays_config STUN STREAM UDP [TURN_URL USER PASS]   # control plane --config JSON
#   nat_box NETNS WAN_IF LAN_IF WAN_ADDR [WG_PORT MAPPED_PORT]  # masquerade + inbound drop
#   udp_block NETNS IF / udp_unblock NETNS     # drop every UDP datagram in and out of IF
#   relay_stop_all                       # from the lab's cleanup (by PID, only ours)
#
# Relays run in the foreground with `nsenter --net`, so $! is the relay itself.

RELAY_BIN=${RELAY_BIN:-${BUILD:-build}/lightscale-relay}
case "$RELAY_BIN" in /*) ;; *) RELAY_BIN="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/$RELAY_BIN" ;; esac
declare -A RELAY_PID RELAY_ARGS RELAY_NSN
RELAY_DIR=
TURN_PID=

relay_init() {
	RELAY_DIR=$1
	mkdir -p "$RELAY_DIR"
	[ -x "$RELAY_BIN" ] || { fail "lightscale-relay is built" "missing $RELAY_BIN"; return 1; }
}

# relay_start NAME NETNS ARGS...: starts the relay and waits until it answers status.
relay_start() {
	local name=$1 ns=$2 i
	shift 2
	RELAY_ARGS[$name]="$*"
	RELAY_NSN[$name]=$ns
	nsenter --net="/run/netns/$ns" -- "$RELAY_BIN" serve --foreground --control "$RELAY_DIR/$name.sock" "$@" \
		>>"$RELAY_DIR/relay-$name.log" 2>&1 &
	RELAY_PID[$name]=$!
	for ((i = 0; i < 50; i++)); do
		"$RELAY_BIN" status --control "$RELAY_DIR/$name.sock" --json >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "# relay $name did not answer: $(tail -3 "$RELAY_DIR/relay-$name.log")"
	return 1
}
relay_stop() {
	local pid=${RELAY_PID[$1]:-}
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	RELAY_PID[$1]=
	return 0
}
relay_restart() {
	relay_stop "$1"
	# shellcheck disable=SC2086
	relay_start "$1" "${RELAY_NSN[$1]}" ${RELAY_ARGS[$1]}
}
# relay_status NAME [JQ]: the relay's status document (or a jq expression over it).
relay_status() {
	"$RELAY_BIN" status --control "$RELAY_DIR/$1.sock" --json 2>/dev/null | jq -r "${2:-.}"
}
relay_stop_all() {
	local n
	for n in "${!RELAY_PID[@]}"; do relay_stop "$n"; done
	[ -n "$TURN_PID" ] && kill "$TURN_PID" 2>/dev/null
	TURN_PID=
	return 0
}

# turn_start NETNS RELAY_IP PORT USER PASS [LISTEN_IP...]: coturn on PORT (UDP, long-term
# credentials, no TLS), relayed addresses on RELAY_IP, listening on RELAY_IP and the
# other addresses given.
turn_start() {
	local ns=$1 ip=$2 port=$3 user=$4 pass=$5 l
	shift 5
	command -v turnserver >/dev/null || { echo "# coturn's turnserver is not installed"; return 1; }
	{
		for l in "$ip" "$@"; do echo "listening-ip=$l"; done
		cat <<CONF
relay-ip=$ip
listening-port=$port
min-port=49160
max-port=49200
lt-cred-mech
realm=lightscale.test
user=$user:$pass
no-tls
no-dtls
no-cli
userdb=$RELAY_DIR/turndb
pidfile=$RELAY_DIR/turnserver.pid
log-file=$RELAY_DIR/turnserver.log
simple-log
CONF
	} >"$RELAY_DIR/turnserver.conf"
	nsenter --net="/run/netns/$ns" -- turnserver -c "$RELAY_DIR/turnserver.conf" >"$RELAY_DIR/turnserver.out" 2>&1 &
	TURN_PID=$!
	sleep 0.5
}
turn_stop() {
	[ -n "$TURN_PID" ] && kill "$TURN_PID" 2>/dev/null && wait "$TURN_PID" 2>/dev/null
	TURN_PID=
	return 0
}

# relays_config STUN STREAM UDP [TURN_URL USER PASS]: the control plane's config file
# JSON; each list argument is comma-separated ("" for none).
relays_config() {
	local stun=$1 stream=$2 udp=$3 turn=${4:-} user=${5:-} pass=${6:-}
	jq -cn --arg stun "$stun" --arg stream "$stream" --arg udp "$udp" --arg turn "$turn" --arg u "$user" --arg p "$pass" '
		def l($s): if $s == "" then [] else $s | split(",") end;
		{relays: {stun: l($stun), stream: l($stream), udp: l($udp),
		          turn: (if $turn == "" then [] else [{url: $turn, username: $u, credential: $p}] end)}}'
}

# nat_box NETNS WAN_IF LAN_IF WAN_ADDR [WG_PORT MAPPED_PORT]: a home router: forwards,
# masquerades what leaves WAN_IF (UDP from WG_PORT as WAN_ADDR:MAPPED_PORT, so the
# address the control plane sees differs from what STUN finds), and lets in only what
# answers a connection from inside (forward and input).
nat_box() {
	local ns=$1 wan=$2 lan=$3 addr=$4 wg=${5:-} mapped=${6:-} map_rule=
	[ -n "$wg" ] && map_rule="oifname \"$wan\" udp sport $wg snat ip to $addr:$mapped"
	nsenter --net="/run/netns/$ns" -- sysctl -qw net.ipv4.ip_forward=1
	nsenter --net="/run/netns/$ns" -- nft -f - <<NFT
table ip lsntnat {
	chain lspost { type nat hook postrouting priority srcnat; $map_rule
		oifname "$wan" masquerade; }
}
table inet lsntfw {
	chain lsfwd { type filter hook forward priority filter; policy accept;
		iifname "$wan" ct state established,related accept
		iifname "$wan" counter drop; }
	chain lsin { type filter hook input priority filter; policy accept;
		iifname "$wan" ct state established,related accept
		iifname "$wan" counter drop; }
}
NFT
}

# udp_block NETNS IF: a firewall in NETNS that drops every UDP datagram through IF (in,
# out, forwarded); udp_unblock NETNS lifts it.
udp_block() {
	nsenter --net="/run/netns/$1" -- nft -f - <<NFT
table inet lsntblock {
	chain lsin { type filter hook input priority -10; iifname "$2" meta l4proto udp counter drop; }
	chain lsout { type filter hook output priority -10; oifname "$2" meta l4proto udp counter drop; }
	chain lsfwd { type filter hook forward priority -10; iifname "$2" meta l4proto udp counter drop;
		oifname "$2" meta l4proto udp counter drop; }
}
NFT
}
udp_unblock() { nsenter --net="/run/netns/$1" -- nft delete table inet lsntblock 2>/dev/null; return 0; }
# udp_block_count NETNS: datagrams the block dropped so far
udp_block_count() {
	nsenter --net="/run/netns/$1" -- nft list table inet lsntblock 2>/dev/null | grep -o 'packets [0-9]*' |
		awk '{ s += $2 } END { print s + 0 }'
}

# Two-node NAT labs (nat-*.sh; these need tests/lab/lib.sh sourced first) -----------------
#   a 203.0.113.11 ---- br0 (ns inet: 203.0.113.1, control :8080, relays) ---- b 203.0.113.12
# nat_pair: namespace inet with bridge br0 (203.0.113.1/24) and nodes a and b on it
# (a lab with routers in between builds its own underlay and still uses the rest).
nat_pair() {
	lab_ns inet
	lab_bridge inet br0 203.0.113.1/24
	lab_node a inet br0 203.0.113.11/24
	lab_node b inet br0 203.0.113.12/24
}
# nat_control [CONFIG]: the control plane in inet on 203.0.113.1:8080 (CONFIG: its
# --config JSON, e.g. relays_config; kept in CONTROL_CONFIG for a restart), network
# "home", nodes a and b init'ed and registered (their agents are not started).
nat_control() {
	local tok
	CONTROL_CONFIG=${1:-}
	control_start inet 203.0.113.1 8080
	net_create home
	tok=$(token_create home 5)
	node_init a "$tok"
	node_init b "$tok"
}
# nat_agents: starts a's and b's agents; sets pa, pb (their WireGuard public keys) and
# aa, ab (their overlay IPv4 addresses).
nat_agents() {
	agent_start a
	agent_start b
	pa=$(lsx a status --json | jq -r .public_key)
	pb=$(lsx b status --json | jq -r .public_key)
	aa=$(node_addr a 4) ab=$(node_addr b 4)
}
# ms T0: milliseconds since T0 (date +%s%N).
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
# pj NODE PEER-KEY JQ: a jq expression over the path object of NODE's peer PEER-KEY in
# `lightscale status --json' (.path, .via, .relay, .endpoint).
pj() { lsx "$1" status --json | jq -r --arg k "$2" ".peers[] | select(.public_key == \$k) | .path | $3"; }
# received PING-LOG: how many replies a finished ping counted.
received() { grep -o '[0-9]* received' "$1" | awk '{ print $1 }'; }
# max_gap PING-LOG N: the most consecutive sequence numbers of N pings without a reply.
max_gap() { grep -o 'icmp_seq=[0-9]*' "$1" | cut -d= -f2 | awk -v n="$2" '
	{ if ($1 - prev - 1 > m) m = $1 - prev - 1; prev = $1 } END { if (n - prev > m) m = n - prev; print m + 0 }'; }
