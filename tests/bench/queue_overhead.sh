#!/usr/bin/env bash
# tests/bench/queue_overhead.sh -- jobs/s of no-op jobs through 1, 2, 4 and 8
# worker processes: importer-worker next to Graphile Worker (default
# configuration, and tuned as its performance page says: local queue of 500,
# batched completion) and pg-boss (batch fetch of 1,000), on the same cluster in
# the same run, same number of processes, each running one job at a time.
#
# Each measurement: start the N processes, wait until all are ready, enqueue
# all jobs in one transaction, and time from its commit until no job is left
# (queue_ref.js polls every 20 ms, the same way for all three systems).
#
# Environment: BENCH_SCALE (small | full), BENCH_RUNS (3), BENCH_NOOP_JOBS
# (full: 20,000; small: 2,000), BENCH_QUEUE_PROCS ("1 2 4 8"; small: "1 4"),
# BENCH_NPM_DIR (where to npm-install the reference queues; default a
# temporary directory).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_init queue_overhead
if [ "$SCALE" = full ]; then
	JOBS=${BENCH_NOOP_JOBS:-20000}
	PROCS=${BENCH_QUEUE_PROCS:-1 2 4 8}
else
	JOBS=${BENCH_NOOP_JOBS:-2000}
	PROCS=${BENCH_QUEUE_PROCS:-1 4}
fi
GRAPHILE_VERSION=0.17.3
PGBOSS_VERSION=10.4.2
USER_ID=9a3f0d7e-2b4c-4e61-8f0a-1c2d3e4f5a6b
for tool in node npm; do command -v "$tool" >/dev/null 2>&1 || bench_die "$tool not found"; done

bench_npm_install "${BENCH_NPM_DIR:-$TMP/npm}" "graphile-worker@$GRAPHILE_VERSION" "pg-boss@$PGBOSS_VERSION"
QREF=$BENCH_LIB_DIR/queue_ref.js

bench_cluster
# The reference queues get their own database on the same cluster.
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$SUPER_URL" -c 'DROP DATABASE IF EXISTS bench_queues' \
	-c 'CREATE DATABASE bench_queues' >/dev/null
REF_URL=${SUPER_URL%/postgres}/bench_queues
node "$QREF" setup "$REF_URL" >"$TMP/setup.log" 2>&1 || bench_die "setup: $(tail -n 5 "$TMP/setup.log")"

PROC_PIDS=()
stop_procs() {
	local p
	for p in "${PROC_PIDS[@]}"; do stop_pid "$p"; done
	PROC_PIDS=()
}

