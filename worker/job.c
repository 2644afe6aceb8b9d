/* job.c -- a claimed job's row and its lease-fenced statements (see job.h). */
#include "job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconn.h"

/* The log line is written by the same statement that ends the lease, so it
 * exists exactly when the state change does. A job handed back to the queue
 * ($3 = pending) whose owner asked for cancel or pause meanwhile becomes
 * cancelled or paused instead: claiming clears the flags, so the request
 * would otherwise be lost. */
static const char sql_end[] =
	"WITH t AS ("
	"  SELECT CASE WHEN $3 = 'pending' AND cancel_requested THEN 'cancelled'"
	"              WHEN $3 = 'pending' AND pause_requested THEN 'paused'"
	"              ELSE $3 END AS status"
	"  FROM importer.import_jobs WHERE id = $1 AND lease_id = $2),"
	" j AS ("
	"  UPDATE importer.import_jobs SET"
	"    status = t.status,"
	"    phase = CASE WHEN t.status IN ('pending', 'paused') THEN 'queued' ELSE 'done' END,"
	"    progress = CASE WHEN t.status = 'completed' THEN 100 ELSE progress END,"
	"    total_items = CASE WHEN t.status = 'completed' THEN processed_items ELSE total_items END,"
	"    total_is_estimate = total_is_estimate AND t.status <> 'completed',"
	"    checkpoint = CASE WHEN t.status = 'completed' THEN NULL ELSE checkpoint END,"
	"    eta_seconds = CASE WHEN t.status = 'completed' THEN 0 END,"
	"    current_step = CASE WHEN t.status = 'completed' THEN NULL ELSE current_step END,"
	"    error_message = CASE WHEN t.status = 'failed' THEN $4 ELSE error_message END,"
	"    pause_requested = false,"
	"    lease_id = NULL,"
	"    worker_id = CASE WHEN t.status IN ('pending', 'paused') THEN NULL ELSE worker_id END,"
	"    run_after = now()"
	"  FROM t"
	"  WHERE id = $1 AND lease_id = $2"
	"    AND (t.status <> 'paused' OR pause_requested)"
	"  RETURNING id, user_id, t.status)"
	"INSERT INTO importer.import_logs (job_id, user_id, level, event, message)"
	"  SELECT id, user_id,"
	"         CASE WHEN status = $3 THEN $5 WHEN status = 'cancelled' THEN 'warn' ELSE 'info' END,"
	"         CASE WHEN status = $3 THEN $6 ELSE 'job.' || status END,"
	"         CASE WHEN status = $3 THEN coalesce($4, $7)"
	"              WHEN status = 'cancelled' THEN 'cancelled on request'"
	"              ELSE 'paused at a checkpoint' END"
	"  FROM j RETURNING 1";

/* Transient error: count an attempt; back off 2^attempts seconds; fail once
 * attempts are used up. An outstanding cancel or pause request wins. */
static const char sql_retry[] =
	"WITH t AS ("
	"  SELECT CASE WHEN cancel_requested THEN 'cancelled'"
	"              WHEN pause_requested THEN 'paused'"
	"              WHEN attempts + 1 >= max_attempts THEN 'failed'"
	"              ELSE 'pending' END AS status"
	"  FROM importer.import_jobs WHERE id = $1 AND lease_id = $2),"
	" j AS ("
	"  UPDATE importer.import_jobs SET"
	"    attempts = attempts + CASE WHEN t.status IN ('pending', 'failed') THEN 1 ELSE 0 END,"
	"    status = t.status,"
	"    phase = CASE WHEN t.status IN ('pending', 'paused') THEN 'queued' ELSE 'done' END,"
	"    error_message = CASE WHEN t.status IN ('pending', 'failed') THEN $3"
	"                         ELSE error_message END,"
	"    run_after = now() + CASE WHEN t.status = 'pending'"
	"                  THEN make_interval(secs => power(2, least(attempts + 1, 10)))"
	"                  ELSE interval '0' END,"
	"    pause_requested = false,"
	"    lease_id = NULL, worker_id = NULL"
	"  FROM t"
	"  WHERE id = $1 AND lease_id = $2"
	"  RETURNING id, user_id, t.status)"
	"INSERT INTO importer.import_logs (job_id, user_id, level, event, message)"
	"  SELECT id, user_id, CASE WHEN status IN ('failed', 'pending') THEN"
	"           CASE WHEN status = 'failed' THEN 'error' ELSE 'warn' END ELSE 'info' END,"
	"         CASE WHEN status = 'pending' THEN 'job.retry_scheduled' ELSE 'job.' || status END,"
	"         $3 FROM j RETURNING 1";

