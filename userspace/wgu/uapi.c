// SPDX-License-Identifier: MIT
#include "userspace/wgu/uapi.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "keys.h"
#include "log.h"

void lsw_buf_appendf(struct lsw_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 1024;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *s = realloc(b->s, cap);
		if (!s)
			return;
		b->s = s;
		b->cap = cap;
	}
}

void lsw_buf_free(struct lsw_buf *b)
{
	free(b->s);
	memset(b, 0, sizeof(*b));
}

int lsw_parse_endpoint(const char *s, struct lsw_endpoint *ep)
{
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
	const char *port_s, *end;
	unsigned long port;
	char *pend, *scope;

	memset(ep, 0, sizeof(*ep));
	if (s[0] == '[') {
		end = strchr(s, ']');
		if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = 0;
		port_s = end + 2;
	} else {
		end = strrchr(s, ':');
		if (!end || (size_t)(end - s) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, (size_t)(end - s));
		host[end - s] = 0;
		port_s = end + 1;
	}
	if (!*port_s)
		return -EINVAL;
	errno = 0;
	port = strtoul(port_s, &pend, 10);
	if (errno || *pend || port > 65535 || *port_s == '-' || *port_s == '+')
		return -EINVAL;
	if (s[0] != '[' && inet_pton(AF_INET, host, &ep->in4.sin_addr) == 1) {
		ep->in4.sin_family = AF_INET;
		ep->in4.sin_port = htons((uint16_t)port);
		ep->len = sizeof(ep->in4);
		return 0;
	}
	if (s[0] != '[')
		return -EINVAL;
	scope = strchr(host, '%');
	if (scope) {
		*scope++ = 0;
		ep->in6.sin6_scope_id = if_nametoindex(scope);
		if (!ep->in6.sin6_scope_id) {
			unsigned long id = strtoul(scope, &pend, 10);

			if (*pend || !*scope)
				return -EINVAL;
			ep->in6.sin6_scope_id = (uint32_t)id;
		}
	}
	if (inet_pton(AF_INET6, host, &ep->in6.sin6_addr) != 1)
		return -EINVAL;
	ep->in6.sin6_family = AF_INET6;
	ep->in6.sin6_port = htons((uint16_t)port);
	ep->len = sizeof(ep->in6);
	return 0;
}

void lsw_format_endpoint(const struct lsw_endpoint *ep, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN];

	if (ep->sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &ep->in4.sin_addr, ip, sizeof(ip));
		snprintf(buf, size, "%s:%u", ip, ntohs(ep->in4.sin_port));
	} else if (ep->sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &ep->in6.sin6_addr, ip, sizeof(ip));
		if (ep->in6.sin6_scope_id)
			snprintf(buf, size, "[%s%%%u]:%u", ip, ep->in6.sin6_scope_id, ntohs(ep->in6.sin6_port));
		else
			snprintf(buf, size, "[%s]:%u", ip, ntohs(ep->in6.sin6_port));
	} else {
		snprintf(buf, size, "(none)");
	}
}

/* "10.0.0.0/24", "fd00::/64", or a bare address (a host prefix). */
static int parse_cidr(const char *s, int *family, uint8_t addr[16], unsigned int *cidr)
{
	char ip[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t iplen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long c;
	char *end;

	if (iplen >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, s, iplen);
	ip[iplen] = 0;
	if (inet_pton(AF_INET, ip, addr) == 1) {
		*family = AF_INET;
		*cidr = 32;
	} else if (inet_pton(AF_INET6, ip, addr) == 1) {
		*family = AF_INET6;
		*cidr = 128;
	} else {
		return -EINVAL;
	}
	if (slash) {
		if (!slash[1] || slash[1] == '-' || slash[1] == '+')
			return -EINVAL;
		errno = 0;
		c = strtoul(slash + 1, &end, 10);
		if (errno || *end || c > *cidr)
			return -EINVAL;
		*cidr = (unsigned int)c;
	}
	return 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno || *end || *out > max)
		return -EINVAL;
	return 0;
}

