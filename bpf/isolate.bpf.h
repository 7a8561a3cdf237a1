/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * isolate: nothing is forwarded between two Lightscale networks, nor from one network to
 * another's routes, unless an allow rule (ls_iso_allow {src_net, dst_net}) opens the pair.
 * The source network is the one of the interface the packet came in on (ls_ifaces by
 * skb->ingress_ifindex); the destination network is the egress overlay interface's, or on
 * a LAN interface the network owning the route that holds the destination (ls_routes*).
 * Locally originated packets (no ingress interface) are not forwarded and always pass.
 */
#ifndef LS_ISOLATE_BPF_H
#define LS_ISOLATE_BPF_H

#include "pkt.bpf.h"
#include "metrics.bpf.h"

static __always_inline __u32 if_net(__u32 ifindex)
{
	struct ls_iface *i = bpf_map_lookup_elem(&ls_ifaces, &ifindex);
	return i ? i->net_id : 0;
}

/* The isolation verdict for a packet that came in on `in` (0: local) leaving on `out`,
 * as its counter reason: LS_R_ISO_DENIED drops, the others pass. */
static __always_inline __u32 iso_reason(struct ls_pkt *p, __u32 in, __u32 out, bool lan)
{
	__u32 src = in ? if_net(in) : 0, dst = 0;

	if (!src)
		return LS_R_ISO_LOCAL;
	if (lan && p->family) {
		struct ls_route_val *r = route_of(p, p->daddr);
		if (r)
			dst = r->net_id;
	}
	if (!dst)
		dst = if_net(out);
	if (!dst)
		return LS_R_ISO_LOCAL;
	if (src == dst)
		return LS_R_ISO_SAME_NET;
	struct ls_iso_key k = { .src_net = src, .dst_net = dst };
	return bpf_map_lookup_elem(&ls_iso_allow, &k) ? LS_R_ISO_ALLOWED : LS_R_ISO_DENIED;
}

static __always_inline int ls_isolate_if(struct ls_pkt *p, __u32 in, __u32 out, bool lan)
{
	__u32 r = iso_reason(p, in, out, lan);

	ls_count(LS_PROG_ISOLATE, r, p->len);
	return r == LS_R_ISO_DENIED ? LS_SHOT : LS_NEXT;
}

static __always_inline int ls_isolate(struct __sk_buff *skb, struct ls_pkt *p, int parsed, bool lan)
{
	return ls_isolate_if(p, skb->ingress_ifindex, skb->ifindex, lan);
}

#endif
