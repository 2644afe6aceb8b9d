-- 0016_keep_the_position.sql -- a claim that finds the queue empty keeps the
-- claim position where it was (issue 9).
--
-- claim_job and complete_noops (0011) set the new position to "the first job
-- still pending from the scan's start, else the job just claimed (the last
-- noop completed), else where the scan started". After the periodic full
-- scan the scan starts at the very beginning of the claim order, so a full
-- scan that found the queue empty moved the position back to the beginning,
-- and every claim after it walked every entry of the claim index from there:
-- while a long transaction elsewhere holds the xmin horizon back, one dead
-- entry for every job claimed since it began. The churn study (RELIABILITY.md)
-- logged noop batches that found nothing reading 43,000 buffers each, from
-- every worker, whenever the driver's queue ran dry between two refills.
--
-- When nothing is pending from the scan's start, nothing is pending at all
-- (the scan started at the position or before it, and nothing before the
-- position is pending), so the position may stay where it is or move to the
-- job just taken, whichever sorts later. Everything else is as in 0011.

-- As in 0011 but for the position after a claim that found no other
-- pending job.
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
	END IF;

	-- Only with the position row and the position lock, as in claim_job.
	IF NOT have_row OR NOT pg_try_advisory_xact_lock(1768779891, 1) THEN
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
