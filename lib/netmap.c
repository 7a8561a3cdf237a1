// SPDX-License-Identifier: MIT
#include "netmap.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---- errors ------------------------------------------------------------------------- */

struct perr {
	char *buf;
	size_t size;
};

__attribute__((format(printf, 2, 3))) static int fail(struct perr *e, const char *fmt, ...)
{
	va_list ap;

	if (e->buf && e->size) {
		va_start(ap, fmt);
		vsnprintf(e->buf, e->size, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* ---- freeing ------------------------------------------------------------------------ */

static void strv_free(struct ls_nm_strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

static void prefixv_free(struct ls_nm_prefixv *p)
{
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

static void peer_free(struct ls_nm_peer *p)
{
	if (!p)
		return;
	free(p->name);
	free(p->dns_name);
	prefixv_free(&p->addresses);
	prefixv_free(&p->allowed_ips);
	strv_free(&p->endpoints);
	prefixv_free(&p->routes);
	prefixv_free(&p->standby_routes);
	free(p->home_relay);
	free(p);
}

static void network_free(struct ls_nm_network *n)
{
	free(n->id);
	free(n->name);
	free(n->dns_suffix);
	memset(n, 0, sizeof(*n));
}

static void self_free(struct ls_nm_self *s)
{
	free(s->name);
	free(s->dns_name);
	prefixv_free(&s->addresses);
	prefixv_free(&s->routes);
	memset(s, 0, sizeof(*s));
}

static void relays_free(struct ls_nm_relays *r)
{
	strv_free(&r->stun);
	for (size_t i = 0; i < r->n_turn; i++) {
		free(r->turn[i].url);
		free(r->turn[i].username);
		free(r->turn[i].credential);
	}
	free(r->turn);
	strv_free(&r->stream);
	strv_free(&r->udp);
	memset(r, 0, sizeof(*r));
}

static void dns_free(struct ls_nm_dns *d)
{
	free(d->suffix);
	strv_free(&d->resolvers);
	strv_free(&d->search);
	for (size_t i = 0; i < d->n_records; i++) {
		free(d->records[i].name);
		free(d->records[i].type);
		free(d->records[i].value);
	}
	free(d->records);
	memset(d, 0, sizeof(*d));
}

void ls_netmap_free(struct ls_netmap *nm)
{
	if (!nm)
		return;
	network_free(&nm->network);
	self_free(&nm->self);
	for (size_t i = 0; i < nm->n_peers; i++)
		peer_free(nm->peers[i]);
	free(nm->peers);
	free(nm->peers_removed);
	relays_free(&nm->relays);
	dns_free(&nm->dns);
	json_decref(nm->packet_filter);
	free(nm);
}

const char *ls_nm_status_name(enum ls_nm_status s)
{
	switch (s) {
	case LS_NM_ACTIVE:
		return "active";
	case LS_NM_PENDING:
		return "pending";
	case LS_NM_REVOKED:
		return "revoked";
	case LS_NM_EXPIRED:
		return "expired";
	}
	return "unknown";
}

/* ---- field parsers ------------------------------------------------------------------ */

/* A printable string without control characters, 1..LS_NM_MAX_STR bytes. */
static int get_str(json_t *obj, const char *key, const char *where, bool required, char **out,
		   struct perr *e)
{
	json_t *v = json_object_get(obj, key);
	const char *s;
	size_t len;

	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required)
			return fail(e, "%s: missing \"%s\"", where, key);
		return 0;
	}
	if (!json_is_string(v))
		return fail(e, "%s.%s: not a string", where, key);
	s = json_string_value(v);
	len = json_string_length(v);
	if (len == 0 && required)
		return fail(e, "%s.%s: empty", where, key);
	if (len > LS_NM_MAX_STR)
		return fail(e, "%s.%s: longer than %d bytes", where, key, LS_NM_MAX_STR);
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return fail(e, "%s.%s: control character in `%.40s'", where, key, s);
	}
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static int get_int(json_t *obj, const char *key, const char *where, bool required, int64_t min,
		   int64_t *out, struct perr *e)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) {
		if (required)
			return fail(e, "%s: missing \"%s\"", where, key);
		*out = 0;
		return 0;
	}
	if (!json_is_integer(v))
		return fail(e, "%s.%s: not an integer", where, key);
	if (json_integer_value(v) < min)
		return fail(e, "%s.%s: %" JSON_INTEGER_FORMAT " is below %" PRId64, where, key,
			    json_integer_value(v), min);
	*out = json_integer_value(v);
	return 0;
}

static int get_bool(json_t *obj, const char *key, const char *where, bool *out, struct perr *e)
{
	json_t *v = json_object_get(obj, key);

	*out = false;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return fail(e, "%s.%s: not a boolean", where, key);
	*out = json_is_true(v);
	return 0;
}

static int get_key(json_t *obj, const char *key, const char *where, bool required, uint8_t out[32],
		   bool *has, struct perr *e)
{
	json_t *v = json_object_get(obj, key);

	if (has)
		*has = false;
	if (!v || json_is_null(v)) {
		if (required)
			return fail(e, "%s: missing \"%s\"", where, key);
		return 0;
	}
	if (!json_is_string(v) || ls_key_from_base64(out, json_string_value(v)))
		return fail(e, "%s.%s: `%.60s' is not a base64 WireGuard key", where, key,
			    json_is_string(v) ? json_string_value(v) : "(not a string)");
	if (has)
		*has = true;
	return 0;
}

static json_t *get_array(json_t *obj, const char *key, const char *where, int *ret, struct perr *e)
{
	json_t *v = json_object_get(obj, key);

	*ret = 0;
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_array(v)) {
		*ret = fail(e, "%s.%s: not an array", where, key);
		return NULL;
	}
	if (json_array_size(v) > LS_NM_MAX_LIST) {
		*ret = fail(e, "%s.%s: more than %d entries", where, key, LS_NM_MAX_LIST);
		return NULL;
	}
	return v;
}

