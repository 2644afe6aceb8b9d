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

__attribute__((format(printf, 3, 0))) static void vformat(char *buf, size_t len, const char *fmt,
							   va_list ap)
{
	int n = vsnprintf(buf, len, fmt, ap);

	ck_assert_msg(n >= 0 && (size_t)n < len, "SQL too long: %s", fmt);
}

__attribute__((format(printf, 2, 3))) static void exec_sql(PGconn *c, const char *fmt, ...)
{
	char sql[4096];
	va_list ap;

	va_start(ap, fmt);
	vformat(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	PQclear(test_db_exec(c, sql));
}

/* Copies the single value of a query into out ("" for NULL). */
__attribute__((format(printf, 4, 5))) static void get_value(char *out, size_t len, PGconn *c,
							    const char *fmt, ...)
{
	char sql[4096];
	char *v;
	va_list ap;

	va_start(ap, fmt);
	vformat(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	v = test_db_value(c, sql);
	ck_assert_msg(strlen(v) < len, "%s\n-- value too long: %s", sql, v);
	strcpy(out, v);
	free(v);
}

__attribute__((format(printf, 3, 4))) static void expect_value(PGconn *c, const char *want,
							       const char *fmt, ...)
{
	char sql[4096];
	char *v;
	va_list ap;

	va_start(ap, fmt);
	vformat(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	v = test_db_value(c, sql);
	ck_assert_msg(strcmp(v, want) == 0, "%s\n-- expected '%s', got '%s'", sql, want, v);
	free(v);
}

__attribute__((format(printf, 3, 4))) static void expect_error(PGconn *c, const char *sqlstate,
							       const char *fmt, ...)
{
	char sql[4096];
	va_list ap;

	va_start(ap, fmt);
	vformat(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	test_db_expect_error(c, sqlstate, sql);
}

/* A job of user's written straight into the table, as an operator might. */
static void insert_job(char out[ID_LEN], const char *user, const char *kind, const char *status)
{
	get_value(out, ID_LEN, conn,
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
	exec_sql(conn, "TRUNCATE importer.import_jobs, importer.import_logs, "
		       "importer.import_errors, importer.import_files, "
		       "importer.import_file_chunks, importer.records, importer.notifications, "
		       "importer.replace_staging; "
		       "DELETE FROM importer.settings WHERE user_id IS NOT NULL");
}

static void teardown(void)
{
	PQfinish(conn);
	conn = NULL;
}

START_TEST(job_constraints_reject_impossible_values)
{
	const char *const bad_sets[] = {
		"status = 'bogus'",	    "status = 'PENDING'",	 "progress = 101",
		"progress = -1",	    "import_mode = 'merge'",	 "kind = 'xml'",
		"phase = 'bogus'",	    "processed_items = -1",	 "attempts = -1",
		"max_attempts = 0",	    "payload = '[]'",		 "counts = '1'",
		"collection = ''",	    "idempotency_key = ''",	 "eta_seconds = -1",
	};
	char job[ID_LEN], before[4096], after[4096];

	insert_job(job, USER_A, "csv", "pending");
	get_value(before, sizeof(before), conn,
		  "SELECT t::text FROM importer.import_jobs t WHERE id = '%s'", job);
	for (size_t i = 0; i < sizeof(bad_sets) / sizeof(bad_sets[0]); i++)
		expect_error(conn, "23514", "UPDATE importer.import_jobs SET %s WHERE id = '%s'",
			     bad_sets[i], job);
	expect_error(conn, "23514",
		     "INSERT INTO importer.import_jobs (user_id, kind) "
		     "VALUES ('" USER_A "', 'xml')");
	expect_error(conn, "23514",
		     "INSERT INTO importer.import_jobs (user_id, kind, import_mode) "
		     "VALUES ('" USER_A "', 'csv', 'merge')");
	get_value(after, sizeof(after), conn,
		  "SELECT t::text FROM importer.import_jobs t WHERE id = '%s'", job);
	ck_assert_str_eq(after, before);
	/* The bounds themselves are fine. */
	exec_sql(conn, "UPDATE importer.import_jobs SET progress = 100 WHERE id = '%s'", job);
	exec_sql(conn, "UPDATE importer.import_jobs SET progress = 0 WHERE id = '%s'", job);
}
END_TEST

START_TEST(deleting_a_job_keeps_its_records_and_drops_its_history)
{
	char job[ID_LEN], other[ID_LEN];

	exec_sql(conn, "SELECT set_config('role', 'importer_api', false), "
		       "set_config('importer.user_id', '" USER_A "', false)");
	get_value(job, sizeof(job), conn,
		  "SELECT importer.submit_job('csv', " SMALL_CSV ", '{\"file_name\": \"p.csv\"}')");
	exec_sql(conn, "RESET ROLE");
	insert_job(other, USER_A, "csv", "completed");
	/* The worker's output: two records, a log line, a record error. */
	exec_sql(conn, "INSERT INTO importer.records "
		       "(user_id, collection, record_key, data, job_id) "
		       "VALUES ('" USER_A "', 'p', 'k1', '{\"name\": \"Ann\"}', '%s'), "
		       "('" USER_A "', 'p', 'k2', '{\"name\": \"Bob\"}', '%s'); "
		       "INSERT INTO importer.import_logs (job_id, event, message) "
		       "VALUES ('%s', 'batch.done', 'ok'), ('%s', 'batch.done', 'ok'); "
		       "INSERT INTO importer.import_errors (job_id, record_index, message) "
		       "VALUES ('%s', 3, 'ragged row'), ('%s', 3, 'ragged row')",
		 job, other, job, other, job, other);
	exec_sql(conn, "UPDATE importer.import_jobs SET status = 'failed' WHERE id = '%s'", job);

	exec_sql(conn, "SELECT set_config('role', 'importer_api', false)");
	exec_sql(conn, "SELECT importer.delete_job('%s')", job);
	exec_sql(conn, "RESET ROLE");

	expect_value(conn, "k1 null {\"name\": \"Ann\"},k2 true {\"name\": \"Bob\"}",
		     "SELECT string_agg(concat_ws(' ', record_key, "
		     "coalesce((job_id = '%s')::text, 'null'), data), ',' "
		     "ORDER BY record_key) FROM importer.records",
		     other);
	expect_value(conn, "0 0 1 1",
		     "SELECT concat_ws(' ', "
		     "(SELECT count(*) FROM importer.import_logs WHERE job_id = '%s'), "
		     "(SELECT count(*) FROM importer.import_errors WHERE job_id = '%s'), "
		     "(SELECT count(*) FROM importer.import_logs WHERE job_id = '%s'), "
		     "(SELECT count(*) FROM importer.import_errors WHERE job_id = '%s'))",
		     job, job, other, other);
	/* The job's stored file went with it. */
	expect_value(conn, "0 0",
		     "SELECT (SELECT count(*) FROM importer.import_files) || ' ' || "
		     "(SELECT count(*) FROM importer.import_file_chunks)");
	/* An operator's plain DELETE behaves the same. */
	exec_sql(conn, "DELETE FROM importer.import_jobs WHERE id = '%s'", other);
	expect_value(conn, "2 0 0",
		     "SELECT concat_ws(' ', "
		     "(SELECT count(*) FROM importer.records WHERE job_id IS NULL), "
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
		expect_value(conn, defaults[i].value,
			     "SELECT value #>> '{}' FROM importer.settings "
			     "WHERE key = '%s' AND user_id IS NULL",
			     defaults[i].key);
		expect_value(conn, defaults[i].value, "SELECT importer.setting_int('%s')",
			     defaults[i].key);
		expect_value(conn, defaults[i].value,
			     "SELECT importer.setting_int('%s', '" USER_A "')", defaults[i].key);
	}
}
END_TEST

START_TEST(per_user_setting_overrides_the_global_one_for_that_user_only)
{
	exec_sql(conn, "INSERT INTO importer.settings (key, value, user_id) "
		       "VALUES ('max_running_per_user', '7', '" USER_A "')");
	expect_value(conn, "7 2 2",
		     "SELECT concat_ws(' ', importer.setting_int('max_running_per_user', '" USER_A
		     "'), importer.setting_int('max_running_per_user', '" USER_B "'), "
		     "importer.setting_int('max_running_per_user'))");
	/* One row per key and user, the global row included. */
	expect_error(conn, "23505",
		     "INSERT INTO importer.settings (key, value, user_id) "
		     "VALUES ('max_running_per_user', '8', '" USER_A "')");
	expect_error(conn, "23505", "INSERT INTO importer.settings (key, value) "
				    "VALUES ('max_running_per_user', '8')");
	exec_sql(conn, "INSERT INTO importer.settings (key, value, user_id) "
		       "VALUES ('max_running_per_user', '9', '" USER_A "') "
		       "ON CONFLICT (key, user_id) DO UPDATE SET value = EXCLUDED.value");
	expect_value(conn, "9 2",
		     "SELECT concat_ws(' ', importer.setting_int('max_running_per_user', '" USER_A
		     "'), importer.setting_int('max_running_per_user', '" USER_B "'))");
	/* A limit the API enforces follows the override. */
	exec_sql(conn, "INSERT INTO importer.settings (key, value, user_id) "
		       "VALUES ('max_active_jobs_per_user', '1', '" USER_A "')");
	exec_sql(conn, "SELECT set_config('role', 'importer_api', false), "
		       "set_config('importer.user_id', '" USER_A "', false)");
	exec_sql(conn, "SELECT importer.submit_job('noop', NULL::uuid)");
	expect_error(conn, "53400", "SELECT importer.submit_job('noop', NULL::uuid)");
	exec_sql(conn, "SELECT set_config('importer.user_id', '" USER_B "', false)");
	exec_sql(conn, "SELECT importer.submit_job('noop', NULL::uuid)");
	exec_sql(conn, "SELECT importer.submit_job('noop', NULL::uuid)");
}
END_TEST

START_TEST(record_key_is_at_most_512_bytes)
{
#define INSERT_KEY                                                                                 \
	"INSERT INTO importer.records (user_id, collection, record_key, data) "                    \
	"VALUES ('" USER_A "', 'c', %s, '{}')"
	exec_sql(conn, INSERT_KEY, "repeat('a', 512)");
	exec_sql(conn, INSERT_KEY, "repeat(U&'\\20AC', 170)"); /* 510 bytes */
	expect_error(conn, "23514", INSERT_KEY, "repeat('b', 513)");
	/* Bytes, not characters: 171 euro signs are 513 bytes. */
	expect_error(conn, "23514", INSERT_KEY, "repeat(U&'\\20AC', 171)");
	expect_error(conn, "23514", INSERT_KEY, "''");
	expect_value(conn, "2", "SELECT count(*) FROM importer.records");
#undef INSERT_KEY
}
END_TEST

START_TEST(views_apply_the_callers_rls_and_stats_report_a_success_rate)
{
	const char *const jobs[][2] = {
		{"csv", "completed"}, {"csv", "completed"},	 {"csv", "completed"},
		{"csv", "failed"},    {"ndjson", "pending"},	 {"backup", "completed"},
		{"backup", "cancelled"},
	};
	char job[ID_LEN];

	expect_value(conn, "import_stats:true job_overview:true",
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
	exec_sql(conn, "UPDATE importer.import_jobs SET created_at = now() - interval '2 days' "
		       "WHERE id = '%s'",
		 job);

	exec_sql(conn, "SELECT set_config('role', 'importer_api', false), "
		       "set_config('importer.user_id', '" USER_A "', false)");
	expect_value(conn,
		     "backup cancelled 1 0.5, backup completed 1 0.5, csv completed 3 0.75, "
		     "csv failed 1 0.75, ndjson pending 1 -",
		     "SELECT string_agg(concat_ws(' ', kind, status, jobs, "
		     "coalesce(trim(trailing '0' FROM success_rate::text), '-')), ', ' "
		     "ORDER BY kind, status) FROM importer.import_stats");
	expect_value(conn, "8", "SELECT count(*) FROM importer.job_overview");
	exec_sql(conn, "RESET ROLE");
	expect_value(conn, "8", "SELECT sum(jobs) FROM importer.import_stats");
}
END_TEST

START_TEST(service_roles_exist_and_cannot_log_in)
{
	expect_value(conn, "importer_api f f f, importer_worker f f f",
		     "SELECT string_agg(concat_ws(' ', rolname, rolcanlogin, rolsuper, "
		     "rolbypassrls), ', ' ORDER BY rolname) FROM pg_roles "
		     "WHERE rolname IN ('importer_api', 'importer_worker')");
}
END_TEST

START_TEST(row_level_security_is_on_for_every_user_owned_table)
{
	const char *const tables[] = {
		"import_jobs",	      "import_logs", "import_errors", "import_files",
		"import_file_chunks", "records",     "notifications", "settings",
	};

	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		expect_value(conn, "t",
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
