/* SPDX-License-Identifier: MIT */
/*
 * Exit node metrics and the latency policy.
 *
 * The metric is the round-trip time of ICMP echo through the tunnel to each exit node's
 * overlay address (IPv4 when it has one, else IPv6): what an app behind that exit pays
 * on every round trip, including the exit's own load, and it needs nothing from the
 * exit but to answer ping. (WireGuard's handshake timing is not exposed by either engine
 * and only happens every two minutes; a probe can be taken whenever it is needed.)
 * Three echoes per exit, sent at once; the median of those answered counts.
 *
 * Policy (STATE_DIR/P/exit-policy.json, {"auto": "first"|"latency"}): with "latency",
 * `exit-node use auto' means the exit with the lowest RTT among those answering; the
 * agent re-measures every LS_EXITSEL_INTERVAL seconds and moves only when the current
 * exit stops answering or another is faster by both 20% and 5 ms (no flapping between
 * two similar exits). "first" (the default) keeps the first exit node by id.
 */
#ifndef LS_EXITSEL_H
#define LS_EXITSEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "profile.h"

#define LS_EXITSEL_FILE "exit-policy.json"
#define LS_EXITSEL_INTERVAL 30
#define LS_EXITSEL_PROBES 3

struct ls_netmap;

struct ls_exit_probe {
	int64_t id;
	char name[128];
	char addr[64];  /* the overlay address probed */
	int sent, received;
	double rtt_ms;  /* median of the answered probes; < 0: none answered */
};

/* Probes every exit node of nm (timeout_ms for all of them together). *out malloc'd. */
int ls_exitsel_probe(const struct ls_netmap *nm, int timeout_ms, struct ls_exit_probe **out, size_t *n);

/* The profile's policy: "first" or "latency". */
int ls_exitsel_policy(const struct ls_profile *p, char *out, size_t size);
int ls_exitsel_set_policy(const struct ls_profile *p, const char *policy);

/* The best exit by the probes (NULL when none answered). current: the exit in use (id,
 * 0 for none), kept unless another is clearly better (see above). */
const struct ls_exit_probe *ls_exitsel_best(const struct ls_exit_probe *v, size_t n, int64_t current);

/* For the agent: with the latency policy, the name of the exit `auto' means now (probing
 * at most every LS_EXITSEL_INTERVAL s, at most 300 ms); "" without the policy or when no
 * exit answers (auto then keeps its first-exit meaning). */
void ls_exitsel_auto(const struct ls_profile *p, const struct ls_netmap *nm, char *out, size_t size);

#endif
