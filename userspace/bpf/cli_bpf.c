// SPDX-License-Identifier: MIT
/* `lightscale bpf status [--json]` and `lightscale routes [--json]`. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "userspace/bpf/lsbpf.h"
#include "userspace/bpf/lsbpf_int.h"

static const char bpf_help[] =
	"usage: lightscale bpf status [--json] [--profile NAME] [--bpf-pin-dir DIR]\n"
	"  attached programs per interface and mode, map sizes and fill, counters by reason\n"
	"       lightscale bpf net [--json]\n"
	"  every BPF program on every interface of this netns (XDP, tcx, clsact), ours or not\n";
static const char routes_help[] =
	"usage: lightscale routes [--json] [--profile NAME] [--bpf-pin-dir DIR]\n"
	"  routes with packets, bytes and conflict counts (from the pinned BPF maps)\n";

/* Parses --json/--profile/--bpf-pin-dir; returns 0, 1 (usage error) or 2 (--help). */
static int parse_common(int argc, char **argv, const char *help, bool *json, char *dir, size_t size,
			int *first_arg)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "profile", required_argument, NULL, 'p' },
		{ "bpf-pin-dir", required_argument, NULL, 'd' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *profile = "default", *pin = NULL;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': *json = true; break;
		case 'p': profile = optarg; break;
		case 'd': pin = optarg; break;
		case 's': break;
		case 'h': fputs(help, stdout); return 2;
		default:
			fprintf(stderr, "lightscale %s: unknown option `%s'\n%s", argv[0], argv[optind - 1], help);
			return 1;
		}
	}
	*first_arg = optind;
	if (pin) {
		snprintf(dir, size, "%s", pin);
		return 0;
	}
	return lsbpf_default_pin_dir(profile, dir, size) ? 1 : 0;
}

int ls_cmd_bpf(int argc, char **argv)
{
	char dir[PATH_MAX];
	bool json = false;
	int first, r = parse_common(argc, argv, bpf_help, &json, dir, sizeof(dir), &first);

	if (r)
		return r == 2 ? 0 : 1;
	/* options may come before or after "status" / "net" */
	bool net = first < argc && !strcmp(argv[first], "net");
	if (first < argc && strcmp(argv[first], "status") && !net) {
		fprintf(stderr, "lightscale bpf: unknown subcommand `%s'\n%s", argv[first], bpf_help);
		return 1;
	}
	if (first < argc) {
		argv[first] = argv[0];
		r = parse_common(argc - first, argv + first, bpf_help, &json, dir, sizeof(dir), &first);
		if (r)
			return r == 2 ? 0 : 1;
	}
	if (net)
		return lsbpf_net_print(json, stdout) ? 1 : 0;
	return lsbpf_status_print(dir, json, stdout) ? 1 : 0;
}

int ls_cmd_routes(int argc, char **argv)
{
	char dir[PATH_MAX];
	bool json = false;
	int first, r = parse_common(argc, argv, routes_help, &json, dir, sizeof(dir), &first);

	if (r)
		return r == 2 ? 0 : 1;
	return lsbpf_routes_print(dir, json, stdout) ? 1 : 0;
}
