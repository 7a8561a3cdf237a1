// SPDX-License-Identifier: MIT
/*
 * lightscale agent: one process per profile.
 *
 *   main thread     local API socket, rtnetlink monitor (re-applies what another manager
 *                   deletes), engine liveness, exit-node choice changes, signals
 *   netmap thread   long-polls /v1/netmap and reconciles (deltas touch only their peers)
 *   heartbeat thread  endpoints on a timer and when the addresses change
 *
 * The last full netmap is cached and reapplied before the control plane answers; an
 * unreachable control plane never removes peers. SIGTERM leaves the data plane up
 * unless --down-on-exit.
 */
#include "agent.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mnet.h"
#include "netmap.h"
#include "rtnl.h"
#include "status.h"
#include "trust.h"
#include "util.h"

struct agent {
	struct ls_profile *prof;
	struct ls_agent_opts opts;
	struct ls_dp dp;
	bool dp_ok;       /* dp open and in sync */
	struct ls_netmap *nm;
	pthread_mutex_t lock;
	pthread_cond_t hb_cond;
	bool hb_kick;
	char exit_pref[128];
	int64_t applied_version;
	unsigned long mnet_gen; /* multi-network state generation last applied */
	struct ls_dnsd *dns;
	int64_t dns_version; /* netmap version the resolver's records come from */
	size_t dns_n_xl;
};

/* With the lock held: the resolver's records follow the netmap and the mappings. */
static void dns_refresh(struct agent *a)
{
	if (!a->dns || !a->nm || (a->dns_version == a->nm->version && a->dns_n_xl == (a->dp_ok ? a->dp.n_xl : 0)))
		return;
	a->dns_version = a->nm->version;
	a->dns_n_xl = a->dp_ok ? a->dp.n_xl : 0;
	ls_dnsd_update(a->dns, a->nm, a->dp_ok ? a->dp.xl : NULL, a->dns_n_xl);
}

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void sleep_interruptible(int ms)
{
	for (int i = 0; i < ms / 100 && !stopping; i++)
		usleep(100 * 1000);
}

/* With the lock held: (re)open the data plane and bring it in line with nm. */
static int dp_reconcile_full(struct agent *a)
{
	int ret;

	if (!a->dp_ok) {
		ls_dp_close(&a->dp);
		ret = ls_dp_open(&a->dp, a->prof, &a->opts.dp);
		if (ret) {
			pr_err("%s: data plane not ready: %s; retrying", a->prof->ifname, strerror(-ret));
			return ret;
		}
		a->dp_ok = true;
	}
	if (!a->nm)
		return 0;
	ret = ls_dp_sync(&a->dp, a->nm);
	if (ret) {
		pr_err("%s: reconcile failed: %s", a->prof->ifname, strerror(-ret));
		a->dp_ok = false;
	} else {
		a->applied_version = a->nm->version;
	}
	return ret;
}

/* ---- netmap thread ------------------------------------------------------------------ */

