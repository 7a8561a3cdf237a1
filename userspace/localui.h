/* SPDX-License-Identifier: MIT */
/*
 * The local UI: a read-only status page and JSON over HTTP for one profile, for people
 * and desktop tools on this machine.
 *
 *   unix socket  /run/lightscale/P/ui.sock (0600; always, when the agent runs)
 *   TCP          127.0.0.1:PORT (or [::1]:PORT), off by default: `lightscale ui --listen
 *                127.0.0.1:PORT' keeps it in the profile (ui.json); loopback only, and the
 *                Host header must name that address (no DNS rebinding from a browser)
 *
 *   GET /                 HTML: interface, peers (paths, handshakes, traffic), routes,
 *                         exit node and app routes, L2 segments, DNS; refreshes itself
 *                         every 5 s
 *   GET /api/status       {"profile", "status": <lightscale status --json>, "dns",
 *                         "app_routes", "l2_segments", "exit_policy", "ui"}
 *   GET /api/peers, /api/routes, /api/exit-node, /api/dns   parts of it
 *   anything else: 404; other methods: 405 (nothing can be changed here)
 *
 * The UI reads everything through the agent's local API (status.h), so it shows what
 * `lightscale status` shows; the same server runs inside the agent (ls_localui_start)
 * or on its own (`lightscale ui serve`).
 */
#ifndef LS_LOCALUI_H
#define LS_LOCALUI_H

#include <jansson.h>
#include <stddef.h>

#include "profile.h"

#define LS_LOCALUI_FILE "ui.json"

struct ls_localui;

/* /run/lightscale/P/ui.sock (LIGHTSCALE_RUN_DIR moves /run/lightscale). */
int ls_localui_path(const char *profile, char *out, size_t size);
/* The profile's TCP listen address ("" when off). */
int ls_localui_listen(const struct ls_profile *p, char *out, size_t size);
/* Sets it ("off" or "" turns it off); ADDR:PORT must be a loopback address. -EINVAL with err. */
int ls_localui_set_listen(const struct ls_profile *p, const char *addr, char *err, size_t err_size);

/* Starts serving (threads of libmicrohttpd); *out NULL-safe to stop. A TCP address that
 * cannot be bound is logged and skipped (the socket still serves). */
int ls_localui_start(const struct ls_profile *p, struct ls_localui **out);
void ls_localui_stop(struct ls_localui *ui);

/* The page and the API documents (exported for tests): the JSON a path answers
 * (NULL: 404) from the agent's status and dns documents; the HTML of a status document. */
json_t *ls_localui_api(const char *path, json_t *doc);
char *ls_localui_html(json_t *doc);

#endif
