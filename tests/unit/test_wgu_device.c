// SPDX-License-Identifier: MIT
/* userspace/wgu: two devices wired together in memory. Handshakes, data both
 * ways, replay, wrong keys, preshared keys, cookies under load, every timer of
 * the whitepaper (by moving the devices' clocks), roaming, and malformed input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keys.h"
#include "userspace/wgu/device.h"

#define MAXQ 512

struct dgram {
	size_t len;
	uint8_t buf[LSW_HEADROOM + 2048];
};

struct node {
	struct lsw_device dev;
	struct lsw_endpoint ep; /* our source address as the other side sees it */
	struct node *other;
	struct dgram *q[MAXQ]; /* datagrams in flight to other */
	int nq;
	int delivered; /* inner packets written to our "TUN" */
	size_t last_len;
	uint8_t last[2048];
	int sent_by_type[5];
	bool drop_all; /* the wire loses everything we send */
};

static int udp_send(void *ctx, const struct lsw_endpoint *ep, const struct iovec *iov, int n, size_t gso)
{
	struct node *me = ctx;

	for (int i = 0; i < n; i++) {
		const uint8_t *b = iov[i].iov_base;

		if (gso)
			assert_true(iov[i].iov_len == gso || (i == n - 1 && iov[i].iov_len < gso));
		if (b[0] < 5)
			me->sent_by_type[b[0]]++;
		if (me->drop_all || me->nq == MAXQ)
			continue;
		me->q[me->nq] = malloc(sizeof(struct dgram));
		me->q[me->nq]->len = iov[i].iov_len;
		memcpy(me->q[me->nq]->buf + LSW_HEADROOM, b, iov[i].iov_len);
		me->nq++;
	}
	return 0;
}

static int tun_write(void *ctx, uint8_t *pkt, size_t len)
{
	struct node *me = ctx;

	me->delivered++;
	me->last_len = len;
	memcpy(me->last, pkt, len);
	return 0;
}

static const struct lsw_device_ops ops = { .udp_send = udp_send, .tun_write = tun_write };

static struct node na, nb;
static uint8_t priv_a[32], pub_a[32], priv_b[32], pub_b[32];

static void set_ep(struct node *n, const char *ip, uint16_t port)
{
	memset(&n->ep, 0, sizeof(n->ep));
	n->ep.in4.sin_family = AF_INET;
	n->ep.in4.sin_port = htons(port);
	inet_pton(AF_INET, ip, &n->ep.in4.sin_addr);
	n->ep.len = sizeof(struct sockaddr_in);
}

static void add_aip(struct lsw_device *d, struct lsw_peer *p, const char *ip, unsigned int cidr)
{
	uint8_t a[4];

	inet_pton(AF_INET, ip, a);
	assert_int_equal(lsw_aip_insert(&d->aip, AF_INET, a, cidr, p), 0);
}

/* a = 10.9.0.1 and b = 10.9.0.2 on the tunnel; each knows the other's endpoint
 * unless told otherwise. */
static void setup_pair(bool a_knows_b, bool b_knows_a)
{
	struct lsw_peer *p;

	memset(&na, 0, sizeof(na));
	memset(&nb, 0, sizeof(nb));
	lsw_dev_init(&na.dev, &ops, &na);
	lsw_dev_init(&nb.dev, &ops, &nb);
	na.other = &nb;
	nb.other = &na;
	set_ep(&na, "192.0.2.1", 1001);
	set_ep(&nb, "192.0.2.2", 1002);
	ls_wg_genkey(priv_a);
	ls_wg_genkey(priv_b);
	ls_wg_pubkey(pub_a, priv_a);
	ls_wg_pubkey(pub_b, priv_b);
	assert_int_equal(lsw_dev_set_private_key(&na.dev, priv_a), 0);
	assert_int_equal(lsw_dev_set_private_key(&nb.dev, priv_b), 0);

	p = lsw_dev_add_peer(&na.dev, pub_b);
	add_aip(&na.dev, p, "10.9.0.2", 32);
	if (a_knows_b)
		p->endpoint = nb.ep;
	p = lsw_dev_add_peer(&nb.dev, pub_a);
	add_aip(&nb.dev, p, "10.9.0.1", 32);
	if (b_knows_a)
		p->endpoint = na.ep;
}

