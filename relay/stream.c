// SPDX-License-Identifier: MIT
/* The stream relay: TCP connections carrying frames (wire.h), one epoll loop,
 * per-connection write queues with a byte limit (slow readers lose frames, the
 * relay never blocks on them). */
#include "relay.h"

#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"
#include "prefix.h"
#include "relayclient.h"
#include "util.h"

enum { LSR_RBUF_MIN = 4096 };

static void count(struct lsr_server *s, enum lsr_counter c, uint64_t n)
{
	s->counters[c] += n;
}

struct lsr_conn *lsr_stream_find(const struct lsr_server *s, const uint8_t key[LSR_KEY_LEN])
{
	struct lsr_hnode *n = lsr_table_find(&s->stream_by_key, key);

	return n ? lsr_container_of(n, struct lsr_conn, by_key) : NULL;
}

static void update_events(struct lsr_server *s, struct lsr_conn *c)
{
	struct epoll_event ev = { .data.ptr = &c->io };

	if (c->io.fd < 0)
		return;
	ev.events = (c->state != LSR_CONN_CLOSING ? EPOLLIN : 0) | (c->want_out ? EPOLLOUT : 0);
	epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->io.fd, &ev);
}

static void unlink_key(struct lsr_server *s, struct lsr_conn *c)
{
	if (c->in_table) {
		lsr_table_remove(&s->stream_by_key, &c->by_key);
		c->in_table = false;
	}
}

/* Frees a connection now: its socket, its queue, its slot. */
void lsr_conn_destroy(struct lsr_server *s, struct lsr_conn *c)
{
	struct lsr_wchunk *w, *next;

	unlink_key(s, c);
	if (c->in_flush) {
		struct lsr_conn **pp;

		for (pp = &s->flush_list; *pp; pp = &(*pp)->flush_next) {
			if (*pp == c) {
				*pp = c->flush_next;
				break;
			}
		}
	}
	if (c->io.fd >= 0) {
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->io.fd, NULL);
		close(c->io.fd);
	}
	if (c->prev)
		c->prev->next = c->next;
	else if (s->conns == c)
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	for (w = c->wq_head; w; w = next) {
		next = w->next;
		free(w);
	}
	free(c->rbuf);
	free(c);
	s->n_conns--;
}

/* Stops a connection at once (peer gone, write error). It stays allocated until
 * the end of this loop iteration (events of the same batch may still name it). */
static void conn_kill(struct lsr_server *s, struct lsr_conn *c)
{
	unlink_key(s, c);
	if (c->io.fd >= 0) {
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->io.fd, NULL);
		shutdown(c->io.fd, SHUT_RDWR);
	}
	c->state = LSR_CONN_CLOSING;
	c->deadline_ms = 0; /* reaped by the next tick or the end of the batch */
	c->want_out = false;
	c->dead = true;
}

static bool conn_dead(const struct lsr_conn *c)
{
	return c->dead;
}

static void conn_flush(struct lsr_server *s, struct lsr_conn *c)
{
	while (c->wq_head && !conn_dead(c)) {
		struct iovec iov[64];
		struct lsr_wchunk *w = c->wq_head;
		int cnt = 0;
		ssize_t n;

		for (; w && cnt < 64; w = w->next, cnt++) {
			iov[cnt].iov_base = w->data + w->off;
			iov[cnt].iov_len = w->len - w->off;
		}
		n = writev(c->io.fd, iov, cnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_kill(s, c);
			return;
		}
		while (n > 0) {
			w = c->wq_head;
			if ((size_t)n >= w->len - w->off) {
				n -= w->len - w->off;
				c->wq_bytes -= w->len;
				c->wq_head = w->next;
				if (!c->wq_head)
					c->wq_tail = NULL;
				free(w);
			} else {
				w->off += n;
				n = 0;
			}
		}
	}
	if (conn_dead(c))
		return;
	if (!c->wq_head && c->state == LSR_CONN_CLOSING) {
		conn_kill(s, c);
		return;
	}
	if (c->want_out != (c->wq_head != NULL)) {
		c->want_out = c->wq_head != NULL;
		update_events(s, c);
	}
}

