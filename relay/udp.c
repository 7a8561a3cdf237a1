// SPDX-License-Identifier: MIT
/* STUN answers and the UDP relay: registrations, forwarding, expiry. */
#include "relay.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "log.h"
#include "prefix.h"
#include "relayclient.h"
#include "stun.h"
#include "util.h"

static void count(struct lsr_server *s, enum lsr_counter c, uint64_t n)
{
	s->counters[c] += n;
}

int lsr_udp_send(struct lsr_server *s, int fd, const struct iovec *iov, int iovcnt,
		 const struct sockaddr *dst, socklen_t dstlen, const struct lsr_pktinfo *pi)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
		struct cmsghdr align;
	} ctl;
	struct msghdr msg = {
		.msg_name = (void *)dst, .msg_namelen = dstlen, .msg_iov = (struct iovec *)iov,
		.msg_iovlen = iovcnt,
	};
	struct cmsghdr *cm;

	memset(&ctl, 0, sizeof(ctl));
	if (pi && pi->family == AF_INET) {
		struct in_pktinfo ip = { .ipi_spec_dst = pi->dst.v4 };

		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(ip));
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = IPPROTO_IP;
		cm->cmsg_type = IP_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(ip));
		memcpy(CMSG_DATA(cm), &ip, sizeof(ip));
	} else if (pi && pi->family == AF_INET6) {
		struct in6_pktinfo ip6 = { .ipi6_addr = pi->dst.v6 };

		/* A link-local source only makes sense on the interface it came in on. */
		if (IN6_IS_ADDR_LINKLOCAL(&pi->dst.v6))
			ip6.ipi6_ifindex = pi->ifindex;
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(ip6));
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = IPPROTO_IPV6;
		cm->cmsg_type = IPV6_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(ip6));
		memcpy(CMSG_DATA(cm), &ip6, sizeof(ip6));
	}
	if (sendmsg(fd, &msg, MSG_DONTWAIT) < 0) {
		count(s, LSR_C_UDP_SEND_ERRORS, 1);
		return -errno;
	}
	return 0;
}

static int send_buf(struct lsr_server *s, int fd, const void *buf, size_t len,
		    const struct sockaddr *dst, socklen_t dstlen, const struct lsr_pktinfo *pi)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return lsr_udp_send(s, fd, &iov, 1, dst, dstlen, pi);
}

static void handle_stun(struct lsr_server *s, struct lsr_listener *l, const uint8_t *buf, size_t len,
			const struct sockaddr *src, socklen_t srclen, const struct lsr_pktinfo *pi)
{
	uint8_t txid[LS_STUN_TXID_LEN], out[128];
	int r, n;

	r = ls_stun_parse_request(buf, len, txid);
	if (r == -EOPNOTSUPP) {
		count(s, LSR_C_STUN_IGNORED, 1);
		return;
	}
	if (r) {
		count(s, LSR_C_STUN_MALFORMED, 1);
		return;
	}
	n = ls_stun_build_response(out, sizeof(out), txid, src);
	if (n < 0) {
		count(s, LSR_C_STUN_MALFORMED, 1);
		return;
	}
	count(s, LSR_C_STUN_REQUESTS, 1);
	send_buf(s, l->io.fd, out, n, src, srclen, pi);
}

struct lsr_udp_reg *lsr_udp_find(const struct lsr_server *s, const uint8_t key[LSR_KEY_LEN])
{
	struct lsr_hnode *n = lsr_table_find(&s->udp_by_key, key);

	return n ? lsr_container_of(n, struct lsr_udp_reg, by_key) : NULL;
}

static struct lsr_udp_reg *find_by_addr(const struct lsr_server *s, const struct lsr_addr *a)
{
	struct lsr_hnode *n = lsr_table_find(&s->udp_by_addr, (const uint8_t *)a);

	return n ? lsr_container_of(n, struct lsr_udp_reg, by_addr) : NULL;
}

void lsr_udp_reg_free(struct lsr_server *s, struct lsr_udp_reg *r)
{
	lsr_table_remove(&s->udp_by_key, &r->by_key);
	lsr_table_remove(&s->udp_by_addr, &r->by_addr);
	free(r);
}

