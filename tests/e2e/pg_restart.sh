#!/usr/bin/env bash
# tests/e2e/pg_restart.sh -- a running import and an open SSE stream survive
# PostgreSQL restarts.
#
# On a private throwaway cluster (deploy/local/pg.sh --fast; the shared cluster
# of IMPORTER_TEST_DATABASE_URL is never touched): migrate, create login roles
# as deploy/local/run.sh does, start 2 workers and 1 gateway, submit a generated
# CSV through the gateway with a small batch_size and open the job's SSE stream.
# Once progress is visible, restart PostgreSQL with a fast shutdown (pg.sh stop
# + start on the same directory and port), and once more with an immediate
# shutdown (SIGQUIT to the postmaster: a crash, recovery from WAL) while the job
# still runs. Then, polling with deadlines:
#   - the job completes; every record is there exactly once with its own data;
#     processed_items, total_items, failed_items and counts are exact;
#   - /readyz answered 503 during each outage and 200 after it;
#   - the workers and the gateway are the processes started at the beginning
#     (they reconnected rather than exited), and exit 0 on SIGTERM at the end
#     with no sanitizer report;
#   - the SSE stream opened before the restarts ends with the completed state
#     and `end` (or, if the gateway dropped it, a reconnect with Last-Event-ID
#     does), job states on it never go back in seq; and a request made after
#     recovery shows `event: job` with status completed, then `event: end`.
#
# Needs IMPORTER_BUILD_DIR (tests/run.sh exports it). IMPORTER_TEST_DATABASE_URL
# is not used: this test restarts its own cluster.
# Environment: PG_RESTART_ROWS (default 300000), PG_RESTART_BATCH (default 500),
# PG_RESTART_KEEP=DIR (copy the services' logs there before cleaning up).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
BUILD=${IMPORTER_BUILD_DIR:?IMPORTER_BUILD_DIR is not set (run through tests/run.sh)}
PG=$ROOT/deploy/local/pg.sh
WORKER=$BUILD/worker/importer-worker
GATEWAY=$BUILD/api/importer-gateway
ROWS=${PG_RESTART_ROWS:-300000}
BATCH=${PG_RESTART_BATCH:-500}
USER_ID=7d1c2b0e-5f3a-4c1e-9a77-0e2f3d4c5b6a
COLLECTION=pgrestart
JWT_SECRET=pg-restart-test-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pg-restart.XXXXXX")
PGDIR=$TMP/pg
PIDS=()  # gateway, worker 1, worker 2
NAMES=() # same order
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
	e2e_dump_logs 15 "$TMP"/gateway.log "$TMP"/worker1.log "$TMP"/worker2.log
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
SUPER_URL=$("$PG" url "$PGDIR")
ADMIN_URL=${SUPER_URL%/postgres}/importer
psql_admin() { psql -X -q -At -v ON_ERROR_STOP=1 "$ADMIN_URL" "$@"; }
psql -X -q -v ON_ERROR_STOP=1 "$SUPER_URL" -c 'CREATE DATABASE importer'
DATABASE_URL=$ADMIN_URL IMPORTER_LOG_LEVEL=warn "$WORKER" migrate 2>"$TMP/migrate.log" ||
	die "importer-worker migrate failed: $(cat "$TMP/migrate.log")"

pw() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
GW_PW=$(pw)
WK_PW=$(pw)
psql_admin <<EOF
SET client_min_messages = warning;
CREATE ROLE importer_gateway_login LOGIN PASSWORD '$GW_PW' IN ROLE importer_api;
CREATE ROLE importer_worker_login LOGIN PASSWORD '$WK_PW' IN ROLE importer_worker;
-- A stale lease (worker lost its connection mid-batch) is rescued after
-- lease_seconds; 5 s instead of 15 keeps the test short.
UPDATE importer.settings SET value = '5' WHERE key = 'lease_seconds' AND user_id IS NULL;
EOF
GW_URL=postgresql://importer_gateway_login:$GW_PW@127.0.0.1:$PG_PORT/importer
WK_URL=postgresql://importer_worker_login:$WK_PW@127.0.0.1:$PG_PORT/importer
say "PostgreSQL on 127.0.0.1:$PG_PORT, migrated"

