/* SPDX-License-Identifier: MIT */
/*
 * Relay fallback data path (DESIGN.md, "NAT traversal and relays"). A relayed
 * peer's WireGuard endpoint is a loopback address of its own on the one UDP port of
 * this module, 127.77.X.Y:N (the pool LS_RPROXY_LO_NET/16; every peer the same N).
 * One socket serves them all: bound to any address and port N, SO_BINDTODEVICE "lo"
 * (only this host's own traffic reaches it), IP_PKTINFO on. The destination address
 * of what WireGuard sends there names the peer (an index into the pool, no search);
 * it is taken only from WireGuard's port on a loopback address, and carried to the
 * peer through the best working relay. What arrives from a relay for that peer's
 * key is sent to 127.0.0.1:wg_port from the peer's address (IP_PKTINFO
 * ipi_spec_dst), so WireGuard sees it come from the peer's endpoint. Neither engine
 * (kernel, userspace) needs to know. One descriptor however many peers are relayed;
 * a leaving peer's address is reused.
 *
 *   WireGuard --udp--> 127.77.X.Y:N (peer P) --+--> UDP relay  (registered, P heard on it)
 *   WireGuard <--udp-- 127.77.X.Y:N        <---+--> stream relay (TCP; list with failover)
 *
 * Paths in order of preference: UDP relay (once registered and the peer was
 * heard through it in the last LS_RPROXY_UDP_CONFIRM_MS), TURN (the first
 * server of the list, UDP, long-term credentials; once the peer was heard
 * through it), the stream relay, the UDP relay unconfirmed. TURN needs each
 * side's relayed address: the module sends it to the peer in a probe through
 * the stream relay ("turn" below), permits the peer's, and answers. A worker
 * thread owns the TURN socket (lib/turnclient.h blocks); everything else runs
 * in the caller's loop.
 *
 * Whether the peer is reachable through the UDP relay: every
 * LS_RPROXY_HELLO_MS (every LS_RPROXY_HELLO_ACTIVE_MS while packets go to it)
 * each side sends every relayed peer a small hello through the UDP relay
 * (LS_RPROXY_HELLO_*: never a WireGuard message, whose first byte is 1..4) and
 * answers a hello at once. The peer is confirmed while it was heard (any
 * datagram) in the last LS_RPROXY_UDP_CONFIRM_MS and no hello request has gone
 * unanswered for LS_RPROXY_HELLO_TIMEOUT_MS.
 *
 * Event loop: one epoll fd (ls_rproxy_fd) for poll/epoll: when it is readable
 * call ls_rproxy_handle(); call ls_rproxy_tick() at least every
 * LS_RPROXY_TICK_MS (connects, keepalives, registrations, failover). Nothing
 * blocks. Functions return 0 or -errno.
 *
 * Not thread-safe: one thread makes every call (the TURN worker is internal).
 * The probe callback runs inside ls_rproxy_handle(); it may send probes and
 * add or remove peers, but must not free the proxy. The pair callback (which seals
 * and opens probes: "Probes" below) runs inside ls_rproxy_handle() and
 * ls_rproxy_send_probe() and must not call the proxy. SIGPIPE must be ignored
 * (lib/relayclient writes with write(2)).
 *
 *     struct ls_rproxy_config cfg = { .wg_port = 51820, .fwmark = mark, .relays = r,
 *                                     .on_probe = cb, .pair = pair_cb, .cb_ctx = ctx };
 *     memcpy(cfg.ed_sk, machine_sk, 64); memcpy(cfg.wg_pub, our_pub, 32);
 *     rp = ls_rproxy_new(&cfg);
 *     ls_rproxy_peer_add(rp, peer_key, &ep);      // then: wg set ... endpoint ep
 *     loop: poll(ls_rproxy_fd(rp), POLLIN, <= 250 ms) -> ls_rproxy_handle(rp);
 *           ls_rproxy_tick(rp, ls_now_ms());
 */
