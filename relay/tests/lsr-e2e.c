// SPDX-License-Identifier: MIT
/*
 * lsr-e2e: drives a running lightscale-relay through lib/relayclient as several
 * nodes would, and prints TAP. Used by tests/lab/relay-loopback.sh:
 *
 *     lsr-e2e --udp ADDR:PORT --stream ADDR:PORT
 *
 * The relay should run with a small --queue-limit (the slow-reader case floods it).
 * With --expiry LIFETIME_S (the relay's --udp-lifetime, with --idle-timeout below
 * it) it checks expiry and idle timeouts instead; that takes LIFETIME_S + 5 s.
 * With --scale N it puts N nodes on each relay at once and sends around a ring.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keys.h"
#include "prefix.h"
#include "relayclient.h"
#include "util.h"

static int tap_n, tap_failed;

static void __attribute__((format(printf, 2, 3))) check(int cond, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!cond)
		tap_failed++;
}

static void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static struct sockaddr_storage udp_relay, stream_relay;
static socklen_t udp_relay_len, stream_relay_len;

static int udp_socket(void)
{
	struct sockaddr_storage a;
	socklen_t alen;
	int fd;

	/* Bind to the relay's address family and loopback, so the observed address is exact. */
	if (udp_relay.ss_family == AF_INET)
		ls_endpoint_parse("127.0.0.1:1", &a, &alen);
	else
		ls_endpoint_parse("[::1]:1", &a, &alen);
	((struct sockaddr_in *)&a)->sin_port = 0;
	fd = socket(udp_relay.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, alen) < 0) {
		perror("udp socket");
		exit(1);
	}
	return fd;
}

/* Next relay datagram on fd within timeout_ms: 0, -ETIMEDOUT. */
static int udp_recv(int fd, uint8_t *buf, size_t size, struct ls_relay_udp_msg *m, int timeout_ms)
{
	uint64_t deadline = ls_now_ms() + timeout_ms;

	for (;;) {
		uint64_t now = ls_now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (now >= deadline || poll(&p, 1, (int)(deadline - now)) <= 0)
			return -ETIMEDOUT;
		n = recv(fd, buf, size, MSG_DONTWAIT);
		if (n > 0 && ls_relay_udp_parse(buf, n, m) == 0)
			return 0;
	}
}

static bool same_ep(const struct sockaddr_storage *a, int fd)
{
	struct sockaddr_storage l;
	socklen_t len = sizeof(l);
	char x[LS_ENDPOINT_STRLEN], y[LS_ENDPOINT_STRLEN];

	getsockname(fd, (struct sockaddr *)&l, &len);
	ls_endpoint_format((const struct sockaddr *)a, x);
	ls_endpoint_format((struct sockaddr *)&l, y);
	if (strcmp(x, y))
		diag("observed %s, local %s", x, y);
	return !strcmp(x, y);
}

