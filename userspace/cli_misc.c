// SPDX-License-Identifier: MIT
/* lightscale dns export | relay list | exit-node list|use */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "mnet.h"
#include "rtnl.h"
#include "dataplane.h"
#include "exitsel.h"
#include "perapp.h"
#include "netmap.h"
#include "profile.h"
#include "status.h"

/* The netmap: from the running agent, else the cache. */
static int load_netmap(const struct ls_cli *cli, struct ls_profile *p, struct ls_netmap **nm)
{
	char err[512];

	if (ls_cli_netmap(cli, p, nm, err, sizeof(err))) {
		fprintf(stderr, "%s %s: %s\n", cli->prog, cli->cmd, err);
		return 1;
	}
	return 0;
}

static const char dns_help[] =
	"Usage: lightscale dns export [--format hosts|json] [--profile P] [--state-dir DIR]\n"
	"       lightscale dns status [--profile P] [--json]\n"
	"\n"
	"`status' asks the profile's agent about its split-DNS resolver: listen address (each\n"
	"profile its own 127.77.S.1), suffix, upstreams, counters, how it is wired into the\n"
	"host's resolution (systemd-resolved, resolv.conf or nothing) and, when nothing, the\n"
	"exact steps to use it.\n"
	"\n"
	"Prints the network's names from the netmap: this node and every peer by DNS name\n"
	"(and short name) with their overlay addresses, plus the netmap's extra A/AAAA\n"
	"records. `hosts' (default) is /etc/hosts format; `json' is\n"
	"{\"suffix\", \"search\", \"resolvers\", \"records\": [{\"name\", \"type\", \"value\"}]}.\n";

static void add_record(json_t *recs, const char *name, const struct ls_prefix *a)
{
	char b[LS_PREFIX_STRLEN];

	ls_prefix_format_addr(a, b);
	json_array_append_new(recs, json_pack("{s:s, s:s, s:s}", "name", name, "type",
					      a->family == AF_INET ? "A" : "AAAA", "value", b));
}

static void add_node(json_t *recs, const char *name, const char *dns, const struct ls_nm_prefixv *addrs)
{
	for (size_t i = 0; i < addrs->n; i++)
		add_record(recs, dns ? dns : name, &addrs->v[i]);
}

static void join_strv(json_t *arr, char *out, size_t size)
{
	size_t i;
	json_t *v;

	out[0] = '\0';
	json_array_foreach(arr, i, v) {
		if (i)
			strncat(out, ", ", size - strlen(out) - 1);
		strncat(out, json_is_string(v) ? json_string_value(v) : "?", size - strlen(out) - 1);
	}
}

static void dns_status_text(json_t *st, FILE *f)
{
	char ups[512];

	join_strv(json_object_get(st, "upstreams"), ups, sizeof(ups));
	fprintf(f, "resolver:     %s port %lld (profile %s)\n", json_string_value(json_object_get(st, "listen")),
		(long long)json_integer_value(json_object_get(st, "port")), json_string_value(json_object_get(st, "profile")));
	fprintf(f, "suffix:       %s (%lld records)\n", json_string_value(json_object_get(st, "suffix")),
		(long long)json_integer_value(json_object_get(st, "records")));
	fprintf(f, "upstreams:    %s\n", ups[0] ? ups : "(none: other names get SERVFAIL)");
	fprintf(f, "queries:      %lld (answered %lld, nxdomain %lld, forwarded %lld, failed %lld)\n",
		(long long)json_integer_value(json_object_get(st, "queries")),
		(long long)json_integer_value(json_object_get(st, "answered")),
		(long long)json_integer_value(json_object_get(st, "nxdomain")),
		(long long)json_integer_value(json_object_get(st, "forwarded")),
		(long long)json_integer_value(json_object_get(st, "failed")));
	fprintf(f, "integration:  %s\n", json_string_value(json_object_get(st, "integration")));
	fprintf(f, "%s\n", json_string_value(json_object_get(st, "instructions")));
}

