// SPDX-License-Identifier: MIT
#include "bpfglue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#ifdef LS_HAVE_BPF
#include <ifaddrs.h>
#include <netinet/in.h>

#include "userspace/bpf/lsbpf.h"

struct ls_bpfglue {
	struct lsbpf *b;
	char lan[8][IFNAMSIZ]; /* LAN interfaces the LAN programs are attached to */
	size_t n_lan;
	bool fast_forward;
};

static bool in_prefix(const struct ls_prefix *p, const struct sockaddr *sa)
{
	const uint8_t *a, *net = (const uint8_t *)&p->addr;
	unsigned int bits = p->len;

	if (sa->sa_family == AF_INET && p->family == AF_INET)
		a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6 && p->family == AF_INET6)
		a = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	else
		return false;
	for (unsigned int i = 0; bits; i++) {
		uint8_t m = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));

		if ((a[i] & m) != (net[i] & m))
			return false;
		bits = bits >= 8 ? bits - 8 : 0;
	}
	return true;
}

/* --fast-forward: the interfaces holding an address inside one of this node's advertised
 * routes are its LAN side: attach the LAN programs (once) and flag them as targets. */
static int add_lans(struct ls_bpfglue *g, struct lsbpf_state *s, const struct ls_profile *prof,
		    const struct ls_netmap *nm, uint32_t me)
{
	struct ifaddrs *ifa, *i;
	char seen[8][IFNAMSIZ];
	size_t n_seen = 0;
	int ret = 0;

	if (getifaddrs(&ifa))
		return -errno;
	for (i = ifa; i && !ret; i = i->ifa_next) {
		bool match = false, dup = false;

		if (!i->ifa_addr || !i->ifa_name || !strcmp(i->ifa_name, prof->ifname) || strlen(i->ifa_name) >= IFNAMSIZ)
			continue;
		for (size_t r = 0; !match && r < nm->self.routes.n; r++)
			match = !ls_prefix_is_default(&nm->self.routes.v[r]) && in_prefix(&nm->self.routes.v[r], i->ifa_addr);
		for (size_t k = 0; k < n_seen; k++)
			dup |= !strcmp(seen[k], i->ifa_name);
		if (!match || dup || n_seen >= ARRAY_SIZE(seen))
			continue;
		strcpy(seen[n_seen++], i->ifa_name);
		bool attached = false;

		for (size_t k = 0; k < g->n_lan; k++)
			attached |= !strcmp(g->lan[k], i->ifa_name);
		if (!attached) {
			if ((ret = lsbpf_attach(g->b, i->ifa_name, LSBPF_ROLE_LAN, LSBPF_MODE_AUTO))) {
				pr_err("bpf: cannot attach the LAN programs to %s: %s", i->ifa_name, strerror(-ret));
				break;
			}
			pr_info("bpf: fast forwarding: LAN programs attached to %s", i->ifa_name);
			if (g->n_lan < ARRAY_SIZE(g->lan))
				strcpy(g->lan[g->n_lan++], i->ifa_name);
		}
		ret = lsbpf_state_add_iface(s, i->ifa_name, me, LS_IF_LAN | LS_IF_FWD_TARGET);
	}
	freeifaddrs(ifa);
	return ret;
}

int ls_bpfglue_open(const struct ls_profile *prof, bool fast_forward, struct ls_bpfglue **out)
{
	struct lsbpf_opts o = { .profile = prof->name };
	struct ls_bpfglue *g = calloc(1, sizeof(*g));
	int ret;

	*out = NULL;
	if (!g)
		return -ENOMEM;
	g->fast_forward = fast_forward;
	if ((ret = lsbpf_open(&o, &g->b))) {
		pr_err("bpf: cannot load the data plane for profile '%s': %s", prof->name, strerror(-ret));
		free(g);
		return ret;
	}
	if ((ret = lsbpf_attach(g->b, prof->ifname, LSBPF_ROLE_OVERLAY, LSBPF_MODE_AUTO))) {
		pr_err("bpf: cannot attach to %s: %s", prof->ifname, strerror(-ret));
		lsbpf_close(g->b);
		free(g);
		return ret;
	}
	pr_info("bpf: programs attached to %s (pins in %s)", prof->ifname, lsbpf_pin_dir(g->b));
	*out = g;
	return 0;
}

static uint32_t route_net = 1;

static int add_route(struct lsbpf_state *s, const struct ls_prefix *p, uint16_t n_adv, uint16_t flags, const char *name)
{
	char b[LS_PREFIX_STRLEN];

	ls_prefix_format(p, b);
	return lsbpf_state_add_route(s, b, route_net, n_adv, flags, name);
}

