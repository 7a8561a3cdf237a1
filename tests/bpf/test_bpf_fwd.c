// SPDX-License-Identifier: MIT
/*
 * fast forwarding on TC (ls_lan_in with LS_CFG_FWD_FAST): in a private network namespace
 * with veth lsbf0 (LAN, ingress), lsbf1 (fwd-target, neighbour 10.8.0.2 permanent) and
 * lsbf2 (not a target). A forwarded packet comes back as TC_ACT_REDIRECT with the
 * neighbour's and lsbf1's MACs and the TTL decremented; the FIB result is cached, and a
 * cached destination still goes to the stack when too long, after its entry expired and
 * the neighbour changed (new MAC), or when its egress device stopped being a target.
 * With SNAT and isolation on, ls_overlay_in runs the target's LAN egress stages before
 * the redirect and marks the packet; the target's ls_lan_out then passes it unchanged.
 */
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "tests/bpf/harness.h"

#define F LS_PROG_FWD
#define VERDICT_REDIRECT 7 /* TC_ACT_REDIRECT */

/* SIOCGIFHWADDR: /sys/class/net still shows the namespace sysfs was mounted in */
static void mac_of(const char *ifn, uint8_t mac[6])
{
	struct ifreq r = {};
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	memset(mac, 0, 6);
	snprintf(r.ifr_name, sizeof(r.ifr_name), "%s", ifn);
	if (fd >= 0 && !ioctl(fd, SIOCGIFHWADDR, &r))
		memcpy(mac, r.ifr_hwaddr.sa_data, 6);
	if (fd >= 0)
		close(fd);
}

static int cache_entries(struct lsbpf *b)
{
	int fd = lsbpf_map_fd(b, "fib_cache"), n = 0;
	uint8_t k[64], next[64];
	void *prev = NULL;

	while (n < 100 && !bpf_map_get_next_key(fd, prev, next)) {
		memcpy(k, next, sizeof(k));
		prev = k;
		n++;
	}
	return n;
}

/* One UDP packet 10.9.0.5 -> dst through ls_lan_in from lsbf0; checks a redirect with
 * dmac/smac, TTL - 1 and right checksums. Returns the number of failures. */
static int forwarded(struct lsbpf *b, const char *what, const char *dst, const uint8_t dmac[6],
		     const uint8_t smac[6], uint32_t in)
{
	struct pk p = { 4, 17, "10.9.0.5", dst, 1000, 2000 };
	uint8_t pkt[256], out[256];
	size_t len = pk_build(&p, pkt, sizeof(pkt)), olen = sizeof(out);
	int fails = 0, cfd = lsbpf_map_fd(b, "counters");
	struct ls_counter before, after;

	lsbpf_counter(cfd, F, LS_R_FWD_REDIRECT, &before);
	int v = h_run_one(b, "ls_lan_in", pkt, len, out, &olen, in, in);
	lsbpf_counter(cfd, F, LS_R_FWD_REDIRECT, &after);
	fails += h_ok(v == VERDICT_REDIRECT, "%s: redirected (verdict %d)", what, v);
	fails += h_ok(olen == len && !memcmp(out, dmac, 6) && !memcmp(out + 6, smac, 6),
		      "%s: neighbour's and egress device's MACs written", what);
	fails += h_ok(olen == len && out[14 + 8] == pkt[14 + 8] - 1 && pk_csum_ok(out, olen),
		      "%s: TTL %u -> %u, checksums right", what, pkt[14 + 8], out[14 + 8]);
	fails += h_ok(after.packets == before.packets + 1, "%s: counted as forwarded by the program", what);
	return fails;
}

/* One test run of prog with skb->mark in and out (ctx). Returns the verdict. */
static int run_mark(struct lsbpf *b, const char *prog, const uint8_t *in, size_t len, uint8_t *out,
		    size_t *olen, uint32_t ifindex, uint32_t *mark)
{
	struct __sk_buff ctx = { .ingress_ifindex = ifindex, .ifindex = ifindex, .mark = *mark }, cout = {};
	DECLARE_LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = len, .data_out = out,
			    .data_size_out = *olen, .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .ctx_out = &cout,
			    .ctx_size_out = sizeof(cout), .repeat = 1);

	if (bpf_prog_test_run_opts(lsbpf_prog_fd(b, prog), &o))
		return -1000;
	*olen = o.data_size_out;
	*mark = cout.mark;
	return (int)o.retval;
}

