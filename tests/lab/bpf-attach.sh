#!/usr/bin/env bash
# Lab: attaching, pinning, locking and adopting.
#
#   netns lsb-$$-n:  lsbtun0 (TUN, L3 overlay stand-in)   lsbv0 <-> lsbv1 (veth)
#                    lsbv2 10.9.0.1 (veth, Ethernet overlay) <-> lsbv3 10.9.0.2, 192.168.2.5 in lsb-$$-m
#
# One load, two kinds of overlay device: the programs on lsbtun0 parse IP at offset 0, those
# on lsbv2 after a 14-byte Ethernet header, each translating 10.20x.1.0/24 -> 192.168.x.0/24.
#
# tcx is chosen automatically on this kernel; LIGHTSCALE_BPF_TC_MODE=clsact forces the
# clsact path (the one Debian 12's 6.1 kernel takes); XDP on the veth. A live `run`
# holds the pin dir's lock; killed with -9, a restarted run adopts the pinned links
# (bpf_link_update: link ids stay, program ids change) and `down` removes it all.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lab/bpf-lib.sh

lsb_ns n
in_ns n ip tuntap add mode tun lsbtun0
in_ns n ip link set lsbtun0 up
ip -n lsb-$$-n link add lsbv0 type veth peer name lsbv1
ip -n lsb-$$-n link set lsbv0 up
ip -n lsb-$$-n link set lsbv1 up
P=$(lsb_pin a)
T="$LSB --pin-dir $P"

check "attach overlay on a TUN device (auto mode)" in_ns n $T attach lsbtun0 overlay
check "attach LAN with clsact forced" in_ns n env LIGHTSCALE_BPF_TC_MODE=clsact $T attach lsbv0 lan
out=$(in_ns n $T attach lsbv1 lan --mode xdp 2>&1)
echo "$out" | grep -q "virtual device: TC only" && ok "XDP is declined on a veth (partial checksums)" || fail "XDP declined on veth" "$out"
check "attach LAN with XDP in front, forced" in_ns n env LIGHTSCALE_BPF_XDP_FORCE=1 $T attach lsbv1 lan --mode xdp
st=$(in_ns n $T status --json)
modes=$(echo "$st" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(sorted(a["interface"]+":"+a["hook"]+":"+a["mode"] for a in d["attachments"] if a["attached"])))')
check_eq "status lists every attachment with its mode" \
	"lsbtun0:overlay_in:tcx lsbtun0:overlay_out:tcx lsbv0:lan_in:clsact lsbv0:lan_out:clsact lsbv1:lan_in:tcx lsbv1:lan_out:tcx lsbv1:xdp_lan_in:xdp" "$modes"
# lightscale-bpf net: every attachment of the netns from the kernel, tcx included (bpftool
# 7.1's `bpftool net` omits tcx; `bpftool link show` lists tcx links without the device name)
nj=$(in_ns n $LSB net --json)
seen=$(echo "$nj" | python3 -c 'import json,sys; print(" ".join(sorted("%s:%s:%s:%s" % (i["interface"], a["hook"], a["mode"], a["program"]) for i in json.load(sys.stdin) for a in i["attachments"])))')
check_eq "net --json: every hook of every interface, tcx, clsact and XDP" \
	"lsbtun0:tcx/egress:tcx:ls_overlay_out lsbtun0:tcx/ingress:tcx:ls_overlay_in lsbv0:clsact/egress:clsact:ls_lan_out lsbv0:clsact/ingress:clsact:ls_lan_in lsbv1:tcx/egress:tcx:ls_lan_out lsbv1:tcx/ingress:tcx:ls_lan_in lsbv1:xdp:driver:ls_xdp_lan_in" "$seen"
