// SPDX-License-Identifier: MIT
/*
 * control-bench: netmap build time and long-poll fan-out of lightscale-control, over plain
 * HTTP and over HTTPS side by side.
 *
 *   control-bench --db DSN --admin-key-file F
 *                 [--server URL --pid PID]                        plain HTTP server
 *                 [--tls-server URL --tls-pid PID                 HTTPS server (same database)
 *                  --enroll TOKEN@IDENTITY@PINS | --pin-file F]
 *                 [--waiters 5000] [--rounds 5] [--samples 20]
 *
 * 1. Seeds networks of 1,000 and 10,000 nodes straight into the database (COPY), with
 *    machine keys derived from the node index so this program can sign for any node; with
 *    both servers, a second 10,000-node network so each server's waiters have their own.
 * 2. Full netmaps: alternates the networks (and the servers) for --rounds rounds, --samples
 *    nodes each, and reports the median request time per node and the map size.
 * 3. Long-poll: per server, opens --waiters keep-alive connections (epoll, one thread,
 *    non-blocking connects and, over HTTPS, non-blocking GnuTLS handshakes, one session per
 *    connection), each a signed GET /v1/netmap?since=V&wait=300 of a distinct node of that
 *    server's 10,000-node network, and waits until the server reports them all suspended.
 *    Then, per round and alternating the servers, one other node heartbeats a new endpoint
 *    and the time until each waiter has its whole answer is recorded; every waiter re-arms
 *    on its connection. Server RSS, threads and CPU come from /proc/PID, database queries
 *    from the server's /v1/health counter.
 *
 * TLS trust: every session (the epoll waiters and lib/ctlclient's admin/heartbeat/netmap requests)
 * is verified by pin only: the SHA-256 of the server certificate's public key must be one of
 * the pins of --enroll (an enrollment string TOKEN@IDENTITY@PIN,PIN from token create) or
 * of --pin-file (DIR/tls.pin).
 * There is no CA check (the certificate is self-signed). A session pinned to another key is
 * tried first and must be refused, or the benchmark fails.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <libpq-fe.h>
#include <sodium.h>

#include <microhttpd.h>

#include "control/control.h"
#include "control/server.h"
#include "ctlclient.h"
#include "keys.h"
#include "lightscale/api.h"
#include "sign.h"
#include "tlsid.h"
#include "util.h"

struct net {
	const char *name;
	int n;
	char id[40];
	struct ls_prefix v4, v6;
	uint8_t (*sk)[64];
};

#define MAX_PINS 8
struct pinset {
	char pin[MAX_PINS][LS_PIN_STRLEN];
	int n;
	unsigned long verified, refused;
	char last_seen[LS_PIN_STRLEN];
};

enum wstate { W_CONNECT, W_HANDSHAKE, W_SENT };

struct waiter {
	int fd;
	int node;
	enum wstate st;
	gnutls_session_t tls; /* NULL over plain HTTP */
	char *buf;
	size_t len, cap;
	bool done;
	long body_len;
	size_t body_off;
	size_t total; /* HTTP bytes of the last answer */
	size_t wire;  /* bytes read from the socket since the last reset (TLS records) */
	int64_t version;
};

enum { M_HTTP, M_TLS, N_MODES };

struct mode {
	const char *name;
	bool on, tls;
	const char *url;
	int pid;
	struct ls_ctl ctl;
	struct sockaddr_in addr;
	struct net *net; /* the 10,000-node network its waiters poll */
	struct waiter *ws;
	int ep;
	int64_t version;
	/* full netmaps: [0] the 1,000-node network, [1] its 10,000-node one */
	double first[2], *per[2];
	size_t nper[2], full_bytes[2];
	/* long-poll */
	long rss0, rss1, anon0, anon1, threads, q0, q1;
	double cpu_setup_ms, cpu_idle_ms, idle_s, client_setup_ms, setup_wall_ms;
	double *p50s, *p99s, *bytes_per, *wire_per, *cpu_deliver, *cpu_rearm;
	long max_differ; /* most waiters in a round whose delta body differs from the first one's */
	double delta_body;
	char tls_desc[128];
};

static struct mode modes[N_MODES] = {
	[M_HTTP] = {.name = "HTTP"},
	[M_TLS] = {.name = "HTTPS", .tls = true},
};
static struct pinset pins, wrong_pins;
static gnutls_certificate_credentials_t xcred;
static long clk_tck;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
	fprintf(stderr, "control-bench: %s\n", what);
	exit(1);
}

static void node_keys(const char *net, int i, uint8_t sk[64], char wg_b64[LS_KEY_B64_LEN + 1])
{
	uint8_t seed[32], pk[32], wg[32];
	char in[128];

	snprintf(in, sizeof(in), "lsc-bench/%s/%d", net, i);
	ls_sha256(seed, in, strlen(in));
	crypto_sign_ed25519_seed_keypair(pk, sk, seed);
	snprintf(in, sizeof(in), "lsc-bench-wg/%s/%d", net, i);
	ls_sha256(wg, in, strlen(in));
	ls_key_to_base64(wg_b64, wg);
}

