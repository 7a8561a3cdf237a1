/* SPDX-License-Identifier: MIT */
/* Relay fallback data path: one loopback socket, an address per peer <-> UDP relay / TURN /
 * stream relay.
 * See relayproxy.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "keys.h"
#include "log.h"
#include "relayclient.h"
#include "relayproxy.h"
#include "turnclient.h"
#include "util.h"

enum rp_kind { RP_K_LO = 1, RP_K_STREAM, RP_K_UDP, RP_K_TURN, RP_K_PREF };

/* The two datagram relays a peer is probed through with hellos. */
enum { RP_VIA_UDP = 0, RP_VIA_TURN, RP_VIA_MAX };

struct rp_reach {
	uint64_t heard;   /* last datagram from the peer this way */
	uint64_t sent;    /* last hello request sent */
	uint64_t pending; /* first hello request not answered yet; 0: none */
};

/* What an epoll event points at. */
struct rp_handle {
	enum rp_kind kind;
};

enum rp_state { RP_IDLE = 0, RP_CONNECTING, RP_UP };

/* Why a probe through the stream relay was refused (relayproxy.h, "Probes"). */
enum { RP_REJ_UNSEALED, RP_REJ_MALFORMED, RP_REJ_UNKNOWN, RP_REJ_UNAUTH, RP_REJ_REPLAYED, RP_REJ_MAX };
static const char *const rej_names[RP_REJ_MAX] = {
	[RP_REJ_UNSEALED] = "unsealed", [RP_REJ_MALFORMED] = "malformed", [RP_REJ_UNKNOWN] = "unknown_peer",
	[RP_REJ_UNAUTH] = "unauthenticated", [RP_REJ_REPLAYED] = "replayed",
};

struct rp_counter {
	uint64_t packets, bytes;
};

/* A relayed peer that has a TURN relayed address (from its probe). */
struct rp_tpeer {
	struct sockaddr_storage addr;
	struct rp_reach reach;
};

/* A relayed peer's traffic, from its first packet (or drop) on. */
struct rp_stats {
	struct rp_counter tx[LS_RPROXY_PATH_MAX - 1], rx[LS_RPROXY_PATH_MAX - 1]; /* [path - 1] */
	uint64_t dropped;
};

/* A relayed peer: 72 bytes, in the slot of its loopback address (ls_rproxy.slots, slot
 * s is LS_RPROXY_LO_NET + s). What most peers never need lives apart: the TURN state of
 * a peer with a TURN address, the counters of a peer that carried traffic. At 10,000
 * idle relayed peers this was 224 bytes of malloc'd record each, plus a pointer in three
 * arrays (the peer list, the address index, the key table). */
struct rp_peer {
	uint8_t key[LSR_KEY_LEN];
	struct rp_reach udp;   /* through the UDP relay */
	struct rp_tpeer *turn; /* NULL: no TURN address */
	struct rp_stats *st;   /* NULL: nothing carried or dropped yet */
};

struct rp_relay {
	char addr[LS_RPROXY_ENDPOINT_LEN];
	struct sockaddr_storage sa;
	socklen_t sa_len;
	unsigned failures;
	uint64_t retry_at;
	uint64_t connects, disconnects;
	char last_error[96];
};

struct rp_turn {
	char *url, *username, *credential;
};

struct ls_rproxy {
	int epfd;
	uint8_t wg_pub[LSR_KEY_LEN];
	struct ls_relay_identity id;
	uint16_t wg_port;
	uint32_t fwmark;
	ls_rproxy_probe_cb on_probe;
	ls_rproxy_pair_cb pair;
	void *cb_ctx;

	/* The peers, by the slot of their loopback address: slot s (1..LS_RPROXY_LO_MAX_PEERS)
	 * is LS_RPROXY_LO_NET + s, its record slots[s], in use when bit s of used is set.
	 * slots is one anonymous mapping for the whole pool, made with the first peer: its
	 * records never move, and only the pages of slots in use (below lo_next) are ever
	 * touched. Freed slots are reused first (lo_free, a stack), then lo_next. */
	struct rp_peer *slots;
	uint64_t used[(LS_RPROXY_LO_MAX_PEERS + 1 + 63) / 64];
	size_t n_peers;
	/* the same peers by key: open addressing with linear probing, slot numbers (0: empty),
	 * ht_cap a power of two at least twice n_peers (a relay frame and the agent's path
	 * queries look a peer up by key; a scan cost 10,000 key compares each at 10,000
	 * relayed peers) */
	uint32_t *ht;
	size_t ht_cap;

	/* The loopback socket (-1 until the first peer). */
	struct rp_handle lo_h;
	int lo_fd;
	uint16_t lo_port;
	uint32_t lo_next;
	uint32_t *lo_free;
	uint32_t n_lo_free, cap_lo_free;

	/* Stream relays: one connection at a time, to cur. */
	struct rp_relay stream[LS_RPROXY_MAX_RELAYS];
	size_t n_stream;
	struct rp_handle stream_h;
	int stream_cur; /* -1: none */
	enum rp_state stream_state;
	struct ls_relay_stream *rs; /* once accepted */
	uint32_t rs_events;
	/* The handshake, done here on a socket marked before connect() (the mark
	 * must route the SYN too), then handed to ls_relay_stream_adopt(). */
	int hs_fd;
	bool hs_connected;
	uint8_t hs_in[LSR_FRAME_HDR_LEN + LSR_CLOSE_MAX_LEN];
	size_t hs_in_len;
	uint8_t hs_out[LSR_FRAME_HDR_LEN + LSR_CLIENT_HELLO_LEN];
	size_t hs_out_len, hs_out_off;
	struct sockaddr_storage stream_observed;
	/* Back to a preferred (earlier) stream relay: a plain TCP connect to it first,
	 * so an unreachable one costs nothing; only then is the current one left. */
	struct rp_handle pref_h;
	int pref_fd, pref_idx;
	uint64_t pref_next, pref_deadline, prefer_ms;
	uint64_t stream_deadline, stream_last_rx, stream_last_ping, stream_since;
	uint32_t stream_ping_s;

	/* UDP relays: one registration at a time, at cur. */
	struct rp_relay udp[LS_RPROXY_MAX_RELAYS];
	size_t n_udp;
	struct rp_handle udp_h;
	int udp_cur;
	int udp_fd;
	enum rp_state udp_state;
	uint64_t udp_deadline, udp_resend_at, udp_refresh_at, udp_expires_at, udp_since;
	uint64_t udp_reg_ts, udp_reg_sent;
	struct sockaddr_storage udp_observed;

	struct rp_turn *turn;
	size_t n_turn;
	/* TURN: lib/turnclient.h blocks, so a worker thread owns the TURN socket and
	 * talks to us over a SOCK_SEQPACKET pair (struct rp_tmsg + payload). */
	struct rp_handle turn_h;
	int turn_sock; /* our end; -1: no worker */
	enum rp_state turn_state;
	struct sockaddr_storage turn_relayed;
	uint64_t turn_retry_at;
	uint64_t turn_round_at; /* our relayed address last sent to the peers not reached with it */
	unsigned turn_failures;
	char turn_error[96];

	uint64_t now;
	struct {
		uint64_t probes_sent, probes_received, probes_bad, unknown_peer, bad_frames, peer_gone,
			stream_send_full, hellos_sent, hellos_received, turn_queue_full, lo_bad_source, lo_no_peer;
		uint64_t probe_rej[RP_REJ_MAX]; /* refused probes by reason; their sum is probes_bad */
	} c;
};

static const char *const path_names[LS_RPROXY_PATH_MAX] = {
	[LS_RPROXY_PATH_NONE] = "none",
	[LS_RPROXY_PATH_UDP] = "udp",
	[LS_RPROXY_PATH_TURN] = "turn",
	[LS_RPROXY_PATH_STREAM] = "stream",
};

/* ------------------------------------------------------------- pure pieces */

const char *ls_rproxy_path_str(enum ls_rproxy_path p)
{
	return (unsigned)p < LS_RPROXY_PATH_MAX ? path_names[p] : "unknown";
}

enum ls_rproxy_path ls_rproxy_choose_path(bool udp_registered, bool udp_confirmed, bool turn_ready,
					  bool stream_up)
{
	if (udp_registered && udp_confirmed)
		return LS_RPROXY_PATH_UDP;
	if (turn_ready)
		return LS_RPROXY_PATH_TURN;
	if (stream_up)
		return LS_RPROXY_PATH_STREAM;
	if (udp_registered)
		return LS_RPROXY_PATH_UDP; /* unconfirmed, but nothing better */
	return LS_RPROXY_PATH_NONE;
}

uint64_t ls_rproxy_backoff_ms(unsigned failures, uint32_t jitter)
{
	uint64_t base = LS_RPROXY_BACKOFF_MIN_MS;

	if (failures == 0)
		return 0;
	for (unsigned i = 1; i < failures && base < LS_RPROXY_BACKOFF_MAX_MS; i++)
		base *= 2;
	if (base > LS_RPROXY_BACKOFF_MAX_MS)
		base = LS_RPROXY_BACKOFF_MAX_MS;
	return base + jitter % (base / 4 + 1);
}

int ls_rproxy_pick_relay(const uint64_t *retry_at, size_t n, uint64_t now_ms)
{
	for (size_t i = 0; i < n; i++)
		if (retry_at[i] <= now_ms)
			return (int)i;
	return -1;
}

int ls_rproxy_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *h;
	size_t hlen;
	char *end;
	long port;

	if (!s || !*s)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon)
			return -EINVAL;
		h = s;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = 0;
	if (!colon[1] || colon[1] == '-' || colon[1] == '+')
		return -EINVAL;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || port < 1 || port > 65535)
		return -EINVAL;
	if (s[0] != '[' && inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return 0;
	}
	if (s[0] == '[' && inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	return -EINVAL;
}

static void addr_str(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(buf, size, "%s:%u", ip, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, size, "[%s]:%u", ip, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, size, "none");
	}
}

/* ------------------------------------------------------------------ helpers */

