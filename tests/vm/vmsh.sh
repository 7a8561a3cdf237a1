#!/usr/bin/env bash
# vmsh.sh GUEST_DIR CMD...: run CMD in a guest of a running VM lab (its run folder
# $BUILD/vm/run-PID/NAME), print its output, exit with its status. For working on the lab
# with VM_KEEP=1 (check-vm.sh keeps the guests up); tests use lib.sh's vm_exec.
set -u
d=$1
shift
n=$(($(cat "$d/seq" 2>/dev/null || echo 0) + 1))
echo "$n" >"$d/seq"
printf '%s\n' "$*" >"$d/cmd.$n.tmp" && mv "$d/cmd.$n.tmp" "$d/cmd.$n"
t=0
while [ ! -f "$d/rc.$n" ]; do
	t=$((t + 1))
	[ $t -gt 6000 ] && { echo "vmsh: no answer after 300 s" >&2; exit 124; }
	sleep 0.05
done
cat "$d/out.$n"
exit "$(cat "$d/rc.$n")"
