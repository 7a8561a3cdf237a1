// SPDX-License-Identifier: MIT
/* include/lightscale/wire.h and lib/relayclient codecs: sizes, length checks for
 * every type, UDP datagram and stream frame parsing, key proofs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keys.h"
#include "lightscale/wire.h"
#include "prefix.h"
#include "relayclient.h"
#include "stun.h"
#include "util.h"

static int setup(void **state)
{
	return ls_crypto_init();
}

static void test_frame_len_table(void **state)
{
	static const struct {
		uint8_t type;
		uint32_t min, max;
	} t[] = {
		{ LSR_FRAME_SERVER_HELLO, 40, 40 },
		{ LSR_FRAME_CLIENT_HELLO, 144, 144 },
		{ LSR_FRAME_SERVER_ACCEPT, 28, 28 },
		{ LSR_FRAME_SEND, 33, 32 + 65535 },
		{ LSR_FRAME_RECV, 33, 32 + 65535 },
		{ LSR_FRAME_PROBE, 32, 32 + 256 },
		{ LSR_FRAME_PROBE_RECV, 32, 32 + 256 },
		{ LSR_FRAME_PEER_GONE, 36, 36 },
		{ LSR_FRAME_PING, 8, 8 },
		{ LSR_FRAME_PONG, 8, 8 },
		{ LSR_FRAME_CLOSE, 4, 4 + 128 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		assert_true(lsr_frame_len_ok(t[i].type, t[i].min));
		assert_true(lsr_frame_len_ok(t[i].type, t[i].max));
		assert_false(lsr_frame_len_ok(t[i].type, t[i].min - 1));
		assert_false(lsr_frame_len_ok(t[i].type, t[i].max + 1));
		assert_false(lsr_frame_len_ok(t[i].type, 0xffffffffu));
	}
	assert_false(lsr_frame_len_ok(0, 0));
	assert_false(lsr_frame_len_ok(LSR_FRAME_TYPE_MAX, 8));
	assert_false(lsr_frame_len_ok(255, 8));

	assert_true(lsr_udp_len_ok(LSR_UDP_REGISTER, 144));
	assert_false(lsr_udp_len_ok(LSR_UDP_REGISTER, 145));
	assert_true(lsr_udp_len_ok(LSR_UDP_REGISTERED, 76));
	assert_true(lsr_udp_len_ok(LSR_UDP_REJECTED, 52));
	assert_false(lsr_udp_len_ok(LSR_UDP_DATA, 40));
	assert_true(lsr_udp_len_ok(LSR_UDP_DATA, 41));
	assert_true(lsr_udp_len_ok(LSR_UDP_DATA, 40 + 65535));
	assert_false(lsr_udp_len_ok(LSR_UDP_DATA, 40 + 65536));
	assert_false(lsr_udp_len_ok(0, 41));
}

static void test_demux(void **state)
{
	/* The first bytes of relay, WireGuard and STUN traffic never collide. */
	uint8_t relay[LSR_UDP_HDR_LEN + 1] = { 0 }, wg[148] = { 1 }, stun[64];
	uint8_t txid[LS_STUN_TXID_LEN], key[LSR_KEY_LEN] = { 7 };
	int n = ls_stun_build_request(stun, sizeof(stun), txid);

	ls_relay_udp_hdr((struct lsr_udp_hdr *)relay, LSR_UDP_DATA, key);
	assert_int_equal(relay[0], 0x4C);
	assert_true(ls_relay_udp_is_relay(relay, sizeof(relay)));
	assert_false(ls_stun_is_stun(relay, sizeof(relay)));
	assert_false(ls_relay_udp_is_relay(wg, sizeof(wg)));
	assert_false(ls_stun_is_stun(wg, sizeof(wg)));
	assert_true(ls_stun_is_stun(stun, n));
	assert_false(ls_relay_udp_is_relay(stun, n));
}

