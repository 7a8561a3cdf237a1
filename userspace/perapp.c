// SPDX-License-Identifier: MIT
/* Per-app routing through cgroup socket marks (see perapp.h for the picture). */
#include "perapp.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/magic.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "bpf/perapp.skel.h"
#include "dataplane.h"
#include "log.h"
#include "netmap.h"
#include "rtnl.h"
#include "util.h"
#include "wg.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

int ls_perapp_load(const struct ls_profile *p, struct ls_perapp_set *set, char *err, size_t err_size)
{
	char path[PATH_MAX], *buf = NULL;
	size_t len = 0;
	int ret;

	set->v = NULL;
	set->n = 0;
	ls_profile_file(p, LS_PERAPP_FILE, path, sizeof(path));
	ret = ls_read_file(path, &buf, &len, 1 << 20);
	if (ret == -ENOENT)
		return 0;
	if (ret) {
		snprintf(err, err_size, "%s: %s", path, strerror(-ret));
		return ret;
	}
	ret = ls_perapp_parse(buf, len, set, err, err_size);
	if (ret) {
		char e2[256];

		snprintf(e2, sizeof(e2), "%s", err);
		snprintf(err, err_size, "%s: %s", path, e2);
	}
	free(buf);
	return ret;
}

int ls_perapp_save(const struct ls_profile *p, const struct ls_perapp_set *set)
{
	json_t *doc = ls_perapp_to_json(set);
	int ret = ls_profile_save_json(p, LS_PERAPP_FILE, doc);

	json_decref(doc);
	return ret;
}

/* ---- cgroups ------------------------------------------------------------------------ */

