/* SPDX-License-Identifier: MIT */
/* lightscale-relay internals: one epoll loop serving STUN, the UDP relay, the
 * stream relay and a local status socket. Wire formats: include/lightscale/wire.h.
 * Every function is prefixed lsr_; functions return 0 or -errno. */
#ifndef LSR_RELAY_H
#define LSR_RELAY_H

#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "lightscale/wire.h"
#include "relayclient.h"

struct json_t;

/* ------------------------------------------------------------------ table */

/* A chained hash table of objects keyed by fixed-length byte strings (public
 * keys, struct lsr_addr), hashed with keyed SipHash so clients cannot aim for
 * one bucket. The node is embedded in the object and points at its key. */
struct lsr_hnode {
	struct lsr_hnode *next;
	const uint8_t *key;
};

struct lsr_table {
	struct lsr_hnode **buckets;
	size_t nbuckets, count, keylen;
	uint8_t sipkey[16];
};

int lsr_table_init(struct lsr_table *t, size_t keylen);
void lsr_table_free(struct lsr_table *t);
struct lsr_hnode *lsr_table_find(const struct lsr_table *t, const uint8_t *key);
/* The key must not be present. 0 or -ENOMEM (the table still works, only slower). */
int lsr_table_insert(struct lsr_table *t, struct lsr_hnode *n);
void lsr_table_remove(struct lsr_table *t, struct lsr_hnode *n);
/* Calls fn for every node; fn may remove the node it is given (only that one). */
void lsr_table_foreach(struct lsr_table *t, void (*fn)(struct lsr_hnode *n, void *ctx), void *ctx);

#define lsr_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* ------------------------------------------------------------------ stats */

/* Counters: numbered here once; the status output names them. */
#define LSR_COUNTERS(X)                                                              \
	X(STUN_REQUESTS, "stun.requests", "Binding requests answered")                 \
	X(STUN_MALFORMED, "stun.malformed", "STUN datagrams dropped as malformed")     \
	X(STUN_IGNORED, "stun.ignored", "well-formed STUN other than Binding requests") \
	X(UDP_UNKNOWN, "udp.not_relay", "datagrams neither STUN nor relay")            \
	X(UDP_MALFORMED, "udp.malformed", "relay datagrams with bad length or fields")  \
	X(UDP_REGISTERED, "udp.registrations", "registrations and refreshes accepted")  \
	X(UDP_REJECTED, "udp.rejected", "registrations refused (signature, time, key)") \
	X(UDP_RATE_LIMITED, "udp.rate_limited", "registrations dropped unchecked: too many from one address or in all") \
	X(UDP_EXPIRED, "udp.expired", "registrations that expired without refresh")    \
	X(UDP_FWD_PKTS, "udp.forwarded_packets", "DATA datagrams relayed")              \
	X(UDP_FWD_BYTES, "udp.forwarded_bytes", "payload bytes relayed")                \
	X(UDP_UNKNOWN_DST, "udp.unknown_destination", "DATA to a key nobody holds")     \
	X(UDP_UNREGISTERED_SRC, "udp.unregistered_source", "DATA from an address not registered") \
	X(UDP_SEND_ERRORS, "udp.send_errors", "sendto failures")                        \
	X(STREAM_ACCEPTED, "stream.accepted", "TCP connections accepted")               \
	X(STREAM_HELLO_OK, "stream.hellos", "connections that proved their key")       \
	X(STREAM_HELLO_FAILED, "stream.hello_failed", "hellos refused (signature, key)") \
	X(STREAM_REPLACED, "stream.replaced", "connections replaced by a newer one")    \
	X(STREAM_MALFORMED, "stream.malformed", "connections closed for a malformed frame") \
	X(STREAM_PROTOCOL, "stream.protocol_errors", "connections closed for a frame out of order") \
	X(STREAM_TIMEOUTS, "stream.timeouts", "connections closed for no hello or idleness") \
	X(STREAM_REFUSED, "stream.refused", "connections refused: relay full")          \
	X(STREAM_RATE_LIMITED, "stream.rate_limited", "hellos refused unchecked: too many from one address or in all") \
	X(STREAM_FWD_FRAMES, "stream.forwarded_frames", "SEND frames relayed")          \
	X(STREAM_FWD_BYTES, "stream.forwarded_bytes", "payload bytes relayed")          \
	X(STREAM_PROBES, "stream.probes", "PROBE frames relayed")                       \
	X(STREAM_UNKNOWN_DST, "stream.unknown_destination", "SEND/PROBE to a key nobody holds") \
	X(STREAM_QUEUE_DROPS, "stream.queue_drops", "frames dropped: receiver's queue full") \
	X(STREAM_PINGS, "stream.pings", "PINGs answered")                               \
	X(CONTROL_REQUESTS, "control.requests", "status requests served")

