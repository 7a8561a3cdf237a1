/* SPDX-License-Identifier: MIT */
/*
 * Per-app routing: the processes of one cgroup (v2) leave through a chosen exit node,
 * everything else keeps its route.
 *
 *   socket created in the cgroup
 *     -> cgroup/sock_create BPF program (bpf/perapp.bpf.c) sets sk->mark = MARK
 *     -> ip rule  PRIO    fwmark MARK lookup main suppress_prefixlength 0  (LAN, overlay)
 *        ip rule  PRIO+1  fwmark MARK lookup TABLE
 *     -> TABLE: default dev ls-P (WireGuard gives the exit peer 0.0.0.0/0 and ::/0)
 *               blackhole default metric 4000 (fail closed: no exit, no leak)
 *
 * Rules live in the profile (STATE_DIR/P/app-routes.json, 0600):
 *   {"app_routes": [{"cgroup": "/sys/fs/cgroup/app", "exit": "exit2", "slot": 3}]}
 * A slot S is machine-wide (per network namespace): mark 0x4c410000|(S+1), table
 * 52200+S, rule priorities 5000+2S and 5001+2S (below every profile's 5200+ rules).
 * The BPF links are pinned under /sys/fs/bpf/lightscale-perapp/P/app-S (+ app-S-count, the
 * marked-sockets counter), so they keep marking while the agent restarts; the slots in
 * use on the machine are the pins there (their links name the cgroup), so two profiles
 * never take one slot or one cgroup.
 *
 * One WireGuard interface routes by destination, so within one profile only one peer can
 * hold the default route: an app route to exit B while the profile's own exit node is A
 * (or another app route of the profile names C) is refused and reported as a conflict.
 * App routes to exits of different profiles (networks) coexist.
 */
#ifndef LS_PERAPP_H
#define LS_PERAPP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "profile.h"

#define LS_PERAPP_MAX 100
#define LS_PERAPP_MARK_BASE 0x4c410000u
#define LS_PERAPP_TABLE_BASE 52200u
#define LS_PERAPP_PRIO_BASE 5000u
#define LS_PERAPP_BLACKHOLE_METRIC 4000u
#define LS_PERAPP_PIN_ROOT "/sys/fs/bpf/lightscale-perapp"
#define LS_PERAPP_FILE "app-routes.json"

struct ls_netmap;

struct ls_perapp_rule {
	char cgroup[4096]; /* absolute path of a cgroup v2 directory */
	char exit[128];    /* exit node: peer id or name */
	int slot;          /* 0..LS_PERAPP_MAX-1 */
};

struct ls_perapp_set {
	struct ls_perapp_rule *v;
	size_t n;
};

static inline uint32_t ls_perapp_mark(int slot) { return LS_PERAPP_MARK_BASE | (uint32_t)(slot + 1); }
static inline uint32_t ls_perapp_table(int slot) { return LS_PERAPP_TABLE_BASE + (uint32_t)slot; }
static inline uint32_t ls_perapp_prio(int slot) { return LS_PERAPP_PRIO_BASE + 2u * (uint32_t)slot; }

/* The profile's rules (an empty set when the file is missing). */
int ls_perapp_load(const struct ls_profile *p, struct ls_perapp_set *set, char *err, size_t err_size);
int ls_perapp_save(const struct ls_profile *p, const struct ls_perapp_set *set);
void ls_perapp_set_free(struct ls_perapp_set *set);
/* Parses the file's JSON (also used by the fuzz harness and unit tests). */
int ls_perapp_parse(const char *text, size_t len, struct ls_perapp_set *set, char *err, size_t err_size);
json_t *ls_perapp_to_json(const struct ls_perapp_set *set);

/* Normalises a cgroup argument into an absolute path of a cgroup v2 directory
 * ("app.slice/x" is taken below the cgroup2 mount). -ENOENT, -ENOTDIR, -EINVAL (not
 * cgroup2) with err set. */
int ls_perapp_cgroup_path(const char *arg, char *out, size_t size, char *err, size_t err_size);

/* Adds (or changes the exit of) the rule for a cgroup, allocating a free slot; saves
 * the profile's file. Does not touch the kernel (ls_perapp_apply does). */
int ls_perapp_add(const struct ls_profile *p, const char *cgroup, const char *exit, char *err, size_t err_size);
/* Removes the rule of a cgroup from the file and its kernel state. -ENOENT: none. */
int ls_perapp_remove(const struct ls_profile *p, const char *cgroup, char *err, size_t err_size);

/* Lowest slot not in used[] (n entries); -ENOSPC when all are taken. */
int ls_perapp_free_slot(const int *used, size_t n);

/* Brings the kernel in line with the profile's rules and netmap (nm may be NULL: the
 * cached one): BPF links, rules, tables, the exit peers' default AllowedIPs; removes what
 * belongs to rules that are gone. Idempotent and cheap when nothing changed (the agent
 * calls it after every netmap and every few seconds). 0 or the first error. */
int ls_perapp_apply(const struct ls_profile *p, const struct ls_netmap *nm);
/* Removes every app route's kernel state of the profile (rules stay in the file). */
int ls_perapp_down(const struct ls_profile *p);

/* {"app_routes": [{"cgroup", "exit", "exit_id", "slot", "mark", "table", "priority",
 * "state", "bpf", "rules", "sockets_marked"}], "pin_dir"} */
json_t *ls_perapp_status(const struct ls_profile *p, const struct ls_netmap *nm);

#endif
