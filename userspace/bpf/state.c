// SPDX-License-Identifier: MIT
/* liblsbpf: desired state, reconciliation of the maps, garbage collection. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <jansson.h>

#include "bpf/lightscale.skel.h"
#include "log.h"
#include "util.h"
#include "userspace/bpf/lsbpf.h"
#include "userspace/bpf/lsbpf_int.h"

#define LSBPF_XLATE_HASH_MIN 256

/* ---- builders ---- */

struct lsbpf_state *lsbpf_state_new(void)
{
	return calloc(1, sizeof(struct lsbpf_state));
}

void lsbpf_state_free(struct lsbpf_state *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_rules; i++) {
		free(s->rules[i].src);
		free(s->rules[i].dst);
	}
	free(s->rules);
	free(s->xlates);
	free(s->routes);
	free(s->ifaces);
	free(s->allows);
	free(s);
}

#define GROW(arr, n)                                                       \
	({                                                                 \
		void *_p = realloc((arr), ((n) + 1) * sizeof(*(arr)));     \
		if (_p) {                                                  \
			(arr) = _p;                                        \
			memset(&(arr)[(n)], 0, sizeof(*(arr)));            \
		}                                                          \
		_p ? 0 : -ENOMEM;                                          \
	})

int lsbpf_state_add_xlate(struct lsbpf_state *s, const char *virt, const char *real)
{
	struct lsbpf_xlate x;

	if (ls_prefix_parse(virt, &x.virt, false)) {
		pr_err("bpf: invalid virtual prefix `%s'", virt);
		return -EINVAL;
	}
	if (ls_prefix_parse(real, &x.real, false)) {
		pr_err("bpf: invalid real prefix `%s'", real);
		return -EINVAL;
	}
	if (x.virt.family != x.real.family || x.virt.len != x.real.len) {
		pr_err("bpf: `%s' and `%s' differ in family or length (a 1:1 mapping needs both equal)",
		       virt, real);
		return -EINVAL;
	}
	if (GROW(s->xlates, s->n_xlates))
		return -ENOMEM;
	s->xlates[s->n_xlates++] = x;
	return 0;
}

int lsbpf_state_add_map_arg(struct lsbpf_state *s, const char *arg)
{
	char buf[2 * LS_PREFIX_STRLEN];
	const char *eq = strchr(arg, '=');

	if (!eq || strlen(arg) >= sizeof(buf)) {
		pr_err("bpf: invalid mapping `%s' (want VIRTUAL=REAL, e.g. 10.201.1.0/24=192.168.1.0/24)", arg);
		return -EINVAL;
	}
	snprintf(buf, sizeof(buf), "%.*s", (int)(eq - arg), arg);
	return lsbpf_state_add_xlate(s, buf, eq + 1);
}

int lsbpf_state_add_route(struct lsbpf_state *s, const char *prefix, uint32_t net_id, uint16_t n_adv,
			  uint16_t flags, const char *name)
{
	struct lsbpf_route r = { .net_id = net_id, .n_adv = n_adv, .flags = flags };

	if (ls_prefix_parse(prefix, &r.prefix, false)) {
		pr_err("bpf: invalid route `%s'", prefix);
		return -EINVAL;
	}
	if (s->n_routes >= LS_MAX_ROUTES) {
		pr_err("bpf: more than %d routes", LS_MAX_ROUTES);
		return -E2BIG;
	}
	snprintf(r.name, sizeof(r.name), "%s", name ? name : "");
	if (GROW(s->routes, s->n_routes))
		return -ENOMEM;
	s->routes[s->n_routes++] = r;
	return 0;
}

static struct lsbpf_iface *find_iface(struct lsbpf_state *s, const char *ifname)
{
	for (size_t i = 0; i < s->n_ifaces; i++)
		if (!strcmp(s->ifaces[i].ifname, ifname))
			return &s->ifaces[i];
	return NULL;
}

int lsbpf_state_add_iface(struct lsbpf_state *s, const char *ifname, uint32_t net_id, uint32_t flags)
{
	struct lsbpf_iface *i;

	if (strlen(ifname) >= IFNAMSIZ || !*ifname) {
		pr_err("bpf: invalid interface name `%s'", ifname);
		return -EINVAL;
	}
	if ((i = find_iface(s, ifname))) {
		i->net_id = net_id;
		i->flags |= flags;
		return 0;
	}
	if (GROW(s->ifaces, s->n_ifaces))
		return -ENOMEM;
	snprintf(s->ifaces[s->n_ifaces].ifname, IFNAMSIZ, "%s", ifname);
	s->ifaces[s->n_ifaces].net_id = net_id;
	s->ifaces[s->n_ifaces++].flags = flags;
	return 0;
}

int lsbpf_state_set_iface_snat(struct lsbpf_state *s, const char *ifname, const struct ls_prefix *addr)
{
	struct lsbpf_iface *i;
	int r;

	if (addr->family != AF_INET && addr->family != AF_INET6) {
		pr_err("bpf: SNAT address for `%s' has no family", ifname);
		return -EINVAL;
	}
	if (!(i = find_iface(s, ifname))) {
		if ((r = lsbpf_state_add_iface(s, ifname, 0, 0)))
			return r;
		i = &s->ifaces[s->n_ifaces - 1];
	}
	if (addr->family == AF_INET)
		i->snat4 = *addr;
	else
		i->snat6 = *addr;
	return 0;
}

