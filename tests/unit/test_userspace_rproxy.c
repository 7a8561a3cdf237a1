/* SPDX-License-Identifier: MIT */
/* userspace/relayproxy.c: path choice, backoff, relay order, address parsing, the
 * probe codec, and the module on real loopback sockets without relays. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <sodium.h>

#include "keys.h"
#include "prefix.h"
#include "relayclient.h"
#include "turnclient.h"
#include "userspace/relayproxy.h"
#include "util.h"

static void test_choose_path(void **state)
{
	/* udp_registered, udp_confirmed, turn_ready, stream_up -> path */
	static const struct {
		bool reg, conf, turn, stream;
		enum ls_rproxy_path want;
	} cases[] = {
		{ true, true, true, true, LS_RPROXY_PATH_UDP },
		{ true, true, false, false, LS_RPROXY_PATH_UDP },
		{ true, false, false, true, LS_RPROXY_PATH_STREAM },  /* unconfirmed UDP loses to the stream */
		{ true, false, true, true, LS_RPROXY_PATH_TURN },     /* TURN before the stream */
		{ false, true, false, true, LS_RPROXY_PATH_STREAM },  /* heard, but registration gone */
		{ false, false, false, true, LS_RPROXY_PATH_STREAM },
		{ true, false, false, false, LS_RPROXY_PATH_UDP },    /* nothing better: try it */
		{ false, false, true, false, LS_RPROXY_PATH_TURN },
		{ false, false, false, false, LS_RPROXY_PATH_NONE },
		{ false, true, false, false, LS_RPROXY_PATH_NONE },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		enum ls_rproxy_path got = ls_rproxy_choose_path(cases[i].reg, cases[i].conf, cases[i].turn,
								 cases[i].stream);

		if (got != cases[i].want)
			fail_msg("case %zu: %s, want %s", i, ls_rproxy_path_str(got),
				 ls_rproxy_path_str(cases[i].want));
	}
	assert_string_equal(ls_rproxy_path_str(LS_RPROXY_PATH_STREAM), "stream");
	assert_string_equal(ls_rproxy_path_str((enum ls_rproxy_path)99), "unknown");
}

static void test_backoff(void **state)
{
	(void)state;
	assert_int_equal(ls_rproxy_backoff_ms(0, 12345), 0);
	assert_int_equal(ls_rproxy_backoff_ms(1, 0), LS_RPROXY_BACKOFF_MIN_MS);
	assert_int_equal(ls_rproxy_backoff_ms(2, 0), 2 * LS_RPROXY_BACKOFF_MIN_MS);
	assert_int_equal(ls_rproxy_backoff_ms(3, 0), 4 * LS_RPROXY_BACKOFF_MIN_MS);
	/* Capped, however many failures (no overflow). */
	assert_int_equal(ls_rproxy_backoff_ms(6, 0), LS_RPROXY_BACKOFF_MAX_MS);
	assert_int_equal(ls_rproxy_backoff_ms(4000000000u, 0), LS_RPROXY_BACKOFF_MAX_MS);
	/* Jitter adds at most a quarter. */
	for (uint32_t j = 0; j < 5000; j += 7) {
		uint64_t b = ls_rproxy_backoff_ms(2, j * 2654435761u);

		assert_true(b >= 2000 && b <= 2500);
		b = ls_rproxy_backoff_ms(40, j * 2654435761u);
		assert_true(b >= LS_RPROXY_BACKOFF_MAX_MS && b <= LS_RPROXY_BACKOFF_MAX_MS * 5 / 4);
	}
	/* Non-decreasing in failures (without jitter). */
	for (unsigned f = 1; f < 40; f++)
		assert_true(ls_rproxy_backoff_ms(f + 1, 0) >= ls_rproxy_backoff_ms(f, 0));
}

static void test_pick_relay(void **state)
{
	uint64_t never[3] = { 0, 0, 0 }, first_down[3] = { 5000, 0, 0 }, two_down[3] = { 5000, 7000, 0 },
		 all_down[3] = { 5000, 7000, 9000 };

	(void)state;
	assert_int_equal(ls_rproxy_pick_relay(never, 3, 1000), 0);
	assert_int_equal(ls_rproxy_pick_relay(first_down, 3, 1000), 1);
	assert_int_equal(ls_rproxy_pick_relay(two_down, 3, 1000), 2);
	assert_int_equal(ls_rproxy_pick_relay(all_down, 3, 1000), -1);
	/* The first one's backoff is over: back to it. */
	assert_int_equal(ls_rproxy_pick_relay(all_down, 3, 5000), 0);
	assert_int_equal(ls_rproxy_pick_relay(two_down, 3, 6000), 0);
	assert_int_equal(ls_rproxy_pick_relay(never, 0, 1000), -1);
}