# ---- gateway and 2 workers -------------------------------------------------------
HTTP_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$HTTP_PORT
env -u IMPORTER_METRICS_ADDR DATABASE_URL="$GW_URL" IMPORTER_LISTEN_DATABASE_URL="$GW_URL" \
	IMPORTER_HTTP_ADDR="127.0.0.1:$HTTP_PORT" IMPORTER_JWT_SECRET="$JWT_SECRET" \
	IMPORTER_SSE_HEARTBEAT_MS=1000 "$GATEWAY" 2>"$TMP/gateway.log" &
PIDS+=("$!")
NAMES+=(gateway)
for i in 1 2; do
	env -u IMPORTER_METRICS_ADDR -u IMPORTER_JWT_SECRET -u IMPORTER_HTTP_ADDR \
		DATABASE_URL="$WK_URL" IMPORTER_LISTEN_DATABASE_URL="$WK_URL" \
		IMPORTER_POLL_INTERVAL_MS=500 "$WORKER" 2>"$TMP/worker$i.log" &
	PIDS+=("$!")
	NAMES+=("worker $i")
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
ok "gateway ready, 2 workers started (pids ${PIDS[*]})"

TOKEN=$(IMPORTER_JWT_SECRET=$JWT_SECRET "$GATEWAY" token --sub "$USER_ID" --ttl 3600 2>/dev/null | tr -d '\r\n')
case $TOKEN in *.*.*) ;; *) die "importer-gateway token printed no token" ;; esac
AUTH="Authorization: Bearer $TOKEN"

# ---- the import ---------------------------------------------------------------------
# Row i: id=k<i>, n=i, payload; the sum of n checks that every record has its data.
CSV=$TMP/data.csv
# The name column is quoted, with embedded quotes: "name ""i""" is name "i".
awk -v n="$ROWS" 'BEGIN { print "id,n,name"; for (i = 1; i <= n; i++) printf "k%d,%d,\"name \"\"%d\"\"\"\n", i, i, i }' >"$CSV"
EXPECT_SUM=$((ROWS * (ROWS + 1) / 2))
curl -s --max-time 60 -o "$TMP/submit.json" -w '%{http_code}' -H "$AUTH" \
	-H 'Content-Type: text/csv' --data-binary "@$CSV" \
	"$BASE/api/jobs?kind=csv&collection=$COLLECTION&batch_size=$BATCH&file_name=data.csv" \
	>"$TMP/submit.code" || true
[ "$(cat "$TMP/submit.code")" = 202 ] ||
	die "submit: HTTP $(cat "$TMP/submit.code"): $(head -c 500 "$TMP/submit.json")"
JOB=$(jq -r .id "$TMP/submit.json")
say "submitted job $JOB ($ROWS rows, $(($(stat -c %s "$CSV") / 1024)) KiB, batch_size $BATCH)"

job_field() { # job_field EXPR: from the database (empty while it is down)
	psql -X -q -At "$ADMIN_URL" -c "SELECT $1 FROM importer.import_jobs WHERE id = '$JOB'" 2>/dev/null || true
}

# SSE stream opened before the restarts; it should stay open through them.
sse_open() { # sse_open OUT [LAST_EVENT_ID] [MAX_TIME]
	local hdr=()
	[ -z "${2:-}" ] || hdr=(-H "Last-Event-ID: $2")
	curl -s -N --max-time "${3:-120}" -H "$AUTH" -H 'Accept: text/event-stream' "${hdr[@]}" \
		"$BASE/api/jobs/$JOB/events" >"$1" 2>/dev/null
}
sse_open "$TMP/sse_live.txt" &
SSE_LIVE=$!
SSE_PIDS+=("$SSE_LIVE")

