// SPDX-License-Identifier: MIT
/* lib/netmap: a delta without self (or network, dns, relays) leaves the base's section as it
 * was; a delta with it replaces it; a full map still needs self. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netmap.h"

#define K1 "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define K2 "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
#define K3 "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="

#define NETWORK                                                                              \
	"\"network\": {\"id\": \"5b1c\", \"name\": \"home\", \"ipv4\": \"100.71.8.0/22\","   \
	" \"ipv6\": \"fd5c:1f3a:90e2::/48\", \"dns_suffix\": \"home.ls.internal\"}"
#define SELF(status, expiry)                                                                 \
	"\"self\": {\"id\": 7, \"name\": \"laptop\", \"dns_name\": \"laptop.home.ls.internal\"," \
	" \"wg_key\": \"" K1 "\", \"addresses\": [\"100.71.8.7\", \"fd5c:1f3a:90e2::7\"],"     \
	" \"status\": \"" status "\", \"key_expiry\": " expiry ", \"routes\": []}"
#define PEER(id, key)                                                                        \
	"{\"id\": " #id ", \"name\": \"p" #id "\", \"dns_name\": \"p" #id ".home.ls.internal\"," \
	" \"wg_key\": \"" key "\", \"addresses\": [\"100.71.8." #id "\"],"                     \
	" \"allowed_ips\": [\"100.71.8." #id "/32\"], \"endpoints\": [], \"online\": false}"

static const char *full_map = "{\"version\": 10, \"full\": true, " NETWORK ", " SELF("active", "1900000000")
			      ", \"peers\": [" PEER(8, K2) "]}";

static struct ls_netmap *parse_ok(const char *s)
{
	struct ls_netmap *nm = NULL;
	char err[256] = "";

	if (ls_netmap_parse(s, strlen(s), &nm, err, sizeof(err)))
		fail_msg("parse of %s failed: %s", s, err);
	return nm;
}

static void test_delta_without_self_keeps_self(void **state)
{
	struct ls_netmap *base = parse_ok(full_map);
	struct ls_netmap *d = parse_ok("{\"version\": 11, \"full\": false, \"peers\": [" PEER(9, K3)
				       "], \"peers_removed\": []}");
	char err[256] = "";

	(void)state;
	assert_false(d->has_self);
	assert_false(d->has_network);
	assert_int_equal(ls_netmap_apply_delta(base, d, err, sizeof(err)), 0);
	assert_int_equal(base->version, 11);
	assert_int_equal(base->n_peers, 2);
	assert_int_equal(base->self.id, 7);
	assert_string_equal(base->self.name, "laptop");
	assert_int_equal(base->self.key_expiry, 1900000000);
	assert_int_equal(base->self.status, LS_NM_ACTIVE);
	assert_string_equal(base->network.name, "home");
	ls_netmap_free(d);
	ls_netmap_free(base);
}

static void test_delta_with_self_replaces_it(void **state)
{
	struct ls_netmap *base = parse_ok(full_map);
	struct ls_netmap *d = parse_ok("{\"version\": 11, \"full\": false, " SELF("active", "1950000000")
				       ", \"peers\": [], \"peers_removed\": [8]}");
	char err[256] = "";

	(void)state;
	assert_true(d->has_self);
	assert_int_equal(ls_netmap_apply_delta(base, d, err, sizeof(err)), 0);
	assert_int_equal(base->self.key_expiry, 1950000000);
	assert_int_equal(base->n_peers, 0);
	ls_netmap_free(d);
	ls_netmap_free(base);
}

static void test_delta_without_self_still_checked(void **state)
{
	struct ls_netmap *base = parse_ok(full_map);
	/* a peer with this node's key, or with this node's id: refused, base unchanged */
	struct ls_netmap *d1 = parse_ok("{\"version\": 11, \"full\": false, \"peers\": [" PEER(9, K1) "]}");
	struct ls_netmap *d2 = parse_ok("{\"version\": 11, \"full\": false, \"peers\": [" PEER(7, K3) "]}");
	struct ls_netmap *old = parse_ok("{\"version\": 10, \"full\": false, \"peers\": []}");
	char err[256] = "";

	(void)state;
	assert_int_not_equal(ls_netmap_apply_delta(base, d1, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "self's WireGuard key"));
	assert_int_not_equal(ls_netmap_apply_delta(base, d2, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "is self"));
	assert_int_not_equal(ls_netmap_apply_delta(base, old, err, sizeof(err)), 0);
	assert_int_equal(base->version, 10);
	assert_int_equal(base->n_peers, 1);
	ls_netmap_free(d1);
	ls_netmap_free(d2);
	ls_netmap_free(old);
	ls_netmap_free(base);
}

static void test_full_needs_self(void **state)
{
	const char *s = "{\"version\": 10, \"full\": true, " NETWORK ", \"peers\": []}";
	struct ls_netmap *nm = NULL;
	char err[256] = "";

	(void)state;
	assert_int_not_equal(ls_netmap_parse(s, strlen(s), &nm, err, sizeof(err)), 0);
	assert_null(nm);
	assert_non_null(strstr(err, "self"));
}

static void test_delta_json_omits_self(void **state)
{
	struct ls_netmap *d = parse_ok("{\"version\": 11, \"full\": false, \"peers\": []}");
	struct ls_netmap *f = parse_ok(full_map);
	json_t *j = ls_netmap_to_json(d), *jf = ls_netmap_to_json(f);

	(void)state;
	assert_non_null(j);
	assert_null(json_object_get(j, "self"));
	assert_non_null(json_object_get(jf, "self"));
	json_decref(j);
	json_decref(jf);
	ls_netmap_free(d);
	ls_netmap_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delta_without_self_keeps_self),
		cmocka_unit_test(test_delta_with_self_replaces_it),
		cmocka_unit_test(test_delta_without_self_still_checked),
		cmocka_unit_test(test_full_needs_self),
		cmocka_unit_test(test_delta_json_omits_self),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