static void test_parse_addr(void **state)
{
	static const char *const bad[] = {
		"", "1.2.3.4", "1.2.3.4:", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:80x", "1.2.3.4:+80",
		"1.2.3.4:-1", "::1:80", "[::1]80", "[::1]:", "[1.2.3.4]:80", "relay.example:80",
		"[fe80::1%eth0]:80", "1.2.3.256:80", ":80", "[]:80",
		"[1111:2222:3333:4444:5555:6666:7777:8888:9999]:80",
	};
	struct sockaddr_storage ss;
	socklen_t len;
	char ip[INET6_ADDRSTRLEN];

	(void)state;
	assert_int_equal(ls_rproxy_parse_addr("198.51.100.7:3478", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 3478);
	inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
	assert_string_equal(ip, "198.51.100.7");
	assert_int_equal(ls_rproxy_parse_addr("[2001:db8::1]:65535", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 65535);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (ls_rproxy_parse_addr(bad[i], &ss, &len) != -EINVAL)
			fail_msg("`%s' accepted", bad[i]);
	assert_int_equal(ls_rproxy_parse_addr(NULL, &ss, &len), -EINVAL);
}

/* lib/turnclient.h's ls_sockaddr_equal, which the relay proxy matches TURN peers with. */
static void test_sockaddr_equal(void **state)
{
	struct sockaddr_storage a, b;
	socklen_t len;

	(void)state;
	assert_int_equal(ls_rproxy_parse_addr("192.0.2.1:3478", &a, &len), 0);
	assert_int_equal(ls_rproxy_parse_addr("192.0.2.1:3478", &b, &len), 0);
	assert_true(ls_sockaddr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
	assert_int_equal(ls_rproxy_parse_addr("192.0.2.1:3479", &b, &len), 0);
	assert_false(ls_sockaddr_equal((struct sockaddr *)&a, (struct sockaddr *)&b)); /* port */
	assert_int_equal(ls_rproxy_parse_addr("192.0.2.2:3478", &b, &len), 0);
	assert_false(ls_sockaddr_equal((struct sockaddr *)&a, (struct sockaddr *)&b)); /* address */
	assert_int_equal(ls_rproxy_parse_addr("[::ffff:192.0.2.1]:3478", &b, &len), 0);
	assert_false(ls_sockaddr_equal((struct sockaddr *)&a, (struct sockaddr *)&b)); /* family */
	assert_int_equal(ls_rproxy_parse_addr("[2001:db8::1]:3478", &a, &len), 0);
	assert_int_equal(ls_rproxy_parse_addr("[2001:db8::1]:3478", &b, &len), 0);
	((struct sockaddr_in6 *)&b)->sin6_flowinfo = 5; /* not part of the endpoint */
	assert_true(ls_sockaddr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
	assert_int_equal(ls_rproxy_parse_addr("[2001:db8::2]:3478", &b, &len), 0);
	assert_false(ls_sockaddr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.ss_family = b.ss_family = AF_UNIX;
	assert_false(ls_sockaddr_equal((struct sockaddr *)&a, (struct sockaddr *)&b)); /* no endpoint */
}

/* Two nodes' keys and their pair's key, derived from either side. */
struct pairkeys {
	uint8_t priv_a[32], pub_a[32], priv_b[32], pub_b[32], key[LS_DISCO_KEY_LEN];
};

static void pairkeys_make(struct pairkeys *k)
{
	uint8_t other[LS_DISCO_KEY_LEN];

	assert_int_equal(ls_crypto_init(), 0);
	ls_wg_genkey(k->priv_a);
	ls_wg_pubkey(k->pub_a, k->priv_a);
	ls_wg_genkey(k->priv_b);
	ls_wg_pubkey(k->pub_b, k->priv_b);
	assert_int_equal(ls_disco_key(k->key, k->priv_a, k->pub_a, k->pub_b), 0);
	assert_int_equal(ls_disco_key(other, k->priv_b, k->pub_b, k->pub_a), 0);
	assert_memory_equal(k->key, other, sizeof(other)); /* both ends derive the same */
}

static void test_probe_roundtrip(void **state)
{
	struct ls_rproxy_probe p = { .ts_ms = 1764000000123ull, .reply = true, .n_endpoints = 2 }, q;
	struct pairkeys k;
	uint8_t buf[LS_DISCO_PROBE_MAX_LEN];
	uint64_t seq;
	int n;

	(void)state;
	pairkeys_make(&k);
	strcpy(p.endpoints[0], "198.51.100.7:41641");
	strcpy(p.endpoints[1], "[2001:db8::7]:41641");
	n = ls_disco_probe_seal(&p, 1000, k.pub_a, k.pub_b, k.key, buf, sizeof(buf));
	assert_int_equal(n, LS_DISCO_PROBE_MIN_LEN + 7 + 19);
	assert_true(n <= (int)LSR_MAX_PROBE);
	assert_memory_equal(buf, "\xffLSD\x03\x02\0\0", 8);
	/* the endpoints travel sealed: not in the clear */
	assert_null(memmem(buf, (size_t)n, "\xc6\x33\x64\x07", 4));
	assert_int_equal(ls_disco_probe_peek(buf, (size_t)n), 0);
	assert_int_equal(ls_disco_probe_open(buf, (size_t)n, k.pub_a, k.pub_b, k.key, &seq, &q), 0);
	assert_int_equal(seq, 1000);
	assert_int_equal(q.ts_ms, p.ts_ms);
	assert_true(q.reply);
	assert_int_equal(q.n_endpoints, 2);
	assert_string_equal(q.endpoints[0], "198.51.100.7:41641");
	assert_string_equal(q.endpoints[1], "[2001:db8::7]:41641");
	assert_string_equal(q.turn, "");
	/* bound to the pair's direction and keys: swapped or another sender does not open */
	assert_int_equal(ls_disco_probe_open(buf, (size_t)n, k.pub_b, k.pub_a, k.key, &seq, &q), -EACCES);
	assert_int_equal(q.n_endpoints, 0);
	assert_int_equal(ls_disco_probe_open(buf, (size_t)n, k.pub_b, k.pub_b, k.key, &seq, &q), -EACCES);

	/* With a TURN relayed address. */
	strcpy(p.turn, "203.0.113.9:49152");
	n = ls_disco_probe_seal(&p, 1001, k.pub_a, k.pub_b, k.key, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(ls_disco_probe_open(buf, (size_t)n, k.pub_a, k.pub_b, k.key, &seq, &q), 0);
	assert_string_equal(q.turn, "203.0.113.9:49152");
	assert_int_equal(seq, 1001);
	strcpy(p.turn, "turn.example:3478");
	assert_int_equal(ls_disco_probe_seal(&p, 1, k.pub_a, k.pub_b, k.key, buf, sizeof(buf)), -EINVAL);

	/* No endpoints, not a reply: still a probe ("send me UDP now"). */
	memset(&p, 0, sizeof(p));
	p.ts_ms = 5;
	n = ls_disco_probe_seal(&p, 7, k.pub_a, k.pub_b, k.key, buf, sizeof(buf));
	assert_int_equal(n, LS_DISCO_PROBE_MIN_LEN);
	assert_int_equal(ls_disco_probe_open(buf, (size_t)n, k.pub_a, k.pub_b, k.key, &seq, &q), 0);
	assert_false(q.reply);
	assert_int_equal(q.n_endpoints, 0);
	assert_int_equal(q.ts_ms, 5);
}

static void test_probe_encode_limits(void **state)
{
	struct ls_rproxy_probe p = { .ts_ms = 1 }, q;
	struct pairkeys k;
	uint8_t buf[LS_DISCO_PROBE_MAX_LEN], small[LS_DISCO_PROBE_MIN_LEN];
	uint64_t seq;
	int n;

	(void)state;
	pairkeys_make(&k);
	p.n_endpoints = 1;
	strcpy(p.endpoints[0], "relay.example:80");
	assert_int_equal(ls_disco_probe_seal(&p, 1, k.pub_a, k.pub_b, k.key, buf, sizeof(buf)), -EINVAL);
	strcpy(p.endpoints[0], "10.0.0.1:80");
	assert_int_equal(ls_disco_probe_seal(&p, 1, k.pub_a, k.pub_b, k.key, small, sizeof(small)), -EMSGSIZE);
	p.n_endpoints = LS_RPROXY_PROBE_MAX_ENDPOINTS + 1;
	assert_int_equal(ls_disco_probe_seal(&p, 1, k.pub_a, k.pub_b, k.key, buf, sizeof(buf)), -EINVAL);
	/* Eight long IPv6 endpoints and a TURN address: the most there is, within LSR_MAX_PROBE. */
	p.n_endpoints = LS_RPROXY_PROBE_MAX_ENDPOINTS;
	for (size_t i = 0; i < p.n_endpoints; i++)
		snprintf(p.endpoints[i], LS_RPROXY_ENDPOINT_LEN, "[2001:db8:1111:2222:3333:4444:5555:%zu]:65535", i);
	strcpy(p.turn, "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
	n = ls_disco_probe_seal(&p, 1, k.pub_a, k.pub_b, k.key, buf, sizeof(buf));
	assert_int_equal(n, LS_DISCO_PROBE_MAX_LEN);
	assert_true((int)LS_DISCO_PROBE_MAX_LEN <= (int)LSR_MAX_PROBE);
	assert_int_equal(ls_disco_probe_open(buf, (size_t)n, k.pub_a, k.pub_b, k.key, &seq, &q), 0);
	assert_int_equal(q.n_endpoints, LS_RPROXY_PROBE_MAX_ENDPOINTS);
	assert_string_equal(q.endpoints[7], "[2001:db8:1111:2222:3333:4444:5555:7]:65535");
}

/* What does not open as a genuine probe: unsealed (the JSON probes of before), malformed
 * headers and lengths, another key, any changed byte, and bodies that open but are wrong. */
static void test_probe_decode_bad(void **state)
{
	static const char *const unsealed[] = {
		"{\"v\":1,\"ts\":1,\"endpoints\":[\"198.51.100.1:1\"]}",
		"not json",
		"\xffLSD\x01\x02\0\0",  /* a ping's header */
		"\xffLSD\x03\x01\0\0",  /* version 1 */
		"\xffLSE\x03\x02\0\0",
	};
	struct ls_rproxy_probe p = { .ts_ms = 9, .n_endpoints = 1 }, q;
	struct pairkeys k;
	uint8_t buf[LS_DISCO_PROBE_MAX_LEN], t[LS_DISCO_PROBE_MAX_LEN + 1], wrong[LS_DISCO_KEY_LEN];
	uint64_t seq;
	int n;

	(void)state;
	pairkeys_make(&k);
	for (size_t i = 0; i < ARRAY_SIZE(unsealed); i++) {
		memset(t, 0, sizeof(t));
		memcpy(t, unsealed[i], strlen(unsealed[i]));
		/* as long as a real one, so that only the format refuses it */
		if (ls_disco_probe_open(t, LS_DISCO_PROBE_MIN_LEN + 7, k.pub_a, k.pub_b, k.key, &seq, &q) != -EPROTO)
			fail_msg("unsealed %zu not refused as such", i);
	}
	assert_int_equal(ls_disco_probe_peek(NULL, 0), -EPROTO);
	strcpy(p.endpoints[0], "198.51.100.9:4444");
	n = ls_disco_probe_seal(&p, 77, k.pub_a, k.pub_b, k.key, buf, sizeof(buf));
	assert_true(n > 0);
	/* lengths: short, long, a reserved byte set */
	assert_int_equal(ls_disco_probe_peek(buf, LS_DISCO_PROBE_MIN_LEN - 1), -EBADMSG);
	memcpy(t, buf, (size_t)n);
	t[n] = 0;
	assert_int_equal(ls_disco_probe_open(t, (size_t)n + 1, k.pub_a, k.pub_b, k.key, &seq, &q), -EACCES);
	assert_int_equal(ls_disco_probe_peek(t, LS_DISCO_PROBE_MAX_LEN + 1), -EBADMSG);
	t[6] = 1;
	assert_int_equal(ls_disco_probe_open(t, (size_t)n, k.pub_a, k.pub_b, k.key, &seq, &q), -EBADMSG);
	/* another key */
	randombytes_buf(wrong, sizeof(wrong));
	assert_int_equal(ls_disco_probe_open(buf, (size_t)n, k.pub_a, k.pub_b, wrong, &seq, &q), -EACCES);
	/* every byte after the magic and type, one bit changed: never opens */
	for (int i = 5; i < n; i++) {
		memcpy(t, buf, (size_t)n);
		t[i] ^= 0x10;
		int r = ls_disco_probe_open(t, (size_t)n, k.pub_a, k.pub_b, k.key, &seq, &q);

		if (r != -EACCES && r != -EPROTO && r != -EBADMSG)
			fail_msg("byte %d changed: %d", i, r);
		assert_int_equal(q.n_endpoints, 0);
		assert_int_equal(seq, 0);
	}
	assert_int_equal(ls_disco_probe_open(buf, (size_t)n, k.pub_a, k.pub_b, k.key, &seq, &q), 0);
	assert_string_equal(q.endpoints[0], "198.51.100.9:4444");
	/* Bodies that open but are malformed: sealed by hand. */
	{
		static const struct {
			uint8_t body[40];
			size_t len;
		} bodies[] = {
			{ { 0 }, 17 },                                              /* short */
			{ { [16] = 4 }, 18 },                                       /* unknown flag */
			{ { [17] = 9 }, 18 },                                       /* too many */
			{ { [17] = 1, [18] = 5, [20] = 1 }, 25 },                   /* family 5 */
			{ { [17] = 1, [18] = 4 }, 25 },                             /* port 0 */
			{ { [17] = 1, [18] = 4, [20] = 1 }, 24 },                   /* cut short */
			{ { [17] = 1, [18] = 4, [20] = 1 }, 26 },                   /* a byte left over */
			{ { [16] = 2, [18] = 6, [20] = 1 }, 30 },                   /* TURN, cut short */
		};
		for (size_t i = 0; i < ARRAY_SIZE(bodies); i++) {
			uint8_t ad[8 + 64];
			unsigned long long clen;

			memcpy(t, "\xffLSD\x03\x02\0\0", 8);
			randombytes_buf(t + 8, 24);
			memcpy(ad, t, 8);
			memcpy(ad + 8, k.pub_a, 32);
			memcpy(ad + 40, k.pub_b, 32);
			crypto_aead_xchacha20poly1305_ietf_encrypt(t + 32, &clen, bodies[i].body, bodies[i].len, ad,
								   sizeof(ad), NULL, t + 8, k.key);
			int r = ls_disco_probe_open(t, 32 + clen, k.pub_a, k.pub_b, k.key, &seq, &q);

			if (r != -EBADMSG)
				fail_msg("malformed body %zu: %d", i, r);
		}
	}
}

/* The pair state a node keeps per peer (the agent's np_pair): our pairs here. */
struct test_pairs {
	size_t n;
	uint8_t peer[4][32];
	struct ls_disco_pair dp[4];
};

static struct ls_disco_pair *test_pair_cb(void *ctx, const uint8_t key[LSR_KEY_LEN])
{
	struct test_pairs *tp = ctx;

	for (size_t i = 0; i < tp->n; i++)
		if (!memcmp(tp->peer[i], key, 32))
			return &tp->dp[i];
	return NULL;
}

/* The module on loopback with no relays: endpoints, the WireGuard-port guard, drops. */
static void test_module_no_relays(void **state)
{
	struct sockaddr_in wg = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in ep, ep2;
	socklen_t len = sizeof(wg);
	uint8_t k1[32], k2[32];
	struct ls_rproxy_config cfg = { 0 };
	struct ls_rproxy *rp;
	struct ls_rproxy_probe p = { .ts_ms = 1 };
	int wgfd, other;
	json_t *st;

	(void)state;
	assert_int_equal(ls_crypto_init(), 0);
	wgfd = socket(AF_INET, SOCK_DGRAM, 0);
	other = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(wgfd >= 0 && other >= 0);
	assert_int_equal(bind(wgfd, (struct sockaddr *)&wg, sizeof(wg)), 0);
	assert_int_equal(getsockname(wgfd, (struct sockaddr *)&wg, &len), 0);
	cfg.wg_port = ntohs(wg.sin_port);
	ls_wg_genkey(k1);
	ls_wg_pubkey(cfg.wg_pub, k1);
	memset(k1, 1, sizeof(k1));
	memset(k2, 2, sizeof(k2));
	uint8_t edpk[32];

	ls_ed25519_keypair(edpk, cfg.ed_sk);
	rp = ls_rproxy_new(&cfg);
	assert_non_null(rp);
	assert_true(ls_rproxy_fd(rp) >= 0);

	assert_int_equal(ls_rproxy_peer_add(rp, k1, &ep), 0);
	assert_int_equal(ntohl(ep.sin_addr.s_addr), LS_RPROXY_LO_NET + 1); /* 127.77.0.1 */
	assert_int_not_equal(ep.sin_port, 0);
	assert_int_equal(ls_rproxy_peer_add(rp, k1, &ep2), 0);
	assert_int_equal(ep2.sin_port, ep.sin_port); /* the same peer, the same endpoint */
	assert_int_equal(ep2.sin_addr.s_addr, ep.sin_addr.s_addr);
	assert_int_equal(ls_rproxy_peer_add(rp, k2, &ep2), 0);
	assert_int_equal(ep2.sin_port, ep.sin_port); /* one socket ... */
	assert_int_not_equal(ep2.sin_addr.s_addr, ep.sin_addr.s_addr); /* ... an address each */
	assert_int_equal(ls_rproxy_peer_path(rp, k1), LS_RPROXY_PATH_NONE);
	assert_int_equal(ls_rproxy_send_probe(rp, k1, &p), -ENOKEY); /* no pair: nothing to seal with */

	/* From WireGuard's port: taken, and dropped (no relay). From another port: not even taken. */
	assert_int_equal(sendto(wgfd, "\x04\0\0\0hello", 9, 0, (struct sockaddr *)&ep, sizeof(ep)), 9);
	assert_int_equal(sendto(other, "\x04\0\0\0hello", 9, 0, (struct sockaddr *)&ep, sizeof(ep)), 9);
	{
		struct pollfd pfd = { .fd = ls_rproxy_fd(rp), .events = POLLIN };

		assert_int_equal(poll(&pfd, 1, 1000), 1);
	}
	assert_int_equal(ls_rproxy_handle(rp), 0);
	ls_rproxy_tick(rp, ls_now_ms());
	st = ls_rproxy_status(rp);
	assert_non_null(st);
	assert_int_equal(json_array_size(json_object_get(st, "peers")), 2);
	{
		json_t *peers = json_object_get(st, "peers");
		json_t *p1 = NULL;
		char b64[LS_KEY_B64_LEN + 1], want_ep[32];

		ls_key_to_base64(b64, k1);
		for (size_t i = 0; i < json_array_size(peers); i++)
			if (!strcmp(json_string_value(json_object_get(json_array_get(peers, i), "public_key")), b64))
				p1 = json_array_get(peers, i);
		assert_non_null(p1);
		assert_int_equal(json_integer_value(json_object_get(p1, "dropped")), 1);
		assert_string_equal(json_string_value(json_object_get(p1, "path")), "none");
		snprintf(want_ep, sizeof(want_ep), "127.77.0.1:%u", ntohs(ep.sin_port));
		assert_string_equal(json_string_value(json_object_get(p1, "endpoint")), want_ep);
	}
	assert_string_equal(json_string_value(json_object_get(json_object_get(st, "stream"), "state")), "idle");
	json_decref(st);

	assert_int_equal(ls_rproxy_peer_remove(rp, k1), 0);
	assert_int_equal(ls_rproxy_peer_remove(rp, k1), -ENOENT);
	/* Its address names no peer any more. */
	assert_true(sendto(wgfd, "x", 1, 0, (struct sockaddr *)&ep, sizeof(ep)) == 1);
	{
		struct pollfd pfd = { .fd = ls_rproxy_fd(rp), .events = POLLIN };

		assert_int_equal(poll(&pfd, 1, 1000), 1);
	}
	ls_rproxy_handle(rp);
	st = ls_rproxy_status(rp);
	assert_int_equal(json_array_size(json_object_get(st, "peers")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "counters"), "loopback_no_peer")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "counters"), "loopback_bad_source")), 1);
	json_decref(st);
	ls_rproxy_free(rp);
	close(wgfd);
	close(other);
}

static int count_fds(void)
{
	char path[64];
	int n = 0;

	for (int fd = 0; fd < 4096; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n += access(path, F_OK) == 0;
	}
	return n;
}

static json_t *peer_status(json_t *st, const uint8_t key[32])
{
	json_t *peers = json_object_get(st, "peers");
	char b64[LS_KEY_B64_LEN + 1];

	ls_key_to_base64(b64, key);
	for (size_t i = 0; i < json_array_size(peers); i++)
		if (!strcmp(json_string_value(json_object_get(json_array_get(peers, i), "public_key")), b64))
			return json_array_get(peers, i);
	return NULL;
}

/* Relayed peers share one loopback socket, each at its own address; only WireGuard's
 * port is heard; a leaving peer's address goes to the next peer. */
static void test_module_shared_socket(void **state)
{
	struct sockaddr_in wg = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in ep[3], again;
	socklen_t len = sizeof(wg);
	uint8_t keys[3][32], sk[32];
	struct ls_rproxy_config cfg = { 0 };
	struct ls_rproxy *rp;
	int wgfd, other, fds_one, fds;
	uint8_t edpk[32];
	json_t *st;

	(void)state;
	assert_int_equal(ls_crypto_init(), 0);
	wgfd = socket(AF_INET, SOCK_DGRAM, 0);
	other = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(wgfd >= 0 && other >= 0);
	assert_int_equal(bind(wgfd, (struct sockaddr *)&wg, sizeof(wg)), 0);
	assert_int_equal(getsockname(wgfd, (struct sockaddr *)&wg, &len), 0);
	cfg.wg_port = ntohs(wg.sin_port);
	ls_wg_genkey(sk);
	ls_wg_pubkey(cfg.wg_pub, sk);
	ls_ed25519_keypair(edpk, cfg.ed_sk);
	for (int i = 0; i < 3; i++)
		memset(keys[i], 0x10 + i, 32);
	rp = ls_rproxy_new(&cfg);
	assert_non_null(rp);

	assert_int_equal(ls_rproxy_peer_add(rp, keys[0], &ep[0]), 0);
	fds_one = count_fds();
	assert_int_equal(ls_rproxy_peer_add(rp, keys[1], &ep[1]), 0);
	assert_int_equal(ls_rproxy_peer_add(rp, keys[2], &ep[2]), 0);
	fds = count_fds();
	assert_int_equal(fds, fds_one); /* no descriptor for the second and third peer */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ep[i].sin_port, ep[0].sin_port);
		assert_int_equal(ntohl(ep[i].sin_addr.s_addr) & LS_RPROXY_LO_MASK, LS_RPROXY_LO_NET);
		for (int j = 0; j < i; j++)
			assert_int_not_equal(ep[i].sin_addr.s_addr, ep[j].sin_addr.s_addr);
	}

	/* From WireGuard's port to peer 1: taken (and dropped: no relay), counted on peer 1
	 * alone. From another port to peer 2: not taken. */
	assert_int_equal(sendto(wgfd, "\x04\0\0\0one", 7, 0, (struct sockaddr *)&ep[1], sizeof(ep[1])), 7);
	assert_int_equal(sendto(other, "\x04\0\0\0two", 7, 0, (struct sockaddr *)&ep[2], sizeof(ep[2])), 7);
	for (int tries = 0; tries < 20; tries++) {
		struct pollfd pfd = { .fd = ls_rproxy_fd(rp), .events = POLLIN };

		if (poll(&pfd, 1, 50) != 1)
			break;
		assert_int_equal(ls_rproxy_handle(rp), 0);
	}
	st = ls_rproxy_status(rp);
	assert_int_equal(json_integer_value(json_object_get(peer_status(st, keys[0]), "dropped")), 0);
	assert_int_equal(json_integer_value(json_object_get(peer_status(st, keys[1]), "dropped")), 1);
	assert_int_equal(json_integer_value(json_object_get(peer_status(st, keys[2]), "dropped")), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "counters"), "loopback_bad_source")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "counters"), "loopback_no_peer")), 0);
	json_decref(st);

	/* A leaving peer's address is reused, and the socket stays. */
	assert_int_equal(ls_rproxy_peer_remove(rp, keys[1]), 0);
	memset(keys[1], 0x42, 32);
	assert_int_equal(ls_rproxy_peer_add(rp, keys[1], &again), 0);
	assert_int_equal(again.sin_addr.s_addr, ep[1].sin_addr.s_addr);
	assert_int_equal(again.sin_port, ep[1].sin_port);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ls_rproxy_peer_remove(rp, keys[i]), 0);
	assert_int_equal(count_fds(), fds);
	assert_int_equal(ls_rproxy_peer_add(rp, keys[0], &again), 0);
	assert_int_equal(ntohl(again.sin_addr.s_addr) & LS_RPROXY_LO_MASK, LS_RPROXY_LO_NET);
	ls_rproxy_free(rp);
	close(wgfd);
	close(other);
}

