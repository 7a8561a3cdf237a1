// SPDX-License-Identifier: MIT
/* control/netmap.c: what a delta carries. A snapshot is built in memory as lsc_net_sync
 * leaves it (nodes with rendered peers, the change log tail, audit and control texts). A
 * delta carries self, audit and control only when they changed after the client's
 * version, so every waiter of one peer change gets the same bytes; a version older than
 * the log (or a status change) gets the full map. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/server.h"


#define NNODES 4

struct fixture {
	struct lsc_server s;
	struct lsc_net n;
	struct lsc_node_rec rec[NNODES];
	struct lsc_node_rec *ptr[NNODES];
	struct lsc_change log[16];
};

static void node_init(struct lsc_node_rec *nr, int64_t id)
{
	char buf[160];

	memset(nr, 0, sizeof(*nr));
	nr->id = id;
	snprintf(buf, sizeof(buf), "n%lld", (long long)id);
	nr->name = strdup(buf);
	nr->wg_key = strdup("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=");
	snprintf(buf, sizeof(buf), "100.64.0.%lld", (long long)id);
	nr->addr4 = strdup(buf);
	snprintf(buf, sizeof(buf), "fd00::%lld", (long long)id);
	nr->addr6 = strdup(buf);
	snprintf(nr->status, sizeof(nr->status), "active");
	snprintf(buf, sizeof(buf), "{\"id\":%lld,\"name\":\"n%lld\"}", (long long)id, (long long)id);
	nr->peer_json = strdup(buf);
	nr->peer_len = strlen(buf);
}

/* nodes 1..4 at version 10; the log: node 2 at 8, node 3 at 9, node 4 at 10 */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	size_t i;

	if (!f)
		return -1;
	f->s.cfg.delta_versions = 100;
	f->s.relays_json = strdup("{\"stun\":[],\"turn\":[],\"stream\":[],\"udp\":[]}");
	snprintf(f->n.id, sizeof(f->n.id), "net-1");
	f->n.name = strdup("home");
	f->n.dns_suffix = strdup("home.ls.internal");
	f->n.network_json = strdup("{\"id\":\"net-1\",\"name\":\"home\"}");
	f->n.dns_json = strdup("{\"suffix\":\"home.ls.internal\"}");
	f->n.audit_json = strdup("{\"seq\":5,\"hash\":\"aa\"}");
	f->n.control_json = strdup("{\"identity\":\"x\",\"pins\":[]}");
	for (i = 0; i < NNODES; i++) {
		node_init(&f->rec[i], (int64_t)i + 1);
		f->ptr[i] = &f->rec[i];
	}
	f->n.nodes = f->ptr;
	f->n.n_nodes = NNODES;
	f->log[0] = (struct lsc_change){ 8, 2 };
	f->log[1] = (struct lsc_change){ 9, 3 };
	f->log[2] = (struct lsc_change){ 10, 4 };
	f->n.log = f->log;
	f->n.n_log = 3;
	f->n.log_floor = 5;
	f->n.version = 10;
	f->n.net_version = f->n.dns_version = 1;
	f->n.loaded = true;
	lsc_net_sections_seen(&f->n, 7); /* the first snapshot (at 7) saw both */
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	size_t i;

	for (i = 0; i < NNODES; i++) {
		free(f->rec[i].name);
		free(f->rec[i].wg_key);
		free(f->rec[i].addr4);
		free(f->rec[i].addr6);
		free(f->rec[i].peer_json);
	}
	free(f->s.relays_json);
	free(f->n.name);
	free(f->n.dns_suffix);
	free(f->n.network_json);
	free(f->n.dns_json);
	free(f->n.audit_json);
	free(f->n.control_json);
	f->n.nodes = NULL;
	f->n.log = NULL;
	lsc_nets_free(&f->s); /* frees the section memory (s.nets is empty) */
	free(f);
	return 0;
}

static json_t *build(struct fixture *f, int64_t node, int64_t since, char **text)
{
	size_t len = 0;
	char *body = lsc_netmap_build(&f->s, &f->n, node, since, &len);
	json_t *j;

	assert_non_null(body);
	j = json_loadb(body, len, 0, NULL);
	assert_non_null(j);
	if (text)
		*text = body;
	else
		free(body);
	return j;
}

/* the ids of the delta's peers as "a,b" */
static void peer_ids(json_t *j, char *out, size_t size)
{
	json_t *p;
	size_t i;

	out[0] = '\0';
	json_array_foreach(json_object_get(j, "peers"), i, p)
		snprintf(out + strlen(out), size - strlen(out), "%s%lld", i ? "," : "",
			 (long long)json_integer_value(json_object_get(p, "id")));
}

