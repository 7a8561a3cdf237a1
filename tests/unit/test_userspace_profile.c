// SPDX-License-Identifier: MIT
/* userspace/profile.c: interface names, profile names, config and key files, errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctlclient.h"
#include "keys.h"
#include "util.h"
#include "netmap.h"
#include "userspace/profile.h"

static void test_ifname(void **state)
{
	char a[IFNAMSIZ], b[IFNAMSIZ];

	ls_profile_ifname("home", a);
	assert_string_equal(a, "ls-home");
	ls_profile_ifname("abcdefghijkl", a); /* 3 + 12 = 15 fits exactly */
	assert_string_equal(a, "ls-abcdefghijkl");
	/* long names get a hash suffix, never a plain truncation */
	ls_profile_ifname("corporate-network-1", a);
	ls_profile_ifname("corporate-network-2", b);
	assert_true(strlen(a) <= IFNAMSIZ - 1);
	assert_true(strncmp(a, "ls-corpor-", 10) == 0);
	assert_string_not_equal(a, b);
	/* and many long names stay distinct */
	for (int i = 0; i < 2000; i++) {
		char n1[64], x[IFNAMSIZ];

		snprintf(n1, sizeof(n1), "some-long-profile-%d", i);
		ls_profile_ifname(n1, x);
		for (int j = i + 1; j < i + 3; j++) {
			char n2[64], y[IFNAMSIZ];

			snprintf(n2, sizeof(n2), "some-long-profile-%d", j);
			ls_profile_ifname(n2, y);
			assert_string_not_equal(x, y);
		}
	}
}

static void test_names(void **state)
{
	static const char *good[] = { "default", "home", "a", "net_2", "x.y-z" };
	static const char *bad[] = { "", ".hidden", "-x", "a/b", "a b", "ä",
				     "0123456789012345678901234567890123456789012345678901234567890123" };

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(ls_profile_name_valid(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (ls_profile_name_valid(bad[i]))
			fail_msg("accepted `%s'", bad[i]);
}

static void write_key(const char *dir, const char *file, const uint8_t *k, size_t n)
{
	char path[PATH_MAX], b64[128];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	ls_b64_encode(b64, sizeof(b64), k, n);
	assert_int_equal(ls_write_file_atomic(path, b64, strlen(b64), 0600), 0);
}

static void test_load_save(void **state)
{
	char tmpl[] = "/tmp/lsa-prof-XXXXXX", err[512] = "", path[PATH_MAX];
	struct ls_profile p, q;
	uint8_t pk[32], sk[64];
	struct ls_netmap *nm = NULL;
	char *dir = mkdtemp(tmpl);
	const char *doc = "{\"version\": 3, \"full\": true, \"network\": {\"id\": \"n\", \"name\": \"home\"},"
			  " \"self\": {\"id\": 1, \"name\": \"me\"}, \"peers\": []}";

	assert_non_null(dir);
	/* a missing profile says what to run */
	assert_int_equal(ls_profile_load(&q, dir, "home", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no profile 'home'"));
	assert_non_null(strstr(err, "lightscale init --profile home"));

	assert_int_equal(ls_profile_path(&p, dir, "home"), 0);
	assert_int_equal(ls_mkdir_p(p.dir, 0700), 0);
	p.control_urls = strdup("http://10.0.0.1:8080,http://10.0.0.2:8080");
	p.hostname = strdup("laptop");
	p.exit_node = strdup("auto");
	p.identity = strdup("oiqsA1apCwls7f4aUwotXxG3qwtI/Z7LILd/8Ppskps=");
	p.tls_pins = strdup("sha256//FdRgws3H8E3ZRv0798WkdAuSUwHvqkQj3dxlLSCgmJs=;sha256//AAAA");
	p.mtu = 1380;
	p.node_id = 42;
	ls_prefix_parse("192.168.1.0/24", &p.routes[0], false);
	p.n_routes = 1;
	ls_wg_genkey(p.wg_priv);
	ls_ed25519_keypair(pk, sk);
	write_key(p.dir, "wg.key", p.wg_priv, 32);
	write_key(p.dir, "machine.key", sk, 64);
	assert_int_equal(ls_profile_save_config(&p), 0);
	ls_profile_file(&p, "config.json", path, sizeof(path));
	{
		struct stat st;

		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	assert_int_equal(ls_profile_load(&q, dir, "home", err, sizeof(err)), 0);
	assert_string_equal(q.control_urls, p.control_urls);
	assert_string_equal(q.hostname, "laptop");
	assert_string_equal(q.exit_node, "auto");
	assert_string_equal(q.identity, p.identity);
	assert_string_equal(q.tls_pins, p.tls_pins);
	assert_string_equal(q.ifname, "ls-home");
	assert_int_equal(q.mtu, 1380);
	assert_int_equal(q.listen_port, 51820);
	assert_int_equal(q.node_id, 42);
	assert_int_equal(q.n_routes, 1);
	assert_memory_equal(q.wg_priv, p.wg_priv, 32);
	assert_memory_equal(q.machine_pk, pk, 32);
	assert_int_equal(q.table, p.table);
	assert_int_equal(q.fwmark, p.fwmark);

	/* the netmap cache round-trips */
	assert_int_equal(ls_profile_load_netmap(&q, &nm, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no cached netmap"));
	assert_int_equal(ls_netmap_parse(doc, strlen(doc), &nm, NULL, 0), 0);
	assert_int_equal(ls_profile_save_netmap(&q, nm), 0);
	ls_netmap_free(nm);
	assert_int_equal(ls_profile_load_netmap(&q, &nm, err, sizeof(err)), 0);
	assert_int_equal(nm->version, 3);
	ls_netmap_free(nm);
	/* a stored identity that is not a key is refused when a client is pinned */
	{
		struct ls_ctl c;

		assert_int_equal(ls_ctl_init(&c, "https://127.0.0.1:1"), 0);
		assert_int_equal(ls_profile_ctl_trust(&q, &c), 0);
		assert_true(c.have_identity);
		assert_string_equal(c.pinned_keys, q.tls_pins);
		free(q.identity);
		q.identity = strdup("notakey");
		assert_int_equal(ls_profile_ctl_trust(&q, &c), -EINVAL);
		ls_ctl_free(&c);
	}
	ls_profile_free(&q);

	/* a corrupt key file is reported, not half-loaded */
	ls_profile_file(&p, "wg.key", path, sizeof(path));
	assert_int_equal(ls_write_file_atomic(path, "nope", 4, 0600), 0);
	assert_int_equal(ls_profile_load(&q, dir, "home", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "wg.key"));
	ls_profile_free(&p);
	{
		char cmd[PATH_MAX + 16];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		assert_int_equal(system(cmd), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ifname),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_load_save),
	};

	ls_crypto_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
