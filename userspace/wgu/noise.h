/* SPDX-License-Identifier: MIT */
/* Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s as WireGuard uses it (whitepaper 5.4),
 * MAC1/MAC2 and cookie replies (5.4.4, 5.4.7), and the receive replay window. */
#ifndef LSW_NOISE_H
#define LSW_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "userspace/wgu/messages.h"

enum lsw_hs_state {
	LSW_HS_ZEROED = 0,
	LSW_HS_CREATED_INITIATION,
	LSW_HS_CONSUMED_INITIATION,
	LSW_HS_CREATED_RESPONSE,
	LSW_HS_CONSUMED_RESPONSE,
};

/* Our own identity; derived keys are recomputed when the private key changes. */
struct lsw_identity {
	bool has_key;
	uint8_t priv[LSW_KEY_LEN];
	uint8_t pub[LSW_KEY_LEN];
};

/* One peer's handshake. */
struct lsw_handshake {
	enum lsw_hs_state state;
	uint8_t remote_static[LSW_KEY_LEN];
	uint8_t static_static[LSW_KEY_LEN]; /* DH(our static, their static) */
	bool static_static_ok;              /* false: their key is a low-order point */
	uint8_t psk[LSW_KEY_LEN];
	uint8_t ephemeral_priv[LSW_KEY_LEN];
	uint8_t remote_ephemeral[LSW_KEY_LEN];
	uint8_t hash[LSW_HASH_LEN];
	uint8_t chaining_key[LSW_HASH_LEN];
	uint8_t latest_timestamp[LSW_TIMESTAMP_LEN];
	uint64_t last_initiation_consumed_ms; /* 0: never */
	uint32_t local_index;
	uint32_t remote_index;
};

/* Session keys derived from a completed handshake. */
struct lsw_session_keys {
	uint8_t send[LSW_KEY_LEN];
	uint8_t recv[LSW_KEY_LEN];
	bool initiator;
};

/* Sets the peer's static key and recomputes DH(priv, remote). */
void lsw_handshake_init(struct lsw_handshake *hs, const struct lsw_identity *id, const uint8_t remote[LSW_KEY_LEN],
			const uint8_t psk[LSW_KEY_LEN]);
void lsw_handshake_precompute(struct lsw_handshake *hs, const struct lsw_identity *id);
void lsw_handshake_clear(struct lsw_handshake *hs);
int lsw_identity_set(struct lsw_identity *id, const uint8_t priv[LSW_KEY_LEN]);

/* TAI64N of CLOCK_REALTIME (plus offset_ms, which tests use to travel in
 * time), nanoseconds rounded down to 2^24 as the kernel does (so that the
 * timestamp does not leak fine-grained time). */
void lsw_tai64n_now(uint8_t out[LSW_TIMESTAMP_LEN], uint64_t offset_ms);

/* Initiator: fills m (all but the MACs). 0, or -EINVAL when no handshake is
 * possible (no private key, bad peer key). */
int lsw_noise_create_initiation(struct lsw_handshake *hs, const struct lsw_identity *id,
				struct lsw_msg_initiation *m, uint32_t local_index, const uint8_t ts[LSW_TIMESTAMP_LEN]);

/* Responder, step 1: decrypts the initiator's static key from m. The caller
 * finds the peer by that key and calls step 2 with its handshake. The state
 * carries the intermediate chaining key and hash between both steps. */
struct lsw_initiation_state {
	uint8_t remote_static[LSW_KEY_LEN];
	uint8_t hash[LSW_HASH_LEN];
	uint8_t chaining_key[LSW_HASH_LEN];
};
int lsw_noise_consume_initiation1(const struct lsw_identity *id, const struct lsw_msg_initiation *m,
				  struct lsw_initiation_state *st);
/* Step 2: -EPERM for a replayed/old timestamp or a flood (initiations closer
 * than 1/50 s), -EBADMSG for a bad timestamp seal. On success hs holds the
 * consumed initiation. */
