/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * snat: source NAT for a subnet router. A packet that came in on an interface marked
 * LS_IF_SNAT_FROM (the overlay) and leaves on the LAN gets the router's LAN address and a
 * port (ICMP echo: an id) from the range the loader reserved in ip_local_reserved_ports;
 * the address is the egress interface's own (ls_iface.snat4/6: a router with a LAN and
 * an uplink SNATs to a different address on each), else the global one (ls_config);
 * replies arriving on the LAN are translated back (TC, or XDP on the LAN NIC).
 *
 * Two plain hash maps, never LRU: ls_nat_out (original tuple -> SNAT address and port) and
 * ls_nat_in (reply tuple -> client address and port). A live flow is never evicted to make
 * room: when the table is full a new flow is dropped and counted (LS_R_SNAT_TABLE_FULL).
 * The userspace garbage collector removes idle entries with per-protocol timeouts
 * (last_ns; TCP after FIN/RST gets a short one). A port is taken only when no connection
 * to the same remote endpoint holds it and no local socket of the router would receive
 * the reply (bpf_skc_lookup_tcp / bpf_sk_lookup_udp), so host sockets are never harmed.
 */
#ifndef LS_SNAT_BPF_H
#define LS_SNAT_BPF_H

#include "pkt.bpf.h"
#include "translate.bpf.h" /* quoted_csum, icmp_err */

#define LS_NAT_PROBES 32
#define TCP_FIN 0x01
#define TCP_RST 0x04

static __always_inline bool nat_proto(struct ls_pkt *p, bool out)
{
	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP)
		return p->l4_ok;
	if (p->proto == IPPROTO_ICMP)
		return p->l4_ok && p->icmp_type == (out ? ICMP_ECHO : ICMP_ECHOREPLY);
	if (p->proto == IPPROTO_ICMPV6)
		return p->l4_ok && p->icmp_type == (out ? 128 : 129);
	return false;
}

static __always_inline bool is_icmp(__u8 proto)
{
	return proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6;
}

/* Would a local socket receive a reply from remote:rport to us:port? */
static __always_inline bool port_has_socket(struct __sk_buff *skb, __u8 family, __u8 proto,
					    const __u8 *remote, __be16 rport, const __u8 *us,
					    __be16 port)
{
	struct bpf_sock_tuple t = {};
	__u32 tlen;
	struct bpf_sock *sk;

	if (family == 4) {
		__builtin_memcpy(&t.ipv4.saddr, remote, 4);
		__builtin_memcpy(&t.ipv4.daddr, us, 4);
		t.ipv4.sport = rport;
		t.ipv4.dport = port;
		tlen = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, remote, 16);
		__builtin_memcpy(t.ipv6.daddr, us, 16);
		t.ipv6.sport = rport;
		t.ipv6.dport = port;
		tlen = sizeof(t.ipv6);
	}
	if (proto == IPPROTO_TCP)
		sk = bpf_skc_lookup_tcp(skb, &t, tlen, BPF_F_CURRENT_NETNS, 0);
	else if (proto == IPPROTO_UDP)
		sk = bpf_sk_lookup_udp(skb, &t, tlen, BPF_F_CURRENT_NETNS, 0);
	else
		return false;
	if (!sk)
		return false;
	bpf_sk_release(sk);
	return true;
}

/* One port probe of the SNAT port search, run through bpf_loop so that the verifier
 * checks the body once instead of once per unrolled probe and path (6.1 otherwise runs
 * into its 1M-instruction limit on ls_lan_out). */
struct nat_probe {
	struct __sk_buff *skb;
	__u32 lo, range, start;
	__be16 nport;
	__u8 got, full;
	__u8 us[16];
	struct ls_tuple ik;
	struct ls_nat_val iv;
};

static long nat_probe_cb(__u32 i, void *data)
{
	struct nat_probe *c = data;
	__u32 pt = c->range ? (c->start + i) % c->range : 0;
	__be16 nport = bpf_htons(c->lo + pt);

	if (is_icmp(c->ik.proto)) {
		c->ik.sport = nport;
		c->ik.dport = 0;
	} else {
		c->ik.dport = nport;
		/* ik.saddr/ik.sport are the remote end */
		if (port_has_socket(c->skb, c->ik.family, c->ik.proto, c->ik.saddr, c->ik.sport,
				    c->us, nport))
			return 0;
	}
	/* The map's update returns an int: 6.1 hands it back zero-extended (-EEXIST reads
	 * 4294967279 as a long), so compare the low 32 bits only. */
	int e = (int)bpf_map_update_elem(&ls_nat_in, &c->ik, &c->iv, BPF_NOEXIST);
	if (e == 0) {
		c->nport = nport;
		c->got = 1;
		return 1;
	}
	if (e != -17 /* EEXIST */) {
		c->full = 1;
		return 1;
	}
	return 0;
}

