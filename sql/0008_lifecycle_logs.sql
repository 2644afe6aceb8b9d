-- 0008_lifecycle_logs.sql -- the log lines of transitions nobody else logs.
--
-- The worker logs what it decides (job.started, job.completed, job.failed,
-- job.cancelled, job.paused, job.released, job.retry_scheduled) in the
-- statement that makes the change, and housekeeping logs job.rescued. The
-- transitions below are made by claim_job, resume_job, retry_job or an
-- operator's UPDATE; one trigger logs them however they happen:
--   pending → processing          job.claimed  (worker, attempts, rescues)
--   paused → pending              job.resumed
--   failed|cancelled → pending    job.retried  (from the checkpoint or from zero)
--   processing, phase changes     job.phase    (reading → importing ...)
-- noop jobs write no log lines.

CREATE FUNCTION importer.tg_jobs_lifecycle_log() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	v_event text;
	v_message text;
	v_details jsonb;
BEGIN
	IF OLD.status = 'pending' AND NEW.status = 'processing' THEN
		v_event := 'job.claimed';
		v_message := format('claimed by worker %s', coalesce(NEW.worker_id, '?'));
		v_details := jsonb_build_object('worker_id', NEW.worker_id, 'attempts', NEW.attempts,
		                                'rescues', NEW.rescues);
	ELSIF OLD.status = 'paused' AND NEW.status = 'pending' THEN
		v_event := 'job.resumed';
		v_message := 'resumed by its owner; waiting for a worker';
	ELSIF OLD.status IN ('failed', 'cancelled') AND NEW.status = 'pending' THEN
		v_event := 'job.retried';
		v_message := CASE WHEN NEW.checkpoint IS NULL THEN 'retried from the beginning'
		                  ELSE 'retried from its checkpoint' END;
		v_details := jsonb_build_object('previous_status', OLD.status,
		                                'from_checkpoint', NEW.checkpoint IS NOT NULL);
	ELSIF OLD.status = 'processing' AND NEW.status = 'processing' THEN
		v_event := 'job.phase';
		v_message := format('phase %s', NEW.phase);
		v_details := jsonb_build_object('from', OLD.phase, 'to', NEW.phase);
	ELSE
		RETURN NULL;
	END IF;
	INSERT INTO importer.import_logs (job_id, user_id, level, event, message, details)
	VALUES (NEW.id, NEW.user_id, 'info', v_event, v_message, v_details);
	RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION importer.tg_jobs_lifecycle_log() FROM PUBLIC;

CREATE TRIGGER lifecycle_log AFTER UPDATE ON importer.import_jobs
	FOR EACH ROW
	WHEN (NEW.kind <> 'noop'
	      AND (OLD.status IS DISTINCT FROM NEW.status
	           OR (NEW.status = 'processing' AND OLD.phase IS DISTINCT FROM NEW.phase)))
	EXECUTE FUNCTION importer.tg_jobs_lifecycle_log();
