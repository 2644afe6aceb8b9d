#!/usr/bin/env bash
# tests/soak/worker_kill.sh -- a 300,000-row import survives 20 worker kill -9s.
#
# Not part of tests/run.sh (a few minutes). On a private throwaway cluster:
# one CSV job of SOAK_ROWS rows (batch_size SOAK_BATCH) and one worker process
# at a time. SOAK_KILLS times: wait until the job makes progress under the
# current worker, then SIGKILL it -- alternately right after a batch commit
# (processed_items just moved: a batch boundary) and at a random moment inside
# a batch -- and start a new worker, which rescues the job after lease_seconds
# (2 s here) and continues from the checkpoint. At the end the job must be
# completed with processed_items, total_items and counts exact, no batch
# written twice (counts.updated = 0), every record present exactly once with
# its own data, and no rescue past max_rescues (raised for this test: the
# production default of 5 fails a job that kills its worker repeatedly).
#
# Needs a build: IMPORTER_BUILD_DIR (default build/test). Environment:
# SOAK_ROWS (300000), SOAK_BATCH (500), SOAK_KILLS (20), SOAK_KEEP=DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
BUILD=${IMPORTER_BUILD_DIR:-$ROOT/build/test}
PG=$ROOT/deploy/local/pg.sh
WORKER=$BUILD/worker/importer-worker
ROWS=${SOAK_ROWS:-300000}
BATCH=${SOAK_BATCH:-500}
KILLS=${SOAK_KILLS:-20}
USER_ID=50a150a1-0000-4000-8000-00000000c0de
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/worker-kill.XXXXXX")
PGDIR=$TMP/pg
WORKER_PID=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ -z "$WORKER_PID" ] || kill -KILL "$WORKER_PID" 2>/dev/null || true
	wait 2>/dev/null || true
	e2e_finish "$rc" "${SOAK_KEEP:-}" "$TMP"/worker*.log
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -x "$WORKER" ] || die "$WORKER not found (build first, or set IMPORTER_BUILD_DIR)"
command -v psql >/dev/null 2>&1 || die "psql not found"

e2e_start_cluster "$PG" "$PGDIR" "$TMP"
e2e_init_db "$PG" "$PGDIR" "$TMP" "$WORKER" "
UPDATE importer.settings SET value = '2' WHERE key = 'lease_seconds' AND user_id IS NULL;
UPDATE importer.settings SET value = '$((KILLS + 5))' WHERE key = 'max_rescues' AND user_id IS NULL;"
psql_admin() { psql -X -q -At -v ON_ERROR_STOP=1 "$ADMIN_URL" "$@"; }
say "PostgreSQL on 127.0.0.1:$port, migrated (lease_seconds 2, max_rescues $((KILLS + 5)))"

