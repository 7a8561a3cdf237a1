// SPDX-License-Identifier: MIT
/*
 * lightscale agent: one process per profile.
 *
 *   main thread     local API socket, rtnetlink monitor (re-applies what another manager
 *                   deletes), engine liveness, exit-node choice changes, signals
 *   netmap thread   long-polls /v1/netmap and reconciles (deltas touch only their peers)
 *   heartbeat thread  endpoints (local and STUN-discovered; the server adds what it sees)
 *                   on a timer, and when the addresses or the STUN answer change
 *   path thread     NAT traversal and relay fallback per peer: STUN and pings from the
 *                   WireGuard port, probes through the stream relay, the relay proxy
 *                   (relayproxy.h), and the endpoint each peer gets (see "NAT traversal")
 *
 * The last full netmap is cached and reapplied before the control plane answers; an
 * unreachable control plane never removes peers. SIGTERM leaves the data plane up
 * unless --down-on-exit.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <malloc.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "keys.h"
#include "log.h"
#include "mnet.h"
#include "netmap.h"
#include "exitsel.h"
#include "l2seg.h"
#include "localui.h"
#include "perapp.h"
#include "relayproxy.h"
#include "rtnl.h"
#include "stun.h"
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
	struct np *np;      /* NAT traversal and relays (path thread) */
	char observed[LS_ENDPOINT_STRLEN]; /* the control plane's view of us (heartbeat) */
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
		ls_perapp_apply(a->prof, a->nm); /* app routes' exit peers (perapp.h) */
		ls_l2seg_apply(a->prof, a->nm);  /* L2 segments' FDB follows the peers (l2seg.h) */
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
		ls_perapp_apply(a->prof, a->nm);
		ls_l2seg_apply(a->prof, a->nm);
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

/* ---- NAT traversal and relay fallback (path thread) --------------------------------
 *
 * Per peer, the endpoint WireGuard uses is chosen here (dataplane.h ep_override):
 *
 *   direct    a candidate endpoint answered our ping from the WireGuard port (the
 *             candidates: the peer's netmap endpoints = its local, STUN-discovered and
 *             server-observed ones, plus what its probes and pings tell us)
 *   relayed   no direct answer for NP_DIRECT_TIMEOUT_MS: the relay proxy's loopback
 *             address for the peer, 127.77.X.Y:N (UDP relay, TURN, stream relay: relayproxy.h)
 *   rotating  no answer and no relay: the netmap's candidates in turn, the next one
 *             when the handshake stays stale NP_ROTATE_MS after the last change
 *
 * While not direct, every candidate is pinged every NP_SEARCH_MS and a probe through
 * the stream relay asks the peer to ping us at the same moment (both NATs open their
 * mappings at once); the first pong moves the peer back to direct. STUN Binding
 * requests leave from the WireGuard port too (relayproxy.h, ls_raw_udp_*), so the
 * mapped address they discover is WireGuard's, and go into the heartbeat.
 *
 * Pings and pongs are sealed with a key per pair of WireGuard keys (relayproxy.h, "direct
 * path discovery"): a ping is answered only when it opens under the key of a peer of the
 * netmap (looked up first: an unknown key costs no X25519); a pong counts only when it
 * opens, carries the txid of an open round to the address it came from, and its seq is
 * new in the peer's replay window. The pair key, the window and our seq to the peer live
 * in the cold record (56 bytes), the key derived when first needed and wiped when the
 * peer leaves or our key rotates. What is refused is counted by reason (status:
 * .nat.counters.rejected). Probes through the stream relay are sealed with the same pair
 * key and pass the same window (relayproxy.h, "Probes"; np_pair hands the relay proxy
 * the peer's state): a probe that does not open, or is old, names no address we ping
 * (refused by reason in .nat.counters.rejected.probes).
 *
 * A relayed peer's path MTU: a relay's framing makes each WireGuard datagram longer
 * (relayproxy.h, "the MTU of a relayed path"), so while a peer is relayed, host routes to
 * its overlay addresses carry the lower MTU (RTAX_MTU): the kernel then sizes what it
 * sends (ping -M do gets "message too long, mtu=N", TCP's MSS follows) and answers
 * forwarded packets with "fragmentation needed" / "packet too big", and no relay datagram
 * fragments on the underlay. The MTU is the lowest over the datagram relays of the
 * netmap (UDP relays, TURN), whichever of them or the stream relay the peer uses at the
 * moment: the relay proxy moves it between them on its own, and an MTU that followed
 * every move would change under running connections and churn routes (with stream relays
 * alone nothing fragments: no routes). The routes go when the peer returns to direct.
 * A lower MTU for the whole interface would cost every direct peer 20-40 bytes; a
 * per-peer route costs only the relayed ones. The routes are in the main table, not the
 * profile's: our rule at P+1 looks up main first, where the overlay's on-link route
 * lives, so a host route in the profile's table would never be consulted; a /32 (/128)
 * in main beside that on-link prefix changes nothing but the MTU, and only addresses
 * inside the network's overlay prefixes get one. They carry protocol NP_RTPROT
 * ("proto 76" in `ip route`), so a restarted agent finds and removes the ones it left.
 */
enum {
	NP_TICK_MS = 250,
	NP_GRACE_MS = 3000,            /* a new peer keeps the netmap's endpoint this long */
	NP_PING_DIRECT_MS = 2500,      /* ping the direct endpoint in use this often */
	NP_DIRECT_TIMEOUT_MS = 9000,   /* no pong this long: the direct path is gone */
	NP_SEARCH_MS = 3000,           /* ping every candidate this often while not direct */
	NP_SEARCH_SLOW_MS = 12000,     /* ... after NP_SEARCH_SLOW_AFTER_MS without success */
	NP_SEARCH_SLOW_AFTER_MS = 60000,
	NP_PROBE_MS = 6000,            /* "ping me now" through the stream relay while not direct */
	NP_ANSWER_MS = 1000,           /* pings triggered by a probe or ping: at most this often */
	NP_ROTATE_MS = 15000,          /* no fresh handshake this long after a change: next candidate */
	NP_HANDSHAKE_FRESH_S = 180,
	NP_STUN_MS = 30000, NP_STUN_RETRY_MS = 5000,
	NP_MAX_CAND = 16,
	NP_MAX_STUN = 3,
	NP_BUSY_MS = 5000,             /* WireGuard moved bytes this recently: the peer is in use */
	NP_IDLE_MAX_MS = 300000,       /* an idle peer's pings back off exponentially up to this */
	NP_RP_GRACE_MS = 30000,        /* direct this long (and quiet): out of the relay proxy */
	NP_RTPROT = 76,                /* rtm_protocol of our per-peer MTU routes */
	NP_MAX_MROUTE = 2,             /* overlay addresses per peer that get one (IPv4, IPv6) */
};

/* An endpoint in 20 bytes (a sockaddr_storage is 128): family, port (network order),
 * address (4 or 16 bytes); zero-filled so memcmp compares. */
struct np_addr {
	uint16_t family;
	uint16_t port;
	uint8_t a[16];
};

enum np_mode { NP_NEW = 0, NP_DIRECT, NP_RELAYED, NP_ROTATING };
static const char *const np_mode_names[] = { "new", "direct", "relayed", "rotating" };

/* A relayed peer's MTU routes: what was wanted (so that a route the kernel refused is not
 * asked for again every tick) and which of them are installed, to remove exactly those. */
struct np_mroute {
	int ifindex;
	uint16_t mtu;
	uint8_t n;
	uint8_t installed; /* bit i: dst[i] */
	struct ls_prefix dst[NP_MAX_MROUTE];
};

/* Per peer, two parts. The cold record (about 140 bytes plus the candidates) is all a
 * settled peer needs: idle, direct, its WireGuard handshake fresh, no ping out, the
 * endpoint set. The hot part (timers of pings, searches, probes and rotation; the
 * engine's endpoint; the relay's loopback) exists only while a peer is new, busy,
 * searching, rotating, relayed or has a ping out, and is freed once it settles. */
struct np_hot {
	uint64_t added, search_since;
	uint64_t last_ping, last_search, last_probe, last_answer;
	uint64_t ping_out;         /* the first ping to the direct endpoint not answered yet */
	uint64_t round[2];         /* this ping round's secret and the last one's (np_txid) */
	struct np_mroute mr;       /* MTU routes while relayed (n 0: none). Here, not a block of
				    * its own: 10,000 small blocks scattered in the path thread's
				    * arena kept megabytes of its pages. */
	uint64_t rot_at;
	uint8_t roamed;            /* engine reads in a row with another endpoint than ours */
	struct np_addr want, wg_ep, left; /* the engine's endpoint; the one rotation left */
	struct sockaddr_in loop;
};

