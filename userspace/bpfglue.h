/* SPDX-License-Identifier: MIT */
/* The agent's use of the BPF data plane (userspace/bpf, liblsbpf): with `--bpf' the
 * overlay interface gets the TC programs and the route maps follow the netmap (per-route
 * counters and conflicts for `lightscale routes'). Builds without the loader say so. */
#ifndef LS_BPFGLUE_H
#define LS_BPFGLUE_H

#include "netmap.h"
#include "profile.h"

struct ls_bpfglue;

/* Loads (or adopts the pinned programs of) the profile and attaches to its interface. */
int ls_bpfglue_open(const struct ls_profile *prof, struct ls_bpfglue **out);
/* The netmap's routes into the maps (only what differs changes). */
int ls_bpfglue_apply(struct ls_bpfglue *g, const struct ls_profile *prof, const struct ls_netmap *nm);
/* Stop: programs keep running (pinned). */
void ls_bpfglue_close(struct ls_bpfglue *g);
/* Down: detach and unpin everything of the profile (works without an open glue). */
int ls_bpfglue_down(const struct ls_profile *prof);

#endif