/* The first cgroup2 mount point. */
static int cgroup2_root(char *out, size_t size)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	char dev[256], dir[PATH_MAX], type[64];
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while (fscanf(f, "%255s %4095s %63s %*[^\n]", dev, dir, type) == 3) {
		if (!strcmp(type, "cgroup2")) {
			snprintf(out, size, "%s", dir);
			ret = 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

int ls_perapp_cgroup_path(const char *arg, char *out, size_t size, char *err, size_t err_size)
{
	char path[PATH_MAX], real[PATH_MAX];
	struct statfs sf;
	struct stat sb;

	if (!arg || !*arg) {
		snprintf(err, err_size, "empty cgroup path");
		return -EINVAL;
	}
	if (arg[0] == '/') {
		snprintf(path, sizeof(path), "%s", arg);
	} else {
		char root[PATH_MAX];

		if (cgroup2_root(root, sizeof(root))) {
			snprintf(err, err_size, "cgroup `%s': no cgroup2 file system is mounted (give an absolute path)", arg);
			return -ENOENT;
		}
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", root, arg) >= sizeof(path)) {
			snprintf(err, err_size, "cgroup `%s': path too long", arg);
			return -ENAMETOOLONG;
		}
	}
	if (!realpath(path, real) || stat(real, &sb)) {
		snprintf(err, err_size, "cgroup `%s': %s (create it with mkdir in the cgroup2 hierarchy)", path,
			 strerror(errno));
		return -ENOENT;
	}
	if (!S_ISDIR(sb.st_mode)) {
		snprintf(err, err_size, "cgroup `%s' is not a directory", real);
		return -ENOTDIR;
	}
	if (statfs(real, &sf) || sf.f_type != CGROUP2_SUPER_MAGIC) {
		snprintf(err, err_size, "`%s' is not in a cgroup v2 hierarchy (socket marks need cgroup2)", real);
		return -EINVAL;
	}
	if (strlen(real) >= size) {
		snprintf(err, err_size, "cgroup `%s': path too long", real);
		return -ENAMETOOLONG;
	}
	snprintf(out, size, "%s", real);
	return 0;
}

/* The cgroup id the kernel reports for a cgroup directory (its inode number). */
static uint64_t cgroup_id(const char *path)
{
	struct stat sb;

	return stat(path, &sb) ? 0 : (uint64_t)sb.st_ino;
}

/* ---- pins --------------------------------------------------------------------------- */

static void pin_dir(const char *profile, char *out, size_t size)
{
	snprintf(out, size, "%s/%s", LS_PERAPP_PIN_ROOT, profile);
}

static void pin_path(const char *profile, int slot, const char *suffix, char *out, size_t size)
{
	snprintf(out, size, "%s/%s/app-%d%s", LS_PERAPP_PIN_ROOT, profile, slot, suffix);
}

/* The cgroup a pinned link is attached to (0: detached, its cgroup was removed);
 * -errno when there is no such pin. */
static int64_t pinned_cgroup(const char *path)
{
	struct bpf_link_info info;
	__u32 len = sizeof(info);
	int fd = bpf_obj_get(path), ret;

	if (fd < 0)
		return -errno;
	memset(&info, 0, sizeof(info));
	ret = bpf_obj_get_info_by_fd(fd, &info, &len);
	close(fd);
	if (ret)
		return -errno;
	if (info.type != BPF_LINK_TYPE_CGROUP)
		return -EINVAL;
	return (int64_t)info.cgroup.cgroup_id;
}

/* Every slot pinned on this machine: slots[] and the cgroup ids, and the owning profile. */
struct pinned {
	char profile[LS_PROFILE_NAME_MAX + 1];
	int slot;
	uint64_t cgroup;
};

static size_t list_pins(struct pinned *out, size_t max)
{
	DIR *root = opendir(LS_PERAPP_PIN_ROOT);
	struct dirent *pd;
	size_t n = 0;

	if (!root)
		return 0;
	while ((pd = readdir(root)) && n < max) {
		char dir[PATH_MAX];
		DIR *d;
		struct dirent *e;

		if (pd->d_name[0] == '.' || strlen(pd->d_name) > LS_PROFILE_NAME_MAX)
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", LS_PERAPP_PIN_ROOT, pd->d_name);
		d = opendir(dir);
		if (!d)
			continue;
		while ((e = readdir(d)) && n < max) {
			char path[PATH_MAX * 2], tail[8] = "";
			int slot;
			int64_t cg;

			if (sscanf(e->d_name, "app-%d%7s", &slot, tail) != 1 || slot < 0 || slot >= LS_PERAPP_MAX)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			cg = pinned_cgroup(path);
			snprintf(out[n].profile, sizeof(out[n].profile), "%s", pd->d_name);
			out[n].slot = slot;
			out[n].cgroup = cg > 0 ? (uint64_t)cg : 0;
			n++;
		}
		closedir(d);
	}
	closedir(root);
	return n;
}

/* ---- add / remove ------------------------------------------------------------------- */

int ls_perapp_add(const struct ls_profile *p, const char *cgroup, const char *exit, char *err, size_t err_size)
{
	struct ls_perapp_set set;
	struct pinned pins[LS_PERAPP_MAX * 4];
	int used[LS_PERAPP_MAX * 5];
	size_t nu = 0, np;
	char cg[PATH_MAX];
	uint64_t id;
	int ret, slot;

	if ((ret = ls_perapp_cgroup_path(cgroup, cg, sizeof(cg), err, err_size)))
		return ret;
	if (!exit || !*exit || strlen(exit) >= sizeof(set.v->exit) || !strcmp(exit, "none") || !strcmp(exit, "auto")) {
		snprintf(err, err_size, "invalid exit node `%s' (a peer id or name)", exit ? exit : "");
		return -EINVAL;
	}
	if ((ret = ls_perapp_load(p, &set, err, err_size)))
		return ret;
	for (size_t i = 0; i < set.n; i++) {
		if (!strcmp(set.v[i].cgroup, cg)) {
			snprintf(set.v[i].exit, sizeof(set.v[i].exit), "%s", exit);
			goto save;
		}
		used[nu++] = set.v[i].slot;
	}
	id = cgroup_id(cg);
	np = list_pins(pins, ARRAY_SIZE(pins));
	for (size_t i = 0; i < np; i++) {
		if (!strcmp(pins[i].profile, p->name))
			continue;
		if (id && pins[i].cgroup == id) {
			snprintf(err, err_size, "cgroup `%s' is already routed by profile '%s' (lightscale app-route remove --profile %s)",
				 cg, pins[i].profile, pins[i].profile);
			ret = -EBUSY;
			goto cleanup;
		}
		used[nu++] = pins[i].slot;
	}
	slot = ls_perapp_free_slot(used, nu);
	if (slot < 0) {
		snprintf(err, err_size, "all %d app route slots are in use", LS_PERAPP_MAX);
		ret = slot;
		goto cleanup;
	}
	{
		struct ls_perapp_rule *v = realloc(set.v, (set.n + 1) * sizeof(*v));

		if (!v) {
			ret = -ENOMEM;
			goto cleanup;
		}
		set.v = v;
		memset(&v[set.n], 0, sizeof(v[set.n]));
		snprintf(v[set.n].cgroup, sizeof(v[set.n].cgroup), "%s", cg);
		snprintf(v[set.n].exit, sizeof(v[set.n].exit), "%s", exit);
		v[set.n].slot = slot;
		set.n++;
	}
save:
	ret = ls_perapp_save(p, &set);
	if (ret)
		snprintf(err, err_size, "cannot save %s/%s: %s", p->dir, LS_PERAPP_FILE, strerror(-ret));
cleanup:
	ls_perapp_set_free(&set);
	return ret;
}

static int slot_down(const struct ls_profile *p, int slot);
static int apply(const struct ls_profile *p, const struct ls_netmap *nm_in, bool force);

int ls_perapp_remove(const struct ls_profile *p, const char *cgroup, char *err, size_t err_size)
{
	struct ls_perapp_set set;
	char cg[PATH_MAX];
	int ret, slot = -1;

	/* the cgroup may be gone already: match the stored path too */
	if (ls_perapp_cgroup_path(cgroup, cg, sizeof(cg), err, err_size))
		snprintf(cg, sizeof(cg), "%s", cgroup);
	if ((ret = ls_perapp_load(p, &set, err, err_size)))
		return ret;
	for (size_t i = 0; i < set.n; i++) {
		if (!strcmp(set.v[i].cgroup, cg) || !strcmp(set.v[i].cgroup, cgroup)) {
			slot = set.v[i].slot;
			memmove(&set.v[i], &set.v[i + 1], (set.n - i - 1) * sizeof(*set.v));
			set.n--;
			break;
		}
	}
	if (slot < 0) {
		snprintf(err, err_size, "no app route for cgroup `%s' in profile '%s' (see lightscale app-route list)", cgroup,
			 p->name);
		ret = -ENOENT;
		goto cleanup;
	}
	ret = ls_perapp_save(p, &set);
	if (ret) {
		snprintf(err, err_size, "cannot save %s/%s: %s", p->dir, LS_PERAPP_FILE, strerror(-ret));
		goto cleanup;
	}
	slot_down(p, slot);
	/* the exit peer's default route goes back to what the profile itself wants */
	apply(p, NULL, true);
cleanup:
	ls_perapp_set_free(&set);
	return ret;
}

/* ---- kernel state: routes ----------------------------------------------------------- */

/* A blackhole default route (family) in table at metric. */
static int blackhole(bool add, int family, uint32_t table)
{
	char buf[8192];
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	struct rtmsg *rtm;
	unsigned int seq = (unsigned int)time(NULL), portid;
	int ret;

	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = add ? RTM_NEWROUTE : RTM_DELROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_REPLACE : 0);
	nlh->nlmsg_seq = seq;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (unsigned char)family;
	rtm->rtm_dst_len = 0;
	rtm->rtm_table = RT_TABLE_UNSPEC;
	rtm->rtm_protocol = RTPROT_STATIC;
	rtm->rtm_scope = RT_SCOPE_UNIVERSE;
	rtm->rtm_type = RTN_BLACKHOLE;
	mnl_attr_put_u32(nlh, RTA_TABLE, table);
	mnl_attr_put_u32(nlh, RTA_PRIORITY, LS_PERAPP_BLACKHOLE_METRIC);
	nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		goto cleanup;
	}
	portid = mnl_socket_get_portid(nl);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		ret = -errno;
		goto cleanup;
	}
	ret = (int)mnl_socket_recvfrom(nl, buf, sizeof(buf));
	if (ret < 0) {
		ret = -errno;
		goto cleanup;
	}
	ret = mnl_cb_run(buf, (size_t)ret, seq, portid, NULL, NULL);
	ret = ret < 0 ? -errno : 0;
