/* metrics.h -- the worker's Prometheus endpoint (IMPORTER_METRICS_ADDR).
 *
 * An evhttp server on the worker's own event loop that answers GET /metrics
 * with Prometheus text: job and record counters, a batch duration histogram,
 * the current job, and the queue's depth and oldest pending age. Counters are
 * fed by worker.c through the hooks below; every hook accepts m == NULL (the
 * endpoint is off) so call sites need no condition. It owns no job state and
 * never writes to the database.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_METRICS_H
#define IMPORTER_METRICS_H

#include <event2/event.h>
#include <libpq-fe.h>
#include <stddef.h>

#include "job.h"

struct metrics;

/* How old the queue figures may get before a scrape reads them again. */
#define METRICS_QUEUE_REFRESH_S 5

/* Serves /metrics on addr ("host:port"; port 0 picks a free one) on base.
 * conn is the worker's job connection: a scrape reads the queue figures on it
 * (at most every METRICS_QUEUE_REFRESH_S seconds, only while it is idle, with
 * a 2 s statement timeout), and a job's end reads its final status. Retains
 * base, conn and worker_id until metrics_free().
 * Returns: new object; caller frees with metrics_free(). NULL with err filled
 * when the address cannot be bound. */
struct metrics *metrics_new(struct event_base *base, const char *addr, PGconn *conn,
			    const char *worker_id, char *err, size_t errlen);

/* The port actually bound (useful with port 0). */
int metrics_port(const struct metrics *m);

/* An import job was claimed: counts it and makes it the current job. */
void metrics_job_claimed(struct metrics *m, const struct job *job);

/* Around one import_step(): records the batch's duration, and the records and
 * record errors it committed (from job's counters) when r says it committed. */
void metrics_step_begin(struct metrics *m, const struct job *job);
void metrics_step_end(struct metrics *m, const struct job *job, enum job_result r);

/* The current job was dropped after r (JOB_DONE, JOB_LOST, or a release after
 * JOB_RETRY/JOB_FAILED): counts it by the final status read back from the
 * database (completed, failed, cancelled; anything else counts as released,
 * JOB_LOST as lost) and clears the current job. */
void metrics_job_ended(struct metrics *m, const struct job *job, enum job_result r);

/* n noop jobs were completed in one batch. */
void metrics_noops(struct metrics *m, int n);

/* Stops serving and frees m. NULL-safe. */
void metrics_free(struct metrics *m);

#endif
