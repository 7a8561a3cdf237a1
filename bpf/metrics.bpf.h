/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * metrics: per-route packet and byte counters (per-CPU) on the overlay, by the route
 * (ls_routes*, LPM) that holds the destination (egress) or the source (ingress), and
 * route-conflict counters for routes two or more peers or networks advertise.
 */
#ifndef LS_METRICS_BPF_H
#define LS_METRICS_BPF_H

#include "pkt.bpf.h"

static __always_inline struct ls_route_val *route_of(struct ls_pkt *p, const __u8 *a)
{
	if (p->family == 4) {
		struct ls_route4_key k = { .prefixlen = 32 };
		__builtin_memcpy(&k.addr, a, 4);
		return bpf_map_lookup_elem(&ls_routes4, &k);
	}
	struct ls_route6_key k6 = { .prefixlen = 128 };
	__builtin_memcpy(k6.addr, a, 16);
	return bpf_map_lookup_elem(&ls_routes6, &k6);
}

static __always_inline int ls_metrics(struct ls_pkt *p, int parsed, bool tx)
{
	if (!p->family) {
		ls_count(LS_PROG_METRICS, LS_R_NOT_IP, p->len);
		return LS_NEXT;
	}
	struct ls_route_val *r = route_of(p, tx ? p->daddr : p->saddr);
	if (!r) {
		ls_count(LS_PROG_METRICS, LS_R_MISS, p->len);
		return LS_NEXT;
	}
	__u32 id = r->route_id;
	bool conflict = r->n_adv >= 2;
	struct ls_route_stats *s = bpf_map_lookup_elem(&ls_route_stats, &id);
	if (s) {
		if (tx) {
			s->tx_packets++;
			s->tx_bytes += p->len;
		} else {
			s->rx_packets++;
			s->rx_bytes += p->len;
		}
		if (conflict) {
			s->conflict_packets++;
			s->conflict_bytes += p->len;
		}
	}
	ls_count(LS_PROG_METRICS, conflict ? LS_R_METRICS_CONFLICT : LS_R_METRICS_ROUTE, p->len);
	return LS_NEXT;
}

#endif
