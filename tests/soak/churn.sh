#!/usr/bin/env bash
# tests/soak/churn.sh -- churn and bloat study: throughput, dead tuples and table
# sizes over CHURN_MINUTES of mixed load, once as is ("plain") and once with a
# transaction held open in another session for the middle third ("held").
#
# Not part of tests/run.sh (2 x CHURN_MINUTES). Uses the benchmark helpers
# (tests/bench/lib.sh): Release binaries, a private throwaway cluster with the
# benchmark settings (durable, pg_stat_statements). Each run starts from empty
# tables. The load, kept up by a driver function (schema churn, test only):
#   - small jobs: CHURN_PENDING due jobs kept waiting, 70 % noop and 30 % tiny
#     CSV files (3 rows, upsert into a per-user collection), spread over
#     CHURN_USERS users; with CHURN_TINY_KEYS=hot (default) every tiny file
#     rewrites the same 3 keys, with fresh each one writes 3 new keys (how
#     uploads usually look: it tells the queue's own cost under a held
#     transaction from that of rewriting a few hot rows over and over);
#   - long imports: CHURN_LONG CSV imports of CHURN_LONG_ROWS rows (8 columns)
#     always running, each resubmitted when it ends (upserting the same keys):
#     with CHURN_LONG_DATA=same (default) the same file again (a re-import of
#     unchanged data: the upsert leaves its records as they are), with
#     changed every import changes every record's data (two files taken in
#     turn), so every record is rewritten;
#   - retention: every CHURN_PURGE_SECONDS, jobs that finished more than
#     CHURN_RETAIN_SECONDS ago are deleted (production keeps them
#     retention_days; the study compresses that, so the job, log and error
#     tables churn at the rate they would at scale).
# The driver counts the small jobs due from its own submissions and a trigger
# on the jobs the workers take (sequences), not with count(*) over the queue.
# CHURN_WORKERS workers. In the held run, from minute T/3 to 2T/3 a psql
# session sits idle in `BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT ...`,
# which pins the xmin horizon: vacuum can remove no tuple that died after it.
#
# Every CHURN_INTERVAL seconds (default 30) a sample: jobs finished per second
# (small ones by kind, long ones), records imported per second (the
# processed_items of the CSV jobs finished), records written per second
# (n_tup_ins + n_tup_upd of importer.records), n_dead_tup, n_live_tup and
# pg_total_relation_size of import_jobs, import_logs, import_errors,
# import_file_chunks and records, the mean time of the claim statements from
# pg_stat_statements (claim_job, complete_noops) over the interval and the
# shared buffers each call touched (a cost the machine's load does not blur:
# with pg_stat_statements.track = top, a function call's own statements count
# in it), the oldest
# transaction's xmin age, the pending queue, the load average, and the CPU
# time the cluster and the workers used (throughput per CPU second), and the
# share of import_jobs updates that were HOT (a held horizon stops page
# pruning, so row versions stop fitting on their page).
#
# A third kind of run, "claim" (CHURN_RUNS=claim), measures the claim
# statements alone, without workers and without the machine's load in the
# figure: with a transaction held open throughout, CHURN_CLAIM_ROUNDS times
# the driver itself does what a worker does -- complete_noops (up to 200),
# claim_job for one import job, which it then marks completed -- and tops the
# queue up to 700 due noop and 300 due import jobs. Every 25 rounds it
# writes the shared buffers per call of both statements (pg_stat_statements),
# which grow with the dead index entries they walk, to OUT/claim.tsv. Run it
# with two builds (IMPORTER_BUILD_DIR) to compare two schemas.
#
# Output in CHURN_OUT (default build/churn): <run>.samples.tsv (raw, cumulative),
# <run>.series.tsv (per interval), <run>.statements.<phase>.tsv (cumulative
# pg_stat_statements at the end of each third), summary.md (both runs: mean
# throughput of the start, held and after thirds relative to the start; sizes
# and dead tuples; the statements that took the most server time in each
# third); the summary is printed at the end.
#
# Environment: CHURN_MINUTES (20), CHURN_RUNS ("plain held"), CHURN_INTERVAL (30),
# CHURN_WORKERS (4), CHURN_USERS (20), CHURN_PENDING (1000), CHURN_LONG (2),
# CHURN_LONG_ROWS (200000), CHURN_RETAIN_SECONDS (120), CHURN_PURGE_SECONDS (10),
# CHURN_TINY_KEYS (hot), CHURN_LONG_DATA (same), CHURN_OUT.
# Example (a short check): CHURN_MINUTES=3 CHURN_INTERVAL=10 tests/soak/churn.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export BENCH_OUT=${CHURN_OUT:-$ROOT/build/churn}
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"