/*
 * In the agent (agent.c, the path thread) the proxy serves every peer of the netmap's
 * relay lists; a peer gets its loopback endpoint when no direct endpoint answers the
 * agent's pings (ls_disco_* below), and probes carry the agent's endpoints so both
 * sides punch at once. The data plane accepts the loopback endpoint through its
 * ep_override hook (dataplane.h).
 */
#ifndef LS_RELAYPROXY_H
#define LS_RELAYPROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include <jansson.h>

#include "lightscale/wire.h"

enum {
	LS_RPROXY_TICK_MS = 250,
	LS_RPROXY_HELLO_MS = 2000,          /* UDP relay hello to each peer */
	LS_RPROXY_HELLO_ACTIVE_MS = 1000,   /* ... and this often while sending to it */
	LS_RPROXY_HELLO_TIMEOUT_MS = 1500,  /* a hello unanswered this long: not confirmed */
	LS_RPROXY_UDP_CONFIRM_MS = 6000,    /* peer heard through the UDP relay this recently */
	LS_RPROXY_REREGISTER_MS = 5000,     /* register again this often while a peer is silent */
	LS_RPROXY_CONNECT_TIMEOUT_MS = 5000, /* stream connect + hello */
	LS_RPROXY_REGISTER_TIMEOUT_MS = 2500, /* UDP registration answer */
	LS_RPROXY_BACKOFF_MIN_MS = 1000,    /* after a relay's first failure; doubles */
	LS_RPROXY_BACKOFF_MAX_MS = 30000,
	LS_RPROXY_PING_MAX_S = 10,          /* stream ping at least this often */
	LS_RPROXY_PREFER_MS = 30000,        /* on a later stream relay: try the earlier ones */
	LS_RPROXY_MAX_RELAYS = 16,          /* per list; more are ignored */
	LS_RPROXY_PROBE_MAX_ENDPOINTS = 8,  /* per probe (sealed: LS_DISCO_PROBE_MAX_LEN bytes at most) */
	LS_RPROXY_ENDPOINT_LEN = 64,        /* "[v6]:port" and NUL */
};

/* The pool of relayed peers' loopback addresses: 127.77.0.0/16, host part 1..65534
 * (127.77.0.1 is the first peer's). */
#define LS_RPROXY_LO_NET 0x7f4d0000u  /* 127.77.0.0, host order */
#define LS_RPROXY_LO_MASK 0xffff0000u
enum { LS_RPROXY_LO_MAX_PEERS = 65534 };

/* The UDP relay hello: 8 bytes, magic then kind. */
#define LS_RPROXY_HELLO_MAGIC "\xffLSP"
enum { LS_RPROXY_HELLO_LEN = 8, LS_RPROXY_HELLO_REQ = 1, LS_RPROXY_HELLO_REPLY = 2 };

enum ls_rproxy_path {
	LS_RPROXY_PATH_NONE = 0,
	LS_RPROXY_PATH_UDP,
	LS_RPROXY_PATH_TURN,
	LS_RPROXY_PATH_STREAM,
	LS_RPROXY_PATH_MAX,
};

struct ls_rproxy_turn_server {
	const char *url; /* turn:host:port */
	const char *username;
	const char *credential;
};

/* Lists in order of preference; addresses are numeric "ip:port" / "[ip6]:port"
 * as the netmap validates them. The strings are copied. */
struct ls_rproxy_relays {
	const char *const *stream;
	size_t n_stream;
	const char *const *udp;
	size_t n_udp;
	const struct ls_rproxy_turn_server *turn;
	size_t n_turn;
};

