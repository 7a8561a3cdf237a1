// SPDX-License-Identifier: MIT
/* The engine process: TUN <-> device <-> UDP, with the UAPI socket. */
#include "userspace/wgu/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "userspace/wgu/gro.h"
#include "userspace/wgu/tun.h"
#include "userspace/wgu/uapi.h"
#include "util.h"

#define RX_BATCH 16
#define RX_BUF (65536 + 64)
#define TX_ARENA (1024 * 1024)
#define TX_MAX_SEGS 768
#define UAPI_MAX_REQUEST (16 * 1024 * 1024)

/* --- UDP --- */

static int udp_open(struct lsw_engine *e, uint16_t *port, uint32_t mark, int *family)
{
	int fam = AF_INET6, fd, one = 1, zero = 0, bufsz = 8 * 1024 * 1024, ret;
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 0, .tv_usec = 500000 };
	socklen_t alen;

	fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 && errno == EAFNOSUPPORT) {
		fam = AF_INET;
		fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	}
	if (fd < 0)
		return -errno;
	if (fam == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof(bufsz)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof(bufsz)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	/* The receive thread wakes twice a second to notice a rebound socket. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	e->udp_gro = setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) == 0;
	__atomic_store_n(&e->dev.offload.udp_gro, e->udp_gro, __ATOMIC_RELAXED);
	/* Learn which local address each datagram reached (sticky source). */
	if (fam == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
	else
		setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
	if (fam == AF_INET6) {
		a6.sin6_port = htons(*port);
		if (bind(fd, (struct sockaddr *)&a6, sizeof(a6)) < 0)
			goto fail;
		alen = sizeof(a6);
		getsockname(fd, (struct sockaddr *)&a6, &alen);
		*port = ntohs(a6.sin6_port);
	} else {
		a4.sin_port = htons(*port);
		if (bind(fd, (struct sockaddr *)&a4, sizeof(a4)) < 0)
			goto fail;
		alen = sizeof(a4);
		getsockname(fd, (struct sockaddr *)&a4, &alen);
		*port = ntohs(a4.sin_port);
	}
	*family = fam;
	return fd;
fail:
	ret = -errno;
	close(fd);
	return ret;
}

/* Under the device lock (UAPI set): rebind to port, or just re-mark. */
static int sock_update(void *ctx, uint16_t *port, uint32_t mark)
{
	struct lsw_engine *e = ctx;
	int fd, fam = AF_INET6;

	if (e->udp_fd >= 0 && *port == e->dev.listen_port && *port != 0) {
		if (setsockopt(e->udp_fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0)
			return -errno;
		return 0;
	}
	fd = udp_open(e, port, mark, &fam);
	if (fd < 0) {
		pr_err("cannot bind UDP port %u: %s", *port, strerror(-fd));
		return fd;
	}
	if (e->udp_fd < 0) {
		e->udp_fd = fd;
	} else {
		/* Swap in place: the threads keep using the same fd number. The
		 * receive thread may sit in recvmmsg on the old socket: shutting
		 * it down wakes it, so the old port is released at once. */
		int old = dup(e->udp_fd);

		dup2(fd, e->udp_fd);
		close(fd);
		if (old >= 0) {
			shutdown(old, SHUT_RDWR);
			close(old);
		}
	}
	__atomic_store_n(&e->udp_family, fam, __ATOMIC_RELEASE);
	pr_info("listening on UDP port %u%s", *port, mark ? " with fwmark" : "");
	return 0;
}

static void to_sockaddr(const struct lsw_engine *e, const struct lsw_endpoint *ep, struct sockaddr_in6 *out,
			socklen_t *len, const struct sockaddr **sa)
{
	if (__atomic_load_n(&e->udp_family, __ATOMIC_ACQUIRE) == AF_INET6 && ep->sa.sa_family == AF_INET) {
		memset(out, 0, sizeof(*out));
		out->sin6_family = AF_INET6;
		out->sin6_port = ep->in4.sin_port;
		out->sin6_addr.s6_addr[10] = 0xff;
		out->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&out->sin6_addr.s6_addr[12], &ep->in4.sin_addr, 4);
		*sa = (const struct sockaddr *)out;
		*len = sizeof(*out);
	} else {
		*sa = &ep->sa;
		*len = ep->len;
	}
}

/* Control messages for a send: the source address (sticky) and the GSO size. */
union send_cmsg {
	char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(uint16_t))];
	struct cmsghdr align;
};

