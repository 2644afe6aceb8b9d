/* worker.h -- one importer-worker process: its connections, wake-ups and shutdown.
 *
 * The worker owns two connections: the job connection (blocking, used between
 * loop iterations for claims and batches) and the LISTEN connection
 * (pglisten, on IMPORTER_LISTEN_DATABASE_URL). It wakes on importer_jobs, on
 * a slow safety-net poll, and on importer_control. SIGTERM stops claiming and
 * exits once the current batch is done; a second signal exits at once.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_WORKER_H
#define IMPORTER_WORKER_H

#include <event2/event.h>
#include <signal.h>
#include <stddef.h>

#include "config.h"

struct worker;

/* Creates a worker on base. Retains base and cfg until worker_free().
 * Returns: new object; caller frees with worker_free(). NULL on failure. */
struct worker *worker_new(struct event_base *base, const struct config *cfg);

/* Connects (retrying until the database answers or *stop becomes non-zero),
 * starts listening and takes over SIGTERM/SIGINT on the loop. *stop is raised
 * by the caller's signal handler while this call blocks. Returns 0, or -1 with
 * err (also when stopped before connecting). */
int worker_start(struct worker *w, const volatile sig_atomic_t *stop, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The exit status once the loop has ended: 0 after a clean shutdown. */
int worker_exit_code(const struct worker *w);

/* Frees w and closes its connections. NULL-safe. */
void worker_free(struct worker *w);

#endif
