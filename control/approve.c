// SPDX-License-Identifier: MIT
/* The auth-URL approval page (/approve/CODE): an admin signs in with an admin key, sees the
 * device waiting behind the code and approves or rejects it. Plain HTML forms, no script.
 *
 * A code is either a pending node's (a token of an approval network: approval_codes) or a
 * tokenless device's (device_requests: no node yet; the admin picks the network to admit it
 * to). Sign-in sessions live in PostgreSQL (approval_sessions: SHA-256 of the session id, the
 * admin key id, expiry), so every server of an HA set knows an admin who signed in on
 * another; a session ends at its expiry, at sign-out, or when its admin key is revoked or
 * expires. */
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

static void html_esc(struct lsc_buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': lsc_buf_str(b, "&lt;"); break;
		case '>': lsc_buf_str(b, "&gt;"); break;
		case '&': lsc_buf_str(b, "&amp;"); break;
		case '"': lsc_buf_str(b, "&quot;"); break;
		case '\'': lsc_buf_str(b, "&#39;"); break;
		default: lsc_buf_add(b, s, 1);
		}
	}
}

static void html_page(struct lsc_req *r, unsigned status, const char *title, const char *body_html)
{
	struct lsc_buf b = {0};

	lsc_buf_str(&b, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>");
	html_esc(&b, title);
	lsc_buf_str(&b, "</title><style>body{font-family:sans-serif;max-width:40em;margin:3em auto}"
			"td{padding:.2em .8em}button{font-size:1.1em;margin-right:1em}</style></head><body><h1>");
	html_esc(&b, title);
	lsc_buf_str(&b, "</h1>");
	lsc_buf_str(&b, body_html);
	lsc_buf_str(&b, "</body></html>");
	if (b.oom) {
		lsc_buf_free(&b);
		lsc_reply_error(r, 500, LS_ERR_INTERNAL, "out of memory");
		return;
	}
	r->html = true;
	lsc_reply(r, status, b.p, b.len);
}

/* an admin key from the sign-in form: its id, or false */
static bool admin_key_check(struct lsc_server *s, PGconn *db, const char *key, char id[16])
{
	char hash[LS_SHA256_HEX_LEN + 1];
	const char *p[1] = {hash};
	PGresult *res;
	bool ok;

	ls_sha256_hex(hash, key, strlen(key));
	res = lsc_exec(db,
		       "UPDATE admin_keys SET last_used_at = now() WHERE hash = decode($1, 'hex') "
		       "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) "
		       "RETURNING substr(encode(hash, 'hex'), 1, 12)",
		       1, p);
	ok = lsc_res_ok(db, res, "admin key") && PQntuples(res) == 1;
	if (ok)
		snprintf(id, 16, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return ok;
}

#define SESSION_SECONDS 600
#define COOKIE LS_APPROVE_COOKIE "="

/* the session id of the request's cookie (64 hex digits), or false */
static bool cookie_session(struct lsc_req *r, char id[LS_APPROVE_SESSION_LEN + 1])
{
	return !lsc_approve_session_id(lsc_req_header(r, "Cookie"), id);
}

/* The admin key id of the request's session: a session this or another server made, not
 * expired, not signed out, its admin key neither revoked nor expired. */
static bool session_of(PGconn *db, struct lsc_req *r, char admin[16])
{
	char id[65], hash[LS_SHA256_HEX_LEN + 1];
	const char *p[1] = {hash};
	PGresult *res;
	bool ok;

	if (!cookie_session(r, id))
		return false;
	ls_sha256_hex(hash, id, 64);
	res = lsc_exec(db,
		       "SELECT s.admin_key FROM approval_sessions s JOIN admin_keys k "
		       "ON substr(encode(k.hash, 'hex'), 1, 12) = s.admin_key "
		       "WHERE s.hash = decode($1, 'hex') AND s.expires_at > now() "
		       "AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())",
		       1, p);
	ok = lsc_res_ok(db, res, "approval session") && PQntuples(res) >= 1;
	if (ok)
		snprintf(admin, 16, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	ls_memzero(id, sizeof(id));
	return ok;
}

/* a new session of admin key `admin': its cookie in r->set_cookie; expired rows go */
static int session_new(struct lsc_server *s, PGconn *db, struct lsc_req *r, const char *admin)
{
	char id[65], hash[LS_SHA256_HEX_LEN + 1];
	const char *p[2] = {hash, admin};
	uint8_t raw[32];
	PGresult *res;
	bool ok;

	res = lsc_exec0(db, "DELETE FROM approval_sessions WHERE expires_at < now()");
	PQclear(res);
	randombytes_buf(raw, sizeof(raw));
	ls_hex_encode(id, raw, sizeof(raw));
	ls_sha256_hex(hash, id, 64);
	res = lsc_exec(db,
		       "INSERT INTO approval_sessions (hash, admin_key, expires_at) VALUES "
		       "(decode($1, 'hex'), $2, now() + make_interval(secs => " "600" "))",
		       2, p);
	ok = lsc_res_ok(db, res, "new approval session");
	PQclear(res);
	if (ok)
		snprintf(r->set_cookie, sizeof(r->set_cookie),
			 COOKIE "%s; Path=/approve/; Max-Age=%d; HttpOnly; SameSite=Strict%s", id,
			 SESSION_SECONDS, s->tls ? "; Secure" : "");
	ls_memzero(id, sizeof(id));
	ls_memzero(raw, sizeof(raw));
	return ok ? 0 : -EIO;
}

static void session_end(struct lsc_server *s, PGconn *db, struct lsc_req *r)
{
	char id[65], hash[LS_SHA256_HEX_LEN + 1];
	const char *p[1] = {hash};

	if (cookie_session(r, id)) {
		ls_sha256_hex(hash, id, 64);
		PQclear(lsc_exec(db, "DELETE FROM approval_sessions WHERE hash = decode($1, 'hex')", 1, p));
		ls_memzero(id, sizeof(id));
	}
	snprintf(r->set_cookie, sizeof(r->set_cookie),
		 COOKIE "; Path=/approve/; Max-Age=0; HttpOnly; SameSite=Strict%s", s->tls ? "; Secure" : "");
}

static const char signin_form[] =
	"<form method=\"post\"><p><label>Admin key <input type=\"password\" name=\"admin_key\" "
	"id=\"admin_key\" autocomplete=\"off\" size=\"70\"></label></p>"
	"<p><button type=\"submit\" id=\"signin\">Sign in</button></p></form>";

/* what stands behind a code */
struct waiting {
	bool device;          /* a tokenless device request, else a pending node */
	char id[24];          /* node id or request id */
	char *hostname, *name, *wg_key, *machine_key, *source, *status, *network, *routes;
	int64_t time;
};

static void waiting_free(struct waiting *w)
{
	free(w->hostname);
	free(w->name);
	free(w->wg_key);
	free(w->machine_key);
	free(w->source);
	free(w->status);
	free(w->network);
	free(w->routes);
	memset(w, 0, sizeof(*w));
}

/* 1 found, 0 no live code, -1 after a reply */
static int lookup(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *hash,
		  struct waiting *w)
{
	const char *p[1] = {hash};
	char *const *f[] = {&w->hostname, &w->name, &w->wg_key, &w->machine_key, &w->source,
			    &w->status, &w->network, &w->routes};
	PGresult *res;
	size_t i;

	(void)s;
	memset(w, 0, sizeof(*w));
	res = lsc_exec(db,
		       "SELECT false, n.id, n.hostname, n.name, n.wg_key, n.machine_key, a.source, "
		       "n.status, networks.name, array_to_string(n.routes, ', '), "
		       "extract(epoch from n.created_at)::bigint "
		       "FROM approval_codes a JOIN nodes n ON n.id = a.node_id "
		       "JOIN networks ON networks.id = n.network_id "
		       "WHERE a.hash = decode($1, 'hex') AND a.used_at IS NULL AND a.expires_at > now() "
		       "UNION ALL "
		       "SELECT true, d.id, d.hostname, '', d.wg_key, d.machine_key, d.source, d.status, '', "
		       "array_to_string(d.routes, ', '), extract(epoch from d.created_at)::bigint "
		       "FROM device_requests d WHERE d.code_hash = decode($1, 'hex') "
		       "AND d.status = 'waiting' AND d.expires_at > now()",
		       1, p);
	if (!lsc_res_ok(db, res, "approval code")) {
		lsc_db_failed(r, res, "approval code");
		PQclear(res);
		return -1;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		return 0;
	}
	w->device = PQgetvalue(res, 0, 0)[0] == 't';
	snprintf(w->id, sizeof(w->id), "%s", PQgetvalue(res, 0, 1));
	for (i = 0; i < ARRAY_SIZE(f); i++)
		*(char **)f[i] = strdup(PQgetvalue(res, 0, 2 + (int)i));
	w->time = lsc_i64(res, 0, 10);
	PQclear(res);
	for (i = 0; i < ARRAY_SIZE(f); i++)
		if (!*f[i]) {
			waiting_free(w);
			lsc_reply_error(r, 500, LS_ERR_INTERNAL, "out of memory");
			return -1;
		}
	return 1;
}

/* the signed-in page: the device, (for a tokenless device) the network to admit it to, the
 * buttons; -1 after a reply */
static int device_page(PGconn *db, struct lsc_req *r, const struct waiting *w, const char *admin,
		       struct lsc_buf *b)
{
	char t[64];
	time_t tt = (time_t)w->time;
	struct tm tm;
	size_t i;
	int k;

	gmtime_r(&tt, &tm);
	strftime(t, sizeof(t), "%Y-%m-%d %H:%M:%S UTC", &tm);
	lsc_buf_str(b, "<form method=\"post\"><p>Signed in with admin key <span id=\"admin\">");
	html_esc(b, admin);
	lsc_buf_str(b, "</span>. <button type=\"submit\" name=\"action\" value=\"signout\" "
		       "id=\"signout\">Sign out</button></p></form>");
	lsc_buf_str(b, w->device ? "<p>A device without an enrollment token asks to join.</p>"
				 : "<p>A device asks to join a network that requires approval.</p>");
	lsc_buf_str(b, "<table id=\"device\">");
	{
		const char *rows[][2] = {
			{"Hostname", w->hostname},
			{"Name", w->device ? NULL : w->name},
			{"Network", w->device ? NULL : w->network},
			{"WireGuard key", w->wg_key},
			{"Machine key", w->machine_key},
			{w->device ? "Requested" : "Registered", t},
			{"From address", w->source},
			{"Advertised routes", w->routes[0] ? w->routes : NULL},
			{"Status", w->status},
		};

		for (i = 0; i < ARRAY_SIZE(rows); i++) {
			if (!rows[i][1])
				continue;
			lsc_buf_str(b, "<tr><td>");
			html_esc(b, rows[i][0]);
			lsc_buf_str(b, "</td><td><code>");
			html_esc(b, rows[i][1]);
			lsc_buf_str(b, "</code></td></tr>");
		}
	}
	lsc_buf_str(b, "</table><form method=\"post\">");
	if (w->device) {
		PGresult *res = lsc_exec0(db, "SELECT name FROM networks ORDER BY name");

		if (!lsc_res_ok(db, res, "networks")) {
			lsc_db_failed(r, res, "networks");
			PQclear(res);
			return -1;
		}
		lsc_buf_str(b, "<p><label>Admit to network <select name=\"network\" id=\"network\">"
			       "<option value=\"\">(choose a network)</option>");
		for (k = 0; k < PQntuples(res); k++) {
			lsc_buf_str(b, "<option value=\"");
			html_esc(b, PQgetvalue(res, k, 0));
			lsc_buf_str(b, "\">");
			html_esc(b, PQgetvalue(res, k, 0));
			lsc_buf_str(b, "</option>");
		}
		lsc_buf_str(b, "</select></label></p>");
		PQclear(res);
	}
	lsc_buf_str(b, "<p><button type=\"submit\" name=\"action\" value=\"approve\" id=\"approve\">"
		       "Approve</button><button type=\"submit\" name=\"action\" value=\"reject\" "
		       "id=\"reject\">Reject</button></p></form>");
	return 0;
}

void lsc_approve_page(struct lsc_server *s, struct lsc_req *r, const char *method, const char *code)
{
	char hash[LS_SHA256_HEX_LEN + 1], admin[16] = "", *key = NULL, *action = NULL, *network = NULL;
	const char *body = r->body.p ? r->body.p : "";
	struct lsc_buf b = {0};
	struct waiting w;
	unsigned status = 200;
	PGconn *db;
	int found;

	memset(&w, 0, sizeof(w));
	if (lsc_approve_code_check(code)) {
		html_page(r, 404, "Invalid approval link", "<p>This approval link is not valid.</p>");
		return;
	}
	if (s->schema_version < 9) {
		html_page(r, 503, "Approve a device",
			  "<p>This server's database schema is too old for the approval page.</p>");
		return;
	}
	if (strcmp(method, "GET") && strcmp(method, "POST")) {
		lsc_reply_error(r, 405, LS_ERR_BAD_REQUEST, "method %s is not allowed here", method);
		return;
	}
	db = lsc_db(r);
	if (!db)
		return;
	ls_sha256_hex(hash, code, strlen(code));
	found = lookup(s, r, db, hash, &w);
	if (found < 0)
		return;
	if (!found) {
		html_page(r, 404, "Invalid approval link",
			  "<p>This approval link is invalid, expired or already used.</p>");
		return;
	}
	if (!strcmp(method, "POST")) {
		static const char *const names[] = {"admin_key", "action", "network"};
		char **vals[] = {&key, &action, &network};
		size_t i;
		int ret;

		for (i = 0; i < ARRAY_SIZE(names); i++) {
			ret = lsc_form_value(body, r->body.len, names[i], vals[i]);
			if (ret == -ENOMEM) {
				lsc_reply_error(r, 500, LS_ERR_INTERNAL, "out of memory");
				goto out;
			}
			if (ret && ret != -ENOENT) {
				lsc_buf_printf(&b, "<p id=\"error\">The form's field %s is %s.</p>", names[i],
					       ret == -E2BIG ? "too long" : "repeated or malformed");
				status = 400;
				goto page;
			}
		}
	}
	if (key) {
		char id[16], ep[LS_ENDPOINT_STRLEN], rl[96];

		/* sign-in attempts per source address: 10 in a burst, then one per 5 s */
		if (r->src.ss_family == AF_INET || r->src.ss_family == AF_INET6)
			ls_endpoint_format((const struct sockaddr *)&r->src, ep);
		else
			snprintf(ep, sizeof(ep), "unknown");
		ep[strcspn(ep, "]")] = '\0';
		if (strchr(ep, '.'))
			ep[strcspn(ep, ":")] = '\0';
		snprintf(rl, sizeof(rl), "signin:%s", ep);
		if (!lsc_rl_allow(s->rl, rl, 10, 0.2, ls_now_ms())) {
			lsc_buf_str(&b, "<p id=\"error\">Too many sign-in attempts from this address: wait a "
				       "minute.</p>");
			status = 429;
			goto page;
		}
		if (!admin_key_check(s, db, key, id)) {
			lsc_buf_str(&b, "<p id=\"error\">That admin key is not valid.</p>");
			lsc_buf_str(&b, signin_form);
			status = 401;
			goto page;
		}
		if (session_new(s, db, r, id)) {
			lsc_reply_error(r, 503, LS_ERR_UNAVAILABLE, "cannot store the session");
			goto out;
		}
		pr_info("approval page: admin key %s signed in from the page of %s %s", id,
			w.device ? "device request" : "node", w.id);
		if (device_page(db, r, &w, id, &b) < 0)
			goto out;
		goto page;
	}
	if (action && !strcmp(action, "signout")) {
		session_end(s, db, r);
		lsc_buf_str(&b, "<p id=\"result\">Signed out.</p>");
		lsc_buf_str(&b, signin_form);
		goto page;
	}
	if (!session_of(db, r, admin)) {
		if (action) {
			lsc_buf_str(&b, "<p id=\"error\">Sign in first (no session, or it expired or "
				       "was signed out).</p>");
			status = 401;
		} else {
			lsc_buf_str(&b, "<p>A device asks to join a network. Sign in with an admin key "
				       "to see it.</p>");
		}
		lsc_buf_str(&b, signin_form);
		goto page;
	}
	if (!action) {
		if (device_page(db, r, &w, admin, &b) < 0)
			goto out;
		goto page;
	}
	if (strcmp(action, "approve") && strcmp(action, "reject")) {
		lsc_buf_str(&b, "<p id=\"error\">Nothing to do.</p>");
		status = 400;
		goto page;
	}
	snprintf(r->admin_id, sizeof(r->admin_id), "%s", admin);
	if (w.device)
		lsc_api_device_decide(s, r, db, w.id, network, !strcmp(action, "approve"));
	else
		lsc_api_node_status(s, r, db, w.id, !strcmp(action, "approve") ? ACT_APPROVE : ACT_REJECT);
	if (r->status == 200 && !w.device) {
		const char *p[1] = {hash};

		PQclear(lsc_exec(db, "UPDATE approval_codes SET used_at = now() WHERE hash = decode($1, 'hex')",
				 1, p));
		lsc_buf_str(&b, "<p id=\"result\">Device ");
		html_esc(&b, w.id);
		lsc_buf_str(&b, !strcmp(action, "approve") ? " approved.</p>" : " rejected.</p>");
	} else if (r->status == 200) {
		json_t *j = json_loadb(r->reply, r->reply_len, 0, NULL);
		json_t *node = json_object_get(j, "node");

		lsc_buf_str(&b, "<p id=\"result\">Device ");
		html_esc(&b, w.hostname);
		if (!strcmp(action, "approve")) {
			lsc_buf_printf(&b, " approved: node %" PRId64 " `",
				       (int64_t)json_integer_value(json_object_get(node, "id")));
			html_esc(&b, json_string_value(json_object_get(node, "name")) ?: "");
			lsc_buf_str(&b, "' in network ");
			html_esc(&b, network ? network : "");
			lsc_buf_str(&b, ".</p>");
		} else {
			lsc_buf_str(&b, " rejected.</p>");
		}
		json_decref(j);
	} else {
		json_t *j = r->reply ? json_loadb(r->reply, r->reply_len, 0, NULL) : NULL;
		const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));

		status = r->status;
		lsc_buf_str(&b, "<p id=\"error\">");
		html_esc(&b, msg ? msg : "failed");
		lsc_buf_str(&b, "</p>");
		json_decref(j);
		/* a missing network choice: the form again */
		if (status == 400 && device_page(db, r, &w, admin, &b) < 0)
			goto out;
	}
page:
	html_page(r, status, "Approve a device", b.p ? b.p : "");
out:
	lsc_buf_free(&b);
	waiting_free(&w);
	if (key)
		ls_memzero(key, strlen(key));
	free(key);
	free(action);
	free(network);
}
