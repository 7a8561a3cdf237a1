/* SPDX-License-Identifier: MIT */
/*
 * The netmap model (see include/lightscale/api.h for the JSON document): parse a full map
 * or a delta, validate it, apply a delta to a full map, serialise it back, and diff two
 * full maps peer by peer for the agent's reconciler.
 *
 * Every parse validates the whole document before anything is returned: a bad netmap
 * gets an error naming the field and the value ("peers[3].allowed_ips[1]: `10.0.0.1/8'
 * is not a prefix") and produces nothing. ls_netmap_apply_delta() checks the delta
 * against the map before it touches it, so a delta that cannot apply changes nothing.
 *
 * Peers are kept sorted by id; ids and WireGuard keys are unique within a map.
 */
#ifndef LS_NETMAP_H
#define LS_NETMAP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "prefix.h"

#define LS_NM_MAX_PEERS 100000
#define LS_NM_MAX_LIST 1024 /* addresses, allowed_ips, endpoints, routes, relays... per object */
#define LS_NM_MAX_STR 255   /* names, DNS names, URLs */

struct ls_nm_strv {
	char **v;
	size_t n;
};

struct ls_nm_prefixv {
	struct ls_prefix *v;
	size_t n;
};

enum ls_nm_status {
	LS_NM_ACTIVE = 0,
	LS_NM_PENDING,
	LS_NM_REVOKED,
	LS_NM_EXPIRED,
};

struct ls_nm_network {
	char *id;
	char *name;
	char *dns_suffix;
	bool has_ipv4, has_ipv6;
	struct ls_prefix ipv4, ipv6;
};

struct ls_nm_self {
	int64_t id;
	char *name;
	char *dns_name;
	bool has_wg_key;
	uint8_t wg_key[LS_WG_KEY_LEN];
	struct ls_nm_prefixv addresses; /* host prefixes (/32, /128) */
	enum ls_nm_status status;
	int64_t key_expiry; /* 0: none */
	struct ls_nm_prefixv routes;
};

struct ls_nm_peer {
	int64_t id;
	char *name;
	char *dns_name;
	uint8_t wg_key[LS_WG_KEY_LEN];
	struct ls_nm_prefixv addresses;
	struct ls_nm_prefixv allowed_ips;
	struct ls_nm_strv endpoints; /* validated "ip:port" / "[ip6]:port" strings */
	struct ls_nm_prefixv routes;
	struct ls_nm_prefixv standby_routes;
	bool exit_node;
	bool online;
	int64_t last_seen; /* 0: never */
	char *home_relay;  /* NULL: none */
};

struct ls_nm_turn {
	char *url;
	char *username;
	char *credential;
};

struct ls_nm_relays {
	struct ls_nm_strv stun;
	struct ls_nm_turn *turn;
	size_t n_turn;
	struct ls_nm_strv stream;
	struct ls_nm_strv udp;
};

struct ls_nm_dns_record {
	char *name;
	char *type; /* "A", "AAAA", "CNAME", "TXT"... */
	char *value;
};

struct ls_nm_dns {
	char *suffix;
	struct ls_nm_strv resolvers;
	struct ls_nm_strv search;
	struct ls_nm_dns_record *records;
	size_t n_records;
};

struct ls_netmap {
	int64_t version;
	bool full;      /* false: a delta */
	bool unchanged; /* {"version": V, "unchanged": true}: nothing else is set */
	/* In a delta, a section is present only when it changed since the version the client
	 * holds (self, network, relays, dns; the server's control and audit sections too):
	 * absent means unchanged. A full map always has network and self; relays, dns and
	 * packet_filter may be absent (empty). */
	bool has_network, has_relays, has_dns;
	bool has_self; /* always true in a full map */
	struct ls_nm_network network;
	struct ls_nm_self self;
	struct ls_nm_peer **peers; /* sorted by id */
	size_t n_peers;
	int64_t *peers_removed; /* delta only */
	size_t n_peers_removed;
	struct ls_nm_relays relays;
	struct ls_nm_dns dns;
	json_t *packet_filter; /* opaque (lib/acl.h compiles it); NULL: absent */
};

