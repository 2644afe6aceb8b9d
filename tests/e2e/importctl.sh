#!/usr/bin/env bash
# tests/e2e/importctl.sh -- importctl against the real stack.
#
# A fresh database in the cluster tests/run.sh started, login roles as
# deploy/local/run.sh makes them, one importer-gateway (IMPORTER_MAX_UPLOAD_BYTES
# 2 MiB, so a 3 MiB file exercises the 413 -> chunked fallback) and 2 workers.
# Then, with the importctl that tests/run.sh built:
#   - exit codes: completed 0, failed 1, usage 2, cancelled 3 (Ctrl-C while
#     following), unreachable 4, bad / missing token 5, not found 6,
#     unreadable file 7, refused 8 (409), detached 130 (a second Ctrl-C);
#   - `--follow` ends when the job ends and not before: the job is terminal in
#     the database at the moment importctl exits, also across a gateway
#     restart in the middle of the stream (reconnect + re-read of the state);
#   - `--json` output of every command parses (python3 -m json.tool);
#   - output that is not a terminal has no escape sequence, one line per phase;
#   - a file over 8 MiB goes through the chunked upload routes and arrives whole;
#   - in a terminal (tmux) the progress bar advances: capture-pane twice, the
#     percent grows; Ctrl-C typed there cancels the job and prints the summary;
#   - `--help` works for every command.
#
# Needs IMPORTER_BUILD_DIR and IMPORTER_TEST_DATABASE_URL (tests/run.sh exports
# both), tmux and python3. Takes about 40-70 s.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${IMPORTER_BUILD_DIR:?IMPORTER_BUILD_DIR is not set (run through tests/run.sh)}
ADMIN_URL=${IMPORTER_TEST_DATABASE_URL:?IMPORTER_TEST_DATABASE_URL is not set (run through tests/run.sh)}
WORKER=$BUILD/worker/importer-worker
GATEWAY=$BUILD/api/importer-gateway
IMPORTCTL=$BUILD/cli/importctl
SAMPLE=$ROOT/deploy/local/sample.csv
START=$SECONDS
PROG=importctl.sh
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

SFX=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
DB=e2e_cli_$SFX
WK_ROLE=e2e_cli_wk_$SFX # login roles are cluster-wide: unique names, dropped at the end
GW_ROLE=e2e_cli_gw_$SFX
WK_PW=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
GW_PW=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
JWT_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
USER_A=$(cat /proc/sys/kernel/random/uuid) # fast jobs
USER_S=$(cat /proc/sys/kernel/random/uuid) # slowed-down jobs (batch_pause_ms)
TMUX_SOCK=importctl-e2e-$SFX

TMP=$(mktemp -d "${TMPDIR:-/tmp}/e2e-importctl.XXXXXX")
PIDS=() # services, in NAMES order
NAMES=()
BGS=() # importctl processes in the background
WORKERS_STOPPED=0
DB_CREATED=0
ROLES_CREATED=0
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
die() {
	fail "$*"
	exit 1
}
psql_admin() { psql -X -q -At -v ON_ERROR_STOP=1 "$ADMIN_URL" "$@"; }
psql_db() { psql -X -q -At -v ON_ERROR_STOP=1 "$DB_URL" "$@"; }
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
url_part() { # URL with_db DB | with_user_db USER PW DB
	python3 - "$@" <<'PY'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
if sys.argv[2] == "with_db":
    print(u.urlunsplit(p._replace(path="/" + sys.argv[3])))
else:
    user, pw, db = sys.argv[3:6]
    print(f"postgresql://{u.quote(user)}:{u.quote(pw)}@{p.hostname or '127.0.0.1'}:{p.port or 5432}/{db}")
PY
}

