// SPDX-License-Identifier: MIT
/* STUN Binding (RFC 8489): codec and a small client helper. */
#include "stun.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <string.h>

#include "bytes.h"
#include "util.h"

uint32_t ls_stun_crc32(const void *buf, size_t len)
{
	static uint32_t table[256];
	static int ready;
	const uint8_t *p = buf;
	uint32_t crc = 0xffffffff;

	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;

			for (int k = 0; k < 8; k++)
				c = c & 1 ? 0xedb88320 ^ (c >> 1) : c >> 1;
			table[i] = c;
		}
		__atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
	}
	for (size_t i = 0; i < len; i++)
		crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return crc ^ 0xffffffff;
}

bool ls_stun_is_stun(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint16_t mlen;

	if (!p || len < LS_STUN_HDR_LEN || (p[0] & 0xc0) != 0)
		return false;
	if (ls_get_be32(p + 4) != LS_STUN_MAGIC_COOKIE)
		return false;
	mlen = ls_get_be16(p + 2);
	return (mlen & 3) == 0 && (size_t)mlen + LS_STUN_HDR_LEN == len;
}

/* Walks the attributes of a message that passed ls_stun_is_stun. Calls fn for
 * each attribute before MESSAGE-INTEGRITY (the ones after it are ignored, as RFC
 * 8489 section 14.5 says) and checks FINGERPRINT, which must be last.
 * Returns 0 or -EBADMSG; fn returns 0 or -errno to stop. */
typedef int (*attr_fn)(void *ctx, uint16_t type, const uint8_t *val, uint16_t len);

static int walk_attrs(const uint8_t *buf, size_t len, attr_fn fn, void *ctx)
{
	size_t off = LS_STUN_HDR_LEN;
	bool after_integrity = false;
	int err;

	while (off < len) {
		uint16_t type, alen;
		size_t padded;

		if (len - off < LS_STUN_ATTR_HDR_LEN)
			return -EBADMSG;
		type = ls_get_be16(buf + off);
		alen = ls_get_be16(buf + off + 2);
		padded = ((size_t)alen + 3) & ~(size_t)3;
		if (padded > len - off - LS_STUN_ATTR_HDR_LEN)
			return -EBADMSG;
		if (type == LS_STUN_ATTR_FINGERPRINT) {
			uint32_t want;

			if (alen != LS_STUN_FINGERPRINT_LEN ||
			    off + LS_STUN_ATTR_HDR_LEN + LS_STUN_FINGERPRINT_LEN != len)
				return -EBADMSG;
			want = ls_stun_crc32(buf, off) ^ LS_STUN_FINGERPRINT_XOR;
			if (ls_get_be32(buf + off + LS_STUN_ATTR_HDR_LEN) != want)
				return -EBADMSG;
			return 0;
		}
		if (type == LS_STUN_ATTR_MESSAGE_INTEGRITY ||
		    type == LS_STUN_ATTR_MESSAGE_INTEGRITY_SHA256)
			after_integrity = true;
		else if (!after_integrity && fn) {
			err = fn(ctx, type, buf + off + LS_STUN_ATTR_HDR_LEN, alen);
			if (err)
				return err;
		}
		off += LS_STUN_ATTR_HDR_LEN + padded;
	}
	return 0;
}

int ls_stun_build_request(uint8_t *buf, size_t size, uint8_t txid[LS_STUN_TXID_LEN])
{
	const size_t len = LS_STUN_HDR_LEN + LS_STUN_ATTR_HDR_LEN + LS_STUN_FINGERPRINT_LEN;

	if (size < len)
		return -ENOSPC;
	randombytes_buf(txid, LS_STUN_TXID_LEN);
	ls_put_be16(buf, LS_STUN_BINDING_REQUEST);
	ls_put_be16(buf + 2, len - LS_STUN_HDR_LEN);
	ls_put_be32(buf + 4, LS_STUN_MAGIC_COOKIE);
	memcpy(buf + 8, txid, LS_STUN_TXID_LEN);
	ls_put_be16(buf + 20, LS_STUN_ATTR_FINGERPRINT);
	ls_put_be16(buf + 22, LS_STUN_FINGERPRINT_LEN);
	ls_put_be32(buf + 24, ls_stun_crc32(buf, 20) ^ LS_STUN_FINGERPRINT_XOR);
	return (int)len;
}

struct resp_ctx {
	const uint8_t *hdr; /* for the XOR mask: cookie + transaction id */
	struct sockaddr_storage xor_addr, plain_addr;
	bool have_xor, have_plain;
};