static int ep_set(struct ls_rproxy *rp, int op, int fd, uint32_t events, struct rp_handle *h)
{
	struct epoll_event ev = { .events = events, .data.ptr = h };

	return epoll_ctl(rp->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

static void set_mark(struct ls_rproxy *rp, int fd)
{
	if (rp->fwmark && setsockopt(fd, SOL_SOCKET, SO_MARK, &rp->fwmark, sizeof(rp->fwmark)) < 0)
		pr_warn("relay proxy: SO_MARK %u: %s", rp->fwmark, strerror(errno));
}

static uint32_t rnd32(void)
{
	return randombytes_random();
}

static void relay_failed(struct rp_relay *r, uint64_t now, const char *what, int err)
{
	r->failures++;
	r->retry_at = now + ls_rproxy_backoff_ms(r->failures, rnd32());
	snprintf(r->last_error, sizeof(r->last_error), "%s: %s", what, strerror(err < 0 ? -err : err));
}

static struct rp_peer *slot_peer(const struct ls_rproxy *rp, uint32_t s)
{
	return rp->used[s / 64] >> (s % 64) & 1 ? &rp->slots[s] : NULL;
}

static uint32_t peer_slot(const struct ls_rproxy *rp, const struct rp_peer *p)
{
	return (uint32_t)(p - rp->slots);
}

/* Every peer in use, by slot: FOR_EACH_PEER(rp, p) { ... } (break works). */
#define FOR_EACH_PEER(rp, p) \
	for (uint32_t fe_s_ = 1; fe_s_ < (rp)->lo_next; fe_s_++) \
		if (((p) = slot_peer((rp), fe_s_)))

/* All 32 bytes mixed: keys come from the netmap, and keys that differ only in a few bytes
 * (the benchmark's, or a hostile control plane's) must not pile into one probe run. */
static size_t key_slot(const struct ls_rproxy *rp, const uint8_t key[LSR_KEY_LEN])
{
	const uint64_t k = 0x9e3779b97f4a7c15ull;
	uint64_t w[4], h = 0;

	memcpy(w, key, sizeof(w));
	for (int i = 0; i < 4; i++)
		h = (h ^ w[i]) * k;
	return (size_t)(h ^ (h >> 32)) & (rp->ht_cap - 1);
}

static struct rp_peer *peer_find(const struct ls_rproxy *rp, const uint8_t key[LSR_KEY_LEN])
{
	if (!rp->ht_cap)
		return NULL;
	for (size_t i = key_slot(rp, key);; i = (i + 1) & (rp->ht_cap - 1)) {
		uint32_t s = rp->ht[i];

		if (!s)
			return NULL;
		if (!memcmp(rp->slots[s].key, key, LSR_KEY_LEN))
			return &rp->slots[s];
	}
}

static void ht_put(struct ls_rproxy *rp, uint32_t s)
{
	size_t i = key_slot(rp, rp->slots[s].key);

	while (rp->ht[i])
		i = (i + 1) & (rp->ht_cap - 1);
	rp->ht[i] = s;
}

/* room for one more peer: the table rebuilt at twice the size when it would be half full */
static int ht_reserve(struct ls_rproxy *rp)
{
	size_t cap = rp->ht_cap ? rp->ht_cap : 16;
	struct rp_peer *p;
	uint32_t *ht;

	while ((rp->n_peers + 1) * 2 > cap)
		cap *= 2;
	if (cap == rp->ht_cap)
		return 0;
	ht = calloc(cap, sizeof(*ht));
	if (!ht)
		return -ENOMEM;
	free(rp->ht);
	rp->ht = ht;
	rp->ht_cap = cap;
	FOR_EACH_PEER(rp, p)
		ht_put(rp, peer_slot(rp, p));
	return 0;
}

/* Removes p; the entries after it in its probe run move back where their own probe would
 * find them (no tombstones). */
static void ht_del(struct ls_rproxy *rp, const struct rp_peer *p)
{
	size_t mask = rp->ht_cap - 1, i = key_slot(rp, p->key), j;
	uint32_t s = peer_slot(rp, p);

	while (rp->ht[i] != s)
		i = (i + 1) & mask;
	for (j = (i + 1) & mask; rp->ht[j]; j = (j + 1) & mask) {
		size_t k = key_slot(rp, rp->slots[rp->ht[j]].key);

		/* ht[j] stays when its home k lies cyclically in (i, j] */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		rp->ht[i] = rp->ht[j];
		i = j;
	}
	rp->ht[i] = 0;
}

/* How the peer was heard through the UDP relay or TURN; NULL: no TURN address. */
static struct rp_reach *reach_of(struct rp_peer *p, int via)
{
	return via == RP_VIA_UDP ? &p->udp : p->turn ? &p->turn->reach : NULL;
}

/* The peer's counters, made at its first packet; NULL when out of memory (not counted). */
static struct rp_stats *stats_of(struct rp_peer *p)
{
	if (!p->st)
		p->st = calloc(1, sizeof(*p->st));
	return p->st;
}

static bool udp_up(const struct ls_rproxy *rp)
{
	return rp->udp_state == RP_UP;
}

/* Heard recently, and no hello request unanswered for long. */
static bool reach_ok(const struct ls_rproxy *rp, const struct rp_reach *r)
{
	if (!r->heard || rp->now - r->heard >= LS_RPROXY_UDP_CONFIRM_MS)
		return false;
	return !r->pending || rp->now - r->pending < LS_RPROXY_HELLO_TIMEOUT_MS;
}

static bool peer_udp_confirmed(const struct ls_rproxy *rp, const struct rp_peer *p)
{
	return reach_ok(rp, &p->udp);
}

static bool peer_turn_ready(const struct ls_rproxy *rp, const struct rp_peer *p)
{
	return rp->turn_state == RP_UP && p->turn && reach_ok(rp, &p->turn->reach);
}

static enum ls_rproxy_path peer_path(const struct ls_rproxy *rp, const struct rp_peer *p)
{
	return ls_rproxy_choose_path(udp_up(rp), peer_udp_confirmed(rp, p), peer_turn_ready(rp, p),
				     rp->stream_state == RP_UP);
}

static socklen_t sa_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static int turn_cmd(struct ls_rproxy *rp, uint8_t type, const struct sockaddr_storage *addr, const void *data,
		    size_t len);

static struct in_addr peer_lo_addr(const struct ls_rproxy *rp, const struct rp_peer *p)
{
	return (struct in_addr){ .s_addr = htonl(LS_RPROXY_LO_NET + peer_slot(rp, p)) };
}

/* Delivers a relayed datagram to WireGuard (127.0.0.1:wg_port) from the peer's
 * loopback address, the endpoint WireGuard has for it. */
static void deliver(struct ls_rproxy *rp, struct rp_peer *p, enum ls_rproxy_path path, const uint8_t *data,
		    size_t len)
{
	struct sockaddr_in wg = { .sin_family = AF_INET, .sin_port = htons(rp->wg_port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	union {
		char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
		struct cmsghdr align;
	} cm = { 0 };
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr mh = { .msg_name = &wg, .msg_namelen = sizeof(wg), .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	struct in_pktinfo pi = { .ipi_spec_dst = peer_lo_addr(rp, p) };
	struct rp_stats *st;

	c->cmsg_level = IPPROTO_IP;
	c->cmsg_type = IP_PKTINFO;
	c->cmsg_len = CMSG_LEN(sizeof(pi));
	memcpy(CMSG_DATA(c), &pi, sizeof(pi));
	if (rp->lo_fd < 0 || sendmsg(rp->lo_fd, &mh, MSG_DONTWAIT) < 0) {
		if ((st = stats_of(p)))
			st->dropped++;
		return;
	}
	if ((st = stats_of(p))) {
		st->rx[path - 1].packets++;
		st->rx[path - 1].bytes += len;
	}
}

/* ---------------------------------------------------------------- UDP relay */

static void udp_close(struct ls_rproxy *rp)
{
	if (rp->udp_fd >= 0)
		close(rp->udp_fd); /* leaves the epoll set with it */
	rp->udp_fd = -1;
	rp->udp_state = RP_IDLE;
	rp->udp_cur = -1;
	/* Whoever we heard there must be heard again on the next registration. */
	struct rp_peer *p;

	FOR_EACH_PEER(rp, p)
		memset(&p->udp, 0, sizeof(p->udp));
}

static void udp_send_register(struct ls_rproxy *rp)
{
	uint8_t buf[LSR_UDP_REGISTER_LEN];
	uint64_t ts = ls_relay_now_unix_ms();
	int n;

	if (ts <= rp->udp_reg_ts)
		ts = rp->udp_reg_ts + 1; /* strictly newer, or the relay calls it a replay */
	rp->udp_reg_ts = ts;
	rp->udp_reg_sent = rp->now;
	n = ls_relay_udp_build_register(buf, sizeof(buf), &rp->id, ts);
	if (n > 0 && send(rp->udp_fd, buf, (size_t)n, MSG_DONTWAIT) < 0)
		pr_debug("relay proxy: register to %s: %s", rp->udp[rp->udp_cur].addr, strerror(errno));
	rp->udp_resend_at = rp->now + 800;
}

static void udp_fail(struct ls_rproxy *rp, const char *what, int err)
{
	struct rp_relay *r = &rp->udp[rp->udp_cur];

	if (rp->udp_state == RP_UP)
		r->disconnects++;
	pr_info("relay proxy: UDP relay %s: %s: %s", r->addr, what, strerror(err < 0 ? -err : err));
	relay_failed(r, rp->now, what, err);
	udp_close(rp);
}

static void udp_start(struct ls_rproxy *rp, int i)
{
	struct rp_relay *r = &rp->udp[i];
	int fd = socket(r->sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		relay_failed(r, rp->now, "socket", -errno);
		return;
	}
	set_mark(rp, fd);
	/* Connected: ICMP errors from the relay come back as ECONNREFUSED. */
	if (connect(fd, (struct sockaddr *)&r->sa, r->sa_len) < 0 ||
	    ep_set(rp, EPOLL_CTL_ADD, fd, EPOLLIN, &rp->udp_h) < 0) {
		int err = -errno;

		close(fd);
		relay_failed(r, rp->now, "connect", err);
		return;
	}
	rp->udp_fd = fd;
	rp->udp_cur = i;
	rp->udp_state = RP_CONNECTING;
	rp->udp_deadline = rp->now + LS_RPROXY_REGISTER_TIMEOUT_MS;
	udp_send_register(rp);
}

/* A datagram to the peer through the UDP relay or TURN. */
static int via_send(struct ls_rproxy *rp, struct rp_peer *p, int via, const void *buf, size_t n)
{
	if (via == RP_VIA_UDP) {
		const struct rp_relay *r;

		if (rp->udp_fd < 0 || rp->udp_cur < 0)
			return -ENOTCONN;
		r = &rp->udp[rp->udp_cur];
		return ls_relay_udp_send(rp->udp_fd, (struct sockaddr *)&r->sa, r->sa_len, p->key, buf, n);
	}
	if (rp->turn_state != RP_UP || !p->turn)
		return -ENOTCONN;
	return turn_cmd(rp, 'S', &p->turn->addr, buf, n);
}

static void send_hello(struct ls_rproxy *rp, struct rp_peer *p, int via, uint8_t kind)
{
	uint8_t h[LS_RPROXY_HELLO_LEN] = { 0 };
	struct rp_reach *r = reach_of(p, via);

	memcpy(h, LS_RPROXY_HELLO_MAGIC, 4);
	h[4] = kind;
	if (via_send(rp, p, via, h, sizeof(h)) == 0)
		rp->c.hellos_sent++;
	if (kind != LS_RPROXY_HELLO_REQ || !r)
		return;
	r->sent = rp->now;
	if (!r->pending)
		r->pending = rp->now;
}

/* A datagram from the peer through the UDP relay or TURN: a hello, or for WireGuard. */
static void via_input(struct ls_rproxy *rp, struct rp_peer *p, int via, const uint8_t *data, size_t len)
{
	struct rp_reach *r = reach_of(p, via);

	if (r) {
		r->heard = rp->now;
		r->pending = 0;
	}
	if (len == LS_RPROXY_HELLO_LEN && !memcmp(data, LS_RPROXY_HELLO_MAGIC, 4)) {
		rp->c.hellos_received++;
		if (data[4] == LS_RPROXY_HELLO_REQ)
			send_hello(rp, p, via, LS_RPROXY_HELLO_REPLY);
		return;
	}
	if (len >= 1 && data[0] == 0xff)
		return; /* ours, but not a hello we know */
	deliver(rp, p, via == RP_VIA_UDP ? LS_RPROXY_PATH_UDP : LS_RPROXY_PATH_TURN, data, len);
}

/* Hellos: more often to peers reached this way, so both sides notice a lost path soon. */
static void hellos_tick(struct ls_rproxy *rp, int via)
{
	struct rp_peer *p;

	FOR_EACH_PEER(rp, p) {
		struct rp_reach *r = reach_of(p, via);

		if (r && rp->now - r->sent >= (reach_ok(rp, r) ? LS_RPROXY_HELLO_ACTIVE_MS : LS_RPROXY_HELLO_MS))
			send_hello(rp, p, via, LS_RPROXY_HELLO_REQ);
	}
}

static void udp_registered(struct ls_rproxy *rp, const struct ls_relay_udp_msg *m)
{
	struct rp_relay *r = &rp->udp[rp->udp_cur];
	uint32_t life = m->lifetime_s ? m->lifetime_s : 30;

	if (m->ts_ms != rp->udp_reg_ts)
		return; /* an answer to an older registration */
	if (rp->udp_state != RP_UP) {
		pr_info("relay proxy: registered on UDP relay %s", r->addr);
		r->connects++;
		rp->udp_since = rp->now;
		rp->udp_state = RP_UP;
		/* Ask every peer at once whether it is there too. */
		struct rp_peer *p;

		FOR_EACH_PEER(rp, p)
			send_hello(rp, p, RP_VIA_UDP, LS_RPROXY_HELLO_REQ);
	}
	r->failures = 0;
	r->retry_at = 0;
	rp->udp_observed = m->observed;
	rp->udp_refresh_at = rp->now + (uint64_t)life * 1000 / 3;
	rp->udp_expires_at = rp->now + (uint64_t)life * 1000;
	rp->udp_resend_at = 0;
}

static void udp_input(struct ls_rproxy *rp, const uint8_t *buf, size_t n)
{
	struct ls_relay_udp_msg m;
	struct rp_peer *p;

	if (ls_relay_udp_parse(buf, n, &m)) {
		rp->c.bad_frames++;
		return;
	}
	switch (m.type) {
	case LSR_UDP_REGISTERED:
		if (!memcmp(m.key, rp->wg_pub, LSR_KEY_LEN))
			udp_registered(rp, &m);
		return;
	case LSR_UDP_REJECTED:
		if (m.ts_ms == rp->udp_reg_ts) {
			pr_warn("relay proxy: UDP relay %s refused us: %s", rp->udp[rp->udp_cur].addr,
				ls_relay_reason_str(m.reason));
			udp_fail(rp, ls_relay_reason_str(m.reason), EACCES);
		}
		return;
	case LSR_UDP_DATA:
		break;
	default:
		return;
	}
	p = peer_find(rp, m.key);
	if (!p) {
		rp->c.unknown_peer++;
		return;
	}
	via_input(rp, p, RP_VIA_UDP, m.payload, m.payload_len);
}

static void udp_readable(struct ls_rproxy *rp)
{
	uint8_t buf[LSR_UDP_DATA_MAX_LEN];

	for (int i = 0; i < 64 && rp->udp_fd >= 0; i++) {
		ssize_t n = recv(rp->udp_fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECONNREFUSED)
				udp_fail(rp, "relay unreachable", -errno);
			return;
		}
		udp_input(rp, buf, (size_t)n);
	}
}

static void udp_tick(struct ls_rproxy *rp)
{
	if (rp->udp_state == RP_IDLE) {
		uint64_t retry[LS_RPROXY_MAX_RELAYS];
		int i;

		for (size_t k = 0; k < rp->n_udp; k++)
			retry[k] = rp->udp[k].retry_at;
		i = ls_rproxy_pick_relay(retry, rp->n_udp, rp->now);
		if (i >= 0)
			udp_start(rp, i);
		return;
	}
	if (rp->udp_state == RP_CONNECTING) {
		if (rp->now >= rp->udp_deadline)
			udp_fail(rp, "no answer to the registration", ETIMEDOUT);
		else if (rp->now >= rp->udp_resend_at)
			udp_send_register(rp);
		return;
	}
	/* Up: refresh at a third of the lifetime, resend until answered, give up at expiry. */
	if (rp->now >= rp->udp_expires_at) {
		udp_fail(rp, "registration expired unanswered", ETIMEDOUT);
		return;
	}
	if (rp->now >= rp->udp_refresh_at && rp->now >= rp->udp_resend_at)
		udp_send_register(rp);
	/* A peer that answered hellos stopped: perhaps the relay restarted and forgot us
	 * (it drops what unregistered addresses send). Register again, at most every 5 s. */
	else if (rp->now - rp->udp_reg_sent >= LS_RPROXY_REREGISTER_MS) {
		struct rp_peer *p;

		FOR_EACH_PEER(rp, p) {
			const struct rp_reach *r = &p->udp;

			if (r->heard && rp->now - r->heard < 60000 && r->pending &&
			    rp->now - r->pending >= LS_RPROXY_HELLO_TIMEOUT_MS) {
				udp_send_register(rp);
				break;
			}
		}
	}
	hellos_tick(rp, RP_VIA_UDP);
}

/* --------------------------------------------------------------------- TURN */

/* One message between us and the TURN worker; a payload follows for 'S' and 'D'.
 *   us -> worker: 'P' permit addr, 'S' send payload to addr
 *   worker -> us: 'A' allocated (addr: relayed, lifetime), 'F' failed (err),
 *                 'K' permission installed for addr, 'E' permission refused (err),
 *                 'D' data from addr */
struct rp_tmsg {
	uint8_t type;
	uint8_t pad[3];
	int32_t err;
	uint32_t lifetime;
	struct sockaddr_storage addr;
};

struct rp_tworker {
	int sock; /* the worker's end */
	int fd;   /* UDP socket to the TURN server */
	struct sockaddr_storage server;
	char *user, *pass;
};

enum { RP_TURN_MAX_PERMS = 256, RP_TURN_PERM_REFRESH_MS = 240000 };

static void tw_msg(int sock, uint8_t type, int err, const struct sockaddr_storage *a, uint32_t lifetime,
		   const void *data, size_t len)
{
	struct rp_tmsg m = { .type = type, .err = err, .lifetime = lifetime };
	struct iovec iov[2] = { { &m, sizeof(m) }, { (void *)data, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = data ? 2 : 1 };

	if (a)
		m.addr = *a;
	/* Data may be dropped when our owner is slow; what it must know may wait. */
	sendmsg(sock, &mh, (type == 'D' ? MSG_DONTWAIT : 0) | MSG_NOSIGNAL);
}

static void tw_free(struct rp_tworker *w)
{
	close(w->sock);
	close(w->fd);
	free(w->user);
	if (w->pass)
		ls_memzero(w->pass, strlen(w->pass));
	free(w->pass);
	free(w);
}

static void *tw_main(void *arg)
{
	struct rp_tworker *w = arg;
	size_t cap = sizeof(struct rp_tmsg) + LSR_MAX_PAYLOAD;
	uint8_t *cmd = malloc(cap), *in = malloc(LSR_MAX_PAYLOAD + 64);
	struct sockaddr_storage *perms = calloc(RP_TURN_MAX_PERMS, sizeof(*perms));
	uint64_t *perm_at = calloc(RP_TURN_MAX_PERMS, sizeof(*perm_at));
	uint64_t refresh_at = 0, retry_at = 0;
	unsigned fails = 0;
	size_t n_perms = 0;
	struct ls_turn *t = NULL;

	if (!cmd || !in || !perms || !perm_at)
		goto out;
	for (;;) {
		struct pollfd pf[2] = { { .fd = w->sock, .events = POLLIN }, { .fd = w->fd, .events = POLLIN } };
		uint64_t now = ls_now_ms();
		int err;

		if (!t && now >= retry_at) {
			err = ls_turn_allocate(&t, w->fd, (struct sockaddr *)&w->server, sa_len(&w->server), w->user,
					       w->pass, 3000);
			if (err) {
				t = NULL;
				fails++;
				retry_at = ls_now_ms() + ls_rproxy_backoff_ms(fails, randombytes_random());
				tw_msg(w->sock, 'F', err, NULL, 0, NULL, 0);
			} else {
				uint32_t life = ls_turn_lifetime(t) ? ls_turn_lifetime(t) : 600;

				fails = 0;
				n_perms = 0;
				refresh_at = ls_now_ms() + (uint64_t)life * 500;
				tw_msg(w->sock, 'A', 0, ls_turn_relayed(t), life, NULL, 0);
			}
			continue;
		}
		if (!t)
			pf[1].events = 0;
		if (poll(pf, 2, 500) < 0 && errno != EINTR)
			break;
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(w->sock, cmd, cap, MSG_DONTWAIT);
			const struct rp_tmsg *m = (const void *)cmd;

			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				break; /* our owner closed its end: stop */
			if (n >= (ssize_t)sizeof(*m) && t && m->type == 'S') {
				ls_turn_send(t, (const struct sockaddr *)&m->addr, sa_len(&m->addr), cmd + sizeof(*m),
					     (size_t)n - sizeof(*m));
			} else if (n >= (ssize_t)sizeof(*m) && t && m->type == 'P') {
				size_t i;

				for (i = 0; i < n_perms; i++)
					if (ls_sockaddr_equal((const struct sockaddr *)&perms[i],
							      (const struct sockaddr *)&m->addr))
						break;
				err = ls_turn_create_permission(t, (const struct sockaddr *)&m->addr, sa_len(&m->addr),
								2000);
				if (!err && i == n_perms && n_perms < RP_TURN_MAX_PERMS)
					perms[n_perms++] = m->addr;
				if (!err && i < RP_TURN_MAX_PERMS)
					perm_at[i] = ls_now_ms();
				tw_msg(w->sock, err ? 'E' : 'K', err, &m->addr, 0, NULL, 0);
			}
		}
		if (t && (pf[1].revents & POLLIN)) {
			for (int i = 0; i < 64; i++) {
				struct sockaddr_storage from;
				const uint8_t *data;
				size_t dlen;
				ssize_t n = recv(w->fd, in, LSR_MAX_PAYLOAD + 64, MSG_DONTWAIT);

				if (n < 0)
					break;
				if (ls_turn_parse_data(t, in, (size_t)n, &from, &data, &dlen) == 0 && dlen > 0)
					tw_msg(w->sock, 'D', 0, &from, 0, data, dlen);
			}
		}
		now = ls_now_ms();
		if (t && now >= refresh_at) {
			err = ls_turn_refresh(t, 600, 2000);
			if (err) {
				ls_turn_free(t, 0);
				t = NULL;
				retry_at = 0;
				tw_msg(w->sock, 'F', err, NULL, 0, NULL, 0);
				continue;
			}
			refresh_at = ls_now_ms() + 300000;
		}
		for (size_t i = 0; t && i < n_perms; i++)
			if (now - perm_at[i] >= RP_TURN_PERM_REFRESH_MS &&
			    ls_turn_create_permission(t, (const struct sockaddr *)&perms[i], sa_len(&perms[i]), 2000) == 0)
				perm_at[i] = ls_now_ms();
	}
out:
	if (t)
		ls_turn_free(t, 500);
	free(cmd);
	free(in);
	free(perms);
	free(perm_at);
	tw_free(w);
	return NULL;
}

/* "turn:HOST:PORT[?transport=udp]" with a numeric host; the port defaults to 3478. */
static int turn_parse_url(const char *url, struct sockaddr_storage *ss)
{
	char buf[LS_RPROXY_ENDPOINT_LEN + 8];
	socklen_t len;
	char *q;

	if (strncmp(url, "turn:", 5))
		return -EINVAL; /* turns: (TLS) is not supported */
	snprintf(buf, sizeof(buf), "%s", url + 5);
	q = strchr(buf, '?');
	if (q) {
		if (strcmp(q, "?transport=udp"))
			return -EINVAL;
		*q = 0;
	}
	if (ls_rproxy_parse_addr(buf, ss, &len) == 0)
		return 0;
	if (strlen(buf) + 6 < sizeof(buf)) {
		strcat(buf, ":3478");
		return ls_rproxy_parse_addr(buf, ss, &len);
	}
	return -EINVAL;
}

static int turn_cmd(struct ls_rproxy *rp, uint8_t type, const struct sockaddr_storage *addr, const void *data,
		    size_t len)
{
	struct rp_tmsg m = { .type = type, .addr = *addr };
	struct iovec iov[2] = { { &m, sizeof(m) }, { (void *)data, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = data ? 2 : 1 };

	if (rp->turn_sock < 0)
		return -ENOTCONN;
	if (sendmsg(rp->turn_sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		if (errno == EAGAIN)
			rp->c.turn_queue_full++;
		return -errno;
	}
	return 0;
}

static void turn_stop(struct ls_rproxy *rp)
{
	if (rp->turn_sock >= 0)
		close(rp->turn_sock); /* the worker sees its end close and exits on its own */
	rp->turn_sock = -1;
	rp->turn_state = RP_IDLE;
	struct rp_peer *p;

	FOR_EACH_PEER(rp, p)
		if (p->turn)
			memset(&p->turn->reach, 0, sizeof(p->turn->reach));
}

static void turn_start(struct ls_rproxy *rp)
{
	struct rp_tworker *w = calloc(1, sizeof(*w));
	int sv[2] = { -1, -1 }, err;
	pthread_attr_t attr;
	pthread_t th;

	if (!w)
		return;
	w->fd = -1;
	err = turn_parse_url(rp->turn[0].url, &w->server);
	if (err) {
		snprintf(rp->turn_error, sizeof(rp->turn_error), "unsupported TURN URL");
		rp->turn_retry_at = UINT64_MAX; /* until the list changes */
		free(w);
		return;
	}
	w->fd = socket(w->server.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	w->user = strdup(rp->turn[0].username);
	w->pass = strdup(rp->turn[0].credential);
	if (w->fd < 0 || !w->user || !w->pass ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		err = -errno;
		goto fail;
	}
	set_mark(rp, w->fd);
	w->sock = sv[1];
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	err = ep_set(rp, EPOLL_CTL_ADD, sv[0], EPOLLIN, &rp->turn_h);
	if (err)
		goto fail;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = -pthread_create(&th, &attr, tw_main, w);
	pthread_attr_destroy(&attr);
	if (err)
		goto fail;
	rp->turn_sock = sv[0];
	rp->turn_state = RP_CONNECTING;
	return;
fail:
	snprintf(rp->turn_error, sizeof(rp->turn_error), "worker: %s", strerror(-err));
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (w->fd >= 0)
		close(w->fd);
	free(w->user);
	free(w->pass);
	free(w);
	rp->turn_retry_at = rp->now + LS_RPROXY_BACKOFF_MAX_MS;
}

static int send_probe_raw(struct ls_rproxy *rp, const uint8_t key[LSR_KEY_LEN], const struct ls_rproxy_probe *p);

/* Tells the peer our relayed address (through the stream relay), so it permits it. */
static void turn_announce(struct ls_rproxy *rp, struct rp_peer *p, bool reply)
{
	struct ls_rproxy_probe pr = { .ts_ms = ls_relay_now_unix_ms(), .reply = reply };

	addr_str(&rp->turn_relayed, pr.turn, sizeof(pr.turn));
	send_probe_raw(rp, p->key, &pr);
}

static void turn_readable(struct ls_rproxy *rp)
{
	uint8_t buf[sizeof(struct rp_tmsg) + LSR_MAX_PAYLOAD];
	const struct rp_tmsg *m = (const void *)buf;
	char a[LS_RPROXY_ENDPOINT_LEN];
	struct rp_peer *p;

	for (int i = 0; i < 64 && rp->turn_sock >= 0; i++) {
		ssize_t n = recv(rp->turn_sock, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0)
			return;
		if (n < (ssize_t)sizeof(*m)) {
			pr_warn("relay proxy: TURN worker is gone");
			turn_stop(rp);
			rp->turn_retry_at = rp->now + LS_RPROXY_BACKOFF_MIN_MS;
			return;
		}
		switch (m->type) {
		case 'A':
			rp->turn_relayed = m->addr;
			rp->turn_state = RP_UP;
			rp->turn_failures = 0;
			rp->turn_error[0] = 0;
			addr_str(&m->addr, a, sizeof(a));
			pr_info("relay proxy: TURN allocation at %s (relayed address %s)", rp->turn[0].url, a);
			FOR_EACH_PEER(rp, p) {
				if (p->turn) {
					memset(&p->turn->reach, 0, sizeof(p->turn->reach));
					turn_cmd(rp, 'P', &p->turn->addr, NULL, 0);
				}
				turn_announce(rp, p, false);
			}
			rp->turn_round_at = rp->now;
			break;
		case 'F':
			if (rp->turn_state == RP_UP)
				pr_info("relay proxy: TURN allocation at %s lost", rp->turn[0].url);
			rp->turn_state = RP_CONNECTING;
			rp->turn_failures++;
			snprintf(rp->turn_error, sizeof(rp->turn_error), "allocate: %s", strerror(-m->err));
			break;
		case 'K':
			FOR_EACH_PEER(rp, p) {
				if (p->turn && ls_sockaddr_equal((const struct sockaddr *)&p->turn->addr,
								 (const struct sockaddr *)&m->addr))
					send_hello(rp, p, RP_VIA_TURN, LS_RPROXY_HELLO_REQ);
			}
			break;
		case 'E':
			addr_str(&m->addr, a, sizeof(a));
			pr_warn("relay proxy: TURN permission for %s: %s", a, strerror(-m->err));
			break;
		case 'D':
			FOR_EACH_PEER(rp, p) {
				if (p->turn && ls_sockaddr_equal((const struct sockaddr *)&p->turn->addr,
								 (const struct sockaddr *)&m->addr)) {
					via_input(rp, p, RP_VIA_TURN, buf + sizeof(*m), (size_t)n - sizeof(*m));
					break;
				}
			}
			break;
		}
	}
}

/* A probe carrying the peer's relayed address: permit it, answer with ours. */
static void turn_probe_input(struct ls_rproxy *rp, const uint8_t key[LSR_KEY_LEN], const struct ls_rproxy_probe *pr)
{
	struct rp_peer *p = peer_find(rp, key);
	struct sockaddr_storage ss;
	socklen_t len;

	if (!p || ls_rproxy_parse_addr(pr->turn, &ss, &len))
		return;
	if (!p->turn ||
	    !ls_sockaddr_equal((const struct sockaddr *)&ss, (const struct sockaddr *)&p->turn->addr)) {
		if (!p->turn && !(p->turn = malloc(sizeof(*p->turn))))
			return;
		p->turn->addr = ss;
		memset(&p->turn->reach, 0, sizeof(p->turn->reach));
		if (rp->turn_state == RP_UP)
			turn_cmd(rp, 'P', &p->turn->addr, NULL, 0);
	}
	if (!pr->reply && rp->turn_state == RP_UP)
		turn_announce(rp, p, true);
}

static void turn_tick(struct ls_rproxy *rp)
{
	if (rp->n_turn == 0)
		return;
	if (rp->turn_sock < 0) {
		if (rp->now >= rp->turn_retry_at)
			turn_start(rp);
		return;
	}
	if (rp->turn_state != RP_UP)
		return;
	/* Peers not reached through TURN yet get our address again every 10 s (a new
	 * peer at once: ls_rproxy_peer_add). */
	if (rp->now - rp->turn_round_at >= 10000) {
		struct rp_peer *p;

		FOR_EACH_PEER(rp, p)
			if (!p->turn || !reach_ok(rp, &p->turn->reach))
				turn_announce(rp, p, false);
		rp->turn_round_at = rp->now;
	}
	hellos_tick(rp, RP_VIA_TURN);
}

/* ------------------------------------------------------------ stream relay */

static void pref_close(struct ls_rproxy *rp)
{
	if (rp->pref_fd >= 0)
		close(rp->pref_fd);
	rp->pref_fd = -1;
}

static void stream_close(struct ls_rproxy *rp)
{
	pref_close(rp);
	if (rp->hs_fd >= 0)
		close(rp->hs_fd);
	rp->hs_fd = -1;
	if (rp->rs) {
		epoll_ctl(rp->epfd, EPOLL_CTL_DEL, ls_relay_stream_fd(rp->rs), NULL);
		ls_relay_stream_free(rp->rs);
	}
	rp->rs = NULL;
	rp->rs_events = 0;
	rp->stream_state = RP_IDLE;
	rp->stream_cur = -1;
}

static void stream_fail(struct ls_rproxy *rp, const char *what, int err)
{
	struct rp_relay *r = &rp->stream[rp->stream_cur];

	if (rp->stream_state == RP_UP)
		r->disconnects++;
	pr_info("relay proxy: stream relay %s: %s: %s", r->addr, what, strerror(err < 0 ? -err : err));
	relay_failed(r, rp->now, what, err);
	stream_close(rp);
}

/* Keeps the epoll interest in step with what the stream wants. */
static void stream_update_events(struct ls_rproxy *rp)
{
	short want;
	uint32_t ev;

	if (!rp->rs)
		return;
	want = ls_relay_stream_events(rp->rs);
	ev = (want & POLLIN ? EPOLLIN : 0) | (want & POLLOUT ? EPOLLOUT : 0);
	if (ev != rp->rs_events && ep_set(rp, EPOLL_CTL_MOD, ls_relay_stream_fd(rp->rs), ev, &rp->stream_h) == 0)
		rp->rs_events = ev;
}

static void stream_start(struct ls_rproxy *rp, int i)
{
	struct rp_relay *r = &rp->stream[i];
	int one = 1, err, fd = socket(r->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		relay_failed(r, rp->now, "socket", -errno);
		return;
	}
	set_mark(rp, fd);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&r->sa, r->sa_len) < 0 && errno != EINPROGRESS) {
		err = -errno;
		close(fd);
		relay_failed(r, rp->now, "connect", err);
		return;
	}
	err = ep_set(rp, EPOLL_CTL_ADD, fd, EPOLLOUT, &rp->stream_h);
	if (err) {
		close(fd);
		relay_failed(r, rp->now, "epoll", err);
		return;
	}
	pr_debug("relay proxy: connecting to stream relay %s", r->addr);
	rp->hs_fd = fd;
	rp->hs_connected = false;
	rp->hs_in_len = rp->hs_out_len = rp->hs_out_off = 0;
	rp->stream_cur = i;
	rp->stream_state = RP_CONNECTING;
	rp->stream_deadline = rp->now + LS_RPROXY_CONNECT_TIMEOUT_MS;
}

/* Reads exactly one handshake frame (never a byte past it: what follows belongs to
 * the stream). 0 with *f, -EAGAIN, -EBADMSG, -ECONNRESET, -errno. */
static int hs_read_frame(struct ls_rproxy *rp, struct ls_relay_frame *f)
{
	for (;;) {
		size_t need = LSR_FRAME_HDR_LEN, consumed;
		ssize_t n;

		if (rp->hs_in_len >= LSR_FRAME_HDR_LEN) {
			const struct lsr_frame_hdr *h = (const void *)rp->hs_in;
			uint32_t len = be32toh(h->len);

			if ((h->type != LSR_FRAME_SERVER_HELLO && h->type != LSR_FRAME_SERVER_ACCEPT &&
			     h->type != LSR_FRAME_CLOSE) || !lsr_frame_len_ok(h->type, len) ||
			    LSR_FRAME_HDR_LEN + len > sizeof(rp->hs_in))
				return -EBADMSG;
			need = LSR_FRAME_HDR_LEN + len;
			if (rp->hs_in_len == need) {
				int err = ls_relay_frame_parse(rp->hs_in, rp->hs_in_len, f, &consumed);

				rp->hs_in_len = 0; /* f points into hs_in until the next read */
				return err == -EAGAIN ? -EBADMSG : err;
			}
		}
		n = read(rp->hs_fd, rp->hs_in + rp->hs_in_len, need - rp->hs_in_len);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0)
			return -errno; /* -EAGAIN: wait for more */
		rp->hs_in_len += (size_t)n;
	}
}

static int hs_flush(struct ls_rproxy *rp)
{
	while (rp->hs_out_off < rp->hs_out_len) {
		ssize_t n = send(rp->hs_fd, rp->hs_out + rp->hs_out_off, rp->hs_out_len - rp->hs_out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0)
			return errno == EINTR ? 0 : -errno;
		rp->hs_out_off += (size_t)n;
	}
	return 0;
}

static void stream_accepted(struct ls_rproxy *rp, const struct lsr_server_accept *a)
{
	struct rp_relay *r = &rp->stream[rp->stream_cur];
	struct ls_relay_stream *rs;
	int fd = rp->hs_fd, err;

	epoll_ctl(rp->epfd, EPOLL_CTL_DEL, fd, NULL);
	err = ls_relay_stream_adopt(&rs, fd);
	if (err) {
		stream_fail(rp, "adopt", err);
		return;
	}
	rp->hs_fd = -1;
	rp->rs = rs;
	rp->rs_events = EPOLLIN;
	err = ep_set(rp, EPOLL_CTL_ADD, fd, EPOLLIN, &rp->stream_h);
	if (err) {
		stream_fail(rp, "epoll", err);
		return;
	}
	pr_info("relay proxy: connected to stream relay %s", r->addr);
	r->connects++;
	r->failures = 0;
	r->retry_at = 0;
	rp->stream_state = RP_UP;
	rp->stream_since = rp->stream_last_rx = rp->stream_last_ping = rp->now;
	rp->pref_next = rp->now + rp->prefer_ms;
	rp->stream_ping_s = be32toh(a->keepalive_s);
	if (!rp->stream_ping_s || rp->stream_ping_s > LS_RPROXY_PING_MAX_S)
		rp->stream_ping_s = LS_RPROXY_PING_MAX_S;
	memset(&rp->stream_observed, 0, sizeof(rp->stream_observed));
	ls_relay_addr_to_sockaddr(&a->observed, &rp->stream_observed, NULL);
}

/* The handshake: connect, SERVER_HELLO, CLIENT_HELLO (proof over the nonce),
 * SERVER_ACCEPT or CLOSE. */
static void hs_step(struct ls_rproxy *rp)
{
	struct ls_relay_frame f;
	int err;

	if (!rp->hs_connected) {
		socklen_t elen = sizeof(err);

		err = 0;
		if (getsockopt(rp->hs_fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			err = errno;
		if (err) {
			stream_fail(rp, "connect", -err);
			return;
		}
		struct pollfd pfd = { .fd = rp->hs_fd, .events = POLLOUT };

		if (poll(&pfd, 1, 0) != 1)
			return;
		rp->hs_connected = true;
		ep_set(rp, EPOLL_CTL_MOD, rp->hs_fd, EPOLLIN, &rp->stream_h);
	}
	err = hs_flush(rp);
	if (err && err != -EAGAIN) {
		stream_fail(rp, "write", err);
		return;
	}
	ep_set(rp, EPOLL_CTL_MOD, rp->hs_fd, EPOLLIN | (rp->hs_out_off < rp->hs_out_len ? EPOLLOUT : 0),
	       &rp->stream_h);
	for (;;) {
		err = hs_read_frame(rp, &f);
		if (err == -EAGAIN || err == -EINTR)
			return;
		if (err) {
			stream_fail(rp, err == -ECONNRESET ? "closed by the relay" : "handshake", err);
			return;
		}
		if (f.type == LSR_FRAME_CLOSE) {
			stream_fail(rp, ls_relay_reason_str(f.reason), EACCES);
			return;
		}
		if (f.type == LSR_FRAME_SERVER_HELLO && rp->hs_out_len == 0) {
			const struct lsr_server_hello *sh = f.body;
			struct lsr_client_hello *ch = (void *)(rp->hs_out + LSR_FRAME_HDR_LEN);

			if (be32toh(sh->magic) != LSR_STREAM_MAGIC || sh->version != LSR_VERSION) {
				stream_fail(rp, "server hello", EPROTO);
				return;
			}
			ls_relay_frame_hdr((struct lsr_frame_hdr *)rp->hs_out, LSR_FRAME_CLIENT_HELLO,
					   LSR_CLIENT_HELLO_LEN);
			memset(ch, 0, sizeof(*ch));
			ch->magic = htobe32(LSR_STREAM_MAGIC);
			ch->version = LSR_VERSION;
			memcpy(ch->key, rp->wg_pub, LSR_KEY_LEN);
			ls_relay_proof_make(&ch->proof, LSR_PURPOSE_STREAM, rp->wg_pub, ls_relay_now_unix_ms(),
					    sh->nonce, &rp->id);
			rp->hs_out_len = sizeof(rp->hs_out);
			rp->hs_out_off = 0;
			err = hs_flush(rp);
			if (err && err != -EAGAIN) {
				stream_fail(rp, "write", err);
				return;
			}
			if (rp->hs_out_off < rp->hs_out_len)
				ep_set(rp, EPOLL_CTL_MOD, rp->hs_fd, EPOLLIN | EPOLLOUT, &rp->stream_h);
			continue;
		}
		if (f.type == LSR_FRAME_SERVER_ACCEPT && rp->hs_out_len && rp->hs_out_off == rp->hs_out_len) {
			stream_accepted(rp, f.body);
			return;
		}
		stream_fail(rp, "handshake out of order", EPROTO);
		return;
	}
}

static void probe_reject(struct ls_rproxy *rp, int why)
{
	rp->c.probe_rej[why]++;
	rp->c.probes_bad++;
}

/* A probe through the stream relay, from the peer the relay names: its format, then
 * the pair (a key that is not a peer's costs no X25519), the seal and the replay window;
 * only then does it count, once. */
static void probe_input(struct ls_rproxy *rp, const uint8_t *key, const uint8_t *buf, size_t len)
{
	struct ls_rproxy_probe probe;
	struct ls_disco_pair *dp;
	uint8_t from[LSR_KEY_LEN];
	uint64_t seq;
	int ret = ls_disco_probe_peek(buf, len);

	if (ret) {
		probe_reject(rp, ret == -EPROTO ? RP_REJ_UNSEALED : RP_REJ_MALFORMED);
		return;
	}
	memcpy(from, key, sizeof(from)); /* (key lies in the stream's buffer) */
	dp = rp->pair ? rp->pair(rp->cb_ctx, from) : NULL;
	if (!dp) {
		probe_reject(rp, RP_REJ_UNKNOWN);
		return;
	}
	ret = ls_disco_probe_open(buf, len, from, rp->wg_pub, dp->key, &seq, &probe);
	if (ret) {
		probe_reject(rp, ret == -EACCES ? RP_REJ_UNAUTH : RP_REJ_MALFORMED);
		return;
	}
	if (!ls_disco_replay_ok(&dp->rw, seq)) {
		probe_reject(rp, RP_REJ_REPLAYED);
		return;
	}
	ls_disco_replay_mark(&dp->rw, seq);
	rp->c.probes_received++;
	if (probe.turn[0])
		turn_probe_input(rp, from, &probe);
	/* Ours alone (a relayed address, no endpoints) stay here. */
	if (rp->on_probe && !(probe.turn[0] && probe.n_endpoints == 0))
		rp->on_probe(rp->cb_ctx, from, &probe);
}

static void stream_frame(struct ls_rproxy *rp, const struct ls_relay_frame *f)
{
	struct rp_peer *p;

	switch (f->type) {
	case LSR_FRAME_RECV:
		p = peer_find(rp, f->key);
		if (!p) {
			rp->c.unknown_peer++;
			return;
		}
		deliver(rp, p, LS_RPROXY_PATH_STREAM, f->payload, f->payload_len);
		return;
	case LSR_FRAME_PROBE_RECV:
		probe_input(rp, f->key, f->payload, f->payload_len);
		return;
	case LSR_FRAME_PEER_GONE:
		rp->c.peer_gone++;
		return;
	case LSR_FRAME_PING:
	case LSR_FRAME_PONG:
		return;
	case LSR_FRAME_CLOSE:
		stream_fail(rp, ls_relay_reason_str(f->reason), ECONNRESET);
		return;
	default:
		rp->c.bad_frames++;
		return;
	}
}

static void stream_ready(struct ls_rproxy *rp, uint32_t events)
{
	struct ls_relay_frame f;
	int err;

	if (rp->stream_state == RP_CONNECTING) {
		hs_step(rp);
		if (rp->stream_state != RP_UP)
			return;
		/* Frames may already be waiting behind the accept. */
		events |= EPOLLIN;
	}
	if (events & EPOLLOUT) {
		err = ls_relay_stream_flush(rp->rs, 0);
		if (err && err != -EAGAIN) {
			stream_fail(rp, "write", err);
			return;
		}
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		for (int i = 0; i < 256 && rp->rs; i++) {
			err = ls_relay_stream_recv(rp->rs, &f, 0);
			if (err == -ETIMEDOUT)
				break;
			if (err) {
				stream_fail(rp, err == -ECONNRESET ? "closed by the relay" : "read", err);
				return;
			}
			rp->stream_last_rx = rp->now;
			stream_frame(rp, &f);
		}
	}
	stream_update_events(rp);
}

static void pref_start(struct ls_rproxy *rp, int j)
{
	struct rp_relay *r = &rp->stream[j];
	int fd = socket(r->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	set_mark(rp, fd);
	if ((connect(fd, (struct sockaddr *)&r->sa, r->sa_len) < 0 && errno != EINPROGRESS) ||
	    ep_set(rp, EPOLL_CTL_ADD, fd, EPOLLOUT, &rp->pref_h)) {
		int err = -errno;

		close(fd);
		relay_failed(r, rp->now, "connect", err);
		return;
	}
	rp->pref_fd = fd;
	rp->pref_idx = j;
	rp->pref_deadline = rp->now + LS_RPROXY_CONNECT_TIMEOUT_MS;
}

/* The TCP connect to the preferred relay finished: move there, or back it off. */
static void pref_ready(struct ls_rproxy *rp)
{
	struct rp_relay *r = &rp->stream[rp->pref_idx];
	socklen_t elen = sizeof(int);
	int err = 0, j = rp->pref_idx;

	if (getsockopt(rp->pref_fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		err = errno;
	pref_close(rp);
	if (err) {
		relay_failed(r, rp->now, "connect", -err);
		return;
	}
	pr_info("relay proxy: stream relay %s (preferred) is reachable again: moving back", r->addr);
	stream_close(rp);
	stream_start(rp, j);
}

static void stream_tick(struct ls_rproxy *rp)
{
	if (rp->stream_state == RP_IDLE) {
		uint64_t retry[LS_RPROXY_MAX_RELAYS];
		int i;

		for (size_t k = 0; k < rp->n_stream; k++)
			retry[k] = rp->stream[k].retry_at;
		i = ls_rproxy_pick_relay(retry, rp->n_stream, rp->now);
		if (i >= 0)
			stream_start(rp, i);
		return;
	}
	if (rp->stream_state == RP_CONNECTING) {
		if (rp->now >= rp->stream_deadline)
			stream_fail(rp, "connect", ETIMEDOUT);
		return;
	}
	/* Up: ping; silent for two intervals and a bit is dead. */
	if (rp->now - rp->stream_last_rx > (uint64_t)rp->stream_ping_s * 2000 + 5000) {
		stream_fail(rp, "no answer to pings", ETIMEDOUT);
		return;
	}
	/* Not on the first relay of the list: now and then see whether an earlier one
	 * is back, so nodes that failed over come together again (the relays of a
	 * list do not forward to each other). */
	if (rp->pref_fd >= 0 && rp->now >= rp->pref_deadline) {
		relay_failed(&rp->stream[rp->pref_idx], rp->now, "connect", ETIMEDOUT);
		pref_close(rp);
	}
	if (rp->stream_cur > 0 && rp->pref_fd < 0 && rp->now >= rp->pref_next) {
		uint64_t retry[LS_RPROXY_MAX_RELAYS];
		int j;

		for (int k = 0; k < rp->stream_cur; k++)
			retry[k] = rp->stream[k].retry_at;
		j = ls_rproxy_pick_relay(retry, (size_t)rp->stream_cur, rp->now);
		rp->pref_next = rp->now + rp->prefer_ms;
		if (j >= 0)
			pref_start(rp, j);
	}
	if (rp->now - rp->stream_last_ping >= (uint64_t)rp->stream_ping_s * 1000) {
		uint8_t data[8];
		int err;

		randombytes_buf(data, sizeof(data));
		err = ls_relay_stream_ping(rp->rs, data, 0);
		if (err && err != -EAGAIN) {
			stream_fail(rp, "write", err);
			return;
		}
		rp->stream_last_ping = rp->now;
		stream_update_events(rp);
	}
}

/* ---------------------------------------------------------- loopback side */

static void peer_send(struct ls_rproxy *rp, struct rp_peer *p, const uint8_t *buf, size_t n)
{
	enum ls_rproxy_path path = peer_path(rp, p);
	struct rp_stats *st;
	int err = -ENOTCONN;

	switch (path) {
	case LS_RPROXY_PATH_UDP:
	case LS_RPROXY_PATH_TURN: {
		int via = path == LS_RPROXY_PATH_UDP ? RP_VIA_UDP : RP_VIA_TURN;

		err = via_send(rp, p, via, buf, n);
		/* While traffic flows, ask every second whether the peer still hears us:
		 * a lost path falls back to the next within about 2.5 s. */
		if (rp->now - reach_of(p, via)->sent >= LS_RPROXY_HELLO_ACTIVE_MS)
			send_hello(rp, p, via, LS_RPROXY_HELLO_REQ);
		break;
	}
	case LS_RPROXY_PATH_STREAM:
		err = ls_relay_stream_send(rp->rs, p->key, buf, n, 0);
		if (err == -EAGAIN)
			rp->c.stream_send_full++;
		else if (err)
			stream_fail(rp, "write", err);
		break;
	default:
		break;
	}
	st = stats_of(p);
	if (err) {
		if (st)
			st->dropped++;
		return;
	}
	if (st) {
		st->tx[path - 1].packets++;
		st->tx[path - 1].bytes += n;
	}
}

/* What WireGuard sent to a peer's loopback address: the destination address names
 * the peer. Only from WireGuard's port on a loopback address (a socket of this host
 * that holds that port): nothing else can inject through the proxy. */
static void lo_readable(struct ls_rproxy *rp)
{
	uint8_t buf[LSR_MAX_PAYLOAD];
	bool stream_used = false;

	for (int i = 0; i < 256 && rp->lo_fd >= 0; i++) {
		struct sockaddr_in src;
		union {
			char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
			struct cmsghdr align;
		} cm;
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr mh = { .msg_name = &src, .msg_namelen = sizeof(src), .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
		ssize_t n = recvmsg(rp->lo_fd, &mh, MSG_DONTWAIT);
		uint32_t dst = 0, slot;
		bool has_dst = false;
		struct rp_peer *p;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			break; /* EAGAIN */
		}
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
				struct in_pktinfo pi;

				memcpy(&pi, CMSG_DATA(c), sizeof(pi));
				dst = ntohl(pi.ipi_addr.s_addr);
				has_dst = true;
			}
		if (mh.msg_namelen < sizeof(src) || src.sin_family != AF_INET ||
		    ntohs(src.sin_port) != rp->wg_port || (ntohl(src.sin_addr.s_addr) >> 24) != 127) {
			rp->c.lo_bad_source++;
			continue;
		}
		slot = dst - LS_RPROXY_LO_NET;
		if (!has_dst || (dst & LS_RPROXY_LO_MASK) != LS_RPROXY_LO_NET || slot >= rp->lo_next ||
		    !(p = slot_peer(rp, slot))) {
			rp->c.lo_no_peer++;
			continue;
		}
		if (n == 0)
			continue;
		stream_used |= rp->stream_state == RP_UP;
		peer_send(rp, p, buf, (size_t)n);
	}
	if (stream_used)
		stream_update_events(rp);
}

/* The loopback socket: any address, an ephemeral port, bound to lo so that only this
 * host's own traffic reaches it; IP_PKTINFO tells which peer address a datagram came
 * to, and lets deliver() send from one. */
static int lo_open(struct ls_rproxy *rp)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
	socklen_t slen = sizeof(sin);
	int one = 1, bufsz = 1 << 20, fd, err;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "lo", sizeof("lo")) < 0 ||
	    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &slen) < 0) {
		err = -errno;
		goto cleanup;
	}
	/* every relayed peer shares it: more than one peer's worth of buffer (best effort) */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof(bufsz)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof(bufsz)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	err = ep_set(rp, EPOLL_CTL_ADD, fd, EPOLLIN, &rp->lo_h);
	if (err)
		goto cleanup;
	rp->lo_fd = fd;
	rp->lo_port = ntohs(sin.sin_port);
	return 0;
cleanup:
	close(fd);
	return err;
}

/* A free slot of the address pool (marked in use, its record zeroed), or -ENOSPC/-ENOMEM. */
static int lo_slot_get(struct ls_rproxy *rp, uint32_t *slot)
{
	uint32_t s;

	if (!rp->slots) {
		void *m = mmap(NULL, (LS_RPROXY_LO_MAX_PEERS + 1) * sizeof(struct rp_peer), PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (m == MAP_FAILED)
			return -ENOMEM;
		rp->slots = m;
	}
	if (rp->n_lo_free) {
		s = rp->lo_free[--rp->n_lo_free];
	} else {
		if (rp->lo_next > LS_RPROXY_LO_MAX_PEERS)
			return -ENOSPC;
		s = rp->lo_next++;
	}
	memset(&rp->slots[s], 0, sizeof(rp->slots[s]));
	rp->used[s / 64] |= (uint64_t)1 << (s % 64);
	*slot = s;
	return 0;
}

static void lo_slot_put(struct ls_rproxy *rp, uint32_t s)
{
	rp->used[s / 64] &= ~((uint64_t)1 << (s % 64));
	if (rp->n_lo_free == rp->cap_lo_free) {
		uint32_t cap = rp->cap_lo_free ? rp->cap_lo_free * 2 : 64;
		uint32_t *nf = realloc(rp->lo_free, cap * sizeof(*nf));

		if (!nf) {
			/* keep the slot out of use rather than lose track of it */
			return;
		}
		rp->lo_free = nf;
		rp->cap_lo_free = cap;
	}
	rp->lo_free[rp->n_lo_free++] = s;
}

static void peer_free_parts(struct rp_peer *p)
{
	free(p->turn);
	free(p->st);
	memset(p, 0, sizeof(*p));
}

int ls_rproxy_peer_add(struct ls_rproxy *rp, const uint8_t key[LSR_KEY_LEN], struct sockaddr_in *endpoint)
{
	struct rp_peer *p = peer_find(rp, key);
	uint32_t slot;
	int err;

	if (p)
		goto done;
	if (rp->lo_fd < 0) {
		err = lo_open(rp);
		if (err)
			return err;
	}
	err = ht_reserve(rp);
	if (err)
		return err;
	err = lo_slot_get(rp, &slot);
	if (err)
		return err;
	p = &rp->slots[slot];
	memcpy(p->key, key, LSR_KEY_LEN);
	rp->n_peers++;
	ht_put(rp, slot);
	if (udp_up(rp))
		send_hello(rp, p, RP_VIA_UDP, LS_RPROXY_HELLO_REQ);
	if (rp->turn_state == RP_UP)
		turn_announce(rp, p, false);
done:
	memset(endpoint, 0, sizeof(*endpoint));
	endpoint->sin_family = AF_INET;
	endpoint->sin_port = htons(rp->lo_port);
	endpoint->sin_addr = peer_lo_addr(rp, p);
	return 0;
}

int ls_rproxy_peer_remove(struct ls_rproxy *rp, const uint8_t key[LSR_KEY_LEN])
{
	struct rp_peer *p = peer_find(rp, key);

	if (!p)
		return -ENOENT;
	ht_del(rp, p);
	lo_slot_put(rp, peer_slot(rp, p));
	peer_free_parts(p);
	rp->n_peers--;
	return 0;
}

enum ls_rproxy_path ls_rproxy_peer_path(const struct ls_rproxy *rp, const uint8_t key[LSR_KEY_LEN])
{
	const struct rp_peer *p = peer_find(rp, key);

	return p ? peer_path(rp, p) : LS_RPROXY_PATH_NONE;
}

void ls_rproxy_set_wg_port(struct ls_rproxy *rp, uint16_t port)
{
	if (port == rp->wg_port)
		return;
	rp->wg_port = port;
}

int ls_rproxy_send_probe(struct ls_rproxy *rp, const uint8_t key[LSR_KEY_LEN], const struct ls_rproxy_probe *p)
{
	struct ls_rproxy_probe q = *p;

	/* The agent's probes carry our relayed address too, when we have one. */
	if (!q.turn[0] && rp->turn_state == RP_UP)
		addr_str(&rp->turn_relayed, q.turn, sizeof(q.turn));
	return send_probe_raw(rp, key, &q);
}

static int send_probe_raw(struct ls_rproxy *rp, const uint8_t key[LSR_KEY_LEN], const struct ls_rproxy_probe *p)
{
	struct ls_disco_pair *dp = rp->pair ? rp->pair(rp->cb_ctx, key) : NULL;
	uint8_t buf[LS_DISCO_PROBE_MAX_LEN];
	uint64_t seq;
	int n, err;

	if (!dp)
		return -ENOKEY;
	if (rp->stream_state != RP_UP)
		return -ENOTCONN;
	/* (the seq is spent only when the probe is valid: a gap in the window is harmless) */
	seq = dp->tx_seq;
	n = ls_disco_probe_seal(p, ls_disco_pair_next_seq(dp), rp->wg_pub, key, dp->key, buf, sizeof(buf));
	if (n < 0) {
		dp->tx_seq = seq;
		return n;
	}
	err = ls_relay_stream_probe(rp->rs, key, buf, (size_t)n, 0);
	if (err && err != -EAGAIN) {
		stream_fail(rp, "write", err);
		return -ENOTCONN;
	}
	if (!err)
		rp->c.probes_sent++;
	stream_update_events(rp);
	return err;
}

/* --------------------------------------------------------------- relay lists */

/* Rebuilds list from addrs, carrying over the state of addresses that stay.
 * *cur is remapped (-1 when the current relay is gone). Returns whether the
 * current one is gone. */
static int relist(struct rp_relay *list, size_t *n, const char *const *addrs, size_t n_addrs, int *cur,
		  bool *cur_gone, const char *what)
{
	struct rp_relay old[LS_RPROXY_MAX_RELAYS];
	size_t n_old = *n, k = 0;
	int new_cur = -1;

	memcpy(old, list, sizeof(old));
	if (n_addrs > LS_RPROXY_MAX_RELAYS) {
		pr_warn("relay proxy: %zu %s relays, using the first %d", n_addrs, what, LS_RPROXY_MAX_RELAYS);
		n_addrs = LS_RPROXY_MAX_RELAYS;
	}
	for (size_t i = 0; i < n_addrs; i++) {
		struct rp_relay r = { 0 };
		size_t j;

		if (ls_rproxy_parse_addr(addrs[i], &r.sa, &r.sa_len)) {
			pr_warn("relay proxy: invalid %s relay address `%s'", what, addrs[i]);
			continue;
		}
		snprintf(r.addr, sizeof(r.addr), "%s", addrs[i]);
		for (j = 0; j < n_old; j++)
			if (!strcmp(old[j].addr, r.addr))
				break;
		if (j < n_old) {
			r = old[j];
			if ((int)j == *cur)
				new_cur = (int)k;
		}
		list[k++] = r;
	}
	*cur_gone = *cur >= 0 && new_cur < 0;
	*n = k;
	*cur = new_cur;
	return 0;
}

int ls_rproxy_set_relays(struct ls_rproxy *rp, const struct ls_rproxy_relays *r)
{
	bool gone;
	int cur;

	pref_close(rp); /* its index is about to change */
	cur = rp->stream_cur;
	relist(rp->stream, &rp->n_stream, r->stream, r->n_stream, &cur, &gone, "stream");
	if (gone) {
		pr_info("relay proxy: leaving a stream relay no longer listed");
		stream_close(rp);
	} else {
		rp->stream_cur = cur;
	}
	cur = rp->udp_cur;
	relist(rp->udp, &rp->n_udp, r->udp, r->n_udp, &cur, &gone, "udp");
	if (gone) {
		pr_info("relay proxy: leaving a UDP relay no longer listed");
		udp_close(rp);
	} else {
		rp->udp_cur = cur;
	}
	/* TURN: the worker serves the first server; restart it when that one changes. */
	if (rp->turn_sock >= 0 &&
	    (r->n_turn == 0 || strcmp(rp->turn[0].url, r->turn[0].url ? r->turn[0].url : "") ||
	     strcmp(rp->turn[0].username, r->turn[0].username ? r->turn[0].username : "") ||
	     strcmp(rp->turn[0].credential, r->turn[0].credential ? r->turn[0].credential : ""))) {
		pr_info("relay proxy: TURN server changed");
		turn_stop(rp);
	}
	rp->turn_retry_at = 0;
	for (size_t i = 0; i < rp->n_turn; i++) {
		free(rp->turn[i].url);
		free(rp->turn[i].username);
		ls_memzero(rp->turn[i].credential, rp->turn[i].credential ? strlen(rp->turn[i].credential) : 0);
		free(rp->turn[i].credential);
	}
	free(rp->turn);
	rp->turn = NULL;
	rp->n_turn = 0;
	if (r->n_turn) {
		rp->turn = calloc(r->n_turn, sizeof(*rp->turn));
		if (!rp->turn)
			return -ENOMEM;
		for (size_t i = 0; i < r->n_turn; i++) {
			rp->turn[i].url = strdup(r->turn[i].url ? r->turn[i].url : "");
			rp->turn[i].username = strdup(r->turn[i].username ? r->turn[i].username : "");
			rp->turn[i].credential = strdup(r->turn[i].credential ? r->turn[i].credential : "");
			rp->n_turn++;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ lifecycle */

struct ls_rproxy *ls_rproxy_new(const struct ls_rproxy_config *cfg)
{
	struct ls_rproxy *rp = calloc(1, sizeof(*rp));
	int err;

	if (!rp) {
		errno = ENOMEM;
		return NULL;
	}
	rp->stream_cur = rp->udp_cur = -1;
	rp->udp_fd = -1;
	rp->lo_fd = -1;
	rp->lo_h.kind = RP_K_LO;
	rp->lo_next = 1;
	rp->hs_fd = -1;
	rp->turn_sock = -1;
	rp->turn_h.kind = RP_K_TURN;
	rp->pref_fd = -1;
	rp->pref_h.kind = RP_K_PREF;
	rp->prefer_ms = cfg->prefer_interval_ms ? cfg->prefer_interval_ms : LS_RPROXY_PREFER_MS;
	rp->stream_h.kind = RP_K_STREAM;
	rp->udp_h.kind = RP_K_UDP;
	rp->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (rp->epfd < 0) {
		err = errno;
		free(rp);
		errno = err;
		return NULL;
	}
	memcpy(rp->wg_pub, cfg->wg_pub, LSR_KEY_LEN);
	memcpy(rp->id.wg_key, cfg->wg_pub, LSR_KEY_LEN);
	memcpy(rp->id.ed_sk, cfg->ed_sk, sizeof(rp->id.ed_sk));
	crypto_sign_ed25519_sk_to_pk(rp->id.ed_pk, rp->id.ed_sk);
	rp->wg_port = cfg->wg_port;
	rp->fwmark = cfg->fwmark;
	rp->on_probe = cfg->on_probe;
	rp->pair = cfg->pair;
	rp->cb_ctx = cfg->cb_ctx;
	rp->now = ls_now_ms();
	err = ls_rproxy_set_relays(rp, &cfg->relays);
	if (err) {
		ls_rproxy_free(rp);
		errno = -err;
		return NULL;
	}
	return rp;
}

void ls_rproxy_free(struct ls_rproxy *rp)
{
	static const struct ls_rproxy_relays none;

	if (!rp)
		return;
	stream_close(rp);
	udp_close(rp);
	turn_stop(rp);
	ls_rproxy_set_relays(rp, &none);
	{
		struct rp_peer *p;

		FOR_EACH_PEER(rp, p)
			peer_free_parts(p);
	}
	if (rp->slots)
		munmap(rp->slots, (LS_RPROXY_LO_MAX_PEERS + 1) * sizeof(struct rp_peer));
	free(rp->ht);
	if (rp->lo_fd >= 0)
		close(rp->lo_fd);
	free(rp->lo_free);
	close(rp->epfd);
	ls_memzero(&rp->id, sizeof(rp->id));
	free(rp);
}

int ls_rproxy_fd(const struct ls_rproxy *rp)
{
	return rp->epfd;
}

int ls_rproxy_handle(struct ls_rproxy *rp)
{
	struct epoll_event evs[32];
	int n = epoll_wait(rp->epfd, evs, ARRAY_SIZE(evs), 0);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	rp->now = ls_now_ms();
	for (int i = 0; i < n; i++) {
		struct rp_handle *h = evs[i].data.ptr;

		switch (h->kind) {
		case RP_K_LO:
			if (rp->lo_fd >= 0)
				lo_readable(rp);
			break;
		case RP_K_STREAM:
			if (rp->rs || rp->hs_fd >= 0)
				stream_ready(rp, evs[i].events);
			break;
		case RP_K_UDP:
			if (rp->udp_fd >= 0)
				udp_readable(rp);
			break;
		case RP_K_TURN:
			if (rp->turn_sock >= 0)
				turn_readable(rp);
			break;
		case RP_K_PREF:
			if (rp->pref_fd >= 0)
				pref_ready(rp);
			break;
		}
	}
	return 0;
}

void ls_rproxy_tick(struct ls_rproxy *rp, uint64_t now_ms)
{
	rp->now = now_ms;
	stream_tick(rp);
	udp_tick(rp);
	turn_tick(rp);
}

/* --------------------------------------------------------------------- status */

static const char *state_str(enum rp_state s)
{
	return s == RP_UP ? "up" : s == RP_CONNECTING ? "connecting" : "idle";
}

static json_t *relays_json(const struct ls_rproxy *rp, const struct rp_relay *list, size_t n, int cur,
			   enum rp_state st)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		const struct rp_relay *r = &list[i];
		const char *state = (int)i == cur ? state_str(st) : r->retry_at > rp->now ? "backoff" : "idle";
		json_t *o = json_pack("{s:s, s:s, s:i, s:I, s:I}", "addr", r->addr, "state", state, "failures",
				      (int)r->failures, "connects", (json_int_t)r->connects, "disconnects",
				      (json_int_t)r->disconnects);

		if (r->retry_at > rp->now)
			json_object_set_new(o, "retry_in_ms", json_integer((json_int_t)(r->retry_at - rp->now)));
		if (r->last_error[0])
			json_object_set_new(o, "last_error", json_string(r->last_error));
		json_array_append_new(a, o);
	}
	return a;
}

static json_t *counters_json(const struct rp_counter *c)
{
	json_t *o = json_object();

	for (int k = LS_RPROXY_PATH_UDP; k < LS_RPROXY_PATH_MAX; k++)
		json_object_set_new(o, path_names[k], json_pack("{s:I, s:I}", "packets", (json_int_t)c[k - 1].packets,
								"bytes", (json_int_t)c[k - 1].bytes));
	return o;
}

json_t *ls_rproxy_status(const struct ls_rproxy *rp)
{
	json_t *doc, *peers = json_array(), *turn = json_array(), *stream, *udp;
	const struct rp_peer *p;
	char buf[LS_RPROXY_ENDPOINT_LEN];
	stream = json_pack("{s:s, s:o}", "state", state_str(rp->stream_state), "relays",
			   relays_json(rp, rp->stream, rp->n_stream, rp->stream_cur, rp->stream_state));
	if (rp->stream_cur >= 0)
		json_object_set_new(stream, "current", json_string(rp->stream[rp->stream_cur].addr));
	if (rp->stream_state == RP_UP) {
		json_object_set_new(stream, "up_for_ms", json_integer((json_int_t)(rp->now - rp->stream_since)));
		addr_str(&rp->stream_observed, buf, sizeof(buf));
		json_object_set_new(stream, "observed", json_string(buf));
	}
	udp = json_pack("{s:s, s:o}", "state", state_str(rp->udp_state), "relays",
			relays_json(rp, rp->udp, rp->n_udp, rp->udp_cur, rp->udp_state));
	if (rp->udp_cur >= 0)
		json_object_set_new(udp, "current", json_string(rp->udp[rp->udp_cur].addr));
	if (rp->udp_state == RP_UP) {
		addr_str(&rp->udp_observed, buf, sizeof(buf));
		json_object_set_new(udp, "observed", json_string(buf));
		json_object_set_new(udp, "registration_expires_in_ms",
				    json_integer((json_int_t)(rp->udp_expires_at - rp->now)));
	}
	for (size_t i = 0; i < rp->n_turn; i++) {
		json_t *o = json_pack("{s:s, s:s, s:s}", "url", rp->turn[i].url, "username", rp->turn[i].username,
				      "state", i == 0 && rp->turn_sock >= 0 ? state_str(rp->turn_state) : "unused");

		if (i == 0 && rp->turn_state == RP_UP) {
			addr_str(&rp->turn_relayed, buf, sizeof(buf));
			json_object_set_new(o, "relayed", json_string(buf));
		}
		if (i == 0 && rp->turn_error[0])
			json_object_set_new(o, "last_error", json_string(rp->turn_error));
		json_array_append_new(turn, o);
	}
	FOR_EACH_PEER(rp, p) {
		static const struct rp_stats zero;
		const struct rp_stats *st = p->st ? p->st : &zero;
		char key[LS_KEY_B64_LEN + 1];
		json_t *o;

		ls_key_to_base64(key, p->key);
		char ip[INET_ADDRSTRLEN];
		struct in_addr a = peer_lo_addr(rp, p);

		inet_ntop(AF_INET, &a, ip, sizeof(ip));
		snprintf(buf, sizeof(buf), "%s:%u", ip, rp->lo_port);
		o = json_pack("{s:s, s:s, s:s, s:b, s:o, s:o, s:I}", "public_key", key, "endpoint", buf, "path",
			      ls_rproxy_path_str(peer_path(rp, p)), "udp_confirmed", peer_udp_confirmed(rp, p),
			      "tx", counters_json(st->tx), "rx", counters_json(st->rx), "dropped",
			      (json_int_t)st->dropped);
		if (p->udp.heard)
			json_object_set_new(o, "udp_heard_ms_ago", json_integer((json_int_t)(rp->now - p->udp.heard)));
		json_object_set_new(o, "turn_confirmed", json_boolean(peer_turn_ready(rp, p)));
		if (p->turn) {
			addr_str(&p->turn->addr, buf, sizeof(buf));
			json_object_set_new(o, "turn_peer", json_string(buf));
		}
		json_array_append_new(peers, o);
	}
	doc = json_pack("{s:o, s:o, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "stream", stream,
			"udp", udp, "turn", turn, "peers", peers, "counters", "probes_sent",
			(json_int_t)rp->c.probes_sent, "probes_received", (json_int_t)rp->c.probes_received,
			"probes_bad", (json_int_t)rp->c.probes_bad, "unknown_peer", (json_int_t)rp->c.unknown_peer,
			"bad_frames", (json_int_t)rp->c.bad_frames, "peer_gone", (json_int_t)rp->c.peer_gone,
			"stream_send_full", (json_int_t)rp->c.stream_send_full, "hellos_sent",
			(json_int_t)rp->c.hellos_sent, "hellos_received", (json_int_t)rp->c.hellos_received);
	json_object_set_new(json_object_get(doc, "counters"), "turn_queue_full",
			    json_integer((json_int_t)rp->c.turn_queue_full));
	json_object_set_new(json_object_get(doc, "counters"), "loopback_bad_source",
			    json_integer((json_int_t)rp->c.lo_bad_source));
	json_object_set_new(json_object_get(doc, "counters"), "loopback_no_peer",
			    json_integer((json_int_t)rp->c.lo_no_peer));
	{
		json_t *rej = json_object();

		for (int i = 0; i < RP_REJ_MAX; i++)
			json_object_set_new(rej, rej_names[i], json_integer((json_int_t)rp->c.probe_rej[i]));
		json_object_set_new(json_object_get(doc, "counters"), "probes_rejected", rej);
	}
	return doc;
}

const char *ls_rproxy_path_relay(const struct ls_rproxy *rp, enum ls_rproxy_path path)
{
	switch (path) {
	case LS_RPROXY_PATH_UDP:
		return rp->udp_state == RP_UP && rp->udp_cur >= 0 ? rp->udp[rp->udp_cur].addr : NULL;
	case LS_RPROXY_PATH_TURN:
		return rp->turn_state == RP_UP && rp->n_turn ? rp->turn[0].url : NULL;
	case LS_RPROXY_PATH_STREAM:
		return rp->stream_state == RP_UP && rp->stream_cur >= 0 ? rp->stream[rp->stream_cur].addr : NULL;
	default:
		return NULL;
	}
}

/* ------------------------------------------------- relayed path MTU (relayproxy.h) */

unsigned ls_rproxy_path_mtu_for(enum ls_rproxy_path path, int family, unsigned if_mtu)
{
	unsigned ip = family == AF_INET6 ? 40 : 20, framing, underlay = if_mtu + 40 + 8 + LS_RPROXY_WG_OVERHEAD, mtu;

	switch (path) {
	case LS_RPROXY_PATH_UDP:
		framing = LSR_UDP_HDR_LEN;
		break;
	case LS_RPROXY_PATH_TURN:
		framing = family == AF_INET6 ? LS_RPROXY_TURN_FRAMING_V6 : LS_RPROXY_TURN_FRAMING_V4;
		break;
	default:
		return if_mtu; /* direct, or TCP segments */
	}
	mtu = (underlay - ip - 8 - LS_RPROXY_WG_OVERHEAD - framing) & ~15u; /* WireGuard's padding */
	if (mtu > if_mtu)
		mtu = if_mtu;
	return mtu < LS_RPROXY_MIN_MTU && if_mtu >= LS_RPROXY_MIN_MTU ? LS_RPROXY_MIN_MTU : mtu;
}

unsigned ls_rproxy_relayed_mtu(const struct ls_rproxy *rp, unsigned if_mtu)
{
	unsigned mtu = if_mtu, m;

	for (size_t i = 0; i < rp->n_udp; i++) {
		m = ls_rproxy_path_mtu_for(LS_RPROXY_PATH_UDP, rp->udp[i].sa.ss_family, if_mtu);
		mtu = m < mtu ? m : mtu;
	}
	if (rp->n_turn) {
		struct sockaddr_storage ss = { 0 };
		int family = rp->turn_state == RP_UP ? rp->turn_relayed.ss_family
			     : turn_parse_url(rp->turn[0].url, &ss) == 0 ? ss.ss_family : AF_INET6;

		m = ls_rproxy_path_mtu_for(LS_RPROXY_PATH_TURN, family, if_mtu);
		mtu = m < mtu ? m : mtu;
	}
	return mtu;
}

/* ------------------------------------------------- direct path discovery */

#define DISCO_KDF_CONTEXT "lightscale disco v2 pair key"

int ls_disco_key(uint8_t out[LS_DISCO_KEY_LEN], const uint8_t our_priv[LSR_KEY_LEN],
		 const uint8_t our_pub[LSR_KEY_LEN], const uint8_t peer_pub[LSR_KEY_LEN])
{
	uint8_t dh[crypto_scalarmult_BYTES];
	crypto_generichash_state st;
	bool ours_first = memcmp(our_pub, peer_pub, LSR_KEY_LEN) < 0;

	/* (libsodium refuses an all-zero result: the peer's key is a low-order point) */
	if (crypto_scalarmult(dh, our_priv, peer_pub)) {
		sodium_memzero(dh, sizeof(dh));
		return -EINVAL;
	}
	crypto_generichash_init(&st, NULL, 0, LS_DISCO_KEY_LEN);
	crypto_generichash_update(&st, (const uint8_t *)DISCO_KDF_CONTEXT, sizeof(DISCO_KDF_CONTEXT) - 1);
	crypto_generichash_update(&st, dh, sizeof(dh));
	crypto_generichash_update(&st, ours_first ? our_pub : peer_pub, LSR_KEY_LEN);
	crypto_generichash_update(&st, ours_first ? peer_pub : our_pub, LSR_KEY_LEN);
	crypto_generichash_final(&st, out, LS_DISCO_KEY_LEN);
	sodium_memzero(dh, sizeof(dh));
	sodium_memzero(&st, sizeof(st));
	return 0;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

void ls_disco_seal(const struct ls_disco_msg *m, const uint8_t key[LS_DISCO_KEY_LEN], uint8_t out[LS_DISCO_LEN])
{
	uint8_t body[LS_DISCO_BODY_LEN], *nonce = out + LS_DISCO_HDR_LEN;
	unsigned long long clen;

	memset(out, 0, LS_DISCO_LEN);
	memcpy(out, LS_DISCO_MAGIC, 4);
	out[4] = m->type;
	out[5] = LS_DISCO_VERSION;
	memcpy(out + 8, m->from, LSR_KEY_LEN);
	memcpy(out + 8 + LSR_KEY_LEN, m->to, LSR_KEY_LEN);
	randombytes_buf(nonce, LS_DISCO_NONCE_LEN);
	put_be64(body, m->txid);
	put_be64(body + 8, m->seq);
	crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + LS_DISCO_NONCE_LEN, &clen, body, sizeof(body), out,
						   LS_DISCO_HDR_LEN, NULL, nonce, key);
	sodium_memzero(body, sizeof(body));
}

int ls_disco_peek(const uint8_t *buf, size_t len, struct ls_disco_msg *m)
{
	memset(m, 0, sizeof(*m));
	if (len < 8 || memcmp(buf, LS_DISCO_MAGIC, 4) || (buf[4] != LS_DISCO_PING && buf[4] != LS_DISCO_PONG))
		return -EBADMSG;
	if (len == LS_DISCO_V1_LEN && !buf[5] && !buf[6] && !buf[7])
		return -EPROTO; /* version 1: unauthenticated */
	if (len != LS_DISCO_LEN || buf[5] != LS_DISCO_VERSION || buf[6] || buf[7])
		return -EBADMSG;
	m->type = buf[4];
	memcpy(m->from, buf + 8, LSR_KEY_LEN);
	memcpy(m->to, buf + 8 + LSR_KEY_LEN, LSR_KEY_LEN);
	return 0;
}

int ls_disco_open(const uint8_t *buf, size_t len, const uint8_t key[LS_DISCO_KEY_LEN], struct ls_disco_msg *m)
{
	uint8_t body[LS_DISCO_BODY_LEN];
	const uint8_t *nonce = buf + LS_DISCO_HDR_LEN;
	unsigned long long blen;
	int ret = ls_disco_peek(buf, len, m);

	if (ret)
		return ret;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(body, &blen, NULL, nonce + LS_DISCO_NONCE_LEN,
						       LS_DISCO_BODY_LEN + LS_DISCO_TAG_LEN, buf, LS_DISCO_HDR_LEN,
						       nonce, key) ||
	    blen != sizeof(body)) {
		memset(m, 0, sizeof(*m));
		return -EACCES;
	}
	m->txid = get_be64(body);
	m->seq = get_be64(body + 8);
	sodium_memzero(body, sizeof(body));
	return 0;
}

bool ls_disco_replay_ok(const struct ls_disco_replay *r, uint64_t seq)
{
	if (seq == 0)
		return false; /* senders start at the Unix time in microseconds */
	if (seq > r->top)
		return true;
	if (r->top - seq >= LS_DISCO_REPLAY_WINDOW)
		return false;
	return !(r->bits >> (r->top - seq) & 1);
}

void ls_disco_replay_mark(struct ls_disco_replay *r, uint64_t seq)
{
	if (seq > r->top) {
		uint64_t shift = seq - r->top;

		r->bits = shift >= LS_DISCO_REPLAY_WINDOW ? 0 : r->bits << shift;
		r->bits |= 1;
		r->top = seq;
	} else if (r->top - seq < LS_DISCO_REPLAY_WINDOW) {
		r->bits |= (uint64_t)1 << (r->top - seq);
	}
}

uint64_t ls_disco_pair_next_seq(struct ls_disco_pair *dp)
{
	if (!dp->tx_seq) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		dp->tx_seq = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	}
	return ++dp->tx_seq;
}

/* A probe's address: family (4/6) | port | address. The bytes written, or -EINVAL. */
static int probe_put_addr(uint8_t *out, const char *s)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (strnlen(s, LS_RPROXY_ENDPOINT_LEN) == LS_RPROXY_ENDPOINT_LEN || ls_rproxy_parse_addr(s, &ss, &len))
		return -EINVAL;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;

		out[0] = 4;
		memcpy(out + 1, &sin->sin_port, 2);
		memcpy(out + 3, &sin->sin_addr, 4);
		return 7;
	}
	{
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;

		out[0] = 6;
		memcpy(out + 1, &sin6->sin6_port, 2);
		memcpy(out + 3, &sin6->sin6_addr, 16);
		return 19;
	}
}

/* The bytes an address took, or -EBADMSG (another family, short, port 0). */
static int probe_get_addr(const uint8_t *in, size_t left, char out[LS_RPROXY_ENDPOINT_LEN])
{
	struct sockaddr_storage ss = { 0 };
	size_t n;

	if (left < 7 || (in[0] != 4 && in[0] != 6))
		return -EBADMSG;
	n = in[0] == 4 ? 7 : 19;
	if (left < n || (!in[1] && !in[2]))
		return -EBADMSG;
	if (in[0] == 4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_port, in + 1, 2);
		memcpy(&sin->sin_addr, in + 3, 4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_port, in + 1, 2);
		memcpy(&sin6->sin6_addr, in + 3, 16);
	}
	addr_str(&ss, out, LS_RPROXY_ENDPOINT_LEN);
	return (int)n;
}

static void probe_ad(uint8_t ad[LS_DISCO_PROBE_HDR_LEN + 2 * LSR_KEY_LEN], const uint8_t *hdr,
		     const uint8_t from[LSR_KEY_LEN], const uint8_t to[LSR_KEY_LEN])
{
	memcpy(ad, hdr, LS_DISCO_PROBE_HDR_LEN);
	memcpy(ad + LS_DISCO_PROBE_HDR_LEN, from, LSR_KEY_LEN);
	memcpy(ad + LS_DISCO_PROBE_HDR_LEN + LSR_KEY_LEN, to, LSR_KEY_LEN);
}

int ls_disco_probe_seal(const struct ls_rproxy_probe *p, uint64_t seq, const uint8_t from[LSR_KEY_LEN],
			const uint8_t to[LSR_KEY_LEN], const uint8_t key[LS_DISCO_KEY_LEN], uint8_t *out,
			size_t size)
{
	uint8_t body[LS_DISCO_PROBE_MAX_LEN], ad[LS_DISCO_PROBE_HDR_LEN + 2 * LSR_KEY_LEN], *nonce;
	unsigned long long clen;
	size_t n = LS_DISCO_PROBE_BODY_MIN, total;
	int r;

	if (p->n_endpoints > LS_RPROXY_PROBE_MAX_ENDPOINTS)
		return -EINVAL;
	put_be64(body, seq);
	put_be64(body + 8, p->ts_ms);
	body[16] = (uint8_t)((p->reply ? 1 : 0) | (p->turn[0] ? 2 : 0));
	body[17] = (uint8_t)p->n_endpoints;
	if (p->turn[0]) {
		if ((r = probe_put_addr(body + n, p->turn)) < 0)
			return r;
		n += (size_t)r;
	}
	for (size_t i = 0; i < p->n_endpoints; i++) {
		if ((r = probe_put_addr(body + n, p->endpoints[i])) < 0)
			return r;
		n += (size_t)r;
	}
	total = LS_DISCO_PROBE_HDR_LEN + LS_DISCO_NONCE_LEN + n + LS_DISCO_TAG_LEN;
	if (total > size)
		return -EMSGSIZE;
	memcpy(out, LS_DISCO_MAGIC, 4);
	out[4] = LS_DISCO_PROBE;
	out[5] = LS_DISCO_VERSION;
	out[6] = out[7] = 0;
	nonce = out + LS_DISCO_PROBE_HDR_LEN;
	randombytes_buf(nonce, LS_DISCO_NONCE_LEN);
	probe_ad(ad, out, from, to);
	crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + LS_DISCO_NONCE_LEN, &clen, body, n, ad, sizeof(ad), NULL,
						   nonce, key);
	sodium_memzero(body, sizeof(body));
	return (int)total;
}

