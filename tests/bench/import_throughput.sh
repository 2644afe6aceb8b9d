#!/usr/bin/env bash
# tests/bench/import_throughput.sh -- records/s of one import job, claim to
# completed_at (database clock), next to what a user would do by hand on the
# same cluster in the same run: psql \copy into a staging table, then
# INSERT ... ON CONFLICT into a table shaped like importer.records (same
# columns, primary key, partial job_id index and foreign key).
#
# Cases (each RUNS times, ours and the reference alternating, every run on
# emptied tables after a CHECKPOINT): csv upsert at the default batch size and
# at batch_size 100 / 1,000 / 10,000; append; replace; ndjson; backup; the
# chunked upload through the gateway is timed apart.
#
# Environment: BENCH_SCALE (small | full), BENCH_RUNS (3),
# BENCH_IMPORT_ROWS (full: 1,000,000; small: 20,000) for the headline csv
# upsert and the reference, BENCH_VARIANT_ROWS (same by default) for the
# other cases. Needs nothing running: see lib.sh.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_init import_throughput
if [ "$SCALE" = full ]; then def_rows=1000000; else def_rows=20000; fi
ROWS=${BENCH_IMPORT_ROWS:-$def_rows}
VROWS=${BENCH_VARIANT_ROWS:-$ROWS}
USER_ID=5b0c7a52-1f0e-4d2b-9a57-6a1f3c7e0b11
JOB_TIMEOUT=1800

bench_cluster
start_gateway
TOKEN=$(jwt "$USER_ID")
start_worker worker
WPID=$LAST_PID
PM=$(postmaster_pid)
HZ=$(getconf CLK_TCK)

bench_say "generating $ROWS-row csv (and $VROWS-row csv/ndjson/backup)"
gen_csv "$ROWS" "$TMP/main.csv"
if [ "$VROWS" = "$ROWS" ]; then
	ln -s main.csv "$TMP/variant.csv"
else
	gen_csv "$VROWS" "$TMP/variant.csv"
fi
gen_ndjson "$VROWS" "$TMP/variant.ndjson"
gen_backup "$VROWS" "$TMP/variant.json"
MAIN_BYTES=$(stat -c %s "$TMP/main.csv")
MAIN_MB=$(echo "scale=1; $MAIN_BYTES / 1000000" | bc -l)

# The reference: a table of importer.records' shape; staging as a user would.
psql_admin <<-'EOF' >/dev/null
	SET client_min_messages = warning;
	DROP SCHEMA IF EXISTS bench_ref CASCADE;
	CREATE SCHEMA bench_ref;
	CREATE TABLE bench_ref.records (LIKE importer.records INCLUDING ALL);
EOF

# reference_run JOB_ID: prints seconds for \copy + INSERT ... ON CONFLICT.
reference_run() {
	local t0 t1
	cat >"$TMP/ref.sql" <<-EOF
		\set ON_ERROR_STOP 1
		BEGIN;
		CREATE TEMP TABLE staging (id text, name text, email text, city text, amount text,
		                           created text, active text, note text) ON COMMIT DROP;
		\copy staging FROM '$TMP/main.csv' WITH (FORMAT csv, HEADER true)
		INSERT INTO bench_ref.records AS r (user_id, collection, record_key, data, job_id)
		SELECT '$USER_ID', 'bench', s.id,
		       jsonb_build_object('id', s.id, 'name', s.name, 'email', s.email, 'city', s.city,
		                          'amount', s.amount, 'created', s.created, 'active', s.active,
		                          'note', s.note),
		       '$1'
		FROM staging s
		ON CONFLICT (user_id, collection, record_key)
		DO UPDATE SET data = EXCLUDED.data, job_id = EXCLUDED.job_id, updated_at = now();
		COMMIT;
	EOF
	t0=$(date +%s.%N)
	psql -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" -f "$TMP/ref.sql" >/dev/null
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}

