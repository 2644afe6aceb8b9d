/* worker.c -- connections, wake-ups and shutdown of a worker process.
 *
 * Claiming and running jobs is built on this loop: a wake-up (NOTIFY, poll
 * timer, or LISTEN reconnect) schedules one claim pass; each unit of work
 * re-queues itself on the loop so signals and timers are always serviced.
 */
#include "worker.h"

#include <libpq-fe.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "channels.h"
#include "log.h"
#include "pgconn.h"
#include "pglisten.h"
#include "import.h"
#include "job.h"
#include "metrics.h"
#include "queue.h"

struct worker {
	struct event_base *base;    /* borrowed */
	const struct config *cfg;   /* borrowed */
	char worker_id[300];        /* <hostname>:<pid> */
	PGconn *conn;               /* owned; the job connection */
	struct pglisten *listener;  /* owned */
	struct event *poll_ev;      /* owned; safety-net poll */
	struct event *sigterm_ev;   /* owned */
	struct event *sigint_ev;    /* owned */
	struct event *pass_ev;      /* owned; one claim pass, scheduled on wake-up */
	struct backoff retry;       /* delays between passes after database errors */
	struct job job;             /* the job being imported, while im is set */
	struct import *im;          /* owned; NULL while no job runs */
	struct metrics *metrics;    /* owned; NULL unless IMPORTER_METRICS_ADDR is set */
	char reattach_id[JOB_ID_LEN];    /* a job whose connection broke mid-step, or "" */
	char reattach_lease[JOB_ID_LEN]; /* the lease it was running under */
	time_t pruned_at;           /* last housekeeping that pruned expired jobs */
	bool prune_backlog;         /* that one found jobs to prune: prune again */
	bool stopping;              /* a first signal arrived */
	int exit_code;
};

/* Schedules a claim pass on the next loop iteration (or after delay_ms). */
static void schedule_pass(struct worker *w, unsigned delay_ms)
{
	struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};

	if (w->stopping || evtimer_pending(w->pass_ev, NULL))
		return;
	/* A delay counts from now, not from libevent's time cached when this
	 * callback began: a wake for a job due in delay_ms (next_due_ms) must
	 * not fire before it is due, or the pass finds it not yet due and
	 * next_due_ms, a moment later, no longer sees it as in the future. */
	if (delay_ms > 0)
		event_base_update_cache_time(w->base);
	evtimer_add(w->pass_ev, &tv);
}

static void wake(struct worker *w, const char *why)
{
	log_debug("worker.wake", LF_STR("reason", why));
	schedule_pass(w, 0);
}

static void drop_job(struct worker *w)
{
	import_free(w->im);
	w->im = NULL;
	job_clear(&w->job);
}

static bool connection_broken(const struct worker *w)
{
	return PQstatus(w->conn) != CONNECTION_OK || PQpipelineStatus(w->conn) != PQ_PIPELINE_OFF;
}

/* The job connection broke while this worker held a job: the job is still
 * ours until its lease expires. Take it up again (reattach) from the
 * checkpoint stored in the database, never from this process's memory: a
 * batch committed asynchronously just before a server crash may be gone,
 * and continuing past it would lose its records. */
static void reattach_later(struct worker *w)
{
	memcpy(w->reattach_id, w->job.id, JOB_ID_LEN);
	memcpy(w->reattach_lease, w->job.lease_id, JOB_ID_LEN);
	drop_job(w);
}

static bool reconnect(struct worker *w)
{
	char err[512];

	PQreset(w->conn);
	if (PQstatus(w->conn) == CONNECTION_OK) {
		log_info("db.reconnected");
		return true;
	}
	pgconn_error(w->conn, NULL, err, sizeof(err));
	log_warn("db.unavailable", LF_STR("error", err));
	return false;
}

/* Makes sure the job connection is usable, reconnecting once if it broke
 * (or was left mid-pipeline by a failed exchange, see pgconn_pipeline). */
static bool connection_ok(struct worker *w)
{
	if (!connection_broken(w))
		return true;
	if (w->im != NULL)
		reattach_later(w);
	return reconnect(w);
}

