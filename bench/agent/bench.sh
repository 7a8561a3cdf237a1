#!/usr/bin/env bash
# bench/agent: apply a netmap of 1,000 and 10,000 peers to a fresh interface, then a
# delta of 100 changed peers, side by side with a full resync and a naive full replace
# (wg setconf), alternating, 5 rounds; wall time, syscalls per phase (strace), and the
# RSS of the agent side and of the engine process. Targets: the 100-peer delta on a
# 10,000-peer interface under 50 ms; agent RSS under 16 MiB at 10,000 peers.
# Yardsticks from the `wg` tool in the same rounds: `wg set` of another 100 peers' endpoints
# and `wg setconf` of the whole configuration (LSA_BENCH_WG=0 leaves them out).
#   ENGINE=wireguard-go bench/agent/bench.sh   to use wireguard-go as the engine
#   ENGINE=kernel bench/agent/bench.sh         kernel WireGuard (where the kernel has it)
#   bench/agent/bench.sh --vm                  only the kernel WireGuard run, in qemu guests
#                                              (bench/agent/vm.sh; KERNELS="6.12 6.1")
# `make bench` runs the host run and then the VM run; BENCH_VM=0 skips the VM run.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
B="$BUILD/bench/agent_apply"
[ -x "$B" ] || { echo "bench/agent: build $B first (make BUILD=$BUILD $B)"; exit 1; }
[ "${1:-}" = --vm ] && exec "$ROOT/bench/agent/vm.sh"
AGENT_ENGINE=userspace
if [ "${ENGINE:-}" = wireguard-go ]; then
	export LIGHTSCALE_WG_USERSPACE=/usr/bin/wireguard-go
elif [ "${ENGINE:-}" = kernel ]; then
	export LSA_BENCH_ENGINE=kernel
	AGENT_ENGINE=kernel
else
	export LIGHTSCALE_WG_USERSPACE="$BUILD/lightscale"
fi
ROUNDS=${ROUNDS:-5}
echo "uptime: $(uptime)"
if [ "$AGENT_ENGINE" = kernel ]; then
	echo "engine: kernel WireGuard (Linux $(uname -r))"
else
	echo "engine: $LIGHTSCALE_WG_USERSPACE"
