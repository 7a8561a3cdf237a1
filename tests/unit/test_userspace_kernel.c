// SPDX-License-Identifier: MIT
/* userspace/wg_kernel.c without a kernel WireGuard: a large set request is split into
 * messages that fit, a peer with more allowed IPs than one message holds continues in
 * the next one with its key (flags once), and parsing the messages back yields the
 * device that was asked for. On this host the family is missing: a clear error. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/wireguard.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "userspace/wg.h"

struct msgs {
	struct nlmsghdr *m[256];
	size_t n;
};

static int collect(struct nlmsghdr *nlh, void *arg)
{
	struct msgs *ms = arg;

	assert_true(ms->n < 256);
	assert_true(nlh->nlmsg_len <= LS_WG_MSG_MAX);
	ms->m[ms->n] = malloc(nlh->nlmsg_len);
	memcpy(ms->m[ms->n], nlh, nlh->nlmsg_len);
	ms->n++;
	return 0;
}

/* Counts WGPEER_A_FLAGS with REPLACE_ALLOWEDIPS per peer key (first byte identifies). */
static void count_flags(const struct nlmsghdr *nlh, unsigned int *replace_count, size_t nkeys)
{
	const struct nlattr *a, *p, *x;

	mnl_attr_for_each(a, nlh, sizeof(struct genlmsghdr)) {
		if (mnl_attr_get_type(a) != WGDEVICE_A_PEERS)
			continue;
		mnl_attr_for_each_nested(p, a) {
			int idx = -1;
			uint32_t flags = 0;

			mnl_attr_for_each_nested(x, p) {
				if (mnl_attr_get_type(x) == WGPEER_A_PUBLIC_KEY) {
					const uint8_t *k = mnl_attr_get_payload(x);

					idx = k[0] | (k[1] << 8);
				} else if (mnl_attr_get_type(x) == WGPEER_A_FLAGS) {
					flags = mnl_attr_get_u32(x);
				}
			}
			assert_true(idx >= 0 && (size_t)idx < nkeys);
			if (flags & WGPEER_F_REPLACE_ALLOWEDIPS)
				replace_count[idx]++;
		}
	}
}

static void test_split(void **state)
{
	const size_t n_peers = 3000, big = 1234, big_allowed = 6000;
	struct ls_wg_device dev = { .flags = LS_WGD_PRIVATE_KEY | LS_WGD_LISTEN_PORT | LS_WGD_REPLACE_PEERS,
				    .listen_port = 51820 };
	struct ls_wg_device *got = calloc(1, sizeof(*got));
	unsigned int *replace = calloc(n_peers, sizeof(*replace));
	struct msgs ms = { .n = 0 };
	size_t cap = 0;

	snprintf(dev.ifname, sizeof(dev.ifname), "ls-test");
	ls_wg_genkey(dev.private_key);
	dev.peers = calloc(n_peers, sizeof(*dev.peers));
	dev.n_peers = n_peers;
	for (size_t i = 0; i < n_peers; i++) {
		struct ls_wg_peer *p = &dev.peers[i];
		size_t na = i == big ? big_allowed : 2;

		p->key[0] = (uint8_t)i;
		p->key[1] = (uint8_t)(i >> 8);
		p->key[31] = 0x55;
		p->flags = LS_WGP_REPLACE_ALLOWED | LS_WGP_HAS_ENDPOINT | LS_WGP_HAS_KEEPALIVE;
		p->keepalive = 25;
		ls_endpoint_parse(i % 2 ? "192.0.2.1:51820" : "[2001:db8::1]:51820", &p->endpoint, NULL);
		p->allowed = calloc(na, sizeof(*p->allowed));
		p->n_allowed = na;
		for (size_t j = 0; j < na; j++) {
			struct ls_prefix *a = &p->allowed[j];

			if (j % 2 == 0) {
				a->family = AF_INET;
				a->len = 32;
				a->addr[0] = 10;
				a->addr[1] = (uint8_t)(i >> 8);
				a->addr[2] = (uint8_t)i;
				a->addr[3] = (uint8_t)j;
				if (i == big) {
					a->addr[1] = 200;
					a->addr[2] = (uint8_t)(j >> 8);
				}
			} else {
				a->family = AF_INET6;
				a->len = 128;
				a->addr[0] = 0xfd;
				a->addr[13] = (uint8_t)(j >> 8);
				a->addr[14] = (uint8_t)(i >> 8);
				a->addr[15] = (uint8_t)i;
				a->addr[12] = (uint8_t)j;
			}
		}
	}
	assert_int_equal(ls_wg_kernel_build_set(&dev, 0x20, collect, &ms), 0);
	assert_true(ms.n > 2); /* it had to split */
	for (size_t i = 0; i < ms.n; i++) {
		assert_int_equal(ls_wg_kernel_parse_msg(ms.m[i], got, &cap), 0);
		count_flags(ms.m[i], replace, n_peers);
	}
	/* only the first message carries the device settings */
	assert_true(got->flags & LS_WGD_PRIVATE_KEY);
	assert_memory_equal(got->private_key, dev.private_key, 32);
	assert_int_equal(got->listen_port, 51820);
	assert_int_equal(got->n_peers, n_peers);
	for (size_t i = 0; i < n_peers; i++) {
		struct ls_wg_peer *a = &dev.peers[i], *b = &got->peers[i];

		assert_memory_equal(a->key, b->key, 32);
		assert_int_equal(b->n_allowed, a->n_allowed);
		for (size_t j = 0; j < a->n_allowed; j++)
			assert_true(ls_prefix_equal(&a->allowed[j], &b->allowed[j]));
		assert_int_equal(b->keepalive, 25);
		assert_int_equal(b->endpoint.ss_family, a->endpoint.ss_family);
		/* REPLACE_ALLOWEDIPS exactly once, even for the peer cut across messages */
		assert_int_equal(replace[i], 1);
	}
	for (size_t i = 0; i < ms.n; i++)
		free(ms.m[i]);
	for (size_t i = 0; i < n_peers; i++)
		free(dev.peers[i].allowed);
	free(dev.peers);
	free(replace);
	ls_wg_device_free(got);
}

static void test_unavailable(void **state)
{
	char why[256] = "";

	if (ls_wg_kernel_available(why, sizeof(why)) == 0) {
		skip(); /* this kernel has WireGuard */
		return;
	}
	assert_non_null(strstr(why, "kernel WireGuard is not available"));
	assert_non_null(strstr(why, "--engine userspace"));
	bool created = true;

	assert_true(ls_wg_kernel.create("lsa-k0", &created) < 0);
	assert_false(created);
	assert_false(ls_wg_kernel.exists("lo"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_unavailable),
	};

	ls_crypto_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