static void seed(struct ls_ctl *ctl, PGconn *db, struct net *nt)
{
	struct ls_ctl_response r;
	struct ls_ctl_error e;
	json_t *b = json_pack("{s:s}", "name", nt->name);
	PGresult *res;
	char *line = NULL;
	const char *p[1];
	int i;

	if (ls_ctl_request_json(ctl, "POST", "/v1/admin/networks", b, LS_CTL_AUTH_ADMIN, 0, &r, &e)) {
		ls_ctl_error_print(&e, "create network");
		exit(1);
	}
	json_decref(b);
	snprintf(nt->id, sizeof(nt->id), "%s", json_string_value(json_object_get(r.json, "id")));
	if (ls_prefix_parse(json_string_value(json_object_get(r.json, "ipv4")), &nt->v4, false) ||
	    ls_prefix_parse(json_string_value(json_object_get(r.json, "ipv6")), &nt->v6, false))
		die("bad prefixes");
	ls_ctl_response_free(&r);
	nt->sk = calloc((size_t)nt->n, 64);
	res = PQexec(db, "COPY nodes (network_id, name, hostname, wg_key, machine_key, host_index, "
			 "ipv4, ipv6, endpoints, listen_port, last_seen) FROM STDIN");
	if (PQresultStatus(res) != PGRES_COPY_IN)
		die(PQerrorMessage(db));
	PQclear(res);
	for (i = 0; i < nt->n; i++) {
		char wg[LS_KEY_B64_LEN + 1], mk[LS_KEY_B64_LEN + 1];
		char a4[LS_PREFIX_STRLEN], a6[LS_PREFIX_STRLEN];
		struct ls_prefix a;
		int len;

		node_keys(nt->name, i, nt->sk[i], wg);
		ls_key_to_base64(mk, nt->sk[i] + 32);
		lsc_host_address(&nt->v4, (uint32_t)i + 1, &a);
		ls_prefix_format_addr(&a, a4);
		lsc_host_address(&nt->v6, (uint32_t)i + 1, &a);
		ls_prefix_format_addr(&a, a6);
		len = asprintf(&line, "%s\tnode-%d\tnode-%d\t%s\t%s\t%d\t%s\t%s\t{198.51.100.%d:%d}\t51820\t%s\n",
			       nt->id, i, i, wg, mk, i + 1, a4, a6, i % 250 + 1, 40000 + i % 20000,
			       "now");
		if (len < 0 || PQputCopyData(db, line, len) != 1)
			die("COPY");
		free(line);
	}
	if (PQputCopyEnd(db, NULL) != 1)
		die("COPY end");
	res = PQgetResult(db);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die(PQresultErrorMessage(res));
	PQclear(res);
	p[0] = nt->id;
	res = PQexecParams(db, "UPDATE networks SET version = version + 1, dns_version = version + 1 "
			       "WHERE id = $1", 1, NULL, p, NULL, NULL, 0);
	PQclear(res);
}

static json_t *health(struct mode *m)
{
	struct ls_ctl_response r;
	struct ls_ctl_error e;
	json_t *j;

	if (ls_ctl_health(&m->ctl, &r, &e)) {
		ls_ctl_error_print(&e, "health");
		exit(1);
	}
	j = json_incref(r.json);
	ls_ctl_response_free(&r);
	return j;
}

static long health_int(struct mode *m, const char *k)
{
	json_t *j = health(m);
	long v = (long)json_integer_value(json_object_get(j, k));

	json_decref(j);
	return v;
}

static long proc_status(int pid, const char *key)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ':')
			v = strtol(line + strlen(key) + 1, NULL, 10);
	fclose(f);
	return v;
}

/* user + system CPU of a whole process (all threads), in ms (clock-tick resolution) */
static double proc_cpu_ms(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	/* after the command: state(3) ... utime(14) stime(15) */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) * 1000.0 / (double)clk_tck;
}

static double self_cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	size_t i;

	qsort(v, n, sizeof(*v), cmp_d);
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static double full_netmap(struct ls_ctl *ctl, struct net *nt, int i, size_t *bytes)
{
	struct ls_ctl_response r;
	struct ls_ctl_error e;
	double t0 = now_ms();

	ls_ctl_set_machine_key(ctl, nt->sk[i]);
	if (ls_ctl_netmap(ctl, 0, 0, &r, &e)) {
		ls_ctl_error_print(&e, "netmap");
		exit(1);
	}
	t0 = now_ms() - t0;
	if (bytes)
		*bytes = r.len;
	ls_ctl_response_free(&r);
	return t0;
}

/* ---- pins ---- */

/* "sha256//A;sha256//B" or one pin per line (DIR/tls.pin) */
static int pins_parse(struct pinset *ps, const char *s)
{
	const char *p = s;

	ps->n = 0;
	while (*p) {
		size_t len = strcspn(p, ";\r\n \t");

		if (len) {
			if (ps->n == MAX_PINS || len >= LS_PIN_STRLEN || strncmp(p, "sha256//", 8))
				return -EINVAL;
			memcpy(ps->pin[ps->n], p, len);
			ps->pin[ps->n++][len] = '\0';
		}
		p += len;
		if (*p)
			p++;
	}
	return ps->n ? 0 : -EINVAL;
}

/* GnuTLS verify callback: the leaf certificate's public key must carry one of the pins */
static int verify_pin(gnutls_session_t s)
{
	struct pinset *ps = gnutls_session_get_ptr(s);
	const gnutls_datum_t *certs;
	gnutls_datum_t pem = {0};
	char pin[LS_PIN_STRLEN] = "";
	unsigned int n = 0;
	int i;

	certs = gnutls_certificate_get_peers(s, &n);
	if (!certs || !n || gnutls_pem_base64_encode2("CERTIFICATE", &certs[0], &pem) < 0)
		goto refuse;
	if (ls_tls_pin_from_cert_pem((const char *)pem.data, pem.size, pin))
		goto refuse;
	gnutls_free(pem.data);
	pem.data = NULL;
	snprintf(ps->last_seen, sizeof(ps->last_seen), "%s", pin);
	for (i = 0; i < ps->n; i++)
		if (!strcmp(pin, ps->pin[i])) {
			ps->verified++;
			return 0;
		}
refuse:
	gnutls_free(pem.data);
	ps->refused++;
	return GNUTLS_E_CERTIFICATE_ERROR;
}

