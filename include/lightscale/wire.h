/* SPDX-License-Identifier: MIT */
/*
 * Lightscale wire formats for NAT traversal: STUN constants (RFC 8489), the UDP
 * relay datagrams and the stream relay frames of lightscale-relay.
 *
 * Every multi-byte field is big-endian (network order) and typed __be16/__be32/
 * __be64; every struct is packed and its size is fixed by an enum below. A
 * receiver checks a message's length against LSR_*_LEN for its type (exact, or a
 * minimum and maximum for messages that carry a payload) before it reads any
 * field: see lsr_udp_len_ok() and lsr_frame_len_ok().
 *
 * Proof of a key (UDP registration, stream hello). A client proves that it speaks
 * for a WireGuard public key by signing with an Ed25519 key (the node's machine
 * key) the 92 bytes
 *
 *     "lightscale-relay-v1" (19 bytes, no NUL) || purpose (1 byte, LSR_PURPOSE_*)
 *     || WireGuard public key (32) || timestamp (8, be64 Unix milliseconds)
 *     || nonce (32: the stream server's hello nonce, all zero for UDP)
 *
 * The relay verifies the signature and then asks a pluggable authoriser whether
 * that Ed25519 key may speak for that WireGuard key (relay/auth.c). While a key
 * is registered or connected, only the Ed25519 key that proved it may refresh or
 * replace it.
 */
#ifndef LIGHTSCALE_WIRE_H
#define LIGHTSCALE_WIRE_H

#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define __lsr_packed __attribute__((packed))

/* ------------------------------------------------------------------------ STUN */

enum {
	LS_STUN_MAGIC_COOKIE = 0x2112A442,
	LS_STUN_FINGERPRINT_XOR = 0x5354554e,
	LS_STUN_HDR_LEN = 20,
	LS_STUN_TXID_LEN = 12,
	LS_STUN_ATTR_HDR_LEN = 4,
	LS_STUN_MAX_MSG_LEN = 1280, /* we never send or accept more; RFC 8489 sec 6.1 */

	/* Message types (method | class bits). */
	LS_STUN_BINDING_REQUEST = 0x0001,
	LS_STUN_BINDING_INDICATION = 0x0011,
	LS_STUN_BINDING_SUCCESS = 0x0101,
	LS_STUN_BINDING_ERROR = 0x0111,

	/* Attributes. */
	LS_STUN_ATTR_MAPPED_ADDRESS = 0x0001,
	LS_STUN_ATTR_USERNAME = 0x0006,
	LS_STUN_ATTR_MESSAGE_INTEGRITY = 0x0008,
	LS_STUN_ATTR_ERROR_CODE = 0x0009,
	LS_STUN_ATTR_MESSAGE_INTEGRITY_SHA256 = 0x001C,
	LS_STUN_ATTR_XOR_MAPPED_ADDRESS = 0x0020,
	LS_STUN_ATTR_SOFTWARE = 0x8022,
	LS_STUN_ATTR_FINGERPRINT = 0x8028,

	LS_STUN_FAMILY_IPV4 = 0x01,
	LS_STUN_FAMILY_IPV6 = 0x02,
	LS_STUN_ADDR4_LEN = 8,  /* reserved, family, port, 4-byte address */
	LS_STUN_ADDR6_LEN = 20, /* reserved, family, port, 16-byte address */
	LS_STUN_FINGERPRINT_LEN = 4,
};

struct ls_stun_hdr {
	__be16 type;
	__be16 len; /* bytes after this header; a multiple of 4 */
	__be32 cookie;
	uint8_t txid[LS_STUN_TXID_LEN];
} __lsr_packed;

struct ls_stun_attr_hdr {
	__be16 type;
	__be16 len; /* value bytes, before padding to a multiple of 4 */
} __lsr_packed;

/* ------------------------------------------------------------ common pieces */

enum {
	LSR_VERSION = 1,
	LSR_KEY_LEN = 32,     /* WireGuard (X25519) public key */
	LSR_ED_PK_LEN = 32,   /* Ed25519 public key */
	LSR_SIG_LEN = 64,     /* Ed25519 signature */
	LSR_NONCE_LEN = 32,
	LSR_MAX_PAYLOAD = 65535, /* largest relayed payload (a WireGuard packet) */
	LSR_MAX_PROBE = 256,     /* largest opaque probe payload */
	LSR_MAX_REASON_TEXT = 128,