/* Queues header + up to three body pieces. droppable frames respect the limit. */
static int queue_frame(struct lsr_server *s, struct lsr_conn *c, uint8_t type, bool droppable,
		       const void *p1, size_t l1, const void *p2, size_t l2, const void *p3, size_t l3)
{
	size_t len = LSR_FRAME_HDR_LEN + l1 + l2 + l3;
	struct lsr_wchunk *w;
	struct lsr_frame_hdr h;

	if (conn_dead(c) || (c->state == LSR_CONN_CLOSING && type != LSR_FRAME_CLOSE))
		return -EPIPE;
	if (droppable && c->wq_bytes + len > s->cfg.queue_limit) {
		c->drops++;
		count(s, LSR_C_STREAM_QUEUE_DROPS, 1);
		return -ENOBUFS;
	}
	w = malloc(sizeof(*w) + len);
	if (!w)
		return -ENOMEM;
	ls_relay_frame_hdr(&h, type, (uint32_t)(l1 + l2 + l3));
	memcpy(w->data, &h, sizeof(h));
	if (l1)
		memcpy(w->data + sizeof(h), p1, l1);
	if (l2)
		memcpy(w->data + sizeof(h) + l1, p2, l2);
	if (l3)
		memcpy(w->data + sizeof(h) + l1 + l2, p3, l3);
	w->len = len;
	w->off = 0;
	w->next = NULL;
	if (c->wq_tail)
		c->wq_tail->next = w;
	else
		c->wq_head = w;
	c->wq_tail = w;
	c->wq_bytes += len;
	/* Written at the end of this loop iteration, with whatever else comes. */
	if (!c->in_flush) {
		c->in_flush = true;
		c->flush_next = s->flush_list;
		s->flush_list = c;
	}
	return 0;
}

void lsr_stream_flush_pending(struct lsr_server *s)
{
	while (s->flush_list) {
		struct lsr_conn *c = s->flush_list;

		s->flush_list = c->flush_next;
		c->flush_next = NULL;
		c->in_flush = false;
		if (!c->dead)
			conn_flush(s, c);
	}
}

int lsr_conn_queue_keyed(struct lsr_server *s, struct lsr_conn *c, uint8_t type,
			 const uint8_t key[LSR_KEY_LEN], const uint8_t *payload, size_t len)
{
	return queue_frame(s, c, type, true, key, LSR_KEY_LEN, payload, len, NULL, 0);
}

void lsr_conn_close(struct lsr_server *s, struct lsr_conn *c, uint32_t reason)
{
	struct lsr_close cl = { .reason = htobe32(reason) };
	const char *text = ls_relay_reason_str(reason);

	if (conn_dead(c) || c->state == LSR_CONN_CLOSING)
		return;
	unlink_key(s, c);
	c->state = LSR_CONN_CLOSING;
	c->deadline_ms = ls_now_ms() + 2000;
	update_events(s, c);
	/* queue_frame flushes; an empty queue afterwards ends the connection. */
	queue_frame(s, c, LSR_FRAME_CLOSE, false, &cl, sizeof(cl), text, strlen(text), NULL, 0);
}

struct lsr_conn *lsr_conn_new(struct lsr_server *s, int fd, const struct sockaddr *peer)
{
	struct lsr_conn *c = calloc(1, sizeof(*c));
	struct lsr_server_hello hello;

	if (!c)
		return NULL;
	c->io.fd = fd;
	c->io.kind = LSR_LISTEN_STREAM;
	c->io.is_conn = true;
	c->srv = s;
	c->by_key.key = c->key;
	c->state = LSR_CONN_HELLO;
	c->last_rx_ms = ls_now_ms();
	c->deadline_ms = c->last_rx_ms + (uint64_t)s->cfg.hello_timeout_s * 1000;
	if (peer)
		memcpy(&c->peer, peer, peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
								      sizeof(struct sockaddr_in));
	randombytes_buf(c->nonce, sizeof(c->nonce));
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	if (fd >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &c->io };

		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			lsr_conn_destroy(s, c);
			return NULL;
		}
	}
	memset(&hello, 0, sizeof(hello));
	hello.magic = htobe32(LSR_STREAM_MAGIC);
	hello.version = LSR_VERSION;
	memcpy(hello.nonce, c->nonce, sizeof(hello.nonce));
	queue_frame(s, c, LSR_FRAME_SERVER_HELLO, false, &hello, sizeof(hello), NULL, 0, NULL, 0);
	return c;
}

