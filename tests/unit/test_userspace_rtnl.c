// SPDX-License-Identifier: MIT
/* userspace/rtnl.c against the kernel, in a private network namespace: addresses, routes
 * in a table, the profile's rules (suppress_prefixlength, not fwmark, to HOST), dumps,
 * deletes, extended-ack errors; the data plane's exit-node choice and control hosts. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netmap.h"
#include "userspace/dataplane.h"
#include "userspace/rtnl.h"

static int in_netns;

static int setup(void **state)
{
	in_netns = geteuid() == 0 && unshare(CLONE_NEWNET) == 0;
	if (in_netns)
		ls_rtnl_link_set((int)if_nametoindex("lo"), true, 0);
	return 0;
}

static bool has_addr(int ifindex, const char *s)
{
	struct ls_rtnl_addr *a = NULL;
	struct ls_prefix p;
	size_t n = 0;
	bool found = false;

	ls_prefix_parse(s, &p, true);
	assert_int_equal(ls_rtnl_addr_list(AF_UNSPEC, ifindex, &a, &n), 0);
	for (size_t i = 0; i < n; i++)
		found |= a[i].addr.family == p.family && a[i].addr.len == p.len && !memcmp(a[i].addr.addr, p.addr, 16);
	free(a);
	return found;
}

static void test_addresses(void **state)
{
	struct ls_prefix a4, a6;
	int lo;

	if (!in_netns) {
		skip();
		return;
	}
	lo = (int)if_nametoindex("lo");
	ls_prefix_parse("100.71.8.7/22", &a4, true);
	ls_prefix_parse("fd5c:1f3a:90e2::7/48", &a6, true);
	assert_int_equal(ls_rtnl_addr(LS_RTNL_ADD, lo, &a4), 0);
	assert_int_equal(ls_rtnl_addr(LS_RTNL_ADD, lo, &a6), 0);
	assert_int_equal(ls_rtnl_addr(LS_RTNL_ADD, lo, &a4), -EEXIST);
	assert_true(has_addr(lo, "100.71.8.7/22"));
	assert_true(has_addr(lo, "fd5c:1f3a:90e2::7/48"));
	assert_int_equal(ls_rtnl_addr(LS_RTNL_DEL, lo, &a4), 0);
	assert_false(has_addr(lo, "100.71.8.7/22"));
	assert_int_equal(ls_rtnl_addr(LS_RTNL_DEL, lo, &a6), 0);
}

static void test_routes(void **state)
{
	struct ls_rtnl_route *r = NULL;
	struct ls_prefix d4, d6, def;
	size_t n = 0;
	int lo;

	if (!in_netns) {
		skip();
		return;
	}
	lo = (int)if_nametoindex("lo");
	ls_prefix_parse("192.168.50.0/24", &d4, false);
	ls_prefix_parse("fd50::/64", &d6, false);
	ls_prefix_parse("0.0.0.0/0", &def, false);
	assert_int_equal(ls_rtnl_route(LS_RTNL_REPLACE, 52001, &d4, lo), 0);
	assert_int_equal(ls_rtnl_route(LS_RTNL_REPLACE, 52001, &d6, lo), 0);
	assert_int_equal(ls_rtnl_route(LS_RTNL_REPLACE, 52001, &def, lo), 0);
	assert_int_equal(ls_rtnl_route(LS_RTNL_ADD, 52001, &d4, lo), -EEXIST);
	assert_int_equal(ls_rtnl_route_list(AF_UNSPEC, 52001, &r, &n), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(r[i].table, 52001);
		assert_int_equal(r[i].oif, lo);
	}
	free(r);
	assert_int_equal(ls_rtnl_route(LS_RTNL_DEL, 52001, &d4, lo), 0);
	assert_int_equal(ls_rtnl_route(LS_RTNL_DEL, 52001, &d4, lo), -ESRCH);
	assert_int_equal(ls_rtnl_route_list(AF_INET6, 52001, &r, &n), 0);
	assert_int_equal(n, 1);
	free(r);
	/* a route through a missing interface: the kernel says why */
	assert_int_equal(ls_rtnl_route(LS_RTNL_ADD, 52001, &d4, 9999), -ENODEV);
}

