-- 0010_plan_caching.sql -- the SQL-language functions on the submit and claim
-- paths, as PL/pgSQL.
--
-- PostgreSQL 15 parses, analyses and plans the body of a LANGUAGE sql function
-- that it cannot inline (one with a SET clause, SECURITY DEFINER, or a FROM
-- clause) afresh in every query that calls it: nothing of that work outlives
-- the calling statement. PL/pgSQL keeps its plans for the whole session. Each
-- function below was called at least once per submitted job or per idle claim
-- pass, and that re-planning was about a third of the instructions of a noop
-- submit (callgrind, single-user backend; see docs/architecture.md "Claim
-- latency"). Same names, signatures, results, volatility and security: only
-- the language changes, so grants and callers stay as they are.

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
BEGIN
	RETURN (SELECT ceil(extract(epoch FROM min(j.run_after) - clock_timestamp()) * 1000)::bigint
	        FROM importer.import_jobs j
	        WHERE j.status = 'pending' AND j.run_after > clock_timestamp());
END
$$;
