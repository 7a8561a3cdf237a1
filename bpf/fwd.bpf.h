/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * fast forwarding (LS_CFG_FWD_FAST, opt-in): after the stages, a packet the FIB sends
 * out of an interface flagged LS_IF_FWD_TARGET is forwarded by the program itself
 * (TTL/hop limit decremented, MACs from the FIB lookup, redirect), skipping the stack's
 * forwarding path. From TC it comes from an Ethernet device or an L3 one (WireGuard, TUN:
 * an Ethernet header is pushed), and the target's LAN egress stages (isolate, SNAT) run
 * before the redirect; from XDP (Ethernet only) the target's TC egress does not run, so a
 * packet a stage there would change or drop (SNAT, a pair isolation denies) goes to the
 * stack. Anything else (local, unresolved neighbour, TTL 1, too big for the MTU) goes on
 * to the stack.
 */
#ifndef LS_FWD_BPF_H
#define LS_FWD_BPF_H

#include "pkt.bpf.h"
#include "isolate.bpf.h"
#include "snat.bpf.h"

#define LS_FWD_STACK (-1)

/* TC's FIB result per (ingress device, family, TOS, source, destination): the egress
 * device, its MTU and the two MACs, reused for LS_FIB_CACHE_NS. A route or neighbour
 * change therefore reaches cached destinations within that time (the stack's own
 * forwarding keeps using a stale neighbour entry longer). Ports are not in the key: the
 * lookup passes no mark, and our ip rules select by mark only. Packets longer than the
 * cached MTU (GSO) do the full lookup, which checks them against the egress device.
 * Entries are made only for egress devices flagged LS_IF_FWD_TARGET; lsbpf_apply empties
 * the map on every apply, after the routes, interfaces and allow rules. */
#define LS_FIB_CACHE_NS (50 * 1000 * 1000ULL)

struct ls_fib_key {
	__u32 ifindex;
	__u8 family;
	__u8 tos;
	__u8 pad[2];
	__u8 saddr[16];
	__u8 daddr[16];
};

struct ls_fib_val {
	__u64 stamp; /* bpf_ktime_get_coarse_ns() of the lookup */
	__u32 ifindex;
	__u32 mtu;
	__u8 dmac[6];
	__u8 smac[6];
	/* what the target's LAN egress stages need, valid as long as the entry (lsbpf_apply
	 * empties the cache after it wrote the routes, interfaces and allow rules): */
	__u8 in_snat; /* the ingress device is LS_IF_SNAT_FROM */
	__u8 iso;     /* isolation's verdict for this source, destination and target
		       * (LS_R_ISO_*; LS_R_ISO_DENIED drops) */
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ls_fib_key);
	__type(value, struct ls_fib_val);
} ls_fib_cache SEC(".maps");

/* The FIB lookup's parameters for p arriving on ifindex (tos: IPv4's). */
static __always_inline void fib_params(struct bpf_fib_lookup *f, struct ls_pkt *p, __u32 ifindex, __u8 tos)
{
	f->l4_protocol = p->proto;
	f->sport = p->sport;
	f->dport = p->dport;
	f->ifindex = ifindex;
	if (p->family == 4) {
		f->family = 2; /* AF_INET */
		f->tos = tos;
		__builtin_memcpy(&f->ipv4_src, p->saddr, 4);
		__builtin_memcpy(&f->ipv4_dst, p->daddr, 4);
	} else {
		f->family = 10; /* AF_INET6 */
		__builtin_memcpy(f->ipv6_src, p->saddr, 16);
		__builtin_memcpy(f->ipv6_dst, p->daddr, 16);
	}
}