	LSR_PURPOSE_UDP = 1,
	LSR_PURPOSE_STREAM = 2,
};

#define LSR_SIGN_CONTEXT "lightscale-relay-v1"
enum { LSR_SIGN_CONTEXT_LEN = 19 };

/* The bytes an Ed25519 key signs (see the top of this file). */
struct lsr_signed {
	char context[LSR_SIGN_CONTEXT_LEN];
	uint8_t purpose;
	uint8_t key[LSR_KEY_LEN];
	__be64 ts_ms;
	uint8_t nonce[LSR_NONCE_LEN];
} __lsr_packed;

/* The proof carried by a UDP registration and a stream hello. */
struct lsr_proof {
	uint8_t ed_pk[LSR_ED_PK_LEN];
	__be64 ts_ms; /* Unix time in milliseconds */
	uint8_t sig[LSR_SIG_LEN];
} __lsr_packed;

/* A transport address as the relay saw it. IPv4 in the first 4 bytes of addr;
 * an IPv4-mapped IPv6 source is reported as IPv4. */
struct lsr_addr {
	uint8_t family; /* 4 or 6 */
	uint8_t reserved;
	__be16 port;
	uint8_t addr[16];
} __lsr_packed;

enum {
	LSR_SIGNED_LEN = sizeof(struct lsr_signed), /* 92 */
	LSR_PROOF_LEN = sizeof(struct lsr_proof),   /* 104 */
	LSR_ADDR_LEN = sizeof(struct lsr_addr),     /* 20 */
};

/* ---------------------------------------------------------------- UDP relay
 *
 * One UDP socket, "best effort, not TURN". Every datagram starts with
 * struct lsr_udp_hdr; the first byte (0x4C, 'L') is neither a WireGuard message
 * type (1..4) nor a STUN first byte (top two bits zero), so all three can share
 * a port.
 *
 *   client -> relay  REGISTER   key = own WireGuard key, body = lsr_proof
 *   relay -> client  REGISTERED key = own key, body = lsr_udp_registered
 *   relay -> client  REJECTED   key = own key, body = lsr_udp_rejected
 *   client -> relay  DATA       key = destination key, body = payload
 *   relay -> client  DATA       key = source key, body = payload
 *
 * A registration lives for `lifetime_s` unless refreshed by another REGISTER
 * (clients refresh every lifetime/3). DATA is accepted only from a registered
 * address: the relay rewrites the key to the sender's registered key.
 */
enum {
	LSR_UDP_MAGIC = 0x4C535255, /* "LSRU" */

	LSR_UDP_REGISTER = 1,
	LSR_UDP_REGISTERED = 2,
	LSR_UDP_REJECTED = 3,
	LSR_UDP_DATA = 4,
};

struct lsr_udp_hdr {
	__be32 magic;
	uint8_t version;
	uint8_t type;
	__be16 reserved; /* zero */
	uint8_t key[LSR_KEY_LEN];
} __lsr_packed;

struct lsr_udp_register {
	struct lsr_udp_hdr hdr;
	struct lsr_proof proof;
} __lsr_packed;

struct lsr_udp_registered {
	struct lsr_udp_hdr hdr;
	__be64 ts_ms;      /* echo of the registration's timestamp */
	__be32 lifetime_s;
	__be32 reserved;
	struct lsr_addr observed; /* the client's address as the relay sees it */
} __lsr_packed;

/* Reasons, for REJECTED and for the stream's CLOSE; numbered once, never reused. */
enum lsr_reason {
	LSR_REASON_NONE = 0,
	LSR_REASON_BAD_SIGNATURE = 1,
	LSR_REASON_STALE = 2,       /* timestamp outside the allowed clock skew */
	LSR_REASON_REPLAY = 3,      /* timestamp not newer than the last accepted one */
	LSR_REASON_DENIED = 4,      /* the authoriser refused the key pair */
	LSR_REASON_FULL = 5,        /* too many registrations / connections */
	LSR_REASON_MALFORMED = 6,   /* a frame failed its length or field checks */
	LSR_REASON_REPLACED = 7,    /* the same key connected again */
	LSR_REASON_VERSION = 8,     /* unsupported protocol version */
	LSR_REASON_PROTOCOL = 9,    /* a valid frame at the wrong time */
	LSR_REASON_TIMEOUT = 10,    /* no hello, or idle too long */
	LSR_REASON_SHUTDOWN = 11,
	LSR_REASON_RATE_LIMITED = 12, /* too many proofs from this address; try later */
	LSR_REASON_MAX,
};

