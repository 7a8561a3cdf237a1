// SPDX-License-Identifier: MIT
/* lib/dns: query parsing, answers, NXDOMAIN, compression, malformed input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "dns.h"
#include "util.h"

/* A query for "Laptop.Home.LS" type A, id 0x1234, RD set, with an EDNS OPT record, as dig sends it. */
static const uint8_t query_a[] = {
	0x12, 0x34, 0x01, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
	6, 'L', 'a', 'p', 't', 'o', 'p', 4, 'H', 'o', 'm', 'e', 2, 'L', 'S', 0,
	0x00, 0x01, 0x00, 0x01,
	0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

static struct ls_dns_record records[3];

static int setup(void **state)
{
	records[0] = (struct ls_dns_record){ .name = "laptop.home.ls", .type = LS_DNS_TYPE_A, .ttl = 60 };
	inet_pton(AF_INET, "100.64.0.7", records[0].addr);
	records[1] = (struct ls_dns_record){ .name = "laptop.home.ls", .type = LS_DNS_TYPE_AAAA, .ttl = 60 };
	inet_pton(AF_INET6, "fd00::7", records[1].addr);
	records[2] = (struct ls_dns_record){ .name = "nas.home.ls", .type = LS_DNS_TYPE_A, .ttl = 60 };
	inet_pton(AF_INET, "100.64.0.9", records[2].addr);
	return 0;
}

static void test_parse(void **state)
{
	struct ls_dns_query q;

	assert_int_equal(ls_dns_parse_query(query_a, sizeof(query_a), &q), 0);
	assert_int_equal(q.id, 0x1234);
	assert_string_equal(q.name, "laptop.home.ls");
	assert_int_equal(q.qtype, LS_DNS_TYPE_A);
	assert_int_equal(q.qclass, LS_DNS_CLASS_IN);
	assert_int_equal(q.question_len, 12 + 16 + 4);
}

static void test_answer_a(void **state)
{
	struct ls_dns_query q;
	uint8_t out[512];
	int n;

	assert_int_equal(ls_dns_parse_query(query_a, sizeof(query_a), &q), 0);
	n = ls_dns_answer(query_a, &q, records, 3, out, sizeof(out));
	assert_int_equal(n, 32 + 16);
	assert_int_equal(out[0], 0x12);
	assert_int_equal(out[1], 0x34);
	assert_int_equal(out[2], 0x85); /* QR, AA, RD */
	assert_int_equal(out[3], 0x80); /* RA, NOERROR */
	assert_int_equal(out[7], 1);    /* ANCOUNT */
	assert_int_equal(out[11], 0);   /* the OPT record is not echoed */
	/* answer: pointer to offset 12, type A, class IN, ttl 60, rdlen 4, 100.64.0.7 */
	static const uint8_t want[] = { 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 100, 64, 0, 7 };
	assert_memory_equal(out + 32, want, sizeof(want));
}

static void test_answer_aaaa_any_nx(void **state)
{
	uint8_t pkt[512], out[512];
	struct ls_dns_query q;
	int n;

	n = ls_dns_build_query(7, "laptop.home.ls", LS_DNS_TYPE_AAAA, pkt, sizeof(pkt));
	assert_true(n > 0);
	assert_int_equal(ls_dns_parse_query(pkt, (size_t)n, &q), 0);
	n = ls_dns_answer(pkt, &q, records, 3, out, sizeof(out));
	assert_int_equal(out[7], 1);
	assert_int_equal(out[n - 16], 0xfd);

	n = ls_dns_build_query(8, "laptop.home.ls", LS_DNS_TYPE_ANY, pkt, sizeof(pkt));
	assert_int_equal(ls_dns_parse_query(pkt, (size_t)n, &q), 0);
	ls_dns_answer(pkt, &q, records, 3, out, sizeof(out));
	assert_int_equal(out[7], 2);

	/* nas has an A record but no AAAA: NOERROR with no answer */
	n = ls_dns_build_query(9, "nas.home.ls", LS_DNS_TYPE_AAAA, pkt, sizeof(pkt));
	assert_int_equal(ls_dns_parse_query(pkt, (size_t)n, &q), 0);
	ls_dns_answer(pkt, &q, records, 3, out, sizeof(out));
	assert_int_equal(out[3] & 0xf, LS_DNS_RCODE_OK);
	assert_int_equal(out[7], 0);

	n = ls_dns_build_query(10, "ghost.home.ls", LS_DNS_TYPE_A, pkt, sizeof(pkt));
	assert_int_equal(ls_dns_parse_query(pkt, (size_t)n, &q), 0);
	ls_dns_answer(pkt, &q, records, 3, out, sizeof(out));
	assert_int_equal(out[3] & 0xf, LS_DNS_RCODE_NXDOMAIN);
	assert_int_equal(out[7], 0);
}

static void test_name_under(void **state)
{
	assert_true(ls_dns_name_under("a.home.ls", "home.ls"));
	assert_true(ls_dns_name_under("home.ls", "home.ls"));
	assert_false(ls_dns_name_under("ahome.ls", "home.ls"));
	assert_false(ls_dns_name_under("ls", "home.ls"));
	assert_true(ls_dns_name_under("x.y", ""));
}

static void test_malformed(void **state)
{
	struct ls_dns_query q;
	uint8_t pkt[sizeof(query_a)];

	/* every truncation is refused */
	for (size_t len = 0; len < 12 + 16 + 4; len++)
		assert_int_equal(ls_dns_parse_query(query_a, len, &q), -EINVAL);
	/* a response is not a query */
	memcpy(pkt, query_a, sizeof(pkt));
	pkt[2] |= 0x80;
	assert_int_equal(ls_dns_parse_query(pkt, sizeof(pkt), &q), -EINVAL);
	/* two questions */
	memcpy(pkt, query_a, sizeof(pkt));
	pkt[5] = 2;
	assert_int_equal(ls_dns_parse_query(pkt, sizeof(pkt), &q), -EINVAL);
	/* a compression pointer to itself (loop) */
	{
		static const uint8_t loop[] = { 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1 };
		assert_int_equal(ls_dns_parse_query(loop, sizeof(loop), &q), -EINVAL);
	}
	/* a label running past the end */
	memcpy(pkt, query_a, sizeof(pkt));
	pkt[12] = 60;
	assert_int_equal(ls_dns_parse_query(pkt, 40, &q), -EINVAL);
	/* a name too long */
	{
		uint8_t big[600] = { 0, 1, 0, 0, 0, 1 };
		size_t off = 12;

		for (int i = 0; i < 5; i++) {
			big[off++] = 63;
			memset(big + off, 'a', 63);
			off += 63;
		}
		big[off++] = 0;
		off += 4;
		assert_int_equal(ls_dns_parse_query(big, off, &q), -EINVAL);
	}
	assert_int_equal(ls_dns_build_query(1, "bad..name", LS_DNS_TYPE_A, pkt, sizeof(pkt)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_answer_a),
		cmocka_unit_test(test_answer_aaaa_any_nx),
		cmocka_unit_test(test_name_under),
		cmocka_unit_test(test_malformed),
	};

	return cmocka_run_group_tests_name("lib_dns", tests, setup, NULL);
}
