#!/usr/bin/env bash
# tests/e2e/gateway_kill.sh -- a gateway killed with SIGKILL under 200 open SSE
# streams; the clients reconnect to a new gateway process with Last-Event-ID.
#
# On a private throwaway cluster: migrate, login roles, 1 worker and a
# gateway. 10 users each submit a 5,000-row CSV (batch_size 50) and open 20
# SSE streams each (half on their job, half global): 200 streams. Once every
# stream has its first snapshot, the gateway gets SIGKILL; every stream must
# see its connection close. A new gateway process starts on the same port and
# every client reconnects with the last event id it saw: each gets its job's
# current state first (no older than the database said before reconnecting),
# then follows it to completed (and `end` on the per-job streams), without
# seeing another user's job. The worker never notices: every job completes
# with all its records exactly once. Finally the worker and the new gateway
# exit 0 on SIGTERM with no sanitizer report. (tests/e2e/gateway_kill.py does
# the client side.)
#
# Needs IMPORTER_BUILD_DIR (tests/run.sh exports it). Environment:
# GK_USERS (default 10), GK_STREAMS per user (default 20), GK_ROWS (5000).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
BUILD=${IMPORTER_BUILD_DIR:?IMPORTER_BUILD_DIR is not set (run through tests/run.sh)}
PG=$ROOT/deploy/local/pg.sh
WORKER=$BUILD/worker/importer-worker
GATEWAY=$BUILD/api/importer-gateway
NUSERS=${GK_USERS:-10}
export GK_STREAMS=${GK_STREAMS:-20}
ROWS=${GK_ROWS:-5000}
JWT_SECRET=gateway-kill-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gateway-kill.XXXXXX")
PGDIR=$TMP/pg
PIDS=() # worker, gateway (the current one)
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	e2e_stop_pids "${PIDS[@]}"
	wait 2>/dev/null || true
	e2e_finish "$rc" "${GK_KEEP:-}" "$TMP"/gateway1.log "$TMP"/gateway2.log "$TMP"/worker.log
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
psql_admin() { psql -X -q -At -v ON_ERROR_STOP=1 "$ADMIN_URL" "$@"; }
say "PostgreSQL on 127.0.0.1:$port, migrated"

HTTP_PORT=$(e2e_free_port)
export GK_PORT=$HTTP_PORT GK_ADMIN_URL=$ADMIN_URL GK_TOKENS=$TMP/tokens GK_STATE=$TMP/state.json
readyz() { # prints the status of GET /readyz, or "-"
	python3 - "$HTTP_PORT" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    print(s.recv(64).split(b" ")[1].decode())
except Exception:
    print("-")
PY
}
start_gateway() { # start_gateway N
	env -u IMPORTER_METRICS_ADDR DATABASE_URL="$GW_URL" IMPORTER_LISTEN_DATABASE_URL="$GW_URL" \
		IMPORTER_HTTP_ADDR="127.0.0.1:$HTTP_PORT" IMPORTER_JWT_SECRET="$JWT_SECRET" \
		IMPORTER_SSE_HEARTBEAT_MS=1000 "$GATEWAY" 2>"$TMP/gateway$1.log" &
	GW_PID=$!
	local deadline=$((SECONDS + 30))
	until [ "$(readyz)" = 200 ]; do
		[ "$SECONDS" -lt "$deadline" ] || die "gateway $1 not ready within 30 s"
		sleep 0.1
	done
}

env -u IMPORTER_METRICS_ADDR -u IMPORTER_JWT_SECRET -u IMPORTER_HTTP_ADDR \
	DATABASE_URL="$WK_URL" IMPORTER_LISTEN_DATABASE_URL="$WK_URL" \
	IMPORTER_POLL_INTERVAL_MS=500 "$WORKER" 2>"$TMP/worker.log" &
PIDS+=("$!")
start_gateway 1
PIDS+=("$GW_PID")
FIRST_GW=$GW_PID
say "worker pid ${PIDS[0]}, gateway 1 pid $GW_PID on 127.0.0.1:$HTTP_PORT"

