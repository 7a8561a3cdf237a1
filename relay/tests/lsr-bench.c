// SPDX-License-Identifier: MIT
/*
 * lsr-bench: load for bench/relay/run.sh, and the yardsticks it compares with.
 *
 *   lsr-bench udp-forward --listen ADDR:PORT --to ADDR:PORT   bare UDP forwarder
 *   lsr-bench tcp-forward --listen ADDR:PORT                  bare TCP splice (1st -> 2nd)
 *   lsr-bench udp    --target ADDR:PORT --pid PID [--relay] [--count N] [--size B] [--b-port P]
 *   lsr-bench stream --target ADDR:PORT --pid PID [--relay] [--count N] [--size B]
 *
 * udp: node A sends COUNT datagrams of SIZE bytes to node B, in windows of 32
 * (then waits for B to receive them), through lightscale-relay (--relay: register
 * both, DATA frames) or through the bare forwarder (B on --b-port). stream: A
 * writes COUNT frames to B through the stream relay (--relay) or the bare splice.
 * Prints one JSON line: packets/s, delivered, and the CPU nanoseconds per packet
 * the forwarding process PID spent (from /proc/PID/schedstat).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keys.h"
#include "prefix.h"
#include "relayclient.h"
#include "util.h"

static uint64_t cpu_ns(int pid)
{
	char path[64];
	unsigned long long ns = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns;
}

static int udp_bound(const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, sz = 4 << 20;

	if (ls_endpoint_parse(addr, &ss, &len))
		return -1;
	fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		perror(addr);
		exit(1);
	}
	return fd;
}

static int udp_forward(const char *listen_s, const char *to_s)
{
	struct sockaddr_storage to;
	socklen_t tolen;
	uint8_t buf[65536];
	int fd = udp_bound(listen_s);

	if (fd < 0 || ls_endpoint_parse(to_s, &to, &tolen))
		return 2;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n > 0)
			sendto(fd, buf, n, 0, (struct sockaddr *)&to, tolen);
	}
}

static int tcp_forward(const char *listen_s)
{
	struct sockaddr_storage ss;
	socklen_t len;
	uint8_t buf[65536];
	int lfd, a, b, one = 1;

	if (ls_endpoint_parse(listen_s, &ss, &len))
		return 2;
	lfd = socket(ss.ss_family, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&ss, len) < 0 || listen(lfd, 4) < 0) {
		perror(listen_s);
		return 1;
	}
	for (;;) {
		a = accept(lfd, NULL, NULL);
		b = accept(lfd, NULL, NULL);
		setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		for (;;) {
			ssize_t n = read(a, buf, sizeof(buf)), off = 0;

			if (n <= 0)
				break;
			while (off < n) {
				ssize_t w = write(b, buf + off, n - off);

				if (w <= 0)
					break;
				off += w;
			}
		}
		close(a);
		close(b);
	}
}

static void report(const char *mode, bool relay, long count, long got, uint64_t wall_ns, uint64_t cpu)
{
	printf("{\"mode\":\"%s\",\"via\":\"%s\",\"sent\":%ld,\"delivered\":%ld,\"pps\":%.0f,"
	       "\"cpu_ns_per_packet\":%.0f}\n",
	       mode, relay ? "lightscale-relay" : "bare-forwarder", count, got,
	       got * 1e9 / (double)wall_ns, got ? (double)cpu / (double)got : 0.0);
}

static int bench_udp(const char *target_s, int pid, bool relay, long count, size_t size, int b_port)
{
	struct sockaddr_storage target;
	socklen_t tlen;
	struct ls_relay_identity a, b;
	struct ls_relay_udp_msg m;
	char baddr[64];
	uint8_t *payload = calloc(1, size), buf[65536];
	struct sockaddr_in lo = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	long sent = 0, got = 0;
	uint64_t t0, c0;
	int fa, fb, sz = 4 << 20;

	fa = socket(AF_INET, SOCK_DGRAM, 0);
	bind(fa, (struct sockaddr *)&lo, sizeof(lo));
	setsockopt(fa, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	if (relay) {
		fb = socket(AF_INET, SOCK_DGRAM, 0);
		bind(fb, (struct sockaddr *)&lo, sizeof(lo));
		setsockopt(fb, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	} else {
		/* The bare forwarder sends everything to B's fixed port. */
		snprintf(baddr, sizeof(baddr), "127.0.0.1:%d", b_port);
		fb = udp_bound(baddr);
	}
	if (ls_endpoint_parse(target_s, &target, &tlen))
		return 2;
	ls_relay_identity_random(&a);
	ls_relay_identity_random(&b);
	if (relay && (ls_relay_udp_register(fa, (struct sockaddr *)&target, tlen, &a, 2000, &m) ||
		      ls_relay_udp_register(fb, (struct sockaddr *)&target, tlen, &b, 2000, &m))) {
		fprintf(stderr, "lsr-bench: registration failed\n");
		return 1;
	}
	t0 = ls_now_ms();
	c0 = cpu_ns(pid);
	while (sent < count) {
		int w = count - sent < 32 ? (int)(count - sent) : 32, r = 0;

		for (int i = 0; i < w; i++) {
			if (relay)
				ls_relay_udp_send(fa, (struct sockaddr *)&target, tlen, b.wg_key, payload, size);
			else
				sendto(fa, payload, size, 0, (struct sockaddr *)&target, tlen);
		}
		sent += w;
		while (r < w) {
			struct pollfd p = { .fd = fb, .events = POLLIN };

			if (poll(&p, 1, 50) <= 0)
				break;
			while (r < w && recv(fb, buf, sizeof(buf), MSG_DONTWAIT) > 0)
				r++;
		}
		got += r;
	}
	report("udp", relay, count, got, (ls_now_ms() - t0) * 1000000, cpu_ns(pid) - c0);
	free(payload);
	return 0;
}

