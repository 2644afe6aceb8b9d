#!/usr/bin/env bash
# tests/bench/latency.sh -- with an idle fleet (2 workers waiting on LISTEN,
# the default fleet of deploy/local/run.sh):
#   - enqueue -> claimed: `started_at - created_at` of no-op jobs, both by
#     the database clock (created_at is the submitting transaction's start,
#     so the submit itself counts against us);
#   - worker commit -> SSE: the gap between the commit of the worker
#     transaction that completed a job (pg_xact_commit_timestamp(xmin) of the
#     row, track_commit_timestamp = on) and the moment a client on
#     GET /api/events reads that `event: job` (sse_latency.py, same host and
#     clock); also, stricter, from `completed_at` (the start of the worker's
#     transaction, so its statements count against us too).
# Jobs are submitted one at a time by one psql session (a DO block that
# commits each submit), 10 ms apart, so the fleet is idle when each arrives.
# Side by side, in every run: Graphile Worker (default configuration, two
# processes of concurrency 1) in its own database on the same cluster, fed by
# the same loop (graphile_worker.add_job); its `locked_at - created_at` is the
# same measure (both are now() of the claiming and of the adding transaction).
#
# Environment: BENCH_SCALE (small | full), BENCH_RUNS (3), BENCH_LATENCY_JOBS
# (full: 1,000; small: 200), BENCH_LATENCY_GRAPHILE (1; 0 leaves Graphile
# Worker out), BENCH_NPM_DIR (as in queue_overhead.sh).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_init latency
if [ "$SCALE" = full ]; then JOBS=${BENCH_LATENCY_JOBS:-1000}; else JOBS=${BENCH_LATENCY_JOBS:-200}; fi
USER_ID=3e5d8c1a-7b2f-4a90-b6c3-d4e5f6a7b8c9
GRAPHILE=${BENCH_LATENCY_GRAPHILE:-1}
GRAPHILE_VERSION=0.17.3 # the version queue_overhead.sh measures

bench_cluster
start_gateway
TOKEN=$(jwt "$USER_ID")
start_worker w1
start_worker w2

# submit_loop URL CALL: the CALL statement JOBS times, 10 ms apart, each in
# its own transaction, from one session. public.bench_hops gets, per call, the
# transaction's start (= created_at), the time the call returned and the time
# its COMMIT returned.
submit_loop() {
	psql -X -q -At -v ON_ERROR_STOP=1 "$1" <<-EOF >/dev/null
		CREATE TABLE IF NOT EXISTS public.bench_hops (
			created timestamptz, submitted timestamptz, committed timestamptz);
		TRUNCATE public.bench_hops;
		DO \$\$
		DECLARE
			created timestamptz;
			submitted timestamptz;
		BEGIN
			FOR i IN 1..$JOBS LOOP
				-- The pause ends its own transaction, so that the submit's
				-- transaction (whose start is created_at) starts afresh.
				PERFORM pg_sleep(0.01);
				COMMIT;
				PERFORM $2;
				created := now();
				submitted := clock_timestamp();
				COMMIT;
				-- in the pause's transaction, not the submit's
				INSERT INTO public.bench_hops VALUES (created, submitted, clock_timestamp());
			END LOOP;
		END
		\$\$;
	EOF
}

# record_hops: where one run's enqueue → claimed went, hop by hop.
record_hops() {
	local hop sql
	for hop in "submit's own work" "submit's COMMIT" "COMMIT returned → claimed"; do
		case $hop in
		"submit's own work") sql="h.submitted - h.created" ;;
		"submit's COMMIT") sql="h.committed - h.submitted" ;;
		*) sql="j.started_at - h.committed" ;;
		esac
		psql_admin -c "SELECT round(extract(epoch FROM $sql)::numeric * 1000, 3)
		               FROM public.bench_hops h
		               JOIN importer.import_jobs j ON j.created_at = h.created AND j.kind = 'noop'" \
			>"$TMP/hop.txt"
		record "hop: $hop p50" "$(percentile "$TMP/hop.txt" 50)" ms
		record "hop: $hop p99" "$(percentile "$TMP/hop.txt" 99)" ms
	done
}