static int parse_bool_true(const char *v)
{
	return strcmp(v, "true") == 0 ? 0 : -EINVAL;
}

/* --- get --- */

struct aip_print {
	struct lsw_buf *out;
};

static void print_aip(void *ctx, int family, const uint8_t *addr, unsigned int cidr)
{
	struct aip_print *ap = ctx;
	char ip[INET6_ADDRSTRLEN];

	inet_ntop(family, addr, ip, sizeof(ip));
	lsw_buf_appendf(ap->out, "allowed_ip=%s/%u\n", ip, cidr);
}

static void uapi_get(struct lsw_device *d, struct lsw_buf *out)
{
	char hex[LS_KEY_HEX_LEN + 1], ep[INET6_ADDRSTRLEN + 32];
	struct lsw_peer *p;

	if (d->id.has_key) {
		ls_key_to_hex(hex, d->id.priv);
		lsw_buf_appendf(out, "private_key=%s\n", hex);
		sodium_memzero(hex, sizeof(hex));
	}
	lsw_buf_appendf(out, "listen_port=%u\n", d->listen_port);
	if (d->fwmark)
		lsw_buf_appendf(out, "fwmark=%u\n", d->fwmark);
	for (p = d->peers; p; p = p->next) {
		struct aip_print ap = { out };

		ls_key_to_hex(hex, p->pub);
		lsw_buf_appendf(out, "public_key=%s\n", hex);
		if (!sodium_is_zero(p->hs.psk, 32)) {
			ls_key_to_hex(hex, p->hs.psk);
			lsw_buf_appendf(out, "preshared_key=%s\n", hex);
			sodium_memzero(hex, sizeof(hex));
		}
		lsw_buf_appendf(out, "protocol_version=1\n");
		if (p->endpoint.len) {
			lsw_format_endpoint(&p->endpoint, ep, sizeof(ep));
			lsw_buf_appendf(out, "endpoint=%s\n", ep);
		}
		lsw_buf_appendf(out, "last_handshake_time_sec=%lld\nlast_handshake_time_nsec=%ld\n",
				(long long)p->last_handshake.tv_sec, p->last_handshake.tv_nsec);
		lsw_buf_appendf(out, "tx_bytes=%" PRIu64 "\nrx_bytes=%" PRIu64 "\n", p->tx_bytes, p->rx_bytes);
		lsw_buf_appendf(out, "persistent_keepalive_interval=%u\n", p->persistent_keepalive);
		lsw_aip_walk_peer(&d->aip, p, print_aip, &ap);
	}
}

static void uapi_stats(struct lsw_device *d, struct lsw_buf *out)
{
	lsw_buf_appendf(out, "pid=%d\npeers=%u\nallowed_ips=%lu\n", (int)getpid(), d->npeers, d->aip.count);
	lsw_buf_appendf(out, "tun_tso=%d\ntun_uso=%d\nudp_gso=%d\nudp_gro=%d\n",
			__atomic_load_n(&d->offload.tun_tso, __ATOMIC_RELAXED),
			__atomic_load_n(&d->offload.tun_uso, __ATOMIC_RELAXED),
			__atomic_load_n(&d->offload.udp_gso, __ATOMIC_RELAXED),
			__atomic_load_n(&d->offload.udp_gro, __ATOMIC_RELAXED));
#define X(n) lsw_buf_appendf(out, #n "=%" PRIu64 "\n", __atomic_load_n(&d->stats.n, __ATOMIC_RELAXED));
	LSW_STATS(X)
#undef X
}

/* --- set --- */

struct set_state {
	struct lsw_device *d;
	bool apply;
	bool in_peer;
	bool peer_skip;       /* update_only on an unknown peer, or removed */
	bool peer_new;        /* created by this request */
	struct lsw_peer *p;   /* the peer being configured (apply pass only) */
	bool port_set;
	uint16_t port;
	bool fwmark_set;
	uint32_t fwmark;
};

