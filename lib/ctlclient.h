/* SPDX-License-Identifier: MIT */
/*
 * Control-plane client: what the agent, the `lightscale` CLI, the admin commands of
 * lightscale-control and the tests use to talk to lightscale-control. Its own HTTP/1.1
 * client (lib/http.c: URLs and the response parser; lib/httpconn.c: TCP, GnuTLS,
 * deadlines), so a process loads no more than libc, GnuTLS, libsodium and jansson for it.
 *
 * One struct ls_ctl holds a list of control URLs ("http://a:8080,http://b:8080"), the
 * credentials and the transport settings. Every request goes to the URL that answered
 * last; when it cannot be reached (connection refused, DNS failure, connect timeout,
 * TLS failure) or answers 502/503 "unavailable", the next URL is tried, once around
 * the list. Any other answer, error or not, is final. The connection to the URL that
 * answered is kept open (HTTP/1.1 keep-alive) for the next request, as long as the
 * server keeps it and the trust settings stay the same; one the server has closed
 * meanwhile is replaced once without counting as a failure.
 *
 *     struct ls_ctl c;
 *     struct ls_ctl_error err;
 *     struct ls_ctl_response r;
 *     ls_ctl_init(&c, "http://10.0.0.1:8080,http://10.0.0.2:8080");
 *     ls_ctl_set_machine_key(&c, machine_sk);
 *     if (ls_ctl_netmap(&c, since, 60, &r, &err) == 0) { ... r.json ... }
 *     else fprintf(stderr, "%s (%s, HTTP %ld)\n", err.message, err.code, err.http_status);
 *     ls_ctl_response_free(&r);
 *     ls_ctl_free(&c);
 *
 * Return values: 0 when the server answered 2xx (resp filled, resp->json parsed if the
 * body is JSON). Otherwise -errno and err filled:
 *   -EPROTO      the server answered an error: err->http_status, err->code (an LS_ERR_*
 *                string from lightscale/api.h, or "http_error" when the body was not an
 *                error object) and err->message
 *   -ECONNREFUSED / -EHOSTUNREACH / -ETIMEDOUT  no URL could be reached (err->code
 *                "connect_failed" or "timeout"; err->message names the last URL and cause)
 *   -EBADMSG     a 2xx answer whose body is not valid JSON (code "bad_response")
 *   -EINVAL / -ENOMEM / -ENOKEY (a signed request without a machine key, code "no_key")
 * resp is always safe to pass to ls_ctl_response_free() afterwards.
 *
 * Errors that are the answer's, not the connection's: -EIO with code "request_failed" for
 * an answer that is not valid HTTP/1.1, cut short, or larger than LS_CTL_MAX_RESPONSE; a CA
 * file that cannot be read. A server key not pinned: -EPERM, code "pin_mismatch" (after
 * the next URL was tried), the message naming the key it presented.
 *
 * TLS trust for https:// URLs (lib/httpconn.h): pins set with ls_ctl_set_pinned_keys()
 * ("sha256//BASE64;sha256//BASE64", SHA-256 of the server certificate's
 * SubjectPublicKeyInfo, lib/tlsid.h) are the trust, a self-signed certificate is fine;
 * a CA file (ls_ctl_set_ca_file) must issue the certificate, which must name the host
 * (both are checked when both are set); with neither, the system's CA store and the
 * host name. Requests send "Host", "User-Agent: lightscale/1", "Accept:
 * application/json", and for a body "Content-Type: application/json".
 * Not thread-safe per struct ls_ctl; use one per thread.
 */
#ifndef LS_CTLCLIENT_H
#define LS_CTLCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "keys.h"

struct ls_hconn;

#define LS_CTL_MAX_URLS 16
#define LS_CTL_DEFAULT_TIMEOUT_MS 15000
/* Two allowances for reaching a server. The TCP connect (SYN to established) gets
 * LS_CTL_CONNECT_TIMEOUT_MS: a blackholed control URL costs that much before the next
 * one is tried (a refused one costs nothing). Connect plus the TLS handshake get
 * LS_CTL_HANDSHAKE_TIMEOUT_MS: a slow but live server (an emulated or overloaded machine
 * where the handshake's public-key operations take seconds) is not given up on. The
 * environment overrides both for every struct ls_ctl (ls_ctl_init):
 * LIGHTSCALE_CONNECT_TIMEOUT_MS and LIGHTSCALE_TLS_TIMEOUT_MS (milliseconds, 1..600000);
 * the handshake allowance is never shorter than the connect timeout. */
