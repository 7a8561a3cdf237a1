// SPDX-License-Identifier: MIT
/*
 * Forwarding 64-byte packets through a router namespace, our programs against nftables.
 *
 *   lsb-P-g (generator)            lsb-P-r (router, forwarding)             lsb-P-s (sink)
 *   g0  ---- veth ---->  r0 [XDP: ours or empty]   r1 [TC egress: SNAT] ----> s0 [XDP count+drop]
 *
 * The generator is an XDP program run in live-frames mode (XDP_TX out of g0); veth does
 * the router's NAPI work on the sending core, so the figure is the total ns per packet
 * (wall time of the run / packets), with packets delivered per second at the sink beside
 * it. Every variant keeps an XDP program on r0 (ours, or an empty one) so the receive
 * path is the same. Variants alternate within each round; medians and spreads printed.
 *
 *   forward [PACKETS] [ROUNDS] [VARIANT...]
 *
 * With VARIANTs (base xdp tc netmap stateless snat masq xdp-fwd tc-fwd snat-fwd snat-agent), only
 * those run, 1 flow (60,000 for the SNAT ones; BENCH_FLOWS=N sets the count for the
 * others): for profiling one path with perf, or comparing two variants quickly.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bench/forward/gen.skel.h"
#include "userspace/bpf/lsbpf.h"

static char ns_g[64], ns_r[64], ns_s[64];

static void drop_namespaces(void)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null",
		 ns_g, ns_r, ns_s);
	if (system(cmd))
		return;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void enter(const char *ns)
{
	char path[128];
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	int fd = open(path, O_RDONLY);
	if (fd < 0 || setns(fd, CLONE_NEWNET)) {
		perror(path);
		exit(1);
	}
	close(fd);
}

static void mac_of(const char *ns, const char *ifn, uint8_t mac[6])
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "ip -n %s -o link show %s | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2", ns, ifn);
	FILE *f = popen(cmd, "r");
	unsigned m[6] = {};
	if (!f || fscanf(f, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6) {
		fprintf(stderr, "no MAC for %s\n", ifn);
		exit(1);
	}
	pclose(f);
	for (int i = 0; i < 6; i++)
		mac[i] = m[i];
}

static uint16_t ipsum(const uint8_t *h)
{
	uint32_t s = 0;
	for (int i = 0; i < 20; i += 2)
		s += (h[i] << 8) | h[i + 1];
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return htons(~s);
}

static void build_frame(uint8_t *f, const uint8_t *dmac, const uint8_t *smac, const char *src, const char *dst)
{
	memset(f, 0, 64);
	memcpy(f, dmac, 6);
	memcpy(f + 6, smac, 6);
	f[12] = 0x08;
	uint8_t *ip = f + 14;
	ip[0] = 0x45;
	ip[3] = 50; /* 20 + 8 + 22 */
	ip[8] = 64;
	ip[9] = 17;
	inet_pton(AF_INET, src, ip + 12);
	inet_pton(AF_INET, dst, ip + 16);
	uint16_t c = ipsum(ip);
	memcpy(ip + 10, &c, 2);
	uint8_t *u = ip + 20;
	u[2] = 0x13;
	u[3] = 0x89; /* 5001 */
	u[5] = 30;   /* length; checksum 0 (none) */
}

enum variant { V_BASE, V_XDP_XLATE, V_TC_XLATE, V_NFT_NETMAP, V_NFT_STATELESS, V_BPF_SNAT, V_NFT_MASQ,
	       V_XDP_XLATE_FWD, V_TC_XLATE_FWD, V_BPF_SNAT_FWD, V_BPF_SNAT_AGENT, V_MAX };
static const char *vshort[V_MAX] = { "base", "xdp", "tc", "netmap", "stateless", "snat", "masq",
				     "xdp-fwd", "tc-fwd", "snat-fwd", "snat-agent" };
static const char *vname[V_MAX] = { "plain forwarding", "XDP translate", "TC translate", "nft NETMAP",
				    "nft stateless", "BPF SNAT", "nft masquerade", "XDP translate+fwd",
				    "TC translate+fwd", "BPF SNAT+fwd", "agent SNAT+fwd" };
