#!/usr/bin/env bash
# Syntax check of the NixOS test definitions: nix-instantiate --parse on every .nix file in
# nixos-vm/. Nix cannot fetch nixpkgs here, so this is all that runs of them (see
# nixos-vm/README.md); a user with Nix runs `nix build .#checks.x86_64-linux.lab-2node`.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
if ! command -v nix-instantiate >/dev/null; then
	fail "nix-instantiate is installed (Debian package nix-bin)"
	exit 1
fi
n=0
for f in nixos-vm/*.nix nixos-vm/*/*.nix; do
	[ -f "$f" ] || continue
	n=$((n + 1))
	if out=$(nix-instantiate --parse "$f" 2>&1 >/dev/null); then
		ok "nix-instantiate --parse $f"
	else
		fail "nix-instantiate --parse $f" "$out"
	fi
done
[ $n -gt 0 ] || fail "nixos-vm/ has .nix files"
tap_done
