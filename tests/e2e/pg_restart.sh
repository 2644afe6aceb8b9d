#!/usr/bin/env bash
# tests/e2e/pg_restart.sh -- 4 workers importing for several users and a
# gateway streaming survive PostgreSQL restarts.
#
# On a private throwaway cluster (deploy/local/pg.sh --fast; the shared cluster
# of IMPORTER_TEST_DATABASE_URL is never touched): migrate, create login roles
# as deploy/local/run.sh does, start 4 workers and 1 gateway. PG_RESTART_USERS
# users each submit PG_RESTART_JOBS files through the gateway (CSV and NDJSON
# in turn, each into its own collection, with a small batch_size) and open an
# SSE stream on each job. Once 4 jobs are processing and have progress,
# restart PostgreSQL with a fast shutdown (pg.sh stop + start on the same
# directory and port), and once more with an immediate shutdown (SIGQUIT to
# the postmaster: a crash, recovery from WAL) while jobs still run. Then,
# polling with deadlines:
#   - every job completes; every record is there exactly once with its own
#     data; processed_items, total_items, failed_items and counts are exact;
#   - /readyz answered 503 during each outage and 200 after it;
#   - the workers and the gateway are the processes started at the beginning
#     (they reconnected rather than exited), each worker imported, and all exit
#     0 on SIGTERM at the end with no sanitizer report and JSON log lines only;
#   - each SSE stream opened before the restarts ends with the completed state
#     and `end` (or, if the gateway dropped it, a reconnect with Last-Event-ID
#     does), job states on it never go back in seq; and a request made after
#     recovery shows the snapshot `event: job` with status completed, then
#     `event: end`.
#
# Needs IMPORTER_BUILD_DIR (tests/run.sh exports it). IMPORTER_TEST_DATABASE_URL
# is not used: this test restarts its own cluster.
# Environment: PG_RESTART_USERS (default 3), PG_RESTART_JOBS per user (default
# 2), PG_RESTART_ROWS per job (default 40000), PG_RESTART_BATCH (default 250),
# PG_RESTART_KEEP=DIR (copy the services' logs there before cleaning up).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
BUILD=${IMPORTER_BUILD_DIR:?IMPORTER_BUILD_DIR is not set (run through tests/run.sh)}
PG=$ROOT/deploy/local/pg.sh
WORKER=$BUILD/worker/importer-worker
GATEWAY=$BUILD/api/importer-gateway
NUSERS=${PG_RESTART_USERS:-3}
JOBS_PER_USER=${PG_RESTART_JOBS:-2}
ROWS=${PG_RESTART_ROWS:-40000}
BATCH=${PG_RESTART_BATCH:-250}
NWORKERS=4
JWT_SECRET=pg-restart-test-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pg-restart.XXXXXX")
PGDIR=$TMP/pg
PIDS=()  # gateway, worker 1..4
NAMES=() # same order
LOGS=()  # same order
SSE_PIDS=()
START=$SECONDS
failures=0
checks=0

say() { printf 'pg_restart.sh: [%3ss] %s\n' "$((SECONDS - START))" "$*"; }
ok() {
	checks=$((checks + 1))
	say "ok: $*"
}
fail() {
	checks=$((checks + 1))
	failures=$((failures + 1))
	printf 'pg_restart.sh: FAIL: %s\n' "$*" >&2
}
# Fatal: the rest of the test cannot run.
die() {
	fail "$*"
	exit 1
}

show_logs() {
	e2e_dump_logs 15 "$TMP"/gateway.log "$TMP"/worker*.log
	if [ -f "$PGDIR/pg.env" ]; then
		printf -- '---- last lines of the PostgreSQL log ----\n' >&2
		# shellcheck source=/dev/null
		(. "$PGDIR/pg.env" && tail -n 15 "$PGSH_LOG") >&2 || true
	fi
}

