// SPDX-License-Identifier: MIT
#include "dataplane.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bpfglue.h"
#include "log.h"
#include "mnet.h"
#include "rtnl.h"
#include "util.h"

void ls_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- exit node ---------------------------------------------------------------------- */

static bool peer_has_default(const struct ls_nm_peer *p, int family)
{
	for (size_t i = 0; i < p->routes.n; i++) {
		if (ls_prefix_is_default(&p->routes.v[i]) && p->routes.v[i].family == family)
			return true;
	}
	return false;
}

const struct ls_nm_peer *ls_dp_pick_exit(const struct ls_netmap *nm, const char *want, char *why, size_t why_size)
{
	const struct ls_nm_peer *p;

	if (why)
		why[0] = '\0';
	if (!want || !*want || !strcmp(want, "none"))
		return NULL;
	if (!strcmp(want, "auto")) {
		for (size_t i = 0; i < nm->n_peers; i++) {
			if (nm->peers[i]->exit_node) {
				if (why)
					snprintf(why, why_size, "auto: first peer advertising a default route");
				return nm->peers[i];
			}
		}
		if (why)
			snprintf(why, why_size, "auto: no peer advertises a default route");
		return NULL;
	}
	p = ls_netmap_lookup_peer(nm, want);
	if (!p) {
		if (why)
			snprintf(why, why_size, "no peer `%s' in the netmap", want);
		return NULL;
	}
	if (!p->exit_node) {
		if (why)
			snprintf(why, why_size, "peer `%s' does not offer an approved default route", want);
		return NULL;
	}
	if (why)
		snprintf(why, why_size, "chosen: %s", want);
	return p;
}

static bool routing_on(const struct ls_dp *dp)
{
	return dp->opts.apply_routes || dp->exit_peer;
}

/* ---- desired WireGuard peers -------------------------------------------------------- */

/* The defaults an exit peer adds to its AllowedIPs (both when it advertises neither
 * family explicitly but carries the exit flag). */
static size_t exit_defaults(const struct ls_nm_peer *p, struct ls_prefix out[2])
{
	bool v4 = peer_has_default(p, AF_INET), v6 = peer_has_default(p, AF_INET6);
	size_t n = 0;

	if (!v4 && !v6)
		v4 = v6 = true;
	if (v4)
		out[n++] = (struct ls_prefix){ .family = AF_INET, .len = 0 };
	if (v6)
		out[n++] = (struct ls_prefix){ .family = AF_INET6, .len = 0 };
	return n;
}

/* Fills w for peer p (allowed list malloc'd). */
static int desired_peer(const struct ls_dp *dp, const struct ls_nm_peer *p, struct ls_wg_peer *w)
{
	struct ls_prefix defs[2];
	size_t nd = dp->exit_peer == p->id ? exit_defaults(p, defs) : 0;

	memset(w, 0, sizeof(*w));
	memcpy(w->key, p->wg_key, LS_WG_KEY_LEN);
	w->flags = LS_WGP_REPLACE_ALLOWED | LS_WGP_HAS_KEEPALIVE;
	w->keepalive = (uint16_t)dp->prof->keepalive;
	w->allowed = calloc(p->allowed_ips.n + nd + 1, sizeof(*w->allowed));
	if (!w->allowed)
		return -ENOMEM;
	memcpy(w->allowed, p->allowed_ips.v, p->allowed_ips.n * sizeof(*w->allowed));
	memcpy(w->allowed + p->allowed_ips.n, defs, nd * sizeof(*defs));
	w->n_allowed = p->allowed_ips.n + nd;
	if (dp->opts.ep_override && dp->opts.ep_override(dp->opts.ep_ctx, p->wg_key, &w->endpoint)) {
		w->flags |= LS_WGP_HAS_ENDPOINT;
		return 0;
	}
	for (size_t i = 0; i < p->endpoints.n; i++) {
		if (!ls_endpoint_parse(p->endpoints.v[i], &w->endpoint, NULL)) {
			w->flags |= LS_WGP_HAS_ENDPOINT;
			break;
		}
	}
	return 0;
}

static bool sa_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	char x[LS_ENDPOINT_STRLEN], y[LS_ENDPOINT_STRLEN];

	ls_endpoint_format((const struct sockaddr *)a, x);
	ls_endpoint_format((const struct sockaddr *)b, y);
	return !strcmp(x, y);
}

static int cmp_prefix(const void *a, const void *b)
{
	const struct ls_prefix *x = a, *y = b;

	if (x->family != y->family)
		return x->family - y->family;
	if (x->len != y->len)
		return x->len - y->len;
	return memcmp(x->addr, y->addr, sizeof(x->addr));
}

static bool allowed_equal(struct ls_prefix *a, size_t na, struct ls_prefix *b, size_t nb)
{
	if (na != nb)
		return false;
	qsort(a, na, sizeof(*a), cmp_prefix);
	qsort(b, nb, sizeof(*b), cmp_prefix);
	for (size_t i = 0; i < na; i++) {
		if (cmp_prefix(&a[i], &b[i]))
			return false;
	}
	return true;
}

/* Does the engine's endpoint ss do? With an override (agent.c's NAT traversal), only
 * that one; otherwise any of the netmap's. */
static bool endpoint_in_list(const struct ls_dp *dp, const struct sockaddr_storage *ss, const struct ls_nm_peer *p)
{
	char cur[LS_ENDPOINT_STRLEN];
	struct sockaddr_storage o;

	if (dp->opts.ep_override && dp->opts.ep_override(dp->opts.ep_ctx, p->wg_key, &o))
		return sa_same(ss, &o);
	ls_endpoint_format((const struct sockaddr *)ss, cur);
	for (size_t i = 0; i < p->endpoints.n; i++) {
		if (!strcmp(cur, p->endpoints.v[i]))
			return true;
	}
	return false;
}

/* Marks, in the engine's list, the peers the netmap still wants (internal to ls_dp_sync). */
#define WGP_SEEN (1u << 30)

static int cmp_wg_key(const void *a, const void *b)
{
	return memcmp(((const struct ls_wg_peer *)a)->key, ((const struct ls_wg_peer *)b)->key, LS_WG_KEY_LEN);
}

struct peer_set {
	struct ls_wg_peer *v;
	size_t n, cap;
};

static struct ls_wg_peer *ps_push(struct peer_set *s)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 16;
		struct ls_wg_peer *nv = realloc(s->v, nc * sizeof(*nv));

		if (!nv)
			return NULL;
		s->v = nv;
		s->cap = nc;
	}
	return memset(&s->v[s->n++], 0, sizeof(s->v[0]));
}

static void ps_free(struct peer_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].allowed);
	free(s->v);
}