struct np_peer {
	uint8_t key[LS_WG_KEY_LEN];
	/* the pair key of pings, pongs and probes (has_dkey), the seqs of its seen, our seq to
	 * it (relayproxy.h; the relay proxy seals and opens probes with it: np_pair) */
	struct ls_disco_pair dp;
	int64_t id;
	struct np_addr *cand;      /* the netmap's first, then learned ones */
	struct np_hot *h;          /* NULL: settled (want == direct, nothing pending) */
	uint8_t n_cand, n_nm_cand, rot;
	uint8_t mode;              /* enum np_mode */
	uint8_t rpath;             /* enum ls_rproxy_path */
	bool has_direct : 1, has_want : 1, has_loop : 1, has_wg_ep : 1, set_pending : 1, has_left : 1;
	bool in_rp : 1;            /* the relay proxy has the peer (a loopback address) */
	bool has_dkey : 1;
	uint16_t mtu;              /* the path MTU in effect (MTU routes); 0: the interface's */
	uint32_t every;            /* the current ping interval (backs off while idle) */
	uint32_t hs;               /* the last handshake, Unix seconds (0: none) */
	uint32_t rx, tx;           /* the engine's byte counters (low bits: only change is seen) */
	uint64_t rx_at, tx_at;     /* ... and when they last grew */
	uint64_t mode_since, last_pong;
	uint64_t wake_at;          /* settled while rotating: the next search is due */
	struct np_addr direct;
	uint32_t fallbacks, returns, rotations, pings, pongs;
};

struct np_stun {
	struct sockaddr_storage server;
	char addr[LS_ENDPOINT_STRLEN];
	uint8_t txid[LS_STUN_TXID_LEN];
	uint64_t sent, answered;
	char mapped[LS_ENDPOINT_STRLEN];
};

struct np {
	struct agent *a;
	int raw4, raw6;
	uint16_t port;
	struct ls_rproxy *rp;
	uint8_t rp_pub[LS_WG_KEY_LEN];
	struct np_peer **peers; /* sorted by key */
	size_t n_peers;
	int64_t nm_version;
	json_t *relays_seen; /* the relays section last applied */
	struct np_stun stun[NP_MAX_STUN];
	size_t n_stun;
	uint64_t stun_next, stun_ok_at;
	char **local;
	size_t n_local;
	char eps[32][LS_ENDPOINT_STRLEN]; /* ours: local, then STUN-mapped */
	size_t n_eps;
	uint64_t now;
	uint8_t tx_secret[crypto_shorthash_KEYBYTES]; /* keys np_txid */
	uint8_t dk_pub[LS_WG_KEY_LEN];      /* our public key the pair keys were made with */
	unsigned if_mtu;                    /* the interface's MTU */
	struct mnl_socket *nl;              /* rtnetlink for the MTU routes (opened when needed) */
	uint32_t nl_seq;
	bool routes_swept;                  /* MTU routes of an earlier run removed */
	uint64_t c_pings_in, c_pongs_in, c_probes_in, c_pongs_unmatched;
	/* refused pings and pongs, by reason; their sum is "bad" */
	uint64_t c_malformed, c_v1, c_not_ours, c_unknown, c_unauth, c_replayed;
	size_t n_cooled; /* hot parts freed since the last malloc_trim */
};

static int cmp_np_key(const void *k, const void *e)
{
	return memcmp(k, (*(struct np_peer *const *)e)->key, LS_WG_KEY_LEN);
}

static int cmp_np_key_sort(const void *x, const void *y)
{
	return memcmp((*(struct np_peer *const *)x)->key, (*(struct np_peer *const *)y)->key, LS_WG_KEY_LEN);
}

static struct np_peer *np_find(struct np *np, const uint8_t key[LS_WG_KEY_LEN])
{
	struct np_peer **p = bsearch(key, np->peers, np->n_peers, sizeof(*np->peers), cmp_np_key);

	return p ? *p : NULL;
}

static bool np_sa_eq(const struct sockaddr_storage *x, const struct sockaddr_storage *y)
{
	char a[LS_ENDPOINT_STRLEN], b[LS_ENDPOINT_STRLEN];

	ls_endpoint_format((const struct sockaddr *)x, a);
	ls_endpoint_format((const struct sockaddr *)y, b);
	return !strcmp(a, b);
}

/* An IPv4-mapped IPv6 address (the userspace engine's dual-stack socket) as IPv4. */
static void np_unmap(struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = s6->sin6_port };

		memcpy(&s4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
		memset(ss, 0, sizeof(*ss));
		memcpy(ss, &s4, sizeof(s4));
	}
}

static struct np_addr np_pack(const struct sockaddr_storage *ss)
{
	struct np_addr o = { 0 };

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		o.family = AF_INET;
		o.port = s4->sin_port;
		memcpy(o.a, &s4->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		o.port = s6->sin6_port;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			o.family = AF_INET;
			memcpy(o.a, &s6->sin6_addr.s6_addr[12], 4);
		} else {
			o.family = AF_INET6;
			memcpy(o.a, &s6->sin6_addr, 16);
		}
	}
	return o;
}

static struct sockaddr_storage np_unpack(const struct np_addr *o)
{
	struct sockaddr_storage ss = { 0 };

	if (o->family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = o->port;
		memcpy(&s4->sin_addr, o->a, 4);
	} else if (o->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = o->port;
		memcpy(&s6->sin6_addr, o->a, 16);
	}
	return ss;
}

static bool np_addr_eq(const struct np_addr *x, const struct np_addr *y)
{
	return !memcmp(x, y, sizeof(*x));
}

static void np_addr_fmt(const struct np_addr *o, char out[LS_ENDPOINT_STRLEN])
{
	struct sockaddr_storage ss = np_unpack(o);

	ls_endpoint_format((const struct sockaddr *)&ss, out);
}

static void np_add_cand(struct np_peer *p, const struct np_addr *c)
{
	for (size_t i = 0; i < p->n_cand; i++)
		if (np_addr_eq(&p->cand[i], c))
			return;
	if (p->n_cand < NP_MAX_CAND) {
		struct np_addr *v = realloc(p->cand, (p->n_cand + 1u) * sizeof(*v));

		if (!v)
			return;
		p->cand = v;
		p->cand[p->n_cand++] = *c;
	} else if (p->n_nm_cand < NP_MAX_CAND) {
		/* learned ones rotate through the slots after the netmap's */
		memmove(&p->cand[p->n_nm_cand], &p->cand[p->n_nm_cand + 1],
			(NP_MAX_CAND - p->n_nm_cand - 1) * sizeof(p->cand[0]));
		p->cand[NP_MAX_CAND - 1] = *c;
	}
}

static void np_add_cand_sa(struct np_peer *p, const struct sockaddr_storage *ss)
{
	struct np_addr c = np_pack(ss);

	np_add_cand(p, &c);
}

static void np_peer_free(struct np_peer *p)
{
	if (p) {
		free(p->cand);
		free(p->h);
		sodium_memzero(p, sizeof(*p)); /* the pair key */
	}
	free(p);
}

/* The endpoint the peer must have: a settled one keeps its direct endpoint, or the
 * candidate it rotated to. */
static const struct np_addr *np_want(const struct np_peer *p)
{
	if (p->h)
		return &p->h->want;
	if (p->mode == NP_ROTATING && p->n_cand)
		return &p->cand[p->rot < p->n_cand ? p->rot : 0];
	return &p->direct;
}

/* The hot part of a peer, made when it is needed: a settled peer's state restored
 * (the endpoint in use, no ping out, its relay loopback asked for again); NULL when
 * out of memory. */
static struct np_hot *np_hot(struct np_peer *p)
{
	struct np_hot *h;

	if (p->h)
		return p->h;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->added = h->search_since = p->mode_since;
	randombytes_buf(&h->round[0], sizeof(h->round[0]));
	h->want = *np_want(p);
	h->wg_ep = h->want;
	p->wake_at = 0;
	p->has_left = false;
	p->has_loop = false; /* the relay proxy gives the same loopback again */
	p->h = h;
	return h;
}

/* Settled (the hot part can go, or stay away): an idle direct peer with a fresh
 * handshake and no ping out; or an idle peer rotating through its endpoints without a
 * relay (WireGuard sends nothing, so no rotation) until its next backed-off search.
 * Either way with its endpoint set and the engine using it. */
static bool np_settled(const struct np *np, const struct np_peer *p, bool busy, int64_t age)
{
	const struct np_hot *h = p->h;
	uint64_t now = np->now;

	/* (out of the relay proxy first: after its grace, in np_peer_tick_hot) */
	if (busy || !p->has_want || p->set_pending || p->in_rp)
		return false;
	if (p->mode == NP_DIRECT) {
		if (!p->has_direct || !p->last_pong || age >= NP_HANDSHAKE_FRESH_S)
			return false;
		return !h || (!h->ping_out && np_addr_eq(&h->want, &p->direct) &&
			      (!p->has_wg_ep || np_addr_eq(&h->wg_ep, &p->direct)));
	}
	if (p->mode != NP_ROTATING || np->rp || !p->n_cand || (p->tx_at && now - p->tx_at < 2 * NP_ROTATE_MS))
		return false;
	if (!h)
		return now < p->wake_at;
	return !h->roamed && np_addr_eq(&h->want, &p->cand[p->rot < p->n_cand ? p->rot : 0]) &&
	       (!p->has_wg_ep || np_addr_eq(&h->wg_ep, &h->want)) && h->last_search + p->every > now + 1000;
}

