-- 0001_schema.sql -- roles, tables, constraints, indexes, default settings, RLS, grants.
--
-- Runs inside the migrations runner's transaction (no BEGIN/COMMIT here) as the
-- schema owner. The owner bypasses RLS (policies are not FORCEd); importer_api
-- only ever sees its own rows, importer_worker (the service role) sees all.
-- Functions live in 0002, NOTIFY/lifecycle triggers in 0003, views in 0004.

CREATE SCHEMA IF NOT EXISTS importer;

/* ==== Roles (cluster-wide) ==== */

-- Many databases of one cluster run this migration, concurrently in tests.
-- Two concurrent CREATE ROLEs of the same name: the loser waits for the winner
-- and then fails with unique_violation on pg_authid (or duplicate_object if
-- the winner had committed before our check); either way the role exists.
DO $roles$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['importer_api', 'importer_worker'] LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
			BEGIN
				EXECUTE format('CREATE ROLE %I NOLOGIN', r);
			EXCEPTION WHEN duplicate_object OR unique_violation THEN
				NULL;	-- created concurrently by another database's migration
			END;
		END IF;
	END LOOP;
END
$roles$;

REVOKE CREATE ON SCHEMA importer FROM PUBLIC;
REVOKE ALL ON SCHEMA importer FROM PUBLIC;

/* ==== Sequences ==== */

-- One sequence for every event the gateway relays: job rows are stamped with
-- seq = nextval() on each visible change, log lines take their id from it. So
-- an SSE id (Last-Event-ID) compares job seqs and log ids directly.
CREATE SEQUENCE importer.event_seq AS bigint;

/* ==== Uploaded files ==== */

