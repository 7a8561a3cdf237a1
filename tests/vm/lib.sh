# VM lab helpers: Debian kernels, a busybox initramfs per kernel, qemu guests on one L2
# segment, and a command channel into each guest through a shared folder.
#
#   source tests/vm/lib.sh
#   vm_kernel 6.1                    fetch + unpack + initramfs (cached in $VMDIR/kernels/6.1)
#   vm_net_up                        netns $VM_NS with bridge lsvbr (10.77.0.1/24)
#   vm_start a 6.1 10.77.0.11        boot guest "a" (eth0 on the bridge), wait for its shell
#   vm_exec a CMD...                 run CMD in guest a (sh -c), print its output, return its rc
#   vm_log a                         guest a's serial console
#   vm_stop_all                      power every guest off (the EXIT trap also kills them)
#
# Guests see the host root read-only over 9p (virtme-style: /usr, /bin, /etc, /lib come from
# the host, so the freshly built binaries and the host's ip, tc, wg, bpftool run unchanged),
# the repository at its host path, and a writable run folder at /out. Kernel modules come from
# the unpacked Debian package through the same share (/lib/modules -> $VMDIR/kernels/V/...).
#
# Nothing here touches the host's /boot or host networking: guests run in a namespace the
# caller makes (vm_net_up), and every qemu runs under `timeout`.

