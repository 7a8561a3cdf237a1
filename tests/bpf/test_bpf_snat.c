// SPDX-License-Identifier: MIT
/*
 * snat: subnet-router source NAT. In a private netns, veth lsbs1 stands for the overlay
 * (LS_IF_SNAT_FROM); the router's LAN address is 192.168.1.1 / fd00:a8:1::1 and the port
 * range 61000-61009. Ports are allocated at random, so each case reads the port the
 * program chose and then checks the whole packet against one built with that port.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "tests/bpf/harness.h"
#include "util.h"

#define S LS_PROG_SNAT

static struct lsbpf *b;
static uint32_t ovl;
static int fails;

static struct ls_counter cnt(int reason)
{
	struct ls_counter c;
	lsbpf_counter(lsbpf_map_fd(b, "counters"), S, reason, &c);
	return c;
}

static uint16_t port_at(const uint8_t *pkt, const struct pk *p, bool src)
{
	size_t l4 = 14 + (p->fam == 4 ? 20 : 40);
	uint16_t v;
	if (p->proto == 1 || p->proto == 58)
		memcpy(&v, pkt + l4 + 4, 2);
	else
		memcpy(&v, pkt + l4 + (src ? 0 : 2), 2);
	return ntohs(v);
}

/* Runs p through prog (arriving on iif; TC: on device oif, 0: lo); expects verdict and,
 * when `want` is set, exactly that packet. */
static int run_on(struct lsbpf *bb, const char *prog, const struct pk *p, int verdict, const struct pk *want,
		  uint32_t iif, uint32_t oif, int reason, const char *name, uint16_t *port_out)
{
	uint8_t in[2048], out[2048], w[2048];
	size_t len = pk_build(p, in, sizeof(in)), olen = sizeof(out);
	struct ls_counter before, after, all[LS_PROG_MAX][LS_REASON_MAX];
	int cfd = lsbpf_map_fd(bb, "counters");
	for (int pg = 0; pg < LS_PROG_MAX; pg++)
		for (int r = 0; r < LS_REASON_MAX; r++)
			lsbpf_counter(cfd, pg, r, &all[pg][r]);
	before = all[S][reason];
	int v = h_run_one(bb, prog, in, len, out, &olen, iif, oif);
	lsbpf_counter(cfd, S, reason, &after);
	fails += h_ok(v == verdict, "%s: verdict %d (want %d)", name, v, verdict);
	if (h_ok(after.packets == before.packets + 1, "%s: counter %s +1", name, lsbpf_reason_name(reason))) {
		fails++;
		/* say which counter moved instead */
		for (int pg = 0; pg < LS_PROG_MAX; pg++)
			for (int r = 0; r < LS_REASON_MAX; r++) {
				struct ls_counter c;
				lsbpf_counter(cfd, pg, r, &c);
				if (c.packets != all[pg][r].packets)
					printf("# counter %s/%s moved by %lld\n", lsbpf_prog_name(pg),
					       lsbpf_reason_name(r), (long long)(c.packets - all[pg][r].packets));
			}
	}
	uint16_t chosen = port_at(out, p, true);
	if (port_out)
		*port_out = chosen;
	/* a dropped packet has no output (XDP_PASS is 2 like TC_ACT_SHOT: tell them apart) */
	if (strstr(prog, "xdp") ? verdict == VERDICT_XDP_DROP : verdict == VERDICT_SHOT)
		return 0;
	if (!want) {
		fails += h_ok(olen == len && !memcmp(in, out, len), "%s: packet unchanged", name);
		return 0;
	}
	struct pk e = *want;
	if (!e.sport)
		e.sport = chosen;
	size_t wlen = pk_build(&e, w, sizeof(w));
	fails += h_ok(olen == wlen && !memcmp(out, w, wlen), "%s: packet out as expected", name);
	fails += h_ok(pk_csum_ok(out, olen), "%s: checksums verify by recomputation", name);
	return 0;
}

static int run(struct lsbpf *bb, const char *prog, const struct pk *p, int verdict, const struct pk *want,
	       uint32_t iif, int reason, const char *name, uint16_t *port_out)
{
	return run_on(bb, prog, p, verdict, want, iif, 0, reason, name, port_out);
}

