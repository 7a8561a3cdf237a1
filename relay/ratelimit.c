// SPDX-License-Identifier: MIT
/* Token buckets for the expensive step (an Ed25519 verification per registration
 * or hello): one per source address (IPv6 by /64), hashed into a fixed array so
 * memory never grows, and one for the whole relay. */
#include "relay.h"

#include <sodium.h>
#include <string.h>

void lsr_ratelimit_init(struct lsr_ratelimit *rl, uint32_t per_addr, uint32_t total)
{
	memset(rl, 0, sizeof(*rl));
	rl->per_addr = per_addr;
	rl->total = total;
	randombytes_buf(rl->sipkey, sizeof(rl->sipkey));
}

/* Refills at rate tokens per second up to 2 * rate; takes one when there is one. */
static bool take(struct lsr_bucket *b, uint32_t rate, uint64_t now_ms)
{
	uint64_t cap = (uint64_t)rate * 2 * 1000, elapsed;

	if (!b->last_ms) {
		b->milli = cap;
		b->last_ms = now_ms;
	}
	elapsed = now_ms > b->last_ms ? now_ms - b->last_ms : 0;
	b->last_ms = now_ms;
	b->milli = b->milli + elapsed * rate > cap ? cap : b->milli + elapsed * rate;
	if (b->milli < 1000)
		return false;
	b->milli -= 1000;
	return true;
}

bool lsr_ratelimit_allow(struct lsr_ratelimit *rl, const struct sockaddr *src, uint64_t now_ms)
{
	struct lsr_addr a;
	uint8_t h[crypto_shorthash_siphash24_BYTES];
	uint64_t v;
	size_t n;

	if (!rl->per_addr && !rl->total)
		return true;
	ls_relay_addr_from_sockaddr(&a, src);
	/* The address without the port; IPv6 by its /64. */
	n = a.family == 6 ? 8 : 4;
	crypto_shorthash_siphash24(h, a.addr, n, rl->sipkey);
	memcpy(&v, h, sizeof(v));
	if (rl->per_addr && !take(&rl->slots[v % LSR_RATELIMIT_SLOTS], rl->per_addr, now_ms))
		return false;
	return !rl->total || take(&rl->global, rl->total, now_ms);
}
