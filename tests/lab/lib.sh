# Lightscale netns lab library. Source it from a lab script:
#
#   source "$(dirname "$0")/lib.sh"
#   lab_init                          # temp dir, cleanup trap, binaries
#   lab_ns inet                       # namespaces (names get a unique prefix)
#   lab_bridge inet br0 10.99.0.1/24 fd99::1/64
#   lab_node n1 inet br0 10.99.0.11/24 fd99::11/64   # node namespace on the bridge
#   control_start inet 10.99.0.1 8080
#   net_create home; tok=$(token_create home 10)
#   node_init n1 "$tok"; agent_start n1
#   wait_for 10 "n1 sees n2" peer_count n1 1
#   lsx n1 status --json
#
# Every namespace, process and file the lab makes is removed on exit (trap), and only
# processes this lab started are killed, by pid. Namespaces are entered with
# `nsenter --net=/run/netns/NAME` (bpffs stays visible, unlike `ip netns exec`).

set -u
LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$LAB_ROOT/tests/lib/tap.sh"
BUILD=${LIGHTSCALE_BUILD:-${BUILD:-build}}
case "$BUILD" in /*) ;; *) BUILD="$LAB_ROOT/$BUILD" ;; esac
LS="$BUILD/lightscale"
LSC="$BUILD/lightscale-control"
LAB_ID="lsa$$"
LAB_NS=()
LAB_PIDS=()
LAB_NODES=()
declare -A AGENT_PID
declare -A NODE_NS # node (profile) -> namespace, when not the node's own (several profiles)

lab_log() { printf '# %s\n' "$*"; }

lab_die() {
	fail "$1" "${@:2}"
	exit 1
}

lab_init() {
	[ "$(id -u)" = 0 ] || { echo "ok 1 # SKIP the lab needs root"; exit 0; }
	[ -x "$LS" ] || lab_die "lightscale binary" "missing $LS (make BUILD=$BUILD)"
	[ -x "$LSC" ] || lab_die "lightscale-control binary" "missing $LSC"
	LAB_DIR=$(mktemp -d "/tmp/$LAB_ID.XXXXXX")
	chmod 755 "$LAB_DIR"
	trap lab_cleanup EXIT
	trap 'exit 130' INT TERM
	export LIGHTSCALE_PG_FAST=1
	# the userspace engine: the built-in one (lightscale wg-userspace) unless
	# LAB_ENGINE=wireguard-go (or LIGHTSCALE_WG_USERSPACE names another program)
	if [ "${LAB_ENGINE:-}" = wireguard-go ]; then
		export LIGHTSCALE_WG_USERSPACE=/usr/bin/wireguard-go
	fi
	lab_log "userspace engine: ${LIGHTSCALE_WG_USERSPACE:-lightscale wg-userspace}"
}

lab_cleanup() {
	local pid n i
	set +e
	# agents first (SIGTERM leaves the data plane up), then the data planes: the engine
	# process outlives the agent by design, wg-down stops it
	for n in "${!AGENT_PID[@]}"; do kill "${AGENT_PID[$n]}" 2>/dev/null; done
	for n in "${!AGENT_PID[@]}"; do wait "${AGENT_PID[$n]}" 2>/dev/null; done
	for n in "${LAB_NODES[@]}"; do
		[ -n "$n" ] || continue
		nsx "${NODE_NS[$n]:-$n}" "$LS" wg-down --profile "$(profile_of "$n")" --state-dir "$LAB_DIR/$n" >/dev/null 2>&1
	done
	for ((i = ${#LAB_PIDS[@]} - 1; i >= 0; i--)); do
		kill "${LAB_PIDS[i]}" 2>/dev/null
	done
	sleep 0.3
	for pid in "${LAB_PIDS[@]}"; do
		kill -9 "$pid" 2>/dev/null
	done
	for n in "${LAB_NS[@]}"; do
		# the namespace's multi-network state (/run/lightscale/multinet-INODE.json)
		i=$(stat -L -c %i "/run/netns/$n" 2>/dev/null) &&
			rm -f "/run/lightscale/multinet-$i.json" "/run/lightscale/multinet-$i.json.lock"
		ip netns del "$n" 2>/dev/null
	done
	for n in "${LAB_NODES[@]}"; do
		rm -f "/run/lightscale/$(profile_of "$n").sock" "/run/lightscale/$(profile_of "$n").pid" \
			"/run/lightscale/$(profile_of "$n").log" "/run/lightscale/ls-$(profile_of "$n").engine.log" \
			"/var/run/wireguard/ls-$(profile_of "$n").sock"
	done
	if [ "${LAB_KEEP:-0}" = 1 ]; then
		echo "# lab files kept in $LAB_DIR"
	else
		rm -rf "$LAB_DIR"
	fi
}

# Namespaces ------------------------------------------------------------------------
nsname() { echo "$LAB_ID-$1"; }
nsx() {
	local n=$1; shift
	nsenter --net="/run/netns/$(nsname "$n")" -- "$@"
}
lab_ns() {
	local n
	for n in "$@"; do
		ip netns add "$(nsname "$n")" || lab_die "create namespace $n"
		LAB_NS+=("$(nsname "$n")")
		nsx "$n" ip link set lo up
		nsx "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	done
}
# lab_bridge NS BR ADDR...: a bridge in NS with addresses.
lab_bridge() {
	local ns=$1 br=$2 a; shift 2
	nsx "$ns" ip link add "$br" type bridge
	# a bridge without a fixed address takes the lowest MAC of its ports, so a port added
	# later would change it under the neighbours' ARP caches: pin the one it has now
	nsx "$ns" ip link set "$br" address "$(nsx "$ns" ip -br link show "$br" | awk '{print $3}')"
	nsx "$ns" ip link set "$br" up
	for a in "$@"; do nsx "$ns" ip addr add "$a" dev "$br" nodad 2>/dev/null || nsx "$ns" ip addr add "$a" dev "$br"; done
}
# lab_link NS1 IF1 NS2 IF2: a veth pair, both ends up.
lab_link() {
	local tmp="lsav$$$RANDOM"
	ip link add "$tmp" type veth peer name "${tmp}b" || lab_die "veth $1:$2 - $3:$4"
	ip link set "$tmp" netns "$(nsname "$1")"
	ip link set "${tmp}b" netns "$(nsname "$3")"
	nsx "$1" ip link set "$tmp" name "$2"
	nsx "$3" ip link set "${tmp}b" name "$4"
	nsx "$1" ip link set "$2" up
	nsx "$3" ip link set "$4" up
}
# lab_addr NS IF ADDR...
lab_addr() {
	local ns=$1 ifn=$2 a; shift 2
	for a in "$@"; do
		case "$a" in
		*:*) nsx "$ns" ip addr add "$a" dev "$ifn" nodad ;;
		*) nsx "$ns" ip addr add "$a" dev "$ifn" ;;
		esac
	done
}
# lab_node NAME BRIDGE_NS BRIDGE ADDR...: a node namespace with eth0 on the bridge.
lab_node() {
	local n=$1 bns=$2 br=$3; shift 3
	lab_ns "$n"
	lab_link "$n" eth0 "$bns" "v-$n"
	nsx "$bns" ip link set "v-$n" master "$br"
	lab_addr "$n" eth0 "$@"
}

# Processes -------------------------------------------------------------------------
# bg NS LOGFILE CMD...: starts CMD in NS in the background; sets BG_PID.
bg() {
	local ns=$1 log=$2; shift 2
	nsenter --net="/run/netns/$(nsname "$ns")" -- "$@" >>"$log" 2>&1 &
	BG_PID=$!
	LAB_PIDS+=("$BG_PID")
}

# jqe FILTER...: jq -e on standard input that also fails when the input is empty (jq 1.6
# -e exits 0 on no input, so `cmd | jq -e ...' succeeds when cmd fails and prints nothing).
jqe() {
	local in
	in=$(cat)
	[ -n "$in" ] && jq -e "$@" <<<"$in"
}

# wait_for SECONDS DESCRIPTION CMD...: polls CMD every 0.1 s until it succeeds.
wait_for() {
	local secs=$1 what=$2 end; shift 2
	end=$(($(date +%s%N) / 1000000 + secs * 1000))
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		(($(date +%s%N) / 1000000 >= end)) && { lab_log "timed out after ${secs}s: $what"; return 1; }
		sleep 0.1
	done
}

# Control plane ---------------------------------------------------------------------
# control_start NS ADDR PORT: lightscale-control with its embedded PostgreSQL, over HTTPS
# (its self-signed key, pinned by every client: CONTROL_PIN, enrollment strings from
# token_create). CONTROL_HTTP=1 serves plain HTTP (--insecure-http) for a lab that must.
control_start() {
	CONTROL_NS=$1 CONTROL_ADDR=$2 CONTROL_PORT=$3
	CONTROL_DIR="$LAB_DIR/control"
	local scheme=https tls=(--tls)
	[ "${CONTROL_HTTP:-0}" = 1 ] && scheme=http tls=(--insecure-http)
	CONTROL_URL="$scheme://$CONTROL_ADDR:$CONTROL_PORT"
	mkdir -p "$CONTROL_DIR"
	chmod 755 "$CONTROL_DIR"
	local cfg=()
	[ -n "${CONTROL_CONFIG:-}" ] && { echo "$CONTROL_CONFIG" >"$LAB_DIR/control.json"; cfg=(--config "$LAB_DIR/control.json"); }
	bg "$CONTROL_NS" "$LAB_DIR/control.log" "$LSC" serve --listen "$CONTROL_ADDR:$CONTROL_PORT" --state-dir "$CONTROL_DIR" \
		"${tls[@]}" "${cfg[@]}" ${CONTROL_SERVE_OPTS:-}
	CONTROL_PID=$BG_PID
	wait_for 60 "control plane health" control_curl -f "$CONTROL_URL/v1/health" ||
		lab_die "control plane starts" "$(tail -20 "$LAB_DIR/control.log")"
	CONTROL_PIN=$(cat "$CONTROL_DIR/tls.pin" 2>/dev/null)
}
# control_curl CURL-ARGS...: curl in the control plane's namespace, trusting exactly its
# certificate (the self-signed one is its own CA; no -k) and pinning its key.
control_curl() {
	local pin=()
	[ -s "$CONTROL_DIR/tls.pin" ] && pin=(--cacert "$CONTROL_DIR/tls.crt" --pinnedpubkey "$(cat "$CONTROL_DIR/tls.pin")")
	nsx "$CONTROL_NS" curl -s "${pin[@]}" "$@"
}
control_stop() {
	kill "$CONTROL_PID" 2>/dev/null
	wait "$CONTROL_PID" 2>/dev/null
}
# lsc ARGS...: an admin command against the lab's control plane (pinned from its state dir).
lsc() { nsx "$CONTROL_NS" "$LSC" "$@" --state-dir "$CONTROL_DIR"; }
net_create() { lsc network create "$@" >/dev/null; }
# token_create NETWORK USES: prints the enrollment string TOKEN@IDENTITY@PINS (what
# `lightscale init --token' takes: nodes pin the servers from their first request).
token_create() {
	lsc token create --network "$1" --uses "${2:-1}" --json | jq -r '.enroll // .token'
}

# Nodes -----------------------------------------------------------------------------
profile_of() { echo "${LAB_ID}$1"; }
ifname_of() { echo "ls-$(profile_of "$1")"; }
# lsx NODE ARGS...: the lightscale CLI for NODE's profile inside NODE's namespace.
lsx() {
	local n=$1 cmd=$2; shift 2
	nsx "$n" "$LS" "$cmd" --profile "$(profile_of "$n")" --state-dir "$LAB_DIR/$n" "$@"
}
# node_init NODE TOKEN [init options]: init + register.
node_init() {
	local n=$1 tok=$2; shift 2
	LAB_NODES+=("$n")
	mkdir -p "$LAB_DIR/$n"
	lsx "$n" init --control "${NODE_CONTROL_URL:-$CONTROL_URL}" --token "$tok" --hostname "$n" "$@" >/dev/null ||
		lab_die "init $n"
	lsx "$n" register --json >"$LAB_DIR/$n.register.json" || lab_die "register $n" "$(cat "$LAB_DIR/$n.register.json")"
}
# agent_start NODE [agent options]: sets AGENT_PID[NODE]. NODE_ENGINE[NODE]=wireguard-go
# makes that node's userspace engine wireguard-go (interop with the built-in one).
declare -A NODE_ENGINE
agent_start() {
	local n=$1 eng=(); shift
	[ "${NODE_ENGINE[$n]:-}" = wireguard-go ] && eng=(LIGHTSCALE_WG_USERSPACE=/usr/bin/wireguard-go)
	bg "$n" "$LAB_DIR/$n.agent.log" env "${eng[@]}" LIGHTSCALE_LOG=${LIGHTSCALE_LOG:-info} "$LS" agent --foreground \
		--profile "$(profile_of "$n")" --state-dir "$LAB_DIR/$n" --poll-wait 30 "$@"
	AGENT_PID[$n]=$BG_PID
	wait_for 10 "agent $n answers" test -S "/run/lightscale/$(profile_of "$n").sock" ||
		lab_die "agent $n starts" "$(tail -20 "$LAB_DIR/$n.agent.log")"
}
agent_kill() {
	kill "${@:2}" "${AGENT_PID[$1]}" 2>/dev/null
	wait "${AGENT_PID[$1]}" 2>/dev/null
	return 0
}
node_id() { jq -r .node.id "$LAB_DIR/$1.register.json"; }
# overlay address of NODE: family 4 or 6
node_addr() {
	jq -r --arg f "$2" '.node.addresses[] | select(($f == "4" and (contains(":") | not)) or ($f == "6" and contains(":")))' \
		"$LAB_DIR/$1.register.json"
}
# peer_count NODE N: the agent's netmap has exactly N peers, all configured in WireGuard.
peer_count() {
	local got
	got=$(lsx "$1" status --json | jq '[.peers[] | select(.configured)] | length')
	[ "$got" = "$2" ]
}
# ping_ok FROM ADDR: one ping within 1 s (v4 or v6).
ping_ok() { nsx "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1; }
# ping_ok_retry FROM ADDR SECONDS
ping_within() { wait_for "$3" "ping $1 -> $2" ping_ok "$1" "$2"; }

# ping_summary FILE: of the output of `ping -D' in FILE, PING_GAP (the longest gap between
# two replies, in ms), PING_RECV (replies) and PING_SENT (requests).
ping_summary() {
	PING_GAP=$(awk -F'[][]' '/bytes from/ {t = $2 + 0; if (p) { d = t - p; if (d > m) m = d }; p = t} END {printf "%d", m * 1000}' "$1")
	PING_SENT=$(grep -o '[0-9]* packets transmitted' "$1" | cut -d' ' -f1)
	PING_RECV=$(grep -o '[0-9]* received' "$1" | cut -d' ' -f1)
}

# node_log NODE: last lines of an agent log, for failure details.
node_log() { tail -n "${2:-15}" "$LAB_DIR/$1.agent.log" 2>/dev/null; }

# The usual one-network lab ------------------------------------------------------------
#   n1 10.99.0.11 ---- br0 (ns inet: 10.99.0.1, fd99::1; control :8080) ---- n2 10.99.0.12 ...
# lab_star NODE...: namespace inet with bridge br0 (10.99.0.1/24, fd99::1/64) and the
# control plane on 10.99.0.1:8080, network "home" and in LAB_TOK an enrollment string
# for it (5 uses). NODE is NAME=H (eth0 on br0 with 10.99.0.H/24, fd99::H/64) or just
# NAME, which takes H = 11, 12, ... by its position. Nodes are not init'ed (lab_up).
lab_star() {
	local a n h i=11
	lab_ns inet
	lab_bridge inet br0 10.99.0.1/24 fd99::1/64
	for a in "$@"; do
		n=${a%%=*} h=$i
		[ "$n" = "$a" ] || h=${a#*=}
		lab_node "$n" inet br0 "10.99.0.$h/24" "fd99::$h/64"
		i=$((i + 1))
	done
	control_start inet 10.99.0.1 8080
	net_create home
	LAB_TOK=$(token_create home 5)
}
# lab_up NODE...: init (with LAB_TOK) and start the agent of each NODE, then wait (40 s)
# until each has configured the others; dies naming the node that did not.
lab_up() {
	local n
	for n in "$@"; do node_init "$n" "$LAB_TOK"; done
	for n in "$@"; do agent_start "$n"; done
	for n in "$@"; do
		wait_for 40 "$n configures its $(($# - 1)) peers" peer_count "$n" $(($# - 1)) ||
			lab_die "$n configures its peers" "$(node_log "$n")"
	done
}
# lab_mesh NODE...: lab_star NODE... then lab_up of every NODE.
lab_mesh() {
	local a names=()
	lab_star "$@"
	for a in "$@"; do names+=("${a%%=*}"); done
	lab_up "${names[@]}"
}
# lab_exits_up: after lab_star c e1=.. e2=..: e1 and e2 join as exit nodes (advertising
# 0.0.0.0/0 and ::/0), c joins with --apply-routes; passes once c has configured both.
lab_exits_up() {
	node_init e1 "$LAB_TOK" --advertise-routes 0.0.0.0/0,::/0
	node_init e2 "$LAB_TOK" --advertise-routes 0.0.0.0/0,::/0
	node_init c "$LAB_TOK"
	agent_start e1
	agent_start e2
	agent_start c --apply-routes
	wait_for 20 "c configures e1 and e2" peer_count c 2 && ok "c's agent configured both exits" ||
		lab_die "peers" "$(node_log c)"
}

# Multi-network labs (multi-overlap, multi-exit, dns-split) ------------------------------
# multi_setup [ROUTES]: one client c in two networks (profiles ca in neta, cb in netb) and
# one subnet router per network (ra, rb) advertising ROUTES (default 192.168.1.0/24), each
# with the same LAN 192.168.1.0/24 and fd00:a8:1::/64 behind it and a host (ha, hb) at
# 192.168.1.10 and fd00:a8:1::10 that also
# answers as 198.51.100.1 (the "internet" behind an exit node) and serves its name over
# HTTP on port 8080 (/who: A or B).
#
#   ha 192.168.1.10 -- ra (neta) --+                          +-- rb (netb) -- hb 192.168.1.10
#                                  br0 (ns inet, control 10.99.0.1:8080)
#                                        |
#                                  c 10.99.0.11: profiles ca (neta) and cb (netb)
# CA_ADVERTISE_RB=1: ca advertises rb's overlay address into neta (forwarding through c).
multi_setup() {
	local routes=${1:-192.168.1.0/24} x
	lab_ns inet
	lab_bridge inet br0 10.99.0.1/24
	lab_node c inet br0 10.99.0.11/24
	lab_node ra inet br0 10.99.0.12/24
	lab_node rb inet br0 10.99.0.13/24
	for x in a b; do
		lab_ns h$x
		lab_link r$x eth1 h$x eth0
		lab_addr r$x eth1 192.168.1.1/24 fd00:a8:1::1/64
		lab_addr h$x eth0 192.168.1.10/24 198.51.100.1/32 fd00:a8:1::10/64
		nsx h$x ip route add default via 192.168.1.1
		nsx h$x ip -6 route add default via fd00:a8:1::1
		nsx r$x ip route add 198.51.100.1/32 via 192.168.1.10
		mkdir -p "$LAB_DIR/www$x"
		echo "${x^^}" >"$LAB_DIR/www$x/who"
		bg h$x "$LAB_DIR/www$x.log" python3 -m http.server 8080 --bind :: --directory "$LAB_DIR/www$x"
	done
	control_start inet 10.99.0.1 8080
	net_create neta ${NETA_OPTS:-}
	net_create netb ${NETB_OPTS:-}
	TOK_A=$(token_create neta 5)
	TOK_B=$(token_create netb 5)
	node_init ra "$TOK_A" --advertise-routes "$routes"
	node_init rb "$TOK_B" --advertise-routes "$routes"
	# c carries two profiles in one namespace
	LAB_NODES+=(ca cb)
	NODE_NS[ca]=c NODE_NS[cb]=c
	mkdir -p "$LAB_DIR/ca" "$LAB_DIR/cb"
	local adv=()
	[ "${CA_ADVERTISE_RB:-0}" = 1 ] && adv=(--advertise-routes "$(node_addr rb 4)/32")
	lsp ca init --control "$CONTROL_URL" --token "$TOK_A" --hostname c --listen-port 51820 "${adv[@]}" >/dev/null ||
		lab_die "init ca"
	lsp cb init --control "$CONTROL_URL" --token "$TOK_B" --hostname c --listen-port 51821 >/dev/null || lab_die "init cb"
	lsp ca register --json >"$LAB_DIR/ca.register.json" || lab_die "register ca"
	lsp cb register --json >"$LAB_DIR/cb.register.json" || lab_die "register cb"
}
# multi_peers_up: ca and cb have each configured their one peer (within 20 s each), a test;
# the lab ends when they have not.
multi_peer_ok() { [ "$(lsp "$1" status --json | jq '[.peers[] | select(.configured)] | length')" = 1 ]; }
multi_peers_up() {
	wait_for 20 "ca's peer" multi_peer_ok ca && wait_for 20 "cb's peer" multi_peer_ok cb &&
		ok "both profiles configured their exit peer" || lab_die "peers" "$(node_log ca)" "$(node_log cb)"
}
# lsp PROFILE-NODE CMD ARGS...: the CLI for one of c's profiles (in c's namespace).
lsp() { local p=$1 c=$2; shift 2; nsx "${NODE_NS[$p]:-$p}" "$LS" "$c" --profile "$(profile_of "$p")" --state-dir "$LAB_DIR/$p" "$@"; }
# multi_agent PROFILE-NODE [options]: the agent of one of c's profiles.
multi_agent() {
	local p=$1; shift
	bg "${NODE_NS[$p]}" "$LAB_DIR/$p.agent.log" env LIGHTSCALE_LOG=${LIGHTSCALE_LOG:-info} "$LS" agent --foreground \
		--profile "$(profile_of "$p")" --state-dir "$LAB_DIR/$p" --poll-wait 30 "$@"
	AGENT_PID[$p]=$BG_PID
	wait_for 10 "agent $p answers" test -S "/run/lightscale/$(profile_of "$p").sock" ||
		lab_die "agent $p starts" "$(tail -20 "$LAB_DIR/$p.agent.log")"
}
# http_who NS URL: the body of /who (A or B), empty on failure.
http_who() { nsx "$1" curl -s --max-time 3 "$2/who" 2>/dev/null; }

# Per-app routing labs (app-route*.sh) --------------------------------------------------
# app_cgroups PROFILE-NODE...: two new cgroups, CGA and CGB, under the cgroup2 mount CG2
# (no cgroup2 mount: the lab is skipped); at exit, the per-app BPF pins of the nodes'
# profiles are removed, then lab_cleanup, then the cgroups.
app_cgroups() {
	CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	[ -n "$CG2" ] || { echo "ok 1 # SKIP no cgroup2 hierarchy mounted"; exit 0; }
	CGA="$CG2/lsux-$$-a" CGB="$CG2/lsux-$$-b"
	mkdir "$CGA" "$CGB" || lab_die "create cgroups under $CG2"
	APP_NODES=("$@")
	trap app_cleanup EXIT
}
app_cleanup() {
	local n
	for n in "${APP_NODES[@]}"; do rm -rf "/sys/fs/bpf/lightscale-perapp/$(profile_of "$n")"; done
	lab_cleanup
	rmdir "$CGA" "$CGB" 2>/dev/null
}
