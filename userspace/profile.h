/* SPDX-License-Identifier: MIT */
/*
 * A profile: one network membership of this machine, kept in STATE_DIR/PROFILE/ (0700):
 *   config.json   control URLs, hostname, listen port, MTU, advertised routes, exit node
 *                 choice, the derived interface name, and the routing table, fwmark
 *                 and rule priority of the profile's multi-network slot (mnet.h: the
 *                 data plane claims them in /run/lightscale when it comes up; before
 *                 that they are hash-derived placeholders) (0600)
 *   token         the enrollment token (0600; removed after a successful register)
 *                 (config.json's identity and tls_pins come from an enrollment string)
 *   wg.key        WireGuard private key, base64 (0600); wg.pub its public key
 *   machine.key   Ed25519 machine secret key, base64 of 64 bytes (0600)
 *   node.json     the register answer (node id, network)
 *   netmap.json   the last full netmap (reapplied at agent start)
 */
#ifndef LS_PROFILE_H
#define LS_PROFILE_H

#include <limits.h>
#include <net/if.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "keys.h"
#include "prefix.h"

#define LS_PROFILE_NAME_MAX 63
#define LS_MAX_ADV_ROUTES 64
#define LS_DEFAULT_MTU 1420
#define LS_DEFAULT_PORT 51820

struct ls_netmap;

struct ls_profile {
	char name[LS_PROFILE_NAME_MAX + 1];
	char dir[PATH_MAX];
	char ifname[IFNAMSIZ];
	char *control_urls; /* comma-separated */
	char *hostname;
	char *exit_node;    /* NULL/"none", "auto", an id or a name */
	char *identity;     /* deployment identity key (base64) from an enrollment string, or NULL */
	char *tls_pins;     /* its endorsed TLS pins, ';'-separated (CURLOPT_PINNEDPUBLICKEY), or NULL */
	int listen_port;
	int mtu;
	int keepalive;      /* persistent keepalive seconds for every peer, 0: off */
	uint32_t table;     /* routing table for advertised routes and the exit default */
	uint32_t fwmark;    /* WireGuard's and the agent's own sockets */
	uint32_t rule_prio; /* first of our ip rule priorities */
	struct ls_prefix routes[LS_MAX_ADV_ROUTES]; /* advertised by this node */
	size_t n_routes;
	uint8_t wg_priv[LS_WG_KEY_LEN];
	uint8_t wg_pub[LS_WG_KEY_LEN];
	uint8_t machine_sk[LS_ED25519_SK_LEN];
	uint8_t machine_pk[LS_ED25519_PK_LEN];
	int64_t node_id; /* 0 until registered */
};

/* "home" -> "ls-home"; names that do not fit IFNAMSIZ become "ls-" + 6 characters +
 * "-" + 5 hex digits of a hash of the whole name (distinct names stay distinct). */
void ls_profile_ifname(const char *profile, char out[IFNAMSIZ]);
/* Letters, digits, '-', '_', '.'; 1..63 characters, not starting with '.' or '-'. */
int ls_profile_name_valid(const char *name);
uint32_t ls_hash32(const char *s);

/* Resolves STATE_DIR/NAME into p->dir and fills the derived names. */
int ls_profile_path(struct ls_profile *p, const char *state_dir, const char *name);
/* Loads an existing profile. On error prints what is wrong and what to do (err may be
 * NULL) and returns -errno (-ENOENT: no such profile). */
int ls_profile_load(struct ls_profile *p, const char *state_dir, const char *name, char *err, size_t err_size);
int ls_profile_save_config(const struct ls_profile *p);
void ls_profile_free(struct ls_profile *p);

/* Pins the profile's TLS keys and identity (from `init --token TOKEN@IDENTITY@PINS') on a
 * control client, so its first request is already pinned. 0 or -EINVAL (bad stored identity). */
struct ls_ctl;
int ls_profile_ctl_trust(const struct ls_profile *p, struct ls_ctl *c);

/* The cached netmap (NULL with -ENOENT when there is none). */
int ls_profile_load_netmap(const struct ls_profile *p, struct ls_netmap **out, char *err, size_t err_size);
int ls_profile_save_netmap(const struct ls_profile *p, const struct ls_netmap *nm);
/* A file in the profile directory into out. */
int ls_profile_file(const struct ls_profile *p, const char *file, char *out, size_t size);
/* Writes doc (indented JSON) to the profile's file, atomically, mode 0600; the caller keeps
 * its reference. 0 or -errno (-ENOMEM when doc cannot be dumped). */
int ls_profile_save_json(const struct ls_profile *p, const char *file, json_t *doc);

#endif
