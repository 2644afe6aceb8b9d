#!/usr/bin/env bash
# tests/bench/run.sh -- every benchmark in one run, on one throwaway cluster;
# writes BENCHMARKS.md and the headline table of README.md's Performance section.
#
# Not part of tests/run.sh. Builds Release binaries in build/bench-release
# (or uses IMPORTER_BUILD_DIR), starts a PostgreSQL cluster with
# deploy/local/pg.sh on a free loopback port with the settings of lib.sh
# (BENCH_PG_SETTINGS), runs the benchmarks in this order, and stops everything
# it started on every exit path:
#   import_throughput queue_overhead latency gateway worker_memory scaling
# (gateway runs when tests/bench/gateway.sh exists). A failing benchmark is
# reported in BENCHMARKS.md and makes the run exit 1; the others still run.
#
# Needs, beyond what tests/run.sh needs (tests/deps.txt): Debian packages wrk,
# nginx + libnginx-mod-nchan (apt-get install -y wrk libnginx-mod-nchan), and
# npm registry access (queue_overhead.sh npm-installs Graphile Worker and
# pg-boss, latency.sh Graphile Worker, into one temporary directory,
# BENCH_NPM_DIR). Each script names what it misses.
#
# Environment: BENCH_SCALE=small (a smoke test of a few minutes) or full
# (default), BENCH_RUNS (3), BENCH_ONLY="name ..." (a subset),
# BENCH_RESUME=1 (with BENCH_ONLY: rerun those benchmarks and keep the other
# results of the last run in BENCH_OUT; BENCHMARKS.md says so), BENCH_OUT
# (raw results; default build/bench), BENCH_WRITE=0 (do not touch
# BENCHMARKS.md and README.md, e.g. for a smoke test), plus each benchmark's
# own knobs (see the top of each script).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL="import_throughput queue_overhead latency gateway worker_memory scaling"
ONLY=${BENCH_ONLY:-$ALL}
WRITE=${BENCH_WRITE:-1}
START_TS=$(date -u '+%Y-%m-%d %H:%M UTC')
START=$SECONDS
# The knobs this run was given (written into BENCHMARKS.md).
KNOBS=$(env | grep -E '^(BENCH_|IMPORTER_BUILD_DIR=)' | grep -v -E '^BENCH_(OUT|PG_DIR|NPM_DIR)=' | sort | tr '\n' ' ')

bench_init run
rm -f "$RAW"
RESUME=${BENCH_RESUME:-0}
PREV_TS="" PREV_SETTINGS=""
if [ "$RESUME" = 1 ] && [ -f "$ROOT/BENCHMARKS.md" ] && [ -f "$OUT/status.tsv" ]; then
	PREV_TS=$(sed -n 's/.* on \([0-9-]* [0-9:]* UTC\)[;,].*/\1/p' "$ROOT/BENCHMARKS.md" | head -n 1)
	PREV_SETTINGS=$(sed -n 's/^Settings of th[a-z ]*run: `\([^`]*\)`.*/\1/p' "$ROOT/BENCHMARKS.md" | head -n 1)
	# Drop what the benchmarks about to run will write again.
	for b in $ONLY; do
		rm -f "$OUT"/[0-9]-"$b".md
		case $b in
		import_throughput) tags=import ;; queue_overhead) tags=queue ;; latency) tags=latency ;;
		gateway) tags="gateway|SSE fan-out" ;; worker_memory) tags=memory ;; *) tags="" ;;
		esac
		awk -F'\t' -v b="$b" '$1 != b' "$OUT/status.tsv" >"$TMP/status" && cat "$TMP/status" >"$OUT/status.tsv"
		if [ -n "$tags" ] && [ -f "$OUT/headline.tsv" ]; then
			awk -F'\t' -v re="^($tags)\$" '$1 !~ re' "$OUT/headline.tsv" >"$TMP/headline"
			cat "$TMP/headline" >"$OUT/headline.tsv"
		fi
	done
else
	RESUME=0
	rm -f "$OUT"/[0-9]-*.md "$OUT/headline.tsv" "$OUT/status.tsv"
fi
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p "$TMP/pg"
BENCH_STARTED_PG=1
bench_say "starting the throwaway PostgreSQL cluster"
bench_start_cluster "$TMP/pg"
export BENCH_PG_DIR=$TMP/pg BENCH_OUT=$OUT BENCH_SCALE=$SCALE BENCH_RUNS=$RUNS
export BENCH_NPM_DIR=${BENCH_NPM_DIR:-$TMP/npm} # one npm install for every script
# shellcheck source=/dev/null
. "$TMP/pg/urls.env"
PG_VERSION=$(psql -X -At "$SUPER_URL" -c 'SHOW server_version')
PG_SETTINGS=$(psql -X -At -F ' = ' "$SUPER_URL" -c "SELECT name, current_setting(name)
	FROM pg_settings WHERE source NOT IN ('default', 'override', 'client', 'session')
	  AND name NOT IN ('lc_messages', 'lc_monetary', 'lc_numeric', 'lc_time', 'log_timezone',
	                   'TimeZone', 'default_text_search_config', 'DateStyle', 'dynamic_shared_memory_type')
	ORDER BY name")

failed=()
for b in $ALL; do
	case " $ONLY " in *" $b "*) ;; *) continue ;; esac
	script=$BENCH_LIB_DIR/$b.sh
	if [ ! -x "$script" ]; then
		printf '%s\tnot written\t\n' "$b" >>"$OUT/status.tsv"
		continue
	fi
	l0=$(load1)
	t0=$SECONDS
	bench_say "---- $b ----"
	if "$script"; then
		st=ok
	else
		st="FAILED (exit $?)"
		failed+=("$b")
	fi
	printf '%s\t%s\t%s s from %s, load %s → %s\n' "$b" "$st" "$((SECONDS - t0))" \
		"$(date -u -d "@$(($(date +%s) - SECONDS + t0))" +%H:%M)" "$l0" "$(load1)" >>"$OUT/status.tsv"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

