#!/usr/bin/env bash
# tests/e2e/hostile.sh -- hostile input (the tests/inputs catalogue) and hostile
# users (tenant isolation, forged tokens) against a real gateway, worker and
# PostgreSQL.
#
# On a private throwaway cluster (deploy/local/pg.sh --fast): migrate, create
# login roles as deploy/local/run.sh does, start 1 gateway and 1 worker, then
# run tests/inputs/run_cases.py, which sends every case of tests/inputs/cases
# and checks its specific error, job outcome and record errors, that the
# database is unchanged where it should be, and that both processes stay up.
# Then tests/e2e/tenant_isolation.py: a second user tries every route on the
# first user's jobs, records, upload and streams, and forged or misplaced
# tokens are tried; nothing may be visible or change. Then tests/e2e/caps.py:
# concurrent submits, SSE opens and oversized uploads against the per-user
# caps (exact, never overshot; other users unaffected).
# At the end both processes must exit 0 on SIGTERM with no sanitizer report
# (leak detection on) and have written only JSON log lines.
#
# Needs IMPORTER_BUILD_DIR (tests/run.sh exports it). IMPORTER_TEST_DATABASE_URL
# is not used. Environment: HOSTILE_CASES=GLOB runs only matching cases;
# HOSTILE_KEEP=DIR copies the services' logs there before cleaning up.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
BUILD=${IMPORTER_BUILD_DIR:?IMPORTER_BUILD_DIR is not set (run through tests/run.sh)}
PG=$ROOT/deploy/local/pg.sh
WORKER=$BUILD/worker/importer-worker
GATEWAY=$BUILD/api/importer-gateway
USER_ID=5c0ffee0-7e57-4bad-9000-00000000beef
JWT_SECRET=hostile-test-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hostile.XXXXXX")
PGDIR=$TMP/pg
PIDS=() # gateway, worker

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	e2e_stop_pids "${PIDS[@]}"
	wait 2>/dev/null || true
	e2e_finish "$rc" "${HOSTILE_KEEP:-}" "$TMP"/gateway.log "$TMP"/worker.log
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -x "$WORKER" ] || die "$WORKER not found"
[ -x "$GATEWAY" ] || die "$GATEWAY not found"
for tool in psql python3; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done

# ---- a private cluster on a free port -------------------------------------------
e2e_start_cluster "$PG" "$PGDIR" "$TMP"
e2e_init_db "$PG" "$PGDIR" "$TMP" "$WORKER"
say "PostgreSQL on 127.0.0.1:$port, migrated"

# ---- gateway and worker -----------------------------------------------------------
HTTP_PORT=$(e2e_free_port)
BASE=http://127.0.0.1:$HTTP_PORT
env -u IMPORTER_METRICS_ADDR DATABASE_URL="$GW_URL" IMPORTER_LISTEN_DATABASE_URL="$GW_URL" \
	IMPORTER_HTTP_ADDR="127.0.0.1:$HTTP_PORT" IMPORTER_JWT_SECRET="$JWT_SECRET" \
	"$GATEWAY" 2>"$TMP/gateway.log" &
PIDS+=("$!")
env -u IMPORTER_METRICS_ADDR -u IMPORTER_JWT_SECRET -u IMPORTER_HTTP_ADDR \
	DATABASE_URL="$WK_URL" IMPORTER_LISTEN_DATABASE_URL="$WK_URL" \
	IMPORTER_POLL_INTERVAL_MS=500 "$WORKER" 2>"$TMP/worker.log" &
PIDS+=("$!")
deadline=$((SECONDS + 30))
until [ "$(python3 - "$HTTP_PORT" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    print(s.recv(64).split(b" ")[1].decode())
except Exception:
    print("-")
PY
)" = 200 ]; do
	[ "$SECONDS" -lt "$deadline" ] || die "gateway not ready within 30 s"
	sleep 0.1
done
TOKEN=$(IMPORTER_JWT_SECRET=$JWT_SECRET "$GATEWAY" token --sub "$USER_ID" --ttl 3600 2>/dev/null | tr -d '\r\n')
case $TOKEN in *.*.*) ;; *) die "importer-gateway token printed no token" ;; esac
say "gateway (pid ${PIDS[0]}) ready on $BASE, worker pid ${PIDS[1]}"

# ---- the catalogue ------------------------------------------------------------------
rc=0
HOSTILE_BASE=$BASE HOSTILE_TOKEN=$TOKEN HOSTILE_USER=$USER_ID HOSTILE_ADMIN_URL=$ADMIN_URL \
	HOSTILE_PIDS="${PIDS[*]}" python3 "$ROOT/tests/inputs/run_cases.py" || rc=$?
[ "$rc" -eq 0 ] || fail "hostile-input cases failed (above)"

# ---- hostile users: B against A's objects, forged tokens ----------------------------
rc=0
HOSTILE_BASE=$BASE HOSTILE_TOKEN=$TOKEN HOSTILE_USER=$USER_ID HOSTILE_ADMIN_URL=$ADMIN_URL \
	HOSTILE_PIDS="${PIDS[*]}" HOSTILE_JWT_SECRET=$JWT_SECRET \
	python3 "$ROOT/tests/e2e/tenant_isolation.py" || rc=$?
[ "$rc" -eq 0 ] || fail "tenant isolation checks failed (above)"

# ---- per-user caps under concurrent requests ----------------------------------------
rc=0
HOSTILE_BASE=$BASE HOSTILE_TOKEN=$TOKEN HOSTILE_USER=$USER_ID HOSTILE_ADMIN_URL=$ADMIN_URL \
	HOSTILE_PIDS="${PIDS[*]}" HOSTILE_JWT_SECRET=$JWT_SECRET \
	python3 "$ROOT/tests/e2e/caps.py" || rc=$?
[ "$rc" -eq 0 ] || fail "per-user cap checks failed (above)"

# ---- clean exit: SIGTERM, exit 0, no sanitizer report, JSON logs -------------------
names=(gateway worker)
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for i in "${!PIDS[@]}"; do
	rc=0
	wait "${PIDS[$i]}" || rc=$?
	[ "$rc" -eq 0 ] || fail "${names[$i]} exited $rc on SIGTERM"
done
PIDS=()
if grep -l 'Sanitizer\|runtime error:' "$TMP"/gateway.log "$TMP"/worker.log; then
	fail "sanitizer report in the logs above"
fi
for f in gateway worker; do
	n=$(grep -cv '^{' "$TMP/$f.log" || true)
	[ "$n" = 0 ] || fail "$f.log has $n non-JSON line(s), e.g. '$(grep -v '^{' "$TMP/$f.log" | head -n 1 | cut -c1-200)'"
done
[ "$failures" -eq 0 ] || exit 1
say "gateway and worker exited 0 on SIGTERM, no sanitizer report, JSON logs only"
