// SPDX-License-Identifier: MIT
/* Exit node latency probes and the latency policy (exitsel.h). */
#include "exitsel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "netmap.h"
#include "util.h"

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint16_t csum(const void *data, size_t len)
{
	const uint8_t *b = data;
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (len & 1)
		sum += (uint32_t)(b[len - 1] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

/* An echo request: type, code, checksum, id, seq, then the send time (for nothing but
 * a recognisable payload). */
struct echo {
	uint8_t type, code;
	uint16_t cksum, id, seq;
	uint64_t stamp;
} __attribute__((packed));

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int ls_exitsel_probe(const struct ls_netmap *nm, int timeout_ms, struct ls_exit_probe **out, size_t *n)
{
	struct ls_exit_probe *v = NULL;
	struct sockaddr_storage *dst = NULL;
	double (*rtt)[LS_EXITSEL_PROBES] = NULL;
	uint64_t (*sent_at)[LS_EXITSEL_PROBES] = NULL;
	int fd4 = -1, fd6 = -1, ret = 0;
	uint16_t ident = (uint16_t)(getpid() ^ (int)(now_us() & 0xffff));
	size_t cnt = 0;
	uint64_t deadline;

	*out = NULL;
	*n = 0;
	for (size_t i = 0; i < nm->n_peers; i++)
		cnt += nm->peers[i]->exit_node;
	if (!cnt)
		return 0;
	v = calloc(cnt, sizeof(*v));
	dst = calloc(cnt, sizeof(*dst));
	rtt = calloc(cnt, sizeof(*rtt));
	sent_at = calloc(cnt, sizeof(*sent_at));
	if (!v || !dst || !rtt || !sent_at) {
		ret = -ENOMEM;
		goto cleanup;
	}
	cnt = 0;
	for (size_t i = 0; i < nm->n_peers; i++) {
		const struct ls_nm_peer *p = nm->peers[i];
		const struct ls_prefix *a4 = NULL, *a6 = NULL, *a;
		struct ls_exit_probe *e;

		if (!p->exit_node)
			continue;
		e = &v[cnt];
		e->id = p->id;
		snprintf(e->name, sizeof(e->name), "%s", p->name ? p->name : "");
		e->rtt_ms = -1;
		for (size_t k = 0; k < p->addresses.n; k++) {
			if (p->addresses.v[k].family == AF_INET && !a4)
				a4 = &p->addresses.v[k];
			if (p->addresses.v[k].family == AF_INET6 && !a6)
				a6 = &p->addresses.v[k];
		}
		a = a4 ? a4 : a6;
		if (a) {
			char b[LS_PREFIX_STRLEN];

			ls_prefix_format_addr(a, b);
			snprintf(e->addr, sizeof(e->addr), "%s", b);
			if (a->family == AF_INET) {
				struct sockaddr_in *s = (struct sockaddr_in *)&dst[cnt];

				s->sin_family = AF_INET;
				memcpy(&s->sin_addr, a->addr, 4);
			} else {
				struct sockaddr_in6 *s = (struct sockaddr_in6 *)&dst[cnt];

				s->sin6_family = AF_INET6;
				memcpy(&s->sin6_addr, a->addr, 16);
			}
		}
		cnt++;
	}
	fd4 = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_ICMP);
	fd6 = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_ICMPV6);
	if (fd4 < 0 && fd6 < 0) {
		ret = -errno;
		goto cleanup;
	}
	for (int seq = 0; seq < LS_EXITSEL_PROBES; seq++) {
		for (size_t i = 0; i < cnt; i++) {
			struct echo m = { .id = htons(ident), .seq = htons((uint16_t)(i * LS_EXITSEL_PROBES + (size_t)seq)) };
			int fam = dst[i].ss_family, fd = fam == AF_INET ? fd4 : fd6;

			if (!fam || fd < 0)
				continue;
			m.type = fam == AF_INET ? ICMP_ECHO : ICMP6_ECHO_REQUEST;
			m.stamp = now_us();
			if (fam == AF_INET)
				m.cksum = csum(&m, sizeof(m)); /* the kernel sums ICMPv6 itself */
			sent_at[i][seq] = now_us();
			if (sendto(fd, &m, sizeof(m), 0, (struct sockaddr *)&dst[i],
				   fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) == (ssize_t)sizeof(m))
				v[i].sent++;
		}
	}
	deadline = now_us() + (uint64_t)timeout_ms * 1000u;
	for (;;) {
		struct pollfd pfd[2] = { { .fd = fd4, .events = POLLIN }, { .fd = fd6, .events = POLLIN } };
		uint64_t t = now_us();
		size_t done = 0;

		for (size_t i = 0; i < cnt; i++)
			done += v[i].received == v[i].sent;
		if (done == cnt || t >= deadline)
			break;
		if (poll(pfd, 2, (int)((deadline - t) / 1000u) + 1) <= 0)
			continue;
		for (int f = 0; f < 2; f++) {
			uint8_t buf[512];
			ssize_t r;

			if (!(pfd[f].revents & POLLIN))
				continue;
			while ((r = recv(pfd[f].fd, buf, sizeof(buf), 0)) > 0) {
				const uint8_t *icmp = buf;
				size_t len = (size_t)r;
				struct echo m;
				size_t idx, seq;

				if (f == 0) { /* a raw IPv4 socket sees the IP header */
					size_t hl = (size_t)(buf[0] & 0xf) * 4;

					if (len < hl + sizeof(m))
						continue;
					icmp += hl;
					len -= hl;
				}
				if (len < sizeof(m))
					continue;
				memcpy(&m, icmp, sizeof(m));
				if (m.type != (f == 0 ? ICMP_ECHOREPLY : ICMP6_ECHO_REPLY) || ntohs(m.id) != ident)
					continue;
				idx = ntohs(m.seq) / LS_EXITSEL_PROBES;
				seq = ntohs(m.seq) % LS_EXITSEL_PROBES;
				if (idx >= cnt || rtt[idx][seq] > 0)
					continue;
				rtt[idx][seq] = (double)(now_us() - sent_at[idx][seq]) / 1000.0;
				if (rtt[idx][seq] <= 0)
					rtt[idx][seq] = 0.001;
				v[idx].received++;
			}
		}
	}
	for (size_t i = 0; i < cnt; i++) {
		double got[LS_EXITSEL_PROBES];
		int k = 0;

		for (int s = 0; s < LS_EXITSEL_PROBES; s++)
			if (rtt[i][s] > 0)
				got[k++] = rtt[i][s];
		if (k) {
			qsort(got, (size_t)k, sizeof(*got), cmp_double);
			v[i].rtt_ms = got[k / 2];
		}
	}
	*out = v;
	*n = cnt;
	v = NULL;
cleanup:
	if (fd4 >= 0)
		close(fd4);
	if (fd6 >= 0)
		close(fd6);
	free(v);
	free(dst);
	free(rtt);
	free(sent_at);
	return ret;
}

