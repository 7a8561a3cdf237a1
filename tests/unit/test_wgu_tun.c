// SPDX-License-Identifier: MIT
/* userspace/wgu: splitting TSO/USO super-packets from the TUN device into
 * MTU-sized packets with complete checksums, and rejecting malformed ones. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "userspace/wgu/tun.h"

static uint8_t arena_buf[1 << 20];
static struct lsw_arena arena;
static struct lsw_pkt segs[128];

/* A plain 16-bit one's-complement sum, written independently of lsw_csum. */
static uint16_t ref_sum(const uint8_t *p, size_t len, uint32_t s)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* True when the L4 checksum of the packet verifies (sum including it is 0xffff). */
static int l4_ok(const uint8_t *p, size_t len, int v6, size_t l3, uint8_t proto)
{
	uint32_t s = 0;
	size_t l4 = len - l3;

	if (!v6)
		s = ref_sum(p + 12, 8, 0);
	else
		s = ref_sum(p + 8, 32, 0);
	s += proto + (uint32_t)l4;
	return ref_sum(p + l3, l4, s) == 0xffff;
}

/* IPv4 or IPv6 + TCP (20-byte header) or UDP with payload bytes of pattern. */
static size_t build(uint8_t *p, int v6, int tcp, size_t payload, uint8_t tcp_flags)
{
	size_t l3 = v6 ? 40 : 20, l4 = tcp ? 20 : 8, len = l3 + l4 + payload;

	memset(p, 0, l3 + l4);
	if (!v6) {
		p[0] = 0x45;
		p[2] = (uint8_t)(len >> 8);
		p[3] = (uint8_t)len;
		p[4] = 0x12;
		p[5] = 0x34;
		p[8] = 64;
		p[9] = tcp ? 6 : 17;
		inet_pton(AF_INET, "10.0.0.1", p + 12);
		inet_pton(AF_INET, "10.0.0.2", p + 16);
	} else {
		p[0] = 0x60;
		p[4] = (uint8_t)((len - 40) >> 8);
		p[5] = (uint8_t)(len - 40);
		p[6] = tcp ? 6 : 17;
		p[7] = 64;
		inet_pton(AF_INET6, "fd00::1", p + 8);
		inet_pton(AF_INET6, "fd00::2", p + 24);
	}
	p[l3] = 0x30;
	p[l3 + 1] = 0x39;
	p[l3 + 2] = 0x14;
	p[l3 + 3] = 0x51;
	if (tcp) {
		uint32_t seq = htonl(0xfffff000u); /* wraps during the split */

		memcpy(p + l3 + 4, &seq, 4);
		p[l3 + 12] = 5 << 4;
		p[l3 + 13] = tcp_flags;
	} else {
		p[l3 + 4] = (uint8_t)((8 + payload) >> 8);
		p[l3 + 5] = (uint8_t)(8 + payload);
	}
	for (size_t i = 0; i < payload; i++)
		p[l3 + l4 + i] = (uint8_t)(i * 7 + 3);
	return len;
}

static void check_split(int v6, int tcp, size_t payload, uint16_t mss)
{
	static uint8_t pkt[65536];
	size_t l3 = v6 ? 40 : 20, l4 = tcp ? 20 : 8;
	size_t len = build(pkt, v6, tcp, payload, 0x18 | 0x01 | 0x80); /* PSH ACK FIN CWR */
	struct lsw_vnet_hdr vh = {
		.flags = LSW_VNET_F_NEEDS_CSUM,
		.gso_type = tcp ? (v6 ? LSW_VNET_GSO_TCPV6 : LSW_VNET_GSO_TCPV4) : LSW_VNET_GSO_UDP_L4,
		.hdr_len = (uint16_t)(l3 + l4),
		.gso_size = mss,
		.csum_start = (uint16_t)l3,
		.csum_offset = tcp ? 16 : 6,
	};
	int n, want = (int)((payload + mss - 1) / mss);
	size_t got = 0;

	arena = (struct lsw_arena){ .buf = arena_buf, .cap = sizeof(arena_buf) };
	n = lsw_tun_split(&vh, pkt, len, &arena, segs, 128);
	assert_int_equal(n, want);
	for (int i = 0; i < n; i++) {
		const uint8_t *s = segs[i].data;
		size_t seg = payload - got < mss ? payload - got : mss;

		assert_int_equal(segs[i].len, l3 + l4 + seg);
		if (!v6) {
			assert_int_equal(s[2] << 8 | s[3], segs[i].len);
			assert_int_equal(ref_sum(s, 20, 0), 0xffff); /* IP header checksum */
			assert_int_equal(s[4] << 8 | s[5], 0x1234 + i);
		} else {
			assert_int_equal(s[4] << 8 | s[5], segs[i].len - 40);
		}
		assert_true(l4_ok(s, segs[i].len, v6, l3, tcp ? 6 : 17));
		if (tcp) {
			uint32_t seq;

			memcpy(&seq, s + l3 + 4, 4);
			assert_int_equal(ntohl(seq), (uint32_t)(0xfffff000u + got));
			/* FIN and PSH only on the last, CWR only on the first, ACK on all. */
			assert_int_equal(!!(s[l3 + 13] & 0x01), i == n - 1);
			assert_int_equal(!!(s[l3 + 13] & 0x08), i == n - 1);
			assert_int_equal(!!(s[l3 + 13] & 0x80), i == 0);
			assert_true(s[l3 + 13] & 0x10);
		} else {
			assert_int_equal(s[l3 + 4] << 8 | s[l3 + 5], 8 + seg);
		}
		assert_memory_equal(s + l3 + l4, pkt + l3 + l4 + got, seg);
		/* Room to encrypt in place. */
		assert_true(segs[i].data - arena_buf >= LSW_HEADROOM);
		got += seg;
	}
	assert_int_equal(got, payload);
}

