# tests/bench/lib.sh -- shared by the benchmark scripts (sourced, not run).
#
# What a benchmark script gets after `bench_init NAME`:
#   ROOT BUILD WORKER GATEWAY   the worktree and the Release binaries
#   TMP                         a private scratch directory (removed on exit)
#   OUT                         where results go ($BENCH_OUT, default build/bench)
#   RAW                         $OUT/raw/NAME.tsv: one line per measurement
#   SCALE                       $BENCH_SCALE: small (smoke test, minutes) or full
#   RUNS                        repetitions of every measurement (>= 3)
# and, after `bench_cluster`: SUPER_URL ADMIN_URL WK_URL GW_URL (the throwaway
# cluster of run.sh when BENCH_PG_DIR is exported, else one started here).
#
# Every process started through these helpers is stopped by pid on exit.
# Results are lines "case<TAB>value<TAB>unit<TAB>load1" in RAW; summarize.py
# turns them into the Markdown tables of BENCHMARKS.md.
set -euo pipefail

BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_LIB_DIR/../.." && pwd)
PG=$ROOT/deploy/local/pg.sh
SCALE=${BENCH_SCALE:-full}
case $SCALE in small | full) ;; *) echo "BENCH_SCALE must be small or full" >&2; exit 2 ;; esac
RUNS=${BENCH_RUNS:-3}
BENCH_PIDS=()
BENCH_STARTED_PG=0

bench_say() { printf '[%s] %s: %s\n' "$(date -u +%H:%M:%S)" "$BENCH_NAME" "$*" >&2; }
bench_die() {
	bench_say "ERROR: $*"
	exit 1
}

# The 1-minute load average, recorded next to every figure.
load1() { cut -d' ' -f1 /proc/loadavg; }

# record CASE VALUE UNIT: one measurement.
record() {
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(load1)" >>"$RAW"
	bench_say "$1: $2 $3 (load $(load1))"
}

# Builds Release binaries unless IMPORTER_BUILD_DIR names an existing build.
bench_build() {
	if [ -n "${IMPORTER_BUILD_DIR:-}" ]; then
		BUILD=$IMPORTER_BUILD_DIR
	else
		BUILD=$ROOT/build/bench-release
		# Incremental: a no-op when the binaries are up to date.
		bench_say "building Release binaries in $BUILD"
		cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DIMPORTER_WERROR=ON \
			-DIMPORTER_SANITIZE=OFF >"$OUT/build.log" 2>&1 || {
			tail -n 30 "$OUT/build.log" >&2
			bench_die "cmake configure failed"
		}
		cmake --build "$BUILD" -j2 --target importer-worker importer-gateway \
			>>"$OUT/build.log" 2>&1 || {
			tail -n 30 "$OUT/build.log" >&2
			bench_die "build failed"
		}
		export IMPORTER_BUILD_DIR=$BUILD
	fi
	WORKER=$BUILD/worker/importer-worker
	GATEWAY=$BUILD/api/importer-gateway
	[ -x "$WORKER" ] || bench_die "$WORKER not found"
	[ -x "$GATEWAY" ] || bench_die "$GATEWAY not found"
	grep -q 'CMAKE_BUILD_TYPE:STRING=Release' "$BUILD/CMakeCache.txt" 2>/dev/null ||
		bench_say "WARNING: $BUILD is not a Release build"
}

bench_cleanup() {
	local rc=$? p i alive f
	trap - EXIT INT TERM
	for p in "${BENCH_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for ((i = 0; i < 150; i++)); do
		alive=0
		for p in "${BENCH_PIDS[@]}"; do
			if kill -0 "$p" 2>/dev/null; then alive=1; fi
		done
		[ "$alive" = 1 ] || break
		sleep 0.1
	done
	for p in "${BENCH_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "$BENCH_STARTED_PG" = 1 ]; then
		# The plans auto_explain logged outlive the cluster.
		if [ -n "${BENCH_AUTO_EXPLAIN_MS:-}" ]; then
			f=$("$PG" status "$TMP/pg" 2>/dev/null | sed -n 's/^log: *//p')
			[ -z "$f" ] || cp "$f" "$OUT/$BENCH_NAME.postgres.log" || true
		fi
		"$PG" destroy "$TMP/pg" >/dev/null 2>&1 || true
	fi
	if [ "$rc" -ne 0 ] && [ -d "$TMP" ]; then
		for f in "$TMP"/*.log; do
			[ -s "$f" ] || continue
			printf -- '---- last lines of %s ----\n' "${f##*/}" >&2
			tail -n 10 "$f" >&2
		done
	fi
	rm -rf -- "$TMP"
	exit "$rc"
}