int ls_disco_probe_peek(const uint8_t *buf, size_t len)
{
	if (!buf || len < 6 || memcmp(buf, LS_DISCO_MAGIC, 4) || buf[4] != LS_DISCO_PROBE || buf[5] != LS_DISCO_VERSION)
		return -EPROTO;
	if (len < LS_DISCO_PROBE_MIN_LEN || len > LS_DISCO_PROBE_MAX_LEN || buf[6] || buf[7])
		return -EBADMSG;
	return 0;
}

int ls_disco_probe_open(const uint8_t *buf, size_t len, const uint8_t from[LSR_KEY_LEN],
			const uint8_t to[LSR_KEY_LEN], const uint8_t key[LS_DISCO_KEY_LEN], uint64_t *seq,
			struct ls_rproxy_probe *p)
{
	uint8_t body[LS_DISCO_PROBE_MAX_LEN], ad[LS_DISCO_PROBE_HDR_LEN + 2 * LSR_KEY_LEN];
	const uint8_t *nonce = buf + LS_DISCO_PROBE_HDR_LEN;
	unsigned long long blen;
	size_t off = LS_DISCO_PROBE_BODY_MIN;
	int ret = ls_disco_probe_peek(buf, len), r;

	memset(p, 0, sizeof(*p));
	*seq = 0;
	if (ret)
		return ret;
	probe_ad(ad, buf, from, to);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(body, &blen, NULL, nonce + LS_DISCO_NONCE_LEN,
						       len - LS_DISCO_PROBE_HDR_LEN - LS_DISCO_NONCE_LEN, ad, sizeof(ad),
						       nonce, key))
		return -EACCES;
	ret = -EBADMSG;
	if (blen < LS_DISCO_PROBE_BODY_MIN || (body[16] & ~3u) || body[17] > LS_RPROXY_PROBE_MAX_ENDPOINTS)
		goto cleanup;
	p->ts_ms = get_be64(body + 8);
	p->reply = body[16] & 1;
	if (body[16] & 2) {
		if ((r = probe_get_addr(body + off, blen - off, p->turn)) < 0)
			goto cleanup;
		off += (size_t)r;
	}
	for (size_t i = 0; i < body[17]; i++) {
		if ((r = probe_get_addr(body + off, blen - off, p->endpoints[i])) < 0)
			goto cleanup;
		off += (size_t)r;
	}
	p->n_endpoints = body[17];
	if (off != blen)
		goto cleanup;
	*seq = get_be64(body);
	ret = 0;
