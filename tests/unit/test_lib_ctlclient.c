// SPDX-License-Identifier: MIT
/* lib/ctlclient: URL lists, failover, error objects, signed headers, against a tiny
 * HTTP server on loopback run by the test itself (one canned answer per connection), and
 * an HTTP/HTTPS server with keep-alive (struct srv) for TLS trust, connection reuse and
 * the framings of answers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <poll.h>

#include "ctlclient.h"
#include "keys.h"
#include "tlsid.h"
#include "lightscale/api.h"
#include "sign.h"
#include "util.h"

struct canned {
	int fd;
	int port;
	char answer[1024];
	char request[8192];
};

static void *serve_one(void *arg)
{
	struct canned *c = arg;
	size_t n = 0;
	int fd = accept(c->fd, NULL, NULL);

	if (fd < 0)
		return NULL;
	/* read the headers (and a small body) */
	for (;;) {
		ssize_t r = recv(fd, c->request + n, sizeof(c->request) - 1 - n, 0);
		char *end;

		if (r <= 0)
			break;
		n += (size_t)r;
		c->request[n] = '\0';
		end = strstr(c->request, "\r\n\r\n");
		if (end) {
			const char *cl = strcasestr(c->request, "Content-Length:");
			size_t want = cl ? strtoul(cl + 15, NULL, 10) : 0;

			if (n >= (size_t)(end + 4 - c->request) + want)
				break;
		}
	}
	if (send(fd, c->answer, strlen(c->answer), MSG_NOSIGNAL) < 0)
		perror("send");
	close(fd);
	return NULL;
}

/* status line and JSON body; Content-Length computed */
static void canned_start(struct canned *c, pthread_t *t, const char *status, const char *body)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);

	memset(c, 0, sizeof(*c));
	snprintf(c->answer, sizeof(c->answer),
		 "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		 "Connection: close\r\n\r\n%s",
		 status, strlen(body), body);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(c->fd >= 0);
	assert_int_equal(bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(c->fd, 4), 0);
	assert_int_equal(getsockname(c->fd, (struct sockaddr *)&sa, &sl), 0);
	c->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(t, NULL, serve_one, c), 0);
}

/* a loopback port with nothing listening */
static int dead_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void test_url_lists(void **state)
{
	struct ls_ctl c;

	assert_int_equal(ls_ctl_init(&c, "http://a:1, https://b:2/ ,http://[::1]:3"), 0);
	assert_int_equal(c.n_urls, 3);
	assert_string_equal(c.urls[0], "http://a:1");
	assert_string_equal(c.urls[1], "https://b:2");
	assert_string_equal(c.urls[2], "http://[::1]:3");
	ls_ctl_free(&c);
	assert_int_equal(ls_ctl_init(&c, ""), -EINVAL);
	assert_int_equal(ls_ctl_init(&c, "ftp://a"), -EINVAL);
	assert_int_equal(ls_ctl_init(&c, "http://a,b"), -EINVAL);
}

static void test_failover_and_error_object(void **state)
{
	static const char answer[] =
		"{\"error\":{\"code\":\"token_expired\",\"message\":\"enrollment token x expired at 2026\"}}";
	struct canned srv;
	struct ls_ctl c;
	struct ls_ctl_response r;
	struct ls_ctl_error e;
	struct ls_ctl_register_req req = {.token = "lst_x", .wg_key = "w", .machine_key = "m",
					  .hostname = "h"};
	char urls[128];
	pthread_t t;

	canned_start(&srv, &t, "403 Forbidden", answer);
	snprintf(urls, sizeof(urls), "http://127.0.0.1:%d,http://127.0.0.1:%d", dead_port(), srv.port);
	assert_int_equal(ls_ctl_init(&c, urls), 0);
	assert_int_equal(ls_ctl_register(&c, &req, &r, &e), -EPROTO);
	pthread_join(t, NULL);
	close(srv.fd);
	assert_int_equal(e.http_status, 403);
	assert_string_equal(e.code, LS_ERR_TOKEN_EXPIRED);
	assert_string_equal(e.message, "enrollment token x expired at 2026");
	/* the second URL answered and is now the current one */
	assert_int_equal(c.current, 1);
	assert_non_null(strstr(srv.request, "POST /v1/register HTTP/1.1"));
	assert_non_null(strstr(srv.request, "\"token\":\"lst_x\""));
	ls_ctl_response_free(&r);
	ls_ctl_free(&c);
}

