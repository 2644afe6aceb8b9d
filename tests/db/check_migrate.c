/* check_migrate.c -- the migrations runner: empty database, re-run, concurrency, failure. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "migrate.h"
#include "test_db.h"

#define DB TEST_DB_NAME

static PGconn *conn;

static void setup(void)
{
	log_init("test", LOG_WARN, 2);
	test_db_create_empty(DB);
	conn = test_db_connect(DB);
}

static void teardown(void)
{
	PQfinish(conn);
	conn = NULL;
}

static int count_applied(void)
{
	char *v = test_db_value(conn, "SELECT count(*) FROM importer.schema_migrations");
	int n = atoi(v);

	free(v);
	return n;
}

START_TEST(apply_to_empty_then_again_is_a_noop)
{
	char err[1024];
	int applied;

	applied =
	    migrate_apply(conn, migrations_embedded, migrations_embedded_count, err, sizeof(err));
	ck_assert_msg(applied == (int)migrations_embedded_count, "applied %d: %s", applied, err);
	ck_assert_int_eq(count_applied(), (int)migrations_embedded_count);
	/* What DESIGN.md names exists. */
	PQclear(test_db_exec(
	    conn, "SELECT importer.current_user_id(), "
	          "'importer.import_jobs'::regclass, 'importer.import_logs'::regclass, "
	          "'importer.import_errors'::regclass, 'importer.import_files'::regclass, "
	          "'importer.import_file_chunks'::regclass, 'importer.records'::regclass, "
	          "'importer.settings'::regclass, 'importer.notifications'::regclass, "
	          "'importer.job_overview'::regclass, 'importer.import_stats'::regclass"));
	applied =
	    migrate_apply(conn, migrations_embedded, migrations_embedded_count, err, sizeof(err));
	ck_assert_msg(applied == 0, "second run applied %d: %s", applied, err);
	ck_assert_int_eq(count_applied(), (int)migrations_embedded_count);
}
END_TEST

START_TEST(versions_are_ordered_and_unique)
{
	for (size_t i = 1; i < migrations_embedded_count; i++)
		ck_assert_msg(
		    strcmp(migrations_embedded[i - 1].version, migrations_embedded[i].version) < 0,
		    "%s before %s", migrations_embedded[i - 1].version,
		    migrations_embedded[i].version);
	ck_assert_uint_gt(migrations_embedded_count, 0);
}
END_TEST

START_TEST(eight_concurrent_runners_apply_each_migration_once)
{
	const char *argv[] = {IMPORTER_WORKER_BIN, "migrate", NULL};
	char *url = test_db_url(DB);
	pid_t pids[8];
	char *dups;

	for (int i = 0; i < 8; i++)
		pids[i] = test_spawn(argv, url);
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(test_wait(pids[i]), 0);
	free(url);
	ck_assert_int_eq(count_applied(), (int)migrations_embedded_count);
	/* The settings defaults went in once, not eight times. */
	dups = test_db_value(conn, "SELECT count(*) FROM (SELECT key FROM importer.settings "
	                           "WHERE user_id IS NULL GROUP BY key HAVING count(*) > 1) d");
	ck_assert_str_eq(dups, "0");
	free(dups);
}
END_TEST

START_TEST(a_failing_migration_leaves_nothing_and_stops)
{
	const struct migration bad[] = {
	    {"9001_good", "CREATE TABLE importer.t_good (x int);"},
	    {"9002_bad", "CREATE TABLE importer.t_half (x int); SELECT 1/0;"},
	    {"9003_never", "CREATE TABLE importer.t_never (x int);"},
	};
	char err[1024];
	char *v;

	ck_assert_int_eq(migrate_apply(conn, bad, 3, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "9002_bad") != NULL && strstr(err, "division by zero") != NULL,
	              "error should name the migration and the cause: %s", err);
	v = test_db_value(conn, "SELECT string_agg(version, ',' ORDER BY version) "
	                        "FROM importer.schema_migrations");
	ck_assert_str_eq(v, "9001_good");
	free(v);
	v = test_db_value(conn, "SELECT to_regclass('importer.t_half') IS NULL AND "
	                        "to_regclass('importer.t_never') IS NULL");
	ck_assert_str_eq(v, "t");
	free(v);
	/* The connection is usable afterwards, outside any transaction. */
	ck_assert_int_eq(PQtransactionStatus(conn), PQTRANS_IDLE);
}
END_TEST

START_TEST(migrate_command_reports_an_unreachable_database)
{
	const char *argv[] = {IMPORTER_WORKER_BIN, "migrate", NULL};
	/* Nothing listens on port 1; the runner gives up after its wait. */
	setenv("IMPORTER_DB_WAIT_MS", "300", 1);
	pid_t pid = test_spawn(argv, "postgresql://nobody@127.0.0.1:1/x?connect_timeout=1");

	ck_assert_int_eq(test_wait(pid), 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("migrate");
	TCase *tc = tcase_create("db");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, apply_to_empty_then_again_is_a_noop);
	tcase_add_test(tc, versions_are_ordered_and_unique);
	tcase_add_test(tc, eight_concurrent_runners_apply_each_migration_once);
	tcase_add_test(tc, a_failing_migration_leaves_nothing_and_stops);
	tcase_add_test(tc, migrate_command_reports_an_unreachable_database);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
