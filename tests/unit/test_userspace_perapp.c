// SPDX-License-Identifier: MIT
/* Per-app routing rules (perapp.h): the app-routes.json parser, slot allocation and its
 * mark/table/priority ranges, cgroup path checks, add (file only: no kernel state). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "userspace/mnet.h"
#include "userspace/perapp.h"

static int parse(const char *s, struct ls_perapp_set *set, char *err)
{
	return ls_perapp_parse(s, strlen(s), set, err, 256);
}

static void test_parse_ok(void **st)
{
	struct ls_perapp_set set;
	char err[256];

	(void)st;
	assert_int_equal(parse("{\"app_routes\": [{\"cgroup\": \"/sys/fs/cgroup/a\", \"exit\": \"e1\", \"slot\": 3},"
			       " {\"cgroup\": \"/sys/fs/cgroup/b\", \"exit\": \"42\", \"slot\": 0}]}",
			       &set, err),
			 0);
	assert_int_equal(set.n, 2);
	assert_string_equal(set.v[0].cgroup, "/sys/fs/cgroup/a");
	assert_string_equal(set.v[0].exit, "e1");
	assert_int_equal(set.v[0].slot, 3);
	assert_int_equal(set.v[1].slot, 0);
	ls_perapp_set_free(&set);
	assert_int_equal(parse("{}", &set, err), 0);
	assert_int_equal(set.n, 0);
}

static void test_parse_bad(void **st)
{
	static const struct {
		const char *in, *msg;
	} bad[] = {
		{ "[]", "invalid JSON" },
		{ "{\"app_routes\": 1}", "must be an array" },
		{ "{\"app_routes\": [{\"cgroup\": \"rel/x\", \"exit\": \"e\", \"slot\": 0}]}", "absolute path" },
		{ "{\"app_routes\": [{\"cgroup\": \"/a\", \"exit\": \"\", \"slot\": 0}]}", "must name an exit" },
		{ "{\"app_routes\": [{\"cgroup\": \"/a\", \"exit\": \"e\", \"slot\": 100}]}", "slot" },
		{ "{\"app_routes\": [{\"cgroup\": \"/a\", \"exit\": \"e\", \"slot\": -1}]}", "slot" },
		{ "{\"app_routes\": [{\"cgroup\": \"/a\", \"exit\": \"e\"}]}", "slot" },
		{ "{\"app_routes\": [{\"cgroup\": \"/a\", \"exit\": \"e\", \"slot\": 1}, {\"cgroup\": \"/a\", \"exit\": \"f\", \"slot\": 2}]}",
		  "twice" },
		{ "{\"app_routes\": [{\"cgroup\": \"/a\", \"exit\": \"e\", \"slot\": 1}, {\"cgroup\": \"/b\", \"exit\": \"f\", \"slot\": 1}]}",
		  "twice" },
		{ "{\"app_routes\": [", "invalid JSON" },
	};
	struct ls_perapp_set set;
	char err[256];

	(void)st;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(parse(bad[i].in, &set, err), -EINVAL);
		assert_null(set.v);
		assert_int_equal(set.n, 0);
		if (!strstr(err, bad[i].msg))
			fail_msg("input %s: error `%s' lacks `%s'", bad[i].in, err, bad[i].msg);
	}
}

static void test_roundtrip(void **st)
{
	struct ls_perapp_set set, again;
	char err[256], *s;
	json_t *doc;

	(void)st;
	assert_int_equal(parse("{\"app_routes\": [{\"cgroup\": \"/x/y\", \"exit\": \"exit-2\", \"slot\": 7}]}", &set, err), 0);
	doc = ls_perapp_to_json(&set);
	s = json_dumps(doc, 0);
	assert_int_equal(parse(s, &again, err), 0);
	assert_int_equal(again.n, 1);
	assert_string_equal(again.v[0].cgroup, "/x/y");
	assert_string_equal(again.v[0].exit, "exit-2");
	assert_int_equal(again.v[0].slot, 7);
	free(s);
	json_decref(doc);
	ls_perapp_set_free(&set);
	ls_perapp_set_free(&again);
}

static void test_slots(void **st)
{
	int used[LS_PERAPP_MAX];

	(void)st;
	assert_int_equal(ls_perapp_free_slot(NULL, 0), 0);
	used[0] = 0;
	used[1] = 2;
	assert_int_equal(ls_perapp_free_slot(used, 2), 1);
	for (int i = 0; i < LS_PERAPP_MAX; i++)
		used[i] = LS_PERAPP_MAX - 1 - i;
	assert_int_equal(ls_perapp_free_slot(used, LS_PERAPP_MAX), -ENOSPC);
	/* the ranges stay clear of the multi-network slots (mnet.h) and of each other */
	assert_true(ls_perapp_prio(LS_PERAPP_MAX - 1) + 1 < LS_MNET_PRIO_BASE);
	assert_true(ls_perapp_table(0) > LS_MNET_TABLE_BASE + LS_MNET_SLOTS);
	for (int s = 0; s < LS_PERAPP_MAX; s++) {
		assert_int_not_equal(ls_perapp_mark(s) & LS_FWMARK_MASK, LS_FWMARK_BASE);
		assert_int_not_equal(ls_perapp_mark(s), 0);
		if (s)
			assert_int_equal(ls_perapp_prio(s), ls_perapp_prio(s - 1) + 2);
	}
}

