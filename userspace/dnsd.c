// SPDX-License-Identifier: MIT
#include "dnsd.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "status.h"
#include "util.h"

#define LS_DNS_RCODE_REFUSED 5

struct ls_dnsd {
	char ifname[IFNAMSIZ];
	char profile[LS_PROFILE_NAME_MAX + 1];
	char listen[64];
	char overlay_listen[64]; /* with systemd-resolved */
	int port;
	int fd, fd_overlay;
	int stop_pipe[2];
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	char suffix[LS_DNS_MAX_NAME + 1];
	struct ls_dns_record *recs;
	size_t n_recs;
	struct sockaddr_storage up[8];
	socklen_t up_len[8];
	char up_str[8][LS_ENDPOINT_STRLEN];
	size_t n_up;
	char integration[512];
	char resolv_path[256];
	char *resolv_orig; /* --manage-resolv-conf: what to put back */
	bool resolved_set;
	uint64_t queries, answered, nxdomain, forwarded, failed, refused;
};

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

void ls_dnsd_records_free(struct ls_dns_record *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((char *)r[i].name);
	free(r);
}

int ls_dnsd_records(const struct ls_netmap *nm, const struct ls_mnet_map *xl, size_t n_xl,
		    struct ls_dns_record **out, size_t *n)
{
	size_t cap = nm->dns.n_records + 1, k = 0;
	struct ls_dns_record *r;

	/* the nodes themselves (dns_name + overlay addresses), then the extra records */
	cap += nm->self.addresses.n;
	for (size_t i = 0; i < nm->n_peers; i++)
		cap += nm->peers[i]->addresses.n;
	r = calloc(cap, sizeof(*r));

	*out = NULL;
	*n = 0;
	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i <= nm->n_peers; i++) {
		const char *dn = i < nm->n_peers ? nm->peers[i]->dns_name : nm->self.dns_name;
		const struct ls_nm_prefixv *av = i < nm->n_peers ? &nm->peers[i]->addresses : &nm->self.addresses;

		for (size_t j = 0; dn && j < av->n; j++) {
			char *name = strdup(dn);
			size_t len;

			if (!name) {
				ls_dnsd_records_free(r, k);
				return -ENOMEM;
			}
			lower(name);
			len = strlen(name);
			while (len && name[len - 1] == '.')
				name[--len] = '\0';
			r[k].name = name;
			r[k].type = av->v[j].family == AF_INET ? LS_DNS_TYPE_A : LS_DNS_TYPE_AAAA;
			memcpy(r[k].addr, av->v[j].addr, 16);
			r[k].ttl = 60;
			k++;
		}
	}
	for (size_t i = 0; i < nm->dns.n_records; i++) {
		const struct ls_nm_dns_record *d = &nm->dns.records[i];
		bool dup = false;
		struct ls_prefix a;
		char *name;
		size_t len;

		if (!d->name || !d->type || !d->value || (strcmp(d->type, "A") && strcmp(d->type, "AAAA")))
			continue;
		if (ls_prefix_parse(d->value, &a, false) || a.len != ls_prefix_max_len(&a) ||
		    (a.family == AF_INET) != !strcmp(d->type, "A"))
			continue;
		/* behind a translated route: the virtual address (host bits kept) */
		for (size_t x = 0; x < n_xl; x++) {
			if (!ls_prefix_contains(&xl[x].real, &a))
				continue;
			for (int b = 0; b < xl[x].virt.len; b++) {
				uint8_t m = (uint8_t)(0x80 >> (b % 8));

				a.addr[b / 8] = (uint8_t)((a.addr[b / 8] & ~m) | (xl[x].virt.addr[b / 8] & m));
			}
			break;
		}
		for (size_t j = 0; j < k && !dup; j++)
			dup = r[j].type == (a.family == AF_INET ? LS_DNS_TYPE_A : LS_DNS_TYPE_AAAA) &&
			      !memcmp(r[j].addr, a.addr, 16) && !strcasecmp(r[j].name, d->name);
		if (dup)
			continue;
		name = strdup(d->name);
		if (!name) {
			ls_dnsd_records_free(r, k);
			return -ENOMEM;
		}
		lower(name);
		len = strlen(name);
		while (len && name[len - 1] == '.')
			name[--len] = '\0';
		r[k].name = name;
		r[k].type = a.family == AF_INET ? LS_DNS_TYPE_A : LS_DNS_TYPE_AAAA;
		memcpy(r[k].addr, a.addr, 16);
		r[k].ttl = 60;
		k++;
	}
	*out = r;
	*n = k;
	return 0;
}