/* The dataplane's hook (a->lock held): the endpoint a peer must have now. */
static bool np_override(void *ctx, const uint8_t key[LS_WG_KEY_LEN], struct sockaddr_storage *out)
{
	struct agent *a = ctx;
	struct np_peer *p;

	if (!a->np)
		return false;
	p = np_find(a->np, key);
	if (!p || !p->has_want)
		return false;
	*out = np_unpack(np_want(p));
	return true;
}

static void np_send_from(struct np *np, const struct sockaddr_storage *to, const struct sockaddr_storage *from,
			 const void *buf, size_t len)
{
	int fd = to->ss_family == AF_INET ? np->raw4 : to->ss_family == AF_INET6 ? np->raw6 : -1;
	int err;

	if (fd < 0)
		return;
	err = ls_raw_udp_send(fd, np->port, to, from, buf, len);
	if (err && err != -EAGAIN && err != -ENETUNREACH && err != -EHOSTUNREACH && err != -EPERM)
		pr_debug("nat: send: %s", strerror(-err));
}

static void np_send(struct np *np, const struct sockaddr_storage *to, const void *buf, size_t len)
{
	np_send_from(np, to, NULL, buf, len);
}

/* The pair key with a peer: derived the first time it is needed, then kept in its cold
 * record. NULL when the peer's key is a low-order point (nothing can be sealed). */
static const uint8_t *np_dkey(struct np *np, struct np_peer *p)
{
	if (!p->has_dkey) {
		if (ls_disco_key(p->dp.key, np->a->prof->wg_priv, np->a->prof->wg_pub, p->key))
			return NULL;
		p->has_dkey = true;
	}
	return p->dp.key;
}

/* relayproxy's pair callback: a probe through the stream relay is sealed and opened with
 * the pair key, our seq and the peer's replay window of its pings and pongs; a key that
 * is not a peer's gets none (its probes are refused before any X25519). */
static struct ls_disco_pair *np_pair(void *ctx, const uint8_t key[LSR_KEY_LEN])
{
	struct np *np = ctx;
	struct np_peer *p = np_find(np, key);

	return p && np_dkey(np, p) ? &p->dp : NULL;
}

/* The txid of the pings of a round to one address: a keyed hash of both, so a pong
 * counts only from the address its ping went to, and no txid need be stored. */
static uint64_t np_txid(const struct np *np, uint64_t round, const struct np_addr *a)
{
	uint8_t in[sizeof(round) + sizeof(*a)], out[crypto_shorthash_BYTES];
	uint64_t t;

	memcpy(in, &round, sizeof(round));
	memcpy(in + sizeof(round), a, sizeof(*a));
	crypto_shorthash(out, in, sizeof(in), np->tx_secret);
	memcpy(&t, out, sizeof(t));
	return t ? t : 1;
}

/* A sealed ping or pong to a peer, from the WireGuard port (and from the address
 * `from`, when given). */
static void np_seal_send(struct np *np, struct np_peer *p, uint8_t type, uint64_t txid,
			 const struct sockaddr_storage *to, const struct sockaddr_storage *from)
{
	struct ls_disco_msg m = { .type = type, .txid = txid };
	const uint8_t *k = np_dkey(np, p);
	uint8_t buf[LS_DISCO_LEN];

	if (!k)
		return;
	/* per peer, so the peer's replay window spans 64 of ours to it, however many other
	 * peers we ping meanwhile; from the clock, so it grows across our restarts too */
	m.seq = ls_disco_pair_next_seq(&p->dp);
	memcpy(m.from, np->a->prof->wg_pub, LS_WG_KEY_LEN);
	memcpy(m.to, p->key, LS_WG_KEY_LEN);
	ls_disco_seal(&m, k, buf);
	np_send_from(np, to, from, buf, sizeof(buf));
}

static void np_ping(struct np *np, struct np_peer *p, const struct np_addr *a)
{
	struct sockaddr_storage ss = np_unpack(a);

	np_seal_send(np, p, LS_DISCO_PING, np_txid(np, p->h->round[0], a), &ss, NULL);
	p->pings++;
}

/* A new round (the last round's pongs still count), then every candidate. */
static void np_new_round(struct np_hot *h)
{
	h->round[1] = h->round[0];
	randombytes_buf(&h->round[0], sizeof(h->round[0]));
}

static void np_search(struct np *np, struct np_peer *p)
{
	np_new_round(p->h);
	p->h->last_search = p->h->last_ping = np->now;
	for (size_t i = 0; i < p->n_cand; i++)
		np_ping(np, p, &p->cand[i]);
}

static void np_probe(struct np *np, struct np_peer *p, bool reply)
{
	struct ls_rproxy_probe pr = { .ts_ms = (uint64_t)ls_unix_time() * 1000, .reply = reply };

	if (!np->rp)
		return;
	for (size_t i = 0; i < np->n_eps && pr.n_endpoints < LS_RPROXY_PROBE_MAX_ENDPOINTS; i++)
		snprintf(pr.endpoints[pr.n_endpoints++], LS_RPROXY_ENDPOINT_LEN, "%s", np->eps[i]);
	if (ls_rproxy_send_probe(np->rp, p->key, &pr) == 0)
		p->h->last_probe = np->now;
}

/* relayproxy's probe callback: the peer asks us to send UDP now. */
static void np_on_probe(void *ctx, const uint8_t from[LSR_KEY_LEN], const struct ls_rproxy_probe *pr)
{
	struct np *np = ctx;
	struct np_peer *p = np_find(np, from);

	np->c_probes_in++;
	if (!p || !np_hot(p))
		return;
	for (size_t i = 0; i < pr->n_endpoints; i++) {
		struct sockaddr_storage ss;

		if (!ls_endpoint_parse(pr->endpoints[i], &ss, NULL))
			np_add_cand_sa(p, &ss);
	}
	if (np->now - p->h->last_answer >= NP_ANSWER_MS) {
		p->h->last_answer = np->now;
		np_search(np, p);
	}
	if (!pr->reply)
		np_probe(np, p, true);
}

static void np_disco_input(struct np *np, const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
			   const uint8_t *buf, size_t len)
{
	struct ls_disco_msg m;
	struct np_peer *p;
	const uint8_t *k;
	struct np_addr s = np_pack(src);
	int ret = ls_disco_peek(buf, len, &m);

	if (ret) {
		if (ret == -EPROTO)
			np->c_v1++; /* an unauthenticated version 1 ping or pong */
		else
			np->c_malformed++;
		return;
	}
	if (memcmp(m.to, np->a->prof->wg_pub, LS_WG_KEY_LEN)) {
		np->c_not_ours++;
		return;
	}
	/* the peer first: a key that is not in the netmap costs no X25519 */
	p = np_find(np, m.from);
	if (!p) {
		np->c_unknown++;
		return;
	}
	k = np_dkey(np, p);
	if (!k || ls_disco_open(buf, len, k, &m)) {
		np->c_unauth++;
		return;
	}
	if (!ls_disco_replay_ok(&p->dp.rw, m.seq)) {
		np->c_replayed++;
		return;
	}
	if (m.type == LS_DISCO_PING) {
		ls_disco_replay_mark(&p->dp.rw, m.seq);
		np->c_pings_in++;
		/* from the address the ping came to: the path it tested */
		np_seal_send(np, p, LS_DISCO_PONG, m.txid, src, dst->ss_family ? dst : NULL);
		/* where the peer is now: worth a ping of ours at once (it opens our NAT too) */
		if (p->mode != NP_DIRECT)
			np_hot(p); /* (before its candidates change) */
		np_add_cand(p, &s);
		if (p->mode != NP_DIRECT && p->h && np->now - p->h->last_answer >= NP_ANSWER_MS) {
			p->h->last_answer = np->now;
			np_search(np, p);
		}
		return;
	}
	np->c_pongs_in++;
	/* (a settled peer has no ping out: nothing to match) */
	if (!p->h) {
		np->c_pongs_unmatched++;
		return;
	}
	ls_disco_replay_mark(&p->dp.rw, m.seq); /* whatever it does, it does once */
	if (m.txid != np_txid(np, p->h->round[0], &s) && m.txid != np_txid(np, p->h->round[1], &s)) {
		/* the peer's, but not from where a ping of an open round went: a late one, or a
		 * NAT that maps per destination (the peer's answer leaves by another mapping),
		 * or a copy sent from elsewhere. It moves nothing; that address gets one ping of
		 * its own (at most one a second), which counts when it is answered. */
		np->c_pongs_unmatched++;
		if (np->now - p->h->last_answer >= NP_ANSWER_MS) {
			p->h->last_answer = np->now;
			np_ping(np, p, &s);
		}
		return;
	}
	p->pongs++;
	/* the address in use keeps its place while it answers; otherwise the first to answer */
	if (!p->has_direct || np->now - p->last_pong >= NP_PING_DIRECT_MS * 2 || np_addr_eq(&p->direct, &s)) {
		p->direct = s;
		p->has_direct = true;
	}
	p->last_pong = np->now;
	p->h->ping_out = 0;
}