static int set_line(struct set_state *st, const char *key, const char *val)
{
	struct lsw_device *d = st->d;
	uint8_t key32[32], addr[16];
	struct lsw_endpoint ep;
	unsigned long n;
	unsigned int cidr;
	int ret = 0, fam;

	if (!st->in_peer) {
		if (!strcmp(key, "private_key")) {
			if (ls_key_from_hex(key32, val))
				return -EINVAL;
			if (st->apply)
				ret = lsw_dev_set_private_key(d, key32);
			sodium_memzero(key32, sizeof(key32));
			return ret;
		}
		if (!strcmp(key, "listen_port")) {
			if (parse_uint(val, 65535, &n))
				return -EINVAL;
			st->port_set = true;
			st->port = (uint16_t)n;
			return 0;
		}
		if (!strcmp(key, "fwmark")) {
			if (parse_uint(val, UINT32_MAX, &n))
				return -EINVAL;
			st->fwmark_set = true;
			st->fwmark = (uint32_t)n;
			return 0;
		}
		if (!strcmp(key, "replace_peers")) {
			if (parse_bool_true(val))
				return -EINVAL;
			if (st->apply)
				while (d->peers)
					lsw_dev_remove_peer(d, d->peers);
			return 0;
		}
		if (strcmp(key, "public_key"))
			return -EINVAL;
	}
	if (!strcmp(key, "public_key")) {
		if (ls_key_from_hex(key32, val))
			return -EINVAL;
		st->in_peer = true;
		st->peer_skip = false;
		st->p = NULL;
		if (st->apply) {
			st->p = lsw_dev_find_peer(d, key32);
			/* Our own public key is never a peer (the kernel ignores it too). */
			if (d->id.has_key && !memcmp(key32, d->id.pub, 32))
				st->peer_skip = true;
		}
		st->peer_new = false;
		if (st->apply && !st->p && !st->peer_skip) {
			st->p = lsw_dev_add_peer(d, key32);
			if (!st->p)
				return -ENOMEM;
			st->peer_new = true;
		}
		sodium_memzero(key32, sizeof(key32));
		return 0;
	}
	/* Peer keys. */
	if (!strcmp(key, "update_only")) {
		if (parse_bool_true(val))
			return -EINVAL;
		/* Only configure the peer if it existed before this request. */
		if (st->apply && st->p && st->peer_new) {
			lsw_dev_remove_peer(d, st->p);
			st->p = NULL;
			st->peer_skip = true;
		}
		return 0;
	}
	if (!strcmp(key, "remove")) {
		if (parse_bool_true(val))
			return -EINVAL;
		if (st->apply && st->p && !st->peer_skip) {
			lsw_dev_remove_peer(d, st->p);
			st->p = NULL;
			st->peer_skip = true;
		}
		return 0;
	}
	if (!strcmp(key, "preshared_key")) {
		if (ls_key_from_hex(key32, val))
			return -EINVAL;
		if (st->apply && st->p && !st->peer_skip)
			lsw_dev_set_psk(d, st->p, sodium_is_zero(key32, 32) ? NULL : key32);
		sodium_memzero(key32, sizeof(key32));
		return 0;
	}
	if (!strcmp(key, "endpoint")) {
		if (lsw_parse_endpoint(val, &ep))
			return -EINVAL;
		if (st->apply && st->p && !st->peer_skip)
			st->p->endpoint = ep;
		return 0;
	}
	if (!strcmp(key, "persistent_keepalive_interval")) {
		if (parse_uint(val, 65535, &n))
			return -EINVAL;
		if (st->apply && st->p && !st->peer_skip)
			lsw_dev_set_keepalive(d, st->p, (uint16_t)n);
		return 0;
	}
	if (!strcmp(key, "replace_allowed_ips")) {
		if (parse_bool_true(val))
			return -EINVAL;
		if (st->apply && st->p && !st->peer_skip)
			lsw_aip_remove_peer(&d->aip, st->p);
		return 0;
	}
	if (!strcmp(key, "allowed_ip")) {
		if (parse_cidr(val, &fam, addr, &cidr))
			return -EINVAL;
		if (st->apply && st->p && !st->peer_skip)
			ret = lsw_aip_insert(&d->aip, fam, addr, cidr, st->p);
		return ret;
	}
	if (!strcmp(key, "protocol_version")) {
		if (strcmp(val, "1"))
			return -EPROTONOSUPPORT;
		return 0;
	}
	return -EINVAL;
}

