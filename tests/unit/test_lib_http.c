// SPDX-License-Identifier: MIT
/* lib/http: control URLs, and the HTTP/1.1 response parser fed whole, byte by byte and
 * in odd pieces (every answer must come out the same way). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define MAXB 1000

struct seen {
	char names[512];
	char sig[128];
};

static void on_header(void *ctx, const char *name, const char *value)
{
	struct seen *s = ctx;
	size_t l = strlen(s->names);

	snprintf(s->names + l, sizeof(s->names) - l, "%s%s", l ? "," : "", name);
	if (!strcmp(name, "X-Sig"))
		snprintf(s->sig, sizeof(s->sig), "%s", value);
}

/* Parses in (len bytes) in pieces of step bytes (0: all at once), then the end of the
 * stream when eof. The parser's result; p is left for the caller to look at and free. */
static int feed(struct ls_http_parser *p, struct seen *s, const char *in, size_t len,
		size_t step, bool eof, bool head, size_t *consumed)
{
	size_t off = 0, used;
	int ret = 0;

	memset(p, 0, sizeof(*p));
	memset(s, 0, sizeof(*s));
	p->on_header = on_header;
	p->ctx = s;
	ls_http_parser_init(p, MAXB, head);
	while (off < len) {
		size_t n = step && step < len - off ? step : len - off;

		ret = ls_http_parse(p, in + off, n, &used);
		off += used;
		if (ret)
			break;
		assert_int_equal(used, n);
	}
	if (consumed)
		*consumed = off;
	if (!ret && eof)
		ret = ls_http_parse_eof(p);
	return ret;
}

/* the same result whole (into out), byte by byte and in pieces of 7 */
static int parse_all_ways(const char *in, bool eof, bool head, struct ls_http_parser *out,
			  struct seen *seen)
{
	static const size_t steps[] = {1, 7};
	struct ls_http_parser *p = malloc(sizeof(*p));
	struct seen s;
	int ret = feed(out, seen, in, strlen(in), 0, eof, head, NULL);

	assert_non_null(p);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(feed(p, &s, in, strlen(in), steps[i], eof, head, NULL), ret);
		assert_string_equal(s.names, seen->names);
		if (ret == 1) {
			assert_int_equal(p->status, out->status);
			assert_int_equal(p->keep_alive, out->keep_alive);
			assert_int_equal(p->body_len, out->body_len);
			if (p->body_len)
				assert_memory_equal(p->body, out->body, p->body_len);
		}
		ls_http_parser_free(p);
	}
	free(p);
	return ret;
}

static struct ls_http_parser P;
static struct seen S;

static int parse(const char *in, bool eof)
{
	ls_http_parser_free(&P);
	return parse_all_ways(in, eof, false, &P, &S);
}

static void test_content_length(void **state)
{
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			       "X-Sig:   abc= \t\r\nContent-Length: 11\r\n\r\n{\"ok\":true}", false), 1);
	assert_int_equal(P.status, 200);
	assert_int_equal(P.body_len, 11);
	assert_string_equal(P.body, "{\"ok\":true}");
	assert_true(P.keep_alive);
	assert_string_equal(S.names, "Content-Type,X-Sig,Content-Length");
	assert_string_equal(S.sig, "abc=");
	/* an empty body, a reason phrase that is empty or absent */
	assert_int_equal(parse("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", false), 1);
	assert_int_equal(P.status, 404);
	assert_int_equal(P.body_len, 0);
	assert_int_equal(parse("HTTP/1.1 503\r\ncontent-length: 2\r\n\r\nno", false), 1);
	assert_int_equal(P.status, 503);
	assert_string_equal(P.body, "no");
	/* equal values in a list are one value */
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok", false), 1);
	assert_string_equal(P.body, "ok");
	/* bare LF line ends */
	assert_int_equal(parse("HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false), 1);
	assert_string_equal(P.body, "ok");
}

static void test_keep_alive(void **state)
{
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false), 1);
	assert_false(P.keep_alive);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 0\r\n\r\n", false), 1);
	assert_false(P.keep_alive);
	assert_int_equal(parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false), 1);
	assert_false(P.keep_alive);
	assert_int_equal(parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", false), 1);
	assert_true(P.keep_alive);
	/* a body delimited by the end of the connection */
	assert_int_equal(parse("HTTP/1.1 200 OK\r\n\r\nuntil the end", false), 0);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\n\r\nuntil the end", true), 1);
	assert_string_equal(P.body, "until the end");
	assert_false(P.keep_alive);
}

