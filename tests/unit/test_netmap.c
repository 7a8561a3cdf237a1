// SPDX-License-Identifier: MIT
/* lib/netmap: parse (full, delta), validate, serialise, apply deltas, diff. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "netmap.h"
#include "util.h"

/* Three distinct valid keys (base64 of 32 bytes). */
#define K1 "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define K2 "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
#define K3 "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="
#define K4 "BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ="

static const char *full_map =
	"{\"version\": 42, \"full\": true,"
	" \"network\": {\"id\": \"5b1c\", \"name\": \"home\", \"ipv4\": \"100.71.8.0/22\","
	"   \"ipv6\": \"fd5c:1f3a:90e2::/48\", \"dns_suffix\": \"home.ls.internal\"},"
	" \"self\": {\"id\": 7, \"name\": \"laptop\", \"dns_name\": \"laptop.home.ls.internal\","
	"   \"wg_key\": \"" K1 "\", \"addresses\": [\"100.71.8.7\", \"fd5c:1f3a:90e2::7\"],"
	"   \"status\": \"active\", \"key_expiry\": null, \"routes\": []},"
	" \"peers\": ["
	"  {\"id\": 9, \"name\": \"nas\", \"dns_name\": \"nas.home.ls.internal\", \"wg_key\": \"" K3 "\","
	"   \"addresses\": [\"100.71.8.9\"], \"allowed_ips\": [\"100.71.8.9/32\"], \"endpoints\": [],"
	"   \"online\": false},"
	"  {\"id\": 8, \"name\": \"server\", \"dns_name\": \"server.home.ls.internal\", \"wg_key\": \"" K2 "\","
	"   \"addresses\": [\"100.71.8.8\", \"fd5c:1f3a:90e2::8\"],"
	"   \"allowed_ips\": [\"100.71.8.8/32\", \"fd5c:1f3a:90e2::8/128\", \"192.168.1.0/24\"],"
	"   \"endpoints\": [\"192.0.2.8:51820\", \"[2001:db8::8]:51820\"],"
	"   \"routes\": [\"192.168.1.0/24\", \"0.0.0.0/0\"], \"standby_routes\": [\"10.0.0.0/24\"],"
	"   \"exit_node\": true, \"online\": true, \"last_seen\": 1767225600, \"home_relay\": null}],"
	" \"relays\": {\"stun\": [\"192.0.2.1:3478\"],"
	"   \"turn\": [{\"url\": \"turn:192.0.2.1:3478\", \"username\": \"u\", \"credential\": \"c\"}],"
	"   \"stream\": [\"192.0.2.1:8443\"], \"udp\": [\"192.0.2.1:3479\"]},"
	" \"dns\": {\"suffix\": \"home.ls.internal\", \"resolvers\": [], \"search\": [\"home.ls.internal\"],"
	"   \"records\": [{\"name\": \"server.home.ls.internal\", \"type\": \"A\", \"value\": \"100.71.8.8\"}]},"
	" \"packet_filter\": [{\"src\": [\"0.0.0.0/0\"], \"dst\": [\"100.71.8.7/32\"], \"ports\": [], \"proto\": \"any\"}]}";

static struct ls_netmap *parse_ok(const char *s)
{
	struct ls_netmap *nm = NULL;
	char err[256] = "";

	if (ls_netmap_parse(s, strlen(s), &nm, err, sizeof(err)))
		fail_msg("parse failed: %s", err);
	return nm;
}

