#!/usr/bin/env bash
# deploy/local/run.sh -- the embedded default: the whole stack on this machine, one command.
#
# Installs missing Debian packages (tests/deps.txt, without the test-only ones), builds build/local (Release),
# starts a private PostgreSQL 15 cluster on 127.0.0.1 (deploy/local/pg.sh), applies
# the migrations, creates the services' login roles, starts importer-gateway and
# IMPORTER_WORKERS importer-worker processes, prints the UI URL with a dev token
# and the two exports (IMPORTER_URL, IMPORTER_TOKEN) that make importctl work
# against this stack, and stays in the foreground. Ctrl-C / SIGTERM stops everything it started.
#
# Environment (all optional):
#   IMPORTER_HTTP_PORT   gateway port on 127.0.0.1            (default 8080)
#   IMPORTER_PG_PORT     private PostgreSQL port on 127.0.0.1 (default 55432)
#   IMPORTER_WORKERS     number of workers                    (default 2)
#   IMPORTER_JWT_SECRET  token secret (default: generated once, kept in the state dir)
#   IMPORTER_STATE_DIR   state directory                      (default .local/ in the repo)
#   IMPORTER_LOG_LEVEL   passed to the services               (default info)
#
# State directory: pg/ (cluster records; as root the data itself is under
# /var/lib/importer-pg/), *.password and jwt_secret (mode 0600), and env -- shell
# KEY=value lines: DATABASE_URL (superuser, database importer), IMPORTER_URL,
# IMPORTER_JWT_SECRET, IMPORTER_TOKEN, ... (`set -a; . .local/env; set +a`).
# Logs: the services' JSON lines go to this terminal (stderr); PostgreSQL's log
# is a file (`deploy/local/pg.sh status $IMPORTER_STATE_DIR/pg` names it).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG=$ROOT/deploy/local/pg.sh
BUILD=$ROOT/build/local
DEV_USER_ID=${IMPORTER_DEV_USER_ID:-00000000-0000-4000-8000-000000000001}

HTTP_PORT=${IMPORTER_HTTP_PORT:-8080}
PG_PORT=${IMPORTER_PG_PORT:-55432}
WORKERS=${IMPORTER_WORKERS:-2}
STATE=${IMPORTER_STATE_DIR:-$ROOT/.local}

say() { printf 'run.sh: %s\n' "$*" >&2; }
die() {
	say "$*"
	exit 1
}
is_uint() { case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
gen_secret() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }

is_port() { is_uint "$1" && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }
is_port "$HTTP_PORT" || die "IMPORTER_HTTP_PORT must be a port number, not '$HTTP_PORT'"
is_port "$PG_PORT" || die "IMPORTER_PG_PORT must be a port number, not '$PG_PORT'"
is_uint "$WORKERS" || die "IMPORTER_WORKERS must be a number, not '$WORKERS'"
[ "$HTTP_PORT" != "$PG_PORT" ] || die "IMPORTER_HTTP_PORT and IMPORTER_PG_PORT are both $PG_PORT"

mkdir -p -- "$STATE"
STATE=$(cd -- "$STATE" && pwd -P)
chmod 0700 "$STATE"

# One run.sh per state directory (fd 8 is closed for everything we start).
exec 8>"$STATE/run.lock"
flock -n 8 || die "another deploy/local/run.sh is using $STATE (set IMPORTER_STATE_DIR for a second copy)"

port_busy "$HTTP_PORT" && die "port $HTTP_PORT on 127.0.0.1 is already in use (set IMPORTER_HTTP_PORT)"

# ---- packages and build ------------------------------------------------------------
# shellcheck source=deploy/local/deps.sh
. "$ROOT/deploy/local/deps.sh"
importer_install_deps "$ROOT/tests/deps.txt" runtime || die "missing Debian packages (see above)"

say "building $BUILD (Release)"
mkdir -p "$ROOT/build"
(
	cd "$ROOT"
	# Copies of run.sh started side by side share build/local: build one at a time.
	flock 7
	cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release &&
		cmake --build "$BUILD" -j"$(nproc)"
) 7>"$ROOT/build/.local.lock" 8>&- >"$STATE/build.log" 2>&1 || {
	tail -n 40 "$STATE/build.log" >&2
	die "build failed (full log: $STATE/build.log)"
}
GATEWAY=$BUILD/api/importer-gateway
WORKER=$BUILD/worker/importer-worker
IMPORTCTL=$BUILD/cli/importctl
[ -x "$GATEWAY" ] || die "$GATEWAY was not built"
[ -x "$WORKER" ] || die "$WORKER was not built"

