-- 0002_api.sql -- the SQL API: uploads, submit, cancel/pause/resume/retry/delete/clear.
--
-- Privilege model: importer_api has no write privileges, so every function it
-- may call that writes is SECURITY DEFINER (runs as the schema owner, which
-- bypasses RLS) and scopes every row it touches by importer.current_user_id()
-- itself. A job or file that does not exist and one that belongs to someone
-- else are the same error (P0002). Inside a SECURITY DEFINER function
-- current_user is the owner, so the only function that checks the invoker
-- (submit on a user's behalf) is the SECURITY INVOKER wrapper submit_job().
--
-- Internal helpers are prefixed with "_" and granted to nobody.
-- SQLSTATEs: P0002 not found / not yours, 55000 state does not allow it,
-- 53400 per-user limit, 22023 bad option or kind, 42501 no identity / not allowed.

/* ==== Settings ==== */

CREATE FUNCTION importer.setting_int(key text, user_id uuid DEFAULT NULL) RETURNS bigint
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
	SELECT (s.value #>> '{}')::bigint
	FROM importer.settings s
	WHERE s.key = setting_int.key
	  AND (s.user_id IS NULL OR s.user_id = setting_int.user_id)
	ORDER BY s.user_id NULLS LAST
	LIMIT 1
	$$;
COMMENT ON FUNCTION importer.setting_int(text, uuid) IS
	'Numeric setting: the user''s own row if any, else the global row; NULL if neither exists.';

/* ==== Internal helpers ==== */

-- Integer option: a JSON number or a string of digits (so query-string values
-- can be passed through unchanged). NULL when absent.
CREATE FUNCTION importer._opt_int(opts jsonb, name text, lo bigint, hi bigint) RETURNS bigint
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	v jsonb := opts -> name;
	t text;
BEGIN
	IF v IS NULL THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(v) IN ('number', 'string') THEN
		t := btrim(v #>> '{}');
	END IF;
	IF t IS NULL OR t !~ '^-?[0-9]{1,18}$' OR t::bigint NOT BETWEEN lo AND hi THEN
		RAISE EXCEPTION 'option % must be an integer between % and %', name, lo, hi
			USING ERRCODE = '22023';
	END IF;
	RETURN t::bigint;
END
$$;

-- Boolean option: JSON true/false or the strings true/false/1/0.
CREATE FUNCTION importer._opt_bool(opts jsonb, name text) RETURNS boolean
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	v jsonb := opts -> name;
BEGIN
	IF v IS NULL THEN
		RETURN NULL;
	ELSIF jsonb_typeof(v) = 'boolean' THEN
		RETURN v::text::boolean;
	ELSIF jsonb_typeof(v) = 'string' AND lower(v #>> '{}') IN ('true', '1') THEN
		RETURN true;
	ELSIF jsonb_typeof(v) = 'string' AND lower(v #>> '{}') IN ('false', '0') THEN
		RETURN false;
	END IF;
	RAISE EXCEPTION 'option % must be true or false', name USING ERRCODE = '22023';
END
$$;

-- String option. NULL when absent.
CREATE FUNCTION importer._opt_text(opts jsonb, name text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	v jsonb := opts -> name;
BEGIN
	IF v IS NULL THEN
		RETURN NULL;
	ELSIF jsonb_typeof(v) <> 'string' THEN
		RAISE EXCEPTION 'option % must be a string', name USING ERRCODE = '22023';
	END IF;
	RETURN v #>> '{}';
END
$$;

-- Per-user limit on active (pending, processing, paused) jobs. Takes the
-- user's transaction-scoped advisory lock first, so concurrent submits and
-- retries of one user serialise and cannot overshoot. Two-int key form:
-- (1768779890 = 'impr' in ASCII, hashtext(user_id::text)); this lives in a
-- different key space from one-bigint advisory locks (the migrations runner's).
CREATE FUNCTION importer._lock_user_and_check_limit(p_user uuid) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	v_active bigint;
	v_max bigint;
BEGIN
	PERFORM pg_advisory_xact_lock(1768779890, hashtext(p_user::text));
	v_max := coalesce(importer.setting_int('max_active_jobs_per_user', p_user), 20);
	SELECT count(*) INTO v_active
	FROM importer.import_jobs j
	WHERE j.user_id = p_user AND j.status IN ('pending', 'processing', 'paused');
	IF v_active >= v_max THEN
		RAISE EXCEPTION 'too many active jobs: % of at most % are pending, processing or paused',
			v_active, v_max
			USING ERRCODE = '53400',
			      HINT = 'Wait for jobs to finish, or cancel some.';
	END IF;
END
$$;

-- The caller's own job, locked. P0002 if absent or not the caller's (or no identity).
CREATE FUNCTION importer._lock_own_job(p_id uuid) RETURNS importer.import_jobs
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	j importer.import_jobs;
BEGIN
	SELECT * INTO j
	FROM importer.import_jobs t
	WHERE t.id = p_id AND t.user_id = importer.current_user_id()
	FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'job % not found', p_id USING ERRCODE = 'P0002';
	END IF;
	RETURN j;
END
$$;

-- Stores a whole file given in one piece as 1 MiB chunks. Returns its id.
CREATE FUNCTION importer._store_file(p_user uuid, p_name text, p_data bytea) RETURNS uuid
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	v_id uuid;
	v_len bigint := octet_length(p_data);
BEGIN
	INSERT INTO importer.import_files (user_id, file_name, size, sha256)
	VALUES (p_user, coalesce(p_name, ''), v_len, sha256(p_data))
	RETURNING id INTO v_id;
	INSERT INTO importer.import_file_chunks (file_id, seq, data)
	SELECT v_id, g, substring(p_data FROM g * 1048576 + 1 FOR 1048576)
	FROM generate_series(0, ((v_len + 1048575) / 1048576)::int - 1) AS g;
	RETURN v_id;
END
$$;

-- The one implementation of submit. p_trusted: the caller is the service role
-- or an administrator submitting on p_user's behalf (may raise priority).
-- Exactly one of p_file_id / p_file is used (both NULL: no file, noop only).
CREATE FUNCTION importer._submit_job(p_user uuid, p_trusted boolean, p_kind text,
                                     p_file_id uuid, p_file bytea, p_options jsonb)
	RETURNS uuid
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	o jsonb := coalesce(p_options, '{}'::jsonb);
	v_bad text;
	v_collection text;
	v_mode text;
	v_key text;
	v_file_name text;
	v_dry_run boolean;
	v_batch_size bigint;
	v_delimiter text;
	v_priority bigint;
	v_max_attempts bigint;
	v_idem text;
	v_payload jsonb;
	v_job uuid;
	v_file_id uuid;
	v_stored_name text;
	v_size bigint;
	v_chunks bigint;
	v_last_seq bigint;
BEGIN
	IF p_user IS NULL THEN
		RAISE EXCEPTION 'no user identity set' USING ERRCODE = '42501',
			HINT = 'SET LOCAL importer.user_id = ''<uuid>'' first.';
	END IF;

	/* -- validate kind and options (cheap, before any lock) -- */
	IF p_kind IS NULL OR p_kind NOT IN ('csv', 'ndjson', 'backup', 'noop') THEN
		RAISE EXCEPTION 'unknown job kind %; expected csv, ndjson, backup or noop',
			coalesce(quote_literal(p_kind), 'NULL') USING ERRCODE = '22023';
	END IF;
	IF jsonb_typeof(o) <> 'object' THEN
		RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = '22023';
	END IF;
	-- A JSON null counts as "not given" (handy for callers that map absent
	-- query parameters to null).
	SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb) INTO o
	FROM jsonb_each(o) AS e
	WHERE jsonb_typeof(e.value) <> 'null';

	SELECT k INTO v_bad
	FROM jsonb_object_keys(o) AS k
	WHERE k NOT IN ('collection', 'mode', 'key', 'file_name', 'dry_run', 'batch_size',
	                'delimiter', 'priority', 'max_attempts', 'idempotency_key')
	ORDER BY k
	LIMIT 1;
	IF v_bad IS NOT NULL THEN
		RAISE EXCEPTION 'unknown option %', quote_literal(v_bad) USING ERRCODE = '22023';
	END IF;

	v_collection := importer._opt_text(o, 'collection');
	IF v_collection IS NOT NULL AND length(v_collection) NOT BETWEEN 1 AND 128 THEN
		RAISE EXCEPTION 'option collection must be 1 to 128 characters' USING ERRCODE = '22023';
	END IF;
	v_mode := coalesce(importer._opt_text(o, 'mode'), 'upsert');
	IF v_mode NOT IN ('upsert', 'append', 'replace') THEN
		RAISE EXCEPTION 'option mode must be upsert, append or replace' USING ERRCODE = '22023';
	END IF;
	v_key := importer._opt_text(o, 'key');
	IF v_key IS NOT NULL AND octet_length(v_key) NOT BETWEEN 1 AND 512 THEN
		RAISE EXCEPTION 'option key must be 1 to 512 bytes' USING ERRCODE = '22023';
	END IF;
	v_file_name := importer._opt_text(o, 'file_name');
	IF v_file_name IS NOT NULL AND length(v_file_name) NOT BETWEEN 1 AND 255 THEN
		RAISE EXCEPTION 'option file_name must be 1 to 255 characters' USING ERRCODE = '22023';
	END IF;
	v_dry_run := coalesce(importer._opt_bool(o, 'dry_run'), false);
	v_batch_size := importer._opt_int(o, 'batch_size', 1, 1000000);
	v_delimiter := importer._opt_text(o, 'delimiter');
	IF v_delimiter IS NOT NULL
	   AND (length(v_delimiter) <> 1 OR v_delimiter IN ('"', E'\r', E'\n')) THEN
		RAISE EXCEPTION 'option delimiter must be exactly one character other than a quote, CR or LF'
			USING ERRCODE = '22023';
	END IF;
	v_priority := coalesce(importer._opt_int(o, 'priority', -1000000, 1000000), 0);
	IF v_priority > 0 AND NOT p_trusted THEN
		RAISE EXCEPTION 'option priority cannot be raised above 0' USING ERRCODE = '22023';
	END IF;
	v_max_attempts := importer._opt_int(o, 'max_attempts', 1, 100);
	v_idem := importer._opt_text(o, 'idempotency_key');
	IF v_idem IS NOT NULL AND length(v_idem) NOT BETWEEN 1 AND 255 THEN
		RAISE EXCEPTION 'option idempotency_key must be 1 to 255 characters' USING ERRCODE = '22023';
	END IF;

	IF p_kind <> 'noop' AND p_file_id IS NULL AND p_file IS NULL THEN
		RAISE EXCEPTION 'a % job needs a file', p_kind USING ERRCODE = '22023';
	END IF;

	-- The payload is the options, normalised (typed values, nulls dropped).
	v_payload := jsonb_strip_nulls(jsonb_build_object(
		'collection', v_collection,
		'mode', importer._opt_text(o, 'mode'),
		'key', v_key,
		'file_name', v_file_name,
		'dry_run', importer._opt_bool(o, 'dry_run'),
		'batch_size', v_batch_size,
		'delimiter', v_delimiter,
		'priority', importer._opt_int(o, 'priority', -1000000, 1000000),
		'max_attempts', v_max_attempts,
		'idempotency_key', v_idem));

	/* -- serialise this user's submits; idempotency; limit -- */
	PERFORM pg_advisory_xact_lock(1768779890, hashtext(p_user::text));
	IF v_idem IS NOT NULL THEN
		SELECT j.id INTO v_job
		FROM importer.import_jobs j
		WHERE j.user_id = p_user AND j.idempotency_key = v_idem;
		IF FOUND THEN
			RETURN v_job;
		END IF;
	END IF;
	PERFORM importer._lock_user_and_check_limit(p_user);	-- re-entrant lock: same key

	/* -- the file -- */
	IF p_file_id IS NOT NULL THEN
		SELECT f.file_name, f.size INTO v_stored_name, v_size
		FROM importer.import_files f
		WHERE f.id = p_file_id AND f.user_id = p_user
		FOR UPDATE;	-- serialises with append_chunk on this file
		IF NOT FOUND THEN
			RAISE EXCEPTION 'file % not found', p_file_id USING ERRCODE = 'P0002';
		END IF;
		SELECT count(*), coalesce(max(c.seq), -1) INTO v_chunks, v_last_seq
		FROM importer.import_file_chunks c
		WHERE c.file_id = p_file_id;
		IF v_chunks <> v_last_seq + 1 THEN
			RAISE EXCEPTION 'file % is incomplete: chunks must be numbered 0..n-1 without gaps',
				p_file_id USING ERRCODE = '22023';
		END IF;
		v_file_id := p_file_id;
	ELSIF p_file IS NOT NULL THEN
		v_stored_name := coalesce(v_file_name, '');
		v_size := octet_length(p_file);
		v_file_id := importer._store_file(p_user, v_stored_name, p_file);
	END IF;

	v_file_name := coalesce(v_file_name, nullif(v_stored_name, ''));
	IF v_collection IS NULL AND p_kind IN ('csv', 'ndjson') THEN
		-- the file name without directory and extension, else 'default'
		-- (backup files name their collections inside; noop has none)
		v_collection := left(regexp_replace(regexp_replace(coalesce(v_file_name, ''),
		                                                  '^.*[/\\]', ''),
		                                   '\.[^.]*$', ''), 128);
		IF v_collection = '' THEN
			v_collection := 'default';
		END IF;
	END IF;

	INSERT INTO importer.import_jobs AS j
		(user_id, kind, file_name, file_id, file_size, collection, import_mode, dry_run,
		 payload, priority, max_attempts, idempotency_key)
	VALUES
		(p_user, p_kind, v_file_name, v_file_id, v_size, v_collection, v_mode, v_dry_run,
		 v_payload, v_priority,
		 coalesce(v_max_attempts, importer.setting_int('max_attempts', p_user), 3),
		 v_idem)
	ON CONFLICT ON CONSTRAINT import_jobs_user_idempotency_key DO NOTHING
	RETURNING j.id INTO v_job;
	IF v_job IS NULL THEN
		-- Only reachable under REPEATABLE READ/SERIALIZABLE races, where the
		-- conflict itself raises a serialization failure first; kept as a guard.
		SELECT j.id INTO STRICT v_job
		FROM importer.import_jobs j
		WHERE j.user_id = p_user AND j.idempotency_key = v_idem;
	END IF;
	RETURN v_job;
END
$$;

/* ==== Uploads ==== */

CREATE FUNCTION importer.begin_upload(file_name text) RETURNS uuid
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	v_user uuid := importer.current_user_id();
	v_id uuid;
BEGIN
	IF v_user IS NULL THEN
		RAISE EXCEPTION 'no user identity set' USING ERRCODE = '42501';
	END IF;
	IF length(begin_upload.file_name) > 255 THEN
		RAISE EXCEPTION 'file_name must be at most 255 characters' USING ERRCODE = '22023';
	END IF;
	INSERT INTO importer.import_files AS f (user_id, file_name)
	VALUES (v_user, coalesce(begin_upload.file_name, ''))
	RETURNING f.id INTO v_id;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION importer.begin_upload(text) IS
	'Starts a chunked upload owned by the caller; returns the file id for append_chunk and submit_job.';

CREATE FUNCTION importer.append_chunk(file_id uuid, seq int, data bytea) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	v_old bigint;
BEGIN
	IF append_chunk.seq IS NULL OR append_chunk.seq < 0 THEN
		RAISE EXCEPTION 'chunk seq must be >= 0' USING ERRCODE = '22023';
	END IF;
	IF append_chunk.data IS NULL THEN
		RAISE EXCEPTION 'chunk data must not be NULL' USING ERRCODE = '22023';
	END IF;
	IF octet_length(append_chunk.data) > 8388608 THEN
		RAISE EXCEPTION 'chunk of % bytes is too large (at most 8 MiB; 1 MiB is the convention)',
			octet_length(append_chunk.data) USING ERRCODE = '22023';
	END IF;
	PERFORM 1
	FROM importer.import_files f
	WHERE f.id = append_chunk.file_id AND f.user_id = importer.current_user_id()
	FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'file % not found', append_chunk.file_id USING ERRCODE = 'P0002';
	END IF;
	IF EXISTS (SELECT 1 FROM importer.import_jobs j WHERE j.file_id = append_chunk.file_id) THEN
		RAISE EXCEPTION 'file % already belongs to a submitted job', append_chunk.file_id
			USING ERRCODE = '55000';
	END IF;
	SELECT octet_length(c.data) INTO v_old
	FROM importer.import_file_chunks c
	WHERE c.file_id = append_chunk.file_id AND c.seq = append_chunk.seq;
	-- Re-sending a seq replaces that chunk (idempotent retries of a PUT).
	INSERT INTO importer.import_file_chunks AS c (file_id, seq, data)
	VALUES (append_chunk.file_id, append_chunk.seq, append_chunk.data)
	ON CONFLICT ON CONSTRAINT import_file_chunks_pkey DO UPDATE SET data = EXCLUDED.data;
	UPDATE importer.import_files f
	SET size = f.size - coalesce(v_old, 0) + octet_length(append_chunk.data)
	WHERE f.id = append_chunk.file_id;
END
$$;
COMMENT ON FUNCTION importer.append_chunk(uuid, int, bytea) IS
	'Stores chunk seq (0-based) of the caller''s upload; re-sending a seq replaces it. '
	'22023 over 8 MiB, P0002 not the caller''s file, 55000 once the file was submitted.';

/* ==== Submit ==== */

-- On the caller's own behalf (identity from importer.user_id). importer_api.
CREATE FUNCTION importer.submit_job_own(kind text, file_id uuid, options jsonb) RETURNS uuid
	LANGUAGE sql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$ SELECT importer._submit_job(importer.current_user_id(), false, kind, file_id, NULL::bytea, options) $$;
CREATE FUNCTION importer.submit_job_own(kind text, file bytea, options jsonb) RETURNS uuid
	LANGUAGE sql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$ SELECT importer._submit_job(importer.current_user_id(), false, kind, NULL::uuid, file, options) $$;

-- On user_id's behalf. EXECUTE for importer_worker only (administrators bypass).
CREATE FUNCTION importer.submit_job_for(user_id uuid, kind text, file_id uuid, options jsonb) RETURNS uuid
	LANGUAGE sql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$ SELECT importer._submit_job(user_id, true, kind, file_id, NULL::bytea, options) $$;
CREATE FUNCTION importer.submit_job_for(user_id uuid, kind text, file bytea, options jsonb) RETURNS uuid
	LANGUAGE sql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$ SELECT importer._submit_job(user_id, true, kind, NULL::uuid, file, options) $$;

-- The public entry points are SECURITY INVOKER so that current_user is the
-- real caller when options carry user_id: _on_behalf_of() checks it there
-- and returns the user to submit for, or NULL for the caller's own identity.
-- It is granted to importer_api too (it only checks and parses); what the
-- check protects is submit_job_for, whose EXECUTE is importer_worker's only.
CREATE FUNCTION importer._on_behalf_of(options jsonb) RETURNS uuid
	LANGUAGE plpgsql STABLE SECURITY INVOKER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	v_user uuid;
BEGIN
	IF options IS NULL OR NOT options ? 'user_id' THEN
		RETURN NULL;
	END IF;
	IF current_user = 'importer_api'
	   OR NOT (pg_has_role(current_user, 'importer_worker', 'MEMBER')
	           OR coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user), false))
	THEN
		RAISE EXCEPTION 'option user_id (submit on a user''s behalf) is not allowed for role %',
			current_user USING ERRCODE = '42501',
			HINT = 'Only members of importer_worker and superusers may submit for another user.';
	END IF;
	BEGIN
		v_user := (options ->> 'user_id')::uuid;
	EXCEPTION WHEN invalid_text_representation THEN
		v_user := NULL;
	END;
	IF v_user IS NULL THEN
		RAISE EXCEPTION 'option user_id must be a uuid' USING ERRCODE = '22023';
	END IF;
	RETURN v_user;
END
$$;

-- Overload note: the second argument must have a known type. A bare NULL or
-- an untyped literal matches both overloads (42725 "not unique"): write
-- submit_job('noop', NULL::uuid), $2::bytea / $2::uuid, or named notation
-- (file_id => ..., file => ...).
CREATE FUNCTION importer.submit_job(kind text, file_id uuid, options jsonb DEFAULT '{}')
	RETURNS uuid
	LANGUAGE plpgsql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	v_user uuid := importer._on_behalf_of(options);
BEGIN
	IF v_user IS NULL THEN
		RETURN importer.submit_job_own(kind, file_id, options);
	END IF;
	RETURN importer.submit_job_for(v_user, kind, file_id, options - 'user_id');
END
$$;
COMMENT ON FUNCTION importer.submit_job(text, uuid, jsonb) IS
	'Submits a job for a file uploaded with begin_upload/append_chunk (NULL::uuid for noop). Returns the job id.';

CREATE FUNCTION importer.submit_job(kind text, file bytea, options jsonb DEFAULT '{}')
	RETURNS uuid
	LANGUAGE plpgsql VOLATILE SECURITY INVOKER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	v_user uuid := importer._on_behalf_of(options);
BEGIN
	IF v_user IS NULL THEN
		RETURN importer.submit_job_own(kind, file, options);
	END IF;
	RETURN importer.submit_job_for(v_user, kind, file, options - 'user_id');
END
$$;
COMMENT ON FUNCTION importer.submit_job(text, bytea, jsonb) IS
	'Submits a job with the whole file in one value (stored as 1 MiB chunks; name from options.file_name). '
	'Returns the job id.';

/* ==== Steering jobs ==== */
-- cancel/pause/resume/retry return the job row after the change (the gateway
-- answers 202 + job JSON from it); delete returns nothing; clear returns a count.

CREATE FUNCTION importer.cancel_job(id uuid) RETURNS importer.import_jobs
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	j importer.import_jobs := importer._lock_own_job(cancel_job.id);
BEGIN
	IF j.status IN ('pending', 'paused') THEN
		UPDATE importer.import_jobs t
		SET status = 'cancelled', phase = 'done', completed_at = now(), eta_seconds = NULL,
		    pause_requested = false
		WHERE t.id = j.id
		RETURNING t.* INTO j;
	ELSIF j.status = 'processing' THEN
		IF NOT j.cancel_requested THEN
			-- the worker stops and sets cancelled (NOTIFY importer_control)
			UPDATE importer.import_jobs t SET cancel_requested = true
			WHERE t.id = j.id
			RETURNING t.* INTO j;
		END IF;
	ELSE
		RAISE EXCEPTION 'job % is % and cannot be cancelled', j.id, j.status USING ERRCODE = '55000';
	END IF;
	RETURN j;
END
$$;

CREATE FUNCTION importer.pause_job(id uuid) RETURNS importer.import_jobs
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	j importer.import_jobs := importer._lock_own_job(pause_job.id);
BEGIN
	IF j.status = 'pending' THEN
		UPDATE importer.import_jobs t SET status = 'paused', eta_seconds = NULL
		WHERE t.id = j.id
		RETURNING t.* INTO j;
	ELSIF j.status = 'processing' THEN
		IF NOT j.pause_requested THEN
			-- the worker checkpoints and sets paused (NOTIFY importer_control)
			UPDATE importer.import_jobs t SET pause_requested = true
			WHERE t.id = j.id
			RETURNING t.* INTO j;
		END IF;
	ELSIF j.status = 'paused' THEN
		NULL;	-- already paused
	ELSE
		RAISE EXCEPTION 'job % is % and cannot be paused', j.id, j.status USING ERRCODE = '55000';
	END IF;
	RETURN j;
END
$$;

CREATE FUNCTION importer.resume_job(id uuid) RETURNS importer.import_jobs
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	j importer.import_jobs := importer._lock_own_job(resume_job.id);
BEGIN
	IF j.status = 'paused' THEN
		-- a paused job already counts as active: no limit check
		UPDATE importer.import_jobs t
		SET status = 'pending', phase = 'queued', run_after = now(), pause_requested = false
		WHERE t.id = j.id
		RETURNING t.* INTO j;
	ELSIF j.status = 'processing' THEN
		-- Status no-op; but a pause still outstanding is withdrawn, so
		-- "pause, then resume" before the worker reacted keeps it running.
		IF j.pause_requested THEN
			UPDATE importer.import_jobs t SET pause_requested = false
			WHERE t.id = j.id
			RETURNING t.* INTO j;
		END IF;
	ELSIF j.status = 'pending' THEN
		NULL;
	ELSE
		RAISE EXCEPTION 'job % is % and cannot be resumed', j.id, j.status USING ERRCODE = '55000';
	END IF;
	RETURN j;
END
$$;

CREATE FUNCTION importer.retry_job(id uuid, restart boolean DEFAULT false) RETURNS importer.import_jobs
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	j importer.import_jobs := importer._lock_own_job(retry_job.id);
BEGIN
	IF j.status NOT IN ('failed', 'cancelled') THEN
		RAISE EXCEPTION 'job % is % and cannot be retried', j.id, j.status USING ERRCODE = '55000';
	END IF;
	IF j.kind <> 'noop' AND j.file_id IS NULL THEN
		RAISE EXCEPTION 'job % cannot be retried: its file is no longer stored', j.id
			USING ERRCODE = '55000';
	END IF;
	PERFORM importer._lock_user_and_check_limit(j.user_id);

	IF coalesce(retry_job.restart, false) THEN
		-- From zero: forget progress and record errors; log lines stay as history.
		DELETE FROM importer.import_errors e WHERE e.job_id = j.id;
		UPDATE importer.import_jobs t
		SET status = 'pending', phase = 'queued', run_after = now(),
		    attempts = 0, rescues = 0, error_message = NULL, error_details = NULL,
		    completed_at = NULL, started_at = NULL,
		    cancel_requested = false, pause_requested = false,
		    worker_id = NULL, lease_id = NULL, heartbeat_at = NULL,
		    checkpoint = NULL, progress = 0, current_step = NULL, eta_seconds = NULL,
		    total_items = 0, total_is_estimate = true, processed_items = 0, failed_items = 0,
		    counts = '{"inserted":0,"updated":0,"failed":0,"collections":{}}'
		WHERE t.id = j.id
		RETURNING t.* INTO j;
	ELSE
		-- From the checkpoint: progress, counters and errors are kept.
		UPDATE importer.import_jobs t
		SET status = 'pending', phase = 'queued', run_after = now(),
		    attempts = 0, rescues = 0, error_message = NULL, error_details = NULL,
		    completed_at = NULL,
		    cancel_requested = false, pause_requested = false,
		    worker_id = NULL, lease_id = NULL, heartbeat_at = NULL, eta_seconds = NULL
		WHERE t.id = j.id
		RETURNING t.* INTO j;
	END IF;
	RETURN j;
END
$$;

CREATE FUNCTION importer.delete_job(id uuid) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	j importer.import_jobs := importer._lock_own_job(delete_job.id);
BEGIN
	IF j.status NOT IN ('completed', 'failed', 'cancelled') THEN
		RAISE EXCEPTION 'job % is % and cannot be deleted; cancel it first', j.id, j.status
			USING ERRCODE = '55000';
	END IF;
	-- logs and errors cascade, records keep their data (job_id SET NULL), the
	-- file goes with its last job (trigger in 0003).
	DELETE FROM importer.import_jobs t WHERE t.id = j.id;
END
$$;

CREATE FUNCTION importer.clear_jobs(status text DEFAULT NULL) RETURNS int
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	n int;
BEGIN
	IF clear_jobs.status IS NOT NULL
	   AND clear_jobs.status NOT IN ('completed', 'failed', 'cancelled') THEN
		RAISE EXCEPTION 'status must be completed, failed or cancelled (or NULL for all three)'
			USING ERRCODE = '22023';
	END IF;
	DELETE FROM importer.import_jobs t
	WHERE t.user_id = importer.current_user_id()
	  AND t.status IN ('completed', 'failed', 'cancelled')
	  AND (clear_jobs.status IS NULL OR t.status = clear_jobs.status);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

/* ==== Housekeeping (service role; optional helpers for the worker) ==== */

-- Processing jobs whose heartbeat is older than lease_seconds go back to
-- pending keeping their checkpoint (rescues + 1); past max_rescues they fail.
-- An outstanding cancel/pause request is honoured here, since no worker will.
-- Returns the number of jobs rescued.
CREATE FUNCTION importer.rescue_stale_jobs() RETURNS int
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	n int;
BEGIN
	WITH stale AS MATERIALIZED (
		SELECT t.id, t.worker_id AS previous_worker,
		       CASE
		           WHEN t.cancel_requested THEN 'cancelled'
		           WHEN t.rescues + 1 > coalesce(importer.setting_int('max_rescues', t.user_id), 5)
		               THEN 'failed'
		           WHEN t.pause_requested THEN 'paused'
		           ELSE 'pending'
		       END AS new_status
		FROM importer.import_jobs t
		WHERE t.status = 'processing'
		  AND coalesce(t.heartbeat_at, t.started_at, t.updated_at)
		      < now() - make_interval(secs => coalesce(importer.setting_int('lease_seconds', t.user_id), 15))
		FOR UPDATE SKIP LOCKED
	), rescued AS (
		UPDATE importer.import_jobs t
		SET status = stale.new_status,
		    phase = CASE WHEN stale.new_status IN ('cancelled', 'failed') THEN 'done' ELSE 'queued' END,
		    completed_at = CASE WHEN stale.new_status IN ('cancelled', 'failed') THEN now() END,
		    error_message = CASE WHEN stale.new_status = 'failed'
		                         THEN format('job abandoned by its worker %s times (heartbeat lost); giving up',
		                                     t.rescues + 1)
		                         ELSE t.error_message
		                    END,
		    rescues = t.rescues + 1,
		    pause_requested = false,
		    worker_id = NULL, lease_id = NULL, eta_seconds = NULL, run_after = now()
		FROM stale
		WHERE t.id = stale.id
		RETURNING t.id, t.user_id, t.status, t.rescues, stale.previous_worker)
	INSERT INTO importer.import_logs (job_id, user_id, level, event, message, details)
	SELECT r.id, r.user_id, CASE WHEN r.status = 'failed' THEN 'error' ELSE 'warn' END, 'job.rescued',
	       format('lease expired on worker %s; job is now %s', coalesce(r.previous_worker, '?'), r.status),
	       jsonb_build_object('previous_worker_id', r.previous_worker, 'status', r.status,
	                          'rescues', r.rescues)
	FROM rescued r;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

-- Retention: deletes up to p_limit finished jobs older than retention_days
-- (their logs and errors cascade, their files go with them), never-submitted
-- uploads and outbox rows older than the global retention. Records are never
-- deleted. Returns the number of jobs deleted; call until it returns < p_limit.
CREATE FUNCTION importer.purge_expired(p_limit int DEFAULT 1000) RETURNS int
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
DECLARE
	n int;
	v_cutoff timestamptz := now() - make_interval(days => coalesce(importer.setting_int('retention_days'), 7)::int);
BEGIN
	DELETE FROM importer.import_jobs t
	WHERE t.id IN (
		SELECT x.id FROM importer.import_jobs x
		WHERE x.status IN ('completed', 'failed', 'cancelled')
		  AND x.completed_at < now() - make_interval(
		          days => coalesce(importer.setting_int('retention_days', x.user_id), 7)::int)
		LIMIT p_limit
		FOR UPDATE SKIP LOCKED);
	GET DIAGNOSTICS n = ROW_COUNT;

	DELETE FROM importer.import_files f
	WHERE f.id IN (
		SELECT x.id FROM importer.import_files x
		WHERE x.created_at < v_cutoff
		  AND NOT EXISTS (SELECT 1 FROM importer.import_jobs j WHERE j.file_id = x.id)
		LIMIT p_limit
		FOR UPDATE SKIP LOCKED);

	DELETE FROM importer.notifications o
	WHERE o.id IN (
		SELECT x.id FROM importer.notifications x
		WHERE x.created_at < v_cutoff
		LIMIT p_limit
		FOR UPDATE SKIP LOCKED);
	RETURN n;
END
$$;

/* ==== Grants ==== */

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA importer FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
	importer.current_user_id(),
	importer.begin_upload(text),
	importer.append_chunk(uuid, int, bytea),
	importer._on_behalf_of(jsonb),
	importer.submit_job(text, uuid, jsonb),
	importer.submit_job(text, bytea, jsonb),
	importer.submit_job_own(text, uuid, jsonb),
	importer.submit_job_own(text, bytea, jsonb),
	importer.cancel_job(uuid),
	importer.pause_job(uuid),
	importer.resume_job(uuid),
	importer.retry_job(uuid, boolean),
	importer.delete_job(uuid),
	importer.clear_jobs(text)
	TO importer_api;

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA importer TO importer_worker;
-- internal: only the owner (through the SECURITY DEFINER entry points)
REVOKE EXECUTE ON FUNCTION
	importer._opt_int(jsonb, text, bigint, bigint),
	importer._opt_bool(jsonb, text),
	importer._opt_text(jsonb, text),
	importer._lock_user_and_check_limit(uuid),
	importer._lock_own_job(uuid),
	importer._store_file(uuid, text, bytea),
	importer._submit_job(uuid, boolean, text, uuid, bytea, jsonb)
	FROM importer_worker;
