// SPDX-License-Identifier: MIT
/*
 * liblsbpf: load, pin, lock, attach (tcx / clsact / xdp), adopt, detach.
 *
 * Pin directory layout (bpffs allows no dots in names, so kinds are directories):
 *   DIR/<map>                     every map, by its name without "ls_" (config, v2r4, ...)
 *   DIR/links/<ifname>/<hook>     tcx and xdp links (bpf_link_update adopts them)
 *   DIR/clsact/<ifname>/<hook>    the program attached with clsact (the record of it)
 * The lock is a flock on LSBPF_LOCK_DIR/<pin dir with / as _>.lock holding the agent's pid.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#ifndef ARPHRD_RAWIP
#define ARPHRD_RAWIP 519
#endif

#include "bpf/lightscale.skel.h"
#include "log.h"
#include "util.h"
#include "userspace/bpf/lsbpf.h"
#include "userspace/bpf/lsbpf_int.h"

static const struct hook_def {
	const char *name; /* hook name, also the program name after "ls_" */
	enum lsbpf_role role;
	bool ingress;
	bool xdp;
} hooks[] = {
	{ "overlay_in", LSBPF_ROLE_OVERLAY, true, false },
	{ "overlay_out", LSBPF_ROLE_OVERLAY, false, false },
	{ "lan_in", LSBPF_ROLE_LAN, true, false },
	{ "lan_out", LSBPF_ROLE_LAN, false, false },
	{ "xdp_lan_in", LSBPF_ROLE_LAN, true, true },
	{ "underlay_in", LSBPF_ROLE_UNDERLAY, true, false },
	{ "xdp_underlay_in", LSBPF_ROLE_UNDERLAY, true, true },
	{ "underlay_out", LSBPF_ROLE_UNDERLAY, false, false },
};

#define BPF_TCX_INGRESS_ 46
#define BPF_TCX_EGRESS_ 47

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* libbpf's chatter one level down: its warnings are our debug */
	if (level == LIBBPF_WARN && ls_log_level >= LS_LOG_DEBUG)
		return vfprintf(stderr, fmt, ap);
	if (level == LIBBPF_DEBUG && getenv("LIGHTSCALE_BPF_VERBOSE"))
		return vfprintf(stderr, fmt, ap);
	return 0;
}

const char *lsbpf_pin_dir(const struct lsbpf *b)
{
	return b->pin_dir;
}

int lsbpf_prog_fd(const struct lsbpf *b, const char *name)
{
	struct bpf_program *p = bpf_object__find_program_by_name(b->skel->obj, name);
	return p ? bpf_program__fd(p) : -ENOENT;
}

int lsbpf_map_fd(const struct lsbpf *b, const char *name)
{
	char full[64];
	snprintf(full, sizeof(full), "ls_%s", name);
	struct bpf_map *m = bpf_object__find_map_by_name(b->skel->obj, full);
	return m ? bpf_map__fd(m) : -ENOENT;
}

int lsbpf_default_pin_dir(const char *profile, char *out, size_t size)
{
	if (!profile || !*profile || strchr(profile, '/') || !strcmp(profile, ".") || !strcmp(profile, "..")) {
		pr_err("bpf: invalid profile name `%s'", profile ? profile : "");
		return -EINVAL;
	}
	if ((size_t)snprintf(out, size, "%s/%s", LSBPF_PIN_ROOT, profile) >= size)
		return -ENAMETOOLONG;
	return 0;
}

