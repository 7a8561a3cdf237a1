// SPDX-License-Identifier: MIT
/* HTTP handlers: health, node API (register, heartbeat, netmap), admin API. Every body is
 * parsed by control/body.c before any query; every query is parameterised; a refused
 * request changes nothing (its transaction is rolled back). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "lightscale/api.h"
#include "log.h"
#include "server.h"
#include "sign.h"
#include "util.h"

#define NETWORK_COLS                                                                         \
	"networks.id::text, networks.name, networks.ipv4::text, networks.ipv6::text, "       \
	"networks.dns_suffix, networks.version, "                                            \
	"extract(epoch from networks.created_at)::bigint, networks.require_approval, "        \
	"networks.route_approval, coalesce(networks.key_lifetime, 0)"

#define NODE_ADMIN_COLS                                                                      \
	"nodes.id, networks.name, nodes.name, nodes.hostname, networks.dns_suffix, "         \
	"nodes.wg_key, nodes.machine_key, host(nodes.ipv4), host(nodes.ipv6), "              \
	"array_to_string(nodes.routes, ','), array_to_string(nodes.endpoints, ','), "        \
	"coalesce(nodes.listen_port, 0), nodes.status, "                                     \
	"coalesce(floor(extract(epoch from nodes.key_expiry))::bigint, 0), "                        \
	"extract(epoch from nodes.created_at)::bigint, "                                     \
	"coalesce(extract(epoch from nodes.last_seen)::bigint, 0), "                         \
	"array_to_string(nodes.tags, ','), nodes.network_id::text, "                         \
	"array_to_string(nodes.approved_routes, ','), networks.route_approval"

#define TOKEN_COLS                                                                           \
	"tokens.id, networks.name, extract(epoch from tokens.expires_at)::bigint, "          \
	"tokens.max_uses, tokens.uses, array_to_string(tokens.tags, ','), "                  \
	"tokens.revoked_at IS NOT NULL, tokens.expires_at < now(), "                         \
	"extract(epoch from tokens.created_at)::bigint"

int64_t lsc_i64(PGresult *r, int row, int col)
{
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static json_t *csv_array(const char *csv)
{
	struct lsc_strv v;
	json_t *a = json_array();
	size_t i;

	if (lsc_strv_split(&v, csv))
		return a;
	for (i = 0; i < v.n; i++)
		json_array_append_new(a, json_string(v.v[i]));
	lsc_strv_free(&v);
	return a;
}

static void src_string(const struct sockaddr_storage *ss, char *out, size_t n)
{
	char ep[LS_ENDPOINT_STRLEN];
	char *colon;

	if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6) {
		snprintf(out, n, "unknown");
		return;
	}
	ls_endpoint_format((const struct sockaddr *)ss, ep);
	/* drop the port: the limit is per address */
	colon = strrchr(ep, ':');
	if (colon)
		*colon = '\0';
	snprintf(out, n, "%s", ep);
}

static json_t *network_json(PGresult *r, int row)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:b, s:o}", "id",
			 PQgetvalue(r, row, 0), "name", PQgetvalue(r, row, 1), "ipv4",
			 PQgetvalue(r, row, 2), "ipv6", PQgetvalue(r, row, 3), "dns_suffix",
			 PQgetvalue(r, row, 4), "version", (json_int_t)lsc_i64(r, row, 5), "created_at",
			 (json_int_t)lsc_i64(r, row, 6), "require_approval",
			 PQgetvalue(r, row, 7)[0] == 't', "route_approval",
			 PQgetvalue(r, row, 8)[0] == 't', "key_lifetime",
			 lsc_i64(r, row, 9) ? json_integer(lsc_i64(r, row, 9)) : json_null());
}
#define NETWORK_NCOLS 10

static char *dns_name(PGresult *r, int row)
{
	char *s = NULL;

	if (asprintf(&s, "%s.%s", PQgetvalue(r, row, 2), PQgetvalue(r, row, 4)) < 0)
		return NULL;
	return s;
}

/* the "self" object of api.h from a NODE_ADMIN_COLS row */
static json_t *self_json(PGresult *r, int row)
{
	char *dn = dns_name(r, row);
	json_t *j = json_pack("{s:I, s:s, s:s?, s:s, s:[s,s], s:s, s:o, s:o}", "id",
			      (json_int_t)lsc_i64(r, row, 0), "name", PQgetvalue(r, row, 2),
			      "dns_name", dn, "wg_key", PQgetvalue(r, row, 5), "addresses",
			      PQgetvalue(r, row, 7), PQgetvalue(r, row, 8), "status",
			      PQgetvalue(r, row, 12), "key_expiry",
			      lsc_i64(r, row, 13) ? json_integer(lsc_i64(r, row, 13)) : json_null(),
			      "routes", csv_array(PQgetvalue(r, row, 9)));

	free(dn);
	return j;
}

static json_t *node_admin_json(struct lsc_server *s, PGresult *r, int row)
{
	int64_t seen = lsc_i64(r, row, 15), exp = lsc_i64(r, row, 13);
	json_t *j = self_json(r, row);

	if (!j)
		return NULL;
	if (!strcmp(PQgetvalue(r, row, 12), "active") && exp && exp <= ls_unix_time())
		json_object_set_new(j, "status", json_string("expired"));
	json_object_set_new(j, "approved_routes", csv_array(PQgetvalue(r, row, 18)));
	json_object_set_new(j, "route_approval", json_boolean(PQgetvalue(r, row, 19)[0] == 't'));
	json_object_set_new(j, "network", json_string(PQgetvalue(r, row, 1)));
	json_object_set_new(j, "hostname", json_string(PQgetvalue(r, row, 3)));
	json_object_set_new(j, "machine_key", json_string(PQgetvalue(r, row, 6)));
	json_object_set_new(j, "endpoints", csv_array(PQgetvalue(r, row, 10)));
	json_object_set_new(j, "listen_port",
			    lsc_i64(r, row, 11) ? json_integer(lsc_i64(r, row, 11)) : json_null());
	json_object_set_new(j, "tags", csv_array(PQgetvalue(r, row, 16)));
	json_object_set_new(j, "created_at", json_integer(lsc_i64(r, row, 14)));
	json_object_set_new(j, "last_seen", seen ? json_integer(seen) : json_null());
	json_object_set_new(j, "online",
			    json_boolean(seen && ls_unix_time() - seen <= s->cfg.online_secs));
	return j;
}

static json_t *token_json(PGresult *r, int row)
{
	bool revoked = PQgetvalue(r, row, 6)[0] == 't';
	bool expired = PQgetvalue(r, row, 7)[0] == 't';
	bool used_up = lsc_i64(r, row, 4) >= lsc_i64(r, row, 3);

	return json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:b, s:s, s:I}", "id",
			 PQgetvalue(r, row, 0), "network", PQgetvalue(r, row, 1), "expires_at",
			 (json_int_t)lsc_i64(r, row, 2), "max_uses", (json_int_t)lsc_i64(r, row, 3), "uses",
			 (json_int_t)lsc_i64(r, row, 4), "tags", csv_array(PQgetvalue(r, row, 5)),
			 "revoked", revoked, "status",
			 revoked ? "revoked" : expired ? "expired" : used_up ? "used_up" : "valid",
			 "created_at", (json_int_t)lsc_i64(r, row, 8));
}

static PGresult *query_rows(struct lsc_req *r, PGconn *db, const char *what, bool one,
			    const char *sql, int n, const char *const *p)
{
	PGresult *res = n ? lsc_exec(db, sql, n, p) : lsc_exec0(db, sql);

	if (lsc_res_ok(db, res, what) && (!one || PQntuples(res) == 1))
		return res;
	lsc_db_failed(r, res, what);
	PQclear(res);
	return NULL;
}

/* The result of sql with its n parameters p (n == 0: a plain statement), or NULL after
 * lsc_db_failed's 503/500 reply; what names the query in the log and the reply. */
static PGresult *query(struct lsc_req *r, PGconn *db, const char *what, const char *sql, int n,
		       const char *const *p)
{
	return query_rows(r, db, what, false, sql, n, p);
}

/* query() that must return exactly one row: another count fails the same way */
static PGresult *query_row(struct lsc_req *r, PGconn *db, const char *what, const char *sql,
			   int n, const char *const *p)
{
	return query_rows(r, db, what, true, sql, n, p);
}

/* Moves the network's version in the current transaction, logs node_id and every node
 * advertising one of routes (a literal "{...}") as changed, and NOTIFYs at commit.
 * Returns the new version, or -1 after a failed query (reply sent). */
static int64_t bump_version(struct lsc_req *r, PGconn *db, const char *net_id, int64_t node_id,
			    const char *routes, bool dns)
{
	char id[24];
	const char *p[4] = {net_id, id, routes ? routes : "{}", dns ? "t" : "f"};
	PGresult *res;
	int64_t v;

	snprintf(id, sizeof(id), "%" PRId64, node_id);
	res = query_row(r, db, "bump version",
			"WITH v AS (UPDATE networks SET version = version + 1, "
			"  dns_version = CASE WHEN $4::boolean THEN version + 1 ELSE dns_version END "
			"  WHERE id = $1::uuid RETURNING version), "
			"ids AS (SELECT $2::bigint AS id UNION SELECT id FROM nodes "
			"  WHERE network_id = $1::uuid AND routes && $3::text[]), "
			"ins AS (INSERT INTO changes (network_id, version, node_id) "
			"  SELECT $1::uuid, v.version, ids.id FROM v, ids ON CONFLICT DO NOTHING) "
			"SELECT version, pg_notify('" LSC_NOTIFY_CHANNEL "', $1 || ' ' || version) FROM v",
			4, p);
	if (!res)
		return -1;
	v = lsc_i64(res, 0, 0);
	PQclear(res);
	return v;
}

static bool begin(struct lsc_req *r, PGconn *db)
{
	if (lsc_exec_ok(db, "BEGIN"))
		return true;
	lsc_db_failed(r, NULL, "begin");
	return false;
}

static bool commit(struct lsc_req *r, PGconn *db)
{
	PGresult *res = lsc_exec0(db, "COMMIT");
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok)
		lsc_db_failed(r, res, "commit");
	PQclear(res);
	return ok;
}

static void rollback(PGconn *db)
{
	lsc_exec_ok(db, "ROLLBACK");
}

/* Appends event ev of type to the audit log in the current transaction and frees ev (NULL:
 * out of memory). 0, or -1 after a reply. */
static int audit(struct lsc_req *r, PGconn *db, const char *type, json_t *ev)
{
	int ret = lsc_audit_append(r, db, type, ev);

	json_decref(ev);
	return ret;
}

/* ---- health ---- */

static void h_health(struct lsc_server *s, struct lsc_req *r)
{
	PGconn *db = s->db && PQstatus(s->db) == CONNECTION_OK ? s->db : NULL;
	PGresult *res;

	if (!db) {
		r->have_reply = false;
		db = lsc_db(r);
		if (!db) {
			lsc_reply_json(r, 503,
				       json_pack("{s:b, s:s, s:{s:s, s:s}}", "ok", 0, "database",
						 "unreachable", "error", "code", LS_ERR_UNAVAILABLE,
						 "message", "the database is unreachable"));
			return;
		}
	}
	res = lsc_exec0(db, "SELECT coalesce(max(version), 0) FROM lsc_schema");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		lsc_reply_json(r, 503,
			       json_pack("{s:b, s:s, s:{s:s, s:s}}", "ok", 0, "database", "error",
					 "error", "code", LS_ERR_UNAVAILABLE, "message",
					 "the database does not answer"));
		return;
	}
	lsc_reply_json(r, 200,
		       json_pack("{s:b, s:s, s:I, s:I, s:I}", "ok", 1, "database", "ok",
				 "schema_version", (json_int_t)lsc_i64(res, 0, 0), "waiters",
				 (json_int_t)s->n_waiters, "queries", (json_int_t)lsc_query_count));
	PQclear(res);
}

/* ---- node authentication ---- */

struct node_ctx {
	int64_t id;
	char net_id[40];
	int64_t version;
	int listen_port;
	char *routes, *endpoints; /* csv, owned */
	char key[LS_KEY_B64_LEN + 1];
};

static void node_ctx_free(struct node_ctx *nc)
{
	free(nc->routes);
	free(nc->endpoints);
}

/* Verifies the request's signature by key (headers ts, nonce, sig) over method, URI and
 * body, and its clock: false after a 401 (stale or not verifying). */
static bool check_signature(struct lsc_req *r, const char *method, const char *key,
			    const char *ts, const char *nonce, const char *sig)
{
	int64_t skew = 0;
	int ret = ls_sign_verify(key, ts, nonce, sig, method, r->uri, r->body.p, r->body.len,
				 ls_unix_time(), LS_SIGN_MAX_SKEW, NULL, &skew);

	if (ret == -ETIME) {
		lsc_reply_error(r, 401, LS_ERR_STALE_REQUEST,
				"request timestamp is %lld s %s the server clock (allowed +-%d s): "
				"check the clock of this machine",
				(long long)(skew < 0 ? -skew : skew), skew < 0 ? "behind" : "ahead of",
				LS_SIGN_MAX_SKEW);
		return false;
	}
	if (ret) {
		lsc_reply_error(r, 401, LS_ERR_BAD_SIGNATURE, "the request signature does not verify");
		return false;
	}
	return true;
}

static bool auth_node(struct lsc_server *s, struct lsc_req *r, const char *method,
		      struct node_ctx *nc)
{
	const char *key = lsc_req_header(r, LS_HDR_KEY), *ts = lsc_req_header(r, LS_HDR_TIMESTAMP);
	const char *nonce = lsc_req_header(r, LS_HDR_NONCE);
	const char *sig = lsc_req_header(r, LS_HDR_SIGNATURE);
	char src[LS_ENDPOINT_STRLEN], rlkey[96];
	PGresult *res;
	PGconn *db;
	const char *p[2];

