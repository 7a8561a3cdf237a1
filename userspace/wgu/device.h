/* SPDX-License-Identifier: MIT */
/* The WireGuard device: identity, peers, keypairs, the index table, timers and
 * the packet paths. It does no I/O itself: the engine (engine.c) or a test
 * passes datagrams and inner packets in and gets them out through ops, so two
 * devices can be wired together in memory.
 *
 * Locking: one mutex (dev->lock) guards all state. Packet paths hold it only
 * for lookups and bookkeeping; encryption and decryption run outside it on
 * copies of the keys, so two threads (TUN->UDP and UDP->TUN) use both cores. */
#ifndef LSW_DEVICE_H
#define LSW_DEVICE_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "userspace/wgu/allowedips.h"
#include "userspace/wgu/noise.h"
#include "userspace/wgu/pool.h"

/* Room a packet buffer must have before and after an inner packet so that it
 * can be encrypted in place into a data message (header before, padding and
 * tag after). */
enum {
	LSW_HEADROOM = 16,
	LSW_TAILROOM = 32,
	LSW_MAX_STAGED = 128,
	LSW_INDEX_BUCKETS = 4096,
	LSW_MAX_TIMER_HANDSHAKES = 18, /* REKEY_ATTEMPT_TIME / REKEY_TIMEOUT */
};

struct lsw_endpoint {
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
	};
	socklen_t len; /* 0: no endpoint */
	/* Our local address the peer last reached us at (IPv4 as v4-mapped):
	 * replies leave from it, as kernel WireGuard's do ("sticky" source). */
	bool has_local;
	struct in6_addr local;
	uint32_t local_ifindex; /* only for IPv6 link-local */
};

/* Timer and limit values; the defaults are the whitepaper's (section 6.1).
 * Tests may shorten them through LIGHTSCALE_WG_* environment variables. */
struct lsw_timer_cfg {
	uint64_t rekey_after_time_ms;
	uint64_t reject_after_time_ms;
	uint64_t rekey_attempt_time_ms;
	uint64_t rekey_timeout_ms;
	uint64_t keepalive_timeout_ms;
	uint64_t rekey_after_messages;
	uint64_t reject_after_messages;
};
void lsw_timer_cfg_default(struct lsw_timer_cfg *c);
/* Applies LIGHTSCALE_WG_REKEY_AFTER_TIME etc. (seconds / messages). */
void lsw_timer_cfg_from_env(struct lsw_timer_cfg *c);

struct lsw_peer;
struct lsw_keypair;

enum lsw_index_kind { LSW_INDEX_HANDSHAKE = 1, LSW_INDEX_KEYPAIR = 2 };

struct lsw_index {
	uint32_t idx;
	uint8_t kind;
	bool hashed;
	struct lsw_peer *peer;
	struct lsw_keypair *kp;
	struct lsw_index *next;
};

struct lsw_keypair {
	uint64_t serial;
	struct lsw_session_keys keys;
	uint64_t birth_ms;
	uint64_t send_counter;
	struct lsw_replay replay;
	uint32_t remote_index;
	struct lsw_index entry; /* local index */
	struct lsw_peer *peer;
};

struct lsw_staged {
	struct lsw_staged *next;
	size_t len;
	uint8_t buf[]; /* LSW_HEADROOM + len + LSW_TAILROOM */
};

struct lsw_peer {
	struct lsw_peer *next;
	int refs;
	bool dead;
	uint8_t pub[LSW_KEY_LEN];
	struct lsw_handshake hs;
	struct lsw_index hs_entry;
	struct lsw_cookie cookie;
	struct lsw_keypair *kp_prev, *kp_cur, *kp_next;
	struct lsw_endpoint endpoint;
	uint64_t rx_bytes, tx_bytes;
	struct timespec last_handshake; /* wall clock; zero: never */
	uint16_t persistent_keepalive;  /* seconds; 0: off */
	/* timer deadlines in ms of CLOCK_MONOTONIC; 0 = not pending */
	uint64_t t_retransmit, t_send_keepalive, t_new_handshake, t_zero_keys, t_persistent;
	unsigned int handshake_attempts;
	uint64_t last_sent_handshake_ms;
	bool sent_lastminute_handshake;
	bool need_another_keepalive;
	struct lsw_staged *staged_head, **staged_tail;
	unsigned int nstaged;
};

/* Drop and event counters, shown by `lightscale wg-userspace --stats IF`. */
#define LSW_STATS(X)              \
	X(rx_datagrams)           \
	X(rx_drop_short)          \
	X(rx_drop_type)           \
	X(rx_drop_mac)            \
	X(rx_drop_handshake)      \
	X(rx_drop_unknown_peer)   \
	X(rx_drop_no_keypair)     \
	X(rx_drop_decrypt)        \
	X(rx_drop_replay)         \
	X(rx_drop_inner)          \
	X(rx_drop_allowedips)     \
	X(rx_drop_ratelimit)      \
	X(rx_keepalives)          \
	X(rx_initiations)         \
	X(rx_responses)          \
	X(tx_cookie_replies)      \
	X(tx_initiations)         \
	X(tx_responses)          \
	X(tx_keepalives)          \
	X(tx_drop_no_peer)        \
	X(tx_drop_no_endpoint)    \
	X(tx_drop_staged_overflow) \
	X(tx_drop_send_error)     \
	X(tx_drop_malformed)      \
	X(tx_tun_gso_tcp)         \
	X(tx_tun_gso_udp)

