/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Every map of the Lightscale data plane. Keys and values come from
 * include/lightscale/bpf_maps.h; the loader pins each map under the profile's pin
 * directory by its name without the "ls_" prefix (bpftool map dump pinned DIR/NAME).
 */
#ifndef LS_MAPS_BPF_H
#define LS_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lightscale/bpf_maps.h"

/* Sizes the loader may change before load (bpf_map__set_max_entries). */
#ifndef LS_XLATE_MAX
#define LS_XLATE_MAX 16384
#endif
#ifndef LS_ROUTE_MAX
#define LS_ROUTE_MAX 16384
#endif
#ifndef LS_FILTER_PREFIX_MAX
#define LS_FILTER_PREFIX_MAX 8192
#endif
#ifndef LS_FLOW_MAX
#define LS_FLOW_MAX 65536
#endif
#ifndef LS_NAT_MAX
#define LS_NAT_MAX 131072
#endif

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ls_config);
} ls_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LS_COUNTERS_MAX);
	__type(key, __u32);
	__type(value, struct ls_counter);
} ls_counters SEC(".maps");

#define LS_LPM(name, k, v, max)                          \
	struct {                                         \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);     \
		__uint(max_entries, max);                \
		__uint(map_flags, BPF_F_NO_PREALLOC);    \
		__type(key, k);                          \
		__type(value, v);                        \
	} name SEC(".maps")

/* translate */
LS_LPM(ls_v2r4, struct ls_xlate4_key, struct ls_xlate4_val, LS_XLATE_MAX);
LS_LPM(ls_r2v4, struct ls_xlate4_key, struct ls_xlate4_val, LS_XLATE_MAX);
LS_LPM(ls_v2r6, struct ls_xlate6_key, struct ls_xlate6_val, LS_XLATE_MAX);
LS_LPM(ls_r2v6, struct ls_xlate6_key, struct ls_xlate6_val, LS_XLATE_MAX);
/* The same IPv4 mappings keyed by {length, prefix}: one hash lookup instead of an LPM
 * walk when all share one length (ls_config.xlate4_len). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_XLATE_MAX);
	__type(key, struct ls_xlate4_key);
	__type(value, struct ls_xlate4_val);
} ls_v2r4h SEC(".maps"), ls_r2v4h SEC(".maps");
/* and the IPv6 mappings (ls_config.xlate6_lens) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_XLATE_MAX);
	__type(key, struct ls_xlate6_key);
	__type(value, struct ls_xlate6_val);
} ls_v2r6h SEC(".maps"), ls_r2v6h SEC(".maps");

/* routes (metrics, isolate) */
LS_LPM(ls_routes4, struct ls_route4_key, struct ls_route_val, LS_ROUTE_MAX);
LS_LPM(ls_routes6, struct ls_route6_key, struct ls_route_val, LS_ROUTE_MAX);
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LS_MAX_ROUTES);
	__type(key, __u32);
	__type(value, struct ls_route_stats);
} ls_route_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LS_MAX_ROUTES);
	__type(key, __u32);
	__type(value, struct ls_route_info);
} ls_route_info SEC(".maps");

/* isolate */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct ls_iface);
} ls_ifaces SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct ls_iso_key);
	__type(value, __u32);
} ls_iso_allow SEC(".maps");

/* filter */
LS_LPM(ls_fsrc4, struct ls_filter4_key, struct ls_filter_mask, LS_FILTER_PREFIX_MAX);
LS_LPM(ls_fdst4, struct ls_filter4_key, struct ls_filter_mask, LS_FILTER_PREFIX_MAX);
LS_LPM(ls_fsrc6, struct ls_filter6_key, struct ls_filter_mask, LS_FILTER_PREFIX_MAX);
LS_LPM(ls_fdst6, struct ls_filter6_key, struct ls_filter_mask, LS_FILTER_PREFIX_MAX);
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LS_FILTER_RULES);
	__type(key, __u32);
	__type(value, struct ls_filter_rule);
} ls_frules SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LS_FLOW_MAX);
	__type(key, struct ls_tuple);
	__type(value, struct ls_flow);
} ls_flows SEC(".maps");

/* snat: plain hashes, never LRU, so a live flow is never evicted to make room */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_NAT_MAX);
	__type(key, struct ls_tuple);
	__type(value, struct ls_nat_val);
} ls_nat_out SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_NAT_MAX);
	__type(key, struct ls_tuple);
	__type(value, struct ls_nat_val);
} ls_nat_in SEC(".maps");

/* Settings fixed at load time (skel->rodata). The overlay is L3 (WireGuard, TUN: IP at
 * offset 0); LAN and underlay NICs are Ethernet. The table tests set 14 everywhere, since
 * BPF_PROG_TEST_RUN frames TC input with Ethernet. */
const volatile __u32 cfg_overlay_l2 = 0;
const volatile __u32 cfg_lan_l2 = 14;
const volatile __u32 cfg_underlay_l2 = 14;

static __always_inline struct ls_config *ls_cfg(void)
{
	__u32 k = 0;
	return bpf_map_lookup_elem(&ls_config, &k);
}

/* An interface's LS_IF_* flags; 0 when it is not in the map. */
static __always_inline __u32 if_flags(__u32 ifindex)
{
	struct ls_iface *i = bpf_map_lookup_elem(&ls_ifaces, &ifindex);
	return i ? i->flags : 0;
}

static __always_inline void ls_count(__u32 prog, __u32 reason, __u32 len)
{
	__u32 idx = prog * LS_REASON_SLOTS + reason;
	struct ls_counter *c = bpf_map_lookup_elem(&ls_counters, &idx);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

#endif