int lsbpf_state_add_iface_snat_arg(struct lsbpf_state *s, const char *arg)
{
	char ifname[IFNAMSIZ];
	const char *eq = strchr(arg, '=');
	struct ls_prefix a;

	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(ifname) || ls_prefix_parse(eq + 1, &a, true) ||
	    a.len != ls_prefix_max_len(&a)) {
		pr_err("bpf: invalid interface SNAT address `%s' (want IF=ADDR, e.g. eth1=192.168.1.1)", arg);
		return -EINVAL;
	}
	memcpy(ifname, arg, (size_t)(eq - arg));
	ifname[eq - arg] = '\0';
	return lsbpf_state_set_iface_snat(s, ifname, &a);
}

/* An allow rule opens the pair both ways: with no connection tracking between networks,
 * a one-way rule would drop every reply. */
int lsbpf_state_add_allow(struct lsbpf_state *s, uint32_t src_net, uint32_t dst_net)
{
	for (int dir = 0; dir < 2; dir++) {
		if (GROW(s->allows, s->n_allows))
			return -ENOMEM;
		s->allows[s->n_allows].src_net = dir ? dst_net : src_net;
		s->allows[s->n_allows++].dst_net = dir ? src_net : dst_net;
	}
	return 0;
}

static int parse_prefix_list(const char *list, struct ls_prefix **out, size_t *n)
{
	char *copy = strdup(list), *save = NULL, *tok;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	*out = NULL;
	*n = 0;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct ls_prefix p;
		if (!strcmp(tok, "*")) {
			/* every address, both families */
			ls_prefix_parse("0.0.0.0/0", &p, false);
			if ((r = GROW(*out, *n)))
				break;
			(*out)[(*n)++] = p;
			ls_prefix_parse("::/0", &p, false);
		} else if (ls_prefix_parse(tok, &p, false)) {
			pr_err("bpf: invalid prefix `%s' in `%s'", tok, list);
			r = -EINVAL;
			break;
		}
		if ((r = GROW(*out, *n)))
			break;
		(*out)[(*n)++] = p;
	}
	free(copy);
	if (r) {
		free(*out);
		*out = NULL;
	}
	return r;
}

int lsbpf_state_add_rule(struct lsbpf_state *s, const char *src, const char *dst, const char *proto,
			 const char *ports)
{
	struct lsbpf_rule r = { .port_lo = 0, .port_hi = 65535 };
	unsigned lo, hi;
	char c;
	int e;

	if (!proto || !strcmp(proto, "any"))
		r.proto = 0;
	else if (!strcmp(proto, "tcp"))
		r.proto = 6;
	else if (!strcmp(proto, "udp"))
		r.proto = 17;
	else if (!strcmp(proto, "icmp"))
		r.proto = 1;
	else {
		pr_err("bpf: invalid protocol `%s' (tcp, udp, icmp, any)", proto);
		return -EINVAL;
	}
	if (ports && strcmp(ports, "*")) {
		int n = sscanf(ports, "%u-%u%c", &lo, &hi, &c);
		if (n == 1)
			hi = lo;
		if ((n != 1 && n != 2) || lo > hi || hi > 65535) {
			pr_err("bpf: invalid port range `%s'", ports);
			return -EINVAL;
		}
		r.port_lo = lo;
		r.port_hi = hi;
	}
	if (s->n_rules >= LS_FILTER_RULES) {
		pr_err("bpf: more than %d filter rules", LS_FILTER_RULES);
		return -E2BIG;
	}
	if ((e = parse_prefix_list(src, &r.src, &r.n_src)))
		return e;
	if ((e = parse_prefix_list(dst, &r.dst, &r.n_dst))) {
		free(r.src);
		return e;
	}
	if (GROW(s->rules, s->n_rules)) {
		free(r.src);
		free(r.dst);
		return -ENOMEM;
	}
	s->rules[s->n_rules++] = r;
	return 0;
}

static int join_prefixes(const json_t *arr, const char *what, size_t idx, char *out, size_t size)
{
	size_t i, used = 0;
	const json_t *v;

	if (!json_is_array(arr)) {
		pr_err("bpf: filter[%zu].%s: not an array", idx, what);
		return -EINVAL;
	}
	out[0] = 0;
	json_array_foreach(arr, i, v) {
		const char *p = json_string_value(v);
		struct ls_prefix tmp;
		if (!p || ls_prefix_parse(p, &tmp, false)) {
			pr_err("bpf: filter[%zu].%s[%zu]: `%s' is not a prefix", idx, what, i, p ? p : "(not a string)");
			return -EINVAL;
		}
		int n = snprintf(out + used, size - used, "%s%s", used ? "," : "", p);
		if (n < 0 || (size_t)n >= size - used)
			return -E2BIG;
		used += n;
	}
	return 0;
}