static void test_udp(void)
{
	struct ls_relay_identity a, b, c;
	struct ls_relay_udp_msg m;
	uint8_t buf[70000], reg[LSR_UDP_REGISTER_LEN], nobody[LSR_KEY_LEN];
	int fa = udp_socket(), fb = udp_socket(), fc = udp_socket(), r;

	ls_relay_identity_random(&a);
	ls_relay_identity_random(&b);
	ls_relay_identity_random(&c);
	for (size_t i = 0; i < sizeof(nobody); i++)
		nobody[i] = (uint8_t)rand();

	r = ls_relay_udp_register(fa, (struct sockaddr *)&udp_relay, udp_relay_len, &a, 2000, &m);
	check(r == 0 && m.lifetime_s > 0, "udp: A registers (lifetime %us)", m.lifetime_s);
	check(r == 0 && same_ep(&m.observed, fa), "udp: the relay reports A's address as A's socket");
	r = ls_relay_udp_register(fb, (struct sockaddr *)&udp_relay, udp_relay_len, &b, 2000, &m);
	check(r == 0, "udp: B registers");

	r = ls_relay_udp_send(fa, (struct sockaddr *)&udp_relay, udp_relay_len, b.wg_key, "hello B", 7);
	r = r ?: udp_recv(fb, buf, sizeof(buf), &m, 2000);
	check(r == 0 && m.type == LSR_UDP_DATA && !memcmp(m.key, a.wg_key, LSR_KEY_LEN) &&
		      m.payload_len == 7 && !memcmp(m.payload, "hello B", 7),
	      "udp: A -> B arrives at B, named as from A");
	{
		static uint8_t big[1400];

		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (uint8_t)(i * 7);
		r = ls_relay_udp_send(fb, (struct sockaddr *)&udp_relay, udp_relay_len, a.wg_key, big,
				      sizeof(big));
		r = r ?: udp_recv(fa, buf, sizeof(buf), &m, 2000);
		check(r == 0 && !memcmp(m.key, b.wg_key, LSR_KEY_LEN) && m.payload_len == sizeof(big) &&
			      !memcmp(m.payload, big, sizeof(big)),
		      "udp: B -> A, 1400 bytes, intact");
	}

	/* Unknown destination; unregistered source: nothing arrives anywhere. */
	ls_relay_udp_send(fa, (struct sockaddr *)&udp_relay, udp_relay_len, nobody, "x", 1);
	ls_relay_udp_send(fc, (struct sockaddr *)&udp_relay, udp_relay_len, b.wg_key, "spoof", 5);
	check(udp_recv(fb, buf, sizeof(buf), &m, 300) == -ETIMEDOUT,
	      "udp: DATA from an unregistered address is not delivered");

	/* A bad signature, a stale timestamp, a replay from another address. */
	{
		struct ls_relay_identity bad = c;

		bad.ed_pk[0] ^= 1; /* the proof names a key that did not sign it */
		r = ls_relay_udp_register(fc, (struct sockaddr *)&udp_relay, udp_relay_len, &bad, 2000, &m);
		check(r == -EACCES && m.reason == LSR_REASON_BAD_SIGNATURE,
		      "udp: a bad signature is rejected (%s)", ls_relay_reason_str(m.reason));
	}
	{
		int n = ls_relay_udp_build_register(reg, sizeof(reg), &c, ls_relay_now_unix_ms() - 3600 * 1000);

		sendto(fc, reg, n, 0, (struct sockaddr *)&udp_relay, udp_relay_len);
		r = udp_recv(fc, buf, sizeof(buf), &m, 2000);
		check(r == 0 && m.type == LSR_UDP_REJECTED && m.reason == LSR_REASON_STALE,
		      "udp: an hour-old proof is rejected (%s)", ls_relay_reason_str(m.reason));
	}
	{
		uint64_t ts = ls_relay_now_unix_ms();
		int n = ls_relay_udp_build_register(reg, sizeof(reg), &c, ts);

		sendto(fc, reg, n, 0, (struct sockaddr *)&udp_relay, udp_relay_len);
		r = udp_recv(fc, buf, sizeof(buf), &m, 2000);
		check(r == 0 && m.type == LSR_UDP_REGISTERED, "udp: C registers with a hand-built REGISTER");
		/* The attacker replays C's datagram from elsewhere (fa's socket). */
		sendto(fa, reg, n, 0, (struct sockaddr *)&udp_relay, udp_relay_len);
		r = udp_recv(fa, buf, sizeof(buf), &m, 2000);
		check(r == 0 && m.type == LSR_UDP_REJECTED && m.reason == LSR_REASON_REPLAY,
		      "udp: the same REGISTER from another address is a replay");
		/* The relay still sends C's traffic to C. */
		ls_relay_udp_send(fb, (struct sockaddr *)&udp_relay, udp_relay_len, c.wg_key, "to C", 4);
		r = udp_recv(fc, buf, sizeof(buf), &m, 2000);
		check(r == 0 && m.payload_len == 4 && !memcmp(m.key, b.wg_key, LSR_KEY_LEN),
		      "udp: after the replay C still gets its packets");
	}

	/* Someone else's machine key claims B's WireGuard key while B holds it. */
	{
		struct ls_relay_identity evil = b;

		ls_ed25519_keypair(evil.ed_pk, evil.ed_sk);
		r = ls_relay_udp_register(fc, (struct sockaddr *)&udp_relay, udp_relay_len, &evil, 2000, &m);
		check(r == -EACCES && m.reason == LSR_REASON_DENIED,
		      "udp: another machine key cannot take over B's registration (%s)",
		      ls_relay_reason_str(m.reason));
		ls_relay_udp_send(fa, (struct sockaddr *)&udp_relay, udp_relay_len, b.wg_key, "B?", 2);
		r = udp_recv(fb, buf, sizeof(buf), &m, 2000);
		check(r == 0 && m.payload_len == 2, "udp: B still gets its packets");
	}

	/* Malformed datagrams: a truncated REGISTER, a bad version, garbage. No answer,
	 * and the relay keeps working. */
	{
		int n = ls_relay_udp_build_register(reg, sizeof(reg), &a, ls_relay_now_unix_ms());

		sendto(fa, reg, n - 1, 0, (struct sockaddr *)&udp_relay, udp_relay_len);
		reg[4] = 9;
		sendto(fa, reg, n, 0, (struct sockaddr *)&udp_relay, udp_relay_len);
		sendto(fa, "\x4c\x53\x52\x55", 4, 0, (struct sockaddr *)&udp_relay, udp_relay_len);
		check(udp_recv(fa, buf, sizeof(buf), &m, 300) == -ETIMEDOUT,
		      "udp: malformed datagrams get no answer");
		ls_relay_udp_send(fa, (struct sockaddr *)&udp_relay, udp_relay_len, b.wg_key, "still", 5);
		r = udp_recv(fb, buf, sizeof(buf), &m, 2000);
		check(r == 0 && m.payload_len == 5, "udp: the relay still forwards after malformed input");
	}
	close(fa);
	close(fb);
	close(fc);
}

