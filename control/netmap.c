// SPDX-License-Identifier: MIT
/*
 * Netmaps from in-memory network snapshots.
 *
 * Each network seen by this server has a snapshot: its nodes with their peer objects
 * rendered once as JSON text, the DNS section, and the tail of the change log. A
 * snapshot moves forward by reading the change log rows after its version and only
 * those nodes (or everything, when it is too far behind), in one repeatable-read
 * transaction. A full netmap is then a concatenation of rendered peers; a delta
 * carries the peers named in the change log after the client's version. Waiters
 * (suspended long-polls) cost no query until their network's version moves.
 *
 * Route primaries: a non-default prefix advertised by several active nodes goes to the
 * lowest node id (primary, in its allowed_ips and routes); the others list it under
 * standby_routes. Writers log every node whose split can change, so deltas carry them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lightscale/api.h"
#include "log.h"
#include "server.h"
#include "util.h"

/* routes: the effective ones (with route approval, only the approved advertised ones) */
#define NODE_COLS                                                                             \
	"id, name, wg_key, host(ipv4), host(ipv6), array_to_string(CASE WHEN "                \
	"(SELECT route_approval FROM networks w WHERE w.id = nodes.network_id) THEN "         \
	"ARRAY(SELECT x FROM (SELECT unnest(routes) x INTERSECT SELECT unnest(approved_routes)) " \
	"q ORDER BY x COLLATE \"C\") ELSE routes END, ','), "                                  \
	"array_to_string(endpoints, ','), coalesce(listen_port, 0), status, "                \
	"coalesce(floor(extract(epoch from key_expiry))::bigint, 0), "                               \
	"coalesce(extract(epoch from last_seen)::bigint, 0), status_version, "                \
	"array_to_string(tags, ',')"

static uint64_t mark_gen;

/* Versions at which a network's audit and control sections last changed, as this server's
 * snapshots saw them (a delta carries a section only when it changed after the client's
 * version). Kept beside struct lsc_net (server.h) and found by its address. */
struct sect_seen {
	struct sect_seen *next;
	const struct lsc_net *net;
	char *audit, *control;             /* the texts last seen */
	int64_t audit_version, control_version;
};
static struct sect_seen *sects;

static struct sect_seen *sect_get(const struct lsc_net *n, bool create)
{
	struct sect_seen *x;

	for (x = sects; x; x = x->next)
		if (x->net == n)
			return x;
	if (!create || !(x = calloc(1, sizeof(*x))))
		return NULL;
	x->net = n;
	x->next = sects;
	sects = x;
	return x;
}

static bool str_differs(const char *a, const char *b)
{
	return (!a != !b) || (a && strcmp(a, b));
}

/* after a sync to version: note which of the two sections moved (server.h) */
void lsc_net_sections_seen(struct lsc_net *n, int64_t version)
{
	struct sect_seen *x = sect_get(n, true);

	if (!x) { /* out of memory: sect_since() then says "changed" */
		return;
	}
	if (str_differs(x->audit, n->audit_json)) {
		free(x->audit);
		x->audit = n->audit_json ? strdup(n->audit_json) : NULL;
		x->audit_version = version;
		if (n->audit_json && !x->audit)
			x->audit_version = INT64_MAX;
	}
	if (str_differs(x->control, n->control_json)) {
		free(x->control);
		x->control = n->control_json ? strdup(n->control_json) : NULL;
		x->control_version = version;
		if (n->control_json && !x->control)
			x->control_version = INT64_MAX;
	}
}

/* did the audit (control: false) section change after since? Unknown counts as changed. */
static bool sect_since(const struct lsc_net *n, bool control, int64_t since)
{
	const struct sect_seen *x = sect_get(n, false);

	if (!x)
		return true;
	return (control ? x->control_version : x->audit_version) > since;
}

static void sects_free(void)
{
	while (sects) {
		struct sect_seen *x = sects;

		sects = x->next;
		free(x->audit);
		free(x->control);
		free(x);
	}
}

int lsc_strv_split(struct lsc_strv *out, const char *s)
{
	const char *p = s;

	memset(out, 0, sizeof(*out));
	if (!s || !*s)
		return 0;
	while (p) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);
		char **nv = realloc(out->v, (out->n + 1) * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		out->v = nv;
		out->v[out->n] = strndup(p, n);
		if (!out->v[out->n])
			return -ENOMEM;
		out->n++;
		p = c ? c + 1 : NULL;
	}
	return 0;
}

char *lsc_array_literal(const char *const *v, size_t n)
{
	struct lsc_buf b = {0};
	size_t i;

	lsc_buf_str(&b, "{");
	for (i = 0; i < n; i++) {
		if (i)
			lsc_buf_str(&b, ",");
		lsc_buf_str(&b, v[i]);
	}
	lsc_buf_str(&b, "}");
	if (b.oom) {
		lsc_buf_free(&b);
		return NULL;
	}
	return b.p;
}

static void node_free(struct lsc_node_rec *nr)
{
	if (!nr)
		return;
	free(nr->name);
	free(nr->wg_key);
	free(nr->addr4);
	free(nr->addr6);
	lsc_strv_free(&nr->routes);
	lsc_strv_free(&nr->endpoints);
	lsc_strv_free(&nr->primary);
	lsc_strv_free(&nr->standby);
	lsc_strv_free(&nr->tags);
	free(nr->peer_json);
	free(nr);
}

static struct lsc_node_rec *node_from_row(PGresult *r, int row)
{
	struct lsc_node_rec *nr = calloc(1, sizeof(*nr));

