/* SPDX-License-Identifier: MIT */
/*
 * WireGuard engines behind one interface:
 *   kernel     WireGuard generic netlink through libmnl (wg_kernel.c)
 *   userspace  the UAPI socket protocol (/var/run/wireguard/IF.sock) spoken to a
 *              userspace engine running as its own process (wg_uapi.c): `lightscale
 *              wg-userspace IF`, or $LIGHTSCALE_WG_USERSPACE (e.g. /usr/bin/wireguard-go)
 * A device description is both what `get` returns and what `set` applies: set applies
 * only the fields and peers it carries (flags say which), like `wg set`.
 */
#ifndef LS_WG_H
#define LS_WG_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "keys.h"
#include "prefix.h"

enum {
	LS_WGP_REMOVE = 1 << 0,          /* remove this peer */
	LS_WGP_REPLACE_ALLOWED = 1 << 1, /* allowed list replaces the peer's */
	LS_WGP_UPDATE_ONLY = 1 << 2,     /* do not create the peer */
	LS_WGP_HAS_ENDPOINT = 1 << 3,
	LS_WGP_HAS_KEEPALIVE = 1 << 4,
};

struct ls_wg_peer {
	uint8_t key[LS_WG_KEY_LEN];
	unsigned int flags;
	struct sockaddr_storage endpoint;
	uint16_t keepalive;
	struct ls_prefix *allowed;
	size_t n_allowed;
	/* get only */
	int64_t last_handshake_sec;
	int64_t last_handshake_nsec;
	uint64_t rx_bytes, tx_bytes;
};

enum {
	LS_WGD_PRIVATE_KEY = 1 << 0,
	LS_WGD_LISTEN_PORT = 1 << 1,
	LS_WGD_FWMARK = 1 << 2,
	LS_WGD_REPLACE_PEERS = 1 << 3,
};

struct ls_wg_device {
	char ifname[IFNAMSIZ];
	unsigned int flags;
	uint8_t private_key[LS_WG_KEY_LEN];
	uint8_t public_key[LS_WG_KEY_LEN]; /* get only */
	uint16_t listen_port;
	uint32_t fwmark;
	struct ls_wg_peer *peers;
	size_t n_peers;
};

void ls_wg_device_free(struct ls_wg_device *d); /* NULL-safe; frees d too */

enum ls_wg_engine_kind {
	LS_ENGINE_KERNEL = 1,
	LS_ENGINE_USERSPACE = 2,
};

struct ls_wg_engine {
	enum ls_wg_engine_kind kind;
	const char *name; /* "kernel", "userspace" */
	/* Creates the interface, or adopts it when it exists (0 either way; *created says). */
	int (*create)(const char *ifname, bool *created);
	/* Is the interface there and served by this engine? */
	bool (*exists)(const char *ifname);
	int (*set)(const struct ls_wg_device *dev);
	int (*get)(const char *ifname, struct ls_wg_device **out);
	int (*destroy)(const char *ifname);
};

extern const struct ls_wg_engine ls_wg_kernel;
extern const struct ls_wg_engine ls_wg_userspace;

/* "auto", "kernel", "userspace". For auto: the engine already serving ifname (adopt), else
 * kernel when the kernel has WireGuard, else userspace. Prints why on failure. */
int ls_wg_engine_pick(const char *want, const char *ifname, const struct ls_wg_engine **out);
/* Which engine serves ifname now (NULL: none). */
const struct ls_wg_engine *ls_wg_engine_serving(const char *ifname);

/* Kernel: is the "wireguard" generic netlink family there? 0, or -errno with a reason. */
int ls_wg_kernel_available(char *why, size_t why_size);

/* Kernel helpers (wg_kernel.c), exported for tests: the set request split into messages
 * of at most LS_WG_MSG_MAX bytes, and the parser of one device message (as the kernel's
 * get answers carry; the peers of a message continue the previous one's last peer when
 * the key repeats). */
#define LS_WG_MSG_MAX 32768
struct nlmsghdr;
int ls_wg_kernel_build_set(const struct ls_wg_device *dev, uint16_t family,
			   int (*emit)(struct nlmsghdr *nlh, void *arg), void *arg);
int ls_wg_kernel_parse_msg(const struct nlmsghdr *nlh, struct ls_wg_device *dev, size_t *cap);

/* UAPI helpers (wg_uapi.c), exported for tests and the fuzz harness. */
#define LS_WG_SOCK_DIR "/var/run/wireguard"
int ls_uapi_sock_path(const char *ifname, char *out, size_t size);
/* Parses a `get=1' answer (key=value lines up to the blank line) into a device. */
int ls_uapi_parse_get(const char *text, size_t len, struct ls_wg_device **out, char *err, size_t err_size);
/* Builds the `set=1' request for dev. Returns a malloc'd string or NULL. */
char *ls_uapi_build_set(const struct ls_wg_device *dev, size_t *len);
/* The process serving ifname's UAPI socket: pid (0 when none) and its name (comm). */
int ls_uapi_engine_process(const char *ifname, char *name, size_t size);
/* The engine command line the agent starts for ifname (argv, NULL-terminated, static). */
const char *ls_uapi_engine_path(void);

#endif
