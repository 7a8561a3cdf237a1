// SPDX-License-Identifier: MIT
/* Request-body parsers: every HTTP body is checked here before anything touches the
 * database. Unknown members are ignored (newer clients); wrong types, bad keys,
 * prefixes, endpoints and out-of-range numbers are refused with a message naming them. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "keys.h"
#include "lightscale/api.h"

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

void lsc_strv_free(struct lsc_strv *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

int lsc_strv_add_unique(struct lsc_strv *s, const char *v)
{
	char **nv;
	size_t i;

	for (i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], v))
			return 0;
	nv = realloc(s->v, (s->n + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	s->v = nv;
	s->v[s->n] = strdup(v);
	if (!s->v[s->n])
		return -ENOMEM;
	s->n++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* printable, no control characters, at most max bytes */
static bool clean_string(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static json_t *load(const char *body, size_t len, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j;

	if (!body || !len) {
		fail(err, errlen, "empty body: a JSON object is required");
		return NULL;
	}
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		fail(err, errlen, "malformed JSON at line %d column %d: %s", je.line, je.column,
		     je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		fail(err, errlen, "the body must be a JSON object");
		return NULL;
	}
	return j;
}

static int get_string(json_t *o, const char *name, bool required, const char **out, char *err,
		      size_t errlen)
{
	json_t *v = json_object_get(o, name);

	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required)
			return fail(err, errlen, "missing field `%s'", name);
		return 0;
	}
	if (!json_is_string(v))
		return fail(err, errlen, "field `%s' must be a string", name);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return fail(err, errlen, "field `%s' contains a NUL byte", name);
	*out = json_string_value(v);
	return 0;
}

static int get_int(json_t *o, const char *name, int64_t min, int64_t max, bool *present,
		   int64_t *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, name);

	*present = false;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return fail(err, errlen, "field `%s' must be an integer", name);
	if (json_integer_value(v) < min || json_integer_value(v) > max)
		return fail(err, errlen, "field `%s' out of range: %lld (allowed %lld..%lld)", name,
			    (long long)json_integer_value(v), (long long)min, (long long)max);
	*present = true;
	*out = json_integer_value(v);
	return 0;
}

static int get_bool(json_t *o, const char *name, int *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, name);

	*out = -1;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return fail(err, errlen, "field `%s' must be true or false", name);
	*out = json_is_true(v);
	return 0;
}

static int get_key(json_t *o, const char *name, char out[64], char *err, size_t errlen)
{
	uint8_t key[LS_WG_KEY_LEN];
	const char *s;
	int ret;

	ret = get_string(o, name, true, &s, err, errlen);
	if (ret)
		return ret;
	if (ls_key_from_base64(key, s) || ls_key_is_zero(key))
		return fail(err, errlen, "field `%s': invalid key `%.60s' (want 44 base64 characters)",
			    name, s);
	ls_key_to_base64(out, key);
	return 0;
}

static int get_prefixes(json_t *o, const char *name, bool *present, struct lsc_strv *out,
			char *err, size_t errlen)
{
	json_t *a = json_object_get(o, name), *v;
	size_t i;

	*present = false;
	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a))
		return fail(err, errlen, "field `%s' must be an array of prefixes", name);
	if (json_array_size(a) > LSC_MAX_ROUTES)
		return fail(err, errlen, "field `%s': at most %d prefixes", name, LSC_MAX_ROUTES);
	json_array_foreach(a, i, v) {
		struct ls_prefix p;
		char buf[LS_PREFIX_STRLEN];

		if (!json_is_string(v))
			return fail(err, errlen, "field `%s'[%zu] must be a string", name, i);
		if (ls_prefix_parse(json_string_value(v), &p, false))
			return fail(err, errlen, "field `%s'[%zu]: invalid prefix `%.60s'", name, i,
				    json_string_value(v));
		ls_prefix_format(&p, buf);
		if (lsc_strv_add_unique(out, buf))
			return fail(err, errlen, "out of memory");
	}
	if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), cmp_str);
	*present = true;
	return 0;
}

