#!/usr/bin/env bash
# The VM lab: kernel WireGuard and the kernel matrix in qemu guests with Debian's kernels.
#
#   make check-vm KERNELS="6.1 6.12"         (default both)
#   BUILD=build KERNELS=6.1 tests/run.sh tests/vm/check-vm.sh
#
# Per kernel K, two guests and the host end share one L2 segment in namespace lsv-$$:
#
#        guest a (K)              guest b (K)
#        eth0 10.77.0.11          eth0 10.77.0.12
#        wg0  10.78.0.11 <------> wg0  10.78.0.12        kernel <-> kernel
#        wg1  10.79.0.11 -.  .--- wg1  10.79.0.12        kernel <-> userspace engine
#             |          |  |        |
#        -----+------ bridge lsvbr ---+-------------------- taps lsvtN (vnet_hdr=off)
#                        |  |
#                   host netns lsv-$$: lsvbr 10.77.0.1, lsvu<pid> 10.79.0.1
#                   (wireguard-go or $BUILD/lightscale-wg, see WG_USERSPACE)
#
# Scenarios: host matrix (BPF objects + tables on the host kernel); per K: boot, matrix in a
# guest (clsact on 6.1, tcx on >= 6.6), kernel WireGuard a<->b configured with ip + wg (ping
# both ways, `wg show` against the configuration, a peer added without an interface flap),
# interop with the userspace engine (each side initiating), XDP+TC rewrites under TCP through
# virtio_net with full checksums and bpftool reading pinned maps, the project's SNAT router
# (lightscale-bpf) with XDP de-SNAT on a's virtio LAN NIC (GRO off there; every TCP checksum
# after the rewrite checked with tcpdump -vv on a's wg0, the frames on a's tap as the
# reference; LAN host = busybox httpd at 10.77.0.1:8081), and the same end to end driven by
# `lightscale agent --engine kernel --bpf` in each guest against `lightscale-control serve
# --tls` in the host namespace (https://10.77.0.1:8443, enrolled with the enrollment string
# that carries its pin; network vmK, profile vm, ls-vm): ping, `wg show` against the netmap,
# a peer added by netmap update without a flap, the agent's pinned BPF maps read with
# bpftool in the guest and compared with the netmap (tests/vm/agent-maps.py), and an ACL
# policy seen in the filter maps and on traffic; then `lightscale agent --bpf
# --snat-subnet-routes --fast-forward' in a with XDP de-SNAT on its virtio NIC and the
# overlay's packets forwarded (and SNATed) by the wg0 ingress program (scenario_agent_snat).
#
# Every qemu runs under timeout(1); on any failure the guests' serial consoles are printed.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/vm/lib.sh

KERNELS=${KERNELS:-6.1 6.12}
# VM_ONLY="snat agent": run only these scenarios (host matrix wg interop xdp snat agent);
# empty: all of them. For working on one scenario; `make check' runs them all.
VM_ONLY=${VM_ONLY:-}
want() { [ -z "$VM_ONLY" ] || [[ " $VM_ONLY " == *" $1 "* ]]; }
# The userspace WireGuard for the interop scenario: a command that takes the interface name
# last and stays in the foreground. "auto" = $BUILD/lightscale-wg when it exists and comes
# up, else Debian's wireguard-go.
WG_USERSPACE=${WG_USERSPACE:-auto}
UIF=lsvu$$
declare -a HOST_PIDS=()
T0=$(date +%s)

cleanup() {
	local p
	[ "$_tap_failed" -ne 0 ] && vm_dump_logs
	vm_cleanup
	for p in "${HOST_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${HOST_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	control_down
	rm -f "/var/run/wireguard/$UIF.sock"
	[ "$_tap_failed" -eq 0 ] && rm -rf "$VM_RUN"
	return 0
}
trap cleanup EXIT
trap "exit 130" INT TERM

