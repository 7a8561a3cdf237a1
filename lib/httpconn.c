// SPDX-License-Identifier: MIT
/* A client connection over TCP or GnuTLS with deadlines (see httpconn.h). */
#include "httpconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "keys.h"
#include "util.h"

static int set_e(struct ls_hconn_err *e, enum ls_hconn_class cls, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int set_e(struct ls_hconn_err *e, enum ls_hconn_class cls, int ret, const char *fmt, ...)
{
	va_list ap;

	e->cls = cls;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return ret;
}

void ls_hconn_init(struct ls_hconn *h)
{
	memset(h, 0, sizeof(*h));
	h->fd = -1;
}

void ls_hconn_close(struct ls_hconn *h)
{
	if (h->tls)
		gnutls_deinit(h->tls);
	if (h->cred)
		gnutls_certificate_free_credentials(h->cred);
	if (h->fd >= 0)
		close(h->fd);
	ls_hconn_init(h);
}

/* poll for ev until deadline: 0, -ETIMEDOUT or -errno */
static int wait_fd(int fd, short ev, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = ev};
		uint64_t now = ls_now_ms();
		int n;

		if (now >= deadline)
			return -ETIMEDOUT;
		n = poll(&p, 1, deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* one address: a marked non-blocking socket, connected by deadline; fd or -errno */
static int connect_one(const struct addrinfo *a, uint32_t fwmark, uint64_t deadline)
{
	socklen_t el = sizeof(int);
	int fd, err = 0, ret;

	fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
	if (fd < 0)
		return -errno;
	if (fwmark && setsockopt(fd, SOL_SOCKET, SO_MARK, &fwmark, sizeof(fwmark)) < 0) {
		ret = -errno;
		goto fail;
	}
	if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		ret = -errno;
		goto fail;
	}
	if ((ret = wait_fd(fd, POLLOUT, deadline)))
		goto fail;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
		err = errno;
	if (err) {
		ret = -err;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return ret;
}

static int tcp_open(struct ls_hconn *h, const struct ls_http_url *u,
		    const struct ls_hconn_cfg *cfg, uint64_t deadline, struct ls_hconn_err *e)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL, *a;
	unsigned char ip[16];
	char port[8];
	int rc, ret = -ECONNREFUSED;

	if (inet_pton(AF_INET, u->host, ip) == 1 || inet_pton(AF_INET6, u->host, ip) == 1)
		hints.ai_flags |= AI_NUMERICHOST;
	snprintf(port, sizeof(port), "%u", u->port);
	rc = getaddrinfo(u->host, port, &hints, &res);
	if (rc)
		return set_e(e, LS_HC_RESOLVE, -EHOSTUNREACH, "cannot resolve `%s': %s", u->host,
			     rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	for (a = res; a; a = a->ai_next) {
		uint64_t now = ls_now_ms(), d = now + (uint64_t)cfg->connect_timeout_ms;

		if (now >= deadline) {
			ret = -ETIMEDOUT;
			break;
		}
		ret = connect_one(a, cfg->fwmark, d < deadline ? d : deadline);
		if (ret >= 0) {
			h->fd = ret;
			ret = 0;
			break;
		}
	}
	freeaddrinfo(res);
	if (ret == -ETIMEDOUT)
		return set_e(e, LS_HC_TIMEOUT, ret, "no TCP connection within %ld ms",
			     cfg->connect_timeout_ms);
	if (ret)
		return set_e(e, LS_HC_CONNECT, ret, "connect: %s", strerror(-ret));
	return 0;
}

bool ls_hconn_pin_listed(const char *pins, const char *pin)
{
	size_t pl = strlen(pin);

	while (pins && *pins) {
		size_t n;

		pins += strspn(pins, "; \t");
		n = strcspn(pins, "; \t");
		if (n && n == pl && !memcmp(pins, pin, n))
			return true;
		pins += n;
	}
	return false;
}

/* the TLS handshake on h->fd, then the pin check */
static int tls_open(struct ls_hconn *h, const struct ls_http_url *u,
		    const struct ls_hconn_cfg *cfg, uint64_t deadline, struct ls_hconn_err *e)
{
	gnutls_certificate_credentials_t cred;
	gnutls_session_t s;
	bool verify = cfg->ca_file || !cfg->pins; /* chain and name checked by GnuTLS */
	unsigned char ip[4];
	int rc;

	if (gnutls_certificate_allocate_credentials(&cred) < 0)
		return set_e(e, LS_HC_CONFIG, -ENOMEM, "TLS: no memory for credentials");
	h->cred = cred;
	if (cfg->ca_file) {
		rc = gnutls_certificate_set_x509_trust_file(cred, cfg->ca_file, GNUTLS_X509_FMT_PEM);
		if (rc <= 0)
			return set_e(e, LS_HC_CONFIG, -EINVAL, "TLS: no CA certificate in `%s'%s%s",
				     cfg->ca_file, rc < 0 ? ": " : "", rc < 0 ? gnutls_strerror(rc) : "");
	} else if (!cfg->pins) {
		rc = gnutls_certificate_set_x509_system_trust(cred);
		if (rc < 0)
			return set_e(e, LS_HC_CONFIG, -EINVAL, "TLS: cannot load the system's CA store: %s",
				     gnutls_strerror(rc));
	}
	if (gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0)
		return set_e(e, LS_HC_CONFIG, -ENOMEM, "TLS: no memory for a session");
	h->tls = s;
	/* SNI for a name, not for an address */
	if ((rc = gnutls_set_default_priority(s)) < 0 ||
	    (rc = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred)) < 0 ||
	    (!u->ipv6 && inet_pton(AF_INET, u->host, ip) != 1 &&
	     (rc = gnutls_server_name_set(s, GNUTLS_NAME_DNS, u->host, strlen(u->host))) < 0))
		return set_e(e, LS_HC_TLS, -EPROTO, "TLS: %s", gnutls_strerror(rc));
	if (verify)
		gnutls_session_set_verify_cert(s, u->host, 0);
	gnutls_transport_set_int(s, h->fd);
	for (;;) {
		rc = gnutls_handshake(s);
		if (rc == GNUTLS_E_SUCCESS)
			break;
		if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
			int w = wait_fd(h->fd, gnutls_record_get_direction(s) ? POLLOUT : POLLIN, deadline);

			if (w == -ETIMEDOUT) {
				e->tls_timeout = true;
				return set_e(e, LS_HC_TIMEOUT, w, "TLS handshake not done in time");
			}
			if (w)
				return set_e(e, LS_HC_IO, w, "TLS handshake: %s", strerror(-w));
			continue;
		}
		if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
			gnutls_datum_t out = {0};
			unsigned st = gnutls_session_get_verify_cert_status(s);

			gnutls_certificate_verification_status_print(st, GNUTLS_CRT_X509, &out, 0);
			while (out.data && out.size && out.data[out.size - 1] == ' ')
				out.data[--out.size] = '\0';
			set_e(e, LS_HC_TLS, -EPERM, "server certificate verification failed (%s): %s",
			      cfg->ca_file ? cfg->ca_file : "the system's CA store",
			      out.data ? (char *)out.data : "?");
			gnutls_free(out.data);
			return -EPERM;
		}
		if (gnutls_error_is_fatal(rc))
			return set_e(e, LS_HC_TLS, -EPROTO, "TLS handshake: %s", gnutls_strerror(rc));
	}
	if (cfg->pins) {
		unsigned n = 0;
		const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);

		if (!certs || !n || ls_tls_pin_from_cert(certs[0].data, certs[0].size, false, e->pin))
			return set_e(e, LS_HC_TLS, -EPROTO, "TLS: the server sent no usable certificate");
		if (!ls_hconn_pin_listed(cfg->pins, e->pin))
			return set_e(e, LS_HC_PIN, -EPERM, "the server's TLS key %s is not pinned", e->pin);
	}
	return 0;
}

