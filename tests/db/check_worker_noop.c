/* check_worker_noop.c -- real worker processes drain noop jobs exactly once, woken by NOTIFY. */
#include <check.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_db.h"

#define DB     TEST_DB_NAME
#define USER_A "00000000-0000-4000-8000-00000000000a"
#define USER_B "00000000-0000-4000-8000-00000000000b"

static char database_env[4200];

static void create_database(void)
{
	test_db_create_env(DB, database_env, sizeof(database_env));
}

static PGconn *conn;

static void setup(void)
{
	conn = test_db_connect(DB);
	PQclear(test_db_exec(conn, "TRUNCATE importer.import_jobs CASCADE; "
	                           "INSERT INTO importer.settings (key, value, user_id) VALUES "
	                           "('max_active_jobs_per_user', '100000', '" USER_A "'), "
	                           "('max_active_jobs_per_user', '100000', '" USER_B "') "
	                           "ON CONFLICT (key, user_id) DO NOTHING; "
	                           "LISTEN importer_events"));
}

static void teardown(void)
{
	PQfinish(conn);
	conn = NULL;
}

static void start_worker(struct test_proc *p, const char *poll_ms)
{
	const char *argv[] = {IMPORTER_WORKER_BIN, NULL};
	char poll_env[64];
	const char *env[] = {database_env, poll_env, NULL};

	snprintf(poll_env, sizeof(poll_env), "IMPORTER_POLL_INTERVAL_MS=%s", poll_ms);
	test_proc_start(p, argv, env);
	ck_assert_msg(test_proc_wait_for(p, "\"event\":\"listen.ready\"", 10000), "%s", p->buf);
}

START_TEST(two_workers_complete_every_noop_job_exactly_once)
{
	struct test_proc w1, w2;
	char *v;

	PQclear(test_db_exec(conn, "SELECT importer.submit_job('noop', NULL::uuid, "
	                           "jsonb_build_object('user_id', CASE WHEN g % 2 = 0 THEN '" USER_A
	                           "' ELSE '" USER_B "' END)) FROM generate_series(1, 1000) g"));
	start_worker(&w1, "600000");
	start_worker(&w2, "600000");
	ck_assert_msg(test_db_wait_true(conn,
	                                "SELECT count(*) = 0 FROM importer.import_jobs "
	                                "WHERE status <> 'completed'",
	                                60000),
	              "not every job completed");
	ck_assert_int_eq(test_proc_stop(&w1, SIGTERM, 10000), 0);
	ck_assert_int_eq(test_proc_stop(&w2, SIGTERM, 10000), 0);
	v = test_db_value(conn,
	                  "SELECT count(*) || '/' || count(*) FILTER (WHERE phase = 'done' "
	                  "AND progress = 100 AND worker_id IS NOT NULL AND completed_at IS NOT "
	                  "NULL AND NOT total_is_estimate) FROM importer.import_jobs");
	ck_assert_str_eq(v, "1000/1000");
	free(v);
	/* noop writes no log lines. */
	v = test_db_value(conn, "SELECT count(*) FROM importer.import_logs");
	ck_assert_str_eq(v, "0");
	free(v);
}
END_TEST

START_TEST(an_idle_worker_wakes_on_notify_not_on_its_poll)
{
	struct test_proc w;
	long t0;

	/* The safety-net poll is ten minutes: only the NOTIFY can wake it. */
	start_worker(&w, "600000");
	t0 = test_now_ms();
	PQclear(test_db_exec(conn, "SELECT importer.submit_job('noop', NULL::uuid, "
	                           "'{\"user_id\":\"" USER_A "\"}')"));
	ck_assert_msg(test_db_wait_true(conn,
	                                "SELECT count(*) = 1 FROM importer.import_jobs "
	                                "WHERE status = 'completed'",
	                                5000),
	              "the job was not picked up");
	ck_assert_int_lt(test_now_ms() - t0, 5000);
	ck_assert_int_eq(test_proc_stop(&w, SIGTERM, 10000), 0);
}
END_TEST

/* A job waiting out a retry backoff gets no NOTIFY when it becomes due; the
 * idle worker wakes for it by itself, long before its poll tick. */