/* How often a worker asks housekeeping to prune expired jobs. */
#define PRUNE_INTERVAL_S 60

/* Kinds this worker imports (noop jobs are completed in batches apart). */
static const char import_kinds[] = "{csv,ndjson,backup}";

/* Runs one batch of the current job; called from the loop only. */
static void run_step(struct worker *w)
{
	char err[512], err2[512];
	enum job_result r;

	metrics_step_begin(w->metrics, &w->job);
	r = import_step(w->im, w->stopping, err, sizeof(err));
	metrics_step_end(w->metrics, &w->job, r);
	switch (r) {
	case JOB_CONTINUE:
		/* One line per committed batch (debug): with job.claimed and the
		 * end events it lets tests/soak/check_leases.py rebuild who held
		 * which lease when, and prove no batch committed outside it. */
		log_debug("job.step", LF_STR("job_id", w->job.id),
		          LF_STR("worker_id", w->worker_id), LF_STR("lease_id", w->job.lease_id),
		          LF_I64("processed_items", w->job.processed_items));
		schedule_pass(w, (unsigned)import_pause_ms(w->im));
		return;
	case JOB_DONE:
		log_info("job.step_done", LF_STR("job_id", w->job.id),
		         LF_STR("worker_id", w->worker_id), LF_STR("lease_id", w->job.lease_id),
		         LF_BOOL("released", w->stopping));
		break;
	case JOB_LOST:
		log_warn("job.lost", LF_STR("job_id", w->job.id), LF_STR("worker_id", w->worker_id),
		         LF_STR("lease_id", w->job.lease_id));
		break;
	case JOB_RETRY:
	case JOB_FAILED:
		if (PQstatus(w->conn) == CONNECTION_BAD && !w->stopping) {
			/* The database went away mid-step: nothing of the step
			 * committed (an attempt is not an error's). */
			log_warn("job.connection_lost", LF_STR("job_id", w->job.id),
			         LF_STR("worker_id", w->worker_id),
			         LF_STR("lease_id", w->job.lease_id), LF_STR("error", err));
			reattach_later(w);
			schedule_pass(w, backoff_next_ms(&w->retry));
			return;
		}
		log_warn("job.retry", LF_STR("job_id", w->job.id),
		         LF_STR("worker_id", w->worker_id), LF_STR("lease_id", w->job.lease_id),
		         LF_STR("error", err));
		if ((!connection_broken(w) || reconnect(w)) &&
		    job_release_retry(w->conn, &w->job, err, err2, sizeof(err2)) < 0)
			log_warn("job.release_failed", LF_STR("job_id", w->job.id),
				 LF_STR("error", err2));
		break;
	}
	metrics_job_ended(w->metrics, &w->job, r);
	drop_job(w);
	schedule_pass(w, 0);
}

/* Takes up again the job whose connection broke, if its lease still holds. */
static void reattach(struct worker *w)
{
	char err[512];
	int rc = queue_reattach(w->conn, w->reattach_id, w->reattach_lease, &w->job, err,
				sizeof(err));

	if (rc < 0) {
		schedule_pass(w, backoff_next_ms(&w->retry));
		return;
	}
	if (rc == 0) {
		log_warn("job.lost", LF_STR("job_id", w->reattach_id),
		         LF_STR("worker_id", w->worker_id), LF_STR("lease_id", w->reattach_lease));
	} else {
		log_info("job.reattached", LF_STR("job_id", w->job.id),
		         LF_STR("worker_id", w->worker_id), LF_STR("lease_id", w->job.lease_id));
		w->im = import_new(w->conn, &w->job, err, sizeof(err));
		if (w->im == NULL)
			job_clear(&w->job); /* its lease will expire and it is rescued */
	}
	w->reattach_id[0] = '\0';
	schedule_pass(w, 0);
}

