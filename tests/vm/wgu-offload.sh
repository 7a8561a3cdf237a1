#!/usr/bin/env bash
# The userspace engine (lightscale-wg) on Debian kernels in a qemu guest: TUN offloads
# with and without USO (TUNSETOFFLOAD takes TUN_F_USO4/6 from 6.2 on; 6.1 refuses it and
# the engine falls back to TSO only), traffic both ways intact, no IP fragments.
#
#   BUILD=build KERNELS="6.1 6.12" tests/run.sh tests/vm/wgu-offload.sh    (default both)
#
# Per kernel K one guest; its peer is the same engine in the lab namespace (host kernel):
#
#        guest g (Debian K)                         namespace lsvb-$$ (host kernel)
#        lightscale-wg wg0 10.88.0.11/24            lightscale-wg lsvw$$ 10.88.0.1/24
#        eth0 10.77.0.11 ---- tap lsvt0 ---- bridge lsvbr 10.77.0.1
#                              (vnet_hdr=off: frames at wire size, tcpdump on the tap)
#
# What a user checks, per kernel: the engine's log line and `--stats --json` say TSO on and
# USO off (6.1) / on (6.12); `wg show wg0` against its UAPI socket shows the handshake and
# transfer; iperf3 TCP and UDP (1392-byte datagrams, the largest the 1420 MTU carries) both
# ways; 64 KiB UDP_SEGMENT sends from the guest's TUN side and back, every datagram
# checked (tests/vm/guest/wgu-udpgso.py); USO super-packets reach the engine only where
# USO is on; IpFragCreates unchanged in guest and namespace and no outer packet above
# 1500 bytes or fragmented on the tap.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
VM_NS=${VM_NS:-lsvb-$$}
source tests/vm/lib.sh

KERNELS=${KERNELS:-6.1 6.12}
WGU=$VM_BUILD/lightscale-wg
HIF=lsvw$$
GUDP=tests/vm/guest/wgu-udpgso.py
declare -a HOST_PIDS=()
T0=$(date +%s)

cleanup() {
	local p
	[ -n "${SUB:-}" ] && kill "$SUB" 2>/dev/null && wait "$SUB" 2>/dev/null
	[ "$_tap_failed" -ne 0 ] && [ -f "$VM_RUN/host-engine.log" ] &&
		{ echo "# ---- host engine log ----"; tail -n 20 "$VM_RUN/host-engine.log" | sed 's/^/#   /'; }
	vm_cleanup
	for p in "${HOST_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${HOST_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -f "/var/run/wireguard/$HIF.sock"
	[ "$_tap_failed" -eq 0 ] && rm -rf "$VM_RUN"
	return 0
}
trap cleanup EXIT
trap "exit 130" INT TERM

for t in "$WGU" /usr/bin/iperf3 /usr/bin/python3 /usr/bin/tcpdump /usr/bin/wg; do
	[ -x "$t" ] || { fail "$t exists (make $VM_BUILD/lightscale-wg; apt-get install iperf3 tcpdump wireguard-tools)"; tap_done; exit 1; }
done
mkdir -p "$VM_RUN/keys"
if ! out=$(vm_net_up 2>&1); then
	fail "lab namespace $VM_NS with bridge lsvbr" "$out"
	exit 1
fi

key() {
	local d=$VM_RUN/keys
	[ -f "$d/$1.key" ] || { (umask 077 && wg genkey >"$d/$1.key") && wg pubkey <"$d/$1.key" >"$d/$1.pub"; }
	cat "$d/$1.pub"
}
# Ip FragCreates of the calling network namespace (/proc/net/snmp).
FRAGS='awk "/^Ip:/ { if (!h) { for (i = 1; i <= NF; i++) if (\$i == \"FragCreates\") c = i; h = 1 } else print \$c }" /proc/net/snmp'
frags_host() { vm_ns bash -c "$FRAGS"; }
jnum() { jq -r "$1 // \"missing\"" <<<"$2" 2>/dev/null || echo "no JSON"; }
dump_field() { awk -v p="$2" -v f="$3" '$1 == p { print $f }' <<<"$1"; }

# ---- the engine in the namespace: the guests' peer ------------------------------------
"${VM_NS_CMD[@]}" env LIGHTSCALE_LOG=info "$WGU" "$HIF" --foreground >"$VM_RUN/host-engine.log" 2>&1 &
HOST_ENGINE=$!
HOST_PIDS+=("$HOST_ENGINE")
kh=$(key host)
for _ in $(seq 50); do vm_ns wg show "$HIF" >/dev/null 2>&1 && break; sleep 0.1; done
if out=$(vm_ns wg set "$HIF" private-key "$VM_RUN/keys/host.key" listen-port 51820 2>&1 &&
	vm_ns ip addr add 10.88.0.1/24 dev "$HIF" 2>&1 && vm_ns ip link set "$HIF" up 2>&1); then
	ok "peer engine $HIF up in the lab namespace (host kernel $(uname -r))"