# ---- everything below is stopped again on exit -------------------------------------
PIDS=()  # gateway and workers
NAMES=() # the same order as PIDS
PG_STARTED=0
STOPPING=0

stop_all() {
	local rc=$? i pid alive
	trap - EXIT INT TERM
	STOPPING=1
	if [ "${#PIDS[@]}" -gt 0 ]; then
		say "stopping gateway and workers"
		for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
		# Workers release their job and exit within 10 s of SIGTERM.
		for ((i = 0; i < 150; i++)); do
			alive=0
			for pid in "${PIDS[@]}"; do
				if kill -0 "$pid" 2>/dev/null; then alive=1; fi
			done
			[ "$alive" = 1 ] || break
			sleep 0.1
		done
		for pid in "${PIDS[@]}"; do
			if kill -KILL "$pid" 2>/dev/null; then say "pid $pid did not exit in 15 s: killed"; fi
		done
		wait 2>/dev/null || true
	fi
	if [ "$PG_STARTED" = 1 ]; then
		say "stopping PostgreSQL"
		"$PG" stop "$STATE/pg" 8>&- || true
	fi
	exit "$rc"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- private PostgreSQL ------------------------------------------------------------
rc=0
"$PG" start "$STATE/pg" "$PG_PORT" 8>&- || rc=$?
[ "$rc" -ne 3 ] || die "port $PG_PORT on 127.0.0.1 is already in use (set IMPORTER_PG_PORT)"
[ "$rc" -eq 0 ] || die "could not start PostgreSQL (deploy/local/pg.sh start $STATE/pg $PG_PORT)"
PG_STARTED=1
SUPER_URL=$("$PG" url "$STATE/pg")
ADMIN_URL=${SUPER_URL%/postgres}/importer
psql_super() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

if [ -z "$(psql_super "$SUPER_URL" -Atc "SELECT 1 FROM pg_database WHERE datname = 'importer'")" ]; then
	psql_super "$SUPER_URL" -c 'CREATE DATABASE importer'
fi

say "applying migrations"
env DATABASE_URL="$ADMIN_URL" IMPORTER_LISTEN_DATABASE_URL="$ADMIN_URL" \
	"$WORKER" migrate 8>&- || die "importer-worker migrate failed"

# ---- login roles for the services ---------------------------------------------------
secret_file() { # FILE: print its content, creating it (mode 0600) on first use
	if [ ! -s "$1" ]; then
		(umask 077 && gen_secret >"$1.tmp" && mv -f "$1.tmp" "$1")
	fi
	cat "$1"
}
GW_PW=$(secret_file "$STATE/gateway-db.password")
WK_PW=$(secret_file "$STATE/worker-db.password")
if [ -n "${IMPORTER_JWT_SECRET:-}" ]; then
	JWT_SECRET=$IMPORTER_JWT_SECRET
else
	JWT_SECRET=$(secret_file "$STATE/jwt_secret")
fi

# Passwords travel on stdin, not on a command line. They are hex: no quoting issues.
psql_super "$ADMIN_URL" <<EOF
SET client_min_messages = warning;
\\set gw_pw '$GW_PW'
\\set wk_pw '$WK_PW'
SELECT 'CREATE ROLE importer_gateway_login LOGIN'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'importer_gateway_login') \\gexec
SELECT 'CREATE ROLE importer_worker_login LOGIN'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'importer_worker_login') \\gexec
ALTER ROLE importer_gateway_login WITH LOGIN PASSWORD :'gw_pw';
ALTER ROLE importer_worker_login WITH LOGIN PASSWORD :'wk_pw';
GRANT importer_api TO importer_gateway_login;
GRANT importer_worker TO importer_worker_login;
EOF