static void reply_rejected(struct lsr_server *s, struct lsr_listener *l, const struct ls_relay_udp_msg *m,
			   uint32_t reason, const struct sockaddr *src, socklen_t srclen,
			   const struct lsr_pktinfo *pi)
{
	struct lsr_udp_rejected rj;
	char ep[LS_ENDPOINT_STRLEN];

	count(s, LSR_C_UDP_REJECTED, 1);
	if (ls_log_level >= LS_LOG_DEBUG) {
		ls_endpoint_format(src, ep);
		pr_debug("udp: registration from %s refused: %s", ep, ls_relay_reason_str(reason));
	}
	ls_relay_udp_hdr(&rj.hdr, LSR_UDP_REJECTED, m->key);
	rj.ts_ms = htobe64(m->ts_ms);
	rj.reason = htobe32(reason);
	send_buf(s, l->io.fd, &rj, sizeof(rj), src, srclen, pi);
}

static void handle_register(struct lsr_server *s, struct lsr_listener *l, const struct ls_relay_udp_msg *m,
			    const struct sockaddr *src, socklen_t srclen, const struct lsr_pktinfo *pi)
{
	uint64_t now = ls_relay_now_unix_ms(), skew = (uint64_t)s->cfg.clock_skew_s * 1000;
	struct lsr_udp_reg *r, *other;
	struct lsr_udp_registered ok;
	struct lsr_addr a;
	uint32_t reason;
	bool fresh = false;

	if (m->ts_ms + skew < now || m->ts_ms > now + skew) {
		reply_rejected(s, l, m, LSR_REASON_STALE, src, srclen, pi);
		return;
	}
	/* Dropped without an answer: a flood gets nothing back. */
	if (!lsr_ratelimit_allow(&s->proofs, src, ls_now_ms())) {
		count(s, LSR_C_UDP_RATE_LIMITED, 1);
		return;
	}
	reason = lsr_auth_check(&s->auth, m->proof, LSR_PURPOSE_UDP, m->key, NULL);
	if (!reason && lsr_key_held_by_other(s, m->key, m->proof->ed_pk))
		reason = LSR_REASON_DENIED;
	if (reason) {
		reply_rejected(s, l, m, reason, src, srclen, pi);
		return;
	}
	ls_relay_addr_from_sockaddr(&a, src);
	r = lsr_udp_find(s, m->key);
	if (r && (m->ts_ms < r->last_ts ||
		  (m->ts_ms == r->last_ts && memcmp(&a, &r->addr, sizeof(a))))) {
		/* An old proof, or the same proof from elsewhere: a replay. A resend of
		 * the newest one from the same address is answered again. */
		reply_rejected(s, l, m, LSR_REASON_REPLAY, src, srclen, pi);
		return;
	}
	other = find_by_addr(s, &a);
	if (!r) {
		/* A key taking over an address frees that address's slot. */
		if (s->udp_by_key.count - (other ? 1 : 0) >= s->cfg.max_udp) {
			reply_rejected(s, l, m, LSR_REASON_FULL, src, srclen, pi);
			return;
		}
		r = calloc(1, sizeof(*r));
		if (!r)
			return;
		memcpy(r->key, m->key, LSR_KEY_LEN);
		r->by_key.key = r->key;
		r->by_addr.key = (const uint8_t *)&r->addr;
		lsr_table_insert(&s->udp_by_key, &r->by_key);
		fresh = true;
	}
	if (fresh || memcmp(&a, &r->addr, sizeof(a))) {
		if (!fresh)
			lsr_table_remove(&s->udp_by_addr, &r->by_addr);
		/* One key per address: a new key from the same address takes it over. */
		other = find_by_addr(s, &a);
		if (other && other != r)
			lsr_udp_reg_free(s, other);
		r->addr = a;
		lsr_table_insert(&s->udp_by_addr, &r->by_addr);
	}
	memcpy(&r->sa, src, srclen);
	r->salen = srclen;
	r->sock = l;
	memcpy(r->ed_pk, m->proof->ed_pk, LSR_ED_PK_LEN);
	if (pi)
		r->local = *pi;
	else
		memset(&r->local, 0, sizeof(r->local));
	r->last_ts = m->ts_ms;
	r->expires_ms = ls_now_ms() + (uint64_t)s->cfg.udp_lifetime_s * 1000;
	count(s, LSR_C_UDP_REGISTERED, 1);

	ls_relay_udp_hdr(&ok.hdr, LSR_UDP_REGISTERED, m->key);
	ok.ts_ms = htobe64(m->ts_ms);
	ok.lifetime_s = htobe32(s->cfg.udp_lifetime_s);
	ok.reserved = 0;
	ok.observed = a;
	send_buf(s, l->io.fd, &ok, sizeof(ok), src, srclen, pi);
}