static void teardown_pair(void)
{
	for (int i = 0; i < na.nq; i++)
		free(na.q[i]);
	for (int i = 0; i < nb.nq; i++)
		free(nb.q[i]);
	na.nq = nb.nq = 0;
	lsw_dev_destroy(&na.dev);
	lsw_dev_destroy(&nb.dev);
}

/* Delivers everything in flight, both ways, until the wire is quiet. */
static void pump(void)
{
	for (int round = 0; round < 20 && (na.nq || nb.nq); round++) {
		struct node *from[2] = { &na, &nb };

		for (int k = 0; k < 2; k++) {
			struct node *s = from[k];
			int n = s->nq;
			struct dgram *q[MAXQ];

			memcpy(q, s->q, sizeof(q[0]) * (size_t)n);
			s->nq = 0;
			for (int i = 0; i < n; i++) {
				lsw_dev_rx(&s->other->dev, q[i]->buf + LSW_HEADROOM, q[i]->len, &s->ep);
				free(q[i]);
			}
		}
	}
}

struct pktbuf {
	uint8_t buf[LSW_HEADROOM + 1500 + LSW_TAILROOM];
};

/* An IPv4/UDP packet of len bytes from src to dst, payload filled with tag. */
static struct lsw_pkt make_pkt(struct pktbuf *b, const char *src, const char *dst, size_t len, uint8_t tag)
{
	uint8_t *p = b->buf + LSW_HEADROOM;

	memset(p, tag, len);
	p[0] = 0x45;
	p[1] = 0;
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	p[9] = 17;
	inet_pton(AF_INET, src, p + 12);
	inet_pton(AF_INET, dst, p + 16);
	return (struct lsw_pkt){ .data = p, .len = len };
}

static void send_a_to_b(size_t len, uint8_t tag)
{
	struct pktbuf b;
	struct lsw_pkt pk = make_pkt(&b, "10.9.0.1", "10.9.0.2", len, tag);

	lsw_dev_tx(&na.dev, &pk, 1);
}

static void send_b_to_a(size_t len, uint8_t tag)
{
	struct pktbuf b;
	struct lsw_pkt pk = make_pkt(&b, "10.9.0.2", "10.9.0.1", len, tag);

	lsw_dev_tx(&nb.dev, &pk, 1);
}

static void advance(uint64_t ms)
{
	na.dev.time_offset_ms += ms;
	nb.dev.time_offset_ms += ms;
	lsw_dev_timers(&na.dev);
	lsw_dev_timers(&nb.dev);
}

/* Moves time forward in 100 ms steps, delivering what is sent on the way. */
static void run_for(uint64_t ms)
{
	for (uint64_t t = 0; t < ms; t += 100) {
		advance(100);
		pump();
	}
}

static struct lsw_peer *peer_of(struct node *n)
{
	return n->dev.peers;
}

static void test_timer_defaults_are_the_whitepapers(void **state)
{
	struct lsw_timer_cfg c;

	lsw_timer_cfg_default(&c);
	assert_int_equal(c.rekey_after_time_ms, 120000);
	assert_int_equal(c.reject_after_time_ms, 180000);
	assert_int_equal(c.rekey_attempt_time_ms, 90000);
	assert_int_equal(c.rekey_timeout_ms, 5000);
	assert_int_equal(c.keepalive_timeout_ms, 10000);
	assert_true(c.rekey_after_messages == (1ULL << 60));
	assert_true(c.reject_after_messages == UINT64_MAX - (1ULL << 13));
}

