// SPDX-License-Identifier: MIT
/* Userspace engine backend: the cross-platform UAPI protocol over
 * /var/run/wireguard/IF.sock, spoken to whichever process serves it (lightscale
 * wg-userspace, wireguard-go). The engine runs as its own process in its own session, so
 * it outlives the agent; a restarted agent adopts it through the socket. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "wg.h"

void ls_wg_device_free(struct ls_wg_device *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n_peers; i++)
		free(d->peers[i].allowed);
	free(d->peers);
	ls_memzero(d->private_key, sizeof(d->private_key));
	free(d);
}

int ls_uapi_sock_path(const char *ifname, char *out, size_t size)
{
	const char *dir = getenv("LIGHTSCALE_WG_SOCK_DIR");

	if ((size_t)snprintf(out, size, "%s/%s.sock", dir ? dir : LS_WG_SOCK_DIR, ifname) >= size)
		return -ENAMETOOLONG;
	return 0;
}

static int uapi_connect(const char *ifname)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (ls_uapi_sock_path(ifname, sun.sun_path, sizeof(sun.sun_path)))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

/* Sends req, reads the answer up to the blank line that ends it. */
static int uapi_transact(const char *ifname, const char *req, size_t req_len, char **out, size_t *out_len)
{
	size_t cap = 65536, n = 0;
	char *buf = NULL;
	int fd, ret;

	fd = uapi_connect(ifname);
	if (fd < 0)
		return fd;
	for (size_t off = 0; off < req_len;) {
		ssize_t w = send(fd, req + off, req_len - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			ret = -errno;
			goto cleanup;
		}
		off += (size_t)w;
	}
	buf = malloc(cap);
	if (!buf) {
		ret = -ENOMEM;
		goto cleanup;
	}
	for (;;) {
		ssize_t r;

		if (n + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb) {
				ret = -ENOMEM;
				goto cleanup;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			goto cleanup;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
		if (n >= 2 && buf[n - 1] == '\n' && buf[n - 2] == '\n')
			break;
		if (n == 1 && buf[0] == '\n')
			break;
	}
	buf[n] = '\0';
	*out = buf;
	*out_len = n;
	buf = NULL;
	ret = 0;
cleanup:
	free(buf);
	close(fd);
	return ret;
}

/* The errno=N line of an answer: 0 or -errno. wireguard-go and Lightscale's engine
 * send the negative value (errno=-22), as the UAPI documents; accept either sign. */
static int uapi_errno(const char *resp)
{
	const char *e = strstr(resp, "errno=");
	int v;

	if (!e || (e != resp && e[-1] != '\n'))
		return -EPROTO;
	v = atoi(e + 6);
	return v > 0 ? -v : v;
}

/* Appends to p->allowed. The array has no capacity field: it is reallocated to
 * 2 * (n + 1) entries whenever n is 0 or 2^k - 1, which always leaves room. */
static int add_allowed(struct ls_wg_peer *p, const struct ls_prefix *a)
{
	if ((p->n_allowed & (p->n_allowed + 1)) == 0 || p->n_allowed == 0) {
		size_t cap = p->n_allowed ? (p->n_allowed + 1) * 2 : 2;
		struct ls_prefix *n = realloc(p->allowed, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->allowed = n;
	}
	p->allowed[p->n_allowed++] = *a;
	return 0;
}

int ls_uapi_parse_get(const char *text, size_t len, struct ls_wg_device **out, char *err, size_t err_size)
{
	struct ls_wg_device *d = calloc(1, sizeof(*d));
	size_t cap_peers = 0;
	struct ls_wg_peer *peer = NULL;
	const char *p = text, *end = text + len;
	int ret = 0, errno_val = -1;

	*out = NULL;
	if (!d)
		return -ENOMEM;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		char line[512], *eq, *key, *val;
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (ll == 0) {
			if (errno_val >= 0)
				break;
			p += 1;
			continue;
		}
		if (ll >= sizeof(line)) {
			snprintf(err, err_size, "uapi: line longer than %zu bytes", sizeof(line));
			ret = -EBADMSG;
			goto cleanup;
		}
		memcpy(line, p, ll);
		line[ll] = '\0';
		p += ll + (nl ? 1 : 0);
		eq = strchr(line, '=');
		if (!eq) {
			snprintf(err, err_size, "uapi: line `%.60s' has no '='", line);
			ret = -EBADMSG;
			goto cleanup;
		}
		*eq = '\0';
		key = line;
		val = eq + 1;
		if (!strcmp(key, "private_key")) {
			if (ls_key_from_hex(d->private_key, val))
				goto bad;
			d->flags |= LS_WGD_PRIVATE_KEY;
			ls_wg_pubkey(d->public_key, d->private_key);
		} else if (!strcmp(key, "listen_port")) {
			d->listen_port = (uint16_t)atoi(val);
			d->flags |= LS_WGD_LISTEN_PORT;
		} else if (!strcmp(key, "fwmark")) {
			d->fwmark = (uint32_t)strtoul(val, NULL, 0);
			d->flags |= LS_WGD_FWMARK;
		} else if (!strcmp(key, "public_key")) {
			if (d->n_peers == cap_peers) {
				size_t nc = cap_peers ? cap_peers * 2 : 16;
				struct ls_wg_peer *np = realloc(d->peers, nc * sizeof(*np));

				if (!np) {
					ret = -ENOMEM;
					goto cleanup;
				}
				d->peers = np;
				cap_peers = nc;
			}
			peer = &d->peers[d->n_peers++];
			memset(peer, 0, sizeof(*peer));
			if (ls_key_from_hex(peer->key, val))
				goto bad;
		} else if (!strcmp(key, "errno")) {
			errno_val = atoi(val);
		} else if (!peer) {
			continue; /* device fields we do not use */
		} else if (!strcmp(key, "endpoint")) {
			if (ls_endpoint_parse(val, &peer->endpoint, NULL))
				goto bad;
			peer->flags |= LS_WGP_HAS_ENDPOINT;
		} else if (!strcmp(key, "allowed_ip")) {
			struct ls_prefix a;

			if (ls_prefix_parse(val, &a, true))
				goto bad;
			ls_prefix_mask(&a);
			if ((ret = add_allowed(peer, &a)))
				goto cleanup;
		} else if (!strcmp(key, "last_handshake_time_sec")) {
			peer->last_handshake_sec = strtoll(val, NULL, 10);
		} else if (!strcmp(key, "last_handshake_time_nsec")) {
			peer->last_handshake_nsec = strtoll(val, NULL, 10);
		} else if (!strcmp(key, "rx_bytes")) {
			peer->rx_bytes = strtoull(val, NULL, 10);
		} else if (!strcmp(key, "tx_bytes")) {
			peer->tx_bytes = strtoull(val, NULL, 10);
		} else if (!strcmp(key, "persistent_keepalive_interval")) {
			peer->keepalive = (uint16_t)atoi(val);
			peer->flags |= LS_WGP_HAS_KEEPALIVE;
		}
		continue;
bad:
		snprintf(err, err_size, "uapi: invalid %s `%.60s'", key, val);
		ret = -EBADMSG;
		goto cleanup;
	}
	if (errno_val < 0) {
		snprintf(err, err_size, "uapi: answer without errno=");
		ret = -EBADMSG;
	} else if (errno_val > 0) {
		snprintf(err, err_size, "uapi: engine answered errno=%d (%s)", errno_val, strerror(errno_val));
		ret = -errno_val;
	}
cleanup:
	if (ret) {
		ls_wg_device_free(d);
		return ret;
	}
	*out = d;
	return 0;
}

struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->s && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t nc = b->cap ? b->cap * 2 : 4096;

		while (nc < b->len + (size_t)n + 1)
			nc *= 2;
		char *ns = realloc(b->s, nc);

		if (!ns) {
			b->oom = true;
			return;
		}
		b->s = ns;
		b->cap = nc;
	}
}

