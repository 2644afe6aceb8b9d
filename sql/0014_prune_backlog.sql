-- 0014_prune_backlog.sql -- retention keeps up with a busy fleet.
--
-- Workers ask housekeeping to prune about once a minute, and purge_expired
-- deletes at most 500 finished jobs a call: 500 jobs a minute for the whole
-- fleet at best, while the fleet finishes up to thousands a second
-- (BENCHMARKS.md, queue overhead). Past retention_days the queue table would
-- then only grow. housekeeping now also says how many jobs it pruned; while it
-- finds some, the worker prunes again at its next tick (every
-- poll_interval_ms) instead of a minute later. Each call stays one bounded
-- transaction on the job connection.

DROP FUNCTION importer.housekeeping(boolean);

-- One housekeeping pass: rescue jobs whose lease expired (fleet-wide, one
-- worker at a time) and, when p_prune, prune a bounded slice of expired jobs.
-- rescued: jobs rescued; pruned: finished jobs deleted (0 unless p_prune).
-- Both NULL when another worker has the turn.
CREATE FUNCTION importer.housekeeping(p_prune boolean DEFAULT false,
                                      OUT rescued int, OUT pruned int)
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	IF NOT pg_try_advisory_xact_lock(1768779891, 1) THEN
		RETURN;
	END IF;
	rescued := importer.rescue_stale_jobs();
	pruned := CASE WHEN p_prune THEN importer.purge_expired(500) ELSE 0 END;
END
$$;

REVOKE EXECUTE ON FUNCTION importer.housekeeping(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION importer.housekeeping(boolean) TO importer_worker;