static int get_endpoints(json_t *o, const char *name, struct lsc_strv *out, char *err,
			 size_t errlen)
{
	json_t *a = json_object_get(o, name), *v;
	size_t i;

	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a))
		return fail(err, errlen, "field `%s' must be an array of endpoints", name);
	if (json_array_size(a) > LSC_MAX_ENDPOINTS)
		return fail(err, errlen, "field `%s': at most %d endpoints", name, LSC_MAX_ENDPOINTS);
	json_array_foreach(a, i, v) {
		struct sockaddr_storage ss;
		socklen_t sl;
		char buf[LS_ENDPOINT_STRLEN];

		if (!json_is_string(v))
			return fail(err, errlen, "field `%s'[%zu] must be a string", name, i);
		if (ls_endpoint_parse(json_string_value(v), &ss, &sl))
			return fail(err, errlen, "field `%s'[%zu]: invalid endpoint `%.60s'", name, i,
				    json_string_value(v));
		ls_endpoint_format((struct sockaddr *)&ss, buf);
		if (lsc_strv_add_unique(out, buf))
			return fail(err, errlen, "out of memory");
	}
	return 0;
}

int lsc_parse_register(const char *body, size_t len, struct lsc_register_req *r, char *err,
		       size_t errlen)
{
	const char *s;
	int64_t port = 0;
	bool present;
	json_t *j;
	int ret;

	memset(r, 0, sizeof(*r));
	j = load(body, len, err, errlen);
	if (!j)
		return -EINVAL;
	/* no token (absent or null): a tokenless registration, which waits for an admin on the
	 * approval page (the request must then be signed by the machine key) */
	ret = get_string(j, "token", false, &s, err, errlen);
	if (ret)
		goto cleanup;
	if (s && !clean_string(s, 256)) {
		ret = fail(err, errlen, "field `token' is not a token");
		goto cleanup;
	}
	if (s && !(r->token = strdup(s))) {
		ret = fail(err, errlen, "out of memory");
		goto cleanup;
	}
	ret = get_key(j, "wg_key", r->wg_key, err, errlen);
	if (ret)
		goto cleanup;
	ret = get_key(j, "machine_key", r->machine_key, err, errlen);
	if (ret)
		goto cleanup;
	ret = get_string(j, "hostname", true, &s, err, errlen);
	if (ret)
		goto cleanup;
	if (!clean_string(s, 255)) {
		ret = fail(err, errlen, "field `hostname': invalid hostname `%.64s'", s);
		goto cleanup;
	}
	r->hostname = strdup(s);
	ret = get_prefixes(j, "routes", &present, &r->routes, err, errlen);
	if (ret)
		goto cleanup;
	ret = get_endpoints(j, "endpoints", &r->endpoints, err, errlen);
	if (ret)
		goto cleanup;
	ret = get_int(j, "listen_port", 1, 65535, &present, &port, err, errlen);
	if (ret)
		goto cleanup;
	r->listen_port = (int)port;
	if (!r->hostname)
		ret = fail(err, errlen, "out of memory");
cleanup:
	json_decref(j);
	if (ret)
		lsc_register_req_free(r);
	return ret;
}

void lsc_register_req_free(struct lsc_register_req *r)
{
	if (r->token) {
		ls_memzero(r->token, strlen(r->token));
		free(r->token);
	}
	free(r->hostname);
	lsc_strv_free(&r->routes);
	lsc_strv_free(&r->endpoints);
	memset(r, 0, sizeof(*r));
}

int lsc_parse_heartbeat(const char *body, size_t len, struct lsc_heartbeat_req *r, char *err,
			size_t errlen)
{
	int64_t port = 0;
	bool present;
	json_t *j;
	int ret;

	memset(r, 0, sizeof(*r));
	j = load(body, len, err, errlen);
	if (!j)
		return -EINVAL;
	ret = get_endpoints(j, "endpoints", &r->endpoints, err, errlen);
	if (ret)
		goto cleanup;
	ret = get_int(j, "listen_port", 1, 65535, &present, &port, err, errlen);
	if (ret)
		goto cleanup;
	r->listen_port = (int)port;
	ret = get_prefixes(j, "routes", &r->has_routes, &r->routes, err, errlen);
cleanup:
	json_decref(j);
	if (ret)
		lsc_heartbeat_req_free(r);
	return ret;
}

void lsc_heartbeat_req_free(struct lsc_heartbeat_req *r)
{
	lsc_strv_free(&r->endpoints);
	lsc_strv_free(&r->routes);
	memset(r, 0, sizeof(*r));
}

