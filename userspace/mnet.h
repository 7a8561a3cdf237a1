/* SPDX-License-Identifier: MIT */
/*
 * Multi-network coordination: the agents of several profiles on one machine share a small
 * state file under /run/lightscale (one per network namespace: multinet.json in the
 * initial namespace, multinet-INODE.json in others, since rules and routes are per
 * namespace; $LIGHTSCALE_MNET_STATE overrides). Every change happens under flock on
 * FILE.lock and is written atomically (rename):
 *
 *   { "default_owner": "home" | null,
 *     "profiles": { "home": { "pid": 123, "slot": 0, "ifname": "ls-home", "table": 52000,
 *                             "rule_priority": 5200, "fwmark": 1280507905,
 *                             "routes": ["192.168.1.0/24"], "allow_forward": ["work"],
 *                             "virtual": { "192.168.1.0/24": "10.200.3.0/24" } } } }
 *
 * An entry whose agent is dead (pid gone) and whose interface is gone is reclaimed by the
 * next writer; a dead agent whose data plane is still up keeps its slot (its rules and
 * routes are still there).
 *
 * Slots: table 52000+S, rule priorities 5200+10*S .. +2, fwmark 0x4c530000|(S+1). All
 * Lightscale fwmarks share the upper half 0x4c53, and the per-profile table rule matches
 * `not fwmark 0x4c530000/0xffff0000', so a marked socket of any profile (WireGuard,
 * control connections) never enters any profile's table.
 */
#ifndef LS_MNET_H
#define LS_MNET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "prefix.h"
#include "profile.h"

#define LS_MNET_SLOTS 64
#define LS_MNET_TABLE_BASE 52000u
#define LS_MNET_PRIO_BASE 5200u
#define LS_FWMARK_BASE 0x4c530000u
#define LS_FWMARK_MASK 0xffff0000u
#define LS_MNET_POOL4 "10.200.0.0/13"
#define LS_MNET_POOL6 "fd4c:5300::/32"

int ls_mnet_path(char *out, size_t size);

/* A copy of the state (pruned of dead entries in the copy only); never NULL. */
json_t *ls_mnet_read(void);

/* Claims (or re-claims) the profile's slot for this process: fills p->table, rule_prio,
 * fwmark and saves config.json when they changed. Keeps the slot recorded in the
 * profile's config when it is free. */
int ls_mnet_claim(struct ls_profile *p);
/* Removes the profile's entry (wg-down); releases the default route if it owned it. */
int ls_mnet_release(const char *profile);
/* Does another live entry use p's table or rule priority? (wg-down of a profile that
 * never claimed must not remove someone else's rules.) */
bool ls_mnet_values_taken(const struct ls_profile *p);

/* Default route ownership. want: the profile wants an exit node. Takes ownership when
 * nobody (live) owns it; releases it when !want. Returns true when p owns it; owner gets
 * the current owner's name ("" for none). */
bool ls_mnet_default(const char *profile, bool want, char *owner, size_t owner_size);
/* `exit-node use': p takes the default route (force) or releases it (none). */
int ls_mnet_take_default(const char *profile, bool take);

/* Records the profile's routes (real prefixes it installs) and forwarding allows, and
 * returns the mappings: [{"real", "virtual", "conflicts_with": [profiles], "source":
 * "auto"}] for every route that overlaps another live profile's route (a virtual prefix
 * from the pools, stable per profile+prefix), or {"real", "error"} when none fits. */
struct ls_mnet_pools {
	struct ls_prefix v4, v6;
};
struct ls_mnet_map {
	struct ls_prefix virt, real;
};
/* manual: the profile's --map VIRTUAL=REAL mappings, recorded (their virtual prefixes are
 * kept out of the automatic ones) and listed with "source": "manual". */
int ls_mnet_publish(const struct ls_profile *p, const struct ls_prefix *routes, size_t n,
		    const struct ls_mnet_pools *pools, char *const *allow_forward, size_t n_allow,
		    const struct ls_mnet_map *manual, size_t n_manual, json_t **mappings);
/* The mappings and conflicts of a profile as recorded in the state (for the CLI without
 * an agent): {"profile", "real_routes", "mappings": [...], "allow_forward", "slot",
 * "default_owner", "registered"}. */
json_t *ls_mnet_profile_json(const char *profile);
/* The virtual prefix for real in pool (same length as real), avoiding the prefixes in
 * used; index from a hash of profile and prefix. -ENOSPC when none. */
int ls_mnet_virtual(const char *profile, const struct ls_prefix *real, const struct ls_prefix *pool,
		    const struct ls_prefix *used, size_t n_used, struct ls_prefix *out);
/* A state generation that changes whenever any entry's routes, allows or the default
 * owner change (agents re-sync when it moves). */
unsigned long ls_mnet_generation(void);

#endif