[ "$(psql_admin -c 'SHOW track_commit_timestamp')" = on ] ||
	bench_die "track_commit_timestamp is off (BENCH_PG_SETTINGS turns it on): commit → SSE needs it"

# record_sse: commit → SSE of the run, from the lines of sse_latency.py (job
# id, event id, time read). The start is the commit of the transaction that
# wrote the completed row version: pg_xact_commit_timestamp(xmin) of the row,
# checked to be the version the client got (its seq is the event's id, and
# every change but a heartbeat takes a new seq; no heartbeat follows a
# completion). Beside it, the stricter figure from completed_at (now() of the
# worker's transaction: its statements and its commit count against us).
record_sse() {
	local bad
	psql_admin -c 'CREATE TABLE IF NOT EXISTS public.bench_sse (job_id uuid, seq bigint, read_at float8)' \
		-c 'TRUNCATE public.bench_sse' -c "\\copy public.bench_sse FROM '$TMP/sse.txt'" >/dev/null
	bad=$(psql_admin -c "SELECT count(*) FROM public.bench_sse s
	                     LEFT JOIN importer.import_jobs j ON j.id = s.job_id
	                     WHERE j.seq IS DISTINCT FROM s.seq OR pg_xact_commit_timestamp(j.xmin) IS NULL
	                        OR pg_xact_commit_timestamp(j.xmin) < j.completed_at")
	[ "$bad" = 0 ] || bench_die "$bad completed jobs whose row changed after the event (or have no commit timestamp)"
	psql_admin -c "SELECT round(((s.read_at - extract(epoch FROM pg_xact_commit_timestamp(j.xmin))) * 1000)::numeric, 3)
	               FROM public.bench_sse s JOIN importer.import_jobs j ON j.id = s.job_id" >"$TMP/sse-commit.txt"
	psql_admin -c "SELECT round(((s.read_at - extract(epoch FROM j.completed_at)) * 1000)::numeric, 3)
	               FROM public.bench_sse s JOIN importer.import_jobs j ON j.id = s.job_id" >"$TMP/sse-start.txt"
	psql_admin -c "SELECT round(extract(epoch FROM pg_xact_commit_timestamp(j.xmin) - j.completed_at)::numeric * 1000, 3)
	               FROM public.bench_sse s JOIN importer.import_jobs j ON j.id = s.job_id" >"$TMP/sse-hop.txt"
	record "worker commit → SSE client p50" "$(percentile "$TMP/sse-commit.txt" 50)" ms
	record "worker commit → SSE client p99" "$(percentile "$TMP/sse-commit.txt" 99)" ms
	record "worker transaction start → SSE client p50" "$(percentile "$TMP/sse-start.txt" 50)" ms
	record "worker transaction start → SSE client p99" "$(percentile "$TMP/sse-start.txt" 99)" ms
	record "hop: worker transaction start → its commit p50" "$(percentile "$TMP/sse-hop.txt" 50)" ms
	record "hop: worker transaction start → its commit p99" "$(percentile "$TMP/sse-hop.txt" 99)" ms
}

if [ "$GRAPHILE" = 1 ]; then
	for tool in node npm; do
		command -v "$tool" >/dev/null 2>&1 ||
			bench_die "$tool not found (BENCH_LATENCY_GRAPHILE=0 leaves Graphile Worker out)"
	done
	bench_npm_install "${BENCH_NPM_DIR:-$TMP/npm}" "graphile-worker@$GRAPHILE_VERSION"
	PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$SUPER_URL" \
		-c 'DROP DATABASE IF EXISTS bench_latency_graphile' \
		-c 'CREATE DATABASE bench_latency_graphile' >/dev/null
	GRAPHILE_URL=${SUPER_URL%/postgres}/bench_latency_graphile
	node "$BENCH_LIB_DIR/queue_ref.js" setup "$GRAPHILE_URL" graphile >"$TMP/graphile-setup.log" 2>&1 ||
		bench_die "Graphile Worker setup: $(tail -n 5 "$TMP/graphile-setup.log")"
	# Graphile Worker deletes a job when it is done: keep created_at and
	# locked_at of every job as it is locked.
	psql -X -q -v ON_ERROR_STOP=1 "$GRAPHILE_URL" <<-'EOF' >/dev/null
		CREATE TABLE public.claimed (created_at timestamptz, locked_at timestamptz);
		CREATE FUNCTION public.keep_claimed() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO public.claimed VALUES (NEW.created_at, NEW.locked_at);
			RETURN NULL;
		END
		$$;
		CREATE TRIGGER keep_claimed AFTER UPDATE OF locked_at ON graphile_worker._private_jobs
			FOR EACH ROW WHEN (OLD.locked_at IS NULL AND NEW.locked_at IS NOT NULL)
			EXECUTE FUNCTION public.keep_claimed();
	EOF
	for i in 1 2; do
		node "$BENCH_LIB_DIR/queue_ref.js" worker "$GRAPHILE_URL" graphile-default \
			>"$TMP/graphile-$i.out" 2>"$TMP/graphile-$i.log" &
		BENCH_PIDS+=("$!")
	done
	for ((i = 0; i < 600; i++)); do
		[ "$(cat "$TMP"/graphile-*.out | grep -c '^READY$' || true)" -lt 2 ] || break
		sleep 0.05
	done
	[ "$(cat "$TMP"/graphile-*.out | grep -c '^READY$' || true)" = 2 ] ||
		bench_die "Graphile Worker not ready after 30 s: $(tail -n 5 "$TMP"/graphile-*.log)"
fi

# graphile_run: one run of the loop against Graphile Worker, recorded.
graphile_run() {
	local n i
	psql -X -q -v ON_ERROR_STOP=1 "$GRAPHILE_URL" -c 'TRUNCATE public.claimed' \
		-c 'VACUUM ANALYZE graphile_worker._private_jobs' >/dev/null
	submit_loop "$GRAPHILE_URL" "graphile_worker.add_job('bench_noop', '{}'::json)"
	for ((i = 0; i < 600; i++)); do
		n=$(psql -X -q -At "$GRAPHILE_URL" -c 'SELECT count(*) FROM public.claimed')
		[ "$n" -lt "$JOBS" ] || break
		sleep 0.1
	done
	[ "$n" = "$JOBS" ] || bench_die "Graphile Worker claimed $n of $JOBS jobs"
	psql -X -q -At "$GRAPHILE_URL" -c "SELECT round(extract(epoch FROM locked_at - created_at)::numeric * 1000, 3)
	                                    FROM public.claimed" >"$TMP/graphile.txt"
	record "Graphile Worker: enqueue → claimed p50" "$(percentile "$TMP/graphile.txt" 50)" ms
	record "Graphile Worker: enqueue → claimed p99" "$(percentile "$TMP/graphile.txt" 99)" ms
}

for ((run = 1; run <= RUNS; run++)); do
	bench_say "run $run of $RUNS: $JOBS jobs"
	psql_admin -c "DELETE FROM importer.import_jobs WHERE kind = 'noop'" -c 'VACUUM ANALYZE importer.import_jobs' >/dev/null
	rm -f "$TMP/ready" "$TMP/sse.txt"
	python3 "$BENCH_LIB_DIR/sse_latency.py" "$HTTP_BASE/api/events" "$TOKEN" "$JOBS" \
		"$TMP/sse.txt" 300 "$TMP/ready" 2>"$TMP/sse.log" &
	sse_pid=$!
	BENCH_PIDS+=("$sse_pid")
	for ((i = 0; i < 300; i++)); do
		[ ! -e "$TMP/ready" ] || break
		sleep 0.05
	done
	[ -e "$TMP/ready" ] || bench_die "SSE client not connected: $(cat "$TMP/sse.log")"
	submit_loop "$ADMIN_URL" "importer.submit_job('noop', NULL::uuid, '{\"user_id\":\"$USER_ID\"}')"
	wait "$sse_pid" || bench_die "SSE client failed: $(cat "$TMP/sse.log")"
	n=$(psql_admin -c "SELECT count(*) FROM importer.import_jobs WHERE kind = 'noop' AND status = 'completed'")
	[ "$n" = "$JOBS" ] || bench_die "$n of $JOBS jobs completed"
	psql_admin -c "SELECT round(extract(epoch FROM started_at - created_at)::numeric * 1000, 3)
	               FROM importer.import_jobs WHERE kind = 'noop'" >"$TMP/claim.txt"
	record "enqueue → claimed p50" "$(percentile "$TMP/claim.txt" 50)" ms
	record "enqueue → claimed p99" "$(percentile "$TMP/claim.txt" 99)" ms
	record_sse
	record_hops
	[ "$GRAPHILE" != 1 ] || graphile_run
done

{
	printf '## 4. Latency\n\n'
	printf '%s no-op jobs per run, submitted one at a time 10 ms apart by one psql session\n' "$JOBS"
	printf '(a `DO` block committing each `importer.submit_job`), 2 idle workers, one gateway\n'
	printf 'with one SSE client on `GET /api/events`. Enqueue → claimed is `started_at -\n'
	printf 'created_at` (database clock; it includes the submitting transaction). Commit →\n'
	printf 'SSE is the time the client reads the `completed` event minus the commit time of\n'
	printf 'the worker transaction that wrote the completed row (`pg_xact_commit_timestamp(xmin)`,\n'
	printf '`track_commit_timestamp = on`); the stricter "worker transaction start → SSE"\n'
	printf 'starts at `completed_at` (that transaction'"'"'s `now()`), and its hop "worker\n'
	printf 'transaction start → its commit" is the difference of the two starts.\n'
	printf 'Per-run percentiles; the table shows their median.\n'
	printf 'The hops split enqueue → claimed by the submitting session'"'"'s clock: its own work\n'
	printf '(transaction start to the call'"'"'s return), its `COMMIT` (WAL flush, then the NOTIFY\n'
	printf 'signals), and from `COMMIT` returning to the claiming statement'"'"'s start (may be\n'
	printf 'negative: the worker can start before the submitting session resumes).\n'
	if [ "$GRAPHILE" = 1 ]; then
		printf 'Graphile Worker %s (default configuration, two processes of concurrency 1) runs\n' "$GRAPHILE_VERSION"
		printf 'in its own database on the same cluster, after each importer run, fed by the same\n'
		printf 'loop (`graphile_worker.add_job`); its figure is `locked_at - created_at`.\n'
	fi
	printf '\n'
	python3 "$BENCH_LIB_DIR/summarize.py" "$RAW" --bench latency --headline "$OUT/headline.tsv" \
		--target "enqueue → claimed p50 (ms)|enqueue → claimed p50||<=|1.5" \
		--target "enqueue → claimed p99 (ms)|enqueue → claimed p99||<=|4" \
		--target "commit → SSE p50 (ms)|worker commit → SSE client p50||<=|2" \
		--target "commit → SSE p99 (ms)|worker commit → SSE client p99||<=|20" \
		--target "enqueue → claimed p50 ÷ Graphile Worker|enqueue → claimed p50|Graphile Worker: enqueue → claimed p50||" \
		--target "enqueue → claimed p99 ÷ Graphile Worker|enqueue → claimed p99|Graphile Worker: enqueue → claimed p99||"
	printf '\n'
} >"$OUT/4-latency.md"
bench_say "done: $OUT/4-latency.md"
