# tests/e2e/lib.sh -- shared by the e2e and soak scripts (sourced; not run by
# tests/run.sh, which runs only executable scripts).

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