if [ "$WRITE" != 1 ]; then
	bench_say "BENCH_WRITE=0: results in $OUT, BENCHMARKS.md and README.md untouched"
	[ "${#failed[@]}" -eq 0 ] || bench_die "failed: ${failed[*]}"
	exit 0
fi

CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
{
	printf '# Benchmarks\n\n'
	if [ "$RESUME" = 1 ]; then
		printf 'Written by `tests/bench/run.sh` (BENCH_SCALE=%s, %s runs per figure) on %s,\n' "$SCALE" "$RUNS" "${PREV_TS:-an earlier run}"
		printf 'resumed on %s for: %s (%s min; the status table shows when each ran).\n' "$START_TS" "$ONLY" "$(((SECONDS - START) / 60))"
		printf 'Do not edit by hand: rerun the script.\n\n'
		printf 'Settings of the run: `%s`; of the resumption: `%s` (everything else at the\n' "${PREV_SETTINGS:-unknown}" "${KNOBS:-defaults}"
		printf 'scripts'"'"' defaults). The machine facts below are the resumption'"'"'s.\n\n'
	else
		printf 'Written by `tests/bench/run.sh` (BENCH_SCALE=%s, %s runs per figure) on %s;\n' "$SCALE" "$RUNS" "$START_TS"
		printf 'the whole run took %s min. Do not edit by hand: rerun the script.\n\n' "$(((SECONDS - START) / 60))"
		printf 'Settings of this run: `%s` (everything else at the scripts'"'"' defaults).\n\n' "${KNOBS:-defaults}"
	fi
	printf '## Machine\n\n'
	printf '| | |\n| --- | --- |\n'
	printf '| CPU | %s, %s cores |\n' "$CPU" "$(nproc)"
	printf '| RAM | %s |\n' "$MEM"
	printf '| kernel | %s |\n' "$(uname -sr)"
	printf '| PostgreSQL | %s, one throwaway cluster (deploy/local/pg.sh, durable: fsync and synchronous_commit on) |\n' "$PG_VERSION"
	printf '| load average before / after (1, 5, 15 min) | %s / %s |\n' "$LOAD_BEFORE" "$LOAD_AFTER"
	printf '| commit | %s |\n\n' "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	printf 'The machine is shared with other builds and tests while this runs: every figure\n'
	printf 'carries the 1-minute load average seen during its runs. Comparisons with the\n'
	printf 'reference systems are measured side by side in the same run and the same rounds,\n'
	printf 'so the ratios are what count; the absolute figures move with the load.\n\n'
	printf 'PostgreSQL settings that differ from the defaults:\n\n```\n%s\n```\n\n' "$PG_SETTINGS"
	printf '## Headline\n\n'
	printf '| benchmark | target | measured | goal | met |\n| --- | --- | ---: | ---: | --- |\n'
	[ ! -f "$OUT/headline.tsv" ] ||
		awk -F'\t' '{ printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5 }' "$OUT/headline.tsv"
	printf '\n| benchmark | status | time, load avg before → after |\n| --- | --- | --- |\n'
	for b in $ALL; do awk -F'\t' -v b="$b" '$1 == b { printf "| %s | %s | %s |\n", $1, $2, $3 }' "$OUT/status.tsv"; done
	printf '\n'
	for f in "$OUT"/[0-9]-*.md; do
		[ -f "$f" ] || continue
		cat "$f"
	done
} >"$ROOT/BENCHMARKS.md"

# README.md: the headline table between the markers of its Performance section.
if grep -q '<!-- bench:begin -->' "$ROOT/README.md" && grep -q '<!-- bench:end -->' "$ROOT/README.md"; then
	{
		printf '<!-- bench:begin -->\n'
		printf 'Measured by `tests/bench/run.sh` on %s (%s, %s cores, PostgreSQL %s, load average\n' \
			"$START_TS" "$CPU" "$(nproc)" "$PG_VERSION"
		printf '%s before, %s after; the machine was shared). Every figure, the method and the\n' \
			"${LOAD_BEFORE%% *}" "${LOAD_AFTER%% *}"
		printf 'spread: [BENCHMARKS.md](BENCHMARKS.md).\n\n'
		printf '| benchmark | target | measured | goal | met |\n| --- | --- | ---: | ---: | --- |\n'
		[ ! -f "$OUT/headline.tsv" ] ||
			awk -F'\t' '{ printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5 }' "$OUT/headline.tsv"
		printf '<!-- bench:end -->\n'
	} >"$TMP/headline.md"
	awk -v f="$TMP/headline.md" '
		/<!-- bench:begin -->/ { while ((getline l < f) > 0) print l; skip = 1; next }
		/<!-- bench:end -->/ { skip = 0; next }
		!skip { print }' "$ROOT/README.md" >"$TMP/README.md"
	cat "$TMP/README.md" >"$ROOT/README.md"
else
	bench_say "README.md has no <!-- bench:begin --> / <!-- bench:end --> markers; not updated"
fi
bench_say "wrote BENCHMARKS.md ($(((SECONDS - START) / 60)) min)"
[ "${#failed[@]}" -eq 0 ] || bench_die "failed: ${failed[*]}"