static void test_all_urls_down(void **state)
{
	struct ls_ctl c;
	struct ls_ctl_response r;
	struct ls_ctl_error e;
	char urls[128];

	snprintf(urls, sizeof(urls), "http://127.0.0.1:%d,http://127.0.0.1:%d", dead_port(), dead_port());
	assert_int_equal(ls_ctl_init(&c, urls), 0);
	assert_int_equal(ls_ctl_health(&c, &r, &e), -ECONNREFUSED);
	assert_string_equal(e.code, "connect_failed");
	assert_int_equal(e.http_status, 0);
	ls_ctl_response_free(&r);
	ls_ctl_free(&c);
}

static void test_signed_request_headers(void **state)
{
	static const char answer[] = "{\"version\":9,\"full\":false}";
	uint8_t pk[32], sk[64];
	struct canned srv;
	struct ls_ctl c;
	struct ls_ctl_response r;
	struct ls_ctl_error e;
	char url[64], key[64], ts[32], nonce[64], sig[128];
	const char *p;
	pthread_t t;

	ls_ed25519_keypair(pk, sk);
	canned_start(&srv, &t, "200 OK", answer);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", srv.port);
	assert_int_equal(ls_ctl_init(&c, url), 0);
	assert_int_equal(ls_ctl_netmap(&c, 0, 0, &r, &e), -ENOKEY);
	ls_ctl_set_machine_key(&c, sk);
	assert_int_equal(ls_ctl_netmap(&c, 8, 30, &r, &e), 0);
	pthread_join(t, NULL);
	close(srv.fd);
	assert_int_equal(json_integer_value(json_object_get(r.json, "version")), 9);
	assert_non_null(strstr(srv.request, "GET /v1/netmap?since=8&wait=30 HTTP/1.1"));
	/* the headers verify as the server would check them */
#define HDR(name, out)                                                              \
	p = strcasestr(srv.request, name ": ");                                     \
	assert_non_null(p);                                                         \
	sscanf(p + strlen(name) + 2, "%127[^\r]", out);
	HDR(LS_HDR_KEY, key);
	HDR(LS_HDR_TIMESTAMP, ts);
	HDR(LS_HDR_NONCE, nonce);
	HDR(LS_HDR_SIGNATURE, sig);
	assert_int_equal(ls_sign_verify(key, ts, nonce, sig, "GET", "/v1/netmap?since=8&wait=30", NULL,
					0, ls_unix_time(), LS_SIGN_MAX_SKEW, NULL, NULL),
			 0);
	ls_ctl_response_free(&r);
	ls_ctl_free(&c);
}

/* with a fwmark the request still goes through (root has CAP_NET_ADMIN; otherwise the
 * socket option fails and so does the request, which is what a caller must see) */
static void test_fwmark(void **state)
{
	struct canned srv;
	struct ls_ctl c;
	struct ls_ctl_response r;
	struct ls_ctl_error e;
	char url[64];
	pthread_t t;
	int ret;

	canned_start(&srv, &t, "200 OK", "{\"ok\":true}");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", srv.port);
	assert_int_equal(ls_ctl_init(&c, url), 0);
	ls_ctl_set_fwmark(&c, 0x4c530001);
	ret = ls_ctl_health(&c, &r, &e);
	if (geteuid() == 0) {
		assert_int_equal(ret, 0);
		assert_true(json_is_true(json_object_get(r.json, "ok")));
		pthread_join(t, NULL);
	} else {
		assert_int_not_equal(ret, 0);
		pthread_cancel(t);
		pthread_join(t, NULL);
	}
	close(srv.fd);
	ls_ctl_response_free(&r);
	ls_ctl_free(&c);
}

