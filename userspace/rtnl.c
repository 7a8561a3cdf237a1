// SPDX-License-Identifier: MIT
/* rtnetlink with libmnl: links, addresses, routes, rules; monitor; sysctls. */
#include "rtnl.h"

#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LS_NL_BUF 8192
#define LS_NL_DUMP 32768

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif

static __thread char last_err[256];

const char *ls_rtnl_last_error(void)
{
	return last_err;
}

/* Extended ack: the kernel's message after a failed request. */
static void grab_extack(const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr;
	size_t off;

	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	off = sizeof(*e);
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - sizeof(struct nlmsghdr);
	if (mnl_nlmsg_get_payload_len(nlh) <= off)
		return;
	mnl_attr_for_each_payload((const void *)((const char *)e + off), mnl_nlmsg_get_payload_len(nlh) - off) {
		if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG && mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
			snprintf(last_err, sizeof(last_err), "%s", mnl_attr_get_str(attr));
	}
}

static struct mnl_socket *rtnl_open(void)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	int one = 1;

	if (!nl)
		return NULL;
	mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof(one));
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		mnl_socket_close(nl);
		return NULL;
	}
	return nl;
}

/* Sends one request and runs cb on every answer until the ack or the end of a dump.
 * A dump interrupted by a concurrent change (NLM_F_DUMP_INTR) is retried. */
static int rtnl_talk(struct nlmsghdr *nlh, mnl_cb_t cb, void *data, void (*reset)(void *data))
{
	char buf[LS_NL_DUMP];
	struct mnl_socket *nl;
	unsigned int portid;
	int ret, tries = 0;

	last_err[0] = '\0';
	nl = rtnl_open();
	if (!nl)
		return -errno;
	portid = mnl_socket_get_portid(nl);
again:
	nlh->nlmsg_seq = (unsigned int)time(NULL) + (unsigned int)tries;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		ret = -errno;
		goto cleanup;
	}
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		const struct nlmsghdr *m;
		int len;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto cleanup;
		}
		len = (int)n;
		for (m = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
			if (m->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(m);

				if (e->error)
					grab_extack(m);
			}
		}
		ret = mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, portid, cb, data);
		if (ret == MNL_CB_STOP || ret == 0) {
			ret = 0;
			break;
		}
		if (ret < 0) {
			ret = -errno;
			if (ret == -EINTR && (nlh->nlmsg_flags & NLM_F_DUMP) && ++tries < 10) {
				if (reset)
					reset(data);
				goto again;
			}
			goto cleanup;
		}
	}
cleanup:
	mnl_socket_close(nl);
	return ret;
}

static void log_failure(const char *what, int ret)
{
	if (last_err[0])
		pr_debug("%s: %s (kernel: %s)", what, strerror(-ret), last_err);
	else
		pr_debug("%s: %s", what, strerror(-ret));
}

int ls_rtnl_link_set(int ifindex, bool up, int mtu)
{
	char buf[LS_NL_BUF] = { 0 };
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;
	int ret;

	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	ifi->ifi_change = IFF_UP;
	ifi->ifi_flags = up ? IFF_UP : 0;
	if (mtu > 0)
		mnl_attr_put_u32(nlh, IFLA_MTU, (uint32_t)mtu);
	ret = rtnl_talk(nlh, NULL, NULL, NULL);
	if (ret)
		log_failure("link set", ret);
	return ret;
}

int ls_rtnl_link_del(int ifindex)
{
	char buf[LS_NL_BUF] = { 0 };
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;

	nlh->nlmsg_type = RTM_DELLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	return rtnl_talk(nlh, NULL, NULL, NULL);
}

int ls_rtnl_link_add_kind(const char *ifname, const char *kind)
{
	char buf[LS_NL_BUF] = { 0 };
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;
	struct nlattr *info;
	int ret;

	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, kind);
	mnl_attr_nest_end(nlh, info);
	ret = rtnl_talk(nlh, NULL, NULL, NULL);
	if (ret)
		log_failure("link add", ret);
	return ret;
}

static uint16_t op_flags(enum ls_rtnl_op op)
{
	switch (op) {
	case LS_RTNL_ADD:
		return NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
	case LS_RTNL_REPLACE:
		return NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
	case LS_RTNL_DEL:
		break;
	}
	return NLM_F_REQUEST | NLM_F_ACK;
}

static size_t addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

