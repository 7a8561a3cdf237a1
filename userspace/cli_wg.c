// SPDX-License-Identifier: MIT
/* lightscale wg-up | wg-down | wg-userspace */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ctlclient.h"
#include "dataplane.h"
#include "netmap.h"
#include "profile.h"
#include "status.h"

#ifdef LS_HAVE_WGU
#include "userspace/wgu/wgu.h"
#endif

static const char up_help[] =
	"Usage: lightscale wg-up [--apply-routes] [--exit-node ID|NAME|auto|none]\n"
	"                        [--engine auto|kernel|userspace] [--no-fetch] [--profile P] [--json]\n"
	"\n"
	"Brings the profile's interface up once, for local testing: fetches the netmap (or uses\n"
	"the cached one with --no-fetch or when the control plane cannot be reached), creates or\n"
	"adopts ls-P, sets the key, listen port, fwmark and MTU, the peers and their AllowedIPs\n"
	"and endpoints, and the overlay addresses. It does not follow netmap changes (the agent\n"
	"does). Prints the resulting status.\n"
	"\n"
	"  --apply-routes   routes for peers' advertised subnets in the profile's table, with\n"
	"                   its ip rules (routes that collide with the host's are refused)\n"
	"  --exit-node X    send the default route through peer X (id or name), or `auto'\n"
	"                   (the first peer offering one); implies the rules\n"
	"  --engine E       auto (default: kernel when available), kernel or userspace\n"
	"  --no-masquerade  do not masquerade overlay traffic on a router or exit node\n";

int ls_cmd_wg_up(struct ls_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "apply-routes", no_argument, NULL, 'r' },
		{ "exit-node", required_argument, NULL, 'x' },
		{ "engine", required_argument, NULL, 'e' },
		{ "no-fetch", no_argument, NULL, 'n' },
		{ "no-masquerade", no_argument, NULL, 'M' },
		LS_CLI_COMMON_OPTS,
		{ 0 },
	};
	struct ls_dp_opts o = { .engine = "auto" };
	struct ls_netmap *nm = NULL;
	struct ls_profile p;
	struct ls_dp dp;
	bool no_fetch = false;
	char err[512];
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ls_cli_common_opt(cli, c, optarg))
			continue;
		switch (c) {
		case 'r': o.apply_routes = true; break;
		case 'x': o.exit_node = optarg; break;
		case 'e': o.engine = optarg; break;
		case 'n': no_fetch = true; break;
		case 'M': o.no_masquerade = true; break;
		case 'h':
			fputs(up_help, stdout);
			return 0;
		default:
			return ls_cli_usage_error(cli, up_help, "invalid option");
		}
	}
	if (ls_cli_profile(cli, &p))
		return 1;
	if (!o.exit_node)
		o.exit_node = p.exit_node;
	if (!no_fetch) {
		struct ls_ctl_response resp = { 0 };
		struct ls_ctl_error cerr;
		struct ls_ctl ctl;

		if (ls_cli_ctl(cli, &p, &ctl) == 0) {
			if (ls_ctl_netmap(&ctl, 0, 0, &resp, &cerr) == 0 &&
			    ls_netmap_parse_json(resp.json, &nm, err, sizeof(err)) == 0 && nm->full) {
				ls_profile_save_netmap(&p, nm);
			} else {
				if (!nm)
					ls_ctl_error_print(&cerr, "lightscale wg-up: fetching the netmap");
				ls_netmap_free(nm);
				nm = NULL;
			}
			ls_ctl_response_free(&resp);
			ls_ctl_free(&ctl);
		}
	}
	if (!nm && ls_profile_load_netmap(&p, &nm, err, sizeof(err))) {
		fprintf(stderr, "lightscale wg-up: %s\n", err);
		ls_profile_free(&p);
		return 1;
	}
	ret = ls_dp_open(&dp, &p, &o);
	if (!ret)
		ret = ls_dp_sync(&dp, nm);
	if (ret) {
		fprintf(stderr, "lightscale wg-up: bringing up %s failed: %s\n", p.ifname, strerror(-ret));
	} else {
		json_t *st = ls_status_json(&p, &dp, nm);

		json_object_set_new(st, "agent", json_false());
		ls_cli_print(cli, st, ls_status_text);
	}
	ls_dp_close(&dp);
	ls_netmap_free(nm);
	ls_profile_free(&p);
	return ret ? 1 : 0;
}

static const char down_help[] =
	"Usage: lightscale wg-down [--profile P] [--state-dir DIR]\n"
	"\n"
	"Removes everything wg-up or the agent made for the profile: its ip rules (IPv4 and\n"
	"IPv6), the routes of its table, its nftables table, the userspace engine process or\n"
	"kernel device, and the interface with its addresses. Safe to run twice.\n";

int ls_cmd_wg_down(struct ls_cli *cli, int argc, char **argv)
{
	struct ls_profile p;
	int ret = ls_cli_simple_opts(cli, argc, argv, down_help);

	if (ret >= 0)
		return ret;
	if (ls_cli_profile(cli, &p))
		return 1;
	ret = ls_dp_down(&p);
	if (ret)
		fprintf(stderr, "lightscale wg-down: removing %s: %s\n", p.ifname, strerror(-ret));
	ls_profile_free(&p);
	return ret ? 1 : 0;
}

static const char us_help[] =
	"Usage: lightscale wg-userspace [-f] IFNAME\n"
	"\n"
	"Runs the userspace WireGuard engine for IFNAME: a TUN device and the UAPI socket\n"
	"/var/run/wireguard/IFNAME.sock (configure it with `wg' or the agent). The agent starts\n"
	"it on its own; set LIGHTSCALE_WG_USERSPACE=/usr/bin/wireguard-go to use wireguard-go.\n";

int ls_cmd_wg_userspace(struct ls_cli *cli, int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(us_help, stdout);
		return 0;
	}
#ifdef LS_HAVE_WGU
	return wgu_cmd_main(argc, argv);
#else
	{
		const char *path = getenv("LIGHTSCALE_WG_USERSPACE");

		if (argc < 2)
			return ls_cli_usage_error(cli, us_help, "missing IFNAME");
		if (!path || !*path)
			path = "/usr/bin/wireguard-go";
		execl(path, path, "-f", argv[argc - 1], (char *)NULL);
		fprintf(stderr, "lightscale wg-userspace: this build has no built-in engine and `%s' cannot run: %s\n",
			path, strerror(errno));
		return 1;
	}
#endif
}
