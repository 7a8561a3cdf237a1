/* SPDX-License-Identifier: MIT */
/* liblsbpf internals shared by its files. */
#ifndef LS_LSBPF_INT_H
#define LS_LSBPF_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lightscale;

/* Program variants by the L2 length of the device they attach to: index 0 for L3
 * devices (IP at offset 0: WireGuard, TUN, PPP), 1 for Ethernet (14). */
#define LSBPF_L2_KINDS 2
#define LSBPF_ROLES 3

struct lsbpf {
	struct lightscale *skel; /* maps, and the programs of each role at its default L2 */
	/* Loaded when an attachment needs a role at the other L2 length: that role's programs
	 * only, sharing every map of skel. */
	struct lightscale *variant[LSBPF_ROLES][LSBPF_L2_KINDS];
	char pin_dir[PATH_MAX];
	char lock_path[PATH_MAX];
	int lock_fd;
	bool no_pin;
};

/* The L2 header length of an interface in this netns: 14 (Ethernet, loopback) or 0 (L3
 * devices: WireGuard, TUN, PPP, raw-IP, IP tunnels); -EPROTONOSUPPORT for other link
 * types, -ENODEV when absent. *type gets the ARPHRD type when not NULL. */
int lsbpf_dev_l2(const char *ifname, unsigned *type);
/* The L2 length a role's program in obj uses (its .rodata). */
uint32_t lsbpf_role_l2(const struct lightscale *obj, int role);

/* TC priority of a pin dir's clsact filters (handle 1). */
uint32_t lsbpf_tc_prio(const char *pin_dir);
int lsbpf_default_pin_dir(const char *profile, char *out, size_t size);
int lsbpf_for_each_attachment(const char *pin_dir,
			      int (*fn)(void *arg, const char *kind, const char *ifname, const char *hook),
			      void *arg);
/* Adds lo-hi to ip_local_reserved_ports (this netns) unless already there. */
int lsbpf_reserve_ports(uint16_t lo, uint16_t hi);
/* Removes the range recorded in the config map, if present. */
void lsbpf_unreserve_ports(struct lsbpf *b);

#endif