/* ---- transport: plain socket or GnuTLS session, bytes on the wire counted ---- */

static ssize_t tls_pull(gnutls_transport_ptr_t p, void *buf, size_t n)
{
	struct waiter *w = p;
	ssize_t r = recv(w->fd, buf, n, 0);

	if (r > 0)
		w->wire += (size_t)r;
	else if (r < 0)
		gnutls_transport_set_errno(w->tls, errno);
	return r;
}

static ssize_t tls_push(gnutls_transport_ptr_t p, const void *buf, size_t n)
{
	struct waiter *w = p;
	ssize_t r = send(w->fd, buf, n, MSG_NOSIGNAL);

	if (r < 0)
		gnutls_transport_set_errno(w->tls, errno);
	return r;
}

static int tls_pull_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
	struct waiter *w = p;
	struct pollfd pfd = {.fd = w->fd, .events = POLLIN};

	return poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
}

static int tls_start(struct waiter *w, struct pinset *ps, unsigned int flags)
{
	int r = gnutls_init(&w->tls, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL | flags);

	if (r < 0)
		return r;
	if ((r = gnutls_set_default_priority(w->tls)) < 0 ||
	    (r = gnutls_credentials_set(w->tls, GNUTLS_CRD_CERTIFICATE, xcred)) < 0)
		return r;
	gnutls_session_set_ptr(w->tls, ps);
	gnutls_transport_set_ptr(w->tls, w);
	gnutls_transport_set_push_function(w->tls, tls_push);
	gnutls_transport_set_pull_function(w->tls, tls_pull);
	gnutls_transport_set_pull_timeout_function(w->tls, tls_pull_timeout);
	return 0;
}

/* >0 bytes, 0 at EOF, -1 with errno (EAGAIN: nothing now; EPROTO: a TLS error) */
static ssize_t w_recv(struct waiter *w, void *buf, size_t n)
{
	ssize_t r;

	if (!w->tls) {
		r = recv(w->fd, buf, n, 0);
		if (r > 0)
			w->wire += (size_t)r;
		return r;
	}
	r = gnutls_record_recv(w->tls, buf, n);
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
		errno = EAGAIN;
		return -1;
	}
	if (r < 0) {
		fprintf(stderr, "control-bench: TLS receive: %s\n", gnutls_strerror((int)r));
		errno = EPROTO;
		return -1;
	}
	return r;
}

static int w_send(struct waiter *w, const char *buf, size_t n)
{
	ssize_t r;

	if (!w->tls)
		return send(w->fd, buf, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
	r = gnutls_record_send(w->tls, buf, n);
	while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
		struct pollfd pfd = {.fd = w->fd, .events = POLLOUT};

		poll(&pfd, 1, 1000);
		r = gnutls_record_send(w->tls, NULL, 0);
	}
	return r == (ssize_t)n ? 0 : -1;
}

/* ---- long-poll client ---- */

static int send_poll(struct waiter *w, struct net *nt, int64_t since)
{
	struct ls_sign_headers h;
	char path[128], req[1024];
	int n;

	snprintf(path, sizeof(path), "/v1/netmap?since=%" PRId64 "&wait=300", since);
	if (ls_sign_request(&h, nt->sk[w->node], "GET", path, NULL, 0, ls_unix_time()))
		return -1;
	n = snprintf(req, sizeof(req),
		     "GET %s HTTP/1.1\r\nHost: bench\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n\r\n",
		     path, LS_HDR_KEY, h.key, LS_HDR_TIMESTAMP, h.timestamp, LS_HDR_NONCE, h.nonce,
		     LS_HDR_SIGNATURE, h.signature);
	w->len = 0;
	w->done = false;
	w->body_len = -1;
	return w_send(w, req, (size_t)n);
}

/* returns 1 when a whole response is in, 0 when more is to come, -1 on failure */
static int read_some(struct waiter *w)
{
	for (;;) {
		ssize_t n;
		char *hdr_end;

		if (w->cap - w->len < 4096) {
			w->cap = w->cap ? w->cap * 2 : 16384;
			w->buf = realloc(w->buf, w->cap);
			if (!w->buf)
				die("out of memory");
		}
		n = w_recv(w, w->buf + w->len, w->cap - w->len - 1);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		w->len += (size_t)n;
		w->buf[w->len] = '\0';
		hdr_end = strstr(w->buf, "\r\n\r\n");
		if (hdr_end) {
			const char *cl = strcasestr(w->buf, "\r\nContent-Length:");
			size_t hl = (size_t)(hdr_end - w->buf) + 4;

			if (!cl)
				return -1;
			w->body_len = strtol(cl + 17, NULL, 10);
			if (w->len >= hl + (size_t)w->body_len) {
				const char *v = strstr(hdr_end, "\"version\":");

				w->total = w->len;
				w->body_off = hl;
				w->version = v ? strtoll(v + 10, NULL, 10) : 0;
				return 1;
			}
		}
	}
}

static void wait_waiters(struct mode *m, long want)
{
	double t0 = now_ms();

	while (health_int(m, "waiters") < want) {
		if (now_ms() - t0 > 60000) {
			fprintf(stderr, "control-bench: %s: only %ld of %ld waiters after 60 s\n", m->name,
				health_int(m, "waiters"), want);
			exit(1);
		}
		usleep(50000);
	}
}

static void ep_mod(struct mode *m, struct waiter *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)(w - m->ws)};

	epoll_ctl(m->ep, EPOLL_CTL_MOD, w->fd, &ev);
}

