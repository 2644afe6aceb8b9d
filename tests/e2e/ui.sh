#!/usr/bin/env bash
# tests/e2e/ui.sh -- the web UI in a real headless browser.
#
# Debian's chromium driven by playwright-core (tests/e2e/ui/, `npm ci` from the
# committed lockfile) against a real importer-gateway serving its embedded UI,
# 2 real importer-worker processes and a fresh database in the cluster
# tests/run.sh started. The spec (tests/e2e/ui/ui.test.js) owns the gateway
# process so that it can restart it; this script prepares the database, roles,
# tokens and workers, and cleans up on every exit path. Scenarios:
#   - a CSV uploaded through the page: bar at 100 %, completed, counts = rows;
#   - a large import cancelled from the page shows cancelled within seconds;
#     a paused job resumes from the page;
#   - a file with bad rows shows its record errors, paged; the CSV download holds
#     them; Delete (confirmed) removes the job;
#   - a file that cannot be imported fails with its reason; Retry runs it again;
#   - by keyboard only, a file over 8 MiB goes up in 1 MiB chunks, as a dry run
#     (nothing written);
#   - a second user's token never shows the first user's jobs;
#   - the gateway restarted while a job runs: the page carries on updating;
#   - a token the gateway refuses gets a clear message; phone width; the filter.
# Before the browser, tests/e2e/ui/web_units.test.js checks the page's pure
# parts in Node (SSE parser at every chunk split, the actions' lifecycle rules,
# kind inference, wording of times).
# Screenshots go to $IMPORTER_UI_ARTIFACTS (default: a new directory under
# ${TMPDIR:-/tmp}, printed at the end; kept).
#
# Needs IMPORTER_BUILD_DIR and IMPORTER_TEST_DATABASE_URL (tests/run.sh exports
# both), node + npm, and the Debian package chromium. Takes 1.5-2 minutes.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${IMPORTER_BUILD_DIR:?IMPORTER_BUILD_DIR is not set (run through tests/run.sh)}
ADMIN_URL=${IMPORTER_TEST_DATABASE_URL:?IMPORTER_TEST_DATABASE_URL is not set (run through tests/run.sh)}
WORKER=$BUILD/worker/importer-worker
GATEWAY=$BUILD/api/importer-gateway
SPEC_DIR=$ROOT/tests/e2e/ui
CHROMIUM=${IMPORTER_CHROMIUM:-/usr/bin/chromium}
START=$SECONDS
PROG=ui.sh

SFX=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
DB=e2e_ui_$SFX
WK_ROLE=e2e_ui_wk_$SFX # login roles are cluster-wide: unique names, dropped at the end
GW_ROLE=e2e_ui_gw_$SFX
WK_PW=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
GW_PW=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
JWT_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
USER_A=$(cat /proc/sys/kernel/random/uuid)    # uploads, record errors
USER_B=$(cat /proc/sys/kernel/random/uuid)    # the second user: sees none of A's jobs
USER_SLOW=$(cat /proc/sys/kernel/random/uuid) # large imports, slowed down: cancel, pause, restart

TMP=$(mktemp -d "${TMPDIR:-/tmp}/e2e-ui.XXXXXX")
ARTIFACTS=${IMPORTER_UI_ARTIFACTS:-}
if [ -z "$ARTIFACTS" ]; then ARTIFACTS=$(mktemp -d "${TMPDIR:-/tmp}/importer-ui-artifacts.XXXXXX"); fi
mkdir -p "$ARTIFACTS"
PIDS=() # workers
DB_CREATED=0
ROLES_CREATED=0
failures=0

say() { printf '%s: [%3ss] %s\n' "$PROG" "$((SECONDS - START))" "$*"; }
die() {
	printf '%s: FAIL: %s\n' "$PROG" "$*" >&2
	failures=$((failures + 1))
	exit 1
}
psql_admin() { psql -X -q -At -v ON_ERROR_STOP=1 "$ADMIN_URL" "$@"; }
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# url_with USER PW DB: the admin URL's host and port with another user and database
url_with() {
	python3 - "$ADMIN_URL" "$@" <<'PY'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
user, pw, db = sys.argv[2:5]
auth = f"{u.quote(user)}:{u.quote(pw)}@" if user else (p.netloc.rsplit("@", 1)[0] + "@" if "@" in p.netloc else "")
print(f"postgresql://{auth}{p.hostname or '127.0.0.1'}:{p.port or 5432}/{db}")
PY
}