/* Many peers: found by key whatever was added and removed around them, including keys
 * that differ in one byte only. */
static void test_module_many_peers(void **state)
{
	enum { N = 3000 };
	static uint8_t keys[N][32];
	static struct sockaddr_in ep[N];
	struct ls_rproxy_config cfg = { .wg_port = 51820 };
	struct sockaddr_in again;
	struct ls_rproxy *rp;
	uint8_t edpk[32], sk[32];

	(void)state;
	assert_int_equal(ls_crypto_init(), 0);
	ls_wg_genkey(sk);
	ls_wg_pubkey(cfg.wg_pub, sk);
	ls_ed25519_keypair(edpk, cfg.ed_sk);
	for (int i = 0; i < N; i++) {
		randombytes_buf(keys[i], 32);
		if (i % 10 == 1) { /* key i - 1 but for its last byte */
			memcpy(keys[i], keys[i - 1], 31);
			keys[i][31] = keys[i - 1][31] ^ 1;
		}
	}
	rp = ls_rproxy_new(&cfg);
	assert_non_null(rp);
	for (int i = 0; i < N; i++)
		assert_int_equal(ls_rproxy_peer_add(rp, keys[i], &ep[i]), 0);
	for (int i = 0; i < N; i += 3)
		assert_int_equal(ls_rproxy_peer_remove(rp, keys[i]), 0);
	/* the status lists the others, each at its address */
	{
		json_t *st = ls_rproxy_status(rp), *peers = json_object_get(st, "peers");
		int seen = 0;

		assert_int_equal(json_array_size(peers), N - (N + 2) / 3);
		for (int i = 1; i < N; i += 3) {
			char b64[LS_KEY_B64_LEN + 1], want[32];

			ls_key_to_base64(b64, keys[i]);
			snprintf(want, sizeof(want), "%s:%u", inet_ntoa(ep[i].sin_addr), ntohs(ep[i].sin_port));
			for (size_t k = 0; k < json_array_size(peers); k++) {
				json_t *o = json_array_get(peers, k);

				if (!strcmp(json_string_value(json_object_get(o, "public_key")), b64)) {
					assert_string_equal(json_string_value(json_object_get(o, "endpoint")), want);
					seen++;
				}
			}
		}
		assert_int_equal(seen, (N + 1) / 3);
		json_decref(st);
	}
	/* removed peers come back at the freed addresses (no new one past the first N), and go again */
	for (int i = 0; i < N; i += 3) {
		assert_int_equal(ls_rproxy_peer_add(rp, keys[i], &again), 0);
		assert_true(ntohl(again.sin_addr.s_addr) - LS_RPROXY_LO_NET <= (uint32_t)N);
	}
	for (int i = 0; i < N; i += 3)
		assert_int_equal(ls_rproxy_peer_remove(rp, keys[i]), 0);
	for (int i = 0; i < N; i++) {
		if (i % 3 == 0) {
			assert_int_equal(ls_rproxy_peer_remove(rp, keys[i]), -ENOENT);
			continue;
		}
		/* a present peer added again keeps its address */
		assert_int_equal(ls_rproxy_peer_add(rp, keys[i], &again), 0);
		assert_int_equal(again.sin_addr.s_addr, ep[i].sin_addr.s_addr);
	}
	for (int i = N - 1; i >= 0; i--)
		assert_int_equal(ls_rproxy_peer_remove(rp, keys[i]), i % 3 ? 0 : -ENOENT);
	assert_int_equal(ls_rproxy_peer_remove(rp, keys[1]), -ENOENT);
	ls_rproxy_free(rp);
}