static void test_cgroup_path(void **st)
{
	char out[4096], err[512];

	(void)st;
	assert_int_equal(ls_perapp_cgroup_path("/nonexistent-lsux-cgroup", out, sizeof(out), err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "nonexistent-lsux-cgroup"));
	assert_int_equal(ls_perapp_cgroup_path("/tmp", out, sizeof(out), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cgroup v2"));
	assert_int_equal(ls_perapp_cgroup_path("", out, sizeof(out), err, sizeof(err)), -EINVAL);
}

/* add writes the profile's file (slots, changing the exit keeps the slot); needs a
 * cgroup2 hierarchy, skipped without one */
static void test_add_file(void **st)
{
	char root[4096] = "", cg[4200], dir[128], err[512];
	struct ls_profile p;
	struct ls_perapp_set set;
	FILE *f = fopen("/proc/self/mounts", "r");
	char a[256], b[4096], c[64];

	(void)st;
	while (f && fscanf(f, "%255s %4095s %63s %*[^\n]", a, b, c) == 3)
		if (!strcmp(c, "cgroup2") && !root[0])
			snprintf(root, sizeof(root), "%s", b);
	if (f)
		fclose(f);
	if (!root[0] || geteuid() != 0)
		skip();
	snprintf(cg, sizeof(cg), "%s/lsux-unit-%d", root, (int)getpid());
	if (mkdir(cg, 0755))
		skip();
	snprintf(dir, sizeof(dir), "/tmp/lsux-unit-%d", (int)getpid());
	mkdir(dir, 0700);
	assert_int_equal(ls_profile_path(&p, dir, "pa"), 0);
	mkdir(p.dir, 0700);
	assert_int_equal(ls_perapp_add(&p, cg, "e1", err, sizeof(err)), 0);
	assert_int_equal(ls_perapp_load(&p, &set, err, sizeof(err)), 0);
	assert_int_equal(set.n, 1);
	assert_string_equal(set.v[0].cgroup, cg);
	assert_string_equal(set.v[0].exit, "e1");
	{
		int slot = set.v[0].slot;

		ls_perapp_set_free(&set);
		assert_int_equal(ls_perapp_add(&p, cg, "e2", err, sizeof(err)), 0);
		assert_int_equal(ls_perapp_load(&p, &set, err, sizeof(err)), 0);
		assert_int_equal(set.n, 1);
		assert_string_equal(set.v[0].exit, "e2");
		assert_int_equal(set.v[0].slot, slot);
		ls_perapp_set_free(&set);
	}
	assert_int_equal(ls_perapp_add(&p, cg, "none", err, sizeof(err)), -EINVAL);
	assert_int_equal(ls_perapp_add(&p, "/tmp", "e1", err, sizeof(err)), -EINVAL);
	{
		char path[4200];
		struct stat sb;

		ls_profile_file(&p, LS_PERAPP_FILE, path, sizeof(path));
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0600);
		unlink(path);
	}
	rmdir(p.dir);
	rmdir(dir);
	rmdir(cg);
	ls_profile_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),   cmocka_unit_test(test_parse_bad), cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_slots),      cmocka_unit_test(test_cgroup_path),
		cmocka_unit_test(test_add_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