static int handle_netmap(struct agent *a, json_t *doc)
{
	struct ls_netmap *in = NULL;
	struct ls_nm_diff diff = { 0 };
	char err[512];
	int ret;

	if ((ret = ls_netmap_parse_json(doc, &in, err, sizeof(err)))) {
		pr_err("netmap refused (nothing changed): %s", err);
		return ret;
	}
	if (in->unchanged) {
		ls_netmap_free(in);
		return 0;
	}
	pthread_mutex_lock(&a->lock);
	if (in->self.status != LS_NM_ACTIVE)
		pr_warn("this node's status is %s", ls_nm_status_name(in->self.status));
	if (in->full) {
		if (a->nm)
			ls_netmap_diff(a->nm, in, &diff);
		ls_netmap_free(a->nm);
		a->nm = in;
		in = NULL;
		if (!a->dp_ok || a->applied_version == 0)
			ret = dp_reconcile_full(a);
		else
			ret = ls_dp_apply_diff(&a->dp, a->nm, &diff);
	} else {
		if (!a->nm) {
			pr_warn("a netmap delta without a base map; asking for the full map");
			ret = -ESTALE;
			goto unlock;
		}
		ret = ls_netmap_apply_delta_diff(a->nm, in, &diff, err, sizeof(err));
		if (ret) {
			pr_warn("netmap delta refused (%s); asking for the full map", err);
			ret = -ESTALE;
			goto unlock;
		}
		ret = a->dp_ok ? ls_dp_apply_diff(&a->dp, a->nm, &diff) : dp_reconcile_full(a);
	}
	if (ret) {
		a->dp_ok = false;
	} else {
		a->applied_version = a->nm->version;
		pr_info("netmap version %lld applied: %zu added, %zu changed, %zu removed, %zu peers",
			(long long)a->nm->version, diff.n_added, diff.n_changed, diff.n_removed, a->nm->n_peers);
	}
	dns_refresh(a);
	if (ls_profile_save_netmap(a->prof, a->nm))
		pr_warn("cannot cache the netmap in %s", a->prof->dir);
	malloc_trim(0); /* a large map leaves a large heap behind */
unlock:
	pthread_mutex_unlock(&a->lock);
	ls_nm_diff_free(&diff);
	ls_netmap_free(in);
	return ret;
}

static void *netmap_thread(void *arg)
{
	struct agent *a = arg;
	struct ls_ctl c;
	int backoff = 1, fails = 0;
	int64_t since;

	if (ls_ctl_init(&c, a->prof->control_urls ? a->prof->control_urls : "")) {
		pr_err("invalid control URLs `%s'", a->prof->control_urls);
		return NULL;
	}
	ls_ctl_set_machine_key(&c, a->prof->machine_sk);
	/* marked: control traffic stays outside every profile's tunnel (an exit node's too) */
	ls_ctl_set_fwmark(&c, a->prof->fwmark);
	/* pinned from the first request when init stored the deployment's identity and pins */
	if (ls_profile_ctl_trust(a->prof, &c)) {
		pr_err("the profile's stored identity or TLS pins are invalid; run lightscale init again");
		ls_ctl_free(&c);
		return NULL;
	}
	while (!stopping && a->prof->node_id == 0) {
		struct ls_ctl_error err;

		if (ls_register(a->prof, NULL, &err) == 0) {
			pr_info("registered as node %lld", (long long)a->prof->node_id);
			break;
		}
		pr_err("register: %s (%s); retrying in 10 s", err.message, err.code);
		sleep_interruptible(10000);
	}
	pthread_mutex_lock(&a->lock);
	since = a->nm ? a->nm->version : 0;
	pthread_mutex_unlock(&a->lock);
	while (!stopping) {
		struct ls_ctl_response resp = { 0 };
		struct ls_ctl_error err;
		int ret = ls_ctl_netmap(&c, since, since ? a->opts.poll_wait : 0, &resp, &err);

		if (stopping) {
			ls_ctl_response_free(&resp);
			break;
		}
		if (ret) {
			if (fails++ == 0 || fails % 10 == 0)
				pr_warn("netmap: %s (%s); keeping the current data plane, retrying", err.message, err.code);
			ls_ctl_response_free(&resp);
			sleep_interruptible(backoff * 1000);
			backoff = backoff < 10 ? backoff * 2 : 10;
			continue;
		}
		if (fails)
			pr_info("control plane reachable again (%s)", resp.url ? resp.url : "");
		/* the parsed tree is all we need: drop the body before building the model */
		free(resp.body);
		resp.body = NULL;
		resp.len = 0;
		fails = 0;
		backoff = 1;
		{
			/* key transparency (trust.h): a refused map changes nothing */
			char terr[512];

			ret = ls_trust_check_netmap(&c, a->prof->dir, resp.json, terr, sizeof(terr));
			if (ret) {
				pr_err("netmap refused (nothing changed): %s", terr);
				ls_ctl_response_free(&resp);
				since = 0;
				sleep_interruptible(ret == -EPERM ? 10000 : 1000);
				continue;
			}
		}
		/* key rotation (trust.h): rotate before expiry; follow a rotated key (the data
		 * plane reopens with it) */
		ls_trust_rotate_if_due(&c, a->prof->dir, resp.json);
		pthread_mutex_lock(&a->lock);
		if (ls_trust_follow_key(a->prof->dir, a->prof->wg_priv, a->prof->wg_pub, resp.json) > 0)
			a->dp_ok = false;
		pthread_mutex_unlock(&a->lock);
		ret = handle_netmap(a, resp.json);
		ls_ctl_response_free(&resp);
		pthread_mutex_lock(&a->lock);
		if (ret == -ESTALE || ret == -EINVAL || !a->nm)
			since = 0;
		else
			since = a->nm->version;
		pthread_mutex_unlock(&a->lock);
		if (ret && ret != -ESTALE)
			sleep_interruptible(1000);
	}
	ls_ctl_free(&c);
	return NULL;
}