int ls_cmd_dns(struct ls_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		LS_CLI_COMMON_OPTS,
		{ 0 },
	};
	const char *format = "hosts";
	struct ls_netmap *nm = NULL;
	struct ls_profile p;
	json_t *recs, *doc, *s;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ls_cli_common_opt(cli, c, optarg))
			continue;
		if (c == 'f') {
			format = optarg;
		} else if (c == 'h') {
			fputs(dns_help, stdout);
			return 0;
		} else {
			return ls_cli_usage_error(cli, dns_help, "invalid option");
		}
	}
	if (optind < argc && !strcmp(argv[optind], "status")) {
		json_t *st = NULL;
		int r = ls_localapi_query(cli->profile, "dns", &st);

		if (r) {
			fprintf(stderr, "%s dns status: no agent runs for profile '%s' (%s): start it with lightscale agent --profile %s\n",
				cli->prog, cli->profile, strerror(-r), cli->profile);
			return 1;
		}
		if (json_object_get(st, "error")) {
			fprintf(stderr, "%s dns status: %s\n", cli->prog, json_string_value(json_object_get(st, "error")));
			json_decref(st);
			return 1;
		}
		json_object_set_new(st, "profile", json_string(cli->profile));
		return ls_cli_print(cli, st, dns_status_text);
	}
	if (optind >= argc || strcmp(argv[optind], "export"))
		return ls_cli_usage_error(cli, dns_help, "expected `export' or `status'");
	if (cli->json)
		format = "json";
	if (strcmp(format, "hosts") && strcmp(format, "json"))
		return ls_cli_usage_error(cli, dns_help, "invalid format `%s' (hosts or json)", format);
	if (ls_cli_profile(cli, &p))
		return 1;
	if (load_netmap(cli, &p, &nm)) {
		ls_profile_free(&p);
		return 1;
	}
	recs = json_array();
	add_node(recs, nm->self.name, nm->self.dns_name, &nm->self.addresses);
	for (size_t i = 0; i < nm->n_peers; i++)
		add_node(recs, nm->peers[i]->name, nm->peers[i]->dns_name, &nm->peers[i]->addresses);
	for (size_t i = 0; i < nm->dns.n_records; i++) {
		const struct ls_nm_dns_record *r = &nm->dns.records[i];
		size_t j;
		json_t *e;
		bool dup = false;

		json_array_foreach(recs, j, e)
			dup |= !strcmp(json_string_value(json_object_get(e, "name")), r->name) &&
			       !strcmp(json_string_value(json_object_get(e, "value")), r->value);
		if (!dup)
			json_array_append_new(recs, json_pack("{s:s, s:s, s:s}", "name", r->name, "type", r->type,
							      "value", r->value));
	}
	if (!strcmp(format, "json")) {
		json_t *search = json_array(), *res = json_array();
		const char *suffix = nm->dns.suffix ? nm->dns.suffix : nm->network.dns_suffix;

		for (size_t i = 0; i < nm->dns.search.n; i++)
			json_array_append_new(search, json_string(nm->dns.search.v[i]));
		for (size_t i = 0; i < nm->dns.resolvers.n; i++)
			json_array_append_new(res, json_string(nm->dns.resolvers.v[i]));
		doc = json_pack("{s:o, s:o, s:o, s:o}", "suffix", suffix ? json_string(suffix) : json_null(), "search",
				search, "resolvers", res, "records", recs);
		cli->json = true;
		ls_cli_print(cli, doc, NULL);
	} else {
		size_t i;

		printf("# lightscale profile %s, network %s, netmap version %lld\n", p.name,
		       nm->network.name ? nm->network.name : "?", (long long)nm->version);
		json_array_foreach(recs, i, s) {
			const char *name = json_string_value(json_object_get(s, "name"));
			const char *type = json_string_value(json_object_get(s, "type"));
			const char *dot = strchr(name, '.');

			if (strcmp(type, "A") && strcmp(type, "AAAA"))
				continue;
			if (dot)
				printf("%s\t%s %.*s\n", json_string_value(json_object_get(s, "value")), name,
				       (int)(dot - name), name);
			else
				printf("%s\t%s\n", json_string_value(json_object_get(s, "value")), name);
		}
		json_decref(recs);
	}
	ls_netmap_free(nm);
	ls_profile_free(&p);
	return 0;
}