static uint64_t count(struct lsbpf *b, int prog, int reason)
{
	struct ls_counter c;

	lsbpf_counter(lsbpf_map_fd(b, "counters"), prog, reason, &c);
	return c.packets;
}

/* Fast forwarding from the overlay (lsbf0: overlay, SNAT from, network 1) to lsbf1 (LAN of
 * network 1, target, SNAT address 10.8.0.1) with SNAT and isolation on. */
static int fused_snat(struct lsbpf *b, uint32_t in, const uint8_t n1[6], const uint8_t m1[6])
{
	struct lsbpf_state *s = lsbpf_state_new();
	struct ls_prefix a;
	int fails = 0;

	s->flags = LS_CFG_FWD_FAST | LS_CFG_SNAT | LS_CFG_ISOLATE;
	lsbpf_state_add_iface(s, "lsbf0", 1, LS_IF_OVERLAY | LS_IF_SNAT_FROM);
	lsbpf_state_add_iface(s, "lsbf1", 1, LS_IF_LAN | LS_IF_FWD_TARGET);
	ls_prefix_parse("10.8.0.1", &a, true);
	lsbpf_state_set_iface_snat(s, "lsbf1", &a);
	s->snat_port_lo = 61000;
	s->snat_port_hi = 61999;
	fails += h_ok(lsbpf_apply(b, s) == 0, "apply: SNAT + isolation + fast forwarding, lsbf0 the overlay");

	struct pk p = { 4, 17, "10.9.0.5", "10.8.0.2", 1000, 2000 };
	uint8_t pkt[256], out[256], out2[256];
	size_t len = pk_build(&p, pkt, sizeof(pkt)), olen = sizeof(out), olen2 = sizeof(out2);
	uint32_t mark = 0;
	uint64_t nb = count(b, LS_PROG_SNAT, LS_R_SNAT_NEW), ib = count(b, LS_PROG_ISOLATE, LS_R_ISO_SAME_NET),
		 db = count(b, LS_PROG_DISPATCH, LS_R_LAN_OUT_DONE);
	int v = run_mark(b, "ls_overlay_in", pkt, len, out, &olen, in, &mark);
	uint16_t sport = olen >= 36 ? (uint16_t)(out[34] << 8 | out[35]) : 0;
	fails += h_ok(v == VERDICT_REDIRECT, "overlay -> LAN target with SNAT: redirected (verdict %d)", v);
	fails += h_ok(olen == len && !memcmp(out, n1, 6) && !memcmp(out + 6, m1, 6) && out[14 + 8] == pkt[14 + 8] - 1,
		      "... MACs written, TTL decremented");
	fails += h_ok(olen == len && !memcmp(out + 26, (uint8_t[]){ 10, 8, 0, 1 }, 4) && sport >= 61000 &&
			      sport <= 61999 && pk_csum_ok(out, olen),
		      "... source SNATed at ingress to 10.8.0.1:%u (in the range), checksums right", sport);
	fails += h_ok(mark == LS_MARK_LAN_OUT_DONE, "... marked as done for the LAN egress program (mark %#x)", mark);
	fails += h_ok(count(b, LS_PROG_SNAT, LS_R_SNAT_NEW) == nb + 1 &&
			      count(b, LS_PROG_ISOLATE, LS_R_ISO_SAME_NET) == ib + 1,
		      "... isolation and SNAT each counted once");

	/* the target's egress program passes it as it is and clears the mark */
	v = run_mark(b, "ls_lan_out", out, olen, out2, &olen2, if_nametoindex("lsbf1"), &mark);
	fails += h_ok(v == VERDICT_NEXT && olen2 == olen && !memcmp(out, out2, olen) && mark == 0,
		      "ls_lan_out passes the marked packet unchanged (verdict %d) and clears the mark (%#x)", v, mark);
	fails += h_ok(count(b, LS_PROG_DISPATCH, LS_R_LAN_OUT_DONE) == db + 1, "... counted lan_out_done_at_ingress");
	fails += h_ok(count(b, LS_PROG_SNAT, LS_R_SNAT_NEW) == nb + 1, "... and not SNATed a second time");

	/* the same flow again: the same port, from the established-connection path (the
	 * isolation verdict from the FIB cache entry, counted all the same) */
	olen = sizeof(out2);
	mark = 0;
	uint64_t hb = count(b, LS_PROG_SNAT, LS_R_SNAT_HIT);
	ib = count(b, LS_PROG_ISOLATE, LS_R_ISO_SAME_NET);
	v = run_mark(b, "ls_overlay_in", pkt, len, out2, &olen, in, &mark);
	fails += h_ok(v == VERDICT_REDIRECT && olen == len && !memcmp(out2, out, olen) && mark == LS_MARK_LAN_OUT_DONE,
		      "second packet of the flow: the same packet out (SNAT port %u), marked", sport);
	fails += h_ok(count(b, LS_PROG_SNAT, LS_R_SNAT_HIT) == hb + 1 &&
			      count(b, LS_PROG_ISOLATE, LS_R_ISO_SAME_NET) == ib + 1,
		      "... counted as a SNAT hit and once by isolation");

	/* a packet that already has a mark keeps it: forwarded, its SNAT left to ls_lan_out */
	olen = sizeof(out2);
	mark = 0x1234;
	v = run_mark(b, "ls_overlay_in", pkt, len, out2, &olen, in, &mark);
	fails += h_ok(v == VERDICT_REDIRECT && mark == 0x1234 && !memcmp(out2 + 26, pkt + 26, 4),
		      "a packet with mark 0x1234 keeps it and its source (%#x): ls_lan_out SNATs it", mark);

	/* isolation: lsbf1 now belongs to network 2, no allow rule: dropped at ingress */
	lsbpf_state_add_iface(s, "lsbf1", 2, LS_IF_LAN | LS_IF_FWD_TARGET);
	fails += h_ok(lsbpf_apply(b, s) == 0, "apply: lsbf1 in network 2");
	uint64_t den = count(b, LS_PROG_ISOLATE, LS_R_ISO_DENIED);
	olen = sizeof(out2);
	mark = 0;
	v = run_mark(b, "ls_overlay_in", pkt, len, out2, &olen, in, &mark);
	fails += h_ok(v == VERDICT_SHOT && count(b, LS_PROG_ISOLATE, LS_R_ISO_DENIED) == den + 1,
		      "to another network's LAN without an allow rule: dropped at ingress (verdict %d)", v);
	lsbpf_state_free(s);
	return fails;
}

