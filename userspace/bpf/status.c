// SPDX-License-Identifier: MIT
/*
 * `lightscale bpf status` and `lightscale routes`: read the pinned maps and links of a
 * pin directory (no agent needed). One JSON document is built; --json prints it, the text
 * form is printed from the same document, so the two never drift.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <fcntl.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <jansson.h>

#include "bpf/lightscale.skel.h"
#include "log.h"
#include "util.h"
#include "userspace/bpf/lsbpf.h"
#include "userspace/bpf/lsbpf_int.h"

static const char *prog_names[LS_PROG_MAX] = {
	[LS_PROG_DISPATCH] = "dispatch", [LS_PROG_TRANSLATE] = "translate", [LS_PROG_SNAT] = "snat",
	[LS_PROG_ISOLATE] = "isolate",   [LS_PROG_FILTER] = "filter",       [LS_PROG_METRICS] = "metrics",
	[LS_PROG_STUN] = "stun",         [LS_PROG_FWD] = "forward",
};

static const char *reason_names[LS_REASON_MAX] = {
	[LS_R_NONE] = "none",
	[LS_R_NOT_IP] = "not_ip",
	[LS_R_MALFORMED] = "malformed",
	[LS_R_MISS] = "miss",
	[LS_R_XLATE] = "translated",
	[LS_R_XLATE_FRAG] = "translated_fragment",
	[LS_R_XLATE_ICMP_ERR] = "translated_icmp_error",
	[LS_R_HELPER_ERR] = "helper_error",
	[LS_R_SNAT_NEW] = "snat_new",
	[LS_R_SNAT_HIT] = "snat_hit",
	[LS_R_SNAT_REPLY] = "snat_reply",
	[LS_R_SNAT_TABLE_FULL] = "snat_table_full",
	[LS_R_SNAT_NO_PORT] = "snat_no_port",
	[LS_R_SNAT_NOT_OURS] = "snat_not_ours",
	[LS_R_SNAT_PROTO] = "snat_other_protocol",
	[LS_R_ISO_LOCAL] = "not_forwarded",
	[LS_R_ISO_SAME_NET] = "same_network",
	[LS_R_ISO_ALLOWED] = "allowed_between_networks",
	[LS_R_ISO_DENIED] = "denied_between_networks",
	[LS_R_FILTER_ALLOW] = "filter_allow",
	[LS_R_FILTER_REPLY] = "filter_reply",
	[LS_R_FILTER_DENY] = "filter_deny",
	[LS_R_FILTER_TRACK] = "flow_tracked",
	[LS_R_FILTER_OFF] = "filter_off",
	[LS_R_FILTER_FRAG] = "later_fragment",
	[LS_R_METRICS_ROUTE] = "route",
	[LS_R_METRICS_CONFLICT] = "route_conflict",
	[LS_R_STUN_ASSIGN] = "stun_to_agent",
	[LS_R_STUN_NO_SOCK] = "stun_no_socket",
	[LS_R_STUN_OTHER] = "not_stun",
	[LS_R_STUN_SPORT] = "stun_source_port",
	[LS_R_PASS] = "pass",
	[LS_R_DROP] = "drop",
	[LS_R_DISABLED] = "disabled",
	[LS_R_XDP_TO_TC] = "xdp_to_tc",
	[LS_R_SNAT_ICMP_ERR] = "snat_icmp_error",
	[LS_R_STUN_ASSIGN_ERR] = "stun_assign_error",
	[LS_R_SNAT_FRAG] = "snat_later_fragment",
	[LS_R_FWD_REDIRECT] = "forwarded_in_bpf",
	[LS_R_FWD_STACK] = "forwarded_by_stack",
	[LS_R_STUN_DPORT] = "stun_to_agent_port",
	[LS_R_LAN_OUT_DONE] = "lan_out_done_at_ingress",
};

const char *lsbpf_prog_name(uint32_t prog)
{
	return prog < LS_PROG_MAX && prog_names[prog] ? prog_names[prog] : "?";
}

const char *lsbpf_reason_name(uint32_t reason)
{
	return reason < LS_REASON_MAX && reason_names[reason] ? reason_names[reason] : "?";
}

int lsbpf_counter(int fd, uint32_t prog, uint32_t reason, struct ls_counter *out)
{
	int ncpu = libbpf_num_possible_cpus();
	struct ls_counter *v = calloc(ncpu, sizeof(*v));
	__u32 idx = prog * LS_REASON_SLOTS + reason;

	if (!v)
		return -ENOMEM;
	memset(out, 0, sizeof(*out));
	if (bpf_map_lookup_elem(fd, &idx, v)) {
		free(v);
		return -errno;
	}
	for (int i = 0; i < ncpu; i++) {
		out->packets += v[i].packets;
		out->bytes += v[i].bytes;
	}
	free(v);
	return 0;
}

static int open_pinned(const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return bpf_obj_get(path);
}

static const char *map_type_name(__u32 t)
{
	switch (t) {
	case BPF_MAP_TYPE_HASH: return "hash";
	case BPF_MAP_TYPE_ARRAY: return "array";
	case BPF_MAP_TYPE_PERCPU_ARRAY: return "percpu_array";
	case BPF_MAP_TYPE_LPM_TRIE: return "lpm_trie";
	case BPF_MAP_TYPE_LRU_HASH: return "lru_hash";
	}
	return "other";
}

static json_t *maps_json(const char *dir)
{
	json_t *arr = json_array();
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return arr;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		int fd = open_pinned(dir, e->d_name);
		if (fd < 0)
			continue;
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);
		if (bpf_obj_get_info_by_fd(fd, &info, &len) || !info.key_size) {
			close(fd);
			continue;
		}
		json_t *m = json_pack("{s:s, s:s, s:I}", "name", e->d_name, "type", map_type_name(info.type),
				      "max_entries", (json_int_t)info.max_entries);
		if (info.type != BPF_MAP_TYPE_ARRAY && info.type != BPF_MAP_TYPE_PERCPU_ARRAY) {
			uint8_t *k = malloc(info.key_size), *nk = malloc(info.key_size);
			json_int_t n = 0;
			void *prev = NULL;
			while (k && nk && bpf_map_get_next_key(fd, prev, nk) == 0) {
				memcpy(k, nk, info.key_size);
				prev = k;
				n++;
			}
			free(k);
			free(nk);
			json_object_set_new(m, "entries", json_integer(n));
			json_object_set_new(m, "fill_pct",
					    json_real(info.max_entries ? 100.0 * n / info.max_entries : 0));
		}
		json_array_append_new(arr, m);
		close(fd);
	}
	closedir(d);
	return arr;
}

static void prog_name_of(__u32 id, char *out, size_t size)
{
	int fd = bpf_prog_get_fd_by_id(id);
	struct bpf_prog_info pi = {};
	__u32 len = sizeof(pi);
	snprintf(out, size, "?");
	if (fd < 0)
		return;
	if (!bpf_obj_get_info_by_fd(fd, &pi, &len))
		snprintf(out, size, "%s", pi.name);
	close(fd);
}

/* The L2 length a loaded program of ours parses with, from its object's .rodata; -1 when
 * it cannot be read. */
