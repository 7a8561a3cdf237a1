// SPDX-License-Identifier: MIT
/* `lightscale` dispatch: one table of subcommands, like wireguard-tools' wg.c. */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "trust.h"

static const struct {
	const char *name;
	ls_cmd_fn fn;
	const char *description;
} commands[] = {
	{ "init", ls_cmd_init, "create a profile: keys, control URLs, enrollment token" },
	{ "register", ls_cmd_register, "enroll this machine with the control plane" },
	{ "heartbeat", ls_cmd_heartbeat, "report endpoints and listen port once" },
	{ "netmap", ls_cmd_netmap, "fetch (or long-poll) and print the netmap" },
	{ "status", ls_cmd_status, "interface, engine, addresses, peers, routes, exit node" },
	{ "wg-up", ls_cmd_wg_up, "bring the interface up once from the netmap (local testing)" },
	{ "wg-down", ls_cmd_wg_down, "remove everything wg-up or the agent made" },
	{ "agent", ls_cmd_agent, "run the per-profile daemon: long-poll and reconcile" },
	{ "dns", ls_cmd_dns, "dns export --format hosts|json; dns status (the profile's split-DNS resolver)" },
	{ "relay", ls_cmd_relay, "relays from the netmap: relay list" },
	{ "exit-node", ls_cmd_exit_node, "exit-node list | use ID|NAME|auto|none [--cgroup CG] (one profile owns the default route)" },
	{ "ui", ls_cmd_ui, "the agent's local status page and JSON: where it is (ui), --listen, ui serve" },
	{ "l2", ls_cmd_l2, "L2 segments over the overlay (optional): l2 add NAME [--attach IF] | remove | list | apply" },
	{ "app-route", ls_cmd_app_route, "per-app routing: app-route add --cgroup CG --exit X | remove | list | apply" },
	{ "wg-userspace", ls_cmd_wg_userspace, "run the userspace WireGuard engine for an interface" },
	{ "bpf", ls_cmd_bpf_status, "BPF programs and maps: bpf status" },
	{ "routes", ls_cmd_routes_cli, "overlapping routes between profiles, their virtual prefixes, BPF route metrics" },
	{ "audit", ls_cmd_audit, "audit verify: check the netmap against the signed audit log" },
	{ "rotate-key", ls_cmd_rotate_key, "replace this node's WireGuard key (signed by the machine key)" },
};

static void show_usage(FILE *f, const char *prog)
{
	fprintf(f, "Usage: %s <command> [--profile P] [--state-dir DIR] [options]\n\n", prog);
	fprintf(f, "Lightscale: a self-hosted mesh VPN. Available commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-13s %s\n", commands[i].name, commands[i].description);
	fprintf(f, "\nEvery command takes --help. State lives in %s/PROFILE (or --state-dir,\n"
		   "or $LIGHTSCALE_STATE_DIR); the default profile is `%s'.\n",
		LS_DEFAULT_STATE_DIR, LS_DEFAULT_PROFILE);
}

int ls_cli_common_opt(struct ls_cli *cli, int c, const char *arg)
{
	switch (c) {
	case 0x1001:
		cli->profile = arg;
		return 1;
	case 0x1002:
		cli->state_dir = arg;
		return 1;
	case 0x1003:
		cli->json = true;
		return 1;
	}
	return 0;
}

int ls_cli_usage_error(const struct ls_cli *cli, const char *help, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s %s: ", cli->prog, cli->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	if (help)
		fprintf(stderr, "Try `%s %s --help'.\n", cli->prog, cli->cmd);
	return 1;
}

/* Text form of a flat object: one "key: value" line per member. */
void ls_cli_text_kv(json_t *doc, FILE *f)
{
	const char *k;
	json_t *v;

	json_object_foreach(doc, k, v) {
		char *s = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

		fprintf(f, "%s: %s\n", k, json_is_string(v) ? json_string_value(v) : s ? s : "?");
		free(s);
	}
}

int ls_cli_print(const struct ls_cli *cli, json_t *doc, void (*text)(json_t *doc, FILE *f))
{
	if (!doc) {
		fprintf(stderr, "%s %s: out of memory\n", cli->prog, cli->cmd);
		return 1;
	}
	if (!text)
		text = ls_cli_text_kv;
	if (cli->json) {
		char *s = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);

		if (s)
			printf("%s\n", s);
		free(s);
	} else {
		text(doc, stdout);
	}
	json_decref(doc);
	fflush(stdout);
	return 0;
}

