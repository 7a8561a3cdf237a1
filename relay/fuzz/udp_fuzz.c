// SPDX-License-Identifier: MIT
/* libFuzzer: the relay's UDP path (STUN answers, registrations, DATA forwarding)
 * on arbitrary datagrams. Two nodes are registered for real at start, so DATA
 * reaches the forwarding code. The first input byte picks the source address
 * (bits 0-1) and, with bit 2 set, puts a valid DATA header for one of the two
 * nodes (bit 3) in front of the rest, so the fuzzer starts inside the relay path.
 *   make fuzz BUILD=build/x && build/x/fuzz/relay_udp_fuzz -max_total_time=60 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"
#include "relay/relay.h"
#include "relayclient.h"

static struct lsr_server srv;
static struct lsr_listener lis;
static struct sockaddr_in srcs[3];
static struct ls_relay_identity a, b;

static void setup(void)
{
	struct lsr_config cfg;
	uint8_t reg[LSR_UDP_REGISTER_LEN];

	ls_log_level = LS_LOG_ERR;
	ls_crypto_init();
	lsr_config_defaults(&cfg);
	cfg.control[0] = '\0';
	cfg.proof_rate = cfg.proof_rate_total = 0; /* let every proof reach the verifier */
	if (lsr_server_init(&srv, &cfg))
		abort();
	/* A real socket the relay can send from; nobody reads the answers. */
	lis.io.fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	lis.io.kind = LSR_LISTEN_UDP;
	for (int i = 0; i < 3; i++) {
		srcs[i].sin_family = AF_INET;
		srcs[i].sin_port = htons(9); /* discard */
		srcs[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		srcs[i].sin_port = htons((uint16_t)(40000 + i));
	}
	ls_relay_identity_random(&a);
	ls_relay_identity_random(&b);
	ls_relay_udp_build_register(reg, sizeof(reg), &a, ls_relay_now_unix_ms());
	lsr_udp_datagram(&srv, &lis, reg, sizeof(reg), (struct sockaddr *)&srcs[0], sizeof(srcs[0]), NULL);
	ls_relay_udp_build_register(reg, sizeof(reg), &b, ls_relay_now_unix_ms());
	lsr_udp_datagram(&srv, &lis, reg, sizeof(reg), (struct sockaddr *)&srcs[1], sizeof(srcs[1]), NULL);
	if (srv.udp_by_key.count != 2)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct ls_relay_udp_msg m;
	uint8_t *buf;

	if (!ready) {
		setup();
		ready = 1;
	}
	if (size < 1)
		return 0;
	if (data[0] & 4) {
		size_t n = LSR_UDP_HDR_LEN + size - 1;

		buf = malloc(n);
		ls_relay_udp_hdr((struct lsr_udp_hdr *)buf, LSR_UDP_DATA, data[0] & 8 ? a.wg_key : b.wg_key);
		memcpy(buf + LSR_UDP_HDR_LEN, data + 1, size - 1);
		(void)ls_relay_udp_parse(buf, n, &m);
		lsr_udp_datagram(&srv, &lis, buf, n, (struct sockaddr *)&srcs[(data[0] & 3) % 3],
				 sizeof(srcs[0]), NULL);
		free(buf);
		return 0;
	}
	buf = malloc(size - 1 ? size - 1 : 1);
	memcpy(buf, data + 1, size - 1);
	(void)ls_relay_udp_parse(buf, size - 1, &m);
	lsr_udp_datagram(&srv, &lis, buf, size - 1, (struct sockaddr *)&srcs[(data[0] & 3) % 3],
			 sizeof(srcs[0]), NULL);
	free(buf);
	return 0;
}