cleanup:
	mnl_socket_close(nl);
	return ret;
}

static const struct ls_prefix default4 = { .family = AF_INET, .len = 0 };
static const struct ls_prefix default6 = { .family = AF_INET6, .len = 0 };

/* The table of a slot: default dev ifindex (ifindex 0: none) and the blackhole. */
static void slot_routes(int slot, int ifindex)
{
	uint32_t table = ls_perapp_table(slot);
	struct ls_rtnl_route *r = NULL;
	size_t n = 0;

	if (!ls_rtnl_route_list(AF_UNSPEC, table, &r, &n)) {
		for (size_t i = 0; i < n; i++) {
			if (r[i].type == RTN_UNICAST && (r[i].oif != ifindex || r[i].dst.len))
				ls_rtnl_route(LS_RTNL_DEL, table, &r[i].dst, r[i].oif);
		}
	}
	free(r);
	for (int f = 0; f < 2; f++) {
		int fam = f ? AF_INET6 : AF_INET;
		int ret = blackhole(true, fam, table);

		if (ret)
			pr_warn("app route slot %d: blackhole default (table %u): %s", slot, table, strerror(-ret));
		if (ifindex && (ret = ls_rtnl_route(LS_RTNL_REPLACE, table, f ? &default6 : &default4, ifindex)))
			pr_warn("app route slot %d: default route (table %u): %s %s", slot, table, strerror(-ret),
				ls_rtnl_last_error());
	}
}