enum prefix_kind { PK_ADDR, PK_PREFIX };

static int get_prefixv(json_t *obj, const char *key, const char *where, enum prefix_kind kind,
		       struct ls_nm_prefixv *out, struct perr *e)
{
	json_t *arr, *v;
	size_t i;
	int ret;

	memset(out, 0, sizeof(*out));
	arr = get_array(obj, key, where, &ret, e);
	if (!arr || json_array_size(arr) == 0)
		return ret;
	out->v = calloc(json_array_size(arr), sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	json_array_foreach(arr, i, v) {
		struct ls_prefix *p = &out->v[i];
		const char *s = json_string_value(v);

		if (!s || ls_prefix_parse(s, p, false) ||
		    (kind == PK_ADDR && p->len != ls_prefix_max_len(p))) {
			ret = fail(e, "%s.%s[%zu]: `%.60s' is not %s", where, key, i,
				   s ? s : "(not a string)", kind == PK_ADDR ? "an address" : "a prefix");
			prefixv_free(out);
			return ret;
		}
		out->n++;
	}
	return 0;
}

enum str_kind { SK_ENDPOINT, SK_TEXT };

static int get_strv(json_t *obj, const char *key, const char *where, enum str_kind kind,
		    struct ls_nm_strv *out, struct perr *e)
{
	json_t *arr, *v;
	size_t i;
	int ret;

	memset(out, 0, sizeof(*out));
	arr = get_array(obj, key, where, &ret, e);
	if (!arr || json_array_size(arr) == 0)
		return ret;
	out->v = calloc(json_array_size(arr), sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);
		struct sockaddr_storage ss;
		socklen_t sl;
		bool bad = !s || json_string_length(v) == 0 || json_string_length(v) > LS_NM_MAX_STR ||
			   strlen(s) != json_string_length(v);

		if (!bad && kind == SK_ENDPOINT)
			bad = ls_endpoint_parse(s, &ss, &sl) != 0;
		for (const char *c = s; !bad && *c; c++)
			bad = (unsigned char)*c < 0x20 || *c == 0x7f;
		if (bad) {
			ret = fail(e, "%s.%s[%zu]: `%.60s' is not %s", where, key, i,
				   s ? s : "(not a string)",
				   kind == SK_ENDPOINT ? "an endpoint (ip:port, [ip6]:port)" : "a valid string");
			strv_free(out);
			return ret;
		}
		out->v[i] = strdup(s);
		if (!out->v[i]) {
			strv_free(out);
			return -ENOMEM;
		}
		out->n++;
	}
	return 0;
}

static int check_object(json_t *v, const char *where, struct perr *e)
{
	if (!json_is_object(v))
		return fail(e, "%s: not an object", where);
	return 0;
}

static int parse_network(json_t *o, struct ls_nm_network *n, struct perr *e)
{
	const char *w = "network";
	char *s = NULL;
	int ret;

	if ((ret = check_object(o, w, e)) || (ret = get_str(o, "id", w, true, &n->id, e)) ||
	    (ret = get_str(o, "name", w, true, &n->name, e)) ||
	    (ret = get_str(o, "dns_suffix", w, false, &n->dns_suffix, e)))
		return ret;
	if ((ret = get_str(o, "ipv4", w, false, &s, e)))
		return ret;
	if (s) {
		if (ls_prefix_parse(s, &n->ipv4, false) || n->ipv4.family != AF_INET)
			ret = fail(e, "network.ipv4: `%s' is not an IPv4 prefix", s);
		n->has_ipv4 = true;
		free(s);
		if (ret)
			return ret;
	}
	if ((ret = get_str(o, "ipv6", w, false, &s, e)))
		return ret;
	if (s) {
		if (ls_prefix_parse(s, &n->ipv6, false) || n->ipv6.family != AF_INET6)
			ret = fail(e, "network.ipv6: `%s' is not an IPv6 prefix", s);
		n->has_ipv6 = true;
		free(s);
	}
	return ret;
}

