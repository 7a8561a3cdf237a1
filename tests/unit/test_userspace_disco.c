// SPDX-License-Identifier: MIT
/* The sealed ping/pong of direct path discovery (relayproxy.h, "direct path discovery"):
 * the pair key, seal/open, tampering, wrong keys, truncation, version 1, the replay
 * window; and the relayed path MTU (per path, and from a relay proxy's lists). */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include <sodium.h>

#include "userspace/relayproxy.h"

struct pair {
	uint8_t a_priv[32], a_pub[32], b_priv[32], b_pub[32], c_priv[32], c_pub[32];
	uint8_t ab[32], ba[32];
};

static void keypair(uint8_t priv[32], uint8_t pub[32])
{
	randombytes_buf(priv, 32);
	priv[0] &= 248;
	priv[31] = (priv[31] & 127) | 64;
	crypto_scalarmult_base(pub, priv);
}

static int setup(void **state)
{
	static struct pair p;

	if (sodium_init() < 0)
		return -1;
	keypair(p.a_priv, p.a_pub);
	keypair(p.b_priv, p.b_pub);
	keypair(p.c_priv, p.c_pub);
	if (ls_disco_key(p.ab, p.a_priv, p.a_pub, p.b_pub) || ls_disco_key(p.ba, p.b_priv, p.b_pub, p.a_pub))
		return -1;
	*state = &p;
	return 0;
}

static struct ls_disco_msg ping_ab(const struct pair *p)
{
	struct ls_disco_msg m = { .type = LS_DISCO_PING, .txid = 0x0102030405060708ull, .seq = 1732550000000001ull };

	memcpy(m.from, p->a_pub, 32);
	memcpy(m.to, p->b_pub, 32);
	return m;
}

/* Both ends derive one key; a third party's differs; a low-order point is refused. */
static void test_pair_key(void **state)
{
	const struct pair *p = *state;
	uint8_t ac[32], zero[32] = { 0 }, out[32];

	assert_memory_equal(p->ab, p->ba, 32);
	assert_int_equal(ls_disco_key(ac, p->a_priv, p->a_pub, p->c_pub), 0);
	assert_memory_not_equal(ac, p->ab, 32);
	assert_int_equal(ls_disco_key(out, p->a_priv, p->a_pub, zero), -EINVAL);
}

static void test_round_trip(void **state)
{
	const struct pair *p = *state;
	struct ls_disco_msg m = ping_ab(p), d;
	uint8_t buf[LS_DISCO_LEN], again[LS_DISCO_LEN];

	ls_disco_seal(&m, p->ab, buf);
	/* the clear header: magic, type, version, zeros, both keys */
	assert_memory_equal(buf, "\xffLSD\x01\x02\0\0", 8);
	assert_memory_equal(buf + 8, p->a_pub, 32);
	assert_memory_equal(buf + 40, p->b_pub, 32);
	/* never mistaken for WireGuard (types 1..4) or STUN (top bits 00) */
	assert_int_equal(buf[0], 0xff);
	assert_int_equal(ls_disco_peek(buf, sizeof(buf), &d), 0);
	assert_int_equal(d.type, LS_DISCO_PING);
	assert_memory_equal(d.from, p->a_pub, 32);
	assert_memory_equal(d.to, p->b_pub, 32);
	assert_true(d.txid == 0 && d.seq == 0); /* not readable without the key */
	assert_int_equal(ls_disco_open(buf, sizeof(buf), p->ba, &d), 0);
	assert_int_equal(d.type, LS_DISCO_PING);
	assert_true(d.txid == m.txid);
	assert_true(d.seq == m.seq);
	assert_memory_equal(d.from, p->a_pub, 32);
	assert_memory_equal(d.to, p->b_pub, 32);
	/* the txid travels encrypted: it is nowhere in the clear */
	for (size_t i = 0; i + 8 <= sizeof(buf); i++)
		assert_memory_not_equal(buf + i, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	/* a fresh nonce each time: the same message seals differently */
	ls_disco_seal(&m, p->ab, again);
	assert_memory_not_equal(buf + LS_DISCO_HDR_LEN, again + LS_DISCO_HDR_LEN, LS_DISCO_LEN - LS_DISCO_HDR_LEN);
	/* a pong */
	m.type = LS_DISCO_PONG;
	ls_disco_seal(&m, p->ba, buf);
	assert_int_equal(ls_disco_open(buf, sizeof(buf), p->ab, &d), 0);
	assert_int_equal(d.type, LS_DISCO_PONG);
}

/* Any one bit flipped anywhere: refused (header bits as a bad header or a bad seal). */
static void test_tampered(void **state)
{
	const struct pair *p = *state;
	struct ls_disco_msg m = ping_ab(p), d;
	uint8_t buf[LS_DISCO_LEN], bad[LS_DISCO_LEN];

	ls_disco_seal(&m, p->ab, buf);
	for (size_t i = 0; i < sizeof(buf); i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			int ret;

			memcpy(bad, buf, sizeof(bad));
			bad[i] ^= (uint8_t)(1 << bit);
			ret = ls_disco_open(bad, sizeof(bad), p->ba, &d);
			if (i < 8) /* magic, type, version, zeros */
				assert_true(ret == -EBADMSG || ret == -EACCES);
			else
				assert_int_equal(ret, -EACCES);
			if (ret)
				assert_true(d.txid == 0 && d.type == 0);
		}
	}
	/* a pong made from the ping by changing its type: the header is sealed too */
	memcpy(bad, buf, sizeof(bad));
	bad[4] = LS_DISCO_PONG;
	assert_int_equal(ls_disco_open(bad, sizeof(bad), p->ba, &d), -EACCES);
	/* sender and receiver swapped (a reflection): refused */
	memcpy(bad, buf, sizeof(bad));
	memcpy(bad + 8, p->b_pub, 32);
	memcpy(bad + 40, p->a_pub, 32);
	assert_int_equal(ls_disco_open(bad, sizeof(bad), p->ab, &d), -EACCES);
}

