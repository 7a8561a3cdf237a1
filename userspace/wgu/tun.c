// SPDX-License-Identifier: MIT
#include "userspace/wgu/tun.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/bytes.h"
#include "log.h"

#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

int lsw_tun_open(const char *name, bool *uso)
{
	struct ifreq ifr = { 0 };
	unsigned int off;
	int fd, sz = (int)sizeof(struct lsw_vnet_hdr), ret;

	if (strlen(name) >= IFNAMSIZ)
		return -ENAMETOOLONG;
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR;
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		goto fail;
	if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0)
		goto fail;
	off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_USO4 | TUN_F_USO6;
	*uso = true;
	if (ioctl(fd, TUNSETOFFLOAD, off) < 0) {
		/* Before 6.2 the kernel rejects USO: TSO only. */
		*uso = false;
		off &= ~(unsigned int)(TUN_F_USO4 | TUN_F_USO6);
		if (ioctl(fd, TUNSETOFFLOAD, off) < 0)
			goto fail;
	}
	return fd;
fail:
	ret = -errno;
	close(fd);
	return ret;
}

static int mtu_ioctl(const char *name, unsigned long req, unsigned int *mtu)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = 0;

	if (s < 0)
		s = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	ifr.ifr_mtu = (int)*mtu;
	if (ioctl(s, req, &ifr) < 0)
		ret = -errno;
	else
		*mtu = (unsigned int)ifr.ifr_mtu;
	close(s);
	return ret;
}

int lsw_tun_get_mtu(const char *name, unsigned int *mtu)
{
	return mtu_ioctl(name, SIOCGIFMTU, mtu);
}

int lsw_tun_set_mtu(const char *name, unsigned int mtu)
{
	return mtu_ioctl(name, SIOCSIFMTU, &mtu);
}

static uint32_t csum_add(const uint8_t *buf, size_t len, uint64_t sum)
{
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, buf, 8);
		/* Sum 32-bit halves in network order, with end-around carry later. */
		sum += (uint64_t)ntohl((uint32_t)w) + ntohl((uint32_t)(w >> 32));
		buf += 8;
		len -= 8;
	}
	while (len >= 2) {
		sum += (uint32_t)buf[0] << 8 | buf[1];
		buf += 2;
		len -= 2;
	}
	if (len)
		sum += (uint32_t)buf[0] << 8;
	while (sum >> 32)
		sum = (sum & 0xffffffff) + (sum >> 32);
	return (uint32_t)sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

uint16_t lsw_csum(const uint8_t *buf, size_t len, uint32_t initial)
{
	return (uint16_t)~fold(csum_add(buf, len, initial));
}

/* Sum of the pseudo-header for an L4 segment of l4len bytes. */
static uint32_t pseudo_sum(const uint8_t *ip, int v6, uint8_t proto, size_t l4len)
{
	uint32_t s;

	if (!v6)
		s = csum_add(ip + 12, 8, 0);
	else
		s = csum_add(ip + 8, 32, 0);
	return s + proto + (uint32_t)l4len;
}

static uint8_t *carve(struct lsw_arena *a, size_t len)
{
	size_t need = (LSW_HEADROOM + len + LSW_TAILROOM + 15) & ~(size_t)15;
	uint8_t *p;

	if (a->used + need > a->cap)
		return NULL;
	p = a->buf + a->used + LSW_HEADROOM;
	a->used += need;
	return p;
}

int lsw_tun_split(const struct lsw_vnet_hdr *vh, const uint8_t *pkt, size_t len, struct lsw_arena *a,
		  struct lsw_pkt *out, int max)
{
	uint8_t gso = vh->gso_type & (uint8_t)~LSW_VNET_GSO_ECN;
	size_t l3, l4hdr, hdrs, payload, mss, off;
	int v6, tcp, n = 0;
	uint8_t *p;

