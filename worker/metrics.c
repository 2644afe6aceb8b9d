/* metrics.c -- Prometheus text on GET /metrics, served from the worker's loop.
 *
 * Owns the counters and the HTTP listener; worker.c calls the hooks. The
 * queue figures come from one cheap query on the job connection (served by
 * the partial index on pending jobs), read during a scrape when the cached
 * ones are older than METRICS_QUEUE_REFRESH_S and the connection is idle, so
 * the loop is never held for long and an unscraped worker costs nothing.
 */
#include "metrics.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "pgconn.h"

/* Upper bounds of the batch duration histogram, in seconds. */
static const double buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

/* Outcomes of a claimed job, in the order of outcome_names. */
enum outcome { OUT_COMPLETED, OUT_FAILED, OUT_CANCELLED, OUT_RELEASED, OUT_LOST, OUT_N };
static const char *const outcome_names[OUT_N] = {"completed", "failed", "cancelled", "released",
						 "lost"};

/* Runnable pending jobs and the age of the oldest one, in one transaction
 * whose statement timeout keeps a slow server from holding the loop. */
static const char queue_sql[] =
	"BEGIN; SET LOCAL statement_timeout = '2s';"
	" SELECT count(*), COALESCE(EXTRACT(epoch FROM now() - min(run_after)), 0)"
	" FROM importer.import_jobs WHERE status = 'pending' AND run_after <= now();"
	" COMMIT";
static const char status_sql[] = "SELECT status FROM importer.import_jobs WHERE id = $1";

struct metrics {
	struct evhttp *http;             /* owned */
	struct evhttp_bound_socket *sock; /* owned by http */
	PGconn *conn;                    /* borrowed; the worker's job connection */
	const char *worker_id;           /* borrowed */
	int port;                        /* bound port */
	int64_t claimed, noops;          /* counters */
	int64_t ended[OUT_N];
	int64_t records, record_errors;
	uint64_t hist[NBUCKETS];         /* batches with duration <= buckets[i] (not cumulative) */
	uint64_t batches;
	double batch_seconds;
	struct timespec step_start;      /* of the step in progress */
	int64_t step_processed, step_failed; /* job counters when it began */
	char job_id[JOB_ID_LEN];         /* current job; "" when idle */
	char job_kind[16];
	bool queue_ok;                   /* the figures below have been read at least once */
	int64_t queue_depth;
	double queue_age;
	time_t queue_read_at;            /* when they were read (0: never) */
};

static double since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* True when a query may run on the job connection now: connected, and no
 * transaction or result of the worker's is in flight. */
static bool conn_idle(PGconn *conn)
{
	return conn != NULL && PQstatus(conn) == CONNECTION_OK &&
	       PQtransactionStatus(conn) == PQTRANS_IDLE;
}

static void refresh_queue(struct metrics *m)
{
	PGresult *res;
	char err[256];
	bool got = false;

	if (m->queue_read_at != 0 && time(NULL) - m->queue_read_at < METRICS_QUEUE_REFRESH_S)
		return;
	if (!conn_idle(m->conn))
		return;
	m->queue_read_at = time(NULL); /* also after a failure: don't retry on every scrape */
	if (!PQsendQuery(m->conn, queue_sql)) {
		pgconn_error(m->conn, NULL, err, sizeof(err));
		log_warn("metrics.queue_failed", LF_STR("error", err));
		return;
	}
	while ((res = PQgetResult(m->conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);

		if (st == PGRES_TUPLES_OK && PQntuples(res) == 1) {
			m->queue_depth = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
			m->queue_age = strtod(PQgetvalue(res, 0, 1), NULL);
			got = true;
		} else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			pgconn_error(m->conn, res, err, sizeof(err));
			log_warn("metrics.queue_failed", LF_STR("error", err));
		}
		PQclear(res);
	}
	/* An error skips the COMMIT: never leave the worker a failed transaction. */
	if (PQtransactionStatus(m->conn) != PQTRANS_IDLE)
		PQclear(PQexec(m->conn, "ROLLBACK"));
	if (got)
		m->queue_ok = true;
}

/* Writes s as a Prometheus label value (backslash, quote and newline escaped). */
static void add_label(struct evbuffer *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add_printf(b, "\\%c", *s);
		else if (*s == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, s, 1);
	}
}