static void test_chunked(void **state)
{
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Sig: s\r\n\r\n"
			       "4;name=value\r\nWiki\r\n5 ; x=\"y\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n"
			       "0;last\r\nExpires: never\r\nX-Sig: trailer\r\n\r\n", false), 1);
	assert_int_equal(P.status, 200);
	assert_string_equal(P.body, "Wikipedia in\r\n\r\nchunks.");
	assert_int_equal(P.body_len, 23);
	assert_true(P.keep_alive);
	/* trailer fields are not the response's fields */
	assert_string_equal(S.names, "Transfer-Encoding,X-Sig");
	assert_string_equal(S.sig, "s");
	/* upper-case hex, leading zeros, no trailers */
	assert_int_equal(parse("HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n00000001F\r\n"
			       "0123456789abcdef0123456789abcde\r\n0\r\n\r\n", false), 1);
	assert_int_equal(P.body_len, 31);
	/* an empty chunked body */
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false), 1);
	assert_int_equal(P.body_len, 0);
}

static void test_no_body(void **state)
{
	assert_int_equal(parse("HTTP/1.1 204 No Content\r\n\r\n", false), 1);
	assert_int_equal(P.status, 204);
	assert_null(P.body);
	assert_int_equal(parse("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", false), 1);
	assert_int_equal(P.body_len, 0);
	ls_http_parser_free(&P);
	assert_int_equal(parse_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", false, true, &P, &S), 1);
	assert_int_equal(P.body_len, 0);
	assert_true(P.keep_alive);
}

static void test_interim(void **state)
{
	assert_int_equal(parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
			       "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", false), 1);
	assert_int_equal(P.status, 201);
	assert_string_equal(P.body, "ok");
	assert_string_equal(S.names, "Content-Length");
	/* only interim answers, then the end */
	assert_int_equal(parse("HTTP/1.1 100 Continue\r\n\r\n", true), -EBADMSG);
	/* we never ask to switch protocols */
	assert_int_equal(parse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", false), -EBADMSG);
}

static void test_truncated(void **state)
{
	assert_int_equal(parse("", true), -ENODATA);
	assert_int_equal(parse("HTTP/1.1 200", true), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Len", true), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n", true), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", false), 0);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", true), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", true), -EBADMSG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", true), -EBADMSG);
	/* the last chunk without the empty line that ends the trailers */
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", true), -EBADMSG);
}

static void test_oversize(void **state)
{
	char *big = malloc(2 * LS_HTTP_MAX_HEAD);
	size_t n;

	assert_non_null(big);
	/* the cap is MAXB: exactly that is fine, one more is not, and a length says so at once */
	n = (size_t)snprintf(big, 2 * LS_HTTP_MAX_HEAD, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", MAXB);
	memset(big + n, 'x', MAXB);
	big[n + MAXB] = '\0';
	assert_int_equal(parse(big, false), 1);
	assert_int_equal(P.body_len, MAXB);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n", false), -EFBIG);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", false), -EBADMSG);
	/* chunks that add up to more */
	n = (size_t)snprintf(big, 2 * LS_HTTP_MAX_HEAD,
			     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", MAXB);
	memset(big + n, 'x', MAXB);
	strcpy(big + n + MAXB, "\r\n1\r\n");
	assert_int_equal(parse(big, false), -EFBIG);
	/* a body until the end of the connection */
	n = (size_t)snprintf(big, 2 * LS_HTTP_MAX_HEAD, "HTTP/1.1 200 OK\r\n\r\n");
	memset(big + n, 'x', MAXB + 1);
	big[n + MAXB + 1] = '\0';
	assert_int_equal(parse(big, true), -EFBIG);
	/* a header line over LS_HTTP_MAX_LINE, a header block over LS_HTTP_MAX_HEAD */
	n = (size_t)snprintf(big, 2 * LS_HTTP_MAX_HEAD, "HTTP/1.1 200 OK\r\nX-Long: ");
	memset(big + n, 'a', LS_HTTP_MAX_LINE);
	strcpy(big + n + LS_HTTP_MAX_LINE, "\r\n\r\n");
	assert_int_equal(parse(big, false), -EBADMSG);
	n = (size_t)snprintf(big, 2 * LS_HTTP_MAX_HEAD, "HTTP/1.1 200 OK\r\n");
	while (n < LS_HTTP_MAX_HEAD + 100)
		n += (size_t)snprintf(big + n, 2 * LS_HTTP_MAX_HEAD - n, "X-Many: %0100d\r\n", 0);
	strcpy(big + n, "Content-Length: 0\r\n\r\n");
	assert_int_equal(parse(big, false), -EBADMSG);
	free(big);
}