/* Per-interface SNAT source: a router with a LAN (lsbs2: 192.168.2.1, fd00:a8:2::1) and
 * an uplink (lsbs3: 203.0.113.5, 2001:db8:5::5) SNATs to each interface's own address;
 * lsbs4 has only an IPv4 one and lo none, so the global 192.168.1.1 / fd00:a8:1::1 fill
 * in. Each case goes out on `egress', then its reply comes back there through TC and
 * through XDP (ingress_ifindex). */
struct ifcase {
	const char *name;
	struct pk in;         /* from the overlay (lsbs1) */
	const char *egress;   /* "lo": an interface the map does not have */
	const char *want_src; /* the SNAT source it must get */
};

static const struct ifcase ifcases[] = {
	{ "v4 tcp out the LAN", { 4, 6, "100.64.0.7", "192.168.2.20", 6000, 80, .payload = 10 }, "lsbs2", "192.168.2.1" },
	{ "v4 udp out the uplink", { 4, 17, "100.64.0.7", "198.51.100.9", 6000, 53, .payload = 20 }, "lsbs3", "203.0.113.5" },
	{ "v4 icmp echo out the uplink", { 4, 1, "100.64.0.7", "198.51.100.9", 321, .type = 8, .payload = 16 }, "lsbs3",
	  "203.0.113.5" },
	{ "v6 tcp out the LAN", { 6, 6, "fd00:64::7", "fd00:a8:2::20", 6000, 443, .payload = 5 }, "lsbs2", "fd00:a8:2::1" },
	{ "v6 udp out the uplink", { 6, 17, "fd00:64::7", "2001:db8:9::9", 6000, 53, .payload = 9 }, "lsbs3", "2001:db8:5::5" },
	{ "v6 icmpv6 echo out the uplink", { 6, 58, "fd00:64::7", "2001:db8:9::9", 654, .type = 128, .payload = 8 }, "lsbs3",
	  "2001:db8:5::5" },
	{ "v4 out lsbs4 (own IPv4 address)", { 4, 17, "100.64.0.7", "192.168.4.20", 6001, 53, .payload = 3 }, "lsbs4",
	  "192.168.4.1" },
	{ "v6 out lsbs4 (no own IPv6 address): the global one", { 6, 17, "fd00:64::7", "fd00:a8:4::20", 6001, 53 }, "lsbs4",
	  "fd00:a8:1::1" },
	{ "v4 out an interface not in the map: the global one", { 4, 17, "100.64.0.7", "192.168.9.20", 6002, 53 }, "lo",
	  "192.168.1.1" },
	{ "v6 out an interface not in the map: the global one", { 6, 17, "fd00:64::7", "fd00:a8:9::20", 6002, 53 }, "lo",
	  "fd00:a8:1::1" },
};

