// SPDX-License-Identifier: MIT
#include "acl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACL_MAX_RULES 10000
#define ACL_MAX_ITEMS 1000 /* per list */
#define ACL_MAX_NAME 63

static void set_err(char *err, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (!err || !size)
		return;
	va_start(ap, fmt);
	vsnprintf(err, size, fmt, ap);
	va_end(ap);
}

const char *ls_acl_proto_name(enum ls_acl_proto proto)
{
	switch (proto) {
	case LS_ACL_PROTO_TCP: return "tcp";
	case LS_ACL_PROTO_UDP: return "udp";
	case LS_ACL_PROTO_ICMP: return "icmp";
	case LS_ACL_PROTO_ANY: break;
	}
	return "any";
}

int ls_acl_proto_parse(const char *s, enum ls_acl_proto *out)
{
	static const struct { const char *name; enum ls_acl_proto proto; } names[] = {
		{ "any", LS_ACL_PROTO_ANY }, { "tcp", LS_ACL_PROTO_TCP },
		{ "udp", LS_ACL_PROTO_UDP }, { "icmp", LS_ACL_PROTO_ICMP },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (s && !strcmp(s, names[i].name)) {
			*out = names[i].proto;
			return 0;
		}
	}
	return -EINVAL;
}

/* A DNS label or tag: lowercase letters, digits and '-', not at either end. */
static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > ACL_MAX_NAME || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

static void sel_free(struct ls_acl_sel *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(s[i].name);
	free(s);
}

void ls_acl_policy_free(struct ls_acl_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_groups; i++) {
		free(p->groups[i].name);
		sel_free(p->groups[i].members, p->groups[i].n_members);
	}
	free(p->groups);
	for (size_t i = 0; i < p->n_rules; i++) {
		sel_free(p->rules[i].src, p->rules[i].n_src);
		sel_free(p->rules[i].dst, p->rules[i].n_dst);
		free(p->rules[i].ports);
	}
	free(p->rules);
	for (size_t i = 0; i < p->n_auto_routes; i++)
		sel_free(p->auto_routes[i].by, p->auto_routes[i].n_by);
	free(p->auto_routes);
	sel_free(p->auto_exit, p->n_auto_exit);
	free(p);
}

static const struct ls_acl_group *find_group(const struct ls_acl_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_groups; i++)
		if (!strcmp(p->groups[i].name, name))
			return &p->groups[i];
	return NULL;
}

/* Parses one selector string. where names the field for error messages. */
static int parse_sel(const char *s, struct ls_acl_sel *sel, bool allow_group, const struct ls_acl_policy *p,
		     const char *where, char *err, size_t err_size)
{
	const char *name = NULL;

	memset(sel, 0, sizeof(*sel));
	if (!strcmp(s, "*")) {
		sel->kind = LS_SEL_ALL;
		return 0;
	}
	if (!strncmp(s, "tag:", 4)) {
		sel->kind = LS_SEL_TAG;
		name = s + 4;
	} else if (!strncmp(s, "group:", 6)) {
		if (!allow_group) {
			set_err(err, err_size, "%s: `%s': groups cannot contain groups", where, s);
			return -EINVAL;
		}
		sel->kind = LS_SEL_GROUP;
		name = s + 6;
		if (!find_group(p, name)) {
			set_err(err, err_size, "%s: `%s': no such group (define it under \"groups\")", where, s);
			return -EINVAL;
		}
	} else if (!strncmp(s, "host:", 5)) {
		sel->kind = LS_SEL_HOST;
		name = s + 5;
	} else if (strchr(s, '/') || strchr(s, ':') || (s[0] >= '0' && s[0] <= '9' && strchr(s, '.'))) {
		sel->kind = LS_SEL_PREFIX;
		if (ls_prefix_parse(s, &sel->prefix, false)) {
			set_err(err, err_size, "%s: `%s' is not a valid CIDR prefix (host bits must be zero)",
				where, s);
			return -EINVAL;
		}
		return 0;
	} else {
		sel->kind = LS_SEL_HOST;
		name = s;
	}
	if (!valid_name(name)) {
		set_err(err, err_size,
			"%s: `%s' is not a valid name (lowercase letters, digits and '-', at most %d)", where, s,
			ACL_MAX_NAME);
		return -EINVAL;
	}
	sel->name = strdup(name);
	return sel->name ? 0 : -ENOMEM;
}