struct lsr_udp_rejected {
	struct lsr_udp_hdr hdr;
	__be64 ts_ms; /* echo */
	__be32 reason; /* enum lsr_reason */
} __lsr_packed;

enum {
	LSR_UDP_HDR_LEN = sizeof(struct lsr_udp_hdr),               /* 40 */
	LSR_UDP_REGISTER_LEN = sizeof(struct lsr_udp_register),     /* 144, exact */
	LSR_UDP_REGISTERED_LEN = sizeof(struct lsr_udp_registered), /* 76, exact */
	LSR_UDP_REJECTED_LEN = sizeof(struct lsr_udp_rejected),     /* 52, exact */
	LSR_UDP_DATA_MIN_LEN = LSR_UDP_HDR_LEN + 1,
	LSR_UDP_DATA_MAX_LEN = LSR_UDP_HDR_LEN + LSR_MAX_PAYLOAD,
};

/* ------------------------------------------------------------- stream relay
 *
 * A byte stream (TCP now, TLS later) carrying frames: an 8-byte header, then
 * `len` body bytes. The server speaks first:
 *
 *   server: SERVER_HELLO {magic, version, nonce}
 *   client: CLIENT_HELLO {magic, version, key, proof signed over the nonce}
 *   server: SERVER_ACCEPT {keepalive, max payload, observed address}
 *           or CLOSE {reason} and the connection ends
 *   then either side: SEND/RECV (relayed packets), PROBE/PROBE_RECV (opaque
 *   signalling, e.g. "send me UDP now"), PEER_GONE, PING/PONG, CLOSE.
 *
 * Clients send SEND and PROBE naming the destination; the relay delivers RECV
 * and PROBE_RECV naming the source. A destination that is not connected gets
 * a PEER_GONE back (and packets to it are counted and dropped). A second
 * connection with the same key replaces the first, which gets CLOSE(REPLACED).
 * Any frame whose length is wrong for its type, or an unknown type, closes that
 * connection with CLOSE(MALFORMED).
 */
enum {
	LSR_STREAM_MAGIC = 0x4C535253, /* "LSRS" */

	LSR_FRAME_SERVER_HELLO = 1,
	LSR_FRAME_CLIENT_HELLO = 2,
	LSR_FRAME_SERVER_ACCEPT = 3,
	LSR_FRAME_SEND = 4,
	LSR_FRAME_RECV = 5,
	LSR_FRAME_PROBE = 6,
	LSR_FRAME_PROBE_RECV = 7,
	LSR_FRAME_PEER_GONE = 8,
	LSR_FRAME_PING = 9,
	LSR_FRAME_PONG = 10,
	LSR_FRAME_CLOSE = 11,
	LSR_FRAME_TYPE_MAX,
};

struct lsr_frame_hdr {
	uint8_t type;
	uint8_t reserved[3]; /* zero */
	__be32 len;          /* body bytes after this header */
} __lsr_packed;

struct lsr_server_hello {
	__be32 magic;
	uint8_t version;
	uint8_t reserved[3];
	uint8_t nonce[LSR_NONCE_LEN];
} __lsr_packed;

struct lsr_client_hello {
	__be32 magic;
	uint8_t version;
	uint8_t reserved[3];
	uint8_t key[LSR_KEY_LEN];
	struct lsr_proof proof; /* purpose LSR_PURPOSE_STREAM, nonce from the server */
} __lsr_packed;

struct lsr_server_accept {
	__be32 keepalive_s; /* ping at least this often */
	__be32 max_payload;
	struct lsr_addr observed;
} __lsr_packed;

/* SEND, RECV, PROBE, PROBE_RECV: a key, then the payload. */
struct lsr_keyed {
	uint8_t key[LSR_KEY_LEN];
} __lsr_packed;

struct lsr_peer_gone {
	uint8_t key[LSR_KEY_LEN];
	__be32 reason; /* LSR_PEER_GONE_* */
} __lsr_packed;

enum {
	LSR_PEER_GONE_UNKNOWN = 1,   /* not connected to this relay */
	LSR_PEER_GONE_DISCONNECTED = 2,
};

struct lsr_ping {
	uint8_t data[8]; /* echoed by PONG */
} __lsr_packed;

struct lsr_close {
	__be32 reason; /* enum lsr_reason; then up to LSR_MAX_REASON_TEXT bytes of text */
} __lsr_packed;