/* Probes (stream relay PROBE frames, to a peer named by its key; the relay names the
 * sender). "Send me UDP now": the receiver pings these endpoints at once and, when reply
 * is false, answers with its own endpoints and reply true. turn (optional) is the
 * sender's TURN relayed address: the module permits it and answers with its own; probes
 * the module sends for that alone (no endpoints) are consumed by the module and never
 * reach the callback.
 *
 * A probe is sealed like a ping of direct path discovery (below: version 2, type
 * LS_DISCO_PROBE, XChaCha20-Poly1305 under the pair's key from the two WireGuard static
 * keys), and its seq goes through the same replay window as the sender's pings and pongs
 * (struct ls_disco_pair, which the caller keeps per peer and hands out through
 * cfg.pair). What arrives through the relay reaches the TURN logic or the callback only
 * when it opens under the key of the pair (the sender the relay names, and us) and its
 * seq is new; anything else is refused and counted by reason (status
 * counters.probes_rejected; probes_bad is their sum):
 *   unsealed         not a sealed probe (the unauthenticated JSON probes of before)
 *   malformed        a sealed probe's header or length is wrong, or its body once opened
 *   unknown_peer     no pair for the sender (not a peer of ours): costs no X25519
 *   unauthenticated  does not open: forged, tampered, another pair's, a lying relay
 *   replayed         its seq was seen already or is older than the window
 * A relay (or whoever connects to it with a peer's key) can thus drop or delay probes,
 * but make us ping no address of its choosing. */
struct ls_rproxy_probe {
	uint64_t ts_ms; /* the sender's Unix time in ms */
	bool reply;
	size_t n_endpoints;
	char endpoints[LS_RPROXY_PROBE_MAX_ENDPOINTS][LS_RPROXY_ENDPOINT_LEN];
	char turn[LS_RPROXY_ENDPOINT_LEN]; /* our TURN relayed address; "": none */
};

typedef void (*ls_rproxy_probe_cb)(void *ctx, const uint8_t from[LSR_KEY_LEN],
				   const struct ls_rproxy_probe *probe);
struct ls_disco_pair;
/* The pair's state with a peer (its key, our seq to it, its replay window); NULL when
 * the key is not a peer's. Called in ls_rproxy_handle() and ls_rproxy_send_probe(). */
typedef struct ls_disco_pair *(*ls_rproxy_pair_cb)(void *ctx, const uint8_t peer[LSR_KEY_LEN]);

struct ls_rproxy_config {
	uint8_t ed_sk[64];           /* the machine Ed25519 secret key (libsodium layout) */
	uint8_t wg_pub[LSR_KEY_LEN]; /* this node's WireGuard public key */
	uint16_t wg_port;            /* WireGuard's listen port on this host */
	uint32_t fwmark;             /* SO_MARK on relay sockets; 0: none */
	struct ls_rproxy_relays relays;
	uint32_t prefer_interval_ms; /* 0: LS_RPROXY_PREFER_MS (tests shorten it) */
	ls_rproxy_probe_cb on_probe; /* may be NULL */
	ls_rproxy_pair_cb pair;      /* seals and opens probes; NULL: none sent, all refused */
	void *cb_ctx;                /* of both */
};

struct ls_rproxy;

/* The secret key is copied (and wiped on free). NULL with errno on failure. */
struct ls_rproxy *ls_rproxy_new(const struct ls_rproxy_config *cfg);
void ls_rproxy_free(struct ls_rproxy *rp);

/* Replaces the relay lists. A relay whose address stays keeps its connection,
 * registration and backoff; one that is gone is closed. */
int ls_rproxy_set_relays(struct ls_rproxy *rp, const struct ls_rproxy_relays *r);
/* The WireGuard listen port changed (datagrams are taken from it, and sent to it, from now). */
void ls_rproxy_set_wg_port(struct ls_rproxy *rp, uint16_t port);

/* Gives the peer (or finds its) loopback address; *endpoint is 127.77.X.Y:N, the
 * endpoint to give WireGuard for this peer (the first call opens the socket).
 * -ENOSPC beyond LS_RPROXY_LO_MAX_PEERS peers. */
int ls_rproxy_peer_add(struct ls_rproxy *rp, const uint8_t key[LSR_KEY_LEN], struct sockaddr_in *endpoint);
/* 0 or -ENOENT. */
int ls_rproxy_peer_remove(struct ls_rproxy *rp, const uint8_t key[LSR_KEY_LEN]);
/* The path packets to this peer take now. */
enum ls_rproxy_path ls_rproxy_peer_path(const struct ls_rproxy *rp, const uint8_t key[LSR_KEY_LEN]);

