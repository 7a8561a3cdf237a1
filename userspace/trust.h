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
#include <stdint.h>

struct ls_cli;

#include "ctlclient.h"

/* 0: accepted (the state in dir is updated); -EPERM: refused, err says why; other -errno:
 * could not check (fetching the log failed), err says why. c signs GET /v1/audit. */
int ls_trust_check_netmap(struct ls_ctl *c, const char *dir, const json_t *doc, char *err,
			  size_t errlen);

/* The TLS pins the last accepted netmap published (trust.json), each endorsement checked
 * again against identity (base64; the trusted one must be that): ';'-joined into out
 * (CURLOPT_PINNEDPUBLICKEY form). Returns how many; 0 when none is remembered. A client
 * started later pins these (a server key rotated since enrollment). */
int ls_trust_pins(const char *dir, const char *identity, char *out, size_t size);

/* WireGuard key rotation (POST /v1/rotate, signed by the machine key): a new key is written
 * to DIR/wg.key.new, sent, and renamed to DIR/wg.key once the server has it. pub_out (44+1
 * bytes, may be NULL) gets the new public key. 0 or -errno (err says why). */
int ls_trust_rotate(struct ls_ctl *c, const char *dir, char *pub_out, char *err, size_t errlen);
/* Called with every netmap answer (also "unchanged" ones: the last self.key_expiry and
 * network.key_lifetime are remembered). Rotates when the key expires in less than
 * LS_TRUST_ROTATE_BEFORE s, or a third of the network's key_lifetime when that is shorter
 * (at most once a minute, or every eighth of a short lifetime). The agent must poll at
 * least that often (--poll-wait). 1 rotated, 0 not due, -errno failed (logged). */
#define LS_TRUST_ROTATE_BEFORE 3600
int ls_trust_rotate_if_due(struct ls_ctl *c, const char *dir, const json_t *doc);
/* Follows a rotated key: when the netmap's self.wg_key is not *wg_pub, loads the key of
 * DIR/wg.key (or DIR/wg.key.new) whose public half it is into wg_priv/wg_pub. 1 when the
 * key changed (the device needs it), 0 otherwise. */
int ls_trust_follow_key(const char *dir, uint8_t wg_priv[32], uint8_t wg_pub[32], const json_t *doc);

/* `lightscale rotate-key` (cli_trust.c) */
int ls_cmd_rotate_key(struct ls_cli *cli, int argc, char **argv);

/* After `lightscale register' of an approval network, in text mode on a terminal: waits
 * until the node is approved (0) or rejected (1), polling its netmap. */
int ls_trust_wait_approval(struct ls_cli *cli, const json_t *reg);

/* `lightscale audit verify` (cli_trust.c) */
struct ls_cli;
int ls_cmd_audit(struct ls_cli *cli, int argc, char **argv);

#endif
