#!/usr/bin/env bash
# tests/e2e/pgbouncer.sh -- the services behind PgBouncer in transaction pooling.
#
# DESIGN.md "Connection rules": no session state on pooled connections; LISTEN
# only on the direct one. This script proves it end to end:
#   - a private PgBouncer (pool_mode = transaction, scram-sha-256, its own ini
#     and userlist in a temp directory, run as an unprivileged user when we are
#     root) in front of a fresh database in the cluster tests/run.sh started;
#   - 2 importer-worker and 1 importer-gateway with DATABASE_URL through
#     PgBouncer and IMPORTER_LISTEN_DATABASE_URL direct;
#   - jobs submitted through the gateway (sample CSV, noops, NDJSON) complete
#     with exact record counts; the per-job SSE stream shows the `job` snapshot
#     and ends with `end`; a running 200k-row CSV job is cancelled through the
#     gateway and ends cancelled (its stream ends too);
#   - PgBouncer really carried the traffic (admin console SHOW CLIENTS / POOLS /
#     STATS) and connections really were shared (pg_stat_activity: fewer server
#     backends than client connections);
#   - no service log line reports a prepared-statement or session-state error,
#     and every service exits 0 on SIGTERM.
#
# Needs IMPORTER_BUILD_DIR and IMPORTER_TEST_DATABASE_URL (tests/run.sh exports
# both) and the Debian package pgbouncer. Takes about 15-30 s.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${IMPORTER_BUILD_DIR:?IMPORTER_BUILD_DIR is not set (run through tests/run.sh)}
ADMIN_URL=${IMPORTER_TEST_DATABASE_URL:?IMPORTER_TEST_DATABASE_URL is not set (run through tests/run.sh)}
WORKER=$BUILD/worker/importer-worker
GATEWAY=$BUILD/api/importer-gateway
SAMPLE=$ROOT/deploy/local/sample.csv
START=$SECONDS
PROG=pgbouncer.sh

SFX=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
DB=e2e_pgb_$SFX
WK_ROLE=e2e_pgb_wk_$SFX # login roles are cluster-wide: unique names, dropped at the end
GW_ROLE=e2e_pgb_gw_$SFX
PGB_ADMIN=pgb_admin # exists only in PgBouncer's userlist (admin console)
WK_PW=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
GW_PW=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
ADM_PW=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
JWT_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
USER_A=$(cat /proc/sys/kernel/random/uuid) # small jobs
USER_B=$(cat /proc/sys/kernel/random/uuid) # the large job that is cancelled
GW_POOL=4                                   # IMPORTER_DB_POOL: gateway client connections
POOL_SIZE=2                                 # PgBouncer default_pool_size (gateway's pool)
WK_SERVERS=1                                # max_user_connections of the workers' role

TMP=$(mktemp -d "${TMPDIR:-/tmp}/e2e-pgbouncer.XXXXXX")
PGB_DIR=$TMP/pgbouncer
PIDS=() # services, in NAMES order
NAMES=()
PGB_LAUNCHER= # runuser (or pgbouncer itself)
DB_CREATED=0
ROLES_CREATED=0
SERVICES_STOPPED=0
passes=0
failures=0

ok() {
	printf '  ok    %s\n' "$*"
	passes=$((passes + 1))
}
fail() {
	printf '  FAIL  %s\n' "$*" >&2
	failures=$((failures + 1))
}
check() { # OK_MESSAGE FAIL_MESSAGE TEST...
	local good=$1 bad=$2
	shift 2
	if "$@"; then ok "$good"; else fail "$bad"; fi
}
note() { printf '        %s\n' "$*"; }
die() { # a setup step failed: nothing after it can run
	fail "$*"
	exit 1
}

