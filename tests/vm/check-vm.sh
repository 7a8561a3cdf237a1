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
# (lightscale-bpf) with XDP de-SNAT on a's virtio LAN NIC (every TCP checksum checked with
# tcpdump -vv; LAN host = busybox httpd at 10.77.0.1:8081), and the same end to end
# driven by `lightscale agent --engine kernel` in each guest against lightscale-control in
# the host namespace (control plane at 10.77.0.1:8080, network vmK, profile vm, ls-vm).
# Still TODO there: the agent's own pinned BPF maps (it does not load BPF yet).
#
# Every qemu runs under timeout(1); on any failure the guests' serial consoles are printed.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/vm/lib.sh

KERNELS=${KERNELS:-6.1 6.12}
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

# ---- NixOS test definitions: syntax ---------------------------------------------------
check "nixos-vm: every .nix file parses (nix-instantiate --parse)" bash tests/vm/nix-parse.sh

# ---- tools of the lab ------------------------------------------------------------------
for f in "$VM_BUILD/vm/probe.bpf.o" "$VM_BUILD/vm/lsv-tcx-attach"; do
	[ -e "$f" ] || { fail "lab tool $f is built (make $f)"; exit 1; }
done

# ---- the host kernel's matrix, in private net + mount namespaces (own bpffs) -----------
# It runs beside the guests; its results are reported at the end.
mkdir -p "$VM_RUN"
LIGHTSCALE_BUILD=$VM_BUILD unshare --mount --net bash -c \
	'mount -t bpf bpf /sys/fs/bpf && ip link set lo up && exec tests/vm/guest/matrix.sh' \
	>"$VM_RUN/host-matrix.out" 2>&1 </dev/null &
HOST_MATRIX_PID=$!
HOST_PIDS+=("$HOST_MATRIX_PID")

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

