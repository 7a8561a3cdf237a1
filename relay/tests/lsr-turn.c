// SPDX-License-Identifier: MIT
/*
 * lsr-turn: lib/turnclient against a real TURN server (coturn in
 * tests/lab/relay-turn.sh), printing TAP:
 *
 *     lsr-turn --server ADDR:PORT --user NAME --password SECRET
 *
 * Node A allocates; a plain UDP peer P and a second allocation B exchange data
 * with A through Send/Data indications and ChannelData; permissions, wrong
 * credentials, refresh and deallocation are checked too.
 */
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
#include "turnclient.h"
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
	tap_failed += !cond;
}

static int udp_socket(struct sockaddr_storage *local, socklen_t *len)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("socket");
		exit(1);
	}
	*len = sizeof(*local);
	getsockname(fd, (struct sockaddr *)local, len);
	return fd;
}

/* One datagram within timeout_ms: its length, or -ETIMEDOUT. */
static ssize_t recv_from(int fd, uint8_t *buf, size_t size, struct sockaddr_storage *from, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	socklen_t flen = sizeof(*from);

	if (poll(&p, 1, timeout_ms) <= 0)
		return -ETIMEDOUT;
	return recvfrom(fd, buf, size, 0, (struct sockaddr *)from, &flen);
}

/* Reads datagrams on a TURN client's socket until one carries peer data. */
static int turn_recv(struct ls_turn *t, int fd, uint8_t *buf, size_t size, struct sockaddr_storage *peer,
		     const uint8_t **data, size_t *dlen, int timeout_ms)
{
	uint64_t deadline = ls_now_ms() + timeout_ms;

	while (ls_now_ms() < deadline) {
		struct sockaddr_storage from;
		ssize_t n = recv_from(fd, buf, size, &from, (int)(deadline - ls_now_ms()));

		if (n < 0)
			return (int)n;
		if (ls_turn_parse_data(t, buf, (size_t)n, peer, data, dlen) == 0)
			return 0;
	}
	return -ETIMEDOUT;
}

static bool same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	char x[LS_ENDPOINT_STRLEN], y[LS_ENDPOINT_STRLEN];

	ls_endpoint_format((const struct sockaddr *)a, x);
	ls_endpoint_format((const struct sockaddr *)b, y);
	if (strcmp(x, y))
		printf("# %s != %s\n", x, y);
	return !strcmp(x, y);
}

