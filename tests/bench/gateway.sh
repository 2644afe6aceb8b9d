#!/usr/bin/env bash
# tests/bench/gateway.sh -- GET /api/jobs/{id} through one gateway process
# (wrk: requests/s and latency) next to pgbench running the very SQL the
# gateway runs for it, pipelined the same way (identity, then the job query,
# one implicit transaction), over as many connections as the gateway's pool
# (IMPORTER_DB_POOL, default 4): the database's ceiling for that route.
#
# SSE fan-out: sse_fanout.c (a libevent client of ours, built here with cc)
# holds N streams of one job (GET /api/jobs/{id}/events) spread over
# processes of at most 2,500 streams and source addresses 127.0.0.2-.9, each
# process opening at most 50 at a time; once all are open (gateway: their
# first event arrived; nchan: answered 200), one UPDATE of the job's current_step is committed, and every
# stream notes when the new state reached it. Measured: the gateway's RSS
# with N streams open, its CPU per delivered event, and the delay from the
# UPDATE (clock_timestamp() of the row change, just before its commit) to
# each stream, p50/p99. Side by side: nginx + Debian's libnginx-mod-nchan
# (one worker process, an EventSource subscriber location, a publisher
# location; delay from just before the publishing curl starts).
#
# Environment: BENCH_SCALE (small: 3 s per wrk/pgbench measurement, 200 and
# 1,000 streams; full: 10 s, 1,000 / 10,000 / 19,000 streams), BENCH_RUNS (3),
# BENCH_WRK_CONNECTIONS (64), BENCH_FANOUT_STREAMS, BENCH_FANOUT_RUNS
# (default BENCH_RUNS).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_init gateway
for tool in wrk pgbench; do command -v "$tool" >/dev/null 2>&1 || bench_die "$tool not found (apt-get install $tool)"; done
if [ "$SCALE" = full ]; then
	DUR=10
	STREAMS=${BENCH_FANOUT_STREAMS:-1000 10000 19000}
else
	DUR=3
	STREAMS=${BENCH_FANOUT_STREAMS:-200 1000}
fi
FANOUT_RUNS=${BENCH_FANOUT_RUNS:-$RUNS}
PER_PROC=2500
NGINX=/usr/sbin/nginx
NCHAN_MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
for f in "$NGINX" "$NCHAN_MODULE"; do
	[ -e "$f" ] || bench_die "$f not found (apt-get install libnginx-mod-nchan)"
done
command -v cc >/dev/null 2>&1 || bench_die "cc not found"
cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror \
	-o "$TMP/sse_fanout" "$BENCH_LIB_DIR/sse_fanout.c" -levent 2>"$TMP/cc.log" ||
	bench_die "sse_fanout.c does not build: $(cat "$TMP/cc.log")"
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

# ---- SSE fan-out --------------------------------------------------------------

# nginx + nchan, one worker, in the scratch directory.
NPORT=$(free_port)
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
load_module $NCHAN_MODULE;
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 20000; }
http {
	access_log off;
	client_body_temp_path $TMP/nginx/body;
	proxy_temp_path $TMP/nginx/proxy;
	fastcgi_temp_path $TMP/nginx/fastcgi;
	uwsgi_temp_path $TMP/nginx/uwsgi;
	scgi_temp_path $TMP/nginx/scgi;
	server {
		listen 127.0.0.1:$NPORT;
		location = /pub { nchan_publisher; nchan_channel_id bench; }
		location = /sub { nchan_subscriber eventsource; nchan_channel_id bench; }
	}
}
EOF
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx.log" &
NGINX_PID=$!
BENCH_PIDS+=("$NGINX_PID")
for ((i = 0; i < 100; i++)); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST -d hello "http://127.0.0.1:$NPORT/pub")" = 000 ] || break
	kill -0 "$NGINX_PID" 2>/dev/null || bench_die "nginx exited: $(cat "$TMP/nginx.log" "$TMP/nginx/error.log" 2>/dev/null)"
	sleep 0.1
