-- 0013_records_keep_job_id.sql -- deleting jobs no longer rewrites records.
--
-- records.job_id names the last job that wrote the record. Until now
-- deleting jobs (retention, clear_jobs, an operator's DELETE) set it to NULL
-- in every record of the deleted jobs (0006, 0009): one pass over
-- records_job_idx per DELETE statement, locking and rewriting each record.
-- The churn study (tests/soak/churn.sh, RELIABILITY.md) measured what that
-- costs: with a transaction held open elsewhere, the index keeps an entry
-- for every version of every record ever written, and deleting one finished
-- 200,000-row import visited them all -- the retention DELETE took up to
-- 6 s, its lock pass 3.8 s and its UPDATE 2.8 s; the DELETEs slower than
-- 200 ms took 410 s of server time in 13 minutes on 2 cores, taken from the
-- jobs being run. And the index
-- itself made every upsert of a record a non-HOT update (job_id changes)
-- with one more index entry to write.
--
-- Now job_id is left as it is: it may name a job since deleted. Job ids are
-- random UUIDs, never reused, so such an id names no other job; readers that
-- show it check that the job still exists (GET /api/records shows null
-- then, as before). Records still never go with their jobs.

DROP TRIGGER records_forget_jobs ON importer.import_jobs;
DROP FUNCTION importer.records_forget_jobs();
DROP INDEX importer.records_job_idx;

COMMENT ON COLUMN importer.records.job_id IS
	'The last job that wrote the record. It may name a job deleted since (retention): '
	'join importer.import_jobs to tell.';