#define LS_CTL_CONNECT_TIMEOUT_MS 3000
#define LS_CTL_HANDSHAKE_TIMEOUT_MS 10000
#define LS_CTL_MAX_RESPONSE (64u * 1024 * 1024)

enum ls_ctl_auth {
	LS_CTL_AUTH_NONE = 0,   /* register, health */
	LS_CTL_AUTH_SIGNED = 1, /* node requests: machine-key signature headers */
	LS_CTL_AUTH_ADMIN = 2,  /* admin API: Authorization: Bearer <admin key> */
};

struct ls_ctl {
	char *urls[LS_CTL_MAX_URLS]; /* base URLs without trailing '/' */
	size_t n_urls;
	size_t current;              /* index of the URL that answered last */
	uint8_t machine_sk[LS_ED25519_SK_LEN];
	bool have_machine_key;
	char *admin_key;
	char *pinned_keys;           /* "sha256//B64;sha256//B64", or NULL */
	char *ca_file;               /* PEM CA certificates, or NULL */
	long connect_timeout_ms;     /* TCP connect; default LS_CTL_CONNECT_TIMEOUT_MS */
	long handshake_timeout_ms;   /* connect + TLS handshake; LS_CTL_HANDSHAKE_TIMEOUT_MS */
	struct ls_hconn *conn;       /* the connection kept for the next request, or NULL */
	uint32_t fwmark;             /* SO_MARK on every socket (0: none), see ls_ctl_set_fwmark */
	uint8_t identity_pk[32];     /* netmaps must be signed by it (ls_ctl_set_identity) */
	bool have_identity;
};

struct ls_ctl_error {
	long http_status;  /* 0 when no HTTP answer arrived */
	char code[64];     /* e.g. "token_expired", "connect_failed" */
	char message[512];
};

struct ls_ctl_response {
	long http_status;
	char *body;        /* NUL-terminated, malloc'd */
	size_t len;
	json_t *json;      /* parsed body (NULL if empty or not JSON); owned */
	const char *url;   /* base URL that answered (points into struct ls_ctl) */
	char netmap_sig[128]; /* X-Lightscale-Netmap-Signature, if any */
};

/* urls: one or more base URLs separated by commas (whitespace ignored), each
 * http[s]://HOST[:PORT][/PREFIX] with HOST a name, an IPv4 address or [IPv6]. 0 or -EINVAL
 * (no URL, more than LS_CTL_MAX_URLS, a URL ls_http_parse_url refuses). */
int ls_ctl_init(struct ls_ctl *c, const char *urls);
void ls_ctl_free(struct ls_ctl *c);
/* Copies the 64-byte Ed25519 secret key (seed || public key). */
void ls_ctl_set_machine_key(struct ls_ctl *c, const uint8_t sk[LS_ED25519_SK_LEN]);
int ls_ctl_set_admin_key(struct ls_ctl *c, const char *key);
/* NULL clears. "sha256//BASE64;sha256//BASE64", checked on https:// URLs. */
int ls_ctl_set_pinned_keys(struct ls_ctl *c, const char *pins);
/* Process-wide and thread-safe: the pins the deployment with this identity key endorses
 * now (from a verified netmap: userspace/trust.c). Every struct ls_ctl of the process with
 * that identity (ls_ctl_set_identity) checks these instead of its own list from then on,
 * so all of an agent's connections follow a rotated server key. 0 or -EINVAL/-ENOSPC. */
#define LS_CTL_PINS_MAX 2048
int ls_ctl_follow_pins(const uint8_t identity_pk[32], const char *pins);
int ls_ctl_set_ca_file(struct ls_ctl *c, const char *path);
/* Marks every control socket with SO_MARK (needs CAP_NET_ADMIN), so policy routing can
 * keep control traffic out of the tunnel (an exit node's default route). 0 clears. */
void ls_ctl_set_fwmark(struct ls_ctl *c, uint32_t mark);

void ls_ctl_response_free(struct ls_ctl_response *r);