static int ps_send(struct ls_dp *dp, struct peer_set *s, unsigned int dev_flags, const struct ls_wg_device *tmpl)
{
	struct ls_wg_device dev = { 0 };

	if (!s->n && !dev_flags)
		return 0;
	if (tmpl)
		dev = *tmpl;
	snprintf(dev.ifname, IFNAMSIZ, "%s", dp->prof->ifname);
	dev.flags = dev_flags;
	dev.peers = s->v;
	dev.n_peers = s->n;
	{
		struct timespec a, b;
		int ret;

		clock_gettime(CLOCK_MONOTONIC, &a);
		ret = dp->eng->set(&dev);
		clock_gettime(CLOCK_MONOTONIC, &b);
		dp->engine_ns += (uint64_t)((b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
		dp->engine_calls++;
		return ret;
	}
}

/* ---- addresses ---------------------------------------------------------------------- */

/* Self's addresses with the on-link prefix length of the overlay (so the overlay prefix
 * routes through the interface without any rule). */
static size_t desired_addrs(const struct ls_netmap *nm, struct ls_prefix *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < nm->self.addresses.n && n < max; i++) {
		struct ls_prefix a = nm->self.addresses.v[i];

		if (a.family == AF_INET && nm->network.has_ipv4 && ls_prefix_contains(&nm->network.ipv4, &a))
			a.len = nm->network.ipv4.len;
		else if (a.family == AF_INET6 && nm->network.has_ipv6 && ls_prefix_contains(&nm->network.ipv6, &a))
			a.len = nm->network.ipv6.len;
		out[n++] = a;
	}
	return n;
}

static int sync_addrs(struct ls_dp *dp, const struct ls_netmap *nm)
{
	struct ls_prefix want[16];
	struct ls_rtnl_addr *cur = NULL;
	size_t nw = desired_addrs(nm, want, 16), nc = 0;
	int ret;

	if ((ret = ls_rtnl_addr_list(AF_UNSPEC, dp->ifindex, &cur, &nc)))
		return ret;
	for (size_t i = 0; i < nc; i++) {
		bool keep = false;

		if (cur[i].scope != RT_SCOPE_UNIVERSE)
			continue; /* link-local */
		for (size_t j = 0; j < nw; j++)
			keep |= cur[i].addr.family == want[j].family && cur[i].addr.len == want[j].len &&
				!memcmp(cur[i].addr.addr, want[j].addr, 16);
		if (!keep)
			ls_rtnl_addr(LS_RTNL_DEL, dp->ifindex, &cur[i].addr);
	}
	for (size_t j = 0; j < nw; j++) {
		bool have = false;

		for (size_t i = 0; i < nc; i++)
			have |= cur[i].addr.family == want[j].family && cur[i].addr.len == want[j].len &&
				!memcmp(cur[i].addr.addr, want[j].addr, 16);
		if (!have && (ret = ls_rtnl_addr(LS_RTNL_ADD, dp->ifindex, &want[j])) && ret != -EEXIST) {
			char b[LS_PREFIX_STRLEN];

			ls_prefix_format(&want[j], b);
			pr_err("%s: cannot add address %s: %s %s", dp->prof->ifname, b, strerror(-ret),
			       ls_rtnl_last_error());
		}
	}
	free(cur);
	return 0;
}

/* ---- routes, rules, sysctls, masquerade --------------------------------------------- */

static void sysctl_note(struct ls_dp *dp, const char *path, const char *value)
{
	char cur[32] = "", key[128];
	int ret = 0;

	if (ls_sysctl_get(path, cur, sizeof(cur)) || strcmp(cur, value))
		ret = ls_sysctl_set(path, value);
	snprintf(key, sizeof(key), "%s", path);
	for (char *c = key; *c; c++)
		if (*c == '/')
			*c = '.';
	if (ret) {
		pr_warn("cannot set %s=%s: %s", key, value, strerror(-ret));
		json_object_set_new(dp->sysctls, key, json_sprintf("failed: %s", strerror(-ret)));
	} else {
		json_object_set_new(dp->sysctls, key, json_string(value));
	}
}

/* Does dst overlap a host route (main table, another interface, not a default)? */
static bool host_collision(struct ls_dp *dp, const struct ls_prefix *dst, const struct ls_rtnl_route *host,
			   size_t nh, char *why, size_t why_size)
{
	for (size_t i = 0; i < nh; i++) {
		const struct ls_rtnl_route *h = &host[i];
		char b[LS_PREFIX_STRLEN], ifn[IFNAMSIZ] = "?";

		if (h->dst.len == 0 || h->oif == dp->ifindex || h->dst.family != dst->family)
			continue;
		if (h->type != RTN_UNICAST || (h->dst.family == AF_INET6 && h->dst.addr[0] == 0xfe &&
					       (h->dst.addr[1] & 0xc0) == 0x80))
			continue;
		if (!ls_prefix_overlap(&h->dst, dst))
			continue;
		ls_prefix_format(&h->dst, b);
		if_indextoname((unsigned int)h->oif, ifn);
		snprintf(why, why_size, "overlaps the host route %s dev %s", b, ifn);
		return true;
	}
	return false;
}

static int nft_run(const char *script)
{
	FILE *f = popen("nft -f - 2>&1", "w");
	int st;

	if (!f)
		return -errno;
	fputs(script, f);
	st = pclose(f);
	if (st == -1)
		return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* ---- router interfaces, SNAT and routed mode ----------------------------------------- */

static bool sa_in_prefix(const struct ls_prefix *p, const struct sockaddr *sa, struct ls_prefix *host)
{
	struct ls_prefix a;

	if (ls_prefix_from_sockaddr(sa, &a))
		return false;
	if (host)
		*host = a;
	return p ? p->family == a.family && ls_prefix_contains(p, &a) : true;
}

static struct ls_router_if *rif_get(struct ls_router_if *v, size_t *n, size_t max, const char *ifname)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(v[i].ifname, ifname))
			return &v[i];
	if (*n >= max || strlen(ifname) >= IFNAMSIZ)
		return NULL;
	memset(&v[*n], 0, sizeof(v[*n]));
	snprintf(v[*n].ifname, IFNAMSIZ, "%s", ifname);
	return &v[(*n)++];
}

/* The source the host picks toward the internet out of ifname (the default route's
 * preferred source, else its first address there): a connected UDP socket, marked like
 * the engines' traffic so no profile's table takes the lookup, sends nothing. */
static int uplink_source(int family, const char *ifname, struct ls_prefix *out)
{
	struct sockaddr_storage dst = { 0 }, me = { 0 };
	socklen_t len = sizeof(me);
	uint32_t mark = LS_FWMARK_BASE;
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = -ENETUNREACH;
	struct ifaddrs *ifa = NULL;

	if (family == AF_INET) {
		struct sockaddr_in *d = (struct sockaddr_in *)&dst;

		d->sin_family = AF_INET;
		d->sin_port = htons(53);
		inet_pton(AF_INET, "8.8.8.8", &d->sin_addr);
	} else {
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&dst;

		d->sin6_family = AF_INET6;
		d->sin6_port = htons(53);
		inet_pton(AF_INET6, "2001:4860:4860::8888", &d->sin6_addr);
	}
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
		setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname));
		if (!connect(fd, (struct sockaddr *)&dst, family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) &&
		    !getsockname(fd, (struct sockaddr *)&me, &len) && sa_in_prefix(NULL, (struct sockaddr *)&me, out))
			ret = 0;
		close(fd);
	}
	if (!ret || getifaddrs(&ifa))
		return ret;
	for (struct ifaddrs *i = ifa; i && ret; i = i->ifa_next) {
		struct ls_prefix a;

		if (!i->ifa_addr || i->ifa_addr->sa_family != family || strcmp(i->ifa_name, ifname) ||
		    !sa_in_prefix(NULL, i->ifa_addr, &a))
			continue;
		if ((family == AF_INET6 && a.addr[0] == 0xfe && (a.addr[1] & 0xc0) == 0x80) ||
		    (family == AF_INET && a.addr[0] == 169 && a.addr[1] == 254))
			continue; /* link-local */
		*out = a;
		ret = 0;
	}
	freeifaddrs(ifa);
	return ret;
}