	memset(nc, 0, sizeof(*nc));
	if (!key || !ts || !nonce || !sig) {
		lsc_reply_error(r, 401, LS_ERR_BAD_SIGNATURE,
				"request is not signed (missing %s)",
				!key ? LS_HDR_KEY : !ts ? LS_HDR_TIMESTAMP : !nonce ? LS_HDR_NONCE
										    : LS_HDR_SIGNATURE);
		return false;
	}
	src_string(&r->src, src, sizeof(src));
	snprintf(rlkey, sizeof(rlkey), "ip:%s", src);
	if (!lsc_rl_allow(s->rl, rlkey, s->cfg.ip_burst, s->cfg.ip_rate, ls_now_ms())) {
		lsc_reply_error(r, 429, LS_ERR_RATE_LIMITED, "too many requests from %s", src);
		return false;
	}
	if (!check_signature(r, method, key, ts, nonce, sig))
		return false;
	snprintf(nc->key, sizeof(nc->key), "%s", key);
	snprintf(rlkey, sizeof(rlkey), "node:%s", key);
	if (!lsc_rl_allow(s->rl, rlkey, s->cfg.node_burst, s->cfg.node_rate, ls_now_ms())) {
		lsc_reply_error(r, 429, LS_ERR_RATE_LIMITED, "too many requests from this node");
		return false;
	}
	db = lsc_db(r);
	if (!db)
		return false;
	p[0] = key;
	p[1] = nonce;
	res = query_row(r, db, "authenticate node",
			"WITH n AS (INSERT INTO nonces (machine_key, nonce) VALUES ($1, $2) "
			"  ON CONFLICT DO NOTHING RETURNING 1) "
			"SELECT (SELECT count(*) FROM n), x.id, x.network_id, x.status, x.version, "
			"  x.listen_port, x.routes, x.endpoints "
			"FROM (SELECT 1) d LEFT JOIN (SELECT nodes.id, nodes.network_id::text, "
			"  nodes.status, networks.version, coalesce(nodes.listen_port, 0) listen_port, "
			"  array_to_string(nodes.routes, ',') routes, "
			"  array_to_string(nodes.endpoints, ',') endpoints "
			"  FROM nodes JOIN networks ON networks.id = nodes.network_id "
			"  WHERE nodes.machine_key = $1) x ON true",
			2, p);
	if (!res)
		return false;
	if (lsc_i64(res, 0, 0) == 0) {
		PQclear(res);
		lsc_reply_error(r, 401, LS_ERR_REPLAYED_REQUEST,
				"nonce %s was already used: replayed request", nonce);
		return false;
	}
	if (PQgetisnull(res, 0, 1)) {
		PQclear(res);
		lsc_reply_error(r, 404, LS_ERR_UNKNOWN_NODE,
				"no node is registered with this machine key");
		return false;
	}
	if (strcmp(PQgetvalue(res, 0, 3), "active") && strcmp(PQgetvalue(res, 0, 3), "pending")) {
		lsc_reply_error(r, 403, LS_ERR_NODE_REVOKED, "node %s is %s", PQgetvalue(res, 0, 1),
				PQgetvalue(res, 0, 3));
		PQclear(res);
		return false;
	}
	nc->id = lsc_i64(res, 0, 1);
	snprintf(nc->net_id, sizeof(nc->net_id), "%s", PQgetvalue(res, 0, 2));
	nc->version = lsc_i64(res, 0, 4);
	nc->listen_port = (int)lsc_i64(res, 0, 5);
	nc->routes = strdup(PQgetvalue(res, 0, 6));
	nc->endpoints = strdup(PQgetvalue(res, 0, 7));
	PQclear(res);
	lsc_live_mark(s, nc->id);
	return true;
}

/* ---- register ---- */

static int auto_approve(struct lsc_req *r, PGconn *db, const char *net_id, int64_t node_id);

static int select_node(struct lsc_req *r, PGconn *db, const char *where, const char *arg,
		       PGresult **out)
{
	char sql[2048];
	const char *p[1] = {arg};
	PGresult *res;

	snprintf(sql, sizeof(sql),
		 "SELECT " NODE_ADMIN_COLS " FROM nodes JOIN networks ON networks.id = nodes.network_id "
		 "WHERE %s",
		 where);
	res = query(r, db, "select node", sql, 1, p);
	if (!res)
		return -EIO;
	*out = res;
	return 0;
}

static json_t *network_of(PGconn *db, const char *net_id)
{
	const char *p[1] = {net_id};
	PGresult *res = lsc_exec(db, "SELECT " NETWORK_COLS " FROM networks WHERE id = $1::uuid", 1, p);
	json_t *j = NULL;

	if (lsc_res_ok(db, res, "select network") && PQntuples(res) == 1)
		j = network_json(res, 0);
	PQclear(res);
	return j;
}

static void reply_registered(struct lsc_server *s, struct lsc_req *r, PGconn *db, int64_t id,
			     unsigned status)
{
	char idbuf[24];
	PGresult *res = NULL;
	json_t *net;

	snprintf(idbuf, sizeof(idbuf), "%" PRId64, id);
	if (select_node(r, db, "nodes.id = $1::bigint", idbuf, &res))
		return;
	if (PQntuples(res) != 1) {
		PQclear(res);
		lsc_reply_error(r, 500, LS_ERR_INTERNAL, "node %s vanished", idbuf);
		return;
	}
	net = network_of(db, PQgetvalue(res, 0, 17));
	lsc_reply_json(r, status, json_pack("{s:o, s:o}", "node", self_json(res, 0), "network",
					    net ? net : json_null()));
	PQclear(res);
}

/* Creates the node of req in network net_id (prefixes v4, v6) inside the caller's transaction:
 * a unique DNS name, the next free host index, the row (status pending or active, token_id
 * NULL for a device an admin admitted), routes the policy auto-approves, the version bump and
 * the audit entry. 0 (*id_out and name set), or -1 after a reply (rolled back when refused). */
static int insert_node(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *net_id,
		       const struct ls_prefix *pv4, const struct ls_prefix *pv6,
		       const struct lsc_register_req *req, const char *token_id, const char *tags,
		       bool pending, const char *src, int64_t *id_out, char name[80])
{
	struct ls_prefix v4 = *pv4, v6 = *pv6, a4, a6;
	char a4s[LS_PREFIX_STRLEN], a6s[LS_PREFIX_STRLEN], label[64], idbuf[24], hostbuf[24], port[16];
	char *routes = NULL, *endpoints = NULL;
	PGresult *res = NULL;
	uint32_t host = 0;
	int64_t id;
	int i, k, ret = -1;

	(void)s;
	{
		const char *p[2] = {net_id, req->wg_key};
		PGresult *ex;

		/* one allocation at a time per network, across servers */
		ex = lsc_exec(db, "SELECT pg_advisory_xact_lock(hashtext($1))", 1, p);
		PQclear(ex);
		ex = query(r, db, "find wg key",
			   "SELECT id FROM nodes WHERE network_id = $1::uuid AND wg_key = $2",
			   2, p);
		if (!ex)
			goto fail;
		if (PQntuples(ex)) {
			lsc_reply_error(r, 409, LS_ERR_BAD_KEY,
					"WireGuard key already used by node %s in this network",
					PQgetvalue(ex, 0, 0));
			PQclear(ex);
			rollback(db);
			goto fail;
		}
		PQclear(ex);
	}
	res = query(r, db, "node id", "SELECT nextval('nodes_id_seq')", 0, NULL);
	if (!res)
		goto fail;
	id = lsc_i64(res, 0, 0);
	PQclear(res);
	/* a unique DNS label: laptop, laptop-2, laptop-3, ... */
	lsc_dns_label(req->hostname, label, 56);
	{
		const char *p[2] = {net_id, label};

		res = query(r, db, "find names",
			    "SELECT name FROM nodes WHERE network_id = $1::uuid AND "
			    "(name = $2 OR name LIKE $2 || '-%')",
			    2, p);
	}
	if (!res)
		goto fail;
	for (k = 1;; k++) {
		bool taken = false;

		if (k == 1)
			snprintf(name, 80, "%s", label);
		else
			snprintf(name, 80, "%s-%d", label, k);
		for (i = 0; i < PQntuples(res) && !taken; i++)
			taken = !strcmp(PQgetvalue(res, i, 0), name);
		if (!taken)
			break;
	}
	PQclear(res);
	res = NULL;
	/* host index from the node id; a taken one probes the next */
	for (k = 0;; k++) {
		PGresult *ex;
		const char *p[2] = {net_id, hostbuf};

		if (lsc_derive_host(id, (unsigned)k, &v4, &host) ||
		    (uint64_t)k >= (1ull << (32 - v4.len))) {
			rollback(db);
			lsc_reply_error(r, 409, LS_ERR_BAD_REQUEST, "network %s has no free address",
					net_id);
			goto fail;
		}
		snprintf(hostbuf, sizeof(hostbuf), "%u", host);
		ex = query(r, db, "find host",
			   "SELECT 1 FROM nodes WHERE network_id = $1::uuid AND host_index = $2::int",
			   2, p);
		if (!ex)
			goto fail;
		i = PQntuples(ex);
		PQclear(ex);
		if (!i)
			break;
	}
	lsc_host_address(&v4, host, &a4);
	lsc_host_address(&v6, host, &a6);
	ls_prefix_format_addr(&a4, a4s);
	ls_prefix_format_addr(&a6, a6s);
	routes = lsc_array_literal((const char *const *)req->routes.v, req->routes.n);
	endpoints = lsc_array_literal((const char *const *)req->endpoints.v, req->endpoints.n);
	snprintf(idbuf, sizeof(idbuf), "%" PRId64, id);
	snprintf(port, sizeof(port), "%d", req->listen_port);
	{
		const char *p[15] = {idbuf, net_id, name, req->hostname, req->wg_key, req->machine_key,
				     hostbuf, a4s, a6s, routes, endpoints,
				     req->listen_port ? port : NULL, tags, token_id,
				     pending ? "pending" : "active"};

		res = lsc_exec(db,
			       "INSERT INTO nodes (id, network_id, name, hostname, wg_key, machine_key, "
			       "host_index, ipv4, ipv6, routes, endpoints, listen_port, tags, token_id, "
			       "status, last_seen, key_expiry) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
			       "$10, $11, $12, $13, $14, $15, now(), (SELECT now() + make_interval(secs => "
			       "key_lifetime) FROM networks WHERE id = $2::uuid))",
			       15, p);
	}
	if (!lsc_res_ok(db, res, "insert node")) {
		if (lsc_unique_violation(res)) {
			rollback(db);
			lsc_reply_error(r, 409, LS_ERR_BAD_KEY, "this node is already registered");
		} else {
			lsc_db_failed(r, res, "insert node");
		}
		goto fail;
	}
	PQclear(res);
	res = NULL;
	if (token_id) {
		const char *p[1] = {token_id};

		res = query(r, db, "use token",
			    "UPDATE tokens SET uses = uses + 1 WHERE id = $1", 1, p);
		if (!res)
			goto fail;
		PQclear(res);
		res = NULL;
	}
	if (req->routes.n && auto_approve(r, db, net_id, id) < 0)
		goto fail;
	if (bump_version(r, db, net_id, id, routes, true) < 0)
		goto fail;
	{
		/* key transparency: every node key enters the log */
		json_t *ev = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s?, s:s, s:s}", "node",
				       (json_int_t)id, "network", net_id, "name", name, "wg_key",
				       req->wg_key, "machine_key", req->machine_key, "token", token_id,
				       "source", src, "status", pending ? "pending" : "active");

		if (audit(r, db, "register", ev) < 0)
			goto fail;
	}
	*id_out = id;
	ret = 0;
fail:
	PQclear(res);
	free(routes);
	free(endpoints);
	return ret;
}

/* ---- tokenless registration (auth-URL onboarding) ----
 *
 * A device without a token asks to join: POST /v1/register without "token", signed by the
 * machine key it names (proof of possession: nobody files a request under another machine's
 * key). It gets a short-lived, single-use approval link and waits; nothing else is created:
 * no node row, no name, no address, until an admin opens the link, picks a network and
 * approves (lsc_api_device_decide). Limits (the server's config: rate_limits.device_request
 * and device_request_all, device_requests.{waiting_per_source, waiting_max, lifetime},
 * control/config.c; defaults): 10 requests per source address in a burst, refilling at one per 6 s (an office
 * behind one NAT can onboard a few laptops at once), 30 per server in a burst refilling at
 * one per 2 s, at most 20 waiting requests per source and 1000 in all across the servers of
 * the database, links that work 10 minutes; a new request of the same machine key ends its
 * older link; a machine key an admin rejected is refused (a new key asks again).
 * GET /v1/register/status (signed) tells the device where it stands. */
static bool valid_id(const char *s);


/* A request signed by a machine key that need not belong to a node yet: the signature, the
 * clock and the nonce (replay window in the database, shared by every server) are checked
 * like auth_node's. want: the key the request must be signed by (NULL: any). */
static bool auth_device(struct lsc_server *s, struct lsc_req *r, const char *method,
			const char *want, char key_out[64], PGconn **dbp)
{
	const char *key = lsc_req_header(r, LS_HDR_KEY), *ts = lsc_req_header(r, LS_HDR_TIMESTAMP);
	const char *nonce = lsc_req_header(r, LS_HDR_NONCE);
	const char *sig = lsc_req_header(r, LS_HDR_SIGNATURE);
	char rlkey[96];
	PGresult *res;
	const char *p[2];

	if (!key || !ts || !nonce || !sig) {
		lsc_reply_error(r, 401, LS_ERR_BAD_SIGNATURE,
				"a registration without a token must be signed by its machine key "
				"(missing %s)",
				!key ? LS_HDR_KEY : !ts ? LS_HDR_TIMESTAMP : !nonce ? LS_HDR_NONCE
										    : LS_HDR_SIGNATURE);
		return false;
	}
	if (strlen(key) >= 64 || (want && strcmp(key, want))) {
		lsc_reply_error(r, 401, LS_ERR_BAD_SIGNATURE,
				"the request is signed by `%.60s', not by the machine key it registers",
				key);
		return false;
	}
	if (!check_signature(r, method, key, ts, nonce, sig))
		return false;
	snprintf(rlkey, sizeof(rlkey), "node:%s", key);
	if (!lsc_rl_allow(s->rl, rlkey, s->cfg.node_burst, s->cfg.node_rate, ls_now_ms())) {
		lsc_reply_error(r, 429, LS_ERR_RATE_LIMITED, "too many requests from this machine key");
		return false;
	}
	*dbp = lsc_db(r);
	if (!*dbp)
		return false;
	p[0] = key;
	p[1] = nonce;
	res = query(r, *dbp, "nonce",
		    "INSERT INTO nonces (machine_key, nonce) VALUES ($1, $2) ON CONFLICT DO NOTHING",
		    2, p);
	if (!res)
		return false;
	if (strcmp(PQcmdTuples(res), "1")) {
		PQclear(res);
		lsc_reply_error(r, 401, LS_ERR_REPLAYED_REQUEST,
				"nonce %s was already used: replayed request", nonce);
		return false;
	}
	PQclear(res);
	snprintf(key_out, 64, "%s", key);
	return true;
}

/* the node of a machine key: 1 (id set), 0 none, -1 after a reply */
static int node_of_key(struct lsc_req *r, PGconn *db, const char *key, int64_t *id)
{
	const char *p[1] = {key};
	PGresult *res = query(r, db, "find machine key",
			      "SELECT id FROM nodes WHERE machine_key = $1", 1, p);
	int n;

	if (!res)
		return -1;
	n = PQntuples(res);
	if (n)
		*id = lsc_i64(res, 0, 0);
	PQclear(res);
	return n ? 1 : 0;
}

/* adds "status" (and more) to the JSON reply of reply_registered */
static void reply_add(struct lsc_req *r, const char *status, const char *url)
{
	json_t *j;

	if (r->status >= 300 || !r->reply)
		return;
	j = json_loadb(r->reply, r->reply_len, 0, NULL);
	if (!j)
		return;
	json_object_set_new(j, "status", json_string(status));
	if (url)
		json_object_set_new(j, "approval_url", json_string(url));
	lsc_reply_json(r, r->status, j);
}