static void build_cmsg(const struct lsw_engine *e, const struct lsw_endpoint *ep, bool with_src, uint16_t gso,
		       struct msghdr *mh, union send_cmsg *cb)
{
	struct cmsghdr *cm;
	size_t len = 0;

	memset(cb, 0, sizeof(*cb));
	mh->msg_control = cb->buf;
	mh->msg_controllen = sizeof(cb->buf);
	cm = CMSG_FIRSTHDR(mh);
	if (with_src && ep->has_local) {
		if (__atomic_load_n(&e->udp_family, __ATOMIC_ACQUIRE) == AF_INET6) {
			struct in6_pktinfo pi = { .ipi6_addr = ep->local, .ipi6_ifindex = ep->local_ifindex };

			cm->cmsg_level = IPPROTO_IPV6;
			cm->cmsg_type = IPV6_PKTINFO;
			cm->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
		} else {
			struct in_pktinfo pi = { 0 };

			memcpy(&pi.ipi_spec_dst, &ep->local.s6_addr[12], 4);
			cm->cmsg_level = IPPROTO_IP;
			cm->cmsg_type = IP_PKTINFO;
			cm->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
		}
		len += CMSG_SPACE(cm->cmsg_len - CMSG_LEN(0));
		cm = (struct cmsghdr *)(void *)(cb->buf + len);
	}
	if (gso) {
		cm->cmsg_level = SOL_UDP;
		cm->cmsg_type = UDP_SEGMENT;
		cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
		memcpy(CMSG_DATA(cm), &gso, sizeof(gso));
		len += CMSG_SPACE(sizeof(uint16_t));
	}
	mh->msg_controllen = len;
	if (!len)
		mh->msg_control = NULL;
}

/* One sendmsg; when the remembered source address no longer works (it was
 * removed, the route changed), once more without it. */
static int send_one(struct lsw_engine *e, const struct lsw_endpoint *ep, struct msghdr *mh, uint16_t gso)
{
	union send_cmsg cb;

	build_cmsg(e, ep, true, gso, mh, &cb);
	if (sendmsg(e->udp_fd, mh, 0) >= 0)
		return 0;
	if (ep->has_local && errno != EAGAIN && errno != ENOBUFS && errno != EMSGSIZE && errno != EIO) {
		build_cmsg(e, ep, false, gso, mh, &cb);
		if (sendmsg(e->udp_fd, mh, 0) >= 0)
			return 0;
	}
	return -errno;
}

static int udp_send(void *ctx, const struct lsw_endpoint *ep, const struct iovec *iov, int n, size_t gso)
{
	struct lsw_engine *e = ctx;
	struct sockaddr_in6 mapped;
	const struct sockaddr *sa;
	socklen_t salen;
	struct msghdr mh = { 0 };
	int ret;

	if (__atomic_load_n(&e->udp_family, __ATOMIC_ACQUIRE) == AF_INET && ep->sa.sa_family == AF_INET6)
		return -EAFNOSUPPORT;
	to_sockaddr(e, ep, &mapped, &salen, &sa);
	mh.msg_name = (void *)sa;
	mh.msg_namelen = salen;
	if (n > 1 && gso && __atomic_load_n(&e->udp_gso, __ATOMIC_RELAXED)) {
		mh.msg_iov = (struct iovec *)iov;
		mh.msg_iovlen = (size_t)n;
		ret = send_one(e, ep, &mh, (uint16_t)gso);
		if (!ret)
			return 0;
		if (ret != -EMSGSIZE && ret != -ENOBUFS && ret != -EAGAIN) {
			if (ret != -EIO && ret != -EINVAL && ret != -EOPNOTSUPP)
				return ret;
			/* No GSO on this path: send one by one from now on. */
			pr_warn("UDP GSO failed (%s); sending datagrams one by one", strerror(-ret));
			__atomic_store_n(&e->udp_gso, false, __ATOMIC_RELAXED);
			__atomic_store_n(&e->dev.offload.udp_gso, false, __ATOMIC_RELAXED);
		}
	}
	if (n == 1) {
		mh.msg_iov = (struct iovec *)iov;
		mh.msg_iovlen = 1;
		return send_one(e, ep, &mh, 0);
	}
	/* Several datagrams without GSO: one sendmmsg, all with the same source. */
	struct mmsghdr mm[64];
	union send_cmsg cb;
	int done = 0;

	build_cmsg(e, ep, true, 0, &mh, &cb);
	for (int i = 0; i < n && i < 64; i++) {
		mm[i].msg_hdr = mh;
		mm[i].msg_hdr.msg_iov = (struct iovec *)&iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
		mm[i].msg_len = 0;
	}
	while (done < n && done < 64) {
		int r = sendmmsg(e->udp_fd, mm + done, (unsigned int)((n < 64 ? n : 64) - done), 0);

		if (r < 0)
			break;
		done += r;
	}
	/* Whatever is left (the source address failed, say) goes one by one. */
	for (int i = done; i < n; i++) {
		mh.msg_iov = (struct iovec *)&iov[i];
		mh.msg_iovlen = 1;
		ret = send_one(e, ep, &mh, 0);
		if (ret)
			return ret;
	}
	return 0;
}

