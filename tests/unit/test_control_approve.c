// SPDX-License-Identifier: MIT
/* The approval page's untrusted input (control/body.c): urlencoded form fields, the Cookie
 * header's session id, the code of /approve/CODE. Each refuses what a browser never sends
 * rather than guessing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/control.h"
#include "lightscale/api.h"

#define SID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SID2 "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

/* lsc_form_value on a C string; *out NULL on failure */
static int fv(const char *body, const char *name, char **out)
{
	int ret = lsc_form_value(body, strlen(body), name, out);

	if (ret)
		assert_null(*out);
	return ret;
}

static void want_value(const char *body, const char *name, const char *want)
{
	char *v = (char *)1;

	assert_int_equal(fv(body, name, &v), 0);
	assert_non_null(v);
	assert_string_equal(v, want);
	free(v);
}

static void want_error(const char *body, const char *name, int err)
{
	char *v = (char *)1;

	assert_int_equal(fv(body, name, &v), err);
}

static void test_form_plain(void **state)
{
	(void)state;
	want_value("admin_key=lsa_abc&action=approve&network=home", "admin_key", "lsa_abc");
	want_value("admin_key=lsa_abc&action=approve&network=home", "action", "approve");
	want_value("admin_key=lsa_abc&action=approve&network=home", "network", "home");
	/* empty value, empty fields, a field without '=' */
	want_value("network=&action=approve", "network", "");
	want_value("&&action=reject&&", "action", "reject");
	want_value("action&network=home", "action", "");
	want_value("action", "action", "");
	/* '=' inside the value stays */
	want_value("admin_key=a=b==", "admin_key", "a=b==");
	/* absent; a name that is a prefix or suffix of another is not it */
	want_error("", "action", -ENOENT);
	want_error("actions=approve&xaction=approve&actio=approve", "action", -ENOENT);
	want_error("admin_key=x", "", -EINVAL);
}

static void test_form_decoding(void **state)
{
	(void)state;
	want_value("network=my+net", "network", "my net");
	want_value("admin_key=a%2Bb%2fc%3D", "admin_key", "a+b/c=");
	want_value("network=%41%62%7e", "network", "Ab~");
	want_value("network=%25", "network", "%");
	want_value("network=%2541", "network", "%41"); /* decoded once only */
	want_value("network=%26x%3D1", "network", "&x=1");
	want_value("network=%C3%A9t%C3%A9", "network", "\xc3\xa9t\xc3\xa9");
	/* truncated or non-hex escapes */
	want_error("network=abc%", "network", -EINVAL);
	want_error("network=abc%4", "network", -EINVAL);
	want_error("network=%4&action=approve", "network", -EINVAL); /* not %4& */
	want_error("network=%g1", "network", -EINVAL);
	want_error("network=%1g", "network", -EINVAL);
	want_error("network=% 1", "network", -EINVAL);
	/* the other fields still parse */
	want_value("network=%4&action=approve", "action", "approve");
}

static void test_form_nul(void **state)
{
	static const char raw[] = "network=ho\0me&action=approve";
	static const char in_name[] = "netw\0rk=home&network=x";
	char *v = (char *)1;

	(void)state;
	want_error("network=ho%00me", "network", -EINVAL);
	assert_int_equal(lsc_form_value(raw, sizeof(raw) - 1, "network", &v), -EINVAL);
	assert_null(v);
	assert_int_equal(lsc_form_value(raw, sizeof(raw) - 1, "action", &v), 0);
	assert_string_equal(v, "approve");
	free(v);
	/* a NUL in a name: not the field, and the scan goes on past it */
	assert_int_equal(lsc_form_value(in_name, sizeof(in_name) - 1, "network", &v), 0);
	assert_string_equal(v, "x");
	free(v);
	/* len, not the NUL terminator, bounds the body */
	assert_int_equal(lsc_form_value("action=approve", 10, "action", &v), 0);
	assert_string_equal(v, "app");
	free(v);
}