static int take_lock(struct lsbpf *b)
{
	char name[PATH_MAX], *c;
	int fd, r;

	r = ls_mkdir_p(LSBPF_LOCK_DIR, 0755);
	if (r) {
		pr_err("bpf: cannot create `%s': %s", LSBPF_LOCK_DIR, strerror(-r));
		return r;
	}
	snprintf(name, sizeof(name), "%s", b->pin_dir);
	for (c = name; *c; c++)
		if (*c == '/')
			*c = '_';
	snprintf(b->lock_path, sizeof(b->lock_path), "%s/%s.lock", LSBPF_LOCK_DIR, name);
	fd = open(b->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		pr_err("bpf: cannot open lock `%s': %s", b->lock_path, strerror(errno));
		return r;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		r = -errno;
		char pid[32] = "";
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
		if (n > 0)
			pid[strcspn(pid, "\n")] = 0;
		if (r == -EWOULDBLOCK) {
			pr_err("bpf: pin directory `%s' is held by another live agent (pid %s, lock %s)",
			       b->pin_dir, *pid ? pid : "?", b->lock_path);
			r = -EBUSY;
		}
		close(fd);
		return r;
	}
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) || pwrite(fd, buf, len, 0) != len)
		pr_warn("bpf: cannot write pid into `%s'", b->lock_path);
	b->lock_fd = fd;
	return 0;
}

static bool kernel_has_tcx(void)
{
	struct utsname u;
	int maj = 0, min = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &maj, &min) != 2)
		return false;
	return maj > 6 || (maj == 6 && min >= 6);
}

static int pin_path(const struct lsbpf *b, char *out, size_t size, const char *kind,
		    const char *ifname, const char *hook)
{
	int n = hook ? snprintf(out, size, "%s/%s/%s/%s", b->pin_dir, kind, ifname, hook)
		     : snprintf(out, size, "%s/%s/%s", b->pin_dir, kind, ifname);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static const struct hook_def *hook_by_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(hooks); i++)
		if (!strcmp(hooks[i].name, name))
			return &hooks[i];
	return NULL;
}

