/* check_claim.c -- claim_job and complete_noops scan from a stored position
 * (sql/0011_keyset_claims.sql) and still claim by priority, then age, among
 * due jobs of owners below the fairness cap: a job before the position, or
 * one the position had to stop at, is not skipped. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_db.h"

#define DB     TEST_DB_NAME
#define USER_A "00000000-0000-4000-8000-00000000000a"
#define USER_B "00000000-0000-4000-8000-00000000000b"

/* Job ids: jN sorts by N in the tests' created_at order too. */
#define J(n) "00000000-0000-4000-8000-0000000000" #n

static PGconn *conn; /* superuser, one per test */

static void create_database(void)
{
	test_db_create(DB);
}

static void setup(void)
{
	conn = test_db_connect(DB);
	test_db_execf(conn, "TRUNCATE importer.import_jobs, importer.user_active_floors CASCADE; "
	                    "DELETE FROM importer.settings WHERE key = 'claim_full_scan_seconds'; "
	                    "UPDATE importer.settings SET value = '2' "
	                    "WHERE key = 'max_running_per_user' AND user_id IS NULL; "
	                    /* A fresh position with its full scan long done: every
	                     * claim below starts where the last one left it. */
	                    "UPDATE importer.claim_cursor SET neg_priority = -2147483649, "
	                    "created_at = '-infinity', id = '00000000-0000-0000-0000-000000000000', "
	                    "full_scan_at = now() + interval '1 hour', moved_at = '-infinity'");
}

static void teardown(void)
{
	PQfinish(conn);
	conn = NULL;
}

/* A pending job: id, kind, owner, priority, created seconds ago. */
static void add_job(const char *id, const char *kind, const char *user, int priority, int age_s)
{
	test_db_execf(conn,
	              "INSERT INTO importer.import_jobs (id, user_id, kind, priority, created_at) "
	              "VALUES ('%s', '%s', '%s', %d, now() - make_interval(secs => %d))",
	              id, user, kind, priority, age_s);
}

/* A pending job of USER_A inserted on c, created age_s seconds ago. */
static void add_job_on(PGconn *c, const char *id, const char *kind, int age_s)
{
	test_db_execf(c,
	              "INSERT INTO importer.import_jobs (id, user_id, kind, created_at) "
	              "VALUES ('%s', '" USER_A "', '%s', now() - make_interval(secs => %d))",
	              id, kind, age_s);
}

/* The id claim_job returns, or "none". */
static char *claim(void)
{
	return test_db_value(conn, "SELECT coalesce((SELECT id::text FROM "
	                           "importer.claim_job('w', '{csv,ndjson,backup}')), 'none')");
}

static void expect_claim(const char *want)
{
	char *got = claim();

	ck_assert_str_eq(got, want);
	free(got);
}

/* Marks a claimed job finished (frees its owner's running slot). */
static void finish(const char *id)
{
	test_db_execf(conn,
	              "UPDATE importer.import_jobs SET status = 'completed', phase = 'done' "
	              "WHERE id = '%s'",
	              id);
}

START_TEST(claims_go_by_priority_then_age_across_the_whole_int_range)
{
	add_job(J(01), "csv", USER_A, -2147483647 - 1, 50);
	add_job(J(02), "csv", USER_A, 0, 40);
	add_job(J(03), "ndjson", USER_B, 0, 30);
	add_job(J(04), "csv", USER_B, 2147483647, 10);
	test_db_execf(conn, "UPDATE importer.settings SET value = '10' "
	                    "WHERE key = 'max_running_per_user' AND user_id IS NULL");
	expect_claim(J(04));
	expect_claim(J(02));
	expect_claim(J(03));
	expect_claim(J(01));
	expect_claim("none");
	test_db_execf(conn, "UPDATE importer.settings SET value = '2' "
	                    "WHERE key = 'max_running_per_user' AND user_id IS NULL");
}
END_TEST

START_TEST(a_job_made_pending_before_the_position_is_claimed_next)
{
	add_job(J(01), "csv", USER_A, 0, 50);
	add_job(J(02), "csv", USER_B, 0, 40);
	add_job(J(03), "csv", USER_B, 0, 30);
	expect_claim(J(01));
	finish(J(01));
	expect_claim(J(02));
	finish(J(02));
	/* The position is now at j03; each of these sorts before it. */
	test_db_execf(conn, "UPDATE importer.import_jobs SET status = 'pending', phase = 'queued' "
	                    "WHERE id = '" J(01) "'"); /* a retry keeps its age */
	expect_claim(J(01));
	finish(J(01));
	add_job(J(04), "csv", USER_A, 0, 45); /* older than j03 */
	expect_claim(J(04));
	finish(J(04));
	add_job(J(05), "csv", USER_A, 5, 0); /* newest, but higher priority */
	expect_claim(J(05));
	finish(J(05));
	expect_claim(J(03));
	expect_claim("none");
	/* Submitted through the API (not a bare INSERT) it is claimed too. */
	test_db_execf(conn, "SELECT importer.submit_job_for('" USER_A "', 'csv', "
	                    "'\\x69640a310a'::bytea, '{\"priority\": 3}')");
	test_db_expectf(conn, "t",
	                "SELECT (SELECT priority FROM importer.claim_job('w', '{csv}')) = 3");
}
END_TEST

