// SPDX-License-Identifier: MIT
/* Client side of lightscale-relay: proofs, UDP relay datagrams, stream frames. */
#include "relayclient.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "keys.h"
#include "util.h"

void ls_relay_identity_random(struct ls_relay_identity *id)
{
	uint8_t priv[LS_WG_KEY_LEN];

	ls_wg_genkey(priv);
	ls_wg_pubkey(id->wg_key, priv);
	ls_memzero(priv, sizeof(priv));
	ls_ed25519_keypair(id->ed_pk, id->ed_sk);
}

uint64_t ls_relay_now_unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void signed_bytes(struct lsr_signed *s, uint8_t purpose, const uint8_t key[LSR_KEY_LEN],
			 uint64_t ts_ms, const uint8_t *nonce)
{
	memcpy(s->context, LSR_SIGN_CONTEXT, LSR_SIGN_CONTEXT_LEN);
	s->purpose = purpose;
	memcpy(s->key, key, LSR_KEY_LEN);
	s->ts_ms = htobe64(ts_ms);
	if (nonce)
		memcpy(s->nonce, nonce, LSR_NONCE_LEN);
	else
		memset(s->nonce, 0, LSR_NONCE_LEN);
}

void ls_relay_proof_make(struct lsr_proof *p, uint8_t purpose, const uint8_t key[LSR_KEY_LEN],
			 uint64_t ts_ms, const uint8_t *nonce, const struct ls_relay_identity *id)
{
	struct lsr_signed s;

	signed_bytes(&s, purpose, key, ts_ms, nonce);
	memcpy(p->ed_pk, id->ed_pk, LSR_ED_PK_LEN);
	p->ts_ms = htobe64(ts_ms);
	crypto_sign_ed25519_detached(p->sig, NULL, (const uint8_t *)&s, sizeof(s), id->ed_sk);
}

int ls_relay_proof_verify(const struct lsr_proof *p, uint8_t purpose, const uint8_t key[LSR_KEY_LEN],
			  const uint8_t *nonce)
{
	struct lsr_signed s;
	uint8_t sig[LSR_SIG_LEN], pk[LSR_ED_PK_LEN];

	signed_bytes(&s, purpose, key, be64toh(p->ts_ms), nonce);
	memcpy(sig, p->sig, sizeof(sig));
	memcpy(pk, p->ed_pk, sizeof(pk));
	if (crypto_sign_ed25519_verify_detached(sig, (const uint8_t *)&s, sizeof(s), pk) != 0)
		return -EPERM;
	return 0;
}

void ls_relay_addr_from_sockaddr(struct lsr_addr *a, const struct sockaddr *sa)
{
	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		a->family = 4;
		a->port = sin->sin_port;
		memcpy(a->addr, &sin->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		a->port = sin6->sin6_port;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			a->family = 4;
			memcpy(a->addr, sin6->sin6_addr.s6_addr + 12, 4);
		} else {
			a->family = 6;
			memcpy(a->addr, sin6->sin6_addr.s6_addr, 16);
		}
	}
}

