// SPDX-License-Identifier: MIT
/* TURN client (RFC 8656) over UDP with long-term credentials. */
#include "turnclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "bytes.h"
#include "keys.h"
#include "stun.h"
#include "util.h"

enum {
	CLASS_INDICATION = 0x0010,
	CLASS_SUCCESS = 0x0100,
	CLASS_ERROR = 0x0110,
	MI_LEN = 20,
	MAX_CHANNELS = 64,
	TEXT_MAX = 256, /* REALM, NONCE: at most 763 bytes on the wire; we accept 255 */
};

struct turn_channel {
	uint16_t number;
	struct sockaddr_storage peer;
};

struct ls_turn {
	int fd;
	struct sockaddr_storage server;
	socklen_t server_len;
	char username[TEXT_MAX], password[TEXT_MAX], realm[TEXT_MAX], nonce[TEXT_MAX];
	uint8_t key[16]; /* MD5(username ":" realm ":" password) */
	bool authed;
	struct sockaddr_storage relayed, mapped;
	uint32_t lifetime;
	int last_error;
	struct turn_channel channels[MAX_CHANNELS];
	int n_channels;
};

bool ls_sockaddr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->sa_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, 16);
	}
	return false;
}

/* ------------------------------------------------------------ message builder */

struct tmsg {
	uint8_t b[LS_STUN_MAX_MSG_LEN];
	size_t len;
	int err;
};

static void tm_init(struct tmsg *m, uint16_t type)
{
	ls_put_be16(m->b, type);
	ls_put_be16(m->b + 2, 0);
	ls_put_be32(m->b + 4, LS_STUN_MAGIC_COOKIE);
	randombytes_buf(m->b + 8, LS_STUN_TXID_LEN);
	m->len = LS_STUN_HDR_LEN;
	m->err = 0;
}

static void tm_attr(struct tmsg *m, uint16_t type, const void *v, size_t vlen)
{
	size_t padded = (vlen + 3) & ~(size_t)3;

	if (m->err)
		return;
	if (vlen > 0xffff || m->len + LS_STUN_ATTR_HDR_LEN + padded > sizeof(m->b)) {
		m->err = -EMSGSIZE;
		return;
	}
	ls_put_be16(m->b + m->len, type);
	ls_put_be16(m->b + m->len + 2, (uint16_t)vlen);
	if (vlen)
		memcpy(m->b + m->len + 4, v, vlen);
	memset(m->b + m->len + 4 + vlen, 0, padded - vlen);
	m->len += LS_STUN_ATTR_HDR_LEN + padded;
	ls_put_be16(m->b + 2, (uint16_t)(m->len - LS_STUN_HDR_LEN));
}

static void tm_xor_addr(struct tmsg *m, uint16_t type, const struct sockaddr *sa)
{
	uint8_t v[LS_STUN_ADDR6_LEN];
	int n = ls_stun_encode_xor_addr(v, sizeof(v), m->b, sa);

	if (n < 0) {
		if (!m->err)
			m->err = n;
		return;
	}
	tm_attr(m, type, v, (size_t)n);
}

/* HMAC-SHA1 over the message so far, its length field already counting the
 * MESSAGE-INTEGRITY attribute (RFC 8489 sec. 14.5). */
static int integrity(const uint8_t key[16], const uint8_t *msg, size_t upto, uint8_t mac[MI_LEN])
{
	gnutls_hmac_hd_t h;
	uint8_t hdr[LS_STUN_HDR_LEN];

	memcpy(hdr, msg, sizeof(hdr));
	ls_put_be16(hdr + 2, (uint16_t)(upto + LS_STUN_ATTR_HDR_LEN + MI_LEN - LS_STUN_HDR_LEN));
	if (gnutls_hmac_init(&h, GNUTLS_MAC_SHA1, key, 16) < 0)
		return -EIO;
	gnutls_hmac(h, hdr, sizeof(hdr));
	gnutls_hmac(h, msg + LS_STUN_HDR_LEN, upto - LS_STUN_HDR_LEN);
	gnutls_hmac_deinit(h, mac);
	return 0;
}