static void per_iface(void)
{
	struct lsbpf_state *s = lsbpf_state_new();
	struct ls_prefix a;

	if (system("ip link add lsbs2 type veth peer name lsbs2p && ip link add lsbs3 type veth peer name lsbs3p && "
		   "ip link add lsbs4 type veth peer name lsbs4p")) {
		fails += h_ok(false, "per-interface SNAT: veths");
		return;
	}
	s->flags = LS_CFG_SNAT;
	ls_prefix_parse("192.168.1.1", &s->snat4, true);
	ls_prefix_parse("fd00:a8:1::1", &s->snat6, true);
	s->snat_port_lo = 62000;
	s->snat_port_hi = 62009;
	lsbpf_state_add_iface(s, "lsbs1", 1, LS_IF_OVERLAY | LS_IF_SNAT_FROM);
	lsbpf_state_add_iface(s, "lsbs2", 1, LS_IF_LAN);
	static const char *own[][2] = { { "lsbs2", "192.168.2.1" }, { "lsbs2", "fd00:a8:2::1" }, { "lsbs3", "203.0.113.5" },
					{ "lsbs3", "2001:db8:5::5" }, { "lsbs4", "192.168.4.1" } };
	for (size_t i = 0; i < ARRAY_SIZE(own); i++) {
		ls_prefix_parse(own[i][1], &a, true);
		fails += h_ok(lsbpf_state_set_iface_snat(s, own[i][0], &a) == 0, "%s's own SNAT address %s", own[i][0], own[i][1]);
	}
	static const char *bad[] = { "lsbs3", "=1.2.3.4", "lsbs3=", "lsbs3=10.0.0.0/8", "lsbs3=nonsense",
				     "an-interface-name-too-long=1.2.3.4" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		fails += h_ok(lsbpf_state_add_iface_snat_arg(s, bad[i]) == -EINVAL, "IF=ADDR `%s' refused", bad[i]);
	fails += h_ok(lsbpf_state_add_iface_snat_arg(s, "lsbs4=fd00:a8:4::1") == 0 && s->ifaces[3].snat6.family == AF_INET6,
		      "IF=ADDR `lsbs4=fd00:a8:4::1' (lightscale-bpf --snat-iface) accepted");
	memset(&s->ifaces[3].snat6, 0, sizeof(s->ifaces[3].snat6)); /* lsbs4 keeps no IPv6 address below */
	lsbpf_state_add_iface(s, "lsbs2", 1, LS_IF_FWD_TARGET); /* named twice: one entry, flags ORed */
	fails += h_ok(s->n_ifaces == 4 && s->ifaces[1].flags == (LS_IF_LAN | LS_IF_FWD_TARGET) &&
			      s->ifaces[1].snat4.family == AF_INET,
		      "an interface added twice is one entry with both flags and its address (%zu entries)", s->n_ifaces);
	fails += h_ok(lsbpf_apply(b, s) == 0, "apply the per-interface SNAT state");
	struct ls_iface v;
	__u32 k = if_nametoindex("lsbs3");
	char got[INET6_ADDRSTRLEN] = "";
	if (!bpf_map_lookup_elem(lsbpf_map_fd(b, "ifaces"), &k, &v))
		inet_ntop(AF_INET6, v.snat6, got, sizeof(got));
	fails += h_ok(!strcmp(got, "2001:db8:5::5") && v.pad == 0, "the interface map holds lsbs3's IPv6 address (%s)", got);

	for (size_t i = 0; i < ARRAY_SIZE(ifcases); i++) {
		const struct ifcase *c = &ifcases[i];
		uint32_t oif = strcmp(c->egress, "lo") ? if_nametoindex(c->egress) : 0;
		bool icmp = c->in.proto == 1 || c->in.proto == 58;
		char nm[160];
		uint16_t port = 0;

		struct pk want = c->in;
		want.src = c->want_src;
		want.sport = 0;
		snprintf(nm, sizeof(nm), "%s: source %s", c->name, c->want_src);
		run_on(b, "ls_stage_snat_out", &c->in, VERDICT_NEXT, &want, ovl, oif, LS_R_SNAT_NEW, nm, &port);
		fails += h_ok(port >= 62000 && port <= 62009, "%s: port %u in the range", c->name, port);

		/* the reply, to that address and port, arriving on the same interface */
		struct pk rep = { c->in.fam, c->in.proto, c->in.dst, c->want_src, icmp ? port : c->in.dport, icmp ? 0 : port,
				  .type = (uint8_t)(c->in.proto == 58 ? 129 : 0), .payload = 4 };
		struct pk back = rep;
		back.dst = c->in.src;
		if (icmp)
			back.sport = c->in.sport;
		else
			back.dport = c->in.sport;
		snprintf(nm, sizeof(nm), "%s: reply de-NATed (tc)", c->name);
		run_on(b, "ls_stage_snat_in", &rep, VERDICT_NEXT, &back, 0, oif, LS_R_SNAT_REPLY, nm, NULL);
		snprintf(nm, sizeof(nm), "%s: reply de-NATed (xdp)", c->name);
		run_on(b, "ls_stage_xdp_snat_in", &rep, VERDICT_XDP_PASS, &back, oif ? oif : 1, 0, LS_R_SNAT_REPLY, nm, NULL);
	}
	/* a reply to the uplink's address that comes in on the LAN is not one of ours there */
	struct pk stray = { 4, 17, "198.51.100.9", "203.0.113.5", 53, 62000 };
	run_on(b, "ls_stage_snat_in", &stray, VERDICT_NEXT, NULL, 0, if_nametoindex("lsbs2"), LS_R_SNAT_NOT_OURS,
	       "the uplink's address arriving on the LAN: not ours there", NULL);
	/* without its own address and without a global one, the interface does no SNAT */
	struct lsbpf_state *n = lsbpf_state_new();
	n->flags = LS_CFG_SNAT;
	n->snat_port_lo = 62000;
	n->snat_port_hi = 62009;
	lsbpf_state_add_iface(n, "lsbs1", 1, LS_IF_OVERLAY | LS_IF_SNAT_FROM);
	ls_prefix_parse("192.168.2.1", &a, true);
	lsbpf_state_set_iface_snat(n, "lsbs2", &a);
	fails += h_ok(lsbpf_apply(b, n) == 0, "apply a state with no global SNAT address");
	struct pk v6 = { 6, 17, "fd00:64::7", "fd00:a8:2::30", 6003, 53 };
	run_on(b, "ls_stage_snat_out", &v6, VERDICT_NEXT, NULL, ovl, if_nametoindex("lsbs2"), LS_R_SNAT_NOT_OURS,
	       "v6 out a LAN with only an IPv4 address and no global one: untouched", NULL);
	struct pk v4 = { 4, 17, "100.64.0.7", "192.168.2.30", 6003, 53 };
	struct pk v4o = { 4, 17, "192.168.2.1", "192.168.2.30", 0, 53 };
	run_on(b, "ls_stage_snat_out", &v4, VERDICT_NEXT, &v4o, ovl, if_nametoindex("lsbs2"), LS_R_SNAT_NEW,
	       "v4 out that LAN: its own address", NULL);
	lsbpf_state_free(n);
	lsbpf_state_free(s);
}

/* The port range in ip_local_reserved_ports (this private netns): apply reserves it,
 * a new range replaces it, destroy gives it back, and other entries stay as they were. */
static void reserved_ports(void)
{
	char dir[64], buf[256] = "";
	struct lsbpf *p = NULL;
	FILE *f;

	snprintf(dir, sizeof(dir), "/sys/fs/bpf/lsbs-test-%d", (int)getpid());
	struct lsbpf_opts o = { .pin_dir = dir, .force_l2 = true, .overlay_l2 = 14, .lan_l2 = 14, .underlay_l2 = 14 };
	/* an interface map of the layout before per-interface SNAT sources (8-byte values),
	 * pinned by an older agent: replaced on open instead of failing the load */
	char old[96];
	snprintf(old, sizeof(old), "%s/ifaces", dir);
	mkdir(dir, 0700);
	int ofd = bpf_map_create(BPF_MAP_TYPE_HASH, "ls_ifaces", 4, 8, 256, NULL);
	fails += h_ok(ofd >= 0 && bpf_obj_pin(ofd, old) == 0, "an old-layout ifaces map pinned at %s", old);
	if (ofd >= 0)
		close(ofd);
	if (h_ok(system("echo 6000,7000-7009 > /proc/sys/net/ipv4/ip_local_reserved_ports") == 0 &&
			 lsbpf_open(&o, &p) == 0,
		 "open with pins %s (the old ifaces map replaced)", dir)) {
		fails++;
		return;
	}
	struct bpf_map_info mi = {};
	__u32 ml = sizeof(mi);
	int nfd = bpf_obj_get(old);
	fails += h_ok(nfd >= 0 && !bpf_obj_get_info_by_fd(nfd, &mi, &ml) && mi.value_size == sizeof(struct ls_iface),
		      "the pinned ifaces map now has %zu-byte values (%u)", sizeof(struct ls_iface), mi.value_size);
	if (nfd >= 0)
		close(nfd);
	struct lsbpf_state *s = lsbpf_state_new();
	s->flags = LS_CFG_SNAT;
	s->snat_port_lo = 61000;
	s->snat_port_hi = 61999;
	fails += h_ok(lsbpf_apply(p, s) == 0 && lsbpf_ports_reserved(61000, 61999) && lsbpf_ports_reserved(7000, 7009),
		      "apply reserves 61000-61999 beside what was there");
	fails += h_ok(!lsbpf_ports_reserved(61000, 62000) && !lsbpf_ports_reserved(59999, 61000),
		      "a range reaching past it is not reported as reserved");
	s->snat_port_lo = 63000;
	s->snat_port_hi = 63099;
	fails += h_ok(lsbpf_apply(p, s) == 0 && lsbpf_ports_reserved(63000, 63099) && !lsbpf_ports_reserved(61000, 61000),
		      "a new range replaces the old one");
	fails += h_ok(lsbpf_destroy(p) == 0, "destroy");
	if ((f = fopen("/proc/sys/net/ipv4/ip_local_reserved_ports", "r"))) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = 0;
	fails += h_ok(!strcmp(buf, "6000,7000-7009"), "destroy gave the range back, the rest untouched (`%s')", buf);
	lsbpf_state_free(s);
}

int main(void)
{
	uint16_t p1, p2, p3, pu, pi, p6;

	if (unshare(CLONE_NEWNET) || system("ip link add lsbs1 type veth peer name lsbs1p && ip link set lo up")) {
		printf("not ok 1 - private netns\n");
		return 1;
	}
	ovl = if_nametoindex("lsbs1");
	b = h_open();
	struct lsbpf_state *s = lsbpf_state_new();
	s->flags = LS_CFG_SNAT;
	ls_prefix_parse("192.168.1.1", &s->snat4, true);
	ls_prefix_parse("fd00:a8:1::1", &s->snat6, true);
	s->snat_port_lo = 61000;
	s->snat_port_hi = 61009;
	s->udp_timeout = 1;
	lsbpf_state_add_iface(s, "lsbs1", 1, LS_IF_OVERLAY | LS_IF_SNAT_FROM);
	fails += h_ok(lsbpf_apply(b, s) == 0, "apply SNAT state");

	struct pk c1 = { 4, 6, "100.64.0.7", "192.168.1.20", 5000, 80, .payload = 20 };
	struct pk c1o = { 4, 6, "192.168.1.1", "192.168.1.20", 0, 80, .payload = 20 };
	run(b, "ls_stage_snat_out", &c1, VERDICT_NEXT, &c1o, ovl, LS_R_SNAT_NEW, "tcp client 1: new", &p1);
	fails += h_ok(p1 >= 61000 && p1 <= 61009, "tcp client 1: port %u in 61000-61009", p1);
	c1o.sport = p1;
	run(b, "ls_stage_snat_out", &c1, VERDICT_NEXT, &c1o, ovl, LS_R_SNAT_HIT, "tcp client 1 again: same port", &p3);
	fails += h_ok(p3 == p1, "tcp client 1 again: port %u == %u", p3, p1);

	struct pk c2 = { 4, 6, "100.64.0.8", "192.168.1.20", 5000, 80, .payload = 20 };
	struct pk c2o = { 4, 6, "192.168.1.1", "192.168.1.20", 0, 80, .payload = 20 };
	run(b, "ls_stage_snat_out", &c2, VERDICT_NEXT, &c2o, ovl, LS_R_SNAT_NEW, "tcp client 2, same source port", &p2);
	fails += h_ok(p2 != p1 && p2 >= 61000 && p2 <= 61009, "two clients with one source port get distinct ports (%u, %u)", p1, p2);

	struct pk r1 = { 4, 6, "192.168.1.20", "192.168.1.1", 80, p1, .payload = 7 };
	struct pk r1o = { 4, 6, "192.168.1.20", "100.64.0.7", 80, 5000, .payload = 7 };
	run(b, "ls_stage_snat_in", &r1, VERDICT_NEXT, &r1o, 0, LS_R_SNAT_REPLY, "reply to client 1 (tc)", NULL);
	struct pk r2 = { 4, 6, "192.168.1.20", "192.168.1.1", 80, p2, .payload = 7 };
	struct pk r2o = { 4, 6, "192.168.1.20", "100.64.0.8", 80, 5000, .payload = 7 };
	run(b, "ls_stage_xdp_snat_in", &r2, VERDICT_XDP_PASS, &r2o, 0, LS_R_SNAT_REPLY, "reply to client 2 (xdp)", NULL);
	uint16_t free_port = 61000;
	while (free_port == p1 || free_port == p2)
		free_port++;
	struct pk rx = { 4, 6, "192.168.1.20", "192.168.1.1", 80, free_port };
	run(b, "ls_stage_snat_in", &rx, VERDICT_NEXT, NULL, 0, LS_R_SNAT_NOT_OURS, "reply to a port no flow holds", NULL);
	struct pk rx2 = { 4, 6, "192.168.1.21", "192.168.1.1", 80, p1 };
	run(b, "ls_stage_snat_in", &rx2, VERDICT_NEXT, NULL, 0, LS_R_SNAT_NOT_OURS, "client 1's port from another host", NULL);

	/* ICMP errors about NATed packets go back to the client */
	struct pk qn = { 4, 6, "192.168.1.1", "192.168.1.20", p1, 80, .payload = 20 };
	struct pk qc = { 4, 6, "100.64.0.7", "192.168.1.20", 5000, 80, .payload = 20 };
	struct pk fn = { 4, 1, "192.168.1.254", "192.168.1.1", .type = 3, .code = 4, .inner = &qn };
	struct pk fc = { 4, 1, "192.168.1.254", "100.64.0.7", .type = 3, .code = 4, .inner = &qc };
	run(b, "ls_stage_snat_in", &fn, VERDICT_NEXT, &fc, 0, LS_R_SNAT_ICMP_ERR, "frag-needed about client 1's tcp", NULL);
	struct pk fn8 = fn, fc8 = fc;
	fn8.inner_l4 = 8;
	fc8.inner_l4 = 8;
	run(b, "ls_stage_snat_in", &fn8, VERDICT_NEXT, &fc8, 0, LS_R_SNAT_ICMP_ERR, "... quoting 8 bytes", NULL);
	struct pk qx = { 4, 6, "192.168.1.1", "192.168.1.20", free_port, 80 };
	struct pk fx = { 4, 1, "192.168.1.254", "192.168.1.1", .type = 3, .code = 4, .inner = &qx };
	run(b, "ls_stage_snat_in", &fx, VERDICT_NEXT, NULL, 0, LS_R_SNAT_NOT_OURS, "ICMP error about no flow: untouched", NULL);

	struct pk u = { 4, 17, "100.64.0.7", "192.168.1.30", 5353, 53, .payload = 30 };
	struct pk uo = { 4, 17, "192.168.1.1", "192.168.1.30", 0, 53, .payload = 30 };
	run(b, "ls_stage_snat_out", &u, VERDICT_NEXT, &uo, ovl, LS_R_SNAT_NEW, "udp: new", &pu);
	struct pk ur = { 4, 17, "192.168.1.30", "192.168.1.1", 53, pu, .payload = 40 };
	struct pk uro = { 4, 17, "192.168.1.30", "100.64.0.7", 53, 5353, .payload = 40 };
	run(b, "ls_stage_snat_in", &ur, VERDICT_NEXT, &uro, 0, LS_R_SNAT_REPLY, "udp: reply", NULL);

	struct pk e = { 4, 1, "100.64.0.7", "192.168.1.40", 77, .type = 8, .payload = 56 };
	struct pk eo = { 4, 1, "192.168.1.1", "192.168.1.40", 0, .type = 8, .payload = 56 };
	run(b, "ls_stage_snat_out", &e, VERDICT_NEXT, &eo, ovl, LS_R_SNAT_NEW, "icmp echo: id allocated", &pi);
	struct pk er = { 4, 1, "192.168.1.40", "192.168.1.1", pi, .type = 0, .payload = 56 };
	struct pk ero = { 4, 1, "192.168.1.40", "100.64.0.7", 77, .type = 0, .payload = 56 };
	run(b, "ls_stage_snat_in", &er, VERDICT_NEXT, &ero, 0, LS_R_SNAT_REPLY, "icmp echo reply: id and address back", NULL);

	struct pk v6 = { 6, 6, "fd00:64::7", "fd00:a8:1::20", 5000, 443, .payload = 11 };
	struct pk v6o = { 6, 6, "fd00:a8:1::1", "fd00:a8:1::20", 0, 443, .payload = 11 };
	run(b, "ls_stage_snat_out", &v6, VERDICT_NEXT, &v6o, ovl, LS_R_SNAT_NEW, "v6 tcp: new", &p6);
	struct pk v6r = { 6, 6, "fd00:a8:1::20", "fd00:a8:1::1", 443, p6, .payload = 3 };
	struct pk v6ro = { 6, 6, "fd00:a8:1::20", "fd00:64::7", 443, 5000, .payload = 3 };
	run(b, "ls_stage_snat_in", &v6r, VERDICT_NEXT, &v6ro, 0, LS_R_SNAT_REPLY, "v6 tcp: reply", NULL);
	struct pk q6n = { 6, 6, "fd00:a8:1::1", "fd00:a8:1::20", p6, 443, .payload = 11 };
	struct pk q6c = { 6, 6, "fd00:64::7", "fd00:a8:1::20", 5000, 443, .payload = 11 };
	struct pk t6n = { 6, 58, "fd00:a8:1::fe", "fd00:a8:1::1", .type = 2, .inner = &q6n };
	struct pk t6c = { 6, 58, "fd00:a8:1::fe", "fd00:64::7", .type = 2, .inner = &q6c };
	run(b, "ls_stage_snat_in", &t6n, VERDICT_NEXT, &t6c, 0, LS_R_SNAT_ICMP_ERR, "v6 packet-too-big about a NATed flow", NULL);
	struct pk e6 = { 6, 58, "fd00:64::7", "fd00:a8:1::20", 99, .type = 128, .payload = 8 };
	struct pk e6o = { 6, 58, "fd00:a8:1::1", "fd00:a8:1::20", 0, .type = 128, .payload = 8 };
	run(b, "ls_stage_snat_out", &e6, VERDICT_NEXT, &e6o, ovl, LS_R_SNAT_NEW, "icmpv6 echo: new", NULL);

	run(b, "ls_stage_snat_out", &c1, VERDICT_NEXT, NULL, 0, LS_R_SNAT_NOT_OURS, "not from the overlay: untouched", NULL);
	struct pk fr = { 4, 17, "100.64.0.7", "192.168.1.30", .payload = 40, .frag = 2 };
	run(b, "ls_stage_snat_out", &fr, VERDICT_SHOT, NULL, ovl, LS_R_SNAT_FRAG, "later fragment from the overlay: dropped", NULL);
	struct pk gre = { 4, 47, "100.64.0.7", "192.168.1.30", .payload = 24 };
	run(b, "ls_stage_snat_out", &gre, VERDICT_NEXT, NULL, ovl, LS_R_SNAT_PROTO, "GRE: left alone", NULL);

	/* TCP RST marks the connection closing (short GC timeout) */
	struct pk rst = c1;
	rst.tcp_flags = 0x14;
	struct pk rsto = c1o;
	rsto.tcp_flags = 0x14;
	run(b, "ls_stage_snat_out", &rst, VERDICT_NEXT, &rsto, ovl, LS_R_SNAT_HIT, "tcp RST", NULL);
	struct ls_tuple k = { .family = 4, .proto = 6, .sport = htons(5000), .dport = htons(80) };
	inet_pton(AF_INET, "100.64.0.7", k.saddr);
	inet_pton(AF_INET, "192.168.1.20", k.daddr);
	struct ls_nat_val nv;
	fails += h_ok(!bpf_map_lookup_elem(lsbpf_map_fd(b, "nat_out"), &k, &nv) && nv.state == LS_NAT_CLOSING,
		      "tcp RST: connection marked closing");

	/* local sockets in the range are never given away */
	int socks[10], ns = 0;
	uint16_t freep = 0;
	for (uint16_t port = 61000; port <= 61009; port++) {
		if (!freep) {
			freep = port;
			continue;
		}
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			socks[ns++] = fd;
	}
	fails += h_ok(ns == 9, "bound 9 local UDP sockets in the range");
	struct pk ul = { 4, 17, "100.64.0.9", "192.168.1.99", 7000, 7000, .payload = 1 };
	struct pk ulo = { 4, 17, "192.168.1.1", "192.168.1.99", 0, 7000, .payload = 1 };
	uint16_t got;
	run(b, "ls_stage_snat_out", &ul, VERDICT_NEXT, &ulo, ovl, LS_R_SNAT_NEW, "udp beside local sockets", &got);
	fails += h_ok(got == freep, "the flow got the one port no socket holds (%u == %u)", got, freep);
	struct pk ul2 = { 4, 17, "100.64.0.10", "192.168.1.99", 7000, 7000, .payload = 1 };
	run(b, "ls_stage_snat_out", &ul2, VERDICT_SHOT, NULL, ovl, LS_R_SNAT_NO_PORT, "range exhausted for that remote: dropped", NULL);
	for (int i = 0; i < ns; i++)
		close(socks[i]);

	/* garbage collection: udp timeout 1 s */
	size_t removed = 0;
	lsbpf_gc(b, &removed);
	fails += h_ok(removed == 0, "gc right away removes nothing (%zu)", removed);
	sleep(3);
	lsbpf_gc(b, &removed);
	fails += h_ok(removed >= 2, "gc after the udp timeout removes the idle udp flows (%zu)", removed);
	run(b, "ls_stage_snat_in", &ur, VERDICT_NEXT, NULL, 0, LS_R_SNAT_NOT_OURS, "udp reply after gc: no longer ours", NULL);
	run(b, "ls_stage_snat_in", &r1, VERDICT_NEXT, &r1o, 0, LS_R_SNAT_REPLY, "tcp flow survives the gc", NULL);

	/* the dispatcher on LAN egress */
	struct pk c3 = { 4, 17, "100.64.0.11", "192.168.1.50", 4444, 4444, .payload = 5 };
	struct pk c3o = { 4, 17, "192.168.1.1", "192.168.1.50", 0, 4444, .payload = 5 };
	run(b, "ls_lan_out", &c3, VERDICT_NEXT, &c3o, ovl, LS_R_SNAT_NEW, "LAN egress dispatcher SNATs", NULL);

	/* a full table: new flows are dropped and counted, live ones keep working */
	struct lsbpf_opts o = { .no_pin = true, .force_l2 = true, .overlay_l2 = 14, .lan_l2 = 14, .underlay_l2 = 14, .nat_max = 3 };
	struct lsbpf *small;
	if (h_ok(lsbpf_open(&o, &small) == 0, "open with a 3-entry table") == 0) {
		lsbpf_apply(small, s);
		char dst[32];
		for (int i = 0; i < 3; i++) {
			snprintf(dst, sizeof(dst), "192.168.1.%d", 100 + i);
			struct pk f = { 4, 17, "100.64.0.7", dst, 9000, 9, .payload = 1 };
			struct pk fo = { 4, 17, "192.168.1.1", dst, 0, 9, .payload = 1 };
			run(small, "ls_stage_snat_out", &f, VERDICT_NEXT, &fo, ovl, LS_R_SNAT_NEW, "fill the table", NULL);
		}
		struct pk f4 = { 4, 17, "100.64.0.7", "192.168.1.200", 9000, 9, .payload = 1 };
		run(small, "ls_stage_snat_out", &f4, VERDICT_SHOT, NULL, ovl, LS_R_SNAT_TABLE_FULL, "table full: new flow dropped", NULL);
		struct pk f1 = { 4, 17, "100.64.0.7", "192.168.1.100", 9000, 9, .payload = 1 };
		struct pk f1o = { 4, 17, "192.168.1.1", "192.168.1.100", 0, 9, .payload = 1 };
		run(small, "ls_stage_snat_out", &f1, VERDICT_NEXT, &f1o, ovl, LS_R_SNAT_HIT, "table full: a live flow still passes", NULL);
		lsbpf_close(small);
	}
	(void)cnt;

	char rr[128];
	fails += h_ok(lsbpf_return_route("100.64.0.0/10", "192.168.1.1", rr, sizeof(rr)) == 0 &&
			      !strcmp(rr, "ip route add 100.64.0.0/10 via 192.168.1.1"),
		      "return-route guidance: %s", rr);
	fails += h_ok(lsbpf_return_route("100.64.0.0/10", "fd00::1", rr, sizeof(rr)) != 0,
		      "return-route refuses mixed families");
	per_iface();
	reserved_ports();
	lsbpf_state_free(s);
	lsbpf_close(b);
	h_plan_done();
	return fails ? 1 : 0;
}