/* Decodes a (XOR-)MAPPED-ADDRESS value. mask is NULL for the plain one. */
static int decode_addr(const uint8_t *val, uint16_t len, const uint8_t *mask,
		       struct sockaddr_storage *out)
{
	uint16_t port;

	if (len < 4)
		return -EBADMSG;
	port = ls_get_be16(val + 2);
	if (mask)
		port ^= ls_get_be16(mask);
	memset(out, 0, sizeof(*out));
	if (val[1] == LS_STUN_FAMILY_IPV4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)out;
		uint8_t a[4];

		if (len != LS_STUN_ADDR4_LEN)
			return -EBADMSG;
		for (int i = 0; i < 4; i++)
			a[i] = val[4 + i] ^ (mask ? mask[i] : 0);
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, a, 4);
	} else if (val[1] == LS_STUN_FAMILY_IPV6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;

		if (len != LS_STUN_ADDR6_LEN)
			return -EBADMSG;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		for (int i = 0; i < 16; i++)
			sin6->sin6_addr.s6_addr[i] = val[4 + i] ^ (mask ? mask[i] : 0);
	} else {
		return -EBADMSG;
	}
	return 0;
}

static int resp_attr(void *p, uint16_t type, const uint8_t *val, uint16_t len)
{
	struct resp_ctx *ctx = p;
	int err;

	if (type == LS_STUN_ATTR_XOR_MAPPED_ADDRESS && !ctx->have_xor) {
		err = decode_addr(val, len, ctx->hdr + 4, &ctx->xor_addr);
		if (err)
			return err;
		ctx->have_xor = true;
	} else if (type == LS_STUN_ATTR_MAPPED_ADDRESS && !ctx->have_plain) {
		err = decode_addr(val, len, NULL, &ctx->plain_addr);
		if (err)
			return err;
		ctx->have_plain = true;
	}
	return 0;
}

int ls_stun_decode_xor_addr(const uint8_t *val, size_t len, const uint8_t *msg,
			    struct sockaddr_storage *out)
{
	if (len > 0xffff)
		return -EBADMSG;
	return decode_addr(val, (uint16_t)len, msg + 4, out);
}

int ls_stun_encode_xor_addr(uint8_t *out, size_t size, const uint8_t *msg, const struct sockaddr *sa)
{
	const uint8_t *mask = msg + 4;
	uint8_t addr[16];
	size_t alen;
	uint16_t port;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		memcpy(addr, &sin->sin_addr, 4);
		port = ntohs(sin->sin_port);
		alen = 4;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		port = ntohs(sin6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			memcpy(addr, sin6->sin6_addr.s6_addr + 12, 4);
			alen = 4;
		} else {
			memcpy(addr, sin6->sin6_addr.s6_addr, 16);
			alen = 16;
		}
	} else {
		return -EAFNOSUPPORT;
	}
	if (size < 4 + alen)
		return -ENOSPC;
	out[0] = 0;
	out[1] = alen == 4 ? LS_STUN_FAMILY_IPV4 : LS_STUN_FAMILY_IPV6;
	ls_put_be16(out + 2, port ^ (LS_STUN_MAGIC_COOKIE >> 16));
	for (size_t i = 0; i < alen; i++)
		out[4 + i] = addr[i] ^ mask[i];
	return (int)(4 + alen);
}

int ls_stun_parse_response(const uint8_t *buf, size_t len, const uint8_t *txid,
			   struct sockaddr_storage *mapped)
{
	struct resp_ctx ctx = { .hdr = buf };
	uint16_t type;
	int err;

	if (!ls_stun_is_stun(buf, len))
		return -EBADMSG;
	type = ls_get_be16(buf);
	if (txid && memcmp(buf + 8, txid, LS_STUN_TXID_LEN) != 0)
		return -ESRCH;
	err = walk_attrs(buf, len, resp_attr, &ctx);
	if (err)
		return err;
	if (type == LS_STUN_BINDING_ERROR)
		return -EPROTO;
	if (type != LS_STUN_BINDING_SUCCESS)
		return -EPROTO;
	if (ctx.have_xor)
		*mapped = ctx.xor_addr;
	else if (ctx.have_plain)
		*mapped = ctx.plain_addr;
	else
		return -ENOENT;
	return 0;
}

int ls_stun_parse_request(const uint8_t *buf, size_t len, uint8_t txid[LS_STUN_TXID_LEN])
{
	int err;

	if (!ls_stun_is_stun(buf, len))
		return -EBADMSG;
	err = walk_attrs(buf, len, NULL, NULL);
	if (err)
		return err;
	if (ls_get_be16(buf) != LS_STUN_BINDING_REQUEST)
		return -EOPNOTSUPP;
	memcpy(txid, buf + 8, LS_STUN_TXID_LEN);
	return 0;
}