cleanup:
	if (ret)
		memset(p, 0, sizeof(*p));
	sodium_memzero(body, sizeof(body));
	return ret;
}

int ls_raw_udp_open(int family, uint16_t wg_port, uint32_t mark)
{
	/* IPv4 raw sockets see the IP header first (X = its length), IPv6 ones the UDP header.
	 * Kept: to wg_port, and STUN's magic cookie at payload offset 4, or the disco magic
	 * with the UDP length of a version 2 message (or of version 1, to count and refuse it). */
	struct sock_filter f4[] = {
		BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),
		BPF_STMT(BPF_LD | BPF_H | BPF_IND, 2),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, wg_port, 0, 8),
		BPF_STMT(BPF_LD | BPF_W | BPF_IND, 12),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, LS_STUN_MAGIC_COOKIE, 5, 0),
		BPF_STMT(BPF_LD | BPF_W | BPF_IND, 8),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xff4c5344, 0, 4),
		BPF_STMT(BPF_LD | BPF_H | BPF_IND, 4),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 8 + LS_DISCO_LEN, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 8 + LS_DISCO_V1_LEN, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0xffff),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_filter f6[] = {
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 2),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, wg_port, 0, 8),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 12),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, LS_STUN_MAGIC_COOKIE, 5, 0),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 8),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xff4c5344, 0, 4),
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 4),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 8 + LS_DISCO_LEN, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 8 + LS_DISCO_V1_LEN, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0xffff),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = family == AF_INET ? (struct sock_fprog){ (unsigned short)ARRAY_SIZE(f4), f4 }
						   : (struct sock_fprog){ (unsigned short)ARRAY_SIZE(f6), f6 };
	int fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP), ret;

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
		goto fail;
	if (mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0)
		goto fail;
	if (family == AF_INET6) {
		int off = 6; /* the kernel fills in the UDP checksum (mandatory over IPv6) */

		int one = 1;

		if (setsockopt(fd, IPPROTO_IPV6, IPV6_CHECKSUM, &off, sizeof(off)) < 0 ||
		    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) < 0)
			goto fail;
	}
	/* What queued before the filter was attached goes. */
	{
		uint8_t b[16];

		while (recv(fd, b, sizeof(b), MSG_DONTWAIT) >= 0)
			;
	}
	return fd;
