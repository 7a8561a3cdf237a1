// SPDX-License-Identifier: MIT
/* control/derive.c: deterministic overlay prefixes and node addresses. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "control/control.h"
#include "keys.h"

static const char *net_a = "cfb70c99-c326-4f39-8a16-9b54b3404b56";
static const char *net_b = "0b6f3f8e-2f1c-4d4b-9d55-6f1e7b0c9a11";

static void test_uuid_roundtrip(void **state)
{
	uint8_t id[16], back[16];
	char s[37];

	assert_int_equal(lsc_uuid_parse(net_a, id), 0);
	lsc_uuid_format(id, s);
	assert_string_equal(s, net_a);
	lsc_uuid_random(id);
	lsc_uuid_format(id, s);
	assert_int_equal(lsc_uuid_parse(s, back), 0);
	assert_memory_equal(id, back, 16);
	assert_int_equal(s[14], '4'); /* version 4 */
	assert_int_equal(lsc_uuid_parse("cfb70c99c3264f398a169b54b3404b56", id), -EINVAL);
	assert_int_equal(lsc_uuid_parse("cfb70c99-c326-4f39-8a16-9b54b3404bZZ", id), -EINVAL);
}

static void test_ipv4_deterministic_and_inside_cgnat(void **state)
{
	struct ls_prefix cgnat, p1, p2, p3;
	uint8_t id[16];
	char s[LS_PREFIX_STRLEN];

	assert_int_equal(ls_prefix_parse("100.64.0.0/10", &cgnat, false), 0);
	assert_int_equal(lsc_uuid_parse(net_a, id), 0);
	lsc_derive_ipv4(id, 0, &p1);
	lsc_derive_ipv4(id, 0, &p2);
	assert_true(ls_prefix_equal(&p1, &p2));
	assert_true(ls_prefix_contains(&cgnat, &p1));
	assert_int_equal(p1.len, LSC_IPV4_NET_LEN);
	/* the value for this id, pinned: a change of the derivation renumbers networks */
	ls_prefix_format(&p1, s);
	assert_string_equal(s, "100.93.0.0/18");
	/* a collision probes the next slot, still inside 100.64.0.0/10 */
	lsc_derive_ipv4(id, 1, &p3);
	assert_false(ls_prefix_overlap(&p1, &p3));
	assert_true(ls_prefix_contains(&cgnat, &p3));
	/* every attempt stays inside, and 256 attempts visit 256 distinct slots */
	for (unsigned a = 0; a < 256; a++) {
		struct ls_prefix q;

		lsc_derive_ipv4(id, a, &q);
		assert_true(ls_prefix_contains(&cgnat, &q));
		if (a) {
			lsc_derive_ipv4(id, a - 1, &p2);
			assert_false(ls_prefix_equal(&q, &p2));
		}
	}
	lsc_derive_ipv4(id, 256, &p3);
	assert_true(ls_prefix_equal(&p1, &p3));
}

static void test_ipv6_ula(void **state)
{
	struct ls_prefix fd, p1, p2, pb, pn;
	uint8_t a[16], b[16];
	char s[LS_PREFIX_STRLEN];

	assert_int_equal(ls_prefix_parse("fd00::/8", &fd, false), 0);
	assert_int_equal(lsc_uuid_parse(net_a, a), 0);
	assert_int_equal(lsc_uuid_parse(net_b, b), 0);
	lsc_derive_ipv6(a, 0, &p1);
	lsc_derive_ipv6(a, 0, &p2);
	lsc_derive_ipv6(b, 0, &pb);
	lsc_derive_ipv6(a, 1, &pn);
	assert_true(ls_prefix_equal(&p1, &p2));
	assert_int_equal(p1.len, 48);
	assert_true(ls_prefix_contains(&fd, &p1));
	assert_false(ls_prefix_equal(&p1, &pb));
	assert_false(ls_prefix_equal(&p1, &pn));
	ls_prefix_format(&p1, s);
	assert_string_equal(s, "fd1e:7c6c:8e3e::/48");
}

static void test_host_index_from_node_id(void **state)
{
	struct ls_prefix v4, v6, a;
	uint32_t h;
	char s[LS_PREFIX_STRLEN];

	assert_int_equal(ls_prefix_parse("100.93.0.0/18", &v4, false), 0);
	assert_int_equal(ls_prefix_parse("fd1e:7c6c:8e3e::/48", &v6, false), 0);
	assert_int_equal(lsc_derive_host(7, 0, &v4, &h), 0);
	assert_int_equal(h, 7);
	lsc_host_address(&v4, h, &a);
	ls_prefix_format_addr(&a, s);
	assert_string_equal(s, "100.93.0.7");
	lsc_host_address(&v6, h, &a);
	ls_prefix_format_addr(&a, s);
	assert_string_equal(s, "fd1e:7c6c:8e3e::7");
	/* collision: the next attempt gives the next index */
	assert_int_equal(lsc_derive_host(7, 1, &v4, &h), 0);
	assert_int_equal(h, 8);
	/* carry across bytes and wrap: never the network or broadcast address */
	assert_int_equal(lsc_derive_host(300, 0, &v4, &h), 0);
	lsc_host_address(&v4, h, &a);
	ls_prefix_format_addr(&a, s);
	assert_string_equal(s, "100.93.1.44");
	assert_int_equal(lsc_derive_host(16382, 0, &v4, &h), 0);
	assert_int_equal(h, 16382);
	assert_int_equal(lsc_derive_host(16383, 0, &v4, &h), 0);
	assert_int_equal(h, 1);
	/* a /31 or /32 has no host addresses */
	assert_int_equal(ls_prefix_parse("10.0.0.0/31", &v4, false), 0);
	assert_int_equal(lsc_derive_host(1, 0, &v4, &h), -ERANGE);
}

static void test_dns_labels(void **state)
{
	char out[64];

	lsc_dns_label("Laptop", out, 63);
	assert_string_equal(out, "laptop");
	lsc_dns_label("laptop.corp.example", out, 63);
	assert_string_equal(out, "laptop");
	lsc_dns_label("My  Mac_Book!", out, 63);
	assert_string_equal(out, "my-mac-book");
	lsc_dns_label("---", out, 63);
	assert_string_equal(out, "node");
	lsc_dns_label("abcdefghijabcdefghij", out, 10);
	assert_string_equal(out, "abcdefghij");
	assert_true(lsc_valid_network_name("home-2"));
	assert_false(lsc_valid_network_name("-home"));
	assert_false(lsc_valid_network_name("Home"));
	assert_true(lsc_valid_dns_suffix("home.ls.internal"));
	assert_false(lsc_valid_dns_suffix("home..internal"));
	assert_false(lsc_valid_dns_suffix("home.-x"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid_roundtrip),
		cmocka_unit_test(test_ipv4_deterministic_and_inside_cgnat),
		cmocka_unit_test(test_ipv6_ula),
		cmocka_unit_test(test_host_index_from_node_id),
		cmocka_unit_test(test_dns_labels),
	};
	ls_crypto_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
