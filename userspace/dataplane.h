/* SPDX-License-Identifier: MIT */
/*
 * The data plane of one profile: turns a netmap into the WireGuard interface, its peers,
 * addresses, routes, rules, sysctls and masquerading, applying only what differs.
 *
 *   ls_dp_open()        pick the engine, create or adopt ls-P, set key/port/fwmark/MTU
 *   ls_dp_sync()        full reconcile against what the engine and the kernel hold (at
 *                       start and after adoption: peers that already match are not touched)
 *   ls_dp_apply_diff()  a netmap delta: only the peers it names are set
 *   ls_dp_ensure()      re-add rules/routes/addresses that someone else deleted
 *   ls_dp_down()        remove everything (interface, addresses, routes, rules, nft table)
 *
 * Routing (with apply_routes): peers' advertised routes go into the profile's table; the
 * exit node's default route too. Rules, for IPv4 and IPv6, at rule_prio:
 *   P+0  to CONTROL-HOST lookup main               (one per control address)
 *   P+1  lookup main suppress_prefixlength 0
 *   P+2  not fwmark 0x4c530000/0xffff0000 lookup TABLE
 * so the engines' UDP and the control connections (all marked 0x4c53xxxx, see mnet.h)
 * never enter any profile's tunnel. P, TABLE and MARK come from the multi-network state
 * (mnet.h). Routes that overlap another profile's are installed as their virtual prefix
 * and translated by the BPF program (loaded for that unless --no-bpf).
 */
#ifndef LS_DATAPLANE_H
#define LS_DATAPLANE_H

#include <jansson.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#include "mnet.h"
#include "netmap.h"
#include "profile.h"
#include "wg.h"

struct ls_bpfglue;

struct ls_dp_opts {
	const char *engine;    /* auto, kernel, userspace */
	bool apply_routes;     /* advertised routes, exit node, rules */
	const char *exit_node; /* NULL/"none", "auto", id or name */
	bool no_masquerade;    /* routers and exits masquerade by default; without it the
				* agent prints the return routes the LAN gateways need */
	bool snat_subnet_routes; /* with bpf: SNAT in BPF on the LANs and the uplink instead
				  * of the nftables masquerade */
	uint16_t snat_port_lo, snat_port_hi; /* its port range (0: LS_SNAT_PORTS_DEFAULT_*) */
	uint32_t snat_timeouts[3]; /* idle TCP, UDP, ICMP seconds (0: 7440, 180, 30) */
	bool bpf;              /* attach the BPF data plane (per-route metrics) */
	bool fast_forward;     /* with bpf: forward between the router's LANs in BPF (bpfglue.h) */
	bool no_bpf;           /* never load it, not even for translation */
	struct ls_mnet_map *maps;  /* --map VIRTUAL=REAL */
	size_t n_maps;
	char **allow_forward;      /* --allow-forward PROFILE */
	size_t n_allow;
	struct ls_mnet_pools pools; /* --virtual-pool (family 0: the defaults) */
	/* NAT traversal (agent.c): the endpoint a peer must have now, overriding the
	 * netmap's first one (a direct address that answered, a relay proxy's loopback
	 * socket, the next candidate after a stale handshake). Called with whatever lock
	 * the caller holds around ls_dp_*; returns false to keep the netmap's choice. */
	bool (*ep_override)(void *ctx, const uint8_t key[LS_WG_KEY_LEN], struct sockaddr_storage *out);
	void *ep_ctx;
};

/* --snat-ports default: above Linux's default ephemeral range (32768-60999), reserved
 * in ip_local_reserved_ports while SNAT runs. */
#define LS_SNAT_PORTS_DEFAULT_LO 61000
#define LS_SNAT_PORTS_DEFAULT_HI 65000

/* A router's own interfaces toward what it routes: LANs (an address inside one of the
 * node's advertised routes) and, when it advertises a default route (exit node), the
 * uplink (the interface of the host's default route, per family). */