enum {
	LSR_FRAME_HDR_LEN = sizeof(struct lsr_frame_hdr),               /* 8 */
	LSR_SERVER_HELLO_LEN = sizeof(struct lsr_server_hello),         /* 40, exact */
	LSR_CLIENT_HELLO_LEN = sizeof(struct lsr_client_hello),         /* 144, exact */
	LSR_SERVER_ACCEPT_LEN = sizeof(struct lsr_server_accept),       /* 28, exact */
	LSR_SEND_MIN_LEN = LSR_KEY_LEN + 1,                             /* also RECV */
	LSR_SEND_MAX_LEN = LSR_KEY_LEN + LSR_MAX_PAYLOAD,
	LSR_PROBE_MIN_LEN = LSR_KEY_LEN,                                /* also PROBE_RECV */
	LSR_PROBE_MAX_LEN = LSR_KEY_LEN + LSR_MAX_PROBE,
	LSR_PEER_GONE_LEN = sizeof(struct lsr_peer_gone),               /* 36, exact */
	LSR_PING_LEN = sizeof(struct lsr_ping),                         /* 8, exact; also PONG */
	LSR_CLOSE_MIN_LEN = sizeof(struct lsr_close),
	LSR_CLOSE_MAX_LEN = sizeof(struct lsr_close) + LSR_MAX_REASON_TEXT,
	LSR_FRAME_MAX_BODY = LSR_SEND_MAX_LEN,
};

/* Is len a valid body length for a frame of this type? Unknown types are not. */
static inline bool lsr_frame_len_ok(uint8_t type, uint32_t len)
{
	switch (type) {
	case LSR_FRAME_SERVER_HELLO:
		return len == LSR_SERVER_HELLO_LEN;
	case LSR_FRAME_CLIENT_HELLO:
		return len == LSR_CLIENT_HELLO_LEN;
	case LSR_FRAME_SERVER_ACCEPT:
		return len == LSR_SERVER_ACCEPT_LEN;
	case LSR_FRAME_SEND:
	case LSR_FRAME_RECV:
		return len >= LSR_SEND_MIN_LEN && len <= LSR_SEND_MAX_LEN;
	case LSR_FRAME_PROBE:
	case LSR_FRAME_PROBE_RECV:
		return len >= LSR_PROBE_MIN_LEN && len <= LSR_PROBE_MAX_LEN;
	case LSR_FRAME_PEER_GONE:
		return len == LSR_PEER_GONE_LEN;
	case LSR_FRAME_PING:
	case LSR_FRAME_PONG:
		return len == LSR_PING_LEN;
	case LSR_FRAME_CLOSE:
		return len >= LSR_CLOSE_MIN_LEN && len <= LSR_CLOSE_MAX_LEN;
	default:
		return false;
	}
}

/* Is len a valid total length (header included) for a UDP relay datagram of this type? */
static inline bool lsr_udp_len_ok(uint8_t type, size_t len)
{
	switch (type) {
	case LSR_UDP_REGISTER:
		return len == LSR_UDP_REGISTER_LEN;
	case LSR_UDP_REGISTERED:
		return len == LSR_UDP_REGISTERED_LEN;
	case LSR_UDP_REJECTED:
		return len == LSR_UDP_REJECTED_LEN;
	case LSR_UDP_DATA:
		return len >= LSR_UDP_DATA_MIN_LEN && len <= LSR_UDP_DATA_MAX_LEN;
	default:
		return false;
	}
}

/* Compile-time checks that the sizes above are what the comments promise. */
_Static_assert(sizeof(struct ls_stun_hdr) == LS_STUN_HDR_LEN, "stun header");
_Static_assert(LSR_SIGNED_LEN == 92, "signed bytes");
_Static_assert(LSR_PROOF_LEN == 104, "proof");
_Static_assert(LSR_UDP_HDR_LEN == 40, "udp header");
_Static_assert(LSR_UDP_REGISTER_LEN == 144, "udp register");
_Static_assert(LSR_UDP_REGISTERED_LEN == 76, "udp registered");
_Static_assert(LSR_UDP_REJECTED_LEN == 52, "udp rejected");
_Static_assert(LSR_FRAME_HDR_LEN == 8, "frame header");
_Static_assert(LSR_CLIENT_HELLO_LEN == 144, "client hello");
_Static_assert(LSR_SERVER_ACCEPT_LEN == 28, "server accept");

#endif
