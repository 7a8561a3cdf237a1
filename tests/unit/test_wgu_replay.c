// SPDX-License-Identifier: MIT
/* userspace/wgu: the receive replay window's edges. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "userspace/wgu/messages.h"
#include "userspace/wgu/noise.h"

static void test_in_order_and_duplicates(void **state)
{
	struct lsw_replay r;

	lsw_replay_init(&r);
	assert_true(lsw_replay_check(&r, 0));
	assert_false(lsw_replay_check(&r, 0));
	for (uint64_t i = 1; i < 5000; i++)
		assert_true(lsw_replay_check(&r, i));
	for (uint64_t i = 4000; i < 5000; i++)
		assert_false(lsw_replay_check(&r, i));
}

static void test_out_of_order_within_window(void **state)
{
	struct lsw_replay r;

	lsw_replay_init(&r);
	assert_true(lsw_replay_check(&r, 100));
	assert_true(lsw_replay_check(&r, 50));
	assert_true(lsw_replay_check(&r, 99));
	assert_false(lsw_replay_check(&r, 50));
	assert_true(lsw_replay_check(&r, 0));
	assert_false(lsw_replay_check(&r, 100));
}

static void test_window_edge(void **state)
{
	struct lsw_replay r;
	const uint64_t top = 10000;

	lsw_replay_init(&r);
	assert_true(lsw_replay_check(&r, top));
	/* The oldest counter still inside the window is accepted once... */
	assert_true(lsw_replay_check(&r, top - LSW_REPLAY_WINDOW));
	assert_false(lsw_replay_check(&r, top - LSW_REPLAY_WINDOW));
	/* ...one older is outside it. */
	assert_false(lsw_replay_check(&r, top - LSW_REPLAY_WINDOW - 1));
	assert_false(lsw_replay_check(&r, 0));
}

static void test_big_jump_clears_window(void **state)
{
	struct lsw_replay r;

	lsw_replay_init(&r);
	for (uint64_t i = 0; i < 64; i++)
		assert_true(lsw_replay_check(&r, i));
	/* A jump far beyond the window: everything inside the new window is unseen. */
	assert_true(lsw_replay_check(&r, 1000000));
	assert_true(lsw_replay_check(&r, 1000000 - 1));
	assert_true(lsw_replay_check(&r, 1000000 - LSW_REPLAY_WINDOW));
	assert_false(lsw_replay_check(&r, 63));
	/* A jump of exactly one bitmap word, then its neighbours. */
	assert_true(lsw_replay_check(&r, 1000064));
	assert_true(lsw_replay_check(&r, 1000063));
	assert_false(lsw_replay_check(&r, 1000064));
}

static void test_reject_after_messages(void **state)
{
	struct lsw_replay r;

	lsw_replay_init(&r);
	assert_true(lsw_replay_check(&r, LSW_REJECT_AFTER_MESSAGES - 1));
	assert_false(lsw_replay_check(&r, LSW_REJECT_AFTER_MESSAGES));
	assert_false(lsw_replay_check(&r, UINT64_MAX));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order_and_duplicates),
		cmocka_unit_test(test_out_of_order_within_window),
		cmocka_unit_test(test_window_edge),
		cmocka_unit_test(test_big_jump_clears_window),
		cmocka_unit_test(test_reject_after_messages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