static void test_handshake_and_data(void **state)
{
	setup_pair(true, false);
	/* The first packet waits for the handshake, then arrives. */
	send_a_to_b(100, 0xab);
	assert_int_equal(na.sent_by_type[LSW_MSG_INITIATION], 1);
	pump();
	assert_int_equal(nb.sent_by_type[LSW_MSG_RESPONSE], 1);
	assert_int_equal(nb.delivered, 1);
	assert_int_equal(nb.last_len, 100);
	assert_int_equal(nb.last[50], 0xab);
	/* b learned a's endpoint from the handshake and can answer. */
	assert_int_equal(peer_of(&nb)->endpoint.len, sizeof(struct sockaddr_in));
	send_b_to_a(1400, 0xcd);
	pump();
	assert_int_equal(na.delivered, 1);
	assert_int_equal(na.last_len, 1400);
	assert_int_equal(na.last[1399], 0xcd);
	/* b's session was confirmed by a's data: current, not next. */
	assert_non_null(peer_of(&nb)->kp_cur);
	assert_null(peer_of(&nb)->kp_next);
	assert_true(peer_of(&na)->last_handshake.tv_sec > 0);
	assert_true(peer_of(&na)->tx_bytes > 0 && peer_of(&na)->rx_bytes > 0);
	/* Padding: a 100-byte packet travels as a 112-byte plaintext. */
	assert_int_equal(nb.dev.stats.rx_drop_decrypt, 0);
	teardown_pair();
}

static void test_replay_rejected(void **state)
{
	struct dgram copy;

	setup_pair(true, true);
	send_a_to_b(60, 1);
	pump();
	assert_int_equal(nb.delivered, 1);
	send_a_to_b(60, 2);
	assert_int_equal(na.nq, 1);
	memcpy(&copy, na.q[0], sizeof(copy));
	pump();
	assert_int_equal(nb.delivered, 2);
	lsw_dev_rx(&nb.dev, copy.buf + LSW_HEADROOM, copy.len, &na.ep);
	assert_int_equal(nb.delivered, 2);
	assert_int_equal(nb.dev.stats.rx_drop_replay, 1);
	teardown_pair();
}

static void test_tampered_data_dropped(void **state)
{
	setup_pair(true, true);
	send_a_to_b(60, 1);
	pump();
	send_a_to_b(60, 2);
	na.q[0]->buf[LSW_HEADROOM + 20] ^= 1;
	pump();
	assert_int_equal(nb.delivered, 1);
	assert_int_equal(nb.dev.stats.rx_drop_decrypt, 1);
	teardown_pair();
}

static void test_wrong_public_key_never_completes(void **state)
{
	uint8_t wrong[32], wpriv[32];

	setup_pair(true, true);
	/* a believes b has another key. */
	ls_wg_genkey(wpriv);
	ls_wg_pubkey(wrong, wpriv);
	lsw_dev_remove_peer(&na.dev, peer_of(&na));
	struct lsw_peer *p = lsw_dev_add_peer(&na.dev, wrong);
	add_aip(&na.dev, p, "10.9.0.2", 32);
	p->endpoint = nb.ep;
	for (int i = 0; i < 5; i++) {
		send_a_to_b(60, 1);
		pump();
		advance(5400);
		pump();
	}
	assert_int_equal(nb.sent_by_type[LSW_MSG_RESPONSE], 0);
	assert_true(nb.dev.stats.rx_drop_mac >= 5);
	assert_int_equal(nb.delivered, 0);
	assert_null(peer_of(&na)->kp_cur);
	teardown_pair();
}

static void test_unknown_initiator_dropped(void **state)
{
	setup_pair(true, true);
	/* b does not know a (a's key is right about b, so MAC1 is valid). */
	lsw_dev_remove_peer(&nb.dev, peer_of(&nb));
	send_a_to_b(60, 1);
	pump();
	assert_int_equal(nb.dev.stats.rx_drop_unknown_peer, 1);
	assert_int_equal(nb.sent_by_type[LSW_MSG_RESPONSE], 0);
	teardown_pair();
}