/* ---- kernel state: rules ------------------------------------------------------------ */

static void slot_rule(int slot, int family, int which, struct ls_rtnl_rule *r)
{
	memset(r, 0, sizeof(*r));
	r->family = family;
	r->priority = ls_perapp_prio(slot) + (uint32_t)which;
	r->fwmark = ls_perapp_mark(slot);
	r->fwmask = 0xffffffffu;
	r->suppress_prefixlen = which == 0 ? 0 : -1;
	r->table = which == 0 ? RT_TABLE_MAIN : ls_perapp_table(slot);
}

/* Adds the slot's four rules (want) or removes whatever sits at its priorities. Returns
 * how many of the four are in place afterwards. */
static int slot_rules(int slot, bool want)
{
	int in_place = 0;

	for (int f = 0; f < 2; f++) {
		int fam = f ? AF_INET6 : AF_INET;
		struct ls_rtnl_rule *cur = NULL;
		size_t n = 0;

		if (ls_rtnl_rule_list(fam, &cur, &n))
			continue;
		for (int w = 0; w < 2; w++) {
			struct ls_rtnl_rule r;
			bool have = false;

			slot_rule(slot, fam, w, &r);
			for (size_t i = 0; i < n; i++) {
				if (cur[i].priority != r.priority)
					continue;
				if (want && ls_rtnl_rule_equal(&cur[i], &r))
					have = true;
				else
					ls_rtnl_rule(LS_RTNL_DEL, &cur[i]);
			}
			if (want && !have) {
				int ret = ls_rtnl_rule(LS_RTNL_ADD, &r);

				if (ret && ret != -EEXIST)
					pr_warn("app route slot %d: rule priority %u: %s %s", slot, r.priority, strerror(-ret),
						ls_rtnl_last_error());
				else
					have = true;
			}
			in_place += have;
		}
		free(cur);
	}
	return in_place;
}

/* ---- kernel state: BPF -------------------------------------------------------------- */

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_WARN && getenv("LIGHTSCALE_BPF_VERBOSE"))
		return vfprintf(stderr, fmt, ap);
	return 0;
}

/* The slot's program attached to cg and pinned (kept when it already is). */
static int slot_bpf(const struct ls_profile *p, int slot, const char *cg)
{
	char dir[PATH_MAX], lpath[PATH_MAX], bpath[PATH_MAX];
	uint64_t id = cgroup_id(cg);
	struct ls_perapp *skel = NULL;
	int cgfd = -1, lfd = -1, ret;

	pin_path(p->name, slot, "", lpath, sizeof(lpath));
	pin_path(p->name, slot, "-count", bpath, sizeof(bpath));
	if (id && pinned_cgroup(lpath) == (int64_t)id && access(bpath, F_OK) == 0)
		return 0;
	unlink(lpath); /* detached or attached elsewhere: the link ends with its last pin */
	unlink(bpath);
	pin_dir(p->name, dir, sizeof(dir));
	if ((ret = ls_mkdir_p(dir, 0700))) {
		pr_warn("app route: cannot create %s: %s (is bpffs mounted on /sys/fs/bpf?)", dir, strerror(-ret));
		return ret;
	}
	libbpf_set_print(libbpf_quiet);
	skel = ls_perapp__open();
	if (!skel) {
		ret = -errno ? -errno : -EINVAL;
		goto cleanup;
	}
	skel->rodata->ls_app_mark = ls_perapp_mark(slot);
	if ((ret = ls_perapp__load(skel)))
		goto cleanup;
	cgfd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0) {
		ret = -errno;
		goto cleanup;
	}
	lfd = bpf_link_create(bpf_program__fd(skel->progs.ls_perapp_mark), cgfd, BPF_CGROUP_INET_SOCK_CREATE, NULL);
	if (lfd < 0) {
		ret = -errno;
		goto cleanup;
	}
	if (bpf_obj_pin(lfd, lpath) || bpf_obj_pin(bpf_map__fd(skel->maps.bss), bpath)) {
		ret = -errno;
		unlink(lpath);
		goto cleanup;
	}
	pr_info("app route slot %d: sockets of %s marked 0x%x", slot, cg, ls_perapp_mark(slot));
	ret = 0;