# bench_init NAME: scratch dir, result file, traps, file limit, binaries.
bench_init() {
	BENCH_NAME=$1
	OUT=${BENCH_OUT:-$ROOT/build/bench}
	mkdir -p "$OUT/raw"
	RAW=$OUT/raw/$BENCH_NAME.tsv
	: >"$RAW"
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-$BENCH_NAME.XXXXXX")

	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 20000 2>/dev/null || true
	for tool in psql curl python3 jq openssl; do
		command -v "$tool" >/dev/null 2>&1 || bench_die "$tool not found"
	done
	bench_build
}

# A free TCP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The cluster settings every benchmark runs with (written down in BENCHMARKS.md).
BENCH_PG_SETTINGS=(
	"shared_buffers=1GB"
	"max_wal_size=8GB"
	"checkpoint_timeout=30min"
	"max_connections=400"
	"shared_preload_libraries=pg_stat_statements"
	"track_io_timing=on"
	# latency.sh: commit -> SSE starts at pg_xact_commit_timestamp(xmin)
	"track_commit_timestamp=on"
)
# BENCH_AUTO_EXPLAIN_MS=N: also log the plan of every statement (nested ones
# too: the claim functions' queries) slower than N ms to the cluster's
# postgres.log, with each node's rows and buffers (no per-node timing: it
# would slow every statement) -- how a plan that goes wrong under load is
# caught, and where a statement's buffers go.
# (Set after the restart that loads it: before, its settings are unknown.)
BENCH_PG_LATE_SETTINGS=()
if [ -n "${BENCH_AUTO_EXPLAIN_MS:-}" ]; then
	BENCH_PG_SETTINGS+=("shared_preload_libraries=pg_stat_statements,auto_explain")
	BENCH_PG_LATE_SETTINGS=(
		"auto_explain.log_min_duration=${BENCH_AUTO_EXPLAIN_MS}ms"
		"auto_explain.log_nested_statements=on"
		"auto_explain.log_analyze=on"
		"auto_explain.log_timing=off"
		"auto_explain.log_triggers=on"
		"auto_explain.log_buffers=on"
	)
fi

