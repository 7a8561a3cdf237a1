// SPDX-License-Identifier: MIT
/* lightscale app-route add|remove|list|apply: per-app routing (perapp.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dataplane.h"
#include "netmap.h"
#include "perapp.h"
#include "profile.h"
#include "status.h"

static const char app_help[] =
	"Usage: lightscale app-route add --cgroup CGROUP --exit ID|NAME [--profile P]\n"
	"       lightscale app-route remove --cgroup CGROUP [--profile P]\n"
	"       lightscale app-route list [--profile P] [--json]\n"
	"       lightscale app-route apply [--profile P]\n"
	"       (lightscale exit-node use ID|NAME --cgroup CGROUP is the same as add)\n"
	"\n"
	"Per-app routing: only the processes of a cgroup (v2) leave through the chosen exit\n"
	"node; everything else keeps its route. A cgroup/sock_create BPF program attached to\n"
	"the cgroup marks every IPv4/IPv6 socket its processes create; ip rules send that mark\n"
	"to a table whose default route is the profile's interface (the exit peer carries the\n"
	"default), with a blackhole behind it: when the exit is gone the app's traffic stops\n"
	"instead of leaking onto the normal route. Local and overlay destinations (the main\n"
	"table's specific routes) stay reachable.\n"
	"\n"
	"CGROUP is an absolute path in the cgroup2 hierarchy or one relative to its mount\n"
	"(e.g. /sys/fs/cgroup/app.slice/browser or app.slice/browser). Move a process in with\n"
	"`echo PID > CGROUP/cgroup.procs' (or systemd-run --scope -p ...). Sockets made before\n"
	"the rule existed keep their route.\n"
	"\n"
	"The rules are kept in the profile (app-routes.json) and the agent applies them at\n"
	"start and after every netmap; the BPF links are pinned under\n"
	"/sys/fs/bpf/lightscale-perapp/P/, so marking goes on while the agent restarts.\n"
	"`add' and `remove' apply at once too. One interface routes the default to one peer:\n"
	"an app route to exit B while the profile's own exit node is A is shown as a conflict\n"
	"(and its traffic blocked); app routes to exits of different profiles coexist.\n"
	"\n"
	"list --json: {\"profile\", \"app_routes\": [{\"cgroup\", \"exit\", \"exit_id\", \"exit_name\",\n"
	"\"slot\", \"mark\", \"table\", \"priority\", \"state\", \"cgroup_exists\", \"bpf\", \"rules\" (of 4),\n"
	"\"sockets_marked\"}], \"pin_dir\"}.\n";

static void app_text(json_t *doc, FILE *f)
{
	json_t *r;
	size_t i;

	if (!json_array_size(json_object_get(doc, "app_routes"))) {
		fprintf(f, "no app routes in profile '%s'\n", json_string_value(json_object_get(doc, "profile")));
		return;
	}
	json_array_foreach(json_object_get(doc, "app_routes"), i, r) {
		json_t *sm = json_object_get(r, "sockets_marked");
		char n[32] = "?";

		if (json_is_integer(sm))
			snprintf(n, sizeof(n), "%lld", (long long)json_integer_value(sm));

		fprintf(f, "%s -> exit %s\n", json_string_value(json_object_get(r, "cgroup")),
			json_string_value(json_object_get(r, "exit")));
		fprintf(f, "  state:   %s\n", json_string_value(json_object_get(r, "state")));
		fprintf(f, "  mark %s, table %lld, rule priority %lld, %lld/4 rules, bpf %s, %s sockets marked%s\n",
			json_string_value(json_object_get(r, "mark")), (long long)json_integer_value(json_object_get(r, "table")),
			(long long)json_integer_value(json_object_get(r, "priority")),
			(long long)json_integer_value(json_object_get(r, "rules")),
			json_is_true(json_object_get(r, "bpf")) ? "attached" : "not attached",
			n,
			json_is_true(json_object_get(r, "cgroup_exists")) ? "" : " (the cgroup does not exist)");
	}
}

int ls_cli_app_add(struct ls_cli *cli, struct ls_profile *p, const char *cgroup, const char *exit)
{
	struct ls_netmap *nm = ls_cli_netmap_or_null(cli, p);
	char err[512], why[200];
	int ret;

	if (nm && !ls_dp_pick_exit(nm, exit, why, sizeof(why))) {
		fprintf(stderr, "%s %s: %s (see lightscale exit-node list)\n", cli->prog, cli->cmd, why);
		ls_netmap_free(nm);
		return 1;
	}
	ret = ls_perapp_add(p, cgroup, exit, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "%s %s: %s\n", cli->prog, cli->cmd, err);
		ls_netmap_free(nm);
		return 1;
	}
	ret = ls_perapp_apply(p, nm);
	if (ret)
		fprintf(stderr, "%s %s: the rule is saved but not applied: %s\n", cli->prog, cli->cmd, strerror(-ret));
	ret = ls_cli_print(cli, ls_perapp_status(p, nm), app_text) || ret;
	ls_netmap_free(nm);
	return ret ? 1 : 0;
}

int ls_cmd_app_route(struct ls_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cgroup", required_argument, NULL, 'c' },
		{ "exit", required_argument, NULL, 'e' },
		LS_CLI_COMMON_OPTS,
		{ 0 },
	};
	static const char *const subs[] = { "add", "remove", "list", "apply", NULL };
	enum { ADD, REMOVE, LIST, APPLY };
	const char *cgroup = NULL, *exit = NULL;
	struct ls_profile p;
	char err[512];
	int c, sub, ret = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ls_cli_common_opt(cli, c, optarg))
			continue;
		switch (c) {
		case 'c':
			cgroup = optarg;
			break;
		case 'e':
			exit = optarg;
			break;
		case 'h':
			fputs(app_help, stdout);
			return 0;
		default:
			return ls_cli_usage_error(cli, app_help, "invalid option");
		}
	}
	sub = ls_cli_subcommand(cli, app_help, argc, argv, subs);
	if (sub < 0)
		return 1;
	if ((sub == ADD || sub == REMOVE) && !cgroup)
		return ls_cli_usage_error(cli, app_help, "`%s' needs --cgroup CGROUP", subs[sub]);
	if (sub == ADD && !exit)
		return ls_cli_usage_error(cli, app_help, "`add' needs --exit ID|NAME");
	if (ls_cli_profile(cli, &p))
		return 1;
	if (sub == ADD) {
		ret = ls_cli_app_add(cli, &p, cgroup, exit);
	} else if (sub == REMOVE) {
		if (ls_perapp_remove(&p, cgroup, err, sizeof(err))) {
			fprintf(stderr, "%s %s: %s\n", cli->prog, cli->cmd, err);
			ret = 1;
		} else {
			printf("removed the app route of %s\n", cgroup);
		}
	} else {
		struct ls_netmap *nm = ls_cli_netmap_or_null(cli, &p);

		if (sub == APPLY && (ret = ls_perapp_apply(&p, nm)))
			fprintf(stderr, "%s %s: %s\n", cli->prog, cli->cmd, strerror(-ret));
		ret = ls_cli_print(cli, ls_perapp_status(&p, nm), app_text) || ret;
		ls_netmap_free(nm);
	}
	ls_profile_free(&p);
	return ret ? 1 : 0;
}