int lsbpf_state_add_filter_json(struct lsbpf_state *s, const struct json_t *filter)
{
	const json_t *f = (const json_t *)filter, *rule;
	size_t i, n0 = s->n_rules;
	char *src = malloc(65536), *dst = malloc(65536);
	int r = 0;

	if (!src || !dst || !json_is_array(f)) {
		if (src && dst)
			pr_err("bpf: the packet filter is not a JSON array");
		r = src && dst ? -EINVAL : -ENOMEM;
		goto cleanup;
	}
	json_array_foreach(f, i, rule) {
		const json_t *ports = json_object_get(rule, "ports");
		const char *proto = json_string_value(json_object_get(rule, "proto"));
		if ((r = join_prefixes(json_object_get(rule, "src"), "src", i, src, 65536)) ||
		    (r = join_prefixes(json_object_get(rule, "dst"), "dst", i, dst, 65536)))
			goto undo;
		if (!*src || !*dst)
			continue; /* matches nothing */
		if (!ports || (json_is_array(ports) && json_array_size(ports) == 0)) {
			if ((r = lsbpf_state_add_rule(s, src, dst, proto ? proto : "any", "*")))
				goto undo;
			continue;
		}
		size_t j;
		const json_t *pv;
		if (!json_is_array(ports)) {
			pr_err("bpf: filter[%zu].ports: not an array", i);
			r = -EINVAL;
			goto undo;
		}
		json_array_foreach(ports, j, pv) {
			const char *ps = json_string_value(pv);
			if (!ps || (r = lsbpf_state_add_rule(s, src, dst, proto ? proto : "any", ps))) {
				if (!ps)
					pr_err("bpf: filter[%zu].ports[%zu]: not a string", i, j);
				r = r ? r : -EINVAL;
				goto undo;
			}
		}
	}
	s->flags |= LS_CFG_FILTER;
	goto cleanup;
undo:
	while (s->n_rules > n0) {
		s->n_rules--;
		free(s->rules[s->n_rules].src);
		free(s->rules[s->n_rules].dst);
	}
cleanup:
	free(src);
	free(dst);
	return r;
}

/* ---- reconcile ---- */

struct kvset {
	size_t n, cap, ksz, vsz;
	uint8_t *k, *v;
};

static int kv_put(struct kvset *s, const void *k, const void *v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		uint8_t *nk = realloc(s->k, cap * s->ksz), *nv;
		if (!nk)
			return -ENOMEM;
		s->k = nk;
		nv = realloc(s->v, cap * s->vsz);
		if (!nv)
			return -ENOMEM;
		s->v = nv;
		s->cap = cap;
	}
	memcpy(s->k + s->n * s->ksz, k, s->ksz);
	memcpy(s->v + s->n * s->vsz, v, s->vsz);
	s->n++;
	return 0;
}

static void kv_free(struct kvset *s)
{
	free(s->k);
	free(s->v);
}

static int cmp_key(const void *a, const void *b, void *ksz)
{
	return memcmp(a, b, *(size_t *)ksz);
}

static bool kv_has(const uint8_t *sorted, size_t n, size_t ksz, const void *k)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = memcmp(sorted + mid * ksz, k, ksz);
		if (!c)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Makes the map hold exactly the set: deletes stale keys, writes the rest (batched where
 * the map type can: hash and array maps; LPM tries one by one). */
static int sync_map(int fd, struct kvset *s, bool batch, const char *what)
{
	uint8_t *sorted = NULL, *key = NULL, *next = NULL;
	struct kvset stale = { .ksz = s->ksz, .vsz = 1 };
	size_t i;
	int r = 0;

	sorted = malloc(s->n * s->ksz + 1);
	key = malloc(s->ksz);
	next = malloc(s->ksz);
	if (!sorted || !key || !next) {
		r = -ENOMEM;
		goto cleanup;
	}
	memcpy(sorted, s->k, s->n * s->ksz);
	qsort_r(sorted, s->n, s->ksz, cmp_key, &s->ksz);

	/* Collect stale keys first: deleting while walking would restart the walk. */
	void *prev = NULL;
	uint8_t dummy = 0;
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		if (!kv_has(sorted, s->n, s->ksz, next) && (r = kv_put(&stale, next, &dummy)))
			goto cleanup;
		memcpy(key, next, s->ksz);
		prev = key;
	}
	for (i = 0; i < stale.n; i++)
		bpf_map_delete_elem(fd, stale.k + i * s->ksz);

	if (batch && s->n) {
		__u32 count = s->n;
		DECLARE_LIBBPF_OPTS(bpf_map_batch_opts, bo);
		if (bpf_map_update_batch(fd, s->k, s->v, &count, &bo) == 0)
			goto done;
		/* fall back to one by one (old kernels, odd map types) */
	}
	for (i = 0; i < s->n; i++) {
		if (bpf_map_update_elem(fd, s->k + i * s->ksz, s->v + i * s->vsz, BPF_ANY)) {
			r = -errno;
			pr_err("bpf: %s: update %zu of %zu failed: %s", what, i + 1, s->n, strerror(errno));
			goto cleanup;
		}
	}
done:
	pr_debug("bpf: %s: %zu entries, %zu removed", what, s->n, stale.n);
cleanup:
	kv_free(&stale);
	free(sorted);
	free(key);
	free(next);
	return r;
}

static void mask_bytes(uint8_t *mask, int bytes, int len)
{
	memset(mask, 0, bytes);
	for (int i = 0; i < len; i++)
		mask[i / 8] |= 0x80 >> (i % 8);
}

