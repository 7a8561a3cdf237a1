/* SPDX-License-Identifier: MIT */
/*
 * liblsbpf: loads Lightscale's BPF data plane, attaches it per interface, pins maps and
 * links, and reconciles the maps with a desired state the agent describes.
 *
 * Life of an agent:
 *
 *   struct lsbpf_opts o = { .profile = "home" };          // pin dir /sys/fs/bpf/lightscale/home
 *   struct lsbpf *b;
 *   lsbpf_open(&o, &b);                  // locks the pin dir, loads, reuses pinned maps,
 *                                        // adopts pinned links (bpf_link_update)
 *   lsbpf_attach(b, "ls-home", LSBPF_ROLE_OVERLAY, LSBPF_MODE_AUTO);
 *   lsbpf_attach(b, "eth1", LSBPF_ROLE_LAN, LSBPF_MODE_AUTO);
 *   struct lsbpf_state *s = lsbpf_state_new();  ... fill ...
 *   lsbpf_apply(b, s);                   // on every netmap; removes only what it put there
 *   every few seconds: lsbpf_gc(b, NULL);
 *   lsbpf_close(b);                      // stop: programs keep enforcing (pinned links)
 *   or lsbpf_destroy(b);                 // down: detach what it attached, unpin, unreserve
 *
 * Every function returns 0 or -errno and logs what went wrong with the bad value.
 */
#ifndef LS_LSBPF_H
#define LS_LSBPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lightscale/bpf_maps.h"
#include "prefix.h"

#define LSBPF_PIN_ROOT "/sys/fs/bpf/lightscale"
#define LSBPF_LOCK_DIR "/run/lightscale/bpf-locks"

struct lsbpf;

struct lsbpf_opts {
	const char *profile; /* pin dir LSBPF_PIN_ROOT/PROFILE unless pin_dir is set */
	const char *pin_dir; /* --bpf-pin-dir */
	bool no_pin;         /* load only: no pins, no lock, no adoption (tests, benchmarks) */
	bool force_l2;       /* use the l2 lengths below instead of the defaults (0/14/14) */
	uint32_t overlay_l2, lan_l2, underlay_l2;
	uint32_t nat_max;  /* SNAT table size (0: 131072) */
	uint32_t flow_max; /* filter flow table size (0: 65536) */
};

enum lsbpf_role {
	LSBPF_ROLE_OVERLAY = 0,  /* ls_overlay_in + ls_overlay_out (TC) */
	LSBPF_ROLE_LAN = 1,      /* ls_lan_in + ls_lan_out (TC), + ls_xdp_lan_in with MODE_XDP */
	LSBPF_ROLE_UNDERLAY = 2, /* ls_underlay_in + ls_underlay_out (TC), + ls_xdp_underlay_in with MODE_XDP */
};

enum lsbpf_mode {
	LSBPF_MODE_AUTO = 0,   /* tcx when the kernel has it (6.6+), clsact otherwise */
	LSBPF_MODE_TCX = 1,
	LSBPF_MODE_CLSACT = 2,
	LSBPF_MODE_XDP = 3,     /* LAN/underlay: XDP (native, else generic) in front of TC (AUTO);
				 * declined on virtual devices (partial checksums) */
};

/* Opens (and unless no_pin: locks, pins, adopts). The environment variable
 * LIGHTSCALE_BPF_TC_MODE=tcx|clsact overrides MODE_AUTO. */
int lsbpf_open(const struct lsbpf_opts *o, struct lsbpf **out);
/* Releases the lock and frees; programs stay attached and maps pinned. */
void lsbpf_close(struct lsbpf *b);
/* Detaches everything this pin dir attached, unpins it all, removes the reserved port
 * range it added, releases the lock and frees. */
int lsbpf_destroy(struct lsbpf *b);

/* Attaches the role's programs to ifname (replacing/adopting an existing attachment of
 * this pin dir), and pins the links (tcx, xdp) or programs (clsact) as the record. */
int lsbpf_attach(struct lsbpf *b, const char *ifname, enum lsbpf_role role, enum lsbpf_mode mode);
/* Detaches what this pin dir attached to ifname. */
int lsbpf_detach(struct lsbpf *b, const char *ifname);

const char *lsbpf_pin_dir(const struct lsbpf *b);
/* A program's fd by name ("ls_overlay_in", "ls_stage_xlate_dst", ...), -ENOENT. */
int lsbpf_prog_fd(const struct lsbpf *b, const char *name);
/* A map's fd by name without "ls_" ("config", "v2r4", "nat_out", ...), -ENOENT. */
int lsbpf_map_fd(const struct lsbpf *b, const char *name);

/* ---- desired state ---- */
struct lsbpf_xlate {
	struct ls_prefix virt, real; /* same family and length */
};
struct lsbpf_route {
	struct ls_prefix prefix;
	uint32_t net_id;  /* network that owns it (isolate) */
	uint16_t n_adv;   /* peers/networks advertising it; 2+ counts conflicts */
	uint16_t flags;   /* LS_ROUTE_* */
	char name[64];    /* shown by `lightscale routes` (e.g. the advertising peer) */
};
struct lsbpf_iface {
	char ifname[16];
	uint32_t net_id;
	uint32_t flags; /* LS_IF_* */
	struct ls_prefix snat4, snat6; /* SNAT source leaving here (len ignored); family 0:
					* the state's global snat4/snat6 */
};
struct lsbpf_allow {
	uint32_t src_net, dst_net;
};
struct lsbpf_rule {
	struct ls_prefix *src; size_t n_src;
	struct ls_prefix *dst; size_t n_dst;
	uint8_t proto;           /* 0 any, 6, 17, 1 (ICMP and ICMPv6) */
	uint16_t port_lo, port_hi; /* 0-65535 for any */
};