START_TEST(a_job_not_due_or_at_the_fairness_cap_is_claimed_once_it_can_be)
{
	add_job(J(01), "csv", USER_A, 0, 50);
	add_job(J(02), "csv", USER_A, 0, 40);
	add_job(J(03), "csv", USER_A, 0, 30);
	add_job(J(04), "csv", USER_B, 0, 20);
	add_job(J(05), "csv", USER_B, 0, 10);
	test_db_execf(conn, "UPDATE importer.settings SET value = '1' "
	                    "WHERE key = 'max_running_per_user' AND user_id IS NULL; "
	                    "UPDATE importer.import_jobs SET run_after = now() + interval '1 hour' "
	                    "WHERE id = '" J(02) "'");
	expect_claim(J(01));
	/* A is at the cap (j02 is not due anyway, j03 waits for the slot). */
	expect_claim(J(04));
	expect_claim("none");
	finish(J(04));
	expect_claim(J(05));
	finish(J(01));
	/* Neither change makes a job pending, so neither moves the position:
	 * it must still be at j02, the first pending job. */
	expect_claim(J(03));
	finish(J(03));
	expect_claim("none");
	test_db_execf(conn, "UPDATE importer.import_jobs SET run_after = now() "
	                    "WHERE id = '" J(02) "'");
	expect_claim(J(02));
	test_db_execf(conn, "UPDATE importer.settings SET value = '2' "
	                    "WHERE key = 'max_running_per_user' AND user_id IS NULL");
}
END_TEST

/* The fairness count reads the owner's processing jobs from the owner's
 * floor (sql/0016_held_horizon.sql), which stays at the oldest of them. */
START_TEST(a_running_job_older_than_the_pending_ones_still_counts_for_fairness)
{
	add_job(J(01), "csv", USER_A, 0, 3600);
	add_job(J(02), "csv", USER_A, 0, 20);
	add_job(J(03), "csv", USER_B, 0, 10);
	test_db_execf(conn, "UPDATE importer.settings SET value = '1' "
	                    "WHERE key = 'max_running_per_user' AND user_id IS NULL");
	expect_claim(J(01));
	/* A submit of A's raises A's floor as far as it may: to j01, running. */
	test_db_execf(conn, "SELECT importer._lock_user_and_check_limit('" USER_A "')");
	test_db_expectf(conn, "t",
	                "SELECT f.active_from = j.created_at FROM importer.user_active_floors f, "
	                "importer.import_jobs j WHERE f.user_id = '" USER_A "' AND j.id = '" J(01)
	                "'");
	expect_claim(J(03)); /* A is at the cap */
	expect_claim("none");
	finish(J(01));
	expect_claim(J(02));
}
END_TEST

/* Two submits commit out of their created_at order: the later job is
 * claimed while the earlier one's transaction is still open (its ready
 * trigger deferred to its commit, or, with immediate, already run, as if the
 * claim came between the trigger and the end of the commit), and the claim
 * sees no job before the later one. Once the earlier one commits it must be
 * claimed at once, not at the next full scan. */
static void claim_during_an_earlier_submit(bool immediate)
{
	PGconn *early = test_db_connect(DB);

	test_db_execf(early, immediate ? "BEGIN; SET CONSTRAINTS ALL IMMEDIATE" : "BEGIN");
	test_db_execf(early, "INSERT INTO importer.import_jobs (id, user_id, kind) "
	                     "VALUES ('" J(01) "', '" USER_A "', 'csv')");
	add_job(J(02), "csv", USER_B, 0, 0);
	expect_claim(J(02));
	test_db_execf(early, "COMMIT");
	test_db_expectf(conn, J(01),
	                "SELECT id FROM importer.import_jobs ORDER BY created_at LIMIT 1");
	expect_claim(J(01));
	PQfinish(early);
}

START_TEST(a_job_committed_after_a_later_one_was_claimed_is_claimed_next)
{
	claim_during_an_earlier_submit(false);
}
END_TEST