static int apply_xlate(struct lsbpf *b, const struct lsbpf_state *s)
{
	struct kvset v2r4 = { .ksz = sizeof(struct ls_xlate4_key), .vsz = sizeof(struct ls_xlate4_val) };
	struct kvset r2v4 = v2r4;
	struct kvset v2r6 = { .ksz = sizeof(struct ls_xlate6_key), .vsz = sizeof(struct ls_xlate6_val) };
	struct kvset r2v6 = v2r6;
	int r = 0;

	for (size_t i = 0; i < s->n_xlates && !r; i++) {
		const struct lsbpf_xlate *x = &s->xlates[i];
		if (x->virt.family == AF_INET) {
			struct ls_xlate4_key k = { .prefixlen = x->virt.len };
			struct ls_xlate4_val v = { .id = i + 1 };
			mask_bytes((uint8_t *)&v.mask, 4, x->virt.len);
			memcpy(&k.addr, x->virt.addr, 4);
			memcpy(&v.addr, x->real.addr, 4);
			r = kv_put(&v2r4, &k, &v);
			memcpy(&k.addr, x->real.addr, 4);
			memcpy(&v.addr, x->virt.addr, 4);
			r = r ?: kv_put(&r2v4, &k, &v);
		} else {
			struct ls_xlate6_key k = { .prefixlen = x->virt.len };
			struct ls_xlate6_val v = { .id = i + 1 };
			mask_bytes(v.mask, 16, x->virt.len);
			memcpy(k.addr, x->virt.addr, 16);
			memcpy(v.addr, x->real.addr, 16);
			r = kv_put(&v2r6, &k, &v);
			memcpy(k.addr, x->real.addr, 16);
			memcpy(v.addr, x->virt.addr, 16);
			r = r ?: kv_put(&r2v6, &k, &v);
		}
	}
	/* hashes first, then the tries; apply_config then says which the programs use */
	r = r ?: sync_map(bpf_map__fd(b->skel->maps.ls_v2r4h), &v2r4, true, "v2r4h");
	r = r ?: sync_map(bpf_map__fd(b->skel->maps.ls_r2v4h), &r2v4, true, "r2v4h");
	r = r ?: sync_map(bpf_map__fd(b->skel->maps.ls_v2r4), &v2r4, false, "v2r4");
	r = r ?: sync_map(bpf_map__fd(b->skel->maps.ls_r2v4), &r2v4, false, "r2v4");
	r = r ?: sync_map(bpf_map__fd(b->skel->maps.ls_v2r6h), &v2r6, true, "v2r6h");
	r = r ?: sync_map(bpf_map__fd(b->skel->maps.ls_r2v6h), &r2v6, true, "r2v6h");
	r = r ?: sync_map(bpf_map__fd(b->skel->maps.ls_v2r6), &v2r6, false, "v2r6");
	r = r ?: sync_map(bpf_map__fd(b->skel->maps.ls_r2v6), &r2v6, false, "r2v6");
	kv_free(&v2r4);
	kv_free(&r2v4);
	kv_free(&v2r6);
	kv_free(&r2v6);
	return r;
}

/* Route ids stay with their prefix across applies, so counters follow the route. */
static int apply_routes(struct lsbpf *b, const struct lsbpf_state *s)
{
	int fd4 = bpf_map__fd(b->skel->maps.ls_routes4), fd6 = bpf_map__fd(b->skel->maps.ls_routes6);
	int fdi = bpf_map__fd(b->skel->maps.ls_route_info), fds = bpf_map__fd(b->skel->maps.ls_route_stats);
	struct kvset r4 = { .ksz = sizeof(struct ls_route4_key), .vsz = sizeof(struct ls_route_val) };
	struct kvset r6 = { .ksz = sizeof(struct ls_route6_key), .vsz = sizeof(struct ls_route_val) };
	uint8_t *used = calloc(LS_MAX_ROUTES, 1);
	uint32_t *ids = calloc(s->n_routes + 1, sizeof(uint32_t));
	int r = 0, ncpu = libbpf_num_possible_cpus();

	if (!used || !ids) {
		r = -ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < s->n_routes; i++) {
		const struct lsbpf_route *rt = &s->routes[i];
		struct ls_route_val old;
		struct ls_route4_key k4 = { .prefixlen = rt->prefix.len };
		struct ls_route6_key k6 = { .prefixlen = rt->prefix.len };
		int e;
		ids[i] = UINT32_MAX;
		if (rt->prefix.family == AF_INET) {
			memcpy(&k4.addr, rt->prefix.addr, 4);
			e = bpf_map_lookup_elem(fd4, &k4, &old);
		} else {
			memcpy(k6.addr, rt->prefix.addr, 16);
			e = bpf_map_lookup_elem(fd6, &k6, &old);
		}
		/* an exact-key lookup on an LPM trie returns the longest match: check it */
		if (!e && old.route_id < LS_MAX_ROUTES && !used[old.route_id]) {
			struct ls_route_info inf;
			if (!bpf_map_lookup_elem(fdi, &old.route_id, &inf) && inf.prefixlen == rt->prefix.len &&
			    !memcmp(inf.addr, rt->prefix.addr, 16)) {
				ids[i] = old.route_id;
				used[old.route_id] = 1;
			}
		}
	}
	uint32_t next_free = 0;
	for (size_t i = 0; i < s->n_routes; i++) {
		if (ids[i] != UINT32_MAX)
			continue;
		while (next_free < LS_MAX_ROUTES && used[next_free])
			next_free++;
		if (next_free >= LS_MAX_ROUTES) {
			r = -E2BIG;
			goto cleanup;
		}
		ids[i] = next_free;
		used[next_free] = 2; /* new: counters start at zero */
	}
	struct ls_route_stats *zero = calloc(ncpu, sizeof(struct ls_route_stats));
	if (!zero) {
		r = -ENOMEM;
		goto cleanup;
	}
	for (uint32_t id = 0; id < LS_MAX_ROUTES; id++) {
		if (used[id] == 1)
			continue;
		struct ls_route_info inf;
		if (used[id] == 2 || (!bpf_map_lookup_elem(fdi, &id, &inf) && inf.family)) {
			bpf_map_update_elem(fds, &id, zero, BPF_ANY);
			if (used[id] != 2) {
				memset(&inf, 0, sizeof(inf));
				bpf_map_update_elem(fdi, &id, &inf, BPF_ANY);
			}
		}
	}
	free(zero);
	for (size_t i = 0; i < s->n_routes && !r; i++) {
		const struct lsbpf_route *rt = &s->routes[i];
		struct ls_route_val v = { .route_id = ids[i], .net_id = rt->net_id, .n_adv = rt->n_adv,
					  .flags = rt->flags };
		struct ls_route_info inf = { .family = rt->prefix.family == AF_INET ? 4 : 6,
					     .prefixlen = rt->prefix.len, .n_adv = rt->n_adv,
					     .net_id = rt->net_id };
		memcpy(inf.addr, rt->prefix.addr, 16);
		snprintf(inf.name, sizeof(inf.name), "%s", rt->name);
		if (bpf_map_update_elem(fdi, &ids[i], &inf, BPF_ANY))
			r = -errno;
		if (rt->prefix.family == AF_INET) {
			struct ls_route4_key k4 = { .prefixlen = rt->prefix.len };
			memcpy(&k4.addr, rt->prefix.addr, 4);
			r = r ?: kv_put(&r4, &k4, &v);
		} else {
			struct ls_route6_key k6 = { .prefixlen = rt->prefix.len };
			memcpy(k6.addr, rt->prefix.addr, 16);
			r = r ?: kv_put(&r6, &k6, &v);
		}
	}
	r = r ?: sync_map(fd4, &r4, false, "routes4");
	r = r ?: sync_map(fd6, &r6, false, "routes6");
cleanup:
	kv_free(&r4);
	kv_free(&r6);
	free(used);
	free(ids);
	return r;
}

