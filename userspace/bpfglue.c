// SPDX-License-Identifier: MIT
#include "bpfglue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#ifdef LS_HAVE_BPF
#include <netinet/in.h>
#include <pthread.h>
#include <time.h>

#include "dataplane.h"
#include "userspace/bpf/lsbpf.h"
#include "userspace/bpf/lsbpf_int.h" /* lsbpf_for_each_attachment */

#define GLUE_IFS 16

struct ls_bpfglue {
	struct lsbpf *b;
	struct ls_bpfglue_opts o;
	struct {
		char name[IFNAMSIZ];
		unsigned int ifindex; /* a re-created interface gets the programs again */
	} att[GLUE_IFS];              /* LAN-role attachments this process made or adopted */
	size_t n_att;
	bool snat_active;
	bool warned_uplink; /* said that the default route has no single interface */
	char why[192];      /* why SNAT is not active in BPF ("": it is, or not asked for) */
	json_t *snat;     /* ls_bpfglue_snat_json */
	char logged[768]; /* the SNAT interfaces as last logged */
	/* garbage collection of the SNAT and flow tables (idle entries), every GC_SECONDS */
	pthread_t gc;
	bool gc_started, gc_stop;
	pthread_mutex_t gc_lock;
	pthread_cond_t gc_cond;
};

#define GC_SECONDS 5

/* The connection tables' garbage collector: a thread of its own, so that it runs on
 * time whatever the agent's loop is doing (map operations are syscalls: safe beside an
 * apply). While no agent runs, idle entries wait for the next one. */
static void *gc_thread(void *arg)
{
	struct ls_bpfglue *g = arg;
	size_t removed;

	pthread_mutex_lock(&g->gc_lock);
	while (!g->gc_stop) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += GC_SECONDS;
		pthread_cond_timedwait(&g->gc_cond, &g->gc_lock, &ts);
		if (g->gc_stop)
			break;
		pthread_mutex_unlock(&g->gc_lock);
		removed = 0;
		lsbpf_gc(g->b, &removed);
		if (removed)
			pr_debug("bpf: gc removed %zu idle connection(s)", removed);
		pthread_mutex_lock(&g->gc_lock);
	}
	pthread_mutex_unlock(&g->gc_lock);
	return NULL;
}

static bool attached_now(struct ls_bpfglue *g, const char *name)
{
	for (size_t k = 0; k < g->n_att; k++)
		if (!strcmp(g->att[k].name, name))
			return g->att[k].ifindex == if_nametoindex(name);
	return false;
}

static void remember(struct ls_bpfglue *g, const char *name)
{
	size_t k;

	for (k = 0; k < g->n_att && strcmp(g->att[k].name, name); k++)
		;
	if (k == g->n_att) {
		if (g->n_att >= GLUE_IFS)
			return;
		g->n_att++;
	}
	memcpy(g->att[k].name, name, strnlen(name, IFNAMSIZ - 1));
	g->att[k].name[strnlen(name, IFNAMSIZ - 1)] = '\0';
	g->att[k].ifindex = if_nametoindex(name);
}

struct stale_arg {
	char names[GLUE_IFS][IFNAMSIZ];
	size_t n;
	const struct ls_router_if *keep;
	const bool *use;
	int n_keep;
};

static int stale_cb(void *arg, const char *kind, const char *ifname, const char *hook)
{
	struct stale_arg *a = arg;

	(void)kind;
	if (strcmp(hook, "lan_in") && strcmp(hook, "lan_out") && strcmp(hook, "xdp_lan_in"))
		return 0;
	for (int i = 0; i < a->n_keep; i++)
		if (a->use[i] && !strcmp(a->keep[i].ifname, ifname))
			return 0;
	for (size_t i = 0; i < a->n; i++)
		if (!strcmp(a->names[i], ifname))
			return 0;
	if (a->n < GLUE_IFS && strlen(ifname) < IFNAMSIZ)
		strcpy(a->names[a->n++], ifname);
	return 0;
}

/* The router's LAN interfaces (an address inside one of this node's advertised routes)
 * and, for SNAT on an exit node, its uplink: attach the LAN programs (once), put them in
 * the interface map with their SNAT source, and detach what the pin directory records
 * on interfaces that no longer qualify. ri/use come back for the status; *missing says
 * that an interface that should have the programs does not (it is left out). */