stop_pid() { # PID: SIGTERM, wait up to 15 s, then SIGKILL
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
	local rc=$? p f
	trap - EXIT INT TERM
	[ "$rc" -lt 128 ] || fail "interrupted (exit $rc)"
	tmux -L "$TMUX_SOCK" kill-server 2>/dev/null || true
	for p in "${BGS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	[ "$WORKERS_STOPPED" = 0 ] || kill -CONT "${PIDS[1]}" "${PIDS[2]}" 2>/dev/null || true
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	wait 2>/dev/null || true
	if [ "$DB_CREATED" = 1 ]; then
		psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 ||
			echo "$PROG: warning: could not drop database $DB" >&2
	fi
	if [ "$ROLES_CREATED" = 1 ]; then
		psql_admin -c "DROP ROLE IF EXISTS $WK_ROLE" -c "DROP ROLE IF EXISTS $GW_ROLE" >/dev/null 2>&1 ||
			echo "$PROG: warning: could not drop roles $WK_ROLE, $GW_ROLE" >&2
	fi
	if [ "$rc" -ne 0 ] || [ "$failures" -gt 0 ]; then
		echo "$PROG: logs (last lines):" >&2
		for f in "$TMP"/*.log "$TMP"/*.err; do
			[ -s "$f" ] || continue
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

# ---- 0. tools ------------------------------------------------------------------------------
for tool in psql python3 tmux curl; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found (tests/deps.txt)"
done
for b in "$WORKER" "$GATEWAY" "$IMPORTCTL"; do [ -x "$b" ] || die "$b is not built"; done

# ---- 1. database, roles, services --------------------------------------------------------------
DB_URL=$(url_part "$ADMIN_URL" with_db "$DB")
psql_admin -c "CREATE DATABASE $DB" >/dev/null || die "CREATE DATABASE $DB"
DB_CREATED=1
DATABASE_URL=$DB_URL IMPORTER_LOG_LEVEL=warn "$WORKER" migrate 2>"$TMP/migrate.log" ||
	die "importer-worker migrate: $(cat "$TMP/migrate.log")"
ROLES_CREATED=1
psql_db >/dev/null <<EOF || die "creating login roles"
SET client_min_messages = warning;
CREATE ROLE $WK_ROLE LOGIN PASSWORD '$WK_PW';
CREATE ROLE $GW_ROLE LOGIN PASSWORD '$GW_PW';
GRANT importer_worker TO $WK_ROLE;
GRANT importer_api TO $GW_ROLE;
-- user S's batches are slowed down, so its jobs are surely running when we look
INSERT INTO importer.settings (key, value, user_id) VALUES ('batch_pause_ms', '100', '$USER_S');
EOF
WK_URL=$(url_part "$ADMIN_URL" with_user_db "$WK_ROLE" "$WK_PW" "$DB")
GW_URL=$(url_part "$ADMIN_URL" with_user_db "$GW_ROLE" "$GW_PW" "$DB")
HTTP_PORT=$(free_port)
BASE=http://127.0.0.1:$HTTP_PORT

start_gateway() {
	env -u IMPORTER_METRICS_ADDR DATABASE_URL="$GW_URL" IMPORTER_LISTEN_DATABASE_URL="$GW_URL" \
		IMPORTER_HTTP_ADDR="127.0.0.1:$HTTP_PORT" IMPORTER_JWT_SECRET="$JWT_SECRET" \
		IMPORTER_MAX_UPLOAD_BYTES=2097152 IMPORTER_SSE_HEARTBEAT_MS=1000 IMPORTER_LOG_LEVEL=warn \
		"$GATEWAY" 2>>"$TMP/gateway.log" &
	GW_PID=$!
}
wait_ready() {
	local i code
	for ((i = 0; ; i++)); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/readyz" || true)
		[ "$code" = 200 ] && return 0
		kill -0 "$GW_PID" 2>/dev/null || die "importer-gateway exited during startup"
		[ "$i" -lt 300 ] || die "gateway /readyz is $code after 30 s"
		sleep 0.1
	done
}
start_gateway
PIDS+=("$GW_PID")
NAMES+=(gateway)
for n in 1 2; do
	env -u IMPORTER_METRICS_ADDR -u IMPORTER_JWT_SECRET -u IMPORTER_HTTP_ADDR \
		DATABASE_URL="$WK_URL" IMPORTER_LISTEN_DATABASE_URL="$WK_URL" IMPORTER_LOG_LEVEL=warn \
		"$WORKER" 2>"$TMP/worker$n.log" &
	PIDS+=("$!")
	NAMES+=("worker $n")
done
wait_ready
mint() { env IMPORTER_JWT_SECRET="$JWT_SECRET" "$GATEWAY" token --sub "$1" --ttl 900 2>/dev/null | tr -d '\r\n'; }
TOKEN_A=$(mint "$USER_A")
TOKEN_S=$(mint "$USER_S")
case $TOKEN_A in *.*.*) ;; *) die "importer-gateway token failed" ;; esac
case $TOKEN_S in *.*.*) ;; *) die "importer-gateway token failed" ;; esac
ok "gateway and 2 workers ready on $BASE"

export IMPORTER_URL=$BASE IMPORTER_TOKEN=$TOKEN_A
# ictl ARGS...: importctl with stdout in $TMP/out, stderr in $TMP/err; RC is set.
ictl() {
	RC=0
	"$IMPORTCTL" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null || RC=$?
	if grep -q 'Sanitizer\|runtime error:' "$TMP/err"; then
		fail "sanitizer report from importctl $*: $(head -c 2000 "$TMP/err")"
	fi
}
expect_rc() { # WANT DESCRIPTION ARGS...
	local want=$1 what=$2
	shift 2
	ictl "$@"
	check "$what: exit $want ($(head -c 160 "$TMP/err" | tr '\n' ' '))" \
		"$what: exit $RC, want $want; stderr: $(head -c 400 "$TMP/err"); stdout: $(head -c 300 "$TMP/out")" \
		[ "$RC" -eq "$want" ]
}
job_status() { psql_db -c "SELECT status FROM importer.import_jobs WHERE id = '$1'" 2>/dev/null || true; }
no_escapes() { ! grep -q $'\x1b' "$1"; }
wait_sql() { # SECONDS WANT SQL
	local deadline=$((SECONDS + $1)) got
	while :; do
		got=$(psql_db -c "$3" 2>&1 || true)
		[ "$got" != "$2" ] || return 0
		[ "$SECONDS" -lt "$deadline" ] || {
			LAST_SQL_VALUE=$got
			return 1
		}
		sleep 0.1
	done
}

# ---- 2. usage, help, configuration errors ------------------------------------------------------
echo "$PROG: [$((SECONDS - START)) s] usage and errors before any job"
expect_rc 2 "no command"
expect_rc 2 "unknown command" frobnicate
expect_rc 2 "import without FILE" import
expect_rc 2 "unknown option" jobs --bogus
expect_rc 2 "--mode outside upsert|append|replace" import "$SAMPLE" --mode merge
expect_rc 2 "a job id that is no UUID" show 12
expect_rc 2 "no IMPORTER_URL" --url '' jobs
helps=0
for c in import jobs show logs errors cancel pause resume retry delete stats help; do
	ictl "$c" --help
	if [ "$RC" -eq 0 ] && grep -q "^usage: importctl $c" "$TMP/out"; then
		helps=$((helps + 1))
	else
		fail "$c --help: exit $RC, $(head -c 200 "$TMP/out")"
	fi
done
check "--help works for all 12 commands" "--help failed for $((12 - helps)) commands" [ "$helps" -eq 12 ]
ictl --help
check "importctl --help lists the exit codes" "importctl --help: exit $RC" grep -q '4 server unreachable' "$TMP/out"
CLOSED_PORT=$(free_port)
expect_rc 4 "unreachable gateway" --url "http://127.0.0.1:$CLOSED_PORT" jobs
check "unreachable: the message says so" "unreachable: stderr '$(cat "$TMP/err")'" grep -qi 'cannot reach the gateway.*refused' "$TMP/err"
expect_rc 5 "bad token" --token not.a.token jobs
check "bad token: the message says so" "bad token: stderr '$(cat "$TMP/err")'" grep -q '401' "$TMP/err"
OTHER_TOKEN=$(IMPORTER_JWT_SECRET=other-secret "$GATEWAY" token --sub "$USER_A" 2>/dev/null | tr -d '\r\n')
expect_rc 5 "token signed with another secret" --token "$OTHER_TOKEN" jobs
IMPORTER_TOKEN='' expect_rc 5 "no token" jobs
NOBODY=$(cat /proc/sys/kernel/random/uuid)
expect_rc 6 "show of an unknown job" show "$NOBODY"
expect_rc 6 "cancel of an unknown job" cancel "$NOBODY"
expect_rc 6 "logs --follow of an unknown job" logs "$NOBODY" --follow
expect_rc 7 "import of a missing file" import "$TMP/no-such-file.csv"
check "missing file: the message names it" "missing file: stderr '$(cat "$TMP/err")'" grep -q 'no-such-file.csv.*No such file' "$TMP/err"
mkdir "$TMP/dir.csv"
expect_rc 7 "import of a directory" import "$TMP/dir.csv"

# ---- 3. completed, failed: --follow ends with the job --------------------------------------------
echo "$PROG: [$((SECONDS - START)) s] following jobs to their end"
# follow_check NAME WANT_RC WANT_STATUS ARGS...: import --follow (not a TTY)
follow_check() {
	local name=$1 want_rc=$2 want_status=$3 id st=
	shift 3
	ictl import "$@" --follow
	id=$(grep -m1 -o '^job [0-9a-f-]\{36\}' "$TMP/out" | cut -c5- || true)
	[ -z "$id" ] || st=$(job_status "$id")
	check "$name: exit $want_rc, job $want_status in the database when importctl exited" \
		"$name: exit $RC (want $want_rc), job '${st:-?}' (want $want_status); out: $(head -c 600 "$TMP/out"); err: $(head -c 300 "$TMP/err")" \
		[ "$RC" -eq "$want_rc" -a "$st" = "$want_status" ]
	FOLLOWED=$id
	cp "$TMP/out" "$TMP/$name.out"
}
follow_check sample 0 completed "$SAMPLE"
SAMPLE_JOB=$FOLLOWED
check "non-TTY output: no escape sequences" "non-TTY output has escape sequences: $(od -c "$TMP/sample.out" | head -n 5)" no_escapes "$TMP/sample.out"
check "non-TTY output: the summary line" "no summary in: $(cat "$TMP/sample.out")" \
	grep -q '^completed in .*: 12 inserted, 0 updated, 0 failed' "$TMP/sample.out"
dups=$(grep -v '^job \|^completed in' "$TMP/sample.out" | cut -d: -f1 | uniq -d)
check "non-TTY output: one line per phase ($(grep -cv '^job \|^completed in' "$TMP/sample.out") phase lines)" \
	"a phase printed twice in a row: $dups" [ -z "$dups" ]
printf 'id,name\n1,"unterminated\n' >"$TMP/broken.csv"
follow_check broken 1 failed "$TMP/broken.csv"
check "failed job: the summary carries the error" "no error in: $(cat "$TMP/broken.out")" grep -q '^failed in .*: .\+' "$TMP/broken.out"
printf 'id,name\n1,a\n2,b,extra\n3,c\n' >"$TMP/ragged.csv"
follow_check ragged 0 completed "$TMP/ragged.csv" --collection ragged --dry-run --batch-size 2
check "dry run with a record error: counted" "ragged summary: $(cat "$TMP/ragged.out")" \
	grep -q '2 inserted, 0 updated, 1 failed (dry run' "$TMP/ragged.out"
RAGGED_JOB=$FOLLOWED

# ---- 4. --json parses -------------------------------------------------------------------------------
echo "$PROG: [$((SECONDS - START)) s] --json"
# json_check NAME KIND(json|ndjson) ARGS...: importctl --json ARGS; the output
# is kept for one python3 run that parses them all (check_json_outputs).
JSON_OUTS=()
json_check() {
	local name=$1 kind=$2
	shift 2
	ictl --json "$@"
	if [ "$RC" -ne 0 ]; then
		fail "$name --json: exit $RC: $(head -c 300 "$TMP/err")"
		return
	fi
	cp "$TMP/out" "$TMP/json.${#JSON_OUTS[@]}"
	JSON_OUTS+=("$kind|$name|$TMP/json.${#JSON_OUTS[@]}")
}
check_json_outputs() {
	local line
	while IFS= read -r line; do
		case $line in
		ok\|*) ok "${line#ok|} --json parses" ;;
		*) fail "${line#*|} --json does not parse" ;;
		esac
	done < <(python3 - "${JSON_OUTS[@]}" <<'PY'
import json, sys
for arg in sys.argv[1:]:
    kind, name, path = arg.split("|", 2)
    text = open(path, encoding="utf-8").read()
    try:
        if not text.strip():
            raise ValueError("empty")
        if kind == "json":
            json.loads(text)
        else:
            [json.loads(l) for l in text.splitlines() if l.strip()]
        print("ok|" + name)
    except Exception as e:
        print("bad|%s: %s: %r" % (name, e, text[:200]))
PY
	)
}
json_check "import" json import "$SAMPLE" --collection json_check
JSON_JOB=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$TMP/out" 2>/dev/null || true)
json_check "import --follow" json import "$SAMPLE" --collection json_check --follow
check "import --follow --json: the completed job" "import --follow --json: $(head -c 300 "$TMP/out")" \
	python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["status"] != "completed")' "$TMP/out"
json_check "jobs" json jobs --limit 5
json_check "show" json show "$SAMPLE_JOB"
json_check "logs" json logs "$SAMPLE_JOB"
json_check "errors" json errors "$RAGGED_JOB"
check "errors --json: the ragged row" "errors --json: $(head -c 300 "$TMP/out")" \
	python3 -c 'import json, sys; e = json.load(open(sys.argv[1]))["errors"]; sys.exit(not (len(e) == 1 and e[0]["record_index"] == 2))' "$TMP/out"
json_check "stats" json stats
json_check "logs --follow" ndjson logs "$SAMPLE_JOB" --follow
check_json_outputs
ictl jobs
check "jobs table lists the sample job" "jobs: $(head -c 300 "$TMP/out")" grep -q "^$SAMPLE_JOB  completed  csv" "$TMP/out"
wait_sql 20 completed "SELECT status FROM importer.import_jobs WHERE id = '${JSON_JOB:-none}'" || true
expect_rc 8 "retry of a completed job (409)" retry "${JSON_JOB:-$SAMPLE_JOB}"
expect_rc 0 "delete of a completed job" delete "${JSON_JOB:-$SAMPLE_JOB}"
expect_rc 6 "show of the deleted job" show "${JSON_JOB:-$SAMPLE_JOB}"

# ---- 5. large files: chunked upload ---------------------------------------------------------------
echo "$PROG: [$((SECONDS - START)) s] uploads"
# 2.4 MiB: over the gateway's 2 MiB limit, under importctl's 8 MiB single-request
# size: the POST gets 413 and importctl falls back to chunks.
awk 'BEGIN { print "id,n,pad"; for (i = 1; i <= 2500; i++) printf "k%d,%d,%01000d\n", i, i, i }' >"$TMP/mid.csv"
follow_check mid 0 completed "$TMP/mid.csv" --collection mid
got=$(psql_db -c "SELECT count(*), sum((data->>'n')::bigint) FROM importer.records WHERE collection = 'mid'")
check "2.4 MiB file (refused in one request, then sent in chunks): 2500 records, each with its data" \
	"mid: count|sum = $got, want 2500|3126250" [ "$got" = "2500|3126250" ]
# 9 MiB: chunked from the start.
awk 'BEGIN { print "id,n,pad"; for (i = 1; i <= 9000; i++) printf "k%d,%d,%01000d\n", i, i, i }' >"$TMP/big.csv"
SIZE=$(stat -c %s "$TMP/big.csv")
follow_check big 0 completed "$TMP/big.csv" --collection big --mode replace
got=$(psql_db -c "SELECT count(*), sum((data->>'n')::bigint) FROM importer.records WHERE collection = 'big'")
check "$((SIZE / 1048576)) MiB file (chunked): 9000 records, each with its data" \
	"big: count|sum = $got, want 9000|40504500" [ "$got" = "9000|40504500" ]
got=$(psql_db -c "SELECT file_size FROM importer.import_jobs WHERE id = '$FOLLOWED'")
check "chunked upload: file_size $SIZE bytes, as on disk" "chunked upload: file_size $got, want $SIZE" [ "$got" = "$SIZE" ]

# ---- 6. Ctrl-C cancels; gateway restart mid-stream --------------------------------------------------------
echo "$PROG: [$((SECONDS - START)) s] Ctrl-C and reconnects (slowed-down user)"
awk 'BEGIN { print "id,n"; for (i = 1; i <= 60000; i++) printf "s%d,%d\n", i, i }' >"$TMP/slow.csv"
# background_follow NAME ARGS...: importctl import --follow in the background
background_follow() {
	local name=$1
	shift
	IMPORTER_TOKEN=$TOKEN_S "$IMPORTCTL" import "$@" --follow >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
	BG=$!
	BGS+=("$BG")
}
# wait_running OUTFILE: the job id printed and the job processing with progress
wait_running() {
	local deadline=$((SECONDS + 30)) id=
	while [ "$SECONDS" -lt "$deadline" ]; do
		id=$(grep -m1 -o '^job [0-9a-f-]\{36\}' "$1" 2>/dev/null | cut -c5- || true)
		if [ -n "$id" ] && [ "$(psql_db -c "SELECT status = 'processing' AND processed_items > 0 FROM importer.import_jobs WHERE id = '$id'")" = t ]; then
			RUNNING=$id
			return 0
		fi
		sleep 0.1
	done
	return 1
}
background_follow cancel "$TMP/slow.csv" --collection slow1 --batch-size 1000
if wait_running "$TMP/cancel.out"; then
	# A second follower: logs --follow of the same running job.
	IMPORTER_TOKEN=$TOKEN_S "$IMPORTCTL" logs "$RUNNING" --follow >"$TMP/logsf.out" 2>"$TMP/logsf.err" </dev/null &
	LOGS_PID=$!
	BGS+=("$LOGS_PID")
	kill -INT "$BG"
	rc=0
	wait "$BG" || rc=$?
	st=$(job_status "$RUNNING")
	check "Ctrl-C while following: the job is cancelled, exit 3" \
		"Ctrl-C: exit $rc (want 3), job '$st' (want cancelled); out: $(tail -c 300 "$TMP/cancel.out"); err: $(head -c 300 "$TMP/cancel.err")" \
		[ "$rc" -eq 3 -a "$st" = cancelled ]
	check "cancelled: summary line" "no summary: $(tail -c 300 "$TMP/cancel.out")" grep -q '^cancelled in' "$TMP/cancel.out"
	deadline=$((SECONDS + 30))
	while kill -0 "$LOGS_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
	rc=0
	if kill -0 "$LOGS_PID" 2>/dev/null; then
		kill "$LOGS_PID" 2>/dev/null || true
		rc=999
	else
		wait "$LOGS_PID" || rc=$?
	fi
	check "logs --follow of the same job ended with it: exit 3, its lines, then 'job … cancelled'" \
		"logs --follow: exit $rc (999: still running 30 s later); out: $(tail -c 400 "$TMP/logsf.out"); err: $(head -c 300 "$TMP/logsf.err")" \
		[ "$rc" -eq 3 -a "$(tail -n 1 "$TMP/logsf.out")" = "job $RUNNING cancelled" -a "$(wc -l <"$TMP/logsf.out")" -ge 2 ]
else
	kill "$BG" 2>/dev/null || true
	fail "the slow job never ran: $(cat "$TMP/cancel.out" "$TMP/cancel.err")"
fi

# A second Ctrl-C detaches. To hold the job between the two, the workers are
# stopped (SIGSTOP) first: the job stays processing whatever the cancel does
# (its UPDATE may even wait for a stopped worker's row lock).
background_follow detach "$TMP/slow.csv" --collection slow4 --batch-size 1000
if wait_running "$TMP/detach.out"; then
	kill -STOP "${PIDS[1]}" "${PIDS[2]}"
	WORKERS_STOPPED=1
	kill -INT "$BG"
	deadline=$((SECONDS + 20))
	until grep -q 'cancelling job' "$TMP/detach.err" || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.1; done
	kill -INT "$BG"
	deadline=$((SECONDS + 20))
	while kill -0 "$BG" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
	rc=0
	if kill -0 "$BG" 2>/dev/null; then
		kill -KILL "$BG" 2>/dev/null || true
		rc=999
	else
		wait "$BG" || rc=$?
	fi
	st=$(job_status "$RUNNING")
	kill -CONT "${PIDS[1]}" "${PIDS[2]}"
	WORKERS_STOPPED=0
	check "second Ctrl-C: detached (exit 130) while the job was still $st" \
		"second Ctrl-C: exit $rc (want 130; 999: still running 20 s later), job '$st' (want processing); err: $(head -c 300 "$TMP/detach.err")" \
		[ "$rc" -eq 130 -a "$st" = processing ]
	check "detached: the message says the job goes on" "detach message: $(cat "$TMP/detach.err")" \
		grep -q 'detached; job .* goes on' "$TMP/detach.err"
	if wait_sql 60 t "SELECT status IN ('completed', 'failed', 'cancelled') FROM importer.import_jobs WHERE id = '$RUNNING'"; then
		ok "the detached job went on once the workers continued and ended $(job_status "$RUNNING")"
	else
		fail "the detached job is '$(job_status "$RUNNING")' 60 s after the workers continued"
	fi
else
	kill "$BG" 2>/dev/null || true
	fail "the slow job never ran: $(cat "$TMP/detach.out" "$TMP/detach.err")"
fi

awk 'BEGIN { print "id,n"; for (i = 1; i <= 20000; i++) printf "r%d,%d\n", i, i }' >"$TMP/restart.csv"
background_follow restart "$TMP/restart.csv" --collection slow2 --batch-size 500
if wait_running "$TMP/restart.out"; then
	stop_pid "$GW_PID"
	wait "$GW_PID" 2>/dev/null || true
	start_gateway
	PIDS[0]=$GW_PID
	wait_ready
	ok "gateway restarted while importctl followed job $RUNNING"
	deadline=$((SECONDS + 90))
	while kill -0 "$BG" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
	if kill -0 "$BG" 2>/dev/null; then
		kill "$BG" 2>/dev/null || true
		fail "importctl still following 90 s after the gateway restart (job $(job_status "$RUNNING"))"
	else
		rc=0
		wait "$BG" || rc=$?
		st=$(job_status "$RUNNING")
		check "after the gateway restart --follow still ended with the job: exit 0, completed" \
			"after the restart: exit $rc, job '$st'; out: $(tail -c 300 "$TMP/restart.out"); err: $(head -c 300 "$TMP/restart.err")" \
			[ "$rc" -eq 0 -a "$st" = completed ]
	fi
else
	kill "$BG" 2>/dev/null || true
	fail "the slow job never ran: $(cat "$TMP/restart.out" "$TMP/restart.err")"
fi

# ---- 7. a terminal: the bar advances ---------------------------------------------------------------------
echo "$PROG: [$((SECONDS - START)) s] the progress bar in a terminal (tmux)"
tmux -L "$TMUX_SOCK" -f /dev/null new-session -d -x 120 -y 10 -s e2e \
	env IMPORTER_URL="$BASE" IMPORTER_TOKEN="$TOKEN_S" TERM=xterm "$IMPORTCTL" import "$TMP/slow.csv" \
	--collection slow3 --batch-size 1000 --follow \; set-option remain-on-exit on
pane() { tmux -L "$TMUX_SOCK" capture-pane -p -t e2e 2>/dev/null || true; }
# pane_percent: the percent on the progress line, or empty
pane_percent() { pane | { grep -o '\] *[0-9]\{1,3\}%' || true; } | tail -n 1 | tr -dc '0-9'; }
first='' second=''
deadline=$((SECONDS + 40))
while [ "$SECONDS" -lt "$deadline" ]; do
	p=$(pane_percent)
	if [ -n "$p" ] && [ "$p" -gt 0 ] && [ "$p" -lt 90 ]; then
		first=$p
		break
	fi
	sleep 0.1
done
if [ -z "$first" ]; then
	fail "no progress bar under 90% in the tmux pane: $(pane | head -n 5)"
else
	bar=$(pane | grep -m1 '^\[[#.]*\]' || true)
	check "tmux: a bar line with count, rate, ETA: '$bar'" "tmux: no bar line: $(pane | head -n 5)" \
		grep -q 'rec/s.*ETA' <<<"$bar"
	deadline=$((SECONDS + 40))
	while [ "$SECONDS" -lt "$deadline" ]; do
		p=$(pane_percent)
		if [ -n "$p" ] && [ "$p" -gt "$first" ]; then
			second=$p
			break
		fi
		sleep 0.1
	done
	check "tmux: the bar advanced from $first% to $second%" \
		"tmux: the percent stayed at $first%: $(pane | head -n 5)" [ -n "$second" ]
fi
# Ctrl-C typed in the terminal cancels the job; the summary replaces the bar
# (remain-on-exit keeps the pane).
tmux -L "$TMUX_SOCK" send-keys -t e2e C-c
deadline=$((SECONDS + 30))
while [ "$SECONDS" -lt "$deadline" ]; do
	pane | grep -q '^cancelled in' && break
	sleep 0.1
done
check "tmux: Ctrl-C cancelled the job, the summary replaced the bar" \
	"tmux: no 'cancelled in' summary after Ctrl-C: $(pane | head -n 6)" grep -q '^cancelled in .* inserted' <<<"$(pane)"
check "tmux: no sanitizer report in the pane" "tmux: $(pane | grep -m1 -i 'sanitizer')" \
	test -z "$(pane | grep -i 'sanitizer\|runtime error' || true)"
check "tmux: the pane holds no stale progress line" "tmux: a progress line is left: $(pane | head -n 6)" \
	test -z "$(pane | grep '^\[[#.]*\]' || true)"
tmux -L "$TMUX_SOCK" kill-server 2>/dev/null || true

# ---- 8. the services are well ---------------------------------------------------------------------------
for i in "${!PIDS[@]}"; do
	kill -0 "${PIDS[$i]}" 2>/dev/null || fail "${NAMES[$i]} exited during the test"
done
if grep -l 'AddressSanitizer\|LeakSanitizer\|runtime error:' "$TMP"/*.err "$TMP"/*.log 2>/dev/null; then
	fail "sanitizer report in the files above"
else
	ok "no sanitizer report from importctl or the services"
fi