stop_pid() { # PID NAME: SIGTERM, up to 15 s, then SIGKILL (and say so)
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null && printf '%s: %s (pid %s) ignored SIGTERM: killed\n' "$PROG" "$2" "$pid" >&2
	return 0
}

cleanup() {
	local rc=$? p f gw
	trap - EXIT INT TERM
	# The spec's gateway, if the spec died before stopping it.
	if [ -s "$TMP/gateway.pid" ]; then
		gw=$(cat "$TMP/gateway.pid")
		if [ "$(cat "/proc/$gw/comm" 2>/dev/null || true)" = importer-gatewa ]; then stop_pid "$gw" gateway; fi
	fi
	for p in "${PIDS[@]}"; do stop_pid "$p" worker; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ "$DB_CREATED" = 1 ]; then
		psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 ||
			echo "$PROG: warning: could not drop database $DB" >&2
	fi
	if [ "$ROLES_CREATED" = 1 ]; then
		psql_admin -c "DROP ROLE IF EXISTS $WK_ROLE" -c "DROP ROLE IF EXISTS $GW_ROLE" >/dev/null 2>&1 ||
			echo "$PROG: warning: could not drop roles $WK_ROLE, $GW_ROLE" >&2
	fi
	if [ "$rc" -ne 0 ] || [ "$failures" -gt 0 ]; then
		echo "$PROG: service logs (warnings and errors, then the last lines):" >&2
		for f in "$TMP"/*.log; do
			[ -s "$f" ] || continue
			echo "---- $f" >&2
			grep -E '"level":"(warn|error)"|AddressSanitizer|runtime error' "$f" | tail -n 10 >&2 || true
			tail -n 10 "$f" >&2 || true
		done
		cp "$TMP"/*.log "$ARTIFACTS"/ 2>/dev/null || true
	fi
	rm -rf -- "$TMP"
	echo "$PROG: screenshots in $ARTIFACTS"
	if [ "$rc" -ne 0 ] || [ "$failures" -gt 0 ]; then
		printf '%s: FAIL (%ss)\n' "$PROG" "$((SECONDS - START))"
		exit 1
	fi
	printf '%s: PASS (%ss)\n' "$PROG" "$((SECONDS - START))"
	exit 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 0. tools --------------------------------------------------------------------------
for tool in node npm psql python3; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
[ -x "$CHROMIUM" ] || die "$CHROMIUM not found (install the Debian package chromium, tests/deps.txt)"
if [ ! -x "$WORKER" ] || [ ! -x "$GATEWAY" ]; then die "$WORKER or $GATEWAY is not built"; fi
# npm ci only when the installed tree is not the lockfile's (it is quick, but
# needs the registry or the npm cache).
if ! cmp -s "$SPEC_DIR/package-lock.json" "$SPEC_DIR/node_modules/.ui-lock" 2>/dev/null; then
	say "npm ci in tests/e2e/ui"
	(cd "$SPEC_DIR" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed in $SPEC_DIR"
	cp "$SPEC_DIR/package-lock.json" "$SPEC_DIR/node_modules/.ui-lock"
fi

# ---- 1. database, roles, settings ------------------------------------------------------
DB_URL=$(url_with "" "" "$DB")
psql_admin -c "CREATE DATABASE $DB" >/dev/null || die "CREATE DATABASE $DB"
DB_CREATED=1
DATABASE_URL=$DB_URL IMPORTER_LISTEN_DATABASE_URL=$DB_URL IMPORTER_LOG_LEVEL=warn \
	"$WORKER" migrate 2>"$TMP/migrate.log" || die "importer-worker migrate: $(cat "$TMP/migrate.log")"
ROLES_CREATED=1
psql -X -q -At -v ON_ERROR_STOP=1 "$DB_URL" >/dev/null <<EOF || die "creating login roles"
SET client_min_messages = warning;
CREATE ROLE $WK_ROLE LOGIN PASSWORD '$WK_PW';
CREATE ROLE $GW_ROLE LOGIN PASSWORD '$GW_PW';
GRANT importer_worker TO $WK_ROLE;
GRANT importer_api TO $GW_ROLE;
-- The slow user's batches are small and paused, so that its large imports
-- are surely still running when the page cancels, pauses or loses the gateway.
INSERT INTO importer.settings (key, value, user_id) VALUES
	('batch_rows', '2000', '$USER_SLOW'), ('batch_pause_ms', '150', '$USER_SLOW');
EOF
WK_URL=$(url_with "$WK_ROLE" "$WK_PW" "$DB")
GW_URL=$(url_with "$GW_ROLE" "$GW_PW" "$DB")

# ---- 2. workers (the spec starts and restarts the gateway) ------------------------------
for n in 1 2; do
	env -u IMPORTER_METRICS_ADDR -u IMPORTER_JWT_SECRET -u IMPORTER_HTTP_ADDR \
		DATABASE_URL="$WK_URL" IMPORTER_LISTEN_DATABASE_URL="$WK_URL" \
		IMPORTER_POLL_INTERVAL_MS=1000 IMPORTER_LOG_LEVEL=info "$WORKER" 2>"$TMP/worker$n.log" &
	PIDS+=("$!")
done

mint() { # SECRET SUB
	env IMPORTER_JWT_SECRET="$1" "$GATEWAY" token --sub "$2" --ttl 900 2>/dev/null | tr -d '\r\n'
}
TOKEN_A=$(mint "$JWT_SECRET" "$USER_A")
TOKEN_B=$(mint "$JWT_SECRET" "$USER_B")
TOKEN_SLOW=$(mint "$JWT_SECRET" "$USER_SLOW")
TOKEN_FOREIGN=$(mint "not-the-gateways-secret-$SFX" "$USER_A") # well-formed, wrong signature
for t in "$TOKEN_A" "$TOKEN_B" "$TOKEN_SLOW" "$TOKEN_FOREIGN"; do
	case $t in *.*.*) ;; *) die "importer-gateway token --sub ... failed" ;; esac
done

# ---- 3. the browser spec ----------------------------------------------------------------
HTTP_PORT=$(free_port)
say "database $DB, 2 workers, gateway on 127.0.0.1:$HTTP_PORT; running the spec"
export UI_BASE_URL=http://127.0.0.1:$HTTP_PORT UI_GATEWAY_BIN=$GATEWAY UI_GATEWAY_PIDFILE=$TMP/gateway.pid \
	UI_GATEWAY_LOG=$TMP/gateway.log UI_GATEWAY_DATABASE_URL=$GW_URL UI_HTTP_ADDR=127.0.0.1:$HTTP_PORT \
	UI_JWT_SECRET=$JWT_SECRET UI_TOKEN_A=$TOKEN_A UI_TOKEN_B=$TOKEN_B UI_TOKEN_SLOW=$TOKEN_SLOW \
	UI_TOKEN_FOREIGN=$TOKEN_FOREIGN UI_ARTIFACTS=$ARTIFACTS UI_CHROMIUM=$CHROMIUM UI_DB_URL=$DB_URL \
	UI_TMP=$TMP
rc=0
(cd "$SPEC_DIR" && node --test --test-reporter=spec web_units.test.js) || rc=$?
[ "$rc" -eq 0 ] || die "the page's unit tests failed (exit $rc)"
(cd "$SPEC_DIR" && node --test --test-concurrency=1 --test-reporter=spec ui.test.js) || rc=$?
[ "$rc" -eq 0 ] || die "the browser spec failed (exit $rc)"
for n in 1 2; do
	kill -0 "${PIDS[$((n - 1))]}" 2>/dev/null || die "worker $n exited during the test"
	if grep -qE 'AddressSanitizer|runtime error' "$TMP/worker$n.log"; then die "worker $n: sanitizer report"; fi
done
