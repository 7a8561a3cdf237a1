// SPDX-License-Identifier: MIT
/*
 * `lightscale-bpf net [--json]`: every BPF program attached to every interface of this
 * network namespace, whoever attached it: XDP (driver, generic, offload), tcx (kernel 6.6+,
 * with its link) and clsact filters, per interface. bpftool 7.1's `bpftool net` does not
 * know tcx, so operators and labs read this instead of depending on bpftool's version.
 *
 * Sources: XDP from rtnetlink (bpf_xdp_query), tcx from BPF_PROG_QUERY on the ifindex
 * (attach types 46/47) with link ids found by walking the links, clsact from a dump of
 * the ingress/egress filters (RTM_GETTFILTER, TCA_BPF_ID/NAME/FLAGS).
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <jansson.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>

#include "log.h"
#include "util.h"
#include "userspace/bpf/lsbpf.h"
#include "userspace/bpf/lsbpf_int.h"

#define TCX_INGRESS 46
#define TCX_EGRESS 47
#define LINK_TYPE_XDP 6
#define LINK_TYPE_TCX 11

static void prog_info(__u32 id, char *name, size_t size, char *type, size_t tsize)
{
	int fd = bpf_prog_get_fd_by_id(id);
	struct bpf_prog_info pi = {};
	__u32 len = sizeof(pi);

	snprintf(name, size, "?");
	snprintf(type, tsize, "?");
	if (fd < 0)
		return;
	if (!bpf_obj_get_info_by_fd(fd, &pi, &len)) {
		snprintf(name, size, "%s", pi.name);
		snprintf(type, tsize, "%s", pi.type == BPF_PROG_TYPE_XDP ? "xdp"
					   : pi.type == BPF_PROG_TYPE_SCHED_CLS ? "sched_cls" : "other");
	}
	close(fd);
}

/* The id of the link of type ltype on ifindex (tcx: with attach type atype) running
 * prog_id; 0 when none (a program attached without a link). Links are global, so the
 * program id (unique) disambiguates ifindexes of other namespaces. */
static __u32 find_link(__u32 ltype, __u32 ifindex, __u32 atype, __u32 prog_id)
{
	__u32 id = 0;

	while (!bpf_link_get_next_id(id, &id)) {
		int fd = bpf_link_get_fd_by_id(id);
		struct bpf_link_info li = {};
		__u32 len = sizeof(li);
		if (fd < 0)
			continue;
		int r = bpf_obj_get_info_by_fd(fd, &li, &len);
		close(fd);
		if (r || li.type != ltype || li.prog_id != prog_id)
			continue;
		/* tcx {ifindex, attach_type} and xdp {ifindex} sit at the start of the union */
		const __u32 *u = (const __u32 *)&li.raw_tracepoint;
		if (u[0] == ifindex && (ltype != LINK_TYPE_TCX || u[1] == atype))
			return id;
	}
	return 0;
}

static void add(json_t *arr, const char *hook, const char *mode, __u32 prog_id, __u32 link_id, int prio,
		__u32 handle, bool direct_action)
{
	char name[32], type[16];
	prog_info(prog_id, name, sizeof(name), type, sizeof(type));
	json_t *a = json_pack("{s:s, s:s, s:s, s:s, s:I}", "hook", hook, "mode", mode, "program", name, "type", type,
			      "program_id", (json_int_t)prog_id);
	if (link_id)
		json_object_set_new(a, "link_id", json_integer(link_id));
	if (prio >= 0) {
		json_object_set_new(a, "priority", json_integer(prio));
		json_object_set_new(a, "handle", json_integer(handle));
		json_object_set_new(a, "direct_action", json_boolean(direct_action));
	}
	json_array_append_new(arr, a);
}

static void xdp_of(json_t *arr, int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	if (bpf_xdp_query(ifindex, 0, &q))
		return;
	const struct {
		__u32 id;
		const char *mode;
	} m[] = { { q.drv_prog_id, "driver" }, { q.skb_prog_id, "generic" }, { q.hw_prog_id, "offload" } };
	for (size_t i = 0; i < ARRAY_SIZE(m); i++)
		if (m[i].id)
			add(arr, "xdp", m[i].mode, m[i].id, find_link(LINK_TYPE_XDP, ifindex, 0, m[i].id), -1, 0, false);
}

static void tcx_of(json_t *arr, int ifindex, __u32 atype)
{
	__u32 ids[64], cnt = ARRAY_SIZE(ids), flags = 0;
	/* libbpf 1.1 puts the ifindex in target_fd, the same field as 6.6's target_ifindex */
	if (bpf_prog_query(ifindex, atype, 0, &flags, ids, &cnt))
		return; /* no tcx on this kernel (EINVAL), or none attached */
	for (__u32 i = 0; i < cnt && i < ARRAY_SIZE(ids); i++)
		add(arr, atype == TCX_INGRESS ? "tcx/ingress" : "tcx/egress", "tcx", ids[i],
		    find_link(LINK_TYPE_TCX, ifindex, atype, ids[i]), -1, 0, false);
}

struct tc_dump {
	json_t *arr;
	const char *hook;
};

static int tc_attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int t = mnl_attr_get_type(a);
	if (t <= TCA_BPF_MAX)
		tb[t] = a;
	return MNL_CB_OK;
}