/* a loopback listener that never accepts: connections complete (the kernel's accept
 * queue) but nothing is ever said, so a TLS handshake hangs */
static int silent_listener(int backlog, int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, backlog), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* A server that takes the TCP connection but is slow to answer the TLS handshake gets
 * the handshake allowance, not the (short) connect timeout. */
static void test_handshake_allowance(void **state)
{
	struct ls_ctl c;
	struct ls_ctl_response r;
	struct ls_ctl_error e;
	char url[64];
	uint64_t t0, ms;
	int port, fd = silent_listener(8, &port);

	snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);
	assert_int_equal(ls_ctl_init(&c, url), 0);
	c.connect_timeout_ms = 200;
	c.handshake_timeout_ms = 1500;
	t0 = ls_now_ms();
	assert_int_equal(ls_ctl_health(&c, &r, &e), -ETIMEDOUT);
	ms = ls_now_ms() - t0;
	print_message("# TLS handshake given up after %" PRIu64 " ms: %s\n", ms, e.message);
	assert_string_equal(e.code, "timeout");
	assert_true(ms >= 1400 && ms < 5000);
	assert_non_null(strstr(e.message, "LIGHTSCALE_TLS_TIMEOUT_MS"));
	ls_ctl_response_free(&r);
	ls_ctl_free(&c);
	close(fd);
}

/* A blackholed first URL (SYNs dropped: a listener whose accept queue is full) costs the
 * connect timeout, not the handshake allowance, before the second URL answers. */
static void test_blackhole_failover(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct canned srv;
	struct ls_ctl c;
	struct ls_ctl_response r;
	struct ls_ctl_error e;
	char urls[128];
	pthread_t t;
	uint64_t t0, ms;
	int port, fd = silent_listener(0, &port), fill[3], i;

	/* fill the accept queue; later SYNs are dropped */
	sa.sin_port = htons(port);
	for (i = 0; i < 3; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&sa, sizeof(sa));
	}
	usleep(100 * 1000);
	canned_start(&srv, &t, "200 OK", "{\"ok\":true}");
	snprintf(urls, sizeof(urls), "http://127.0.0.1:%d,http://127.0.0.1:%d", port, srv.port);
	assert_int_equal(ls_ctl_init(&c, urls), 0);
	c.connect_timeout_ms = 300;
	c.handshake_timeout_ms = 5000;
	t0 = ls_now_ms();
	assert_int_equal(ls_ctl_health(&c, &r, &e), 0);
	ms = ls_now_ms() - t0;
	pthread_join(t, NULL);
	close(srv.fd);
	print_message("# failover past a blackholed URL: %" PRIu64 " ms\n", ms);
	assert_int_equal(c.current, 1);
	assert_true(ms >= 250 && ms < 2000);
	ls_ctl_response_free(&r);
	ls_ctl_free(&c);

	/* alone, it is a timeout that names the connect */
	snprintf(urls, sizeof(urls), "http://127.0.0.1:%d", port);
	assert_int_equal(ls_ctl_init(&c, urls), 0);
	c.connect_timeout_ms = 300;
	assert_int_equal(ls_ctl_health(&c, &r, &e), -ETIMEDOUT);
	assert_string_equal(e.code, "timeout");
	assert_non_null(strstr(e.message, "no TCP connection within 300 ms"));
	ls_ctl_response_free(&r);
	ls_ctl_free(&c);
	for (i = 0; i < 3; i++)
		close(fill[i]);
	close(fd);
}


/* ---- struct srv: answers requests in order, over HTTP or HTTPS, with keep-alive ---- */

#define SRV_MAX 8

struct srv {
	int fd, port;
	bool tls;
	gnutls_certificate_credentials_t cred;
	const char *answers[SRV_MAX]; /* raw bytes to send, one per request; NULL ends */
	bool drop[SRV_MAX];           /* read request i, then close without answering */
	int conns, requests;
	char request[SRV_MAX][2048];
	pthread_t t;
};

struct srv_io {
	int fd;
	gnutls_session_t s;
};