static int parse_self(json_t *o, struct ls_nm_self *s, struct perr *e)
{
	const char *w = "self";
	char *status = NULL;
	int ret;

	if ((ret = check_object(o, w, e)) || (ret = get_int(o, "id", w, true, 1, &s->id, e)) ||
	    (ret = get_str(o, "name", w, true, &s->name, e)) ||
	    (ret = get_str(o, "dns_name", w, false, &s->dns_name, e)) ||
	    (ret = get_key(o, "wg_key", w, false, s->wg_key, &s->has_wg_key, e)) ||
	    (ret = get_prefixv(o, "addresses", w, PK_ADDR, &s->addresses, e)) ||
	    (ret = get_int(o, "key_expiry", w, false, 0, &s->key_expiry, e)) ||
	    (ret = get_prefixv(o, "routes", w, PK_PREFIX, &s->routes, e)) ||
	    (ret = get_str(o, "status", w, false, &status, e)))
		return ret;
	if (!status || !strcmp(status, "active"))
		s->status = LS_NM_ACTIVE;
	else if (!strcmp(status, "pending"))
		s->status = LS_NM_PENDING;
	else if (!strcmp(status, "revoked"))
		s->status = LS_NM_REVOKED;
	else if (!strcmp(status, "expired"))
		s->status = LS_NM_EXPIRED;
	else
		ret = fail(e, "self.status: `%s' is not active, pending, revoked or expired", status);
	free(status);
	return ret;
}

static int parse_peer(json_t *o, size_t idx, struct ls_nm_peer **out, struct perr *e)
{
	struct ls_nm_peer *p;
	char w[48];
	int ret;

	*out = NULL;
	snprintf(w, sizeof(w), "peers[%zu]", idx);
	if ((ret = check_object(o, w, e)))
		return ret;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if ((ret = get_int(o, "id", w, true, 1, &p->id, e)) || (ret = get_str(o, "name", w, true, &p->name, e)) ||
	    (ret = get_str(o, "dns_name", w, false, &p->dns_name, e)) ||
	    (ret = get_key(o, "wg_key", w, true, p->wg_key, NULL, e)) ||
	    (ret = get_prefixv(o, "addresses", w, PK_ADDR, &p->addresses, e)) ||
	    (ret = get_prefixv(o, "allowed_ips", w, PK_PREFIX, &p->allowed_ips, e)) ||
	    (ret = get_strv(o, "endpoints", w, SK_ENDPOINT, &p->endpoints, e)) ||
	    (ret = get_prefixv(o, "routes", w, PK_PREFIX, &p->routes, e)) ||
	    (ret = get_prefixv(o, "standby_routes", w, PK_PREFIX, &p->standby_routes, e)) ||
	    (ret = get_bool(o, "exit_node", w, &p->exit_node, e)) ||
	    (ret = get_bool(o, "online", w, &p->online, e)) ||
	    (ret = get_int(o, "last_seen", w, false, 0, &p->last_seen, e)) ||
	    (ret = get_str(o, "home_relay", w, false, &p->home_relay, e)))
		goto cleanup;
	for (size_t i = 0; i < p->allowed_ips.n; i++) {
		if (ls_prefix_is_default(&p->allowed_ips.v[i])) {
			char buf[LS_PREFIX_STRLEN];

			ls_prefix_format(&p->allowed_ips.v[i], buf);
			ret = fail(e, "%s.allowed_ips[%zu]: `%s' is a default route (exit nodes are chosen by the client)",
				   w, i, buf);
			goto cleanup;
		}
	}
	*out = p;
	return 0;
cleanup:
	peer_free(p);
	return ret;
}

static int parse_relays(json_t *o, struct ls_nm_relays *r, struct perr *e)
{
	const char *w = "relays";
	json_t *arr, *t;
	size_t i;
	int ret;

	if ((ret = check_object(o, w, e)) || (ret = get_strv(o, "stun", w, SK_ENDPOINT, &r->stun, e)) ||
	    (ret = get_strv(o, "stream", w, SK_ENDPOINT, &r->stream, e)) ||
	    (ret = get_strv(o, "udp", w, SK_ENDPOINT, &r->udp, e)))
		return ret;
	arr = get_array(o, "turn", w, &ret, e);
	if (!arr || json_array_size(arr) == 0)
		return ret;
	r->turn = calloc(json_array_size(arr), sizeof(*r->turn));
	if (!r->turn)
		return -ENOMEM;
	json_array_foreach(arr, i, t) {
		struct ls_nm_turn *tu = &r->turn[i];
		char tw[48];

		snprintf(tw, sizeof(tw), "relays.turn[%zu]", i);
		r->n_turn++;
		if ((ret = check_object(t, tw, e)) || (ret = get_str(t, "url", tw, true, &tu->url, e)) ||
		    (ret = get_str(t, "username", tw, false, &tu->username, e)) ||
		    (ret = get_str(t, "credential", tw, false, &tu->credential, e)))
			return ret;
		if (strncmp(tu->url, "turn:", 5) && strncmp(tu->url, "turns:", 6))
			return fail(e, "%s.url: `%s' is not a turn: or turns: URL", tw, tu->url);
	}
	return 0;
}

