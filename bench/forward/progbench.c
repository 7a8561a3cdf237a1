// SPDX-License-Identifier: MIT
/*
 * ns per packet of each program through bpf_prog_test_run_opts (repeat R), against the
 * empty program of the same type, with 10, 1,000 and 10,000 translation prefixes (/24
 * identity mappings, so a rewritten packet is its own next input; "v6": /48 IPv6 mappings
 * and an IPv6 packet, for the translate programs). Alternates programs for ROUNDS rounds
 * and prints the median and spread.
 *
 *   progbench [ROUNDS] [REPEAT] [PROGRAM [PREFIXES [one-len|mixed|v6]]]
 *
 * With PROGRAM (and optionally a table), only those rows run: for profiling with perf.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>

#include "tests/bpf/harness.h"

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double run_ns(struct lsbpf *b, const char *prog, const uint8_t *pkt, size_t len, int repeat, uint32_t iif)
{
	uint8_t out[256];
	struct __sk_buff ctx = { .ingress_ifindex = iif };
	DECLARE_LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = len, .data_out = out,
			    .data_size_out = sizeof(out), .repeat = repeat);
	if (iif && !strstr(prog, "xdp")) {
		o.ctx_in = &ctx;
		o.ctx_size_in = sizeof(ctx);
	}
	if (bpf_prog_test_run_opts(lsbpf_prog_fd(b, prog), &o))
		return -1;
	return o.duration;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 5, repeat = argc > 2 ? atoi(argv[2]) : 1000000;
	const char *only_prog = argc > 3 ? argv[3] : NULL, *only_kind = argc > 5 ? argv[5] : NULL;
	int only_size = argc > 4 ? atoi(argv[4]) : 0;
	static const int sizes[] = { 10, 1000, 10000 };
	static const struct {
		const char *prog, *floor;
	} progs[] = {
		{ "ls_stage_xdp_xlate_src", "ls_empty_xdp" },
		{ "ls_stage_xlate_src", "ls_empty_tc" },
		{ "ls_xdp_lan_in", "ls_empty_xdp" },
		{ "ls_lan_in", "ls_empty_tc" },
		{ "ls_overlay_in", "ls_empty_tc" },
		{ "ls_overlay_out", "ls_empty_tc" },
	};
	struct pk p = { 4, 17, "10.0.5.9", "100.64.0.1", 4000, 53, .payload = 22 }; /* 64-byte frame */
	struct pk p6 = { 6, 17, "fd10:0:5::9", "fd7a::1", 4000, 53, .payload = 22 };
	static const char *const kinds[] = { "one-len", "mixed", "v6" };
	uint8_t pkt[256], pkt6[256];
	size_t len = pk_build(&p, pkt, sizeof(pkt)), len6 = pk_build(&p6, pkt6, sizeof(pkt6));

	printf("uptime: ");
	fflush(stdout);
	if (system("uptime"))
		return 1;
	printf("program ns/packet via BPF_PROG_TEST_RUN, %d-byte frame, repeat %d, %d rounds (median [min-max])\n",
	       (int)len, repeat, rounds);
	printf("%-24s %-14s %8s %22s %10s %8s\n", "program", "prefixes", "floor", "program", "delta", "target");
	printf("(\"one-len\": every IPv4 mapping /24; \"mixed\": one extra /16. From 256 mappings on, one hash\n"
	       " lookup per length, longest first (a miss costs one per length); the LPM trie below;\n"
	       " \"v6\": every IPv6 mapping /48 (fd10:A:B::/48), an IPv6 packet, %d bytes)\n", (int)len6);
	for (size_t mi = 0; mi < 9; mi++) {
		size_t si = mi / 3;
		const char *kind = kinds[mi % 3];
		bool lpm = mi % 3 == 1; /* one extra /16 mapping: mixed lengths, so the LPM tries decide */
		bool v6 = mi % 3 == 2;
		if ((only_size && only_size != sizes[si]) || (only_kind && strcmp(only_kind, kind)))
			continue;
		struct lsbpf *b = h_open();
		struct lsbpf_state *s = lsbpf_state_new();
		char pfx[32];
		/* mappings 10.A.B.0/24 = same; the packet's source 10.0.5.9 is one of them */
		for (int i = 0; i < sizes[si]; i++) {
			if (v6)
				snprintf(pfx, sizeof(pfx), "fd10:%x:%x::/48", i / 256, i % 256);
			else
				snprintf(pfx, sizeof(pfx), "10.%d.%d.0/24", i / 256, i % 256);
			char arg[80];
			snprintf(arg, sizeof(arg), "%s=%s", pfx, pfx);
			lsbpf_state_add_map_arg(s, arg);
		}
		if (lpm)
			lsbpf_state_add_map_arg(s, "172.16.0.0/16=172.16.0.0/16");
		s->flags = LS_CFG_XLATE_CLIENT | LS_CFG_XLATE_ROUTER | LS_CFG_METRICS;
		lsbpf_state_add_route(s, "10.0.0.0/8", 1, 1, 0, "bench");
		lsbpf_state_add_rule(s, "10.0.0.0/8", "100.64.0.0/10", "udp", "53");
		if (lsbpf_apply(b, s)) {
			printf("apply failed\n");
			return 1;
		}
		for (size_t pi = 0; pi < sizeof(progs) / sizeof(progs[0]); pi++) {
			double d[64], f[64];
			if ((only_prog && strcmp(only_prog, progs[pi].prog)) || (v6 && !strstr(progs[pi].prog, "xlate")))
				continue;
			for (int r = 0; r < rounds && r < 64; r++) {
				f[r] = run_ns(b, progs[pi].floor, v6 ? pkt6 : pkt, v6 ? len6 : len, repeat, 0);
				d[r] = run_ns(b, progs[pi].prog, v6 ? pkt6 : pkt, v6 ? len6 : len, repeat, 0);
			}
			qsort(d, rounds, sizeof(double), cmp_d);
			qsort(f, rounds, sizeof(double), cmp_d);
			double delta = d[rounds / 2] - f[rounds / 2];
			char span[48];
			snprintf(span, sizeof(span), "%.0f [%.0f-%.0f]", d[rounds / 2], d[0], d[rounds - 1]);
			const char *target = "";
			if (sizes[si] == 10000 && strstr(progs[pi].prog, "xlate_src"))
				target = delta <= 100 ? "<=100 ok" : "<=100 MISS";
			char lbl[32];
			snprintf(lbl, sizeof(lbl), "%d %s", sizes[si], kind);
			printf("%-24s %-14s %8.0f %22s %10.0f %8s\n", progs[pi].prog, lbl, f[rounds / 2], span,
			       delta, target);
		}
		lsbpf_state_free(s);
		lsbpf_close(b);
	}
	return 0;
}