	if (!nr)
		return NULL;
	nr->id = strtoll(PQgetvalue(r, row, 0), NULL, 10);
	nr->name = strdup(PQgetvalue(r, row, 1));
	nr->wg_key = strdup(PQgetvalue(r, row, 2));
	nr->addr4 = strdup(PQgetvalue(r, row, 3));
	nr->addr6 = strdup(PQgetvalue(r, row, 4));
	if (!nr->name || !nr->wg_key || !nr->addr4 || !nr->addr6 ||
	    lsc_strv_split(&nr->routes, PQgetvalue(r, row, 5)) ||
	    lsc_strv_split(&nr->endpoints, PQgetvalue(r, row, 6)) ||
	    lsc_strv_split(&nr->tags, PQgetvalue(r, row, 12))) {
		node_free(nr);
		return NULL;
	}
	nr->listen_port = atoi(PQgetvalue(r, row, 7));
	snprintf(nr->status, sizeof(nr->status), "%s", PQgetvalue(r, row, 8));
	nr->key_expiry = strtoll(PQgetvalue(r, row, 9), NULL, 10);
	nr->last_seen = strtoll(PQgetvalue(r, row, 10), NULL, 10);
	nr->status_version = strtoll(PQgetvalue(r, row, 11), NULL, 10);
	return nr;
}

/* in peers' netmaps: approved, not revoked, key not expired */
static bool node_active(const struct lsc_node_rec *nr)
{
	return !strcmp(nr->status, "active") &&
	       (!nr->key_expiry || nr->key_expiry > ls_unix_time());
}

static const char *node_status(const struct lsc_node_rec *nr)
{
	if (!strcmp(nr->status, "active") && nr->key_expiry && nr->key_expiry <= ls_unix_time())
		return "expired";
	return nr->status;
}