static int gro_write(void *ctx, const uint8_t *vnet_and_pkt, size_t len)
{
	struct lsw_engine *e = ctx;

	if (write(e->tun_fd, vnet_and_pkt, len) < 0)
		return -errno;
	return 0;
}

static int tun_write(void *ctx, uint8_t *pkt, size_t len)
{
	struct lsw_engine *e = ctx;
	struct lsw_vnet_hdr *vh;

	if (e->gro)
		return lsw_gro_add(e->gro, pkt, len, gro_write, e);
	/* The AEAD authenticated it: the kernel need not check the checksums. */
	vh = (struct lsw_vnet_hdr *)(void *)(pkt - sizeof(*vh));
	memset(vh, 0, sizeof(*vh));
	vh->flags = LSW_VNET_F_DATA_VALID;
	return gro_write(e, (const uint8_t *)vh, len + sizeof(*vh));
}

static void wake(void *ctx)
{
	struct lsw_engine *e = ctx;
	uint64_t one = 1;

	if (write(e->wake_fd, &one, sizeof(one)) < 0)
		return;
}

static void parallel(void *ctx, int path, lsw_pool_fn fn, void *arg, int n)
{
	struct lsw_engine *e = ctx;

	lsw_pool_run(e->pool[path], fn, arg);
}

static const struct lsw_device_ops engine_ops = {
	.udp_send = udp_send,
	.tun_write = tun_write,
	.wake = wake,
	.sock_update = sock_update,
	.parallel = parallel,
};

/* --- packet threads --- */

static bool stopping(struct lsw_engine *e)
{
	return __atomic_load_n(&e->stop, __ATOMIC_ACQUIRE);
}

static void stop_engine(struct lsw_engine *e)
{
	__atomic_store_n(&e->stop, 1, __ATOMIC_RELEASE);
	wake(e);
}

