/* api_sql.h -- every SQL statement the gateway runs, as named constants.
 *
 * Each runs through pgpool under the caller's identity (role importer_api,
 * importer.user_id, TimeZone UTC), so RLS decides what is visible. Job JSON is
 * built by PostgreSQL (json_build_object renders timestamptz as RFC 3339 with
 * the session time zone, here +00:00); the gateway passes it through.
 * Statements returning jobs have the columns (job json, seq bigint, status text).
 */
#ifndef IMPORTER_API_SQL_H
#define IMPORTER_API_SQL_H

/* Submit, whole file in $3 (bytea, NULL = no file) or an upload id in $3 (uuid);
 * $1 kind, $2 options jsonb. Remembers the new job id for SQL_JOB_LAST. */
extern const char SQL_SUBMIT_BYTES[];
extern const char SQL_SUBMIT_UPLOAD[];
/* The job SQL_SUBMIT_* just created (second statement of the same transaction). */
extern const char SQL_JOB_LAST[];
/* $1 job id. */
extern const char SQL_JOB_GET[];
/* $1 status or NULL, $2 cursor or NULL, $3 limit; extra column 4: cursor text. */
extern const char SQL_JOB_LIST[];
extern const char SQL_JOB_CANCEL[];
extern const char SQL_JOB_PAUSE[];
extern const char SQL_JOB_RESUME[];
/* $1 job id, $2 restart boolean. */
extern const char SQL_JOB_RETRY[];
extern const char SQL_JOB_DELETE[];
/* $1 status or NULL; one column: count. */
extern const char SQL_JOB_CLEAR[];
/* $1 job id, $2 after, $3 limit: (found bool, id bigint, entry json); one row
 * with NULL id when the job has none; no row when the job is not visible. */
extern const char SQL_JOB_LOGS[];
extern const char SQL_JOB_ERRORS[];
/* $1 collection or NULL, $2 cursor (hex) or NULL, $3 limit: (entry json, cursor text). */
extern const char SQL_RECORDS[];
/* $1 hours: one column, the whole JSON answer. */
extern const char SQL_STATS[];
/* $1 file_name or NULL: the upload id. */
extern const char SQL_UPLOAD_BEGIN[];
/* $1 upload id, $2 seq, $3 data bytea. */
extern const char SQL_UPLOAD_CHUNK[];

/* SSE. Job columns plus (max_log_id bigint, stream_limit int). $1 job id. */
extern const char SQL_SSE_JOB[];
/* Global snapshot: active jobs and the newest 20, oldest first: job columns, id text,
 * stream_limit; a single row with NULL seq when there is no job. */
extern const char SQL_SSE_GLOBAL[];
/* $1 uuid[]: the visible ones among these jobs (job columns plus id text). */
extern const char SQL_SSE_JOBS[];
/* $1 job id, $2 after id: (id bigint, entry json), at most 500, oldest first. */
extern const char SQL_SSE_LOGS[];

#endif
