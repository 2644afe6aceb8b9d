-- 0003_events.sql -- triggers: event stamping, NOTIFY, outbox, file lifecycle.
--
-- Channels (names are the contract, see DESIGN.md "NOTIFY"):
--   importer_jobs           ''                 a job became pending (insert or update)
--   importer_control        '<job id>'         cancel/pause requested on a processing job
--   importer_events         {"t":"job"|"log","job_id":..,"user_id":..,"seq":N}
--   importer_notifications  {"id":N,"user_id":..,"job_id":..,"kind":..}
-- Everything fires from triggers, so a plain operator UPDATE in psql streams
-- to browsers exactly like a change made through the API or by a worker.
-- NOTIFY is transactional: listeners hear nothing of a rolled-back change.
-- importer_events payloads are built with format(), not json_build_object(),
-- to get the compact form above byte for byte: every value is a uuid or an
-- integer, so nothing needs escaping. Payloads are < 150 bytes.
--
-- Trigger functions are SECURITY DEFINER (owner) so that whoever changes a job
-- (worker, API function, operator role) does not also need privileges on
-- event_seq, notifications or the file tables.

/* ==== import_jobs: seq/updated_at stamping ==== */

-- Fires only when something other than heartbeat_at (and updated_at/seq
-- themselves) changed: see the WHEN clause. Heartbeat-only updates keep seq
-- and updated_at, and emit nothing.
CREATE FUNCTION importer.tg_jobs_stamp() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
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

CREATE TRIGGER a_stamp BEFORE UPDATE ON importer.import_jobs
	FOR EACH ROW
	WHEN ((to_jsonb(NEW) - '{heartbeat_at,updated_at,seq}'::text[])
	      IS DISTINCT FROM (to_jsonb(OLD) - '{heartbeat_at,updated_at,seq}'::text[]))
	EXECUTE FUNCTION importer.tg_jobs_stamp();

-- On INSERT seq comes from the column default; fill the same conveniences.
CREATE FUNCTION importer.tg_jobs_insert_defaults() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	IF NEW.status IN ('completed', 'failed', 'cancelled') AND NEW.completed_at IS NULL THEN
		NEW.completed_at := now();
	END IF;
	IF NEW.status = 'processing' AND NEW.started_at IS NULL THEN
		NEW.started_at := now();
	END IF;
	RETURN NEW;
END
$$;

CREATE TRIGGER a_insert_defaults BEFORE INSERT ON importer.import_jobs
	FOR EACH ROW
	WHEN (NEW.status <> 'pending')
	EXECUTE FUNCTION importer.tg_jobs_insert_defaults();

/* ==== import_jobs: importer_events ==== */

CREATE FUNCTION importer.tg_jobs_event() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		-- a fresh seq, so streams past the job's last seq learn it is gone
		PERFORM pg_notify('importer_events', format('{"t":"job","job_id":"%s","user_id":"%s","seq":%s}',
			OLD.id, OLD.user_id, nextval('importer.event_seq')));
		RETURN OLD;
	END IF;
	PERFORM pg_notify('importer_events', format('{"t":"job","job_id":"%s","user_id":"%s","seq":%s}',
		NEW.id, NEW.user_id, NEW.seq));
	RETURN NEW;
END
$$;

CREATE TRIGGER event_insert AFTER INSERT ON importer.import_jobs
	FOR EACH ROW EXECUTE FUNCTION importer.tg_jobs_event();
CREATE TRIGGER event_update AFTER UPDATE ON importer.import_jobs
	FOR EACH ROW WHEN (NEW.seq IS DISTINCT FROM OLD.seq)
	EXECUTE FUNCTION importer.tg_jobs_event();
CREATE TRIGGER event_delete AFTER DELETE ON importer.import_jobs
	FOR EACH ROW EXECUTE FUNCTION importer.tg_jobs_event();

/* ==== import_jobs: importer_jobs (work is ready) ==== */

-- Row-level with a WHEN clause and an empty payload rather than a
-- statement-level trigger with transition tables: PostgreSQL folds identical
-- notifications of one transaction into one, so this is still one NOTIFY per
-- transaction however many jobs it makes pending, and the far more frequent
-- updates that do not make a job pending (heartbeats, progress) cost one
-- expression evaluation instead of materialising transition tables.
CREATE FUNCTION importer.tg_jobs_ready() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	PERFORM pg_notify('importer_jobs', '');
	RETURN NULL;
END
$$;

CREATE TRIGGER ready_insert AFTER INSERT ON importer.import_jobs
	FOR EACH ROW WHEN (NEW.status = 'pending')
	EXECUTE FUNCTION importer.tg_jobs_ready();
CREATE TRIGGER ready_update AFTER UPDATE ON importer.import_jobs
	FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.status <> 'pending')
	EXECUTE FUNCTION importer.tg_jobs_ready();

/* ==== import_jobs: importer_control (cancel/pause for the running worker) ==== */

CREATE FUNCTION importer.tg_jobs_control() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	PERFORM pg_notify('importer_control', NEW.id::text);
	RETURN NULL;
END
$$;

CREATE TRIGGER control_update AFTER UPDATE ON importer.import_jobs
	FOR EACH ROW
	WHEN (NEW.status = 'processing'
	      AND ((NEW.cancel_requested AND NOT OLD.cancel_requested)
	           OR (NEW.pause_requested AND NOT OLD.pause_requested)))
	EXECUTE FUNCTION importer.tg_jobs_control();

/* ==== import_jobs: outbox ==== */

