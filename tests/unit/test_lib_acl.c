// SPDX-License-Identifier: MIT
/* lib/acl: policy validation, evaluation, visibility and per-node filter compilation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "util.h"

struct fixture {
	struct ls_prefix addrs[4][2];
	struct ls_prefix route;
	struct ls_acl_node nodes[4];
};

#define B(s) (s), strlen(s)

static const char *const tags_web[] = { "web" };
static const char *const tags_db[] = { "db", "prod" };
static const char *const tags_router[] = { "router" };

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	static const char *names[] = { "laptop", "web1", "db1", "gw" };

	for (int i = 0; i < 4; i++) {
		char a[64];

		snprintf(a, sizeof(a), "100.64.0.%d", i + 1);
		ls_prefix_parse(a, &f->addrs[i][0], false);
		snprintf(a, sizeof(a), "fd00::%d", i + 1);
		ls_prefix_parse(a, &f->addrs[i][1], false);
		f->nodes[i].id = i + 1;
		f->nodes[i].name = names[i];
		f->nodes[i].addrs = f->addrs[i];
		f->nodes[i].n_addrs = 2;
	}
	f->nodes[1].tags = tags_web;
	f->nodes[1].n_tags = 1;
	f->nodes[2].tags = tags_db;
	f->nodes[2].n_tags = 2;
	f->nodes[3].tags = tags_router;
	f->nodes[3].n_tags = 1;
	ls_prefix_parse("192.168.1.0/24", &f->route, false);
	f->nodes[3].routes = &f->route;
	f->nodes[3].n_routes = 1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

static struct ls_acl_policy *parse_ok(const char *json)
{
	struct ls_acl_policy *p = NULL;
	char err[256] = "";

	if (ls_acl_parse(json, strlen(json), &p, err, sizeof(err)))
		fail_msg("policy refused: %s", err);
	return p;
}

static const char *policy =
	"{\"groups\": {\"admins\": [\"laptop\"]},"
	" \"rules\": ["
	"  {\"src\": [\"group:admins\"], \"dst\": [\"*\"]},"
	"  {\"src\": [\"tag:web\"], \"dst\": [\"tag:db\"], \"ports\": [\"5432\"], \"proto\": \"tcp\"},"
	"  {\"src\": [\"100.64.0.0/10\"], \"dst\": [\"tag:web\"], \"ports\": [\"80\", \"8000-8100\"], \"proto\": \"tcp\"},"
	"  {\"src\": [\"tag:web\"], \"dst\": [\"192.168.1.0/25\"], \"proto\": \"icmp\"}"
	" ]}";

static void test_allows(void **state)
{
	struct fixture *f = *state;
	struct ls_acl_node *laptop = &f->nodes[0], *web = &f->nodes[1], *db = &f->nodes[2], *gw = &f->nodes[3];
	struct ls_acl_policy *p = parse_ok(policy);
	struct ls_prefix lan_host, lan_high;
	int idx;

	assert_true(ls_acl_allows(p, laptop, db, NULL, 22, LS_ACL_PROTO_TCP, &idx));
	assert_int_equal(idx, 0);
	assert_true(ls_acl_allows(p, web, db, NULL, 5432, LS_ACL_PROTO_TCP, &idx));
	assert_int_equal(idx, 1);
	assert_false(ls_acl_allows(p, web, db, NULL, 5432, LS_ACL_PROTO_UDP, &idx));
	assert_false(ls_acl_allows(p, web, db, NULL, 22, LS_ACL_PROTO_TCP, &idx));
	assert_false(ls_acl_allows(p, db, web, NULL, 22, LS_ACL_PROTO_TCP, NULL));
	assert_true(ls_acl_allows(p, db, web, NULL, 8050, LS_ACL_PROTO_TCP, &idx));
	assert_int_equal(idx, 2);
	assert_false(ls_acl_allows(p, db, web, NULL, 8101, LS_ACL_PROTO_TCP, NULL));
	ls_prefix_parse("192.168.1.7", &lan_host, false);
	ls_prefix_parse("192.168.1.200", &lan_high, false);
	assert_true(ls_acl_allows(p, web, gw, &lan_host, 0, LS_ACL_PROTO_ICMP, &idx));
	assert_int_equal(idx, 3);
	assert_false(ls_acl_allows(p, web, gw, &lan_high, 0, LS_ACL_PROTO_ICMP, NULL));
	/* no policy: allow all */
	assert_true(ls_acl_allows(NULL, db, laptop, NULL, 1, LS_ACL_PROTO_UDP, &idx));
	assert_int_equal(idx, -1);
	ls_acl_policy_free(p);
}

