// SPDX-License-Identifier: MIT
/* Exit selection by latency (exitsel.h): the best exit and its hysteresis, the policy file. */
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

#include "userspace/exitsel.h"

static struct ls_exit_probe P(int64_t id, double rtt)
{
	struct ls_exit_probe p = { .id = id, .rtt_ms = rtt, .sent = 3, .received = rtt < 0 ? 0 : 3 };

	snprintf(p.name, sizeof(p.name), "e%lld", (long long)id);
	return p;
}

static void test_best(void **st)
{
	struct ls_exit_probe v[3] = { P(1, 40.0), P(2, 10.0), P(3, -1) };

	(void)st;
	assert_null(ls_exitsel_best(NULL, 0, 0));
	assert_int_equal(ls_exitsel_best(v, 3, 0)->id, 2);      /* lowest RTT */
	assert_int_equal(ls_exitsel_best(v, 3, 3)->id, 2);      /* the current one does not answer */
	assert_int_equal(ls_exitsel_best(v, 3, 1)->id, 2);      /* 10 < 0.8 * 40 and 30 ms better: move */
	v[1].rtt_ms = 35.0;
	assert_int_equal(ls_exitsel_best(v, 3, 1)->id, 1);      /* 35 vs 40: not 20% better: stay */
	v[0].rtt_ms = 4.0;
	v[1].rtt_ms = 1.0;
	assert_int_equal(ls_exitsel_best(v, 3, 1)->id, 1);      /* 75% better but only 3 ms: stay */
	v[0].rtt_ms = v[1].rtt_ms = -1;
	assert_null(ls_exitsel_best(v, 3, 1));                  /* nobody answers */
}

static void test_policy_file(void **st)
{
	char dir[128], pol[16], path[4200];
	struct ls_profile p;
	struct stat sb;

	(void)st;
	snprintf(dir, sizeof(dir), "/tmp/lsux-exitsel-%d", (int)getpid());
	mkdir(dir, 0700);
	assert_int_equal(ls_profile_path(&p, dir, "px"), 0);
	mkdir(p.dir, 0700);
	assert_int_equal(ls_exitsel_policy(&p, pol, sizeof(pol)), 0);
	assert_string_equal(pol, "first");
	assert_int_equal(ls_exitsel_set_policy(&p, "fastest"), -EINVAL);
	assert_int_equal(ls_exitsel_set_policy(&p, "latency"), 0);
	assert_int_equal(ls_exitsel_policy(&p, pol, sizeof(pol)), 0);
	assert_string_equal(pol, "latency");
	ls_profile_file(&p, LS_EXITSEL_FILE, path, sizeof(path));
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	/* a damaged file means the default */
	{
		FILE *f = fopen(path, "w");

		fputs("{\"auto\": \"sideways\"", f);
		fclose(f);
	}
	assert_int_equal(ls_exitsel_policy(&p, pol, sizeof(pol)), 0);
	assert_string_equal(pol, "first");
	unlink(path);
	rmdir(p.dir);
	rmdir(dir);
	ls_profile_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_best),
		cmocka_unit_test(test_policy_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