static void *rx_thread(void *arg)
{
	struct lsw_engine *e = arg;
	struct mmsghdr mm[RX_BATCH];
	struct iovec iov[RX_BATCH];
	struct sockaddr_in6 from[RX_BATCH];
	union {
		char buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct in6_pktinfo))];
		struct cmsghdr align;
	} ctl[RX_BATCH];
	uint8_t *bufs = malloc((size_t)RX_BATCH * RX_BUF);
	struct lsw_endpoint src[RX_BATCH];
	struct lsw_rx *msgs = calloc(RX_BATCH * 64, sizeof(*msgs));

	if (!bufs || !msgs) {
		pr_err("out of memory");
		stop_engine(e);
		free(bufs);
		free(msgs);
		return NULL;
	}
	while (!stopping(e)) {
		int n, nm = 0;

		for (int i = 0; i < RX_BATCH; i++) {
			iov[i].iov_base = bufs + (size_t)i * RX_BUF + LSW_HEADROOM;
			iov[i].iov_len = RX_BUF - LSW_HEADROOM;
			memset(&mm[i].msg_hdr, 0, sizeof(mm[i].msg_hdr));
			mm[i].msg_hdr.msg_name = &from[i];
			mm[i].msg_hdr.msg_namelen = sizeof(from[i]);
			mm[i].msg_hdr.msg_iov = &iov[i];
			mm[i].msg_hdr.msg_iovlen = 1;
			mm[i].msg_hdr.msg_control = ctl[i].buf;
			mm[i].msg_hdr.msg_controllen = sizeof(ctl[i].buf);
		}
		n = recvmmsg(e->udp_fd, mm, RX_BATCH, MSG_WAITFORONE, NULL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == EWOULDBLOCK)
				continue;
			if (errno == EBADF || errno == ENOTSOCK) {
				usleep(10000);
				continue;
			}
			pr_warn("UDP receive: %s", strerror(errno));
			usleep(1000);
			continue;
		}
		for (int i = 0; i < n; i++) {
			uint8_t *b = iov[i].iov_base;
			size_t len = mm[i].msg_len, seg = len;
			struct cmsghdr *cm;

			memset(&src[i], 0, sizeof(src[i]));
			for (cm = CMSG_FIRSTHDR(&mm[i].msg_hdr); cm; cm = CMSG_NXTHDR(&mm[i].msg_hdr, cm)) {
				if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
					int g;

					memcpy(&g, CMSG_DATA(cm), sizeof(g));
					if (g > 0)
						seg = (size_t)g;
				} else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
					struct in6_pktinfo pi;

					memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
					src[i].has_local = true;
					src[i].local = pi.ipi6_addr;
					if (IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr))
						src[i].local_ifindex = (uint32_t)pi.ipi6_ifindex;
				} else if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
					struct in_pktinfo pi;

					memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
					src[i].has_local = true;
					src[i].local.s6_addr[10] = src[i].local.s6_addr[11] = 0xff;
					memcpy(&src[i].local.s6_addr[12], &pi.ipi_addr, 4);
				}
			}
			if (from[i].sin6_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&from[i].sin6_addr)) {
				src[i].in4.sin_family = AF_INET;
				src[i].in4.sin_port = from[i].sin6_port;
				memcpy(&src[i].in4.sin_addr, &from[i].sin6_addr.s6_addr[12], 4);
				src[i].len = sizeof(src[i].in4);
			} else if (from[i].sin6_family == AF_INET6) {
				src[i].in6 = from[i];
				src[i].len = sizeof(src[i].in6);
			} else {
				memcpy(&src[i].in4, &from[i], sizeof(src[i].in4));
				src[i].len = sizeof(src[i].in4);
			}
			/* A GRO batch: equal-sized datagrams back to back, the last maybe shorter. */
			for (size_t off = 0; off < len && nm < RX_BATCH * 64; off += seg) {
				msgs[nm].buf = b + off;
				msgs[nm].len = len - off < seg ? len - off : seg;
				msgs[nm].src = &src[i];
				nm++;
			}
		}
		lsw_dev_rx_batch(&e->dev, msgs, nm);
		if (e->gro)
			lsw_gro_flush(e->gro, gro_write, e);
	}
	free(bufs);
	free(msgs);
	return NULL;
}