static int tcx_link2 = -1;
static void apply_state(enum variant v);

static struct lsbpf *lb;
static int r0, r1, tcx_link = -1;

static void router_clear(void)
{
	enter(ns_r);
	bpf_xdp_detach(r0, 0, NULL);
	if (tcx_link >= 0) {
		close(tcx_link);
		tcx_link = -1;
	}
	if (tcx_link2 >= 0) {
		close(tcx_link2);
		tcx_link2 = -1;
	}
	sh("ip netns exec %s nft flush ruleset; ip netns exec %s conntrack -F >/dev/null 2>&1", ns_r, ns_r);
}

static bool is_snat(enum variant v)
{
	return v == V_BPF_SNAT || v == V_NFT_MASQ || v == V_BPF_SNAT_FWD || v == V_BPF_SNAT_AGENT;
}

static void router_set(enum variant v)
{
	router_clear();
	enter(ns_r);
	apply_state(v);
	if (v == V_XDP_XLATE_FWD)
		v = V_XDP_XLATE;
	if (v == V_TC_XLATE_FWD)
		v = V_TC_XLATE;
	if (v == V_BPF_SNAT_FWD || v == V_BPF_SNAT_AGENT) {
		/* the overlay's ingress program forwards and runs r1's SNAT itself; r1's
		 * egress program is attached as the agent does, and passes those packets */
		v = V_BPF_SNAT;
		tcx_link2 = bpf_link_create(lsbpf_prog_fd(lb, "ls_overlay_in"), r0, 46, NULL);
	}
	int prog = v == V_XDP_XLATE ? lsbpf_prog_fd(lb, "ls_xdp_lan_in") : lsbpf_prog_fd(lb, "ls_empty_xdp");
	if (bpf_xdp_attach(r0, prog, XDP_FLAGS_DRV_MODE, NULL)) {
		perror("xdp attach r0");
		exit(1);
	}
	if (v == V_TC_XLATE)
		tcx_link = bpf_link_create(lsbpf_prog_fd(lb, "ls_lan_in"), r0, 46, NULL);
	if (v == V_BPF_SNAT)
		tcx_link = bpf_link_create(lsbpf_prog_fd(lb, "ls_lan_out"), r1, 47, NULL);
	if ((v == V_TC_XLATE || v == V_BPF_SNAT) && tcx_link < 0) {
		perror("tcx attach");
		exit(1);
	}
	if (v == V_NFT_NETMAP)
		sh("ip netns exec %s nft 'add table ip lsbf; add chain ip lsbf post { type nat hook postrouting priority srcnat; }; "
		   "add rule ip lsbf post ip saddr 192.168.1.0/24 snat ip prefix to 10.201.1.0/24'", ns_r);
	if (v == V_NFT_STATELESS)
		sh("ip netns exec %s nft 'add table netdev lsbf; add chain netdev lsbf in { type filter hook ingress device r0 priority 0; }; "
		   "add rule netdev lsbf in ip saddr 192.168.1.5 ip saddr set 10.201.1.5'", ns_r);
	if (v == V_NFT_MASQ)
		sh("ip netns exec %s nft 'add table ip lsbf; add chain ip lsbf post { type nat hook postrouting priority srcnat; }; "
		   "add rule ip lsbf post oif r1 masquerade'", ns_r);
}

/* Translate variants: the mapping on r0; SNAT variants: SNAT alone, or (snat-agent) what
 * `lightscale agent --bpf --fast-forward --snat-subnet-routes` sets on a subnet router of
 * one network: metrics and isolation on too, r1 a LAN of that network, its route known. */
