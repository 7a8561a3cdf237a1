// SPDX-License-Identifier: MIT
/* The lightscale-relay event loop: listeners, signals, status socket, timers. */
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"
#include "prefix.h"
#include "util.h"

const struct lsr_counter_info lsr_counter_info[LSR_C_MAX] = {
#define LSR_X(id, n, h) [LSR_C_##id] = { .name = n, .help = h },
	LSR_COUNTERS(LSR_X)
#undef LSR_X
};

static const char *kind_name(enum lsr_listen_kind k)
{
	switch (k) {
	case LSR_LISTEN_STUN:
		return "stun";
	case LSR_LISTEN_UDP:
		return "udp";
	case LSR_LISTEN_STREAM:
		return "stream";
	case LSR_LISTEN_CONTROL:
		return "control";
	}
	return "?";
}

static int open_listener(struct lsr_server *s, const struct lsr_listen_addr *a, struct lsr_listener *l)
{
	int type = a->kind == LSR_LISTEN_STREAM ? SOCK_STREAM : SOCK_DGRAM;
	int fd, one = 1, zero = 0, err;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &l->io };
	char ep[LS_ENDPOINT_STRLEN];

	fd = socket(a->sa.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* "[::]:P" serves IPv4 too. */
	if (a->sa.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (type == SOCK_DGRAM) {
		int sz = 4 << 20;

		/* Learn each datagram's destination address, to answer from it. */
		setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
		if (a->sa.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	}
	if (bind(fd, (const struct sockaddr *)&a->sa, a->len) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 1024) < 0)) {
		err = -errno;
		ls_endpoint_format((const struct sockaddr *)&a->sa, ep);
		pr_err("cannot listen on %s %s: %s", kind_name(a->kind), ep, strerror(errno));
		close(fd);
		return err;
	}
	l->io.fd = fd;
	l->io.kind = a->kind;
	l->bound_len = sizeof(l->bound);
	getsockname(fd, (struct sockaddr *)&l->bound, &l->bound_len);
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		err = -errno;
		close(fd);
		l->io.fd = -1;
		return err;
	}
	ls_endpoint_format((struct sockaddr *)&l->bound, ep);
	pr_info("listening: %s %s", kind_name(a->kind), ep);
	return 0;
}

static int open_control(struct lsr_server *s, struct lsr_listener *l)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &l->io };
	char dir[sizeof(sun.sun_path)];
	int fd, err;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", s->cfg.control);
	snprintf(dir, sizeof(dir), "%s", s->cfg.control);
	ls_mkdir_p(dirname(dir), 0755);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(sun.sun_path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 16) < 0 ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		err = -errno;
		pr_err("cannot listen on control socket `%s': %s", s->cfg.control, strerror(errno));
		close(fd);
		return err;
	}
	l->io.fd = fd;
	l->io.kind = LSR_LISTEN_CONTROL;
	pr_info("listening: control %s", s->cfg.control);
	return 0;
}

int lsr_server_init(struct lsr_server *s, const struct lsr_config *cfg)
{
	char err[512];
	int r;

	memset(s, 0, sizeof(*s));
	s->cfg = *cfg;
	s->epfd = s->sigfd = -1;
	for (int i = 0; i < LSR_MAX_LISTEN + 1; i++)
		s->listeners[i].io.fd = -1;
	s->started_ms = ls_now_ms();
	lsr_ratelimit_init(&s->proofs, cfg->proof_rate, cfg->proof_rate_total);
	s->dgram = malloc((size_t)LSR_UDP_BATCH * LSR_UDP_SLOT);
	s->sbuf_cap = 256 * 1024;
	s->sbuf = malloc(s->sbuf_cap);
	if (!s->dgram || !s->sbuf || lsr_table_init(&s->udp_by_key, LSR_KEY_LEN) ||
	    lsr_table_init(&s->udp_by_addr, LSR_ADDR_LEN) ||
	    lsr_table_init(&s->stream_by_key, LSR_KEY_LEN))
		return -ENOMEM;
	if (cfg->allowed_keys[0]) {
		r = lsr_auth_load_allowed(&s->auth, cfg->allowed_keys, err, sizeof(err));
		if (r) {
			pr_err("%s", err);
			return r;
		}
	}
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0)
		return -errno;
	for (int i = 0; i < cfg->n_listen; i++) {
		r = open_listener(s, &cfg->listen[i], &s->listeners[s->n_listeners]);
		if (r)
			return r;
		s->n_listeners++;
	}
	if (cfg->control[0]) {
		r = open_control(s, &s->listeners[s->n_listeners]);
		if (r)
			return r;
		s->n_listeners++;
	}
	return 0;
}

bool lsr_key_held_by_other(const struct lsr_server *s, const uint8_t wg_key[LSR_KEY_LEN],
			   const uint8_t ed_pk[LSR_ED_PK_LEN])
{
	const struct lsr_udp_reg *r = lsr_udp_find(s, wg_key);
	const struct lsr_conn *c = lsr_stream_find(s, wg_key);

	return (r && memcmp(r->ed_pk, ed_pk, LSR_ED_PK_LEN)) ||
	       (c && memcmp(c->ed_pk, ed_pk, LSR_ED_PK_LEN));
}