/* Parses a netmap document (full, delta or "unchanged"). On error returns -EINVAL (or
 * -ENOMEM) and, when err is non-NULL, a message naming the field and the bad value. */
int ls_netmap_parse(const char *json, size_t len, struct ls_netmap **out, char *err, size_t err_size);
int ls_netmap_parse_json(json_t *doc, struct ls_netmap **out, char *err, size_t err_size);
void ls_netmap_free(struct ls_netmap *nm);

/* The document as JSON (full or delta, as nm->full says). New reference or NULL. */
json_t *ls_netmap_to_json(const struct ls_netmap *nm);
/* The relays section alone. */
json_t *ls_nm_relays_json(const struct ls_nm_relays *r);
/* Compact JSON text, malloc'd; NULL on allocation failure. */
char *ls_netmap_dump(const struct ls_netmap *nm);

/* Applies delta to base (a full map) in place. The delta must be a delta whose version
 * is newer than base's; its peers replace or join base's peers, peers_removed go, and
 * present sections replace base's. Ownership of the delta's contents moves into base
 * (free the delta afterwards as usual). On error (-EINVAL with a message, -ENOMEM) base
 * is unchanged. */
int ls_netmap_apply_delta(struct ls_netmap *base, struct ls_netmap *delta, char *err, size_t err_size);

/* The same, and fills diff (when non-NULL) with what the delta did to the peers: added,
 * removed and changed (with what changed). The replaced and removed peers stay alive in
 * the diff until ls_nm_diff_free(). */
struct ls_nm_diff;
int ls_netmap_apply_delta_diff(struct ls_netmap *base, struct ls_netmap *delta, struct ls_nm_diff *diff,
			       char *err, size_t err_size);

/* Binary search by id; NULL when absent. */
struct ls_nm_peer *ls_netmap_find_peer(const struct ls_netmap *nm, int64_t id);
/* Case-sensitive match on id (decimal), name or DNS name; NULL when absent. */
struct ls_nm_peer *ls_netmap_lookup_peer(const struct ls_netmap *nm, const char *id_or_name);

/* What changed between two peers with the same id (bit set). */
enum {
	LS_NM_CHG_KEY = 1 << 0,         /* wg_key: the WireGuard peer is replaced */
	LS_NM_CHG_ALLOWED_IPS = 1 << 1, /* allowed_ips */
	LS_NM_CHG_ENDPOINTS = 1 << 2,   /* endpoints */
	LS_NM_CHG_ROUTES = 1 << 3,      /* routes, standby_routes, exit_node */
	LS_NM_CHG_ADDRESSES = 1 << 4,   /* addresses (DNS) */
	LS_NM_CHG_META = 1 << 5,        /* name, dns_name, online, last_seen, home_relay */
};

struct ls_nm_change {
	const struct ls_nm_peer *old, *new;
	unsigned int what; /* LS_NM_CHG_* */
};

/* Peer-level difference between two full maps (either may be NULL: empty). Pointers
 * borrow from the maps. Peers whose only change is LS_NM_CHG_META are listed in changed
 * too; a reconciler of WireGuard state looks at `what`. */
struct ls_nm_diff {
	const struct ls_nm_peer **added;
	size_t n_added;
	const struct ls_nm_peer **removed;
	size_t n_removed;
	struct ls_nm_change *changed;
	size_t n_changed;
	struct ls_nm_peer **owned; /* peers retired by a delta, freed with the diff */
	size_t n_owned;
};

int ls_netmap_diff(const struct ls_netmap *old, const struct ls_netmap *new, struct ls_nm_diff *d);
void ls_nm_diff_free(struct ls_nm_diff *d);
unsigned int ls_nm_peer_compare(const struct ls_nm_peer *a, const struct ls_nm_peer *b);

const char *ls_nm_status_name(enum ls_nm_status s);

#endif
