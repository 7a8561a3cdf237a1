/* SPDX-License-Identifier: MIT */
/* WireGuard wire formats (whitepaper section 5.4). Every integer field is
 * little-endian on the wire; sizes are fixed per type and checked exactly
 * before a received message is touched. */
#ifndef LSW_MESSAGES_H
#define LSW_MESSAGES_H

#include <stdint.h>

enum {
	LSW_KEY_LEN = 32,
	LSW_HASH_LEN = 32,
	LSW_AEAD_TAG = 16,
	LSW_COOKIE_LEN = 16,
	LSW_COOKIE_NONCE_LEN = 24,
	LSW_TIMESTAMP_LEN = 12,
	LSW_MAC_LEN = 16,
};

enum lsw_msg_type {
	LSW_MSG_INITIATION = 1,
	LSW_MSG_RESPONSE = 2,
	LSW_MSG_COOKIE = 3,
	LSW_MSG_DATA = 4,
};

struct lsw_msg_header {
	uint8_t type;
	uint8_t reserved[3]; /* zero */
} __attribute__((packed));

struct lsw_msg_macs {
	uint8_t mac1[LSW_MAC_LEN];
	uint8_t mac2[LSW_MAC_LEN];
} __attribute__((packed));

struct lsw_msg_initiation {
	struct lsw_msg_header h;
	uint32_t sender; /* le32 */
	uint8_t ephemeral[LSW_KEY_LEN];
	uint8_t encrypted_static[LSW_KEY_LEN + LSW_AEAD_TAG];
	uint8_t encrypted_timestamp[LSW_TIMESTAMP_LEN + LSW_AEAD_TAG];
	struct lsw_msg_macs macs;
} __attribute__((packed));

struct lsw_msg_response {
	struct lsw_msg_header h;
	uint32_t sender;   /* le32 */
	uint32_t receiver; /* le32 */
	uint8_t ephemeral[LSW_KEY_LEN];
	uint8_t encrypted_nothing[LSW_AEAD_TAG];
	struct lsw_msg_macs macs;
} __attribute__((packed));

struct lsw_msg_cookie {
	struct lsw_msg_header h;
	uint32_t receiver; /* le32 */
	uint8_t nonce[LSW_COOKIE_NONCE_LEN];
	uint8_t encrypted_cookie[LSW_COOKIE_LEN + LSW_AEAD_TAG];
} __attribute__((packed));

struct lsw_msg_data {
	struct lsw_msg_header h;
	uint32_t receiver; /* le32 */
	uint64_t counter;  /* le64 */
	uint8_t encrypted[];
} __attribute__((packed));

enum {
	LSW_INITIATION_LEN = 148,
	LSW_RESPONSE_LEN = 92,
	LSW_COOKIE_MSG_LEN = 64,
	LSW_DATA_HDR_LEN = 16,
	LSW_DATA_MIN_LEN = LSW_DATA_HDR_LEN + LSW_AEAD_TAG, /* a keepalive */
	LSW_DATA_OVERHEAD = LSW_DATA_HDR_LEN + LSW_AEAD_TAG,
};

_Static_assert(sizeof(struct lsw_msg_initiation) == LSW_INITIATION_LEN, "initiation size");
_Static_assert(sizeof(struct lsw_msg_response) == LSW_RESPONSE_LEN, "response size");
_Static_assert(sizeof(struct lsw_msg_cookie) == LSW_COOKIE_MSG_LEN, "cookie size");
_Static_assert(sizeof(struct lsw_msg_data) == LSW_DATA_HDR_LEN, "data header size");

/* Protocol constants (whitepaper section 6.1). */
#define LSW_REKEY_AFTER_MESSAGES (1ULL << 60)
#define LSW_REJECT_AFTER_MESSAGES (UINT64_MAX - (1ULL << 13))
#define LSW_REKEY_AFTER_TIME_MS 120000
#define LSW_REJECT_AFTER_TIME_MS 180000
#define LSW_REKEY_ATTEMPT_TIME_MS 90000
#define LSW_REKEY_TIMEOUT_MS 5000
#define LSW_KEEPALIVE_TIMEOUT_MS 10000
#define LSW_COOKIE_SECRET_MAX_AGE_MS 120000
#define LSW_COOKIE_LATENCY_MS 5000

#endif
