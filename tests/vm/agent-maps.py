#!/usr/bin/env python3
"""What the agent's pinned BPF maps say, and what the netmap says they should say.

    agent-maps.py maps DUMPFILE     the maps, read from `bpftool -j map dump pinned` output
    agent-maps.py netmap NETMAP IFINDEX WG_PORT
                                    what an agent with --bpf must have written for NETMAP

DUMPFILE holds, per map, a line "== NAME" and then bpftool's JSON dump of it (bpftool reads
the map's BTF, so entries carry a "formatted" key and value). Both modes print the same
normalised lines, one fact per line and sorted, so the VM lab compares them with check_eq:

    config stages=filter,isolate,metrics wg_port=51820
    iface ifindex=5 net=1 flags=overlay
    route 100.64.3.0/24 net=1 n_adv=1 flags=- name=overlay vm61
    rule proto=tcp ports=5432-5432 src=100.64.3.2/32 dst=100.64.3.1/32
    rules 2

A rule's src (dst) is every prefix of the src (dst) LPM map whose mask has the rule's bit:
the prefixes of the rule itself and those of other rules that it contains (the loader ORs
the bits of every containing rule into each entry, since an LPM lookup returns only the
longest match; include/lightscale/bpf_maps.h).
"""
import ipaddress
import json
import sys

STAGES = ["translate_client", "translate_router", "snat", "isolate", "filter", "metrics", "stun",
          "fast_forward"]
PROTO = {0: "any", 6: "tcp", 17: "udp", 1: "icmp"}
IF_FLAGS = ["overlay", "lan", "snat-from", "fwd-target"]


def le(b):
    return int.from_bytes(bytes(b), "little")


def raw(v):
    return [int(x, 16) for x in v]


def prefix_from_key(key, family):
    """LPM key bytes: __u32 prefixlen (host order, little-endian here), then the address."""
    plen = le(key[0:4])
    n = 4 if family == 4 else 16
    addr = ipaddress.ip_address(bytes(key[4:4 + n]))
    return ipaddress.ip_network(f"{addr}/{plen}", strict=False)


def flags_text(v, names):
    out = [names[i] for i in range(len(names)) if v & (1 << i)]
    rest = v & ~((1 << len(names)) - 1)
    if rest:
        out.append(hex(rest))
    return ",".join(out) or "-"


def read_dump(path):
    maps, name, buf = {}, None, []
    with open(path) as f:
        for line in f:
            if line.startswith("== "):
                if name is not None:
                    maps[name] = json.loads("".join(buf) or "[]")
                name, buf = line[3:].strip(), []
            else:
                buf.append(line)
    if name is not None:
        maps[name] = json.loads("".join(buf) or "[]")
    return maps


def rule_lines(rules, src_sets, dst_sets):
    """rules: [(proto, lo, hi)]; src_sets/dst_sets: {rule index: set of networks}."""
    out = [f"rules {len(rules)}"]
    for i, (proto, lo, hi) in enumerate(rules):
        src = ",".join(str(p) for p in sorted(src_sets.get(i, ()), key=sortkey))
        dst = ",".join(str(p) for p in sorted(dst_sets.get(i, ()), key=sortkey))
        out.append(f"rule proto={PROTO.get(proto, proto)} ports={lo}-{hi} src={src or '-'} dst={dst or '-'}")
    return out


def sortkey(n):
    return (n.version, int(n.network_address), n.prefixlen)