static void head(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(struct evbuffer *b, const char *name, const char *help, int64_t v)
{
	head(b, name, "counter", help);
	evbuffer_add_printf(b, "%s %" PRId64 "\n", name, v);
}

static void render(struct metrics *m, struct evbuffer *b)
{
	uint64_t cum = 0;

	head(b, "importer_worker_info", "gauge", "Constant 1, labelled with this worker's id.");
	evbuffer_add_printf(b, "importer_worker_info{worker_id=\"");
	add_label(b, m->worker_id);
	evbuffer_add_printf(b, "\",version=\"%s\"} 1\n", IMPORTER_VERSION);
	counter(b, "importer_worker_jobs_claimed_total", "Import jobs this worker claimed.",
		m->claimed);
	head(b, "importer_worker_jobs_ended_total", "counter",
	     "Claimed jobs this worker let go, by the status they ended in (released: back to "
	     "pending or paused; lost: the lease was gone).");
	for (int i = 0; i < OUT_N; i++)
		evbuffer_add_printf(b, "importer_worker_jobs_ended_total{outcome=\"%s\"} %" PRId64 "\n",
				    outcome_names[i], m->ended[i]);
	counter(b, "importer_worker_jobs_completed_total", "Import jobs this worker completed.",
		m->ended[OUT_COMPLETED]);
	counter(b, "importer_worker_jobs_failed_total", "Import jobs that failed on this worker.",
		m->ended[OUT_FAILED]);
	counter(b, "importer_worker_jobs_cancelled_total",
		"Import jobs this worker stopped on a cancel.", m->ended[OUT_CANCELLED]);
	counter(b, "importer_worker_noop_jobs_completed_total",
		"noop jobs this worker completed (claimed and completed in batches).", m->noops);
	counter(b, "importer_worker_records_imported_total",
		"Records committed without error (dry runs included).", m->records);
	counter(b, "importer_worker_record_errors_total", "Record errors committed.",
		m->record_errors);
	head(b, "importer_worker_batch_duration_seconds", "histogram",
	     "Duration of one batch of an import job (parse, write, commit).");
	for (size_t i = 0; i < NBUCKETS; i++) {
		cum += m->hist[i];
		evbuffer_add_printf(b,
				    "importer_worker_batch_duration_seconds_bucket{le=\"%g\"} %" PRIu64
				    "\n",
				    buckets[i], cum);
	}
	evbuffer_add_printf(b,
			    "importer_worker_batch_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
			    "importer_worker_batch_duration_seconds_sum %.6f\n"
			    "importer_worker_batch_duration_seconds_count %" PRIu64 "\n",
			    m->batches, m->batch_seconds, m->batches);
	head(b, "importer_worker_busy", "gauge", "1 while this worker runs an import job.");
	evbuffer_add_printf(b, "importer_worker_busy %d\n", m->job_id[0] != '\0');
	head(b, "importer_worker_current_job", "gauge",
	     "1, labelled with the job this worker runs; absent while idle.");
	if (m->job_id[0] != '\0') {
		evbuffer_add_printf(b, "importer_worker_current_job{job_id=\"");
		add_label(b, m->job_id);
		evbuffer_add_printf(b, "\",kind=\"");
		add_label(b, m->job_kind);
		evbuffer_add_printf(b, "\"} 1\n");
	}
	refresh_queue(m);
	if (m->queue_ok) {
		head(b, "importer_queue_pending_jobs", "gauge",
		     "Runnable pending jobs, fleet-wide (every worker reports the same figure).");
		evbuffer_add_printf(b, "importer_queue_pending_jobs %" PRId64 "\n", m->queue_depth);
		head(b, "importer_queue_oldest_pending_age_seconds", "gauge",
		     "How long the oldest runnable pending job has waited, fleet-wide.");
		evbuffer_add_printf(b, "importer_queue_oldest_pending_age_seconds %.3f\n",
				    m->queue_age);
		head(b, "importer_queue_read_age_seconds", "gauge",
		     "Age of the two queue figures above.");
		evbuffer_add_printf(b, "importer_queue_read_age_seconds %lld\n",
				    (long long)(time(NULL) - m->queue_read_at));
	}
}

static void request_cb(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct evbuffer *b;

	if (path == NULL || strcmp(path, "/metrics") != 0) {
		evhttp_send_error(req, HTTP_NOTFOUND, "not found");
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
	    evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		evhttp_send_error(req, HTTP_BADMETHOD, "method not allowed");
		return;
	}
	b = evbuffer_new();
	if (b == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
		return;
	}
	render(m, b);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, "OK", b);
	evbuffer_free(b);
}

