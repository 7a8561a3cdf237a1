// SPDX-License-Identifier: MIT
/* userspace/wgu: coalescing decrypted TCP segments into one GSO super-packet
 * for the TUN device, and keeping apart what the kernel's GRO keeps apart. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "userspace/wgu/gro.h"
#include "userspace/wgu/tun.h"

struct written {
	int n;
	struct lsw_vnet_hdr vh[64];
	size_t len[64];
	uint8_t *pkt[64];
};

static int capture(void *ctx, const uint8_t *buf, size_t len)
{
	struct written *w = ctx;

	memcpy(&w->vh[w->n], buf, sizeof(struct lsw_vnet_hdr));
	w->len[w->n] = len - sizeof(struct lsw_vnet_hdr);
	w->pkt[w->n] = malloc(w->len[w->n]);
	memcpy(w->pkt[w->n], buf + sizeof(struct lsw_vnet_hdr), w->len[w->n]);
	w->n++;
	return 0;
}

static void free_written(struct written *w)
{
	for (int i = 0; i < w->n; i++)
		free(w->pkt[i]);
	w->n = 0;
}

static uint8_t arena_buf[1 << 20];

/* A TCP super-packet split into MSS segments, as the sender's engine emits
 * them (and the receiving engine decrypts them). */
static int make_segments(int v6, size_t payload, uint16_t mss, struct lsw_pkt *segs, uint8_t flags)
{
	static uint8_t pkt[65536];
	size_t l3 = v6 ? 40 : 20, len = l3 + 32 + payload;
	struct lsw_vnet_hdr vh = { .flags = 1, .gso_type = v6 ? LSW_VNET_GSO_TCPV6 : LSW_VNET_GSO_TCPV4,
				   .gso_size = mss, .csum_start = (uint16_t)l3, .csum_offset = 16 };
	struct lsw_arena a = { .buf = arena_buf, .cap = sizeof(arena_buf) };

	memset(pkt, 0, l3 + 32);
	if (!v6) {
		pkt[0] = 0x45;
		pkt[2] = (uint8_t)(len >> 8);
		pkt[3] = (uint8_t)len;
		pkt[6] = 0x40;
		pkt[8] = 64;
		pkt[9] = 6;
		inet_pton(AF_INET, "10.0.0.1", pkt + 12);
		inet_pton(AF_INET, "10.0.0.2", pkt + 16);
	} else {
		pkt[0] = 0x60;
		pkt[4] = (uint8_t)((len - 40) >> 8);
		pkt[5] = (uint8_t)(len - 40);
		pkt[6] = 6;
		pkt[7] = 64;
		inet_pton(AF_INET6, "fd00::1", pkt + 8);
		inet_pton(AF_INET6, "fd00::2", pkt + 24);
	}
	pkt[l3 + 1] = 80;
	pkt[l3 + 3] = 99;
	pkt[l3 + 4] = 1; /* seq */
	pkt[l3 + 11] = 7; /* ack */
	pkt[l3 + 12] = 8 << 4; /* 32-byte header: timestamps option */
	pkt[l3 + 13] = flags;
	pkt[l3 + 20] = 1;
	pkt[l3 + 21] = 1;
	pkt[l3 + 22] = 8;
	pkt[l3 + 23] = 10;
	for (size_t i = 0; i < payload; i++)
		pkt[l3 + 32 + i] = (uint8_t)(i * 13);
	return lsw_tun_split(&vh, pkt, len, &a, segs, 128);
}

