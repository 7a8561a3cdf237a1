// SPDX-License-Identifier: MIT
/* lib/: key encodings, durations, atomic files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "util.h"

/* RFC 7748 section 6.1: Alice's private key and public key. */
static const char *alice_priv_hex = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
static const char *alice_pub_hex = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";

static void test_wg_pubkey_rfc7748(void **state)
{
	uint8_t priv[32], pub[32], want[32];

	assert_int_equal(ls_key_from_hex(priv, alice_priv_hex), 0);
	assert_int_equal(ls_key_from_hex(want, alice_pub_hex), 0);
	assert_int_equal(ls_wg_pubkey(pub, priv), 0);
	assert_memory_equal(pub, want, 32);
}

static void test_base64_roundtrip(void **state)
{
	uint8_t key[32], back[32];
	char b64[LS_KEY_B64_LEN + 1];

	for (int i = 0; i < 100; i++) {
		ls_wg_genkey(key);
		assert_int_equal(key[0] & 7, 0);
		assert_int_equal(key[31] & 0xc0, 0x40);
		ls_key_to_base64(b64, key);
		assert_int_equal(strlen(b64), 44);
		assert_int_equal(ls_key_from_base64(back, b64), 0);
		assert_memory_equal(key, back, 32);
	}
}

static void test_base64_known(void **state)
{
	uint8_t key[32];
	char b64[LS_KEY_B64_LEN + 1];

	memset(key, 0, sizeof(key));
	ls_key_to_base64(b64, key);
	assert_string_equal(b64, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
	assert_int_equal(ls_key_is_zero(key), 1);
	key[31] = 1;
	assert_int_equal(ls_key_is_zero(key), 0);
}

static void test_base64_rejects(void **state)
{
	uint8_t key[32];
	static const char *bad[] = {
		"",
		"AAAA",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",   /* 43 chars */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", /* 45 chars */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* no padding */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=",  /* non-canonical */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!A=",  /* bad char */
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(ls_key_from_base64(key, bad[i]), -EINVAL);
	assert_int_equal(ls_key_from_base64(key, NULL), -EINVAL);
	assert_int_equal(ls_key_from_hex(key, "zz"), -EINVAL);
}

static void test_durations(void **state)
{
	static const struct { const char *in; int64_t secs; } good[] = {
		{ "90", 90 }, { "90s", 90 }, { "15m", 900 }, { "12h", 43200 },
		{ "7d", 604800 }, { "1h30m", 5400 }, { "2w", 1209600 }, { "0s", 0 },
	};
	static const char *bad[] = { "", "h", "-5", "1x", "1h30", "1.5h", " 5", "99999999999999999999d" };
	int64_t v;
	char buf[32];

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		assert_int_equal(ls_parse_duration(good[i].in, &v), 0);
		assert_int_equal(v, good[i].secs);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(ls_parse_duration(bad[i], &v), -EINVAL);
	ls_format_duration(buf, sizeof(buf), 5400);
	assert_string_equal(buf, "1h30m");
	ls_format_duration(buf, sizeof(buf), 0);
	assert_string_equal(buf, "0s");
}

static void test_atomic_file(void **state)
{
	char dir[] = "/tmp/ls-test-XXXXXX", path[64], *data = NULL;
	size_t len = 0;
	struct stat st;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a/b/key", dir);
	assert_int_equal(ls_write_file_atomic(path, "x", 1, 0600), -ENOENT);
	snprintf(path, sizeof(path), "%s/a/b", dir);
	assert_int_equal(ls_mkdir_p(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/a/b/key", dir);
	assert_int_equal(ls_write_file_atomic(path, "secret", 6, 0600), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(ls_read_file(path, &data, &len, 100), 0);
	assert_int_equal(len, 6);
	assert_string_equal(data, "secret");
	free(data);
	assert_int_equal(ls_read_file(path, &data, &len, 3), -EFBIG);
	unlink(path);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

/* /proc/sys files report size 0 and answer only a read at offset 0 (proc_dointvec):
 * the whole value must come back, not its first byte */
static void test_read_proc_file(void **state)
{
	const char *path = "/proc/sys/net/ipv4/ip_local_port_range";
	char want[256] = "", *data = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "r");

	(void)state;
	if (!f)
		skip();
	assert_non_null(fgets(want, sizeof(want), f));
	fclose(f);
	assert_int_equal(ls_read_file(path, &data, &len, 4096), 0);
	assert_true(len > 2);
	assert_string_equal(data, want);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wg_pubkey_rfc7748),
		cmocka_unit_test(test_base64_roundtrip),
		cmocka_unit_test(test_base64_known),
		cmocka_unit_test(test_base64_rejects),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_atomic_file),
		cmocka_unit_test(test_read_proc_file),
	};

	if (ls_crypto_init())
		return 1;
	return cmocka_run_group_tests_name("lib", tests, NULL, NULL);
}