static void tm_auth(struct tmsg *m, const struct ls_turn *t)
{
	uint8_t mac[MI_LEN];

	tm_attr(m, LS_STUN_ATTR_USERNAME, t->username, strlen(t->username));
	tm_attr(m, LS_TURN_ATTR_REALM, t->realm, strlen(t->realm));
	tm_attr(m, LS_TURN_ATTR_NONCE, t->nonce, strlen(t->nonce));
	if (m->err)
		return;
	if (m->len + LS_STUN_ATTR_HDR_LEN + MI_LEN > sizeof(m->b)) {
		m->err = -EMSGSIZE;
		return;
	}
	if (integrity(t->key, m->b, m->len, mac)) {
		m->err = -EIO;
		return;
	}
	tm_attr(m, LS_STUN_ATTR_MESSAGE_INTEGRITY, mac, MI_LEN);
}

static void tm_fingerprint(struct tmsg *m)
{
	uint8_t v[4];

	if (m->err || m->len + 8 > sizeof(m->b)) {
		m->err = m->err ?: -EMSGSIZE;
		return;
	}
	ls_put_be16(m->b + 2, (uint16_t)(m->len + 8 - LS_STUN_HDR_LEN));
	ls_put_be32(v, ls_stun_crc32(m->b, m->len) ^ LS_STUN_FINGERPRINT_XOR);
	tm_attr(m, LS_STUN_ATTR_FINGERPRINT, v, sizeof(v));
}

/* ------------------------------------------------------------- message parser */

struct tresp {
	uint16_t type;
	int error;
	char realm[TEXT_MAX], nonce[TEXT_MAX];
	bool has_realm, has_nonce, has_relayed, has_mapped, has_peer, has_lifetime, has_data, has_mi;
	struct sockaddr_storage relayed, mapped, peer;
	uint32_t lifetime;
	const uint8_t *data;
	size_t data_len, mi_off;
};

static int copy_text(char *dst, const uint8_t *v, size_t len)
{
	if (len >= TEXT_MAX || memchr(v, '\0', len))
		return -EBADMSG;
	memcpy(dst, v, len);
	dst[len] = '\0';
	return 0;
}

static int tparse(const uint8_t *buf, size_t len, struct tresp *r)
{
	size_t off = LS_STUN_HDR_LEN;

	if (!ls_stun_is_stun(buf, len))
		return -EBADMSG;
	memset(r, 0, sizeof(*r));
	r->type = ls_get_be16(buf);
	while (off < len) {
		uint16_t type, alen;
		const uint8_t *v;
		size_t padded;
		int err = 0;

		if (len - off < LS_STUN_ATTR_HDR_LEN)
			return -EBADMSG;
		type = ls_get_be16(buf + off);
		alen = ls_get_be16(buf + off + 2);
		padded = ((size_t)alen + 3) & ~(size_t)3;
		if (padded > len - off - LS_STUN_ATTR_HDR_LEN)
			return -EBADMSG;
		v = buf + off + LS_STUN_ATTR_HDR_LEN;
		if (type == LS_STUN_ATTR_FINGERPRINT) {
			if (alen != 4 || off + 8 != len ||
			    ls_get_be32(v) != (ls_stun_crc32(buf, off) ^ LS_STUN_FINGERPRINT_XOR))
				return -EBADMSG;
		} else if (r->has_mi) {
			/* Attributes after MESSAGE-INTEGRITY are not covered: ignored. */
		} else {
			switch (type) {
			case LS_STUN_ATTR_ERROR_CODE:
				if (alen < 4 || (v[2] & 7) < 3 || (v[2] & 7) > 6 || v[3] > 99)
					return -EBADMSG;
				r->error = (v[2] & 7) * 100 + v[3];
				break;
			case LS_TURN_ATTR_REALM:
				err = copy_text(r->realm, v, alen);
				r->has_realm = !err;
				break;
			case LS_TURN_ATTR_NONCE:
				err = copy_text(r->nonce, v, alen);
				r->has_nonce = !err;
				break;
			case LS_TURN_ATTR_XOR_RELAYED_ADDRESS:
				err = ls_stun_decode_xor_addr(v, alen, buf, &r->relayed);
				r->has_relayed = !err;
				break;
			case LS_STUN_ATTR_XOR_MAPPED_ADDRESS:
				err = ls_stun_decode_xor_addr(v, alen, buf, &r->mapped);
				r->has_mapped = !err;
				break;
			case LS_TURN_ATTR_XOR_PEER_ADDRESS:
				err = ls_stun_decode_xor_addr(v, alen, buf, &r->peer);
				r->has_peer = !err;
				break;
			case LS_TURN_ATTR_LIFETIME:
				if (alen != 4)
					return -EBADMSG;
				r->lifetime = ls_get_be32(v);
				r->has_lifetime = true;
				break;
			case LS_TURN_ATTR_DATA:
				r->data = v;
				r->data_len = alen;
				r->has_data = true;
				break;
			case LS_STUN_ATTR_MESSAGE_INTEGRITY:
				if (alen != MI_LEN)
					return -EBADMSG;
				r->mi_off = off;
				r->has_mi = true;
				break;
			}
			if (err)
				return -EBADMSG;
		}
		off += LS_STUN_ATTR_HDR_LEN + padded;
	}
	return 0;
}

