/* SPDX-License-Identifier: MIT */
/* STUN (RFC 8489), Binding method only: the client side (request, response parse,
 * a query helper on a caller-owned socket) and the server side (request parse,
 * response build) shared by lightscale-relay and the agent. Wire constants are in
 * include/lightscale/wire.h. Every parser checks lengths before it reads. */
#ifndef LS_STUN_H
#define LS_STUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lightscale/wire.h"

/* Does this datagram look like STUN: at least a header, the two top bits zero,
 * the magic cookie, a length that is a multiple of 4 and matches the datagram?
 * Cheap enough to demultiplex STUN from WireGuard or relay traffic on one port. */
bool ls_stun_is_stun(const void *buf, size_t len);

/* CRC-32 (ISO 3309, as zlib's crc32) of buf, as the FINGERPRINT attribute uses it. */
uint32_t ls_stun_crc32(const void *buf, size_t len);

/* Writes a Binding request with a fresh random transaction id (returned in txid)
 * and a FINGERPRINT into buf. Returns its length, or -ENOSPC when size is too small. */
int ls_stun_build_request(uint8_t *buf, size_t size, uint8_t txid[LS_STUN_TXID_LEN]);

/* Parses a Binding success response. When txid is not NULL the response's
 * transaction id must equal it. mapped gets XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS
 * when only that is present; an IPv4 address is returned as AF_INET.
 * Returns 0, or
 *   -EBADMSG  not STUN, truncated, bad attribute lengths, bad FINGERPRINT
 *   -ESRCH    another transaction
 *   -EPROTO   a Binding error response, or not a Binding response at all
 *   -ENOENT   no (usable) mapped address attribute */
int ls_stun_parse_response(const uint8_t *buf, size_t len, const uint8_t *txid,
			   struct sockaddr_storage *mapped);

/* Server side: is this a well-formed Binding request? Copies its transaction id.
 * Returns 0, -EBADMSG (malformed, bad FINGERPRINT) or -EOPNOTSUPP (well-formed
 * STUN but not a Binding request, e.g. an indication or another method).
 * Attributes are checked for framing only; none is required or interpreted. */
int ls_stun_parse_request(const uint8_t *buf, size_t len, uint8_t txid[LS_STUN_TXID_LEN]);

/* Server side: a Binding success response carrying XOR-MAPPED-ADDRESS for src
 * (an IPv4-mapped IPv6 address is answered as IPv4) and FINGERPRINT. Returns the
 * length, -ENOSPC, or -EAFNOSUPPORT. */
int ls_stun_build_response(uint8_t *buf, size_t size, const uint8_t txid[LS_STUN_TXID_LEN],
			   const struct sockaddr *src);

/* (XOR-)address attribute values, shared with TURN (lib/turnclient.c). msg is the
 * message's 20-byte header (cookie and transaction id form the mask).
 * decode: 0 or -EBADMSG; encode: the value's length, -ENOSPC or -EAFNOSUPPORT. */
int ls_stun_decode_xor_addr(const uint8_t *val, size_t len, const uint8_t *msg,
			    struct sockaddr_storage *out);
int ls_stun_encode_xor_addr(uint8_t *out, size_t size, const uint8_t *msg, const struct sockaddr *sa);

/* Client helper on a socket the caller owns (blocking or not; e.g. the WireGuard
 * port before the engine reads it): sends a Binding request to server and waits
 * up to timeout_ms for the answer, retransmitting after 250 ms, 500 ms, 1 s, ...
 * Datagrams that are not the answer (other sources, other transactions, non-STUN)
 * are read and discarded, so nothing else may read fd meanwhile.
 * Returns 0 with *mapped set, -ETIMEDOUT, -EPROTO (error response) or -errno. */
int ls_stun_query(int fd, const struct sockaddr *server, socklen_t server_len, int timeout_ms,
		  struct sockaddr_storage *mapped);

#endif