/* Sends a probe to a peer through the stream relay (needs no ls_rproxy_peer_add), sealed
 * under the pair's key with the pair's next seq. 0, -ENOKEY (no pair: cfg.pair gave
 * NULL), -ENOTCONN (no stream relay up), -EAGAIN (its queue is full), -EINVAL (a bad
 * endpoint, too many). */
int ls_rproxy_send_probe(struct ls_rproxy *rp, const uint8_t key[LSR_KEY_LEN], const struct ls_rproxy_probe *p);

/* Event loop. */
int ls_rproxy_fd(const struct ls_rproxy *rp); /* poll for POLLIN */
/* Handles whatever is ready (never blocks). */
int ls_rproxy_handle(struct ls_rproxy *rp);
/* Timers: call at least every LS_RPROXY_TICK_MS; now_ms from ls_now_ms(). */
void ls_rproxy_tick(struct ls_rproxy *rp, uint64_t now_ms);

/* {"stream": {...}, "udp": {...}, "turn": [...], "peers": [...], "counters": {...}};
 * a new reference. A peer's "endpoint" is its 127.77.X.Y:N; counters
 * "loopback_bad_source" (not from WireGuard's port on loopback) and
 * "loopback_no_peer" (to an address no peer has) count what the socket dropped. */
json_t *ls_rproxy_status(const struct ls_rproxy *rp);

/* The relay a path uses now: the stream relay's or UDP relay's address, the TURN
 * server's URL; NULL when that path is not up. */
const char *ls_rproxy_path_relay(const struct ls_rproxy *rp, enum ls_rproxy_path path);

/* ---- the MTU of a relayed path
 *
 * The interface MTU (1420 by default) is what fits a 1500-byte link when WireGuard's
 * datagram is carried directly: 1420 + 32 (WireGuard's data header and tag) + 8 (UDP)
 * + 40 (IPv6) = 1500. A relay path adds its own framing to each datagram:
 *
 *   UDP relay     struct lsr_udp_hdr, 40 bytes, on both legs (the relay rewrites the key)
 *   TURN          a Send indication (lib/turnclient.c binds no channel) and, towards the
 *                 peer, the server's Data indication: STUN header 20, XOR-PEER-ADDRESS
 *                 4 + 8 (IPv4) or 4 + 20 (IPv6), DATA header 4, padding up to 3, and 8
 *                 for a FINGERPRINT some servers add: 47 / 59 bytes
 *   stream relay  none that fragments: frames ride a TCP stream, which the kernel cuts
 *                 into segments of its MSS, never IP fragments
 *
 * so the overlay MTU that keeps a relayed datagram within the same underlay MTU
 * (if_mtu + 80) is if_mtu + 80 - IP header of the relay's family - 8 - 32 - framing,
 * rounded down to a multiple of 16: WireGuard pads each packet to a multiple of 16 up
 * to the interface's MTU (the userspace engine knows no route MTU), so a 1400-byte
 * packet leaves as 1408. 1392 over an IPv4 UDP relay, 1376 over IPv6, 1392 / 1360 over
 * TURN. Never below 1280 (IPv6's minimum), never above if_mtu. */
enum {
	LS_RPROXY_WG_OVERHEAD = 32,        /* WireGuard data message: 16-byte header, 16-byte tag */
	LS_RPROXY_TURN_FRAMING_V4 = 47,
	LS_RPROXY_TURN_FRAMING_V6 = 59,
	LS_RPROXY_MIN_MTU = 1280,
};

/* The overlay MTU for a path through a relay of that address family (AF_INET or
 * AF_INET6); if_mtu when the path adds no framing that could fragment (none, stream). */