struct ls_router_if {
	char ifname[IFNAMSIZ];
	bool lan, uplink;
	struct ls_prefix addr4, addr6; /* the router's address there (host, len = 32/128);
					* family 0: none. LAN: inside the advertised prefix;
					* uplink: the default route's preferred source */
};
/* Fills out (at most max) from the netmap's own routes and the host's interfaces and
 * routes; skip_ifname is the overlay. Returns the count, or -errno. *no_uplink (may be
 * NULL) is set when the node advertises a default route and the host has one for that
 * family that names no single interface (multipath, or through the overlay). */
int ls_dp_router_ifaces(const struct ls_netmap *nm, const char *skip_ifname, struct ls_router_if *out, size_t max,
			bool *no_uplink);

struct ls_dp {
	struct ls_profile *prof;
	struct ls_dp_opts opts;
	const struct ls_wg_engine *eng;
	int ifindex;
	bool created; /* we created the interface (false: adopted) */
	int64_t exit_peer; /* chosen exit node id, 0: none */
	char exit_reason[320];
	json_t *refused;   /* [{"route", "peer", "reason"}] */
	json_t *overlay_conflicts; /* [{"prefix", "reason"}]: the overlay overlaps host routes */
	json_t *sysctls;   /* {"net.ipv4...": "1"} as set */
	bool masquerading;
	bool masq_known;   /* masquerading says what nft holds (false at start: a table a
			    * previous run left is removed when not wanted) */
	json_t *snat;      /* how overlay traffic leaving the router is translated:
			    * {"mode": "bpf"|"nftables"|"routed"|"off", ...} */
	json_t *return_routes; /* routed mode (--no-masquerade): [{"interface", "via",
				* "prefix", "command"}] the LAN gateways need */
	struct ls_prefix control_hosts[8];
	size_t n_control_hosts;
	struct ls_bpfglue *bpf; /* with opts.bpf */
	char bpf_error[128];    /* why it is not loaded */
	json_t *mappings;       /* [{"real", "virtual", "conflicts_with", "source"}] */
	struct ls_mnet_map xl[64]; /* installed translations */
	size_t n_xl;
	char exit_owner[LS_PROFILE_NAME_MAX + 1]; /* profile owning the default route ("": none) */
	bool iso_nft;           /* isolation through nft (no BPF) */
	uint64_t engine_ns; /* time spent in engine set calls (benchmarks) */
	uint64_t engine_calls;
};

int ls_dp_open(struct ls_dp *dp, struct ls_profile *prof, const struct ls_dp_opts *opts);
void ls_dp_close(struct ls_dp *dp); /* frees memory; leaves the interface */
int ls_dp_sync(struct ls_dp *dp, const struct ls_netmap *nm);
int ls_dp_apply_diff(struct ls_dp *dp, const struct ls_netmap *nm, const struct ls_nm_diff *diff);
int ls_dp_ensure(struct ls_dp *dp, const struct ls_netmap *nm);
/* Sets one peer's endpoint in the engine (nothing else of the peer changes). */
int ls_dp_set_endpoint(struct ls_dp *dp, const uint8_t key[LS_WG_KEY_LEN], const struct sockaddr_storage *ep);
/* Removes everything of the profile; works without an open dp (after a crash). */
int ls_dp_down(struct ls_profile *prof);

/* Exit node choice: "auto" = first peer (lowest id) that is an exit node. */
const struct ls_nm_peer *ls_dp_pick_exit(const struct ls_netmap *nm, const char *want, char *why, size_t why_size);

/* Local endpoints: every global address of other interfaces, with port. */
int ls_local_endpoints(const char *skip_ifname, int port, char ***out, size_t *n);
void ls_strv_free(char **v, size_t n);

/* Resolves the control URLs' hosts to addresses (for the P+0 rules). */
size_t ls_control_hosts(const char *urls, struct ls_prefix *out, size_t max);

#endif