# bench_alter_system URL NAME=VALUE...: ALTER SYSTEM SET each; a value with
# commas is a list (each element quoted on its own).
bench_alter_system() {
	local url=$1 s v
	shift
	for s in "$@"; do
		v=${s#*=}
		psql -X -q -v ON_ERROR_STOP=1 "$url" -c "ALTER SYSTEM SET ${s%%=*} = '${v//,/"','"}'" >/dev/null
	done
}

# Starts the throwaway cluster in $1 (a directory) on a free port, with the
# settings above, a database `importer` migrated, and the login roles.
# Prints nothing; writes $1/urls.env with the URLs.
bench_start_cluster() {
	local dir=$1 port tries rc s
	port=$((57000 + RANDOM % 3000))
	for ((tries = 0; ; tries++)); do
		[ "$tries" -lt 50 ] || bench_die "no free port for PostgreSQL"
		rc=0
		"$PG" start "$dir" "$port" 2>"$dir.err" || rc=$?
		if [ "$rc" -eq 3 ]; then
			port=$((port + 1))
			continue
		fi
		[ "$rc" -eq 0 ] || bench_die "pg.sh start failed: $(cat "$dir.err")"
		break
	done
	rm -f "$dir.err"
	local super
	super=$("$PG" url "$dir")
	bench_alter_system "$super" "${BENCH_PG_SETTINGS[@]}"
	"$PG" stop "$dir"
	"$PG" start "$dir" "$port" || bench_die "restart with benchmark settings failed"
	if [ "${#BENCH_PG_LATE_SETTINGS[@]}" -gt 0 ]; then
		bench_alter_system "$super" "${BENCH_PG_LATE_SETTINGS[@]}"
		psql -X -q -v ON_ERROR_STOP=1 "$super" -c "SELECT pg_reload_conf()" >/dev/null
	fi
	psql -X -q -v ON_ERROR_STOP=1 "$super" <<-EOF >/dev/null
		CREATE DATABASE importer;
		\c importer
		CREATE EXTENSION pg_stat_statements;
	EOF
	local admin=${super%/postgres}/importer
	DATABASE_URL=$admin IMPORTER_LOG_LEVEL=warn "$WORKER" migrate 2>"$dir.migrate.log" ||
		bench_die "migrate failed: $(cat "$dir.migrate.log")"
	local gwpw wkpw
	gwpw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	wkpw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	# Benchmarks submit thousands of jobs for one user: lift the per-user
	# limits (the benchmark measures throughput, not the limits).
	psql -X -q -v ON_ERROR_STOP=1 "$admin" <<-EOF >/dev/null
		SET client_min_messages = warning;
		CREATE ROLE bench_gateway LOGIN PASSWORD '$gwpw' IN ROLE importer_api;
		CREATE ROLE bench_worker LOGIN PASSWORD '$wkpw' IN ROLE importer_worker;
		UPDATE importer.settings SET value = '1000000' WHERE key = 'max_active_jobs_per_user' AND user_id IS NULL;
		UPDATE importer.settings SET value = '100000' WHERE key = 'max_sse_streams_per_user' AND user_id IS NULL;
	EOF
	{
		printf 'SUPER_URL=%q\n' "$super"
		printf 'ADMIN_URL=%q\n' "$admin"
		printf 'GW_URL=%q\n' "postgresql://bench_gateway:$gwpw@127.0.0.1:$port/importer"
		printf 'WK_URL=%q\n' "postgresql://bench_worker:$wkpw@127.0.0.1:$port/importer"
		printf 'PG_PORT=%q\n' "$port"
	} >"$dir/urls.env"
}

# Uses run.sh's cluster (BENCH_PG_DIR) or starts a private one.
bench_cluster() {
	local dir
	if [ -n "${BENCH_PG_DIR:-}" ] && [ -f "$BENCH_PG_DIR/urls.env" ]; then
		dir=$BENCH_PG_DIR
	else
		dir=$TMP/pg
		mkdir -p "$dir"
		BENCH_STARTED_PG=1
		bench_say "starting a throwaway PostgreSQL cluster"
		bench_start_cluster "$dir"
	fi
	PG_DIR=$dir
	# shellcheck source=/dev/null
	. "$dir/urls.env"
}

# The postmaster's pid (for CPU accounting of the cluster's processes).
postmaster_pid() {
	(
		# shellcheck source=/dev/null
		. "$PG_DIR/pg.env"
		head -n 1 "$PGSH_DATA/postmaster.pid"
	)
}

# cpu_ticks PID...: user+system clock ticks used so far by these processes.
cpu_ticks() {
	local p t=0 f a
	for p in "$@"; do
		f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		# After "(comm) ": state first, utime 12th, stime 13th.
		read -r -a a <<<"${f##*) }"
		t=$((t + a[11] + a[12]))
	done
	echo "$t"
}

psql_admin() { psql -X -q -At -v ON_ERROR_STOP=1 "$ADMIN_URL" "$@"; }

# start_worker LOGNAME [VAR=value ...]: a worker in the background; its pid in LAST_PID.
start_worker() {
	local log=$TMP/$1.log
	shift
	env -u IMPORTER_METRICS_ADDR -u IMPORTER_JWT_SECRET -u IMPORTER_HTTP_ADDR \
		DATABASE_URL="$WK_URL" IMPORTER_LISTEN_DATABASE_URL="$WK_URL" \
		IMPORTER_LOG_LEVEL=warn "$@" "$WORKER" >/dev/null 2>"$log" &
	LAST_PID=$!
	BENCH_PIDS+=("$LAST_PID")
}

# stop_pid PID: SIGTERM, wait (bounded), SIGKILL.
stop_pid() {
	local p=$1 i
	kill -TERM "$p" 2>/dev/null || return 0
	for ((i = 0; i < 150; i++)); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
}

# start_gateway [VAR=value ...]: sets GW_PID, HTTP_BASE, JWT_SECRET.
start_gateway() {
	local port i
	port=$(free_port)
	JWT_SECRET=bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	env -u IMPORTER_METRICS_ADDR DATABASE_URL="$GW_URL" IMPORTER_LISTEN_DATABASE_URL="$GW_URL" \
		IMPORTER_HTTP_ADDR="127.0.0.1:$port" IMPORTER_JWT_SECRET="$JWT_SECRET" \
		IMPORTER_LOG_LEVEL=warn "$@" "$GATEWAY" >/dev/null 2>"$TMP/gateway.log" &
	GW_PID=$!
	BENCH_PIDS+=("$GW_PID")
	HTTP_BASE=http://127.0.0.1:$port
	for ((i = 0; i < 300; i++)); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$HTTP_BASE/readyz" || true)" = 200 ] &&
			return 0
		kill -0 "$GW_PID" 2>/dev/null || bench_die "gateway exited: $(tail -n 5 "$TMP/gateway.log")"
		sleep 0.1
	done
	bench_die "gateway not ready after 30 s"
}

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# jwt USER_UUID: an HS256 token for the gateway, valid for a day.
jwt() {
	local now h p s
	now=$(date +%s)
	h=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
	p=$(printf '{"sub":"%s","nbf":%d,"exp":%d}' "$1" $((now - 60)) $((now + 86400)) | b64url)
	s=$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -hmac "$JWT_SECRET" -binary | b64url)
	printf '%s.%s.%s\n' "$h" "$p" "$s"
}

