/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * filter: the node's packet filter (its netmap's compiled ACL), enforced on overlay
 * ingress. A packet passes when a rule allows (source prefix, destination prefix,
 * protocol, destination port), or when it answers a flow this node opened: overlay egress
 * records every flow it sends in ls_flows, and ingress looks the reversed tuple up (the
 * quoted tuple for ICMP errors). TCP flags play no part.
 *
 * Rule matching: ls_fsrc4/6 and ls_fdst4/6 (LPM) give the set of rules whose source (destination)
 * contains the address, as a 256-bit mask; the intersection is checked rule by rule for
 * protocol and port.
 */
#ifndef LS_FILTER_BPF_H
#define LS_FILTER_BPF_H

#include "pkt.bpf.h"

static __always_inline struct ls_filter_mask *fmask(struct ls_pkt *p, bool src)
{
	const __u8 *a = src ? p->saddr : p->daddr;

	if (p->family == 4) {
		struct ls_filter4_key k = { .prefixlen = 32 };
		__builtin_memcpy(&k.addr, a, 4);
		return bpf_map_lookup_elem(src ? (void *)&ls_fsrc4 : (void *)&ls_fdst4, &k);
	}
	struct ls_filter6_key k6 = { .prefixlen = 128 };
	__builtin_memcpy(k6.addr, a, 16);
	return bpf_map_lookup_elem(src ? (void *)&ls_fsrc6 : (void *)&ls_fdst6, &k6);
}

static __always_inline bool rule_ok(__u32 idx, __u8 proto, __u16 port, bool have_port)
{
	struct ls_filter_rule *r = bpf_map_lookup_elem(&ls_frules, &idx);

	if (!r || !r->valid)
		return false;
	if (r->proto && r->proto != proto)
		return false;
	if (r->port_lo == 0 && r->port_hi == 65535)
		return true;
	return have_port && port >= r->port_lo && port <= r->port_hi;
}

struct frule_ctx {
	__u64 bits[LS_FILTER_WORDS]; /* candidate rules, cleared as they are tried */
	__u16 port;
	__u8 proto;
	__u8 have_port;
	__u32 hit;
};

/* bpf_loop callback: tries the lowest candidate rule, stops when one allows or none is
 * left. (A bpf_loop callback is verified once, where an open loop over 256 rules inside
 * every dispatcher would blow the verifier's budget.) */
static long frule_cb(__u32 i, void *data)
{
	struct frule_ctx *c = data;
	__u64 x;
	__u32 w;

	if (c->bits[0])
		w = 0, x = c->bits[0];
	else if (c->bits[1])
		w = 1, x = c->bits[1];
	else if (c->bits[2])
		w = 2, x = c->bits[2];
	else if (c->bits[3])
		w = 3, x = c->bits[3];
	else
		return 1;
	__u64 low = x & -x;
	x &= ~low;
	if (w == 0)
		c->bits[0] = x;
	else if (w == 1)
		c->bits[1] = x;
	else if (w == 2)
		c->bits[2] = x;
	else
		c->bits[3] = x;
	__u32 b = 0;
	if (low >> 32) {
		b += 32;
		low >>= 32;
	}
	if (low >> 16) {
		b += 16;
		low >>= 16;
	}
	if (low >> 8) {
		b += 8;
		low >>= 8;
	}
	if (low >> 4) {
		b += 4;
		low >>= 4;
	}
	if (low >> 2) {
		b += 2;
		low >>= 2;
	}
	if (low >> 1)
		b += 1;
	if (rule_ok(w * 64 + b, c->proto, c->port, c->have_port)) {
		c->hit = 1;
		return 1;
	}
	return 0;
}

static __always_inline bool filter_rules(struct ls_pkt *p)
{
	struct ls_filter_mask *ms = fmask(p, true), *md;
	struct frule_ctx c = {};

	if (!ms)
		return false;
	md = fmask(p, false);
	if (!md)
		return false;
	c.proto = p->proto == IPPROTO_ICMPV6 ? IPPROTO_ICMP : p->proto;
	c.have_port = p->l4_ok && (c.proto == IPPROTO_TCP || c.proto == IPPROTO_UDP);
	c.port = bpf_ntohs(p->dport);
	__u64 any = 0;
#pragma unroll
	for (int w = 0; w < LS_FILTER_WORDS; w++) {
		c.bits[w] = ms->bits[w] & md->bits[w];
		any |= c.bits[w];
	}
	if (!any)
		return false;
	bpf_loop(LS_FILTER_RULES, frule_cb, &c, 0);
	return c.hit;
}

static __always_inline __u64 flow_timeout_ns(__u8 proto)
{
	struct ls_config *c = ls_cfg();
	__u32 s = 0;

	if (c)
		s = proto == IPPROTO_TCP ? c->tcp_timeout :
		    proto == IPPROTO_UDP ? c->udp_timeout : c->icmp_timeout;
	if (!s)
		s = proto == IPPROTO_TCP ? LS_TIMEOUT_TCP : proto == IPPROTO_UDP ? LS_TIMEOUT_UDP : LS_TIMEOUT_ICMP;
	return (__u64)s * 1000000000ull;
}

static __always_inline bool flow_known(struct ls_tuple *t)
{
	struct ls_flow *f = bpf_map_lookup_elem(&ls_flows, t);

	return f && bpf_ktime_get_ns() - f->last_ns < flow_timeout_ns(t->proto);
}