static int prog_l2(__u32 prog_id, const char *hook)
{
	int fd = bpf_prog_get_fd_by_id(prog_id), l2 = -1;
	__u32 ids[64];
	struct bpf_prog_info pi = {};
	__u32 len = sizeof(pi);
	size_t off = strstr(hook, "overlay") ? offsetof(struct lightscale__rodata, cfg_overlay_l2)
		     : strstr(hook, "lan") ? offsetof(struct lightscale__rodata, cfg_lan_l2)
					    : offsetof(struct lightscale__rodata, cfg_underlay_l2);

	if (fd < 0)
		return -1;
	pi.nr_map_ids = ARRAY_SIZE(ids);
	pi.map_ids = (__u64)(unsigned long)ids;
	if (bpf_obj_get_info_by_fd(fd, &pi, &len)) {
		close(fd);
		return -1;
	}
	close(fd);
	for (__u32 i = 0; i < pi.nr_map_ids && i < ARRAY_SIZE(ids) && l2 < 0; i++) {
		int mfd = bpf_map_get_fd_by_id(ids[i]);
		struct bpf_map_info mi = {};
		__u32 mlen = sizeof(mi);
		if (mfd < 0)
			continue;
		const char *dot = NULL;
		if (!bpf_obj_get_info_by_fd(mfd, &mi, &mlen))
			dot = strrchr(mi.name, '.');
		if (dot && !strcmp(dot, ".rodata") && mi.value_size >= off + 4 && mi.value_size <= 4096) {
			uint8_t val[4096];
			__u32 k = 0;
			if (!bpf_map_lookup_elem(mfd, &k, val))
				memcpy(&l2, val + off, 4);
		}
		close(mfd);
	}
	return l2;
}

