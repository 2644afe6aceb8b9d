#!/usr/bin/env bash
# tests/e2e/deploy_static.sh -- checks deploy/ without Docker or Kubernetes.
#
# 1. tests/e2e/deploy_static.py: Dockerfile structure (stages, packages known to
#    apt, runtime libraries = what the binaries link, no compilers at runtime,
#    non-root, HEALTHCHECK, ports and commands as in docker-compose.yml),
#    .dockerignore, every Kubernetes document (names, labels/selectors, ports,
#    probes, env names against the configuration table, Secret/ConfigMap keys)
#    and the systemd units (systemd-analyze verify plus the required settings).
# 2. The parts that can run here, run: the image's HEALTHCHECK command against a
#    real gateway and a real worker's metrics endpoint (with /proc/1/cmdline
#    replaced by a file naming the process), and the KEDA scaler queries
#    against a freshly migrated database (they must return one integer).
#
# Needs IMPORTER_BUILD_DIR and IMPORTER_TEST_DATABASE_URL (tests/run.sh exports both).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${IMPORTER_BUILD_DIR:?IMPORTER_BUILD_DIR is not set (run through tests/run.sh)}
ADMIN_URL=${IMPORTER_TEST_DATABASE_URL:?IMPORTER_TEST_DATABASE_URL is not set (run through tests/run.sh)}
WORKER=$BUILD/worker/importer-worker
GATEWAY=$BUILD/api/importer-gateway
TMP=$(mktemp -d "${TMPDIR:-/tmp}/deploy-static.XXXXXX")
DB=e2e_deploy_$$
PIDS=()
failures=0

fail() {
	echo "deploy_static.sh: FAIL: $*" >&2
	failures=$((failures + 1))
}
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	psql -q -X "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
	rm -rf -- "$TMP"
}
trap cleanup EXIT

# ---- 1. static -------------------------------------------------------------------
HEALTHCHECK_OUT=$TMP/healthcheck KEDA_QUERIES_OUT=$TMP/keda.sql \
	python3 "$ROOT/tests/e2e/deploy_static.py" "$ROOT" "$BUILD" || fail "static checks (above)"

# ---- 2. a database for the dynamic parts ----------------------------------------
psql -q -X -v ON_ERROR_STOP=1 "$ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null
URL=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$ADMIN_URL" "$DB")
DATABASE_URL=$URL IMPORTER_LOG_LEVEL=warn "$WORKER" migrate 2>"$TMP/migrate.log" ||
	fail "importer-worker migrate: $(cat "$TMP/migrate.log")"

# KEDA's postgresql scaler needs one integer from each query: empty queue, then
# a queue of 3 runnable jobs (one of them 2 minutes old) and one scheduled later.
run_keda() {
	local q out
	while IFS= read -r q; do
		out=$(psql -X -At -v ON_ERROR_STOP=1 "$URL" -c "$q") || {
			fail "KEDA query failed: $q"
			continue
		}
		[[ $out =~ ^[0-9]+$ ]] || fail "KEDA query returned '$out', not one integer: $q"
		echo "$out"
	done <"$TMP/keda.sql"
}
[ "$(wc -l <"$TMP/keda.sql")" -ge 1 ] || fail "no KEDA queries found"
[ "$(run_keda | tr '\n' ' ')" = "0 0 " ] || fail "KEDA queries on an empty queue: $(run_keda | tr '\n' ' ')"
psql -q -X -v ON_ERROR_STOP=1 "$URL" >/dev/null <<'SQL'
SELECT importer.submit_job('noop', ''::bytea, jsonb_build_object('user_id', gen_random_uuid()))
FROM generate_series(1, 4);
UPDATE importer.import_jobs SET run_after = now() - interval '2 minutes'
WHERE id = (SELECT id FROM importer.import_jobs ORDER BY id LIMIT 1);
UPDATE importer.import_jobs SET run_after = now() + interval '1 hour'
WHERE id = (SELECT id FROM importer.import_jobs ORDER BY id DESC LIMIT 1);
SQL
read -r depth age < <(run_keda | tr '\n' ' ') || true
[ "${depth:-}" = 3 ] || fail "KEDA depth query: want 3 runnable pending jobs, got '${depth:-}'"
[ "${age:-0}" -ge 119 ] && [ "${age:-0}" -le 130 ] || fail "KEDA age query: want ~120 s, got '${age:-}'"

