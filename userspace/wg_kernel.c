// SPDX-License-Identifier: MIT
/* Kernel engine: WireGuard generic netlink through libmnl, in the manner of
 * wireguard-tools' ipc-linux.h: -errno returns, EINTR-interrupted dumps retried, a large
 * peer set split across several messages, extended acks printed. */
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/wireguard.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "rtnl.h"
#include "wg.h"

#define LS_NL_BUF 8192
#define LS_NL_DUMP 32768

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif

struct genl {
	struct mnl_socket *nl;
	unsigned int portid;
	uint16_t family;
	unsigned int seq;
	char ext[256];
};

static int family_cb(const struct nlmsghdr *nlh, void *data)
{
	struct genl *g = data;
	const struct nlattr *attr;

	mnl_attr_for_each(attr, nlh, sizeof(struct genlmsghdr)) {
		if (mnl_attr_get_type(attr) == CTRL_ATTR_FAMILY_ID)
			g->family = mnl_attr_get_u16(attr);
	}
	return MNL_CB_OK;
}

static void grab_ext(struct genl *g, const void *buf, size_t n)
{
	int len = (int)n;

	for (const struct nlmsghdr *m = buf; mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
		const struct nlmsgerr *e;
		const struct nlattr *attr;
		size_t off;

		if (m->nlmsg_type != NLMSG_ERROR || !(m->nlmsg_flags & NLM_F_ACK_TLVS))
			continue;
		e = mnl_nlmsg_get_payload(m);
		if (!e->error)
			continue;
		off = sizeof(*e) + ((m->nlmsg_flags & NLM_F_CAPPED) ? 0 : e->msg.nlmsg_len - sizeof(struct nlmsghdr));
		if (mnl_nlmsg_get_payload_len(m) <= off)
			continue;
		mnl_attr_for_each_payload((const void *)((const char *)e + off), mnl_nlmsg_get_payload_len(m) - off) {
			if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
			    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
				snprintf(g->ext, sizeof(g->ext), "%s", mnl_attr_get_str(attr));
		}
	}
}

/* Runs one request to completion (ack or end of dump). */
static int genl_talk(struct genl *g, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char buf[LS_NL_DUMP];
	int ret;

	nlh->nlmsg_seq = ++g->seq;
	if (mnl_socket_sendto(g->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(g->nl, buf, sizeof(buf));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		grab_ext(g, buf, (size_t)n);
		ret = mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, g->portid, cb, data);
		if (ret <= 0)
			return ret < 0 ? -errno : 0;
	}
}

static void genl_close(struct genl *g)
{
	if (g->nl)
		mnl_socket_close(g->nl);
	g->nl = NULL;
}

