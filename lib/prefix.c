// SPDX-License-Identifier: MIT
#include "prefix.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ls_prefix_max_len(const struct ls_prefix *p)
{
	return p->family == AF_INET ? 32 : 128;
}

void ls_prefix_mask(struct ls_prefix *p)
{
	int max = ls_prefix_max_len(p);

	for (int bit = p->len; bit < max; bit++)
		p->addr[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
}

int ls_prefix_parse(const char *s, struct ls_prefix *p, bool allow_host_bits)
{
	char buf[LS_PREFIX_STRLEN];
	const char *slash;
	struct ls_prefix q;
	size_t alen;

	if (!s)
		return -EINVAL;
	memset(&q, 0, sizeof(q));
	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (inet_pton(AF_INET, buf, q.addr) == 1)
		q.family = AF_INET;
	else if (inet_pton(AF_INET6, buf, q.addr) == 1)
		q.family = AF_INET6;
	else
		return -EINVAL;
	if (slash) {
		const char *l = slash + 1;
		char *end;
		long v;

		if (*l < '0' || *l > '9' || (l[0] == '0' && l[1] != '\0'))
			return -EINVAL;
		v = strtol(l, &end, 10);
		if (*end || v < 0 || v > ls_prefix_max_len(&q))
			return -EINVAL;
		q.len = (uint8_t)v;
	} else {
		q.len = (uint8_t)ls_prefix_max_len(&q);
	}
	if (!allow_host_bits) {
		struct ls_prefix m = q;

		ls_prefix_mask(&m);
		if (memcmp(m.addr, q.addr, sizeof(q.addr)))
			return -EINVAL;
	}
	*p = q;
	return 0;
}

void ls_prefix_format_addr(const struct ls_prefix *p, char out[LS_PREFIX_STRLEN])
{
	if (!inet_ntop(p->family, p->addr, out, LS_PREFIX_STRLEN))
		snprintf(out, LS_PREFIX_STRLEN, "?");
}

void ls_prefix_format(const struct ls_prefix *p, char out[LS_PREFIX_STRLEN])
{
	char a[INET6_ADDRSTRLEN];

	if (!inet_ntop(p->family, p->addr, a, sizeof(a)))
		snprintf(a, sizeof(a), "?");
	snprintf(out, LS_PREFIX_STRLEN, "%s/%u", a, p->len);
}

bool ls_prefix_equal(const struct ls_prefix *a, const struct ls_prefix *b)
{
	return a->family == b->family && a->len == b->len &&
	       !memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16);
}

static bool leading_bits_equal(const uint8_t *a, const uint8_t *b, int bits)
{
	int bytes = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)bytes))
		return false;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));

		return (a[bytes] & mask) == (b[bytes] & mask);
	}
	return true;
}

bool ls_prefix_contains(const struct ls_prefix *outer, const struct ls_prefix *inner)
{
	return outer->family == inner->family && outer->len <= inner->len &&
	       leading_bits_equal(outer->addr, inner->addr, outer->len);
}

bool ls_prefix_overlap(const struct ls_prefix *a, const struct ls_prefix *b)
{
	return ls_prefix_contains(a, b) || ls_prefix_contains(b, a);
}

bool ls_prefix_is_default(const struct ls_prefix *p)
{
	return p->len == 0;
}

int ls_prefix_from_sockaddr(const struct sockaddr *sa, struct ls_prefix *out)
{
	struct ls_prefix a = { .family = (uint8_t)sa->sa_family };

	if (sa->sa_family == AF_INET) {
		memcpy(a.addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		a.len = 32;
	} else if (sa->sa_family == AF_INET6) {
		memcpy(a.addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		a.len = 128;
	} else {
		return -EAFNOSUPPORT;
	}
	*out = a;
	return 0;
}

int ls_endpoint_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *port_s;
	char *end;
	long port;
	size_t hlen;

	if (!s)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		hlen = (size_t)(close - s - 1);
		port_s = close + 2;
		if (hlen == 0 || hlen >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, hlen);
	} else {
		const char *colon = strrchr(s, ':');

		if (!colon || strchr(s, ':') != colon)
			return -EINVAL;
		hlen = (size_t)(colon - s);
		port_s = colon + 1;
		if (hlen == 0 || hlen >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, hlen);
	}
	host[hlen] = '\0';
	if (*port_s < '0' || *port_s > '9')
		return -EINVAL;
	port = strtol(port_s, &end, 10);
	if (*end || port <= 0 || port > 65535)
		return -EINVAL;
	if (s[0] != '[') {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -EINVAL;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		if (len)
			*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -EINVAL;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		if (len)
			*len = sizeof(*sin6);
	}
	return 0;
}

void ls_endpoint_format(const struct sockaddr *sa, char out[LS_ENDPOINT_STRLEN])
{
	char a[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
		snprintf(out, LS_ENDPOINT_STRLEN, "%s:%u", a, ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a));
		snprintf(out, LS_ENDPOINT_STRLEN, "[%s]:%u", a, ntohs(sin6->sin6_port));
	} else {
		snprintf(out, LS_ENDPOINT_STRLEN, "(unknown family %d)", sa->sa_family);
	}
}
