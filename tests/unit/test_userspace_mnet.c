// SPDX-License-Identifier: MIT
/* The multi-network state: slots, crash reclaim, default route ownership, overlap
 * detection and virtual prefixes (on a private state file, $LIGHTSCALE_MNET_STATE). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "userspace/mnet.h"

static char state_path[128];

static int setup(void **st)
{
	(void)st;
	snprintf(state_path, sizeof(state_path), "/tmp/lsm-mnet-test-%d.json", (int)getpid());
	unlink(state_path);
	setenv("LIGHTSCALE_MNET_STATE", state_path, 1);
	return 0;
}

static int teardown(void **st)
{
	char lock[160];

	(void)st;
	unlink(state_path);
	snprintf(lock, sizeof(lock), "%s.lock", state_path);
	unlink(lock);
	return 0;
}

static void prof_init(struct ls_profile *p, const char *name)
{
	assert_int_equal(ls_profile_path(p, "/tmp/lsm-mnet-nonexistent", name), 0);
}

static struct ls_prefix P(const char *s)
{
	struct ls_prefix p;

	assert_int_equal(ls_prefix_parse(s, &p, false), 0);
	return p;
}

/* A child claims and exits: its entry (no interface) is reclaimed by the next writer. */
static void claim_in_child(const char *name)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct ls_profile p;

		ls_profile_path(&p, "/tmp/lsm-mnet-nonexistent", name);
		_exit(ls_mnet_claim(&p) ? 1 : 0);
	}
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_slots_distinct(void **st)
{
	struct ls_profile a, b, a2;

	(void)st;
	prof_init(&a, "home");
	prof_init(&b, "work");
	assert_int_equal(ls_mnet_claim(&a), 0);
	assert_int_equal(ls_mnet_claim(&b), 0);
	assert_int_not_equal(a.table, b.table);
	assert_int_not_equal(a.rule_prio, b.rule_prio);
	assert_int_not_equal(a.fwmark, b.fwmark);
	assert_int_equal(a.fwmark & LS_FWMARK_MASK, LS_FWMARK_BASE);
	assert_int_equal(b.fwmark & LS_FWMARK_MASK, LS_FWMARK_BASE);
	/* claiming again keeps the slot */
	prof_init(&a2, "home");
	assert_int_equal(ls_mnet_claim(&a2), 0);
	assert_int_equal(a2.table, a.table);
	assert_int_equal(a2.rule_prio, a.rule_prio);
	/* releasing frees it for the next profile */
	assert_int_equal(ls_mnet_release("home"), 0);
	prof_init(&a2, "other");
	assert_int_equal(ls_mnet_claim(&a2), 0);
	assert_int_equal(a2.table, a.table);
}

static void test_dead_entry_reclaimed(void **st)
{
	struct ls_profile a;
	json_t *doc;

	(void)st;
	claim_in_child("ghost");
	/* the child is gone and has no interface: its slot is free again */
	doc = ls_mnet_read();
	assert_null(json_object_get(json_object_get(doc, "profiles"), "ghost"));
	json_decref(doc);
	prof_init(&a, "alive");
	assert_int_equal(ls_mnet_claim(&a), 0);
	assert_int_equal(a.table, LS_MNET_TABLE_BASE);
}

static void test_default_owner(void **st)
{
	struct ls_profile a, b;
	char owner[64];

	(void)st;
	prof_init(&a, "home");
	prof_init(&b, "work");
	ls_mnet_claim(&a);
	ls_mnet_claim(&b);
	assert_true(ls_mnet_default("home", true, owner, sizeof(owner)));
	assert_string_equal(owner, "home");
	/* work wants it too: home keeps it */
	assert_false(ls_mnet_default("work", true, owner, sizeof(owner)));
	assert_string_equal(owner, "home");
	/* exit-node use in work takes it */
	assert_int_equal(ls_mnet_take_default("work", true), 0);
	assert_false(ls_mnet_default("home", true, owner, sizeof(owner)));
	assert_string_equal(owner, "work");
	/* none releases it; home (still wanting it) gets it back */
	assert_int_equal(ls_mnet_take_default("work", false), 0);
	assert_true(ls_mnet_default("home", true, owner, sizeof(owner)));
	/* home no longer wants one: nobody owns it */
	assert_false(ls_mnet_default("home", false, owner, sizeof(owner)));
	assert_string_equal(owner, "");
}