/* XDP fast forwarding (from Ethernet LAN ingress). */
static __always_inline int ls_fwd(void *ctx, bool xdp, struct ls_pkt *p, int parsed)
{
	struct bpf_fib_lookup f = {};
	__u8 b[8];

	if (parsed || p->l3 != 14 || ld(ctx, xdp, p->l3, b, 8))
		goto stack;
	__u32 in = ((struct xdp_md *)ctx)->ingress_ifindex;
	__u8 ttl;
	fib_params(&f, p, in, b[1]);
	if (p->family == 4) {
		if (ld(ctx, xdp, p->l3 + 8, &ttl, 1) || ttl <= 1)
			goto stack;
		f.tot_len = (b[2] << 8) | b[3];
	} else {
		ttl = b[7];
		if (ttl <= 1)
			goto stack;
		f.tot_len = ((b[4] << 8) | b[5]) + 40;
	}
	if (bpf_fib_lookup(ctx, &f, sizeof(f), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		goto stack;
	__u32 out = f.ifindex;
	if (!(if_flags(out) & LS_IF_FWD_TARGET))
		goto stack;
	/* The target's TC egress (its LAN egress stages) does not run on an XDP redirect: a
	 * pair isolation denies, or a packet to SNAT, goes to the stack (and so through
	 * them); an allowed pair is counted here as ls_lan_out would. */
	struct ls_config *c = ls_cfg();
	__u32 fl = c ? c->flags : 0, iso = 0;
	if ((fl & LS_CFG_SNAT) && (if_flags(in) & LS_IF_SNAT_FROM))
		goto stack;
	if (fl & LS_CFG_ISOLATE) {
		iso = iso_reason(p, in, out, true);
		if (iso == LS_R_ISO_DENIED)
			goto stack;
	}
	__u8 nttl = ttl - 1;
	if (p->family == 4) {
		__be16 ow, nw;
		__u8 w[2] = { ttl, p->proto }, nwb[2] = { nttl, p->proto };
		__builtin_memcpy(&ow, w, 2);
		__builtin_memcpy(&nw, nwb, 2);
		if (csum_manual(ctx, xdp, p->l3 + 10, diff16(ow, nw), 0) || st(ctx, xdp, p->l3 + 8, &nttl, 1))
			goto stack;
	} else if (st(ctx, xdp, p->l3 + 7, &nttl, 1)) {
		goto stack;
	}
	if (st(ctx, xdp, 0, f.dmac, 6) || st(ctx, xdp, 6, f.smac, 6))
		return LS_FWD_STACK;
	if (iso)
		ls_count(LS_PROG_ISOLATE, iso, p->len);
	ls_count(LS_PROG_FWD, LS_R_FWD_REDIRECT, p->len);
	return bpf_redirect(out, 0);
stack:
	ls_count(LS_PROG_FWD, LS_R_FWD_STACK, p->len);
	return LS_FWD_STACK;
}

#define LS_FWD_DROP (-3) /* TC: a LAN egress stage run for the target dropped it, or a
			  * rewrite failed half-way: the dispatcher drops the packet */

/* TC: the ls_fib_cache key of the IP header at l3, read in place (no full parse), and
 * its TTL / hop limit. 0, or -1 when the header is not IP, malformed or not linear. */
static __always_inline int fwd_key(struct __sk_buff *skb, __u32 l3, struct ls_fib_key *k, __u8 *ttl)
{
	__u32 len = skb->len;

	k->ifindex = skb->ifindex;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = hdr(skb, false, l3, sizeof(*ip));
		if (!ip || ip->version != 4 || ip->ihl < 5 || bpf_ntohs(ip->tot_len) < ip->ihl * 4 ||
		    l3 + bpf_ntohs(ip->tot_len) > len)
			return -1;
		k->family = 2;
		k->tos = ip->tos;
		*ttl = ip->ttl;
		__builtin_memcpy(k->saddr, &ip->saddr, 4);
		__builtin_memcpy(k->daddr, &ip->daddr, 4);
		return 0;
	}
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = hdr(skb, false, l3, sizeof(*ip6));
		if (!ip6 || ip6->version != 6 || l3 + sizeof(*ip6) + bpf_ntohs(ip6->payload_len) > len)
			return -1;
		k->family = 10;
		*ttl = ip6->hop_limit;
		__builtin_memcpy(k->saddr, &ip6->saddr, 16);
		__builtin_memcpy(k->daddr, &ip6->daddr, 16);
		return 0;
	}
	return -1;
}