/* Fast forwarding's FIB cache holds only egress devices flagged LS_IF_FWD_TARGET, and with
 * each entry the ingress device's SNAT_FROM flag and isolation's verdict: after the routes
 * (apply_routes runs first), the interface map and the allow rules were written, it starts
 * again (entries otherwise expire within 50 ms). */
static void clear_fib_cache(struct lsbpf *b)
{
	int fd = bpf_map__fd(b->skel->maps.ls_fib_cache);
	uint8_t k[64]; /* struct ls_fib_key (bpf/fwd.bpf.h) */

	if (bpf_map__key_size(b->skel->maps.ls_fib_cache) > sizeof(k))
		return;
	while (!bpf_map_get_next_key(fd, NULL, k))
		if (bpf_map_delete_elem(fd, k))
			break;
}

static int apply_isolate(struct lsbpf *b, const struct lsbpf_state *s)
{
	struct kvset ifs = { .ksz = sizeof(__u32), .vsz = sizeof(struct ls_iface) };
	struct kvset al = { .ksz = sizeof(struct ls_iso_key), .vsz = sizeof(__u32) };
	int r = 0;

	for (size_t i = 0; i < s->n_ifaces && !r; i++) {
		__u32 idx = if_nametoindex(s->ifaces[i].ifname);
		if (!idx) {
			pr_warn("bpf: interface `%s' not there (yet); not in the interface map",
				s->ifaces[i].ifname);
			continue;
		}
		struct ls_iface v = { .net_id = s->ifaces[i].net_id, .flags = s->ifaces[i].flags };
		if (s->ifaces[i].snat4.family == AF_INET)
			memcpy(&v.snat4, s->ifaces[i].snat4.addr, 4);
		if (s->ifaces[i].snat6.family == AF_INET6)
			memcpy(v.snat6, s->ifaces[i].snat6.addr, 16);
		r = kv_put(&ifs, &idx, &v);
	}
	for (size_t i = 0; i < s->n_allows && !r; i++) {
		struct ls_iso_key k = { .src_net = s->allows[i].src_net, .dst_net = s->allows[i].dst_net };
		__u32 v = i + 1;
		r = kv_put(&al, &k, &v);
	}
	r = r ?: sync_map(bpf_map__fd(b->skel->maps.ls_ifaces), &ifs, true, "ifaces");
	r = r ?: sync_map(bpf_map__fd(b->skel->maps.ls_iso_allow), &al, true, "iso_allow");
	if (!r)
		clear_fib_cache(b);
	kv_free(&ifs);
	kv_free(&al);
	return r;
}