static void h_register_open(struct lsc_server *s, struct lsc_req *r,
			    const struct lsc_register_req *req, const char *src)
{
	char key[64], rlkey[96], code[40], hash[LS_SHA256_HEX_LEN + 1], url[320] = "";
	char *routes = NULL, *endpoints = NULL, port[16], life[16];
	const struct lsc_device_limits *lim = &s->cfg.devices;
	const char *host = lsc_req_header(r, "Host");
	uint8_t raw[16];
	PGresult *res = NULL;
	PGconn *db;
	int64_t id;
	int n;

	if (s->schema_version < 9) {
		lsc_reply_error(r, 401, LS_ERR_TOKEN_INVALID,
				"this server's database does not take registrations without a token yet");
		return;
	}
	snprintf(rlkey, sizeof(rlkey), "open:%s", src);
	if (!lsc_rl_allow(s->rl, rlkey, lim->burst, lim->rate, ls_now_ms()) ||
	    !lsc_rl_allow(s->rl, "open:*", lim->all_burst, lim->all_rate, ls_now_ms())) {
		lsc_reply_error(r, 429, LS_ERR_RATE_LIMITED,
				"too many registrations without a token from %s: try again in a minute",
				src);
		return;
	}
	if (!auth_device(s, r, "POST", req->machine_key, key, &db))
		return;
	n = node_of_key(r, db, key, &id);
	if (n < 0)
		return;
	if (n) { /* admitted already: its node, like a token registration again */
		reply_registered(s, r, db, id, 200);
		reply_add(r, "registered", NULL);
		return;
	}
	if (!begin(r, db))
		return;
	{
		const char *p[2] = {src, key};

		/* one writer at a time across servers, so the limits below hold for the set */
		res = lsc_exec0(db, "SELECT pg_advisory_xact_lock(hashtext('lightscale device requests'))");
		PQclear(res);
		res = lsc_exec0(db, "DELETE FROM device_requests WHERE status = 'waiting' AND "
				    "expires_at < now() - interval '1 day'");
		PQclear(res);
		res = query(r, db, "count device requests",
			    "SELECT count(*) FILTER (WHERE source = $1), count(*) FROM device_requests "
			    "WHERE status = 'waiting' AND expires_at > now() AND machine_key <> $2",
			    2, p);
	}
	if (!res)
		goto out;
	if (lsc_i64(res, 0, 0) >= lim->waiting_per_source || lsc_i64(res, 0, 1) >= lim->waiting_max) {
		bool per_src = lsc_i64(res, 0, 0) >= lim->waiting_per_source;

		rollback(db);
		lsc_reply_error(r, 429, LS_ERR_RATE_LIMITED,
				"%d devices are already waiting for approval%s%s: try again when an admin "
				"has seen them",
				per_src ? lim->waiting_per_source : lim->waiting_max, per_src ? " from " : "",
				per_src ? src : "");
		goto out;
	}
	PQclear(res);
	{
		/* a machine key an admin rejected stays rejected */
		const char *p[1] = {key};

		res = query(r, db, "rejected device",
			    "SELECT id, to_char(decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') "
			    "FROM device_requests WHERE machine_key = $1 AND status = 'rejected' LIMIT 1",
			    1, p);
	}
	if (!res)
		goto out;
	if (PQntuples(res)) {
		rollback(db);
		lsc_reply_error(r, 403, LS_ERR_DEVICE_REJECTED,
				"an admin rejected this machine key (request %s, %s UTC): a new key "
				"(lightscale init --new-keys) may ask again",
				PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
		goto out;
	}
	PQclear(res);
	{
		/* the same machine asking again: its older link stops working */
		const char *p[1] = {key};

		res = query(r, db, "end older request",
			    "UPDATE device_requests SET expires_at = now() WHERE machine_key = $1 "
			    "AND status = 'waiting' AND expires_at > now()",
			    1, p);
	}
	if (!res)
		goto out;
	PQclear(res);
	randombytes_buf(raw, sizeof(raw));
	ls_hex_encode(code, raw, sizeof(raw));
	ls_sha256_hex(hash, code, strlen(code));
	routes = lsc_array_literal((const char *const *)req->routes.v, req->routes.n);
	endpoints = lsc_array_literal((const char *const *)req->endpoints.v, req->endpoints.n);
	snprintf(port, sizeof(port), "%d", req->listen_port);
	snprintf(life, sizeof(life), "%d", lim->lifetime);
	{
		const char *p[9] = {hash, key, req->wg_key, req->hostname, routes, endpoints,
				    req->listen_port ? port : NULL, src, life};

		res = query_row(r, db, "insert device request",
				"INSERT INTO device_requests (code_hash, machine_key, wg_key, hostname, routes, "
				"endpoints, listen_port, source, expires_at) VALUES (decode($1, 'hex'), $2, $3, "
				"$4, $5, $6, $7, $8, now() + make_interval(secs => $9::int)) "
				"RETURNING id, extract(epoch from expires_at)::bigint",
				9, p);
	}
	if (!res)
		goto out;
	if (!commit(r, db))
		goto out;
	if (host && strlen(host) < 200 && !strpbrk(host, "\"<>\\ /"))
		snprintf(url, sizeof(url), "%s://%s/approve/%s", s->tls ? "https" : "http", host, code);
	pr_info("device request %s from %s (`%s'): waiting for an admin", PQgetvalue(res, 0, 0), src,
		req->hostname);
	lsc_reply_json(r, 202,
		       json_pack("{s:s, s:I, s:s, s:s, s:I}", "status", "waiting", "request",
				 (json_int_t)lsc_i64(res, 0, 0), "approval_url", url, "approval_path",
				 "/approve/", "expires_at", (json_int_t)lsc_i64(res, 0, 1)));
	if (r->reply && r->status == 202) {
		/* the path with the code, for a client that knows the server by another name */
		json_t *j = json_loadb(r->reply, r->reply_len, 0, NULL);
		char path[64];

		snprintf(path, sizeof(path), "/approve/%s", code);
		if (j) {
			json_object_set_new(j, "approval_path", json_string(path));
			if (!url[0])
				json_object_del(j, "approval_url");
			lsc_reply_json(r, 202, j);
		}
	}
out:
	ls_memzero(code, sizeof(code));
	PQclear(res);
	free(routes);
	free(endpoints);
}

/* GET /v1/register/status (signed): where this machine's registration stands. */
static void h_register_status(struct lsc_server *s, struct lsc_req *r)
{
	static const char *const st_of[][2] = {{"active", "approved"}, {"pending", "pending"},
						{"rejected", "rejected"}, {"revoked", "revoked"}};
	char key[64];
	const char *p[1] = {key};
	PGresult *res;
	PGconn *db;
	int64_t id;
	size_t i;
	int n;

	if (s->schema_version < 9) {
		lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no such resource `/v1/register/status'");
		return;
	}
	if (!auth_device(s, r, "GET", NULL, key, &db))
		return;
	n = node_of_key(r, db, key, &id);
	if (n < 0)
		return;
	if (n) {
		reply_registered(s, r, db, id, 200);
		if (r->status == 200 && r->reply) {
			json_t *j = json_loadb(r->reply, r->reply_len, 0, NULL);
			const char *ns = j ? json_string_value(json_object_get(json_object_get(j, "node"),
									       "status"))
					   : NULL;
			const char *st = ns ? ns : "unknown";

			for (i = 0; ns && i < ARRAY_SIZE(st_of); i++)
				if (!strcmp(ns, st_of[i][0]))
					st = st_of[i][1];
			json_decref(j);
			reply_add(r, st, NULL);
		}
		return;
	}
	res = query(r, db, "device request",
		    "SELECT id, status, expires_at > now(), extract(epoch from expires_at)::bigint "
		    "FROM device_requests WHERE machine_key = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
		    1, p);
	if (!res)
		return;
	if (!PQntuples(res)) {
		PQclear(res);
		lsc_reply_error(r, 404, LS_ERR_UNKNOWN_NODE,
				"no registration of this machine key is known: run lightscale register");
		return;
	}
	{
		const char *st = PQgetvalue(res, 0, 1);

		if (!strcmp(st, "waiting") && PQgetvalue(res, 0, 2)[0] != 't')
			st = "expired";
		else if (!strcmp(st, "approved"))
			st = "removed"; /* approved, but its node was deleted since */
		lsc_reply_json(r, 200, json_pack("{s:s, s:I, s:I}", "status", st, "request",
						 (json_int_t)lsc_i64(res, 0, 0), "expires_at",
						 (json_int_t)lsc_i64(res, 0, 3)));
	}
	PQclear(res);
}

/* Approves (into network) or rejects waiting device request id; replies {"node", "network",
 * "request"} or {"request"}. The approval page and the admin API call it; r->admin_id is the
 * deciding admin. */
void lsc_api_device_decide(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *id,
			   const char *network, bool approve)
{
	struct lsc_register_req req;
	char src[LS_ENDPOINT_STRLEN], net_id[40], name[80], nid[24];
	struct ls_prefix v4, v6;
	PGresult *res = NULL;
	int64_t node = 0;
	int n;

	memset(&req, 0, sizeof(req));
	if (!valid_id(id)) {
		lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no device request `%.64s'", id);
		return;
	}
	if (approve && (!network || !*network)) {
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST,
				"choose the network to admit device request %s to", id);
		return;
	}
	if (!begin(r, db))
		return;
	{
		const char *p[1] = {id};

		res = query(r, db, "device request",
			    "SELECT machine_key, wg_key, hostname, array_to_string(routes, ','), "
			    "array_to_string(endpoints, ','), coalesce(listen_port, 0), source, status, "
			    "expires_at > now() FROM device_requests WHERE id = $1::bigint FOR UPDATE",
			    1, p);
	}
	if (!res)
		goto out;
	if (PQntuples(res) != 1) {
		rollback(db);
		lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no device request %s", id);
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 7), "waiting")) {
		rollback(db);
		lsc_reply_error(r, 409, LS_ERR_CONFLICT, "device request %s was already %s", id,
				PQgetvalue(res, 0, 7));
		goto out;
	}
	if (PQgetvalue(res, 0, 8)[0] != 't') {
		rollback(db);
		lsc_reply_error(r, 409, LS_ERR_CONFLICT,
				"device request %s expired: the device asks again with lightscale register", id);
		goto out;
	}
	snprintf(req.machine_key, sizeof(req.machine_key), "%s", PQgetvalue(res, 0, 0));
	snprintf(req.wg_key, sizeof(req.wg_key), "%s", PQgetvalue(res, 0, 1));
	req.hostname = strdup(PQgetvalue(res, 0, 2));
	req.listen_port = (int)lsc_i64(res, 0, 5);
	snprintf(src, sizeof(src), "%s", PQgetvalue(res, 0, 6));
	if (!req.hostname || lsc_strv_split(&req.routes, PQgetvalue(res, 0, 3)) ||
	    lsc_strv_split(&req.endpoints, PQgetvalue(res, 0, 4))) {
		rollback(db);
		lsc_reply_error(r, 500, LS_ERR_INTERNAL, "out of memory");
		goto out;
	}
	PQclear(res);
	res = NULL;
	if (approve) {
		const char *p[1] = {network};

		res = query(r, db, "find network",
			    "SELECT id::text, ipv4::text, ipv6::text FROM networks WHERE name = $1",
			    1, p);
		if (!res)
			goto out;
		if (PQntuples(res) != 1 || ls_prefix_parse(PQgetvalue(res, 0, 1), &v4, false) ||
		    ls_prefix_parse(PQgetvalue(res, 0, 2), &v6, false)) {
			rollback(db);
			lsc_reply_error(r, 404, LS_ERR_UNKNOWN_NETWORK, "no network `%.64s'", network);
			goto out;
		}
		snprintf(net_id, sizeof(net_id), "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
		res = NULL;
		n = node_of_key(r, db, req.machine_key, &node);
		if (n < 0)
			goto out;
		if (n) {
			rollback(db);
			lsc_reply_error(r, 409, LS_ERR_BAD_KEY,
					"the machine key of device request %s is node %" PRId64 " already",
					id, node);
			goto out;
		}
		/* an admin admitted it by hand: active at once, also in an approval network */
		if (insert_node(s, r, db, net_id, &v4, &v6, &req, NULL, "{}", false, src, &node,
				name) < 0)
			goto out;
	}
	snprintf(nid, sizeof(nid), "%" PRId64, node);
	{
		const char *p[4] = {id, approve ? "approved" : "rejected", r->admin_id,
				    approve ? nid : NULL};

		res = query(r, db, "decide device request",
			    "UPDATE device_requests SET status = $2, decided_at = now(), decided_by = $3, "
			    "node_id = $4::bigint WHERE id = $1::bigint",
			    4, p);
	}
	if (!res)
		goto out;
	PQclear(res);
	res = NULL;
	{
		json_t *ev = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s?}", "request",
				       (json_int_t)strtoll(id, NULL, 10), "hostname", req.hostname,
				       "machine_key", req.machine_key, "source", src, "by", r->admin_id,
				       "network", approve ? network : NULL);

		if (ev && approve)
			json_object_set_new(ev, "node", json_integer(node));
		if (audit(r, db, approve ? "device_approve" : "device_reject", ev) < 0 ||
		    !commit(r, db))
			goto out;
	}
	pr_info("device request %s %s by admin key %s%s%s", id, approve ? "approved" : "rejected",
		r->admin_id, approve ? ": node " : "", approve ? nid : "");
	if (approve) {
		reply_registered(s, r, db, node, 200);
		if (r->status == 200 && r->reply) {
			json_t *j = json_loadb(r->reply, r->reply_len, 0, NULL);

			if (j) {
				json_object_set_new(j, "request", json_integer(strtoll(id, NULL, 10)));
				lsc_reply_json(r, 200, j);
			}
		}
	} else {
		lsc_reply_json(r, 200, json_pack("{s:I, s:s}", "request", (json_int_t)strtoll(id, NULL, 10),
						 "status", "rejected"));
	}
out:
	PQclear(res);
	lsc_register_req_free(&req);
}

