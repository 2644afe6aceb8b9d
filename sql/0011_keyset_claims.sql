-- 0011_keyset_claims.sql -- claims whose cost does not grow with the jobs
-- claimed while a long transaction holds the xmin horizon back (issue 9).
--
-- Measured with `CHURN_RUNS=claim tests/soak/churn.sh` (figures in
-- RELIABILITY.md "Churn and bloat", design in docs/architecture.md "Churn").

/* ==== Fairness count: processing jobs only ==== */

-- claim_job counts the candidate owner's processing jobs. It read
-- import_jobs_user_active_idx (user_id, status) WHERE status IN ('pending',
-- 'processing', 'paused'), whose entries for a user include one per pending
-- version of every job the user ever submitted that vacuum has not removed
-- yet -- under a held horizon, every job since it began, each a heap visit.
-- A noop job never has a processing version, so this index holds only import
-- claims (a handful per user, and their dead versions).
CREATE INDEX import_jobs_user_processing_idx ON importer.import_jobs (user_id)
	WHERE status = 'processing';

/* ==== Keyset claims ==== */

-- A claimed job's entry stays in the claim index, at the front of the
-- (priority, age) order, until vacuum removes it; under a held horizon it
-- cannot, and every claim walked all entries of the jobs claimed since (one
-- heap visit each: thousands of buffers per call after a few minutes). Each
-- claim statement now starts at a stored position instead: the key of the
-- first pending job of its queue, so everything before it is known not to be
-- pending and skipping it changes nothing about which job is claimed
-- (priority, age, due time and fairness apply as before).
--
-- The position stays exact this way:
--  * a claim moves it only to the first pending entry it can see from the
--    position on after its own claim (a job skipped because it is not due,
--    its owner is at the fairness cap, or it is locked stays pending, so the
--    position stops at it), or to the last job it claimed when none is left;
--  * a job that becomes pending (submit, retry, resume, rescue) with a key
--    before the position moves the position back to it (tg_jobs_ready below);
--  * a claim moves the position only if nobody else moved it meanwhile
--    (claim_job: compare and set; complete_noops: it holds the row from the
--    start, and the lowering trigger, which locks it, waits for that).
--  * no claim moves it past a job whose transaction is committing: a job
--    becomes pending for the position when its transaction commits (the
--    ready trigger is deferred to commit time), and from that trigger until
--    the end of the commit the transaction holds the position lock shared
--    (pg_advisory_xact_lock_shared(1768779891, 1)); a claim moves a
--    position only if it gets that lock exclusively without waiting, and
--    only from what a snapshot taken after it sees. So a job committed
--    before the claim took the lock is seen, and one committing later finds
--    the moved position in its trigger and moves it back. (A claim that
--    cannot get the lock leaves the position as it was: correct, only
--    slower. Two submits that commit out of their created_at order were
--    the gap of an earlier draft: the later job claimed, the position past
--    the earlier one before it committed.)
-- A full scan from the start every claim_full_scan_seconds (default 10)
-- remains as a backstop, for what no trigger reports: a transaction that
-- made its ready trigger fire early (SET CONSTRAINTS ALL IMMEDIATE) and
-- only then was overtaken, or a pending job whose priority was changed.
--
-- The key is (-priority, created_at, id) so that one row comparison bounds an
-- index scan in the claim order (priority DESC is no row-comparison order).
-- -priority as bigint: -(-2147483648) does not fit an int.
CREATE TABLE importer.claim_cursor (
	queue        text        PRIMARY KEY CHECK (queue IN ('import', 'noop')),
	neg_priority bigint      NOT NULL,
	created_at   timestamptz NOT NULL,
	id           uuid        NOT NULL,
	full_scan_at timestamptz NOT NULL
)
-- One row per queue, rewritten by most claims: room for HOT updates.
WITH (fillfactor = 50, autovacuum_vacuum_threshold = 50, autovacuum_vacuum_cost_delay = 0);
COMMENT ON TABLE importer.claim_cursor IS
	'Per claim queue, the claim-order key (-priority, created_at, id) before which no job is pending; see sql/0011_keyset_claims.sql.';
-- The start of the order: below every key (priority is an int).
INSERT INTO importer.claim_cursor VALUES
	('import', -2147483649, '-infinity', '00000000-0000-0000-0000-000000000000', '-infinity'),
	('noop', -2147483649, '-infinity', '00000000-0000-0000-0000-000000000000', '-infinity');