/* One event on a waiter being set up. 1 when its request went out, 0 to wait, -1 failed. */
static int w_step(struct mode *m, struct waiter *w)
{
	int r, err = 0;
	socklen_t el = sizeof(err);

	switch (w->st) {
	case W_CONNECT:
		if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
			fprintf(stderr, "control-bench: connect: %s\n", strerror(err));
			return -1;
		}
		if (!m->tls) {
			if (send_poll(w, m->net, m->version))
				return -1;
			w->st = W_SENT;
			ep_mod(m, w, EPOLLIN);
			return 1;
		}
		if ((r = tls_start(w, &pins, GNUTLS_NONBLOCK)) < 0) {
			fprintf(stderr, "control-bench: TLS session: %s\n", gnutls_strerror(r));
			return -1;
		}
		w->st = W_HANDSHAKE;
		/* fall through */
	case W_HANDSHAKE:
		r = gnutls_handshake(w->tls);
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
			ep_mod(m, w, gnutls_record_get_direction(w->tls) ? EPOLLOUT : EPOLLIN);
			return 0;
		}
		if (r < 0) {
			fprintf(stderr, "control-bench: TLS handshake with %s: %s (server key %s)\n",
				m->url, gnutls_strerror(r), pins.last_seen);
			return -1;
		}
		if (!m->tls_desc[0]) {
			char *d = gnutls_session_get_desc(w->tls);

			snprintf(m->tls_desc, sizeof(m->tls_desc), "%s", d ? d : "?");
			gnutls_free(d);
		}
		if (send_poll(w, m->net, m->version))
			return -1;
		w->st = W_SENT;
		ep_mod(m, w, EPOLLIN);
		return 1;
	case W_SENT:
		/* TLS 1.3 session tickets arrive after the handshake; an answer would be a failure */
		r = read_some(w);
		if (r == 1)
			fprintf(stderr, "control-bench: a waiter was answered while idle: %.120s\n", w->buf);
		return r == 0 ? 0 : -1;
	}
	return -1;
}

static void open_batch(struct mode *m, int from, int to)
{
	int pending = to - from, i;

	for (i = from; i < to; i++) {
		struct waiter *w = &m->ws[i];
		struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
		int one = 1;

		w->node = i;
		w->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (w->fd < 0)
			die("socket");
		setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(w->fd, (struct sockaddr *)&m->addr, sizeof(m->addr)) < 0 && errno != EINPROGRESS)
			die("connect");
		w->st = W_CONNECT;
		epoll_ctl(m->ep, EPOLL_CTL_ADD, w->fd, &ev);
	}
	while (pending > 0) {
		struct epoll_event evs[256];
		int n = epoll_wait(m->ep, evs, 256, 20000), k;

		if (n <= 0) {
			fprintf(stderr, "control-bench: %s: %d connections stalled in setup\n", m->name, pending);
			exit(1);
		}
		for (k = 0; k < n; k++) {
			int r = w_step(m, &m->ws[evs[k].data.u32]);

			if (r < 0)
				die("a waiter's set-up failed");
			pending -= r;
		}
	}
}

/* A TLS session pinned to another key must be refused. */
static void check_wrong_pin(struct mode *m)
{
	struct waiter w = {0};
	int r;

	w.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (w.fd < 0 || connect(w.fd, (struct sockaddr *)&m->addr, sizeof(m->addr)) < 0)
		die("connect");
	if (tls_start(&w, &wrong_pins, 0) < 0)
		die("TLS session");
	do
		r = gnutls_handshake(w.tls);
	while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
	if (r == 0 || wrong_pins.refused != 1)
		die("a TLS session pinned to another key was not refused");
	printf("pin check: a session pinned to %s is refused (%s; the server's key is %s)\n",
	       wrong_pins.pin[0], gnutls_strerror(r), wrong_pins.last_seen);
	gnutls_deinit(w.tls);
	close(w.fd);
}

static void open_waiters(struct mode *m, int nwait)
{
	double c0, s0, t0;
	int i;

	ls_ctl_set_machine_key(&m->ctl, m->net->sk[m->net->n - 1]);
	{
		struct ls_ctl_response resp;
		struct ls_ctl_error e;

		if (ls_ctl_netmap(&m->ctl, 0, 0, &resp, &e)) {
			ls_ctl_error_print(&e, "netmap");
			exit(1);
		}
		m->version = json_integer_value(json_object_get(resp.json, "version"));
		ls_ctl_response_free(&resp);
	}
	usleep(200000);
	m->rss0 = proc_status(m->pid, "VmRSS");
	m->anon0 = proc_status(m->pid, "RssAnon");
	m->ws = calloc((size_t)nwait, sizeof(*m->ws));
	m->ep = epoll_create1(EPOLL_CLOEXEC);
	c0 = proc_cpu_ms(m->pid);
	s0 = self_cpu_ms();
	t0 = now_ms();
	for (i = 0; i < nwait; i += 500) {
		int to = i + 500 < nwait ? i + 500 : nwait;

		double tb = now_ms(), tw;

		open_batch(m, i, to);
		tw = now_ms();
		wait_waiters(m, to);
		if (getenv("BENCH_DEBUG"))
			fprintf(stderr, "%s batch %d..%d: open %.0f ms, until suspended %.0f ms\n", m->name, i, to,
				tw - tb, now_ms() - tw);
	}
	m->setup_wall_ms = now_ms() - t0;
	m->cpu_setup_ms = proc_cpu_ms(m->pid) - c0;
	m->client_setup_ms = self_cpu_ms() - s0;
	usleep(300000);
	m->rss1 = proc_status(m->pid, "VmRSS");
	m->anon1 = proc_status(m->pid, "RssAnon");
	m->threads = proc_status(m->pid, "Threads");
}

