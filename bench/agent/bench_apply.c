// SPDX-License-Identifier: MIT
/*
 * Agent apply benchmark: in a private network namespace, a fresh interface gets a netmap
 * of N peers (full apply), then R rounds of a 100-peer delta (new endpoints), measured
 * three ways, alternating:
 *   delta    what the agent does: parse the delta, apply it to the map, set only the
 *            changed peers (ls_netmap_apply_delta_diff + ls_dp_apply_diff)
 *   resync   a full reconcile: read the engine's whole state and set what differs
 *   replace  the naive yardstick: set every peer again with replace_peers (wg setconf)
 *   wgset    the tool's yardstick: `wg set IF peer K endpoint E ...` for another 100
 *            peers (the same kind of change), one process as a script would run it
 *   setconf  `wg setconf IF FILE` with the whole configuration, 100 endpoints changed
 * (the last two when `wg` is on the PATH; LSA_BENCH_WG=0 leaves them out). The engine is
 * userspace unless LSA_BENCH_ENGINE says otherwise (kernel: in the VM lab).
 * Prints one JSON object: medians and spreads in ms, and the RSS of this process (the
 * agent's share) and of the engine process. With LSA_BENCH_MARKS=1 it writes marker
 * syscalls (write(-1, "lsa-mark:PHASE")) so strace can count syscalls per phase.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <malloc.h>
#include <net/if.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"
#include "netmap.h"
#include "util.h"
#include "userspace/dataplane.h"
#include "userspace/rtnl.h"
#include "userspace/wg.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void mark(const char *phase)
{
	char buf[64];

	if (!getenv("LSA_BENCH_MARKS"))
		return;
	snprintf(buf, sizeof(buf), "lsa-mark:%s", phase);
	syscall(SYS_write, -1, buf, strlen(buf));
}

static void peer_key(int i, uint8_t key[32])
{
	memset(key, 0, 32);
	key[0] = 0x11;
	key[1] = (uint8_t)(i >> 16);
	key[2] = (uint8_t)(i >> 8);
	key[3] = (uint8_t)i;
	key[31] = 0x40;
}

/* A netmap document: full (n peers) or a delta of the peers in [from, from + n) with
 * endpoint port base+i. */
static char *gen(int n_total, bool full, int from, int n, int64_t version, int port_base)
{
	size_t cap = (size_t)(full ? n_total : n) * 320 + 1024, len = 0;
	char *s = malloc(cap), b64[LS_KEY_B64_LEN + 1];
	uint8_t key[32];

	len += snprintf(s + len, cap - len,
			"{\"version\": %lld, \"full\": %s, \"network\": {\"id\": \"bench\", \"name\": \"bench\","
			" \"ipv4\": \"100.64.0.0/10\", \"ipv6\": \"fd00:b0c0::/48\"},"
			" \"self\": {\"id\": 1, \"name\": \"me\", \"addresses\": [\"100.64.0.1\"]}, \"peers\": [",
			(long long)version, full ? "true" : "false");
	for (int k = 0; k < (full ? n_total : n); k++) {
		int i = full ? k : from + k;

		peer_key(i, key);
		ls_key_to_base64(b64, key);
		len += snprintf(s + len, cap - len,
				"%s{\"id\": %d, \"name\": \"p%d\", \"wg_key\": \"%s\", \"addresses\": [\"100.%d.%d.%d\"],"
				" \"allowed_ips\": [\"100.%d.%d.%d/32\"], \"endpoints\": [\"10.%d.%d.%d:%d\"]}",
				k ? "," : "", i + 2, i, b64, 64 + ((i + 2) >> 16), ((i + 2) >> 8) & 255, (i + 2) & 255,
				64 + ((i + 2) >> 16), ((i + 2) >> 8) & 255, (i + 2) & 255, 1 + ((i + 2) >> 16),
				((i + 2) >> 8) & 255, (i + 2) & 255, port_base + (i % 1000));
	}
	len += snprintf(s + len, cap - len, "]}");
	return s;
}

/* The endpoint gen() gives peer i with port base pb. */
static void peer_endpoint(int i, int pb, char *out, size_t size)
{
	snprintf(out, size, "10.%d.%d.%d:%d", 1 + ((i + 2) >> 16), ((i + 2) >> 8) & 255, (i + 2) & 255,
		 pb + (i % 1000));
}

/* Peer index from a key made by peer_key(). */
static int key_index(const uint8_t key[32])
{
	return key[1] << 16 | key[2] << 8 | key[3];
}

