// SPDX-License-Identifier: MIT
/* L2 segments (l2seg.h): names, VNIs, the profile's file (add/update/remove). */
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

#include "userspace/l2seg.h"
#include "util.h"

static void test_names(void **st)
{
	(void)st;
	assert_true(ls_l2seg_name_valid("lab"));
	assert_true(ls_l2seg_name_valid("a-1"));
	assert_true(ls_l2seg_name_valid("0123456789"));
	assert_false(ls_l2seg_name_valid("01234567890")); /* lsvx- + 11 > IFNAMSIZ */
	assert_false(ls_l2seg_name_valid(""));
	assert_false(ls_l2seg_name_valid(NULL));
	assert_false(ls_l2seg_name_valid("a b"));
	assert_false(ls_l2seg_name_valid("a/b"));
	assert_false(ls_l2seg_name_valid("a.b"));
}

static void test_vni(void **st)
{
	uint32_t a = ls_l2seg_vni("net-1", "lab");

	(void)st;
	assert_true(a >= 1 && a <= 0xffffff);
	assert_int_equal(a, ls_l2seg_vni("net-1", "lab"));      /* every node of a network agrees */
	assert_int_not_equal(a, ls_l2seg_vni("net-2", "lab"));  /* other networks never meet it */
	assert_int_not_equal(a, ls_l2seg_vni("net-1", "lab2"));
	assert_true(ls_l2seg_vni(NULL, "x") >= 1);
}

static void test_file(void **st)
{
	char dir[128], err[512], path[4200], *buf = NULL;
	struct ls_profile p;
	size_t len;
	json_t *doc;

	(void)st;
	snprintf(dir, sizeof(dir), "/tmp/lsux-l2-%d", (int)getpid());
	mkdir(dir, 0700);
	assert_int_equal(ls_profile_path(&p, dir, "pl"), 0);
	mkdir(p.dir, 0700);
	ls_profile_file(&p, LS_L2_FILE, path, sizeof(path));
	assert_int_equal(ls_l2seg_add(&p, "bad name", 0, NULL, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad name"));
	assert_int_equal(ls_l2seg_add(&p, "lab", 0x1000000, NULL, NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(ls_l2seg_add(&p, "lab", 0, NULL, "nosuch-if0", err, sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "nosuch-if0"));
	assert_int_equal(access(path, F_OK), -1); /* nothing written on errors */
	assert_int_equal(ls_l2seg_add(&p, "lab", 0, "n2,n3", "lo", err, sizeof(err)), 0);
	assert_int_equal(ls_l2seg_add(&p, "lab", 77, "n2", NULL, err, sizeof(err)), 0); /* updates */
	assert_int_equal(ls_l2seg_add(&p, "other", 0, NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(ls_read_file(path, &buf, &len, 1 << 20), 0);
	doc = json_loadb(buf, len, 0, NULL);
	free(buf);
	assert_int_equal(json_array_size(json_object_get(doc, "segments")), 2);
	{
		json_t *s = json_array_get(json_object_get(doc, "segments"), 0);

		assert_string_equal(json_string_value(json_object_get(s, "name")), "lab");
		assert_int_equal(json_integer_value(json_object_get(s, "vni")), 77);
		assert_int_equal(json_array_size(json_object_get(s, "peers")), 1);
	}
	json_decref(doc);
	{
		struct stat sb;

		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0600);
	}
	assert_int_equal(ls_l2seg_remove(&p, "nosuch", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "nosuch"));
	/* a damaged file is reported, not overwritten */
	{
		FILE *f = fopen(path, "w");

		fputs("{\"segments\": 5}", f);
		fclose(f);
	}
	assert_int_equal(ls_l2seg_add(&p, "lab", 0, NULL, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, LS_L2_FILE));
	unlink(path);
	rmdir(p.dir);
	rmdir(dir);
	ls_profile_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_vni),
		cmocka_unit_test(test_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
