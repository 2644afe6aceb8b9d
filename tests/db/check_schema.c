/* check_schema.c -- constraints, data kept on delete, default settings, views, roles, RLS flags. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_db.h"

#define DB     TEST_DB_NAME
#define USER_A "aaaaaaaa-0000-4000-8000-00000000000a"
#define USER_B "bbbbbbbb-0000-4000-8000-00000000000b"
/* "id\n1\n" */
#define SMALL_CSV "'\\x69640a310a'::bytea"

#define ID_LEN 37

static PGconn *conn; /* superuser, one per test */

/* A job of user's written straight into the table, as an operator might. */
static void insert_job(char out[ID_LEN], const char *user, const char *kind, const char *status)
{
	test_db_getf(out, ID_LEN, conn,
	             "INSERT INTO importer.import_jobs (user_id, kind, status) "
	             "VALUES ('%s', '%s', '%s') RETURNING id",
	             user, kind, status);
}

static void create_database(void)
{
	test_db_create(DB);
}

static void setup(void)
{
	conn = test_db_connect(DB);
	test_db_reset(conn);
}

static void teardown(void)
{
	PQfinish(conn);
	conn = NULL;
}

START_TEST(job_constraints_reject_impossible_values)
{
	const char *const bad_sets[] = {
	    "status = 'bogus'", "status = 'PENDING'",    "progress = 101",
	    "progress = -1",    "import_mode = 'merge'", "kind = 'xml'",
	    "phase = 'bogus'",  "processed_items = -1",  "attempts = -1",
	    "max_attempts = 0", "payload = '[]'",        "counts = '1'",
	    "collection = ''",  "idempotency_key = ''",  "eta_seconds = -1",
	};
	char job[ID_LEN], before[4096], after[4096];

	insert_job(job, USER_A, "csv", "pending");
	test_db_getf(before, sizeof(before), conn,
	             "SELECT t::text FROM importer.import_jobs t WHERE id = '%s'", job);
	for (size_t i = 0; i < sizeof(bad_sets) / sizeof(bad_sets[0]); i++)
		test_db_expect_errorf(conn, "23514",
		                      "UPDATE importer.import_jobs SET %s WHERE id = '%s'",
		                      bad_sets[i], job);
	test_db_expect_errorf(conn, "23514",
	                      "INSERT INTO importer.import_jobs (user_id, kind) "
	                      "VALUES ('" USER_A "', 'xml')");
	test_db_expect_errorf(conn, "23514",
	                      "INSERT INTO importer.import_jobs (user_id, kind, import_mode) "
	                      "VALUES ('" USER_A "', 'csv', 'merge')");
	test_db_getf(after, sizeof(after), conn,
	             "SELECT t::text FROM importer.import_jobs t WHERE id = '%s'", job);
	ck_assert_str_eq(after, before);
	/* The bounds themselves are fine. */
	test_db_execf(conn, "UPDATE importer.import_jobs SET progress = 100 WHERE id = '%s'", job);
	test_db_execf(conn, "UPDATE importer.import_jobs SET progress = 0 WHERE id = '%s'", job);
}
END_TEST

START_TEST(deleting_a_job_keeps_its_records_and_drops_its_history)
{
	char job[ID_LEN], other[ID_LEN];

	test_db_execf(conn, "SELECT set_config('role', 'importer_api', false), "
	                    "set_config('importer.user_id', '" USER_A "', false)");
	test_db_getf(job, sizeof(job), conn,
	             "SELECT importer.submit_job('csv', " SMALL_CSV
	             ", '{\"file_name\": \"p.csv\"}')");
	test_db_execf(conn, "RESET ROLE");
	insert_job(other, USER_A, "csv", "completed");
	/* The worker's output: two records, a log line, a record error. */
	test_db_execf(conn,
	              "INSERT INTO importer.records "
	              "(user_id, collection, record_key, data, job_id) "
	              "VALUES ('" USER_A "', 'p', 'k1', '{\"name\": \"Ann\"}', '%s'), "
	              "('" USER_A "', 'p', 'k2', '{\"name\": \"Bob\"}', '%s'); "
	              "INSERT INTO importer.import_logs (job_id, event, message) "
	              "VALUES ('%s', 'batch.done', 'ok'), ('%s', 'batch.done', 'ok'); "
	              "INSERT INTO importer.import_errors (job_id, record_index, message) "
	              "VALUES ('%s', 3, 'ragged row'), ('%s', 3, 'ragged row')",
	              job, other, job, other, job, other);
	test_db_execf(conn, "UPDATE importer.import_jobs SET status = 'failed' WHERE id = '%s'",
	              job);

	test_db_execf(conn, "SELECT set_config('role', 'importer_api', false)");
	test_db_execf(conn, "SELECT importer.delete_job('%s')", job);
	test_db_execf(conn, "RESET ROLE");

	/* The records stay; k1 names a job that is gone (sql/0013), k2 still
	 * the other job. */
	test_db_expectf(conn, "k1 gone {\"name\": \"Ann\"},k2 other {\"name\": \"Bob\"}",
	                "SELECT string_agg(concat_ws(' ', record_key, CASE WHEN NOT EXISTS "
	                "(SELECT FROM importer.import_jobs j WHERE j.id = r.job_id) THEN 'gone' "
	                "WHEN job_id = '%s' THEN 'other' END, data), ',' ORDER BY record_key) "
	                "FROM importer.records r",
	                other);
	test_db_expectf(conn, "0 0 1 1",
	                "SELECT concat_ws(' ', "
	                "(SELECT count(*) FROM importer.import_logs WHERE job_id = '%s'), "
	                "(SELECT count(*) FROM importer.import_errors WHERE job_id = '%s'), "
	                "(SELECT count(*) FROM importer.import_logs WHERE job_id = '%s'), "
	                "(SELECT count(*) FROM importer.import_errors WHERE job_id = '%s'))",
	                job, job, other, other);
	/* The job's stored file went with it. */
	test_db_expectf(conn, "0 0",
	                "SELECT (SELECT count(*) FROM importer.import_files) || ' ' || "
	                "(SELECT count(*) FROM importer.import_file_chunks)");
	/* An operator's plain DELETE behaves the same. */
	test_db_execf(conn, "DELETE FROM importer.import_jobs WHERE id = '%s'", other);
	test_db_expectf(conn, "2 0 0",
	                "SELECT concat_ws(' ', "
	                "(SELECT count(*) FROM importer.records r WHERE NOT EXISTS "
	                "(SELECT FROM importer.import_jobs j WHERE j.id = r.job_id)), "
	                "(SELECT count(*) FROM importer.import_logs), "
	                "(SELECT count(*) FROM importer.import_errors))");
}
END_TEST