# wait_progress MIN SECONDS: until processing with processed_items > MIN.
wait_progress() {
	local min=$1 deadline=$((SECONDS + $2)) st
	while :; do
		st=$(job_field "status || ' ' || processed_items")
		case $st in
		processing\ *) [ "${st#* }" -le "$min" ] || {
			PROGRESS=${st#* }
			return 0
		} ;;
		completed\ * | failed\ * | cancelled\ *)
			say "job already $st"
			return 1
			;;
		esac
		[ "$SECONDS" -lt "$deadline" ] || {
			say "no progress past $min in $2 s (job: ${st:-?})"
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

wait_progress 0 60 || die "the job never showed progress"
say "progress visible: $PROGRESS of $ROWS processed; fast restart"
[ "$PROGRESS" -lt "$ROWS" ] || die "the job finished before the restart (raise PG_RESTART_ROWS)"
restart fast

CRASHED=0
if wait_progress "$(job_field processed_items)" 40; then
	say "progress after recovery: $PROGRESS of $ROWS; immediate shutdown (crash)"
	restart immediate
	CRASHED=1
else
	say "job no longer running after the first restart: crash restart skipped"
fi

# ---- the job completes ----------------------------------------------------------------
deadline=$((SECONDS + 60))
while :; do
	st=$(job_field status)
	case $st in completed | failed | cancelled) break ;; esac
	[ "$SECONDS" -lt "$deadline" ] || break
	sleep 0.2
done
IFS='|' read -r status processed total failed inserted updated cfailed attempts estimate < <(
	job_field "status, processed_items, total_items, failed_items,
		counts->>'inserted', counts->>'updated', counts->>'failed', attempts, total_is_estimate"
) || true
if [ "$status" = completed ]; then
	ok "job completed ($((SECONDS - START)) s since start, attempts $attempts)"
else
	fail "job is '${status:-?}' after the deadline, not completed (processed $processed, error: $(job_field error_message))"
fi
check() { # check DESCRIPTION-IF-OK DESCRIPTION-IF-NOT TEST...
	local good=$1 bad=$2
	shift 2
	if "$@"; then ok "$good"; else fail "$bad"; fi
}
check "processed_items = $ROWS" "processed_items = $processed, want $ROWS" [ "$processed" = "$ROWS" ]
check "total_items = $ROWS (exact)" "total_items = $total (estimate: $estimate), want $ROWS exact" \
	[ "$total" = "$ROWS" -a "$estimate" = f ]
check "failed_items = 0, counts.failed = 0" "failed_items = $failed, counts.failed = $cfailed, want 0" \
	[ "$failed" = 0 -a "$cfailed" = 0 ]
check "counts.inserted = $ROWS" "counts.inserted = $inserted, want $ROWS" [ "$inserted" = "$ROWS" ]
check "counts.updated = 0 (no batch written twice)" \
	"counts.updated = $updated, want 0 (a committed batch was written again)" [ "$updated" = 0 ]