done
NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -n 1)
[ -n "$NGINX_WORKER" ] || bench_die "no nginx worker process"

rss_mib() { awk '/^VmRSS:/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"; }

# fanout SYSTEM N: one measurement; records RSS, CPU per event, delay p50/p99.
fanout() {
	local sys=$1 n=$2 procs k conns left marker port path token t0 cpu0 cpu1 pid ready closed deadline p hz
	local opened
	local pids=()
	hz=$(getconf CLK_TCK)
	marker=bench-mark-$sys-$n-$RANDOM$RANDOM
	if [ "$sys" = gateway ]; then
		pid=$GW_PID port=${HTTP_BASE##*:} path=/api/jobs/$FJOB/events token=$TOKEN ready="event: job"
	else
		pid=$NGINX_WORKER port=$NPORT path=/sub token=- ready="HTTP/1.1 200"
	fi
	procs=$(((n + PER_PROC - 1) / PER_PROC))
	left=$n
	rm -f "$TMP"/fan-*.status "$TMP"/fan-*.out
	for ((k = 0; k < procs; k++)); do
		conns=$((left / (procs - k)))
		left=$((left - conns))
		"$TMP/sse_fanout" "$port" "$path" "$token" "$conns" 2 8 "$marker" \
			"$TMP/fan-$k.status" "$TMP/fan-$k.out" 300 "$ready" 2>"$TMP/fan-$k.log" &
		pids+=("$!")
		BENCH_PIDS+=("$!")
	done
	deadline=$((SECONDS + 240))
	while :; do
		# (A client writes its status file once it has opened its streams.)
		opened=$(cat "$TMP"/fan-*.status 2>/dev/null | awk '{ r += $2 } END { print r + 0 }' || true)
		closed=$(cat "$TMP"/fan-*.status 2>/dev/null | awk '{ c += $4 } END { print c + 0 }' || true)
		if [ "$closed" != 0 ]; then
			# The gateway must hold them all; the reference's failure is a result.
			[ "$sys" = nchan ] || bench_die "$sys: $closed of $n streams closed before the event: $(tail -q -n 2 "$TMP"/fan-*.log)"
			bench_say "nchan: $closed of $n streams failed: $(tail -q -n 1 "$TMP"/fan-*.log | sort | uniq -c | head -n 3)"
			record "nchan: streams that failed to open, of $n" "$closed" streams
			for p in "${pids[@]}"; do stop_pid "$p"; done
			return 0
		fi
		[ "$opened" -lt "$n" ] || break
		[ "$SECONDS" -lt "$deadline" ] || bench_die "$sys: only $opened of $n streams open after 240 s"
		sleep 0.2
	done
	record "$sys: RSS with $n streams open" "$(rss_mib "$pid")" MiB
	cpu0=$(cpu_ticks "$pid")
	if [ "$sys" = gateway ]; then
		t0=$(psql_admin -c "UPDATE importer.import_jobs SET current_step = '$marker' WHERE id = '$FJOB'
		                    RETURNING (extract(epoch FROM clock_timestamp()) * 1e9)::bigint")
	else
		t0=$(date +%s%N)
		curl -sf -o /dev/null --max-time 10 -X POST --data "$marker" "http://127.0.0.1:$NPORT/pub" ||
			bench_die "nchan publish failed"
	fi
	for p in "${pids[@]}"; do
		wait "$p" || bench_die "$sys: not every stream got the event: $(cat "$TMP"/fan-*.status)"
	done
	cpu1=$(cpu_ticks "$pid")
	record "$sys: CPU per delivered event, $n streams" \
		"$(echo "scale=2; ($cpu1 - $cpu0) * 1000000 / $hz / $n" | bc -l)" µs
	cat "$TMP"/fan-*.out | awk -v t0="$t0" '{ printf "%.3f\n", ($1 - t0) / 1e6 }' >"$TMP/delays.txt"
	[ "$(wc -l <"$TMP/delays.txt")" = "$n" ] || bench_die "$sys: $(wc -l <"$TMP/delays.txt") delays for $n streams"
	record "$sys: delivery delay p50, $n streams" "$(percentile "$TMP/delays.txt" 50)" ms
	record "$sys: delivery delay p99, $n streams" "$(percentile "$TMP/delays.txt" 99)" ms
}

# No worker runs here: this job stays pending, its streams stay open.
FJOB=$(curl -sf --max-time 10 -X POST -H "Authorization: Bearer $TOKEN" \
	"$HTTP_BASE/api/jobs?kind=noop" | jq -r .id)
[ -n "$FJOB" ] && [ "$FJOB" != null ] || bench_die "could not submit the fan-out job"
for ((run = 1; run <= FANOUT_RUNS; run++)); do
	for n in $STREAMS; do
		bench_say "fan-out run $run of $FANOUT_RUNS: $n streams"
		fanout gateway "$n"
		fanout nchan "$n"
	done
done

big=10000
case " $STREAMS " in *" 10000 "*) ;; *) big=${STREAMS##* } ;; esac
{
	printf '## 5. Gateway\n\n'
	printf '`wrk -t2 -c%s -d%ss` on `GET /api/jobs/{id}` (JWT check, identity, one job query)\n' "$CONNS" "$DUR"
	printf 'against one gateway process with its default pool of %s connections, and `pgbench`\n' "$POOL"
	printf 'running the same two statements pipelined in one implicit transaction over %s\n' "$POOL"
	printf 'connections (`-M extended`, the ceiling of the route). wrk, pgbench, the gateway\n'
	printf 'and PostgreSQL share the same 2 cores.\n\n'
	grep -v -e '^gateway: ' -e '^nchan: ' "$RAW" >"$TMP/http.tsv" || true
	grep -e '^gateway: ' -e '^nchan: ' "$RAW" >"$TMP/fanout.tsv" || true
	python3 "$BENCH_LIB_DIR/summarize.py" "$TMP/http.tsv" --bench gateway --headline "$OUT/headline.tsv" \
		--target "GET /api/jobs/{id} ÷ pgbench ceiling|gateway GET /api/jobs/{id} (wrk, $CONNS connections)|pgbench, the same SQL, $POOL connections|>=|"
	printf '\nSSE fan-out: N streams of one job held by `sse_fanout` processes (at most %s\n' "$PER_PROC"
	printf 'streams each, source addresses 127.0.0.2–.9); once all are open one event is\n'
	printf 'published: for the gateway an `UPDATE` of the job'"'"'s `current_step` (delay measured\n'
	printf 'from `clock_timestamp()` at the row change, just before the commit); for nginx +\n'
	printf 'nchan (one worker, `nchan_subscriber eventsource`) a `POST` to its publisher location\n'
	printf '(delay from just before curl starts). RSS is the serving process'"'"'s `VmRSS` with the\n'
	printf 'streams open (nginx: its one worker); CPU is that process'"'"'s user + system time from\n'
	printf 'the publish until every stream had the event, divided by N (clock ticks of 10 ms,\n'
	printf 'so coarse at small N). %s run(s) per size.\n\n' "$FANOUT_RUNS"
	python3 "$BENCH_LIB_DIR/summarize.py" "$TMP/fanout.tsv" --bench "SSE fan-out" --headline "$OUT/headline.tsv" \
		--target "gateway RSS, $big streams (MiB)|gateway: RSS with $big streams open||<=|100" \
		--target "gateway delay p99, $big streams (ms)|gateway: delivery delay p99, $big streams||<=|120" \
		--target "gateway RSS ÷ nchan RSS, $big streams|gateway: RSS with $big streams open|nchan: RSS with $big streams open|<=|" \
		--target "gateway delay p99 ÷ nchan, $big streams|gateway: delivery delay p99, $big streams|nchan: delivery delay p99, $big streams|<=|"
	printf '\n'
} >"$OUT/5-gateway.md"
bench_say "done: $OUT/5-gateway.md"