static const char relay_help[] =
	"Usage: lightscale relay list [--profile P] [--state-dir DIR] [--json]\n"
	"\n"
	"Lists the relays the netmap offers: STUN servers, TURN servers (URL and user name;\n"
	"credentials only in --json), stream relays (TCP/TLS) and UDP relays, and which peers\n"
	"have a home relay.\n";

static void relay_text(json_t *doc, FILE *f)
{
	static const char *kinds[] = { "stun", "stream", "udp" };
	json_t *v;
	size_t i;

	for (size_t k = 0; k < 3; k++) {
		json_array_foreach(json_object_get(doc, kinds[k]), i, v)
			fprintf(f, "%-7s %s\n", kinds[k], json_string_value(v));
	}
	json_array_foreach(json_object_get(doc, "turn"), i, v)
		fprintf(f, "%-7s %s (user %s)\n", "turn", json_string_value(json_object_get(v, "url")),
			json_string_value(json_object_get(v, "username")) ?: "-");
	if (!json_array_size(json_object_get(doc, "stun")) && !json_array_size(json_object_get(doc, "stream")) &&
	    !json_array_size(json_object_get(doc, "udp")) && !json_array_size(json_object_get(doc, "turn")))
		fprintf(f, "no relays in the netmap (version %lld)\n",
			(long long)json_integer_value(json_object_get(doc, "version")));
}

int ls_cmd_relay(struct ls_cli *cli, int argc, char **argv)
{
	struct ls_netmap *nm = NULL;
	struct ls_profile p;
	json_t *doc, *homes;
	int ret = ls_cli_simple_opts(cli, argc, argv, relay_help);

	if (ret >= 0)
		return ret;
	if (optind >= argc || strcmp(argv[optind], "list"))
		return ls_cli_usage_error(cli, relay_help, "expected `list'");
	if (ls_cli_profile(cli, &p))
		return 1;
	if (load_netmap(cli, &p, &nm)) {
		ls_profile_free(&p);
		return 1;
	}
	doc = ls_nm_relays_json(&nm->relays);
	homes = json_array();
	for (size_t i = 0; i < nm->n_peers; i++) {
		if (nm->peers[i]->home_relay)
			json_array_append_new(homes, json_pack("{s:I, s:s, s:s}", "id", (json_int_t)nm->peers[i]->id,
							       "name", nm->peers[i]->name, "home_relay",
							       nm->peers[i]->home_relay));
	}
	json_object_set_new(doc, "home_relays", homes);
	json_object_set_new(doc, "version", json_integer(nm->version));
	ls_netmap_free(nm);
	ls_profile_free(&p);
	return ls_cli_print(cli, doc, relay_text);
}

static const char exit_help[] =
	"Usage: lightscale exit-node list [--profile P] [--json]\n"
	"       lightscale exit-node use ID|NAME|auto|none [--profile P]\n"
	"       lightscale exit-node use ID|NAME --cgroup CGROUP [--profile P]\n"
	"       lightscale exit-node use auto --by latency|first [--profile P]\n"
	"\n"
	"`list' measures each exit's latency: the round-trip time of %d ICMP echoes through the\n"
	"tunnel to its overlay address (median of those answered; --no-probe skips it). With\n"
	"`use auto --by latency' (kept in the profile, exit-policy.json) auto means the exit\n"
	"with the lowest RTT; the agent measures again every %d s and moves only when the\n"
	"current exit stops answering or another is faster by 20%% and 5 ms. `--by first'\n"
	"(the default) makes auto the first exit node by id.\n"
	"\n"
	"With --cgroup only the processes of that cgroup (v2) leave through the exit node\n"
	"(per-app routing: the same as lightscale app-route add; see app-route --help).\n"
	"\n"
	"`list' shows the peers that offer an approved default route (0.0.0.0/0, ::/0) and\n"
	"which one is in use. `use' stores the choice in the profile: a peer id or name, `auto'\n"
	"(the first peer offering one) or `none'. A running agent picks the change up at its\n"
	"next netmap or within a few seconds; wg-up reads it too.\n"
	"\n"
	"With several profiles on one machine exactly one owns the default route: `use' makes\n"
	"this profile the owner (the other profile's default route is withdrawn at once and its\n"
	"agent stops installing it), `none' releases it. `list' shows the owner.\n";