int ls_relay_addr_to_sockaddr(const struct lsr_addr *a, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == 4) {
		struct sockaddr_in *sin = (void *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = a->port;
		memcpy(&sin->sin_addr, a->addr, 4);
		if (len)
			*len = sizeof(*sin);
		return 0;
	}
	if (a->family == 6) {
		struct sockaddr_in6 *sin6 = (void *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = a->port;
		memcpy(&sin6->sin6_addr, a->addr, 16);
		if (len)
			*len = sizeof(*sin6);
		return 0;
	}
	return -EAFNOSUPPORT;
}

/* ------------------------------------------------------------------ UDP relay */

bool ls_relay_udp_is_relay(const void *buf, size_t len)
{
	const struct lsr_udp_hdr *h = buf;

	return buf && len >= LSR_UDP_HDR_LEN && be32toh(h->magic) == LSR_UDP_MAGIC &&
	       h->version == LSR_VERSION;
}

int ls_relay_udp_parse(const uint8_t *buf, size_t len, struct ls_relay_udp_msg *m)
{
	const struct lsr_udp_hdr *h = (const void *)buf;

	if (!ls_relay_udp_is_relay(buf, len) || h->reserved != 0 || !lsr_udp_len_ok(h->type, len))
		return -EBADMSG;
	memset(m, 0, sizeof(*m));
	m->type = h->type;
	memcpy(m->key, h->key, LSR_KEY_LEN);
	switch (h->type) {
	case LSR_UDP_REGISTER:
		m->proof = &((const struct lsr_udp_register *)buf)->proof;
		m->ts_ms = be64toh(m->proof->ts_ms);
		break;
	case LSR_UDP_REGISTERED: {
		const struct lsr_udp_registered *r = (const void *)buf;

		m->ts_ms = be64toh(r->ts_ms);
		m->lifetime_s = be32toh(r->lifetime_s);
		if (ls_relay_addr_to_sockaddr(&r->observed, &m->observed, NULL))
			return -EBADMSG;
		break;
	}
	case LSR_UDP_REJECTED: {
		const struct lsr_udp_rejected *r = (const void *)buf;

		m->ts_ms = be64toh(r->ts_ms);
		m->reason = be32toh(r->reason);
		break;
	}
	case LSR_UDP_DATA:
		m->payload = buf + LSR_UDP_HDR_LEN;
		m->payload_len = len - LSR_UDP_HDR_LEN;
		break;
	}
	return 0;
}

void ls_relay_udp_hdr(struct lsr_udp_hdr *h, uint8_t type, const uint8_t key[LSR_KEY_LEN])
{
	h->magic = htobe32(LSR_UDP_MAGIC);
	h->version = LSR_VERSION;
	h->type = type;
	h->reserved = 0;
	memcpy(h->key, key, LSR_KEY_LEN);
}

int ls_relay_udp_build_register(uint8_t *buf, size_t size, const struct ls_relay_identity *id,
				uint64_t ts_ms)
{
	struct lsr_udp_register r;

	if (size < sizeof(r))
		return -ENOSPC;
	ls_relay_udp_hdr(&r.hdr, LSR_UDP_REGISTER, id->wg_key);
	ls_relay_proof_make(&r.proof, LSR_PURPOSE_UDP, id->wg_key, ts_ms, NULL, id);
	memcpy(buf, &r, sizeof(r));
	return (int)sizeof(r);
}

int ls_relay_udp_register(int fd, const struct sockaddr *relay, socklen_t relay_len,
			  const struct ls_relay_identity *id, int timeout_ms,
			  struct ls_relay_udp_msg *reply)
{
	uint8_t req[LSR_UDP_REGISTER_LEN], buf[2048];
	uint64_t deadline = ls_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	uint64_t next_send = 0, ts = ls_relay_now_unix_ms();
	int len = ls_relay_udp_build_register(req, sizeof(req), id, ts);

	if (len < 0)
		return len;
	for (;;) {
		uint64_t now = ls_now_ms();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (now >= deadline)
			return -ETIMEDOUT;
		if (now >= next_send) {
			if (sendto(fd, req, len, MSG_DONTWAIT, relay, relay_len) < 0 &&
			    errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNREFUSED)
				return -errno;
			next_send = now + 500;
		}
		if (poll(&pfd, 1, (int)((next_send < deadline ? next_send : deadline) - now)) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!(pfd.revents & (POLLIN | POLLERR)))
			continue;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
			    errno == ECONNREFUSED)
				continue;
			return -errno;
		}
		if (ls_relay_udp_parse(buf, (size_t)n, reply) != 0 || reply->ts_ms != ts ||
		    memcmp(reply->key, id->wg_key, LSR_KEY_LEN) != 0)
			continue;
		if (reply->type == LSR_UDP_REGISTERED)
			return 0;
		if (reply->type == LSR_UDP_REJECTED)
			return -EACCES;
	}
}

int ls_relay_udp_send(int fd, const struct sockaddr *relay, socklen_t relay_len,
		      const uint8_t dst[LSR_KEY_LEN], const void *payload, size_t len)
{
	struct lsr_udp_hdr h;
	struct iovec iov[2] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = (void *)payload, .iov_len = len },
	};
	struct msghdr msg = {
		.msg_name = (void *)relay, .msg_namelen = relay_len, .msg_iov = iov, .msg_iovlen = 2,
	};

	if (len == 0 || len > LSR_MAX_PAYLOAD)
		return -EMSGSIZE;
	ls_relay_udp_hdr(&h, LSR_UDP_DATA, dst);
	if (sendmsg(fd, &msg, MSG_DONTWAIT) < 0)
		return -errno;
	return 0;
}