# ---- 3. the image's HEALTHCHECK command, for real --------------------------------
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# healthcheck <cmdline of PID 1> [VAR=value...]: runs the HEALTHCHECK command as
# Docker would (/bin/sh -c), with our file standing in for /proc/1/cmdline.
healthcheck() {
	local cmdline=$1 cmd
	shift
	printf '%s\0' $cmdline >"$TMP/cmdline"
	cmd=$(sed "s#/proc/1/cmdline#$TMP/cmdline#" "$TMP/healthcheck")
	env -u IMPORTER_HTTP_ADDR -u IMPORTER_METRICS_ADDR "$@" timeout 5 /bin/sh -c "$cmd"
}
wait_http() { # wait_http port path: until it answers 200 (10 s)
	local i
	for ((i = 0; i < 100; i++)); do
		if python3 - "$1" "$2" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}", timeout=1).status == 200 else 1)
PY
		sleep 0.1
	done
	return 1
}

[ -s "$TMP/healthcheck" ] || fail "no HEALTHCHECK command found"
GPORT=$(free_port)
healthcheck "importer-gateway" IMPORTER_HTTP_ADDR=127.0.0.1:$GPORT &&
	fail "HEALTHCHECK passes for a gateway that does not listen"
DATABASE_URL=$URL IMPORTER_JWT_SECRET=deploy-static-test-secret-0123456789abcdef \
	IMPORTER_HTTP_ADDR=127.0.0.1:$GPORT IMPORTER_LOG_LEVEL=warn "$GATEWAY" 2>"$TMP/gateway.log" &
PIDS+=($!)
if wait_http "$GPORT" /healthz; then
	healthcheck "importer-gateway" IMPORTER_HTTP_ADDR=0.0.0.0:$GPORT ||
		fail "HEALTHCHECK fails for a running gateway on port $GPORT"
	healthcheck "/sbin/docker-init -- importer-gateway" IMPORTER_HTTP_ADDR=0.0.0.0:$GPORT ||
		fail "HEALTHCHECK fails for a running gateway behind docker-init"
else
	fail "gateway did not answer /healthz: $(cat "$TMP/gateway.log")"
fi
healthcheck "importer-worker migrate" || fail "HEALTHCHECK fails for migrate"
healthcheck "importer-worker" || fail "HEALTHCHECK fails for a worker without IMPORTER_METRICS_ADDR"
MPORT=$(free_port)
healthcheck "importer-worker" IMPORTER_METRICS_ADDR=127.0.0.1:$MPORT &&
	fail "HEALTHCHECK passes for a worker whose metrics endpoint does not answer"
DATABASE_URL=$URL IMPORTER_METRICS_ADDR=127.0.0.1:$MPORT IMPORTER_LOG_LEVEL=warn \
	"$WORKER" 2>"$TMP/worker.log" &
PIDS+=($!)
if wait_http "$MPORT" /metrics; then
	healthcheck "importer-worker" IMPORTER_METRICS_ADDR=0.0.0.0:$MPORT ||
		fail "HEALTHCHECK fails for a running worker with metrics on port $MPORT"
else
	fail "worker did not answer /metrics on $MPORT: $(cat "$TMP/worker.log")"
fi

if [ "$failures" -gt 0 ]; then
	echo "deploy_static.sh: $failures failure(s)" >&2
	exit 1
fi
echo "deploy_static.sh: ok"