static int genl_open(struct genl *g)
{
	char buf[LS_NL_BUF] = { 0 };
	struct nlmsghdr *nlh;
	struct genlmsghdr *gh;
	int one = 1, ret;

	memset(g, 0, sizeof(*g));
	g->seq = (unsigned int)time(NULL);
	g->nl = mnl_socket_open2(NETLINK_GENERIC, SOCK_CLOEXEC);
	if (!g->nl)
		return -errno;
	mnl_socket_setsockopt(g->nl, NETLINK_EXT_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(g->nl, NETLINK_CAP_ACK, &one, sizeof(one));
	if (mnl_socket_bind(g->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		genl_close(g);
		return ret;
	}
	g->portid = mnl_socket_get_portid(g->nl);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = GENL_ID_CTRL;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	gh = mnl_nlmsg_put_extra_header(nlh, sizeof(*gh));
	gh->cmd = CTRL_CMD_GETFAMILY;
	gh->version = 1;
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, WG_GENL_NAME);
	ret = genl_talk(g, nlh, family_cb, g);
	if (!ret && !g->family)
		ret = -ENOENT;
	if (ret)
		genl_close(g);
	return ret;
}

int ls_wg_kernel_available(char *why, size_t why_size)
{
	struct genl g;
	int ret = genl_open(&g);

	if (ret) {
		if (why)
			snprintf(why, why_size,
				 "kernel WireGuard is not available: this kernel has no `%s' generic netlink "
				 "family (%s; the module is not built or not loaded); use --engine userspace",
				 WG_GENL_NAME, strerror(-ret));
		return ret;
	}
	genl_close(&g);
	return 0;
}

static struct nlmsghdr *wg_header(char *buf, struct genl *g, uint8_t cmd, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct genlmsghdr *gh;

	nlh->nlmsg_type = g->family;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	gh = mnl_nlmsg_put_extra_header(nlh, sizeof(*gh));
	gh->cmd = cmd;
	gh->version = WG_GENL_VERSION;
	return nlh;
}

static bool put_allowed(struct nlmsghdr *nlh, size_t limit, const struct ls_prefix *a)
{
	struct nlattr *n = mnl_attr_nest_start_check(nlh, limit, 0);

	if (!n)
		return false;
	if (!mnl_attr_put_u16_check(nlh, limit, WGALLOWEDIP_A_FAMILY, a->family) ||
	    !mnl_attr_put_check(nlh, limit, WGALLOWEDIP_A_IPADDR, a->family == AF_INET ? 4 : 16, a->addr) ||
	    !mnl_attr_put_u8_check(nlh, limit, WGALLOWEDIP_A_CIDR_MASK, a->len)) {
		mnl_attr_nest_cancel(nlh, n);
		return false;
	}
	mnl_attr_nest_end(nlh, n);
	return true;
}

/* Builds dev into as many WG_CMD_SET_DEVICE messages as it takes, calling emit on each:
 * every message carries the device name and as many peers (and allowed IPs) as fit in
 * LS_WG_MSG_MAX bytes; a peer cut in the middle continues in the next message with its
 * key and the rest of its allowed IPs only (so WGPEER_F_REPLACE_ALLOWEDIPS applies once). */
int ls_wg_kernel_build_set(const struct ls_wg_device *dev, uint16_t family,
			   int (*emit)(struct nlmsghdr *nlh, void *arg), void *arg)
{
	char *buf = calloc(1, LS_WG_MSG_MAX);
	size_t peer = 0, allowed = 0;
	bool first = true;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	do {
		struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
		struct genlmsghdr *gh;
		size_t limit = LS_WG_MSG_MAX;
		struct nlattr *peers = NULL;

		nlh->nlmsg_type = family;
		nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
		gh = mnl_nlmsg_put_extra_header(nlh, sizeof(*gh));
		gh->cmd = WG_CMD_SET_DEVICE;
		gh->version = WG_GENL_VERSION;
		mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, dev->ifname);
		if (first) {
			if (dev->flags & LS_WGD_PRIVATE_KEY)
				mnl_attr_put(nlh, WGDEVICE_A_PRIVATE_KEY, LS_WG_KEY_LEN, dev->private_key);
			if (dev->flags & LS_WGD_LISTEN_PORT)
				mnl_attr_put_u16(nlh, WGDEVICE_A_LISTEN_PORT, dev->listen_port);
			if (dev->flags & LS_WGD_FWMARK)
				mnl_attr_put_u32(nlh, WGDEVICE_A_FWMARK, dev->fwmark);
			if (dev->flags & LS_WGD_REPLACE_PEERS)
				mnl_attr_put_u32(nlh, WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS);
		}
		if (peer < dev->n_peers)
			peers = mnl_attr_nest_start(nlh, WGDEVICE_A_PEERS);
		for (; peer < dev->n_peers; peer++, allowed = 0) {
			const struct ls_wg_peer *p = &dev->peers[peer];
			struct nlattr *pn = mnl_attr_nest_start_check(nlh, limit, 0), *an;
			uint32_t flags = 0;

			if (!pn)
				goto full;
			if (!mnl_attr_put_check(nlh, limit, WGPEER_A_PUBLIC_KEY, LS_WG_KEY_LEN, p->key))
				goto cancel_peer;
			if (!allowed) {
				if (p->flags & LS_WGP_REMOVE)
					flags |= WGPEER_F_REMOVE_ME;
				if (p->flags & LS_WGP_REPLACE_ALLOWED)
					flags |= WGPEER_F_REPLACE_ALLOWEDIPS;
				if (p->flags & LS_WGP_UPDATE_ONLY)
					flags |= WGPEER_F_UPDATE_ONLY;
				if (flags && !mnl_attr_put_u32_check(nlh, limit, WGPEER_A_FLAGS, flags))
					goto cancel_peer;
				if ((p->flags & LS_WGP_HAS_ENDPOINT) &&
				    !mnl_attr_put_check(nlh, limit, WGPEER_A_ENDPOINT,
							p->endpoint.ss_family == AF_INET ? sizeof(struct sockaddr_in)
											 : sizeof(struct sockaddr_in6),
							&p->endpoint))
					goto cancel_peer;
				if ((p->flags & LS_WGP_HAS_KEEPALIVE) &&
				    !mnl_attr_put_u16_check(nlh, limit, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
							    p->keepalive))
					goto cancel_peer;
			}
			if (p->n_allowed && !(p->flags & LS_WGP_REMOVE)) {
				size_t from = allowed;

				an = mnl_attr_nest_start_check(nlh, limit, WGPEER_A_ALLOWEDIPS);
				if (!an)
					goto cancel_peer;
				for (; allowed < p->n_allowed; allowed++) {
					if (!put_allowed(nlh, limit, &p->allowed[allowed])) {
						if (allowed == from) { /* not one fitted: the peer goes next time */
							mnl_attr_nest_cancel(nlh, an);
							goto cancel_peer;
						}
						mnl_attr_nest_end(nlh, an);
						mnl_attr_nest_end(nlh, pn);
						goto full;
					}
				}
				mnl_attr_nest_end(nlh, an);
			}
			mnl_attr_nest_end(nlh, pn);
			continue;
cancel_peer:
			mnl_attr_nest_cancel(nlh, pn);
			goto full;
		}
full:
		if (peers)
			mnl_attr_nest_end(nlh, peers);
		ret = emit(nlh, arg);
		if (ret)
			break;
		first = false;
	} while (peer < dev->n_peers);
	free(buf);
	return ret;
}