int lsbpf_dev_l2(const char *ifname, unsigned *type)
{
	struct ifreq ifr = {};
	int fd, r;

	if (strlen(ifname) >= sizeof(ifr.ifr_name))
		return -ENODEV;
	strcpy(ifr.ifr_name, ifname);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* SIOCGIFHWADDR answers for this netns (sysfs would show the mounter's) */
	r = ioctl(fd, SIOCGIFHWADDR, &ifr) ? -errno : 0;
	close(fd);
	if (r)
		return r == -ENODEV || r == -ENXIO ? -ENODEV : r;
	unsigned t = (unsigned short)ifr.ifr_hwaddr.sa_family;
	if (type)
		*type = t;
	switch (t) {
	case ARPHRD_ETHER:
	case ARPHRD_LOOPBACK:
		return 14;
	case ARPHRD_NONE:    /* WireGuard, TUN */
	case ARPHRD_PPP:
	case ARPHRD_RAWIP:   /* wwan modems */
	case ARPHRD_TUNNEL:  /* ipip */
	case ARPHRD_TUNNEL6: /* ip6tnl */
	case ARPHRD_SIT:
		return 0;
	}
	return -EPROTONOSUPPORT;
}

uint32_t lsbpf_role_l2(const struct lightscale *obj, int role)
{
	switch (role) {
	case LSBPF_ROLE_OVERLAY:
		return obj->rodata->cfg_overlay_l2;
	case LSBPF_ROLE_LAN:
		return obj->rodata->cfg_lan_l2;
	}
	return obj->rodata->cfg_underlay_l2;
}

/* The role's programs built for l2 (0 or 14), sharing b->skel's maps: loaded on first use. */
static int load_variant(struct lsbpf *b, enum lsbpf_role role, uint32_t l2, struct lightscale **out)
{
	int k = l2 ? 1 : 0, r;
	struct lightscale *v = b->variant[role][k];
	struct bpf_program *prog;
	struct bpf_map *m;

	if (v) {
		*out = v;
		return 0;
	}
	v = lightscale__open();
	if (!v)
		return -errno ? -errno : -EINVAL;
	v->rodata->cfg_overlay_l2 = v->rodata->cfg_lan_l2 = v->rodata->cfg_underlay_l2 = l2;
	bpf_object__for_each_program(prog, v->obj) {
		const char *n = bpf_program__name(prog);
		bool want = false;
		for (size_t i = 0; i < ARRAY_SIZE(hooks); i++)
			if (hooks[i].role == role && !strncmp(n, "ls_", 3) && !strcmp(n + 3, hooks[i].name))
				want = true;
		bpf_program__set_autoload(prog, want);
	}
	bpf_object__for_each_map(m, v->obj) {
		if (bpf_map__is_internal(m))
			continue;
		struct bpf_map *main = bpf_object__find_map_by_name(b->skel->obj, bpf_map__name(m));
		if (!main || (r = bpf_map__reuse_fd(m, bpf_map__fd(main)))) {
			r = main ? r : -ENOENT;
			pr_err("bpf: cannot share map `%s' with the L2 %u programs: %s", bpf_map__name(m), l2,
			       strerror(-r));
			lightscale__destroy(v);
			return r;
		}
	}
	r = lightscale__load(v);
	if (r) {
		pr_err("bpf: cannot load the %s programs for L2 length %u: %s", role == LSBPF_ROLE_OVERLAY ? "overlay"
		       : role == LSBPF_ROLE_LAN ? "LAN" : "underlay", l2, strerror(-r));
		lightscale__destroy(v);
		return r;
	}
	pr_debug("bpf: loaded the %s programs for L2 length %u", role == LSBPF_ROLE_OVERLAY ? "overlay" : "LAN/underlay", l2);
	b->variant[role][k] = v;
	*out = v;
	return 0;
}

/* The hook's program for a device whose L2 header is l2 bytes long. */
static int hook_prog_fd(struct lsbpf *b, const struct hook_def *h, uint32_t l2)
{
	struct lightscale *obj = b->skel;
	char name[32];
	int r;

	if (lsbpf_role_l2(b->skel, h->role) != l2 && (r = load_variant(b, h->role, l2, &obj)))
		return r;
	snprintf(name, sizeof(name), "ls_%s", h->name);
	struct bpf_program *p = bpf_object__find_program_by_name(obj->obj, name);
	return p ? bpf_program__fd(p) : -ENOENT;
}

/* TC priority of our clsact filters: one per pin dir, so two profiles on one NIC do not
 * replace each other's. */
uint32_t lsbpf_tc_prio(const char *pin_dir)
{
	uint32_t h = 2166136261u;
	for (const char *c = pin_dir; *c; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	return 0x4c00 | (h & 0xff);
}

static uint32_t tc_prio(const struct lsbpf *b)
{
	return lsbpf_tc_prio(b->pin_dir);
}

static int clsact_attach(struct lsbpf *b, int ifindex, const struct hook_def *h, int prog_fd, bool replace)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
			    .attach_point = h->ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 1, .priority = tc_prio(b), .prog_fd = prog_fd,
			    .flags = replace ? BPF_TC_F_REPLACE : 0);
	int r = bpf_tc_hook_create(&hook);
	if (r && r != -EEXIST)
		return r;
	return bpf_tc_attach(&hook, &opts);
}

static int clsact_detach(struct lsbpf *b, int ifindex, const struct hook_def *h)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
			    .attach_point = h->ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 1, .priority = tc_prio(b));
	return bpf_tc_detach(&hook, &opts);
}

static int pin_fd(const char *path, int fd)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = 0;
		int r = ls_mkdir_p(dir, 0700);
		if (r)
			return r;
	}
	unlink(path);
	return bpf_obj_pin(fd, path) ? -errno : 0;
}

static void rmdir_parent(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = 0;
		rmdir(dir); /* only when empty */
	}
}

/* Replaces a pinned link's program; 0, or -errno when the link is gone (its device was
 * deleted: the caller re-creates it). */