START_TEST(default_settings_have_the_designed_values)
{
	const struct {
		const char *key;
		const char *value;
	} defaults[] = {
	    {"max_active_jobs_per_user", "20"},
	    {"max_running_per_user", "2"},
	    {"max_sse_streams_per_user", "20"},
	    {"batch_rows", "5000"},
	    {"batch_bytes", "8388608"},
	    {"batch_pause_ms", "0"},
	    {"max_attempts", "3"},
	    {"max_rescues", "5"},
	    {"lease_seconds", "15"},
	    {"retention_days", "7"},
	    {"max_logs_per_job", "1000"},
	    {"max_errors_stored", "10000"},
	    {"max_record_bytes", "16777216"},
	    {"notify_min_items", "200"},
	};

	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		test_db_expectf(conn, defaults[i].value,
		                "SELECT value #>> '{}' FROM importer.settings "
		                "WHERE key = '%s' AND user_id IS NULL",
		                defaults[i].key);
		test_db_expectf(conn, defaults[i].value, "SELECT importer.setting_int('%s')",
		                defaults[i].key);
		test_db_expectf(conn, defaults[i].value,
		                "SELECT importer.setting_int('%s', '" USER_A "')", defaults[i].key);
	}
}
END_TEST

START_TEST(per_user_setting_overrides_the_global_one_for_that_user_only)
{
	test_db_execf(conn, "INSERT INTO importer.settings (key, value, user_id) "
	                    "VALUES ('max_running_per_user', '7', '" USER_A "')");
	test_db_expectf(
	    conn, "7 2 2",
	    "SELECT concat_ws(' ', importer.setting_int('max_running_per_user', '" USER_A
	    "'), importer.setting_int('max_running_per_user', '" USER_B "'), "
	    "importer.setting_int('max_running_per_user'))");
	/* One row per key and user, the global row included. */
	test_db_expect_errorf(conn, "23505",
	                      "INSERT INTO importer.settings (key, value, user_id) "
	                      "VALUES ('max_running_per_user', '8', '" USER_A "')");
	test_db_expect_errorf(conn, "23505",
	                      "INSERT INTO importer.settings (key, value) "
	                      "VALUES ('max_running_per_user', '8')");
	test_db_execf(conn, "INSERT INTO importer.settings (key, value, user_id) "
	                    "VALUES ('max_running_per_user', '9', '" USER_A "') "
	                    "ON CONFLICT (key, user_id) DO UPDATE SET value = EXCLUDED.value");
	test_db_expectf(
	    conn, "9 2",
	    "SELECT concat_ws(' ', importer.setting_int('max_running_per_user', '" USER_A
	    "'), importer.setting_int('max_running_per_user', '" USER_B "'))");
	/* A limit the API enforces follows the override. */
	test_db_execf(conn, "INSERT INTO importer.settings (key, value, user_id) "
	                    "VALUES ('max_active_jobs_per_user', '1', '" USER_A "')");
	test_db_execf(conn, "SELECT set_config('role', 'importer_api', false), "
	                    "set_config('importer.user_id', '" USER_A "', false)");
	test_db_execf(conn, "SELECT importer.submit_job('noop', NULL::uuid)");
	test_db_expect_errorf(conn, "53400", "SELECT importer.submit_job('noop', NULL::uuid)");
	test_db_execf(conn, "SELECT set_config('importer.user_id', '" USER_B "', false)");
	test_db_execf(conn, "SELECT importer.submit_job('noop', NULL::uuid)");
	test_db_execf(conn, "SELECT importer.submit_job('noop', NULL::uuid)");
}
END_TEST

