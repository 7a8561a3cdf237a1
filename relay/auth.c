// SPDX-License-Identifier: MIT
/* Who may use the relay: a proof's signature, then a pluggable authoriser. */
#include "relay.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "relayclient.h"
#include "util.h"

void lsr_auth_set(struct lsr_auth *a, lsr_authorize_fn fn, void *ctx, void (*free_ctx)(void *))
{
	lsr_auth_clear(a);
	a->authorize = fn;
	a->ctx = ctx;
	a->free_ctx = free_ctx;
}

void lsr_auth_clear(struct lsr_auth *a)
{
	if (a->free_ctx)
		a->free_ctx(a->ctx);
	memset(a, 0, sizeof(*a));
}

uint32_t lsr_auth_check(const struct lsr_auth *a, const struct lsr_proof *p, uint8_t purpose,
			const uint8_t key[LSR_KEY_LEN], const uint8_t *nonce)
{
	if (ls_relay_proof_verify(p, purpose, key, nonce))
		return LSR_REASON_BAD_SIGNATURE;
	if (a->authorize && a->authorize(a->ctx, key, p->ed_pk))
		return LSR_REASON_DENIED;
	return LSR_REASON_NONE;
}

/* The allowed-keys list: a table of Ed25519 keys, each optionally bound to a WireGuard key. */
struct allowed_entry {
	struct lsr_hnode node;
	uint8_t ed[LSR_ED_PK_LEN];
	uint8_t wg[LSR_KEY_LEN];
	bool any_wg;
};

struct allowed {
	struct lsr_table t;
	struct allowed_entry *entries;
	size_t n;
};

static void allowed_free(void *p)
{
	struct allowed *al = p;

	if (!al)
		return;
	lsr_table_free(&al->t);
	free(al->entries);
	free(al);
}

static int allowed_check(void *ctx, const uint8_t wg_key[LSR_KEY_LEN], const uint8_t ed_pk[LSR_ED_PK_LEN])
{
	struct allowed *al = ctx;
	struct lsr_hnode *n = lsr_table_find(&al->t, ed_pk);
	struct allowed_entry *e;

	if (!n)
		return -EPERM;
	e = lsr_container_of(n, struct allowed_entry, node);
	if (!e->any_wg && memcmp(e->wg, wg_key, LSR_KEY_LEN))
		return -EPERM;
	return 0;
}

int lsr_auth_load_allowed(struct lsr_auth *a, const char *path, char *err, size_t errlen)
{
	struct allowed *al = NULL;
	char *text = NULL, *line, *next;
	size_t len, cap = 0;
	int lineno = 0, r;

	r = ls_read_file(path, &text, &len, 64 << 20);
	if (r) {
		snprintf(err, errlen, "cannot read allowed keys `%s': %s", path, strerror(-r));
		return r;
	}
	al = calloc(1, sizeof(*al));
	if (!al || lsr_table_init(&al->t, LSR_ED_PK_LEN)) {
		r = -ENOMEM;
		goto cleanup;
	}
	/* First pass: count lines, so entries never move once inserted. */
	for (size_t i = 0; i < len; i++)
		cap += text[i] == '\n';
	al->entries = calloc(cap + 1, sizeof(*al->entries));
	if (!al->entries) {
		r = -ENOMEM;
		goto cleanup;
	}
	for (line = text; line; line = next) {
		char ed_s[64] = "", wg_s[64] = "", extra[2] = "";
		struct allowed_entry *e = &al->entries[al->n];
		char *hash;
		int n;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		n = sscanf(line, "%63s %63s %1s", ed_s, wg_s, extra);
		if (n <= 0)
			continue;
		if (n == 3 || ls_key_from_base64(e->ed, ed_s) ||
		    (n == 2 && ls_key_from_base64(e->wg, wg_s))) {
			snprintf(err, errlen, "%s:%d: expected `ED25519_KEY [WG_KEY]' in base64, got `%s'",
				 path, lineno, line);
			r = -EINVAL;
			goto cleanup;
		}
		e->any_wg = n == 1;
		e->node.key = e->ed;
		if (lsr_table_find(&al->t, e->ed)) {
			snprintf(err, errlen, "%s:%d: key `%s' listed twice", path, lineno, ed_s);
			r = -EINVAL;
			goto cleanup;
		}
		lsr_table_insert(&al->t, &e->node);
		al->n++;
	}
	lsr_auth_set(a, allowed_check, al, allowed_free);
	al = NULL;
	r = 0;
cleanup:
	allowed_free(al);
	free(text);
	return r;
}
