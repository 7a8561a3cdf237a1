// SPDX-License-Identifier: MIT
/* control/body.c: request-body parsers accept good bodies, canonicalise, refuse bad ones. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <errno.h>
#include <string.h>

#include "control/control.h"
#include "keys.h"

#define WG "yMTsFvRyGbMNczSB8cvaDhAF/UvOnNcOBbXfVBb9ukw="
#define B(s) (s), strlen(s)
#define MK "HDDitmpyPTFPRHa2NKflGoI3qNeLyOFzNVmdyb5Xc18="

static void test_register_ok(void **state)
{
	const char *b = "{\"token\":\"lst_x\",\"wg_key\":\"" WG "\",\"machine_key\":\"" MK "\","
			"\"hostname\":\"laptop\",\"routes\":[\"192.168.1.0/24\",\"10.0.0.0/8\",\"192.168.1.0/24\"],"
			"\"endpoints\":[\"192.0.2.1:51820\",\"[2001:DB8::1]:51820\"],\"listen_port\":51820,"
			"\"future_field\":{\"x\":1}}";
	struct lsc_register_req r;
	char err[256];

	assert_int_equal(lsc_parse_register(b, strlen(b), &r, err, sizeof(err)), 0);
	assert_string_equal(r.token, "lst_x");
	assert_string_equal(r.wg_key, WG);
	assert_string_equal(r.hostname, "laptop");
	/* routes: canonical, unique, sorted */
	assert_int_equal(r.routes.n, 2);
	assert_string_equal(r.routes.v[0], "10.0.0.0/8");
	assert_string_equal(r.routes.v[1], "192.168.1.0/24");
	assert_int_equal(r.endpoints.n, 2);
	assert_string_equal(r.endpoints.v[1], "[2001:db8::1]:51820");
	assert_int_equal(r.listen_port, 51820);
	lsc_register_req_free(&r);
}

/* no token: a tokenless registration (approval link); absent and null alike */
static void test_register_tokenless(void **state)
{
	const char *bodies[] = {
		"{\"wg_key\":\"" WG "\",\"machine_key\":\"" MK "\",\"hostname\":\"kiosk\"}",
		"{\"token\":null,\"wg_key\":\"" WG "\",\"machine_key\":\"" MK "\",\"hostname\":\"kiosk\"}",
	};
	struct lsc_register_req r;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		assert_int_equal(lsc_parse_register(bodies[i], strlen(bodies[i]), &r, err, sizeof(err)), 0);
		assert_null(r.token);
		assert_string_equal(r.hostname, "kiosk");
		assert_string_equal(r.machine_key, MK);
		lsc_register_req_free(&r);
	}
}

struct bad {
	const char *body;
	const char *want; /* substring of the message */
};