psql_admin() { psql -X -q -At -v ON_ERROR_STOP=1 "$ADMIN_URL" "$@"; }
psql_db() { psql -X -q -At -v ON_ERROR_STOP=1 "$DB_URL" "$@"; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# url_part URL FIELD: host | port | with_db DBNAME | with_user_db USER PW DBNAME PORT
url_part() {
	python3 - "$@" <<'PY'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
what = sys.argv[2]
if what == "host":
    print(p.hostname or "127.0.0.1")
elif what == "port":
    print(p.port or 5432)
elif what == "with_db":
    print(u.urlunsplit(p._replace(path="/" + sys.argv[3])))
elif what == "with_user_db":
    user, pw, db, port = sys.argv[3:7]
    print(f"postgresql://{u.quote(user)}:{u.quote(pw)}@127.0.0.1:{port}/{db}")
PY
}
json_field() { # FILE FIELD
	python3 -c 'import json, sys; v = json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"
}

# ---- cleanup: every exit path -------------------------------------------------------
stop_services() {
	local i pid alive
	[ "$SERVICES_STOPPED" = 0 ] || return 0
	SERVICES_STOPPED=1
	[ "${#PIDS[@]}" -gt 0 ] || return 0
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for ((i = 0; i < 150; i++)); do # workers exit within 10 s of SIGTERM
		alive=0
		for pid in "${PIDS[@]}"; do
			if kill -0 "$pid" 2>/dev/null; then alive=1; fi
		done
		[ "$alive" = 1 ] || break
		sleep 0.1
	done
	for i in "${!PIDS[@]}"; do
		if kill -KILL "${PIDS[$i]}" 2>/dev/null; then
			fail "${NAMES[$i]} (pid ${PIDS[$i]}) did not exit within 15 s of SIGTERM: killed"
		fi
	done
}
stop_pgbouncer() {
	local pid='' i
	if [ -f "$PGB_DIR/pgbouncer.pid" ]; then
		pid=$(head -n 1 "$PGB_DIR/pgbouncer.pid" 2>/dev/null || true)
		case $pid in '' | *[!0-9]*) pid= ;; esac
		if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" != pgbouncer ]; then pid=; fi
	fi
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	if [ -n "$PGB_LAUNCHER" ]; then
		kill -TERM "$PGB_LAUNCHER" 2>/dev/null || true
		wait "$PGB_LAUNCHER" 2>/dev/null || true
	fi
}
cleanup() {
	local rc=$? p f
	trap - EXIT INT TERM
	[ "$rc" -lt 128 ] || fail "interrupted (exit $rc)"
	stop_services
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	stop_pgbouncer
	if [ "$DB_CREATED" = 1 ]; then
		psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 ||
			echo "$PROG: warning: could not drop database $DB" >&2
	fi
	if [ "$ROLES_CREATED" = 1 ]; then
		psql_admin -c "DROP ROLE IF EXISTS $WK_ROLE" -c "DROP ROLE IF EXISTS $GW_ROLE" >/dev/null 2>&1 ||
			echo "$PROG: warning: could not drop roles $WK_ROLE, $GW_ROLE" >&2
	fi
	if [ "$rc" -ne 0 ] || [ "$failures" -gt 0 ]; then
		echo "$PROG: service and PgBouncer logs (last lines):" >&2
		for f in "$TMP"/*.log "$TMP/pgbouncer.out"; do
			[ -f "$f" ] || continue
			echo "---- $f" >&2
			tail -n 15 "$f" >&2 || true
		done
	fi
	rm -rf -- "$TMP"
	[ "$failures" -gt 0 ] || [ "$rc" -eq 0 ] || failures=1
	if [ "$failures" -gt 0 ]; then
		printf '%s: FAIL (%s passed, %s failed, %ss)\n' "$PROG" "$passes" "$failures" "$((SECONDS - START))"
		exit 1
	fi
	printf '%s: PASS (%s checks, %ss)\n' "$PROG" "$passes" "$((SECONDS - START))"
	exit 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 0. tools -------------------------------------------------------------------------
PGBOUNCER=$(command -v pgbouncer || true)
[ -n "$PGBOUNCER" ] || [ ! -x /usr/sbin/pgbouncer ] || PGBOUNCER=/usr/sbin/pgbouncer
[ -n "$PGBOUNCER" ] || die "pgbouncer not found (install the Debian package pgbouncer, tests/deps.txt)"
for tool in psql curl python3; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
if [ ! -x "$WORKER" ] || [ ! -x "$GATEWAY" ]; then die "$WORKER or $GATEWAY is not built"; fi

# ---- 1. database, migrations, login roles -----------------------------------------------
echo "$PROG: database $DB"
PG_HOST=$(url_part "$ADMIN_URL" host)
PG_PORT=$(url_part "$ADMIN_URL" port)
DB_URL=$(url_part "$ADMIN_URL" with_db "$DB") # superuser, direct
psql_admin -c "CREATE DATABASE $DB" >/dev/null || die "CREATE DATABASE $DB"
DB_CREATED=1
DATABASE_URL=$DB_URL IMPORTER_LISTEN_DATABASE_URL=$DB_URL IMPORTER_LOG_LEVEL=warn \
	"$WORKER" migrate 2>"$TMP/migrate.log" || die "importer-worker migrate: $(cat "$TMP/migrate.log")"

ROLES_CREATED=1
# As deploy/local/run.sh does; passwords are hex and travel on stdin.
psql_db >/dev/null <<EOF || die "creating login roles"
SET client_min_messages = warning;
CREATE ROLE $WK_ROLE LOGIN PASSWORD '$WK_PW';
CREATE ROLE $GW_ROLE LOGIN PASSWORD '$GW_PW';
GRANT importer_worker TO $WK_ROLE;
GRANT importer_api TO $GW_ROLE;
-- user B's batches are slowed down so that its large job is surely running when cancelled
INSERT INTO importer.settings (key, value, user_id) VALUES ('batch_pause_ms', '100', '$USER_B');
EOF

# ---- 2. PgBouncer -------------------------------------------------------------------------
PGB_PORT=$(free_port)
mkdir -m 0700 "$PGB_DIR"
cat >"$PGB_DIR/pgbouncer.ini" <<EOF
[databases]
$DB = host=$PG_HOST port=$PG_PORT dbname=$DB

[users]
$WK_ROLE = max_user_connections=$WK_SERVERS

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $PGB_DIR/userlist.txt
admin_users = $PGB_ADMIN
pool_mode = transaction
default_pool_size = $POOL_SIZE
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 100
query_wait_timeout = 20
server_tls_sslmode = disable
pidfile = $PGB_DIR/pgbouncer.pid
log_connections = 0
log_disconnections = 0
EOF
(
	umask 077
	printf '"%s" "%s"\n' "$WK_ROLE" "$WK_PW" "$GW_ROLE" "$GW_PW" "$PGB_ADMIN" "$ADM_PW" >"$PGB_DIR/userlist.txt"
)
# PgBouncer refuses to run as root, like PostgreSQL: as root, run it as the
# cluster's unprivileged user (as deploy/local/pg.sh does).
if [ "$(id -u)" -eq 0 ]; then
	PGB_USER=
	for u in postgres importer-pg; do
		if id -u "$u" >/dev/null 2>&1; then
			PGB_USER=$u
			break
		fi
	done
	[ -n "$PGB_USER" ] || die "no unprivileged user (postgres or importer-pg) to run pgbouncer as"
	chmod 0711 "$TMP"
	chown -R "$PGB_USER:" "$PGB_DIR"
	(cd / && exec runuser -u "$PGB_USER" -- "$PGBOUNCER" "$PGB_DIR/pgbouncer.ini") \
		>"$TMP/pgbouncer.out" 2>&1 &
else
	(cd / && exec "$PGBOUNCER" "$PGB_DIR/pgbouncer.ini") >"$TMP/pgbouncer.out" 2>&1 &
fi
PGB_LAUNCHER=$!
for ((i = 0; ; i++)); do
	[ -s "$PGB_DIR/pgbouncer.pid" ] && port_busy "$PGB_PORT" && break
	kill -0 "$PGB_LAUNCHER" 2>/dev/null ||
		die "pgbouncer exited at start: $(cat "$TMP/pgbouncer.out" 2>/dev/null)"
	[ "$i" -lt 100 ] || die "pgbouncer does not listen on 127.0.0.1:$PGB_PORT after 10 s"
	sleep 0.1
done
echo "$PROG: pgbouncer pid $(cat "$PGB_DIR/pgbouncer.pid") on 127.0.0.1:$PGB_PORT -> $PG_HOST:$PG_PORT/$DB (transaction pooling)"
PGB_ADMIN_URL=$(url_part x with_user_db "$PGB_ADMIN" "$ADM_PW" pgbouncer "$PGB_PORT")
pgb_admin() { psql -X -q -At -F '|' "$PGB_ADMIN_URL" -c "$1"; }

# ---- 3. services ----------------------------------------------------------------------------
WK_POOLED=$(url_part x with_user_db "$WK_ROLE" "$WK_PW" "$DB" "$PGB_PORT")
GW_POOLED=$(url_part x with_user_db "$GW_ROLE" "$GW_PW" "$DB" "$PGB_PORT")
WK_DIRECT=$(url_part x with_user_db "$WK_ROLE" "$WK_PW" "$DB" "$PG_PORT")
GW_DIRECT=$(url_part x with_user_db "$GW_ROLE" "$GW_PW" "$DB" "$PG_PORT")
[ "$PG_HOST" = 127.0.0.1 ] || {
	WK_DIRECT=${WK_DIRECT/@127.0.0.1:/@$PG_HOST:}
	GW_DIRECT=${GW_DIRECT/@127.0.0.1:/@$PG_HOST:}
}
HTTP_PORT=$(free_port)
BASE=http://127.0.0.1:$HTTP_PORT

start_service() { # NAME LOG CMD...
	local name=$1 log=$2
	shift 2
	"$@" 2>"$log" &
	PIDS+=("$!")
	NAMES+=("$name")
}
start_service gateway "$TMP/gateway.log" env -u IMPORTER_METRICS_ADDR \
	DATABASE_URL="$GW_POOLED" IMPORTER_LISTEN_DATABASE_URL="$GW_DIRECT" IMPORTER_DB_POOL=$GW_POOL \
	IMPORTER_HTTP_ADDR="127.0.0.1:$HTTP_PORT" IMPORTER_JWT_SECRET="$JWT_SECRET" \
	IMPORTER_SSE_HEARTBEAT_MS=1000 IMPORTER_LOG_LEVEL=info "$GATEWAY"
for n in 1 2; do
	start_service "worker $n" "$TMP/worker$n.log" env -u IMPORTER_METRICS_ADDR -u IMPORTER_JWT_SECRET \
		-u IMPORTER_HTTP_ADDR DATABASE_URL="$WK_POOLED" IMPORTER_LISTEN_DATABASE_URL="$WK_DIRECT" \
		IMPORTER_LOG_LEVEL=info "$WORKER"
done

for ((i = 0; ; i++)); do # /readyz: pool (through PgBouncer) and LISTEN connected
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/readyz" || true)
	[ "$code" = 200 ] && break
	kill -0 "${PIDS[0]}" 2>/dev/null || die "importer-gateway exited during startup"
	[ "$i" -lt 150 ] || die "gateway /readyz is $code after 15 s"
	sleep 0.1
done
ok "gateway ready (/readyz 200) with its pool through PgBouncer"

mint() { env IMPORTER_JWT_SECRET="$JWT_SECRET" "$GATEWAY" token --sub "$1" --ttl 600 2>/dev/null | tr -d '\r\n'; }
TOKEN_A=$(mint "$USER_A")
TOKEN_B=$(mint "$USER_B")
for t in "$TOKEN_A" "$TOKEN_B"; do
	case $t in *.*.*) ;; *) die "importer-gateway token --sub ... failed" ;; esac
done

# submit TOKEN NAME QUERY [BODYFILE]: POST /api/jobs, expect 202, print the job id
submit() {
	local token=$1 name=$2 query=$3 body=${4:-/dev/null} code id
	code=$(curl -sS -o "$TMP/$name.json" -w '%{http_code}' --max-time 30 -X POST \
		-H "Authorization: Bearer $token" -H 'Content-Type: application/octet-stream' \
		--data-binary "@$body" "$BASE/api/jobs?$query") || code=000
	id=$(json_field "$TMP/$name.json" id 2>/dev/null || true)
	if [ "$code" != 202 ] || [ -z "$id" ]; then
		fail "submit $name: HTTP $code $(head -c 300 "$TMP/$name.json" 2>/dev/null)"
		return 1
	fi
	printf '%s\n' "$id"
}
# follow TOKEN ID OUT SECONDS: the per-job SSE stream into OUT, in the background
# (curl's --max-time is the deadline); its pid in FOLLOW_PID
follow() {
	curl -sS -N --max-time "$4" -H "Authorization: Bearer $1" -H 'Accept: text/event-stream' \
		"$BASE/api/jobs/$2/events" >"$3" 2>"$3.err" &
	FOLLOW_PID=$!
}
# wait_sql SECONDS WANT SQL: poll the database (direct) until SQL prints WANT
wait_sql() {
	local deadline=$((SECONDS + $1)) got
	while :; do
		got=$(psql_db -c "$3" 2>&1 || true)
		[ "$got" != "$2" ] || return 0
		if [ "$SECONDS" -ge "$deadline" ]; then
			LAST_SQL_VALUE=$got
			return 1
		fi
		sleep 0.1
	done
}
# check_sse FILE CURL_PID WANT_STATUS NAME
check_sse() {
	local file=$1 pid=$2 want=$3 name=$4 rc=0 first last
	wait "$pid" || rc=$?
	first=$(grep -m1 '^event:' "$file" || true)
	last=$(grep '^event:' "$file" | tail -n 1 || true)
	if [ "$rc" -ne 0 ]; then
		fail "SSE $name: curl exit $rc ($(cat "$file.err")), stream did not end before the deadline: $(tr '\n' ' ' <"$file" | head -c 400)"
	elif [ "$first" != "event: job" ]; then
		fail "SSE $name: first event is '$first', want 'event: job'"
	elif [ "$last" != "event: end" ]; then
		fail "SSE $name: last event is '$last', want 'event: end'"
	elif ! tail -n 5 "$file" | grep -q "^data: .*\"$want\""; then
		fail "SSE $name: end event does not carry status $want: $(tail -n 4 "$file" | tr '\n' ' ')"
	else
		ok "SSE $name: 'event: job' snapshot first, 'event: end' ($want) last, stream closed ($(grep -c '^event: job' "$file") job events)"
	fi
}

# ---- 4. jobs ----------------------------------------------------------------------------------
echo "$PROG: jobs through the gateway (DATABASE_URL via PgBouncer)"
awk 'BEGIN { print "id,name,value,note"; for (i = 1; i <= 200000; i++) printf "%d,name %d,%d,row %d of the large file\n", i, i, i * 7, i }' >"$TMP/big.csv"
NDJSON_ROWS=300
awk -v n=$NDJSON_ROWS 'BEGIN { for (i = 1; i <= n; i++) printf "{\"id\":\"k%d\",\"n\":%d,\"tags\":[\"a\",\"b\"]}\n", i, i }' >"$TMP/things.ndjson"

BIG=$(submit "$TOKEN_B" big 'kind=csv&file_name=big.csv&batch_size=2000' "$TMP/big.csv") || die "cannot submit the large job"
follow "$TOKEN_B" "$BIG" "$TMP/sse_big.txt" 40
SSE_BIG_PID=$FOLLOW_PID

CSV=$(submit "$TOKEN_A" sample 'kind=csv&file_name=sample.csv' "$SAMPLE") || die "cannot submit the sample CSV"
follow "$TOKEN_A" "$CSV" "$TMP/sse_csv.txt" 30
SSE_CSV_PID=$FOLLOW_PID
NOOPS=()
for n in 1 2 3 4 5; do
	id=$(submit "$TOKEN_A" "noop$n" 'kind=noop') || die "cannot submit noop $n"
	NOOPS+=("$id")
done
NDJ=$(submit "$TOKEN_A" ndjson 'kind=ndjson&file_name=things.ndjson' "$TMP/things.ndjson") || die "cannot submit the ndjson job"
ok "submitted 1 large CSV (user B), 1 sample CSV, 5 noop, 1 ndjson (user A): HTTP 202 each"

# Cancel the large job while it runs: wait until at least one batch committed.
if wait_sql 30 t "SELECT status = 'processing' AND processed_items >= 2000 FROM importer.import_jobs WHERE id = '$BIG'"; then
	code=$(curl -sS -o "$TMP/cancel.json" -w '%{http_code}' --max-time 10 -X POST \
		-H "Authorization: Bearer $TOKEN_B" "$BASE/api/jobs/$BIG/cancel") || code=000
	if [ "$code" = 202 ]; then
		ok "cancel of the running large job: HTTP 202"
	else
		fail "cancel of the running large job: HTTP $code $(head -c 300 "$TMP/cancel.json")"
	fi
	if wait_sql 10 cancelled "SELECT status FROM importer.import_jobs WHERE id = '$BIG'"; then
		read -r done_items stored < <(psql_db -F ' ' -c "SELECT j.processed_items,
			(SELECT count(*) FROM importer.records r WHERE r.user_id = j.user_id AND r.collection = 'big')
			FROM importer.import_jobs j WHERE j.id = '$BIG'")
		if [ "$done_items" -gt 0 ] && [ "$done_items" -lt 200000 ] && [ "$done_items" = "$stored" ]; then
			ok "large job cancelled after $done_items of 200000 rows; its $stored committed records stay"
		else
			fail "large job cancelled with processed_items=$done_items and $stored records (want 0 < n < 200000, equal)"
		fi
	else
		fail "large job not cancelled within 10 s of the request: status ${LAST_SQL_VALUE:-?}"
	fi
else
	fail "large job never ran a batch within 30 s: $(psql_db -c "SELECT status, processed_items, error_message FROM importer.import_jobs WHERE id = '$BIG'" 2>&1)"
fi

ALL_A="'$CSV','$NDJ'"
for id in "${NOOPS[@]}"; do ALL_A="$ALL_A,'$id'"; done
if wait_sql 30 7 "SELECT count(*) FROM importer.import_jobs WHERE id IN ($ALL_A) AND status IN ('completed','failed','cancelled')"; then
	ok "all 7 jobs of user A finished"
else
	fail "jobs of user A not finished after 30 s (finished: ${LAST_SQL_VALUE:-?})"
fi
# job_result ID COLLECTION: status|processed|failed|inserted|records in the collection
job_result() {
	psql_db -c "SELECT j.status, j.processed_items, j.failed_items, j.counts->>'inserted',
		(SELECT count(*) FROM importer.records r WHERE r.user_id = j.user_id AND r.collection = '$2' AND r.job_id = j.id)
		FROM importer.import_jobs j WHERE j.id = '$1'" 2>&1
}
got=$(job_result "$CSV" sample)
check "sample CSV: completed, 12 records" \
	"sample CSV: status|processed|failed|inserted|records = $got, want completed|12|0|12|12" \
	[ "$got" = "completed|12|0|12|12" ]
want="completed|$NDJSON_ROWS|0|$NDJSON_ROWS|$NDJSON_ROWS"
got=$(job_result "$NDJ" things)
check "ndjson: completed, $NDJSON_ROWS records" \
	"ndjson: status|processed|failed|inserted|records = $got, want $want" [ "$got" = "$want" ]
got=$(psql_db -c "SELECT count(*) FILTER (WHERE status = 'completed' AND processed_items = 0) FROM importer.import_jobs
	WHERE id IN ('$(printf '%s' "${NOOPS[*]}" | sed "s/ /','/g")')" 2>&1)
check "5 noop jobs completed" "noop jobs completed: $got of 5" [ "$got" = 5 ]
# A sample row, through the gateway (its pool goes through PgBouncer).
code=$(curl -sS -o "$TMP/records.json" -w '%{http_code}' --max-time 10 \
	-H "Authorization: Bearer $TOKEN_A" "$BASE/api/records?collection=sample&limit=100") || code=000
n=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["records"]))' "$TMP/records.json" 2>/dev/null || echo "?")
check "GET /api/records: 12 sample records" \
	"GET /api/records?collection=sample: HTTP $code, $n records (want 200, 12)" [ "$code:$n" = 200:12 ]

note "jobs (kind, status, created->started, started->finished):"
psql_db -F ' ' -c "SELECT kind, status, round(extract(epoch FROM started_at - created_at)::numeric, 3),
	round(extract(epoch FROM completed_at - started_at)::numeric, 3) FROM importer.import_jobs ORDER BY created_at" |
	sed 's/^/          /'
check_sse "$TMP/sse_csv.txt" "$SSE_CSV_PID" completed "sample CSV"
check_sse "$TMP/sse_big.txt" "$SSE_BIG_PID" cancelled "large job"

# ---- 5. PgBouncer really was used, and shared ---------------------------------------------------
echo "$PROG: PgBouncer"
clients=$(pgb_admin "SHOW CLIENTS" 2>&1) || die "PgBouncer admin console: $clients"
n_wk=$(awk -F'|' -v u="$WK_ROLE" -v d="$DB" '$2 == u && $3 == d' <<<"$clients" | wc -l)
n_gw=$(awk -F'|' -v u="$GW_ROLE" -v d="$DB" '$2 == u && $3 == d' <<<"$clients" | wc -l)
check "SHOW CLIENTS: 2 worker clients" "SHOW CLIENTS: $n_wk worker clients, want 2" [ "$n_wk" -eq 2 ]
check "SHOW CLIENTS: $GW_POOL gateway pool clients" \
	"SHOW CLIENTS: $n_gw gateway clients, want $GW_POOL (IMPORTER_DB_POOL)" [ "$n_gw" -eq "$GW_POOL" ]
stats=$(pgb_admin "SHOW STATS" 2>&1) || true
xacts=$(awk -F'|' -v d="$DB" '$1 == d { print $2 }' <<<"$stats")
# at least: 8 submits, the cancel, the records request, and the workers' claims
# and batches of 3 import jobs
if [ "${xacts:-0}" -ge 20 ]; then
	ok "SHOW STATS: $xacts transactions pooled for $DB"
else
	fail "SHOW STATS: ${xacts:-no} transactions for $DB (want >= 20): $stats"
fi
note "SHOW POOLS:"
psql -X -q -A -F '|' "$PGB_ADMIN_URL" -c "SHOW POOLS" 2>&1 | awk -F'|' -v d="$DB" 'NR == 1 || $1 == d' |
	sed 's/^/          /'
# Backends per login role: LISTEN connections are direct (1 per process); the
# pooled ones can be at most PgBouncer's server connections -- fewer than the
# services' client connections, so transactions really shared connections.
read -r be_wk be_gw < <(psql_db -F ' ' -c "SELECT count(*) FILTER (WHERE usename = '$WK_ROLE'),
	count(*) FILTER (WHERE usename = '$GW_ROLE') FROM pg_stat_activity WHERE datname = '$DB'")
if [ "$be_wk" -le $((2 + WK_SERVERS)) ] && [ "$be_gw" -le $((1 + POOL_SIZE)) ]; then
	ok "pg_stat_activity: $be_wk worker backends (<= 2 LISTEN + $WK_SERVERS pooled; 4 if direct), $be_gw gateway backends (<= 1 LISTEN + $POOL_SIZE pooled; $((1 + GW_POOL)) if direct)"
else
	fail "pg_stat_activity: $be_wk worker / $be_gw gateway backends, want <= $((2 + WK_SERVERS)) / <= $((1 + POOL_SIZE))"
fi
listens=$(psql_db -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB' AND query ILIKE 'LISTEN%'
	AND usename IN ('$WK_ROLE', '$GW_ROLE')")
check "3 direct LISTEN connections (2 workers, 1 gateway)" \
	"$listens backends whose last statement is LISTEN, want 3" [ "$listens" = 3 ]

# ---- 6. shutdown and logs --------------------------------------------------------------------------
stop_services
for i in "${!PIDS[@]}"; do
	rc=0
	wait "${PIDS[$i]}" || rc=$?
	check "${NAMES[$i]} exited 0 on SIGTERM" "${NAMES[$i]} exited $rc on SIGTERM" [ "$rc" -eq 0 ]
done
bad_re='prepared statement|portal|does not exist|unrecognized configuration|26000|08P01|protocol|session|pooler|query_wait_timeout|server closed|no more connections|Sanitizer|runtime error'
for f in "$TMP"/gateway.log "$TMP"/worker1.log "$TMP"/worker2.log; do
	name=$(basename "$f" .log)
	hits=$(grep -Ei "$bad_re" "$f" | grep -v '"event":"process.started"' || true)
	errs=$(grep -E '"level":"(error|fatal)"' "$f" || true)
	if [ -n "$hits$errs" ]; then
		fail "$name log reports errors:"$'\n'"$(printf '%s\n%s\n' "$hits" "$errs" | sort -u | sed '/^$/d' | head -n 20)"
	else
		ok "$name log: no error, prepared-statement or session-state line ($(wc -l <"$f") lines)"
	fi
	warns=$(grep -E '"level":"warn"' "$f" || true)
	[ -z "$warns" ] || note "$name warnings: $(head -n 5 <<<"$warns")"
done
pgb_errs=$(grep -Ei 'pooler error|crashed|unsupported|ERROR' "$TMP/pgbouncer.out" || true)
check "pgbouncer log: no error" "pgbouncer log reports errors:"$'\n'"$(head -n 20 <<<"$pgb_errs")" [ -z "$pgb_errs" ]