static void h_register(struct lsc_server *s, struct lsc_req *r)
{
	struct lsc_register_req req;
	char err[512], src[LS_ENDPOINT_STRLEN], rlkey[96], hash[LS_SHA256_HEX_LEN + 1];
	char name[80], idbuf[24];
	char *tags = NULL;
	PGresult *res = NULL;
	PGconn *db;
	struct ls_prefix v4, v6;
	char net_id[40], token_id[40];
	int64_t id;
	bool pending = false;
	char code[40] = "", approval_url[320] = "";

	src_string(&r->src, src, sizeof(src));
	snprintf(rlkey, sizeof(rlkey), "reg:%s", src);
	if (!lsc_rl_allow(s->rl, rlkey, s->cfg.register_burst, s->cfg.register_rate, ls_now_ms())) {
		lsc_reply_error(r, 429, LS_ERR_RATE_LIMITED, "too many registrations from %s", src);
		return;
	}
	if (lsc_parse_register(r->body.p, r->body.len, &req, err, sizeof(err))) {
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST, "%s", err);
		return;
	}
	/* and per machine key, wherever it comes from */
	snprintf(rlkey, sizeof(rlkey), "regkey:%s", req.machine_key);
	if (!lsc_rl_allow(s->rl, rlkey, s->cfg.register_burst, s->cfg.register_rate, ls_now_ms())) {
		lsc_reply_error(r, 429, LS_ERR_RATE_LIMITED, "too many registrations of this machine key");
		goto out;
	}
	if (!req.token) {
		h_register_open(s, r, &req, src);
		goto out;
	}
	db = lsc_db(r);
	if (!db)
		goto out;
	/* an enrollment string "TOKEN@IDENTITY@PINS" counts as its token */
	ls_sha256_hex(hash, req.token, strcspn(req.token, "@"));
	if (!begin(r, db))
		goto out;
	{
		const char *p[1] = {hash};

		res = query(r, db, "find token",
			    "SELECT tokens.id, tokens.network_id::text, tokens.revoked_at IS NOT NULL, "
			    "  tokens.expires_at < now(), tokens.uses >= tokens.max_uses, "
			    "  to_char(tokens.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
			    "  networks.ipv4::text, networks.ipv6::text, tokens.max_uses, "
			    "  array_to_string(tokens.tags, ','), networks.require_approval "
			    "FROM tokens JOIN networks ON networks.id = tokens.network_id "
			    "WHERE tokens.hash = decode($1, 'hex') FOR UPDATE OF tokens",
			    1, p);
	}
	if (!res)
		goto out;
	if (PQntuples(res) == 0) {
		rollback(db);
		lsc_reply_error(r, 401, LS_ERR_TOKEN_INVALID, "the enrollment token is not valid");
		goto out;
	}
	snprintf(token_id, sizeof(token_id), "%s", PQgetvalue(res, 0, 0));
	snprintf(net_id, sizeof(net_id), "%s", PQgetvalue(res, 0, 1));
	if (PQgetvalue(res, 0, 2)[0] == 't') {
		rollback(db);
		lsc_reply_error(r, 403, LS_ERR_TOKEN_REVOKED, "enrollment token %s was revoked",
				token_id);
		goto out;
	}
	{
		/* the same machine key again: its node, idempotently, without using the token */
		const char *p[1] = {req.machine_key};
		PGresult *ex = query(r, db, "find machine key",
				     "SELECT id, network_id::text FROM nodes WHERE machine_key = $1",
				     1, p);

		if (!ex)
			goto out;
		if (PQntuples(ex) == 1) {
			int64_t eid = lsc_i64(ex, 0, 0);
			bool same = !strcmp(PQgetvalue(ex, 0, 1), net_id);

			PQclear(ex);
			rollback(db);
			if (!same) {
				lsc_reply_error(r, 409, LS_ERR_BAD_KEY,
						"this machine key is registered in another network");
				goto out;
			}
			reply_registered(s, r, db, eid, 200);
			goto out;
		}
		PQclear(ex);
	}
	if (PQgetvalue(res, 0, 3)[0] == 't') {
		rollback(db);
		lsc_reply_error(r, 403, LS_ERR_TOKEN_EXPIRED, "enrollment token %s expired at %s",
				token_id, PQgetvalue(res, 0, 5));
		goto out;
	}
	if (PQgetvalue(res, 0, 4)[0] == 't') {
		rollback(db);
		lsc_reply_error(r, 403, LS_ERR_TOKEN_USED_UP,
				"enrollment token %s has been used %s time%s, its limit", token_id,
				PQgetvalue(res, 0, 8), strcmp(PQgetvalue(res, 0, 8), "1") ? "s" : "");
		goto out;
	}
	if (ls_prefix_parse(PQgetvalue(res, 0, 6), &v4, false) ||
	    ls_prefix_parse(PQgetvalue(res, 0, 7), &v6, false)) {
		rollback(db);
		lsc_reply_error(r, 500, LS_ERR_INTERNAL, "network %s has invalid prefixes", net_id);
		goto out;
	}
	pending = PQgetvalue(res, 0, 10)[0] == 't';
	tags = lsc_array_literal((const char *const *)NULL, 0);
	{
		struct lsc_strv tv;

		if (!lsc_strv_split(&tv, PQgetvalue(res, 0, 9))) {
			free(tags);
			tags = lsc_array_literal((const char *const *)tv.v, tv.n);
			lsc_strv_free(&tv);
		}
	}
	PQclear(res);
	res = NULL;
	if (insert_node(s, r, db, net_id, &v4, &v6, &req, token_id, tags, pending, src, &id, name) < 0)
		goto out;
	snprintf(idbuf, sizeof(idbuf), "%" PRId64, id);
	if (pending && s->schema_version >= 7) {
		uint8_t raw[16];
		char hh[LS_SHA256_HEX_LEN + 1];
		const char *hdr_host = lsc_req_header(r, "Host");
		const char *p[3] = {hh, idbuf, src};
		PGresult *ac;

		randombytes_buf(raw, sizeof(raw));
		ls_hex_encode(code, raw, sizeof(raw));
		ls_sha256_hex(hh, code, strlen(code));
		ac = query(r, db, "approval code",
			   "INSERT INTO approval_codes (hash, node_id, source, expires_at) VALUES "
			   "(decode($1, 'hex'), $2::bigint, $3, now() + interval '10 minutes')",
			   3, p);
		if (!ac)
			goto out;
		PQclear(ac);
		if (hdr_host && strlen(hdr_host) < 200 && !strpbrk(hdr_host, "\"<>\\ /"))
			snprintf(approval_url, sizeof(approval_url), "%s://%s/approve/%s",
				 s->tls ? "https" : "http", hdr_host, code);
	}
	if (!commit(r, db))
		goto out;
	pr_info("registered node %" PRId64 " `%s' in network %s from %s%s", id, name, net_id, src,
		pending ? " (pending approval)" : "");
	reply_registered(s, r, db, id, 201);
	if (approval_url[0] && r->status == 201) {
		json_t *j = json_loadb(r->reply, r->reply_len, 0, NULL);

		if (j) {
			json_object_set_new(j, "approval_url", json_string(approval_url));
			lsc_reply_json(r, 201, j);
		}
	}
out:
	PQclear(res);
	free(tags);
	lsc_register_req_free(&req);
}


/* ---- auto-approval of routes by the ACL policy ---- */

/* Adds to approved_routes every advertised route an auto_approve rule of the network's
 * policy approves, for node_id (0: every node), in the current transaction; audits it.
 * 0, or -1 after a reply. */
static int auto_approve(struct lsc_req *r, PGconn *db, const char *net_id, int64_t node_id)
{
	struct ls_acl_policy *pol = NULL;
	char idbuf[24];
	const char *p[2] = {net_id, idbuf};
	PGresult *res;
	int i, ret = 0;

	res = query_row(r, db, "policy",
			"SELECT coalesce(acl_policy, '') FROM networks WHERE id = $1::uuid", 1, p);
	if (!res)
		return -1;
	if (!PQgetvalue(res, 0, 0)[0] ||
	    ls_acl_parse(PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)), &pol, NULL, 0) ||
	    (!pol->n_auto_routes && !pol->n_auto_exit)) {
		PQclear(res);
		ls_acl_policy_free(pol);
		return 0;
	}
	PQclear(res);
	snprintf(idbuf, sizeof(idbuf), "%" PRId64, node_id);
	res = query(r, db, "auto approve",
		    "SELECT id, name, host(ipv4), host(ipv6), array_to_string(tags, ','), "
		    "array_to_string(routes, ','), array_to_string(approved_routes, ',') FROM nodes "
		    "WHERE network_id = $1::uuid AND ($2::bigint = 0 OR id = $2::bigint) "
		    "AND routes <> '{}' ORDER BY id",
		    2, p);
	if (!res) {
		ls_acl_policy_free(pol);
		return -1;
	}
	for (i = 0; i < PQntuples(res) && !ret; i++) {
		struct lsc_strv tags = {0}, adv = {0}, appr = {0}, add = {0};
		struct ls_prefix addrs[2];
		struct ls_acl_node n = {0};
		size_t j, k;

		lsc_strv_split(&tags, PQgetvalue(res, i, 4));
		lsc_strv_split(&adv, PQgetvalue(res, i, 5));
		lsc_strv_split(&appr, PQgetvalue(res, i, 6));
		n.id = lsc_i64(res, i, 0);
		n.name = PQgetvalue(res, i, 1);
		n.tags = (const char *const *)tags.v;
		n.n_tags = tags.n;
		ls_prefix_parse(PQgetvalue(res, i, 2), &addrs[0], true);
		ls_prefix_parse(PQgetvalue(res, i, 3), &addrs[1], true);
		n.addrs = addrs;
		n.n_addrs = 2;
		for (j = 0; j < adv.n; j++) {
			struct ls_prefix rp;
			bool have = false;

			for (k = 0; k < appr.n && !have; k++)
				have = !strcmp(appr.v[k], adv.v[j]);
			if (!have && !ls_prefix_parse(adv.v[j], &rp, false) &&
			    ls_acl_auto_approves(pol, &n, &rp))
				lsc_strv_add_unique(&add, adv.v[j]);
		}
		if (add.n) {
			char *lit = lsc_array_literal((const char *const *)add.v, add.n), nid[24];
			const char *q[2] = {nid, lit};
			PGresult *u;
			json_t *ev, *a = json_array();

			snprintf(nid, sizeof(nid), "%" PRId64, n.id);
			u = query(r, db, "auto approve",
				  "UPDATE nodes SET approved_routes = ARRAY(SELECT DISTINCT unnest("
				  "approved_routes || $2::text[]) ORDER BY 1) WHERE id = $1::bigint",
				  2, q);
			if (!u)
				ret = -1;
			PQclear(u);
			for (j = 0; j < add.n; j++)
				json_array_append_new(a, json_string(add.v[j]));
			ev = json_pack("{s:I, s:s, s:o}", "node", (json_int_t)n.id, "network", net_id,
				       "routes", a);
			if (!ret && lsc_audit_append(r, db, "route_auto_approve", ev) < 0)
				ret = -1;
			json_decref(ev);
			if (!ret)
				pr_info("node %" PRId64 ": routes %s approved by the policy", n.id, lit);
			free(lit);
		}
		lsc_strv_free(&tags);
		lsc_strv_free(&adv);
		lsc_strv_free(&appr);
		lsc_strv_free(&add);
	}
	PQclear(res);
	ls_acl_policy_free(pol);
	return ret;
}

/* ---- heartbeat ---- */

static void h_heartbeat(struct lsc_server *s, struct lsc_req *r)
{
	struct lsc_heartbeat_req req;
	struct node_ctx nc;
	struct lsc_strv merged = {0};
	char err[512], observed[LS_ENDPOINT_STRLEN] = "", port[16], idbuf[24];
	char *eps = NULL, *rts = NULL, *union_routes = NULL, *csv_eps = NULL, *csv_rts = NULL;
	int64_t version;
	int lport;
	size_t i;
	PGconn *db;

	if (!auth_node(s, r, "POST", &nc))
		return;
	if (lsc_parse_heartbeat(r->body.p, r->body.len, &req, err, sizeof(err))) {
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST, "%s", err);
		node_ctx_free(&nc);
		return;
	}
	version = nc.version;
	lport = req.listen_port ? req.listen_port : nc.listen_port;
	for (i = 0; i < req.endpoints.n; i++)
		if (lsc_strv_add_unique(&merged, req.endpoints.v[i]))
			goto oom;
	if (lport && (r->src.ss_family == AF_INET || r->src.ss_family == AF_INET6)) {
		struct sockaddr_storage o = r->src;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&o;
		if (o.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			struct sockaddr_in s4 = {.sin_family = AF_INET};

			memcpy(&s4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
			memset(&o, 0, sizeof(o));
			memcpy(&o, &s4, sizeof(s4));
		}
		if (o.ss_family == AF_INET)
			((struct sockaddr_in *)&o)->sin_port = htons((uint16_t)lport);
		else
			s6->sin6_port = htons((uint16_t)lport);
		ls_endpoint_format((struct sockaddr *)&o, observed);
		if (lsc_strv_add_unique(&merged, observed))
			goto oom;
	}
	{
		struct lsc_buf b = {0};

		for (i = 0; i < merged.n; i++)
			lsc_buf_printf(&b, "%s%s", i ? "," : "", merged.v[i]);
		csv_eps = b.p ? b.p : strdup("");
		b = (struct lsc_buf){0};
		for (i = 0; i < req.routes.n; i++)
			lsc_buf_printf(&b, "%s%s", i ? "," : "", req.routes.v[i]);
		csv_rts = b.p ? b.p : strdup("");
	}
	if (strcmp(csv_eps, nc.endpoints) || lport != nc.listen_port ||
	    (req.has_routes && strcmp(csv_rts, nc.routes))) {
		struct lsc_strv old = {0}, all = {0};
		PGresult *res;

		db = lsc_db(r);
		if (!db)
			goto out;
		eps = lsc_array_literal((const char *const *)merged.v, merged.n);
		rts = req.has_routes ? lsc_array_literal((const char *const *)req.routes.v, req.routes.n)
				     : NULL;
		/* every node sharing an old or new prefix may change primary */
		lsc_strv_split(&old, nc.routes);
		for (i = 0; i < old.n; i++)
			lsc_strv_add_unique(&all, old.v[i]);
		for (i = 0; req.has_routes && i < req.routes.n; i++)
			lsc_strv_add_unique(&all, req.routes.v[i]);
		union_routes = lsc_array_literal((const char *const *)all.v, all.n);
		lsc_strv_free(&old);
		lsc_strv_free(&all);
		if (!eps || (req.has_routes && !rts) || !union_routes)
			goto oom;
		if (!begin(r, db))
			goto out;
		snprintf(idbuf, sizeof(idbuf), "%" PRId64, nc.id);
		snprintf(port, sizeof(port), "%d", lport);
		{
			const char *p[4] = {idbuf, eps, lport ? port : NULL, rts};

			res = query(r, db, "update node",
				    "UPDATE nodes SET endpoints = $2, listen_port = $3, "
				    "routes = coalesce($4::text[], routes), last_seen = now() WHERE id = $1",
				    4, p);
		}
		if (!res)
			goto out;
		PQclear(res);
		if (rts && auto_approve(r, db, nc.net_id, nc.id) < 0)
			goto out;
		version = bump_version(r, db, nc.net_id, nc.id, union_routes, false);
		if (version < 0)
			goto out;
		if (!commit(r, db))
			goto out;
	}
	lsc_reply_json(r, 200, json_pack("{s:b, s:s?, s:I}", "ok", 1, "observed",
					 observed[0] ? observed : NULL, "version", (json_int_t)version));
	goto out;
oom:
	lsc_reply_error(r, 500, LS_ERR_INTERNAL, "out of memory");
out:
	free(eps);
	free(rts);
	free(union_routes);
	free(csv_eps);
	free(csv_rts);
	lsc_strv_free(&merged);
	lsc_heartbeat_req_free(&req);
	node_ctx_free(&nc);
}

/* ---- netmap ---- */

static int query_int(const char *uri, const char *name, int64_t *out)
{
	const char *q = strchr(uri, '?');
	size_t nl = strlen(name);

	*out = 0;
	while (q && *q) {
		q++;
		if (!strncmp(q, name, nl) && q[nl] == '=') {
			const char *v = q + nl + 1;
			int64_t x = 0;
			int digits = 0;

			while (*v >= '0' && *v <= '9' && digits < 18) {
				x = x * 10 + (*v - '0');
				v++;
				digits++;
			}
			if (!digits || (*v && *v != '&'))
				return -EINVAL;
			*out = x;
			return 1;
		}
		q = strchr(q, '&');
	}
	return 0;
}