MINUTES=${CHURN_MINUTES:-20}
RUN_NAMES=${CHURN_RUNS:-plain held}
INTERVAL=${CHURN_INTERVAL:-30}
WORKERS=${CHURN_WORKERS:-4}
USERS=${CHURN_USERS:-20}
PENDING=${CHURN_PENDING:-1000}
LONG=${CHURN_LONG:-2}
LONG_ROWS=${CHURN_LONG_ROWS:-200000}
RETAIN=${CHURN_RETAIN_SECONDS:-120}
PURGE=${CHURN_PURGE_SECONDS:-10}
case ${CHURN_TINY_KEYS:-hot} in
hot) FRESH=false ;;
fresh) FRESH=true ;;
*)
	echo "churn.sh: CHURN_TINY_KEYS is hot or fresh (got '$CHURN_TINY_KEYS')" >&2
	exit 2
	;;
esac
case ${CHURN_LONG_DATA:-same} in
same) CHANGED=false ;;
changed) CHANGED=true ;;
*)
	echo "churn.sh: CHURN_LONG_DATA is same or changed (got '$CHURN_LONG_DATA')" >&2
	exit 2
	;;
esac
CLAIM_ROUNDS=${CHURN_CLAIM_ROUNDS:-500}
for v in MINUTES INTERVAL WORKERS USERS PENDING LONG LONG_ROWS RETAIN PURGE CLAIM_ROUNDS; do
	[[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || {
		echo "churn.sh: CHURN_$v must be a positive integer (got '${!v}')" >&2
		exit 2
	}
done
[ "$RETAIN" -gt $((2 * INTERVAL)) ] || {
	echo "churn.sh: CHURN_RETAIN_SECONDS must exceed 2 x CHURN_INTERVAL (finished jobs are counted before they are pruned)" >&2
	exit 2
}
for r in $RUN_NAMES; do
	case $r in plain | held | claim) ;; *)
		echo "churn.sh: CHURN_RUNS holds plain, held and/or claim (got '$r')" >&2
		exit 2
		;;
	esac
done

bench_init churn
bench_cluster
HOLD_PID=
WORKER_PIDS=()

# ---- the driver (test-only schema churn in the benchmark database) -------------------
gen_csv "$LONG_ROWS" "$TMP/long.csv"
sed '2,$ s/,"note /,"Note /' "$TMP/long.csv" >"$TMP/long_b.csv"
psql_admin -v users="$USERS" <<'EOSQL'
SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS churn;
CREATE TABLE IF NOT EXISTS churn.files (name text PRIMARY KEY, data bytea NOT NULL);
-- Users 1..users get small jobs; users users+1.. own the long imports.
CREATE OR REPLACE FUNCTION churn.user_uuid(n int) RETURNS uuid LANGUAGE sql IMMUTABLE
	AS $$ SELECT format('c4d2c4d2-0000-4000-8000-%s', lpad(n::text, 12, '0'))::uuid $$;

-- The driver counts the small jobs it submitted and, with a trigger, the ones
-- the workers took: counting the pending ones with count(*) walks every dead
-- index entry a held transaction keeps, which made the driver use most of a
-- core (908 ms a tick) -- a load generator's cost, taken from the workers.
-- Sequences: no row versions of their own.
CREATE SEQUENCE IF NOT EXISTS churn.submitted MINVALUE 0;
CREATE SEQUENCE IF NOT EXISTS churn.taken MINVALUE 0;
CREATE OR REPLACE FUNCTION churn.count_taken() RETURNS trigger LANGUAGE plpgsql
	SECURITY DEFINER SET search_path = pg_catalog AS $$ -- fired by the workers' roles
BEGIN
	PERFORM nextval('churn.taken');
	RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER churn_count_taken AFTER UPDATE OF status ON importer.import_jobs
	FOR EACH ROW WHEN (OLD.status = 'pending' AND NEW.status <> 'pending'
	                   AND (OLD.kind = 'noop' OR OLD.collection = 'tiny'))
	EXECUTE FUNCTION churn.count_taken();
