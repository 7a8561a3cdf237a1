// SPDX-License-Identifier: MIT
/* relay/ internals on real sockets: the key table, settings and config files, the
 * allowed-keys authoriser, UDP registration rules (refresh, replay, address change,
 * one key per address, limits, expiry) and stream write-queue limits. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"
#include "prefix.h"
#include "relay/relay.h"
#include "relayclient.h"
#include "util.h"

static int setup(void **state)
{
	ls_log_level = LS_LOG_ERR;
	return ls_crypto_init();
}

struct item {
	struct lsr_hnode node;
	uint8_t key[LSR_KEY_LEN];
};

static void drop_odd(struct lsr_hnode *n, void *ctx)
{
	struct lsr_table *t = ctx;
	struct item *it = lsr_container_of(n, struct item, node);

	if (it->key[0] & 1)
		lsr_table_remove(t, n);
}

static void test_table(void **state)
{
	enum { N = 10000 };
	struct item *items = calloc(N, sizeof(*items));
	struct lsr_table t;
	uint8_t probe[LSR_KEY_LEN] = { 0 };

	assert_int_equal(lsr_table_init(&t, LSR_KEY_LEN), 0);
	for (int i = 0; i < N; i++) {
		memcpy(items[i].key, &i, sizeof(i));
		items[i].key[0] = (uint8_t)i;
		items[i].node.key = items[i].key;
		assert_int_equal(lsr_table_insert(&t, &items[i].node), 0);
	}
	assert_int_equal(t.count, N);
	assert_true(t.nbuckets >= N);
	for (int i = 0; i < N; i++)
		assert_ptr_equal(lsr_table_find(&t, items[i].key), &items[i].node);
	probe[31] = 1;
	assert_null(lsr_table_find(&t, probe));
	lsr_table_foreach(&t, drop_odd, &t);
	for (int i = 0; i < N; i++) {
		if (items[i].key[0] & 1)
			assert_null(lsr_table_find(&t, items[i].key));
		else
			assert_ptr_equal(lsr_table_find(&t, items[i].key), &items[i].node);
	}
	lsr_table_free(&t);
	free(items);
}

static void test_config(void **state)
{
	struct lsr_config c;
	char err[512], path[] = "/tmp/lsr-test-conf-XXXXXX";
	char ep[LS_ENDPOINT_STRLEN];
	FILE *f;
	int fd;

	lsr_config_defaults(&c);
	assert_int_equal(lsr_config_set(&c, "udp", "3478", err, sizeof(err)), 0);
	ls_endpoint_format((struct sockaddr *)&c.listen[0].sa, ep);
	assert_string_equal(ep, "[::]:3478");
	assert_int_equal(lsr_config_set(&c, "stream", "127.0.0.1:0", err, sizeof(err)), 0);
	assert_int_equal(c.listen[1].kind, LSR_LISTEN_STREAM);
	assert_int_equal(lsr_config_set(&c, "stun", "[::1]:3479", err, sizeof(err)), 0);
	assert_int_equal(c.listen[2].kind, LSR_LISTEN_STUN);
	assert_int_equal(lsr_config_set(&c, "queue-limit", "64K", err, sizeof(err)), 0);
	assert_int_equal(c.queue_limit, 65536);
	assert_int_equal(lsr_config_set(&c, "udp-lifetime", "2m", err, sizeof(err)), 0);
	assert_int_equal(c.udp_lifetime_s, 120);

	static const char *bad[][2] = {
		{ "udp", "127.0.0.1:65536" }, { "udp", "localhost:1" }, { "stream", "[::1]" },
		{ "stun", "1.2.3.4:x" },      { "udp-lifetime", "5s" }, { "queue-limit", "1" },
		{ "max-udp", "-1" },          { "keepalive", "soon" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char want[128];

		if (lsr_config_set(&c, bad[i][0], bad[i][1], err, sizeof(err)) != -EINVAL)
			fail_msg("accepted %s `%s'", bad[i][0], bad[i][1]);
		snprintf(want, sizeof(want), "`%s'", bad[i][1]);
		if (!strstr(err, want))
			fail_msg("error `%s' does not quote %s", err, want);
	}
	assert_int_equal(lsr_config_set(&c, "colour", "blue", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "`colour'"));

	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fprintf(f, "# relay\n\nudp = 127.0.0.1:3478   # both\ncontrol = none\n\nidle-timeout = soon\n");
	fclose(f);
	lsr_config_defaults(&c);
	assert_int_equal(lsr_config_load(&c, path, err, sizeof(err)), -EINVAL);
	/* The error names the line (6: blank lines count) and the value. */
	assert_non_null(strstr(err, ":6:"));
	assert_non_null(strstr(err, "`soon'"));
	assert_int_equal(c.n_listen, 1);
	assert_string_equal(c.control, "");
	unlink(path);
	assert_int_equal(lsr_config_load(&c, "/nonexistent/relay.conf", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "`/nonexistent/relay.conf'"));
}

