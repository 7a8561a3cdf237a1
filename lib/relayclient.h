/* SPDX-License-Identifier: MIT */
/* Client side of lightscale-relay (wire formats in include/lightscale/wire.h):
 *  - key proofs (Ed25519 over the WireGuard key), shared with the relay's verifier;
 *  - the UDP relay: datagram codec, registration and send helpers on a caller-owned
 *    socket (so the agent can use the WireGuard port or a socket of its own);
 *  - the stream relay: frame codec and a small client (connect + hello, send,
 *    probe, ping, receive) over TCP.
 * Functions return 0 (or a length) or -errno. */
#ifndef LS_RELAYCLIENT_H
#define LS_RELAYCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lightscale/wire.h"

/* Who a client is: its WireGuard public key and the Ed25519 key that vouches for it. */
struct ls_relay_identity {
	uint8_t wg_key[LSR_KEY_LEN];
	uint8_t ed_pk[LSR_ED_PK_LEN];
	uint8_t ed_sk[64];
};

/* Random WireGuard and Ed25519 keys (tests, tools). */
void ls_relay_identity_random(struct ls_relay_identity *id);

/* ---- proofs */

void ls_relay_proof_make(struct lsr_proof *p, uint8_t purpose, const uint8_t key[LSR_KEY_LEN],
			 uint64_t ts_ms, const uint8_t *nonce, const struct ls_relay_identity *id);
/* Checks the signature only (not the time, not who may use the key). nonce may be
 * NULL (all zero). Returns 0 or -EPERM. */
int ls_relay_proof_verify(const struct lsr_proof *p, uint8_t purpose, const uint8_t key[LSR_KEY_LEN],
			  const uint8_t *nonce);
uint64_t ls_relay_now_unix_ms(void);

/* ---- addresses */

void ls_relay_addr_from_sockaddr(struct lsr_addr *a, const struct sockaddr *sa);
/* 0 or -EAFNOSUPPORT. */
int ls_relay_addr_to_sockaddr(const struct lsr_addr *a, struct sockaddr_storage *ss, socklen_t *len);

/* ---- UDP relay */

struct ls_relay_udp_msg {
	uint8_t type;                 /* LSR_UDP_* */
	uint8_t key[LSR_KEY_LEN];     /* see wire.h: own, destination or source key */
	const struct lsr_proof *proof; /* REGISTER: points into the datagram */
	const uint8_t *payload;       /* DATA: points into the datagram */
	size_t payload_len;
	uint64_t ts_ms;               /* REGISTERED, REJECTED: echoed timestamp */
	uint32_t lifetime_s;          /* REGISTERED */
	uint32_t reason;              /* REJECTED: enum lsr_reason */
	struct sockaddr_storage observed; /* REGISTERED */
};

/* Magic and version match: a relay datagram (to tell it from WireGuard or STUN). */
bool ls_relay_udp_is_relay(const void *buf, size_t len);
/* Length-checks and decodes any relay datagram. 0 or -EBADMSG. */
int ls_relay_udp_parse(const uint8_t *buf, size_t len, struct ls_relay_udp_msg *m);

int ls_relay_udp_build_register(uint8_t *buf, size_t size, const struct ls_relay_identity *id,
				uint64_t ts_ms);
void ls_relay_udp_hdr(struct lsr_udp_hdr *h, uint8_t type, const uint8_t key[LSR_KEY_LEN]);

/* Sends REGISTER to the relay from fd and waits up to timeout_ms for the answer
 * (retrying every 500 ms). Other datagrams that arrive meanwhile are discarded.
 * Returns 0 with *reply (REGISTERED), -EACCES with reply->reason (REJECTED),
 * -ETIMEDOUT or -errno. */
int ls_relay_udp_register(int fd, const struct sockaddr *relay, socklen_t relay_len,
			  const struct ls_relay_identity *id, int timeout_ms,
			  struct ls_relay_udp_msg *reply);
/* One DATA datagram to dst through the relay. 0 or -errno (-EMSGSIZE when too big). */
int ls_relay_udp_send(int fd, const struct sockaddr *relay, socklen_t relay_len,
		      const uint8_t dst[LSR_KEY_LEN], const void *payload, size_t len);

/* ---- stream relay */

struct ls_relay_frame {
	uint8_t type;               /* LSR_FRAME_* */
	uint8_t key[LSR_KEY_LEN];   /* SEND/RECV/PROBE/PROBE_RECV/PEER_GONE/CLIENT_HELLO */
	const uint8_t *payload;     /* SEND/RECV/PROBE/PROBE_RECV payload, PING/PONG data,
				     * CLOSE text; points into the caller's buffer */
	size_t payload_len;
	uint32_t reason;            /* CLOSE, PEER_GONE */
	const void *body;           /* the whole body, for the fixed-layout frames */
	size_t body_len;
};

