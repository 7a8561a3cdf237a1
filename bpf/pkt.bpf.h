/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Packet access shared by every stage, for TC (__sk_buff) and XDP (xdp_md) alike.
 *
 * Each function takes `void *ctx` and a compile-time `xdp` flag; being always-inline,
 * the other branch folds away. Reads go through bpf_skb_load_bytes / bpf_xdp_load_bytes
 * (safe on non-linear packets), writes through the store helpers, and checksums through
 * bpf_l3/l4_csum_replace on TC (correct for CHECKSUM_PARTIAL packets) and an RFC 1624
 * incremental update on XDP (only correct for packets with full checksums: real NICs).
 */
#ifndef LS_PKT_BPF_H
#define LS_PKT_BPF_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <stddef.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps.bpf.h"

/* A stage's verdict inside a dispatcher. */
#define LS_NEXT 0 /* go on with the next stage */
#define LS_SHOT 1 /* drop */

/* ICMP types (linux/icmp.h pulls in libc headers, so they are spelled here) */
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_SOURCE_QUENCH 4
#define ICMP_REDIRECT 5
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

#define IP_MF 0x2000
#define IP_OFFMASK 0x1fff

struct ls_pkt {
	__u32 l3;       /* offset of the IP header */
	__u32 l4;       /* offset of the L4 header; 0 when absent (later fragment) */
	__u32 len;      /* packet length */
	__u8 family;    /* 4 or 6 */
	__u8 proto;     /* L4 protocol after IPv6 extension headers */
	__u8 frag;      /* 0: not a fragment, 1: first fragment, 2: later fragment */
	__u8 tcp_flags; /* TCP flags byte */
	__be16 sport;   /* TCP/UDP source port; ICMP echo id */
	__be16 dport;   /* TCP/UDP destination port; 0 for ICMP */
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 l4_ok;     /* the L4 header (ports/type) was read */
	__u8 pad;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* A pointer to len bytes at off when they are in the linear part of the packet, else
 * NULL. (Direct access is several times cheaper than the load/store helpers; the
 * helpers stay as the fallback for non-linear data.) */
static __always_inline void *hdr(void *ctx, bool xdp, __u32 off, __u32 len)
{
	void *data, *end;

	/* Loaded as "rX = *(u32 *)(ctx + off)" in asm: the verifier only allows context
	 * fields read at a constant offset from the unmodified ctx pointer, and clang may
	 * otherwise hoist ctx + off into a register (it does in the global fwd functions). */
	if (xdp) {
		asm volatile("%[d] = *(u32 *)(%[c] + %[o])" : [d] "=r"(data) : [c] "r"(ctx), [o] "i"(offsetof(struct xdp_md, data)));
		asm volatile("%[d] = *(u32 *)(%[c] + %[o])" : [d] "=r"(end) : [c] "r"(ctx), [o] "i"(offsetof(struct xdp_md, data_end)));
	} else {
		asm volatile("%[d] = *(u32 *)(%[c] + %[o])" : [d] "=r"(data) : [c] "r"(ctx), [o] "i"(offsetof(struct __sk_buff, data)));
		asm volatile("%[d] = *(u32 *)(%[c] + %[o])" : [d] "=r"(end) : [c] "r"(ctx), [o] "i"(offsetof(struct __sk_buff, data_end)));
	}
	if (off > 1024)
		return NULL;
	data += off;
	if (data + len > end)
		return NULL;
	return data;
}

static __always_inline int ld(void *ctx, bool xdp, __u32 off, void *to, __u32 len)
{
	void *p = hdr(ctx, xdp, off, len);

	if (p) {
		__builtin_memcpy(to, p, len);
		return 0;
	}
	if (xdp)
		return bpf_xdp_load_bytes(ctx, off, to, len);
	return bpf_skb_load_bytes(ctx, off, to, len);
}

static __always_inline int st(void *ctx, bool xdp, __u32 off, const void *from, __u32 len)
{
	void *p = hdr(ctx, xdp, off, len);

	if (p) {
		__builtin_memcpy(p, from, len);
		return 0;
	}
	if (xdp)
		return bpf_xdp_store_bytes(ctx, off, (void *)from, len);
	return bpf_skb_store_bytes(ctx, off, from, len, 0);
}

static __always_inline __u32 pkt_len(void *ctx, bool xdp)
{
	if (xdp) {
		struct xdp_md *x = ctx;
		return x->data_end - x->data;
	}
	return ((struct __sk_buff *)ctx)->len;
}

static __always_inline __u32 csum_add32(__u32 a, __u32 b)
{
	__u32 r = a + b;
	return r + (r < a);
}

static __always_inline __u16 csum_fold32(__u32 c)
{
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return (__u16)~c;
}

#define CS_PSEUDO 1  /* the change is in the pseudo-header (TC: BPF_F_PSEUDO_HDR) */
#define CS_UDP0 2    /* UDP over IPv4: a zero checksum means "none" and stays zero */

/* Folds `diff` (the ones'-complement sum of ~old words + new words) into the 16-bit
 * checksum field at off. TC: bpf_l4_csum_replace in diff mode. */
static __always_inline int ld(void *ctx, bool xdp, __u32 off, void *to, __u32 len);
static __always_inline int st(void *ctx, bool xdp, __u32 off, const void *from, __u32 len);

/* RFC 1624 in place: right for full checksums only. */
static __always_inline int csum_manual(void *ctx, bool xdp, __u32 off, __u32 diff, int flags)
{
	__u16 sum;
	if (ld(ctx, xdp, off, &sum, 2))
		return -1;
	if ((flags & CS_UDP0) && sum == 0)
		return 0;
	sum = csum_fold32(csum_add32(diff, (__u16)~sum));
	if ((flags & CS_UDP0) && sum == 0)
		sum = 0xffff;
	return st(ctx, xdp, off, &sum, 2);
}

static __always_inline int csum_apply(void *ctx, bool xdp, __u32 off, __u32 diff, int flags)
{
	if (!xdp) {
		__u64 f = 0;
		if (flags & CS_PSEUDO)
			f |= BPF_F_PSEUDO_HDR;
		if (flags & CS_UDP0)
			f |= BPF_F_MARK_MANGLED_0;
		return bpf_l4_csum_replace(ctx, off, 0, diff, f);
	}
	return csum_manual(ctx, xdp, off, diff, flags);
}

static __always_inline __u32 diff32(__be32 from, __be32 to)
{
	return csum_add32(~from, to);
}

static __always_inline __u32 diff16(__be16 from, __be16 to)
{
	return csum_add32((__u16)~from, to);
}

static __always_inline __u32 diff128(const __u8 *from, const __u8 *to)
{
	const __u32 *f = (const __u32 *)from, *t = (const __u32 *)to;
	__u32 d = 0;
#pragma unroll
	for (int i = 0; i < 4; i++)
		d = csum_add32(d, diff32(f[i], t[i]));
	return d;
}

/* IPv4 header checksum at off: plain field update (TC: bpf_l3_csum_replace). */
/* IPv4 header checksum at off: a plain field update, done in place for TC too (the
 * header checksum is never partial, and an address change plus its checksum change
 * leave the header's sum, and so skb->csum, as they were). */
static __always_inline int csum_l3(void *ctx, bool xdp, __u32 off, __be32 from, __be32 to)
{
	return csum_manual(ctx, xdp, off, diff32(from, to), 0);
}

static __always_inline bool is_icmp_err4(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_SOURCE_QUENCH || type == ICMP_REDIRECT ||
	       type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
}

static __always_inline bool is_icmp_err6(__u8 type)
{
	return type < 128; /* ICMPv6 error messages are types 0..127 */
}

/* Offset of the L4 checksum for proto at l4, 0 when there is none. */
static __always_inline __u32 l4_csum_off(__u8 proto, __u32 l4)
{
	switch (proto) {
	case IPPROTO_TCP:
		return l4 + offsetof(struct tcphdr, check);
	case IPPROTO_UDP:
		return l4 + offsetof(struct udphdr, check);
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return l4 + 2;
	}
	return 0;
}

/* Reads the L4 header fields at p->l4 into p. 0 or -1 when truncated. */
static __always_inline int parse_l4(void *ctx, bool xdp, struct ls_pkt *p)
{
	switch (p->proto) {
	case IPPROTO_TCP: {
		__u8 th[14];
		if (ld(ctx, xdp, p->l4, th, sizeof(th)))
			return -1;
		__builtin_memcpy(&p->sport, th, 2);
		__builtin_memcpy(&p->dport, th + 2, 2);
		p->tcp_flags = th[13];
		break;
	}
	case IPPROTO_UDP: {
		__be16 ports[2];
		if (ld(ctx, xdp, p->l4, ports, sizeof(ports)))
			return -1;
		p->sport = ports[0];
		p->dport = ports[1];
		break;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		__u8 ih[8];
		if (ld(ctx, xdp, p->l4, ih, sizeof(ih)))
			return -1;
		p->icmp_type = ih[0];
		p->icmp_code = ih[1];
		/* echo request/reply: the id plays the source port */
		if ((p->proto == IPPROTO_ICMP && (ih[0] == ICMP_ECHO || ih[0] == ICMP_ECHOREPLY)) ||
		    (p->proto == IPPROTO_ICMPV6 && (ih[0] == 128 || ih[0] == 129)))
			__builtin_memcpy(&p->sport, ih + 4, 2);
		break;
	}
	default:
		return 0;
	}
	p->l4_ok = 1;
	return 0;
}

#define LS_PARSE_NOT_IP 1
#define LS_PARSE_BAD -1

/* Parses the IP header at l3 (and the L4 header when present). Returns 0, LS_PARSE_NOT_IP
 * or LS_PARSE_BAD (truncated or malformed). */
static __always_inline int parse(void *ctx, bool xdp, __u32 l3, struct ls_pkt *p)
{
	__builtin_memset(p, 0, sizeof(*p));
	p->l3 = l3;
	p->len = pkt_len(ctx, xdp);

	__u8 v;
	if (ld(ctx, xdp, l3, &v, 1))
		return p->len <= l3 ? LS_PARSE_NOT_IP : LS_PARSE_BAD;
	if (l3) {
		/* Ethernet: trust the EtherType, not the first nibble */
		__be16 proto;
		if (ld(ctx, xdp, l3 - 2, &proto, 2))
			return LS_PARSE_BAD;
		if (proto == bpf_htons(ETH_P_IP) && (v >> 4) == 4)
			goto v4;
		if (proto == bpf_htons(ETH_P_IPV6) && (v >> 4) == 6)
			goto v6;
		if (proto == bpf_htons(ETH_P_IP) || proto == bpf_htons(ETH_P_IPV6))
			return LS_PARSE_BAD;
		return LS_PARSE_NOT_IP;
	}
	if ((v >> 4) == 4)
		goto v4;
	if ((v >> 4) == 6)
		goto v6;
	return LS_PARSE_NOT_IP;

v4: {
	struct iphdr ip;
	if (ld(ctx, xdp, l3, &ip, sizeof(ip)))
		return LS_PARSE_BAD;
	__u32 hl = ip.ihl * 4;
	/* addresses first: a malformed packet naming a translated address is dropped */
	p->family = 4;
	p->proto = ip.protocol;
	__builtin_memcpy(p->saddr, &ip.saddr, 4);
	__builtin_memcpy(p->daddr, &ip.daddr, 4);
	if (hl < sizeof(ip) || bpf_ntohs(ip.tot_len) < hl || l3 + bpf_ntohs(ip.tot_len) > p->len)
		return LS_PARSE_BAD;
	__u16 fo = bpf_ntohs(ip.frag_off);
	if (fo & IP_OFFMASK) {
		p->frag = 2;
		return 0;
	}
	if (fo & IP_MF)
		p->frag = 1;
	p->l4 = l3 + hl;
	return parse_l4(ctx, xdp, p) ? LS_PARSE_BAD : 0;
}
v6: {
	struct ipv6hdr ip6;
	if (ld(ctx, xdp, l3, &ip6, sizeof(ip6)))
		return LS_PARSE_BAD;
	p->family = 6;
	__builtin_memcpy(p->saddr, &ip6.saddr, 16);
	__builtin_memcpy(p->daddr, &ip6.daddr, 16);
	if (l3 + sizeof(ip6) + bpf_ntohs(ip6.payload_len) > p->len)
		return LS_PARSE_BAD;
	__u8 nh = ip6.nexthdr;
	__u32 off = l3 + sizeof(ip6);
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u8 eh[8];
		if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS) {
			if (ld(ctx, xdp, off, eh, 2))
				return LS_PARSE_BAD;
			nh = eh[0];
			off += (eh[1] + 1) * 8;
		} else if (nh == IPPROTO_FRAGMENT) {
			if (ld(ctx, xdp, off, eh, 8))
				return LS_PARSE_BAD;
			nh = eh[0];
			__u16 fo = (eh[2] << 8) | eh[3];
			off += 8;
			if (fo & 0xfff8) {
				p->proto = nh;
				p->frag = 2;
				return 0;
			}
			if (fo & 1)
				p->frag = 1;
		} else {
			break;
		}
	}
	p->proto = nh;
	p->l4 = off;
	return parse_l4(ctx, xdp, p) ? LS_PARSE_BAD : 0;
}
}