struct att_arg {
	const char *dir;
	json_t *arr;
	const char *ifname; /* NULL: every interface */
};

static int att_cb(void *arg, const char *kind, const char *ifname, const char *hook)
{
	struct att_arg *a = arg;
	char path[4096], pname[64] = "?", mode[16] = "?";
	bool attached = false;
	__u32 prog_id = 0;

	if (a->ifname && strcmp(a->ifname, ifname))
		return 0;
	snprintf(path, sizeof(path), "%s/%s/%s/%s", a->dir, kind, ifname, hook);
	int fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	if (!strcmp(kind, "links")) {
		struct bpf_link_info li = {};
		__u32 len = sizeof(li);
		if (!bpf_obj_get_info_by_fd(fd, &li, &len)) {
			prog_id = li.prog_id;
			__u32 ifx = ((__u32 *)&li.raw_tracepoint)[0];
			attached = ifx != 0;
			snprintf(mode, sizeof(mode), "%s", li.type == BPF_LINK_TYPE_XDP ? "xdp" : "tcx");
		}
	} else {
		struct bpf_prog_info pi = {};
		__u32 len = sizeof(pi);
		snprintf(mode, sizeof(mode), "clsact");
		if (!bpf_obj_get_info_by_fd(fd, &pi, &len))
			prog_id = pi.id;
		int ifindex = if_nametoindex(ifname);
		if (ifindex) {
			/* is our filter there, running the pinned program? */
			DECLARE_LIBBPF_OPTS(bpf_tc_hook, th, .ifindex = ifindex,
					    .attach_point = strstr(hook, "_in") ? BPF_TC_INGRESS : BPF_TC_EGRESS);
			DECLARE_LIBBPF_OPTS(bpf_tc_opts, to, .handle = 1, .priority = lsbpf_tc_prio(a->dir));
			attached = bpf_tc_query(&th, &to) == 0 && to.prog_id == prog_id;
		}
	}
	close(fd);
	if (prog_id)
		prog_name_of(prog_id, pname, sizeof(pname));
	json_array_append_new(a->arr, json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:i}", "interface", ifname, "hook",
						hook, "mode", mode, "program", pname, "program_id",
						(json_int_t)prog_id, "attached", attached, "l2",
						prog_id ? prog_l2(prog_id, hook) : -1));
	return 0;
}

static json_t *counters_json(const char *dir)
{
	json_t *arr = json_array();
	int fd = open_pinned(dir, "counters");
	if (fd < 0)
		return arr;
	for (uint32_t p = 0; p < LS_PROG_MAX; p++) {
		for (uint32_t r = 1; r < LS_REASON_MAX; r++) {
			struct ls_counter c;
			if (lsbpf_counter(fd, p, r, &c) || !c.packets)
				continue;
			json_array_append_new(arr, json_pack("{s:s, s:s, s:i, s:I, s:I}", "program",
							     lsbpf_prog_name(p), "reason", lsbpf_reason_name(r),
							     "reason_id", r, "packets", (json_int_t)c.packets,
							     "bytes", (json_int_t)c.bytes));
		}
	}
	close(fd);
	return arr;
}

