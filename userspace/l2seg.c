// SPDX-License-Identifier: MIT
/* L2 segments: a bridge and a VXLAN device over the overlay (l2seg.h). rtnetlink only. */
#include "l2seg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "netmap.h"
#include "rtnl.h"
#include "util.h"

/* ---- names and the file --------------------------------------------------------------- */

int ls_l2seg_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n < 1 || n > LS_L2_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
			return 0;
	}
	return 1;
}

uint32_t ls_l2seg_vni(const char *network_id, const char *name)
{
	char buf[256];
	uint32_t v;

	snprintf(buf, sizeof(buf), "%s/%s", network_id ? network_id : "", name);
	v = ls_hash32(buf) & 0xffffffu;
	return v ? v : 1;
}

static json_t *load(const struct ls_profile *p, char *err, size_t err_size)
{
	char path[PATH_MAX], *buf = NULL;
	size_t len;
	json_t *doc;
	json_error_t jerr;
	int ret;

	ls_profile_file(p, LS_L2_FILE, path, sizeof(path));
	ret = ls_read_file(path, &buf, &len, 1 << 20);
	if (ret == -ENOENT)
		return json_pack("{s:[]}", "segments");
	if (ret) {
		snprintf(err, err_size, "%s: %s", path, strerror(-ret));
		return NULL;
	}
	doc = json_loadb(buf, len, 0, &jerr);
	free(buf);
	if (!json_is_object(doc) || !json_is_array(json_object_get(doc, "segments"))) {
		snprintf(err, err_size, "%s: not an L2 segment file (line %d: %s); fix it or remove it", path, jerr.line,
			 doc ? "no segments array" : jerr.text);
		json_decref(doc);
		return NULL;
	}
	return doc;
}

static int save(const struct ls_profile *p, json_t *doc)
{
	return ls_profile_save_json(p, LS_L2_FILE, doc);
}

static json_t *split(const char *csv)
{
	json_t *a = json_array();
	char *dup = csv ? strdup(csv) : NULL, *save_p = NULL, *t;

	for (t = dup ? strtok_r(dup, ",", &save_p) : NULL; t; t = strtok_r(NULL, ",", &save_p)) {
		if (*t)
			json_array_append_new(a, json_string(t));
	}
	free(dup);
	return a;
}

int ls_l2seg_add(const struct ls_profile *p, const char *name, uint32_t vni, const char *peers, const char *attach,
		 char *err, size_t err_size)
{
	json_t *doc, *segs, *s, *seg = NULL, *att;
	size_t i;
	int ret;

	if (!ls_l2seg_name_valid(name)) {
		snprintf(err, err_size, "invalid segment name `%s' (1..%d letters, digits, '-')", name ? name : "",
			 LS_L2_NAME_MAX);
		return -EINVAL;
	}
	if (vni > 0xffffffu) {
		snprintf(err, err_size, "invalid VNI %u (1..16777215)", vni);
		return -EINVAL;
	}
	att = split(attach);
	json_array_foreach(att, i, s) {
		if (!if_nametoindex(json_string_value(s))) {
			snprintf(err, err_size, "no interface `%s' to attach", json_string_value(s));
			json_decref(att);
			return -ENODEV;
		}
	}
	if (!(doc = load(p, err, err_size))) {
		json_decref(att);
		return -EINVAL;
	}
	segs = json_object_get(doc, "segments");
	json_array_foreach(segs, i, s) {
		if (!strcmp(json_string_value(json_object_get(s, "name")) ?: "", name))
			seg = s;
	}
	if (!seg) {
		seg = json_object();
		json_array_append_new(segs, seg);
	}
	json_object_set_new(seg, "name", json_string(name));
	json_object_set_new(seg, "vni", json_integer(vni));
	json_object_set_new(seg, "peers", split(peers));
	json_object_set_new(seg, "attach", att);
	ret = save(p, doc);
	if (ret)
		snprintf(err, err_size, "cannot save %s/%s: %s", p->dir, LS_L2_FILE, strerror(-ret));
	json_decref(doc);
	return ret;
}

/* ---- rtnetlink ------------------------------------------------------------------------ */

struct req {
	char buf[8192];
	struct nlmsghdr *nlh;
};

