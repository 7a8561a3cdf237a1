/* SPDX-License-Identifier: MIT */
/*
 * Server identity for TLS pinning.
 *
 * A server's TLS key is pinned by the SHA-256 of its DER SubjectPublicKeyInfo, written as
 * "sha256//<base64>" (the form curl's --pinnedpubkey also takes). The deployment's Ed25519
 * identity key endorses each server's pin:
 *   sig = Ed25519(identity_sk, "lightscale-tls-endorse-v1" || pin_string || u64be(not_after))
 * Tokens and signed netmaps carry the endorsed set, so a client trusts exactly those servers.
 */
#ifndef LS_TLSID_H
#define LS_TLSID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LS_PIN_STRLEN 64 /* "sha256//" + 44 base64 + NUL, with room */

/* Makes dir/tls.key (ECDSA P-256, 0600) and dir/tls.crt (self-signed, 10 years, SANs from
 * names: IP addresses and DNS names) unless both exist already. Returns 0 or -errno
 * (-EIO for a GnuTLS failure, with a message logged). */
int ls_tls_ensure_selfsigned(const char *dir, const char *const *names, size_t n_names);
/* Makes a new key and self-signed certificate at these paths (replacing them). 0 or -errno. */
int ls_tls_make_selfsigned(const char *key_path, const char *crt_path, const char *const *names,
			   size_t n_names);
/* Pin of the first certificate in a PEM file. 0 or -errno. */
int ls_tls_pin_from_cert_file(const char *cert_path, char pin[LS_PIN_STRLEN]);
int ls_tls_pin_from_cert_pem(const char *pem, size_t len, char pin[LS_PIN_STRLEN]);
/* Pin of a certificate, DER or PEM (pem true). 0, or -EINVAL when it does not parse. */
int ls_tls_pin_from_cert(const void *cert, size_t len, bool pem, char pin[LS_PIN_STRLEN]);
/* Pin of a gnutls_pubkey_t (void * keeps GnuTLS out of this header). 0 or -EINVAL. */
int ls_tls_pin_of_pubkey(void *pubkey, char pin[LS_PIN_STRLEN]);
/* Pin of a DER SubjectPublicKeyInfo. */
void ls_tls_pin_of_spki(const uint8_t *spki, size_t len, char pin[LS_PIN_STRLEN]);

void ls_tls_endorse(uint8_t sig[64], const char *pin, uint64_t not_after, const uint8_t identity_sk[64]);
bool ls_tls_endorsement_valid(const uint8_t sig[64], const char *pin, uint64_t not_after,
			      const uint8_t identity_pk[32]);

#endif
