#!/usr/bin/env bash
# make bench: program cost per packet, then forwarding against nftables.
# BENCH_PACKETS and BENCH_ROUNDS shorten a run while developing.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
"$BUILD/bench/forward/progbench" "${BENCH_ROUNDS:-5}" "${BENCH_REPEAT:-1000000}"
echo
"$BUILD/bench/forward/forward" "${BENCH_PACKETS:-2000000}" "${BENCH_ROUNDS:-5}"
