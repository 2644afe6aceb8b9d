#!/usr/bin/env bash
# pg.sh -- a private PostgreSQL 15 cluster on loopback, for tests and the local stack.
#
# Usage:
#   pg.sh [--fast] start   DIR PORT   create the cluster if DIR has none, start it on
#                                     127.0.0.1:PORT, wait until it accepts connections
#   pg.sh          stop    DIR        fast shutdown of the postmaster in DIR's postmaster.pid
#   pg.sh          destroy DIR        stop, then delete the cluster's data (DIR itself stays)
#   pg.sh          url     DIR        print the superuser URI postgresql://postgres:PW@127.0.0.1:PORT/postgres
#   pg.sh          status  DIR        print running/stopped, port, data directory, log file
#   pg.sh          psql    DIR [ARGS] run psql against the cluster as the superuser
#
# --fast (or PG_FAST=1): fsync, synchronous_commit and full_page_writes off (tests only).
# PG_BINDIR overrides where initdb/pg_ctl are looked for.
#
# What goes where. DIR belongs to the caller and holds only small records:
#   DIR/pg.env        where the cluster lives, its OS user and its port (shell lines)
#   DIR/pg.password   the generated superuser password (mode 0600)
# The cluster itself (data/, postgres.log) lives in BASE, which is DIR itself when
# pg.sh runs as a normal user. As root it is /var/lib/importer-pg/<hash of DIR>,
# owned by an unprivileged user (`postgres` if it exists, else a system user
# `importer-pg` created here), because PostgreSQL refuses to run as root and
# DIR may sit in a directory that user cannot enter (/root is mode 0700).
# Unix sockets are off: the cluster is reachable on 127.0.0.1:PORT over TCP
# only, with scram-sha-256 passwords.
#
# Exit status: 0 ok, 1 error, 2 usage, 3 the port is already in use.
set -euo pipefail

PROG=${0##*/}
ROOT_BASE=${IMPORTER_PG_ROOT:-/var/lib/importer-pg}

die() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 1
}

usage() {
	sed -n '4,11p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# ---- argument parsing: --fast may appear anywhere ----------------------------
fast=${PG_FAST:-0}
args=()
for a in "$@"; do
	case $a in
	--fast) fast=1 ;;
	-h | --help) usage ;;
	*) args+=("$a") ;;
	esac
done
[ "${#args[@]}" -ge 2 ] || usage
cmd=${args[0]}
dir_arg=${args[1]}

# ---- helpers -------------------------------------------------------------------
find_bindir() {
	local d cand=()
	[ -n "${PG_BINDIR:-}" ] && cand+=("$PG_BINDIR")
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null || true)
		[ -n "$d" ] && cand+=("$d")
	fi
	cand+=(/usr/lib/postgresql/15/bin)
	for d in "${cand[@]}"; do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
			printf '%s\n' "$d"
			return 0
		fi
	done
	die "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in: ${cand[*]}" \
		"-- install the Debian package postgresql-15 (or set PG_BINDIR)"
}

# Is something accepting TCP connections on 127.0.0.1:$1?
port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The OS user that owns and runs the cluster when we are root.
pg_os_user() {
	if id -u postgres >/dev/null 2>&1; then
		echo postgres
		return
	fi
	if ! id -u importer-pg >/dev/null 2>&1; then
		command -v useradd >/dev/null 2>&1 || die "useradd not found (install the passwd package)"
		useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin --comment "importer private PostgreSQL" importer-pg ||
			die "could not create system user importer-pg"
	fi
	echo importer-pg
}

# Run a command as the cluster's OS user (as ourselves when not root). The lock
# fd 9 is closed so that a postmaster started here never holds DIR's lock.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "$PGSH_USER" -- env LC_ALL=C "$@" 9>&-
	else
		env LC_ALL=C "$@" 9>&-
	fi
}

gen_password() {
	od -An -N24 -tx1 /dev/urandom | tr -d ' \n'
}

# The running postmaster's pid, or nothing. Checks that the pid is a postgres.
postmaster_pid() {
	local pidfile=$PGSH_DATA/postmaster.pid pid comm
	[ -f "$pidfile" ] || return 0
	pid=$(head -n 1 "$pidfile" 2>/dev/null || true)
	case $pid in '' | *[!0-9]*) return 0 ;; esac
	comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
	case $comm in postgres | postmaster) printf '%s\n' "$pid" ;; esac
}

# The port the running postmaster listens on (line 4 of postmaster.pid).
running_port() {
	sed -n 4p "$PGSH_DATA/postmaster.pid" 2>/dev/null || true
}

