// SPDX-License-Identifier: MIT
/* Control-plane client over libcurl with failover across control URLs. */
#include "ctlclient.h"
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

#include <curl/curl.h>
#include <sodium.h>

#include "lightscale/api.h"
#include "log.h"
#include "sign.h"
#include "util.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

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

	memset(c, 0, sizeof(*c));
	c->connect_timeout_ms = env_ms("LIGHTSCALE_CONNECT_TIMEOUT_MS", LS_CTL_CONNECT_TIMEOUT_MS);
	c->handshake_timeout_ms = env_ms("LIGHTSCALE_TLS_TIMEOUT_MS", LS_CTL_HANDSHAKE_TIMEOUT_MS);
	pthread_once(&curl_once, curl_init_once);
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
		if (c->n_urls == LS_CTL_MAX_URLS ||
		    !((n > 7 && !strncmp(start, "http://", 7)) ||
		      (n > 8 && !strncmp(start, "https://", 8))))
			goto invalid;
		c->urls[c->n_urls] = strndup(start, n);
		if (!c->urls[c->n_urls]) {
			ls_ctl_free(c);
			return -ENOMEM;
		}
		c->n_urls++;
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
	if (c->curl)
		curl_easy_cleanup(c->curl);
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

/* libcurl's CURLOPT_CONNECTTIMEOUT_MS covers the TCP connect and the TLS handshake
 * together; to give them separate allowances the socket is made and connected here
 * (marked first), within connect_timeout_ms, and handed to libcurl connected. */
static curl_socket_t opensocket_cb(void *opaque, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct ls_ctl *c = opaque;
	uint64_t deadline = ls_now_ms() + (uint64_t)c->connect_timeout_ms;
	socklen_t el = sizeof(int);
	int fd, err = 0, n;

	c->connect_errno = 0;
	if (purpose != CURLSOCKTYPE_IPCXN) {
		c->connect_errno = EINVAL;
		return CURL_SOCKET_BAD;
	}
	fd = socket(a->family, a->socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->protocol);
	if (fd < 0) {
		c->connect_errno = errno;
		return CURL_SOCKET_BAD;
	}
	if (c->fwmark && setsockopt(fd, SOL_SOCKET, SO_MARK, &c->fwmark, sizeof(c->fwmark)) < 0) {
		err = errno;
		goto fail;
	}
	if (connect(fd, &a->addr, a->addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		err = errno;
		goto fail;
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		uint64_t now = ls_now_ms();

		if (now >= deadline) {
			err = ETIMEDOUT;
			goto fail;
		}
		n = poll(&p, 1, (int)(deadline - now));
		if (n > 0)
			break;
		if (n < 0 && errno != EINTR) {
			err = errno;
			goto fail;
		}
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
		err = errno;
	if (err)
		goto fail;
	return fd;
fail:
	close(fd);
	c->connect_errno = err;
	return CURL_SOCKET_BAD;
}

static int sockopt_cb(void *opaque, curl_socket_t fd, curlsocktype purpose)
{
	(void)opaque;
	(void)fd;
	(void)purpose;
	return CURL_SOCKOPT_ALREADY_CONNECTED; /* by opensocket_cb */
}

static void set_socket_cbs(CURL *h, struct ls_ctl *c)
{
	curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, opensocket_cb);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, c);
	curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, sockopt_cb);
	curl_easy_setopt(h, CURLOPT_SOCKOPTDATA, c);
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

struct buf {
	char *p;
	size_t len, cap;
	int overflow;
};

