// SPDX-License-Identifier: MIT
/* lib/stun: RFC 5769 test vectors, request/response round trips, malformed input,
 * and ls_stun_query against a responder on loopback. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keys.h"
#include "prefix.h"
#include "stun.h"
#include "util.h"

/* RFC 5769 section 2.1: sample request (SOFTWARE, PRIORITY, ICE-CONTROLLED,
 * USERNAME, MESSAGE-INTEGRITY, FINGERPRINT). */
static const uint8_t rfc5769_request[] = {
	0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
	0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e,
	0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24,
	0x00, 0x04, 0x6e, 0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1,
	0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68,
	0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c,
	0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5,
	0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
};

/* RFC 5769 section 2.2: sample IPv4 response, 192.0.2.1:32853. */
static const uint8_t rfc5769_v4[] = {
	0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
	0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74,
	0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01,
	0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99,
	0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b,
	0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
};

/* RFC 5769 section 2.3: sample IPv6 response, [2001:db8:1234:5678:11:2233:4455:6677]:32853. */
static const uint8_t rfc5769_v6[] = {
	0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
	0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74,
	0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02,
	0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5,
	0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6,
	0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41,
	0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
};

static const uint8_t rfc5769_txid[LS_STUN_TXID_LEN] = {
	0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
};

static int setup(void **state)
{
	return ls_crypto_init();
}

static void endpoint_str(const struct sockaddr_storage *ss, char out[LS_ENDPOINT_STRLEN])
{
	ls_endpoint_format((const struct sockaddr *)ss, out);
}

static void test_crc32(void **state)
{
	assert_int_equal(ls_stun_crc32("123456789", 9), 0xCBF43926);
	assert_int_equal(ls_stun_crc32("", 0), 0);
}

static void test_rfc5769_request(void **state)
{
	uint8_t txid[LS_STUN_TXID_LEN];

	assert_true(ls_stun_is_stun(rfc5769_request, sizeof(rfc5769_request)));
	assert_int_equal(ls_stun_parse_request(rfc5769_request, sizeof(rfc5769_request), txid), 0);
	assert_memory_equal(txid, rfc5769_txid, sizeof(txid));
}

static void test_rfc5769_responses(void **state)
{
	struct sockaddr_storage ss;
	char buf[LS_ENDPOINT_STRLEN];

	assert_int_equal(ls_stun_parse_response(rfc5769_v4, sizeof(rfc5769_v4), rfc5769_txid, &ss), 0);
	endpoint_str(&ss, buf);
	assert_string_equal(buf, "192.0.2.1:32853");

	assert_int_equal(ls_stun_parse_response(rfc5769_v6, sizeof(rfc5769_v6), rfc5769_txid, &ss), 0);
	endpoint_str(&ss, buf);
	assert_string_equal(buf, "[2001:db8:1234:5678:11:2233:4455:6677]:32853");

	/* NULL txid: any transaction. */
	assert_int_equal(ls_stun_parse_response(rfc5769_v4, sizeof(rfc5769_v4), NULL, &ss), 0);
}

static void test_rfc5769_our_encoding(void **state)
{
	/* Our server's XOR-MAPPED-ADDRESS for the vectors' addresses has the vectors' bytes. */
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(32853) };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(32853) };
	uint8_t out[128];
	int n;

	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	n = ls_stun_build_response(out, sizeof(out), rfc5769_txid, (struct sockaddr *)&sin);
	assert_int_equal(n, 20 + 12 + 8);
	assert_memory_equal(out + 20, rfc5769_v4 + 36, 12);
	assert_memory_equal(out + 4, rfc5769_v4 + 4, 16);

	inet_pton(AF_INET6, "2001:db8:1234:5678:11:2233:4455:6677", &sin6.sin6_addr);
	n = ls_stun_build_response(out, sizeof(out), rfc5769_txid, (struct sockaddr *)&sin6);
	assert_int_equal(n, 20 + 24 + 8);
	assert_memory_equal(out + 20, rfc5769_v6 + 36, 24);
}