/* Sends one request; for dumps runs cb on every message. */
static int talk(struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char buf[32768];
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	unsigned int portid, seq;
	int ret;

	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		goto cleanup;
	}
	{
		struct timeval tv = { .tv_sec = 5 };

		setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	portid = mnl_socket_get_portid(nl);
	seq = nlh->nlmsg_seq = (unsigned int)time(NULL);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		ret = -errno;
		goto cleanup;
	}
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));

		if (n < 0) {
			ret = -errno;
			break;
		}
		ret = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
		if (ret <= MNL_CB_STOP) {
			ret = ret < 0 ? -errno : 0;
			break;
		}
	}
cleanup:
	mnl_socket_close(nl);
	return ret;
}

static struct nlmsghdr *link_msg(struct req *r, uint16_t type, uint16_t flags, int ifindex)
{
	struct ifinfomsg *ifi;

	r->nlh = mnl_nlmsg_put_header(r->buf);
	r->nlh->nlmsg_type = type;
	r->nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	ifi = mnl_nlmsg_put_extra_header(r->nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	return r->nlh;
}

static int vxlan_create(const char *ifname, uint32_t vni, int family, const uint8_t *local, int mtu)
{
	struct req r;
	struct nlattr *li, *data;

	link_msg(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
	mnl_attr_put_strz(r.nlh, IFLA_IFNAME, ifname);
	mnl_attr_put_u32(r.nlh, IFLA_MTU, (uint32_t)mtu);
	li = mnl_attr_nest_start(r.nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(r.nlh, IFLA_INFO_KIND, "vxlan");
	data = mnl_attr_nest_start(r.nlh, IFLA_INFO_DATA);
	mnl_attr_put_u32(r.nlh, IFLA_VXLAN_ID, vni);
	if (family == AF_INET)
		mnl_attr_put(r.nlh, IFLA_VXLAN_LOCAL, 4, local);
	else
		mnl_attr_put(r.nlh, IFLA_VXLAN_LOCAL6, 16, local);
	mnl_attr_put_u16(r.nlh, IFLA_VXLAN_PORT, htons(LS_L2_PORT));
	mnl_attr_put_u8(r.nlh, IFLA_VXLAN_LEARNING, 1);
	mnl_attr_nest_end(r.nlh, data);
	mnl_attr_nest_end(r.nlh, li);
	return talk(r.nlh, NULL, NULL);
}

static int set_master(int ifindex, int master)
{
	struct req r;

	link_msg(&r, RTM_NEWLINK, 0, ifindex);
	mnl_attr_put_u32(r.nlh, IFLA_MASTER, (uint32_t)master);
	return talk(r.nlh, NULL, NULL);
}

/* What a vxlan device is: its VNI, local address, master. */
struct vx_info {
	uint32_t vni;
	int family;
	uint8_t local[16];
	int master;
	bool is_vxlan;
};

static int vx_data_cb(const struct nlattr *a, void *data)
{
	struct vx_info *vi = data;

	switch (mnl_attr_get_type(a)) {
	case IFLA_VXLAN_ID:
		vi->vni = mnl_attr_get_u32(a);
		break;
	case IFLA_VXLAN_LOCAL:
		if (mnl_attr_get_payload_len(a) == 4) {
			vi->family = AF_INET;
			memcpy(vi->local, mnl_attr_get_payload(a), 4);
		}
		break;
	case IFLA_VXLAN_LOCAL6:
		if (mnl_attr_get_payload_len(a) == 16) {
			vi->family = AF_INET6;
			memcpy(vi->local, mnl_attr_get_payload(a), 16);
		}
		break;
	}
	return MNL_CB_OK;
}

static int li_cb(const struct nlattr *a, void *data)
{
	struct vx_info *vi = data;

	if (mnl_attr_get_type(a) == IFLA_INFO_KIND)
		vi->is_vxlan = !strcmp(mnl_attr_get_str(a), "vxlan");
	else if (mnl_attr_get_type(a) == IFLA_INFO_DATA)
		mnl_attr_parse_nested(a, vx_data_cb, vi);
	return MNL_CB_OK;
}

static int link_attr_cb(const struct nlattr *a, void *data)
{
	struct vx_info *vi = data;

	if (mnl_attr_get_type(a) == IFLA_LINKINFO)
		mnl_attr_parse_nested(a, li_cb, vi);
	else if (mnl_attr_get_type(a) == IFLA_MASTER)
		vi->master = (int)mnl_attr_get_u32(a);
	return MNL_CB_OK;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	mnl_attr_parse(nlh, sizeof(struct ifinfomsg), link_attr_cb, data);
	return MNL_CB_OK;
}

static int vx_get(int ifindex, struct vx_info *vi)
{
	struct req r;

	memset(vi, 0, sizeof(*vi));
	/* with an ack: the answer, then the ack ends the exchange */
	link_msg(&r, RTM_GETLINK, 0, ifindex);
	return talk(r.nlh, link_cb, vi);
}

/* FDB: the all-zero (flood) entries of a vxlan device. */
struct fdb {
	int ifindex;
	int family;
	uint8_t dst[64][16];
	size_t n;
};

static int fdb_attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;

	if (mnl_attr_get_type(a) <= NDA_MAX)
		tb[mnl_attr_get_type(a)] = a;
	return MNL_CB_OK;
}

static int fdb_cb(const struct nlmsghdr *nlh, void *data)
{
	static const uint8_t zero[6];
	const struct ndmsg *ndm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[NDA_MAX + 1] = { 0 };
	struct fdb *f = data;
	size_t alen;

	if (ndm->ndm_ifindex != f->ifindex)
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*ndm), fdb_attr_cb, tb);
	if (!tb[NDA_LLADDR] || !tb[NDA_DST] || mnl_attr_get_payload_len(tb[NDA_LLADDR]) != 6 ||
	    memcmp(mnl_attr_get_payload(tb[NDA_LLADDR]), zero, 6) || f->n >= 64)
		return MNL_CB_OK;
	alen = mnl_attr_get_payload_len(tb[NDA_DST]);
	if (alen != 4 && alen != 16)
		return MNL_CB_OK;
	memset(f->dst[f->n], 0, 16);
	memcpy(f->dst[f->n], mnl_attr_get_payload(tb[NDA_DST]), alen);
	f->family = alen == 4 ? AF_INET : AF_INET6;
	f->n++;
	return MNL_CB_OK;
}