write_record() {
	local tmp
	tmp=$(mktemp "$DIR/.pg.env.XXXXXX")
	{
		printf 'PGSH_BASE=%q\n' "$PGSH_BASE"
		printf 'PGSH_DATA=%q\n' "$PGSH_DATA"
		printf 'PGSH_LOG=%q\n' "$PGSH_LOG"
		printf 'PGSH_USER=%q\n' "$PGSH_USER"
		printf 'PGSH_PORT=%q\n' "$PGSH_PORT"
	} >"$tmp"
	mv -f "$tmp" "$DIR/pg.env"
}

load_record() {
	[ -f "$DIR/pg.env" ] || return 1
	# shellcheck source=/dev/null
	. "$DIR/pg.env"
	[ -f "$DIR/pg.password" ] || return 1
	return 0
}

require_record() {
	load_record || die "no cluster recorded in $DIR (run: $PROG start $DIR PORT)"
}

# ---- resolve DIR ----------------------------------------------------------------
if [ "$cmd" = start ]; then
	mkdir -p -- "$dir_arg" || die "cannot create $dir_arg"
fi
[ -d "$dir_arg" ] || {
	# stop/destroy of something that never existed is not an error.
	case $cmd in stop | destroy) exit 0 ;; esac
	die "$dir_arg: no such directory"
}
DIR=$(cd -- "$dir_arg" && pwd -P)
# Commands run as another user must not inherit a cwd it cannot enter.
cd /

# Create a fresh cluster for DIR (initdb + our settings) and record it.
create_cluster() {
	local bindir=$1 port=$2 pid pw rc
	if [ "$(id -u)" -eq 0 ]; then
		PGSH_USER=$(pg_os_user)
		PGSH_BASE=$ROOT_BASE/$(printf '%s' "$DIR" | sha256sum | cut -c1-16)
	else
		PGSH_USER=$(id -un)
		PGSH_BASE=$DIR
	fi
	PGSH_DATA=$PGSH_BASE/data
	PGSH_LOG=$PGSH_BASE/postgres.log
	PGSH_PORT=$port
	pid=$(postmaster_pid)
	[ -z "$pid" ] || die "a postmaster (pid $pid) from an earlier cluster still runs in $PGSH_DATA; stop it first"
	if [ "$PGSH_BASE" = "$DIR" ]; then
		rm -rf -- "$PGSH_DATA"
	else
		rm -rf -- "$PGSH_BASE"
		mkdir -p "$ROOT_BASE"
		chmod 0755 "$ROOT_BASE"
		mkdir -m 0700 "$PGSH_BASE"
		chown "$PGSH_USER:" "$PGSH_BASE"
	fi

	pw=$(gen_password)
	(umask 077 && printf '%s\n' "$pw" >"$DIR/pg.password")
	# initdb reads the password from a file the cluster user can read.
	(umask 077 && printf '%s\n' "$pw" >"$PGSH_BASE/.pwfile")
	[ "$(id -u)" -ne 0 ] || chown "$PGSH_USER:" "$PGSH_BASE/.pwfile"
	rc=0
	as_pg "$bindir/initdb" -D "$PGSH_DATA" --username=postgres \
		--pwfile="$PGSH_BASE/.pwfile" --auth-host=scram-sha-256 --auth-local=peer \
		--encoding=UTF8 --locale=C.UTF-8 >"$PGSH_BASE/initdb.log" 2>&1 || rc=$?
	rm -f -- "$PGSH_BASE/.pwfile"
	if [ "$rc" -ne 0 ]; then
		cat "$PGSH_BASE/initdb.log" >&2
		die "initdb failed (exit $rc) in $PGSH_DATA"
	fi
	as_pg tee -a "$PGSH_DATA/postgresql.conf" >/dev/null <<-'EOF'

		# ---- added by deploy/local/pg.sh ----
		listen_addresses = '127.0.0.1'
		unix_socket_directories = ''	# TCP on loopback only
		max_connections = 200
		password_encryption = 'scram-sha-256'
		log_line_prefix = '%m [%p] %q%u@%d '
		log_min_duration_statement = -1
	EOF
	write_record
}

