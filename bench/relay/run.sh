#!/usr/bin/env bash
# lightscale-relay against bare forwarders, side by side on loopback.
#
#   node A --UDP--> lightscale-relay (REGISTER, DATA, key lookup, rewrite) --UDP--> node B
#   node A --UDP--> bare forwarder (recv, sendto a fixed address)         --UDP--> node B
#   node A --TCP--> lightscale-relay stream (frames, key lookup, queues)  --TCP--> node B
#   node A --TCP--> bare splice (read, write)                             --TCP--> node B
#
# 1400-byte payloads, windows of 32 (UDP) / 64 (TCP) in flight. Rounds alternate
# relay and yardstick (A B A B ...); medians and spreads of packets/s and of the
# forwarding process's CPU ns per packet (/proc/PID/schedstat), and their ratios.
# ROUNDS (5) and COUNT (50000) can be set in the environment.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
RELAY=$BUILD/lightscale-relay
BENCH=$BUILD/relay/lsr-bench
ROUNDS=${ROUNDS:-5}
COUNT=${COUNT:-50000}

tmp=$(mktemp -d /tmp/lsr-bench-$$-XXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "uptime: $(uptime)"
$RELAY serve --foreground --udp 127.0.0.1:0 --stream 127.0.0.1:0 --control "$tmp/ctl" 2>"$tmp/relay.log" &
relay_pid=$!; pids+=("$relay_pid")
for _ in $(seq 50); do [ -S "$tmp/ctl" ] && break; sleep 0.1; done
st=$($RELAY status --control "$tmp/ctl" --json) || { echo "relay did not start"; cat "$tmp/relay.log"; exit 1; }
udp=$(jq -r '.listeners[] | select(.kind=="udp").address' <<<"$st")
stream=$(jq -r '.listeners[] | select(.kind=="stream").address' <<<"$st")

base=$((30000 + ($$ % 5000) * 3))
$BENCH udp-forward --listen 127.0.0.1:$base --to 127.0.0.1:$((base + 1)) & fwd_pid=$!; pids+=("$fwd_pid")
$BENCH tcp-forward --listen 127.0.0.1:$((base + 2)) & tcp_pid=$!; pids+=("$tcp_pid")
sleep 0.3

: >"$tmp/results"
for r in $(seq "$ROUNDS"); do
	$BENCH udp --relay --target "$udp" --pid "$relay_pid" --count "$COUNT" >>"$tmp/results"
	$BENCH udp --target 127.0.0.1:$base --b-port $((base + 1)) --pid "$fwd_pid" --count "$COUNT" >>"$tmp/results"
	$BENCH stream --relay --target "$stream" --pid "$relay_pid" --count "$COUNT" >>"$tmp/results"
	$BENCH stream --target 127.0.0.1:$((base + 2)) --pid "$tcp_pid" --count "$COUNT" >>"$tmp/results"
done

jq -rs '
  def med: sort | .[(length / 2 | floor)];
  group_by(.mode + " " + .via) | .[] |
  "\(.[0].mode) via \(.[0].via):\t\(map(.pps) | med | floor) pkt/s [\(map(.pps) | min | floor)-\(map(.pps) | max | floor)]" +
  "\tforwarder CPU \(map(.cpu_ns_per_packet) | med | floor) ns/pkt [\(map(.cpu_ns_per_packet) | min | floor)-\(map(.cpu_ns_per_packet) | max | floor)]" +
  "\tlost \(map(.sent - .delivered) | add)"' "$tmp/results"

jq -rs '
  def med: sort | .[(length / 2 | floor)];
  def m(mode; via; f): [.[] | select(.mode == mode and .via == via) | f] | med;
  "ratio udp:    relay/bare pkt/s \((m("udp";"lightscale-relay";.pps) / m("udp";"bare-forwarder";.pps) * 100 | floor) / 100),  CPU/pkt \((m("udp";"lightscale-relay";.cpu_ns_per_packet) / m("udp";"bare-forwarder";.cpu_ns_per_packet) * 100 | floor) / 100)",
  "ratio stream: relay/bare pkt/s \((m("stream";"lightscale-relay";.pps) / m("stream";"bare-forwarder";.pps) * 100 | floor) / 100),  CPU/pkt \((m("stream";"lightscale-relay";.cpu_ns_per_packet) / m("stream";"bare-forwarder";.cpu_ns_per_packet) * 100 | floor) / 100)"
' "$tmp/results"
