// SPDX-License-Identifier: MIT
/* libFuzzer: stream relay frames, both parsers: the relay's connection input path
 * (lsr_stream_input, through a socketpair) and the client's ls_relay_frame_parse.
 * When the first input byte is odd, a valid hello is sent first, so the fuzzer
 * reaches the frames of an authenticated connection; a second node is connected
 * so SEND and PROBE have somewhere to go.
 *   make fuzz BUILD=build/x && build/x/fuzz/relay_stream_fuzz -max_total_time=60 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"
#include "relay/relay.h"
#include "relayclient.h"

static struct lsr_server srv;
static struct ls_relay_identity me, peer;

static struct lsr_conn *connect_node(const struct ls_relay_identity *id, int *other)
{
	int sv[2];
	struct lsr_conn *c;
	uint8_t hello[LSR_FRAME_HDR_LEN + LSR_CLIENT_HELLO_LEN];
	struct lsr_client_hello *h = (void *)(hello + LSR_FRAME_HDR_LEN);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
		abort();
	c = lsr_conn_new(&srv, sv[0], NULL);
	if (!c)
		abort();
	*other = sv[1];
	if (!id)
		return c;
	memset(hello, 0, sizeof(hello));
	ls_relay_frame_hdr((struct lsr_frame_hdr *)hello, LSR_FRAME_CLIENT_HELLO, LSR_CLIENT_HELLO_LEN);
	h->magic = htobe32(LSR_STREAM_MAGIC);
	h->version = LSR_VERSION;
	memcpy(h->key, id->wg_key, LSR_KEY_LEN);
	ls_relay_proof_make(&h->proof, LSR_PURPOSE_STREAM, id->wg_key, ls_relay_now_unix_ms(), c->nonce, id);
	lsr_stream_input(&srv, c, hello, sizeof(hello));
	return c;
}

static void drain(int fd)
{
	uint8_t buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready, peer_fd;
	struct ls_relay_frame f;
	struct lsr_conn *c;
	size_t off = 0, consumed;
	uint8_t *buf;
	int other;

	if (!ready) {
		struct lsr_config cfg;

		ls_log_level = LS_LOG_ERR;
		ls_crypto_init();
		lsr_config_defaults(&cfg);
		cfg.control[0] = '\0';
	cfg.proof_rate = cfg.proof_rate_total = 0; /* let every proof reach the verifier */
		cfg.queue_limit = 65536;
		if (lsr_server_init(&srv, &cfg))
			abort();
		ls_relay_identity_random(&me);
		ls_relay_identity_random(&peer);
		connect_node(&peer, &peer_fd);
		ready = 1;
	}
	if (size < 1)
		return 0;
	buf = malloc(size - 1 ? size - 1 : 1);
	memcpy(buf, data + 1, size - 1);

	/* The client's parser. */
	while (ls_relay_frame_parse(buf + off, size - 1 - off, &f, &consumed) == 0)
		off += consumed;

	/* The relay's. */
	c = connect_node(data[0] & 1 ? &me : NULL, &other);
	lsr_stream_input(&srv, c, buf, size - 1);
	drain(other);
	drain(peer_fd);
	close(other);
	lsr_conn_destroy(&srv, c);
	/* Reap connections the input closed. */
	lsr_stream_tick(&srv, 0);
	free(buf);
	return 0;
}