int lsr_udp_deliver(struct lsr_server *s, struct lsr_udp_reg *dst, const uint8_t src_key[LSR_KEY_LEN],
		    const uint8_t *payload, size_t len)
{
	struct lsr_udp_hdr h;
	struct iovec iov[2] = {
		{ .iov_base = &h, .iov_len = sizeof(h) },
		{ .iov_base = (void *)payload, .iov_len = len },
	};
	int r;

	ls_relay_udp_hdr(&h, LSR_UDP_DATA, src_key);
	r = lsr_udp_send(s, dst->sock->io.fd, iov, 2, (struct sockaddr *)&dst->sa, dst->salen, &dst->local);
	if (r)
		return r;
	dst->tx_pkts++;
	count(s, LSR_C_UDP_FWD_PKTS, 1);
	count(s, LSR_C_UDP_FWD_BYTES, len);
	return 0;
}

static void handle_data(struct lsr_server *s, uint8_t *buf, size_t len, const struct ls_relay_udp_msg *m,
			const struct sockaddr *src)
{
	struct lsr_udp_reg *from, *to;
	struct lsr_conn *c;
	struct lsr_addr a;

	ls_relay_addr_from_sockaddr(&a, src);
	from = find_by_addr(s, &a);
	if (!from) {
		count(s, LSR_C_UDP_UNREGISTERED_SRC, 1);
		return;
	}
	from->rx_pkts++;
	to = lsr_udp_find(s, m->key);
	if (to) {
		/* Rewrite the destination key into the source key, in place. */
		struct lsr_udp_hdr *h = (struct lsr_udp_hdr *)buf;

		memcpy(h->key, from->key, LSR_KEY_LEN);
		if (send_buf(s, to->sock->io.fd, buf, len, (struct sockaddr *)&to->sa, to->salen, &to->local))
			return;
		to->tx_pkts++;
		count(s, LSR_C_UDP_FWD_PKTS, 1);
		count(s, LSR_C_UDP_FWD_BYTES, m->payload_len);
		return;
	}
	c = lsr_stream_find(s, m->key);
	if (c) {
		if (lsr_conn_queue_keyed(s, c, LSR_FRAME_RECV, from->key, m->payload, m->payload_len) == 0) {
			count(s, LSR_C_UDP_FWD_PKTS, 1);
			count(s, LSR_C_UDP_FWD_BYTES, m->payload_len);
		}
		return;
	}
	count(s, LSR_C_UDP_UNKNOWN_DST, 1);
}

void lsr_udp_datagram(struct lsr_server *s, struct lsr_listener *l, uint8_t *buf, size_t len,
		      const struct sockaddr *src, socklen_t srclen, const struct lsr_pktinfo *pi)
{
	struct ls_relay_udp_msg m;

	if (ls_stun_is_stun(buf, len)) {
		handle_stun(s, l, buf, len, src, srclen, pi);
		return;
	}
	if (l->io.kind != LSR_LISTEN_UDP) {
		count(s, LSR_C_STUN_MALFORMED, 1);
		return;
	}
	if (!ls_relay_udp_is_relay(buf, len)) {
		/* The cookie without a valid STUN frame: broken STUN; else unknown. */
		if (len >= 8 && buf[4] == 0x21 && buf[5] == 0x12 && buf[6] == 0xa4 && buf[7] == 0x42)
			count(s, LSR_C_STUN_MALFORMED, 1);
		else
			count(s, LSR_C_UDP_UNKNOWN, 1);
		return;
	}
	if (ls_relay_udp_parse(buf, len, &m)) {
		count(s, LSR_C_UDP_MALFORMED, 1);
		return;
	}
	switch (m.type) {
	case LSR_UDP_REGISTER:
		handle_register(s, l, &m, src, srclen, pi);
		break;
	case LSR_UDP_DATA:
		handle_data(s, buf, len, &m, src);
		break;
	default: /* relay-to-client types sent to the relay */
		count(s, LSR_C_UDP_MALFORMED, 1);
		break;
	}
}