static int parse_dns(json_t *o, struct ls_nm_dns *d, struct perr *e)
{
	const char *w = "dns";
	json_t *arr, *r;
	size_t i;
	int ret;

	if ((ret = check_object(o, w, e)) || (ret = get_str(o, "suffix", w, false, &d->suffix, e)) ||
	    (ret = get_strv(o, "resolvers", w, SK_TEXT, &d->resolvers, e)) ||
	    (ret = get_strv(o, "search", w, SK_TEXT, &d->search, e)))
		return ret;
	arr = get_array(o, "records", w, &ret, e);
	if (!arr || json_array_size(arr) == 0)
		return ret;
	d->records = calloc(json_array_size(arr), sizeof(*d->records));
	if (!d->records)
		return -ENOMEM;
	json_array_foreach(arr, i, r) {
		struct ls_nm_dns_record *rec = &d->records[i];
		char rw[48];

		snprintf(rw, sizeof(rw), "dns.records[%zu]", i);
		d->n_records++;
		if ((ret = check_object(r, rw, e)) || (ret = get_str(r, "name", rw, true, &rec->name, e)) ||
		    (ret = get_str(r, "type", rw, true, &rec->type, e)) ||
		    (ret = get_str(r, "value", rw, true, &rec->value, e)))
			return ret;
		if (!strcmp(rec->type, "A") || !strcmp(rec->type, "AAAA")) {
			struct ls_prefix p;

			if (ls_prefix_parse(rec->value, &p, false) || p.len != ls_prefix_max_len(&p) ||
			    (p.family == AF_INET) != !strcmp(rec->type, "A"))
				return fail(e, "%s.value: `%s' is not an %s address", rw, rec->value, rec->type);
		}
	}
	return 0;
}