static void roundtrip(int v6)
{
	struct lsw_pkt segs[128], again[128];
	struct written w = { 0 };
	struct lsw_gro *g = calloc(1, sizeof(*g));
	int n = make_segments(v6, 20000, 1388, segs, 0x18);
	size_t l3 = v6 ? 40 : 20;

	assert_true(n > 10);
	for (int i = 0; i < n; i++)
		assert_int_equal(lsw_gro_add(g, segs[i].data, segs[i].len, capture, &w), 0);
	assert_int_equal(lsw_gro_flush(g, capture, &w), 0);
	/* One super-packet with a GSO header... */
	assert_int_equal(w.n, 1);
	assert_int_equal(w.vh[0].gso_type, v6 ? LSW_VNET_GSO_TCPV6 : LSW_VNET_GSO_TCPV4);
	assert_int_equal(w.vh[0].gso_size, 1388);
	assert_int_equal(w.vh[0].flags, LSW_VNET_F_NEEDS_CSUM);
	assert_int_equal(w.vh[0].csum_start, l3);
	assert_int_equal(w.len[0], l3 + 32 + 20000);
	/* ...that the kernel would cut back into exactly the same segments. */
	static uint8_t a2[1 << 20];
	struct lsw_arena a = { .buf = a2, .cap = sizeof(a2) };
	int m = lsw_tun_split(&w.vh[0], w.pkt[0], w.len[0], &a, again, 128);
	assert_int_equal(m, n);
	for (int i = 0; i < n; i++) {
		assert_int_equal(again[i].len, segs[i].len);
		assert_memory_equal(again[i].data, segs[i].data, segs[i].len);
	}
	free_written(&w);
	free(g);
}

static void test_roundtrip_v4(void **state)
{
	roundtrip(0);
}

static void test_roundtrip_v6(void **state)
{
	roundtrip(1);
}

static void test_kept_apart(void **state)
{
	struct lsw_pkt segs[128];
	struct written w = { 0 };
	struct lsw_gro *g = calloc(1, sizeof(*g));
	int n = make_segments(0, 1388 * 4, 1388, segs, 0x10);
	uint8_t copy[4][2048];

	assert_int_equal(n, 4);
	for (int i = 0; i < 4; i++)
		memcpy(copy[i], segs[i].data, segs[i].len);

	/* A gap in sequence numbers (a lost segment) starts a new packet. */
	lsw_gro_add(g, copy[0], segs[0].len, capture, &w);
	lsw_gro_add(g, copy[2], segs[2].len, capture, &w);
	lsw_gro_flush(g, capture, &w);
	assert_int_equal(w.n, 2);
	free_written(&w);

	/* Another flow (different port) is not merged. */
	memcpy(copy[1], segs[1].data, segs[1].len);
	copy[1][20 + 3] = 100;
	lsw_gro_add(g, copy[0], segs[0].len, capture, &w);
	lsw_gro_add(g, copy[1], segs[1].len, capture, &w);
	lsw_gro_flush(g, capture, &w);
	assert_int_equal(w.n, 2);
	free_written(&w);

	/* Different TCP options (timestamps moved on) are not merged. */
	memcpy(copy[1], segs[1].data, segs[1].len);
	copy[1][20 + 27] = 5;
	lsw_gro_add(g, copy[0], segs[0].len, capture, &w);
	lsw_gro_add(g, copy[1], segs[1].len, capture, &w);
	lsw_gro_flush(g, capture, &w);
	assert_int_equal(w.n, 2);
	free_written(&w);

	/* SYN, FIN, RST never merge; a pure ACK passes alone. */
	memcpy(copy[1], segs[1].data, segs[1].len);
	copy[1][20 + 13] = 0x11;
	lsw_gro_add(g, copy[0], segs[0].len, capture, &w);
	lsw_gro_add(g, copy[1], segs[1].len, capture, &w);
	lsw_gro_flush(g, capture, &w);
	assert_int_equal(w.n, 2);
	assert_int_equal(w.vh[1].gso_type, LSW_VNET_GSO_NONE);
	free_written(&w);

	/* A merged packet after a single one: single packets go out unchanged. */
	memcpy(copy[1], segs[1].data, segs[1].len);
	lsw_gro_add(g, copy[0], segs[0].len, capture, &w);
	lsw_gro_flush(g, capture, &w);
	assert_int_equal(w.n, 1);
	assert_int_equal(w.vh[0].gso_type, LSW_VNET_GSO_NONE);
	assert_int_equal(w.vh[0].flags, LSW_VNET_F_DATA_VALID);
	assert_memory_equal(w.pkt[0], segs[0].data, segs[0].len);
	free_written(&w);

	/* Non-TCP traffic goes straight through. */
	uint8_t udp[28] = { 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17 };
	lsw_gro_add(g, udp, sizeof(udp), capture, &w);
	assert_int_equal(w.n, 1);
	assert_int_equal(w.len[0], 28);
	free_written(&w);
	free(g);
}

