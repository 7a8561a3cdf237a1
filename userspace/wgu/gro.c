// SPDX-License-Identifier: MIT
#include "userspace/wgu/gro.h"

#include <arpa/inet.h>
#include <string.h>

#include "lib/bytes.h"
#include "userspace/wgu/tun.h"

_Static_assert(sizeof(struct lsw_vnet_hdr) == 10, "virtio header");
_Static_assert(offsetof(struct lsw_gro, buf) == 10, "header right before the packet");

/* A TCP segment we may coalesce: returns its L3 and TCP header lengths. */
static bool candidate(const uint8_t *p, size_t len, bool *v6, size_t *l3, size_t *l4hdr)
{
	uint8_t flags;

	if (len >= 20 && (p[0] >> 4) == 4) {
		if (p[0] != 0x45 || p[9] != 6 || (ls_get_be16(p + 6) & 0x3fff) || ls_get_be16(p + 2) != len)
			return false;
		*v6 = false;
		*l3 = 20;
	} else if (len >= 40 && (p[0] >> 4) == 6) {
		if (p[6] != 6 || (size_t)ls_get_be16(p + 4) + 40 != len)
			return false;
		*v6 = true;
		*l3 = 40;
	} else {
		return false;
	}
	if (len < *l3 + 20)
		return false;
	*l4hdr = (size_t)(p[*l3 + 12] >> 4) * 4;
	if (*l4hdr < 20 || len <= *l3 + *l4hdr)
		return false; /* no payload: pure ACKs go as they are */
	flags = p[*l3 + 13];
	return flags == 0x10 || flags == 0x18; /* ACK, or ACK|PSH */
}

/* A UDP datagram we may coalesce (IPv4 without options or fragments, IPv6
 * without extension headers). */
static bool candidate_udp(const uint8_t *p, size_t len, bool *v6, size_t *l3)
{
	if (len >= 28 && (p[0] >> 4) == 4) {
		if (p[0] != 0x45 || p[9] != 17 || (ls_get_be16(p + 6) & 0x3fff) || ls_get_be16(p + 2) != len)
			return false;
		*v6 = false;
		*l3 = 20;
	} else if (len >= 48 && (p[0] >> 4) == 6) {
		if (p[6] != 17 || (size_t)ls_get_be16(p + 4) + 40 != len)
			return false;
		*v6 = true;
		*l3 = 40;
	} else {
		return false;
	}
	return ls_get_be16(p + *l3 + 4) == len - *l3 && len > *l3 + 8;
}

static int write_plain(const uint8_t *pkt, size_t len, lsw_gro_write_fn w, void *ctx, uint8_t *scratch_hdr)
{
	struct lsw_vnet_hdr vh = { .flags = LSW_VNET_F_DATA_VALID };

	memcpy(scratch_hdr, &vh, sizeof(vh));
	(void)pkt;
	return w(ctx, scratch_hdr, len + sizeof(vh));
}

int lsw_gro_flush(struct lsw_gro *g, lsw_gro_write_fn w, void *ctx)
{
	struct lsw_vnet_hdr vh = { 0 };
	uint8_t *p = g->buf;
	int ret;

	if (!g->nsegs)
		return 0;
	if (g->nsegs == 1) {
		ret = write_plain(p, g->len, w, ctx, g->vnet);
		g->nsegs = 0;
		return ret;
	}
	size_t l4len = g->len - g->l3;
	uint32_t sum;

	if (!g->v6) {
		ls_put_be16(p + 2, (uint16_t)g->len);
		ls_put_be16(p + 10, 0);
		ls_put_be16(p + 10, lsw_csum(p, 20, 0));
		/* Pseudo-header sum, not complemented: the checksum is "partial". */
		sum = (uint32_t)ls_get_be16(p + 12) + ls_get_be16(p + 14) + ls_get_be16(p + 16) + ls_get_be16(p + 18) + 6 + (uint32_t)l4len;
	} else {
		ls_put_be16(p + 4, (uint16_t)(g->len - 40));
		sum = 6 + (uint32_t)l4len;
		for (int i = 8; i < 40; i += 2)
			sum += ls_get_be16(p + i);
	}
	if (g->udp) {
		/* The UDP length covers the whole super-packet; the kernel sets
		 * each segment's when it splits it. */
		sum += 17 - 6;
		ls_put_be16(p + g->l3 + 4, (uint16_t)l4len);
	}
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	ls_put_be16(p + g->l3 + (g->udp ? 6 : 16), (uint16_t)sum);
	vh.flags = LSW_VNET_F_NEEDS_CSUM;
	if (g->udp)
		vh.gso_type = LSW_VNET_GSO_UDP_L4;
	else
		vh.gso_type = g->v6 ? LSW_VNET_GSO_TCPV6 : LSW_VNET_GSO_TCPV4;
	vh.hdr_len = (uint16_t)(g->l3 + g->l4hdr);
	vh.gso_size = (uint16_t)g->seg;
	vh.csum_start = (uint16_t)g->l3;
	vh.csum_offset = g->udp ? 6 : 16;
	memcpy(g->vnet, &vh, sizeof(vh));
	g->nsegs = 0;
	return w(ctx, g->vnet, g->len + sizeof(vh));
}

