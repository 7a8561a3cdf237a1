/* SPDX-License-Identifier: MIT */
/* Server state shared by control/server.c (loop, HTTP), control/netmap.c (snapshots,
 * long-poll waiters) and control/api.c (handlers). */
#ifndef LSC_SERVER_H
#define LSC_SERVER_H

#include <netinet/in.h>
#include <microhttpd.h>

#include "acl.h"
#include "control.h"
#include "keys.h"

struct lsc_node_rec {
	int64_t id;
	char *name, *wg_key, *addr4, *addr6;
	struct lsc_strv routes, endpoints;
	int listen_port;
	char status[16];
	int64_t key_expiry; /* 0: none */
	int64_t last_seen;  /* unix seconds, 0: never */
	int64_t status_version; /* version at which status last changed */
	struct lsc_strv tags;
	size_t acl_idx;     /* index into lsc_net.acl_nodes */
	/* derived */
	struct lsc_strv primary, standby;
	bool exit_node, online;
	char *peer_json;
	size_t peer_len;
	uint64_t mark;
	struct lsc_req *waiter; /* this node's long-poll, if any (one per node) */
};

struct lsc_change {
	int64_t version;
	int64_t node_id;
};

struct lsc_req;

struct lsc_net {
	struct lsc_net *next;
	char id[37];
	char *name, *dns_suffix;
	char ipv4[LS_PREFIX_STRLEN], ipv6[LS_PREFIX_STRLEN];
	bool loaded;
	int64_t version, net_version, dns_version;
	int64_t key_lifetime;        /* s, 0: keys do not expire */
	int64_t known_version; /* newest version heard of (NOTIFY, requests) */
	bool dirty;
	struct lsc_node_rec **nodes; /* sorted by id */
	size_t n_nodes, cap_nodes;
	struct lsc_change *log;      /* changes with version > log_floor, by version */
	size_t n_log, cap_log;
	int64_t log_floor;
	char *network_json, *dns_json, *audit_json;
	char *control_json; /* {"identity", "pins": [{"pin", "not_after", "sig"}]} */
	struct ls_acl_policy *acl;   /* NULL: allow all */
	struct ls_acl_node *acl_nodes; /* parallel to nodes[] after a sync */
	size_t n_acl_nodes;
	struct ls_prefix *acl_addrs, *acl_routes;
	uint64_t liveness_ms;        /* when online/last_seen were last refreshed */
	struct lsc_req *waiters;     /* doubly linked through lsc_req.wnext/wprev */
	size_t n_waiters;
};

struct lsc_req {
	struct lsc_server *srv;
	struct MHD_Connection *conn;
	char *uri;          /* path with query, as sent (what a signature covers) */
	struct lsc_buf body;
	bool too_large;
	bool started;
	struct sockaddr_storage src;
	/* long-poll */
	struct lsc_req *wprev, *wnext;
	struct lsc_net *net;
	int64_t node_id;
	int64_t since;
	uint64_t deadline_ms;
	bool waiting;
	/* reply */
	char admin_id[16];  /* the admin key of this request (first 12 hex of its hash) */
	bool html;          /* reply is an HTML page (the approval page) */
	bool sign_reply;    /* netmap: X-Lightscale-Netmap-Signature by the identity key */
	char set_cookie[160];
	bool have_reply;
	unsigned status;
	char *reply;
	size_t reply_len;
};

struct lsc_rl;

struct lsc_server {
	struct lsc_config cfg;
	struct MHD_Daemon *mhd;
	char *dsn;
	PGconn *db;
	PGconn *ldb;         /* LISTEN connection */
	uint64_t db_retry_ms, ldb_retry_ms;
	int epfd, sigfd;
	int ldb_fd;          /* socket of ldb registered in epfd, or -1 */
	int db_fd;           /* socket of db registered in epfd (idle watch), or -1 */
	struct lsc_net *nets;
	size_t n_waiters;
	struct lsc_rl *rl;
	int64_t *live;       /* node ids seen since the last liveness flush */
	size_t n_live, cap_live;
	uint64_t next_flush_ms, next_prune_ms, next_sweep_ms, next_expiry_ms;
	int schema_version;
	char *relays_json;
	bool stop;
	uint8_t identity_sk[64], identity_pk[32]; /* the deployment's identity key */
	char identity_b64[64];
	bool have_identity;
	bool tls;            /* serving HTTPS: approval links are https:// */
	struct lsc_tls *tlsk; /* the served TLS key and its rotation (tls_admin.c), NULL: HTTP */
	/* counters (bench, health) */
	uint64_t bytes_wake, n_wake;
};