static void *tx_thread(void *arg)
{
	struct lsw_engine *e = arg;
	uint8_t *rbuf = malloc(sizeof(struct lsw_vnet_hdr) + 65536);
	struct lsw_arena arena = { .buf = malloc(TX_ARENA), .cap = TX_ARENA };
	struct lsw_pkt *segs = calloc(TX_MAX_SEGS, sizeof(*segs));
	struct pollfd pfd = { .fd = e->tun_fd, .events = POLLIN };

	if (!rbuf || !arena.buf || !segs) {
		pr_err("out of memory");
		stop_engine(e);
		goto cleanup;
	}
	while (!stopping(e)) {
		int nsegs = 0;
		bool again = false;

		/* Read what is waiting (a batch), then encrypt and send it. */
		while (arena.used + 70 * 1024 < arena.cap && nsegs + 64 < TX_MAX_SEGS) {
			ssize_t r = read(e->tun_fd, rbuf, sizeof(struct lsw_vnet_hdr) + 65536);
			struct lsw_vnet_hdr vh;
			int n;

			if (r < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					again = true;
					break;
				}
				if (errno == EINTR)
					continue;
				if (errno == EBADFD || errno == EIO || errno == ENXIO || errno == ENODEV) {
					pr_info("TUN device %s is gone; exiting", e->ifname);
					stop_engine(e);
					goto cleanup;
				}
				pr_warn("TUN read: %s", strerror(errno));
				again = true;
				break;
			}
			if ((size_t)r <= sizeof(vh))
				continue;
			memcpy(&vh, rbuf, sizeof(vh));
			n = lsw_tun_split(&vh, rbuf + sizeof(vh), (size_t)r - sizeof(vh), &arena, segs + nsegs,
					  TX_MAX_SEGS - nsegs);
			if (n < 0) {
				__atomic_fetch_add(&e->dev.stats.tx_drop_malformed, 1, __ATOMIC_RELAXED);
				continue;
			}
			nsegs += n;
			/* Super-packets the kernel handed over: TSO, and USO where it is on. */
			if ((vh.gso_type & (uint8_t)~LSW_VNET_GSO_ECN) == LSW_VNET_GSO_UDP_L4)
				__atomic_fetch_add(&e->dev.stats.tx_tun_gso_udp, 1, __ATOMIC_RELAXED);
			else if ((vh.gso_type & (uint8_t)~LSW_VNET_GSO_ECN) != LSW_VNET_GSO_NONE)
				__atomic_fetch_add(&e->dev.stats.tx_tun_gso_tcp, 1, __ATOMIC_RELAXED);
		}
		if (nsegs)
			lsw_dev_tx(&e->dev, segs, nsegs);
		arena.used = 0;
		if (again) {
			int pr = poll(&pfd, 1, 500);

			if (pr > 0 && (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) && !(pfd.revents & POLLIN)) {
				pr_info("TUN device %s is gone; exiting", e->ifname);
				stop_engine(e);
				goto cleanup;
			}
		}
	}
cleanup:
	free(rbuf);
	free(arena.buf);
	free(segs);
	return NULL;
}

/* --- UAPI socket --- */

int lsw_engine_check_socket(const char *ifname)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, ret = 0;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s.sock", LSW_SOCK_DIR, ifname);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		ret = -EADDRINUSE;
	close(fd);
	return ret;
}

static int uapi_listen(struct lsw_engine *e)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	mode_t old;
	int fd, ret;

	ret = ls_mkdir_p(LSW_SOCK_DIR, 0755);
	if (ret)
		return ret;
	snprintf(e->sock_path, sizeof(e->sock_path), "%s/%s.sock", LSW_SOCK_DIR, e->ifname);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%.100s", e->sock_path);
	ret = lsw_engine_check_socket(e->ifname);
	if (ret)
		return ret;
	unlink(e->sock_path); /* stale: nobody answers on it */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	old = umask(0077);
	ret = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (ret < 0 || listen(fd, 16) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	e->uapi_fd = fd;
	return 0;
}

struct uapi_conn {
	struct lsw_engine *e;
	int fd;
};

static void *uapi_client(void *arg)
{
	struct uapi_conn *c = arg;
	struct timeval tv = { .tv_sec = 10 };
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);

	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (buf) {
		char *end;

		/* A request ends with a blank line. */
		while (!(end = len ? memmem(buf, len, "\n\n", 2) : NULL) && !(len && buf[0] == '\n')) {
			ssize_t r;

			if (len == cap) {
				char *nb = cap >= UAPI_MAX_REQUEST ? NULL : realloc(buf, cap * 2);

				if (!nb)
					goto cleanup;
				buf = nb;
				cap *= 2;
			}
			r = read(c->fd, buf + len, cap - len);
			if (r <= 0)
				goto cleanup;
			len += (size_t)r;
		}
		struct lsw_buf out = { 0 };
		size_t reqlen = end ? (size_t)(end - buf) + 1 : 0, used = end ? reqlen + 1 : 1;

		lsw_uapi_request(&c->e->dev, buf, reqlen, &out);
		for (size_t off = 0; out.s && off < out.len;) {
			ssize_t w = write(c->fd, out.s + off, out.len - off);

			if (w <= 0)
				break;
			off += (size_t)w;
		}
		lsw_buf_free(&out);
		/* Wipe what may hold keys before reusing the buffer. */
		memset(buf, 0, used);
		memmove(buf, buf + used, len - used);
		len -= used;
		memset(buf + len, 0, used);
	}