static void np_stun_input(struct np *np, const struct sockaddr_storage *src, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < np->n_stun; i++) {
		struct np_stun *s = &np->stun[i];
		struct sockaddr_storage mapped;

		if (!np_sa_eq(&s->server, src) || ls_stun_parse_response(buf, len, s->txid, &mapped))
			continue;
		np_unmap(&mapped);
		ls_endpoint_format((const struct sockaddr *)&mapped, s->mapped);
		s->answered = np->now;
		np->stun_ok_at = np->now;
		return;
	}
}

static void np_raw_readable(struct np *np, int fd, int family)
{
	uint8_t buf[2048];

	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage from = { 0 }, src, dst;
		union {
			struct cmsghdr h;
			uint8_t b[CMSG_SPACE(sizeof(struct in6_pktinfo))];
		} cm;
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = cm.b, .msg_controllen = sizeof(cm.b) };
		const uint8_t *pl;
		size_t plen;
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);

		if (n < 0)
			return;
		src = from;
		if (ls_raw_udp_parse(family, buf, (size_t)n, np->port, &src, &dst, &pl, &plen))
			continue;
		/* IPv6: where it came to, for the answer's source address */
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); family == AF_INET6 && c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
				struct in6_pktinfo pi;

				memcpy(&pi, CMSG_DATA(c), sizeof(pi));
				((struct sockaddr_in6 *)&dst)->sin6_family = AF_INET6;
				((struct sockaddr_in6 *)&dst)->sin6_addr = pi.ipi6_addr;
			}
		}
		np_unmap(&src);
		if (plen >= 4 && !memcmp(pl, LS_DISCO_MAGIC, 4))
			np_disco_input(np, &src, &dst, pl, plen);
		else if (ls_stun_is_stun(pl, plen))
			np_stun_input(np, &src, pl, plen);
	}
}

/* Our endpoints for probes and the heartbeat: local, then STUN-mapped. */
static void np_endpoints(struct np *np)
{
	struct agent *a = np->a;
	size_t n = 0;

	ls_strv_free(np->local, np->n_local);
	np->local = NULL;
	np->n_local = 0;
	ls_local_endpoints(a->prof->ifname, a->prof->listen_port, &np->local, &np->n_local);
	for (size_t i = 0; i < np->n_local && n < ARRAY_SIZE(np->eps); i++)
		snprintf(np->eps[n++], LS_ENDPOINT_STRLEN, "%s", np->local[i]);
	for (size_t i = 0; i < np->n_stun && n < ARRAY_SIZE(np->eps); i++) {
		bool dup = !np->stun[i].mapped[0];

		for (size_t k = 0; !dup && k < n; k++)
			dup = !strcmp(np->eps[k], np->stun[i].mapped);
		if (!dup)
			snprintf(np->eps[n++], LS_ENDPOINT_STRLEN, "%s", np->stun[i].mapped);
	}
	np->n_eps = n;
}

static void np_stun_round(struct np *np)
{
	uint8_t buf[64];

	for (size_t i = 0; i < np->n_stun; i++) {
		struct np_stun *s = &np->stun[i];
		int n = ls_stun_build_request(buf, sizeof(buf), s->txid);

		if (n > 0) {
			np_send(np, &s->server, buf, (size_t)n);
			s->sent = np->now;
		}
	}
}

/* ---- relayed peers' path MTU (see "A relayed peer's path MTU" above) */

/* One rtnetlink request, acknowledged, on the path thread's socket: 0 or -errno, the
 * kernel's extended-ack message in msg. */
static int np_rtnl_talk(struct np *np, struct nlmsghdr *nlh, char *msg, size_t msg_size)
{
	char buf[8192];
	uint32_t port;
	int one = 1, ret;

	msg[0] = '\0';
	if (!np->nl) {
		np->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
		if (!np->nl)
			return -errno;
		mnl_socket_setsockopt(np->nl, NETLINK_EXT_ACK, &one, sizeof(one));
		if (mnl_socket_bind(np->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
			ret = -errno;
			goto fail;
		}
	}
	port = mnl_socket_get_portid(np->nl);
	nlh->nlmsg_seq = ++np->nl_seq;
	nlh->nlmsg_flags |= NLM_F_ACK;
	if (mnl_socket_sendto(np->nl, nlh, nlh->nlmsg_len) < 0) {
		ret = -errno;
		goto fail;
	}
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(np->nl, buf, sizeof(buf));
		const struct nlmsghdr *r = (const struct nlmsghdr *)buf;

		if (n < 0) {
			ret = -errno;
			goto fail;
		}
		if (mnl_nlmsg_ok(r, (int)n) && r->nlmsg_type == NLMSG_ERROR && (r->nlmsg_flags & NLM_F_ACK_TLVS)) {
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(r);
			const struct nlattr *at;
			size_t off = sizeof(*e) + ((r->nlmsg_flags & NLM_F_CAPPED) ? 0
										 : e->msg.nlmsg_len - sizeof(e->msg));

			mnl_attr_for_each(at, r, off) {
				if (mnl_attr_get_type(at) == NLMSGERR_ATTR_MSG &&
				    !mnl_attr_validate(at, MNL_TYPE_NUL_STRING))
					snprintf(msg, msg_size, "(%s)", mnl_attr_get_str(at));
			}
		}
		ret = mnl_cb_run(buf, (size_t)n, np->nl_seq, port, NULL, NULL);
		if (ret <= MNL_CB_STOP)
			return ret < 0 ? -errno : 0;
	}
fail:
	/* (a fresh socket next time: nothing stale is left to read) */
	mnl_socket_close(np->nl);
	np->nl = NULL;
	return ret;
}

/* Adds (mtu > 0: create or replace) or removes a host route dst dev ifindex with that
 * MTU, in the main table, protocol NP_RTPROT. 0 or -errno (logged). */
static int np_route_mtu(struct np *np, int ifindex, const struct ls_prefix *dst, unsigned mtu)
{
	char buf[512] = { 0 }, msg[160], b[LS_PREFIX_STRLEN];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;
	int ret;

	nlh->nlmsg_type = mtu ? RTM_NEWROUTE : RTM_DELROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | (mtu ? NLM_F_CREATE | NLM_F_REPLACE : 0);
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = dst->family;
	rtm->rtm_dst_len = dst->len;
	rtm->rtm_table = RT_TABLE_MAIN;
	rtm->rtm_protocol = NP_RTPROT;
	rtm->rtm_scope = mtu ? RT_SCOPE_LINK : RT_SCOPE_NOWHERE;
	rtm->rtm_type = RTN_UNICAST;
	mnl_attr_put(nlh, RTA_DST, dst->family == AF_INET ? 4 : 16, dst->addr);
	mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)ifindex);
	if (mtu) {
		struct nlattr *mx = mnl_attr_nest_start(nlh, RTA_METRICS);

		mnl_attr_put_u32(nlh, RTAX_MTU, mtu);
		mnl_attr_nest_end(nlh, mx);
	}
	ret = np_rtnl_talk(np, nlh, msg, sizeof(msg));
	if (ret && !(!mtu && (ret == -ESRCH || ret == -ENODEV))) {
		ls_prefix_format(dst, b);
		pr_warn("nat: cannot %s the route %s mtu %u: %s %s", mtu ? "add" : "remove", b, mtu, strerror(-ret),
			msg);
	}
	return ret;
}

/* MTU routes left behind by an earlier agent on our interface (a->lock held). */
static void np_routes_sweep(struct np *np)
{
	struct ls_rtnl_route *v = NULL;
	size_t n = 0;

	if (ls_rtnl_route_list(AF_UNSPEC, RT_TABLE_MAIN, &v, &n))
		return;
	for (size_t i = 0; i < n; i++)
		if (v[i].proto == NP_RTPROT && v[i].oif == np->a->dp.ifindex)
			np_route_mtu(np, v[i].oif, &v[i].dst, 0);
	free(v);
}

static unsigned np_read_if_mtu(const struct agent *a)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	unsigned mtu = a->prof->mtu > 0 ? (unsigned)a->prof->mtu : 1420;

	if (fd < 0)
		return mtu;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", a->prof->ifname);
	if (ioctl(fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0)
		mtu = (unsigned)ifr.ifr_mtu;
	close(fd);
	return mtu;
}

/* The MTU of the peer's path now: while relayed, what the netmap's datagram relays
 * leave (ls_rproxy_relayed_mtu); otherwise the interface's. */
static unsigned np_path_mtu(const struct np *np, const struct np_peer *p)
{
	if (p->mode != NP_RELAYED || !np->rp)
		return np->if_mtu;
	return ls_rproxy_relayed_mtu(np->rp, np->if_mtu);
}

