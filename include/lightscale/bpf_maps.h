/* SPDX-License-Identifier: MIT */
/*
 * Every key and value of Lightscale's BPF maps, shared by bpf/ (the programs) and
 * userspace/bpf/ (the loader). There is no second copy anywhere.
 *
 * Rules for this file:
 * - Fixed-width types only (__u8.. __u64, __be16, __be32); every hole is spelled out as a
 *   pad field that must be zero (keys are hashed byte for byte).
 * - Each field says its byte order: "be" (network order) or "host".
 * - Program ids (enum ls_prog) and exit reasons (enum ls_reason) are numbered once and never
 *   reused. A retired reason keeps its number with a RETIRED comment.
 * - IPv4 addresses in 16-byte address fields sit in the first 4 bytes, the rest zero.
 */
#ifndef LIGHTSCALE_BPF_MAPS_H
#define LIGHTSCALE_BPF_MAPS_H

#include <linux/types.h>

/* ---- Programs (the "program" half of a counter key). Numbered once. ---- */
enum ls_prog {
	LS_PROG_DISPATCH = 0,  /* a hook's dispatcher (its final verdict) */
	LS_PROG_TRANSLATE = 1, /* 1:1 prefix translation */
	LS_PROG_SNAT = 2,      /* subnet-router source NAT and its reverse */
	LS_PROG_ISOLATE = 3,   /* no forwarding between networks unless allowed */
	LS_PROG_FILTER = 4,    /* the node's packet filter (ACL) on overlay ingress */
	LS_PROG_METRICS = 5,   /* per-route counters and route conflicts */
	LS_PROG_STUN = 6,      /* STUN demux on the WireGuard port */
	LS_PROG_FWD = 7,       /* fast forwarding (FIB lookup + redirect), opt-in */
	LS_PROG_MAX = 8,
};

/* ---- Exit reasons. Numbered once and never reused; each says pass/drop. ---- */
enum ls_reason {
	LS_R_NONE = 0,             /* never counted */
	LS_R_NOT_IP = 1,           /* pass: neither IPv4 nor IPv6 */
	LS_R_MALFORMED = 2,        /* drop: truncated/malformed header on a packet that matched */
	LS_R_MISS = 3,             /* pass: no map entry matched */
	LS_R_XLATE = 4,            /* pass: address(es) rewritten */
	LS_R_XLATE_FRAG = 5,       /* pass: non-first fragment, only the IP header rewritten */
	LS_R_XLATE_ICMP_ERR = 6,   /* pass: ICMP error, quoted header rewritten too */
	LS_R_HELPER_ERR = 7,       /* drop: a store/checksum helper failed */
	LS_R_SNAT_NEW = 8,         /* pass: new connection, port allocated, rewritten */
	LS_R_SNAT_HIT = 9,         /* pass: existing connection, rewritten */
	LS_R_SNAT_REPLY = 10,      /* pass: reply de-NATed */
	LS_R_SNAT_TABLE_FULL = 11, /* drop: connection table full (live flows are never evicted) */
	LS_R_SNAT_NO_PORT = 12,    /* drop: no free port after the probes */
	LS_R_SNAT_NOT_OURS = 13,   /* pass: not from the overlay / not a reply to a NAT flow */
	LS_R_SNAT_PROTO = 14,      /* pass: protocol SNAT does not handle, left alone */
	LS_R_ISO_LOCAL = 15,       /* pass: not forwarded between two networks */
	LS_R_ISO_SAME_NET = 16,    /* pass: forwarded within one network */
	LS_R_ISO_ALLOWED = 17,     /* pass: between networks, an allow rule opens the pair */
	LS_R_ISO_DENIED = 18,      /* drop: between networks without an allow rule */
	LS_R_FILTER_ALLOW = 19,    /* pass: a filter rule allows it */
	LS_R_FILTER_REPLY = 20,    /* pass: reply to a flow this node opened */
	LS_R_FILTER_DENY = 21,     /* drop: no rule allows it */
	LS_R_FILTER_TRACK = 22,    /* pass: egress flow recorded */
	LS_R_FILTER_OFF = 23,      /* pass: the filter is not enabled */
	LS_R_FILTER_FRAG = 24,     /* pass: non-first fragment (its first fragment was filtered) */
	LS_R_METRICS_ROUTE = 25,   /* pass: counted on a route */
	LS_R_METRICS_CONFLICT = 26,/* pass: counted on a route that 2+ peers/networks advertise */
	LS_R_STUN_ASSIGN = 27,     /* pass: STUN steered to the agent's socket */
	LS_R_STUN_NO_SOCK = 28,    /* pass: STUN, but the agent's socket is not there */
	LS_R_STUN_OTHER = 29,      /* pass: not STUN on the WireGuard port */
	LS_R_STUN_SPORT = 30,      /* pass: agent's STUN request now leaves from the WireGuard port */
	LS_R_PASS = 31,            /* pass: dispatcher, every stage passed */
	LS_R_DROP = 32,            /* drop: dispatcher, a stage dropped */
	LS_R_DISABLED = 33,        /* pass: stage not enabled in ls_config.flags */
	LS_R_XDP_TO_TC = 34,       /* pass: XDP leaves this packet to the TC program */
	LS_R_SNAT_ICMP_ERR = 35,   /* pass: ICMP error about a NAT flow de-NATed */
	LS_R_STUN_ASSIGN_ERR = 36, /* pass: bpf_sk_assign failed */
	LS_R_SNAT_FRAG = 37,       /* drop: non-first fragment from the overlay (no ports to NAT) */
	LS_R_FWD_REDIRECT = 38,    /* pass: forwarded by the program (FIB lookup + redirect) */
	LS_R_FWD_STACK = 39,       /* pass: left to the stack (local, no neighbour, TTL, MTU, target) */
	LS_R_STUN_DPORT = 40,      /* pass: XDP steered STUN to the agent by its destination port */
	LS_R_LAN_OUT_DONE = 41,    /* pass: LAN egress; its stages (isolate, snat) already ran in the
				    * fast-forwarding ingress program that redirected the packet */
	LS_REASON_MAX = 42,
};

