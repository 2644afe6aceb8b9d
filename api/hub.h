/* hub.h -- SSE subscribers and wait=true requests, fed by importer_events.
 *
 * The gateway's one LISTEN connection hands every importer_events payload to
 * hub_notify(). The hub keeps subscribers per user (a hash of users, each with
 * its streams), marks the jobs a notification touches as dirty and, once per
 * loop iteration, reads the rows: one query per user for all its dirty jobs,
 * one per job for new log lines. NOTIFY is a hint; the row is the truth. It
 * owns the streams it opens (replies, heartbeats, bounded output, end).
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_HUB_H
#define IMPORTER_HUB_H

#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stdint.h>

#include "pgpool.h"

struct hub;

struct hub_options {
	int heartbeat_ms;     /* longest silence on a stream before a ": ping" */
	int retry_ms;         /* the "retry:" hint */
	size_t queue_bytes;   /* output beyond which progress and logs are dropped */
	size_t hard_bytes;    /* output beyond which a stream is closed */
};

struct hub_stats {
	int64_t streams;          /* open SSE streams */
	int64_t waiters;          /* wait=true requests held */
	int64_t events_relayed;   /* SSE events written */
	int64_t notifications;    /* importer_events received */
	int64_t dropped;          /* events dropped for slow clients */
};

/* Called with the HTTP status a hub reply used (for metrics); may be NULL. */
typedef void (*hub_reply_cb)(struct evhttp_request *req, int status, void *arg);

/* Retains base, pool and arg until hub_free().
 * Returns: new object; caller frees with hub_free(). NULL on failure. */
struct hub *hub_new(struct event_base *base, struct pgpool *pool, const struct hub_options *opts,
		    hub_reply_cb on_reply, void *arg);

/* An importer_events payload. */
void hub_notify(struct hub *hub, const char *payload);

/* The LISTEN connection came back: every stream gets a fresh snapshot and
 * every waiter re-reads its job. */
void hub_resync(struct hub *hub);

/* Opens an SSE stream for user on req: job_id for one job, NULL for all the
 * user's jobs (logs_for: a job whose log lines the global stream carries, or
 * NULL; a job the user cannot see answers 404). last_event_id < 0 when absent.
 * Always answers req (stream, or a JSON error: 404, 429, 503). */
void hub_open_stream(struct hub *hub, struct evhttp_request *req, const char *user,
		     const char *job_id, const char *logs_for, int64_t last_event_id);

/* wait=true requests one user may hold open at once; more are answered at
 * once with the job as it is (202), as if their wait had timed out. */
#define HUB_MAX_WAITERS_PER_USER 64

/* Holds req until job_id (whose current JSON is job_json, status is status)
 * ends, then answers 200 with the final job; after timeout_s answers 202 with
 * the latest state. Always answers req. */
void hub_wait(struct hub *hub, struct evhttp_request *req, const char *user, const char *job_id,
	      const char *job_json, int64_t timeout_s);

/* Ends every stream with a retry hint and answers every waiter now. */
void hub_shutdown(struct hub *hub);

void hub_get_stats(const struct hub *hub, struct hub_stats *out);

/* Whether status is completed, failed or cancelled. */
bool hub_is_terminal(const char *status);

/* Ends everything still open (as hub_shutdown) and frees hub. NULL-safe. */
void hub_free(struct hub *hub);

#endif