/* --------------------------------------------------------------- stream frames */

void ls_relay_frame_hdr(struct lsr_frame_hdr *h, uint8_t type, uint32_t len)
{
	h->type = type;
	memset(h->reserved, 0, sizeof(h->reserved));
	h->len = htobe32(len);
}

int ls_relay_frame_parse(const uint8_t *buf, size_t len, struct ls_relay_frame *f, size_t *consumed)
{
	const struct lsr_frame_hdr *h = (const void *)buf;
	const uint8_t *body;
	uint32_t blen;

	if (len < LSR_FRAME_HDR_LEN)
		return -EAGAIN;
	blen = be32toh(h->len);
	if (h->reserved[0] || h->reserved[1] || h->reserved[2] || !lsr_frame_len_ok(h->type, blen))
		return -EBADMSG;
	if (len - LSR_FRAME_HDR_LEN < blen)
		return -EAGAIN;
	body = buf + LSR_FRAME_HDR_LEN;
	memset(f, 0, sizeof(*f));
	f->type = h->type;
	f->body = body;
	f->body_len = blen;
	switch (h->type) {
	case LSR_FRAME_SERVER_HELLO: {
		const struct lsr_server_hello *s = (const void *)body;

		if (be32toh(s->magic) != LSR_STREAM_MAGIC || s->version != LSR_VERSION)
			return -EBADMSG;
		break;
	}
	case LSR_FRAME_CLIENT_HELLO: {
		const struct lsr_client_hello *c = (const void *)body;

		if (be32toh(c->magic) != LSR_STREAM_MAGIC || c->version != LSR_VERSION)
			return -EBADMSG;
		memcpy(f->key, c->key, LSR_KEY_LEN);
		break;
	}
	case LSR_FRAME_SEND:
	case LSR_FRAME_RECV:
	case LSR_FRAME_PROBE:
	case LSR_FRAME_PROBE_RECV:
		memcpy(f->key, body, LSR_KEY_LEN);
		f->payload = body + LSR_KEY_LEN;
		f->payload_len = blen - LSR_KEY_LEN;
		break;
	case LSR_FRAME_PEER_GONE: {
		const struct lsr_peer_gone *g = (const void *)body;

		memcpy(f->key, g->key, LSR_KEY_LEN);
		f->reason = be32toh(g->reason);
		break;
	}
	case LSR_FRAME_PING:
	case LSR_FRAME_PONG:
		f->payload = body;
		f->payload_len = blen;
		break;
	case LSR_FRAME_CLOSE: {
		const struct lsr_close *c = (const void *)body;

		f->reason = be32toh(c->reason);
		f->payload = body + sizeof(*c);
		f->payload_len = blen - sizeof(*c);
		break;
	}
	}
	*consumed = LSR_FRAME_HDR_LEN + blen;
	return 0;
}

const char *ls_relay_reason_str(uint32_t reason)
{
	static const char *const names[LSR_REASON_MAX] = {
		[LSR_REASON_NONE] = "none",
		[LSR_REASON_BAD_SIGNATURE] = "bad signature",
		[LSR_REASON_STALE] = "timestamp outside the allowed clock skew",
		[LSR_REASON_REPLAY] = "replayed registration",
		[LSR_REASON_DENIED] = "key not allowed",
		[LSR_REASON_FULL] = "relay full",
		[LSR_REASON_MALFORMED] = "malformed frame",
		[LSR_REASON_REPLACED] = "replaced by a newer connection",
		[LSR_REASON_VERSION] = "unsupported version",
		[LSR_REASON_PROTOCOL] = "protocol violation",
		[LSR_REASON_TIMEOUT] = "timeout",
		[LSR_REASON_SHUTDOWN] = "relay shutting down",
		[LSR_REASON_RATE_LIMITED] = "too many attempts, try later",
	};

	return reason < LSR_REASON_MAX && names[reason] ? names[reason] : "unknown reason";
}

/* ------------------------------------------------------------- stream client */

enum rs_state { RS_READY = 0, RS_CONNECTING, RS_WAIT_SERVER_HELLO, RS_WAIT_ACCEPT };

