// SPDX-License-Identifier: MIT
/* Token buckets per key (source address, node), in a fixed table: a key hashes to a
 * run of 4 slots; a new key takes a free or the longest-idle slot. Per server. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "server.h"

#define RL_SLOTS (1u << 16)
#define RL_WAYS 4

struct rl_slot {
	uint64_t key;
	uint64_t last_ms;
	double tokens;
};

struct lsc_rl {
	uint8_t hkey[crypto_shorthash_KEYBYTES];
	struct rl_slot slots[RL_SLOTS];
};

struct lsc_rl *lsc_rl_new(void)
{
	struct lsc_rl *rl = calloc(1, sizeof(*rl));

	if (rl)
		randombytes_buf(rl->hkey, sizeof(rl->hkey));
	return rl;
}

void lsc_rl_free(struct lsc_rl *rl)
{
	free(rl);
}

bool lsc_rl_allow(struct lsc_rl *rl, const char *key, double burst, double rate, uint64_t now_ms)
{
	uint8_t h[8];
	uint64_t k;
	struct rl_slot *s = NULL, *oldest = NULL;
	unsigned i, base;

	crypto_shorthash(h, (const uint8_t *)key, strlen(key), rl->hkey);
	memcpy(&k, h, sizeof(k));
	k |= 1; /* 0 marks a free slot */
	base = (unsigned)(k >> 32) & (RL_SLOTS - 1);
	for (i = 0; i < RL_WAYS; i++) {
		struct rl_slot *c = &rl->slots[(base + i) & (RL_SLOTS - 1)];

		if (c->key == k) {
			s = c;
			break;
		}
		/* prefer a free slot, else the one idle longest */
		if (!oldest || (oldest->key && (c->key == 0 || c->last_ms < oldest->last_ms)))
			oldest = c;
	}
	if (!s) {
		s = oldest;
		s->key = k;
		s->tokens = burst;
		s->last_ms = now_ms;
	}
	s->tokens += (double)(now_ms - s->last_ms) * rate / 1000.0;
	if (s->tokens > burst)
		s->tokens = burst;
	s->last_ms = now_ms;
	if (s->tokens < 1.0)
		return false;
	s->tokens -= 1.0;
	return true;
}