bool lsc_valid_network_name(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 32)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0)))
			return false;
	}
	return s[n - 1] != '-';
}

bool lsc_valid_dns_suffix(const char *s)
{
	size_t n = strlen(s), lab = 0, i;

	if (n == 0 || n > 200 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return false;
			lab = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && lab > 0)))
			return false;
		if (++lab > 63)
			return false;
	}
	return s[n - 1] != '-';
}

void lsc_dns_label(const char *hostname, char *out, size_t maxlen)
{
	size_t n = 0;
	const char *p;

	if (maxlen > 63)
		maxlen = 63;
	for (p = hostname; *p && *p != '.' && n < maxlen; p++) {
		char c = *p;

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			c = '-';
		if (c == '-' && (n == 0 || out[n - 1] == '-'))
			continue;
		out[n++] = c;
	}
	while (n > 0 && out[n - 1] == '-')
		n--;
	if (n == 0) {
		strcpy(out, "node");
		return;
	}
	out[n] = '\0';
}

int lsc_parse_network(const char *body, size_t len, struct lsc_network_req *r, char *err,
		      size_t errlen)
{
	const char *s;
	json_t *j;
	int ret;

	memset(r, 0, sizeof(*r));
	j = load(body, len, err, errlen);
	if (!j)
		return -EINVAL;
	ret = get_string(j, "name", true, &s, err, errlen);
	if (ret)
		goto cleanup;
	if (!lsc_valid_network_name(s)) {
		ret = fail(err, errlen,
			   "invalid network name `%.64s' (1-32 of a-z, 0-9 and '-', starting with a letter or digit)",
			   s);
		goto cleanup;
	}
	r->name = strdup(s);
	ret = get_string(j, "ipv4", false, &s, err, errlen);
	if (ret)
		goto cleanup;
	if (s) {
		if (ls_prefix_parse(s, &r->ipv4, false) || r->ipv4.family != AF_INET ||
		    r->ipv4.len < 8 || r->ipv4.len > 30) {
			ret = fail(err, errlen, "invalid IPv4 prefix `%.64s' (want a /8 to /30)", s);
			goto cleanup;
		}
		r->has_ipv4 = true;
	}
	ret = get_string(j, "ipv6", false, &s, err, errlen);
	if (ret)
		goto cleanup;
	if (s) {
		if (ls_prefix_parse(s, &r->ipv6, false) || r->ipv6.family != AF_INET6 ||
		    r->ipv6.len < 16 || r->ipv6.len > 96) {
			ret = fail(err, errlen, "invalid IPv6 prefix `%.64s' (want a /16 to /96)", s);
			goto cleanup;
		}
		r->has_ipv6 = true;
	}
	ret = get_string(j, "dns_suffix", false, &s, err, errlen);
	if (ret)
		goto cleanup;
	if (s) {
		if (!lsc_valid_dns_suffix(s)) {
			ret = fail(err, errlen, "invalid DNS suffix `%.64s'", s);
			goto cleanup;
		}
		r->dns_suffix = strdup(s);
	}
	ret = get_bool(j, "require_approval", &r->require_approval, err, errlen);
	if (ret)
		goto cleanup;
	ret = get_bool(j, "route_approval", &r->route_approval, err, errlen);
cleanup:
	json_decref(j);
	if (ret)
		lsc_network_req_free(r);
	return ret;
}

void lsc_network_req_free(struct lsc_network_req *r)
{
	free(r->name);
	free(r->dns_suffix);
	memset(r, 0, sizeof(*r));
}

static bool valid_tag(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '_' || *s == ':' || *s == '.'))
			return false;
	return true;
}