static int cmp_peer_id(const void *a, const void *b)
{
	const struct ls_nm_peer *x = *(const struct ls_nm_peer *const *)a;
	const struct ls_nm_peer *y = *(const struct ls_nm_peer *const *)b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_peer_key(const void *a, const void *b)
{
	const struct ls_nm_peer *x = *(const struct ls_nm_peer *const *)a;
	const struct ls_nm_peer *y = *(const struct ls_nm_peer *const *)b;

	return memcmp(x->wg_key, y->wg_key, LS_WG_KEY_LEN);
}

/* Sorted by id: rejects a duplicate id or a duplicate key, and a peer with self's key. */
static int check_peers_unique(struct ls_nm_peer **peers, size_t n, const struct ls_nm_self *self,
			      struct perr *e)
{
	struct ls_nm_peer **byk;
	int ret = 0;

	for (size_t i = 1; i < n; i++) {
		if (peers[i]->id == peers[i - 1]->id)
			return fail(e, "peers: id %" PRId64 " appears twice", peers[i]->id);
	}
	if (n == 0)
		return 0;
	byk = malloc(n * sizeof(*byk));
	if (!byk)
		return -ENOMEM;
	memcpy(byk, peers, n * sizeof(*byk));
	qsort(byk, n, sizeof(*byk), cmp_peer_key);
	for (size_t i = 0; i < n && !ret; i++) {
		char b64[LS_KEY_B64_LEN + 1];

		if (i > 0 && !memcmp(byk[i]->wg_key, byk[i - 1]->wg_key, LS_WG_KEY_LEN)) {
			ls_key_to_base64(b64, byk[i]->wg_key);
			ret = fail(e, "peers: ids %" PRId64 " and %" PRId64 " share the WireGuard key `%s'",
				   byk[i - 1]->id, byk[i]->id, b64);
		} else if (self && self->has_wg_key && !memcmp(byk[i]->wg_key, self->wg_key, LS_WG_KEY_LEN)) {
			ls_key_to_base64(b64, byk[i]->wg_key);
			ret = fail(e, "peers: id %" PRId64 " has self's WireGuard key `%s'", byk[i]->id, b64);
		} else if (self && byk[i]->id == self->id) {
			ret = fail(e, "peers: id %" PRId64 " is self", byk[i]->id);
		}
	}
	free(byk);
	return ret;
}

static int parse_doc(json_t *doc, struct ls_netmap *nm, struct perr *e)
{
	json_t *v, *arr;
	size_t i;
	int ret;

	if (!json_is_object(doc))
		return fail(e, "netmap: not a JSON object");
	if ((ret = get_int(doc, "version", "netmap", true, 0, &nm->version, e)) ||
	    (ret = get_bool(doc, "unchanged", "netmap", &nm->unchanged, e)))
		return ret;
	if (nm->unchanged)
		return 0;
	v = json_object_get(doc, "full");
	if (!v)
		return fail(e, "netmap: missing \"full\"");
	if (!json_is_boolean(v))
		return fail(e, "netmap.full: not a boolean");
	nm->full = json_is_true(v);

	v = json_object_get(doc, "network");
	if (v) {
		nm->has_network = true;
		if ((ret = parse_network(v, &nm->network, e)))
			return ret;
	} else if (nm->full) {
		return fail(e, "netmap: missing \"network\"");
	}
	v = json_object_get(doc, "self");
	if (v && !json_is_null(v)) {
		nm->has_self = true;
		if ((ret = parse_self(v, &nm->self, e)))
			return ret;
	} else if (nm->full) {
		return fail(e, "netmap: missing \"self\"");
	}

	arr = json_object_get(doc, "peers");
	if (arr && !json_is_array(arr))
		return fail(e, "netmap.peers: not an array");
	if (!arr && nm->full)
		return fail(e, "netmap: missing \"peers\"");
	if (arr && json_array_size(arr) > LS_NM_MAX_PEERS)
		return fail(e, "netmap.peers: more than %d peers", LS_NM_MAX_PEERS);
	if (arr && json_array_size(arr)) {
		nm->peers = calloc(json_array_size(arr), sizeof(*nm->peers));
		if (!nm->peers)
			return -ENOMEM;
		json_array_foreach(arr, i, v) {
			if ((ret = parse_peer(v, i, &nm->peers[i], e)))
				return ret;
			nm->n_peers++;
		}
		qsort(nm->peers, nm->n_peers, sizeof(*nm->peers), cmp_peer_id);
		if ((ret = check_peers_unique(nm->peers, nm->n_peers, nm->has_self ? &nm->self : NULL, e)))
			return ret;
	}

	arr = json_object_get(doc, "peers_removed");
	if (arr && !json_is_null(arr)) {
		if (nm->full)
			return fail(e, "netmap: \"peers_removed\" in a full map");
		if (!json_is_array(arr))
			return fail(e, "netmap.peers_removed: not an array");
		if (json_array_size(arr) > LS_NM_MAX_PEERS)
			return fail(e, "netmap.peers_removed: more than %d ids", LS_NM_MAX_PEERS);
		if (json_array_size(arr)) {
			nm->peers_removed = calloc(json_array_size(arr), sizeof(int64_t));
			if (!nm->peers_removed)
				return -ENOMEM;
		}
		json_array_foreach(arr, i, v) {
			if (!json_is_integer(v) || json_integer_value(v) < 1)
				return fail(e, "netmap.peers_removed[%zu]: not a node id", i);
			nm->peers_removed[nm->n_peers_removed++] = json_integer_value(v);
			if (ls_netmap_find_peer(nm, json_integer_value(v)))
				return fail(e, "netmap.peers_removed[%zu]: id %" JSON_INTEGER_FORMAT
					       " is also in peers", i, json_integer_value(v));
		}
	}

	v = json_object_get(doc, "relays");
	if (v && !json_is_null(v)) {
		nm->has_relays = true;
		if ((ret = parse_relays(v, &nm->relays, e)))
			return ret;
	}
	v = json_object_get(doc, "dns");
	if (v && !json_is_null(v)) {
		nm->has_dns = true;
		if ((ret = parse_dns(v, &nm->dns, e)))
			return ret;
	}
	v = json_object_get(doc, "packet_filter");
	if (v && !json_is_null(v)) {
		if (!json_is_array(v))
			return fail(e, "netmap.packet_filter: not an array");
		nm->packet_filter = json_incref(v);
	}
	return 0;
}

int ls_netmap_parse_json(json_t *doc, struct ls_netmap **out, char *err, size_t err_size)
{
	struct perr e = { err, err_size };
	struct ls_netmap *nm;
	int ret;

	*out = NULL;
	nm = calloc(1, sizeof(*nm));
	if (!nm)
		return -ENOMEM;
	ret = parse_doc(doc, nm, &e);
	if (ret) {
		if (ret == -ENOMEM && err && err_size)
			snprintf(err, err_size, "netmap: out of memory");
		ls_netmap_free(nm);
		return ret;
	}
	*out = nm;
	return 0;
}

int ls_netmap_parse(const char *json, size_t len, struct ls_netmap **out, char *err, size_t err_size)
{
	json_error_t jerr;
	json_t *doc;
	int ret;

	*out = NULL;
	doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		if (err && err_size)
			snprintf(err, err_size, "netmap: invalid JSON at line %d column %d: %s", jerr.line,
				 jerr.column, jerr.text);
		return -EINVAL;
	}
	ret = ls_netmap_parse_json(doc, out, err, err_size);
	json_decref(doc);
	return ret;
}

/* ---- lookup ------------------------------------------------------------------------- */