struct lsw_stats {
#define X(n) uint64_t n;
	LSW_STATS(X)
#undef X
};

struct lsw_device_ops {
	/* Sends n messages to ep. When gso_size is non-zero all but the last
	 * are exactly gso_size bytes and the engine may send them as one UDP
	 * GSO super-datagram. Returns 0 or -errno. */
	int (*udp_send)(void *ctx, const struct lsw_endpoint *ep, const struct iovec *iov, int n, size_t gso_size);
	/* Delivers a decrypted inner packet; pkt has LSW_HEADROOM bytes before
	 * it that the callee may use. */
	int (*tun_write)(void *ctx, uint8_t *pkt, size_t len);
	/* A timer was set earlier than the last lsw_dev_timers() answer. */
	void (*wake)(void *ctx);
	/* The listen port or fwmark changed (under the lock). */
	int (*sock_update)(void *ctx, uint16_t *port, uint32_t fwmark);
	/* Optional: runs fn over n items split in parts on several cores (the
	 * engine's worker pools), from the TX path (path 0) or the RX path (1). */
	void (*parallel)(void *ctx, int path, lsw_pool_fn fn, void *arg, int n);
};

struct lsw_device {
	pthread_mutex_t lock;
	struct lsw_identity id;
	struct lsw_cookie_checker cookies;
	uint16_t listen_port;
	uint32_t fwmark;
	unsigned int mtu;
	struct lsw_peer *peers;
	unsigned int npeers;
	struct lsw_allowedips aip;
	struct lsw_index *index[LSW_INDEX_BUCKETS];
	uint64_t next_serial;
	struct lsw_timer_cfg cfg;
	struct lsw_stats stats;
	/* What the engine around the device runs with, for stats=1 (atomics):
	 * the TUN device's TSO and USO (USO needs kernel 6.2), UDP GSO and GRO
	 * on the socket (GSO turns off if the path refuses it). */
	struct {
		bool tun_tso, tun_uso, udp_gso, udp_gro;
	} offload;
	/* handshake load: messages seen in the current second */
	uint64_t load_window_ms;
	unsigned int load_count;
	bool under_load_until_set;
	uint64_t under_load_until_ms;
	bool force_under_load; /* tests: always demand cookies */
	/* per-source rate limiter for handshakes under load */
	struct {
		uint32_t key;
		uint64_t last_ms;
		unsigned int tokens;
	} rl[1024];
	uint64_t timers_next_ms; /* what the last lsw_dev_timers returned */
	uint64_t time_offset_ms; /* tests: added to the clock to travel in time */
	const struct lsw_device_ops *ops;
	void *ctx;
};

int lsw_dev_init(struct lsw_device *d, const struct lsw_device_ops *ops, void *ctx);
void lsw_dev_destroy(struct lsw_device *d);

/* Under the lock (UAPI): */
int lsw_dev_set_private_key(struct lsw_device *d, const uint8_t priv[LSW_KEY_LEN]);
struct lsw_peer *lsw_dev_find_peer(struct lsw_device *d, const uint8_t pub[LSW_KEY_LEN]);
struct lsw_peer *lsw_dev_add_peer(struct lsw_device *d, const uint8_t pub[LSW_KEY_LEN]);
void lsw_dev_remove_peer(struct lsw_device *d, struct lsw_peer *p);
void lsw_dev_set_psk(struct lsw_device *d, struct lsw_peer *p, const uint8_t psk[LSW_KEY_LEN]);
void lsw_dev_set_keepalive(struct lsw_device *d, struct lsw_peer *p, uint16_t secs);

/* Packet paths (take the lock themselves). */
/* Encrypts and sends inner packets read from the TUN device. Each of the n
 * packets lives in its own buffer with LSW_HEADROOM before and LSW_TAILROOM
 * after it; the buffers are encrypted in place. */
struct lsw_pkt {
	uint8_t *data;
	size_t len;
	size_t wire_len; /* set when sealed: the data message's length */
};
void lsw_dev_tx(struct lsw_device *d, struct lsw_pkt *pkts, int n);
/* Handles one received UDP payload from src. buf is modified (decrypted in
 * place); a delivered inner packet has its message header (16 bytes) before
 * it, which tun_write may overwrite. */
void lsw_dev_rx(struct lsw_device *d, uint8_t *buf, size_t len, const struct lsw_endpoint *src);
/* The same for a batch, in order: two short locked sections for the whole
 * batch, and decryption spread over the cores (ops->parallel). */
struct lsw_rx {
	uint8_t *buf;
	size_t len;
	const struct lsw_endpoint *src;
	/* filled in by the device */
	uint8_t state;
	uint32_t idx;
	uint64_t serial;
	size_t ilen;
	uint8_t key[LSW_KEY_LEN];
};
void lsw_dev_rx_batch(struct lsw_device *d, struct lsw_rx *m, int n);
/* Runs expired timers; returns the next deadline (ms, CLOCK_MONOTONIC). */
uint64_t lsw_dev_timers(struct lsw_device *d);
/* Queues a handshake initiation or keepalive (for tests and `wg set`). */
void lsw_dev_send_keepalive(struct lsw_device *d, struct lsw_peer *p);

/* The device's clock: CLOCK_MONOTONIC in ms plus time_offset_ms. */
uint64_t lsw_dev_now(const struct lsw_device *d);

#endif