static struct ls_relay_stream *sconnect(const struct ls_relay_identity *id, int *err, uint32_t *reason)
{
	struct ls_relay_stream *rs = NULL;

	*err = ls_relay_stream_connect(&rs, (struct sockaddr *)&stream_relay, stream_relay_len, id, 3000,
				       reason);
	return rs;
}

/* Next frame of a type we care about (skipping PONG/PING unless asked). */
static int srecv(struct ls_relay_stream *rs, struct ls_relay_frame *f, uint8_t type, int timeout_ms)
{
	uint64_t deadline = ls_now_ms() + timeout_ms;

	for (;;) {
		uint64_t now = ls_now_ms();
		int r;

		if (now >= deadline)
			return -ETIMEDOUT;
		r = ls_relay_stream_recv(rs, f, (int)(deadline - now));
		if (r)
			return r;
		if (f->type == type)
			return 0;
	}
}

/* Waits for the relay to close rs: a CLOSE frame (returns its reason) then EOF. */
static int wait_closed(struct ls_relay_stream *rs, uint32_t *reason)
{
	struct ls_relay_frame f;
	int r;

	*reason = 0;
	for (;;) {
		r = ls_relay_stream_recv(rs, &f, 3000);
		if (r)
			return r;
		if (f.type == LSR_FRAME_CLOSE)
			*reason = f.reason;
	}
}

