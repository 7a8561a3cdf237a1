// SPDX-License-Identifier: MIT
/* userspace/wgu: BLAKE2s against RFC 7693, its HMAC and the whitepaper's KDF,
 * and the Noise constants the whitepaper derives from them. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "keys.h"
#include "userspace/wgu/blake2s.h"

static void unhex(uint8_t *out, const char *hex)
{
	size_t n = strlen(hex) / 2;

	assert_int_equal(ls_hex_decode(out, n, hex), (int)n);
}

/* RFC 7693 Appendix B: BLAKE2s-256("abc"). */
static void test_blake2s_abc(void **state)
{
	uint8_t out[32], want[32];

	unhex(want, "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
	lsw_blake2s(out, 32, "abc", 3, NULL, 0);
	assert_memory_equal(out, want, 32);
}

/* RFC 7693 Appendix E: the self-test over digest lengths 16..32, input lengths
 * 0..1024, keyed and unkeyed, hashed into one "grand hash". */
static void selftest_seq(uint8_t *out, size_t len, uint32_t seed)
{
	uint32_t a = 0xDEAD4BAD * seed, b = 1, t;

	for (size_t i = 0; i < len; i++) {
		t = a + b;
		a = b;
		b = t;
		out[i] = (uint8_t)(t >> 24);
	}
}

static void test_blake2s_rfc7693_selftest(void **state)
{
	static const size_t md_len[] = { 16, 20, 28, 32 };
	static const size_t in_len[] = { 0, 3, 64, 65, 255, 1024 };
	uint8_t in[1024], md[32], key[32], want[32];
	struct lsw_blake2s ctx;

	unhex(want, "6a411f08ce25adcdfb02aba641451cec53c598b24f4fc787fbdc88797f4c1dfe");
	lsw_blake2s_init(&ctx, 32, NULL, 0);
	for (size_t i = 0; i < 4; i++) {
		for (size_t j = 0; j < 6; j++) {
			selftest_seq(in, in_len[j], (uint32_t)in_len[j]);
			lsw_blake2s(md, md_len[i], in, in_len[j], NULL, 0);
			lsw_blake2s_update(&ctx, md, md_len[i]);
			selftest_seq(key, md_len[i], (uint32_t)md_len[i]);
			lsw_blake2s(md, md_len[i], in, in_len[j], key, md_len[i]);
			lsw_blake2s_update(&ctx, md, md_len[i]);
		}
	}
	lsw_blake2s_final(&ctx, md);
	assert_memory_equal(md, want, 32);
}

/* Feeding the input in pieces of every size gives the same digest. */
static void test_blake2s_incremental(void **state)
{
	uint8_t in[300], one[32], parts[32];
	struct lsw_blake2s s;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)i;
	lsw_blake2s(one, 32, in, sizeof(in), "k", 1);
	for (size_t step = 1; step <= 130; step++) {
		lsw_blake2s_init(&s, 32, "k", 1);
		for (size_t off = 0; off < sizeof(in); off += step)
			lsw_blake2s_update(&s, in + off, off + step > sizeof(in) ? sizeof(in) - off : step);
		lsw_blake2s_final(&s, parts);
		assert_memory_equal(one, parts, 32);
	}
}

/* Keyed BLAKE2s with a 16-byte output (WireGuard's MAC), and a 256-byte input
 * with a 32-byte key; reference values from Python's hashlib.blake2s. */
static void test_blake2s_keyed(void **state)
{
	uint8_t key[32], in[256], out[32], want[32];

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 256; i++)
		in[i] = (uint8_t)i;
	unhex(want, "61ba5f165c194692e09d12520cc4c74a");
	lsw_blake2s(out, 16, "abc", 3, key, 32);
	assert_memory_equal(out, want, 16);
	unhex(want, "5211d1aefc0025be7f85c06b3e14e0fc645ae12bd41746485ea6d8a364a2eaee");
	lsw_blake2s(out, 32, in, 256, key, 32);
	assert_memory_equal(out, want, 32);
}