int ls_cli_main(int argc, char **argv)
{
	struct ls_cli cli = {
		.prog = "lightscale",
		.profile = LS_DEFAULT_PROFILE,
		.state_dir = getenv("LIGHTSCALE_STATE_DIR") ? getenv("LIGHTSCALE_STATE_DIR") : LS_DEFAULT_STATE_DIR,
	};
	char *hargv[3] = { NULL, "--help", NULL };

	ls_log_init("lightscale");
	if (ls_crypto_init()) {
		fprintf(stderr, "lightscale: libsodium failed to initialise\n");
		return 1;
	}
	if (argc < 2) {
		show_usage(stderr, cli.prog);
		return 1;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		if (argc > 2 && strcmp(argv[1], "help") == 0) {
			hargv[0] = argv[2];
			argv = hargv;
			argc = 2;
			goto dispatch;
		}
		show_usage(stdout, cli.prog);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("lightscale 0.1\n");
		return 0;
	}
	argv++;
	argc--;
dispatch:
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(argv[0], commands[i].name)) {
			cli.cmd = commands[i].name;
			return commands[i].fn(&cli, argc, argv);
		}
	}
	fprintf(stderr, "%s: unknown command `%s'\n\n", cli.prog, argv[0]);
	show_usage(stderr, cli.prog);
	return 1;
}

#include "ctlclient.h"
#include "netmap.h"
#include "profile.h"
#include "status.h"

int ls_cli_netmap(const struct ls_cli *cli, const struct ls_profile *p, struct ls_netmap **nm,
		  char *err, size_t err_size)
{
	json_t *doc = NULL;

	if (ls_localapi_query(cli->profile, "netmap", &doc) == 0) {
		int ret = ls_netmap_parse_json(doc, nm, err, err_size);

		json_decref(doc);
		if (ret == 0)
			return 0;
	}
	return ls_profile_load_netmap(p, nm, err, err_size);
}

int ls_cli_profile(const struct ls_cli *cli, struct ls_profile *p)
{
	char err[512];

	if (ls_profile_load(p, cli->state_dir, cli->profile, err, sizeof(err))) {
		fprintf(stderr, "%s %s: %s\n", cli->prog, cli->cmd, err);
		return 1;
	}
	return 0;
}

int ls_cli_ctl(const struct ls_cli *cli, const struct ls_profile *p, struct ls_ctl *c)
{
	if (!p->control_urls || ls_ctl_init(c, p->control_urls)) {
		fprintf(stderr, "%s %s: profile '%s' has no valid control URL (`%s'): run lightscale init --profile %s --control URL\n",
			cli->prog, cli->cmd, p->name, p->control_urls ? p->control_urls : "", p->name);
		return 1;
	}
	ls_ctl_set_machine_key(c, p->machine_sk);
	/* Lightscale's mark (0x4c53....): no profile's table routes it (exit nodes) */
	ls_ctl_set_fwmark(c, p->fwmark);
	/* an enrollment string's identity and pins: pinned from the first request */
	if (ls_profile_ctl_trust(p, c)) {
		ls_ctl_free(c);
		return 1;
	}
	return 0;
}

int ls_cli_profile_ctl(const struct ls_cli *cli, struct ls_profile *p, struct ls_ctl *c)
{
	if (ls_cli_profile(cli, p))
		return 1;
	if (ls_cli_ctl(cli, p, c)) {
		ls_profile_free(p);
		return 1;
	}
	return 0;
}

int ls_cli_simple_opts(struct ls_cli *cli, int argc, char **argv, const char *help)
{
	static const struct option opts[] = { LS_CLI_COMMON_OPTS, { 0 } };
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ls_cli_common_opt(cli, c, optarg))
			continue;
		if (c == 'h') {
			fputs(help, stdout);
			return 0;
		}
		return ls_cli_usage_error(cli, help, "invalid option");
	}
	return -1;
}

struct ls_netmap *ls_cli_netmap_or_null(const struct ls_cli *cli, const struct ls_profile *p)
{
	struct ls_netmap *nm = NULL;
	char err[512];

	return ls_cli_netmap(cli, p, &nm, err, sizeof(err)) ? NULL : nm;
}

int ls_cli_subcommand(const struct ls_cli *cli, const char *help, int argc, char **argv,
		      const char *const *names)
{
	char expected[256] = "", listed[256] = "";
	size_t n = 0, e = 0, l = 0;

	if (optind < argc)
		for (n = 0; names[n]; n++)
			if (!strcmp(argv[optind], names[n]))
				return (int)n;
	/* "a, b or c" and "a, b, c" */
	for (n = 0; names[n] && e < sizeof(expected) && l < sizeof(listed); n++) {
		const char *sep = !n ? "" : names[n + 1] ? ", " : " or ";

		e += snprintf(expected + e, sizeof(expected) - e, "%s%s", sep, names[n]);
		l += snprintf(listed + l, sizeof(listed) - l, "%s%s", n ? ", " : "", names[n]);
	}
	if (optind >= argc)
		ls_cli_usage_error(cli, help, "expected %s", expected);
	else
		ls_cli_usage_error(cli, help, "unknown subcommand `%s' (%s)", argv[optind], listed);
	return -1;
}
