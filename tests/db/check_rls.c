/* check_rls.c -- row-level security: a user sees and steers only their own jobs, files and data. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_db.h"

#define DB     TEST_DB_NAME
#define USER_A "aaaaaaaa-0000-4000-8000-00000000000a"
#define USER_B "bbbbbbbb-0000-4000-8000-00000000000b"
/* A job id nobody has. */
#define UNKNOWN_ID "00000000-dead-4000-8000-000000000000"
/* "id\n1\n" */
#define SMALL_CSV "'\\x69640a310a'::bytea"

#define ID_LEN 37

static PGconn *conn; /* superuser, one per test */

/* Jobs and an unsubmitted upload made by seed(), as the gateway and a worker would. */
static char a_pending[ID_LEN], a_failed[ID_LEN];
static char b_pending[ID_LEN], b_paused[ID_LEN], b_failed[ID_LEN], b_completed[ID_LEN];
static char b_upload[ID_LEN], b_file[ID_LEN];

/* The user-owned tables that importer_api may read (plus the two views). */
static const char *const user_tables[] = {
    "import_jobs", "import_logs", "import_errors", "import_files", "records", "notifications",
};

/* Runs sql, which must fail. Copies its SQLSTATE, and its message with every
 * occurrence of id replaced by "<id>", so two failures can be compared. */
static void failure_of(PGconn *c, const char *sql, const char *id, char state[6], char *msg,
                       size_t len)
{
	PGresult *res = PQexec(c, sql);
	const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	size_t used = 0, idlen = strlen(id);

	ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR, "%s\n-- should have failed", sql);
	snprintf(state, 6, "%s", s != NULL ? s : "");
	for (m = m != NULL ? m : ""; *m != '\0' && used + 5 < len;) {
		if (strncmp(m, id, idlen) == 0) {
			memcpy(msg + used, "<id>", 4);
			used += 4;
			m += idlen;
		} else {
			msg[used++] = *m++;
		}
	}
	msg[used] = '\0';
	PQclear(res);
}

/* The gateway's identity, session-wide: SET ROLE role and importer.user_id = user. */
static void act_as(PGconn *c, const char *role, const char *user)
{
	test_db_execf(
	    c,
	    "SELECT set_config('role', '%s', false), set_config('importer.user_id', '%s', "
	    "false)",
	    role, user);
}

/* A csv job of user in status, submitted on the user's behalf (as a worker may)
 * and then moved by a superuser UPDATE (as the worker would). */
static void new_job(char out[ID_LEN], const char *user, const char *status)
{
	test_db_getf(out, ID_LEN, conn,
	             "SELECT importer.submit_job('csv', " SMALL_CSV ", jsonb_build_object("
	             "'user_id', '%s', 'file_name', 'people.csv'))",
	             user);
	if (strcmp(status, "pending") != 0)
		test_db_execf(conn, "UPDATE importer.import_jobs SET status = '%s' WHERE id = '%s'",
		              status, out);
}

static void create_database(void)
{
	test_db_create(DB);
}

/* Two users' worth of everything: jobs in several states, a log line, a record
 * error and a record per job, an outbox row per failed job, a per-user setting
 * each, and an upload of B's that was never submitted. */
static void seed(void)
{
	test_db_reset(conn);
	new_job(a_pending, USER_A, "pending");
	new_job(a_failed, USER_A, "failed");
	new_job(b_pending, USER_B, "pending");
	new_job(b_paused, USER_B, "paused");
	new_job(b_failed, USER_B, "failed");
	new_job(b_completed, USER_B, "completed");
	test_db_execf(conn, "INSERT INTO importer.import_logs (job_id, event, message) "
	                    "SELECT id, 'test.line', 'hello' FROM importer.import_jobs; "
	                    "INSERT INTO importer.import_errors (job_id, record_index, message) "
	                    "SELECT id, 1, 'bad row' FROM importer.import_jobs; "
	                    "INSERT INTO importer.records "
	                    "(user_id, collection, record_key, data, job_id) "
	                    "SELECT user_id, 'people', id::text, '{\"secret\":1}', id "
	                    "FROM importer.import_jobs; "
	                    "INSERT INTO importer.settings (key, value, user_id) VALUES "
	                    "('max_active_jobs_per_user', '50', '" USER_A "'), "
	                    "('max_active_jobs_per_user', '60', '" USER_B "')");
	test_db_getf(b_file, sizeof(b_file), conn,
	             "SELECT file_id FROM importer.import_jobs WHERE id = '%s'", b_pending);
	test_db_execf(conn, "SELECT set_config('importer.user_id', '" USER_B "', false)");
	test_db_getf(b_upload, sizeof(b_upload), conn, "SELECT importer.begin_upload('b.csv')");
	test_db_execf(conn, "SELECT importer.append_chunk('%s', 0, " SMALL_CSV ")", b_upload);
	test_db_execf(conn, "SELECT set_config('importer.user_id', '', false)");
}