static int fdb_list(int ifindex, struct fdb *f)
{
	struct req r;
	struct ndmsg *ndm;

	memset(f, 0, sizeof(*f));
	f->ifindex = ifindex;
	r.nlh = mnl_nlmsg_put_header(r.buf);
	r.nlh->nlmsg_type = RTM_GETNEIGH;
	r.nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	ndm = mnl_nlmsg_put_extra_header(r.nlh, sizeof(*ndm));
	ndm->ndm_family = AF_BRIDGE;
	return talk(r.nlh, fdb_cb, f);
}

static int fdb_flood(bool add, int ifindex, int family, const uint8_t *dst)
{
	static const uint8_t zero[6];
	struct req r;
	struct ndmsg *ndm;

	r.nlh = mnl_nlmsg_put_header(r.buf);
	r.nlh->nlmsg_type = add ? RTM_NEWNEIGH : RTM_DELNEIGH;
	r.nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_APPEND : 0);
	ndm = mnl_nlmsg_put_extra_header(r.nlh, sizeof(*ndm));
	ndm->ndm_family = AF_BRIDGE;
	ndm->ndm_ifindex = ifindex;
	ndm->ndm_state = NUD_PERMANENT | NUD_NOARP;
	ndm->ndm_flags = NTF_SELF;
	mnl_attr_put(r.nlh, NDA_LLADDR, 6, zero);
	mnl_attr_put(r.nlh, NDA_DST, family == AF_INET ? 4 : 16, dst);
	return talk(r.nlh, NULL, NULL);
}

/* ---- apply ---------------------------------------------------------------------------- */

static void dev_names(const char *name, char br[IFNAMSIZ], char vx[IFNAMSIZ])
{
	snprintf(br, IFNAMSIZ, "lsbr-%.10s", name);
	snprintf(vx, IFNAMSIZ, "lsvx-%.10s", name);
}

/* This node's overlay address of a family (first v4, else v6); 0 or -ENOENT. */
static int self_addr(const struct ls_netmap *nm, int *family, uint8_t out[16])
{
	for (int want = 0; want < 2; want++) {
		for (size_t i = 0; i < nm->self.addresses.n; i++) {
			const struct ls_prefix *a = &nm->self.addresses.v[i];

			if (a->family == (want ? AF_INET6 : AF_INET)) {
				*family = a->family;
				memset(out, 0, 16);
				memcpy(out, a->addr, a->family == AF_INET ? 4 : 16);
				return 0;
			}
		}
	}
	return -ENOENT;
}