struct lsbpf_state {
	uint32_t flags;          /* LS_CFG_* */
	uint16_t wg_port, stun_port;
	struct ls_prefix snat4, snat6; /* router's LAN addresses (len ignored); family 0: none.
					* Used where the egress interface has no own address */
	uint16_t snat_port_lo, snat_port_hi; /* reserved in ip_local_reserved_ports by apply */
	uint32_t tcp_timeout, udp_timeout, icmp_timeout; /* seconds; 0: 7440/180/30 */
	struct lsbpf_xlate *xlates; size_t n_xlates;
	struct lsbpf_route *routes; size_t n_routes;
	struct lsbpf_iface *ifaces; size_t n_ifaces;
	struct lsbpf_allow *allows; size_t n_allows;
	struct lsbpf_rule *rules; size_t n_rules; /* with n_rules == 0 and LS_CFG_FILTER: deny all but replies */
};

/* Builders for the arrays (they own copies; lsbpf_state_free frees all). -ENOMEM/-EINVAL. */
struct lsbpf_state *lsbpf_state_new(void);
void lsbpf_state_free(struct lsbpf_state *s);
int lsbpf_state_add_xlate(struct lsbpf_state *s, const char *virt, const char *real);
/* "VIRTUAL=REAL" as given to --map. */
int lsbpf_state_add_map_arg(struct lsbpf_state *s, const char *arg);
int lsbpf_state_add_route(struct lsbpf_state *s, const char *prefix, uint32_t net_id, uint16_t n_adv,
			  uint16_t flags, const char *name);
/* An interface named twice is one entry: the flags are ORed, the later net_id wins. */
int lsbpf_state_add_iface(struct lsbpf_state *s, const char *ifname, uint32_t net_id, uint32_t flags);
/* The interface's own SNAT source address for addr's family (added with flags 0 and
 * net_id 0 when not there yet). -EINVAL on a bad name or an address that is not a host. */
int lsbpf_state_set_iface_snat(struct lsbpf_state *s, const char *ifname, const struct ls_prefix *addr);
/* "IF=ADDR" (lightscale-bpf --snat-iface): lsbpf_state_set_iface_snat. -EINVAL, naming it. */
int lsbpf_state_add_iface_snat_arg(struct lsbpf_state *s, const char *arg);
/* Opens forwarding between two networks, both ways (replies need the other direction). */
int lsbpf_state_add_allow(struct lsbpf_state *s, uint32_t src_net, uint32_t dst_net);
/* src/dst: comma-separated CIDRs; proto "tcp"|"udp"|"icmp"|"any"; ports "N", "N-M" or "*". */
int lsbpf_state_add_rule(struct lsbpf_state *s, const char *src, const char *dst, const char *proto,
			 const char *ports);

/* The node's packet filter as the netmap carries it (ls_acl_compile_filter's output): an
 * array of {"src": [CIDR...], "dst": [CIDR...], "ports": ["N" | "N-M"...], "proto":
 * "tcp"|"udp"|"icmp"|"any"}; one filter rule per port range. Also sets LS_CFG_FILTER.
 * -EINVAL (naming the bad element) changes nothing in s. */
struct json_t;
int lsbpf_state_add_filter_json(struct lsbpf_state *s, const struct json_t *filter);

/* Reconciles every map with s: adds and changes what differs, deletes what s no longer
 * has (only in this pin dir's maps), batch updates where the map type allows. */
int lsbpf_apply(struct lsbpf *b, const struct lsbpf_state *s);

/* Is lo-hi wholly inside ip_local_reserved_ports of this netns? */
bool lsbpf_ports_reserved(uint16_t lo, uint16_t hi);

/* SNAT and flow-table garbage collection: removes idle entries (per-protocol timeouts,
 * short after TCP FIN/RST). *removed gets the count. */
int lsbpf_gc(struct lsbpf *b, size_t *removed);

/* The return route a LAN gateway needs when the operator routes instead of SNATing:
 * "ip route add OVERLAY via ROUTER_LAN_ADDR" for each overlay prefix. */
int lsbpf_return_route(const char *overlay_prefix, const char *router_lan_addr, char *out, size_t size);

/* ---- inspection ---- */
/* Sum of a counter over CPUs. */
int lsbpf_counter(int counters_fd, uint32_t prog, uint32_t reason, struct ls_counter *out);
const char *lsbpf_prog_name(uint32_t prog);
const char *lsbpf_reason_name(uint32_t reason);
/* The attachments a pin dir records, for one interface (NULL: all): an array of
 * {interface, hook, mode (tcx|clsact|xdp), program, program_id, attached, l2}. */
struct json_t *lsbpf_attachments_json(const char *pin_dir, const char *ifname);
/* `lightscale bpf status` for a pin dir (works without a live agent). */
int lsbpf_status_print(const char *pin_dir, bool json, FILE *f);
/* `lightscale bpf net`: every BPF program on every interface of this netns (XDP, tcx with
 * link ids, clsact filters), ours or not; an array of {interface, ifindex, l2,
 * attachments: [{hook, mode, program, type, program_id, link_id?, priority?, handle?,
 * direct_action?}]}. */
int lsbpf_net_json(struct json_t **out);
int lsbpf_net_print(bool json, FILE *f);
/* `lightscale routes`. */
int lsbpf_routes_print(const char *pin_dir, bool json, FILE *f);

/* CLI entry points (the lightscale CLI wires them in). */
int ls_cmd_bpf(int argc, char **argv);
int ls_cmd_routes(int argc, char **argv);

#endif
