// SPDX-License-Identifier: MIT
/* lib/audit: hash chain, signed heads, tamper and rollback detection. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "keys.h"

#define N 8

struct chain {
	struct ls_audit_entry e[N];
	char data[N][64];
	uint8_t pk[32], sk[64];
};

static int setup(void **state)
{
	struct chain *c = calloc(1, sizeof(*c));
	uint8_t prev[LS_AUDIT_HASH_LEN] = { 0 };

	ls_ed25519_keypair(c->pk, c->sk);
	for (int i = 0; i < N; i++) {
		snprintf(c->data[i], sizeof(c->data[i]), "{\"node\":%d}", i + 10);
		c->e[i].seq = (uint64_t)i + 1;
		c->e[i].time = 1767225600 + i;
		c->e[i].type = i % 2 ? "register" : "rotate";
		c->e[i].data = c->data[i];
		ls_audit_hash(c->e[i].hash, &c->e[i], prev);
		memcpy(prev, c->e[i].hash, LS_AUDIT_HASH_LEN);
	}
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

static void test_canonical(void **state)
{
	json_t *j = json_pack("{s:i, s:s, s:[i,i]}", "zeta", 1, "alpha", "é", "mid", 1, 2);
	char *s = ls_audit_canonical(j);

	assert_string_equal(s, "{\"alpha\":\"\\u00E9\",\"mid\":[1,2],\"zeta\":1}");
	free(s);
	json_decref(j);
}

static void test_chain_ok_and_tamper(void **state)
{
	struct chain *c = *state;
	uint8_t zero[LS_AUDIT_HASH_LEN] = { 0 };

	assert_int_equal(ls_audit_verify_chain(c->e, N, zero), -1);
	/* an edited payload is found at its index */
	strcpy(c->data[5], "{\"node\":99}");
	assert_int_equal(ls_audit_verify_chain(c->e, N, zero), 5);
	strcpy(c->data[5], "{\"node\":15}");
	assert_int_equal(ls_audit_verify_chain(c->e, N, zero), -1);
	/* an edited time, type, or a deleted row */
	c->e[2].time++;
	assert_int_equal(ls_audit_verify_chain(c->e, N, zero), 2);
	c->e[2].time--;
	c->e[3].type = "approve";
	assert_int_equal(ls_audit_verify_chain(c->e, N, zero), 3);
	c->e[3].type = "register";
	{
		struct ls_audit_entry gap[N - 1];

		memcpy(gap, c->e, 4 * sizeof(gap[0]));
		memcpy(gap + 4, c->e + 5, 3 * sizeof(gap[0]));
		assert_int_equal(ls_audit_verify_chain(gap, N - 1, zero), 4);
	}
}

static void test_heads(void **state)
{
	struct chain *c = *state;
	struct ls_audit_head old = { .seq = 3 }, next = { .seq = N }, back;
	uint8_t other_pk[32], other_sk[64];
	json_t *j;

	memcpy(old.hash, c->e[2].hash, LS_AUDIT_HASH_LEN);
	memcpy(next.hash, c->e[N - 1].hash, LS_AUDIT_HASH_LEN);
	ls_audit_sign_head(&old, c->sk);
	ls_audit_sign_head(&next, c->sk);
	assert_true(ls_audit_verify_head(&next, c->pk));
	ls_ed25519_keypair(other_pk, other_sk);
	assert_false(ls_audit_verify_head(&next, other_pk));
	next.seq++;
	assert_false(ls_audit_verify_head(&next, c->pk));
	next.seq--;

	/* next extends old through entries 4..8 */
	assert_true(ls_audit_extends(&old, &next, c->e + 3, N - 3));
	assert_true(ls_audit_extends(&old, &old, NULL, 0));
	/* rollback: an older head never extends a newer one */
	assert_false(ls_audit_extends(&next, &old, NULL, 0));
	/* fork: same seq, different hash */
	{
		struct ls_audit_head fork = old;

		fork.hash[0] ^= 1;
		assert_false(ls_audit_extends(&old, &fork, NULL, 0));
	}
	/* missing entries */
	assert_false(ls_audit_extends(&old, &next, c->e + 4, N - 4));

	j = ls_audit_head_to_json(&next);
	assert_int_equal(ls_audit_head_from_json(j, &back), 0);
	assert_memory_equal(&back, &next, sizeof(back));
	json_object_set_new(j, "hash", json_string("abcd"));
	assert_int_not_equal(ls_audit_head_from_json(j, &back), 0);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canonical),
		cmocka_unit_test_setup_teardown(test_chain_ok_and_tamper, setup, teardown),
		cmocka_unit_test_setup_teardown(test_heads, setup, teardown),
	};

	if (ls_crypto_init())
		return 1;
	return cmocka_run_group_tests_name("lib_audit", tests, NULL, NULL);
}