int ls_dp_router_ifaces(const struct ls_netmap *nm, const char *skip_ifname, struct ls_router_if *out, size_t max,
			bool *no_uplink)
{
	struct ifaddrs *ifa;
	bool def[2] = { false, false };
	size_t n = 0;

	if (no_uplink)
		*no_uplink = false;

	if (getifaddrs(&ifa))
		return -errno;
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || !i->ifa_name || !strcmp(i->ifa_name, skip_ifname) || !strcmp(i->ifa_name, "lo"))
			continue;
		for (size_t r = 0; r < nm->self.routes.n; r++) {
			const struct ls_prefix *p = &nm->self.routes.v[r];
			struct ls_prefix a;
			struct ls_router_if *ri;

			if (ls_prefix_is_default(p) || !sa_in_prefix(p, i->ifa_addr, &a) ||
			    !(ri = rif_get(out, &n, max, i->ifa_name)))
				continue;
			ri->lan = true;
			if (a.family == AF_INET && !ri->addr4.family)
				ri->addr4 = a;
			else if (a.family == AF_INET6 && !ri->addr6.family)
				ri->addr6 = a;
		}
	}
	freeifaddrs(ifa);
	for (size_t r = 0; r < nm->self.routes.n; r++) {
		if (ls_prefix_is_default(&nm->self.routes.v[r]))
			def[nm->self.routes.v[r].family == AF_INET6] = true;
	}
	for (int f = 0; f < 2; f++) {
		int family = f ? AF_INET6 : AF_INET;
		struct ls_rtnl_route *rt = NULL;
		size_t nr = 0;
		char ifname[IFNAMSIZ] = "";
		int skip = (int)if_nametoindex(skip_ifname);

		if (!def[f] || ls_rtnl_route_list(family, RT_TABLE_MAIN, &rt, &nr))
			continue;
		bool some = false;

		for (size_t i = 0; i < nr && !ifname[0]; i++) {
			if (rt[i].dst.len != 0 || rt[i].type != RTN_UNICAST || rt[i].table != RT_TABLE_MAIN)
				continue;
			some = true;
			if (rt[i].oif > 0 && rt[i].oif != skip)
				if_indextoname((unsigned int)rt[i].oif, ifname);
		}
		free(rt);
		if (some && !ifname[0] && no_uplink)
			*no_uplink = true;
		struct ls_router_if *ri = ifname[0] ? rif_get(out, &n, max, ifname) : NULL;
		struct ls_prefix src;

		if (!ri)
			continue;
		ri->uplink = true;
		if (uplink_source(family, ifname, &src))
			continue;
		if (family == AF_INET && !ri->addr4.family)
			ri->addr4 = src;
		else if (family == AF_INET6 && !ri->addr6.family)
			ri->addr6 = src;
	}
	return (int)n;
}

/* Routed mode: the route each LAN gateway (and the exit's upstream router) needs toward
 * the overlay, through this router's address on that side. Logged when it changes. */
static void return_routes(struct ls_dp *dp, const struct ls_netmap *nm, bool on)
{
	struct ls_router_if ri[16];
	json_t *rr = json_array();
	int n = on ? ls_dp_router_ifaces(nm, dp->prof->ifname, ri, ARRAY_SIZE(ri), NULL) : 0;

	for (int i = 0; i < n; i++) {
		for (int f = 0; f < 2; f++) {
			const struct ls_prefix *via = f ? &ri[i].addr6 : &ri[i].addr4;
			const struct ls_prefix *ov = f ? &nm->network.ipv6 : &nm->network.ipv4;
			char ps[LS_PREFIX_STRLEN], vs[LS_PREFIX_STRLEN];

			if (!via->family || !(f ? nm->network.has_ipv6 : nm->network.has_ipv4))
				continue;
			ls_prefix_format(ov, ps);
			ls_prefix_format_addr(via, vs);
			json_array_append_new(rr, json_pack("{s:s, s:s, s:s, s:s, s:o}", "interface", ri[i].ifname, "via", vs,
							    "prefix", ps, "role", ri[i].lan ? "lan" : "uplink", "command",
							    json_sprintf("ip %sroute add %s via %s", f ? "-6 " : "", ps, vs)));
		}
	}
	if (json_array_size(rr) && !(dp->return_routes && json_equal(rr, dp->return_routes))) {
		size_t i;
		json_t *r;

		pr_info("routed mode (--no-masquerade): overlay traffic leaves with its own source address; each gateway "
			"needs the route back through this router:");
		json_array_foreach(rr, i, r)
			pr_info("  on the gateway of %s (%s): %s", json_string_value(json_object_get(r, "interface")),
				json_string_value(json_object_get(r, "role")),
				json_string_value(json_object_get(r, "command")));
	}
	json_decref(dp->return_routes);
	dp->return_routes = rr;
}

static int masquerade(struct ls_dp *dp, bool on)
{
	char script[1024];
	int ret;

	if (on) {
		snprintf(script, sizeof(script),
			 "table inet lightscale-%s\n"
			 "delete table inet lightscale-%s\n"
			 "table inet lightscale-%s {\n"
			 "  chain postrouting {\n"
			 "    type nat hook postrouting priority srcnat; policy accept;\n"
			 "    iifname \"%s\" oifname != \"%s\" masquerade\n"
			 "  }\n"
			 "}\n",
			 dp->prof->name, dp->prof->name, dp->prof->name, dp->prof->ifname, dp->prof->ifname);
	} else {
		snprintf(script, sizeof(script), "table inet lightscale-%s\ndelete table inet lightscale-%s\n",
			 dp->prof->name, dp->prof->name);
	}
	if (on == dp->masquerading && dp->masq_known)
		return 0;
	if (!on && !dp->masq_known) {
		/* at start: a table an earlier run left goes; none there (or no nft at all, on a
		 * client) is no error */
		nft_run(script);
		dp->masquerading = false;
		dp->masq_known = true;
		return 0;
	}
	ret = nft_run(script);
	if (ret)
		pr_err("nft: cannot %s table inet lightscale-%s", on ? "create" : "delete", dp->prof->name);
	else
		dp->masquerading = on, dp->masq_known = true;
	return ret;
}

