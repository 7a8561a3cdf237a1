#!/usr/bin/env bash
# The kernel matrix, run inside a guest (or on the host in private net + mount namespaces):
# every BPF object of the build loads (the verifier accepts every program), every XDP program
# attaches in native mode and every TC program attaches (tcx on >= 6.6, clsact before), and
# every tests/bpf table passes on this kernel.
#
#   lsvm0 <-veth-> lsvm1        attach point (veth takes native XDP, clsact and tcx)
#
# BPF objects: $LIGHTSCALE_BUILD/bpf/*.bpf.o (the project's) and $LIGHTSCALE_BUILD/vm/*.bpf.o
# (the lab's own probe). Tables: every executable in $LIGHTSCALE_BUILD/tests/bpf/.
#
#   matrix.sh                        objects and every table
#   matrix.sh [--objects] [--tables I/N]   the objects, and/or the tables whose index is I
#                                    modulo N (the VM lab spreads them over two guests)
set -u
DO_OBJECTS=1 DO_TABLES=1 TPART=0 TPARTS=1
if [ $# -gt 0 ]; then
	DO_OBJECTS=0 DO_TABLES=0
	while [ $# -gt 0 ]; do
		case $1 in
		--objects) DO_OBJECTS=1 ;;
		--tables) DO_TABLES=1; TPART=${2%/*} TPARTS=${2#*/}; shift ;;
		*) echo "matrix.sh: invalid argument \`$1'" >&2; exit 2 ;;
		esac
		shift
	done
fi
cd "$(dirname "$0")/../../.."
source tests/lib/tap.sh
# Like tap.sh's fail, with every line of a detail behind "# ": the tables' own TAP lines in
# a detail must not count as results.
fail() {
	_tap_n=$((_tap_n + 1)); _tap_failed=$((_tap_failed + 1))
	echo "not ok $_tap_n - $1"
	shift
	local d
	for d in "$@"; do sed 's/^/# /' <<<"$d"; done
	return 0
}
B=${LIGHTSCALE_BUILD:-build}
PIN=/sys/fs/bpf/lsv-matrix
kver=$(uname -r)
IFS=. read -r kmaj kmin _ <<<"$kver"
if [ "$kmaj" -gt 6 ] || { [ "$kmaj" -eq 6 ] && [ "${kmin%%[!0-9]*}" -ge 6 ]; }; then
	TC_PATH=tcx
else
	TC_PATH=clsact
fi
echo "# kernel $kver: TC programs attach through $TC_PATH"

cleanup() {
	ip link del lsvm0 2>/dev/null
	rm -rf "$PIN"
}
trap cleanup EXIT
cleanup
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
mkdir -p "$PIN"
ip link add lsvm0 type veth peer name lsvm1 && ip link set lsvm0 up && ip link set lsvm1 up ||
	fail "veth pair for attaching" "$(ip link add lsvm0 type veth peer name lsvm1 2>&1)"

attach_tc() { # PROG NAME DIRECTION
	local p=$1 n=$2 dir=$3
	if [ $TC_PATH = tcx ]; then
		"$B/vm/lsv-tcx-attach" "$p" lsvm0 "$dir" "$PIN/link-$n-$dir" || return 1
		bpftool link show pinned "$PIN/link-$n-$dir" >/dev/null || return 1
		rm -f "$PIN/link-$n-$dir"
	else
		tc qdisc replace dev lsvm0 clsact || return 1
		tc filter replace dev lsvm0 "$dir" pref 1 handle 1 bpf direct-action object-pinned "$p" ||
			return 1
		tc filter show dev lsvm0 "$dir" | grep -q 'direct-action' || return 1
		tc filter del dev lsvm0 "$dir" pref 1 || return 1
	fi
}

nobj=0
objs=()
[ $DO_OBJECTS = 1 ] && objs=("$B"/bpf/*.bpf.o "$B"/vm/*.bpf.o)
for o in "${objs[@]}"; do
	[ -f "$o" ] || continue
	nobj=$((nobj + 1))
	obj=$(basename "$o" .bpf.o)
	mkdir -p "$PIN/$obj-maps"
	t0=$SECONDS
	if ! out=$(bpftool prog loadall "$o" "$PIN/$obj" pinmaps "$PIN/$obj-maps" 2>&1); then
		echo "# $obj.bpf.o: loadall failed after $((SECONDS - t0))s"
		fail "$obj.bpf.o: bpftool prog loadall (verifier)" \
			"$(grep -E 'failed to load|too large|processed [0-9]+ insns|^Error' <<<"$out")" \
			"last lines of the verifier log:" "$(grep -vE '^(libbpf|Error|Warning|If it used)' <<<"$out" | tail -n 12)"
		continue
	fi
	ok "$obj.bpf.o: every program loads (verifier accepts)"
	for p in "$PIN/$obj"/*; do
		[ -e "$p" ] || continue
		prog=$(basename "$p")
		type=$(bpftool prog show pinned "$p" | awk 'NR == 1 { print $2 }')
		case $type in
		xdp)
			if out=$(ip link set dev lsvm0 xdpdrv pinned "$p" 2>&1) &&
				ip -d link show dev lsvm0 | grep -q 'prog/xdp' &&
				out=$(ip link set dev lsvm0 xdpdrv off 2>&1); then
				ok "$obj/$prog: XDP attaches (native)"
			else
				fail "$obj/$prog: XDP attaches (native)" "$out"
			fi
			;;
		sched_cls)
			if out=$(attach_tc "$p" "$prog" ingress 2>&1 && attach_tc "$p" "$prog" egress 2>&1); then
				ok "$obj/$prog: TC attaches ingress and egress ($TC_PATH)"
			else
				fail "$obj/$prog: TC attaches ingress and egress ($TC_PATH)" "$out"
			fi
			;;
		*) echo "# $obj/$prog: type $type, loaded only" ;;
		esac
	done
	rm -rf "${PIN:?}/$obj" "${PIN:?}/$obj-maps"
done
if [ $DO_OBJECTS = 1 ]; then
	[ $nobj -gt 0 ] || fail "BPF objects found in $B/bpf or $B/vm" "none"
	[ -n "$(ls "$B"/bpf/*.bpf.o 2>/dev/null)" ] ||
		echo "# no project BPF objects in $B/bpf yet: only the lab's probe was checked"
fi

ntab=0 idx=-1
for t in "$B"/tests/bpf/*; do
	[ $DO_TABLES = 1 ] && [ -f "$t" ] && [ -x "$t" ] || continue
	idx=$((idx + 1))
	[ $((idx % TPARTS)) -eq "$TPART" ] || continue
	ntab=$((ntab + 1))
	t0=$SECONDS
	out=$(CMOCKA_MESSAGE_OUTPUT=TAP timeout 300 "$t" 2>&1)
	rc=$?
	echo "# tests/bpf/$(basename "$t"): $((SECONDS - t0))s"
	np=$(grep -cE '^ok [0-9]+' <<<"$out")
	nf=$(grep -cE '^not ok [0-9]+' <<<"$out")
	if [ $rc -eq 0 ] && [ "$nf" -eq 0 ] && [ "$np" -gt 0 ]; then
		ok "tests/bpf/$(basename "$t"): $np cases pass"
	else
		fail "tests/bpf/$(basename "$t"): exit $rc, $np passed, $nf failed" \
			"$(grep -vE '^ok [0-9]+' <<<"$out" | tail -n 30)"
	fi
done
[ $DO_TABLES = 0 ] || [ $idx -ge 0 ] || echo "# no BPF table binaries in $B/tests/bpf yet"
tap_done
