// SPDX-License-Identifier: MIT
/* userspace/wg_uapi.c: the UAPI `get' parser and `set' builder, and a real engine
 * (wireguard-go) configured and read back through them in a private network namespace. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keys.h"
#include "userspace/wg.h"

static const char *hex1 = "0101010101010101010101010101010101010101010101010101010101010101";
static const char *hex2 = "0202020202020202020202020202020202020202020202020202020202020202";

static void test_parse_get(void **state)
{
	char text[2048], err[256] = "";
	struct ls_wg_device *d = NULL;
	char ep[LS_ENDPOINT_STRLEN], pf[LS_PREFIX_STRLEN];

	snprintf(text, sizeof(text),
		 "private_key=%s\nlisten_port=51820\nfwmark=1234\npublic_key=%s\nprotocol_version=1\n"
		 "endpoint=[2001:db8::1]:51821\nlast_handshake_time_sec=1767225600\nlast_handshake_time_nsec=5\n"
		 "tx_bytes=100\nrx_bytes=200\npersistent_keepalive_interval=25\nallowed_ip=10.1.2.0/24\n"
		 "allowed_ip=fd00::/64\nerrno=0\n\n",
		 hex1, hex2);
	assert_int_equal(ls_uapi_parse_get(text, strlen(text), &d, err, sizeof(err)), 0);
	assert_int_equal(d->listen_port, 51820);
	assert_int_equal(d->fwmark, 1234);
	assert_true(d->flags & LS_WGD_PRIVATE_KEY);
	assert_int_equal(d->n_peers, 1);
	assert_int_equal(d->peers[0].key[0], 2);
	assert_int_equal(d->peers[0].last_handshake_sec, 1767225600);
	assert_int_equal(d->peers[0].rx_bytes, 200);
	assert_int_equal(d->peers[0].tx_bytes, 100);
	assert_int_equal(d->peers[0].keepalive, 25);
	assert_int_equal(d->peers[0].n_allowed, 2);
	ls_prefix_format(&d->peers[0].allowed[1], pf);
	assert_string_equal(pf, "fd00::/64");
	ls_endpoint_format((struct sockaddr *)&d->peers[0].endpoint, ep);
	assert_string_equal(ep, "[2001:db8::1]:51821");
	ls_wg_device_free(d);
}

static void test_parse_rejects(void **state)
{
	static const char *bad[] = {
		"listen_port=1\n\n",                            /* no errno */
		"public_key=zz\nerrno=0\n\n",                   /* bad key */
		"garbage\nerrno=0\n\n",                         /* no '=' */
		"errno=22\n\n",                                 /* engine error */
	};
	static const int want[] = { -EBADMSG, -EBADMSG, -EBADMSG, -22 };
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ls_wg_device *d = (void *)1;

		err[0] = '\0';
		assert_int_equal(ls_uapi_parse_get(bad[i], strlen(bad[i]), &d, err, sizeof(err)), want[i]);
		assert_null(d);
		assert_true(err[0] != '\0');
	}
}

static void test_build_set(void **state)
{
	struct ls_wg_peer peers[2] = { 0 };
	struct ls_prefix allowed[2];
	struct ls_wg_device dev = { .flags = LS_WGD_LISTEN_PORT | LS_WGD_FWMARK, .listen_port = 5, .fwmark = 7,
				    .peers = peers, .n_peers = 2 };
	char want[1024];
	size_t len;
	char *s;

	ls_prefix_parse("10.0.0.1/32", &allowed[0], false);
	ls_prefix_parse("::/0", &allowed[1], false);
	memset(peers[0].key, 1, 32);
	peers[0].flags = LS_WGP_REPLACE_ALLOWED | LS_WGP_HAS_ENDPOINT | LS_WGP_HAS_KEEPALIVE | LS_WGP_UPDATE_ONLY;
	ls_endpoint_parse("192.0.2.1:51820", &peers[0].endpoint, NULL);
	peers[0].keepalive = 25;
	peers[0].allowed = allowed;
	peers[0].n_allowed = 2;
	memset(peers[1].key, 2, 32);
	peers[1].flags = LS_WGP_REMOVE;
	s = ls_uapi_build_set(&dev, &len);
	snprintf(want, sizeof(want),
		 "set=1\nlisten_port=5\nfwmark=7\npublic_key=%s\nupdate_only=true\nendpoint=192.0.2.1:51820\n"
		 "persistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=10.0.0.1/32\nallowed_ip=::/0\n"
		 "public_key=%s\nremove=true\n\n",
		 hex1, hex2);
	assert_string_equal(s, want);
	assert_int_equal(len, strlen(want));
	free(s);
}