static void h_netmap(struct lsc_server *s, struct lsc_req *r)
{
	struct node_ctx nc;
	struct lsc_net *n;
	int64_t since, wait;
	int ret;

	if (query_int(r->uri, "since", &since) < 0 || query_int(r->uri, "wait", &wait) < 0) {
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST,
				"invalid query `%s' (since and wait are non-negative integers)",
				strchr(r->uri, '?'));
		return;
	}
	if (!auth_node(s, r, "GET", &nc))
		return;
	r->sign_reply = true; /* the map and a later long-poll answer are signed */
	n = lsc_net_find(s, nc.net_id, true);
	if (!n) {
		lsc_reply_error(r, 500, LS_ERR_INTERNAL, "out of memory");
		goto out;
	}
	if (!n->loaded || n->version < nc.version) {
		ret = lsc_net_sync(s, n);
		if (ret) {
			lsc_reply_error(r, ret == -ENOENT ? 404 : 503,
					ret == -ENOENT ? LS_ERR_UNKNOWN_NETWORK : LS_ERR_UNAVAILABLE,
					"cannot load the network: %s", strerror(-ret));
			goto out;
		}
	}
	lsc_netmap_request(s, r, n, nc.id, since, (int)(wait > 100000 ? 100000 : wait));
out:
	node_ctx_free(&nc);
}

/* ---- key rotation ---- */

static char *csv_literal(const char *csv);

/* POST /v1/rotate {"wg_key": NEW}, signed by the machine key: the node's WireGuard key
 * is replaced (and its expiry moved by the network's key lifetime); peers get the new key
 * at their next long-poll; the rotation enters the audit log. */
static void h_rotate(struct lsc_server *s, struct lsc_req *r)
{
	struct node_ctx nc;
	char err[512], key[64], idbuf[24], old[64] = "";
	const char *p[2] = {idbuf, key};
	PGresult *res = NULL;
	PGconn *db;
	char *routes = NULL;

	if (!auth_node(s, r, "POST", &nc))
		return;
	if (lsc_parse_rotate(r->body.p, r->body.len, key, err, sizeof(err))) {
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST, "%s", err);
		goto out;
	}
	db = lsc_db(r);
	if (!db || !begin(r, db))
		goto out;
	snprintf(idbuf, sizeof(idbuf), "%" PRId64, nc.id);
	res = query_row(r, db, "rotate",
			"SELECT wg_key FROM nodes WHERE id = $1::bigint FOR UPDATE", 1, p);
	if (!res)
		goto out;
	snprintf(old, sizeof(old), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	res = lsc_exec(db,
		       "UPDATE nodes SET wg_key = $2, expiry_noted = false, key_expiry = (SELECT now() + "
		       "make_interval(secs => key_lifetime) FROM networks WHERE networks.id = "
		       "nodes.network_id) WHERE id = $1::bigint",
		       2, p);
	if (!lsc_res_ok(db, res, "rotate")) {
		if (lsc_unique_violation(res)) {
			rollback(db);
			lsc_reply_error(r, 409, LS_ERR_BAD_KEY,
					"WireGuard key already used by another node of this network");
		} else {
			lsc_db_failed(r, res, "rotate");
		}
		goto out;
	}
	PQclear(res);
	res = NULL;
	routes = csv_literal(nc.routes);
	if (bump_version(r, db, nc.net_id, nc.id, routes, false) < 0)
		goto out;
	{
		json_t *ev = json_pack("{s:I, s:s, s:s, s:s}", "node", (json_int_t)nc.id, "network",
				       nc.net_id, "wg_key", key, "old_wg_key", old);

		if (audit(r, db, "rotate", ev) < 0 || !commit(r, db))
			goto out;
	}
	pr_info("node %" PRId64 " rotated its WireGuard key", nc.id);
	reply_registered(s, r, db, nc.id, 200);
out:
	PQclear(res);
	free(routes);
	node_ctx_free(&nc);
}

/* Publishes newly expired node keys: moves the version of their networks (logging them and
 * the nodes sharing their routes) so peers drop them at their next long-poll. Every server
 * runs it; the UPDATE makes each expiry published once. */
void lsc_expiry_sweep(struct lsc_server *s)
{
	static uint64_t next_cleanup_ms;
	PGresult *res;

	if (!s->db || PQstatus(s->db) != CONNECTION_OK || s->schema_version < 5)
		return;
	res = lsc_exec0(s->db,
			"WITH e AS (UPDATE nodes SET expiry_noted = true WHERE key_expiry <= now() "
			"  AND NOT expiry_noted RETURNING id, network_id, routes), "
			"v AS (UPDATE networks SET version = version + 1 "
			"  WHERE id IN (SELECT network_id FROM e) RETURNING id, version), "
			"ins AS (INSERT INTO changes (network_id, version, node_id) "
			"  SELECT DISTINCT v.id, v.version, n.id FROM e JOIN v ON v.id = e.network_id "
			"  JOIN nodes n ON n.network_id = e.network_id AND (n.id = e.id OR n.routes && e.routes) "
			"  ON CONFLICT DO NOTHING) "
			"SELECT v.id::text, pg_notify('" LSC_NOTIFY_CHANNEL "', v.id || ' ' || v.version) FROM v");
	if (lsc_res_ok(s->db, res, "expiry sweep") && PQntuples(res))
		pr_info("published node key expiries in %d network(s)", PQntuples(res));
	PQclear(res);
	if (s->schema_version >= 9 && ls_now_ms() >= next_cleanup_ms) {
		/* once a minute: approval-page sessions past their expiry; device requests nobody
		 * decided a day after their link expired (decided ones stay: a rejected key stays
		 * refused) */
		next_cleanup_ms = ls_now_ms() + 60000;
		PQclear(lsc_exec0(s->db, "DELETE FROM approval_sessions WHERE expires_at < now()"));
		PQclear(lsc_exec0(s->db, "DELETE FROM device_requests WHERE status = 'waiting' AND "
					 "expires_at < now() - interval '1 day'"));
	}
}

/* ---- audit log ---- */

static bool auth_admin(struct lsc_server *s, struct lsc_req *r, PGconn **dbp);

/* GET /v1/audit?since=N[&limit=M]: entries after N and the signed head. Admin key or a
 * signed node request. */
static void h_audit(struct lsc_server *s, struct lsc_req *r)
{
	int64_t since = 0, limit = 1000;
	char a[24], b[24];
	const char *p[2] = {a, b};
	PGresult *res;
	PGconn *db;
	json_t *entries, *head;
	int i;

	if (query_int(r->uri, "since", &since) < 0 || query_int(r->uri, "limit", &limit) < 0) {
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST,
				"invalid query `%s' (since and limit are non-negative integers)",
				strchr(r->uri, '?'));
		return;
	}
	if (limit <= 0 || limit > 10000)
		limit = 10000;
	if (lsc_req_header(r, "Authorization")) {
		if (!auth_admin(s, r, &db))
			return;
	} else {
		struct node_ctx nc;

		if (!auth_node(s, r, "GET", &nc))
			return;
		node_ctx_free(&nc);
		db = lsc_db(r);
		if (!db)
			return;
	}
	if (!s->have_identity) {
		lsc_reply_error(r, 503, LS_ERR_UNAVAILABLE, "this server has no identity key");
		return;
	}
	if (!lsc_exec_ok(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")) {
		lsc_db_failed(r, NULL, "begin");
		return;
	}
	snprintf(a, sizeof(a), "%" PRId64, since);
	snprintf(b, sizeof(b), "%" PRId64, limit);
	res = query(r, db, "audit",
		    "SELECT seq, time, type, data, encode(hash, 'hex') FROM audit_log "
		    "WHERE seq > $1::bigint ORDER BY seq LIMIT $2::bigint",
		    2, p);
	if (!res)
		return;
	entries = json_array();
	for (i = 0; i < PQntuples(res); i++)
		json_array_append_new(entries,
				      json_pack("{s:I, s:I, s:s, s:s, s:s}", "seq",
						(json_int_t)lsc_i64(res, i, 0), "time",
						(json_int_t)lsc_i64(res, i, 1), "type", PQgetvalue(res, i, 2),
						"data", PQgetvalue(res, i, 3), "hash",
						PQgetvalue(res, i, 4)));
	PQclear(res);
	head = lsc_audit_head(s, db);
	lsc_exec_ok(db, "COMMIT");
	if (!head) {
		json_decref(entries);
		lsc_reply_error(r, 503, LS_ERR_UNAVAILABLE, "cannot read the audit head");
		return;
	}
	lsc_reply_json(r, 200, json_pack("{s:o, s:o, s:b}", "entries", entries, "head", head,
					 "more", (json_int_t)json_array_size(entries) == limit));
}

/* ---- admin ---- */

static bool auth_admin(struct lsc_server *s, struct lsc_req *r, PGconn **dbp)
{
	const char *h = lsc_req_header(r, "Authorization");
	char hash[LS_SHA256_HEX_LEN + 1];
	const char *p[1] = {hash};
	PGresult *res;
	PGconn *db;
	bool ok;

	if (!h || strncmp(h, "Bearer ", 7) || !h[7]) {
		lsc_reply_error(r, 401, LS_ERR_BAD_ADMIN_KEY,
				"admin requests need `Authorization: Bearer <admin key>'");
		return false;
	}
	db = lsc_db(r);
	if (!db)
		return false;
	ls_sha256_hex(hash, h + 7, strlen(h + 7));
	res = query(r, db, "admin key",
		    s->schema_version >= 6
			    ? "UPDATE admin_keys SET last_used_at = now() WHERE hash = decode($1, 'hex') "
			      "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) "
			      "RETURNING substr(encode(hash, 'hex'), 1, 12)"
			    : "SELECT substr(encode(hash, 'hex'), 1, 12) FROM admin_keys "
			      "WHERE hash = decode($1, 'hex')",
		    1, p);
	if (!res)
		return false;
	ok = PQntuples(res) == 1;
	if (ok)
		snprintf(r->admin_id, sizeof(r->admin_id), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	if (!ok) {
		lsc_reply_error(r, 401, LS_ERR_BAD_ADMIN_KEY,
				"the admin key is not valid (unknown, revoked or expired)");
		return false;
	}
	*dbp = db;
	return true;
}

int lsc_admin_key_ensure(PGconn *db, const char *state_dir)
{
	char path[4200], key[80], hash[LS_SHA256_HEX_LEN + 1], *buf = NULL;
	const char *p[1] = {hash};
	uint8_t raw[32];
	PGresult *res;
	size_t len;
	int ret;

	snprintf(path, sizeof(path), "%s/admin.key", state_dir);
	if (ls_read_file(path, &buf, &len, 4096) == 0) {
		buf[strcspn(buf, "\r\n")] = '\0';
		snprintf(key, sizeof(key), "%s", buf);
		ls_memzero(buf, len);
		free(buf);
	} else {
		randombytes_buf(raw, sizeof(raw));
		strcpy(key, "lsa_");
		ls_hex_encode(key + 4, raw, sizeof(raw));
		ls_memzero(raw, sizeof(raw));
		strcat(key, "\n");
		ret = ls_write_file_atomic(path, key, strlen(key), 0600);
		key[strlen(key) - 1] = '\0';
		if (ret) {
			pr_err("cannot write %s: %s", path, strerror(-ret));
			return ret;
		}
		pr_info("wrote a new admin key to %s", path);
	}
	ls_sha256_hex(hash, key, strlen(key));
	ls_memzero(key, sizeof(key));
	res = lsc_exec(db, "INSERT INTO admin_keys (hash) VALUES (decode($1, 'hex')) ON CONFLICT DO NOTHING",
		       1, p);
	ret = lsc_res_ok(db, res, "admin key") ? 0 : -EIO;
	PQclear(res);
	return ret;
}

static bool find_network(struct lsc_req *r, PGconn *db, const char *name, char *id, size_t n)
{
	const char *p[1] = {name};
	PGresult *res = query(r, db, "find network",
			      "SELECT id::text FROM networks WHERE name = $1", 1, p);

	if (!res)
		return false;
	if (PQntuples(res) != 1) {
		PQclear(res);
		lsc_reply_error(r, 404, LS_ERR_UNKNOWN_NETWORK, "no network named `%.64s'", name);
		return false;
	}
	snprintf(id, n, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return true;
}

static void a_network_create(struct lsc_server *s, struct lsc_req *r, PGconn *db)
{
	struct lsc_network_req req;
	char err[512], idtxt[37], v4s[LS_PREFIX_STRLEN], v6s[LS_PREFIX_STRLEN], *suffix = NULL;
	uint8_t id[16];
	PGresult *res = NULL;
	unsigned attempt;

	if (lsc_parse_network(r->body.p, r->body.len, &req, err, sizeof(err))) {
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST, "%s", err);
		return;
	}
	if (!begin(r, db))
		goto out;
	if (!lsc_exec_ok(db, "SELECT pg_advisory_xact_lock(7271002)")) {
		lsc_db_failed(r, NULL, "lock");
		goto out;
	}
	{
		const char *p[1] = {req.name};

		res = query(r, db, "find network", "SELECT 1 FROM networks WHERE name = $1", 1, p);
		if (!res)
			goto out;
		if (PQntuples(res)) {
			rollback(db);
			lsc_reply_error(r, 409, LS_ERR_NETWORK_EXISTS, "network `%s' already exists",
					req.name);
			goto out;
		}
		PQclear(res);
		res = NULL;
	}
	lsc_uuid_random(id);
	lsc_uuid_format(id, idtxt);
	/* deterministic prefixes from the id; an overlap with another network probes on */
	for (attempt = 0; !req.has_ipv4 || !req.has_ipv6; attempt++) {
		struct ls_prefix c4, c6;
		const char *p[2] = {v4s, v6s};
		bool t4, t6;

		if (attempt > 1024) {
			rollback(db);
			lsc_reply_error(r, 409, LS_ERR_BAD_REQUEST,
					"no free overlay prefix left in 100.64.0.0/10; give --ipv4");
			goto out;
		}
		lsc_derive_ipv4(id, attempt, &c4);
		lsc_derive_ipv6(id, attempt, &c6);
		ls_prefix_format(req.has_ipv4 ? &req.ipv4 : &c4, v4s);
		ls_prefix_format(req.has_ipv6 ? &req.ipv6 : &c6, v6s);
		res = query(r, db, "prefix overlap",
			    "SELECT EXISTS (SELECT 1 FROM networks WHERE ipv4 && $1::cidr), "
			    "EXISTS (SELECT 1 FROM networks WHERE ipv6 && $2::cidr)",
			    2, p);
		if (!res)
			goto out;
		t4 = PQgetvalue(res, 0, 0)[0] == 't';
		t6 = PQgetvalue(res, 0, 1)[0] == 't';
		PQclear(res);
		res = NULL;
		if (!req.has_ipv4 && !t4) {
			req.ipv4 = c4;
			req.has_ipv4 = true;
		}
		if (!req.has_ipv6 && !t6) {
			req.ipv6 = c6;
			req.has_ipv6 = true;
		}
	}
	ls_prefix_format(&req.ipv4, v4s);
	ls_prefix_format(&req.ipv6, v6s);
	if (req.dns_suffix)
		suffix = strdup(req.dns_suffix);
	else if (asprintf(&suffix, "%s.ls.internal", req.name) < 0)
		suffix = NULL;
	{
		const char *p[7] = {idtxt, req.name, v4s, v6s, suffix,
				    req.require_approval > 0 ? "t" : "f",
				    req.route_approval > 0 ? "t" : "f"};

		res = lsc_exec(db,
			       "INSERT INTO networks (id, name, ipv4, ipv6, dns_suffix, require_approval, "
			       "route_approval) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING " NETWORK_COLS,
			       7, p);
	}
	if (!lsc_res_ok(db, res, "insert network")) {
		if (lsc_unique_violation(res)) {
			rollback(db);
			lsc_reply_error(r, 409, LS_ERR_NETWORK_EXISTS, "network `%s' already exists",
					req.name);
		} else {
			lsc_db_failed(r, res, "insert network");
		}
		goto out;
	}
	{
		json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "network", idtxt, "name",
				       req.name, "ipv4", v4s, "ipv6", v6s, "require_approval",
				       req.require_approval > 0, "route_approval", req.route_approval > 0);

		if (audit(r, db, "network_create", ev) < 0 || !commit(r, db))
			goto out;
	}
	pr_info("created network `%s' %s %s %s", req.name, idtxt, v4s, v6s);
	lsc_reply_json(r, 201, network_json(res, 0));
out:
	PQclear(res);
	free(suffix);
	lsc_network_req_free(&req);
}