/* skb->mark of a packet a fast-forwarding ingress program redirected after running the
 * LAN egress stages (isolate, snat) for its target itself: the target's ls_lan_out sees it,
 * puts the mark back to 0 and passes the packet (LS_R_LAN_OUT_DONE). Only packets that
 * arrived with mark 0 get it, and nothing routes between the two hooks (an nftables netdev
 * egress chain on the target, which runs before TC egress, would see it). */
#define LS_MARK_LAN_OUT_DONE 0x4c4f5554u /* "LOUT"; outside the profiles' 0x4c53xxxx */

#define LS_REASON_SLOTS 64 /* counter index = prog * LS_REASON_SLOTS + reason */
#define LS_COUNTERS_MAX (LS_PROG_MAX * LS_REASON_SLOTS)

/* ls_counters: PERCPU_ARRAY, key __u32 index (host), value: */
struct ls_counter {
	__u64 packets; /* host */
	__u64 bytes;   /* host; skb->len / XDP frame length */
};

/* ---- Configuration: ARRAY of one ls_config at key 0 ---- */
#define LS_XLATE_HASH_LENS 4 /* at most this many mapping lengths (per family) take the hash path */
enum ls_cfg_flags {
	LS_CFG_XLATE_CLIENT = 1 << 0, /* overlay egress dst virtual->real, ingress src real->virtual */
	LS_CFG_XLATE_ROUTER = 1 << 1, /* overlay ingress dst virtual->real, LAN ingress src real->virtual */
	LS_CFG_SNAT = 1 << 2,         /* SNAT overlay->LAN on LAN egress, reverse on LAN ingress */
	LS_CFG_ISOLATE = 1 << 3,      /* isolation between networks on egress */
	LS_CFG_FILTER = 1 << 4,       /* enforce the filter on overlay ingress */
	LS_CFG_METRICS = 1 << 5,      /* per-route counters on the overlay */
	LS_CFG_STUN = 1 << 6,         /* STUN demux / source-port rewrite on the underlay */
	LS_CFG_FWD_FAST = 1 << 7,     /* forward in BPF (FIB lookup + redirect) to LS_IF_FWD_TARGET
				       * interfaces, skipping the stack's forwarding path and with it
				       * netfilter FORWARD/POSTROUTING: opt-in */
};

/* Idle timeouts (seconds) when ls_config's are 0; TCP after FIN/RST: LS_TIMEOUT_TCP_CLOSING */
#define LS_TIMEOUT_TCP 7440
#define LS_TIMEOUT_UDP 180
#define LS_TIMEOUT_ICMP 30
#define LS_TIMEOUT_TCP_CLOSING 60

