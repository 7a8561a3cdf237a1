// SPDX-License-Identifier: MIT
/* lib/sign: canonical string, SHA-256, signatures, skew, tampering. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "lightscale/api.h"
#include "sign.h"

static uint8_t pk[32], sk[64];

static int setup(void **state)
{
	assert_int_equal(ls_crypto_init(), 0);
	ls_ed25519_keypair(pk, sk);
	return 0;
}

/* FIPS 180-2 test vectors */
static void test_sha256_vectors(void **state)
{
	char hex[65];

	ls_sha256_hex(hex, "abc", 3);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	ls_sha256_hex(hex, NULL, 0);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_canonical_string(void **state)
{
	char *s = NULL;

	assert_int_equal(ls_sign_canonical(&s, "POST", "/v1/heartbeat", 1767225600,
					   "00112233445566778899aabbccddeeff", "abc", 3),
			 0);
	assert_string_equal(s, "lightscale-v1\nPOST\n/v1/heartbeat\n1767225600\n"
			       "00112233445566778899aabbccddeeff\n"
			       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	free(s);
	/* malformed inputs are refused */
	assert_int_equal(ls_sign_canonical(&s, "get", "/v1/x", 1, "00112233445566778899aabbccddeeff", NULL, 0), -EINVAL);
	assert_int_equal(ls_sign_canonical(&s, "GET", "v1/x", 1, "00112233445566778899aabbccddeeff", NULL, 0), -EINVAL);
	assert_int_equal(ls_sign_canonical(&s, "GET", "/v1/x\n", 1, "00112233445566778899aabbccddeeff", NULL, 0), -EINVAL);
	assert_int_equal(ls_sign_canonical(&s, "GET", "/v1/x", 1, "0011", NULL, 0), -EINVAL);
}

static void test_nonce_unique_and_wellformed(void **state)
{
	char a[33], b[33];

	ls_nonce_new(a);
	ls_nonce_new(b);
	assert_int_equal(strlen(a), 32);
	assert_int_equal(ls_sign_check_nonce(a), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(ls_sign_check_nonce("0011223344556677889900AABBCCDDEE"), -EINVAL);
	assert_int_equal(ls_sign_check_nonce("001122334455667788990"), -EINVAL);
}

static void test_sign_verify_roundtrip(void **state)
{
	struct ls_sign_headers h;
	uint8_t got[32];
	int64_t skew = 99;
	const char *body = "{\"endpoints\":[]}";
	char b64[45];

	assert_int_equal(ls_sign_request(&h, sk, "POST", "/v1/heartbeat", body, strlen(body), 1000000), 0);
	ls_key_to_base64(b64, pk);
	assert_string_equal(h.key, b64);
	assert_string_equal(h.timestamp, "1000000");
	assert_int_equal(ls_sign_verify(h.key, h.timestamp, h.nonce, h.signature, "POST",
					"/v1/heartbeat", body, strlen(body), 1000010, 300, got, &skew),
			 0);
	assert_memory_equal(got, pk, 32);
	assert_int_equal(skew, -10);
}

static void test_tampering_detected(void **state)
{
	struct ls_sign_headers h;
	const char *body = "{\"a\":1}";
	char other_key[45], badsig[LS_SIG_B64_LEN + 1];
	uint8_t pk2[32], sk2[64];

	assert_int_equal(ls_sign_request(&h, sk, "GET", "/v1/netmap?since=4", body, strlen(body), 5000), 0);
	/* each field of the canonical string matters */
	assert_int_equal(ls_sign_verify(h.key, h.timestamp, h.nonce, h.signature, "POST", "/v1/netmap?since=4", body, strlen(body), 5000, 300, NULL, NULL), -EBADMSG);
	assert_int_equal(ls_sign_verify(h.key, h.timestamp, h.nonce, h.signature, "GET", "/v1/netmap?since=5", body, strlen(body), 5000, 300, NULL, NULL), -EBADMSG);
	assert_int_equal(ls_sign_verify(h.key, "5001", h.nonce, h.signature, "GET", "/v1/netmap?since=4", body, strlen(body), 5000, 300, NULL, NULL), -EBADMSG);
	assert_int_equal(ls_sign_verify(h.key, h.timestamp, "ffffffffffffffffffffffffffffffff", h.signature, "GET", "/v1/netmap?since=4", body, strlen(body), 5000, 300, NULL, NULL), -EBADMSG);
	assert_int_equal(ls_sign_verify(h.key, h.timestamp, h.nonce, h.signature, "GET", "/v1/netmap?since=4", "{\"a\":2}", 7, 5000, 300, NULL, NULL), -EBADMSG);
	/* another key */
	ls_ed25519_keypair(pk2, sk2);
	ls_key_to_base64(other_key, pk2);
	assert_int_equal(ls_sign_verify(other_key, h.timestamp, h.nonce, h.signature, "GET", "/v1/netmap?since=4", body, strlen(body), 5000, 300, NULL, NULL), -EBADMSG);
	/* a flipped signature bit */
	strcpy(badsig, h.signature);
	badsig[3] = badsig[3] == 'A' ? 'B' : 'A';
	assert_int_equal(ls_sign_verify(h.key, h.timestamp, h.nonce, badsig, "GET", "/v1/netmap?since=4", body, strlen(body), 5000, 300, NULL, NULL), -EBADMSG);
	/* missing or malformed headers */
	assert_int_equal(ls_sign_verify(NULL, h.timestamp, h.nonce, h.signature, "GET", "/v1/netmap?since=4", body, strlen(body), 5000, 300, NULL, NULL), -EBADMSG);
	assert_int_equal(ls_sign_verify(h.key, "-5", h.nonce, h.signature, "GET", "/v1/netmap?since=4", body, strlen(body), 5000, 300, NULL, NULL), -EBADMSG);
	assert_int_equal(ls_sign_verify(h.key, h.timestamp, h.nonce, "not base64!", "GET", "/v1/netmap?since=4", body, strlen(body), 5000, 300, NULL, NULL), -EBADMSG);
}

static void test_clock_skew(void **state)
{
	struct ls_sign_headers h;
	int64_t skew = 0;

	assert_int_equal(ls_sign_request(&h, sk, "GET", "/v1/netmap", NULL, 0, 10000), 0);
	assert_int_equal(ls_sign_verify(h.key, h.timestamp, h.nonce, h.signature, "GET", "/v1/netmap", NULL, 0, 10000 + LS_SIGN_MAX_SKEW, LS_SIGN_MAX_SKEW, NULL, &skew), 0);
	assert_int_equal(ls_sign_verify(h.key, h.timestamp, h.nonce, h.signature, "GET", "/v1/netmap", NULL, 0, 10000 + LS_SIGN_MAX_SKEW + 1, LS_SIGN_MAX_SKEW, NULL, &skew), -ETIME);
	assert_int_equal(skew, -(LS_SIGN_MAX_SKEW + 1));
	assert_int_equal(ls_sign_verify(h.key, h.timestamp, h.nonce, h.signature, "GET", "/v1/netmap", NULL, 0, 10000 - 3600, LS_SIGN_MAX_SKEW, NULL, &skew), -ETIME);
	assert_int_equal(skew, 3600);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_vectors),
		cmocka_unit_test(test_canonical_string),
		cmocka_unit_test(test_nonce_unique_and_wellformed),
		cmocka_unit_test(test_sign_verify_roundtrip),
		cmocka_unit_test(test_tampering_detected),
		cmocka_unit_test(test_clock_skew),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