# ---- subcommands --------------------------------------------------------------------
cmd_start() {
	local port=$1 bindir pid pw opts rc
	case $port in '' | *[!0-9]*) die "bad port: '$port'" ;; esac
	if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then die "bad port: $port"; fi
	bindir=$(find_bindir)

	exec 9>>"$DIR/.pg.lock"
	flock 9

	local have=0 rport
	if load_record && [ -f "$PGSH_DATA/PG_VERSION" ]; then
		have=1
		pid=$(postmaster_pid)
		if [ -n "$pid" ]; then
			rport=$(running_port)
			[ "$rport" = "$port" ] ||
				die "the cluster in $DIR already runs on port $rport (pid $pid); stop it first"
			return 0
		fi
	fi

	if port_busy "$port"; then
		printf '%s: port %s on 127.0.0.1 is already in use\n' "$PROG" "$port" >&2
		exit 3
	fi

	if [ "$have" = 0 ]; then
		create_cluster "$bindir" "$port"
	fi

	opts="-p $port"
	if [ "$fast" = 1 ]; then
		opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	fi
	PGSH_PORT=$port
	write_record
	rc=0
	as_pg "$bindir/pg_ctl" start -D "$PGSH_DATA" -l "$PGSH_LOG" -w -t 60 -s -o "$opts" \
		>/dev/null 2>"$PGSH_BASE/pg_ctl.err" || rc=$?
	if [ "$rc" -ne 0 ]; then
		cat "$PGSH_BASE/pg_ctl.err" >&2 || true
		printf '%s: last lines of %s:\n' "$PROG" "$PGSH_LOG" >&2
		tail -n 15 "$PGSH_LOG" >&2 || true
		if tail -n 15 "$PGSH_LOG" 2>/dev/null | grep -q 'Address already in use' &&
			[ -z "$(postmaster_pid)" ]; then
			printf '%s: port %s on 127.0.0.1 is already in use\n' "$PROG" "$port" >&2
			exit 3
		fi
		die "could not start PostgreSQL in $PGSH_DATA on port $port"
	fi
	rm -f -- "$PGSH_BASE/pg_ctl.err"
}

cmd_stop() {
	load_record || return 0
	local pid i
	pid=$(postmaster_pid)
	[ -n "$pid" ] || return 0
	# SIGINT = fast shutdown: roll back open transactions, disconnect, checkpoint.
	if ! kill -INT "$pid" 2>/dev/null; then
		kill -0 "$pid" 2>/dev/null || return 0
		die "cannot signal postmaster $pid (owned by another user?)"
	fi
	for ((i = 0; i < 600; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	printf '%s: postmaster %s did not stop in 60 s; immediate shutdown\n' "$PROG" "$pid" >&2
	kill -QUIT "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	die "postmaster $pid does not stop"
}

cmd_destroy() {
	cmd_stop
	load_record || return 0
	if [ "$PGSH_BASE" = "$DIR" ]; then
		rm -rf -- "$PGSH_DATA" "$PGSH_LOG" "$DIR/initdb.log" "$DIR/pg_ctl.err"
	else
		case $PGSH_BASE in
		"$ROOT_BASE"/?*) rm -rf -- "$PGSH_BASE" ;;
		*) die "refusing to delete unexpected base $PGSH_BASE" ;;
		esac
	fi
	rm -f -- "$DIR/pg.env" "$DIR/pg.password" "$DIR/.pg.lock"
}

cmd_url() {
	require_record
	local pw
	pw=$(head -n 1 "$DIR/pg.password")
	printf 'postgresql://postgres:%s@127.0.0.1:%s/postgres\n' "$pw" "$PGSH_PORT"
}

cmd_status() {
	require_record
	local pid
	pid=$(postmaster_pid)
	if [ -n "$pid" ]; then
		printf 'running (pid %s) on 127.0.0.1:%s\n' "$pid" "$(running_port)"
	else
		printf 'stopped (last port %s)\n' "$PGSH_PORT"
	fi
	printf 'data: %s (owner %s)\nlog:  %s\n' "$PGSH_DATA" "$PGSH_USER" "$PGSH_LOG"
	[ -n "$pid" ]
}

case $cmd in
start)
	[ "${#args[@]}" -eq 3 ] || usage
	cmd_start "${args[2]}"
	;;
stop)
	[ "${#args[@]}" -eq 2 ] || usage
	cmd_stop
	;;
destroy)
	[ "${#args[@]}" -eq 2 ] || usage
	cmd_destroy
	;;
url)
	[ "${#args[@]}" -eq 2 ] || usage
	cmd_url
	;;
status)
	[ "${#args[@]}" -eq 2 ] || usage
	cmd_status
	;;
psql)
	url=$(cmd_url)
	exec psql "$url" "${args[@]:2}"
	;;
*) usage ;;
esac