unsigned ls_rproxy_path_mtu_for(enum ls_rproxy_path path, int family, unsigned if_mtu);
/* The MTU for a relayed peer: the lowest over the datagram relays of the lists (every UDP
 * relay, the TURN server), whichever path it takes now, since the module moves a peer
 * between paths on its own (a UDP relay confirmed or not, TURN up or down, failover)
 * and an MTU that followed each move would change under running connections; if_mtu
 * with stream relays alone. */
unsigned ls_rproxy_relayed_mtu(const struct ls_rproxy *rp, unsigned if_mtu);

/* ---- direct path discovery from the WireGuard port (agent.c) ----
 *
 * The agent finds which of a peer's candidate endpoints answers, and keeps NAT
 * mappings open, with small pings sent from the WireGuard listen port through a raw
 * socket (so the NAT maps them exactly as WireGuard's own datagrams, whichever engine
 * owns the port). The same raw socket carries STUN Binding requests from that port
 * and hears the answers: a raw IPPROTO_UDP socket receives a copy of every UDP
 * datagram delivered to the host, and a classic BPF filter keeps only pings, pongs and
 * STUN to the WireGuard port (the magic and the UDP length of a version 2 or version 1
 * message, or STUN's magic cookie). The engine receives them too and drops them (the first
 * byte of every message here is 0xff or STUN's 0x00/0x01, never a WireGuard type).
 *
 * Pings and pongs are sealed (version 2, LS_DISCO_LEN = 128 bytes):
 *
 *   0  "\xffLSD" | type (1 ping, 2 pong) | version (2) | 2 zero bytes
 *   8  sender's WireGuard public key (32)
 *  40  receiver's WireGuard public key (32)
 *  72  nonce (24, random)
 *  96  sealed body: txid (8) | seq (8), then the Poly1305 tag (16)
 *
 * (type 3, a probe through the stream relay, has a layout of its own: below.)
 *
 * XChaCha20-Poly1305 (libsodium's IETF construction) under the pair's key, with the
 * first 72 bytes as associated data: nothing of a message can change unnoticed, and
 * the txid travels encrypted. The pair's key (ls_disco_key) is BLAKE2b-256 over a
 * context string, the X25519 shared secret of the two WireGuard static keys and both
 * public keys (in byte order, so both ends derive the same key); the agent computes it
 * once per peer, when it first needs it. (WireGuard mixes the same secret into its
 * handshake through HKDF over BLAKE2s with its own labels; another hash and a context
 * string of our own keep the two keys independent.)
 *
 *   txid  a ping's transaction id, echoed by the pong; the pinger makes it a keyed hash
 *         of its round and the address pinged, so a pong counts only from the address
 *         its ping went to, in a round still open (an authentic pong from elsewhere
 *         moves nothing; the agent pings that address once to see).
 *   seq   the sender's counter of its messages to that receiver (starting at the Unix
 *         time in microseconds, so it only grows, even across restarts); the receiver
 *         keeps a window of the last LS_DISCO_REPLAY_WINDOW per peer and drops what it
 *         saw already or what is older (ls_disco_replay_*).
 *
 * A ping is answered (to its source address, from the WireGuard port, from the address
 * it came to) only when it opens under the key of a peer in the netmap; a key that is
 * not there costs no X25519. Version 1 (80 bytes, "\xffLSD" | type | 3 zero bytes |
 * txid | sender key | receiver key, unauthenticated) is still let through the socket
 * filter so that it is counted, and then refused. */
#define LS_DISCO_MAGIC "\xffLSD"
enum {
	LS_DISCO_VERSION = 2,
	LS_DISCO_HDR_LEN = 72,     /* magic, type, version, zeros, both keys: the associated data */
	LS_DISCO_NONCE_LEN = 24,
	LS_DISCO_BODY_LEN = 16,    /* txid, seq */
	LS_DISCO_TAG_LEN = 16,
	LS_DISCO_LEN = LS_DISCO_HDR_LEN + LS_DISCO_NONCE_LEN + LS_DISCO_BODY_LEN + LS_DISCO_TAG_LEN, /* 128 */
	LS_DISCO_V1_LEN = 80,      /* the unauthenticated version 1 */
	LS_DISCO_KEY_LEN = 32,
	LS_DISCO_PING = 1,
	LS_DISCO_PONG = 2,
	LS_DISCO_REPLAY_WINDOW = 64,
};

