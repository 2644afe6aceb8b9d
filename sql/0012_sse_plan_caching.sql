-- 0012_sse_plan_caching.sql -- the gateway's live SSE reads, as PL/pgSQL.
--
-- Every change a stream carries costs the gateway one read of the job rows
-- (and, for streams that follow a job's log, one of its new log lines). Sent
-- as plain statements, PostgreSQL parses, rewrites (row-level security) and
-- plans them afresh each time: the 26-field json_build_object and the policy
-- made that about 0.1 ms of the 0.16 ms a refresh took (pgbench, one client,
-- -M extended: 0.158 ms as a statement, 0.067 ms through this function). A
-- PL/pgSQL function keeps its plans for the whole session, and no named
-- prepared statement is involved, so the pooled connections may still go
-- through PgBouncer in transaction pooling (DESIGN.md, connection rules).
-- SECURITY INVOKER: the caller's row-level security applies unchanged (the
-- gateway calls them as importer_api with the user's identity).
--
-- The job JSON must stay the one of JOB_JSON in api/api_sql.c (the other
-- routes); tests/db/check_api.c compares them field by field.

CREATE FUNCTION importer.sse_jobs(ids uuid[])
	RETURNS TABLE (job json, seq bigint, status text, id text)
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	RETURN QUERY
	SELECT json_build_object('id', j.id, 'user_id', j.user_id, 'kind', j.kind,
	                         'file_name', j.file_name, 'file_size', j.file_size,
	                         'collection', j.collection, 'import_mode', j.import_mode,
	                         'dry_run', j.dry_run, 'status', j.status, 'phase', j.phase,
	                         'progress', j.progress, 'current_step', j.current_step,
	                         'eta_seconds', j.eta_seconds, 'total_items', j.total_items,
	                         'total_is_estimate', j.total_is_estimate,
	                         'processed_items', j.processed_items,
	                         'failed_items', j.failed_items, 'counts', j.counts,
	                         'error_message', j.error_message, 'error_details', j.error_details,
	                         'attempts', j.attempts, 'max_attempts', j.max_attempts,
	                         'cancel_requested', j.cancel_requested,
	                         'pause_requested', j.pause_requested, 'created_at', j.created_at,
	                         'started_at', j.started_at, 'completed_at', j.completed_at,
	                         'updated_at', j.updated_at),
	       j.seq, j.status, j.id::text
	FROM importer.import_jobs j
	WHERE j.id = ANY(ids);
END
$$;

-- A job's log lines after id `after`, oldest first, a page of 500.
CREATE FUNCTION importer.sse_logs(job_id uuid, after bigint)
	RETURNS TABLE (id bigint, line json)
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	RETURN QUERY
	SELECT l.id, json_build_object('id', l.id, 'ts', l.ts, 'level', l.level, 'event', l.event,
	                               'message', l.message, 'details', l.details)
	FROM importer.import_logs l
	WHERE l.job_id = sse_logs.job_id AND l.id > after
	ORDER BY l.id
	LIMIT 500;
END
$$;

REVOKE EXECUTE ON FUNCTION importer.sse_jobs(uuid[]), importer.sse_logs(uuid, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION importer.sse_jobs(uuid[]), importer.sse_logs(uuid, bigint) TO importer_api;