static int parse_sel_list(json_t *arr, struct ls_acl_sel **out, size_t *n_out, bool allow_group,
			  const struct ls_acl_policy *p, const char *where, char *err, size_t err_size)
{
	struct ls_acl_sel *sels;
	size_t n, i;
	json_t *v;
	int ret;

	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		set_err(err, err_size, "%s: must be a non-empty array of selectors", where);
		return -EINVAL;
	}
	n = json_array_size(arr);
	if (n > ACL_MAX_ITEMS) {
		set_err(err, err_size, "%s: more than %d entries", where, ACL_MAX_ITEMS);
		return -EINVAL;
	}
	sels = calloc(n, sizeof(*sels));
	if (!sels)
		return -ENOMEM;
	json_array_foreach(arr, i, v) {
		char w[128];

		snprintf(w, sizeof(w), "%s[%zu]", where, i);
		if (!json_is_string(v)) {
			set_err(err, err_size, "%s: must be a string", w);
			sel_free(sels, i);
			return -EINVAL;
		}
		ret = parse_sel(json_string_value(v), &sels[i], allow_group, p, w, err, err_size);
		if (ret) {
			sel_free(sels, i);
			return ret;
		}
	}
	*out = sels;
	*n_out = n;
	return 0;
}

static int parse_port(const char *s, uint16_t *out)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	v = strtol(s, &end, 10);
	if (*end || v < 0 || v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

static int parse_ports(json_t *arr, struct ls_acl_rule *r, const char *where, char *err, size_t err_size)
{
	size_t i;
	json_t *v;

	if (!arr)
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > ACL_MAX_ITEMS) {
		set_err(err, err_size, "%s: must be a non-empty array of ports (\"22\", \"8000-8100\", \"*\")",
			where);
		return -EINVAL;
	}
	r->ports = calloc(json_array_size(arr), sizeof(*r->ports));
	if (!r->ports)
		return -ENOMEM;
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);
		char buf[32];
		char *dash;
		struct ls_port_range pr;

		if (!s || strlen(s) >= sizeof(buf)) {
			set_err(err, err_size, "%s[%zu]: must be a string such as \"22\" or \"8000-8100\"", where, i);
			return -EINVAL;
		}
		if (!strcmp(s, "*")) {
			/* every port: the rule is not port-limited at all */
			free(r->ports);
			r->ports = NULL;
			r->n_ports = 0;
			return 0;
		}
		strcpy(buf, s);
		dash = strchr(buf, '-');
		if (dash)
			*dash = '\0';
		if (parse_port(buf, &pr.from) || (dash ? parse_port(dash + 1, &pr.to) : (pr.to = pr.from, 0)) ||
		    pr.from > pr.to) {
			set_err(err, err_size, "%s[%zu]: `%s' is not a port or range (0-65535, low-high)", where, i, s);
			return -EINVAL;
		}
		r->ports[r->n_ports++] = pr;
	}
	return 0;
}

static int parse_rule(json_t *obj, size_t idx, struct ls_acl_rule *r, const struct ls_acl_policy *p, char *err,
		      size_t err_size)
{
	char where[64];
	const char *key;
	json_t *v;
	int ret;

	if (!json_is_object(obj)) {
		set_err(err, err_size, "rules[%zu]: must be an object {src, dst, ports, proto}", idx);
		return -EINVAL;
	}
	json_object_foreach(obj, key, v) {
		if (strcmp(key, "src") && strcmp(key, "dst") && strcmp(key, "ports") && strcmp(key, "proto")) {
			set_err(err, err_size, "rules[%zu].%s: unknown field (expected src, dst, ports, proto)", idx,
				key);
			return -EINVAL;
		}
	}
	snprintf(where, sizeof(where), "rules[%zu].src", idx);
	ret = parse_sel_list(json_object_get(obj, "src"), &r->src, &r->n_src, true, p, where, err, err_size);
	if (ret)
		return ret;
	snprintf(where, sizeof(where), "rules[%zu].dst", idx);
	ret = parse_sel_list(json_object_get(obj, "dst"), &r->dst, &r->n_dst, true, p, where, err, err_size);
	if (ret)
		return ret;
	v = json_object_get(obj, "proto");
	if (v && (!json_is_string(v) || ls_acl_proto_parse(json_string_value(v), &r->proto))) {
		set_err(err, err_size, "rules[%zu].proto: must be one of \"tcp\", \"udp\", \"icmp\", \"any\"", idx);
		return -EINVAL;
	}
	snprintf(where, sizeof(where), "rules[%zu].ports", idx);
	ret = parse_ports(json_object_get(obj, "ports"), r, where, err, err_size);
	if (ret)
		return ret;
	if (r->n_ports && r->proto != LS_ACL_PROTO_TCP && r->proto != LS_ACL_PROTO_UDP) {
		set_err(err, err_size, "rules[%zu].ports: ports need \"proto\": \"tcp\" or \"udp\" (got \"%s\")", idx,
			ls_acl_proto_name(r->proto));
		return -EINVAL;
	}
	return 0;
}