struct ls_nm_peer *ls_netmap_find_peer(const struct ls_netmap *nm, int64_t id)
{
	size_t lo = 0, hi = nm->n_peers;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (nm->peers[mid]->id == id)
			return nm->peers[mid];
		if (nm->peers[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

struct ls_nm_peer *ls_netmap_lookup_peer(const struct ls_netmap *nm, const char *s)
{
	char *end;
	long long id;

	if (!s || !*s)
		return NULL;
	id = strtoll(s, &end, 10);
	if (!*end && id > 0) {
		struct ls_nm_peer *p = ls_netmap_find_peer(nm, id);

		if (p)
			return p;
	}
	for (size_t i = 0; i < nm->n_peers; i++) {
		struct ls_nm_peer *p = nm->peers[i];

		if ((p->name && !strcmp(p->name, s)) || (p->dns_name && !strcmp(p->dns_name, s)))
			return p;
	}
	return NULL;
}

/* ---- serialisation ------------------------------------------------------------------ */

static json_t *prefixv_json(const struct ls_nm_prefixv *pv, bool addr_only)
{
	json_t *a = json_array();
	char buf[LS_PREFIX_STRLEN];

	for (size_t i = 0; a && i < pv->n; i++) {
		if (addr_only)
			ls_prefix_format_addr(&pv->v[i], buf);
		else
			ls_prefix_format(&pv->v[i], buf);
		json_array_append_new(a, json_string(buf));
	}
	return a;
}

static json_t *strv_json(const struct ls_nm_strv *sv)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < sv->n; i++)
		json_array_append_new(a, json_string(sv->v[i]));
	return a;
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *key_json(const uint8_t key[LS_WG_KEY_LEN])
{
	char b64[LS_KEY_B64_LEN + 1];

	ls_key_to_base64(b64, key);
	return json_string(b64);
}

static json_t *peer_json(const struct ls_nm_peer *p)
{
	return json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:b, s:o, s:o}", "id",
			 (json_int_t)p->id, "name", p->name, "dns_name", str_or_null(p->dns_name), "wg_key",
			 key_json(p->wg_key), "addresses", prefixv_json(&p->addresses, true), "allowed_ips",
			 prefixv_json(&p->allowed_ips, false), "endpoints", strv_json(&p->endpoints), "routes",
			 prefixv_json(&p->routes, false), "standby_routes", prefixv_json(&p->standby_routes, false),
			 "exit_node", p->exit_node, "online", p->online, "last_seen",
			 p->last_seen ? json_integer(p->last_seen) : json_null(), "home_relay",
			 str_or_null(p->home_relay));
}

static json_t *network_json(const struct ls_nm_network *n)
{
	char v4[LS_PREFIX_STRLEN], v6[LS_PREFIX_STRLEN];

	if (n->has_ipv4)
		ls_prefix_format(&n->ipv4, v4);
	if (n->has_ipv6)
		ls_prefix_format(&n->ipv6, v6);
	return json_pack("{s:s, s:s, s:o, s:o, s:o}", "id", n->id, "name", n->name, "ipv4",
			 n->has_ipv4 ? json_string(v4) : json_null(), "ipv6",
			 n->has_ipv6 ? json_string(v6) : json_null(), "dns_suffix", str_or_null(n->dns_suffix));
}

static json_t *self_json(const struct ls_nm_self *s)
{
	return json_pack("{s:I, s:s, s:o, s:o, s:o, s:s, s:o, s:o}", "id", (json_int_t)s->id, "name", s->name,
			 "dns_name", str_or_null(s->dns_name), "wg_key",
			 s->has_wg_key ? key_json(s->wg_key) : json_null(), "addresses",
			 prefixv_json(&s->addresses, true), "status", ls_nm_status_name(s->status), "key_expiry",
			 s->key_expiry ? json_integer(s->key_expiry) : json_null(), "routes",
			 prefixv_json(&s->routes, false));
}

json_t *ls_nm_relays_json(const struct ls_nm_relays *r)
{
	json_t *turn = json_array();

	for (size_t i = 0; turn && i < r->n_turn; i++)
		json_array_append_new(turn, json_pack("{s:s, s:o, s:o}", "url", r->turn[i].url, "username",
						      str_or_null(r->turn[i].username), "credential",
						      str_or_null(r->turn[i].credential)));
	return json_pack("{s:o, s:o, s:o, s:o}", "stun", strv_json(&r->stun), "turn", turn ? turn : json_array(),
			 "stream", strv_json(&r->stream), "udp", strv_json(&r->udp));
}

static json_t *dns_json(const struct ls_nm_dns *d)
{
	json_t *recs = json_array();

	for (size_t i = 0; recs && i < d->n_records; i++)
		json_array_append_new(recs, json_pack("{s:s, s:s, s:s}", "name", d->records[i].name, "type",
						      d->records[i].type, "value", d->records[i].value));
	return json_pack("{s:o, s:o, s:o, s:o}", "suffix", str_or_null(d->suffix), "resolvers",
			 strv_json(&d->resolvers), "search", strv_json(&d->search), "records",
			 recs ? recs : json_array());
}