hostport=${SUPER_URL#*@}
hostport=${hostport%%/*}
GW_URL=postgresql://importer_gateway_login:$GW_PW@$hostport/importer
WK_URL=postgresql://importer_worker_login:$WK_PW@$hostport/importer
IMPORTER_URL=http://127.0.0.1:$HTTP_PORT

# ---- gateway and workers -------------------------------------------------------------
# Each runs in its own session (setsid), so a Ctrl-C reaches only this script,
# which then sends each exactly one SIGTERM (a second signal means "exit now").
start_proc() { # NAME CMD...
	local name=$1
	shift
	setsid "$@" 8>&- &
	PIDS+=("$!")
	NAMES+=("$name")
}
gateway_env=(env -u IMPORTER_METRICS_ADDR DATABASE_URL="$GW_URL" IMPORTER_LISTEN_DATABASE_URL="$GW_URL"
	IMPORTER_HTTP_ADDR="127.0.0.1:$HTTP_PORT" IMPORTER_JWT_SECRET="$JWT_SECRET")
worker_env=(env -u IMPORTER_METRICS_ADDR -u IMPORTER_JWT_SECRET -u IMPORTER_HTTP_ADDR
	DATABASE_URL="$WK_URL" IMPORTER_LISTEN_DATABASE_URL="$WK_URL")

start_proc gateway "${gateway_env[@]}" "$GATEWAY"
for ((i = 1; i <= WORKERS; i++)); do
	start_proc "worker $i" "${worker_env[@]}" "$WORKER"
done

# Wait until the gateway accepts connections.
for ((i = 0; ; i++)); do
	port_busy "$HTTP_PORT" && break
	kill -0 "${PIDS[0]}" 2>/dev/null || die "importer-gateway exited during startup (see its log above)"
	[ "$i" -lt 300 ] || die "importer-gateway does not listen on 127.0.0.1:$HTTP_PORT after 30 s"
	sleep 0.1
done

# ---- dev token, env file, banner ----------------------------------------------------------
TOKEN=$("${gateway_env[@]}" "$GATEWAY" token --sub "$DEV_USER_ID" --ttl 86400 2>/dev/null 8>&- |
	tr -d '\r\n' || true)
case $TOKEN in *.*.*) ;; *) TOKEN= ;; esac

(
	umask 077
	{
		echo "# written by deploy/local/run.sh; load with: set -a; . $STATE/env; set +a"
		echo "DATABASE_URL=$ADMIN_URL"
		echo "IMPORTER_URL=$IMPORTER_URL"
		echo "IMPORTER_JWT_SECRET=$JWT_SECRET"
		[ -z "$TOKEN" ] || echo "IMPORTER_TOKEN=$TOKEN"
		echo "IMPORTER_DEV_USER_ID=$DEV_USER_ID"
		echo "IMPORTER_GATEWAY_DATABASE_URL=$GW_URL"
		echo "IMPORTER_WORKER_DATABASE_URL=$WK_URL"
	} >"$STATE/env.tmp"
	mv -f "$STATE/env.tmp" "$STATE/env"
)

{
	echo
	echo "importer is running: gateway + $WORKERS worker(s), PostgreSQL on 127.0.0.1:$PG_PORT"
	if [ -n "$TOKEN" ]; then
		echo "  UI:  $IMPORTER_URL/#token=$TOKEN"
	else
		echo "  UI:  $IMPORTER_URL/"
		echo "       (no dev token: '$GATEWAY token --sub $DEV_USER_ID' failed)"
	fi
	# The two exports are whole lines of their own, ready to paste.
	echo "  CLI: $IMPORTCTL, after:"
	echo "export IMPORTER_URL=$IMPORTER_URL"
	if [ -n "$TOKEN" ]; then
		echo "export IMPORTER_TOKEN=$TOKEN"
	else
		echo "       (no IMPORTER_TOKEN: minting failed; mint one with '$GATEWAY token --sub $DEV_USER_ID'"
		echo "       and IMPORTER_JWT_SECRET from $STATE/env)"
	fi
	echo "       e.g. $IMPORTCTL import $ROOT/deploy/local/sample.csv --follow"
	echo "  SQL: psql \"$ADMIN_URL\""
	echo "  env: $STATE/env"
	echo "Ctrl-C stops everything."
	echo
} >&2

# ---- foreground: until a signal, or until a process dies ------------------------------------
while :; do
	exited=
	rc=0
	wait -n -p exited "${PIDS[@]}" || rc=$?
	[ "$STOPPING" = 0 ] || break
	[ -n "$exited" ] || continue # interrupted by a signal: its trap runs
	for i in "${!PIDS[@]}"; do
		[ "${PIDS[$i]}" = "$exited" ] || continue
		say "${NAMES[$i]} (pid $exited) exited with status $rc; stopping everything"
		unset 'PIDS[i]' 'NAMES[i]'
	done
	exit 1
done