static void a_network_list(struct lsc_server *s, struct lsc_req *r, PGconn *db)
{
	PGresult *res = query(r, db, "list networks",
			      "SELECT " NETWORK_COLS ", "
			      "(SELECT count(*) FROM nodes WHERE nodes.network_id = networks.id) "
			      "FROM networks ORDER BY name",
			      0, NULL);
	json_t *a;
	int i;

	if (!res)
		return;
	a = json_array();
	for (i = 0; i < PQntuples(res); i++) {
		json_t *j = network_json(res, i);

		json_object_set_new(j, "nodes", json_integer(lsc_i64(res, i, NETWORK_NCOLS)));
		json_array_append_new(a, j);
	}
	PQclear(res);
	lsc_reply_json(r, 200, json_pack("{s:o}", "networks", a));
}

static void a_network_show(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *name)
{
	const char *p[1] = {name};
	PGresult *res = query(r, db, "show network",
			      "SELECT " NETWORK_COLS ", "
			      "(SELECT count(*) FROM nodes WHERE nodes.network_id = networks.id), "
			      "(SELECT count(*) FROM tokens WHERE tokens.network_id = networks.id "
			      "  AND revoked_at IS NULL AND expires_at > now() AND uses < max_uses) "
			      "FROM networks WHERE name = $1",
			      1, p);
	json_t *j;

	if (!res)
		return;
	if (PQntuples(res) != 1) {
		PQclear(res);
		lsc_reply_error(r, 404, LS_ERR_UNKNOWN_NETWORK, "no network named `%.64s'", name);
		return;
	}
	j = network_json(res, 0);
	json_object_set_new(j, "nodes", json_integer(lsc_i64(res, 0, NETWORK_NCOLS)));
	json_object_set_new(j, "valid_tokens", json_integer(lsc_i64(res, 0, NETWORK_NCOLS + 1)));
	PQclear(res);
	lsc_reply_json(r, 200, j);
}

static void a_token_create(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *name)
{
	struct lsc_token_req req;
	char err[512], net_id[40], secret[LS_SHA256_HEX_LEN + 8], hash[LS_SHA256_HEX_LEN + 1];
	char id[20], ttl[24], uses[24], *tags = NULL;
	uint8_t raw[32], rid[6];
	PGresult *res = NULL;

	if (lsc_parse_token(r->body.p, r->body.len, &req, err, sizeof(err))) {
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST, "%s", err);
		return;
	}
	if (!find_network(r, db, name, net_id, sizeof(net_id)))
		goto out;
	randombytes_buf(raw, sizeof(raw)); /* 256 bits */
	strcpy(secret, LS_TOKEN_PREFIX);
	ls_hex_encode(secret + strlen(LS_TOKEN_PREFIX), raw, sizeof(raw));
	ls_memzero(raw, sizeof(raw));
	ls_sha256_hex(hash, secret, strlen(secret));
	randombytes_buf(rid, sizeof(rid));
	ls_hex_encode(id, rid, sizeof(rid));
	snprintf(ttl, sizeof(ttl), "%" PRId64, req.ttl);
	snprintf(uses, sizeof(uses), "%" PRId64, req.uses);
	tags = lsc_array_literal((const char *const *)req.tags.v, req.tags.n);
	if (!begin(r, db))
		goto out;
	{
		const char *p[6] = {id, net_id, hash, ttl, uses, tags};

		res = query_row(r, db, "insert token",
				"WITH t AS (INSERT INTO tokens (id, network_id, hash, expires_at, "
				"max_uses, tags) VALUES ($1, $2, decode($3, 'hex'), "
				"now() + make_interval(secs => $4::bigint), $5, $6) RETURNING *) "
				"SELECT " TOKEN_COLS " FROM t AS tokens JOIN networks ON "
				"networks.id = tokens.network_id",
				6, p);
	}
	if (!res)
		goto out;
	{
		json_t *ev = json_pack("{s:s, s:s, s:I, s:I, s:s}", "token", id, "network", net_id,
				       "uses", (json_int_t)req.uses, "ttl", (json_int_t)req.ttl, "tags", tags);

		if (audit(r, db, "token_create", ev) < 0 || !commit(r, db))
			goto out;
	}
	{
		json_t *j = token_json(res, 0);

		json_object_set_new(j, "token", json_string(secret));
		if (s->have_identity) {
			/* the enrollment string: the token, the identity key and the servers' endorsed
			 * TLS pins, so a new node trusts exactly this deployment */
			PGresult *pr = s->schema_version >= 4
					       ? lsc_exec0(db, "SELECT pin FROM tls_pins WHERE not_after > "
							       "extract(epoch from now()) ORDER BY created_at, pin")
					       : NULL;
			json_t *pins = json_array();
			struct lsc_buf eb = {0};
			int i;

			lsc_buf_printf(&eb, "%s@%s@", secret, s->identity_b64);
			for (i = 0; pr && PQresultStatus(pr) == PGRES_TUPLES_OK && i < PQntuples(pr); i++) {
				json_array_append_new(pins, json_string(PQgetvalue(pr, i, 0)));
				lsc_buf_printf(&eb, "%s%s", i ? "," : "", PQgetvalue(pr, i, 0));
			}
			PQclear(pr);
			json_object_set_new(j, "identity", json_string(s->identity_b64));
			json_object_set_new(j, "pins", pins);
			if (!eb.oom)
				json_object_set_new(j, "enroll", json_string(eb.p));
			if (eb.p)
				ls_memzero(eb.p, eb.len);
			lsc_buf_free(&eb);
		}
		lsc_reply_json(r, 201, j);
	}
	pr_info("created enrollment token %s for network `%s'", id, name);
out:
	ls_memzero(secret, sizeof(secret));
	PQclear(res);
	free(tags);
	lsc_token_req_free(&req);
}

static void a_token_list(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *name)
{
	char net_id[40];
	const char *p[1] = {net_id};
	PGresult *res;
	json_t *a;
	int i;

	if (!find_network(r, db, name, net_id, sizeof(net_id)))
		return;
	res = query(r, db, "list tokens",
		    "SELECT " TOKEN_COLS " FROM tokens JOIN networks ON networks.id = tokens.network_id "
		    "WHERE tokens.network_id = $1::uuid ORDER BY tokens.created_at, tokens.id",
		    1, p);
	if (!res)
		return;
	a = json_array();
	for (i = 0; i < PQntuples(res); i++)
		json_array_append_new(a, token_json(res, i));
	PQclear(res);
	lsc_reply_json(r, 200, json_pack("{s:o}", "tokens", a));
}

static void a_token_revoke(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *id)
{
	const char *p[1] = {id};
	PGresult *res;

	if (!begin(r, db))
		return;
	res = query(r, db, "revoke token",
		    "WITH t AS (UPDATE tokens SET revoked_at = coalesce(revoked_at, now()) "
		    "WHERE id = $1 RETURNING *) SELECT " TOKEN_COLS
		    " FROM t AS tokens JOIN networks ON networks.id = tokens.network_id",
		    1, p);
	if (!res)
		return;
	if (PQntuples(res) != 1) {
		PQclear(res);
		rollback(db);
		lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no token `%.64s'", id);
		return;
	}
	{
		json_t *ev = json_pack("{s:s}", "token", id);

		if (audit(r, db, "token_revoke", ev) < 0 || !commit(r, db)) {
			PQclear(res);
			return;
		}
	}
	pr_info("revoked enrollment token %s", id);
	lsc_reply_json(r, 200, token_json(res, 0));
	PQclear(res);
}

static void a_node_list(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *name)
{
	char net_id[40];
	PGresult *res = NULL;
	json_t *a;
	int i;

	if (!find_network(r, db, name, net_id, sizeof(net_id)))
		return;
	if (select_node(r, db, "nodes.network_id = $1::uuid ORDER BY nodes.id", net_id, &res))
		return;
	a = json_array();
	for (i = 0; i < PQntuples(res); i++)
		json_array_append_new(a, node_admin_json(s, res, i));
	PQclear(res);
	lsc_reply_json(r, 200, json_pack("{s:o}", "nodes", a));
}

static bool valid_id(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 18)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static void a_node_show(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *id)
{
	PGresult *res = NULL;

	if (!valid_id(id)) {
		lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no node `%.64s'", id);
		return;
	}
	if (select_node(r, db, "nodes.id = $1::bigint", id, &res))
		return;
	if (PQntuples(res) != 1)
		lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no node %s", id);
	else
		lsc_reply_json(r, 200, node_admin_json(s, res, 0));
	PQclear(res);
}

/* Begins a transaction and locks node id's row: 0 with the row (NODE_ADMIN_COLS) in *res,
 * or -1 after a reply (404 for no such node, the transaction rolled back). */
static int lock_node(struct lsc_req *r, PGconn *db, const char *id, PGresult **res)
{
	if (!begin(r, db))
		return -1;
	if (select_node(r, db, "nodes.id = $1::bigint FOR UPDATE OF nodes", id, res))
		return -1;
	if (PQntuples(*res) != 1) {
		PQclear(*res);
		*res = NULL;
		rollback(db);
		lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no node %s", id);
		return -1;
	}
	return 0;
}

static void reply_node(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *id)
{
	a_node_show(s, r, db, id);
}

static void a_node_delete(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *id)
{
	PGresult *res = NULL;
	char net_id[40], *routes = NULL;
	const char *p[1] = {id};
	json_t *j;

	if (!valid_id(id)) {
		lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no node `%.64s'", id);
		return;
	}
	if (lock_node(r, db, id, &res))
		return;
	j = node_admin_json(s, res, 0);
	snprintf(net_id, sizeof(net_id), "%s", PQgetvalue(res, 0, 17));
	{
		struct lsc_strv v;

		if (!lsc_strv_split(&v, PQgetvalue(res, 0, 9))) {
			routes = lsc_array_literal((const char *const *)v.v, v.n);
			lsc_strv_free(&v);
		}
	}
	PQclear(res);
	res = query(r, db, "delete node", "DELETE FROM nodes WHERE id = $1::bigint", 1, p);
	if (!res)
		goto out;
	if (bump_version(r, db, net_id, strtoll(id, NULL, 10), routes, true) < 0)
		goto out;
	{
		json_t *ev = json_pack("{s:I, s:s}", "node", (json_int_t)strtoll(id, NULL, 10),
				       "network", net_id);

		if (audit(r, db, "node_delete", ev) < 0 || !commit(r, db))
			goto out;
	}
	pr_info("deleted node %s", id);
	lsc_reply_json(r, 200, j);
	j = NULL;
out:
	json_decref(j);
	PQclear(res);
	free(routes);
}


/* ---- trust: approval, revocation, routes, network settings, ACL ---- */

#define LSC_ERR_CONFLICT "conflict"
#define LSC_ERR_BAD_POLICY "bad_policy"

/* Moves the network's version and its log floor: every client gets a full map next (a
 * network-wide change: policy, route approval). Returns the new version or -1. */
static int64_t bump_all(struct lsc_req *r, PGconn *db, const char *net_id)
{
	const char *p[1] = {net_id};
	PGresult *res;
	int64_t v;

	res = query_row(r, db, "bump network",
			"WITH v AS (UPDATE networks SET version = version + 1, log_floor = version + 1, "
			"  net_version = version + 1, dns_version = version + 1 "
			"  WHERE id = $1::uuid RETURNING version) "
			"SELECT version, pg_notify('" LSC_NOTIFY_CHANNEL "', $1 || ' ' || version) FROM v",
			1, p);
	if (!res)
		return -1;
	v = lsc_i64(res, 0, 0);
	PQclear(res);
	return v;
}

/* "{a,b}" literal of a csv list */
static char *csv_literal(const char *csv)
{
	struct lsc_strv v;
	char *lit;

	if (lsc_strv_split(&v, csv))
		return NULL;
	lit = lsc_array_literal((const char *const *)v.v, v.n);
	lsc_strv_free(&v);
	return lit;
}

void lsc_api_node_status(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *id,
			  enum node_action act)
{
	static const char *const to[] = {"active", "rejected", "revoked"};
	static const char *const verb[] = {"approve", "reject", "revoke"};
	PGresult *res = NULL;
	char net_id[40], status[16], vbuf[24], *routes = NULL;
	const char *p[3];
	int64_t v;

	if (!valid_id(id)) {
		lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no node `%.64s'", id);
		return;
	}
	if (lock_node(r, db, id, &res))
		return;
	snprintf(net_id, sizeof(net_id), "%s", PQgetvalue(res, 0, 17));
	snprintf(status, sizeof(status), "%s", PQgetvalue(res, 0, 12));
	routes = csv_literal(PQgetvalue(res, 0, 9));
	PQclear(res);
	res = NULL;
	if (!strcmp(status, to[act])) { /* already there: nothing changes */
		rollback(db);
		reply_node(s, r, db, id);
		goto out;
	}
	if ((act == ACT_APPROVE || act == ACT_REJECT) && strcmp(status, "pending")) {
		rollback(db);
		lsc_reply_error(r, 409, LSC_ERR_CONFLICT, "node %s is %s, not pending: cannot %s it%s",
				id, status, verb[act], act == ACT_REJECT ? " (revoke it instead)" : "");
		goto out;
	}
	p[0] = id;
	p[1] = to[act];
	res = query(r, db, "set node status",
		    "UPDATE nodes SET status = $2 WHERE id = $1::bigint", 2, p);
	if (!res)
		goto out;
	PQclear(res);
	res = NULL;
	v = bump_version(r, db, net_id, strtoll(id, NULL, 10), routes, true);
	if (v < 0)
		goto out;
	snprintf(vbuf, sizeof(vbuf), "%" PRId64, v);
	p[1] = vbuf;
	res = query(r, db, "set status version",
		    "UPDATE nodes SET status_version = $2::bigint WHERE id = $1::bigint", 2, p);
	if (!res)
		goto out;
	{
		json_t *ev = json_pack("{s:I, s:s, s:s}", "node", (json_int_t)strtoll(id, NULL, 10),
				       "network", net_id, "from", status);

		if (audit(r, db, verb[act], ev) < 0 || !commit(r, db))
			goto out;
	}
	pr_info("node %s: %s -> %s", id, status, to[act]);
	reply_node(s, r, db, id);
out:
	PQclear(res);
	free(routes);
}

