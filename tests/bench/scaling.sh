#!/usr/bin/env bash
# tests/bench/scaling.sh -- records/s of 8 concurrent 100k-row csv upsert
# imports (8 users, one job each) with 1, 2, 4 and 8 workers, and where the
# time goes: CPU used by the cluster's processes and by the workers (in
# cores), the machine's busy share, WAL bytes per second, and what the
# workers' database sessions were doing (pg_stat_activity sampled every
# 100 ms by a DO block in the server).
#
# Each run: 8 jobs submitted while no worker runs, then N workers start;
# records/s = 800,000 / (last completed_at - first started_at).
#
# Environment: BENCH_SCALE (small: 8 x 5,000 rows, 1 and 4 workers; full:
# 8 x 100,000 rows, 1 2 4 8 workers), BENCH_RUNS (3), BENCH_SCALING_ROWS,
# BENCH_SCALING_WORKERS.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_init scaling
if [ "$SCALE" = full ]; then
	ROWS=${BENCH_SCALING_ROWS:-100000}
	FLEETS=${BENCH_SCALING_WORKERS:-1 2 4 8}
else
	ROWS=${BENCH_SCALING_ROWS:-5000}
	FLEETS=${BENCH_SCALING_WORKERS:-1 4}
fi
JOBS=8
TOTAL=$((JOBS * ROWS))
HZ=$(getconf CLK_TCK)

bench_cluster
start_gateway
PM=$(postmaster_pid)
gen_csv "$ROWS" "$TMP/scale.csv"
USERS=()
TOKENS=()
for ((j = 0; j < JOBS; j++)); do
	USERS+=("$(printf '5ca1ab1e-0000-4000-8000-%012d' "$j")")
	TOKENS+=("$(jwt "${USERS[$j]}")")
done
psql_admin -c 'CREATE UNLOGGED TABLE IF NOT EXISTS bench_waits (fleet int, what text)' >/dev/null

machine_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat; }
wal_bytes() { psql_admin -c 'SELECT wal_bytes FROM pg_stat_wal'; }

for ((run = 1; run <= RUNS; run++)); do
	for n in $FLEETS; do
		bench_say "run $run of $RUNS: $JOBS x $ROWS rows, $n workers"
		reset_data
		ids=()
		for ((j = 0; j < JOBS; j++)); do
			up=$(upload_file "${USERS[$j]}" "${TOKENS[$j]}" "$TMP/scale.csv")
			ids+=("$(submit_upload "${TOKENS[$j]}" "$up" "kind=csv&collection=scale")")
		done
		psql_admin -c 'TRUNCATE bench_waits' -c CHECKPOINT >/dev/null
		# The sampler ends by itself when no csv job is left (or after 30 min).
		psql_admin >/dev/null 2>"$TMP/sampler.log" <<-EOF &
			DO \$\$
			BEGIN
				FOR i IN 1..18000 LOOP
					PERFORM pg_stat_clear_snapshot();
					INSERT INTO bench_waits
					SELECT $n, CASE
						WHEN a.state = 'active' AND a.wait_event IS NULL THEN 'server: running on CPU'
						WHEN a.state = 'active' THEN 'server: waiting on ' || a.wait_event_type || ':' || a.wait_event
						WHEN a.state = 'idle in transaction' THEN 'worker: in a transaction, between statements'
						ELSE 'worker: between transactions' END
					FROM pg_stat_activity a
					WHERE a.usename = 'bench_worker' AND a.query NOT LIKE 'LISTEN%';
					EXIT WHEN NOT EXISTS (SELECT 1 FROM importer.import_jobs
					                      WHERE kind = 'csv' AND status IN ('pending', 'processing'));
					PERFORM pg_sleep(0.1);
				END LOOP;
			END
			\$\$;
		EOF
		sampler=$!
		BENCH_PIDS+=("$sampler")
		read -r busy0 idle0 < <(machine_busy)
		wal0=$(wal_bytes)
		# shellcheck disable=SC2046
		pg0=$(cpu_ticks $(pgrep -P "$PM"))
		t0=$(date +%s.%N)
		wpids=()
		for ((i = 1; i <= n; i++)); do
			start_worker "scale-$i"
			wpids+=("$LAST_PID")
		done
		for id in "${ids[@]}"; do
			wait_job "$id" 3600
			[ "$JOB_STATUS" = completed ] || bench_die "job $id ended $JOB_STATUS"
		done
		t1=$(date +%s.%N)
		# shellcheck disable=SC2046
		pg1=$(cpu_ticks $(pgrep -P "$PM"))
		wk=$(cpu_ticks "${wpids[@]}")
		wal1=$(wal_bytes)
		read -r busy1 idle1 < <(machine_busy)
		wait "$sampler" || bench_die "sampler failed: $(cat "$TMP/sampler.log")"
		for p in "${wpids[@]}"; do stop_pid "$p"; done
		got=$(psql_admin -c "SELECT count(*) FROM importer.records WHERE collection = 'scale'")
		[ "$got" = "$TOTAL" ] || bench_die "$got records, want $TOTAL"
		span=$(psql_admin -c "SELECT extract(epoch FROM max(completed_at) - min(started_at))
		                      FROM importer.import_jobs WHERE kind = 'csv'")
		wall=$(echo "$t1 - $t0" | bc -l)
		record "$n workers: records/s" "$(echo "scale=0; $TOTAL / $span" | bc -l)" records/s
		record "$n workers: PostgreSQL CPU" "$(echo "scale=2; ($pg1 - $pg0) / $HZ / $wall" | bc -l)" cores
		record "$n workers: worker CPU" "$(echo "scale=2; $wk / $HZ / $wall" | bc -l)" cores
		record "$n workers: machine busy (all processes)" \
			"$(echo "scale=1; 100 * ($busy1 - $busy0) / ($busy1 - $busy0 + $idle1 - $idle0)" | bc -l)" "%"
		record "$n workers: WAL written" "$(echo "scale=1; ($wal1 - $wal0) / 1000000 / $wall" | bc -l)" MB/s
		if [ "$run" = "$RUNS" ]; then
			psql_admin -F $'\t' -c "SELECT what, round(100.0 * count(*) / sum(count(*)) OVER (), 1)
			                        FROM bench_waits GROUP BY what ORDER BY 2 DESC" >"$OUT/raw/scaling-waits-$n.tsv"
		fi
	done
done
reset_data

{
	printf '## 6. Scaling\n\n'
	printf '%d concurrent csv upsert imports of %s rows (8 users, one job each) submitted before\n' "$JOBS" "$ROWS"
	printf 'the workers start; records/s = all records ÷ (last `completed_at` − first\n'
	printf '`started_at`). CPU is in cores (this machine has %s), summed over the cluster'"'"'s\n' "$(nproc)"
	printf 'processes (children of its postmaster) and over the workers, during the run.\n\n'
	python3 "$BENCH_LIB_DIR/summarize.py" "$RAW"
	printf '\nWhat the workers'"'"' database sessions were doing (share of 100 ms samples of\n'
	printf '`pg_stat_activity`, last run):\n\n'
	for n in $FLEETS; do
		printf '%s workers: ' "$n"
		awk -F'\t' '{ printf "%s%s %s%%", (NR > 1 ? "; " : ""), $1, $2 } END { print "" }' "$OUT/raw/scaling-waits-$n.tsv"
		printf '\n'
	done
	python3 "$BENCH_LIB_DIR/scaling_verdict.py" "$RAW" "$OUT/raw" "$(nproc)" $FLEETS
} >"$OUT/6-scaling.md"
bench_say "done: $OUT/6-scaling.md"
