/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * translate: 1:1 prefix translation between a virtual prefix and a real one, the fix for
 * overlapping subnets (two networks both routing 192.168.1.0/24 are reached as
 * 10.201.1.0/24 and 10.202.1.0/24). ls_v2r* maps virtual->real, ls_r2v* real->virtual;
 * host bits are kept. Where the outer destination is rewritten, an ICMP error's quoted
 * source is too (it names the same host), and the other way round, with the quoted IPv4
 * header checksum and the quoted TCP/UDP checksum (when quoted) kept right and the ICMP
 * checksum following every change.
 */
#ifndef LS_TRANSLATE_BPF_H
#define LS_TRANSLATE_BPF_H

#include "pkt.bpf.h"

/* The IPv4 mapping for a (v2r: virtual->real, else real->virtual): *out gets the
 * translated address. 1 when one matches, 0 when none. A global function: verified once,
 * not at each of its dozen call sites. With ls_config.xlate4_lens set, one hash lookup
 * per mapping length, longest first (two lengths, a /24 hit: one lookup); otherwise the
 * LPM trie (a walk of up to 32 nodes: ~70 ns at 10,000 prefixes). */
static __always_inline int ls_xlate4_lookup(__u32 v2r, __u32 a, __u32 *out)
{
	struct ls_xlate4_key k = { .prefixlen = 32, .addr = a };
	struct ls_xlate4_val *v = NULL;
	struct ls_config *c = ls_cfg();

	if (!out)
		return 0;
	if (c && c->xlate4_lens[0]) {
#pragma unroll
		for (int i = 0; i < LS_XLATE_HASH_LENS; i++) {
			__u32 len = c->xlate4_lens[i];
			if (len < 1 || len > 32)
				break;
			k.prefixlen = len;
			k.addr = a & bpf_htonl(~0u << (32 - len));
			if (v2r)
				v = bpf_map_lookup_elem(&ls_v2r4h, &k);
			else
				v = bpf_map_lookup_elem(&ls_r2v4h, &k);
			if (v)
				break;
		}
	} else {
		if (v2r)
			v = bpf_map_lookup_elem(&ls_v2r4, &k);
		else
			v = bpf_map_lookup_elem(&ls_r2v4, &k);
	}
	if (!v)
		return 0;
	*out = (a & ~v->mask) | v->addr;
	return 1;
}

static __always_inline bool xlate4(bool v2r, __be32 a, __be32 *out)
{
	*out = 0;
	return ls_xlate4_lookup(v2r, a, out);
}

/* The IPv6 mapping for a: the per-length hashes (ls_config.xlate6_lens, longest first)
 * when set, otherwise the LPM tries. */
static __always_inline bool xlate6(bool v2r, const __u8 *a, __u8 *out)
{
	struct ls_xlate6_key k = { .prefixlen = 128 };
	struct ls_xlate6_val *v = NULL;
	struct ls_config *c = ls_cfg();

	__builtin_memcpy(k.addr, a, 16);
	if (c && c->xlate6_lens[0]) {
		const __u32 *aw = (const __u32 *)a;
		__u32 *kw = (__u32 *)k.addr;
#pragma unroll
		for (int i = 0; i < LS_XLATE_HASH_LENS; i++) {
			__u32 len = c->xlate6_lens[i];
			if (len < 1 || len > 128)
				break;
			k.prefixlen = len;
#pragma unroll
			for (int w = 0; w < 4; w++) {
				int bits = (int)len - 32 * w;
				__u32 m = bits >= 32 ? ~0u : bits <= 0 ? 0 : ~0u << (32 - bits);
				kw[w] = aw[w] & bpf_htonl(m);
			}
			if (v2r)
				v = bpf_map_lookup_elem(&ls_v2r6h, &k);
			else
				v = bpf_map_lookup_elem(&ls_r2v6h, &k);
			if (v)
				break;
		}
	} else if (v2r) {
		v = bpf_map_lookup_elem(&ls_v2r6, &k);
	} else {
		v = bpf_map_lookup_elem(&ls_r2v6, &k);
	}
	if (!v)
		return false;
	const __u32 *aw = (const __u32 *)a, *mw = (const __u32 *)v->mask, *vw = (const __u32 *)v->addr;
	__u32 *ow = (__u32 *)out;
#pragma unroll
	for (int i = 0; i < 4; i++)
		ow[i] = (aw[i] & ~mw[i]) | vw[i];
	return true;
}

