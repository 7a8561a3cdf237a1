/* SPDX-License-Identifier: MIT */
/*
 * Agent-side trust checks of netmaps (key transparency).
 *
 * The agent keeps DIR/trust.json: the deployment's identity key (trusted on first use, from
 * the first signed audit head it sees), the last audit head it accepted and, for every
 * node id, the WireGuard key the audit log says it has. A netmap is accepted only when
 *   - its audit head is signed by that identity key,
 *   - the head extends the remembered one (entries fetched with GET /v1/audit chain from
 *     the old head to the new): a rolled-back or forked log is refused,
 *   - every peer's WireGuard key is the one the log records for that node id (a key
 *     injected into the database outside the log is refused).
 * A netmap without a head is refused once an identity is known (downgrade).
 */
#ifndef LS_TRUST_H
#define LS_TRUST_H

#include <jansson.h>
#include <stddef.h>

#include "ctlclient.h"

/* 0: accepted (the state in dir is updated); -EPERM: refused, err says why; other -errno:
 * could not check (fetching the log failed), err says why. c signs GET /v1/audit. */
int ls_trust_check_netmap(struct ls_ctl *c, const char *dir, const json_t *doc, char *err,
			  size_t errlen);

/* `lightscale audit verify` (cli_trust.c) */
struct ls_cli;
int ls_cmd_audit(struct ls_cli *cli, int argc, char **argv);

#endif