/* The peer's MTU routes follow want (>= the interface's MTU: none) (a->lock held). Only
 * an address inside the network's overlay prefixes gets one (its on-link route is ours),
 * so that a route never changes where a packet goes, only its size. */
static void np_mtu_apply(struct np *np, struct np_peer *p, unsigned want)
{
	struct agent *a = np->a;
	struct np_mroute *mr = p->h ? &p->h->mr : NULL, nw = { .ifindex = a->dp_ok ? a->dp.ifindex : 0 };
	const struct ls_nm_peer *q;

	if (want >= np->if_mtu)
		want = 0;
	if (!mr || (!mr->n && !want))
		return; /* (a peer without its hot part has none) */
	if (want && a->dp_ok && a->nm && (q = ls_netmap_find_peer(a->nm, p->id))) {
		for (size_t i = 0; i < q->addresses.n && nw.n < NP_MAX_MROUTE; i++) {
			struct ls_prefix d = q->addresses.v[i];
			bool v4 = d.family == AF_INET;

			d.len = v4 ? 32 : 128;
			if ((v4 ? a->nm->network.has_ipv4 : a->nm->network.has_ipv6) &&
			    ls_prefix_contains(v4 ? &a->nm->network.ipv4 : &a->nm->network.ipv6, &d))
				nw.dst[nw.n++] = d;
		}
		nw.mtu = (uint16_t)want;
	}
	if (mr->n == nw.n && mr->ifindex == nw.ifindex && mr->mtu == nw.mtu &&
	    !memcmp(mr->dst, nw.dst, nw.n * sizeof(nw.dst[0])))
		return; /* as wanted before */
	for (size_t i = 0; i < mr->n; i++)
		if (mr->installed & (1u << i))
			np_route_mtu(np, mr->ifindex, &mr->dst[i], 0);
	p->mtu = 0;
	*mr = nw;
	for (size_t i = 0; i < nw.n; i++)
		if (np_route_mtu(np, nw.ifindex, &nw.dst[i], want) == 0)
			mr->installed |= (uint8_t)(1u << i);
	if (!mr->installed)
		return;
	p->mtu = (uint16_t)want;
	pr_info("nat: peer %lld: path MTU %u while relayed", (long long)p->id, want);
}

/* The netmap changed: peers, candidates and relays follow (a->lock held). */
static void np_sync_netmap(struct np *np)
{
	struct agent *a = np->a;
	const struct ls_netmap *nm = a->nm;
	struct np_peer **v;
	bool *kept;
	size_t n = 0;
	json_t *rel;

	if (!nm)
		return;
	/* a rotated WireGuard key: the relay proxy proves the new one */
	if (np->rp && memcmp(np->rp_pub, a->prof->wg_pub, LS_WG_KEY_LEN)) {
		ls_rproxy_free(np->rp);
		np->rp = NULL;
		json_decref(np->relays_seen);
		np->relays_seen = NULL;
		for (size_t i = 0; i < np->n_peers; i++)
			np->peers[i]->has_loop = np->peers[i]->in_rp = false;
	}
	rel = ls_nm_relays_json(&nm->relays);
	if (!np->relays_seen || !json_equal(rel, np->relays_seen)) {
		const struct ls_nm_relays *r = &nm->relays;
		struct ls_rproxy_turn_server turn[LS_RPROXY_MAX_RELAYS];
		struct ls_rproxy_relays rr = {
			.stream = (const char *const *)r->stream.v, .n_stream = r->stream.n,
			.udp = (const char *const *)r->udp.v, .n_udp = r->udp.n, .turn = turn,
		};
		const struct ls_nm_strv *sl = r->stun.n ? &r->stun : &r->udp;

		for (size_t i = 0; i < r->n_turn && i < LS_RPROXY_MAX_RELAYS; i++)
			turn[rr.n_turn++] = (struct ls_rproxy_turn_server){ r->turn[i].url, r->turn[i].username,
									    r->turn[i].credential };
		np->n_stun = 0;
		for (size_t i = 0; i < sl->n && np->n_stun < NP_MAX_STUN; i++) {
			struct np_stun *s = &np->stun[np->n_stun];

			memset(s, 0, sizeof(*s));
			if (ls_endpoint_parse(sl->v[i], &s->server, NULL))
				continue;
			snprintf(s->addr, sizeof(s->addr), "%s", sl->v[i]);
			np->n_stun++;
		}
		np->stun_next = np->now;
		if (!np->rp && (rr.n_stream || rr.n_udp || rr.n_turn)) {
			struct ls_rproxy_config cfg = { .wg_port = np->port, .fwmark = a->prof->fwmark, .relays = rr,
							.on_probe = np_on_probe, .pair = np_pair, .cb_ctx = np };

			memcpy(cfg.ed_sk, a->prof->machine_sk, sizeof(cfg.ed_sk));
			memcpy(cfg.wg_pub, a->prof->wg_pub, LS_WG_KEY_LEN);
			np->rp = ls_rproxy_new(&cfg);
			ls_memzero(cfg.ed_sk, sizeof(cfg.ed_sk));
			if (!np->rp)
				pr_warn("nat: relay proxy: %s", strerror(errno));
			else
				memcpy(np->rp_pub, a->prof->wg_pub, LS_WG_KEY_LEN);
		} else if (np->rp) {
			ls_rproxy_set_relays(np->rp, &rr);
		}
		json_decref(np->relays_seen);
		np->relays_seen = rel;
		rel = NULL;
	}
	json_decref(rel);
	if (np->nm_version == nm->version && np->n_peers == nm->n_peers)
		return;
	np->nm_version = nm->version;
	v = calloc(nm->n_peers + 1, sizeof(*v));
	kept = calloc(np->n_peers + 1, sizeof(*kept));
	if (!v || !kept) {
		free(v);
		free(kept);
		return;
	}
	for (size_t i = 0; i < nm->n_peers; i++) {
		const struct ls_nm_peer *q = nm->peers[i];
		struct np_peer **slot = bsearch(q->wg_key, np->peers, np->n_peers, sizeof(*np->peers), cmp_np_key);
		struct np_peer *p = slot ? *slot : NULL;

		if (p) {
			kept[slot - np->peers] = true; /* taken over */
			if (!p->h && p->mode == NP_ROTATING)
				np_hot(p); /* its endpoint in use is one of the candidates changing */
		} else {
			/* (its hot part comes with its first tick: all of them together, apart
			 * from the cold records, so that they leave whole pages when they go) */
			p = calloc(1, sizeof(*p));
			if (!p)
				continue;
			memcpy(p->key, q->wg_key, LS_WG_KEY_LEN);
			p->mode_since = np->now;
			p->every = NP_SEARCH_MS;
		}
		p->id = q->id;
		{
			/* the netmap's candidates first, in its order; learned ones after */
			struct np_addr learned[NP_MAX_CAND];
			size_t nl = 0;

			for (size_t k = p->n_nm_cand; k < p->n_cand; k++)
				learned[nl++] = p->cand[k];
			p->n_cand = p->n_nm_cand = 0;
			for (size_t k = 0; k < q->endpoints.n && p->n_cand < NP_MAX_CAND; k++) {
				struct sockaddr_storage ss;

				if (!ls_endpoint_parse(q->endpoints.v[k], &ss, NULL))
					np_add_cand_sa(p, &ss);
			}
			p->n_nm_cand = p->n_cand;
			for (size_t k = 0; k < nl; k++)
				np_add_cand(p, &learned[k]);
		}
		v[n++] = p;
	}
	for (size_t i = 0; i < np->n_peers; i++) {
		if (kept[i])
			continue;
		if (np->rp && np->peers[i]->in_rp)
			ls_rproxy_peer_remove(np->rp, np->peers[i]->key);
		np_mtu_apply(np, np->peers[i], 0);
		np_peer_free(np->peers[i]);
	}
	free(np->peers);
	free(kept);
	qsort(v, n, sizeof(*v), cmp_np_key_sort);
	np->peers = v;
	np->n_peers = n;
}

/* The engine's view: last handshake and endpoint per peer (without the lock: the get
 * may be a UAPI round trip). */