/* Changes a 16-bit checksum field inside an ICMP payload (a quoted header's checksum)
 * by diff, and makes the ICMP checksum at icsum follow. */
static __always_inline int quoted_csum(void *ctx, bool xdp, __u32 off, __u32 diff, int flags,
				       __u32 icsum)
{
	__u16 before, after;

	if (ld(ctx, xdp, off, &before, 2))
		return 0; /* not quoted */
	if (csum_apply(ctx, xdp, off, diff, flags & CS_UDP0))
		return -1;
	if (ld(ctx, xdp, off, &after, 2))
		return -1;
	return csum_apply(ctx, xdp, icsum, diff16(before, after), 0);
}

/* The ICMP error's quoted packet: rewrite its source (inner_src) or destination.
 * Returns 1 when rewritten, 0 when nothing matched, -1 on a helper error. */
static __always_inline int xlate_icmp_err(void *ctx, bool xdp, struct ls_pkt *p, bool v2r,
					  bool inner_src)
{
	__u32 in3 = p->l4 + 8, icsum = p->l4 + 2;

	if (p->family == 4) {
		struct iphdr ip;
		if (ld(ctx, xdp, in3, &ip, sizeof(ip)) || ip.ihl < 5)
			return 0;
		__be32 from = inner_src ? ip.saddr : ip.daddr, to;
		if (!xlate4(v2r, from, &to))
			return 0;
		__u32 in4 = in3 + ip.ihl * 4;
		__u32 d = diff32(from, to);
		if (!(bpf_ntohs(ip.frag_off) & IP_OFFMASK)) {
			if (ip.protocol == IPPROTO_UDP &&
			    quoted_csum(ctx, xdp, in4 + 6, d, CS_UDP0, icsum))
				return -1;
			if (ip.protocol == IPPROTO_TCP &&
			    quoted_csum(ctx, xdp, in4 + 16, d, 0, icsum))
				return -1;
		}
		if (quoted_csum(ctx, xdp, in3 + offsetof(struct iphdr, check), d, 0, icsum))
			return -1;
		if (csum_apply(ctx, xdp, icsum, d, 0))
			return -1;
		if (st(ctx, xdp, in3 + (inner_src ? 12 : 16), &to, 4))
			return -1;
		return 1;
	}
	struct ipv6hdr ip6;
	__u8 from[16], to[16];
	if (ld(ctx, xdp, in3, &ip6, sizeof(ip6)))
		return 0;
	__builtin_memcpy(from, inner_src ? (void *)&ip6.saddr : (void *)&ip6.daddr, 16);
	if (!xlate6(v2r, from, to))
		return 0;
	__u32 d = diff128(from, to);
	__u32 in4 = in3 + sizeof(ip6);
	if (ip6.nexthdr == IPPROTO_UDP && quoted_csum(ctx, xdp, in4 + 6, d, 0, icsum))
		return -1;
	if (ip6.nexthdr == IPPROTO_TCP && quoted_csum(ctx, xdp, in4 + 16, d, 0, icsum))
		return -1;
	if (ip6.nexthdr == IPPROTO_ICMPV6 && quoted_csum(ctx, xdp, in4 + 2, d, 0, icsum))
		return -1;
	if (csum_apply(ctx, xdp, icsum, d, 0))
		return -1;
	if (st(ctx, xdp, in3 + (inner_src ? 8 : 24), to, 16))
		return -1;
	return 1;
}

/* The ICMP error path out of line, one global function per program type: errors are
 * rare, and verified once here they do not multiply the paths of every dispatcher. */
__attribute__((noinline)) int ls_xlate_icmp_err_tc(struct __sk_buff *skb, struct ls_pkt *p, __u32 v2r)
{
	if (!p)
		return 0;
	return xlate_icmp_err(skb, false, p, v2r, v2r);
}

__attribute__((noinline)) int ls_xlate_icmp_err_xdp(struct xdp_md *ctx, struct ls_pkt *p, __u32 v2r)
{
	if (!p)
		return 0;
	return xlate_icmp_err(ctx, true, p, v2r, v2r);
}