struct ls_relay_stream {
	int fd;
	enum rs_state state;
	struct ls_relay_identity *id; /* until the hello is signed, then wiped */
	uint8_t *rbuf;
	size_t rlen, roff, rcap;
	uint8_t *pending; /* the unwritten tail of a frame: written before anything else */
	size_t pending_len, pending_off;
	uint32_t keepalive_s, max_payload;
	struct sockaddr_storage observed;
};

int ls_relay_stream_fd(const struct ls_relay_stream *rs)
{
	return rs->fd;
}

uint32_t ls_relay_stream_keepalive(const struct ls_relay_stream *rs)
{
	return rs->keepalive_s;
}

const struct sockaddr_storage *ls_relay_stream_observed(const struct ls_relay_stream *rs)
{
	return &rs->observed;
}

static void forget_identity(struct ls_relay_stream *rs);

void ls_relay_stream_free(struct ls_relay_stream *rs)
{
	if (!rs)
		return;
	if (rs->fd >= 0)
		close(rs->fd);
	free(rs->rbuf);
	free(rs->pending);
	forget_identity(rs);
	free(rs);
}

static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		uint64_t now = ls_now_ms();
		struct pollfd pfd = { .fd = fd, .events = events };
		int r;

		r = poll(&pfd, 1, now >= deadline ? 0 : (int)(deadline - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		return 0;
	}
}

/* Writes the pending tail of an earlier frame. 0 when none is left, -EAGAIN when
 * the socket stays full until the deadline, or -errno. */
static int flush_pending(struct ls_relay_stream *rs, uint64_t deadline)
{
	while (rs->pending_off < rs->pending_len) {
		ssize_t n = write(rs->fd, rs->pending + rs->pending_off, rs->pending_len - rs->pending_off);
		int err;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			err = wait_fd(rs->fd, POLLOUT, deadline);
			if (err)
				return err == -ETIMEDOUT ? -EAGAIN : err;
			continue;
		}
		rs->pending_off += n;
	}
	free(rs->pending);
	rs->pending = NULL;
	rs->pending_len = rs->pending_off = 0;
	return 0;
}

/* Writes one whole frame or none of it: a frame that the socket took only in part
 * is kept and finished by the next write (so a timeout never corrupts the stream).
 * 0 (written or committed), -EAGAIN (an earlier frame is still not out; nothing
 * was written), -errno. */
static int write_frame(struct ls_relay_stream *rs, struct iovec *iov, int cnt, int timeout_ms)
{
	uint64_t deadline = ls_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	size_t total = 0, done = 0;
	int err = flush_pending(rs, deadline);

	if (err)
		return err;
	for (int i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	while (cnt > 0) {
		ssize_t n = writev(rs->fd, iov, cnt);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			err = wait_fd(rs->fd, POLLOUT, deadline);
			if (err == -ETIMEDOUT && done == 0)
				return -EAGAIN;
			if (err == -ETIMEDOUT)
				break;
			if (err)
				return err;
			continue;
		}
		done += n;
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= n;
		}
	}
	if (cnt > 0) {
		/* Keep the rest of this frame for later. */
		size_t off = 0;

		rs->pending = malloc(total - done);
		if (!rs->pending)
			return -ENOMEM;
		for (int i = 0; i < cnt; i++) {
			memcpy(rs->pending + off, iov[i].iov_base, iov[i].iov_len);
			off += iov[i].iov_len;
		}
		rs->pending_len = off;
		rs->pending_off = 0;
	}
	return 0;
}

int ls_relay_stream_flush(struct ls_relay_stream *rs, int timeout_ms)
{
	return flush_pending(rs, ls_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0));
}

bool ls_relay_stream_want_write(const struct ls_relay_stream *rs)
{
	return rs->pending_off < rs->pending_len;
}

int ls_relay_stream_write(struct ls_relay_stream *rs, const void *buf, size_t len, int timeout_ms)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return write_frame(rs, &iov, 1, timeout_ms);
}

static int send_keyed(struct ls_relay_stream *rs, uint8_t type, const uint8_t key[LSR_KEY_LEN],
		      const void *payload, size_t len, int timeout_ms)
{
	struct lsr_frame_hdr h;
	uint8_t k[LSR_KEY_LEN];
	struct iovec iov[3] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = k, .iov_len = LSR_KEY_LEN },
		{ .iov_base = (void *)payload, .iov_len = len },
	};

	if (!lsr_frame_len_ok(type, LSR_KEY_LEN + len))
		return -EMSGSIZE;
	memcpy(k, key, LSR_KEY_LEN);
	ls_relay_frame_hdr(&h, type, LSR_KEY_LEN + len);
	return write_frame(rs, iov, len ? 3 : 2, timeout_ms);
}

