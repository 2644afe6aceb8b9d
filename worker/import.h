/* import.h -- run one claimed csv, ndjson or backup job, one batch per step.
 *
 * Each step reads the stored file from the last checkpoint, one chunk per
 * query, parses records until the batch is full (batch_rows or batch_bytes)
 * or the file ends, and commits in one transaction: the lease fence, the
 * records, their record errors, the counters, progress, the checkpoint and
 * the log lines. While the server writes one batch the worker reads the next
 * (from the chunks it has cached), so parsing and writing overlap. A reader
 * starts at a record boundary for every batch, and a job taken up again
 * after a crash starts at its stored checkpoint: resuming is the same code
 * path as going on normally.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_IMPORT_H
#define IMPORTER_IMPORT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "job.h"

struct import;

/* Prepares to run job on conn: reads the policy settings for its owner and
 * the checkpoint. Retains conn and job until import_free().
 * Returns: new object; caller frees with import_free(). NULL with err on
 * failure (a database error: retry the job later). */
struct import *import_new(PGconn *conn, struct job *job, char *err, size_t errlen);

/* Runs one batch. JOB_CONTINUE: call again; JOB_DONE: the job reached a final
 * state (completed, failed on a file-level problem, cancelled or paused) or
 * was released (stopping: the caller is shutting down and the job goes back
 * to pending with its checkpoint); JOB_LOST: the lease is gone; JOB_RETRY:
 * a transient database error, err says which. */
enum job_result import_step(struct import *im, bool stopping, char *err, size_t errlen);

/* How long to wait between batches (the batch_pause_ms setting). */
int import_pause_ms(const struct import *im);

/* Frees im. NULL-safe. */
void import_free(struct import *im);

#endif