enum lsr_counter {
#define LSR_X(id, name, help) LSR_C_##id,
	LSR_COUNTERS(LSR_X)
#undef LSR_X
	LSR_C_MAX
};

struct lsr_counter_info {
	const char *name, *help;
};
extern const struct lsr_counter_info lsr_counter_info[LSR_C_MAX];

/* ------------------------------------------------------------------ config */

enum { LSR_MAX_LISTEN = 8 };

enum lsr_listen_kind {
	LSR_LISTEN_STUN = 1,   /* UDP, STUN only */
	LSR_LISTEN_UDP = 2,    /* UDP, relay + STUN */
	LSR_LISTEN_STREAM = 3, /* TCP */
	LSR_LISTEN_CONTROL = 4,
};

struct lsr_listen_addr {
	enum lsr_listen_kind kind;
	struct sockaddr_storage sa;
	socklen_t len;
};

struct lsr_config {
	struct lsr_listen_addr listen[LSR_MAX_LISTEN];
	int n_listen;
	char control[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* "" = none */
	char allowed_keys[PATH_MAX];   /* "" = any signed key */
	char log_file[PATH_MAX];       /* daemon mode only */
	char pid_file[PATH_MAX];
	uint32_t udp_lifetime_s;       /* registration lifetime (90) */
	uint32_t clock_skew_s;         /* allowed |now - proof timestamp| for UDP (60) */
	uint32_t max_udp;              /* registrations (65536) */
	uint32_t max_stream;           /* connections (16384) */
	uint32_t queue_limit;          /* bytes queued per stream connection (1 MiB) */
	uint32_t keepalive_s;          /* told to stream clients (25) */
	uint32_t idle_timeout_s;       /* stream connection silent this long is closed (75) */
	uint32_t hello_timeout_s;      /* to finish the stream hello (10) */
	uint32_t proof_rate;           /* proofs checked per source address per second (20) */
	uint32_t proof_rate_total;     /* proofs checked per second in all (10000) */
	bool foreground;
};

void lsr_config_defaults(struct lsr_config *c);
/* "stun", "udp", "stream" with "ADDR:PORT" (or "PORT" meaning [::]:PORT). 0 or -EINVAL. */
int lsr_config_add_listen(struct lsr_config *c, enum lsr_listen_kind kind, const char *value);
/* Applies one "key value" setting (config file line or --key value). Writes an
 * error that quotes the bad value into err. 0 or -EINVAL. */
int lsr_config_set(struct lsr_config *c, const char *key, const char *value, char *err, size_t errlen);
/* Reads a config file of "key = value" lines ('#' comments). 0 or -errno; err names
 * the file, line and value. */
int lsr_config_load(struct lsr_config *c, const char *path, char *err, size_t errlen);

/* ------------------------------------------------------------------ auth */

/* Who may speak for which WireGuard key, after the signature checked out. The
 * default allows every signed key; lsr_auth_load_allowed() installs a list of
 * Ed25519 keys (optionally each bound to one WireGuard key). Later, the control
 * plane can install its own check through lsr_auth_set(). */
typedef int (*lsr_authorize_fn)(void *ctx, const uint8_t wg_key[LSR_KEY_LEN],
				const uint8_t ed_pk[LSR_ED_PK_LEN]);

struct lsr_auth {
	lsr_authorize_fn authorize; /* NULL: allow */
	void *ctx;
	void (*free_ctx)(void *ctx);
};

void lsr_auth_set(struct lsr_auth *a, lsr_authorize_fn fn, void *ctx, void (*free_ctx)(void *));
void lsr_auth_clear(struct lsr_auth *a);
/* File lines: "ED25519_PUBKEY_BASE64 [WG_PUBKEY_BASE64]", '#' comments. 0 or -errno;
 * err quotes the bad line. On error the current authoriser is kept. */
int lsr_auth_load_allowed(struct lsr_auth *a, const char *path, char *err, size_t errlen);
/* Checks a proof: signature, then the authoriser. Returns LSR_REASON_NONE or the
 * reason for refusing (LSR_REASON_BAD_SIGNATURE, LSR_REASON_DENIED). */
uint32_t lsr_auth_check(const struct lsr_auth *a, const struct lsr_proof *p, uint8_t purpose,
			const uint8_t key[LSR_KEY_LEN], const uint8_t *nonce);

/* ------------------------------------------------------------------ rate limit */

enum { LSR_RATELIMIT_SLOTS = 4096 };

struct lsr_bucket {
	uint64_t last_ms;
	uint64_t milli; /* thousandths of a token */
};

struct lsr_ratelimit {
	struct lsr_bucket slots[LSR_RATELIMIT_SLOTS], global;
	uint32_t per_addr, total; /* proofs per second; 0 = unlimited */
	uint8_t sipkey[16];
};

void lsr_ratelimit_init(struct lsr_ratelimit *rl, uint32_t per_addr, uint32_t total);
/* May src have one more proof checked at monotonic time now_ms? Bursts up to
 * twice the rate. */
bool lsr_ratelimit_allow(struct lsr_ratelimit *rl, const struct sockaddr *src, uint64_t now_ms);

/* ------------------------------------------------------------------ server */

struct lsr_server;
struct lsr_conn;

/* Everything registered in epoll starts with this. */
struct lsr_io {
	int fd;
	enum lsr_listen_kind kind;
	bool is_conn; /* a stream connection (struct lsr_conn), not a listener */
	bool is_control_client;
};

struct lsr_listener {
	struct lsr_io io;
	struct sockaddr_storage bound; /* the address after bind (port 0 resolved) */
	socklen_t bound_len;
};

/* The local address a datagram arrived at (IP_PKTINFO/IPV6_PKTINFO), so that the
 * answer leaves from it: on a host with several addresses a wildcard socket would
 * otherwise answer from whichever address routing prefers. */
struct lsr_pktinfo {
	int family; /* 0 (unknown), AF_INET or AF_INET6 */
	int ifindex;
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} dst;
};