/* Rewrites the IPv4 address at addr_off (of the IP header at l3) from `from` to `to`,
 * with the header checksum and, when l4csum is non-zero, the L4 checksum at l4csum
 * (pseudo-header change; UDP zero checksum kept). */
static __always_inline int rw_addr4(void *ctx, bool xdp, __u32 l3, __u32 addr_off, __be32 from,
				    __be32 to, __u32 l4csum, int l4flags)
{
	if (csum_l3(ctx, xdp, l3 + offsetof(struct iphdr, check), from, to))
		return -1;
	if (l4csum && csum_apply(ctx, xdp, l4csum, diff32(from, to), l4flags))
		return -1;
	return st(ctx, xdp, addr_off, &to, 4);
}

static __always_inline int rw_addr6(void *ctx, bool xdp, __u32 addr_off, const __u8 *from,
				    const __u8 *to, __u32 l4csum, int l4flags)
{
	if (l4csum && csum_apply(ctx, xdp, l4csum, diff128(from, to), l4flags))
		return -1;
	return st(ctx, xdp, addr_off, to, 16);
}

/* The pseudo-header-covered L4 checksum of the outer packet, and its flags. */
static __always_inline __u32 outer_l4csum(struct ls_pkt *p, int *flags)
{
	*flags = CS_PSEUDO;
	if (!p->l4)
		return 0; /* later fragment: the first fragment carries the checksum */
	if (p->proto == IPPROTO_ICMP)
		return 0; /* ICMPv4 has no pseudo-header */
	if (p->proto == IPPROTO_UDP && p->family == 4)
		*flags |= CS_UDP0;
	return l4_csum_off(p->proto, p->l4);
}

#endif
