// SPDX-License-Identifier: MIT
#include "mnet.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "status.h"
#include "util.h"

int ls_mnet_path(char *out, size_t size)
{
	const char *env = getenv("LIGHTSCALE_MNET_STATE");
	struct stat self, init;

	if (env && *env)
		return (size_t)snprintf(out, size, "%s", env) < size ? 0 : -ENAMETOOLONG;
	if (stat("/proc/self/ns/net", &self) == 0 && (stat("/proc/1/ns/net", &init) < 0 || self.st_ino != init.st_ino))
		snprintf(out, size, "%s/multinet-%lu.json", LS_RUN_DIR, (unsigned long)self.st_ino);
	else
		snprintf(out, size, "%s/multinet.json", LS_RUN_DIR);
	return 0;
}

static int mnet_lock(int op)
{
	char path[PATH_MAX], lpath[PATH_MAX + 8];
	int fd;

	ls_mnet_path(path, sizeof(path));
	snprintf(lpath, sizeof(lpath), "%s.lock", path);
	ls_mkdir_p(LS_RUN_DIR, 0755);
	fd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, op) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

static json_t *mnet_load(void)
{
	char path[PATH_MAX], *buf = NULL;
	size_t len;
	json_t *doc = NULL;

	ls_mnet_path(path, sizeof(path));
	if (ls_read_file(path, &buf, &len, 1 << 20) == 0) {
		doc = json_loadb(buf, len, 0, NULL);
		free(buf);
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		doc = json_object();
	}
	if (!json_is_object(json_object_get(doc, "profiles")))
		json_object_set_new(doc, "profiles", json_object());
	if (!json_object_get(doc, "default_owner"))
		json_object_set_new(doc, "default_owner", json_null());
	return doc;
}

static int mnet_save(json_t *doc)
{
	char path[PATH_MAX], *s;
	int ret;

	ls_mnet_path(path, sizeof(path));
	s = json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS);
	if (!s)
		return -ENOMEM;
	ret = ls_write_file_atomic(path, s, strlen(s), 0644);
	free(s);
	if (ret)
		pr_err("cannot write %s: %s", path, strerror(-ret));
	return ret;
}

static void bump(json_t *doc)
{
	json_object_set_new(doc, "generation",
			    json_integer(json_integer_value(json_object_get(doc, "generation")) + 1));
}

static bool entry_live(json_t *e)
{
	pid_t pid = (pid_t)json_integer_value(json_object_get(e, "pid"));
	const char *ifn = json_string_value(json_object_get(e, "ifname"));

	if (pid > 0 && (kill(pid, 0) == 0 || errno == EPERM))
		return true;
	return ifn && if_nametoindex(ifn) != 0;
}

/* Drops dead entries; returns true when something changed. */
static bool prune(json_t *doc)
{
	json_t *profs = json_object_get(doc, "profiles"), *e;
	const char *name, *owner;
	void *tmp;
	bool changed = false;

	json_object_foreach_safe(profs, tmp, name, e) {
		if (!entry_live(e)) {
			json_object_del(profs, name);
			changed = true;
		}
	}
	owner = json_string_value(json_object_get(doc, "default_owner"));
	if (owner && !json_object_get(profs, owner)) {
		json_object_set_new(doc, "default_owner", json_null());
		changed = true;
	}
	if (changed)
		bump(doc);
	return changed;
}

json_t *ls_mnet_read(void)
{
	int fd = mnet_lock(LOCK_SH);
	json_t *doc = mnet_load();

	if (fd >= 0)
		close(fd);
	prune(doc);
	return doc;
}

unsigned long ls_mnet_generation(void)
{
	json_t *doc = ls_mnet_read();
	unsigned long g = (unsigned long)json_integer_value(json_object_get(doc, "generation"));

	json_decref(doc);
	return g;
}

static void slot_values(int s, uint32_t *table, uint32_t *prio, uint32_t *mark)
{
	*table = LS_MNET_TABLE_BASE + (uint32_t)s;
	*prio = LS_MNET_PRIO_BASE + 10u * (uint32_t)s;
	*mark = LS_FWMARK_BASE | (uint32_t)(s + 1);
}