/* index of id, or -(insertion point) - 1 */
static long node_pos(const struct lsc_net *n, int64_t id)
{
	size_t lo = 0, hi = n->n_nodes;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (n->nodes[mid]->id == id)
			return (long)mid;
		if (n->nodes[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

static struct lsc_node_rec *node_get(const struct lsc_net *n, int64_t id)
{
	long p = node_pos(n, id);

	return p >= 0 ? n->nodes[p] : NULL;
}

static int node_put(struct lsc_net *n, struct lsc_node_rec *nr)
{
	long p = node_pos(n, nr->id);
	size_t at;

	if (p >= 0) {
		nr->waiter = n->nodes[p]->waiter;
		node_free(n->nodes[p]);
		n->nodes[p] = nr;
		return 0;
	}
	if (n->n_nodes == n->cap_nodes) {
		size_t cap = n->cap_nodes ? n->cap_nodes * 2 : 64;
		struct lsc_node_rec **nv = realloc(n->nodes, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		n->nodes = nv;
		n->cap_nodes = cap;
	}
	at = (size_t)(-p - 1);
	memmove(n->nodes + at + 1, n->nodes + at, (n->n_nodes - at) * sizeof(*n->nodes));
	n->nodes[at] = nr;
	n->n_nodes++;
	return 0;
}

static void node_del(struct lsc_net *n, int64_t id)
{
	long p = node_pos(n, id);

	if (p < 0)
		return;
	node_free(n->nodes[p]);
	memmove(n->nodes + p, n->nodes + p + 1, (n->n_nodes - (size_t)p - 1) * sizeof(*n->nodes));
	n->n_nodes--;
}

struct lsc_net *lsc_net_find(struct lsc_server *s, const char *id, bool create)
{
	struct lsc_net *n;

	for (n = s->nets; n; n = n->next)
		if (!strcmp(n->id, id))
			return n;
	if (!create)
		return NULL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	snprintf(n->id, sizeof(n->id), "%s", id);
	n->next = s->nets;
	s->nets = n;
	return n;
}

static void net_clear(struct lsc_net *n)
{
	size_t i;

	for (i = 0; i < n->n_nodes; i++)
		node_free(n->nodes[i]);
	free(n->nodes);
	n->nodes = NULL;
	n->n_nodes = n->cap_nodes = 0;
	free(n->log);
	n->log = NULL;
	n->n_log = n->cap_log = 0;
	free(n->network_json);
	free(n->dns_json);
	free(n->audit_json);
	free(n->control_json);
	n->network_json = n->dns_json = n->audit_json = n->control_json = NULL;
	free(n->name);
	free(n->dns_suffix);
	n->name = n->dns_suffix = NULL;
	n->loaded = false;
	ls_acl_policy_free(n->acl);
	n->acl = NULL;
	free(n->acl_nodes);
	free(n->acl_addrs);
	free(n->acl_routes);
	n->acl_nodes = NULL;
	n->acl_addrs = n->acl_routes = NULL;
}

/* ls_acl_node views of the active nodes (pointers into the records), after a sync */
static int acl_index(struct lsc_net *n)
{
	size_t i, j, nroutes = 0, k = 0, rk = 0;

	free(n->acl_nodes);
	free(n->acl_addrs);
	free(n->acl_routes);
	n->acl_nodes = NULL;
	n->acl_addrs = n->acl_routes = NULL;
	if (!n->acl)
		return 0;
	for (i = 0; i < n->n_nodes; i++)
		nroutes += n->nodes[i]->primary.n;
	n->acl_nodes = calloc(n->n_nodes + 1, sizeof(*n->acl_nodes));
	n->acl_addrs = calloc(2 * n->n_nodes + 1, sizeof(*n->acl_addrs));
	n->acl_routes = calloc(nroutes + 1, sizeof(*n->acl_routes));
	if (!n->acl_nodes || !n->acl_addrs || !n->acl_routes)
		return -ENOMEM;
	for (i = 0; i < n->n_nodes; i++) {
		struct lsc_node_rec *nr = n->nodes[i];
		struct ls_acl_node *an = &n->acl_nodes[i];

		nr->acl_idx = i;
		an->id = nr->id;
		an->name = nr->name;
		an->tags = (const char *const *)nr->tags.v;
		an->n_tags = nr->tags.n;
		an->addrs = &n->acl_addrs[k];
		if (!ls_prefix_parse(nr->addr4, &n->acl_addrs[k], true))
			k++;
		if (!ls_prefix_parse(nr->addr6, &n->acl_addrs[k], true))
			k++;
		an->n_addrs = (size_t)(&n->acl_addrs[k] - an->addrs);
		an->routes = &n->acl_routes[rk];
		for (j = 0; j < nr->primary.n; j++)
			if (!ls_prefix_parse(nr->primary.v[j], &n->acl_routes[rk], false))
				rk++;
		an->n_routes = (size_t)(&n->acl_routes[rk] - an->routes);
	}
	n->n_acl_nodes = n->n_nodes;
	return 0;
}

/* may self see peer under the network's policy? */
static bool acl_visible(const struct lsc_net *n, const struct lsc_node_rec *self,
			const struct lsc_node_rec *peer)
{
	if (!n->acl || !n->acl_nodes)
		return true;
	return ls_acl_visible(n->acl, &n->acl_nodes[self->acl_idx], &n->acl_nodes[peer->acl_idx]);
}

void lsc_nets_free(struct lsc_server *s)
{
	sects_free();
	while (s->nets) {
		struct lsc_net *n = s->nets;

		s->nets = n->next;
		net_clear(n);
		free(n);
	}
}

/* the signed audit head as of the snapshot (read in its transaction) */
static void net_audit(struct lsc_server *s, struct lsc_net *n, PGconn *db)
{
	json_t *h;

	free(n->audit_json);
	n->audit_json = NULL;
	if (!s->have_identity)
		return;
	h = lsc_audit_head(s, db);
	if (h)
		n->audit_json = json_dumps(h, JSON_COMPACT);
	json_decref(h);
	free(n->control_json);
	n->control_json = NULL;
	if (s->schema_version >= 4) {
		/* the endorsed TLS keys of the servers: pinned clients follow them */
		PGresult *r = lsc_exec0(db, "SELECT pin, not_after, sig FROM tls_pins WHERE "
					    "not_after > extract(epoch from now()) ORDER BY created_at, pin");
		json_t *pins = json_array();
		int i;

		if (lsc_res_ok(db, r, "tls pins"))
			for (i = 0; i < PQntuples(r); i++)
				json_array_append_new(pins, json_pack("{s:s, s:I, s:s}", "pin",
								      PQgetvalue(r, i, 0), "not_after",
								      (json_int_t)strtoll(PQgetvalue(r, i, 1), NULL, 10),
								      "sig", PQgetvalue(r, i, 2)));
		PQclear(r);
		h = json_pack("{s:s, s:o}", "identity", s->identity_b64, "pins", pins);
		n->control_json = h ? json_dumps(h, JSON_COMPACT) : NULL;
		json_decref(h);
	}
}

/* ---- rendering ---- */

static void json_str(struct lsc_buf *b, const char *s)
{
	json_t *j = json_string(s);

	lsc_buf_json(b, j);
	json_decref(j);
}

static void str_array(struct lsc_buf *b, const struct lsc_strv *v)
{
	size_t i;

	lsc_buf_str(b, "[");
	for (i = 0; i < v->n; i++) {
		if (i)
			lsc_buf_str(b, ",");
		json_str(b, v->v[i]);
	}
	lsc_buf_str(b, "]");
}

static bool is_default_route(const char *p)
{
	return !strcmp(p, "0.0.0.0/0") || !strcmp(p, "::/0");
}

static void render_peer(struct lsc_server *s, struct lsc_net *n, struct lsc_node_rec *nr)
{
	struct lsc_buf b = {0};
	size_t i;

	free(nr->peer_json);
	nr->peer_json = NULL;
	nr->online = nr->last_seen && ls_unix_time() - nr->last_seen <= s->cfg.online_secs;
	lsc_buf_printf(&b, "{\"id\":%" PRId64 ",\"name\":", nr->id);
	json_str(&b, nr->name);
	lsc_buf_printf(&b, ",\"dns_name\":\"%s.%s\",\"wg_key\":", nr->name, n->dns_suffix);
	json_str(&b, nr->wg_key);
	lsc_buf_printf(&b, ",\"addresses\":[\"%s\",\"%s\"],\"allowed_ips\":[\"%s/32\",\"%s/128\"",
		       nr->addr4, nr->addr6, nr->addr4, nr->addr6);
	for (i = 0; i < nr->primary.n; i++)
		if (!is_default_route(nr->primary.v[i]))
			lsc_buf_printf(&b, ",\"%s\"", nr->primary.v[i]);
	lsc_buf_str(&b, "],\"endpoints\":");
	str_array(&b, &nr->endpoints);
	lsc_buf_str(&b, ",\"routes\":");
	str_array(&b, &nr->primary);
	lsc_buf_str(&b, ",\"standby_routes\":");
	str_array(&b, &nr->standby);
	lsc_buf_printf(&b, ",\"exit_node\":%s,\"online\":%s,\"last_seen\":",
		       nr->exit_node ? "true" : "false", nr->online ? "true" : "false");
	if (nr->last_seen)
		lsc_buf_printf(&b, "%" PRId64, nr->last_seen);
	else
		lsc_buf_str(&b, "null");
	lsc_buf_str(&b, ",\"home_relay\":null}");
	if (b.oom) {
		lsc_buf_free(&b);
		return;
	}
	nr->peer_json = b.p;
	nr->peer_len = b.len;
}

static void render_self(struct lsc_buf *b, struct lsc_net *n, struct lsc_node_rec *nr)
{
	lsc_buf_printf(b, "{\"id\":%" PRId64 ",\"name\":", nr->id);
	json_str(b, nr->name);
	lsc_buf_printf(b, ",\"dns_name\":\"%s.%s\",\"wg_key\":", nr->name, n->dns_suffix);
	json_str(b, nr->wg_key);
	lsc_buf_printf(b, ",\"addresses\":[\"%s\",\"%s\"],\"status\":\"%s\",\"key_expiry\":",
		       nr->addr4, nr->addr6, node_status(nr));
	if (nr->key_expiry)
		lsc_buf_printf(b, "%" PRId64, nr->key_expiry);
	else
		lsc_buf_str(b, "null");
	lsc_buf_str(b, ",\"routes\":");
	str_array(b, &nr->routes);
	lsc_buf_str(b, "}");
}

static void render_network(struct lsc_net *n)
{
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", n->id, "name", n->name, "ipv4",
			      n->ipv4, "ipv6", n->ipv6, "dns_suffix", n->dns_suffix);

	/* nodes rotate their keys a third of a short lifetime before expiry (userspace/trust.c) */
	if (j && n->key_lifetime > 0)
		json_object_set_new(j, "key_lifetime", json_integer(n->key_lifetime));

	free(n->network_json);
	n->network_json = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
}

static void render_dns(struct lsc_server *s, struct lsc_net *n)
{
	struct lsc_buf b = {0};
	bool first = true;
	size_t i;

	lsc_buf_str(&b, "{\"suffix\":");
	json_str(&b, n->dns_suffix);
	lsc_buf_str(&b, ",\"resolvers\":");
	lsc_buf_json(&b, s->cfg.dns_resolvers);
	lsc_buf_str(&b, ",\"search\":[");
	json_str(&b, n->dns_suffix);
	lsc_buf_str(&b, "],\"records\":[");
	for (i = 0; i < n->n_nodes; i++) {
		struct lsc_node_rec *nr = n->nodes[i];

		if (!node_active(nr))
			continue;
		lsc_buf_printf(&b,
			       "%s{\"name\":\"%s.%s\",\"type\":\"A\",\"value\":\"%s\"},"
			       "{\"name\":\"%s.%s\",\"type\":\"AAAA\",\"value\":\"%s\"}",
			       first ? "" : ",", nr->name, n->dns_suffix, nr->addr4, nr->name,
			       n->dns_suffix, nr->addr6);
		first = false;
	}
	lsc_buf_str(&b, "]}");
	free(n->dns_json);
	n->dns_json = b.oom ? NULL : b.p;
	if (b.oom)
		lsc_buf_free(&b);
}

/* ---- route primaries ---- */

struct route_ref {
	const char *prefix;
	int64_t id;
};

static int cmp_ref(const void *a, const void *b)
{
	const struct route_ref *x = a, *y = b;
	int c = strcmp(x->prefix, y->prefix);

	if (c)
		return c;
	return x->id < y->id ? -1 : x->id > y->id;
}

static bool strv_equal(const struct lsc_strv *a, const struct lsc_strv *b)
{
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]))
			return false;
	return true;
}