/* The same for IPv6 (fd00:9::5 -> fd00:8::2): hop limit - 1. */
static int forwarded6(struct lsbpf *b, uint32_t in, const uint8_t dmac[6], const uint8_t smac[6])
{
	struct pk p = { 6, 17, "fd00:9::5", "fd00:8::2", 1000, 2000 };
	uint8_t pkt[256], out[256];
	size_t len = pk_build(&p, pkt, sizeof(pkt)), olen = sizeof(out);
	int v = h_run_one(b, "ls_lan_in", pkt, len, out, &olen, in, in);

	return h_ok(v == VERDICT_REDIRECT && olen == len && !memcmp(out, dmac, 6) && !memcmp(out + 6, smac, 6) &&
			    out[14 + 7] == pkt[14 + 7] - 1 && !memcmp(out + 22, pkt + 22, olen - 22) && pk_csum_ok(out, olen),
		    "IPv6 to fd00:8::2: redirected with the MACs, hop limit %u -> %u, the rest unchanged (verdict %d)",
		    pkt[14 + 7], out[14 + 7], v);
}

/* XDP fast forwarding (ls_xdp_lan_in) from lsbf0 (LAN of network 1) to lsbf1 (target, a
 * LAN of network 2) with isolation on: the target's TC egress does not run on an XDP
 * redirect, so a denied pair goes to the stack (where ls_lan_out drops it) and an allowed
 * one is redirected and counted by isolation. */
