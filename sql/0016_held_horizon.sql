-- 0016_held_horizon.sql -- claims and per-user counts whose cost does not
-- grow with the jobs finished while a long transaction elsewhere holds the
-- xmin horizon back (issue 9; figures in RELIABILITY.md "Churn and bloat",
-- design in docs/architecture.md "Churn").
--
-- 1. A claim that finds the queue empty keeps the claim position.
--
-- claim_job and complete_noops (0011) set the new position to "the first job
-- still pending from the scan's start, else the job just claimed (the last
-- noop completed), else where the scan started". After the periodic full
-- scan the scan starts at the very beginning of the claim order, so a full
-- scan that found the queue empty moved the position back to the beginning,
-- and every claim after it walked every entry of the claim index from there:
-- while the horizon is held, one dead entry for every job claimed since it
-- was. The churn study logged noop batches that found nothing reading 43,000
-- buffers each, from every worker, whenever the driver's queue ran dry
-- between two refills. When nothing is pending from the scan's start,
-- nothing is pending at all (the scan started at the position or before it,
-- and nothing before the position is pending), so the position may stay
-- where it is or move to the job just taken, whichever sorts later.
--
-- And a position moves forward at most every 100 ms. claim_cursor's two rows
-- are the hottest in the schema: every claim read its queue's row and most
-- rewrote it, and every job made pending reads it (tg_jobs_ready). Under a
-- held horizon each rewrite is a version kept on the path of every later
-- read: 275 buffers to read the import row four minutes into a held churn
-- run. A position left behind is still correct (nothing before it is
-- pending); a claim then walks the entries of the jobs claimed since it
-- moved, at most 100 ms worth. A full scan, and a move back (the ready
-- trigger), are not held back.
--
-- 2. Per-user counts start at the user's active floor.
--
-- Submit and retry count the user's active jobs (the max_active_jobs_per_user
-- cap), and claim_job counts the candidate owner's processing jobs (the
-- max_running_per_user cap). Both walked a partial index whose entries for a
-- user include one for every pending or processing row version of every job
-- the user ran since the horizon, each a heap visit to find it dead: with a
-- transaction held open for four minutes, 2,900 buffers a submit and 1,300
-- a claim in the churn study, a third of the machine's CPU.
--
-- user_active_floors keeps, per user, a time before which no job of the user
-- is pending or processing (by created_at, which never changes), and the
-- counts scan import_jobs_active_idx (status, user_id, created_at) from it:
-- the entries of jobs that finished before the user's oldest active one are
-- skipped. Paused jobs are counted whole (few, and a paused job may sit for
-- days: it would hold the floor back). The floor stays exact this way:
--  * a job that becomes pending or processing (submit, retry, resume, or an
--    operator's INSERT or UPDATE) lowers its owner's floor to its created_at
--    if that is earlier (tg_jobs_active_floor, below), holding the owner's
--    submit lock (1768779890, hashtext(user_id)) shared until it commits;
--  * only _lock_user_and_check_limit raises a floor, holding that lock
--    exclusively, to the created_at of the user's oldest pending or
--    processing job (or, with none, to now()) as a statement taken after
--    the lock sees them: every job made active before it has committed, and
--    one made active later lowers the floor again in its trigger.
--  * a user without a row has no floor (-infinity); the trigger inserts one
--    at -infinity, so that a transaction whose snapshot cannot see a row
--    inserted meanwhile (REPEATABLE READ) fails to serialize instead of
--    lowering nothing.

/* ==== 1. The claim position ==== */

ALTER TABLE importer.claim_cursor ADD COLUMN moved_at timestamptz NOT NULL DEFAULT '-infinity';
COMMENT ON COLUMN importer.claim_cursor.moved_at IS
	'When a claim last moved the position forward (at most every 100 ms); see sql/0016_held_horizon.sql.';

-- As in 0011 but for the position after a batch that found no pending noop.
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
		  AND j.run_after + interval '0 s' <= now() -- not an index condition (see 0011)
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
	END IF;

	-- Only with the position row and the position lock, as in claim_job,
	-- and not again within 100 ms of the last move.
	IF NOT have_row OR (NOT full_scan AND pos.moved_at > clock_timestamp() - interval '100 ms')
	   OR NOT pg_try_advisory_xact_lock(1768779891, 1) THEN
		RETURN n;
	END IF;
	-- The new position, as in claim_job: the first pending noop from the
	-- scan's start (one locked by another worker's batch counts); if none,
	-- it stays, or moves to the last one completed if that sorts later.
	SELECT -j.priority::bigint, j.created_at, j.id INTO next_p, next_c, next_i
	FROM importer.import_jobs j
	WHERE j.status = 'pending' AND j.kind = 'noop'
	  AND (-j.priority::bigint, j.created_at, j.id) >= (from_p, from_c, from_i)
	ORDER BY -j.priority::bigint, j.created_at, j.id
	LIMIT 1;
	IF NOT FOUND THEN
		next_p := pos.neg_priority; next_c := pos.created_at; next_i := pos.id;
		IF n > 0 AND (last_p, last_c, last_i) > (next_p, next_c, next_i) THEN
			next_p := last_p; next_c := last_c; next_i := last_i;
		END IF;
	END IF;
	-- (Holding the row, nobody moved it since we read it.)
	IF full_scan OR (next_p, next_c, next_i) IS DISTINCT FROM
	                (pos.neg_priority, pos.created_at, pos.id) THEN
		UPDATE importer.claim_cursor c
		   SET neg_priority = next_p, created_at = next_c, id = next_i, moved_at = clock_timestamp(),
		       full_scan_at = CASE WHEN full_scan
		                           THEN clock_timestamp() + make_interval(secs =>
		                                coalesce(importer.setting_int('claim_full_scan_seconds'), 10))
		                           ELSE c.full_scan_at END
		 WHERE c.queue = 'noop';
	END IF;
	RETURN n;