fail:
	ret = -errno;
	close(fd);
	return ret;
}

int ls_raw_udp_send(int fd, uint16_t sport, const struct sockaddr_storage *dst, const struct sockaddr_storage *src,
		    const void *payload, size_t len)
{
	union {
		struct cmsghdr h;
		uint8_t b[CMSG_SPACE(sizeof(struct in6_pktinfo))];
	} cm;
	struct iovec iov;
	struct msghdr mh = { 0 };
	uint8_t buf[8 + 1500];
	struct sockaddr_storage to = *dst;
	uint16_t dport;

	if (len > sizeof(buf) - 8)
		return -EMSGSIZE;
	if (dst->ss_family == AF_INET) {
		dport = ntohs(((const struct sockaddr_in *)dst)->sin_port);
		((struct sockaddr_in *)&to)->sin_port = 0;
	} else if (dst->ss_family == AF_INET6) {
		dport = ntohs(((const struct sockaddr_in6 *)dst)->sin6_port);
		((struct sockaddr_in6 *)&to)->sin6_port = 0;
	} else {
		return -EAFNOSUPPORT;
	}
	buf[0] = (uint8_t)(sport >> 8);
	buf[1] = (uint8_t)sport;
	buf[2] = (uint8_t)(dport >> 8);
	buf[3] = (uint8_t)dport;
	buf[4] = (uint8_t)((len + 8) >> 8);
	buf[5] = (uint8_t)(len + 8);
	buf[6] = buf[7] = 0; /* IPv4: no checksum; IPv6: the kernel's (IPV6_CHECKSUM) */
	memcpy(buf + 8, payload, len);
	iov.iov_base = buf;
	iov.iov_len = len + 8;
	mh.msg_name = &to;
	mh.msg_namelen = sa_len(&to);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	memset(&cm, 0, sizeof(cm));
	if (src && src->ss_family == AF_INET && dst->ss_family == AF_INET) {
		struct in_pktinfo pi = { .ipi_spec_dst = ((const struct sockaddr_in *)src)->sin_addr };

		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(pi));
		cm.h.cmsg_level = IPPROTO_IP;
		cm.h.cmsg_type = IP_PKTINFO;
		cm.h.cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(&cm.h), &pi, sizeof(pi));
	} else if (src && src->ss_family == AF_INET6 && dst->ss_family == AF_INET6) {
		struct in6_pktinfo pi = { .ipi6_addr = ((const struct sockaddr_in6 *)src)->sin6_addr };

		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(pi));
		cm.h.cmsg_level = IPPROTO_IPV6;
		cm.h.cmsg_type = IPV6_PKTINFO;
		cm.h.cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(&cm.h), &pi, sizeof(pi));
	}
	if (sendmsg(fd, &mh, MSG_DONTWAIT) < 0)
		return -errno;
	return 0;
}