extern char **environ;

/* Runs argv (wg ...) and waits; wall time in *ms. */
static int run_wg(char **argv, double *ms)
{
	double t = now_ms();
	int st, ret;
	pid_t pid;

	ret = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
	if (ret)
		return -ret;
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	*ms = now_ms() - t;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* `wg set IF peer K endpoint E ...` for peers [from, from + n) with port base pb. */
static int yard_wgset(const char *ifname, int from, int n, int pb, double *ms)
{
	char **argv = calloc((size_t)n * 4 + 4, sizeof(char *)), (*strs)[64] = calloc((size_t)n * 2, 64);
	uint8_t key[32];
	int a = 0, ret = -ENOMEM;

	if (!argv || !strs)
		goto cleanup;
	argv[a++] = "wg";
	argv[a++] = "set";
	argv[a++] = (char *)ifname;
	for (int k = 0; k < n; k++) {
		peer_key(from + k, key);
		ls_key_to_base64(strs[2 * k], key);
		peer_endpoint(from + k, pb, strs[2 * k + 1], 64);
		argv[a++] = "peer";
		argv[a++] = strs[2 * k];
		argv[a++] = "endpoint";
		argv[a++] = strs[2 * k + 1];
	}
	argv[a] = NULL;
	ret = run_wg(argv, ms);
cleanup:
	free(argv);
	free(strs);
	return ret;
}

/* `wg setconf IF FILE`: the whole configuration as the engine holds it, with peers
 * [from, from + n) moved to port base pb. */
static int yard_setconf(const struct ls_wg_engine *eng, const struct ls_profile *prof, int from, int n, int pb,
			const char *path, double *ms)
{
	struct ls_wg_device *cur = NULL;
	char b64[LS_KEY_B64_LEN + 1], ep[64], ip[INET_ADDRSTRLEN];
	char *argv[] = { "wg", "setconf", (char *)prof->ifname, (char *)path, NULL };
	FILE *f = NULL;
	int ret;

	ret = eng->get(prof->ifname, &cur);
	if (ret)
		goto cleanup;
	f = fopen(path, "w");
	if (!f) {
		ret = -errno;
		goto cleanup;
	}
	ls_key_to_base64(b64, prof->wg_priv);
	fprintf(f, "[Interface]\nPrivateKey = %s\nListenPort = %u\n", b64, cur->listen_port);
	for (size_t i = 0; i < cur->n_peers; i++) {
		const struct ls_wg_peer *p = &cur->peers[i];
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&p->endpoint;
		int idx = key_index(p->key);

		if (idx >= from && idx < from + n) {
			peer_endpoint(idx, pb, ep, sizeof(ep));
		} else {
			inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
			snprintf(ep, sizeof(ep), "%s:%u", ip, ntohs(sin->sin_port));
		}
		ls_key_to_base64(b64, p->key);
		fprintf(f, "\n[Peer]\nPublicKey = %s\nAllowedIPs = 100.%d.%d.%d/32\nEndpoint = %s\n", b64,
			64 + ((idx + 2) >> 16), ((idx + 2) >> 8) & 255, (idx + 2) & 255, ep);
	}
	if (fclose(f)) {
		f = NULL;
		ret = -errno;
		goto cleanup;
	}
	f = NULL;
	ret = run_wg(argv, ms);
cleanup:
	if (f)
		fclose(f);
	ls_wg_device_free(cur);
	return ret;
}

/* The agent's view follows a change the yardstick makes: the same delta, not timed. */
static void follow(struct ls_netmap *nm, int n, int from, int changed, int64_t version, int pb)
{
	struct ls_netmap *d = NULL;
	struct ls_nm_diff diff;
	char err[256], *doc = gen(n, false, from, changed, version, pb);

	if (!ls_netmap_parse(doc, strlen(doc), &d, err, sizeof(err)) &&
	    !ls_netmap_apply_delta_diff(nm, d, &diff, err, sizeof(err)))
		ls_nm_diff_free(&diff);
	ls_netmap_free(d);
	free(doc);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static json_t *stats(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return json_pack("{s:f, s:f, s:f}", "median_ms", v[n / 2], "min_ms", v[0], "max_ms", v[n - 1]);
}

static long rss_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, field, strlen(field)))
			v = strtol(line + strlen(field) + 1, NULL, 10);
	}
	fclose(f);
	return v;
}

