/* SPDX-License-Identifier: MIT */
/* The state of a profile as one JSON object (status) that `lightscale status` prints as
 * text or JSON and the agent serves on its local API. */
#ifndef LS_STATUS_H
#define LS_STATUS_H

#include <jansson.h>
#include <stdio.h>

#include "dataplane.h"
#include "netmap.h"
#include "profile.h"

/* dp may be NULL (no agent: what the kernel and engine hold); nm may be NULL. */
json_t *ls_status_json(const struct ls_profile *prof, const struct ls_dp *dp, const struct ls_netmap *nm);
void ls_status_text(json_t *st, FILE *f);
/* The agent's NAT traversal state (agent.c's path thread: {"peers": {KEY: {"path",
 * "via", "relay", "endpoint", ...}}, "stun", "endpoints", "relays", "counters"}) into a
 * status document: each peer gets "path" (an object), the document "nat". nat may be
 * NULL; observed: the address the control plane sees us at ("" unknown). */
void ls_status_add_nat(json_t *st, json_t *nat, const char *observed);

/* Local API (/run/lightscale/P.sock, root only): one request line ("status", "netmap"),
 * one JSON answer, then the connection closes. */
#define LS_RUN_DIR "/run/lightscale"
int ls_localapi_path(const char *profile, char *out, size_t size);
/* Asks a running agent. 0 with *out set, -ECONNREFUSED/-ENOENT when no agent runs. */
int ls_localapi_query(const char *profile, const char *request, json_t **out);

#endif