# wait_ready N SYSTEM: all N processes are looking for jobs.
wait_ready() {
	local n=$1 sys=$2 i got
	for ((i = 0; i < 600; i++)); do
		if [ "$sys" = importer ]; then
			# Each worker's LISTEN connection has run its LISTEN.
			got=$(psql_admin -c "SELECT count(*) FROM pg_stat_activity
			                     WHERE usename = 'bench_worker' AND query LIKE 'LISTEN%'")
		else
			got=$(cat "$TMP"/q-*.out 2>/dev/null | grep -c '^READY$' || true)
		fi
		[ "$got" -lt "$n" ] || return 0
		sleep 0.05
	done
	bench_die "$sys: only $got of $n processes ready after 30 s"
}

# measure SYSTEM CONFIG N: one timed run; sets M_RATE (jobs/s).
measure() {
	local sys=$1 conf=$2 n=$3 i secs url=$REF_URL
	rm -f "$TMP"/q-*.out
	for ((i = 1; i <= n; i++)); do
		if [ "$sys" = importer ]; then
			start_worker "q-$i"
		else
			node "$QREF" worker "$REF_URL" "$conf" >"$TMP/q-$i.out" 2>"$TMP/q-$i.log" &
			LAST_PID=$!
			BENCH_PIDS+=("$LAST_PID")
		fi
		PROC_PIDS+=("$LAST_PID")
	done
	wait_ready "$n" "$sys"
	[ "$sys" != importer ] || url=$ADMIN_URL
	secs=$(node "$QREF" run "$url" "$sys" "$JOBS" "$USER_ID") || bench_die "$conf run failed"
	stop_procs
	M_RATE=$(echo "scale=0; $JOBS / $secs" | bc -l)
}

cleanup_queues() {
	local i
	psql_admin -c "DELETE FROM importer.import_jobs WHERE kind = 'noop'" >/dev/null
	psql -X -q -v ON_ERROR_STOP=1 "$REF_URL" -c "DELETE FROM pgboss.job" \
		-c "DELETE FROM graphile_worker._private_jobs" -c 'VACUUM ANALYZE' >/dev/null
	psql_admin -c 'VACUUM ANALYZE importer.import_jobs' -c 'CHECKPOINT' >/dev/null
	# Each system's measurement starts on a cluster at rest: no autovacuum
	# left over from the previous one (pg-boss archives every job it
	# completes, so its tables keep growing) taking one of the two cores.
	for ((i = 0; i < 600; i++)); do
		[ "$(psql_admin -c "SELECT count(*) FROM pg_stat_activity
		                    WHERE backend_type = 'autovacuum worker'")" != 0 ] || return 0
		sleep 0.1
	done
	bench_say "autovacuum still running after 60 s; measuring anyway"
}

for ((run = 1; run <= RUNS; run++)); do
	for n in $PROCS; do
		bench_say "run $run of $RUNS, $n processes"
		for conf in importer graphile-default graphile-tuned pgboss; do
			case $conf in
			importer) sys=importer label="importer-worker" ;;
			graphile-*) sys=graphile label="Graphile Worker ${conf#graphile-}" ;;
			pgboss) sys=pgboss label="pg-boss (batch 1000)" ;;
			esac
			cleanup_queues
			measure "$sys" "$conf" "$n"
			record "$label, $n processes" "$M_RATE" jobs/s
		done
	done
done
cleanup_queues

headline_n=4
case " $PROCS " in *" 4 "*) ;; *) headline_n=${PROCS##* } ;; esac
{
	printf '## 3. Queue overhead\n\n'
	printf '%s no-op jobs enqueued in one transaction, timed from its commit until none is left\n' "$JOBS"
	printf '(polled every 20 ms, the same way for every system); N processes, each running one\n'
	printf 'job at a time. Graphile Worker %s (default: `concurrency: 1`; tuned, per its\n' "$GRAPHILE_VERSION"
	printf 'performance page: `localQueue: { size: 500 }`, `completeJobBatchDelay: 0`,\n'
	printf '`failJobBatchDelay: 0`) and pg-boss %s (`work` with `batchSize: 1000`, `pollingIntervalSeconds: 0.5`, its minimum) run in\n' "$PGBOSS_VERSION"
	printf 'their own database on the same cluster. importer-worker claims and completes\n'
	printf 'no-op jobs in batches (`importer.complete_noops`). Before every measurement the\n'
	printf 'queues are emptied and vacuumed, a `CHECKPOINT` runs, and the script waits until\n'
	printf 'no autovacuum worker is running (the systems take turns on the same cluster).\n\n'
	python3 "$BENCH_LIB_DIR/summarize.py" "$RAW" --bench queue --headline "$OUT/headline.tsv" \
		--target "queue, $headline_n workers ÷ Graphile default|importer-worker, $headline_n processes|Graphile Worker default, $headline_n processes|>=|2.0" \
		--target "queue, $headline_n workers ÷ Graphile tuned|importer-worker, $headline_n processes|Graphile Worker tuned, $headline_n processes|>=|1.0" \
		--target "queue, $headline_n workers ÷ pg-boss batch|importer-worker, $headline_n processes|pg-boss (batch 1000), $headline_n processes|>=|1.0"
	printf '\n'
} >"$OUT/3-queue_overhead.md"
bench_say "done: $OUT/3-queue_overhead.md"