# upload_file USER TOKEN FILE: chunked upload through the gateway (8 MiB
# PUTs, the route's maximum); prints the upload id.
upload_file() {
	local token=$2 file=$3 id seq=0 part parts=$TMP/parts.$$
	id=$(curl -sf --max-time 30 -X POST -H "Authorization: Bearer $token" \
		"$HTTP_BASE/api/uploads" | jq -r .upload_id) || bench_die "POST /api/uploads failed"
	rm -rf "$parts"
	mkdir "$parts"
	split -b 8M -d -a 5 "$file" "$parts/p"
	for part in "$parts"/p*; do
		curl -sf --max-time 120 -o /dev/null -X PUT -H "Authorization: Bearer $token" \
			--data-binary @"$part" "$HTTP_BASE/api/uploads/$id/chunks/$seq" ||
			bench_die "PUT chunk $seq failed"
		seq=$((seq + 1))
	done
	rm -rf "$parts"
	printf '%s\n' "$id"
}

# submit_upload TOKEN UPLOAD_ID QUERY: submits a job; prints its id.
submit_upload() {
	curl -sf --max-time 60 -X POST -H "Authorization: Bearer $1" \
		"$HTTP_BASE/api/jobs?upload_id=$2&$3" | jq -r .id
}

# wait_job ID SECONDS: polls until the job is terminal; sets JOB_STATUS.
# (Not a command substitution: a signal must not wait for the loop to end.)
wait_job() {
	local id=$1 deadline=$((SECONDS + $2)) st
	while :; do
		st=$(psql_admin -c "SELECT status FROM importer.import_jobs WHERE id = '$id'")
		case $st in completed | failed | cancelled)
			JOB_STATUS=$st
			return 0
			;;
		esac
		[ "$SECONDS" -lt "$deadline" ] || bench_die "job $id still '$st' after $2 s"
		sleep 0.2
	done
}

# job_seconds ID: claim -> completed, by the database clock.
job_seconds() {
	psql_admin -c "SELECT round(extract(epoch FROM completed_at - started_at)::numeric, 3)
	               FROM importer.import_jobs WHERE id = '$1'"
}