/* Runs over every line; with apply false it only checks them. */
static int set_pass(struct lsw_device *d, const char *req, size_t len, bool apply, char *bad, size_t badlen,
		    struct set_state *result)
{
	struct set_state st = { .d = d, .apply = apply };
	const char *line = req, *end = req + len;
	int ret = 0;

	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t ll = nl ? (size_t)(nl - line) : (size_t)(end - line);
		char buf[512], *eq;

		if (ll == 0 || ll >= sizeof(buf)) {
			ret = -EINVAL;
			snprintf(bad, badlen, "%.*s", (int)(ll > 64 ? 64 : ll), line);
			break;
		}
		memcpy(buf, line, ll);
		buf[ll] = 0;
		eq = strchr(buf, '=');
		if (!eq) {
			ret = -EINVAL;
			snprintf(bad, badlen, "%.100s", buf);
			break;
		}
		*eq = 0;
		ret = set_line(&st, buf, eq + 1);
		if (ret) {
			/* Never echo key material into logs. */
			if (strstr(buf, "key"))
				snprintf(bad, badlen, "%.40s=(hidden)", buf);
			else
				snprintf(bad, badlen, "%.40s=%.60s", buf, eq + 1);
			break;
		}
		line += ll + 1;
	}
	*result = st;
	return ret;
}

int lsw_uapi_request(struct lsw_device *d, const char *req, size_t len, struct lsw_buf *out)
{
	const char *nl = memchr(req, '\n', len);
	size_t first = nl ? (size_t)(nl - req) : len;
	const char *rest = nl ? nl + 1 : req + len;
	size_t restlen = (size_t)(req + len - rest);
	char bad[128] = "";
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	if (first == 5 && !memcmp(req, "get=1", 5)) {
		if (restlen)
			ret = -EINVAL;
		else
			uapi_get(d, out);
	} else if (first == 7 && !memcmp(req, "stats=1", 7)) {
		uapi_stats(d, out);
	} else if (first == 5 && !memcmp(req, "set=1", 5)) {
		struct set_state st;

		/* Check everything, then bind the socket (which may fail: port in
		 * use), and only then change the device. */
		ret = set_pass(d, rest, restlen, false, bad, sizeof(bad), &st);
		if (!ret && (st.port_set || st.fwmark_set)) {
			uint16_t port = st.port_set ? st.port : d->listen_port;
			uint32_t mark = st.fwmark_set ? st.fwmark : d->fwmark;

			if ((port != d->listen_port || mark != d->fwmark) && d->ops && d->ops->sock_update) {
				ret = d->ops->sock_update(d->ctx, &port, mark);
				if (ret)
					snprintf(bad, sizeof(bad), "listen_port=%u", port);
			}
			if (!ret) {
				d->listen_port = port;
				d->fwmark = mark;
			}
		}
		if (!ret)
			ret = set_pass(d, rest, restlen, true, bad, sizeof(bad), &st);
		if (ret)
			pr_warn("uapi: invalid set line `%s': %s", bad, strerror(-ret));
	} else {
		ret = -EINVAL;
	}
	pthread_mutex_unlock(&d->lock);
	/* Negative, as wireguard-go answers and `wg set` expects. */
	lsw_buf_appendf(out, "errno=%d\n\n", ret);
	return ret;
}