/* Sealed by a third party claiming to be a (its own pair key with b), or opened with
 * another pair's key: refused. */
static void test_wrong_key(void **state)
{
	const struct pair *p = *state;
	struct ls_disco_msg m = ping_ab(p), d;
	uint8_t buf[LS_DISCO_LEN], cb[32], ca[32];

	assert_int_equal(ls_disco_key(cb, p->c_priv, p->c_pub, p->b_pub), 0);
	ls_disco_seal(&m, cb, buf); /* c forges a's ping to b */
	assert_int_equal(ls_disco_peek(buf, sizeof(buf), &d), 0);
	assert_int_equal(ls_disco_open(buf, sizeof(buf), p->ba, &d), -EACCES);
	ls_disco_seal(&m, p->ab, buf);
	assert_int_equal(ls_disco_key(ca, p->c_priv, p->c_pub, p->a_pub), 0);
	assert_int_equal(ls_disco_open(buf, sizeof(buf), ca, &d), -EACCES);
	/* an all-zero key (never derived) opens nothing either */
	memset(ca, 0, sizeof(ca));
	assert_int_equal(ls_disco_open(buf, sizeof(buf), ca, &d), -EACCES);
}

static void test_truncated(void **state)
{
	const struct pair *p = *state;
	struct ls_disco_msg m = ping_ab(p), d;
	uint8_t buf[LS_DISCO_LEN + 1];

	ls_disco_seal(&m, p->ab, buf);
	buf[LS_DISCO_LEN] = 0;
	for (size_t n = 0; n < LS_DISCO_LEN; n++) {
		assert_int_equal(ls_disco_peek(buf, n, &d), -EBADMSG);
		assert_int_equal(ls_disco_open(buf, n, p->ba, &d), -EBADMSG);
	}
	assert_int_equal(ls_disco_open(buf, LS_DISCO_LEN + 1, p->ba, &d), -EBADMSG);
	assert_int_equal(ls_disco_open(buf, LS_DISCO_LEN, p->ba, &d), 0);
	/* another version at the right length, an unknown type, nonzero padding */
	buf[5] = 3;
	assert_int_equal(ls_disco_open(buf, LS_DISCO_LEN, p->ba, &d), -EBADMSG);
	buf[5] = LS_DISCO_VERSION;
	buf[4] = 3;
	assert_int_equal(ls_disco_open(buf, LS_DISCO_LEN, p->ba, &d), -EBADMSG);
	buf[4] = LS_DISCO_PING;
	buf[7] = 1;
	assert_int_equal(ls_disco_open(buf, LS_DISCO_LEN, p->ba, &d), -EBADMSG);
}

/* Version 1 (80 bytes, unauthenticated) is recognised and refused. */
static void test_version1(void **state)
{
	const struct pair *p = *state;
	uint8_t v1[LS_DISCO_V1_LEN] = { 0xff, 'L', 'S', 'D', LS_DISCO_PONG };
	struct ls_disco_msg d;

	memcpy(v1 + 16, p->a_pub, 32);
	memcpy(v1 + 48, p->b_pub, 32);
	assert_int_equal(ls_disco_peek(v1, sizeof(v1), &d), -EPROTO);
	assert_int_equal(ls_disco_open(v1, sizeof(v1), p->ba, &d), -EPROTO);
	v1[4] = 9;
	assert_int_equal(ls_disco_peek(v1, sizeof(v1), &d), -EBADMSG);
}