static void test_stream(void)
{
	struct ls_relay_identity a, b, c, d, e;
	struct ls_relay_stream *sa, *sb, *sb2, *sc, *sd;
	struct ls_relay_frame f;
	uint8_t nobody[LSR_KEY_LEN] = { 1, 2, 3 };
	static uint8_t big[60000];
	uint32_t reason = 0;
	int err, r;

	ls_relay_identity_random(&a);
	ls_relay_identity_random(&b);
	ls_relay_identity_random(&c);
	ls_relay_identity_random(&d);
	ls_relay_identity_random(&e);

	sa = sconnect(&a, &err, &reason);
	check(sa != NULL, "stream: A connects and proves its key (%s)", strerror(-err));
	sb = sconnect(&b, &err, &reason);
	check(sb != NULL, "stream: B connects");
	if (!sa || !sb)
		return;
	/* The event-loop way: start, then step on readiness. */
	{
		struct ls_relay_identity n;
		struct ls_relay_stream *sn = NULL;
		int steps = 0, inprogress = 0;
		uint64_t deadline = ls_now_ms() + 3000;

		ls_relay_identity_random(&n);
		r = ls_relay_stream_start(&sn, (struct sockaddr *)&stream_relay, stream_relay_len, &n);
		while (r == 0 && ls_now_ms() < deadline) {
			struct pollfd p;

			steps++;
			r = ls_relay_stream_step(sn, &reason);
			if (r != -EINPROGRESS)
				break;
			inprogress++;
			r = 0;
			p.fd = ls_relay_stream_fd(sn);
			p.events = ls_relay_stream_events(sn);
			poll(&p, 1, 100);
		}
		check(r == 0 && ls_relay_stream_keepalive(sn) > 0,
		      "stream: non-blocking start/step is accepted (%d steps, %d in progress)", steps, inprogress);
		r = r ?: ls_relay_stream_send(sa, n.wg_key, "nb", 2, 2000);
		r = r ?: srecv(sn, &f, LSR_FRAME_RECV, 2000);
		check(r == 0 && f.payload_len == 2, "stream: ... and receives like any other");
		ls_relay_stream_free(sn);
	}
	check(same_ep(ls_relay_stream_observed(sa), ls_relay_stream_fd(sa)),
	      "stream: the relay reports A's TCP address");
	check(ls_relay_stream_keepalive(sa) > 0, "stream: the relay tells a keepalive (%us)",
	      ls_relay_stream_keepalive(sa));

	r = ls_relay_stream_send(sa, b.wg_key, "hi B", 4, 2000);
	r = r ?: srecv(sb, &f, LSR_FRAME_RECV, 2000);
	check(r == 0 && !memcmp(f.key, a.wg_key, LSR_KEY_LEN) && f.payload_len == 4 &&
		      !memcmp(f.payload, "hi B", 4),
	      "stream: A -> B arrives at B, named as from A");
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 13 + 1);
	r = ls_relay_stream_send(sb, a.wg_key, big, sizeof(big), 2000);
	r = r ?: srecv(sa, &f, LSR_FRAME_RECV, 2000);
	check(r == 0 && f.payload_len == sizeof(big) && !memcmp(f.payload, big, sizeof(big)),
	      "stream: B -> A, 60000 bytes, intact");

	r = ls_relay_stream_probe(sa, b.wg_key, "probe:192.0.2.1:51820", 21, 2000);
	r = r ?: srecv(sb, &f, LSR_FRAME_PROBE_RECV, 2000);
	check(r == 0 && !memcmp(f.key, a.wg_key, LSR_KEY_LEN) && f.payload_len == 21 &&
		      !memcmp(f.payload, "probe:192.0.2.1:51820", 21),
	      "stream: a probe from A reaches B with its opaque payload");

	r = ls_relay_stream_ping(sa, (const uint8_t *)"12345678", 2000);
	r = r ?: srecv(sa, &f, LSR_FRAME_PONG, 2000);
	check(r == 0 && f.payload_len == 8 && !memcmp(f.payload, "12345678", 8),
	      "stream: PING is answered by PONG with the same data");

	r = ls_relay_stream_send(sa, nobody, "x", 1, 2000);
	r = r ?: srecv(sa, &f, LSR_FRAME_PEER_GONE, 2000);
	check(r == 0 && !memcmp(f.key, nobody, LSR_KEY_LEN) && f.reason == LSR_PEER_GONE_UNKNOWN,
	      "stream: sending to an unknown key answers PEER_GONE");

	/* B connects again: the old connection is told and closed, the new one gets traffic. */
	sb2 = sconnect(&b, &err, &reason);
	check(sb2 != NULL, "stream: B connects a second time");
	r = wait_closed(sb, &reason);
	check(r == -ECONNRESET && reason == LSR_REASON_REPLACED,
	      "stream: the old B connection gets CLOSE(replaced) and EOF (%s)", ls_relay_reason_str(reason));
	ls_relay_stream_free(sb);
	if (!sb2)
		return;
	r = ls_relay_stream_send(sa, b.wg_key, "new B", 5, 2000);
	r = r ?: srecv(sb2, &f, LSR_FRAME_RECV, 2000);
	check(r == 0 && f.payload_len == 5, "stream: traffic for B goes to the new connection");

	/* Another machine key cannot replace B's connection. */
	{
		struct ls_relay_identity evil = b;
		struct ls_relay_stream *se;

		ls_ed25519_keypair(evil.ed_pk, evil.ed_sk);
		se = sconnect(&evil, &err, &reason);
		check(!se && err == -EACCES && reason == LSR_REASON_DENIED,
		      "stream: another machine key claiming B's key is refused (%s)", ls_relay_reason_str(reason));
		ls_relay_stream_free(se);
		r = ls_relay_stream_send(sa, b.wg_key, "still B", 7, 2000);
		r = r ?: srecv(sb2, &f, LSR_FRAME_RECV, 2000);
		check(r == 0 && f.payload_len == 7, "stream: B keeps its connection");
	}

	/* A malformed frame (a PING with 9 bytes) closes A only. */
	{
		uint8_t frame[LSR_FRAME_HDR_LEN + 9] = { 0 };

		ls_relay_frame_hdr((struct lsr_frame_hdr *)frame, LSR_FRAME_PING, 9);
		ls_relay_stream_write(sa, frame, sizeof(frame), 2000);
		r = wait_closed(sa, &reason);
		check(r == -ECONNRESET && reason == LSR_REASON_MALFORMED,
		      "stream: a malformed frame closes that connection with CLOSE(malformed)");
		ls_relay_stream_free(sa);
		sc = sconnect(&c, &err, &reason);
		r = sc ? ls_relay_stream_send(sc, b.wg_key, "from C", 6, 2000) : err;
		r = r ?: srecv(sb2, &f, LSR_FRAME_RECV, 2000);
		check(r == 0 && !memcmp(f.key, c.wg_key, LSR_KEY_LEN),
		      "stream: other connections keep working after it");
	}

	/* A frame before the hello, and a bad signature in the hello. */
	{
		struct ls_relay_identity bad = d;

		bad.ed_pk[3] ^= 0x80;
		sd = sconnect(&bad, &err, &reason);
		check(!sd && err == -EACCES && reason == LSR_REASON_BAD_SIGNATURE,
		      "stream: a hello with a bad signature is refused (%s)", ls_relay_reason_str(reason));
		ls_relay_stream_free(sd);
	}
	{
		int fd = socket(stream_relay.ss_family, SOCK_STREAM, 0);
		uint8_t buf[512], ping[LSR_FRAME_HDR_LEN + 8] = { 0 };
		size_t have = 0, used = 0;
		bool got_close = false;

		connect(fd, (struct sockaddr *)&stream_relay, stream_relay_len);
		ls_relay_frame_hdr((struct lsr_frame_hdr *)ping, LSR_FRAME_PING, 8);
		if (write(fd, ping, sizeof(ping)) < 0)
			diag("write: %s", strerror(errno));
		for (;;) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			ssize_t n;

			if (poll(&p, 1, 2000) <= 0)
				break;
			n = read(fd, buf + have, sizeof(buf) - have);
			if (n <= 0)
				break;
			have += n;
		}
		while (used < have) {
			size_t consumed;

			if (ls_relay_frame_parse(buf + used, have - used, &f, &consumed))
				break;
			if (f.type == LSR_FRAME_CLOSE && f.reason == LSR_REASON_PROTOCOL)
				got_close = true;
			used += consumed;
		}
		check(got_close, "stream: a frame before the hello gets CLOSE(protocol)");
		close(fd);
	}

	/* Cross-transport: a UDP-registered node and a stream node reach each other. */
	{
		int fu = udp_socket();
		struct ls_relay_udp_msg m;
		uint8_t buf[2048];

		r = ls_relay_udp_register(fu, (struct sockaddr *)&udp_relay, udp_relay_len, &e, 2000, &m);
		r = r ?: ls_relay_udp_send(fu, (struct sockaddr *)&udp_relay, udp_relay_len, c.wg_key, "u2s", 3);
		r = r ?: srecv(sc, &f, LSR_FRAME_RECV, 2000);
		check(r == 0 && !memcmp(f.key, e.wg_key, LSR_KEY_LEN) && f.payload_len == 3,
		      "cross: UDP node E -> stream node C");
		r = ls_relay_stream_send(sc, e.wg_key, "s2u!", 4, 2000);
		r = r ?: udp_recv(fu, buf, sizeof(buf), &m, 2000);
		check(r == 0 && !memcmp(m.key, c.wg_key, LSR_KEY_LEN) && m.payload_len == 4,
		      "cross: stream node C -> UDP node E");
		close(fu);
	}

	/* A slow reader: D connects and never reads; C floods it. The relay keeps
	 * answering C and B at once; D's overflow is dropped (the lab checks the counter). */
	sd = sconnect(&d, &err, &reason);
	check(sd != NULL, "stream: D connects (and will not read)");
	if (sd && sc) {
		uint64_t t0 = ls_now_ms(), t1;
		int sent = 0;

		for (int i = 0; i < 300; i++) {
			if (ls_relay_stream_send(sc, d.wg_key, big, sizeof(big), 3000))
				break;
			sent++;
		}
		t1 = ls_now_ms();
		check(sent == 300, "stream: C pushed 300 x 60000 bytes at D in %llu ms without blocking",
		      (unsigned long long)(t1 - t0));
		r = ls_relay_stream_ping(sc, (const uint8_t *)"afterfld", 2000);
		r = r ?: srecv(sc, &f, LSR_FRAME_PONG, 2000);
		check(r == 0, "stream: the relay still answers C promptly (%llu ms)",
		      (unsigned long long)(ls_now_ms() - t1));
		r = ls_relay_stream_send(sc, b.wg_key, "ok?", 3, 2000);
		r = r ?: srecv(sb2, &f, LSR_FRAME_RECV, 2000);
		check(r == 0 && f.payload_len == 3, "stream: and still relays between others");
	}
	ls_relay_stream_free(sd);
	ls_relay_stream_free(sc);
	ls_relay_stream_free(sb2);
}

