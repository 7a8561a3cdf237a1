// SPDX-License-Identifier: MIT
/* Control-plane client: HTTP/1.1 over TCP or GnuTLS (http.c, httpconn.c) with failover
 * across control URLs. */
#include "ctlclient.h"
#include "http.h"
#include "httpconn.h"
#include "tlsid.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "lightscale/api.h"
#include "log.h"
#include "sign.h"
#include "util.h"

static void set_err(struct ls_ctl_error *err, long status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void set_err(struct ls_ctl_error *err, long status, const char *code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	err->http_status = status;
	snprintf(err->code, sizeof(err->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

/* milliseconds from the environment variable name (1..600000), else def */
static long env_ms(const char *name, long def)
{
	const char *v = getenv(name);
	char *end = NULL;
	long ms;

	if (!v || !*v)
		return def;
	ms = strtol(v, &end, 10);
	if (*end || ms < 1 || ms > 600000) {
		pr_warn("ignoring %s=`%s': not milliseconds in 1..600000 (using %ld)", name, v, def);
		return def;
	}
	return ms;
}

int ls_ctl_init(struct ls_ctl *c, const char *urls)
{
	const char *p = urls;
	struct ls_http_url u;

	memset(c, 0, sizeof(*c));
	c->connect_timeout_ms = env_ms("LIGHTSCALE_CONNECT_TIMEOUT_MS", LS_CTL_CONNECT_TIMEOUT_MS);
	c->handshake_timeout_ms = env_ms("LIGHTSCALE_TLS_TIMEOUT_MS", LS_CTL_HANDSHAKE_TIMEOUT_MS);
	if (!urls)
		return -EINVAL;
	while (*p) {
		const char *start, *end;
		size_t n;

		while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			break;
		start = p;
		while (*p && *p != ',' && *p != ' ' && *p != '\t' && *p != '\n')
			p++;
		end = p;
		while (end > start && end[-1] == '/')
			end--;
		n = (size_t)(end - start);
		if (c->n_urls == LS_CTL_MAX_URLS)
			goto invalid;
		c->urls[c->n_urls] = strndup(start, n);
		if (!c->urls[c->n_urls]) {
			ls_ctl_free(c);
			return -ENOMEM;
		}
		if (ls_http_parse_url(c->urls[c->n_urls++], &u))
			goto invalid;
	}
	if (!c->n_urls)
		goto invalid;
	return 0;
invalid:
	ls_ctl_free(c);
	return -EINVAL;
}

void ls_ctl_free(struct ls_ctl *c)
{
	size_t i;

	for (i = 0; i < c->n_urls; i++)
		free(c->urls[i]);
	if (c->admin_key) {
		ls_memzero(c->admin_key, strlen(c->admin_key));
		free(c->admin_key);
	}
	free(c->pinned_keys);
	free(c->ca_file);
	if (c->conn) {
		ls_hconn_close(c->conn);
		free(c->conn);
	}
	ls_memzero(c->machine_sk, sizeof(c->machine_sk));
	memset(c, 0, sizeof(*c));
}

void ls_ctl_set_machine_key(struct ls_ctl *c, const uint8_t sk[LS_ED25519_SK_LEN])
{
	memcpy(c->machine_sk, sk, LS_ED25519_SK_LEN);
	c->have_machine_key = true;
}

static int set_str(char **dst, const char *s)
{
	char *d = NULL;

	if (s && !(d = strdup(s)))
		return -ENOMEM;
	free(*dst);
	*dst = d;
	return 0;
}

int ls_ctl_set_admin_key(struct ls_ctl *c, const char *key)
{
	return set_str(&c->admin_key, key);
}

int ls_ctl_set_pinned_keys(struct ls_ctl *c, const char *pins)
{
	return set_str(&c->pinned_keys, pins);
}

/* pins followed per identity key, for every struct ls_ctl of the process */
static pthread_mutex_t follow_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint8_t pk[32];
	char pins[LS_CTL_PINS_MAX];
} follow[8];
static size_t n_follow;

int ls_ctl_follow_pins(const uint8_t identity_pk[32], const char *pins)
{
	size_t i;
	int ret = 0;

	if (!pins || strlen(pins) >= LS_CTL_PINS_MAX)
		return -EINVAL;
	pthread_mutex_lock(&follow_lock);
	for (i = 0; i < n_follow; i++)
		if (!memcmp(follow[i].pk, identity_pk, 32))
			break;
	if (i == n_follow) {
		if (n_follow == sizeof(follow) / sizeof(follow[0])) {
			ret = -ENOSPC;
			goto out;
		}
		n_follow++;
		memcpy(follow[i].pk, identity_pk, 32);
	}
	snprintf(follow[i].pins, sizeof(follow[i].pins), "%s", pins);
out:
	pthread_mutex_unlock(&follow_lock);
	return ret;
}

/* the pins a request checks: the identity's followed set if there is one, else c's own */
static const char *effective_pins(const struct ls_ctl *c, char out[LS_CTL_PINS_MAX])
{
	const char *ret = c->pinned_keys;
	size_t i;

	if (!c->have_identity)
		return ret;
	pthread_mutex_lock(&follow_lock);
	for (i = 0; i < n_follow; i++)
		if (!memcmp(follow[i].pk, c->identity_pk, 32) && follow[i].pins[0]) {
			snprintf(out, LS_CTL_PINS_MAX, "%s", follow[i].pins);
			ret = out;
			break;
		}
	pthread_mutex_unlock(&follow_lock);
	return ret;
}

int ls_ctl_set_ca_file(struct ls_ctl *c, const char *path)
{
	return set_str(&c->ca_file, path);
}

void ls_ctl_set_fwmark(struct ls_ctl *c, uint32_t mark)
{
	c->fwmark = mark;
}

void ls_ctl_response_free(struct ls_ctl_response *r)
{
	if (!r)
		return;
	free(r->body);
	if (r->json)
		json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

static void parse_error_body(struct ls_ctl_error *err, long status, const json_t *j,
			     const char *body)
{
	const json_t *e = j ? json_object_get(j, "error") : NULL;
	const char *code = e ? json_string_value(json_object_get(e, "code")) : NULL;
	const char *msg = e ? json_string_value(json_object_get(e, "message")) : NULL;

	if (code)
		set_err(err, status, code, "%s", msg ? msg : code);
	else
		set_err(err, status, "http_error", "HTTP %ld: %.200s", status, body ? body : "");
}

/* ---- transport: one request on one URL ---- */

/* what the connection was verified with: it is reused only under the same trust */
static uint64_t trust_hash(const char *pins, const char *ca_file)
{
	uint64_t h = 14695981039346656037ull;
	const char *s[2] = {pins ? pins : "", ca_file ? ca_file : ""};

	for (int i = 0; i < 2; i++)
		for (const char *p = s[i]; ; p++) {
			h = (h ^ (uint8_t)*p) * 1099511628211ull;
			if (!*p)
				break;
		}
	return h;
}

/* keeps the value of X-Lightscale-Netmap-Signature (char[128] ctx) */
static void on_header(void *ctx, const char *name, const char *value)
{
	char *out = ctx;

	if (!strcasecmp(name, "X-Lightscale-Netmap-Signature") && strlen(value) < 128)
		strcpy(out, value);
}

/* The request's bytes: request line, header fields, body. NULL on no memory (or a
 * signature that cannot be made: *ret says which). */
static char *build_request(const struct ls_ctl *c, const struct ls_http_url *u,
			   const char *method, const char *path, const char *body,
			   size_t body_len, enum ls_ctl_auth auth, size_t *len, int *ret)
{
	char host[300], *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	*ret = -ENOMEM;
	if (!f)
		return NULL;
	ls_http_host_field(u, host, sizeof(host));
	fprintf(f, "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: lightscale/1\r\n"
		   "Accept: application/json\r\n",
		method, u->prefix, path, host);
	if (body)
		fprintf(f, "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
	else if (!strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH"))
		fputs("Content-Length: 0\r\n", f);
	if (auth == LS_CTL_AUTH_SIGNED) {
		struct ls_sign_headers sh;

		if (ls_sign_request(&sh, c->machine_sk, method, path, body, body ? body_len : 0,
				    ls_unix_time())) {
			*ret = -EINVAL;
			goto fail;
		}
		fprintf(f, "%s: %s\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n", LS_HDR_KEY, sh.key,
			LS_HDR_TIMESTAMP, sh.timestamp, LS_HDR_NONCE, sh.nonce, LS_HDR_SIGNATURE,
			sh.signature);
	} else if (auth == LS_CTL_AUTH_ADMIN && c->admin_key) {
		fprintf(f, "Authorization: Bearer %s\r\n", c->admin_key);
	}
	fputs("\r\n", f);
	if (body && body_len)
		fwrite(body, 1, body_len, f);
	if (fclose(f)) {
		f = NULL;
		goto fail;
	}
	*ret = 0;
	return buf;
fail:
	if (f)
		fclose(f);
	if (buf)
		ls_memzero(buf, *len);
	free(buf);
	return NULL;
}

/* Sends the request on h and reads one response into resp. *answered: a byte of the
 * answer came. 0, a connection error (e filled), -EBADMSG (malformed or cut short),
 * -EFBIG (over LS_CTL_MAX_RESPONSE) or -ENOMEM. */
static int exchange(struct ls_hconn *h, const char *req, size_t req_len, bool head,
		    uint64_t deadline, struct ls_ctl_response *resp, struct ls_hconn_err *e,
		    bool *answered)
{
	struct ls_http_parser *p = malloc(sizeof(*p));
	char buf[16384];
	size_t used = 0;
	ssize_t n;
	int ret;

	*answered = false;
	if (!p)
		return -ENOMEM;
	resp->netmap_sig[0] = '\0';
	p->on_header = on_header;
	p->ctx = resp->netmap_sig;
	ls_http_parser_init(p, LS_CTL_MAX_RESPONSE - 1, head);
	if ((ret = ls_hconn_send(h, req, req_len, deadline, e)))
		goto cleanup;
	do {
		n = ls_hconn_recv(h, buf, sizeof(buf), deadline, e);
		if (n < 0) {
			ret = (int)n;
			goto cleanup;
		}
		if (n > 0)
			*answered = true;
		ret = n ? ls_http_parse(p, buf, (size_t)n, &used) : ls_http_parse_eof(p);
	} while (!ret);
	if (ret == -ENODATA) {
		e->cls = LS_HC_IO;
		snprintf(e->msg, sizeof(e->msg), "the server closed the connection without an answer");
		ret = -ECONNRESET;
		goto cleanup;
	}
	if (ret < 0)
		goto cleanup;
	resp->http_status = p->status;
	resp->body = p->body ? p->body : strdup("");
	if (!resp->body) {
		ret = -ENOMEM;
		goto cleanup;
	}
	p->body = NULL;
	resp->len = p->body_len;
	if (resp->len)
		resp->json = json_loadb(resp->body, resp->len, 0, NULL);
	/* the connection carries the next request unless the server ends it (or sent more) */
	if (!p->keep_alive || used < (size_t)n)
		ls_hconn_close(h);
	else
		h->requests++;
	ret = 0;
cleanup:
	ls_http_parser_free(p);
	free(p);
	return ret;
}

/* One attempt on URL idx, within timeout_ms: the kept connection when it goes there,
 * else a new one. A kept connection the server closed meanwhile (nothing came back) is
 * replaced once. 0 (resp filled) or -errno with e filled (or -EBADMSG, -EFBIG). */
static int attempt(struct ls_ctl *c, size_t idx, const char *method, const char *path,
		   const char *body, size_t body_len, enum ls_ctl_auth auth, long timeout_ms,
		   const char *pins, struct ls_ctl_response *resp, struct ls_hconn_err *e)
{
	const char *base = c->urls[idx];
	struct ls_hconn_cfg cfg = {.fwmark = c->fwmark, .connect_timeout_ms = c->connect_timeout_ms,
				   .handshake_timeout_ms = c->handshake_timeout_ms, .pins = pins,
				   .ca_file = c->ca_file};
	uint64_t deadline = ls_now_ms() + (uint64_t)timeout_ms, trust = trust_hash(pins, c->ca_file);
	struct ls_hconn *h = c->conn;
	struct ls_http_url u;
	size_t req_len = 0;
	bool reused, answered = false;
	char *req;
	int ret;

	memset(e, 0, sizeof(*e));
	if (ls_http_parse_url(base, &u)) {
		e->cls = LS_HC_CONFIG;
		snprintf(e->msg, sizeof(e->msg), "invalid URL `%s'", base);
		return -EINVAL;
	}
	if (!h) {
		h = c->conn = malloc(sizeof(*h));
		if (!h)
			return -ENOMEM;
		ls_hconn_init(h);
	}
	reused = h->trust == trust && ls_hconn_reusable(h, base);
	for (;;) {
		/* made again for a second try: a signed request gets a fresh nonce */
		req = build_request(c, &u, method, path, body, body_len, auth, &req_len, &ret);
		if (!req) {
			e->cls = LS_HC_CONFIG;
			snprintf(e->msg, sizeof(e->msg), ret == -ENOMEM ? "no memory" : "cannot sign the request");
			return ret;
		}
		if (!reused) {
			ret = ls_hconn_open(h, base, &u, &cfg, deadline, e);
			if (!ret)
				h->trust = trust;
		}
		if (!ret)
			ret = exchange(h, req, req_len, !strcmp(method, "HEAD"), deadline, resp, e,
				       &answered);
		ls_memzero(req, req_len); /* the admin key */
		free(req);
		if (!ret)
			break;
		ls_hconn_close(h);
		if (!reused || answered || e->cls != LS_HC_IO)
			break;
		reused = false; /* the server had closed the idle connection: once more */
	}
	if (ret == -ETIMEDOUT && e->cls == LS_HC_TIMEOUT && !e->tls_timeout &&
	    !strncmp(e->msg, "no answer", 9))
		snprintf(e->msg, sizeof(e->msg), "no answer within %ld ms", timeout_ms);
	return ret;
}

int ls_ctl_request(struct ls_ctl *c, const char *method, const char *path, const char *body,
		   size_t body_len, enum ls_ctl_auth auth, long timeout_ms,
		   struct ls_ctl_response *resp, struct ls_ctl_error *err)
{
	char pinbuf[LS_CTL_PINS_MAX];
	const char *pins = effective_pins(c, pinbuf);
	enum ls_hconn_class last = LS_HC_CONNECT;
	struct ls_hconn_err e;
	size_t i;
	int ret = -ECONNREFUSED;

	memset(resp, 0, sizeof(*resp));
	if (err)
		memset(err, 0, sizeof(*err));
	if (!c->n_urls || !method || !path || path[0] != '/' || strpbrk(method, " \r\n") ||
	    strpbrk(path, " \r\n")) {
		set_err(err, 0, "bad_request", "invalid request `%s %s'", method ? method : "",
			path ? path : "");
		return -EINVAL;
	}
	if (auth == LS_CTL_AUTH_SIGNED && !c->have_machine_key) {
		set_err(err, 0, "no_key", "no machine key to sign `%s %s'", method, path);
		return -ENOKEY;
	}
	if (timeout_ms <= 0)
		timeout_ms = LS_CTL_DEFAULT_TIMEOUT_MS;
	for (i = 0; i < c->n_urls; i++) {
		size_t idx = (c->current + i) % c->n_urls;
		const char *base = c->urls[idx];

		ls_ctl_response_free(resp);
		ret = attempt(c, idx, method, path, body, body_len, auth, timeout_ms,
			      strncmp(base, "https://", 8) ? NULL : pins, resp, &e);
		if (!ret) {
			/* a server without its database: try the next one */
			if ((resp->http_status == 502 || resp->http_status == 503) &&
			    i + 1 < c->n_urls)
				continue;
			c->current = idx;
			resp->url = base;
			break;
		}
		if (ret == -EFBIG) {
			set_err(err, 0, "request_failed", "%s%s: response larger than %u bytes", base,
				path, LS_CTL_MAX_RESPONSE);
			return -EIO;
		}
		if (ret == -EBADMSG) {
			set_err(err, 0, "request_failed", "%s%s: not a valid HTTP/1.1 answer", base, path);
			return -EIO;
		}
		if (ret == -ENOMEM || e.cls == LS_HC_CONFIG) {
			set_err(err, 0, "request_failed", "%s%s: %s", base, path, e.msg);
			return ret == -ENOMEM ? -ENOMEM : -EIO;
		}
		if (e.cls == LS_HC_PIN) {
			set_err(err, 0, "pin_mismatch",
				"%s: the server's TLS key %s is not one of the pinned keys %s: refused",
				base, e.pin, pins ? pins : "");
			if (i + 1 < c->n_urls)
				continue;
			return -EPERM;
		}
		last = e.cls;
		if (e.tls_timeout)
			set_err(err, 0, "timeout",
				"%s%s: %s (TCP connected; connect and TLS handshake got %ld ms: "
				"LIGHTSCALE_TLS_TIMEOUT_MS)", base, path, e.msg,
				c->handshake_timeout_ms > c->connect_timeout_ms ? c->handshake_timeout_ms
										: c->connect_timeout_ms);
		else
			set_err(err, 0, e.cls == LS_HC_TIMEOUT ? "timeout" : "connect_failed", "%s%s: %s",
				base, path, e.msg);
	}
	if (ret)
		return last == LS_HC_TIMEOUT ? -ETIMEDOUT
		       : last == LS_HC_RESOLVE ? -EHOSTUNREACH
					       : -ECONNREFUSED;
	if (resp->http_status < 200 || resp->http_status > 299) {
		parse_error_body(err, resp->http_status, resp->json, resp->body);
		return -EPROTO;
	}
	if (resp->len && !resp->json) {
		set_err(err, resp->http_status, "bad_response", "%s%s: answer is not JSON",
			resp->url, path);
		return -EBADMSG;
	}
	return 0;
}

int ls_ctl_request_json(struct ls_ctl *c, const char *method, const char *path,
			const json_t *body, enum ls_ctl_auth auth, long timeout_ms,
			struct ls_ctl_response *resp, struct ls_ctl_error *err)
{
	char *s = NULL;
	int ret;

	if (body) {
		s = json_dumps(body, JSON_COMPACT);
		if (!s) {
			memset(resp, 0, sizeof(*resp));
			set_err(err, 0, "internal", "cannot encode the request body");
			return -ENOMEM;
		}
	}
	ret = ls_ctl_request(c, method, path, s, s ? strlen(s) : 0, auth, timeout_ms, resp, err);
	free(s);
	return ret;
}

static json_t *str_array(const char *const *v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

int ls_ctl_register(struct ls_ctl *c, const struct ls_ctl_register_req *req,
		    struct ls_ctl_response *resp, struct ls_ctl_error *err)
{
	json_t *b;
	int ret;

	b = json_pack("{s:s?, s:s?, s:s?, s:s?}", "token", req->token, "wg_key", req->wg_key,
		      "machine_key", req->machine_key, "hostname", req->hostname);
	if (!b) {
		memset(resp, 0, sizeof(*resp));
		set_err(err, 0, "internal", "cannot encode the request body");
		return -ENOMEM;
	}
	if (req->n_routes)
		json_object_set_new(b, "routes", str_array(req->routes, req->n_routes));
	if (req->n_endpoints)
		json_object_set_new(b, "endpoints", str_array(req->endpoints, req->n_endpoints));
	if (req->listen_port)
		json_object_set_new(b, "listen_port", json_integer(req->listen_port));
	ret = ls_ctl_request_json(c, "POST", LS_API_PREFIX "/register", b, LS_CTL_AUTH_NONE, 0,
				  resp, err);
	json_decref(b);
	return ret;
}

int ls_ctl_heartbeat(struct ls_ctl *c, const struct ls_ctl_heartbeat_req *req,
		     struct ls_ctl_response *resp, struct ls_ctl_error *err)
{
	json_t *b = json_object();
	int ret;

	if (!b) {
		memset(resp, 0, sizeof(*resp));
		set_err(err, 0, "internal", "cannot encode the request body");
		return -ENOMEM;
	}
	json_object_set_new(b, "endpoints", str_array(req->endpoints, req->n_endpoints));
	if (req->listen_port)
		json_object_set_new(b, "listen_port", json_integer(req->listen_port));
	if (req->send_routes)
		json_object_set_new(b, "routes", str_array(req->routes, req->n_routes));
	ret = ls_ctl_request_json(c, "POST", LS_API_PREFIX "/heartbeat", b, LS_CTL_AUTH_SIGNED, 0,
				  resp, err);
	json_decref(b);
	return ret;
}

int ls_ctl_parse_enroll(const char *s, char *token, size_t token_size, char *identity,
			size_t identity_size, char *pins, size_t pins_size)
{
	const char *a = strchr(s, '@'), *b = a ? strchr(a + 1, '@') : NULL, *p;
	size_t tl = a ? (size_t)(a - s) : strlen(s), used = 0;
	uint8_t k[32];

	if (!tl || tl >= token_size || (a && !b) || identity_size < 1 || pins_size < 1)
		return -EINVAL;
	memcpy(token, s, tl);
	token[tl] = '\0';
	identity[0] = pins[0] = '\0';
	if (!a)
		return 0;
	if ((size_t)(b - a - 1) >= identity_size)
		return -EINVAL;
	memcpy(identity, a + 1, (size_t)(b - a - 1));
	identity[b - a - 1] = '\0';
	if (ls_key_from_base64(k, identity))
		return -EINVAL;
	for (p = b + 1; *p;) {
		size_t n = strcspn(p, ","), i;

		if (n < 9 || strncmp(p, "sha256//", 8) || used + n + 2 > pins_size)
			return -EINVAL;
		for (i = 8; i < n; i++)
			if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", p[i]))
				return -EINVAL;
		if (used)
			pins[used++] = ';';
		memcpy(pins + used, p, n);
		used += n;
		pins[used] = '\0';
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

int ls_ctl_rotate(struct ls_ctl *c, const char *wg_key, struct ls_ctl_response *resp,
		  struct ls_ctl_error *err)
{
	json_t *b = json_pack("{s:s}", "wg_key", wg_key ? wg_key : "");
	int ret;

	if (!b) {
		memset(resp, 0, sizeof(*resp));
		set_err(err, 0, "internal", "cannot encode the request body");
		return -ENOMEM;
	}
	ret = ls_ctl_request_json(c, "POST", LS_API_PREFIX "/rotate", b, LS_CTL_AUTH_SIGNED, 0,
				  resp, err);
	json_decref(b);
	return ret;
}

int ls_ctl_netmap(struct ls_ctl *c, int64_t since, int wait_s, struct ls_ctl_response *resp,
		  struct ls_ctl_error *err)
{
	char path[128];
	int ret;

	if (wait_s < 0)
		wait_s = 0;
	if (since > 0 && wait_s > 0)
		snprintf(path, sizeof(path), LS_API_PREFIX "/netmap?since=%" PRId64 "&wait=%d",
			 since, wait_s);
	else if (since > 0)
		snprintf(path, sizeof(path), LS_API_PREFIX "/netmap?since=%" PRId64, since);
	else
		snprintf(path, sizeof(path), LS_API_PREFIX "/netmap");
	ret = ls_ctl_request(c, "GET", path, NULL, 0, LS_CTL_AUTH_SIGNED,
			     (long)wait_s * 1000 + 30000, resp, err);
	if (!ret && c->have_identity) {
		uint8_t msg[52], sig[64];

		ls_netmap_sig_message(msg, resp->body ? resp->body : "", resp->len);
		if (ls_b64_decode(sig, sizeof(sig), resp->netmap_sig) != 64 ||
		    crypto_sign_ed25519_verify_detached(sig, msg, sizeof(msg), c->identity_pk)) {
			set_err(err, resp->http_status, "bad_netmap_signature",
				"%s: the netmap is not signed by the deployment's identity key: refused",
				resp->url ? resp->url : "");
			return -EBADMSG;
		}
	}
	return ret;
}

void ls_ctl_set_identity(struct ls_ctl *c, const uint8_t pk[32])
{
	memcpy(c->identity_pk, pk, 32);
	c->have_identity = true;
}

void ls_netmap_sig_message(uint8_t out[20 + 32], const char *body, size_t len)
{
	memcpy(out, LS_NETMAP_SIG_CTX, 20);
	ls_sha256(out + 20, body, len);
}

int ls_ctl_health(struct ls_ctl *c, struct ls_ctl_response *resp, struct ls_ctl_error *err)
{
	return ls_ctl_request(c, "GET", LS_API_PREFIX "/health", NULL, 0, LS_CTL_AUTH_NONE, 0,
			      resp, err);
}

void ls_ctl_error_print(const struct ls_ctl_error *err, const char *prefix)
{
	if (err->http_status)
		fprintf(stderr, "%s%s%s: %s (HTTP %ld)\n", prefix ? prefix : "",
			prefix ? ": " : "", err->code, err->message, err->http_status);
	else
		fprintf(stderr, "%s%s%s: %s\n", prefix ? prefix : "", prefix ? ": " : "",
			err->code, err->message);
}
