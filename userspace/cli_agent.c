// SPDX-License-Identifier: MIT
/* lightscale agent */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "bpfglue.h"
#include "cli.h"
#include "log.h"
#include "mnet.h"
#include "profile.h"
#include "util.h"

static const char help[] =
	"Usage: lightscale agent [--profile P] [--engine auto|kernel|userspace] [--apply-routes]\n"
	"                        [--exit-node ID|NAME|auto|none] [--foreground] [--down-on-exit]\n"
	"                        [--poll-wait S] [--heartbeat S] [--no-masquerade] [--state-dir DIR]\n"
	"                        [--bpf [--fast-forward] [--snat-subnet-routes [--snat-ports LO-HI]\n"
	"                        [--snat-timeouts TCP,UDP,ICMP]] | --no-bpf]\n"
	"                        [--map VIRTUAL=REAL]... [--allow-forward PROFILE]...\n"
	"                        [--virtual-pool CIDR]... [--no-dns] [--dns-listen ADDR] [--dns-port N]\n"
	"                        [--dns-upstream ADDR[:PORT]]... [--manage-resolv-conf]\n"
	"\n"
	"Runs the profile's daemon: reapplies the cached netmap, registers if needed, long-polls\n"
	"the netmap and reconciles the WireGuard interface ls-P (peers, AllowedIPs, endpoints,\n"
	"addresses; with --apply-routes the advertised routes, the exit node's default route and\n"
	"the ip rules that keep the engine's and the agent's own traffic outside the tunnel).\n"
	"Changes apply incrementally: other peers are not disturbed. It heartbeats its endpoints\n"
	"every --heartbeat seconds (default 30) and when the addresses change, re-applies rules,\n"
	"routes and addresses that another program deletes, translates overlay traffic leaving\n"
	"for the LANs and the internet when this node advertises routes (see Subnet routers and\n"
	"exit nodes below), and answers `lightscale status' and `netmap' on\n"
	"/run/lightscale/P.sock. The userspace engine runs as its own process, so the tunnel\n"
	"outlives the agent; a restarted agent adopts it. SIGTERM leaves the interface up unless\n"
	"--down-on-exit. Without --foreground the agent detaches (logs in /run/lightscale/P.log).\n"
	"\n"
	"  --engine E       auto (kernel when available, else userspace), kernel or userspace;\n"
	"                   the userspace engine is `lightscale wg-userspace', or the program in\n"
	"                   $LIGHTSCALE_WG_USERSPACE (e.g. /usr/bin/wireguard-go)\n"
	"  --exit-node X    override the profile's exit node choice (lightscale exit-node use)\n"
	"  --poll-wait S    long-poll hold time asked of the server (default 60)\n"
	"  --bpf            attach the BPF data plane to ls-P (pinned under\n"
	"                   /sys/fs/bpf/lightscale/P): per-route counters and conflicts for\n"
	"                   `lightscale routes'; the programs keep running across restarts\n"
	"  --fast-forward   with --bpf, on a subnet router (off by default): the LAN interfaces\n"
	"                   behind this node's advertised routes (those holding an address in\n"
	"                   one) get the LAN programs and become fast-forwarding targets, and\n"
	"                   the programs forward to them themselves (FIB lookup + redirect,\n"
	"                   skipping the stack's forwarding path and netfilter FORWARD and\n"
	"                   POSTROUTING, so nft rules there no longer see those packets).\n"
	"                   Packets from the overlay (an L3 device) are forwarded too: an\n"
	"                   Ethernet header is pushed, and isolation and --snat-subnet-routes'\n"
	"                   SNAT run in the same program before the redirect. `lightscale bpf\n"
	"                   status' shows the flag and the counters (forward/forwarded_in_bpf).\n"
	"                   With --snat-subnet-routes on an exit node, packets arriving on the\n"
	"                   uplink for a LAN are fast-forwarded too (past netfilter FORWARD)\n"
	"\n"
	"Subnet routers and exit nodes (this node advertises routes): overlay traffic leaving\n"
	"for a LAN or, on an exit node, for the internet needs a way back. Three ways:\n"
	"  (default)        the nftables masquerade: table inet lightscale-P, every packet from\n"
	"                   ls-P leaving on another interface gets that interface's address\n"
	"  --snat-subnet-routes\n"
	"                   with --bpf, source NAT in the BPF programs instead (no nftables\n"
	"                   table; one left by an earlier run is removed). The LAN programs go\n"
	"                   on every LAN interface (one holding an address inside an advertised\n"
	"                   route) and, when the node advertises a default route, on the uplink\n"
	"                   (the interface of the host's IPv4 and IPv6 default routes). Each\n"
	"                   gets its own source address: on a LAN the router's address inside\n"
	"                   the advertised prefix, on the uplink the default route's preferred\n"
	"                   source. Connections are tracked in ls_nat_out/ls_nat_in (plain\n"
	"                   hashes: a live flow is never evicted; idle ones expire, see\n"
	"                   --snat-timeouts, and the agent collects them every 5 s). Replies\n"
	"                   are translated back on LAN ingress, in XDP where the NIC is a real\n"
	"                   one (veth and other virtual devices: TC only). The rules follow\n"
	"                   every netmap and address or route change; interfaces that stop\n"
	"                   qualifying lose the programs (only what the profile's pin directory\n"
	"                   records is removed). If an interface cannot get the programs, the\n"
	"                   agent says so and masquerades with nftables instead.\n"
	"                   `lightscale status' shows per interface the hooks, their mode\n"
	"                   (tcx, clsact, xdp), the address and the ports\n"
	"  --snat-ports LO-HI\n"
	"                   SNAT source ports and ICMP echo ids (default 61000-65000, above the\n"
	"                   default ephemeral range 32768-60999). The range goes into\n"
	"                   ip_local_reserved_ports while the agent runs and after it stops (the\n"
	"                   programs keep translating); wg-down and --down-on-exit give it back.\n"
	"                   A port is never taken while a local socket of the router would\n"
	"                   receive the reply, and two clients with the same source port to the\n"
	"                   same destination get different ports. Two profiles that SNAT on one\n"
	"                   host need ranges of their own (their connection tables are separate)\n"
	"  --snat-timeouts TCP,UDP,ICMP\n"
	"                   idle seconds after which a connection is forgotten (default\n"
	"                   7440,180,30: TCP 2 h 4 min, UDP 3 min, ICMP 30 s; TCP 60 s after a\n"
	"                   FIN or RST)\n"
	"  --no-masquerade  routed mode: no translation at all; overlay addresses reach the LANs\n"
	"                   as they are. Each LAN's gateway (and an exit node's upstream router)\n"
	"                   then needs a route back to the overlay through this router; the\n"
	"                   agent logs the exact commands (e.g. `ip route add 100.64.0.0/10 via\n"
	"                   192.168.1.1') and `lightscale status' lists them (.return_routes)\n"
	"\n"
	"NAT traversal: the agent sends STUN requests to the netmap's STUN servers from the\n"
	"WireGuard port (a raw socket, so the NAT maps them as WireGuard's own datagrams, on either\n"
	"engine) and reports the answer in its heartbeats beside its local addresses; the server\n"
	"adds the address it sees. Each peer's endpoints are pinged from that port, with a probe\n"
	"through the stream relay so both sides open their NATs at once; the first endpoint that\n"
	"answers is used (direct). With no answer for 9 s the peer is reached through the relays\n"
	"(UDP relay, TURN, stream relay, in that order, through a loopback socket of the agent),\n"
	"and goes back to direct as soon as an endpoint answers again. Without relays, a stale\n"
	"handshake rotates through the peer's endpoints. `lightscale status' shows each path.\n"
	"\n"
	"Several profiles (networks) on one machine: their agents share /run/lightscale/multinet*.json\n"
	"(routing table, rule priorities and fwmark per profile, which profile owns the default\n"
	"route, the routes each installs). A route that overlaps another profile's route (both\n"
	"networks route 192.168.1.0/24) is installed as a virtual prefix of the same length from\n"
	"the pool (stable per profile and prefix) and translated by the BPF program on ls-P, which\n"
	"loads for that even without --bpf; `lightscale routes' lists the conflicts and mappings.\n"
	"Nothing is forwarded between two profiles' interfaces (BPF isolate, or nft without BPF)\n"
	"unless one of them allows the other.\n"
	"  --no-bpf          never load the BPF data plane (overlapping routes then stay unmapped)\n"
	"  --map V=R         reach the real prefix R as V (same length), e.g. 10.9.1.0/24=192.168.1.0/24\n"
	"  --allow-forward P allow forwarding between this profile's and profile P's interfaces\n"
	"  --virtual-pool C  pool for virtual prefixes (default 10.200.0.0/13 and fd4c:5300::/32)\n"
	"\n"
	"Split DNS: the agent answers names under the network's DNS suffix from the netmap\n"
	"(translated addresses for names behind mapped routes; NXDOMAIN for unknown names under\n"
	"the suffix) on its own address 127.77.S.1 port 53 (S: the profile's slot + 1, so each\n"
	"profile has one) and forwards other names to the upstreams (the nameservers in\n"
	"/etc/resolv.conf at start). With systemd-resolved it sets ls-P's DNS server and the\n"
	"~SUFFIX routing domain; otherwise nothing outside changes (`lightscale dns status' says\n"
	"what to do) unless --manage-resolv-conf.\n"
	"  --no-dns             no resolver\n"
	"  --dns-listen ADDR    listen address instead of 127.77.S.1; --dns-port N (default 53)\n"
	"  --dns-upstream A     upstream resolver ADDR or ADDR:PORT (repeatable)\n"
	"  --manage-resolv-conf add `nameserver 127.77.S.1' to /etc/resolv.conf (put back on exit)\n";

