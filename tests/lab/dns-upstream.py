#!/usr/bin/env python3
# A tiny upstream DNS server for the DNS labs: answers A queries for the names given as
# NAME=ADDR arguments and NXDOMAIN for everything else. Usage: dns-upstream.py ADDR PORT NAME=ADDR...
import socket
import struct
import sys

addr, port = sys.argv[1], int(sys.argv[2])
table = dict(a.split("=", 1) for a in sys.argv[3:])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, port))
while True:
    q, src = s.recvfrom(4096)
    if len(q) < 12:
        continue
    qid, flags, qd = struct.unpack("!HHH", q[:6])
    off, labels = 12, []
    while off < len(q) and q[off]:
        n = q[off]
        labels.append(q[off + 1:off + 1 + n].decode(errors="replace"))
        off += 1 + n
    off += 1
    qtype, qclass = struct.unpack("!HH", q[off:off + 4])
    question = q[12:off + 4]
    name = ".".join(labels).lower()
    if name in table and qtype == 1:
        ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(table[name])
        hdr = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0)
    elif name in table:
        ans, hdr = b"", struct.pack("!HHHHHH", qid, 0x8180, 1, 0, 0, 0)
    else:
        ans, hdr = b"", struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0)
    s.sendto(hdr + question + ans, src)
