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

#include "keys.h"
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

static void test_probe_roundtrip(void **state)
{
	struct ls_rproxy_probe p = { .ts_ms = 1764000000123ull, .reply = true, .n_endpoints = 2 }, q;
	char buf[LSR_MAX_PROBE + 1];
	int n;

	(void)state;
	strcpy(p.endpoints[0], "198.51.100.7:41641");
	strcpy(p.endpoints[1], "[2001:db8::7]:41641");
	n = ls_rproxy_probe_encode(&p, buf, sizeof(buf));
	assert_true(n > 0 && n <= LSR_MAX_PROBE);
	assert_int_equal((size_t)n, strlen(buf));
	assert_int_equal(ls_rproxy_probe_decode((const uint8_t *)buf, (size_t)n, &q), 0);
	assert_int_equal(q.ts_ms, p.ts_ms);
	assert_true(q.reply);
	assert_int_equal(q.n_endpoints, 2);
	assert_string_equal(q.endpoints[0], "198.51.100.7:41641");
	assert_string_equal(q.endpoints[1], "[2001:db8::7]:41641");

	/* No endpoints, not a reply: still a probe ("send me UDP now"). */
	memset(&p, 0, sizeof(p));
	p.ts_ms = 5;
	n = ls_rproxy_probe_encode(&p, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(ls_rproxy_probe_decode((const uint8_t *)buf, (size_t)n, &q), 0);
	assert_false(q.reply);
	assert_int_equal(q.n_endpoints, 0);
	assert_int_equal(q.ts_ms, 5);
}

static void test_probe_encode_limits(void **state)
{
	struct ls_rproxy_probe p = { .ts_ms = 1 };
	char buf[LSR_MAX_PROBE + 1], small[16];

	(void)state;
	p.n_endpoints = 1;
	strcpy(p.endpoints[0], "relay.example:80");
	assert_int_equal(ls_rproxy_probe_encode(&p, buf, sizeof(buf)), -EINVAL);
	strcpy(p.endpoints[0], "10.0.0.1:80");
	assert_int_equal(ls_rproxy_probe_encode(&p, small, sizeof(small)), -EMSGSIZE);
	p.n_endpoints = LS_RPROXY_PROBE_MAX_ENDPOINTS + 1;
	assert_int_equal(ls_rproxy_probe_encode(&p, buf, sizeof(buf)), -EINVAL);
	/* Eight long IPv6 endpoints do not fit in LSR_MAX_PROBE bytes. */
	p.n_endpoints = LS_RPROXY_PROBE_MAX_ENDPOINTS;
	for (size_t i = 0; i < p.n_endpoints; i++)
		snprintf(p.endpoints[i], LS_RPROXY_ENDPOINT_LEN, "[2001:db8:1111:2222:3333:4444:5555:%zu]:65535", i);
	assert_int_equal(ls_rproxy_probe_encode(&p, buf, sizeof(buf)), -EMSGSIZE);
	/* Eight IPv4 ones do. */
	for (size_t i = 0; i < p.n_endpoints; i++)
		snprintf(p.endpoints[i], LS_RPROXY_ENDPOINT_LEN, "192.0.2.%zu:41641", i);
	assert_true(ls_rproxy_probe_encode(&p, buf, sizeof(buf)) > 0);
}

static void test_probe_decode_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"not json",
		"[]",
		"{}",
		"{\"v\":2,\"ts\":1,\"endpoints\":[]}",
		"{\"v\":1,\"endpoints\":[]}",
		"{\"v\":1,\"ts\":-1,\"endpoints\":[]}",
		"{\"v\":1,\"ts\":\"1\",\"endpoints\":[]}",
		"{\"v\":1,\"ts\":1}",
		"{\"v\":1,\"ts\":1,\"endpoints\":\"10.0.0.1:1\"}",
		"{\"v\":1,\"ts\":1,\"endpoints\":[1]}",
		"{\"v\":1,\"ts\":1,\"endpoints\":[\"host:1\"]}",
		"{\"v\":1,\"ts\":1,\"endpoints\":[\"10.0.0.1\"]}",
		"{\"v\":1,\"ts\":1,\"reply\":1,\"endpoints\":[]}",
		"{\"v\":1,\"ts\":1,\"ts\":2,\"endpoints\":[]}",
		"{\"v\":1,\"ts\":1,\"endpoints\":[\"1.1.1.1:1\",\"1.1.1.1:2\",\"1.1.1.1:3\",\"1.1.1.1:4\","
		"\"1.1.1.1:5\",\"1.1.1.1:6\",\"1.1.1.1:7\",\"1.1.1.1:8\",\"1.1.1.1:9\"]}",
		"{\"v\":1,\"ts\":1,\"endpoints\":[]",
	};
	struct ls_rproxy_probe q;
	char big[LSR_MAX_PROBE * 2];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(&q, 0x55, sizeof(q));
		if (ls_rproxy_probe_decode((const uint8_t *)bad[i], strlen(bad[i]), &q) != -EBADMSG)
			fail_msg("accepted `%s'", bad[i]);
		assert_int_equal(q.n_endpoints, 0); /* cleared on failure */
	}
	/* Longer than a probe may be, even if valid JSON. */
	snprintf(big, sizeof(big), "{\"v\":1,\"ts\":1,\"endpoints\":[],\"x\":\"%0*d\"}", LSR_MAX_PROBE, 0);
	assert_int_equal(ls_rproxy_probe_decode((const uint8_t *)big, strlen(big), &q), -EBADMSG);
	/* Embedded NUL. */
	assert_int_equal(ls_rproxy_probe_decode((const uint8_t *)"{\"v\":1\0}", 9, &q), -EBADMSG);
	assert_int_equal(ls_rproxy_probe_decode(NULL, 0, &q), -EBADMSG);
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
	assert_int_equal(ntohl(ep.sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_not_equal(ep.sin_port, 0);
	assert_int_equal(ls_rproxy_peer_add(rp, k1, &ep2), 0);
	assert_int_equal(ep2.sin_port, ep.sin_port); /* the same peer, the same socket */
	assert_int_equal(ls_rproxy_peer_add(rp, k2, &ep2), 0);
	assert_int_not_equal(ep2.sin_port, ep.sin_port);
	assert_int_equal(ls_rproxy_peer_path(rp, k1), LS_RPROXY_PATH_NONE);
	assert_int_equal(ls_rproxy_send_probe(rp, k1, &p), -ENOTCONN);

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
		snprintf(want_ep, sizeof(want_ep), "127.0.0.1:%u", ntohs(ep.sin_port));
		assert_string_equal(json_string_value(json_object_get(p1, "endpoint")), want_ep);
	}
	assert_string_equal(json_string_value(json_object_get(json_object_get(st, "stream"), "state")), "idle");
	json_decref(st);

	assert_int_equal(ls_rproxy_peer_remove(rp, k1), 0);
	assert_int_equal(ls_rproxy_peer_remove(rp, k1), -ENOENT);
	/* Its socket is gone. */
	assert_true(sendto(wgfd, "x", 1, 0, (struct sockaddr *)&ep, sizeof(ep)) == 1);
	ls_rproxy_handle(rp);
	st = ls_rproxy_status(rp);
	assert_int_equal(json_array_size(json_object_get(st, "peers")), 1);
	json_decref(st);
	ls_rproxy_free(rp);
	close(wgfd);
	close(other);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_choose_path),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_pick_relay),
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_probe_roundtrip),
		cmocka_unit_test(test_probe_encode_limits),
		cmocka_unit_test(test_probe_decode_bad),
		cmocka_unit_test(test_module_no_relays),
		cmocka_unit_test(test_set_relays),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
