/* SPDX-License-Identifier: MIT */
/* Keys: WireGuard X25519 (base64 as `wg` prints them, hex for the UAPI) and the
 * machine Ed25519 key that signs node requests. Encodings run in constant time
 * (libsodium's codecs); key material is never logged. */
#ifndef LS_KEYS_H
#define LS_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define LS_WG_KEY_LEN 32
#define LS_KEY_B64_LEN 44 /* 32 bytes, base64 with one '=' of padding */
#define LS_KEY_HEX_LEN 64
#define LS_ED25519_PK_LEN 32
#define LS_ED25519_SK_LEN 64
#define LS_ED25519_SIG_LEN 64

/* Must run once before anything below (calls sodium_init). Returns 0 or -errno. */
int ls_crypto_init(void);

void ls_key_to_base64(char out[LS_KEY_B64_LEN + 1], const uint8_t key[LS_WG_KEY_LEN]);
/* 0 on success, -EINVAL unless b64 is exactly a 44-character base64 32-byte key. */
int ls_key_from_base64(uint8_t key[LS_WG_KEY_LEN], const char *b64);
void ls_key_to_hex(char out[LS_KEY_HEX_LEN + 1], const uint8_t key[LS_WG_KEY_LEN]);
int ls_key_from_hex(uint8_t key[LS_WG_KEY_LEN], const char *hex);
/* Constant-time comparison; returns 1 when every byte is zero. */
int ls_key_is_zero(const uint8_t key[LS_WG_KEY_LEN]);

/* WireGuard keys: a clamped random Curve25519 private key and its public key. */
void ls_wg_genkey(uint8_t priv[LS_WG_KEY_LEN]);
int ls_wg_pubkey(uint8_t pub[LS_WG_KEY_LEN], const uint8_t priv[LS_WG_KEY_LEN]);

/* Ed25519 machine key. */
void ls_ed25519_keypair(uint8_t pk[LS_ED25519_PK_LEN], uint8_t sk[LS_ED25519_SK_LEN]);

/* Generic base64 (standard alphabet, padded) for arbitrary bytes, e.g. signatures.
 * ls_b64_encode writes a NUL-terminated string into out (size >= ls_b64_len(n)).
 * ls_b64_decode returns the number of bytes written, or -EINVAL. */
size_t ls_b64_len(size_t n);
void ls_b64_encode(char *out, size_t out_size, const uint8_t *in, size_t n);
int ls_b64_decode(uint8_t *out, size_t out_size, const char *in);
void ls_hex_encode(char *out, const uint8_t *in, size_t n); /* out: 2n+1 bytes */
int ls_hex_decode(uint8_t *out, size_t out_size, const char *in);

/* Wipe secrets. */
void ls_memzero(void *p, size_t n);

#endif