static void test_parse_full(void **state)
{
	struct ls_netmap *nm = parse_ok(full_map);
	char buf[LS_PREFIX_STRLEN];
	const struct ls_nm_peer *p;

	assert_int_equal(nm->version, 42);
	assert_true(nm->full);
	assert_string_equal(nm->network.name, "home");
	ls_prefix_format(&nm->network.ipv6, buf);
	assert_string_equal(buf, "fd5c:1f3a:90e2::/48");
	assert_int_equal(nm->self.id, 7);
	assert_int_equal(nm->self.addresses.n, 2);
	assert_int_equal(nm->self.status, LS_NM_ACTIVE);
	assert_int_equal(nm->n_peers, 2);
	/* sorted by id */
	assert_int_equal(nm->peers[0]->id, 8);
	assert_int_equal(nm->peers[1]->id, 9);
	p = nm->peers[0];
	assert_string_equal(p->name, "server");
	assert_int_equal(p->allowed_ips.n, 3);
	assert_int_equal(p->endpoints.n, 2);
	assert_string_equal(p->endpoints.v[1], "[2001:db8::8]:51820");
	assert_true(p->exit_node);
	assert_int_equal(p->last_seen, 1767225600);
	assert_null(p->home_relay);
	assert_int_equal(p->standby_routes.n, 1);
	assert_true(nm->has_relays);
	assert_int_equal(nm->relays.n_turn, 1);
	assert_string_equal(nm->relays.turn[0].username, "u");
	assert_int_equal(nm->dns.n_records, 1);
	assert_non_null(nm->packet_filter);
	assert_ptr_equal(ls_netmap_lookup_peer(nm, "nas"), nm->peers[1]);
	assert_ptr_equal(ls_netmap_lookup_peer(nm, "8"), nm->peers[0]);
	assert_ptr_equal(ls_netmap_lookup_peer(nm, "server.home.ls.internal"), nm->peers[0]);
	assert_null(ls_netmap_lookup_peer(nm, "nope"));
	assert_null(ls_netmap_find_peer(nm, 7));
	ls_netmap_free(nm);
}

static void test_roundtrip(void **state)
{
	struct ls_netmap *nm = parse_ok(full_map), *nm2;
	char *a = ls_netmap_dump(nm), *b;

	assert_non_null(a);
	nm2 = parse_ok(a);
	b = ls_netmap_dump(nm2);
	assert_string_equal(a, b);
	free(a);
	free(b);
	ls_netmap_free(nm);
	ls_netmap_free(nm2);
}

/* Each bad document is the full map with one substitution; the error names the field. */
static void test_rejects(void **state)
{
	static const struct { const char *from, *to, *msg; } cases[] = {
		{ "\"version\": 42", "\"version\": \"42\"", "netmap.version: not an integer" },
		{ "\"version\": 42", "\"version\": -1", "netmap.version: -1 is below 0" },
		{ "\"full\": true,", "", "missing \"full\"" },
		{ "\"100.71.8.9/32\"", "\"100.71.8.9/8\"", "peers[0].allowed_ips[0]: `100.71.8.9/8' is not a prefix" },
		{ "\"100.71.8.9\"]", "\"100.71.8.0/24\"]", "peers[0].addresses[0]: `100.71.8.0/24' is not an address" },
		{ "\"192.0.2.8:51820\"", "\"192.0.2.8\"", "peers[1].endpoints[0]: `192.0.2.8' is not an endpoint" },
		{ "\"wg_key\": \"" K3 "\"", "\"wg_key\": \"short\"", "peers[0].wg_key: `short' is not a base64 WireGuard key" },
		{ "\"wg_key\": \"" K3 "\"", "\"wg_key\": \"" K2 "\"", "share the WireGuard key" },
		{ "\"wg_key\": \"" K3 "\"", "\"wg_key\": \"" K1 "\"", "has self's WireGuard key" },
		{ "{\"id\": 9,", "{\"id\": 8,", "id 8 appears twice" },
		{ "{\"id\": 9,", "{\"id\": 7,", "id 7 is self" },
		{ "{\"id\": 9,", "{\"id\": 0,", "peers[0].id: 0 is below 1" },
		{ "\"status\": \"active\"", "\"status\": \"sleepy\"", "self.status: `sleepy'" },
		{ "\"ipv4\": \"100.71.8.0/22\"", "\"ipv4\": \"fd00::/8\"", "network.ipv4: `fd00::/8' is not an IPv4" },
		{ "\"turn:192.0.2.1:3478\"", "\"http://x\"", "relays.turn[0].url: `http://x'" },
		{ "\"value\": \"100.71.8.8\"", "\"value\": \"fd00::1\"", "dns.records[0].value: `fd00::1' is not an A address" },
		{ "\"name\": \"nas\"", "\"name\": \"n\\u0001s\"", "peers[0].name: control character" },
		{ "\"name\": \"nas\"", "\"name\": 5", "peers[0].name: not a string" },
		{ "\"allowed_ips\": [\"100.71.8.9/32\"]", "\"allowed_ips\": [\"0.0.0.0/0\"]", "is a default route" },
		{ "\"packet_filter\": [", "\"packet_filter\": 5, \"x\": [", "packet_filter: not an array" },
		{ "\"full\": true,", "\"full\": true, \"peers_removed\": [3],", "\"peers_removed\" in a full map" },
		{ "\"self\": {", "\"self\": 1, \"x\": {", "self: not an object" },
		{ "\"version\": 42,", "\"version\": 42, \"version\": 43,", "invalid JSON" },
	};
	char doc[8192], err[256];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *at = strstr(full_map, cases[i].from);
		struct ls_netmap *nm = (void *)1;
		int ret;

		assert_non_null(at);
		snprintf(doc, sizeof(doc), "%.*s%s%s", (int)(at - full_map), full_map, cases[i].to,
			 at + strlen(cases[i].from));
		err[0] = '\0';
		ret = ls_netmap_parse(doc, strlen(doc), &nm, err, sizeof(err));
		if (ret != -EINVAL)
			fail_msg("case %zu accepted (ret %d)", i, ret);
		assert_null(nm);
		if (!strstr(err, cases[i].msg))
			fail_msg("case %zu: error `%s' lacks `%s'", i, err, cases[i].msg);
	}
}