static void exit_text(json_t *doc, FILE *f)
{
	json_t *v;
	size_t i;

	fprintf(f, "selection: %s\n", json_string_value(json_object_get(doc, "selection")));
	fprintf(f, "default route owner: %s\n", json_is_string(json_object_get(doc, "default_owner"))
							     ? json_string_value(json_object_get(doc, "default_owner"))
							     : "(none)");
	fprintf(f, "auto picks by: %s\n", json_string_value(json_object_get(doc, "auto_by")));
	json_array_foreach(json_object_get(doc, "exit_nodes"), i, v) {
		json_t *l = json_object_get(v, "latency_ms");
		char lat[48] = "";

		if (json_is_number(l))
			snprintf(lat, sizeof(lat), " %.2f ms", json_number_value(l));
		else if (json_object_get(v, "probe"))
			snprintf(lat, sizeof(lat), " (no answer)");
		fprintf(f, "%s %lld %s%s%s\n", json_is_true(json_object_get(v, "selected")) ? "*" : " ",
			(long long)json_integer_value(json_object_get(v, "id")), json_string_value(json_object_get(v, "name")),
			json_is_true(json_object_get(v, "online")) ? " (online)" : "", lat);
	}
	if (!json_array_size(json_object_get(doc, "exit_nodes")))
		fprintf(f, "no peer offers an exit node\n");
	json_array_foreach(json_object_get(doc, "app_routes"), i, v)
		fprintf(f, "app route: %s -> %s (lightscale app-route list)\n", json_string_value(json_object_get(v, "cgroup")),
			json_string_value(json_object_get(v, "exit")));
}

/* The default route moves to p (take) or is released; a new owner withdraws the other
 * profiles' default routes at once (their agents stop re-adding them at the next check). */
static int take_default(const struct ls_profile *p, bool take)
{
	json_t *st, *e;
	const char *name;
	int ret = ls_mnet_take_default(p->name, take);

	if (ret) {
		fprintf(stderr, "lightscale exit-node use: cannot update the multi-network state: %s\n", strerror(-ret));
		return ret;
	}
	if (!take)
		return 0;
	st = ls_mnet_read();
	json_object_foreach(json_object_get(st, "profiles"), name, e) {
		uint32_t table = (uint32_t)json_integer_value(json_object_get(e, "table"));
		struct ls_rtnl_route *r = NULL;
		size_t n = 0;

		if (!strcmp(name, p->name) || !table || ls_rtnl_route_list(AF_UNSPEC, table, &r, &n))
			continue;
		for (size_t i = 0; i < n; i++) {
			if (r[i].dst.len == 0 && ls_rtnl_route(LS_RTNL_DEL, table, &r[i].dst, r[i].oif) == 0)
				printf("withdrew profile '%s''s default route (table %u)\n", name, table);
		}
		free(r);
	}
	json_decref(st);
	printf("default route owner: %s\n", p->name);
	return 0;
}