int ls_relay_stream_send(struct ls_relay_stream *rs, const uint8_t dst[LSR_KEY_LEN],
			 const void *payload, size_t len, int timeout_ms)
{
	return send_keyed(rs, LSR_FRAME_SEND, dst, payload, len, timeout_ms);
}

int ls_relay_stream_probe(struct ls_relay_stream *rs, const uint8_t dst[LSR_KEY_LEN],
			  const void *data, size_t len, int timeout_ms)
{
	return send_keyed(rs, LSR_FRAME_PROBE, dst, data, len, timeout_ms);
}

static int send_small(struct ls_relay_stream *rs, uint8_t type, const void *body, size_t len,
		      int timeout_ms)
{
	struct lsr_frame_hdr h;
	struct iovec iov[2] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = (void *)body, .iov_len = len },
	};

	ls_relay_frame_hdr(&h, type, len);
	return write_frame(rs, iov, 2, timeout_ms);
}

int ls_relay_stream_ping(struct ls_relay_stream *rs, const uint8_t data[8], int timeout_ms)
{
	return send_small(rs, LSR_FRAME_PING, data, LSR_PING_LEN, timeout_ms);
}

int ls_relay_stream_recv(struct ls_relay_stream *rs, struct ls_relay_frame *f, int timeout_ms)
{
	uint64_t deadline = ls_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);

	for (;;) {
		size_t consumed;
		ssize_t n;
		int err;

		err = ls_relay_frame_parse(rs->rbuf + rs->roff, rs->rlen - rs->roff, f, &consumed);
		if (err == 0) {
			rs->roff += consumed;
			if (f->type == LSR_FRAME_PING)
				send_small(rs, LSR_FRAME_PONG, f->payload, LSR_PING_LEN, 0);
			return 0;
		}
		if (err != -EAGAIN)
			return err;
		/* Compact, grow to a whole frame, read more. */
		if (rs->roff) {
			memmove(rs->rbuf, rs->rbuf + rs->roff, rs->rlen - rs->roff);
			rs->rlen -= rs->roff;
			rs->roff = 0;
		}
		if (rs->rcap - rs->rlen < 4096 && rs->rcap < LSR_FRAME_HDR_LEN + LSR_FRAME_MAX_BODY) {
			size_t cap = LSR_FRAME_HDR_LEN + LSR_FRAME_MAX_BODY;
			uint8_t *nb = realloc(rs->rbuf, cap);

			if (!nb)
				return -ENOMEM;
			rs->rbuf = nb;
			rs->rcap = cap;
		}
		n = read(rs->fd, rs->rbuf + rs->rlen, rs->rcap - rs->rlen);
		if (n > 0) {
			rs->rlen += n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		err = wait_fd(rs->fd, POLLIN, deadline);
		if (err)
			return err;
	}
}

int ls_relay_stream_adopt(struct ls_relay_stream **out, int fd)
{
	struct ls_relay_stream *rs = calloc(1, sizeof(*rs));
	int fl = fcntl(fd, F_GETFL);

	if (!rs)
		return -ENOMEM;
	rs->rcap = 4096;
	rs->rbuf = malloc(rs->rcap);
	if (!rs->rbuf || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		free(rs->rbuf);
		free(rs);
		return fl < 0 ? -errno : -ENOMEM;
	}
	rs->fd = fd;
	*out = rs;
	return 0;
}