static void test_delta(void **state)
{
	struct ls_netmap *base = parse_ok(full_map), *d;
	char err[256] = "";
	const char *delta =
		"{\"version\": 43, \"full\": false,"
		" \"self\": {\"id\": 7, \"name\": \"laptop\", \"wg_key\": \"" K1 "\", \"addresses\": [\"100.71.8.7\"]},"
		" \"peers\": [{\"id\": 10, \"name\": \"phone\", \"wg_key\": \"" K4 "\","
		"   \"addresses\": [\"100.71.8.10\"], \"allowed_ips\": [\"100.71.8.10/32\"]},"
		"  {\"id\": 8, \"name\": \"server\", \"wg_key\": \"" K2 "\", \"addresses\": [\"100.71.8.8\"],"
		"   \"allowed_ips\": [\"100.71.8.8/32\"], \"endpoints\": [\"192.0.2.80:51820\"]}],"
		" \"peers_removed\": [9],"
		" \"dns\": {\"suffix\": \"home.ls.internal\"}}";

	d = parse_ok(delta);
	assert_false(d->full);
	assert_int_equal(d->n_peers_removed, 1);
	assert_int_equal(ls_netmap_apply_delta(base, d, err, sizeof(err)), 0);
	ls_netmap_free(d);
	assert_int_equal(base->version, 43);
	assert_int_equal(base->n_peers, 2);
	assert_int_equal(base->peers[0]->id, 8);
	assert_int_equal(base->peers[1]->id, 10);
	assert_string_equal(base->peers[0]->endpoints.v[0], "192.0.2.80:51820");
	assert_int_equal(base->peers[0]->allowed_ips.n, 1);
	assert_null(ls_netmap_find_peer(base, 9));
	assert_int_equal(base->self.addresses.n, 1);
	/* sections absent from the delta stay; present ones replace */
	assert_string_equal(base->network.name, "home");
	assert_int_equal(base->relays.stun.n, 1);
	assert_int_equal(base->dns.n_records, 0);
	assert_non_null(base->packet_filter);
	ls_netmap_free(base);
}