/* Rewrites the source (out) or destination (in) address and port of p. */
static __always_inline int nat_rewrite(void *ctx, bool xdp, struct ls_pkt *p, bool src,
				       const __u8 *addr, __be16 port)
{
	int fl;
	__u32 l4c = outer_l4csum(p, &fl);
	__be16 oldport = src ? p->sport : p->dport;

	if (p->family == 4) {
		__be32 from, to;
		__builtin_memcpy(&from, src ? p->saddr : p->daddr, 4);
		__builtin_memcpy(&to, addr, 4);
		if (from != to && rw_addr4(ctx, xdp, p->l3, p->l3 + (src ? 12 : 16), from, to, l4c, fl))
			return -1;
	} else {
		if (rw_addr6(ctx, xdp, p->l3 + (src ? 8 : 24), src ? p->saddr : p->daddr, addr, l4c, fl))
			return -1;
	}
	if (oldport == port) {
		__builtin_memcpy(src ? p->saddr : p->daddr, addr, 16); /* v4: 4 bytes + zeros */
		return 0;
	}
	__u32 poff;
	if (is_icmp(p->proto)) {
		poff = p->l4 + 4; /* echo id */
		l4c = p->l4 + 2;
		fl = 0;
	} else {
		poff = p->l4 + (src ? 0 : 2);
		fl &= CS_UDP0;
	}
	if (csum_apply(ctx, xdp, l4c, diff16(oldport, port), fl) || st(ctx, xdp, poff, &port, 2))
		return -1;
	/* keep p in step with the packet (the stages after, and fast forwarding, read it) */
	__builtin_memcpy(src ? p->saddr : p->daddr, addr, 16); /* v4: 4 bytes + zeros */
	if (src)
		p->sport = port;
	else
		p->dport = port;
	return 0;
}

static __always_inline void nat_tuple(struct ls_tuple *t, struct ls_pkt *p)
{
	__builtin_memset(t, 0, sizeof(*t));
	t->family = p->family;
	t->proto = p->proto;
	t->sport = p->sport;
	t->dport = is_icmp(p->proto) ? 0 : p->dport;
	__builtin_memcpy(t->saddr, p->saddr, 16);
	__builtin_memcpy(t->daddr, p->daddr, 16);
}

static __always_inline bool nonzero16(const __u8 *a)
{
	__u64 w[2];

	__builtin_memcpy(w, a, 16);
	return (w[0] | w[1]) != 0;
}

static __always_inline bool equal16(const __u8 *a, const __u8 *b)
{
	__u64 x[2], y[2];

	__builtin_memcpy(x, a, 16);
	__builtin_memcpy(y, b, 16);
	return x[0] == y[0] && x[1] == y[1];
}

/* The SNAT source for a packet of this family leaving on ifindex: the interface's own
 * address (ls_iface.snat4/snat6: a router's LAN address there, an exit node's uplink
 * address), else the global one in ls_config. false when there is neither. */
static __always_inline bool snat_addr(struct ls_config *c, __u32 ifindex, __u8 family, __u8 us[16])
{
	struct ls_iface *ifc = bpf_map_lookup_elem(&ls_ifaces, &ifindex);

	if (family == 4) {
		__be32 a = ifc && ifc->snat4 ? ifc->snat4 : c->snat4;

		__builtin_memcpy(us, &a, 4);
		return a != 0;
	}
	if (ifc && nonzero16(ifc->snat6))
		__builtin_memcpy(us, ifc->snat6, 16);
	else
		__builtin_memcpy(us, c->snat6, 16);
	return nonzero16(us);
}

/* An established connection's packet from the overlay (a well-formed packet from an
 * SNAT_FROM device): the source address and port its ls_nat_out entry holds, the entry's
 * timestamp and state kept up. 1 rewritten (counted), 0 no entry (or a later fragment, or
 * a protocol SNAT leaves alone), -1 a rewrite failed (counted). */
