// SPDX-License-Identifier: MIT
/*
 * translate: table of cases through the stage programs (ls_stage_xlate_dst: destination
 * virtual->real as on overlay egress; ls_stage_xlate_src: source real->virtual as on
 * overlay ingress), the XDP variant and the overlay-egress dispatcher.
 * Mapping: 10.201.1.0/24 = 192.168.1.0/24 and fd00:201:1::/64 = fd00:a8:1::/64.
 */
#include <stdio.h>
#include <bpf/bpf.h>
#include <stdlib.h>

#include "tests/bpf/harness.h"

#define T LS_PROG_TRANSLATE
#define D LS_PROG_DISPATCH

/* quoted packets for ICMP errors */
static const struct pk q_udp_real = { 4, 17, "100.64.0.1", "192.168.1.5", 5000, 53, .payload = 12 };
static const struct pk q_udp_virt = { 4, 17, "100.64.0.1", "10.201.1.5", 5000, 53, .payload = 12 };
static const struct pk q_tcp_real = { 4, 6, "100.64.0.1", "192.168.1.5", 40000, 443 };
static const struct pk q_tcp_virt = { 4, 6, "100.64.0.1", "10.201.1.5", 40000, 443 };
static const struct pk q_from_virt = { 4, 17, "10.201.1.5", "100.64.0.1", 53, 5000, .payload = 4 };
static const struct pk q_from_real = { 4, 17, "192.168.1.5", "100.64.0.1", 53, 5000, .payload = 4 };
static const struct pk q6_udp_real = { 6, 17, "fd00:64::1", "fd00:a8:1::5", 5000, 53, .payload = 10 };
static const struct pk q6_udp_virt = { 6, 17, "fd00:64::1", "fd00:201:1::5", 5000, 53, .payload = 10 };

/* expected outputs */
static const struct pk o_tcp = { 4, 6, "100.64.0.1", "192.168.1.5", 40000, 80, .payload = 100 };
static const struct pk o_udp = { 4, 17, "100.64.0.1", "192.168.1.77", 40000, 53, .payload = 33 };
static const struct pk o_udp0 = { 4, 17, "100.64.0.1", "192.168.1.77", 40000, 53, .payload = 33, .udp_csum0 = true };
static const struct pk o_echo = { 4, 1, "100.64.0.1", "192.168.1.9", 77, .type = 8, .payload = 56 };
static const struct pk o_in_tcp = { 4, 6, "10.201.1.5", "100.64.0.1", 80, 40000, .payload = 10 };
static const struct pk o_err_host = { 4, 1, "10.201.1.5", "100.64.0.1", .type = 3, .code = 3, .inner = &q_udp_virt };
static const struct pk o_err_router = { 4, 1, "192.168.9.1", "100.64.0.1", .type = 11, .inner = &q_udp_virt };
static const struct pk o_err_tcp8 = { 4, 1, "10.201.1.5", "100.64.0.1", .type = 3, .code = 1, .inner = &q_tcp_virt, .inner_l4 = 8 };
static const struct pk o_err_tcpfull = { 4, 1, "10.201.1.5", "100.64.0.1", .type = 3, .code = 4, .inner = &q_tcp_virt };
static const struct pk o_err_egress = { 4, 1, "100.64.0.1", "192.168.1.5", .type = 3, .code = 3, .inner = &q_from_real };
static const struct pk o_frag1 = { 4, 17, "100.64.0.1", "192.168.1.5", 1, 2, .payload = 64, .frag = 1 };
static const struct pk o_frag2 = { 4, 17, "100.64.0.1", "192.168.1.5", .payload = 64, .frag = 2 };
static const struct pk o6_tcp = { 6, 6, "fd00:64::1", "fd00:a8:1::5", 40000, 80, .payload = 20 };
static const struct pk o6_udp = { 6, 17, "fd00:64::1", "fd00:a8:1::abcd", 40000, 53, .payload = 17 };
static const struct pk o6_echo = { 6, 58, "fd00:64::1", "fd00:a8:1::9", 5, .type = 128, .payload = 16 };
static const struct pk o6_err = { 6, 58, "fd00:201:1::5", "fd00:64::1", .type = 1, .code = 4, .inner = &q6_udp_virt };
static const struct pk o6_frag1 = { 6, 17, "fd00:64::1", "fd00:a8:1::5", 1, 2, .payload = 40, .frag = 1 };
static const struct pk o6_frag2 = { 6, 17, "fd00:64::1", "fd00:a8:1::5", .payload = 40, .frag = 2 };
static const struct pk o6_in_udp = { 6, 17, "fd00:201:1::5", "fd00:64::1", 53, 5000, .payload = 9 };