static void test_allowed_keys(void **state)
{
	struct ls_relay_identity a, b, c;
	struct lsr_auth auth = { 0 };
	struct lsr_proof p;
	char path[] = "/tmp/lsr-test-keys-XXXXXX", ea[LS_KEY_B64_LEN + 1], eb[LS_KEY_B64_LEN + 1];
	char wa[LS_KEY_B64_LEN + 1], err[512];
	FILE *f;
	int fd;

	ls_relay_identity_random(&a);
	ls_relay_identity_random(&b);
	ls_relay_identity_random(&c);
	ls_key_to_base64(ea, a.ed_pk);
	ls_key_to_base64(eb, b.ed_pk);
	ls_key_to_base64(wa, a.wg_key);

	/* No authoriser: any valid signature. */
	ls_relay_proof_make(&p, LSR_PURPOSE_UDP, c.wg_key, 1, NULL, &c);
	assert_int_equal(lsr_auth_check(&auth, &p, LSR_PURPOSE_UDP, c.wg_key, NULL), LSR_REASON_NONE);

	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fprintf(f, "# machine keys\n%s %s\n%s   # any WireGuard key\n", ea, wa, eb);
	fclose(f);
	assert_int_equal(lsr_auth_load_allowed(&auth, path, err, sizeof(err)), 0);

	ls_relay_proof_make(&p, LSR_PURPOSE_UDP, a.wg_key, 1, NULL, &a);
	assert_int_equal(lsr_auth_check(&auth, &p, LSR_PURPOSE_UDP, a.wg_key, NULL), LSR_REASON_NONE);
	/* a's machine key is bound to a's WireGuard key only. */
	ls_relay_proof_make(&p, LSR_PURPOSE_UDP, c.wg_key, 1, NULL, &a);
	assert_int_equal(lsr_auth_check(&auth, &p, LSR_PURPOSE_UDP, c.wg_key, NULL), LSR_REASON_DENIED);
	ls_relay_proof_make(&p, LSR_PURPOSE_UDP, c.wg_key, 1, NULL, &b);
	assert_int_equal(lsr_auth_check(&auth, &p, LSR_PURPOSE_UDP, c.wg_key, NULL), LSR_REASON_NONE);
	ls_relay_proof_make(&p, LSR_PURPOSE_UDP, c.wg_key, 1, NULL, &c);
	assert_int_equal(lsr_auth_check(&auth, &p, LSR_PURPOSE_UDP, c.wg_key, NULL), LSR_REASON_DENIED);
	/* A bad signature is reported as such, before the list is asked. */
	p.sig[0] ^= 1;
	assert_int_equal(lsr_auth_check(&auth, &p, LSR_PURPOSE_UDP, c.wg_key, NULL),
			 LSR_REASON_BAD_SIGNATURE);

	/* A broken file is refused with its line, and the old list stays. */
	f = fopen(path, "w");
	fprintf(f, "%s\nnot-a-key\n", ea);
	fclose(f);
	assert_int_equal(lsr_auth_load_allowed(&auth, path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":2:"));
	assert_non_null(strstr(err, "`not-a-key'"));
	ls_relay_proof_make(&p, LSR_PURPOSE_UDP, c.wg_key, 1, NULL, &b);
	assert_int_equal(lsr_auth_check(&auth, &p, LSR_PURPOSE_UDP, c.wg_key, NULL), LSR_REASON_NONE);
	unlink(path);
	lsr_auth_clear(&auth);
}