ALTER TABLE importer.claim_cursor ENABLE ROW LEVEL SECURITY;
CREATE POLICY worker_all ON importer.claim_cursor FOR ALL TO importer_worker
	USING (true) WITH CHECK (true);
GRANT SELECT, UPDATE ON importer.claim_cursor TO importer_worker;

CREATE INDEX import_jobs_claim_noop_key_idx
	ON importer.import_jobs ((-priority::bigint), created_at, id)
	WHERE status = 'pending' AND kind = 'noop';
CREATE INDEX import_jobs_claim_import_key_idx
	ON importer.import_jobs ((-priority::bigint), created_at, id)
	WHERE status = 'pending' AND kind <> 'noop';
DROP INDEX importer.import_jobs_claim_noop_idx;
DROP INDEX importer.import_jobs_claim_import_idx;

-- Makes pending: NOTIFY (0003), and moves the claim position of the job's
-- queue back to the job when it sorts before it (a new submit sorts after
-- it, so the rows are rarely locked here). Runs at commit (the triggers are
-- redefined as deferred below) and holds the position lock shared from here
-- to the end of the commit, so that no claim moves a position past the job
-- before it is visible (see the list above).
-- (No statement changes priority, created_at or kind of a pending job; one
-- that did would be found by the next full scan.)
CREATE OR REPLACE FUNCTION importer.tg_jobs_ready() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	q text := CASE WHEN NEW.kind = 'noop' THEN 'noop' ELSE 'import' END;
BEGIN
	PERFORM pg_notify('importer_jobs', '');
	PERFORM pg_advisory_xact_lock_shared(1768779891, 1);
	-- Holding the lock, no claim can move a position forward: the check
	-- stays true until the UPDATE.
	IF EXISTS (SELECT 1 FROM importer.claim_cursor c
	           WHERE c.queue = q
	             AND (c.neg_priority, c.created_at, c.id) > (-NEW.priority::bigint, NEW.created_at, NEW.id)) THEN
		-- Both rows, always in the same order: two transactions that each
		-- move both positions back cannot deadlock.
		PERFORM 1 FROM importer.claim_cursor ORDER BY queue FOR NO KEY UPDATE;
		UPDATE importer.claim_cursor c
		   SET neg_priority = -NEW.priority::bigint, created_at = NEW.created_at, id = NEW.id
		 WHERE c.queue = q
		   AND (c.neg_priority, c.created_at, c.id) > (-NEW.priority::bigint, NEW.created_at, NEW.id);
	END IF;
	RETURN NULL;
END
$$;

DROP TRIGGER ready_insert ON importer.import_jobs;
DROP TRIGGER ready_update ON importer.import_jobs;
CREATE CONSTRAINT TRIGGER ready_insert AFTER INSERT ON importer.import_jobs
	DEFERRABLE INITIALLY DEFERRED
	FOR EACH ROW WHEN (NEW.status = 'pending')
	EXECUTE FUNCTION importer.tg_jobs_ready();
CREATE CONSTRAINT TRIGGER ready_update AFTER UPDATE ON importer.import_jobs
	DEFERRABLE INITIALLY DEFERRED
	FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.status <> 'pending')
	EXECUTE FUNCTION importer.tg_jobs_ready();

-- Same claim as 0005 (fleet-wide lock, kinds, due, fairness, priority, age),
-- scanning from the import queue's position. Returns the claimed job or none.
-- Both claim functions must scan their claim index in claim order, which
-- stops at the first jobs that pass; the alternatives read and sort every
-- pending job of the queue for a LIMIT. No bitmap scans: from a position the
-- planner expected few rows and chose a bitmap heap scan, filtered (the
-- fairness count for each) and sorted (5,000 buffers a claim with 300
-- pending). And in complete_noops the due time is tested as an expression
-- (run_after + 0 s), which no index serves: with the statistics of an empty
-- table (a bulk submit into an idle queue, before autovacuum analyzes it)
-- the planner chose import_jobs_due_idx (run_after <= now()) and sorted all
-- 20,000 pending noops for each batch of 200 (30 ms a call instead of under
-- 1 ms; found by the queue benchmark, whose throughput fell by half).
-- claim_job keeps the plain test: with the expression (default selectivity)
-- its plan changed for the worse in the 20-minute held churn run (claim_job
-- 1,080 ms and 195,000 buffers a call while held, against 349 buffers for
-- the plain test in the shorter runs); see RELIABILITY.md "Churn and bloat".
CREATE OR REPLACE FUNCTION importer.claim_job(p_worker text, p_kinds text[]) RETURNS SETOF importer.import_jobs
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, importer, pg_temp
	SET enable_bitmapscan = off
	AS $$