static __always_inline bool is_echo_req(struct ls_pkt *p)
{
	return (p->proto == IPPROTO_ICMP && p->icmp_type == ICMP_ECHO) ||
	       (p->proto == IPPROTO_ICMPV6 && p->icmp_type == 128);
}

static __always_inline bool is_echo_reply(struct ls_pkt *p)
{
	return (p->proto == IPPROTO_ICMP && p->icmp_type == ICMP_ECHOREPLY) ||
	       (p->proto == IPPROTO_ICMPV6 && p->icmp_type == 129);
}

/* Is this ingress packet a reply to (or an ICMP error about) a flow we opened? */
static __always_inline bool filter_reply(struct __sk_buff *skb, struct ls_pkt *p)
{
	struct ls_tuple t = { .family = p->family, .proto = p->proto };

	if (!p->l4_ok)
		return false;
	if (icmp_err(p)) {
		/* the quoted packet is one we sent: local -> remote */
		__u32 in3 = p->l4 + 8, in4;
		__u8 ipb[40];
		if (p->family == 4) {
			if (bpf_skb_load_bytes(skb, in3, ipb, 20))
				return false;
			in4 = in3 + (ipb[0] & 0xf) * 4;
			t.proto = ipb[9];
			__builtin_memcpy(t.saddr, ipb + 12, 4);
			__builtin_memcpy(t.daddr, ipb + 16, 4);
		} else {
			if (bpf_skb_load_bytes(skb, in3, ipb, 40))
				return false;
			in4 = in3 + 40;
			t.proto = ipb[6];
			__builtin_memcpy(t.saddr, ipb + 8, 16);
			__builtin_memcpy(t.daddr, ipb + 24, 16);
		}
		__u8 l4b[8];
		if (bpf_skb_load_bytes(skb, in4, l4b, 8))
			return false;
		if (t.proto == IPPROTO_TCP || t.proto == IPPROTO_UDP) {
			__builtin_memcpy(&t.sport, l4b, 2);
			__builtin_memcpy(&t.dport, l4b + 2, 2);
		} else if (t.proto == IPPROTO_ICMP || t.proto == IPPROTO_ICMPV6) {
			__builtin_memcpy(&t.sport, l4b + 4, 2);
		} else {
			return false;
		}
		return flow_known(&t);
	}
	if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6) {
		if (!is_echo_reply(p))
			return false;
		t.sport = p->sport; /* echo id */
	} else {
		t.sport = p->dport;
		t.dport = p->sport;
	}
	__builtin_memcpy(t.saddr, p->daddr, 16);
	__builtin_memcpy(t.daddr, p->saddr, 16);
	return flow_known(&t);
}

/* Overlay ingress. `on` is LS_CFG_FILTER. */
static __always_inline int ls_filter_in(struct __sk_buff *skb, struct ls_pkt *p, int parsed, bool on)
{
	if (!on) {
		ls_count(LS_PROG_FILTER, LS_R_FILTER_OFF, p->len);
		return LS_NEXT;
	}
	if (parsed == LS_PARSE_NOT_IP) {
		ls_count(LS_PROG_FILTER, LS_R_NOT_IP, p->len);
		return LS_NEXT;
	}
	if (parsed) {
		ls_count(LS_PROG_FILTER, LS_R_MALFORMED, p->len);
		return LS_SHOT;
	}
	if (p->frag == 2) {
		ls_count(LS_PROG_FILTER, LS_R_FILTER_FRAG, p->len);
		return LS_NEXT;
	}
	if (filter_rules(p)) {
		ls_count(LS_PROG_FILTER, LS_R_FILTER_ALLOW, p->len);
		return LS_NEXT;
	}
	if (filter_reply(skb, p)) {
		ls_count(LS_PROG_FILTER, LS_R_FILTER_REPLY, p->len);
		return LS_NEXT;
	}
	ls_count(LS_PROG_FILTER, LS_R_FILTER_DENY, p->len);
	return LS_SHOT;
}

/* Overlay egress: remember the flow so its replies pass. Never drops. */
static __always_inline int ls_filter_track(struct ls_pkt *p, int parsed)
{
	if (parsed || !p->l4_ok || p->frag == 2) {
		ls_count(LS_PROG_FILTER, parsed == LS_PARSE_NOT_IP ? LS_R_NOT_IP : LS_R_MISS, p->len);
		return LS_NEXT;
	}
	struct ls_tuple t = { .family = p->family, .proto = p->proto };
	if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6) {
		if (!is_echo_req(p)) {
			ls_count(LS_PROG_FILTER, LS_R_MISS, p->len);
			return LS_NEXT;
		}
		t.sport = p->sport;
	} else if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
		t.sport = p->sport;
		t.dport = p->dport;
	} else {
		ls_count(LS_PROG_FILTER, LS_R_MISS, p->len);
		return LS_NEXT;
	}
	__builtin_memcpy(t.saddr, p->saddr, 16);
	__builtin_memcpy(t.daddr, p->daddr, 16);
	__u64 now = bpf_ktime_get_ns();
	struct ls_flow *f = bpf_map_lookup_elem(&ls_flows, &t);
	if (f) {
		if (now - f->last_ns > 1000000000ull)
			f->last_ns = now;
	} else {
		struct ls_flow nf = { .last_ns = now };
		bpf_map_update_elem(&ls_flows, &t, &nf, BPF_ANY);
	}
	ls_count(LS_PROG_FILTER, LS_R_FILTER_TRACK, p->len);
	return LS_NEXT;
}

#endif