static __always_inline int snat_hit(struct __sk_buff *skb, struct ls_pkt *p)
{
	struct ls_tuple ok;
	__u8 addr[16];

	if (p->frag == 2 || !nat_proto(p, true))
		return 0;
	nat_tuple(&ok, p);
	struct ls_nat_val *ov = bpf_map_lookup_elem(&ls_nat_out, &ok);
	if (!ov)
		return 0;
	ov->last_ns = bpf_ktime_get_coarse_ns(); /* for idle timeouts of seconds; cheaper */
	if (p->proto == IPPROTO_TCP && (p->tcp_flags & (TCP_FIN | TCP_RST)))
		ov->state = LS_NAT_CLOSING;
	__builtin_memcpy(addr, ov->addr, 16);
	if (nat_rewrite(skb, false, p, true, addr, ov->port)) {
		ls_count(LS_PROG_SNAT, LS_R_HELPER_ERR, p->len);
		return -1;
	}
	ls_count(LS_PROG_SNAT, LS_R_SNAT_HIT, p->len);
	return 1;
}

/* A packet that came in on `in` leaving on the LAN interface `out`: on LAN egress, or in
 * the fast-forwarding ingress program before it redirects to `out`. */
static __always_inline int snat_out(struct __sk_buff *skb, struct ls_pkt *p, int parsed, __u32 in, __u32 out)
{
	struct ls_config *c = ls_cfg();
	if (!c || !in || !(if_flags(in) & LS_IF_SNAT_FROM) || parsed == LS_PARSE_NOT_IP) {
		ls_count(LS_PROG_SNAT, LS_R_SNAT_NOT_OURS, p->len);
		return LS_NEXT;
	}
	if (parsed) {
		ls_count(LS_PROG_SNAT, LS_R_MALFORMED, p->len);
		return LS_SHOT;
	}
	/* an established connection first: its entry has the address (no interface lookup) */
	int hit = snat_hit(skb, p);
	if (hit)
		return hit > 0 ? LS_NEXT : LS_SHOT;
	__u8 us[16] = {};
	if (!snat_addr(c, out, p->family, us)) {
		ls_count(LS_PROG_SNAT, LS_R_SNAT_NOT_OURS, p->len);
		return LS_NEXT;
	}
	if (p->frag == 2) {
		ls_count(LS_PROG_SNAT, LS_R_SNAT_FRAG, p->len);
		return LS_SHOT;
	}
	if (!nat_proto(p, true)) {
		ls_count(LS_PROG_SNAT, LS_R_SNAT_PROTO, p->len);
		return LS_NEXT;
	}

	/* a new connection: a port from the range */
	struct ls_tuple ok;
	__u64 now = bpf_ktime_get_coarse_ns();
	__u8 closing = p->proto == IPPROTO_TCP && (p->tcp_flags & (TCP_FIN | TCP_RST));
	__u32 lo = c->snat_port_lo, hi = c->snat_port_hi;

	nat_tuple(&ok, p);
	if (!lo || hi < lo) {
		ls_count(LS_PROG_SNAT, LS_R_SNAT_NO_PORT, p->len);
		return LS_SHOT;
	}
	struct nat_probe pr = { .skb = skb, .lo = lo, .range = hi - lo + 1 };
	pr.start = bpf_get_prandom_u32() % pr.range;
	pr.ik.family = p->family;
	pr.ik.proto = p->proto;
	pr.ik.sport = is_icmp(p->proto) ? 0 : p->dport;
	pr.iv.port = p->sport;
	pr.iv.state = closing;
	pr.iv.last_ns = now;
	__builtin_memcpy(pr.iv.addr, p->saddr, 16);
	__builtin_memcpy(pr.ik.saddr, p->daddr, 16);
	__builtin_memcpy(pr.ik.daddr, us, 16);
	__builtin_memcpy(pr.us, us, 16);
	bpf_loop(LS_NAT_PROBES, nat_probe_cb, &pr, 0);
	if (pr.full) {
		ls_count(LS_PROG_SNAT, LS_R_SNAT_TABLE_FULL, p->len);
		return LS_SHOT;
	}
	if (!pr.got) {
		ls_count(LS_PROG_SNAT, LS_R_SNAT_NO_PORT, p->len);
		return LS_SHOT;
	}
	__be16 nport = pr.nport;
	struct ls_nat_val nv = { .port = nport, .state = closing, .last_ns = now };
	__builtin_memcpy(nv.addr, us, 16);
	int e = (int)bpf_map_update_elem(&ls_nat_out, &ok, &nv, BPF_NOEXIST); /* see nat_probe_cb */
	if (e) {
		bpf_map_delete_elem(&ls_nat_in, &pr.ik);
		struct ls_nat_val *ov = e == -17 ? bpf_map_lookup_elem(&ls_nat_out, &ok) : NULL;
		if (!ov) {
			ls_count(LS_PROG_SNAT, LS_R_SNAT_TABLE_FULL, p->len);
			return LS_SHOT;
		}
		nport = ov->port; /* another CPU created it first */
	}
	if (nat_rewrite(skb, false, p, true, us, nport)) {
		ls_count(LS_PROG_SNAT, LS_R_HELPER_ERR, p->len);
		return LS_SHOT;
	}
	ls_count(LS_PROG_SNAT, LS_R_SNAT_NEW, p->len);
	return LS_NEXT;
}