cleanup() {
	local rc=$? p
	trap - EXIT INT TERM
	for p in "${SSE_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	e2e_stop_pids "${PIDS[@]}"
	wait 2>/dev/null || true
	if [ "$rc" -ne 0 ] || [ "$failures" -gt 0 ]; then
		show_logs
		[ "$rc" -ne 0 ] || rc=1
	fi
	"$PG" destroy "$PGDIR" >/dev/null 2>&1 || true
	if [ -n "${PG_RESTART_KEEP:-}" ]; then cp "$TMP"/*.log "$PG_RESTART_KEEP"/ 2>/dev/null || true; fi
	rm -rf -- "$TMP"
	if [ "$rc" -eq 0 ]; then
		say "PASS ($checks checks, $((SECONDS - START)) s)"
	else
		say "FAIL ($failures of $checks checks failed, $((SECONDS - START)) s)"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -x "$WORKER" ] || die "$WORKER not found"
[ -x "$GATEWAY" ] || die "$GATEWAY not found"
for tool in curl jq psql python3; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done

# ---- a private cluster on a free port -------------------------------------------
e2e_start_cluster "$PG" "$PGDIR" "$TMP"
PG_PORT=$port
# A stale lease (worker lost its connection mid-batch) is rescued after
# lease_seconds; 5 s instead of 15 keeps the test short.
e2e_init_db "$PG" "$PGDIR" "$TMP" "$WORKER" \
	"UPDATE importer.settings SET value = '5' WHERE key = 'lease_seconds' AND user_id IS NULL;"
psql_admin() { psql -X -q -At -v ON_ERROR_STOP=1 "$ADMIN_URL" "$@"; }
say "PostgreSQL on 127.0.0.1:$PG_PORT, migrated"

# ---- gateway and 4 workers -------------------------------------------------------
HTTP_PORT=$(e2e_free_port)
BASE=http://127.0.0.1:$HTTP_PORT
env -u IMPORTER_METRICS_ADDR DATABASE_URL="$GW_URL" IMPORTER_LISTEN_DATABASE_URL="$GW_URL" \
	IMPORTER_HTTP_ADDR="127.0.0.1:$HTTP_PORT" IMPORTER_JWT_SECRET="$JWT_SECRET" \
	IMPORTER_SSE_HEARTBEAT_MS=1000 "$GATEWAY" 2>"$TMP/gateway.log" &
PIDS+=("$!")
NAMES+=(gateway)
LOGS+=(gateway)
for ((i = 1; i <= NWORKERS; i++)); do
	env -u IMPORTER_METRICS_ADDR -u IMPORTER_JWT_SECRET -u IMPORTER_HTTP_ADDR \
		DATABASE_URL="$WK_URL" IMPORTER_LISTEN_DATABASE_URL="$WK_URL" \
		IMPORTER_POLL_INTERVAL_MS=500 "$WORKER" 2>"$TMP/worker$i.log" &
	PIDS+=("$!")
	NAMES+=("worker $i")
	LOGS+=("worker$i")
done

all_alive() { # prints the dead ones; false if any
	local i dead=0
	for i in "${!PIDS[@]}"; do
		if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
			printf '%s (pid %s) exited\n' "${NAMES[$i]}" "${PIDS[$i]}"
			dead=1
		fi
	done
	[ "$dead" = 0 ]
}
readyz() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/readyz" || true; }
# wait_readyz CODE SECONDS: poll until /readyz answers CODE.
wait_readyz() {
	local want=$1 deadline=$((SECONDS + $2)) got
	while :; do
		got=$(readyz)
		[ "$got" != "$want" ] || return 0
		[ "$SECONDS" -lt "$deadline" ] || {
			say "/readyz still $got after $2 s (want $want)"
			return 1
		}
		sleep 0.05
	done
}
wait_readyz 200 30 || die "gateway not ready: $(all_alive || true)"
ok "gateway ready, $NWORKERS workers started (pids ${PIDS[*]})"

# ---- the imports ------------------------------------------------------------------
# Job j of user u (collection pgr<u>_<j>): record i has id k<i>, n = i and a
# name with embedded quotes naming its job, so the sum of n and the names
# check that every record holds its own data. CSV and NDJSON in turn.
CSV=$TMP/data.csv
NDJSON=$TMP/data.ndjson
# The name column is quoted, with embedded quotes: "name ""i""" is name "i".
awk -v n="$ROWS" 'BEGIN { print "id,n,name"; for (i = 1; i <= n; i++) printf "k%d,%d,\"name \"\"%d\"\"\"\n", i, i, i }' >"$CSV"
awk -v n="$ROWS" 'BEGIN { for (i = 1; i <= n; i++) printf "{\"id\":\"k%d\",\"n\":\"%d\",\"name\":\"name \\\"%d\\\"\"}\n", i, i, i }' >"$NDJSON"
EXPECT_SUM=$((ROWS * (ROWS + 1) / 2))
JOBS=()   # job ids
TOKENS=() # the owner's token, same order
COLLS=()  # collections, same order
for ((u = 1; u <= NUSERS; u++)); do
	user=$(printf '7d1c2b0e-5f3a-4c1e-9a77-%012d' "$u")
	token=$(IMPORTER_JWT_SECRET=$JWT_SECRET "$GATEWAY" token --sub "$user" --ttl 3600 2>/dev/null | tr -d '\r\n')
	case $token in *.*.*) ;; *) die "importer-gateway token printed no token" ;; esac
	for ((j = 1; j <= JOBS_PER_USER; j++)); do
		coll=pgr${u}_$j
		if ((j % 2)); then kind=csv file=$CSV; else kind=ndjson file=$NDJSON; fi
		code=$(curl -s --max-time 60 -o "$TMP/submit.json" -w '%{http_code}' \
			-H "Authorization: Bearer $token" --data-binary "@$file" \
			"$BASE/api/jobs?kind=$kind&collection=$coll&batch_size=$BATCH&file_name=data.$kind") || true
		[ "$code" = 202 ] || die "submit $coll: HTTP $code: $(head -c 500 "$TMP/submit.json")"
		JOBS+=("$(jq -r .id "$TMP/submit.json")")
		TOKENS+=("$token")
		COLLS+=("$coll")
	done
done
NJOBS=${#JOBS[@]}
IN_JOBS=$(printf "'%s'," "${JOBS[@]}")
IN_JOBS=${IN_JOBS%,}
say "submitted $NJOBS jobs for $NUSERS users ($ROWS records each, batch_size $BATCH)"

jobs_sql() { # jobs_sql EXPR: from the database (empty while it is down)
	psql -X -q -At "$ADMIN_URL" -c "SELECT $1 FROM importer.import_jobs WHERE id IN ($IN_JOBS)" 2>/dev/null || true
}

# One SSE stream per job, opened before the restarts; they should stay open
# through them.
sse_open() { # sse_open INDEX OUT [LAST_EVENT_ID] [MAX_TIME]
	local hdr=()
	[ -z "${3:-}" ] || hdr=(-H "Last-Event-ID: $3")
	curl -s -N --max-time "${4:-150}" -H "Authorization: Bearer ${TOKENS[$1]}" \
		-H 'Accept: text/event-stream' "${hdr[@]}" \
		"$BASE/api/jobs/${JOBS[$1]}/events" >"$2" 2>/dev/null
}
for k in "${!JOBS[@]}"; do
	sse_open "$k" "$TMP/sse_live$k.txt" &
	SSE_PIDS+=("$!")
done

# wait_progress MIN SECONDS: until 4 jobs (or all that are left) are processing
# and the jobs' processed_items add up to more than MIN; sets PROGRESS.
wait_progress() {
	local min=$1 deadline=$((SECONDS + $2)) st running done total
	while :; do
		st=$(jobs_sql "count(*) FILTER (WHERE status = 'processing' AND processed_items > 0),
			count(*) FILTER (WHERE status IN ('completed', 'failed', 'cancelled')),
			coalesce(sum(processed_items), 0)")
		IFS='|' read -r running done total <<<"${st:-0|0|0}"
		if [ "$done" = "$NJOBS" ]; then
			say "every job already finished"
			return 1
		fi
		want=$((NJOBS - done < NWORKERS ? NJOBS - done : NWORKERS))
		if [ "$running" -ge "$want" ] && [ "$total" -gt "$min" ]; then
			PROGRESS=$total
			return 0
		fi
		[ "$SECONDS" -lt "$deadline" ] || {
			say "not $want jobs processing past $min records in $2 s (processing $running, finished $done, records $total)"
			return 1
		}
		sleep 0.05
	done
}

# restart MODE: fast = pg.sh stop (SIGINT), immediate = SIGQUIT to the
# postmaster (no checkpoint: crash recovery on start); then pg.sh start on the
# same directory and port. /readyz must go 503 while it is down, 200 after.
restart() {
	local mode=$1 pid i t0=$SECONDS
	if [ "$mode" = fast ]; then
		"$PG" stop "$PGDIR" || die "pg.sh stop failed"
	else
		pid=$("$PG" status "$PGDIR" | sed -n 's/^running (pid \([0-9]*\)).*/\1/p') || true
		[ -n "$pid" ] || die "no postmaster pid from pg.sh status"
		kill -QUIT "$pid"
		for ((i = 0; i < 300; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		! kill -0 "$pid" 2>/dev/null || die "postmaster $pid did not exit after SIGQUIT"
	fi
	if wait_readyz 503 15; then
		ok "/readyz 503 while PostgreSQL is down ($mode shutdown)"
	else
		fail "/readyz never answered 503 during the $mode outage"
	fi
	"$PG" --fast start "$PGDIR" "$PG_PORT" || die "pg.sh start after the $mode shutdown failed"
	if wait_readyz 200 30; then
		ok "/readyz 200 again after the $mode restart (outage $((SECONDS - t0)) s)"
	else
		fail "/readyz not 200 within 30 s after the $mode restart"
	fi
}

wait_progress 0 60 || die "the workers never showed progress on 4 jobs"
say "progress visible on 4 jobs: $PROGRESS of $((NJOBS * ROWS)) records; fast restart"
restart fast

CRASHED=0
if wait_progress "$(jobs_sql 'sum(processed_items)')" 40; then
	say "progress after recovery: $PROGRESS of $((NJOBS * ROWS)); immediate shutdown (crash)"
	restart immediate
	CRASHED=1
else
	say "jobs no longer running after the first restart: crash restart skipped"
fi

# ---- every job completes ------------------------------------------------------------
deadline=$((SECONDS + 90))
while :; do
	left=$(jobs_sql "count(*) FILTER (WHERE status NOT IN ('completed', 'failed', 'cancelled'))")
	[ "$left" != 0 ] || break
	[ "$SECONDS" -lt "$deadline" ] || break
	sleep 0.2
done
# One line per job that is not exactly right: status, counters and counts.
bad=$(psql_admin -c "SELECT string_agg(id || ': ' || status || ', processed ' || processed_items ||
	', total ' || coalesce(total_items::text, '?') || CASE WHEN total_is_estimate THEN ' (estimate)' ELSE '' END ||
	', failed ' || failed_items || ', counts ' || counts::text || ', error ' || coalesce(error_message, '-'), E'\n')
	FROM importer.import_jobs WHERE id IN ($IN_JOBS) AND (status <> 'completed' OR processed_items <> $ROWS
	OR total_items IS DISTINCT FROM $ROWS OR total_is_estimate OR failed_items <> 0
	OR (counts->>'inserted')::bigint IS DISTINCT FROM $ROWS OR (counts->>'updated')::bigint <> 0
	OR (counts->>'failed')::bigint <> 0)") || bad="(query failed)"
if [ -z "$bad" ]; then
	ok "$NJOBS jobs completed ($((SECONDS - START)) s since start): processed_items = total_items (exact) = counts.inserted = $ROWS, failed 0, counts.updated 0 (no batch written twice)"
else
	fail "jobs not completed exactly:"$'\n'"$bad"
fi

# Records of every job: exactly once, each with its own data, written by its job.
bad=$(psql_admin -c "
	WITH j(id, user_id, collection) AS (SELECT id, user_id, collection FROM importer.import_jobs
	                                    WHERE id IN ($IN_JOBS))
	SELECT string_agg(format('%s: %s records, %s distinct keys, sum(n) %s, well-formed %s',
	                         j.collection, r.n, r.keys, r.sum, r.good), E'\n')
	FROM j CROSS JOIN LATERAL (
		SELECT count(*) AS n, count(DISTINCT record_key) AS keys,
		       coalesce(sum((data->>'n')::bigint), 0) AS sum,
		       count(*) FILTER (WHERE record_key = data->>'id' AND record_key = 'k' || (data->>'n')
		                          AND data->>'name' = 'name \"' || (data->>'n') || '\"'
		                          AND job_id = j.id) AS good
		FROM importer.records rec WHERE rec.user_id = j.user_id AND rec.collection = j.collection) r
	WHERE NOT (r.n = $ROWS AND r.keys = $ROWS AND r.sum = $EXPECT_SUM AND r.good = $ROWS)") || bad="(query failed)"
if [ -z "$bad" ]; then
	ok "records: $NJOBS × $ROWS, each key once, each with its own data"
else
	fail "records wrong:"$'\n'"$bad"
fi
errs=$(psql_admin -c "SELECT count(*) FROM importer.import_errors WHERE job_id IN ($IN_JOBS)" || echo '?')
[ "$errs" = 0 ] || fail "$errs import_errors rows for the jobs, want 0"
say "job logs: $(psql_admin -c "SELECT string_agg(event || ' ' || n, ', ') FROM
	(SELECT event, count(*) AS n FROM importer.import_logs WHERE job_id IN ($IN_JOBS) GROUP BY event ORDER BY event) e" || true)"

# ---- the processes reconnected instead of exiting -------------------------------------
if dead=$(all_alive); then
	ok "gateway and workers are the processes started at the beginning"
else
	fail "$dead"
fi
idle=
for ((i = 1; i <= NWORKERS; i++)); do
	grep -q '"event":"job.claimed"' "$TMP/worker$i.log" || idle="$idle worker$i"
done
if [ -z "$idle" ]; then
	ok "each of the $NWORKERS workers claimed jobs"
else
	fail "workers that never claimed a job:$idle"
fi
# DESIGN.md: logs are one JSON object per line, even while the database
# goes away (libpq's notices, such as "FATAL: terminating connection due to
# administrator command", go through our notice processor as db.notice).
for f in "${LOGS[@]}"; do
	n=$(grep -cv '^{' "$TMP/$f.log" || true)
	if [ "$n" = 0 ]; then
		ok "$f wrote only JSON log lines"
	else
		fail "$f.log has $n non-JSON line(s), e.g. '$(grep -v '^{' "$TMP/$f.log" | head -n 1)'"
	fi
done

# ---- SSE ------------------------------------------------------------------------------
# The streams opened before the restarts: the gateway keeps them, so each ends
# with the completed state and `end` and closes; if one was dropped, reconnect
# with the last id it saw.
deadline=$((SECONDS + 15))
for p in "${SSE_PIDS[@]}"; do
	while kill -0 "$p" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
done
# ends_completed FILE JOB [FILE JOB ...]: for each stream, a job event with
# status completed, then `end` with it; prints "ok FILE DETAILS" or "bad FILE
# PROBLEMS" per stream (one python3 for all: starting it takes seconds on a
# loaded machine).
ends_completed() {
	python3 - "$@" <<'PY'
import json, sys

def check(path, job):
    text = open(path, encoding="utf-8", errors="replace").read()
    events, seen_completed, job_ids = [], False, []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        ev, data, eid = None, [], None
        for line in block.split("\n"):
            if line.startswith("event:"):
                ev = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
            elif line.startswith("id:"):
                eid = line[3:].strip()
        if ev:
            events.append((ev, "\n".join(data), eid))
    problems = []
    for ev, data, eid in events:
        if ev == "job":
            j = json.loads(data)
            if j.get("id") == job:
                job_ids.append(int(eid) if eid else -1)
                if j.get("status") == "completed":
                    seen_completed = True
        if ev == "end":
            j = json.loads(data)
            if not seen_completed:
                problems.append("`end` before any job event with status completed")
            if j.get("status") != "completed" or j.get("id") != job:
                problems.append("end payload %s" % data)
            break
    else:
        problems.append("no `end` event (events: %s)" % ", ".join(e for e, _, _ in events[-8:]))
    if any(b <= a for a, b in zip(job_ids, job_ids[1:])):
        problems.append("job event ids not increasing: %s" % job_ids)
    if problems:
        return "bad %s %s" % (path, "; ".join(problems))
    return "ok %s %d events, %d job states" % (path, len(events), len(job_ids))

args = sys.argv[1:]
for path, job in zip(args[0::2], args[1::2]):
    print(check(path, job))
PY
}
# The streams kept open through the restarts.
args=()
for k in "${!JOBS[@]}"; do
	if kill -0 "${SSE_PIDS[$k]}" 2>/dev/null; then
		fail "${COLLS[$k]}: the SSE stream opened before the restarts is still open 15 s after the jobs completed"
	fi
	args+=("$TMP/sse_live$k.txt" "${JOBS[$k]}")
done
mapfile -t live_results < <(ends_completed "${args[@]}")
# A stream that did not end properly reconnects with the last id it saw; and a
# request made after recovery, with the last id the live stream saw, gets the
# snapshot first (completed), then end.
kept=0 args=()
for k in "${!JOBS[@]}"; do
	live_last_id=$(sed -n 's/^id: *//p' "$TMP/sse_live$k.txt" | tail -n 1)
	case ${live_results[$k]:-bad} in
	ok\ *) kept=$((kept + 1)) ;;
	*)
		say "${COLLS[$k]}: SSE stream opened before the restarts did not end properly (${live_results[$k]:-no result}); reconnecting with Last-Event-ID ${live_last_id:-none}"
		sse_open "$k" "$TMP/sse_reconnect$k.txt" "${live_last_id:-}" 15 || true
		args+=("$TMP/sse_reconnect$k.txt" "${JOBS[$k]}")
		;;
	esac
	sse_open "$k" "$TMP/sse_after$k.txt" "${live_last_id:-}" 15 || true
	args+=("$TMP/sse_after$k.txt" "${JOBS[$k]}")
done
bad=$(ends_completed "${args[@]}" | grep -v '^ok ' || true)
if [ -z "$bad" ]; then
	ok "SSE: $kept of $NJOBS streams kept open through the restarts, $((NJOBS - kept)) reconnected with Last-Event-ID; each saw the completed state and end, and every request after recovery got the completed snapshot, then end"
else
	fail "SSE streams (reconnect or after recovery):"$'\n'"$bad"
fi

# ---- clean exit: SIGTERM, exit 0, no sanitizer report --------------------------------
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for i in "${!PIDS[@]}"; do
	rc=0
	wait "${PIDS[$i]}" || rc=$?
	[ "$rc" -eq 0 ] || fail "${NAMES[$i]} exited $rc on SIGTERM"
done
PIDS=()
if grep -l 'AddressSanitizer\|LeakSanitizer\|runtime error:' "$TMP"/gateway.log "$TMP"/worker*.log; then
	fail "sanitizer report in the logs above"
else
	ok "gateway and workers exited 0 on SIGTERM, no sanitizer report"
fi
[ "$CRASHED" = 1 ] || say "note: only the fast restart ran (the jobs finished before the crash)"
[ "$failures" -eq 0 ] || exit 1
