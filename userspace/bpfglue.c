// SPDX-License-Identifier: MIT
#include "bpfglue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#ifdef LS_HAVE_BPF
#include "userspace/bpf/lsbpf.h"

struct ls_bpfglue {
	struct lsbpf *b;
};

int ls_bpfglue_open(const struct ls_profile *prof, struct ls_bpfglue **out)
{
	struct lsbpf_opts o = { .profile = prof->name };
	struct ls_bpfglue *g = calloc(1, sizeof(*g));
	int ret;

	*out = NULL;
	if (!g)
		return -ENOMEM;
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

int ls_bpfglue_open(const struct ls_profile *prof, struct ls_bpfglue **out)
{
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
