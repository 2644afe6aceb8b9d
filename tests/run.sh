#!/usr/bin/env bash
# tests/run.sh -- the project's test command (what .ci/run and the README run).
#
# Installs missing Debian packages from tests/deps.txt (as root; otherwise names
# them and exits 1), validates docker-compose.yml statically, builds build/test
# (Debug, -Werror, ASan+UBSan unless IMPORTER_SANITIZE=0), starts a throwaway
# PostgreSQL 15 cluster (deploy/local/pg.sh, fsync off), runs ctest against it
# with IMPORTER_TEST_DATABASE_URL set, then every executable tests/e2e/*.sh,
# then a fuzz smoke: tests/fuzz/run.sh with FUZZ_SECONDS (default 10) per
# harness from the committed seed corpora (a crash or sanitizer report fails).
# A failing, skipped or not-run test fails the run. Nothing is skipped silently.
#
# Usage: tests/run.sh [--sanitize | --no-sanitize]
#   --sanitize            ASan + UBSan with leak detection (the default; the flag
#                         overrides IMPORTER_SANITIZE=0)
#   --no-sanitize         a plain Debug build (same as IMPORTER_SANITIZE=0)
#
# Environment:
#   IMPORTER_SANITIZE=0   build without ASan/UBSan (default 1)
#   IMPORTER_TEST_PORT    first port to try for the cluster (default 55400)
#   CTEST_ARGS            extra arguments for ctest (e.g. "-R check_config")
#   FUZZ_SECONDS          seconds per fuzz harness in the smoke (default 10; 0 skips
#                         the smoke, which then counts as a failure like any skip)
set -euo pipefail

for arg in "$@"; do
	case $arg in
	--sanitize) IMPORTER_SANITIZE=1 ;;
	--no-sanitize) IMPORTER_SANITIZE=0 ;;
	-h | --help)
		sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
		exit 0
		;;
	*)
		printf 'tests/run.sh: unknown argument %s (try --help)\n' "$arg" >&2
		exit 2
		;;
	esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BUILD=$ROOT/build/test
START=$SECONDS

step() { printf '\n==> %s\n' "$*"; }
fail() {
	printf 'tests/run.sh: %s\n' "$*" >&2
	exit 1
}

# ---- 1. dependencies -------------------------------------------------------
step "dependencies (tests/deps.txt)"
# shellcheck source=deploy/local/deps.sh
. "$ROOT/deploy/local/deps.sh"
importer_install_deps "$ROOT/tests/deps.txt" || fail "missing Debian packages (see above)"
for tool in cmake ctest docker-compose psql; do
	command -v "$tool" >/dev/null 2>&1 || fail "$tool not found although tests/deps.txt is installed"
done

# ---- 2. static checks --------------------------------------------------------
step "docker-compose.yml (docker-compose config -q, offline)"
[ -f docker-compose.yml ] || fail "docker-compose.yml is missing"
docker-compose -f docker-compose.yml config -q || fail "docker-compose.yml is invalid"
compose_status=ok

# ---- 3. build ----------------------------------------------------------------------
sanitize=ON
case ${IMPORTER_SANITIZE:-1} in
0 | OFF | off | no | false) sanitize=OFF ;;
esac
step "configure + build $BUILD (Debug, WERROR, sanitizers $sanitize)"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DIMPORTER_WERROR=ON \
	-DIMPORTER_SANITIZE="$sanitize" || fail "cmake configure failed"
cmake --build "$BUILD" -j"$(nproc)" || fail "build failed"
# Optimised builds see warnings a Debug build does not (inlining): the
# binaries users run must build warning-free too.
step "configure + build $ROOT/build/release-check (Release, WERROR; built, not tested)"
cmake -S . -B "$ROOT/build/release-check" -DCMAKE_BUILD_TYPE=Release -DIMPORTER_WERROR=ON \
	>/dev/null || fail "cmake configure (Release) failed"
cmake --build "$ROOT/build/release-check" -j"$(nproc)" || fail "Release build failed"