void lsr_server_free(struct lsr_server *s)
{
	while (s->conns)
		lsr_conn_destroy(s, s->conns);
	{
		/* Registrations: free through the key table. */
		struct lsr_hnode *n;

		for (size_t i = 0; s->udp_by_key.buckets && i < s->udp_by_key.nbuckets; i++)
			while ((n = s->udp_by_key.buckets[i]))
				lsr_udp_reg_free(s, lsr_container_of(n, struct lsr_udp_reg, by_key));
	}
	for (int i = 0; i < s->n_listeners; i++) {
		if (s->listeners[i].io.fd >= 0)
			close(s->listeners[i].io.fd);
		if (s->listeners[i].io.kind == LSR_LISTEN_CONTROL)
			unlink(s->cfg.control);
	}
	if (s->sigfd >= 0)
		close(s->sigfd);
	if (s->epfd >= 0)
		close(s->epfd);
	lsr_table_free(&s->udp_by_key);
	lsr_table_free(&s->udp_by_addr);
	lsr_table_free(&s->stream_by_key);
	lsr_auth_clear(&s->auth);
	free(s->dgram);
	s->dgram = NULL;
	free(s->sbuf);
	s->sbuf = NULL;
}

enum { LSR_STATUS_MAX_PEERS = 1000 };

struct peers_ctx {
	json_t *arr;
	uint64_t now;
	size_t skipped;
};

static void udp_peer_json(struct lsr_hnode *n, void *p)
{
	struct peers_ctx *ctx = p;
	const struct lsr_udp_reg *r = lsr_container_of(n, struct lsr_udp_reg, by_key);
	char key[LS_KEY_B64_LEN + 1], ep[LS_ENDPOINT_STRLEN];

	if (json_array_size(ctx->arr) >= LSR_STATUS_MAX_PEERS) {
		ctx->skipped++;
		return;
	}
	ls_key_to_base64(key, r->key);
	ls_endpoint_format((const struct sockaddr *)&r->sa, ep);
	json_array_append_new(ctx->arr, json_pack("{s:s, s:s, s:I, s:I, s:I}", "key", key, "address", ep,
						  "expires_s",
						  (json_int_t)(r->expires_ms > ctx->now ? (r->expires_ms - ctx->now) / 1000 : 0),
						  "rx_packets", (json_int_t)r->rx_pkts, "tx_packets",
						  (json_int_t)r->tx_pkts));
}

json_t *lsr_server_status(const struct lsr_server *s)
{
	struct peers_ctx up = { .arr = json_array(), .now = ls_now_ms() };
	json_t *sp = json_array();
	size_t sp_skipped = 0;
	json_t *root = json_object(), *ls = json_array(), *ctr = json_object();
	size_t active = 0, queued = 0, hello = 0;
	const struct lsr_conn *c;

	for (c = s->conns; c; c = c->next) {
		char key[LS_KEY_B64_LEN + 1], ep[LS_ENDPOINT_STRLEN];

		if (c->dead)
			continue;
		active += c->state == LSR_CONN_ACTIVE;
		hello += c->state == LSR_CONN_HELLO;
		queued += c->wq_bytes;
		if (c->state != LSR_CONN_ACTIVE)
			continue;
		if (json_array_size(sp) >= LSR_STATUS_MAX_PEERS) {
			sp_skipped++;
			continue;
		}
		ls_key_to_base64(key, c->key);
		ls_endpoint_format((const struct sockaddr *)&c->peer, ep);
		json_array_append_new(sp, json_pack("{s:s, s:s, s:I, s:I, s:I}", "key", key, "address", ep,
						    "queued_bytes", (json_int_t)c->wq_bytes, "dropped_frames",
						    (json_int_t)c->drops, "idle_s",
						    (json_int_t)((up.now - c->last_rx_ms) / 1000)));
	}
	lsr_table_foreach((struct lsr_table *)&s->udp_by_key, udp_peer_json, &up);
	for (int i = 0; i < s->n_listeners; i++) {
		const struct lsr_listener *l = &s->listeners[i];
		char ep[sizeof(s->cfg.control) + LS_ENDPOINT_STRLEN];

		if (l->io.kind == LSR_LISTEN_CONTROL)
			snprintf(ep, sizeof(ep), "%s", s->cfg.control);
		else
			ls_endpoint_format((const struct sockaddr *)&l->bound, ep);
		json_array_append_new(ls, json_pack("{s:s, s:s}", "kind", kind_name(l->io.kind),
						    "address", ep));
	}
	for (int i = 0; i < LSR_C_MAX; i++)
		json_object_set_new(ctr, lsr_counter_info[i].name, json_integer((json_int_t)s->counters[i]));
	json_object_set_new(root, "uptime_s", json_integer((json_int_t)((ls_now_ms() - s->started_ms) / 1000)));
	json_object_set_new(root, "listeners", ls);
	json_object_set_new(root, "udp", json_pack("{s:I, s:I}", "registrations",
						  (json_int_t)s->udp_by_key.count, "lifetime_s",
						  (json_int_t)s->cfg.udp_lifetime_s));
	json_object_set_new(root, "stream", json_pack("{s:I, s:I, s:I, s:I}", "connections",
						     (json_int_t)active, "in_hello", (json_int_t)hello,
						     "queued_bytes", (json_int_t)queued, "queue_limit",
						     (json_int_t)s->cfg.queue_limit));
	json_object_set_new(root, "auth", json_string(s->cfg.allowed_keys[0] ? "allowed-keys" : "any-signed-key"));
	json_object_set_new(root, "counters", ctr);
	/* Public keys and addresses of who is on the relay now (the first 1000 of each). */
	json_object_set_new(root, "udp_peers", up.arr);
	json_object_set_new(root, "stream_peers", sp);
	if (up.skipped || sp_skipped)
		json_object_set_new(root, "peers_left_out", json_integer((json_int_t)(up.skipped + sp_skipped)));
	return root;
}