void lsr_stream_accept(struct lsr_server *s, struct lsr_listener *l)
{
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int fd, one = 1;

		fd = accept4(l->io.fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		count(s, LSR_C_STREAM_ACCEPTED, 1);
		if (s->n_conns >= s->cfg.max_stream) {
			uint8_t frame[LSR_FRAME_HDR_LEN + sizeof(struct lsr_close)];
			struct lsr_close cl = { .reason = htobe32(LSR_REASON_FULL) };

			ls_relay_frame_hdr((struct lsr_frame_hdr *)frame, LSR_FRAME_CLOSE, sizeof(cl));
			memcpy(frame + LSR_FRAME_HDR_LEN, &cl, sizeof(cl));
			if (write(fd, frame, sizeof(frame)) < 0) {
				/* best effort */
			}
			close(fd);
			count(s, LSR_C_STREAM_REFUSED, 1);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (!lsr_conn_new(s, fd, (struct sockaddr *)&peer))
			close(fd);
	}
}

static void handle_hello(struct lsr_server *s, struct lsr_conn *c, const struct ls_relay_frame *f)
{
	const struct lsr_client_hello *h = f->body;
	struct lsr_server_accept acc;
	struct lsr_conn *old;
	uint32_t reason;

	if (!lsr_ratelimit_allow(&s->proofs, (struct sockaddr *)&c->peer, ls_now_ms())) {
		count(s, LSR_C_STREAM_RATE_LIMITED, 1);
		lsr_conn_close(s, c, LSR_REASON_RATE_LIMITED);
		return;
	}
	reason = lsr_auth_check(&s->auth, &h->proof, LSR_PURPOSE_STREAM, h->key, c->nonce);
	if (!reason && lsr_key_held_by_other(s, h->key, h->proof.ed_pk))
		reason = LSR_REASON_DENIED;
	if (reason) {
		count(s, LSR_C_STREAM_HELLO_FAILED, 1);
		lsr_conn_close(s, c, reason);
		return;
	}
	memcpy(c->key, h->key, LSR_KEY_LEN);
	memcpy(c->ed_pk, h->proof.ed_pk, LSR_ED_PK_LEN);
	old = lsr_stream_find(s, c->key);
	if (old) {
		count(s, LSR_C_STREAM_REPLACED, 1);
		lsr_conn_close(s, old, LSR_REASON_REPLACED);
	}
	lsr_table_insert(&s->stream_by_key, &c->by_key);
	c->in_table = true;
	c->state = LSR_CONN_ACTIVE;
	count(s, LSR_C_STREAM_HELLO_OK, 1);
	if (ls_log_level >= LS_LOG_DEBUG) {
		char ep[LS_ENDPOINT_STRLEN], k[LS_KEY_B64_LEN + 1];

		ls_endpoint_format((struct sockaddr *)&c->peer, ep);
		ls_key_to_base64(k, c->key);
		pr_debug("stream: %s is %s%s", ep, k, old ? " (replaced an older connection)" : "");
	}
	acc.keepalive_s = htobe32(s->cfg.keepalive_s);
	acc.max_payload = htobe32(LSR_MAX_PAYLOAD);
	ls_relay_addr_from_sockaddr(&acc.observed, (struct sockaddr *)&c->peer);
	queue_frame(s, c, LSR_FRAME_SERVER_ACCEPT, false, &acc, sizeof(acc), NULL, 0, NULL, 0);
}

static void handle_keyed(struct lsr_server *s, struct lsr_conn *c, const struct ls_relay_frame *f)
{
	bool probe = f->type == LSR_FRAME_PROBE;
	struct lsr_conn *dst = lsr_stream_find(s, f->key);
	struct lsr_udp_reg *udst;

	if (dst) {
		if (lsr_conn_queue_keyed(s, dst, probe ? LSR_FRAME_PROBE_RECV : LSR_FRAME_RECV, c->key,
					 f->payload, f->payload_len) == 0) {
			if (probe) {
				count(s, LSR_C_STREAM_PROBES, 1);
			} else {
				count(s, LSR_C_STREAM_FWD_FRAMES, 1);
				count(s, LSR_C_STREAM_FWD_BYTES, f->payload_len);
			}
		}
		return;
	}
	udst = probe ? NULL : lsr_udp_find(s, f->key);
	if (udst) {
		if (lsr_udp_deliver(s, udst, c->key, f->payload, f->payload_len) == 0) {
			count(s, LSR_C_STREAM_FWD_FRAMES, 1);
			count(s, LSR_C_STREAM_FWD_BYTES, f->payload_len);
		}
		return;
	}
	count(s, LSR_C_STREAM_UNKNOWN_DST, 1);
	{
		struct lsr_peer_gone g;

		memcpy(g.key, f->key, LSR_KEY_LEN);
		g.reason = htobe32(LSR_PEER_GONE_UNKNOWN);
		queue_frame(s, c, LSR_FRAME_PEER_GONE, true, &g, sizeof(g), NULL, 0, NULL, 0);
	}
}

static void handle_frame(struct lsr_server *s, struct lsr_conn *c, const struct ls_relay_frame *f)
{
	if (c->state == LSR_CONN_HELLO) {
		if (f->type == LSR_FRAME_CLIENT_HELLO) {
			handle_hello(s, c, f);
		} else {
			count(s, LSR_C_STREAM_PROTOCOL, 1);
			lsr_conn_close(s, c, LSR_REASON_PROTOCOL);
		}
		return;
	}
	switch (f->type) {
	case LSR_FRAME_SEND:
	case LSR_FRAME_PROBE:
		handle_keyed(s, c, f);
		break;
	case LSR_FRAME_PING:
		count(s, LSR_C_STREAM_PINGS, 1);
		queue_frame(s, c, LSR_FRAME_PONG, true, f->payload, LSR_PING_LEN, NULL, 0, NULL, 0);
		break;
	case LSR_FRAME_PONG:
		break;
	case LSR_FRAME_CLOSE:
		conn_kill(s, c);
		break;
	default: /* a second hello, or a server-to-client frame */
		count(s, LSR_C_STREAM_PROTOCOL, 1);
		lsr_conn_close(s, c, LSR_REASON_PROTOCOL);
		break;
	}
}

/* Handles every whole frame in buf[0..len); returns the bytes consumed. */
static size_t process(struct lsr_server *s, struct lsr_conn *c, const uint8_t *buf, size_t len)
{
	size_t off = 0;

	while (!conn_dead(c) && c->state != LSR_CONN_CLOSING) {
		struct ls_relay_frame f;
		size_t consumed;
		int r = ls_relay_frame_parse(buf + off, len - off, &f, &consumed);

		if (r == -EAGAIN)
			break;
		if (r) {
			count(s, LSR_C_STREAM_MALFORMED, 1);
			lsr_conn_close(s, c, LSR_REASON_MALFORMED);
			break;
		}
		c->last_rx_ms = ls_now_ms();
		handle_frame(s, c, &f);
		off += consumed;
	}
	return off;
}

/* s->sbuf holds the connection's pending partial frame and new bytes: handle the
 * whole frames in place, keep the rest (less than one frame) with the connection. */
static void feed(struct lsr_server *s, struct lsr_conn *c, size_t have)
{
	size_t off = process(s, c, s->sbuf, have), rest = have - off;

	c->rlen = 0;
	if (conn_dead(c) || c->state == LSR_CONN_CLOSING)
		return;
	if (rest > c->rcap || (c->rcap > LSR_RBUF_MIN && rest <= LSR_RBUF_MIN)) {
		size_t cap = rest > LSR_RBUF_MIN ? rest : LSR_RBUF_MIN;
		uint8_t *nb = realloc(c->rbuf, cap);

		if (!nb) {
			conn_kill(s, c);
			return;
		}
		c->rbuf = nb;
		c->rcap = cap;
	}
	if (rest)
		memcpy(c->rbuf, s->sbuf + off, rest);
	c->rlen = rest;
}

void lsr_stream_input(struct lsr_server *s, struct lsr_conn *c, const uint8_t *buf, size_t len)
{
	while (len && !conn_dead(c) && c->state != LSR_CONN_CLOSING) {
		size_t pending = c->rlen, n;

		if (pending)
			memcpy(s->sbuf, c->rbuf, pending);
		n = s->sbuf_cap - pending < len ? s->sbuf_cap - pending : len;
		memcpy(s->sbuf + pending, buf, n);
		buf += n;
		len -= n;
		feed(s, c, pending + n);
	}
}

void lsr_stream_event(struct lsr_server *s, struct lsr_conn *c, uint32_t events)
{
	if (conn_dead(c))
		return;
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->state != LSR_CONN_CLOSING) {
		size_t pending = c->rlen;
		ssize_t n;

		if (pending)
			memcpy(s->sbuf, c->rbuf, pending);
		n = read(c->io.fd, s->sbuf + pending, s->sbuf_cap - pending);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			conn_kill(s, c);
			return;
		}
		if (n > 0)
			feed(s, c, pending + (size_t)n);
	} else if (events & (EPOLLHUP | EPOLLERR)) {
		conn_kill(s, c);
		return;
	}
	if ((events & EPOLLOUT) && !conn_dead(c))
		conn_flush(s, c);
}

void lsr_stream_tick(struct lsr_server *s, uint64_t now)
{
	struct lsr_conn *c, *next;
	uint64_t idle = (uint64_t)s->cfg.idle_timeout_s * 1000;

	for (c = s->conns; c; c = next) {
		next = c->next;
		if (conn_dead(c)) {
			lsr_conn_destroy(s, c);
		} else if (c->state == LSR_CONN_HELLO && now >= c->deadline_ms) {
			count(s, LSR_C_STREAM_TIMEOUTS, 1);
			lsr_conn_close(s, c, LSR_REASON_TIMEOUT);
		} else if (c->state == LSR_CONN_ACTIVE && now >= c->last_rx_ms + idle) {
			count(s, LSR_C_STREAM_TIMEOUTS, 1);
			lsr_conn_close(s, c, LSR_REASON_TIMEOUT);
		} else if (c->state == LSR_CONN_CLOSING && now >= c->deadline_ms) {
			conn_kill(s, c);
			lsr_conn_destroy(s, c);
		}
	}
}