/* Claims the next import job, if any. */
static void claim(struct worker *w)
{
	char err[512];
	int rc = queue_claim(w->conn, w->worker_id, import_kinds, &w->job, err, sizeof(err));

	if (rc < 0) {
		unsigned delay = backoff_next_ms(&w->retry);

		log_warn("worker.claim_failed", LF_STR("error", err), LF_I64("retry_in_ms", delay));
		schedule_pass(w, delay);
		return;
	}
	if (rc == 0) {
		/* Nothing due now. A retry waiting out its backoff gets no NOTIFY
		 * when it becomes due: wake for it then, if before the poll tick. */
		int64_t due = queue_next_due_ms(w->conn);

		if (due >= 0 && due < w->cfg->poll_interval_ms)
			schedule_pass(w, (unsigned)due + 1);
		return;
	}
	log_info("job.claimed", LF_STR("job_id", w->job.id), LF_STR("worker_id", w->worker_id),
	         LF_STR("lease_id", w->job.lease_id), LF_STR("kind", w->job.kind),
	         LF_I64("attempts", w->job.attempts),
	         LF_I64("processed_items", w->job.processed_items));
	metrics_job_claimed(w->metrics, &w->job);
	w->im = import_new(w->conn, &w->job, err, sizeof(err));
	if (w->im == NULL) {
		char err2[512];

		if (job_release_retry(w->conn, &w->job, err, err2, sizeof(err2)) < 0)
			log_warn("job.release_failed", LF_STR("job_id", w->job.id),
				 LF_STR("error", err2));
		metrics_job_ended(w->metrics, &w->job, JOB_RETRY);
		job_clear(&w->job);
	}
	schedule_pass(w, 0);
}

/* One unit of work: a batch of the running job, or a batch of noop jobs and
 * a claim. Re-schedules itself while there is more, so signals and
 * notifications are serviced between units. */
static void pass_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	char err[512];
	int n;

	if (w->stopping)
		return;
	if (!connection_ok(w)) {
		schedule_pass(w, backoff_next_ms(&w->retry));
		return;
	}
	if (w->im != NULL) {
		run_step(w);
		return;
	}
	if (w->reattach_id[0] != '\0') {
		reattach(w);
		return;
	}
	n = queue_complete_noops(w->conn, w->worker_id, QUEUE_NOOP_BATCH, err, sizeof(err));
	if (n < 0) {
		unsigned delay = backoff_next_ms(&w->retry);

		log_warn("worker.pass_failed", LF_STR("error", err), LF_I64("retry_in_ms", delay));
		schedule_pass(w, delay);
		return;
	}
	backoff_reset(&w->retry);
	if (n > 0)
		log_debug("noop.completed", LF_I64("jobs", n));
	metrics_noops(w->metrics, n);
	if (n == QUEUE_NOOP_BATCH)
		schedule_pass(w, 0);
	else
		claim(w);
}

static void notify_cb(const char *channel, const char *payload, void *arg)
{
	struct worker *w = arg;

	/* Cancel or pause of the running job: its next step (which ends it at
	 * the fence) runs now, not after a batch_pause_ms delay. */
	if (w->im != NULL && strcmp(channel, CHANNEL_CONTROL) == 0 &&
	    strcmp(payload, w->job.id) == 0)
		evtimer_del(w->pass_ev);
	wake(w, channel);
}

static void listen_state_cb(bool ready, void *arg)
{
	/* Notifications sent while we were away are lost: look at the table. */
	if (ready)
		wake(arg, "listen.ready");
}

/* The safety-net tick: housekeeping (one worker at a time fleet-wide), then
 * a claim pass in case a notification was missed. Runs between steps, when
 * the job connection is idle. */