/* Relay lists: invalid addresses are skipped, a relay that stays keeps its state. */
static void test_set_relays(void **state)
{
	const char *const s1[] = { "127.0.0.1:1", "bogus", "[::1]:1" };
	const char *const s2[] = { "[::1]:1" };
	const char *const u1[] = { "127.0.0.1:9" };
	struct ls_rproxy_turn_server t = { "turn:127.0.0.1:3478", "u", "secret" };
	struct ls_rproxy_config cfg = { .wg_port = 9 };
	struct ls_rproxy_relays r = { s1, 3, u1, 1, &t, 1 };
	struct ls_rproxy *rp;
	json_t *st, *a;
	char *dump;

	(void)state;
	uint8_t edpk[32];

	ls_ed25519_keypair(edpk, cfg.ed_sk);
	cfg.relays = r;
	rp = ls_rproxy_new(&cfg);
	assert_non_null(rp);
	/* Port 1 on loopback refuses: both stream relays fail and back off. */
	for (int i = 0; i < 20; i++) {
		struct pollfd pfd = { .fd = ls_rproxy_fd(rp), .events = POLLIN };

		ls_rproxy_tick(rp, ls_now_ms());
		if (poll(&pfd, 1, 20) > 0)
			ls_rproxy_handle(rp);
	}
	st = ls_rproxy_status(rp);
	a = json_object_get(json_object_get(st, "stream"), "relays");
	assert_int_equal(json_array_size(a), 2); /* "bogus" skipped */
	assert_true(json_integer_value(json_object_get(json_array_get(a, 0), "failures")) >= 1);
	assert_true(json_integer_value(json_object_get(json_array_get(a, 1), "failures")) >= 1);
	dump = json_dumps(st, 0);
	assert_null(strstr(dump, "secret")); /* credentials never in the status */
	free(dump);
	json_decref(st);

	r.stream = s2;
	r.n_stream = 1;
	assert_int_equal(ls_rproxy_set_relays(rp, &r), 0);
	st = ls_rproxy_status(rp);
	a = json_object_get(json_object_get(st, "stream"), "relays");
	assert_int_equal(json_array_size(a), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "addr")), "[::1]:1");
	assert_true(json_integer_value(json_object_get(json_array_get(a, 0), "failures")) >= 1); /* kept */
	json_decref(st);
	ls_rproxy_free(rp);
}

/* ---- the module against a hand-driven stream relay on loopback: the handshake
 * (the proof must verify), relayed packets both ways, probes, and hostile frames. */

static int probes_seen;
static struct ls_rproxy_probe last_probe;

static void probe_cb(void *ctx, const uint8_t from[LSR_KEY_LEN], const struct ls_rproxy_probe *p)
{
	(void)ctx;
	(void)from;
	probes_seen++;
	last_probe = *p;
}

static void pump(struct ls_rproxy *rp, int ms)
{
	uint64_t end = ls_now_ms() + (uint64_t)ms;

	while (ls_now_ms() < end) {
		struct pollfd pfd = { .fd = ls_rproxy_fd(rp), .events = POLLIN };

		if (poll(&pfd, 1, 10) > 0)
			ls_rproxy_handle(rp);
		ls_rproxy_tick(rp, ls_now_ms());
	}
}