static void control_accept(struct lsr_server *s, struct lsr_listener *l)
{
	for (int i = 0; i < 16; i++) {
		int fd = accept4(l->io.fd, NULL, NULL, SOCK_CLOEXEC);
		json_t *st;
		char *text;

		if (fd < 0)
			return;
		s->counters[LSR_C_CONTROL_REQUESTS]++;
		st = lsr_server_status(s);
		text = json_dumps(st, JSON_COMPACT);
		json_decref(st);
		if (text) {
			/* A few KiB into a fresh Unix socket: one write, never blocks for long. */
			struct timeval tv = { .tv_sec = 1 };
			size_t len = strlen(text), off = 0;

			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
			while (off < len) {
				ssize_t n = write(fd, text + off, len - off);

				if (n <= 0)
					break;
				off += n;
			}
			if (write(fd, "\n", 1) < 0) {
				/* client went away */
			}
			free(text);
		}
		close(fd);
	}
}

static void log_counters(const struct lsr_server *s)
{
	pr_info("counters: udp registrations %zu, stream connections %zu", s->udp_by_key.count,
		s->stream_by_key.count);
	for (int i = 0; i < LSR_C_MAX; i++)
		pr_info("counter %s %llu", lsr_counter_info[i].name, (unsigned long long)s->counters[i]);
}

static void handle_signals(struct lsr_server *s)
{
	struct signalfd_siginfo si;

	while (read(s->sigfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGINT:
		case SIGTERM:
			pr_info("signal %d: shutting down", (int)si.ssi_signo);
			s->stop = true;
			break;
		case SIGUSR1:
			log_counters(s);
			break;
		case SIGHUP:
			if (s->cfg.allowed_keys[0]) {
				char err[512];

				if (lsr_auth_load_allowed(&s->auth, s->cfg.allowed_keys, err, sizeof(err)))
					pr_err("%s (keeping the previous list)", err);
				else
					pr_info("reloaded allowed keys from %s", s->cfg.allowed_keys);
			}
			break;
		}
	}
}

void lsr_server_tick(struct lsr_server *s, uint64_t now)
{
	lsr_udp_expire(s, now);
	lsr_stream_tick(s, now);
}

/* Signals arrive through a signalfd made here, in the process that runs the loop:
 * epoll readiness of a signalfd belongs to the process that created it, so one made
 * before `serve` detaches would never wake the detached child. */
static int open_signals(struct lsr_server *s)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	s->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->sigfd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sigfd, &ev) < 0) {
		pr_err("cannot set up signal handling: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int lsr_server_run(struct lsr_server *s)
{
	struct epoll_event evs[64];
	uint64_t next_tick = ls_now_ms() + 1000;
	int r = open_signals(s);

	if (r)
		return r;
	while (!s->stop) {
		uint64_t now = ls_now_ms();
		int n, timeout = now >= next_tick ? 0 : (int)(next_tick - now);

		n = epoll_wait(s->epfd, evs, (int)ARRAY_SIZE(evs), timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			pr_err("epoll_wait: %s", strerror(errno));
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct lsr_io *io = evs[i].data.ptr;

			if (!io) {
				handle_signals(s);
			} else if (io->is_conn) {
				lsr_stream_event(s, (struct lsr_conn *)io, evs[i].events);
			} else if (io->kind == LSR_LISTEN_STREAM) {
				lsr_stream_accept(s, (struct lsr_listener *)io);
			} else if (io->kind == LSR_LISTEN_CONTROL) {
				control_accept(s, (struct lsr_listener *)io);
			} else {
				lsr_udp_input(s, (struct lsr_listener *)io);
			}
		}
		lsr_stream_flush_pending(s);
		now = ls_now_ms();
		if (now >= next_tick) {
			lsr_server_tick(s, now);
			next_tick = now + 1000;
		}
	}
	/* Tell stream clients, best effort, then go. */
	for (struct lsr_conn *c = s->conns; c; c = c->next)
		lsr_conn_close(s, c, LSR_REASON_SHUTDOWN);
	lsr_stream_flush_pending(s);
	return 0;
}