/* server.c */
void lsc_reply(struct lsc_req *r, unsigned status, char *body, size_t len); /* takes body */
void lsc_reply_json(struct lsc_req *r, unsigned status, json_t *j);         /* takes j */
void lsc_reply_error(struct lsc_req *r, unsigned status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
const char *lsc_req_header(struct lsc_req *r, const char *name);
/* The request connection, reconnected when lost; NULL (and a 503 sent) when unavailable. */
PGconn *lsc_db(struct lsc_req *r);
/* Replies 503 or 500 for a failed query. */
void lsc_db_failed(struct lsc_req *r, PGresult *res, const char *what);
void lsc_resume(struct lsc_req *r);

/* api.c */
void lsc_route(struct lsc_server *s, struct lsc_req *r, const char *method, const char *path);

/* netmap.c: after a sync to version, note whether the audit and control sections moved, so
 * deltas carry them only when they changed after the client's version */
void lsc_net_sections_seen(struct lsc_net *n, int64_t version);

/* api.c, shared with approve.c */
enum node_action { ACT_APPROVE, ACT_REJECT, ACT_REVOKE };
int64_t lsc_i64(PGresult *r, int row, int col);
/* Sets node ID to active (approve), rejected or revoked and replies with the node. */
void lsc_api_node_status(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *id,
			 enum node_action act);
/* Approves (into network, required) or rejects waiting device request id; replies {"node",
 * "network", "request"} or {"request"}. r->admin_id is the deciding admin. */
void lsc_api_device_decide(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *id,
			   const char *network, bool approve);
/* tls_admin.c: /v1/admin/tls[SUB] (SUB is "" or "/..."), after admin authentication */
void lsc_tls_admin(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *method,
		   const char *sub);
struct lsc_tls;
/* Loads (first start: makes) the TLS key, switches to a staged endorsed one, endorses and
 * publishes the served key before anything is served. 0 or -errno (logged). */
int lsc_tls_start(struct lsc_server *s, const struct lsc_serve_opts *o);
/* MHD_OPTION_HTTPS_CERT_CALLBACK's gnutls_certificate_retrieve_function2 */
void *lsc_tls_cert_callback(void);
/* SIGHUP: switch to the staged key if it is endorsed */
void lsc_tls_reload(struct lsc_server *s);
/* withdraws retiring pins whose time has come */
void lsc_tls_tick(struct lsc_server *s, uint64_t now_ms);
void lsc_tls_free(struct lsc_server *s);
/* approve.c: GET/POST /approve/CODE */
void lsc_approve_page(struct lsc_server *s, struct lsc_req *r, const char *method,
		      const char *code);
int lsc_admin_key_ensure(PGconn *db, const char *state_dir);
void lsc_expiry_sweep(struct lsc_server *s);

/* audit.c */
/* loads (or makes) DIR/identity.key (or file) and checks it against the database's */
int lsc_identity_load(struct lsc_server *s, PGconn *db, const char *state_dir, const char *file);
/* appends an event to the audit chain in the current transaction; -1 after a reply */
int lsc_audit_append(struct lsc_req *r, PGconn *db, const char *type, const json_t *data);
/* the signed head {"seq", "hash", "sig", "identity"}, NULL on failure */
json_t *lsc_audit_head(struct lsc_server *s, PGconn *db);

/* netmap.c */
struct lsc_net *lsc_net_find(struct lsc_server *s, const char *id, bool create);
int lsc_net_sync(struct lsc_server *s, struct lsc_net *n);
char *lsc_netmap_build(struct lsc_server *s, struct lsc_net *n, int64_t node_id, int64_t since,
		       size_t *len);
void lsc_netmap_request(struct lsc_server *s, struct lsc_req *r, struct lsc_net *n,
			int64_t node_id, int64_t since, int wait_s);
void lsc_net_wake(struct lsc_server *s, struct lsc_net *n);
void lsc_waiter_remove(struct lsc_req *r);
void lsc_waiters_sweep(struct lsc_server *s, uint64_t now_ms);
void lsc_nets_free(struct lsc_server *s);
void lsc_live_mark(struct lsc_server *s, int64_t node_id);
void lsc_live_flush(struct lsc_server *s);

/* ratelimit.c */
struct lsc_rl *lsc_rl_new(void);
void lsc_rl_free(struct lsc_rl *rl);
bool lsc_rl_allow(struct lsc_rl *rl, const char *key, double burst, double rate, uint64_t now_ms);

/* helpers: split "a,b,c" into strv (empty string: none) */
int lsc_strv_split(struct lsc_strv *out, const char *s);
/* "{a,b}" array literal for text[] parameters (elements never hold , " { } \ or spaces) */
char *lsc_array_literal(const char *const *v, size_t n);

#endif