static ssize_t io_recv(struct srv_io *io, char *b, size_t n)
{
	return io->s ? gnutls_record_recv(io->s, b, n) : recv(io->fd, b, n, 0);
}

static void io_send(struct srv_io *io, const char *b, size_t n)
{
	if (io->s)
		gnutls_record_send(io->s, b, n);
	else
		send(io->fd, b, n, MSG_NOSIGNAL);
}

/* one request (headers and Content-Length body) into out; false at the end */
static bool read_request(struct srv_io *io, char *out, size_t size)
{
	size_t n = 0;

	for (;;) {
		ssize_t r = io_recv(io, out + n, size - 1 - n);
		char *end;

		if (r <= 0)
			return false;
		n += (size_t)r;
		out[n] = '\0';
		end = strstr(out, "\r\n\r\n");
		if (end) {
			const char *cl = strcasestr(out, "Content-Length:");
			size_t want = cl ? strtoul(cl + 15, NULL, 10) : 0;

			if (n >= (size_t)(end + 4 - out) + want)
				return true;
		}
	}
}

static void *srv_main(void *arg)
{
	struct srv *v = arg;

	while (v->requests < SRV_MAX && v->answers[v->requests]) {
		struct srv_io io = {.fd = accept(v->fd, NULL, NULL)};

		if (io.fd < 0)
			break;
		v->conns++;
		if (v->tls) {
			gnutls_init(&io.s, GNUTLS_SERVER);
			gnutls_set_default_priority(io.s);
			gnutls_credentials_set(io.s, GNUTLS_CRD_CERTIFICATE, v->cred);
			gnutls_transport_set_int(io.s, io.fd);
			if (gnutls_handshake(io.s) < 0)
				goto next; /* the client refused us */
		}
		while (v->requests < SRV_MAX && v->answers[v->requests]) {
			int i = v->requests;

			if (!read_request(&io, v->request[i], sizeof(v->request[i])))
				break;
			v->requests++;
			if (v->drop[i]) {
				v->drop[i] = false;
				v->requests--; /* the client sends it again */
				break;
			}
			io_send(&io, v->answers[i], strlen(v->answers[i]));
			if (strcasestr(v->answers[i], "Connection: close"))
				break;
		}
next:
		if (io.s) {
			gnutls_bye(io.s, GNUTLS_SHUT_WR);
			gnutls_deinit(io.s);
		}
		close(io.fd);
	}
	return NULL;
}

/* a listener on 127.0.0.1 (or ::1 with v6); with cert_dir, HTTPS with its tls.crt/tls.key */
static void srv_start(struct srv *v, bool v6, const char *cert_dir)
{
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockaddr *sa = v6 ? (struct sockaddr *)&s6 : (struct sockaddr *)&s4;
	socklen_t sl = v6 ? sizeof(s6) : sizeof(s4);

	v->fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	assert_true(v->fd >= 0);
	assert_int_equal(bind(v->fd, sa, sl), 0);
	assert_int_equal(listen(v->fd, 8), 0);
	assert_int_equal(getsockname(v->fd, sa, &sl), 0);
	v->port = ntohs(v6 ? s6.sin6_port : s4.sin_port);
	if (cert_dir) {
		char crt[512], key[512];

		snprintf(crt, sizeof(crt), "%s/tls.crt", cert_dir);
		snprintf(key, sizeof(key), "%s/tls.key", cert_dir);
		v->tls = true;
		assert_int_equal(gnutls_certificate_allocate_credentials(&v->cred), 0);
		assert_int_equal(gnutls_certificate_set_x509_key_file(v->cred, crt, key, GNUTLS_X509_FMT_PEM), 0);
	}
	assert_int_equal(pthread_create(&v->t, NULL, srv_main, v), 0);
}

static void srv_stop(struct srv *v)
{
	shutdown(v->fd, SHUT_RDWR); /* a thread still in accept() returns */
	pthread_join(v->t, NULL);
	close(v->fd);
	if (v->cred)
		gnutls_certificate_free_credentials(v->cred);
}

static char tmpdir[64], certs[2][96], tpins[2][LS_PIN_STRLEN];

