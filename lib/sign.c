// SPDX-License-Identifier: MIT
/* Signed node requests: canonical string, Ed25519 sign/verify, SHA-256, nonces. */
#include "sign.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lightscale/api.h"

void ls_sha256(uint8_t out[LS_SHA256_LEN], const void *data, size_t len)
{
	static const uint8_t empty;

	crypto_hash_sha256(out, data ? data : &empty, data ? len : 0);
}

void ls_sha256_hex(char out[LS_SHA256_HEX_LEN + 1], const void *data, size_t len)
{
	uint8_t h[LS_SHA256_LEN];

	ls_sha256(h, data, len);
	ls_hex_encode(out, h, sizeof(h));
}

void ls_nonce_new(char out[LS_NONCE_HEX_LEN + 1])
{
	uint8_t n[LS_NONCE_LEN];

	randombytes_buf(n, sizeof(n));
	ls_hex_encode(out, n, sizeof(n));
}

int ls_sign_parse_timestamp(const char *s, int64_t *out)
{
	int64_t v = 0;
	size_t i;

	if (!s || !*s || strlen(s) > 18)
		return -EINVAL;
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int ls_sign_check_nonce(const char *s)
{
	size_t i;

	if (!s || strlen(s) != LS_NONCE_HEX_LEN)
		return -EINVAL;
	for (i = 0; i < LS_NONCE_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return -EINVAL;
	return 0;
}

static int method_ok(const char *m)
{
	if (!m || !*m || strlen(m) > 16)
		return 0;
	for (; *m; m++)
		if (*m < 'A' || *m > 'Z')
			return 0;
	return 1;
}

int ls_sign_canonical(char **out, const char *method, const char *path_with_query,
		      int64_t timestamp, const char *nonce, const void *body, size_t body_len)
{
	char hash[LS_SHA256_HEX_LEN + 1];
	char *s = NULL;

	if (!method_ok(method) || !path_with_query || path_with_query[0] != '/' ||
	    strchr(path_with_query, '\n') || ls_sign_check_nonce(nonce) || timestamp < 0)
		return -EINVAL;
	ls_sha256_hex(hash, body, body_len);
	if (asprintf(&s, "%s\n%s\n%s\n%" PRId64 "\n%s\n%s", LS_SIGN_CONTEXT, method,
		     path_with_query, timestamp, nonce, hash) < 0)
		return -ENOMEM;
	*out = s;
	return 0;
}

int ls_sign_request(struct ls_sign_headers *h, const uint8_t sk[LS_ED25519_SK_LEN],
		    const char *method, const char *path_with_query, const void *body,
		    size_t body_len, int64_t now)
{
	uint8_t sig[LS_ED25519_SIG_LEN];
	char *canon = NULL;
	int ret;

	memset(h, 0, sizeof(*h));
	ls_nonce_new(h->nonce);
	ret = ls_sign_canonical(&canon, method, path_with_query, now, h->nonce, body, body_len);
	if (ret)
		return ret;
	crypto_sign_ed25519_detached(sig, NULL, (const uint8_t *)canon, strlen(canon), sk);
	free(canon);
	/* libsodium's secret key is seed || public key */
	ls_key_to_base64(h->key, sk + 32);
	snprintf(h->timestamp, sizeof(h->timestamp), "%" PRId64, now);
	ls_b64_encode(h->signature, sizeof(h->signature), sig, sizeof(sig));
	return 0;
}

int ls_sign_verify(const char *key_b64, const char *timestamp, const char *nonce,
		   const char *signature_b64, const char *method, const char *path_with_query,
		   const void *body, size_t body_len, int64_t now, int64_t max_skew,
		   uint8_t pk[LS_ED25519_PK_LEN], int64_t *skew)
{
	uint8_t key[LS_ED25519_PK_LEN], sig[LS_ED25519_SIG_LEN + 1];
	char *canon = NULL;
	int64_t ts;
	int ok;

	if (!key_b64 || !timestamp || !nonce || !signature_b64)
		return -EBADMSG;
	if (ls_key_from_base64(key, key_b64) || ls_sign_parse_timestamp(timestamp, &ts) ||
	    ls_sign_check_nonce(nonce) ||
	    ls_b64_decode(sig, sizeof(sig), signature_b64) != LS_ED25519_SIG_LEN)
		return -EBADMSG;
	if (ls_sign_canonical(&canon, method, path_with_query, ts, nonce, body, body_len))
		return -EBADMSG;
	ok = crypto_sign_ed25519_verify_detached(sig, (const uint8_t *)canon, strlen(canon),
						 key) == 0;
	free(canon);
	if (!ok)
		return -EBADMSG;
	if (pk)
		memcpy(pk, key, sizeof(key));
	if (skew)
		*skew = ts - now;
	if (ts - now > max_skew || now - ts > max_skew)
		return -ETIME;
	return 0;
}
