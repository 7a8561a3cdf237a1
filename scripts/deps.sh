#!/usr/bin/env bash
# Install every Debian package that Lightscale's build, tests, demo and benchmarks need.
# Idempotent: installs only what is missing, and mounts bpffs if it is absent.
# Nothing is fetched from anywhere but Debian's package registry.
#
#   scripts/deps.sh           install what is missing (as root)
#   scripts/deps.sh --check   exit 0 when nothing is missing, 1 otherwise; changes nothing
set -euo pipefail

PKGS=(
	build-essential pkg-config make gcc clang llvm
	libbpf-dev libelf-dev zlib1g-dev bpftool
	libmnl-dev libsodium-dev libpq-dev postgresql postgresql-client
	libmicrohttpd-dev libgnutls28-dev libjansson-dev libcmocka-dev
	iproute2 nftables iputils-ping procps psmisc util-linux kmod
	wireguard-tools wireguard-go coturn iperf3 tcpdump curl ca-certificates openssl jq
	qemu-system-x86 busybox-static cpio xz-utils nix-bin
	libclang-rt-14-dev valgrind strace bind9-dnsutils
	chromium chromium-driver
)

missing_pkgs() {
	local installed
	installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PKGS[@]}" 2>/dev/null |
		awk '$2 == "installed" { print $1 }' | sed 's/:.*//')
	for p in "${PKGS[@]}"; do
		grep -qxF "$p" <<<"$installed" || echo "$p"
	done
}

if [ "${1:-}" = "--check" ]; then
	[ -z "$(missing_pkgs)" ] && mountpoint -q /sys/fs/bpf
	exit
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: must run as root (it installs packages and mounts bpffs)" >&2
	exit 1
fi

mapfile -t missing < <(missing_pkgs)
if ((${#missing[@]})); then
	echo "deps.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# coturn's package may start a system service; the tests start their own instances.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet coturn 2>/dev/null; then
	systemctl stop coturn || true
fi

if ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf
fi

echo "deps.sh: all dependencies present"
