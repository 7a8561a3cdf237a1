/* SPDX-License-Identifier: MIT */
/* Coalescing on the way into the TUN device: consecutive TCP segments of one
 * flow (as a decrypted receive batch carries them) become one super-packet
 * written with a GSO virtio header, so the kernel's TCP stack handles one skb
 * instead of dozens. The rules follow what the kernel's own GRO would merge:
 * same addresses, ports, ack, options and IP fields, contiguous sequence
 * numbers, equal segment sizes (the last may be shorter), only ACK/PSH set.
 * With allow_udp, datagrams of one UDP flow of equal size are merged the same
 * way into USO packets (at most 64, as UDP GSO allows). */
#ifndef LSW_GRO_H
#define LSW_GRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { LSW_GRO_MAX = 65535 };

struct lsw_gro {
	uint8_t vnet[10];          /* virtio header, written just before buf */
	uint8_t buf[LSW_GRO_MAX];  /* the super-packet */
	size_t len;
	size_t l3, l4hdr, seg;
	int nsegs;
	bool v6, closed, udp;
	uint32_t next_seq;
	/* Also coalesce UDP (datagrams of one flow, equal sizes) into USO
	 * super-packets: only where the TUN device took TUN_F_USO4/6 (6.2+). */
	bool allow_udp;
};

/* Writes out a packet (data, len bytes) to fd: hdr is the virtio header. */
typedef int (*lsw_gro_write_fn)(void *ctx, const uint8_t *vnet_and_pkt, size_t len);

/* Takes one decrypted packet; may write earlier ones. */
int lsw_gro_add(struct lsw_gro *g, const uint8_t *pkt, size_t len, lsw_gro_write_fn w, void *ctx);
/* Writes what is held (end of a receive batch). */
int lsw_gro_flush(struct lsw_gro *g, lsw_gro_write_fn w, void *ctx);

#endif