DECLARE
	pos importer.claim_cursor;
	full_scan boolean;
	from_p bigint;
	from_c timestamptz;
	from_i uuid;
	next_p bigint;
	next_c timestamptz;
	next_i uuid;
	claimed importer.import_jobs;
BEGIN
	PERFORM pg_advisory_xact_lock(1768779891, 0);
	-- A new statement: its snapshot sees claims committed while we waited.
	SELECT * INTO STRICT pos FROM importer.claim_cursor WHERE queue = 'import';
	full_scan := pos.full_scan_at <= clock_timestamp();
	IF full_scan THEN
		from_p := -2147483649; from_c := '-infinity'; from_i := '00000000-0000-0000-0000-000000000000';
	ELSE
		from_p := pos.neg_priority; from_c := pos.created_at; from_i := pos.id;
	END IF;

	WITH candidate AS MATERIALIZED (
		SELECT j.id
		FROM importer.import_jobs j
		WHERE j.status = 'pending' AND j.kind = ANY (p_kinds) AND j.kind <> 'noop'
		  AND (-j.priority::bigint, j.created_at, j.id) >= (from_p, from_c, from_i)
		  AND j.run_after <= now()
		  AND (SELECT count(*) FROM importer.import_jobs r
		       WHERE r.user_id = j.user_id AND r.status = 'processing')
		      < coalesce(importer.setting_int('max_running_per_user', j.user_id), 2)
		ORDER BY -j.priority::bigint, j.created_at, j.id
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
	RETURNING j.* INTO claimed;
	IF claimed.id IS NOT NULL THEN
		RETURN NEXT claimed;
	END IF;

	-- Only with the position lock (see above), and from a snapshot taken
	-- after it: every job made pending before it is then visible.
	IF NOT pg_try_advisory_xact_lock(1768779891, 1) THEN
		RETURN;
	END IF;
	-- The new position: the first job still pending from the scan's start
	-- (of any kind but noop: other workers may run other kinds), else the
	-- job just claimed, else where the scan started.
	SELECT -j.priority::bigint, j.created_at, j.id INTO next_p, next_c, next_i
	FROM importer.import_jobs j
	WHERE j.status = 'pending' AND j.kind <> 'noop'
	  AND (-j.priority::bigint, j.created_at, j.id) >= (from_p, from_c, from_i)
	ORDER BY -j.priority::bigint, j.created_at, j.id
	LIMIT 1;
	IF NOT FOUND THEN -- (and next_* are NULL)
		IF claimed.id IS NOT NULL THEN
			next_p := -claimed.priority::bigint; next_c := claimed.created_at; next_i := claimed.id;
		ELSE
			next_p := from_p; next_c := from_c; next_i := from_i;
		END IF;
	END IF;
	IF full_scan OR (next_p, next_c, next_i) IS DISTINCT FROM (pos.neg_priority, pos.created_at, pos.id) THEN
		-- Compare and set: a job made pending meanwhile may have moved it back.
		UPDATE importer.claim_cursor c
		   SET neg_priority = next_p, created_at = next_c, id = next_i,
		       full_scan_at = CASE WHEN full_scan
		                           THEN clock_timestamp() + make_interval(secs =>
		                                coalesce(importer.setting_int('claim_full_scan_seconds'), 10))
		                           ELSE c.full_scan_at END
		 WHERE c.queue = 'import'
		   AND (c.neg_priority, c.created_at, c.id) = (pos.neg_priority, pos.created_at, pos.id);
	END IF;
	RETURN;
END
$$;

-- Same as 0005 (up to p_limit due noop jobs, priority then age, skipping
-- locked ones), scanning from the noop queue's position. Several workers run
-- it at once (no fleet-wide lock): the one that gets the position row's lock
-- without waiting moves it, the others scan from it and leave it.
CREATE OR REPLACE FUNCTION importer.complete_noops(p_worker text, p_limit int) RETURNS int
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, importer, pg_temp
	SET enable_bitmapscan = off
	AS $$
DECLARE
	n int;
	pos importer.claim_cursor;
	full_scan boolean;
	from_p bigint;
	from_c timestamptz;
	from_i uuid;
	next_p bigint;
	next_c timestamptz;
	next_i uuid;
	last_p bigint;
	last_c timestamptz;
	last_i uuid;
	have_row boolean;
BEGIN
	-- Only the call holding the row moves the position or makes the due full
	-- scan: the others would all see the same full scan due (until the one
	-- that made it commits) and walk every dead entry at once.
	SELECT * INTO pos FROM importer.claim_cursor WHERE queue = 'noop' FOR UPDATE SKIP LOCKED;
	have_row := FOUND;
	IF NOT have_row THEN
		SELECT * INTO STRICT pos FROM importer.claim_cursor WHERE queue = 'noop';
	END IF;
	full_scan := have_row AND pos.full_scan_at <= clock_timestamp();
	IF full_scan THEN
		from_p := -2147483649; from_c := '-infinity'; from_i := '00000000-0000-0000-0000-000000000000';
	ELSE
		from_p := pos.neg_priority; from_c := pos.created_at; from_i := pos.id;
	END IF;

	WITH batch AS MATERIALIZED (
		SELECT j.id
		FROM importer.import_jobs j
		WHERE j.status = 'pending' AND j.kind = 'noop'
		  AND (-j.priority::bigint, j.created_at, j.id) >= (from_p, from_c, from_i)
		  AND j.run_after + interval '0 s' <= now() -- not an index condition (see above)
		ORDER BY -j.priority::bigint, j.created_at, j.id
		LIMIT p_limit
		FOR UPDATE SKIP LOCKED),
	done AS (
		UPDATE importer.import_jobs j
		SET status = 'completed', phase = 'done', progress = 100, worker_id = p_worker,
		    started_at = coalesce(j.started_at, now()), completed_at = now(), heartbeat_at = now(),
		    total_items = 0, total_is_estimate = false, eta_seconds = 0
		FROM batch
		WHERE j.id = batch.id
		RETURNING -j.priority::bigint AS p, j.created_at AS c, j.id AS i)
	-- the count, and the last completed key (a fallback position)
	SELECT count(*) OVER (), d.p, d.c, d.i INTO n, last_p, last_c, last_i
	FROM done d
	ORDER BY d.p DESC, d.c DESC, d.i DESC
	LIMIT 1;
	IF NOT FOUND THEN
		n := 0;
		last_p := from_p; last_c := from_c; last_i := from_i;
	END IF;

	-- Only with the position row and the position lock, as in claim_job.
	IF NOT have_row OR NOT pg_try_advisory_xact_lock(1768779891, 1) THEN
		RETURN n;
	END IF;
	-- The new position, as in claim_job: the first pending noop from the
	-- scan's start (one locked by another worker's batch counts), else the
	-- last one completed, else the start.
	SELECT -j.priority::bigint, j.created_at, j.id INTO next_p, next_c, next_i
	FROM importer.import_jobs j
	WHERE j.status = 'pending' AND j.kind = 'noop'
	  AND (-j.priority::bigint, j.created_at, j.id) >= (from_p, from_c, from_i)
	ORDER BY -j.priority::bigint, j.created_at, j.id
	LIMIT 1;
	IF NOT FOUND THEN
		next_p := last_p; next_c := last_c; next_i := last_i;
	END IF;
	-- (Holding the row, nobody moved it since we read it.)
	IF full_scan OR (next_p, next_c, next_i) IS DISTINCT FROM
	                (pos.neg_priority, pos.created_at, pos.id) THEN
		UPDATE importer.claim_cursor c
		   SET neg_priority = next_p, created_at = next_c, id = next_i,
		       full_scan_at = CASE WHEN full_scan
		                           THEN clock_timestamp() + make_interval(secs =>
		                                coalesce(importer.setting_int('claim_full_scan_seconds'), 10))
		                           ELSE c.full_scan_at END
		 WHERE c.queue = 'noop';
	END IF;
	RETURN n;
END
$$;