else
	fail "peer engine $HIF up in the lab namespace" "$out" "$(cat "$VM_RUN/host-engine.log")"
	exit 1
fi
"${VM_NS_CMD[@]}" iperf3 -s -B 10.88.0.1 -p 5201 >"$VM_RUN/iperf3-server.log" 2>&1 &
HOST_PIDS+=("$!")

# udp_result NAME N RECEIVER-JSON-FILE SENDER-OUTPUT: every datagram arrived, intact, 1392 bytes.
udp_result() {
	local got
	got=$(jq -rc '"datagrams=\(.datagrams) corrupt=\(.corrupt) duplicates=\(.duplicates) sizes=\(.sizes)"' "$3" 2>&1)
	if [ "$got" = "datagrams=$2 corrupt=0 duplicates=0 sizes={\"1392\":$2}" ]; then
		ok "$1"
	else
		fail "$1" "receiver: $got" "sender: $4"
	fi
}

run_kernel() {
	local k=$1 g=g${1//./} p="$1: " out kg t fg0 fh0 fg1 fh1 st uso_want n

	if out=$(vm_kernel "$k" 2>&1); then
		ok "${p}Debian kernel $(cat "$VMDIR/kernels/$k/release") unpacked, initramfs built"
	else
		fail "${p}Debian kernel fetched and unpacked" "$out"
		return
	fi
	t=$(date +%s)
	vm_start "$g" "$k" 10.77.0.11
	if ! out=$(vm_wait_ready "$g" 2>&1); then
		fail "${p}guest boots to a shell" "$out"
		return
	fi
	ok "${p}guest boots to a shell ($(($(date +%s) - t))s, TCG)"
	check_eq "${p}guest runs kernel $k" "$(cat "$VMDIR/kernels/$k/release")" "$(cat "$VM_RUN/$g/ready")"

	# -- the engine in the guest, configured with wg through its UAPI socket
	kg=$(key "$g")
	cp "$VM_RUN/keys/$g.key" "$VM_RUN/$g/wg0.key"
	vm_check "${p}lightscale-wg wg0 starts in the guest and answers on its UAPI socket" "$g" "
		modprobe tun &&
		{ LIGHTSCALE_LOG=info setsid $WGU wg0 --foreground >/out/engine.log 2>&1 & echo \$! >/tmp/engine.pid; }
		for i in \$(seq 100); do wg show wg0 >/dev/null 2>&1 && break; sleep 0.1; done
		wg show wg0 >/dev/null && kill -0 \$(cat /tmp/engine.pid)" || return
	vm_check "${p}wg set wg0: key, port, peer with endpoint; address, up" "$g" "
		wg set wg0 private-key /out/wg0.key listen-port 51820 \
			peer $kh allowed-ips 10.88.0.1/32 endpoint 10.77.0.1:51820 &&
		ip addr add 10.88.0.11/24 dev wg0 && ip link set wg0 up"
	vm_ns wg set "$HIF" peer "$kg" allowed-ips 10.88.0.11/32 endpoint 10.77.0.11:51820

	# -- what the engine says about its offloads
	if [ "$(awk -F. '{ print ($1 > 6 || ($1 == 6 && $2 >= 2)) }' <<<"$k")" = 1 ]; then
		uso_want=1
		out=$(grep -o 'TUN wg0 (.*)' "$VM_RUN/$g/engine.log")
		check_eq "${p}engine log: TSO on, USO on" "TUN wg0 (mtu 1420, TSO on, USO on)" "$out"
	else
		uso_want=0
		out=$(grep -o 'TUN wg0 (.*)' "$VM_RUN/$g/engine.log")
		check_eq "${p}engine log: TSO on, USO off (the fallback)" \
			"TUN wg0 (mtu 1420, TSO on, USO off (kernel < 6.2))" "$out"
	fi
	st=$(vm_exec "$g" "$WGU" --stats wg0 --json)
	check_eq "${p}wg-userspace --stats --json: tun_tso 1, tun_uso $uso_want, udp_gso 1" \
		"1 $uso_want 1" "$(jnum .tun_tso "$st") $(jnum .tun_uso "$st") $(jnum .udp_gso "$st")"

	# -- traffic; fragments counted before and after, outer packets captured on the tap
	vm_check "${p}ping the peer over the tunnel" "$g" /bb/ping -c 3 -w 30 10.88.0.1
	check "${p}the peer pings the guest back" vm_ns ping -c 3 -w 30 10.88.0.11
	fg0=$(vm_exec "$g" "$FRAGS") fh0=$(frags_host)
	"${VM_NS_CMD[@]}" tcpdump -i "${VM_TAP[$g]}" -s 64 -U -w "$VM_RUN/$g.pcap" udp port 51820 \
		>"$VM_RUN/$g.tcpdump.log" 2>&1 &
	local td=$!
	sleep 1

	local dir rev
	for dir in "guest -> peer:" "peer -> guest:-R"; do
		rev=${dir#*:} dir=${dir%%:*}
		out=$(vm_exec -t 90 "$g" "timeout 40 iperf3 -c 10.88.0.1 -p 5201 -t 4 -J $rev" 2>&1)
		local sent rcvd
		sent=$(jnum .end.sum_sent.bytes "$out") rcvd=$(jnum .end.sum_received.bytes "$out")
		if [ "${rcvd:-0}" -gt 262144 ] 2>/dev/null && [ "$sent" -ge "$rcvd" ] 2>/dev/null; then
			ok "${p}iperf3 TCP $dir: $((rcvd / 1024)) KiB received, $(jq -r '.end.sum_received.bits_per_second / 1e6 | floor' <<<"$out") Mbit/s, $(jnum .end.sum_sent.retransmits "$out") retransmits"
		else
			fail "${p}iperf3 TCP $dir" "$(tail -n 30 <<<"$out")"
		fi
		out=$(vm_exec -t 90 "$g" "timeout 40 iperf3 -c 10.88.0.1 -p 5201 -u -b 8M -l 1392 -t 4 -J $rev 2>/tmp/iperf3.err" 2>&1)
		local pk lost rc
		pk=$(jnum .end.sum_sent.packets "$out") lost=$(jnum .end.sum_received.lost_packets "$out")
		rc=$(jnum .end.sum_received.packets "$out")
		# Lost = gaps in the sequence; up to 2% is UDP on a TCG guest, more is not. iperf3
		# stops counting when the sender's time is up, so what a lagging guest still had in
		# flight is not received and not lost either: at least 90% must arrive.
		if [ "${pk:-0}" -gt 500 ] 2>/dev/null && [ $((lost * 50)) -le "$pk" ] &&
			[ $((rc * 10)) -ge $((pk * 9)) ] 2>/dev/null; then
			ok "${p}iperf3 UDP $dir, 1392-byte datagrams: $pk sent, $rc received, $lost lost in gaps"
		else
			fail "${p}iperf3 UDP $dir, 1392-byte datagrams" "sent $pk, received $rc, lost $lost" "$(head -c 3000 <<<"$out")"
		fi
	done

	# -- 64 KiB UDP_SEGMENT sends: 40 x 1392 bytes per send, 60 sends each way
	n=2400
	"${VM_NS_CMD[@]}" /usr/bin/python3 "$GUDP" recv 10.88.0.1 6001 $n 10 >"$VM_RUN/$g.udprecv" 2>&1 &
	local rp=$!
	sleep 0.5
	out=$(vm_exec -t 90 "$g" timeout 40 /usr/bin/python3 "$GUDP" send 10.88.0.1 6001 60 1392 40 2>&1)
	wait "$rp"
	udp_result "${p}UDP GSO guest -> peer: $n datagrams of 1392 bytes intact" $n "$VM_RUN/$g.udprecv" "$out"
	vm_exec "$g" "setsid /usr/bin/python3 $GUDP recv 10.88.0.11 6002 $n 10 >/out/udprecv 2>&1 &" >/dev/null
	sleep 1
	out=$(vm_ns /usr/bin/python3 "$GUDP" send 10.88.0.11 6002 60 1392 40 2>&1)
	for _ in $(seq 300); do [ -s "$VM_RUN/$g/udprecv" ] && break; sleep 0.1; done
	udp_result "${p}UDP GSO peer -> guest: $n datagrams of 1392 bytes intact" $n "$VM_RUN/$g/udprecv" "$out"

	sleep 1
	kill "$td" 2>/dev/null
	wait "$td" 2>/dev/null

	# -- no fragments anywhere
	fg1=$(vm_exec "$g" "$FRAGS") fh1=$(frags_host)
	check_eq "${p}IpFragCreates unchanged in the guest and the namespace" \
		"guest $fg0 ns $fh0" "guest $fg1 ns $fh1"
	local all big
	all=$(tcpdump -r "$VM_RUN/$g.pcap" -n 2>/dev/null | wc -l)
	big=$(tcpdump -r "$VM_RUN/$g.pcap" -n 'greater 1515 or (ip[6:2] & 0x3fff != 0)' 2>/dev/null | wc -l)
	if [ "$all" -gt 5000 ]; then
		check_eq "${p}on the tap: no outer packet above 1500 bytes or fragmented (of $all)" 0 "$big"
	else
		fail "${p}on the tap: WireGuard packets captured" "$all packets; $(cat "$VM_RUN/$g.tcpdump.log")"
	fi

	# -- the engine's counters: TSO used; USO used only where the kernel has it
	st=$(vm_exec "$g" "$WGU" --stats wg0 --json)
	local tso udp
	tso=$(jnum .tx_tun_gso_tcp "$st") udp=$(jnum .tx_tun_gso_udp "$st")
	if [ "$tso" -gt 0 ] 2>/dev/null; then
		ok "${p}TSO super-packets taken from the TUN device: $tso"
	else
		fail "${p}TSO super-packets taken from the TUN device" "$st"
	fi
	if [ $uso_want = 1 ]; then
		if [ "$udp" -ge 60 ] 2>/dev/null; then
			ok "${p}USO in use: $udp UDP super-packets taken from the TUN device"
		else
			fail "${p}USO in use: UDP super-packets taken from the TUN device" "$st"
		fi
	else
		check_eq "${p}no USO packets on a kernel without USO (the kernel segmented)" 0 "$udp"
	fi
	check_eq "${p}no packet the engine could not split, no send errors" "0 0" \
		"$(jnum .tx_drop_malformed "$st") $(jnum .tx_drop_send_error "$st")"
	# The guest's NIC has no checksum offload (vnet_hdr=off), so the kernel refuses UDP GSO
	# sends with EIO and the engine sends datagrams one by one from then on.
	echo "# ${p}engine's UDP GSO after the traffic: $(jnum .udp_gso "$st"); UDP GRO: $(jnum .udp_gro "$st")"

	# -- wg show against the engine's UAPI socket
	out=$(vm_exec "$g" wg show wg0 dump)
	local got
	got="endpoint=$(dump_field "$out" "$kh" 3) allowed=$(dump_field "$out" "$kh" 4)"
	got+=" handshake=$([ "$(dump_field "$out" "$kh" 5)" -gt 0 ] 2>/dev/null && echo yes || echo no)"
	got+=" rx>1MB=$([ "$(dump_field "$out" "$kh" 6)" -gt 1048576 ] 2>/dev/null && echo yes || echo no)"
	got+=" tx>1MB=$([ "$(dump_field "$out" "$kh" 7)" -gt 1048576 ] 2>/dev/null && echo yes || echo no)"
	check_eq "${p}wg show wg0 dump in the guest: the peer, its handshake and transfer" \
		"endpoint=10.77.0.1:51820 allowed=10.88.0.1/32 handshake=yes rx>1MB=yes tx>1MB=yes" "$got"
	echo "# ${p}done at +$(($(date +%s) - T0))s"

	vm_ns wg set "$HIF" peer "$kg" remove
	vm_stop "$g"
}

# relay FILE: a kernel's TAP lines (from its subshell) re-emitted as ours.
relay() {
	local line last= detail=()
	while IFS= read -r line; do
		if [[ $line =~ ^(not\ )?ok\ [0-9]+\ -\ (.*)$ ]]; then
			[ -n "$last" ] && fail "$last" "${detail[@]}"
			last= detail=()
			if [ -n "${BASH_REMATCH[1]}" ]; then last=${BASH_REMATCH[2]}; else ok "${BASH_REMATCH[2]}"; fi
		elif [ -n "$last" ] && [[ $line == "# "* ]]; then
			detail+=("${line#\# }")
		else
			echo "$line"
		fi
	done <"$1"
	[ -n "$last" ] && fail "$last" "${detail[@]}"
	return 0
}

# Each kernel runs in a subshell whose guest it stops itself. When its traffic fails and
# the guest's console shows the virtio-net TX watchdog (qemu under TCG stopped completing
# the guest's transmissions; seen on a host at load 12), it runs once more in a fresh guest.
SUB=
for k in $KERNELS; do
	for attempt in 1 2; do
		(
			trap '[ "$_tap_failed" -ne 0 ] && vm_dump_logs; vm_stop_all' EXIT
			trap 'exit 130' INT TERM
			_tap_n=0 _tap_failed=0
			run_kernel "$k"
		) >"$VM_RUN/kernel-$k.tap" 2>&1 &
		SUB=$!
		wait "$SUB"
		SUB=
		if [ $attempt = 1 ] && grep -q '^not ok' "$VM_RUN/kernel-$k.tap" &&
			grep -qs 'NETDEV WATCHDOG' "$VM_RUN/g${k//./}/serial.log"; then
			echo "# $k: the guest's virtio-net TX queue stalled (NETDEV WATCHDOG: qemu/TCG); once more in a fresh guest. First attempt:"
			grep -E '^(not )?ok' "$VM_RUN/kernel-$k.tap" | sed 's/^/#   /'
			continue
		fi
		break
	done
	relay "$VM_RUN/kernel-$k.tap"
done
echo "# total $(($(date +%s) - T0))s"
tap_done