char *ls_uapi_build_set(const struct ls_wg_device *dev, size_t *len)
{
	struct sbuf b = { 0 };
	char hex[LS_KEY_HEX_LEN + 1];

	sb_printf(&b, "set=1\n");
	if (dev->flags & LS_WGD_PRIVATE_KEY) {
		ls_key_to_hex(hex, dev->private_key);
		sb_printf(&b, "private_key=%s\n", hex);
		ls_memzero(hex, sizeof(hex));
	}
	if (dev->flags & LS_WGD_LISTEN_PORT)
		sb_printf(&b, "listen_port=%u\n", dev->listen_port);
	if (dev->flags & LS_WGD_FWMARK)
		sb_printf(&b, "fwmark=%" PRIu32 "\n", dev->fwmark);
	if (dev->flags & LS_WGD_REPLACE_PEERS)
		sb_printf(&b, "replace_peers=true\n");
	for (size_t i = 0; i < dev->n_peers; i++) {
		const struct ls_wg_peer *p = &dev->peers[i];

		ls_key_to_hex(hex, p->key);
		sb_printf(&b, "public_key=%s\n", hex);
		if (p->flags & LS_WGP_REMOVE) {
			sb_printf(&b, "remove=true\n");
			continue;
		}
		if (p->flags & LS_WGP_UPDATE_ONLY)
			sb_printf(&b, "update_only=true\n");
		if (p->flags & LS_WGP_HAS_ENDPOINT) {
			char ep[LS_ENDPOINT_STRLEN];

			ls_endpoint_format((const struct sockaddr *)&p->endpoint, ep);
			sb_printf(&b, "endpoint=%s\n", ep);
		}
		if (p->flags & LS_WGP_HAS_KEEPALIVE)
			sb_printf(&b, "persistent_keepalive_interval=%u\n", p->keepalive);
		if (p->flags & LS_WGP_REPLACE_ALLOWED)
			sb_printf(&b, "replace_allowed_ips=true\n");
		for (size_t j = 0; j < p->n_allowed; j++) {
			char pf[LS_PREFIX_STRLEN];

			ls_prefix_format(&p->allowed[j], pf);
			sb_printf(&b, "allowed_ip=%s\n", pf);
		}
	}
	sb_printf(&b, "\n");
	if (b.oom) {
		free(b.s);
		return NULL;
	}
	*len = b.len;
	return b.s;
}