# relay PREFIX OUTPUT: re-emit a guest script's TAP lines as ours, names prefixed.
relay() {
	local prefix=$1 line name detail=()
	local last=
	while IFS= read -r line; do
		if [[ $line =~ ^ok\ [0-9]+\ -\ (.*)$ ]]; then
			flush_relay; ok "$prefix${BASH_REMATCH[1]}"
		elif [[ $line =~ ^not\ ok\ [0-9]+\ -\ (.*)$ ]]; then
			flush_relay; last="$prefix${BASH_REMATCH[1]}"
		elif [[ $line == \#* ]]; then
			if [ -n "$last" ]; then detail+=("${line#\# }"); else echo "# $prefix${line#\# }"; fi
		fi
	done <<<"$2"
	flush_relay
}
flush_relay() {
	[ -n "${last:-}" ] || return 0
	fail "$last" "${detail[@]}"
	last=
	detail=()
}

# ---- tools of the lab ------------------------------------------------------------------
for f in "$VM_BUILD/vm/probe.bpf.o" "$VM_BUILD/vm/lsv-tcx-attach" "$VM_BUILD/vm/lsv-offload"; do
	[ -e "$f" ] || { fail "lab tool $f is built (make $f)"; exit 1; }
done

# ---- the host kernel's matrix, in private net + mount namespaces (own bpffs) -----------
# It runs beside the guests; its results are reported at the end.
mkdir -p "$VM_RUN"
HOST_MATRIX_PID=
if want host; then
	# nice: the same tables run in `make check' too; the guests, which wait on no one,
	# get the CPU first.
	LIGHTSCALE_BUILD=$VM_BUILD nice -n 19 unshare --mount --net bash -c \
		'mount -t bpf bpf /sys/fs/bpf && ip link set lo up && exec tests/vm/guest/matrix.sh' \
		>"$VM_RUN/host-matrix.out" 2>&1 </dev/null &
	HOST_MATRIX_PID=$!
	HOST_PIDS+=("$HOST_MATRIX_PID")
fi

# ---- the userspace WireGuard for interop -----------------------------------------------
# start_userspace CMD: start CMD IFNAME in the lab namespace; 0 when its UAPI socket answers.
start_userspace() {
	local t=0
	"${VM_NS_CMD[@]}" env WG_PROCESS_FOREGROUND=1 $1 "$UIF" >"$VM_RUN/userspace.log" 2>&1 &
	USERSPACE_PID=$!
	while [ $t -lt 50 ]; do
		vm_ns wg show "$UIF" >/dev/null 2>&1 && return 0
		kill -0 "$USERSPACE_PID" 2>/dev/null || break
		sleep 0.1
		t=$((t + 1))
	done
	kill "$USERSPACE_PID" 2>/dev/null
	wait "$USERSPACE_PID" 2>/dev/null
	return 1
}

# Keys: NAME.key / NAME.pub under $VM_RUN/keys.
key() {
	local d=$VM_RUN/keys
	mkdir -p "$d"
	[ -f "$d/$1.key" ] || { (umask 077 && wg genkey >"$d/$1.key") && wg pubkey <"$d/$1.key" >"$d/$1.pub"; }
	cat "$d/$1.pub"
}

# wg_peer_field GUEST IF PEERPUB FIELD: one field of `wg show IF dump` for a peer
# (2 psk, 3 endpoint, 4 allowed-ips, 5 latest-handshake, 6 rx, 7 tx).
dump_field() { awk -v p="$2" -v f="$3" '$1 == p { print $f }' <<<"$1"; }

# The kernels' guests all boot at the start and run their matrix side by side (CPU-bound
# under TCG: the verifier); the scenarios then run one kernel at a time on the one segment.
# A kernel's pair boots with addresses 10.77.0.(11 + 10 * slot), (12 + ...) and takes
# 10.77.0.11 and .12 when its scenarios start.
declare -A KUP=() MATRIX_PIDS=() KSLOT=()

# kernel_up K SLOT: fetch and unpack K, boot its two guests.
kernel_up() {
	local k=$1 slot=$2 a=${1//./}a b=${1//./}b out p="$1: "
	KUP[$k]=0 KSLOT[$k]=$slot
	if out=$(vm_kernel "$k" 2>&1); then
		ok "${p}Debian kernel $(cat "$VMDIR/kernels/$k/release") unpacked, initramfs built"
	else
		fail "${p}Debian kernel fetched and unpacked" "$out"
		return
	fi
	KT0[$k]=$(date +%s)
	# (not in $(...): vm_start records the guest in this shell's VM_PID, VM_TAP)
	if vm_start "$a" "$k" "10.77.0.$((11 + 10 * slot))" >"$VM_RUN/start.$k.txt" 2>&1 &&
		vm_start "$b" "$k" "10.77.0.$((12 + 10 * slot))" >>"$VM_RUN/start.$k.txt" 2>&1; then
		KUP[$k]=1
	else
		fail "${p}guests $a and $b start (taps, qemu)" "$(cat "$VM_RUN/start.$k.txt")"
	fi
}
declare -A KT0=()

# kernel_matrix K: wait for K's guests, start its matrix in the background: objects and
# half the tables in guest a, the other half in guest b.
kernel_matrix() {
	local k=$1 a=${1//./}a b=${1//./}b out p="$1: "
	[ "${KUP[$k]}" = 1 ] || return
	if out=$(vm_wait_ready "$a" 2>&1 && vm_wait_ready "$b" 2>&1); then
		ok "${p}guests $a and $b boot to a shell ($(($(date +%s) - KT0[$k]))s)"
	else
		fail "${p}guests $a and $b boot to a shell" "$out"
		KUP[$k]=0
		return
	fi
	check_eq "${p}guest runs kernel $k" "$(cat "$VMDIR/kernels/$k/release")" "$(cat "$VM_RUN/$a/ready")"
	want matrix || return
	vm_exec -t 900 "$a" tests/vm/guest/matrix.sh --objects --tables 0/2 >"$VM_RUN/matrix.$k.out" 2>&1 &
	MATRIX_PIDS[$k]=$!
	vm_exec -t 900 "$b" tests/vm/guest/matrix.sh --tables 1/2 >"$VM_RUN/tables.$k.out" 2>&1 &
	MATRIX_PIDS[$k]+=" $!"
}

run_kernel() {
	local k=$1 a=${1//./}a b=${1//./}b out pid
	local p="$k: "
	[ "${KUP[$k]}" = 1 ] || return

	# -- the kernel matrix (started by kernel_matrix): its results
	if want matrix; then
		for pid in ${MATRIX_PIDS[$k]}; do wait "$pid"; done
		relay "$p" "$(cat "$VM_RUN/matrix.$k.out")"
		relay "$p" "$(cat "$VM_RUN/tables.$k.out")"
		echo "# ${p}matrix done at +$(($(date +%s) - T0))s"
	fi
	if [ "${KSLOT[$k]}" != 0 ]; then
		vm_check "${p}guests take the segment's addresses 10.77.0.11 and .12" "$a" \
			"ip addr flush dev eth0 && ip addr add 10.77.0.11/24 dev eth0" &&
			vm_check "${p}guest b takes 10.77.0.12" "$b" \
				"ip addr flush dev eth0 && ip addr add 10.77.0.12/24 dev eth0" || return
		vm_ns ip neigh flush dev lsvbr
	fi

	# -- kernel WireGuard between the guests, configured with ip + wg (the SNAT scenario
	#    runs over wg0)
	if want wg || want snat; then
		scenario_wg "$k" "$a" "$b"
	fi

	# -- interop: kernel WireGuard in the guests, the userspace engine in the host namespace
	want interop && scenario_interop "$k" "$a" "$b"

	# -- XDP + TC rewrites under TCP through virtio_net (full checksums), pinned maps
	want xdp && scenario_xdp_tcp "$k" "$a" "$b"

	# -- the project's SNAT with XDP de-SNAT on the virtio LAN NIC
	if ! want snat; then
		:
	elif [ -x "$VM_BUILD/lightscale-bpf" ]; then
		scenario_snat_xdp "$k" "$a" "$b"
	else
		fail "${p}snat/xdp: $VM_BUILD/lightscale-bpf is built"
	fi

	# -- the same, driven by the agent: control plane in the host namespace, one
	#    `lightscale agent --engine kernel --bpf` per guest
	#    (after the hand-made wg0/wg1 are gone: the agent takes port 51820)
	if ! want agent; then
		:
	elif [ -n "$CONTROL_DIR" ]; then
		vm_exec "$a" "ip link del wg0; ip link del wg1" >/dev/null 2>&1
		vm_exec "$b" "ip link del wg0; ip link del wg1" >/dev/null 2>&1
		scenario_agent "$k" "$a" "$b"
		scenario_agent_snat "$k" "$a" "$b"
	else
		fail "${p}agent: control plane and $VM_BUILD/lightscale are up" "see the control plane's line above"
	fi
	echo "# ${p}scenarios done at +$(($(date +%s) - T0))s"
	if [ -n "${VM_KEEP:-}" ]; then
		# for working on the lab: the guests stay up until $VM_RUN/continue appears;
		# tests/vm/vmsh.sh $VM_RUN/$a CMD runs a command in one
		echo "# VM_KEEP: guests $a and $b kept; touch $VM_RUN/continue to go on" >&2
		while [ ! -e "$VM_RUN/continue" ]; do sleep 1; done
		rm -f "$VM_RUN/continue"
	fi

	vm_stop "$a"
	vm_stop "$b"
}

# -- kernel WireGuard between the guests, configured with ip + wg
scenario_wg() {
	local k=$1 a=$2 b=$3 p="$1: " out ka kb ph ia ia2 hs hs2 g gn peer ep epp aip self
	vm_check "${p}modprobe wireguard (a)" "$a" modprobe wireguard
	vm_check "${p}modprobe wireguard (b)" "$b" modprobe wireguard
	ka=$(key "$a") kb=$(key "$b")
	cp "$VM_RUN/keys/$a.key" "$VM_RUN/$a/wg0.key"
	cp "$VM_RUN/keys/$b.key" "$VM_RUN/$b/wg0.key"
	vm_check "${p}wg0 up in a (ip link add type wireguard; wg set)" "$a" "
		ip link add wg0 type wireguard &&
		wg set wg0 private-key /out/wg0.key listen-port 51820 \
			peer $kb allowed-ips 10.78.0.12/32 endpoint 10.77.0.12:51820 &&
		ip addr add 10.78.0.11/24 dev wg0 && ip link set wg0 up"
	vm_check "${p}wg0 up in b" "$b" "
		ip link add wg0 type wireguard &&
		wg set wg0 private-key /out/wg0.key listen-port 51820 \
			peer $ka allowed-ips 10.78.0.11/32 endpoint 10.77.0.11:51820 &&
		ip addr add 10.78.0.12/24 dev wg0 && ip link set wg0 up"
	vm_check "${p}overlay ping a -> b over kernel WireGuard" "$a" /bb/ping -c 3 -w 30 10.78.0.12
	vm_check "${p}overlay ping b -> a over kernel WireGuard" "$b" /bb/ping -c 3 -w 30 10.78.0.11
	for g in "$a:$kb:10.77.0.12:51820:10.78.0.12/32:$ka" "$b:$ka:10.77.0.11:51820:10.78.0.11/32:$kb"; do
		IFS=: read -r gn peer ep epp aip self <<<"$g"
		out=$(vm_exec "$gn" wg show wg0 dump 2>&1)
		local want="self=$self endpoint=$ep:$epp allowed=$aip handshake=yes rx=yes tx=yes"
		local got="self=$(head -n1 <<<"$out" | cut -f2) endpoint=$(dump_field "$out" "$peer" 3)"
		got+=" allowed=$(dump_field "$out" "$peer" 4)"
		got+=" handshake=$([ "$(dump_field "$out" "$peer" 5)" -gt 0 ] 2>/dev/null && echo yes || echo no)"
		got+=" rx=$([ "$(dump_field "$out" "$peer" 6)" -gt 0 ] 2>/dev/null && echo yes || echo no)"
		got+=" tx=$([ "$(dump_field "$out" "$peer" 7)" -gt 0 ] 2>/dev/null && echo yes || echo no)"
		check_eq "${p}wg show wg0 in $gn matches its configuration" "$want" "$got"
	done

	# A peer added to a live interface (what a netmap update does): same ifindex, no carrier
	# change, the existing session untouched (same handshake time) and still carrying traffic.
	ph=$(key "${k//./}extra")
	ia=$(vm_exec "$a" cat /sys/class/net/wg0/ifindex /sys/class/net/wg0/carrier_changes | tr '\n' ' ')
	hs=$(dump_field "$(vm_exec "$a" wg show wg0 dump)" "$kb" 5)
	vm_check "${p}peer added to wg0 in a" "$a" wg set wg0 peer "$ph" allowed-ips 10.78.0.99/32
	vm_check "${p}old peer still reachable after the update" "$a" /bb/ping -c 2 -w 20 10.78.0.12
	ia2=$(vm_exec "$a" cat /sys/class/net/wg0/ifindex /sys/class/net/wg0/carrier_changes | tr '\n' ' ')
	hs2=$(dump_field "$(vm_exec "$a" wg show wg0 dump)" "$kb" 5)
	if [ -n "$ia" ] && [ -n "$hs" ] && [ "$hs" != 0 ]; then
		check_eq "${p}no interface flap (ifindex, carrier_changes; handshake kept)" "$ia hs=$hs" "$ia2 hs=$hs2"
	else
		fail "${p}no interface flap" "before the update: ifindex/carrier '$ia', handshake '$hs'"
	fi
	out=$(vm_exec "$a" wg show wg0 peers)
	check_eq "${p}wg show wg0 peers lists both peers" "$(printf '%s\n' "$kb" "$ph" | sort)" \
		"$(sort <<<"$out")"
}

# ---- agent-driven end-to-end --------------------------------------------------------
# The control plane runs as users run it: HTTPS (`serve --tls`, a self-signed certificate
# whose pin travels in the enrollment string of `token create --json`), embedded PostgreSQL.
CONTROL_DIR= CONTROL_PID= CONTROL_URL=https://10.77.0.1:8443
LS=$VM_BUILD/lightscale
control_up() {
	local t=0
	[ -x "$VM_BUILD/lightscale-control" ] && [ -x "$LS" ] || {
		echo "$VM_BUILD/lightscale-control and $LS are not both built"
		return 1
	}
	CONTROL_DIR=$(mktemp -d "/tmp/lsv-$$-control.XXXXXX") && chmod 755 "$CONTROL_DIR" || return 1
	"${VM_NS_CMD[@]}" env LIGHTSCALE_PG_FAST=1 "$VM_BUILD/lightscale-control" serve --tls \
		--listen 10.77.0.1:8443 --state-dir "$CONTROL_DIR" >"$VM_RUN/control.log" 2>&1 &
	CONTROL_PID=$!
	# ready: the certificate's pin is written and /v1/health answers over HTTPS pinned to it
	until [ -s "$CONTROL_DIR/tls.pin" ] &&
		vm_ns curl -sfk --max-time 5 --pinnedpubkey "$(cat "$CONTROL_DIR/tls.pin")" \
			"$CONTROL_URL/v1/health" >/dev/null 2>&1; do
		t=$((t + 1))
		if [ $t -gt 600 ] || ! kill -0 "$CONTROL_PID" 2>/dev/null; then
			tail -n 20 "$VM_RUN/control.log"
			return 1
		fi
		sleep 0.1
	done
}
control_down() {
	[ -n "$CONTROL_PID" ] || return 0
	kill "$CONTROL_PID" 2>/dev/null
	wait "$CONTROL_PID" 2>/dev/null
	rm -rf "$CONTROL_DIR"
}
lsc() { vm_ns "$VM_BUILD/lightscale-control" "$@" --state-dir "$CONTROL_DIR"; }

# In a guest: `lightscale CMD` for profile vm (state in the guest's tmpfs).
lsg() { echo "$LS $1 --profile ${2:-vm} --state-dir /tmp/ls${3:-}"; }

# agent_maps GUEST: the agent's pinned maps as bpftool reads them in the guest, against
# what its netmap says (tests/vm/agent-maps.py normalises both). Sets MAPS_GOT, MAPS_WANT.
agent_maps() {
	local g=$1 pin=/sys/fs/bpf/lightscale/vm m ifindex
	vm_exec "$g" "for m in config ifaces routes4 routes6 route_info frules fsrc4 fdst4 fsrc6 fdst6; do
			echo \"== \$m\"; bpftool -j map dump pinned $pin/\$m || exit 1
		done >/out/maps.dump
		cp /tmp/ls/vm/netmap.json /out/netmap.json" >/dev/null 2>&1
	ifindex=$(vm_exec "$g" cat /sys/class/net/ls-vm/ifindex)
	MAPS_GOT=$(python3 tests/vm/agent-maps.py maps "$VM_RUN/$g/maps.dump" 2>&1)
	MAPS_WANT=$(python3 tests/vm/agent-maps.py netmap "$VM_RUN/$g/netmap.json" "$ifindex" 51820 2>&1)
}

scenario_agent() {
	local k=$1 a=$2 b=$3 p="$1: agent: " net=vm${1//./} tok g out ad bd ka kb ia ia2 hs hs2 m
	local pin=/sys/fs/bpf/lightscale/vm tc_path=clsact want_ver
	if ! out=$(lsc network create "$net" 2>&1) ||
		! tok=$(lsc token create --network "$net" --uses 3 --json 2>&1 | jq -r .enroll) ||
		[ -z "$tok" ] || [ "$tok" = null ]; then
		fail "${p}network and enrollment string on the control plane (https)" "$out" "$tok"
		return
	fi
	check "${p}the enrollment string carries the control plane's identity and TLS pin" \
		grep -qF "@$(tr -d '\n' <"$CONTROL_DIR/identity.pub")@$(cat "$CONTROL_DIR/tls.pin")" <<<"$tok"
	for g in "$a" "$b"; do
		# register: a TLS handshake under TCG on a loaded host can outlast the client's
		# 3 s connect timeout (lib/ctlclient.h), so up to 3 tries (registering is idempotent
		# for one machine key); the agent itself retries the same way.
		vm_check "${p}init with the enrollment string + register over https in $g" "$g" "
			$(lsg init) --control $CONTROL_URL --token '$tok' --hostname $g >/dev/null || exit 1
			for i in 1 2 3; do
				$(lsg register) --json >/out/register.json && exit 0
				echo \"try \$i failed\"; sleep 1
			done; exit 1"
		# Both agents start at once: the BPF data plane loads first (the verifier takes
		# ~20 s under TCG), before the interface is made.
		vm_exec "$g" "{ setsid $(lsg agent) --foreground --engine kernel --bpf --poll-wait 20 \
			>/out/agent.log 2>&1 & echo \$! >/tmp/agent.pid; }" >/dev/null
	done
	for g in "$a" "$b"; do
		if ! vm_check -t 240 "${p}lightscale agent --engine kernel --bpf runs in $g, makes ls-vm" "$g" "
			for i in \$(seq 600); do
				[ -e /run/lightscale/vm.pid ] && [ -e /sys/class/net/ls-vm ] && break
				kill -0 \$(cat /tmp/agent.pid) || break
				sleep 0.2
			done
			kill -0 \$(cat /tmp/agent.pid) && [ -e /sys/class/net/ls-vm ]"; then
			return
		fi
	done
	for g in "$a" "$b"; do
		vm_check -t 240 "${p}$g has its peer configured from the netmap" "$g" "
			for i in \$(seq 900); do
				[ \$(wg show ls-vm peers | wc -l) -eq 1 ] && exit 0; sleep 0.2
			done; wg show ls-vm; exit 1"
		vm_check "${p}ls-vm in $g is a kernel WireGuard device" "$g" \
			"ip -d link show ls-vm | grep -qw wireguard"
	done
	ad=$(vm_exec "$a" "jq -r '.self.addresses[]' /tmp/ls/vm/netmap.json" | grep -v : | head -n1)
	bd=$(vm_exec "$b" "jq -r '.self.addresses[]' /tmp/ls/vm/netmap.json" | grep -v : | head -n1)
	vm_check "${p}overlay ping a -> b ($bd)" "$a" /bb/ping -c 3 -w 30 "$bd"
	vm_check "${p}overlay ping b -> a ($ad)" "$b" /bb/ping -c 3 -w 30 "$ad"
	ka=$(vm_exec "$a" wg show ls-vm public-key)
	kb=$(vm_exec "$b" wg show ls-vm public-key)
	for g in "$a:$kb:$bd" "$b:$ka:$ad"; do
		IFS=: read -r gn peer addr <<<"$g"
		vm_check "${p}wg show ls-vm in $gn matches the netmap" "$gn" "
			set -e
			wg=\$(wg show ls-vm peers | sort)
			nm=\$(jq -r '.peers[].wg_key' /tmp/ls/vm/netmap.json | sort)
			test -n \"\$wg\" -a \"\$wg\" = \"\$nm\" || { echo \"wg: \$wg\"; echo \"netmap: \$nm\"; exit 1; }
			test \"\$wg\" = '$peer'
			wg show ls-vm allowed-ips | grep -F '$peer' | grep -qF '$addr/32' ||
				{ wg show ls-vm allowed-ips; exit 1; }
			test \"\$(wg show ls-vm latest-handshakes | awk -v p='$peer' '\$1 == p { print \$2 }')\" -gt 0"
	done

	# A third node enrolls (from b, no agent): a's agent adds it by netmap update, with
	# no interface flap and the session with b untouched.
	ia=$(vm_exec "$a" cat /sys/class/net/ls-vm/ifindex /sys/class/net/ls-vm/carrier_changes | tr '\n' ' ')
	hs=$(vm_exec "$a" "wg show ls-vm latest-handshakes | awk '\$1 == \"$kb\" { print \$2 }'")
	vm_check "${p}a third node enrolls" "$b" "
		$(lsg init vm3 3) --control $CONTROL_URL --token '$tok' --hostname ${a%a}c >/dev/null &&
		for i in 1 2 3; do $(lsg register vm3 3) >/dev/null && exit 0; sleep 1; done; exit 1"
	# wg show lists the third peer once a's agent applied the netmap update
	vm_check "${p}a adds the new peer from a netmap update" "$a" "
		for i in \$(seq 200); do
			[ \$(wg show ls-vm peers | wc -l) -eq 2 ] && exit 0; sleep 0.2
		done; wg show ls-vm; exit 1"
	vm_check "${p}b still reachable after the update" "$a" /bb/ping -c 2 -w 20 "$bd"
	ia2=$(vm_exec "$a" cat /sys/class/net/ls-vm/ifindex /sys/class/net/ls-vm/carrier_changes | tr '\n' ' ')
	hs2=$(vm_exec "$a" "wg show ls-vm latest-handshakes | awk '\$1 == \"$kb\" { print \$2 }'")
	if [ -n "$ia" ] && [ -n "$hs" ] && [ "$hs" != 0 ]; then
		check_eq "${p}no interface flap on a (ifindex, carrier_changes; handshake with b kept)" \
			"$ia hs=$hs" "$ia2 hs=$hs2"
	else
		fail "${p}no interface flap on a" "before the update: ifindex/carrier '$ia', handshake '$hs'"
	fi

	agent_alive "$a" "after the netmap update"
	agent_alive "$b" "after the netmap update"

	# The agent's BPF data plane, as an operator checks it in the guest: the programs on
	# ls-vm (clsact before 6.6, tcx from 6.6), every map pinned and readable by bpftool, and
	# the maps' content (config, interface, routes, packet filter) matching the netmap.
	[ "$(vm_exec "$a" uname -r | awk -F. '{ print ($1 > 6 || ($1 == 6 && $2 >= 6)) }')" = 1 ] && tc_path=tcx
	for g in "$a" "$b"; do
		vm_check "${p}lightscale bpf status in $g: held by the agent, programs on ls-vm in and out ($tc_path)" "$g" "
			set -e
			$(lsg bpf) status --json >/tmp/bpfst.json
			jq -e --argjson pid \$(cat /tmp/agent.pid) '.agent.held and .agent.pid == \$pid' /tmp/bpfst.json >/dev/null
			for h in overlay_in overlay_out; do
				jq -e --arg h \$h '[.attachments[] | select(.interface == \"ls-vm\" and .hook == \$h
					and .mode == \"$tc_path\" and .attached)] | length == 1' /tmp/bpfst.json >/dev/null ||
					{ jq -c .attachments /tmp/bpfst.json; exit 1; }
			done"
		vm_check "${p}every map pinned under $pin in $g is shown and dumped by bpftool" "$g" "
			n=0
			for m in $pin/*; do
				[ -f \"\$m\" ] || continue
				bpftool map show pinned \$m >/dev/null && bpftool map dump pinned \$m >/dev/null ||
					{ echo \"bpftool cannot read \$m\"; exit 1; }
				n=\$((n + 1))
			done
			echo \"\$n maps\"
			for m in config counters ifaces routes4 routes6 route_info route_stats frules fsrc4 fdst4; do
				[ -f $pin/\$m ] || { echo \"$pin/\$m missing\"; ls $pin; exit 1; }
			done"
		agent_maps "$g"
		check_eq "${p}$g's pinned maps (bpftool map dump) match its netmap: config, ls-vm, routes, default filter" \
			"$MAPS_WANT" "$MAPS_GOT"
	done

	# An ACL policy reaches a's packet filter map and its traffic: ICMP between all, TCP
	# 5432 from b to a; 5433 (listening too) is dropped by a's filter on ls-vm ingress.
	printf '{"rules": [{"src": ["*"], "dst": ["*"], "proto": "icmp"},
		{"src": ["%s/32"], "dst": ["%s/32"], "ports": ["5432"], "proto": "tcp"}],
		"visibility": "all"}\n' "$bd" "$ad" >"$VM_RUN/acl.json"
	want_ver=$(vm_exec "$a" "jq .version /tmp/ls/vm/netmap.json")
	if out=$(lsc acl set --network "$net" "$VM_RUN/acl.json" 2>&1); then
		ok "${p}ACL policy set (icmp: all; tcp 5432: b -> a)"
	else
		fail "${p}ACL policy set" "$out"
	fi
	vm_check "${p}a's agent applies the policy's netmap (packet_filter with 2 rules)" "$a" "
		for i in \$(seq 200); do
			[ \"\$(jq '.version > $want_ver and (.packet_filter | length) == 2' /tmp/ls/vm/netmap.json)\" = true ] &&
				exit 0
			sleep 0.2
		done; jq -c '{version, packet_filter}' /tmp/ls/vm/netmap.json; exit 1"
	# the netmap is saved before the maps are written: wait until they agree
	for i in $(seq 50); do
		agent_maps "$a"
		[ "$MAPS_WANT" = "$MAPS_GOT" ] && break
		sleep 0.2
	done
	check_eq "${p}a's pinned filter maps match the policy's netmap (rules, src and dst prefixes)" \
		"$MAPS_WANT" "$MAPS_GOT"
	check "${p}a's filter map holds the policy's two rules" grep -qx "rule proto=tcp ports=5432-5432 src=$bd/32 dst=$ad/32" <<<"$MAPS_GOT"
	vm_check "${p}listeners on a's ports 5432 and 5433" "$a" "
		for p in 5432 5433; do { setsid /bb/nc -ll -p \$p -e /bb/true >/dev/null 2>&1 & }; done; sleep 0.3"
	vm_check "${p}policy: b -> a:5432/tcp connects" "$b" "timeout 10 bash -c 'exec 3<>/dev/tcp/$ad/5432'"
	vm_check "${p}policy: b -> a:5433/tcp dropped by a's BPF filter" "$b" "! timeout 3 bash -c 'exec 3<>/dev/tcp/$ad/5433'"
	vm_check "${p}policy: ping b -> a still passes (icmp rule)" "$b" /bb/ping -c 1 -w 10 "$ad"
	out=$(vm_exec "$a" "$(lsg bpf) status --json | jq '[.counters[] | select(.reason == \"filter_deny\") | .packets] | add // 0'")
	check "${p}bpf status in a counts the dropped SYNs (filter_deny: ${out:-?})" test "${out:-0}" -gt 0

	agent_alive "$a" "at the end"
	agent_alive "$b" "at the end"
	for g in "$a" "$b"; do
		vm_exec "$g" "kill \$(cat /tmp/agent.pid); $(lsg wg-down) >/dev/null 2>&1; true" >/dev/null
	done
}

# `lightscale agent --bpf --snat-subnet-routes' on a real NIC: a (profile vms, state in
# /tmp/lss) also holds 10.80.0.11/24 on eth0 and advertises 10.80.0.0/24, so eth0 is its
# LAN: the agent attaches the LAN programs there with XDP in front (virtio_net) and SNATs
# b's traffic to 10.80.0.11. The host answers as 10.80.0.1:8082 on the segment and has no
# route back to the overlay: the download arrives only through SNAT and the XDP de-SNAT.
#
#   b (vms, --apply-routes) --ls-vms--> a (vms, --bpf --snat-subnet-routes)
#        eth0 10.80.0.11 (XDP de-SNAT) --> host 10.80.0.1:8082 (busybox httpd)
scenario_agent_snat() {
	local k=$1 a=$2 b=$3 p="$1: agent snat: " net=vms${1//./} tok g out
	if ! out=$(lsc network create "$net" 2>&1) ||
		! tok=$(lsc token create --network "$net" --uses 2 --json 2>&1 | jq -r .enroll) ||
		[ -z "$tok" ] || [ "$tok" = null ]; then
		fail "${p}network and enrollment string" "$out" "$tok"
		return
	fi
	vm_ns ip addr add 10.80.0.1/24 dev lsvbr 2>/dev/null
	"${VM_NS_CMD[@]}" busybox httpd -f -p 10.80.0.1:8082 -h "$VM_RUN/www" >"$VM_RUN/httpd-snat.log" 2>&1 </dev/null &
	HOST_PIDS+=("$!")
	vm_check "${p}a holds 10.80.0.11/24 on eth0 (its LAN)" "$a" "ip addr add 10.80.0.11/24 dev eth0"
	for g in "$a:--advertise-routes 10.80.0.0/24" "$b:"; do
		vm_check "${p}init + register ${g%%:*}" "${g%%:*}" "
			$(lsg init vms s) --control $CONTROL_URL --token '$tok' --hostname ${g%%:*}s ${g#*:} >/dev/null || exit 1
			for i in 1 2 3; do $(lsg register vms s) >/dev/null && exit 0; sleep 1; done; exit 1"
	done
	vm_exec "$a" "{ setsid $(lsg agent vms s) --foreground --engine kernel --bpf --snat-subnet-routes --fast-forward --poll-wait 20 \
		>/out/agent-snat.log 2>&1 & echo \$! >/tmp/agent-snat.pid; }" >/dev/null
	vm_exec "$b" "{ setsid $(lsg agent vms s) --foreground --engine kernel --apply-routes --poll-wait 20 \
		>/out/agent-snat.log 2>&1 & echo \$! >/tmp/agent-snat.pid; }" >/dev/null
	if ! vm_check -t 240 "${p}a's agent runs SNAT on eth0 (status: bpf, eth0 lan 10.80.0.11)" "$a" "
		for i in \$(seq 900); do
			$(lsg status vms s) --json >/tmp/st.json 2>/dev/null &&
				jq -e '.snat.mode == \"bpf\" and ([.snat.interfaces[] | select(.interface == \"eth0\" and
					.role == \"lan\" and .ipv4 == \"10.80.0.11\")] | length == 1)' /tmp/st.json >/dev/null && exit 0
			kill -0 \$(cat /tmp/agent-snat.pid) || break
			sleep 0.2
		done; jq -c .snat /tmp/st.json; tail -n 20 /out/agent-snat.log; exit 1"; then
		scenario_agent_snat_down "$a" "$b"
		return
	fi
	vm_check "${p}status in a: eth0 runs xdp_lan_in in XDP mode, lan_in and lan_out at TC, attached" "$a" "
		jq -e '[.snat.interfaces[] | select(.interface == \"eth0\") | .hooks[] | select(.attached) |
			\"\(.hook)/\(.mode)\"] | (index(\"xdp_lan_in/xdp\") != null) and
			(map(select(startswith(\"lan_\"))) | length == 2)' /tmp/st.json >/dev/null || { jq -c .snat /tmp/st.json; exit 1; }
		ip link show dev eth0 | head -n1 | grep -qw xdp"
	vm_check "${p}a: no masquerade, the port range reserved" "$a" "
		jq -e '.masquerade == false and .snat.reserved' /tmp/st.json >/dev/null &&
		grep -q 61000-65000 /proc/sys/net/ipv4/ip_local_reserved_ports"
	vm_check -t 240 "${p}b routes 10.80.0.0/24 through a" "$b" "
		for i in \$(seq 900); do ip route show table all | grep -q '^10.80.0.0/24 dev ls-vms' && exit 0; sleep 0.2; done
		ip route show table all | grep ls-vms; exit 1"
	vm_check "${p}768 KiB download from 10.80.0.1 through SNAT + XDP de-SNAT arrives intact" "$b" "
		curl -sSf --max-time 120 -o /tmp/snat-blob2 http://10.80.0.1:8082/blob &&
		test \"\$(sha256sum /tmp/snat-blob2 | cut -d' ' -f1)\" = $WWW_SUM"
	vm_check "${p}a's ls_nat_out holds the flow with source 10.80.0.11 (bpftool)" "$a" "
		bpftool -j map dump pinned /sys/fs/bpf/lightscale/vms/nat_out |
			jq -e '[.[] | select(.formatted.value.addr[0:4] == [10,80,0,11])] | length >= 1' >/dev/null ||
			{ bpftool map dump pinned /sys/fs/bpf/lightscale/vms/nat_out | head -n 40; exit 1; }"
	out=$(vm_exec "$a" "$(lsg bpf vms s) status --json | jq '[.counters[] | select(.reason == \"snat_reply\") | .packets] | add // 0'")
	check "${p}bpf status in a counts de-SNATed replies (snat_reply: ${out:-?})" test "${out:-0}" -gt 100
	# --fast-forward: b's packets (the download's ACKs) leave wg0, an L3 device, through the
	# program (Ethernet header pushed, SNAT run before the redirect), not the stack
	out=$(vm_exec "$a" "$(lsg bpf vms s) status --json | jq -r '[.counters[] | select(.program == \"forward\" and
		.reason == \"forwarded_in_bpf\") | .packets] | add // 0' ; $(lsg bpf vms s) status --json |
		jq -r '[.counters[] | select(.reason == \"lan_out_done_at_ingress\") | .packets] | add // 0'" | tr '\n' ' ')
	local fwd done
	read -r fwd done <<<"$out"
	# (the download's ACKs: their number varies with GRO and delayed ACKs, 57 to 359 seen)
	check "${p}--fast-forward: a forwarded b's packets from wg0 in BPF (forwarded_in_bpf: ${fwd:-?})" test "${fwd:-0}" -ge 20
	check "${p}... every one with its SNAT done before the redirect (lan_out_done_at_ingress: ${done:-?})" \
		test "${done:-0}" -eq "${fwd:-1}"
	scenario_agent_snat_down "$a" "$b"
	vm_check "${p}wg-down in a gave the port range back" "$a" "! grep -q 61000-65000 /proc/sys/net/ipv4/ip_local_reserved_ports"
}
scenario_agent_snat_down() {
	for g in "$1" "$2"; do
		vm_exec "$g" "kill \$(cat /tmp/agent-snat.pid); sleep 0.5; $(lsg wg-down vms s) >/dev/null 2>&1; true" >/dev/null
	done
	vm_exec "$1" "ip addr del 10.80.0.11/24 dev eth0" >/dev/null 2>&1
	vm_ns ip addr del 10.80.0.1/24 dev lsvbr 2>/dev/null
}

# agent_alive GUEST WHEN: the agent still runs; if not, what the kernel and its log say.
agent_alive() {
	vm_check "${p}the agent in $1 is still running ($2)" "$1" "
		kill -0 \$(cat /tmp/agent.pid) && exit 0
		echo \"agent pid \$(cat /tmp/agent.pid) is gone\"
		dmesg | grep -iE 'lightscale|segfault|trap|oom|killed' | tail -n 5
		tail -n 5 /out/agent.log; exit 1"
}

# td_judge MTU FILE [bad]: TCP checksums in `tcpdump -vv' output (an IP line '... proto TCP
# (6), length L)' then a TCP line with 'cksum 0x.... (correct)' or '(incorrect -> 0x....)').
# Prints "CORRECT INCORRECT LARGER": packets longer than MTU are not judged (GRO merges
# them and leaves a partial checksum that tcpdump cannot verify). With "bad": the lines of
# the incorrect ones instead.
td_judge() {
	awk -v mtu="$1" -v show="${3:-}" '
		/proto TCP \(6\), length [0-9]+\)/ {
			match($0, /length [0-9]+\)/); len = substr($0, RSTART + 7, RLENGTH - 8) + 0; ip = $0
		}
		/cksum 0x[0-9a-f]+ \((correct|incorrect)/ {
			if (len > mtu) big++
			else if (/\(correct\)/) good++
			else { bad++; if (show) { print ip; print } }
		}
		END { if (!show) print good + 0, bad + 0, big + 0 }' "$2"
}

# The project's SNAT router with XDP on a virtio LAN NIC (full checksums, unlike veth):
#   b (client) --wg0--> a (router: SNAT to 10.77.0.11 on eth0) --> 10.77.0.1:8081 (host)
# Replies enter a's eth0, where ls_xdp_lan_in undoes the SNAT before a forwards them into
# wg0. WireGuard marks decrypted packets CHECKSUM_UNNECESSARY, so b's stack would not notice
# a bad TCP checksum: tcpdump -vv on a's wg0 checks every one as it leaves the router.
scenario_snat_xdp() {
	local k=$1 a=$2 b=$3 p="$1: snat/xdp: " ka pin=/sys/fs/bpf/lsvsnat out n
	local LSB=$VM_BUILD/lightscale-bpf
	ka=$(key "$a")
	vm_check "${p}client b routes 10.77.0.1 through router a" "$b" "
		wg set wg0 peer $ka allowed-ips 10.78.0.11/32,10.77.0.1/32 &&
		ip route add 10.77.0.1/32 dev wg0"
	vm_check "${p}no path back from 10.77.0.1 to b before SNAT" "$b" "
		! curl -sS --max-time 5 -o /dev/null http://10.77.0.1:8081/blob"
	if ! vm_check "${p}lightscale-bpf: LAN attach in XDP mode, SNAT stage (overlay wg0 -> 10.77.0.11)" "$a" "
		sysctl -qw net.ipv4.ip_forward=1 kernel.bpf_stats_enabled=1 &&
		$LSB --pin-dir $pin attach eth0 lan --mode xdp &&
		$LSB --pin-dir $pin set --stages snat --iface wg0:1:overlay,snat-from \
			--snat4 10.77.0.11 --ports 61000-61999 &&
		ip link show dev eth0 | head -n1 | grep -qw xdp &&
		bpftool net show dev eth0 | grep -q 'driver id'"; then
		vm_exec "$a" "$LSB --pin-dir $pin down; rm -rf $pin" >/dev/null
		vm_exec "$b" "ip route del 10.77.0.1/32 dev wg0" >/dev/null
		return
	fi
	# The capture is on a's wg0, where the replies leave the router right after the XDP
	# rewrite, with GRO off on a's eth0 (it runs after native XDP and would merge them): one
	# packet per frame, so tcpdump checks exactly the checksums XDP wrote. (GRO-merged
	# packets carry a partial checksum that tcpdump cannot verify; so do packets that
	# WireGuard's GRO merged in b.) Only packets of at most the MTU are judged, and at
	# least 300 of the ~580 data segments must have been.
	# (VM_SNAT_GRO=on leaves GRO on, to see what it does to the capture.)
	if [ "${VM_SNAT_GRO:-off}" = off ]; then
		vm_check "${p}GRO and LRO off on a's eth0 (lsv-offload)" "$a" \
			"$VM_BUILD/vm/lsv-offload eth0 gro off lro off | grep 'gro off.*lro off'"
	fi
	# The same replies as they reach a's NIC (before XDP), on its tap in the lab namespace:
	# the reference, so a bad checksum after the rewrite is XDP's.
	"${VM_NS_CMD[@]}" timeout 180 tcpdump -l -i "${VM_TAP[$a]}" -n -vv -s 0 \
		'tcp and src host 10.77.0.1 and src port 8081' >"$VM_RUN/td-tap.$k.txt" 2>"$VM_RUN/td-tap.$k.err" &
	local tdpid=$! i
	vm_check "${p}tcpdump -vv on a's wg0 (replies after the XDP rewrite)" "$a" "
		{ setsid timeout 180 tcpdump -l -i wg0 -n -vv -s 0 'tcp and src host 10.77.0.1 and src port 8081' \
			>/out/td-wg0.$k.txt 2>/tmp/td.err & echo \$! >/tmp/td.pid; }
		for i in \$(seq 100); do grep -q 'listening on' /tmp/td.err && exit 0; sleep 0.1; done
		cat /tmp/td.err; exit 1"
	for i in $(seq 50); do grep -q 'listening on' "$VM_RUN/td-tap.$k.err" && break; sleep 0.1; done
	vm_check "${p}768 KiB download through SNAT + XDP de-SNAT arrives intact" "$b" "
		curl -sSf --max-time 120 -o /tmp/snat-blob http://10.77.0.1:8081/blob &&
		test \"\$(sha256sum /tmp/snat-blob | cut -d' ' -f1)\" = $WWW_SUM"
	vm_exec "$a" "sleep 1; kill \$(cat /tmp/td.pid); sleep 0.5" >/dev/null
	kill "$tdpid" 2>/dev/null
	wait "$tdpid" 2>/dev/null
	local good bad big
	read -r good bad big < <(td_judge 1500 "$VM_RUN/td-tap.$k.txt")
	if [ "${good:-0}" -ge 300 ] && [ "${bad:-1}" = 0 ] && [ "${big:-1}" = 0 ]; then
		ok "${p}the replies reach a's NIC with correct TCP checksums ($good packets, tcpdump -vv on its tap)"
	else
		fail "${p}the replies reach a's NIC with correct TCP checksums" \
			"judged (at most 1500 bytes): correct ${good:-?}, incorrect ${bad:-?}; larger: ${big:-?}" \
			"$(grep -m4 -B1 incorrect "$VM_RUN/td-tap.$k.txt")"
	fi
	read -r good bad big < <(td_judge "$(vm_exec "$a" cat /sys/class/net/wg0/mtu)" "$VM_RUN/$a/td-wg0.$k.txt")
	if [ "${good:-0}" -ge 300 ] && [ "${bad:-1}" = 0 ]; then
		ok "${p}every TCP checksum after the XDP rewrite is correct ($good packets of at most the MTU, tcpdump -vv on the router's wg0; $big GRO-merged not judged)"
	else
		fail "${p}every TCP checksum after the XDP rewrite is correct" \
			"judged (at most the MTU): correct ${good:-?}, incorrect ${bad:-?}; larger than the MTU (GRO-merged, not judged): ${big:-?}" \
			"first incorrect ones:" "$(td_judge "$(vm_exec "$a" cat /sys/class/net/wg0/mtu)" "$VM_RUN/$a/td-wg0.$k.txt" bad | head -n 8)"
	fi
	out=$(vm_exec "$a" "echo \$(bpftool -j prog show name ls_xdp_lan_in | jq '.run_cnt // 0')" \
		"\$($LSB --pin-dir $pin status --json | jq '[.counters[] | select(.reason == \"snat_reply\") | .packets] | add // 0')")
	read -r n m <<<"$out"
	if [ "${n:-0}" -gt 300 ] && [ "${m:-0}" -gt 300 ]; then
		ok "${p}XDP ls_xdp_lan_in ran on $n packets, $m SNAT replies translated"
	else
		fail "${p}XDP ls_xdp_lan_in ran and translated the replies" "run_cnt: ${n:-?}, snat_reply: ${m:-?}" \
			"$(vm_exec "$a" "bpftool prog show name ls_xdp_lan_in; sysctl kernel.bpf_stats_enabled
				$LSB --pin-dir $pin status")"
	fi
	vm_check "${p}lightscale-bpf down" "$a" "$LSB --pin-dir $pin down && ! ip link show dev eth0 | head -n1 | grep -qw xdp"
	vm_exec "$a" "$VM_BUILD/vm/lsv-offload eth0 gro on" >/dev/null
	vm_exec "$b" "ip route del 10.77.0.1/32 dev wg0" >/dev/null
}

scenario_interop() {
	local k=$1 a=$2 b=$3 p="$1: " ka kb kh out
	if [ -z "$USERSPACE" ]; then
		fail "${p}interop: a userspace WireGuard is running" "see $VM_RUN/userspace.log"
		return
	fi
	ka=$(key "${a}1") kb=$(key "${b}1") kh=$(key "host$k")
	# The host knows a's endpoint and not b's; a knows no endpoint for the host, b does. So
	# the host must initiate to a, and b must initiate to the host.
	out=$(vm_ns wg set "$UIF" private-key "$VM_RUN/keys/host$k.key" listen-port 51821 \
		peer "$ka" allowed-ips 10.79.0.11/32 endpoint 10.77.0.11:51821 \
		peer "$kb" allowed-ips 10.79.0.12/32 2>&1) ||
		{ fail "${p}interop: $USERSPACE_NAME configured" "$out"; return; }
	cp "$VM_RUN/keys/${a}1.key" "$VM_RUN/$a/wg1.key"
	cp "$VM_RUN/keys/${b}1.key" "$VM_RUN/$b/wg1.key"
	vm_check "${p}interop: wg1 in a (no endpoint for the host)" "$a" "
		ip link add wg1 type wireguard &&
		wg set wg1 private-key /out/wg1.key listen-port 51821 peer $kh allowed-ips 10.79.0.1/32 &&
		ip addr add 10.79.0.11/24 dev wg1 && ip link set wg1 up"
	vm_check "${p}interop: wg1 in b (endpoint 10.77.0.1:51821)" "$b" "
		ip link add wg1 type wireguard &&
		wg set wg1 private-key /out/wg1.key listen-port 51821 \
			peer $kh allowed-ips 10.79.0.1/32 endpoint 10.77.0.1:51821 &&
		ip addr add 10.79.0.12/24 dev wg1 && ip link set wg1 up"

	check "${p}interop: $USERSPACE_NAME initiates, ping kernel guest a" \
		vm_ns ping -c 3 -w 30 10.79.0.11
	out=$(vm_exec "$a" wg show wg1 endpoints)
	check_eq "${p}interop: kernel guest a learned the host's endpoint from its handshake" \
		"$kh	10.77.0.1:51821" "$out"
	vm_check "${p}interop: kernel guest a pings back $USERSPACE_NAME" "$a" /bb/ping -c 3 -w 30 10.79.0.1

	vm_check "${p}interop: kernel guest b initiates, ping $USERSPACE_NAME" "$b" \
		/bb/ping -c 3 -w 30 10.79.0.1
	out=$(vm_ns wg show "$UIF" endpoints | awk -v p="$kb" '$1 == p { print $2 }')
	check_eq "${p}interop: $USERSPACE_NAME learned b's endpoint from its handshake" \
		"10.77.0.12:51821" "$out"
	check "${p}interop: $USERSPACE_NAME pings back kernel guest b" vm_ns ping -c 3 -w 30 10.79.0.12
	out=$(vm_ns wg show "$UIF" dump)
	check "${p}interop: $USERSPACE_NAME shows a handshake with both guests" \
		test "$(dump_field "$out" "$ka" 5)" -gt 0 -a "$(dump_field "$out" "$kb" 5)" -gt 0
	# Next kernel: fresh peers on the same engine.
	vm_ns wg set "$UIF" peer "$ka" remove peer "$kb" remove
}

scenario_xdp_tcp() {
	local k=$1 a=$2 b=$3 p="$1: " sum out attach detach hx ht
	local pin=/sys/fs/bpf/lsvp
	vm_check "${p}xdp/tcp: HTTP server on port 80 in a" "$a" "
		mkdir -p /tmp/www && dd if=/dev/urandom of=/tmp/www/blob bs=1024 count=768 2>/dev/null &&
		{ setsid /bb/httpd -f -p 80 -h /tmp/www >/dev/null 2>&1 & echo \$! >/tmp/httpd.pid; }"
	sum=$(vm_exec "$a" "sha256sum /tmp/www/blob | cut -d' ' -f1")
	vm_check "${p}xdp/tcp: port 7777 refused before the programs attach" "$b" \
		"! curl -sS --max-time 10 -o /dev/null http://10.77.0.11:7777/blob"
	if [ "$(vm_exec "$a" uname -r | awk -F. '{ print ($1 > 6 || ($1 == 6 && $2 >= 6)) }')" = 1 ]; then
		attach="$VM_BUILD/vm/lsv-tcx-attach $pin/lsv_tc_snat eth0 egress ${pin}_link"
		detach="rm ${pin}_link"
	else
		attach="tc qdisc add dev eth0 clsact && tc filter add dev eth0 egress bpf direct-action object-pinned $pin/lsv_tc_snat"
		detach="tc qdisc del dev eth0 clsact"
	fi
	vm_check "${p}xdp/tcp: probe loaded with pinned maps, XDP native on virtio_net, TC egress" "$a" "
		mkdir -p ${pin}_maps &&
		bpftool prog loadall $VM_BUILD/vm/probe.bpf.o $pin pinmaps ${pin}_maps &&
		ip link set dev eth0 xdpdrv pinned $pin/lsv_xdp_dnat &&
		ip -d link show dev eth0 | grep -q 'prog/xdp' &&
		ip link show dev eth0 | head -n1 | grep -qw xdp && $attach"
	vm_check "${p}xdp/tcp: download, 768 KiB from port 7777 (XDP dnat, TC snat) arrives intact" "$b" "
		curl -sSf --max-time 120 -o /tmp/blob http://10.77.0.11:7777/blob &&
		test \"\$(sha256sum /tmp/blob | cut -d' ' -f1)\" = $sum"
	# Upload: data segments whose checksums XDP patched by hand, verified by a's TCP stack
	# in software (virtio_net without checksum offload hands it CHECKSUM_NONE).
	vm_check "${p}xdp/tcp: upload listener on port 80 in a" "$a" "
		kill \$(cat /tmp/httpd.pid) && sleep 0.5 &&
		{ setsid sh -c '/bb/nc -l -p 80 >/tmp/up; echo \$? >/tmp/up.done' >/dev/null 2>&1 & }"
	vm_check "${p}xdp/tcp: upload, 768 KiB to port 7777" "$b" \
		"sleep 0.5; timeout 120 bash -c 'cat /tmp/blob >/dev/tcp/10.77.0.11/7777'"
	vm_check "${p}xdp/tcp: upload arrives intact in a" "$a" "
		for i in \$(seq 100); do [ -f /tmp/up.done ] && break; sleep 0.2; done &&
		test \"\$(sha256sum /tmp/up | cut -d' ' -f1)\" = $sum"
	hx=$(vm_exec "$a" "bpftool -j map lookup pinned ${pin}_maps/lsv_probe_hits key 0 0 0 0")
	ht=$(vm_exec "$a" "bpftool -j map lookup pinned ${pin}_maps/lsv_probe_hits key 1 0 0 0")
	hx=$(sed -n 's/.*"value":\([0-9]*\).*/\1/p' <<<"$hx") ht=$(sed -n 's/.*"value":\([0-9]*\).*/\1/p' <<<"$ht")
	if [ "${hx:-0}" -gt 200 ] && [ "${ht:-0}" -gt 20 ]; then
		ok "${p}xdp/tcp: bpftool reads the pinned map: XDP rewrote $hx packets, TC $ht"
	else
		fail "${p}xdp/tcp: bpftool reads the pinned map: XDP and TC both rewrote packets" \
			"XDP count: ${hx:-none}, TC count: ${ht:-none}"
	fi
	out=$(vm_exec "$a" "nstat -az TcpInCsumErrors IpExtInCsumErrors | awk '/CsumErrors/ { s += \$2 } END { print s + 0 }'")
	check_eq "${p}xdp/tcp: no checksum errors in guest a" 0 "$out"
	vm_check "${p}xdp/tcp: programs detach" "$a" "ip link set dev eth0 xdpdrv off && $detach && rm -rf $pin ${pin}_maps"
}

# ---- main ------------------------------------------------------------------------------
mkdir -p "$VM_RUN"
if ! out=$(vm_net_up 2>&1); then
	fail "lab namespace $VM_NS with bridge" "$out"
	exit 1
fi
USERSPACE= USERSPACE_NAME=
if [ "$WG_USERSPACE" = auto ]; then
	# Lightscale's engine first (standalone, or as the CLI's subcommand), then wireguard-go.
	for cand in "$VM_BUILD/lightscale-wg" \
		"$VM_BUILD/lightscale wg-userspace" "wireguard-go -f"; do
		[ "${cand%% *}" = wireguard-go ] || [ -x "${cand%% *}" ] || continue
		if start_userspace "$cand"; then
			USERSPACE=$cand
			break
		fi
		echo "# $cand did not bring up $UIF; trying the next userspace WireGuard"
	done
elif start_userspace "$WG_USERSPACE"; then
	USERSPACE=$WG_USERSPACE
fi
if [ -n "$USERSPACE" ]; then
	HOST_PIDS+=("$USERSPACE_PID")
	USERSPACE_NAME=$(basename "${USERSPACE%% *}")
	vm_ns ip addr add 10.79.0.1/24 dev "$UIF"
	vm_ns ip link set "$UIF" up
	echo "# userspace WireGuard for interop: $USERSPACE"
fi

if want agent; then
	if control_up >"$VM_RUN/control-up.txt" 2>&1; then
		ok "control plane (lightscale-control serve --tls, embedded PostgreSQL) on $CONTROL_URL"
	else
		fail "control plane (lightscale-control serve --tls) starts in the lab namespace" \
			"$(cat "$VM_RUN/control-up.txt")"
		CONTROL_DIR=
	fi
fi

# A web server in the host namespace (the SNAT scenario's LAN host).
mkdir -p "$VM_RUN/www"
head -c 786432 /dev/urandom >"$VM_RUN/www/blob"
WWW_SUM=$(sha256sum "$VM_RUN/www/blob" | cut -d' ' -f1)
"${VM_NS_CMD[@]}" busybox httpd -f -p 10.77.0.1:8081 -h "$VM_RUN/www" >"$VM_RUN/httpd.log" 2>&1 </dev/null &
HOST_PIDS+=("$!")

slot=0
for k in $KERNELS; do
	kernel_up "$k" "$slot"
	slot=$((slot + 1))
done
for k in $KERNELS; do kernel_matrix "$k"; done
for k in $KERNELS; do
	run_kernel "$k"
	echo "# $k done at +$(($(date +%s) - T0))s"
done
if [ -n "$HOST_MATRIX_PID" ]; then
	wait "$HOST_MATRIX_PID"
	relay "host $(uname -r): " "$(cat "$VM_RUN/host-matrix.out")"
fi
echo "# check-vm wall time: $(($(date +%s) - T0))s for kernels: $KERNELS"
tap_done
