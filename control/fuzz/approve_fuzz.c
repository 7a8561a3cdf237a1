// SPDX-License-Identifier: MIT
/* libFuzzer harness for the approval page's untrusted input (control/body.c): form bodies,
 * the Cookie header, the code of /approve/CODE. The first byte picks the parser and, for a
 * form, the field name; the rest is the input. Besides crashes and leaks it checks what the
 * page relies on: a form value has no NUL and fits LS_FORM_VALUE_MAX, and encoding it again
 * parses back to itself; a cookie value has no ';' and no edge whitespace; a session id and
 * a code are lowercase hex of their length. Build: make fuzz; run:
 *   build/fuzz/control_approve_fuzz -max_total_time=60 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/control.h"
#include "lightscale/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "approve_fuzz: %s\n", what);
		abort();
	}
}

static bool lower_hex(const char *s, size_t n)
{
	return strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

/* name=VALUE with every byte of value escaped but letters and digits, parsed back */
static void roundtrip(const char *name, const char *value)
{
	size_t n = strlen(value), i, o;
	char *body = malloc(strlen(name) + 1 + 3 * n + 1), *back = NULL;
	int ret;

	check(body != NULL, "malloc");
	o = (size_t)sprintf(body, "%s=", name);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)value[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			body[o++] = (char)c;
		else if (c == ' ')
			body[o++] = '+';
		else
			o += (size_t)sprintf(body + o, "%%%02X", c);
	}
	ret = lsc_form_value(body, o, name, &back);
	check(ret == 0 && back && !strcmp(back, value), "a value encoded again does not parse back");
	free(back);
	free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"admin_key", "action", "network", "a"};
	const char *in = (const char *)data + 1;
	size_t n = size ? size - 1 : 0;
	char *str;

	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0: {
		const char *name = names[(data[0] / 3) % 4];
		char *v = (char *)1;
		int ret = lsc_form_value(in, n, name, &v);

		if (ret) {
			check(v == NULL, "*out set on failure");
			break;
		}
		check(v != NULL, "no value on success");
		check(strlen(v) <= LS_FORM_VALUE_MAX, "value over LS_FORM_VALUE_MAX");
		check(strlen(v) <= n, "value longer than the body");
		roundtrip(name, v);
		free(v);
		break;
	}
	case 1: {
		char out[80], id[LS_APPROVE_SESSION_LEN + 1];
		unsigned i;
		int ret;

		/* a header is a C string: MHD never hands over a NUL */
		str = strndup(in, n);
		if (!str)
			return 0;
		for (i = 0; i < 4; i++) {
			ret = lsc_cookie_get(str, names[(data[0] / 3 + i) % 4], i / 2, out, sizeof(out));
			check(ret == 0 || !out[0], "out not empty on failure");
			if (!ret) {
				size_t l = strlen(out);

				check(l < sizeof(out) && !strchr(out, ';'), "cookie value with ';'");
				check(!l || (out[0] != ' ' && out[0] != '\t' && out[l - 1] != ' ' &&
					     out[l - 1] != '\t') || (l >= 1 && strchr(str, '"')),
				      "cookie value with whitespace at an edge");
			}
		}
		ret = lsc_approve_session_id(str, id);
		check(ret ? !id[0] : lower_hex(id, LS_APPROVE_SESSION_LEN), "bad session id accepted");
		free(str);
		break;
	}
	case 2:
		str = strndup(in, n);
		if (!str)
			return 0;
		check(!!lsc_approve_code_check(str) == !lower_hex(str, LS_APPROVE_CODE_LEN),
		      "code check disagrees");
		free(str);
		break;
	}
	return 0;
}