/* consume what came in while idle (TLS session tickets); any answer is a failure */
static void drain(struct mode *m, int nwait)
{
	int i;

	for (i = 0; i < nwait; i++)
		if (read_some(&m->ws[i]) != 0)
			die("a waiter was answered or closed while idle");
}

static void run_round(struct mode *m, int nwait, int r)
{
	double *lat = calloc((size_t)nwait, sizeof(double)), t0, c0, c1;
	struct ls_ctl_heartbeat_req hb;
	struct ls_ctl_response resp;
	struct ls_ctl_error e;
	char epbuf[64];
	const char *epv[1] = {epbuf};
	int left = nwait, i;
	size_t total = 0, body = 0, wire = 0;
	char *first = NULL;
	long first_len = 0, differ = 0;

	for (i = 0; i < nwait; i++)
		m->ws[i].wire = 0;
	snprintf(epbuf, sizeof(epbuf), "203.0.113.%d:%d", r + 1, 50000 + r);
	memset(&hb, 0, sizeof(hb));
	hb.endpoints = epv;
	hb.n_endpoints = 1;
	hb.listen_port = 51820;
	ls_ctl_set_machine_key(&m->ctl, m->net->sk[m->net->n - 1]);
	c0 = proc_cpu_ms(m->pid);
	t0 = now_ms();
	if (ls_ctl_heartbeat(&m->ctl, &hb, &resp, &e)) {
		ls_ctl_error_print(&e, "heartbeat");
		exit(1);
	}
	ls_ctl_response_free(&resp);
	while (left > 0) {
		struct epoll_event evs[256];
		int n = epoll_wait(m->ep, evs, 256, 10000);

		if (n <= 0)
			die("waiters did not all answer within 10 s");
		for (int k = 0; k < n; k++) {
			struct waiter *w = &m->ws[evs[k].data.u32];
			int rr;

			if (w->done)
				continue;
			rr = read_some(w);
			if (rr < 0)
				die("a waiter's connection failed");
			if (rr == 1) {
				w->done = true;
				lat[nwait - left] = now_ms() - t0;
				total += w->total;
				body += (size_t)w->body_len;
				wire += w->wire;
				left--;
				/* do all waiters get the same delta (one body, one signature)? */
				if (!first) {
					first_len = w->body_len;
					first = malloc((size_t)first_len + 1);
					if (!first)
						die("out of memory");
					memcpy(first, w->buf + w->body_off, (size_t)first_len);
				} else if (w->body_len != first_len ||
					   memcmp(first, w->buf + w->body_off, (size_t)first_len)) {
					if (!differ++ && getenv("BENCH_DEBUG"))
						fprintf(stderr, "%s delta bodies differ:\n%.*s\n%.*s\n", m->name,
							(int)first_len, first, (int)w->body_len, w->buf + w->body_off);
				}
			}
		}
	}
	c1 = proc_cpu_ms(m->pid);
	m->cpu_deliver[r] = c1 - c0;
	m->p50s[r] = pct(lat, (size_t)nwait, 0.50);
	m->p99s[r] = pct(lat, (size_t)nwait, 0.99);
	m->bytes_per[r] = (double)total / nwait;
	m->wire_per[r] = (double)wire / nwait;
	m->delta_body = (double)body / nwait;
	if (differ > m->max_differ)
		m->max_differ = differ;
	free(first);
	free(lat);
	/* re-arm every waiter on its connection at the new version */
	for (i = 0; i < nwait; i++)
		if (send_poll(&m->ws[i], m->net, m->ws[i].version))
			die("re-arm");
	wait_waiters(m, nwait);
	m->cpu_rearm[r] = proc_cpu_ms(m->pid) - c1;
}

/* ---- report ---- */

static struct mode *on[N_MODES];
static int n_on;

/* one row: a label, a value per server, the target and a verdict per server */
static void row(const char *label, int prec, const char *unit, const double *v, const char *target,
		const int *pass, const char *note)
{
	int i;

	printf("  %-44s", label);
	for (i = 0; i < n_on; i++) {
		char b[32];

		snprintf(b, sizeof(b), "%.*f %s", prec, v[i], unit);
		printf(" %14s", b);
	}
	printf("   %-10s", target ? target : "");
	for (i = 0; i < n_on && pass; i++)
		printf(" %s", pass[i] ? "PASS" : "FAIL");
	if (note)
		printf("   %s", note);
	printf("\n");
}

#define EACH(expr)                                 \
	do {                                       \
		for (int _i = 0; _i < n_on; _i++) { \
			struct mode *m = on[_i];   \
			v[_i] = (expr);            \
		}                                  \
	} while (0)