/* Every distinct prefix of one side gets the mask of all rules with a prefix containing it. */
static int filter_side(const struct lsbpf_state *s, bool src, struct kvset *k4, struct kvset *k6)
{
	int r = 0;
	for (size_t i = 0; i < s->n_rules && !r; i++) {
		const struct lsbpf_rule *ru = &s->rules[i];
		size_t n = src ? ru->n_src : ru->n_dst;
		for (size_t j = 0; j < n && !r; j++) {
			const struct ls_prefix *p = src ? &ru->src[j] : &ru->dst[j];
			struct ls_filter_mask m = {};
			for (size_t a = 0; a < s->n_rules; a++) {
				const struct lsbpf_rule *ra = &s->rules[a];
				size_t na = src ? ra->n_src : ra->n_dst;
				for (size_t c = 0; c < na; c++) {
					if (ls_prefix_contains(src ? &ra->src[c] : &ra->dst[c], p)) {
						m.bits[a / 64] |= 1ull << (a % 64);
						break;
					}
				}
			}
			if (p->family == AF_INET) {
				struct ls_filter4_key k = { .prefixlen = p->len };
				memcpy(&k.addr, p->addr, 4);
				r = kv_put(k4, &k, &m);
			} else {
				struct ls_filter6_key k = { .prefixlen = p->len };
				memcpy(k.addr, p->addr, 16);
				r = kv_put(k6, &k, &m);
			}
		}
	}
	return r;
}

/* Removes duplicate keys (the same prefix in several rules has the same mask). */
static void kv_dedup(struct kvset *s)
{
	size_t out = 0;
	for (size_t i = 0; i < s->n; i++) {
		bool dup = false;
		for (size_t j = 0; j < out && !dup; j++)
			dup = !memcmp(s->k + j * s->ksz, s->k + i * s->ksz, s->ksz);
		if (dup)
			continue;
		memmove(s->k + out * s->ksz, s->k + i * s->ksz, s->ksz);
		memmove(s->v + out * s->vsz, s->v + i * s->vsz, s->vsz);
		out++;
	}
	s->n = out;
}

static int apply_filter(struct lsbpf *b, const struct lsbpf_state *s)
{
	struct kvset s4 = { .ksz = sizeof(struct ls_filter4_key), .vsz = sizeof(struct ls_filter_mask) };
	struct kvset d4 = s4;
	struct kvset s6 = { .ksz = sizeof(struct ls_filter6_key), .vsz = sizeof(struct ls_filter_mask) };
	struct kvset d6 = s6;
	struct kvset rules = { .ksz = sizeof(__u32), .vsz = sizeof(struct ls_filter_rule) };
	int r;

	r = filter_side(s, true, &s4, &s6);
	r = r ?: filter_side(s, false, &d4, &d6);
	kv_dedup(&s4);
	kv_dedup(&d4);
	kv_dedup(&s6);
	kv_dedup(&d6);
	for (__u32 i = 0; i < LS_FILTER_RULES && !r; i++) {
		struct ls_filter_rule fr = {};
		if (i < s->n_rules) {
			fr.valid = 1;
			fr.proto = s->rules[i].proto;
			fr.port_lo = s->rules[i].port_lo;
			fr.port_hi = s->rules[i].port_hi;
		}
		r = kv_put(&rules, &i, &fr);
	}
	/* rules first (new masks may name them), then the prefix maps */
	r = r ?: sync_map(bpf_map__fd(b->skel->maps.ls_frules), &rules, true, "frules");
	r = r ?: sync_map(bpf_map__fd(b->skel->maps.ls_fsrc4), &s4, false, "fsrc4");
	r = r ?: sync_map(bpf_map__fd(b->skel->maps.ls_fdst4), &d4, false, "fdst4");
	r = r ?: sync_map(bpf_map__fd(b->skel->maps.ls_fsrc6), &s6, false, "fsrc6");
	r = r ?: sync_map(bpf_map__fd(b->skel->maps.ls_fdst6), &d6, false, "fdst6");
	kv_free(&s4);
	kv_free(&d4);
	kv_free(&s6);
	kv_free(&d6);
	kv_free(&rules);
	return r;
}

#define RESERVED_PORTS "/proc/sys/net/ipv4/ip_local_reserved_ports"

/* A sysctl file in one read: the kernel answers a read at a non-zero offset with EOF, so
 * reading it piecewise (as ls_read_file does for a file whose size says 0) gets only its
 * first bytes. */