struct set_ctx {
	struct genl *g;
	const char *ifname;
};

static int set_emit(struct nlmsghdr *nlh, void *arg)
{
	struct set_ctx *c = arg;
	int ret = genl_talk(c->g, nlh, NULL, NULL);

	if (ret)
		pr_err("%s: WireGuard set failed: %s%s%s", c->ifname, strerror(-ret), c->g->ext[0] ? ": " : "",
		       c->g->ext);
	return ret;
}

static int kernel_set(const struct ls_wg_device *dev)
{
	struct genl g;
	struct set_ctx c = { &g, dev->ifname };
	int ret;

	if ((ret = genl_open(&g)))
		return ret;
	ret = ls_wg_kernel_build_set(dev, g.family, set_emit, &c);
	genl_close(&g);
	return ret;
}

struct get_ctx {
	struct ls_wg_device *dev;
	size_t cap;
	int ret;
};

static int parse_allowed(const struct nlattr *attr, struct ls_wg_peer *p)
{
	const struct nlattr *a, *x;

	mnl_attr_for_each_nested(a, attr) {
		struct ls_prefix pf = { 0 };

		mnl_attr_for_each_nested(x, a) {
			switch (mnl_attr_get_type(x)) {
			case WGALLOWEDIP_A_FAMILY:
				pf.family = (uint8_t)mnl_attr_get_u16(x);
				break;
			case WGALLOWEDIP_A_IPADDR:
				memcpy(pf.addr, mnl_attr_get_payload(x),
				       mnl_attr_get_payload_len(x) > 16 ? 16 : mnl_attr_get_payload_len(x));
				break;
			case WGALLOWEDIP_A_CIDR_MASK:
				pf.len = mnl_attr_get_u8(x);
				break;
			}
		}
		if (pf.family != AF_INET && pf.family != AF_INET6)
			continue;
		struct ls_prefix *n = realloc(p->allowed, (p->n_allowed + 1) * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->allowed = n;
		p->allowed[p->n_allowed++] = pf;
	}
	return 0;
}

static int get_cb(const struct nlmsghdr *nlh, void *data);

int ls_wg_kernel_parse_msg(const struct nlmsghdr *nlh, struct ls_wg_device *dev, size_t *cap)
{
	struct get_ctx c = { .dev = dev, .cap = *cap };
	int ret = get_cb(nlh, &c);

	*cap = c.cap;
	return ret == MNL_CB_OK ? 0 : c.ret ? c.ret : -EBADMSG;
}

static int get_cb(const struct nlmsghdr *nlh, void *data)
{
	struct get_ctx *c = data;
	const struct nlattr *attr, *pa, *x;
	struct ls_wg_device *d = c->dev;

	mnl_attr_for_each(attr, nlh, sizeof(struct genlmsghdr)) {
		switch (mnl_attr_get_type(attr)) {
		case WGDEVICE_A_PRIVATE_KEY:
			if (mnl_attr_get_payload_len(attr) == LS_WG_KEY_LEN) {
				memcpy(d->private_key, mnl_attr_get_payload(attr), LS_WG_KEY_LEN);
				d->flags |= LS_WGD_PRIVATE_KEY;
			}
			break;
		case WGDEVICE_A_PUBLIC_KEY:
			if (mnl_attr_get_payload_len(attr) == LS_WG_KEY_LEN)
				memcpy(d->public_key, mnl_attr_get_payload(attr), LS_WG_KEY_LEN);
			break;
		case WGDEVICE_A_LISTEN_PORT:
			d->listen_port = mnl_attr_get_u16(attr);
			d->flags |= LS_WGD_LISTEN_PORT;
			break;
		case WGDEVICE_A_FWMARK:
			d->fwmark = mnl_attr_get_u32(attr);
			d->flags |= LS_WGD_FWMARK;
			break;
		case WGDEVICE_A_PEERS:
			mnl_attr_for_each_nested(pa, attr) {
				struct ls_wg_peer *p = NULL;

				/* a peer continued from the previous message has the same key */
				mnl_attr_for_each_nested(x, pa) {
					if (mnl_attr_get_type(x) == WGPEER_A_PUBLIC_KEY &&
					    mnl_attr_get_payload_len(x) == LS_WG_KEY_LEN) {
						const void *k = mnl_attr_get_payload(x);

						if (d->n_peers && !memcmp(d->peers[d->n_peers - 1].key, k, LS_WG_KEY_LEN)) {
							p = &d->peers[d->n_peers - 1];
						} else {
							if (d->n_peers == c->cap) {
								size_t nc = c->cap ? c->cap * 2 : 16;
								struct ls_wg_peer *np = realloc(d->peers, nc * sizeof(*np));

								if (!np) {
									c->ret = -ENOMEM;
									return MNL_CB_ERROR;
								}
								d->peers = np;
								c->cap = nc;
							}
							p = &d->peers[d->n_peers++];
							memset(p, 0, sizeof(*p));
							memcpy(p->key, k, LS_WG_KEY_LEN);
						}
					}
				}
				if (!p)
					continue;
				mnl_attr_for_each_nested(x, pa) {
					switch (mnl_attr_get_type(x)) {
					case WGPEER_A_ENDPOINT:
						if (mnl_attr_get_payload_len(x) <= sizeof(p->endpoint)) {
							memcpy(&p->endpoint, mnl_attr_get_payload(x), mnl_attr_get_payload_len(x));
							p->flags |= LS_WGP_HAS_ENDPOINT;
						}
						break;
					case WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL:
						p->keepalive = mnl_attr_get_u16(x);
						p->flags |= LS_WGP_HAS_KEEPALIVE;
						break;
					case WGPEER_A_LAST_HANDSHAKE_TIME:
						if (mnl_attr_get_payload_len(x) >= 16) {
							const int64_t *ts = mnl_attr_get_payload(x);

							p->last_handshake_sec = ts[0];
							p->last_handshake_nsec = ts[1];
						}
						break;
					case WGPEER_A_RX_BYTES:
						p->rx_bytes = mnl_attr_get_u64(x);
						break;
					case WGPEER_A_TX_BYTES:
						p->tx_bytes = mnl_attr_get_u64(x);
						break;
					case WGPEER_A_ALLOWEDIPS:
						if (parse_allowed(x, p)) {
							c->ret = -ENOMEM;
							return MNL_CB_ERROR;
						}
						break;
					}
				}
			}
			break;
		}
	}
	return MNL_CB_OK;
}

static int kernel_get(const char *ifname, struct ls_wg_device **out)
{
	char buf[LS_NL_BUF] = { 0 };
	struct get_ctx c = { 0 };
	struct nlmsghdr *nlh;
	struct genl g;
	int ret, tries = 0;

	*out = NULL;
	if ((ret = genl_open(&g)))
		return ret;
again:
	c.dev = calloc(1, sizeof(*c.dev));
	c.cap = 0;
	if (!c.dev) {
		ret = -ENOMEM;
		goto cleanup;
	}
	snprintf(c.dev->ifname, IFNAMSIZ, "%s", ifname);
	nlh = wg_header(buf, &g, WG_CMD_GET_DEVICE, NLM_F_DUMP | NLM_F_ACK);
	mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, ifname);
	ret = genl_talk(&g, nlh, get_cb, &c);
	if (!ret)
		ret = c.ret;
	if (ret == -EINTR && ++tries < 10) {
		ls_wg_device_free(c.dev);
		goto again;
	}
	if (ret) {
		ls_wg_device_free(c.dev);
		goto cleanup;
	}
	*out = c.dev;
cleanup:
	genl_close(&g);
	return ret;
}

