#!/usr/bin/env bash
# Our userspace WireGuard engine against Debian's wireguard-go (see wg-lab.sh).
PEER_IMPL=wireguard-go exec bash "$(dirname "$0")/wg-lab.sh"