static bool peer_wanted(json_t *seg, const struct ls_nm_peer *p)
{
	json_t *list = json_object_get(seg, "peers"), *v;
	size_t i;
	char id[32];

	if (!json_array_size(list))
		return true;
	snprintf(id, sizeof(id), "%lld", (long long)p->id);
	json_array_foreach(list, i, v) {
		const char *s = json_string_value(v);

		if (s && ((p->name && !strcmp(s, p->name)) || !strcmp(s, id)))
			return true;
	}
	return false;
}

/* The segment's devices and FDB; fills st (status) when given. */
static int seg_apply(const struct ls_profile *p, const struct ls_netmap *nm, json_t *seg, json_t *st, bool change)
{
	const char *name = json_string_value(json_object_get(seg, "name"));
	char br[IFNAMSIZ], vx[IFNAMSIZ], la[INET6_ADDRSTRLEN] = "";
	uint32_t vni = (uint32_t)json_integer_value(json_object_get(seg, "vni"));
	int family = 0, mtu, bri, vxi, ret = 0;
	uint8_t local[16];
	struct vx_info vi;
	struct fdb f;
	json_t *peers = json_array(), *v;
	size_t i;

	if (!name || !ls_l2seg_name_valid(name)) {
		json_object_set_new(st, "error", json_string("invalid segment name"));
		json_decref(peers);
		return -EINVAL;
	}
	dev_names(name, br, vx);
	if (!vni)
		vni = ls_l2seg_vni(nm ? nm->network.id : NULL, name);
	json_object_set_new(st, "name", json_string(name));
	json_object_set_new(st, "vni", json_integer(vni));
	json_object_set_new(st, "bridge", json_string(br));
	json_object_set_new(st, "vxlan", json_string(vx));
	json_object_set(st, "attach", json_object_get(seg, "attach") ?: json_array());
	if (!nm || self_addr(nm, &family, local)) {
		json_object_set_new(st, "error", json_string(nm ? "this node has no overlay address" : "no netmap yet"));
		json_decref(peers);
		return -ENOENT;
	}
	inet_ntop(family, local, la, sizeof(la));
	json_object_set_new(st, "local", json_string(la));
	mtu = p->mtu - (family == AF_INET ? 50 : 70);
	/* bridge, then the vxlan device in it (recreated when its VNI or address moved) */
	bri = (int)if_nametoindex(br);
	if (!bri && change) {
		if ((ret = ls_rtnl_link_add_kind(br, "bridge")) && ret != -EEXIST)
			pr_warn("l2 %s: cannot create bridge %s: %s %s", name, br, strerror(-ret), ls_rtnl_last_error());
		bri = (int)if_nametoindex(br);
	}
	vxi = (int)if_nametoindex(vx);
	if (vxi && change && (vx_get(vxi, &vi) || !vi.is_vxlan || vi.vni != vni || vi.family != family ||
			      memcmp(vi.local, local, family == AF_INET ? 4 : 16))) {
		pr_info("l2 %s: %s changed (VNI or overlay address): recreating it", name, vx);
		ls_rtnl_link_del(vxi);
		vxi = 0;
	}
	if (!vxi && change) {
		if ((ret = vxlan_create(vx, vni, family, local, mtu)))
			pr_warn("l2 %s: cannot create %s: %s %s", name, vx, strerror(-ret), ls_rtnl_last_error());
		vxi = (int)if_nametoindex(vx);
	}
	if (change && bri && vxi) {
		if (!vx_get(vxi, &vi) && vi.master != bri && (ret = set_master(vxi, bri)))
			pr_warn("l2 %s: cannot put %s in %s: %s", name, vx, br, strerror(-ret));
		json_array_foreach(json_object_get(seg, "attach"), i, v) {
			int ai = (int)if_nametoindex(json_string_value(v));

			if (ai && !vx_get(ai, &vi) && vi.master != bri && set_master(ai, bri) == 0)
				ls_rtnl_link_set(ai, true, 0);
		}
		ls_rtnl_link_set(vxi, true, mtu);
		ls_rtnl_link_set(bri, true, 0);
	}
	json_object_set_new(st, "up", json_boolean(bri && vxi));
	json_object_set_new(st, "mtu", json_integer(mtu));
	/* flood entries: one per wanted peer with an address of our family */
	if (vxi && fdb_list(vxi, &f) == 0) {
		bool keep[64] = { false };

		for (size_t k = 0; k < nm->n_peers; k++) {
			const struct ls_nm_peer *pe = nm->peers[k];
			bool have = false;

			if (!peer_wanted(seg, pe))
				continue;
			for (size_t a = 0; a < pe->addresses.n; a++) {
				const struct ls_prefix *pa = &pe->addresses.v[a];
				uint8_t dst[16] = { 0 };
				char ds[INET6_ADDRSTRLEN];

				if (pa->family != family)
					continue;
				memcpy(dst, pa->addr, family == AF_INET ? 4 : 16);
				for (size_t j = 0; j < f.n; j++) {
					if (!memcmp(f.dst[j], dst, 16)) {
						keep[j] = have = true;
					}
				}
				if (!have && change && (ret = fdb_flood(true, vxi, family, dst)))
					pr_warn("l2 %s: fdb entry for %s: %s", name, pe->name, strerror(-ret));
				inet_ntop(family, dst, ds, sizeof(ds));
				json_array_append_new(peers, json_pack("{s:s, s:s}", "name", pe->name ? pe->name : "", "dst", ds));
				break;
			}
		}
		for (size_t j = 0; change && j < f.n; j++) {
			if (!keep[j])
				fdb_flood(false, vxi, f.family, f.dst[j]);
		}
	}
	json_object_set_new(st, "peers", peers);
	return ret;
}