struct lsr_udp_reg {
	struct lsr_hnode by_key, by_addr;
	uint8_t key[LSR_KEY_LEN];
	struct lsr_addr addr;
	struct sockaddr_storage sa;
	socklen_t salen;
	struct lsr_listener *sock;
	struct lsr_pktinfo local; /* where its registration arrived; we send from there */
	uint8_t ed_pk[LSR_ED_PK_LEN]; /* the machine key that proved it */
	uint64_t expires_ms; /* monotonic */
	uint64_t last_ts;    /* unix ms of the newest accepted proof */
	uint64_t rx_pkts, tx_pkts;
};

struct lsr_wchunk {
	struct lsr_wchunk *next;
	size_t len, off;
	uint8_t data[];
};

enum lsr_conn_state {
	LSR_CONN_HELLO = 0, /* waiting for CLIENT_HELLO */
	LSR_CONN_ACTIVE,
	LSR_CONN_CLOSING,   /* flushing a CLOSE, then gone */
};

struct lsr_conn {
	struct lsr_io io;
	struct lsr_server *srv;
	struct lsr_conn *next, *prev; /* all connections */
	struct lsr_hnode by_key;
	enum lsr_conn_state state;
	bool in_table;
	bool dead; /* stopped; freed at the end of the loop iteration */
	bool in_flush;
	struct lsr_conn *flush_next; /* queued frames to write at the end of this iteration */
	uint8_t key[LSR_KEY_LEN];
	uint8_t ed_pk[LSR_ED_PK_LEN]; /* the machine key that proved key */
	uint8_t nonce[LSR_NONCE_LEN];
	struct sockaddr_storage peer;
	uint8_t *rbuf;
	size_t rlen, rcap;
	struct lsr_wchunk *wq_head, *wq_tail;
	size_t wq_bytes;
	bool want_out;
	uint64_t deadline_ms;  /* hello deadline, or closing deadline */
	uint64_t last_rx_ms;
	uint64_t drops;
};