static void our_rules(const struct ls_dp *dp, int family, struct ls_rtnl_rule *out, size_t *n)
{
	const struct ls_profile *p = dp->prof;

	*n = 0;
	for (size_t i = 0; i < dp->n_control_hosts; i++) {
		if (dp->control_hosts[i].family != family)
			continue;
		out[(*n)++] = (struct ls_rtnl_rule){ .family = family, .priority = p->rule_prio, .table = RT_TABLE_MAIN,
						     .suppress_prefixlen = -1, .has_dst = true,
						     .dst = dp->control_hosts[i] };
	}
	out[(*n)++] = (struct ls_rtnl_rule){ .family = family, .priority = p->rule_prio + 1, .table = RT_TABLE_MAIN,
					     .suppress_prefixlen = 0 };
	out[(*n)++] = (struct ls_rtnl_rule){ .family = family, .priority = p->rule_prio + 2, .table = p->table,
					     .fwmark = LS_FWMARK_BASE, .fwmask = LS_FWMARK_MASK, .invert = true,
					     .suppress_prefixlen = -1 };
}

static bool is_our_prio(const struct ls_profile *p, uint32_t prio)
{
	return prio >= p->rule_prio && prio <= p->rule_prio + 2;
}

static int sync_rules(struct ls_dp *dp, bool on)
{
	static const int fams[] = { AF_INET, AF_INET6 };

	for (size_t f = 0; f < 2; f++) {
		struct ls_rtnl_rule want[16], *cur = NULL;
		size_t nw = 0, nc = 0;

		if (on)
			our_rules(dp, fams[f], want, &nw);
		if (ls_rtnl_rule_list(fams[f], &cur, &nc))
			continue;
		for (size_t i = 0; i < nc; i++) {
			bool keep = false;

			if (!is_our_prio(dp->prof, cur[i].priority))
				continue;
			for (size_t j = 0; j < nw; j++)
				keep |= ls_rtnl_rule_equal(&cur[i], &want[j]);
			if (!keep)
				ls_rtnl_rule(LS_RTNL_DEL, &cur[i]);
		}
		for (size_t j = 0; j < nw; j++) {
			bool have = false;
			int ret;

			for (size_t i = 0; i < nc; i++)
				have |= ls_rtnl_rule_equal(&cur[i], &want[j]);
			if (!have && (ret = ls_rtnl_rule(LS_RTNL_ADD, &want[j])) && ret != -EEXIST)
				pr_err("cannot add ip rule (priority %u): %s %s", want[j].priority, strerror(-ret),
				       ls_rtnl_last_error());
		}
		free(cur);
	}
	return 0;
}

static const char *const pool_defaults[2] = { LS_MNET_POOL4, LS_MNET_POOL6 };

static int glue_open(const struct ls_profile *prof, const struct ls_dp_opts *o, struct ls_bpfglue **out)
{
	struct ls_bpfglue_opts go = { .fast_forward = o->fast_forward, .snat = o->snat_subnet_routes,
				      .snat_lo = o->snat_port_lo ? o->snat_port_lo : LS_SNAT_PORTS_DEFAULT_LO,
				      .snat_hi = o->snat_port_hi ? o->snat_port_hi : LS_SNAT_PORTS_DEFAULT_HI,
				      .tcp_timeout = o->snat_timeouts[0], .udp_timeout = o->snat_timeouts[1],
				      .icmp_timeout = o->snat_timeouts[2] };

	return ls_bpfglue_open(prof, &go, out);
}

/* Publishes the real routes to the multi-network state and replaces, in want, every
 * route that overlaps another profile's by its virtual prefix; the manual maps add
 * their virtual prefixes. Fills dp->xl and dp->mappings. */
static int map_overlaps(struct ls_dp *dp, struct ls_prefix **want, size_t *nw, size_t *cap)
{
	struct ls_mnet_pools pools = dp->opts.pools;
	json_t *maps = NULL, *m;
	size_t i, k = 0;
	bool automap[ARRAY_SIZE(dp->xl)];
	int ret;

	if (!pools.v4.family)
		ls_prefix_parse(pool_defaults[0], &pools.v4, false);
	if (!pools.v6.family)
		ls_prefix_parse(pool_defaults[1], &pools.v6, false);
	ret = ls_mnet_publish(dp->prof, *want, *nw, &pools, dp->opts.allow_forward, dp->opts.n_allow, dp->opts.maps,
			      dp->opts.n_maps, &maps);
	if (ret)
		pr_warn("multi-network state: %s (routes are not checked for overlaps)", strerror(-ret));
	dp->n_xl = 0;
	json_array_foreach(maps, i, m) {
		struct ls_mnet_map x;
		const char *v = json_string_value(json_object_get(m, "virtual"));

		if (!v || ls_prefix_parse(v, &x.virt, false) ||
		    ls_prefix_parse(json_string_value(json_object_get(m, "real")), &x.real, false) ||
		    dp->n_xl >= ARRAY_SIZE(dp->xl))
			continue;
		if (x.virt.family != x.real.family || x.virt.len != x.real.len) {
			json_object_set_new(m, "error", json_string("virtual and real prefixes differ in family or length"));
			continue;
		}
		/* the real prefix leaves the table when the mapping resolves a conflict */
		automap[dp->n_xl] = json_array_size(json_object_get(m, "conflicts_with")) > 0;
		dp->xl[dp->n_xl++] = x;
	}
	/* translation needs the BPF data plane */
	if (dp->n_xl && !dp->bpf && !dp->opts.no_bpf && !dp->bpf_error[0]) {
		int r = glue_open(dp->prof, &dp->opts, &dp->bpf);

		if (r) {
			snprintf(dp->bpf_error, sizeof(dp->bpf_error), "%s", strerror(-r));
			pr_err("%s: overlapping routes need the BPF translate program, which cannot load (%s): they stay unmapped",
			       dp->prof->ifname, dp->bpf_error);
		} else {
			pr_info("%s: BPF data plane loaded for prefix translation", dp->prof->ifname);
		}
	}
	/* without it nothing is translated: the real prefixes stay (the first profile's rule
	 * wins) and the mappings say why */
	if (dp->n_xl && !dp->bpf) {
		json_array_foreach(maps, i, m) {
			if (json_object_get(m, "virtual"))
				json_object_set_new(m, "error", json_sprintf("not translated: BPF unavailable (%s)",
									     dp->opts.no_bpf ? "--no-bpf" : dp->bpf_error));
		}
		dp->n_xl = 0;
	}
	/* the real prefixes that are mapped leave the table (ambiguous); the virtual ones enter */
	for (size_t j = 0; j < *nw; j++) {
		bool mapped = false;

		for (size_t x = 0; x < dp->n_xl && !mapped; x++)
			mapped = automap[x] && ls_prefix_equal(&dp->xl[x].real, &(*want)[j]);
		if (!mapped)
			(*want)[k++] = (*want)[j];
	}
	*nw = k;
	for (size_t x = 0; x < dp->n_xl; x++) {
		if (*nw == *cap) {
			struct ls_prefix *n = realloc(*want, (*cap + 8) * sizeof(**want));

			if (!n) {
				json_decref(maps);
				return -ENOMEM;
			}
			*want = n;
			*cap += 8;
		}
		(*want)[(*nw)++] = dp->xl[x].virt;
	}
	if (!json_equal(maps, dp->mappings) && json_array_size(maps))
		pr_info("%s: %zu route mapping(s) (overlapping routes or --map)", dp->prof->ifname, json_array_size(maps));
	json_decref(dp->mappings);
	dp->mappings = maps;
	return 0;
}