static void np_engine_refresh(struct np *np)
{
	struct agent *a = np->a;
	const struct ls_wg_engine *eng;
	struct ls_wg_device *dev = NULL;

	pthread_mutex_lock(&a->lock);
	eng = a->dp_ok ? a->dp.eng : NULL;
	pthread_mutex_unlock(&a->lock);
	if (!eng || eng->get(a->prof->ifname, &dev))
		return;
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < dev->n_peers; i++) {
		struct ls_wg_peer *w = &dev->peers[i];
		struct np_peer *p = np_find(np, w->key);

		if (!p)
			continue;
		p->hs = w->last_handshake_sec > 0 && w->last_handshake_sec <= UINT32_MAX ? (uint32_t)w->last_handshake_sec
											     : 0;
		if ((uint32_t)w->rx_bytes != p->rx)
			p->rx_at = np->now;
		if ((uint32_t)w->tx_bytes != p->tx)
			p->tx_at = np->now;
		p->rx = (uint32_t)w->rx_bytes;
		p->tx = (uint32_t)w->tx_bytes;
		p->has_wg_ep = (w->flags & LS_WGP_HAS_ENDPOINT) != 0;
		if (!p->h) {
			/* settled: the engine keeps our endpoint, or the peer needs its hot part */
			struct np_addr ep = np_pack(&w->endpoint);

			if (p->has_wg_ep && np_addr_eq(&ep, np_want(p)))
				continue;
			if (!np_hot(p))
				continue;
		}
		p->h->wg_ep = np_pack(&w->endpoint);
		if (p->has_want && (!p->has_wg_ep || !np_addr_eq(&p->h->wg_ep, &p->h->want))) {
			p->set_pending = true; /* roaming moved it, or a set failed */
			if (p->h->roamed < UINT8_MAX)
				p->h->roamed++;
		} else {
			p->h->roamed = 0;
		}
	}
	pthread_mutex_unlock(&a->lock);
	ls_wg_device_free(dev);
}

static void np_set_mode(struct np_peer *p, enum np_mode m, uint64_t now, const char *why)
{
	char key[LS_KEY_B64_LEN + 1];

	if (p->mode == m)
		return;
	if (p->mode == NP_DIRECT)
		p->fallbacks++;
	if (m == NP_DIRECT && (p->mode == NP_RELAYED || p->mode == NP_ROTATING))
		p->returns++;
	if (m != NP_DIRECT)
		p->h->search_since = now;
	ls_key_to_base64(key, p->key);
	pr_info("nat: peer %lld (%.8s...): %s -> %s (%s)", (long long)p->id, key, np_mode_names[p->mode],
		np_mode_names[m], why);
	p->mode = m;
	p->mode_since = now;
}

/* The next interval of an idle peer's pings: doubled, up to NP_IDLE_MAX_MS. */
static uint32_t np_backoff(uint32_t every)
{
	return every >= NP_IDLE_MAX_MS / 2 ? NP_IDLE_MAX_MS : every * 2;
}

/* One peer's timers and path choice (a->lock held).
 *
 * Pings cost one packet per candidate, so only peers that need them get them at full
 * rate: WireGuard moved bytes within NP_BUSY_MS, or no path is chosen yet (new). An
 * idle direct peer whose handshake is fresh gets none (the direct endpoint stays while
 * no ping to it goes unanswered); other idle peers back off exponentially to
 * NP_IDLE_MAX_MS. A ping or probe from the peer still gets our pings at once. */
static void np_peer_tick_hot(struct np *np, struct np_peer *p)
{
	uint64_t now = np->now;
	bool busy = (p->rx_at && now - p->rx_at < NP_BUSY_MS) || (p->tx_at && now - p->tx_at < NP_BUSY_MS);
	int64_t age = p->hs ? ls_unix_time() - p->hs : INT64_MAX;
	/* the direct path is gone when a ping goes unanswered: NP_DIRECT_TIMEOUT_MS after the
	 * last pong while pinging at the busy rate, or after the ping before the first
	 * unanswered one would have been sent when pings resumed after a pause */
	uint64_t ref = p->h->ping_out && p->h->ping_out - NP_PING_DIRECT_MS > p->last_pong ? p->h->ping_out - NP_PING_DIRECT_MS
										      : p->last_pong;
	bool direct_ok = p->has_direct && p->last_pong && !(p->h->ping_out && now - ref >= NP_DIRECT_TIMEOUT_MS);
	struct np_addr want;
	bool has_want = false;

	/* The relay proxy (a loopback address each) has the peers that may need it: not a
	 * new one before half its grace or once direct, nor one direct for NP_RP_GRACE_MS
	 * with no ping unanswered for a ping interval and no probe from it lately (6.5 s or
	 * more before the direct path counts as lost: time for the relay path to be ready) */
	bool want_rp = !(p->mode == NP_NEW && (direct_ok || now - p->h->added < NP_GRACE_MS / 2)) &&
		       !(p->mode == NP_DIRECT && direct_ok && now - p->mode_since >= NP_RP_GRACE_MS &&
			 (!p->h->ping_out || now - p->h->ping_out < NP_PING_DIRECT_MS) &&
			 (!p->h->last_answer || now - p->h->last_answer >= NP_RP_GRACE_MS));

	if (np->rp && p->in_rp && !want_rp) {
		ls_rproxy_peer_remove(np->rp, p->key);
		p->in_rp = p->has_loop = false;
	}
	if (np->rp && want_rp && !p->has_loop && ls_rproxy_peer_add(np->rp, p->key, &p->h->loop) == 0)
		p->has_loop = p->in_rp = true;
	p->rpath = (uint8_t)(np->rp && p->has_loop ? ls_rproxy_peer_path(np->rp, p->key) : LS_RPROXY_PATH_NONE);
	/* pings: the direct endpoint to keep it (and the NAT mappings) alive; every
	 * candidate, with a probe through the stream relay, while there is none */
	if (direct_ok) {
		uint32_t every = NP_PING_DIRECT_MS;
		bool due;

		if (busy) {
			p->every = NP_PING_DIRECT_MS;
			due = now - p->h->last_ping >= every;
		} else if (age < NP_HANDSHAKE_FRESH_S && !p->h->ping_out) {
			due = false; /* idle, and WireGuard's handshake says the path works */
		} else {
			every = p->every < NP_PING_DIRECT_MS ? NP_PING_DIRECT_MS : p->every;
			due = now - p->h->last_ping >= every;
			/* an unanswered ping is followed up at the busy rate until the timeout */
			if (p->h->ping_out && now - p->h->last_ping >= NP_PING_DIRECT_MS)
				due = true;
		}
		if (due) {
			if (!busy && !p->h->ping_out)
				p->every = np_backoff(every);
			np_new_round(p->h);
			p->h->last_ping = now;
			if (!p->h->ping_out)
				p->h->ping_out = now;
			np_ping(np, p, &p->direct);
		}
	} else {
		uint64_t every;

		if (busy || p->mode == NP_NEW) {
			every = now - p->h->search_since >= NP_SEARCH_SLOW_AFTER_MS ? NP_SEARCH_SLOW_MS : NP_SEARCH_MS;
			p->every = NP_SEARCH_MS;
		} else {
			every = p->every < NP_SEARCH_MS ? NP_SEARCH_MS : p->every;
		}
		if (now - p->h->last_search >= every) {
			np_search(np, p);
			if (!busy && p->mode != NP_NEW)
				p->every = np_backoff((uint32_t)every);
		}
		if (np->rp && now - p->h->last_probe >= (every > NP_PROBE_MS ? every : NP_PROBE_MS))
			np_probe(np, p, false);
	}
	if (direct_ok) {
		np_set_mode(p, NP_DIRECT, now, "a candidate endpoint answers");
		want = p->direct;
		has_want = true;
	} else if (p->mode == NP_NEW && now - p->h->added < NP_GRACE_MS) {
		return; /* the netmap's endpoint until the first pings had a chance */
	} else if (p->rpath != LS_RPROXY_PATH_NONE) {
		struct sockaddr_storage ss = { 0 };

		np_set_mode(p, NP_RELAYED, now, p->mode == NP_DIRECT ? "the direct endpoint stopped answering"
								    : "no candidate endpoint answers");
		memcpy(&ss, &p->h->loop, sizeof(p->h->loop));
		want = np_pack(&ss);
		has_want = true;
	} else if (p->n_nm_cand) {
		/* stale: no session, or we keep sending and hear nothing (WireGuard answers
		 * data within its keepalive timeout, 10 s, when the path works) ... or a rekey
		 * (due 120 s after the last handshake while sending) keeps failing */
		bool fresh = age < NP_HANDSHAKE_FRESH_S && !(p->tx_at > p->rx_at && now - p->rx_at >= NP_ROTATE_MS) &&
			     !(age >= 120 + NP_ROTATE_MS / 1000 && p->tx_at && now - p->tx_at < 10000);

		/* WireGuard roamed to where the peer's authenticated packets come from: follow */
		if (p->mode == NP_ROTATING && p->has_wg_ep && p->has_want && p->h->roamed >= 2 &&
		    !np_addr_eq(&p->h->wg_ep, &p->h->want) && p->rx_at + 2500 >= now &&
		    !(p->has_left && np_addr_eq(&p->h->wg_ep, &p->h->left) && now - p->h->rot_at < NP_ROTATE_MS)) {
			char e[LS_ENDPOINT_STRLEN];

			np_add_cand(p, &p->h->wg_ep);
			for (size_t k = 0; k < p->n_cand; k++)
				if (np_addr_eq(&p->cand[k], &p->h->wg_ep))
					p->rot = (uint8_t)k;
			p->h->rot_at = now;
			p->rotations++;
			np_addr_fmt(&p->h->wg_ep, e);
			pr_info("nat: peer %lld: WireGuard roamed to %s; keeping it", (long long)p->id, e);
		}
		if (p->mode != NP_ROTATING) {
			/* from the endpoint in use, when it is a candidate */
			for (size_t k = 0; k < p->n_nm_cand; k++)
				if (p->has_wg_ep && np_addr_eq(&p->cand[k], &p->h->wg_ep))
					p->rot = (uint8_t)k;
			np_set_mode(p, NP_ROTATING, now, "no answer and no relay");
			p->h->rot_at = now;
		} else if (!fresh && now - p->h->rot_at >= NP_ROTATE_MS && p->n_nm_cand > 1 && p->tx_at &&
			   now - p->tx_at < 2 * NP_ROTATE_MS) {
			/* (only while WireGuard sends: an idle peer's stale handshake says nothing) */
			char e[LS_ENDPOINT_STRLEN];

			p->h->left = p->cand[p->rot < p->n_cand ? p->rot : 0];
			p->has_left = true;
			p->rot = (uint8_t)((p->rot + 1) % (p->n_nm_cand ? p->n_nm_cand : 1));
			p->h->rot_at = now;
			p->rx_at = now; /* the new endpoint gets its own NP_ROTATE_MS */
			p->rotations++;
			np_addr_fmt(&p->cand[p->rot], e);
			pr_info("nat: peer %lld: handshake stale, trying its endpoint %s", (long long)p->id, e);
		}
		want = p->cand[p->rot < p->n_cand ? p->rot : 0];
		has_want = true;
	}
	if (!has_want)
		return;
	if (!p->has_want || !np_addr_eq(&p->h->want, &want)) {
		p->h->want = want;
		p->has_want = true;
		p->set_pending = true;
	}
}