struct ls_disco_msg {
	uint8_t type;
	uint64_t txid, seq;
	uint8_t from[LSR_KEY_LEN], to[LSR_KEY_LEN];
};

/* The pair's key from our private and public key and the peer's public key. 0, or
 * -EINVAL when the peer's key is a low-order point (an all-zero shared secret). */
int ls_disco_key(uint8_t out[LS_DISCO_KEY_LEN], const uint8_t our_priv[LSR_KEY_LEN],
		 const uint8_t our_pub[LSR_KEY_LEN], const uint8_t peer_pub[LSR_KEY_LEN]);
/* Seals m (type, txid, seq, from, to) with a fresh random nonce. */
void ls_disco_seal(const struct ls_disco_msg *m, const uint8_t key[LS_DISCO_KEY_LEN], uint8_t out[LS_DISCO_LEN]);
/* The clear header only (type, from, to; txid and seq zero), to find the peer's key
 * before any cryptography: 0, -EPROTO (version 1: unauthenticated, refused), or
 * -EBADMSG (not a ping/pong of this version and length). */
int ls_disco_peek(const uint8_t *buf, size_t len, struct ls_disco_msg *m);
/* ls_disco_peek, then the seal: 0 with every field of m, -EPROTO/-EBADMSG as
 * ls_disco_peek, or -EACCES (not sealed with this key: forged, tampered, another
 * pair's). */
int ls_disco_open(const uint8_t *buf, size_t len, const uint8_t key[LS_DISCO_KEY_LEN], struct ls_disco_msg *m);

/* A peer's replay window: the highest seq accepted and a bitmap of the
 * LS_DISCO_REPLAY_WINDOW below it (bit i: top - i seen). Zeroed: nothing seen. */
struct ls_disco_replay {
	uint64_t top, bits;
};
/* Whether seq is new (not seen, not older than the window); changes nothing. */
bool ls_disco_replay_ok(const struct ls_disco_replay *r, uint64_t seq);
/* Records seq as seen (call after ls_disco_replay_ok and once the message counts). */
void ls_disco_replay_mark(struct ls_disco_replay *r, uint64_t seq);

/* What a node keeps per peer for its sealed messages (pings, pongs and probes alike):
 * the pair's key, the peer's replay window, and our seq to the peer (0: none sent yet). */
struct ls_disco_pair {
	uint8_t key[LS_DISCO_KEY_LEN];
	struct ls_disco_replay rw;
	uint64_t tx_seq;
};
/* The seq of our next message to the peer: the first is the Unix time in microseconds
 * (so it only grows, even across restarts), then one more each time. */
uint64_t ls_disco_pair_next_seq(struct ls_disco_pair *dp);

/* A probe (ls_rproxy_probe above), sealed for the stream relay:
 *
 *   0  "\xffLSD" | type (3 probe) | version (2) | 2 zero bytes
 *   8  nonce (24, random)
 *  32  sealed body: seq (8) | ts_ms (8) | flags (1: 1 reply, 2 turn) | endpoint count (1)
 *      | the TURN address (when flag 2) | the endpoints; then the Poly1305 tag (16)
 *
 * an address being family (4 or 6) | port (2) | IPv4 (4) or IPv6 (16) address, network
 * order; the associated data the first 8 bytes, then the sender's and the receiver's
 * public keys (the relay frame carries the keys: a probe moved to another pair, or
 * attributed by the relay to another sender, does not open). 66 bytes with no address,
 * at most LS_DISCO_PROBE_MAX_LEN (LSR_MAX_PROBE is 256). */