static void test_register_refused(void **state)
{
	static const struct bad cases[] = {
		{"", "empty body"},
		{"nope", "malformed JSON"},
		{"[1]", "JSON object"},
		{"{}", "missing field `wg_key'"},
		{"{\"token\":1}", "`token' must be a string"},
		{"{\"token\":\"\",\"wg_key\":\"" WG "\",\"machine_key\":\"" MK "\",\"hostname\":\"h\"}", "not a token"},
		{"{\"token\":\"a\\nb\",\"wg_key\":\"" WG "\",\"machine_key\":\"" MK "\",\"hostname\":\"h\"}", "not a token"},
		{"{\"wg_key\":\"" WG "\",\"machine_key\":\"" MK "\"}", "missing field `hostname'"},
		{"{\"token\":\"t\",\"wg_key\":\"short\",\"machine_key\":\"" MK "\",\"hostname\":\"h\"}", "invalid key `short'"},
		{"{\"token\":\"t\",\"wg_key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"machine_key\":\"" MK "\",\"hostname\":\"h\"}", "invalid key"},
		{"{\"token\":\"t\",\"wg_key\":\"" WG "\",\"machine_key\":\"" MK "\"}", "missing field `hostname'"},
		{"{\"token\":\"t\",\"wg_key\":\"" WG "\",\"machine_key\":\"" MK "\",\"hostname\":\"a\\u0000b\"}", "NUL"},
		{"{\"token\":\"t\",\"wg_key\":\"" WG "\",\"machine_key\":\"" MK "\",\"hostname\":\"h\",\"routes\":[\"10.0.0.1/8\"]}", "invalid prefix `10.0.0.1/8'"},
		{"{\"token\":\"t\",\"wg_key\":\"" WG "\",\"machine_key\":\"" MK "\",\"hostname\":\"h\",\"routes\":{}}", "array of prefixes"},
		{"{\"token\":\"t\",\"wg_key\":\"" WG "\",\"machine_key\":\"" MK "\",\"hostname\":\"h\",\"endpoints\":[\"1.2.3.4\"]}", "invalid endpoint"},
		{"{\"token\":\"t\",\"wg_key\":\"" WG "\",\"machine_key\":\"" MK "\",\"hostname\":\"h\",\"listen_port\":0}", "out of range"},
		{"{\"token\":\"t\",\"wg_key\":\"" WG "\",\"machine_key\":\"" MK "\",\"hostname\":\"h\",\"listen_port\":1.5}", "must be an integer"},
		{"{\"token\":\"t\",\"token\":\"u\"}", "malformed JSON"},
	};
	struct lsc_register_req r;
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ret = lsc_parse_register(cases[i].body, strlen(cases[i].body), &r, err, sizeof(err));

		if (ret != -EINVAL || !strstr(err, cases[i].want))
			fail_msg("case %zu `%s': ret %d, message `%s', want `%s'", i, cases[i].body, ret,
				 err, cases[i].want);
	}
}

static void test_heartbeat(void **state)
{
	struct lsc_heartbeat_req r;
	char err[256];
	const char *b1 = "{\"endpoints\":[\"192.0.2.1:1\"],\"listen_port\":5}";
	const char *b2 = "{\"routes\":[]}";

	assert_int_equal(lsc_parse_heartbeat(b1, strlen(b1), &r, err, sizeof(err)), 0);
	assert_false(r.has_routes);
	assert_int_equal(r.listen_port, 5);
	lsc_heartbeat_req_free(&r);
	/* an empty routes array withdraws every route: present, with none */
	assert_int_equal(lsc_parse_heartbeat(b2, strlen(b2), &r, err, sizeof(err)), 0);
	assert_true(r.has_routes);
	assert_int_equal(r.routes.n, 0);
	lsc_heartbeat_req_free(&r);
	assert_int_equal(lsc_parse_heartbeat(B("{\"endpoints\":3}"), &r, err, sizeof(err)), -EINVAL);
}

static void test_network_and_token(void **state)
{
	struct lsc_network_req n;
	struct lsc_token_req t;
	char err[256];
	const char *ok = "{\"name\":\"home\",\"ipv4\":\"10.1.0.0/16\",\"ipv6\":\"fd00:1::/48\",\"dns_suffix\":\"home.example\"}";

	assert_int_equal(lsc_parse_network(ok, strlen(ok), &n, err, sizeof(err)), 0);
	assert_true(n.has_ipv4 && n.has_ipv6);
	assert_string_equal(n.dns_suffix, "home.example");
	lsc_network_req_free(&n);
	assert_int_equal(lsc_parse_network(B("{\"name\":\"Home\"}"), &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "invalid network name `Home'"));
	assert_int_equal(lsc_parse_network(B("{\"name\":\"h\",\"ipv4\":\"10.0.0.0/31\"}"), &n, err, sizeof(err)), -EINVAL);
	assert_int_equal(lsc_parse_token(B("{}"), &t, err, sizeof(err)), 0);
	assert_int_equal(t.ttl, 86400);
	assert_int_equal(t.uses, 1);
	lsc_token_req_free(&t);
	assert_int_equal(lsc_parse_token(B("{\"ttl\":60,\"uses\":5,\"tags\":[\"tag:a\",\"tag:a\",\"b\"]}"), &t, err, sizeof(err)), 0);
	assert_int_equal(t.ttl, 60);
	assert_int_equal(t.uses, 5);
	assert_int_equal(t.tags.n, 2);
	lsc_token_req_free(&t);
	assert_int_equal(lsc_parse_token(B("{\"ttl\":-1}"), &t, err, sizeof(err)), -EINVAL);
	assert_int_equal(lsc_parse_token(B("{\"tags\":[\"UPPER\"]}"), &t, err, sizeof(err)), -EINVAL);
}