static int xdp_isolated(struct lsbpf *b, uint32_t in)
{
	struct lsbpf_state *s = lsbpf_state_new();
	struct pk p = { 4, 17, "10.9.0.5", "10.8.0.2", 1000, 2000 };
	uint8_t pkt[256], out[256];
	size_t len = pk_build(&p, pkt, sizeof(pkt)), olen = sizeof(out);
	int fails = 0;

	s->flags = LS_CFG_FWD_FAST | LS_CFG_ISOLATE;
	lsbpf_state_add_iface(s, "lsbf0", 1, LS_IF_LAN);
	lsbpf_state_add_iface(s, "lsbf1", 2, LS_IF_LAN | LS_IF_FWD_TARGET);
	fails += h_ok(lsbpf_apply(b, s) == 0, "apply: XDP fast forwarding, lsbf1 a target in another network");
	uint64_t st = count(b, LS_PROG_FWD, LS_R_FWD_STACK), al = count(b, LS_PROG_ISOLATE, LS_R_ISO_ALLOWED);
	int v = h_run_one(b, "ls_xdp_lan_in", pkt, len, out, &olen, in, 0);
	fails += h_ok(v == VERDICT_XDP_PASS && count(b, LS_PROG_FWD, LS_R_FWD_STACK) == st + 1,
		      "XDP: to another network without an allow rule: to the stack (verdict %d), where ls_lan_out isolates", v);
	lsbpf_state_add_allow(s, 1, 2);
	fails += h_ok(lsbpf_apply(b, s) == 0, "apply: allow networks 1 and 2");
	olen = sizeof(out);
	v = h_run_one(b, "ls_xdp_lan_in", pkt, len, out, &olen, in, 0);
	fails += h_ok(v == 4 /* XDP_REDIRECT */ && count(b, LS_PROG_ISOLATE, LS_R_ISO_ALLOWED) == al + 1 &&
			      out[14 + 8] == pkt[14 + 8] - 1,
		      "XDP: allowed: redirected (verdict %d), TTL - 1, counted allowed by isolation", v);
	lsbpf_state_free(s);
	return fails;
}

