-- 0009_churn.sql -- the queue under churn: claim indexes that dead entries do
-- not slow down as much, and vacuum settings for the tables around the queue.
--
-- Measured with tests/soak/churn.sh (figures in RELIABILITY.md "Churn and
-- bloat", decisions in docs/architecture.md "Churn").

/* ==== Claim: one partial index per claim statement ==== */

-- A claimed job leaves its entry in the claim index until vacuum removes it;
-- while a long transaction elsewhere holds the xmin horizon back, vacuum
-- cannot, and every claim walks (and visits the heap for) the entries of all
-- the jobs claimed since -- at the front of the (priority, age) order, where
-- the claim starts. With one index for all kinds, complete_noops walked the
-- dead entries of claimed imports and claim_job those of every completed noop
-- (hundreds a second). Split by the claim statement that reads them, each
-- walks only its own kind's. (Both predicates are the statements' own
-- clauses, so the planner proves them.)
CREATE INDEX import_jobs_claim_noop_idx ON importer.import_jobs (priority DESC, created_at, id)
	WHERE status = 'pending' AND kind = 'noop';
CREATE INDEX import_jobs_claim_import_idx ON importer.import_jobs (priority DESC, created_at, id)
	WHERE status = 'pending' AND kind <> 'noop';
DROP INDEX importer.import_jobs_claim_idx;

-- next_due_ms compared run_after with clock_timestamp(), which is volatile and
-- so no index bound: it walked import_jobs_due_idx from the oldest pending
-- job (every due job, and every dead entry) to the first future one. The
-- sub-select is evaluated once and bounds the index scan.
CREATE OR REPLACE FUNCTION importer.next_due_ms() RETURNS bigint
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
	SELECT ceil(extract(epoch FROM min(run_after) - clock_timestamp()) * 1000)::bigint
	  FROM importer.import_jobs
	 WHERE status = 'pending' AND run_after > (SELECT clock_timestamp())
$$;

/* ==== Vacuum settings of the tables around the queue ==== */

-- Defaults wait for 20 % of a table to be dead. These tables are written
-- with every job and pruned by retention (logs, errors), emptied when a job
-- completes (file chunks: 1 MiB each, out of line in the TOAST table, so a
-- few hundred dead rows are hundreds of MiB; 5000 TOAST rows are ~10 MiB),
-- or rewritten by every re-import
-- (records: an upsert changes job_id, which records_job_idx indexes, so it is
-- never a HOT update and leaves a dead row and an index entry per record).
-- Vacuum them after a few percent, without cost-based sleeping for the small
-- hot ones, so that the space is reused before the tables grow.
ALTER TABLE importer.import_logs SET (
	autovacuum_vacuum_scale_factor = 0.02,
	autovacuum_vacuum_insert_scale_factor = 0.05,
	autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE importer.import_errors SET (
	autovacuum_vacuum_scale_factor = 0.02,
	autovacuum_vacuum_insert_scale_factor = 0.05,
	autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE importer.import_file_chunks SET (
	autovacuum_vacuum_scale_factor = 0,
	autovacuum_vacuum_threshold = 64,
	autovacuum_vacuum_cost_delay = 0,
	toast.autovacuum_vacuum_scale_factor = 0,
	toast.autovacuum_vacuum_threshold = 5000,
	toast.autovacuum_vacuum_cost_delay = 0);
-- records can be large: a fixed share of it, not 20 %; the insert threshold
-- keeps the visibility map current for index-only scans of big imports.
ALTER TABLE importer.records SET (
	autovacuum_vacuum_scale_factor = 0.02,
	autovacuum_vacuum_threshold = 10000,
	autovacuum_vacuum_insert_scale_factor = 0.05,
	autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE importer.replace_staging SET (
	autovacuum_vacuum_scale_factor = 0.02,
	autovacuum_vacuum_insert_scale_factor = 0.05);

/* ==== Retention without deadlocks against running imports ==== */

-- Deleting jobs clears records.job_id of their records (0006). That UPDATE
-- locked the records in whatever order its plan produced, while a worker's
-- batch upsert locks its records in (collection, record_key) byte order (the
-- worker sorts a batch with strcmp): retention pruning old jobs whose records
-- an import was rewriting deadlocked with it (seen in the churn study), and
-- the worker lost an attempt. Lock in the worker's order first -- per user,
-- then collection and key in the C collation -- so neither can wait for the
-- other in a cycle. Rows a running batch rewrites meanwhile no longer carry
-- the deleted job's id and are left alone (READ COMMITTED re-checks them).
CREATE OR REPLACE FUNCTION importer.records_forget_jobs() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	PERFORM 1
	  FROM importer.records r
	 WHERE r.job_id IN (SELECT gone.id FROM gone)
	 ORDER BY r.user_id, r.collection COLLATE "C", r.record_key COLLATE "C"
	   FOR UPDATE OF r;
	UPDATE importer.records r SET job_id = NULL
	  FROM gone WHERE r.job_id = gone.id;
	RETURN NULL;
END
$$;