run_kernel() {
	local k=$1 a=${1//./}a b=${1//./}b out ka kb kh pa pb ph ia ia2 cc cc2 hs hs2
	local p="$k: "

	if out=$(vm_kernel "$k" 2>&1); then
		ok "${p}Debian kernel $(cat "$VMDIR/kernels/$k/release") unpacked, initramfs built"
	else
		fail "${p}Debian kernel fetched and unpacked" "$out"
		return
	fi
	local t=$(date +%s)
	vm_start "$a" "$k" 10.77.0.11 && vm_start "$b" "$k" 10.77.0.12
	if out=$(vm_wait_ready "$a" 2>&1 && vm_wait_ready "$b" 2>&1); then
		ok "${p}guests $a and $b boot to a shell ($(($(date +%s) - t))s)"
	else
		fail "${p}guests $a and $b boot to a shell" "$out"
		return
	fi
	check_eq "${p}guest runs kernel $k" "$(cat "$VMDIR/kernels/$k/release")" "$(cat "$VM_RUN/$a/ready")"

	# -- the kernel matrix: objects in guest a, tables in guest b, side by side (a verifier
	#    that gives up after a million instructions takes a while under TCG)
	vm_exec -t 900 "$b" tests/vm/guest/matrix.sh --tables 1/2 >"$VM_RUN/tables.$k.out" 2>&1 &
	local tables_pid=$!
	out=$(vm_exec -t 900 "$a" tests/vm/guest/matrix.sh --objects --tables 0/2 2>&1)
	relay "$p" "$out"
	wait "$tables_pid"
	relay "$p" "$(cat "$VM_RUN/tables.$k.out")"
	echo "# ${p}matrix done at +$(($(date +%s) - T0))s"

	# -- kernel WireGuard between the guests, configured with ip + wg
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

	# -- interop: kernel WireGuard in the guests, the userspace engine in the host namespace
	scenario_interop "$k" "$a" "$b"

	# -- XDP + TC rewrites under TCP through virtio_net (full checksums), pinned maps
	scenario_xdp_tcp "$k" "$a" "$b"

	# -- the project's SNAT with XDP de-SNAT on the virtio LAN NIC
	if [ -x "$VM_BUILD/lightscale-bpf" ]; then
		scenario_snat_xdp "$k" "$a" "$b"
	else
		echo "# ${p}snat/xdp not run: no $VM_BUILD/lightscale-bpf"
	fi

	# -- the same, driven by the agent: control plane in the host namespace, one
	#    `lightscale agent --engine kernel` per guest
	#    (after the hand-made wg0/wg1 are gone: the agent takes port 51820)
	if [ -n "$CONTROL_DIR" ]; then
		vm_exec "$a" "ip link del wg0; ip link del wg1" >/dev/null
		vm_exec "$b" "ip link del wg0; ip link del wg1" >/dev/null
		scenario_agent "$k" "$a" "$b"
	else
		echo "# TODO ${p}agent-driven end-to-end not run: $VM_BUILD/lightscale and lightscale-control are not both built"
	fi

	vm_stop "$a"
	vm_stop "$b"
}

# ---- agent-driven end-to-end --------------------------------------------------------
CONTROL_DIR= CONTROL_PID=
LS=$VM_BUILD/lightscale
control_up() {
	local t=0
	[ -x "$VM_BUILD/lightscale-control" ] && [ -x "$LS" ] || return 1
	CONTROL_DIR=$(mktemp -d "/tmp/lsv-$$-control.XXXXXX") && chmod 755 "$CONTROL_DIR" || return 1
	"${VM_NS_CMD[@]}" env LIGHTSCALE_PG_FAST=1 "$VM_BUILD/lightscale-control" serve --listen 10.77.0.1:8080 \
		--state-dir "$CONTROL_DIR" >"$VM_RUN/control.log" 2>&1 &
	CONTROL_PID=$!
	while ! vm_ns curl -sf http://10.77.0.1:8080/v1/health >/dev/null 2>&1; do
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

scenario_agent() {
	local k=$1 a=$2 b=$3 p="$1: agent: " net=vm${1//./} tok g out ad bd ka kb ia ia2 hs hs2 m
	if ! out=$(lsc network create "$net" 2>&1) ||
		! tok=$(lsc token create --network "$net" --uses 3 --json 2>&1 | jq -r .token) ||
		[ -z "$tok" ] || [ "$tok" = null ]; then
		fail "${p}network and enrollment token on the control plane" "$out" "$tok"
		return
	fi
	for g in "$a" "$b"; do
		vm_check "${p}init + register $g" "$g" "
			$(lsg init) --control http://10.77.0.1:8080 --token $tok --hostname $g >/dev/null &&
			$(lsg register) --json >/out/register.json"
		if ! vm_check "${p}lightscale agent --engine kernel starts in $g, makes ls-vm" "$g" "
			{ setsid $(lsg agent) --foreground --engine kernel --poll-wait 20 >/out/agent.log 2>&1 &
			  echo \$! >/tmp/agent.pid; }
			for i in \$(seq 150); do
				[ -e /run/lightscale/vm.pid ] && [ -e /sys/class/net/ls-vm ] && break; sleep 0.1
			done
			sleep 0.5; kill -0 \$(cat /tmp/agent.pid) && [ -e /sys/class/net/ls-vm ]"; then
			return
		fi
	done
	for g in "$a" "$b"; do
		vm_check "${p}$g has its peer configured from the netmap" "$g" "
			for i in \$(seq 150); do
				[ \$(wg show ls-vm peers | wc -l) -eq 1 ] && exit 0; sleep 0.2
			done; wg show ls-vm; exit 1"
		vm_check "${p}ls-vm in $g is a kernel WireGuard device" "$g" \
			"ip -d link show ls-vm | grep -qw wireguard"
	done
	ad=$(jq -r '.node.addresses[]' "$VM_RUN/$a/register.json" | grep -v : | head -n1)
	bd=$(jq -r '.node.addresses[]' "$VM_RUN/$b/register.json" | grep -v : | head -n1)
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
		$(lsg init vm3 3) --control http://10.77.0.1:8080 --token $tok --hostname ${a%a}c >/dev/null &&
		$(lsg register vm3 3) >/dev/null"
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

	# BPF maps pinned by the agent, read with bpftool in the guest.
	m=$(vm_exec "$a" "find /sys/fs/bpf/lightscale/vm -maxdepth 2 -type f 2>/dev/null | head -n1")
	if [ -n "$m" ]; then
		vm_check "${p}bpftool reads the agent's pinned map $m" "$a" "bpftool map dump pinned $m >/dev/null"
	else
		echo "# TODO ${p}no BPF maps pinned under /sys/fs/bpf/lightscale/vm (the agent does not load BPF yet): not checked"
	fi
	for g in "$a" "$b"; do
		vm_exec "$g" "kill \$(cat /tmp/agent.pid); $(lsg wg-down) >/dev/null 2>&1; true" >/dev/null
	done
}

# The project's SNAT router with XDP on a virtio LAN NIC (full checksums, unlike veth):
#   b (client) --wg0--> a (router: SNAT to 10.77.0.11 on eth0) --> 10.77.0.1:8081 (host)
# Replies enter a's eth0, where ls_xdp_lan_in undoes the SNAT before a forwards them into
# wg0. WireGuard marks decrypted packets CHECKSUM_UNNECESSARY, so b's stack would not notice
# a bad TCP checksum: tcpdump -vv in b checks every one.
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
	vm_check "${p}768 KiB download through SNAT + XDP de-SNAT arrives intact" "$b" "
		{ timeout 120 tcpdump -l -i wg0 -n -vv 'tcp and src host 10.77.0.1' >/tmp/td.txt 2>/dev/null &
		  echo \$! >/tmp/td.pid; }
		sleep 1
		curl -sSf --max-time 120 -o /tmp/snat-blob http://10.77.0.1:8081/blob &&
		test \"\$(sha256sum /tmp/snat-blob | cut -d' ' -f1)\" = $WWW_SUM"
	out=$(vm_exec "$b" "sleep 1; kill \$(cat /tmp/td.pid); sleep 0.5
		echo \$(grep -c 'cksum 0x[0-9a-f]* (correct)' /tmp/td.txt) \$(grep -c 'incorrect' /tmp/td.txt)")
	read -r n bad <<<"$out"
	if [ "${n:-0}" -gt 300 ] && [ "${bad:-1}" = 0 ]; then
		ok "${p}every TCP checksum after the XDP rewrite is correct ($n packets, tcpdump -vv in b)"
	else
		fail "${p}every TCP checksum after the XDP rewrite is correct" "correct: ${n:-?}, incorrect: ${bad:-?}" \
			"$(vm_exec "$b" "grep -m5 -B1 incorrect /tmp/td.txt")"
	fi
	out=$(vm_exec "$a" "echo \$(bpftool -j prog show name ls_xdp_lan_in | jq '.run_cnt // 0')" \
		"\$($LSB --pin-dir $pin status --json | jq '[.counters[] | select(.reason == \"snat_reply\") | .packets] | add // 0')")
	read -r n m <<<"$out"
	if [ "${n:-0}" -gt 300 ] && [ "${m:-0}" -gt 300 ]; then
		ok "${p}XDP ls_xdp_lan_in ran on $n packets, $m SNAT replies translated"
	else
		fail "${p}XDP ls_xdp_lan_in ran and translated the replies" "run_cnt: ${n:-?}, snat_reply: ${m:-?}"
	fi
	vm_check "${p}lightscale-bpf down" "$a" "$LSB --pin-dir $pin down && ! ip link show dev eth0 | head -n1 | grep -qw xdp"
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

if [ -x "$LS" ] && [ -x "$VM_BUILD/lightscale-control" ]; then
	if control_up >"$VM_RUN/control-up.txt" 2>&1; then
		ok "control plane (lightscale-control, embedded PostgreSQL) on 10.77.0.1:8080"
	else
		fail "control plane (lightscale-control) starts in the lab namespace" "$(cat "$VM_RUN/control-up.txt")"
		CONTROL_DIR=
	fi
fi

# A web server in the host namespace (the SNAT scenario's LAN host).
mkdir -p "$VM_RUN/www"
head -c 786432 /dev/urandom >"$VM_RUN/www/blob"
WWW_SUM=$(sha256sum "$VM_RUN/www/blob" | cut -d' ' -f1)
"${VM_NS_CMD[@]}" busybox httpd -f -p 10.77.0.1:8081 -h "$VM_RUN/www" >"$VM_RUN/httpd.log" 2>&1 </dev/null &
HOST_PIDS+=("$!")

for k in $KERNELS; do
	run_kernel "$k"
	echo "# $k done at +$(($(date +%s) - T0))s"
done
wait "$HOST_MATRIX_PID"
relay "host $(uname -r): " "$(cat "$VM_RUN/host-matrix.out")"
echo "# check-vm wall time: $(($(date +%s) - T0))s for kernels: $KERNELS"
tap_done
