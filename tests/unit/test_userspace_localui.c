// SPDX-License-Identifier: MIT
/* The local UI's documents (localui.h): API parts of a status document, the HTML page
 * (escaping of names that come from the netmap), the loopback-only TCP setting. */
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

#include "userspace/localui.h"

static json_t *doc(void)
{
	return json_pack("{s:s, s:{s:s, s:I, s:[{s:s, s:s, s:[s], s:{s:s}}], s:[{s:s, s:s}], s:n}, s:{s:s}, s:[], s:{s:s}}",
			 "profile", "home", "status", "interface", "ls-home", "table", (json_int_t)52000, "peers", "name",
			 "<script>alert(1)</script>", "endpoint", "[fd99::12]:51820", "addresses", "100.64.0.2", "path",
			 "path", "direct", "routes", "dst", "10.1.0.0/16", "dev", "ls-home", "exit_node", "dns", "suffix",
			 "home.ls.internal", "app_routes", "exit_policy", "auto", "latency");
}

static void test_api(void **st)
{
	json_t *d = doc(), *r;

	(void)st;
	r = ls_localui_api("/api/status", d);
	assert_ptr_equal(r, d);
	json_decref(r);
	r = ls_localui_api("/api/peers", d);
	assert_true(json_is_array(r));
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "endpoint")), "[fd99::12]:51820");
	json_decref(r);
	r = ls_localui_api("/api/routes", d);
	assert_int_equal(json_integer_value(json_object_get(r, "table")), 52000);
	assert_int_equal(json_array_size(json_object_get(r, "routes")), 1);
	json_decref(r);
	r = ls_localui_api("/api/exit-node", d);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "exit_policy"), "auto")), "latency");
	json_decref(r);
	r = ls_localui_api("/api/dns", d);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "dns"), "suffix")), "home.ls.internal");
	json_decref(r);
	assert_null(ls_localui_api("/api/nosuch", d));
	assert_null(ls_localui_api("/api/status/../x", d));
	json_decref(d);
}

static void test_html(void **st)
{
	json_t *d = doc();
	char *h = ls_localui_html(d);

	(void)st;
	assert_non_null(h);
	assert_null(strstr(h, "<script>"));
	assert_non_null(strstr(h, "&lt;script&gt;alert(1)&lt;/script&gt;"));
	assert_non_null(strstr(h, "[fd99::12]:51820"));
	assert_non_null(strstr(h, "<table id=\"peers\">"));
	assert_non_null(strstr(h, "direct"));
	assert_non_null(strstr(h, "10.1.0.0/16"));
	free(h);
	/* without an agent: the error, no status tables */
	json_object_set_new(d, "status", json_null());
	json_object_set_new(d, "error", json_string("no agent answers & <x>"));
	h = ls_localui_html(d);
	assert_non_null(strstr(h, "no agent answers &amp; &lt;x&gt;"));
	assert_null(strstr(h, "<table id=\"peers\">"));
	free(h);
	json_decref(d);
}

static void test_listen(void **st)
{
	char dir[128], out[128], err[256];
	struct ls_profile p;

	(void)st;
	snprintf(dir, sizeof(dir), "/tmp/lsux-ui-%d", (int)getpid());
	mkdir(dir, 0700);
	assert_int_equal(ls_profile_path(&p, dir, "pu"), 0);
	mkdir(p.dir, 0700);
	assert_int_equal(ls_localui_listen(&p, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(ls_localui_set_listen(&p, "10.0.0.1:80", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "loopback"));
	assert_int_equal(ls_localui_set_listen(&p, "[fd00::1]:80", err, sizeof(err)), -EINVAL);
	assert_int_equal(ls_localui_set_listen(&p, "nonsense", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "nonsense"));
	assert_int_equal(ls_localui_set_listen(&p, "127.0.0.1:8765", err, sizeof(err)), 0);
	assert_int_equal(ls_localui_listen(&p, out, sizeof(out)), 0);
	assert_string_equal(out, "127.0.0.1:8765");
	assert_int_equal(ls_localui_set_listen(&p, "[::1]:8765", err, sizeof(err)), 0);
	assert_int_equal(ls_localui_set_listen(&p, "off", err, sizeof(err)), 0);
	assert_int_equal(ls_localui_listen(&p, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	{
		char path[4200];

		ls_profile_file(&p, LS_LOCALUI_FILE, path, sizeof(path));
		unlink(path);
	}
	rmdir(p.dir);
	rmdir(dir);
	ls_profile_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_api),
		cmocka_unit_test(test_html),
		cmocka_unit_test(test_listen),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