static bool mi_valid(const struct ls_turn *t, const uint8_t *buf, const struct tresp *r)
{
	uint8_t mac[MI_LEN];

	if (!r->has_mi || integrity(t->key, buf, r->mi_off, mac))
		return false;
	return sodium_memcmp(mac, buf + r->mi_off + LS_STUN_ATTR_HDR_LEN, MI_LEN) == 0;
}

/* -------------------------------------------------------------- transactions */

/* Sends m and waits for the answer with its transaction id from the server. */
static int exchange(struct ls_turn *t, const struct tmsg *m, uint64_t deadline, uint8_t *rbuf,
		    size_t rsize, size_t *rlen)
{
	uint64_t next_send = 0;
	int rto = 250;

	for (;;) {
		uint64_t now = ls_now_ms();
		struct sockaddr_storage from;
		socklen_t fromlen = sizeof(from);
		struct pollfd pfd = { .fd = t->fd, .events = POLLIN };
		ssize_t n;

		if (now >= deadline)
			return -ETIMEDOUT;
		if (now >= next_send) {
			if (sendto(t->fd, m->b, m->len, MSG_DONTWAIT, (struct sockaddr *)&t->server,
				   t->server_len) < 0 &&
			    errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNREFUSED)
				return -errno;
			next_send = now + rto;
			rto *= 2;
		}
		if (poll(&pfd, 1, (int)((next_send < deadline ? next_send : deadline) - now)) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!(pfd.revents & (POLLIN | POLLERR)))
			continue;
		n = recvfrom(t->fd, rbuf, rsize, MSG_DONTWAIT, (struct sockaddr *)&from, &fromlen);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNREFUSED)
				continue;
			return -errno;
		}
		if (!ls_sockaddr_equal((struct sockaddr *)&t->server, (struct sockaddr *)&from) ||
		    !ls_stun_is_stun(rbuf, (size_t)n) || memcmp(rbuf + 8, m->b + 8, LS_STUN_TXID_LEN) != 0)
			continue;
		*rlen = (size_t)n;
		return 0;
	}
}

static int derive_key(struct ls_turn *t)
{
	char text[3 * TEXT_MAX + 2];
	int n = snprintf(text, sizeof(text), "%s:%s:%s", t->username, t->realm, t->password);

	if (n < 0 || (size_t)n >= sizeof(text))
		return -EINVAL;
	n = gnutls_hash_fast(GNUTLS_DIG_MD5, text, (size_t)n, t->key) < 0 ? -EIO : 0;
	ls_memzero(text, sizeof(text));
	return n;
}

typedef void (*attrs_fn)(struct tmsg *m, const void *ctx);