/* issue 6: network settings, route lists, rotation */
static void test_trust_bodies(void **state)
{
	struct lsc_network_set_req ns;
	struct lsc_network_req nr;
	struct lsc_strv rt;
	char err[256], key[64];

	(void)state;
	assert_int_equal(lsc_parse_network_set(B("{\"require_approval\": true}"), &ns, err, sizeof(err)), 0);
	assert_int_equal(ns.require_approval, 1);
	assert_int_equal(ns.route_approval, -1);
	assert_int_equal(ns.key_lifetime, -1);
	assert_int_equal(lsc_parse_network_set(B("{\"route_approval\": false, \"key_lifetime\": 0}"), &ns,
					       err, sizeof(err)), 0);
	assert_int_equal(ns.route_approval, 0);
	assert_int_equal(ns.key_lifetime, 0);
	assert_int_equal(lsc_parse_network_set(B("{\"require_approval\": \"yes\"}"), &ns, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "require_approval"));
	assert_int_equal(lsc_parse_network_set(B("{\"approval\": true}"), &ns, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown field `approval'"));
	assert_int_equal(lsc_parse_network_set(B("{}"), &ns, err, sizeof(err)), -EINVAL);
	assert_int_equal(lsc_parse_network_set(B("{\"key_lifetime\": 5}"), &ns, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too short"));
	assert_int_equal(lsc_parse_network_set(B("{\"key_lifetime\": -1}"), &ns, err, sizeof(err)), -EINVAL);
	assert_int_equal(lsc_parse_network_set(B("[true]"), &ns, err, sizeof(err)), -EINVAL);

	assert_int_equal(lsc_parse_network(B("{\"name\": \"n\", \"require_approval\": true}"), &nr, err,
					   sizeof(err)), 0);
	assert_int_equal(nr.require_approval, 1);
	assert_int_equal(nr.route_approval, -1);
	lsc_network_req_free(&nr);
	assert_int_equal(lsc_parse_network(B("{\"name\": \"n\", \"route_approval\": 1}"), &nr, err,
					   sizeof(err)), -EINVAL);

	assert_int_equal(lsc_parse_routes(B("{\"routes\": [\"10.1.0.0/24\", \"0.0.0.0/0\", \"10.1.0.0/24\"]}"),
					  &rt, err, sizeof(err)), 0);
	assert_int_equal(rt.n, 2);
	assert_string_equal(rt.v[0], "0.0.0.0/0");
	assert_string_equal(rt.v[1], "10.1.0.0/24");
	lsc_strv_free(&rt);
	assert_int_equal(lsc_parse_routes(B("{\"routes\": []}"), &rt, err, sizeof(err)), -EINVAL);
	assert_int_equal(lsc_parse_routes(B("{\"routes\": [\"10.1.0.1/24\"]}"), &rt, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "10.1.0.1/24"));
	assert_int_equal(lsc_parse_routes(B("{\"routes\": \"10.0.0.0/8\"}"), &rt, err, sizeof(err)), -EINVAL);

	assert_int_equal(lsc_parse_rotate(B("{\"wg_key\": \"" WG "\"}"), key, err, sizeof(err)), 0);
	assert_string_equal(key, WG);
	assert_int_equal(lsc_parse_rotate(B("{\"wg_key\": \"AAAA\"}"), key, err, sizeof(err)), -EINVAL);
	assert_int_equal(lsc_parse_rotate(B("{}"), key, err, sizeof(err)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_ok),
		cmocka_unit_test(test_register_tokenless),
		cmocka_unit_test(test_register_refused),
		cmocka_unit_test(test_heartbeat),
		cmocka_unit_test(test_network_and_token),
		cmocka_unit_test(test_trust_bodies),
	};
	ls_crypto_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