	if (len < 1 || max < 1)
		return -EINVAL;
	if (gso == LSW_VNET_GSO_NONE) {
		p = carve(a, len);
		if (!p)
			return -ENOSPC;
		memcpy(p, pkt, len);
		if (vh->flags & LSW_VNET_F_NEEDS_CSUM) {
			size_t start = vh->csum_start, at = start + vh->csum_offset;

			if (start >= len || at + 2 > len)
				return -EINVAL;
			/* The field holds the pseudo-header sum: sum from csum_start on. */
			uint16_t c = lsw_csum(p + start, len - start, 0);

			/* UDP sends a computed zero as all ones (zero means "none"). */
			if (c == 0 && vh->csum_offset == 6)
				c = 0xffff;
			ls_put_be16(p + at, c);
		}
		out[0].data = p;
		out[0].len = len;
		return 1;
	}

	if (gso != LSW_VNET_GSO_TCPV4 && gso != LSW_VNET_GSO_TCPV6 && gso != LSW_VNET_GSO_UDP_L4)
		return -EINVAL;
	v6 = (pkt[0] >> 4) == 6;
	if ((!v6 && (pkt[0] >> 4) != 4) || (!v6 && len < 20) || (v6 && len < 40))
		return -EINVAL;
	tcp = gso != LSW_VNET_GSO_UDP_L4;
	l3 = vh->csum_start; /* the transport header's offset, past any v6 extension headers */
	if (!v6 && l3 != (size_t)(pkt[0] & 15) * 4)
		return -EINVAL;
	if (v6 && l3 < 40)
		return -EINVAL;
	if (tcp) {
		if (l3 + 20 > len)
			return -EINVAL;
		l4hdr = (size_t)(pkt[l3 + 12] >> 4) * 4;
		if (l4hdr < 20)
			return -EINVAL;
	} else {
		l4hdr = 8;
	}
	hdrs = l3 + l4hdr;
	mss = vh->gso_size;
	if (hdrs > len || !mss)
		return -EINVAL;
	payload = len - hdrs;

	uint16_t id = v6 ? 0 : ls_get_be16(pkt + 4);
	uint32_t seq = 0;

	if (tcp) {
		memcpy(&seq, pkt + l3 + 4, 4);
		seq = ntohl(seq);
	}
	uint8_t flags = tcp ? pkt[l3 + 13] : 0;

	for (off = 0; off < payload || (payload == 0 && n == 0); off += mss) {
		size_t seg = payload - off < mss ? payload - off : mss;
		bool last = off + seg >= payload;
		size_t l4len = l4hdr + seg;

		if (n == max)
			return -ENOSPC;
		p = carve(a, hdrs + seg);
		if (!p)
			return -ENOSPC;
		memcpy(p, pkt, hdrs);
		memcpy(p + hdrs, pkt + hdrs + off, seg);
		if (!v6) {
			ls_put_be16(p + 2, (uint16_t)(hdrs + seg));
			ls_put_be16(p + 4, (uint16_t)(id + n));
			ls_put_be16(p + 10, 0);
			ls_put_be16(p + 10, lsw_csum(p, l3, 0));
		} else {
			ls_put_be16(p + 4, (uint16_t)(hdrs + seg - 40));
		}
		if (tcp) {
			uint32_t s = htonl(seq + (uint32_t)off);
			uint8_t f = flags;

			memcpy(p + l3 + 4, &s, 4);
			if (!last)
				f &= (uint8_t)~0x09; /* FIN, PSH only on the last */
			if (n)
				f &= (uint8_t)~0x80; /* CWR only on the first */
			p[l3 + 13] = f;
			ls_put_be16(p + l3 + 16, 0);
			ls_put_be16(p + l3 + 16, lsw_csum(p + l3, l4len, pseudo_sum(p, v6, 6, l4len)));
		} else {
			uint16_t c;

			ls_put_be16(p + l3 + 4, (uint16_t)l4len);
			ls_put_be16(p + l3 + 6, 0);
			c = lsw_csum(p + l3, l4len, pseudo_sum(p, v6, 17, l4len));
			ls_put_be16(p + l3 + 6, c ? c : 0xffff);
		}
		out[n].data = p;
		out[n].len = hdrs + seg;
		n++;
		if (payload == 0)
			break;
	}
	return n;
}