struct ls_config {
	__u32 flags;        /* host: LS_CFG_* */
	__u16 wg_port;      /* host: WireGuard listen port */
	__u16 stun_port;    /* host: the agent's STUN socket port */
	__be32 snat4;       /* be: router's LAN IPv4 address (SNAT source) where the egress
			     * interface has none of its own (ls_iface.snat4) */
	__u16 snat_port_lo; /* host: first port of the reserved SNAT range */
	__u16 snat_port_hi; /* host: last port of the range (inclusive) */
	__u8 snat6[16];     /* be: router's LAN IPv6 address (fallback, as snat4) */
	__u32 tcp_timeout;  /* host, seconds: idle established TCP (userspace GC; filter flows) */
	__u32 udp_timeout;  /* host, seconds */
	__u32 icmp_timeout; /* host, seconds */
	__u8 xlate4_lens[LS_XLATE_HASH_LENS]; /* host: the lengths (1..32) of the IPv4 mappings,
			     * longest first, 0 after the last. When set, the programs look an
			     * address up in the ls_v2r4h/ls_r2v4h hashes once per length, longest
			     * first (the first hit is the longest match); all 0: the LPM tries
			     * ls_v2r4/ls_r2v4 decide (more lengths than this, or a small table).
			     * The bytes of the former __u32 xlate4_len (one length) read the same. */
	__u8 xlate6_lens[LS_XLATE_HASH_LENS]; /* host: the same for the IPv6 mappings (1..128),
			     * with the hashes ls_v2r6h/ls_r2v6h; all 0: the tries ls_v2r6/ls_r2v6 */
};

/* ---- translate: LPM tries, virtual->real (v2r) and real->virtual (r2v) ---- */
struct ls_xlate4_key {
	__u32 prefixlen; /* host: LPM prefix length, 0..32 */
	__be32 addr;     /* be: prefix */
};
struct ls_xlate4_val {
	__be32 addr; /* be: the other side's prefix (host bits zero) */
	__be32 mask; /* be: netmask of the prefix length (both sides have the same length) */
	__u32 id;    /* host: mapping id assigned by the loader */
	__u32 pad;   /* zero */
};
struct ls_xlate6_key {
	__u32 prefixlen; /* host: 0..128 */
	__u8 addr[16];   /* be */
};
struct ls_xlate6_val {
	__u8 addr[16]; /* be: the other side's prefix */
	__u8 mask[16]; /* be: netmask */
	__u32 id;      /* host */
	__u32 pad;     /* zero */
};

/* ---- routes: LPM per family; used by metrics (counters) and isolate (owning network) ---- */
struct ls_route4_key {
	__u32 prefixlen; /* host */
	__be32 addr;     /* be */
};
struct ls_route6_key {
	__u32 prefixlen; /* host */
	__u8 addr[16];   /* be */
};
enum ls_route_flags {
	LS_ROUTE_LOCAL = 1 << 0, /* advertised by this node (behind its LAN) */
};
struct ls_route_val {
	__u32 route_id; /* host: index into ls_route_stats, < LS_MAX_ROUTES */
	__u32 net_id;   /* host: network that owns the route (0: none) */
	__u16 n_adv;    /* host: how many peers/networks advertise it (2+ is a conflict) */
	__u16 flags;    /* host: LS_ROUTE_* */
	__u32 pad;      /* zero */
};
#define LS_MAX_ROUTES 4096
/* ls_route_stats: PERCPU_ARRAY[LS_MAX_ROUTES], key route_id, value: */
struct ls_route_stats {
	__u64 tx_packets; /* host: overlay egress, destination in the route */
	__u64 tx_bytes;
	__u64 rx_packets; /* host: overlay ingress, source in the route */
	__u64 rx_bytes;
	__u64 conflict_packets; /* host: packets on this route while n_adv >= 2 */
	__u64 conflict_bytes;
};

/* ls_route_info: ARRAY[LS_MAX_ROUTES], key route_id: what the route is, for
 * `lightscale routes` and bpftool (written by the loader, never read by a program). */
struct ls_route_info {
	__u8 family;    /* 0: slot unused, 4 or 6 */
	__u8 prefixlen; /* host */
	__u16 n_adv;    /* host */
	__u32 net_id;   /* host */
	__u8 addr[16];  /* be */
	char name[40];  /* NUL-terminated: the advertising peer(s) */
};

