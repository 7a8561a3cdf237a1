// SPDX-License-Identifier: MIT
/* lightscale l2 add|remove|list|apply: L2 segments over the overlay (l2seg.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "l2seg.h"
#include "netmap.h"
#include "profile.h"
#include "status.h"

static const char l2_help[] =
	"Usage: lightscale l2 add NAME [--attach IF[,IF]] [--peers NAME|ID[,...]] [--vni N] [--profile P]\n"
	"       lightscale l2 remove NAME [--profile P]\n"
	"       lightscale l2 list [--profile P] [--json]\n"
	"       lightscale l2 apply [--profile P]\n"
	"\n"
	"L2 segments are optional and off by default. `add' enables the Ethernet segment NAME\n"
	"on this node: a bridge lsbr-NAME with a VXLAN device lsvx-NAME that carries the\n"
	"segment to the other nodes of the network that enable the same NAME, over the overlay\n"
	"(UDP 4789 to their overlay addresses, inside WireGuard). Attach local ports with\n"
	"--attach (or put them in lsbr-NAME yourself); ARP, DHCP and every other frame cross as\n"
	"if the nodes shared a switch. Broadcasts go to every peer (--peers limits that to the\n"
	"named ones); unicast MACs are learned. The VNI is derived from the network and NAME\n"
	"(--vni overrides it on every node). The segment's MTU is the overlay MTU minus 50.\n"
	"\n"
	"The segments are kept in the profile (l2.json); the agent applies them at start and\n"
	"after every netmap, `add' and `remove' at once. A network ACL must allow UDP 4789\n"
	"between the nodes for the segment to pass.\n"
	"\n"
	"list --json: {\"profile\", \"segments\": [{\"name\", \"vni\", \"bridge\", \"vxlan\", \"up\", \"mtu\",\n"
	"\"local\", \"attach\", \"peers\": [{\"name\", \"dst\"}], \"error\"?}]}.\n";

static void l2_text(json_t *doc, FILE *f)
{
	json_t *s, *p;
	size_t i, k;

	if (json_is_string(json_object_get(doc, "error")))
		fprintf(f, "error: %s\n", json_string_value(json_object_get(doc, "error")));
	if (!json_array_size(json_object_get(doc, "segments")))
		fprintf(f, "no L2 segments in profile '%s' (they are off unless enabled: lightscale l2 add NAME)\n",
			json_string_value(json_object_get(doc, "profile")) ?: "?");
	json_array_foreach(json_object_get(doc, "segments"), i, s) {
		fprintf(f, "segment %s: VNI %lld, %s + %s, %s, MTU %lld, local %s\n",
			json_string_value(json_object_get(s, "name")), (long long)json_integer_value(json_object_get(s, "vni")),
			json_string_value(json_object_get(s, "bridge")), json_string_value(json_object_get(s, "vxlan")),
			json_is_true(json_object_get(s, "up")) ? "up" : "down",
			(long long)json_integer_value(json_object_get(s, "mtu")),
			json_string_value(json_object_get(s, "local")) ?: "-");
		if (json_is_string(json_object_get(s, "error")))
			fprintf(f, "  error: %s\n", json_string_value(json_object_get(s, "error")));
		json_array_foreach(json_object_get(s, "peers"), k, p)
			fprintf(f, "  peer %s via %s\n", json_string_value(json_object_get(p, "name")),
				json_string_value(json_object_get(p, "dst")));
	}
}

int ls_cmd_l2(struct ls_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "attach", required_argument, NULL, 'a' },
		{ "peers", required_argument, NULL, 'p' },
		{ "vni", required_argument, NULL, 'v' },
		LS_CLI_COMMON_OPTS,
		{ 0 },
	};
	static const char *const subs[] = { "add", "remove", "list", "apply", NULL };
	enum { ADD, REMOVE, LIST, APPLY };
	const char *attach = NULL, *peers = NULL;
	unsigned long vni = 0;
	struct ls_profile p;
	struct ls_netmap *nm;
	char err[512], *end;
	int c, sub, ret = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ls_cli_common_opt(cli, c, optarg))
			continue;
		switch (c) {
		case 'a':
			attach = optarg;
			break;
		case 'p':
			peers = optarg;
			break;
		case 'v':
			errno = 0;
			vni = strtoul(optarg, &end, 10);
			if (errno || *end || vni < 1 || vni > 0xffffff)
				return ls_cli_usage_error(cli, l2_help, "invalid VNI `%s' (1..16777215)", optarg);
			break;
		case 'h':
			fputs(l2_help, stdout);
			return 0;
		default:
			return ls_cli_usage_error(cli, l2_help, "invalid option");
		}
	}
	sub = ls_cli_subcommand(cli, l2_help, argc, argv, subs);
	if (sub < 0)
		return 1;
	if ((sub == ADD || sub == REMOVE) && optind + 1 >= argc)
		return ls_cli_usage_error(cli, l2_help, "`%s' needs a segment NAME", subs[sub]);
	if (ls_cli_profile(cli, &p))
		return 1;
	nm = ls_cli_netmap_or_null(cli, &p);
	if (sub == ADD) {
		if (ls_l2seg_add(&p, argv[optind + 1], (uint32_t)vni, peers, attach, err, sizeof(err))) {
			fprintf(stderr, "%s %s: %s\n", cli->prog, cli->cmd, err);
			ret = 1;
			goto cleanup;
		}
	} else if (sub == REMOVE) {
		if (ls_l2seg_remove(&p, argv[optind + 1], err, sizeof(err))) {
			fprintf(stderr, "%s %s: %s\n", cli->prog, cli->cmd, err);
			ret = 1;
		} else {
			printf("removed L2 segment %s\n", argv[optind + 1]);
		}
		goto cleanup;
	}
	if (sub != LIST && (ret = ls_l2seg_apply(&p, nm)))
		fprintf(stderr, "%s %s: not everything applied: %s (see the errors above)\n", cli->prog, cli->cmd,
			strerror(-ret));
	ret = ls_cli_print(cli, ls_l2seg_status(&p, nm), l2_text) || ret;
cleanup:
	ls_netmap_free(nm);
	ls_profile_free(&p);
	return ret ? 1 : 0;
}