int ls_relay_stream_start(struct ls_relay_stream **out, const struct sockaddr *relay,
			  socklen_t relay_len, const struct ls_relay_identity *id)
{
	struct ls_relay_stream *rs;
	int one = 1, err;

	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	rs->rcap = 4096;
	rs->rbuf = malloc(rs->rcap);
	rs->fd = socket(relay->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	rs->id = malloc(sizeof(*rs->id));
	if (!rs->rbuf || !rs->id || rs->fd < 0) {
		err = rs->fd < 0 ? -errno : -ENOMEM;
		goto cleanup;
	}
	memcpy(rs->id, id, sizeof(*id));
	setsockopt(rs->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	rs->state = RS_CONNECTING;
	if (connect(rs->fd, relay, relay_len) < 0 && errno != EINPROGRESS) {
		err = -errno;
		goto cleanup;
	}
	*out = rs;
	return 0;
cleanup:
	ls_relay_stream_free(rs);
	return err;
}

short ls_relay_stream_events(const struct ls_relay_stream *rs)
{
	if (rs->state == RS_CONNECTING)
		return POLLOUT;
	return POLLIN | (ls_relay_stream_want_write(rs) ? POLLOUT : 0);
}

static void forget_identity(struct ls_relay_stream *rs)
{
	if (rs->id) {
		ls_memzero(rs->id, sizeof(*rs->id));
		free(rs->id);
		rs->id = NULL;
	}
}

int ls_relay_stream_step(struct ls_relay_stream *rs, uint32_t *reason)
{
	struct ls_relay_frame f;
	int err;

	for (;;) {
		switch (rs->state) {
		case RS_CONNECTING: {
			struct pollfd p = { .fd = rs->fd, .events = POLLOUT };
			socklen_t elen = sizeof(err);

			if (poll(&p, 1, 0) == 0)
				return -EINPROGRESS;
			if (getsockopt(rs->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err)
				return err > 0 ? -err : -ECONNREFUSED;
			rs->state = RS_WAIT_SERVER_HELLO;
			break;
		}
		case RS_WAIT_SERVER_HELLO: {
			struct lsr_client_hello hello;

			err = ls_relay_stream_recv(rs, &f, 0);
			if (err == -ETIMEDOUT)
				return -EINPROGRESS;
			if (err)
				return err;
			if (f.type != LSR_FRAME_SERVER_HELLO)
				return -EBADMSG;
			memset(&hello, 0, sizeof(hello));
			hello.magic = htobe32(LSR_STREAM_MAGIC);
			hello.version = LSR_VERSION;
			memcpy(hello.key, rs->id->wg_key, LSR_KEY_LEN);
			ls_relay_proof_make(&hello.proof, LSR_PURPOSE_STREAM, rs->id->wg_key,
					    ls_relay_now_unix_ms(),
					    ((const struct lsr_server_hello *)f.body)->nonce, rs->id);
			forget_identity(rs);
			/* Whole or kept for later: the flush below finishes it. */
			err = send_small(rs, LSR_FRAME_CLIENT_HELLO, &hello, sizeof(hello), 0);
			if (err && err != -EAGAIN)
				return err;
			rs->state = RS_WAIT_ACCEPT;
			break;
		}
		case RS_WAIT_ACCEPT:
			err = ls_relay_stream_flush(rs, 0);
			if (err && err != -EAGAIN)
				return err;
			err = ls_relay_stream_recv(rs, &f, 0);
			if (err == -ETIMEDOUT)
				return -EINPROGRESS;
			if (err)
				return err;
			if (f.type == LSR_FRAME_CLOSE) {
				if (reason)
					*reason = f.reason;
				return -EACCES;
			}
			if (f.type != LSR_FRAME_SERVER_ACCEPT)
				return -EBADMSG;
			{
				const struct lsr_server_accept *a = f.body;

				rs->keepalive_s = be32toh(a->keepalive_s);
				rs->max_payload = be32toh(a->max_payload);
				ls_relay_addr_to_sockaddr(&a->observed, &rs->observed, NULL);
			}
			rs->state = RS_READY;
			return 0;
		case RS_READY:
			return 0;
		}
	}
}

int ls_relay_stream_connect(struct ls_relay_stream **out, const struct sockaddr *relay,
			    socklen_t relay_len, const struct ls_relay_identity *id, int timeout_ms,
			    uint32_t *reason)
{
	uint64_t deadline = ls_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	struct ls_relay_stream *rs;
	int err = ls_relay_stream_start(&rs, relay, relay_len, id);

	if (err)
		return err;
	while ((err = ls_relay_stream_step(rs, reason)) == -EINPROGRESS) {
		err = wait_fd(rs->fd, ls_relay_stream_events(rs), deadline);
		if (err)
			break;
	}
	if (err) {
		ls_relay_stream_free(rs);
		return err;
	}
	*out = rs;
	return 0;
}
