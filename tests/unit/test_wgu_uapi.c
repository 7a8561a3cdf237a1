// SPDX-License-Identifier: MIT
/* userspace/wgu: the UAPI protocol `wg` speaks (get=1, set=1) and its errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "keys.h"
#include "userspace/wgu/uapi.h"

static int sent;

static int udp_send(void *ctx, const struct lsw_endpoint *ep, const struct iovec *iov, int n, size_t gso)
{
	sent += n;
	return 0;
}

static int tun_write(void *ctx, uint8_t *pkt, size_t len)
{
	return 0;
}

static const struct lsw_device_ops ops = { .udp_send = udp_send, .tun_write = tun_write };

static struct lsw_device dev;
static char priv_hex[65], pub_hex[65], peer1[65], peer2[65], psk_hex[65];

static int setup(void **state)
{
	uint8_t k[32], p[32];

	lsw_dev_init(&dev, &ops, NULL);
	ls_wg_genkey(k);
	ls_key_to_hex(priv_hex, k);
	ls_wg_pubkey(p, k);
	ls_key_to_hex(pub_hex, p);
	ls_wg_genkey(k);
	ls_wg_pubkey(p, k);
	ls_key_to_hex(peer1, p);
	ls_wg_genkey(k);
	ls_wg_pubkey(p, k);
	ls_key_to_hex(peer2, p);
	ls_wg_genkey(k);
	ls_key_to_hex(psk_hex, k);
	return 0;
}

static int teardown(void **state)
{
	lsw_dev_destroy(&dev);
	return 0;
}

/* Sends "req" (lines without the closing blank line); returns the answer. */
static char *req(const char *fmt, ...)
{
	static struct lsw_buf out;
	char buf[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	lsw_buf_free(&out);
	lsw_uapi_request(&dev, buf, strlen(buf), &out);
	return out.s;
}

static void test_set_and_get(void **state)
{
	char *r;

	r = req("set=1\nprivate_key=%s\nlisten_port=51820\nfwmark=4660\n"
		"public_key=%s\npreshared_key=%s\nendpoint=192.0.2.1:51820\npersistent_keepalive_interval=25\n"
		"replace_allowed_ips=true\nallowed_ip=10.0.0.0/24\nallowed_ip=fd00::1/128\n"
		"public_key=%s\nendpoint=[2001:db8::1]:443\nallowed_ip=10.1.0.7/32\nprotocol_version=1\n",
		priv_hex, peer1, psk_hex, peer2);
	assert_string_equal(r, "errno=0\n\n");
	r = req("get=1\n");
	char want[4096];
	snprintf(want, sizeof(want),
		 "private_key=%s\nlisten_port=51820\nfwmark=4660\n"
		 "public_key=%s\npreshared_key=%s\nprotocol_version=1\nendpoint=192.0.2.1:51820\n"
		 "last_handshake_time_sec=0\nlast_handshake_time_nsec=0\n",
		 priv_hex, peer1, psk_hex);
	assert_non_null(strstr(r, want));
	assert_non_null(strstr(r, "persistent_keepalive_interval=25\nallowed_ip=10.0.0.0/24\nallowed_ip=fd00::1/128\n"));
	snprintf(want, sizeof(want), "public_key=%s\nprotocol_version=1\nendpoint=[2001:db8::1]:443\n", peer2);
	assert_non_null(strstr(r, want));
	assert_non_null(strstr(r, "allowed_ip=10.1.0.7/32\nerrno=0\n\n"));
	/* Turning persistent keepalive on with an endpoint sends one at once. */
	assert_true(sent >= 1);
	assert_int_equal(dev.npeers, 2);
	assert_true(dev.id.has_key);
}

static void test_bad_input_changes_nothing(void **state)
{
	char *r;

	req("set=1\nreplace_peers=true\npublic_key=%s\nallowed_ip=10.0.0.0/24\n", peer1);
	assert_int_equal(dev.npeers, 1);
	/* The bad line comes after good ones: nothing is applied. */
	r = req("set=1\nreplace_peers=true\npublic_key=%s\nallowed_ip=10.9.9.0/24\nallowed_ip=10.0.0.0/33\n", peer2);
	assert_string_equal(r, "errno=-22\n\n");
	assert_int_equal(dev.npeers, 1);
	assert_non_null(lsw_dev_find_peer(&dev, dev.peers->pub));
	r = req("get=1\n");
	assert_null(strstr(r, "10.9.9.0"));
	/* Each kind of bad value. */
	const char *bad[] = {
		"set=1\nprivate_key=zz\n",
		"set=1\nprivate_key=%s00\n",
		"set=1\nlisten_port=65536\n",
		"set=1\nlisten_port=-1\n",
		"set=1\nlisten_port=\n",
		"set=1\nfwmark=0x10\n",
		"set=1\nbogus=1\n",
		"set=1\nendpoint=1.2.3.4:5\n",     /* a peer key before public_key */
		"set=1\npublic_key=%s\nendpoint=1.2.3.4\n",
		"set=1\npublic_key=%s\nendpoint=1.2.3.4:99999\n",
		"set=1\npublic_key=%s\nendpoint=[::1:5\n",
		"set=1\npublic_key=%s\nendpoint=::1:5\n",
		"set=1\npublic_key=%s\nallowed_ip=10.0.0.300/8\n",
		"set=1\npublic_key=%s\nallowed_ip=fd00::/129\n",
		"set=1\npublic_key=%s\nallowed_ip=10.0.0.0/\n",
		"set=1\npublic_key=%s\npersistent_keepalive_interval=65536\n",
		"set=1\npublic_key=%s\nremove=false\n",
		"set=1\npublic_key=%s\nunknown=1\n",
		"set=1\npublic_key=%s\nprotocol_version=2\n",
		"set=1\nno equals sign\n",
		"set=1\n\n",
		"get=2\n",
		"get=1\nextra=1\n",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = req(bad[i], peer2);
		assert_true(strncmp(r, "errno=0\n", 8) != 0);
		assert_int_equal(dev.npeers, 1);
	}
	r = req("set=1\npublic_key=%s\nprotocol_version=2\n", peer2);
	assert_string_equal(r, "errno=-93\n\n"); /* EPROTONOSUPPORT */
}

static void test_peer_operations(void **state)
{
	char *r;

	r = req("set=1\nreplace_peers=true\npublic_key=%s\nallowed_ip=10.0.0.0/24\npublic_key=%s\nallowed_ip=10.0.1.0/24\n",
		peer1, peer2);
	assert_string_equal(r, "errno=0\n\n");
	assert_int_equal(dev.npeers, 2);
	/* remove */
	r = req("set=1\npublic_key=%s\nremove=true\n", peer1);
	assert_string_equal(r, "errno=0\n\n");
	assert_int_equal(dev.npeers, 1);
	assert_int_equal(dev.aip.count, 1);
	/* update_only on an unknown peer does not create it... */
	r = req("set=1\npublic_key=%s\nupdate_only=true\nallowed_ip=10.5.0.0/16\n", peer1);
	assert_string_equal(r, "errno=0\n\n");
	assert_int_equal(dev.npeers, 1);
	assert_int_equal(dev.aip.count, 1);
	/* ...and on a known one it updates it. */
	r = req("set=1\npublic_key=%s\nupdate_only=true\nallowed_ip=10.5.0.0/16\n", peer2);
	assert_int_equal(dev.aip.count, 2);
	/* replace_allowed_ips */
	r = req("set=1\npublic_key=%s\nreplace_allowed_ips=true\nallowed_ip=10.6.0.0/16\n", peer2);
	assert_int_equal(dev.aip.count, 1);
	r = req("get=1\n");
	assert_non_null(strstr(r, "allowed_ip=10.6.0.0/16\n"));
	assert_null(strstr(r, "10.0.1.0"));
	/* An all-zero preshared key removes it; a zero private key removes ours. */
	r = req("set=1\npublic_key=%s\npreshared_key=%s\n", peer2, psk_hex);
	assert_non_null(strstr(req("get=1\n"), "preshared_key="));
	r = req("set=1\npublic_key=%s\npreshared_key=%064d\n", peer2, 0);
	assert_null(strstr(req("get=1\n"), "preshared_key="));
	r = req("set=1\nprivate_key=%064d\n", 0);
	assert_string_equal(r, "errno=0\n\n");
	assert_false(dev.id.has_key);
	assert_null(strstr(req("get=1\n"), "private_key="));
	/* fwmark=0 removes the mark. */
	req("set=1\nfwmark=7\n");
	assert_non_null(strstr(req("get=1\n"), "fwmark=7\n"));
	req("set=1\nfwmark=0\n");
	assert_null(strstr(req("get=1\n"), "fwmark="));
	/* Our own public key is never a peer. */
	req("set=1\nprivate_key=%s\npublic_key=%s\n", priv_hex, pub_hex);
	assert_int_equal(dev.npeers, 1);
}

/* An overlong line is refused; a large configuration (wg setconf of many
 * peers) goes through in one request. */
static void test_sizes(void **state)
{
	static char big[600000];
	char line[800];
	size_t off = 0;
	char *r;

	memset(line, 'a', sizeof(line) - 1);
	line[sizeof(line) - 1] = 0;
	req("set=1\nreplace_peers=true\n");
	r = req("set=1\npublic_key=%s\nendpoint=%s\n", peer1, line);
	assert_string_equal(r, "errno=-22\n\n");
	assert_int_equal(dev.npeers, 0);

	off += (size_t)snprintf(big + off, sizeof(big) - off, "set=1\nreplace_peers=true\n");
	for (int i = 0; i < 1000; i++) {
		uint8_t k[32], p[32];
		char hex[65];

		ls_wg_genkey(k);
		ls_wg_pubkey(p, k);
		ls_key_to_hex(hex, p);
		off += (size_t)snprintf(big + off, sizeof(big) - off,
					"public_key=%s\nendpoint=192.0.2.%d:%d\nallowed_ip=10.%d.%d.0/24\nallowed_ip=fd00:%x::/64\n",
					hex, i % 250 + 1, 1000 + i, i / 256, i % 256, i);
	}
	struct lsw_buf out = { 0 };
	assert_int_equal(lsw_uapi_request(&dev, big, off, &out), 0);
	lsw_buf_free(&out);
	assert_int_equal(dev.npeers, 1000);
	assert_int_equal(dev.aip.count, 2000);
	r = req("get=1\n");
	assert_non_null(strstr(r, "allowed_ip=10.3.231.0/24\n"));
	assert_non_null(strstr(r, "errno=0\n\n"));
	req("set=1\nreplace_peers=true\n");
	assert_int_equal(dev.npeers, 0);
	assert_int_equal(dev.aip.count, 0);
}

static void test_endpoint_parse_format(void **state)
{
	static const char *good[] = { "192.0.2.1:51820", "[2001:db8::1]:443", "[fe80::1%1]:9", "0.0.0.0:0" };
	static const char *badv[] = { "", ":", "1.2.3.4", "1.2.3.4:", "1.2.3.4:x", "[::1]", "[::1]:", "::1:80",
				      "1.2.3:80", "[1.2.3.4]:80", "host.example:80", "1.2.3.4:+80" };
	struct lsw_endpoint ep;
	char buf[80];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(lsw_parse_endpoint(good[i], &ep), 0);
		lsw_format_endpoint(&ep, buf, sizeof(buf));
		assert_string_equal(buf, good[i]);
	}
	for (size_t i = 0; i < sizeof(badv) / sizeof(badv[0]); i++)
		assert_int_equal(lsw_parse_endpoint(badv[i], &ep), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_and_get),
		cmocka_unit_test(test_bad_input_changes_nothing),
		cmocka_unit_test(test_peer_operations),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_endpoint_parse_format),
	};

	ls_crypto_init();
	return cmocka_run_group_tests(tests, setup, teardown);
}