VM_REPO=${VM_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${BUILD:-build}
case $BUILD in /*) VM_BUILD=$BUILD ;; *) VM_BUILD=$VM_REPO/$BUILD ;; esac
VMDIR=${VMDIR:-$VM_BUILD/vm}
VM_NS=${VM_NS:-lsv-$$}
VM_RUN=${VM_RUN:-$VMDIR/run-$$}
VM_MEM=${VM_MEM:-384}
VM_LIFETIME=${VM_LIFETIME:-900}   # hard limit for one qemu, seconds
VM_BOOT_TIMEOUT=${VM_BOOT_TIMEOUT:-120}
VM_EXEC_TIMEOUT=${VM_EXEC_TIMEOUT:-120}
# Kernel command line: no_timer_check, since the IO-APIC timer check fails when the
# emulated CPU is starved on a busy host ("IO-APIC + timer doesn't work!", a panic at boot).
# (Not acpi=off: without ACPI there is no HPET or PM timer, the TSC cannot be calibrated
# under TCG, and the guest falls back to the jiffies clocksource.)
VM_APPEND=${VM_APPEND:-no_timer_check}
declare -gA VM_PID=() VM_KVER=() VM_TAP=()
VM_COUNT=0

vm_msg() { echo "# $*"; }

# fail NAME [DETAIL...]: tests/lib/tap.sh's fail, with every line of every detail behind
# "# " (guest output and test tables print their own "ok"/"not ok" lines, which the runner
# must not count).
fail() {
	_tap_n=$((_tap_n + 1)); _tap_failed=$((_tap_failed + 1))
	echo "not ok $_tap_n - $1"
	shift
	local d
	for d in "$@"; do sed 's/^/# /' <<<"$d"; done
	return 0
}

# Modules the guest needs before the 9p share is mounted (the rest load from the share).
VM_EARLY_MODULES="virtio_pci 9pnet_virtio 9p virtio_net virtio_rng"

# The newest Debian package for kernel series $1 (6.1, 6.12, ...), generic amd64 flavour.
vm_kernel_pkg() {
	local series=$1 re pkgs
	re="^linux-image-${series//./\\.}[.-][0-9][0-9a-z.+~-]*-amd64\$"
	pkgs=$(apt-cache pkgnames linux-image-"$series" 2>/dev/null | grep -E "$re" |
		grep -vE -- '-(cloud|rt|dbg)-|unsigned' | sort -V)
	if [ -z "$pkgs" ]; then
		vm_msg "no linux-image-$series-* in the package lists; running apt-get update"
		apt-get update -qq >&2 || return 1
		pkgs=$(apt-cache pkgnames linux-image-"$series" 2>/dev/null | grep -E "$re" |
			grep -vE -- '-(cloud|rt|dbg)-|unsigned' | sort -V)
	fi
	[ -n "$pkgs" ] || { echo "vm: no Debian kernel package for series \`$series'" >&2; return 1; }
	tail -n1 <<<"$pkgs"
}

# vm_kernel SERIES: make $VMDIR/kernels/SERIES/{vmlinuz,initramfs.cpio.gz,root/lib/modules}.
# The unpacked kernel is kept until its folder is removed; the initramfs is rebuilt when
# tests/vm/init.sh changes.
vm_kernel() {
	local dir=$VMDIR/kernels/$1
	if [ ! -f "$dir/.done" ]; then
		vm_kernel_fetch "$1" || return 1
	fi
	if [ ! -f "$dir/initramfs.cpio.gz" ] || [ "$VM_REPO/tests/vm/init.sh" -nt "$dir/initramfs.cpio.gz" ]; then
		vm_initramfs "$1" || return 1
	fi
}

vm_kernel_fetch() {
	local series=$1 dir=$VMDIR/kernels/$1 pkg deb kver
	pkg=$(vm_kernel_pkg "$series") || return 1
	vm_msg "kernel $series: $pkg (download and unpack into $dir)"
	rm -rf "$dir" && mkdir -p "$dir/root" "$VMDIR/debs" || return 1
	deb=$(ls "$VMDIR"/debs/"${pkg}"_*.deb 2>/dev/null | tail -n1)
	if [ -z "$deb" ]; then
		(cd "$VMDIR/debs" && apt-get download -q "$pkg" 2>&1 | grep -v unsandboxed >&2)
		deb=$(ls "$VMDIR"/debs/"${pkg}"_*.deb 2>/dev/null | tail -n1)
		[ -n "$deb" ] || { echo "vm: apt-get download $pkg failed" >&2; return 1; }
	fi
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir/root" ./boot ./lib/modules || return 1
	kver=$(ls "$dir/root/lib/modules")
	cp "$dir/root/boot/vmlinuz-$kver" "$dir/vmlinuz" || return 1
	depmod -b "$dir/root" "$kver" || return 1
	echo "$kver" >"$dir/release"
	touch "$dir/.done"
}

# The initramfs: busybox in /bb, our init, and the early modules uncompressed.
vm_initramfs() {
	local dir=$VMDIR/kernels/$1 ir=$VMDIR/kernels/$1/initramfs kver m f line
	kver=$(cat "$dir/release")
	rm -rf "$ir" && mkdir -p "$ir"/{bb,early,proc,sys,dev,host,out,tmp,run,var,lib,root} || return 1
	cp /bin/busybox "$ir/bb/busybox" || return 1
	for m in $(busybox --list); do
		[ "$m" = busybox ] || ln -s busybox "$ir/bb/$m"
	done
	cp "$VM_REPO/tests/vm/init.sh" "$ir/init" && chmod 755 "$ir/init" || return 1
	: >"$ir/early/list"
	for m in $VM_EARLY_MODULES; do
		/sbin/modprobe -d "$dir/root" -S "$kver" --show-depends "$m" || return 1
	done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | while read -r f; do
		line=$(basename "$f"); line=${line%.xz}
		case $f in
		*.xz) xz -dc "$f" >"$ir/early/$line" ;;
		*) cp "$f" "$ir/early/$line" ;;
		esac
		echo "$line" >>"$ir/early/list"
	done
	echo "$kver" >"$ir/release"
	echo "$dir/root/lib/modules" >"$ir/modules-path"
	(cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) >"$dir/initramfs.cpio.gz.tmp" &&
		mv "$dir/initramfs.cpio.gz.tmp" "$dir/initramfs.cpio.gz"
}

# vm_net_up: namespace $VM_NS with a bridge; guests' taps join it, the host end is 10.77.0.1.
vm_net_up() {
	ip netns add "$VM_NS" || return 1
	vm_ns ip link set lo up
	vm_ns ip link add lsvbr type bridge
	vm_ns ip addr add 10.77.0.1/24 dev lsvbr
	vm_ns ip link set lsvbr up
}
vm_ns() { nsenter --net=/run/netns/"$VM_NS" "$@"; }
# For background jobs: `"${VM_NS_CMD[@]}" prog &` makes $! the program's own pid (a
# backgrounded shell function would give the pid of a subshell, and killing that would
# leave the program running).
VM_NS_CMD=(nsenter --net=/run/netns/"$VM_NS")

# vm_start NAME SERIES ADDR: boot a guest whose eth0 (10.77.0.x/24) sits on the bridge.
vm_start() {
	local name=$1 series=$2 addr=$3 dir=$VMDIR/kernels/$2 tap n
	local d=$VM_RUN/$name
	mkdir -p "$d" || return 1
	rm -f "$d"/*
	n=$VM_COUNT
	VM_COUNT=$((VM_COUNT + 1))
	tap=lsvt$n
	vm_ns ip tuntap add "$tap" mode tap || return 1
	vm_ns ip link set "$tap" master lsvbr up || return 1
	cat >"$d/env" <<-EOF
		VM_NAME=$name
		VM_ADDR=$addr
		VM_REPO=$VM_REPO
		VM_BUILD=$VM_BUILD
		LIGHTSCALE_BUILD=$VM_BUILD
	EOF
	VM_KVER[$name]=$series
	VM_TAP[$name]=$tap
	# vnet_hdr=off: frames reach the guest with full checksums, as from a real NIC,
	# and virtio_net offers no checksum/GRO offloads, so native XDP attaches.
	# nsenter execs timeout (no subshell), so VM_PID is timeout's pid, which forwards a
	# signal to qemu.
	"${VM_NS_CMD[@]}" timeout -k 5 "$VM_LIFETIME" qemu-system-x86_64 -accel tcg -nodefaults -no-user-config \
		-display none -m "$VM_MEM" -smp 1 -no-reboot \
		-kernel "$dir/vmlinuz" -initrd "$dir/initramfs.cpio.gz" \
		-append "console=ttyS0 panic=-1 loglevel=4 $VM_APPEND lsv_name=$name" \
		-serial "file:$d/serial.log" \
		-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
		-virtfs "local,path=$d,mount_tag=out,security_model=none" \
		-netdev "tap,id=n0,ifname=$tap,script=no,downscript=no,vnet_hdr=off" \
		-device virtio-rng-pci \
		-device "virtio-net-pci,netdev=n0,mac=52:54:00:77:00:$(printf %02x $((n + 16)))" \
		>"$d/qemu.log" 2>&1 &
	VM_PID[$name]=$!
}

# vm_wait_ready NAME: wait until the guest's init reports its shell loop is running.
vm_wait_ready() {
	local name=$1 d=$VM_RUN/$1 t=0
	while [ ! -f "$d/ready" ]; do
		if ! kill -0 "${VM_PID[$name]:-0}" 2>/dev/null; then
			echo "vm $name: qemu exited during boot" >&2
			return 1
		fi
		t=$((t + 1))
		[ $t -gt $((VM_BOOT_TIMEOUT * 5)) ] && { echo "vm $name: no shell after ${VM_BOOT_TIMEOUT}s" >&2; return 1; }
		sleep 0.2
	done
}

# vm_exec [-t SECS] NAME CMD...: run CMD (one shell string) in the guest; print its output
# (stdout and stderr); return its exit status, 124 on timeout, 125 if the guest is gone.
vm_exec() {
	local tmo=$VM_EXEC_TIMEOUT
	[ "$1" = -t ] && { tmo=$2; shift 2; }
	local name=$1; shift
	local d=$VM_RUN/$name n t=0 rc
	# The sequence number lives in a file: vm_exec often runs in a $(...) subshell.
	n=$(($(cat "$d/seq" 2>/dev/null || echo 0) + 1))
	echo "$n" >"$d/seq"
	printf '%s\n' "$*" >"$d/cmd.$n.tmp" && mv "$d/cmd.$n.tmp" "$d/cmd.$n"
	while [ ! -f "$d/rc.$n" ]; do
		if ! kill -0 "${VM_PID[$name]:-0}" 2>/dev/null; then
			cat "$d/out.$n" 2>/dev/null
			echo "vm $name: guest is gone (command $n: $*)"
			return 125
		fi
		t=$((t + 1))
		if [ $t -gt $((tmo * 20)) ]; then
			cat "$d/out.$n" 2>/dev/null
			echo "vm $name: timeout after ${tmo}s (command $n: $*)"
			return 124
		fi
		sleep 0.05
	done
	cat "$d/out.$n"
	rc=$(cat "$d/rc.$n")
	return "${rc:-1}"
}

# vm_check [-t SECS] NAME GUEST CMD: a TAP line for a command run in a guest (vm_exec's
# timeout, default VM_EXEC_TIMEOUT); on failure show its output and return 1.
vm_check() {
	local tmo=$VM_EXEC_TIMEOUT
	[ "$1" = -t ] && { tmo=$2; shift 2; }
	local tname=$1 g=$2 out
	shift 2
	if out=$(vm_exec -t "$tmo" "$g" "$@" 2>&1); then
		ok "$tname"
	else
		fail "$tname" "guest $g: $*" "$out"
		return 1
	fi
}

vm_log() { cat "$VM_RUN/$1/serial.log" 2>/dev/null; }

# Print the serial log of every guest (on failure).
vm_dump_logs() {
	local name
	for name in "${!VM_KVER[@]}"; do
		echo "# ---- serial console of guest $name (${VM_KVER[$name]}) ----"
		vm_log "$name" | tail -n 80 | sed 's/^/#   /'
		if [ -s "$VM_RUN/$name/agent.log" ]; then
			echo "# ---- agent log of guest $name ----"
			tail -n 30 "$VM_RUN/$name/agent.log" | sed 's/^/#   /'
		fi
		if [ -s "$VM_RUN/$name/qemu.log" ]; then
			echo "# ---- qemu stderr of guest $name ----"
			sed 's/^/#   /' "$VM_RUN/$name/qemu.log"
		fi
	done
}

vm_stop() {
	local name=$1 pid=${VM_PID[$1]:-} t=0
	[ -n "$pid" ] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		printf 'poweroff\n' >"$VM_RUN/$name/poweroff"
		while kill -0 "$pid" 2>/dev/null && [ $t -lt 50 ]; do sleep 0.1; t=$((t + 1)); done
		kill "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	unset "VM_PID[$name]"
	vm_ns ip link del "${VM_TAP[$name]}" 2>/dev/null
}

vm_stop_all() {
	local name
	for name in "${!VM_PID[@]}"; do vm_stop "$name"; done
}

vm_cleanup() {
	local name pid
	for name in "${!VM_PID[@]}"; do
		pid=${VM_PID[$name]}
		# timeout(1) forwards the signal to qemu.
		kill "$pid" 2>/dev/null
	done
	for name in "${!VM_PID[@]}"; do wait "${VM_PID[$name]}" 2>/dev/null; done
	ip netns del "$VM_NS" 2>/dev/null
	return 0
}
