/* test_db.h -- databases for the database tests, cloned from a migrated template.
 *
 * tests/run.sh starts a throwaway cluster and exports IMPORTER_TEST_DATABASE_URL
 * (a superuser connection). The db_template ctest fixture migrates
 * importer_template; each test binary clones it into its own database so
 * binaries run side by side. Every helper aborts the current Check test on
 * failure, so a missing database fails a test and never skips it.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_TEST_DB_H
#define IMPORTER_TEST_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "test_suite.h"

/* The migrated template; CMake appends a hash of the build directory. */
#ifndef TEST_DB_TEMPLATE
#define TEST_DB_TEMPLATE "importer_template"
#endif

/* IMPORTER_TEST_DATABASE_URL. Aborts the test when it is unset.
 * Returns: borrowed; valid for the life of the process. */
const char *test_db_admin_url(void);

/* Drops database name if it exists and creates it from importer_template. */
void test_db_create(const char *name);

/* Drops database name if it exists and creates it empty (from template0). */
void test_db_create_empty(const char *name);

/* A superuser connection to database name.
 * Returns: new connection; caller frees with PQfinish(). */
PGconn *test_db_connect(const char *name);

/* A libpq connection string for database name.
 * Returns: new string; caller frees with free(). */
char *test_db_url(const char *name);

/* Runs sql (one or more statements) and aborts unless it succeeds.
 * Returns: the last result; caller frees with PQclear(). */
PGresult *test_db_exec(PGconn *conn, const char *sql);

/* Runs sql with text parameters and aborts unless it succeeds.
 * Returns: the result; caller frees with PQclear(). */
PGresult *test_db_execp(PGconn *conn, const char *sql, int nparams, const char *const *params);

/* Runs sql and aborts unless it fails with the five-character sqlstate. The
 * connection is left usable: a failed transaction block is rolled back only if
 * sql opened none itself (callers inside BEGIN must ROLLBACK themselves). */
void test_db_expect_error(PGconn *conn, const char *sqlstate, const char *sql);

/* printf-style forms of the helpers above and below; the SQL is built with
 * vsnprintf (test data only: never user input) and must fit 8 KiB. */
void test_db_execf(PGconn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void test_db_expect_errorf(PGconn *conn, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Aborts unless the query's single value equals want. */
void test_db_expectf(PGconn *conn, const char *want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copies the query's single value into out (len bytes, aborts if longer). */
void test_db_getf(char *out, size_t len, PGconn *conn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Returns: new string; caller frees with free(). */
char *test_db_valuef(PGconn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The single value of a one-row, one-column query, as text ("" for NULL).
 * Returns: new string; caller frees with free(). */
char *test_db_value(PGconn *conn, const char *sql);

/* Starts argv[0] with DATABASE_URL set to url and its output to /dev/null.
 * Returns: the child's pid (abort on failure). */
pid_t test_spawn(const char *const *argv, const char *url);

/* Waits for pid and returns its exit status (-1 when killed by a signal). */
int test_wait(pid_t pid);

/* A child process whose stderr (JSON log lines) the test reads. */
struct test_proc {
	pid_t pid;
	int err_fd;      /* read end of the child's stderr */
	char buf[65536]; /* everything read so far */
	size_t len;
};

/* Starts argv[0] with the extra NULL-terminated "NAME=value" strings added to
 * the environment, stdout to /dev/null and stderr to a pipe. Aborts on failure. */
void test_proc_start(struct test_proc *p, const char *const *argv, const char *const *env);

/* Reads the child's stderr until a line containing needle arrives. Returns
 * true, or false after timeout_ms or when the child closed stderr. */
bool test_proc_wait_for(struct test_proc *p, const char *needle, int timeout_ms);

/* Sends sig, then waits up to timeout_ms for the child to exit. Returns its
 * exit status, -1 if killed by a signal, -2 on timeout (the child is then
 * killed). Closes err_fd. */
int test_proc_stop(struct test_proc *p, int sig, int timeout_ms);

/* Empties every table of users' data (jobs and everything hanging off them,
 * files, records, notifications) and removes per-user settings, so a test
 * starts from the migrated defaults. */
void test_db_reset(PGconn *conn);

/* CLOCK_MONOTONIC in milliseconds, for deadlines. */
long test_now_ms(void);

/* Creates database name from the template and writes "DATABASE_URL=<url of
 * name>" into env (for test_proc_start). */
void test_db_create_env(const char *name, char *env, size_t envlen);

/* Runs sql (one value) until it returns "t"; returns false after timeout_ms.
 * Between checks it waits up to 500 ms for a notification on conn (LISTEN on
 * the channels that announce the change first): NOTIFY is the hint, the table
 * the truth. */
bool test_db_wait_true(PGconn *conn, const char *sql, int timeout_ms);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int test_free_port(void);

/* Plain, non-aborting versions for programs outside a Check test.
 * Return 0, or -1 with err filled. */
int test_db_recreate(const char *admin_url, const char *name, const char *template_name, char *err,
                     size_t errlen);
PGconn *test_db_connect_url(const char *admin_url, const char *name, char *err, size_t errlen);

#endif
