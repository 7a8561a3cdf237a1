# Shared set-up of the two-node NAT labs (nat-direct, nat-fallback, nat-relay-failover,
# nat-relay-mtu). Not a test of its own: a lab sources it as its first line,
#
#   source "$(dirname "$0")/nat-lib.sh"
#
# which sources tests/lab/lib.sh and relay-lib.sh, starts the lab (lab_init), readies the
# relay helpers (their logs under $LAB_DIR/relays) and sets the cleanup trap (our relays,
# then the lab's namespaces and processes). Then, beside relay-lib.sh's nat_* helpers:
#
#   nat_relays_up [CONFIG]       nat_pair; relay r1 in inet with a UDP relay on
#                                203.0.113.1:3478 and a stream relay on 203.0.113.1:8443;
#                                the control plane (nat_control) listing them (STUN and UDP
#                                relay :3478, stream :8443), or with CONFIG
#   path_is NODE KEY PATH [VIA]  NODE's path to peer KEY is PATH (direct, relayed), through
#                                VIA (udp, turn, stream) when given
#   peer_udp_drop NODE ADDR      NODE drops every UDP datagram from ADDR: the direct path
#                                only (the relay's UDP still passes)
#   disco_py                     prints Python that defines capture_disco(): the labs'
#                                injectors run { disco_py; cat <<'PY' ... PY } | nsx NS python3 - ARGS
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/relay-lib.sh"
lab_init
relay_init "$LAB_DIR/relays" || exit 1
trap 'relay_stop_all; lab_cleanup' EXIT

nat_relays_up() {
	nat_pair
	relay_start r1 "$(nsname inet)" --udp 203.0.113.1:3478 --stream 203.0.113.1:8443 || lab_die "relay starts"
	nat_control "${1:-$(relays_config 203.0.113.1:3478 203.0.113.1:8443 203.0.113.1:3478)}"
}

path_is() { [ "$(pj "$1" "$2" .path)" = "$3" ] && { [ -z "${4:-}" ] || [ "$(pj "$1" "$2" .via)" = "$4" ]; }; }

peer_udp_drop() {
	nsx "$1" nft add table inet lsntpeer
	nsx "$1" nft add chain inet lsntpeer lsin '{ type filter hook input priority -10; }'
	nsx "$1" nft add rule inet lsntpeer lsin ip saddr "$2" meta l4proto udp drop
}

disco_py() {
	cat <<'PY'
import socket, struct, time

def capture_disco(ifname, sender, receiver, types, secs, dport=None):
    """The first sealed (version 2, 128-byte) ping (type 1) or pong (type 2) of each of
    types from key sender to key receiver seen on ifname (IPv4 over Ethernet) within
    secs seconds, to UDP port dport if given: {type: payload}."""
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    cap.bind((ifname, 0))
    cap.settimeout(1)
    got, end = {}, time.time() + secs
    while len(got) < len(types) and time.time() < end:
        try:
            f = cap.recv(4096)
        except socket.timeout:
            continue
        if f[12:14] != b"\x08\x00" or f[23] != 17:
            continue
        ihl = (f[14] & 15) * 4
        udp = f[14 + ihl:]
        dp, ulen = struct.unpack("!2xHH", udp[:6])
        pl = udp[8:ulen]
        if (dport is None or dp == dport) and len(pl) == 128 and pl[:4] == b"\xffLSD" and pl[4] in types \
                and pl[5] == 2 and pl[8:40] == sender and pl[40:72] == receiver:
            got.setdefault(pl[4], pl)
    cap.close()
    return got
PY
}