static void srv_frame(int fd, uint8_t type, const void *a, size_t alen, const void *b, size_t blen)
{
	uint8_t buf[LSR_FRAME_HDR_LEN + 512];

	assert_true(alen + blen <= 512);
	ls_relay_frame_hdr((struct lsr_frame_hdr *)buf, type, (uint32_t)(alen + blen));
	memcpy(buf + LSR_FRAME_HDR_LEN, a, alen);
	if (blen)
		memcpy(buf + LSR_FRAME_HDR_LEN + alen, b, blen);
	assert_int_equal(write(fd, buf, LSR_FRAME_HDR_LEN + alen + blen), (ssize_t)(LSR_FRAME_HDR_LEN + alen + blen));
}

/* Reads one whole frame (header and body) within 2 s; returns the body length. */
static size_t srv_read(struct ls_rproxy *rp, int fd, uint8_t *buf, size_t size, uint8_t *type)
{
	size_t have = 0, need = LSR_FRAME_HDR_LEN;
	uint64_t end = ls_now_ms() + 2000;

	while (have < need) {
		ssize_t n;

		assert_true(ls_now_ms() < end);
		pump(rp, 10);
		n = recv(fd, buf + have, need - have, MSG_DONTWAIT);
		if (n > 0)
			have += (size_t)n;
		if (have == LSR_FRAME_HDR_LEN && need == LSR_FRAME_HDR_LEN) {
			need += be32toh(((struct lsr_frame_hdr *)buf)->len);
			assert_true(need <= size);
		}
	}
	*type = buf[0];
	return need - LSR_FRAME_HDR_LEN;
}

static json_t *status_get(struct ls_rproxy *rp, const char *path1, const char *path2)
{
	static json_t *last;
	json_t *v;

	json_decref(last);
	last = ls_rproxy_status(rp);
	v = json_object_get(last, path1);
	return path2 ? json_object_get(v, path2) : v;
}

static void test_module_stream(void **state)
{
	struct sockaddr_in lsn = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in wg = lsn, ep, from;
	socklen_t len = sizeof(lsn);
	static struct test_pairs tp;
	struct ls_rproxy_config cfg = { .on_probe = probe_cb, .pair = test_pair_cb, .cb_ctx = &tp };
	char addr[32];
	const char *streams[1] = { addr };
	uint8_t peer[32], stranger[32], edpk[32], buf[1024], type, our_priv[32], peer_priv[32], peer2_priv[32];
	uint8_t peer_key[LS_DISCO_KEY_LEN]; /* the pair's key as the peer derives it */
	struct lsr_server_hello sh = { .magic = htobe32(LSR_STREAM_MAGIC), .version = LSR_VERSION };
	struct lsr_server_accept acc = { .keepalive_s = htobe32(25), .max_payload = htobe32(65535) };
	const struct lsr_client_hello *ch;
	struct ls_rproxy *rp;
	int lfd, sfd, wgfd;
	size_t n;

	(void)state;
	assert_int_equal(ls_crypto_init(), 0);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	wgfd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&lsn, sizeof(lsn)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&lsn, &len), 0);
	assert_int_equal(bind(wgfd, (struct sockaddr *)&wg, sizeof(wg)), 0);
	len = sizeof(wg);
	assert_int_equal(getsockname(wgfd, (struct sockaddr *)&wg, &len), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(lsn.sin_port));
	cfg.relays.stream = streams;
	cfg.relays.n_stream = 1;
	cfg.wg_port = ntohs(wg.sin_port);
	ls_wg_genkey(our_priv);
	ls_wg_pubkey(cfg.wg_pub, our_priv);
	ls_ed25519_keypair(edpk, cfg.ed_sk);
	ls_wg_genkey(peer_priv);
	ls_wg_pubkey(peer, peer_priv);
	ls_wg_genkey(peer2_priv);
	/* our pairs: with the peer (relayed) and with a second peer of ours (not relayed) */
	memset(&tp, 0, sizeof(tp));
	tp.n = 2;
	memcpy(tp.peer[0], peer, 32);
	assert_int_equal(ls_disco_key(tp.dp[0].key, our_priv, cfg.wg_pub, peer), 0);
	ls_wg_pubkey(tp.peer[1], peer2_priv);
	assert_int_equal(ls_disco_key(tp.dp[1].key, our_priv, cfg.wg_pub, tp.peer[1]), 0);
	assert_int_equal(ls_disco_key(peer_key, peer_priv, peer, cfg.wg_pub), 0);
	memset(stranger, 9, sizeof(stranger));
	rp = ls_rproxy_new(&cfg);
	assert_non_null(rp);
	assert_int_equal(ls_rproxy_peer_add(rp, peer, &ep), 0);

	/* Handshake: our hello carries a proof over the nonce that verifies. */
	pump(rp, 50);
	sfd = accept(lfd, NULL, NULL);
	assert_true(sfd >= 0);
	randombytes_buf(sh.nonce, sizeof(sh.nonce));
	srv_frame(sfd, LSR_FRAME_SERVER_HELLO, &sh, sizeof(sh), NULL, 0);
	n = srv_read(rp, sfd, buf, sizeof(buf), &type);
	assert_int_equal(type, LSR_FRAME_CLIENT_HELLO);
	assert_int_equal(n, LSR_CLIENT_HELLO_LEN);
	ch = (const void *)(buf + LSR_FRAME_HDR_LEN);
	assert_memory_equal(ch->key, cfg.wg_pub, 32);
	assert_memory_equal(ch->proof.ed_pk, edpk, 32);
	assert_int_equal(ls_relay_proof_verify(&ch->proof, LSR_PURPOSE_STREAM, cfg.wg_pub, sh.nonce), 0);
	/* The accept and a relayed packet in one write: nothing behind the accept is lost. */
	{
		uint8_t two[2 * LSR_FRAME_HDR_LEN + LSR_SERVER_ACCEPT_LEN + 32 + 9];
		size_t o = 0;

		ls_relay_frame_hdr((struct lsr_frame_hdr *)two, LSR_FRAME_SERVER_ACCEPT, LSR_SERVER_ACCEPT_LEN);
		memcpy(two + LSR_FRAME_HDR_LEN, &acc, sizeof(acc));
		o = LSR_FRAME_HDR_LEN + LSR_SERVER_ACCEPT_LEN;
		ls_relay_frame_hdr((struct lsr_frame_hdr *)(two + o), LSR_FRAME_RECV, 32 + 9);
		memcpy(two + o + LSR_FRAME_HDR_LEN, peer, 32);
		memcpy(two + o + LSR_FRAME_HDR_LEN + 32, "\x04\0\0\0first", 9);
		assert_int_equal(write(sfd, two, sizeof(two)), (ssize_t)sizeof(two));
	}
	pump(rp, 100);
	assert_string_equal(json_string_value(status_get(rp, "stream", "state")), "up");
	assert_int_equal(ls_rproxy_peer_path(rp, peer), LS_RPROXY_PATH_STREAM);
	len = sizeof(from);
	n = (size_t)recvfrom(wgfd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &len);
	assert_int_equal(n, 9);
	assert_memory_equal(buf, "\x04\0\0\0first", 9);
	assert_int_equal(from.sin_port, ep.sin_port); /* from the peer's endpoint, as WireGuard expects */
	assert_int_equal(from.sin_addr.s_addr, ep.sin_addr.s_addr);

	/* WireGuard -> relay: a SEND frame naming the peer. */
	assert_int_equal(sendto(wgfd, "\x01\0\0\0init", 8, 0, (struct sockaddr *)&ep, sizeof(ep)), 8);
	n = srv_read(rp, sfd, buf, sizeof(buf), &type);
	assert_int_equal(type, LSR_FRAME_SEND);
	assert_int_equal(n, 32 + 8);
	assert_memory_equal(buf + LSR_FRAME_HDR_LEN, peer, 32);
	assert_memory_equal(buf + LSR_FRAME_HDR_LEN + 32, "\x01\0\0\0init", 8);

	/* Probes: a genuine one reaches the callback. Forged ones (as a relay, or whoever
	 * connects to it with the peer's key, could send) never do, whatever address they
	 * name, and are counted by reason: unsealed (the JSON of before), another key,
	 * tampered, replayed verbatim, an old one replayed behind newer ones, the peer's
	 * probe attributed to another peer, from a key that is no peer's, malformed. */
	{
		struct ls_rproxy_probe g = { .ts_ms = 42, .n_endpoints = 1 }, f = { .ts_ms = 43, .n_endpoints = 1 };
		const char *json = "{\"v\":1,\"ts\":42,\"endpoints\":[\"198.51.100.1:4444\"]}";
		uint8_t good[LS_DISCO_PROBE_MAX_LEN], bad[LS_DISCO_PROBE_MAX_LEN], wrong[LS_DISCO_KEY_LEN];
		uint64_t s0 = 1764000000000000ull;
		int gn, bn;
		json_t *rej;

		strcpy(g.endpoints[0], "192.0.2.1:51820");
		gn = ls_disco_probe_seal(&g, s0 + 100, peer, cfg.wg_pub, peer_key, good, sizeof(good));
		assert_true(gn > 0);
		srv_frame(sfd, LSR_FRAME_PROBE_RECV, peer, 32, good, (size_t)gn);
		pump(rp, 50);
		assert_int_equal(probes_seen, 1);
		assert_int_equal(last_probe.ts_ms, 42);
		assert_string_equal(last_probe.endpoints[0], "192.0.2.1:51820");

		srv_frame(sfd, LSR_FRAME_PROBE_RECV, peer, 32, json, strlen(json));          /* unsealed */
		strcpy(f.endpoints[0], "198.51.100.2:4444");
		randombytes_buf(wrong, sizeof(wrong));
		bn = ls_disco_probe_seal(&f, s0 + 101, peer, cfg.wg_pub, wrong, bad, sizeof(bad));
		srv_frame(sfd, LSR_FRAME_PROBE_RECV, peer, 32, bad, (size_t)bn);             /* another key */
		strcpy(f.endpoints[0], "198.51.100.3:4444");
		bn = ls_disco_probe_seal(&f, s0 + 102, peer, cfg.wg_pub, peer_key, bad, sizeof(bad));
		bad[40] ^= 1;
		srv_frame(sfd, LSR_FRAME_PROBE_RECV, peer, 32, bad, (size_t)bn);             /* tampered */
		srv_frame(sfd, LSR_FRAME_PROBE_RECV, peer, 32, good, (size_t)gn);            /* replayed */
		strcpy(f.endpoints[0], "198.51.100.4:4444");
		bn = ls_disco_probe_seal(&f, s0, peer, cfg.wg_pub, peer_key, bad, sizeof(bad));
		srv_frame(sfd, LSR_FRAME_PROBE_RECV, peer, 32, bad, (size_t)bn);             /* old */
		strcpy(f.endpoints[0], "198.51.100.5:4444");
		bn = ls_disco_probe_seal(&f, s0 + 103, peer, cfg.wg_pub, peer_key, bad, sizeof(bad));
		srv_frame(sfd, LSR_FRAME_PROBE_RECV, tp.peer[1], 32, bad, (size_t)bn);       /* misattributed */
		srv_frame(sfd, LSR_FRAME_PROBE_RECV, stranger, 32, bad, (size_t)bn);         /* no peer's */
		srv_frame(sfd, LSR_FRAME_PROBE_RECV, peer, 32, bad, LS_DISCO_PROBE_MIN_LEN - 1); /* malformed */
		/* A packet from a key we do not relay for is dropped and counted. */
		srv_frame(sfd, LSR_FRAME_RECV, stranger, 32, "\x04\0\0\0x", 5);
		pump(rp, 100);
		assert_int_equal(probes_seen, 1);
		assert_string_equal(last_probe.endpoints[0], "192.0.2.1:51820");
		rej = status_get(rp, "counters", "probes_rejected");
		assert_int_equal(json_integer_value(json_object_get(rej, "unsealed")), 1);
		assert_int_equal(json_integer_value(json_object_get(rej, "unauthenticated")), 3);
		assert_int_equal(json_integer_value(json_object_get(rej, "replayed")), 2);
		assert_int_equal(json_integer_value(json_object_get(rej, "unknown_peer")), 1);
		assert_int_equal(json_integer_value(json_object_get(rej, "malformed")), 1);
		assert_int_equal(json_integer_value(status_get(rp, "counters", "probes_bad")), 8);
		assert_int_equal(json_integer_value(status_get(rp, "counters", "probes_received")), 1);
		assert_int_equal(json_integer_value(status_get(rp, "counters", "unknown_peer")), 1);
		assert_int_equal(recv(wgfd, buf, sizeof(buf), MSG_DONTWAIT), -1); /* nothing delivered */
		/* A newer genuine one still counts. */
		bn = ls_disco_probe_seal(&g, s0 + 104, peer, cfg.wg_pub, peer_key, bad, sizeof(bad));
		srv_frame(sfd, LSR_FRAME_PROBE_RECV, peer, 32, bad, (size_t)bn);
		pump(rp, 50);
		assert_int_equal(probes_seen, 2);
	}
	/* Our probe goes out as a PROBE frame, sealed for the peer with our next seq. */
	{
		struct ls_rproxy_probe p = { .ts_ms = 7 };
		uint64_t seq;

		assert_int_equal(ls_rproxy_send_probe(rp, peer, &p), 0);
		n = srv_read(rp, sfd, buf, sizeof(buf), &type);
		assert_int_equal(type, LSR_FRAME_PROBE);
		assert_memory_equal(buf + LSR_FRAME_HDR_LEN, peer, 32);
		assert_int_equal(ls_disco_probe_open(buf + LSR_FRAME_HDR_LEN + 32, n - 32, cfg.wg_pub, peer, peer_key,
						     &seq, &p), 0);
		assert_int_equal(p.ts_ms, 7);
		assert_int_equal(seq, tp.dp[0].tx_seq);
		assert_true(seq > 1764000000000000ull); /* from the clock */
		/* none to a key that is no peer's */
		assert_int_equal(ls_rproxy_send_probe(rp, stranger, &p), -ENOKEY);
	}
	/* A frame whose length is wrong for its type: the connection is dropped, not trusted. */
	{
		uint8_t bad[LSR_FRAME_HDR_LEN + 4] = { 0 };

		ls_relay_frame_hdr((struct lsr_frame_hdr *)bad, LSR_FRAME_PING, 4);
		assert_int_equal(write(sfd, bad, sizeof(bad)), (ssize_t)sizeof(bad));
		pump(rp, 100);
		assert_string_not_equal(json_string_value(status_get(rp, "stream", "state")), "up");
		assert_int_equal(json_integer_value(json_object_get(
					 json_array_get(status_get(rp, "stream", "relays"), 0), "disconnects")), 1);
		assert_int_equal(ls_rproxy_peer_path(rp, peer), LS_RPROXY_PATH_NONE);
	}
	close(sfd);
	/* Reconnects after the backoff; a server that sends garbage first fails the handshake. */
	pump(rp, 1400);
	sfd = accept(lfd, NULL, NULL);
	assert_true(sfd >= 0);
	assert_int_equal(write(sfd, "HTTP/1.1 400 Bad Request\r\n\r\n", 28), 28);
	pump(rp, 100);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(status_get(rp, "stream", "relays"), 0),
							     "failures")), 2);
	close(sfd);
	status_get(rp, NULL, NULL);
	ls_rproxy_free(rp);
	close(lfd);
	close(wgfd);
}