/* A delta that cannot apply leaves the map byte-for-byte as it was. */
static void test_delta_rejects(void **state)
{
	static const struct { const char *doc, *msg; } cases[] = {
		{ "{\"version\": 41, \"full\": false, \"self\": {\"id\": 7, \"name\": \"laptop\"}}", "not newer than 42" },
		{ "{\"version\": 43, \"full\": false, \"self\": {\"id\": 6, \"name\": \"laptop\"}}", "for node 6" },
		{ "{\"version\": 43, \"full\": true, \"network\": {\"id\": \"x\", \"name\": \"y\"},"
		  " \"self\": {\"id\": 7, \"name\": \"laptop\"}, \"peers\": []}", "is a full map" },
		/* a new peer reusing an existing peer's key */
		{ "{\"version\": 43, \"full\": false, \"self\": {\"id\": 7, \"name\": \"laptop\", \"wg_key\": \"" K1 "\"},"
		  " \"peers\": [{\"id\": 11, \"name\": \"dup\", \"wg_key\": \"" K3 "\"}]}", "share the WireGuard key" },
	};
	struct ls_netmap *base = parse_ok(full_map);
	char *before = ls_netmap_dump(base), *after, err[256];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct ls_netmap *d = parse_ok(cases[i].doc);

		err[0] = '\0';
		assert_int_equal(ls_netmap_apply_delta(base, d, err, sizeof(err)), -EINVAL);
		if (!strstr(err, cases[i].msg))
			fail_msg("case %zu: error `%s' lacks `%s'", i, err, cases[i].msg);
		ls_netmap_free(d);
		after = ls_netmap_dump(base);
		assert_string_equal(before, after);
		free(after);
	}
	/* the same key moving from a removed peer to a new one is fine */
	{
		const char *ok = "{\"version\": 44, \"full\": false, \"self\": {\"id\": 7, \"name\": \"laptop\"},"
				 " \"peers\": [{\"id\": 12, \"name\": \"nas2\", \"wg_key\": \"" K3 "\"}],"
				 " \"peers_removed\": [9]}";
		struct ls_netmap *d = parse_ok(ok);

		assert_int_equal(ls_netmap_apply_delta(base, d, err, sizeof(err)), 0);
		ls_netmap_free(d);
		assert_non_null(ls_netmap_find_peer(base, 12));
		assert_null(ls_netmap_find_peer(base, 9));
	}
	free(before);
	ls_netmap_free(base);
}

static void test_unchanged(void **state)
{
	struct ls_netmap *nm = parse_ok("{\"version\": 42, \"unchanged\": true}");
	struct ls_netmap *base = parse_ok(full_map);

	assert_true(nm->unchanged);
	assert_int_equal(nm->version, 42);
	assert_int_equal(ls_netmap_apply_delta(base, nm, NULL, 0), 0);
	assert_int_equal(base->version, 42);
	ls_netmap_free(nm);
	ls_netmap_free(base);
}

static void test_diff(void **state)
{
	struct ls_netmap *a = parse_ok(full_map), *b = parse_ok(full_map), *d;
	struct ls_nm_diff diff;
	const char *delta =
		"{\"version\": 43, \"full\": false, \"self\": {\"id\": 7, \"name\": \"laptop\"},"
		" \"peers\": [{\"id\": 10, \"name\": \"phone\", \"wg_key\": \"" K4 "\"},"
		"  {\"id\": 8, \"name\": \"server\", \"dns_name\": \"server.home.ls.internal\", \"wg_key\": \"" K2 "\","
		"   \"addresses\": [\"100.71.8.8\", \"fd5c:1f3a:90e2::8\"],"
		"   \"allowed_ips\": [\"100.71.8.8/32\", \"fd5c:1f3a:90e2::8/128\", \"192.168.1.0/24\"],"
		"   \"endpoints\": [\"192.0.2.99:51820\"],"
		"   \"routes\": [\"192.168.1.0/24\", \"0.0.0.0/0\"], \"standby_routes\": [\"10.0.0.0/24\"],"
		"   \"exit_node\": true, \"online\": true, \"last_seen\": 1767225600}],"
		" \"peers_removed\": [9]}";

	/* identical maps: nothing */
	assert_int_equal(ls_netmap_diff(a, b, &diff), 0);
	assert_int_equal(diff.n_added + diff.n_removed + diff.n_changed, 0);
	ls_nm_diff_free(&diff);

	/* the delta's own diff: the same as diffing the maps before and after */
	d = parse_ok(delta);
	assert_int_equal(ls_netmap_apply_delta_diff(b, d, &diff, NULL, 0), 0);
	ls_netmap_free(d);
	assert_int_equal(diff.n_added, 1);
	assert_int_equal(diff.added[0]->id, 10);
	assert_int_equal(diff.n_removed, 1);
	assert_int_equal(diff.removed[0]->id, 9);
	assert_string_equal(diff.removed[0]->name, "nas"); /* kept alive by the diff */
	assert_int_equal(diff.n_changed, 1);
	assert_int_equal(diff.changed[0].what, LS_NM_CHG_ENDPOINTS);
	assert_string_equal(diff.changed[0].old->endpoints.v[0], "192.0.2.8:51820");
	assert_string_equal(diff.changed[0].new->endpoints.v[0], "192.0.2.99:51820");
	ls_nm_diff_free(&diff);
	assert_int_equal(ls_netmap_diff(a, b, &diff), 0);
	assert_int_equal(diff.n_added, 1);
	assert_int_equal(diff.added[0]->id, 10);
	assert_int_equal(diff.n_removed, 1);
	assert_int_equal(diff.removed[0]->id, 9);
	assert_int_equal(diff.n_changed, 1);
	assert_int_equal(diff.changed[0].new->id, 8);
	assert_int_equal(diff.changed[0].what, LS_NM_CHG_ENDPOINTS);
	ls_nm_diff_free(&diff);

	/* from nothing: every peer is added */
	assert_int_equal(ls_netmap_diff(NULL, a, &diff), 0);
	assert_int_equal(diff.n_added, 2);
	assert_int_equal(diff.n_removed, 0);
	ls_nm_diff_free(&diff);
	ls_netmap_free(a);
	ls_netmap_free(b);
}