int ls_hconn_open(struct ls_hconn *h, const char *base, const struct ls_http_url *u,
		  const struct ls_hconn_cfg *cfg, uint64_t deadline, struct ls_hconn_err *e)
{
	long hs_ms = cfg->handshake_timeout_ms > cfg->connect_timeout_ms ? cfg->handshake_timeout_ms
									  : cfg->connect_timeout_ms;
	uint64_t hs_deadline = ls_now_ms() + (uint64_t)hs_ms;
	int ret;

	ls_hconn_close(h);
	memset(e, 0, sizeof(*e));
	if (strlen(base) >= sizeof(h->base))
		return set_e(e, LS_HC_CONFIG, -EINVAL, "URL too long");
	ret = tcp_open(h, u, cfg, deadline, e);
	if (!ret && u->tls)
		ret = tls_open(h, u, cfg, hs_deadline < deadline ? hs_deadline : deadline, e);
	if (ret) {
		int keep = e->cls;

		ls_hconn_close(h);
		e->cls = keep;
		return ret;
	}
	snprintf(h->base, sizeof(h->base), "%s", base);
	return 0;
}

bool ls_hconn_reusable(struct ls_hconn *h, const char *base)
{
	struct pollfd p = {.fd = h->fd, .events = POLLIN};
	char c;

	if (h->fd < 0 || strcmp(h->base, base))
		return false;
	if (poll(&p, 1, 0) == 0)
		return true;
	/* readable while idle: the server closed it, or (TLS 1.3) sent a ticket */
	if (h->tls && !(p.revents & (POLLERR | POLLHUP)) &&
	    gnutls_record_recv(h->tls, &c, 1) == GNUTLS_E_AGAIN && poll(&p, 1, 0) == 0)
		return true;
	return false;
}

