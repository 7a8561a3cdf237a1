// SPDX-License-Identifier: MIT
#include "keys.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

int ls_crypto_init(void)
{
	return sodium_init() < 0 ? -EIO : 0;
}

void ls_key_to_base64(char out[LS_KEY_B64_LEN + 1], const uint8_t key[LS_WG_KEY_LEN])
{
	sodium_bin2base64(out, LS_KEY_B64_LEN + 1, key, LS_WG_KEY_LEN, sodium_base64_VARIANT_ORIGINAL);
}

int ls_key_from_base64(uint8_t key[LS_WG_KEY_LEN], const char *b64)
{
	size_t n = 0;
	char last;

	if (!b64 || strlen(b64) != LS_KEY_B64_LEN || b64[LS_KEY_B64_LEN - 1] != '=')
		return -EINVAL;
	/* The last data character encodes 4 bits of key and 2 zero bits: reject
	 * non-canonical encodings as `wg` does. */
	last = b64[LS_KEY_B64_LEN - 2];
	if (!strchr("AEIMQUYcgkosw048", last))
		return -EINVAL;
	if (sodium_base642bin(key, LS_WG_KEY_LEN, b64, LS_KEY_B64_LEN, NULL, &n, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    n != LS_WG_KEY_LEN)
		return -EINVAL;
	return 0;
}

void ls_key_to_hex(char out[LS_KEY_HEX_LEN + 1], const uint8_t key[LS_WG_KEY_LEN])
{
	sodium_bin2hex(out, LS_KEY_HEX_LEN + 1, key, LS_WG_KEY_LEN);
}

int ls_key_from_hex(uint8_t key[LS_WG_KEY_LEN], const char *hex)
{
	if (!hex || strlen(hex) != LS_KEY_HEX_LEN)
		return -EINVAL;
	return ls_hex_decode(key, LS_WG_KEY_LEN, hex) == LS_WG_KEY_LEN ? 0 : -EINVAL;
}

int ls_key_is_zero(const uint8_t key[LS_WG_KEY_LEN])
{
	return sodium_is_zero(key, LS_WG_KEY_LEN);
}

void ls_wg_genkey(uint8_t priv[LS_WG_KEY_LEN])
{
	randombytes_buf(priv, LS_WG_KEY_LEN);
	priv[0] &= 248;
	priv[31] = (priv[31] & 127) | 64;
}

int ls_wg_pubkey(uint8_t pub[LS_WG_KEY_LEN], const uint8_t priv[LS_WG_KEY_LEN])
{
	return crypto_scalarmult_curve25519_base(pub, priv) == 0 ? 0 : -EINVAL;
}

void ls_ed25519_keypair(uint8_t pk[LS_ED25519_PK_LEN], uint8_t sk[LS_ED25519_SK_LEN])
{
	crypto_sign_ed25519_keypair(pk, sk);
}

size_t ls_b64_len(size_t n)
{
	return sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
}

void ls_b64_encode(char *out, size_t out_size, const uint8_t *in, size_t n)
{
	sodium_bin2base64(out, out_size, in, n, sodium_base64_VARIANT_ORIGINAL);
}

int ls_b64_decode(uint8_t *out, size_t out_size, const char *in)
{
	size_t n = 0;
	const char *end = NULL;

	if (!in)
		return -EINVAL;
	if (sodium_base642bin(out, out_size, in, strlen(in), NULL, &n, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    *end != '\0')
		return -EINVAL;
	return (int)n;
}

void ls_hex_encode(char *out, const uint8_t *in, size_t n)
{
	sodium_bin2hex(out, 2 * n + 1, in, n);
}

int ls_hex_decode(uint8_t *out, size_t out_size, const char *in)
{
	size_t n = 0;
	const char *end = NULL;

	if (!in)
		return -EINVAL;
	if (sodium_hex2bin(out, out_size, in, strlen(in), NULL, &n, &end) != 0 || *end != '\0')
		return -EINVAL;
	return (int)n;
}

void ls_memzero(void *p, size_t n)
{
	sodium_memzero(p, n);
}