/* A settled peer costs its cold record and a check; its hot part comes back when it
 * gets busy, its handshake goes stale, or a ping, probe or the engine says otherwise. */
static void np_peer_tick(struct np *np, struct np_peer *p)
{
	uint64_t now = np->now;
	bool busy = (p->rx_at && now - p->rx_at < NP_BUSY_MS) || (p->tx_at && now - p->tx_at < NP_BUSY_MS);
	int64_t age = p->hs ? ls_unix_time() - p->hs : INT64_MAX;

	if (np_settled(np, p, busy, age)) {
		if (p->h && p->mode == NP_ROTATING)
			p->wake_at = p->h->last_search + p->every;
		if (p->h) {
			np->n_cooled++;
			np_mtu_apply(np, p, 0);
		}
		free(p->h);
		p->h = NULL;
		p->has_loop = false;
		if (p->in_rp && np->rp)
			ls_rproxy_peer_remove(np->rp, p->key);
		p->in_rp = false;
		p->rpath = LS_RPROXY_PATH_NONE;
		return;
	}
	if (!np_hot(p))
		return;
	np_peer_tick_hot(np, p);
	np_mtu_apply(np, p, np_path_mtu(np, p));
}

static json_t *np_status(struct np *np)
{
	json_t *peers = json_object(), *stun = json_array(), *eps = json_array(), *doc;

	for (size_t i = 0; i < np->n_peers; i++) {
		struct np_peer *p = np->peers[i];
		char key[LS_KEY_B64_LEN + 1], e[LS_ENDPOINT_STRLEN];
		json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "path", np_mode_names[p->mode], "since_ms",
				      (json_int_t)(np->now - p->mode_since), "fallbacks", (json_int_t)p->fallbacks,
				      "returns", (json_int_t)p->returns, "rotations", (json_int_t)p->rotations,
				      "pings_sent", (json_int_t)p->pings, "pongs", (json_int_t)p->pongs);
		json_t *c = json_array();

		ls_key_to_base64(key, p->key);
		if (p->has_want) {
			np_addr_fmt(np_want(p), e);
			json_object_set_new(o, "endpoint", json_string(e));
		}
		if (p->has_direct) {
			np_addr_fmt(&p->direct, e);
			json_object_set_new(o, "direct_endpoint", json_string(e));
		}
		if (p->last_pong)
			json_object_set_new(o, "last_pong_ms_ago", json_integer((json_int_t)(np->now - p->last_pong)));
		/* WireGuard sent and heard nothing back for this long (a stale path) */
		json_object_set_new(o, "unanswered_ms", json_integer(p->tx_at > p->rx_at ? (json_int_t)(np->now - p->rx_at) : 0));
		if (p->mode == NP_RELAYED) {
			const char *r = np->rp ? ls_rproxy_path_relay(np->rp, (enum ls_rproxy_path)p->rpath) : NULL;

			json_object_set_new(o, "via", json_string(ls_rproxy_path_str((enum ls_rproxy_path)p->rpath)));
			json_object_set_new(o, "relay", r ? json_string(r) : json_null());
		}
		for (size_t k = 0; k < p->n_cand; k++) {
			np_addr_fmt(&p->cand[k], e);
			json_array_append_new(c, json_string(e));
		}
		json_object_set_new(o, "candidates", c);
		/* the MTU packets to the peer get now (lower while relayed: np_mtu_apply) */
		json_object_set_new(o, "mtu", json_integer(p->mtu ? p->mtu : np->if_mtu));
		json_object_set_new(peers, key, o);
	}
	for (size_t i = 0; i < np->n_stun; i++) {
		json_t *o = json_pack("{s:s}", "server", np->stun[i].addr);

		if (np->stun[i].mapped[0])
			json_object_set_new(o, "mapped", json_string(np->stun[i].mapped));
		if (np->stun[i].answered)
			json_object_set_new(o, "answered_ms_ago", json_integer((json_int_t)(np->now - np->stun[i].answered)));
		json_array_append_new(stun, o);
	}
	for (size_t i = 0; i < np->n_eps; i++)
		json_array_append_new(eps, json_string(np->eps[i]));
	/* pings and pongs: received = opened under a peer's key; rejected, by reason:
	 * malformed, version1 (unauthenticated), not_for_us (another receiver key),
	 * unknown_peer (a key not in the netmap), unauthenticated (does not open under the
	 * pair key: forged, tampered), replayed (a seq seen already); bad = their sum */
	doc = json_pack("{s:o, s:o, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I}}, s:b}",
			"peers", peers, "stun", stun, "endpoints", eps, "relays",
			np->rp ? ls_rproxy_status(np->rp) : json_null(), "counters", "pings_received",
			(json_int_t)np->c_pings_in, "pongs_received", (json_int_t)np->c_pongs_in, "pongs_unmatched",
			(json_int_t)np->c_pongs_unmatched, "probes_received", (json_int_t)np->c_probes_in, "bad",
			(json_int_t)(np->c_malformed + np->c_v1 + np->c_not_ours + np->c_unknown + np->c_unauth +
				     np->c_replayed),
			"rejected", "malformed", (json_int_t)np->c_malformed, "version1", (json_int_t)np->c_v1,
			"not_for_us", (json_int_t)np->c_not_ours, "unknown_peer", (json_int_t)np->c_unknown,
			"unauthenticated", (json_int_t)np->c_unauth, "replayed", (json_int_t)np->c_replayed,
			"raw_socket", np->raw4 >= 0);
	/* ... and probes through the stream relay that the relay proxy refused, by reason
	 * (unsealed, malformed, unknown_peer, unauthenticated, replayed: relayproxy.h) */
	if (np->rp) {
		json_t *pr = json_object_get(json_object_get(json_object_get(doc, "relays"), "counters"),
					     "probes_rejected");

		if (pr)
			json_object_set_new(json_object_get(json_object_get(doc, "counters"), "rejected"), "probes",
					    json_deep_copy(pr));
	}
	return doc;
}