static int read_reserved(char **out)
{
	size_t cap = 65536;
	char *buf = malloc(cap);
	int fd = open(RESERVED_PORTS, O_RDONLY | O_CLOEXEC), r = 0;
	ssize_t n;

	if (fd < 0 || !buf) {
		r = fd < 0 ? -errno : -ENOMEM;
		goto cleanup;
	}
	n = read(fd, buf, cap - 1);
	if (n < 0) {
		r = -errno;
		goto cleanup;
	}
	buf[n] = '\0';
	*out = buf;
	buf = NULL;
cleanup:
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

bool lsbpf_ports_reserved(uint16_t lo, uint16_t hi)
{
	char *cur = NULL;
	unsigned int want = lo;

	if (read_reserved(&cur))
		return false;
	/* the kernel prints merged ranges: follow them from lo upward */
	for (bool again = true; again && want <= hi;) {
		char *copy = strdup(cur), *save = NULL;

		again = false;
		for (char *t = copy ? strtok_r(copy, ",\n", &save) : NULL; t; t = strtok_r(NULL, ",\n", &save)) {
			unsigned int a, b;
			int k = sscanf(t, "%u-%u", &a, &b);

			if (k == 1)
				b = a;
			if (k >= 1 && a <= want && b >= want) {
				want = b + 1;
				again = true;
			}
		}
		free(copy);
	}
	free(cur);
	return want > hi;
}

static int edit_reserved(uint16_t lo, uint16_t hi, bool add)
{
	char *cur = NULL, tok[32], out[8192] = "";
	bool have = false;
	int r = read_reserved(&cur);

	if (r)
		return r;
	if (lo == hi)
		snprintf(tok, sizeof(tok), "%u", lo);
	else
		snprintf(tok, sizeof(tok), "%u-%u", lo, hi);
	char *save = NULL;
	for (char *t = strtok_r(cur, ",\n", &save); t; t = strtok_r(NULL, ",\n", &save)) {
		if (!strcmp(t, tok)) {
			have = true;
			if (!add)
				continue;
		}
		if (strlen(out) + strlen(t) + 2 >= sizeof(out))
			break;
		if (*out)
			strcat(out, ",");
		strcat(out, t);
	}
	free(cur);
	if (add == have)
		return 0;
	if (add) {
		if (*out)
			strcat(out, ",");
		strcat(out, tok);
	}
	strcat(out, "\n");
	FILE *f = fopen(RESERVED_PORTS, "w");
	if (!f)
		return -errno;
	r = fputs(out, f) < 0 ? -EIO : 0;
	if (fclose(f))
		r = -errno;
	if (r)
		pr_err("bpf: cannot write `%s' to %s: %s", out, RESERVED_PORTS, strerror(-r));
	return r;
}

int lsbpf_reserve_ports(uint16_t lo, uint16_t hi)
{
	return edit_reserved(lo, hi, true);
}

void lsbpf_unreserve_ports(struct lsbpf *b)
{
	struct ls_config c;
	__u32 k = 0;
	if (!bpf_map_lookup_elem(bpf_map__fd(b->skel->maps.ls_config), &k, &c) && c.snat_port_lo &&
	    c.snat_port_hi >= c.snat_port_lo)
		edit_reserved(c.snat_port_lo, c.snat_port_hi, false);
}

/* lens: the family's mapping lengths, longest first, when there are enough mappings and
 * at most LS_XLATE_HASH_LENS lengths (none of them 0); otherwise all 0 (the tries). */
static void hash_lens(const struct lsbpf_state *s, int family, __u8 lens[LS_XLATE_HASH_LENS])
{
	int max = family == AF_INET ? 32 : 128;
	bool have[129] = { false };
	size_t n = 0, nl = 0;

	memset(lens, 0, LS_XLATE_HASH_LENS);
	for (size_t i = 0; i < s->n_xlates; i++) {
		if (s->xlates[i].virt.family != family)
			continue;
		n++;
		have[s->xlates[i].virt.len] = true;
	}
	if (n < LSBPF_XLATE_HASH_MIN || have[0])
		return;
	for (int l = max; l >= 1; l--) {
		if (!have[l])
			continue;
		if (nl == LS_XLATE_HASH_LENS) {
			memset(lens, 0, LS_XLATE_HASH_LENS); /* too many lengths: the LPM tries */
			return;
		}
		lens[nl++] = (__u8)l;
	}
}

static int apply_config(struct lsbpf *b, const struct lsbpf_state *s)
{
	int fd = bpf_map__fd(b->skel->maps.ls_config);
	struct ls_config c = { .flags = s->flags, .wg_port = s->wg_port, .stun_port = s->stun_port,
			       .snat_port_lo = s->snat_port_lo, .snat_port_hi = s->snat_port_hi,
			       .tcp_timeout = s->tcp_timeout, .udp_timeout = s->udp_timeout,
			       .icmp_timeout = s->icmp_timeout };
	struct ls_config old = {};
	__u32 k = 0;
	int r;

	if (s->snat4.family == AF_INET)
		memcpy(&c.snat4, s->snat4.addr, 4);
	/* A large table of at most LS_XLATE_HASH_LENS mapping lengths per family: one hash
	 * lookup per length, longest first (a small LPM trie is as cheap as hashing; at 10,000
	 * prefixes the trie walk costs ~70 ns more for IPv4, ~80 ns for IPv6). */
	hash_lens(s, AF_INET, c.xlate4_lens);
	hash_lens(s, AF_INET6, c.xlate6_lens);
	if (s->snat6.family == AF_INET6)
		memcpy(c.snat6, s->snat6.addr, 16);
	if ((s->flags & LS_CFG_SNAT) && (!s->snat_port_lo || s->snat_port_hi < s->snat_port_lo)) {
		pr_err("bpf: SNAT needs a port range (got %u-%u)", s->snat_port_lo, s->snat_port_hi);
		return -EINVAL;
	}
	bpf_map_lookup_elem(fd, &k, &old);
	if (!b->no_pin && (old.snat_port_lo != c.snat_port_lo || old.snat_port_hi != c.snat_port_hi)) {
		if (old.snat_port_lo)
			edit_reserved(old.snat_port_lo, old.snat_port_hi, false);
	}
	if (!b->no_pin && c.snat_port_lo && (r = lsbpf_reserve_ports(c.snat_port_lo, c.snat_port_hi)))
		return r;
	if (bpf_map_update_elem(fd, &k, &c, BPF_ANY))
		return -errno;
	return 0;
}

int lsbpf_apply(struct lsbpf *b, const struct lsbpf_state *s)
{
	int r;

	if ((r = apply_xlate(b, s)) || (r = apply_routes(b, s)) || (r = apply_isolate(b, s)) ||
	    (r = apply_filter(b, s)) || (r = apply_config(b, s))) {
		pr_err("bpf: applying the desired state failed: %s", strerror(-r));
		return r;
	}
	return 0;
}

/* ---- garbage collection ---- */

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static uint64_t timeout_ns(const struct ls_config *c, uint8_t proto, uint8_t state)
{
	uint32_t s;
	if (proto == 6)
		s = state == LS_NAT_CLOSING ? LS_TIMEOUT_TCP_CLOSING : (c->tcp_timeout ?: LS_TIMEOUT_TCP);
	else if (proto == 17)
		s = c->udp_timeout ?: LS_TIMEOUT_UDP;
	else
		s = c->icmp_timeout ?: LS_TIMEOUT_ICMP;
	return (uint64_t)s * 1000000000ull;
}

static void in_key_of(const struct ls_tuple *ok, const struct ls_nat_val *ov, struct ls_tuple *ik)
{
	memset(ik, 0, sizeof(*ik));
	ik->family = ok->family;
	ik->proto = ok->proto;
	if (ok->proto == 1 || ok->proto == 58) {
		ik->sport = ov->port;
	} else {
		ik->sport = ok->dport;
		ik->dport = ov->port;
	}
	memcpy(ik->saddr, ok->daddr, 16);
	memcpy(ik->daddr, ov->addr, 16);
}

int lsbpf_gc(struct lsbpf *b, size_t *removed)
{
	int fo = bpf_map__fd(b->skel->maps.ls_nat_out), fi = bpf_map__fd(b->skel->maps.ls_nat_in);
	int ff = bpf_map__fd(b->skel->maps.ls_flows);
	struct ls_config c = {};
	struct ls_tuple k, next, ik;
	struct ls_nat_val ov, iv;
	struct kvset dead = { .ksz = sizeof(struct ls_tuple), .vsz = sizeof(struct ls_tuple) };
	size_t n = 0;
	__u32 zero = 0;
	uint64_t now = mono_ns();
	void *prev = NULL;

	bpf_map_lookup_elem(bpf_map__fd(b->skel->maps.ls_config), &zero, &c);
	while (bpf_map_get_next_key(fo, prev, &next) == 0) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(fo, &k, &ov))
			continue;
		in_key_of(&k, &ov, &ik);
		uint64_t last = ov.last_ns;
		uint8_t st = ov.state;
		if (!bpf_map_lookup_elem(fi, &ik, &iv)) {
			if (iv.last_ns > last)
				last = iv.last_ns;
			st |= iv.state;
		}
		if (now > last && now - last > timeout_ns(&c, k.proto, st))
			kv_put(&dead, &k, &ik);
	}
	for (size_t i = 0; i < dead.n; i++) {
		bpf_map_delete_elem(fo, dead.k + i * dead.ksz);
		bpf_map_delete_elem(fi, dead.v + i * dead.vsz);
		n++;
	}
	dead.n = 0;
	/* reply entries whose outbound half is gone (a crash between the two inserts) */
	prev = NULL;
	while (bpf_map_get_next_key(fi, prev, &next) == 0) {
		k = next;
		prev = &k;
		if (!bpf_map_lookup_elem(fi, &k, &iv) && now > iv.last_ns &&
		    now - iv.last_ns > timeout_ns(&c, k.proto, LS_NAT_OPEN) + 1000000000ull) {
			struct ls_tuple ok = { .family = k.family, .proto = k.proto, .sport = iv.port,
					       .dport = (k.proto == 1 || k.proto == 58) ? 0 : k.sport };
			memcpy(ok.saddr, iv.addr, 16);
			memcpy(ok.daddr, k.saddr, 16);
			if (bpf_map_lookup_elem(fo, &ok, &ov))
				kv_put(&dead, &k, &k);
		}
	}
	for (size_t i = 0; i < dead.n; i++, n++)
		bpf_map_delete_elem(fi, dead.k + i * dead.ksz);
	dead.n = 0;
	prev = NULL;
	while (bpf_map_get_next_key(ff, prev, &next) == 0) {
		struct ls_flow f;
		k = next;
		prev = &k;
		if (!bpf_map_lookup_elem(ff, &k, &f) && now > f.last_ns &&
		    now - f.last_ns > timeout_ns(&c, k.proto, LS_NAT_OPEN))
			kv_put(&dead, &k, &k);
	}
	for (size_t i = 0; i < dead.n; i++, n++)
		bpf_map_delete_elem(ff, dead.k + i * dead.ksz);
	kv_free(&dead);
	if (removed)
		*removed = n;
	return 0;
}

int lsbpf_return_route(const char *overlay_prefix, const char *router_lan_addr, char *out, size_t size)
{
	struct ls_prefix p, a;
	char ps[LS_PREFIX_STRLEN], as[LS_PREFIX_STRLEN];

	if (ls_prefix_parse(overlay_prefix, &p, false)) {
		pr_err("bpf: invalid overlay prefix `%s'", overlay_prefix);
		return -EINVAL;
	}
	if (ls_prefix_parse(router_lan_addr, &a, true) || a.len != ls_prefix_max_len(&a) ||
	    a.family != p.family) {
		pr_err("bpf: invalid router LAN address `%s' for %s", router_lan_addr, overlay_prefix);
		return -EINVAL;
	}
	ls_prefix_format(&p, ps);
	ls_prefix_format_addr(&a, as);
	if ((size_t)snprintf(out, size, "ip %sroute add %s via %s", p.family == AF_INET6 ? "-6 " : "", ps, as) >= size)
		return -ENOSPC;
	return 0;
}
