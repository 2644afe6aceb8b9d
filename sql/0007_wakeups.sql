-- 0007_wakeups.sql -- when workers wake, and how often progress is announced.

/* ==== Jobs due later ==== */

-- A retried job waits for run_after (exponential backoff) and nothing
-- NOTIFYs when that time comes: an idle worker asks how long until the next
-- such job is due and sets a timer, instead of waiting for its poll tick.
CREATE INDEX import_jobs_due_idx ON importer.import_jobs (run_after)
	WHERE status = 'pending';

-- Milliseconds until the earliest pending job that is not yet due, or NULL.
CREATE FUNCTION importer.next_due_ms() RETURNS bigint
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
	SELECT ceil(extract(epoch FROM min(run_after) - clock_timestamp()) * 1000)::bigint
	  FROM importer.import_jobs
	 WHERE status = 'pending' AND run_after > clock_timestamp()
$$;
REVOKE ALL ON FUNCTION importer.next_due_ms() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION importer.next_due_ms() TO importer_worker;

/* ==== Quiet progress ==== */

-- NOTIFY is a hint and the row is the truth: a worker writing progress many
-- times a second marks most of those transactions quiet
-- (set_config('importer.quiet_progress', 'on', true)), and an update that
-- changes neither status nor phase then stamps seq without a NOTIFY. A NOTIFY
-- in a writing transaction takes a cluster-wide lock at commit, and every
-- notification is fanned out to every SSE stream of the user. The job's next
-- notified change (at the latest its end) carries the newest seq, and
-- readers always fetch the current row.
CREATE OR REPLACE FUNCTION importer.tg_jobs_event() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		-- a fresh seq, so streams past the job's last seq learn it is gone
		PERFORM pg_notify('importer_events', format('{"t":"job","job_id":"%s","user_id":"%s","seq":%s}',
			OLD.id, OLD.user_id, nextval('importer.event_seq')));
		RETURN OLD;
	END IF;
	IF TG_OP = 'UPDATE' AND NEW.status = OLD.status AND NEW.phase IS NOT DISTINCT FROM OLD.phase
	   AND current_setting('importer.quiet_progress', true) = 'on' THEN
		RETURN NEW;
	END IF;
	PERFORM pg_notify('importer_events', format('{"t":"job","job_id":"%s","user_id":"%s","seq":%s}',
		NEW.id, NEW.user_id, NEW.seq));
	RETURN NEW;
END
$$;