int main(int argc, char **argv)
{
	const char *server_s = NULL, *user = NULL, *pass = NULL;
	struct sockaddr_storage server, la, lp, lb, from, peer;
	socklen_t slen, lalen, lplen, lblen, lxlen;
	struct ls_turn *ta = NULL, *tb = NULL, *tx = NULL;
	uint8_t buf[4096];
	const uint8_t *data;
	size_t dlen;
	char ep[LS_ENDPOINT_STRLEN];
	uint16_t ch = 0;
	int fa, fp, fb, fx, r;
	ssize_t n;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--server"))
			server_s = argv[i + 1];
		else if (!strcmp(argv[i], "--user"))
			user = argv[i + 1];
		else if (!strcmp(argv[i], "--password"))
			pass = argv[i + 1];
	}
	if (!server_s || !user || !pass || ls_endpoint_parse(server_s, &server, &slen)) {
		fprintf(stderr, "usage: lsr-turn --server ADDR:PORT --user NAME --password SECRET\n");
		return 2;
	}
	if (ls_crypto_init())
		return 1;
	fa = udp_socket(&la, &lalen);
	fp = udp_socket(&lp, &lplen);
	fb = udp_socket(&lb, &lblen);
	fx = udp_socket(&from, &lxlen);

	r = ls_turn_allocate(&tx, fx, (struct sockaddr *)&server, slen, user, "wrong-password", 3000);
	check(r == -EACCES, "a wrong password is refused (%s, error %d)", strerror(-r),
	      r == -EACCES || r == -EPROTO ? 401 : 0);

	r = ls_turn_allocate(&ta, fa, (struct sockaddr *)&server, slen, user, pass, 3000);
	check(r == 0, "A allocates with long-term credentials (%s)", strerror(-r));
	if (r)
		goto out;
	ls_endpoint_format((const struct sockaddr *)ls_turn_relayed(ta), ep);
	check(ls_turn_relayed(ta)->ss_family == AF_INET && ls_turn_lifetime(ta) > 0,
	      "A's relayed address %s, lifetime %us", ep, ls_turn_lifetime(ta));
	check(same(ls_turn_mapped(ta), &la), "the server's XOR-MAPPED-ADDRESS is A's socket");

	/* Without a permission the server drops what A sends to P. */
	ls_turn_send(ta, (struct sockaddr *)&lp, lplen, "early", 5);
	check(recv_from(fp, buf, sizeof(buf), &from, 300) == -ETIMEDOUT,
	      "no permission for P: nothing reaches P");

	r = ls_turn_create_permission(ta, (struct sockaddr *)&lp, lplen, 3000);
	check(r == 0, "CreatePermission for P");
	r = ls_turn_send(ta, (struct sockaddr *)&lp, lplen, "via Send", 8);
	n = r ? r : recv_from(fp, buf, sizeof(buf), &from, 2000);
	check(n == 8 && !memcmp(buf, "via Send", 8) && same(&from, (struct sockaddr_storage *)ls_turn_relayed(ta)),
	      "a Send indication reaches P from A's relayed address");
	sendto(fp, "reply!", 6, 0, (const struct sockaddr *)ls_turn_relayed(ta), sizeof(struct sockaddr_in));
	r = turn_recv(ta, fa, buf, sizeof(buf), &peer, &data, &dlen, 2000);
	check(r == 0 && dlen == 6 && !memcmp(data, "reply!", 6) && same(&peer, &lp),
	      "P's answer comes to A as a Data indication naming P");

	r = ls_turn_channel_bind(ta, (struct sockaddr *)&lp, lplen, &ch, 3000);
	check(r == 0 && ch >= LS_TURN_CHANNEL_MIN && ch <= LS_TURN_CHANNEL_MAX, "ChannelBind P to 0x%04x", ch);
	{
		uint8_t big[1400];

		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (uint8_t)(i ^ 0x5a);
		r = ls_turn_send(ta, (struct sockaddr *)&lp, lplen, big, sizeof(big));
		n = r ? r : recv_from(fp, buf, sizeof(buf), &from, 2000);
		check(n == (ssize_t)sizeof(big) && !memcmp(buf, big, sizeof(big)),
		      "ChannelData (1400 bytes) reaches P intact");
	}
	sendto(fp, "over channel", 12, 0, (const struct sockaddr *)ls_turn_relayed(ta), sizeof(struct sockaddr_in));
	r = recv_from(fa, buf, sizeof(buf), &from, 2000);
	check(r > 4 && (buf[0] & 0xc0) == 0x40, "P's answer now comes as ChannelData");
	r = r > 0 ? ls_turn_parse_data(ta, buf, (size_t)r, &peer, &data, &dlen) : r;
	check(r == 0 && dlen == 12 && same(&peer, &lp), "... which names P and carries the payload");

	/* Two allocations talk relay to relay, as two nodes' fallback would. */
	r = ls_turn_allocate(&tb, fb, (struct sockaddr *)&server, slen, user, pass, 3000);
	check(r == 0, "B allocates");
	if (!r) {
		const struct sockaddr *ra = (const struct sockaddr *)ls_turn_relayed(ta);
		const struct sockaddr *rb = (const struct sockaddr *)ls_turn_relayed(tb);

		r = ls_turn_create_permission(ta, rb, sizeof(struct sockaddr_in), 3000);
		r = r ?: ls_turn_create_permission(tb, ra, sizeof(struct sockaddr_in), 3000);
		r = r ?: ls_turn_send(ta, rb, sizeof(struct sockaddr_in), "A to B", 6);
		r = r ?: turn_recv(tb, fb, buf, sizeof(buf), &peer, &data, &dlen, 2000);
		check(r == 0 && dlen == 6 && !memcmp(data, "A to B", 6) &&
			      same(&peer, (struct sockaddr_storage *)ls_turn_relayed(ta)),
		      "A -> B between two relayed addresses");
		r = ls_turn_send(tb, ra, sizeof(struct sockaddr_in), "B to A", 6);
		r = r ?: turn_recv(ta, fa, buf, sizeof(buf), &peer, &data, &dlen, 2000);
		check(r == 0 && dlen == 6 && !memcmp(data, "B to A", 6), "B -> A");
	}

	r = ls_turn_refresh(ta, 300, 3000);
	check(r == 0 && ls_turn_lifetime(ta) > 0, "Refresh (lifetime now %us)", ls_turn_lifetime(ta));
	r = ls_turn_refresh(ta, 0, 3000);
	check(r == 0, "Refresh with lifetime 0 is accepted (lifetime %us)", ls_turn_lifetime(ta));
	/* coturn finishes deleting an allocation a little after it answers (on its
	 * timer); then requests on it are refused (coturn 4.6 answers CreatePermission
	 * with 400, Refresh with 437). A CreatePermission probes that without touching
	 * the lifetime. */
	for (int i = 0; i < 10; i++) {
		usleep(500 * 1000);
		r = ls_turn_create_permission(ta, (struct sockaddr *)&lp, lplen, 3000);
		if (r)
			break;
	}
	check(r == -EPROTO && (ls_turn_last_error(ta) == 437 || ls_turn_last_error(ta) == 400),
	      "then the allocation is gone: CreatePermission gets error %d", ls_turn_last_error(ta));
out:
	ls_turn_free(ta, 0);
	ls_turn_free(tb, 1000);
	close(fa);
	close(fp);
	close(fb);
	close(fx);
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