/* Isolation between the profiles' interfaces: the BPF isolate program when it is loaded,
 * an nft forward chain otherwise. */
static void fill_extra(struct ls_dp *dp, struct ls_bpf_extra *x)
{
	json_t *doc = ls_mnet_read(), *e, *me;
	const char *name;

	memset(x, 0, sizeof(*x));
	x->xl = dp->xl;
	x->n_xl = dp->n_xl;
	me = json_object_get(json_object_get(doc, "profiles"), dp->prof->name);
	x->net_id = (uint32_t)json_integer_value(json_object_get(me, "slot")) + 1;
	json_object_foreach(json_object_get(doc, "profiles"), name, e) {
		bool allowed = false;
		size_t i;
		json_t *v;

		if (e == me || x->n_others >= ARRAY_SIZE(x->others) || !json_is_string(json_object_get(e, "ifname")))
			continue;
		for (i = 0; i < dp->opts.n_allow; i++)
			allowed |= !strcmp(dp->opts.allow_forward[i], name);
		json_array_foreach(json_object_get(e, "allow_forward"), i, v)
			allowed |= json_is_string(v) && !strcmp(json_string_value(v), dp->prof->name);
		snprintf(x->others[x->n_others].ifname, IFNAMSIZ, "%s", json_string_value(json_object_get(e, "ifname")));
		x->others[x->n_others].net_id = (uint32_t)json_integer_value(json_object_get(e, "slot")) + 1;
		x->others[x->n_others].allowed = allowed;
		x->n_others++;
	}
	json_decref(doc);
}

static int nft_run(const char *script);

static void isolate_nft(struct ls_dp *dp, const struct ls_bpf_extra *x)
{
	char script[4096], allow[2048] = "";
	size_t off = 0;
	bool on = !dp->bpf && x->n_others > 0;

	for (size_t i = 0; i < x->n_others; i++) {
		if (x->others[i].allowed)
			off += (size_t)snprintf(allow + off, sizeof(allow) - off, "    iifname \"%s\" oifname \"%s\" accept\n",
						x->others[i].ifname, dp->prof->ifname);
		if (off >= sizeof(allow))
			off = sizeof(allow) - 1;
	}
	if (on)
		snprintf(script, sizeof(script),
			 "table inet lightscale-iso-%s\n"
			 "delete table inet lightscale-iso-%s\n"
			 "table inet lightscale-iso-%s {\n"
			 "  chain forward {\n"
			 "    type filter hook forward priority filter; policy accept;\n"
			 "%s"
			 "    iifname \"ls-*\" iifname != \"%s\" oifname \"%s\" counter drop\n"
			 "  }\n"
			 "}\n",
			 dp->prof->name, dp->prof->name, dp->prof->name, allow, dp->prof->ifname, dp->prof->ifname);
	else
		snprintf(script, sizeof(script), "table inet lightscale-iso-%s\ndelete table inet lightscale-iso-%s\n",
			 dp->prof->name, dp->prof->name);
	if (!on && !dp->iso_nft)
		return;
	if (nft_run(script))
		pr_err("nft: cannot %s table inet lightscale-iso-%s", on ? "create" : "delete", dp->prof->name);
	else
		dp->iso_nft = on;
}

static int sync_routes(struct ls_dp *dp, const struct ls_netmap *nm)
{
	struct ls_rtnl_route *host = NULL, *cur = NULL;
	size_t nh = 0, nc = 0, nw = 0, cap = 16;
	struct ls_prefix *want = malloc(cap * sizeof(*want));
	int ret = 0;

	if (!want)
		return -ENOMEM;
	json_decref(dp->refused);
	dp->refused = json_array();
	json_decref(dp->overlay_conflicts);
	dp->overlay_conflicts = json_array();
	ls_rtnl_route_list(AF_UNSPEC, RT_TABLE_MAIN, &host, &nh);
	/* the overlay itself over a host route (e.g. a 100.64/10 underlay): it still works
	 * (its on-link route is more specific) but the operator should know */
	for (int f = 0; f < 2; f++) {
		const struct ls_prefix *ov = f ? &nm->network.ipv6 : &nm->network.ipv4;
		char why[160], b[LS_PREFIX_STRLEN];

		if (!(f ? nm->network.has_ipv6 : nm->network.has_ipv4))
			continue;
		if (host_collision(dp, ov, host, nh, why, sizeof(why))) {
			ls_prefix_format(ov, b);
			pr_warn("overlay %s %s", b, why);
			json_array_append_new(dp->overlay_conflicts, json_pack("{s:s, s:s}", "prefix", b, "reason", why));
		}
	}
	if (dp->opts.apply_routes) {
		for (size_t i = 0; i < nm->n_peers; i++) {
			const struct ls_nm_peer *p = nm->peers[i];

			for (size_t r = 0; r < p->routes.n; r++) {
				const struct ls_prefix *dst = &p->routes.v[r];
				bool primary = false;
				char why[160], b[LS_PREFIX_STRLEN];

				if (ls_prefix_is_default(dst))
					continue;
				for (size_t a = 0; a < p->allowed_ips.n; a++)
					primary |= ls_prefix_equal(&p->allowed_ips.v[a], dst);
				if (!primary)
					continue; /* standby or not approved: not in AllowedIPs */
				if (host_collision(dp, dst, host, nh, why, sizeof(why))) {
					ls_prefix_format(dst, b);
					json_array_append_new(dp->refused, json_pack("{s:s, s:s, s:s}", "route", b, "peer",
										     p->name, "reason", why));
					continue;
				}
				if (nw == cap) {
					struct ls_prefix *n = realloc(want, cap * 2 * sizeof(*want));

					if (!n) {
						ret = -ENOMEM;
						goto cleanup;
					}
					want = n;
					cap *= 2;
				}
				want[nw++] = *dst;
			}
		}
	}
	if ((ret = map_overlaps(dp, &want, &nw, &cap)))
		goto cleanup;
	if (dp->exit_peer && ls_mnet_default(dp->prof->name, true, dp->exit_owner, sizeof(dp->exit_owner))) {
		const struct ls_nm_peer *p = ls_netmap_find_peer(nm, dp->exit_peer);
		struct ls_prefix defs[2];
		size_t nd = p ? exit_defaults(p, defs) : 0;

		for (size_t i = 0; i < nd; i++) {
			if (nw == cap) {
				struct ls_prefix *n = realloc(want, (cap + 2) * sizeof(*want));

				if (!n) {
					ret = -ENOMEM;
					goto cleanup;
				}
				want = n;
				cap += 2;
			}
			want[nw++] = defs[i];
		}
	}
	if ((ret = ls_rtnl_route_list(AF_UNSPEC, dp->prof->table, &cur, &nc)))
		goto cleanup;
	for (size_t i = 0; i < nc; i++) {
		bool keep = false;

		if (cur[i].type != RTN_UNICAST)
			continue;
		for (size_t j = 0; j < nw; j++)
			keep |= ls_prefix_equal(&cur[i].dst, &want[j]) && cur[i].oif == dp->ifindex;
		if (!keep)
			ls_rtnl_route(LS_RTNL_DEL, dp->prof->table, &cur[i].dst, cur[i].oif);
	}
	for (size_t j = 0; j < nw; j++) {
		bool have = false;
		int r;

		for (size_t i = 0; i < nc; i++)
			have |= ls_prefix_equal(&cur[i].dst, &want[j]) && cur[i].oif == dp->ifindex &&
				cur[i].type == RTN_UNICAST;
		if (!have && (r = ls_rtnl_route(LS_RTNL_REPLACE, dp->prof->table, &want[j], dp->ifindex))) {
			char b[LS_PREFIX_STRLEN];

			ls_prefix_format(&want[j], b);
			pr_err("cannot add route %s dev %s table %u: %s %s", b, dp->prof->ifname, dp->prof->table,
			       strerror(-r), ls_rtnl_last_error());
		}
	}
cleanup:
	free(want);
	free(host);
	free(cur);
	return ret;
}