int ls_hconn_send(struct ls_hconn *h, const void *buf, size_t len, uint64_t deadline,
		  struct ls_hconn_err *e)
{
	const char *p = buf;
	int w;

	while (len) {
		ssize_t n;

		if (h->tls) {
			n = gnutls_record_send(h->tls, p, len);
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
				short ev = gnutls_record_get_direction(h->tls) ? POLLOUT : POLLIN;

				if ((w = wait_fd(h->fd, ev, deadline)))
					goto wait_failed;
				continue;
			}
			if (n < 0)
				return set_e(e, LS_HC_IO, -EIO, "send: %s", gnutls_strerror((int)n));
		} else {
			n = send(h->fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				if ((w = wait_fd(h->fd, POLLOUT, deadline)))
					goto wait_failed;
				continue;
			}
			if (n < 0)
				return set_e(e, LS_HC_IO, -errno, "send: %s", strerror(errno));
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
wait_failed:
	if (w == -ETIMEDOUT)
		return set_e(e, LS_HC_TIMEOUT, w, "request not sent in time");
	return set_e(e, LS_HC_IO, w, "send: %s", strerror(-w));
}

ssize_t ls_hconn_recv(struct ls_hconn *h, void *buf, size_t len, uint64_t deadline,
		      struct ls_hconn_err *e)
{
	for (;;) {
		ssize_t n;
		int w;

		if (h->tls) {
			n = gnutls_record_recv(h->tls, buf, len);
			if (n >= 0)
				return n;
			if (n == GNUTLS_E_PREMATURE_TERMINATION)
				return 0; /* closed without close_notify: the end all the same */
			if (n != GNUTLS_E_AGAIN && n != GNUTLS_E_INTERRUPTED)
				return set_e(e, LS_HC_IO, -EIO, "receive: %s", gnutls_strerror((int)n));
		} else {
			n = recv(h->fd, buf, len, 0);
			if (n >= 0)
				return n;
			if (errno != EAGAIN && errno != EINTR)
				return set_e(e, LS_HC_IO, -errno, "receive: %s", strerror(errno));
		}
		w = wait_fd(h->fd, POLLIN, deadline);
		if (w == -ETIMEDOUT)
			return set_e(e, LS_HC_TIMEOUT, w, "no answer in time");
		if (w)
			return set_e(e, LS_HC_IO, w, "receive: %s", strerror(-w));
	}
}
