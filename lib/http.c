// SPDX-License-Identifier: MIT
/* HTTP/1.1 control URLs and response parser (see http.h). */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
	ST_STATUS,      /* status line */
	ST_HEADERS,     /* header fields of the response */
	ST_BODY_LEN,    /* Content-Length body */
	ST_BODY_CLOSE,  /* body until the connection ends */
	ST_CHUNK_SIZE,  /* chunk-size [; ext] line */
	ST_CHUNK_DATA,
	ST_CHUNK_END,   /* the CRLF after a chunk's data */
	ST_TRAILERS,    /* trailer fields after the last chunk */
	ST_DONE,
	ST_ERROR,
};

int ls_http_parse_url(const char *url, struct ls_http_url *u)
{
	const char *h, *end, *port = NULL;
	size_t hl;

	memset(u, 0, sizeof(*u));
	if (!strncmp(url, "http://", 7)) {
		h = url + 7;
	} else if (!strncmp(url, "https://", 8)) {
		h = url + 8;
		u->tls = true;
	} else {
		return -EINVAL;
	}
	end = h + strcspn(h, "/?#");
	if (*end == '?' || *end == '#' || strpbrk(end, "?#") || memchr(h, '@', (size_t)(end - h)))
		return -EINVAL;
	u->prefix = end;
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(end - h));

		if (!rb)
			return -EINVAL;
		hl = (size_t)(rb - h - 1);
		if (!hl || hl >= sizeof(u->host) || strspn(h + 1, "0123456789abcdefABCDEF:.%") < hl)
			return -EINVAL;
		memcpy(u->host, h + 1, hl);
		u->ipv6 = true;
		if (rb + 1 < end) {
			if (rb[1] != ':')
				return -EINVAL;
			port = rb + 2;
		}
	} else {
		const char *colon = memchr(h, ':', (size_t)(end - h));

		hl = (size_t)((colon ? colon : end) - h);
		if (!hl || hl >= sizeof(u->host))
			return -EINVAL;
		memcpy(u->host, h, hl);
		for (size_t i = 0; i < hl; i++)
			if (u->host[i] <= ' ' || u->host[i] == 0x7f || u->host[i] == '%')
				return -EINVAL;
		if (colon)
			port = colon + 1;
	}
	u->host[hl] = '\0';
	if (port) {
		unsigned long v = 0;
		const char *q;

		if (port == end || end - port > 5)
			return -EINVAL;
		for (q = port; q < end; q++) {
			if (*q < '0' || *q > '9')
				return -EINVAL;
			v = v * 10 + (unsigned long)(*q - '0');
		}
		if (v < 1 || v > 65535)
			return -EINVAL;
		u->port = (uint16_t)v;
	} else {
		u->port = u->tls ? 443 : 80;
	}
	u->default_port = u->port == (u->tls ? 443 : 80);
	/* the prefix goes into request lines: no whitespace or control characters */
	for (const char *q = u->prefix; *q; q++)
		if ((unsigned char)*q <= ' ' || *q == 0x7f)
			return -EINVAL;
	return 0;
}

void ls_http_host_field(const struct ls_http_url *u, char *out, size_t size)
{
	const char *l = u->ipv6 ? "[" : "", *r = u->ipv6 ? "]" : "";

	if (u->default_port)
		snprintf(out, size, "%s%s%s", l, u->host, r);
	else
		snprintf(out, size, "%s%s%s:%u", l, u->host, r, u->port);
}

void ls_http_parser_init(struct ls_http_parser *p, size_t max_body, bool head)
{
	void (*on_header)(void *, const char *, const char *) = p->on_header;
	void *ctx = p->ctx;

	memset(p, 0, offsetof(struct ls_http_parser, line));
	p->max_body = max_body;
	p->no_body = head;
	p->state = ST_STATUS;
	p->on_header = on_header;
	p->ctx = ctx;
}

void ls_http_parser_free(struct ls_http_parser *p)
{
	free(p->body);
	p->body = NULL;
	p->body_len = p->body_cap = 0;
}

static int fail(struct ls_http_parser *p, int err)
{
	p->state = ST_ERROR;
	p->keep_alive = false;
	p->remaining = (uint64_t)-err; /* the error, returned again on more input */
	return err;
}

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* a comma-separated list (Connection, Transfer-Encoding) holds tok, case-insensitive */
static bool list_has(const char *v, const char *tok)
{
	size_t tl = strlen(tok);

	while (*v) {
		size_t n;

		v += strspn(v, " \t,");
		n = strcspn(v, ",");
		while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		if (n == tl && !strncasecmp(v, tok, tl))
			return true;
		v += strcspn(v, ",");
	}
	return false;
}

