/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * fast forwarding (LS_CFG_FWD_FAST, opt-in): after the stages, a packet the FIB sends
 * out of an interface flagged LS_IF_FWD_TARGET is forwarded by the program itself
 * (TTL/hop limit decremented, MACs from the FIB lookup, redirect), skipping the stack's
 * forwarding path. From TC the target's TC egress still runs (SNAT, ...); from XDP it
 * does not, so the agent flags only targets that need nothing there. Anything else
 * (local, unresolved neighbour, TTL 1, too big for the MTU) goes on to the stack.
 */
#ifndef LS_FWD_BPF_H
#define LS_FWD_BPF_H

#include "pkt.bpf.h"

#define LS_FWD_STACK (-1)

/* TC's FIB result per (ingress device, family, TOS, source, destination): the egress
 * device, its MTU and the two MACs, reused for LS_FIB_CACHE_NS. A route or neighbour
 * change therefore reaches cached destinations within that time (the stack's own
 * forwarding keeps using a stale neighbour entry longer). Ports are not in the key: the
 * lookup passes no mark, and our ip rules select by mark only. Packets longer than the
 * cached MTU (GSO) do the full lookup, which checks them against the egress device.
 * Entries are made only for egress devices flagged LS_IF_FWD_TARGET; lsbpf_apply empties
 * the map whenever it writes the interface map. */
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
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ls_fib_key);
	__type(value, struct ls_fib_val);
} ls_fib_cache SEC(".maps");