int lsc_parse_token(const char *body, size_t len, struct lsc_token_req *r, char *err,
		    size_t errlen)
{
	json_t *j, *a, *v;
	bool present;
	size_t i;
	int ret;

	memset(r, 0, sizeof(*r));
	r->ttl = 24 * 3600;
	r->uses = 1;
	j = load(body, len, err, errlen);
	if (!j)
		return -EINVAL;
	ret = get_int(j, "ttl", 1, 10LL * 366 * 24 * 3600, &present, &r->ttl, err, errlen);
	if (ret)
		goto cleanup;
	if (!present)
		r->ttl = 24 * 3600;
	ret = get_int(j, "uses", 1, 1000000000, &present, &r->uses, err, errlen);
	if (ret)
		goto cleanup;
	if (!present)
		r->uses = 1;
	a = json_object_get(j, "tags");
	if (a && !json_is_null(a)) {
		if (!json_is_array(a)) {
			ret = fail(err, errlen, "field `tags' must be an array of strings");
			goto cleanup;
		}
		if (json_array_size(a) > LSC_MAX_TAGS) {
			ret = fail(err, errlen, "field `tags': at most %d tags", LSC_MAX_TAGS);
			goto cleanup;
		}
		json_array_foreach(a, i, v) {
			if (!json_is_string(v) || !valid_tag(json_string_value(v))) {
				ret = fail(err, errlen,
					   "field `tags'[%zu]: invalid tag (1-64 of a-z 0-9 - _ : .)", i);
				goto cleanup;
			}
			if (lsc_strv_add_unique(&r->tags, json_string_value(v))) {
				ret = fail(err, errlen, "out of memory");
				goto cleanup;
			}
		}
	}
cleanup:
	json_decref(j);
	if (ret)
		lsc_token_req_free(r);
	return ret;
}

void lsc_token_req_free(struct lsc_token_req *r)
{
	lsc_strv_free(&r->tags);
	memset(r, 0, sizeof(*r));
}

int lsc_parse_network_set(const char *body, size_t len, struct lsc_network_set_req *r, char *err,
			  size_t errlen)
{
	json_t *j, *v;
	const char *k;
	int ret = 0;

	r->require_approval = r->route_approval = -1;
	r->key_lifetime = -1;
	j = load(body, len, err, errlen);
	if (!j)
		return -EINVAL;
	json_object_foreach(j, k, v) {
		if (strcmp(k, "require_approval") && strcmp(k, "route_approval") &&
		    strcmp(k, "key_lifetime")) {
			ret = fail(err, errlen, "unknown field `%.64s'", k);
			goto cleanup;
		}
	}
	ret = get_bool(j, "require_approval", &r->require_approval, err, errlen);
	if (!ret)
		ret = get_bool(j, "route_approval", &r->route_approval, err, errlen);
	if (!ret) {
		bool present;
		int64_t lt = 0;

		/* seconds, 0 = keys never expire; at least a minute, at most ten years */
		ret = get_int(j, "key_lifetime", 0, 10ll * 366 * 86400, &present, &lt, err, errlen);
		if (!ret && present) {
			if (lt && lt < 60)
				ret = fail(err, errlen, "field `key_lifetime': %lld s is too short (at least 60)",
					   (long long)lt);
			r->key_lifetime = lt;
		}
	}
	if (!ret && r->require_approval < 0 && r->route_approval < 0 && r->key_lifetime < 0)
		ret = fail(err, errlen, "nothing to set (require_approval, route_approval, key_lifetime)");
cleanup:
	json_decref(j);
	return ret;
}

int lsc_parse_rotate(const char *body, size_t len, char wg_key[64], char *err, size_t errlen)
{
	json_t *j = load(body, len, err, errlen);
	int ret;

	if (!j)
		return -EINVAL;
	ret = get_key(j, "wg_key", wg_key, err, errlen);
	json_decref(j);
	return ret;
}

int lsc_parse_routes(const char *body, size_t len, struct lsc_strv *routes, char *err,
		     size_t errlen)
{
	json_t *j;
	bool present;
	int ret;

	memset(routes, 0, sizeof(*routes));
	j = load(body, len, err, errlen);
	if (!j)
		return -EINVAL;
	ret = get_prefixes(j, "routes", &present, routes, err, errlen);
	if (!ret && (!present || !routes->n))
		ret = fail(err, errlen, "field `routes' must list at least one prefix");
	json_decref(j);
	if (ret)
		lsc_strv_free(routes);
	return ret;
}

/* ---- the approval page's untrusted input (control/approve.c): form bodies, the Cookie
 * header, the code in the path. No server needed: tests/unit/test_control_approve.c and
 * control/fuzz/approve_fuzz.c call these directly. ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* decodes v[0..n): '+' is a space, %XX a byte; a truncated or non-hex escape, a NUL (raw or
 * %00) or more than LS_FORM_VALUE_MAX decoded bytes are refused */
