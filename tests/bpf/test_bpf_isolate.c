// SPDX-License-Identifier: MIT
/*
 * isolate: in a private network namespace with veth interfaces lsbd1 (overlay of
 * network 1) and lsbd2 (overlay of network 2). Routes: 192.168.1.0/24 belongs to network
 * 1, 192.168.2.0/24 to network 2. Forwarding between networks is dropped until allowed.
 */
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/bpf/harness.h"

#define I LS_PROG_ISOLATE
#define D LS_PROG_DISPATCH

int main(void)
{
	int fails = 0;

	if (unshare(CLONE_NEWNET) || system("ip link add lsbd1 type veth peer name lsbd1p && ip link add lsbd2 type veth peer name lsbd2p")) {
		printf("not ok 1 - private netns with veth interfaces\n");
		return 1;
	}
	uint32_t d1 = if_nametoindex("lsbd1"), d2 = if_nametoindex("lsbd2");
	struct lsbpf *b = h_open();
	struct lsbpf_state *s = lsbpf_state_new();
	s->flags = LS_CFG_ISOLATE;
	lsbpf_state_add_iface(s, "lsbd1", 1, LS_IF_OVERLAY);
	lsbpf_state_add_iface(s, "lsbd2", 2, LS_IF_OVERLAY);
	lsbpf_state_add_route(s, "192.168.1.0/24", 1, 1, LS_ROUTE_LOCAL, "lan-1");
	lsbpf_state_add_route(s, "192.168.2.0/24", 2, 1, LS_ROUTE_LOCAL, "lan-2");
	fails += h_ok(lsbpf_apply(b, s) == 0, "apply interfaces and routes");

	struct tcase cases[] = {
		{ "locally sent: not forwarded", "ls_stage_isolate", { 4, 6, "192.168.1.1", "192.168.2.5", 1, 2 },
		  VERDICT_NEXT, NULL, { { I, LS_R_ISO_LOCAL, 1 } } },
		{ "network 1 to its own route", "ls_stage_isolate", { 4, 6, "100.64.0.2", "192.168.1.5", 1, 2 },
		  VERDICT_NEXT, NULL, { { I, LS_R_ISO_SAME_NET, 1 } }, d1 },
		{ "network 1 to network 2's route: dropped", "ls_stage_isolate",
		  { 4, 6, "100.64.0.2", "192.168.2.5", 1, 2 }, VERDICT_SHOT, NULL, { { I, LS_R_ISO_DENIED, 1 } }, d1 },
		{ "network 2 to network 1's route: dropped", "ls_stage_isolate",
		  { 4, 17, "100.65.0.2", "192.168.1.5", 1, 2 }, VERDICT_SHOT, NULL, { { I, LS_R_ISO_DENIED, 1 } }, d2 },
		{ "network 1 to the internet (no network there)", "ls_stage_isolate",
		  { 4, 6, "100.64.0.2", "8.8.8.8", 1, 2 }, VERDICT_NEXT, NULL, { { I, LS_R_ISO_LOCAL, 1 } }, d1 },
		{ "overlay 1 -> overlay 2 on the egress dispatcher: dropped", "ls_overlay_out",
		  { 4, 6, "100.64.0.2", "100.65.0.9", 1, 2 }, VERDICT_SHOT, NULL,
		  { { I, LS_R_ISO_DENIED, 1 }, { D, LS_R_DROP, 1 } }, d1, d2 },
		{ "overlay 2 -> overlay 2 (hairpin) passes", "ls_overlay_out", { 4, 6, "100.65.0.2", "100.65.0.9", 1, 2 },
		  VERDICT_NEXT, NULL, { { I, LS_R_ISO_SAME_NET, 1 } }, d2, d2 },
	};
	fails += h_run(b, cases, sizeof(cases) / sizeof(cases[0]));

	lsbpf_state_add_allow(s, 1, 2);
	fails += h_ok(lsbpf_apply(b, s) == 0, "allow networks 1 and 2");
	/* a third network stays isolated from both */
	lsbpf_state_add_route(s, "192.168.3.0/24", 3, 1, LS_ROUTE_LOCAL, "lan-3");
	lsbpf_apply(b, s);
	struct tcase allowed[] = {
		{ "network 1 to network 2's route: allowed", "ls_stage_isolate",
		  { 4, 6, "100.64.0.2", "192.168.2.5", 1, 2 }, VERDICT_NEXT, NULL, { { I, LS_R_ISO_ALLOWED, 1 } }, d1 },
		{ "the rule opens the pair: 2 -> 1 (replies) allowed too", "ls_stage_isolate",
		  { 4, 17, "100.65.0.2", "192.168.1.5", 1, 2 }, VERDICT_NEXT, NULL, { { I, LS_R_ISO_ALLOWED, 1 } }, d2 },
		{ "overlay 1 -> overlay 2 allowed", "ls_overlay_out", { 4, 6, "100.64.0.2", "100.65.0.9", 1, 2 },
		  VERDICT_NEXT, NULL, { { I, LS_R_ISO_ALLOWED, 1 } }, d1, d2 },
		{ "network 1 to network 3's route: still dropped", "ls_stage_isolate",
		  { 4, 6, "100.64.0.2", "192.168.3.5", 1, 2 }, VERDICT_SHOT, NULL, { { I, LS_R_ISO_DENIED, 1 } }, d1 },
		{ "v6 follows the same rule", "ls_stage_isolate", { 6, 6, "fd00:64::2", "fd00::9", 1, 2 }, VERDICT_NEXT,
		  NULL, { { I, LS_R_ISO_LOCAL, 1 } }, d1 },
	};
	fails += h_run(b, allowed, sizeof(allowed) / sizeof(allowed[0]));

	struct lsbpf_state *s2 = lsbpf_state_new();
	s2->flags = LS_CFG_ISOLATE;
	lsbpf_state_add_iface(s2, "lsbd1", 1, LS_IF_OVERLAY);
	lsbpf_state_add_iface(s2, "lsbd2", 2, LS_IF_OVERLAY);
	lsbpf_state_add_route(s2, "192.168.2.0/24", 2, 1, LS_ROUTE_LOCAL, "lan-2");
	fails += h_ok(lsbpf_apply(b, s2) == 0, "withdraw the allow rule");
	struct tcase again[] = {
		{ "withdrawn: network 1 to network 2's route dropped again", "ls_stage_isolate",
		  { 4, 6, "100.64.0.2", "192.168.2.5", 1, 2 }, VERDICT_SHOT, NULL, { { I, LS_R_ISO_DENIED, 1 } }, d1 },
	};
	fails += h_run(b, again, 1);
	lsbpf_state_free(s);
	lsbpf_state_free(s2);
	lsbpf_close(b);
	h_plan_done();
	return fails ? 1 : 0;
}