const struct ls_exit_probe *ls_exitsel_best(const struct ls_exit_probe *v, size_t n, int64_t current)
{
	const struct ls_exit_probe *best = NULL, *cur = NULL;

	for (size_t i = 0; i < n; i++) {
		if (v[i].rtt_ms < 0)
			continue;
		if (v[i].id == current)
			cur = &v[i];
		if (!best || v[i].rtt_ms < best->rtt_ms)
			best = &v[i];
	}
	/* hysteresis: keep an answering current exit unless the best is clearly faster */
	if (cur && best != cur && !(best->rtt_ms < cur->rtt_ms * 0.8 && cur->rtt_ms - best->rtt_ms >= 5.0))
		return cur;
	return best;
}

int ls_exitsel_policy(const struct ls_profile *p, char *out, size_t size)
{
	char path[PATH_MAX], *buf = NULL;
	size_t len;
	json_t *doc;
	const char *s;

	snprintf(out, size, "first");
	ls_profile_file(p, LS_EXITSEL_FILE, path, sizeof(path));
	if (ls_read_file(path, &buf, &len, 1 << 16))
		return 0;
	doc = json_loadb(buf, len, 0, NULL);
	free(buf);
	s = json_string_value(json_object_get(doc, "auto"));
	if (s && (!strcmp(s, "first") || !strcmp(s, "latency")))
		snprintf(out, size, "%s", s);
	json_decref(doc);
	return 0;
}

int ls_exitsel_set_policy(const struct ls_profile *p, const char *policy)
{
	json_t *doc;
	int ret;

	if (strcmp(policy, "first") && strcmp(policy, "latency"))
		return -EINVAL;
	doc = json_pack("{s:s}", "auto", policy);
	ret = ls_profile_save_json(p, LS_EXITSEL_FILE, doc);
	json_decref(doc);
	return ret;
}

void ls_exitsel_auto(const struct ls_profile *p, const struct ls_netmap *nm, char *out, size_t size)
{
	static uint64_t last_ms;
	static char last[128];
	static int64_t last_id;
	unsigned int interval = LS_EXITSEL_INTERVAL;
	char pol[16];
	struct ls_exit_probe *v = NULL;
	const struct ls_exit_probe *b;
	size_t n = 0;

	out[0] = '\0';
	if (!nm || ls_exitsel_policy(p, pol, sizeof(pol)) || strcmp(pol, "latency"))
		return;
	if (getenv("LIGHTSCALE_EXIT_PROBE_INTERVAL")) /* labs: seconds */
		interval = (unsigned int)atoi(getenv("LIGHTSCALE_EXIT_PROBE_INTERVAL"));
	if (last_ms && ls_now_ms() - last_ms < interval * 1000u) {
		snprintf(out, size, "%s", last);
		return;
	}
	last_ms = ls_now_ms();
	if (ls_exitsel_probe(nm, 300, &v, &n) == 0 && (b = ls_exitsel_best(v, n, last_id))) {
		snprintf(last, sizeof(last), "%s", b->name);
		last_id = b->id;
	} else {
		/* nothing answered (handshakes still under way?): measure again in 5 s */
		last[0] = '\0';
		last_id = 0;
		if (interval > 5)
			last_ms -= (interval - 5) * 1000u;
	}
	free(v);
	snprintf(out, size, "%s", last);
}