int ls_cmd_agent(struct ls_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "engine", required_argument, NULL, 'e' },
		{ "apply-routes", no_argument, NULL, 'r' },
		{ "exit-node", required_argument, NULL, 'x' },
		{ "foreground", no_argument, NULL, 'F' },
		{ "down-on-exit", no_argument, NULL, 'D' },
		{ "poll-wait", required_argument, NULL, 'w' },
		{ "heartbeat", required_argument, NULL, 'b' },
		{ "no-masquerade", no_argument, NULL, 'M' },
		{ "bpf", no_argument, NULL, 'B' },
		{ "no-bpf", no_argument, NULL, 'N' },
		{ "fast-forward", no_argument, NULL, 0x2006 },
		{ "snat-subnet-routes", no_argument, NULL, 0x2007 },
		{ "snat-ports", required_argument, NULL, 0x2008 },
		{ "snat-timeouts", required_argument, NULL, 0x2009 },
		{ "map", required_argument, NULL, 'm' },
		{ "allow-forward", required_argument, NULL, 'a' },
		{ "virtual-pool", required_argument, NULL, 'P' },
		{ "no-dns", no_argument, NULL, 0x2001 },
		{ "dns-listen", required_argument, NULL, 0x2002 },
		{ "dns-port", required_argument, NULL, 0x2003 },
		{ "dns-upstream", required_argument, NULL, 0x2004 },
		{ "manage-resolv-conf", no_argument, NULL, 0x2005 },
		LS_CLI_COMMON_OPTS,
		{ 0 },
	};
	struct ls_agent_opts o = { .dp = { .engine = "auto" } };
	struct ls_profile p;
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		int64_t v;

		if (ls_cli_common_opt(cli, c, optarg))
			continue;
		switch (c) {
		case 'e':
			if (strcmp(optarg, "auto") && strcmp(optarg, "kernel") && strcmp(optarg, "userspace"))
				return ls_cli_usage_error(cli, help, "invalid engine `%s' (auto, kernel or userspace)", optarg);
			o.dp.engine = optarg;
			break;
		case 'r': o.dp.apply_routes = true; break;
		case 'x': o.dp.exit_node = optarg; break;
		case 'F': o.foreground = true; break;
		case 'D': o.down_on_exit = true; break;
		case 'M': o.dp.no_masquerade = true; break;
		case 'B': o.dp.bpf = true; break;
		case 'N': o.dp.no_bpf = true; break;
		case 0x2006: o.dp.fast_forward = true; break;
		case 0x2007: o.dp.snat_subnet_routes = true; break;
		case 0x2008: {
			unsigned int lo, hi;
			char end;

			if (sscanf(optarg, "%u-%u%c", &lo, &hi, &end) != 2 || lo < 1024 || hi > 65535 || lo > hi)
				return ls_cli_usage_error(cli, help, "invalid --snat-ports `%s' (LO-HI, 1024-65535, e.g. 61000-65000)",
							  optarg);
			o.dp.snat_port_lo = (uint16_t)lo;
			o.dp.snat_port_hi = (uint16_t)hi;
			break;
		}
		case 0x2009: {
			unsigned int t[3];
			char end;

			if (sscanf(optarg, "%u,%u,%u%c", &t[0], &t[1], &t[2], &end) != 3 || !t[0] || !t[1] || !t[2] ||
			    t[0] > 604800 || t[1] > 604800 || t[2] > 604800)
				return ls_cli_usage_error(cli, help,
							  "invalid --snat-timeouts `%s' (TCP,UDP,ICMP idle seconds, 1-604800 each, "
							  "e.g. 7440,180,30)", optarg);
			for (int i = 0; i < 3; i++)
				o.dp.snat_timeouts[i] = t[i];
			break;
		}
		case 0x2001: o.dns.off = true; break;
		case 0x2002: {
			struct ls_prefix a;

			if (ls_prefix_parse(optarg, &a, false) || a.len != ls_prefix_max_len(&a))
				return ls_cli_usage_error(cli, help, "invalid --dns-listen `%s' (an address)", optarg);
			o.dns.listen = optarg;
			break;
		}
		case 0x2003: {
			char *end;
			long port = strtol(optarg, &end, 10);

			if (*end || port < 1 || port > 65535)
				return ls_cli_usage_error(cli, help, "invalid --dns-port `%s' (1-65535)", optarg);
			o.dns.port = (int)port;
			break;
		}
		case 0x2004: {
			static char *ups[8];
			struct ls_prefix a;
			struct sockaddr_storage ss;

			if (ls_prefix_parse(optarg, &a, false) && ls_endpoint_parse(optarg, &ss, NULL))
				return ls_cli_usage_error(cli, help, "invalid --dns-upstream `%s' (ADDR or ADDR:PORT)", optarg);
			if (o.dns.n_upstreams >= ARRAY_SIZE(ups))
				return ls_cli_usage_error(cli, help, "too many --dns-upstream (at most 8)");
			ups[o.dns.n_upstreams++] = optarg;
			o.dns.upstreams = ups;
			break;
		}
		case 0x2005: o.dns.manage_resolv_conf = true; break;
		case 'm': {
			static struct ls_mnet_map maps[32];
			char *eq = strchr(optarg, '='), vs[LS_PREFIX_STRLEN];
			struct ls_mnet_map m;

			if (!eq || (size_t)(eq - optarg) >= sizeof(vs))
				return ls_cli_usage_error(cli, help, "invalid --map `%s' (VIRTUAL=REAL)", optarg);
			memcpy(vs, optarg, (size_t)(eq - optarg));
			vs[eq - optarg] = '\0';
			if (ls_prefix_parse(vs, &m.virt, false) || ls_prefix_parse(eq + 1, &m.real, false) ||
			    m.virt.family != m.real.family || m.virt.len != m.real.len)
				return ls_cli_usage_error(cli, help,
							  "invalid --map `%s' (VIRTUAL=REAL, two prefixes of one family and length)",
							  optarg);
			if (o.dp.n_maps >= ARRAY_SIZE(maps))
				return ls_cli_usage_error(cli, help, "too many --map (at most %zu)", ARRAY_SIZE(maps));
			maps[o.dp.n_maps++] = m;
			o.dp.maps = maps;
			break;
		}
		case 'a': {
			static char *allow[32];

			if (!ls_profile_name_valid(optarg))
				return ls_cli_usage_error(cli, help, "invalid profile name `%s' for --allow-forward", optarg);
			if (o.dp.n_allow >= ARRAY_SIZE(allow))
				return ls_cli_usage_error(cli, help, "too many --allow-forward");
			allow[o.dp.n_allow++] = optarg;
			o.dp.allow_forward = allow;
			break;
		}
		case 'P': {
			struct ls_prefix pool;

			if (ls_prefix_parse(optarg, &pool, false) || (pool.family == AF_INET && pool.len > 30) ||
			    (pool.family == AF_INET6 && pool.len > 120))
				return ls_cli_usage_error(cli, help, "invalid --virtual-pool `%s' (a CIDR prefix)", optarg);
			if (pool.family == AF_INET)
				o.dp.pools.v4 = pool;
			else
				o.dp.pools.v6 = pool;
			break;
		}
		case 'w':
		case 'b':
			if (ls_parse_duration(optarg, &v) || v < 1 || v > 300)
				return ls_cli_usage_error(cli, help, "invalid duration `%s' (1-300 s)", optarg);
			if (c == 'w')
				o.poll_wait = (int)v;
			else
				o.heartbeat_interval = (int)v;
			break;
		case 'h':
			fputs(help, stdout);
			return 0;
		default:
			return ls_cli_usage_error(cli, help, "invalid option");
		}
	}
	if (o.dp.fast_forward && !o.dp.bpf)
		return ls_cli_usage_error(cli, help, "--fast-forward needs --bpf");
	if (o.dp.snat_subnet_routes && !o.dp.bpf)
		return ls_cli_usage_error(cli, help,
					  "--snat-subnet-routes needs --bpf (SNAT runs in the BPF programs; without them the agent "
					  "masquerades with nftables)");
	if (o.dp.snat_subnet_routes && o.dp.no_masquerade)
		return ls_cli_usage_error(cli, help, "--snat-subnet-routes and --no-masquerade exclude each other (SNAT or routed)");
	if ((o.dp.snat_port_lo || o.dp.snat_timeouts[0]) && !o.dp.snat_subnet_routes)
		return ls_cli_usage_error(cli, help, "--snat-ports and --snat-timeouts need --snat-subnet-routes");
	if (geteuid() != 0) {
		fprintf(stderr, "lightscale agent: must run as root (it configures interfaces, routes and rules)\n");
		return 1;
	}
	if (ls_cli_profile(cli, &p))
		return 1;
	if (!strcmp(o.dp.engine, "kernel")) {
		char why[256];

		if (ls_wg_kernel_available(why, sizeof(why))) {
			fprintf(stderr, "lightscale agent: --engine kernel: %s\n", why);
			ls_profile_free(&p);
			return 1;
		}
	}
	if (!o.foreground) {
		char log[PATH_MAX];
		pid_t pid;
		int fd;

		ls_mkdir_p("/run/lightscale", 0755);
		snprintf(log, sizeof(log), "/run/lightscale/%s.log", p.name);
		pid = fork();
		if (pid < 0) {
			fprintf(stderr, "lightscale agent: fork: %s\n", strerror(errno));
			return 1;
		}
		if (pid > 0) {
			printf("lightscale agent for profile '%s' started (pid %d, log %s)\n", p.name, (int)pid, log);
			return 0;
		}
		setsid();
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, 0);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
	}
	ret = ls_agent_run(&p, &o);
	ls_profile_free(&p);
	return ret ? 1 : 0;
}
