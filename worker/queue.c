/* queue.c -- claiming and finishing jobs (see queue.h). */
#include "queue.h"

#include <stdio.h>
#include <stdlib.h>

#include "pgconn.h"

static const char sql_complete_noops[] = "SELECT importer.complete_noops($1, $2)";
static const char sql_claim[] = "SELECT * FROM importer.claim_job($1, $2::text[])";
/* The status is tested outside the lookup (OFFSET 0 keeps it out): see
 * job_sql_fence in job.c for the partial index it would otherwise invite. */
static const char sql_reattach[] = "SELECT * FROM (SELECT * FROM importer.import_jobs"
				   " WHERE id = $1 AND lease_id = $2 OFFSET 0) j"
				   " WHERE j.status = 'processing'";

int queue_complete_noops(PGconn *conn, const char *worker_id, int limit, char *err,
			 size_t errlen)
{
	char limit_text[16];
	const char *params[] = {worker_id, limit_text};
	PGresult *res;
	int n = -1;

	snprintf(limit_text, sizeof(limit_text), "%d", limit);
	res = PQexecParams(conn, sql_complete_noops, 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		n = atoi(PQgetvalue(res, 0, 0));
	else
		pgconn_error(conn, res, err, errlen);
	PQclear(res);
	return n;
}

/* One job row from sql with two parameters: 1 (job filled), 0 (none) or -1. */
static int fetch_job(PGconn *conn, const char *sql, const char *p1, const char *p2,
		     struct job *job, char *err, size_t errlen)
{
	const char *params[] = {p1, p2};
	PGresult *res = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 0);
	int rc = -1;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pgconn_error(conn, res, err, errlen);
	} else if (PQntuples(res) == 0) {
		rc = 0;
	} else if (job_from_row(job, res, 0) != 0) {
		snprintf(err, errlen, "a job row that cannot be read");
	} else {
		rc = 1;
	}
	PQclear(res);
	return rc;
}

int queue_claim(PGconn *conn, const char *worker_id, const char *kinds, struct job *job,
		char *err, size_t errlen)
{
	return fetch_job(conn, sql_claim, worker_id, kinds, job, err, errlen);
}

int queue_reattach(PGconn *conn, const char *id, const char *lease, struct job *job, char *err,
		   size_t errlen)
{
	return fetch_job(conn, sql_reattach, id, lease, job, err, errlen);
}

int queue_housekeeping(PGconn *conn, bool prune, int *pruned, char *err, size_t errlen)
{
	const char *params[] = {prune ? "true" : "false"};
	PGresult *res;
	int n = -1;

	*pruned = 0;
	/* Bounded: housekeeping shares the job connection with the running job. */
	res = PQexec(conn, "BEGIN; SET LOCAL statement_timeout = '30s'");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		pgconn_error(conn, res, err, errlen);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	res = PQexecParams(conn, "SELECT rescued, pruned FROM importer.housekeeping($1)", 1, NULL,
			   params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		/* NULLs (another worker's turn) read as 0 */
		n = atoi(PQgetvalue(res, 0, 0));
		*pruned = atoi(PQgetvalue(res, 0, 1));
	} else
		pgconn_error(conn, res, err, errlen);
	PQclear(res);
	res = PQexec(conn, n >= 0 ? "COMMIT" : "ROLLBACK");
	if (n >= 0 && PQresultStatus(res) != PGRES_COMMAND_OK) {
		pgconn_error(conn, res, err, errlen);
		n = -1;
	}
	PQclear(res);
	return n;
}

int64_t queue_next_due_ms(PGconn *conn)
{
	PGresult *res = PQexec(conn, "SELECT importer.next_due_ms()");
	int64_t ms = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    !PQgetisnull(res, 0, 0))
		ms = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return ms < 0 ? -1 : ms;
}