static const struct tcase cases[] = {
	{ "v4 tcp dst virtual->real", "ls_stage_xlate_dst",
	  { 4, 6, "100.64.0.1", "10.201.1.5", 40000, 80, .payload = 100 }, VERDICT_NEXT, &o_tcp, { { T, LS_R_XLATE, 1 } } },
	{ "v4 udp dst virtual->real keeps host bits", "ls_stage_xlate_dst",
	  { 4, 17, "100.64.0.1", "10.201.1.77", 40000, 53, .payload = 33 }, VERDICT_NEXT, &o_udp, { { T, LS_R_XLATE, 1 } } },
	{ "v4 udp without checksum stays without", "ls_stage_xlate_dst",
	  { 4, 17, "100.64.0.1", "10.201.1.77", 40000, 53, .payload = 33, .udp_csum0 = true }, VERDICT_NEXT, &o_udp0, { { T, LS_R_XLATE, 1 } } },
	{ "v4 icmp echo dst", "ls_stage_xlate_dst",
	  { 4, 1, "100.64.0.1", "10.201.1.9", 77, .type = 8, .payload = 56 }, VERDICT_NEXT, &o_echo, { { T, LS_R_XLATE, 1 } } },
	{ "v4 map miss passes unchanged", "ls_stage_xlate_dst",
	  { 4, 6, "100.64.0.1", "10.9.9.9", 40000, 80 }, VERDICT_NEXT, NULL, { { T, LS_R_MISS, 1 }, { T, LS_R_XLATE, 0 } } },
	{ "v4 real source of another prefix is no hit", "ls_stage_xlate_src",
	  { 4, 6, "192.168.2.5", "100.64.0.1", 80, 40000 }, VERDICT_NEXT, NULL, { { T, LS_R_MISS, 1 } } },
	{ "v4 tcp src real->virtual", "ls_stage_xlate_src",
	  { 4, 6, "192.168.1.5", "100.64.0.1", 80, 40000, .payload = 10 }, VERDICT_NEXT, &o_in_tcp, { { T, LS_R_XLATE, 1 } } },
	{ "v4 icmp error from the host: outer src and quoted dst", "ls_stage_xlate_src",
	  { 4, 1, "192.168.1.5", "100.64.0.1", .type = 3, .code = 3, .inner = &q_udp_real }, VERDICT_NEXT, &o_err_host,
	  { { T, LS_R_XLATE_ICMP_ERR, 1 } } },
	{ "v4 icmp error from a router: quoted dst only", "ls_stage_xlate_src",
	  { 4, 1, "192.168.9.1", "100.64.0.1", .type = 11, .inner = &q_udp_real }, VERDICT_NEXT, &o_err_router,
	  { { T, LS_R_XLATE_ICMP_ERR, 1 } } },
	{ "v4 icmp error quoting 8 bytes of tcp", "ls_stage_xlate_src",
	  { 4, 1, "192.168.1.5", "100.64.0.1", .type = 3, .code = 1, .inner = &q_tcp_real, .inner_l4 = 8 }, VERDICT_NEXT,
	  &o_err_tcp8, { { T, LS_R_XLATE_ICMP_ERR, 1 } } },
	{ "v4 icmp frag-needed quoting all of tcp", "ls_stage_xlate_src",
	  { 4, 1, "192.168.1.5", "100.64.0.1", .type = 3, .code = 4, .inner = &q_tcp_real }, VERDICT_NEXT, &o_err_tcpfull,
	  { { T, LS_R_XLATE_ICMP_ERR, 1 } } },
	{ "v4 icmp error sent to a virtual host: outer dst and quoted src", "ls_stage_xlate_dst",
	  { 4, 1, "100.64.0.1", "10.201.1.5", .type = 3, .code = 3, .inner = &q_from_virt }, VERDICT_NEXT, &o_err_egress,
	  { { T, LS_R_XLATE_ICMP_ERR, 1 } } },
	{ "v4 first fragment: address and L4 checksum", "ls_stage_xlate_dst",
	  { 4, 17, "100.64.0.1", "10.201.1.5", 1, 2, .payload = 64, .frag = 1 }, VERDICT_NEXT, &o_frag1, { { T, LS_R_XLATE, 1 } } },
	{ "v4 later fragment: IP header only", "ls_stage_xlate_dst",
	  { 4, 17, "100.64.0.1", "10.201.1.5", .payload = 64, .frag = 2 }, VERDICT_NEXT, &o_frag2, { { T, LS_R_XLATE_FRAG, 1 } } },
	{ "v4 truncated tcp to a virtual address is dropped", "ls_stage_xlate_dst",
	  { 4, 6, "100.64.0.1", "10.201.1.5", 40000, 80, .truncate = 14 + 20 + 6 }, VERDICT_SHOT, NULL, { { T, LS_R_MALFORMED, 1 } } },
	{ "v4 truncated tcp elsewhere passes", "ls_stage_xlate_dst",
	  { 4, 6, "100.64.0.1", "10.9.9.9", 40000, 80, .truncate = 14 + 20 + 6 }, VERDICT_NEXT, NULL, { { T, LS_R_MISS, 1 } } },
	{ "v4 bad header length to a virtual address is dropped", "ls_stage_xlate_dst",
	  { 4, 6, "100.64.0.1", "10.201.1.5", 40000, 80, .bad_ihl = true }, VERDICT_SHOT, NULL, { { T, LS_R_MALFORMED, 1 } } },
	{ "short frame (Ethernet + 10 bytes; xdp, since TC test runs refuse it)", "ls_stage_xdp_xlate_dst",
	  { 4, 6, "100.64.0.1", "10.201.1.5", 40000, 80, .truncate = 24 }, VERDICT_XDP_PASS, NULL, { { T, LS_R_MISS, 1 } } },
	{ "ARP passes", "ls_stage_xlate_dst", { .not_ip = true }, VERDICT_NEXT, NULL, { { T, LS_R_NOT_IP, 1 } } },
	{ "v6 tcp dst virtual->real", "ls_stage_xlate_dst",
	  { 6, 6, "fd00:64::1", "fd00:201:1::5", 40000, 80, .payload = 20 }, VERDICT_NEXT, &o6_tcp, { { T, LS_R_XLATE, 1 } } },
	{ "v6 udp dst keeps host bits", "ls_stage_xlate_dst",
	  { 6, 17, "fd00:64::1", "fd00:201:1::abcd", 40000, 53, .payload = 17 }, VERDICT_NEXT, &o6_udp, { { T, LS_R_XLATE, 1 } } },
	{ "v6 icmpv6 echo dst (pseudo-header checksum)", "ls_stage_xlate_dst",
	  { 6, 58, "fd00:64::1", "fd00:201:1::9", 5, .type = 128, .payload = 16 }, VERDICT_NEXT, &o6_echo, { { T, LS_R_XLATE, 1 } } },
	{ "v6 udp src real->virtual", "ls_stage_xlate_src",
	  { 6, 17, "fd00:a8:1::5", "fd00:64::1", 53, 5000, .payload = 9 }, VERDICT_NEXT, &o6_in_udp, { { T, LS_R_XLATE, 1 } } },
	{ "v6 icmpv6 error: outer src and quoted dst", "ls_stage_xlate_src",
	  { 6, 58, "fd00:a8:1::5", "fd00:64::1", .type = 1, .code = 4, .inner = &q6_udp_real }, VERDICT_NEXT, &o6_err,
	  { { T, LS_R_XLATE_ICMP_ERR, 1 } } },
	{ "v6 first fragment", "ls_stage_xlate_dst",
	  { 6, 17, "fd00:64::1", "fd00:201:1::5", 1, 2, .payload = 40, .frag = 1 }, VERDICT_NEXT, &o6_frag1, { { T, LS_R_XLATE, 1 } } },
	{ "v6 later fragment", "ls_stage_xlate_dst",
	  { 6, 17, "fd00:64::1", "fd00:201:1::5", .payload = 40, .frag = 2 }, VERDICT_NEXT, &o6_frag2, { { T, LS_R_XLATE_FRAG, 1 } } },
	{ "v6 miss", "ls_stage_xlate_dst",
	  { 6, 6, "fd00:64::1", "fd00:202:1::5", 40000, 80 }, VERDICT_NEXT, NULL, { { T, LS_R_MISS, 1 } } },
	{ "xdp v4 tcp src real->virtual", "ls_stage_xdp_xlate_src",
	  { 4, 6, "192.168.1.5", "100.64.0.1", 80, 40000, .payload = 10 }, VERDICT_XDP_PASS, &o_in_tcp, { { T, LS_R_XLATE, 1 } } },
	{ "xdp v6 udp src real->virtual", "ls_stage_xdp_xlate_src",
	  { 6, 17, "fd00:a8:1::5", "fd00:64::1", 53, 5000, .payload = 9 }, VERDICT_XDP_PASS, &o6_in_udp, { { T, LS_R_XLATE, 1 } } },
	{ "xdp v4 udp dst virtual->real", "ls_stage_xdp_xlate_dst",
	  { 4, 17, "100.64.0.1", "10.201.1.77", 40000, 53, .payload = 33 }, VERDICT_XDP_PASS, &o_udp, { { T, LS_R_XLATE, 1 } } },
	{ "overlay egress dispatcher translates and passes on", "ls_overlay_out",
	  { 4, 6, "100.64.0.1", "10.201.1.5", 40000, 80, .payload = 100 }, VERDICT_NEXT, &o_tcp,
	  { { T, LS_R_XLATE, 1 }, { D, LS_R_PASS, 1 } } },
	{ "overlay ingress dispatcher translates the source", "ls_overlay_in",
	  { 4, 6, "192.168.1.5", "100.64.0.1", 80, 40000, .payload = 10 }, VERDICT_NEXT, &o_in_tcp,
	  { { T, LS_R_XLATE, 1 }, { D, LS_R_PASS, 1 } } },
};