/* ---- the module against a hand-driven UDP relay on loopback: registration (the
 * proof must verify), a stale answer ignored, hellos answered, data delivered,
 * garbage counted, REJECTED backs the relay off. */

static ssize_t udp_srv_recv(struct ls_rproxy *rp, int fd, uint8_t *buf, size_t size, struct sockaddr_in *from)
{
	uint64_t end = ls_now_ms() + 2000;

	while (ls_now_ms() < end) {
		socklen_t len = sizeof(*from);
		ssize_t n;

		pump(rp, 10);
		n = recvfrom(fd, buf, size, MSG_DONTWAIT, (struct sockaddr *)from, &len);
		if (n > 0)
			return n;
	}
	fail_msg("nothing from the module within 2 s");
	return -1;
}

static void udp_srv_registered(int fd, const struct sockaddr_in *to, const uint8_t key[32], uint64_t ts)
{
	struct lsr_udp_registered r;

	memset(&r, 0, sizeof(r));
	ls_relay_udp_hdr(&r.hdr, LSR_UDP_REGISTERED, key);
	r.ts_ms = htobe64(ts);
	r.lifetime_s = htobe32(90);
	ls_relay_addr_from_sockaddr(&r.observed, (const struct sockaddr *)to);
	assert_int_equal(sendto(fd, &r, sizeof(r), 0, (const struct sockaddr *)to, sizeof(*to)), (ssize_t)sizeof(r));
}

static void udp_srv_data(int fd, const struct sockaddr_in *to, const uint8_t key[32], const void *p, size_t n)
{
	uint8_t buf[LSR_UDP_HDR_LEN + 64];

	ls_relay_udp_hdr((struct lsr_udp_hdr *)buf, LSR_UDP_DATA, key);
	memcpy(buf + LSR_UDP_HDR_LEN, p, n);
	assert_int_equal(sendto(fd, buf, LSR_UDP_HDR_LEN + n, 0, (const struct sockaddr *)to, sizeof(*to)),
			 (ssize_t)(LSR_UDP_HDR_LEN + n));
}