/* ---- heartbeat thread --------------------------------------------------------------- */

static void *heartbeat_thread(void *arg)
{
	struct agent *a = arg;
	struct ls_ctl c;

	if (ls_ctl_init(&c, a->prof->control_urls ? a->prof->control_urls : ""))
		return NULL;
	ls_ctl_set_machine_key(&c, a->prof->machine_sk);
	ls_ctl_set_fwmark(&c, a->prof->fwmark);
	if (ls_profile_ctl_trust(a->prof, &c)) {
		ls_ctl_free(&c);
		return NULL;
	}
	while (!stopping) {
		struct ls_ctl_error err;
		struct timespec until;

		if (a->prof->node_id) {
			if (ls_heartbeat(&c, a->prof, NULL, &err))
				pr_debug("heartbeat: %s (%s)", err.message, err.code);
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += a->prof->node_id ? a->opts.heartbeat_interval : 2;
		pthread_mutex_lock(&a->lock);
		while (!a->hb_kick && !stopping) {
			if (pthread_cond_timedwait(&a->hb_cond, &a->lock, &until) == ETIMEDOUT)
				break;
		}
		a->hb_kick = false;
		pthread_mutex_unlock(&a->lock);
	}
	ls_ctl_free(&c);
	return NULL;
}

/* ---- local API ---------------------------------------------------------------------- */

static int api_open(const char *profile)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	ls_mkdir_p(LS_RUN_DIR, 0755);
	if (ls_localapi_path(profile, sun.sun_path, sizeof(sun.sun_path)))
		return -ENAMETOOLONG;
	unlink(sun.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || chmod(sun.sun_path, 0600) < 0 ||
	    listen(fd, 16) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

static void api_serve(struct agent *a, int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	struct timeval tv = { .tv_sec = 2 };
	char req[64] = "";
	ssize_t n;
	json_t *doc = NULL;
	char *s;

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	n = read(fd, req, sizeof(req) - 1);
	if (n > 0) {
		req[n] = '\0';
		req[strcspn(req, "\r\n")] = '\0';
	}
	pthread_mutex_lock(&a->lock);
	if (!strcmp(req, "status"))
		doc = ls_status_json(a->prof, a->dp_ok ? &a->dp : NULL, a->nm);
	else if (!strcmp(req, "netmap"))
		doc = a->nm ? ls_netmap_to_json(a->nm) : json_pack("{s:s}", "error", "no netmap yet");
	else if (!strcmp(req, "dns"))
		doc = a->dns ? ls_dnsd_status(a->dns)
			     : json_pack("{s:s}", "error", a->opts.dns.off ? "the resolver is off (--no-dns)"
									   : "the resolver did not start (see the agent log)");
	else
		doc = json_pack("{s:s}", "error", "unknown request (status, netmap, dns)");
	if (doc && !strcmp(req, "status"))
		json_object_set_new(doc, "agent", json_true());
	pthread_mutex_unlock(&a->lock);
	s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	if (s) {
		size_t len = strlen(s), off = 0;

		while (off < len) {
			ssize_t w = send(fd, s + off, len - off, MSG_NOSIGNAL);

			if (w <= 0)
				break;
			off += (size_t)w;
		}
	}
	free(s);
	json_decref(doc);
	close(fd);
}

/* ---- main --------------------------------------------------------------------------- */

static int lock_profile(const struct ls_profile *p)
{
	char path[PATH_MAX];
	int fd;

	ls_mkdir_p(LS_RUN_DIR, 0755);
	snprintf(path, sizeof(path), "%s/%s.pid", LS_RUN_DIR, p->name);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return -EBUSY;
	}
	if (ftruncate(fd, 0) == 0)
		dprintf(fd, "%d\n", (int)getpid());
	return fd;
}

static void reload_exit_choice(struct agent *a)
{
	char path[PATH_MAX], *buf = NULL;
	size_t len;
	json_t *doc, *v;
	const char *want = "none";

	if (a->opts.dp.exit_node && a->exit_pref[0] == '\0')
		return; /* fixed on the command line */
	ls_profile_file(a->prof, "config.json", path, sizeof(path));
	if (ls_read_file(path, &buf, &len, 1 << 20))
		return;
	doc = json_loadb(buf, len, 0, NULL);
	free(buf);
	v = json_object_get(doc, "exit_node");
	if (json_is_string(v))
		want = json_string_value(v);
	if (strcmp(want, a->exit_pref)) {
		struct ls_nm_diff none = { 0 };

		snprintf(a->exit_pref, sizeof(a->exit_pref), "%s", want);
		pthread_mutex_lock(&a->lock);
		a->dp.opts.exit_node = a->opts.dp.exit_node = a->exit_pref;
		if (a->dp_ok && a->nm) {
			pr_info("exit node choice: %s", a->exit_pref);
			ls_dp_apply_diff(&a->dp, a->nm, &none);
		}
		pthread_mutex_unlock(&a->lock);
	}
	json_decref(doc);
}


int ls_agent_run(struct ls_profile *prof, const struct ls_agent_opts *opts)
{
	struct agent a = { .prof = prof, .opts = *opts };
	struct sigaction sa = { .sa_handler = on_signal };
	pthread_t t_nm, t_hb;
	sigset_t block, old;
	int lock_fd, api_fd, mon_fd, ret;
	uint64_t ensure_at = 0, next_check = 0;
	char err[512];
	size_t n_last = 0;

	if (a.opts.poll_wait <= 0)
		a.opts.poll_wait = 60;
	if (a.opts.heartbeat_interval <= 0)
		a.opts.heartbeat_interval = 30;
	pthread_mutex_init(&a.lock, NULL);
	pthread_cond_init(&a.hb_cond, NULL);
	/* --exit-node fixes the choice; otherwise it follows the profile (exit-node use) */
	if (!a.opts.dp.exit_node) {
		snprintf(a.exit_pref, sizeof(a.exit_pref), "%s", prof->exit_node ? prof->exit_node : "none");
		a.opts.dp.exit_node = a.exit_pref;
	}

	lock_fd = lock_profile(prof);
	if (lock_fd < 0) {
		pr_err("another agent runs for profile '%s' (%s/%s.pid is locked)", prof->name, LS_RUN_DIR, prof->name);
		return lock_fd;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);

	api_fd = api_open(prof->name);
	if (api_fd < 0)
		pr_warn("local API socket: %s", strerror(-api_fd));
	/* the cached netmap first: the data plane is back before the control plane answers */
	if (ls_profile_load_netmap(prof, &a.nm, err, sizeof(err)) == 0)
		pr_info("reapplying the cached netmap (version %lld, %zu peers)", (long long)a.nm->version, a.nm->n_peers);
	pthread_mutex_lock(&a.lock);
	ret = dp_reconcile_full(&a);
	malloc_trim(0);
	pthread_mutex_unlock(&a.lock);
	if (ret == -EPERM || ret == -EACCES || (ret && !strcmp(opts->dp.engine ? opts->dp.engine : "", "kernel"))) {
		pr_err("cannot bring up %s: %s", prof->ifname, strerror(-ret));
		if (api_fd >= 0) {
			char path[PATH_MAX];

			ls_localapi_path(prof->name, path, sizeof(path));
			unlink(path);
		}
		close(lock_fd);
		return ret;
	}
	if (!opts->dns.off && ls_dnsd_start(prof, &opts->dns, &a.dns))
		pr_warn("split DNS is off for profile '%s'", prof->name);
	pthread_mutex_lock(&a.lock);
	dns_refresh(&a);
	pthread_mutex_unlock(&a.lock);
	mon_fd = ls_rtnl_monitor_open();
	if (mon_fd < 0)
		pr_warn("rtnetlink monitor: %s", strerror(-mon_fd));

	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	pthread_create(&t_nm, NULL, netmap_thread, &a);
	pthread_create(&t_hb, NULL, heartbeat_thread, &a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pr_info("agent for profile '%s' on %s (engine %s)", prof->name, prof->ifname, a.dp_ok ? a.dp.eng->name : "?");

	{
		char **last = NULL;

		ls_local_endpoints(prof->ifname, prof->listen_port, &last, &n_last);
		while (!stopping) {
			struct pollfd pfd[2] = { { .fd = api_fd, .events = POLLIN }, { .fd = mon_fd, .events = POLLIN } };
			uint64_t now;

			if (poll(pfd, 2, 250) > 0) {
				if (pfd[0].revents & POLLIN)
					api_serve(&a, api_fd);
				if ((pfd[1].revents & POLLIN) && ls_rtnl_monitor_drain(mon_fd) > 0 && !ensure_at)
					ensure_at = ls_now_ms() + 200;
			}
			now = ls_now_ms();
			if (ensure_at && now >= ensure_at) {
				char **eps = NULL;
				size_t n = 0;
				bool changed;

				ensure_at = 0;
				pthread_mutex_lock(&a.lock);
				if (a.dp_ok && a.nm && ls_dp_ensure(&a.dp, a.nm) == -ENODEV)
					a.dp_ok = false;
				pthread_mutex_unlock(&a.lock);
				if (!ls_local_endpoints(prof->ifname, prof->listen_port, &eps, &n)) {
					changed = n != n_last;
					for (size_t i = 0; !changed && i < n; i++)
						changed = strcmp(eps[i], last[i]) != 0;
					ls_strv_free(last, n_last);
					last = eps;
					n_last = n;
					if (changed) {
						pr_info("local endpoints changed: heartbeat");
						pthread_mutex_lock(&a.lock);
						a.hb_kick = true;
						pthread_cond_signal(&a.hb_cond);
						pthread_mutex_unlock(&a.lock);
					}
				}
			}
			if (now >= next_check) {
				next_check = now + 2000;
				reload_exit_choice(&a);
				pthread_mutex_lock(&a.lock);
				/* another profile's routes, mappings or the default route owner moved */
				{
					unsigned long g = ls_mnet_generation();

					if (g != a.mnet_gen && a.dp_ok && a.nm) {
						struct ls_nm_diff none = { 0 };

						a.mnet_gen = g;
						ls_dp_apply_diff(&a.dp, a.nm, &none);
						a.mnet_gen = ls_mnet_generation();
					}
				}
				if (a.dp_ok && !a.dp.eng->exists(prof->ifname)) {
					pr_warn("%s: the %s engine is gone; bringing it back", prof->ifname, a.dp.eng->name);
					a.dp_ok = false;
				}
				if (!a.dp_ok)
					dp_reconcile_full(&a);
				dns_refresh(&a);
				pthread_mutex_unlock(&a.lock);
			}
		}
		ls_strv_free(last, n_last);
	}
	pr_info("stopping%s", opts->down_on_exit ? ": taking the data plane down" : "; the data plane stays up");
	pthread_mutex_lock(&a.lock);
	pthread_cond_broadcast(&a.hb_cond);
	pthread_mutex_unlock(&a.lock);
	ls_dnsd_stop(a.dns);
	if (opts->down_on_exit)
		ls_dp_down(prof);
	if (api_fd >= 0) {
		char path[PATH_MAX];

		ls_localapi_path(prof->name, path, sizeof(path));
		unlink(path);
		close(api_fd);
	}
	/* threads may sit in a long-poll; the process exit ends them */
	return 0;
}
