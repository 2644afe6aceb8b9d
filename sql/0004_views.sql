-- 0004_views.sql -- inspection views for operators and users.
--
-- security_invoker: a view reads the tables with the caller's rights, so RLS
-- applies to it as to the tables (importer_api sees its own jobs only).

-- One line per job, for `SELECT * FROM importer.job_overview ORDER BY created_at DESC`.
CREATE VIEW importer.job_overview WITH (security_invoker = true) AS
SELECT
	j.id,
	j.user_id,
	j.kind,
	j.file_name,
	j.collection,
	j.status,
	j.phase,
	j.progress,
	j.processed_items,
	j.total_items,
	j.processed_items || '/' || j.total_items
		|| CASE WHEN j.total_is_estimate AND j.status NOT IN ('completed', 'failed', 'cancelled')
		        THEN '~' ELSE '' END AS items,
	j.failed_items,
	now() - j.created_at AS age,
	CASE WHEN j.started_at IS NOT NULL
	     THEN coalesce(j.completed_at, now()) - j.started_at END AS running_for,
	j.worker_id,
	CASE WHEN j.status = 'processing' THEN now() - j.heartbeat_at END AS heartbeat_age,
	j.attempts,
	j.max_attempts,
	j.rescues,
	j.cancel_requested,
	j.pause_requested,
	j.error_message,
	j.created_at,
	j.updated_at
FROM importer.import_jobs j;
COMMENT ON VIEW importer.job_overview IS
	'One line per job: state, progress (percent), processed/total (~ = estimate), age, running time, '
	'worker and heartbeat age, attempts, error.';

-- Per kind and status over the last 24 hours, with the kind's success rate
-- (completed / finished; NULL while none of that kind has finished).
CREATE VIEW importer.import_stats WITH (security_invoker = true) AS
SELECT
	s.kind,
	s.status,
	s.jobs,
	round(sum(s.jobs) FILTER (WHERE s.status = 'completed') OVER w
	      / nullif(sum(s.jobs) FILTER (WHERE s.status IN ('completed', 'failed', 'cancelled')) OVER w, 0),
	      4) AS success_rate
FROM (
	SELECT j.kind, j.status, count(*) AS jobs
	FROM importer.import_jobs j
	WHERE j.created_at > now() - interval '24 hours'
	GROUP BY j.kind, j.status
) s
WINDOW w AS (PARTITION BY s.kind);
COMMENT ON VIEW importer.import_stats IS
	'Jobs created in the last 24 h per kind and status; success_rate = completed / finished for the kind.';

GRANT SELECT ON importer.job_overview, importer.import_stats TO importer_api, importer_worker;