static void test_module_udp(void **state)
{
	struct sockaddr_in lo = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in relay = lo, wg = lo, ep, cli, from;
	socklen_t len = sizeof(lo);
	struct ls_rproxy_config cfg = { 0 };
	char addr[32];
	const char *udps[1] = { addr };
	uint8_t peer[32], edpk[32], buf[2048];
	struct ls_relay_udp_msg m;
	struct ls_rproxy *rp;
	int rfd, wgfd;
	ssize_t n;
	uint64_t ts;

	(void)state;
	assert_int_equal(ls_crypto_init(), 0);
	rfd = socket(AF_INET, SOCK_DGRAM, 0);
	wgfd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_int_equal(bind(rfd, (struct sockaddr *)&relay, sizeof(relay)), 0);
	assert_int_equal(getsockname(rfd, (struct sockaddr *)&relay, &len), 0);
	len = sizeof(wg);
	assert_int_equal(bind(wgfd, (struct sockaddr *)&wg, sizeof(wg)), 0);
	assert_int_equal(getsockname(wgfd, (struct sockaddr *)&wg, &len), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(relay.sin_port));
	cfg.relays.udp = udps;
	cfg.relays.n_udp = 1;
	cfg.wg_port = ntohs(wg.sin_port);
	ls_wg_genkey(buf);
	ls_wg_pubkey(cfg.wg_pub, buf);
	ls_ed25519_keypair(edpk, cfg.ed_sk);
	memset(peer, 7, sizeof(peer));
	rp = ls_rproxy_new(&cfg);
	assert_non_null(rp);
	assert_int_equal(ls_rproxy_peer_add(rp, peer, &ep), 0);

	/* REGISTER with a proof that verifies. */
	n = udp_srv_recv(rp, rfd, buf, sizeof(buf), &cli);
	assert_int_equal(ls_relay_udp_parse(buf, (size_t)n, &m), 0);
	assert_int_equal(m.type, LSR_UDP_REGISTER);
	assert_memory_equal(m.key, cfg.wg_pub, 32);
	assert_int_equal(ls_relay_proof_verify(m.proof, LSR_PURPOSE_UDP, cfg.wg_pub, NULL), 0);
	ts = m.ts_ms;
	/* An answer to some other registration is ignored; garbage is counted. */
	udp_srv_registered(rfd, &cli, cfg.wg_pub, ts - 1);
	assert_int_equal(sendto(rfd, "LSRU garbage", 12, 0, (struct sockaddr *)&cli, sizeof(cli)), 12);
	buf[0] = 0x4c;
	assert_int_equal(sendto(rfd, buf, 1, 0, (struct sockaddr *)&cli, sizeof(cli)), 1);
	pump(rp, 100);
	assert_string_not_equal(json_string_value(status_get(rp, "udp", "state")), "up");
	assert_true(json_integer_value(status_get(rp, "counters", "bad_frames")) >= 2);
	/* The real answer (to the latest REGISTER: it may have resent). */
	for (;;) {
		socklen_t l = sizeof(from);

		n = recvfrom(rfd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &l);
		if (n <= 0)
			break;
		if (ls_relay_udp_parse(buf, (size_t)n, &m) == 0 && m.type == LSR_UDP_REGISTER)
			ts = m.ts_ms;
	}
	udp_srv_registered(rfd, &cli, cfg.wg_pub, ts);
	/* Registered: a hello request goes to the peer at once. */
	n = udp_srv_recv(rp, rfd, buf, sizeof(buf), &from);
	assert_string_equal(json_string_value(status_get(rp, "udp", "state")), "up");
	assert_int_equal(ls_relay_udp_parse(buf, (size_t)n, &m), 0);
	assert_int_equal(m.type, LSR_UDP_DATA);
	assert_memory_equal(m.key, peer, 32);
	assert_int_equal(m.payload_len, LS_RPROXY_HELLO_LEN);
	assert_memory_equal(m.payload, LS_RPROXY_HELLO_MAGIC, 4);
	assert_int_equal(m.payload[4], LS_RPROXY_HELLO_REQ);
	/* Not heard from the peer yet: nothing better, so the unconfirmed UDP relay. */
	assert_int_equal(ls_rproxy_peer_path(rp, peer), LS_RPROXY_PATH_UDP);
	assert_false(json_is_true(json_object_get(json_array_get(status_get(rp, "peers", NULL), 0),
						  "udp_confirmed")));

	/* The peer's hello request is answered with a reply and confirms it. */
	{
		uint8_t hello[LS_RPROXY_HELLO_LEN] = { 0 };

		memcpy(hello, LS_RPROXY_HELLO_MAGIC, 4);
		hello[4] = LS_RPROXY_HELLO_REQ;
		udp_srv_data(rfd, &cli, peer, hello, sizeof(hello));
		n = udp_srv_recv(rp, rfd, buf, sizeof(buf), &from);
		assert_int_equal(ls_relay_udp_parse(buf, (size_t)n, &m), 0);
		assert_int_equal(m.payload_len, LS_RPROXY_HELLO_LEN);
		assert_int_equal(m.payload[4], LS_RPROXY_HELLO_REPLY);
		assert_true(json_is_true(json_object_get(json_array_get(status_get(rp, "peers", NULL), 0),
							 "udp_confirmed")));
		assert_int_equal(recv(wgfd, buf, sizeof(buf), MSG_DONTWAIT), -1); /* hellos stay here */
	}
	/* Data from the peer reaches WireGuard from the peer's endpoint; data from WireGuard
	 * goes out as DATA naming the peer. Unknown keys and our 0xff junk are dropped. */
	udp_srv_data(rfd, &cli, peer, "\x04\0\0\0data", 8);
	{
		uint8_t other[32], junk[3] = { 0xff, 1, 2 };

		memset(other, 8, sizeof(other));
		udp_srv_data(rfd, &cli, other, "\x04\0\0\0nope", 8);
		udp_srv_data(rfd, &cli, peer, junk, sizeof(junk));
	}
	pump(rp, 100);
	len = sizeof(from);
	n = recvfrom(wgfd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &len);
	assert_int_equal(n, 8);
	assert_memory_equal(buf, "\x04\0\0\0data", 8);
	assert_int_equal(from.sin_port, ep.sin_port);
	assert_int_equal(from.sin_addr.s_addr, ep.sin_addr.s_addr);
	assert_int_equal(recv(wgfd, buf, sizeof(buf), MSG_DONTWAIT), -1);
	assert_int_equal(json_integer_value(status_get(rp, "counters", "unknown_peer")), 1);
	assert_int_equal(sendto(wgfd, "\x01\0\0\0init", 8, 0, (struct sockaddr *)&ep, sizeof(ep)), 8);
	for (;;) { /* skip hellos and late registration resends */
		n = udp_srv_recv(rp, rfd, buf, sizeof(buf), &from);
		assert_int_equal(ls_relay_udp_parse(buf, (size_t)n, &m), 0);
		if (m.type == LSR_UDP_DATA && memcmp(m.payload, LS_RPROXY_HELLO_MAGIC, 4))
			break;
	}
	assert_int_equal(m.type, LSR_UDP_DATA);
	assert_memory_equal(m.key, peer, 32);
	assert_int_equal(m.payload_len, 8);
	assert_memory_equal(m.payload, "\x01\0\0\0init", 8);
	assert_int_equal(ls_rproxy_peer_path(rp, peer), LS_RPROXY_PATH_UDP);

	/* The relay goes away (port closed): ICMP unreachable fails it at once. */
	close(rfd);
	assert_int_equal(sendto(wgfd, "\x04\0\0\0more", 8, 0, (struct sockaddr *)&ep, sizeof(ep)), 8);
	pump(rp, 200);
	assert_string_not_equal(json_string_value(status_get(rp, "udp", "state")), "up");
	assert_int_equal(ls_rproxy_peer_path(rp, peer), LS_RPROXY_PATH_NONE);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(status_get(rp, "udp", "relays"), 0),
							     "disconnects")), 1);
	status_get(rp, NULL, NULL);
	ls_rproxy_free(rp);
	close(wgfd);
}

/* ---- direct path discovery: raw UDP parse, the raw socket */

/* (the sealed ping/pong codec: test_userspace_disco.c) */

/* An IPv4 packet: 20-byte header, UDP header, payload. */
static size_t mk_ip4(uint8_t *p, const char *src, const char *dst, uint16_t sport, uint16_t dport,
		     const void *pl, size_t n)
{
	memset(p, 0, 28);
	p[0] = 0x45;
	p[2] = (uint8_t)((28 + n) >> 8);
	p[3] = (uint8_t)(28 + n);
	p[8] = 64;
	p[9] = 17;
	inet_pton(AF_INET, src, p + 12);
	inet_pton(AF_INET, dst, p + 16);
	p[20] = (uint8_t)(sport >> 8), p[21] = (uint8_t)sport;
	p[22] = (uint8_t)(dport >> 8), p[23] = (uint8_t)dport;
	p[24] = (uint8_t)((8 + n) >> 8), p[25] = (uint8_t)(8 + n);
	memcpy(p + 28, pl, n);
	return 28 + n;
}

