/* job.h -- one claimed job: its row, its lease, and the statements that end it.
 *
 * Every statement that writes a job is fenced by its lease
 * (`WHERE id = $1 AND lease_id = $2`): a worker that was paused, partitioned
 * or rescued can never commit into a job it no longer holds.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_JOB_H
#define IMPORTER_JOB_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOB_ID_LEN 37

/* How a step of a job ended. */
enum job_result {
	JOB_CONTINUE,  /* a batch committed; more to do */
	JOB_DONE,      /* the job reached a final state (or was released) */
	JOB_LOST,      /* the lease is gone: drop the job without writing */
	JOB_RETRY,     /* a transient error: retry later (counts an attempt) */
	JOB_FAILED,    /* a permanent error: fail the job */
};

/* Final states a worker writes. */
enum job_end { JOB_END_COMPLETED, JOB_END_FAILED, JOB_END_CANCELLED, JOB_END_PAUSED, JOB_END_RELEASED };

struct job {
	char id[JOB_ID_LEN];
	char user_id[JOB_ID_LEN];
	char lease_id[JOB_ID_LEN];
	char file_id[JOB_ID_LEN];   /* "" for none */
	char kind[16];
	char mode[16];              /* upsert, append, replace */
	char *collection;           /* owned; NULL for backup/noop */
	char *file_name;            /* owned; may be NULL */
	bool dry_run;
	int64_t file_size;
	int attempts, max_attempts;
	struct json_object *payload;    /* owned; the submit options */
	struct json_object *checkpoint; /* owned; NULL = start from scratch */
	struct json_object *counts;     /* owned; DESIGN.md's counts object */
	int64_t processed_items, failed_items;
};

/* Fills job from row of a claim_job() result. Returns 0, or -1 if a column is
 * missing or malformed. On failure job holds nothing to free. */
int job_from_row(struct job *job, const PGresult *res, int row);

/* Frees what job owns (not job itself). NULL-safe. */
void job_clear(struct job *job);

/* Ends the job's lease with a final state, writing one log line (level,
 * event, message) in the same statement. message may be NULL; for FAILED it
 * becomes error_message. For RETRY-like releases use job_release_retry().
 * Returns 1 when written, 0 when the lease was already gone, -1 on error. */
int job_end(PGconn *conn, const struct job *job, enum job_end end, const char *message,
	    char *err, size_t errlen) __attribute__((warn_unused_result));

/* Puts the job back to pending after a transient error, counting an attempt
 * and delaying it with exponential backoff; fails it once max_attempts are
 * used. Same return values as job_end(). */
int job_release_retry(PGconn *conn, const struct job *job, const char *message, char *err,
		      size_t errlen) __attribute__((warn_unused_result));

/* The lease fence: $1 job id, $2 lease id; RETURNs (processing, cancel
 * requested, pause requested) when the lease is the job's. Exported for the
 * test of its plan. */
extern const char job_sql_fence[];

/* Starts a batch transaction: BEGIN, a transaction-local
 * idle_in_transaction_session_timeout of idle_timeout_ms (the lease: a worker
 * stalled mid-transaction, e.g. SIGSTOPped, would otherwise hold the job row
 * locked and block its own rescue), then the lease fence (job_sql_fence),
 * which also refreshes heartbeat_at; one round trip for the three. Returns 1
 * when the lease holds (the transaction is open; *cancel and *pause tell what
 * was requested), 0 when it is gone (rolled back), -1 on error (rolled
 * back). */
int job_begin_batch(PGconn *conn, const struct job *job, int64_t idle_timeout_ms, bool *cancel,
		    bool *pause, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Appends a log line to import_logs inside the open transaction. details
 * may be NULL. Returns 0 or -1. */
int job_log(PGconn *conn, const struct job *job, const char *level, const char *event,
	    const char *message, struct json_object *details, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
