// SPDX-License-Identifier: MIT
/* userspace/wgu: the AllowedIPs trie (longest prefix, IPv4 and IPv6, removal). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "userspace/wgu/allowedips.h"

static int peers[4];
#define A (&peers[0])
#define B (&peers[1])
#define C (&peers[2])

static int ins(struct lsw_allowedips *t, const char *cidr, void *peer)
{
	char ip[64];
	uint8_t addr[16];
	unsigned int len;
	const char *slash = strchr(cidr, '/');
	int fam;

	snprintf(ip, sizeof(ip), "%.*s", (int)(slash - cidr), cidr);
	len = (unsigned int)atoi(slash + 1);
	fam = strchr(ip, ':') ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(fam, ip, addr), 1);
	return lsw_aip_insert(t, fam, addr, len, peer);
}

static int rm(struct lsw_allowedips *t, const char *cidr, void *peer)
{
	char ip[64];
	uint8_t addr[16];
	const char *slash = strchr(cidr, '/');
	int fam;

	snprintf(ip, sizeof(ip), "%.*s", (int)(slash - cidr), cidr);
	fam = strchr(ip, ':') ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(fam, ip, addr), 1);
	return lsw_aip_remove(t, fam, addr, (unsigned int)atoi(slash + 1), peer);
}

static void *look(struct lsw_allowedips *t, const char *ip)
{
	uint8_t addr[16];
	int fam = strchr(ip, ':') ? AF_INET6 : AF_INET;

	assert_int_equal(inet_pton(fam, ip, addr), 1);
	return lsw_aip_lookup(t, fam, addr);
}

static void test_longest_prefix_v4(void **state)
{
	struct lsw_allowedips t = { 0 };

	assert_int_equal(ins(&t, "10.0.0.0/8", A), 0);
	assert_int_equal(ins(&t, "10.1.0.0/16", B), 0);
	assert_int_equal(ins(&t, "10.1.2.3/32", C), 0);
	assert_ptr_equal(look(&t, "10.2.3.4"), A);
	assert_ptr_equal(look(&t, "10.1.9.9"), B);
	assert_ptr_equal(look(&t, "10.1.2.3"), C);
	assert_ptr_equal(look(&t, "10.1.2.4"), B);
	assert_null(look(&t, "11.0.0.1"));
	assert_null(look(&t, "::1"));
	assert_int_equal(t.count, 3);
	lsw_aip_free(&t);
}

static void test_default_routes_and_host_bits(void **state)
{
	struct lsw_allowedips t = { 0 };

	assert_int_equal(ins(&t, "0.0.0.0/0", A), 0);
	assert_int_equal(ins(&t, "::/0", B), 0);
	assert_ptr_equal(look(&t, "1.2.3.4"), A);
	assert_ptr_equal(look(&t, "255.255.255.255"), A);
	assert_ptr_equal(look(&t, "2001:db8::1"), B);
	/* Host bits are ignored: 192.168.1.77/24 is 192.168.1.0/24. */
	assert_int_equal(ins(&t, "192.168.1.77/24", C), 0);
	assert_ptr_equal(look(&t, "192.168.1.1"), C);
	assert_int_equal(rm(&t, "192.168.1.0/24", C), 0);
	assert_ptr_equal(look(&t, "192.168.1.1"), A);
	/* Bad prefix lengths. */
	assert_int_equal(ins(&t, "10.0.0.0/33", A), -EINVAL);
	assert_int_equal(ins(&t, "::/129", A), -EINVAL);
	lsw_aip_free(&t);
}

static void test_longest_prefix_v6(void **state)
{
	struct lsw_allowedips t = { 0 };

	assert_int_equal(ins(&t, "fd00::/8", A), 0);
	assert_int_equal(ins(&t, "fd7a:115c:a1e0::/48", B), 0);
	assert_int_equal(ins(&t, "fd7a:115c:a1e0::1/128", C), 0);
	assert_ptr_equal(look(&t, "fd12::1"), A);
	assert_ptr_equal(look(&t, "fd7a:115c:a1e0:1::1"), B);
	assert_ptr_equal(look(&t, "fd7a:115c:a1e0::1"), C);
	assert_ptr_equal(look(&t, "fd7a:115c:a1e0::2"), B);
	assert_null(look(&t, "fe80::1"));
	/* A v4 address does not match v6 prefixes of the same bits. */
	assert_null(look(&t, "253.0.0.1"));
	lsw_aip_free(&t);
}

static void test_last_one_wins_and_removal(void **state)
{
	struct lsw_allowedips t = { 0 };

	assert_int_equal(ins(&t, "10.0.0.0/24", A), 0);
	assert_int_equal(ins(&t, "10.0.0.0/24", B), 0);
	assert_ptr_equal(look(&t, "10.0.0.1"), B);
	assert_int_equal(t.count, 1);
	/* Removing as the wrong peer changes nothing. */
	assert_int_equal(rm(&t, "10.0.0.0/24", A), -ENOENT);
	assert_ptr_equal(look(&t, "10.0.0.1"), B);
	/* A prefix that is not there. */
	assert_int_equal(rm(&t, "10.0.0.0/25", NULL), -ENOENT);
	assert_int_equal(rm(&t, "10.0.0.0/24", B), 0);
	assert_null(look(&t, "10.0.0.1"));
	assert_int_equal(t.count, 0);
	/* The trie is pruned back to nothing. */
	assert_null(t.root4);
	lsw_aip_free(&t);
}

struct collect {
	char out[512];
};

static void collect_fn(void *ctx, int family, const uint8_t *addr, unsigned int cidr)
{
	struct collect *c = ctx;
	char ip[64];

	inet_ntop(family, addr, ip, sizeof(ip));
	snprintf(c->out + strlen(c->out), sizeof(c->out) - strlen(c->out), "%s/%u ", ip, cidr);
}

static void test_remove_peer_and_walk(void **state)
{
	struct lsw_allowedips t = { 0 };
	struct collect c = { "" };

	assert_int_equal(ins(&t, "10.0.0.0/8", A), 0);
	assert_int_equal(ins(&t, "10.9.0.0/16", B), 0);
	assert_int_equal(ins(&t, "192.168.0.0/16", A), 0);
	assert_int_equal(ins(&t, "fd00::/8", A), 0);
	assert_int_equal(ins(&t, "fd00:1::/32", B), 0);
	lsw_aip_walk_peer(&t, A, collect_fn, &c);
	assert_string_equal(c.out, "10.0.0.0/8 192.168.0.0/16 fd00::/8 ");
	lsw_aip_remove_peer(&t, A);
	assert_null(look(&t, "10.1.1.1"));
	assert_ptr_equal(look(&t, "10.9.1.1"), B);
	assert_null(look(&t, "fd01::1"));
	assert_ptr_equal(look(&t, "fd00:1::5"), B);
	assert_int_equal(t.count, 2);
	c.out[0] = 0;
	lsw_aip_walk_peer(&t, A, collect_fn, &c);
	assert_string_equal(c.out, "");
	lsw_aip_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_longest_prefix_v4),
		cmocka_unit_test(test_default_routes_and_host_bits),
		cmocka_unit_test(test_longest_prefix_v6),
		cmocka_unit_test(test_last_one_wins_and_removal),
		cmocka_unit_test(test_remove_peer_and_walk),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