static void setup(void)
{
	conn = test_db_connect(DB);
	seed();
}

static void teardown(void)
{
	PQfinish(conn);
	conn = NULL;
}

/* A digest of everything of user's (of everyone's if user is ""), read by a
 * superuser: any change to a row changes it. */
static void fingerprint(char out[33], const char *user)
{
	char w[128];

	snprintf(w, sizeof(w), "('%s' = '' OR user_id::text = '%s')", user, user);
	test_db_getf(
	    out, 33, conn,
	    "SELECT md5(concat_ws('/', "
	    "(SELECT string_agg(t::text, ',' ORDER BY id) FROM importer.import_jobs t "
	    "WHERE %s), "
	    "(SELECT string_agg(t::text, ',' ORDER BY id) FROM importer.import_logs t "
	    "WHERE %s), "
	    "(SELECT string_agg(t::text, ',' ORDER BY id) FROM importer.import_errors t "
	    "WHERE %s), "
	    "(SELECT string_agg(t::text, ',' ORDER BY id) FROM importer.import_files t "
	    "WHERE %s), "
	    "(SELECT string_agg(c.file_id || ':' || c.seq || ':' || md5(c.data), ',' "
	    "ORDER BY c.file_id, c.seq) FROM importer.import_file_chunks c "
	    "JOIN importer.import_files t ON t.id = c.file_id WHERE %s), "
	    "(SELECT string_agg(t::text, ',' ORDER BY record_key) FROM importer.records t "
	    "WHERE %s), "
	    "(SELECT string_agg(t::text, ',' ORDER BY id) FROM importer.notifications t "
	    "WHERE %s), "
	    "(SELECT string_agg(t::text, ',' ORDER BY key, user_id) FROM importer.settings t "
	    "WHERE %s)))",
	    w, w, w, w, w, w, w, w);
}

/* Reading chunks as c shows none of B's bytes (RLS filters them). */
static void expect_b_chunks_hidden(PGconn *c)
{
	test_db_expectf(
	    c, "0",
	    "SELECT count(*) FROM importer.import_file_chunks WHERE file_id IN ('%s', '%s')",
	    b_upload, b_file);
}

/* c (importer_api without a usable identity) sees no user's rows and can do nothing. */
static void expect_sees_nothing(PGconn *c)
{
	for (size_t i = 0; i < sizeof(user_tables) / sizeof(user_tables[0]); i++)
		test_db_expectf(c, "0", "SELECT count(*) FROM importer.%s", user_tables[i]);
	test_db_expectf(c, "0", "SELECT count(*) FROM importer.job_overview");
	test_db_expectf(c, "0", "SELECT count(*) FROM importer.import_stats");
	test_db_expectf(c, "0", "SELECT count(*) FROM importer.settings WHERE user_id IS NOT NULL");
	expect_b_chunks_hidden(c);
	test_db_expect_errorf(c, "P0002", "SELECT importer.cancel_job('%s')", a_pending);
	test_db_expect_errorf(c, "P0002", "SELECT importer.delete_job('%s')", a_failed);
	test_db_expectf(c, "0", "SELECT importer.clear_jobs()");
	test_db_expect_errorf(c, "42501", "SELECT importer.submit_job('csv', " SMALL_CSV ")");
	test_db_expect_errorf(c, "42501", "SELECT importer.submit_job('noop', NULL::uuid)");
	test_db_expect_errorf(c, "42501", "SELECT importer.begin_upload('x.csv')");
}

