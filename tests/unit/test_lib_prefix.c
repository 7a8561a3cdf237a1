// SPDX-License-Identifier: MIT
/* lib/prefix: CIDR and endpoint parsing, formatting, containment. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "prefix.h"
#include "util.h"

static void test_parse_format(void **state)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "192.168.1.0/24", "192.168.1.0/24" },
		{ "10.0.0.1", "10.0.0.1/32" },
		{ "0.0.0.0/0", "0.0.0.0/0" },
		{ "::/0", "::/0" },
		{ "fd00:1:2::/48", "fd00:1:2::/48" },
		{ "2001:db8::1", "2001:db8::1/128" },
		{ "100.64.0.0/10", "100.64.0.0/10" },
	};
	struct ls_prefix p;
	char buf[LS_PREFIX_STRLEN];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_int_equal(ls_prefix_parse(cases[i].in, &p, false), 0);
		ls_prefix_format(&p, buf);
		assert_string_equal(buf, cases[i].out);
	}
	assert_int_equal(ls_prefix_parse("10.1.2.3/8", &p, true), 0);
	ls_prefix_format(&p, buf);
	assert_string_equal(buf, "10.1.2.3/8");
	ls_prefix_format_addr(&p, buf);
	assert_string_equal(buf, "10.1.2.3");
}

static void test_parse_rejects(void **state)
{
	static const char *bad[] = {
		"", "/24", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/024", "10.0.0.1/8",
		"fd00::/129", "300.0.0.0/8", "10.0.0.0/8x", "host/24", "10.0.0.0 /8", "::1/12a",
	};
	struct ls_prefix p;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (ls_prefix_parse(bad[i], &p, false) != -EINVAL)
			fail_msg("accepted `%s'", bad[i]);
	}
	assert_int_equal(ls_prefix_parse(NULL, &p, false), -EINVAL);
}

static void test_contains(void **state)
{
	struct ls_prefix a, b, c, d, v6;

	assert_int_equal(ls_prefix_parse("192.168.0.0/16", &a, false), 0);
	assert_int_equal(ls_prefix_parse("192.168.1.0/24", &b, false), 0);
	assert_int_equal(ls_prefix_parse("192.169.0.0/24", &c, false), 0);
	assert_int_equal(ls_prefix_parse("0.0.0.0/0", &d, false), 0);
	assert_int_equal(ls_prefix_parse("::/0", &v6, false), 0);
	assert_true(ls_prefix_contains(&a, &b));
	assert_false(ls_prefix_contains(&b, &a));
	assert_false(ls_prefix_contains(&a, &c));
	assert_true(ls_prefix_contains(&d, &c));
	assert_false(ls_prefix_contains(&v6, &c));
	assert_true(ls_prefix_overlap(&b, &a));
	assert_false(ls_prefix_overlap(&b, &c));
	assert_true(ls_prefix_is_default(&d));
	assert_false(ls_prefix_is_default(&a));
	assert_true(ls_prefix_equal(&a, &a));
	assert_false(ls_prefix_equal(&a, &b));
	/* a /23 boundary: 192.168.2.0/23 does not contain 192.168.1.0/24 */
	assert_int_equal(ls_prefix_parse("192.168.2.0/23", &c, false), 0);
	assert_false(ls_prefix_contains(&c, &b));
}

static void test_endpoints(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char buf[LS_ENDPOINT_STRLEN];
	static const char *good[] = { "192.0.2.1:51820", "[2001:db8::1]:1", "[::ffff:1.2.3.4]:65535" };
	static const char *bad[] = { "192.0.2.1", "192.0.2.1:0", "192.0.2.1:65536", "2001:db8::1:80",
				     "[2001:db8::1]80", "[]:80", ":80", "192.0.2.1:8o", "[1.2.3.4]:80" };

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		assert_int_equal(ls_endpoint_parse(good[i], &ss, &len), 0);
		ls_endpoint_format((struct sockaddr *)&ss, buf);
		assert_string_equal(buf, good[i]);
	}
	assert_int_equal(ls_endpoint_parse("192.0.2.1:51820", &ss, &len), 0);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (ls_endpoint_parse(bad[i], &ss, &len) != -EINVAL)
			fail_msg("accepted `%s'", bad[i]);
	}
}

static void test_from_sockaddr(void **state)
{
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons(53) };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	struct sockaddr un = { .sa_family = AF_UNIX };
	struct ls_prefix p, keep = { .family = AF_INET, .len = 7 };
	char b[LS_PREFIX_STRLEN];

	(void)state;
	inet_pton(AF_INET, "192.0.2.7", &s4.sin_addr);
	inet_pton(AF_INET6, "2001:db8::9", &s6.sin6_addr);
	assert_int_equal(ls_prefix_from_sockaddr((struct sockaddr *)&s4, &p), 0);
	ls_prefix_format(&p, b);
	assert_string_equal(b, "192.0.2.7/32");
	assert_int_equal(ls_prefix_from_sockaddr((struct sockaddr *)&s6, &p), 0);
	ls_prefix_format(&p, b);
	assert_string_equal(b, "2001:db8::9/128");
	p = keep;
	assert_int_equal(ls_prefix_from_sockaddr(&un, &p), -EAFNOSUPPORT);
	assert_memory_equal(&p, &keep, sizeof(p));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_format),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_contains),
		cmocka_unit_test(test_endpoints),
		cmocka_unit_test(test_from_sockaddr),
	};

	return cmocka_run_group_tests_name("lib_prefix", tests, NULL, NULL);
}