static int tc_filter_cb(const struct nlmsghdr *nlh, void *data)
{
	struct tc_dump *d = data;
	struct tcmsg *tcm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a, *opts = NULL;
	const char *kind = NULL;

	mnl_attr_for_each(a, nlh, sizeof(*tcm)) {
		if (mnl_attr_get_type(a) == TCA_KIND)
			kind = mnl_attr_get_str(a);
		else if (mnl_attr_get_type(a) == TCA_OPTIONS)
			opts = a;
	}
	if (!kind || strcmp(kind, "bpf") || !opts)
		return MNL_CB_OK; /* the chain/priority header entries, or another classifier */
	const struct nlattr *tb[TCA_BPF_MAX + 1] = {};
	mnl_attr_parse_nested(opts, tc_attr_cb, tb);
	if (!tb[TCA_BPF_ID])
		return MNL_CB_OK;
	__u32 flags = tb[TCA_BPF_FLAGS] ? mnl_attr_get_u32(tb[TCA_BPF_FLAGS]) : 0;
	add(d->arr, d->hook, "clsact", mnl_attr_get_u32(tb[TCA_BPF_ID]), 0, TC_H_MAJ(tcm->tcm_info) >> 16,
	    tcm->tcm_handle, flags & TCA_BPF_FLAG_ACT_DIRECT);
	return MNL_CB_OK;
}

static int clsact_of(struct mnl_socket *nl, json_t *arr, int ifindex, bool ingress)
{
	char buf[32768];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	unsigned seq = time(NULL), port = mnl_socket_get_portid(nl);
	struct tc_dump d = { arr, ingress ? "clsact/ingress" : "clsact/egress" };
	int r;

	nlh->nlmsg_type = RTM_GETTFILTER;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	struct tcmsg *tcm = mnl_nlmsg_put_extra_header(nlh, sizeof(*tcm));
	tcm->tcm_family = AF_UNSPEC;
	tcm->tcm_ifindex = ifindex;
	tcm->tcm_parent = TC_H_MAKE(TC_H_CLSACT, ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	while ((r = mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0) {
		r = mnl_cb_run(buf, r, seq, port, tc_filter_cb, &d);
		if (r <= 0)
			break;
	}
	/* no clsact qdisc on the device: the kernel answers EINVAL; nothing attached */
	return r < 0 && errno != EINVAL && errno != ENOENT ? -errno : 0;
}

int lsbpf_net_json(json_t **out)
{
	struct if_nameindex *ifs = if_nameindex(), *i;
	struct mnl_socket *nl = mnl_socket_open(NETLINK_ROUTE);
	json_t *doc = json_array();
	int r = 0;

	if (!ifs || !nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno ? -errno : -ENOMEM;
		pr_err("bpf: cannot list interfaces: %s", strerror(-r));
		goto cleanup;
	}
	for (i = ifs; i->if_index; i++) {
		json_t *arr = json_array();
		xdp_of(arr, i->if_index);
		tcx_of(arr, i->if_index, TCX_INGRESS);
		tcx_of(arr, i->if_index, TCX_EGRESS);
		if ((r = clsact_of(nl, arr, i->if_index, true)) || (r = clsact_of(nl, arr, i->if_index, false))) {
			pr_err("bpf: %s: cannot dump its tc filters: %s", i->if_name, strerror(-r));
			json_decref(arr);
			goto cleanup;
		}
		int l2 = lsbpf_dev_l2(i->if_name, NULL);
		json_array_append_new(doc, json_pack("{s:s, s:i, s:i, s:o}", "interface", i->if_name, "ifindex",
						     (int)i->if_index, "l2", l2 < 0 ? -1 : l2, "attachments", arr));
	}
cleanup:
	if (ifs)
		if_freenameindex(ifs);
	if (nl)
		mnl_socket_close(nl);
	if (r) {
		json_decref(doc);
		return r;
	}
	*out = doc;
	return 0;
}

int lsbpf_net_print(bool json, FILE *f)
{
	json_t *doc, *ifc, *a;
	size_t i, j;
	int r = lsbpf_net_json(&doc);

	if (r)
		return r;
	if (json) {
		json_dumpf(doc, f, JSON_INDENT(2));
		fputc('\n', f);
		json_decref(doc);
		return 0;
	}
	fprintf(f, "%-16s %-15s %-8s %-20s %8s %8s %s\n", "INTERFACE", "HOOK", "MODE", "PROGRAM", "PROG_ID", "LINK_ID",
		"PRIO/HANDLE");
	json_array_foreach(doc, i, ifc) {
		json_array_foreach(json_object_get(ifc, "attachments"), j, a) {
			char ph[32] = "", lid[16] = "-";
			if (json_object_get(a, "priority"))
				snprintf(ph, sizeof(ph), "%lld/%lld%s", json_integer_value(json_object_get(a, "priority")),
					 json_integer_value(json_object_get(a, "handle")),
					 json_is_true(json_object_get(a, "direct_action")) ? " da" : "");
			if (json_object_get(a, "link_id"))
				snprintf(lid, sizeof(lid), "%lld", json_integer_value(json_object_get(a, "link_id")));
			fprintf(f, "%-16s %-15s %-8s %-20s %8lld %8s %s\n", json_string_value(json_object_get(ifc, "interface")),
				json_string_value(json_object_get(a, "hook")), json_string_value(json_object_get(a, "mode")),
				json_string_value(json_object_get(a, "program")),
				json_integer_value(json_object_get(a, "program_id")), lid, ph);
		}
	}
	json_decref(doc);
	return 0;
}