/* A server with one real UDP socket (127.0.0.1) and no listeners of its own. */
struct fixture {
	struct lsr_server s;
	struct lsr_listener l;
};

static void fixture_init(struct fixture *fx, uint32_t max_udp)
{
	struct lsr_config cfg;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	lsr_config_defaults(&cfg);
	cfg.control[0] = '\0';
	cfg.max_udp = max_udp;
	cfg.queue_limit = 8192;
	assert_int_equal(lsr_server_init(&fx->s, &cfg), 0);
	memset(&fx->l, 0, sizeof(fx->l));
	fx->l.io.fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	fx->l.io.kind = LSR_LISTEN_UDP;
	assert_int_equal(bind(fx->l.io.fd, (struct sockaddr *)&a, sizeof(a)), 0);
}

static void fixture_free(struct fixture *fx)
{
	close(fx->l.io.fd);
	lsr_server_free(&fx->s);
}

/* A client socket on 127.0.0.1 and its address. */
static int client(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);

	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0);
	getsockname(fd, (struct sockaddr *)addr, &len);
	return fd;
}

/* Feeds a REGISTER "from" addr and returns the reply type (and reason). */
static int do_register(struct fixture *fx, int fd, const struct sockaddr_in *from,
		       const struct ls_relay_identity *id, uint64_t ts, uint32_t *reason)
{
	uint8_t reg[LSR_UDP_REGISTER_LEN], buf[256];
	struct ls_relay_udp_msg m;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	ls_relay_udp_build_register(reg, sizeof(reg), id, ts);
	lsr_udp_datagram(&fx->s, &fx->l, reg, sizeof(reg), (const struct sockaddr *)from, sizeof(*from), NULL);
	if (poll(&p, 1, 1000) <= 0)
		return -ETIMEDOUT;
	n = recv(fd, buf, sizeof(buf), 0);
	if (n <= 0 || ls_relay_udp_parse(buf, n, &m))
		return -EBADMSG;
	if (reason)
		*reason = m.reason;
	return m.type;
}

