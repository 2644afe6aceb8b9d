/* check_seqmap.c -- the bounded job id -> seq map of SSE streams: lookups,
 * growth, eviction of the lowest seq without losing any other entry. */
#include <check.h>
#include <stdio.h>

#include "seqmap.h"
#include "test_suite.h"

static void job_id(int i, char *out)
{
	snprintf(out, SEQMAP_KEY_LEN, "%08x-0000-4000-8000-%012d", (unsigned)i * 2654435761u, i);
}

START_TEST(slots_are_found_again_after_growth)
{
	struct seqmap m;
	char key[SEQMAP_KEY_LEN];

	seqmap_init(&m, 256);
	ck_assert_int_eq(seqmap_get(&m, "nothing"), -1);
	for (int i = 0; i < 200; i++) {
		int64_t *seq;

		job_id(i, key);
		seq = seqmap_slot(&m, key);
		ck_assert_ptr_nonnull(seq);
		ck_assert_int_eq(*seq, 0); /* new */
		*seq = 1000 + i;
	}
	ck_assert_int_eq(m.count, 200);
	ck_assert_int_le(m.count * 2, m.cap); /* at most half full */
	for (int i = 0; i < 200; i++) {
		job_id(i, key);
		ck_assert_int_eq(seqmap_get(&m, key), 1000 + i);
		ck_assert_int_eq(*seqmap_slot(&m, key), 1000 + i); /* the same slot */
	}
	ck_assert_int_eq(m.count, 200);
	seqmap_release(&m);
	ck_assert_int_eq(seqmap_get(&m, key), -1);
}
END_TEST

START_TEST(beyond_max_the_lowest_seq_goes_and_the_rest_stay)
{
	struct seqmap m;
	char key[SEQMAP_KEY_LEN];

	/* Seqs in a scrambled order, so the evicted slots sit all over the
	 * table and the entries after them must move back correctly. */
	seqmap_init(&m, 64);
	for (int i = 0; i < 64; i++) {
		job_id(i, key);
		*seqmap_slot(&m, key) = (i * 37) % 64 + 1;
	}
	for (int round = 0; round < 200; round++) {
		int64_t low = round < 64 ? round + 1 : -1;

		job_id(1000 + round, key);
		*seqmap_slot(&m, key) = 100 + round;
		ck_assert_int_eq(m.count, 64);
		/* Which one went: the lowest seq of the first 64 while they last. */
		for (int i = 0; i < 64 && low > 0; i++) {
			char old[SEQMAP_KEY_LEN];
			int64_t seq = (i * 37) % 64 + 1;

			job_id(i, old);
			ck_assert_int_eq(seqmap_get(&m, old), seq <= low ? -1 : seq);
		}
		/* Past the first 64 rounds the oldest new entry goes each time;
		 * every other new entry is still found. */
		if (round >= 64) {
			job_id(1000 + round - 64, key);
			ck_assert_int_eq(seqmap_get(&m, key), -1);
		}
		for (int k = round >= 64 ? round - 63 : 0; k <= round; k++) {
			job_id(1000 + k, key);
			ck_assert_int_eq(seqmap_get(&m, key), 100 + k);
		}
	}
	seqmap_release(&m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("seqmap");
	TCase *tc = tcase_create("map");

	tcase_add_test(tc, slots_are_found_again_after_growth);
	tcase_add_test(tc, beyond_max_the_lowest_seq_goes_and_the_rest_stay);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
