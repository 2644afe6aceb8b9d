-- 0005_worker.sql -- the worker's claim statements, as functions so that each
-- is one round trip, works through PgBouncer (no session state) and can be
-- read (and run) by an operator in psql.

-- Records of a running `replace` job wait here, keyed by job, until the
-- job's last batch swaps them in for the collection in one transaction. The
-- table is durable, so pause, a killed worker and retry continue the staging;
-- a failed or cancelled job leaves the old collection untouched (its rows go
-- with the job, or are cleared when it restarts from zero).
CREATE TABLE importer.replace_staging (
	job_id     uuid  NOT NULL REFERENCES importer.import_jobs (id) ON DELETE CASCADE,
	collection text  NOT NULL,
	record_key text  NOT NULL,
	data       jsonb NOT NULL,
	PRIMARY KEY (job_id, collection, record_key)
);
ALTER TABLE importer.replace_staging ENABLE ROW LEVEL SECURITY;
CREATE POLICY worker_all ON importer.replace_staging FOR ALL TO importer_worker
	USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON importer.replace_staging TO importer_worker;

-- Claims the next import job of one of p_kinds (the kinds this worker runs) for p_worker: pending, due, its owner below
-- max_running_per_user processing jobs; by priority, then age. The fleet-wide
-- transaction lock serialises claims (each takes well under a millisecond) so
-- that the fairness count sees every earlier claim: without it two workers
-- could each see one running job of a user and both claim a second.
-- (1768779891, 0) is outside the per-user key space (1768779890, hash).
CREATE FUNCTION importer.claim_job(p_worker text, p_kinds text[]) RETURNS SETOF importer.import_jobs
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(1768779891, 0);
	-- A new statement: its snapshot sees claims committed while we waited.
	RETURN QUERY
	WITH candidate AS MATERIALIZED (
		SELECT j.id
		FROM importer.import_jobs j
		WHERE j.status = 'pending' AND j.kind = ANY (p_kinds) AND j.kind <> 'noop'
		  AND j.run_after <= now()
		  AND (SELECT count(*) FROM importer.import_jobs r
		       WHERE r.user_id = j.user_id AND r.status = 'processing')
		      < coalesce(importer.setting_int('max_running_per_user', j.user_id), 2)
		ORDER BY j.priority DESC, j.created_at, j.id
		LIMIT 1
		FOR UPDATE SKIP LOCKED)
	UPDATE importer.import_jobs j
	-- clock_timestamp(), not now(): this transaction may have waited for the
	-- lock, and started_at must not precede the moment the job was taken.
	SET status = 'processing', phase = 'reading', worker_id = p_worker,
	    lease_id = gen_random_uuid(), heartbeat_at = clock_timestamp(),
	    started_at = coalesce(j.started_at, clock_timestamp()), completed_at = NULL,
	    cancel_requested = false, pause_requested = false, eta_seconds = NULL
	FROM candidate c
	WHERE j.id = c.id
	RETURNING j.*;
END
$$;

-- Claims and completes up to p_limit due noop jobs in one statement. They
-- never hold a running slot (claimed and finished in one transaction), so
-- fairness does not apply; each still emits its job event.
CREATE FUNCTION importer.complete_noops(p_worker text, p_limit int) RETURNS int
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	n int;
BEGIN
	WITH batch AS MATERIALIZED (
		SELECT j.id
		FROM importer.import_jobs j
		WHERE j.status = 'pending' AND j.kind = 'noop' AND j.run_after <= now()
		ORDER BY j.priority DESC, j.created_at, j.id
		LIMIT p_limit
		FOR UPDATE SKIP LOCKED)
	UPDATE importer.import_jobs j
	SET status = 'completed', phase = 'done', progress = 100, worker_id = p_worker,
	    started_at = coalesce(j.started_at, now()), completed_at = now(), heartbeat_at = now(),
	    total_items = 0, total_is_estimate = false, eta_seconds = 0
	FROM batch
	WHERE j.id = batch.id;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

-- Housekeeping that one worker at a time runs on its poll tick: rescue jobs
-- whose lease expired (their worker died, stalled or lost the database), and
-- prune finished jobs past retention_days (records stay: their job_id becomes
-- NULL) with never-submitted uploads and old outbox rows, a bounded slice per
-- tick (the pruning only when p_prune: workers ask for it about once a
-- minute). Returns the number rescued, or NULL when another worker has the turn.
CREATE FUNCTION importer.housekeeping(p_prune boolean DEFAULT false) RETURNS int
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	rescued int;
BEGIN
	IF NOT pg_try_advisory_xact_lock(1768779891, 1) THEN
		RETURN NULL;
	END IF;
	rescued := importer.rescue_stale_jobs();
	IF p_prune THEN
		PERFORM importer.purge_expired(500);
	END IF;
	RETURN rescued;
END
$$;

REVOKE EXECUTE ON FUNCTION importer.housekeeping(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION importer.housekeeping(boolean) TO importer_worker;

REVOKE EXECUTE ON FUNCTION importer.claim_job(text, text[]), importer.complete_noops(text, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION importer.claim_job(text, text[]), importer.complete_noops(text, int)
	TO importer_worker;
