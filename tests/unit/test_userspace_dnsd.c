// SPDX-License-Identifier: MIT
/* Split DNS records: from a real netmap (parsed), translated through a mapping; the
 * resolv.conf reader; a query answered end to end through the lib/dns wire format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "userspace/dnsd.h"

static const char nm_json[] =
	"{\"version\": 3, \"full\": true, \"network\": {\"id\": \"n\", \"name\": \"home\", \"ipv4\": \"100.64.0.0/18\", "
	"\"ipv6\": \"fd00:1::/48\", \"dns_suffix\": \"home.ls.internal\"}, "
	"\"self\": {\"id\": 1, \"name\": \"me\", \"dns_name\": \"me.home.ls.internal\", \"addresses\": [\"100.64.0.1\"], "
	"\"wg_key\": \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\", \"status\": \"active\"}, "
	"\"peers\": [], "
	"\"dns\": {\"suffix\": \"home.ls.internal\", \"records\": ["
	"{\"name\": \"NAS.home.ls.internal.\", \"type\": \"A\", \"value\": \"192.168.1.20\"}, "
	"{\"name\": \"web.home.ls.internal\", \"type\": \"A\", \"value\": \"10.5.0.9\"}, "
	"{\"name\": \"v6.home.ls.internal\", \"type\": \"AAAA\", \"value\": \"fd00:a8:1::20\"}, "
	"{\"name\": \"me.home.ls.internal\", \"type\": \"A\", \"value\": \"100.64.0.1\"}, "
	"{\"name\": \"txt.home.ls.internal\", \"type\": \"TXT\", \"value\": \"hello\"}]}}";

static struct ls_prefix P(const char *s)
{
	struct ls_prefix p;

	assert_int_equal(ls_prefix_parse(s, &p, false), 0);
	return p;
}

static const struct ls_dns_record *find(const struct ls_dns_record *r, size_t n, const char *name, uint16_t type)
{
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(r[i].name, name) && r[i].type == type)
			return &r[i];
	}
	return NULL;
}

static void test_records_translated(void **st)
{
	struct ls_netmap *nm = NULL;
	struct ls_dns_record *r = NULL;
	struct ls_mnet_map xl[2] = { { P("10.200.7.0/24"), P("192.168.1.0/24") },
				     { P("fd4c:5300:1::/64"), P("fd00:a8:1::/64") } };
	const struct ls_dns_record *x;
	size_t n = 0;
	char err[256], b[64];

	(void)st;
	assert_int_equal(ls_netmap_parse(nm_json, strlen(nm_json), &nm, err, sizeof(err)), 0);
	assert_int_equal(ls_dnsd_records(nm, xl, 2, &r, &n), 0);
	/* me (node) + nas + web + v6; the duplicate of me and the TXT are left out */
	assert_int_equal(n, 4);
	x = find(r, n, "nas.home.ls.internal", LS_DNS_TYPE_A);
	assert_non_null(x);
	inet_ntop(AF_INET, x->addr, b, sizeof(b));
	assert_string_equal(b, "10.200.7.20"); /* behind the mapped route: virtual, host bits kept */
	x = find(r, n, "web.home.ls.internal", LS_DNS_TYPE_A);
	assert_non_null(x);
	inet_ntop(AF_INET, x->addr, b, sizeof(b));
	assert_string_equal(b, "10.5.0.9"); /* not mapped: as is */
	x = find(r, n, "v6.home.ls.internal", LS_DNS_TYPE_AAAA);
	assert_non_null(x);
	inet_ntop(AF_INET6, x->addr, b, sizeof(b));
	assert_string_equal(b, "fd4c:5300:1::20");
	assert_non_null(find(r, n, "me.home.ls.internal", LS_DNS_TYPE_A));
	ls_dnsd_records_free(r, n);
	/* untranslated without mappings */
	assert_int_equal(ls_dnsd_records(nm, NULL, 0, &r, &n), 0);
	x = find(r, n, "nas.home.ls.internal", LS_DNS_TYPE_A);
	inet_ntop(AF_INET, x->addr, b, sizeof(b));
	assert_string_equal(b, "192.168.1.20");
	ls_dnsd_records_free(r, n);
	ls_netmap_free(nm);
}

static void test_answer_wire(void **st)
{
	struct ls_netmap *nm = NULL;
	struct ls_dns_record *r = NULL;
	struct ls_dns_query q;
	uint8_t pkt[512], out[1024];
	size_t n = 0;
	char err[256];
	int len, alen;

	(void)st;
	assert_int_equal(ls_netmap_parse(nm_json, strlen(nm_json), &nm, err, sizeof(err)), 0);
	assert_int_equal(ls_dnsd_records(nm, NULL, 0, &r, &n), 0);
	len = ls_dns_build_query(0x1234, "nas.home.ls.internal", LS_DNS_TYPE_A, pkt, sizeof(pkt));
	assert_true(len > 0);
	assert_int_equal(ls_dns_parse_query(pkt, (size_t)len, &q), 0);
	alen = ls_dns_answer(pkt, &q, r, n, out, sizeof(out));
	assert_true(alen > len);
	assert_int_equal(out[3] & 0x0f, 0);          /* NOERROR */
	assert_int_equal((out[6] << 8) | out[7], 1); /* one answer */
	assert_memory_equal(out + alen - 4, "\xc0\xa8\x01\x14", 4);
	len = ls_dns_build_query(0x1235, "nosuch.home.ls.internal", LS_DNS_TYPE_A, pkt, sizeof(pkt));
	assert_int_equal(ls_dns_parse_query(pkt, (size_t)len, &q), 0);
	alen = ls_dns_answer(pkt, &q, r, n, out, sizeof(out));
	assert_int_equal(out[3] & 0x0f, LS_DNS_RCODE_NXDOMAIN);
	ls_dnsd_records_free(r, n);
	ls_netmap_free(nm);
}

static void test_resolv_conf(void **st)
{
	char **v = NULL;
	size_t n = 0;

	(void)st;
	assert_int_equal(ls_dnsd_parse_resolv_conf("# comment\nsearch example\nnameserver 10.0.0.2\n"
						   "nameserver 127.77.1.1 # lightscale home\n"
						   "nameserver fd00::53\nnameserver bogus\n  nameserver 1.1.1.1\n",
						   &v, &n),
			 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "10.0.0.2:53");
	assert_string_equal(v[1], "[fd00::53]:53");
	assert_string_equal(v[2], "1.1.1.1:53");
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void test_default_listen(void **st)
{
	struct ls_profile p = { .table = LS_MNET_TABLE_BASE + 3 };
	char b[32];

	(void)st;
	ls_dnsd_default_listen(&p, b, sizeof(b));
	assert_string_equal(b, "127.77.4.1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_records_translated),
		cmocka_unit_test(test_answer_wire),
		cmocka_unit_test(test_resolv_conf),
		cmocka_unit_test(test_default_listen),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