/* LAN egress. */
static __always_inline int ls_snat_out(struct __sk_buff *skb, struct ls_pkt *p, int parsed)
{
	return snat_out(skb, p, parsed, skb->ingress_ifindex, skb->ifindex);
}

/* An ICMP error about a NATed packet (frag-needed, unreachable, time exceeded): the
 * quoted packet left as SNAT:port -> remote, so look its reply tuple up, and give the
 * error back to the client: outer destination, quoted source address and port, with the
 * quoted checksums and the ICMP checksum following. 1 rewritten, 0 not ours, -1 error. */
static __always_inline int snat_icmp_err(void *ctx, bool xdp, struct ls_pkt *p)
{
	__u32 in3 = p->l4 + 8, icsum = p->l4 + 2, in4, l4c = 0;
	struct ls_tuple ik = { .family = p->family };
	__u8 iproto;
	int l4fl = 0;

	if (p->family == 4) {
		struct iphdr ip;
		if (ld(ctx, xdp, in3, &ip, sizeof(ip)) || ip.ihl < 5)
			return 0;
		iproto = ip.protocol;
		in4 = in3 + ip.ihl * 4;
		__builtin_memcpy(ik.saddr, &ip.daddr, 4);
		__builtin_memcpy(ik.daddr, &ip.saddr, 4);
	} else {
		struct ipv6hdr ip6;
		if (ld(ctx, xdp, in3, &ip6, sizeof(ip6)))
			return 0;
		iproto = ip6.nexthdr;
		in4 = in3 + sizeof(ip6);
		__builtin_memcpy(ik.saddr, &ip6.daddr, 16);
		__builtin_memcpy(ik.daddr, &ip6.saddr, 16);
	}
	ik.proto = iproto;
	__u32 poff;
	__be16 ports[2];
	if (iproto == IPPROTO_TCP || iproto == IPPROTO_UDP) {
		if (ld(ctx, xdp, in4, ports, 4))
			return 0;
		ik.sport = ports[1];
		ik.dport = ports[0];
		poff = in4;
		l4c = in4 + (iproto == IPPROTO_TCP ? 16 : 6);
		l4fl = iproto == IPPROTO_UDP && p->family == 4 ? CS_UDP0 : 0;
	} else if (iproto == IPPROTO_ICMP || iproto == IPPROTO_ICMPV6) {
		if (ld(ctx, xdp, in4 + 4, &ik.sport, 2))
			return 0;
		poff = in4 + 4;
		l4c = in4 + 2;
	} else {
		return 0;
	}
	struct ls_nat_val *v = bpf_map_lookup_elem(&ls_nat_in, &ik);
	if (!v)
		return 0;
	__u8 client[16];
	__builtin_memcpy(client, v->addr, 16);
	/* the quoted packet's source port (or echo id) is the one the NAT gave it */
	__be16 cport = v->port, nport = poff == in4 ? ports[0] : ik.sport;
	/* quoted source port (or echo id) */
	if (nport != cport) {
		__u32 d = diff16(nport, cport);
		if (quoted_csum(ctx, xdp, l4c, d, l4fl, icsum) || csum_apply(ctx, xdp, icsum, d, 0) ||
		    st(ctx, xdp, poff, &cport, 2))
			return -1;
	}
	/* quoted source address */
	if (p->family == 4) {
		__be32 from, to;
		__builtin_memcpy(&from, ik.daddr, 4);
		__builtin_memcpy(&to, client, 4);
		__u32 d = diff32(from, to);
		if (quoted_csum(ctx, xdp, in3 + offsetof(struct iphdr, check), d, 0, icsum) ||
		    (iproto != IPPROTO_ICMP && quoted_csum(ctx, xdp, l4c, d, l4fl, icsum)) ||
		    csum_apply(ctx, xdp, icsum, d, 0) || st(ctx, xdp, in3 + 12, &to, 4))
			return -1;
		/* outer destination: ICMPv4 has no pseudo-header */
		__builtin_memcpy(&from, p->daddr, 4);
		if (rw_addr4(ctx, xdp, p->l3, p->l3 + 16, from, to, 0, 0))
			return -1;
	} else {
		__u32 d = diff128(ik.daddr, client);
		if (quoted_csum(ctx, xdp, l4c, d, 0, icsum) || csum_apply(ctx, xdp, icsum, d, 0) ||
		    st(ctx, xdp, in3 + 8, client, 16))
			return -1;
		if (rw_addr6(ctx, xdp, p->l3 + 24, p->daddr, client, icsum, CS_PSEUDO))
			return -1;
	}
	return 1;
}