static int transact(struct ls_turn *t, uint16_t method, attrs_fn fn, const void *ctx, int timeout_ms,
		    struct tresp *r, uint8_t *rbuf, size_t rsize)
{
	uint64_t deadline = ls_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	int err;

	for (int attempt = 0; attempt < 4; attempt++) {
		struct tmsg m;
		size_t rlen = 0;

		bool sent_auth = t->authed;

		tm_init(&m, method);
		if (fn)
			fn(&m, ctx);
		if (sent_auth)
			tm_auth(&m, t);
		tm_fingerprint(&m);
		if (m.err)
			return m.err;
		err = exchange(t, &m, deadline, rbuf, rsize, &rlen);
		if (err)
			return err;
		if (tparse(rbuf, rlen, r))
			return -EBADMSG;
		if (r->type == (method | CLASS_SUCCESS)) {
			if (t->authed && !mi_valid(t, rbuf, r))
				return -EBADMSG;
			t->last_error = 0;
			return 0;
		}
		if (r->type != (method | CLASS_ERROR))
			return -EBADMSG;
		t->last_error = r->error;
		if (r->error == 401 || r->error == 438) {
			/* 401 without credentials, or 438 (stale nonce): take realm and nonce,
			 * ask again. 401 to credentials with the same nonce: refused. */
			if (r->error == 401 && sent_auth && (!r->has_nonce || !strcmp(r->nonce, t->nonce)))
				return -EACCES;
			if (!r->has_nonce || (!r->has_realm && !t->authed))
				return -EBADMSG;
			if (r->has_realm && strcmp(r->realm, t->realm)) {
				snprintf(t->realm, sizeof(t->realm), "%s", r->realm);
				err = derive_key(t);
				if (err)
					return err;
			}
			snprintf(t->nonce, sizeof(t->nonce), "%s", r->nonce);
			t->authed = true;
			continue;
		}
		return r->error == 441 ? -EACCES : -EPROTO;
	}
	return -EPROTO;
}

/* ------------------------------------------------------------------ requests */

static void allocate_attrs(struct tmsg *m, const void *ctx)
{
	static const uint8_t udp[4] = { IPPROTO_UDP, 0, 0, 0 };

	tm_attr(m, LS_TURN_ATTR_REQUESTED_TRANSPORT, udp, sizeof(udp));
}

int ls_turn_allocate(struct ls_turn **out, int fd, const struct sockaddr *server, socklen_t server_len,
		     const char *username, const char *password, int timeout_ms)
{
	uint8_t rbuf[LS_STUN_MAX_MSG_LEN];
	struct ls_turn *t;
	struct tresp r;
	int err;

	if (!username || !password || strlen(username) >= TEXT_MAX || strlen(password) >= TEXT_MAX ||
	    server_len > sizeof(t->server))
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->fd = fd;
	memcpy(&t->server, server, server_len);
	t->server_len = server_len;
	snprintf(t->username, sizeof(t->username), "%s", username);
	snprintf(t->password, sizeof(t->password), "%s", password);

	/* The first request goes without credentials; the 401 names realm and nonce. */
	err = transact(t, LS_TURN_ALLOCATE, allocate_attrs, NULL, timeout_ms, &r, rbuf, sizeof(rbuf));
	if (!err && !r.has_relayed)
		err = -EBADMSG;
	if (err) {
		ls_turn_free(t, 0);
		return err;
	}
	t->relayed = r.relayed;
	if (r.has_mapped)
		t->mapped = r.mapped;
	t->lifetime = r.has_lifetime ? r.lifetime : 600;
	*out = t;
	return 0;
}

static void lifetime_attrs(struct tmsg *m, const void *ctx)
{
	uint8_t v[4];

	ls_put_be32(v, *(const uint32_t *)ctx);
	tm_attr(m, LS_TURN_ATTR_LIFETIME, v, sizeof(v));
}