START_TEST(user_sees_only_own_rows_in_every_table_and_view)
{
	char mine[32];

	/* The seed really holds rows of both users. */
	for (size_t i = 0; i < sizeof(user_tables) / sizeof(user_tables[0]); i++)
		test_db_expectf(conn, "t",
		                "SELECT count(*) FILTER (WHERE user_id = '" USER_A "') > 0 AND "
		                "count(*) FILTER (WHERE user_id = '" USER_B
		                "') > 0 FROM importer.%s",
		                user_tables[i]);

	act_as(conn, "importer_api", USER_A);
	for (size_t i = 0; i < sizeof(user_tables) / sizeof(user_tables[0]); i++) {
		test_db_execf(conn, "RESET ROLE");
		test_db_getf(mine, sizeof(mine), conn,
		             "SELECT count(*) FROM importer.%s WHERE user_id = '" USER_A "'",
		             user_tables[i]);
		test_db_execf(conn, "SET ROLE importer_api");
		test_db_expectf(conn, mine, "SELECT count(*) FROM importer.%s", user_tables[i]);
		test_db_expectf(conn, "0",
		                "SELECT count(*) FROM importer.%s WHERE user_id = '" USER_B "'",
		                user_tables[i]);
	}
	/* Looking B's job up by id finds nothing, in the table or the views. */
	test_db_expectf(conn, "0", "SELECT count(*) FROM importer.import_jobs WHERE id = '%s'",
	                b_failed);
	test_db_expectf(conn, "0", "SELECT count(*) FROM importer.import_logs WHERE job_id = '%s'",
	                b_failed);
	test_db_expectf(
	    conn, "0", "SELECT count(*) FROM importer.import_errors WHERE job_id = '%s'", b_failed);
	test_db_expectf(conn, "0", "SELECT count(*) FROM importer.records WHERE job_id = '%s'",
	                b_failed);
	test_db_expectf(conn, "0", "SELECT count(*) FROM importer.import_files WHERE id = '%s'",
	                b_upload);
	expect_b_chunks_hidden(conn);
	/* A may read back the bytes of A's own upload. */
	test_db_expectf(conn, "t",
	                "SELECT count(*) > 0 FROM importer.import_file_chunks c "
	                "JOIN importer.import_jobs j ON j.file_id = c.file_id WHERE j.id = '%s'",
	                a_pending);
	test_db_expectf(conn, "2/0",
	                "SELECT count(*) || '/' || count(*) FILTER (WHERE user_id <> '" USER_A "') "
	                "FROM importer.job_overview");
	/* import_stats counts A's two jobs, not the six there are. */
	test_db_expectf(conn, "2", "SELECT sum(jobs) FROM importer.import_stats");
	/* Settings: the global rows and A's own override, not B's. */
	test_db_expectf(conn, "50",
	                "SELECT value::text FROM importer.settings "
	                "WHERE key = 'max_active_jobs_per_user' AND user_id IS NOT NULL");
	test_db_expectf(conn, "1",
	                "SELECT count(*) FROM importer.settings WHERE user_id IS NOT NULL");
	test_db_expectf(conn, "t",
	                "SELECT count(*) > 10 FROM importer.settings WHERE user_id IS NULL");
}
END_TEST

