// SPDX-License-Identifier: MIT
#include "audit.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "bytes.h"
#include "keys.h"

static const char entry_ctx[] = "lightscale-audit-v1";
static const char head_ctx[] = "lightscale-audit-head-v1";

char *ls_audit_canonical(const json_t *data)
{
	return json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
}

void ls_audit_hash(uint8_t out[LS_AUDIT_HASH_LEN], const struct ls_audit_entry *e,
		   const uint8_t prev[LS_AUDIT_HASH_LEN])
{
	crypto_hash_sha256_state st;
	uint8_t buf[8];
	size_t tlen = strlen(e->type), dlen = e->data ? strlen(e->data) : 0;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)entry_ctx, sizeof(entry_ctx) - 1);
	ls_put_be64(buf, e->seq);
	crypto_hash_sha256_update(&st, buf, 8);
	ls_put_be64(buf, (uint64_t)e->time);
	crypto_hash_sha256_update(&st, buf, 8);
	ls_put_be16(buf, (uint16_t)tlen);
	crypto_hash_sha256_update(&st, buf, 2);
	crypto_hash_sha256_update(&st, (const uint8_t *)e->type, tlen);
	ls_put_be32(buf, (uint32_t)dlen);
	crypto_hash_sha256_update(&st, buf, 4);
	if (dlen)
		crypto_hash_sha256_update(&st, (const uint8_t *)e->data, dlen);
	crypto_hash_sha256_update(&st, prev, LS_AUDIT_HASH_LEN);
	crypto_hash_sha256_final(&st, out);
}

static void head_message(uint8_t msg[sizeof(head_ctx) - 1 + 8 + LS_AUDIT_HASH_LEN], const struct ls_audit_head *h)
{
	memcpy(msg, head_ctx, sizeof(head_ctx) - 1);
	ls_put_be64(msg + sizeof(head_ctx) - 1, h->seq);
	memcpy(msg + sizeof(head_ctx) - 1 + 8, h->hash, LS_AUDIT_HASH_LEN);
}

void ls_audit_sign_head(struct ls_audit_head *h, const uint8_t identity_sk[64])
{
	uint8_t msg[sizeof(head_ctx) - 1 + 8 + LS_AUDIT_HASH_LEN];

	head_message(msg, h);
	crypto_sign_ed25519_detached(h->sig, NULL, msg, sizeof(msg), identity_sk);
}

bool ls_audit_verify_head(const struct ls_audit_head *h, const uint8_t identity_pk[32])
{
	uint8_t msg[sizeof(head_ctx) - 1 + 8 + LS_AUDIT_HASH_LEN];

	head_message(msg, h);
	return crypto_sign_ed25519_verify_detached(h->sig, msg, sizeof(msg), identity_pk) == 0;
}

long ls_audit_verify_chain(const struct ls_audit_entry *entries, size_t n, const uint8_t prev[LS_AUDIT_HASH_LEN])
{
	uint8_t h[LS_AUDIT_HASH_LEN], cur[LS_AUDIT_HASH_LEN];

	memcpy(cur, prev, LS_AUDIT_HASH_LEN);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && entries[i].seq != entries[i - 1].seq + 1)
			return (long)i;
		ls_audit_hash(h, &entries[i], cur);
		if (sodium_memcmp(h, entries[i].hash, LS_AUDIT_HASH_LEN))
			return (long)i;
		memcpy(cur, h, LS_AUDIT_HASH_LEN);
	}
	return -1;
}

bool ls_audit_extends(const struct ls_audit_head *old, const struct ls_audit_head *next,
		      const struct ls_audit_entry *entries, size_t n)
{
	if (next->seq < old->seq)
		return false;
	if (next->seq == old->seq)
		return n == 0 && !sodium_memcmp(old->hash, next->hash, LS_AUDIT_HASH_LEN);
	if (n != next->seq - old->seq || entries[0].seq != old->seq + 1)
		return false;
	if (ls_audit_verify_chain(entries, n, old->hash) != -1)
		return false;
	return !sodium_memcmp(entries[n - 1].hash, next->hash, LS_AUDIT_HASH_LEN);
}

json_t *ls_audit_head_to_json(const struct ls_audit_head *h)
{
	char hex[2 * LS_AUDIT_HASH_LEN + 1], sig[128];

	ls_hex_encode(hex, h->hash, LS_AUDIT_HASH_LEN);
	ls_b64_encode(sig, sizeof(sig), h->sig, sizeof(h->sig));
	return json_pack("{s:I, s:s, s:s}", "seq", (json_int_t)h->seq, "hash", hex, "sig", sig);
}

int ls_audit_head_from_json(const json_t *j, struct ls_audit_head *h)
{
	json_t *seq = json_object_get(j, "seq");
	const char *hash = json_string_value(json_object_get(j, "hash"));
	const char *sig = json_string_value(json_object_get(j, "sig"));

	if (!json_is_integer(seq) || json_integer_value(seq) < 0 || !hash || !sig)
		return -EINVAL;
	h->seq = (uint64_t)json_integer_value(seq);
	if (strlen(hash) != 2 * LS_AUDIT_HASH_LEN || ls_hex_decode(h->hash, LS_AUDIT_HASH_LEN, hash) != LS_AUDIT_HASH_LEN)
		return -EINVAL;
	if (ls_b64_decode(h->sig, sizeof(h->sig), sig) != (int)sizeof(h->sig))
		return -EINVAL;
	return 0;
}