cleanup:
	if (ret)
		pr_warn("app route slot %d: cannot attach the socket-mark program to %s: %s", slot, cg, strerror(-ret));
	if (lfd >= 0)
		close(lfd);
	if (cgfd >= 0)
		close(cgfd);
	ls_perapp__destroy(skel);
	return ret;
}

static int64_t slot_sockets(const struct ls_profile *p, int slot)
{
	char path[PATH_MAX];
	uint64_t v = 0;
	__u32 key = 0;
	int fd;

	pin_path(p->name, slot, "-count", path, sizeof(path));
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -1;
	if (bpf_map_lookup_elem(fd, &key, &v))
		v = 0;
	close(fd);
	return (int64_t)v;
}

static int slot_down(const struct ls_profile *p, int slot)
{
	char path[PATH_MAX];
	uint32_t table = ls_perapp_table(slot);
	struct ls_rtnl_route *r = NULL;
	size_t n = 0;

	pin_path(p->name, slot, "", path, sizeof(path));
	unlink(path);
	pin_path(p->name, slot, "-count", path, sizeof(path));
	unlink(path);
	slot_rules(slot, false);
	if (!ls_rtnl_route_list(AF_UNSPEC, table, &r, &n)) {
		for (size_t i = 0; i < n; i++) {
			if (r[i].type == RTN_UNICAST)
				ls_rtnl_route(LS_RTNL_DEL, table, &r[i].dst, r[i].oif);
		}
	}
	free(r);
	blackhole(false, AF_INET, table);
	blackhole(false, AF_INET6, table);
	return 0;
}

/* ---- conntrack marks ------------------------------------------------------------------ */

/* Replies to an app's connections carry its mark back in (ct mark), and reverse-path
 * filtering uses it (src_valid_mark): a loose or strict check then finds the app's table
 * (default dev ls-P) even when the main table has no route back to the source, as on a
 * client whose only way out is the exit. One table for every profile's app routes (the
 * marks share 0x4c41xxxx). */
#define NFT_TABLE "lightscale-perapp"

static int nft_script(const char *script)
{
	FILE *f = popen("nft -f - 2>&1", "w");

	if (!f)
		return -errno;
	fputs(script, f);
	return pclose(f) == 0 ? 0 : -EIO;
}

static void ct_marks(bool on)
{
	static bool done;
	char cur[16];
	char script[1024];

	if (on && done)
		return;
	if (on) {
		snprintf(script, sizeof(script),
			 "add table inet " NFT_TABLE "\nflush table inet " NFT_TABLE "\n"
			 "table inet " NFT_TABLE " {\n"
			 "  chain out { type route hook output priority mangle; meta mark & 0x%x == 0x%x ct mark set meta mark; }\n"
			 "  chain pre { type filter hook prerouting priority mangle; ct mark & 0x%x == 0x%x meta mark set ct mark; }\n"
			 "}\n",
			 0xffff0000u, LS_PERAPP_MARK_BASE, 0xffff0000u, LS_PERAPP_MARK_BASE);
		if (nft_script(script))
			pr_warn("app routes: cannot create nft table inet %s (replies may fail reverse-path checks)", NFT_TABLE);
		else
			done = true;
		if (!ls_sysctl_get("net/ipv4/conf/all/src_valid_mark", cur, sizeof(cur)) && cur[0] == '0')
			ls_sysctl_set("net/ipv4/conf/all/src_valid_mark", "1");
	} else {
		nft_script("delete table inet " NFT_TABLE "\n");
		done = false;
	}
}

