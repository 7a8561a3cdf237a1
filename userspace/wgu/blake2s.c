// SPDX-License-Identifier: MIT
/* BLAKE2s as specified in RFC 7693, written from the RFC's description. */
#include "userspace/wgu/blake2s.h"

#include <string.h>

#include <sodium.h>

static const uint32_t blake2s_iv[8] = {
	0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
};

static const uint8_t sigma[10][16] = {
	{ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
	{ 14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3 },
	{ 11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4 },
	{ 7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8 },
	{ 9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13 },
	{ 2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9 },
	{ 12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11 },
	{ 13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10 },
	{ 6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5 },
	{ 10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0 },
};

static inline uint32_t ror32(uint32_t x, unsigned int n)
{
	return (x >> n) | (x << (32 - n));
}

static inline uint32_t load32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#define G(a, b, c, d, x, y)                  \
	do {                                 \
		v[a] = v[a] + v[b] + (x);    \
		v[d] = ror32(v[d] ^ v[a], 16); \
		v[c] = v[c] + v[d];          \
		v[b] = ror32(v[b] ^ v[c], 12); \
		v[a] = v[a] + v[b] + (y);    \
		v[d] = ror32(v[d] ^ v[a], 8); \
		v[c] = v[c] + v[d];          \
		v[b] = ror32(v[b] ^ v[c], 7); \
	} while (0)

static void compress(struct lsw_blake2s *s, const uint8_t block[LSW_BLAKE2S_BLOCK], int last)
{
	uint32_t m[16], v[16];
	int i;

	for (i = 0; i < 16; i++)
		m[i] = load32(block + 4 * i);
	for (i = 0; i < 8; i++) {
		v[i] = s->h[i];
		v[i + 8] = blake2s_iv[i];
	}
	v[12] ^= s->t[0];
	v[13] ^= s->t[1];
	if (last)
		v[14] = ~v[14];
	for (i = 0; i < 10; i++) {
		const uint8_t *z = sigma[i];

		G(0, 4, 8, 12, m[z[0]], m[z[1]]);
		G(1, 5, 9, 13, m[z[2]], m[z[3]]);
		G(2, 6, 10, 14, m[z[4]], m[z[5]]);
		G(3, 7, 11, 15, m[z[6]], m[z[7]]);
		G(0, 5, 10, 15, m[z[8]], m[z[9]]);
		G(1, 6, 11, 12, m[z[10]], m[z[11]]);
		G(2, 7, 8, 13, m[z[12]], m[z[13]]);
		G(3, 4, 9, 14, m[z[14]], m[z[15]]);
	}
	for (i = 0; i < 8; i++)
		s->h[i] ^= v[i] ^ v[i + 8];
}

static void add_counter(struct lsw_blake2s *s, uint32_t n)
{
	s->t[0] += n;
	if (s->t[0] < n)
		s->t[1]++;
}

void lsw_blake2s_init(struct lsw_blake2s *s, size_t outlen, const void *key, size_t keylen)
{
	memset(s, 0, sizeof(*s));
	memcpy(s->h, blake2s_iv, sizeof(s->h));
	/* Parameter block: digest length, key length, fanout 1, depth 1. */
	s->h[0] ^= 0x01010000 ^ (uint32_t)(keylen << 8) ^ (uint32_t)outlen;
	s->outlen = outlen;
	if (keylen) {
		memcpy(s->buf, key, keylen);
		/* The key block is padded to a full block and counts as data. */
		s->buflen = LSW_BLAKE2S_BLOCK;
	}
}

void lsw_blake2s_update(struct lsw_blake2s *s, const void *in, size_t len)
{
	const uint8_t *p = in;

	while (len > 0) {
		size_t take;

		/* Keep the last block buffered: it may be the final one. */
		if (s->buflen == LSW_BLAKE2S_BLOCK) {
			add_counter(s, LSW_BLAKE2S_BLOCK);
			compress(s, s->buf, 0);
			s->buflen = 0;
		}
		take = LSW_BLAKE2S_BLOCK - s->buflen;
		if (take > len)
			take = len;
		memcpy(s->buf + s->buflen, p, take);
		s->buflen += take;
		p += take;
		len -= take;
	}
}

void lsw_blake2s_final(struct lsw_blake2s *s, uint8_t *out)
{
	uint8_t full[LSW_BLAKE2S_OUT];
	int i;

	add_counter(s, (uint32_t)s->buflen);
	memset(s->buf + s->buflen, 0, LSW_BLAKE2S_BLOCK - s->buflen);
	compress(s, s->buf, 1);
	for (i = 0; i < 8; i++) {
		full[4 * i] = (uint8_t)s->h[i];
		full[4 * i + 1] = (uint8_t)(s->h[i] >> 8);
		full[4 * i + 2] = (uint8_t)(s->h[i] >> 16);
		full[4 * i + 3] = (uint8_t)(s->h[i] >> 24);
	}
	memcpy(out, full, s->outlen);
	sodium_memzero(full, sizeof(full));
	sodium_memzero(s, sizeof(*s));
}

void lsw_blake2s(uint8_t *out, size_t outlen, const void *in, size_t inlen, const void *key, size_t keylen)
{
	struct lsw_blake2s s;

	lsw_blake2s_init(&s, outlen, key, keylen);
	lsw_blake2s_update(&s, in, inlen);
	lsw_blake2s_final(&s, out);
}

void lsw_hmac_blake2s(uint8_t out[32], const void *key, size_t keylen, const void *in, size_t inlen)
{
	uint8_t k[LSW_BLAKE2S_BLOCK] = { 0 }, pad[LSW_BLAKE2S_BLOCK], inner[LSW_BLAKE2S_OUT];
	struct lsw_blake2s s;
	int i;

	if (keylen > LSW_BLAKE2S_BLOCK)
		lsw_blake2s(k, LSW_BLAKE2S_OUT, key, keylen, NULL, 0);
	else if (keylen)
		memcpy(k, key, keylen);

	for (i = 0; i < LSW_BLAKE2S_BLOCK; i++)
		pad[i] = k[i] ^ 0x36;
	lsw_blake2s_init(&s, LSW_BLAKE2S_OUT, NULL, 0);
	lsw_blake2s_update(&s, pad, sizeof(pad));
	lsw_blake2s_update(&s, in, inlen);
	lsw_blake2s_final(&s, inner);

	for (i = 0; i < LSW_BLAKE2S_BLOCK; i++)
		pad[i] = k[i] ^ 0x5c;
	lsw_blake2s_init(&s, LSW_BLAKE2S_OUT, NULL, 0);
	lsw_blake2s_update(&s, pad, sizeof(pad));
	lsw_blake2s_update(&s, inner, sizeof(inner));
	lsw_blake2s_final(&s, out);

	sodium_memzero(k, sizeof(k));
	sodium_memzero(pad, sizeof(pad));
	sodium_memzero(inner, sizeof(inner));
}

void lsw_kdf(uint8_t out1[32], uint8_t out2[32], uint8_t out3[32], const uint8_t key[32], const void *in,
	     size_t inlen)
{
	uint8_t prk[32], t[33];

	lsw_hmac_blake2s(prk, key, 32, in, inlen);
	if (!out1)
		goto cleanup;
	t[0] = 1;
	lsw_hmac_blake2s(t, prk, 32, t, 1);
	memcpy(out1, t, 32);
	if (!out2)
		goto cleanup;
	t[32] = 2;
	lsw_hmac_blake2s(t, prk, 32, t, 33);
	memcpy(out2, t, 32);
	if (!out3)
		goto cleanup;
	t[32] = 3;
	lsw_hmac_blake2s(t, prk, 32, t, 33);
	memcpy(out3, t, 32);
cleanup:
	sodium_memzero(prk, sizeof(prk));
	sodium_memzero(t, sizeof(t));
}