int ls_stun_build_response(uint8_t *buf, size_t size, const uint8_t txid[LS_STUN_TXID_LEN],
			   const struct sockaddr *src)
{
	uint8_t hdr[LS_STUN_HDR_LEN], val[LS_STUN_ADDR6_LEN];
	size_t off, len;
	int vlen;

	/* The XOR mask is the cookie and transaction id: encode against the header first. */
	ls_put_be16(hdr, LS_STUN_BINDING_SUCCESS);
	ls_put_be32(hdr + 4, LS_STUN_MAGIC_COOKIE);
	memcpy(hdr + 8, txid, LS_STUN_TXID_LEN);
	vlen = ls_stun_encode_xor_addr(val, sizeof(val), hdr, src);
	if (vlen < 0)
		return vlen;
	len = LS_STUN_HDR_LEN + LS_STUN_ATTR_HDR_LEN + (size_t)vlen + LS_STUN_ATTR_HDR_LEN +
	      LS_STUN_FINGERPRINT_LEN;
	if (size < len)
		return -ENOSPC;
	ls_put_be16(hdr + 2, len - LS_STUN_HDR_LEN);
	memcpy(buf, hdr, LS_STUN_HDR_LEN);
	off = LS_STUN_HDR_LEN;
	ls_put_be16(buf + off, LS_STUN_ATTR_XOR_MAPPED_ADDRESS);
	ls_put_be16(buf + off + 2, (uint16_t)vlen);
	memcpy(buf + off + 4, val, (size_t)vlen);
	off += LS_STUN_ATTR_HDR_LEN + (size_t)vlen;
	ls_put_be16(buf + off, LS_STUN_ATTR_FINGERPRINT);
	ls_put_be16(buf + off + 2, LS_STUN_FINGERPRINT_LEN);
	ls_put_be32(buf + off + 4, ls_stun_crc32(buf, off) ^ LS_STUN_FINGERPRINT_XOR);
	return (int)len;
}

static bool same_endpoint(const struct sockaddr *a, const struct sockaddr_storage *b)
{
	if (a->sa_family == AF_INET && b->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->sa_family == AF_INET6 && b->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		       !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
	}
	/* An IPv4 server reached through a dual-stack socket answers as ::ffff:a.b.c.d. */
	if (a->sa_family == AF_INET && b->ss_family == AF_INET6) {
		const struct sockaddr_in *x = (const void *)a;
		const struct sockaddr_in6 *y = (const void *)b;

		return x->sin_port == y->sin6_port && IN6_IS_ADDR_V4MAPPED(&y->sin6_addr) &&
		       !memcmp(y->sin6_addr.s6_addr + 12, &x->sin_addr, 4);
	}
	return false;
}

int ls_stun_query(int fd, const struct sockaddr *server, socklen_t server_len, int timeout_ms,
		  struct sockaddr_storage *mapped)
{
	uint8_t req[64], resp[LS_STUN_MAX_MSG_LEN];
	uint8_t txid[LS_STUN_TXID_LEN];
	uint64_t deadline = ls_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	uint64_t next_send = 0;
	int rto = 250, reqlen, err;

	reqlen = ls_stun_build_request(req, sizeof(req), txid);
	if (reqlen < 0)
		return reqlen;
	for (;;) {
		uint64_t now = ls_now_ms();
		struct sockaddr_storage from;
		socklen_t fromlen = sizeof(from);
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int wait;

		if (now >= next_send && now < deadline) {
			if (sendto(fd, req, reqlen, MSG_DONTWAIT, server, server_len) < 0 &&
			    errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNREFUSED)
				return -errno;
			next_send = now + rto;
			rto *= 2;
		}
		if (now >= deadline)
			return -ETIMEDOUT;
		wait = (int)((next_send < deadline ? next_send : deadline) - now);
		if (poll(&pfd, 1, wait) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!(pfd.revents & (POLLIN | POLLERR)))
			continue;
		n = recvfrom(fd, resp, sizeof(resp), MSG_DONTWAIT, (struct sockaddr *)&from, &fromlen);
		if (n < 0) {
			/* ICMP errors surface here on connected sockets; keep trying. */
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
			    errno == ECONNREFUSED)
				continue;
			return -errno;
		}
		if (!same_endpoint(server, &from))
			continue;
		err = ls_stun_parse_response(resp, (size_t)n, txid, mapped);
		if (err == 0 || err == -EPROTO)
			return err;
		/* Malformed, another transaction, no address: wait for the real answer. */
	}
}