static void test_form_duplicates(void **state)
{
	(void)state;
	want_error("action=approve&action=reject", "action", -EINVAL);
	want_error("action=approve&action=approve", "action", -EINVAL);
	want_error("action=approve&network=x&action", "action", -EINVAL);
	/* other fields are unaffected */
	want_value("action=approve&network=x&action=reject", "network", "x");
}

static void test_form_size(void **state)
{
	size_t n = strlen("admin_key=") + 3 * (LS_FORM_VALUE_MAX + 1) + sizeof("&action=reject");
	char *body = malloc(n), *v = NULL;

	(void)state;
	assert_non_null(body);
	/* exactly the limit, raw */
	strcpy(body, "admin_key=");
	memset(body + 10, 'k', LS_FORM_VALUE_MAX);
	body[10 + LS_FORM_VALUE_MAX] = '\0';
	assert_int_equal(fv(body, "admin_key", &v), 0);
	assert_int_equal(strlen(v), LS_FORM_VALUE_MAX);
	free(v);
	/* one more byte */
	strcat(body, "k");
	assert_int_equal(fv(body, "admin_key", &v), -E2BIG);
	/* the limit counts decoded bytes: LS_FORM_VALUE_MAX escapes fit, one more does not */
	strcpy(body, "admin_key=");
	for (size_t i = 0; i < LS_FORM_VALUE_MAX; i++)
		memcpy(body + 10 + 3 * i, "%41", 4);
	assert_int_equal(fv(body, "admin_key", &v), 0);
	assert_int_equal(strlen(v), LS_FORM_VALUE_MAX);
	assert_int_equal(v[LS_FORM_VALUE_MAX - 1], 'A');
	free(v);
	strcat(body, "%41");
	assert_int_equal(fv(body, "admin_key", &v), -E2BIG);
	/* a long other field does not matter */
	strcat(body, "&action=reject");
	want_value(body, "action", "reject");
	free(body);
}

/* ---- cookies ---- */

