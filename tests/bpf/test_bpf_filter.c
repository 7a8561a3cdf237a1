// SPDX-License-Identifier: MIT
/*
 * filter: the node's packet filter on overlay ingress (ls_stage_filter_in), flows recorded
 * on egress (ls_stage_filter_track) so replies pass, and the overlay-ingress dispatcher.
 * Rules:
 *   0: 100.64.0.0/10 -> 100.64.0.1/32 tcp 22
 *   1: 100.64.0.5/32 -> * udp 53
 *   2: 0.0.0.0/0 -> 0.0.0.0/0 icmp
 *   3: fd00:64::/64 -> fd00:64::1/128 tcp 443-444
 */
#include <stdio.h>

#include "tests/bpf/harness.h"

#define F LS_PROG_FILTER
#define D LS_PROG_DISPATCH

static const struct pk q6_tracked = { 6, 17, "fd00:64::1", "fd00:64::9", 7000, 8000, .payload = 4 };
static const struct pk q6_untracked = { 6, 17, "fd00:64::1", "fd00:64::9", 7001, 8000, .payload = 4 };

static const struct tcase cases[] = {
	{ "tcp to an allowed port", "ls_stage_filter_in", { 4, 6, "100.64.0.9", "100.64.0.1", 40000, 22 },
	  VERDICT_NEXT, NULL, { { F, LS_R_FILTER_ALLOW, 1 } } },
	{ "tcp to another port is denied", "ls_stage_filter_in", { 4, 6, "100.64.0.9", "100.64.0.1", 40000, 23 },
	  VERDICT_SHOT, NULL, { { F, LS_R_FILTER_DENY, 1 } } },
	{ "tcp from outside the source prefix is denied", "ls_stage_filter_in",
	  { 4, 6, "10.0.0.9", "100.64.0.1", 40000, 22 }, VERDICT_SHOT, NULL, { { F, LS_R_FILTER_DENY, 1 } } },
	{ "udp 53 from the one allowed host", "ls_stage_filter_in", { 4, 17, "100.64.0.5", "100.64.0.1", 999, 53 },
	  VERDICT_NEXT, NULL, { { F, LS_R_FILTER_ALLOW, 1 } } },
	{ "udp 53 from its neighbour is denied", "ls_stage_filter_in",
	  { 4, 17, "100.64.0.6", "100.64.0.1", 999, 53 }, VERDICT_SHOT, NULL, { { F, LS_R_FILTER_DENY, 1 } } },
	{ "tcp 53 from the udp host is denied (protocol)", "ls_stage_filter_in",
	  { 4, 6, "100.64.0.5", "100.64.0.1", 999, 53 }, VERDICT_SHOT, NULL, { { F, LS_R_FILTER_DENY, 1 } } },
	{ "icmp echo from anywhere", "ls_stage_filter_in", { 4, 1, "8.8.8.8", "100.64.0.1", 9, .type = 8 },
	  VERDICT_NEXT, NULL, { { F, LS_R_FILTER_ALLOW, 1 } } },
	{ "v6 tcp 444 inside the range", "ls_stage_filter_in", { 6, 6, "fd00:64::9", "fd00:64::1", 40000, 444 },
	  VERDICT_NEXT, NULL, { { F, LS_R_FILTER_ALLOW, 1 } } },
	{ "v6 tcp 445 outside the range", "ls_stage_filter_in", { 6, 6, "fd00:64::9", "fd00:64::1", 40000, 445 },
	  VERDICT_SHOT, NULL, { { F, LS_R_FILTER_DENY, 1 } } },
	{ "v6 icmpv6 (rule 2 is IPv4 only) is denied", "ls_stage_filter_in",
	  { 6, 58, "fd00:64::9", "fd00:64::1", 3, .type = 128 }, VERDICT_SHOT, NULL, { { F, LS_R_FILTER_DENY, 1 } } },
	{ "later fragment passes (its first fragment was filtered)", "ls_stage_filter_in",
	  { 4, 17, "10.0.0.9", "100.64.0.1", .payload = 30, .frag = 2 }, VERDICT_NEXT, NULL, { { F, LS_R_FILTER_FRAG, 1 } } },
	{ "malformed is dropped", "ls_stage_filter_in",
	  { 4, 6, "100.64.0.9", "100.64.0.1", 40000, 22, .truncate = 14 + 20 + 4 }, VERDICT_SHOT, NULL, { { F, LS_R_MALFORMED, 1 } } },
	/* replies: denied until the flow left through egress */
	{ "reply before our flow: denied", "ls_stage_filter_in", { 4, 6, "100.64.0.9", "100.64.0.1", 8080, 5555 },
	  VERDICT_SHOT, NULL, { { F, LS_R_FILTER_DENY, 1 } } },
	{ "egress flow recorded", "ls_stage_filter_track", { 4, 6, "100.64.0.1", "100.64.0.9", 5555, 8080 },
	  VERDICT_NEXT, NULL, { { F, LS_R_FILTER_TRACK, 1 } } },
	{ "reply to our flow passes", "ls_stage_filter_in", { 4, 6, "100.64.0.9", "100.64.0.1", 8080, 5555 },
	  VERDICT_NEXT, NULL, { { F, LS_R_FILTER_REPLY, 1 } } },
	{ "same ports from another host: denied", "ls_stage_filter_in",
	  { 4, 6, "100.64.0.10", "100.64.0.1", 8080, 5555 }, VERDICT_SHOT, NULL, { { F, LS_R_FILTER_DENY, 1 } } },
	{ "v6 echo request recorded", "ls_stage_filter_track", { 6, 58, "fd00:64::1", "fd00:64::9", 77, .type = 128 },
	  VERDICT_NEXT, NULL, { { F, LS_R_FILTER_TRACK, 1 } } },
	{ "v6 echo reply passes", "ls_stage_filter_in", { 6, 58, "fd00:64::9", "fd00:64::1", 77, .type = 129 },
	  VERDICT_NEXT, NULL, { { F, LS_R_FILTER_REPLY, 1 } } },
	{ "v6 echo reply with another id: denied", "ls_stage_filter_in",
	  { 6, 58, "fd00:64::9", "fd00:64::1", 78, .type = 129 }, VERDICT_SHOT, NULL, { { F, LS_R_FILTER_DENY, 1 } } },
	{ "v6 udp flow recorded", "ls_stage_filter_track", { 6, 17, "fd00:64::1", "fd00:64::9", 7000, 8000, .payload = 4 },
	  VERDICT_NEXT, NULL, { { F, LS_R_FILTER_TRACK, 1 } } },
	{ "v6 icmpv6 error about our flow passes", "ls_stage_filter_in",
	  { 6, 58, "fd00:64::77", "fd00:64::1", .type = 1, .code = 4, .inner = &q6_tracked }, VERDICT_NEXT, NULL,
	  { { F, LS_R_FILTER_REPLY, 1 } } },
	{ "v6 icmpv6 error about another flow: denied", "ls_stage_filter_in",
	  { 6, 58, "fd00:64::77", "fd00:64::1", .type = 1, .code = 4, .inner = &q6_untracked }, VERDICT_SHOT, NULL,
	  { { F, LS_R_FILTER_DENY, 1 } } },
	{ "dispatcher drops what the filter denies", "ls_overlay_in",
	  { 4, 6, "100.64.0.9", "100.64.0.1", 40000, 23 }, VERDICT_SHOT, NULL,
	  { { F, LS_R_FILTER_DENY, 1 }, { D, LS_R_DROP, 1 } } },
	{ "dispatcher passes what the filter allows", "ls_overlay_in",
	  { 4, 6, "100.64.0.9", "100.64.0.1", 40000, 22 }, VERDICT_NEXT, NULL,
	  { { F, LS_R_FILTER_ALLOW, 1 }, { D, LS_R_PASS, 1 } } },
	{ "dispatcher egress records flows", "ls_overlay_out", { 4, 17, "100.64.0.1", "100.64.0.44", 6000, 6001 },
	  VERDICT_NEXT, NULL, { { F, LS_R_FILTER_TRACK, 1 } } },
	{ "... so the reply passes ingress", "ls_overlay_in", { 4, 17, "100.64.0.44", "100.64.0.1", 6001, 6000 },
	  VERDICT_NEXT, NULL, { { F, LS_R_FILTER_REPLY, 1 } } },
};