static int body_reserve(struct ls_http_parser *p, size_t more)
{
	size_t want = p->body_len + more + 1, cap;
	char *nb;

	if (want <= p->body_cap)
		return 0;
	cap = p->body_cap ? p->body_cap : 4096;
	while (cap < want)
		cap = cap > ((size_t)-1) / 2 ? want : cap * 2;
	if (cap > p->max_body + 1)
		cap = p->max_body + 1 >= want ? p->max_body + 1 : want;
	nb = realloc(p->body, cap);
	if (!nb)
		return -ENOMEM;
	p->body = nb;
	p->body_cap = cap;
	return 0;
}

static int body_append(struct ls_http_parser *p, const char *d, size_t n)
{
	int ret;

	if (n > p->max_body - p->body_len)
		return -EFBIG;
	if ((ret = body_reserve(p, n)))
		return ret;
	memcpy(p->body + p->body_len, d, n);
	p->body_len += n;
	p->body[p->body_len] = '\0';
	return 0;
}

static int status_line(struct ls_http_parser *p, char *s)
{
	/* "HTTP/1.x SP 3DIGIT SP reason"; the reason may be empty, its SP too */
	if (strncmp(s, "HTTP/1.", 7) || s[7] < '0' || s[7] > '9' || s[8] != ' ' ||
	    s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9' ||
	    (s[12] != ' ' && s[12] != '\0'))
		return -EBADMSG;
	p->minor = s[7] - '0';
	p->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	if (p->status == 101)
		return -EBADMSG; /* we never ask to switch protocols */
	p->chunked = p->have_len = p->conn_close = p->conn_keep_alive = false;
	p->remaining = 0;
	p->state = ST_HEADERS;
	return 0;
}

/* one "name: value" line (of the final response, or a trailer with trailer set) */
static int header_line(struct ls_http_parser *p, char *s, bool trailer)
{
	char *colon = strchr(s, ':'), *v, *e;
	bool interim = p->status < 200;

	if (s[0] == ' ' || s[0] == '\t')
		return -EBADMSG; /* obs-fold */
	if (!colon || colon == s)
		return -EBADMSG;
	for (char *q = s; q < colon; q++)
		if (!is_tchar((unsigned char)*q))
			return -EBADMSG;
	*colon = '\0';
	v = colon + 1;
	v += strspn(v, " \t");
	e = v + strlen(v);
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*e = '\0';
	for (char *q = v; q < e; q++)
		if ((unsigned char)*q < ' ' && *q != '\t')
			return -EBADMSG;
	if (trailer || interim)
		return 0;
	if (!strcasecmp(s, "Content-Length")) {
		/* a list of equal values is that value (RFC 9110 8.6); another value is not */
		const char *q = v;

		for (;;) {
			uint64_t m = 0;
			size_t d = 0;

			for (; *q >= '0' && *q <= '9'; q++, d++) {
				if (m > (UINT64_MAX - 9) / 10)
					return -EBADMSG;
				m = m * 10 + (uint64_t)(*q - '0');
			}
			q += strspn(q, " \t");
			if (!d || (*q && *q != ',') || (p->have_len && m != p->remaining))
				return -EBADMSG;
			p->remaining = m;
			p->have_len = true;
			if (!*q)
				break;
			q++;
			q += strspn(q, " \t");
		}
	} else if (!strcasecmp(s, "Transfer-Encoding")) {
		/* only "chunked" (we send no TE and no Accept-Encoding) */
		const char *q = v + strspn(v, " \t,");

		if (p->chunked || strncasecmp(q, "chunked", 7) || q[7 + strspn(q + 7, " \t,")])
			return -EBADMSG;
		p->chunked = true;
	} else if (!strcasecmp(s, "Connection")) {
		if (list_has(v, "close"))
			p->conn_close = true;
		if (list_has(v, "keep-alive"))
			p->conn_keep_alive = true;
	}
	if (p->on_header)
		p->on_header(p->ctx, s, v);
	return 0;
}

/* the header block is over: where the body is */
static int headers_done(struct ls_http_parser *p)
{
	if (p->status < 200) { /* interim: the real response follows */
		p->state = ST_STATUS;
		p->head_bytes = 0;
		return 0;
	}
	if (p->chunked && p->have_len)
		return -EBADMSG;
	p->keep_alive = p->minor >= 1 ? !p->conn_close : p->conn_keep_alive && !p->conn_close;
	if (p->no_body || p->status == 204 || p->status == 304) {
		p->state = ST_DONE;
		return 1;
	}
	if (p->chunked) {
		p->state = ST_CHUNK_SIZE;
		return 0;
	}
	if (p->have_len) {
		if (p->remaining > p->max_body)
			return -EFBIG;
		if (!p->remaining) {
			p->state = ST_DONE;
			return 1;
		}
		if (body_reserve(p, (size_t)p->remaining)) /* one allocation of the right size */
			return -ENOMEM;
		p->state = ST_BODY_LEN;
		return 0;
	}
	p->keep_alive = false;
	p->state = ST_BODY_CLOSE;
	return 0;
}