/* two self-signed certificates: certs[0] names 127.0.0.1, ::1 and localhost, certs[1]
 * only other.example */
static int tls_setup(void **state)
{
	static const char *const names0[] = {"127.0.0.1", "::1", "localhost"};
	static const char *const names1[] = {"other.example"};
	char crt[256];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-ctlclient.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	for (int i = 0; i < 2; i++) {
		snprintf(certs[i], sizeof(certs[i]), "%s/c%d", tmpdir, i);
		if (ls_mkdir_p(certs[i], 0700) ||
		    ls_tls_ensure_selfsigned(certs[i], i ? names1 : names0, i ? 1 : 3))
			return -1;
		snprintf(crt, sizeof(crt), "%s/tls.crt", certs[i]);
		if (ls_tls_pin_from_cert_file(crt, tpins[i]))
			return -1;
	}
	return 0;
}

static int tls_teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

#define OK_JSON "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"

/* pins: the pinned key is accepted (self-signed, any name), another is refused naming
 * both, a list accepts any of its keys; on to the next URL after a refused one */
static void test_tls_pins(void **state)
{
	struct srv v = {.answers = {OK_JSON, OK_JSON, OK_JSON}};
	struct ls_ctl c;
	struct ls_ctl_response r;
	struct ls_ctl_error e;
	char url[64], urls[160], list[200], want[400];

	srv_start(&v, false, certs[1]); /* names other.example only: pins do not care */
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", v.port);
	assert_int_equal(ls_ctl_init(&c, url), 0);
	ls_ctl_set_pinned_keys(&c, tpins[1]);
	assert_int_equal(ls_ctl_health(&c, &r, &e), 0);
	assert_true(json_is_true(json_object_get(r.json, "ok")));
	assert_non_null(strstr(v.request[0], "GET /v1/health HTTP/1.1\r\n"));
	snprintf(want, sizeof(want), "\r\nHost: 127.0.0.1:%d\r\n", v.port);
	assert_non_null(strstr(v.request[0], want));
	ls_ctl_response_free(&r);
	/* another pin: refused, both keys named */
	ls_ctl_set_pinned_keys(&c, tpins[0]);
	assert_int_equal(ls_ctl_health(&c, &r, &e), -EPERM);
	assert_string_equal(e.code, "pin_mismatch");
	snprintf(want, sizeof(want), "%s: the server's TLS key %s is not one of the pinned keys %s: refused",
		 url, tpins[1], tpins[0]);
	assert_string_equal(e.message, want);
	ls_ctl_response_free(&r);
	/* a list */
	snprintf(list, sizeof(list), "%s;%s", tpins[0], tpins[1]);
	ls_ctl_set_pinned_keys(&c, list);
	assert_int_equal(ls_ctl_health(&c, &r, &e), 0);
	ls_ctl_response_free(&r);
	ls_ctl_free(&c);
	/* failover: the refused server first, then a plain HTTP one */
	{
		struct srv w = {.answers = {OK_JSON}};

		srv_start(&w, false, NULL);
		snprintf(urls, sizeof(urls), "%s,http://127.0.0.1:%d", url, w.port);
		assert_int_equal(ls_ctl_init(&c, urls), 0);
		ls_ctl_set_pinned_keys(&c, tpins[0]);
		assert_int_equal(ls_ctl_health(&c, &r, &e), 0);
		assert_int_equal(c.current, 1);
		ls_ctl_response_free(&r);
		ls_ctl_free(&c);
		srv_stop(&w);
	}
	srv_stop(&v);
}

/* a CA file: the certificate must come from it and name the host; with no pins and no
 * CA file, the system's store refuses a self-signed certificate */