static const struct tcase off_cases[] = {
	{ "filter off: the dispatcher passes everything", "ls_overlay_in",
	  { 4, 6, "100.64.0.9", "100.64.0.1", 40000, 23 }, VERDICT_NEXT, NULL, { { F, LS_R_FILTER_OFF, 1 } } },
};

static const struct tcase deny_all[] = {
	{ "no rules: everything new is denied", "ls_stage_filter_in",
	  { 4, 6, "100.64.0.9", "100.64.0.1", 40000, 22 }, VERDICT_SHOT, NULL, { { F, LS_R_FILTER_DENY, 1 } } },
	{ "no rules: replies still pass", "ls_stage_filter_in", { 4, 6, "100.64.0.9", "100.64.0.1", 8080, 5555 },
	  VERDICT_NEXT, NULL, { { F, LS_R_FILTER_REPLY, 1 } } },
};

int main(void)
{
	struct lsbpf *b = h_open();
	struct lsbpf_state *s = lsbpf_state_new();
	int fails = 0;

	s->flags = LS_CFG_FILTER;
	fails += h_ok(!lsbpf_state_add_rule(s, "100.64.0.0/10", "100.64.0.1/32", "tcp", "22") &&
			      !lsbpf_state_add_rule(s, "100.64.0.5/32", "*", "udp", "53") &&
			      !lsbpf_state_add_rule(s, "0.0.0.0/0", "0.0.0.0/0", "icmp", "*") &&
			      !lsbpf_state_add_rule(s, "fd00:64::/64", "fd00:64::1/128", "tcp", "443-444"),
		      "build the rules");
	fails += h_ok(lsbpf_state_add_rule(s, "100.64.0.0/10", "*", "tcp", "70000") != 0, "port 70000 is refused");
	fails += h_ok(lsbpf_state_add_rule(s, "100.64.0.0/33", "*", "tcp", "1") != 0, "prefix /33 is refused");
	fails += h_ok(lsbpf_state_add_rule(s, "*", "*", "sctp", "1") != 0, "protocol sctp is refused");
	fails += h_ok(lsbpf_apply(b, s) == 0, "apply");
	fails += h_run(b, cases, sizeof(cases) / sizeof(cases[0]));

	s->flags = 0;
	fails += h_ok(lsbpf_apply(b, s) == 0, "apply with the filter off");
	fails += h_run(b, off_cases, 1);

	struct lsbpf_state *e = lsbpf_state_new();
	e->flags = LS_CFG_FILTER;
	fails += h_ok(lsbpf_apply(b, e) == 0, "apply an empty rule set");
	fails += h_run(b, deny_all, 2);
	lsbpf_state_free(e);
	lsbpf_state_free(s);
	lsbpf_close(b);
	h_plan_done();
	return fails ? 1 : 0;
}
