/* SPDX-License-Identifier: MIT */
/* The per-profile daemon (lightscale agent) and the control calls it shares with the CLI. */
#ifndef LS_AGENT_H
#define LS_AGENT_H

#include <jansson.h>

#include "ctlclient.h"
#include "dataplane.h"
#include "dnsd.h"
#include "profile.h"

struct ls_agent_opts {
	struct ls_dp_opts dp;
	bool foreground;
	bool down_on_exit;
	int poll_wait;          /* long-poll seconds (default 60) */
	int heartbeat_interval; /* seconds (default 30) */
	struct ls_dnsd_opts dns;
};

int ls_agent_run(struct ls_profile *prof, const struct ls_agent_opts *opts);

/* cli_control.c */
int ls_register(const struct ls_profile *p, json_t **node_out, struct ls_ctl_error *err);
int ls_heartbeat(struct ls_ctl *c, const struct ls_profile *p, json_t **out, struct ls_ctl_error *err);

#endif
