// SPDX-License-Identifier: MIT
/* libFuzzer harness: the parser of a profile's app-routes.json (per-app routing rules),
 * and the JSON it writes back, which must parse to the same rules. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "userspace/perapp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ls_perapp_set set, again;
	char err[256];

	if (ls_perapp_parse((const char *)data, size, &set, err, sizeof(err)) == 0) {
		json_t *doc = ls_perapp_to_json(&set);
		char *s = json_dumps(doc, 0);

		if (!s || ls_perapp_parse(s, strlen(s), &again, err, sizeof(err)) || again.n != set.n)
			abort();
		for (size_t i = 0; i < set.n; i++) {
			if (strcmp(again.v[i].cgroup, set.v[i].cgroup) || strcmp(again.v[i].exit, set.v[i].exit) ||
			    again.v[i].slot != set.v[i].slot)
				abort();
		}
		ls_perapp_set_free(&again);
		free(s);
		json_decref(doc);
		ls_perapp_set_free(&set);
	}
	return 0;
}