/* The first message of the dump answers the question; the rest of a large peer set is
 * never read (closing the socket drops it). */
static int exists_cb(const struct nlmsghdr *nlh, void *data)
{
	(void)nlh;
	*(bool *)data = true;
	return MNL_CB_STOP;
}

/* Is ifname a WireGuard device? Asked every 2 s by the agent: no peer is parsed, so it
 * costs the same at 10,000 peers as at one. */
static bool kernel_exists(const char *ifname)
{
	char buf[LS_NL_BUF] = { 0 };
	struct nlmsghdr *nlh;
	struct genl g;
	bool seen = false;
	int ret;

	if (!if_nametoindex(ifname) || ls_wg_kernel_available(NULL, 0))
		return false;
	if (genl_open(&g))
		return false;
	nlh = wg_header(buf, &g, WG_CMD_GET_DEVICE, NLM_F_DUMP | NLM_F_ACK);
	mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, ifname);
	ret = genl_talk(&g, nlh, exists_cb, &seen);
	genl_close(&g);
	return !ret && seen;
}

static int kernel_create(const char *ifname, bool *created)
{
	char why[256];
	int ret;

	*created = false;
	if ((ret = ls_wg_kernel_available(why, sizeof(why)))) {
		pr_err("%s", why);
		return ret;
	}
	if (kernel_exists(ifname))
		return 0;
	ret = ls_rtnl_link_add_kind(ifname, "wireguard");
	if (ret) {
		pr_err("%s: cannot create a wireguard link: %s%s%s", ifname, strerror(-ret),
		       ls_rtnl_last_error()[0] ? ": " : "", ls_rtnl_last_error());
		return ret;
	}
	*created = true;
	return 0;
}

