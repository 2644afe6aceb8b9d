/* pgpool.h -- a small asynchronous pool of request connections for the gateway.
 *
 * Holds `size` libpq connections driven by the event loop (PQconnectStart/Poll,
 * non-blocking sends, pipeline mode), each reconnecting with backoff on its own.
 * A request is one statement run under a user's identity in one implicit
 * transaction, in one round trip:
 *   SELECT set_config('role','importer_api',true), set_config('importer.user_id',$1,true),
 *          set_config('TimeZone','UTC',true);  <the work>;  Sync
 * Requests wait in a bounded FIFO while every connection is busy (urgent ones
 * ahead of the rest). Nothing here
 * blocks the loop. The pool knows nothing about HTTP.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_PGPOOL_H
#define IMPORTER_PGPOOL_H

#include <event2/dns.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pgpool;

/* The outcome of one request, handed to its callback. */
struct pgpool_result {
	PGresult *res;        /* borrowed; the work's result (TUPLES_OK/COMMAND_OK), NULL on error */
	const char *sqlstate; /* borrowed; five characters on an SQL error, else NULL */
	const char *message;  /* borrowed; primary error message, NULL on success */
	bool unavailable;     /* no connection, lost connection, queue full or pool closing */
};

/* Called exactly once per accepted request, always from the loop (never from
 * inside pgpool_exec). r and everything it points to are borrowed for the call. */
typedef void (*pgpool_result_cb)(const struct pgpool_result *r, void *arg);

/* A parameter of a request: text unless binary. */
struct pgpool_param {
	const char *value; /* NULL = SQL NULL */
	size_t len;        /* bytes of value (binary) or strlen (text) */
	bool binary;
};

/* Creates a pool of size connections to url with at most max_queue waiting
 * requests. Nothing connects until pgpool_start(). url and app are copied.
 * dns resolves the URL's host name off the loop (see pgresolve.h); NULL lets
 * libpq resolve it, blocking. Retains base and dns until pgpool_free().
 * Returns: new object; caller frees with pgpool_free(). NULL on failure. */
struct pgpool *pgpool_new(struct event_base *base, struct evdns_base *dns, const char *url,
			  const char *app, int size, int max_queue);

/* Starts connecting every connection; failures are retried from the loop.
 * on_first (may be NULL) is called once, when the first connection attempt of
 * the pool has settled (connected or failed). */
void pgpool_start(struct pgpool *pool, void (*on_first)(bool ok, void *arg), void *arg);

/* Queues sql (one statement, $1..$n = params) to run as importer_api with
 * importer.user_id = user_id (NULL or "" = no identity), followed in the same
 * transaction by then_sql (no parameters; NULL for none), whose result is then
 * the one reported. The parameters are copied. Retains cb_arg until cb is
 * called. Returns 0, or -1 when the queue is full, no connection is up or the
 * pool is closing (cb is then never called). */
int pgpool_exec(struct pgpool *pool, const char *user_id, const char *sql, int nparams,
		const struct pgpool_param *params, const char *then_sql, pgpool_result_cb cb,
		void *cb_arg) __attribute__((warn_unused_result));

/* How pgpool_exec_ex() queues a request. */
struct pgpool_exec_opts {
	bool urgent; /* waits ahead of every request that is not (live SSE deliveries) */
	bool *sent;  /* NULL, or set to true when the request goes out to the server; must
	              * stay valid until cb runs (lets the caller know whether the result can
	              * still cover a change it hears of now) */
};

/* pgpool_exec() with opts (NULL = as pgpool_exec()). */
int pgpool_exec_ex(struct pgpool *pool, const char *user_id, const char *sql, int nparams,
                   const struct pgpool_param *params, const char *then_sql,
                   const struct pgpool_exec_opts *opts, pgpool_result_cb cb, void *cb_arg)
    __attribute__((warn_unused_result));

/* Same, taking ownership of the binary buffer data (malloc'd, len bytes) as the
 * last parameter ($nparams+1), also on failure. Avoids copying uploads. */
int pgpool_exec_owned(struct pgpool *pool, const char *user_id, const char *sql, int nparams,
		      const struct pgpool_param *params, char *data, size_t len,
		      const char *then_sql, pgpool_result_cb cb, void *cb_arg)
	__attribute__((warn_unused_result));

/* Connections currently up (idle or busy). */
int pgpool_live(const struct pgpool *pool);
/* Connections running a request. */
int pgpool_busy(const struct pgpool *pool);
/* Requests waiting for a connection. */
int pgpool_queued(const struct pgpool *pool);
/* Configured number of connections. */
int pgpool_size(const struct pgpool *pool);

/* Fails every waiting and running request with unavailable (their callbacks
 * run now), closes the connections and stops reconnecting; later requests are
 * refused. The pool stays allocated (counters read 0) until pgpool_free().
 * Must not be called from a pgpool callback. */
void pgpool_shutdown(struct pgpool *pool);

/* pgpool_shutdown(), then frees pool. NULL-safe. Must not be called from a
 * pgpool callback. */
void pgpool_free(struct pgpool *pool);

#endif