/* approve (add to approved_routes) or reject (remove) routes of a node */
static void a_node_routes(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *id,
			  bool approve)
{
	struct lsc_strv want = {0}, adv = {0};
	PGresult *res = NULL;
	char err[512], net_id[40], *lit = NULL;
	const char *p[2];
	size_t i, j;

	if (!valid_id(id)) {
		lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no node `%.64s'", id);
		return;
	}
	if (lsc_parse_routes(r->body.p, r->body.len, &want, err, sizeof(err))) {
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST, "%s", err);
		return;
	}
	if (lock_node(r, db, id, &res))
		goto out;
	snprintf(net_id, sizeof(net_id), "%s", PQgetvalue(res, 0, 17));
	if (lsc_strv_split(&adv, PQgetvalue(res, 0, 9))) {
		rollback(db);
		lsc_reply_error(r, 500, LS_ERR_INTERNAL, "out of memory");
		goto out;
	}
	PQclear(res);
	res = NULL;
	if (approve) {
		for (i = 0; i < want.n; i++) {
			for (j = 0; j < adv.n && strcmp(adv.v[j], want.v[i]); j++)
				;
			if (j == adv.n) {
				rollback(db);
				lsc_reply_error(r, 409, LSC_ERR_CONFLICT,
						"node %s does not advertise `%s'", id, want.v[i]);
				goto out;
			}
		}
	}
	lit = lsc_array_literal((const char *const *)want.v, want.n);
	p[0] = id;
	p[1] = lit;
	res = query(r, db, "approve routes",
		    approve ? "UPDATE nodes SET approved_routes = ARRAY(SELECT DISTINCT unnest("
			      "approved_routes || $2::text[]) ORDER BY 1) WHERE id = $1::bigint"
			    : "UPDATE nodes SET approved_routes = ARRAY(SELECT unnest(approved_routes) "
			      "EXCEPT SELECT unnest($2::text[]) ORDER BY 1) WHERE id = $1::bigint",
		    2, p);
	if (!res)
		goto out;
	PQclear(res);
	res = NULL;
	if (bump_version(r, db, net_id, strtoll(id, NULL, 10), lit, false) < 0)
		goto out;
	{
		json_t *ev = json_pack("{s:I, s:s}", "node", (json_int_t)strtoll(id, NULL, 10),
				       "network", net_id);
		json_t *a = json_array();

		for (i = 0; i < want.n; i++)
			json_array_append_new(a, json_string(want.v[i]));
		json_object_set_new(ev, "routes", a);
		if (audit(r, db, approve ? "route_approve" : "route_reject", ev) < 0 || !commit(r, db))
			goto out;
	}
	pr_info("node %s: routes %s %s", id, lit, approve ? "approved" : "rejected");
	reply_node(s, r, db, id);
out:
	PQclear(res);
	free(lit);
	lsc_strv_free(&want);
	lsc_strv_free(&adv);
}

static void a_route_list(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *name)
{
	char net_id[40];
	const char *p[1] = {net_id};
	PGresult *res;
	json_t *a;
	int i;

	if (!find_network(r, db, name, net_id, sizeof(net_id)))
		return;
	res = query(r, db, "list routes",
		    "SELECT nodes.id, nodes.name, rt, rt = ANY(nodes.approved_routes), "
		    "  networks.route_approval, nodes.status "
		    "FROM nodes JOIN networks ON networks.id = nodes.network_id, unnest(nodes.routes) rt "
		    "WHERE nodes.network_id = $1::uuid ORDER BY rt COLLATE \"C\", nodes.id",
		    1, p);
	if (!res)
		return;
	a = json_array();
	for (i = 0; i < PQntuples(res); i++) {
		bool approved = PQgetvalue(res, i, 3)[0] == 't';
		bool need = PQgetvalue(res, i, 4)[0] == 't';
		const char *pfx = PQgetvalue(res, i, 2);

		json_array_append_new(
			a, json_pack("{s:I, s:s, s:s, s:b, s:b, s:b}", "node",
				     (json_int_t)lsc_i64(res, i, 0), "name", PQgetvalue(res, i, 1), "prefix",
				     pfx, "approved", approved, "effective",
				     (approved || !need) && !strcmp(PQgetvalue(res, i, 5), "active"),
				     "exit", !strcmp(pfx, "0.0.0.0/0") || !strcmp(pfx, "::/0")));
	}
	PQclear(res);
	lsc_reply_json(r, 200, json_pack("{s:o}", "routes", a));
}

static void a_network_set(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *name)
{
	struct lsc_network_set_req req;
	char err[512], net_id[40], lt[24];
	const char *p[4];
	PGresult *res = NULL;

	if (lsc_parse_network_set(r->body.p, r->body.len, &req, err, sizeof(err))) {
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST, "%s", err);
		return;
	}
	if (!begin(r, db))
		return;
	if (!find_network(r, db, name, net_id, sizeof(net_id))) {
		rollback(db);
		return;
	}
	p[0] = net_id;
	p[1] = req.require_approval < 0 ? NULL : req.require_approval ? "t" : "f";
	p[2] = req.route_approval < 0 ? NULL : req.route_approval ? "t" : "f";
	snprintf(lt, sizeof(lt), "%" PRId64, req.key_lifetime);
	p[3] = req.key_lifetime < 0 ? NULL : lt;
	res = query(r, db, "set network",
		    "UPDATE networks SET require_approval = coalesce($2::boolean, require_approval), "
		    "route_approval = coalesce($3::boolean, route_approval), "
		    "key_lifetime = CASE WHEN $4::bigint IS NULL THEN key_lifetime "
		    "  WHEN $4::bigint = 0 THEN NULL ELSE $4::bigint END WHERE id = $1::uuid",
		    4, p);
	if (!res)
		goto out;
	PQclear(res);
	res = NULL;
	if (bump_all(r, db, net_id) < 0)
		goto out;
	{
		json_t *ev = json_pack("{s:s, s:s}", "network", net_id, "name", name);

		if (req.require_approval >= 0)
			json_object_set_new(ev, "require_approval", json_boolean(req.require_approval));
		if (req.route_approval >= 0)
			json_object_set_new(ev, "route_approval", json_boolean(req.route_approval));
		if (req.key_lifetime >= 0)
			json_object_set_new(ev, "key_lifetime", json_integer(req.key_lifetime));
		if (audit(r, db, "network_set", ev) < 0 || !commit(r, db))
			goto out;
	}
	a_network_show(s, r, db, name);
out:
	PQclear(res);
}

static void a_acl_get(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *name)
{
	const char *p[1] = {name};
	PGresult *res = query(r, db, "get acl",
			      "SELECT acl_policy FROM networks WHERE name = $1", 1, p);
	json_t *pol = NULL;

	if (!res)
		return;
	if (PQntuples(res) != 1) {
		PQclear(res);
		lsc_reply_error(r, 404, LS_ERR_UNKNOWN_NETWORK, "no network named `%.64s'", name);
		return;
	}
	if (!PQgetisnull(res, 0, 0))
		pol = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	PQclear(res);
	lsc_reply_json(r, 200, json_pack("{s:s, s:o}", "network", name, "policy",
					 pol ? pol : json_null()));
}

/* PUT: validate and store; DELETE: back to allow-all */
static void a_acl_set(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *name,
		      bool remove)
{
	struct ls_acl_policy *pol = NULL;
	char err[512], net_id[40], *text = NULL;
	const char *p[2];
	PGresult *res = NULL;
	json_t *doc = NULL;

	if (!remove) {
		json_error_t je;

		doc = json_loadb(r->body.p ? r->body.p : "", r->body.len, JSON_REJECT_DUPLICATES, &je);
		if (!doc || !json_is_object(doc)) {
			lsc_reply_error(r, 400, LSC_ERR_BAD_POLICY, "policy: %s",
					doc ? "not a JSON object" : je.text);
			goto out;
		}
		if (ls_acl_parse_json(doc, &pol, err, sizeof(err))) {
			lsc_reply_error(r, 400, LSC_ERR_BAD_POLICY, "policy: %s", err);
			goto out;
		}
		text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
		if (!text) {
			lsc_reply_error(r, 500, LS_ERR_INTERNAL, "out of memory");
			goto out;
		}
	}
	if (!begin(r, db))
		goto out;
	if (!find_network(r, db, name, net_id, sizeof(net_id))) {
		rollback(db);
		goto out;
	}
	p[0] = net_id;
	p[1] = text;
	res = query(r, db, "set acl",
		    "UPDATE networks SET acl_policy = $2 WHERE id = $1::uuid", 2, p);
	if (!res)
		goto out;
	PQclear(res);
	res = NULL;
	if (!remove && auto_approve(r, db, net_id, 0) < 0)
		goto out;
	if (bump_all(r, db, net_id) < 0)
		goto out;
	{
		uint8_t h[32];
		char hex[65];
		json_t *ev;

		crypto_hash_sha256(h, (const uint8_t *)(text ? text : ""), text ? strlen(text) : 0);
		ls_hex_encode(hex, h, sizeof(h));
		ev = json_pack("{s:s, s:s, s:s?}", "network", net_id, "name", name, "policy_sha256",
			       text ? hex : NULL);
		if (audit(r, db, "acl", ev) < 0 || !commit(r, db))
			goto out;
	}
	pr_info("network `%s': ACL policy %s", name, remove ? "removed (allow all)" : "set");
	a_acl_get(s, r, db, name);
out:
	PQclear(res);
	free(text);
	json_decref(doc);
	ls_acl_policy_free(pol);
}

struct acl_test_node {
	struct ls_acl_node n;
	struct ls_prefix addrs[2], routes[LSC_MAX_ROUTES];
	struct lsc_strv tags;
	char name[80];
};

/* a node of the network by id or name */
static int acl_test_load(struct lsc_req *r, PGconn *db, const char *net_id, const char *sel,
			 struct acl_test_node *t)
{
	const char *p[2] = {net_id, sel};
	struct lsc_strv rt = {0};
	PGresult *res;
	size_t i;

	memset(t, 0, sizeof(*t));
	res = query(r, db, "acl test node",
		    "SELECT nodes.id, nodes.name, host(nodes.ipv4), host(nodes.ipv6), "
		    "array_to_string(nodes.tags, ','), array_to_string(CASE WHEN "
		    "networks.route_approval THEN ARRAY(SELECT unnest(nodes.routes) INTERSECT "
		    "SELECT unnest(nodes.approved_routes)) ELSE nodes.routes END, ',') "
		    "FROM nodes JOIN networks ON networks.id = nodes.network_id "
		    "WHERE nodes.network_id = $1::uuid AND (nodes.name = $2 OR nodes.id::text = $2)",
		    2, p);
	if (!res)
		return -EIO;
	if (PQntuples(res) != 1) {
		PQclear(res);
		lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no node `%.64s' in this network", sel);
		return -ENOENT;
	}
	t->n.id = lsc_i64(res, 0, 0);
	snprintf(t->name, sizeof(t->name), "%s", PQgetvalue(res, 0, 1));
	t->n.name = t->name;
	ls_prefix_parse(PQgetvalue(res, 0, 2), &t->addrs[0], true);
	ls_prefix_parse(PQgetvalue(res, 0, 3), &t->addrs[1], true);
	t->n.addrs = t->addrs;
	t->n.n_addrs = 2;
	lsc_strv_split(&t->tags, PQgetvalue(res, 0, 4));
	t->n.tags = (const char *const *)t->tags.v;
	t->n.n_tags = t->tags.n;
	lsc_strv_split(&rt, PQgetvalue(res, 0, 5));
	for (i = 0; i < rt.n && t->n.n_routes < LSC_MAX_ROUTES; i++)
		if (!ls_prefix_parse(rt.v[i], &t->routes[t->n.n_routes], false))
			t->n.n_routes++;
	t->n.routes = t->routes;
	lsc_strv_free(&rt);
	PQclear(res);
	return 0;
}

/* POST .../acl-test {"src": NODE, "dst": NODE, "port": N, "proto": "tcp"} */
static void a_acl_test(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *name)
{
	struct acl_test_node *src = NULL, *dst = NULL;
	struct ls_acl_policy *pol = NULL;
	enum ls_acl_proto proto = LS_ACL_PROTO_ANY;
	char net_id[40];
	const char *p[1] = {net_id}, *ssrc, *sdst, *sproto = "any";
	PGresult *res = NULL;
	json_t *doc, *jp;
	json_int_t port = 0;
	int rule = -1;
	bool allowed, visible;

	doc = json_loadb(r->body.p ? r->body.p : "", r->body.len, JSON_REJECT_DUPLICATES, NULL);
	ssrc = json_string_value(json_object_get(doc, "src"));
	sdst = json_string_value(json_object_get(doc, "dst"));
	jp = json_object_get(doc, "port");
	if (json_object_get(doc, "proto"))
		sproto = json_string_value(json_object_get(doc, "proto"));
	if (!doc || !ssrc || !sdst || (jp && !json_is_integer(jp)) || !sproto) {
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST,
				"want {\"src\": NODE, \"dst\": NODE, \"port\": N, \"proto\": PROTO}");
		goto out;
	}
	port = jp ? json_integer_value(jp) : 0;
	if (port < 0 || port > 65535 || ls_acl_proto_parse(sproto, &proto)) {
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST, "invalid port %lld or protocol `%.16s'",
				(long long)port, sproto);
		goto out;
	}
	if (!find_network(r, db, name, net_id, sizeof(net_id)))
		goto out;
	res = query_row(r, db, "acl",
			"SELECT coalesce(acl_policy, '') FROM networks WHERE id = $1::uuid", 1, p);
	if (!res)
		goto out;
	if (PQgetvalue(res, 0, 0)[0] &&
	    ls_acl_parse(PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)), &pol, NULL, 0)) {
		lsc_reply_error(r, 500, LS_ERR_INTERNAL, "the stored policy does not parse");
		goto out;
	}
	src = calloc(1, sizeof(*src));
	dst = calloc(1, sizeof(*dst));
	if (!src || !dst) {
		lsc_reply_error(r, 500, LS_ERR_INTERNAL, "out of memory");
		goto out;
	}
	if (acl_test_load(r, db, net_id, ssrc, src) || acl_test_load(r, db, net_id, sdst, dst))
		goto out;
	allowed = ls_acl_allows(pol, &src->n, &dst->n, NULL, (uint16_t)port, proto, &rule);
	visible = ls_acl_visible(pol, &src->n, &dst->n);
	lsc_reply_json(r, 200,
		       json_pack("{s:s, s:s, s:I, s:s, s:b, s:o, s:b, s:b}", "src", src->name, "dst",
				 dst->name, "port", port, "proto", ls_acl_proto_name(proto), "allowed",
				 allowed, "rule", allowed && rule >= 0 ? json_integer(rule) : json_null(),
				 "visible", visible, "policy", pol != NULL));
out:
	if (src)
		lsc_strv_free(&src->tags);
	if (dst)
		lsc_strv_free(&dst->tags);
	free(src);
	free(dst);
	PQclear(res);
	json_decref(doc);
	ls_acl_policy_free(pol);
}

/* ---- admin keys ---- */

#define ADMIN_KEY_COLS                                                                       \
	"substr(encode(hash, 'hex'), 1, 12), name, extract(epoch from created_at)::bigint, "  \
	"coalesce(extract(epoch from expires_at)::bigint, 0), revoked_at IS NOT NULL, "       \
	"coalesce(extract(epoch from last_used_at)::bigint, 0), "                            \
	"expires_at IS NOT NULL AND expires_at <= now()"