static int adopt_link(const char *path, int prog_fd)
{
	int fd = bpf_obj_get(path), r;
	if (fd < 0)
		return -errno;
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
		/* A tcx/xdp link whose device went away keeps ifindex 0. */
		__u32 ifindex = info.type == BPF_LINK_TYPE_XDP ? info.xdp.ifindex
							       : ((__u32 *)&info.raw_tracepoint)[0];
		if (!ifindex) {
			close(fd);
			unlink(path);
			return -ENODEV;
		}
	}
	r = bpf_link_update(fd, prog_fd, NULL) ? -errno : 0;
	close(fd);
	return r;
}

static int attach_hook(struct lsbpf *b, const char *ifname, int ifindex, const struct hook_def *h,
		       enum lsbpf_mode mode)
{
	char lpath[PATH_MAX], cpath[PATH_MAX];
	unsigned type = 0;
	int l2 = lsbpf_dev_l2(ifname, &type), prog_fd, r, link;

	if (l2 < 0) {
		if (l2 == -EPROTONOSUPPORT)
			pr_err("bpf: `%s' has link type %u: neither Ethernet nor an L3 device", ifname, type);
		else
			pr_err("bpf: cannot read the link type of `%s': %s", ifname, strerror(-l2));
		return l2;
	}
	prog_fd = hook_prog_fd(b, h, l2);
	if (prog_fd < 0)
		return prog_fd;
	if ((r = pin_path(b, lpath, sizeof(lpath), "links", ifname, h->name)) ||
	    (r = pin_path(b, cpath, sizeof(cpath), "clsact", ifname, h->name)))
		return r;

	/* Adopt what this pin dir already attached there. */
	if (access(lpath, F_OK) == 0) {
		r = adopt_link(lpath, prog_fd);
		if (!r) {
			pr_info("bpf: %s %s: adopted pinned link, program updated", ifname, h->name);
			return 0;
		}
		if (r != -ENODEV)
			pr_warn("bpf: %s %s: cannot update pinned link: %s; re-attaching", ifname, h->name,
				strerror(-r));
		unlink(lpath);
	}
	if (access(cpath, F_OK) == 0 && !h->xdp) {
		r = clsact_attach(b, ifindex, h, prog_fd, true);
		if (!r) {
			pin_fd(cpath, prog_fd);
			pr_info("bpf: %s %s: clsact filter replaced", ifname, h->name);
			return 0;
		}
		unlink(cpath);
	}

	if (h->xdp) {
		DECLARE_LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = XDP_FLAGS_DRV_MODE);
		link = bpf_link_create(prog_fd, ifindex, BPF_XDP, &lo);
		if (link < 0) {
			lo.flags = XDP_FLAGS_SKB_MODE;
			link = bpf_link_create(prog_fd, ifindex, BPF_XDP, &lo);
		}
		if (link < 0) {
			r = -errno;
			pr_err("bpf: %s: cannot attach XDP: %s", ifname, strerror(errno));
			return r;
		}
		r = pin_fd(lpath, link);
		close(link);
		return r;
	}

	if (mode == LSBPF_MODE_AUTO || mode == LSBPF_MODE_XDP) {
		const char *env = getenv("LIGHTSCALE_BPF_TC_MODE");
		if (env && !strcmp(env, "clsact"))
			mode = LSBPF_MODE_CLSACT;
		else if (env && !strcmp(env, "tcx"))
			mode = LSBPF_MODE_TCX;
		else
			mode = kernel_has_tcx() ? LSBPF_MODE_TCX : LSBPF_MODE_CLSACT;
	}
	if (mode == LSBPF_MODE_TCX) {
		link = bpf_link_create(prog_fd, ifindex, h->ingress ? BPF_TCX_INGRESS_ : BPF_TCX_EGRESS_, NULL);
		if (link >= 0) {
			r = pin_fd(lpath, link);
			close(link);
			if (r)
				pr_err("bpf: cannot pin link `%s': %s", lpath, strerror(-r));
			return r;
		}
		r = -errno;
		if (getenv("LIGHTSCALE_BPF_TC_MODE")) {
			pr_err("bpf: %s: tcx attach failed: %s", ifname, strerror(-r));
			return r;
		}
		pr_info("bpf: %s: tcx not available (%s), using clsact", ifname, strerror(-r));
	}
	r = clsact_attach(b, ifindex, h, prog_fd, false);
	if (r == -EEXIST)
		r = clsact_attach(b, ifindex, h, prog_fd, true);
	if (r) {
		pr_err("bpf: %s: clsact attach of %s failed: %s", ifname, h->name, strerror(-r));
		return r;
	}
	return pin_fd(cpath, prog_fd);
}