static int uapi_set(const struct ls_wg_device *dev)
{
	char *req, *resp = NULL;
	size_t len, rlen;
	int ret;

	req = ls_uapi_build_set(dev, &len);
	if (!req)
		return -ENOMEM;
	ret = uapi_transact(dev->ifname, req, len, &resp, &rlen);
	ls_memzero(req, len);
	free(req);
	if (ret) {
		pr_err("%s: UAPI set failed: %s", dev->ifname, strerror(-ret));
		return ret;
	}
	ret = uapi_errno(resp);
	if (ret)
		pr_err("%s: engine refused the configuration: errno=%d (%s)", dev->ifname, -ret, strerror(-ret));
	free(resp);
	return ret;
}

static int uapi_get(const char *ifname, struct ls_wg_device **out)
{
	char *resp = NULL, err[256] = "";
	size_t rlen;
	int ret;

	*out = NULL;
	ret = uapi_transact(ifname, "get=1\n\n", 7, &resp, &rlen);
	if (ret)
		return ret;
	ret = ls_uapi_parse_get(resp, rlen, out, err, sizeof(err));
	if (ret)
		pr_err("%s: %s", ifname, err);
	else
		snprintf((*out)->ifname, IFNAMSIZ, "%s", ifname);
	ls_memzero(resp, rlen);
	free(resp);
	return ret;
}

static bool uapi_exists(const char *ifname)
{
	int fd = uapi_connect(ifname);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int ls_uapi_engine_process(const char *ifname, char *name, size_t size)
{
	struct ucred cred = { .pid = 0 };
	socklen_t cl = sizeof(cred);
	char path[64];
	int fd = uapi_connect(ifname);
	FILE *f;

	if (name && size)
		name[0] = '\0';
	if (fd < 0)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0)
		cred.pid = 0;
	close(fd);
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)cred.pid);
	if (cred.pid > 0 && name && size && (f = fopen(path, "r"))) {
		if (fgets(name, (int)size, f))
			name[strcspn(name, "\n")] = '\0';
		fclose(f);
	}
	return cred.pid;
}