# ---- users, jobs ------------------------------------------------------------------------
awk -v n="$ROWS" 'BEGIN { print "id,n"; for (i = 1; i <= n; i++) printf "k%d,%d\n", i, i }' >"$TMP/data.csv"
: >"$GK_TOKENS"
for ((u = 1; u <= NUSERS; u++)); do
	user=$(printf '6a7e0000-0000-4000-8000-%012d' "$u")
	tok=$(IMPORTER_JWT_SECRET=$JWT_SECRET "$GATEWAY" token --sub "$user" --ttl 3600 2>/dev/null | tr -d '\r\n')
	echo "$user $tok" >>"$GK_TOKENS"
done
GK_CSV=$TMP/data.csv python3 "$ROOT/tests/e2e/gateway_kill.py" setup || die "submitting the jobs failed"
say "$NUSERS users submitted a $ROWS-row CSV each"

# ---- 200 streams, then SIGKILL --------------------------------------------------------
coproc CLIENTS { python3 "$ROOT/tests/e2e/gateway_kill.py" before 2>&1; }
CLIENTS_PID_SAVED=$CLIENTS_PID
ready=0
while IFS= read -r line <&"${CLIENTS[0]}"; do
	say "clients: $line"
	case $line in ready:*)
		ready=1
		break
		;;
	esac
done
[ "$ready" = 1 ] || die "the SSE clients never got ready"
at_kill=$(psql_admin -c "SELECT string_agg(status || ':' || count, ' ') FROM
	(SELECT status, count(*) FROM importer.import_jobs GROUP BY status ORDER BY status) s")
kill -KILL "$FIRST_GW"
wait "$FIRST_GW" 2>/dev/null || true
PIDS=("${PIDS[0]}")
say "gateway 1 killed with SIGKILL (jobs then: $at_kill)"
while IFS= read -r line <&"${CLIENTS[0]}"; do say "clients: $line"; done
rc=0
wait "$CLIENTS_PID_SAVED" || rc=$?
[ "$rc" -eq 0 ] || fail "SSE clients before the kill (above)"

# ---- a new gateway, reconnects with Last-Event-ID --------------------------------------
start_gateway 2
PIDS+=("$GW_PID")
say "gateway 2 pid $GW_PID ready on the same port; clients reconnect"
rc=0
python3 "$ROOT/tests/e2e/gateway_kill.py" after || rc=$?
[ "$rc" -eq 0 ] || fail "SSE clients after the kill (above)"

# ---- every job completed, each record once ----------------------------------------------
IFS='|' read -r done total distinct < <(psql_admin -c "
	SELECT (SELECT count(*) FROM importer.import_jobs WHERE status = 'completed'
	          AND processed_items = $ROWS AND failed_items = 0),
	       count(*), count(DISTINCT (user_id, record_key))
	FROM importer.records WHERE collection = 'gk'")
if [ "$done" = "$NUSERS" ] && [ "$total" = $((NUSERS * ROWS)) ] && [ "$distinct" = "$total" ]; then
	say "ok: $NUSERS jobs completed, $total records, each once"
else
	fail "completed jobs $done (want $NUSERS), records $total, distinct $distinct (want $((NUSERS * ROWS)))"
fi
kill -0 "${PIDS[0]}" 2>/dev/null || fail "the worker exited"

# ---- clean exit -------------------------------------------------------------------------
names=(worker gateway2)
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for i in "${!PIDS[@]}"; do
	rc=0
	wait "${PIDS[$i]}" || rc=$?
	[ "$rc" -eq 0 ] || fail "${names[$i]} exited $rc on SIGTERM"
done
PIDS=()
if grep -l 'Sanitizer\|runtime error:' "$TMP"/gateway2.log "$TMP"/worker.log; then
	fail "sanitizer report in the logs above"
fi
[ "$failures" -eq 0 ] || exit 1
say "worker and gateway 2 exited 0 on SIGTERM, no sanitizer report"
