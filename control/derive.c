// SPDX-License-Identifier: MIT
/* Deterministic overlay prefixes and node addresses, UUIDs, and the string buffer. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "control.h"

static void hash_id(const char *ctx, const uint8_t netid[16], unsigned attempt, uint8_t out[32])
{
	crypto_hash_sha256_state st;
	uint8_t a[4] = {(uint8_t)(attempt >> 24), (uint8_t)(attempt >> 16), (uint8_t)(attempt >> 8),
			(uint8_t)attempt};

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)ctx, strlen(ctx));
	crypto_hash_sha256_update(&st, netid, 16);
	crypto_hash_sha256_update(&st, a, sizeof(a));
	crypto_hash_sha256_final(&st, out);
}

/* 100.64.0.0/10 holds 2^(LSC_IPV4_NET_LEN-10) networks; the slot is the hash of the id
 * plus the attempt, so collisions probe the next slot deterministically. */
void lsc_derive_ipv4(const uint8_t netid[16], unsigned attempt, struct ls_prefix *out)
{
	const uint32_t slots = 1u << (LSC_IPV4_NET_LEN - 10);
	uint8_t h[32];
	uint32_t slot, addr;

	hash_id("lightscale-ipv4", netid, 0, h);
	slot = (((uint32_t)h[0] << 8 | h[1]) + attempt) % slots;
	addr = 0x64400000u | (slot << (32 - LSC_IPV4_NET_LEN));
	memset(out, 0, sizeof(*out));
	out->family = AF_INET;
	out->len = LSC_IPV4_NET_LEN;
	out->addr[0] = (uint8_t)(addr >> 24);
	out->addr[1] = (uint8_t)(addr >> 16);
	out->addr[2] = (uint8_t)(addr >> 8);
	out->addr[3] = (uint8_t)addr;
}

void lsc_derive_ipv6(const uint8_t netid[16], unsigned attempt, struct ls_prefix *out)
{
	uint8_t h[32];

	hash_id("lightscale-ula", netid, attempt, h);
	memset(out, 0, sizeof(*out));
	out->family = AF_INET6;
	out->len = LSC_IPV6_NET_LEN;
	out->addr[0] = 0xfd;
	memcpy(out->addr + 1, h, 5); /* 40-bit global id */
}

int lsc_derive_host(int64_t node_id, unsigned attempt, const struct ls_prefix *v4, uint32_t *host)
{
	uint64_t hosts;

	if (v4->family != AF_INET || v4->len > 30)
		return -ERANGE;
	hosts = (1ull << (32 - v4->len)) - 2; /* neither network nor broadcast address */
	*host = (uint32_t)(((uint64_t)(node_id > 0 ? node_id - 1 : 0) + attempt) % hosts) + 1;
	return 0;
}

void lsc_host_address(const struct ls_prefix *p, uint32_t h, struct ls_prefix *out)
{
	int i, last = p->family == AF_INET ? 3 : 15;
	uint32_t carry = h;

	*out = *p;
	out->len = p->family == AF_INET ? 32 : 128;
	for (i = last; i >= 0 && carry; i--) {
		uint32_t v = out->addr[i] + (carry & 0xff);

		out->addr[i] = (uint8_t)v;
		carry = (carry >> 8) + (v >> 8);
	}
}

int lsc_uuid_parse(const char *s, uint8_t out[16])
{
	size_t i, n = 0;

	if (!s || strlen(s) != 36)
		return -EINVAL;
	for (i = 0; i < 36; i++) {
		int hi, lo;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -EINVAL;
			continue;
		}
		if (i + 1 >= 36 || s[i + 1] == '-')
			return -EINVAL;
#define HEXV(c) ((c) >= '0' && (c) <= '9' ? (c) - '0' : (c) >= 'a' && (c) <= 'f' ? (c) - 'a' + 10 : (c) >= 'A' && (c) <= 'F' ? (c) - 'A' + 10 : -1)
		hi = HEXV(s[i]);
		lo = HEXV(s[i + 1]);
#undef HEXV
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[n++] = (uint8_t)(hi << 4 | lo);
		i++;
	}
	return n == 16 ? 0 : -EINVAL;
}

void lsc_uuid_format(const uint8_t id[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7], id[8], id[9], id[10],
		 id[11], id[12], id[13], id[14], id[15]);
}

void lsc_uuid_random(uint8_t out[16])
{
	randombytes_buf(out, 16);
	out[6] = (out[6] & 0x0f) | 0x40; /* version 4 */
	out[8] = (out[8] & 0x3f) | 0x80; /* RFC 4122 variant */
}

/* ---- string buffer ---- */

void lsc_buf_add(struct lsc_buf *b, const void *data, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void lsc_buf_str(struct lsc_buf *b, const char *s)
{
	lsc_buf_add(b, s, strlen(s));
}

void lsc_buf_printf(struct lsc_buf *b, const char *fmt, ...)
{
	char tmp[512], *big = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(tmp)) {
		lsc_buf_add(b, tmp, (size_t)n);
		return;
	}
	va_start(ap, fmt);
	n = vasprintf(&big, fmt, ap);
	va_end(ap);
	if (n >= 0) {
		lsc_buf_add(b, big, (size_t)n);
		free(big);
	} else {
		b->oom = 1;
	}
}

void lsc_buf_json(struct lsc_buf *b, const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);

	if (!s) {
		b->oom = 1;
		return;
	}
	lsc_buf_str(b, s);
	free(s);
}

void lsc_buf_free(struct lsc_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}