# VmHWM (peak RSS) of a process, in MiB.
peak_rss_mib() {
	awk '/^VmHWM:/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"
}

# gen_csv ROWS FILE: ROWS data rows, 8 columns (id first), about 100 bytes a row.
gen_csv() {
	awk -v n="$1" 'BEGIN {
		print "id,name,email,city,amount,created,active,note"
		for (i = 1; i <= n; i++)
			printf "%d,Name %07d,user%d@example.com,City %d,%d.%02d,2026-%02d-%02dT10:%02d:00Z,%s,\"note %d, quoted\"\n",
				i, i, i, i % 977, i % 100000, i % 100, 1 + i % 12, 1 + i % 28, i % 60,
				(i % 2 ? "true" : "false"), i
	}' >"$2"
}

# gen_ndjson ROWS FILE: the same records as gen_csv, one JSON object a line.
gen_ndjson() {
	awk -v n="$1" 'BEGIN {
		for (i = 1; i <= n; i++)
			printf "{\"id\":\"%d\",\"name\":\"Name %07d\",\"email\":\"user%d@example.com\",\"city\":\"City %d\",\"amount\":\"%d.%02d\",\"created\":\"2026-%02d-%02dT10:%02d:00Z\",\"active\":\"%s\",\"note\":\"note %d, quoted\"}\n",
				i, i, i, i % 977, i % 100000, i % 100, 1 + i % 12, 1 + i % 28, i % 60,
				(i % 2 ? "true" : "false"), i
	}' >"$2"
}

# gen_backup ROWS FILE: the same records as one backup document's "users".
gen_backup() {
	awk -v n="$1" 'BEGIN {
		printf "{\"metadata\":{\"generator\":\"bench\"},\"users\":[\n"
		for (i = 1; i <= n; i++)
			printf "%s{\"id\":\"%d\",\"name\":\"Name %07d\",\"email\":\"user%d@example.com\",\"city\":\"City %d\",\"amount\":\"%d.%02d\",\"created\":\"2026-%02d-%02dT10:%02d:00Z\",\"active\":\"%s\",\"note\":\"note %d, quoted\"}\n",
				(i > 1 ? "," : ""), i, i, i, i % 977, i % 100000, i % 100, 1 + i % 12, 1 + i % 28, i % 60,
				(i % 2 ? "true" : "false"), i
		printf "]}\n"
	}' >"$2"
}

# Empties the data tables between runs so that every run starts alike.
reset_data() {
	psql_admin <<-'EOF' >/dev/null
		SET client_min_messages = warning;
		TRUNCATE importer.records, importer.replace_staging, importer.import_errors,
		         importer.import_logs, importer.notifications;
		DELETE FROM importer.import_jobs;
		DELETE FROM importer.import_files;
		VACUUM ANALYZE importer.import_jobs;
		CHECKPOINT;
	EOF
}

# percentile FILE P: the P-th percentile (nearest rank) of the numbers in FILE.
percentile() {
	python3 -c '
import math, sys
v = sorted(float(x) for x in open(sys.argv[1]) if x.strip())
if not v:
    sys.exit("percentile: no values in " + sys.argv[1])
p = float(sys.argv[2])
print(f"{v[max(0, math.ceil(p / 100 * len(v)) - 1)]:.3f}")' "$1" "$2"
}

# bench_npm_install DIR PACKAGE@VERSION...: npm-installs the reference job
# queues into DIR unless they are there already; exports NODE_PATH.
bench_npm_install() {
	local dir=$1 pkg missing=0
	shift
	for pkg in "$@"; do [ -d "$dir/node_modules/${pkg%@*}" ] || missing=1; done
	if [ "$missing" = 1 ]; then
		bench_say "npm install $* into $dir"
		mkdir -p "$dir"
		[ -f "$dir/package.json" ] || printf '{"private":true}\n' >"$dir/package.json"
		(cd "$dir" && timeout 300 npm install --no-audit --no-fund --loglevel=error "$@" \
			>"$TMP/npm.log" 2>&1) || bench_die "npm install failed: $(tail -n 5 "$TMP/npm.log")"
	fi
	export NODE_PATH=$dir/node_modules
}
