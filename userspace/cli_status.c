// SPDX-License-Identifier: MIT
/* lightscale status */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "netmap.h"
#include "profile.h"
#include "status.h"

static const char help[] =
	"Usage: lightscale status [--profile P] [--state-dir DIR] [--json]\n"
	"\n"
	"Shows the profile's interface (ls-P), which WireGuard engine serves it (kernel or\n"
	"userspace), whether an agent runs, the overlay addresses, the routing table and its\n"
	"rules, the exit node, and per peer: endpoint, AllowedIPs, last handshake and bytes\n"
	"received and sent. With a running agent the answer comes from the agent (it adds\n"
	"refused routes, sysctls it set and masquerading); otherwise from the kernel, the engine\n"
	"and the cached netmap.\n"
	"\n"
	"On a subnet router or exit node the agent adds how overlay traffic leaves it (.snat):\n"
	"the nftables masquerade; SNAT in BPF (--snat-subnet-routes: per LAN and uplink\n"
	"interface the source address, the hooks and whether each runs at tcx, clsact or xdp,\n"
	"the port range and whether ip_local_reserved_ports holds it, the idle timeouts); or\n"
	"routed (--no-masquerade) with the route each gateway needs back to the overlay\n"
	"(.return_routes: interface, via, prefix, command).\n"
	"\n"
	"With an agent, each peer also shows its path: direct (the endpoint that answers the\n"
	"agent's pings from the WireGuard port), relayed (via the stream relay, the UDP relay\n"
	"or TURN, and which one), or rotating (no answer and no relay: the peer's endpoints in\n"
	"turn on a stale handshake); --json adds per peer .path (path, via, relay, endpoint,\n"
	"candidates, fallbacks, returns, rotations) and .nat (our endpoints, STUN answers, the\n"
	"address the control plane sees, the relays' states).\n";

int ls_cmd_status(struct ls_cli *cli, int argc, char **argv)
{
	struct ls_netmap *nm = NULL;
	struct ls_profile p;
	char err[512];
	json_t *st = NULL;
	int ret = ls_cli_simple_opts(cli, argc, argv, help);

	if (ret >= 0)
		return ret;
	if (ls_cli_profile(cli, &p))
		return 1;
	if (ls_localapi_query(p.name, "status", &st) == 0) {
		ls_profile_free(&p);
		return ls_cli_print(cli, st, ls_status_text);
	}
	ls_profile_load_netmap(&p, &nm, err, sizeof(err));
	st = ls_status_json(&p, NULL, nm);
	ls_netmap_free(nm);
	ls_profile_free(&p);
	return ls_cli_print(cli, st, ls_status_text);
}