/* ---- apply -------------------------------------------------------------------------- */

static bool has_default(const struct ls_wg_peer *w, int family)
{
	for (size_t i = 0; i < w->n_allowed; i++) {
		if (w->allowed[i].family == family && w->allowed[i].len == 0)
			return true;
	}
	return false;
}

/* Sets w's AllowedIPs to its current ones with (add) or without the defaults. */
static int peer_defaults(const struct ls_wg_engine *eng, const char *ifname, const struct ls_wg_peer *w, bool add)
{
	struct ls_wg_device d = { .n_peers = 1 };
	struct ls_wg_peer np = { .flags = LS_WGP_REPLACE_ALLOWED | LS_WGP_UPDATE_ONLY };
	struct ls_prefix *a = calloc(w->n_allowed + 2, sizeof(*a));
	size_t n = 0;
	int ret;

	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < w->n_allowed; i++) {
		if (w->allowed[i].len != 0)
			a[n++] = w->allowed[i];
	}
	if (add) {
		a[n++] = default4;
		a[n++] = default6;
	}
	memcpy(np.key, w->key, sizeof(np.key));
	np.allowed = a;
	np.n_allowed = n;
	snprintf(d.ifname, sizeof(d.ifname), "%s", ifname);
	d.peers = &np;
	ret = eng->set(&d);
	free(a);
	return ret;
}

/* Does the profile's own exit route (the dataplane's) hold the default now? */
static bool profile_exit_active(const struct ls_profile *p)
{
	struct ls_rtnl_route *r = NULL;
	size_t n = 0;
	bool on = false;

	if (ls_rtnl_route_list(AF_UNSPEC, p->table, &r, &n))
		return false;
	for (size_t i = 0; i < n; i++)
		on |= r[i].type == RTN_UNICAST && r[i].dst.len == 0;
	free(r);
	return on;
}

struct rule_state {
	const struct ls_nm_peer *exit;
	char state[256];
};

/* Decides each rule's exit and state; returns the peer that should hold the interface's
 * default route for the app routes (NULL: none). */
static const struct ls_nm_peer *resolve(const struct ls_profile *p, const struct ls_perapp_set *set,
					const struct ls_netmap *nm, const struct ls_wg_device *dev,
					struct rule_state *rs)
{
	const struct ls_nm_peer *want = NULL;
	const struct ls_wg_peer *holder = NULL;
	bool sys = profile_exit_active(p);

	for (size_t i = 0; dev && i < dev->n_peers; i++) {
		if (has_default(&dev->peers[i], AF_INET) || has_default(&dev->peers[i], AF_INET6))
			holder = &dev->peers[i];
	}
	for (size_t i = 0; i < set->n; i++) {
		char why[200];
		const struct ls_nm_peer *e = nm ? ls_dp_pick_exit(nm, set->v[i].exit, why, sizeof(why)) : NULL;

		rs[i].exit = NULL;
		if (!nm) {
			snprintf(rs[i].state, sizeof(rs[i].state), "no netmap yet (traffic blocked)");
			continue;
		}
		if (!dev) {
			snprintf(rs[i].state, sizeof(rs[i].state), "interface %s is not up (traffic blocked)", p->ifname);
			continue;
		}
		if (!e) {
			snprintf(rs[i].state, sizeof(rs[i].state), "%s (traffic blocked)", why);
			continue;
		}
		if (sys && holder && memcmp(holder->key, e->wg_key, LS_WG_KEY_LEN)) {
			const struct ls_nm_peer *h = NULL;

			for (size_t k = 0; k < nm->n_peers && !h; k++)
				if (!memcmp(nm->peers[k]->wg_key, holder->key, LS_WG_KEY_LEN))
					h = nm->peers[k];
			snprintf(rs[i].state, sizeof(rs[i].state),
				 "conflict: the profile's exit node is %s and one interface routes the default to one peer "
				 "(use exit %s, or an exit of another network) (traffic blocked)",
				 h ? h->name : "another peer", h ? h->name : "it");
			continue;
		}
		if (want && want != e) {
			snprintf(rs[i].state, sizeof(rs[i].state),
				 "conflict: another app route of this profile uses exit %s; one interface routes the default "
				 "to one peer (traffic blocked)",
				 want->name);
			continue;
		}
		want = e;
		rs[i].exit = e;
		snprintf(rs[i].state, sizeof(rs[i].state), "active");
	}
	return sys ? NULL : want;
}