/* 10,000 peers: parse, then a 100-peer delta applies and diffs correctly. */
static void test_large(void **state)
{
	size_t cap = 10000 * 256 + 1024, len = 0;
	char *doc = malloc(cap), err[256] = "";
	struct ls_netmap *nm = NULL, *d = NULL;
	struct ls_nm_diff diff;
	struct ls_netmap *copy;
	uint8_t key[32];
	char b64[LS_KEY_B64_LEN + 1];

	assert_non_null(doc);
	len += snprintf(doc + len, cap - len,
			"{\"version\": 1, \"full\": true, \"network\": {\"id\": \"n\", \"name\": \"big\"},"
			" \"self\": {\"id\": 1, \"name\": \"me\"}, \"peers\": [");
	for (int i = 0; i < 10000; i++) {
		memset(key, 0, sizeof(key));
		key[0] = 1;
		key[1] = (uint8_t)(i >> 8);
		key[2] = (uint8_t)i;
		ls_key_to_base64(b64, key);
		len += snprintf(doc + len, cap - len,
				"%s{\"id\": %d, \"name\": \"n%d\", \"wg_key\": \"%s\", \"allowed_ips\": [\"10.%d.%d.0/24\"]}",
				i ? "," : "", i + 2, i, b64, (i >> 8) & 255, i & 255);
	}
	len += snprintf(doc + len, cap - len, "]}");
	assert_int_equal(ls_netmap_parse(doc, len, &nm, err, sizeof(err)), 0);
	assert_int_equal(nm->n_peers, 10000);
	copy = parse_ok(doc);

	len = snprintf(doc, cap, "{\"version\": 2, \"full\": false, \"self\": {\"id\": 1, \"name\": \"me\"}, \"peers\": [");
	for (int i = 0; i < 100; i++) {
		memset(key, 0, sizeof(key));
		key[0] = 1;
		key[1] = (uint8_t)((i * 50) >> 8);
		key[2] = (uint8_t)(i * 50);
		ls_key_to_base64(b64, key);
		len += snprintf(doc + len, cap - len,
				"%s{\"id\": %d, \"name\": \"n%d\", \"wg_key\": \"%s\", \"allowed_ips\": [\"10.%d.%d.0/24\"],"
				" \"endpoints\": [\"192.0.2.1:%d\"]}",
				i ? "," : "", i * 50 + 2, i * 50, b64, ((i * 50) >> 8) & 255, (i * 50) & 255, 1000 + i);
	}
	len += snprintf(doc + len, cap - len, "]}");
	assert_int_equal(ls_netmap_parse(doc, len, &d, err, sizeof(err)), 0);
	assert_int_equal(ls_netmap_apply_delta(nm, d, err, sizeof(err)), 0);
	assert_int_equal(ls_netmap_diff(copy, nm, &diff), 0);
	assert_int_equal(diff.n_changed, 100);
	assert_int_equal(diff.n_added, 0);
	assert_int_equal(diff.n_removed, 0);
	for (size_t i = 0; i < diff.n_changed; i++)
		assert_int_equal(diff.changed[i].what, LS_NM_CHG_ENDPOINTS);
	ls_nm_diff_free(&diff);
	ls_netmap_free(d);
	ls_netmap_free(nm);
	ls_netmap_free(copy);
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_full),  cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_rejects),     cmocka_unit_test(test_delta),
		cmocka_unit_test(test_delta_rejects), cmocka_unit_test(test_unchanged),
		cmocka_unit_test(test_diff),        cmocka_unit_test(test_large),
	};

	ls_crypto_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
