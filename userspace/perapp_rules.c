// SPDX-License-Identifier: MIT
/* Per-app routing rules: the JSON of app-routes.json and slot allocation (no kernel
 * state here, so the fuzz harness and unit tests link it alone). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perapp.h"

/* ---- the profile's file ------------------------------------------------------------- */

void ls_perapp_set_free(struct ls_perapp_set *set)
{
	if (!set)
		return;
	free(set->v);
	set->v = NULL;
	set->n = 0;
}

int ls_perapp_parse(const char *text, size_t len, struct ls_perapp_set *set, char *err, size_t err_size)
{
	json_error_t jerr;
	json_t *doc = json_loadb(text, len, 0, &jerr), *arr, *e;
	size_t i;
	int ret = 0;

	set->v = NULL;
	set->n = 0;
	if (!json_is_object(doc)) {
		snprintf(err, err_size, "invalid JSON (line %d: %s)", jerr.line, doc ? "not an object" : jerr.text);
		ret = -EINVAL;
		goto cleanup;
	}
	arr = json_object_get(doc, "app_routes");
	if (!arr)
		goto cleanup;
	if (!json_is_array(arr) || json_array_size(arr) > LS_PERAPP_MAX) {
		snprintf(err, err_size, "`app_routes' must be an array of at most %d rules", LS_PERAPP_MAX);
		ret = -EINVAL;
		goto cleanup;
	}
	set->v = calloc(json_array_size(arr) + 1, sizeof(*set->v));
	if (!set->v) {
		ret = -ENOMEM;
		goto cleanup;
	}
	json_array_foreach(arr, i, e) {
		struct ls_perapp_rule *r = &set->v[set->n];
		const char *cg = json_string_value(json_object_get(e, "cgroup"));
		const char *ex = json_string_value(json_object_get(e, "exit"));
		json_t *slot = json_object_get(e, "slot");

		if (!cg || cg[0] != '/' || strlen(cg) >= sizeof(r->cgroup)) {
			snprintf(err, err_size, "rule %zu: `cgroup' must be an absolute path", i);
			ret = -EINVAL;
			goto cleanup;
		}
		if (!ex || !ex[0] || strlen(ex) >= sizeof(r->exit)) {
			snprintf(err, err_size, "rule %zu: `exit' must name an exit node", i);
			ret = -EINVAL;
			goto cleanup;
		}
		if (!json_is_integer(slot) || json_integer_value(slot) < 0 || json_integer_value(slot) >= LS_PERAPP_MAX) {
			snprintf(err, err_size, "rule %zu: `slot' must be 0..%d", i, LS_PERAPP_MAX - 1);
			ret = -EINVAL;
			goto cleanup;
		}
		snprintf(r->cgroup, sizeof(r->cgroup), "%s", cg);
		snprintf(r->exit, sizeof(r->exit), "%s", ex);
		r->slot = (int)json_integer_value(slot);
		for (size_t k = 0; k < set->n; k++) {
			if (set->v[k].slot == r->slot || !strcmp(set->v[k].cgroup, r->cgroup)) {
				snprintf(err, err_size, "rule %zu: cgroup `%s' or slot %d twice", i, cg, r->slot);
				ret = -EINVAL;
				goto cleanup;
			}
		}
		set->n++;
	}
cleanup:
	if (ret)
		ls_perapp_set_free(set);
	json_decref(doc);
	return ret;
}

json_t *ls_perapp_to_json(const struct ls_perapp_set *set)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < set->n; i++)
		json_array_append_new(arr, json_pack("{s:s, s:s, s:i}", "cgroup", set->v[i].cgroup, "exit", set->v[i].exit,
						     "slot", set->v[i].slot));
	return json_pack("{s:o}", "app_routes", arr);
}

int ls_perapp_free_slot(const int *used, size_t n)
{
	for (int s = 0; s < LS_PERAPP_MAX; s++) {
		bool taken = false;

		for (size_t i = 0; i < n && !taken; i++)
			taken = used[i] == s;
		if (!taken)
			return s;
	}
	return -ENOSPC;
}
