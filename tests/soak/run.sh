#!/usr/bin/env bash
# tests/soak/run.sh -- the fault soak: 8 workers, 50 users, 2,000 mixed jobs, random
# cancels, pauses, resumes, retries, worker kill -9s and freezes for 10 minutes.
#
# Not part of tests/run.sh. On a private throwaway cluster (deploy/local/pg.sh
# --fast): migrate, login roles, one gateway; tests/soak/soak.py then runs the
# workers, the users (over HTTP, with their own JWTs), the chaos and the RSS
# sampler, and checks everything at the end (see its docstring and
# tests/soak/check_leases.py). Finally the gateway must exit 0 on SIGTERM;
# every log (gateway, every worker process, killed ones included) must hold
# only JSON lines and no sanitizer report. Built with ASan + UBSan and leak
# detection like the e2e scripts; ASan's quarantine is capped at 16 MB
# (quarantine_size_mb) so that RSS measures the program, not a 256 MB
# quarantine filling up.
#
# Needs a build: IMPORTER_BUILD_DIR (default build/test). Environment (defaults):
#   SOAK_SECONDS 600   chaos duration (then paused jobs are resumed and all drain)
#   SOAK_JOBS 2000, SOAK_USERS 50, SOAK_WORKERS 8, SOAK_MAX_ROWS 15000 (largest file)
#   SOAK_KILL_EVERY 15, SOAK_FREEZE_EVERY 60 (seconds, randomised ±50%)
#   SOAK_LEASE 5 (lease_seconds), SOAK_STREAMS 10 (global SSE streams held open)
#   SOAK_DRAIN_SECONDS 600, SOAK_SEED (random), SOAK_KEEP=DIR (keep the logs)
# A 2-minute smoke: SOAK_SECONDS=120 SOAK_JOBS=300 tests/soak/run.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
BUILD=${IMPORTER_BUILD_DIR:-$ROOT/build/test}
PG=$ROOT/deploy/local/pg.sh
WORKER=$BUILD/worker/importer-worker
GATEWAY=$BUILD/api/importer-gateway
LEASE=${SOAK_LEASE:-5}
JWT_SECRET=soak-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:quarantine_size_mb=16}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")
PGDIR=$TMP/pg
GW_PID=
SOAK_PID=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# soak.py's own workers: it is a process group leader (setsid)
	if [ -n "$SOAK_PID" ]; then kill -TERM -- "-$SOAK_PID" 2>/dev/null || true; fi
	e2e_stop_pids ${GW_PID:+"$GW_PID"}
	if [ -n "$SOAK_PID" ]; then kill -KILL -- "-$SOAK_PID" 2>/dev/null || true; fi
	wait 2>/dev/null || true
	e2e_finish "$rc" "${SOAK_KEEP:-}" "$TMP"/gateway.log
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -x "$WORKER" ] || die "$WORKER not found (build first, or set IMPORTER_BUILD_DIR)"
[ -x "$GATEWAY" ] || die "$GATEWAY not found (build first, or set IMPORTER_BUILD_DIR)"
for tool in psql python3 setsid; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done

e2e_start_cluster "$PG" "$PGDIR" "$TMP"
# A short lease so that killed and frozen workers' jobs are rescued quickly;
# more rescues than the default 5 before a job fails, since the soak kills
# often (a job failing after max_rescues is still accepted, and reported).
e2e_init_db "$PG" "$PGDIR" "$TMP" "$WORKER" "
UPDATE importer.settings SET value = '$LEASE' WHERE key = 'lease_seconds' AND user_id IS NULL;
UPDATE importer.settings SET value = '10' WHERE key = 'max_rescues' AND user_id IS NULL;"
POSTMASTER_PID=$("$PG" status "$PGDIR" | sed -n 's/^running (pid \([0-9]*\)).*/\1/p')
[ -n "$POSTMASTER_PID" ] || die "no postmaster pid from pg.sh status"
say "PostgreSQL on 127.0.0.1:$port (postmaster $POSTMASTER_PID), migrated (lease_seconds $LEASE, max_rescues 10)"

HTTP_PORT=$(e2e_free_port)
env -u IMPORTER_METRICS_ADDR DATABASE_URL="$GW_URL" IMPORTER_LISTEN_DATABASE_URL="$GW_URL" \
	IMPORTER_HTTP_ADDR="127.0.0.1:$HTTP_PORT" IMPORTER_JWT_SECRET="$JWT_SECRET" \
	IMPORTER_SSE_HEARTBEAT_MS=1000 "$GATEWAY" 2>"$TMP/gateway.log" &
GW_PID=$!
deadline=$((SECONDS + 30))
until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$HTTP_PORT/readyz" || true)" = 200 ]; do
	[ "$SECONDS" -lt "$deadline" ] || die "gateway not ready within 30 s"
	sleep 0.1
done
say "gateway pid $GW_PID on 127.0.0.1:$HTTP_PORT; load average $(cut -d' ' -f1-3 /proc/loadavg)"

rc=0
SOAK_HTTP_PORT=$HTTP_PORT SOAK_JWT_SECRET=$JWT_SECRET SOAK_ADMIN_URL=$ADMIN_URL SOAK_WK_URL=$WK_URL \
	SOAK_WORKER=$WORKER SOAK_DIR=$TMP SOAK_GATEWAY_PID=$GW_PID SOAK_POSTMASTER_PID=$POSTMASTER_PID \
	SOAK_LEASE=$LEASE setsid python3 "$ROOT/tests/soak/soak.py" &
SOAK_PID=$!
wait "$SOAK_PID" || rc=$?
SOAK_PID=
[ "$rc" -eq 0 ] || fail "soak checks failed (above)"
say "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"

kill -TERM "$GW_PID"
rc=0
wait "$GW_PID" || rc=$?
GW_PID=
[ "$rc" -eq 0 ] || fail "the gateway exited $rc on SIGTERM"
if grep -l 'Sanitizer\|runtime error:' "$TMP"/gateway.log; then fail "sanitizer report in the gateway log"; fi
n=$(grep -cv '^{' "$TMP/gateway.log" || true)
[ "$n" = 0 ] || fail "gateway.log has $n non-JSON line(s), e.g. '$(grep -v '^{' "$TMP/gateway.log" | head -n 1 | cut -c1-200)'"
[ "$failures" -eq 0 ]
