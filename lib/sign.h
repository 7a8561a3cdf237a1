/* SPDX-License-Identifier: MIT */
/*
 * Signed node requests (see include/lightscale/api.h, "Signed requests").
 *
 * A node signs every request after registration with its machine Ed25519 key. The
 * signature covers the canonical string
 *
 *     "lightscale-v1\n" METHOD "\n" PATH_WITH_QUERY "\n" TIMESTAMP "\n" NONCE "\n" hex(SHA-256(body))
 *
 * where TIMESTAMP is decimal unix seconds and NONCE is 32 lowercase hex characters (16
 * random bytes). The four values travel in the X-Lightscale-Key/-Timestamp/-Nonce/
 * -Signature headers. The server checks the signature, the clock skew (LS_SIGN_MAX_SKEW)
 * and, in its database, that the nonce was never seen for this key.
 *
 * Client side:  struct ls_sign_headers h;
 *               ls_sign_request(&h, sk, "GET", "/v1/netmap?since=3", NULL, 0, ls_unix_time());
 *               -> send h.key, h.timestamp, h.nonce, h.signature as the four headers.
 * Server side:  ls_sign_verify(...) -> 0, -EBADMSG (malformed or bad signature) or
 *               -ETIME (timestamp outside the window; *skew tells by how much).
 *
 * ls_crypto_init() (lib/keys.h) must have run. All functions are thread-safe.
 */
#ifndef LS_SIGN_H
#define LS_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"

#define LS_SHA256_LEN 32
#define LS_SHA256_HEX_LEN 64
#define LS_NONCE_LEN 16
#define LS_NONCE_HEX_LEN 32
#define LS_SIG_B64_LEN 88 /* 64 bytes in padded base64 */

struct ls_sign_headers {
	char key[LS_KEY_B64_LEN + 1];      /* X-Lightscale-Key: base64 Ed25519 public key */
	char timestamp[24];                /* X-Lightscale-Timestamp: unix seconds */
	char nonce[LS_NONCE_HEX_LEN + 1];  /* X-Lightscale-Nonce */
	char signature[LS_SIG_B64_LEN + 1]; /* X-Lightscale-Signature */
};

/* SHA-256 of data as lowercase hex (65 bytes with the NUL). */
void ls_sha256(uint8_t out[LS_SHA256_LEN], const void *data, size_t len);
void ls_sha256_hex(char out[LS_SHA256_HEX_LEN + 1], const void *data, size_t len);

/* A fresh random nonce: 32 lowercase hex characters. */
void ls_nonce_new(char out[LS_NONCE_HEX_LEN + 1]);

/* The canonical string, malloc'd into *out (caller frees). 0 or -ENOMEM/-EINVAL. */
int ls_sign_canonical(char **out, const char *method, const char *path_with_query,
		      int64_t timestamp, const char *nonce, const void *body, size_t body_len);

/* Fills every header for one request. sk is the 64-byte libsodium Ed25519 secret key
 * (seed followed by public key, as ls_ed25519_keypair() makes it). now is unix seconds
 * (ls_unix_time()). body may be NULL when body_len is 0. Returns 0 or -errno. */
int ls_sign_request(struct ls_sign_headers *h, const uint8_t sk[LS_ED25519_SK_LEN],
		    const char *method, const char *path_with_query, const void *body,
		    size_t body_len, int64_t now);

/* Verifies the four header values of a request against method, path and body.
 *   0        valid and within max_skew seconds of now; pk (if not NULL) gets the key
 *   -EBADMSG a header is missing/malformed or the signature does not verify
 *   -ETIME   the signature is valid but the timestamp is more than max_skew away;
 *            *skew (if not NULL) = timestamp - now, in seconds (negative: client behind)
 * Any header may be NULL (then -EBADMSG). */
int ls_sign_verify(const char *key_b64, const char *timestamp, const char *nonce,
		   const char *signature_b64, const char *method, const char *path_with_query,
		   const void *body, size_t body_len, int64_t now, int64_t max_skew,
		   uint8_t pk[LS_ED25519_PK_LEN], int64_t *skew);

/* Strict parsers used by the verifier, exported for tests and the server:
 * a timestamp is 1-19 decimal digits; a nonce is exactly 32 lowercase hex. 0 or -EINVAL. */
int ls_sign_parse_timestamp(const char *s, int64_t *out);
int ls_sign_check_nonce(const char *s);

#endif
