/* pgconn.c -- connecting with retry (see pgconn.h). */
#include "pgconn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "log.h"

/* Server notices (and libpq's own, such as "terminating connection due to
 * administrator command") become JSON log lines instead of libpq's default
 * plain text on stderr. */
static void notice_cb(void *arg, const char *message)
{
	char text[512];
	size_t len;

	snprintf(text, sizeof(text), "%s", message);
	len = strlen(text);
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		text[--len] = '\0';
	log_warn("db.notice", LF_STR("message", text));
}

static PGconn *open_conn(const char *url, const char *app, int nonblocking, const char *hostaddr)
{
	/* Keywords are applied in order, a later one overriding an earlier:
	 * the URL (the first dbname, expanded as a URI or keyword string)
	 * overrides the default connect_timeout, and a resolved hostaddr
	 * overrides the URL's. */
	const char *keys[] = {"connect_timeout", "dbname", "fallback_application_name",
			      hostaddr != NULL ? "hostaddr" : NULL, NULL};
	const char *vals[] = {"10", url, app, hostaddr, NULL};
	PGconn *conn = nonblocking ? PQconnectStartParams(keys, vals, 1)
				   : PQconnectdbParams(keys, vals, 1);

	if (conn != NULL)
		PQsetNoticeProcessor(conn, notice_cb, NULL);
	return conn;
}

PGconn *pgconn_open(const char *url, const char *app, int nonblocking)
{
	return open_conn(url, app, nonblocking, NULL);
}

PGconn *pgconn_open_at(const char *url, const char *app, const char *hostaddr)
{
	return open_conn(url, app, 1, hostaddr);
}

void pgconn_error(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
	const char *msg = res != NULL ? PQresultErrorMessage(res) : NULL;
	size_t len;

	if (msg == NULL || msg[0] == '\0')
		msg = conn != NULL ? PQerrorMessage(conn) : "out of memory";
	snprintf(err, errlen, "%s", msg);
	len = strlen(err);
	while (len > 0 && (err[len - 1] == '\n' || err[len - 1] == ' '))
		err[--len] = '\0';
}

static long elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* Sleeps ms in short steps so a raised stop flag ends the wait quickly. */
static void sleep_unless_stopped(unsigned ms, const volatile sig_atomic_t *stop)
{
	while (ms > 0 && !(stop != NULL && *stop)) {
		unsigned step = ms < 100 ? ms : 100;
		struct timespec ts = {0, (long)step * 1000000L};

		nanosleep(&ts, NULL);
		ms -= step;
	}
}

PGconn *pgconn_connect(const char *url, const char *app, int timeout_ms,
		       const volatile sig_atomic_t *stop, char *err, size_t errlen)
{
	struct backoff bo;
	struct timespec start;

	backoff_init(&bo, 100, 5000);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		PGconn *conn = pgconn_open(url, app, 0);

		if (conn != NULL && PQstatus(conn) == CONNECTION_OK)
			return conn;
		pgconn_error(conn, NULL, err, errlen);
		PQfinish(conn);
		if (stop != NULL && *stop)
			return NULL;
		unsigned delay = backoff_next_ms(&bo);
		if (timeout_ms >= 0 && elapsed_ms(&start) + delay > timeout_ms)
			return NULL;
		log_warn("db.connect_retry", LF_STR("error", err), LF_I64("attempt", bo.attempts),
			 LF_I64("retry_in_ms", delay));
		sleep_unless_stopped(delay, stop);
		if (stop != NULL && *stop)
			return NULL;
	}
}

/* Reads the results of one pipelined statement: the first is kept, any
 * further ones (there are none for single statements) are dropped, and the
 * NULL that ends them is consumed. */
static PGresult *pipeline_result(PGconn *conn)
{
	PGresult *first = PQgetResult(conn), *more;

	if (first == NULL)
		return NULL;
	while ((more = PQgetResult(conn)) != NULL)
		PQclear(more);
	return first;
}

int pgconn_pipeline(PGconn *conn, const struct pgconn_stmt *stmts, int n, PGresult **res,
		    char *err, size_t errlen)
{
	return pgconn_pipeline_while(conn, stmts, n, res, NULL, NULL, err, errlen);
}

int pgconn_pipeline_while(PGconn *conn, const struct pgconn_stmt *stmts, int n, PGresult **res,
			  void (*work)(void *arg), void *arg, char *err, size_t errlen)
{
	PGresult *sync;
	int i, got = 0;

	for (i = 0; i < n; i++)
		res[i] = NULL;
	if (!PQenterPipelineMode(conn))
		goto fail;
	for (i = 0; i < n; i++)
		if (!PQsendQueryParams(conn, stmts[i].sql, stmts[i].nparams, stmts[i].types,
				       stmts[i].params, stmts[i].lengths, stmts[i].formats, 0))
			goto fail_in_pipeline;
	/* (PQpipelineSync also flushes: the server has the statements.) */
	if (!PQpipelineSync(conn))
		goto fail_in_pipeline;
	if (work != NULL)
		work(arg);
	for (got = 0; got < n; got++)
		if ((res[got] = pipeline_result(conn)) == NULL)
			goto fail_in_pipeline;
	sync = PQgetResult(conn);
	if (PQresultStatus(sync) != PGRES_PIPELINE_SYNC) {
		PQclear(sync);
		goto fail_in_pipeline;
	}
	PQclear(sync);
	if (!PQexitPipelineMode(conn))
		goto fail_in_pipeline;
	return 0;

fail_in_pipeline:
	/* Only a broken connection gets here; it is reset by the caller. */
	pgconn_error(conn, NULL, err, errlen);
	for (i = 0; i < got; i++) {
		PQclear(res[i]);
		res[i] = NULL;
	}
	return -1;
fail:
	pgconn_error(conn, NULL, err, errlen);
	return -1;
}