static json_t *admin_key_json(struct lsc_req *r, PGresult *res, int i)
{
	bool revoked = PQgetvalue(res, i, 4)[0] == 't', expired = PQgetvalue(res, i, 6)[0] == 't';

	return json_pack("{s:s, s:s, s:I, s:o, s:o, s:s, s:b}", "id", PQgetvalue(res, i, 0), "name",
			 PQgetvalue(res, i, 1), "created_at", (json_int_t)lsc_i64(res, i, 2), "expires_at",
			 lsc_i64(res, i, 3) ? json_integer(lsc_i64(res, i, 3)) : json_null(), "last_used_at",
			 lsc_i64(res, i, 5) ? json_integer(lsc_i64(res, i, 5)) : json_null(), "status",
			 revoked ? "revoked" : expired ? "expired" : "valid", "current",
			 !strcmp(PQgetvalue(res, i, 0), r->admin_id));
}

static void a_admin_key_list(struct lsc_server *s, struct lsc_req *r, PGconn *db)
{
	PGresult *res = query(r, db, "list admin keys",
			      "SELECT " ADMIN_KEY_COLS " FROM admin_keys ORDER BY created_at, hash",
			      0, NULL);
	json_t *a;
	int i;

	if (!res)
		return;
	a = json_array();
	for (i = 0; i < PQntuples(res); i++)
		json_array_append_new(a, admin_key_json(r, res, i));
	PQclear(res);
	lsc_reply_json(r, 200, json_pack("{s:o}", "admin_keys", a));
}

/* POST {"name": N?, "ttl": seconds?}: a new admin key, printed once */
static void a_admin_key_create(struct lsc_server *s, struct lsc_req *r, PGconn *db)
{
	json_t *doc = json_loadb(r->body.p ? r->body.p : "{}", r->body.p ? r->body.len : 2,
				 JSON_REJECT_DUPLICATES, NULL);
	json_t *jn = json_object_get(doc, "name"), *jt = json_object_get(doc, "ttl");
	const char *name = jn ? json_string_value(jn) : "admin";
	char key[80], hash[LS_SHA256_HEX_LEN + 1], ttl[24];
	const char *p[3] = {hash, name, NULL};
	uint8_t raw[32];
	PGresult *res = NULL;
	size_t i;

	if (!json_is_object(doc) || !name || (jt && (!json_is_integer(jt) || json_integer_value(jt) < 60 ||
						     json_integer_value(jt) > 10ll * 366 * 86400))) {
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST,
				"want {\"name\": STRING, \"ttl\": SECONDS (60 s .. 10 years)}");
		goto out;
	}
	for (i = 0; name[i]; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '-' || name[i] == '_') || i >= 64)
			break;
	if (!i || name[i]) {
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST,
				"invalid admin key name `%.64s' (1-64 of a-z, 0-9, '-', '_')", name);
		goto out;
	}
	if (jt) {
		snprintf(ttl, sizeof(ttl), "%lld", (long long)json_integer_value(jt));
		p[2] = ttl;
	}
	randombytes_buf(raw, sizeof(raw));
	strcpy(key, "lsa_");
	ls_hex_encode(key + 4, raw, sizeof(raw));
	ls_memzero(raw, sizeof(raw));
	ls_sha256_hex(hash, key, strlen(key));
	if (!begin(r, db))
		goto out;
	res = query_row(r, db, "create admin key",
			"INSERT INTO admin_keys (hash, name, expires_at) VALUES (decode($1, 'hex'), $2, "
			"now() + make_interval(secs => $3::bigint)) RETURNING " ADMIN_KEY_COLS,
			3, p);
	if (!res)
		goto out;
	{
		json_t *ev = json_pack("{s:s, s:s, s:s}", "id", PQgetvalue(res, 0, 0), "name", name, "by",
				       r->admin_id);

		if (audit(r, db, "admin_key_create", ev) < 0 || !commit(r, db))
			goto out;
	}
	{
		json_t *j = admin_key_json(r, res, 0);

		json_object_set_new(j, "key", json_string(key));
		lsc_reply_json(r, 201, j);
	}
out:
	ls_memzero(key, sizeof(key));
	PQclear(res);
	json_decref(doc);
}

static void a_admin_key_revoke(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *id)
{
	const char *p[1] = {id};
	PGresult *res;

	if (strlen(id) != 12 || strspn(id, "0123456789abcdef") != 12) {
		lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no admin key `%.64s'", id);
		return;
	}
	if (!begin(r, db))
		return;
	if (!lsc_exec_ok(db, "SELECT pg_advisory_xact_lock(7271004)")) {
		lsc_db_failed(r, NULL, "lock");
		return;
	}
	res = query(r, db, "revoke admin key",
		    "SELECT count(*) FILTER (WHERE substr(encode(hash, 'hex'), 1, 12) <> $1), "
		    "count(*) FILTER (WHERE substr(encode(hash, 'hex'), 1, 12) = $1) FROM admin_keys "
		    "WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
		    1, p);
	if (!res)
		return;
	if (lsc_i64(res, 0, 1) == 1 && lsc_i64(res, 0, 0) == 0) {
		PQclear(res);
		rollback(db);
		lsc_reply_error(r, 409, LSC_ERR_CONFLICT,
				"admin key %s is the last valid one: create another first", id);
		return;
	}
	PQclear(res);
	res = query(r, db, "revoke admin key",
		    "UPDATE admin_keys SET revoked_at = coalesce(revoked_at, now()) "
		    "WHERE substr(encode(hash, 'hex'), 1, 12) = $1 RETURNING " ADMIN_KEY_COLS,
		    1, p);
	if (!res)
		return;
	if (PQntuples(res) != 1) {
		PQclear(res);
		rollback(db);
		lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no admin key `%s'", id);
		return;
	}
	{
		json_t *ev = json_pack("{s:s, s:s}", "id", id, "by", r->admin_id);

		if (audit(r, db, "admin_key_revoke", ev) < 0 || !commit(r, db)) {
			PQclear(res);
			return;
		}
	}
	pr_info("revoked admin key %s", id);
	lsc_reply_json(r, 200, admin_key_json(r, res, 0));
	PQclear(res);
}


/* ---- device requests (tokenless registrations) ---- */

static void a_device_list(struct lsc_server *s, struct lsc_req *r, PGconn *db)
{
	PGresult *res;
	json_t *a;
	int i;

	(void)s;
	res = query(r, db, "device requests",
		    "SELECT id, hostname, machine_key, wg_key, source, CASE WHEN status = 'waiting' "
		    "AND expires_at <= now() THEN 'expired' ELSE status END, "
		    "extract(epoch from created_at)::bigint, extract(epoch from expires_at)::bigint, "
		    "coalesce(node_id, 0), coalesce(decided_by, '') FROM device_requests "
		    "ORDER BY id DESC LIMIT 500", 0, NULL);
	if (!res)
		return;
	a = json_array();
	for (i = 0; i < PQntuples(res); i++)
		json_array_append_new(
			a, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "id",
				     (json_int_t)lsc_i64(res, i, 0), "hostname", PQgetvalue(res, i, 1),
				     "machine_key", PQgetvalue(res, i, 2), "wg_key", PQgetvalue(res, i, 3),
				     "source", PQgetvalue(res, i, 4), "status", PQgetvalue(res, i, 5),
				     "created_at", (json_int_t)lsc_i64(res, i, 6), "expires_at",
				     (json_int_t)lsc_i64(res, i, 7), "node", (json_int_t)lsc_i64(res, i, 8),
				     "decided_by", PQgetvalue(res, i, 9)));
	PQclear(res);
	lsc_reply_json(r, 200, json_pack("{s:o}", "devices", a));
}

/* POST /v1/admin/devices/ID/approve {"network": NAME} */
static void a_device_approve(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *id)
{
	json_t *j = r->body.len ? json_loadb(r->body.p, r->body.len, JSON_REJECT_DUPLICATES, NULL) : NULL;
	json_t *net = json_object_get(j, "network");

	if (!json_is_string(net) || !json_string_length(net) ||
	    strlen(json_string_value(net)) != json_string_length(net)) {
		json_decref(j);
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST,
				"the body must be {\"network\": NAME}: the network to admit the device to");
		return;
	}
	lsc_api_device_decide(s, r, db, id, json_string_value(net), true);
	json_decref(j);
}

static void route_admin(struct lsc_server *s, struct lsc_req *r, const char *method,
			const char *path)
{
	char a[128] = "", b[128] = "";
	PGconn *db;
	const char *rest = path + strlen("/v1/admin");
	int n;

	if (!auth_admin(s, r, &db))
		return;
	/* /tls[/...]: certificate endorsement and rotation (tls_admin.c) */
	if (!strncmp(rest, "/tls", 4) && (rest[4] == '\0' || rest[4] == '/')) {
		lsc_tls_admin(s, r, db, method, rest + 4);
		return;
	}
	/* /networks[/A[/B]] | /tokens/A | /nodes/A */
	if (!strcmp(rest, "/networks")) {
		if (!strcmp(method, "POST"))
			a_network_create(s, r, db);
		else if (!strcmp(method, "GET"))
			a_network_list(s, r, db);
		else
			goto method;
		return;
	}
	n = sscanf(rest, "/networks/%127[^/]/%127[^/]", a, b);
	if (n >= 1 && !strncmp(rest, "/networks/", 10)) {
		if (n == 1 && strlen(rest) == 10 + strlen(a)) {
			if (!strcmp(method, "GET"))
				a_network_show(s, r, db, a);
			else if (!strcmp(method, "PATCH"))
				a_network_set(s, r, db, a);
			else
				goto method;
			return;
		}
		if (n == 2 && strlen(rest) == 11 + strlen(a) + strlen(b)) {
			if (!strcmp(b, "tokens") && !strcmp(method, "POST"))
				a_token_create(s, r, db, a);
			else if (!strcmp(b, "tokens") && !strcmp(method, "GET"))
				a_token_list(s, r, db, a);
			else if (!strcmp(b, "nodes") && !strcmp(method, "GET"))
				a_node_list(s, r, db, a);
			else if (!strcmp(b, "routes") && !strcmp(method, "GET"))
				a_route_list(s, r, db, a);
			else if (!strcmp(b, "acl") && !strcmp(method, "GET"))
				a_acl_get(s, r, db, a);
			else if (!strcmp(b, "acl") && !strcmp(method, "PUT"))
				a_acl_set(s, r, db, a, false);
			else if (!strcmp(b, "acl") && !strcmp(method, "DELETE"))
				a_acl_set(s, r, db, a, true);
			else if (!strcmp(b, "acl-test") && !strcmp(method, "POST"))
				a_acl_test(s, r, db, a);
			else if (!strcmp(b, "routes") || !strcmp(b, "acl") || !strcmp(b, "acl-test"))
				goto method;
			else if (!strcmp(b, "tokens") || !strcmp(b, "nodes"))
				goto method;
			else
				goto notfound;
			return;
		}
		goto notfound;
	}
	if (!strcmp(rest, "/admin-keys")) {
		if (s->schema_version < 6)
			goto notfound;
		if (!strcmp(method, "POST"))
			a_admin_key_create(s, r, db);
		else if (!strcmp(method, "GET"))
			a_admin_key_list(s, r, db);
		else
			goto method;
		return;
	}
	if (sscanf(rest, "/admin-keys/%127[^/]", a) == 1 && strlen(rest) == 12 + strlen(a)) {
		if (s->schema_version < 6)
			goto notfound;
		if (!strcmp(method, "DELETE"))
			a_admin_key_revoke(s, r, db, a);
		else
			goto method;
		return;
	}
	if (!strcmp(rest, "/devices") && s->schema_version >= 9) {
		if (!strcmp(method, "GET"))
			a_device_list(s, r, db);
		else
			goto method;
		return;
	}
	if (sscanf(rest, "/devices/%127[^/]/%127[^/]", a, b) == 2 && s->schema_version >= 9 &&
	    strlen(rest) == 10 + strlen(a) + strlen(b)) {
		if (strcmp(method, "POST"))
			goto method;
		if (!strcmp(b, "approve"))
			a_device_approve(s, r, db, a);
		else if (!strcmp(b, "reject"))
			lsc_api_device_decide(s, r, db, a, NULL, false);
		else
			goto notfound;
		return;
	}
	if (sscanf(rest, "/tokens/%127[^/]", a) == 1 && strlen(rest) == 8 + strlen(a)) {
		if (!strcmp(method, "DELETE"))
			a_token_revoke(s, r, db, a);
		else
			goto method;
		return;
	}
	if (sscanf(rest, "/nodes/%127[^/]/%127[^/]", a, b) == 2 &&
	    strlen(rest) == 8 + strlen(a) + strlen(b)) {
		if (strcmp(method, "POST"))
			goto method;
		if (!strcmp(b, "approve"))
			lsc_api_node_status(s, r, db, a, ACT_APPROVE);
		else if (!strcmp(b, "reject"))
			lsc_api_node_status(s, r, db, a, ACT_REJECT);
		else if (!strcmp(b, "revoke"))
			lsc_api_node_status(s, r, db, a, ACT_REVOKE);
		else if (!strcmp(b, "approve-routes"))
			a_node_routes(s, r, db, a, true);
		else if (!strcmp(b, "reject-routes"))
			a_node_routes(s, r, db, a, false);
		else
			goto notfound;
		return;
	}
	if (sscanf(rest, "/nodes/%127[^/]", a) == 1 && strlen(rest) == 7 + strlen(a)) {
		if (!strcmp(method, "GET"))
			a_node_show(s, r, db, a);
		else if (!strcmp(method, "DELETE"))
			a_node_delete(s, r, db, a);
		else
			goto method;
		return;
	}
notfound:
	lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no such resource `%.200s'", path);
	return;
method:
	lsc_reply_error(r, 405, LS_ERR_BAD_REQUEST, "method %s is not allowed on `%.200s'", method,
			path);
}

void lsc_route(struct lsc_server *s, struct lsc_req *r, const char *method, const char *path)
{
	pr_debug("%s %s", method, path);
	if (!strcmp(path, "/v1/health")) {
		if (strcmp(method, "GET"))
			goto method;
		h_health(s, r);
	} else if (!strcmp(path, "/v1/register")) {
		if (strcmp(method, "POST"))
			goto method;
		h_register(s, r);
	} else if (!strcmp(path, "/v1/register/status")) {
		if (strcmp(method, "GET"))
			goto method;
		h_register_status(s, r);
	} else if (!strcmp(path, "/v1/heartbeat")) {
		if (strcmp(method, "POST"))
			goto method;
		h_heartbeat(s, r);
	} else if (!strncmp(path, "/approve/", 9) && s->schema_version >= 7) {
		lsc_approve_page(s, r, method, path + 9);
	} else if (!strcmp(path, "/v1/rotate")) {
		if (strcmp(method, "POST"))
			goto method;
		h_rotate(s, r);
	} else if (!strcmp(path, "/v1/audit")) {
		if (strcmp(method, "GET"))
			goto method;
		h_audit(s, r);
	} else if (!strcmp(path, "/v1/netmap")) {
		if (strcmp(method, "GET"))
			goto method;
		h_netmap(s, r);
	} else if (!strncmp(path, "/v1/admin/", 10)) {
		route_admin(s, r, method, path);
	} else {
		lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no such resource `%.200s'", path);
	}
	return;
method:
	lsc_reply_error(r, 405, LS_ERR_BAD_REQUEST, "method %s is not allowed on `%.200s'", method,
			path);
}
