// SPDX-License-Identifier: MIT
/*
 * metrics: per-route packet/byte counters on overlay egress (tx, by destination) and
 * ingress (rx, by source), conflict counters for routes 2+ advertise, stable route ids
 * across applies, and `lightscale routes --json` reading them back.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <jansson.h>

#include "tests/bpf/harness.h"

#define M LS_PROG_METRICS

static struct ls_route_stats stats_of(struct lsbpf *b, const char *prefix)
{
	int fi = lsbpf_map_fd(b, "route_info"), fs = lsbpf_map_fd(b, "route_stats");
	int ncpu = libbpf_num_possible_cpus();
	struct ls_route_stats sum = {}, *v = calloc(ncpu, sizeof(*v));
	char want[64];
	snprintf(want, sizeof(want), "%s", prefix);
	char *slash = strchr(want, '/');
	*slash = 0;
	int plen = atoi(slash + 1);
	uint8_t a[16] = {};
	int fam = strchr(want, ':') ? 6 : 4;
	inet_pton(fam == 4 ? AF_INET : AF_INET6, want, a);
	for (__u32 id = 0; id < LS_MAX_ROUTES; id++) {
		struct ls_route_info inf;
		if (bpf_map_lookup_elem(fi, &id, &inf) || inf.family != fam || inf.prefixlen != plen ||
		    memcmp(inf.addr, a, 16))
			continue;
		bpf_map_lookup_elem(fs, &id, v);
		for (int c = 0; c < ncpu; c++) {
			sum.tx_packets += v[c].tx_packets;
			sum.tx_bytes += v[c].tx_bytes;
			sum.rx_packets += v[c].rx_packets;
			sum.rx_bytes += v[c].rx_bytes;
			sum.conflict_packets += v[c].conflict_packets;
		}
	}
	free(v);
	return sum;
}

static const struct tcase cases[] = {
	{ "tx to a route", "ls_stage_metrics_tx", { 4, 6, "100.64.0.1", "192.168.1.5", 1, 2, .payload = 100 },
	  VERDICT_NEXT, NULL, { { M, LS_R_METRICS_ROUTE, 1 } } },
	{ "tx to a route again", "ls_stage_metrics_tx", { 4, 17, "100.64.0.1", "192.168.1.6", 1, 2, .payload = 10 },
	  VERDICT_NEXT, NULL, { { M, LS_R_METRICS_ROUTE, 1 } } },
	{ "rx from a conflicting route", "ls_stage_metrics_rx", { 4, 17, "10.1.2.3", "100.64.0.1", 1, 2 },
	  VERDICT_NEXT, NULL, { { M, LS_R_METRICS_CONFLICT, 1 } } },
	{ "longest prefix wins: the /24 inside the /8", "ls_stage_metrics_tx",
	  { 4, 17, "100.64.0.1", "10.9.9.9", 1, 2 }, VERDICT_NEXT, NULL, { { M, LS_R_METRICS_ROUTE, 1 } } },
	{ "v6 tx", "ls_stage_metrics_tx", { 6, 6, "fd00:64::1", "fd00:a8:1::5", 1, 2 }, VERDICT_NEXT, NULL,
	  { { M, LS_R_METRICS_ROUTE, 1 } } },
	{ "no route: miss", "ls_stage_metrics_tx", { 4, 6, "100.64.0.1", "172.16.0.1", 1, 2 }, VERDICT_NEXT, NULL,
	  { { M, LS_R_MISS, 1 } } },
	{ "ARP: not ip", "ls_stage_metrics_tx", { .not_ip = true }, VERDICT_NEXT, NULL, { { M, LS_R_NOT_IP, 1 } } },
};

int main(void)
{
	struct lsbpf *b = h_open();
	struct lsbpf_state *s = lsbpf_state_new();
	int fails = 0;

	s->flags = LS_CFG_METRICS;
	lsbpf_state_add_route(s, "192.168.1.0/24", 1, 1, 0, "router-a");
	lsbpf_state_add_route(s, "10.0.0.0/8", 1, 2, 0, "router-a,router-b");
	lsbpf_state_add_route(s, "10.9.9.0/24", 1, 1, 0, "router-c");
	lsbpf_state_add_route(s, "fd00:a8::/32", 1, 1, 0, "router-a");
	fails += h_ok(lsbpf_apply(b, s) == 0, "apply 4 routes");
	fails += h_run(b, cases, sizeof(cases) / sizeof(cases[0]));

	/* sizes: Ethernet(14)+IP(20)+TCP(20)+100 and 14+20+8+10 */
	struct ls_route_stats r1 = stats_of(b, "192.168.1.0/24");
	fails += h_ok(r1.tx_packets == 2, "192.168.1.0/24 tx_packets %llu == 2", (unsigned long long)r1.tx_packets);
	fails += h_ok(r1.tx_bytes == 154 + 52, "192.168.1.0/24 tx_bytes %llu == 206", (unsigned long long)r1.tx_bytes);
	struct ls_route_stats r2 = stats_of(b, "10.0.0.0/8");
	fails += h_ok(r2.rx_packets == 1 && r2.conflict_packets == 1, "10.0.0.0/8 rx 1, conflicts 1 (got %llu, %llu)",
		      (unsigned long long)r2.rx_packets, (unsigned long long)r2.conflict_packets);
	struct ls_route_stats r3 = stats_of(b, "10.9.9.0/24");
	fails += h_ok(r3.tx_packets == 1 && r3.conflict_packets == 0, "10.9.9.0/24 tx 1, no conflict");

	/* reorder, drop one, add one: counters stay with their prefix */
	struct lsbpf_state *s2 = lsbpf_state_new();
	s2->flags = LS_CFG_METRICS;
	lsbpf_state_add_route(s2, "172.16.0.0/12", 2, 1, 0, "new");
	lsbpf_state_add_route(s2, "fd00:a8::/32", 1, 1, 0, "router-a");
	lsbpf_state_add_route(s2, "192.168.1.0/24", 1, 1, 0, "router-a");
	fails += h_ok(lsbpf_apply(b, s2) == 0, "apply a reordered, changed route set");
	r1 = stats_of(b, "192.168.1.0/24");
	fails += h_ok(r1.tx_packets == 2, "192.168.1.0/24 keeps its counters (tx_packets %llu)",
		      (unsigned long long)r1.tx_packets);
	struct ls_route_stats r4 = stats_of(b, "172.16.0.0/12");
	fails += h_ok(r4.tx_packets == 0 && r4.rx_packets == 0, "a new route starts at zero");
	r2 = stats_of(b, "10.0.0.0/8");
	fails += h_ok(r2.rx_packets == 0, "a removed route is gone");
	static const struct tcase after[] = {
		{ "removed route: miss", "ls_stage_metrics_rx", { 4, 17, "10.1.2.3", "100.64.0.1", 1, 2 }, VERDICT_NEXT,
		  NULL, { { M, LS_R_MISS, 1 } } },
		{ "new route counts", "ls_stage_metrics_tx", { 4, 17, "100.64.0.1", "172.16.5.5", 1, 2 }, VERDICT_NEXT,
		  NULL, { { M, LS_R_METRICS_ROUTE, 1 } } },
	};
	fails += h_run(b, after, 2);

	/* `lightscale routes --json` from a pinned copy */
	char dir[64];
	snprintf(dir, sizeof(dir), "/sys/fs/bpf/lsb-test-metrics-%d", (int)getpid());
	struct lsbpf_opts po = { .pin_dir = dir, .force_l2 = true, .overlay_l2 = 14, .lan_l2 = 14, .underlay_l2 = 14 };
	struct lsbpf *pb;
	if (h_ok(lsbpf_open(&po, &pb) == 0, "open a pinned instance at %s", dir) == 0) {
		lsbpf_apply(pb, s);
		uint8_t in[256], out[256];
		struct pk p = { 4, 6, "100.64.0.1", "192.168.1.5", 1, 2, .payload = 100 };
		size_t len = pk_build(&p, in, sizeof(in)), olen;
		for (int i = 0; i < 3; i++) {
			olen = sizeof(out);
			h_run_one(pb, "ls_overlay_out", in, len, out, &olen, 0, 0); /* stage programs load only in tests */
		}
		char *buf = NULL;
		size_t blen = 0;
		FILE *f = open_memstream(&buf, &blen);
		int r = lsbpf_routes_print(dir, true, f);
		fclose(f);
		json_t *doc = json_loads(buf, 0, NULL);
		bool found = false;
		size_t i;
		json_t *v;
		json_array_foreach(doc, i, v) {
			if (!strcmp(json_string_value(json_object_get(v, "prefix")), "192.168.1.0/24"))
				found = json_integer_value(json_object_get(v, "tx_packets")) == 3 &&
					json_integer_value(json_object_get(v, "tx_bytes")) == 3 * 154 &&
					!strcmp(json_string_value(json_object_get(v, "via")), "router-a");
		}
		fails += h_ok(r == 0 && found, "routes --json shows 192.168.1.0/24 via router-a, 3 packets, 462 bytes");
		json_decref(doc);
		free(buf);

		/* the CLI entry points the lightscale command wires in, output captured */
		char tmp[] = "/tmp/lsb-cli-XXXXXX";
		int tfd = mkstemp(tmp), saved = dup(1);
		fflush(stdout);
		dup2(tfd, 1);
		char *av1[] = { "bpf", "status", "--json", "--bpf-pin-dir", dir, NULL };
		char *av2[] = { "routes", "--bpf-pin-dir", dir, "--json", NULL };
		char *av3[] = { "bpf", "frobnicate", NULL };
		int c1 = ls_cmd_bpf(5, av1);
		fflush(stdout);
		off_t mid = lseek(tfd, 0, SEEK_CUR);
		int c2 = ls_cmd_routes(4, av2);
		fflush(stdout);
		int c3 = ls_cmd_bpf(2, av3);
		fflush(stdout);
		dup2(saved, 1);
		close(saved);
		char *all = NULL;
		size_t alen = 0;
		FILE *tf = fopen(tmp, "r");
		if (tf) {
			fseek(tf, 0, SEEK_END);
			alen = ftell(tf);
			rewind(tf);
			all = calloc(1, alen + 1);
			if (fread(all, 1, alen, tf) != alen)
				alen = 0;
			fclose(tf);
		}
		unlink(tmp);
		close(tfd);
		json_t *st = all ? json_loadb(all, mid, 0, NULL) : NULL;
		json_t *rt = all ? json_loads(all + mid, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
		json_t *maps = json_object_get(st, "maps"), *m;
		size_t mi;
		bool has_stats = false;
		json_array_foreach(maps, mi, m)
			has_stats |= !strcmp(json_string_value(json_object_get(m, "name")), "route_stats");
		fails += h_ok(c1 == 0 && json_is_object(st) && has_stats && json_is_array(json_object_get(st, "counters")),
			      "ls_cmd_bpf status --json: maps and counters");
		fails += h_ok(c2 == 0 && json_array_size(rt) == 4, "ls_cmd_routes --json: the 4 routes (%zu)", json_array_size(rt));
		fails += h_ok(c3 != 0, "ls_cmd_bpf refuses an unknown subcommand");
		json_decref(st);
		json_decref(rt);
		free(all);
		lsbpf_destroy(pb);
		fails += h_ok(access(dir, F_OK) != 0, "destroy removes the pin directory");
	}
	lsbpf_state_free(s);
	lsbpf_state_free(s2);
	lsbpf_close(b);
	h_plan_done();
	return fails ? 1 : 0;
}