static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	char err[512];
	int rescued, pruned;

	if (w->stopping || !connection_ok(w))
		return;
	/* Rescue on every tick; prune about once a minute, and at every tick
	 * for as long as pruning finds jobs to delete (a backlog past
	 * retention_days, or a fleet finishing more jobs than a slice a minute). */
	bool prune = w->prune_backlog || time(NULL) - w->pruned_at >= PRUNE_INTERVAL_S;

	rescued = queue_housekeeping(w->conn, prune, &pruned, err, sizeof(err));
	if (prune && rescued >= 0) {
		w->pruned_at = time(NULL);
		w->prune_backlog = pruned > 0;
	}
	if (pruned > 0)
		log_info("jobs.pruned", LF_I64("jobs", pruned));
	if (rescued < 0)
		log_warn("worker.housekeeping_failed", LF_STR("error", err));
	else if (rescued > 0)
		log_info("jobs.rescued", LF_I64("jobs", rescued));
	wake(w, "poll");
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;

	if (w->stopping) {
		log_warn("worker.fast_exit", LF_I64("signal", sig));
		w->exit_code = 1;
		event_base_loopbreak(w->base);
		return;
	}
	w->stopping = 1;
	log_info("worker.stopping", LF_I64("signal", sig));
	/* Between loop callbacks a running job is at a batch boundary: release
	 * it to pending with its checkpoint, then leave. */
	if (w->im != NULL)
		run_step(w);
	event_base_loopexit(w->base, NULL);
}

struct worker *worker_new(struct event_base *base, const struct config *cfg)
{
	struct worker *w = calloc(1, sizeof(*w));
	char host[256] = "unknown";

	if (w == NULL)
		return NULL;
	w->base = base;
	w->cfg = cfg;
	gethostname(host, sizeof(host) - 1);
	snprintf(w->worker_id, sizeof(w->worker_id), "%s:%ld", host, (long)getpid());
	backoff_init(&w->retry, 100, 5000);
	return w;
}

int worker_start(struct worker *w, const volatile sig_atomic_t *stop, char *err, size_t errlen)
{
	static const char *const channels[] = {CHANNEL_JOBS, CHANNEL_CONTROL, NULL};
	struct timeval poll_tv = {w->cfg->poll_interval_ms / 1000,
				  (w->cfg->poll_interval_ms % 1000) * 1000};

	/* Until the loop runs, main's plain signal handler raises *stop, which
	 * cuts a long connect retry short. */
	w->conn = pgconn_connect(w->cfg->database_url, "importer-worker", -1, stop, err, errlen);
	if (w->conn == NULL)
		return -1;
	w->sigterm_ev = evsignal_new(w->base, SIGTERM, signal_cb, w);
	w->sigint_ev = evsignal_new(w->base, SIGINT, signal_cb, w);
	w->poll_ev = event_new(w->base, -1, EV_PERSIST, poll_cb, w);
	w->pass_ev = evtimer_new(w->base, pass_cb, w);
	/* No DNS base: the worker blocks on its job connection anyway. */
	w->listener = pglisten_new(w->base, NULL, w->cfg->listen_database_url, "importer-worker-listen",
				   channels, notify_cb, listen_state_cb, w);
	if (w->sigterm_ev == NULL || w->sigint_ev == NULL || w->poll_ev == NULL ||
	    w->pass_ev == NULL || w->listener == NULL || event_add(w->sigterm_ev, NULL) != 0 ||
	    event_add(w->sigint_ev, NULL) != 0 || event_add(w->poll_ev, &poll_tv) != 0) {
		snprintf(err, errlen, "cannot set up the event loop");
		return -1;
	}
	if (*stop) { /* a signal arrived before the loop's handlers took over */
		w->stopping = 1;
		event_base_loopexit(w->base, NULL);
	}
	if (w->cfg->metrics_addr != NULL &&
	    (w->metrics = metrics_new(w->base, w->cfg->metrics_addr, w->conn, w->worker_id, err,
				      errlen)) == NULL)
		return -1;
	pglisten_start(w->listener);
	log_info("worker.started", LF_STR("worker_id", w->worker_id),
		 LF_I64("server_version", PQserverVersion(w->conn)));
	return 0;
}

int worker_exit_code(const struct worker *w)
{
	return w->exit_code;
}

void worker_free(struct worker *w)
{
	if (w == NULL)
		return;
	drop_job(w);
	metrics_free(w->metrics);
	pglisten_free(w->listener);
	if (w->poll_ev != NULL)
		event_free(w->poll_ev);
	if (w->pass_ev != NULL)
		event_free(w->pass_ev);
	if (w->sigterm_ev != NULL)
		event_free(w->sigterm_ev);
	if (w->sigint_ev != NULL)
		event_free(w->sigint_ev);
	PQfinish(w->conn);
	free(w);
}