static int bench_stream(const char *target_s, int pid, bool relay, long count, size_t size)
{
	struct sockaddr_storage target;
	socklen_t tlen;
	struct ls_relay_identity a, b;
	struct ls_relay_stream *sa = NULL, *sb = NULL;
	uint8_t *payload = calloc(1, size), *buf = malloc(1 << 20);
	long got = 0;
	uint64_t t0, c0;
	int fa = -1, fb = -1;

	if (ls_endpoint_parse(target_s, &target, &tlen))
		return 2;
	ls_relay_identity_random(&a);
	ls_relay_identity_random(&b);
	if (relay) {
		if (ls_relay_stream_connect(&sb, (struct sockaddr *)&target, tlen, &b, 3000, NULL) ||
		    ls_relay_stream_connect(&sa, (struct sockaddr *)&target, tlen, &a, 3000, NULL)) {
			fprintf(stderr, "lsr-bench: stream connect failed\n");
			return 1;
		}
	} else {
		int one = 1;

		fa = socket(target.ss_family, SOCK_STREAM, 0);
		fb = socket(target.ss_family, SOCK_STREAM, 0);
		setsockopt(fa, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fb, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fa, (struct sockaddr *)&target, tlen) || connect(fb, (struct sockaddr *)&target, tlen)) {
			perror("connect");
			return 1;
		}
	}
	t0 = ls_now_ms();
	c0 = cpu_ns(pid);
	if (relay) {
		/* Windows of 64 frames, so the relay's queue limit is never what we measure. */
		for (long sent = 0; sent < count;) {
			int w = count - sent < 64 ? (int)(count - sent) : 64;
			struct ls_relay_frame f;

			for (int i = 0; i < w; i++)
				ls_relay_stream_send(sa, b.wg_key, payload, size, 3000);
			sent += w;
			for (int i = 0; i < w; i++) {
				if (ls_relay_stream_recv(sb, &f, 1000))
					break;
				got += f.type == LSR_FRAME_RECV;
			}
		}
	} else {
		size_t frame = LSR_FRAME_HDR_LEN + LSR_KEY_LEN + size, want = frame * 64;
		uint8_t *chunk = calloc(1, want);

		for (long sent = 0; sent < count;) {
			int w = count - sent < 64 ? (int)(count - sent) : 64;
			size_t n = frame * w, have = 0, off = 0;

			/* One write per frame, as the relay client does. */
			for (int i = 0; i < w; i++) {
				for (size_t fo = 0; fo < frame;) {
					ssize_t x = write(fa, chunk + off + fo, frame - fo);

					if (x <= 0)
						break;
					fo += x;
				}
				off += frame;
			}
			sent += w;
			while (have < n) {
				ssize_t x = read(fb, buf, n - have < (1 << 20) ? n - have : (1 << 20));

				if (x <= 0)
					break;
				have += x;
			}
			got += have / frame;
		}
		free(chunk);
	}
	report("stream", relay, count, got, (ls_now_ms() - t0) * 1000000, cpu_ns(pid) - c0);
	ls_relay_stream_free(sa);
	ls_relay_stream_free(sb);
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	free(payload);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	const char *listen_s = NULL, *to_s = NULL, *target_s = NULL;
	long count = 100000;
	size_t size = 1400;
	int pid = 0, b_port = 0;
	bool relay = false;

	if (argc < 2)
		goto usage;
	for (int i = 2; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(argv[i], "--relay")) {
			relay = true;
			continue;
		}
		if (!v)
			goto usage;
		if (!strcmp(argv[i], "--listen"))
			listen_s = v;
		else if (!strcmp(argv[i], "--to"))
			to_s = v;
		else if (!strcmp(argv[i], "--target"))
			target_s = v;
		else if (!strcmp(argv[i], "--count"))
			count = atol(v);
		else if (!strcmp(argv[i], "--size"))
			size = (size_t)atol(v);
		else if (!strcmp(argv[i], "--pid"))
			pid = atoi(v);
		else if (!strcmp(argv[i], "--b-port"))
			b_port = atoi(v);
		else
			goto usage;
		i++;
	}
	if (ls_crypto_init() || size == 0 || size > 60000)
		goto usage;
	if (!strcmp(argv[1], "udp-forward") && listen_s && to_s)
		return udp_forward(listen_s, to_s);
	if (!strcmp(argv[1], "tcp-forward") && listen_s)
		return tcp_forward(listen_s);
	if (!strcmp(argv[1], "udp") && target_s && pid)
		return bench_udp(target_s, pid, relay, count, size, b_port);
	if (!strcmp(argv[1], "stream") && target_s && pid)
		return bench_stream(target_s, pid, relay, count, size);
usage:
	fprintf(stderr, "usage: see the top of relay/tests/lsr-bench.c\n");
	return 2;
}