int lsbpf_attach(struct lsbpf *b, const char *ifname, enum lsbpf_role role, enum lsbpf_mode mode)
{
	int ifindex = if_nametoindex(ifname), r;

	if (!ifindex) {
		pr_err("bpf: no interface `%s'", ifname);
		return -ENODEV;
	}
	if (b->no_pin) {
		pr_err("bpf: attach needs a pin directory (opened with no_pin)");
		return -EINVAL;
	}
	bool xdp_ok = mode == LSBPF_MODE_XDP;
	if (xdp_ok && !getenv("LIGHTSCALE_BPF_XDP_FORCE")) {
		/* Virtual devices (veth, no /sys/class/net/IF/device) hand XDP packets whose
		 * checksums are only partial; an XDP rewrite would break TCP/UDP there. */
		char dev[PATH_MAX];
		snprintf(dev, sizeof(dev), "/sys/class/net/%s/device", ifname);
		if (access(dev, F_OK)) {
			pr_info("bpf: %s is a virtual device: TC only, no XDP (checksums may be partial; "
				"LIGHTSCALE_BPF_XDP_FORCE=1 overrides)", ifname);
			xdp_ok = false;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(hooks); i++) {
		const struct hook_def *h = &hooks[i];
		if (h->role != role)
			continue;
		if (h->xdp && !xdp_ok)
			continue;
		r = attach_hook(b, ifname, ifindex, h, mode);
		if (r)
			return r;
	}
	return 0;
}

static int detach_one(struct lsbpf *b, const char *kind, const char *ifname, const char *hook)
{
	char path[PATH_MAX];
	const struct hook_def *h = hook_by_name(hook);
	int r = pin_path(b, path, sizeof(path), kind, ifname, hook);

	if (r || !h)
		return r ? r : -EINVAL;
	if (!strcmp(kind, "links")) {
		int fd = bpf_obj_get(path);
		if (fd >= 0) {
			bpf_link_detach(fd);
			close(fd);
		}
	} else {
		int ifindex = if_nametoindex(ifname);
		if (ifindex) {
			r = clsact_detach(b, ifindex, h);
			if (r && r != -ENOENT)
				pr_warn("bpf: %s %s: clsact detach: %s", ifname, hook, strerror(-r));
		}
	}
	unlink(path);
	rmdir_parent(path);
	return 0;
}

int lsbpf_for_each_attachment(const char *pin_dir,
			      int (*fn)(void *arg, const char *kind, const char *ifname, const char *hook),
			      void *arg)
{
	static const char *kinds[] = { "links", "clsact" };
	for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s/%s", pin_dir, kinds[k]);
		DIR *d = opendir(dir);
		if (!d)
			continue;
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char sub[PATH_MAX];
			snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
			DIR *d2 = opendir(sub);
			if (!d2)
				continue;
			struct dirent *e2;
			while ((e2 = readdir(d2))) {
				if (e2->d_name[0] == '.')
					continue;
				int r = fn(arg, kinds[k], e->d_name, e2->d_name);
				if (r) {
					closedir(d2);
					closedir(d);
					return r;
				}
			}
			closedir(d2);
		}
		closedir(d);
	}
	return 0;
}