static size_t write_cb(char *data, size_t size, size_t nmemb, void *opaque)
{
	struct buf *b = opaque;
	size_t n = size * nmemb;

	if (b->len + n + 1 > LS_CTL_MAX_RESPONSE) {
		b->overflow = 1;
		return 0;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *np;

		while (cap < b->len + n + 1)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np)
			return 0;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

/* Errors after which the next control URL is tried. */
static int is_connect_failure(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_OPERATION_TIMEDOUT:
		return 1;
	default:
		return 0;
	}
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

/* The pin of the key a server presents (for error messages): a separate handshake
 * without pinning that only reads the certificate. */
static void server_pin(struct ls_ctl *c, const char *base, char pin[LS_PIN_STRLEN])
{
	CURL *h = curl_easy_init();
	struct curl_certinfo *ci = NULL;

	pin[0] = '\0';
	if (!h)
		return;
	curl_easy_setopt(h, CURLOPT_URL, base);
	curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 3000L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
	set_socket_cbs(h, c);
	if (curl_easy_perform(h) == CURLE_OK &&
	    curl_easy_getinfo(h, CURLINFO_CERTINFO, &ci) == CURLE_OK && ci && ci->num_of_certs > 0) {
		struct curl_slist *sl;

		for (sl = ci->certinfo[0]; sl; sl = sl->next)
			if (!strncmp(sl->data, "Cert:", 5)) {
				ls_tls_pin_from_cert_pem(sl->data + 5, strlen(sl->data + 5), pin);
				break;
			}
	}
	curl_easy_cleanup(h);
}

/* keeps the value of X-Lightscale-Netmap-Signature (char[128] userdata) */
static size_t header_cb(char *p, size_t size, size_t n, void *userdata)
{
	static const char name[] = "x-lightscale-netmap-signature:";
	size_t len = size * n;
	char *out = userdata;

	if (len > sizeof(name) - 1 && !strncasecmp(p, name, sizeof(name) - 1)) {
		size_t i = sizeof(name) - 1, e = len;

		while (i < len && (p[i] == ' ' || p[i] == '\t'))
			i++;
		while (e > i && (p[e - 1] == '\r' || p[e - 1] == '\n' || p[e - 1] == ' '))
			e--;
		if (e - i < 128) {
			memcpy(out, p + i, e - i);
			out[e - i] = '\0';
		}
	}
	return len;
}

/* One attempt against one base URL. Returns the CURLcode; fills resp on CURLE_OK. */
static CURLcode do_one(struct ls_ctl *c, const char *base, const char *method, const char *path,
		       const char *body, size_t body_len, enum ls_ctl_auth auth, long timeout_ms,
		       struct ls_ctl_response *resp, char *errbuf, const char *pins)
{
	struct curl_slist *hdrs = NULL;
	struct buf b = {0};
	char *url = NULL, *line = NULL, sigbuf[128];
	CURL *h = c->curl;
	CURLcode rc;

	if (asprintf(&url, "%s%s", base, path) < 0)
		return CURLE_OUT_OF_MEMORY;
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 c->handshake_timeout_ms > c->connect_timeout_ms ? c->handshake_timeout_ms
									 : c->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "lightscale/1");
	set_socket_cbs(h, c);
	c->connect_errno = 0;
	if (!strncmp(base, "https://", 8)) {
		if (pins) {
			curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, pins);
			/* the pins are the trust: self-signed server certificates are expected */
			if (!c->ca_file) {
				curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
				curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
			}
		}
		if (c->ca_file)
			curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	}
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (auth == LS_CTL_AUTH_SIGNED) {
		struct ls_sign_headers sh;

		if (ls_sign_request(&sh, c->machine_sk, method, path, body, body ? body_len : 0,
				    ls_unix_time())) {
			rc = CURLE_BAD_FUNCTION_ARGUMENT;
			goto cleanup;
		}
		if (asprintf(&line, "%s: %s", LS_HDR_KEY, sh.key) >= 0) {
			hdrs = curl_slist_append(hdrs, line);
			free(line);
		}
		if (asprintf(&line, "%s: %s", LS_HDR_TIMESTAMP, sh.timestamp) >= 0) {
			hdrs = curl_slist_append(hdrs, line);
			free(line);
		}
		if (asprintf(&line, "%s: %s", LS_HDR_NONCE, sh.nonce) >= 0) {
			hdrs = curl_slist_append(hdrs, line);
			free(line);
		}
		if (asprintf(&line, "%s: %s", LS_HDR_SIGNATURE, sh.signature) >= 0) {
			hdrs = curl_slist_append(hdrs, line);
			free(line);
		}
		line = NULL;
	} else if (auth == LS_CTL_AUTH_ADMIN && c->admin_key) {
		if (asprintf(&line, "Authorization: Bearer %s", c->admin_key) >= 0) {
			hdrs = curl_slist_append(hdrs, line);
			ls_memzero(line, strlen(line));
			free(line);
			line = NULL;
		}
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	sigbuf[0] = '\0';
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, (void *)sigbuf);
	rc = curl_easy_perform(h);
	if (rc == CURLE_COULDNT_CONNECT && c->connect_errno) {
		/* our own connect (opensocket_cb) failed: say why */
		if (c->connect_errno == ETIMEDOUT) {
			snprintf(errbuf, CURL_ERROR_SIZE, "no TCP connection within %ld ms",
				 c->connect_timeout_ms);
			rc = CURLE_OPERATION_TIMEDOUT;
		} else {
			snprintf(errbuf, CURL_ERROR_SIZE, "connect: %s", strerror(c->connect_errno));
		}
	} else if (rc == CURLE_OPERATION_TIMEDOUT && strstr(errbuf, "SSL connection timeout")) {
		size_t l = strlen(errbuf);

		snprintf(errbuf + l, CURL_ERROR_SIZE - l,
			 " (TCP connected; connect and TLS handshake got %ld ms: LIGHTSCALE_TLS_TIMEOUT_MS)",
			 c->handshake_timeout_ms > c->connect_timeout_ms ? c->handshake_timeout_ms
									 : c->connect_timeout_ms);
	}
	if (rc == CURLE_WRITE_ERROR && b.overflow) {
		snprintf(errbuf, CURL_ERROR_SIZE, "response larger than %u bytes",
			 LS_CTL_MAX_RESPONSE);
		rc = CURLE_FILESIZE_EXCEEDED;
	}
	if (rc == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->http_status);
		if (!b.p) {
			b.p = strdup("");
			if (!b.p) {
				rc = CURLE_OUT_OF_MEMORY;
				goto cleanup;
			}
		}
		resp->body = b.p;
		resp->len = b.len;
		snprintf(resp->netmap_sig, sizeof(resp->netmap_sig), "%s", sigbuf);
		b.p = NULL;
		if (resp->len)
			resp->json = json_loadb(resp->body, resp->len, 0, NULL);
	}