IFS='|' read -r n distinct sum good < <(psql_admin -c "
	SELECT count(*), count(DISTINCT record_key), coalesce(sum((data->>'n')::bigint), 0),
	       count(*) FILTER (WHERE record_key = data->>'id' AND record_key = 'k' || (data->>'n')
	                          AND data->>'name' = 'name \"' || (data->>'n') || '\"'
	                          AND job_id = '$JOB')
	FROM importer.records WHERE user_id = '$USER_ID' AND collection = '$COLLECTION'") || true
if [ "$n" = "$ROWS" ] && [ "$distinct" = "$ROWS" ] && [ "$sum" = "$EXPECT_SUM" ] && [ "$good" = "$ROWS" ]; then
	ok "records: $ROWS, distinct keys, each with its own data"
else
	fail "records: count $n, distinct keys $distinct, sum(n) $sum (want $EXPECT_SUM), well-formed $good (want $ROWS each)"
fi
say "job log: $(psql_admin -c "SELECT string_agg(event || coalesce(' (' || left(message, 60) || ')', ''), '; ' ORDER BY id)
	FROM importer.import_logs WHERE job_id = '$JOB'" || true)"
errs=$(psql_admin -c "SELECT count(*) FROM importer.import_errors WHERE job_id = '$JOB'" || echo '?')
[ "$errs" = 0 ] || fail "$errs import_errors rows for the job, want 0"

# ---- the processes reconnected instead of exiting -------------------------------------
if dead=$(all_alive); then
	ok "gateway and workers are the processes started at the beginning"
else
	fail "$dead"
fi
# DESIGN.md: logs are one JSON object per line, even while the database
# goes away (libpq's notices, such as "FATAL: terminating connection due to
# administrator command", go through our notice processor as db.notice).
for f in gateway worker1 worker2; do
	n=$(grep -cv '^{' "$TMP/$f.log" || true)
	if [ "$n" = 0 ]; then
		ok "$f wrote only JSON log lines"
	else
		fail "$f.log has $n non-JSON line(s), e.g. '$(grep -v '^{' "$TMP/$f.log" | head -n 1)'"
	fi
done

# ---- SSE ------------------------------------------------------------------------------
# The stream opened before the restarts: the gateway keeps it, so it ends with
# the completed state and `end` and closes; if it was dropped, reconnect with
# the last id it saw.
deadline=$((SECONDS + 15))
while kill -0 "$SSE_LIVE" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
live_last_id=$(sed -n 's/^id: *//p' "$TMP/sse_live.txt" | tail -n 1)
# ends_completed FILE: a job event with status completed, then `end` with it.
ends_completed() {
	python3 - "$1" "$JOB" <<'PY'
import json, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
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
        if j.get("id") == sys.argv[2]:
            job_ids.append(int(eid) if eid else -1)
            if j.get("status") == "completed":
                seen_completed = True
    if ev == "end":
        j = json.loads(data)
        if not seen_completed:
            problems.append("`end` before any job event with status completed")
        if j.get("status") != "completed" or j.get("id") != sys.argv[2]:
            problems.append("end payload %s" % data)
        break
else:
    problems.append("no `end` event (events: %s)" % ", ".join(e for e, _, _ in events[-8:]))
if any(b <= a for a, b in zip(job_ids, job_ids[1:])):
    problems.append("job event ids not increasing: %s" % job_ids)
print("; ".join(problems) if problems else "%d events, %d job states" % (len(events), len(job_ids)))
sys.exit(1 if problems else 0)
PY
}
if kill -0 "$SSE_LIVE" 2>/dev/null; then
	fail "the SSE stream opened before the restarts is still open 15 s after the job completed"
elif r=$(ends_completed "$TMP/sse_live.txt"); then
	ok "SSE stream kept open through the restarts saw the completed state and end ($r)"
else
	say "SSE stream opened before the restarts did not end properly ($r); reconnecting with Last-Event-ID ${live_last_id:-none}"
	sse_open "$TMP/sse_reconnect.txt" "${live_last_id:-}" 15 || true
	if r=$(ends_completed "$TMP/sse_reconnect.txt"); then
		ok "SSE reconnect with Last-Event-ID ${live_last_id:-none} saw the completed state and end ($r)"
	else
		fail "SSE reconnect with Last-Event-ID ${live_last_id:-none}: $r"
	fi
fi
# A request made after recovery, with the last id the live stream saw.
sse_open "$TMP/sse_after.txt" "${live_last_id:-}" 15 || true
if r=$(ends_completed "$TMP/sse_after.txt"); then
	ok "SSE request after recovery (Last-Event-ID ${live_last_id:-none}): job completed, then end ($r)"
else
	fail "SSE request after recovery: $r"
	head -c 2000 "$TMP/sse_after.txt" >&2
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
[ "$CRASHED" = 1 ] || say "note: only the fast restart ran (the job finished before the crash)"
[ "$failures" -eq 0 ] || exit 1