int main(void)
{
	struct lsbpf *b = h_open();
	struct lsbpf_state *s = lsbpf_state_new();
	int fails = 0;

	if (lsbpf_state_add_map_arg(s, "10.201.1.0/24=192.168.1.0/24") ||
	    lsbpf_state_add_map_arg(s, "fd00:201:1::/64=fd00:a8:1::/64") ||
	    lsbpf_state_add_map_arg(s, "10.202.1.0/24=192.168.100.0/24")) {
		printf("not ok 1 - state\n");
		return 1;
	}
	s->flags = LS_CFG_XLATE_CLIENT;
	fails += h_ok(lsbpf_apply(b, s) == 0, "apply the mappings");
	fails += h_ok(lsbpf_state_add_map_arg(s, "10.0.0.0/8=192.168.0.0/16") != 0,
		      "a mapping between prefixes of different length is refused");
	fails += h_ok(lsbpf_state_add_map_arg(s, "10.0.0.0/24") != 0, "a mapping without = is refused");
	fails += h_run(b, cases, sizeof(cases) / sizeof(cases[0]));

	/* reconcile: a mapping removed from the state stops translating */
	struct lsbpf_state *s2 = lsbpf_state_new();
	lsbpf_state_add_map_arg(s2, "10.202.1.0/24=192.168.100.0/24");
	s2->flags = LS_CFG_XLATE_CLIENT;
	fails += h_ok(lsbpf_apply(b, s2) == 0, "apply a smaller state");
	static const struct tcase after[] = {
		{ "removed mapping no longer translates", "ls_stage_xlate_dst",
		  { 4, 6, "100.64.0.1", "10.201.1.5", 40000, 80 }, VERDICT_NEXT, NULL, { { T, LS_R_MISS, 1 } } },
	};
	fails += h_run(b, after, 1);

	/* a large table of one length: the hash fast path */
	struct lsbpf_state *sh = lsbpf_state_new();
	char arg[64];
	for (int i = 0; i < 300; i++) {
		snprintf(arg, sizeof(arg), "10.%d.%d.0/24=172.%d.%d.0/24", 100 + i / 250, i % 250, 16 + i / 250, i % 250);
		lsbpf_state_add_map_arg(sh, arg);
	}
	lsbpf_state_add_map_arg(sh, "10.201.1.0/24=192.168.1.0/24");
	sh->flags = LS_CFG_XLATE_CLIENT;
	fails += h_ok(lsbpf_apply(b, sh) == 0, "apply 301 mappings of one length");
	struct ls_config cfg = {};
	__u32 zero = 0;
	bpf_map_lookup_elem(lsbpf_map_fd(b, "config"), &zero, &cfg);
	fails += h_ok(cfg.xlate4_lens[0] == 24 && cfg.xlate4_lens[1] == 0,
		      "large one-length table: hash fast path (xlate4_lens %u,%u)", cfg.xlate4_lens[0], cfg.xlate4_lens[1]);
	static const struct pk h1 = { 4, 6, "100.64.0.1", "192.168.1.5", 40000, 80 };
	static const struct pk h2 = { 4, 17, "100.64.0.1", "172.17.44.9", 1, 2 };
	static const struct pk h3 = { 4, 6, "10.101.44.9", "100.64.0.1", 1, 2 };
	static const struct tcase hashed[] = {
		{ "hash path: dst virtual->real", "ls_stage_xlate_dst", { 4, 6, "100.64.0.1", "10.201.1.5", 40000, 80 },
		  VERDICT_NEXT, &h1, { { T, LS_R_XLATE, 1 } } },
		{ "hash path: another /24", "ls_stage_xlate_dst", { 4, 17, "100.64.0.1", "10.101.44.9", 1, 2 },
		  VERDICT_NEXT, &h2, { { T, LS_R_XLATE, 1 } } },
		{ "hash path: src real->virtual", "ls_stage_xlate_src", { 4, 6, "172.17.44.9", "100.64.0.1", 1, 2 },
		  VERDICT_NEXT, &h3, { { T, LS_R_XLATE, 1 } } },
		{ "hash path: miss", "ls_stage_xlate_dst", { 4, 6, "100.64.0.1", "10.99.1.1", 1, 2 }, VERDICT_NEXT, NULL,
		  { { T, LS_R_MISS, 1 } } },
	};
	fails += h_run(b, hashed, 4);
	lsbpf_state_free(sh);

	/* mixed lengths: the LPM tries decide */
	struct lsbpf_state *s3 = lsbpf_state_new();
	lsbpf_state_add_map_arg(s3, "10.201.1.0/24=192.168.1.0/24");
	lsbpf_state_add_map_arg(s3, "10.0.0.0/16=172.16.0.0/16");
	lsbpf_state_add_map_arg(s3, "10.0.9.0/24=192.168.9.0/24");
	s3->flags = LS_CFG_XLATE_CLIENT;
	fails += h_ok(lsbpf_apply(b, s3) == 0, "apply mappings of mixed lengths");
	static const struct pk m1 = { 4, 6, "100.64.0.1", "192.168.1.5", 40000, 80 };
	static const struct pk m2 = { 4, 6, "100.64.0.1", "172.16.3.4", 40000, 80 };
	static const struct pk m3 = { 4, 6, "100.64.0.1", "192.168.9.4", 40000, 80 };
	static const struct tcase mixed[] = {
		{ "mixed: /24 mapping", "ls_stage_xlate_dst", { 4, 6, "100.64.0.1", "10.201.1.5", 40000, 80 }, VERDICT_NEXT,
		  &m1, { { T, LS_R_XLATE, 1 } } },
		{ "mixed: /16 mapping", "ls_stage_xlate_dst", { 4, 6, "100.64.0.1", "10.0.3.4", 40000, 80 }, VERDICT_NEXT,
		  &m2, { { T, LS_R_XLATE, 1 } } },
		{ "mixed: the /24 inside the /16 wins", "ls_stage_xlate_dst", { 4, 6, "100.64.0.1", "10.0.9.4", 40000, 80 },
		  VERDICT_NEXT, &m3, { { T, LS_R_XLATE, 1 } } },
	};
	fails += h_run(b, mixed, 3);
	bpf_map_lookup_elem(lsbpf_map_fd(b, "config"), &zero, &cfg);
	fails += h_ok(cfg.xlate4_lens[0] == 0, "a small table: the LPM tries (xlate4_lens[0] %u)", cfg.xlate4_lens[0]);

	/* a large table of mixed lengths: one hash per length, longest first */
	for (int i = 0; i < 300; i++) {
		snprintf(arg, sizeof(arg), "10.%d.%d.0/24=172.%d.%d.0/24", 100 + i / 250, i % 250, 16 + i / 250, i % 250);
		lsbpf_state_add_map_arg(s3, arg);
	}
	lsbpf_state_add_map_arg(s3, "10.150.0.0/20=192.168.16.0/20");
	lsbpf_state_add_map_arg(s3, "10.151.0.1/32=192.168.200.9/32");
	fails += h_ok(lsbpf_apply(b, s3) == 0, "apply 305 mappings of lengths 32, 24, 20 and 16");
	bpf_map_lookup_elem(lsbpf_map_fd(b, "config"), &zero, &cfg);
	fails += h_ok(cfg.xlate4_lens[0] == 32 && cfg.xlate4_lens[1] == 24 && cfg.xlate4_lens[2] == 20 &&
			      cfg.xlate4_lens[3] == 16,
		      "mixed large table: per-length hashes, longest first (xlate4_lens %u,%u,%u,%u)", cfg.xlate4_lens[0],
		      cfg.xlate4_lens[1], cfg.xlate4_lens[2], cfg.xlate4_lens[3]);
	static const struct pk m4 = { 4, 17, "100.64.0.1", "192.168.31.7", 1, 2 };
	static const struct pk m5 = { 4, 17, "100.64.0.1", "192.168.200.9", 1, 2 };
	static const struct pk m6 = { 4, 17, "10.101.44.9", "100.64.0.1", 1, 2 };
	static const struct tcase mixedh[] = {
		{ "per-length hash: /24 mapping", "ls_stage_xlate_dst", { 4, 6, "100.64.0.1", "10.201.1.5", 40000, 80 },
		  VERDICT_NEXT, &m1, { { T, LS_R_XLATE, 1 } } },
		{ "per-length hash: /16 mapping", "ls_stage_xlate_dst", { 4, 6, "100.64.0.1", "10.0.3.4", 40000, 80 },
		  VERDICT_NEXT, &m2, { { T, LS_R_XLATE, 1 } } },
		{ "per-length hash: the /24 inside the /16 wins", "ls_stage_xlate_dst",
		  { 4, 6, "100.64.0.1", "10.0.9.4", 40000, 80 }, VERDICT_NEXT, &m3, { { T, LS_R_XLATE, 1 } } },
		{ "per-length hash: /20 mapping keeps host bits", "ls_stage_xlate_dst",
		  { 4, 17, "100.64.0.1", "10.150.15.7", 1, 2 }, VERDICT_NEXT, &m4, { { T, LS_R_XLATE, 1 } } },
		{ "per-length hash: /32 mapping", "ls_stage_xlate_dst", { 4, 17, "100.64.0.1", "10.151.0.1", 1, 2 },
		  VERDICT_NEXT, &m5, { { T, LS_R_XLATE, 1 } } },
		{ "per-length hash: the /32's neighbour misses", "ls_stage_xlate_dst",
		  { 4, 17, "100.64.0.1", "10.151.0.2", 1, 2 }, VERDICT_NEXT, NULL, { { T, LS_R_MISS, 1 } } },
		{ "per-length hash: src real->virtual", "ls_stage_xlate_src", { 4, 17, "172.17.44.9", "100.64.0.1", 1, 2 },
		  VERDICT_NEXT, &m6, { { T, LS_R_XLATE, 1 } } },
		{ "per-length hash, XDP: src real->virtual", "ls_stage_xdp_xlate_src",
		  { 4, 17, "172.17.44.9", "100.64.0.1", 1, 2 }, VERDICT_XDP_PASS, &m6, { { T, LS_R_XLATE, 1 } } },
	};
	fails += h_run(b, mixedh, sizeof(mixedh) / sizeof(mixedh[0]));

	/* a fifth length: back to the LPM tries, same answers */
	lsbpf_state_add_map_arg(s3, "10.152.0.0/28=192.168.201.0/28");
	fails += h_ok(lsbpf_apply(b, s3) == 0, "apply a fifth mapping length");
	bpf_map_lookup_elem(lsbpf_map_fd(b, "config"), &zero, &cfg);
	fails += h_ok(cfg.xlate4_lens[0] == 0, "five lengths: the LPM tries (xlate4_lens[0] %u)", cfg.xlate4_lens[0]);
	fails += h_run(b, mixedh, sizeof(mixedh) / sizeof(mixedh[0]));
	lsbpf_state_free(s3);

	/* IPv6: a large table of lengths 128, 56, 48 and 32: one hash per length, longest
	 * first; the /56 ends inside a 32-bit word, the /32 on one */
	struct lsbpf_state *s6 = lsbpf_state_new();
	for (int i = 0; i < 300; i++) {
		snprintf(arg, sizeof(arg), "fd10:%x:%x::/48=fd20:%x:%x::/48", i / 250, i % 250, i / 250, i % 250);
		lsbpf_state_add_map_arg(s6, arg);
	}
	lsbpf_state_add_map_arg(s6, "fd30::/32=fd40::/32");
	lsbpf_state_add_map_arg(s6, "fd30:0:9::/48=fd50:0:9::/48");
	lsbpf_state_add_map_arg(s6, "fd31::1/128=fd41::9/128");
	lsbpf_state_add_map_arg(s6, "fd32:0:0:ab00::/56=fd42:0:0:cd00::/56");
	s6->flags = LS_CFG_XLATE_CLIENT;
	fails += h_ok(lsbpf_apply(b, s6) == 0, "apply 304 IPv6 mappings of lengths 128, 56, 48 and 32");
	bpf_map_lookup_elem(lsbpf_map_fd(b, "config"), &zero, &cfg);
	fails += h_ok(cfg.xlate6_lens[0] == 128 && cfg.xlate6_lens[1] == 56 && cfg.xlate6_lens[2] == 48 &&
			      cfg.xlate6_lens[3] == 32 && cfg.xlate4_lens[0] == 0,
		      "IPv6 large table: per-length hashes, longest first (xlate6_lens %u,%u,%u,%u)", cfg.xlate6_lens[0],
		      cfg.xlate6_lens[1], cfg.xlate6_lens[2], cfg.xlate6_lens[3]);
	static const struct pk v1 = { 6, 17, "fd7a::1", "fd20:0:5::9", 1, 2 };
	static const struct pk v2 = { 6, 6, "fd7a::1", "fd40:0:3::4", 40000, 80 };
	static const struct pk v3 = { 6, 6, "fd7a::1", "fd50:0:9::4", 40000, 80 };
	static const struct pk v4 = { 6, 17, "fd7a::1", "fd42:0:0:cdef::7", 1, 2 };
	static const struct pk v5 = { 6, 17, "fd7a::1", "fd41::9", 1, 2 };
	static const struct pk v6 = { 6, 17, "fd10:0:5::9", "fd7a::1", 1, 2 };
	static const struct tcase hashed6[] = {
		{ "IPv6 per-length hash: /48 mapping", "ls_stage_xlate_dst", { 6, 17, "fd7a::1", "fd10:0:5::9", 1, 2 },
		  VERDICT_NEXT, &v1, { { T, LS_R_XLATE, 1 } } },
		{ "IPv6 per-length hash: /32 mapping", "ls_stage_xlate_dst", { 6, 6, "fd7a::1", "fd30:0:3::4", 40000, 80 },
		  VERDICT_NEXT, &v2, { { T, LS_R_XLATE, 1 } } },
		{ "IPv6 per-length hash: the /48 inside the /32 wins", "ls_stage_xlate_dst",
		  { 6, 6, "fd7a::1", "fd30:0:9::4", 40000, 80 }, VERDICT_NEXT, &v3, { { T, LS_R_XLATE, 1 } } },
		{ "IPv6 per-length hash: /56 mapping keeps host bits", "ls_stage_xlate_dst",
		  { 6, 17, "fd7a::1", "fd32:0:0:abef::7", 1, 2 }, VERDICT_NEXT, &v4, { { T, LS_R_XLATE, 1 } } },
		{ "IPv6 per-length hash: /128 mapping", "ls_stage_xlate_dst", { 6, 17, "fd7a::1", "fd31::1", 1, 2 },
		  VERDICT_NEXT, &v5, { { T, LS_R_XLATE, 1 } } },
		{ "IPv6 per-length hash: the /128's neighbour misses", "ls_stage_xlate_dst",
		  { 6, 17, "fd7a::1", "fd31::2", 1, 2 }, VERDICT_NEXT, NULL, { { T, LS_R_MISS, 1 } } },
		{ "IPv6 per-length hash: src real->virtual", "ls_stage_xlate_src", { 6, 17, "fd20:0:5::9", "fd7a::1", 1, 2 },
		  VERDICT_NEXT, &v6, { { T, LS_R_XLATE, 1 } } },
		{ "IPv6 per-length hash, XDP: src real->virtual", "ls_stage_xdp_xlate_src",
		  { 6, 17, "fd20:0:5::9", "fd7a::1", 1, 2 }, VERDICT_XDP_PASS, &v6, { { T, LS_R_XLATE, 1 } } },
	};
	fails += h_run(b, hashed6, sizeof(hashed6) / sizeof(hashed6[0]));

	/* a fifth IPv6 length: back to the LPM tries, same answers */
	lsbpf_state_add_map_arg(s6, "fd33::/64=fd43::/64");
	fails += h_ok(lsbpf_apply(b, s6) == 0, "apply a fifth IPv6 mapping length");
	bpf_map_lookup_elem(lsbpf_map_fd(b, "config"), &zero, &cfg);
	fails += h_ok(cfg.xlate6_lens[0] == 0, "five IPv6 lengths: the LPM tries (xlate6_lens[0] %u)", cfg.xlate6_lens[0]);
	fails += h_run(b, hashed6, sizeof(hashed6) / sizeof(hashed6[0]));
	lsbpf_state_free(s6);
	lsbpf_state_free(s);
	lsbpf_state_free(s2);
	lsbpf_close(b);
	h_plan_done();
	return fails ? 1 : 0;
}