int ls_cmd_exit_node(struct ls_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cgroup", required_argument, NULL, 'c' },
		{ "by", required_argument, NULL, 'b' },
		{ "no-probe", no_argument, NULL, 'n' },
		LS_CLI_COMMON_OPTS,
		{ 0 },
	};
	struct ls_netmap *nm = NULL;
	const struct ls_nm_peer *sel;
	struct ls_profile p;
	const char *cgroup = NULL, *by = NULL;
	bool probe = true;
	struct ls_exit_probe *pr = NULL;
	size_t npr = 0;
	char policy[16];
	char why[160];
	json_t *doc, *list;
	int ret, c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ls_cli_common_opt(cli, c, optarg))
			continue;
		if (c == 'c') {
			cgroup = optarg;
		} else if (c == 'b') {
			by = optarg;
		} else if (c == 'n') {
			probe = false;
		} else if (c == 'h') {
			printf(exit_help, LS_EXITSEL_PROBES, LS_EXITSEL_INTERVAL);
			return 0;
		} else {
			return ls_cli_usage_error(cli, exit_help, "invalid option");
		}
	}
	if (optind >= argc || (strcmp(argv[optind], "list") && strcmp(argv[optind], "use")))
		return ls_cli_usage_error(cli, exit_help, "expected `list' or `use ID|NAME|auto|none'");
	if (by && (strcmp(argv[optind], "use") || optind + 1 >= argc || strcmp(argv[optind + 1], "auto") ||
		   (strcmp(by, "latency") && strcmp(by, "first"))))
		return ls_cli_usage_error(cli, exit_help, "--by latency|first goes with `use auto' (got `%s')", by);
	if (cgroup && strcmp(argv[optind], "use"))
		return ls_cli_usage_error(cli, exit_help, "--cgroup goes with `use'");
	if (ls_cli_profile(cli, &p))
		return 1;
	if (!strcmp(argv[optind], "use")) {
		if (optind + 1 >= argc) {
			ls_profile_free(&p);
			return ls_cli_usage_error(cli, exit_help, "`use' needs ID, NAME, auto or none");
		}
		if (cgroup) {
			/* per-app: only this cgroup's sockets; the profile's own choice is unchanged */
			if (!strcmp(argv[optind + 1], "none") || !strcmp(argv[optind + 1], "auto")) {
				ls_profile_free(&p);
				return ls_cli_usage_error(cli, exit_help,
							  "--cgroup needs an exit id or name (app-route remove --cgroup %s drops it)",
							  cgroup);
			}
			ret = ls_cli_app_add(cli, &p, cgroup, argv[optind + 1]);
			ls_profile_free(&p);
			return ret;
		}
		if (strcmp(argv[optind + 1], "none") && strcmp(argv[optind + 1], "auto") &&
		    load_netmap(cli, &p, &nm) == 0) {
			if (!ls_dp_pick_exit(nm, argv[optind + 1], why, sizeof(why))) {
				fprintf(stderr, "lightscale exit-node use: %s (see lightscale exit-node list)\n", why);
				ls_netmap_free(nm);
				ls_profile_free(&p);
				return 1;
			}
		}
		if (by && (ret = ls_exitsel_set_policy(&p, by))) {
			fprintf(stderr, "lightscale exit-node use: cannot save %s/%s: %s\n", p.dir, LS_EXITSEL_FILE,
				strerror(-ret));
			ls_profile_free(&p);
			return 1;
		}
		if (by)
			printf("auto picks by: %s\n", by);
		free(p.exit_node);
		p.exit_node = strdup(argv[optind + 1]);
		ret = ls_profile_save_config(&p);
		if (ret)
			fprintf(stderr, "lightscale exit-node use: cannot save %s/config.json: %s\n", p.dir, strerror(-ret));
		else
			printf("exit node: %s\n", p.exit_node);
		if (!ret)
			ret = take_default(&p, strcmp(p.exit_node, "none") != 0);
		ls_netmap_free(nm);
		ls_profile_free(&p);
		return ret ? 1 : 0;
	}
	if (load_netmap(cli, &p, &nm)) {
		ls_profile_free(&p);
		return 1;
	}
	sel = ls_dp_pick_exit(nm, p.exit_node, why, sizeof(why));
	ls_exitsel_policy(&p, policy, sizeof(policy));
	if (probe && (ret = ls_exitsel_probe(nm, 1000, &pr, &npr)))
		fprintf(stderr, "lightscale exit-node list: cannot probe the exit nodes: %s\n", strerror(-ret));
	if (sel && !strcmp(p.exit_node, "auto") && !strcmp(policy, "latency") && probe) {
		const struct ls_exit_probe *b = ls_exitsel_best(pr, npr, 0);

		if (b) {
			sel = ls_netmap_find_peer(nm, b->id);
			snprintf(why, sizeof(why), "auto by latency: %.64s answers fastest (%.2f ms)", b->name, b->rtt_ms);
		}
	}
	list = json_array();
	for (size_t i = 0; i < nm->n_peers; i++) {
		const struct ls_nm_peer *e = nm->peers[i];
		const struct ls_exit_probe *m = NULL;
		json_t *ej;

		if (!e->exit_node)
			continue;
		for (size_t k = 0; k < npr; k++)
			if (pr[k].id == e->id)
				m = &pr[k];
		ej = json_pack("{s:I, s:s, s:b, s:b}", "id", (json_int_t)e->id, "name", e->name, "online", e->online,
			       "selected", sel == e);
		json_object_set_new(ej, "latency_ms", m && m->rtt_ms >= 0 ? json_real(m->rtt_ms) : json_null());
		if (m)
			json_object_set_new(ej, "probe", json_pack("{s:s, s:i, s:i}", "address", m->addr, "sent", m->sent,
								   "received", m->received));
		json_array_append_new(list, ej);
	}
	free(pr);
	doc = json_pack("{s:s, s:o, s:s, s:s}", "selection", p.exit_node ? p.exit_node : "none", "exit_nodes", list,
			"reason", why, "auto_by", policy);
	{
		/* per-app choices (app-route): cgroup -> exit */
		struct ls_perapp_set set;
		char aerr[256];
		json_t *apps = json_array();

		if (ls_perapp_load(&p, &set, aerr, sizeof(aerr)) == 0) {
			for (size_t k = 0; k < set.n; k++)
				json_array_append_new(apps, json_pack("{s:s, s:s}", "cgroup", set.v[k].cgroup, "exit",
								      set.v[k].exit));
			ls_perapp_set_free(&set);
		}
		json_object_set_new(doc, "app_routes", apps);
	}
	{
		json_t *st = ls_mnet_read();

		json_object_set(doc, "default_owner", json_object_get(st, "default_owner"));
		json_decref(st);
	}
	ls_netmap_free(nm);
	ls_profile_free(&p);
	return ls_cli_print(cli, doc, exit_text);
}