static void apply_state(enum variant v)
{
	struct lsbpf_state *st = lsbpf_state_new();
	bool fwd = v == V_XDP_XLATE_FWD || v == V_TC_XLATE_FWD || v == V_BPF_SNAT_FWD || v == V_BPF_SNAT_AGENT;
	bool agent = v == V_BPF_SNAT_AGENT;

	st->flags = (is_snat(v) ? LS_CFG_SNAT : LS_CFG_XLATE_ROUTER) | (fwd ? LS_CFG_FWD_FAST : 0) |
		    (agent ? LS_CFG_METRICS | LS_CFG_ISOLATE : 0);
	if (!is_snat(v))
		lsbpf_state_add_map_arg(st, "10.201.1.0/24=192.168.1.0/24");
	if (agent)
		lsbpf_state_add_route(st, "192.168.2.0/24", 1, 1, 0, "router");
	lsbpf_state_add_iface(st, "r0", 1, LS_IF_OVERLAY | LS_IF_SNAT_FROM);
	lsbpf_state_add_iface(st, "r1", agent ? 1 : 0, LS_IF_LAN | LS_IF_FWD_TARGET);
	ls_prefix_parse("192.168.2.1", &st->snat4, true);
	st->snat_port_lo = 1024;
	st->snat_port_hi = 65000;
	if (lsbpf_apply(lb, st))
		exit(1);
	lsbpf_state_free(st);
}

static struct gen *g;
static int g0;

/* Sends n packets; returns ns per packet, *mpps gets delivered Mpps at the sink. */
static double run(long n, double *mpps, double *delivered)
{
	enter(ns_g);
	uint8_t buf[64];
	memcpy(buf, g->bss->frame, 64);
	struct xdp_md ctx = { .data_end = 64, .ingress_ifindex = g0 };
	DECLARE_LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = buf, .data_size_in = 64, .ctx_in = &ctx,
			    .ctx_size_in = sizeof(ctx), .repeat = n, .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
	__u64 before = g->bss->sunk_ok;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	if (bpf_prog_test_run_opts(bpf_program__fd(g->progs.gen), &o)) {
		perror("live frames run");
		exit(1);
	}
	usleep(20000); /* let the last NAPI batches land */
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec) - 20e6;
	__u64 got = g->bss->sunk_ok - before; /* delivered with the right source address */
	*mpps = got / ns * 1e3;
	*delivered = (double)got / n;
	return ns / n;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct result {
	double ns[48], mpps[48], del[48];
	int n;
};

static void set_mode(bool snat, uint32_t flows, const uint8_t *dmac, const uint8_t *smac)
{
	inet_pton(AF_INET, snat ? "192.168.2.1" : "10.201.1.5", &g->bss->want_saddr);
	build_frame(g->bss->frame, dmac, smac, snat ? "100.64.0.5" : "192.168.1.5", snat ? "192.168.2.20" : "10.99.0.2");
	g->data->nflows = flows;
	g->bss->vary_dport = snat;
}