int ls_acl_parse_json(json_t *doc, struct ls_acl_policy **out, char *err, size_t err_size)
{
	struct ls_acl_policy *p;
	json_t *groups, *rules, *vis, *v;
	const char *key;
	size_t i;
	int ret = -EINVAL;

	if (!json_is_object(doc)) {
		set_err(err, err_size, "policy: must be a JSON object with \"rules\"");
		return -EINVAL;
	}
	json_object_foreach(doc, key, v) {
		if (strcmp(key, "groups") && strcmp(key, "rules") && strcmp(key, "visibility") &&
		    strcmp(key, "auto_approve")) {
			set_err(err, err_size,
				"%s: unknown field (expected groups, rules, visibility, auto_approve)", key);
			return -EINVAL;
		}
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;

	groups = json_object_get(doc, "groups");
	if (groups) {
		json_t *members;

		if (!json_is_object(groups) || json_object_size(groups) > ACL_MAX_ITEMS) {
			set_err(err, err_size, "groups: must be an object of name -> [members]");
			goto cleanup;
		}
		p->groups = calloc(json_object_size(groups) + 1, sizeof(*p->groups));
		if (!p->groups) {
			ret = -ENOMEM;
			goto cleanup;
		}
		json_object_foreach(groups, key, members) {
			struct ls_acl_group *g = &p->groups[p->n_groups];
			char where[128];

			if (!valid_name(key)) {
				set_err(err, err_size, "groups.%s: not a valid group name", key);
				goto cleanup;
			}
			g->name = strdup(key);
			if (!g->name) {
				ret = -ENOMEM;
				goto cleanup;
			}
			p->n_groups++;
			snprintf(where, sizeof(where), "groups.%s", key);
			ret = parse_sel_list(members, &g->members, &g->n_members, false, p, where, err, err_size);
			if (ret)
				goto cleanup;
			ret = -EINVAL;
		}
	}

	rules = json_object_get(doc, "rules");
	if (!json_is_array(rules)) {
		set_err(err, err_size, "rules: must be an array (an empty array denies everything)");
		goto cleanup;
	}
	if (json_array_size(rules) > ACL_MAX_RULES) {
		set_err(err, err_size, "rules: more than %d rules", ACL_MAX_RULES);
		goto cleanup;
	}
	p->rules = calloc(json_array_size(rules) + 1, sizeof(*p->rules));
	if (!p->rules) {
		ret = -ENOMEM;
		goto cleanup;
	}
	json_array_foreach(rules, i, v) {
		ret = parse_rule(v, i, &p->rules[i], p, err, err_size);
		p->n_rules = i + 1;
		if (ret)
			goto cleanup;
	}

	vis = json_object_get(doc, "visibility");
	if (vis) {
		const char *s = json_string_value(vis);

		if (!s || (strcmp(s, "acl") && strcmp(s, "all"))) {
			set_err(err, err_size, "visibility: must be \"acl\" or \"all\"");
			ret = -EINVAL;
			goto cleanup;
		}
		p->visibility_all = !strcmp(s, "all");
	}
	v = json_object_get(doc, "auto_approve");
	if (v) {
		json_t *routes = json_object_get(v, "routes"), *ex = json_object_get(v, "exit_node"), *by;

		if (!json_is_object(v)) {
			set_err(err, err_size, "auto_approve: must be an object {\"routes\", \"exit_node\"}");
			ret = -EINVAL;
			goto cleanup;
		}
		json_object_foreach(v, key, by) {
			if (strcmp(key, "routes") && strcmp(key, "exit_node")) {
				set_err(err, err_size, "auto_approve.%s: unknown field (expected routes, exit_node)",
					key);
				ret = -EINVAL;
				goto cleanup;
			}
		}
		if (routes) {
			if (!json_is_object(routes) || json_object_size(routes) > ACL_MAX_ITEMS) {
				set_err(err, err_size, "auto_approve.routes: must be an object of prefix -> [selectors]");
				ret = -EINVAL;
				goto cleanup;
			}
			p->auto_routes = calloc(json_object_size(routes) + 1, sizeof(*p->auto_routes));
			if (!p->auto_routes) {
				ret = -ENOMEM;
				goto cleanup;
			}
			json_object_foreach(routes, key, by) {
				struct ls_acl_auto_route *ar = &p->auto_routes[p->n_auto_routes];
				char where[160];

				snprintf(where, sizeof(where), "auto_approve.routes.%.100s", key);
				if (ls_prefix_parse(key, &ar->prefix, false)) {
					set_err(err, err_size, "%s: `%s' is not a valid CIDR prefix", where, key);
					ret = -EINVAL;
					goto cleanup;
				}
				ret = parse_sel_list(by, &ar->by, &ar->n_by, true, p, where, err, err_size);
				if (ret)
					goto cleanup;
				p->n_auto_routes++;
			}
		}
		if (ex) {
			ret = parse_sel_list(ex, &p->auto_exit, &p->n_auto_exit, true, p, "auto_approve.exit_node",
					     err, err_size);
			if (ret)
				goto cleanup;
		}
	}
	*out = p;
	return 0;
cleanup:
	ls_acl_policy_free(p);
	return ret;
}

int ls_acl_parse(const char *json, size_t len, struct ls_acl_policy **out, char *err, size_t err_size)
{
	json_error_t jerr;
	json_t *doc;
	int ret;

	doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		set_err(err, err_size, "policy: invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
			jerr.text);
		return -EINVAL;
	}
	ret = ls_acl_parse_json(doc, out, err, err_size);
	json_decref(doc);
	return ret;
}

