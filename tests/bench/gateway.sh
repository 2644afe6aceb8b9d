#!/usr/bin/env bash
# tests/bench/gateway.sh -- GET /api/jobs/{id} through one gateway process
# (wrk: requests/s and latency) next to pgbench running the very SQL the
# gateway runs for it, pipelined the same way (identity, then the job query,
# one implicit transaction), over as many connections as the gateway's pool
# (IMPORTER_DB_POOL, default 4): the database's ceiling for that route.
#
# Not measured here yet: SSE fan-out to 1,000 / 10,000 / 19,000 streams next
# to nginx + nchan (see BENCHMARKS.md).
#
# Environment: BENCH_SCALE (small: 3 s per measurement; full: 10 s),
# BENCH_RUNS (3), BENCH_WRK_CONNECTIONS (64).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_init gateway
for tool in wrk pgbench; do command -v "$tool" >/dev/null 2>&1 || bench_die "$tool not found (apt-get install $tool)"; done
if [ "$SCALE" = full ]; then DUR=10; else DUR=3; fi
CONNS=${BENCH_WRK_CONNECTIONS:-64}
POOL=4
USER_ID=6d2e4f1a-8b3c-4d5e-9f60-7a8b9c0d1e2f

bench_cluster
start_gateway IMPORTER_DB_POOL=$POOL
TOKEN=$(jwt "$USER_ID")
JOB=$(curl -sf --max-time 10 -X POST -H "Authorization: Bearer $TOKEN" \
	"$HTTP_BASE/api/jobs?kind=noop" | jq -r .id)
[ -n "$JOB" ] && [ "$JOB" != null ] || bench_die "could not submit a job"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$HTTP_BASE/api/jobs/$JOB")
[ "$code" = 200 ] || bench_die "GET /api/jobs/$JOB answered $code"

# The gateway's statements for this route (api/pgpool.c identity_sql and
# api/api_sql.c SQL_JOB_GET), with the values inlined.
JOB_JSON=$(sed -n '/^#define JOB_JSON/,/^$/p' "$ROOT/api/api_sql.c" | sed -n 's/^[^"]*"\(.*\)"[^"]*$/\1/p' | tr -d '\n')
[ -n "$JOB_JSON" ] || bench_die "could not read JOB_JSON from api/api_sql.c"
cat >"$TMP/get_job.sql" <<EOF
\startpipeline
SELECT set_config('role','importer_api',true), set_config('importer.user_id','$USER_ID',true), set_config('TimeZone','UTC',true);
SELECT $JOB_JSON, j.seq, j.status FROM importer.import_jobs j WHERE j.id = '$JOB'::uuid;
\endpipeline
EOF
psql -X -q -v ON_ERROR_STOP=1 "$GW_URL" -c "BEGIN" \
	-c "SELECT set_config('role','importer_api',true), set_config('importer.user_id','$USER_ID',true)" \
	-c "SELECT $JOB_JSON FROM importer.import_jobs j WHERE j.id = '$JOB'::uuid" -c COMMIT >/dev/null ||
	bench_die "the gateway's job query does not run as written here"

for ((run = 1; run <= RUNS; run++)); do
	bench_say "run $run of $RUNS"
	wrk -t2 -c"$CONNS" -d"${DUR}s" --latency -H "Authorization: Bearer $TOKEN" \
		"$HTTP_BASE/api/jobs/$JOB" >"$TMP/wrk.txt" 2>&1 || bench_die "wrk failed: $(cat "$TMP/wrk.txt")"
	non2xx=$(awk '/Non-2xx/ { print $NF }' "$TMP/wrk.txt")
	[ -z "$non2xx" ] || bench_die "wrk saw $non2xx non-2xx answers"
	record "gateway GET /api/jobs/{id} (wrk, $CONNS connections)" \
		"$(awk '/^Requests\/sec/ { print $2 }' "$TMP/wrk.txt")" req/s
	for p in 50 99; do
		v=$(awk -v p="$p%" '$1 == p { print $2 }' "$TMP/wrk.txt")
		case $v in
		*us) v=$(echo "scale=3; ${v%us} / 1000" | bc -l) ;;
		*ms) v=${v%ms} ;;
		*s) v=$(echo "scale=3; ${v%s} * 1000" | bc -l) ;;
		esac
		record "gateway GET /api/jobs/{id} latency p$p" "$v" ms
	done
	pgbench -n -M extended -c "$POOL" -j 2 -T "$DUR" -f "$TMP/get_job.sql" "$GW_URL" >"$TMP/pgbench.txt" 2>&1 ||
		bench_die "pgbench failed: $(tail -n 5 "$TMP/pgbench.txt")"
	record "pgbench, the same SQL, $POOL connections" \
		"$(awk '/^tps = / { print $3 }' "$TMP/pgbench.txt")" "req/s"
	record "pgbench latency average" "$(awk '/^latency average/ { print $4 }' "$TMP/pgbench.txt")" ms
done

{
	printf '## 5. Gateway\n\n'
	printf '`wrk -t2 -c%s -d%ss` on `GET /api/jobs/{id}` (JWT check, identity, one job query)\n' "$CONNS" "$DUR"
	printf 'against one gateway process with its default pool of %s connections, and `pgbench`\n' "$POOL"
	printf 'running the same two statements pipelined in one implicit transaction over %s\n' "$POOL"
	printf 'connections (`-M extended`, the ceiling of the route). wrk, pgbench, the gateway\n'
	printf 'and PostgreSQL share the same 2 cores.\n\n'
	python3 "$BENCH_LIB_DIR/summarize.py" "$RAW" --bench gateway --headline "$OUT/headline.tsv" \
		--target "GET /api/jobs/{id} ÷ pgbench ceiling|gateway GET /api/jobs/{id} (wrk, $CONNS connections)|pgbench, the same SQL, $POOL connections|>=|"
	printf '\nNot measured yet: SSE fan-out (1,000 / 10,000 / 19,000 streams, RSS, CPU per\n'
	printf 'delivered event, delivery delay) next to nginx + nchan; see the issue.\n\n'
} >"$OUT/5-gateway.md"
bench_say "done: $OUT/5-gateway.md"
