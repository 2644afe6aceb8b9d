/* test_db.c -- per-binary test databases (see test_db.h). */
#include "test_db.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgconn.h"

const char *test_db_admin_url(void)
{
	const char *url = getenv("IMPORTER_TEST_DATABASE_URL");

	ck_assert_msg(url != NULL && url[0] != '\0',
		      "IMPORTER_TEST_DATABASE_URL is not set: run the tests through tests/run.sh");
	return url;
}

PGconn *test_db_connect_url(const char *admin_url, const char *name, char *err, size_t errlen)
{
	/* The first dbname is expanded as a URI; the second overrides its
	 * database name. */
	const char *keys[] = {"dbname", "dbname", "fallback_application_name", NULL};
	const char *vals[] = {admin_url, name, "importer-tests", NULL};
	PGconn *conn = PQconnectdbParams(keys, vals, 1);

	if (PQstatus(conn) != CONNECTION_OK) {
		pgconn_error(conn, NULL, err, errlen);
		PQfinish(conn);
		return NULL;
	}
	PQclear(PQexec(conn, "SET client_min_messages = warning"));
	return conn;
}

static int exec_ok(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		pgconn_error(conn, res, err, errlen);
	PQclear(res);
	return ok ? 0 : -1;
}

int test_db_recreate(const char *admin_url, const char *name, const char *template_name,
		     char *err, size_t errlen)
{
	PGconn *conn = test_db_connect_url(admin_url, "postgres", err, errlen);
	char *ident = NULL, *tmpl = NULL;
	char sql[512];
	int rc = -1;

	if (conn == NULL)
		return -1;
	ident = PQescapeIdentifier(conn, name, strlen(name));
	tmpl = PQescapeIdentifier(conn, template_name, strlen(template_name));
	if (ident == NULL || tmpl == NULL) {
		pgconn_error(conn, NULL, err, errlen);
		goto out;
	}
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", ident);
	if (exec_ok(conn, sql, err, errlen) != 0)
		goto out;
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE %s", ident, tmpl);
	rc = exec_ok(conn, sql, err, errlen);
out:
	PQfreemem(ident);
	PQfreemem(tmpl);
	PQfinish(conn);
	return rc;
}

void test_db_create(const char *name)
{
	char err[512];

	ck_assert_msg(test_db_recreate(test_db_admin_url(), name, TEST_DB_TEMPLATE, err,
				       sizeof(err)) == 0,
		      "cannot create database %s: %s", name, err);
}

void test_db_create_empty(const char *name)
{
	char err[512];

	ck_assert_msg(test_db_recreate(test_db_admin_url(), name, "template0", err,
				       sizeof(err)) == 0,
		      "cannot create database %s: %s", name, err);
}

PGconn *test_db_connect(const char *name)
{
	char err[512];
	PGconn *conn = test_db_connect_url(test_db_admin_url(), name, err, sizeof(err));

	ck_assert_msg(conn != NULL, "cannot connect to %s: %s", name, err);
	return conn;
}

/* Appends key='value' to buf, quoting as libpq's keyword/value syntax wants. */
static void append_kv(char *buf, size_t len, const char *key, const char *val)
{
	size_t used = strlen(buf);

	used += (size_t)snprintf(buf + used, len - used, "%s%s='", used ? " " : "", key);
	for (const char *p = val; *p != '\0' && used + 3 < len; p++) {
		if (*p == '\'' || *p == '\\')
			buf[used++] = '\\';
		buf[used++] = *p;
	}
	if (used + 2 <= len) {
		buf[used++] = '\'';
		buf[used] = '\0';
	}
}

char *test_db_url(const char *name)
{
	char *errmsg = NULL;
	PQconninfoOption *opts = PQconninfoParse(test_db_admin_url(), &errmsg);
	char buf[4096] = "";

	ck_assert_msg(opts != NULL, "bad IMPORTER_TEST_DATABASE_URL: %s", errmsg ? errmsg : "");
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "dbname") == 0)
			append_kv(buf, sizeof(buf), "dbname", name);
		else if (o->val != NULL)
			append_kv(buf, sizeof(buf), o->keyword, o->val);
	}
	PQconninfoFree(opts);
	return strdup(buf);
}

PGresult *test_db_execp(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult *res = nparams > 0 ? PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)
				    : PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);

	ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s\n-- failed: %s", sql,
		      PQresultErrorMessage(res));
	return res;
}

PGresult *test_db_exec(PGconn *conn, const char *sql)
{
	return test_db_execp(conn, sql, 0, NULL);
}

void test_db_expect_error(PGconn *conn, const char *sqlstate, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	const char *got = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	char state[6];

	snprintf(state, sizeof(state), "%s", got != NULL ? got : "00000");
	ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR && strcmp(state, sqlstate) == 0,
		      "%s\n-- expected SQLSTATE %s, got %s: %s", sql, sqlstate, state,
		      PQresultErrorMessage(res));
	PQclear(res);
}

char *test_db_value(PGconn *conn, const char *sql)
{
	PGresult *res = test_db_exec(conn, sql);
	char *val;

	ck_assert_msg(PQntuples(res) == 1 && PQnfields(res) == 1,
		      "%s\n-- expected one value, got %d rows", sql, PQntuples(res));
	val = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return val;
}

pid_t test_spawn(const char *const *argv, const char *url)
{
	pid_t pid = fork();

	ck_assert_msg(pid >= 0, "fork failed");
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		if (devnull >= 0) {
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		setenv("DATABASE_URL", url, 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

int test_wait(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