int ls_mnet_claim(struct ls_profile *p)
{
	json_t *doc, *profs, *e, *mine;
	bool used[LS_MNET_SLOTS] = { false };
	const char *name;
	int fd, slot = -1, ret;
	uint32_t t, pr, m;

	if ((fd = mnet_lock(LOCK_EX)) < 0)
		return fd;
	doc = mnet_load();
	prune(doc);
	profs = json_object_get(doc, "profiles");
	mine = json_object_get(profs, p->name);
	json_object_foreach(profs, name, e) {
		json_int_t s = json_integer_value(json_object_get(e, "slot"));

		if (e != mine && s >= 0 && s < LS_MNET_SLOTS)
			used[s] = true;
	}
	if (mine) {
		json_int_t s = json_integer_value(json_object_get(mine, "slot"));

		if (s >= 0 && s < LS_MNET_SLOTS && !used[s])
			slot = (int)s;
	}
	/* the slot the profile had before (a reboot empties /run) when it is free */
	if (slot < 0 && p->table >= LS_MNET_TABLE_BASE && p->table < LS_MNET_TABLE_BASE + LS_MNET_SLOTS) {
		int s = (int)(p->table - LS_MNET_TABLE_BASE);

		slot_values(s, &t, &pr, &m);
		if (!used[s] && p->rule_prio == pr && p->fwmark == m)
			slot = s;
	}
	for (int s = 0; slot < 0 && s < LS_MNET_SLOTS; s++) {
		if (!used[s])
			slot = s;
	}
	if (slot < 0) {
		pr_err("no free multi-network slot (%d profiles run in this namespace)", LS_MNET_SLOTS);
		ret = -ENOSPC;
		goto cleanup;
	}
	slot_values(slot, &t, &pr, &m);
	if (!mine) {
		mine = json_object();
		json_object_set_new(profs, p->name, mine);
		bump(doc);
	}
	json_object_set_new(mine, "pid", json_integer(getpid()));
	json_object_set_new(mine, "slot", json_integer(slot));
	json_object_set_new(mine, "ifname", json_string(p->ifname));
	json_object_set_new(mine, "table", json_integer(t));
	json_object_set_new(mine, "rule_priority", json_integer(pr));
	json_object_set_new(mine, "fwmark", json_integer(m));
	if ((ret = mnet_save(doc)))
		goto cleanup;
	if (p->table != t || p->rule_prio != pr || p->fwmark != m) {
		pr_info("profile '%s': slot %d (table %u, rule priority %u, fwmark 0x%x)", p->name, slot, t, pr, m);
		p->table = t;
		p->rule_prio = pr;
		p->fwmark = m;
		if (ls_profile_save_config(p))
			pr_warn("cannot save %s/config.json", p->dir);
	}
	ret = 0;
cleanup:
	json_decref(doc);
	close(fd);
	return ret;
}

int ls_mnet_release(const char *profile)
{
	json_t *doc;
	const char *owner;
	int fd, ret = 0;

	if ((fd = mnet_lock(LOCK_EX)) < 0)
		return fd;
	doc = mnet_load();
	prune(doc);
	if (json_object_get(json_object_get(doc, "profiles"), profile)) {
		json_object_del(json_object_get(doc, "profiles"), profile);
		owner = json_string_value(json_object_get(doc, "default_owner"));
		if (owner && !strcmp(owner, profile))
			json_object_set_new(doc, "default_owner", json_null());
		bump(doc);
		ret = mnet_save(doc);
	}
	json_decref(doc);
	close(fd);
	return ret;
}

bool ls_mnet_values_taken(const struct ls_profile *p)
{
	json_t *doc = ls_mnet_read(), *e;
	const char *name;
	bool taken = false;

	json_object_foreach(json_object_get(doc, "profiles"), name, e) {
		if (!strcmp(name, p->name))
			continue;
		taken |= (uint32_t)json_integer_value(json_object_get(e, "table")) == p->table ||
			 (uint32_t)json_integer_value(json_object_get(e, "rule_priority")) == p->rule_prio;
	}
	json_decref(doc);
	return taken;
}

bool ls_mnet_default(const char *profile, bool want, char *owner, size_t owner_size)
{
	json_t *doc;
	const char *cur;
	bool changed, mine;
	int fd = mnet_lock(LOCK_EX);

	doc = mnet_load();
	changed = prune(doc);
	cur = json_string_value(json_object_get(doc, "default_owner"));
	if (want && !cur && json_object_get(json_object_get(doc, "profiles"), profile)) {
		json_object_set_new(doc, "default_owner", json_string(profile));
		bump(doc);
		changed = true;
	} else if (!want && cur && !strcmp(cur, profile)) {
		json_object_set_new(doc, "default_owner", json_null());
		bump(doc);
		changed = true;
	}
	cur = json_string_value(json_object_get(doc, "default_owner"));
	mine = cur && !strcmp(cur, profile);
	if (owner)
		snprintf(owner, owner_size, "%s", cur ? cur : "");
	if (changed && fd >= 0)
		mnet_save(doc);
	json_decref(doc);
	if (fd >= 0)
		close(fd);
	return mine;
}