static int form_decode(const char *v, size_t n, char **out)
{
	char *p, *o;
	size_t k;

	if (n > 3 * (size_t)LS_FORM_VALUE_MAX)
		return -E2BIG;
	p = malloc(n + 1);
	if (!p)
		return -ENOMEM;
	for (k = 0, o = p; k < n; k++) {
		if ((size_t)(o - p) == LS_FORM_VALUE_MAX) {
			free(p);
			return -E2BIG;
		}
		if (v[k] == '+') {
			*o++ = ' ';
		} else if (v[k] == '%') {
			int hi = n - k >= 3 ? hexval(v[k + 1]) : -1;
			int lo = n - k >= 3 ? hexval(v[k + 2]) : -1;

			if (hi < 0 || lo < 0 || (!hi && !lo)) {
				free(p);
				return -EINVAL;
			}
			*o++ = (char)(hi << 4 | lo);
			k += 2;
		} else if (!v[k]) {
			free(p);
			return -EINVAL;
		} else {
			*o++ = v[k];
		}
	}
	*o = '\0';
	*out = p;
	return 0;
}

int lsc_form_value(const char *body, size_t len, const char *name, char **out)
{
	size_t nl = strlen(name), i = 0;
	char *val = NULL;
	bool found = false;
	int ret;

	*out = NULL;
	if (!nl)
		return -EINVAL;
	while (i < len) {
		const char *f = body + i, *amp = memchr(f, '&', len - i), *eq;
		size_t flen = amp ? (size_t)(amp - f) : len - i, klen;

		eq = memchr(f, '=', flen);
		klen = eq ? (size_t)(eq - f) : flen;
		if (klen == nl && !memcmp(f, name, nl)) {
			if (found) { /* action=approve&action=reject: which one? neither */
				free(val);
				return -EINVAL;
			}
			found = true;
			ret = form_decode(eq ? eq + 1 : f + flen, eq ? flen - klen - 1 : 0, &val);
			if (ret)
				return ret;
		}
		i += flen + 1;
	}
	if (!found)
		return -ENOENT;
	*out = val;
	return 0;
}

/* s[0..n) without spaces and tabs at either end; returns the new length */
static size_t trim_ws(const char **s, size_t n)
{
	while (n && (**s == ' ' || **s == '\t')) {
		(*s)++;
		n--;
	}
	while (n && ((*s)[n - 1] == ' ' || (*s)[n - 1] == '\t'))
		n--;
	return n;
}

int lsc_cookie_get(const char *hdr, const char *name, unsigned idx, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	const char *p = hdr;

	if (outlen)
		out[0] = '\0';
	if (!hdr || !nl)
		return -ENOENT;
	while (*p) {
		const char *pair = p, *end = p + strcspn(p, ";"), *k = pair, *v, *eq;
		size_t klen, vlen;

		p = *end ? end + 1 : end;
		eq = memchr(pair, '=', (size_t)(end - pair));
		if (!eq)
			continue; /* a pair without '=' names no cookie of ours */
		klen = trim_ws(&k, (size_t)(eq - pair));
		if (klen != nl || memcmp(k, name, nl) || idx--)
			continue;
		v = eq + 1;
		vlen = trim_ws(&v, (size_t)(end - v));
		if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') { /* RFC 6265 allows quotes */
			v++;
			vlen -= 2;
		}
		if (vlen >= outlen)
			return -E2BIG;
		memcpy(out, v, vlen);
		out[vlen] = '\0';
		return 0;
	}
	return -ENOENT;
}

static bool lower_hex(const char *s, size_t n)
{
	return strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

int lsc_approve_session_id(const char *hdr, char id[LS_APPROVE_SESSION_LEN + 1])
{
	char v[LS_APPROVE_SESSION_LEN + 1];
	unsigned i;
	int ret;

	/* the first one of the right shape: another path's stale cookie may come first */
	for (i = 0; (ret = lsc_cookie_get(hdr, LS_APPROVE_COOKIE, i, v, sizeof(v))) != -ENOENT; i++) {
		if (!ret && lower_hex(v, LS_APPROVE_SESSION_LEN)) {
			memcpy(id, v, sizeof(v));
			return 0;
		}
	}
	id[0] = '\0';
	return -ENOENT;
}

int lsc_approve_code_check(const char *code)
{
	return lower_hex(code, LS_APPROVE_CODE_LEN) ? 0 : -EINVAL;
}
