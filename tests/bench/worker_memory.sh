#!/usr/bin/env bash
# tests/bench/worker_memory.sh -- peak RSS (VmHWM in /proc/PID/status) of a
# fresh worker process importing one CSV file of 10 MB, 100 MB and 1 GB
# (csv upsert, default batch settings); the target is <= 64 MB whatever the size.
#
# Environment: BENCH_SCALE (small: 1 MB and 10 MB; full: 10 MB, 100 MB, 1 GB),
# BENCH_RUNS (3; the 1 GB file runs BENCH_MEMORY_BIG_RUNS times, default 1,
# since one import of it takes minutes here).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_init worker_memory
if [ "$SCALE" = full ]; then SIZES=${BENCH_MEMORY_SIZES:-10 100 1000}; else SIZES=${BENCH_MEMORY_SIZES:-1 10}; fi
BIG_RUNS=${BENCH_MEMORY_BIG_RUNS:-1}
USER_ID=c7e1a2b3-4d5e-4f60-8a9b-0c1d2e3f4a5b
BYTES_PER_ROW=109 # gen_csv's rows average ~109 bytes

bench_cluster
start_gateway
TOKEN=$(jwt "$USER_ID")

for mb in $SIZES; do
	rows=$((mb * 1000000 / BYTES_PER_ROW))
	bench_say "generating a $mb MB csv ($rows rows)"
	gen_csv "$rows" "$TMP/mem.csv"
	real_mb=$(awk -v b="$(stat -c %s "$TMP/mem.csv")" 'BEGIN { printf "%.0f", b / 1e6 }')
	runs=$RUNS
	[ "$mb" -lt 1000 ] || runs=$BIG_RUNS
	for ((run = 1; run <= runs; run++)); do
		reset_data
		start_worker mem
		wpid=$LAST_PID
		up=$(upload_file "$USER_ID" "$TOKEN" "$TMP/mem.csv")
		id=$(submit_upload "$TOKEN" "$up" "kind=csv&collection=mem")
		wait_job "$id" 7200
		[ "$JOB_STATUS" = completed ] || bench_die "job $id ended $JOB_STATUS"
		n=$(psql_admin -c "SELECT count(*) FROM importer.records WHERE collection = 'mem'")
		[ "$n" = "$rows" ] || bench_die "$n records, want $rows"
		kill -0 "$wpid" 2>/dev/null || bench_die "worker exited"
		record "worker peak RSS, $real_mb MB csv ($rows rows)" "$(peak_rss_mib "$wpid")" MiB
		record "import rate, $real_mb MB csv" \
			"$(echo "scale=0; $rows / $(job_seconds "$id")" | bc -l)" records/s
		stop_pid "$wpid"
	done
	rm -f "$TMP/mem.csv"
done
reset_data

largest=$(awk -F'\t' '$1 ~ /peak RSS/ { c = $1 } END { print c }' "$RAW")
{
	printf '## 2. Worker memory\n\n'
	printf 'Peak RSS (`VmHWM` of `/proc/PID/status`) of a fresh worker process that imported one\n'
	printf 'CSV file (upsert, default batch settings: 5,000 rows or 8 MiB). The file is uploaded\n'
	printf 'through the gateway in 8 MiB chunks and stored as 1 MiB chunks; the worker reads one\n'
	printf 'chunk per query.\n\n'
	python3 "$BENCH_LIB_DIR/summarize.py" "$RAW" --bench memory --headline "$OUT/headline.tsv" \
		--target "worker peak RSS, largest file (MiB)|$largest||<=|64"
	printf '\n'
} >"$OUT/2-worker_memory.md"
bench_say "done: $OUT/2-worker_memory.md"