lid=$(echo "$nj" | python3 -c 'import json,sys; print([a.get("link_id") for i in json.load(sys.stdin) for a in i["attachments"] if i["interface"]=="lsbtun0" and a["hook"]=="tcx/ingress"][0])')
check_eq "net --json: the tcx link id is the pinned link's" "$(bpftool link show pinned "$P/links/lsbtun0/overlay_in" | head -1 | cut -d: -f1)" "$lid"
prio=$(echo "$nj" | python3 -c 'import json,sys; print([(a["priority"], a["handle"], a["direct_action"]) for i in json.load(sys.stdin) for a in i["attachments"] if i["interface"]=="lsbv0" and a["hook"]=="clsact/ingress"][0])')
check_eq "net --json: the clsact filter's priority, handle and direct-action" "($(in_ns n tc filter show dev lsbv0 ingress | grep -o 'pref [0-9]*' | head -1 | cut -d' ' -f2), 1, True)" "$prio"
net=$(in_ns n bpftool net)
echo "$net" | grep -q "lsbv0.*clsact/ingress ls_lan_in" && echo "$net" | grep -q "lsbv0.*clsact/egress ls_lan_out" &&
	ok "bpftool net shows the clsact programs" || fail "bpftool net shows the clsact programs" "$net"
echo "$net" | grep -q "lsbv1.*driver" && ok "bpftool net shows XDP (native) on the veth" || fail "bpftool net shows XDP" "$net"
links=$(bpftool link show 2>/dev/null | grep -c "prog .*ls_overlay_\|name ls_overlay")
[ -e "$P/links/lsbtun0/overlay_in" ] && ok "tcx link pinned under links/lsbtun0/overlay_in" || fail "tcx link pinned"
bpftool map dump pinned "$P/config" | grep -q '"wg_port"' && ok "bpftool map dump prints field names (BTF)" ||
	fail "bpftool map dump prints field names" "$(bpftool map dump pinned "$P/config" 2>&1 | head -5)"

# the L3 path on a real TUN device: a ping leaves lsbtun0 through ls_overlay_out
in_ns n ip addr add 100.64.0.1/24 dev lsbtun0
before=$(lsb_counter "$P" dispatch pass)
in_ns n ping -c 3 -W 0.2 -i 0.2 100.64.0.9 >/dev/null 2>&1
after=$(lsb_counter "$P" dispatch pass)
[ $((after - before)) -ge 3 ] && ok "packets on the TUN device pass through the dispatcher ($((after - before)))" ||
	fail "TUN packets counted" "before $before after $after"

# per-attachment L2: the overlay role on an Ethernet device too, in the same load
lsb_ns m
ip link add lsbv2 netns lsb-$$-n type veth peer name lsbv3 netns lsb-$$-m
ip -n lsb-$$-n link set lsbv2 up
ip -n lsb-$$-m link set lsbv3 up
ip -n lsb-$$-n addr add 10.9.0.1/24 dev lsbv2
ip -n lsb-$$-m addr add 10.9.0.2/24 dev lsbv3
ip -n lsb-$$-m addr add 192.168.2.5/24 dev lsbv3
ip -n lsb-$$-m route add 100.64.0.0/24 via 10.9.0.1
ip -n lsb-$$-n route add 10.201.1.0/24 dev lsbtun0
ip -n lsb-$$-n route add 10.202.1.0/24 via 10.9.0.2
check "attach overlay on an Ethernet device (veth) beside the TUN" in_ns n $T attach lsbv2 overlay
check "translate 10.201.1.0/24 (via TUN) and 10.202.1.0/24 (via veth)" in_ns n $T set --stages translate-client \
	--map 10.201.1.0/24=192.168.1.0/24 --map 10.202.1.0/24=192.168.2.0/24
l2s=$(in_ns n $T status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(sorted("%s:%s:%d" % (a["interface"], a["hook"], a["l2"]) for a in d["attachments"] if a["hook"].startswith("overlay"))))')
check_eq "status: L2 length per attachment (TUN 0, veth 14)" \
	"lsbtun0:overlay_in:0 lsbtun0:overlay_out:0 lsbv2:overlay_in:14 lsbv2:overlay_out:14" "$l2s"
