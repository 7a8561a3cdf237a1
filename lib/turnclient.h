/* SPDX-License-Identifier: MIT */
/* A TURN client (RFC 8656) over UDP with long-term credentials (RFC 8489 sec. 9.2):
 * Allocate, Refresh, CreatePermission, ChannelBind, Send indications and
 * ChannelData, on a UDP socket the caller owns (e.g. the agent's relay socket).
 *
 *     struct ls_turn *t;
 *     ls_turn_allocate(&t, fd, server, len, "user", "pass", 3000);
 *     ls_turn_create_permission(t, peer, plen, 3000);   // or ls_turn_channel_bind
 *     ls_turn_send(t, peer, plen, data, n);              // channel if bound, else Send
 *     n = recv(fd, buf, ...); ls_turn_parse_data(t, buf, n, &from, &p, &plen);
 *     ls_turn_free(t, 3000);                            // Refresh(lifetime 0), then free
 *
 * Requests wait for their answer (retransmitting after 250 ms, 500 ms, ...); any
 * other datagram that arrives on fd meanwhile is discarded, so the caller does
 * the control steps before it starts reading data. A 401 (or 438 stale nonce) is
 * answered once with credentials (or the new nonce). Authenticated answers must
 * carry a valid MESSAGE-INTEGRITY. Returns 0 or -errno:
 *   -ETIMEDOUT no answer; -EACCES credentials refused (401/441);
 *   -EPROTO another error response (ls_turn_last_error() gives the code);
 *   -EBADMSG a malformed or unauthenticated answer.
 */
#ifndef LS_TURNCLIENT_H
#define LS_TURNCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum {
	LS_TURN_ALLOCATE = 0x003,
	LS_TURN_REFRESH = 0x004,
	LS_TURN_SEND = 0x006,
	LS_TURN_DATA = 0x007,
	LS_TURN_CREATE_PERMISSION = 0x008,
	LS_TURN_CHANNEL_BIND = 0x009,

	LS_TURN_ATTR_CHANNEL_NUMBER = 0x000C,
	LS_TURN_ATTR_LIFETIME = 0x000D,
	LS_TURN_ATTR_XOR_PEER_ADDRESS = 0x0012,
	LS_TURN_ATTR_DATA = 0x0013,
	LS_TURN_ATTR_REALM = 0x0014,
	LS_TURN_ATTR_NONCE = 0x0015,
	LS_TURN_ATTR_XOR_RELAYED_ADDRESS = 0x0016,
	LS_TURN_ATTR_REQUESTED_TRANSPORT = 0x0019,

	LS_TURN_CHANNEL_MIN = 0x4000,
	LS_TURN_CHANNEL_MAX = 0x4FFF,
	LS_TURN_CHANNEL_HDR_LEN = 4,
};

struct ls_turn;

int ls_turn_allocate(struct ls_turn **out, int fd, const struct sockaddr *server, socklen_t server_len,
		     const char *username, const char *password, int timeout_ms);
/* Refresh(0) to release the allocation (best effort, when timeout_ms > 0), then free. */
void ls_turn_free(struct ls_turn *t, int timeout_ms);

const struct sockaddr_storage *ls_turn_relayed(const struct ls_turn *t); /* our address at the server */
const struct sockaddr_storage *ls_turn_mapped(const struct ls_turn *t);  /* as the server sees us */
uint32_t ls_turn_lifetime(const struct ls_turn *t);
int ls_turn_last_error(const struct ls_turn *t); /* the last error response's code, or 0 */

/* Refresh the allocation for lifetime_s seconds (0 deletes it). */
int ls_turn_refresh(struct ls_turn *t, uint32_t lifetime_s, int timeout_ms);
int ls_turn_create_permission(struct ls_turn *t, const struct sockaddr *peer, socklen_t peer_len,
			      int timeout_ms);
/* Binds the next free channel to peer (which also installs a permission). */
int ls_turn_channel_bind(struct ls_turn *t, const struct sockaddr *peer, socklen_t peer_len,
			 uint16_t *channel, int timeout_ms);

/* Sends data to peer through the relay: as ChannelData when a channel is bound to
 * peer, else as a Send indication. 0, -EMSGSIZE or -errno. */
int ls_turn_send(struct ls_turn *t, const struct sockaddr *peer, socklen_t peer_len, const void *data,
		 size_t len);

/* Recognises a datagram from the server carrying peer data: a Data indication or
 * ChannelData on a bound channel (t may be NULL: no channels). Returns 0 with *peer and *data (pointing into
 * buf), -ENOENT when it is neither, -EBADMSG when it is malformed. */
int ls_turn_parse_data(const struct ls_turn *t, const uint8_t *buf, size_t len,
		       struct sockaddr_storage *peer, const uint8_t **data, size_t *data_len);

/* Whether two socket addresses are one endpoint: the same family (IPv4 or IPv6), address
 * and port (an IPv6 scope id is not compared; other families are never equal). Used here to
 * match what arrives with the server and a channel's peer, and by the relay proxy. (A
 * helper for any socket code: lib/util.h would be its natural home.) */
bool ls_sockaddr_equal(const struct sockaddr *a, const struct sockaddr *b);

#endif
