/* SPDX-License-Identifier: MIT */
/* rtnetlink through libmnl: links, addresses, routes, rules. Every call returns 0 or
 * -errno; the kernel's extended-ack message, when there is one, is logged with the
 * failing request. */
#ifndef LS_RTNL_H
#define LS_RTNL_H

#include <stdbool.h>
#include <stdint.h>

#include "prefix.h"

enum ls_rtnl_op {
	LS_RTNL_ADD,     /* create; -EEXIST when there */
	LS_RTNL_REPLACE, /* create or replace */
	LS_RTNL_DEL,
};

/* The last extended-ack message (empty when none), for callers that report it. */
const char *ls_rtnl_last_error(void);

int ls_rtnl_link_set(int ifindex, bool up, int mtu); /* mtu 0: unchanged */
int ls_rtnl_link_del(int ifindex);
/* Creates a link of kind (e.g. "wireguard"). */
int ls_rtnl_link_add_kind(const char *ifname, const char *kind);

/* addr: the address with the prefix length of its on-link subnet (100.71.8.7/22). */
int ls_rtnl_addr(enum ls_rtnl_op op, int ifindex, const struct ls_prefix *addr);

struct ls_rtnl_addr {
	int ifindex;
	struct ls_prefix addr; /* host bits kept */
	uint8_t scope;         /* RT_SCOPE_* */
	uint32_t flags;        /* IFA_F_* */
};
/* Dumps addresses (ifindex 0: all). *out malloc'd. */
int ls_rtnl_addr_list(int family, int ifindex, struct ls_rtnl_addr **out, size_t *n);

struct ls_rtnl_route {
	struct ls_prefix dst;
	uint32_t table;
	int oif;
	uint8_t type;  /* RTN_* */
	uint8_t proto; /* RTPROT_* */
	bool has_gateway;
};
/* Unicast route dst dev ifindex in table. */
int ls_rtnl_route(enum ls_rtnl_op op, uint32_t table, const struct ls_prefix *dst, int ifindex);
/* Dumps the routes of a table (0: all tables) for a family (AF_UNSPEC: both). */
int ls_rtnl_route_list(int family, uint32_t table, struct ls_rtnl_route **out, size_t *n);

struct ls_rtnl_rule {
	int family;
	uint32_t priority;
	uint32_t table;
	uint32_t fwmark, fwmask;
	bool invert;              /* "not" */
	int suppress_prefixlen;   /* -1: none */
	struct ls_prefix dst;     /* dst.len 0 and family 0: none */
	bool has_dst;
};
int ls_rtnl_rule(enum ls_rtnl_op op, const struct ls_rtnl_rule *r);
int ls_rtnl_rule_list(int family, struct ls_rtnl_rule **out, size_t *n);
bool ls_rtnl_rule_equal(const struct ls_rtnl_rule *a, const struct ls_rtnl_rule *b);

/* A socket subscribed to link, address, route and rule changes (both families);
 * ls_rtnl_monitor_drain() reads what is queued and returns how many messages (>= 0). */
int ls_rtnl_monitor_open(void);
int ls_rtnl_monitor_drain(int fd);

/* Writes value to /proc/sys/PATH (e.g. "net/ipv4/ip_forward"). */
int ls_sysctl_set(const char *path, const char *value);
int ls_sysctl_get(const char *path, char *out, size_t size);

#endif