/* The status is tested on the row found, not in the WHERE clause: with
 * status = 'processing' there, the planner may take a partial index on that
 * status and filter all of it for the id (it looks a page or two big), and
 * while a long transaction elsewhere holds the xmin horizon back that index
 * keeps an entry for every processing version since: the churn study logged
 * 18,500 buffers a fence. By id and lease only the primary key serves. A
 * fence that finds the job no longer processing rolls back what it wrote. */
const char job_sql_fence[] =
	"UPDATE importer.import_jobs SET heartbeat_at = now()"
	" WHERE id = $1 AND lease_id = $2"
	" RETURNING status = 'processing', cancel_requested, pause_requested";

static const char sql_log[] =
	"INSERT INTO importer.import_logs (job_id, user_id, level, event, message, details)"
	" VALUES ($1, $2, $3, $4, $5, $6::jsonb)";

static const char *value(const PGresult *res, int row, const char *name)
{
	int col = PQfnumber(res, name);

	if (col < 0 || PQgetisnull(res, row, col))
		return NULL;
	return PQgetvalue(res, row, col);
}

static int copy_id(char *dst, const char *src)
{
	if (src == NULL) {
		dst[0] = '\0';
		return 0;
	}
	if (strlen(src) != JOB_ID_LEN - 1)
		return -1;
	memcpy(dst, src, JOB_ID_LEN);
	return 0;
}

static struct json_object *parse_json(const char *text)
{
	return text != NULL ? json_tokener_parse(text) : NULL;
}

int job_from_row(struct job *job, const PGresult *res, int row)
{
	const char *kind = value(res, row, "kind"), *mode = value(res, row, "import_mode");
	const char *size = value(res, row, "file_size");

	memset(job, 0, sizeof(*job));
	if (kind == NULL || mode == NULL || strlen(kind) >= sizeof(job->kind) ||
	    strlen(mode) >= sizeof(job->mode) || copy_id(job->id, value(res, row, "id")) != 0 ||
	    copy_id(job->user_id, value(res, row, "user_id")) != 0 ||
	    copy_id(job->lease_id, value(res, row, "lease_id")) != 0 ||
	    copy_id(job->file_id, value(res, row, "file_id")) != 0 || job->id[0] == '\0' ||
	    job->lease_id[0] == '\0')
		return -1;
	strcpy(job->kind, kind);
	strcpy(job->mode, mode);
	if (value(res, row, "collection") != NULL)
		job->collection = strdup(value(res, row, "collection"));
	if (value(res, row, "file_name") != NULL)
		job->file_name = strdup(value(res, row, "file_name"));
	job->dry_run = value(res, row, "dry_run") != NULL && value(res, row, "dry_run")[0] == 't';
	job->file_size = size != NULL ? strtoll(size, NULL, 10) : 0;
	job->attempts = value(res, row, "attempts") ? atoi(value(res, row, "attempts")) : 0;
	job->max_attempts =
		value(res, row, "max_attempts") ? atoi(value(res, row, "max_attempts")) : 1;
	job->processed_items = value(res, row, "processed_items")
				       ? strtoll(value(res, row, "processed_items"), NULL, 10)
				       : 0;
	job->failed_items = value(res, row, "failed_items")
				    ? strtoll(value(res, row, "failed_items"), NULL, 10)
				    : 0;
	job->payload = parse_json(value(res, row, "payload"));
	job->checkpoint = parse_json(value(res, row, "checkpoint"));
	job->counts = parse_json(value(res, row, "counts"));
	if (job->payload == NULL || job->counts == NULL) {
		job_clear(job);
		return -1;
	}
	return 0;
}