static pid_t engine_pid(const char *ifname)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	pid_t pid = -1;

	ls_uapi_sock_path(ifname, sun.sun_path, sizeof(sun.sun_path));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
		pid = cred.pid;
	close(fd);
	return pid;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000, rounds = argc > 2 ? atoi(argv[2]) : 5, changed;
	struct ls_profile prof = { 0 };
	struct ls_dp_opts opts = { .engine = getenv("LSA_BENCH_ENGINE") ? getenv("LSA_BENCH_ENGINE") : "userspace" };
	struct ls_netmap *nm = NULL;
	struct ls_dp dp;
	char err[256], *doc;
	double t, t_full, t_full_engine, t_parse_full, *d_delta, *d_resync, *d_replace, *d_parse, *d_engine;
	double *d_wgset, *d_setconf;
	bool yard = !getenv("LSA_BENCH_WG") || strcmp(getenv("LSA_BENCH_WG"), "0");
	char conf[64];
	json_t *out;
	int64_t version = 1;
	int ret;

	ls_log_init("bench-agent");
	ls_crypto_init();
	if (argc == 4 && !strcmp(argv[1], "--dump-netmap")) {
		/* a full netmap of N peers for the real agent's cache (RSS measurement) */
		char *d = gen(atoi(argv[2]), true, 0, 0, 1, 40000);

		return ls_write_file_atomic(argv[3], d, strlen(d), 0600) ? 1 : 0;
	}
	if (n < 8 || rounds < 1) {
		fprintf(stderr, "usage: agent_apply PEERS(>= 8) ROUNDS | --dump-netmap PEERS FILE\n");
		return 1;
	}
	changed = n >= 1000 ? 100 : n / 8; /* 100 changed peers, fewer on a small map */
	if (n < 5 * changed)
		changed = n / 5;
	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "bench: unshare(CLONE_NEWNET): %s (run as root)\n", strerror(errno));
		return 1;
	}
	ls_rtnl_link_set((int)if_nametoindex("lo"), true, 0);
	if (ls_profile_path(&prof, "/tmp", "lsabench"))
		return 1;
	snprintf(prof.ifname, sizeof(prof.ifname), "lsab%d", (int)getpid() % 1000000);
	ls_wg_genkey(prof.wg_priv);
	ls_wg_pubkey(prof.wg_pub, prof.wg_priv);
	prof.listen_port = 0;
	d_delta = calloc((size_t)rounds, sizeof(double));
	d_resync = calloc((size_t)rounds, sizeof(double));
	d_replace = calloc((size_t)rounds, sizeof(double));
	d_parse = calloc((size_t)rounds, sizeof(double));
	d_engine = calloc((size_t)rounds, sizeof(double));
	d_wgset = calloc((size_t)rounds, sizeof(double));
	d_setconf = calloc((size_t)rounds, sizeof(double));
	snprintf(conf, sizeof(conf), "/tmp/lsabench-%d.conf", (int)getpid());

	doc = gen(n, true, 0, 0, version, 40000);
	t = now_ms();
	if (ls_netmap_parse(doc, strlen(doc), &nm, err, sizeof(err))) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	t_parse_full = now_ms() - t;
	free(doc);
	if ((ret = ls_dp_open(&dp, &prof, &opts))) {
		fprintf(stderr, "bench: cannot open the engine: %s\n", strerror(-ret));
		return 1;
	}
	mark("full");
	dp.engine_ns = 0;
	t = now_ms();
	ret = ls_dp_sync(&dp, nm);
	t_full = now_ms() - t;
	t_full_engine = dp.engine_ns / 1e6;
	mark("full-end");
	malloc_trim(0);
	if (ret) {
		fprintf(stderr, "bench: full apply failed: %s\n", strerror(-ret));
		goto down;
	}
	for (int r = 0; r < rounds; r++) {
		struct ls_netmap *d = NULL;
		struct ls_nm_diff diff;
		int from = (r * 997) % (n - 4 * changed);

		/* delta: what the agent does with a long-poll answer */
		doc = gen(n, false, from, changed, ++version, 41000 + r * 10);
		mark("delta");
		t = now_ms();
		ls_netmap_parse(doc, strlen(doc), &d, err, sizeof(err));
		d_parse[r] = now_ms() - t;
		ret = ls_netmap_apply_delta_diff(nm, d, &diff, err, sizeof(err));
		dp.engine_ns = 0;
		if (!ret)
			ret = ls_dp_apply_diff(&dp, nm, &diff);
		d_delta[r] = now_ms() - t;
		d_engine[r] = dp.engine_ns / 1e6;
		mark("delta-end");
		ls_nm_diff_free(&diff);
		ls_netmap_free(d);
		free(doc);
		if (ret) {
			fprintf(stderr, "bench: delta failed: %s %s\n", strerror(-ret), err);
			goto down;
		}
		/* resync: the same kind of change, found by reading the engine */
		doc = gen(n, false, from + changed, changed, ++version, 42000 + r * 10);
		ls_netmap_parse(doc, strlen(doc), &d, err, sizeof(err));
		ls_netmap_apply_delta_diff(nm, d, &diff, err, sizeof(err));
		ls_nm_diff_free(&diff);
		ls_netmap_free(d);
		free(doc);
		mark("resync");
		t = now_ms();
		ret = ls_dp_sync(&dp, nm);
		d_resync[r] = now_ms() - t;
		mark("resync-end");
		/* replace: every peer set again (wg setconf) */
		{
			struct ls_wg_device *cur = NULL;

			dp.eng->get(prof.ifname, &cur);
			for (size_t i = 0; i < cur->n_peers; i++)
				cur->peers[i].flags |= LS_WGP_REPLACE_ALLOWED;
			cur->flags = LS_WGD_REPLACE_PEERS;
			mark("replace");
			t = now_ms();
			ret = dp.eng->set(cur);
			d_replace[r] = now_ms() - t;
			mark("replace-end");
			ls_wg_device_free(cur);
		}
		if (ret) {
			fprintf(stderr, "bench: replace failed: %s\n", strerror(-ret));
			goto down;
		}
		if (!yard)
			continue;
		/* wg set: another block of peers gets new endpoints, as a script would */
		follow(nm, n, from + 2 * changed, changed, ++version, 43000 + r * 10);
		mark("wgset");
		ret = yard_wgset(prof.ifname, from + 2 * changed, changed, 43000 + r * 10, &d_wgset[r]);
		mark("wgset-end");
		if (ret) {
			fprintf(stderr, "bench: wg set failed: %s (is `wg' installed?)\n", strerror(-ret));
			goto down;
		}
		/* wg setconf: the whole configuration, one more block changed */
		follow(nm, n, from + 3 * changed, changed, ++version, 44000 + r * 10);
		mark("setconf");
		ret = yard_setconf(dp.eng, &prof, from + 3 * changed, changed, 44000 + r * 10, conf, &d_setconf[r]);
		mark("setconf-end");
		if (ret) {
			fprintf(stderr, "bench: wg setconf failed: %s\n", strerror(-ret));
			goto down;
		}
	}
	malloc_trim(0);
	{
		pid_t ep = engine_pid(prof.ifname);
		struct ls_wg_device *cur = NULL;

		dp.eng->get(prof.ifname, &cur);
		out = json_pack("{s:i, s:i, s:i, s:s, s:f, s:f, s:f, s:o, s:o, s:o, s:o, s:o, s:i, s:I, s:I, s:I, s:I}", "peers", n,
				"changed", changed, "rounds", rounds, "engine", ls_uapi_engine_path(), "parse_full_ms",
				t_parse_full, "apply_full_ms", t_full, "apply_full_engine_ms", t_full_engine, "delta", stats(d_delta, rounds), "delta_parse",
				stats(d_parse, rounds), "delta_engine", stats(d_engine, rounds), "resync", stats(d_resync, rounds), "replace",
				stats(d_replace, rounds), "engine_peers", cur ? (int)cur->n_peers : -1, "rss_kib",
				(json_int_t)rss_kib(getpid(), "VmRSS"), "hwm_kib", (json_int_t)rss_kib(getpid(), "VmHWM"),
				"engine_rss_kib", (json_int_t)rss_kib(ep, "VmRSS"), "engine_hwm_kib",
				(json_int_t)rss_kib(ep, "VmHWM"));
		ls_wg_device_free(cur);
		json_object_set_new(out, "engine_kind", json_string(dp.eng->name));
		if (yard) {
			json_object_set_new(out, "wgset", stats(d_wgset, rounds));
			json_object_set_new(out, "setconf", stats(d_setconf, rounds));
		}
		char *s = json_dumps(out, JSON_COMPACT);

		printf("%s\n", s);
		free(s);
		json_decref(out);
	}
down:
	unlink(conf);
	ls_dp_down(&prof);
	ls_dp_close(&dp);
	ls_netmap_free(nm);
	return ret ? 1 : 0;
}