START_TEST(a_claim_during_a_commit_leaves_the_position_before_the_committing_job)
{
	claim_during_an_earlier_submit(true);
}
END_TEST

/* Two transactions each move both positions back, in opposite orders: one
 * waits for the other; neither fails with a deadlock. */
START_TEST(moving_both_positions_back_in_opposite_orders_does_not_deadlock)
{
	PGconn *t1 = test_db_connect(DB), *t2 = test_db_connect(DB);
	PGresult *res;

	add_job(J(01), "csv", USER_A, 0, 0);
	add_job(J(02), "noop", USER_A, 0, 0);
	expect_claim(J(01));
	test_db_expectf(conn, "1", "SELECT importer.complete_noops('w', 10)");
	/* Both positions are now at j01 / j02; the jobs below sort before. */
	test_db_execf(t1, "BEGIN; SET CONSTRAINTS ALL IMMEDIATE");
	test_db_execf(t2, "BEGIN; SET CONSTRAINTS ALL IMMEDIATE");
	add_job_on(t1, J(03), "noop", 60);
	ck_assert(PQsendQuery(t2, "INSERT INTO importer.import_jobs (id, user_id, kind, created_at) "
	                          "VALUES ('" J(04) "', '" USER_B "', 'csv', now() - interval '50 s'); "
	                          "INSERT INTO importer.import_jobs (id, user_id, kind, created_at) "
	                          "VALUES ('" J(05) "', '" USER_B "', 'noop', now() - interval '50 s')"));
	add_job_on(t1, J(06), "csv", 60);
	test_db_execf(t1, "COMMIT");
	while ((res = PQgetResult(t2)) != NULL) {
		ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
		PQclear(res);
	}
	test_db_execf(t2, "COMMIT");
	expect_claim(J(06));
	PQfinish(t1);
	PQfinish(t2);
}
END_TEST

START_TEST(a_job_the_position_passed_is_found_by_the_periodic_full_scan)
{
	add_job(J(01), "csv", USER_A, 0, 50);
	add_job(J(02), "csv", USER_B, 0, 40);
	/* What no trigger reports can leave (see sql/0011_keyset_claims.sql):
	 * the position past a pending job. */
	test_db_execf(conn, "UPDATE importer.claim_cursor c SET neg_priority = 0, "
	                    "created_at = j.created_at, id = j.id "
	                    "FROM importer.import_jobs j WHERE c.queue = 'import' AND j.id = '" J(02)
	                    "'");
	expect_claim(J(02));
	expect_claim("none");
	test_db_execf(conn, "UPDATE importer.claim_cursor SET full_scan_at = now() "
	                    "WHERE queue = 'import'");
	expect_claim(J(01));
	/* The full scan set the next one claim_full_scan_seconds (10) ahead. */
	test_db_expectf(conn, "t",
	                "SELECT full_scan_at > now() + interval '9 s' FROM importer.claim_cursor "
	                "WHERE queue = 'import'");
}
END_TEST

/* "t" when queue's position is the key of job id. */
#define POSITION_AT(id, queue)                                                                  \
	"SELECT (neg_priority, created_at, id) = (SELECT -priority::bigint, created_at, id "     \
	"FROM importer.import_jobs WHERE id = '" id "') "                                        \
	"FROM importer.claim_cursor WHERE queue = '" queue "'"

/* A full scan that finds nothing pending must not send the position back to
 * the start of the claim order: every claim after it would walk every dead
 * index entry from there (sql/0016_held_horizon.sql). */
START_TEST(a_full_scan_of_an_empty_queue_keeps_the_position)
{
	add_job(J(01), "csv", USER_A, 0, 50);
	add_job(J(02), "noop", USER_A, 0, 40);
	expect_claim(J(01));
	test_db_expectf(conn, "1", "SELECT importer.complete_noops('w', 10)");
	test_db_expectf(conn, "t", POSITION_AT(J(01), "import"));
	test_db_expectf(conn, "t", POSITION_AT(J(02), "noop"));

	test_db_execf(conn, "UPDATE importer.claim_cursor SET full_scan_at = now()");
	expect_claim("none");
	test_db_expectf(conn, "0", "SELECT importer.complete_noops('w', 10)");
	test_db_expectf(conn, "t", POSITION_AT(J(01), "import"));
	test_db_expectf(conn, "t", POSITION_AT(J(02), "noop"));
	/* Both full scans were made: the next ones are due later. */
	test_db_expectf(conn, "2",
	                "SELECT count(*) FROM importer.claim_cursor "
	                "WHERE full_scan_at > now() + interval '9 s'");
}
END_TEST

/* A position moves forward at most every 100 ms (sql/0016_held_horizon.sql):
 * one left behind still finds every job, and a full scan still moves it. */
