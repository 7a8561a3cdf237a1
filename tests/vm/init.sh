#!/bb/sh
# /init of the VM lab's initramfs (busybox). It mounts the host root read-only over 9p and
# lays out a virtme-style root from it: /usr, /bin, /sbin, /etc and /lib come from the host,
# /lib/modules from the unpacked Debian kernel package, the repository appears at its host
# path, and /out is this guest's writable run folder. Then it runs commands that the host
# drops into /out (cmd.N -> out.N + rc.N) until /out/poweroff appears.
export PATH=/bb
log() { echo "lsv-init: $*" >/dev/console; }
die() { log "FATAL: $*"; reboot -f; sleep 5; exit 1; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
for m in $(cat /early/list); do
	insmod "/early/$m" || log "insmod $m failed"
done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /host ||
	die "cannot mount the host root over 9p"
mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=262144 out /out ||
	die "cannot mount /out over 9p"
. /out/env

ln -s /host/usr /usr
ln -s /host/usr/bin /bin
ln -s /host/usr/sbin /sbin
ln -s /host/usr/lib64 /lib64
ln -s /host/etc /etc
for e in /host/usr/lib/*; do
	b=${e##*/}
	[ "$b" = modules ] || ln -s "$e" "/lib/$b"
done
ln -s "/host$(cat /modules-path)" /lib/modules
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /var/tmp /run/netns && ln -s /run /var/run
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
for p in "$VM_REPO" "$VM_BUILD"; do
	[ -d "$p" ] && continue
	mkdir -p "$p" && mount --bind "/host$p" "$p" || die "cannot bind $p"
done

export PATH=/usr/sbin:/usr/bin:/bb HOME=/root TERM=dumb
export VM_NAME VM_ADDR VM_REPO VM_BUILD LIGHTSCALE_BUILD
hostname "$VM_NAME"
ip link set lo up
ip link set eth0 up && ip addr add "$VM_ADDR/24" dev eth0 || log "eth0 setup failed"

# Kernel WireGuard drops handshake packets until the RNG is seeded (virtio-rng feeds it).
dd if=/dev/random of=/dev/null bs=1 count=1 2>/dev/null

# Commands run in the host's bash: busybox's ash would run its own applets (ip, tc, wget)
# in place of the host's tools.
SH=/bb/sh
[ -x /usr/bin/bash ] && SH=/usr/bin/bash
log "ready: $(uname -r) $VM_NAME $VM_ADDR"
echo "$(uname -r)" >/out/ready
n=1
while :; do
	if [ -f "/out/cmd.$n" ]; then
		(cd "$VM_REPO" && $SH "/out/cmd.$n") >"/out/out.$n" 2>&1 </dev/null
		echo $? >"/out/rc.$n.tmp"
		mv "/out/rc.$n.tmp" "/out/rc.$n"
		n=$((n + 1))
	elif [ -f /out/poweroff ]; then
		log "poweroff"
		sync
		reboot -f   # qemu runs with -no-reboot: this ends it
	else
		usleep 50000
	fi
done