CREATE TABLE importer.import_files (
	id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id    uuid        NOT NULL,
	file_name  text        NOT NULL DEFAULT '' CHECK (length(file_name) <= 255),
	size       bigint      NOT NULL DEFAULT 0 CHECK (size >= 0),
	sha256     bytea       CHECK (sha256 IS NULL OR octet_length(sha256) = 32),
	created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE importer.import_files IS
	'An uploaded file (chunks in import_file_chunks). The row lives as long as a job references it '
	'or, never submitted, until retention; chunks are dropped when a job using the file completes.';
COMMENT ON COLUMN importer.import_files.sha256 IS
	'SHA-256 of the whole file when known (one-call submit computes it; chunked uploads leave it NULL).';
CREATE INDEX import_files_user_idx ON importer.import_files (user_id, created_at DESC);
CREATE INDEX import_files_created_idx ON importer.import_files (created_at);

CREATE TABLE importer.import_file_chunks (
	file_id uuid  NOT NULL REFERENCES importer.import_files (id) ON DELETE CASCADE,
	seq     int   NOT NULL CHECK (seq >= 0),
	data    bytea NOT NULL,
	PRIMARY KEY (file_id, seq)
);
-- Chunks are 1 MiB of already-compressed or incompressible-enough data that is
-- read back exactly once: skip pglz, store out of line.
ALTER TABLE importer.import_file_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
COMMENT ON TABLE importer.import_file_chunks IS
	'File contents, 1 MiB per row by convention (8 MiB max), seq 0-based and contiguous.';

/* ==== Jobs ==== */

CREATE TABLE importer.import_jobs (
	id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id          uuid        NOT NULL,
	kind             text        NOT NULL CHECK (kind IN ('csv', 'ndjson', 'backup', 'noop')),
	file_name        text,
	file_id          uuid        REFERENCES importer.import_files (id) ON DELETE SET NULL,
	file_size        bigint      CHECK (file_size >= 0),
	collection       text        CHECK (length(collection) BETWEEN 1 AND 128),
	import_mode      text        NOT NULL DEFAULT 'upsert'
	                             CHECK (import_mode IN ('upsert', 'append', 'replace')),
	dry_run          boolean     NOT NULL DEFAULT false,
	status           text        NOT NULL DEFAULT 'pending'
	                             CHECK (status IN ('pending', 'processing', 'paused',
	                                               'completed', 'failed', 'cancelled')),
	phase            text        NOT NULL DEFAULT 'queued'
	                             CHECK (phase IN ('queued', 'reading', 'importing', 'finalizing', 'done')),
	progress         int         NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
	current_step     text,
	eta_seconds      int         CHECK (eta_seconds >= 0),
	total_items      bigint      NOT NULL DEFAULT 0 CHECK (total_items >= 0),
	total_is_estimate boolean    NOT NULL DEFAULT true,
	processed_items  bigint      NOT NULL DEFAULT 0 CHECK (processed_items >= 0),
	failed_items     bigint      NOT NULL DEFAULT 0 CHECK (failed_items >= 0),
	counts           jsonb       NOT NULL
	                             DEFAULT '{"inserted":0,"updated":0,"failed":0,"collections":{}}'
	                             CHECK (jsonb_typeof(counts) = 'object'),
	error_message    text,
	error_details    jsonb,
	payload          jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
	attempts         int         NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	max_attempts     int         NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
	rescues          int         NOT NULL DEFAULT 0 CHECK (rescues >= 0),
	run_after        timestamptz NOT NULL DEFAULT now(),
	priority         int         NOT NULL DEFAULT 0,
	worker_id        text,
	lease_id         uuid,
	heartbeat_at     timestamptz,
	cancel_requested boolean     NOT NULL DEFAULT false,
	pause_requested  boolean     NOT NULL DEFAULT false,
	checkpoint       jsonb,
	idempotency_key  text        CHECK (length(idempotency_key) BETWEEN 1 AND 255),
	seq              bigint      NOT NULL DEFAULT nextval('importer.event_seq'),
	created_at       timestamptz NOT NULL DEFAULT now(),
	started_at       timestamptz,
	completed_at     timestamptz,
	updated_at       timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT import_jobs_user_idempotency_key UNIQUE (user_id, idempotency_key),
	-- A terminal job has a completion time (the 0003 stamp trigger fills it in
	-- when an operator's UPDATE forgets it, so this never gets in their way).
	CONSTRAINT import_jobs_terminal_completed_at
		CHECK (status NOT IN ('completed', 'failed', 'cancelled') OR completed_at IS NOT NULL)
)
-- The queue table churns: every batch rewrites its job row (progress, counters,
-- checkpoint, heartbeat), and noop jobs go pending->processing->completed in
-- milliseconds. fillfactor 70 leaves room on each page so those updates stay
-- HOT (no index touches heartbeat_at, progress, seq or updated_at on purpose).
-- The table is small but its dead tuples pile up fast: vacuum after ~1% or 200
-- dead rows instead of the default 20%, without cost-based sleeping, so claim
-- scans never wade through bloat; analyze often so the partial indexes'
-- selectivity (few pending rows among many finished ones) stays known.
WITH (
	fillfactor = 70,
	autovacuum_vacuum_scale_factor = 0.01,
	autovacuum_vacuum_threshold = 200,
	autovacuum_vacuum_insert_scale_factor = 0.05,
	autovacuum_analyze_scale_factor = 0.02,
	autovacuum_analyze_threshold = 200,
	autovacuum_vacuum_cost_delay = 0
);
COMMENT ON TABLE importer.import_jobs IS
	'The queue and the history: one row per import job. payload holds the normalised submit options.';
COMMENT ON COLUMN importer.import_jobs.seq IS
	'event_seq value of the last visible change (stamped by trigger; heartbeat-only updates keep it).';
COMMENT ON COLUMN importer.import_jobs.checkpoint IS
	'Worker resume point taken at record boundaries; NULL means start from scratch.';
COMMENT ON COLUMN importer.import_jobs.file_id IS
	'The uploaded file; NULL for noop without a file. SET NULL if the file row is ever removed.';

-- Claim: pending jobs by priority then age (run_after and the fairness rule are
-- filtered on the few rows this yields).
CREATE INDEX import_jobs_claim_idx ON importer.import_jobs (priority DESC, created_at, id)
	WHERE status = 'pending';
-- A user's newest jobs (GET /api/jobs, keyset pagination on (created_at, id)).
CREATE INDEX import_jobs_user_created_idx ON importer.import_jobs (user_id, created_at DESC, id DESC);
-- Active jobs per user: the per-user limit at submit/retry, the running count
-- for fairness at claim.
CREATE INDEX import_jobs_user_active_idx ON importer.import_jobs (user_id, status)
	WHERE status IN ('pending', 'processing', 'paused');
-- Processing jobs for the rescue sweep. Deliberately not keyed on heartbeat_at:
-- an index on it would make every heartbeat a non-HOT update; the processing
-- set is small (about one row per worker) and is filtered by heartbeat.
CREATE INDEX import_jobs_processing_idx ON importer.import_jobs (worker_id)
	WHERE status = 'processing';
-- Retention: finished jobs by age.
CREATE INDEX import_jobs_finished_idx ON importer.import_jobs (completed_at)
	WHERE status IN ('completed', 'failed', 'cancelled');
-- Jobs of a file (append_chunk's "already submitted" check, file cleanup, FK).
CREATE INDEX import_jobs_file_idx ON importer.import_jobs (file_id) WHERE file_id IS NOT NULL;

/* ==== Logs and record errors ==== */

CREATE TABLE importer.import_logs (
	id      bigint      PRIMARY KEY DEFAULT nextval('importer.event_seq'),
	job_id  uuid        NOT NULL REFERENCES importer.import_jobs (id) ON DELETE CASCADE,
	user_id uuid        NOT NULL,
	ts      timestamptz NOT NULL DEFAULT clock_timestamp(),
	level   text        NOT NULL DEFAULT 'info' CHECK (level IN ('debug', 'info', 'warn', 'error')),
	event   text        NOT NULL,
	message text        NOT NULL,
	details jsonb
);
COMMENT ON TABLE importer.import_logs IS
	'Job log lines. id comes from event_seq (shared with import_jobs.seq); user_id is the job owner, '
	'denormalised for RLS (filled from the job by trigger when omitted).';
CREATE INDEX import_logs_job_idx ON importer.import_logs (job_id, id);

CREATE TABLE importer.import_errors (
	id           bigserial   PRIMARY KEY,
	job_id       uuid        NOT NULL REFERENCES importer.import_jobs (id) ON DELETE CASCADE,
	user_id      uuid        NOT NULL,
	record_index bigint      CHECK (record_index >= 1),
	record_key   text,
	collection   text,
	message      text        NOT NULL,
	raw          text,
	created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE importer.import_errors IS
	'Record-level errors (at most max_errors_stored per job). record_index is 1-based over data records; '
	'raw is a truncated excerpt of the record.';
CREATE INDEX import_errors_job_idx ON importer.import_errors (job_id, record_index, id);

/* ==== Imported data ==== */

CREATE TABLE importer.records (
	user_id    uuid        NOT NULL,
	collection text        NOT NULL CHECK (length(collection) BETWEEN 1 AND 128),
	record_key text        NOT NULL CHECK (octet_length(record_key) BETWEEN 1 AND 512),
	data       jsonb       NOT NULL,
	job_id     uuid        REFERENCES importer.import_jobs (id) ON DELETE SET NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (user_id, collection, record_key)
);
COMMENT ON TABLE importer.records IS
	'Imported records. job_id is the last job that wrote the record; deleting jobs never deletes data.';
-- Needed by the FK's ON DELETE SET NULL: without it deleting one job scans all records.
CREATE INDEX records_job_idx ON importer.records (job_id) WHERE job_id IS NOT NULL;

/* ==== Settings ==== */

CREATE TABLE importer.settings (
	key        text        NOT NULL CHECK (key ~ '^[a-z][a-z0-9_]*$'),
	value      jsonb       NOT NULL,
	user_id    uuid,
	updated_at timestamptz NOT NULL DEFAULT now(),
	-- PostgreSQL 15: NULL user_id (the global row) counts as one value, so
	-- ON CONFLICT (key, user_id) works for global and per-user rows alike.
	CONSTRAINT settings_key_user UNIQUE NULLS NOT DISTINCT (key, user_id)
);
COMMENT ON TABLE importer.settings IS
	'Policy. user_id NULL = global default; a row with a user_id overrides it for that user. '
	'Read numbers with importer.setting_int(key, user_id).';

INSERT INTO importer.settings (key, value) VALUES
	('max_active_jobs_per_user', '20'),
	('max_running_per_user', '2'),
	('max_sse_streams_per_user', '20'),
	('batch_rows', '5000'),
	('batch_bytes', '8388608'),
	('batch_pause_ms', '0'),
	('max_attempts', '3'),
	('max_rescues', '5'),
	('lease_seconds', '15'),
	('retention_days', '7'),
	('max_logs_per_job', '1000'),
	('max_errors_stored', '10000'),
	('max_record_bytes', '16777216'),
	('notify_min_items', '200');

/* ==== Notifications outbox ==== */

CREATE TABLE importer.notifications (
	id           bigserial   PRIMARY KEY,
	user_id      uuid        NOT NULL,
	job_id       uuid        REFERENCES importer.import_jobs (id) ON DELETE SET NULL,
	kind         text        NOT NULL,
	payload      jsonb       NOT NULL DEFAULT '{}',
	created_at   timestamptz NOT NULL DEFAULT now(),
	delivered_at timestamptz,
	read_at      timestamptz
);
COMMENT ON TABLE importer.notifications IS
	'Outbox: one row per finished job worth telling its owner about (written by trigger, see 0003). '
	'payload is self-contained, so the row survives deletion of its job (job_id SET NULL). '
	'delivered_at/read_at are written by the service role.';
CREATE INDEX notifications_user_idx ON importer.notifications (user_id, id DESC);
CREATE INDEX notifications_undelivered_idx ON importer.notifications (id) WHERE delivered_at IS NULL;
CREATE INDEX notifications_job_idx ON importer.notifications (job_id) WHERE job_id IS NOT NULL;

/* ==== Row-level security ==== */

-- importer.current_user_id() is defined here (not in 0002) because the
-- policies below call it. (SELECT ...) makes it an init plan: evaluated once
-- per query, not once per row.
CREATE FUNCTION importer.current_user_id() RETURNS uuid
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$ SELECT NULLIF(pg_catalog.current_setting('importer.user_id', true), '')::uuid $$;
COMMENT ON FUNCTION importer.current_user_id() IS
	'The caller''s user id from the importer.user_id setting (SET LOCAL per transaction); NULL if unset.';

ALTER TABLE importer.import_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE importer.import_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE importer.import_errors ENABLE ROW LEVEL SECURITY;
ALTER TABLE importer.import_files ENABLE ROW LEVEL SECURITY;
ALTER TABLE importer.import_file_chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE importer.records ENABLE ROW LEVEL SECURITY;
ALTER TABLE importer.notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE importer.settings ENABLE ROW LEVEL SECURITY;

-- importer_api: read own rows only (it has no write privileges at all; writes
-- go through SECURITY DEFINER functions that scope by current_user_id()).
CREATE POLICY api_read_own ON importer.import_jobs FOR SELECT TO importer_api
	USING (user_id = (SELECT importer.current_user_id()));
CREATE POLICY api_read_own ON importer.import_logs FOR SELECT TO importer_api
	USING (user_id = (SELECT importer.current_user_id()));
CREATE POLICY api_read_own ON importer.import_errors FOR SELECT TO importer_api
	USING (user_id = (SELECT importer.current_user_id()));
CREATE POLICY api_read_own ON importer.import_files FOR SELECT TO importer_api
	USING (user_id = (SELECT importer.current_user_id()));
CREATE POLICY api_read_own ON importer.import_file_chunks FOR SELECT TO importer_api
	USING (EXISTS (SELECT 1 FROM importer.import_files f
	               WHERE f.id = file_id AND f.user_id = (SELECT importer.current_user_id())));
CREATE POLICY api_read_own ON importer.records FOR SELECT TO importer_api
	USING (user_id = (SELECT importer.current_user_id()));
CREATE POLICY api_read_own ON importer.notifications FOR SELECT TO importer_api
	USING (user_id = (SELECT importer.current_user_id()));
CREATE POLICY api_read_global_and_own ON importer.settings FOR SELECT TO importer_api
	USING (user_id IS NULL OR user_id = (SELECT importer.current_user_id()));

-- importer_worker: the service role sees and writes everything.
CREATE POLICY worker_all ON importer.import_jobs FOR ALL TO importer_worker USING (true) WITH CHECK (true);
CREATE POLICY worker_all ON importer.import_logs FOR ALL TO importer_worker USING (true) WITH CHECK (true);
CREATE POLICY worker_all ON importer.import_errors FOR ALL TO importer_worker USING (true) WITH CHECK (true);
CREATE POLICY worker_all ON importer.import_files FOR ALL TO importer_worker USING (true) WITH CHECK (true);
CREATE POLICY worker_all ON importer.import_file_chunks FOR ALL TO importer_worker USING (true) WITH CHECK (true);
CREATE POLICY worker_all ON importer.records FOR ALL TO importer_worker USING (true) WITH CHECK (true);
CREATE POLICY worker_all ON importer.notifications FOR ALL TO importer_worker USING (true) WITH CHECK (true);
CREATE POLICY worker_all ON importer.settings FOR ALL TO importer_worker USING (true) WITH CHECK (true);

/* ==== Grants ==== */

GRANT USAGE ON SCHEMA importer TO importer_api, importer_worker;

-- Chunks too: a user may read back (download) their own upload; RLS hides others'.
GRANT SELECT ON importer.import_jobs, importer.import_logs, importer.import_errors,
	importer.import_files, importer.import_file_chunks, importer.records,
	importer.notifications, importer.settings
	TO importer_api;

GRANT SELECT, INSERT, UPDATE, DELETE ON importer.import_jobs, importer.import_logs,
	importer.import_errors, importer.import_files, importer.import_file_chunks,
	importer.records, importer.notifications, importer.settings
	TO importer_worker;
-- The runner owns schema_migrations; the service role may read the version.
DO $grant$
BEGIN
	IF pg_catalog.to_regclass('importer.schema_migrations') IS NOT NULL THEN
		GRANT SELECT ON importer.schema_migrations TO importer_worker;
	END IF;
END
$grant$;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA importer TO importer_worker;

REVOKE EXECUTE ON FUNCTION importer.current_user_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION importer.current_user_id() TO importer_api, importer_worker;
