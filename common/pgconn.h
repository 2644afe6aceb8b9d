/* pgconn.h -- blocking PostgreSQL connections with retry, for startup and workers.
 *
 * The worker's job connection and the migrations runner may block; the
 * gateway's event loop never does and uses libpq's async API instead (see
 * pglisten.h for the LISTEN connection). Retries use backoff.h and stop early
 * when the caller's stop flag is raised by a signal handler.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_PGCONN_H
#define IMPORTER_PGCONN_H

#include <libpq-fe.h>
#include <signal.h>
#include <stddef.h>

/* Connects to url (a libpq URI or keyword string), setting
 * fallback_application_name to app. Retries with backoff while the server is
 * unreachable, for up to timeout_ms (negative: forever) or until *stop becomes
 * non-zero (stop may be NULL). Each failed attempt is logged at warn level.
 * Returns: new connection; caller frees with PQfinish(). NULL with err filled
 * on failure. */
PGconn *pgconn_connect(const char *url, const char *app, int timeout_ms,
		       const volatile sig_atomic_t *stop, char *err, size_t errlen);

/* Opens a connection without retrying, setting fallback_application_name.
 * Returns: new connection (check PQstatus); caller frees with PQfinish(). */
PGconn *pgconn_open(const char *url, const char *app, int nonblocking);

/* pgconn_open(url, app, 1) connecting to the IP address hostaddr (the host
 * name in url already resolved, see pgresolve.h). */
PGconn *pgconn_open_at(const char *url, const char *app, const char *hostaddr);

/* Copies PQerrorMessage(conn) or the result's message to err, without the
 * trailing newline. res may be NULL. */
void pgconn_error(PGconn *conn, const PGresult *res, char *err, size_t errlen);

/* One statement of a pipeline: sql with nparams parameters (types may be
 * NULL to let the server infer them; lengths and formats as PQexecParams's,
 * NULL for all-text parameters). */
struct pgconn_stmt {
	const char *sql;
	int nparams;
	const Oid *types;
	const char *const *params;
	const int *lengths;
	const int *formats;
};

/* Sends n statements on a blocking, idle connection in one pipeline ending in
 * one sync, so they cost one round trip, and stores each statement's result
 * in res[i]: after a failed statement the rest are PGRES_PIPELINE_ABORTED
 * (and a transaction they ran in is aborted, as with separate calls).
 * Returns: 0 when every result was received (each res[i] set; the caller
 * PQclear()s them), -1 when the exchange itself failed (err filled, every
 * res[i] NULL). */
int pgconn_pipeline(PGconn *conn, const struct pgconn_stmt *stmts, int n, PGresult **res,
		    char *err, size_t errlen);

/* pgconn_pipeline(), calling work(arg) once the statements are on their way
 * and before their results are read: the caller's own work overlaps the
 * server's. work must not use conn. */
int pgconn_pipeline_while(PGconn *conn, const struct pgconn_stmt *stmts, int n, PGresult **res,
			  void (*work)(void *arg), void *arg, char *err, size_t errlen);

#endif