START_TEST(an_idle_worker_wakes_when_a_delayed_job_becomes_due)
{
	struct test_proc w;

	start_worker(&w, "600000");
	PQclear(test_db_exec(conn, "BEGIN; "
	                           "SELECT importer.submit_job('noop', NULL::uuid, "
	                           "'{\"user_id\":\"" USER_A "\"}'); "
	                           "UPDATE importer.import_jobs "
	                           "SET run_after = now() + interval '1500 ms'; COMMIT"));
	ck_assert_msg(test_db_wait_true(conn,
	                                "SELECT count(*) = 1 FROM importer.import_jobs "
	                                "WHERE status = 'completed'",
	                                10000),
	              "the delayed job was not picked up when due");
	/* Not before it was due. */
	test_db_expectf(conn, "t",
	                "SELECT completed_at >= run_after FROM importer.import_jobs");
	ck_assert_int_eq(test_proc_stop(&w, SIGTERM, 10000), 0);
}
END_TEST

START_TEST(jobs_submitted_while_no_worker_listens_are_found_at_start)
{
	struct test_proc w;

	PQclear(test_db_exec(conn, "SELECT importer.submit_job('noop', NULL::uuid, "
	                           "'{\"user_id\":\"" USER_B "\"}') FROM generate_series(1, 3)"));
	start_worker(&w, "600000");
	ck_assert_msg(test_db_wait_true(conn,
	                                "SELECT count(*) = 3 FROM importer.import_jobs "
	                                "WHERE status = 'completed'",
	                                10000),
	              "the catch-up pass after LISTEN did not find the jobs");
	ck_assert_int_eq(test_proc_stop(&w, SIGTERM, 10000), 0);
}
END_TEST

START_TEST(housekeeping_prunes_finished_jobs_past_retention_but_keeps_records)
{
	struct test_proc w;
	char *v;

	PQclear(test_db_exec(
	    conn, "SELECT importer.submit_job('noop', NULL::uuid, "
	          "'{\"user_id\":\"" USER_A "\"}') FROM generate_series(1, 2); "
	          "UPDATE importer.import_jobs SET status = 'completed', phase = 'done'; "
	          "INSERT INTO importer.records (user_id, collection, record_key, data, "
	          "job_id) SELECT user_id, 'kept', id::text, '{}', id "
	          "FROM importer.import_jobs; "
	          "UPDATE importer.import_jobs SET completed_at = now() - interval '8 days' "
	          "WHERE id = (SELECT min(id::text)::uuid FROM importer.import_jobs)"));
	/* A short poll: housekeeping runs on the worker's safety-net tick. */
	start_worker(&w, "300");
	ck_assert_msg(
	    test_db_wait_true(conn, "SELECT count(*) = 1 FROM importer.import_jobs", 10000),
	    "the expired job was not pruned");
	ck_assert_int_eq(test_proc_stop(&w, SIGTERM, 10000), 0);
	/* Both records stay; one names the pruned job, which is gone (0013). */
	v = test_db_value(conn, "SELECT count(*) || '/' || count(j.id) FROM importer.records r "
	                        "LEFT JOIN importer.import_jobs j ON j.id = r.job_id "
	                        "WHERE r.collection = 'kept'");
	ck_assert_str_eq(v, "2/1");
	free(v);
}
END_TEST

/* A fleet can finish jobs far faster than one 500-job slice a minute: while
 * pruning finds jobs, the next tick prunes again (sql/0014). */
START_TEST(housekeeping_works_through_a_backlog_of_expired_jobs)
{
	struct test_proc w;

	PQclear(test_db_exec(
	    conn, "INSERT INTO importer.import_jobs (user_id, kind, payload) "
	          "SELECT '" USER_A "', 'noop', '{}' FROM generate_series(1, 1300); "
	          "UPDATE importer.import_jobs SET status = 'completed', phase = 'done'; "
	          "UPDATE importer.import_jobs SET completed_at = now() - interval '8 days'"));
	start_worker(&w, "300");
	/* Three slices, a tick apart: well within the minute between prunes. */
	ck_assert_msg(test_db_wait_true(conn, "SELECT count(*) = 0 FROM importer.import_jobs",
					20000),
		      "the backlog was not pruned slice after slice");
	ck_assert_int_eq(test_proc_stop(&w, SIGTERM, 10000), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_noop");
	TCase *tc = tcase_create("db");

	tcase_add_unchecked_fixture(tc, create_database, NULL);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, two_workers_complete_every_noop_job_exactly_once);
	tcase_add_test(tc, an_idle_worker_wakes_on_notify_not_on_its_poll);
	tcase_add_test(tc, an_idle_worker_wakes_when_a_delayed_job_becomes_due);
	tcase_add_test(tc, jobs_submitted_while_no_worker_listens_are_found_at_start);
	tcase_add_test(tc, housekeeping_prunes_finished_jobs_past_retention_but_keeps_records);
	tcase_add_test(tc, housekeeping_works_through_a_backlog_of_expired_jobs);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
