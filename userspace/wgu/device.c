// SPDX-License-Identifier: MIT
/* Peers, keypairs, the index table, timers (whitepaper section 6) and the
 * packet paths of the userspace WireGuard device. */
#include "userspace/wgu/device.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "userspace/wgu/messages.h"

#define STAT(d, name) __atomic_fetch_add(&(d)->stats.name, 1, __ATOMIC_RELAXED)

void lsw_timer_cfg_default(struct lsw_timer_cfg *c)
{
	c->rekey_after_time_ms = LSW_REKEY_AFTER_TIME_MS;
	c->reject_after_time_ms = LSW_REJECT_AFTER_TIME_MS;
	c->rekey_attempt_time_ms = LSW_REKEY_ATTEMPT_TIME_MS;
	c->rekey_timeout_ms = LSW_REKEY_TIMEOUT_MS;
	c->keepalive_timeout_ms = LSW_KEEPALIVE_TIMEOUT_MS;
	c->rekey_after_messages = LSW_REKEY_AFTER_MESSAGES;
	c->reject_after_messages = LSW_REJECT_AFTER_MESSAGES;
}

static void env_u64(const char *name, uint64_t *v, uint64_t scale)
{
	const char *s = getenv(name);
	char *end;
	unsigned long long x;

	if (!s || !*s)
		return;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno || *end || x == 0)
		return;
	*v = x * scale;
}

void lsw_timer_cfg_from_env(struct lsw_timer_cfg *c)
{
	env_u64("LIGHTSCALE_WG_REKEY_AFTER_TIME", &c->rekey_after_time_ms, 1000);
	env_u64("LIGHTSCALE_WG_REJECT_AFTER_TIME", &c->reject_after_time_ms, 1000);
	env_u64("LIGHTSCALE_WG_REKEY_ATTEMPT_TIME", &c->rekey_attempt_time_ms, 1000);
	env_u64("LIGHTSCALE_WG_REKEY_TIMEOUT", &c->rekey_timeout_ms, 1000);
	env_u64("LIGHTSCALE_WG_KEEPALIVE_TIMEOUT", &c->keepalive_timeout_ms, 1000);
	env_u64("LIGHTSCALE_WG_REKEY_AFTER_MESSAGES", &c->rekey_after_messages, 1);
}

uint64_t lsw_dev_now(const struct lsw_device *d)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + d->time_offset_ms;
}

/* --- index table --- */

static struct lsw_index *index_lookup(struct lsw_device *d, uint32_t idx)
{
	struct lsw_index *e;

	for (e = d->index[idx % LSW_INDEX_BUCKETS]; e; e = e->next)
		if (e->idx == idx)
			return e;
	return NULL;
}