static bool node_has_tag(const struct ls_acl_node *n, const char *tag)
{
	for (size_t i = 0; i < n->n_tags; i++)
		if (!strcmp(n->tags[i], tag))
			return true;
	return false;
}

static bool node_in_prefix(const struct ls_acl_node *n, const struct ls_prefix *pfx)
{
	for (size_t i = 0; i < n->n_addrs; i++)
		if (ls_prefix_contains(pfx, &n->addrs[i]))
			return true;
	return false;
}

/* Does selector s name node n as a whole (by identity or by one of its addresses)? */
static bool sel_matches_node(const struct ls_acl_policy *p, const struct ls_acl_sel *s,
			     const struct ls_acl_node *n)
{
	switch (s->kind) {
	case LS_SEL_ALL:
		return true;
	case LS_SEL_TAG:
		return node_has_tag(n, s->name);
	case LS_SEL_HOST:
		return n->name && !strcmp(n->name, s->name);
	case LS_SEL_PREFIX:
		return node_in_prefix(n, &s->prefix);
	case LS_SEL_GROUP: {
		const struct ls_acl_group *g = find_group(p, s->name);

		for (size_t i = 0; g && i < g->n_members; i++)
			if (sel_matches_node(p, &g->members[i], n))
				return true;
		return false;
	}
	}
	return false;
}

bool ls_acl_auto_approves(const struct ls_acl_policy *p, const struct ls_acl_node *node,
			  const struct ls_prefix *route)
{
	if (!p)
		return false;
	if (route->len == 0) {
		for (size_t i = 0; i < p->n_auto_exit; i++)
			if (sel_matches_node(p, &p->auto_exit[i], node))
				return true;
		return false;
	}
	for (size_t i = 0; i < p->n_auto_routes; i++) {
		const struct ls_acl_auto_route *ar = &p->auto_routes[i];

		if (!ls_prefix_contains(&ar->prefix, route))
			continue;
		for (size_t j = 0; j < ar->n_by; j++)
			if (sel_matches_node(p, &ar->by[j], node))
				return true;
	}
	return false;
}

/* Does selector s (a dst) cover address addr of node n? Prefixes also match inside
 * the node's routes (a subnet router's LAN). */
