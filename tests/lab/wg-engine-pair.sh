#!/usr/bin/env bash
# Our userspace WireGuard engine on both sides (see wg-lab.sh).
PEER_IMPL=ours exec bash "$(dirname "$0")/wg-lab.sh"