static void test_preshared_key(void **state)
{
	uint8_t psk[32], other[32];

	randombytes_buf(psk, 32);
	randombytes_buf(other, 32);
	setup_pair(true, true);
	lsw_dev_set_psk(&na.dev, peer_of(&na), psk);
	lsw_dev_set_psk(&nb.dev, peer_of(&nb), psk);
	send_a_to_b(60, 1);
	pump();
	assert_int_equal(nb.delivered, 1);
	teardown_pair();

	/* Different PSKs: b answers (it cannot tell), a cannot open the answer. */
	setup_pair(true, true);
	lsw_dev_set_psk(&na.dev, peer_of(&na), psk);
	lsw_dev_set_psk(&nb.dev, peer_of(&nb), other);
	send_a_to_b(60, 1);
	pump();
	assert_int_equal(nb.sent_by_type[LSW_MSG_RESPONSE], 1);
	assert_int_equal(na.dev.stats.rx_drop_handshake, 1);
	assert_null(peer_of(&na)->kp_cur);
	assert_int_equal(nb.delivered, 0);
	teardown_pair();
}

static void test_initiation_replay_rejected(void **state)
{
	struct dgram copy;

	setup_pair(true, true);
	send_a_to_b(60, 1);
	memcpy(&copy, na.q[0], sizeof(copy));
	pump();
	assert_int_equal(nb.sent_by_type[LSW_MSG_RESPONSE], 1);
	/* The same initiation again (an old TAI64N timestamp) gets no answer. */
	advance(1000);
	lsw_dev_rx(&nb.dev, copy.buf + LSW_HEADROOM, copy.len, &na.ep);
	assert_int_equal(nb.sent_by_type[LSW_MSG_RESPONSE], 1);
	assert_int_equal(nb.dev.stats.rx_drop_handshake, 1);
	teardown_pair();
}

static void test_cookie_under_load(void **state)
{
	setup_pair(true, true);
	nb.dev.force_under_load = true;
	send_a_to_b(60, 1);
	pump();
	/* Under load, b answers the first initiation (no MAC2) with a cookie. */
	assert_int_equal(nb.sent_by_type[LSW_MSG_COOKIE], 1);
	assert_int_equal(nb.sent_by_type[LSW_MSG_RESPONSE], 0);
	assert_true(peer_of(&na)->cookie.cookie_valid);
	/* The retry carries MAC2 made with the cookie and is answered. */
	advance(5400);
	pump();
	assert_int_equal(nb.sent_by_type[LSW_MSG_RESPONSE], 1);
	assert_int_equal(nb.delivered, 1);
	/* A cookie for another source address does not help: mac2 is bound to it. */
	teardown_pair();
}

static void test_rekey_after_time(void **state)
{
	struct lsw_keypair *first;

	setup_pair(true, true);
	send_a_to_b(60, 1);
	pump();
	first = peer_of(&na)->kp_cur;
	assert_non_null(first);
	uint64_t serial = first->serial;
	/* Before REKEY_AFTER_TIME: no new handshake. */
	run_for(119000);
	send_a_to_b(60, 2);
	pump();
	assert_int_equal(na.sent_by_type[LSW_MSG_INITIATION], 1);
	/* After it, the next packet sent triggers one, and the data still flows. */
	run_for(2000);
	send_a_to_b(60, 3);
	assert_int_equal(na.sent_by_type[LSW_MSG_INITIATION], 2);
	pump();
	assert_true(peer_of(&na)->kp_cur->serial != serial);
	assert_non_null(peer_of(&na)->kp_prev);
	assert_int_equal(nb.delivered, 3);
	send_a_to_b(60, 4);
	pump();
	assert_int_equal(nb.delivered, 4);
	teardown_pair();
}

