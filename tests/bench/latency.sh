#!/usr/bin/env bash
# tests/bench/latency.sh -- with an idle fleet (2 workers waiting on LISTEN,
# the default fleet of deploy/local/run.sh):
#   - enqueue -> claimed: `started_at - created_at` of no-op jobs, both by
#     the database clock (created_at is the submitting transaction's start,
#     so the submit itself counts against us);
#   - worker commit -> SSE: the gap between a job's `completed_at` and the
#     moment a client on GET /api/events reads that `event: job`
#     (sse_latency.py, same host and clock; completed_at is the start of the
#     worker's transaction, so its statement counts against us too).
# Jobs are submitted one at a time by one psql session (a DO block that
# commits each submit), 10 ms apart, so the fleet is idle when each arrives.
#
# Environment: BENCH_SCALE (small | full), BENCH_RUNS (3), BENCH_LATENCY_JOBS
# (full: 1,000; small: 200).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_init latency
if [ "$SCALE" = full ]; then JOBS=${BENCH_LATENCY_JOBS:-1000}; else JOBS=${BENCH_LATENCY_JOBS:-200}; fi
USER_ID=3e5d8c1a-7b2f-4a90-b6c3-d4e5f6a7b8c9

bench_cluster
start_gateway
TOKEN=$(jwt "$USER_ID")
start_worker w1
start_worker w2

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
	psql_admin <<-EOF >/dev/null
		DO \$\$
		BEGIN
			FOR i IN 1..$JOBS LOOP
				-- The pause ends its own transaction, so that the submit's
				-- transaction (whose start is created_at) starts afresh.
				PERFORM pg_sleep(0.01);
				COMMIT;
				PERFORM importer.submit_job('noop', NULL::uuid, '{"user_id":"$USER_ID"}');
				COMMIT;
			END LOOP;
		END
		\$\$;
	EOF
	wait "$sse_pid" || bench_die "SSE client failed: $(cat "$TMP/sse.log")"
	n=$(psql_admin -c "SELECT count(*) FROM importer.import_jobs WHERE kind = 'noop' AND status = 'completed'")
	[ "$n" = "$JOBS" ] || bench_die "$n of $JOBS jobs completed"
	psql_admin -c "SELECT round(extract(epoch FROM started_at - created_at)::numeric * 1000, 3)
	               FROM importer.import_jobs WHERE kind = 'noop'" >"$TMP/claim.txt"
	record "enqueue → claimed p50" "$(percentile "$TMP/claim.txt" 50)" ms
	record "enqueue → claimed p99" "$(percentile "$TMP/claim.txt" 99)" ms
	record "worker commit → SSE client p50" "$(percentile "$TMP/sse.txt" 50)" ms
	record "worker commit → SSE client p99" "$(percentile "$TMP/sse.txt" 99)" ms
done

{
	printf '## 4. Latency\n\n'
	printf '%s no-op jobs per run, submitted one at a time 10 ms apart by one psql session\n' "$JOBS"
	printf '(a `DO` block committing each `importer.submit_job`), 2 idle workers, one gateway\n'
	printf 'with one SSE client on `GET /api/events`. Enqueue → claimed is `started_at -\n'
	printf 'created_at` (database clock; it includes the submitting transaction). Commit →\n'
	printf 'SSE is the time the client reads the `completed` event minus `completed_at` (the\n'
	printf 'worker transaction'"'"'s start). Per-run percentiles; the table shows their median.\n\n'
	python3 "$BENCH_LIB_DIR/summarize.py" "$RAW" --bench latency --headline "$OUT/headline.tsv" \
		--target "enqueue → claimed p50 (ms)|enqueue → claimed p50||<=|1.5" \
		--target "enqueue → claimed p99 (ms)|enqueue → claimed p99||<=|4" \
		--target "commit → SSE p50 (ms)|worker commit → SSE client p50||<=|2" \
		--target "commit → SSE p99 (ms)|worker commit → SSE client p99||<=|20"
	printf '\n'
} >"$OUT/4-latency.md"
bench_say "done: $OUT/4-latency.md"