static void test_tls_ca_file(void **state)
{
	struct srv v = {.answers = {OK_JSON, OK_JSON, OK_JSON}}, w = {.answers = {OK_JSON}};
	struct ls_ctl c;
	struct ls_ctl_response r;
	struct ls_ctl_error e;
	char url[64], ca[256];

	srv_start(&v, false, certs[0]);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", v.port);
	snprintf(ca, sizeof(ca), "%s/tls.crt", certs[0]);
	assert_int_equal(ls_ctl_init(&c, url), 0);
	ls_ctl_set_ca_file(&c, ca);
	assert_int_equal(ls_ctl_health(&c, &r, &e), 0);
	ls_ctl_response_free(&r);
	/* CA file and pins together: both are checked */
	ls_ctl_set_pinned_keys(&c, tpins[0]);
	assert_int_equal(ls_ctl_health(&c, &r, &e), 0);
	ls_ctl_response_free(&r);
	ls_ctl_free(&c);
	/* the system store does not know it */
	assert_int_equal(ls_ctl_init(&c, url), 0);
	assert_int_equal(ls_ctl_health(&c, &r, &e), -ECONNREFUSED);
	assert_string_equal(e.code, "connect_failed");
	assert_non_null(strstr(e.message, "certificate verification failed"));
	print_message("# %s\n", e.message);
	ls_ctl_response_free(&r);
	ls_ctl_free(&c);
	srv_stop(&v);
	/* a certificate from the CA file that names another host */
	srv_start(&w, false, certs[1]);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", w.port);
	snprintf(ca, sizeof(ca), "%s/tls.crt", certs[1]);
	assert_int_equal(ls_ctl_init(&c, url), 0);
	ls_ctl_set_ca_file(&c, ca);
	assert_int_equal(ls_ctl_health(&c, &r, &e), -ECONNREFUSED);
	assert_non_null(strstr(e.message, "certificate verification failed"));
	print_message("# %s\n", e.message);
	ls_ctl_response_free(&r);
	/* a CA file that is not there */
	ls_ctl_set_ca_file(&c, "/nonexistent/ca.pem");
	assert_int_equal(ls_ctl_health(&c, &r, &e), -EIO);
	assert_string_equal(e.code, "request_failed");
	assert_non_null(strstr(e.message, "/nonexistent/ca.pem"));
	ls_ctl_response_free(&r);
	ls_ctl_free(&c);
	srv_stop(&w);
}

/* keep-alive: requests share one connection (HTTPS here, IPv6 URL), a chunked answer and
 * a netmap signature header come through; a server that closes the idle connection or
 * drops a request on it costs nothing; Connection: close is honoured */
static void test_keep_alive(void **state)
{
	static const char chunked[] =
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Lightscale-Netmap-Signature: c2ln\r\n"
		"\r\n5;x=y\r\n{\"a\":\r\n3\r\n42}\r\n0\r\nX-Trailer: t\r\n\r\n";
	static const char closing[] =
		"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}";
	struct srv v = {.answers = {OK_JSON, chunked, OK_JSON, closing, OK_JSON}};
	struct ls_ctl c;
	struct ls_ctl_response r;
	struct ls_ctl_error e;
	char url[64], want[64];

	srv_start(&v, true, certs[0]);
	snprintf(url, sizeof(url), "https://[::1]:%d", v.port);
	assert_int_equal(ls_ctl_init(&c, url), 0);
	ls_ctl_set_pinned_keys(&c, tpins[0]);
	assert_int_equal(ls_ctl_health(&c, &r, &e), 0);
	ls_ctl_response_free(&r);
	assert_int_equal(ls_ctl_request(&c, "GET", "/x", NULL, 0, LS_CTL_AUTH_NONE, 0, &r, &e), 0);
	assert_int_equal(json_integer_value(json_object_get(r.json, "a")), 42);
	assert_string_equal(r.netmap_sig, "c2ln");
	assert_int_equal(v.conns, 1);
	snprintf(want, sizeof(want), "\r\nHost: [::1]:%d\r\n", v.port);
	assert_non_null(strstr(v.request[1], want));
	ls_ctl_response_free(&r);
	/* the server drops the third request on the kept connection: sent again on a new one */
	v.drop[2] = true;
	assert_int_equal(ls_ctl_request(&c, "POST", "/y", "{}", 2, LS_CTL_AUTH_NONE, 0, &r, &e), 0);
	assert_int_equal(v.conns, 2);
	assert_non_null(strstr(v.request[2], "POST /y HTTP/1.1\r\n"));
	assert_non_null(strstr(v.request[2], "\r\nContent-Length: 2\r\n"));
	ls_ctl_response_free(&r);
	/* Connection: close, then a new connection */
	assert_int_equal(ls_ctl_health(&c, &r, &e), 0);
	ls_ctl_response_free(&r);
	assert_int_equal(ls_ctl_health(&c, &r, &e), 0);
	assert_int_equal(v.conns, 3);
	ls_ctl_response_free(&r);
	ls_ctl_free(&c);
	srv_stop(&v);
}

