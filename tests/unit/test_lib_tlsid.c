// SPDX-License-Identifier: MIT
/* lib/tlsid: self-signed certificate, SPKI pins (checked against openssl), endorsements. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "tlsid.h"

static char dir[] = "/tmp/ls-tlsid-XXXXXX";

static void test_selfsigned_and_pin(void **state)
{
	static const char *const names[] = { "127.0.0.1", "::1", "control.example" };
	char path[256], pin[LS_PIN_STRLEN], pin2[LS_PIN_STRLEN], cmd[512], want[128] = "";
	struct stat st;
	FILE *f;

	assert_int_equal(ls_tls_ensure_selfsigned(dir, names, 3), 0);
	snprintf(path, sizeof(path), "%s/tls.key", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/tls.crt", dir);
	assert_int_equal(ls_tls_pin_from_cert_file(path, pin), 0);
	assert_int_equal(strncmp(pin, "sha256//", 8), 0);
	assert_int_equal(strlen(pin), 8 + 44);

	/* the same pin computed by openssl, an independent implementation */
	snprintf(cmd, sizeof(cmd),
		 "openssl x509 -in %s -pubkey -noout | openssl pkey -pubin -outform der |"
		 " openssl dgst -sha256 -binary | base64", path);
	f = popen(cmd, "r");
	assert_non_null(f);
	assert_non_null(fgets(want, sizeof(want), f));
	pclose(f);
	want[strcspn(want, "\n")] = '\0';
	assert_string_equal(pin + 8, want);

	/* the SANs are in the certificate */
	snprintf(cmd, sizeof(cmd), "openssl x509 -in %s -noout -ext subjectAltName | grep -q 'IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:control.example'", path);
	assert_int_equal(system(cmd), 0);

	/* an existing pair is kept */
	assert_int_equal(ls_tls_ensure_selfsigned(dir, names, 3), 0);
	assert_int_equal(ls_tls_pin_from_cert_file(path, pin2), 0);
	assert_string_equal(pin, pin2);

	assert_int_not_equal(ls_tls_pin_from_cert_pem("garbage", 7, pin2), 0);
	snprintf(path, sizeof(path), "%s/missing.crt", dir);
	assert_int_not_equal(ls_tls_pin_from_cert_file(path, pin2), 0);
}

/* a staged key at given paths: a new key every time, never the served pair's */
static void test_make_at_paths(void **state)
{
	static const char *const names[] = { "localhost" };
	char key[256], crt[256], served[256], pin[LS_PIN_STRLEN], pin2[LS_PIN_STRLEN],
		pin_served[LS_PIN_STRLEN];
	struct stat st;

	(void)state;
	snprintf(key, sizeof(key), "%s/tls-next.key", dir);
	snprintf(crt, sizeof(crt), "%s/tls-next.crt", dir);
	snprintf(served, sizeof(served), "%s/tls.crt", dir);
	assert_int_equal(ls_tls_ensure_selfsigned(dir, names, 1), 0);
	assert_int_equal(ls_tls_pin_from_cert_file(served, pin_served), 0);
	assert_int_equal(ls_tls_make_selfsigned(key, crt, names, 1), 0);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(ls_tls_pin_from_cert_file(crt, pin), 0);
	assert_string_not_equal(pin, pin_served);
	assert_int_equal(ls_tls_make_selfsigned(key, crt, names, 1), 0);
	assert_int_equal(ls_tls_pin_from_cert_file(crt, pin2), 0);
	assert_string_not_equal(pin, pin2);
	/* the served pair is untouched */
	assert_int_equal(ls_tls_pin_from_cert_file(served, pin), 0);
	assert_string_equal(pin, pin_served);
	snprintf(key, sizeof(key), "%s/no/such/dir/k", dir);
	assert_int_not_equal(ls_tls_make_selfsigned(key, crt, names, 1), 0);
}

static void test_endorse(void **state)
{
	uint8_t pk[32], sk[64], pk2[32], sk2[64], sig[64];
	const char *pin = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

	ls_ed25519_keypair(pk, sk);
	ls_ed25519_keypair(pk2, sk2);
	ls_tls_endorse(sig, pin, 2000000000, sk);
	assert_true(ls_tls_endorsement_valid(sig, pin, 2000000000, pk));
	assert_false(ls_tls_endorsement_valid(sig, pin, 2000000001, pk));
	assert_false(ls_tls_endorsement_valid(sig, "sha256//BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 2000000000, pk));
	assert_false(ls_tls_endorsement_valid(sig, pin, 2000000000, pk2));
}

static int cleanup_dir(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_selfsigned_and_pin),
		cmocka_unit_test(test_make_at_paths),
		cmocka_unit_test(test_endorse),
	};

	if (ls_crypto_init() || !mkdtemp(dir))
		return 1;
	return cmocka_run_group_tests_name("lib_tlsid", tests, NULL, cleanup_dir);
}