static void test_tso4(void **state)
{
	check_split(0, 1, 64000, 1380);
	check_split(0, 1, 1380 * 3, 1380); /* exact multiple */
	check_split(0, 1, 100, 1380);      /* one segment */
}

static void test_tso6(void **state)
{
	check_split(1, 1, 60000, 1360);
	check_split(1, 1, 1, 1360);
}

static void test_uso(void **state)
{
	check_split(0, 0, 30000, 1392);
	check_split(1, 0, 30000, 1372);
}

/* A single packet with a partial checksum (CHECKSUM_PARTIAL from a local socket). */
static void test_needs_csum_single(void **state)
{
	static uint8_t pkt[2000];
	size_t len = build(pkt, 0, 0, 999, 0);
	uint32_t ps = ref_sum(pkt + 12, 8, 0) + 17 + (uint32_t)(len - 20);
	struct lsw_vnet_hdr vh = { .flags = LSW_VNET_F_NEEDS_CSUM, .csum_start = 20, .csum_offset = 6 };
	int n;

	/* The kernel leaves the folded pseudo-header sum in the checksum field. */
	ps = ref_sum(NULL, 0, ps);
	pkt[26] = (uint8_t)(ps >> 8);
	pkt[27] = (uint8_t)ps;
	arena = (struct lsw_arena){ .buf = arena_buf, .cap = sizeof(arena_buf) };
	n = lsw_tun_split(&vh, pkt, len, &arena, segs, 128);
	assert_int_equal(n, 1);
	assert_true(l4_ok(segs[0].data, len, 0, 20, 17));
	/* Without NEEDS_CSUM the packet passes unchanged. */
	vh.flags = 0;
	arena.used = 0;
	assert_int_equal(lsw_tun_split(&vh, pkt, len, &arena, segs, 128), 1);
	assert_memory_equal(segs[0].data, pkt, len);
}

static void test_malformed(void **state)
{
	static uint8_t pkt[4096];
	size_t len = build(pkt, 0, 1, 3000, 0x10);
	struct lsw_vnet_hdr ok = { .flags = 1, .gso_type = LSW_VNET_GSO_TCPV4, .gso_size = 1400, .csum_start = 20,
				   .csum_offset = 16 };
	struct lsw_vnet_hdr vh;

	arena = (struct lsw_arena){ .buf = arena_buf, .cap = sizeof(arena_buf) };
	vh = ok;
	vh.gso_size = 0;
	assert_int_equal(lsw_tun_split(&vh, pkt, len, &arena, segs, 128), -EINVAL);
	vh = ok;
	vh.csum_start = 24; /* not where the IPv4 header ends */
	assert_int_equal(lsw_tun_split(&vh, pkt, len, &arena, segs, 128), -EINVAL);
	vh = ok;
	vh.gso_type = LSW_VNET_GSO_UDP; /* UFO: never enabled */
	assert_int_equal(lsw_tun_split(&vh, pkt, len, &arena, segs, 128), -EINVAL);
	vh = ok;
	assert_int_equal(lsw_tun_split(&vh, pkt, 30, &arena, segs, 128), -EINVAL); /* truncated TCP header */
	vh = (struct lsw_vnet_hdr){ .flags = 1, .csum_start = 100, .csum_offset = 6 };
	assert_int_equal(lsw_tun_split(&vh, pkt, 60, &arena, segs, 128), -EINVAL);
	/* Too many segments for the caller's array. */
	vh = ok;
	vh.gso_size = 10;
	assert_int_equal(lsw_tun_split(&vh, pkt, len, &arena, segs, 128), -ENOSPC);
	/* A full arena. */
	struct lsw_arena small = { .buf = arena_buf, .cap = 2000 };
	assert_int_equal(lsw_tun_split(&ok, pkt, len, &small, segs, 128), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tso4),
		cmocka_unit_test(test_tso6),
		cmocka_unit_test(test_uso),
		cmocka_unit_test(test_needs_csum_single),
		cmocka_unit_test(test_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