int ls_raw_udp_parse(int family, const uint8_t *pkt, size_t len, uint16_t wg_port, struct sockaddr_storage *src,
		     struct sockaddr_storage *dst, const uint8_t **payload, size_t *plen)
{
	size_t off = 0, ulen;

	memset(dst, 0, sizeof(*dst));

	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)src;

		if (len < 20 || (pkt[0] >> 4) != 4 || (pkt[0] & 0xf) < 5 || pkt[9] != IPPROTO_UDP)
			return -EBADMSG;
		off = (size_t)(pkt[0] & 0xf) * 4;
		if (len < off + 8 || (((pkt[6] & 0x1f) << 8) | pkt[7]) || (pkt[6] & 0x20))
			return -EBADMSG; /* a fragment */
		memset(src, 0, sizeof(*src));
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, pkt + 12, 4);
		sin->sin_port = htons((uint16_t)(pkt[off] << 8 | pkt[off + 1]));
		((struct sockaddr_in *)dst)->sin_family = AF_INET;
		memcpy(&((struct sockaddr_in *)dst)->sin_addr, pkt + 16, 4);
	} else if (family == AF_INET6) {
		if (len < 8)
			return -EBADMSG;
		((struct sockaddr_in6 *)src)->sin6_port = htons((uint16_t)(pkt[0] << 8 | pkt[1]));
	} else {
		return -EAFNOSUPPORT;
	}
	if ((pkt[off + 2] << 8 | pkt[off + 3]) != wg_port)
		return -EBADMSG;
	ulen = (size_t)(pkt[off + 4] << 8 | pkt[off + 5]);
	if (ulen < 8 || off + ulen > len)
		return -EBADMSG;
	*payload = pkt + off + 8;
	*plen = ulen - 8;
	return 0;
}