static bool sel_matches_dst(const struct ls_acl_policy *p, const struct ls_acl_sel *s, const struct ls_acl_node *n,
			    const struct ls_prefix *addr)
{
	if (s->kind == LS_SEL_PREFIX) {
		if (addr)
			return ls_prefix_contains(&s->prefix, addr);
		if (node_in_prefix(n, &s->prefix))
			return true;
		for (size_t i = 0; i < n->n_routes; i++)
			if (ls_prefix_overlap(&s->prefix, &n->routes[i]))
				return true;
		return false;
	}
	if (s->kind == LS_SEL_GROUP) {
		const struct ls_acl_group *g = find_group(p, s->name);

		for (size_t i = 0; g && i < g->n_members; i++)
			if (sel_matches_dst(p, &g->members[i], n, addr))
				return true;
		return false;
	}
	if (!sel_matches_node(p, s, n))
		return false;
	/* A node selector covers the node's own addresses and its routes. */
	if (!addr)
		return true;
	for (size_t i = 0; i < n->n_addrs; i++)
		if (ls_prefix_contains(&n->addrs[i], addr))
			return true;
	for (size_t i = 0; i < n->n_routes; i++)
		if (ls_prefix_contains(&n->routes[i], addr))
			return true;
	return false;
}

static bool rule_port_ok(const struct ls_acl_rule *r, uint16_t port, enum ls_acl_proto proto)
{
	if (r->proto != LS_ACL_PROTO_ANY && r->proto != proto)
		return false;
	if (!r->n_ports)
		return true;
	for (size_t i = 0; i < r->n_ports; i++)
		if (port >= r->ports[i].from && port <= r->ports[i].to)
			return true;
	return false;
}

static bool rule_src_ok(const struct ls_acl_policy *p, const struct ls_acl_rule *r, const struct ls_acl_node *src)
{
	for (size_t i = 0; i < r->n_src; i++)
		if (sel_matches_node(p, &r->src[i], src))
			return true;
	return false;
}

static bool rule_dst_ok(const struct ls_acl_policy *p, const struct ls_acl_rule *r, const struct ls_acl_node *dst,
			const struct ls_prefix *addr)
{
	for (size_t i = 0; i < r->n_dst; i++)
		if (sel_matches_dst(p, &r->dst[i], dst, addr))
			return true;
	return false;
}

bool ls_acl_allows(const struct ls_acl_policy *p, const struct ls_acl_node *src, const struct ls_acl_node *dst,
		   const struct ls_prefix *dst_addr, uint16_t port, enum ls_acl_proto proto, int *rule_index)
{
	if (rule_index)
		*rule_index = -1;
	if (!p)
		return true;
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct ls_acl_rule *r = &p->rules[i];

		if (rule_port_ok(r, port, proto) && rule_src_ok(p, r, src) && rule_dst_ok(p, r, dst, dst_addr)) {
			if (rule_index)
				*rule_index = (int)i;
			return true;
		}
	}
	return false;
}

static bool any_rule_connects(const struct ls_acl_policy *p, const struct ls_acl_node *a, const struct ls_acl_node *b)
{
	for (size_t i = 0; i < p->n_rules; i++)
		if (rule_src_ok(p, &p->rules[i], a) && rule_dst_ok(p, &p->rules[i], b, NULL))
			return true;
	return false;
}

bool ls_acl_visible(const struct ls_acl_policy *p, const struct ls_acl_node *self, const struct ls_acl_node *peer)
{
	if (!p || p->visibility_all)
		return true;
	return any_rule_connects(p, self, peer) || any_rule_connects(p, peer, self);
}

static int append_prefix(json_t *arr, const struct ls_prefix *pfx)
{
	char buf[LS_PREFIX_STRLEN];
	size_t i;
	json_t *v;

	ls_prefix_format(pfx, buf);
	json_array_foreach(arr, i, v)
		if (!strcmp(json_string_value(v), buf))
			return 0;
	return json_array_append_new(arr, json_string(buf));
}

