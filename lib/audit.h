/* SPDX-License-Identifier: MIT */
/*
 * Key transparency and audit log: an append-only hash chain of security events.
 *
 * Entry n (n >= 1) has
 *   hash[n] = SHA-256("lightscale-audit-v1" || u64be(n) || i64be(time) || u16be(len(type)) || type
 *                     || u32be(len(data)) || data || hash[n-1])
 * with hash[0] = 32 zero bytes, where data is the event's canonical JSON (sorted keys,
 * compact). A head is (n, hash[n]) signed with the deployment's Ed25519 identity key over
 *   "lightscale-audit-head-v1" || u64be(n) || hash[n]
 * A client that saw head (m, h) accepts a later head (n, h') only when n >= m and the
 * entries m+1..n chain from h to h' (or n == m and h == h'): a rolled-back or forked log
 * is refused.
 */
#ifndef LS_AUDIT_H
#define LS_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LS_AUDIT_HASH_LEN 32

struct ls_audit_entry {
	uint64_t seq;
	int64_t time;
	const char *type;  /* "register", "approve", "rotate", ... */
	const char *data;  /* canonical JSON */
	uint8_t hash[LS_AUDIT_HASH_LEN];
};

struct ls_audit_head {
	uint64_t seq;
	uint8_t hash[LS_AUDIT_HASH_LEN];
	uint8_t sig[64];
};

/* Canonical JSON of an event payload (sorted keys, compact). Caller frees. */
char *ls_audit_canonical(const json_t *data);
/* hash of entry e given the previous hash. */
void ls_audit_hash(uint8_t out[LS_AUDIT_HASH_LEN], const struct ls_audit_entry *e,
		   const uint8_t prev[LS_AUDIT_HASH_LEN]);
void ls_audit_sign_head(struct ls_audit_head *h, const uint8_t identity_sk[64]);
bool ls_audit_verify_head(const struct ls_audit_head *h, const uint8_t identity_pk[32]);
/* Verifies entries[0..n) as a contiguous chain starting after prev (seq entries[0].seq - 1,
 * hash prev): sequence numbers consecutive, every stored hash equal to the recomputed one.
 * Returns -1 when all is well, else the index of the first bad entry. */
long ls_audit_verify_chain(const struct ls_audit_entry *entries, size_t n, const uint8_t prev[LS_AUDIT_HASH_LEN]);
/* Does `next` extend `old` through entries (old.seq+1 .. next.seq, in order)? */
bool ls_audit_extends(const struct ls_audit_head *old, const struct ls_audit_head *next,
		      const struct ls_audit_entry *entries, size_t n);

/* JSON form of a head: {"seq": N, "hash": "<hex>", "sig": "<base64>"}. */
json_t *ls_audit_head_to_json(const struct ls_audit_head *h);
int ls_audit_head_from_json(const json_t *j, struct ls_audit_head *h);

#endif