struct metrics *metrics_new(struct event_base *base, const char *addr, PGconn *conn,
			    const char *worker_id, char *err, size_t errlen)
{
	struct metrics *m = calloc(1, sizeof(*m));
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char host[256];
	int port;

	if (m == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	m->conn = conn;
	m->worker_id = worker_id;
	if (config_split_addr(addr, host, sizeof(host), &port) != 0) {
		snprintf(err, errlen, "IMPORTER_METRICS_ADDR: expected host:port, got \"%s\"", addr);
		goto fail;
	}
	m->http = evhttp_new(base);
	if (m->http == NULL) {
		snprintf(err, errlen, "cannot create the metrics HTTP server");
		goto fail;
	}
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_timeout(m->http, 10);
	evhttp_set_max_headers_size(m->http, 8192);
	evhttp_set_max_body_size(m->http, 0);
	evhttp_set_gencb(m->http, request_cb, m);
	m->sock = evhttp_bind_socket_with_handle(m->http, host, (ev_uint16_t)port);
	if (m->sock == NULL) {
		snprintf(err, errlen, "IMPORTER_METRICS_ADDR: cannot listen on %s", addr);
		goto fail;
	}
	if (getsockname(evhttp_bound_socket_get_fd(m->sock), (struct sockaddr *)&ss, &sslen) == 0)
		m->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							 : ((struct sockaddr_in *)&ss)->sin_port);
	log_info("metrics.listening", LF_STR("addr", addr), LF_I64("port", m->port));
	return m;
fail:
	metrics_free(m);
	return NULL;
}

int metrics_port(const struct metrics *m)
{
	return m->port;
}

void metrics_job_claimed(struct metrics *m, const struct job *job)
{
	if (m == NULL)
		return;
	m->claimed++;
	snprintf(m->job_id, sizeof(m->job_id), "%s", job->id);
	snprintf(m->job_kind, sizeof(m->job_kind), "%s", job->kind);
}

void metrics_step_begin(struct metrics *m, const struct job *job)
{
	if (m == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &m->step_start);
	m->step_processed = job->processed_items;
	m->step_failed = job->failed_items;
}

void metrics_step_end(struct metrics *m, const struct job *job, enum job_result r)
{
	int64_t processed, failed;
	double s;
	size_t i;

	if (m == NULL || (r != JOB_CONTINUE && r != JOB_DONE))
		return; /* nothing of this step was committed */
	processed = job->processed_items - m->step_processed;
	failed = job->failed_items - m->step_failed;
	if (processed <= 0 && failed <= 0)
		return; /* a step that ended the job without a batch */
	s = since(&m->step_start);
	m->records += processed > failed ? processed - failed : 0;
	m->record_errors += failed > 0 ? failed : 0;
	m->batches++;
	m->batch_seconds += s;
	for (i = 0; i < NBUCKETS && s > buckets[i]; i++)
		;
	if (i < NBUCKETS)
		m->hist[i]++;
}

void metrics_job_ended(struct metrics *m, const struct job *job, enum job_result r)
{
	enum outcome out = OUT_RELEASED;
	const char *params[1] = {job->id};
	PGresult *res;

	if (m == NULL)
		return;
	if (r == JOB_LOST) {
		out = OUT_LOST;
	} else if (conn_idle(m->conn)) {
		res = PQexecParams(m->conn, status_sql, 1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
			const char *st = PQgetvalue(res, 0, 0);

			if (strcmp(st, "completed") == 0)
				out = OUT_COMPLETED;
			else if (strcmp(st, "failed") == 0)
				out = OUT_FAILED;
			else if (strcmp(st, "cancelled") == 0)
				out = OUT_CANCELLED;
		}
		PQclear(res);
	}
	m->ended[out]++;
	m->job_id[0] = '\0';
	m->job_kind[0] = '\0';
}

void metrics_noops(struct metrics *m, int n)
{
	if (m != NULL && n > 0)
		m->noops += n;
}

void metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	if (m->http != NULL)
		evhttp_free(m->http);
	free(m);
}