/* Registrations expire without refresh; a refresh keeps one alive; a stream
 * client that stays silent past the idle timeout is closed. */
static void test_expiry(int secs)
{
	struct ls_relay_identity a, b, k;
	struct ls_relay_udp_msg m;
	struct ls_relay_stream *sk;
	uint8_t buf[2048];
	uint32_t reason;
	int fa = udp_socket(), fb = udp_socket(), fk = udp_socket(), r, err;

	ls_relay_identity_random(&a);
	ls_relay_identity_random(&b);
	ls_relay_identity_random(&k);
	r = ls_relay_udp_register(fa, (struct sockaddr *)&udp_relay, udp_relay_len, &a, 2000, &m);
	r = r ?: ls_relay_udp_register(fb, (struct sockaddr *)&udp_relay, udp_relay_len, &b, 2000, &m);
	r = r ?: ls_relay_udp_register(fk, (struct sockaddr *)&udp_relay, udp_relay_len, &k, 2000, &m);
	check(r == 0 && (int)m.lifetime_s <= secs, "expiry: three nodes register (lifetime %us)", m.lifetime_s);
	sk = sconnect(&k, &err, &reason);
	check(sk != NULL, "expiry: a stream client connects and then stays silent");
	/* K refreshes at a third of the lifetime; A and B do not. */
	for (uint64_t end = ls_now_ms() + (uint64_t)(m.lifetime_s + 3) * 1000; ls_now_ms() < end;) {
		usleep(m.lifetime_s * 1000000 / 3);
		ls_relay_udp_register(fk, (struct sockaddr *)&udp_relay, udp_relay_len, &k, 2000, &m);
	}
	ls_relay_udp_send(fa, (struct sockaddr *)&udp_relay, udp_relay_len, b.wg_key, "late", 4);
	check(udp_recv(fb, buf, sizeof(buf), &m, 500) == -ETIMEDOUT,
	      "expiry: after the lifetime, A -> B is no longer relayed");
	r = ls_relay_udp_register(fa, (struct sockaddr *)&udp_relay, udp_relay_len, &a, 2000, &m);
	r = r ?: ls_relay_udp_send(fa, (struct sockaddr *)&udp_relay, udp_relay_len, k.wg_key, "k?", 2);
	r = r ?: udp_recv(fk, buf, sizeof(buf), &m, 2000);
	check(r == 0 && m.payload_len == 2, "expiry: the refreshed registration (K) is still there");
	if (sk) {
		r = wait_closed(sk, &reason);
		check(r == -ECONNRESET && reason == LSR_REASON_TIMEOUT,
		      "expiry: the silent stream client was closed with CLOSE(timeout)");
	}
	ls_relay_stream_free(sk);
	close(fa);
	close(fb);
	close(fk);
}