struct lsr_server {
	struct lsr_config cfg;
	struct lsr_auth auth;
	struct lsr_ratelimit proofs;
	int epfd, sigfd;
	struct lsr_listener listeners[LSR_MAX_LISTEN + 1];
	int n_listeners;
	struct lsr_table udp_by_key, udp_by_addr, stream_by_key;
	struct lsr_conn *conns;
	size_t n_conns;
	struct lsr_conn *flush_list;
	uint8_t *sbuf; /* stream reads land here; a partial frame is kept per connection */
	size_t sbuf_cap;
	uint64_t counters[LSR_C_MAX];
	uint64_t started_ms;
	bool stop;
	uint8_t *dgram; /* LSR_UDP_BATCH receive slots for UDP */
};

int lsr_server_init(struct lsr_server *s, const struct lsr_config *cfg);
/* Is wg_key on the relay now (UDP or stream) on the word of another machine key?
 * Then a proof by ed_pk may not take it over: the key stays with whoever holds it
 * until that registration expires or that connection ends. */
bool lsr_key_held_by_other(const struct lsr_server *s, const uint8_t wg_key[LSR_KEY_LEN],
			   const uint8_t ed_pk[LSR_ED_PK_LEN]);
/* Runs until SIGINT/SIGTERM or s->stop. */
int lsr_server_run(struct lsr_server *s);
void lsr_server_free(struct lsr_server *s);
/* One housekeeping pass (expiry, timeouts) at monotonic time now. */
void lsr_server_tick(struct lsr_server *s, uint64_t now);
/* The status document: counters, gauges, listeners. Caller frees with json_decref. */
struct json_t *lsr_server_status(const struct lsr_server *s);

/* udp.c */
enum {
	LSR_UDP_BATCH = 16,                   /* datagrams per recvmmsg */
	LSR_UDP_SLOT = LSR_UDP_DATA_MAX_LEN + 1, /* a longer datagram is cut, then refused */
};
void lsr_udp_input(struct lsr_server *s, struct lsr_listener *l);
/* Handles one datagram from src (exposed for tests and the fuzzer). */
void lsr_udp_datagram(struct lsr_server *s, struct lsr_listener *l, uint8_t *buf, size_t len,
		      const struct sockaddr *src, socklen_t srclen, const struct lsr_pktinfo *pi);
/* sendmsg of iov to dst, from pi's address when pi is known. 0 or -errno (counted). */
int lsr_udp_send(struct lsr_server *s, int fd, const struct iovec *iov, int iovcnt,
		 const struct sockaddr *dst, socklen_t dstlen, const struct lsr_pktinfo *pi);
void lsr_udp_expire(struct lsr_server *s, uint64_t now);
void lsr_udp_reg_free(struct lsr_server *s, struct lsr_udp_reg *r);
struct lsr_udp_reg *lsr_udp_find(const struct lsr_server *s, const uint8_t key[LSR_KEY_LEN]);
/* Sends payload to a registered key as a DATA datagram from src_key. */
int lsr_udp_deliver(struct lsr_server *s, struct lsr_udp_reg *dst, const uint8_t src_key[LSR_KEY_LEN],
		    const uint8_t *payload, size_t len);

/* stream.c */
void lsr_stream_accept(struct lsr_server *s, struct lsr_listener *l);
void lsr_stream_event(struct lsr_server *s, struct lsr_conn *c, uint32_t events);
/* Feeds bytes as if read from the socket (exposed for tests and the fuzzer). */
void lsr_stream_input(struct lsr_server *s, struct lsr_conn *c, const uint8_t *buf, size_t len);
struct lsr_conn *lsr_conn_new(struct lsr_server *s, int fd, const struct sockaddr *peer);
void lsr_conn_close(struct lsr_server *s, struct lsr_conn *c, uint32_t reason);
void lsr_conn_destroy(struct lsr_server *s, struct lsr_conn *c);
struct lsr_conn *lsr_stream_find(const struct lsr_server *s, const uint8_t key[LSR_KEY_LEN]);
/* Queues a frame {type, key, payload}; drops it (counted) when the queue is full and
 * the frame is droppable. 0 or -ENOBUFS. */
int lsr_conn_queue_keyed(struct lsr_server *s, struct lsr_conn *c, uint8_t type,
			 const uint8_t key[LSR_KEY_LEN], const uint8_t *payload, size_t len);
void lsr_stream_tick(struct lsr_server *s, uint64_t now);
/* Writes what this loop iteration queued, many frames per writev. */
void lsr_stream_flush_pending(struct lsr_server *s);

#endif
