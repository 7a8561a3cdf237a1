/* SPDX-License-Identifier: MIT */
/* The TUN device: opened with IFF_VNET_HDR and TUNSETOFFLOAD so the kernel
 * hands over TCP (TSO) and, on 6.2 and later, UDP (USO) super-packets with
 * partial checksums. lsw_tun_split() turns one into MTU-sized inner packets
 * with complete checksums, each ready to be encrypted as its own message. */
#ifndef LSW_TUN_H
#define LSW_TUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "userspace/wgu/device.h"

struct lsw_vnet_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
};

enum {
	LSW_VNET_F_NEEDS_CSUM = 1,
	LSW_VNET_F_DATA_VALID = 2,
	LSW_VNET_GSO_NONE = 0,
	LSW_VNET_GSO_TCPV4 = 1,
	LSW_VNET_GSO_UDP = 3,
	LSW_VNET_GSO_TCPV6 = 4,
	LSW_VNET_GSO_UDP_L4 = 5,
	LSW_VNET_GSO_ECN = 0x80,
};

/* Creates (or attaches to) TUN device name. *uso tells whether USO was
 * accepted. Returns the fd or -errno. */
int lsw_tun_open(const char *name, bool *uso);
int lsw_tun_get_mtu(const char *name, unsigned int *mtu);
int lsw_tun_set_mtu(const char *name, unsigned int mtu);

/* Room for segments: each gets LSW_HEADROOM + len + LSW_TAILROOM. */
struct lsw_arena {
	uint8_t *buf;
	size_t cap, used;
};

/* Splits the packet read from TUN (vh, then pkt of len bytes) into at most max
 * packets carved from a, with complete checksums. Returns the number of
 * packets, or -EINVAL for a malformed super-packet, -ENOSPC when a is full. */
int lsw_tun_split(const struct lsw_vnet_hdr *vh, const uint8_t *pkt, size_t len, struct lsw_arena *a,
		  struct lsw_pkt *out, int max);

/* The Internet checksum of buf, folded and complemented, with an initial sum. */
uint16_t lsw_csum(const uint8_t *buf, size_t len, uint32_t initial);

#endif