const char *ls_uapi_engine_path(void)
{
	const char *e = getenv("LIGHTSCALE_WG_USERSPACE");

	if (e && *e)
		return e;
#ifdef LS_HAVE_WGU
	return "/proc/self/exe";
#else
	return "/usr/bin/wireguard-go";
#endif
}

/* Starts the engine for ifname in its own session (double fork), with
 * WG_PROCESS_FOREGROUND=1 so wireguard-go does not daemonise on its own, its output in
 * /run/lightscale/IF.engine.log; waits until the UAPI socket answers. */
static int uapi_spawn(const char *ifname)
{
	const char *path = ls_uapi_engine_path(), *base = strrchr(path, '/');
	char self[PATH_MAX], log[PATH_MAX], sock[PATH_MAX];
	/* a lightscale binary serves it with `wg-userspace IF'; anything else is run the
	 * way wireguard-go is: `PROGRAM -f IF' */
	bool self_engine = !strcmp(path, "/proc/self/exe") || !strcmp(base ? base + 1 : path, "lightscale");
	pid_t pid;
	int status;

	if (!strcmp(path, "/proc/self/exe")) {
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		if (n < 0)
			return -errno;
		self[n] = '\0';
		path = self;
	}
	ls_mkdir_p("/run/lightscale", 0700);
	snprintf(log, sizeof(log), "/run/lightscale/%s.engine.log", ifname);
	ls_uapi_sock_path(ifname, sock, sizeof(sock));
	unlink(sock); /* stale: nothing answers on it (checked by the caller) */
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd;

		setsid();
		if (fork() != 0)
			_exit(0);
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, 0);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		for (int i = 3; i < 1024; i++)
			close(i);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_IGN);
		setenv("WG_PROCESS_FOREGROUND", "1", 1);
		if (self_engine)
			execl(path, path, "wg-userspace", ifname, (char *)NULL);
		else
			execl(path, path, "-f", ifname, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	for (int i = 0; i < 100; i++) {
		if (uapi_exists(ifname) && if_nametoindex(ifname))
			return 0;
		usleep(50 * 1000);
	}
	pr_err("%s: the userspace engine `%s' did not open %s within 5 s (see %s)", ifname, path, sock, log);
	return -ETIMEDOUT;
}

static int uapi_create(const char *ifname, bool *created)
{
	int ret;

	*created = false;
	if (uapi_exists(ifname))
		return 0;
	if (if_nametoindex(ifname)) {
		pr_err("%s: the interface exists but no userspace engine answers on its UAPI socket; "
		       "remove it (lightscale wg-down) or pick another engine", ifname);
		return -EEXIST;
	}
	ret = uapi_spawn(ifname);
	if (!ret)
		*created = true;
	return ret;
}

/* Asks the serving process to stop (its pid from SO_PEERCRED) and waits for the
 * interface to go. */
static int uapi_destroy(const char *ifname)
{
	struct ucred cred = { .pid = 0 };
	socklen_t cl = sizeof(cred);
	char sock[PATH_MAX];
	int fd = uapi_connect(ifname);

	ls_uapi_sock_path(ifname, sock, sizeof(sock));
	if (fd < 0)
		return fd == -ENOENT || fd == -ECONNREFUSED ? -ENODEV : fd;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 && cred.pid > 1)
		kill(cred.pid, SIGTERM);
	close(fd);
	/* the interface goes first, then the process and its socket */
	for (int i = 0; i < 100; i++) {
		if (!if_nametoindex(ifname) && (cred.pid <= 1 || kill(cred.pid, 0) < 0))
			break;
		usleep(50 * 1000);
	}
	if (!uapi_exists(ifname))
		unlink(sock);
	return if_nametoindex(ifname) ? -EBUSY : 0;
}

const struct ls_wg_engine ls_wg_userspace = {
	.kind = LS_ENGINE_USERSPACE,
	.name = "userspace",
	.create = uapi_create,
	.exists = uapi_exists,
	.set = uapi_set,
	.get = uapi_get,
	.destroy = uapi_destroy,
};