json_t *ls_netmap_to_json(const struct ls_netmap *nm)
{
	json_t *doc, *peers;

	if (nm->unchanged)
		return json_pack("{s:I, s:b}", "version", (json_int_t)nm->version, "unchanged", 1);
	doc = json_pack("{s:I, s:b}", "version", (json_int_t)nm->version, "full", nm->full);
	if (!doc)
		return NULL;
	if (nm->has_self || nm->full)
		json_object_set_new(doc, "self", self_json(&nm->self));
	if (nm->has_network || nm->full)
		json_object_set_new(doc, "network", network_json(&nm->network));
	peers = json_array();
	for (size_t i = 0; peers && i < nm->n_peers; i++) {
		json_t *p = peer_json(nm->peers[i]);

		if (!p || json_array_append_new(peers, p)) {
			json_decref(peers);
			peers = NULL;
		}
	}
	if (!peers) {
		json_decref(doc);
		return NULL;
	}
	json_object_set_new(doc, "peers", peers);
	if (!nm->full) {
		json_t *rm = json_array();

		for (size_t i = 0; rm && i < nm->n_peers_removed; i++)
			json_array_append_new(rm, json_integer(nm->peers_removed[i]));
		json_object_set_new(doc, "peers_removed", rm);
	}
	if (nm->has_relays)
		json_object_set_new(doc, "relays", ls_nm_relays_json(&nm->relays));
	if (nm->has_dns)
		json_object_set_new(doc, "dns", dns_json(&nm->dns));
	if (nm->packet_filter)
		json_object_set(doc, "packet_filter", nm->packet_filter);
	return doc;
}

char *ls_netmap_dump(const struct ls_netmap *nm)
{
	json_t *doc = ls_netmap_to_json(nm);
	char *s;

	if (!doc)
		return NULL;
	s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return s;
}

/* ---- delta -------------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static bool removed_has(const int64_t *sorted, size_t n, int64_t id)
{
	return n && bsearch(&id, sorted, n, sizeof(*sorted), cmp_i64);
}

int ls_netmap_apply_delta(struct ls_netmap *base, struct ls_netmap *delta, char *err, size_t err_size)
{
	return ls_netmap_apply_delta_diff(base, delta, NULL, err, err_size);
}

int ls_netmap_apply_delta_diff(struct ls_netmap *base, struct ls_netmap *delta, struct ls_nm_diff *diff,
			       char *err, size_t err_size)
{
	struct perr e = { err, err_size };
	struct ls_nm_peer **merged, **drop = NULL;
	size_t n = 0, n_drop = 0, i = 0, j = 0;
	struct ls_nm_diff d = { 0 };
	int64_t *rm_sorted = NULL;
	int ret;

	if (diff)
		memset(diff, 0, sizeof(*diff));
	if (!base->full || base->unchanged)
		return fail(&e, "netmap: a delta applies only to a full map");
	if (delta->unchanged)
		return 0;
	if (delta->full)
		return fail(&e, "netmap: version %" PRId64 " is a full map, not a delta", delta->version);
	if (delta->version <= base->version)
		return fail(&e, "netmap: delta version %" PRId64 " is not newer than %" PRId64, delta->version,
			    base->version);
	if (delta->has_self && delta->self.id != base->self.id)
		return fail(&e, "netmap: delta is for node %" PRId64 ", this map is node %" PRId64, delta->self.id,
			    base->self.id);

	/* Merge two id-sorted lists; delta peers replace base peers, removed ids drop. */
	merged = malloc((base->n_peers + delta->n_peers + 1) * sizeof(*merged));
	drop = malloc((base->n_peers + 1) * sizeof(*drop));
	if (!merged || !drop) {
		ret = -ENOMEM;
		goto cleanup;
	}
	if (diff) {
		d.added = malloc((delta->n_peers + 1) * sizeof(*d.added));
		d.removed = malloc((base->n_peers + 1) * sizeof(*d.removed));
		d.changed = malloc((delta->n_peers + 1) * sizeof(*d.changed));
		if (!d.added || !d.removed || !d.changed) {
			ret = -ENOMEM;
			goto cleanup;
		}
	}
	if (delta->n_peers_removed) {
		rm_sorted = malloc(delta->n_peers_removed * sizeof(*rm_sorted));
		if (!rm_sorted) {
			ret = -ENOMEM;
			goto cleanup;
		}
		memcpy(rm_sorted, delta->peers_removed, delta->n_peers_removed * sizeof(*rm_sorted));
		qsort(rm_sorted, delta->n_peers_removed, sizeof(*rm_sorted), cmp_i64);
	}
	while (i < base->n_peers || j < delta->n_peers) {
		struct ls_nm_peer *b = i < base->n_peers ? base->peers[i] : NULL;
		struct ls_nm_peer *dp = j < delta->n_peers ? delta->peers[j] : NULL;

		if (b && (!dp || b->id < dp->id)) {
			if (removed_has(rm_sorted, delta->n_peers_removed, b->id)) {
				drop[n_drop++] = b;
				if (diff)
					d.removed[d.n_removed++] = b;
			} else {
				merged[n++] = b;
			}
			i++;
		} else if (dp && (!b || dp->id < b->id)) {
			merged[n++] = dp;
			if (diff)
				d.added[d.n_added++] = dp;
			j++;
		} else {
			drop[n_drop++] = b;
			merged[n++] = dp;
			if (diff) {
				unsigned int what = ls_nm_peer_compare(b, dp);

				if (what)
					d.changed[d.n_changed++] = (struct ls_nm_change){ b, dp, what };
			}
			i++;
			j++;
		}
	}
	/* a delta without self: this node is as it was (base's self) */
	if ((ret = check_peers_unique(merged, n, delta->has_self ? &delta->self : &base->self, &e)))
		goto cleanup;

	/* Commit: nothing below can fail. */
	if (diff) {
		d.owned = drop;
		d.n_owned = n_drop;
		drop = NULL;
		*diff = d;
		memset(&d, 0, sizeof(d));
	} else {
		for (size_t k = 0; k < n_drop; k++)
			peer_free(drop[k]);
	}
	free(base->peers);
	base->peers = merged;
	base->n_peers = n;
	merged = NULL;
	free(delta->peers);
	delta->peers = NULL;
	delta->n_peers = 0;
	base->version = delta->version;
	if (delta->has_self) {
		self_free(&base->self);
		base->self = delta->self;
		base->has_self = true;
		memset(&delta->self, 0, sizeof(delta->self));
		delta->has_self = false;
	}
	if (delta->has_network) {
		network_free(&base->network);
		base->network = delta->network;
		memset(&delta->network, 0, sizeof(delta->network));
	}
	if (delta->has_relays) {
		relays_free(&base->relays);
		base->relays = delta->relays;
		base->has_relays = true;
		memset(&delta->relays, 0, sizeof(delta->relays));
	}
	if (delta->has_dns) {
		dns_free(&base->dns);
		base->dns = delta->dns;
		base->has_dns = true;
		memset(&delta->dns, 0, sizeof(delta->dns));
	}
	if (delta->packet_filter) {
		json_decref(base->packet_filter);
		base->packet_filter = delta->packet_filter;
		delta->packet_filter = NULL;
	}
	ret = 0;
