#!/usr/bin/env bash
# tests/bench/import_ab.sh -- one worker build against another on the same
# import, in the same run: for comparing a change with its base on a machine
# whose load moves too much for two separate runs of import_throughput.sh.
#
# Each round imports the same generated csv (upsert, default batch) once with
# each build, in alternating order, one worker at a time, on emptied tables
# after a CHECKPOINT; it records the seconds from claim to completed_at
# (database clock), records/s, the CPU the worker and PostgreSQL used
# during the job, and the ratio of the two builds' times. Not part of
# run.sh (nothing in BENCHMARKS.md comes from it).
#
# Environment: AB_BUILD_A (a Release build directory; required), AB_BUILD_B
# (default: the build lib.sh makes of this tree), BENCH_IMPORT_ROWS
# (1,000,000), BENCH_RUNS (3).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x "${AB_BUILD_A:-}/worker/importer-worker" ] ||
	{ echo "import_ab.sh: AB_BUILD_A must name a build with worker/importer-worker" >&2; exit 2; }
bench_init import_ab
WORKER_A=$AB_BUILD_A/worker/importer-worker
WORKER_B=${AB_BUILD_B:+$AB_BUILD_B/worker/importer-worker}
WORKER_B=${WORKER_B:-$WORKER}
ROWS=${BENCH_IMPORT_ROWS:-1000000}
USER_ID=5b0c7a52-1f0e-4d2b-9a57-6a1f3c7e0b11
HZ=$(getconf CLK_TCK)

bench_cluster
start_gateway
TOKEN=$(jwt "$USER_ID")
PM=$(postmaster_pid)
gen_csv "$ROWS" "$TMP/main.csv"

# ab_run LABEL WORKER_BINARY: one import with that worker; sets AB_SECS.
ab_run() {
	local label=$1 up id pg0 wk0 pg wk wpid
	reset_data
	WORKER=$2 start_worker "$label"
	wpid=$LAST_PID
	up=$(upload_file "$USER_ID" "$TOKEN" "$TMP/main.csv")
	pg0=$(cpu_ticks $(pgrep -P "$PM"))
	wk0=$(cpu_ticks "$wpid")
	id=$(submit_upload "$TOKEN" "$up" "kind=csv&collection=bench")
	wait_job "$id" 1800
	pg=$(($(cpu_ticks $(pgrep -P "$PM")) - pg0))
	wk=$(($(cpu_ticks "$wpid") - wk0))
	stop_pid "$wpid"
	[ "$JOB_STATUS" = completed ] || bench_die "$label: job $id ended $JOB_STATUS"
	AB_SECS=$(job_seconds "$id")
	record "$label: csv upsert, $ROWS rows" "$(echo "scale=0; $ROWS / $AB_SECS" | bc -l)" records/s
	record "$label: worker CPU" "$(echo "scale=2; $wk / $HZ" | bc -l)" s
	record "$label: PostgreSQL CPU" "$(echo "scale=2; $pg / $HZ" | bc -l)" s
}

for ((run = 1; run <= RUNS; run++)); do
	bench_say "run $run of $RUNS"
	if ((run % 2)); then order="A B"; else order="B A"; fi
	for side in $order; do
		if [ "$side" = A ]; then ab_run A "$WORKER_A"; a=$AB_SECS; else ab_run B "$WORKER_B"; b=$AB_SECS; fi
	done
	record "time A / time B" "$(echo "scale=2; $a / $b" | bc -l)" ratio
done