static void test_rekey_and_reject_after_messages(void **state)
{
	setup_pair(true, true);
	send_a_to_b(60, 1);
	pump();
	/* A smaller REKEY_AFTER_MESSAGES stands in for 2^60: the first packet
	 * past it starts a new handshake while the old session still carries. */
	run_for(6000); /* initiations are at most one per REKEY_TIMEOUT */
	na.dev.cfg.rekey_after_messages = 10;
	int sent = 1;
	while (peer_of(&na)->kp_cur->send_counter < 10) {
		send_a_to_b(60, 2);
		sent++;
	}
	assert_int_equal(na.sent_by_type[LSW_MSG_INITIATION], 1);
	send_a_to_b(60, 3); /* the counter passes REKEY_AFTER_MESSAGES */
	sent++;
	assert_int_equal(na.sent_by_type[LSW_MSG_INITIATION], 2);
	pump();
	assert_int_equal(nb.delivered, sent);
	na.dev.cfg.rekey_after_messages = LSW_REKEY_AFTER_MESSAGES;
	/* A session at REJECT_AFTER_MESSAGES sends nothing more: packets wait for
	 * a new one. */
	run_for(6000);
	peer_of(&na)->kp_cur->send_counter = LSW_REJECT_AFTER_MESSAGES;
	int data_before = na.sent_by_type[LSW_MSG_DATA];
	send_a_to_b(60, 4);
	assert_int_equal(na.sent_by_type[LSW_MSG_DATA], data_before);
	assert_int_equal(peer_of(&na)->nstaged, 1);
	assert_int_equal(na.sent_by_type[LSW_MSG_INITIATION], 3);
	pump();
	assert_int_equal(nb.delivered, sent + 1);
	teardown_pair();
}

static void test_reject_after_time(void **state)
{
	setup_pair(true, true);
	send_a_to_b(60, 1);
	pump();
	/* b only receives; after REJECT_AFTER_TIME its keypair is useless, so its
	 * next packet waits for a fresh handshake (b initiates). */
	run_for(179000);
	assert_int_equal(nb.sent_by_type[LSW_MSG_INITIATION], 0);
	int before_data = nb.sent_by_type[LSW_MSG_DATA];
	run_for(2000);
	int before = nb.sent_by_type[LSW_MSG_INITIATION];
	send_b_to_a(60, 5);
	assert_int_equal(nb.sent_by_type[LSW_MSG_INITIATION], before + 1);
	assert_int_equal(nb.sent_by_type[LSW_MSG_DATA], before_data);
	pump();
	assert_int_equal(na.delivered, 1);
	teardown_pair();
}

static void test_retransmit_and_give_up(void **state)
{
	setup_pair(true, true);
	nb.dev.id.has_key = false; /* b never answers */
	send_a_to_b(60, 1);
	pump();
	assert_int_equal(na.sent_by_type[LSW_MSG_INITIATION], 1);
	/* Every REKEY_TIMEOUT (5 s, plus up to 333 ms of jitter) a retry... */
	advance(4900);
	assert_int_equal(na.sent_by_type[LSW_MSG_INITIATION], 1);
	advance(500);
	assert_int_equal(na.sent_by_type[LSW_MSG_INITIATION], 2);
	pump();
	/* ...until REKEY_ATTEMPT_TIME (90 s): 18 retries, then it gives up. */
	for (int i = 0; i < 40; i++) {
		advance(1000);
		pump();
	}
	for (int i = 0; i < 80; i++) {
		advance(1000);
		pump();
	}
	assert_int_equal(na.sent_by_type[LSW_MSG_INITIATION], 1 + 18 + 1);
	assert_int_equal(peer_of(&na)->nstaged, 0);
	assert_true(peer_of(&na)->t_zero_keys > 0);
	teardown_pair();
}

static void test_zero_keys_after_540s(void **state)
{
	setup_pair(true, true);
	send_a_to_b(60, 1);
	pump();
	assert_non_null(peer_of(&na)->kp_cur);
	na.drop_all = nb.drop_all = true;
	advance(539000);
	assert_non_null(peer_of(&na)->kp_cur);
	for (int i = 0; i < 3; i++)
		advance(1000);
	assert_null(peer_of(&na)->kp_cur);
	assert_null(peer_of(&nb)->kp_cur);
	teardown_pair();
}

