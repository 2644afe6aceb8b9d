# tests/e2e/lib.sh -- shared by the e2e and soak scripts (sourced; not run by
# tests/run.sh, which runs only executable scripts).

# say MESSAGE, fail MESSAGE (counted in `failures`), die MESSAGE (fail, then
# exit 1): prefixed with the sourcing script's name, say with the seconds
# since it started. A script may define its own after sourcing this file.
E2E_PROG=${0##*/}
START=$SECONDS
failures=0
say() { printf '%s: [%3ss] %s\n' "$E2E_PROG" "$((SECONDS - START))" "$*"; }
fail() {
	failures=$((failures + 1))
	printf '%s: FAIL: %s\n' "$E2E_PROG" "$*" >&2
}
die() {
	fail "$*"
	exit 1
}

# e2e_start_cluster PG PGDIR TMP: starts a private PostgreSQL cluster with
# deploy/local/pg.sh ($PG) in PGDIR on the first free port from a random one
# in 56000-59999 (pg.sh exits 3 for a busy port), and sets `port`. Calls the
# script's die() on failure.
e2e_start_cluster() {
	local pg=$1 pgdir=$2 tmp=$3 tries rc
	port=$((56000 + RANDOM % 4000))
	for ((tries = 0; ; tries++)); do
		[ "$tries" -lt 50 ] || die "no free port for PostgreSQL"
		rc=0
		"$pg" --fast start "$pgdir" "$port" 2>"$tmp/pgstart.err" || rc=$?
		if [ "$rc" -eq 3 ]; then
			port=$((port + 1))
			continue
		fi
		[ "$rc" -eq 0 ] || die "pg.sh start failed (exit $rc): $(cat "$tmp/pgstart.err")"
		return 0
	done
}

# e2e_dump_logs N FILE...: for each non-empty FILE, prints to stderr its
# warning, error and sanitizer lines (the last 20), then its last N lines.
e2e_dump_logs() {
	local n=$1 f
	shift
	for f in "$@"; do
		[ -s "$f" ] || continue
		printf -- '---- last lines of %s (warnings and errors first) ----\n' "${f##*/}" >&2
		grep -E '"level":"(warn|error)"|Sanitizer|runtime error' "$f" | tail -n 20 >&2 || true
		tail -n "$n" "$f" >&2
	done
}

# e2e_finish RC KEEP_DIR LOG...: the end of a script's EXIT trap, after its
# processes are stopped. A non-zero RC or any fail() dumps the LOGs and makes
# the exit status 1 (or keeps RC); then the cluster in $PGDIR is destroyed,
# the logs and JSON files of $TMP are copied into KEEP_DIR when one is given
# (the script's *_KEEP variable), $TMP is removed, and PASS or FAIL is said.
e2e_finish() {
	local rc=$1 keep=$2
	shift 2
	if [ "$rc" -ne 0 ] || [ "$failures" -gt 0 ]; then
		e2e_dump_logs 10 "$@"
		[ "$rc" -ne 0 ] || rc=1
	fi
	"$PG" destroy "$PGDIR" >/dev/null 2>&1 || true
	if [ -n "$keep" ]; then cp "$TMP"/*.log "$TMP"/*.json "$keep"/ 2>/dev/null || true; fi
	rm -rf -- "$TMP"
	say "$([ "$rc" -eq 0 ] && echo PASS || echo FAIL) ($((SECONDS - START)) s)"
	exit "$rc"
}

# e2e_stop_pids PID...: SIGTERM to each, up to 15 s for all of them to exit,
# then SIGKILL to what is left (cleanup paths: never hangs).
e2e_stop_pids() {
	local p i alive
	for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
	for ((i = 0; i < 150; i++)); do
		alive=0
		for p in "$@"; do
			if kill -0 "$p" 2>/dev/null; then alive=1; fi
		done
		[ "$alive" = 1 ] || break
		sleep 0.1
	done
	for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done
}

# e2e_init_db PG PGDIR TMP WORKER [SQL]: on the cluster e2e_start_cluster
# started (`port`), creates the database `importer`, applies the migrations
# with `WORKER migrate`, creates the login roles as deploy/local/run.sh does
# (importer_gateway_login in importer_api, importer_worker_login in
# importer_worker, random passwords) and runs SQL (settings for the test) as
# the owner. Sets SUPER_URL, ADMIN_URL (owner, database importer), GW_URL and
# WK_URL. Calls the script's die() on failure.
e2e_init_db() {
	local pg=$1 pgdir=$2 tmp=$3 worker=$4 sql=${5:-} gw_pw wk_pw
	SUPER_URL=$("$pg" url "$pgdir")
	ADMIN_URL=${SUPER_URL%/postgres}/importer
	psql -X -q -v ON_ERROR_STOP=1 "$SUPER_URL" -c 'CREATE DATABASE importer' >/dev/null ||
		die "CREATE DATABASE importer failed"
	DATABASE_URL=$ADMIN_URL IMPORTER_LOG_LEVEL=warn "$worker" migrate 2>"$tmp/migrate.log" ||
		die "importer-worker migrate failed: $(cat "$tmp/migrate.log")"
	gw_pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	wk_pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	psql -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" >/dev/null <<EOSQL || die "creating the login roles failed"
SET client_min_messages = warning;
CREATE ROLE importer_gateway_login LOGIN PASSWORD '$gw_pw' IN ROLE importer_api;
CREATE ROLE importer_worker_login LOGIN PASSWORD '$wk_pw' IN ROLE importer_worker;
$sql
EOSQL
	GW_URL=postgresql://importer_gateway_login:$gw_pw@127.0.0.1:$port/importer
	WK_URL=postgresql://importer_worker_login:$wk_pw@127.0.0.1:$port/importer
}

# e2e_free_port: prints a free TCP port on 127.0.0.1 (the kernel picks it).
e2e_free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