static void test_udp_parse(void **state)
{
	struct ls_relay_identity id;
	struct ls_relay_udp_msg m;
	uint8_t buf[256];
	int n;

	ls_relay_identity_random(&id);
	n = ls_relay_udp_build_register(buf, sizeof(buf), &id, 1234567);
	assert_int_equal(n, LSR_UDP_REGISTER_LEN);
	assert_int_equal(ls_relay_udp_build_register(buf, n - 1, &id, 1), -ENOSPC);
	n = ls_relay_udp_build_register(buf, sizeof(buf), &id, 1234567);
	assert_int_equal(ls_relay_udp_parse(buf, n, &m), 0);
	assert_int_equal(m.type, LSR_UDP_REGISTER);
	assert_memory_equal(m.key, id.wg_key, LSR_KEY_LEN);
	assert_int_equal(m.ts_ms, 1234567);
	assert_int_equal(ls_relay_proof_verify(m.proof, LSR_PURPOSE_UDP, m.key, NULL), 0);

	/* Every truncation, one extra byte, a reserved bit, another version or magic. */
	for (int len = 0; len < n; len++)
		assert_int_equal(ls_relay_udp_parse(buf, len, &m), -EBADMSG);
	assert_int_equal(ls_relay_udp_parse(buf, n + 1, &m), -EBADMSG);
	buf[7] = 1;
	assert_int_equal(ls_relay_udp_parse(buf, n, &m), -EBADMSG);
	buf[7] = 0;
	buf[4] = LSR_VERSION + 1;
	assert_int_equal(ls_relay_udp_parse(buf, n, &m), -EBADMSG);
	buf[4] = LSR_VERSION;
	buf[0] ^= 1;
	assert_int_equal(ls_relay_udp_parse(buf, n, &m), -EBADMSG);
	buf[0] ^= 1;
	buf[5] = 99; /* unknown type */
	assert_int_equal(ls_relay_udp_parse(buf, n, &m), -EBADMSG);

	/* REGISTERED carries the observed address; a bad family is refused. */
	{
		struct lsr_udp_registered r;
		struct sockaddr_storage ss;
		socklen_t sl;
		char ep[LS_ENDPOINT_STRLEN];

		ls_relay_udp_hdr(&r.hdr, LSR_UDP_REGISTERED, id.wg_key);
		r.ts_ms = htobe64(99);
		r.lifetime_s = htobe32(90);
		r.reserved = 0;
		ls_endpoint_parse("[2001:db8::7]:51820", &ss, &sl);
		ls_relay_addr_from_sockaddr(&r.observed, (struct sockaddr *)&ss);
		assert_int_equal(ls_relay_udp_parse((uint8_t *)&r, sizeof(r), &m), 0);
		assert_int_equal(m.lifetime_s, 90);
		assert_int_equal(m.ts_ms, 99);
		ls_endpoint_format((struct sockaddr *)&m.observed, ep);
		assert_string_equal(ep, "[2001:db8::7]:51820");
		r.observed.family = 5;
		assert_int_equal(ls_relay_udp_parse((uint8_t *)&r, sizeof(r), &m), -EBADMSG);
	}
	/* DATA: payload bounds. */
	{
		uint8_t d[LSR_UDP_HDR_LEN + 3];

		ls_relay_udp_hdr((struct lsr_udp_hdr *)d, LSR_UDP_DATA, id.wg_key);
		memcpy(d + LSR_UDP_HDR_LEN, "abc", 3);
		assert_int_equal(ls_relay_udp_parse(d, sizeof(d), &m), 0);
		assert_int_equal(m.payload_len, 3);
		assert_memory_equal(m.payload, "abc", 3);
		assert_int_equal(ls_relay_udp_parse(d, LSR_UDP_HDR_LEN, &m), -EBADMSG);
	}
}

static void test_addr_mapping(void **state)
{
	struct sockaddr_in6 m6 = { .sin6_family = AF_INET6, .sin6_port = htons(7) };
	struct sockaddr_storage ss;
	struct lsr_addr a;
	char ep[LS_ENDPOINT_STRLEN];

	inet_pton(AF_INET6, "::ffff:198.51.100.4", &m6.sin6_addr);
	ls_relay_addr_from_sockaddr(&a, (struct sockaddr *)&m6);
	assert_int_equal(a.family, 4);
	assert_int_equal(ls_relay_addr_to_sockaddr(&a, &ss, NULL), 0);
	ls_endpoint_format((struct sockaddr *)&ss, ep);
	assert_string_equal(ep, "198.51.100.4:7");
}

static size_t frame(uint8_t *out, uint8_t type, const void *body, uint32_t len)
{
	ls_relay_frame_hdr((struct lsr_frame_hdr *)out, type, len);
	memcpy(out + LSR_FRAME_HDR_LEN, body, len);
	return LSR_FRAME_HDR_LEN + len;
}