static __always_inline int ls_fwd(void *ctx, bool xdp, struct ls_pkt *p, int parsed)
{
	struct bpf_fib_lookup f = {};
	__u8 b[8];

	/* Ethernet ingress only. From L3 devices (WireGuard) bpf_redirect_neigh to the FIB's
	 * next hop forwarded plain traffic in a lab, but with SNAT on the LAN egress after it
	 * TCP failed (tests/lab/bpf-overlap.sh); until that is understood, the stack does it. */
	if (parsed || p->l3 != 14 || ld(ctx, xdp, p->l3, b, 8))
		goto stack;
	f.l4_protocol = p->proto;
	f.sport = p->sport;
	f.dport = p->dport;
	f.ifindex = xdp ? ((struct xdp_md *)ctx)->ingress_ifindex : ((struct __sk_buff *)ctx)->ifindex;
	__u8 ttl;
	if (p->family == 4) {
		if (ld(ctx, xdp, p->l3 + 8, &ttl, 1) || ttl <= 1)
			goto stack;
		f.family = 2; /* AF_INET */
		f.tos = b[1];
		if (xdp)
			f.tot_len = (b[2] << 8) | b[3];
		__builtin_memcpy(&f.ipv4_src, p->saddr, 4);
		__builtin_memcpy(&f.ipv4_dst, p->daddr, 4);
	} else {
		ttl = b[7];
		if (ttl <= 1)
			goto stack;
		f.family = 10; /* AF_INET6 */
		if (xdp)
			f.tot_len = ((b[4] << 8) | b[5]) + 40;
		__builtin_memcpy(f.ipv6_src, p->saddr, 16);
		__builtin_memcpy(f.ipv6_dst, p->daddr, 16);
	}
	/* TC leaves tot_len 0: the kernel then checks the skb against the egress MTU itself
	 * and accepts GSO packets (a TCP sender's 64 KB super-packets; their IP length is
	 * past any MTU, so passing it sent ~90% of a TCP flow to the stack). */
	if (bpf_fib_lookup(ctx, &f, sizeof(f), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		goto stack;
	__u32 out = f.ifindex;
	struct ls_iface *t = bpf_map_lookup_elem(&ls_ifaces, &out);
	if (!t || !(t->flags & LS_IF_FWD_TARGET))
		goto stack;
	if (!xdp) {
		/* TC: remember the result for ls_fwd_tc_cached (mtu_result holds the egress
		 * device's MTU on success) */
		struct ls_fib_key k = { .ifindex = ((struct __sk_buff *)ctx)->ifindex, .family = f.family,
					.tos = f.tos };
		struct ls_fib_val v = { .stamp = bpf_ktime_get_coarse_ns(), .ifindex = out, .mtu = f.mtu_result };
		__builtin_memcpy(k.saddr, p->saddr, 16);
		__builtin_memcpy(k.daddr, p->daddr, 16);
		__builtin_memcpy(v.dmac, f.dmac, 6);
		__builtin_memcpy(v.smac, f.smac, 6);
		bpf_map_update_elem(&ls_fib_cache, &k, &v, BPF_ANY);
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
	ls_count(LS_PROG_FWD, LS_R_FWD_REDIRECT, p->len);
	if (st(ctx, xdp, 0, f.dmac, 6) || st(ctx, xdp, 6, f.smac, 6))
		return LS_FWD_STACK;
	return bpf_redirect(out, 0);
stack:
	ls_count(LS_PROG_FWD, LS_R_FWD_STACK, p->len);
	return LS_FWD_STACK;
}

#define LS_FWD_SLOW (-2)

/* TC fast path for a destination in ls_fib_cache: the IP header straight from the linear
 * data (no full parse, no FIB or interface lookup), TTL/hop limit and MACs written in
 * place, redirect. LS_FWD_SLOW for anything else (no or stale entry, non-linear or
 * malformed header, TTL 1, longer than the cached MTU, not IP): ls_fwd decides those. */
static __always_inline int ls_fwd_tc_cached(struct __sk_buff *skb, __u32 l3)
{
	struct ls_fib_key k = {};
	__u32 len = skb->len;
	__u8 *e = hdr(skb, false, 0, 14 + sizeof(struct iphdr));

	if (l3 != 14 || !e)
		return LS_FWD_SLOW;
	k.ifindex = skb->ifindex;
	if (e[12] == 0x08 && e[13] == 0x00) {
		struct iphdr *ip = (void *)(e + 14);
		__u16 tl = bpf_ntohs(ip->tot_len);
		if (ip->version != 4 || ip->ihl < 5 || ip->ttl <= 1 || tl < ip->ihl * 4 || 14 + tl > len)
			return LS_FWD_SLOW;
		k.family = 2;
		k.tos = ip->tos;
		__builtin_memcpy(k.saddr, &ip->saddr, 4);
		__builtin_memcpy(k.daddr, &ip->daddr, 4);
	} else if (e[12] == 0x86 && e[13] == 0xdd) {
		e = hdr(skb, false, 0, 14 + sizeof(struct ipv6hdr));
		if (!e)
			return LS_FWD_SLOW;
		struct ipv6hdr *ip6 = (void *)(e + 14);
		if (ip6->version != 6 || ip6->hop_limit <= 1 ||
		    14 + sizeof(*ip6) + bpf_ntohs(ip6->payload_len) > len)
			return LS_FWD_SLOW;
		k.family = 10;
		__builtin_memcpy(k.saddr, &ip6->saddr, 16);
		__builtin_memcpy(k.daddr, &ip6->daddr, 16);
	} else {
		return LS_FWD_SLOW;
	}
	struct ls_fib_val *c = bpf_map_lookup_elem(&ls_fib_cache, &k);
	if (!c || bpf_ktime_get_coarse_ns() - c->stamp >= LS_FIB_CACHE_NS || len > c->mtu + 14)
		return LS_FWD_SLOW;
	if (k.family == 2) {
		struct iphdr *ip = (void *)(e + 14);
		/* the TTL is the high byte of the checksummed word it shares with the protocol */
		__u16 sum = csum_fold32(csum_add32(bpf_htons(0xffff - 0x0100), (__u16)~ip->check));
		ip->ttl--;
		ip->check = sum;
	} else {
		((struct ipv6hdr *)(e + 14))->hop_limit--;
	}
	__builtin_memcpy(e, c->dmac, 6);
	__builtin_memcpy(e + 6, c->smac, 6);
	ls_count(LS_PROG_FWD, LS_R_FWD_REDIRECT, len);
	return bpf_redirect(c->ifindex, 0);
}

/* Global (not inlined) TC entry point: the verifier checks it once on its own instead of
 * inside every dispatcher, which keeps ls_overlay_in under the 1M-instruction budget.
 * It parses again (the stages before may have rewritten the packet). XDP has its own
 * global ls_fwd_xdp in lightscale.bpf.c. */
__attribute__((noinline)) int ls_fwd_tc(struct __sk_buff *skb, __u32 l3)
{
	struct ls_pkt p;
	int v = ls_fwd_tc_cached(skb, l3 & 0xff);

	if (v != LS_FWD_SLOW)
		return v;
	v = parse(skb, false, l3 & 0xff, &p);
	return ls_fwd(skb, false, &p, v);
}

#endif
