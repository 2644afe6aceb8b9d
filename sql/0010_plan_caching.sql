-- 0010_plan_caching.sql -- the SQL-language functions on the submit and claim
-- paths, as PL/pgSQL.
--
-- PostgreSQL 15 parses, analyses and plans the body of a LANGUAGE sql function
-- that it cannot inline (one with a SET clause, SECURITY DEFINER, or a FROM
-- clause) afresh in every query that calls it: nothing of that work outlives
-- the calling statement. PL/pgSQL keeps its plans for the whole session. Each
-- function below was called at least once per submitted job or per idle claim
-- pass, and that re-planning was about a sixth of the instructions of a noop
-- submit and a third of those of an idle claim pass (callgrind, single-user
-- backend; see docs/architecture.md, Worker, "Enqueue → claimed"). Same names,
-- signatures, results, volatility and security: only the language changes, so
-- grants and callers stay as they are.

CREATE OR REPLACE FUNCTION importer.setting_int(key text, user_id uuid DEFAULT NULL) RETURNS bigint
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	RETURN (SELECT (s.value #>> '{}')::bigint
	        FROM importer.settings s
	        WHERE s.key = setting_int.key
	          AND (s.user_id IS NULL OR s.user_id = setting_int.user_id)
	        ORDER BY s.user_id NULLS LAST
	        LIMIT 1);
END
$$;

CREATE OR REPLACE FUNCTION importer.submit_job_own(kind text, file_id uuid, options jsonb) RETURNS uuid
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	RETURN importer._submit_job(importer.current_user_id(), false, kind, file_id, NULL::bytea, options);
END
$$;
CREATE OR REPLACE FUNCTION importer.submit_job_own(kind text, file bytea, options jsonb) RETURNS uuid
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	RETURN importer._submit_job(importer.current_user_id(), false, kind, NULL::uuid, file, options);
END
$$;

CREATE OR REPLACE FUNCTION importer.submit_job_for(user_id uuid, kind text, file_id uuid, options jsonb)
	RETURNS uuid
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	RETURN importer._submit_job(user_id, true, kind, file_id, NULL::bytea, options);
END
$$;
CREATE OR REPLACE FUNCTION importer.submit_job_for(user_id uuid, kind text, file bytea, options jsonb)
	RETURNS uuid
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	RETURN importer._submit_job(user_id, true, kind, NULL::uuid, file, options);
END
$$;

CREATE OR REPLACE FUNCTION importer.next_due_ms() RETURNS bigint
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	t timestamptz := clock_timestamp();
BEGIN
	-- t is a parameter of the query, so it bounds the index scan (0009).
	RETURN (SELECT ceil(extract(epoch FROM min(j.run_after) - t) * 1000)::bigint
	        FROM importer.import_jobs j
	        WHERE j.status = 'pending' AND j.run_after > t);
END
$$;

-- The option parsers run about 14 times per submit, always from _submit_job,
-- which pins search_path itself. Their own SET clause cost a save and restore
-- of search_path per call (and a re-resolution of the path by the next query),
-- about a tenth of a submit's instructions; they touch no table and are not
-- SECURITY DEFINER, so the clause protected nothing.
ALTER FUNCTION importer._opt_int(jsonb, text, bigint, bigint) RESET search_path;
ALTER FUNCTION importer._opt_bool(jsonb, text) RESET search_path;
ALTER FUNCTION importer._opt_text(jsonb, text) RESET search_path;

/* ==== Stamping seq and updated_at ==== */

-- The stamp trigger used to decide in its WHEN clause whether anything but
-- heartbeat_at changed, by comparing to_jsonb(NEW) with to_jsonb(OLD): two
-- whole-row JSON documents per updated row, about 0.4 M instructions, paid by
-- every claim, noop completion, progress update and heartbeat. The same test
-- on the row values (record equality: column by column, NULLs equal, jsonb by
-- value, as before) costs a small fraction of that, so the trigger now always
-- runs and makes the test itself. Record equality needs an equality operator
-- for every column's type: a future column must not be json or point (jsonb,
-- text, numbers, timestamps, uuid are fine).
CREATE OR REPLACE FUNCTION importer.tg_jobs_stamp() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	unstamped importer.import_jobs := OLD;
BEGIN
	-- Only heartbeat_at changed (or nothing): seq and updated_at stay, and
	-- the AFTER triggers that look at seq stay silent.
	unstamped.heartbeat_at := NEW.heartbeat_at;
	unstamped.updated_at := NEW.updated_at;
	unstamped.seq := NEW.seq;
	IF unstamped IS NOT DISTINCT FROM NEW THEN
		RETURN NEW;
	END IF;
	NEW.seq := nextval('importer.event_seq');
	NEW.updated_at := now();
	-- conveniences for operators' hand-written UPDATEs
	IF NEW.status IN ('completed', 'failed', 'cancelled') AND NEW.completed_at IS NULL THEN
		NEW.completed_at := now();
	END IF;
	IF NEW.status = 'processing' AND NEW.started_at IS NULL THEN
		NEW.started_at := now();
	END IF;
	RETURN NEW;
END
$$;

DROP TRIGGER a_stamp ON importer.import_jobs;
CREATE TRIGGER a_stamp BEFORE UPDATE ON importer.import_jobs
	FOR EACH ROW EXECUTE FUNCTION importer.tg_jobs_stamp();
