/* SPDX-License-Identifier: MIT */
/* liblsbpf internals shared by its files. */
#ifndef LS_LSBPF_INT_H
#define LS_LSBPF_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lightscale;

struct lsbpf {
	struct lightscale *skel;
	char pin_dir[PATH_MAX];
	char lock_path[PATH_MAX];
	int lock_fd;
	bool no_pin;
};

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