/* Decodes one frame from buf. Returns 0 with *consumed set, -EAGAIN when buf holds
 * less than a whole frame, -EBADMSG for an unknown type, a length wrong for its
 * type, non-zero reserved bytes or a bad magic/version in a hello. */
int ls_relay_frame_parse(const uint8_t *buf, size_t len, struct ls_relay_frame *f, size_t *consumed);
/* Writes a frame header for a body of len bytes. */
void ls_relay_frame_hdr(struct lsr_frame_hdr *h, uint8_t type, uint32_t len);

struct ls_relay_stream;

/* Connects, reads the server hello, proves id, waits for SERVER_ACCEPT. Returns 0,
 * -EACCES (the relay sent CLOSE; *reason set when reason is not NULL), -ETIMEDOUT,
 * -EBADMSG, -ECONNRESET or -errno from connect. */
int ls_relay_stream_connect(struct ls_relay_stream **out, const struct sockaddr *relay,
			    socklen_t relay_len, const struct ls_relay_identity *id, int timeout_ms,
			    uint32_t *reason);
/* The same without blocking, for an event loop: start() begins the TCP connect;
 * whenever ls_relay_stream_fd() is ready for ls_relay_stream_events(), call
 * step(), which returns -EINPROGRESS until the relay accepted (0) or refused
 * (-EACCES with *reason) or something failed (-errno). The identity is copied
 * until the hello is signed, then wiped. */
int ls_relay_stream_start(struct ls_relay_stream **out, const struct sockaddr *relay,
			  socklen_t relay_len, const struct ls_relay_identity *id);
int ls_relay_stream_step(struct ls_relay_stream *rs, uint32_t *reason);
short ls_relay_stream_events(const struct ls_relay_stream *rs); /* POLLIN, POLLOUT */

/* Wraps a connected stream socket past its hello (another transport's handshake
 * done elsewhere; a socketpair in tests). Makes fd non-blocking; owns it after. */
int ls_relay_stream_adopt(struct ls_relay_stream **out, int fd);
void ls_relay_stream_free(struct ls_relay_stream *rs);
int ls_relay_stream_fd(const struct ls_relay_stream *rs);
uint32_t ls_relay_stream_keepalive(const struct ls_relay_stream *rs);
const struct sockaddr_storage *ls_relay_stream_observed(const struct ls_relay_stream *rs);

/* Sending, blocking or not. A frame is written whole or not at all: when the
 * socket takes only part of it before timeout_ms (0: do not wait), the rest is
 * kept and written first by the next send or ls_relay_stream_flush(); the call
 * returns 0. When an earlier frame's rest still cannot go out, nothing is written
 * and the call returns -EAGAIN (wait for POLLOUT, flush, retry). Else -errno. */
int ls_relay_stream_send(struct ls_relay_stream *rs, const uint8_t dst[LSR_KEY_LEN],
			 const void *payload, size_t len, int timeout_ms);
int ls_relay_stream_probe(struct ls_relay_stream *rs, const uint8_t dst[LSR_KEY_LEN],
			  const void *data, size_t len, int timeout_ms);
int ls_relay_stream_ping(struct ls_relay_stream *rs, const uint8_t data[8], int timeout_ms);
/* Raw bytes, as one unit (tests use it to send malformed frames). */
int ls_relay_stream_write(struct ls_relay_stream *rs, const void *buf, size_t len, int timeout_ms);
/* Writes a kept frame tail: 0 when nothing is left, -EAGAIN, -errno. */
int ls_relay_stream_flush(struct ls_relay_stream *rs, int timeout_ms);
/* Is a frame tail waiting (poll the fd for POLLOUT, then flush)? */
bool ls_relay_stream_want_write(const struct ls_relay_stream *rs);

/* Next frame from the relay, waiting up to timeout_ms (0: only what is buffered or
 * readable now). PINGs from the relay are answered and also returned. The frame
 * points into the stream's buffer until the next call. Returns 0, -ETIMEDOUT,
 * -ECONNRESET (the relay closed), -EBADMSG or -errno. */
int ls_relay_stream_recv(struct ls_relay_stream *rs, struct ls_relay_frame *f, int timeout_ms);

const char *ls_relay_reason_str(uint32_t reason);

#endif
