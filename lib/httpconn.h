/* SPDX-License-Identifier: MIT */
/*
 * One client connection for lib/ctlclient.c: TCP for http://, GnuTLS for https://, every
 * step bounded by a deadline (ls_now_ms() milliseconds), the socket marked with SO_MARK.
 *
 * Open: the host is resolved with getaddrinfo and each address is tried in turn with a
 * non-blocking connect, connect_timeout_ms each (capped by the open's deadline). https://
 * then does the TLS handshake within handshake_timeout_ms of the start (never less than
 * the connect timeout). Trust for https://:
 *   pins      "sha256//BASE64;sha256//BASE64": SHA-256 of the server certificate's
 *             SubjectPublicKeyInfo must be one of them (lib/tlsid.h). The pins are the
 *             trust, so a self-signed certificate is fine, unless a CA file is given too.
 *   ca_file   the certificate must chain to a CA of this PEM file and name the host
 *             (DNS name or IP address SAN).
 *   neither   the system trust store, with the host name check.
 *
 * Every function returns 0 (or a byte count) or a negative errno, and then fills
 * struct ls_hconn_err: the class the caller's failover needs and a message.
 */
#ifndef LS_HTTPCONN_H
#define LS_HTTPCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "http.h"
#include "tlsid.h"

struct ls_hconn {
	int fd;            /* -1: not connected */
	void *tls;         /* gnutls_session_t for https:// */
	void *cred;        /* gnutls_certificate_credentials_t */
	char base[512];    /* the URL it was opened for ("" when closed) */
	unsigned requests; /* answered on this connection so far */
	uint64_t trust;    /* the caller's tag of the trust it was verified with */
};

struct ls_hconn_cfg {
	uint32_t fwmark;           /* SO_MARK, 0: none */
	long connect_timeout_ms;
	long handshake_timeout_ms;
	const char *pins;          /* NULL: none */
	const char *ca_file;       /* NULL: none */
};

enum ls_hconn_class {
	LS_HC_RESOLVE = 1, /* the name did not resolve */
	LS_HC_CONNECT,     /* TCP refused, unreachable, or the socket could not be made/marked */
	LS_HC_TIMEOUT,     /* connect, handshake or the whole request out of time */
	LS_HC_TLS,         /* handshake or certificate verification failed */
	LS_HC_PIN,         /* the server's key is not pinned (pin: what it presented) */
	LS_HC_IO,          /* send or receive failed, or the connection ended */
	LS_HC_CONFIG,      /* a CA file that cannot be read, no memory */
};

struct ls_hconn_err {
	enum ls_hconn_class cls;
	bool tls_timeout;          /* LS_HC_TIMEOUT in the TLS handshake */
	char pin[LS_PIN_STRLEN];   /* LS_HC_PIN: the key the server presented */
	char msg[384];
};

void ls_hconn_init(struct ls_hconn *h);
int ls_hconn_open(struct ls_hconn *h, const char *base, const struct ls_http_url *u,
		  const struct ls_hconn_cfg *cfg, uint64_t deadline, struct ls_hconn_err *e);
/* true: an open idle connection to base that the server has not closed */
bool ls_hconn_reusable(struct ls_hconn *h, const char *base);
int ls_hconn_send(struct ls_hconn *h, const void *buf, size_t len, uint64_t deadline,
		  struct ls_hconn_err *e);
/* bytes read (> 0), 0 at the end of the stream, or -errno */
ssize_t ls_hconn_recv(struct ls_hconn *h, void *buf, size_t len, uint64_t deadline,
		      struct ls_hconn_err *e);
void ls_hconn_close(struct ls_hconn *h);

/* pin is one of the ';'-separated pins */
bool ls_hconn_pin_listed(const char *pins, const char *pin);

#endif