static void read_pktinfo(struct msghdr *msg, struct lsr_pktinfo *pi)
{
	struct cmsghdr *cm;

	memset(pi, 0, sizeof(*pi));
	for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo ip;

			memcpy(&ip, CMSG_DATA(cm), sizeof(ip));
			pi->family = AF_INET;
			pi->ifindex = ip.ipi_ifindex;
			pi->dst.v4 = ip.ipi_addr;
		} else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo ip6;

			memcpy(&ip6, CMSG_DATA(cm), sizeof(ip6));
			pi->family = AF_INET6;
			pi->ifindex = (int)ip6.ipi6_ifindex;
			pi->dst.v6 = ip6.ipi6_addr;
		}
	}
	/* IPv4 on a dual-stack socket: the v4-mapped destination is sent with IP_PKTINFO. */
	if (pi->family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&pi->dst.v6)) {
		struct in_addr v4;

		memcpy(&v4, pi->dst.v6.s6_addr + 12, 4);
		pi->family = AF_INET;
		pi->dst.v4 = v4;
	}
}

void lsr_udp_input(struct lsr_server *s, struct lsr_listener *l)
{
	struct mmsghdr mm[LSR_UDP_BATCH];
	struct iovec iov[LSR_UDP_BATCH];
	struct sockaddr_storage src[LSR_UDP_BATCH];
	union {
		char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
		struct cmsghdr align;
	} ctl[LSR_UDP_BATCH];

	/* A bounded number of batches per wakeup keeps one busy socket from starving
	 * the others. */
	for (int round = 0; round < 4; round++) {
		int n;

		for (int i = 0; i < LSR_UDP_BATCH; i++) {
			iov[i].iov_base = s->dgram + (size_t)i * LSR_UDP_SLOT;
			iov[i].iov_len = LSR_UDP_SLOT;
			mm[i].msg_hdr = (struct msghdr){
				.msg_name = &src[i], .msg_namelen = sizeof(src[i]), .msg_iov = &iov[i],
				.msg_iovlen = 1, .msg_control = ctl[i].buf, .msg_controllen = sizeof(ctl[i].buf),
			};
			mm[i].msg_len = 0;
		}
		n = recvmmsg(l->io.fd, mm, LSR_UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++) {
			struct lsr_pktinfo pi;

			read_pktinfo(&mm[i].msg_hdr, &pi);
			lsr_udp_datagram(s, l, iov[i].iov_base, mm[i].msg_len, (struct sockaddr *)&src[i],
					 mm[i].msg_hdr.msg_namelen, &pi);
		}
		if (n < LSR_UDP_BATCH)
			return;
	}
}

struct expire_ctx {
	struct lsr_server *s;
	uint64_t now;
};

static void expire_one(struct lsr_hnode *n, void *p)
{
	struct expire_ctx *ctx = p;
	struct lsr_udp_reg *r = lsr_container_of(n, struct lsr_udp_reg, by_key);

	if (r->expires_ms <= ctx->now) {
		ctx->s->counters[LSR_C_UDP_EXPIRED]++;
		lsr_udp_reg_free(ctx->s, r);
	}
}

void lsr_udp_expire(struct lsr_server *s, uint64_t now)
{
	struct expire_ctx ctx = { .s = s, .now = now };

	lsr_table_foreach(&s->udp_by_key, expire_one, &ctx);
}