cleanup:
	free(b.p);
	free(url);
	curl_slist_free_all(hdrs);
	return rc;
}

int ls_ctl_request(struct ls_ctl *c, const char *method, const char *path, const char *body,
		   size_t body_len, enum ls_ctl_auth auth, long timeout_ms,
		   struct ls_ctl_response *resp, struct ls_ctl_error *err)
{
	char errbuf[CURL_ERROR_SIZE], pinbuf[LS_CTL_PINS_MAX];
	const char *pins = effective_pins(c, pinbuf);
	CURLcode rc = CURLE_COULDNT_CONNECT;
	size_t i;

	memset(resp, 0, sizeof(*resp));
	if (err)
		memset(err, 0, sizeof(*err));
	if (!c->n_urls || !method || !path || path[0] != '/') {
		set_err(err, 0, "bad_request", "invalid request `%s %s'", method ? method : "",
			path ? path : "");
		return -EINVAL;
	}
	if (auth == LS_CTL_AUTH_SIGNED && !c->have_machine_key) {
		set_err(err, 0, "no_key", "no machine key to sign `%s %s'", method, path);
		return -ENOKEY;
	}
	if (!c->curl) {
		c->curl = curl_easy_init();
		if (!c->curl) {
			set_err(err, 0, "internal", "curl_easy_init failed");
			return -ENOMEM;
		}
	}
	if (timeout_ms <= 0)
		timeout_ms = LS_CTL_DEFAULT_TIMEOUT_MS;
	for (i = 0; i < c->n_urls; i++) {
		size_t idx = (c->current + i) % c->n_urls;
		const char *base = c->urls[idx];

		errbuf[0] = '\0';
		ls_ctl_response_free(resp);
		rc = do_one(c, base, method, path, body, body_len, auth, timeout_ms, resp, errbuf, pins);
		if (rc == CURLE_OK) {
			/* a server without its database: try the next one */
			if ((resp->http_status == 502 || resp->http_status == 503) &&
			    i + 1 < c->n_urls)
				continue;
			c->current = idx;
			resp->url = base;
			break;
		}
		if (rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH) {
			char got[LS_PIN_STRLEN] = "";

			server_pin(c, base, got);
			set_err(err, 0, "pin_mismatch",
				"%s: the server's TLS key %s is not one of the pinned keys %s: refused",
				base, got[0] ? got : "(unknown)", pins ? pins : "");
			if (i + 1 < c->n_urls)
				continue;
			return -EPERM;
		}
		if (!is_connect_failure(rc)) {
			set_err(err, 0, "request_failed", "%s%s: %s", base, path,
				errbuf[0] ? errbuf : curl_easy_strerror(rc));
			return rc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EIO;
		}
		set_err(err, 0, rc == CURLE_OPERATION_TIMEDOUT ? "timeout" : "connect_failed",
			"%s%s: %s", base, path, errbuf[0] ? errbuf : curl_easy_strerror(rc));
	}
	if (rc != CURLE_OK)
		return rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
		       : rc == CURLE_COULDNT_RESOLVE_HOST ? -EHOSTUNREACH
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