static void test_empty_policy_denies(void **state)
{
	struct fixture *f = *state;
	struct ls_acl_policy *p = parse_ok("{\"rules\": []}");

	assert_false(ls_acl_allows(p, &f->nodes[0], &f->nodes[1], NULL, 22, LS_ACL_PROTO_TCP, NULL));
	assert_false(ls_acl_visible(p, &f->nodes[0], &f->nodes[1]));
	ls_acl_policy_free(p);
	p = parse_ok("{\"rules\": [], \"visibility\": \"all\"}");
	assert_true(ls_acl_visible(p, &f->nodes[0], &f->nodes[1]));
	ls_acl_policy_free(p);
}

static void test_visibility_symmetric(void **state)
{
	struct fixture *f = *state;
	struct ls_acl_policy *p = parse_ok("{\"rules\": [{\"src\": [\"tag:web\"], \"dst\": [\"tag:db\"],"
					   " \"ports\": [\"5432\"], \"proto\": \"tcp\"}]}");

	assert_true(ls_acl_visible(p, &f->nodes[1], &f->nodes[2]));
	assert_true(ls_acl_visible(p, &f->nodes[2], &f->nodes[1])); /* db must answer web */
	assert_false(ls_acl_visible(p, &f->nodes[0], &f->nodes[2]));
	assert_false(ls_acl_visible(p, &f->nodes[2], &f->nodes[3]));
	ls_acl_policy_free(p);
}

static void test_compile_filter(void **state)
{
	struct fixture *f = *state;
	struct ls_acl_policy *p = parse_ok(policy);
	json_t *filter;
	char *s;

	/* db1 is reached by rule 0 (admins -> *) and rule 1 (web -> db:5432) only */
	filter = ls_acl_compile_filter(p, &f->nodes[2], f->nodes, 4);
	s = json_dumps(filter, JSON_COMPACT);
	assert_string_equal(s,
		"[{\"src\":[\"100.64.0.1/32\",\"fd00::1/128\"],\"dst\":[\"100.64.0.3/32\",\"fd00::3/128\"],"
		"\"ports\":[],\"proto\":\"any\",\"rule\":0},"
		"{\"src\":[\"100.64.0.2/32\",\"fd00::2/128\"],\"dst\":[\"100.64.0.3/32\",\"fd00::3/128\"],"
		"\"ports\":[\"5432\"],\"proto\":\"tcp\",\"rule\":1}]");
	free(s);
	json_decref(filter);

	/* gw: rule 0, and rule 3 narrowed to the /25 inside its route */
	filter = ls_acl_compile_filter(p, &f->nodes[3], f->nodes, 4);
	s = json_dumps(json_array_get(filter, 1), JSON_COMPACT);
	assert_string_equal(s, "{\"src\":[\"100.64.0.2/32\",\"fd00::2/128\"],\"dst\":[\"192.168.1.0/25\"],"
			       "\"ports\":[],\"proto\":\"icmp\",\"rule\":3}");
	free(s);
	assert_int_equal(json_array_size(filter), 2);
	json_decref(filter);

	/* no policy: everything to self */
	filter = ls_acl_compile_filter(NULL, &f->nodes[3], f->nodes, 4);
	s = json_dumps(filter, JSON_COMPACT);
	assert_string_equal(s, "[{\"src\":[\"0.0.0.0/0\",\"::/0\"],\"dst\":[\"100.64.0.4/32\",\"fd00::4/128\","
			       "\"192.168.1.0/24\"],\"ports\":[],\"proto\":\"any\"}]");
	free(s);
	json_decref(filter);
	ls_acl_policy_free(p);
}

