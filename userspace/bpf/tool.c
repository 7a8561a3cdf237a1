// SPDX-License-Identifier: MIT
/*
 * lightscale-bpf: the BPF loader library as a command, for labs and operators before (and
 * beside) the agent.
 *
 *   lightscale-bpf [--profile P | --pin-dir D] attach IFNAME overlay|lan|underlay [--mode M]
 *   lightscale-bpf ... detach IFNAME
 *   lightscale-bpf ... set STATE...        reconcile the maps with STATE (the whole state)
 *   lightscale-bpf ... run STATE...        set, then stay (GC every second) until killed
 *   lightscale-bpf ... status [--json] | routes [--json] | gc | down
 *   lightscale-bpf net [--json]            every attachment of this netns, ours or not
 *   lightscale-bpf return-route OVERLAY_PREFIX ROUTER_LAN_ADDR
 *
 * STATE options:
 *   --stages a,b,..       translate-client translate-router snat isolate filter metrics stun
 *                         fast-forward
 *   --map VIRT=REAL       1:1 translation (repeat)
 *   --route PFX[,NET[,NADV[,NAME]]]   route for metrics/isolation (repeat)
 *   --iface IF:NET[:overlay|lan|snat-from|fwd-target,...]   interface's network and roles
 *   --allow A:B           open forwarding between networks A and B, both ways (repeat)
 *   --rule SRC|DST|PROTO|PORTS   filter rule (comma lists of CIDRs or *) (repeat)
 *   --snat4 ADDR --snat6 ADDR --ports LO-HI --wg-port N --stun-port N
 *   --snat-iface IF=ADDR  SNAT source for packets leaving on IF (repeat; per family;
 *                         --snat4/--snat6 apply where an interface has none)
 *   --udp-timeout S --tcp-timeout S --icmp-timeout S
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "userspace/bpf/lsbpf.h"
#include "userspace/bpf/lsbpf_int.h"

static void usage(FILE *f)
{
	fputs("usage: lightscale-bpf [--profile P | --pin-dir D] [--overlay-l2 14] COMMAND ...\n"
	      "  attach IFNAME overlay|lan|underlay [--mode auto|tcx|clsact|xdp]\n"
	      "  detach IFNAME\n"
	      "  set STATE...      reconcile the maps (STATE: --stages --map --route --iface --allow\n"
	      "                    --rule --snat4 --snat6 --snat-iface IF=ADDR --ports --wg-port\n"
	      "                    --stun-port --*-timeout)\n"
	      "  run STATE...      set, then keep running (GC each second) until killed\n"
	      "  status [--json] | routes [--json] | gc | down\n"
	      "  net [--json]      every BPF program on every interface of this netns (XDP, tcx,\n"
	      "                    clsact), whoever attached it\n"
	      "  return-route OVERLAY_PREFIX ROUTER_LAN_ADDR\n",
	      f);
}

static int parse_flags(const char *s, uint32_t *out)
{
	static const struct {
		const char *n;
		uint32_t f;
	} names[] = {
		{ "translate-client", LS_CFG_XLATE_CLIENT }, { "translate-router", LS_CFG_XLATE_ROUTER },
		{ "snat", LS_CFG_SNAT }, { "isolate", LS_CFG_ISOLATE }, { "filter", LS_CFG_FILTER },
		{ "metrics", LS_CFG_METRICS }, { "stun", LS_CFG_STUN }, { "fast-forward", LS_CFG_FWD_FAST },
	};
	char *copy = strdup(s), *save = NULL;
	int r = 0;
	*out = 0;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		size_t i;
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (!strcmp(t, names[i].n))
				break;
		if (i == sizeof(names) / sizeof(names[0])) {
			fprintf(stderr, "lightscale-bpf: unknown stage `%s'\n", t);
			r = -EINVAL;
			break;
		}
		*out |= names[i].f;
	}
	free(copy);
	return r;
}

static int parse_state(int argc, char **argv, struct lsbpf_state *s)
{
	static const struct option opts[] = {
		{ "stages", required_argument, NULL, 'S' }, { "map", required_argument, NULL, 'm' },
		{ "route", required_argument, NULL, 'r' },  { "iface", required_argument, NULL, 'i' },
		{ "allow", required_argument, NULL, 'a' },  { "rule", required_argument, NULL, 'R' },
		{ "snat4", required_argument, NULL, '4' },  { "snat6", required_argument, NULL, '6' },
		{ "ports", required_argument, NULL, 'P' },  { "wg-port", required_argument, NULL, 'w' },
		{ "stun-port", required_argument, NULL, 's' }, { "udp-timeout", required_argument, NULL, 'U' },
		{ "tcp-timeout", required_argument, NULL, 'T' }, { "icmp-timeout", required_argument, NULL, 'I' },
		{ "snat-iface", required_argument, NULL, 'F' },
		{ 0 },
	};
	int c, r = 0;
	optind = 1;
	while (!r && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char buf[512], *f[4] = {};
		unsigned a, b;
		switch (c) {
		case 'S': r = parse_flags(optarg, &s->flags); break;
		case 'm': r = lsbpf_state_add_map_arg(s, optarg); break;
		case 'r': {
			snprintf(buf, sizeof(buf), "%s", optarg);
			char *save = NULL;
			for (int i = 0; i < 4; i++)
				f[i] = strtok_r(i ? NULL : buf, ",", &save);
			r = lsbpf_state_add_route(s, f[0] ? f[0] : "", f[1] ? atoi(f[1]) : 0, f[2] ? atoi(f[2]) : 1, 0, f[3]);
			break;
		}
		case 'i': {
			snprintf(buf, sizeof(buf), "%s", optarg);
			char *save = NULL;
			for (int i = 0; i < 3; i++)
				f[i] = strtok_r(i ? NULL : buf, ":", &save);
			uint32_t fl = 0;
			if (f[2]) {
				fl |= strstr(f[2], "overlay") ? LS_IF_OVERLAY : 0;
				fl |= strstr(f[2], "lan") ? LS_IF_LAN : 0;
				fl |= strstr(f[2], "snat-from") ? LS_IF_SNAT_FROM : 0;
				fl |= strstr(f[2], "fwd-target") ? LS_IF_FWD_TARGET : 0;
			}
			r = f[0] && f[1] ? lsbpf_state_add_iface(s, f[0], atoi(f[1]), fl) : -EINVAL;
			if (r)
				fprintf(stderr, "lightscale-bpf: invalid --iface `%s' (IF:NET[:roles])\n", optarg);
			break;
		}
		case 'a':
			if (sscanf(optarg, "%u:%u", &a, &b) != 2) {
				fprintf(stderr, "lightscale-bpf: invalid --allow `%s' (SRC_NET:DST_NET)\n", optarg);
				r = -EINVAL;
			} else {
				r = lsbpf_state_add_allow(s, a, b);
			}
			break;
		case 'R': {
			snprintf(buf, sizeof(buf), "%s", optarg);
			char *save = NULL;
			for (int i = 0; i < 4; i++)
				f[i] = strtok_r(i ? NULL : buf, "|", &save);
			if (!f[0] || !f[1]) {
				fprintf(stderr, "lightscale-bpf: invalid --rule `%s' (SRC|DST|PROTO|PORTS)\n", optarg);
				r = -EINVAL;
			} else {
				r = lsbpf_state_add_rule(s, f[0], f[1], f[2], f[3]);
			}
			break;
		}
		case '4':
			r = ls_prefix_parse(optarg, &s->snat4, true) || s->snat4.family != AF_INET ? -EINVAL : 0;
			if (r)
				fprintf(stderr, "lightscale-bpf: invalid --snat4 `%s'\n", optarg);
			break;
		case '6':
			r = ls_prefix_parse(optarg, &s->snat6, true) || s->snat6.family != AF_INET6 ? -EINVAL : 0;
			if (r)
				fprintf(stderr, "lightscale-bpf: invalid --snat6 `%s'\n", optarg);
			break;
		case 'P':
			if (sscanf(optarg, "%u-%u", &a, &b) != 2 || !a || a > b || b > 65535) {
				fprintf(stderr, "lightscale-bpf: invalid --ports `%s' (LO-HI)\n", optarg);
				r = -EINVAL;
			}
			s->snat_port_lo = a;
			s->snat_port_hi = b;
			break;
		case 'F': r = lsbpf_state_add_iface_snat_arg(s, optarg); break;
		case 'w': s->wg_port = atoi(optarg); break;
		case 's': s->stun_port = atoi(optarg); break;
		case 'U': s->udp_timeout = atoi(optarg); break;
		case 'T': s->tcp_timeout = atoi(optarg); break;
		case 'I': s->icmp_timeout = atoi(optarg); break;
		default:
			fprintf(stderr, "lightscale-bpf: unknown option `%s'\n", argv[optind - 1]);
			r = -EINVAL;
		}
	}
	if (!r && optind < argc) {
		fprintf(stderr, "lightscale-bpf: unexpected `%s'\n", argv[optind]);
		r = -EINVAL;
	}
	return r;
}

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
	stop = sig;
}

int main(int argc, char **argv)
{
	struct lsbpf_opts o = { .profile = "default" };
	struct lsbpf *b = NULL;
	struct lsbpf_state *s = NULL;
	char dir[PATH_MAX];
	int i = 1, r = 0;

	ls_log_init("lightscale-bpf");
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--profile") && i + 1 < argc)
			o.profile = argv[++i];
		else if ((!strcmp(argv[i], "--pin-dir") || !strcmp(argv[i], "--bpf-pin-dir")) && i + 1 < argc)
			o.pin_dir = argv[++i];
		else if (!strcmp(argv[i], "--overlay-l2") && i + 1 < argc) {
			/* an Ethernet stand-in for the overlay (veth) in labs: 14 */
			o.force_l2 = true;
			o.overlay_l2 = atoi(argv[++i]);
			o.lan_l2 = o.underlay_l2 = 14;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "lightscale-bpf: unknown option `%s'\n", argv[i]);
			usage(stderr);
			return 1;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 1;
	}
	const char *cmd = argv[i];
	char **av = argv + i;
	int ac = argc - i;
	if (o.pin_dir)
		snprintf(dir, sizeof(dir), "%s", o.pin_dir);
	else if (lsbpf_default_pin_dir(o.profile, dir, sizeof(dir)))
		return 1;

	if (!strcmp(cmd, "status") || !strcmp(cmd, "routes")) {
		bool json = ac > 1 && !strcmp(av[1], "--json");
		return (!strcmp(cmd, "status") ? lsbpf_status_print(dir, json, stdout)
					       : lsbpf_routes_print(dir, json, stdout)) ? 1 : 0;
	}
	if (!strcmp(cmd, "net"))
		return lsbpf_net_print(ac > 1 && !strcmp(av[1], "--json"), stdout) ? 1 : 0;
	if (!strcmp(cmd, "return-route")) {
		char out[256];
		if (ac != 3) {
			usage(stderr);
			return 1;
		}
		if (lsbpf_return_route(av[1], av[2], out, sizeof(out)))
			return 1;
		printf("%s\n", out);
		return 0;
	}
	if (strcmp(cmd, "attach") && strcmp(cmd, "detach") && strcmp(cmd, "set") && strcmp(cmd, "run") &&
	    strcmp(cmd, "gc") && strcmp(cmd, "down")) {
		fprintf(stderr, "lightscale-bpf: unknown command `%s'\n", cmd);
		usage(stderr);
		return 1;
	}
	if (!strcmp(cmd, "set") || !strcmp(cmd, "run")) {
		s = lsbpf_state_new();
		if (!s || parse_state(ac, av, s)) {
			lsbpf_state_free(s);
			return 1;
		}
	}
	if ((r = lsbpf_open(&o, &b)))
		goto out;
	if (!strcmp(cmd, "attach")) {
		enum lsbpf_role role;
		enum lsbpf_mode mode = LSBPF_MODE_AUTO;
		if (ac < 3) {
			usage(stderr);
			r = -EINVAL;
			goto out;
		}
		if (!strcmp(av[2], "overlay"))
			role = LSBPF_ROLE_OVERLAY;
		else if (!strcmp(av[2], "lan"))
			role = LSBPF_ROLE_LAN;
		else if (!strcmp(av[2], "underlay"))
			role = LSBPF_ROLE_UNDERLAY;
		else {
			fprintf(stderr, "lightscale-bpf: unknown role `%s'\n", av[2]);
			r = -EINVAL;
			goto out;
		}
		if (ac >= 5 && !strcmp(av[3], "--mode")) {
			if (!strcmp(av[4], "tcx"))
				mode = LSBPF_MODE_TCX;
			else if (!strcmp(av[4], "clsact"))
				mode = LSBPF_MODE_CLSACT;
			else if (!strcmp(av[4], "xdp"))
				mode = LSBPF_MODE_XDP;
			else if (strcmp(av[4], "auto")) {
				fprintf(stderr, "lightscale-bpf: unknown mode `%s'\n", av[4]);
				r = -EINVAL;
				goto out;
			}
		}
		r = lsbpf_attach(b, av[1], role, mode);
	} else if (!strcmp(cmd, "detach")) {
		r = ac < 2 ? -EINVAL : lsbpf_detach(b, av[1]);
	} else if (!strcmp(cmd, "set")) {
		r = lsbpf_apply(b, s);
	} else if (!strcmp(cmd, "run")) {
		r = lsbpf_apply(b, s);
		if (!r) {
			signal(SIGTERM, on_signal);
			signal(SIGINT, on_signal);
			printf("ready\n");
			fflush(stdout);
			while (!stop) {
				sleep(1);
				lsbpf_gc(b, NULL);
			}
		}
	} else if (!strcmp(cmd, "gc")) {
		size_t n = 0;
		r = lsbpf_gc(b, &n);
		printf("removed %zu idle entries\n", n);
	} else if (!strcmp(cmd, "down")) {
		r = lsbpf_destroy(b);
		b = NULL;
	}
out:
	lsbpf_state_free(s);
	lsbpf_close(b);
	return r ? 1 : 0;
}