static void test_peer_change_same_delta_for_all(void **state)
{
	struct fixture *f = *state;
	char *t1, *t2, ids[64];
	json_t *j1 = build(f, 1, 9, &t1), *j2 = build(f, 2, 9, &t2);

	/* node 4 changed at 10: nodes 1 and 2 holding 9 get byte-identical deltas */
	assert_false(json_is_true(json_object_get(j1, "full")));
	assert_string_equal(t1, t2);
	peer_ids(j1, ids, sizeof(ids));
	assert_string_equal(ids, "4");
	assert_null(json_object_get(j1, "self"));
	assert_null(json_object_get(j1, "audit"));
	assert_null(json_object_get(j1, "control"));
	assert_null(json_object_get(j1, "network"));
	assert_null(json_object_get(j1, "dns"));
	assert_null(json_object_get(j1, "relays"));
	json_decref(j1);
	json_decref(j2);
	free(t1);
	free(t2);
}

static void test_self_changed_carries_self(void **state)
{
	struct fixture *f = *state;
	json_t *j4 = build(f, 4, 9, NULL), *j3 = build(f, 3, 8, NULL);
	char ids[64];

	/* node 4 itself changed at 10: its delta has self (and not itself as a peer) */
	assert_string_equal(json_string_value(json_object_get(json_object_get(j4, "self"), "name")), "n4");
	peer_ids(j4, ids, sizeof(ids));
	assert_string_equal(ids, "");
	/* node 3 holding 8: changed at 9, so self; peer 4 */
	assert_non_null(json_object_get(j3, "self"));
	peer_ids(j3, ids, sizeof(ids));
	assert_string_equal(ids, "4");
	json_decref(j4);
	json_decref(j3);
}

static void test_audit_and_control_when_changed(void **state)
{
	struct fixture *f = *state;
	json_t *j;

	/* a registration: node 4 logged at 11 and a new audit head in the same snapshot */
	f->log[3] = (struct lsc_change){ 11, 4 };
	f->n.n_log = 4;
	f->n.version = 11;
	free(f->n.audit_json);
	f->n.audit_json = strdup("{\"seq\":6,\"hash\":\"bb\"}");
	lsc_net_sections_seen(&f->n, 11);
	j = build(f, 1, 10, NULL);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "audit"), "seq")), 6);
	/* control moves with audit (pins change with an audit entry) */
	assert_non_null(json_object_get(j, "control"));
	assert_null(json_object_get(j, "self"));
	json_decref(j);
	/* a client holding 9 missed both changes: both */
	j = build(f, 1, 9, NULL);
	assert_non_null(json_object_get(j, "audit"));
	json_decref(j);

	/* a change at 12 that moves neither: they are left out again */
	f->log[4] = (struct lsc_change){ 12, 3 };
	f->n.n_log = 5;
	f->n.version = 12;
	lsc_net_sections_seen(&f->n, 12);
	j = build(f, 1, 11, NULL);
	assert_null(json_object_get(j, "audit"));
	assert_null(json_object_get(j, "control"));
	json_decref(j);
	/* ... but one holding 10 still gets the head of 11 */
	j = build(f, 1, 10, NULL);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "audit"), "seq")), 6);
	json_decref(j);

	/* control alone (a pin expired) at 13 */
	f->log[5] = (struct lsc_change){ 13, 3 };
	f->n.n_log = 6;
	f->n.version = 13;
	free(f->n.control_json);
	f->n.control_json = strdup("{\"identity\":\"x\",\"pins\":[{\"pin\":\"p\"}]}");
	lsc_net_sections_seen(&f->n, 13);
	j = build(f, 1, 12, NULL);
	assert_null(json_object_get(j, "audit"));
	assert_non_null(json_object_get(json_object_get(j, "control"), "pins"));
	json_decref(j);
}

static void test_full_when_too_old_or_status(void **state)
{
	struct fixture *f = *state;
	json_t *j;
	char ids[64];

	/* older than the log floor, 0 and newer than the snapshot: the full map */
	for (int64_t since = 0; since <= 12; since += 4) {
		if (since == 8)
			continue;
		j = build(f, 1, since == 12 ? 99 : since, NULL);
		assert_true(json_is_true(json_object_get(j, "full")));
		assert_non_null(json_object_get(j, "self"));
		assert_non_null(json_object_get(j, "audit"));
		assert_non_null(json_object_get(j, "control"));
		assert_non_null(json_object_get(j, "network"));
		assert_non_null(json_object_get(j, "relays"));
		peer_ids(j, ids, sizeof(ids));
		assert_string_equal(ids, "2,3,4");
		json_decref(j);
	}
	/* self's status moved after since (approved): full */
	f->rec[0].status_version = 10;
	j = build(f, 1, 9, NULL);
	assert_true(json_is_true(json_object_get(j, "full")));
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_peer_change_same_delta_for_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_self_changed_carries_self, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_and_control_when_changed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_when_too_old_or_status, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