cleanup:
	if (buf) {
		memset(buf, 0, cap);
		free(buf);
	}
	close(c->fd);
	free(c);
	return NULL;
}

static void uapi_accept(struct lsw_engine *e)
{
	for (;;) {
		int fd = accept4(e->uapi_fd, NULL, NULL, SOCK_CLOEXEC);
		struct uapi_conn *c;
		pthread_attr_t at;
		pthread_t t;

		if (fd < 0)
			return;
		c = malloc(sizeof(*c));
		if (!c) {
			close(fd);
			return;
		}
		c->e = e;
		c->fd = fd;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &at, uapi_client, c)) {
			close(fd);
			free(c);
		}
		pthread_attr_destroy(&at);
	}
}

/* --- main loop --- */

static void ready(struct lsw_engine *e, int err)
{
	uint8_t b = (uint8_t)err;

	if (e->ready_fd < 0)
		return;
	if (write(e->ready_fd, &b, 1) < 0)
		pr_debug("parent went away");
	close(e->ready_fd);
	e->ready_fd = -1;
}

int lsw_engine_run(const char *ifname, int ready_fd)
{
	struct lsw_engine *e = calloc(1, sizeof(*e));
	struct epoll_event ev, evs[8];
	pthread_t rx, tx;
	sigset_t mask;
	int ep = -1, sfd = -1, ret;
	unsigned int mtu = 0;
	uint64_t last_check = 0;
	uint16_t port = 0;

	if (!e)
		return -ENOMEM;
	/* Before any thread exists, so that every thread inherits the mask and
	 * the signals reach only the main loop's signalfd. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	e->ready_fd = ready_fd;
	e->tun_fd = e->udp_fd = e->uapi_fd = e->wake_fd = -1;
	snprintf(e->ifname, sizeof(e->ifname), "%s", ifname);
	lsw_dev_init(&e->dev, &engine_ops, e);
	lsw_timer_cfg_from_env(&e->dev.cfg);
	/* Tests: demand cookies (MAC2) from every handshake, as under load. */
	if (getenv("LIGHTSCALE_WG_UNDER_LOAD") && !strcmp(getenv("LIGHTSCALE_WG_UNDER_LOAD"), "1"))
		e->dev.force_under_load = true;
	e->udp_gso = true;
	e->dev.offload.udp_gso = true;
	/* Crypto workers: one part per core (LIGHTSCALE_WG_CRYPTO_THREADS). */
	{
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		const char *ct = getenv("LIGHTSCALE_WG_CRYPTO_THREADS");

		if (ct && atoi(ct) > 0)
			ncpu = atoi(ct);
		if (ncpu < 1)
			ncpu = 1;
		if (ncpu > 8)
			ncpu = 8;
		lsw_pool_create(&e->pool[0], (int)ncpu);
		lsw_pool_create(&e->pool[1], (int)ncpu);
	}
	/* LIGHTSCALE_WG_GRO=0 turns coalescing into the TUN device off. */
	if (!getenv("LIGHTSCALE_WG_GRO") || strcmp(getenv("LIGHTSCALE_WG_GRO"), "0"))
		e->gro = calloc(1, sizeof(*e->gro));

	ret = uapi_listen(e);
	if (ret) {
		if (ret == -EADDRINUSE)
			pr_err("interface `%s' is already served by a live engine (%s)", ifname, e->sock_path);
		else
			pr_err("cannot create UAPI socket for `%s': %s", ifname, strerror(-ret));
		goto cleanup;
	}
	ret = lsw_tun_open(ifname, &e->uso);
	if (ret < 0) {
		pr_err("cannot create TUN device `%s': %s", ifname, strerror(-ret));
		goto cleanup;
	}
	e->tun_fd = ret;
	__atomic_store_n(&e->dev.offload.tun_tso, true, __ATOMIC_RELAXED);
	__atomic_store_n(&e->dev.offload.tun_uso, e->uso, __ATOMIC_RELAXED);
	/* UDP coalescing is off unless LIGHTSCALE_WG_GRO_UDP=1: measured here it
	 * did not help (the bursts overflow the receiving socket sooner). The
	 * kernel takes USO packets back only with USO on (6.2+). */
	if (e->gro)
		e->gro->allow_udp = e->uso && getenv("LIGHTSCALE_WG_GRO_UDP") && !strcmp(getenv("LIGHTSCALE_WG_GRO_UDP"), "1");
	fcntl(e->tun_fd, F_SETFL, fcntl(e->tun_fd, F_GETFL) | O_NONBLOCK);
	e->ifindex = if_nametoindex(ifname);
	if (lsw_tun_get_mtu(ifname, &mtu) == 0 && mtu == 1500 && lsw_tun_set_mtu(ifname, 1420) == 0)
		mtu = 1420;
	e->dev.mtu = mtu ? mtu : 1420;
	pr_info("TUN %s (mtu %u, TSO on, USO %s)", ifname, e->dev.mtu, e->uso ? "on" : "off (kernel < 6.2)");

	ret = sock_update(e, &port, 0);
	if (ret)
		goto cleanup;
	e->dev.listen_port = port;

	e->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (e->wake_fd < 0 || sfd < 0 || ep < 0) {
		ret = -errno;
		goto cleanup;
	}
	ev.events = EPOLLIN;
	ev.data.fd = e->uapi_fd;
	epoll_ctl(ep, EPOLL_CTL_ADD, e->uapi_fd, &ev);
	ev.data.fd = e->wake_fd;
	epoll_ctl(ep, EPOLL_CTL_ADD, e->wake_fd, &ev);
	ev.data.fd = sfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

	if (pthread_create(&rx, NULL, rx_thread, e) || pthread_create(&tx, NULL, tx_thread, e)) {
		ret = -EAGAIN;
		goto cleanup;
	}
	pthread_detach(rx);
	pthread_detach(tx);
	ready(e, 0);
	pr_info("serving %s on %s", ifname, e->sock_path);

	while (!stopping(e)) {
		uint64_t next = lsw_dev_timers(&e->dev), now = lsw_dev_now(&e->dev);
		int timeout = next > now ? (int)(next - now) : 0, n;

		if (timeout > 1000)
			timeout = 1000;
		n = epoll_wait(ep, evs, 8, timeout);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == e->uapi_fd) {
				uapi_accept(e);
			} else if (evs[i].data.fd == e->wake_fd) {
				uint64_t v;

				if (read(e->wake_fd, &v, sizeof(v)) < 0)
					continue;
			} else if (evs[i].data.fd == sfd) {
				struct signalfd_siginfo si;

				if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					pr_info("signal %u: exiting", si.ssi_signo);
					__atomic_store_n(&e->stop, 1, __ATOMIC_RELEASE);
				}
			}
		}
		now = lsw_dev_now(&e->dev);
		if (now >= last_check + 1000) {
			char name[IF_NAMESIZE];
			unsigned int m = 0;

			last_check = now;
			/* The interface was deleted (ip link del): exit, as wireguard-go does. */
			if (!if_indextoname(e->ifindex, name)) {
				pr_info("interface %s was deleted; exiting", e->ifname);
				__atomic_store_n(&e->stop, 1, __ATOMIC_RELEASE);
			} else if (lsw_tun_get_mtu(name, &m) == 0 && m && m != e->dev.mtu) {
				pthread_mutex_lock(&e->dev.lock);
				e->dev.mtu = m;
				pthread_mutex_unlock(&e->dev.lock);
			}
		}
	}
	ret = 0;
cleanup:
	ready(e, ret ? -ret : 0);
	if (e->uapi_fd >= 0) {
		close(e->uapi_fd);
		unlink(e->sock_path);
	}
	/* The packet threads may still be in a system call: exit without freeing
	 * what they use; the process ends here. */
	return ret;
}