static json_t *config_json(const char *dir)
{
	int fd = open_pinned(dir, "config");
	struct ls_config c = {};
	__u32 k = 0;
	char a4[INET_ADDRSTRLEN] = "", a6[INET6_ADDRSTRLEN] = "";

	if (fd < 0)
		return json_null();
	bpf_map_lookup_elem(fd, &k, &c);
	close(fd);
	json_t *fl = json_array();
	static const char *fn[] = { "translate_client", "translate_router", "snat", "isolate",
				    "filter", "metrics", "stun", "fast_forward" };
	for (size_t i = 0; i < ARRAY_SIZE(fn); i++)
		if (c.flags & (1u << i))
			json_array_append_new(fl, json_string(fn[i]));
	if (c.snat4)
		inet_ntop(AF_INET, &c.snat4, a4, sizeof(a4));
	static const uint8_t z[16];
	if (memcmp(c.snat6, z, 16))
		inet_ntop(AF_INET6, c.snat6, a6, sizeof(a6));
	return json_pack("{s:o, s:i, s:i, s:s, s:s, s:i, s:i}", "stages", fl, "wg_port", c.wg_port,
			 "stun_port", c.stun_port, "snat4", a4, "snat6", a6, "snat_port_lo", c.snat_port_lo,
			 "snat_port_hi", c.snat_port_hi);
}

static json_t *lock_json(const char *dir)
{
	char name[4096], path[4200], *c;
	snprintf(name, sizeof(name), "%s", dir);
	for (c = name; *c; c++)
		if (*c == '/')
			*c = '_';
	snprintf(path, sizeof(path), "%s/%s.lock", LSBPF_LOCK_DIR, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return json_pack("{s:b}", "held", 0);
	char pid[32] = "";
	ssize_t n = read(fd, pid, sizeof(pid) - 1);
	if (n > 0)
		pid[strcspn(pid, "\n")] = 0;
	bool held = flock(fd, LOCK_SH | LOCK_NB) != 0;
	close(fd);
	return held ? json_pack("{s:b, s:i}", "held", 1, "pid", atoi(pid)) : json_pack("{s:b}", "held", 0);
}

struct json_t *lsbpf_attachments_json(const char *pin_dir, const char *ifname)
{
	struct att_arg a = { .dir = pin_dir, .arr = json_array(), .ifname = ifname };

	lsbpf_for_each_attachment(pin_dir, att_cb, &a);
	return a.arr;
}

/* The interface map: roles and the per-interface SNAT addresses. */
static json_t *ifaces_json(const char *dir)
{
	json_t *arr = json_array();
	int fd = open_pinned(dir, "ifaces");
	__u32 k, next, *prev = NULL;
	static const uint8_t z[16];

	if (fd < 0)
		return arr;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		struct ls_iface v;
		char name[IF_NAMESIZE] = "?", a4[INET_ADDRSTRLEN] = "", a6[INET6_ADDRSTRLEN] = "";
		json_t *fl = json_array();

		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(fd, &k, &v)) {
			json_decref(fl);
			continue;
		}
		if_indextoname(k, name);
		static const char *fn[] = { "overlay", "lan", "snat_from", "fwd_target" };
		for (size_t i = 0; i < ARRAY_SIZE(fn); i++)
			if (v.flags & (1u << i))
				json_array_append_new(fl, json_string(fn[i]));
		if (v.snat4)
			inet_ntop(AF_INET, &v.snat4, a4, sizeof(a4));
		if (memcmp(v.snat6, z, 16))
			inet_ntop(AF_INET6, v.snat6, a6, sizeof(a6));
		json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:o, s:s, s:s}", "interface", name, "ifindex",
						     (json_int_t)k, "network", (json_int_t)v.net_id, "roles", fl,
						     "snat4", a4, "snat6", a6));
	}
	close(fd);
	return arr;
}