#ifdef LS_HAVE_BPF
#include "userspace/bpf/lsbpf.h"
#else
static const char bpf_help[] =
	"Usage: lightscale bpf status [--profile P] [--json]\n"
	"       lightscale routes [--profile P] [--json]\n"
	"\n"
	"The BPF programs and maps of a profile (pinned under /sys/fs/bpf/lightscale/P) and the\n"
	"per-route counters and conflicts they keep.\n";
#endif

int ls_cmd_bpf_status(struct ls_cli *cli, int argc, char **argv)
{
#ifdef LS_HAVE_BPF
	/* the loader's parser reads the options after the subcommand word: put "status"
	 * first so `bpf --profile P status' works as well as `bpf status --profile P' */
	for (int i = 2; i < argc; i++) {
		const char *prev = argv[i - 1];

		if (!strcmp(argv[i], "status") && strcmp(prev, "--profile") && strcmp(prev, "--state-dir") &&
		    strcmp(prev, "--bpf-pin-dir")) {
			char *w = argv[i];

			memmove(&argv[2], &argv[1], (size_t)(i - 1) * sizeof(*argv));
			argv[1] = w;
			break;
		}
	}
	return ls_cmd_bpf(argc, argv);
#else
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(bpf_help, stdout);
		return 0;
	}
	fprintf(stderr, "lightscale bpf: this build has no BPF loader (userspace/bpf)\n");
	return 1;
#endif
}