START_TEST(a_position_moved_moments_ago_stays_and_claims_still_find_every_job)
{
	add_job(J(01), "csv", USER_A, 0, 50);
	add_job(J(02), "csv", USER_B, 0, 40);
	add_job(J(03), "noop", USER_A, 0, 30);
	add_job(J(04), "noop", USER_B, 0, 20);
	test_db_execf(conn, "UPDATE importer.claim_cursor SET moved_at = now() + interval '1 hour'");
	expect_claim(J(01));
	test_db_expectf(conn, "1", "SELECT importer.complete_noops('w', 1)");
	expect_claim(J(02));
	test_db_expectf(conn, "1", "SELECT importer.complete_noops('w', 1)");
	expect_claim("none");
	test_db_expectf(conn, "2 -2147483649",
	                "SELECT count(*) || ' ' || max(neg_priority) FROM importer.claim_cursor");
	test_db_execf(conn, "UPDATE importer.claim_cursor SET full_scan_at = now()");
	expect_claim("none");
	test_db_expectf(conn, "0", "SELECT importer.complete_noops('w', 1)");
	test_db_expectf(conn, "2",
	                "SELECT count(*) FROM importer.claim_cursor "
	                "WHERE full_scan_at > now() + interval '9 s' AND moved_at <= now()");
}
END_TEST

START_TEST(complete_noops_still_takes_every_due_noop_by_priority_then_age)
{
	add_job(J(01), "noop", USER_A, 0, 50);
	add_job(J(02), "noop", USER_A, 0, 40);
	add_job(J(03), "noop", USER_B, 0, 30);
	add_job(J(04), "noop", USER_B, 0, 20);
	add_job(J(05), "csv", USER_B, 0, 60); /* not a noop: left alone */
	test_db_execf(conn, "UPDATE importer.import_jobs SET run_after = now() + interval '1 hour' "
	                    "WHERE id = '" J(02) "'");
	test_db_expectf(conn, "2", "SELECT importer.complete_noops('w', 2)");
	test_db_expectf(conn, J(01) " " J(03),
	                "SELECT string_agg(id::text, ' ' ORDER BY id) FROM importer.import_jobs "
	                "WHERE status = 'completed'");
	/* A retried noop (before the position) and a high-priority new one. */
	test_db_execf(conn, "UPDATE importer.import_jobs SET status = 'pending', phase = 'queued', "
	                    "completed_at = NULL WHERE id = '" J(01) "'");
	add_job(J(06), "noop", USER_A, 9, 0);
	test_db_expectf(conn, "2", "SELECT importer.complete_noops('w', 2)");
	test_db_expectf(conn, J(01) " " J(06),
	                "SELECT string_agg(id::text, ' ' ORDER BY id) FROM importer.import_jobs "
	                "WHERE status = 'completed' AND id <> '" J(03) "'");
	test_db_expectf(conn, "1", "SELECT importer.complete_noops('w', 200)");
	/* The position stopped at j02 (not due), which is taken once it is. */
	test_db_execf(conn, "UPDATE importer.import_jobs SET run_after = now() "
	                    "WHERE id = '" J(02) "'");
	test_db_expectf(conn, "1", "SELECT importer.complete_noops('w', 200)");
	test_db_expectf(conn, "0", "SELECT importer.complete_noops('w', 200)");
	test_db_expectf(conn, "pending", "SELECT status FROM importer.import_jobs WHERE id = '" J(05) "'");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("claim");
	TCase *tc = tcase_create("db");

	tcase_add_unchecked_fixture(tc, create_database, NULL);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, claims_go_by_priority_then_age_across_the_whole_int_range);
	tcase_add_test(tc, a_job_made_pending_before_the_position_is_claimed_next);
	tcase_add_test(tc, a_job_not_due_or_at_the_fairness_cap_is_claimed_once_it_can_be);
	tcase_add_test(tc, a_running_job_older_than_the_pending_ones_still_counts_for_fairness);
	tcase_add_test(tc, a_job_committed_after_a_later_one_was_claimed_is_claimed_next);
	tcase_add_test(tc, a_claim_during_a_commit_leaves_the_position_before_the_committing_job);
	tcase_add_test(tc, moving_both_positions_back_in_opposite_orders_does_not_deadlock);
	tcase_add_test(tc, a_job_the_position_passed_is_found_by_the_periodic_full_scan);
	tcase_add_test(tc, a_full_scan_of_an_empty_queue_keeps_the_position);
	tcase_add_test(tc, a_position_moved_moments_ago_stays_and_claims_still_find_every_job);
	tcase_add_test(tc, complete_noops_still_takes_every_due_noop_by_priority_then_age);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