static void test_rules(void **state)
{
	struct ls_rtnl_rule want[3] = {
		{ .family = AF_INET, .priority = 5300, .table = RT_TABLE_MAIN, .suppress_prefixlen = -1, .has_dst = true },
		{ .family = AF_INET, .priority = 5301, .table = RT_TABLE_MAIN, .suppress_prefixlen = 0 },
		{ .family = AF_INET, .priority = 5302, .table = 52001, .fwmark = 0x4c530001, .invert = true,
		  .suppress_prefixlen = -1 },
	};
	struct ls_rtnl_rule *cur = NULL;
	size_t n = 0, found = 0;

	if (!in_netns) {
		skip();
		return;
	}
	ls_prefix_parse("10.98.0.1/32", &want[0].dst, false);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ls_rtnl_rule(LS_RTNL_ADD, &want[i]), 0);
	assert_int_equal(ls_rtnl_rule(LS_RTNL_ADD, &want[2]), -EEXIST);
	assert_int_equal(ls_rtnl_rule_list(AF_INET, &cur, &n), 0);
	for (size_t i = 0; i < n; i++)
		for (int j = 0; j < 3; j++)
			found += ls_rtnl_rule_equal(&cur[i], &want[j]);
	free(cur);
	assert_int_equal(found, 3);
	/* v6: the same family of rules */
	want[1].family = AF_INET6;
	assert_int_equal(ls_rtnl_rule(LS_RTNL_ADD, &want[1]), 0);
	assert_int_equal(ls_rtnl_rule(LS_RTNL_DEL, &want[1]), 0);
	for (int i = 0; i < 3; i++) {
		want[1].family = AF_INET;
		assert_int_equal(ls_rtnl_rule(LS_RTNL_DEL, &want[i]), 0);
	}
	assert_int_equal(ls_rtnl_rule(LS_RTNL_DEL, &want[2]), -ENOENT);
}

static void test_monitor(void **state)
{
	struct ls_prefix d;
	int fd, lo;

	if (!in_netns) {
		skip();
		return;
	}
	lo = (int)if_nametoindex("lo");
	fd = ls_rtnl_monitor_open();
	assert_true(fd >= 0);
	assert_int_equal(ls_rtnl_monitor_drain(fd), 0);
	ls_prefix_parse("10.77.0.0/16", &d, false);
	assert_int_equal(ls_rtnl_route(LS_RTNL_REPLACE, 52002, &d, lo), 0);
	assert_true(ls_rtnl_monitor_drain(fd) > 0);
	assert_int_equal(ls_rtnl_route(LS_RTNL_DEL, 52002, &d, lo), 0);
	close(fd);
}

static void test_pick_exit(void **state)
{
	static const char *doc =
		"{\"version\": 1, \"full\": true, \"network\": {\"id\": \"n\", \"name\": \"home\"},"
		" \"self\": {\"id\": 1, \"name\": \"me\"}, \"peers\": ["
		"{\"id\": 5, \"name\": \"b\", \"wg_key\": \"AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\", \"exit_node\": true,"
		" \"routes\": [\"0.0.0.0/0\"]},"
		"{\"id\": 3, \"name\": \"a\", \"wg_key\": \"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\", \"exit_node\": true},"
		"{\"id\": 4, \"name\": \"c\", \"wg_key\": \"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=\"}]}";
	struct ls_netmap *nm = NULL;
	char why[160];
	const struct ls_nm_peer *p;

	assert_int_equal(ls_netmap_parse(doc, strlen(doc), &nm, NULL, 0), 0);
	p = ls_dp_pick_exit(nm, "auto", why, sizeof(why));
	assert_non_null(p);
	assert_int_equal(p->id, 3); /* first by id */
	assert_int_equal(ls_dp_pick_exit(nm, "b", why, sizeof(why))->id, 5);
	assert_int_equal(ls_dp_pick_exit(nm, "5", why, sizeof(why))->id, 5);
	assert_null(ls_dp_pick_exit(nm, "none", why, sizeof(why)));
	assert_null(ls_dp_pick_exit(nm, NULL, why, sizeof(why)));
	assert_null(ls_dp_pick_exit(nm, "c", why, sizeof(why)));
	assert_non_null(strstr(why, "does not offer"));
	assert_null(ls_dp_pick_exit(nm, "zz", why, sizeof(why)));
	assert_non_null(strstr(why, "no peer `zz'"));
	ls_netmap_free(nm);
}

static void test_control_hosts(void **state)
{
	struct ls_prefix h[8];
	char b[LS_PREFIX_STRLEN];
	size_t n = ls_control_hosts("http://10.98.0.1:8080, https://[fd98::1]:443/x,http://127.0.0.1:1", h, 8);

	assert_int_equal(n, 2); /* loopback needs no rule */
	ls_prefix_format(&h[0], b);
	assert_string_equal(b, "10.98.0.1/32");
	ls_prefix_format(&h[1], b);
	assert_string_equal(b, "fd98::1/128");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addresses), cmocka_unit_test(test_routes),
		cmocka_unit_test(test_rules),     cmocka_unit_test(test_monitor),
		cmocka_unit_test(test_pick_exit), cmocka_unit_test(test_control_hosts),
	};

	ls_crypto_init();
	return cmocka_run_group_tests(tests, setup, NULL);
}