START_TEST(steering_another_users_job_is_indistinguishable_from_an_unknown_id)
{
	/* Each op on a job of B's in a state where it would succeed for B. */
	const struct {
		const char *call; /* SELECT <call>('<id>'<args>) */
		const char *args;
		const char *job;
	} ops[] = {
	    {"* FROM importer.cancel_job", "", b_pending},
	    {"* FROM importer.pause_job", "", b_pending},
	    {"* FROM importer.resume_job", "", b_paused},
	    {"* FROM importer.retry_job", "", b_failed},
	    {"* FROM importer.retry_job", ", false", b_failed},
	    {"* FROM importer.retry_job", ", true", b_failed},
	    {"importer.delete_job", "", b_completed},
	    {"importer.delete_job", "", b_failed},
	};
	char before[33], after[33];
	char sql[256], state_b[6], state_u[6], msg_b[512], msg_u[512];

	fingerprint(before, USER_B);
	act_as(conn, "importer_api", USER_A);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		snprintf(sql, sizeof(sql), "SELECT %s('%s'%s)", ops[i].call, ops[i].job,
		         ops[i].args);
		failure_of(conn, sql, ops[i].job, state_b, msg_b, sizeof(msg_b));
		snprintf(sql, sizeof(sql), "SELECT %s('%s'%s)", ops[i].call, UNKNOWN_ID,
		         ops[i].args);
		failure_of(conn, sql, UNKNOWN_ID, state_u, msg_u, sizeof(msg_u));
		ck_assert_msg(strcmp(state_b, "P0002") == 0, "%s on B's job: got %s (%s)",
		              ops[i].call, state_b, msg_b);
		ck_assert_msg(strcmp(state_u, "P0002") == 0, "%s on an unknown id: got %s",
		              ops[i].call, state_u);
		ck_assert_msg(strcmp(msg_b, msg_u) == 0, "%s: '%s' tells B's job from '%s'",
		              ops[i].call, msg_b, msg_u);
	}
	/* clear_jobs removes A's one terminal job, none of B's. */
	test_db_expectf(conn, "1", "SELECT importer.clear_jobs()");
	test_db_expectf(conn, "0", "SELECT importer.clear_jobs('completed')");
	test_db_execf(conn, "RESET ROLE");
	fingerprint(after, USER_B);
	ck_assert_str_eq(after, before);
}
END_TEST

START_TEST(user_cannot_touch_another_users_upload)
{
	char before[33], after[33];

	fingerprint(before, USER_B);
	act_as(conn, "importer_api", USER_A);
	test_db_expect_errorf(conn, "P0002", "SELECT importer.append_chunk('%s', 1, " SMALL_CSV ")",
	                      b_upload);
	test_db_expect_errorf(conn, "P0002", "SELECT importer.append_chunk('%s', 0, " SMALL_CSV ")",
	                      b_upload);
	test_db_expect_errorf(conn, "P0002", "SELECT importer.submit_job('csv', '%s'::uuid)",
	                      b_upload);
	test_db_expect_errorf(conn, "P0002",
	                      "SELECT importer.submit_job('csv', '" UNKNOWN_ID "'::uuid)");
	/* Nor the file of one of B's submitted jobs. */
	test_db_expect_errorf(conn, "P0002", "SELECT importer.submit_job('ndjson', '%s'::uuid)",
	                      b_file);
	test_db_expect_errorf(conn, "P0002", "SELECT importer.append_chunk('%s', 1, " SMALL_CSV ")",
	                      b_file);
	test_db_execf(conn, "RESET ROLE");
	fingerprint(after, USER_B);
	ck_assert_str_eq(after, before);
	test_db_expectf(conn, "2",
	                "SELECT count(*) FROM importer.import_jobs WHERE user_id = '" USER_A "'");
}
END_TEST