int ls_perapp_apply(const struct ls_profile *p, const struct ls_netmap *nm)
{
	return apply(p, nm, false);
}

/* force: a rule was just removed, so a peer may hold a default route for it. Without app
 * routes (and nothing cleaned up) the peers' AllowedIPs are the data plane's alone. */
static int apply(const struct ls_profile *p, const struct ls_netmap *nm_in, bool force)
{
	struct ls_perapp_set set;
	struct ls_netmap *own = NULL;
	const struct ls_netmap *nm = nm_in;
	const struct ls_wg_engine *eng = ls_wg_engine_serving(p->ifname);
	struct ls_wg_device *dev = NULL;
	struct rule_state *rs = NULL;
	const struct ls_nm_peer *want;
	char err[512], dir[PATH_MAX];
	int ifindex = (int)if_nametoindex(p->ifname), ret;
	DIR *d;
	struct dirent *e;

	if ((ret = ls_perapp_load(p, &set, err, sizeof(err)))) {
		pr_warn("app routes: %s", err);
		return ret;
	}
	/* pins of rules that are gone */
	pin_dir(p->name, dir, sizeof(dir));
	if ((d = opendir(dir))) {
		while ((e = readdir(d))) {
			int slot;
			char tail[8] = "";
			bool known = false;

			if (sscanf(e->d_name, "app-%d%7s", &slot, tail) < 1 || slot < 0 || slot >= LS_PERAPP_MAX)
				continue;
			for (size_t i = 0; i < set.n; i++)
				known |= set.v[i].slot == slot;
			if (!known) {
				slot_down(p, slot);
				force = true;
			}
		}
		closedir(d);
	}
	if (!set.n && !force)
		goto cleanup; /* nothing to do: the agent calls this every few seconds */
	if (!nm && ls_profile_load_netmap(p, &own, err, sizeof(err)) == 0)
		nm = own;
	if (eng && eng->get(p->ifname, &dev))
		dev = NULL;
	rs = calloc(set.n + 1, sizeof(*rs));
	if (!rs) {
		ret = -ENOMEM;
		goto cleanup;
	}
	want = resolve(p, &set, nm, dev, rs);
	/* the interface's default peer: the app routes' exit, unless the profile's own exit
	 * node holds it */
	if (dev && (set.n || force) && !profile_exit_active(p)) {
		for (size_t i = 0; i < dev->n_peers; i++) {
			const struct ls_wg_peer *w = &dev->peers[i];
			bool is_want = want && !memcmp(w->key, want->wg_key, LS_WG_KEY_LEN);
			bool has = has_default(w, AF_INET) && has_default(w, AF_INET6);

			if (is_want && !has)
				ret = peer_defaults(eng, p->ifname, w, true);
			else if (!is_want && (has_default(w, AF_INET) || has_default(w, AF_INET6)))
				ret = peer_defaults(eng, p->ifname, w, false);
			if (ret) {
				pr_warn("app routes: cannot set the default route of a peer on %s: %s", p->ifname, strerror(-ret));
				ret = 0;
			}
		}
	}
	if (set.n && ifindex) {
		char path[PATH_MAX];

		char cur[16];

		/* replies from the internet arrive on ls-P for a socket routed by mark: strict
		 * reverse-path filtering (mark 0, main table) would drop them. Strict (1) becomes
		 * loose (2); off (0) stays off (the kernel uses the larger of all and the device) */
		snprintf(path, sizeof(path), "net/ipv4/conf/%s/rp_filter", p->ifname);
		if (!ls_sysctl_get(path, cur, sizeof(cur)) && cur[0] == '1')
			ls_sysctl_set(path, "2");
		if (!ls_sysctl_get("net/ipv4/conf/all/rp_filter", cur, sizeof(cur)) && cur[0] == '1')
			ls_sysctl_set("net/ipv4/conf/all/rp_filter", "2");
	}
	if (set.n)
		ct_marks(true);
	else if (force) {
		struct pinned pins[LS_PERAPP_MAX * 4];

		if (!list_pins(pins, ARRAY_SIZE(pins)))
			ct_marks(false); /* the last app route on the machine is gone */
	}
	for (size_t i = 0; i < set.n; i++) {
		int r = slot_bpf(p, set.v[i].slot, set.v[i].cgroup);

		if (r && !ret)
			ret = r;
		slot_routes(set.v[i].slot, rs[i].exit ? ifindex : 0);
		slot_rules(set.v[i].slot, true);
	}
cleanup:
	free(rs);
	ls_wg_device_free(dev);
	ls_netmap_free(own);
	ls_perapp_set_free(&set);
	return ret;
}