/* a name: resolved with getaddrinfo (through /etc/hosts); the Host field keeps the name */
static void test_name(void **state)
{
	struct srv v = {.answers = {OK_JSON}};
	struct ls_ctl c;
	struct ls_ctl_response r;
	struct ls_ctl_error e;
	char url[64], want[64];

	srv_start(&v, false, NULL);
	snprintf(url, sizeof(url), "http://localhost:%d", v.port);
	assert_int_equal(ls_ctl_init(&c, url), 0);
	assert_int_equal(ls_ctl_health(&c, &r, &e), 0);
	snprintf(want, sizeof(want), "\r\nHost: localhost:%d\r\n", v.port);
	assert_non_null(strstr(v.request[0], want));
	ls_ctl_response_free(&r);
	ls_ctl_free(&c);
	srv_stop(&v);
}

/* failover on 503; a malformed answer and one over the cap are final */
static void test_answers(void **state)
{
	static const char unavailable[] =
		"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
	static const char folded[] = "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\n{}";
	static const char huge[] = "HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n";
	static const char cut[] = "HTTP/1.1 200 OK\r\nContent-Length: 20\r\nConnection: close\r\n\r\n{\"a\":";
	struct srv a = {.answers = {unavailable, folded, huge, cut}}, b = {.answers = {OK_JSON}};
	struct ls_ctl c;
	struct ls_ctl_response r;
	struct ls_ctl_error e;
	char urls[128];

	srv_start(&a, false, NULL);
	srv_start(&b, false, NULL);
	snprintf(urls, sizeof(urls), "http://127.0.0.1:%d,http://127.0.0.1:%d", a.port, b.port);
	assert_int_equal(ls_ctl_init(&c, urls), 0);
	assert_int_equal(ls_ctl_health(&c, &r, &e), 0);
	assert_int_equal(c.current, 1);
	ls_ctl_response_free(&r);
	ls_ctl_free(&c);
	snprintf(urls, sizeof(urls), "http://127.0.0.1:%d", a.port);
	assert_int_equal(ls_ctl_init(&c, urls), 0);
	assert_int_equal(ls_ctl_health(&c, &r, &e), -EIO);
	assert_string_equal(e.code, "request_failed");
	ls_ctl_response_free(&r);
	assert_int_equal(ls_ctl_health(&c, &r, &e), -EIO);
	assert_non_null(strstr(e.message, "response larger than 67108864 bytes"));
	ls_ctl_response_free(&r);
	assert_int_equal(ls_ctl_health(&c, &r, &e), -EIO);
	assert_string_equal(e.code, "request_failed");
	ls_ctl_response_free(&r);
	ls_ctl_free(&c);
	srv_stop(&a);
	srv_stop(&b);
}

static void test_timeout_environment(void **state)
{
	struct ls_ctl c;

	setenv("LIGHTSCALE_CONNECT_TIMEOUT_MS", "1234", 1);
	setenv("LIGHTSCALE_TLS_TIMEOUT_MS", "45678", 1);
	assert_int_equal(ls_ctl_init(&c, "https://a:1"), 0);
	assert_int_equal(c.connect_timeout_ms, 1234);
	assert_int_equal(c.handshake_timeout_ms, 45678);
	ls_ctl_free(&c);
	setenv("LIGHTSCALE_CONNECT_TIMEOUT_MS", "12s", 1);
	setenv("LIGHTSCALE_TLS_TIMEOUT_MS", "0", 1);
	assert_int_equal(ls_ctl_init(&c, "https://a:1"), 0);
	assert_int_equal(c.connect_timeout_ms, LS_CTL_CONNECT_TIMEOUT_MS);
	assert_int_equal(c.handshake_timeout_ms, LS_CTL_HANDSHAKE_TIMEOUT_MS);
	ls_ctl_free(&c);
	unsetenv("LIGHTSCALE_CONNECT_TIMEOUT_MS");
	unsetenv("LIGHTSCALE_TLS_TIMEOUT_MS");
}