def from_maps(path):
    m = read_dump(path)
    lines = []
    for e in m.get("config", []):
        v = raw(e["value"])
        flags, wg_port = le(v[0:4]), le(v[4:6])
        lines.append(f"config stages={flags_text(flags, STAGES)} wg_port={wg_port}")
    for e in m.get("ifaces", []):
        k, v = le(raw(e["key"])), raw(e["value"])
        lines.append(f"iface ifindex={k} net={le(v[0:4])} flags={flags_text(le(v[4:8]), IF_FLAGS)}")
    info = {}
    for e in m.get("route_info", []):
        v = raw(e["value"])
        if v[0] == 0:
            continue
        name = bytes(v[24:64]).split(b"\0")[0].decode()
        info[le(raw(e["key"]))] = name
    for fam in (4, 6):
        for e in m.get(f"routes{fam}", []):
            p = prefix_from_key(raw(e["key"]), fam)
            v = raw(e["value"])
            rid, net, n_adv, fl = le(v[0:4]), le(v[4:8]), le(v[8:10]), le(v[10:12])
            lines.append(f"route {p} net={net} n_adv={n_adv} flags={'local' if fl & 1 else '-'} "
                         f"name={info.get(rid, '?')}")
    rules = []
    for e in sorted(m.get("frules", []), key=lambda e: le(raw(e["key"]))):
        v = raw(e["value"])
        if v[1]:
            rules.append((le(raw(e["key"])), v[0], le(v[2:4]), le(v[4:6])))
    index = {r[0]: i for i, r in enumerate(rules)}
    sets = ({}, {})
    for side, names in ((0, ("fsrc4", "fsrc6")), (1, ("fdst4", "fdst6"))):
        for fam, name in zip((4, 6), names):
            for e in m.get(name, []):
                p = prefix_from_key(raw(e["key"]), fam)
                bits = raw(e["value"])
                for w in range(len(bits) // 8):
                    word = le(bits[w * 8:w * 8 + 8])
                    for b in range(64):
                        if word & (1 << b) and (w * 64 + b) in index:
                            sets[side].setdefault(index[w * 64 + b], set()).add(p)
    lines += rule_lines([r[1:] for r in rules], sets[0], sets[1])
    return lines


def port_range(s):
    if s == "*":
        return 0, 65535
    lo, _, hi = s.partition("-")
    return int(lo), int(hi or lo)


def from_netmap(path, ifindex, wg_port):
    nm = json.load(open(path))
    flags = ["isolate", "metrics"]
    pf = nm.get("packet_filter")
    if pf is not None:
        flags.append("filter")
    lines = [f"config stages={','.join(s for s in STAGES if s in flags)} wg_port={wg_port}",
             f"iface ifindex={ifindex} net=1 flags=overlay"]
    routes = {}
    name = f"overlay {nm['network'].get('name', '')}"
    for fam in ("ipv4", "ipv6"):
        if nm["network"].get(fam):
            routes[ipaddress.ip_network(nm["network"][fam], strict=False)] = (1, "-", name)
    for r in nm["self"].get("routes") or []:
        p = ipaddress.ip_network(r, strict=False)
        if p.prefixlen:
            routes.setdefault(p, (1, "local", nm["self"]["name"]))
    peers = nm.get("peers") or []
    for peer in peers:
        for r in peer.get("routes") or []:
            p = ipaddress.ip_network(r, strict=False)
            if not p.prefixlen or p in routes:
                continue
            n = sum(ipaddress.ip_network(x, strict=False) == p
                    for q in peers for x in (q.get("routes") or []) + (q.get("standby_routes") or []))
            routes[p] = (n or 1, "-", peer["name"])
    for p, (n, fl, who) in routes.items():
        lines.append(f"route {p} net=1 n_adv={n} flags={fl} name={who}")
    rules, srcs, dsts = [], [], []
    for r in pf or []:
        src = [ipaddress.ip_network(x, strict=False) for x in r.get("src") or []]
        dst = [ipaddress.ip_network(x, strict=False) for x in r.get("dst") or []]
        if not src or not dst:
            continue
        proto = {"any": 0, "tcp": 6, "udp": 17, "icmp": 1}[r.get("proto") or "any"]
        for ps in r.get("ports") or ["*"]:
            rules.append((proto,) + port_range(ps))
            srcs.append(src)
            dsts.append(dst)
    sets = []
    for side in (srcs, dsts):
        every = {p for ps in side for p in ps}
        sets.append({i: {p for p in every if any(p.version == q.version and p.subnet_of(q) for q in ps)}
                     for i, ps in enumerate(side)})
    lines += rule_lines(rules, sets[0], sets[1])
    return lines


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "maps":
        lines = from_maps(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "netmap":
        lines = from_netmap(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
    for line in sorted(lines):
        print(line)


if __name__ == "__main__":
    main()