static void want_cookie(const char *hdr, const char *name, unsigned idx, const char *want)
{
	char out[128];

	assert_int_equal(lsc_cookie_get(hdr, name, idx, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_cookie_pairs(void **state)
{
	char out[8];

	(void)state;
	want_cookie("a=1", "a", 0, "1");
	want_cookie("a=1; b=2; c=3", "b", 0, "2");
	want_cookie("a=1; b=2; c=3", "c", 0, "3");
	want_cookie("a=1;b=2;c=3", "c", 0, "3");
	/* whitespace around names and values, tabs too */
	want_cookie("  a = 1 ;\tb\t=\t2\t", "b", 0, "2");
	want_cookie("a=1;   ", "a", 0, "1");
	/* empty value, '=' in a value, quotes */
	want_cookie("a=; b=2", "a", 0, "");
	want_cookie("a=x=y", "a", 0, "x=y");
	want_cookie("a=\"q\"", "a", 0, "q");
	want_cookie("a=\"", "a", 0, "\"");
	/* several with one name: by index */
	want_cookie("a=1; b=2; a=3", "a", 0, "1");
	want_cookie("a=1; b=2; a=3", "a", 1, "3");
	assert_int_equal(lsc_cookie_get("a=1; b=2; a=3", "a", 2, out, sizeof(out)), -ENOENT);
	/* pairs without '=' are skipped, never taken as a name */
	want_cookie("a; b=2", "b", 0, "2");
	assert_int_equal(lsc_cookie_get("a; b", "a", 0, out, sizeof(out)), -ENOENT);
	assert_int_equal(lsc_cookie_get(";;;", "a", 0, out, sizeof(out)), -ENOENT);
	assert_int_equal(lsc_cookie_get("", "a", 0, out, sizeof(out)), -ENOENT);
	assert_int_equal(lsc_cookie_get(NULL, "a", 0, out, sizeof(out)), -ENOENT);
	/* names match whole: not a prefix, suffix or part of a value */
	assert_int_equal(lsc_cookie_get("ab=1; ba=2; x=a=3", "a", 0, out, sizeof(out)), -ENOENT);
	/* too long for out */
	assert_int_equal(lsc_cookie_get("a=12345678", "a", 0, out, sizeof(out)), -E2BIG);
	assert_string_equal(out, "");
	want_cookie("a=1234567", "a", 0, "1234567");
}

static void test_session_id(void **state)
{
	char id[LS_APPROVE_SESSION_LEN + 1];

	(void)state;
	assert_int_equal(lsc_approve_session_id("lsc_approve=" SID, id), 0);
	assert_string_equal(id, SID);
	assert_int_equal(lsc_approve_session_id("theme=dark; lsc_approve=" SID "; lang=en", id), 0);
	assert_string_equal(id, SID);
	assert_int_equal(lsc_approve_session_id("theme=dark;lsc_approve=" SID, id), 0);
	assert_int_equal(lsc_approve_session_id(" lsc_approve = " SID " ", id), 0);
	assert_string_equal(id, SID);
	/* another cookie whose name ends in ours, or whose value holds ours */
	assert_int_equal(lsc_approve_session_id("xlsc_approve=" SID, id), -ENOENT);
	assert_int_equal(lsc_approve_session_id("x=lsc_approve=" SID, id), -ENOENT);
	/* the wrong shape: short, long, upper case, not hex, missing '=' */
	assert_int_equal(lsc_approve_session_id("lsc_approve=" "0123", id), -ENOENT);
	assert_int_equal(lsc_approve_session_id("lsc_approve=" SID "0", id), -ENOENT);
	assert_int_equal(lsc_approve_session_id("lsc_approve=0123456789ABCDEF0123456789abcdef"
						"0123456789abcdef0123456789abcdef", id), -ENOENT);
	assert_int_equal(lsc_approve_session_id("lsc_approve=" SID "; x", id), 0);
	assert_int_equal(lsc_approve_session_id("lsc_approve " SID, id), -ENOENT);
	assert_int_equal(lsc_approve_session_id("lsc_approve", id), -ENOENT);
	assert_int_equal(lsc_approve_session_id(NULL, id), -ENOENT);
	assert_string_equal(id, "");
	/* two: a stale one of the wrong shape first, then ours; two good ones: the first */
	assert_int_equal(lsc_approve_session_id("lsc_approve=; lsc_approve=" SID, id), 0);
	assert_string_equal(id, SID);
	assert_int_equal(lsc_approve_session_id("lsc_approve=" SID "x" SID "; lsc_approve=" SID2, id), 0);
	assert_string_equal(id, SID2);
	assert_int_equal(lsc_approve_session_id("lsc_approve=" SID2 "; lsc_approve=" SID, id), 0);
	assert_string_equal(id, SID2);
}

static void test_code(void **state)
{
	(void)state;
	assert_int_equal(lsc_approve_code_check("0123456789abcdef0123456789abcdef"), 0);
	assert_int_equal(lsc_approve_code_check("0123456789abcdef0123456789abcde"), -EINVAL);
	assert_int_equal(lsc_approve_code_check("0123456789abcdef0123456789abcdef0"), -EINVAL);
	assert_int_equal(lsc_approve_code_check("0123456789ABCDEF0123456789abcdef"), -EINVAL);
	assert_int_equal(lsc_approve_code_check("0123456789abcdef0123456789abcdeg"), -EINVAL);
	assert_int_equal(lsc_approve_code_check("0123456789abcdef0123456789abcdef/"), -EINVAL);
	assert_int_equal(lsc_approve_code_check("../../v1/admin/devices/1/approve"), -EINVAL);
	assert_int_equal(lsc_approve_code_check(""), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_form_plain),
		cmocka_unit_test(test_form_decoding),
		cmocka_unit_test(test_form_nul),
		cmocka_unit_test(test_form_duplicates),
		cmocka_unit_test(test_form_size),
		cmocka_unit_test(test_cookie_pairs),
		cmocka_unit_test(test_session_id),
		cmocka_unit_test(test_code),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