static void test_overlap_mapping(void **st)
{
	struct ls_profile a, b;
	struct ls_mnet_pools pools = { P(LS_MNET_POOL4), P(LS_MNET_POOL6) };
	struct ls_prefix ra[] = { P("192.168.1.0/24"), P("10.1.0.0/16") }, rb[] = { P("192.168.1.0/25"), P("10.2.0.0/16") };
	json_t *ma = NULL, *mb = NULL, *ma2 = NULL;
	struct ls_prefix va, vb;

	(void)st;
	prof_init(&a, "home");
	prof_init(&b, "work");
	ls_mnet_claim(&a);
	ls_mnet_claim(&b);
	assert_int_equal(ls_mnet_publish(&a, ra, 2, &pools, NULL, 0, NULL, 0, &ma), 0);
	assert_int_equal(json_array_size(ma), 0); /* alone: no conflict */
	json_decref(ma);
	assert_int_equal(ls_mnet_publish(&b, rb, 2, &pools, NULL, 0, NULL, 0, &mb), 0);
	assert_int_equal(json_array_size(mb), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(mb, 0), "real")), "192.168.1.0/25");
	assert_string_equal(json_string_value(json_array_get(json_object_get(json_array_get(mb, 0), "conflicts_with"), 0)),
			    "home");
	assert_int_equal(ls_prefix_parse(json_string_value(json_object_get(json_array_get(mb, 0), "virtual")), &vb, false), 0);
	assert_int_equal(vb.len, 25);
	assert_true(ls_prefix_contains(&pools.v4, &vb));
	/* home re-publishes: now it sees work's route, maps its own, to a different prefix */
	assert_int_equal(ls_mnet_publish(&a, ra, 2, &pools, NULL, 0, NULL, 0, &ma), 0);
	assert_int_equal(json_array_size(ma), 1);
	assert_int_equal(ls_prefix_parse(json_string_value(json_object_get(json_array_get(ma, 0), "virtual")), &va, false), 0);
	assert_int_equal(va.len, 24);
	assert_false(ls_prefix_overlap(&va, &vb));
	/* stable: the same answer again */
	assert_int_equal(ls_mnet_publish(&a, ra, 2, &pools, NULL, 0, NULL, 0, &ma2), 0);
	assert_true(json_equal(ma, ma2));
	json_decref(ma);
	json_decref(mb);
	json_decref(ma2);
	/* a manual map of the conflicting prefix replaces the automatic one */
	{
		struct ls_mnet_map man = { P("10.77.1.0/25"), P("192.168.1.0/25") };

		assert_int_equal(ls_mnet_publish(&b, rb, 2, &pools, NULL, 0, &man, 1, &mb), 0);
		assert_int_equal(json_array_size(mb), 1);
		assert_string_equal(json_string_value(json_object_get(json_array_get(mb, 0), "source")), "manual");
		assert_string_equal(json_string_value(json_object_get(json_array_get(mb, 0), "virtual")), "10.77.1.0/25");
		assert_int_equal(json_array_size(json_object_get(json_array_get(mb, 0), "conflicts_with")), 1);
		json_decref(mb);
	}
}

static void test_virtual_deterministic(void **st)
{
	struct ls_prefix pool = P("10.200.0.0/13"), real = P("192.168.1.0/24"), v1, v2, v3, big = P("10.0.0.0/8");

	(void)st;
	assert_int_equal(ls_mnet_virtual("home", &real, &pool, NULL, 0, &v1), 0);
	assert_int_equal(ls_mnet_virtual("home", &real, &pool, NULL, 0, &v2), 0);
	assert_true(ls_prefix_equal(&v1, &v2));
	assert_true(ls_prefix_contains(&pool, &v1));
	/* taken: the next free one */
	assert_int_equal(ls_mnet_virtual("home", &real, &pool, &v1, 1, &v3), 0);
	assert_false(ls_prefix_equal(&v1, &v3));
	assert_true(ls_prefix_contains(&pool, &v3));
	/* larger than the pool: no room */
	assert_int_equal(ls_mnet_virtual("home", &big, &pool, NULL, 0, &v3), -ENOSPC);
	/* IPv6 */
	pool = P(LS_MNET_POOL6);
	real = P("fd00:a8:1::/64");
	assert_int_equal(ls_mnet_virtual("work", &real, &pool, NULL, 0, &v1), 0);
	assert_true(ls_prefix_contains(&pool, &v1));
	assert_int_equal(v1.len, 64);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_slots_distinct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_entry_reclaimed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlap_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtual_deterministic, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
