// SPDX-License-Identifier: MIT
/* The lightscale CLI in-process: init creates a profile with the right modes and keeps
 * its keys when run again; bad values are refused with the value quoted; commands on a
 * missing profile say to run init; exit-node use/list and dns export work from a cached
 * netmap; --help for every command. Output is captured through a pipe. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "netmap.h"
#include "util.h"
#include "userspace/cli.h"
#include "userspace/profile.h"

static char dir[64];
static char out[65536], errbuf[65536];

/* Runs `lightscale ARGS...` in-process; stdout and stderr captured. Returns the exit code. */
static int run(const char *first, ...)
{
	char *argv[32];
	int argc = 0, ret, o[2], e[2], so, se;
	va_list ap;
	ssize_t n;

	argv[argc++] = "lightscale";
	va_start(ap, first);
	for (const char *a = first; a && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	assert_int_equal(pipe(o), 0);
	assert_int_equal(pipe(e), 0);
	fcntl(o[0], F_SETPIPE_SZ, 1 << 20);
	fcntl(e[0], F_SETPIPE_SZ, 1 << 20);
	fflush(stdout);
	fflush(stderr);
	so = dup(1);
	se = dup(2);
	dup2(o[1], 1);
	dup2(e[1], 2);
	ret = ls_cli_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	close(o[1]);
	close(e[1]);
	n = read(o[0], out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	n = read(e[0], errbuf, sizeof(errbuf) - 1);
	errbuf[n > 0 ? n : 0] = '\0';
	close(o[0]);
	close(e[0]);
	return ret;
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/lsa-cli-XXXXXX");
	assert_non_null(mkdtemp(dir));
	setenv("LIGHTSCALE_RUN_DIR", dir, 1); /* no agent answers here */
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static void test_init(void **state)
{
	char path[PATH_MAX], key1[128] = "", *k = NULL;
	struct stat st;
	size_t len;

	assert_int_equal(run("init", "--profile", "home", "--state-dir", dir, "--control", "http://10.0.0.1:8080",
			     "--token", "lst_abc", "--hostname", "laptop", "--json", NULL), 0);
	assert_non_null(strstr(out, "\"interface\": \"ls-home\""));
	assert_non_null(strstr(out, "\"created\": true"));
	snprintf(path, sizeof(path), "%s/home", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	static const char *secret[] = { "wg.key", "machine.key", "token", "config.json" };
	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/home/%s", dir, secret[i]);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	snprintf(path, sizeof(path), "%s/home/wg.pub", dir);
	assert_int_equal(ls_read_file(path, &k, &len, 4096), 0);
	snprintf(key1, sizeof(key1), "%s", k);
	free(k);
	/* init again: the keys stay, settings change */
	assert_int_equal(run("init", "--profile", "home", "--state-dir", dir, "--mtu", "1380", NULL), 0);
	assert_int_equal(ls_read_file(path, &k, &len, 4096), 0);
	assert_string_equal(k, key1);
	free(k);
	{
		struct ls_profile p;
		char err[256];

		assert_int_equal(ls_profile_load(&p, dir, "home", err, sizeof(err)), 0);
		assert_int_equal(p.mtu, 1380);
		assert_string_equal(p.control_urls, "http://10.0.0.1:8080");
		ls_profile_free(&p);
	}
	/* --new-keys replaces them */
	assert_int_equal(run("init", "--profile", "home", "--state-dir", dir, "--new-keys", NULL), 0);
	assert_int_equal(ls_read_file(path, &k, &len, 4096), 0);
	assert_string_not_equal(k, key1);
	free(k);
}

static void test_refusals(void **state)
{
	static const struct { const char *args[8]; const char *msg; } cases[] = {
		{ { "init", "--profile", "x", "--control", "ftp://a", "--token", "lst_a" }, "invalid control URL `ftp://a'" },
		{ { "init", "--profile", "x", "--control", "http://a", "--token", "abc" }, "invalid token" },
		{ { "init", "--profile", "x", "--control", "http://a", "--token", "lst_a", }, NULL },
		{ { "init", "--profile", "y", "--mtu", "100" }, "invalid MTU (1280-9000) `100'" },
		{ { "init", "--profile", "y", "--control", "http://a", "--token", "lst_a" }, NULL },
		{ { "init", "--profile", "a/b", "--control", "http://a", "--token", "lst_a" }, "invalid profile name `a/b'" },
		{ { "init", "--profile", "z" }, "a new profile needs --control URL and --token TOKEN" },
		{ { "status", "--profile", "nope" }, "no profile 'nope'" },
		{ { "netmap", "--profile", "nope" }, "run lightscale init --profile nope" },
		{ { "agent", "--profile", "x", "--engine", "fast" }, "invalid engine `fast'" },
		{ { "dns", "export", "--profile", "x", "--format", "xml" }, "invalid format `xml'" },
		{ { "frobnicate" }, "unknown command `frobnicate'" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *const *a = cases[i].args;
		int ret;

		ret = run(a[0], a[1] ? a[1] : "--state-dir", a[1] ? a[2] : dir, a[3] ? a[3] : "--state-dir",
			  a[3] ? a[4] : dir, a[5] ? a[5] : "--state-dir", a[5] ? a[6] : dir, "--state-dir", dir, NULL);
		if (!cases[i].msg) {
			if (ret)
				fail_msg("case %zu failed: %s", i, errbuf);
			continue;
		}
		if (ret == 0)
			fail_msg("case %zu (%s) succeeded", i, a[0]);
		if (!strstr(errbuf, cases[i].msg))
			fail_msg("case %zu: `%s' lacks `%s'", i, errbuf, cases[i].msg);
	}
}

static void test_cached_netmap(void **state)
{
	static const char *doc =
		"{\"version\": 9, \"full\": true,"
		" \"network\": {\"id\": \"n\", \"name\": \"home\", \"ipv4\": \"100.64.0.0/18\", \"dns_suffix\": \"home.ls.internal\"},"
		" \"self\": {\"id\": 1, \"name\": \"me\", \"dns_name\": \"me.home.ls.internal\", \"addresses\": [\"100.64.0.1\"]},"
		" \"peers\": [{\"id\": 2, \"name\": \"gw\", \"dns_name\": \"gw.home.ls.internal\","
		"   \"wg_key\": \"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\", \"addresses\": [\"100.64.0.2\", \"fd00::2\"],"
		"   \"exit_node\": true, \"routes\": [\"0.0.0.0/0\"]},"
		"  {\"id\": 3, \"name\": \"nas\", \"dns_name\": \"nas.home.ls.internal\","
		"   \"wg_key\": \"AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\", \"addresses\": [\"100.64.0.3\"]}],"
		" \"relays\": {\"stun\": [\"192.0.2.1:3478\"]}}";
	char path[PATH_MAX];
	struct ls_profile p;
	char err[256];

	assert_int_equal(run("init", "--profile", "c", "--state-dir", dir, "--control", "http://10.0.0.1:8080",
			     "--token", "lst_abc", NULL), 0);
	snprintf(path, sizeof(path), "%s/c/netmap.json", dir);
	assert_int_equal(ls_write_file_atomic(path, doc, strlen(doc), 0600), 0);

	assert_int_equal(run("dns", "export", "--profile", "c", "--state-dir", dir, NULL), 0);
	assert_non_null(strstr(out, "100.64.0.1\tme.home.ls.internal me\n"));
	assert_non_null(strstr(out, "fd00::2\tgw.home.ls.internal gw\n"));
	assert_non_null(strstr(out, "100.64.0.3\tnas.home.ls.internal nas\n"));
	assert_int_equal(run("dns", "export", "--format", "json", "--profile", "c", "--state-dir", dir, NULL), 0);
	assert_non_null(strstr(out, "\"suffix\": \"home.ls.internal\""));
	assert_non_null(strstr(out, "\"type\": \"AAAA\""));

	assert_int_equal(run("relay", "list", "--json", "--profile", "c", "--state-dir", dir, NULL), 0);
	assert_non_null(strstr(out, "\"192.0.2.1:3478\""));

	assert_int_equal(run("exit-node", "list", "--profile", "c", "--state-dir", dir, NULL), 0);
	assert_non_null(strstr(out, "  2 gw"));
	assert_int_equal(run("exit-node", "use", "nas", "--profile", "c", "--state-dir", dir, NULL), 1);
	assert_non_null(strstr(errbuf, "does not offer"));
	assert_int_equal(run("exit-node", "use", "gw", "--profile", "c", "--state-dir", dir, NULL), 0);
	assert_int_equal(ls_profile_load(&p, dir, "c", err, sizeof(err)), 0);
	assert_string_equal(p.exit_node, "gw");
	ls_profile_free(&p);
	assert_int_equal(run("exit-node", "list", "--json", "--profile", "c", "--state-dir", dir, NULL), 0);
	assert_non_null(strstr(out, "\"selected\": true"));
	assert_int_equal(run("netmap", "--profile", "c", "--state-dir", dir, "--since", "x", NULL), 1);
	assert_non_null(strstr(errbuf, "invalid --since `x'"));
}

static void test_help(void **state)
{
	static const char *cmds[] = { "init", "register", "heartbeat", "netmap", "status", "wg-up", "wg-down",
				      "agent", "dns", "relay", "exit-node", "wg-userspace" };

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		assert_int_equal(run(cmds[i], "--help", NULL), 0);
		if (!strstr(out, "Usage: lightscale ") || strlen(out) < 150)
			fail_msg("%s --help: `%s'", cmds[i], out);
	}
	assert_int_equal(run("--help", NULL), 0);
	assert_non_null(strstr(out, "exit-node"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_cached_netmap),
		cmocka_unit_test(test_help),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
