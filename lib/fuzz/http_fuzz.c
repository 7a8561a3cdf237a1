// SPDX-License-Identifier: MIT
/* libFuzzer: the HTTP/1.1 response parser and the URL parser of lib/http.c.
 *   make fuzz BUILD=build/x && build/x/fuzz/http_fuzz -max_total_time=60
 * The first byte picks the piece size the response is fed in (1..32, or all at once) and
 * whether the request was HEAD; the rest is what a server sends, then the connection
 * ends. Checked: the same input gives the same result whole and in pieces; a complete
 * answer has a status in 100..599 (never 1xx or 101), a NUL-terminated body within the
 * cap; consumed bytes never exceed the input. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define CAP 4096

static int run(struct ls_http_parser *p, const uint8_t *d, size_t n, size_t step, bool head)
{
	size_t off = 0, used;
	int ret = 0;

	memset(p, 0, sizeof(*p));
	ls_http_parser_init(p, CAP, head);
	while (off < n) {
		size_t k = step && step < n - off ? step : n - off;
		/* an exact-size heap copy of each piece, so ASan sees reads past it */
		uint8_t *piece = malloc(k);

		if (!piece)
			return -ENOMEM;
		memcpy(piece, d + off, k);
		ret = ls_http_parse(p, (const char *)piece, k, &used);
		free(piece);
		if (used > k)
			abort();
		off += used;
		if (ret)
			break;
		if (used != k)
			abort();
	}
	if (!ret)
		ret = ls_http_parse_eof(p);
	if (ret == 1) {
		if (p->status < 200 || p->status > 599 || p->body_len > CAP)
			abort();
		if (p->body && p->body[p->body_len] != '\0')
			abort();
		if (!p->body && p->body_len)
			abort();
	}
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ls_http_parser a, b;
	struct ls_http_url u;
	size_t step;
	bool head;
	int ra, rb;

	if (size < 1)
		return 0;
	step = data[0] & 0x1f;
	head = data[0] & 0x80;
	ra = run(&a, data + 1, size - 1, 0, head);
	rb = run(&b, data + 1, size - 1, step, head);
	if (ra != rb)
		abort();
	if (ra == 1 && (a.status != b.status || a.body_len != b.body_len ||
			a.keep_alive != b.keep_alive ||
			(a.body_len && memcmp(a.body, b.body, a.body_len))))
		abort();
	ls_http_parser_free(&a);
	ls_http_parser_free(&b);

	/* the same bytes as a control URL (up to the first NUL) */
	{
		char *s = malloc(size);
		char host[300];

		if (!s)
			return 0;
		memcpy(s, data + 1, size - 1);
		s[size - 1] = '\0';
		if (ls_http_parse_url(s, &u) == 0) {
			if (!u.port || !u.host[0] || u.prefix < s || u.prefix > s + strlen(s))
				abort();
			ls_http_host_field(&u, host, sizeof(host));
		}
		free(s);
	}
	return 0;
}