/* The BPF maps (peers, packet filter, ...) from the netmap, or the nft isolation without BPF. */
static void sync_bpf(struct ls_dp *dp, const struct ls_netmap *nm)
{
	struct ls_bpf_extra *x = malloc(sizeof(*x));

	if (!x)
		return;
	fill_extra(dp, x);
	if (dp->bpf)
		ls_bpfglue_apply(dp->bpf, dp->prof, nm, x);
	isolate_nft(dp, x);
	free(x);
}

static int sync_routing(struct ls_dp *dp, const struct ls_netmap *nm)
{
	char path[128];
	bool router = nm->self.routes.n > 0 || dp->prof->n_routes > 0;
	int ret;

	if ((ret = sync_routes(dp, nm)))
		return ret;
	sync_rules(dp, routing_on(dp));
	/* the overlay's reverse path is the tunnel: loosen rp_filter there */
	snprintf(path, sizeof(path), "net/ipv4/conf/%s/rp_filter", dp->prof->ifname);
	sysctl_note(dp, path, "2");
	if (routing_on(dp)) {
		char all[8] = "";

		sysctl_note(dp, "net/ipv4/conf/all/src_valid_mark", "1");
		if (!ls_sysctl_get("net/ipv4/conf/all/rp_filter", all, sizeof(all)) && !strcmp(all, "1"))
			sysctl_note(dp, "net/ipv4/conf/all/rp_filter", "2");
	}
	if (router) {
		sysctl_note(dp, "net/ipv4/ip_forward", "1");
		sysctl_note(dp, "net/ipv6/conf/all/forwarding", "1");
	}
	sync_bpf(dp, nm);
	/* overlay traffic leaving the router: SNAT in BPF (--snat-subnet-routes, once the
	 * programs are in place), the nftables masquerade, or routed (--no-masquerade) */
	{
		bool bpf_snat = router && dp->opts.snat_subnet_routes && ls_bpfglue_snat_active(dp->bpf);

		masquerade(dp, router && !dp->opts.no_masquerade && !bpf_snat);
		return_routes(dp, nm, router && dp->opts.no_masquerade);
		json_decref(dp->snat);
		if (bpf_snat)
			dp->snat = json_deep_copy(ls_bpfglue_snat_json(dp->bpf));
		else if (dp->masquerading)
			dp->snat = json_pack("{s:s}", "mode", "nftables");
		else
			dp->snat = json_pack("{s:s}", "mode", router && dp->opts.no_masquerade ? "routed" : "off");
		if (dp->masquerading) {
			json_object_set_new(dp->snat, "table", json_sprintf("inet lightscale-%s", dp->prof->name));
			if (dp->opts.snat_subnet_routes)
				json_object_set_new(dp->snat, "why", json_sprintf("BPF SNAT unavailable: %s",
										 dp->bpf_error[0] ? dp->bpf_error
										 : ls_bpfglue_snat_why(dp->bpf)
										 ?: "see the agent log"));
		}
	}
	return 0;
}

/* ---- open / sync / diff ------------------------------------------------------------- */

size_t ls_control_hosts(const char *urls, struct ls_prefix *out, size_t max)
{
	char *dup = urls ? strdup(urls) : NULL, *save = NULL, *tok;
	size_t n = 0;

	if (!dup)
		return 0;
	for (tok = strtok_r(dup, ", ", &save); tok && n < max; tok = strtok_r(NULL, ", ", &save)) {
		char host[256];
		const char *h = strstr(tok, "://");
		size_t hl;
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;

		if (!h)
			continue;
		h += 3;
		if (*h == '[') {
			h++;
			hl = strcspn(h, "]");
		} else {
			hl = strcspn(h, ":/");
		}
		if (hl == 0 || hl >= sizeof(host))
			continue;
		memcpy(host, h, hl);
		host[hl] = '\0';
		if (getaddrinfo(host, NULL, &hints, &res))
			continue;
		for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
			struct ls_prefix p;

			if (ls_prefix_from_sockaddr(ai->ai_addr, &p))
				continue;
			bool dup_found = false;

			for (size_t i = 0; i < n; i++)
				dup_found |= ls_prefix_equal(&out[i], &p);
			if (!dup_found && !(p.family == AF_INET && p.addr[0] == 127))
				out[n++] = p;
		}
		freeaddrinfo(res);
	}
	free(dup);
	return n;
}

int ls_dp_open(struct ls_dp *dp, struct ls_profile *prof, const struct ls_dp_opts *opts)
{
	struct ls_wg_device *cur = NULL, set = { 0 };
	int ret;

	memset(dp, 0, sizeof(*dp));
	dp->prof = prof;
	dp->opts = *opts;
	dp->sysctls = json_object();
	dp->refused = json_array();
	dp->n_control_hosts = ls_control_hosts(prof->control_urls, dp->control_hosts, 8);
	if ((ret = ls_mnet_claim(prof)))
		pr_warn("%s: multi-network state: %s; keeping table %u, rule priority %u", prof->ifname, strerror(-ret),
			prof->table, prof->rule_prio);
	if ((ret = ls_wg_engine_pick(opts->engine, prof->ifname, &dp->eng)))
		return ret;
	if ((ret = dp->eng->create(prof->ifname, &dp->created)))
		return ret;
	dp->ifindex = (int)if_nametoindex(prof->ifname);
	if (!dp->ifindex) {
		pr_err("%s: the interface vanished after the %s engine created it", prof->ifname, dp->eng->name);
		return -ENODEV;
	}
	if (!dp->created)
		pr_info("%s: adopted the running %s engine", prof->ifname, dp->eng->name);
	/* device settings, only what differs (an adopted device keeps its sessions) */
	if ((ret = dp->eng->get(prof->ifname, &cur)))
		return ret;
	if (!(cur->flags & LS_WGD_PRIVATE_KEY) || memcmp(cur->private_key, prof->wg_priv, LS_WG_KEY_LEN)) {
		set.flags |= LS_WGD_PRIVATE_KEY;
		memcpy(set.private_key, prof->wg_priv, LS_WG_KEY_LEN);
	}
	if (cur->listen_port != prof->listen_port) {
		set.flags |= LS_WGD_LISTEN_PORT;
		set.listen_port = (uint16_t)prof->listen_port;
	}
	if (cur->fwmark != prof->fwmark) {
		set.flags |= LS_WGD_FWMARK;
		set.fwmark = prof->fwmark;
	}
	ls_wg_device_free(cur);
	if (set.flags) {
		snprintf(set.ifname, IFNAMSIZ, "%s", prof->ifname);
		if ((ret = dp->eng->set(&set))) {
			ls_memzero(set.private_key, sizeof(set.private_key));
			return ret;
		}
	}
	ls_memzero(set.private_key, sizeof(set.private_key));
	if ((ret = ls_rtnl_link_set(dp->ifindex, true, prof->mtu))) {
		pr_err("%s: cannot set up/mtu %d: %s %s", prof->ifname, prof->mtu, strerror(-ret), ls_rtnl_last_error());
		return ret;
	}
	/* --no-bpf: programs an earlier run left pinned on ls-P go too */
	if (opts->no_bpf)
		ls_bpfglue_down(prof);
	/* the BPF data plane adds metrics: when it cannot load, the tunnel still comes up */
	if (opts->bpf && (ret = glue_open(prof, opts, &dp->bpf))) {
		snprintf(dp->bpf_error, sizeof(dp->bpf_error), "%s", strerror(-ret));
		pr_err("%s: continuing without the BPF data plane (%s)", prof->ifname, dp->bpf_error);
	}
	return 0;
}