static void test_validation_errors(void **state)
{
	static const struct { const char *json, *err; } cases[] = {
		{ "[]", "policy: must be a JSON object" },
		{ "{\"rules\": [}", "policy: invalid JSON" },
		{ "{}", "rules: must be an array" },
		{ "{\"rules\": [], \"extra\": 1}", "extra: unknown field" },
		{ "{\"rules\": [5]}", "rules[0]: must be an object" },
		{ "{\"rules\": [{\"src\": [\"*\"]}]}", "rules[0].dst: must be a non-empty array" },
		{ "{\"rules\": [{\"src\": [], \"dst\": [\"*\"]}]}", "rules[0].src: must be a non-empty array" },
		{ "{\"rules\": [{\"src\": [\"*\"], \"dst\": [\"*\"]}, {\"src\": [\"*\"], \"dst\": [\"*\"],"
		  " \"ports\": [\"70000\"], \"proto\": \"tcp\"}]}",
		  "rules[1].ports[0]: `70000' is not a port or range" },
		{ "{\"rules\": [{\"src\": [\"*\"], \"dst\": [\"*\"], \"ports\": [\"90-80\"], \"proto\": \"tcp\"}]}",
		  "rules[0].ports[0]: `90-80' is not a port or range" },
		{ "{\"rules\": [{\"src\": [\"*\"], \"dst\": [\"*\"], \"ports\": [\"22\"]}]}",
		  "rules[0].ports: ports need \"proto\"" },
		{ "{\"rules\": [{\"src\": [\"*\"], \"dst\": [\"*\"], \"proto\": \"sctp\"}]}", "rules[0].proto: must be one of" },
		{ "{\"rules\": [{\"src\": [\"group:nope\"], \"dst\": [\"*\"]}]}",
		  "rules[0].src[0]: `group:nope': no such group" },
		{ "{\"rules\": [{\"src\": [\"10.0.0.1/8\"], \"dst\": [\"*\"]}]}",
		  "rules[0].src[0]: `10.0.0.1/8' is not a valid CIDR prefix" },
		{ "{\"rules\": [{\"src\": [\"tag:Bad Name\"], \"dst\": [\"*\"]}]}",
		  "rules[0].src[0]: `tag:Bad Name' is not a valid name" },
		{ "{\"rules\": [{\"src\": [\"x'; DROP TABLE nodes;--\"], \"dst\": [\"*\"]}]}",
		  "rules[0].src[0]: `x'; DROP TABLE nodes;--' is not a valid name" },
		{ "{\"rules\": [{\"src\": [\"*\"], \"dst\": [\"*\"], \"bogus\": 1}]}", "rules[0].bogus: unknown field" },
		{ "{\"groups\": {\"a\": [\"group:b\"]}, \"rules\": []}", "groups.a[0]: `group:b': groups cannot contain" },
		{ "{\"rules\": [], \"visibility\": \"some\"}", "visibility: must be" },
		{ "{\"rules\": [{\"src\": [\"*\"], \"dst\": [\"*\"], \"src\": [\"*\"]}]}", "policy: invalid JSON" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct ls_acl_policy *p = (void *)0x1;
		char err[256] = "";

		if (ls_acl_parse(cases[i].json, strlen(cases[i].json), &p, err, sizeof(err)) != -EINVAL)
			fail_msg("case %zu accepted: %s", i, cases[i].json);
		assert_ptr_equal(p, (void *)0x1); /* nothing handed out */
		if (strncmp(err, cases[i].err, strlen(cases[i].err)))
			fail_msg("case %zu: error `%s', expected it to start with `%s'", i, err, cases[i].err);
	}
}

static void test_auto_approve(void **state)
{
	struct fixture *f = *state;
	struct ls_acl_policy *p = parse_ok(
		"{\"groups\": {\"gws\": [\"tag:router\"]}, \"rules\": [],"
		" \"auto_approve\": {\"routes\": {\"192.168.0.0/16\": [\"group:gws\"], \"10.0.0.0/8\": [\"host:laptop\"]},"
		" \"exit_node\": [\"tag:router\"]}}");
	struct ls_prefix r24, r8, def, other, wide;
	struct ls_acl_policy *bad = NULL;
	char err[256] = "";

	ls_prefix_parse("192.168.1.0/24", &r24, false);
	ls_prefix_parse("10.1.0.0/16", &r8, false);
	ls_prefix_parse("0.0.0.0/0", &def, false);
	ls_prefix_parse("172.16.0.0/12", &other, false);
	ls_prefix_parse("192.0.0.0/8", &wide, false);
	assert_true(ls_acl_auto_approves(p, &f->nodes[3], &r24));   /* router, inside */
	assert_false(ls_acl_auto_approves(p, &f->nodes[1], &r24));  /* web: not named */
	assert_false(ls_acl_auto_approves(p, &f->nodes[3], &wide)); /* wider than the rule */
	assert_false(ls_acl_auto_approves(p, &f->nodes[3], &other));
	assert_true(ls_acl_auto_approves(p, &f->nodes[0], &r8));    /* host:laptop */
	assert_true(ls_acl_auto_approves(p, &f->nodes[3], &def));   /* exit by tag */
	assert_false(ls_acl_auto_approves(p, &f->nodes[0], &def));  /* no exit for laptop */
	assert_false(ls_acl_auto_approves(NULL, &f->nodes[3], &r24));
	ls_acl_policy_free(p);
	assert_int_equal(ls_acl_parse(B("{\"rules\": [], \"auto_approve\": {\"routes\": {\"10.0.0.1/8\": [\"*\"]}}}"),
				      &bad, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "auto_approve.routes.10.0.0.1/8"));
	assert_int_equal(ls_acl_parse(B("{\"rules\": [], \"auto_approve\": {\"exit\": [\"*\"]}}"), &bad, err,
				      sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "auto_approve.exit: unknown field"));
	assert_int_equal(ls_acl_parse(B("{\"rules\": [], \"auto_approve\": {\"exit_node\": [\"group:nope\"]}}"), &bad,
				      err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "auto_approve.exit_node[0]"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_allows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_policy_denies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_visibility_symmetric, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compile_filter, setup, teardown),
		cmocka_unit_test(test_validation_errors),
		cmocka_unit_test_setup_teardown(test_auto_approve, setup, teardown),
	};

	return cmocka_run_group_tests_name("lib_acl", tests, NULL, NULL);
}
