/* check_backoff.c -- delays grow, stay jittered within their window, cap, reset. */
#include <check.h>
#include <stdlib.h>

#include "backoff.h"
#include "test_suite.h"

START_TEST(windows_double_up_to_the_cap)
{
	struct backoff b;
	unsigned window = 100;

	backoff_init(&b, 100, 1000);
	for (int i = 0; i < 10; i++) {
		unsigned d = backoff_next_ms(&b);

		ck_assert_uint_ge(d, window / 2);
		ck_assert_uint_le(d, window);
		window = window * 2 > 1000 ? 1000 : window * 2;
	}
	ck_assert_uint_eq(b.attempts, 10);
}
END_TEST

START_TEST(reset_starts_over)
{
	struct backoff b;

	backoff_init(&b, 50, 10000);
	for (int i = 0; i < 5; i++)
		backoff_next_ms(&b);
	backoff_reset(&b);
	ck_assert_uint_le(backoff_next_ms(&b), 50);
	ck_assert_uint_eq(b.attempts, 1);
}
END_TEST

START_TEST(delays_are_jittered)
{
	struct backoff b;
	unsigned first = 0;
	int distinct = 0;

	/* Many fresh backoffs at the cap: a fleet must not retry in lockstep. */
	for (int i = 0; i < 50; i++) {
		unsigned d;

		backoff_init(&b, 1000, 1000);
		b.seed = (unsigned)i * 7919u;
		d = backoff_next_ms(&b);
		if (i == 0)
			first = d;
		else if (d != first)
			distinct++;
	}
	ck_assert_int_gt(distinct, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("backoff");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, windows_double_up_to_the_cap);
	tcase_add_test(tc, reset_starts_over);
	tcase_add_test(tc, delays_are_jittered);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
