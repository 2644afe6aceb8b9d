#!/usr/bin/env bash
# tests/fuzz/run.sh -- builds the libFuzzer harnesses and runs each for a set time.
#
# tests/run.sh runs it as a smoke (FUZZ_SECONDS=10, FUZZ_OUT=build/fuzz-smoke);
# longer runs by hand. Installs clang and the libFuzzer runtime when they
# are missing (as root, with apt-get), builds every tests/fuzz/fuzz_*.c with
# -fsanitize=fuzzer,address,undefined into $FUZZ_OUT, and runs each harness
# for FUZZ_SECONDS (default 60) on a working copy of its seed corpus
# (tests/fuzz/corpus/<name>; new inputs stay in $FUZZ_OUT/corpus/<name>).
# Prints executions, coverage (cov: edges, ft: features) and corpus size per
# harness. A crash, leak or sanitizer report fails the run; its input is kept
# in $FUZZ_OUT/artifacts/<name>/ (replay: $FUZZ_OUT/fuzz_<name> FILE). Once
# the bug is fixed, commit the input to tests/fuzz/regressions/<name>/: ctest
# replays it (fuzz_replay_<name>) with the seed corpus on every run.
#
# Environment: FUZZ_SECONDS (per harness), FUZZ_ONLY="csv jwt" (a subset),
# FUZZ_JOBS (parallel harnesses, default 1 -- the machine has 2 cores),
# FUZZ_OUT (default build/fuzz).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${FUZZ_OUT:-$ROOT/build/fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
cd "$ROOT"

# ---- tools -------------------------------------------------------------------------
need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
clang_dir=$(clang -print-resource-dir 2>/dev/null || true)
if [ -z "$clang_dir" ] || ! ls "$clang_dir"/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1; then
	need+=("libclang-rt-$(clang --version 2>/dev/null | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n 1 || true)-dev")
fi
for pc in libevent json-c libpq libcrypto; do
	pkg-config --exists "$pc" 2>/dev/null || need+=(pkg-config libevent-dev libjson-c-dev libpq-dev libssl-dev)
done
if [ "${#need[@]}" -gt 0 ]; then
	# "libclang-rt--dev" (no clang yet): let clang pull its own runtime package
	pkgs=$(printf '%s\n' "${need[@]}" | sed 's/^libclang-rt--dev$/libclang-rt-14-dev/' | sort -u)
	[ "$(id -u)" = 0 ] || {
		echo "tests/fuzz/run.sh: missing packages (install as root): $pkgs" >&2
		exit 1
	}
	apt-get install -y --no-install-recommends $pkgs >/dev/null
fi

# ---- build -------------------------------------------------------------------------
mkdir -p "$OUT"
CFLAGS=(-g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -fsanitize=fuzzer,address,undefined
	-fno-sanitize-recover=undefined -DIMPORTER_VERSION=\"fuzz\" -Icommon -Iworker -Iapi)
read -r -a DEPS_CFLAGS <<<"$(pkg-config --cflags libevent json-c libpq libcrypto)"
read -r -a DEPS_LIBS <<<"$(pkg-config --libs libevent json-c libpq libcrypto) -levent_extra"
# The web UI table that CMake generates for the gateway (api/static.c serves it).
mapfile -t web_files < <(find "$ROOT/web" -type f \( -name '*.html' -o -name '*.css' -o -name '*.js' \
	-o -name '*.svg' -o -name '*.png' -o -name '*.ico' -o -name '*.json' -o -name '*.webmanifest' \
	-o -name '*.txt' \) -not -path '*/node_modules/*' | sort)
mkdir -p "$OUT/gen" "$OUT/obj"
web_list=$(IFS=';' && echo "${web_files[*]}")
cmake -DOUT="$OUT/gen/web_assets.c" -DWEB_DIR="$ROOT/web" "-DWEB_FILES=$web_list" \
	-P "$ROOT/cmake/embed_web.cmake"
# The sources a harness needs: worker parsers, or the gateway's core (without
# main.c; routes.c brings the rest of the gateway in, with the web UI table),
# plus common/ (without migrate.c, whose embedded SQL CMake generates and the
# gateway does not use).
sources_for() {
	case $1 in
	csv) echo worker/csv.c ;;
	jsonstream) echo worker/jsonstream.c common/jsonutil.c ;;
	*) ls api/*.c common/*.c | grep -v '^api/main\.c$\|^common/migrate\.c$' && echo "$OUT/gen/web_assets.c" ;;
	esac
}
# object SOURCE: compiles SOURCE once for all harnesses; prints the object's path.
object() {
	local obj
	obj=$OUT/obj/$(basename "${1%.c}").o
	[ -e "$obj" ] || clang "${CFLAGS[@]}" "${DEPS_CFLAGS[@]}" -c "$1" -o "$obj"
	echo "$obj"
}
rm -f "$OUT"/obj/*.o # compiled once per run (no header tracking here)
names=()
for src in tests/fuzz/fuzz_*.c; do
	name=${src#tests/fuzz/fuzz_}
	name=${name%.c}
	if [ -n "${FUZZ_ONLY:-}" ] && ! [[ " $FUZZ_ONLY " == *" $name "* ]]; then continue; fi
	objs=()
	for s in $(sources_for "$name"); do objs+=("$(object "$s")"); done
	clang "${CFLAGS[@]}" "${DEPS_CFLAGS[@]}" "$src" "${objs[@]}" "${DEPS_LIBS[@]}" -o "$OUT/fuzz_$name"
	names+=("$name")
done
echo "built: ${names[*]}"

# ---- run -----------------------------------------------------------------------------
run_one() {
	local name=$1 corpus=$OUT/corpus/$1 art=$OUT/artifacts/$1/ log=$OUT/$1.log rc=0
	mkdir -p "$corpus" "$art"
	[ -d "tests/fuzz/corpus/$name" ] && cp -n "tests/fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null || true
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"$OUT/fuzz_$name" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art" "$corpus" \
		>"$log" 2>&1 || rc=$?
	echo "$rc" >"$OUT/$name.rc"
}
pids=()
for name in "${names[@]}"; do
	run_one "$name" &
	pids+=("$!")
	while [ "$(jobs -rp | wc -l)" -ge "${FUZZ_JOBS:-1}" ]; do wait -n || true; done
done
wait

# ---- report --------------------------------------------------------------------------
failed=0
printf '\n%-12s %12s %8s %8s %8s %8s  %s\n' harness executions exec/s cov ft corpus result
for name in "${names[@]}"; do
	log=$OUT/$name.log
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
	result=ok
	if [ "$(cat "$OUT/$name.rc")" != 0 ] || grep -q 'ERROR: \(AddressSanitizer\|LeakSanitizer\|libFuzzer\)\|runtime error:' "$log"; then
		result="FAILED: see $log and $OUT/artifacts/$name/"
		failed=$((failed + 1))
	fi
	printf '%-12s %12s %8s %8s %8s %8s  %s\n' "$name" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
		"${ft:-?}" "${corp:-?}" "$result"
done
printf '(%s s per harness)\n' "$SECONDS_EACH"
[ "$failed" -eq 0 ]