START_TEST(api_role_cannot_write_any_table_directly)
{
	const char *const stmts[] = {
	    "INSERT INTO importer.import_jobs (user_id, kind) VALUES ('" USER_A "', 'noop')",
	    "UPDATE importer.import_jobs SET priority = 100",
	    "UPDATE importer.import_jobs SET status = 'pending' WHERE user_id = '" USER_A "'",
	    "DELETE FROM importer.import_jobs",
	    "INSERT INTO importer.import_logs (job_id, user_id, event, message) "
	    "SELECT id, user_id, 'x', 'y' FROM importer.import_jobs",
	    "UPDATE importer.import_logs SET message = 'x'",
	    "DELETE FROM importer.import_logs",
	    "INSERT INTO importer.import_errors (job_id, user_id, message) "
	    "SELECT id, user_id, 'x' FROM importer.import_jobs",
	    "UPDATE importer.import_errors SET message = 'x'",
	    "DELETE FROM importer.import_errors",
	    "INSERT INTO importer.import_files (user_id) VALUES ('" USER_A "')",
	    "UPDATE importer.import_files SET size = 0",
	    "DELETE FROM importer.import_files",
	    "INSERT INTO importer.import_file_chunks (file_id, seq, data) "
	    "SELECT id, 9, '\\x00' FROM importer.import_files",
	    "UPDATE importer.import_file_chunks SET data = '\\x00'",
	    "DELETE FROM importer.import_file_chunks",
	    "INSERT INTO importer.records (user_id, collection, record_key, data) "
	    "VALUES ('" USER_A "', 'people', 'k', '{}')",
	    "UPDATE importer.records SET data = '{}'",
	    "DELETE FROM importer.records",
	    "INSERT INTO importer.notifications (user_id, kind) VALUES ('" USER_A "', 'x')",
	    "UPDATE importer.notifications SET read_at = now()",
	    "DELETE FROM importer.notifications",
	    "INSERT INTO importer.settings (key, value, user_id) "
	    "VALUES ('max_running_per_user', '100', '" USER_A "')",
	    "UPDATE importer.settings SET value = '1000'",
	    "DELETE FROM importer.settings",
	    "TRUNCATE importer.import_jobs",
	    "SELECT nextval('importer.event_seq')",
	    /* On-behalf and internal entry points are not the API's. */
	    "SELECT importer.submit_job_for('" USER_B "', 'noop', NULL::uuid, '{}')",
	    "SELECT importer._submit_job('" USER_B "', true, 'noop', NULL, NULL, '{}')",
	};
	char before[33], after[33];

	fingerprint(before, "");
	act_as(conn, "importer_api", USER_A);
	for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++)
		test_db_expect_error(conn, "42501", stmts[i]);
	test_db_execf(conn, "RESET ROLE");
	fingerprint(after, "");
	ck_assert_str_eq(after, before);
}
END_TEST

START_TEST(without_identity_nothing_is_visible_and_nothing_can_be_submitted)
{
	PGconn *c = test_db_connect(DB);

	/* Never set on this connection. */
	test_db_execf(c, "SET ROLE importer_api");
	test_db_expectf(c, "", "SELECT current_setting('importer.user_id', true)");
	test_db_expectf(c, "t", "SELECT importer.current_user_id() IS NULL");
	expect_sees_nothing(c);
	/* Set to '' (what a pooled connection carries after a SET LOCAL). */
	test_db_execf(c, "SELECT set_config('importer.user_id', '', false)");
	test_db_expectf(c, "t", "SELECT importer.current_user_id() IS NULL");
	expect_sees_nothing(c);
	PQfinish(c);
}
END_TEST

START_TEST(transaction_scoped_identity_does_not_outlive_the_transaction)
{
	PGconn *c = test_db_connect(DB);

	test_db_execf(c, "BEGIN");
	test_db_execf(c, "SELECT set_config('role', 'importer_api', true), "
	                 "set_config('importer.user_id', '" USER_A "', true)");
	test_db_expectf(
	    c, "importer_api " USER_A " 2",
	    "SELECT current_user || ' ' || importer.current_user_id() || ' ' || count(*) "
	    "FROM importer.import_jobs");
	test_db_execf(c, "COMMIT");
	/* Back to the login role, and no identity left for the next transaction. */
	test_db_expectf(c, "t", "SELECT current_user = session_user");
	test_db_expectf(c, "t", "SELECT importer.current_user_id() IS NULL");
	test_db_execf(c, "SET ROLE importer_api");
	expect_sees_nothing(c);
	/* The same after a rolled-back transaction. */
	test_db_execf(c, "RESET ROLE; BEGIN");
	test_db_execf(c, "SELECT set_config('role', 'importer_api', true), "
	                 "set_config('importer.user_id', '" USER_B "', true)");
	test_db_expectf(c, "4", "SELECT count(*) FROM importer.import_jobs");
	test_db_execf(c, "ROLLBACK");
	test_db_expectf(c, "t", "SELECT importer.current_user_id() IS NULL");
	PQfinish(c);
}
END_TEST