int ls_turn_refresh(struct ls_turn *t, uint32_t lifetime_s, int timeout_ms)
{
	uint8_t rbuf[LS_STUN_MAX_MSG_LEN];
	struct tresp r;
	int err = transact(t, LS_TURN_REFRESH, lifetime_attrs, &lifetime_s, timeout_ms, &r, rbuf,
			   sizeof(rbuf));

	if (!err)
		t->lifetime = r.has_lifetime ? r.lifetime : lifetime_s;
	return err;
}

static void peer_attrs(struct tmsg *m, const void *ctx)
{
	tm_xor_addr(m, LS_TURN_ATTR_XOR_PEER_ADDRESS, ctx);
}

int ls_turn_create_permission(struct ls_turn *t, const struct sockaddr *peer, socklen_t peer_len,
			      int timeout_ms)
{
	uint8_t rbuf[LS_STUN_MAX_MSG_LEN];
	struct tresp r;

	if (peer_len < sizeof(struct sockaddr_in))
		return -EINVAL;
	return transact(t, LS_TURN_CREATE_PERMISSION, peer_attrs, peer, timeout_ms, &r, rbuf, sizeof(rbuf));
}

struct bind_ctx {
	uint16_t channel;
	const struct sockaddr *peer;
};

static void bind_attrs(struct tmsg *m, const void *ctx)
{
	const struct bind_ctx *b = ctx;
	uint8_t v[4] = { 0 };

	ls_put_be16(v, b->channel);
	tm_attr(m, LS_TURN_ATTR_CHANNEL_NUMBER, v, sizeof(v));
	tm_xor_addr(m, LS_TURN_ATTR_XOR_PEER_ADDRESS, b->peer);
}

static struct turn_channel *channel_for_peer(const struct ls_turn *t, const struct sockaddr *peer)
{
	for (int i = 0; i < t->n_channels; i++)
		if (ls_sockaddr_equal(peer, (const struct sockaddr *)&t->channels[i].peer))
			return (struct turn_channel *)&t->channels[i];
	return NULL;
}

int ls_turn_channel_bind(struct ls_turn *t, const struct sockaddr *peer, socklen_t peer_len,
			 uint16_t *channel, int timeout_ms)
{
	uint8_t rbuf[LS_STUN_MAX_MSG_LEN];
	struct turn_channel *c = channel_for_peer(t, peer);
	struct bind_ctx b = { .peer = peer };
	struct tresp r;
	int err;

	if (peer_len < sizeof(struct sockaddr_in) || peer_len > sizeof(struct sockaddr_storage))
		return -EINVAL;
	if (!c && t->n_channels >= MAX_CHANNELS)
		return -ENOSPC;
	/* Re-binding a bound peer refreshes its binding with the same number. */
	b.channel = c ? c->number : (uint16_t)(LS_TURN_CHANNEL_MIN + t->n_channels);
	err = transact(t, LS_TURN_CHANNEL_BIND, bind_attrs, &b, timeout_ms, &r, rbuf, sizeof(rbuf));
	if (err)
		return err;
	if (!c) {
		c = &t->channels[t->n_channels++];
		c->number = b.channel;
		memset(&c->peer, 0, sizeof(c->peer));
		memcpy(&c->peer, peer, peer_len);
	}
	if (channel)
		*channel = c->number;
	return 0;
}