-- Worth telling the owner about: every failed job, and a completed job that
-- processed at least notify_min_items records (a big import the user has
-- likely stopped watching). Cancelled jobs are not: someone chose to stop them.
CREATE FUNCTION importer.tg_jobs_outbox() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	IF NEW.status = 'completed'
	   AND NEW.processed_items < coalesce(importer.setting_int('notify_min_items', NEW.user_id), 200) THEN
		RETURN NULL;
	END IF;
	INSERT INTO importer.notifications (user_id, job_id, kind, payload)
	VALUES (NEW.user_id, NEW.id, 'job.' || NEW.status, jsonb_build_object(
		'job_id', NEW.id,
		'kind', NEW.kind,
		'file_name', NEW.file_name,
		'collection', NEW.collection,
		'status', NEW.status,
		'processed_items', NEW.processed_items,
		'failed_items', NEW.failed_items,
		'counts', NEW.counts,
		'error_message', left(NEW.error_message, 1000),
		'created_at', NEW.created_at,
		'completed_at', NEW.completed_at));
	RETURN NULL;
END
$$;

CREATE TRIGGER outbox_update AFTER UPDATE ON importer.import_jobs
	FOR EACH ROW
	WHEN (NEW.status IN ('completed', 'failed') AND OLD.status IS DISTINCT FROM NEW.status)
	EXECUTE FUNCTION importer.tg_jobs_outbox();

CREATE FUNCTION importer.tg_notifications_notify() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	PERFORM pg_notify('importer_notifications', json_build_object(
		'id', NEW.id, 'user_id', NEW.user_id, 'job_id', NEW.job_id, 'kind', left(NEW.kind, 100))::text);
	RETURN NULL;
END
$$;

CREATE TRIGGER notify_insert AFTER INSERT ON importer.notifications
	FOR EACH ROW EXECUTE FUNCTION importer.tg_notifications_notify();

/* ==== import_jobs: file lifecycle ==== */

-- A completed job no longer needs its file's contents: drop the chunks (the
-- import_files row stays, with name, size and hash, while jobs reference it).
-- Unless another job sharing the file may still need them (anything but completed).
CREATE FUNCTION importer.tg_jobs_drop_chunks() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	PERFORM 1 FROM importer.import_files f WHERE f.id = NEW.file_id FOR UPDATE;
	IF NOT EXISTS (SELECT 1 FROM importer.import_jobs j
	               WHERE j.file_id = NEW.file_id AND j.id <> NEW.id AND j.status <> 'completed') THEN
		DELETE FROM importer.import_file_chunks c WHERE c.file_id = NEW.file_id;
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER files_drop_chunks AFTER UPDATE ON importer.import_jobs
	FOR EACH ROW
	WHEN (NEW.status = 'completed' AND OLD.status <> 'completed' AND NEW.file_id IS NOT NULL)
	EXECUTE FUNCTION importer.tg_jobs_drop_chunks();

-- A deleted job takes its file (row and chunks) with it unless another job
-- still references the file. The file row is locked first so two concurrent
-- deletions of jobs sharing a file cannot both leave it behind.
CREATE FUNCTION importer.tg_jobs_drop_file() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	PERFORM 1 FROM importer.import_files f WHERE f.id = OLD.file_id FOR UPDATE;
	IF FOUND AND NOT EXISTS (SELECT 1 FROM importer.import_jobs j WHERE j.file_id = OLD.file_id) THEN
		DELETE FROM importer.import_files f WHERE f.id = OLD.file_id;
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER files_drop_file AFTER DELETE ON importer.import_jobs
	FOR EACH ROW WHEN (OLD.file_id IS NOT NULL)
	EXECUTE FUNCTION importer.tg_jobs_drop_file();

/* ==== import_logs / import_errors ==== */

-- user_id is denormalised for RLS; fill it from the job when the writer omits it.
CREATE FUNCTION importer.tg_fill_user_id() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	SELECT j.user_id INTO NEW.user_id FROM importer.import_jobs j WHERE j.id = NEW.job_id;
	RETURN NEW;
END
$$;

CREATE TRIGGER a_fill_user_id BEFORE INSERT ON importer.import_logs
	FOR EACH ROW WHEN (NEW.user_id IS NULL)
	EXECUTE FUNCTION importer.tg_fill_user_id();
CREATE TRIGGER a_fill_user_id BEFORE INSERT ON importer.import_errors
	FOR EACH ROW WHEN (NEW.user_id IS NULL)
	EXECUTE FUNCTION importer.tg_fill_user_id();

-- One {"t":"log"} per job per statement, seq = the highest log id it wrote
-- (a batch that writes 50 lines for one job sends one notification).
CREATE FUNCTION importer.tg_logs_event() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, importer, pg_temp
	AS $$
BEGIN
	PERFORM pg_notify('importer_events', format('{"t":"log","job_id":"%s","user_id":"%s","seq":%s}',
		n.job_id, n.user_id, max(n.id)))
	FROM new_rows n
	GROUP BY n.job_id, n.user_id;
	RETURN NULL;
END
$$;

CREATE TRIGGER event_insert AFTER INSERT ON importer.import_logs
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION importer.tg_logs_event();

/* ==== Grants ==== */

-- Trigger functions cannot be called directly; nobody needs EXECUTE on them.
REVOKE EXECUTE ON FUNCTION
	importer.tg_jobs_stamp(),
	importer.tg_jobs_insert_defaults(),
	importer.tg_jobs_event(),
	importer.tg_jobs_ready(),
	importer.tg_jobs_control(),
	importer.tg_jobs_outbox(),
	importer.tg_notifications_notify(),
	importer.tg_jobs_drop_chunks(),
	importer.tg_jobs_drop_file(),
	importer.tg_fill_user_id(),
	importer.tg_logs_event()
	FROM PUBLIC;