static __always_inline int xlate_icmp_err_call(void *ctx, bool xdp, struct ls_pkt *p, bool v2r)
{
	if (xdp)
		return ls_xlate_icmp_err_xdp(ctx, p, v2r);
	return ls_xlate_icmp_err_tc(ctx, p, v2r);
}

/* Rewrites the outer source (dst == false) or destination through v2r or r2v.
 * Returns 1 rewritten, 0 no match, -1 helper error. Updates p's address. */
static __always_inline int xlate_outer(void *ctx, bool xdp, struct ls_pkt *p, bool dst, bool v2r)
{
	int fl;
	__u32 l4c = outer_l4csum(p, &fl);
	__u8 *a = dst ? p->daddr : p->saddr;

	if (p->family == 4) {
		__be32 from, to;
		__builtin_memcpy(&from, a, 4);
		if (!xlate4(v2r, from, &to))
			return 0;
		if (rw_addr4(ctx, xdp, p->l3, p->l3 + (dst ? 16 : 12), from, to, l4c, fl))
			return -1;
		__builtin_memcpy(a, &to, 4);
		return 1;
	}
	__u8 to[16];
	if (!xlate6(v2r, a, to))
		return 0;
	if (rw_addr6(ctx, xdp, p->l3 + (dst ? 24 : 8), a, to, l4c, fl))
		return -1;
	__builtin_memcpy(a, to, 16);
	return 1;
}

static __always_inline bool icmp_err(struct ls_pkt *p)
{
	if (!p->l4 || !p->l4_ok)
		return false;
	if (p->proto == IPPROTO_ICMP)
		return is_icmp_err4(p->icmp_type);
	if (p->proto == IPPROTO_ICMPV6)
		return is_icmp_err6(p->icmp_type);
	return false;
}

/* The translate stage. src_r2v: rewrite the source real->virtual; dst_v2r: rewrite the
 * destination virtual->real. `parsed` is parse()'s result. */
static __always_inline int ls_translate(void *ctx, bool xdp, struct ls_pkt *p, int parsed,
					bool src_r2v, bool dst_v2r)
{
	int r = 0, e = 0, n;

	if (parsed == LS_PARSE_NOT_IP) {
		ls_count(LS_PROG_TRANSLATE, LS_R_NOT_IP, p->len);
		return LS_NEXT;
	}
	if (parsed) {
		/* Malformed: drop only when it names a translated address (it would leak). */
		__u8 *a = dst_v2r ? p->daddr : p->saddr;
		bool hit = false;
		if (p->family == 4) {
			__be32 x, y;
			__builtin_memcpy(&x, a, 4);
			hit = xlate4(dst_v2r, x, &y);
		} else if (p->family == 6) {
			__u8 y[16];
			hit = xlate6(dst_v2r, a, y);
		}
		if (hit) {
			ls_count(LS_PROG_TRANSLATE, LS_R_MALFORMED, p->len);
			return LS_SHOT;
		}
		ls_count(LS_PROG_TRANSLATE, LS_R_MISS, p->len);
		return LS_NEXT;
	}
	if (dst_v2r) {
		n = xlate_outer(ctx, xdp, p, true, true);
		r |= n > 0;
		e |= n < 0;
		if (icmp_err(p)) {
			n = xlate_icmp_err_call(ctx, xdp, p, true);
			r |= (n > 0) << 1;
			e |= n < 0;
		}
	}
	if (src_r2v) {
		n = xlate_outer(ctx, xdp, p, false, false);
		r |= n > 0;
		e |= n < 0;
		if (icmp_err(p)) {
			n = xlate_icmp_err_call(ctx, xdp, p, false);
			r |= (n > 0) << 1;
			e |= n < 0;
		}
	}
	if (e) {
		ls_count(LS_PROG_TRANSLATE, LS_R_HELPER_ERR, p->len);
		return LS_SHOT;
	}
	if (r & 2)
		ls_count(LS_PROG_TRANSLATE, LS_R_XLATE_ICMP_ERR, p->len);
	else if (r && p->frag == 2)
		ls_count(LS_PROG_TRANSLATE, LS_R_XLATE_FRAG, p->len);
	else if (r)
		ls_count(LS_PROG_TRANSLATE, LS_R_XLATE, p->len);
	else
		ls_count(LS_PROG_TRANSLATE, LS_R_MISS, p->len);
	return LS_NEXT;
}

#endif