int main(void)
{
	int fails = 0;

	if (unshare(CLONE_NEWNET) ||
	    system("ip link add lsbf0 type veth peer name lsbf0p && ip link add lsbf1 type veth peer name lsbf1p && "
		   "ip link add lsbf2 type veth peer name lsbf2p && "
		   "for d in lsbf0 lsbf0p lsbf1 lsbf1p lsbf2 lsbf2p; do ip link set $d up || exit 1; done && "
		   "ip addr add 10.9.0.1/24 dev lsbf0 && ip addr add 10.8.0.1/24 dev lsbf1 && "
		   "ip addr add 10.7.0.1/24 dev lsbf2 && "
		   "ip neigh add 10.8.0.2 lladdr 02:00:00:00:08:02 dev lsbf1 nud permanent && "
		   "ip neigh add 10.7.0.2 lladdr 02:00:00:00:07:02 dev lsbf2 nud permanent && "
		   "ip -6 addr add fd00:9::1/64 dev lsbf0 nodad && ip -6 addr add fd00:8::1/64 dev lsbf1 nodad && "
		   "ip -6 neigh add fd00:8::2 lladdr 02:00:00:00:08:02 dev lsbf1 nud permanent && "
		   "sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv6.conf.all.forwarding=1")) {
		printf("not ok 1 - private netns with veth interfaces\n");
		return 1;
	}
	uint32_t in = if_nametoindex("lsbf0");
	uint8_t n1[6] = { 2, 0, 0, 0, 8, 2 }, n1b[6] = { 2, 0, 0, 0, 8, 3 }, m1[6];
	mac_of("lsbf1", m1);

	struct lsbpf *b = h_open();
	struct lsbpf_state *s = lsbpf_state_new();
	s->flags = LS_CFG_FWD_FAST;
	lsbpf_state_add_iface(s, "lsbf0", 0, LS_IF_LAN);
	lsbpf_state_add_iface(s, "lsbf1", 0, LS_IF_LAN | LS_IF_FWD_TARGET);
	lsbpf_state_add_iface(s, "lsbf2", 0, LS_IF_LAN);
	fails += h_ok(lsbpf_apply(b, s) == 0, "apply: fast forwarding, lsbf1 a target");

	fails += h_ok(cache_entries(b) == 0, "FIB cache empty at the start");
	fails += forwarded(b, "first packet to 10.8.0.2", "10.8.0.2", n1, m1, in);
	fails += h_ok(cache_entries(b) == 1, "FIB cache holds the destination (%d entries)", cache_entries(b));
	fails += forwarded(b, "second packet to 10.8.0.2 (cached)", "10.8.0.2", n1, m1, in);
	fails += forwarded6(b, in, n1, m1);
	fails += forwarded6(b, in, n1, m1); /* cached */

	struct tcase stack[] = {
		{ "cached destination, 1600 bytes (over lsbf1's MTU): to the stack", "ls_lan_in",
		  { 4, 17, "10.9.0.5", "10.8.0.2", 1000, 2000, .payload = 1572 }, VERDICT_NEXT, NULL,
		  { { F, LS_R_FWD_STACK, 1 } }, in, in },
		{ "egress device not a target: to the stack", "ls_lan_in", { 4, 17, "10.9.0.5", "10.7.0.2", 1000, 2000 },
		  VERDICT_NEXT, NULL, { { F, LS_R_FWD_STACK, 1 } }, in, in },
		{ "egress device not a target, again: to the stack", "ls_lan_in",
		  { 4, 17, "10.9.0.5", "10.7.0.2", 1000, 2000 }, VERDICT_NEXT, NULL, { { F, LS_R_FWD_STACK, 1 } }, in, in },
		{ "local destination: to the stack", "ls_lan_in", { 4, 17, "10.9.0.5", "10.8.0.1", 1000, 2000 },
		  VERDICT_NEXT, NULL, { { F, LS_R_FWD_STACK, 1 } }, in, in },
	};
	fails += h_run(b, stack, sizeof(stack) / sizeof(stack[0]));
	fails += h_ok(cache_entries(b) == 2, "only the target's destinations are cached, 10.8.0.2 and fd00:8::2 (%d entries)", cache_entries(b));

	/* the neighbour moves: once the entry expired (50 ms), the new MAC is used */
	if (system("ip neigh replace 10.8.0.2 lladdr 02:00:00:00:08:03 dev lsbf1 nud permanent"))
		fails += h_ok(false, "ip neigh replace");
	usleep(120 * 1000);
	fails += forwarded(b, "after the neighbour changed and 120 ms", "10.8.0.2", n1b, m1, in);

	/* lsbf1 stops being a target: the cached destination goes to the stack at once */
	lsbpf_state_free(s);
	s = lsbpf_state_new();
	s->flags = LS_CFG_FWD_FAST;
	lsbpf_state_add_iface(s, "lsbf0", 0, LS_IF_LAN);
	lsbpf_state_add_iface(s, "lsbf1", 0, LS_IF_LAN);
	fails += h_ok(lsbpf_apply(b, s) == 0, "apply: lsbf1 no longer a target");
	fails += h_ok(cache_entries(b) == 0, "apply emptied the FIB cache");
	struct tcase untarget[] = {
		{ "lsbf1 not a target any more: to the stack", "ls_lan_in",
		  { 4, 17, "10.9.0.5", "10.8.0.2", 1000, 2000 }, VERDICT_NEXT, NULL, { { F, LS_R_FWD_STACK, 1 } }, in, in },
	};
	fails += h_run(b, untarget, 1);
	fails += fused_snat(b, in, n1b, m1);
	fails += xdp_isolated(b, in);

	lsbpf_state_free(s);
	lsbpf_close(b);
	h_plan_done();
	return fails ? 1 : 0;
}