/* UDP: a USO super-packet split, coalesced again (allow_udp), split again. */
static void udp_roundtrip(int v6)
{
	static uint8_t pkt[65536], a1[1 << 20], a2[1 << 20];
	struct lsw_pkt segs[128], again[128];
	struct written w = { 0 };
	struct lsw_gro *g = calloc(1, sizeof(*g));
	size_t l3 = v6 ? 40 : 20, payload = 1372 * 10 + 500, len = l3 + 8 + payload;
	struct lsw_vnet_hdr vh = { .flags = 1, .gso_type = LSW_VNET_GSO_UDP_L4, .gso_size = 1372,
				   .csum_start = (uint16_t)l3, .csum_offset = 6 };
	struct lsw_arena a = { .buf = a1, .cap = sizeof(a1) };
	int n, m;

	memset(pkt, 0, l3 + 8);
	if (!v6) {
		pkt[0] = 0x45;
		pkt[2] = (uint8_t)(len >> 8);
		pkt[3] = (uint8_t)len;
		pkt[8] = 64;
		pkt[9] = 17;
		inet_pton(AF_INET, "10.0.0.1", pkt + 12);
		inet_pton(AF_INET, "10.0.0.2", pkt + 16);
	} else {
		pkt[0] = 0x60;
		pkt[4] = (uint8_t)((len - 40) >> 8);
		pkt[5] = (uint8_t)(len - 40);
		pkt[6] = 17;
		pkt[7] = 64;
		inet_pton(AF_INET6, "fd00::1", pkt + 8);
		inet_pton(AF_INET6, "fd00::2", pkt + 24);
	}
	pkt[l3 + 1] = 53;
	pkt[l3 + 3] = 99;
	for (size_t i = 0; i < payload; i++)
		pkt[l3 + 8 + i] = (uint8_t)(i * 31);
	n = lsw_tun_split(&vh, pkt, len, &a, segs, 128);
	assert_int_equal(n, 11);

	/* Without allow_udp every datagram goes out on its own. */
	for (int i = 0; i < n; i++)
		lsw_gro_add(g, segs[i].data, segs[i].len, capture, &w);
	lsw_gro_flush(g, capture, &w);
	assert_int_equal(w.n, n);
	free_written(&w);

	g->allow_udp = true;
	for (int i = 0; i < n; i++)
		lsw_gro_add(g, segs[i].data, segs[i].len, capture, &w);
	lsw_gro_flush(g, capture, &w);
	assert_int_equal(w.n, 1);
	assert_int_equal(w.vh[0].gso_type, LSW_VNET_GSO_UDP_L4);
	assert_int_equal(w.vh[0].gso_size, 1372);
	assert_int_equal(w.vh[0].csum_offset, 6);
	a = (struct lsw_arena){ .buf = a2, .cap = sizeof(a2) };
	m = lsw_tun_split(&w.vh[0], w.pkt[0], w.len[0], &a, again, 128);
	assert_int_equal(m, n);
	for (int i = 0; i < n; i++) {
		assert_int_equal(again[i].len, segs[i].len);
		assert_memory_equal(again[i].data, segs[i].data, segs[i].len);
	}
	free_written(&w);
	free(g);
}

static void test_udp_roundtrip(void **state)
{
	udp_roundtrip(0);
	udp_roundtrip(1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_v4),
		cmocka_unit_test(test_roundtrip_v6),
		cmocka_unit_test(test_kept_apart),
		cmocka_unit_test(test_udp_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
