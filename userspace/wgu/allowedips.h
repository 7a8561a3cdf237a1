/* SPDX-License-Identifier: MIT */
/* AllowedIPs: a binary trie per address family mapping prefixes to peers.
 * Outbound: longest-prefix match of the destination picks the peer. Inbound:
 * the source of a decrypted packet must map to the peer it came from. A prefix
 * belongs to at most one peer; inserting it again moves it (last one wins). */
#ifndef LSW_ALLOWEDIPS_H
#define LSW_ALLOWEDIPS_H

#include <stdint.h>

struct lsw_aip_node;

struct lsw_allowedips {
	struct lsw_aip_node *root4;
	struct lsw_aip_node *root6;
	unsigned long count;
};

/* family: AF_INET (addr is 4 bytes) or AF_INET6 (16). Host bits are masked off.
 * Returns 0, -EINVAL for a bad family/cidr, -ENOMEM. */
int lsw_aip_insert(struct lsw_allowedips *t, int family, const uint8_t *addr, unsigned int cidr, void *peer);
/* Removes the exact prefix if peer owns it (NULL: whoever owns it). 0 or -ENOENT. */
int lsw_aip_remove(struct lsw_allowedips *t, int family, const uint8_t *addr, unsigned int cidr, void *peer);
void *lsw_aip_lookup(const struct lsw_allowedips *t, int family, const uint8_t *addr);
void lsw_aip_remove_peer(struct lsw_allowedips *t, void *peer);
/* Calls fn for every prefix of peer, IPv4 first, in address order. */
typedef void (*lsw_aip_fn)(void *ctx, int family, const uint8_t *addr, unsigned int cidr);
void lsw_aip_walk_peer(const struct lsw_allowedips *t, const void *peer, lsw_aip_fn fn, void *ctx);
void lsw_aip_free(struct lsw_allowedips *t);

#endif