static int seg_down(const char *name)
{
	char br[IFNAMSIZ], vx[IFNAMSIZ];
	int i;

	dev_names(name, br, vx);
	if ((i = (int)if_nametoindex(vx)))
		ls_rtnl_link_del(i);
	if ((i = (int)if_nametoindex(br)))
		ls_rtnl_link_del(i);
	return 0;
}

static json_t *run(const struct ls_profile *p, const struct ls_netmap *nm_in, bool change, int *ret)
{
	struct ls_netmap *own = NULL;
	const struct ls_netmap *nm = nm_in;
	char err[512];
	json_t *doc = load(p, err, sizeof(err)), *out = json_array(), *seg;
	size_t i;

	*ret = 0;
	if (!doc) {
		pr_warn("l2: %s", err);
		*ret = -EINVAL;
		json_decref(out);
		return json_pack("{s:[], s:s}", "segments", "error", err);
	}
	if (json_array_size(json_object_get(doc, "segments"))) {
		if (!nm && ls_profile_load_netmap(p, &own, err, sizeof(err)) == 0)
			nm = own;
		json_array_foreach(json_object_get(doc, "segments"), i, seg) {
			json_t *st = json_object();
			int r = seg_apply(p, nm, seg, st, change);

			if (r && !*ret)
				*ret = r;
			json_array_append_new(out, st);
		}
	}
	ls_netmap_free(own);
	json_decref(doc);
	return json_pack("{s:s, s:o}", "profile", p->name, "segments", out);
}

int ls_l2seg_apply(const struct ls_profile *p, const struct ls_netmap *nm)
{
	char path[PATH_MAX];
	int ret;

	ls_profile_file(p, LS_L2_FILE, path, sizeof(path));
	if (access(path, F_OK))
		return 0; /* no segments: the common case, every few seconds */
	json_decref(run(p, nm, true, &ret));
	return ret;
}

json_t *ls_l2seg_status(const struct ls_profile *p, const struct ls_netmap *nm)
{
	int ret;

	return run(p, nm, false, &ret);
}

int ls_l2seg_remove(const struct ls_profile *p, const char *name, char *err, size_t err_size)
{
	json_t *doc = load(p, err, err_size), *segs, *s;
	size_t i;
	int ret = -ENOENT;

	if (!doc)
		return -EINVAL;
	segs = json_object_get(doc, "segments");
	json_array_foreach(segs, i, s) {
		if (!strcmp(json_string_value(json_object_get(s, "name")) ?: "", name)) {
			json_array_remove(segs, i);
			ret = 0;
			break;
		}
	}
	if (ret) {
		snprintf(err, err_size, "no L2 segment `%s' in profile '%s' (see lightscale l2 list)", name, p->name);
		goto cleanup;
	}
	if ((ret = save(p, doc))) {
		snprintf(err, err_size, "cannot save %s/%s: %s", p->dir, LS_L2_FILE, strerror(-ret));
		goto cleanup;
	}
	seg_down(name);
cleanup:
	json_decref(doc);
	return ret;
}