int ls_bpfglue_apply(struct ls_bpfglue *g, const struct ls_profile *prof, const struct ls_netmap *nm,
		     const struct ls_bpf_extra *x)
{
	struct lsbpf_state *s;
	char name[64];
	uint32_t me = x && x->net_id ? x->net_id : 1;
	int ret = 0;

	if (!g)
		return 0;
	s = lsbpf_state_new();
	if (!s)
		return -ENOMEM;
	route_net = me;
	s->flags = LS_CFG_METRICS | LS_CFG_ISOLATE;
	s->wg_port = (uint16_t)prof->listen_port;
	ret = lsbpf_state_add_iface(s, prof->ifname, me, LS_IF_OVERLAY);
	if (!ret && g->fast_forward) {
		s->flags |= LS_CFG_FWD_FAST;
		ret = add_lans(g, s, prof, nm, me);
	}
	for (size_t i = 0; x && !ret && i < x->n_xl; i++) {
		char vb[LS_PREFIX_STRLEN], rb[LS_PREFIX_STRLEN];

		ls_prefix_format(&x->xl[i].virt, vb);
		ls_prefix_format(&x->xl[i].real, rb);
		s->flags |= LS_CFG_XLATE_CLIENT;
		ret = lsbpf_state_add_xlate(s, vb, rb);
	}
	for (size_t i = 0; x && !ret && i < x->n_others; i++) {
		if (!if_nametoindex(x->others[i].ifname))
			continue;
		ret = lsbpf_state_add_iface(s, x->others[i].ifname, x->others[i].net_id, LS_IF_OVERLAY);
		if (!ret && x->others[i].allowed)
			ret = lsbpf_state_add_allow(s, me, x->others[i].net_id);
	}
	snprintf(name, sizeof(name), "overlay %s", nm->network.name ? nm->network.name : "");
	if (!ret && nm->network.has_ipv4)
		ret = add_route(s, &nm->network.ipv4, 1, 0, name);
	if (!ret && nm->network.has_ipv6)
		ret = add_route(s, &nm->network.ipv6, 1, 0, name);
	for (size_t i = 0; !ret && i < nm->self.routes.n; i++) {
		if (!ls_prefix_is_default(&nm->self.routes.v[i]))
			ret = add_route(s, &nm->self.routes.v[i], 1, LS_ROUTE_LOCAL, nm->self.name);
	}
	/* each advertised route once; a route several peers advertise (primary + standby)
	 * counts them in n_adv, which the metrics program reports as a conflict */
	for (size_t i = 0; !ret && i < nm->n_peers; i++) {
		const struct ls_nm_peer *p = nm->peers[i];

		for (size_t r = 0; !ret && r < p->routes.n; r++) {
			const struct ls_prefix *dst = &p->routes.v[r];
			uint16_t n_adv = 0;
			bool first = true;

			if (ls_prefix_is_default(dst))
				continue;
			for (size_t j = 0; j < nm->n_peers; j++) {
				const struct ls_nm_peer *q = nm->peers[j];

				for (size_t k = 0; k < q->routes.n; k++) {
					if (ls_prefix_equal(&q->routes.v[k], dst)) {
						n_adv++;
						if (j < i)
							first = false;
					}
				}
				for (size_t k = 0; k < q->standby_routes.n; k++)
					n_adv += ls_prefix_equal(&q->standby_routes.v[k], dst);
			}
			if (first)
				ret = add_route(s, dst, n_adv ? n_adv : 1, 0, p->name);
		}
	}
	/* the ACL compiled for this node (control/ACL policy): enforced on overlay ingress */
	if (!ret && nm->packet_filter)
		ret = lsbpf_state_add_filter_json(s, nm->packet_filter);
	if (!ret)
		ret = lsbpf_apply(g->b, s);
	if (ret)
		pr_err("bpf: applying the netmap's routes: %s", strerror(-ret));
	lsbpf_state_free(s);
	return ret;
}

void ls_bpfglue_close(struct ls_bpfglue *g)
{
	if (!g)
		return;
	lsbpf_close(g->b);
	free(g);
}

int ls_bpfglue_down(const struct ls_profile *prof)
{
	struct lsbpf_opts o = { .profile = prof->name };
	struct lsbpf *b = NULL;
	char dir[512];
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/%s", LSBPF_PIN_ROOT, prof->name);
	f = fopen(dir, "r");
	if (!f)
		return 0; /* nothing pinned: nothing to take down */
	fclose(f);
	if (lsbpf_open(&o, &b))
		return 0;
	return lsbpf_destroy(b);
}

#else

int ls_bpfglue_open(const struct ls_profile *prof, bool fast_forward, struct ls_bpfglue **out)
{
	(void)fast_forward;
	*out = NULL;
	pr_err("bpf: this build has no BPF loader (userspace/bpf); run without --bpf");
	return -EOPNOTSUPP;
}

int ls_bpfglue_apply(struct ls_bpfglue *g, const struct ls_profile *prof, const struct ls_netmap *nm,
		     const struct ls_bpf_extra *x)
{
	return 0;
}

void ls_bpfglue_close(struct ls_bpfglue *g)
{
}

int ls_bpfglue_down(const struct ls_profile *prof)
{
	return 0;
}

#endif
