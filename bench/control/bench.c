// SPDX-License-Identifier: MIT
/*
 * control-bench: netmap build time and long-poll fan-out of lightscale-control.
 *
 *   control-bench --server URL --db DSN --admin-key-file F --pid SERVER_PID
 *                 [--waiters 5000] [--rounds 5] [--samples 20]
 *
 * 1. Seeds networks of 1,000 and 10,000 nodes straight into the database (COPY), with
 *    machine keys derived from the node index so this program can sign for any node.
 * 2. Full netmaps: alternates the two networks for --rounds rounds, --samples nodes each,
 *    and reports the median request time per node and the map size.
 * 3. Long-poll: opens --waiters keep-alive connections (epoll, one thread), each a signed
 *    GET /v1/netmap?since=V&wait=300 of a distinct node of the 10,000-node network, and
 *    waits until the server reports them all suspended. Then, per round, one other node
 *    heartbeats a new endpoint and the time until each waiter has its whole answer is
 *    recorded; every waiter re-arms on its connection. Server RSS and threads come from
 *    /proc/PID/status, database queries from the server's /v1/health counter.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sodium.h>

#include <microhttpd.h>

#include "control/control.h"
#include "control/server.h"
#include "ctlclient.h"
#include "keys.h"
#include "lightscale/api.h"
#include "sign.h"
#include "util.h"

struct net {
	const char *name;
	int n;
	char id[40];
	struct ls_prefix v4, v6;
	uint8_t (*sk)[64];
};

static struct ls_ctl ctl;
static const char *server_url;
static int server_pid;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
	fprintf(stderr, "control-bench: %s\n", what);
	exit(1);
}

static void node_keys(const char *net, int i, uint8_t sk[64], char wg_b64[LS_KEY_B64_LEN + 1])
{
	uint8_t seed[32], pk[32], wg[32];
	char in[128];

	snprintf(in, sizeof(in), "lsc-bench/%s/%d", net, i);
	ls_sha256(seed, in, strlen(in));
	crypto_sign_ed25519_seed_keypair(pk, sk, seed);
	snprintf(in, sizeof(in), "lsc-bench-wg/%s/%d", net, i);
	ls_sha256(wg, in, strlen(in));
	ls_key_to_base64(wg_b64, wg);
}

static void seed(PGconn *db, struct net *nt)
{
	struct ls_ctl_response r;
	struct ls_ctl_error e;
	json_t *b = json_pack("{s:s}", "name", nt->name);
	PGresult *res;
	char *line = NULL;
	const char *p[1];
	int i;

	if (ls_ctl_request_json(&ctl, "POST", "/v1/admin/networks", b, LS_CTL_AUTH_ADMIN, 0, &r, &e)) {
		ls_ctl_error_print(&e, "create network");
		exit(1);
	}
	json_decref(b);
	snprintf(nt->id, sizeof(nt->id), "%s", json_string_value(json_object_get(r.json, "id")));
	if (ls_prefix_parse(json_string_value(json_object_get(r.json, "ipv4")), &nt->v4, false) ||
	    ls_prefix_parse(json_string_value(json_object_get(r.json, "ipv6")), &nt->v6, false))
		die("bad prefixes");
	ls_ctl_response_free(&r);
	nt->sk = calloc((size_t)nt->n, 64);
	res = PQexec(db, "COPY nodes (network_id, name, hostname, wg_key, machine_key, host_index, "
			 "ipv4, ipv6, endpoints, listen_port, last_seen) FROM STDIN");
	if (PQresultStatus(res) != PGRES_COPY_IN)
		die(PQerrorMessage(db));
	PQclear(res);
	for (i = 0; i < nt->n; i++) {
		char wg[LS_KEY_B64_LEN + 1], mk[LS_KEY_B64_LEN + 1];
		char a4[LS_PREFIX_STRLEN], a6[LS_PREFIX_STRLEN];
		struct ls_prefix a;
		int len;

		node_keys(nt->name, i, nt->sk[i], wg);
		ls_key_to_base64(mk, nt->sk[i] + 32);
		lsc_host_address(&nt->v4, (uint32_t)i + 1, &a);
		ls_prefix_format_addr(&a, a4);
		lsc_host_address(&nt->v6, (uint32_t)i + 1, &a);
		ls_prefix_format_addr(&a, a6);
		len = asprintf(&line, "%s\tnode-%d\tnode-%d\t%s\t%s\t%d\t%s\t%s\t{198.51.100.%d:%d}\t51820\t%s\n",
			       nt->id, i, i, wg, mk, i + 1, a4, a6, i % 250 + 1, 40000 + i % 20000,
			       "now");
		if (len < 0 || PQputCopyData(db, line, len) != 1)
			die("COPY");
		free(line);
	}
	if (PQputCopyEnd(db, NULL) != 1)
		die("COPY end");
	res = PQgetResult(db);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die(PQresultErrorMessage(res));
	PQclear(res);
	p[0] = nt->id;
	res = PQexecParams(db, "UPDATE networks SET version = version + 1, dns_version = version + 1 "
			       "WHERE id = $1", 1, NULL, p, NULL, NULL, 0);
	PQclear(res);
}

static json_t *health(void)
{
	struct ls_ctl_response r;
	struct ls_ctl_error e;
	json_t *j;

	if (ls_ctl_health(&ctl, &r, &e)) {
		ls_ctl_error_print(&e, "health");
		exit(1);
	}
	j = json_incref(r.json);
	ls_ctl_response_free(&r);
	return j;
}

static long health_int(const char *k)
{
	json_t *j = health();
	long v = (long)json_integer_value(json_object_get(j, k));

	json_decref(j);
	return v;
}

static long proc_status(const char *key)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", server_pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ':')
			v = strtol(line + strlen(key) + 1, NULL, 10);
	fclose(f);
	return v;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	size_t i;

	qsort(v, n, sizeof(*v), cmp_d);
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static double full_netmap(struct net *nt, int i, size_t *bytes)
{
	struct ls_ctl_response r;
	struct ls_ctl_error e;
	double t0 = now_ms();

	ls_ctl_set_machine_key(&ctl, nt->sk[i]);
	if (ls_ctl_netmap(&ctl, 0, 0, &r, &e)) {
		ls_ctl_error_print(&e, "netmap");
		exit(1);
	}
	t0 = now_ms() - t0;
	if (bytes)
		*bytes = r.len;
	ls_ctl_response_free(&r);
	return t0;
}

/* ---- long-poll client ---- */