static void test_raw_parse(void **state)
{
	uint8_t pkt[256];
	struct sockaddr_storage src, dst;
	const uint8_t *pl;
	size_t n, plen;
	char ep[LS_ENDPOINT_STRLEN];

	(void)state;
	n = mk_ip4(pkt, "198.51.100.7", "10.0.0.2", 41641, 51820, "hello", 5);
	assert_int_equal(ls_raw_udp_parse(AF_INET, pkt, n, 51820, &src, &dst, &pl, &plen), 0);
	ls_endpoint_format((struct sockaddr *)&src, ep);
	assert_string_equal(ep, "198.51.100.7:41641");
	assert_int_equal(dst.ss_family, AF_INET);
	inet_ntop(AF_INET, &((struct sockaddr_in *)&dst)->sin_addr, ep, sizeof(ep));
	assert_string_equal(ep, "10.0.0.2");
	assert_int_equal(plen, 5);
	assert_memory_equal(pl, "hello", 5);
	/* another port, a short packet, a UDP length past the end, a fragment, not UDP */
	assert_int_equal(ls_raw_udp_parse(AF_INET, pkt, n, 51821, &src, &dst, &pl, &plen), -EBADMSG);
	assert_int_equal(ls_raw_udp_parse(AF_INET, pkt, 27, 51820, &src, &dst, &pl, &plen), -EBADMSG);
	assert_int_equal(ls_raw_udp_parse(AF_INET, pkt, n - 1, 51820, &src, &dst, &pl, &plen), -EBADMSG);
	pkt[6] = 0x20; /* more fragments */
	assert_int_equal(ls_raw_udp_parse(AF_INET, pkt, n, 51820, &src, &dst, &pl, &plen), -EBADMSG);
	pkt[6] = 0;
	pkt[9] = 6;
	assert_int_equal(ls_raw_udp_parse(AF_INET, pkt, n, 51820, &src, &dst, &pl, &plen), -EBADMSG);
	pkt[9] = 17;
	pkt[0] = 0x44; /* header shorter than 20 */
	assert_int_equal(ls_raw_udp_parse(AF_INET, pkt, n, 51820, &src, &dst, &pl, &plen), -EBADMSG);
	/* IPv6 raw sockets hand over the UDP header first; the address comes from recvfrom */
	memset(&src, 0, sizeof(src));
	src.ss_family = AF_INET6;
	assert_int_equal(ls_raw_udp_parse(AF_INET6, pkt + 20, n - 20, 51820, &src, &dst, &pl, &plen), 0);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&src)->sin6_port), 41641);
	assert_int_equal(dst.ss_family, AF_UNSPEC);
	assert_int_equal(plen, 5);
	assert_int_equal(ls_raw_udp_parse(AF_INET6, pkt + 20, 7, 51820, &src, &dst, &pl, &plen), -EBADMSG);
}

static int udp_bound(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static ssize_t recv_wait(int fd, void *buf, size_t size, int ms, struct sockaddr_in *from)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	socklen_t len = sizeof(*from);

	if (poll(&p, 1, ms) != 1)
		return -1;
	return recvfrom(fd, buf, size, MSG_DONTWAIT, (struct sockaddr *)from, &len);
}

/* The raw socket on loopback: what it sends leaves from the WireGuard port; it hears
 * pings and STUN to that port and nothing else. */
static void test_raw_socket(void **state)
{
	uint16_t wg_port, peer_port;
	int wg = udp_bound(&wg_port), peer = udp_bound(&peer_port), raw;
	struct sockaddr_storage to = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&to, from, wga = { .sin_family = AF_INET };
	struct ls_disco_msg m = { .type = LS_DISCO_PONG, .txid = 7, .seq = 1 };
	uint8_t msg[LS_DISCO_LEN], buf[256], stun[20] = { 0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42 }, key[32] = { 1 };
	uint8_t v1[LS_DISCO_V1_LEN] = { 0xff, 'L', 'S', 'D', LS_DISCO_PONG }, odd[LS_DISCO_LEN - 1];
	const uint8_t wgmsg[32] = { 1 };
	ssize_t n;

	(void)state;
	raw = ls_raw_udp_open(AF_INET, wg_port, 0);
	if (raw == -EPERM || raw == -EACCES) {
		close(wg);
		close(peer);
		skip(); /* needs CAP_NET_RAW */
	}
	assert_true(raw >= 0);
	ls_disco_seal(&m, key, msg);
	memcpy(odd, msg, sizeof(odd));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin->sin_port = htons(peer_port);
	assert_int_equal(ls_raw_udp_send(raw, wg_port, &to, NULL, msg, sizeof(msg)), 0);
	n = recv_wait(peer, buf, sizeof(buf), 1000, &from);
	assert_int_equal(n, LS_DISCO_LEN);
	assert_memory_equal(buf, msg, LS_DISCO_LEN);
	assert_int_equal(ntohs(from.sin_port), wg_port); /* from WireGuard's port */
	/* to the WireGuard port: WireGuard's socket gets it, and the raw socket a copy */
	wga.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	wga.sin_port = htons(wg_port);
	while (recv(raw, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
		; /* our own datagram above crossed loopback too */
	assert_int_equal(sendto(peer, wgmsg, sizeof(wgmsg), 0, (struct sockaddr *)&wga, sizeof(wga)), (ssize_t)sizeof(wgmsg));
	assert_int_equal(sendto(peer, msg, sizeof(msg), 0, (struct sockaddr *)&wga, sizeof(wga)), (ssize_t)sizeof(msg));
	/* the magic with another length is not a ping */
	assert_int_equal(sendto(peer, odd, sizeof(odd), 0, (struct sockaddr *)&wga, sizeof(wga)), (ssize_t)sizeof(odd));
	assert_int_equal(sendto(peer, stun, sizeof(stun), 0, (struct sockaddr *)&wga, sizeof(wga)), (ssize_t)sizeof(stun));
	/* version 1 gets through (to be counted and refused) */
	assert_int_equal(sendto(peer, v1, sizeof(v1), 0, (struct sockaddr *)&wga, sizeof(wga)), (ssize_t)sizeof(v1));
	for (int k = 0; k < 3; k++) {
		struct sockaddr_storage src, dst;
		const uint8_t *pl;
		size_t plen;

		n = recv_wait(raw, buf, sizeof(buf), 1000, &from);
		assert_true(n > 0);
		assert_int_equal(ls_raw_udp_parse(AF_INET, buf, (size_t)n, wg_port, &src, &dst, &pl, &plen), 0);
		assert_int_equal(ntohs(((struct sockaddr_in *)&src)->sin_port), peer_port);
		/* the WireGuard message and the odd length were filtered out: the ping, STUN, v1 */
		if (k == 0) {
			assert_int_equal(plen, LS_DISCO_LEN);
			assert_memory_equal(pl, msg, LS_DISCO_LEN);
		} else if (k == 1) {
			assert_memory_equal(pl, stun, sizeof(stun));
		} else {
			assert_int_equal(plen, LS_DISCO_V1_LEN);
		}
	}
	assert_int_equal(recv_wait(raw, buf, sizeof(buf), 200, &from), -1);
	/* WireGuard's own socket got all five */
	for (int k = 0; k < 5; k++)
		assert_true(recv_wait(wg, buf, sizeof(buf), 1000, &from) > 0);
	close(raw);
	close(wg);
	close(peer);
}

static int udp6_bound(uint16_t *port)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin6_port);
	return fd;
}

/* The same over IPv6 (the kernel fills in the mandatory UDP checksum). */
static void test_raw_socket6(void **state)
{
	uint16_t wg_port, peer_port;
	int wg = udp6_bound(&wg_port), peer, raw;
	struct sockaddr_storage to = { 0 }, src, dst;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&to, from, wga;
	struct ls_disco_msg m = { .type = LS_DISCO_PING, .txid = 9, .seq = 1 };
	uint8_t msg[LS_DISCO_LEN], buf[256], key[32] = { 2 };
	socklen_t flen = sizeof(from);
	struct pollfd p;
	const uint8_t *pl;
	size_t plen;
	ssize_t n;

	(void)state;
	if (wg < 0)
		skip(); /* no IPv6 loopback */
	peer = udp6_bound(&peer_port);
	assert_true(peer >= 0);
	raw = ls_raw_udp_open(AF_INET6, wg_port, 0);
	if (raw == -EPERM || raw == -EACCES) {
		close(wg);
		close(peer);
		skip();
	}
	assert_true(raw >= 0);
	ls_disco_seal(&m, key, msg);
	s6->sin6_family = AF_INET6;
	s6->sin6_addr = in6addr_loopback;
	s6->sin6_port = htons(peer_port);
	assert_int_equal(ls_raw_udp_send(raw, wg_port, &to, NULL, msg, sizeof(msg)), 0);
	p = (struct pollfd){ .fd = peer, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 1000), 1);
	n = recvfrom(peer, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
	assert_int_equal(n, LS_DISCO_LEN); /* a bad checksum would have been dropped */
	assert_memory_equal(buf, msg, LS_DISCO_LEN);
	assert_int_equal(ntohs(from.sin6_port), wg_port);
	while (recv(raw, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
		;
	wga = (struct sockaddr_in6){ .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT,
				     .sin6_port = htons(wg_port) };
	assert_int_equal(sendto(peer, msg, sizeof(msg), 0, (struct sockaddr *)&wga, sizeof(wga)), (ssize_t)sizeof(msg));
	p = (struct pollfd){ .fd = raw, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 1000), 1);
	flen = sizeof(from);
	n = recvfrom(raw, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
	assert_true(n > 0);
	memcpy(&src, &from, sizeof(from));
	assert_int_equal(ls_raw_udp_parse(AF_INET6, buf, (size_t)n, wg_port, &src, &dst, &pl, &plen), 0);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&src)->sin6_port), peer_port);
	assert_int_equal(plen, LS_DISCO_LEN);
	close(raw);
	close(wg);
	close(peer);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_choose_path),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_pick_relay),
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_sockaddr_equal),
		cmocka_unit_test(test_probe_roundtrip),
		cmocka_unit_test(test_probe_encode_limits),
		cmocka_unit_test(test_probe_decode_bad),
		cmocka_unit_test(test_module_no_relays),
		cmocka_unit_test(test_module_shared_socket),
		cmocka_unit_test(test_module_many_peers),
		cmocka_unit_test(test_set_relays),
		cmocka_unit_test(test_module_stream),
		cmocka_unit_test(test_module_udp),
		cmocka_unit_test(test_raw_parse),
		cmocka_unit_test(test_raw_socket),
		cmocka_unit_test(test_raw_socket6),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
