// SPDX-License-Identifier: MIT
#include "userspace/wgu/allowedips.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* A node at depth d stands for the prefix of its path's first d bits. */
struct lsw_aip_node {
	struct lsw_aip_node *child[2];
	void *peer; /* owner of the prefix ending here, or NULL */
};

static inline int bit_at(const uint8_t *addr, unsigned int i)
{
	return (addr[i / 8] >> (7 - i % 8)) & 1;
}

static struct lsw_aip_node **root_of(struct lsw_allowedips *t, int family, unsigned int *bits)
{
	if (family == AF_INET) {
		*bits = 32;
		return &t->root4;
	}
	if (family == AF_INET6) {
		*bits = 128;
		return &t->root6;
	}
	return NULL;
}

int lsw_aip_insert(struct lsw_allowedips *t, int family, const uint8_t *addr, unsigned int cidr, void *peer)
{
	struct lsw_aip_node **slot;
	unsigned int bits, i;

	slot = root_of(t, family, &bits);
	if (!slot || cidr > bits || !peer)
		return -EINVAL;
	for (i = 0;; i++) {
		if (!*slot) {
			*slot = calloc(1, sizeof(**slot));
			if (!*slot)
				return -ENOMEM;
		}
		if (i == cidr)
			break;
		slot = &(*slot)->child[bit_at(addr, i)];
	}
	if (!(*slot)->peer)
		t->count++;
	(*slot)->peer = peer;
	return 0;
}

/* Frees empty leaves on the way back up. Returns true when *slot was freed. */
static bool prune(struct lsw_aip_node **slot)
{
	struct lsw_aip_node *n = *slot;

	if (n && !n->peer && !n->child[0] && !n->child[1]) {
		free(n);
		*slot = NULL;
		return true;
	}
	return false;
}

static int remove_rec(struct lsw_allowedips *t, struct lsw_aip_node **slot, const uint8_t *addr, unsigned int depth,
		      unsigned int cidr, void *peer)
{
	int ret;

	if (!*slot)
		return -ENOENT;
	if (depth == cidr) {
		if (!(*slot)->peer || (peer && (*slot)->peer != peer))
			return -ENOENT;
		(*slot)->peer = NULL;
		t->count--;
		prune(slot);
		return 0;
	}
	ret = remove_rec(t, &(*slot)->child[bit_at(addr, depth)], addr, depth + 1, cidr, peer);
	if (!ret)
		prune(slot);
	return ret;
}

int lsw_aip_remove(struct lsw_allowedips *t, int family, const uint8_t *addr, unsigned int cidr, void *peer)
{
	struct lsw_aip_node **slot;
	unsigned int bits;

	slot = root_of(t, family, &bits);
	if (!slot || cidr > bits)
		return -EINVAL;
	return remove_rec(t, slot, addr, 0, cidr, peer);
}

void *lsw_aip_lookup(const struct lsw_allowedips *t, int family, const uint8_t *addr)
{
	const struct lsw_aip_node *n;
	unsigned int bits, i;
	void *best = NULL;

	if (family == AF_INET) {
		n = t->root4;
		bits = 32;
	} else if (family == AF_INET6) {
		n = t->root6;
		bits = 128;
	} else {
		return NULL;
	}
	for (i = 0; n; i++) {
		if (n->peer)
			best = n->peer;
		if (i == bits)
			break;
		n = n->child[bit_at(addr, i)];
	}
	return best;
}

static void remove_peer_rec(struct lsw_allowedips *t, struct lsw_aip_node **slot, void *peer)
{
	if (!*slot)
		return;
	remove_peer_rec(t, &(*slot)->child[0], peer);
	remove_peer_rec(t, &(*slot)->child[1], peer);
	if ((*slot)->peer == peer) {
		(*slot)->peer = NULL;
		t->count--;
	}
	prune(slot);
}

void lsw_aip_remove_peer(struct lsw_allowedips *t, void *peer)
{
	remove_peer_rec(t, &t->root4, peer);
	remove_peer_rec(t, &t->root6, peer);
}

static void walk_rec(const struct lsw_aip_node *n, uint8_t *addr, unsigned int depth, int family, const void *peer,
		     lsw_aip_fn fn, void *ctx)
{
	if (!n)
		return;
	if (peer && n->peer == peer)
		fn(ctx, family, addr, depth);
	for (int b = 0; b < 2; b++) {
		if (!n->child[b])
			continue;
		if (b)
			addr[depth / 8] |= (uint8_t)(0x80 >> (depth % 8));
		walk_rec(n->child[b], addr, depth + 1, family, peer, fn, ctx);
		if (b)
			addr[depth / 8] &= (uint8_t)~(0x80 >> (depth % 8));
	}
}

void lsw_aip_walk_peer(const struct lsw_allowedips *t, const void *peer, lsw_aip_fn fn, void *ctx)
{
	uint8_t addr[16] = { 0 };

	walk_rec(t->root4, addr, 0, AF_INET, peer, fn, ctx);
	memset(addr, 0, sizeof(addr));
	walk_rec(t->root6, addr, 0, AF_INET6, peer, fn, ctx);
}

static void free_rec(struct lsw_aip_node *n)
{
	if (!n)
		return;
	free_rec(n->child[0]);
	free_rec(n->child[1]);
	free(n);
}

void lsw_aip_free(struct lsw_allowedips *t)
{
	free_rec(t->root4);
	free_rec(t->root6);
	memset(t, 0, sizeof(*t));
}