/* A real engine: wireguard-go in a private network namespace, driven through the
 * userspace engine interface (create, set, get, destroy). */
static void test_engine_wireguard_go(void **state)
{
	struct ls_wg_device dev = { 0 }, *got = NULL;
	struct ls_wg_peer peer = { 0 };
	struct ls_prefix allowed;
	char ifname[IFNAMSIZ];
	bool created = false;

	if (geteuid() != 0 || access("/usr/bin/wireguard-go", X_OK) || unshare(CLONE_NEWNET)) {
		skip();
		return;
	}
	snprintf(ifname, sizeof(ifname), "lsat%d", (int)getpid() % 100000);
	setenv("LIGHTSCALE_WG_USERSPACE", "/usr/bin/wireguard-go", 1);
	assert_int_equal(ls_wg_userspace.create(ifname, &created), 0);
	assert_true(created);
	assert_true(ls_wg_userspace.exists(ifname));
	assert_true(if_nametoindex(ifname) > 0);
	/* adopting it again does not create a second one */
	assert_int_equal(ls_wg_userspace.create(ifname, &created), 0);
	assert_false(created);

	snprintf(dev.ifname, sizeof(dev.ifname), "%s", ifname);
	dev.flags = LS_WGD_PRIVATE_KEY | LS_WGD_LISTEN_PORT | LS_WGD_FWMARK;
	ls_wg_genkey(dev.private_key);
	dev.listen_port = 41000;
	dev.fwmark = 0x4c53;
	ls_prefix_parse("100.64.0.9/32", &allowed, false);
	ls_wg_genkey(peer.key);
	peer.flags = LS_WGP_REPLACE_ALLOWED | LS_WGP_HAS_ENDPOINT;
	ls_endpoint_parse("192.0.2.9:51820", &peer.endpoint, NULL);
	peer.allowed = &allowed;
	peer.n_allowed = 1;
	dev.peers = &peer;
	dev.n_peers = 1;
	assert_int_equal(ls_wg_userspace.set(&dev), 0);
	assert_int_equal(ls_wg_userspace.get(ifname, &got), 0);
	assert_int_equal(got->listen_port, 41000);
	assert_int_equal(got->fwmark, 0x4c53);
	assert_memory_equal(got->private_key, dev.private_key, 32);
	assert_int_equal(got->n_peers, 1);
	assert_memory_equal(got->peers[0].key, peer.key, 32);
	assert_int_equal(got->peers[0].n_allowed, 1);
	assert_true(ls_prefix_equal(&got->peers[0].allowed[0], &allowed));
	ls_wg_device_free(got);

	/* removing the peer */
	peer.flags = LS_WGP_REMOVE;
	dev.flags = 0;
	assert_int_equal(ls_wg_userspace.set(&dev), 0);
	assert_int_equal(ls_wg_userspace.get(ifname, &got), 0);
	assert_int_equal(got->n_peers, 0);
	ls_wg_device_free(got);
	assert_int_equal(ls_wg_userspace.destroy(ifname), 0);
	assert_int_equal(if_nametoindex(ifname), 0);
	assert_false(ls_wg_userspace.exists(ifname));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_get),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_build_set),
		cmocka_unit_test(test_engine_wireguard_go),
	};

	ls_crypto_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
