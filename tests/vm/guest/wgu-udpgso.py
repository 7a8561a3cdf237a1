#!/usr/bin/python3
# Large UDP sends through a WireGuard interface, checked datagram by datagram
# (used by tests/vm/wgu-offload.sh, in a guest or in the lab namespace).
#
#   wgu-udpgso.py send DST PORT COUNT SEG NSEG   COUNT sends of NSEG datagrams of SEG bytes
#                                                 each, as one UDP_SEGMENT (UDP GSO) buffer
#   wgu-udpgso.py recv ADDR PORT EXPECTED SECS    count datagrams until EXPECTED arrived or
#                                                 SECS passed without one; print JSON
#
# Every datagram carries (send number, segment number) and a pattern derived from them,
# so a reordered, cut, merged or corrupted datagram is noticed. On a kernel with USO on
# the TUN device (6.2+) the engine receives each send as one super-packet; before 6.2 the
# kernel segments it in software first. Either way the receiver must see SEG-byte datagrams.
import json
import socket
import struct
import sys
import time

UDP_SEGMENT = 103


def payload(n, i, seg):
    head = struct.pack("!II", n, i)
    fill = bytes(((n * 31 + i * 7 + k) & 0xFF) for k in range(256))
    body = (fill * (seg // 256 + 1))[: seg - len(head)]
    return head + body


def send(dst, port, count, seg, nseg):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_UDP, UDP_SEGMENT, seg)
    s.connect((dst, port))
    for n in range(count):
        buf = b"".join(payload(n, i, seg) for i in range(nseg))
        s.send(buf)
        time.sleep(0.02)  # paced: the receiver must not drop for lack of buffer
    print(json.dumps({"sent": count * nseg, "bytes": count * nseg * seg}))


def recv(addr, port, expected, secs):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE (root)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    s.bind((addr, port))
    s.settimeout(float(secs))
    got, nbytes, bad, sizes, seen, dup = 0, 0, 0, {}, set(), 0
    try:
        while got < expected:
            data = s.recv(65536)
            got += 1
            nbytes += len(data)
            sizes[len(data)] = sizes.get(len(data), 0) + 1
            if len(data) < 8:
                bad += 1
                continue
            n, i = struct.unpack("!II", data[:8])
            if (n, i) in seen:
                dup += 1
            seen.add((n, i))
            if data != payload(n, i, len(data)):
                bad += 1
    except socket.timeout:
        pass
    print(json.dumps({"datagrams": got, "bytes": nbytes, "corrupt": bad, "duplicates": dup,
                      "sizes": {str(k): v for k, v in sorted(sizes.items())}}))


if __name__ == "__main__":
    a = sys.argv[1:]
    if len(a) == 6 and a[0] == "send":
        send(a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]))
    elif len(a) == 5 and a[0] == "recv":
        recv(a[1], int(a[2]), int(a[3]), a[4])
    else:
        sys.exit("usage: wgu-udpgso.py send DST PORT COUNT SEG NSEG | recv ADDR PORT EXPECTED SECS")