int main(int argc, char **argv)
{
	long packets = argc > 1 ? atol(argv[1]) : 2000000;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	int pid = getpid();
	uint8_t mac_r0[6], mac_g0[6];
	int rc = 0;

	if (rounds > 48)
		rounds = 48;
	snprintf(ns_g, sizeof(ns_g), "lsb-%d-g", pid);
	snprintf(ns_r, sizeof(ns_r), "lsb-%d-r", pid);
	snprintf(ns_s, sizeof(ns_s), "lsb-%d-s", pid);
	atexit(drop_namespaces); /* also on the exit(1) of a failed step */
	if (sh("ip netns add %s && ip netns add %s && ip netns add %s", ns_g, ns_r, ns_s) ||
	    sh("ip link add g0 netns %s type veth peer name r0 netns %s && ip link add r1 netns %s type veth peer name s0 netns %s",
	       ns_g, ns_r, ns_r, ns_s) ||
	    sh("ip -n %s link set g0 up && ip -n %s link set r0 up && ip -n %s link set r1 up && ip -n %s link set s0 up "
	       "&& ip -n %s link set lo up", ns_g, ns_r, ns_r, ns_s, ns_r) ||
	    sh("ip -n %s addr add 192.168.1.1/24 dev r0 && ip -n %s addr add 100.64.0.1/24 dev r0 && "
	       "ip -n %s addr add 10.99.0.1/24 dev r1 && ip -n %s addr add 192.168.2.1/24 dev r1 && "
	       "ip -n %s addr add 10.99.0.2/24 dev s0 && ip -n %s addr add 192.168.2.20/24 dev s0",
	       ns_r, ns_r, ns_r, ns_r, ns_s, ns_s) ||
	    sh("ip netns exec %s sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.r0.rp_filter=0", ns_r)) {
		rc = 1;
		goto out;
	}
	sh("ip netns exec %s sysctl -qw net.netfilter.nf_conntrack_max=262144 2>/dev/null", ns_r);
	uint8_t mac_s0[6];
	mac_of(ns_s, "s0", mac_s0);
	sh("ip -n %s neigh replace 10.99.0.2 lladdr %02x:%02x:%02x:%02x:%02x:%02x dev r1 nud permanent && "
	   "ip -n %s neigh replace 192.168.2.20 lladdr %02x:%02x:%02x:%02x:%02x:%02x dev r1 nud permanent",
	   ns_r, mac_s0[0], mac_s0[1], mac_s0[2], mac_s0[3], mac_s0[4], mac_s0[5], ns_r, mac_s0[0], mac_s0[1],
	   mac_s0[2], mac_s0[3], mac_s0[4], mac_s0[5]);
	mac_of(ns_r, "r0", mac_r0);
	mac_of(ns_g, "g0", mac_g0);

	/* generator and sink */
	g = gen__open_and_load();
	if (!g) {
		fprintf(stderr, "cannot load the generator\n");
		rc = 1;
		goto out;
	}
	enter(ns_s);
	if (bpf_xdp_attach(if_nametoindex("s0"), bpf_program__fd(g->progs.sink), XDP_FLAGS_DRV_MODE, NULL)) {
		perror("sink xdp");
		rc = 1;
		goto out;
	}
	enter(ns_g);
	g0 = if_nametoindex("g0");
	/* g0 needs an XDP program for its peer to take XDP_TX frames: give it the sink's */
	bpf_xdp_attach(g0, bpf_program__fd(g->progs.sink), XDP_FLAGS_DRV_MODE, NULL);

	/* our data plane in the router: translate 192.168.1.0/24 -> 10.201.1.0/24 on r0
	 * ingress (router side), SNAT from r0 (overlay stand-in) out of r1 as 192.168.2.1 */
	enter(ns_r);
	r0 = if_nametoindex("r0");
	r1 = if_nametoindex("r1");
	struct lsbpf_opts lo = { .no_pin = true, .force_l2 = true, .overlay_l2 = 14, .lan_l2 = 14, .underlay_l2 = 14,
 };
	if (lsbpf_open(&lo, &lb)) {
		rc = 1;
		goto out;
	}
	apply_state(V_BASE);

	printf("uptime: ");
	fflush(stdout);
	sh("uptime");
	printf("forwarding 64-byte UDP frames through a router namespace: %ld packets per run, %d rounds\n", packets, rounds);
	printf("total ns/packet (generator + router + sink on one core), median [min-max]; Mpps delivered; ratio vs yardstick\n");

	struct set {
		uint32_t flows;
		bool snat;
		enum variant v[V_MAX];
		int n;
	};
	static struct set sets[] = {
		{ 1, false, { V_XDP_XLATE, V_NFT_NETMAP, V_TC_XLATE, V_NFT_STATELESS, V_XDP_XLATE_FWD, V_TC_XLATE_FWD }, 6 },
		{ 60000, false, { V_XDP_XLATE, V_NFT_NETMAP, V_TC_XLATE, V_NFT_STATELESS, V_XDP_XLATE_FWD, V_TC_XLATE_FWD }, 6 },
		{ 60000, true, { V_BPF_SNAT, V_NFT_MASQ, V_BPF_SNAT_FWD, V_BPF_SNAT_AGENT }, 4 },
	};
	size_t nsets = sizeof(sets) / sizeof(sets[0]);
	if (argc > 3) {
		/* chosen variants only: one set of 1 flow, or 60,000 for SNAT */
		struct set one = { 1, false, {}, 0 };
		for (int a = 3; a < argc; a++) {
			int v;
			for (v = 0; v < V_MAX && strcmp(argv[a], vshort[v]); v++)
				;
			if (v == V_MAX) {
				fprintf(stderr, "unknown variant `%s'\n", argv[a]);
				rc = 1;
				goto out;
			}
			if (is_snat(v))
				one.snat = true, one.flows = 60000;
			one.v[one.n++] = v;
		}
		/* BENCH_FLOWS: another flow count for the chosen non-SNAT variants */
		if (!one.snat && getenv("BENCH_FLOWS"))
			one.flows = (uint32_t)atol(getenv("BENCH_FLOWS"));
		sets[0] = one;
		nsets = 1;
	}
	for (size_t si = 0; si < nsets; si++) {
		struct result res[V_MAX] = {};
		set_mode(sets[si].snat, sets[si].flows, mac_r0, mac_g0);
		for (int r = 0; r < rounds; r++) {
			for (int k = 0; k < sets[si].n; k++) {
				enum variant v = sets[si].v[k];
				double m, d;
				router_set(v);
				run(sets[si].flows * 2L > 20000 ? sets[si].flows * 2L : 20000, &m, &d); /* warm: create flows */
				struct result *x = &res[v];
				x->ns[x->n] = run(packets, &x->mpps[x->n], &x->del[x->n]);
				x->n++;
			}
		}
		printf("\n-- %u flow%s, %s --\n", sets[si].flows, sets[si].flows > 1 ? "s" : "",
		       sets[si].snat ? "SNAT overlay -> LAN" : "LAN ingress source translation");
		printf("%-18s %26s %10s %10s\n", "variant", "ns/packet", "Mpps", "right src");
		double med[V_MAX] = {}, best[V_MAX] = {};
		for (int k = 0; k < sets[si].n; k++) {
			enum variant v = sets[si].v[k];
			struct result *x = &res[v];
			double ns[48], mp[48], de[48];
			memcpy(ns, x->ns, sizeof(ns));
			memcpy(mp, x->mpps, sizeof(mp));
			memcpy(de, x->del, sizeof(de));
			qsort(ns, x->n, sizeof(double), cmp_d);
			qsort(mp, x->n, sizeof(double), cmp_d);
			qsort(de, x->n, sizeof(double), cmp_d);
			med[v] = mp[x->n / 2];
			best[v] = mp[x->n - 1];
			char span[64];
			snprintf(span, sizeof(span), "%.0f [%.0f-%.0f]", ns[x->n / 2], ns[0], ns[x->n - 1]);
			printf("%-18s %26s %10.3f %9.1f%%\n", vname[v], span, mp[x->n / 2], de[x->n / 2] * 100);
		}
		if (argc > 3)
			continue;
		/* medians, then the best run of each (the least disturbed on a shared machine) */
		for (int pass = 0; pass < 2; pass++) {
			double *m = pass ? best : med;
			printf("%s\n", pass ? "best runs:" : "medians:");
			if (!sets[si].snat) {
				printf("XDP translate / NETMAP: %.2fx (target >= 2)   TC translate / NETMAP: %.2fx (target >= 1.5)\n",
				       m[V_XDP_XLATE] / m[V_NFT_NETMAP], m[V_TC_XLATE] / m[V_NFT_NETMAP]);
				printf("XDP translate / stateless nft: %.2fx   TC translate / stateless nft: %.2fx\n",
				       m[V_XDP_XLATE] / m[V_NFT_STATELESS], m[V_TC_XLATE] / m[V_NFT_STATELESS]);
				printf("with fast forwarding: XDP / NETMAP: %.2fx   TC / NETMAP: %.2fx\n",
				       m[V_XDP_XLATE_FWD] / m[V_NFT_NETMAP], m[V_TC_XLATE_FWD] / m[V_NFT_NETMAP]);
			} else {
				printf("BPF SNAT / masquerade: %.2fx (target >= 1.5); with fast forwarding: %.2fx; "
				       "as the agent sets it (+metrics, isolation): %.2fx\n",
				       m[V_BPF_SNAT] / m[V_NFT_MASQ], m[V_BPF_SNAT_FWD] / m[V_NFT_MASQ],
				       m[V_BPF_SNAT_AGENT] / m[V_NFT_MASQ]);
			}
		}
	}
out:
	router_clear();
	if (lb)
		lsbpf_close(lb);
	if (g)
		gen__destroy(g);
	return rc;
}