static int router_ifaces(struct ls_bpfglue *g, struct lsbpf_state *s, const struct ls_profile *prof,
			 const struct ls_netmap *nm, uint32_t me, struct ls_router_if *ri, bool *use, int *n_out,
			 bool *missing)
{
	bool no_uplink = false;
	int n = ls_dp_router_ifaces(nm, prof->ifname, ri, GLUE_IFS, &no_uplink), ret = 0;
	struct stale_arg st = { .keep = ri, .use = use };

	*n_out = 0;
	*missing = n < 0 || (g->o.snat && no_uplink);
	g->why[0] = '\0';
	if (n < 0) {
		pr_err("bpf: cannot list the router's interfaces: %s", strerror(-n));
		snprintf(g->why, sizeof(g->why), "cannot list the router's interfaces: %s", strerror(-n));
		return 0;
	}
	if (g->o.snat && no_uplink)
		snprintf(g->why, sizeof(g->why), "the host's default route names no single interface (multipath?)");
	if (g->o.snat && no_uplink && !g->warned_uplink)
		pr_warn("bpf: the host's default route names no single interface (multipath?): no uplink for BPF SNAT");
	g->warned_uplink = g->o.snat && no_uplink;
	*n_out = st.n_keep = n;
	for (int i = 0; i < n; i++) {
		uint32_t flags = 0;

		use[i] = (g->o.snat && (ri[i].lan || ri[i].uplink)) || (g->o.fast_forward && ri[i].lan);
		if (!use[i])
			continue;
		if (!attached_now(g, ri[i].ifname)) {
			int r = lsbpf_attach(g->b, ri[i].ifname, LSBPF_ROLE_LAN, g->o.snat ? LSBPF_MODE_XDP : LSBPF_MODE_AUTO);

			if (r) {
				pr_err("bpf: cannot attach the LAN programs to %s: %s", ri[i].ifname, strerror(-r));
				snprintf(g->why, sizeof(g->why), "cannot attach the LAN programs to %s: %s", ri[i].ifname,
					 strerror(-r));
				use[i] = false;
				*missing = true;
				continue;
			}
			if (g->o.snat)
				pr_info("bpf: SNAT: LAN programs attached to %s (%s)", ri[i].ifname,
					ri[i].lan && ri[i].uplink ? "lan+uplink" : ri[i].lan ? "lan" : "uplink");
			if (g->o.fast_forward && ri[i].lan)
				pr_info("bpf: fast forwarding: LAN programs attached to %s", ri[i].ifname);
			remember(g, ri[i].ifname);
		}
		if (ri[i].lan)
			flags |= LS_IF_LAN | (g->o.fast_forward ? LS_IF_FWD_TARGET : 0);
		/* an uplink alone belongs to no network: isolation then leaves traffic to the
		 * internet alone (another profile may be an exit through it too) */
		if (!ret)
			ret = lsbpf_state_add_iface(s, ri[i].ifname, ri[i].lan ? me : 0, flags);
		if (!ret && g->o.snat && ri[i].addr4.family)
			ret = lsbpf_state_set_iface_snat(s, ri[i].ifname, &ri[i].addr4);
		if (!ret && g->o.snat && ri[i].addr6.family)
			ret = lsbpf_state_set_iface_snat(s, ri[i].ifname, &ri[i].addr6);
	}
	lsbpf_for_each_attachment(lsbpf_pin_dir(g->b), stale_cb, &st);
	for (size_t k = 0; k < st.n; k++) {
		if (!lsbpf_detach(g->b, st.names[k]))
			pr_info("bpf: %s no longer a LAN or uplink of this router: LAN programs detached", st.names[k]);
		for (size_t j = 0; j < g->n_att; j++) {
			if (!strcmp(g->att[j].name, st.names[k])) {
				g->att[j] = g->att[--g->n_att];
				break;
			}
		}
	}
	return ret;
}

static void snat_status(struct ls_bpfglue *g, const struct ls_router_if *ri, const bool *use, int n)
{
	json_t *ifs = json_array();
	char line[768] = "";

	for (int i = 0; i < n; i++) {
		char a4[LS_PREFIX_STRLEN] = "", a6[LS_PREFIX_STRLEN] = "";
		json_t *att, *h, *hooks = json_array();
		size_t k;

		if (!use[i])
			continue;
		if (ri[i].addr4.family)
			ls_prefix_format_addr(&ri[i].addr4, a4);
		if (ri[i].addr6.family)
			ls_prefix_format_addr(&ri[i].addr6, a6);
		att = lsbpf_attachments_json(lsbpf_pin_dir(g->b), ri[i].ifname);
		json_array_foreach(att, k, h)
			json_array_append_new(hooks, json_pack("{s:O, s:O, s:O}", "hook", json_object_get(h, "hook"), "mode",
							       json_object_get(h, "mode"), "attached",
							       json_object_get(h, "attached")));
		json_decref(att);
		json_array_append_new(ifs, json_pack("{s:s, s:s, s:o, s:o, s:o}", "interface", ri[i].ifname, "role",
						     ri[i].lan && ri[i].uplink ? "lan+uplink" : ri[i].lan ? "lan" : "uplink",
						     "ipv4", a4[0] ? json_string(a4) : json_null(), "ipv6",
						     a6[0] ? json_string(a6) : json_null(), "hooks", hooks));
		snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s%s (%s) %s%s%s", line[0] ? "; " : "",
			 ri[i].ifname, ri[i].lan ? "lan" : "uplink", a4[0] ? a4 : "", a4[0] && a6[0] ? ", " : "",
			 a6[0] ? a6 : (a4[0] ? "" : "no address: not translated"));
	}
	json_decref(g->snat);
	g->snat = json_pack("{s:s, s:o, s:i, s:i, s:b, s:{s:i, s:i, s:i}, s:o}", "mode", "bpf", "ports",
			    json_sprintf("%u-%u", g->o.snat_lo, g->o.snat_hi), "port_lo", g->o.snat_lo, "port_hi",
			    g->o.snat_hi, "reserved", lsbpf_ports_reserved(g->o.snat_lo, g->o.snat_hi), "timeouts", "tcp",
			    g->o.tcp_timeout ?: LS_TIMEOUT_TCP, "udp", g->o.udp_timeout ?: LS_TIMEOUT_UDP, "icmp",
			    g->o.icmp_timeout ?: LS_TIMEOUT_ICMP, "interfaces", ifs);
	if (strcmp(line, g->logged)) {
		pr_info("bpf: SNAT of overlay traffic (ports %u-%u): %s", g->o.snat_lo, g->o.snat_hi,
			line[0] ? line : "no LAN or uplink interface yet");
		snprintf(g->logged, sizeof(g->logged), "%s", line);
	}
}