CREATE OR REPLACE FUNCTION churn.pending() RETURNS bigint LANGUAGE sql AS $$
	SELECT (SELECT last_value FROM churn.submitted) - (SELECT last_value FROM churn.taken)
$$;

-- One driver tick: tops the due small jobs up to p_pending and keeps p_long
-- long imports active. Returns the number of small jobs submitted.
CREATE OR REPLACE FUNCTION churn.tick(p_users int, p_pending int, p_long int, p_fresh boolean,
                                      p_changed boolean)
	RETURNS int LANGUAGE plpgsql AS $$
DECLARE
	missing int := p_pending - churn.pending();
	i int;
	tiny bytea := (SELECT data FROM churn.files WHERE name = 'tiny');
BEGIN
	-- noop jobs in one INSERT (what submit_job would insert for them: the
	-- enqueue path is not under study, and one submit_job call per job would
	-- make this driver, not the workers, the bottleneck); tiny CSV files go
	-- through submit_job (the file is stored in chunks, as in production).
	missing := greatest(missing, 0);
	INSERT INTO importer.import_jobs (user_id, kind, payload)
	SELECT churn.user_uuid(1 + (random() * (p_users - 1))::int), 'noop', '{}'
	FROM generate_series(1, missing - missing * 3 / 10);
	FOR i IN 1 .. missing * 3 / 10 LOOP
		PERFORM importer.submit_job('csv', CASE WHEN p_fresh THEN convert_to(format(
				E'id,name,amount\n%1$s-1,alpha,10\n%1$s-2,beta,20\n%1$s-3,gamma,30\n',
				gen_random_uuid()), 'UTF8') ELSE tiny END,
			jsonb_build_object('user_id', churn.user_uuid(1 + (random() * (p_users - 1))::int),
			                   'collection', 'tiny', 'file_name', 'tiny.csv'));
	END LOOP;
	PERFORM setval('churn.submitted', (SELECT last_value FROM churn.submitted) + missing);

	FOR i IN 1 .. p_long LOOP
		IF NOT EXISTS (SELECT 1 FROM importer.import_jobs
		               WHERE user_id = churn.user_uuid(p_users + i)
		                 AND status IN ('pending', 'processing', 'paused')) THEN
			-- changed: the file the user's records do not hold now
			-- (long_b differs from long in every record's note)
			PERFORM importer.submit_job('csv', (SELECT data FROM churn.files WHERE name =
				CASE WHEN p_changed AND (SELECT r.data->>'note' FROM importer.records r
				                         WHERE r.user_id = churn.user_uuid(p_users + i)
				                           AND r.collection = 'long' AND r.record_key = '1')
				                        LIKE 'note %' THEN 'long_b' ELSE 'long' END),
				jsonb_build_object('user_id', churn.user_uuid(p_users + i),
				                   'collection', 'long', 'file_name', 'long.csv'));
		END IF;
	END LOOP;
	RETURN missing;
END
$$;

-- Retention, compressed: deletes jobs finished more than p_retain seconds ago
-- (same statement shape as importer.purge_expired; the driver calls it every
-- CHURN_PURGE_SECONDS, as the workers' housekeeping prunes about once a
-- minute). A deadlock with a worker's batch is reported, not fatal: the
-- driver must keep the load going (sql/0009 orders the locks so that there
-- are none; a WARNING in the output says otherwise).
CREATE OR REPLACE FUNCTION churn.retain(p_retain int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		DELETE FROM importer.import_jobs t
		WHERE t.id IN (
			SELECT x.id FROM importer.import_jobs x
			WHERE x.status IN ('completed', 'failed', 'cancelled')
			  AND x.completed_at < now() - make_interval(secs => p_retain)
			LIMIT 20000
			FOR UPDATE SKIP LOCKED);
	EXCEPTION WHEN deadlock_detected THEN
		RAISE WARNING 'churn: retention DELETE deadlocked: %', SQLERRM;
	END;
END
$$;
EOSQL
psql_admin <<EOSQL
\\set long \`cat '$TMP/long.csv'\`
\\set long_b \`cat '$TMP/long_b.csv'\`
INSERT INTO churn.files VALUES
	('tiny', convert_to(E'id,name,amount\n1,alpha,10\n2,beta,20\n3,gamma,30\n', 'UTF8')),
	('long', convert_to(:'long', 'UTF8')),
	('long_b', convert_to(:'long_b', 'UTF8'))
ON CONFLICT (name) DO UPDATE SET data = excluded.data;
EOSQL
rm -f "$TMP/long.csv" "$TMP/long_b.csv"

# CPU used so far by the cluster (the postmaster, its children, and -- in the
# postmaster's cutime/cstime -- the children it has reaped: backends of
# finished sessions, autovacuum workers) and the workers, in clock ticks.
# Throughput per CPU second is what the machine's load does not change: the
# helpers' other processes take CPU away, but not per job.
work_cpu_ticks() {
	local pm p t=0 f a
	pm=$(postmaster_pid)
	for p in "$pm" $(pgrep -P "$pm") "${WORKER_PIDS[@]}"; do
		f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		# After "(comm) ": state first; utime, stime, cutime, cstime 12th..15th.
		read -r -a a <<<"${f##*) }"
		t=$((t + a[11] + a[12]))
		[ "$p" != "$pm" ] || t=$((t + a[13] + a[14]))
	done
	echo "$t"
}

# sample SINCE: one line, tab-separated. Jobs finished since SINCE (epoch
# seconds, the previous sample's t) by completed_at -- the driver prunes them
# only CHURN_RETAIN_SECONDS later; the other counters are cumulative
# (churn_report.py takes their deltas).
SAMPLE_COLUMNS="t load1 cpu_ticks pending noop_done tiny_done long_done records_done records_written claim_calls claim_ms claim_blks noops_calls noops_ms noops_blks xmin_age jobs_upd jobs_hot_upd"
TABLES="import_jobs import_logs import_errors import_file_chunks records"
for tb in $TABLES; do SAMPLE_COLUMNS="$SAMPLE_COLUMNS ${tb}_dead ${tb}_live ${tb}_bytes"; done
sample() {
	local tb cols=""
	for tb in $TABLES; do
		cols="$cols, (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'importer.$tb'::regclass),
		       (SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = 'importer.$tb'::regclass),
		       pg_total_relation_size('importer.$tb')"
	done
	psql_admin -F $'\t' <<-EOSQL
		SELECT round(extract(epoch FROM clock_timestamp())::numeric, 3), $(load1), $(work_cpu_ticks),
		       churn.pending(),
		       count(*) FILTER (WHERE j.kind = 'noop'),
		       count(*) FILTER (WHERE j.kind = 'csv' AND j.collection = 'tiny'),
		       count(*) FILTER (WHERE j.collection = 'long'),
		       coalesce(sum(j.processed_items) FILTER (WHERE j.kind = 'csv'), 0),
		       (SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables WHERE relid = 'importer.records'::regclass),
		       (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%importer.claim_job(%'),
		       (SELECT round(coalesce(sum(total_exec_time), 0)::numeric, 3) FROM pg_stat_statements WHERE query LIKE '%importer.claim_job(%'),
		       (SELECT coalesce(sum(shared_blks_hit + shared_blks_read), 0) FROM pg_stat_statements WHERE query LIKE '%importer.claim_job(%'),
		       (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%importer.complete_noops(%'),
		       (SELECT round(coalesce(sum(total_exec_time), 0)::numeric, 3) FROM pg_stat_statements WHERE query LIKE '%importer.complete_noops(%'),
		       (SELECT coalesce(sum(shared_blks_hit + shared_blks_read), 0) FROM pg_stat_statements WHERE query LIKE '%importer.complete_noops(%'),
		       (SELECT coalesce(max(age(backend_xmin)), 0) FROM pg_stat_activity WHERE datname = current_database()),
		       (SELECT n_tup_upd FROM pg_stat_user_tables WHERE relid = 'importer.import_jobs'::regclass),
		       (SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'importer.import_jobs'::regclass)
		       $cols
		FROM importer.import_jobs j
		WHERE j.status = 'completed' AND j.completed_at >= to_timestamp($1)
		  AND j.completed_at < clock_timestamp()
	EOSQL
}

# statements_snapshot NAME TAG: every top-level statement's cumulative calls,
# execution time and shared buffers so far (pg_stat_statements: a function
# call includes the statements it runs) into OUT/NAME.statements.TAG.tsv; churn_report.py subtracts one
# phase's from the next's to show where the server's time went in each.
statements_snapshot() {
	psql_admin -F $'\t' -c "
		SELECT queryid, calls, round(total_exec_time::numeric, 1),
		       shared_blks_hit + shared_blks_read,
		       left(regexp_replace(query, '\s+', ' ', 'g'), 90)
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database
		                                       WHERE datname = current_database())" \
		>"$OUT/$1.statements.$2.tsv"
}

# The held transaction: a psql session fed through a FIFO, left idle inside it.
hold_begin() {
	mkfifo "$TMP/hold.fifo"
	psql -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" <"$TMP/hold.fifo" >"$TMP/hold.log" 2>&1 &
	HOLD_PID=$!
	BENCH_PIDS+=("$HOLD_PID")
	exec 7>"$TMP/hold.fifo"
	printf 'BEGIN ISOLATION LEVEL REPEATABLE READ;\nSELECT count(*) FROM importer.import_jobs;\n' >&7
}
hold_end() {
	printf 'COMMIT;\n' >&7
	exec 7>&-
	wait "$HOLD_PID" || bench_die "the held session failed: $(cat "$TMP/hold.log")"
	HOLD_PID=
	rm -f "$TMP/hold.fifo"
}

reset_tables() {
	psql_admin <<-'EOSQL' >/dev/null
		SET client_min_messages = warning;
		TRUNCATE importer.import_jobs, importer.import_logs, importer.import_errors,
		         importer.import_files, importer.import_file_chunks, importer.records,
		         importer.replace_staging, importer.notifications;
		SELECT setval('churn.submitted', 0), setval('churn.taken', 0);
		SELECT pg_stat_statements_reset();
		SELECT pg_stat_reset();
		CHECKPOINT;
	EOSQL
}

# run_one NAME: one run of MINUTES; samples into OUT/NAME.samples.tsv.
run_one() {
	local name=$1 file=$OUT/$1.samples.tsv i total next hold_from hold_to held=0
	total=$((MINUTES * 60))
	hold_from=$((total / 3))
	hold_to=$((2 * total / 3))
	reset_tables
	echo "$SAMPLE_COLUMNS phase" | tr ' ' '\t' >"$file"
	WORKER_PIDS=()
	for ((i = 1; i <= WORKERS; i++)); do
		start_worker "$name-worker-$i"
		WORKER_PIDS+=("$LAST_PID")
	done
	psql_admin -c "SELECT churn.tick($USERS, $PENDING, $LONG, $FRESH, $CHANGED)" >/dev/null
	local t0=$SECONDS phase=start line since last_phase=start purged=0
	since=$(psql_admin -c "SELECT extract(epoch FROM clock_timestamp())")
	next=0
	bench_say "$name: $MINUTES min, $WORKERS workers, $PENDING small jobs due, $LONG long imports of $LONG_ROWS rows"
	while :; do
		local el=$((SECONDS - t0))
		if [ "$name" = held ] && [ "$held" = 0 ] && [ "$el" -ge "$hold_from" ]; then
			hold_begin
			held=1
			bench_say "$name: transaction held open (psql pid $HOLD_PID)"
		fi
		if [ "$held" = 1 ] && [ "$el" -ge "$hold_to" ]; then
			hold_end
			held=2
			bench_say "$name: held transaction committed"
		fi
		if [ "$el" -lt "$hold_from" ]; then phase=start; elif [ "$el" -lt "$hold_to" ]; then phase=middle; else phase=end; fi
		if [ "$phase" != "$last_phase" ]; then
			statements_snapshot "$name" "$last_phase"
			last_phase=$phase
		fi
		if [ "$el" -ge "$next" ]; then
			line=$(sample "$since")
			since=${line%%$'\t'*}
			printf '%s\t%s\n' "$line" "$phase" >>"$file"
			bench_say "$name: $(tail -n 1 "$file" | awk -F'\t' '{ printf "t+%ds pending %s noop %s tiny %s long %s records %s xmin_age %s load %s", '"$el"', $4, $5, $6, $7, $8, $16, $2 }')"
			[ "$el" -lt "$total" ] || break
			next=$((next + INTERVAL))
		fi
		for p in "${WORKER_PIDS[@]}"; do
			kill -0 "$p" 2>/dev/null || bench_die "worker $p exited"
		done
		psql_admin -c "SELECT churn.tick($USERS, $PENDING, $LONG, $FRESH, $CHANGED)" >/dev/null
		if [ "$el" -ge "$purged" ]; then
			psql_admin -c "SELECT churn.retain($RETAIN)" >/dev/null
			purged=$((el + PURGE))
		fi
		sleep 0.2 # the driver's pace: top the queue up about every 0.2 s
	done
	statements_snapshot "$name" end
	[ "$held" != 1 ] || hold_end
	for p in "${WORKER_PIDS[@]}"; do stop_pid "$p"; done
	if grep -h '"level":"error"' "$TMP/$name"-worker-*.log | head -n 5 | grep .; then
		bench_say "$name: the workers logged errors (above)"
	fi
}

# claim_stats: calls and shared buffers so far of claim_job and complete_noops.
claim_stats() {
	psql_admin -F ' ' -c "
		SELECT coalesce(sum(calls) FILTER (WHERE query LIKE '%importer.claim_job(%'), 0),
		       coalesce(sum(shared_blks_hit + shared_blks_read)
		                FILTER (WHERE query LIKE '%importer.claim_job(%'), 0),
		       coalesce(sum(calls) FILTER (WHERE query LIKE '%importer.complete_noops(%'), 0),
		       coalesce(sum(shared_blks_hit + shared_blks_read)
		                FILTER (WHERE query LIKE '%importer.complete_noops(%'), 0)
		FROM pg_stat_statements"
}

# run_claim: the claim statements over the dead entries a held transaction
# keeps (see the top of this file); writes OUT/claim.tsv.
run_claim() {
	local file=$OUT/claim.tsv round c0 b0 n0 m0 c1 b1 n1 m1
	reset_tables
	# The driver refills by count(*) here; keep the trigger's buffers out of
	# the claim statements' figures.
	psql_admin -c "ALTER TABLE importer.import_jobs DISABLE TRIGGER churn_count_taken" >/dev/null
	psql_admin <<-'EOSQL' >/dev/null
		CREATE OR REPLACE FUNCTION churn.refill(p_users int) RETURNS void LANGUAGE sql AS $$
			INSERT INTO importer.import_jobs (user_id, kind, payload)
			SELECT churn.user_uuid((1 + g % p_users)::int), k.kind, '{}'
			FROM (VALUES ('noop', 700), ('csv', 300)) AS k(kind, want),
			     generate_series(1, k.want - (SELECT count(*) FROM importer.import_jobs
			                                  WHERE status = 'pending' AND kind = k.kind)) AS g
		$$;
	EOSQL
	psql_admin -c "SELECT churn.refill($USERS)" >/dev/null
	hold_begin
	printf 'round\tjobs_done\tclaim_job_buffers\tcomplete_noops_buffers\timport_jobs_dead\n' >"$file"
	read -r c0 b0 n0 m0 < <(claim_stats)
	for ((round = 1; round <= CLAIM_ROUNDS; round++)); do
		psql_admin -c "SELECT importer.complete_noops('churn', 200)" \
			-c "SELECT id FROM importer.claim_job('churn', '{csv}')" \
			-c "UPDATE importer.import_jobs SET status = 'completed', phase = 'done'
			    WHERE status = 'processing' AND worker_id = 'churn'" \
			-c "SELECT churn.refill($USERS)" >/dev/null
		((round % 25 == 0)) || continue
		read -r c1 b1 n1 m1 < <(claim_stats)
		printf '%s\t%s\t%s\t%s\t%s\n' "$round" \
			"$(psql_admin -c "SELECT count(*) FROM importer.import_jobs WHERE status = 'completed'")" \
			"$(((b1 - b0) / (c1 - c0)))" "$(((m1 - m0) / (n1 - n0)))" \
			"$(psql_admin -c "SELECT n_dead_tup FROM pg_stat_user_tables
			                  WHERE relid = 'importer.import_jobs'::regclass")" >>"$file"
		bench_say "claim: $(tail -n 1 "$file")"
		c0=$c1 b0=$b1 n0=$n1 m0=$m1
	done
	hold_end
	psql_admin -c "ALTER TABLE importer.import_jobs ENABLE TRIGGER churn_count_taken" >/dev/null
}

report=()
for r in $RUN_NAMES; do
	if [ "$r" = claim ]; then
		run_claim
	else
		run_one "$r"
		report+=("$r")
	fi
done
[ "${#report[@]}" -eq 0 ] || python3 "$ROOT/tests/soak/churn_report.py" "$OUT" "${report[@]}"
[ ! -f "$OUT/claim.tsv" ] || [[ " $RUN_NAMES " != *" claim "* ]] || column -t "$OUT/claim.tsv"