enum {
	LS_DISCO_PROBE = 3,
	LS_DISCO_PROBE_HDR_LEN = 8,
	LS_DISCO_PROBE_BODY_MIN = 18,
	LS_DISCO_PROBE_MIN_LEN = LS_DISCO_PROBE_HDR_LEN + LS_DISCO_NONCE_LEN + LS_DISCO_PROBE_BODY_MIN +
				 LS_DISCO_TAG_LEN, /* 66 */
	LS_DISCO_PROBE_MAX_LEN = LS_DISCO_PROBE_MIN_LEN + (LS_RPROXY_PROBE_MAX_ENDPOINTS + 1) * 19, /* 237 */
};
/* Seals p from `from' to `to' with seq. The length written to out, -EINVAL (an endpoint or
 * TURN address that is not numeric "ip:port", more than LS_RPROXY_PROBE_MAX_ENDPOINTS)
 * or -EMSGSIZE (size too small). */
int ls_disco_probe_seal(const struct ls_rproxy_probe *p, uint64_t seq, const uint8_t from[LSR_KEY_LEN],
			const uint8_t to[LSR_KEY_LEN], const uint8_t key[LS_DISCO_KEY_LEN], uint8_t *out,
			size_t size);
/* Whether buf looks like a sealed probe, before any cryptography: 0, -EPROTO (not a
 * sealed probe: unsealed) or -EBADMSG (a sealed probe's header or length is wrong). */
int ls_disco_probe_peek(const uint8_t *buf, size_t len);
/* ls_disco_probe_peek, then the seal: 0 with *seq and *p, -EPROTO/-EBADMSG as
 * ls_disco_probe_peek, -EACCES (does not open under key for from -> to), or -EBADMSG
 * (opens, but the body is malformed). The replay window is the caller's. */
int ls_disco_probe_open(const uint8_t *buf, size_t len, const uint8_t from[LSR_KEY_LEN],
			const uint8_t to[LSR_KEY_LEN], const uint8_t key[LS_DISCO_KEY_LEN], uint64_t *seq,
			struct ls_rproxy_probe *p);

/* A raw IPv4/IPv6 UDP socket (non-blocking, SO_MARK when mark) whose filter keeps
 * pings, pongs and STUN to wg_port. fd or -errno. */
int ls_raw_udp_open(int family, uint16_t wg_port, uint32_t mark);
/* Sends payload as a UDP datagram from port sport to dst, from the local address src
 * when not NULL (an answer leaves from the address its question came to). 0 or -errno. */
int ls_raw_udp_send(int fd, uint16_t sport, const struct sockaddr_storage *dst, const struct sockaddr_storage *src,
		    const void *payload, size_t len);
/* What a raw socket read: an IPv4 packet (family AF_INET) or a UDP datagram with its
 * header (AF_INET6, whose raw sockets strip the IP header; src from recvfrom). Checks
 * the UDP header and that it goes to wg_port; sets src (address and port) and the
 * payload; dst gets the destination address (IPv4: from the header; IPv6: AF_UNSPEC,
 * the caller takes it from the IPV6_PKTINFO the socket receives). 0 or -EBADMSG. */
int ls_raw_udp_parse(int family, const uint8_t *pkt, size_t len, uint16_t wg_port, struct sockaddr_storage *src,
		     struct sockaddr_storage *dst, const uint8_t **payload, size_t *plen);

/* ---- pure pieces (unit tests) */

const char *ls_rproxy_path_str(enum ls_rproxy_path p);
/* Which path a packet to a peer takes. */
enum ls_rproxy_path ls_rproxy_choose_path(bool udp_registered, bool udp_confirmed, bool turn_ready,
					  bool stream_up);
/* Wait before retrying a relay after `failures` consecutive failures (>= 1);
 * jitter (any number) adds up to a quarter more. */
uint64_t ls_rproxy_backoff_ms(unsigned failures, uint32_t jitter);
/* Next relay to try: the first (lowest index) whose retry time has come, or -1.
 * retry_at[i] is 0 for a relay never tried. */
int ls_rproxy_pick_relay(const uint64_t *retry_at, size_t n, uint64_t now_ms);
/* Numeric "ip:port" / "[ip6]:port" to a socket address. 0 or -EINVAL. */
int ls_rproxy_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len);

#endif