# Row i: id=k<i>, n=i, a quoted name with embedded quotes and a comma.
awk -v n="$ROWS" 'BEGIN { print "id,n,name"; for (i = 1; i <= n; i++) printf "k%d,%d,\"n \"\"%d\"\", x\"\n", i, i, i }' >"$TMP/data.csv"
JOB=$(psql -X -q -At -v ON_ERROR_STOP=1 "$ADMIN_URL" <<EOSQL
\\set file \`cat '$TMP/data.csv'\`
SELECT importer.submit_job('csv', convert_to(:'file', 'UTF8'),
	'{"user_id": "$USER_ID", "collection": "soak", "batch_size": "$BATCH"}');
EOSQL
)
say "job $JOB: $ROWS rows, $(($(stat -c %s "$TMP/data.csv") / 1024)) KiB, batch_size $BATCH"
job() { psql_admin -c "SELECT $1 FROM importer.import_jobs WHERE id = '$JOB'"; }

n_workers=0
start_worker() {
	n_workers=$((n_workers + 1))
	env -u IMPORTER_METRICS_ADDR DATABASE_URL="$WK_URL" IMPORTER_LISTEN_DATABASE_URL="$WK_URL" \
		IMPORTER_POLL_INTERVAL_MS=300 "$WORKER" 2>"$TMP/worker$n_workers.log" &
	WORKER_PID=$!
}
# wait_progress: until the current worker holds the job and has committed a
# batch of its own; false once the job is completed.
wait_progress() {
	local deadline=$((SECONDS + 60)) st wid p0=
	while :; do
		IFS='|' read -r st wid p < <(job "status, worker_id, processed_items")
		[ "$st" != completed ] || return 1
		if [ "$st" = processing ] && [ "${wid##*:}" = "$WORKER_PID" ]; then
			[ -n "$p0" ] || p0=$p
			[ "$p" -le "$p0" ] || return 0
		fi
		[ "$SECONDS" -lt "$deadline" ] ||
			die "no progress under worker $n_workers within 60 s (status $st, worker $wid)"
		sleep 0.02
	done
}

# ---- the kills ------------------------------------------------------------------------
start_worker
boundary=0 inside=0
for ((k = 1; k <= KILLS; k++)); do
	wait_progress || {
		say "job completed after $((k - 1)) kills (raise SOAK_ROWS for more)"
		break
	}
	p=$(job processed_items)
	if ((k % 2 == 0)); then
		# at a batch boundary: the moment processed_items moves
		while [ "$(job processed_items)" = "$p" ]; do :; done
		kill -KILL "$WORKER_PID"
		boundary=$((boundary + 1))
		where="just after a batch commit"
	else
		sleep "0.$((RANDOM % 10))$((RANDOM % 10))"
		kill -KILL "$WORKER_PID"
		inside=$((inside + 1))
		where="at a random moment"
	fi
	wait "$WORKER_PID" 2>/dev/null || true
	say "kill $k: worker $n_workers (pid $WORKER_PID) SIGKILLed $where, $(job processed_items) of $ROWS committed"
	start_worker
done

deadline=$((SECONDS + 600))
while [ "$(job status)" != completed ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done

# ---- exactly once -------------------------------------------------------------------------
IFS='|' read -r status processed total failed inserted updated rescues attempts < <(job \
	"status, processed_items, total_items, failed_items, counts->>'inserted', counts->>'updated', rescues, attempts")
say "job: $status, processed $processed, total $total, failed $failed, inserted $inserted, updated $updated, rescues $rescues, attempts $attempts"
[ "$status" = completed ] || fail "job is $status, not completed: $(job error_message)"
[ "$processed" = "$ROWS" ] && [ "$total" = "$ROWS" ] && [ "$failed" = 0 ] ||
	fail "processed $processed, total $total, failed $failed; want $ROWS, $ROWS, 0"
[ "$inserted" = "$ROWS" ] && [ "$updated" = 0 ] ||
	fail "counts.inserted $inserted, counts.updated $updated; want $ROWS and 0 (no batch written twice)"
IFS='|' read -r n distinct sum good < <(psql_admin -c "
	SELECT count(*), count(DISTINCT record_key), coalesce(sum((data->>'n')::bigint), 0),
	       count(*) FILTER (WHERE record_key = 'k' || (data->>'n')
	                          AND data->>'name' = 'n \"' || (data->>'n') || '\", x')
	FROM importer.records WHERE user_id = '$USER_ID' AND collection = 'soak'")
want_sum=$((ROWS * (ROWS + 1) / 2))
if [ "$n" = "$ROWS" ] && [ "$distinct" = "$ROWS" ] && [ "$sum" = "$want_sum" ] && [ "$good" = "$ROWS" ]; then
	say "records: $ROWS, each once, each with its own data"
else
	fail "records: $n, distinct $distinct, sum(n) $sum (want $want_sum), well-formed $good (want $ROWS)"
fi
errs=$(psql_admin -c "SELECT count(*) FROM importer.import_errors WHERE job_id = '$JOB'")
[ "$errs" = 0 ] || fail "$errs import_errors rows, want 0"
kill -TERM "$WORKER_PID"
rc=0
wait "$WORKER_PID" || rc=$?
WORKER_PID=
[ "$rc" -eq 0 ] || fail "the last worker exited $rc on SIGTERM"
if grep -l 'Sanitizer\|runtime error:' "$TMP"/worker*.log; then fail "sanitizer report in the logs above"; fi
say "faults: $((boundary + inside)) worker kills survived ($boundary at batch boundaries, $inside at random moments), $n_workers worker processes"
[ "$failures" -eq 0 ]