# worker_run FILE QUERY ROWS COLLECTION: upload, submit, wait; sets W_UP
# (upload seconds), W_SECS (claim -> completed) and W_ID after checking that
# the records are there.
worker_run() {
	local file=$1 query=$2 rows=$3 coll=$4 t0 t1 up id n pg0 wk0 c0 c1
	t0=$(date +%s.%N)
	up=$(upload_file "$USER_ID" "$TOKEN" "$file")
	t1=$(date +%s.%N)
	pg0=$(cpu_ticks $(pgrep -P "$PM"))
	wk0=$(cpu_ticks "$WPID")
	c0=$(date +%s.%N)
	id=$(submit_upload "$TOKEN" "$up" "$query")
	[ -n "$id" ] && [ "$id" != null ] || bench_die "submit failed ($query)"
	wait_job "$id" "$JOB_TIMEOUT"
	c1=$(date +%s.%N)
	W_PGCPU=$(echo "scale=2; ($(cpu_ticks $(pgrep -P "$PM")) - $pg0) / $HZ / ($c1 - $c0)" | bc -l)
	W_WKCPU=$(echo "scale=2; ($(cpu_ticks "$WPID") - $wk0) / $HZ / ($c1 - $c0)" | bc -l)
	[ "$JOB_STATUS" = completed ] || bench_die "job $id ($query) ended $JOB_STATUS: $(psql_admin -c \
		"SELECT error_message FROM importer.import_jobs WHERE id = '$id'")"
	n=$(psql_admin -c "SELECT count(*) FROM importer.records WHERE collection = '$coll'")
	[ "$n" = "$rows" ] || bench_die "job $id ($query): $n records in '$coll', want $rows"
	W_SECS=$(job_seconds "$id")
	W_UP=$(echo "$t1 - $t0" | bc -l)
	W_ID=$id
}

# top_statements ROLE: the statements that took most execution time, as
# "calls<TAB>total ms<TAB>share %<TAB>rows<TAB>query (first 110 characters)".
top_statements() {
	psql_admin -F $'\t' -c "
		SELECT s.calls, round(s.total_exec_time::numeric, 0),
		       round((100 * s.total_exec_time / sum(s.total_exec_time) OVER ())::numeric, 1),
		       s.rows, left(regexp_replace(s.query, '\s+', ' ', 'g'), 110)
		FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
		WHERE r.rolname = '$1' AND s.query NOT LIKE '%pg_stat_statements%'
		ORDER BY s.total_exec_time DESC LIMIT 8"
}

# A Markdown table of top_statements' output.
statements_table() {
	printf '| calls | total ms | share | rows | statement |\n| ---: | ---: | ---: | ---: | --- |\n'
	awk -F'\t' '{ gsub(/\|/, "\\|", $5); printf "| %s | %s | %s %% | %s | `%s` |\n", $1, $2, $3, $4, $5 }' "$1"
}

rate() { echo "scale=0; $1 / $2" | bc -l; }

reset_all() {
	psql_admin -c 'TRUNCATE bench_ref.records' >/dev/null
	reset_data
}