static void test_bad_chunks(void **state)
{
	static const char *const bad[] = {
		"zz\r\n",                       /* not hex */
		"\r\n",                         /* empty */
		"-1\r\n",                       /* signed */
		"0x10\r\n",                     /* a prefix */
		"4 x\r\nWiki\r\n0\r\n\r\n",     /* junk after the size, not an extension */
		"11111111111111111\r\n",        /* 17 hex digits: over 64 bits */
		"4\r\nWikiX\r\n0\r\n\r\n",      /* no CRLF right after the data */
		"4\r\nWiki0\r\n\r\n",           /* the same, the next size glued on */
	};
	char in[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(in, sizeof(in), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s", bad[i]);
		print_message("# chunk `%.*s'\n", (int)strcspn(bad[i], "\r"), bad[i]);
		assert_int_equal(parse(in, true), -EBADMSG);
	}
	/* a big but representable size is over the cap, not malformed */
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", false), -EFBIG);
}

static void test_bad_headers(void **state)
{
	static const char *const bad[] = {
		"X-Folded: a\r\n b\r\n",                      /* obs-fold */
		"X-Folded: a\r\n\tb\r\n",
		"No colon here\r\n",
		": no name\r\n",
		"Content-Length : 2\r\n",                     /* space before the colon */
		"X-Ctl: a\x01z\r\n",                          /* a control character */
		"X-Cr: a\rb\r\n",                             /* a CR inside the line */
		"Content-Length: 2, 3\r\n",                   /* values that differ */
		"Content-Length: 2\r\nContent-Length: 3\r\n",
		"Content-Length: +2\r\n",
		"Content-Length: 2x\r\n",
		"Content-Length: \r\n",
		"Transfer-Encoding: gzip, chunked\r\n",       /* codings we did not ask for */
		"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
		"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n", /* smuggling */
	};
	char in[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(in, sizeof(in), "HTTP/1.1 200 OK\r\n%s\r\nok", bad[i]);
		print_message("# header %zu\n", i);
		assert_int_equal(parse(in, true), -EBADMSG);
	}
	/* a NUL inside a header line */
	{
		static const char nul[] = "HTTP/1.1 200 OK\r\nX-Nul: a\0b\r\nContent-Length: 0\r\n\r\n";
		struct ls_http_parser *p = malloc(sizeof(*p));
		struct seen s;

		assert_non_null(p);
		assert_int_equal(feed(p, &s, nul, sizeof(nul) - 1, 0, true, false, NULL), -EBADMSG);
		ls_http_parser_free(p);
		free(p);
	}
}

static void test_bad_status(void **state)
{
	static const char *const bad[] = {
		"HTTP/2 200 OK", "HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "ICY 200 OK", "http/1.1 200 OK",
		"HTTP/1.1  200 OK", "HTTP/1.1 099 Low", "HTTP/1.1 600 High", "HTTP/1.1 200OK", "",
	};
	char in[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(in, sizeof(in), "%s\r\nContent-Length: 0\r\n\r\n", bad[i]);
		print_message("# status line `%s'\n", bad[i]);
		assert_int_equal(parse(in, true), -EBADMSG);
	}
}

static void test_after_the_end(void **state)
{
	static const char two[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n";
	struct ls_http_parser *p = malloc(sizeof(*p));
	struct seen s;
	size_t used = 0;

	assert_non_null(p);
	/* a complete answer takes only its own bytes */
	assert_int_equal(feed(p, &s, two, sizeof(two) - 1, 0, false, false, &used), 1);
	assert_int_equal(used, sizeof(two) - 1 - strlen("HTTP/1.1 200 OK\r\n"));
	assert_int_equal(ls_http_parse(p, "x", 1, &used), 1);
	assert_int_equal(used, 0);
	assert_int_equal(ls_http_parse_eof(p), 1);
	ls_http_parser_free(p);
	/* an error sticks */
	assert_int_equal(feed(p, &s, "HTTP/9", 6, 0, false, false, NULL), 0);
	assert_int_equal(ls_http_parse(p, "\r\n", 2, &used), -EBADMSG);
	assert_int_equal(ls_http_parse(p, "HTTP/1.1 200 OK\r\n", 17, &used), -EBADMSG);
	assert_int_equal(ls_http_parse_eof(p), -EBADMSG);
	assert_false(p->keep_alive);
	ls_http_parser_free(p);
	free(p);
}

static void test_urls(void **state)
{
	struct ls_http_url u;
	char host[300];

	assert_int_equal(ls_http_parse_url("http://10.0.0.1:8080", &u), 0);
	assert_false(u.tls);
	assert_string_equal(u.host, "10.0.0.1");
	assert_int_equal(u.port, 8080);
	assert_string_equal(u.prefix, "");
	ls_http_host_field(&u, host, sizeof(host));
	assert_string_equal(host, "10.0.0.1:8080");

	assert_int_equal(ls_http_parse_url("https://[fd00::1]:8443/base", &u), 0);
	assert_true(u.tls);
	assert_true(u.ipv6);
	assert_string_equal(u.host, "fd00::1");
	assert_int_equal(u.port, 8443);
	assert_string_equal(u.prefix, "/base");
	ls_http_host_field(&u, host, sizeof(host));
	assert_string_equal(host, "[fd00::1]:8443");

	/* default ports: not in the Host field */
	assert_int_equal(ls_http_parse_url("https://[::1]", &u), 0);
	assert_int_equal(u.port, 443);
	ls_http_host_field(&u, host, sizeof(host));
	assert_string_equal(host, "[::1]");
	assert_int_equal(ls_http_parse_url("http://control.example.com/", &u), 0);
	assert_int_equal(u.port, 80);
	assert_string_equal(u.host, "control.example.com");
	assert_string_equal(u.prefix, "/");
	ls_http_host_field(&u, host, sizeof(host));
	assert_string_equal(host, "control.example.com");
	assert_int_equal(ls_http_parse_url("https://c.example:443", &u), 0);
	ls_http_host_field(&u, host, sizeof(host));
	assert_string_equal(host, "c.example");

	static const char *const bad[] = {
		"ftp://a", "http://", "https://:80", "http://a:", "http://a:0", "http://a:65536",
		"http://a:8x", "http://a:123456", "http://[::1", "http://[::1]x", "http://[]:1",
		"http://[::g]:1", "http://user@a", "http://a?x=1", "http://a/b#c", "http://a b",
		"http://a/b c", "HTTP://a",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("# url `%s'\n", bad[i]);
		assert_int_equal(ls_http_parse_url(bad[i], &u), -EINVAL);
	}
}

static int teardown(void **state)
{
	ls_http_parser_free(&P);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_content_length, teardown),
		cmocka_unit_test_teardown(test_keep_alive, teardown),
		cmocka_unit_test_teardown(test_chunked, teardown),
		cmocka_unit_test_teardown(test_no_body, teardown),
		cmocka_unit_test_teardown(test_interim, teardown),
		cmocka_unit_test_teardown(test_truncated, teardown),
		cmocka_unit_test_teardown(test_oversize, teardown),
		cmocka_unit_test_teardown(test_bad_chunks, teardown),
		cmocka_unit_test_teardown(test_bad_headers, teardown),
		cmocka_unit_test_teardown(test_bad_status, teardown),
		cmocka_unit_test(test_after_the_end),
		cmocka_unit_test(test_urls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
