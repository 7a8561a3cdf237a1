// SPDX-License-Identifier: MIT
/* A chained hash table keyed by fixed-length byte strings, hashed with SipHash. */
#include "relay.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static size_t bucket_of(const struct lsr_table *t, const uint8_t *key, size_t nbuckets)
{
	uint8_t h[crypto_shorthash_siphash24_BYTES];
	uint64_t v;

	crypto_shorthash_siphash24(h, key, t->keylen, t->sipkey);
	memcpy(&v, h, sizeof(v));
	return (size_t)(v & (nbuckets - 1));
}

int lsr_table_init(struct lsr_table *t, size_t keylen)
{
	memset(t, 0, sizeof(*t));
	t->keylen = keylen;
	t->nbuckets = 64;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (!t->buckets)
		return -ENOMEM;
	randombytes_buf(t->sipkey, sizeof(t->sipkey));
	return 0;
}

void lsr_table_free(struct lsr_table *t)
{
	free(t->buckets);
	t->buckets = NULL;
	t->count = t->nbuckets = 0;
}

struct lsr_hnode *lsr_table_find(const struct lsr_table *t, const uint8_t *key)
{
	struct lsr_hnode *n;

	if (!t->buckets)
		return NULL;
	for (n = t->buckets[bucket_of(t, key, t->nbuckets)]; n; n = n->next)
		if (!memcmp(n->key, key, t->keylen))
			return n;
	return NULL;
}

static void grow(struct lsr_table *t)
{
	size_t nb = t->nbuckets * 2;
	struct lsr_hnode **b = calloc(nb, sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct lsr_hnode *n = t->buckets[i], *next;

		for (; n; n = next) {
			size_t j = bucket_of(t, n->key, nb);

			next = n->next;
			n->next = b[j];
			b[j] = n;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = nb;
}

int lsr_table_insert(struct lsr_table *t, struct lsr_hnode *n)
{
	size_t i;

	if (!t->buckets)
		return -ENOMEM;
	if (t->count + 1 > t->nbuckets)
		grow(t);
	i = bucket_of(t, n->key, t->nbuckets);
	n->next = t->buckets[i];
	t->buckets[i] = n;
	t->count++;
	return 0;
}

void lsr_table_remove(struct lsr_table *t, struct lsr_hnode *n)
{
	struct lsr_hnode **pp;

	if (!t->buckets)
		return;
	for (pp = &t->buckets[bucket_of(t, n->key, t->nbuckets)]; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			n->next = NULL;
			t->count--;
			return;
		}
	}
}

void lsr_table_foreach(struct lsr_table *t, void (*fn)(struct lsr_hnode *n, void *ctx), void *ctx)
{
	for (size_t i = 0; t->buckets && i < t->nbuckets; i++) {
		struct lsr_hnode *n = t->buckets[i], *next;

		for (; n; n = next) {
			next = n->next;
			fn(n, ctx);
		}
	}
}