static void test_frame_parse(void **state)
{
	uint8_t buf[512], body[300];
	struct ls_relay_frame f;
	size_t n, consumed;

	memset(body, 0xab, sizeof(body));
	n = frame(buf, LSR_FRAME_SEND, body, 40);
	for (size_t len = 0; len < n; len++)
		assert_int_equal(ls_relay_frame_parse(buf, len, &f, &consumed), -EAGAIN);
	assert_int_equal(ls_relay_frame_parse(buf, n, &f, &consumed), 0);
	assert_int_equal(consumed, n);
	assert_int_equal(f.type, LSR_FRAME_SEND);
	assert_int_equal(f.payload_len, 8);
	assert_memory_equal(f.key, body, LSR_KEY_LEN);

	/* Two frames back to back: the first is parsed, the rest left. */
	n += frame(buf + n, LSR_FRAME_PING, body, 8);
	assert_int_equal(ls_relay_frame_parse(buf, n, &f, &consumed), 0);
	assert_int_equal(ls_relay_frame_parse(buf + consumed, n - consumed, &f, &consumed), 0);
	assert_int_equal(f.type, LSR_FRAME_PING);

	/* Wrong lengths are refused from the header alone, before the body is in. */
	n = frame(buf, LSR_FRAME_PING, body, 9);
	assert_int_equal(ls_relay_frame_parse(buf, LSR_FRAME_HDR_LEN, &f, &consumed), -EBADMSG);
	ls_relay_frame_hdr((struct lsr_frame_hdr *)buf, LSR_FRAME_SEND, 0x7fffffff);
	assert_int_equal(ls_relay_frame_parse(buf, LSR_FRAME_HDR_LEN, &f, &consumed), -EBADMSG);
	ls_relay_frame_hdr((struct lsr_frame_hdr *)buf, LSR_FRAME_PROBE, 32 + 257);
	assert_int_equal(ls_relay_frame_parse(buf, LSR_FRAME_HDR_LEN, &f, &consumed), -EBADMSG);
	/* Unknown type, reserved bytes. */
	n = frame(buf, 77, body, 8);
	assert_int_equal(ls_relay_frame_parse(buf, n, &f, &consumed), -EBADMSG);
	n = frame(buf, LSR_FRAME_PING, body, 8);
	buf[2] = 1;
	assert_int_equal(ls_relay_frame_parse(buf, n, &f, &consumed), -EBADMSG);
	/* Hellos with a bad magic or version. */
	{
		struct lsr_server_hello h = { .magic = htobe32(LSR_STREAM_MAGIC), .version = LSR_VERSION };

		n = frame(buf, LSR_FRAME_SERVER_HELLO, &h, sizeof(h));
		assert_int_equal(ls_relay_frame_parse(buf, n, &f, &consumed), 0);
		h.version = 2;
		n = frame(buf, LSR_FRAME_SERVER_HELLO, &h, sizeof(h));
		assert_int_equal(ls_relay_frame_parse(buf, n, &f, &consumed), -EBADMSG);
		h.version = LSR_VERSION;
		h.magic = htobe32(LSR_UDP_MAGIC);
		n = frame(buf, LSR_FRAME_SERVER_HELLO, &h, sizeof(h));
		assert_int_equal(ls_relay_frame_parse(buf, n, &f, &consumed), -EBADMSG);
	}
	/* CLOSE: reason and text. */
	{
		uint8_t c[4 + 5] = { 0, 0, 0, LSR_REASON_REPLACED, 'h', 'e', 'l', 'l', 'o' };

		n = frame(buf, LSR_FRAME_CLOSE, c, sizeof(c));
		assert_int_equal(ls_relay_frame_parse(buf, n, &f, &consumed), 0);
		assert_int_equal(f.reason, LSR_REASON_REPLACED);
		assert_int_equal(f.payload_len, 5);
		assert_string_equal(ls_relay_reason_str(f.reason), "replaced by a newer connection");
		assert_string_equal(ls_relay_reason_str(9999), "unknown reason");
	}
}