static void test_replay(void **state)
{
	struct ls_disco_replay r = { 0 };
	uint64_t base = 1732550000000000ull;

	(void)state;
	assert_false(ls_disco_replay_ok(&r, 0));
	assert_true(ls_disco_replay_ok(&r, base + 10));
	ls_disco_replay_mark(&r, base + 10);
	/* the same again: a replay */
	assert_false(ls_disco_replay_ok(&r, base + 10));
	/* older, within the window, not seen: fine once (reordering across paths) */
	assert_true(ls_disco_replay_ok(&r, base + 5));
	ls_disco_replay_mark(&r, base + 5);
	assert_false(ls_disco_replay_ok(&r, base + 5));
	assert_true(ls_disco_replay_ok(&r, base + 9));
	/* newer moves the window */
	ls_disco_replay_mark(&r, base + 10 + LS_DISCO_REPLAY_WINDOW - 1);
	assert_false(ls_disco_replay_ok(&r, base + 10)); /* still remembered at the window's edge */
	assert_true(ls_disco_replay_ok(&r, base + 11));
	assert_false(ls_disco_replay_ok(&r, base + 9));  /* older than the window: refused */
	ls_disco_replay_mark(&r, base + 1000);
	assert_false(ls_disco_replay_ok(&r, base + 10 + LS_DISCO_REPLAY_WINDOW - 1));
	assert_false(ls_disco_replay_ok(&r, base + 1000));
	assert_true(ls_disco_replay_ok(&r, base + 999));
	assert_true(ls_disco_replay_ok(&r, base + 1001));
	/* marking something older than the window changes nothing */
	ls_disco_replay_mark(&r, base);
	assert_true(r.top == base + 1000 && r.bits == 1);
}

/* Relayed path MTU: the framing of each relay over IPv4/IPv6 under the default 1420. */
static void test_path_mtu(void **state)
{
	const struct {
		enum ls_rproxy_path path;
		int family;
		unsigned framing, ip, want;
	} t[] = {
		{ LS_RPROXY_PATH_UDP, AF_INET, 40, 20, 1392 },
		{ LS_RPROXY_PATH_UDP, AF_INET6, 40, 40, 1376 },
		{ LS_RPROXY_PATH_TURN, AF_INET, LS_RPROXY_TURN_FRAMING_V4, 20, 1392 },
		{ LS_RPROXY_PATH_TURN, AF_INET6, LS_RPROXY_TURN_FRAMING_V6, 40, 1360 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		unsigned mtu = ls_rproxy_path_mtu_for(t[i].path, t[i].family, 1420);

		assert_int_equal(mtu, t[i].want);
		/* the largest packet, padded by WireGuard to a multiple of 16, with WireGuard's
		 * 32 bytes, the framing, UDP and IP: within 1500, and 16 more would not be */
		assert_true(((mtu + 15) & ~15u) + 32 + t[i].framing + 8 + t[i].ip <= 1500);
		assert_true(mtu + 16 + 32 + t[i].framing + 8 + t[i].ip > 1500);
	}
	assert_int_equal(ls_rproxy_path_mtu_for(LS_RPROXY_PATH_STREAM, AF_INET, 1420), 1420);
	assert_int_equal(ls_rproxy_path_mtu_for(LS_RPROXY_PATH_NONE, AF_INET, 1420), 1420);
	/* a smaller interface MTU shrinks with it, down to IPv6's 1280 */
	assert_int_equal(ls_rproxy_path_mtu_for(LS_RPROXY_PATH_UDP, AF_INET, 1380), 1360);
	assert_int_equal(ls_rproxy_path_mtu_for(LS_RPROXY_PATH_UDP, AF_INET6, 1300), 1280);
	assert_int_equal(ls_rproxy_path_mtu_for(LS_RPROXY_PATH_TURN, AF_INET6, 1280), 1280);
}

/* A relayed peer's MTU from the relay lists: the lowest over the datagram relays. */
static void test_relayed_mtu(void **state)
{
	const char *const stream[] = { "127.0.0.1:9" }, *const udp4[] = { "192.0.2.1:3478" },
			  *const udp46[] = { "192.0.2.1:3478", "[2001:db8::1]:3478" };
	struct ls_rproxy_turn_server t4 = { "turn:192.0.2.1:3478", "u", "p" },
				     t6 = { "turn:[2001:db8::1]:3478", "u", "p" };
	const struct {
		struct ls_rproxy_relays r;
		unsigned want;
	} t[] = {
		{ { stream, 1, NULL, 0, NULL, 0 }, 1420 },        /* stream relays alone: TCP */
		{ { stream, 1, udp4, 1, NULL, 0 }, 1392 },        /* a UDP relay over IPv4 */
		{ { stream, 1, udp46, 2, NULL, 0 }, 1376 },       /* ... and one over IPv6 */
		{ { stream, 1, NULL, 0, &t4, 1 }, 1392 },         /* TURN over IPv4 */
		{ { stream, 1, udp4, 1, &t6, 1 }, 1360 },         /* TURN over IPv6 is the lowest */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct ls_rproxy_config cfg = { .wg_port = 9, .relays = t[i].r };
		struct ls_rproxy *rp = ls_rproxy_new(&cfg);

		assert_non_null(rp);
		assert_int_equal(ls_rproxy_relayed_mtu(rp, 1420), t[i].want);
		assert_int_equal(ls_rproxy_relayed_mtu(rp, 1280), 1280);
		ls_rproxy_free(rp);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pair_key),   cmocka_unit_test(test_round_trip), cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_wrong_key),  cmocka_unit_test(test_truncated),  cmocka_unit_test(test_version1),
		cmocka_unit_test(test_replay),     cmocka_unit_test(test_path_mtu),   cmocka_unit_test(test_relayed_mtu),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