int ls_perapp_down(const struct ls_profile *p)
{
	struct ls_perapp_set set;
	char err[512];
	int ret = ls_perapp_load(p, &set, err, sizeof(err));

	if (ret)
		return ret;
	for (size_t i = 0; i < set.n; i++)
		slot_down(p, set.v[i].slot);
	ls_perapp_set_free(&set);
	return 0;
}

/* ---- status ------------------------------------------------------------------------- */

json_t *ls_perapp_status(const struct ls_profile *p, const struct ls_netmap *nm_in)
{
	struct ls_perapp_set set;
	struct ls_netmap *own = NULL;
	const struct ls_netmap *nm = nm_in;
	const struct ls_wg_engine *eng = ls_wg_engine_serving(p->ifname);
	struct ls_wg_device *dev = NULL;
	struct rule_state *rs;
	json_t *arr = json_array(), *doc;
	char err[512], dir[PATH_MAX];

	pin_dir(p->name, dir, sizeof(dir));
	if (ls_perapp_load(p, &set, err, sizeof(err)))
		return json_pack("{s:s, s:o, s:s}", "error", err, "app_routes", arr, "pin_dir", dir);
	if (!nm && ls_profile_load_netmap(p, &own, err, sizeof(err)) == 0)
		nm = own;
	if (eng && eng->get(p->ifname, &dev))
		dev = NULL;
	rs = calloc(set.n + 1, sizeof(*rs));
	if (rs)
		resolve(p, &set, nm, dev, rs);
	for (size_t i = 0; rs && i < set.n; i++) {
		const struct ls_perapp_rule *r = &set.v[i];
		char lpath[PATH_MAX], mark[16];
		uint64_t id = cgroup_id(r->cgroup);
		int64_t sockets = slot_sockets(p, r->slot);
		int rules = 0;
		struct ls_rtnl_rule *cur = NULL;
		size_t n = 0;

		pin_path(p->name, r->slot, "", lpath, sizeof(lpath));
		for (int f = 0; f < 2; f++) {
			if (ls_rtnl_rule_list(f ? AF_INET6 : AF_INET, &cur, &n))
				continue;
			for (int w = 0; w < 2; w++) {
				struct ls_rtnl_rule want;

				slot_rule(r->slot, f ? AF_INET6 : AF_INET, w, &want);
				for (size_t k = 0; k < n; k++)
					rules += ls_rtnl_rule_equal(&cur[k], &want);
			}
			free(cur);
			cur = NULL;
		}
		snprintf(mark, sizeof(mark), "0x%x", ls_perapp_mark(r->slot));
		json_array_append_new(
			arr, json_pack("{s:s, s:s, s:o, s:o, s:i, s:s, s:I, s:I, s:s, s:b, s:b, s:i, s:o}", "cgroup", r->cgroup,
				       "exit", r->exit, "exit_id", rs[i].exit ? json_integer(rs[i].exit->id) : json_null(),
				       "exit_name", rs[i].exit ? json_string(rs[i].exit->name) : json_null(), "slot",
				       r->slot, "mark", mark, "table", (json_int_t)ls_perapp_table(r->slot), "priority",
				       (json_int_t)ls_perapp_prio(r->slot), "state", rs[i].state, "cgroup_exists", id != 0,
				       "bpf", id && pinned_cgroup(lpath) == (int64_t)id, "rules", rules, "sockets_marked",
				       sockets >= 0 ? json_integer(sockets) : json_null()));
	}
	doc = json_pack("{s:s, s:o, s:s}", "profile", p->name, "app_routes", arr, "pin_dir", dir);
	free(rs);
	ls_wg_device_free(dev);
	ls_netmap_free(own);
	ls_perapp_set_free(&set);
	return doc;
}