static void *path_thread(void *arg)
{
	struct np *np = arg;
	struct agent *a = np->a;
	uint64_t next_sync = 0, next_engine = 0, next_eps = 0;
	char stun_seen[NP_MAX_STUN][LS_ENDPOINT_STRLEN] = { { 0 } };

	np->now = ls_now_ms();
	pthread_mutex_lock(&a->lock);
	np_endpoints(np);
	pthread_mutex_unlock(&a->lock);
	while (!stopping) {
		struct pollfd pfd[3] = { { .fd = np->raw4, .events = POLLIN }, { .fd = np->raw6, .events = POLLIN },
					 { .fd = np->rp ? ls_rproxy_fd(np->rp) : -1, .events = POLLIN } };
		bool kick = false;

		poll(pfd, 3, NP_TICK_MS);
		np->now = ls_now_ms();
		pthread_mutex_lock(&a->lock);
		/* our key rotated: every pair key goes (made again with the new one when needed) */
		if (memcmp(np->dk_pub, a->prof->wg_pub, LS_WG_KEY_LEN)) {
			for (size_t i = 0; i < np->n_peers; i++) {
				sodium_memzero(np->peers[i]->dp.key, sizeof(np->peers[i]->dp.key));
				np->peers[i]->has_dkey = false;
			}
			memcpy(np->dk_pub, a->prof->wg_pub, LS_WG_KEY_LEN);
		}
		if (!np->routes_swept && a->dp_ok) {
			np->routes_swept = true;
			np->if_mtu = np_read_if_mtu(a);
			np_routes_sweep(np);
		}
		if (pfd[0].revents & POLLIN)
			np_raw_readable(np, np->raw4, AF_INET);
		if (pfd[1].revents & POLLIN)
			np_raw_readable(np, np->raw6, AF_INET6);
		if (np->rp && (pfd[2].revents & POLLIN))
			ls_rproxy_handle(np->rp);
		if (np->now >= next_sync) {
			next_sync = np->now + 1000;
			np_sync_netmap(np);
		}
		if (np->rp)
			ls_rproxy_tick(np->rp, np->now);
		/* STUN from the WireGuard port */
		if (np->n_stun && np->now >= np->stun_next) {
			np_endpoints(np);
			np_stun_round(np);
			np->stun_next = np->now + (np->stun_ok_at && np->now - np->stun_ok_at < NP_STUN_MS + 5000
							   ? NP_STUN_MS : NP_STUN_RETRY_MS);
		}
		for (size_t i = 0; i < np->n_stun; i++) {
			if (strcmp(stun_seen[i], np->stun[i].mapped)) {
				pr_info("nat: STUN %s: our WireGuard port is %s", np->stun[i].addr, np->stun[i].mapped);
				snprintf(stun_seen[i], sizeof(stun_seen[i]), "%s", np->stun[i].mapped);
				kick = true;
			}
		}
		if (kick || np->now >= next_eps) {
			next_eps = np->now + 10000;
			np_endpoints(np);
			np->if_mtu = np_read_if_mtu(a);
		}
		for (size_t i = 0; i < np->n_peers; i++) {
			struct np_peer *p = np->peers[i];

			np_peer_tick(np, p);
			if (p->set_pending && a->dp_ok) {
				struct sockaddr_storage want = np_unpack(np_want(p));
				int err = ls_dp_set_endpoint(&a->dp, p->key, &want);

				p->set_pending = false;
				if (err)
					pr_warn("nat: peer %lld: cannot set the endpoint: %s", (long long)p->id, strerror(-err));
			}
		}
		if (kick) {
			a->hb_kick = true;
			pthread_cond_signal(&a->hb_cond);
		}
		pthread_mutex_unlock(&a->lock);
		if (np->now >= next_engine) {
			/* a second, a quarter of a millisecond per peer past 4,000 (the engine's
			 * dump is a round trip of every peer: 2.5 s at 10,000) */
			size_t n = np->n_peers;

			next_engine = np->now + (n > 4000 ? (n / 4 > 5000 ? 5000 : n / 4) : 1000);
			np_engine_refresh(np);
			/* that dump is megabytes at 10,000 peers, gone again: give it back */
			if (n >= 1000)
				malloc_trim(0);
			np->n_cooled = 0;
		}
		if (np->n_cooled >= 1000) {
			/* as many hot parts went back: whole pages of the path thread's arena */
			np->n_cooled = 0;
			malloc_trim(0);
		}
	}
	return NULL;
}

/* The STUN-discovered endpoints (a->lock held), for the heartbeat. */
static void np_stun_endpoints(struct agent *a, char out[][LS_ENDPOINT_STRLEN], size_t max, size_t *n)
{
	*n = 0;
	for (size_t i = 0; a->np && i < a->np->n_stun && *n < max; i++) {
		bool dup = !a->np->stun[i].mapped[0];

		for (size_t k = 0; !dup && k < *n; k++)
			dup = !strcmp(out[k], a->np->stun[i].mapped);
		if (!dup)
			snprintf(out[(*n)++], LS_ENDPOINT_STRLEN, "%s", a->np->stun[i].mapped);
	}
}

static int np_start(struct agent *a)
{
	struct np *np = calloc(1, sizeof(*np));
	pthread_t t;
	int err;

	if (!np)
		return -ENOMEM;
	np->a = a;
	np->port = (uint16_t)a->prof->listen_port;
	randombytes_buf(np->tx_secret, sizeof(np->tx_secret));
	np->if_mtu = a->prof->mtu > 0 ? (unsigned)a->prof->mtu : 1420;
	np->raw4 = ls_raw_udp_open(AF_INET, np->port, a->prof->fwmark);
	np->raw6 = ls_raw_udp_open(AF_INET6, np->port, a->prof->fwmark);
	if (np->raw4 < 0)
		pr_warn("nat: no raw socket (%s): no direct path discovery or STUN, relays only", strerror(-np->raw4));
	a->np = np;
	err = -pthread_create(&t, NULL, path_thread, np);
	if (err) {
		a->np = NULL;
		free(np);
		return err;
	}
	pthread_detach(t);
	return 0;
}

/* ---- heartbeat thread --------------------------------------------------------------- */

/* ls_heartbeat (cli_control.c) with the STUN-discovered endpoints beside the local
 * ones; the server adds the address it sees us at. */
static int agent_heartbeat(struct agent *a, struct ls_ctl *c, struct ls_ctl_error *err)
{
	const struct ls_profile *p = a->prof;
	char rbuf[LS_MAX_ADV_ROUTES][LS_PREFIX_STRLEN], ebuf[2 * NP_MAX_CAND][LS_ENDPOINT_STRLEN];
	const char *routes[LS_MAX_ADV_ROUTES], **eps = NULL;
	struct ls_ctl_response resp = { 0 };
	char **local = NULL;
	size_t n_eps = 0, n_stun = 0, n_local = 0;
	int ret;

	pthread_mutex_lock(&a->lock);
	np_stun_endpoints(a, ebuf, ARRAY_SIZE(ebuf), &n_stun);
	pthread_mutex_unlock(&a->lock);
	if (n_stun == 0)
		return ls_heartbeat(c, p, NULL, err);
	/* local first (a peer on the same LAN), then what STUN found */
	ls_local_endpoints(p->ifname, p->listen_port, &local, &n_local);
	eps = calloc(n_local + n_stun + 1, sizeof(*eps));
	if (!eps) {
		ls_strv_free(local, n_local);
		return ls_heartbeat(c, p, NULL, err);
	}
	for (size_t i = 0; i < n_local; i++)
		eps[n_eps++] = local[i];
	for (size_t i = 0; i < n_stun; i++) {
		bool dup = false;

		for (size_t k = 0; k < n_local && !dup; k++)
			dup = !strcmp(local[k], ebuf[i]);
		if (!dup)
			eps[n_eps++] = ebuf[i];
	}
	for (size_t i = 0; i < p->n_routes; i++) {
		ls_prefix_format(&p->routes[i], rbuf[i]);
		routes[i] = rbuf[i];
	}
	struct ls_ctl_heartbeat_req req = {
		.endpoints = eps, .n_endpoints = n_eps, .listen_port = p->listen_port,
		.routes = routes, .n_routes = p->n_routes, .send_routes = true,
	};
	ret = ls_ctl_heartbeat(c, &req, &resp, err);
	if (!ret && json_is_string(json_object_get(resp.json, "observed"))) {
		pthread_mutex_lock(&a->lock);
		snprintf(a->observed, sizeof(a->observed), "%s", json_string_value(json_object_get(resp.json, "observed")));
		pthread_mutex_unlock(&a->lock);
	}
	ls_ctl_response_free(&resp);
	free(eps);
	ls_strv_free(local, n_local);
	return ret;
}

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
			if (agent_heartbeat(a, &c, &err))
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
	if (doc && !strcmp(req, "status")) {
		json_object_set_new(doc, "agent", json_true());
		/* built when asked (at 10,000 peers it is megabytes of JSON) */
		json_t *nat = a->np ? np_status(a->np) : NULL;

		ls_status_add_nat(doc, nat, a->observed);
		json_decref(nat);
	}
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
	char auto_pick[128];

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
	if (!strcmp(want, "auto")) {
		/* exit-node use auto --by latency: the fastest exit now (exitsel.h) */
		pthread_mutex_lock(&a->lock);
		ls_exitsel_auto(a->prof, a->nm, auto_pick, sizeof(auto_pick));
		pthread_mutex_unlock(&a->lock);
		if (auto_pick[0])
			want = auto_pick;
	}
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
	struct ls_localui *ui = NULL;
	uint64_t ensure_at = 0, next_check = 0;
	char err[512];
	size_t n_last = 0;

	if (a.opts.poll_wait <= 0)
		a.opts.poll_wait = 60;
	if (a.opts.heartbeat_interval <= 0)
		a.opts.heartbeat_interval = 30;
	a.opts.dp.ep_override = np_override;
	a.opts.dp.ep_ctx = &a;
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
	ls_localui_start(prof, &ui); /* read-only status page on /run/lightscale/P/ui.sock (localui.h) */
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
	if ((ret = np_start(&a)))
		pr_warn("nat: no path thread: %s", strerror(-ret));
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
				else if (a.nm) {
					ls_perapp_apply(prof, a.nm); /* app routes: rules, links, cgroups that came back */
					ls_l2seg_apply(prof, a.nm);
				}
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
	ls_localui_stop(ui);
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