void ls_dp_close(struct ls_dp *dp)
{
	ls_bpfglue_close(dp->bpf);
	dp->bpf = NULL;
	json_decref(dp->refused);
	json_decref(dp->sysctls);
	json_decref(dp->overlay_conflicts);
	json_decref(dp->mappings);
	json_decref(dp->snat);
	json_decref(dp->return_routes);
	dp->refused = dp->sysctls = dp->overlay_conflicts = dp->mappings = dp->snat = dp->return_routes = NULL;
}

static void pick_exit(struct ls_dp *dp, const struct ls_netmap *nm)
{
	const struct ls_nm_peer *e = ls_dp_pick_exit(nm, dp->opts.exit_node, dp->exit_reason, sizeof(dp->exit_reason));

	/* one profile owns the default route (lightscale exit-node use moves it) */
	if (!ls_mnet_default(dp->prof->name, e != NULL, dp->exit_owner, sizeof(dp->exit_owner)) && e) {
		snprintf(dp->exit_reason, sizeof(dp->exit_reason),
			 "the default route belongs to profile '%s' (lightscale exit-node use ... --profile %s takes it)",
			 dp->exit_owner, dp->prof->name);
		e = NULL;
	}

	if (e && e->id != dp->exit_peer)
		pr_info("exit node: %s (id %lld)", e->name, (long long)e->id);
	else if (!e && dp->exit_peer)
		pr_info("exit node: none (%s)", dp->exit_reason);
	dp->exit_peer = e ? e->id : 0;
}

int ls_dp_sync(struct ls_dp *dp, const struct ls_netmap *nm)
{
	struct ls_wg_device *cur = NULL;
	struct peer_set set = { 0 };
	struct ls_wg_peer *want = NULL;
	int ret;

	pick_exit(dp, nm);
	if ((ret = dp->eng->get(dp->prof->ifname, &cur)))
		return ret;
	want = calloc(nm->n_peers + 1, sizeof(*want));
	if (!want) {
		ret = -ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < nm->n_peers; i++) {
		if ((ret = desired_peer(dp, nm->peers[i], &want[i])))
			goto cleanup;
	}
	qsort(cur->peers, cur->n_peers, sizeof(*cur->peers), cmp_wg_key);
	for (size_t i = 0; i < nm->n_peers; i++) {
		struct ls_wg_peer *c = bsearch(&want[i], cur->peers, cur->n_peers, sizeof(*cur->peers), cmp_wg_key);
		struct ls_wg_peer *w = &want[i], *s;
		bool ep_ok, allowed_ok, ka_ok;

		if (c) {
			c->flags |= WGP_SEEN;
			allowed_ok = allowed_equal(c->allowed, c->n_allowed, w->allowed, w->n_allowed);
			ep_ok = !(w->flags & LS_WGP_HAS_ENDPOINT) ||
				((c->flags & LS_WGP_HAS_ENDPOINT) && endpoint_in_list(dp, &c->endpoint, nm->peers[i]));
			ka_ok = c->keepalive == w->keepalive;
			if (allowed_ok && ep_ok && ka_ok)
				continue;
		}
		s = ps_push(&set);
		if (!s) {
			ret = -ENOMEM;
			goto cleanup;
		}
		*s = *w;
		w->allowed = NULL;
		if (c) {
			s->flags |= LS_WGP_UPDATE_ONLY;
			if (allowed_equal(c->allowed, c->n_allowed, s->allowed, s->n_allowed))
				s->flags &= ~LS_WGP_REPLACE_ALLOWED, s->n_allowed = 0;
			if ((c->flags & LS_WGP_HAS_ENDPOINT) && endpoint_in_list(dp, &c->endpoint, nm->peers[i]))
				s->flags &= ~LS_WGP_HAS_ENDPOINT;
		}
	}
	for (size_t i = 0; i < cur->n_peers; i++) {
		struct ls_wg_peer *s;

		if (cur->peers[i].flags & WGP_SEEN)
			continue;
		s = ps_push(&set);
		if (!s) {
			ret = -ENOMEM;
			goto cleanup;
		}
		memcpy(s->key, cur->peers[i].key, LS_WG_KEY_LEN);
		s->flags = LS_WGP_REMOVE;
	}
	if (set.n)
		pr_info("%s: %zu peer change(s) of %zu peers", dp->prof->ifname, set.n, nm->n_peers);
	/* what the engine holds and the full desired list are no longer needed */
	ls_wg_device_free(cur);
	cur = NULL;
	for (size_t i = 0; i < nm->n_peers; i++)
		free(want[i].allowed);
	free(want);
	want = NULL;
	if ((ret = ps_send(dp, &set, 0, NULL)))
		goto cleanup;
	sync_addrs(dp, nm);
	ret = sync_routing(dp, nm);
cleanup:
	if (want) {
		for (size_t i = 0; i < nm->n_peers; i++)
			free(want[i].allowed);
		free(want);
	}
	ps_free(&set);
	ls_wg_device_free(cur);
	return ret;
}

static int push_desired(struct ls_dp *dp, struct peer_set *set, const struct ls_nm_peer *p, unsigned int mask)
{
	struct ls_wg_peer *s = ps_push(set);

	if (!s)
		return -ENOMEM;
	if (desired_peer(dp, p, s))
		return -ENOMEM;
	s->flags &= mask;
	return 0;
}

static int push_remove(struct peer_set *set, const uint8_t key[LS_WG_KEY_LEN])
{
	struct ls_wg_peer *s = ps_push(set);

	if (!s)
		return -ENOMEM;
	memcpy(s->key, key, LS_WG_KEY_LEN);
	s->flags = LS_WGP_REMOVE;
	return 0;
}