START_TEST(worker_role_sees_every_users_rows)
{
	char all[128], seen[128];
	const char *count_all =
	    "SELECT concat_ws('/', (SELECT count(*) FROM importer.import_jobs), "
	    "(SELECT count(*) FROM importer.import_logs), "
	    "(SELECT count(*) FROM importer.import_errors), "
	    "(SELECT count(*) FROM importer.import_files), "
	    "(SELECT count(*) FROM importer.import_file_chunks), "
	    "(SELECT count(*) FROM importer.records), "
	    "(SELECT count(*) FROM importer.notifications), "
	    "(SELECT count(*) FROM importer.settings), "
	    "(SELECT count(*) FROM importer.job_overview), "
	    "(SELECT sum(jobs) FROM importer.import_stats))";

	test_db_getf(all, sizeof(all), conn, "%s", count_all);
	ck_assert_str_eq(all, "6/6/6/7/6/6/2/16/6/6");
	act_as(conn, "importer_worker", "");
	test_db_getf(seen, sizeof(seen), conn, "%s", count_all);
	ck_assert_str_eq(seen, all);
	/* An identity does not narrow the service role's view. */
	act_as(conn, "importer_worker", USER_A);
	test_db_getf(seen, sizeof(seen), conn, "%s", count_all);
	ck_assert_str_eq(seen, all);
}
END_TEST

START_TEST(only_the_service_role_submits_on_a_users_behalf)
{
	char job[ID_LEN], file_job[ID_LEN];

	act_as(conn, "importer_api", USER_A);
	test_db_expect_errorf(conn, "42501",
	                      "SELECT importer.submit_job('noop', NULL::uuid, "
	                      "'{\"user_id\": \"" USER_B "\"}')");
	test_db_expect_errorf(conn, "42501",
	                      "SELECT importer.submit_job('csv', " SMALL_CSV ", "
	                      "'{\"user_id\": \"" USER_A "\"}')");
	test_db_execf(conn, "RESET ROLE");
	test_db_expectf(conn, "0", "SELECT count(*) FROM importer.import_jobs WHERE kind = 'noop'");

	act_as(conn, "importer_worker", "");
	test_db_getf(job, sizeof(job), conn,
	             "SELECT importer.submit_job('noop', NULL::uuid, "
	             "'{\"user_id\": \"" USER_A "\", \"priority\": 5}')");
	test_db_getf(file_job, sizeof(file_job), conn,
	             "SELECT importer.submit_job('csv', " SMALL_CSV ", "
	             "'{\"user_id\": \"" USER_A "\", \"file_name\": \"w.csv\"}')");
	test_db_expectf(conn, USER_A " 5 pending",
	                "SELECT user_id || ' ' || priority || ' ' || status "
	                "FROM importer.import_jobs WHERE id = '%s'",
	                job);
	test_db_expectf(
	    conn, USER_A " " USER_A " w",
	    "SELECT j.user_id || ' ' || f.user_id || ' ' || j.collection "
	    "FROM importer.import_jobs j JOIN importer.import_files f ON f.id = j.file_id "
	    "WHERE j.id = '%s'",
	    file_job);
	/* The service role has no identity of its own to submit under. */
	test_db_expect_errorf(conn, "42501", "SELECT importer.submit_job('noop', NULL::uuid)");
	/* A sees both jobs as their own. */
	act_as(conn, "importer_api", USER_A);
	test_db_expectf(conn, "2",
	                "SELECT count(*) FROM importer.import_jobs WHERE id IN ('%s', '%s')", job,
	                file_job);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("rls");
	TCase *tc = tcase_create("db");

	tcase_add_unchecked_fixture(tc, create_database, NULL);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, user_sees_only_own_rows_in_every_table_and_view);
	tcase_add_test(tc, steering_another_users_job_is_indistinguishable_from_an_unknown_id);
	tcase_add_test(tc, user_cannot_touch_another_users_upload);
	tcase_add_test(tc, api_role_cannot_write_any_table_directly);
	tcase_add_test(tc, without_identity_nothing_is_visible_and_nothing_can_be_submitted);
	tcase_add_test(tc, transaction_scoped_identity_does_not_outlive_the_transaction);
	tcase_add_test(tc, worker_role_sees_every_users_rows);
	tcase_add_test(tc, only_the_service_role_submits_on_a_users_behalf);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