int lsbpf_status_print(const char *dir, bool json, FILE *f)
{
	struct att_arg a = { .dir = dir, .arr = json_array() };
	if (access(dir, F_OK)) {
		pr_err("bpf: no pin directory `%s' (is the agent running, or --bpf-pin-dir right?)", dir);
		json_decref(a.arr);
		return -ENOENT;
	}
	lsbpf_for_each_attachment(dir, att_cb, &a);
	json_t *doc = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "pin_dir", dir, "agent", lock_json(dir),
				"config", config_json(dir), "attachments", a.arr, "interfaces", ifaces_json(dir),
				"maps", maps_json(dir), "counters", counters_json(dir));
	if (json) {
		json_dumpf(doc, f, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', f);
		json_decref(doc);
		return 0;
	}
	json_t *ag = json_object_get(doc, "agent");
	fprintf(f, "pin dir: %s\n", dir);
	if (json_is_true(json_object_get(ag, "held")))
		fprintf(f, "agent:   live (pid %lld)\n", json_integer_value(json_object_get(ag, "pid")));
	else
		fprintf(f, "agent:   not running (pinned programs keep enforcing)\n");
	json_t *cfg = json_object_get(doc, "config"), *v;
	size_t i;
	if (json_is_object(cfg)) {
		fprintf(f, "stages: ");
		json_array_foreach(json_object_get(cfg, "stages"), i, v)
			fprintf(f, " %s", json_string_value(v));
		fprintf(f, "\n");
	}
	fprintf(f, "\nattachments:\n  %-16s %-14s %-7s %-16s %-3s %s\n", "INTERFACE", "HOOK", "MODE", "PROGRAM", "L2",
		"STATE");
	json_array_foreach(json_object_get(doc, "attachments"), i, v)
		fprintf(f, "  %-16s %-14s %-7s %-16s %-3lld %s\n", json_string_value(json_object_get(v, "interface")),
			json_string_value(json_object_get(v, "hook")), json_string_value(json_object_get(v, "mode")),
			json_string_value(json_object_get(v, "program")), json_integer_value(json_object_get(v, "l2")),
			json_is_true(json_object_get(v, "attached")) ? "attached" : "DETACHED");
	fprintf(f, "\ninterfaces:\n  %-16s %-4s %-28s %s\n", "INTERFACE", "NET", "ROLES", "SNAT SOURCE");
	json_array_foreach(json_object_get(doc, "interfaces"), i, v) {
		char roles[128] = "", src[128] = "";
		size_t k;
		json_t *r;
		json_array_foreach(json_object_get(v, "roles"), k, r)
			snprintf(roles + strlen(roles), sizeof(roles) - strlen(roles), "%s%s", k ? "," : "",
				 json_string_value(r));
		const char *a4 = json_string_value(json_object_get(v, "snat4")), *a6 = json_string_value(json_object_get(v, "snat6"));
		snprintf(src, sizeof(src), "%s%s%s", a4 ? a4 : "", a4 && *a4 && a6 && *a6 ? " " : "", a6 ? a6 : "");
		fprintf(f, "  %-16s %-4lld %-28s %s\n", json_string_value(json_object_get(v, "interface")),
			json_integer_value(json_object_get(v, "network")), *roles ? roles : "-", *src ? src : "-");
	}
	fprintf(f, "\nmaps:\n  %-12s %-13s %9s %9s\n", "NAME", "TYPE", "ENTRIES", "MAX");
	json_array_foreach(json_object_get(doc, "maps"), i, v) {
		json_t *en = json_object_get(v, "entries");
		char ebuf[32] = "-";
		if (en)
			snprintf(ebuf, sizeof(ebuf), "%lld", json_integer_value(en));
		fprintf(f, "  %-12s %-13s %9s %9lld\n", json_string_value(json_object_get(v, "name")),
			json_string_value(json_object_get(v, "type")), ebuf,
			json_integer_value(json_object_get(v, "max_entries")));
	}
	fprintf(f, "\ncounters:\n  %-10s %-26s %12s %14s\n", "PROGRAM", "REASON", "PACKETS", "BYTES");
	json_array_foreach(json_object_get(doc, "counters"), i, v)
		fprintf(f, "  %-10s %-26s %12lld %14lld\n", json_string_value(json_object_get(v, "program")),
			json_string_value(json_object_get(v, "reason")),
			json_integer_value(json_object_get(v, "packets")),
			json_integer_value(json_object_get(v, "bytes")));
	json_decref(doc);
	return 0;
}