static void test_proofs(void **state)
{
	struct ls_relay_identity id, other;
	struct lsr_proof p;
	uint8_t nonce[LSR_NONCE_LEN], nonce2[LSR_NONCE_LEN];

	ls_relay_identity_random(&id);
	ls_relay_identity_random(&other);
	memset(nonce, 1, sizeof(nonce));
	memset(nonce2, 2, sizeof(nonce2));

	ls_relay_proof_make(&p, LSR_PURPOSE_STREAM, id.wg_key, 42, nonce, &id);
	assert_int_equal(ls_relay_proof_verify(&p, LSR_PURPOSE_STREAM, id.wg_key, nonce), 0);
	/* Another purpose, another key, another nonce, another time: all refused. */
	assert_int_equal(ls_relay_proof_verify(&p, LSR_PURPOSE_UDP, id.wg_key, nonce), -EPERM);
	assert_int_equal(ls_relay_proof_verify(&p, LSR_PURPOSE_STREAM, other.wg_key, nonce), -EPERM);
	assert_int_equal(ls_relay_proof_verify(&p, LSR_PURPOSE_STREAM, id.wg_key, nonce2), -EPERM);
	assert_int_equal(ls_relay_proof_verify(&p, LSR_PURPOSE_STREAM, id.wg_key, NULL), -EPERM);
	p.ts_ms = htobe64(43);
	assert_int_equal(ls_relay_proof_verify(&p, LSR_PURPOSE_STREAM, id.wg_key, nonce), -EPERM);
	/* A proof naming another machine key than the one that signed. */
	ls_relay_proof_make(&p, LSR_PURPOSE_UDP, id.wg_key, 42, NULL, &id);
	memcpy(p.ed_pk, other.ed_pk, LSR_ED_PK_LEN);
	assert_int_equal(ls_relay_proof_verify(&p, LSR_PURPOSE_UDP, id.wg_key, NULL), -EPERM);
}

/* A frame the socket takes only in part is finished later, never torn: the reader
 * sees whole frames only, in order, whatever the timeouts. */
static void test_stream_partial_writes(void **state)
{
	struct ls_relay_stream *rs;
	uint8_t key[LSR_KEY_LEN] = { 3 }, payload[3000];
	int sv[2], sent = 0, r, sz = 4096, partials = 0;
	uint8_t *in = malloc(1 << 20);
	size_t have = 0, off = 0, consumed;
	struct ls_relay_frame f;
	ssize_t n;

	/* TCP on loopback with small buffers: writes get cut anywhere. */
	{
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t alen = sizeof(a);
		int l = socket(AF_INET, SOCK_STREAM, 0);

		assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
		assert_int_equal(listen(l, 1), 0);
		getsockname(l, (struct sockaddr *)&a, &alen);
		sv[0] = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		assert_int_equal(connect(sv[0], (struct sockaddr *)&a, sizeof(a)), 0);
		sv[1] = accept(l, NULL, NULL);
		close(l);
	}
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	assert_int_equal(ls_relay_stream_adopt(&rs, sv[0]), 0);
	/* Send without waiting until the socket refuses a whole new frame. */
	for (;;) {
		memset(payload, sent, sizeof(payload));
		r = ls_relay_stream_send(rs, key, payload, sizeof(payload), 0);
		if (r == -EAGAIN)
			break;
		assert_int_equal(r, 0);
		sent++;
		partials += ls_relay_stream_want_write(rs);
		assert_true(sent < 1000);
	}
	assert_true(sent > 0);
	print_message("# %d frames sent without waiting, %d of them cut by the socket\n", sent, partials);
	/* Drain, flushing, until every committed frame is out. */
	for (int i = 0; i < 1000; i++) {
		while ((n = recv(sv[1], in + have, (1 << 20) - have, MSG_DONTWAIT)) > 0)
			have += n;
		if (ls_relay_stream_flush(rs, 10) == 0 && !ls_relay_stream_want_write(rs))
			break;
	}
	while ((n = recv(sv[1], in + have, (1 << 20) - have, MSG_DONTWAIT)) > 0)
		have += n;
	assert_false(ls_relay_stream_want_write(rs));
	for (int i = 0; i < sent; i++) {
		assert_int_equal(ls_relay_frame_parse(in + off, have - off, &f, &consumed), 0);
		assert_int_equal(f.type, LSR_FRAME_SEND);
		assert_int_equal(f.payload_len, sizeof(payload));
		assert_int_equal(f.payload[0], (uint8_t)i);
		assert_int_equal(f.payload[sizeof(payload) - 1], (uint8_t)i);
		off += consumed;
	}
	assert_int_equal(off, have);
	ls_relay_stream_free(rs);
	close(sv[1]);
	free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_len_table),
		cmocka_unit_test(test_demux),
		cmocka_unit_test(test_udp_parse),
		cmocka_unit_test(test_addr_mapping),
		cmocka_unit_test(test_frame_parse),
		cmocka_unit_test(test_proofs),
		cmocka_unit_test(test_stream_partial_writes),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