/* Resolves a src selector to prefixes (node addresses, or the prefix itself). */
static int resolve_src(const struct ls_acl_policy *p, const struct ls_acl_sel *s, const struct ls_acl_node *nodes,
		       size_t n_nodes, json_t *out)
{
	if (s->kind == LS_SEL_ALL) {
		struct ls_prefix any4 = { .family = AF_INET }, any6 = { .family = AF_INET6 };

		append_prefix(out, &any4);
		return append_prefix(out, &any6);
	}
	if (s->kind == LS_SEL_PREFIX)
		return append_prefix(out, &s->prefix);
	for (size_t i = 0; i < n_nodes; i++) {
		if (!sel_matches_node(p, s, &nodes[i]))
			continue;
		for (size_t j = 0; j < nodes[i].n_addrs; j++)
			append_prefix(out, &nodes[i].addrs[j]);
	}
	/* Groups may hold prefixes too. */
	if (s->kind == LS_SEL_GROUP) {
		const struct ls_acl_group *g = find_group(p, s->name);

		for (size_t i = 0; g && i < g->n_members; i++)
			if (g->members[i].kind == LS_SEL_PREFIX || g->members[i].kind == LS_SEL_ALL)
				resolve_src(p, &g->members[i], nodes, n_nodes, out);
	}
	return 0;
}

/* The part of self a dst selector covers: its addresses and routes, narrowed to a prefix. */
static void resolve_dst(const struct ls_acl_policy *p, const struct ls_acl_sel *s, const struct ls_acl_node *self,
			json_t *out)
{
	if (s->kind == LS_SEL_GROUP) {
		const struct ls_acl_group *g = find_group(p, s->name);

		for (size_t i = 0; g && i < g->n_members; i++)
			resolve_dst(p, &g->members[i], self, out);
		return;
	}
	if (s->kind == LS_SEL_PREFIX) {
		for (size_t i = 0; i < self->n_addrs; i++)
			if (ls_prefix_contains(&s->prefix, &self->addrs[i]))
				append_prefix(out, &self->addrs[i]);
		for (size_t i = 0; i < self->n_routes; i++) {
			if (ls_prefix_contains(&s->prefix, &self->routes[i]))
				append_prefix(out, &self->routes[i]);
			else if (ls_prefix_contains(&self->routes[i], &s->prefix))
				append_prefix(out, &s->prefix);
		}
		return;
	}
	if (!sel_matches_node(p, s, self))
		return;
	for (size_t i = 0; i < self->n_addrs; i++)
		append_prefix(out, &self->addrs[i]);
	for (size_t i = 0; i < self->n_routes; i++)
		append_prefix(out, &self->routes[i]);
}

static json_t *ports_json(const struct ls_acl_rule *r)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < r->n_ports; i++) {
		char buf[16];

		if (r->ports[i].from == r->ports[i].to)
			snprintf(buf, sizeof(buf), "%u", r->ports[i].from);
		else
			snprintf(buf, sizeof(buf), "%u-%u", r->ports[i].from, r->ports[i].to);
		json_array_append_new(arr, json_string(buf));
	}
	return arr;
}

json_t *ls_acl_compile_filter(const struct ls_acl_policy *p, const struct ls_acl_node *self,
			      const struct ls_acl_node *nodes, size_t n_nodes)
{
	json_t *filter = json_array();

	if (!filter)
		return NULL;
	if (!p) {
		json_t *src = json_array(), *dst = json_array();
		struct ls_prefix any4 = { .family = AF_INET }, any6 = { .family = AF_INET6 };

		append_prefix(src, &any4);
		append_prefix(src, &any6);
		for (size_t i = 0; i < self->n_addrs; i++)
			append_prefix(dst, &self->addrs[i]);
		for (size_t i = 0; i < self->n_routes; i++)
			append_prefix(dst, &self->routes[i]);
		json_array_append_new(filter, json_pack("{s:o, s:o, s:[], s:s}", "src", src, "dst", dst, "ports",
							"proto", "any"));
		return filter;
	}
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct ls_acl_rule *r = &p->rules[i];
		json_t *src, *dst;

		dst = json_array();
		for (size_t j = 0; j < r->n_dst; j++)
			resolve_dst(p, &r->dst[j], self, dst);
		if (json_array_size(dst) == 0) {
			json_decref(dst);
			continue; /* the rule does not concern this node */
		}
		src = json_array();
		for (size_t j = 0; j < r->n_src; j++)
			resolve_src(p, &r->src[j], nodes, n_nodes, src);
		if (json_array_size(src) == 0) {
			json_decref(src);
			json_decref(dst);
			continue; /* nobody it names exists yet */
		}
		json_array_append_new(filter, json_pack("{s:o, s:o, s:o, s:s, s:i}", "src", src, "dst", dst, "ports",
							ports_json(r), "proto", ls_acl_proto_name(r->proto), "rule",
							(json_int_t)i));
	}
	return filter;
}