/* n nodes on each relay at once, each sending to the next: everything arrives.
 * (Run the relay with --proof-rate 0: every hello comes from 127.0.0.1.) */
static void test_scale(int n)
{
	struct ls_relay_identity *ids = calloc(n, sizeof(*ids));
	struct ls_relay_stream **ss = calloc(n, sizeof(*ss));
	int *fds = calloc(n, sizeof(*fds)), ok_conn = 0, ok_reg = 0, got = 0, err;
	uint8_t buf[2048];
	uint64_t t0 = ls_now_ms();

	for (int i = 0; i < n; i++) {
		struct ls_relay_udp_msg m;

		ls_relay_identity_random(&ids[i]);
		ss[i] = sconnect(&ids[i], &err, NULL);
		ok_conn += ss[i] != NULL;
		fds[i] = udp_socket();
		ok_reg += ls_relay_udp_register(fds[i], (struct sockaddr *)&udp_relay, udp_relay_len, &ids[i],
						3000, &m) == 0;
	}
	check(ok_conn == n, "scale: %d of %d stream clients connected", ok_conn, n);
	check(ok_reg == n, "scale: %d of %d UDP clients registered (%llu ms for both)", ok_reg, n,
	      (unsigned long long)(ls_now_ms() - t0));
	printf("# hold: the lab reads the relay's status and memory now\n");
	fflush(stdout);
	sleep(2);

	/* Stream: i -> i+1, then every node reads its one frame. */
	for (int i = 0; i < n; i++)
		if (ss[i])
			ls_relay_stream_send(ss[i], ids[(i + 1) % n].wg_key, &i, sizeof(i), 2000);
	for (int i = 0; i < n; i++) {
		struct ls_relay_frame f;
		int from = (i + n - 1) % n;

		if (ss[i] && srecv(ss[i], &f, LSR_FRAME_RECV, 2000) == 0 && f.payload_len == sizeof(int) &&
		    !memcmp(f.payload, &from, sizeof(int)) && !memcmp(f.key, ids[from].wg_key, LSR_KEY_LEN))
			got++;
	}
	check(got == n, "scale: stream ring, %d of %d frames arrived from the right node", got, n);

	/* UDP: the same ring. */
	got = 0;
	for (int i = 0; i < n; i++)
		ls_relay_udp_send(fds[i], (struct sockaddr *)&udp_relay, udp_relay_len, ids[(i + 1) % n].wg_key,
				  &i, sizeof(i));
	for (int i = 0; i < n; i++) {
		struct ls_relay_udp_msg m;
		int from = (i + n - 1) % n;

		if (udp_recv(fds[i], buf, sizeof(buf), &m, 2000) == 0 && m.payload_len == sizeof(int) &&
		    !memcmp(m.payload, &from, sizeof(int)) && !memcmp(m.key, ids[from].wg_key, LSR_KEY_LEN))
			got++;
	}
	check(got == n, "scale: UDP ring, %d of %d datagrams arrived from the right node", got, n);
	for (int i = 0; i < n; i++) {
		ls_relay_stream_free(ss[i]);
		close(fds[i]);
	}
	free(ids);
	free(ss);
	free(fds);
}

int main(int argc, char **argv)
{
	const char *udp_s = NULL, *stream_s = NULL;
	int expiry = 0, scale = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--udp"))
			udp_s = argv[i + 1];
		else if (!strcmp(argv[i], "--stream"))
			stream_s = argv[i + 1];
		else if (!strcmp(argv[i], "--expiry"))
			expiry = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--scale"))
			scale = atoi(argv[i + 1]);
	}
	if (!udp_s || !stream_s || ls_endpoint_parse(udp_s, &udp_relay, &udp_relay_len) ||
	    ls_endpoint_parse(stream_s, &stream_relay, &stream_relay_len)) {
		fprintf(stderr, "usage: lsr-e2e --udp ADDR:PORT --stream ADDR:PORT [--expiry LIFETIME_S]\n");
		return 2;
	}
	if (ls_crypto_init())
		return 1;
	srand((unsigned)ls_now_ms());
	if (expiry) {
		test_expiry(expiry);
	} else if (scale > 0) {
		test_scale(scale);
	} else {
		test_udp();
		test_stream();
	}
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