int ls_turn_send(struct ls_turn *t, const struct sockaddr *peer, socklen_t peer_len, const void *data,
		 size_t len)
{
	struct turn_channel *c = channel_for_peer(t, peer);
	uint8_t head[LS_STUN_HDR_LEN + 24 + LS_STUN_ATTR_HDR_LEN], pad[3] = { 0 };
	struct iovec iov[3];
	struct msghdr msg = {
		.msg_name = &t->server, .msg_namelen = t->server_len, .msg_iov = iov,
	};
	size_t hlen;

	if (c) {
		/* ChannelData: channel number, length, data (UDP needs no padding). */
		if (len > 0xffff)
			return -EMSGSIZE;
		ls_put_be16(head, c->number);
		ls_put_be16(head + 2, (uint16_t)len);
		hlen = LS_TURN_CHANNEL_HDR_LEN;
		msg.msg_iovlen = 2;
	} else {
		/* A Send indication: XOR-PEER-ADDRESS and DATA. */
		uint8_t v[LS_STUN_ADDR6_LEN];
		size_t padded = (len + 3) & ~(size_t)3;
		int n;

		if (peer_len < sizeof(struct sockaddr_in))
			return -EINVAL;
		ls_put_be16(head, LS_TURN_SEND | CLASS_INDICATION);
		ls_put_be32(head + 4, LS_STUN_MAGIC_COOKIE);
		randombytes_buf(head + 8, LS_STUN_TXID_LEN);
		n = ls_stun_encode_xor_addr(v, sizeof(v), head, peer);
		if (n < 0)
			return n;
		hlen = LS_STUN_HDR_LEN;
		ls_put_be16(head + hlen, LS_TURN_ATTR_XOR_PEER_ADDRESS);
		ls_put_be16(head + hlen + 2, (uint16_t)n);
		memcpy(head + hlen + 4, v, (size_t)n);
		hlen += LS_STUN_ATTR_HDR_LEN + (size_t)n;
		ls_put_be16(head + hlen, LS_TURN_ATTR_DATA);
		ls_put_be16(head + hlen + 2, (uint16_t)len);
		hlen += LS_STUN_ATTR_HDR_LEN;
		if (hlen - LS_STUN_HDR_LEN + padded > 0xffff)
			return -EMSGSIZE;
		ls_put_be16(head + 2, (uint16_t)(hlen - LS_STUN_HDR_LEN + padded));
		iov[2].iov_base = pad;
		iov[2].iov_len = padded - len;
		msg.msg_iovlen = 3;
	}
	iov[0].iov_base = head;
	iov[0].iov_len = hlen;
	iov[1].iov_base = (void *)data;
	iov[1].iov_len = len;
	if (sendmsg(t->fd, &msg, MSG_DONTWAIT) < 0)
		return -errno;
	return 0;
}

int ls_turn_parse_data(const struct ls_turn *t, const uint8_t *buf, size_t len,
		       struct sockaddr_storage *peer, const uint8_t **data, size_t *data_len)
{
	struct tresp r;

	if (len >= LS_TURN_CHANNEL_HDR_LEN && (buf[0] & 0xc0) == 0x40) {
		uint16_t ch = ls_get_be16(buf), dlen = ls_get_be16(buf + 2);

		if ((size_t)dlen > len - LS_TURN_CHANNEL_HDR_LEN)
			return -EBADMSG;
		for (int i = 0; t && i < t->n_channels; i++) {
			if (t->channels[i].number == ch) {
				*peer = t->channels[i].peer;
				*data = buf + LS_TURN_CHANNEL_HDR_LEN;
				*data_len = dlen;
				return 0;
			}
		}
		return -ENOENT;
	}
	if (!ls_stun_is_stun(buf, len) || ls_get_be16(buf) != (LS_TURN_DATA | CLASS_INDICATION))
		return -ENOENT;
	if (tparse(buf, len, &r) || !r.has_peer || !r.has_data)
		return -EBADMSG;
	*peer = r.peer;
	*data = r.data;
	*data_len = r.data_len;
	return 0;
}

const struct sockaddr_storage *ls_turn_relayed(const struct ls_turn *t)
{
	return &t->relayed;
}

const struct sockaddr_storage *ls_turn_mapped(const struct ls_turn *t)
{
	return &t->mapped;
}

uint32_t ls_turn_lifetime(const struct ls_turn *t)
{
	return t->lifetime;
}

int ls_turn_last_error(const struct ls_turn *t)
{
	return t->last_error;
}

void ls_turn_free(struct ls_turn *t, int timeout_ms)
{
	if (!t)
		return;
	if (timeout_ms > 0 && t->relayed.ss_family)
		ls_turn_refresh(t, 0, timeout_ms);
	ls_memzero(t, sizeof(*t));
	free(t);
}