/* ---- isolate ---- */
enum ls_iface_flags {
	LS_IF_OVERLAY = 1 << 0,   /* a Lightscale overlay interface (WireGuard/TUN) */
	LS_IF_LAN = 1 << 1,       /* a LAN interface behind a subnet router */
	LS_IF_SNAT_FROM = 1 << 2, /* packets received here are SNATed when they leave on a LAN */
	LS_IF_FWD_TARGET = 1 << 3, /* Ethernet interface LS_CFG_FWD_FAST may redirect to (from XDP:
				    * only when nothing on its TC egress is needed) */
};
/* ls_ifaces: HASH, key __u32 ifindex (host), value: */
struct ls_iface {
	__u32 net_id;   /* host: network of this interface (0: none) */
	__u32 flags;    /* host: LS_IF_* */
	__be32 snat4;   /* be: SNAT source for IPv4 leaving here (a LAN's router address, an
			 * exit's uplink address); 0: ls_config.snat4 */
	__u32 pad;      /* zero */
	__u8 snat6[16]; /* be: SNAT source for IPv6 leaving here; all zero: ls_config.snat6 */
};
/* ls_iso_allow: HASH, key: */
struct ls_iso_key {
	__u32 src_net; /* host: network the packet came from */
	__u32 dst_net; /* host: network it goes to */
};
/* value: __u32 rule id (host) */

/* ---- filter ---- */
#define LS_FILTER_RULES 256
#define LS_FILTER_WORDS (LS_FILTER_RULES / 64)
struct ls_filter4_key {
	__u32 prefixlen; /* host */
	__be32 addr;     /* be */
};
struct ls_filter6_key {
	__u32 prefixlen; /* host */
	__u8 addr[16];   /* be */
};
/* Value of the src and dst LPM maps: rules whose src (dst) prefix contains this prefix.
 * The loader ORs the bits of every containing rule into each entry, since LPM returns only
 * the longest match. */
struct ls_filter_mask {
	__u64 bits[LS_FILTER_WORDS]; /* host: bit r of word r/64 = rule r */
};
/* ls_filter_rules: ARRAY[LS_FILTER_RULES], key rule index, value: */
struct ls_filter_rule {
	__u8 proto;     /* 0 any, 6 tcp, 17 udp, 1 icmp (ICMP and ICMPv6) */
	__u8 valid;     /* 1 when the slot holds a rule */
	__u16 port_lo;  /* host: destination port range (tcp/udp), inclusive */
	__u16 port_hi;  /* host */
	__u16 pad;      /* zero */
};

/* ---- connection tuples: filter flow table and SNAT tables ---- */
struct ls_tuple {
	__u8 family;    /* 4 or 6 */
	__u8 proto;     /* IPPROTO_TCP/UDP/ICMP/ICMPV6 */
	__u16 pad;      /* zero */
	__be16 sport;   /* be: source port, or ICMP echo id */
	__be16 dport;   /* be: destination port, 0 for ICMP */
	__u8 saddr[16]; /* be */
	__u8 daddr[16]; /* be */
};
/* ls_flows: LRU_HASH, key ls_tuple as it left on overlay egress (local -> remote), value: */
struct ls_flow {
	__u64 last_ns; /* host: bpf_ktime_get_ns of the last egress packet */
};

/* ls_nat_out: HASH, key = ls_tuple of the original packet (client -> server),
 * value: what it becomes. ls_nat_in: HASH, key = ls_tuple of the reply as it arrives
 * (server -> router:port), value: the client's address and port. */
enum ls_nat_state {
	LS_NAT_OPEN = 0,
	LS_NAT_CLOSING = 1, /* TCP FIN or RST seen: short timeout */
};
struct ls_nat_val {
	__u8 addr[16];  /* be: out: SNAT address; in: client address */
	__be16 port;    /* be: out: allocated port/id; in: client's port/id */
	__u8 state;     /* LS_NAT_* */
	__u8 pad;       /* zero */
	__u32 pad2;     /* zero */
	__u64 last_ns;  /* host: last packet seen (bpf_ktime_get_ns) */
};

/* Pinned map names (files under the pin directory). */
#define LS_PIN_COUNTERS "counters"
#define LS_PIN_ROUTE_STATS "route_stats"

#endif
