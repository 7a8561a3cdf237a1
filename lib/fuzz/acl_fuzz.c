// SPDX-License-Identifier: MIT
/* libFuzzer harness: ACL policy parser and compiler must never crash or leak on any input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "acl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ls_acl_policy *p = NULL;
	struct ls_prefix addr[2];
	static const char *const tags[] = { "web" };
	struct ls_acl_node nodes[2] = {
		{ .id = 1, .name = "a", .tags = tags, .n_tags = 1, .addrs = &addr[0], .n_addrs = 1 },
		{ .id = 2, .name = "b", .addrs = &addr[1], .n_addrs = 1, .routes = &addr[0], .n_routes = 1 },
	};
	char err[256];

	ls_prefix_parse("100.64.0.1", &addr[0], false);
	ls_prefix_parse("fd00::2", &addr[1], false);
	if (ls_acl_parse((const char *)data, size, &p, err, sizeof(err)) == 0) {
		json_t *f = ls_acl_compile_filter(p, &nodes[1], nodes, 2);

		json_decref(f);
		ls_acl_allows(p, &nodes[0], &nodes[1], NULL, 22, LS_ACL_PROTO_TCP, NULL);
		ls_acl_visible(p, &nodes[1], &nodes[0]);
		ls_acl_policy_free(p);
	}
	return 0;
}