END
$$;

/* ==== 2. Per-user active floors ==== */

CREATE TABLE importer.user_active_floors (
	user_id     uuid        PRIMARY KEY,
	active_from timestamptz NOT NULL
)
-- Raised at most once a second per user (see _lock_user_and_check_limit):
-- room on the page for those updates to stay HOT.
WITH (fillfactor = 50, autovacuum_vacuum_threshold = 50, autovacuum_vacuum_cost_delay = 0);
COMMENT ON TABLE importer.user_active_floors IS
	'Per user, a time before which no job of the user (by created_at) is pending or processing; see sql/0016_held_horizon.sql.';
ALTER TABLE importer.user_active_floors ENABLE ROW LEVEL SECURITY;
CREATE POLICY worker_read ON importer.user_active_floors FOR SELECT TO importer_worker USING (true);
GRANT SELECT ON importer.user_active_floors TO importer_worker;

-- One index for both counts and the rescue sweep (status = 'processing'):
-- status first, so that each count is one range per status.
CREATE INDEX import_jobs_active_idx ON importer.import_jobs (status, user_id, created_at)
	WHERE status IN ('pending', 'processing', 'paused');
DROP INDEX importer.import_jobs_user_active_idx;
DROP INDEX importer.import_jobs_user_processing_idx;

-- A job became pending or processing: its owner's floor goes down to it.
CREATE FUNCTION importer.tg_jobs_active_floor() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	-- Until commit: a floor is raised only by whoever holds it exclusively.
	PERFORM pg_advisory_xact_lock_shared(1768779890, hashtext(NEW.user_id::text));
	UPDATE importer.user_active_floors f SET active_from = NEW.created_at
	WHERE f.user_id = NEW.user_id AND f.active_from > NEW.created_at;
	IF NOT FOUND THEN
		-- No row is no floor. And under REPEATABLE READ, whose snapshot may
		-- predate a floor raised before we got the lock, a row changed or
		-- inserted since the snapshot fails to serialize here (the UPDATE
		-- above, had it matched, would have too).
		INSERT INTO importer.user_active_floors (user_id, active_from)
		VALUES (NEW.user_id, '-infinity')
		ON CONFLICT (user_id) DO NOTHING;
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER active_floor_insert AFTER INSERT ON importer.import_jobs
	FOR EACH ROW WHEN (NEW.status IN ('pending', 'processing'))
	EXECUTE FUNCTION importer.tg_jobs_active_floor();
CREATE TRIGGER active_floor_update AFTER UPDATE ON importer.import_jobs
	FOR EACH ROW WHEN (NEW.status IN ('pending', 'processing')
	                   AND (OLD.status NOT IN ('pending', 'processing')
	                        OR NEW.created_at < OLD.created_at OR NEW.user_id <> OLD.user_id))
	EXECUTE FUNCTION importer.tg_jobs_active_floor();