int ls_rtnl_addr(enum ls_rtnl_op op, int ifindex, const struct ls_prefix *addr)
{
	char buf[LS_NL_BUF] = { 0 };
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;
	int ret;

	nlh->nlmsg_type = op == LS_RTNL_DEL ? RTM_DELADDR : RTM_NEWADDR;
	nlh->nlmsg_flags = op_flags(op);
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = addr->family;
	ifa->ifa_prefixlen = addr->len;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned int)ifindex;
	if (addr->family == AF_INET6)
		ifa->ifa_flags = IFA_F_NODAD;
	mnl_attr_put(nlh, IFA_LOCAL, addr_len(addr->family), addr->addr);
	mnl_attr_put(nlh, IFA_ADDRESS, addr_len(addr->family), addr->addr);
	ret = rtnl_talk(nlh, NULL, NULL, NULL);
	if (ret && !(op == LS_RTNL_ADD && ret == -EEXIST))
		log_failure("address", ret);
	return ret;
}

struct vec {
	void *v;
	size_t n, cap, size;
	int ret;
};

static void *vec_push(struct vec *v)
{
	if (v->n == v->cap) {
		size_t nc = v->cap ? v->cap * 2 : 16;
		void *nv = realloc(v->v, nc * v->size);

		if (!nv) {
			v->ret = -ENOMEM;
			return NULL;
		}
		v->v = nv;
		v->cap = nc;
	}
	return memset((char *)v->v + v->n++ * v->size, 0, v->size);
}

static void vec_reset(void *data)
{
	((struct vec *)data)->n = 0;
}

struct addr_dump {
	struct vec vec;
	int ifindex;
};

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
	struct addr_dump *d = data;
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr;
	const void *local = NULL, *address = NULL;
	uint32_t flags = ifa->ifa_flags;
	struct ls_rtnl_addr *a;

	if (d->ifindex && (int)ifa->ifa_index != d->ifindex)
		return MNL_CB_OK;
	if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)
		return MNL_CB_OK;
	mnl_attr_for_each(attr, nlh, sizeof(*ifa)) {
		if (mnl_attr_get_payload_len(attr) < addr_len(ifa->ifa_family))
			continue;
		if (mnl_attr_get_type(attr) == IFA_LOCAL)
			local = mnl_attr_get_payload(attr);
		else if (mnl_attr_get_type(attr) == IFA_ADDRESS)
			address = mnl_attr_get_payload(attr);
		else if (mnl_attr_get_type(attr) == IFA_FLAGS && mnl_attr_get_payload_len(attr) >= 4)
			flags = mnl_attr_get_u32(attr);
	}
	if (!local)
		local = address;
	if (!local)
		return MNL_CB_OK;
	a = vec_push(&d->vec);
	if (!a)
		return MNL_CB_ERROR;
	a->ifindex = (int)ifa->ifa_index;
	a->addr.family = ifa->ifa_family;
	a->addr.len = ifa->ifa_prefixlen;
	memcpy(a->addr.addr, local, addr_len(ifa->ifa_family));
	a->scope = ifa->ifa_scope;
	a->flags = flags;
	return MNL_CB_OK;
}

int ls_rtnl_addr_list(int family, int ifindex, struct ls_rtnl_addr **out, size_t *n)
{
	char buf[LS_NL_BUF] = { 0 };
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct addr_dump d = { .vec = { .size = sizeof(struct ls_rtnl_addr) }, .ifindex = ifindex };
	struct ifaddrmsg *ifa;
	int ret;

	nlh->nlmsg_type = RTM_GETADDR;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (uint8_t)family;
	ret = rtnl_talk(nlh, addr_cb, &d, vec_reset);
	if (!ret)
		ret = d.vec.ret;
	if (ret) {
		free(d.vec.v);
		return ret;
	}
	*out = d.vec.v;
	*n = d.vec.n;
	return 0;
}

int ls_rtnl_route(enum ls_rtnl_op op, uint32_t table, const struct ls_prefix *dst, int ifindex)
{
	char buf[LS_NL_BUF] = { 0 };
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;
	int ret;

	nlh->nlmsg_type = op == LS_RTNL_DEL ? RTM_DELROUTE : RTM_NEWROUTE;
	nlh->nlmsg_flags = op_flags(op);
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = dst->family;
	rtm->rtm_dst_len = dst->len;
	rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
	rtm->rtm_protocol = RTPROT_STATIC;
	rtm->rtm_scope = op == LS_RTNL_DEL ? RT_SCOPE_NOWHERE : RT_SCOPE_LINK;
	rtm->rtm_type = RTN_UNICAST;
	mnl_attr_put_u32(nlh, RTA_TABLE, table);
	if (dst->len)
		mnl_attr_put(nlh, RTA_DST, addr_len(dst->family), dst->addr);
	if (ifindex)
		mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)ifindex);
	ret = rtnl_talk(nlh, NULL, NULL, NULL);
	if (ret && !(op == LS_RTNL_ADD && ret == -EEXIST) && !(op == LS_RTNL_DEL && ret == -ESRCH))
		log_failure("route", ret);
	return ret;
}