static void test_udp_registration_rules(void **state)
{
	struct fixture fx;
	struct ls_relay_identity a, b, c;
	struct sockaddr_in a1, a2, a3;
	int f1 = client(&a1), f2 = client(&a2), f3 = client(&a3);
	uint64_t now = ls_relay_now_unix_ms();
	uint32_t reason;
	struct lsr_udp_reg *r;

	fixture_init(&fx, 2);
	ls_relay_identity_random(&a);
	ls_relay_identity_random(&b);
	ls_relay_identity_random(&c);

	assert_int_equal(do_register(&fx, f1, &a1, &a, now, NULL), LSR_UDP_REGISTERED);
	/* The same datagram again from the same address (a retransmission): answered again. */
	assert_int_equal(do_register(&fx, f1, &a1, &a, now, NULL), LSR_UDP_REGISTERED);
	/* From another address: a replay. An older one: a replay too. */
	assert_int_equal(do_register(&fx, f2, &a2, &a, now, &reason), LSR_UDP_REJECTED);
	assert_int_equal(reason, LSR_REASON_REPLAY);
	assert_int_equal(do_register(&fx, f1, &a1, &a, now - 1, &reason), LSR_UDP_REJECTED);
	assert_int_equal(reason, LSR_REASON_REPLAY);
	/* A newer one from the other address moves the registration (NAT rebinding). */
	assert_int_equal(do_register(&fx, f2, &a2, &a, now + 1, NULL), LSR_UDP_REGISTERED);
	r = lsr_udp_find(&fx.s, a.wg_key);
	assert_non_null(r);
	assert_int_equal(((struct sockaddr_in *)&r->sa)->sin_port, a2.sin_port);
	assert_int_equal(fx.s.udp_by_addr.count, 1);
	/* Clock skew. */
	assert_int_equal(do_register(&fx, f1, &a1, &b, now - 3600 * 1000, &reason), LSR_UDP_REJECTED);
	assert_int_equal(reason, LSR_REASON_STALE);
	assert_int_equal(do_register(&fx, f1, &a1, &b, now + 3600 * 1000, &reason), LSR_UDP_REJECTED);
	assert_int_equal(reason, LSR_REASON_STALE);
	/* B takes a1; then C takes a2 from A (one key per address): A is gone. */
	assert_int_equal(do_register(&fx, f1, &a1, &b, now, NULL), LSR_UDP_REGISTERED);
	assert_int_equal(fx.s.udp_by_key.count, 2);
	assert_int_equal(do_register(&fx, f2, &a2, &c, now, NULL), LSR_UDP_REGISTERED);
	assert_null(lsr_udp_find(&fx.s, a.wg_key));
	assert_non_null(lsr_udp_find(&fx.s, c.wg_key));
	/* The table is full (max 2): a third key from a third address is refused. */
	assert_int_equal(do_register(&fx, f3, &a3, &a, now + 2, &reason), LSR_UDP_REJECTED);
	assert_int_equal(reason, LSR_REASON_FULL);
	assert_int_equal(fx.s.counters[LSR_C_UDP_REJECTED], 5);

	/* Expiry: nothing before the lifetime, everything after. */
	lsr_udp_expire(&fx.s, ls_now_ms() + 1000);
	assert_int_equal(fx.s.udp_by_key.count, 2);
	lsr_udp_expire(&fx.s, ls_now_ms() + (uint64_t)fx.s.cfg.udp_lifetime_s * 1000 + 1);
	assert_int_equal(fx.s.udp_by_key.count, 0);
	assert_int_equal(fx.s.udp_by_addr.count, 0);
	assert_int_equal(fx.s.counters[LSR_C_UDP_EXPIRED], 2);
	fixture_free(&fx);
	close(f1);
	close(f2);
	close(f3);
}