static void test_bad_fingerprint_and_txid(void **state)
{
	uint8_t m[sizeof(rfc5769_v4)], other[LS_STUN_TXID_LEN] = { 1 };
	struct sockaddr_storage ss;

	memcpy(m, rfc5769_v4, sizeof(m));
	m[sizeof(m) - 1] ^= 1;
	assert_int_equal(ls_stun_parse_response(m, sizeof(m), NULL, &ss), -EBADMSG);
	/* A flipped byte in the covered part breaks the fingerprint too. */
	memcpy(m, rfc5769_v4, sizeof(m));
	m[25] ^= 0x20;
	assert_int_equal(ls_stun_parse_response(m, sizeof(m), NULL, &ss), -EBADMSG);
	assert_int_equal(ls_stun_parse_response(rfc5769_v4, sizeof(rfc5769_v4), other, &ss), -ESRCH);
}

static void test_truncated(void **state)
{
	static const struct { const uint8_t *m; size_t len; } v[] = {
		{ rfc5769_request, sizeof(rfc5769_request) },
		{ rfc5769_v4, sizeof(rfc5769_v4) },
		{ rfc5769_v6, sizeof(rfc5769_v6) },
	};
	struct sockaddr_storage ss;
	uint8_t txid[LS_STUN_TXID_LEN];

	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		for (size_t n = 0; n < v[i].len; n++) {
			/* A heap copy of exactly n bytes, so ASan sees any over-read. */
			uint8_t *m = malloc(n ? n : 1);

			memcpy(m, v[i].m, n);
			assert_false(ls_stun_is_stun(m, n));
			assert_int_equal(ls_stun_parse_response(m, n, NULL, &ss), -EBADMSG);
			assert_int_equal(ls_stun_parse_request(m, n, txid), -EBADMSG);
			free(m);
		}
	}
}

static void test_oversized(void **state)
{
	uint8_t m[sizeof(rfc5769_v4) + 8];
	struct sockaddr_storage ss;

	/* Trailing bytes beyond the header's length. */
	memset(m, 0, sizeof(m));
	memcpy(m, rfc5769_v4, sizeof(rfc5769_v4));
	assert_int_equal(ls_stun_parse_response(m, sizeof(rfc5769_v4) + 4, NULL, &ss), -EBADMSG);
	/* The length covers an attribute after FINGERPRINT: FINGERPRINT must be last. */
	m[3] += 8;
	m[sizeof(rfc5769_v4) + 1] = 0x22; /* 0x0022, length 4 */
	m[sizeof(rfc5769_v4) + 3] = 4;
	assert_int_equal(ls_stun_parse_response(m, sizeof(m), NULL, &ss), -EBADMSG);
	/* Larger than any UDP datagram the codec should ever see: still just rejected. */
	{
		size_t big = 70000;
		uint8_t *b = calloc(1, big);

		memcpy(b, rfc5769_v4, sizeof(rfc5769_v4));
		assert_false(ls_stun_is_stun(b, big));
		assert_int_equal(ls_stun_parse_response(b, big, NULL, &ss), -EBADMSG);
		free(b);
	}
}

/* A message built from a header and attribute bytes, with the length fixed up. */
static size_t mk(uint8_t *out, uint16_t type, const uint8_t *attrs, size_t alen)
{
	out[0] = type >> 8;
	out[1] = type & 0xff;
	out[2] = alen >> 8;
	out[3] = alen & 0xff;
	memcpy(out + 4, rfc5769_v4 + 4, 16);
	memcpy(out + 20, attrs, alen);
	return 20 + alen;
}