for ((run = 1; run <= RUNS; run++)); do
	bench_say "run $run of $RUNS"
	reset_all
	[ "$run" != "$RUNS" ] || psql_admin -c 'SELECT pg_stat_statements_reset()' >/dev/null
	worker_run "$TMP/main.csv" "kind=csv&collection=bench" "$ROWS" bench
	[ "$run" != "$RUNS" ] || top_statements bench_worker >"$OUT/raw/import-statements-worker.tsv"
	record "CPU during the worker's import: importer-worker" "$W_WKCPU" cores
	record "CPU during the worker's import: PostgreSQL" "$W_PGCPU" cores
	record "upload ${MAIN_MB} MB csv through the gateway (8 MiB chunks)" \
		"$(echo "scale=1; $MAIN_BYTES / 1000000 / $W_UP" | bc -l)" "MB/s"
	record "worker: csv upsert, $ROWS rows, default batch" "$(rate "$ROWS" "$W_SECS")" records/s
	main_secs=$W_SECS
	[ "$run" != "$RUNS" ] || psql_admin -c 'SELECT pg_stat_statements_reset()' >/dev/null
	ref=$(reference_run "$W_ID")
	[ "$run" != "$RUNS" ] || top_statements postgres >"$OUT/raw/import-statements-reference.tsv"
	n=$(psql_admin -c 'SELECT count(*) FROM bench_ref.records')
	[ "$n" = "$ROWS" ] || bench_die "reference wrote $n records, want $ROWS"
	record "psql \\copy + INSERT … ON CONFLICT, $ROWS rows" "$(rate "$ROWS" "$ref")" records/s
	# The pair of one round, run back to back: less blurred by the machine's
	# drift than the ratio of the two medians (the target), shown beside it.
	record "worker ÷ reference, same round" "$(echo "scale=3; $ref / $main_secs" | bc -l)" "×"

	for bs in 100 1000 10000; do
		reset_all
		worker_run "$TMP/variant.csv" "kind=csv&collection=bench&batch_size=$bs" "$VROWS" bench
		record "worker: csv upsert, $VROWS rows, batch_size $bs" "$(rate "$VROWS" "$W_SECS")" records/s
	done
	reset_all
	worker_run "$TMP/variant.csv" "kind=csv&collection=bench&mode=append" "$VROWS" bench
	record "worker: csv append, $VROWS rows" "$(rate "$VROWS" "$W_SECS")" records/s
	reset_all
	worker_run "$TMP/variant.csv" "kind=csv&collection=bench&mode=replace" "$VROWS" bench
	record "worker: csv replace, $VROWS rows" "$(rate "$VROWS" "$W_SECS")" records/s
	reset_all
	worker_run "$TMP/variant.ndjson" "kind=ndjson&collection=bench" "$VROWS" bench
	record "worker: ndjson upsert, $VROWS rows" "$(rate "$VROWS" "$W_SECS")" records/s
	reset_all
	worker_run "$TMP/variant.json" "kind=backup" "$VROWS" users
	record "worker: backup restore, $VROWS elements" "$(rate "$VROWS" "$W_SECS")" records/s
done
reset_all

{
	printf '## 1. Import throughput\n\n'
	printf 'One job, %s-row 8-column CSV (%s MB), from claim (`started_at`) to `completed_at` by the\n' "$ROWS" "$MAIN_MB"
	printf 'database clock; one worker; every run on emptied tables after a `CHECKPOINT`. The\n'
	printf 'reference runs on the same cluster in the same round: `psql \\copy` into a temporary\n'
	printf 'staging table, then one `INSERT … ON CONFLICT DO UPDATE` into `bench_ref.records`\n'
	printf '(`LIKE importer.records INCLUDING ALL`: same columns, checks and indexes), timed by the\n'
	printf 'client (it includes sending the file; the worker'"'"'s figure excludes the upload,\n'
	printf 'which is listed apart).\n\n'
	python3 "$BENCH_LIB_DIR/summarize.py" "$RAW" --bench import --headline "$OUT/headline.tsv" \
		--target "import, csv upsert ÷ psql \\copy + upsert (ratio)|worker: csv upsert, $ROWS rows, default batch|psql \\copy + INSERT … ON CONFLICT, $ROWS rows|>=|1.0"
	printf '\nWhere the time goes (last run, `pg_stat_statements`, execution time in the server;\n'
	printf 'statements of the worker'"'"'s role during its import):\n\n'
	statements_table "$OUT/raw/import-statements-worker.tsv"
	printf '\nand of the reference:\n\n'
	statements_table "$OUT/raw/import-statements-reference.tsv"
	printf '\n'
} >"$OUT/1-import_throughput.md"
bench_say "done: $OUT/1-import_throughput.md"