struct detach_arg {
	struct lsbpf *b;
	const char *ifname; /* NULL: all */
	int n;
};

static int detach_cb(void *arg, const char *kind, const char *ifname, const char *hook)
{
	struct detach_arg *a = arg;
	if (a->ifname && strcmp(a->ifname, ifname))
		return 0;
	detach_one(a->b, kind, ifname, hook);
	a->n++;
	return 0;
}

int lsbpf_detach(struct lsbpf *b, const char *ifname)
{
	struct detach_arg a = { .b = b, .ifname = ifname };
	lsbpf_for_each_attachment(b->pin_dir, detach_cb, &a);
	if (!a.n) {
		pr_err("bpf: nothing of `%s' attached to `%s'", b->pin_dir, ifname);
		return -ENOENT;
	}
	return 0;
}

struct adopt_arg {
	struct lsbpf *b;
	int n;
};

static int adopt_cb(void *arg, const char *kind, const char *ifname, const char *hook)
{
	struct adopt_arg *a = arg;
	const struct hook_def *h = hook_by_name(hook);
	int ifindex = if_nametoindex(ifname);

	if (!h)
		return 0;
	if (!ifindex) {
		pr_warn("bpf: %s gone; dropping its %s record", ifname, hook);
		char path[PATH_MAX];
		if (!pin_path(a->b, path, sizeof(path), kind, ifname, hook)) {
			unlink(path);
			rmdir_parent(path);
		}
		return 0;
	}
	if (!attach_hook(a->b, ifname, ifindex, h, !strcmp(kind, "clsact") ? LSBPF_MODE_CLSACT : LSBPF_MODE_TCX))
		a->n++;
	return 0;
}

static void set_pins(struct lsbpf *b)
{
	struct bpf_map *m;
	bpf_object__for_each_map(m, b->skel->obj) {
		const char *n = bpf_map__name(m);
		if (bpf_map__is_internal(m) || strncmp(n, "ls_", 3))
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", b->pin_dir, n + 3);
		bpf_map__set_pin_path(m, path);
	}
}

/* A pinned map of an older layout (a struct grew, a size changed) would make the load
 * fail: it is unpinned instead, and the next apply fills the new one. The programs still
 * attached keep the old map until adoption moves their links to the new programs. */
static void drop_incompatible_pins(struct lsbpf *b)
{
	struct bpf_map *m;

	bpf_object__for_each_map(m, b->skel->obj) {
		const char *path = bpf_map__pin_path(m);
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);
		int fd;

		if (!path || (fd = bpf_obj_get(path)) < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(fd, &info, &len) &&
		    (info.type != bpf_map__type(m) || info.key_size != bpf_map__key_size(m) ||
		     info.value_size != bpf_map__value_size(m) || info.max_entries != bpf_map__max_entries(m) ||
		     info.map_flags != bpf_map__map_flags(m))) {
			pr_warn("bpf: pinned map `%s' has another layout (key %u, value %u bytes, %u entries; now %u, %u, %u): "
				"replaced, its entries are rebuilt", path, info.key_size, info.value_size, info.max_entries,
				bpf_map__key_size(m), bpf_map__value_size(m), bpf_map__max_entries(m));
			unlink(path);
		}
		close(fd);
	}
}