/* Generic request. path starts with '/' and may carry a query ("/v1/netmap?since=3").
 * body may be NULL (no body); it is sent as application/json. timeout_ms 0 means
 * LS_CTL_DEFAULT_TIMEOUT_MS. */
int ls_ctl_request(struct ls_ctl *c, const char *method, const char *path, const char *body,
		   size_t body_len, enum ls_ctl_auth auth, long timeout_ms,
		   struct ls_ctl_response *resp, struct ls_ctl_error *err);

/* Same, with a JSON body (not stolen; may be NULL). */
int ls_ctl_request_json(struct ls_ctl *c, const char *method, const char *path,
			const json_t *body, enum ls_ctl_auth auth, long timeout_ms,
			struct ls_ctl_response *resp, struct ls_ctl_error *err);

/* ---- typed node calls (api.h) ---- */

struct ls_ctl_register_req {
	const char *token;           /* "lst_..." */
	const char *wg_key;          /* base64 X25519 public key */
	const char *machine_key;     /* base64 Ed25519 public key */
	const char *hostname;
	const char *const *routes;   /* advertised prefixes, may be NULL */
	size_t n_routes;
	const char *const *endpoints; /* "ip:port" strings, may be NULL */
	size_t n_endpoints;
	int listen_port;             /* 0: not sent */
};

struct ls_ctl_heartbeat_req {
	const char *const *endpoints;
	size_t n_endpoints;
	int listen_port;             /* 0: not sent */
	const char *const *routes;   /* NULL with send_routes false: routes unchanged */
	size_t n_routes;
	bool send_routes;            /* true: replace the advertised routes (may be empty) */
};

/* POST /v1/register (unsigned). resp->json = {"node": {...}, "network": {...}}. */
int ls_ctl_register(struct ls_ctl *c, const struct ls_ctl_register_req *req,
		    struct ls_ctl_response *resp, struct ls_ctl_error *err);
/* POST /v1/heartbeat (signed). resp->json = {"ok", "observed", "version"}. */
int ls_ctl_heartbeat(struct ls_ctl *c, const struct ls_ctl_heartbeat_req *req,
		     struct ls_ctl_response *resp, struct ls_ctl_error *err);
/* GET /v1/netmap?since=V&wait=S (signed). since 0: full map at once. wait_s 0: no
 * long-poll. The HTTP timeout is wait_s + 30 s. resp->json is the netmap document,
 * or {"version": V, "unchanged": true} when nothing changed within wait_s. */
int ls_ctl_netmap(struct ls_ctl *c, int64_t since, int wait_s, struct ls_ctl_response *resp,
		  struct ls_ctl_error *err);
/* POST /v1/rotate {"wg_key"} (signed by the machine key): replace this node's WireGuard
 * public key. resp->json = {"node": {...}, "network": {...}} like register. */
int ls_ctl_rotate(struct ls_ctl *c, const char *wg_key, struct ls_ctl_response *resp,
		  struct ls_ctl_error *err);
/* Splits an enrollment string "TOKEN@IDENTITY@PIN,PIN..." (token create's "enroll"; a bare
 * token is accepted too: identity and pins come back empty). pins gets the pins joined with
 * ';' (the ls_ctl_set_pinned_keys form). 0 or -EINVAL (an identity that is not a key, a pin
 * not of the form sha256//BASE64, a too small buffer). */
int ls_ctl_parse_enroll(const char *s, char *token, size_t token_size, char *identity,
			size_t identity_size, char *pins, size_t pins_size);
/* From now on ls_ctl_netmap refuses a netmap not signed by this identity key
 * (X-Lightscale-Netmap-Signature: Ed25519 over "lightscale-netmap-v1" || SHA-256(body)). */
void ls_ctl_set_identity(struct ls_ctl *c, const uint8_t pk[32]);
/* The signed message of a netmap body (server and client). */
#define LS_NETMAP_SIG_CTX "lightscale-netmap-v1"
void ls_netmap_sig_message(uint8_t out[20 + 32], const char *body, size_t len);
/* GET /v1/health. */
int ls_ctl_health(struct ls_ctl *c, struct ls_ctl_response *resp, struct ls_ctl_error *err);

/* One line for a failed call: "token_expired: enrollment token expired at ... (HTTP 403)". */
void ls_ctl_error_print(const struct ls_ctl_error *err, const char *prefix);

#endif
