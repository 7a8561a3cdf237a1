// SPDX-License-Identifier: MIT
/* The WireGuard handshake, written from the whitepaper (section 5.4). */
#include "userspace/wgu/noise.h"

#include <endian.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "userspace/wgu/blake2s.h"

static const char construction[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
static const char identifier[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";
static const char label_mac1[] = "mac1----";
static const char label_cookie[] = "cookie--";

/* HASH(a || b) */
static void hash2(uint8_t out[32], const void *a, size_t alen, const void *b, size_t blen)
{
	struct lsw_blake2s s;

	lsw_blake2s_init(&s, 32, NULL, 0);
	lsw_blake2s_update(&s, a, alen);
	lsw_blake2s_update(&s, b, blen);
	lsw_blake2s_final(&s, out);
}

static void mix_hash(uint8_t h[32], const void *in, size_t len)
{
	hash2(h, h, 32, in, len);
}

/* C0 = HASH(CONSTRUCTION), H0 = HASH(C0 || IDENTIFIER) */
static void initial_chain(uint8_t ck[32], uint8_t h[32])
{
	lsw_blake2s(ck, 32, construction, strlen(construction), NULL, 0);
	hash2(h, ck, 32, identifier, strlen(identifier));
}

/* X25519; -EINVAL for an all-zero result (a low-order point). */
static int dh(uint8_t out[32], const uint8_t priv[32], const uint8_t pub[32])
{
	return crypto_scalarmult_curve25519(out, priv, pub) == 0 ? 0 : -EINVAL;
}

void lsw_aead_encrypt(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t adlen,
		      uint64_t counter, const uint8_t key[LSW_KEY_LEN])
{
	uint8_t nonce[12] = { 0 };
	uint64_t le = htole64(counter);

	memcpy(nonce + 4, &le, 8);
	crypto_aead_chacha20poly1305_ietf_encrypt(dst, NULL, src, len, ad, adlen, NULL, nonce, key);
}

int lsw_aead_decrypt(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t adlen,
		     uint64_t counter, const uint8_t key[LSW_KEY_LEN])
{
	uint8_t nonce[12] = { 0 };
	uint64_t le = htole64(counter);

	if (len < LSW_AEAD_TAG)
		return -EBADMSG;
	memcpy(nonce + 4, &le, 8);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(dst, NULL, NULL, src, len, ad, adlen, nonce, key) != 0)
		return -EBADMSG;
	return 0;
}

int lsw_identity_set(struct lsw_identity *id, const uint8_t priv[LSW_KEY_LEN])
{
	uint8_t clamped[32];
	int ret = 0;

	if (!priv || sodium_is_zero(priv, 32)) {
		sodium_memzero(id, sizeof(*id));
		return 0;
	}
	memcpy(clamped, priv, 32);
	clamped[0] &= 248;
	clamped[31] = (clamped[31] & 127) | 64;
	if (crypto_scalarmult_curve25519_base(id->pub, clamped) != 0) {
		ret = -EINVAL;
		goto cleanup;
	}
	memcpy(id->priv, clamped, 32);
	id->has_key = true;
cleanup:
	sodium_memzero(clamped, sizeof(clamped));
	return ret;
}

void lsw_handshake_precompute(struct lsw_handshake *hs, const struct lsw_identity *id)
{
	hs->static_static_ok = id->has_key && dh(hs->static_static, id->priv, hs->remote_static) == 0;
	if (!hs->static_static_ok)
		sodium_memzero(hs->static_static, 32);
}

void lsw_handshake_init(struct lsw_handshake *hs, const struct lsw_identity *id, const uint8_t remote[LSW_KEY_LEN],
			const uint8_t psk[LSW_KEY_LEN])
{
	memset(hs, 0, sizeof(*hs));
	memcpy(hs->remote_static, remote, 32);
	if (psk)
		memcpy(hs->psk, psk, 32);
	lsw_handshake_precompute(hs, id);
}

void lsw_handshake_clear(struct lsw_handshake *hs)
{
	sodium_memzero(hs->ephemeral_priv, 32);
	sodium_memzero(hs->remote_ephemeral, 32);
	sodium_memzero(hs->hash, 32);
	sodium_memzero(hs->chaining_key, 32);
	hs->remote_index = 0;
	hs->state = LSW_HS_ZEROED;
}

void lsw_tai64n_now(uint8_t out[LSW_TIMESTAMP_LEN], uint64_t offset_ms)
{
	struct timespec ts;
	uint64_t secs;
	uint32_t nsec;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(offset_ms / 1000);
	ts.tv_nsec += (long)(offset_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	secs = htobe64(0x400000000000000aULL + (uint64_t)ts.tv_sec);
	nsec = htobe32((uint32_t)ts.tv_nsec & ~((1u << 24) - 1));
	memcpy(out, &secs, 8);
	memcpy(out + 8, &nsec, 4);
}

int lsw_noise_create_initiation(struct lsw_handshake *hs, const struct lsw_identity *id,
				struct lsw_msg_initiation *m, uint32_t local_index, const uint8_t ts[LSW_TIMESTAMP_LEN])
{
	uint8_t ck[32], h[32], k[32], shared[32];
	int ret = -EINVAL;

	if (!id->has_key || !hs->static_static_ok)
		return -EINVAL;

	memset(m, 0, sizeof(*m));
	m->h.type = LSW_MSG_INITIATION;
	m->sender = htole32(local_index);

	initial_chain(ck, h);
	mix_hash(h, hs->remote_static, 32);

	/* e */
	randombytes_buf(hs->ephemeral_priv, 32);
	if (crypto_scalarmult_curve25519_base(m->ephemeral, hs->ephemeral_priv) != 0)
		goto cleanup;
	lsw_kdf(ck, NULL, NULL, ck, m->ephemeral, 32);
	mix_hash(h, m->ephemeral, 32);

	/* es */
	if (dh(shared, hs->ephemeral_priv, hs->remote_static))
		goto cleanup;
	lsw_kdf(ck, k, NULL, ck, shared, 32);
	lsw_aead_encrypt(m->encrypted_static, id->pub, 32, h, 32, 0, k);
	mix_hash(h, m->encrypted_static, sizeof(m->encrypted_static));

	/* ss */
	lsw_kdf(ck, k, NULL, ck, hs->static_static, 32);
	lsw_aead_encrypt(m->encrypted_timestamp, ts, LSW_TIMESTAMP_LEN, h, 32, 0, k);
	mix_hash(h, m->encrypted_timestamp, sizeof(m->encrypted_timestamp));

	memcpy(hs->chaining_key, ck, 32);
	memcpy(hs->hash, h, 32);
	hs->local_index = local_index;
	hs->state = LSW_HS_CREATED_INITIATION;
	ret = 0;
cleanup:
	sodium_memzero(ck, 32);
	sodium_memzero(h, 32);
	sodium_memzero(k, 32);
	sodium_memzero(shared, 32);
	return ret;
}

int lsw_noise_consume_initiation1(const struct lsw_identity *id, const struct lsw_msg_initiation *m,
				  struct lsw_initiation_state *st)
{
	uint8_t k[32], shared[32];
	int ret = -EBADMSG;

	if (!id->has_key)
		return -EINVAL;
	initial_chain(st->chaining_key, st->hash);
	mix_hash(st->hash, id->pub, 32);

	lsw_kdf(st->chaining_key, NULL, NULL, st->chaining_key, m->ephemeral, 32);
	mix_hash(st->hash, m->ephemeral, 32);

	if (dh(shared, id->priv, m->ephemeral))
		goto cleanup;
	lsw_kdf(st->chaining_key, k, NULL, st->chaining_key, shared, 32);
	if (lsw_aead_decrypt(st->remote_static, m->encrypted_static, sizeof(m->encrypted_static), st->hash, 32, 0,
			     k))
		goto cleanup;
	mix_hash(st->hash, m->encrypted_static, sizeof(m->encrypted_static));
	ret = 0;
cleanup:
	sodium_memzero(k, 32);
	sodium_memzero(shared, 32);
	if (ret)
		sodium_memzero(st, sizeof(*st));
	return ret;
}

int lsw_noise_consume_initiation2(struct lsw_handshake *hs, struct lsw_initiation_state *st,
				  const struct lsw_msg_initiation *m, uint64_t now_ms)
{
	uint8_t k[32], ts[LSW_TIMESTAMP_LEN];
	int ret = -EBADMSG;

	if (!hs->static_static_ok)
		goto cleanup;
	lsw_kdf(st->chaining_key, k, NULL, st->chaining_key, hs->static_static, 32);
	if (lsw_aead_decrypt(ts, m->encrypted_timestamp, sizeof(m->encrypted_timestamp), st->hash, 32, 0, k))
		goto cleanup;
	mix_hash(st->hash, m->encrypted_timestamp, sizeof(m->encrypted_timestamp));

	/* Replay: the timestamp must be newer than every one seen from this peer. */
	if (memcmp(ts, hs->latest_timestamp, LSW_TIMESTAMP_LEN) <= 0) {
		ret = -EPERM;
		goto cleanup;
	}
	/* Flood: at most 50 initiations a second are taken from one peer. */
	if (hs->last_initiation_consumed_ms && now_ms < hs->last_initiation_consumed_ms + 20) {
		ret = -EPERM;
		goto cleanup;
	}

	memcpy(hs->latest_timestamp, ts, LSW_TIMESTAMP_LEN);
	hs->last_initiation_consumed_ms = now_ms ? now_ms : 1;
	memcpy(hs->remote_ephemeral, m->ephemeral, 32);
	memcpy(hs->chaining_key, st->chaining_key, 32);
	memcpy(hs->hash, st->hash, 32);
	hs->remote_index = le32toh(m->sender);
	hs->state = LSW_HS_CONSUMED_INITIATION;
	ret = 0;
cleanup:
	sodium_memzero(k, 32);
	sodium_memzero(st, sizeof(*st));
	return ret;
}

int lsw_noise_create_response(struct lsw_handshake *hs, const struct lsw_identity *id, struct lsw_msg_response *m,
			      uint32_t local_index)
{
	uint8_t ck[32], h[32], k[32], t[32], shared[32];
	int ret = -EINVAL;

	if (hs->state != LSW_HS_CONSUMED_INITIATION)
		return -EINVAL;
	memcpy(ck, hs->chaining_key, 32);
	memcpy(h, hs->hash, 32);

	memset(m, 0, sizeof(*m));
	m->h.type = LSW_MSG_RESPONSE;
	m->sender = htole32(local_index);
	m->receiver = htole32(hs->remote_index);

	/* e */
	randombytes_buf(hs->ephemeral_priv, 32);
	if (crypto_scalarmult_curve25519_base(m->ephemeral, hs->ephemeral_priv) != 0)
		goto cleanup;
	lsw_kdf(ck, NULL, NULL, ck, m->ephemeral, 32);
	mix_hash(h, m->ephemeral, 32);
	/* ee */
	if (dh(shared, hs->ephemeral_priv, hs->remote_ephemeral))
		goto cleanup;
	lsw_kdf(ck, NULL, NULL, ck, shared, 32);
	/* se */
	if (dh(shared, hs->ephemeral_priv, hs->remote_static))
		goto cleanup;
	lsw_kdf(ck, NULL, NULL, ck, shared, 32);
	/* psk */
	lsw_kdf(ck, t, k, ck, hs->psk, 32);
	mix_hash(h, t, 32);
	lsw_aead_encrypt(m->encrypted_nothing, NULL, 0, h, 32, 0, k);
	mix_hash(h, m->encrypted_nothing, sizeof(m->encrypted_nothing));

	memcpy(hs->chaining_key, ck, 32);
	memcpy(hs->hash, h, 32);
	hs->local_index = local_index;
	hs->state = LSW_HS_CREATED_RESPONSE;
	ret = 0;
cleanup:
	sodium_memzero(ck, 32);
	sodium_memzero(h, 32);
	sodium_memzero(k, 32);
	sodium_memzero(t, 32);
	sodium_memzero(shared, 32);
	return ret;
}

int lsw_noise_consume_response(struct lsw_handshake *hs, const struct lsw_identity *id,
			       const struct lsw_msg_response *m)
{
	uint8_t ck[32], h[32], k[32], t[32], shared[32];
	int ret = -EBADMSG;

	if (hs->state != LSW_HS_CREATED_INITIATION || !id->has_key)
		return -EINVAL;
	memcpy(ck, hs->chaining_key, 32);
	memcpy(h, hs->hash, 32);

	lsw_kdf(ck, NULL, NULL, ck, m->ephemeral, 32);
	mix_hash(h, m->ephemeral, 32);
	/* ee */
	if (dh(shared, hs->ephemeral_priv, m->ephemeral))
		goto cleanup;
	lsw_kdf(ck, NULL, NULL, ck, shared, 32);
	/* se */
	if (dh(shared, id->priv, m->ephemeral))
		goto cleanup;
	lsw_kdf(ck, NULL, NULL, ck, shared, 32);
	/* psk */
	lsw_kdf(ck, t, k, ck, hs->psk, 32);
	mix_hash(h, t, 32);
	if (lsw_aead_decrypt(NULL, m->encrypted_nothing, sizeof(m->encrypted_nothing), h, 32, 0, k))
		goto cleanup;
	mix_hash(h, m->encrypted_nothing, sizeof(m->encrypted_nothing));

	memcpy(hs->chaining_key, ck, 32);
	memcpy(hs->hash, h, 32);
	memcpy(hs->remote_ephemeral, m->ephemeral, 32);
	hs->remote_index = le32toh(m->sender);
	hs->state = LSW_HS_CONSUMED_RESPONSE;
	ret = 0;
cleanup:
	sodium_memzero(ck, 32);
	sodium_memzero(h, 32);
	sodium_memzero(k, 32);
	sodium_memzero(t, 32);
	sodium_memzero(shared, 32);
	return ret;
}

int lsw_noise_derive_keys(struct lsw_handshake *hs, struct lsw_session_keys *keys)
{
	uint8_t t1[32], t2[32];

	if (hs->state != LSW_HS_CONSUMED_RESPONSE && hs->state != LSW_HS_CREATED_RESPONSE)
		return -EINVAL;
	lsw_kdf(t1, t2, NULL, hs->chaining_key, NULL, 0);
	keys->initiator = hs->state == LSW_HS_CONSUMED_RESPONSE;
	memcpy(keys->send, keys->initiator ? t1 : t2, 32);
	memcpy(keys->recv, keys->initiator ? t2 : t1, 32);
	sodium_memzero(t1, 32);
	sodium_memzero(t2, 32);
	lsw_handshake_clear(hs);
	return 0;
}

/* --- MACs and cookies (whitepaper 5.4.4 and 5.4.7) --- */

static void mac16(uint8_t out[16], const uint8_t *key, size_t keylen, const void *in, size_t len)
{
	lsw_blake2s(out, 16, in, len, key, keylen);
}

void lsw_cookie_checker_init(struct lsw_cookie_checker *c, const uint8_t our_pub[LSW_KEY_LEN])
{
	if (!c->secret_birth_ms)
		randombytes_buf(c->secret, sizeof(c->secret));
	if (our_pub) {
		hash2(c->mac1_key, label_mac1, 8, our_pub, 32);
		hash2(c->cookie_key, label_cookie, 8, our_pub, 32);
	} else {
		memset(c->mac1_key, 0, 32);
		memset(c->cookie_key, 0, 32);
	}
}

void lsw_cookie_init(struct lsw_cookie *c, const uint8_t peer_pub[LSW_KEY_LEN])
{
	memset(c, 0, sizeof(*c));
	hash2(c->mac1_key, label_mac1, 8, peer_pub, 32);
	hash2(c->cookie_key, label_cookie, 8, peer_pub, 32);
}

void lsw_cookie_add_macs(struct lsw_cookie *c, void *msg, size_t len, uint64_t now_ms)
{
	struct lsw_msg_macs *macs = (struct lsw_msg_macs *)((uint8_t *)msg + len - sizeof(*macs));

	mac16(macs->mac1, c->mac1_key, 32, msg, len - sizeof(*macs));
	memcpy(c->last_mac1, macs->mac1, 16);
	c->have_sent_mac1 = true;
	if (c->cookie_valid &&
	    now_ms < c->cookie_birth_ms + LSW_COOKIE_SECRET_MAX_AGE_MS - LSW_COOKIE_LATENCY_MS)
		mac16(macs->mac2, c->cookie, LSW_COOKIE_LEN, msg, len - LSW_MAC_LEN);
	else
		memset(macs->mac2, 0, 16);
}

static void make_cookie(struct lsw_cookie_checker *c, uint8_t out[16], const uint8_t *addr, size_t addrlen,
			uint64_t now_ms)
{
	if (!c->secret_birth_ms || now_ms >= c->secret_birth_ms + LSW_COOKIE_SECRET_MAX_AGE_MS) {
		randombytes_buf(c->secret, sizeof(c->secret));
		c->secret_birth_ms = now_ms ? now_ms : 1;
	}
	mac16(out, c->secret, 32, addr, addrlen);
}

enum lsw_mac_result lsw_cookie_validate(struct lsw_cookie_checker *c, const void *msg, size_t len,
					const uint8_t *addr, size_t addrlen, bool check_mac2, uint64_t now_ms)
{
	const struct lsw_msg_macs *macs = (const void *)((const uint8_t *)msg + len - sizeof(*macs));
	uint8_t want[16], cookie[16];

	mac16(want, c->mac1_key, 32, msg, len - sizeof(*macs));
	if (sodium_memcmp(want, macs->mac1, 16) != 0)
		return LSW_MAC_INVALID;
	if (!check_mac2)
		return LSW_MAC_VALID_NO_COOKIE;
	make_cookie(c, cookie, addr, addrlen, now_ms);
	mac16(want, cookie, 16, msg, len - LSW_MAC_LEN);
	if (sodium_memcmp(want, macs->mac2, 16) != 0)
		return LSW_MAC_VALID_NO_COOKIE;
	return LSW_MAC_VALID_WITH_COOKIE;
}

void lsw_cookie_create_reply(struct lsw_cookie_checker *c, struct lsw_msg_cookie *out, const void *msg, size_t len,
			     uint32_t sender_index, const uint8_t *addr, size_t addrlen, uint64_t now_ms)
{
	const struct lsw_msg_macs *macs = (const void *)((const uint8_t *)msg + len - sizeof(*macs));
	uint8_t cookie[16];

	memset(out, 0, sizeof(*out));
	out->h.type = LSW_MSG_COOKIE;
	out->receiver = htole32(sender_index);
	randombytes_buf(out->nonce, sizeof(out->nonce));
	make_cookie(c, cookie, addr, addrlen, now_ms);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out->encrypted_cookie, NULL, cookie, 16, macs->mac1, 16, NULL,
						   out->nonce, c->cookie_key);
	sodium_memzero(cookie, sizeof(cookie));
}

int lsw_cookie_consume_reply(struct lsw_cookie *c, const struct lsw_msg_cookie *m, uint64_t now_ms)
{
	uint8_t cookie[16];

	if (!c->have_sent_mac1)
		return -EINVAL;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(cookie, NULL, NULL, m->encrypted_cookie,
						       sizeof(m->encrypted_cookie), c->last_mac1, 16, m->nonce,
						       c->cookie_key) != 0)
		return -EBADMSG;
	memcpy(c->cookie, cookie, 16);
	c->cookie_birth_ms = now_ms;
	c->cookie_valid = true;
	c->have_sent_mac1 = false;
	sodium_memzero(cookie, sizeof(cookie));
	return 0;
}

/* --- Replay window --- */

void lsw_replay_init(struct lsw_replay *r)
{
	memset(r, 0, sizeof(*r));
}

bool lsw_replay_check(struct lsw_replay *r, uint64_t counter)
{
	const uint64_t nwords = LSW_REPLAY_BITS / 64;
	uint64_t c, word, cur_word, i, n;

	if (counter >= LSW_REJECT_AFTER_MESSAGES)
		return false;
	c = counter + 1; /* so that 0 means "nothing seen" */
	if (c + LSW_REPLAY_WINDOW < r->greatest)
		return false;
	word = c >> 6;
	if (c > r->greatest) {
		cur_word = r->greatest >> 6;
		n = word - cur_word;
		if (n > nwords)
			n = nwords;
		for (i = 1; i <= n; i++)
			r->bitmap[(cur_word + i) % nwords] = 0;
		r->greatest = c;
	}
	word %= nwords;
	if (r->bitmap[word] & (1ULL << (c & 63)))
		return false;
	r->bitmap[word] |= 1ULL << (c & 63);
	return true;
}