struct waiter {
	int fd;
	int node;
	char *buf;
	size_t len, cap;
	double t_done;
	bool done;
	long body_len;
	size_t total;
	int64_t version;
};

static struct sockaddr_in srv_addr;

static int send_poll(struct waiter *w, struct net *nt, int64_t since)
{
	struct ls_sign_headers h;
	char path[128], req[1024];
	int n;

	snprintf(path, sizeof(path), "/v1/netmap?since=%" PRId64 "&wait=300", since);
	if (ls_sign_request(&h, nt->sk[w->node], "GET", path, NULL, 0, ls_unix_time()))
		return -1;
	n = snprintf(req, sizeof(req),
		     "GET %s HTTP/1.1\r\nHost: bench\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n\r\n",
		     path, LS_HDR_KEY, h.key, LS_HDR_TIMESTAMP, h.timestamp, LS_HDR_NONCE, h.nonce,
		     LS_HDR_SIGNATURE, h.signature);
	w->len = 0;
	w->done = false;
	w->body_len = -1;
	return send(w->fd, req, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -1;
}

/* returns 1 when a whole response is in */
static int read_some(struct waiter *w)
{
	for (;;) {
		ssize_t n;
		char *hdr_end;

		if (w->cap - w->len < 65536) {
			w->cap = w->cap ? w->cap * 2 : 131072;
			w->buf = realloc(w->buf, w->cap);
		}
		n = recv(w->fd, w->buf + w->len, w->cap - w->len - 1, 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		w->len += (size_t)n;
		w->buf[w->len] = '\0';
		hdr_end = strstr(w->buf, "\r\n\r\n");
		if (hdr_end) {
			const char *cl = strcasestr(w->buf, "\r\nContent-Length:");
			size_t hl = (size_t)(hdr_end - w->buf) + 4;

			if (!cl)
				return -1;
			w->body_len = strtol(cl + 17, NULL, 10);
			if (w->len >= hl + (size_t)w->body_len) {
				const char *v = strstr(hdr_end, "\"version\":");

				w->total = w->len;
				w->version = v ? strtoll(v + 10, NULL, 10) : 0;
				return 1;
			}
		}
	}
}

static void wait_waiters(long want)
{
	double t0 = now_ms();

	while (health_int("waiters") < want) {
		if (now_ms() - t0 > 60000) {
			fprintf(stderr, "control-bench: only %ld of %ld waiters after 60 s\n",
				health_int("waiters"), want);
			exit(1);
		}
		usleep(50000);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"server", required_argument, NULL, 's'}, {"db", required_argument, NULL, 'd'},
		{"admin-key-file", required_argument, NULL, 'k'}, {"pid", required_argument, NULL, 'p'},
		{"waiters", required_argument, NULL, 'w'}, {"rounds", required_argument, NULL, 'r'},
		{"samples", required_argument, NULL, 'n'}, {0},
	};
	const char *dsn = NULL, *keyfile = NULL;
	int nwait = 5000, rounds = 5, samples = 20, c, i, r;
	struct net nets[2] = {{.name = "bench1k", .n = 1000}, {.name = "bench10k", .n = 10000}};
	struct net *big = &nets[1];
	double first[2], *per[2], *p50s, *p99s;
	size_t full_bytes[2] = {0, 0}, nper[2] = {0, 0};
	double *bytes_per;
	char *key = NULL;
	size_t klen;
	PGconn *db;
	struct waiter *ws;
	int ep;
	long rss0, rss1, threads, q0, q1;
	int64_t version;
	struct rlimit rl = {200000, 200000};
	double delta_body = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': server_url = optarg; break;
		case 'd': dsn = optarg; break;
		case 'k': keyfile = optarg; break;
		case 'p': server_pid = atoi(optarg); break;
		case 'w': nwait = atoi(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 'n': samples = atoi(optarg); break;
		default: return 2;
		}
	}
	if (!server_url || !dsn || !keyfile || !server_pid || nwait < 1 || nwait > 9000)
		die("usage: --server URL --db DSN --admin-key-file F --pid PID [--waiters N<=9000]");
	setrlimit(RLIMIT_NOFILE, &rl);
	ls_crypto_init();
	if (ls_ctl_init(&ctl, server_url) || ls_read_file(keyfile, &key, &klen, 4096))
		die("server URL or admin key");
	key[strcspn(key, "\n")] = '\0';
	ls_ctl_set_admin_key(&ctl, key);
	{
		const char *hp = server_url + 7, *colon = strrchr(hp, ':');
		char host[64];

		snprintf(host, sizeof(host), "%.*s", (int)(colon - hp), hp);
		srv_addr.sin_family = AF_INET;
		srv_addr.sin_port = htons((uint16_t)atoi(colon + 1));
		inet_pton(AF_INET, host, &srv_addr.sin_addr);
	}
	db = PQconnectdb(dsn);
	if (PQstatus(db) != CONNECTION_OK)
		die(PQerrorMessage(db));

	/* 1. seed */
	for (i = 0; i < 2; i++) {
		double t0 = now_ms();

		seed(db, &nets[i]);
		printf("seeded %-9s %5d nodes in %.0f ms\n", nets[i].name, nets[i].n, now_ms() - t0);
	}
	fflush(stdout);

	/* 2. full netmaps, the two networks alternating */
	for (i = 0; i < 2; i++) {
		first[i] = full_netmap(&nets[i], 0, &full_bytes[i]);
		per[i] = calloc((size_t)(rounds * samples), sizeof(double));
	}
	for (r = 0; r < rounds; r++)
		for (i = 0; i < 2; i++)
			for (int k = 0; k < samples; k++) {
				int node = (int)(((long)(r * samples + k) * 7919) % nets[i].n);

				per[i][nper[i]++] = full_netmap(&nets[i], node, NULL);
			}

	/* 2b. the server's own build step, in this process: snapshot sync + lsc_netmap_build */
	double build_first[2], *build[2];
	size_t build_len[2] = {0, 0};
	size_t nbuild[2] = {0, 0};
	{
		struct lsc_server ls = {0};

		lsc_config_defaults(&ls.cfg);
		ls.db = db;
		ls.relays_json = json_dumps(ls.cfg.relays, JSON_COMPACT);
		for (i = 0; i < 2; i++) {
			struct lsc_net *n = lsc_net_find(&ls, nets[i].id, true);
			double t0 = now_ms();

			if (lsc_net_sync(&ls, n))
				die("lsc_net_sync");
			build_first[i] = now_ms() - t0;
			build[i] = calloc((size_t)(rounds * samples), sizeof(double));
		}
		for (r = 0; r < rounds; r++)
			for (i = 0; i < 2; i++)
				for (int k = 0; k < samples; k++) {
					struct lsc_net *n = lsc_net_find(&ls, nets[i].id, false);
					/* node ids follow the COPY order after the first network's */
					int64_t id = n->nodes[((r * samples + k) * 7919) % n->n_nodes]->id;
					size_t len = 0;
					double t0 = now_ms();
					char *m = lsc_netmap_build(&ls, n, id, 0, &len);

					build[i][nbuild[i]++] = now_ms() - t0;
					build_len[i] = len;
					if (!m)
						die("lsc_netmap_build");
					free(m);
				}
		lsc_nets_free(&ls);
		free(ls.relays_json);
		lsc_config_free(&ls.cfg);
	}

	/* 3. long-poll fan-out in the 10,000-node network */
	ls_ctl_set_machine_key(&ctl, big->sk[big->n - 1]);
	{
		struct ls_ctl_response resp;
		struct ls_ctl_error e;

		if (ls_ctl_netmap(&ctl, 0, 0, &resp, &e))
			die("netmap");
		version = json_integer_value(json_object_get(resp.json, "version"));
		ls_ctl_response_free(&resp);
	}
	usleep(200000);
	rss0 = proc_status("VmRSS");
	ws = calloc((size_t)nwait, sizeof(*ws));
	ep = epoll_create1(0);
	for (i = 0; i < nwait; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
		int one = 1;

		ws[i].node = i;
		ws[i].fd = socket(AF_INET, SOCK_STREAM, 0);
		if (ws[i].fd < 0 || connect(ws[i].fd, (struct sockaddr *)&srv_addr, sizeof(srv_addr)) < 0)
			die("connect");
		setsockopt(ws[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (send_poll(&ws[i], big, version))
			die("send");
		fcntl(ws[i].fd, F_SETFL, O_NONBLOCK);
		epoll_ctl(ep, EPOLL_CTL_ADD, ws[i].fd, &ev);
		if ((i + 1) % 500 == 0)
			wait_waiters(i + 1);
	}
	wait_waiters(nwait);
	usleep(300000);
	rss1 = proc_status("VmRSS");
	threads = proc_status("Threads");
	q0 = health_int("queries");
	sleep(6);
	q1 = health_int("queries");

	p50s = calloc((size_t)rounds, sizeof(double));
	p99s = calloc((size_t)rounds, sizeof(double));
	bytes_per = calloc((size_t)rounds, sizeof(double));
	for (r = 0; r < rounds; r++) {
		double *lat = calloc((size_t)nwait, sizeof(double)), t0;
		struct ls_ctl_heartbeat_req hb;
		struct ls_ctl_response resp;
		struct ls_ctl_error e;
		char epbuf[64];
		const char *epv[1] = {epbuf};
		int left = nwait;
		size_t total = 0, body = 0;

		snprintf(epbuf, sizeof(epbuf), "203.0.113.%d:%d", r + 1, 50000 + r);
		memset(&hb, 0, sizeof(hb));
		hb.endpoints = epv;
		hb.n_endpoints = 1;
		hb.listen_port = 51820;
		ls_ctl_set_machine_key(&ctl, big->sk[big->n - 1]);
		t0 = now_ms();
		if (ls_ctl_heartbeat(&ctl, &hb, &resp, &e)) {
			ls_ctl_error_print(&e, "heartbeat");
			exit(1);
		}
		ls_ctl_response_free(&resp);
		while (left > 0) {
			struct epoll_event evs[256];
			int n = epoll_wait(ep, evs, 256, 10000);

			if (n <= 0)
				die("waiters did not all answer within 10 s");
			for (int k = 0; k < n; k++) {
				struct waiter *w = &ws[evs[k].data.u32];
				int rr;

				if (w->done)
					continue;
				rr = read_some(w);
				if (rr < 0)
					die("a waiter's connection failed");
				if (rr == 1) {
					w->done = true;
					lat[nwait - left] = now_ms() - t0;
					total += w->total;
					body += (size_t)w->body_len;
					left--;
				}
			}
		}
		p50s[r] = pct(lat, (size_t)nwait, 0.50);
		p99s[r] = pct(lat, (size_t)nwait, 0.99);
		bytes_per[r] = (double)total / nwait;
		delta_body = (double)body / nwait;
		free(lat);
		/* re-arm every waiter on its connection at the new version */
		for (i = 0; i < nwait; i++)
			if (send_poll(&ws[i], big, ws[i].version))
				die("re-arm");
		wait_waiters(nwait);
	}

	/* report */
	{
		char up[256] = "";
		FILE *f = popen("uptime", "r");
		double p50m, p99m, bm, p99max, p99min, per_waiter_kib;
		double med[2];

		if (f) {
			if (!fgets(up, sizeof(up), f))
				up[0] = '\0';
			pclose(f);
		}
		up[strcspn(up, "\n")] = '\0';
		for (i = 0; i < 2; i++)
			med[i] = pct(per[i], nper[i], 0.5);
		printf("\nlightscale-control benchmark (uptime:%s)\n", up);
		printf("full netmap per node over HTTP (signed GET /v1/netmap, client wall time incl. JSON parse, %d rounds x %d nodes, networks alternating):\n",
		       rounds, samples);
		for (i = 0; i < 2; i++)
			printf("  %5d nodes: median %7.2f ms  p90 %7.2f ms  first (loads the snapshot) %7.1f ms  map %zu bytes (%.0f B/peer)\n",
			       nets[i].n, med[i], pct(per[i], nper[i], 0.9), first[i], full_bytes[i],
			       (double)full_bytes[i] / nets[i].n);
		printf("server-side full netmap build per node (lsc_netmap_build in this process, same samples):\n");
		for (i = 0; i < 2; i++)
			printf("  %5d nodes: median %7.3f ms  p90 %7.3f ms  snapshot load %7.1f ms  map %zu bytes\n", nets[i].n,
			       pct(build[i], nbuild[i], 0.5), pct(build[i], nbuild[i], 0.9), build_first[i], build_len[i]);
		p50m = pct(p50s, (size_t)rounds, 0.5);
		p99m = pct(p99s, (size_t)rounds, 0.5);
		p99min = p99s[0];
		p99max = p99s[rounds - 1];
		bm = pct(bytes_per, (size_t)rounds, 0.5);
		per_waiter_kib = (double)(rss1 - rss0) / nwait;
		printf("long-poll: %d waiters in the %d-node network, one node changes (%d rounds):\n",
		       nwait, big->n, rounds);
		printf("  %-36s %12s   %-20s %s\n", "figure", "measured", "target", "");
		printf("  %-36s %9.1f ms   %-20s\n", "change-to-delivery p50 (median)", p50m, "");
		printf("  %-36s %9.1f ms   %-20s %s   (rounds %.1f..%.1f ms)\n", "change-to-delivery p99 (median)",
		       p99m, "< 1000 ms", p99m < 1000 ? "PASS" : "FAIL", p99min, p99max);
		printf("  %-36s %9.0f B    %-20s\n", "bytes sent per waiter per change", bm, "");
		printf("  %-36s %9.0f B    %-20s\n", "bytes sent per change (all waiters)", bm * nwait, "");
		printf("  %-36s %9.3f %%    %-20s %s   (delta body %.0f B, full map %zu B)\n",
		       "delta size / full map size", 100.0 * delta_body / (double)full_bytes[1], "< 1 %",
		       100.0 * delta_body / (double)full_bytes[1] < 1 ? "PASS" : "FAIL", delta_body,
		       full_bytes[1]);
		printf("  %-36s %9.1f KiB  %-20s %s   (RSS %ld -> %ld KiB)\n", "server RSS per idle waiter",
		       per_waiter_kib, "< 64 KiB", per_waiter_kib < 64 ? "PASS" : "FAIL", rss0, rss1);
		printf("  %-36s %9ld      %-20s\n", "server threads", threads, "");
		printf("  %-36s %9ld      %-20s %s   (in 6 s idle: liveness flush and health)\n",
		       "DB queries per idle waiter", (q1 - q0 - 1) / nwait, "0",
		       (q1 - q0 - 1) / nwait == 0 ? "PASS" : "FAIL");
		printf("  %-36s %9ld\n", "DB queries in 6 s, all waiters", q1 - q0 - 1);
		printf("published anchors (not measured here): Headscale saturates 4 cores at 400-600 nodes\n"
		       "(its issues #1014, #2491); this run serves %d nodes and %d waiters on one thread.\n",
		       nets[0].n + nets[1].n, nwait);
	}
	for (i = 0; i < nwait; i++) {
		close(ws[i].fd);
		free(ws[i].buf);
	}
	for (i = 0; i < 2; i++) {
		free(nets[i].sk);
		free(per[i]);
		free(build[i]);
	}
	free(ws);
	free(p50s);
	free(p99s);
	free(bytes_per);
	free(key);
	close(ep);
	ls_ctl_free(&ctl);
	PQfinish(db);
	return 0;
}