struct route_dump {
	struct vec vec;
	uint32_t table;
};

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
	struct route_dump *d = data;
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr;
	struct ls_rtnl_route r = { 0 };

	if (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6)
		return MNL_CB_OK;
	r.dst.family = rtm->rtm_family;
	r.dst.len = rtm->rtm_dst_len;
	r.table = rtm->rtm_table;
	r.type = rtm->rtm_type;
	r.proto = rtm->rtm_protocol;
	mnl_attr_for_each(attr, nlh, sizeof(*rtm)) {
		switch (mnl_attr_get_type(attr)) {
		case RTA_DST:
			if (mnl_attr_get_payload_len(attr) >= addr_len(rtm->rtm_family))
				memcpy(r.dst.addr, mnl_attr_get_payload(attr), addr_len(rtm->rtm_family));
			break;
		case RTA_TABLE:
			r.table = mnl_attr_get_u32(attr);
			break;
		case RTA_OIF:
			r.oif = (int)mnl_attr_get_u32(attr);
			break;
		case RTA_GATEWAY:
			r.has_gateway = true;
			break;
		}
	}
	if (d->table && r.table != d->table)
		return MNL_CB_OK;
	struct ls_rtnl_route *slot = vec_push(&d->vec);

	if (!slot)
		return MNL_CB_ERROR;
	*slot = r;
	return MNL_CB_OK;
}

int ls_rtnl_route_list(int family, uint32_t table, struct ls_rtnl_route **out, size_t *n)
{
	char buf[LS_NL_BUF] = { 0 };
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct route_dump d = { .vec = { .size = sizeof(struct ls_rtnl_route) }, .table = table };
	struct rtmsg *rtm;
	int ret;

	nlh->nlmsg_type = RTM_GETROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (uint8_t)family;
	ret = rtnl_talk(nlh, route_cb, &d, vec_reset);
	if (!ret)
		ret = d.vec.ret;
	if (ret) {
		free(d.vec.v);
		return ret;
	}
	*out = d.vec.v;
	*n = d.vec.n;
	return 0;
}

int ls_rtnl_rule(enum ls_rtnl_op op, const struct ls_rtnl_rule *r)
{
	char buf[LS_NL_BUF] = { 0 };
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct fib_rule_hdr *frh;
	int ret;

	nlh->nlmsg_type = op == LS_RTNL_DEL ? RTM_DELRULE : RTM_NEWRULE;
	/* rules have no replace semantics: ADD with EXCL refuses a duplicate */
	nlh->nlmsg_flags = op == LS_RTNL_DEL ? NLM_F_REQUEST | NLM_F_ACK : NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
	frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
	frh->family = (uint8_t)r->family;
	frh->action = FR_ACT_TO_TBL;
	frh->table = r->table < 256 ? (uint8_t)r->table : RT_TABLE_UNSPEC;
	if (r->invert)
		frh->flags |= FIB_RULE_INVERT;
	if (r->has_dst) {
		frh->dst_len = r->dst.len;
		mnl_attr_put(nlh, FRA_DST, addr_len(r->family), r->dst.addr);
	}
	mnl_attr_put_u32(nlh, FRA_PRIORITY, r->priority);
	mnl_attr_put_u32(nlh, FRA_TABLE, r->table);
	if (r->fwmark || r->fwmask) {
		mnl_attr_put_u32(nlh, FRA_FWMARK, r->fwmark);
		mnl_attr_put_u32(nlh, FRA_FWMASK, r->fwmask ? r->fwmask : 0xffffffffu);
	}
	if (r->suppress_prefixlen >= 0)
		mnl_attr_put_u32(nlh, FRA_SUPPRESS_PREFIXLEN, (uint32_t)r->suppress_prefixlen);
	ret = rtnl_talk(nlh, NULL, NULL, NULL);
	if (ret && !(op == LS_RTNL_ADD && ret == -EEXIST) && !(op == LS_RTNL_DEL && ret == -ENOENT))
		log_failure("rule", ret);
	return ret;
}