/* The IP fields a merged packet must share (addresses, TOS/class, TTL, DF). */
static bool same_ip(const uint8_t *p, const uint8_t *q, bool v6)
{
	if (!v6)
		return p[1] == q[1] && (p[6] & 0x40) == (q[6] & 0x40) && p[8] == q[8] && !memcmp(p + 12, q + 12, 8);
	return !memcmp(p, q, 4) && p[7] == q[7] && !memcmp(p + 8, q + 8, 32);
}

static bool mergeable(const struct lsw_gro *g, const uint8_t *q, size_t len, bool v6, size_t l3, size_t l4hdr)
{
	const uint8_t *p = g->buf;
	size_t payload = len - l3 - l4hdr;

	if (!g->nsegs || g->closed || g->udp || v6 != g->v6 || l4hdr != g->l4hdr || payload > g->seg ||
	    g->len + payload > LSW_GRO_MAX - 64)
		return false;
	if (!same_ip(p, q, v6))
		return false;
	/* Ports, ack, data offset, then the options byte for byte. */
	if (memcmp(p + l3, q + l3, 4) || memcmp(p + l3 + 8, q + l3 + 8, 5) ||
	    memcmp(p + l3 + 20, q + l3 + 20, l4hdr - 20))
		return false;
	return ls_get_be32(q + l3 + 4) == g->next_seq;
}

int lsw_gro_add(struct lsw_gro *g, const uint8_t *pkt, size_t len, lsw_gro_write_fn w, void *ctx)
{
	size_t l3 = 0, l4hdr = 0, payload;
	bool v6 = false;
	int ret = 0;

	if (g->allow_udp && candidate_udp(pkt, len, &v6, &l3)) {
		payload = len - l3 - 8;
		if (g->nsegs && g->udp && !g->closed && v6 == g->v6 && payload <= g->seg && g->nsegs < 64 &&
		    g->len + payload <= LSW_GRO_MAX - 64 && same_ip(g->buf, pkt, v6) &&
		    !memcmp(g->buf + l3, pkt + l3, 4)) {
			memcpy(g->buf + g->len, pkt + l3 + 8, payload);
			g->len += payload;
			g->nsegs++;
			if (payload < g->seg)
				g->closed = true;
			return 0;
		}
		ret = lsw_gro_flush(g, w, ctx);
		memcpy(g->buf, pkt, len);
		g->len = len;
		g->nsegs = 1;
		g->l3 = l3;
		g->l4hdr = 8;
		g->seg = payload;
		g->v6 = v6;
		g->udp = true;
		g->closed = false;
		return ret;
	}
	if (!candidate(pkt, len, &v6, &l3, &l4hdr)) {
		/* Keep order within a flow: what is held goes first. */
		ret = lsw_gro_flush(g, w, ctx);
		memcpy(g->buf, pkt, len);
		g->nsegs = 1;
		g->len = len;
		g->closed = true;
		g->v6 = v6;
		int r = lsw_gro_flush(g, w, ctx);
		return ret ? ret : r;
	}
	payload = len - l3 - l4hdr;
	if (mergeable(g, pkt, len, v6, l3, l4hdr)) {
		memcpy(g->buf + g->len, pkt + l3 + l4hdr, payload);
		g->len += payload;
		g->nsegs++;
		g->next_seq += (uint32_t)payload;
		if (pkt[l3 + 13] & 0x08)
			g->buf[l3 + 13] |= 0x08; /* PSH travels on the merged packet */
		/* A short segment or PSH ends the run, as in the kernel's GRO. */
		if (payload < g->seg || (pkt[l3 + 13] & 0x08))
			g->closed = true;
		/* The window of the newest segment is the one that counts. */
		memcpy(g->buf + l3 + 14, pkt + l3 + 14, 2);
		return 0;
	}
	ret = lsw_gro_flush(g, w, ctx);
	memcpy(g->buf, pkt, len);
	g->len = len;
	g->nsegs = 1;
	g->l3 = l3;
	g->l4hdr = l4hdr;
	g->seg = payload;
	g->v6 = v6;
	g->udp = false;
	g->closed = (pkt[l3 + 13] & 0x08) != 0;
	g->next_seq = ls_get_be32(pkt + l3 + 4) + (uint32_t)payload;
	return ret;
}