# ---- 4. throwaway PostgreSQL ----------------------------------------------------
step "throwaway PostgreSQL cluster"
PGTMP=$(mktemp -d "${TMPDIR:-/tmp}/importer-test.XXXXXX")
CHILD= # process group of the test command that is running, if any
cleanup() {
	local rc=$? i
	trap - EXIT INT TERM
	[ -z "${tail_pid:-}" ] || kill "$tail_pid" 2>/dev/null || true
	if [ -n "$CHILD" ] && kill -TERM -- "-$CHILD" 2>/dev/null; then
		for ((i = 0; i < 50; i++)); do
			# zombies (exited, not yet reaped) do not count
			pgrep -s "$CHILD" -r D,R,S,T,t,I >/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$CHILD" 2>/dev/null || true
	fi
	if [ -n "${PGTMP:-}" ]; then
		"$ROOT/deploy/local/pg.sh" destroy "$PGTMP" || true
		rm -rf -- "$PGTMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run "$@" in its own process group (so that an interrupted run can stop every
# test process it started) and return its exit status; a signal still reaches
# us at once because we are in `wait`, not blocked on a foreground job.
run_group() {
	local rc=0
	setsid -w "$@" &
	CHILD=$!
	wait "$CHILD" || rc=$?
	CHILD=
	return "$rc"
}

port=${IMPORTER_TEST_PORT:-55400}
last=$((port + 100))
while :; do
	[ "$port" -lt "$last" ] || fail "no free port for PostgreSQL in ${IMPORTER_TEST_PORT:-55400}..$last"
	rc=0
	PG_FAST=1 "$ROOT/deploy/local/pg.sh" start "$PGTMP" "$port" 2>"$PGTMP/start.err" || rc=$?
	if [ "$rc" -eq 3 ]; then # port in use: try the next one
		port=$((port + 1))
		continue
	fi
	if [ "$rc" -ne 0 ]; then
		cat "$PGTMP/start.err" >&2
		fail "could not start PostgreSQL (deploy/local/pg.sh start, exit $rc)"
	fi
	break
done
IMPORTER_TEST_DATABASE_URL=$("$ROOT/deploy/local/pg.sh" url "$PGTMP")
export IMPORTER_TEST_DATABASE_URL
echo "PostgreSQL on 127.0.0.1:$port ($("$ROOT/deploy/local/pg.sh" status "$PGTMP" | sed -n 's/^data: //p'))"

# ---- 5. ctest ------------------------------------------------------------------
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export IMPORTER_BUILD_DIR=$BUILD
step "ctest"
CTEST_LOG=$PGTMP/ctest.log
read -r -a ctest_extra <<<"${CTEST_ARGS:-}"
: >"$CTEST_LOG"
tail -n +1 -f "$CTEST_LOG" &
tail_pid=$!
ctest_rc=0
run_group ctest --test-dir "$BUILD" --output-on-failure --no-tests=error -j2 --timeout 600 \
	"${ctest_extra[@]}" >"$CTEST_LOG" 2>&1 || ctest_rc=$?
sleep 0.3 # let tail print the last lines
kill "$tail_pid" 2>/dev/null || true
wait "$tail_pid" 2>/dev/null || true

ctest_total=0 ctest_failed=0
if line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$CTEST_LOG" | tail -n 1); then
	ctest_failed=$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$line")
	ctest_total=$(sed -E 's/.*failed out of ([0-9]+).*/\1/' <<<"$line")
fi
# ctest prints "***Skipped", "***Not Run (Disabled)" / "Not Run" and a list headed
# "The following tests did not run:" for tests that did not really run.
skipped=$(grep -E '\*\*\*Skipped|Not Run|The following tests did not run' "$CTEST_LOG" || true)
problems=()
[ "$ctest_rc" -eq 0 ] || problems+=("ctest exited $ctest_rc")
[ "$ctest_total" -gt 0 ] || problems+=("ctest ran no test")
# ctest counts a skipped test as passed and a disabled one not at all; here both fail.
n_skipped=$(grep -c '\*\*\*Skipped' "$CTEST_LOG" || true)
n_disabled=$(grep -c 'Not Run (Disabled)' "$CTEST_LOG" || true)
[ -z "$skipped" ] || problems+=("skipped or not-run tests (they count as failures):"$'\n'"$skipped")

# ---- 6. end-to-end scripts ----------------------------------------------------------
e2e_total=0 e2e_failed=0
e2e_failures=()
if [ -d tests/e2e ]; then
	for script in tests/e2e/*.sh; do
		[ -e "$script" ] || continue
		if [ ! -x "$script" ]; then
			echo "note: $script is not executable; not run (helpers only)"
			continue
		fi
		step "e2e: $script"
		e2e_total=$((e2e_total + 1))
		if ! run_group "$script"; then
			e2e_failed=$((e2e_failed + 1))
			e2e_failures+=("$script")
		fi
	done
fi
[ "$e2e_failed" -eq 0 ] || problems+=("e2e scripts failed: ${e2e_failures[*]}")

# ---- 7. fuzz smoke ---------------------------------------------------------------------
# Every run fuzzes a little: new inputs come from the committed seeds (ctest
# already replayed them, fuzz_replay_*). A fresh working corpus each time, so
# the run does not depend on what earlier runs left (nor touches build/fuzz,
# the corpora of longer runs by hand).
fuzz_seconds=${FUZZ_SECONDS:-10}
fuzz_out=$ROOT/build/fuzz-smoke
fuzz_status="not run (FUZZ_SECONDS=0)"
if [ "$fuzz_seconds" != 0 ]; then
	step "fuzz smoke: tests/fuzz/run.sh, $fuzz_seconds s per harness"
	rm -rf "$fuzz_out/corpus" "$fuzz_out/artifacts"
	if run_group env FUZZ_SECONDS="$fuzz_seconds" FUZZ_OUT="$fuzz_out" "$ROOT/tests/fuzz/run.sh"; then
		fuzz_status=ok
	else
		fuzz_status=FAILED
		problems+=("fuzz smoke failed (tests/fuzz/run.sh; crash inputs in $fuzz_out/artifacts/)")
	fi
else
	problems+=("fuzz smoke skipped (FUZZ_SECONDS=0)")
fi

# ---- 8. summary ----------------------------------------------------------------------
passed=$((ctest_total - ctest_failed - n_skipped + e2e_total - e2e_failed))
failed=$((ctest_failed + n_skipped + n_disabled + e2e_failed))
step "summary"
printf '  docker-compose.yml     %s\n' "$compose_status"
printf '  build                  %s (sanitizers %s)\n' "$BUILD" "$sanitize"
printf '  ctest                  %s of %s passed, %s skipped, %s disabled (exit %s)\n' \
	"$((ctest_total - ctest_failed - n_skipped))" "$ctest_total" "$n_skipped" "$n_disabled" "$ctest_rc"
printf '  e2e scripts            %s of %s passed\n' "$((e2e_total - e2e_failed))" "$e2e_total"
printf '  fuzz smoke             %s\n' "$fuzz_status"
printf '  time                   %ss\n' "$((SECONDS - START))"
if [ "${#problems[@]}" -gt 0 ]; then
	printf '  FAILED:\n'
	printf '    - %s\n' "${problems[@]}"
	[ "$failed" -gt 0 ] || failed=1
	printf 'summary: %s passed, %s failed\n' "$passed" "$failed"
	exit 1
fi
printf 'summary: %s passed, %s failed\n' "$passed" "$failed"
