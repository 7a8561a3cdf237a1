/* SPDX-License-Identifier: MIT */
/* The engine process: a TUN device, a UDP socket (GSO/GRO, batched), two
 * packet threads (TUN->UDP encrypts, UDP->TUN decrypts), and a main thread
 * for timers, the UAPI socket and signals. */
#ifndef LSW_ENGINE_H
#define LSW_ENGINE_H

#include <net/if.h>
#include <stdbool.h>

#include "userspace/wgu/device.h"
#include "userspace/wgu/gro.h"
#include "userspace/wgu/pool.h"

#define LSW_SOCK_DIR "/var/run/wireguard"

struct lsw_engine {
	char ifname[IFNAMSIZ];
	unsigned int ifindex;
	char sock_path[100];
	int tun_fd;
	int udp_fd;
	int udp_family;
	bool udp_gso, udp_gro, uso;
	int uapi_fd;
	int wake_fd; /* eventfd: timers moved earlier, or stop */
	int stop; /* atomic */
	int ready_fd; /* pipe to the waiting parent, or -1 */
	struct lsw_gro *gro; /* coalescing into TUN (receive thread only) */
	struct lsw_pool *pool[2]; /* crypto workers for the TX and RX threads */
	struct lsw_device dev;
};

/* Fails with -EADDRINUSE when a live engine serves the socket. */
int lsw_engine_check_socket(const char *ifname);
int lsw_engine_run(const char *ifname, int ready_fd);

#endif