static void test_stream_queue_limit(void **state)
{
	struct fixture fx;
	struct lsr_conn *c;
	uint8_t key[LSR_KEY_LEN] = { 9 }, payload[1000];
	int sv[2], queued = 0, dropped = 0;

	fixture_init(&fx, 16);
	/* A connection whose peer never reads, with the smallest socket buffers. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	{
		int sz = 4096;

		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	c = lsr_conn_new(&fx.s, sv[0], NULL);
	assert_non_null(c);
	memset(payload, 0x5a, sizeof(payload));
	for (int i = 0; i < 500; i++) {
		int r = lsr_conn_queue_keyed(&fx.s, c, LSR_FRAME_RECV, key, payload, sizeof(payload));

		if (r == 0)
			queued++;
		else if (r == -ENOBUFS)
			dropped++;
	}
	/* The queue never grows past its limit; the rest is dropped and counted. */
	assert_true(c->wq_bytes <= fx.s.cfg.queue_limit);
	assert_true(dropped > 0);
	assert_int_equal(dropped + queued, 500);
	assert_int_equal(fx.s.counters[LSR_C_STREAM_QUEUE_DROPS], (uint64_t)dropped);
	assert_int_equal(c->drops, (uint64_t)dropped);
	/* A CLOSE still goes in, over the limit. */
	lsr_conn_close(&fx.s, c, LSR_REASON_SHUTDOWN);
	assert_int_equal(c->state, LSR_CONN_CLOSING);
	assert_true(c->wq_bytes > 0);
	/* The reader drains: the queue flushes, ending with CLOSE, and the connection ends. */
	{
		size_t cap = 8 << 20, got = 0, off = 0, consumed;
		uint8_t *buf = malloc(cap);
		struct ls_relay_frame f;
		int recv_frames = 0, hello = 0, closes = 0, last = -1;
		ssize_t n;

		for (int i = 0; i < 10000 && !c->dead; i++) {
			while ((n = read(sv[1], buf + got, cap - got)) > 0)
				got += n;
			lsr_stream_event(&fx.s, c, 4 /* EPOLLOUT */);
		}
		while ((n = read(sv[1], buf + got, cap - got)) > 0)
			got += n;
		assert_true(c->dead);
		while (off < got && ls_relay_frame_parse(buf + off, got - off, &f, &consumed) == 0) {
			recv_frames += f.type == LSR_FRAME_RECV;
			hello += f.type == LSR_FRAME_SERVER_HELLO;
			closes += f.type == LSR_FRAME_CLOSE && f.reason == LSR_REASON_SHUTDOWN;
			last = f.type;
			off += consumed;
		}
		assert_int_equal(off, got);
		assert_int_equal(hello, 1);
		assert_int_equal(recv_frames, queued);
		assert_int_equal(closes, 1);
		assert_int_equal(last, LSR_FRAME_CLOSE);
		free(buf);
	}
	lsr_stream_tick(&fx.s, ls_now_ms());
	assert_int_equal(fx.s.n_conns, 0);
	close(sv[1]);
	fixture_free(&fx);
}

/* A node proves its key on a socketpair connection; status then lists it. */
static void test_status_lists_peers(void **state)
{
	struct fixture fx;
	struct ls_relay_identity id;
	struct lsr_conn *c;
	uint8_t hello[LSR_FRAME_HDR_LEN + LSR_CLIENT_HELLO_LEN] = { 0 };
	struct lsr_client_hello *h = (void *)(hello + LSR_FRAME_HDR_LEN);
	char want[LS_KEY_B64_LEN + 1];
	json_t *st, *peer;
	int sv[2];

	fixture_init(&fx, 16);
	ls_relay_identity_random(&id);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	c = lsr_conn_new(&fx.s, sv[0], NULL);
	assert_non_null(c);
	st = lsr_server_status(&fx.s);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "stream"), "in_hello")), 1);
	assert_int_equal(json_array_size(json_object_get(st, "stream_peers")), 0);
	json_decref(st);

	ls_relay_frame_hdr((struct lsr_frame_hdr *)hello, LSR_FRAME_CLIENT_HELLO, LSR_CLIENT_HELLO_LEN);
	h->magic = htobe32(LSR_STREAM_MAGIC);
	h->version = LSR_VERSION;
	memcpy(h->key, id.wg_key, LSR_KEY_LEN);
	ls_relay_proof_make(&h->proof, LSR_PURPOSE_STREAM, id.wg_key, ls_relay_now_unix_ms(), c->nonce, &id);
	lsr_stream_input(&fx.s, c, hello, sizeof(hello));
	assert_int_equal(c->state, LSR_CONN_ACTIVE);

	st = lsr_server_status(&fx.s);
	peer = json_array_get(json_object_get(st, "stream_peers"), 0);
	ls_key_to_base64(want, id.wg_key);
	assert_non_null(peer);
	assert_string_equal(json_string_value(json_object_get(peer, "key")), want);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "stream"), "connections")), 1);
	json_decref(st);
	close(sv[1]);
	fixture_free(&fx);
}