static void test_malformed(void **state)
{
	/* XOR-MAPPED-ADDRESS family 3; v4 with a v6 length; attribute running past the end;
	 * unpadded final attribute. */
	static const uint8_t fam3[] = { 0x00, 0x20, 0x00, 0x08, 0x00, 0x03, 0xa1, 0x47,
					0xe1, 0x12, 0xa6, 0x43 };
	static const uint8_t v4len20[] = { 0x00, 0x20, 0x00, 0x14, 0x00, 0x01, 0xa1, 0x47,
					   0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	static const uint8_t past_end[] = { 0x00, 0x20, 0x00, 0x40, 0x00, 0x01, 0xa1, 0x47 };
	static const uint8_t unpadded[] = { 0x80, 0x22, 0x00, 0x05, 'a', 'b', 'c', 'd' };
	static const uint8_t short_addr[] = { 0x00, 0x20, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00 };
	static const uint8_t *bad[] = { fam3, v4len20, past_end, unpadded, short_addr };
	static const size_t bad_len[] = { sizeof(fam3), sizeof(v4len20), sizeof(past_end),
					  sizeof(unpadded), sizeof(short_addr) };
	uint8_t m[128];
	struct sockaddr_storage ss;
	size_t n;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		n = mk(m, LS_STUN_BINDING_SUCCESS, bad[i], bad_len[i]);
		if (ls_stun_parse_response(m, n, NULL, &ss) != -EBADMSG)
			fail_msg("case %zu accepted", i);
	}
	/* Top bits set, wrong cookie, length not a multiple of 4. */
	n = mk(m, LS_STUN_BINDING_SUCCESS, fam3, 8);
	m[0] |= 0x40;
	assert_false(ls_stun_is_stun(m, n));
	n = mk(m, LS_STUN_BINDING_SUCCESS, fam3, 8);
	m[4] ^= 0xff;
	assert_false(ls_stun_is_stun(m, n));
	n = mk(m, LS_STUN_BINDING_SUCCESS, unpadded, 6);
	assert_false(ls_stun_is_stun(m, n));
	/* A WireGuard handshake initiation and a relay datagram are not STUN. */
	memset(m, 0, sizeof(m));
	m[0] = 1;
	assert_false(ls_stun_is_stun(m, 148));
	m[0] = 0x4C;
	assert_false(ls_stun_is_stun(m, 40));
	assert_false(ls_stun_is_stun(NULL, 20));
}

static void test_fallbacks_and_errors(void **state)
{
	/* MAPPED-ADDRESS 203.0.113.9:45678 only; then with an XOR-MAPPED-ADDRESS too. */
	static const uint8_t plain[] = { 0x00, 0x01, 0x00, 0x08, 0x00, 0x01, 0xb2, 0x6e,
					 203, 0, 113, 9 };
	uint8_t attrs[64], m[128];
	struct sockaddr_storage ss;
	char buf[LS_ENDPOINT_STRLEN];
	size_t n;

	n = mk(m, LS_STUN_BINDING_SUCCESS, plain, sizeof(plain));
	assert_int_equal(ls_stun_parse_response(m, n, NULL, &ss), 0);
	endpoint_str(&ss, buf);
	assert_string_equal(buf, "203.0.113.9:45678");

	memcpy(attrs, plain, sizeof(plain));
	memcpy(attrs + sizeof(plain), rfc5769_v4 + 36, 12);
	n = mk(m, LS_STUN_BINDING_SUCCESS, attrs, sizeof(plain) + 12);
	assert_int_equal(ls_stun_parse_response(m, n, NULL, &ss), 0);
	endpoint_str(&ss, buf);
	assert_string_equal(buf, "192.0.2.1:32853");

	/* No address at all; an error response; a request where a response is expected. */
	n = mk(m, LS_STUN_BINDING_SUCCESS, attrs, 0);
	assert_int_equal(ls_stun_parse_response(m, n, NULL, &ss), -ENOENT);
	n = mk(m, LS_STUN_BINDING_ERROR, attrs, 0);
	assert_int_equal(ls_stun_parse_response(m, n, NULL, &ss), -EPROTO);
	n = mk(m, LS_STUN_BINDING_REQUEST, attrs, 0);
	assert_int_equal(ls_stun_parse_response(m, n, NULL, &ss), -EPROTO);

	/* The server side: an indication and another method are not Binding requests. */
	n = mk(m, LS_STUN_BINDING_INDICATION, attrs, 0);
	assert_int_equal(ls_stun_parse_request(m, n, attrs), -EOPNOTSUPP);
	n = mk(m, 0x0003 /* Allocate */, attrs, 0);
	assert_int_equal(ls_stun_parse_request(m, n, attrs), -EOPNOTSUPP);
}