int ls_dp_apply_diff(struct ls_dp *dp, const struct ls_netmap *nm, const struct ls_nm_diff *diff)
{
	struct peer_set set = { 0 };
	int64_t old_exit = dp->exit_peer;
	bool routes = false;
	int ret = 0;

	pick_exit(dp, nm);
	for (size_t i = 0; i < diff->n_removed && !ret; i++) {
		ret = push_remove(&set, diff->removed[i]->wg_key);
		routes |= diff->removed[i]->routes.n > 0;
	}
	for (size_t i = 0; i < diff->n_added && !ret; i++) {
		ret = push_desired(dp, &set, diff->added[i], ~0u);
		routes |= diff->added[i]->routes.n > 0;
	}
	for (size_t i = 0; i < diff->n_changed && !ret; i++) {
		const struct ls_nm_change *c = &diff->changed[i];
		unsigned int mask = LS_WGP_UPDATE_ONLY;

		if (c->what & LS_NM_CHG_KEY) {
			ret = push_remove(&set, c->old->wg_key);
			if (!ret)
				ret = push_desired(dp, &set, c->new, ~0u);
			routes = true;
			continue;
		}
		if (c->what & LS_NM_CHG_ALLOWED_IPS)
			mask |= LS_WGP_REPLACE_ALLOWED;
		if (c->what & LS_NM_CHG_ENDPOINTS)
			mask |= LS_WGP_HAS_ENDPOINT;
		if (c->what & LS_NM_CHG_ROUTES)
			routes = true;
		if (mask == LS_WGP_UPDATE_ONLY)
			continue; /* metadata only: WireGuard is not touched */
		ret = push_desired(dp, &set, c->new, mask);
		if (!ret) {
			struct ls_wg_peer *s = &set.v[set.n - 1];

			s->flags |= LS_WGP_UPDATE_ONLY;
			if (!(mask & LS_WGP_REPLACE_ALLOWED))
				s->n_allowed = 0;
		}
		routes |= (c->what & LS_NM_CHG_ALLOWED_IPS) != 0;
	}
	/* the exit node moved: its old and new peers' AllowedIPs change */
	if (!ret && old_exit != dp->exit_peer) {
		int64_t ids[2] = { old_exit, dp->exit_peer };

		routes = true;
		for (size_t k = 0; k < 2 && !ret; k++) {
			const struct ls_nm_peer *p = ids[k] ? ls_netmap_find_peer(nm, ids[k]) : NULL;

			if (p)
				ret = push_desired(dp, &set, p, LS_WGP_REPLACE_ALLOWED | LS_WGP_UPDATE_ONLY);
		}
	}
	if (!ret)
		ret = ps_send(dp, &set, 0, NULL);
	if (!ret) {
		sync_addrs(dp, nm);
		if (routes || dp->opts.apply_routes)
			ret = sync_routing(dp, nm);
		else if (dp->bpf)
			sync_bpf(dp, nm); /* a packet filter change alone (no --apply-routes) */
	}
	ps_free(&set);
	return ret;
}

int ls_dp_set_endpoint(struct ls_dp *dp, const uint8_t key[LS_WG_KEY_LEN], const struct sockaddr_storage *ep)
{
	struct peer_set set = { 0 };
	struct ls_wg_peer *s = ps_push(&set);
	int ret;

	if (!s)
		return -ENOMEM;
	memcpy(s->key, key, LS_WG_KEY_LEN);
	s->flags = LS_WGP_UPDATE_ONLY | LS_WGP_HAS_ENDPOINT;
	s->endpoint = *ep;
	ret = ps_send(dp, &set, 0, NULL);
	ps_free(&set);
	return ret;
}

int ls_dp_ensure(struct ls_dp *dp, const struct ls_netmap *nm)
{
	int idx = (int)if_nametoindex(dp->prof->ifname);

	if (!idx)
		return -ENODEV;
	dp->ifindex = idx;
	sync_addrs(dp, nm);
	return sync_routing(dp, nm);
}

int ls_dp_down(struct ls_profile *prof)
{
	struct ls_dp dp = { .prof = prof, .masquerading = true };
	struct ls_rtnl_route *cur = NULL;
	const struct ls_wg_engine *eng;
	size_t nc = 0;
	int idx, ret = 0;

	dp.sysctls = json_object();
	ls_bpfglue_down(prof);
	/* a profile that never claimed its slot must not remove another profile's rules */
	if (ls_mnet_values_taken(prof)) {
		pr_warn("%s: table %u / rule priority %u belong to another profile: rules and routes left alone",
			prof->ifname, prof->table, prof->rule_prio);
	} else {
		sync_rules(&dp, false);
	}
	if (prof->table && !ls_mnet_values_taken(prof) && !ls_rtnl_route_list(AF_UNSPEC, prof->table, &cur, &nc)) {
		for (size_t i = 0; i < nc; i++)
			ls_rtnl_route(LS_RTNL_DEL, prof->table, &cur[i].dst, cur[i].oif);
		free(cur);
	}
	{
		char script[512];

		snprintf(script, sizeof(script),
			 "table inet lightscale-%s\ndelete table inet lightscale-%s\n"
			 "table inet lightscale-iso-%s\ndelete table inet lightscale-iso-%s\n",
			 prof->name, prof->name, prof->name, prof->name);
		nft_run(script);
	}
	ls_mnet_release(prof->name);
	eng = ls_wg_engine_serving(prof->ifname);
	if (eng)
		ret = eng->destroy(prof->ifname);
	idx = (int)if_nametoindex(prof->ifname);
	if (idx)
		ret = ls_rtnl_link_del(idx);
	json_decref(dp.sysctls);
	return ret == -ENODEV ? 0 : ret;
}

/* ---- local endpoints ---------------------------------------------------------------- */

int ls_local_endpoints(const char *skip_ifname, int port, char ***out, size_t *n)
{
	struct ls_rtnl_addr *a = NULL;
	size_t na = 0, k = 0;
	int skip = skip_ifname ? (int)if_nametoindex(skip_ifname) : 0, ret;
	char **v;

	*out = NULL;
	*n = 0;
	if ((ret = ls_rtnl_addr_list(AF_UNSPEC, 0, &a, &na)))
		return ret;
	v = calloc(na + 1, sizeof(*v));
	if (!v) {
		free(a);
		return -ENOMEM;
	}
	for (size_t i = 0; i < na; i++) {
		char ip[INET6_ADDRSTRLEN], buf[LS_ENDPOINT_STRLEN];

		char ifn[IF_NAMESIZE] = "";

		if (a[i].ifindex == skip || a[i].scope != RT_SCOPE_UNIVERSE)
			continue;
		/* other profiles' overlays are not endpoints */
		if (if_indextoname((unsigned int)a[i].ifindex, ifn) && !strncmp(ifn, "ls-", 3))
			continue;
		if (a[i].addr.family == AF_INET6 && (a[i].flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED | IFA_F_DEPRECATED)))
			continue;
		inet_ntop(a[i].addr.family, a[i].addr.addr, ip, sizeof(ip));
		if (a[i].addr.family == AF_INET)
			snprintf(buf, sizeof(buf), "%s:%d", ip, port);
		else
			snprintf(buf, sizeof(buf), "[%s]:%d", ip, port);
		v[k] = strdup(buf);
		if (v[k])
			k++;
	}
	free(a);
	*out = v;
	*n = k;
	return 0;
}
