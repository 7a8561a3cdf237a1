/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 wire format for the control-plane client (lib/ctlclient.c): control URLs and
 * the response parser. No I/O here (that is lib/httpconn.c), so both are fuzzed and unit
 * tested on bytes alone (lib/fuzz/http_fuzz.c, tests/unit/test_lib_http.c).
 *
 * The parser is fed what the connection reads, in pieces of any size:
 *
 *     struct ls_http_parser p;
 *     ls_http_parser_init(&p, LS_CTL_MAX_RESPONSE - 1, false);
 *     while ((n = read(...)) > 0)
 *             if ((ret = ls_http_parse(&p, buf, n, &used)) != 0) break;  // 1: done
 *     if (n == 0) ret = ls_http_parse_eof(&p);
 *     ... p.status, p.body, p.body_len, p.keep_alive ...
 *     ls_http_parser_free(&p);
 *
 * It takes (RFC 9112): a status line "HTTP/1.x NNN reason"; header fields "name: value"
 * (lines end in CRLF or a bare LF); a body delimited by Content-Length, by chunked
 * transfer coding (chunk extensions and trailer fields are read and ignored) or by the
 * end of the connection; interim 1xx responses, which are skipped; no body for 204, 304
 * and answers to HEAD. It refuses (-EBADMSG): obsolete line folding, a field name that
 * is not a token, control characters in a field, a status line of another protocol,
 * conflicting Content-Lengths, Content-Length with Transfer-Encoding, a transfer coding
 * other than chunked, a bad chunk size or missing chunk CRLF, 101 Switching Protocols,
 * header lines over LS_HTTP_MAX_LINE or a header block over LS_HTTP_MAX_HEAD bytes. A
 * body over max_body bytes is -EFBIG (as soon as its length is known).
 */
#ifndef LS_HTTP_H
#define LS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LS_HTTP_MAX_LINE 8192        /* one status/header/chunk-size line */
#define LS_HTTP_MAX_HEAD (64 * 1024) /* status line and header fields together */

/* A control URL: "http://HOST[:PORT][/PREFIX]" or "https://...", HOST a name, an IPv4
 * address or an IPv6 literal in brackets. */
struct ls_http_url {
	bool tls;
	bool ipv6;          /* HOST was an IPv6 literal in brackets */
	char host[256];     /* without the brackets */
	uint16_t port;      /* 80/443 when the URL names none */
	bool default_port;
	const char *prefix; /* path prefix ("" or "/base", no trailing '/'), points into the URL */
};

/* 0 or -EINVAL (not http/https, empty or too long host, user info, a bad port, an IPv6
 * literal without its ']', a query or fragment in the base URL). */
int ls_http_parse_url(const char *url, struct ls_http_url *u);
/* The Host field for u: "name", "name:8080", "[::1]:8443" (the port only when not the
 * scheme's default). */
void ls_http_host_field(const struct ls_http_url *u, char *out, size_t size);

struct ls_http_parser {
	/* results */
	int status;         /* of the final (non-1xx) response */
	bool keep_alive;    /* once complete: the connection may carry the next request */
	char *body;         /* NUL-terminated, malloc'd (NULL until a body byte came);
	                     * the caller may take it (set to NULL) */
	size_t body_len;
	/* called for every header field of the final response (not 1xx, not trailers),
	 * name and value NUL-terminated, value without surrounding whitespace */
	void (*on_header)(void *ctx, const char *name, const char *value);
	void *ctx;

	/* internal */
	size_t max_body;
	bool no_body;       /* the request was HEAD */
	int state;
	int minor;          /* HTTP/1.minor */
	bool chunked, have_len, conn_close, conn_keep_alive;
	uint64_t remaining; /* body bytes (Content-Length) or chunk bytes still to come */
	size_t body_cap;
	size_t head_bytes;  /* of this response's status line and header block */
	size_t total_in;    /* bytes seen, all responses */
	size_t line_len;
	char line[LS_HTTP_MAX_LINE];
};

/* max_body: the largest body accepted; head: the request was HEAD (no body follows). */
void ls_http_parser_init(struct ls_http_parser *p, size_t max_body, bool head);
/* Feeds len bytes. 1: the response is complete (*used bytes of data were taken; any more
 * belong to something the server should not have sent), 0: all taken, more needed,
 * -EBADMSG malformed, -EFBIG body over max_body, -ENOMEM. After an error or 1 the parser
 * takes no more input (returns the same). */
int ls_http_parse(struct ls_http_parser *p, const char *data, size_t len, size_t *used);
/* The connection ended. 1: complete (a body delimited by the close, or already done),
 * -ENODATA: not one byte came, -EBADMSG: cut short. */
int ls_http_parse_eof(struct ls_http_parser *p);
void ls_http_parser_free(struct ls_http_parser *p);

#endif