/* Out of line, as in translate: verified once, not inside every dispatcher. */
__attribute__((noinline)) int ls_snat_icmp_err_tc(struct __sk_buff *skb, struct ls_pkt *p)
{
	if (!p)
		return 0;
	return snat_icmp_err(skb, false, p);
}

__attribute__((noinline)) int ls_snat_icmp_err_xdp(struct xdp_md *ctx, struct ls_pkt *p)
{
	if (!p)
		return 0;
	return snat_icmp_err(ctx, true, p);
}

/* Is the packet addressed to a SNAT address of the router (where every reply to a NATed
 * flow, and every ICMP error about one, goes): the one of the interface it came in on,
 * or the global one? */
static __always_inline bool to_snat_addr(struct ls_pkt *p, __u32 ifindex)
{
	struct ls_config *c = ls_cfg();
	struct ls_iface *ifc = bpf_map_lookup_elem(&ls_ifaces, &ifindex);

	if (!c)
		return false;
	if (p->family == 4) {
		__be32 d;
		__builtin_memcpy(&d, p->daddr, 4);
		return (c->snat4 && d == c->snat4) || (ifc && ifc->snat4 && d == ifc->snat4);
	}
	return (nonzero16(c->snat6) && equal16(p->daddr, c->snat6)) ||
	       (ifc && nonzero16(ifc->snat6) && equal16(p->daddr, ifc->snat6));
}

/* LAN ingress (TC or XDP): replies back to the client. */
static __always_inline int ls_snat_in(void *ctx, bool xdp, struct ls_pkt *p, int parsed)
{
	__u32 ifindex = xdp ? ((struct xdp_md *)ctx)->ingress_ifindex : ((struct __sk_buff *)ctx)->ifindex;

	/* Only packets to a SNAT address can be replies: the rest skip the 40-byte
	 * tuple hash lookup (on a router most LAN ingress is not NAT replies). */
	if (!parsed && !to_snat_addr(p, ifindex)) {
		ls_count(LS_PROG_SNAT, LS_R_SNAT_NOT_OURS, p->len);
		return LS_NEXT;
	}
	if (!parsed && icmp_err(p)) {
		int r = xdp ? ls_snat_icmp_err_xdp(ctx, p) : ls_snat_icmp_err_tc(ctx, p);
		ls_count(LS_PROG_SNAT, r > 0 ? LS_R_SNAT_ICMP_ERR : r < 0 ? LS_R_HELPER_ERR : LS_R_SNAT_NOT_OURS, p->len);
		return r < 0 ? LS_SHOT : LS_NEXT;
	}
	if (parsed || !nat_proto(p, false) || p->frag == 2) {
		ls_count(LS_PROG_SNAT, parsed == LS_PARSE_NOT_IP ? LS_R_NOT_IP : LS_R_SNAT_NOT_OURS, p->len);
		return LS_NEXT;
	}
	struct ls_tuple ik;
	nat_tuple(&ik, p);
	struct ls_nat_val *v = bpf_map_lookup_elem(&ls_nat_in, &ik);
	if (!v) {
		ls_count(LS_PROG_SNAT, LS_R_SNAT_NOT_OURS, p->len);
		return LS_NEXT;
	}
	v->last_ns = bpf_ktime_get_coarse_ns();
	if (p->proto == IPPROTO_TCP && (p->tcp_flags & (TCP_FIN | TCP_RST)))
		v->state = LS_NAT_CLOSING;
	__u8 addr[16];
	__builtin_memcpy(addr, v->addr, 16);
	if (is_icmp(p->proto))
		p->dport = p->sport; /* echo reply: the id is what the NAT changed */
	if (nat_rewrite(ctx, xdp, p, false, addr, v->port)) {
		ls_count(LS_PROG_SNAT, LS_R_HELPER_ERR, p->len);
		return LS_SHOT;
	}
	ls_count(LS_PROG_SNAT, LS_R_SNAT_REPLY, p->len);
	return LS_NEXT;
}

#endif