static void index_remove(struct lsw_device *d, struct lsw_index *e)
{
	struct lsw_index **pp;

	if (!e->hashed)
		return;
	for (pp = &d->index[e->idx % LSW_INDEX_BUCKETS]; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
	e->hashed = false;
	e->next = NULL;
}

static void index_insert_at(struct lsw_device *d, struct lsw_index *e, uint32_t idx)
{
	e->idx = idx;
	e->next = d->index[idx % LSW_INDEX_BUCKETS];
	d->index[idx % LSW_INDEX_BUCKETS] = e;
	e->hashed = true;
}

/* A fresh random index nobody uses. */
static void index_insert(struct lsw_device *d, struct lsw_index *e)
{
	uint32_t idx;

	index_remove(d, e);
	do
		randombytes_buf(&idx, sizeof(idx));
	while (index_lookup(d, idx));
	index_insert_at(d, e, idx);
}

/* --- timers (whitepaper 6.2-6.5, event names as in the paper's prose) --- */

static uint64_t jitter_ms(void)
{
	return randombytes_uniform(334);
}

static void arm(struct lsw_device *d, uint64_t *t, uint64_t when)
{
	*t = when ? when : 1;
	if (d->ops && d->ops->wake && when < d->timers_next_ms) {
		d->timers_next_ms = when;
		d->ops->wake(d->ctx);
	}
}

static void ev_data_sent(struct lsw_device *d, struct lsw_peer *p, uint64_t now)
{
	if (!p->t_new_handshake)
		arm(d, &p->t_new_handshake,
		    now + d->cfg.keepalive_timeout_ms + d->cfg.rekey_timeout_ms + jitter_ms());
}

static void ev_data_received(struct lsw_device *d, struct lsw_peer *p, uint64_t now)
{
	if (!p->t_send_keepalive)
		arm(d, &p->t_send_keepalive, now + d->cfg.keepalive_timeout_ms);
	else
		p->need_another_keepalive = true;
}

static void ev_any_auth_sent(struct lsw_peer *p)
{
	p->t_send_keepalive = 0;
}

static void ev_any_auth_received(struct lsw_peer *p)
{
	p->t_new_handshake = 0;
}

static void ev_any_auth_traversal(struct lsw_device *d, struct lsw_peer *p, uint64_t now)
{
	if (p->persistent_keepalive)
		arm(d, &p->t_persistent, now + (uint64_t)p->persistent_keepalive * 1000);
}

static void ev_handshake_initiated(struct lsw_device *d, struct lsw_peer *p, uint64_t now)
{
	arm(d, &p->t_retransmit, now + d->cfg.rekey_timeout_ms + jitter_ms());
}

static void ev_handshake_complete(struct lsw_peer *p)
{
	p->t_retransmit = 0;
	p->handshake_attempts = 0;
	p->sent_lastminute_handshake = false;
	clock_gettime(CLOCK_REALTIME, &p->last_handshake);
}

static void ev_session_derived(struct lsw_device *d, struct lsw_peer *p, uint64_t now)
{
	arm(d, &p->t_zero_keys, now + 3 * d->cfg.reject_after_time_ms);
}

/* --- keypairs --- */

static void keypair_free(struct lsw_device *d, struct lsw_keypair *kp)
{
	if (!kp)
		return;
	index_remove(d, &kp->entry);
	sodium_memzero(kp, sizeof(*kp));
	free(kp);
}

static void clear_keys(struct lsw_device *d, struct lsw_peer *p)
{
	keypair_free(d, p->kp_prev);
	keypair_free(d, p->kp_cur);
	keypair_free(d, p->kp_next);
	p->kp_prev = p->kp_cur = p->kp_next = NULL;
	index_remove(d, &p->hs_entry);
	lsw_handshake_clear(&p->hs);
}

/* Turns a finished handshake into a keypair that takes over its index. */
static struct lsw_keypair *derive_keypair(struct lsw_device *d, struct lsw_peer *p, uint64_t now)
{
	struct lsw_keypair *kp = calloc(1, sizeof(*kp));
	uint32_t remote = p->hs.remote_index;

	if (!kp)
		return NULL;
	if (lsw_noise_derive_keys(&p->hs, &kp->keys)) {
		free(kp);
		return NULL;
	}
	kp->serial = ++d->next_serial;
	kp->birth_ms = now;
	kp->remote_index = remote;
	kp->peer = p;
	lsw_replay_init(&kp->replay);
	kp->entry.kind = LSW_INDEX_KEYPAIR;
	kp->entry.peer = p;
	kp->entry.kp = kp;
	index_remove(d, &p->hs_entry);
	index_insert_at(d, &kp->entry, p->hs_entry.idx);
	return kp;
}

static void add_keypair(struct lsw_device *d, struct lsw_peer *p, struct lsw_keypair *kp)
{
	if (kp->keys.initiator) {
		keypair_free(d, p->kp_prev);
		if (p->kp_next) {
			/* An unconfirmed responder keypair becomes the previous one. */
			p->kp_prev = p->kp_next;
			p->kp_next = NULL;
			keypair_free(d, p->kp_cur);
		} else {
			p->kp_prev = p->kp_cur;
		}
		p->kp_cur = kp;
	} else {
		/* Responder: usable for sending once the initiator has used it. */
		keypair_free(d, p->kp_next);
		p->kp_next = kp;
		keypair_free(d, p->kp_prev);
		p->kp_prev = NULL;
	}
}

/* On a packet received with kp: a confirmed next keypair becomes current. */
static bool confirm_keypair(struct lsw_device *d, struct lsw_peer *p, struct lsw_keypair *kp)
{
	if (kp != p->kp_next)
		return false;
	keypair_free(d, p->kp_prev);
	p->kp_prev = p->kp_cur;
	p->kp_cur = kp;
	p->kp_next = NULL;
	return true;
}

static struct lsw_keypair *usable_keypair(struct lsw_device *d, struct lsw_peer *p, uint64_t now, uint64_t n)
{
	struct lsw_keypair *kp = p->kp_cur;

	if (!kp || now >= kp->birth_ms + d->cfg.reject_after_time_ms ||
	    kp->send_counter + n > d->cfg.reject_after_messages)
		return NULL;
	return kp;
}

/* --- sending --- */

static int send_raw(struct lsw_device *d, struct lsw_peer *p, void *msg, size_t len)
{
	struct iovec iov = { .iov_base = msg, .iov_len = len };
	int ret;

	if (!p->endpoint.len) {
		STAT(d, tx_drop_no_endpoint);
		return -EDESTADDRREQ;
	}
	ret = d->ops->udp_send(d->ctx, &p->endpoint, &iov, 1, 0);
	if (ret)
		STAT(d, tx_drop_send_error);
	else
		p->tx_bytes += len; /* handshakes count, as in the kernel */
	return ret;
}

static void send_initiation(struct lsw_device *d, struct lsw_peer *p, bool is_retry, uint64_t now)
{
	struct lsw_msg_initiation m;
	uint8_t ts[LSW_TIMESTAMP_LEN];

	if (!is_retry)
		p->handshake_attempts = 0;
	if (p->last_sent_handshake_ms && now < p->last_sent_handshake_ms + d->cfg.rekey_timeout_ms)
		return;
	if (!d->id.has_key || !p->hs.static_static_ok)
		return;
	p->last_sent_handshake_ms = now;
	index_insert(d, &p->hs_entry);
	lsw_tai64n_now(ts, d->time_offset_ms);
	if (lsw_noise_create_initiation(&p->hs, &d->id, &m, p->hs_entry.idx, ts) == 0) {
		lsw_cookie_add_macs(&p->cookie, &m, sizeof(m), now);
		ev_any_auth_traversal(d, p, now);
		if (send_raw(d, p, &m, sizeof(m)) == 0) {
			STAT(d, tx_initiations);
			ev_any_auth_sent(p);
		}
	}
	ev_handshake_initiated(d, p, now);
}

static size_t padded_len(size_t len, unsigned int mtu)
{
	size_t last = len, padded;

	if (!mtu)
		return (len + 15) & ~(size_t)15;
	if (last > mtu)
		last %= mtu;
	padded = (last + 15) & ~(size_t)15;
	if (padded > mtu)
		padded = mtu;
	if (padded < last)
		padded = last;
	return len + (padded - last);
}

struct seal_job {
	struct lsw_pkt *pkts;
	int n;
	const uint8_t *key;
	uint32_t remote;
	uint64_t counter;
	unsigned int mtu;
};

/* Builds the data message in place around one packet (padding, header, tag). */
static void seal_one(struct lsw_pkt *pk, const uint8_t *key, uint32_t remote, uint64_t counter, unsigned int mtu)
{
	size_t plen = padded_len(pk->len, mtu);
	struct lsw_msg_data *m = (struct lsw_msg_data *)(pk->data - LSW_HEADROOM);

	memset(pk->data + pk->len, 0, plen - pk->len);
	m->h.type = LSW_MSG_DATA;
	memset(m->h.reserved, 0, 3);
	m->receiver = htole32(remote);
	m->counter = htole64(counter);
	lsw_aead_encrypt(pk->data, pk->data, plen, NULL, 0, counter, key);
	pk->wire_len = LSW_DATA_HDR_LEN + plen + LSW_AEAD_TAG;
}

static void seal_part(void *arg, int part, int nparts)
{
	struct seal_job *j = arg;
	int lo = (int)((long)j->n * part / nparts), hi = (int)((long)j->n * (part + 1) / nparts);

	for (int k = lo; k < hi; k++)
		seal_one(&j->pkts[k], j->key, j->remote, j->counter + (uint64_t)k, j->mtu);
}

static void run_parallel(struct lsw_device *d, int path, lsw_pool_fn fn, void *arg, int n)
{
	if (d->ops->parallel && n >= 8)
		d->ops->parallel(d->ctx, path, fn, arg, n);
	else
		fn(arg, 0, 1);
}

/* Sends sealed messages to ep, grouping equal sizes into UDP GSO sends.
 * Returns the bytes sent. */
static uint64_t send_sealed(struct lsw_device *d, const struct lsw_endpoint *ep, struct lsw_pkt *pkts, int n)
{
	struct iovec iov[64];
	uint64_t bytes = 0;
	int i = 0;

	while (i < n) {
		int cnt = 0;
		size_t first = 0, total = 0;

		while (i < n && cnt < 64) {
			size_t mlen = pkts[i].wire_len;

			/* A GSO send carries at most 64 datagrams and 64 KiB of payload. */
			if (cnt && (mlen > first || total + mlen > 65000))
				break;
			iov[cnt].iov_base = pkts[i].data - LSW_HEADROOM;
			iov[cnt].iov_len = mlen;
			total += mlen;
			i++;
			if (!cnt)
				first = mlen;
			cnt++;
			if (mlen < first)
				break; /* a shorter one ends a GSO run */
		}
		if (d->ops->udp_send(d->ctx, ep, iov, cnt, cnt > 1 ? first : 0) == 0) {
			for (int k = 0; k < cnt; k++)
				bytes += iov[k].iov_len;
		} else {
			__atomic_fetch_add(&d->stats.tx_drop_send_error, (uint64_t)cnt, __ATOMIC_RELAXED);
		}
	}
	return bytes;
}

/* Seals pkts with consecutive counters from counter and sends them. With
 * parallel (the TX thread only: one user per pool) sealing uses every core. */
static uint64_t encrypt_and_send(struct lsw_device *d, const uint8_t key[32], uint32_t remote_index, uint64_t counter,
				 const struct lsw_endpoint *ep, struct lsw_pkt *pkts, int n, unsigned int mtu,
				 bool parallel)
{
	struct seal_job j = { pkts, n, key, remote_index, counter, mtu };

	if (parallel)
		run_parallel(d, 0, seal_part, &j, n);
	else
		seal_part(&j, 0, 1);
	return send_sealed(d, ep, pkts, n);
}

static void stage(struct lsw_device *d, struct lsw_peer *p, const uint8_t *data, size_t len)
{
	struct lsw_staged *s;

	if (p->nstaged >= LSW_MAX_STAGED) {
		/* Drop the oldest, as the kernel does. */
		s = p->staged_head;
		p->staged_head = s->next;
		if (!p->staged_head)
			p->staged_tail = &p->staged_head;
		p->nstaged--;
		free(s);
		STAT(d, tx_drop_staged_overflow);
	}
	s = malloc(sizeof(*s) + LSW_HEADROOM + len + LSW_TAILROOM);
	if (!s)
		return;
	s->next = NULL;
	s->len = len;
	if (len)
		memcpy(s->buf + LSW_HEADROOM, data, len);
	*p->staged_tail = s;
	p->staged_tail = &s->next;
	p->nstaged++;
}

static void purge_staged(struct lsw_peer *p)
{
	while (p->staged_head) {
		struct lsw_staged *s = p->staged_head;

		p->staged_head = s->next;
		free(s);
	}
	p->staged_tail = &p->staged_head;
	p->nstaged = 0;
}

/* Keeps a session fresh from the sending side (whitepaper 6.2). */
static void keep_key_fresh_tx(struct lsw_device *d, struct lsw_peer *p, struct lsw_keypair *kp, uint64_t now)
{
	if (kp->send_counter > d->cfg.rekey_after_messages ||
	    (kp->keys.initiator && now >= kp->birth_ms + d->cfg.rekey_after_time_ms))
		send_initiation(d, p, false, now);
}

/* Sends what is staged (a keepalive is a staged empty packet), under the lock. */
static void send_staged_locked(struct lsw_device *d, struct lsw_peer *p, uint64_t now)
{
	struct lsw_pkt pkts[LSW_MAX_STAGED];
	struct lsw_staged *s;
	struct lsw_keypair *kp;
	uint64_t bytes, first;
	bool data = false;
	int n = 0;

	if (!p->nstaged)
		return;
	kp = usable_keypair(d, p, now, p->nstaged);
	if (!kp) {
		send_initiation(d, p, false, now);
		return;
	}
	if (!p->endpoint.len) {
		__atomic_fetch_add(&d->stats.tx_drop_no_endpoint, (uint64_t)p->nstaged, __ATOMIC_RELAXED);
		purge_staged(p);
		return;
	}
	for (s = p->staged_head; s; s = s->next) {
		pkts[n].data = s->buf + LSW_HEADROOM;
		pkts[n].len = s->len;
		if (s->len)
			data = true;
		else
			STAT(d, tx_keepalives);
		n++;
	}
	first = kp->send_counter;
	kp->send_counter += (uint64_t)n;
	bytes = encrypt_and_send(d, kp->keys.send, kp->remote_index, first, &p->endpoint, pkts, n, d->mtu, false);
	purge_staged(p);
	p->tx_bytes += bytes;
	if (bytes) {
		ev_any_auth_sent(p);
		ev_any_auth_traversal(d, p, now);
		if (data)
			ev_data_sent(d, p, now);
	}
	keep_key_fresh_tx(d, p, kp, now);
}

static void send_keepalive_locked(struct lsw_device *d, struct lsw_peer *p, uint64_t now)
{
	if (!p->nstaged)
		stage(d, p, NULL, 0);
	send_staged_locked(d, p, now);
}

void lsw_dev_send_keepalive(struct lsw_device *d, struct lsw_peer *p)
{
	pthread_mutex_lock(&d->lock);
	send_keepalive_locked(d, p, lsw_dev_now(d));
	pthread_mutex_unlock(&d->lock);
}

static void peer_put(struct lsw_peer *p)
{
	if (__atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		sodium_memzero(p, sizeof(*p));
		free(p);
	}
}

/* Destination of an inner packet; 0 or -EINVAL when it is not IPv4/IPv6. */
static int inner_dst(const uint8_t *pkt, size_t len, int *family, const uint8_t **addr)
{
	if (len >= 20 && (pkt[0] >> 4) == 4) {
		*family = AF_INET;
		*addr = pkt + 16;
		return 0;
	}
	if (len >= 40 && (pkt[0] >> 4) == 6) {
		*family = AF_INET6;
		*addr = pkt + 24;
		return 0;
	}
	return -EINVAL;
}

void lsw_dev_tx(struct lsw_device *d, struct lsw_pkt *pkts, int n)
{
	int i = 0;

	while (i < n) {
		const uint8_t *dst, *dst2;
		struct lsw_endpoint ep;
		struct lsw_keypair *kp;
		struct lsw_peer *p;
		uint8_t key[32];
		uint32_t remote;
		uint64_t now, first, bytes;
		unsigned int mtu;
		int fam, fam2, j;

		if (inner_dst(pkts[i].data, pkts[i].len, &fam, &dst)) {
			STAT(d, tx_drop_malformed);
			i++;
			continue;
		}
		pthread_mutex_lock(&d->lock);
		now = lsw_dev_now(d);
		p = lsw_aip_lookup(&d->aip, fam, dst);
		if (!p) {
			pthread_mutex_unlock(&d->lock);
			STAT(d, tx_drop_no_peer);
			i++;
			continue;
		}
		/* The run of packets to the same destination (a split super-packet). */
		for (j = i + 1; j < n; j++) {
			if (inner_dst(pkts[j].data, pkts[j].len, &fam2, &dst2) || fam2 != fam ||
			    memcmp(dst, dst2, fam == AF_INET ? 4 : 16))
				break;
		}
		kp = usable_keypair(d, p, now, (uint64_t)(j - i));
		if (!kp || p->nstaged) {
			for (int k = i; k < j; k++)
				stage(d, p, pkts[k].data, pkts[k].len);
			send_staged_locked(d, p, now);
			pthread_mutex_unlock(&d->lock);
			i = j;
			continue;
		}
		if (!p->endpoint.len) {
			pthread_mutex_unlock(&d->lock);
			__atomic_fetch_add(&d->stats.tx_drop_no_endpoint, (uint64_t)(j - i), __ATOMIC_RELAXED);
			i = j;
			continue;
		}
		first = kp->send_counter;
		kp->send_counter += (uint64_t)(j - i);
		memcpy(key, kp->keys.send, 32);
		remote = kp->remote_index;
		ep = p->endpoint;
		mtu = d->mtu;
		keep_key_fresh_tx(d, p, kp, now);
		__atomic_add_fetch(&p->refs, 1, __ATOMIC_ACQ_REL);
		pthread_mutex_unlock(&d->lock);

		bytes = encrypt_and_send(d, key, remote, first, &ep, pkts + i, j - i, mtu, true);
		sodium_memzero(key, sizeof(key));

		pthread_mutex_lock(&d->lock);
		if (!p->dead && bytes) {
			p->tx_bytes += bytes;
			ev_any_auth_sent(p);
			ev_any_auth_traversal(d, p, now);
			ev_data_sent(d, p, now);
		}
		pthread_mutex_unlock(&d->lock);
		peer_put(p);
		i = j;
	}
}

/* --- receiving --- */

static void roam(struct lsw_peer *p, const struct lsw_endpoint *src)
{
	if (p->endpoint.len != src->len || memcmp(&p->endpoint, src, src->len) ||
	    p->endpoint.has_local != src->has_local || memcmp(&p->endpoint.local, &src->local, sizeof(src->local)))
		p->endpoint = *src;
}

static size_t addr_bytes(const struct lsw_endpoint *ep, uint8_t out[18])
{
	if (ep->sa.sa_family == AF_INET) {
		memcpy(out, &ep->in4.sin_addr, 4);
		memcpy(out + 4, &ep->in4.sin_port, 2);
		return 6;
	}
	memcpy(out, &ep->in6.sin6_addr, 16);
	memcpy(out + 16, &ep->in6.sin6_port, 2);
	return 18;
}

static bool under_load(struct lsw_device *d, uint64_t now)
{
	if (d->force_under_load)
		return true;
	if (now >= d->load_window_ms + 1000) {
		d->load_window_ms = now;
		d->load_count = 0;
	}
	if (++d->load_count > 256)
		d->under_load_until_ms = now + 1000;
	return now < d->under_load_until_ms;
}

/* Token bucket per source address: 20 handshakes a second, bursts of 5. */
static bool ratelimited(struct lsw_device *d, const uint8_t *a, size_t alen, uint64_t now)
{
	uint32_t key = 2166136261u;
	unsigned int slot;

	for (size_t i = 0; i + 2 < alen; i++) /* the address, not the port */
		key = (key ^ a[i]) * 16777619u;
	slot = key % (sizeof(d->rl) / sizeof(d->rl[0]));
	if (d->rl[slot].key != key || !d->rl[slot].last_ms) {
		d->rl[slot].key = key;
		d->rl[slot].tokens = 5;
		d->rl[slot].last_ms = now;
	} else {
		uint64_t add = (now - d->rl[slot].last_ms) * 20 / 1000;

		if (add) {
			d->rl[slot].tokens = (unsigned int)(d->rl[slot].tokens + add > 5 ? 5 : d->rl[slot].tokens + add);
			d->rl[slot].last_ms = now;
		}
	}
	if (!d->rl[slot].tokens)
		return true;
	d->rl[slot].tokens--;
	return false;
}

/* MAC checks shared by initiations and responses; false drops the message. */
static bool check_macs(struct lsw_device *d, const void *msg, size_t len, uint32_t sender,
		       const struct lsw_endpoint *src, uint64_t now)
{
	uint8_t a[18];
	size_t alen = addr_bytes(src, a);
	bool load = under_load(d, now);
	enum lsw_mac_result r = lsw_cookie_validate(&d->cookies, msg, len, a, alen, load, now);

	if (r == LSW_MAC_INVALID) {
		STAT(d, rx_drop_mac);
		return false;
	}
	if (!load)
		return true;
	if (r != LSW_MAC_VALID_WITH_COOKIE) {
		struct lsw_msg_cookie reply;
		struct iovec iov = { .iov_base = &reply, .iov_len = sizeof(reply) };

		lsw_cookie_create_reply(&d->cookies, &reply, msg, len, sender, a, alen, now);
		if (d->ops->udp_send(d->ctx, src, &iov, 1, 0) == 0)
			STAT(d, tx_cookie_replies);
		return false;
	}
	if (ratelimited(d, a, alen, now)) {
		STAT(d, rx_drop_ratelimit);
		return false;
	}
	return true;
}

static void rx_initiation(struct lsw_device *d, const struct lsw_msg_initiation *m, const struct lsw_endpoint *src,
			  uint64_t now)
{
	struct lsw_initiation_state st;
	struct lsw_msg_response resp;
	struct lsw_keypair *kp;
	struct lsw_peer *p;

	if (!d->id.has_key || !check_macs(d, m, sizeof(*m), le32toh(m->sender), src, now))
		return;
	if (lsw_noise_consume_initiation1(&d->id, m, &st)) {
		STAT(d, rx_drop_handshake);
		return;
	}
	p = lsw_dev_find_peer(d, st.remote_static);
	if (!p) {
		sodium_memzero(&st, sizeof(st));
		STAT(d, rx_drop_unknown_peer);
		return;
	}
	if (lsw_noise_consume_initiation2(&p->hs, &st, m, now)) {
		STAT(d, rx_drop_handshake);
		return;
	}
	STAT(d, rx_initiations);
	p->rx_bytes += sizeof(*m);
	roam(p, src);
	ev_any_auth_received(p);
	ev_any_auth_traversal(d, p, now);

	index_insert(d, &p->hs_entry);
	if (lsw_noise_create_response(&p->hs, &d->id, &resp, p->hs_entry.idx))
		return;
	lsw_cookie_add_macs(&p->cookie, &resp, sizeof(resp), now);
	kp = derive_keypair(d, p, now);
	if (!kp)
		return;
	add_keypair(d, p, kp);
	ev_session_derived(d, p, now);
	if (send_raw(d, p, &resp, sizeof(resp)) == 0) {
		STAT(d, tx_responses);
		ev_any_auth_sent(p);
	}
}

static void rx_response(struct lsw_device *d, const struct lsw_msg_response *m, const struct lsw_endpoint *src,
			uint64_t now)
{
	struct lsw_keypair *kp;
	struct lsw_index *e;
	struct lsw_peer *p;

	if (!check_macs(d, m, sizeof(*m), le32toh(m->sender), src, now))
		return;
	e = index_lookup(d, le32toh(m->receiver));
	if (!e || e->kind != LSW_INDEX_HANDSHAKE) {
		STAT(d, rx_drop_unknown_peer);
		return;
	}
	p = e->peer;
	if (lsw_noise_consume_response(&p->hs, &d->id, m)) {
		STAT(d, rx_drop_handshake);
		return;
	}
	STAT(d, rx_responses);
	p->rx_bytes += sizeof(*m);
	kp = derive_keypair(d, p, now);
	if (!kp)
		return;
	add_keypair(d, p, kp);
	roam(p, src);
	ev_session_derived(d, p, now);
	ev_handshake_complete(p);
	ev_any_auth_received(p);
	ev_any_auth_traversal(d, p, now);
	/* Confirms the session to the responder: staged data, or a keepalive. */
	send_keepalive_locked(d, p, now);
}

static void rx_cookie(struct lsw_device *d, const struct lsw_msg_cookie *m, uint64_t now)
{
	struct lsw_index *e = index_lookup(d, le32toh(m->receiver));

	if (!e || lsw_cookie_consume_reply(&e->peer->cookie, m, now))
		STAT(d, rx_drop_mac);
}

/* Length of the inner packet per its own header, or 0 when it is malformed. */
static size_t inner_len(const uint8_t *pkt, size_t len, int *family, const uint8_t **src)
{
	if (len >= 20 && (pkt[0] >> 4) == 4) {
		size_t tot = (size_t)pkt[2] << 8 | pkt[3];

		if ((pkt[0] & 15) < 5 || tot < 20 || tot > len)
			return 0;
		*family = AF_INET;
		*src = pkt + 12;
		return tot;
	}
	if (len >= 40 && (pkt[0] >> 4) == 6) {
		size_t tot = 40 + ((size_t)pkt[4] << 8 | pkt[5]);

		if (tot > len)
			return 0;
		*family = AF_INET6;
		*src = pkt + 8;
		return tot;
	}
	return 0;
}

enum { RX_SKIP = 0, RX_OPEN, RX_CHECK, RX_DELIVER };

struct open_job {
	struct lsw_device *d;
	struct lsw_rx *m;
	int n;
};

/* Phase 1 (locked): find the keypair of a data message and copy its key. */
static void rx_data_lookup(struct lsw_device *d, struct lsw_rx *m, uint64_t now)
{
	struct lsw_msg_data *h = (struct lsw_msg_data *)m->buf;
	struct lsw_index *e;

	m->idx = le32toh(h->receiver);
	e = index_lookup(d, m->idx);
	if (!e || e->kind != LSW_INDEX_KEYPAIR || now >= e->kp->birth_ms + d->cfg.reject_after_time_ms ||
	    e->kp->replay.greatest >= d->cfg.reject_after_messages) {
		STAT(d, rx_drop_no_keypair);
		return;
	}
	memcpy(m->key, e->kp->keys.recv, 32);
	m->serial = e->kp->serial;
	m->state = RX_OPEN;
}

/* Phase 2 (unlocked, on every core): authenticate and decrypt in place. */
static void rx_open_part(void *arg, int part, int nparts)
{
	struct open_job *j = arg;

	for (int k = (int)((long)j->n * part / nparts); k < (int)((long)j->n * (part + 1) / nparts); k++) {
		struct lsw_rx *m = &j->m[k];
		struct lsw_msg_data *h = (struct lsw_msg_data *)m->buf;

		if (m->state != RX_OPEN)
			continue;
		if (lsw_aead_decrypt(m->buf + LSW_DATA_HDR_LEN, m->buf + LSW_DATA_HDR_LEN, m->len - LSW_DATA_HDR_LEN, NULL,
				     0, le64toh(h->counter), m->key)) {
			m->state = RX_SKIP;
			STAT(j->d, rx_drop_decrypt);
		} else {
			m->state = RX_CHECK;
		}
		sodium_memzero(m->key, sizeof(m->key));
	}
}

/* Phase 3 (locked): replay window, session bookkeeping, inner packet checks. */
static void rx_data_check(struct lsw_device *d, struct lsw_rx *m, uint64_t now)
{
	struct lsw_msg_data *h = (struct lsw_msg_data *)m->buf;
	size_t plen = m->len - LSW_DATA_OVERHEAD, ilen;
	const uint8_t *isrc;
	struct lsw_keypair *kp;
	struct lsw_index *e;
	struct lsw_peer *p;
	int fam;

	m->state = RX_SKIP;
	e = index_lookup(d, m->idx);
	if (!e || e->kind != LSW_INDEX_KEYPAIR || e->kp->serial != m->serial) {
		STAT(d, rx_drop_no_keypair);
		return;
	}
	kp = e->kp;
	p = kp->peer;
	if (!lsw_replay_check(&kp->replay, le64toh(h->counter))) {
		STAT(d, rx_drop_replay);
		return;
	}
	if (confirm_keypair(d, p, kp)) {
		ev_handshake_complete(p);
		send_staged_locked(d, p, now);
	}
	roam(p, m->src);
	p->rx_bytes += m->len;
	ev_any_auth_received(p);
	ev_any_auth_traversal(d, p, now);
	/* Keep the session fresh from the receiving side (whitepaper 6.2). */
	if (kp == p->kp_cur && kp->keys.initiator && !p->sent_lastminute_handshake &&
	    now >= kp->birth_ms + d->cfg.reject_after_time_ms - d->cfg.keepalive_timeout_ms - d->cfg.rekey_timeout_ms) {
		p->sent_lastminute_handshake = true;
		send_initiation(d, p, false, now);
	}
	if (!plen) {
		STAT(d, rx_keepalives);
		return;
	}
	ev_data_received(d, p, now);
	ilen = inner_len(m->buf + LSW_DATA_HDR_LEN, plen, &fam, &isrc);
	if (!ilen) {
		STAT(d, rx_drop_inner);
		return;
	}
	if (lsw_aip_lookup(&d->aip, fam, isrc) != p) {
		STAT(d, rx_drop_allowedips);
		return;
	}
	m->ilen = ilen;
	m->state = RX_DELIVER;
}

/* Phase 1 for every message: length and type checks; handshake messages are
 * handled here, in order, so a session they create serves the data after them. */
static void rx_classify(struct lsw_device *d, struct lsw_rx *m, uint64_t now)
{
	const uint8_t *buf = m->buf;
	uint32_t type;

	m->state = RX_SKIP;
	STAT(d, rx_datagrams);
	if (m->len < 4) {
		STAT(d, rx_drop_short);
		return;
	}
	/* The type and the three reserved zero bytes, as one little-endian word. */
	type = (uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 24;
	switch (type) {
	case LSW_MSG_DATA:
		if (m->len < LSW_DATA_MIN_LEN) {
			STAT(d, rx_drop_short);
			return;
		}
		rx_data_lookup(d, m, now);
		return;
	case LSW_MSG_INITIATION:
		if (m->len != LSW_INITIATION_LEN)
			break;
		rx_initiation(d, (const void *)buf, m->src, now);
		return;
	case LSW_MSG_RESPONSE:
		if (m->len != LSW_RESPONSE_LEN)
			break;
		rx_response(d, (const void *)buf, m->src, now);
		return;
	case LSW_MSG_COOKIE:
		if (m->len != LSW_COOKIE_MSG_LEN)
			break;
		rx_cookie(d, (const void *)buf, now);
		return;
	default:
		STAT(d, rx_drop_type);
		return;
	}
	STAT(d, rx_drop_short);
}

void lsw_dev_rx_batch(struct lsw_device *d, struct lsw_rx *m, int n)
{
	struct open_job job = { d, m, n };
	uint64_t now;
	int nopen = 0;

	pthread_mutex_lock(&d->lock);
	now = lsw_dev_now(d);
	for (int i = 0; i < n; i++) {
		rx_classify(d, &m[i], now);
		nopen += m[i].state == RX_OPEN;
	}
	pthread_mutex_unlock(&d->lock);
	if (!nopen)
		return;

	run_parallel(d, 1, rx_open_part, &job, n);

	pthread_mutex_lock(&d->lock);
	now = lsw_dev_now(d);
	for (int i = 0; i < n; i++)
		if (m[i].state == RX_CHECK)
			rx_data_check(d, &m[i], now);
	pthread_mutex_unlock(&d->lock);

	for (int i = 0; i < n; i++)
		if (m[i].state == RX_DELIVER)
			d->ops->tun_write(d->ctx, m[i].buf + LSW_DATA_HDR_LEN, m[i].ilen);
}

void lsw_dev_rx(struct lsw_device *d, uint8_t *buf, size_t len, const struct lsw_endpoint *src)
{
	struct lsw_rx m = { .buf = buf, .len = len, .src = src };

	lsw_dev_rx_batch(d, &m, 1);
}

/* --- timers --- */

static bool due(uint64_t *t, uint64_t now)
{
	if (*t && now >= *t) {
		*t = 0;
		return true;
	}
	return false;
}

static void min_deadline(uint64_t *next, uint64_t t)
{
	if (t && t < *next)
		*next = t;
}

uint64_t lsw_dev_timers(struct lsw_device *d)
{
	uint64_t now, next;
	struct lsw_peer *p;

	pthread_mutex_lock(&d->lock);
	now = lsw_dev_now(d);
	next = now + 1000;
	for (p = d->peers; p; p = p->next) {
		if (due(&p->t_retransmit, now)) {
			if (p->handshake_attempts >
			    d->cfg.rekey_attempt_time_ms / d->cfg.rekey_timeout_ms) {
				/* Give up (REKEY_ATTEMPT_TIME): drop what waits, zero keys later. */
				p->t_send_keepalive = 0;
				purge_staged(p);
				if (!p->t_zero_keys)
					arm(d, &p->t_zero_keys, now + 3 * d->cfg.reject_after_time_ms);
			} else {
				p->handshake_attempts++;
				send_initiation(d, p, true, now);
			}
		}
		if (due(&p->t_send_keepalive, now)) {
			send_keepalive_locked(d, p, now);
			if (p->need_another_keepalive) {
				p->need_another_keepalive = false;
				arm(d, &p->t_send_keepalive, now + d->cfg.keepalive_timeout_ms);
			}
		}
		if (due(&p->t_new_handshake, now))
			send_initiation(d, p, false, now);
		if (due(&p->t_zero_keys, now))
			clear_keys(d, p);
		if (due(&p->t_persistent, now) && p->persistent_keepalive)
			send_keepalive_locked(d, p, now);
		min_deadline(&next, p->t_retransmit);
		min_deadline(&next, p->t_send_keepalive);
		min_deadline(&next, p->t_new_handshake);
		min_deadline(&next, p->t_zero_keys);
		min_deadline(&next, p->t_persistent);
	}
	d->timers_next_ms = next;
	pthread_mutex_unlock(&d->lock);
	return next;
}

/* --- configuration --- */

int lsw_dev_init(struct lsw_device *d, const struct lsw_device_ops *ops, void *ctx)
{
	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
	d->ops = ops;
	d->ctx = ctx;
	d->mtu = 1420;
	lsw_timer_cfg_default(&d->cfg);
	lsw_cookie_checker_init(&d->cookies, NULL);
	return 0;
}

void lsw_dev_destroy(struct lsw_device *d)
{
	pthread_mutex_lock(&d->lock);
	while (d->peers)
		lsw_dev_remove_peer(d, d->peers);
	lsw_aip_free(&d->aip);
	sodium_memzero(&d->id, sizeof(d->id));
	sodium_memzero(&d->cookies, sizeof(d->cookies));
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_destroy(&d->lock);
}

int lsw_dev_set_private_key(struct lsw_device *d, const uint8_t priv[LSW_KEY_LEN])
{
	struct lsw_identity id = { 0 };
	struct lsw_peer *p, *next;
	int ret;

	ret = lsw_identity_set(&id, priv);
	if (ret)
		return ret;
	if (id.has_key == d->id.has_key && sodium_memcmp(id.priv, d->id.priv, 32) == 0)
		goto cleanup;
	/* A peer with our own public key cannot exist (the kernel removes it). */
	for (p = d->peers; p; p = next) {
		next = p->next;
		if (id.has_key && sodium_memcmp(p->pub, id.pub, 32) == 0)
			lsw_dev_remove_peer(d, p);
	}
	d->id = id;
	lsw_cookie_checker_init(&d->cookies, id.has_key ? id.pub : NULL);
	for (p = d->peers; p; p = p->next) {
		clear_keys(d, p);
		lsw_handshake_precompute(&p->hs, &d->id);
	}
cleanup:
	sodium_memzero(&id, sizeof(id));
	return 0;
}

struct lsw_peer *lsw_dev_find_peer(struct lsw_device *d, const uint8_t pub[LSW_KEY_LEN])
{
	struct lsw_peer *p;

	for (p = d->peers; p; p = p->next)
		if (sodium_memcmp(p->pub, pub, 32) == 0)
			return p;
	return NULL;
}

struct lsw_peer *lsw_dev_add_peer(struct lsw_device *d, const uint8_t pub[LSW_KEY_LEN])
{
	struct lsw_peer *p = calloc(1, sizeof(*p));
	struct lsw_peer **tail;

	if (!p)
		return NULL;
	p->refs = 1;
	memcpy(p->pub, pub, 32);
	lsw_handshake_init(&p->hs, &d->id, pub, NULL);
	lsw_cookie_init(&p->cookie, pub);
	p->hs_entry.kind = LSW_INDEX_HANDSHAKE;
	p->hs_entry.peer = p;
	p->staged_tail = &p->staged_head;
	/* Keep configuration order, as `wg showconf` prints it. */
	for (tail = &d->peers; *tail; tail = &(*tail)->next)
		;
	*tail = p;
	d->npeers++;
	return p;
}

void lsw_dev_remove_peer(struct lsw_device *d, struct lsw_peer *p)
{
	struct lsw_peer **pp;

	for (pp = &d->peers; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	d->npeers--;
	clear_keys(d, p);
	lsw_aip_remove_peer(&d->aip, p);
	purge_staged(p);
	p->dead = true;
	p->next = NULL;
	peer_put(p);
}

void lsw_dev_set_psk(struct lsw_device *d, struct lsw_peer *p, const uint8_t psk[LSW_KEY_LEN])
{
	if (psk)
		memcpy(p->hs.psk, psk, 32);
	else
		sodium_memzero(p->hs.psk, 32);
}

void lsw_dev_set_keepalive(struct lsw_device *d, struct lsw_peer *p, uint16_t secs)
{
	bool was_off = !p->persistent_keepalive;

	p->persistent_keepalive = secs;
	if (!secs)
		p->t_persistent = 0;
	else if (was_off && p->endpoint.len)
		/* Turning it on sends one at once, as the kernel does. */
		send_keepalive_locked(d, p, lsw_dev_now(d));
}