cleanup:
	free(merged);
	free(drop);
	free(rm_sorted);
	ls_nm_diff_free(&d);
	return ret;
}

/* ---- diff --------------------------------------------------------------------------- */

static bool prefixv_eq(const struct ls_nm_prefixv *a, const struct ls_nm_prefixv *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		if (!ls_prefix_equal(&a->v[i], &b->v[i]))
			return false;
	}
	return true;
}

static bool strv_eq(const struct ls_nm_strv *a, const struct ls_nm_strv *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		if (strcmp(a->v[i], b->v[i]))
			return false;
	}
	return true;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

unsigned int ls_nm_peer_compare(const struct ls_nm_peer *a, const struct ls_nm_peer *b)
{
	unsigned int what = 0;

	if (memcmp(a->wg_key, b->wg_key, LS_WG_KEY_LEN))
		what |= LS_NM_CHG_KEY;
	if (!prefixv_eq(&a->allowed_ips, &b->allowed_ips))
		what |= LS_NM_CHG_ALLOWED_IPS;
	if (!strv_eq(&a->endpoints, &b->endpoints))
		what |= LS_NM_CHG_ENDPOINTS;
	if (!prefixv_eq(&a->routes, &b->routes) || !prefixv_eq(&a->standby_routes, &b->standby_routes) ||
	    a->exit_node != b->exit_node)
		what |= LS_NM_CHG_ROUTES;
	if (!prefixv_eq(&a->addresses, &b->addresses))
		what |= LS_NM_CHG_ADDRESSES;
	if (!str_eq(a->name, b->name) || !str_eq(a->dns_name, b->dns_name) || a->online != b->online ||
	    a->last_seen != b->last_seen || !str_eq(a->home_relay, b->home_relay))
		what |= LS_NM_CHG_META;
	return what;
}

void ls_nm_diff_free(struct ls_nm_diff *d)
{
	for (size_t i = 0; i < d->n_owned; i++)
		peer_free(d->owned[i]);
	free(d->owned);
	free(d->added);
	free(d->removed);
	free(d->changed);
	memset(d, 0, sizeof(*d));
}

int ls_netmap_diff(const struct ls_netmap *old, const struct ls_netmap *new, struct ls_nm_diff *d)
{
	size_t no = old ? old->n_peers : 0, nn = new ? new->n_peers : 0, i = 0, j = 0;

	memset(d, 0, sizeof(*d));
	d->added = malloc((nn + 1) * sizeof(*d->added));
	d->removed = malloc((no + 1) * sizeof(*d->removed));
	d->changed = malloc((nn < no ? nn + 1 : no + 1) * sizeof(*d->changed));
	if (!d->added || !d->removed || !d->changed) {
		ls_nm_diff_free(d);
		return -ENOMEM;
	}
	while (i < no || j < nn) {
		const struct ls_nm_peer *a = i < no ? old->peers[i] : NULL;
		const struct ls_nm_peer *b = j < nn ? new->peers[j] : NULL;

		if (a && (!b || a->id < b->id)) {
			d->removed[d->n_removed++] = a;
			i++;
		} else if (b && (!a || b->id < a->id)) {
			d->added[d->n_added++] = b;
			j++;
		} else {
			unsigned int what = ls_nm_peer_compare(a, b);

			if (what)
				d->changed[d->n_changed++] = (struct ls_nm_change){ a, b, what };
			i++;
			j++;
		}
	}
	return 0;
}