START_TEST(record_key_is_at_most_512_bytes)
{
#define INSERT_KEY                                                                                 \
	"INSERT INTO importer.records (user_id, collection, record_key, data) "                    \
	"VALUES ('" USER_A "', 'c', %s, '{}')"
	test_db_execf(conn, INSERT_KEY, "repeat('a', 512)");
	test_db_execf(conn, INSERT_KEY, "repeat(U&'\\20AC', 170)"); /* 510 bytes */
	test_db_expect_errorf(conn, "23514", INSERT_KEY, "repeat('b', 513)");
	/* Bytes, not characters: 171 euro signs are 513 bytes. */
	test_db_expect_errorf(conn, "23514", INSERT_KEY, "repeat(U&'\\20AC', 171)");
	test_db_expect_errorf(conn, "23514", INSERT_KEY, "''");
	test_db_expectf(conn, "2", "SELECT count(*) FROM importer.records");
#undef INSERT_KEY
}
END_TEST

START_TEST(views_apply_the_callers_rls_and_stats_report_a_success_rate)
{
	const char *const jobs[][2] = {
	    {"csv", "completed"},    {"csv", "completed"},  {"csv", "completed"},
	    {"csv", "failed"},       {"ndjson", "pending"}, {"backup", "completed"},
	    {"backup", "cancelled"},
	};
	char job[ID_LEN];

	test_db_expectf(conn, "import_stats:true job_overview:true",
	                "SELECT string_agg(relname || ':' || "
	                "('security_invoker=true' = ANY (reloptions) OR "
	                "'security_invoker=on' = ANY (reloptions)), ' ' ORDER BY relname) "
	                "FROM pg_class WHERE oid IN ('importer.job_overview'::regclass, "
	                "'importer.import_stats'::regclass)");

	for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++)
		insert_job(job, USER_A, jobs[i][0], jobs[i][1]);
	/* B's failures count for B only; old jobs are outside the 24 hours. */
	insert_job(job, USER_B, "csv", "failed");
	insert_job(job, USER_A, "csv", "failed");
	test_db_execf(conn,
	              "UPDATE importer.import_jobs SET created_at = now() - interval '2 days' "
	              "WHERE id = '%s'",
	              job);

	test_db_execf(conn, "SELECT set_config('role', 'importer_api', false), "
	                    "set_config('importer.user_id', '" USER_A "', false)");
	test_db_expectf(conn,
	                "backup cancelled 1 0.5, backup completed 1 0.5, csv completed 3 0.75, "
	                "csv failed 1 0.75, ndjson pending 1 -",
	                "SELECT string_agg(concat_ws(' ', kind, status, jobs, "
	                "coalesce(trim(trailing '0' FROM success_rate::text), '-')), ', ' "
	                "ORDER BY kind, status) FROM importer.import_stats");
	test_db_expectf(conn, "8", "SELECT count(*) FROM importer.job_overview");
	test_db_execf(conn, "RESET ROLE");
	test_db_expectf(conn, "8", "SELECT sum(jobs) FROM importer.import_stats");
}
END_TEST

START_TEST(service_roles_exist_and_cannot_log_in)
{
	test_db_expectf(conn, "importer_api f f f, importer_worker f f f",
	                "SELECT string_agg(concat_ws(' ', rolname, rolcanlogin, rolsuper, "
	                "rolbypassrls), ', ' ORDER BY rolname) FROM pg_roles "
	                "WHERE rolname IN ('importer_api', 'importer_worker')");
}
END_TEST

START_TEST(row_level_security_is_on_for_every_user_owned_table)
{
	const char *const tables[] = {
	    "import_jobs",        "import_logs", "import_errors", "import_files",
	    "import_file_chunks", "records",     "notifications", "settings",
	};

	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		test_db_expectf(conn, "t",
		                "SELECT relrowsecurity FROM pg_class "
		                "WHERE oid = 'importer.%s'::regclass",
		                tables[i]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("schema");
	TCase *tc = tcase_create("db");

	tcase_add_unchecked_fixture(tc, create_database, NULL);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, job_constraints_reject_impossible_values);
	tcase_add_test(tc, deleting_a_job_keeps_its_records_and_drops_its_history);
	tcase_add_test(tc, default_settings_have_the_designed_values);
	tcase_add_test(tc, per_user_setting_overrides_the_global_one_for_that_user_only);
	tcase_add_test(tc, record_key_is_at_most_512_bytes);
	tcase_add_test(tc, views_apply_the_callers_rls_and_stats_report_a_success_rate);
	tcase_add_test(tc, service_roles_exist_and_cannot_log_in);
	tcase_add_test(tc, row_level_security_is_on_for_every_user_owned_table);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