static void test_passive_keepalive(void **state)
{
	setup_pair(true, true);
	send_a_to_b(60, 1);
	pump();
	int before = nb.sent_by_type[LSW_MSG_DATA];
	/* b received data and sent nothing: after KEEPALIVE_TIMEOUT it sends a keepalive. */
	advance(9000);
	assert_int_equal(nb.sent_by_type[LSW_MSG_DATA], before);
	advance(1100);
	assert_int_equal(nb.sent_by_type[LSW_MSG_DATA], before + 1);
	pump();
	assert_true(na.dev.stats.rx_keepalives >= 1);
	teardown_pair();
}

static void test_new_handshake_when_unanswered(void **state)
{
	setup_pair(true, true);
	send_a_to_b(60, 1);
	pump();
	int before = na.sent_by_type[LSW_MSG_INITIATION];
	/* a sends data and hears nothing for KEEPALIVE + REKEY_TIMEOUT: new handshake. */
	nb.drop_all = true;
	na.drop_all = true;
	send_a_to_b(60, 2);
	advance(14000);
	assert_int_equal(na.sent_by_type[LSW_MSG_INITIATION], before);
	advance(1500);
	assert_int_equal(na.sent_by_type[LSW_MSG_INITIATION], before + 1);
	teardown_pair();
}

static void test_persistent_keepalive(void **state)
{
	setup_pair(true, true);
	send_a_to_b(60, 1);
	pump();
	pthread_mutex_lock(&nb.dev.lock);
	lsw_dev_set_keepalive(&nb.dev, peer_of(&nb), 25);
	pthread_mutex_unlock(&nb.dev.lock);
	pump();
	int before = nb.sent_by_type[LSW_MSG_DATA];
	run_for(100050);
	/* 100 s at one every 25 s. */
	assert_int_equal(nb.sent_by_type[LSW_MSG_DATA] - before, 4);
	teardown_pair();
}

static void test_roaming(void **state)
{
	setup_pair(true, true);
	send_a_to_b(60, 1);
	pump();
	/* a moves: its next authenticated packet updates b's endpoint. */
	set_ep(&na, "198.51.100.7", 4444);
	send_a_to_b(60, 2);
	pump();
	assert_int_equal(peer_of(&nb)->endpoint.in4.sin_port, htons(4444));
	assert_int_equal(nb.delivered, 2);
	/* A forged packet from elsewhere does not move the endpoint. */
	struct lsw_endpoint evil = na.ep;

	evil.in4.sin_port = htons(6666);
	uint8_t junk[LSW_HEADROOM + 64] = { 0 };
	junk[LSW_HEADROOM] = 4;
	memcpy(junk + LSW_HEADROOM + 4, &peer_of(&nb)->kp_cur->entry.idx, 4);
	lsw_dev_rx(&nb.dev, junk + LSW_HEADROOM, 64, &evil);
	assert_int_equal(peer_of(&nb)->endpoint.in4.sin_port, htons(4444));
	teardown_pair();
}

static void test_inner_source_must_match_allowedips(void **state)
{
	struct pktbuf b;
	struct lsw_pkt pk;

	setup_pair(true, true);
	send_a_to_b(60, 1);
	pump();
	/* a sends a packet claiming to come from 10.9.0.99, which b does not allow. */
	pk = make_pkt(&b, "10.9.0.99", "10.9.0.2", 60, 7);
	lsw_dev_tx(&na.dev, &pk, 1);
	pump();
	assert_int_equal(nb.delivered, 1);
	assert_int_equal(nb.dev.stats.rx_drop_allowedips, 1);
	/* A destination with no peer is dropped at the sender. */
	pk = make_pkt(&b, "10.9.0.1", "10.77.0.1", 60, 7);
	lsw_dev_tx(&na.dev, &pk, 1);
	assert_int_equal(na.dev.stats.tx_drop_no_peer, 1);
	teardown_pair();
}

/* Every message type truncated by one byte, extended by one byte, or with a
 * nonzero reserved byte is dropped and counted, not processed. */