int lsw_noise_consume_initiation2(struct lsw_handshake *hs, struct lsw_initiation_state *st,
				  const struct lsw_msg_initiation *m, uint64_t now_ms);

int lsw_noise_create_response(struct lsw_handshake *hs, const struct lsw_identity *id, struct lsw_msg_response *m,
			      uint32_t local_index);
/* Initiator: hs must be in CREATED_INITIATION with local_index == m->receiver. */
int lsw_noise_consume_response(struct lsw_handshake *hs, const struct lsw_identity *id,
			       const struct lsw_msg_response *m);

/* Derives transport keys from a handshake in CONSUMED_RESPONSE (initiator) or
 * CREATED_RESPONSE (responder) state and wipes the handshake. */
int lsw_noise_derive_keys(struct lsw_handshake *hs, struct lsw_session_keys *keys);

/* MACs and cookies. */
struct lsw_cookie_checker {
	uint8_t secret[LSW_HASH_LEN];
	uint64_t secret_birth_ms;
	uint8_t mac1_key[LSW_HASH_LEN];   /* HASH("mac1----" || our public key) */
	uint8_t cookie_key[LSW_HASH_LEN]; /* HASH("cookie--" || our public key) */
};

struct lsw_cookie {
	uint8_t mac1_key[LSW_HASH_LEN];   /* HASH("mac1----" || peer public key) */
	uint8_t cookie_key[LSW_HASH_LEN]; /* HASH("cookie--" || peer public key) */
	uint8_t cookie[LSW_COOKIE_LEN];
	uint64_t cookie_birth_ms;
	bool cookie_valid;
	uint8_t last_mac1[LSW_MAC_LEN];
	bool have_sent_mac1;
};

enum lsw_mac_result {
	LSW_MAC_INVALID = 0,
	LSW_MAC_VALID_NO_COOKIE,
	LSW_MAC_VALID_WITH_COOKIE,
};

void lsw_cookie_checker_init(struct lsw_cookie_checker *c, const uint8_t our_pub[LSW_KEY_LEN]);
void lsw_cookie_init(struct lsw_cookie *c, const uint8_t peer_pub[LSW_KEY_LEN]);
/* msg is an initiation or response of len bytes; fills its mac1 and mac2. */
void lsw_cookie_add_macs(struct lsw_cookie *c, void *msg, size_t len, uint64_t now_ms);
/* addr: the source address bytes (4 or 16) followed by the port, big-endian. */
enum lsw_mac_result lsw_cookie_validate(struct lsw_cookie_checker *c, const void *msg, size_t len,
					const uint8_t *addr, size_t addrlen, bool check_mac2, uint64_t now_ms);
void lsw_cookie_create_reply(struct lsw_cookie_checker *c, struct lsw_msg_cookie *out, const void *msg, size_t len,
			     uint32_t sender_index, const uint8_t *addr, size_t addrlen, uint64_t now_ms);
int lsw_cookie_consume_reply(struct lsw_cookie *c, const struct lsw_msg_cookie *m, uint64_t now_ms);

/* Replay window over 64-bit counters (RFC 6479 style bitmap). */
enum { LSW_REPLAY_BITS = 2048, LSW_REPLAY_WINDOW = LSW_REPLAY_BITS - 64 };
struct lsw_replay {
	uint64_t greatest; /* highest counter seen, plus one; 0 = none */
	uint64_t bitmap[LSW_REPLAY_BITS / 64];
};
void lsw_replay_init(struct lsw_replay *r);
/* True (and records the counter) when the counter is new and inside the window. */
bool lsw_replay_check(struct lsw_replay *r, uint64_t counter);

/* ChaCha20-Poly1305 with WireGuard's nonce (32 zero bits || le64 counter). */
void lsw_aead_encrypt(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t adlen,
		      uint64_t counter, const uint8_t key[LSW_KEY_LEN]);
/* 0, or -EBADMSG when the tag does not verify. len includes the tag. */
int lsw_aead_decrypt(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t adlen,
		     uint64_t counter, const uint8_t key[LSW_KEY_LEN]);

#endif