static int strv_push(struct lsc_strv *s, const char *v)
{
	char **nv = realloc(s->v, (s->n + 1) * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	s->v = nv;
	s->v[s->n] = strdup(v);
	if (!s->v[s->n])
		return -ENOMEM;
	s->n++;
	return 0;
}

/* Recomputes primary/standby for every node; re-renders those whose split changed or
 * that are marked (mark == gen). */
static void assign_routes(struct lsc_server *s, struct lsc_net *n, uint64_t gen)
{
	struct route_ref *refs = NULL;
	size_t nrefs = 0, cap = 0, i, j;

	for (i = 0; i < n->n_nodes; i++) {
		struct lsc_node_rec *nr = n->nodes[i];

		if (!node_active(nr))
			continue;
		for (j = 0; j < nr->routes.n; j++) {
			if (is_default_route(nr->routes.v[j]))
				continue;
			if (nrefs == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct route_ref *nv = realloc(refs, nc * sizeof(*nv));

				if (!nv)
					goto cleanup;
				refs = nv;
				cap = nc;
			}
			refs[nrefs].prefix = nr->routes.v[j];
			refs[nrefs].id = nr->id;
			nrefs++;
		}
	}
	if (nrefs)
		qsort(refs, nrefs, sizeof(*refs), cmp_ref);
	for (i = 0; i < n->n_nodes; i++) {
		struct lsc_node_rec *nr = n->nodes[i];
		struct lsc_strv prim = {0}, stby = {0};
		bool exit_node = false;

		for (j = 0; j < nr->routes.n; j++) {
			const char *p = nr->routes.v[j];
			struct route_ref key = {p, 0}, *first;
			size_t lo = 0, hi = nrefs;

			if (is_default_route(p)) {
				exit_node = true;
				strv_push(&prim, p);
				continue;
			}
			/* lowest id advertising p */
			while (lo < hi) {
				size_t mid = (lo + hi) / 2;

				if (cmp_ref(&refs[mid], &key) < 0)
					lo = mid + 1;
				else
					hi = mid;
			}
			first = lo < nrefs && !strcmp(refs[lo].prefix, p) ? &refs[lo] : NULL;
			if (!first || first->id == nr->id)
				strv_push(&prim, p);
			else
				strv_push(&stby, p);
		}
		if (nr->mark == gen || !nr->peer_json || exit_node != nr->exit_node ||
		    !strv_equal(&prim, &nr->primary) || !strv_equal(&stby, &nr->standby)) {
			lsc_strv_free(&nr->primary);
			lsc_strv_free(&nr->standby);
			nr->primary = prim;
			nr->standby = stby;
			nr->exit_node = exit_node;
			render_peer(s, n, nr);
		} else {
			lsc_strv_free(&prim);
			lsc_strv_free(&stby);
		}
	}
cleanup:
	free(refs);
}

/* ---- sync from the database ---- */

static int log_add(struct lsc_net *n, int64_t version, int64_t node_id)
{
	if (n->n_log == n->cap_log) {
		size_t cap = n->cap_log ? n->cap_log * 2 : 64;
		struct lsc_change *nv = realloc(n->log, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		n->log = nv;
		n->cap_log = cap;
	}
	n->log[n->n_log].version = version;
	n->log[n->n_log].node_id = node_id;
	n->n_log++;
	return 0;
}

static void log_trim(struct lsc_net *n, int64_t keep)
{
	int64_t floor = n->version - keep;
	size_t i = 0;

	if (floor <= n->log_floor)
		return;
	while (i < n->n_log && n->log[i].version <= floor)
		i++;
	memmove(n->log, n->log + i, (n->n_log - i) * sizeof(*n->log));
	n->n_log -= i;
	n->log_floor = floor;
}

int lsc_net_sync(struct lsc_server *s, struct lsc_net *n)
{
	PGconn *db = s->db;
	PGresult *r = NULL;
	const char *p[2];
	char from[24];
	int64_t version, net_version, dns_version, log_floor, key_lifetime;
	bool full, dns_changed;
	uint64_t gen = ++mark_gen;
	int ret = 0, i;

	if (!db || PQstatus(db) != CONNECTION_OK)
		return -EIO;
	if (!lsc_exec_ok(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
		return -EIO;
	p[0] = n->id;
	r = lsc_exec(db,
		     s->schema_version >= 5
			     ? "SELECT name, ipv4::text, ipv6::text, dns_suffix, version, net_version, "
			       "dns_version, log_floor, coalesce(acl_policy, ''), coalesce(key_lifetime, 0) "
			       "FROM networks WHERE id = $1"
			     : "SELECT name, ipv4::text, ipv6::text, dns_suffix, version, net_version, "
			       "dns_version, log_floor, coalesce(acl_policy, ''), 0 FROM networks WHERE id = $1",
		     1, p);
	if (!lsc_res_ok(db, r, "load network")) {
		ret = -EIO;
		goto rollback;
	}
	if (PQntuples(r) == 0) {
		ret = -ENOENT;
		goto rollback;
	}
	version = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
	net_version = strtoll(PQgetvalue(r, 0, 5), NULL, 10);
	dns_version = strtoll(PQgetvalue(r, 0, 6), NULL, 10);
	log_floor = strtoll(PQgetvalue(r, 0, 7), NULL, 10);
	key_lifetime = strtoll(PQgetvalue(r, 0, 9), NULL, 10);
	if (n->loaded && version == n->version) {
		PQclear(r);
		lsc_exec_ok(db, "COMMIT");
		return 0;
	}
	full = !n->loaded || log_floor > n->version || version < n->version ||
	       version - n->version > s->cfg.delta_versions;
	if (full) {
		net_clear(n);
		n->name = strdup(PQgetvalue(r, 0, 0));
		n->dns_suffix = strdup(PQgetvalue(r, 0, 3));
		snprintf(n->ipv4, sizeof(n->ipv4), "%s", PQgetvalue(r, 0, 1));
		snprintf(n->ipv6, sizeof(n->ipv6), "%s", PQgetvalue(r, 0, 2));
		if (PQgetvalue(r, 0, 8)[0] &&
		    ls_acl_parse(PQgetvalue(r, 0, 8), strlen(PQgetvalue(r, 0, 8)), &n->acl, NULL, 0))
			pr_err("network %s: the stored ACL policy does not parse: denying all", n->id);
		PQclear(r);
		r = lsc_exec(db, "SELECT " NODE_COLS " FROM nodes WHERE network_id = $1 ORDER BY id",
			     1, p);
		if (!lsc_res_ok(db, r, "load nodes")) {
			ret = -EIO;
			goto rollback;
		}
		for (i = 0; i < PQntuples(r); i++) {
			struct lsc_node_rec *nr = node_from_row(r, i);

			if (!nr || node_put(n, nr)) {
				node_free(nr);
				ret = -ENOMEM;
				goto rollback;
			}
		}
		PQclear(r);
		n->log_floor = version - s->cfg.delta_versions > log_floor
				       ? version - s->cfg.delta_versions
				       : log_floor;
		snprintf(from, sizeof(from), "%" PRId64, n->log_floor);
		p[1] = from;
		r = lsc_exec(db,
			     "SELECT version, node_id FROM changes WHERE network_id = $1 AND "
			     "version > $2 ORDER BY version, node_id",
			     2, p);
		if (!lsc_res_ok(db, r, "load change log")) {
			ret = -EIO;
			goto rollback;
		}
		for (i = 0; i < PQntuples(r); i++)
			log_add(n, strtoll(PQgetvalue(r, i, 0), NULL, 10),
				strtoll(PQgetvalue(r, i, 1), NULL, 10));
		PQclear(r);
		r = NULL;
		dns_changed = true;
		net_audit(s, n, db);
		n->loaded = true;
		n->version = version;
		n->net_version = net_version;
		n->key_lifetime = key_lifetime;
		render_network(n);
	} else {
		struct lsc_buf ids = {0};
		size_t first = n->n_log;
		bool name_changed = strcmp(n->name, PQgetvalue(r, 0, 0)) ||
				    strcmp(n->dns_suffix, PQgetvalue(r, 0, 3));

		if (name_changed) {
			free(n->name);
			free(n->dns_suffix);
			n->name = strdup(PQgetvalue(r, 0, 0));
			n->dns_suffix = strdup(PQgetvalue(r, 0, 3));
		}
		PQclear(r);
		snprintf(from, sizeof(from), "%" PRId64, n->version);
		p[1] = from;
		r = lsc_exec(db,
			     "SELECT version, node_id FROM changes WHERE network_id = $1 AND "
			     "version > $2 ORDER BY version, node_id",
			     2, p);
		if (!lsc_res_ok(db, r, "load change log")) {
			ret = -EIO;
			goto rollback;
		}
		lsc_buf_str(&ids, "{");
		for (i = 0; i < PQntuples(r); i++) {
			log_add(n, strtoll(PQgetvalue(r, i, 0), NULL, 10),
				strtoll(PQgetvalue(r, i, 1), NULL, 10));
			lsc_buf_printf(&ids, "%s%s", i ? "," : "", PQgetvalue(r, i, 1));
		}
		lsc_buf_str(&ids, "}");
		PQclear(r);
		p[1] = ids.p ? ids.p : "{}";
		r = lsc_exec(db,
			     "SELECT " NODE_COLS " FROM nodes WHERE network_id = $1 AND "
			     "id = ANY($2::bigint[]) ORDER BY id",
			     2, p);
		lsc_buf_free(&ids);
		if (!lsc_res_ok(db, r, "load changed nodes")) {
			ret = -EIO;
			goto rollback;
		}
		/* changed nodes that are gone were deleted */
		for (size_t k = first; k < n->n_log; k++) {
			int64_t id = n->log[k].node_id;
			bool found = false;

			for (i = 0; i < PQntuples(r) && !found; i++)
				found = strtoll(PQgetvalue(r, i, 0), NULL, 10) == id;
			if (!found)
				node_del(n, id);
		}
		for (i = 0; i < PQntuples(r); i++) {
			struct lsc_node_rec *nr = node_from_row(r, i);

			if (!nr || node_put(n, nr)) {
				node_free(nr);
				ret = -ENOMEM;
				goto rollback;
			}
			nr->mark = gen;
		}
		PQclear(r);
		r = NULL;
		dns_changed = dns_version != n->dns_version || name_changed;
		net_audit(s, n, db);
		n->version = version;
		if (net_version != n->net_version || name_changed || key_lifetime != n->key_lifetime) {
			n->net_version = net_version;
			n->key_lifetime = key_lifetime;
			render_network(n);
		}
		if (name_changed) /* dns names of every peer */
			for (size_t k = 0; k < n->n_nodes; k++)
				n->nodes[k]->mark = gen;
	}
	lsc_exec_ok(db, "COMMIT");
	lsc_net_sections_seen(n, version);
	n->dns_version = dns_version;
	if (n->known_version < version)
		n->known_version = version;
	assign_routes(s, n, gen);
	if (acl_index(n))
		pr_err("network %s: out of memory indexing the ACL", n->id);
	if (dns_changed)
		render_dns(s, n);
	n->liveness_ms = ls_now_ms();
	log_trim(n, s->cfg.delta_versions);
	if (full) /* the node records are new: point them at their waiters again */
		for (struct lsc_req *w = n->waiters; w; w = w->wnext) {
			struct lsc_node_rec *nr = node_get(n, w->node_id);

			if (nr)
				nr->waiter = w;
		}
	pr_debug("network %s: snapshot at version %" PRId64 " (%s, %zu nodes)", n->name,
		 n->version, full ? "full" : "incremental", n->n_nodes);
	return 0;
rollback:
	PQclear(r);
	lsc_exec_ok(db, "ROLLBACK");
	if (ret == -ENOMEM || ret == -EIO)
		net_clear(n);
	return ret;
}

/* online/last_seen do not move the version: refresh them for full maps now and then */
static void refresh_liveness(struct lsc_server *s, struct lsc_net *n)
{
	const char *p[1] = {n->id};
	int64_t now = ls_unix_time();
	PGresult *r;
	int i;

	if (ls_now_ms() - n->liveness_ms < 10000 || !s->db)
		return;
	n->liveness_ms = ls_now_ms();
	r = lsc_exec(s->db,
		     "SELECT id, coalesce(extract(epoch from last_seen)::bigint, 0) FROM nodes "
		     "WHERE network_id = $1",
		     1, p);
	if (!lsc_res_ok(s->db, r, "liveness")) {
		PQclear(r);
		return;
	}
	for (i = 0; i < PQntuples(r); i++) {
		struct lsc_node_rec *nr = node_get(n, strtoll(PQgetvalue(r, i, 0), NULL, 10));
		int64_t seen = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		bool online = seen && now - seen <= s->cfg.online_secs;

		if (nr && (nr->last_seen != seen || nr->online != online)) {
			nr->last_seen = seen;
			render_peer(s, n, nr);
		}
	}
	PQclear(r);
}

/* ---- netmap documents ---- */

char *lsc_netmap_build(struct lsc_server *s, struct lsc_net *n, int64_t node_id, int64_t since,
		       size_t *len)
{
	struct lsc_node_rec *self = node_get(n, node_id);
	struct lsc_buf b = {0};
	bool full, first = true, self_changed = false, audit_changed, control_changed;
	size_t i;

	if (!self || !n->loaded)
		return NULL;
	/* a node whose status moved after since (approved, revoked) gets a full map; a node
	 * that is not active sees no peers */
	full = since <= 0 || since > n->version || since < n->log_floor ||
	       since < self->status_version || !node_active(self);
	if (full)
		refresh_liveness(s, n);
	lsc_buf_printf(&b, "{\"version\":%" PRId64 ",\"full\":%s", n->version,
		       full ? "true" : "false");
	if (full || n->net_version > since) {
		lsc_buf_str(&b, ",\"network\":");
		lsc_buf_str(&b, n->network_json ? n->network_json : "null");
	}
	/* a delta carries self, audit and control only when they changed after since: every
	 * waiter of one change then gets the same delta (without an ACL: packet_filter below),
	 * which the server signs once (server.c). Self changes are logged under self's id;
	 * a new peer comes with an audit entry in its transaction (a new head); the TLS pins
	 * move with an audit entry too, and control follows audit to be safe. */
	for (i = n->n_log; !full && !self_changed && i > 0 && n->log[i - 1].version > since; i--)
		self_changed = n->log[i - 1].node_id == node_id;
	audit_changed = full || sect_since(n, false, since);
	control_changed = audit_changed || sect_since(n, true, since);
	if (full || self_changed) {
		lsc_buf_str(&b, ",\"self\":");
		render_self(&b, n, self);
	}
	lsc_buf_str(&b, ",\"peers\":[");
	if (full) {
		for (i = 0; i < n->n_nodes; i++) {
			struct lsc_node_rec *nr = n->nodes[i];

			if (nr == self || !node_active(nr) || !nr->peer_json || !node_active(self) ||
			    !acl_visible(n, self, nr))
				continue;
			if (!first)
				lsc_buf_add(&b, ",", 1);
			lsc_buf_add(&b, nr->peer_json, nr->peer_len);
			first = false;
		}
		lsc_buf_str(&b, "]");
	} else {
		uint64_t gen = ++mark_gen;
		struct lsc_buf removed = {0};
		bool first_removed = true;
		size_t k = n->n_log;

		while (k > 0 && n->log[k - 1].version > since)
			k--;
		for (; k < n->n_log; k++) {
			int64_t id = n->log[k].node_id;
			struct lsc_node_rec *nr = node_get(n, id);

			if (id == node_id)
				continue;
			if (nr) {
				if (nr->mark == gen)
					continue;
				nr->mark = gen;
			}
			if (nr && node_active(nr) && nr->peer_json && acl_visible(n, self, nr)) {
				if (!first)
					lsc_buf_add(&b, ",", 1);
				lsc_buf_add(&b, nr->peer_json, nr->peer_len);
				first = false;
			} else {
				lsc_buf_printf(&removed, "%s%" PRId64, first_removed ? "" : ",", id);
				first_removed = false;
			}
		}
		lsc_buf_str(&b, "],\"peers_removed\":[");
		if (removed.p) {
			/* dedupe removed ids (a deleted node may be logged several times) */
			struct lsc_strv ids = {0};

			lsc_strv_split(&ids, removed.p);
			for (i = 0; i < ids.n; i++) {
				bool dup = false;

				for (size_t m = 0; m < i && !dup; m++)
					dup = !strcmp(ids.v[m], ids.v[i]);
				if (!dup)
					lsc_buf_printf(&b, "%s%s", b.p[b.len - 1] == '[' ? "" : ",",
						       ids.v[i]);
			}
			lsc_strv_free(&ids);
		}
		lsc_buf_free(&removed);
		lsc_buf_str(&b, "]");
	}
	if (full) {
		lsc_buf_str(&b, ",\"relays\":");
		lsc_buf_str(&b, s->relays_json);
	}
	if (full || n->dns_version > since) {
		lsc_buf_str(&b, ",\"dns\":");
		lsc_buf_str(&b, n->dns_json ? n->dns_json : "null");
	}
	if (n->control_json && control_changed) {
		lsc_buf_str(&b, ",\"control\":");
		lsc_buf_str(&b, n->control_json);
	}
	if (n->audit_json && audit_changed) {
		lsc_buf_str(&b, ",\"audit\":");
		lsc_buf_str(&b, n->audit_json);
	}
	if (n->acl && n->acl_nodes && node_active(self)) {
		/* only the rules that concern self; sent with every map (cheap, idempotent) */
		json_t *pf = ls_acl_compile_filter(n->acl, &n->acl_nodes[self->acl_idx],
						   n->acl_nodes, n->n_acl_nodes);

		lsc_buf_str(&b, ",\"packet_filter\":");
		if (pf)
			lsc_buf_json(&b, pf);
		else
			b.oom = 1;
		json_decref(pf);
	}
	lsc_buf_str(&b, "}");
	if (b.oom) {
		lsc_buf_free(&b);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

static void reply_unchanged(struct lsc_req *r, int64_t version)
{
	char *body = NULL;
	int n = asprintf(&body, "{\"version\":%" PRId64 ",\"unchanged\":true}", version);

	if (n < 0) {
		lsc_reply_error(r, 500, LS_ERR_INTERNAL, "out of memory");
		return;
	}
	lsc_reply(r, 200, body, (size_t)n);
}

static void reply_map(struct lsc_server *s, struct lsc_req *r, struct lsc_net *n,
		      int64_t node_id, int64_t since)
{
	size_t len = 0;
	char *body = lsc_netmap_build(s, n, node_id, since, &len);

	if (!body) {
		lsc_reply_error(r, 404, LS_ERR_UNKNOWN_NODE, "node %" PRId64 " is not in network %s",
				node_id, n->name ? n->name : n->id);
		return;
	}
	lsc_reply(r, 200, body, len);
}

void lsc_netmap_request(struct lsc_server *s, struct lsc_req *r, struct lsc_net *n,
			int64_t node_id, int64_t since, int wait_s)
{
	if (since > 0 && since == n->version) {
		struct lsc_node_rec *self = node_get(n, node_id);

		if (wait_s <= 0) {
			reply_unchanged(r, n->version);
			return;
		}
		if (wait_s > s->cfg.max_wait)
			wait_s = s->cfg.max_wait;
		/* one long-poll per node: a new one answers the old (a restarted agent's
		 * connection would otherwise stay suspended until its deadline) */
		if (self && self->waiter) {
			struct lsc_req *old = self->waiter;

			lsc_waiter_remove(old);
			reply_unchanged(old, old->since);
			lsc_resume(old);
		}
		if (self)
			self->waiter = r;
		r->net = n;
		r->node_id = node_id;
		r->since = since;
		r->deadline_ms = ls_now_ms() + (uint64_t)wait_s * 1000;
		r->waiting = true;
		r->wprev = NULL;
		r->wnext = n->waiters;
		if (n->waiters)
			n->waiters->wprev = r;
		n->waiters = r;
		n->n_waiters++;
		s->n_waiters++;
		return;
	}
	reply_map(s, r, n, node_id, since);
}

void lsc_waiter_remove(struct lsc_req *r)
{
	struct lsc_net *n = r->net;

	struct lsc_node_rec *nr;

	if (!r->waiting || !n)
		return;
	nr = node_get(n, r->node_id);
	if (nr && nr->waiter == r)
		nr->waiter = NULL;
	if (r->wprev)
		r->wprev->wnext = r->wnext;
	else
		n->waiters = r->wnext;
	if (r->wnext)
		r->wnext->wprev = r->wprev;
	r->wprev = r->wnext = NULL;
	r->waiting = false;
	n->n_waiters--;
	r->srv->n_waiters--;
}

void lsc_net_wake(struct lsc_server *s, struct lsc_net *n)
{
	struct lsc_req *w = n->waiters, *next;

	for (; w; w = next) {
		next = w->wnext;
		if (w->since >= n->version)
			continue;
		lsc_waiter_remove(w);
		reply_map(s, w, n, w->node_id, w->since);
		s->bytes_wake += w->reply_len;
		s->n_wake++;
		lsc_resume(w);
	}
}

void lsc_waiters_sweep(struct lsc_server *s, uint64_t now_ms)
{
	struct lsc_net *n;

	for (n = s->nets; n; n = n->next) {
		struct lsc_req *w = n->waiters, *next;

		for (; w; w = next) {
			next = w->wnext;
			if (w->deadline_ms > now_ms)
				continue;
			lsc_waiter_remove(w);
			reply_unchanged(w, w->since);
			lsc_resume(w);
		}
	}
}

/* ---- liveness ---- */

void lsc_live_mark(struct lsc_server *s, int64_t node_id)
{
	if (s->n_live == s->cap_live) {
		size_t cap = s->cap_live ? s->cap_live * 2 : 1024;
		int64_t *nv;

		if (cap > (1u << 22))
			return;
		nv = realloc(s->live, cap * sizeof(*nv));
		if (!nv)
			return;
		s->live = nv;
		s->cap_live = cap;
	}
	s->live[s->n_live++] = node_id;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

void lsc_live_flush(struct lsc_server *s)
{
	struct lsc_buf b = {0};
	const char *p[1];
	PGresult *r;
	size_t i;

	if (!s->n_live || !s->db || PQstatus(s->db) != CONNECTION_OK)
		return;
	qsort(s->live, s->n_live, sizeof(*s->live), cmp_i64);
	lsc_buf_str(&b, "{");
	for (i = 0; i < s->n_live; i++) {
		if (i && s->live[i] == s->live[i - 1])
			continue;
		lsc_buf_printf(&b, "%s%" PRId64, b.len > 1 ? "," : "", s->live[i]);
	}
	lsc_buf_str(&b, "}");
	s->n_live = 0;
	if (b.oom) {
		lsc_buf_free(&b);
		return;
	}
	p[0] = b.p;
	r = lsc_exec(s->db, "UPDATE nodes SET last_seen = now() WHERE id = ANY($1::bigint[])", 1, p);
	lsc_res_ok(s->db, r, "liveness flush");
	PQclear(r);
	lsc_buf_free(&b);
}