static int chunk_size_line(struct ls_http_parser *p, const char *s)
{
	uint64_t n = 0;
	size_t d = 0;

	for (; *s; s++, d++) {
		int x;

		if (*s >= '0' && *s <= '9')
			x = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			x = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			x = *s - 'A' + 10;
		else
			break;
		if (n >> 60)
			return -EBADMSG;
		n = n << 4 | (uint64_t)x;
	}
	s += strspn(s, " \t");
	if (!d || (*s && *s != ';'))
		return -EBADMSG; /* chunk extensions (";name=value") are ignored */
	if (n > p->max_body - p->body_len)
		return -EFBIG;
	p->remaining = n;
	p->state = n ? ST_CHUNK_DATA : ST_TRAILERS;
	return 0;
}

/* a complete line in p->line (without its LF or CRLF) for the current state */
static int on_line(struct ls_http_parser *p)
{
	char *s = p->line;

	switch (p->state) {
	case ST_STATUS:
		return status_line(p, s);
	case ST_HEADERS:
		if (!*s)
			return headers_done(p);
		return header_line(p, s, false);
	case ST_CHUNK_SIZE:
		return chunk_size_line(p, s);
	case ST_CHUNK_END:
		if (*s)
			return -EBADMSG;
		p->state = ST_CHUNK_SIZE;
		return 0;
	case ST_TRAILERS:
		if (!*s) {
			p->state = ST_DONE;
			return 1;
		}
		return header_line(p, s, true);
	}
	return -EBADMSG;
}

static bool line_state(int st)
{
	return st == ST_STATUS || st == ST_HEADERS || st == ST_CHUNK_SIZE || st == ST_CHUNK_END ||
	       st == ST_TRAILERS;
}

int ls_http_parse(struct ls_http_parser *p, const char *data, size_t len, size_t *used)
{
	size_t i = 0;
	int ret = 0;

	*used = 0;
	if (p->state == ST_DONE)
		return 1;
	if (p->state == ST_ERROR)
		return -(int)p->remaining;
	while (i < len && !ret) {
		if (line_state(p->state)) {
			const char *nl = memchr(data + i, '\n', len - i);
			size_t n = nl ? (size_t)(nl - (data + i)) : len - i;
			bool head = p->state == ST_STATUS || p->state == ST_HEADERS;

			if (p->line_len + n >= sizeof(p->line))
				return fail(p, -EBADMSG);
			if (head && p->head_bytes + n + 1 > LS_HTTP_MAX_HEAD)
				return fail(p, -EBADMSG);
			memcpy(p->line + p->line_len, data + i, n);
			p->line_len += n;
			if (head)
				p->head_bytes += n + (nl ? 1 : 0);
			i += n + (nl ? 1 : 0);
			if (!nl)
				break;
			if (p->line_len && p->line[p->line_len - 1] == '\r')
				p->line_len--;
			p->line[p->line_len] = '\0';
			/* a NUL or a CR inside a line */
			if (strlen(p->line) != p->line_len || memchr(p->line, '\r', p->line_len))
				return fail(p, -EBADMSG);
			p->line_len = 0;
			ret = on_line(p);
			if (ret < 0)
				return fail(p, ret);
			continue;
		}
		if (p->state == ST_BODY_LEN || p->state == ST_CHUNK_DATA) {
			size_t n = len - i;

			if ((uint64_t)n > p->remaining)
				n = (size_t)p->remaining;
			if ((ret = body_append(p, data + i, n)) < 0)
				return fail(p, ret);
			i += n;
			p->remaining -= n;
			if (!p->remaining) {
				if (p->state == ST_BODY_LEN) {
					p->state = ST_DONE;
					ret = 1;
				} else {
					p->state = ST_CHUNK_END;
				}
			}
			continue;
		}
		if (p->state == ST_BODY_CLOSE) {
			if ((ret = body_append(p, data + i, len - i)) < 0)
				return fail(p, ret);
			i = len;
			continue;
		}
		return fail(p, -EBADMSG);
	}
	p->total_in += i;
	*used = i;
	return ret;
}

int ls_http_parse_eof(struct ls_http_parser *p)
{
	if (p->state == ST_DONE)
		return 1;
	if (p->state == ST_ERROR)
		return -(int)p->remaining;
	if (p->state == ST_BODY_CLOSE) {
		p->state = ST_DONE;
		p->keep_alive = false;
		return 1;
	}
	if (!p->total_in && !p->line_len)
		return fail(p, -ENODATA);
	return fail(p, -EBADMSG);
}