/* TC: the next hop for key k from ls_fib_cache, into h. 0, or -1 when there is no fresh
 * entry or the packet is longer than the entry's MTU (GSO: the FIB lookup checks those). */
static __always_inline int hop_cached(struct __sk_buff *skb, struct ls_fib_key *k, __u32 l3, struct ls_fib_val *h)
{
	struct ls_fib_val *c = bpf_map_lookup_elem(&ls_fib_cache, k);

	if (!c || bpf_ktime_get_coarse_ns() - c->stamp >= LS_FIB_CACHE_NS || skb->len > c->mtu + l3)
		return -1;
	__builtin_memcpy(h, c, sizeof(*h));
	return 0;
}

/* TC: the FIB's next hop of p into h and ls_fib_cache, when its egress device is a
 * LS_IF_FWD_TARGET. 0 or -1. A global function: verified once, and its lookup struct is
 * not on the caller's stack. */
__attribute__((noinline)) int ls_fwd_fib_tc(struct __sk_buff *skb, struct ls_pkt *p, struct ls_fib_val *h, __u32 tos)
{
	struct bpf_fib_lookup f = {};

	if (!p || !h)
		return -1;
	fib_params(&f, p, skb->ifindex, tos);
	/* tot_len stays 0: the kernel then checks the skb against the egress MTU itself and
	 * accepts GSO packets (a TCP sender's 64 KB super-packets; their IP length is past
	 * any MTU, so passing it sent ~90% of a TCP flow to the stack). */
	if (bpf_fib_lookup(skb, &f, sizeof(f), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return -1;
	__u32 out = f.ifindex, in = skb->ifindex;
	if (!(if_flags(out) & LS_IF_FWD_TARGET))
		return -1;
	struct ls_fib_key k = { .ifindex = in, .family = f.family, .tos = f.tos };
	/* on this stack: 6.1 takes no function argument's memory as a map value */
	struct ls_fib_val v = { .stamp = bpf_ktime_get_coarse_ns(), .ifindex = out, .mtu = f.mtu_result,
				.in_snat = !!(if_flags(in) & LS_IF_SNAT_FROM), .iso = iso_reason(p, in, out, true) };

	__builtin_memcpy(v.dmac, f.dmac, 6);
	__builtin_memcpy(v.smac, f.smac, 6);
	__builtin_memcpy(k.saddr, p->saddr, 16);
	__builtin_memcpy(k.daddr, p->daddr, 16);
	bpf_map_update_elem(&ls_fib_cache, &k, &v, BPF_ANY);
	__builtin_memcpy(h, &v, sizeof(v));
	return 0;
}

/* TC fast forwarding from an Ethernet device (l3 14) or an L3 one (l3 0: WireGuard, TUN;
 * an Ethernet header is pushed). f: the ls_config flags. Returns TC_ACT_REDIRECT with
 * the redirect set up, LS_FWD_STACK, or LS_FWD_DROP (a rewrite failed half-way).
 *
 * *lan_out is the target's ifindex when its LAN egress stages (isolation, SNAT) are to
 * run before the packet leaves: the dispatcher then calls ls_lan_out_fwd and marks the
 * packet LS_MARK_LAN_OUT_DONE, so that the target's ls_lan_out passes it at once (one
 * program per packet instead of two). Only packets with mark 0 (no mark is lost), else 0.
 * That call is the dispatcher's, not this function's: the kernel allows 512 bytes of
 * stack for a whole chain of calls. Every check that can send the packet to the stack
 * comes before the first change. A destination in ls_fib_cache takes no full parse: the
 * key is read from the IP header in place. */
static __always_inline int fwd_tc(struct __sk_buff *skb, __u32 l3, __u32 f, __u32 *lan_out)
{
	struct ls_fib_key k = {};
	struct ls_fib_val h;
	__u32 len = skb->len;
	__u8 ttl, *e;

	if (fwd_key(skb, l3, &k, &ttl) || ttl <= 1)
		goto stack;
	if (hop_cached(skb, &k, l3, &h)) {
		struct ls_pkt p; /* a full parse only for the FIB lookup (it takes the ports) */

		if (parse(skb, false, l3, &p) || ls_fwd_fib_tc(skb, &p, &h, k.tos))
			goto stack;
	}
	/* an Ethernet header in front of the IP one (fails on GSO packets past the device's
	 * size: the stack forwards those) */
	if (l3 == 0 && bpf_skb_change_head(skb, 14, 0))
		goto stack;
	/* TTL / hop limit - 1, in place; the IP header is at 14 now */
	if (k.family == 2) {
		struct iphdr *ip = hdr(skb, false, 14, sizeof(*ip));
		if (!ip)
			goto failed;
		/* the TTL is the high byte of the checksummed word it shares with the protocol */
		__u16 sum = csum_fold32(csum_add32(bpf_htons(0xffff - 0x0100), (__u16)~ip->check));
		ip->ttl--;
		ip->check = sum;
	} else {
		struct ipv6hdr *ip6 = hdr(skb, false, 14, sizeof(*ip6));
		if (!ip6)
			goto failed;
		ip6->hop_limit--;
	}
	e = hdr(skb, false, 0, 14);
	if (!e)
		goto failed;
	__builtin_memcpy(e, h.dmac, 6);
	__builtin_memcpy(e + 6, h.smac, 6);
	if (l3 == 0) {
		__be16 eth = bpf_htons(k.family == 2 ? ETH_P_IP : ETH_P_IPV6);
		__builtin_memcpy(e + 12, &eth, 2);
	}
	if ((f & (LS_CFG_ISOLATE | LS_CFG_SNAT)) && skb->mark == 0) {
		/* the target's LAN egress stages: isolation's verdict from the cache, and an
		 * established connection's SNAT here; the rest (a denied or new connection,
		 * anything unusual) by the dispatcher's call of ls_lan_out_fwd */
		struct ls_pkt p;
		int r = 1;

		if ((f & LS_CFG_ISOLATE) && h.iso == LS_R_ISO_DENIED)
			r = 0;
		else if ((f & LS_CFG_SNAT) && h.in_snat)
			r = parse(skb, false, 14, &p) ? 0 : snat_hit(skb, &p);
		if (r < 0)
			return LS_FWD_DROP;
		if (!r) {
			*lan_out = h.ifindex;
			return bpf_redirect(h.ifindex, 0);
		}
		if (f & LS_CFG_ISOLATE)
			ls_count(LS_PROG_ISOLATE, h.iso, len);
		skb->mark = LS_MARK_LAN_OUT_DONE;
	}
	ls_count(LS_PROG_FWD, LS_R_FWD_REDIRECT, len);
	return bpf_redirect(h.ifindex, 0);
failed:
	ls_count(LS_PROG_FWD, LS_R_HELPER_ERR, len);
	return LS_FWD_DROP;
stack:
	ls_count(LS_PROG_FWD, LS_R_FWD_STACK, len);
	return LS_FWD_STACK;
}

/* Global (not inlined) TC entry point: the verifier checks it once on its own instead of
 * inside every dispatcher, which keeps ls_overlay_in under the 1M-instruction budget.
 * It reads the packet again (the stages before may have rewritten it). */
__attribute__((noinline)) int ls_fwd_tc(struct __sk_buff *skb, __u32 l3, __u32 f, __u32 *lan_out)
{
	if (!lan_out)
		return LS_FWD_STACK;
	*lan_out = 0;
	if (l3 != 14 && l3 != 0) {
		ls_count(LS_PROG_FWD, LS_R_FWD_STACK, skb->len);
		return LS_FWD_STACK;
	}
	/* bounded for the verifier (past the asm, the compiler no longer knows l3 is 0 or
	 * 14, so it keeps the mask) */
	asm volatile("" : "+r"(l3));
	return fwd_tc(skb, l3 & 0xff, f, lan_out);
}

#endif
