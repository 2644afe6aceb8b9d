-- 0006_records_job_ref.sql -- records.job_id without a foreign key.
--
-- The foreign key cost one referential-integrity trigger call per written
-- record (a SELECT … FOR KEY SHARE on import_jobs, queued per row): measured
-- at 16 of 22.5 s when inserting 1,000,000 rows. Its two guarantees are kept
-- otherwise:
-- - job_id always names an existing job when written: only the worker writes
--   it, for the job it runs, inside the transaction that locked that job row
--   under its lease (job_begin_batch), and only terminal jobs are deleted;
--   a DELETE of that job waits for the lock.
-- - deleting jobs never deletes records and leaves no dangling job_id: the
--   statement trigger below clears job_id for every deleted job, once per
--   statement (so clear_jobs and purge_expired stay one pass over
--   records_job_idx).

ALTER TABLE importer.records DROP CONSTRAINT records_job_id_fkey;

CREATE FUNCTION importer.records_forget_jobs() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	UPDATE importer.records r SET job_id = NULL
	  FROM gone WHERE r.job_id = gone.id;
	RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION importer.records_forget_jobs() FROM PUBLIC;

CREATE TRIGGER records_forget_jobs AFTER DELETE ON importer.import_jobs
	REFERENCING OLD TABLE AS gone
	FOR EACH STATEMENT EXECUTE FUNCTION importer.records_forget_jobs();