static void test_malformed_lengths(void **state)
{
	static const size_t lens[] = { 148, 92, 64 };
	uint8_t buf[LSW_HEADROOM + 4096];
	uint64_t before;

	setup_pair(true, true);
	send_a_to_b(60, 1);
	pump();
	for (int t = 1; t <= 3; t++) {
		size_t l = lens[t - 1];

		for (int delta = -1; delta <= 1; delta += 2) {
			memset(buf, 0, sizeof(buf));
			buf[LSW_HEADROOM] = (uint8_t)t;
			before = nb.dev.stats.rx_drop_short;
			lsw_dev_rx(&nb.dev, buf + LSW_HEADROOM, l + (size_t)delta, &na.ep);
			assert_int_equal(nb.dev.stats.rx_drop_short, before + 1);
		}
	}
	/* Data shorter than a keepalive. */
	buf[LSW_HEADROOM] = 4;
	before = nb.dev.stats.rx_drop_short;
	lsw_dev_rx(&nb.dev, buf + LSW_HEADROOM, 31, &na.ep);
	assert_int_equal(nb.dev.stats.rx_drop_short, before + 1);
	/* Unknown type, reserved bytes set, empty, tiny. */
	buf[LSW_HEADROOM] = 9;
	lsw_dev_rx(&nb.dev, buf + LSW_HEADROOM, 100, &na.ep);
	buf[LSW_HEADROOM] = 1;
	buf[LSW_HEADROOM + 1] = 1;
	lsw_dev_rx(&nb.dev, buf + LSW_HEADROOM, 148, &na.ep);
	assert_int_equal(nb.dev.stats.rx_drop_type, 2);
	lsw_dev_rx(&nb.dev, buf + LSW_HEADROOM, 0, &na.ep);
	lsw_dev_rx(&nb.dev, buf + LSW_HEADROOM, 3, &na.ep);
	/* Random garbage of every length up to 4 KiB never crashes or delivers. */
	for (size_t l = 0; l < 4096; l += 7) {
		randombytes_buf(buf + LSW_HEADROOM, l);
		if (l)
			buf[LSW_HEADROOM] = (uint8_t)(1 + l % 4);
		lsw_dev_rx(&nb.dev, buf + LSW_HEADROOM, l, &na.ep);
	}
	assert_int_equal(nb.delivered, 1);
	/* A valid data message whose inner packet claims more bytes than it has. */
	struct pktbuf pb;
	struct lsw_pkt pk = make_pkt(&pb, "10.9.0.1", "10.9.0.2", 60, 3);
	pk.data[2] = 0x05; /* total length 1280+ */
	lsw_dev_tx(&na.dev, &pk, 1);
	pump();
	assert_int_equal(nb.dev.stats.rx_drop_inner, 1);
	assert_int_equal(nb.delivered, 1);
	teardown_pair();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timer_defaults_are_the_whitepapers),
		cmocka_unit_test(test_handshake_and_data),
		cmocka_unit_test(test_replay_rejected),
		cmocka_unit_test(test_tampered_data_dropped),
		cmocka_unit_test(test_wrong_public_key_never_completes),
		cmocka_unit_test(test_unknown_initiator_dropped),
		cmocka_unit_test(test_preshared_key),
		cmocka_unit_test(test_initiation_replay_rejected),
		cmocka_unit_test(test_cookie_under_load),
		cmocka_unit_test(test_rekey_after_time),
		cmocka_unit_test(test_rekey_and_reject_after_messages),
		cmocka_unit_test(test_reject_after_time),
		cmocka_unit_test(test_retransmit_and_give_up),
		cmocka_unit_test(test_zero_keys_after_540s),
		cmocka_unit_test(test_passive_keepalive),
		cmocka_unit_test(test_new_handshake_when_unanswered),
		cmocka_unit_test(test_persistent_keepalive),
		cmocka_unit_test(test_roaming),
		cmocka_unit_test(test_inner_source_must_match_allowedips),
		cmocka_unit_test(test_malformed_lengths),
	};

	ls_crypto_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