int ls_bpfglue_open(const struct ls_profile *prof, const struct ls_bpfglue_opts *go, struct ls_bpfglue **out)
{
	struct lsbpf_opts o = { .profile = prof->name };
	struct ls_bpfglue *g = calloc(1, sizeof(*g));
	int ret;

	*out = NULL;
	if (!g)
		return -ENOMEM;
	g->o = *go;
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
	pthread_mutex_init(&g->gc_lock, NULL);
	pthread_cond_init(&g->gc_cond, NULL);
	if (g->o.snat) {
		if ((ret = pthread_create(&g->gc, NULL, gc_thread, g)))
			pr_warn("bpf: no garbage collector for the SNAT table: %s", strerror(ret));
		else
			g->gc_started = true;
	}
	*out = g;
	return 0;
}

bool ls_bpfglue_snat_active(const struct ls_bpfglue *g)
{
	return g && g->o.snat && g->snat_active;
}

json_t *ls_bpfglue_snat_json(const struct ls_bpfglue *g)
{
	return g && g->o.snat ? g->snat : NULL;
}

const char *ls_bpfglue_snat_why(const struct ls_bpfglue *g)
{
	return g && g->o.snat && !g->snat_active && g->why[0] ? g->why : NULL;
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
	struct ls_router_if ri[GLUE_IFS];
	bool use[GLUE_IFS] = { false }, missing = false;
	int ret = 0, n_ri = 0;

	if (!g)
		return 0;
	s = lsbpf_state_new();
	if (!s)
		return -ENOMEM;
	route_net = me;
	s->flags = LS_CFG_METRICS | LS_CFG_ISOLATE;
	s->wg_port = (uint16_t)prof->listen_port;
	ret = lsbpf_state_add_iface(s, prof->ifname, me, LS_IF_OVERLAY | (g->o.snat ? LS_IF_SNAT_FROM : 0));
	if (g->o.fast_forward)
		s->flags |= LS_CFG_FWD_FAST;
	/* SNAT runs on a router (a node that advertises routes); its ports stay reserved
	 * while it does, also across agent restarts */
	if (g->o.snat && nm->self.routes.n > 0) {
		s->flags |= LS_CFG_SNAT;
		s->snat_port_lo = g->o.snat_lo;
		s->snat_port_hi = g->o.snat_hi;
		s->tcp_timeout = g->o.tcp_timeout;
		s->udp_timeout = g->o.udp_timeout;
		s->icmp_timeout = g->o.icmp_timeout;
	}
	if (!ret)
		ret = router_ifaces(g, s, prof, nm, me, ri, use, &n_ri, &missing);
	/* SNAT on some interfaces only would leave the others untranslated: without all of
	 * them the agent masquerades with nftables instead (sync_routing) */
	if (missing && (s->flags & LS_CFG_SNAT)) {
		pr_err("bpf: SNAT needs the LAN programs on every LAN and uplink interface: BPF SNAT off");
		s->flags &= ~LS_CFG_SNAT;
		s->snat_port_lo = s->snat_port_hi = 0;
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
	g->snat_active = !ret && (s->flags & LS_CFG_SNAT);
	if (g->o.snat)
		snat_status(g, ri, use, n_ri);
	lsbpf_state_free(s);
	return ret;
}

void ls_bpfglue_close(struct ls_bpfglue *g)
{
	if (!g)
		return;
	if (g->gc_started) {
		pthread_mutex_lock(&g->gc_lock);
		g->gc_stop = true;
		pthread_cond_signal(&g->gc_cond);
		pthread_mutex_unlock(&g->gc_lock);
		pthread_join(g->gc, NULL);
	}
	pthread_mutex_destroy(&g->gc_lock);
	pthread_cond_destroy(&g->gc_cond);
	lsbpf_close(g->b);
	json_decref(g->snat);
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

bool ls_bpfglue_snat_active(const struct ls_bpfglue *g)
{
	return false;
}

json_t *ls_bpfglue_snat_json(const struct ls_bpfglue *g)
{
	return NULL;
}

const char *ls_bpfglue_snat_why(const struct ls_bpfglue *g)
{
	return NULL;
}

int ls_bpfglue_open(const struct ls_profile *prof, const struct ls_bpfglue_opts *o, struct ls_bpfglue **out)
{
	(void)o;
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