#define PASS(cond)                                 \
	do {                                       \
		for (int _i = 0; _i < n_on; _i++)   \
			ok[_i] = v[_i] cond;       \
	} while (0)

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"server", required_argument, NULL, 's'}, {"pid", required_argument, NULL, 'p'},
		{"tls-server", required_argument, NULL, 'S'}, {"tls-pid", required_argument, NULL, 'P'},
		{"pin-file", required_argument, NULL, 'f'}, {"enroll", required_argument, NULL, 'e'},
		{"db", required_argument, NULL, 'd'}, {"admin-key-file", required_argument, NULL, 'k'},
		{"waiters", required_argument, NULL, 'w'}, {"rounds", required_argument, NULL, 'r'},
		{"samples", required_argument, NULL, 'n'}, {0},
	};
	const char *dsn = NULL, *keyfile = NULL, *pinfile = NULL, *enroll = NULL, *pinsrc = NULL;
	int nwait = 5000, rounds = 5, samples = 20, c, i, r, j;
	struct net nets[3] = {{.name = "bench1k", .n = 1000},
			      {.name = "bench10k-1", .n = 10000},
			      {.name = "bench10k-2", .n = 10000}};
	int n_nets;
	char *key = NULL, *pinbuf = NULL;
	size_t klen;
	PGconn *db;
	struct rlimit rl = {200000, 200000};
	double v[N_MODES];
	int ok[N_MODES];

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': modes[M_HTTP].url = optarg; break;
		case 'p': modes[M_HTTP].pid = atoi(optarg); break;
		case 'S': modes[M_TLS].url = optarg; break;
		case 'P': modes[M_TLS].pid = atoi(optarg); break;
		case 'f': pinfile = optarg; break;
		case 'e': enroll = optarg; break;
		case 'd': dsn = optarg; break;
		case 'k': keyfile = optarg; break;
		case 'w': nwait = atoi(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 'n': samples = atoi(optarg); break;
		default: return 2;
		}
	}
	for (i = 0; i < N_MODES; i++)
		if (modes[i].url && modes[i].pid > 0) {
			modes[i].on = true;
			on[n_on++] = &modes[i];
		}
	if (!n_on || !dsn || !keyfile || nwait < 1 || nwait > 9000 || rounds < 1 || samples < 1 ||
	    (modes[M_TLS].on && !pinfile == !enroll))
		die("usage: --db DSN --admin-key-file F [--server URL --pid PID] "
		    "[--tls-server URL --tls-pid PID --pin-file F|--enroll TOKEN@IDENTITY@PINS] "
		    "[--waiters N<=9000]");
	setrlimit(RLIMIT_NOFILE, &rl);
	clk_tck = sysconf(_SC_CLK_TCK);
	ls_crypto_init();
	if (ls_read_file(keyfile, &key, &klen, 4096))
		die("admin key file");
	key[strcspn(key, "\n")] = '\0';
	if (modes[M_TLS].on) {
		size_t plen;

		if (enroll) {
			char tok[256], ident[128];

			pinbuf = calloc(1, 4096);
			if (!pinbuf || ls_ctl_parse_enroll(enroll, tok, sizeof(tok), ident, sizeof(ident),
							   pinbuf, 4096) || pins_parse(&pins, pinbuf)) {
				fprintf(stderr, "control-bench: no pins in the enrollment string `%s'\n", enroll);
				return 1;
			}
			ls_memzero(tok, sizeof(tok));
			pinsrc = "the enrollment string of token create";
		} else {
			if (ls_read_file(pinfile, &pinbuf, &plen, 4096) || pins_parse(&pins, pinbuf)) {
				fprintf(stderr, "control-bench: no pins in `%s'\n", pinfile);
				return 1;
			}
			pinsrc = pinfile;
		}
		/* a pin of no key the server has: SHA-256 of nothing */
		pins_parse(&wrong_pins, "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
		if (gnutls_global_init() < 0 || gnutls_certificate_allocate_credentials(&xcred) < 0)
			die("GnuTLS");
		gnutls_certificate_set_verify_function(xcred, verify_pin);
	}
	for (i = 0; i < n_on; i++) {
		struct mode *m = on[i];
		const char *hp, *colon;
		char host[64];

		if (ls_ctl_init(&m->ctl, m->url))
			die("server URL");
		ls_ctl_set_admin_key(&m->ctl, key);
		if (m->tls) {
			char list[MAX_PINS * LS_PIN_STRLEN] = "";

			for (j = 0; j < pins.n; j++)
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
					 j ? ";" : "", pins.pin[j]);
			ls_ctl_set_pinned_keys(&m->ctl, list);
		}
		hp = strstr(m->url, "://");
		if (!hp || (m->tls != !strncmp(m->url, "https://", 8)))
			die("--server takes http://ADDR:PORT, --tls-server https://ADDR:PORT");
		hp += 3;
		colon = strrchr(hp, ':');
		if (!colon)
			die("server URL without a port");
		snprintf(host, sizeof(host), "%.*s", (int)(colon - hp), hp);
		m->addr.sin_family = AF_INET;
		m->addr.sin_port = htons((uint16_t)atoi(colon + 1));
		if (inet_pton(AF_INET, host, &m->addr.sin_addr) != 1)
			die("server URL: an IPv4 address is expected");
	}
	db = PQconnectdb(dsn);
	if (PQstatus(db) != CONNECTION_OK)
		die(PQerrorMessage(db));

	if (modes[M_TLS].on)
		check_wrong_pin(&modes[M_TLS]);

	/* 1. seed: the 1,000-node network, and a 10,000-node one per server */
	n_nets = n_on + 1;
	for (i = 0; i < n_nets; i++) {
		double t0 = now_ms();

		seed(&on[0]->ctl, db, &nets[i]);
		printf("seeded %-12s %5d nodes in %.0f ms\n", nets[i].name, nets[i].n, now_ms() - t0);
	}
	for (i = 0; i < n_on; i++)
		on[i]->net = &nets[1 + i];
	fflush(stdout);

	/* 2. full netmaps, the networks and the servers alternating */
	for (i = 0; i < n_on; i++) {
		struct mode *m = on[i];

		for (j = 0; j < 2; j++) {
			struct net *nt = j ? m->net : &nets[0];

			m->first[j] = full_netmap(&m->ctl, nt, 0, &m->full_bytes[j]);
			m->per[j] = calloc((size_t)(rounds * samples), sizeof(double));
		}
	}
	for (r = 0; r < rounds; r++)
		for (i = 0; i < n_on; i++)
			for (j = 0; j < 2; j++) {
				struct mode *m = on[i];
				struct net *nt = j ? m->net : &nets[0];

				for (int k = 0; k < samples; k++) {
					int node = (int)(((long)(r * samples + k) * 7919) % nt->n);

					m->per[j][m->nper[j]++] = full_netmap(&m->ctl, nt, node, NULL);
				}
			}

	/* 2b. the server's own build step, in this process: snapshot sync + lsc_netmap_build */
	double build_first[2], *build[2];
	size_t build_len[2] = {0, 0};
	size_t nbuild[2] = {0, 0};
	{
		struct lsc_server ls = {0};

		lsc_config_defaults(&ls.cfg);
		ls.db = db;
		ls.relays_json = json_dumps(ls.cfg.relays, JSON_COMPACT);
		for (i = 0; i < 2; i++) {
			struct lsc_net *n = lsc_net_find(&ls, nets[i].id, true);
			double t0 = now_ms();

			if (lsc_net_sync(&ls, n))
				die("lsc_net_sync");
			build_first[i] = now_ms() - t0;
			build[i] = calloc((size_t)(rounds * samples), sizeof(double));
		}
		for (r = 0; r < rounds; r++)
			for (i = 0; i < 2; i++)
				for (int k = 0; k < samples; k++) {
					struct lsc_net *n = lsc_net_find(&ls, nets[i].id, false);
					int64_t id = n->nodes[((r * samples + k) * 7919) % n->n_nodes]->id;
					size_t len = 0;
					double t0 = now_ms();
					char *mp = lsc_netmap_build(&ls, n, id, 0, &len);

					build[i][nbuild[i]++] = now_ms() - t0;
					build_len[i] = len;
					if (!mp)
						die("lsc_netmap_build");
					free(mp);
				}
		lsc_nets_free(&ls);
		free(ls.relays_json);
		lsc_config_free(&ls.cfg);
	}

	/* 3. long-poll fan-out: each server's waiters in its own 10,000-node network */
	for (i = 0; i < n_on; i++) {
		struct mode *m = on[i];

		open_waiters(m, nwait);
		m->p50s = calloc((size_t)rounds, sizeof(double));
		m->p99s = calloc((size_t)rounds, sizeof(double));
		m->bytes_per = calloc((size_t)rounds, sizeof(double));
		m->wire_per = calloc((size_t)rounds, sizeof(double));
		m->cpu_deliver = calloc((size_t)rounds, sizeof(double));
		m->cpu_rearm = calloc((size_t)rounds, sizeof(double));
	}
	/* idle: every server with all its waiters suspended, side by side */
	{
		double c0[N_MODES], t0;

		for (i = 0; i < n_on; i++) {
			on[i]->q0 = health_int(on[i], "queries");
			c0[i] = proc_cpu_ms(on[i]->pid);
		}
		t0 = now_ms();
		sleep(6);
		for (i = 0; i < n_on; i++) {
			on[i]->cpu_idle_ms = proc_cpu_ms(on[i]->pid) - c0[i];
			on[i]->idle_s = (now_ms() - t0) / 1e3;
			on[i]->q1 = health_int(on[i], "queries");
			drain(on[i], nwait);
		}
	}
	for (r = 0; r < rounds; r++)
		for (i = 0; i < n_on; i++)
			run_round(on[i], nwait, r);

	/* report */
	{
		char up[256] = "";
		FILE *f = popen("uptime", "r");

		if (f) {
			if (!fgets(up, sizeof(up), f))
				up[0] = '\0';
			pclose(f);
		}
		up[strcspn(up, "\n")] = '\0';
		printf("\nlightscale-control benchmark (uptime:%s)\n", up);
		if (modes[M_TLS].on)
			printf("HTTPS: %s; every session verified by pin only (SHA-256 of the server's public key, "
			       "one of %d pin(s) from %s; no CA check): %lu verified, %lu refused "
			       "(the one pinned to another key)\n",
			       modes[M_TLS].tls_desc, pins.n, pinsrc, pins.verified,
			       pins.refused + wrong_pins.refused);
		printf("full netmap per node (signed GET /v1/netmap, client wall time incl. JSON parse, "
		       "%d rounds x %d nodes, networks and servers alternating, one keep-alive connection):\n",
		       rounds, samples);
		for (i = 0; i < n_on; i++)
			for (j = 0; j < 2; j++) {
				struct mode *m = on[i];
				int nn = j ? m->net->n : nets[0].n;

				printf("  %-5s %5d nodes: median %7.2f ms  p90 %7.2f ms  first (snapshot load%s) %7.1f ms  map %zu bytes (%.0f B/peer)\n",
				       m->name, nn, pct(m->per[j], m->nper[j], 0.5),
				       pct(m->per[j], m->nper[j], 0.9), m->tls && !j ? ", TLS handshake" : "",
				       m->first[j], m->full_bytes[j], (double)m->full_bytes[j] / nn);
			}
		printf("server-side full netmap build per node (lsc_netmap_build in this process, same samples):\n");
		for (i = 0; i < 2; i++)
			printf("  %5d nodes: median %7.3f ms  p90 %7.3f ms  snapshot load %7.1f ms  map %zu bytes\n", nets[i].n,
			       pct(build[i], nbuild[i], 0.5), pct(build[i], nbuild[i], 0.9), build_first[i], build_len[i]);
		printf("long-poll: %d waiters per server, each server's in its own %d-node network, one node changes "
		       "(%d rounds, servers alternating):\n", nwait, on[0]->net->n, rounds);
		printf("  %-44s", "figure");
		for (i = 0; i < n_on; i++)
			printf(" %14s", on[i]->name);
		printf("   %-10s\n", "target");
		EACH(pct(m->p50s, (size_t)rounds, 0.5));
		row("change-to-delivery p50 (median of rounds)", 1, "ms", v, NULL, NULL, NULL);
		EACH(pct(m->p99s, (size_t)rounds, 0.5));
		PASS(< 1000);
		{
			char note[128] = "rounds", *p = note + strlen(note);

			for (i = 0; i < n_on; i++)
				p += snprintf(p, sizeof(note) - (size_t)(p - note), " %s %.0f..%.0f ms",
					      on[i]->name, on[i]->p99s[0], on[i]->p99s[rounds - 1]);
			row("change-to-delivery p99 (median of rounds)", 1, "ms", v, "< 1000 ms", ok, note);
		}
		EACH(pct(m->bytes_per, (size_t)rounds, 0.5));
		row("HTTP bytes per waiter per change", 0, "B", v, NULL, NULL, NULL);
		EACH(pct(m->wire_per, (size_t)rounds, 0.5));
		row("bytes on the wire per waiter per change", 0, "B", v, NULL, NULL, "(TLS records, no TCP/IP)");
		EACH(pct(m->wire_per, (size_t)rounds, 0.5) * nwait / 1024);
		row("bytes on the wire per change (all waiters)", 0, "KiB", v, NULL, NULL, NULL);
		EACH(100.0 * m->delta_body / (double)m->full_bytes[1]);
		PASS(< 1);
		row("delta body / full map body", 3, "%", v, "< 1 %", ok, NULL);
		EACH((double)m->max_differ);
		row("waiters whose delta differs from the first", 0, "", v, NULL, NULL,
		    "(most in a round: same bytes, same netmap signature)");
		EACH((double)(m->rss1 - m->rss0) / nwait);
		PASS(< 64);
		{
			char note[160] = "VmRSS", *p = note + strlen(note);

			for (i = 0; i < n_on; i++)
				p += snprintf(p, sizeof(note) - (size_t)(p - note), " %s %ld->%ld KiB",
					      on[i]->name, on[i]->rss0, on[i]->rss1);
			row("server RSS per idle waiter", 1, "KiB", v, "< 64 KiB", ok, note);
		}
		EACH((double)(m->anon1 - m->anon0) / nwait);
		row("  of it anonymous (heap: sessions, pools)", 1, "KiB", v, NULL, NULL, NULL);
		EACH((double)m->threads);
		row("server threads", 0, "", v, NULL, NULL, NULL);
		EACH((double)((m->q1 - m->q0 - 1) / nwait));
		PASS(== 0);
		{
			char note[128] = "in 6 s idle, all waiters:", *p = note + strlen(note);

			for (i = 0; i < n_on; i++)
				p += snprintf(p, sizeof(note) - (size_t)(p - note), " %s %ld",
					      on[i]->name, on[i]->q1 - on[i]->q0 - 1);
			row("DB queries per idle waiter", 0, "", v, "0", ok, note);
		}
		EACH(m->setup_wall_ms / 1e3);
		row("set-up wall time, all waiters", 1, "s", v, NULL, NULL, "(500 at a time, until suspended)");
		EACH(1e3 * m->cpu_setup_ms / nwait);
		row("server CPU per waiter set-up", 0, "us", v, NULL, NULL, "(accept, handshake, request, suspend)");
		EACH(1e3 * m->client_setup_ms / nwait);
		row("client CPU per waiter set-up (this program)", 0, "us", v, NULL, NULL, NULL);
		EACH(100.0 * m->cpu_idle_ms / 1e3 / m->idle_s);
		row("server CPU while idle with all waiters", 1, "%", v, NULL, NULL, "(of one core)");
		EACH(pct(m->cpu_deliver, (size_t)rounds, 0.5));
		row("server CPU per change (delivery to all)", 0, "ms", v, NULL, NULL, "(median of rounds)");
		EACH(1e3 * pct(m->cpu_deliver, (size_t)rounds, 0.5) / nwait);
		row("  per waiter", 1, "us", v, NULL, NULL, NULL);
		EACH(pct(m->cpu_rearm, (size_t)rounds, 0.5));
		row("server CPU per re-arm of all waiters", 0, "ms", v, NULL, NULL, "(median of rounds)");
		printf("CPU figures have the kernel's clock-tick resolution (%ld Hz); the machine is shared.\n", clk_tck);
		printf("published anchors (not measured here): Headscale saturates 4 cores at 400-600 nodes\n"
		       "(its issues #1014, #2491); this run serves %d nodes and %d waiters per server on one thread each.\n",
		       nets[0].n + nets[1].n * n_on, nwait);
	}
	for (i = 0; i < n_on; i++) {
		struct mode *m = on[i];

		for (j = 0; j < nwait; j++) {
			if (m->ws[j].tls)
				gnutls_deinit(m->ws[j].tls);
			close(m->ws[j].fd);
			free(m->ws[j].buf);
		}
		for (j = 0; j < 2; j++)
			free(m->per[j]);
		free(m->ws);
		free(m->p50s);
		free(m->p99s);
		free(m->bytes_per);
		free(m->wire_per);
		free(m->cpu_deliver);
		free(m->cpu_rearm);
		close(m->ep);
		ls_ctl_free(&m->ctl);
	}
	for (i = 0; i < n_nets; i++)
		free(nets[i].sk);
	for (i = 0; i < 2; i++)
		free(build[i]);
	if (xcred) {
		gnutls_certificate_free_credentials(xcred);
		gnutls_global_deinit();
	}
	free(key);
	free(pinbuf);
	PQfinish(db);
	return 0;
}