fi
command -v wg >/dev/null || export LSA_BENCH_WG=0
tmp=$(mktemp -d /tmp/lsa-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# the benchmark's private namespace gets its own multi-network state, removed with $tmp
export LIGHTSCALE_MNET_STATE="$tmp/multinet.json"
rc=0
for n in ${SIZES-1000 10000}; do
	out=$(LIGHTSCALE_LOG=err "$B" "$n" "$ROUNDS") || { echo "bench failed at $n peers"; rc=1; continue; }
	# syscalls per phase, from a separate run under strace with marker syscalls
	if command -v strace >/dev/null; then
		LSA_BENCH_MARKS=1 LIGHTSCALE_LOG=err strace -f -qq -o "$tmp/st.$n" "$B" "$n" 1 >/dev/null 2>&1
	else
		echo "(strace not installed: syscall counts are 0)"
		: >"$tmp/st.$n"
	fi
	# only the agent side's own syscalls (the engine is another process strace follows)
	count() { awk -v a="lsa-mark:$1\"" -v b="lsa-mark:$1-end\"" 'index($0,a){on=1;pid=$1;next} index($0,b){on=0} on && $1==pid{c++} END{print c+0}' "$tmp/st.$n"; }
	# the wg tool's syscalls: processes that appear between the markers (wg itself)
	count_child() { awk -v a="lsa-mark:$1\"" -v b="lsa-mark:$1-end\"" 'index($0,a){on=1;next} index($0,b){on=0} !on{pre[$1]=1} on && !pre[$1]{c++} END{print c+0}' "$tmp/st.$n"; }
	jq -r --arg sf "$(count full)" --arg sd "$(count delta)" --arg sr "$(count resync)" --arg sp "$(count replace)" \
		--arg sw "$(count_child wgset)" --arg sc "$(count_child setconf)" '
	  "peers \(.peers): full apply \(.apply_full_ms | floor) ms (waiting for the engine \(.apply_full_engine_ms | floor) ms; \($sf) syscalls), parse \(.parse_full_ms | floor) ms\n" +
	  "  \(.changed)-peer delta (parse+apply+set): median \(.delta.median_ms * 100 | floor / 100) ms [\(.delta.min_ms * 100 | floor / 100)-\(.delta.max_ms * 100 | floor / 100)], \($sd) syscalls" +
	  "  (parse \(.delta_parse.median_ms * 100 | floor / 100) ms, waiting for the engine \(.delta_engine.median_ms * 100 | floor / 100) ms)\n" +
	  "  yardstick full resync (get + diff + set): median \(.resync.median_ms * 100 | floor / 100) ms, \($sr) syscalls; ratio \((.resync.median_ms / .delta.median_ms) * 10 | floor / 10)x\n" +
	  "  yardstick replace all peers (replace_peers through our library): median \(.replace.median_ms * 100 | floor / 100) ms, \($sp) syscalls; ratio \((.replace.median_ms / .delta.median_ms) * 10 | floor / 10)x\n" +
	  (if .wgset then "  yardstick wg set: new endpoints for another \(.changed) peers (one wg process): median \(.wgset.median_ms * 100 | floor / 100) ms [\(.wgset.min_ms * 100 | floor / 100)-\(.wgset.max_ms * 100 | floor / 100)], \($sw) syscalls in wg; ratio \((.wgset.median_ms / .delta.median_ms) * 10 | floor / 10)x\n" +
	     "  yardstick wg setconf of the whole configuration (\(.changed) endpoints changed): median \(.setconf.median_ms * 100 | floor / 100) ms, \($sc) syscalls in wg; ratio \((.setconf.median_ms / .delta.median_ms) * 10 | floor / 10)x\n" else "" end) +
	  "  agent-side RSS \(.rss_kib) KiB (peak \(.hwm_kib) KiB); " +
	  (if .engine_kind == "kernel" then "engine: kernel WireGuard (no engine process)" else "engine RSS \(.engine_rss_kib) KiB (peak \(.engine_hwm_kib) KiB)" end) +
	  "; engine holds \(.engine_peers) peers"' <<<"$out"
	if [ "$n" = 10000 ]; then
		jq -e '.delta.median_ms < 50' <<<"$out" >/dev/null && echo "  target: delta < 50 ms: met" || echo "  target: delta < 50 ms: MISSED"
		jq -e '.rss_kib < 16384' <<<"$out" >/dev/null && echo "  target: agent-side RSS < 16 MiB: met" || echo "  target: agent-side RSS < 16 MiB: MISSED"
	fi
done

# The real agent: a profile whose cached netmap has 10,000 peers and whose control plane
# cannot be reached; RSS once the map is applied (the engine process reported apart).
# real_agent RELAYS: RELAYS 0 is the issue's configuration (the target applies to it);
# with 1 the netmap lists relays and, the peers' endpoints being unreachable here, every
# peer ends up relayed: a worst case, reported beside it.
rpid=
trap 'kill $rpid 2>/dev/null; rm -rf "$tmp"; ip netns del "lsa-bench-$$-0" 2>/dev/null; ip netns del "lsa-bench-$$-1" 2>/dev/null' EXIT
real_agent() {
relays=$1
ns="lsa-bench-$$-$relays"
echo
ip netns add "$ns" || return 1
ip -n "$ns" link set lo up
n=${AGENT_PEERS:-10000}
prof=lsabench$$r$relays
LS="$BUILD/lightscale"
"$LS" init --profile "$prof" --state-dir "$tmp/state" --control http://127.0.0.1:9 --token lst_bench >/dev/null
"$B" --dump-netmap "$n" "$tmp/state/$prof/netmap.json"
# Relays in the netmap (with RELAYS 1): a STUN server, a UDP relay and
# a stream relay, served by lightscale-relay on the namespace's loopback, so the agent opens
# what a node with relays opens (its open fds are counted below). The peers' endpoints are
# unreachable here, so peers that find no direct path go through the relays.
rpid=
if [ "$relays" != 0 ]; then
	jq -c '.relays = {"stun": ["127.0.0.1:3478"], "udp": ["127.0.0.1:3479"], "stream": ["127.0.0.1:8443"], "turn": []}' \
		"$tmp/state/$prof/netmap.json" >"$tmp/nm.json" && mv "$tmp/nm.json" "$tmp/state/$prof/netmap.json"
	nsenter --net=/run/netns/$ns -- "$BUILD/lightscale-relay" serve --foreground --control none \
		--stun 127.0.0.1:3478 --udp 127.0.0.1:3479 --stream 127.0.0.1:8443 >"$tmp/relay.log" 2>&1 &
	rpid=$!
	echo "relays in the netmap: stun 127.0.0.1:3478, udp 127.0.0.1:3479, stream 127.0.0.1:8443 (lightscale-relay pid $rpid)"
else
	echo "no relays in the netmap (the target's configuration)"
fi
ifn=$(jq -r .interface "$tmp/state/$prof/config.json")
nsenter --net=/run/netns/$ns -- env LIGHTSCALE_LOG=err ${LSA_AGENT_ENV:-} ${LSA_AGENT_WRAP:-} "$LS" agent --foreground --profile "$prof" --state-dir "$tmp/state" \
	--engine "$AGENT_ENGINE" --heartbeat 300 >"$tmp/agent.log" 2>&1 &
apid=$!
t0=$(date +%s%N)
for _ in $(seq "${LSA_AGENT_WAIT:-600}"); do
	c=$(nsenter --net=/run/netns/$ns -- wg show "$ifn" peers 2>/dev/null | wc -l)
	[ "$c" = "$n" ] && break
	sleep 0.1
done
t1=$(date +%s%N)
sleep 1
eng=$(nsenter --net=/run/netns/$ns -- ss -xlpn | grep -o "$ifn.sock.*pid=[0-9]*" | grep -o '[0-9]*$' | head -1)
rss() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
echo "real agent, $n peers from its cache, control plane unreachable: applied in $(((t1 - t0) / 1000000)) ms (engine holds $c peers)"
agent_kib=$(rss $apid VmRSS)
arss="agent RSS $agent_kib KiB (anon $(rss $apid RssAnon), files $(rss $apid RssFile); peak $(rss $apid VmHWM) KiB)"
# open file descriptors of the agent, by kind (socket, anon_inode:[eventfd], /dev/null...)
fds() { echo "$(ls "/proc/$1/fd" | wc -l) ($(for f in /proc/$1/fd/*; do readlink "$f"; done | sed -E 's/:\[[0-9]+\]$//; s/^anon_inode://' | sort | uniq -c | sort -rn | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2}'))"; }
libs() { awk '$6 ~ /\.so/ {print $6}' "/proc/$1/maps" | sort -u | xargs -n1 basename | paste -sd' '; }
if [ "$AGENT_ENGINE" = kernel ]; then
	echo "  $arss; engine: kernel WireGuard (no engine process)"
else
	echo "  $arss; engine RSS $(rss "$eng" VmRSS) KiB (peak $(rss "$eng" VmHWM) KiB)"
fi
echo "  agent open fds: $(fds $apid)"
echo "  agent's shared libraries: $(libs $apid)"
# What the idle agent costs: CPU over 10 s with nothing changing (timers, engine checks).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
c0=$(cpu_ticks $apid)
sleep 10
c1=$(cpu_ticks $apid)
echo "  idle agent CPU: $(((c1 - c0) * 1000 / $(getconf CLK_TCK) / 10)) ms per second (over 10 s)"
# Settled: after the first path decisions (new peers: 3 s) and the idle window.
settled_kib=$(rss $apid VmRSS)
echo "  agent RSS settled (after the idle window): $settled_kib KiB (anon $(rss $apid RssAnon), files $(rss $apid RssFile))"
echo "  agent open fds settled: $(fds $apid)"
if [ -n "${LSA_IDLE_LONG:-}" ]; then
	# later still: the idle peers' pings have backed off (LSA_IDLE_LONG seconds, then 10 s)
	sleep "$LSA_IDLE_LONG"
	c0=$(cpu_ticks $apid)
	sleep 10
	c1=$(cpu_ticks $apid)
	echo "  idle agent CPU after $LSA_IDLE_LONG s more: $(((c1 - c0) * 1000 / $(getconf CLK_TCK) / 10)) ms per second; RSS $(rss $apid VmRSS) KiB (anon $(rss $apid RssAnon))"
fi
# How much of that is freed heap the allocator keeps: the same process after malloc_trim(0)
# (gdb calls it in the agent; what the agent would hold if it trimmed after an apply).
if command -v gdb >/dev/null; then
	timeout 120 gdb -p "$apid" -batch -ex 'call (int) malloc_trim(0)' >/dev/null 2>&1 &&
		echo "  agent RSS after malloc_trim(0) (gdb): $(rss $apid VmRSS) KiB (anon $(rss $apid RssAnon))"
fi
[ -n "${LSA_BENCH_SMAPS:-}" ] && awk '/^[0-9a-f]+-/ { m = $6 } /^Rss:/ && $2 > 200 { print "    " $2 " KiB " (m == "" ? "(anonymous)" : m) } /^[0-9a-f]+-/ && NF < 6 { m = "" }' "/proc/$apid/smaps"
if [ "$relays" = 0 ]; then
	((settled_kib < 16384)) && echo "  target: agent RSS (settled) < 16 MiB: met" || echo "  target: agent RSS (settled) < 16 MiB: MISSED"
else
	echo "  (every peer relayed: a worst case beside the target, $((settled_kib - 16384)) KiB over 16 MiB)"
fi
kill $apid; wait $apid 2>/dev/null
[ -n "$rpid" ] && { kill $rpid; wait $rpid 2>/dev/null; rpid=; }
nsenter --net=/run/netns/$ns -- "$LS" wg-down --profile "$prof" --state-dir "$tmp/state"
rm -f "/run/lightscale/$prof.pid" "/run/lightscale/$prof.sock"
ip netns del "$ns" 2>/dev/null
}
# LSA_BENCH_RELAYS=0: the target's run only; =1: the relayed run only; unset: both
[ "${LSA_BENCH_RELAYS:-}" != 1 ] && real_agent 0
[ "${LSA_BENCH_RELAYS:-}" != 0 ] && real_agent 1

# Kernel WireGuard in qemu guests (the host kernel has none), unless asked not to or
# already in a guest.
if [ "${BENCH_VM:-1}" != 0 ] && [ "$AGENT_ENGINE" != kernel ] && [ -z "${VM_NAME:-}" ]; then
	if command -v qemu-system-x86_64 >/dev/null; then
		echo
		"$ROOT/bench/agent/vm.sh" || rc=1
	else
		echo "(no qemu-system-x86_64: the kernel WireGuard run in the VM lab is skipped)"
	fi
fi
exit $rc
