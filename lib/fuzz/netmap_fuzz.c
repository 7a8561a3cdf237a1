// SPDX-License-Identifier: MIT
/* libFuzzer harness for the netmap codec: parse; a parsed map must serialise and parse
 * back to the same text; a delta must apply to a base map or leave it unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "netmap.h"

static const char base_doc[] =
	"{\"version\": 5, \"full\": true, \"network\": {\"id\": \"n\", \"name\": \"home\"},"
	" \"self\": {\"id\": 7, \"name\": \"me\"}, \"peers\": ["
	"{\"id\": 8, \"name\": \"a\", \"wg_key\": \"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\"},"
	"{\"id\": 9, \"name\": \"b\", \"wg_key\": \"AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\"}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ls_netmap *nm = NULL, *again = NULL, *base = NULL;
	char err[256];
	char *a = NULL, *b = NULL;

	ls_crypto_init();
	if (ls_netmap_parse((const char *)data, size, &nm, err, sizeof(err)))
		return 0;
	a = ls_netmap_dump(nm);
	if (!a || ls_netmap_parse(a, strlen(a), &again, err, sizeof(err)))
		abort();
	b = ls_netmap_dump(again);
	if (!b || strcmp(a, b))
		abort();
	if (ls_netmap_parse(base_doc, sizeof(base_doc) - 1, &base, err, sizeof(err)))
		abort();
	if (!nm->full) {
		char *before = ls_netmap_dump(base), *after;
		struct ls_nm_diff diff;

		if (ls_netmap_apply_delta_diff(base, nm, &diff, err, sizeof(err))) {
			after = ls_netmap_dump(base);
			if (strcmp(before, after))
				abort();
			free(after);
		} else {
			/* what the diff says is what the map now holds */
			for (size_t i = 0; i < diff.n_added; i++)
				if (ls_netmap_find_peer(base, diff.added[i]->id) != diff.added[i])
					abort();
			for (size_t i = 0; i < diff.n_removed; i++)
				if (ls_netmap_find_peer(base, diff.removed[i]->id))
					abort();
			for (size_t i = 0; i < diff.n_changed; i++)
				if (ls_netmap_find_peer(base, diff.changed[i].new->id) != diff.changed[i].new ||
				    !diff.changed[i].what)
					abort();
			ls_nm_diff_free(&diff);
		}
		free(before);
	}
	free(a);
	free(b);
	ls_netmap_free(nm);
	ls_netmap_free(again);
	ls_netmap_free(base);
	return 0;
}
