// SPDX-License-Identifier: MIT
/* The auth-URL approval page (/approve/CODE): an admin signs in with an admin key, sees the
 * device waiting behind the code and approves or rejects it. Plain HTML forms, no script. */
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

/* value of field name in an application/x-www-form-urlencoded body, decoded; caller frees */
static char *form_value(const char *body, size_t len, const char *name)
{
	size_t nl = strlen(name), i = 0;

	while (i < len) {
		size_t end = i;

		while (end < len && body[end] != '&')
			end++;
		if (end - i > nl && !strncmp(body + i, name, nl) && body[i + nl] == '=') {
			char *out = malloc(end - i), *o = out;
			size_t k;

			if (!out)
				return NULL;
			for (k = i + nl + 1; k < end; k++) {
				if (body[k] == '+') {
					*o++ = ' ';
				} else if (body[k] == '%' && k + 2 < end &&
					   isxdigit((unsigned char)body[k + 1]) && isxdigit((unsigned char)body[k + 2])) {
					char hx[3] = {body[k + 1], body[k + 2], 0};

					*o++ = (char)strtol(hx, NULL, 16);
					k += 2;
				} else {
					*o++ = body[k];
				}
			}
			*o = '\0';
			if (strlen(out) != (size_t)(o - out)) { /* a NUL inside */
				free(out);
				return NULL;
			}
			return out;
		}
		i = end + 1;
	}
	return NULL;
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

static const char *session_of(struct lsc_server *s, struct lsc_req *r)
{
	const char *c = lsc_req_header(r, "Cookie"), *v;
	char id[65];
	size_t i;

	if (!c || !(v = strstr(c, "lsc_approve=")))
		return NULL;
	v += 12;
	snprintf(id, sizeof(id), "%.*s", (int)strcspn(v, "; "), v);
	for (i = 0; i < ARRAY_SIZE(s->sessions); i++)
		if (s->sessions[i].id[0] && s->sessions[i].expires_ms > ls_now_ms() &&
		    sodium_memcmp(s->sessions[i].id, id, sizeof(id)) == 0)
			return s->sessions[i].admin_id;
	return NULL;
}

void lsc_approve_page(struct lsc_server *s, struct lsc_req *r, const char *method, const char *code)
{
	char hash[LS_SHA256_HEX_LEN + 1], node[24], t[64], *key = NULL, *action = NULL;
	const char *p[1] = {hash}, *admin;
	struct lsc_buf b = {0};
	PGresult *res = NULL;
	PGconn *db;
	time_t tt;
	struct tm tm;

	if (strlen(code) != 32 || strspn(code, "0123456789abcdef") != 32) {
		html_page(r, 404, "Invalid approval link", "<p>This approval link is not valid.</p>");
		return;
	}
	db = lsc_db(r);
	if (!db)
		return;
	ls_sha256_hex(hash, code, strlen(code));
	res = lsc_exec(db,
		       "SELECT n.id, n.hostname, n.name, n.wg_key, n.machine_key, "
		       "extract(epoch from n.created_at)::bigint, a.source, n.status, networks.name "
		       "FROM approval_codes a JOIN nodes n ON n.id = a.node_id "
		       "JOIN networks ON networks.id = n.network_id "
		       "WHERE a.hash = decode($1, 'hex') AND a.used_at IS NULL AND a.expires_at > now()",
		       1, p);
	if (!lsc_res_ok(db, res, "approval code")) {
		lsc_db_failed(r, res, "approval code");
		PQclear(res);
		return;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		html_page(r, 404, "Invalid approval link",
			  "<p>This approval link is invalid, expired or already used.</p>");
		return;
	}
	snprintf(node, sizeof(node), "%s", PQgetvalue(res, 0, 0));
	if (!strcmp(method, "GET")) {
		lsc_buf_str(&b, "<p>A device asks to join a network. Sign in with an admin key to see it.</p>"
				"<form method=\"post\"><p><label>Admin key <input type=\"password\" "
				"name=\"admin_key\" id=\"admin_key\" autocomplete=\"off\" size=\"70\"></label></p>"
				"<p><button type=\"submit\" id=\"signin\">Sign in</button></p></form>");
		goto page;
	}
	if (strcmp(method, "POST")) {
		lsc_reply_error(r, 405, LS_ERR_BAD_REQUEST, "method %s is not allowed here", method);
		goto out;
	}
	key = form_value(r->body.p ? r->body.p : "", r->body.len, "admin_key");
	action = form_value(r->body.p ? r->body.p : "", r->body.len, "action");
	if (key) {
		char id[16];
		uint8_t raw[32];
		size_t i, slot = 0;

		if (!admin_key_check(s, db, key, id)) {
			lsc_buf_str(&b, "<p id=\"error\">That admin key is not valid.</p>"
					"<form method=\"post\"><p><label>Admin key <input type=\"password\" "
					"name=\"admin_key\" id=\"admin_key\" size=\"70\"></label></p>"
					"<p><button type=\"submit\" id=\"signin\">Sign in</button></p></form>");
			PQclear(res);
			html_page(r, 401, "Approve a device", b.p ? b.p : "");
			lsc_buf_free(&b);
			goto out;
		}
		for (i = 0; i < ARRAY_SIZE(s->sessions); i++)
			if (s->sessions[i].expires_ms < s->sessions[slot].expires_ms)
				slot = i;
		randombytes_buf(raw, sizeof(raw));
		ls_hex_encode(s->sessions[slot].id, raw, sizeof(raw));
		snprintf(s->sessions[slot].admin_id, sizeof(s->sessions[slot].admin_id), "%s", id);
		s->sessions[slot].expires_ms = ls_now_ms() + 10 * 60 * 1000;
		snprintf(r->set_cookie, sizeof(r->set_cookie),
			 "lsc_approve=%s; Path=/approve/; Max-Age=600; HttpOnly; SameSite=Strict%s",
			 s->sessions[slot].id, s->tls ? "; Secure" : "");
		tt = (time_t)lsc_i64(res, 0, 5);
		gmtime_r(&tt, &tm);
		strftime(t, sizeof(t), "%Y-%m-%d %H:%M:%S UTC", &tm);
		lsc_buf_str(&b, "<p>Signed in with admin key ");
		html_esc(&b, id);
		lsc_buf_str(&b, ".</p><table id=\"device\">");
		{
			const char *rows[][2] = {
				{"Hostname", PQgetvalue(res, 0, 1)}, {"Name", PQgetvalue(res, 0, 2)},
				{"Network", PQgetvalue(res, 0, 8)}, {"WireGuard key", PQgetvalue(res, 0, 3)},
				{"Machine key", PQgetvalue(res, 0, 4)}, {"Registered", t},
				{"From address", PQgetvalue(res, 0, 6)}, {"Status", PQgetvalue(res, 0, 7)},
			};

			for (i = 0; i < ARRAY_SIZE(rows); i++) {
				lsc_buf_str(&b, "<tr><td>");
				html_esc(&b, rows[i][0]);
				lsc_buf_str(&b, "</td><td><code>");
				html_esc(&b, rows[i][1]);
				lsc_buf_str(&b, "</code></td></tr>");
			}
		}
		lsc_buf_str(&b, "</table><form method=\"post\"><p>"
				"<button type=\"submit\" name=\"action\" value=\"approve\" id=\"approve\">Approve</button>"
				"<button type=\"submit\" name=\"action\" value=\"reject\" id=\"reject\">Reject</button>"
				"</p></form>");
		goto page;
	}
	admin = session_of(s, r);
	if (!action || (strcmp(action, "approve") && strcmp(action, "reject")) || !admin) {
		PQclear(res);
		html_page(r, admin ? 400 : 401, "Approve a device",
			  admin ? "<p>Nothing to do.</p>" : "<p>Sign in first (the session expired).</p>");
		goto out;
	}
	PQclear(res);
	res = NULL;
	snprintf(r->admin_id, sizeof(r->admin_id), "%s", admin);
	lsc_api_node_status(s, r, db, node, !strcmp(action, "approve") ? ACT_APPROVE : ACT_REJECT);
	if (r->status == 200) {
		res = lsc_exec(db, "UPDATE approval_codes SET used_at = now() WHERE hash = decode($1, 'hex')",
			       1, p);
		PQclear(res);
		res = NULL;
		lsc_buf_str(&b, "<p id=\"result\">Device ");
		html_esc(&b, node);
		lsc_buf_str(&b, !strcmp(action, "approve") ? " approved.</p>" : " rejected.</p>");
		html_page(r, 200, "Approve a device", b.p ? b.p : "");
	} else {
		lsc_buf_str(&b, "<p id=\"error\">");
		html_esc(&b, r->reply ? r->reply : "failed");
		lsc_buf_str(&b, "</p>");
		html_page(r, r->status, "Approve a device", b.p ? b.p : "");
	}
	goto out;
page:
	PQclear(res);
	html_page(r, 200, "Approve a device", b.p ? b.p : "");
out:
	lsc_buf_free(&b);
	if (key)
		ls_memzero(key, strlen(key));
	free(key);
	free(action);
}

