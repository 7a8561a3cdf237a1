/* SPDX-License-Identifier: MIT */
/* The agent's use of the BPF data plane (userspace/bpf, liblsbpf): with `--bpf' the
 * overlay interface gets the TC programs and the route maps follow the netmap (per-route
 * counters and conflicts for `lightscale routes'). Builds without the loader say so. */
#ifndef LS_BPFGLUE_H
#define LS_BPFGLUE_H

#include <jansson.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

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

struct ls_bpfglue_opts {
	/* `lightscale agent --fast-forward': LS_CFG_FWD_FAST on, and the LAN interfaces
	 * behind this node's advertised routes (those holding an address inside one) get the
	 * LAN programs and LS_IF_LAN | LS_IF_FWD_TARGET. */
	bool fast_forward;
	/* `--snat-subnet-routes': LS_CFG_SNAT, the overlay is LS_IF_SNAT_FROM, and each LAN
	 * (and, on an exit node, the uplink of the host's default route) gets the LAN
	 * programs (XDP in front of TC where the NIC allows it) and its own SNAT source:
	 * the LAN's address inside the advertised prefix, the uplink's preferred source.
	 * Ports snat_lo-snat_hi, reserved in ip_local_reserved_ports. */
	bool snat;
	uint16_t snat_lo, snat_hi;
	uint32_t tcp_timeout, udp_timeout, icmp_timeout; /* idle seconds (0: the defaults) */
};

/* Loads (or adopts the pinned programs of) the profile and attaches to its interface. */
int ls_bpfglue_open(const struct ls_profile *prof, const struct ls_bpfglue_opts *o, struct ls_bpfglue **out);
/* The netmap's routes into the maps (only what differs changes); with fast_forward or
 * snat also the LAN/uplink interfaces: attached when they appear, detached (ours only:
 * what the profile's pin directory records) when they no longer qualify. */
int ls_bpfglue_apply(struct ls_bpfglue *g, const struct ls_profile *prof, const struct ls_netmap *nm,
		     const struct ls_bpf_extra *x);
/* SNAT runs in BPF (snat on, the last apply put it in place). NULL-safe. */
bool ls_bpfglue_snat_active(const struct ls_bpfglue *g);
/* {"mode": "bpf", "ports": "LO-HI", "port_lo", "port_hi", "reserved": bool,
 *  "interfaces": [{"interface", "role": "lan"|"uplink"|"lan+uplink", "ipv4", "ipv6",
 *  "hooks": [{"hook", "mode": "tcx"|"clsact"|"xdp", "attached"}]}]}; borrowed, NULL
 * without snat. */
json_t *ls_bpfglue_snat_json(const struct ls_bpfglue *g);
/* Why snat was asked for and is not active (NULL: it is, or no reason known). */
const char *ls_bpfglue_snat_why(const struct ls_bpfglue *g);
/* Stop: programs keep running (pinned). */
void ls_bpfglue_close(struct ls_bpfglue *g);
/* Down: detach and unpin everything of the profile (works without an open glue). */
int ls_bpfglue_down(const struct ls_profile *prof);

#endif