# the TUN side: read what leaves lsbtun0 (a persistent TUN without a reader drops it)
cat >"$BUILD/test-logs/lsb-$$-tunread.py" <<'PY'
import fcntl, os, select, socket, struct, sys
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack("16sH", b"lsbtun0", 0x0001 | 0x1000))  # TUNSETIFF, IFF_TUN|IFF_NO_PI
print("ready", flush=True)
while select.select([fd], [], [], 10)[0]:
    pkt = os.read(fd, 2048)
    if pkt[0] >> 4 == 4 and pkt[9] == 1:  # IPv4 ICMP
        print(socket.inet_ntoa(pkt[12:16]), socket.inet_ntoa(pkt[16:20]), flush=True)
        break
PY
in_ns n python3 "$BUILD/test-logs/lsb-$$-tunread.py" >"$BUILD/test-logs/lsb-$$-tunread.log" 2>&1 &
TUNR=$!
LSB_PIDS+=("$TUNR")
lsb_wait_ready "$BUILD/test-logs/lsb-$$-tunread.log"
in_ns n ping -c 1 -W 1 10.201.1.7 >/dev/null 2>&1
wait "$TUNR" 2>/dev/null
check_eq "L3 device: the packet left lsbtun0 as 100.64.0.1 -> 192.168.1.7" "100.64.0.1 192.168.1.7" \
	"$(grep -v ready "$BUILD/test-logs/lsb-$$-tunread.log")"
# the veth side: the far end sees the real address and its reply is translated back
before=$(lsb_counter "$P" translate translated)
in_ns n ping -c 3 -i 0.2 -W 1 10.202.1.5 >/dev/null 2>&1 && ok "Ethernet device: ping 10.202.1.5 reaches 192.168.2.5 and back" ||
	fail "Ethernet device: ping through translation" "$(in_ns n $T status 2>&1 | tail -15)"
after=$(lsb_counter "$P" translate translated)
check_eq "both directions translated on the veth (3 requests + 3 replies)" "6" "$((after - before))"
in_ns n $T set --stages metrics

# lock: a live agent holds the pin dir
rm -f "$BUILD/test-logs/bpf-attach-run.log"
nsenter --net=/run/netns/lsb-$$-n $T run --stages metrics >"$BUILD/test-logs/bpf-attach-run.log" 2>&1 &
RUN=$!
LSB_PIDS+=("$RUN")
lsb_wait_ready "$BUILD/test-logs/bpf-attach-run.log"
out=$(in_ns n $T set --stages metrics 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q "held by another live agent (pid $RUN" && ok "a second loader is refused while the first lives" ||
	fail "second loader refused" "$out"
held=$($T status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["agent"]["held"])')
check_eq "status reports the live agent" "True" "$held"

link_before=$(bpftool link show pinned "$P/links/lsbtun0/overlay_in" | head -1 | cut -d: -f1)
prog_before=$(bpftool link show pinned "$P/links/lsbtun0/overlay_in" | grep -o "prog [0-9]*")
kill -9 "$RUN"
wait "$RUN" 2>/dev/null
check "after kill -9 the lock is free again" in_ns n $T set --stages metrics
link_after=$(bpftool link show pinned "$P/links/lsbtun0/overlay_in" | head -1 | cut -d: -f1)
prog_after=$(bpftool link show pinned "$P/links/lsbtun0/overlay_in" | grep -o "prog [0-9]*")
check_eq "restart adopts the pinned link (same link id)" "$link_before" "$link_after"
[ "$prog_before" != "$prog_after" ] && ok "restart updated the link to its new program ($prog_before -> $prog_after)" ||
	fail "program updated" "$prog_before $prog_after"
tcprog=$(in_ns n bpftool net | grep -c "lsbv0.*clsact/ingress ls_lan_in")
check_eq "the clsact filter was replaced in place, not doubled" "1" "$tcprog"

check "detach the TUN device" in_ns n $T detach lsbtun0
[ ! -e "$P/links/lsbtun0" ] && ok "its pins are gone" || fail "pins gone"
check "down" in_ns n $T down
[ ! -e "$P" ] && ok "down removed the pin directory" || fail "pin dir removed" "$(ls -R "$P")"
net=$(in_ns n bpftool net)
echo "$net" | grep -q "ls_" && fail "nothing of ours is attached after down" "$net" || ok "nothing of ours is attached after down"
tap_done
