// SPDX-License-Identifier: MIT
/*
 * liblsbpf's desired state: the netmap's compiled packet filter (JSON) becomes filter
 * rules that the program enforces; bad input names the element and changes nothing;
 * apply is idempotent and removes what a later state no longer has.
 */
#include <errno.h>
#include <string.h>

#include <bpf/bpf.h>
#include <jansson.h>
#include <stdio.h>

#include "tests/bpf/harness.h"

#define F LS_PROG_FILTER

static size_t map_entries(struct lsbpf *b, const char *name, size_t ksz)
{
	int fd = lsbpf_map_fd(b, name);
	uint8_t k[64], nk[64];
	void *prev = NULL;
	size_t n = 0;
	while (bpf_map_get_next_key(fd, prev, nk) == 0) {
		memcpy(k, nk, ksz);
		prev = k;
		n++;
	}
	return n;
}

int main(void)
{
	struct lsbpf *b = h_open();
	int fails = 0;
	json_t *f = json_loads("[{\"src\": [\"100.64.0.0/10\"], \"dst\": [\"100.64.0.1/32\"], \"ports\": [\"22\", \"8000-8100\"], \"proto\": \"tcp\"},"
			       " {\"src\": [\"0.0.0.0/0\", \"::/0\"], \"dst\": [\"100.64.0.1/32\"], \"ports\": [], \"proto\": \"icmp\"}]", 0, NULL);
	struct lsbpf_state *s = lsbpf_state_new();
	fails += h_ok(lsbpf_state_add_filter_json(s, f) == 0, "a compiled filter from the netmap is accepted");
	fails += h_ok(s->n_rules == 3 && (s->flags & LS_CFG_FILTER), "one rule per port range, filter on (%zu rules)", s->n_rules);
	fails += h_ok(lsbpf_apply(b, s) == 0, "apply it");
	static const struct tcase cases[] = {
		{ "json filter: tcp 22 allowed", "ls_stage_filter_in", { 4, 6, "100.64.0.9", "100.64.0.1", 1000, 22 },
		  VERDICT_NEXT, NULL, { { F, LS_R_FILTER_ALLOW, 1 } } },
		{ "json filter: tcp 8050 allowed", "ls_stage_filter_in", { 4, 6, "100.64.0.9", "100.64.0.1", 1000, 8050 },
		  VERDICT_NEXT, NULL, { { F, LS_R_FILTER_ALLOW, 1 } } },
		{ "json filter: tcp 8101 denied", "ls_stage_filter_in", { 4, 6, "100.64.0.9", "100.64.0.1", 1000, 8101 },
		  VERDICT_SHOT, NULL, { { F, LS_R_FILTER_DENY, 1 } } },
		{ "json filter: icmp from anywhere", "ls_stage_filter_in", { 4, 1, "8.8.8.8", "100.64.0.1", 1, .type = 8 },
		  VERDICT_NEXT, NULL, { { F, LS_R_FILTER_ALLOW, 1 } } },
	};
	fails += h_run(b, cases, sizeof(cases) / sizeof(cases[0]));
	size_t src4 = map_entries(b, "fsrc4", sizeof(struct ls_filter4_key));
	fails += h_ok(lsbpf_apply(b, s) == 0 && map_entries(b, "fsrc4", sizeof(struct ls_filter4_key)) == src4,
		      "applying the same state twice changes nothing (%zu source prefixes)", src4);

	const char *bad[] = {
		"{\"src\": []}",
		"[{\"src\": [\"100.64.0.0/33\"], \"dst\": [\"100.64.0.1/32\"]}]",
		"[{\"src\": [\"100.64.0.0/10\"], \"dst\": [\"100.64.0.1/32\"], \"ports\": [\"22\", \"99999\"], \"proto\": \"tcp\"}]",
		"[{\"src\": [\"100.64.0.0/10\"], \"dst\": [\"100.64.0.1/32\"], \"proto\": \"gre\"}]",
		"[{\"src\": [7], \"dst\": [\"100.64.0.1/32\"]}]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_loads(bad[i], 0, NULL);
		size_t before = s->n_rules;
		fails += h_ok(lsbpf_state_add_filter_json(s, j) == -EINVAL && s->n_rules == before,
			      "bad filter %zu refused, state unchanged", i);
		json_decref(j);
	}

	/* a later, smaller state removes what the first put there */
	struct lsbpf_state *e = lsbpf_state_new();
	fails += h_ok(lsbpf_apply(b, e) == 0, "apply an empty state");
	fails += h_ok(map_entries(b, "fsrc4", sizeof(struct ls_filter4_key)) == 0 &&
			      map_entries(b, "fdst4", sizeof(struct ls_filter4_key)) == 0 &&
			      map_entries(b, "v2r4", sizeof(struct ls_xlate4_key)) == 0,
		      "nothing of the first state is left in the maps");
	lsbpf_state_free(e);
	lsbpf_state_free(s);
	json_decref(f);
	lsbpf_close(b);
	h_plan_done();
	return fails ? 1 : 0;
}