-- Same limit as 0002 (pending, processing and paused jobs of the user, under
-- the user's submit lock), counted from the user's floor, which it first
-- raises to the user's oldest pending or processing job.
CREATE OR REPLACE FUNCTION importer._lock_user_and_check_limit(p_user uuid) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	v_floor timestamptz;
	v_oldest timestamptz;
	v_active bigint;
	v_max bigint;
BEGIN
	PERFORM pg_advisory_xact_lock(1768779890, hashtext(p_user::text));
	v_max := coalesce(importer.setting_int('max_active_jobs_per_user', p_user), 20);
	-- New statements from here: they see every job made active before the
	-- lock was ours (its trigger held the lock shared until it committed).
	SELECT f.active_from INTO v_floor FROM importer.user_active_floors f WHERE f.user_id = p_user;
	v_floor := coalesce(v_floor, '-infinity');
	-- At most once a second: each raise is a row version, and every count
	-- reads the row (a held horizon keeps all its versions). A floor within
	-- the last second cannot rise by more (this also spares a busy user's
	-- submits the reading below).
	IF v_floor < now() - interval '1 second' THEN
		-- (min() reads the index from the floor up to the first live entry)
		v_oldest := coalesce(least(
			(SELECT min(j.created_at) FROM importer.import_jobs j
			 WHERE j.status = 'pending' AND j.user_id = p_user AND j.created_at >= v_floor),
			(SELECT min(j.created_at) FROM importer.import_jobs j
			 WHERE j.status = 'processing' AND j.user_id = p_user AND j.created_at >= v_floor)),
			now());
		IF v_oldest > v_floor + interval '1 second' THEN
			INSERT INTO importer.user_active_floors AS f (user_id, active_from)
			VALUES (p_user, v_oldest)
			ON CONFLICT (user_id) DO UPDATE SET active_from = EXCLUDED.active_from;
			v_floor := v_oldest;
		END IF;
	END IF;
	v_active := (SELECT count(*) FROM importer.import_jobs j
	             WHERE j.status IN ('pending', 'processing') AND j.user_id = p_user
	               AND j.created_at >= v_floor)
	          + (SELECT count(*) FROM importer.import_jobs j
	             WHERE j.status = 'paused' AND j.user_id = p_user);
	IF v_active >= v_max THEN
		RAISE EXCEPTION 'too many active jobs: % of at most % are pending, processing or paused',
			v_active, v_max
			USING ERRCODE = '53400',
			      HINT = 'Wait for jobs to finish, or cancel some.';
	END IF;
END
$$;

-- As in 0011 but for the position after a claim that found no other
-- pending job, and the fairness count from the owner's floor.
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
		       WHERE r.status = 'processing' AND r.user_id = j.user_id
		         AND r.created_at >= coalesce((SELECT f.active_from
		                                       FROM importer.user_active_floors f
		                                       WHERE f.user_id = j.user_id), '-infinity'))
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

	-- Not again within 100 ms of the last move; only with the position lock
	-- (see 0011), and from a snapshot taken after it: every job made
	-- pending before it is then visible.
	IF (NOT full_scan AND pos.moved_at > clock_timestamp() - interval '100 ms')
	   OR NOT pg_try_advisory_xact_lock(1768779891, 1) THEN
		RETURN;
	END IF;
	-- The new position: the first job still pending from the scan's start
	-- (of any kind but noop: other workers may run other kinds); if none,
	-- none is pending at all, and it stays, or moves to the job just
	-- claimed if that sorts later.
	SELECT -j.priority::bigint, j.created_at, j.id INTO next_p, next_c, next_i
	FROM importer.import_jobs j
	WHERE j.status = 'pending' AND j.kind <> 'noop'
	  AND (-j.priority::bigint, j.created_at, j.id) >= (from_p, from_c, from_i)
	ORDER BY -j.priority::bigint, j.created_at, j.id
	LIMIT 1;
	IF NOT FOUND THEN -- (and next_* are NULL)
		next_p := pos.neg_priority; next_c := pos.created_at; next_i := pos.id;
		IF claimed.id IS NOT NULL AND (-claimed.priority::bigint, claimed.created_at, claimed.id)
		                              > (next_p, next_c, next_i) THEN
			next_p := -claimed.priority::bigint; next_c := claimed.created_at; next_i := claimed.id;
		END IF;
	END IF;
	IF full_scan OR (next_p, next_c, next_i) IS DISTINCT FROM (pos.neg_priority, pos.created_at, pos.id) THEN
		-- Compare and set: a job made pending meanwhile may have moved it back.
		UPDATE importer.claim_cursor c
		   SET neg_priority = next_p, created_at = next_c, id = next_i, moved_at = clock_timestamp(),
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
