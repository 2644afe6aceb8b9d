/* queue.h -- the worker's side of the queue: claiming and finishing jobs.
 *
 * Every call is one statement on the worker's job connection (blocking; it
 * runs between loop iterations). The claim statements live in SQL
 * (sql/0005_worker.sql) so that operators can read and run them too.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_QUEUE_H
#define IMPORTER_QUEUE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"

/* How many noop jobs one statement claims and completes. */
#define QUEUE_NOOP_BATCH 200

/* Claims and completes up to limit due noop jobs. Returns how many, or -1
 * with err. */
int queue_complete_noops(PGconn *conn, const char *worker_id, int limit, char *err,
			 size_t errlen) __attribute__((warn_unused_result));

/* Claims the next due job of one of kinds (a PostgreSQL array literal such
 * as "{csv,ndjson}") under the fairness rule. Returns 1 with job filled
 * (caller frees with job_clear()), 0 when there is none, -1 with err. */
int queue_claim(PGconn *conn, const char *worker_id, const char *kinds, struct job *job,
		char *err, size_t errlen) __attribute__((warn_unused_result));

/* Reads job id back if it still runs under lease (after a lost connection).
 * Returns 1 with job filled (caller frees with job_clear()), 0 when the lease
 * is gone (rescued, cancelled...), -1 with err. */
int queue_reattach(PGconn *conn, const char *id, const char *lease, struct job *job, char *err,
		   size_t errlen) __attribute__((warn_unused_result));

/* Runs importer.housekeeping() unless another worker is doing it: rescues
 * jobs whose lease expired and, when prune, removes a slice of what
 * retention_days has expired (at most 500 jobs, sql/0014; *pruned: how
 * many, 0 when it was another worker's turn). Returns how many jobs were
 * rescued, or -1 with err. */
int queue_housekeeping(PGconn *conn, bool prune, int *pruned, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Milliseconds until the earliest pending job that is not yet due (a retry
 * waiting out its backoff), or -1 when there is none or the query failed
 * (the poll tick is the fallback then). */
int64_t queue_next_due_ms(PGconn *conn);

#endif
