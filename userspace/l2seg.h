/* SPDX-License-Identifier: MIT */
/*
 * L2 segments (optional, off unless a node enables one): an Ethernet segment bridged
 * between the nodes of one network over the overlay, with the kernel's VXLAN.
 *
 *   local ports (veth, tap, NIC) --+
 *                                   lsbr-NAME (bridge) -- lsvx-NAME (vxlan VNI, local =
 *                                                           this node's overlay address)
 *        -> UDP 4789 to each peer's overlay address -> ls-P (WireGuard) -> peer's lsvx-NAME
 *
 * Broadcast and unknown unicast (ARP, DHCP, ...) are replicated to every peer that takes
 * part (head-end replication: an all-zero FDB entry per peer); unicast MACs are learned.
 * The VNI comes from a hash of the network id and the segment name, so nodes of one
 * network that enable the same name meet on the same segment and other networks never
 * do. MTU: the overlay MTU minus 50 (VXLAN over IPv4) or 70 (IPv6).
 *
 * Which peers take part: all peers of the netmap by default (a peer without the segment
 * drops the packets), or the ones named with --peers. Kept in the profile (l2.json):
 *   {"segments": [{"name": "lab", "vni": 0 (0: derived), "peers": [], "attach": []}]}
 * The agent applies it at start and after every netmap (FDB entries follow the peers).
 */
#ifndef LS_L2SEG_H
#define LS_L2SEG_H

#include <jansson.h>
#include <stdint.h>

#include "profile.h"

#define LS_L2_FILE "l2.json"
#define LS_L2_PORT 4789
#define LS_L2_NAME_MAX 10 /* "lsvx-" + name fits IFNAMSIZ */

struct ls_netmap;

/* Letters, digits, '-'; 1..LS_L2_NAME_MAX. */
int ls_l2seg_name_valid(const char *name);
/* The segment's VNI in a network: 1..0xffffff. */
uint32_t ls_l2seg_vni(const char *network_id, const char *name);

/* Enables (or updates) a segment in the profile's file. peers: comma-separated names or
 * ids ("" or NULL: all); attach: comma-separated local interfaces to enslave; vni 0:
 * derived. */
int ls_l2seg_add(const struct ls_profile *p, const char *name, uint32_t vni, const char *peers, const char *attach,
		 char *err, size_t err_size);
/* Disables it: removed from the file and its devices deleted. -ENOENT when unknown. */
int ls_l2seg_remove(const struct ls_profile *p, const char *name, char *err, size_t err_size);

/* Brings the devices and FDB entries in line with the file and the netmap (nm NULL: the
 * cached one). Returns at once when the profile has no segments. */
int ls_l2seg_apply(const struct ls_profile *p, const struct ls_netmap *nm);

/* {"segments": [{"name", "vni", "bridge", "vxlan", "up", "mtu", "local", "attach",
 *   "peers": [{"name", "dst"}], "error"?}]} */
json_t *ls_l2seg_status(const struct ls_profile *p, const struct ls_netmap *nm);

#endif
