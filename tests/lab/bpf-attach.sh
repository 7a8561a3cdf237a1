#!/usr/bin/env bash
# Lab: attaching, pinning, locking and adopting.
#
#   netns lsb-$$-n:  lsbtun0 (TUN, L3 overlay stand-in)   lsbv0 <-> lsbv1 (veth)
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