static void test_ratelimit(void **state)
{
	struct lsr_ratelimit rl;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(1) };
	struct sockaddr_in b = a;
	struct sockaddr_in6 c = { .sin6_family = AF_INET6 }, c2;
	int n = 0;

	inet_pton(AF_INET, "192.0.2.1", &a.sin_addr);
	inet_pton(AF_INET, "192.0.2.2", &b.sin_addr);
	lsr_ratelimit_init(&rl, 5, 0);
	/* A burst of twice the rate, then one per 200 ms. */
	while (lsr_ratelimit_allow(&rl, (struct sockaddr *)&a, 1000) && n < 100)
		n++;
	assert_int_equal(n, 10);
	assert_false(lsr_ratelimit_allow(&rl, (struct sockaddr *)&a, 1100));
	assert_true(lsr_ratelimit_allow(&rl, (struct sockaddr *)&a, 1200));
	assert_false(lsr_ratelimit_allow(&rl, (struct sockaddr *)&a, 1200));
	/* Another port of the same address shares the bucket; another address has its own. */
	a.sin_port = htons(2);
	assert_false(lsr_ratelimit_allow(&rl, (struct sockaddr *)&a, 1200));
	assert_true(lsr_ratelimit_allow(&rl, (struct sockaddr *)&b, 1200));
	/* IPv6 by /64. */
	inet_pton(AF_INET6, "2001:db8:1:2::1", &c.sin6_addr);
	c2 = c;
	inet_pton(AF_INET6, "2001:db8:1:2::ffff", &c2.sin6_addr);
	for (n = 0; n < 10; n++)
		assert_true(lsr_ratelimit_allow(&rl, (struct sockaddr *)&c, 5000));
	assert_false(lsr_ratelimit_allow(&rl, (struct sockaddr *)&c2, 5000));

	/* The total: 3 per second across every address. */
	lsr_ratelimit_init(&rl, 0, 3);
	for (n = 0; n < 6; n++) {
		b.sin_addr.s_addr = htonl(0x0a000000 + n);
		assert_true(lsr_ratelimit_allow(&rl, (struct sockaddr *)&b, 1000));
	}
	b.sin_addr.s_addr = htonl(0x0a0000ff);
	assert_false(lsr_ratelimit_allow(&rl, (struct sockaddr *)&b, 1000));
	/* Unlimited. */
	lsr_ratelimit_init(&rl, 0, 0);
	for (n = 0; n < 1000; n++)
		assert_true(lsr_ratelimit_allow(&rl, (struct sockaddr *)&a, 1000));
}

/* A registration flood from one address: the excess is dropped unanswered. */
static void test_udp_rate_limited(void **state)
{
	struct fixture fx;
	struct ls_relay_identity id;
	struct sockaddr_in a1;
	int f1 = client(&a1), answered = 0;

	fixture_init(&fx, 16);
	lsr_ratelimit_init(&fx.s.proofs, 1, 0); /* burst of 2 */
	ls_relay_identity_random(&id);
	for (int i = 0; i < 4; i++) {
		uint8_t reg[LSR_UDP_REGISTER_LEN];

		ls_relay_udp_build_register(reg, sizeof(reg), &id, ls_relay_now_unix_ms() + i);
		lsr_udp_datagram(&fx.s, &fx.l, reg, sizeof(reg), (struct sockaddr *)&a1, sizeof(a1), NULL);
	}
	for (;;) {
		struct pollfd p = { .fd = f1, .events = POLLIN };
		uint8_t buf[256];

		if (poll(&p, 1, 300) <= 0 || recv(f1, buf, sizeof(buf), 0) <= 0)
			break;
		answered++;
	}
	assert_int_equal(answered, 2);
	assert_int_equal(fx.s.counters[LSR_C_UDP_RATE_LIMITED], 2);
	close(f1);
	fixture_free(&fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_allowed_keys),
		cmocka_unit_test(test_udp_registration_rules),
		cmocka_unit_test(test_stream_queue_limit),
		cmocka_unit_test(test_status_lists_peers),
		cmocka_unit_test(test_ratelimit),
		cmocka_unit_test(test_udp_rate_limited),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