/* HMAC-BLAKE2s (RFC 2104 construction), reference values from Python's hmac
 * module: a short key, and a key longer than the 64-byte block (hashed first). */
static void test_hmac(void **state)
{
	const char *msg = "The quick brown fox jumps over the lazy dog";
	uint8_t out[32], want[32], longkey[100];

	unhex(want, "f93215bb90d4af4c3061cd932fb169fb8bb8a91d0b4022baea1271e1323cd9a0");
	lsw_hmac_blake2s(out, "key", 3, msg, strlen(msg));
	assert_memory_equal(out, want, 32);

	for (int i = 0; i < 100; i++)
		longkey[i] = (uint8_t)i;
	unhex(want, "d262c404e86fa6bc5be7b1aabcdc6737627e135c5b98de4a3b85ebc08ac01d54");
	lsw_hmac_blake2s(out, longkey, sizeof(longkey), "msg", 3);
	assert_memory_equal(out, want, 32);
}

/* KDF1..3 as the whitepaper defines them (section 5.4): t0 = HMAC(key, in),
 * t1 = HMAC(t0, 0x1), t2 = HMAC(t0, t1 || 0x2), t3 = HMAC(t0, t2 || 0x3). */
static void test_kdf(void **state)
{
	const char *in = "WireGuard KDF input";
	uint8_t key[32], t1[32], t2[32], t3[32], want[32], only1[32];

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	lsw_kdf(t1, t2, t3, key, in, strlen(in));
	unhex(want, "52032c2de118783ad75205963d7a01d067ef721123b8ca1e0cac41e913077358");
	assert_memory_equal(t1, want, 32);
	unhex(want, "88c4334e854fd6cbca5bfa17b10c76f91562a61e6b819e94b7c7e3f3d34003d7");
	assert_memory_equal(t2, want, 32);
	unhex(want, "310a89fbca876dbefda08a19ee0d4b0c6f5820bbf63ff38db0f6bc0035bdad8d");
	assert_memory_equal(t3, want, 32);
	/* KDF1 is the first output of KDF3. */
	lsw_kdf(only1, NULL, NULL, key, in, strlen(in));
	assert_memory_equal(only1, t1, 32);
	/* The empty input (transport key derivation). */
	unhex(want, "7a38c34bf2b8738d7374ca77c44ecb309a11d2b2528304fa86052c365e722624");
	lsw_kdf(t1, NULL, NULL, key, NULL, 0);
	assert_memory_equal(t1, want, 32);
	/* The output may alias the key (the chaining key is updated in place). */
	memcpy(t2, key, 32);
	lsw_kdf(t2, NULL, NULL, t2, in, strlen(in));
	lsw_kdf(t1, NULL, NULL, key, in, strlen(in));
	assert_memory_equal(t1, t2, 32);
}

/* The handshake's initial chaining key and hash from the whitepaper:
 * C = HASH(CONSTRUCTION), H = HASH(C || IDENTIFIER). */
static void test_noise_constants(void **state)
{
	const char *construction = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
	const char *identifier = "WireGuard v1 zx2c4 Jason@zx2c4.com";
	uint8_t c[32], h[32], want[32];
	struct lsw_blake2s s;

	lsw_blake2s(c, 32, construction, strlen(construction), NULL, 0);
	unhex(want, "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36");
	assert_memory_equal(c, want, 32);
	lsw_blake2s_init(&s, 32, NULL, 0);
	lsw_blake2s_update(&s, c, 32);
	lsw_blake2s_update(&s, identifier, strlen(identifier));
	lsw_blake2s_final(&s, h);
	unhex(want, "2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3");
	assert_memory_equal(h, want, 32);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blake2s_abc),
		cmocka_unit_test(test_blake2s_rfc7693_selftest),
		cmocka_unit_test(test_blake2s_incremental),
		cmocka_unit_test(test_blake2s_keyed),
		cmocka_unit_test(test_hmac),
		cmocka_unit_test(test_kdf),
		cmocka_unit_test(test_noise_constants),
	};

	ls_crypto_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