void job_clear(struct job *job)
{
	if (job == NULL)
		return;
	free(job->collection);
	free(job->file_name);
	json_object_put(job->payload);
	json_object_put(job->checkpoint);
	json_object_put(job->counts);
	memset(job, 0, sizeof(*job));
}

/* Runs a fenced statement that RETURNs a row when the lease held. */
static int run_fenced(PGconn *conn, const char *sql, int n, const char *const *params, char *err,
		      size_t errlen)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	int rc = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		rc = PQntuples(res) > 0 ? 1 : 0;
	else
		pgconn_error(conn, res, err, errlen);
	PQclear(res);
	return rc;
}

int job_end(PGconn *conn, const struct job *job, enum job_end end, const char *message,
	    char *err, size_t errlen)
{
	static const struct {
		const char *status, *level, *event, *message;
	} ends[] = {
		[JOB_END_COMPLETED] = {"completed", "info", "job.completed", "import completed"},
		[JOB_END_FAILED] = {"failed", "error", "job.failed", "import failed"},
		[JOB_END_CANCELLED] = {"cancelled", "warn", "job.cancelled", "cancelled on request"},
		[JOB_END_PAUSED] = {"paused", "info", "job.paused", "paused at a checkpoint"},
		[JOB_END_RELEASED] = {"pending", "info", "job.released",
				      "released at a checkpoint (worker shutting down)"},
	};
	const char *params[] = {job->id,	       job->lease_id,      ends[end].status,
				message,	       ends[end].level,    ends[end].event,
				ends[end].message};

	return run_fenced(conn, sql_end, 7, params, err, errlen);
}

int job_release_retry(PGconn *conn, const struct job *job, const char *message, char *err,
		      size_t errlen)
{
	const char *params[] = {job->id, job->lease_id, message};

	return run_fenced(conn, sql_retry, 3, params, err, errlen);
}

int job_begin_batch(PGconn *conn, const struct job *job, int64_t idle_timeout_ms, bool *cancel,
		    bool *pause, char *err, size_t errlen)
{
	const char *params[] = {job->id, job->lease_id};
	char timeout[24];
	const char *timeout_param[] = {timeout};
	const struct pgconn_stmt stmts[] = {
		{.sql = "BEGIN"},
		{.sql = "SELECT set_config('idle_in_transaction_session_timeout', $1, true)",
		 .nparams = 1,
		 .params = timeout_param},
		{.sql = job_sql_fence, .nparams = 2, .params = params}};
	PGresult *res[3], *fence;
	int rc = -1;

	snprintf(timeout, sizeof(timeout), "%lld", (long long)idle_timeout_ms);
	if (pgconn_pipeline(conn, stmts, 3, res, err, errlen) != 0)
		return -1;
	fence = res[2];
	if (PQresultStatus(res[0]) != PGRES_COMMAND_OK) {
		pgconn_error(conn, res[0], err, errlen);
	} else if (PQresultStatus(res[1]) != PGRES_TUPLES_OK) {
		pgconn_error(conn, res[1], err, errlen);
	} else if (PQresultStatus(fence) != PGRES_TUPLES_OK) {
		pgconn_error(conn, fence, err, errlen);
	} else if (PQntuples(fence) == 0 || PQgetvalue(fence, 0, 0)[0] != 't') {
		rc = 0;
	} else {
		*cancel = PQgetvalue(fence, 0, 1)[0] == 't';
		*pause = PQgetvalue(fence, 0, 2)[0] == 't';
		rc = 1;
	}
	for (int i = 0; i < 3; i++)
		PQclear(res[i]);
	if (rc != 1)
		PQclear(PQexec(conn, "ROLLBACK"));
	return rc;
}

int job_log(PGconn *conn, const struct job *job, const char *level, const char *event,
	    const char *message, struct json_object *details, char *err, size_t errlen)
{
	const char *params[] = {job->id, job->user_id, level, event, message,
				details != NULL ? json_object_to_json_string_ext(
							  details, JSON_C_TO_STRING_PLAIN)
						: NULL};
	PGresult *res = PQexecParams(conn, sql_log, 6, NULL, params, NULL, NULL, 0);
	int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;

	if (rc != 0)
		pgconn_error(conn, res, err, errlen);
	PQclear(res);
	return rc;
}
