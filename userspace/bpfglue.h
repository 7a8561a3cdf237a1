/* SPDX-License-Identifier: MIT */
/* The agent's use of the BPF data plane (userspace/bpf, liblsbpf): with `--bpf' the
 * overlay interface gets the TC programs and the route maps follow the netmap (per-route
 * counters and conflicts for `lightscale routes'). Builds without the loader say so. */
#ifndef LS_BPFGLUE_H
#define LS_BPFGLUE_H

#include <net/if.h>

#include "mnet.h"
#include "netmap.h"
#include "profile.h"

/* What the multi-network coordination adds: prefix translation (client side: overlay
 * egress dst virtual->real, ingress src real->virtual) and isolation between the
 * profiles' interfaces (this profile's net_id, the other profiles' interfaces, the pairs
 * --allow-forward opens). */
struct ls_bpf_extra {
	const struct ls_mnet_map *xl;
	size_t n_xl;
	uint32_t net_id;
	struct {
		char ifname[IFNAMSIZ];
		uint32_t net_id;
		bool allowed;
	} others[LS_MNET_SLOTS];
	size_t n_others;
};

struct ls_bpfglue;


/* Loads (or adopts the pinned programs of) the profile and attaches to its interface.
 * fast_forward (`lightscale agent --fast-forward'): LS_CFG_FWD_FAST on, and the LAN
 * interfaces behind this node's advertised routes (those holding an address inside one)
 * get the LAN programs and LS_IF_LAN | LS_IF_FWD_TARGET. */
int ls_bpfglue_open(const struct ls_profile *prof, bool fast_forward, struct ls_bpfglue **out);
/* The netmap's routes into the maps (only what differs changes). */
int ls_bpfglue_apply(struct ls_bpfglue *g, const struct ls_profile *prof, const struct ls_netmap *nm,
		     const struct ls_bpf_extra *x);
/* Stop: programs keep running (pinned). */
void ls_bpfglue_close(struct ls_bpfglue *g);
/* Down: detach and unpin everything of the profile (works without an open glue). */
int ls_bpfglue_down(const struct ls_profile *prof);

#endif
