// SPDX-License-Identifier: MIT
#include "tlsid.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"
#include "util.h"

static const char endorse_ctx[] = "lightscale-tls-endorse-v1";

#define GT(call)                                                                  \
	do {                                                                      \
		int gt_rc = (call);                                               \
		if (gt_rc < 0) {                                                  \
			pr_err("tls: %s: %s", #call, gnutls_strerror(gt_rc));     \
			ret = -EIO;                                               \
			goto cleanup;                                             \
		}                                                                 \
	} while (0)

int ls_tls_ensure_selfsigned(const char *dir, const char *const *names, size_t n_names)
{
	char key_path[PATH_MAX], crt_path[PATH_MAX];

	snprintf(key_path, sizeof(key_path), "%s/tls.key", dir);
	snprintf(crt_path, sizeof(crt_path), "%s/tls.crt", dir);
	if (access(key_path, R_OK) == 0 && access(crt_path, R_OK) == 0)
		return 0;
	return ls_tls_make_selfsigned(key_path, crt_path, names, n_names);
}

int ls_tls_make_selfsigned(const char *key_path, const char *crt_path, const char *const *names,
			   size_t n_names)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t key_pem = { 0 }, crt_pem = { 0 };
	unsigned char serial[16];
	time_t now = time(NULL);
	int ret = 0;

	GT(gnutls_x509_privkey_init(&key));
	GT(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0));
	GT(gnutls_x509_crt_init(&crt));
	GT(gnutls_x509_crt_set_version(crt, 3));
	randombytes_buf(serial, sizeof(serial));
	serial[0] &= 0x7f;
	GT(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)));
	GT(gnutls_x509_crt_set_activation_time(crt, now - 3600));
	GT(gnutls_x509_crt_set_expiration_time(crt, now + 10L * 365 * 86400));
	GT(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "lightscale-control",
					 strlen("lightscale-control")));
	for (size_t i = 0; i < n_names; i++) {
		unsigned char ip[16];

		if (inet_pton(AF_INET, names[i], ip) == 1)
			GT(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 4, GNUTLS_FSAN_APPEND));
		else if (inet_pton(AF_INET6, names[i], ip) == 1)
			GT(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 16, GNUTLS_FSAN_APPEND));
		else
			GT(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, names[i],
								(unsigned)strlen(names[i]), GNUTLS_FSAN_APPEND));
	}
	GT(gnutls_x509_crt_set_key(crt, key));
	GT(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE));
	GT(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0));
	GT(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0));
	GT(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &key_pem));
	GT(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &crt_pem));
	ret = ls_write_file_atomic(key_path, key_pem.data, key_pem.size, 0600);
	if (!ret)
		ret = ls_write_file_atomic(crt_path, crt_pem.data, crt_pem.size, 0644);
cleanup:
	if (key_pem.data) {
		ls_memzero(key_pem.data, key_pem.size);
		gnutls_free(key_pem.data);
	}
	gnutls_free(crt_pem.data);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (key)
		gnutls_x509_privkey_deinit(key);
	return ret;
}

void ls_tls_pin_of_spki(const uint8_t *spki, size_t len, char pin[LS_PIN_STRLEN])
{
	uint8_t digest[32];
	char b64[48];

	crypto_hash_sha256(digest, spki, len);
	ls_b64_encode(b64, sizeof(b64), digest, sizeof(digest));
	snprintf(pin, LS_PIN_STRLEN, "sha256//%s", b64);
}

int ls_tls_pin_of_pubkey(void *pubkey, char pin[LS_PIN_STRLEN])
{
	gnutls_datum_t spki = { 0 };

	if (gnutls_pubkey_export2(pubkey, GNUTLS_X509_FMT_DER, &spki) < 0)
		return -EINVAL;
	ls_tls_pin_of_spki(spki.data, spki.size, pin);
	gnutls_free(spki.data);
	return 0;
}

int ls_tls_pin_from_cert(const void *cert, size_t len, bool pem, char pin[LS_PIN_STRLEN])
{
	gnutls_datum_t in = { (unsigned char *)cert, (unsigned)len };
	gnutls_x509_crt_t crt = NULL;
	gnutls_pubkey_t pub = NULL;
	int ret = -EINVAL;

	pin[0] = '\0';
	if (gnutls_x509_crt_init(&crt) < 0 ||
	    gnutls_x509_crt_import(crt, &in, pem ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER) < 0 ||
	    gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import_x509(pub, crt, 0) < 0)
		goto cleanup;
	ret = ls_tls_pin_of_pubkey(pub, pin);
cleanup:
	if (pub)
		gnutls_pubkey_deinit(pub);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	return ret;
}

int ls_tls_pin_from_cert_pem(const char *pem, size_t len, char pin[LS_PIN_STRLEN])
{
	return ls_tls_pin_from_cert(pem, len, true, pin);
}

int ls_tls_pin_from_cert_file(const char *cert_path, char pin[LS_PIN_STRLEN])
{
	char *pem = NULL;
	size_t len = 0;
	int ret;

	ret = ls_read_file(cert_path, &pem, &len, 1 << 20);
	if (ret)
		return ret;
	ret = ls_tls_pin_from_cert_pem(pem, len, pin);
	free(pem);
	return ret;
}

static size_t endorse_msg(uint8_t *msg, size_t size, const char *pin, uint64_t not_after)
{
	size_t plen = strlen(pin), n = 0;

	if (sizeof(endorse_ctx) - 1 + plen + 8 > size)
		return 0;
	memcpy(msg, endorse_ctx, sizeof(endorse_ctx) - 1);
	n += sizeof(endorse_ctx) - 1;
	memcpy(msg + n, pin, plen);
	n += plen;
	for (int i = 7; i >= 0; i--)
		msg[n++] = (uint8_t)(not_after >> (8 * i));
	return n;
}

void ls_tls_endorse(uint8_t sig[64], const char *pin, uint64_t not_after, const uint8_t identity_sk[64])
{
	uint8_t msg[256];
	size_t n = endorse_msg(msg, sizeof(msg), pin, not_after);

	crypto_sign_ed25519_detached(sig, NULL, msg, n, identity_sk);
}

bool ls_tls_endorsement_valid(const uint8_t sig[64], const char *pin, uint64_t not_after,
			      const uint8_t identity_pk[32])
{
	uint8_t msg[256];
	size_t n = endorse_msg(msg, sizeof(msg), pin, not_after);

	return n && crypto_sign_ed25519_verify_detached(sig, msg, n, identity_pk) == 0;
}