int ls_dnsd_parse_resolv_conf(const char *text, char ***out, size_t *n)
{
	char *dup = strdup(text ? text : ""), *save = NULL, *line;
	char **v = NULL;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	if (!dup)
		return -ENOMEM;
	for (line = strtok_r(dup, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char addr[128], buf[LS_ENDPOINT_STRLEN + 8];
		struct ls_prefix p;
		char **nv;

		if (sscanf(line, " nameserver %127s", addr) != 1 || ls_prefix_parse(addr, &p, false))
			continue;
		if (p.family == AF_INET && p.addr[0] == 127 && p.addr[1] == 77)
			continue; /* ours (a profile's resolver) */
		snprintf(buf, sizeof(buf), p.family == AF_INET ? "%s:53" : "[%s]:53", addr);
		nv = realloc(v, (k + 1) * sizeof(*v));
		if (!nv)
			break;
		v = nv;
		v[k] = strdup(buf);
		if (v[k])
			k++;
	}
	free(dup);
	*out = v;
	*n = k;
	return 0;
}

void ls_dnsd_default_listen(const struct ls_profile *p, char *out, size_t size)
{
	uint32_t slot = p->table >= LS_MNET_TABLE_BASE && p->table < LS_MNET_TABLE_BASE + LS_MNET_SLOTS
				? p->table - LS_MNET_TABLE_BASE
				: 0;

	snprintf(out, size, "127.77.%u.1", slot + 1);
}

static int udp_bind(const char *addr, int port)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	char ep[LS_ENDPOINT_STRLEN + 8];
	int fd, one = 1;

	snprintf(ep, sizeof(ep), strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, port);
	if (ls_endpoint_parse(ep, &ss, &len))
		return -EINVAL;
	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* the overlay address may come up after us */
	setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

static int run_cmd(char *const argv[])
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

static bool resolved_running(void)
{
	struct stat sb;

	return stat("/run/systemd/resolve", &sb) == 0 && S_ISDIR(sb.st_mode) &&
	       (access("/usr/bin/resolvectl", X_OK) == 0 || access("/bin/resolvectl", X_OK) == 0);
}

/* Forwards q to the upstreams in turn (2 s each); the reply goes to the client as is. */
static int forward(struct ls_dnsd *d, const uint8_t *pkt, size_t len, uint8_t *out, size_t out_size,
		   uint16_t id)
{
	for (size_t i = 0; i < d->n_up; i++) {
		int fd = socket(d->up[i].ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (fd < 0)
			continue;
		if (connect(fd, (struct sockaddr *)&d->up[i], d->up_len[i]) < 0 || send(fd, pkt, len, 0) < 0) {
			close(fd);
			continue;
		}
		while (poll(&pfd, 1, 2000) > 0) {
			r = recv(fd, out, out_size, 0);
			if (r >= 12 && ((out[0] << 8) | out[1]) == id) {
				close(fd);
				return (int)r;
			}
			if (r < 0)
				break;
		}
		close(fd);
	}
	return -ETIMEDOUT;
}

static bool is_local_source(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr)[0] == 127;
	return ss->ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static void serve_one(struct ls_dnsd *d, int fd, bool overlay)
{
	uint8_t pkt[LS_DNS_MAX_UDP * 8], out[4096];
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	struct ls_dns_query q;
	ssize_t n = recvfrom(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&from, &flen);
	int r;

	if (n <= 0)
		return;
	pthread_mutex_lock(&d->lock);
	d->queries++;
	if (ls_dns_parse_query(pkt, (size_t)n, &q)) {
		pthread_mutex_unlock(&d->lock);
		if (n >= 12) {
			/* FORMERR echoing just the header */
			memcpy(out, pkt, 12);
			out[2] |= 0x80;
			out[3] = (out[3] & 0xf0) | LS_DNS_RCODE_FORMERR;
			memset(out + 4, 0, 8);
			sendto(fd, out, 12, 0, (struct sockaddr *)&from, flen);
		}
		return;
	}
	if (d->suffix[0] && ls_dns_name_under(q.name, d->suffix)) {
		r = ls_dns_answer(pkt, &q, d->recs, d->n_recs, out, sizeof(out));
		if (r >= 4 && (out[3] & 0x0f) == LS_DNS_RCODE_NXDOMAIN)
			d->nxdomain++;
		else
			d->answered++;
		pthread_mutex_unlock(&d->lock);
		if (r > 0)
			sendto(fd, out, (size_t)r, 0, (struct sockaddr *)&from, flen);
		return;
	}
	/* other names: only for this host (the overlay socket is reachable by peers) */
	if (overlay && !is_local_source(&from)) {
		d->refused++;
		pthread_mutex_unlock(&d->lock);
		r = ls_dns_error(pkt, &q, LS_DNS_RCODE_REFUSED, out, sizeof(out));
		if (r > 0)
			sendto(fd, out, (size_t)r, 0, (struct sockaddr *)&from, flen);
		return;
	}
	pthread_mutex_unlock(&d->lock);
	r = forward(d, pkt, (size_t)n, out, sizeof(out), q.id);
	pthread_mutex_lock(&d->lock);
	if (r > 0)
		d->forwarded++;
	else
		d->failed++;
	pthread_mutex_unlock(&d->lock);
	if (r <= 0)
		r = ls_dns_error(pkt, &q, LS_DNS_RCODE_SERVFAIL, out, sizeof(out));
	if (r > 0)
		sendto(fd, out, (size_t)r, 0, (struct sockaddr *)&from, flen);
}

static void *dnsd_thread(void *arg)
{
	struct ls_dnsd *d = arg;

	for (;;) {
		struct pollfd pfd[3] = { { .fd = d->stop_pipe[0], .events = POLLIN },
					 { .fd = d->fd, .events = POLLIN },
					 { .fd = d->fd_overlay, .events = POLLIN } };

		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents)
			break;
		if (pfd[1].revents & POLLIN)
			serve_one(d, d->fd, false);
		if (pfd[2].revents & POLLIN)
			serve_one(d, d->fd_overlay, true);
	}
	return NULL;
}

static void manage_resolv_conf(struct ls_dnsd *d)
{
	char *buf = NULL, *nbuf;
	size_t len = 0, nlen;
	int ret;

	if ((ret = ls_read_file(d->resolv_path, &buf, &len, 1 << 20))) {
		pr_err("dns: cannot read %s: %s (left alone)", d->resolv_path, strerror(-ret));
		return;
	}
	nlen = strlen(d->listen) + 64 + len;
	nbuf = malloc(nlen);
	if (!nbuf) {
		free(buf);
		return;
	}
	snprintf(nbuf, nlen, "nameserver %s # lightscale %s\n%s", d->listen, d->profile, buf);
	if ((ret = ls_write_file_atomic(d->resolv_path, nbuf, strlen(nbuf), 0644))) {
		pr_err("dns: cannot write %s: %s", d->resolv_path, strerror(-ret));
		free(buf);
	} else {
		d->resolv_orig = buf;
		pr_info("dns: %s: nameserver %s added (restored on exit)", d->resolv_path, d->listen);
	}
	free(nbuf);
}

int ls_dnsd_start(const struct ls_profile *p, const struct ls_dnsd_opts *o, struct ls_dnsd **out)
{
	struct ls_dnsd *d = calloc(1, sizeof(*d));
	char **ups = NULL;
	size_t n_ups = 0;
	int ret;

	*out = NULL;
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	d->fd = d->fd_overlay = d->stop_pipe[0] = d->stop_pipe[1] = -1;
	snprintf(d->ifname, sizeof(d->ifname), "%s", p->ifname);
	snprintf(d->profile, sizeof(d->profile), "%s", p->name);
	if (o->listen)
		snprintf(d->listen, sizeof(d->listen), "%s", o->listen);
	else
		ls_dnsd_default_listen(p, d->listen, sizeof(d->listen));
	d->port = o->port > 0 ? o->port : 53;
	snprintf(d->resolv_path, sizeof(d->resolv_path), "%s",
		 getenv("LIGHTSCALE_RESOLV_CONF") ? getenv("LIGHTSCALE_RESOLV_CONF") : "/etc/resolv.conf");
	/* upstreams: given, or the host's resolv.conf as it is now */
	if (o->n_upstreams) {
		for (size_t i = 0; i < o->n_upstreams && n_ups < 8; i++) {
			char buf[LS_ENDPOINT_STRLEN + 8];
			struct ls_prefix a;

			if (!ls_prefix_parse(o->upstreams[i], &a, false))
				snprintf(buf, sizeof(buf), a.family == AF_INET ? "%s:53" : "[%s]:53", o->upstreams[i]);
			else
				snprintf(buf, sizeof(buf), "%s", o->upstreams[i]);
			ups = realloc(ups, (n_ups + 1) * sizeof(*ups));
			if (!ups)
				break;
			ups[n_ups++] = strdup(buf);
		}
	} else {
		char *text = NULL;
		size_t len;

		if (ls_read_file(d->resolv_path, &text, &len, 1 << 20) == 0) {
			ls_dnsd_parse_resolv_conf(text, &ups, &n_ups);
			free(text);
		}
	}
	for (size_t i = 0; i < n_ups; i++) {
		if (ups[i] && d->n_up < 8 && !ls_endpoint_parse(ups[i], &d->up[d->n_up], &d->up_len[d->n_up])) {
			snprintf(d->up_str[d->n_up], sizeof(d->up_str[0]), "%s", ups[i]);
			d->n_up++;
		} else if (ups[i]) {
			pr_warn("dns: invalid upstream `%s' (ADDR or ADDR:PORT)", ups[i]);
		}
		free(ups[i]);
	}
	free(ups);
	d->fd = udp_bind(d->listen, d->port);
	if (d->fd < 0) {
		ret = d->fd;
		pr_err("dns: cannot listen on %s port %d: %s", d->listen, d->port, strerror(-ret));
		goto fail;
	}
	if (pipe2(d->stop_pipe, O_CLOEXEC) < 0) {
		ret = -errno;
		goto fail;
	}
	snprintf(d->integration, sizeof(d->integration), "none");
	if (resolved_running())
		snprintf(d->integration, sizeof(d->integration), "systemd-resolved (pending the overlay address)");
	else if (o->manage_resolv_conf)
		manage_resolv_conf(d);
	if (d->resolv_orig)
		snprintf(d->integration, sizeof(d->integration), "resolv.conf (%s)", d->resolv_path);
	if ((ret = pthread_create(&d->thread, NULL, dnsd_thread, d))) {
		ret = -ret;
		goto fail;
	}
	d->running = true;
	pr_info("dns: resolver for profile '%s' on %s port %d (%zu upstream(s))", p->name, d->listen, d->port, d->n_up);
	*out = d;
	return 0;
fail:
	ls_dnsd_stop(d);
	return ret;
}

void ls_dnsd_update(struct ls_dnsd *d, const struct ls_netmap *nm, const struct ls_mnet_map *xl, size_t n_xl)
{
	struct ls_dns_record *r = NULL;
	size_t n = 0;
	const char *suffix;
	char ov[64] = "";

	if (!d || !nm || ls_dnsd_records(nm, xl, n_xl, &r, &n))
		return;
	suffix = nm->dns.suffix ? nm->dns.suffix : nm->network.dns_suffix;
	for (size_t i = 0; i < nm->self.addresses.n; i++) {
		if (nm->self.addresses.v[i].family == AF_INET) {
			ls_prefix_format_addr(&nm->self.addresses.v[i], ov);
			break;
		}
	}
	pthread_mutex_lock(&d->lock);
	ls_dnsd_records_free(d->recs, d->n_recs);
	d->recs = r;
	d->n_recs = n;
	snprintf(d->suffix, sizeof(d->suffix), "%s", suffix ? suffix : "");
	lower(d->suffix);
	while (d->suffix[0] && d->suffix[strlen(d->suffix) - 1] == '.')
		d->suffix[strlen(d->suffix) - 1] = '\0';
	pthread_mutex_unlock(&d->lock);
	/* systemd-resolved: per-link DNS on ls-P (its server is our overlay address) */
	if (resolved_running() && ov[0] && d->suffix[0] && strcmp(ov, d->overlay_listen)) {
		char dom[LS_DNS_MAX_NAME + 2];
		char *dns_argv[] = { "resolvectl", "dns", d->ifname, ov, NULL };
		char *dom_argv[] = { "resolvectl", "domain", d->ifname, dom, NULL };
		/* bound once: the overlay address of a profile does not change */
		int fd = d->fd_overlay >= 0 ? d->fd_overlay : udp_bind(ov, d->port);

		snprintf(dom, sizeof(dom), "~%s", d->suffix);
		if (fd >= 0) {
			d->fd_overlay = fd;
			snprintf(d->overlay_listen, sizeof(d->overlay_listen), "%s", ov);
		}
		if (fd >= 0 && run_cmd(dns_argv) == 0 && run_cmd(dom_argv) == 0) {
			d->resolved_set = true;
			snprintf(d->integration, sizeof(d->integration), "systemd-resolved (%s, %s)", d->ifname, dom);
			pr_info("dns: systemd-resolved: %s uses %s for %s", d->ifname, ov, dom);
		} else {
			snprintf(d->integration, sizeof(d->integration), "systemd-resolved: resolvectl failed");
			pr_warn("dns: resolvectl dns/domain %s failed", d->ifname);
		}
	}
}

json_t *ls_dnsd_status(struct ls_dnsd *d)
{
	json_t *ups = json_array(), *st;
	char instr[2048];

	for (size_t i = 0; i < d->n_up; i++)
		json_array_append_new(ups, json_string(d->up_str[i]));
	pthread_mutex_lock(&d->lock);
	if (d->resolved_set)
		snprintf(instr, sizeof(instr), "systemd-resolved sends *.%s to %s on %s (resolvectl status %s)", d->suffix,
			 d->overlay_listen, d->ifname, d->ifname);
	else if (d->resolv_orig)
		snprintf(instr, sizeof(instr), "%s starts with nameserver %s (put back on exit)", d->resolv_path, d->listen);
	else
		snprintf(instr, sizeof(instr),
			 "nothing outside was changed. Query it directly: dig @%s NAME.%s; or make it the "
			 "host's resolver (it forwards other names to the upstreams): add `nameserver %s' as the "
			 "first line of /etc/resolv.conf, or run the agent with --manage-resolv-conf; with "
			 "systemd-resolved: resolvectl dns %s ADDR; resolvectl domain %s '~%s'",
			 d->listen, d->suffix[0] ? d->suffix : "SUFFIX", d->listen, d->ifname, d->ifname,
			 d->suffix[0] ? d->suffix : "SUFFIX");
	st = json_pack("{s:s, s:i, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:s}", "listen", d->listen, "port",
		       d->port, "suffix", d->suffix, "upstreams", ups, "records", (json_int_t)d->n_recs, "queries",
		       (json_int_t)d->queries, "answered", (json_int_t)d->answered, "nxdomain", (json_int_t)d->nxdomain,
		       "forwarded", (json_int_t)d->forwarded, "failed", (json_int_t)d->failed, "refused",
		       (json_int_t)d->refused, "integration", d->integration, "instructions", instr);
	if (st && d->overlay_listen[0])
		json_object_set_new(st, "overlay_listen", json_string(d->overlay_listen));
	pthread_mutex_unlock(&d->lock);
	return st;
}

void ls_dnsd_stop(struct ls_dnsd *d)
{
	if (!d)
		return;
	if (d->running) {
		if (write(d->stop_pipe[1], "x", 1) < 0)
			pr_debug("dns: stop pipe: %s", strerror(errno));
		pthread_join(d->thread, NULL);
	}
	if (d->resolved_set) {
		char *argv[] = { "resolvectl", "revert", d->ifname, NULL };

		run_cmd(argv);
	}
	if (d->resolv_orig) {
		char *cur = NULL, mark[256];
		size_t len;

		/* put the original back only when our line is still there */
		snprintf(mark, sizeof(mark), "nameserver %s # lightscale %s\n", d->listen, d->profile);
		if (ls_read_file(d->resolv_path, &cur, &len, 1 << 20) == 0 && !strncmp(cur, mark, strlen(mark)))
			ls_write_file_atomic(d->resolv_path, d->resolv_orig, strlen(d->resolv_orig), 0644);
		free(cur);
		free(d->resolv_orig);
	}
	if (d->fd >= 0)
		close(d->fd);
	if (d->fd_overlay >= 0)
		close(d->fd_overlay);
	if (d->stop_pipe[0] >= 0)
		close(d->stop_pipe[0]);
	if (d->stop_pipe[1] >= 0)
		close(d->stop_pipe[1]);
	ls_dnsd_records_free(d->recs, d->n_recs);
	pthread_mutex_destroy(&d->lock);
	free(d);
}
