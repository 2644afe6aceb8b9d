/* test_db.c -- per-binary test databases (see test_db.h). */
#include "test_db.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
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

int test_db_recreate(const char *admin_url, const char *name, const char *template_name, char *err,
                     size_t errlen)
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

	ck_assert_msg(
	    test_db_recreate(test_db_admin_url(), name, TEST_DB_TEMPLATE, err, sizeof(err)) == 0,
	    "cannot create database %s: %s", name, err);
}

void test_db_create_empty(const char *name)
{
	char err[512];

	ck_assert_msg(test_db_recreate(test_db_admin_url(), name, "template0", err, sizeof(err)) ==
	                  0,
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

void test_proc_start(struct test_proc *p, const char *const *argv, const char *const *env)
{
	int fds[2];

	memset(p, 0, sizeof(*p));
	ck_assert_int_eq(pipe(fds), 0);
	p->pid = fork();
	ck_assert_msg(p->pid >= 0, "fork failed");
	if (p->pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		close(fds[0]);
		if (devnull >= 0)
			dup2(devnull, 1);
		dup2(fds[1], 2);
		for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
			char name[256];
			const char *eq = strchr(env[i], '=');

			if (eq == NULL || (size_t)(eq - env[i]) >= sizeof(name))
				_exit(126);
			memcpy(name, env[i], (size_t)(eq - env[i]));
			name[eq - env[i]] = '\0';
			setenv(name, eq + 1, 1);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	p->err_fd = fds[0];
}

void test_db_reset(PGconn *conn)
{
	/* CASCADE reaches every table that references these (logs, errors,
	 * chunks, replace staging), including ones later migrations add. */
	PQclear(test_db_exec(conn, "TRUNCATE importer.import_jobs, importer.import_files, "
	                           "importer.records, importer.notifications, "
	                           "importer.user_active_floors CASCADE; "
	                           "DELETE FROM importer.settings WHERE user_id IS NOT NULL"));
}

long test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void test_db_create_env(const char *name, char *env, size_t envlen)
{
	char *url;

	test_db_create(name);
	url = test_db_url(name);
	ck_assert_int_lt(snprintf(env, envlen, "DATABASE_URL=%s", url), (int)envlen);
	free(url);
}

bool test_db_wait_true(PGconn *conn, const char *sql, int timeout_ms)
{
	long deadline = test_now_ms() + timeout_ms;

	for (;;) {
		char *v = test_db_value(conn, sql);
		bool done = strcmp(v, "t") == 0;
		struct pollfd pfd = {PQsocket(conn), POLLIN, 0};
		PGnotify *n;

		free(v);
		if (done)
			return true;
		if (test_now_ms() >= deadline)
			return false;
		poll(&pfd, 1, 500);
		PQconsumeInput(conn);
		while ((n = PQnotifies(conn)) != NULL)
			PQfreemem(n);
	}
}

bool test_proc_wait_for(struct test_proc *p, const char *needle, int timeout_ms)
{
	long deadline = test_now_ms() + timeout_ms;

	for (;;) {
		struct pollfd pfd = {p->err_fd, POLLIN, 0};
		long left = deadline - test_now_ms();
		ssize_t n;

		p->buf[p->len] = '\0';
		if (strstr(p->buf, needle) != NULL)
			return true;
		if (left <= 0 || p->len + 1 >= sizeof(p->buf))
			return false;
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		n = read(p->err_fd, p->buf + p->len, sizeof(p->buf) - 1 - p->len);
		if (n == 0)
			return false;
		if (n > 0)
			p->len += (size_t)n;
	}
}

int test_proc_stop(struct test_proc *p, int sig, int timeout_ms)
{
	long deadline = test_now_ms() + timeout_ms;
	int status, rc = -2;

	if (sig != 0)
		kill(p->pid, sig);
	for (;;) {
		pid_t r = waitpid(p->pid, &status, WNOHANG);

		if (r == p->pid) {
			rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
			break;
		}
		if (test_now_ms() >= deadline) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &status, 0);
			break;
		}
		/* Drain stderr so the child never blocks on a full pipe. */
		struct pollfd pfd = {p->err_fd, POLLIN, 0};
		if (poll(&pfd, 1, 20) > 0) {
			char sink[4096];
			ssize_t n = read(p->err_fd, sink, sizeof(sink));
			(void)n;
		}
	}
	close(p->err_fd);
	p->err_fd = -1;
	return rc;
}

int test_free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* Formats a statement into sql; aborts if it does not fit. */
__attribute__((format(printf, 3, 0))) static void vformat(char *sql, size_t len, const char *fmt,
                                                          va_list ap)
{
	int n = vsnprintf(sql, len, fmt, ap);

	ck_assert_msg(n >= 0 && (size_t)n < len, "SQL too long: %s", fmt);
}

#define FORMAT_SQL(sql, fmt)                                                                       \
	do {                                                                                       \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		vformat(sql, sizeof(sql), fmt, ap);                                                \
		va_end(ap);                                                                        \
	} while (0)

void test_db_execf(PGconn *conn, const char *fmt, ...)
{
	char sql[8192];

	FORMAT_SQL(sql, fmt);
	PQclear(test_db_exec(conn, sql));
}

void test_db_expect_errorf(PGconn *conn, const char *sqlstate, const char *fmt, ...)
{
	char sql[8192];

	FORMAT_SQL(sql, fmt);
	test_db_expect_error(conn, sqlstate, sql);
}

void test_db_expectf(PGconn *conn, const char *want, const char *fmt, ...)
{
	char sql[8192];
	char *v;

	FORMAT_SQL(sql, fmt);
	v = test_db_value(conn, sql);
	ck_assert_msg(strcmp(v, want) == 0, "%s\n-- expected '%s', got '%s'", sql, want, v);
	free(v);
}

void test_db_getf(char *out, size_t len, PGconn *conn, const char *fmt, ...)
{
	char sql[8192];
	char *v;

	FORMAT_SQL(sql, fmt);
	v = test_db_value(conn, sql);
	ck_assert_msg(strlen(v) < len, "%s\n-- value too long: %s", sql, v);
	strcpy(out, v);
	free(v);
}

char *test_db_valuef(PGconn *conn, const char *fmt, ...)
{
	char sql[8192];

	FORMAT_SQL(sql, fmt);
	return test_db_value(conn, sql);
}
