/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * stun demux: the agent's STUN traffic shares the WireGuard listen port, which NAT
 * traversal with kernel WireGuard needs (the NAT mapping STUN discovers must be
 * WireGuard's). Underlay ingress: a STUN message (magic cookie 0x2112A442) to the
 * WireGuard port is handed to the agent's UDP socket with bpf_sk_assign, headers
 * untouched. Underlay egress: the agent's STUN messages leave with the WireGuard port
 * as their source port (checksum through the helpers).
 */
#ifndef LS_STUN_BPF_H
#define LS_STUN_BPF_H

#include "pkt.bpf.h"

#define LS_STUN_COOKIE 0x2112A442

static __always_inline bool is_stun_x(void *ctx, bool xdp, struct ls_pkt *p)
{
	__u8 h[8];
	__be32 cookie;

	if (p->proto != IPPROTO_UDP || !p->l4_ok || p->frag)
		return false;
	if (ld(ctx, xdp, p->l4 + 8, h, sizeof(h)))
		return false;
	__builtin_memcpy(&cookie, h + 4, 4);
	if ((h[0] & 0xc0) || cookie != bpf_htonl(LS_STUN_COOKIE))
		return false;
	__u16 mlen = (h[2] << 8) | h[3];
	return (mlen & 3) == 0 && p->l4 + 8 + 20 + mlen <= p->len;
}

static __always_inline bool is_stun(struct __sk_buff *skb, struct ls_pkt *p)
{
	return is_stun_x(skb, false, p);
}

/* XDP on the underlay NIC: no bpf_sk_assign there, so STUN to the WireGuard port gets the
 * agent's port as its destination port instead (checksum updated in place: real NICs
 * deliver full checksums; the loader keeps XDP off virtual devices). */
static __always_inline int ls_stun_xdp_in(struct xdp_md *ctx, struct ls_pkt *p, int parsed)
{
	struct ls_config *c = ls_cfg();

	if (parsed || !c || !c->wg_port || !c->stun_port || p->proto != IPPROTO_UDP ||
	    p->dport != bpf_htons(c->wg_port) || !is_stun_x(ctx, true, p)) {
		ls_count(LS_PROG_STUN, LS_R_STUN_OTHER, p->len);
		return LS_NEXT;
	}
	__be16 to = bpf_htons(c->stun_port);
	if (csum_apply(ctx, true, p->l4 + 6, diff16(p->dport, to), p->family == 4 ? CS_UDP0 : 0) ||
	    st(ctx, true, p->l4 + 2, &to, 2)) {
		ls_count(LS_PROG_STUN, LS_R_HELPER_ERR, p->len);
		return LS_SHOT;
	}
	p->dport = to;
	ls_count(LS_PROG_STUN, LS_R_STUN_DPORT, p->len);
	return LS_NEXT;
}

static __always_inline int ls_stun_in(struct __sk_buff *skb, struct ls_pkt *p, int parsed)
{
	struct ls_config *c = ls_cfg();

	if (parsed || !c || !c->wg_port || !c->stun_port || p->proto != IPPROTO_UDP ||
	    p->dport != bpf_htons(c->wg_port) || !is_stun(skb, p)) {
		ls_count(LS_PROG_STUN, LS_R_STUN_OTHER, p->len);
		return LS_NEXT;
	}
	struct bpf_sock_tuple t = {};
	__u32 tlen;
	if (p->family == 4) {
		__builtin_memcpy(&t.ipv4.saddr, p->saddr, 4);
		__builtin_memcpy(&t.ipv4.daddr, p->daddr, 4);
		t.ipv4.sport = p->sport;
		t.ipv4.dport = bpf_htons(c->stun_port);
		tlen = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, p->saddr, 16);
		__builtin_memcpy(t.ipv6.daddr, p->daddr, 16);
		t.ipv6.sport = p->sport;
		t.ipv6.dport = bpf_htons(c->stun_port);
		tlen = sizeof(t.ipv6);
	}
	struct bpf_sock *sk = bpf_sk_lookup_udp(skb, &t, tlen, BPF_F_CURRENT_NETNS, 0);
	if (!sk) {
		ls_count(LS_PROG_STUN, LS_R_STUN_NO_SOCK, p->len);
		return LS_NEXT;
	}
	long err = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	ls_count(LS_PROG_STUN, err ? LS_R_STUN_ASSIGN_ERR : LS_R_STUN_ASSIGN, p->len);
	return LS_NEXT;
}

static __always_inline int ls_stun_out(struct __sk_buff *skb, struct ls_pkt *p, int parsed)
{
	struct ls_config *c = ls_cfg();

	if (parsed || !c || !c->wg_port || !c->stun_port || p->proto != IPPROTO_UDP ||
	    p->sport != bpf_htons(c->stun_port) || !is_stun(skb, p)) {
		ls_count(LS_PROG_STUN, LS_R_STUN_OTHER, p->len);
		return LS_NEXT;
	}
	__be16 to = bpf_htons(c->wg_port);
	if (csum_apply(skb, false, p->l4 + 6, diff16(p->sport, to), p->family == 4 ? CS_UDP0 : 0) ||
	    st(skb, false, p->l4, &to, 2)) {
		ls_count(LS_PROG_STUN, LS_R_HELPER_ERR, p->len);
		return LS_SHOT;
	}
	p->sport = to;
	ls_count(LS_PROG_STUN, LS_R_STUN_SPORT, p->len);
	return LS_NEXT;
}

#endif
