/* SPDX-License-Identifier: MIT */
/* lightscale-control internals (lsc_ prefix). The server is one thread: an epoll loop
 * around libmicrohttpd (external epoll mode), a request PostgreSQL connection and a
 * LISTEN connection. Long-polls are suspended MHD connections kept on per-network
 * waiter lists; nothing touches the database for an idle waiter. */
#ifndef LSC_CONTROL_H
#define LSC_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "lightscale/api.h"
#include "prefix.h"

#define LSC_DEFAULT_STATE_DIR "/var/lib/lightscale-control"
#define LSC_NOTIFY_CHANNEL "lsc_netmap"
#define LSC_ONLINE_SECS 120
#define LSC_DELTA_VERSIONS 4096 /* default: versions a delta can span (change log kept) */

/* ---- string buffer ---- */
struct lsc_buf {
	char *p;
	size_t len, cap;
	int oom;
};
void lsc_buf_add(struct lsc_buf *b, const void *data, size_t n);
void lsc_buf_str(struct lsc_buf *b, const char *s);
void lsc_buf_printf(struct lsc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lsc_buf_json(struct lsc_buf *b, const json_t *j); /* compact */
void lsc_buf_free(struct lsc_buf *b);

/* ---- config file (JSON) ---- */
/* limits of tokenless registrations (device requests, control/api.c) */
struct lsc_device_limits {
	double burst, rate;         /* tokenless requests per source address: bucket, refill/s */
	double all_burst, all_rate; /* per server */
	int waiting_per_source;     /* undecided live requests of one source, across servers */
	int waiting_max;            /* undecided live requests in all */
	int lifetime;               /* seconds an approval link works */
};
struct lsc_config {
	json_t *relays;       /* {"stun": [], "turn": [], "stream": [], "udp": []} */
	json_t *dns_resolvers; /* array of strings */
	/* rate limits: bucket size and refill per second */
	double register_burst, register_rate;   /* per source address */
	double ip_burst, ip_rate;               /* signed requests per source address */
	double node_burst, node_rate;           /* signed requests per node */
	int max_wait;                           /* cap on ?wait=S */
	int online_secs;
	int liveness_flush_ms;
	int connection_limit;
	int delta_versions;    /* change log kept (memory and database); older clients get full maps */
	struct lsc_device_limits devices;
};
void lsc_config_defaults(struct lsc_config *c);
int lsc_config_load(struct lsc_config *c, const char *path, char *err, size_t errlen);
void lsc_config_free(struct lsc_config *c);

/* ---- request bodies (control/body.c; fuzzed by control/fuzz/) ---- */
#define LSC_MAX_ROUTES 64
#define LSC_MAX_ENDPOINTS 32
#define LSC_MAX_TAGS 32

struct lsc_strv {
	char **v;
	size_t n;
};
void lsc_strv_free(struct lsc_strv *s);
/* appends a copy of v unless present; 0 or -ENOMEM */
int lsc_strv_add_unique(struct lsc_strv *s, const char *v);

struct lsc_register_req {
	char *token;
	char wg_key[64];       /* canonical base64 */
	char machine_key[64];  /* canonical base64 */
	char *hostname;
	struct lsc_strv routes;    /* canonical prefixes, sorted, unique */
	struct lsc_strv endpoints; /* canonical endpoints, unique */
	int listen_port;           /* 0: absent */
};
struct lsc_heartbeat_req {
	struct lsc_strv endpoints;
	int listen_port;
	bool has_routes;
	struct lsc_strv routes;
};
struct lsc_network_req {
	char *name;
	bool has_ipv4, has_ipv6;
	struct ls_prefix ipv4, ipv6;
	char *dns_suffix;
	int require_approval, route_approval; /* -1: absent, 0, 1 */
};
struct lsc_network_set_req {
	int require_approval, route_approval; /* -1: unchanged */
	int64_t key_lifetime;                 /* -1: unchanged, 0: none, else seconds */
};
/* {"wg_key": KEY}: the new WireGuard public key of a rotation */
int lsc_parse_rotate(const char *body, size_t len, char wg_key[64], char *err, size_t errlen);
struct lsc_token_req {
	int64_t ttl;  /* seconds */
	int64_t uses;
	struct lsc_strv tags;
};
/* Each returns 0 or -EINVAL with a message in err naming the bad field or value. */
int lsc_parse_register(const char *body, size_t len, struct lsc_register_req *r, char *err, size_t errlen);
int lsc_parse_heartbeat(const char *body, size_t len, struct lsc_heartbeat_req *r, char *err, size_t errlen);
int lsc_parse_network(const char *body, size_t len, struct lsc_network_req *r, char *err, size_t errlen);
int lsc_parse_network_set(const char *body, size_t len, struct lsc_network_set_req *r, char *err,
			  size_t errlen);
/* {"routes": [PREFIX...]} with at least one prefix: canonical, sorted, unique */
int lsc_parse_routes(const char *body, size_t len, struct lsc_strv *routes, char *err,
		     size_t errlen);
int lsc_parse_token(const char *body, size_t len, struct lsc_token_req *r, char *err, size_t errlen);
void lsc_register_req_free(struct lsc_register_req *r);
void lsc_heartbeat_req_free(struct lsc_heartbeat_req *r);
void lsc_network_req_free(struct lsc_network_req *r);
void lsc_token_req_free(struct lsc_token_req *r);
/* Approval-page input parsers (control/body.c).
 * lsc_form_value: the value of field `name' of an application/x-www-form-urlencoded body
 *   (body[0..len), not NUL-terminated), '+' and %XX decoded, in *out (caller frees); a field
 *   without '=' has the empty value. 0; -ENOENT absent; -EINVAL the field appears twice, or
 *   its value has a truncated or non-hex escape or a NUL (raw or %00); -E2BIG the value
 *   decodes to more than LS_FORM_VALUE_MAX bytes; -ENOMEM.
 * lsc_cookie_get: the idx-th (0: first) cookie `name' of a Cookie header ("a=1; b=2"; pairs
 *   split at ';', spaces and tabs around names and values dropped, one pair of quotes around
 *   a value dropped, pairs without '=' skipped) into out. 0; -ENOENT no such (hdr may be
 *   NULL); -E2BIG the value does not fit outlen (out is then "").
 * lsc_approve_session_id: the first LS_APPROVE_COOKIE cookie that is a session id
 *   (LS_APPROVE_SESSION_LEN lowercase hex digits). 0 or -ENOENT.
 * lsc_approve_code_check: 0 if code (the rest of /approve/CODE) is LS_APPROVE_CODE_LEN
 *   lowercase hex digits, else -EINVAL. */
int lsc_form_value(const char *body, size_t len, const char *name, char **out);
int lsc_cookie_get(const char *hdr, const char *name, unsigned idx, char *out, size_t outlen);
int lsc_approve_session_id(const char *hdr, char id[LS_APPROVE_SESSION_LEN + 1]);
int lsc_approve_code_check(const char *code);
/* Names: a network name is [a-z0-9][a-z0-9-]{0,31}; a DNS suffix is dot-separated labels.
 * lsc_dns_label() turns any hostname into a DNS label (<= maxlen, never empty). */
bool lsc_valid_network_name(const char *s);
bool lsc_valid_dns_suffix(const char *s);
void lsc_dns_label(const char *hostname, char *out, size_t maxlen);

/* ---- deterministic prefixes (control/derive.c) ---- */
#define LSC_IPV4_NET_LEN 18 /* default network size inside 100.64.0.0/10: 256 slots */
#define LSC_IPV6_NET_LEN 48
/* The IPv4 prefix for a network id and collision attempt (0, 1, ...). */
void lsc_derive_ipv4(const uint8_t netid[16], unsigned attempt, struct ls_prefix *out);
/* RFC 4193: fd00::/8 + 40-bit global id from SHA-256 of the network id (and attempt). */
void lsc_derive_ipv6(const uint8_t netid[16], unsigned attempt, struct ls_prefix *out);
/* Host index for a node id in a network of prefix v4 (attempt resolves collisions).
 * Returns 0 or -ERANGE when the prefix has no host addresses. */
int lsc_derive_host(int64_t node_id, unsigned attempt, const struct ls_prefix *v4, uint32_t *host);
/* The address of host index h in prefix p (v4: base + h; v6: base with h in the low 32 bits). */
void lsc_host_address(const struct ls_prefix *p, uint32_t h, struct ls_prefix *out);
int lsc_uuid_parse(const char *s, uint8_t out[16]);
void lsc_uuid_format(const uint8_t id[16], char out[37]);
void lsc_uuid_random(uint8_t out[16]);

/* ---- database (control/db.c) ---- */
struct lsc_migration {
	int version;
	const char *name;
	const char *sql;
};
extern const struct lsc_migration lsc_migrations[];
extern const size_t lsc_n_migrations;
int lsc_schema_latest(void);

/* Applies the embedded migrations in one transaction (up to target, 0 = latest). Refuses a
 * database newer than the binary. *version gets the resulting schema version. */
int lsc_db_migrate(PGconn *c, int target, int *version, char *err, size_t errlen);
/* PQexecParams with text parameters (NULL entries are SQL NULL); lsc_exec0 is PQexec.
 * Both count into lsc_query_count (reported by /v1/health as "queries"). */
PGresult *lsc_exec(PGconn *c, const char *sql, int n, const char *const *params);
PGresult *lsc_exec0(PGconn *c, const char *sql);
extern uint64_t lsc_query_count;
/* true when res is PGRES_COMMAND_OK or PGRES_TUPLES_OK; logs the error otherwise */
bool lsc_res_ok(PGconn *c, PGresult *res, const char *what);
bool lsc_exec_ok(PGconn *c, const char *sql); /* simple statement, logs errors */
bool lsc_unique_violation(PGresult *res);

/* ---- embedded PostgreSQL (control/pgembed.c) ---- */
struct lsc_pg {
	char state_dir[3072];
	char data_dir[4096];
	char run_dir[4096];
	char connect_dir[4096]; /* run_dir, or a short symlink to it */
	char bin_dir[1024];
	char dsn[4300];
	pid_t pid;
	bool is_child;  /* we started it (else adopted through postmaster.pid) */
	bool fast;      /* fsync=off for tests */
};
int lsc_pg_start(struct lsc_pg *pg, const char *state_dir, const char *user, const char *bin_dir);
int lsc_pg_stop(struct lsc_pg *pg);

/* ---- server ---- */
struct lsc_server;
struct lsc_req;

struct lsc_serve_opts {
	const char *listen;
	const char *state_dir;
	const char *db;
	const char *config;
	const char *pg_user;
	const char *pg_bin;
	const char *identity_key; /* default DIR/identity.key */
	bool tls;                 /* HTTPS (self-signed in DIR unless tls_cert) */
	const char *tls_cert, *tls_key;
	bool pg_fast;
};
int lsc_serve(const struct lsc_serve_opts *o);

/* ---- admin CLI (control/cli.c) ---- */
int lsc_cli_main(int argc, char **argv, const char *cmd);

#endif
