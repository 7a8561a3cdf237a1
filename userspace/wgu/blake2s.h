/* SPDX-License-Identifier: MIT */
/* BLAKE2s (RFC 7693), its HMAC (RFC 2104 over BLAKE2s-256) and the HKDF the
 * WireGuard whitepaper defines (section 5.4, KDF_n). libsodium has no BLAKE2s. */
#ifndef LSW_BLAKE2S_H
#define LSW_BLAKE2S_H

#include <stddef.h>
#include <stdint.h>

enum {
	LSW_BLAKE2S_BLOCK = 64,
	LSW_BLAKE2S_OUT = 32,
	LSW_BLAKE2S_KEY = 32,
};

struct lsw_blake2s {
	uint32_t h[8];
	uint32_t t[2];
	uint8_t buf[LSW_BLAKE2S_BLOCK];
	size_t buflen;
	size_t outlen;
};

/* outlen 1..32, keylen 0..32 (key may be NULL when keylen is 0). */
void lsw_blake2s_init(struct lsw_blake2s *s, size_t outlen, const void *key, size_t keylen);
void lsw_blake2s_update(struct lsw_blake2s *s, const void *in, size_t len);
void lsw_blake2s_final(struct lsw_blake2s *s, uint8_t *out);
void lsw_blake2s(uint8_t *out, size_t outlen, const void *in, size_t inlen, const void *key, size_t keylen);

/* HMAC-BLAKE2s-256: 32-byte output, any key length. */
void lsw_hmac_blake2s(uint8_t out[32], const void *key, size_t keylen, const void *in, size_t inlen);

/* KDF_n(key, input) from the whitepaper: t0 = HMAC(key, input), t1 = HMAC(t0, 0x1),
 * t_i = HMAC(t0, t_{i-1} || i). Writes t1..t3 into the non-NULL outputs (in order;
 * a NULL output stops the chain). */
void lsw_kdf(uint8_t out1[32], uint8_t out2[32], uint8_t out3[32], const uint8_t key[32], const void *in,
	     size_t inlen);

#endif