int lsbpf_open(const struct lsbpf_opts *o, struct lsbpf **out)
{
	struct lsbpf *b = calloc(1, sizeof(*b));
	int r;

	if (!b)
		return -ENOMEM;
	b->lock_fd = -1;
	b->no_pin = o->no_pin;
	libbpf_set_print(libbpf_print);
	if (!o->no_pin) {
		if (o->pin_dir)
			snprintf(b->pin_dir, sizeof(b->pin_dir), "%s", o->pin_dir);
		else if ((r = lsbpf_default_pin_dir(o->profile ? o->profile : "default", b->pin_dir,
						    sizeof(b->pin_dir))))
			goto fail;
		if ((r = take_lock(b)))
			goto fail;
		r = ls_mkdir_p(b->pin_dir, 0700);
		if (r) {
			pr_err("bpf: cannot create pin directory `%s': %s (is bpffs mounted on /sys/fs/bpf?)",
			       b->pin_dir, strerror(-r));
			goto fail;
		}
	}
	b->skel = lightscale__open();
	if (!b->skel) {
		r = -errno ? -errno : -EINVAL;
		pr_err("bpf: cannot open the BPF object: %s", strerror(-r));
		goto fail;
	}
	if (o->force_l2) {
		b->skel->rodata->cfg_overlay_l2 = o->overlay_l2;
		b->skel->rodata->cfg_lan_l2 = o->lan_l2;
		b->skel->rodata->cfg_underlay_l2 = o->underlay_l2;
	}
	if (o->nat_max) {
		bpf_map__set_max_entries(b->skel->maps.ls_nat_out, o->nat_max);
		bpf_map__set_max_entries(b->skel->maps.ls_nat_in, o->nat_max);
	}
	if (o->flow_max)
		bpf_map__set_max_entries(b->skel->maps.ls_flows, o->flow_max);
	if (!o->no_pin) {
		/* the stage programs and empty floors are for tests and benchmarks */
		struct bpf_program *prog;
		bpf_object__for_each_program(prog, b->skel->obj) {
			const char *n = bpf_program__name(prog);
			if (!strncmp(n, "ls_stage_", 9) || !strncmp(n, "ls_empty_", 9))
				bpf_program__set_autoload(prog, false);
		}
		set_pins(b);
		drop_incompatible_pins(b);
	}
	r = lightscale__load(b->skel);
	if (r) {
		pr_err("bpf: cannot load the BPF object (pin dir `%s'): %s%s", b->pin_dir, strerror(-r),
		       r == -EINVAL && !o->no_pin ? " (a pinned map of an older layout? `lightscale bpf down' clears it)" : "");
		goto fail;
	}
	if (!o->no_pin) {
		struct adopt_arg a = { .b = b };
		lsbpf_for_each_attachment(b->pin_dir, adopt_cb, &a);
		if (a.n)
			pr_info("bpf: adopted %d attachment(s) under %s", a.n, b->pin_dir);
	}
	*out = b;
	return 0;
fail:
	lsbpf_close(b);
	return r;
}

void lsbpf_close(struct lsbpf *b)
{
	if (!b)
		return;
	for (int i = 0; i < LSBPF_ROLES; i++)
		for (int k = 0; k < LSBPF_L2_KINDS; k++)
			if (b->variant[i][k])
				lightscale__destroy(b->variant[i][k]);
	if (b->skel)
		lightscale__destroy(b->skel);
	if (b->lock_fd >= 0)
		close(b->lock_fd);
	free(b);
}

int lsbpf_destroy(struct lsbpf *b)
{
	struct detach_arg a = { .b = b };
	char path[PATH_MAX];

	if (!b)
		return 0;
	if (!b->no_pin) {
		lsbpf_for_each_attachment(b->pin_dir, detach_cb, &a);
		lsbpf_unreserve_ports(b);
		struct bpf_map *m;
		bpf_object__for_each_map(m, b->skel->obj)
			if (bpf_map__pin_path(m))
				bpf_map__unpin(m, NULL);
		snprintf(path, sizeof(path), "%s/links", b->pin_dir);
		rmdir(path);
		snprintf(path, sizeof(path), "%s/clsact", b->pin_dir);
		rmdir(path);
		if (rmdir(b->pin_dir) && errno != ENOENT)
			pr_warn("bpf: `%s' not empty, left in place", b->pin_dir);
		if (b->lock_path[0])
			unlink(b->lock_path);
	}
	lsbpf_close(b);
	return 0;
}