int ls_mnet_take_default(const char *profile, bool take)
{
	json_t *doc;
	const char *cur;
	int fd = mnet_lock(LOCK_EX), ret = 0;

	if (fd < 0)
		return fd;
	doc = mnet_load();
	prune(doc);
	cur = json_string_value(json_object_get(doc, "default_owner"));
	if (take && (!cur || strcmp(cur, profile))) {
		json_object_set_new(doc, "default_owner", json_string(profile));
		bump(doc);
		ret = mnet_save(doc);
	} else if (!take && cur && !strcmp(cur, profile)) {
		json_object_set_new(doc, "default_owner", json_null());
		bump(doc);
		ret = mnet_save(doc);
	}
	json_decref(doc);
	close(fd);
	return ret;
}

int ls_mnet_virtual(const char *profile, const struct ls_prefix *real, const struct ls_prefix *pool,
		    const struct ls_prefix *used, size_t n_used, struct ls_prefix *out)
{
	char key[LS_PREFIX_STRLEN + LS_PROFILE_NAME_MAX + 2], b[LS_PREFIX_STRLEN];
	unsigned int bits, nblocks;
	uint32_t start;

	if (real->family != pool->family || real->len < pool->len)
		return -ENOSPC;
	bits = real->len - pool->len;
	nblocks = bits >= 20 ? 1u << 20 : 1u << bits;
	ls_prefix_format(real, b);
	snprintf(key, sizeof(key), "%s|%s", profile, b);
	start = ls_hash32(key) % nblocks;
	for (unsigned int k = 0; k < nblocks && k < 4096; k++) {
		uint32_t idx = (start + k) % nblocks;
		struct ls_prefix v = *pool;
		bool clash = false;

		v.len = real->len;
		/* write idx into bits [pool->len, real->len) */
		for (unsigned int i = 0; i < bits && i < 20; i++) {
			unsigned int bit = real->len - 1 - i;

			if (idx & (1u << i))
				v.addr[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
		}
		for (size_t j = 0; j < n_used && !clash; j++)
			clash = ls_prefix_overlap(&used[j], &v);
		if (!clash) {
			*out = v;
			return 0;
		}
	}
	return -ENOSPC;
}

int ls_mnet_publish(const struct ls_profile *p, const struct ls_prefix *routes, size_t n,
		    const struct ls_mnet_pools *pools, char *const *allow_forward, size_t n_allow,
		    const struct ls_mnet_map *manual, size_t n_manual, json_t **mappings)
{
	json_t *doc, *profs, *mine, *jr = json_array(), *ja = json_array(), *oldv, *newv = json_object(), *maps;
	struct ls_prefix *used = NULL;
	size_t n_used = 0, cap = 0;
	const char *name;
	json_t *e;
	int fd, ret = 0;

	*mappings = maps = json_array();
	if ((fd = mnet_lock(LOCK_EX)) < 0) {
		json_decref(jr);
		json_decref(ja);
		json_decref(newv);
		return fd;
	}
	doc = mnet_load();
	prune(doc);
	profs = json_object_get(doc, "profiles");
	mine = json_object_get(profs, p->name);
	if (!mine) {
		mine = json_object();
		json_object_set_new(mine, "pid", json_integer(getpid()));
		json_object_set_new(mine, "ifname", json_string(p->ifname));
		json_object_set_new(mine, "slot", json_integer((json_int_t)p->table - LS_MNET_TABLE_BASE));
		json_object_set_new(profs, p->name, mine);
	}
	for (size_t i = 0; i < n; i++) {
		char b[LS_PREFIX_STRLEN];

		ls_prefix_format(&routes[i], b);
		json_array_append_new(jr, json_string(b));
	}
	for (size_t i = 0; i < n_allow; i++)
		json_array_append_new(ja, json_string(allow_forward[i]));
	/* virtual prefixes the others hold are taken */
	json_object_foreach(profs, name, e) {
		const char *k;
		json_t *v;

		if (e == mine)
			continue;
		json_object_foreach(json_object_get(e, "virtual"), k, v) {
			struct ls_prefix vp;

			if (!json_is_string(v) || ls_prefix_parse(json_string_value(v), &vp, false))
				continue;
			if (n_used == cap) {
				struct ls_prefix *nu = realloc(used, (cap = cap ? cap * 2 : 16) * sizeof(*nu));

				if (!nu) {
					ret = -ENOMEM;
					goto cleanup;
				}
				used = nu;
			}
			used[n_used++] = vp;
		}
	}
	/* our manual maps too */
	for (size_t i = 0; i < n_manual; i++) {
		char vb[LS_PREFIX_STRLEN], rb[LS_PREFIX_STRLEN];

		if (n_used == cap) {
			struct ls_prefix *nu = realloc(used, (cap = cap ? cap * 2 : 16) * sizeof(*nu));

			if (!nu) {
				ret = -ENOMEM;
				goto cleanup;
			}
			used = nu;
		}
		used[n_used++] = manual[i].virt;
		ls_prefix_format(&manual[i].virt, vb);
		ls_prefix_format(&manual[i].real, rb);
		json_array_append_new(maps, json_pack("{s:s, s:s, s:[], s:s}", "real", rb, "virtual", vb, "conflicts_with",
						      "source", "manual"));
	}
	oldv = json_object_get(mine, "virtual");
	for (size_t i = 0; i < n; i++) {
		json_t *with = json_array(), *prev;
		char b[LS_PREFIX_STRLEN], vb[LS_PREFIX_STRLEN];
		struct ls_prefix v;

		if (ls_prefix_is_default(&routes[i])) {
			json_decref(with);
			continue;
		}
		json_object_foreach(profs, name, e) {
			size_t k;
			json_t *r;

			if (e == mine)
				continue;
			json_array_foreach(json_object_get(e, "routes"), k, r) {
				struct ls_prefix op;

				if (json_is_string(r) && !ls_prefix_parse(json_string_value(r), &op, false) &&
				    !ls_prefix_is_default(&op) && ls_prefix_overlap(&op, &routes[i])) {
					json_array_append_new(with, json_string(name));
					break;
				}
			}
		}
		if (!json_array_size(with)) {
			json_decref(with);
			continue;
		}
		ls_prefix_format(&routes[i], b);
		/* a --map of this very prefix resolves the conflict instead of an automatic one */
		{
			bool manual_done = false;
			size_t k;
			json_t *mm;

			json_array_foreach(maps, k, mm) {
				if (!manual_done && !strcmp(json_string_value(json_object_get(mm, "source")), "manual") &&
				    !strcmp(json_string_value(json_object_get(mm, "real")), b)) {
					json_object_set(mm, "conflicts_with", with);
					manual_done = true;
				}
			}
			if (manual_done) {
				json_decref(with);
				continue;
			}
		}
		prev = json_object_get(oldv, b);
		ret = -ENOSPC;
		if (json_is_string(prev) && !ls_prefix_parse(json_string_value(prev), &v, false) &&
		    v.len == routes[i].len && v.family == routes[i].family) {
			bool clash = false;

			for (size_t j = 0; j < n_used && !clash; j++)
				clash = ls_prefix_overlap(&used[j], &v);
			ret = clash ? -ENOSPC : 0;
		}
		if (ret)
			ret = ls_mnet_virtual(p->name, &routes[i],
					      routes[i].family == AF_INET ? &pools->v4 : &pools->v6, used, n_used, &v);
		if (ret) {
			json_array_append_new(maps, json_pack("{s:s, s:o, s:s, s:s}", "real", b, "conflicts_with", with,
							      "source", "auto", "error",
							      "no free virtual prefix of that length in the pool"));
			ret = 0;
			continue;
		}
		if (n_used == cap) {
			struct ls_prefix *nu = realloc(used, (cap = cap ? cap * 2 : 16) * sizeof(*nu));

			if (!nu) {
				json_decref(with);
				ret = -ENOMEM;
				goto cleanup;
			}
			used = nu;
		}
		used[n_used++] = v;
		ls_prefix_format(&v, vb);
		json_object_set_new(newv, b, json_string(vb));
		json_array_append_new(maps, json_pack("{s:s, s:s, s:o, s:s}", "real", b, "virtual", vb, "conflicts_with",
						      with, "source", "auto"));
	}
	if (!json_equal(json_object_get(mine, "routes"), jr) || !json_equal(oldv, newv) ||
	    !json_equal(json_object_get(mine, "allow_forward"), ja))
		bump(doc);
	json_object_set(mine, "routes", jr);
	json_object_set(mine, "allow_forward", ja);
	json_object_set(mine, "virtual", newv);
	json_object_set(mine, "mappings", maps);
	ret = mnet_save(doc);
cleanup:
	free(used);
	json_decref(jr);
	json_decref(ja);
	json_decref(newv);
	json_decref(doc);
	close(fd);
	return ret;
}

static json_t *arr_or_empty(json_t *e, const char *key)
{
	json_t *v = e ? json_object_get(e, key) : NULL;

	return json_is_array(v) ? json_incref(v) : json_array();
}

json_t *ls_mnet_profile_json(const char *profile)
{
	json_t *doc = ls_mnet_read(), *e, *out;

	e = json_object_get(json_object_get(doc, "profiles"), profile);
	out = json_pack("{s:s, s:o, s:o, s:o, s:O, s:O, s:b}", "profile", profile, "real_routes", arr_or_empty(e, "routes"),
			"mappings", arr_or_empty(e, "mappings"), "allow_forward", arr_or_empty(e, "allow_forward"),
			"slot", e ? json_object_get(e, "slot") : json_null(), "default_owner",
			json_object_get(doc, "default_owner"), "registered", e != NULL);
	json_decref(doc);
	return out;
}