static int kernel_destroy(const char *ifname)
{
	int idx = (int)if_nametoindex(ifname);

	return idx ? ls_rtnl_link_del(idx) : -ENODEV;
}

const struct ls_wg_engine ls_wg_kernel = {
	.kind = LS_ENGINE_KERNEL,
	.name = "kernel",
	.create = kernel_create,
	.exists = kernel_exists,
	.set = kernel_set,
	.get = kernel_get,
	.destroy = kernel_destroy,
};

const struct ls_wg_engine *ls_wg_engine_serving(const char *ifname)
{
	if (ls_wg_userspace.exists(ifname))
		return &ls_wg_userspace;
	if (ls_wg_kernel.exists(ifname))
		return &ls_wg_kernel;
	return NULL;
}

int ls_wg_engine_pick(const char *want, const char *ifname, const struct ls_wg_engine **out)
{
	const struct ls_wg_engine *serving = ls_wg_engine_serving(ifname);
	char why[256];
	int ret;

	*out = NULL;
	if (!want || !strcmp(want, "auto")) {
		if (serving) {
			*out = serving;
			return 0;
		}
		*out = ls_wg_kernel_available(NULL, 0) == 0 ? &ls_wg_kernel : &ls_wg_userspace;
		return 0;
	}
	if (!strcmp(want, "kernel")) {
		if ((ret = ls_wg_kernel_available(why, sizeof(why)))) {
			pr_err("--engine kernel: %s", why);
			return ret;
		}
		if (serving && serving != &ls_wg_kernel) {
			pr_err("--engine kernel: %s is served by the %s engine; run lightscale wg-down first", ifname,
			       serving->name);
			return -EBUSY;
		}
		*out = &ls_wg_kernel;
		return 0;
	}
	if (!strcmp(want, "userspace")) {
		if (serving && serving != &ls_wg_userspace) {
			pr_err("--engine userspace: %s is served by the %s engine; run lightscale wg-down first", ifname,
			       serving->name);
			return -EBUSY;
		}
		*out = &ls_wg_userspace;
		return 0;
	}
	pr_err("invalid engine `%s' (auto, kernel or userspace)", want);
	return -EINVAL;
}