static int rule_cb(const struct nlmsghdr *nlh, void *data)
{
	struct vec *v = data;
	const struct fib_rule_hdr *frh = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr;
	struct ls_rtnl_rule r = { .suppress_prefixlen = -1 };
	struct ls_rtnl_rule *slot;

	r.family = frh->family;
	r.table = frh->table;
	r.invert = frh->flags & FIB_RULE_INVERT;
	if (frh->action != FR_ACT_TO_TBL)
		return MNL_CB_OK;
	mnl_attr_for_each(attr, nlh, sizeof(*frh)) {
		switch (mnl_attr_get_type(attr)) {
		case FRA_PRIORITY:
			r.priority = mnl_attr_get_u32(attr);
			break;
		case FRA_TABLE:
			r.table = mnl_attr_get_u32(attr);
			break;
		case FRA_FWMARK:
			r.fwmark = mnl_attr_get_u32(attr);
			break;
		case FRA_FWMASK:
			r.fwmask = mnl_attr_get_u32(attr);
			break;
		case FRA_SUPPRESS_PREFIXLEN:
			r.suppress_prefixlen = (int)mnl_attr_get_u32(attr);
			if (r.suppress_prefixlen == -1 || (uint32_t)r.suppress_prefixlen == 0xffffffffu)
				r.suppress_prefixlen = -1;
			break;
		case FRA_DST:
			if (mnl_attr_get_payload_len(attr) >= addr_len(frh->family)) {
				r.has_dst = true;
				r.dst.family = frh->family;
				r.dst.len = frh->dst_len;
				memcpy(r.dst.addr, mnl_attr_get_payload(attr), addr_len(frh->family));
			}
			break;
		}
	}
	if (r.fwmark && r.fwmask == 0xffffffffu)
		r.fwmask = 0;
	slot = vec_push(v);
	if (!slot)
		return MNL_CB_ERROR;
	*slot = r;
	return MNL_CB_OK;
}

int ls_rtnl_rule_list(int family, struct ls_rtnl_rule **out, size_t *n)
{
	char buf[LS_NL_BUF] = { 0 };
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct vec v = { .size = sizeof(struct ls_rtnl_rule) };
	struct fib_rule_hdr *frh;
	int ret;

	nlh->nlmsg_type = RTM_GETRULE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
	frh->family = (uint8_t)family;
	ret = rtnl_talk(nlh, rule_cb, &v, vec_reset);
	if (!ret)
		ret = v.ret;
	if (ret) {
		free(v.v);
		return ret;
	}
	*out = v.v;
	*n = v.n;
	return 0;
}

bool ls_rtnl_rule_equal(const struct ls_rtnl_rule *a, const struct ls_rtnl_rule *b)
{
	uint32_t ma = a->fwmask == 0xffffffffu ? 0 : a->fwmask, mb = b->fwmask == 0xffffffffu ? 0 : b->fwmask;

	return a->family == b->family && a->priority == b->priority && a->table == b->table &&
	       a->fwmark == b->fwmark && ma == mb && a->invert == b->invert &&
	       a->suppress_prefixlen == b->suppress_prefixlen && a->has_dst == b->has_dst &&
	       (!a->has_dst || ls_prefix_equal(&a->dst, &b->dst));
}

int ls_rtnl_monitor_open(void)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
	unsigned int groups[] = { RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE,
				  RTNLGRP_IPV6_ROUTE, RTNLGRP_IPV4_RULE, RTNLGRP_IPV6_RULE };
	int fd;

	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int ret = -errno;

		mnl_socket_close(nl);
		return ret;
	}
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		mnl_socket_setsockopt(nl, NETLINK_ADD_MEMBERSHIP, &groups[i], sizeof(groups[i]));
	/* keep the fd, drop the libmnl wrapper without closing it */
	fd = dup(mnl_socket_get_fd(nl));
	mnl_socket_close(nl);
	if (fd < 0)
		return -errno;
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

int ls_rtnl_monitor_drain(int fd)
{
	char buf[LS_NL_DUMP];
	int count = 0;

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return count;
			if (errno == ENOBUFS) { /* overrun: something changed */
				count++;
				continue;
			}
			return -errno;
		}
		if (n == 0)
			return count;
		count++;
	}
}

int ls_sysctl_set(const char *path, const char *value)
{
	char p[256];
	int fd, ret = 0;

	snprintf(p, sizeof(p), "/proc/sys/%s", path);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, value, strlen(value)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int ls_sysctl_get(const char *path, char *out, size_t size)
{
	char p[256];
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "/proc/sys/%s", path);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, out, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
		n--;
	out[n] = '\0';
	return 0;
}