int lsbpf_routes_print(const char *dir, bool json, FILE *f)
{
	int fi = open_pinned(dir, "route_info"), fs = open_pinned(dir, "route_stats");
	int ncpu = libbpf_num_possible_cpus();
	struct ls_route_stats *st = calloc(ncpu, sizeof(*st));
	json_t *arr = json_array();
	int r = 0;

	if (fi < 0 || fs < 0 || !st) {
		pr_err("bpf: no route maps under `%s'", dir);
		r = -ENOENT;
		goto cleanup;
	}
	for (__u32 id = 0; id < LS_MAX_ROUTES; id++) {
		struct ls_route_info inf;
		if (bpf_map_lookup_elem(fi, &id, &inf) || !inf.family)
			continue;
		struct ls_route_stats sum = {};
		if (!bpf_map_lookup_elem(fs, &id, st)) {
			for (int c = 0; c < ncpu; c++) {
				sum.tx_packets += st[c].tx_packets;
				sum.tx_bytes += st[c].tx_bytes;
				sum.rx_packets += st[c].rx_packets;
				sum.rx_bytes += st[c].rx_bytes;
				sum.conflict_packets += st[c].conflict_packets;
				sum.conflict_bytes += st[c].conflict_bytes;
			}
		}
		char a[INET6_ADDRSTRLEN], pfx[INET6_ADDRSTRLEN + 8];
		inet_ntop(inf.family == 4 ? AF_INET : AF_INET6, inf.addr, a, sizeof(a));
		snprintf(pfx, sizeof(pfx), "%s/%u", a, inf.prefixlen);
		inf.name[sizeof(inf.name) - 1] = 0;
		json_array_append_new(arr, json_pack("{s:s, s:s, s:i, s:i, s:b, s:I, s:I, s:I, s:I, s:I, s:I}",
						     "prefix", pfx, "via", inf.name, "network", inf.net_id,
						     "advertisers", inf.n_adv, "conflict", inf.n_adv >= 2,
						     "tx_packets", (json_int_t)sum.tx_packets, "tx_bytes",
						     (json_int_t)sum.tx_bytes, "rx_packets", (json_int_t)sum.rx_packets,
						     "rx_bytes", (json_int_t)sum.rx_bytes, "conflict_packets",
						     (json_int_t)sum.conflict_packets, "conflict_bytes",
						     (json_int_t)sum.conflict_bytes));
	}
	if (json) {
		json_dumpf(arr, f, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', f);
	} else {
		size_t i;
		json_t *v;
		fprintf(f, "%-24s %-20s %4s %10s %12s %10s %12s %10s\n", "PREFIX", "VIA", "NET", "TX_PKTS",
			"TX_BYTES", "RX_PKTS", "RX_BYTES", "CONFLICTS");
		json_array_foreach(arr, i, v)
			fprintf(f, "%-24s %-20s %4lld %10lld %12lld %10lld %12lld %10lld%s\n",
				json_string_value(json_object_get(v, "prefix")),
				json_string_value(json_object_get(v, "via")),
				json_integer_value(json_object_get(v, "network")),
				json_integer_value(json_object_get(v, "tx_packets")),
				json_integer_value(json_object_get(v, "tx_bytes")),
				json_integer_value(json_object_get(v, "rx_packets")),
				json_integer_value(json_object_get(v, "rx_bytes")),
				json_integer_value(json_object_get(v, "conflict_packets")),
				json_is_true(json_object_get(v, "conflict")) ? "  (advertised by 2+)" : "");
	}
cleanup:
	json_decref(arr);
	free(st);
	if (fi >= 0)
		close(fi);
	if (fs >= 0)
		close(fs);
	return r;
}