static void test_parse_enroll(void **state)
{
	const char *id = "QPRSJZLDt27NIqzgQxsMdr+j0QAxXP2MuyDbXqlL8s4=";
	const char *p1 = "sha256//L6wDRSURkrZQqn3aEDbgfLV4NXN1bwkj0N0joVYQU+M=";
	const char *p2 = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
	char tok[128], ident[64], pins[256], s[512];

	(void)state;
	snprintf(s, sizeof(s), "lst_abc@%s@%s,%s", id, p1, p2);
	assert_int_equal(ls_ctl_parse_enroll(s, tok, sizeof(tok), ident, sizeof(ident), pins, sizeof(pins)), 0);
	assert_string_equal(tok, "lst_abc");
	assert_string_equal(ident, id);
	snprintf(s, sizeof(s), "%s;%s", p1, p2);
	assert_string_equal(pins, s);
	/* a bare token */
	assert_int_equal(ls_ctl_parse_enroll("lst_abc", tok, sizeof(tok), ident, sizeof(ident), pins, sizeof(pins)), 0);
	assert_string_equal(tok, "lst_abc");
	assert_string_equal(ident, "");
	assert_string_equal(pins, "");
	/* refused: no identity part end, a bad identity, a bad pin, a pin with ';' */
	assert_int_equal(ls_ctl_parse_enroll("lst_abc@x", tok, sizeof(tok), ident, sizeof(ident), pins, sizeof(pins)), -EINVAL);
	snprintf(s, sizeof(s), "lst_abc@notakey@%s", p1);
	assert_int_equal(ls_ctl_parse_enroll(s, tok, sizeof(tok), ident, sizeof(ident), pins, sizeof(pins)), -EINVAL);
	snprintf(s, sizeof(s), "lst_abc@%s@md5//abc", id);
	assert_int_equal(ls_ctl_parse_enroll(s, tok, sizeof(tok), ident, sizeof(ident), pins, sizeof(pins)), -EINVAL);
	snprintf(s, sizeof(s), "lst_abc@%s@sha256//ab;c", id);
	assert_int_equal(ls_ctl_parse_enroll(s, tok, sizeof(tok), ident, sizeof(ident), pins, sizeof(pins)), -EINVAL);
	assert_int_equal(ls_ctl_parse_enroll("@x@y", tok, sizeof(tok), ident, sizeof(ident), pins, sizeof(pins)), -EINVAL);
	/* buffers too small */
	snprintf(s, sizeof(s), "lst_abc@%s@%s,%s", id, p1, p2);
	assert_int_equal(ls_ctl_parse_enroll(s, tok, sizeof(tok), ident, sizeof(ident), pins, 60), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_lists),
		cmocka_unit_test(test_failover_and_error_object),
		cmocka_unit_test(test_all_urls_down),
		cmocka_unit_test(test_signed_request_headers),
		cmocka_unit_test(test_fwmark),
		cmocka_unit_test(test_parse_enroll),
		cmocka_unit_test(test_handshake_allowance),
		cmocka_unit_test(test_blackhole_failover),
		cmocka_unit_test(test_timeout_environment),
		cmocka_unit_test_setup_teardown(test_tls_pins, tls_setup, tls_teardown),
		cmocka_unit_test_setup_teardown(test_tls_ca_file, tls_setup, tls_teardown),
		cmocka_unit_test_setup_teardown(test_keep_alive, tls_setup, tls_teardown),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_name),
	};
	ls_crypto_init();
	signal(SIGPIPE, SIG_IGN); /* the test server writes to clients that went away */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