static const char routes_help[] =
	"Usage: lightscale routes [--profile P] [--json]\n"
	"\n"
	"The profile's routes as the multi-network state records them: conflicts (a route that\n"
	"overlaps another profile's route on this machine) and the mappings that resolve them\n"
	"(virtual prefix -> real prefix, automatic or --map), then the BPF per-route counters\n"
	"when the profile's BPF data plane is loaded. JSON: {\"profile\", \"mappings\": [{\"real\",\n"
	"\"virtual\", \"conflicts_with\", \"source\"}], \"conflicts\": [...], \"real_routes\" (what the profile\n"
	"installs), \"bpf\", \"routes\": [per-route BPF counters]}.\n";

static void routes_text(json_t *doc, FILE *f)
{
	json_t *m, *r;
	size_t i;

	fprintf(f, "profile %s, BPF: %s\n", json_string_value(json_object_get(doc, "profile")),
		json_string_value(json_object_get(doc, "bpf")));
	json_array_foreach(json_object_get(doc, "conflicts"), i, m) {
		char with[256];

		join_strv(json_object_get(m, "conflicts_with"), with, sizeof(with));
		fprintf(f, "conflict: %s overlaps profile(s) %s\n", json_string_value(json_object_get(m, "real")), with);
	}
	json_array_foreach(json_object_get(doc, "mappings"), i, m) {
		const char *v = json_string_value(json_object_get(m, "virtual"));

		if (v)
			fprintf(f, "mapped:   %s -> %s (%s)\n", v, json_string_value(json_object_get(m, "real")),
				json_string_value(json_object_get(m, "source")));
		else
			fprintf(f, "unmapped: %s: %s\n", json_string_value(json_object_get(m, "real")),
				json_string_value(json_object_get(m, "error")));
	}
	json_array_foreach(json_object_get(doc, "routes"), i, r) {
		fprintf(f, "%-24s %-20s tx %lld rx %lld%s\n", json_string_value(json_object_get(r, "prefix")),
			json_string_value(json_object_get(r, "via")) ?: "",
			(long long)json_integer_value(json_object_get(r, "tx_packets")),
			(long long)json_integer_value(json_object_get(r, "rx_packets")),
			json_integer_value(json_object_get(r, "n_adv")) > 1 ? " (conflict)" : "");
	}
}

int ls_cmd_routes_cli(struct ls_cli *cli, int argc, char **argv)
{
	json_t *doc, *conf = json_array(), *m;
	const char *bpf = "not loaded";
	size_t i;
	int ret = ls_cli_simple_opts(cli, argc, argv, routes_help);

	if (ret >= 0) {
		json_decref(conf);
		return ret;
	}
	doc = ls_mnet_profile_json(cli->profile);
	json_array_foreach(json_object_get(doc, "mappings"), i, m) {
		if (json_array_size(json_object_get(m, "conflicts_with")))
			json_array_append(conf, m);
	}
	json_object_set_new(doc, "conflicts", conf);
	json_object_set_new(doc, "routes", json_array());
#ifdef LS_HAVE_BPF
	{
		char dir[512], *buf = NULL;
		size_t len = 0;
		FILE *f;
		struct stat sb;

		snprintf(dir, sizeof(dir), "%s/%s", LSBPF_PIN_ROOT, cli->profile);
		if (stat(dir, &sb) == 0 && (f = open_memstream(&buf, &len))) {
			int r = lsbpf_routes_print(dir, true, f);
			json_t *arr;

			fclose(f);
			arr = r ? NULL : json_loadb(buf ? buf : "", len, 0, NULL);
			if (json_is_array(arr)) {
				json_object_set_new(doc, "routes", arr);
				bpf = "attached";
			} else {
				json_decref(arr);
				bpf = "pinned maps unreadable";
			}
			free(buf);
		}
	}
#else
	bpf = "unavailable: this build has no BPF loader";
#endif
	if (!strcmp(bpf, "not loaded") && json_array_size(json_object_get(doc, "mappings")))
		bpf = "not loaded: the mappings are not translated";
	json_object_set_new(doc, "bpf", json_string(bpf));
	return ls_cli_print(cli, doc, routes_text);
}