static void test_roundtrip(void **state)
{
	static const char *addrs[] = { "198.51.100.7:1", "[2001:db8::1]:65535", "10.0.0.1:51820" };
	uint8_t req[64], resp[128], t1[LS_STUN_TXID_LEN], t2[LS_STUN_TXID_LEN], got[LS_STUN_TXID_LEN];
	struct sockaddr_storage src, out;
	socklen_t slen;
	char buf[LS_ENDPOINT_STRLEN];
	int n;

	n = ls_stun_build_request(req, sizeof(req), t1);
	assert_int_equal(n, 28);
	assert_true(ls_stun_is_stun(req, n));
	assert_int_equal(ls_stun_parse_request(req, n, got), 0);
	assert_memory_equal(got, t1, sizeof(t1));
	assert_int_equal(ls_stun_build_request(req, sizeof(req), t2), 28);
	assert_memory_not_equal(t1, t2, sizeof(t1));
	assert_int_equal(ls_stun_build_request(req, 27, t2), -ENOSPC);

	for (size_t i = 0; i < ARRAY_SIZE(addrs); i++) {
		assert_int_equal(ls_endpoint_parse(addrs[i], &src, &slen), 0);
		n = ls_stun_build_response(resp, sizeof(resp), t1, (struct sockaddr *)&src);
		assert_true(n > 0);
		assert_int_equal(ls_stun_parse_response(resp, n, t1, &out), 0);
		endpoint_str(&out, buf);
		assert_string_equal(buf, addrs[i]);
		assert_int_equal(ls_stun_build_response(resp, n - 1, t1, (struct sockaddr *)&src),
				 -ENOSPC);
	}

	/* An IPv4-mapped IPv6 source (dual-stack server socket) is answered as IPv4. */
	{
		struct sockaddr_in6 m6 = { .sin6_family = AF_INET6, .sin6_port = htons(4242) };

		inet_pton(AF_INET6, "::ffff:192.0.2.99", &m6.sin6_addr);
		n = ls_stun_build_response(resp, sizeof(resp), t1, (struct sockaddr *)&m6);
		assert_int_equal(ls_stun_parse_response(resp, n, t1, &out), 0);
		endpoint_str(&out, buf);
		assert_string_equal(buf, "192.0.2.99:4242");
	}
}

/* A responder on loopback: first a reply with the wrong transaction, then a
 * garbage datagram, then the real answer. The query must skip the first two. */
static void test_query(void **state)
{
	int srv = socket(AF_INET, SOCK_DGRAM, 0), cli = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in me;
	socklen_t alen = sizeof(a), mlen = sizeof(me);
	struct sockaddr_storage mapped;
	char buf[LS_ENDPOINT_STRLEN], want[LS_ENDPOINT_STRLEN];
	pid_t pid;
	int status;

	assert_true(srv >= 0 && cli >= 0);
	assert_int_equal(bind(srv, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(srv, (struct sockaddr *)&a, &alen), 0);
	me = a;
	me.sin_port = 0;
	assert_int_equal(bind(cli, (struct sockaddr *)&me, sizeof(me)), 0);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint8_t in[1500], out[128], txid[LS_STUN_TXID_LEN], bogus[LS_STUN_TXID_LEN] = { 9 };
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(srv, in, sizeof(in), 0, (struct sockaddr *)&from, &flen);
		int m;

		if (n < 0 || ls_stun_parse_request(in, n, txid) != 0)
			_exit(1);
		m = ls_stun_build_response(out, sizeof(out), bogus, (struct sockaddr *)&from);
		sendto(srv, out, m, 0, (struct sockaddr *)&from, flen);
		sendto(srv, "junk", 4, 0, (struct sockaddr *)&from, flen);
		m = ls_stun_build_response(out, sizeof(out), txid, (struct sockaddr *)&from);
		sendto(srv, out, m, 0, (struct sockaddr *)&from, flen);
		_exit(0);
	}
	assert_int_equal(ls_stun_query(cli, (struct sockaddr *)&a, alen, 2000, &mapped), 0);
	assert_int_equal(getsockname(cli, (struct sockaddr *)&me, &mlen), 0);
	endpoint_str(&mapped, buf);
	ls_endpoint_format((struct sockaddr *)&me, want);
	assert_string_equal(buf, want);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* Nobody answers: a timeout, on time. */
	{
		uint64_t t0 = ls_now_ms();

		assert_int_equal(ls_stun_query(cli, (struct sockaddr *)&a, alen, 300, &mapped),
				 -ETIMEDOUT);
		assert_true(ls_now_ms() - t0 < 1000);
	}
	close(srv);
	close(cli);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32),
		cmocka_unit_test(test_rfc5769_request),
		cmocka_unit_test(test_rfc5769_responses),
		cmocka_unit_test(test_rfc5769_our_encoding),
		cmocka_unit_test(test_bad_fingerprint_and_txid),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_fallbacks_and_errors),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_query),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
