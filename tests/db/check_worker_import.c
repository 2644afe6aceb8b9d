/* check_worker_import.c -- a real worker imports csv, ndjson and backup files exactly. */
#include <check.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "job.h"
#include "test_db.h"

#define DB   TEST_DB_NAME
#define USER "00000000-0000-4000-8000-0000000000c1"

static char database_env[4200];

static void create_database(void)
{
	test_db_create_env(DB, database_env, sizeof(database_env));
}

static PGconn *conn;

static void setup(void)
{
	conn = test_db_connect(DB);
	PQclear(test_db_exec(conn, "TRUNCATE importer.import_jobs, importer.records, "
	                           "importer.import_files CASCADE; LISTEN importer_events; "
	                           "UPDATE importer.settings SET value = '0' "
	                           "WHERE key = 'batch_pause_ms' AND user_id IS NULL"));
}

static void teardown(void)
{
	PQfinish(conn);
	conn = NULL;
}

/* Waits, woken by job events, until the job's status is one of want
 * ("completed", or "completed|failed"). Returns the status (caller frees). */
static char *wait_status(const char *job, const char *want, int timeout_ms)
{
	long deadline = test_now_ms() + timeout_ms;

	for (;;) {
		char *st = test_db_valuef(
		    conn, "SELECT status FROM importer.import_jobs WHERE id = '%s'", job);
		struct pollfd pfd = {PQsocket(conn), POLLIN, 0};
		PGnotify *n;

		if (strstr(want, st) != NULL || test_now_ms() >= deadline)
			return st;
		free(st);
		poll(&pfd, 1, 500);
		PQconsumeInput(conn);
		while ((n = PQnotifies(conn)) != NULL)
			PQfreemem(n);
	}
}

static void start_worker_polling(struct test_proc *p, const char *poll)
{
	const char *argv[] = {IMPORTER_WORKER_BIN, NULL};
	const char *env[] = {database_env, poll, NULL};

	test_proc_start(p, argv, env);
	ck_assert_msg(test_proc_wait_for(p, "\"event\":\"listen.ready\"", 10000), "%s", p->buf);
}

/* A worker woken only by NOTIFY (its safety-net poll is ten minutes). */
static void start_worker(struct test_proc *p)
{
	start_worker_polling(p, "IMPORTER_POLL_INTERVAL_MS=600000");
}

/* Submits file (a SQL bytea expression) as kind with options; returns the id. */
static char *submit(const char *kind, const char *file_sql, const char *options)
{
	return test_db_valuef(
	    conn,
	    "SELECT importer.submit_job('%s', %s, '%s'::jsonb || '{\"user_id\":\"" USER "\"}')",
	    kind, file_sql, options);
}

static void run_to_end(const char *job, const char *want)
{
	struct test_proc w;
	char *st;

	start_worker(&w);
	st = wait_status(job, "completed|failed|cancelled", 60000);
	ck_assert_int_eq(test_proc_stop(&w, SIGTERM, 10000), 0);
	ck_assert_msg(strcmp(st, want) == 0, "job ended %s, want %s: %s", st, want,
	              test_db_valuef(conn,
	                             "SELECT coalesce(error_message, '') FROM importer.import_jobs "
	                             "WHERE id = '%s'",
	                             job));
	free(st);
}

START_TEST(csv_rfc4180_upsert_lands_every_row_exactly)
{
	/* BOM, quoted delimiter, escaped quote, embedded CRLF, CRLF line ends. */
	char *job = submit("csv",
	                   "convert_to(E'\\xEF\\xBB\\xBF' || E'id,name,note\\r\\n"
	                   "1,Ada,\"likes, commas\"\\r\\n"
	                   "2,\"Bob \"\"B\"\"\",\"two\\r\\nlines\"\\r\\n"
	                   "3,Cy,plain', 'UTF8')",
	                   "{\"collection\":\"people\",\"file_name\":\"people.csv\"}");

	run_to_end(job, "completed");
	test_db_expectf(conn, "3",
	                "SELECT count(*) FROM importer.records WHERE collection = 'people'");
	test_db_expectf(
	    conn, "{\"id\": \"2\", \"name\": \"Bob \\\"B\\\"\", \"note\": \"two\\r\\nlines\"}",
	    "SELECT data::text FROM importer.records WHERE record_key = '2'");
	test_db_expectf(conn, "likes, commas",
	                "SELECT data->>'note' FROM importer.records WHERE record_key = '1'");
	test_db_expectf(
	    conn, "completed/done/100/3/3/0/f",
	    "SELECT concat_ws('/', status, phase, progress, processed_items, total_items, "
	    "failed_items, total_is_estimate) FROM importer.import_jobs WHERE id = '%s'",
	    job);
	test_db_expectf(conn, "3/0/0/3",
	                "SELECT concat_ws('/', counts->>'inserted', counts->>'updated', "
	                "counts->>'failed', counts->'collections'->'people'->>'inserted') "
	                "FROM importer.import_jobs WHERE id = '%s'",
	                job);
	test_db_expectf(conn, "t", "SELECT bool_and(job_id = '%s') FROM importer.records", job);
	test_db_expectf(conn, "job.claimed,job.started,job.phase,job.completed",
	                "SELECT string_agg(event, ',' ORDER BY id) FROM importer.import_logs "
	                "WHERE job_id = '%s'",
	                job);
	/* A completed job's chunks are dropped. */
	test_db_expectf(
	    conn, "0",
	    "SELECT count(*) FROM importer.import_file_chunks c JOIN importer.import_jobs "
	    "j ON j.file_id = c.file_id WHERE j.id = '%s'",
	    job);
	free(job);
}
END_TEST

START_TEST(bad_records_become_errors_and_good_ones_land)
{
	/* Row 2 ragged, row 3 invalid UTF-8, row 4 a NUL byte, row 5 no key. */
	char *job =
	    submit("csv",
	           "convert_to('id,name' || chr(10) || '1,ok' || chr(10) || '2' || chr(10), "
	           "'UTF8') || '\\x332cff0a'::bytea || '\\x342c610062'::bytea || "
	           "convert_to(chr(10) || ',nokey' || chr(10) || '6,fine' || chr(10), 'UTF8')",
	           "{\"collection\":\"c\"}");

	run_to_end(job, "completed");
	test_db_expectf(
	    conn, "1,6",
	    "SELECT string_agg(record_key, ',' ORDER BY record_key) FROM importer.records");
	test_db_expectf(conn, "2,3,4,5",
	                "SELECT string_agg(record_index::text, ',' ORDER BY record_index) "
	                "FROM importer.import_errors WHERE job_id = '%s'",
	                job);
	test_db_expectf(conn, "6/4/2/4",
	                "SELECT concat_ws('/', processed_items, failed_items, "
	                "counts->>'inserted', counts->>'failed') FROM importer.import_jobs "
	                "WHERE id = '%s'",
	                job);
	test_db_expectf(conn, "expected 2 fields, found 1",
	                "SELECT message FROM importer.import_errors "
	                "WHERE job_id = '%s' AND record_index = 2",
	                job);
	free(job);
}
END_TEST

/* A record only the database refuses (a number beyond numeric's range) is
 * isolated by bisection: the batch's other records land, in one batch. */
START_TEST(a_record_the_database_refuses_is_isolated_and_the_rest_land)
{
	char *job = submit("ndjson",
	                   "convert_to('{\"id\":1}' || chr(10) || '{\"id\":2}' || chr(10) || "
	                   "'{\"id\":3,\"v\":1e1000000}' || chr(10) || '{\"id\":4}' || chr(10) || "
	                   "'{\"id\":5}' || chr(10), 'UTF8')",
	                   "{\"collection\":\"c\"}");

	run_to_end(job, "completed");
	test_db_expectf(
	    conn, "1,2,4,5",
	    "SELECT string_agg(record_key, ',' ORDER BY record_key) FROM importer.records");
	test_db_expectf(conn, "3|3|value overflows numeric format",
	                "SELECT concat_ws('|', record_index, record_key, message) "
	                "FROM importer.import_errors WHERE job_id = '%s'",
	                job);
	test_db_expectf(conn, "5/1/4",
	                "SELECT concat_ws('/', processed_items, failed_items, counts->>'inserted') "
	                "FROM importer.import_jobs WHERE id = '%s'",
	                job);
	free(job);
}
END_TEST

START_TEST(upsert_twice_is_deterministic_and_last_record_for_a_key_wins)
{
	const char *file = "convert_to('id,v' || chr(10) || '1,a' || chr(10) || '2,b' || chr(10) "
	                   "|| '1,c' || chr(10), 'UTF8')";
	char *first = submit("csv", file, "{\"collection\":\"d\"}");
	char *second;

	run_to_end(first, "completed");
	test_db_expectf(conn, "1=c,2=b",
	                "SELECT string_agg(record_key || '=' || (data->>'v'), ',' "
	                "ORDER BY record_key) FROM importer.records");
	second = submit("csv", file, "{\"collection\":\"d\"}");
	run_to_end(second, "completed");
	test_db_expectf(conn, "1=c,2=b",
	                "SELECT string_agg(record_key || '=' || (data->>'v'), ',' "
	                "ORDER BY record_key) FROM importer.records");
	/* The same file again writes nothing: both records are unchanged. */
	test_db_expectf(conn, "0/0/2/0/2",
	                "SELECT concat_ws('/', counts->>'inserted', counts->>'updated', "
	                "counts->>'unchanged', counts->>'failed', "
	                "counts->'collections'->'d'->>'unchanged') "
	                "FROM importer.import_jobs WHERE id = '%s'",
	                second);
	free(first);
	free(second);
}
END_TEST

/* The lease fence finds its job by the primary key, and the claim's fairness
 * count reads one user's processing jobs by their owner, whatever the
 * statistics say. With many finished jobs and few processing ones, a partial
 * index on status = 'processing' looks cheaper than the primary key, and
 * while a long transaction holds the xmin horizon back it keeps an entry for
 * every processing version since: the churn study logged fences scanning
 * 18,500 buffers of one, and claims counting a user's jobs through every
 * user's (RELIABILITY.md). */
START_TEST(the_fence_and_the_fairness_count_use_their_own_keys)
{
	char *plan;

	test_db_execf(conn, "INSERT INTO importer.import_jobs (user_id, kind, payload, status, phase)"
	                    " SELECT gen_random_uuid(), 'noop', '{}', 'completed', 'done'"
	                    " FROM generate_series(1, 200000)");
	test_db_execf(conn, "INSERT INTO importer.import_jobs (id, user_id, kind, payload, status,"
	                    " phase, worker_id, lease_id) VALUES ("
	                    "'00000000-0000-4000-8000-00000000f001', '" USER "', 'noop', '{}',"
	                    " 'processing', 'reading', 'w', '00000000-0000-4000-8000-00000000f002')");
	test_db_execf(conn, "VACUUM ANALYZE importer.import_jobs");
	test_db_execf(conn, "PREPARE fence(uuid, uuid) AS %s", job_sql_fence);
	plan = test_db_valuef(conn, "EXPLAIN (COSTS OFF, FORMAT JSON) EXECUTE fence("
	                            "'00000000-0000-4000-8000-00000000f001',"
	                            " '00000000-0000-4000-8000-00000000f002')");
	ck_assert_msg(strstr(plan, "\"Index Name\": \"import_jobs_pkey\"") != NULL, "%s", plan);
	free(plan);
	/* claim_job's count (sql/0016_held_horizon.sql): one owner's, from the
	 * owner's floor */
	test_db_execf(conn, "PREPARE running(uuid) AS SELECT count(*) FROM importer.import_jobs r"
	                    " WHERE r.status = 'processing' AND r.user_id = $1"
	                    " AND r.created_at >= coalesce((SELECT f.active_from"
	                    " FROM importer.user_active_floors f WHERE f.user_id = $1), '-infinity')");
	plan = test_db_valuef(conn, "EXPLAIN (COSTS OFF, FORMAT JSON) EXECUTE running('" USER "')");
	ck_assert_msg(strstr(plan, "\"Index Cond\": \"((status = 'processing'::text) AND (user_id = "
	                           "'" USER "'::uuid) AND (created_at >= COALESCE(") != NULL,
	              "%s", plan);
	free(plan);
	test_db_execf(conn, "DEALLOCATE ALL");
}
END_TEST

/* An upsert rewrites only the records whose data changed: the others keep
 * their row version, updated_at and job_id (the last job that wrote them). */
START_TEST(upsert_leaves_unchanged_records_as_they_are)
{
	char *first = submit("csv",
	                     "convert_to('id,v,w' || chr(10) || '1,a,x' || chr(10) || '2,b,y' || "
	                     "chr(10) || '3,c,z' || chr(10), 'UTF8')",
	                     "{\"collection\":\"u\"}");
	char *second, *dry;

	run_to_end(first, "completed");
	test_db_execf(conn, "CREATE TEMP TABLE before_second AS "
	                    "SELECT record_key, ctid AS tid, updated_at FROM importer.records");
	/* Record 2 changes; 1 and 3 are the same (3 in another column order and
	 * spacing of the same JSON would still be the same: the data is jsonb). */
	second = submit("csv",
	                "convert_to('w,id,v' || chr(10) || 'x,1,a' || chr(10) || 'Y,2,b' || "
	                "chr(10) || 'z,3,c' || chr(10) || 'n,4,d' || chr(10), 'UTF8')",
	                "{\"collection\":\"u\"}");
	run_to_end(second, "completed");
	test_db_expectf(conn, "1/1/2/0/4",
	                "SELECT concat_ws('/', counts->>'inserted', counts->>'updated', "
	                "counts->>'unchanged', counts->>'failed', processed_items) "
	                "FROM importer.import_jobs WHERE id = '%s'",
	                second);
	test_db_expectf(conn, "1=first,2=second,3=first,4=second",
	                "SELECT string_agg(r.record_key || '=' || CASE r.job_id WHEN '%s' "
	                "THEN 'first' WHEN '%s' THEN 'second' END, ',' ORDER BY r.record_key) "
	                "FROM importer.records r",
	                first, second);
	/* The unchanged ones were not rewritten at all (same tuple, same time). */
	test_db_expectf(conn, "1,3",
	                "SELECT string_agg(b.record_key, ',' ORDER BY b.record_key) "
	                "FROM before_second b JOIN importer.records r USING (record_key) "
	                "WHERE r.ctid = b.tid AND r.updated_at = b.updated_at");
	test_db_expectf(conn, "Y", "SELECT data->>'w' FROM importer.records WHERE record_key = '2'");
	/* A dry run tells the same apart without writing. */
	dry = submit("csv",
	             "convert_to('id,v,w' || chr(10) || '1,a,x' || chr(10) || '2,B,y' || "
	             "chr(10) || '5,e,v' || chr(10), 'UTF8')",
	             "{\"collection\":\"u\",\"dry_run\":true}");
	run_to_end(dry, "completed");
	test_db_expectf(conn, "1/1/1/0",
	                "SELECT concat_ws('/', counts->>'inserted', counts->>'updated', "
	                "counts->>'unchanged', counts->>'failed') "
	                "FROM importer.import_jobs WHERE id = '%s'",
	                dry);
	test_db_expectf(conn, "4", "SELECT count(*) FROM importer.records");
	free(first);
	free(second);
	free(dry);
}
END_TEST

START_TEST(append_refuses_existing_and_repeated_keys)
{
	char *first = submit("csv", "convert_to('id,v' || chr(10) || '1,a' || chr(10), 'UTF8')",
	                     "{\"collection\":\"e\"}");
	char *second;

	run_to_end(first, "completed");
	second = submit("csv",
	                "convert_to('id,v' || chr(10) || '1,x' || chr(10) || '2,y' || chr(10) || "
	                "'2,z' || chr(10), 'UTF8')",
	                "{\"collection\":\"e\",\"mode\":\"append\"}");
	run_to_end(second, "completed");
	test_db_expectf(conn, "1=a,2=y",
	                "SELECT string_agg(record_key || '=' || (data->>'v'), ',' "
	                "ORDER BY record_key) FROM importer.records");
	test_db_expectf(conn, "1,3",
	                "SELECT string_agg(record_index::text, ',' ORDER BY record_index) "
	                "FROM importer.import_errors WHERE job_id = '%s'",
	                second);
	free(first);
	free(second);
}
END_TEST

START_TEST(replace_swaps_the_collection_and_a_failed_replace_changes_nothing)
{
	char *base = submit("csv",
	                    "convert_to('id,v' || chr(10) || '1,a' || chr(10) || '2,b' || "
	                    "chr(10) || '3,c' || chr(10), 'UTF8')",
	                    "{\"collection\":\"r\"}");
	char *other = submit("csv", "convert_to('id,v' || chr(10) || '1,keep' || chr(10), 'UTF8')",
	                     "{\"collection\":\"untouched\"}");
	char *repl, *bad;

	run_to_end(base, "completed");
	run_to_end(other, "completed");
	repl = submit("csv",
	              "convert_to('id,v' || chr(10) || '2,B' || chr(10) || '4,D' || chr(10), "
	              "'UTF8')",
	              "{\"collection\":\"r\",\"mode\":\"replace\",\"batch_size\":1}");
	run_to_end(repl, "completed");
	test_db_expectf(conn, "2=B,4=D",
	                "SELECT string_agg(record_key || '=' || (data->>'v'), ',' "
	                "ORDER BY record_key) FROM importer.records WHERE collection = 'r'");
	test_db_expectf(conn, "1",
	                "SELECT count(*) FROM importer.records WHERE collection = 'untouched'");
	test_db_expectf(conn, "1/1",
	                "SELECT concat_ws('/', counts->>'inserted', counts->>'updated') "
	                "FROM importer.import_jobs WHERE id = '%s'",
	                repl);
	test_db_expectf(conn, "0", "SELECT count(*) FROM importer.replace_staging");
	/* A replace that fails on its last record leaves the collection as it was. */
	bad = submit("csv",
	             "convert_to('id,v' || chr(10) || '9,x' || chr(10) || '1,\"open', "
	             "'UTF8')",
	             "{\"collection\":\"r\",\"mode\":\"replace\",\"batch_size\":1}");
	run_to_end(bad, "failed");
	test_db_expectf(conn, "2=B,4=D",
	                "SELECT string_agg(record_key || '=' || (data->>'v'), ',' "
	                "ORDER BY record_key) FROM importer.records WHERE collection = 'r'");
	free(base);
	free(other);
	free(repl);
	free(bad);
}
END_TEST

START_TEST(dry_run_reports_counts_and_writes_nothing)
{
	char *job = submit("csv",
	                   "convert_to('id,v' || chr(10) || '1,a' || chr(10) || '2' || "
	                   "chr(10), 'UTF8')",
	                   "{\"collection\":\"f\",\"dry_run\":true}");

	run_to_end(job, "completed");
	test_db_expectf(conn, "0", "SELECT count(*) FROM importer.records");
	test_db_expectf(conn, "1/1/2",
	                "SELECT concat_ws('/', counts->>'inserted', counts->>'failed', "
	                "processed_items) FROM importer.import_jobs WHERE id = '%s'",
	                job);
	free(job);
}
END_TEST

START_TEST(ndjson_and_backup_import_by_id)
{
	char *nd = submit("ndjson",
	                  "convert_to('{\"id\":1,\"n\":\"a\"}' || chr(13) || chr(10) || chr(10) || "
	                  "'not json' || chr(10) || '{\"id\":\"k2\",\"n\":[1,2]}' || chr(10) || "
	                  "'{\"id\":\"big\",\"v\":12345678901234567890123.5e1}' || chr(10) || "
	                  "'{\"id\":99999999999999999999}' || chr(10) || "
	                  "'[1]' || chr(10), 'UTF8') || "
	                  "'\\x7b226964223a2275222c2276223a22ff227d0a'::bytea",
	                  "{\"collection\":\"nd\"}");
	char *bk = submit("backup",
	                  "convert_to('{\"metadata\":{\"v\":1},\"users\":[{\"id\":1},{\"id\":2}],"
	                  "\"businesses\":[{\"id\":\"b1\",\"tags\":[\"x]\"]},7]}', 'UTF8')",
	                  "{}");

	run_to_end(nd, "completed");
	run_to_end(bk, "completed");
	test_db_expectf(conn, "nd:1,nd:big,nd:k2",
	                "SELECT string_agg(collection || ':' || record_key, ',' "
	                "ORDER BY 1) FROM importer.records WHERE collection = 'nd'");
	/* Numbers are stored as written, not squeezed through 64-bit integers. */
	test_db_expectf(conn, "123456789012345678901235",
	                "SELECT data->>'v' FROM importer.records "
	                "WHERE record_key = 'big'");
	/* Not JSON, an integer key beyond 64 bits (json-c would clamp it and
	 * merge records), an array, and invalid UTF-8 are record errors whose
	 * excerpts are stored as text. */
	test_db_expectf(conn, "2,5,6,7",
	                "SELECT string_agg(record_index::text, ',' ORDER BY record_index) "
	                "FROM importer.import_errors WHERE job_id = '%s'",
	                nd);
	test_db_expectf(
	    conn, "t",
	    "SELECT raw LIKE '{\"id\":\"u\",\"v\":\"?\"}%%' FROM importer.import_errors "
	    "WHERE job_id = '%s' AND record_index = 7",
	    nd);
	test_db_expectf(
	    conn, "businesses:b1,users:1,users:2",
	    "SELECT string_agg(collection || ':' || record_key, ',' ORDER BY collection, "
	    "record_key) FROM importer.records WHERE collection <> 'nd'");
	test_db_expectf(conn, "2/1/1",
	                "SELECT concat_ws('/', counts->'collections'->'users'->>'inserted', "
	                "counts->'collections'->'businesses'->>'inserted', "
	                "counts->'collections'->'businesses'->>'failed') FROM importer.import_jobs "
	                "WHERE id = '%s'",
	                bk);
	free(nd);
	free(bk);
}
END_TEST

START_TEST(file_level_problems_fail_the_job_with_a_clear_message)
{
	char *dup = submit("csv", "convert_to('id,a,a' || chr(10) || '1,x,y' || chr(10), 'UTF8')",
	                   "{\"collection\":\"g\"}");
	/* A header whose name is invalid UTF-8 fails with a storable message. */
	char *badhdr = submit("csv", "'\\x69642cff0a312c320a'::bytea", "{\"collection\":\"g\"}");

	run_to_end(dup, "failed");
	run_to_end(badhdr, "failed");
	test_db_expectf(conn, "t",
	                "SELECT error_message LIKE '%%twice%%' FROM importer.import_jobs "
	                "WHERE id = '%s'",
	                dup);
	free(dup);
	free(badhdr);

	char *quote = submit("csv", "convert_to('id,v' || chr(10) || '1,\"open', 'UTF8')",
	                     "{\"collection\":\"g\"}");
	char *empty = submit("csv", "''::bytea", "{\"collection\":\"g\"}");
	char *garbage = submit("backup", "convert_to('[1,2]', 'UTF8')", "{}");

	run_to_end(quote, "failed");
	run_to_end(empty, "failed");
	run_to_end(garbage, "failed");
	test_db_expectf(conn, "t",
	                "SELECT error_message ILIKE '%%quote%%' FROM importer.import_jobs "
	                "WHERE id = '%s'",
	                quote);
	test_db_expectf(conn, "the file is empty",
	                "SELECT error_message FROM importer.import_jobs "
	                "WHERE id = '%s'",
	                empty);
	test_db_expectf(conn, "0", "SELECT count(*) FROM importer.records");
	free(quote);
	free(empty);
	free(garbage);
}
END_TEST

/* A CSV of rows rows, id,a,b. */
#define BIG_CSV(rows)                                                                              \
	"convert_to('id,a,b' || chr(10) || (SELECT string_agg(g || ',x' || g || ',y', chr(10)) "   \
	"FROM generate_series(1, " #rows ") g) || chr(10), 'UTF8')"

START_TEST(small_batches_checkpoint_and_sigterm_releases_to_another_worker)
{
	char *job = submit("csv", BIG_CSV(20000), "{\"collection\":\"big\",\"batch_size\":50}");
	struct test_proc w1, w2;
	char *st;

	start_worker(&w1);
	/* Wait for some committed progress, then stop the worker. */
	ck_assert_msg(test_proc_wait_for(&w1, "\"event\":\"job.claimed\"", 10000), "%s", w1.buf);
	for (long deadline = test_now_ms() + 20000;;) {
		char *n = test_db_valuef(
		    conn, "SELECT processed_items FROM importer.import_jobs WHERE id = '%s'", job);
		bool some = atoll(n) >= 500;

		free(n);
		if (some || test_now_ms() > deadline)
			break;
		struct pollfd pfd = {PQsocket(conn), POLLIN, 0};
		poll(&pfd, 1, 200);
		PQconsumeInput(conn);
		for (PGnotify *nt; (nt = PQnotifies(conn)) != NULL;)
			PQfreemem(nt);
	}
	ck_assert_int_eq(test_proc_stop(&w1, SIGTERM, 10000), 0);
	test_db_expectf(conn, "pending/true",
	                "SELECT status || '/' || (checkpoint IS NOT NULL) "
	                "FROM importer.import_jobs WHERE id = '%s'",
	                job);
	/* The checkpoint is the end of the last committed batch (the worker
	 * had read further ahead): the header, then processed_items rows. */
	test_db_expectf(conn, "t",
	                "SELECT (checkpoint->>'record_index')::int = processed_items "
	                "AND (checkpoint->>'byte_offset')::int = 7 + (SELECT sum(length(g || ',x' "
	                "|| g || ',y') + 1) FROM generate_series(1, processed_items) g) "
	                "FROM importer.import_jobs WHERE id = '%s'",
	                job);
	start_worker(&w2);
	st = wait_status(job, "completed|failed", 120000);
	ck_assert_int_eq(test_proc_stop(&w2, SIGTERM, 10000), 0);
	ck_assert_str_eq(st, "completed");
	test_db_expectf(conn, "20000/20000/20000",
	                "SELECT count(*) || '/' || count(DISTINCT record_key) || '/' "
	                "|| max(record_key::int) FROM importer.records");
	test_db_expectf(conn, "20000/0/20000",
	                "SELECT concat_ws('/', processed_items, failed_items, "
	                "counts->>'inserted') FROM importer.import_jobs WHERE id = '%s'",
	                job);
	test_db_expectf(conn, "1",
	                "SELECT count(*) FROM importer.import_logs WHERE job_id = '%s' "
	                "AND event = 'job.released'",
	                job);
	free(st);
	free(job);
}
END_TEST

/* Waits up to wait_ms for notifications on conn; counts the job events of
 * job and remembers the seq of the last one. */
static void count_job_events(const char *job, int wait_ms, long *count, long *last_seq)
{
	struct pollfd pfd = {PQsocket(conn), POLLIN, 0};

	poll(&pfd, 1, wait_ms);
	PQconsumeInput(conn);
	for (PGnotify *nt; (nt = PQnotifies(conn)) != NULL; PQfreemem(nt)) {
		const char *seq = strstr(nt->extra, "\"seq\":");

		if (strstr(nt->extra, job) != NULL && strstr(nt->extra, "\"t\":\"job\"") != NULL &&
		    seq != NULL) {
			(*count)++;
			*last_seq = atol(seq + 6);
		}
	}
}

/* Progress NOTIFYs of one job are throttled (the row is the truth), yet the
 * last notification always carries the job's final state. */
START_TEST(progress_notifications_are_throttled_and_the_end_is_announced)
{
	char *job = submit("csv", BIG_CSV(20000), "{\"collection\":\"nt\",\"batch_size\":50}");
	long deadline = test_now_ms() + 120000, notified = 0, last_seq = -1, final_seq;
	struct test_proc w;
	char *st, *seq;

	start_worker(&w);
	for (;;) {
		st = test_db_valuef(conn, "SELECT status FROM importer.import_jobs WHERE id = '%s'",
		                    job);
		if (strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0 ||
		    test_now_ms() >= deadline)
			break;
		free(st);
		count_job_events(job, 200, &notified, &last_seq);
	}
	ck_assert_str_eq(st, "completed");
	seq = test_db_valuef(conn, "SELECT seq FROM importer.import_jobs WHERE id = '%s'", job);
	final_seq = atol(seq);
	/* The end's notification was sent with the commit that ended the job. */
	for (deadline = test_now_ms() + 5000; last_seq != final_seq && test_now_ms() < deadline;)
		count_job_events(job, 200, &notified, &last_seq);
	ck_assert_int_eq(test_proc_stop(&w, SIGTERM, 10000), 0);
	ck_assert_int_eq(last_seq, final_seq);
	/* 400 batches: without throttling, 400 notifications and more. */
	ck_assert_msg(notified >= 2 && notified <= 200, "%ld notifications for 400 batches",
	              notified);
	free(seq);
	free(st);
	free(job);
}
END_TEST

START_TEST(cancel_stops_a_running_import_quickly_and_keeps_what_committed)
{
	char *job = submit("csv", BIG_CSV(200000), "{\"collection\":\"cx\",\"batch_size\":1000}");
	struct test_proc w;
	char *st;
	long t0;

	start_worker(&w);
	ck_assert_msg(test_proc_wait_for(&w, "\"event\":\"job.claimed\"", 10000), "%s", w.buf);
	t0 = test_now_ms();
	/* As the owner, the way the gateway asks. */
	PQclear(test_db_exec(conn, "SELECT set_config('importer.user_id', '" USER "', false); "
	                           "SELECT importer.cancel_job(id) FROM importer.import_jobs"));
	st = wait_status(job, "cancelled", 10000);
	ck_assert_str_eq(st, "cancelled");
	/* One second is the promise; sanitizers slow batches, so allow slack. */
	ck_assert_int_lt(test_now_ms() - t0, 3000);
	ck_assert_int_eq(test_proc_stop(&w, SIGTERM, 10000), 0);
	{
		char *processed = test_db_valuef(conn,
		                                 "SELECT processed_items FROM importer.import_jobs "
		                                 "WHERE id = '%s'",
		                                 job);
		test_db_expectf(conn, processed, "SELECT count(*) FROM importer.records");
		free(processed);
	}
	free(st);
	free(job);
}
END_TEST

START_TEST(a_killed_worker_loses_its_job_to_rescue_and_nothing_is_doubled)
{
	char *job = submit("csv", BIG_CSV(20000), "{\"collection\":\"k\",\"batch_size\":100}");
	struct test_proc w1, w2;
	char *st;

	PQclear(test_db_exec(conn, "INSERT INTO importer.settings (key, value, user_id) VALUES "
	                           "('lease_seconds', '1', '" USER "') ON CONFLICT (key, user_id) "
	                           "DO UPDATE SET value = EXCLUDED.value"));
	start_worker(&w1);
	ck_assert_msg(test_proc_wait_for(&w1, "\"event\":\"job.claimed\"", 10000), "%s", w1.buf);
	ck_assert_int_eq(test_proc_stop(&w1, SIGKILL, 10000), -1);
	/* The survivor's housekeeping tick rescues the job once the lease expires. */
	start_worker_polling(&w2, "IMPORTER_POLL_INTERVAL_MS=300");
	st = wait_status(job, "completed|failed", 120000);
	ck_assert_int_eq(test_proc_stop(&w2, SIGTERM, 10000), 0);
	PQclear(test_db_exec(conn, "DELETE FROM importer.settings WHERE user_id IS NOT NULL"));
	ck_assert_str_eq(st, "completed");
	test_db_expectf(conn, "20000/20000",
	                "SELECT count(*) || '/' || count(DISTINCT record_key) "
	                "FROM importer.records WHERE collection = 'k'");
	test_db_expectf(conn, "20000/0/1",
	                "SELECT concat_ws('/', processed_items, failed_items, rescues) "
	                "FROM importer.import_jobs WHERE id = '%s'",
	                job);
	test_db_expectf(
	    conn, "t",
	    "SELECT count(*) = 1 AND bool_and(details->>'previous_worker_id' LIKE '%%:%%') "
	    "FROM importer.import_logs WHERE job_id = '%s' AND event = 'job.rescued'",
	    job);
	free(st);
	free(job);
}
END_TEST

/* A worker frozen past its lease (SIGSTOP, a partition, a long GC pause)
 * loses the job to rescue, even if frozen inside a batch transaction; once
 * continued it cannot commit into the job, and nothing is doubled. */
START_TEST(a_stopped_worker_past_its_lease_is_rescued_and_cannot_commit_when_continued)
{
	char *job = submit("csv", BIG_CSV(20000), "{\"collection\":\"s\",\"batch_size\":100}");
	struct test_proc w1, w2;
	char *st;

	PQclear(test_db_exec(conn, "INSERT INTO importer.settings (key, value, user_id) VALUES "
	                           "('lease_seconds', '1', '" USER "') ON CONFLICT (key, user_id) "
	                           "DO UPDATE SET value = EXCLUDED.value"));
	start_worker(&w1);
	ck_assert_msg(test_proc_wait_for(&w1, "\"event\":\"job.claimed\"", 10000), "%s", w1.buf);
	ck_assert(test_db_wait_true(conn, "SELECT processed_items > 0 FROM importer.import_jobs",
	                            10000));
	ck_assert_int_eq(kill(w1.pid, SIGSTOP), 0);
	start_worker_polling(&w2, "IMPORTER_POLL_INTERVAL_MS=300");
	ck_assert_msg(test_proc_wait_for(&w2, "\"event\":\"job.claimed\"", 30000), "%s", w2.buf);
	ck_assert_int_eq(kill(w1.pid, SIGCONT), 0);
	st = wait_status(job, "completed|failed", 120000);
	ck_assert_int_eq(test_proc_stop(&w2, SIGTERM, 10000), 0);
	/* The continued worker met the fence (or its dead session) and let go. */
	ck_assert_msg(test_proc_wait_for(&w1, "\"event\":\"job.lost\"", 10000), "%s", w1.buf);
	ck_assert_int_eq(test_proc_stop(&w1, SIGTERM, 10000), 0);
	PQclear(test_db_exec(conn, "DELETE FROM importer.settings WHERE user_id IS NOT NULL"));
	ck_assert_str_eq(st, "completed");
	test_db_expectf(conn, "20000/20000",
	                "SELECT count(*) || '/' || count(DISTINCT record_key) "
	                "FROM importer.records WHERE collection = 's'");
	test_db_expectf(conn, "20000/0/1",
	                "SELECT concat_ws('/', processed_items, failed_items, rescues) "
	                "FROM importer.import_jobs WHERE id = '%s'",
	                job);
	free(st);
	free(job);
}
END_TEST

START_TEST(pause_then_resume_continues_from_the_checkpoint)
{
	char *job = submit("csv", BIG_CSV(20000), "{\"collection\":\"p\",\"batch_size\":50}");
	char sql[256], *st, *paused_at;
	struct test_proc w;

	start_worker(&w);
	snprintf(sql, sizeof(sql),
	         "SELECT processed_items >= 500 FROM importer.import_jobs WHERE id = '%s'", job);
	ck_assert(test_db_wait_true(conn, sql, 30000));
	PQclear(test_db_exec(conn, "SELECT set_config('importer.user_id', '" USER "', false); "
	                           "SELECT importer.pause_job(id) FROM importer.import_jobs"));
	st = wait_status(job, "paused", 10000);
	ck_assert_str_eq(st, "paused");
	free(st);
	paused_at = test_db_valuef(
	    conn, "SELECT processed_items FROM importer.import_jobs WHERE id = '%s'", job);
	ck_assert_int_lt(atoll(paused_at), 20000);
	/* Paused while batches are being written: at the batch boundary that
	 * committed last, the checkpoint and the counters agree. */
	test_db_expectf(conn, "t",
	                "SELECT processed_items = (checkpoint->>'record_index')::bigint AND "
	                "processed_items = (counts->>'inserted')::bigint AND "
	                "processed_items %% 50 = 0 FROM importer.import_jobs WHERE id = '%s'",
	                job);
	/* Nothing moves while paused; what was committed is there. */
	test_db_expectf(conn, paused_at,
	                "SELECT count(*) FROM importer.records WHERE collection = 'p'");
	/* The step in words, the last batch's rows, thousands separated. */
	test_db_expectf(conn, "t",
	                "SELECT current_step = format('Importing records %%s\u2013%%s of ~%%s', "
	                "to_char(processed_items - 49, 'FM999,999,999'), "
	                "to_char(processed_items, 'FM999,999,999'), "
	                "to_char(total_items, 'FM999,999,999')) "
	                "FROM importer.import_jobs WHERE id = '%s'",
	                job);
	PQclear(test_db_exec(conn, "SELECT importer.resume_job(id) FROM importer.import_jobs"));
	st = wait_status(job, "completed|failed", 120000);
	ck_assert_int_eq(test_proc_stop(&w, SIGTERM, 10000), 0);
	ck_assert_str_eq(st, "completed");
	test_db_expectf(conn, "20000/20000",
	                "SELECT count(*) || '/' || count(DISTINCT record_key) "
	                "FROM importer.records WHERE collection = 'p'");
	test_db_expectf(conn, "20000/20000",
	                "SELECT processed_items || '/' || (counts->>'inserted') "
	                "FROM importer.import_jobs WHERE id = '%s'",
	                job);
	/* The second run resumed where the first one paused. */
	test_db_expectf(conn, "t",
	                "SELECT count(*) = 1 FROM importer.import_logs WHERE job_id = '%s' "
	                "AND event = 'job.started' AND message LIKE 'resumed at byte %%'",
	                job);
	free(paused_at);
	free(st);
	free(job);
}
END_TEST

/* Records the database refuses in many batches (each batch bisected) land
 * nowhere, are reported once each, and every other record lands exactly once
 * with exact counts. The records are big (~450 kB), so that a batch spans
 * several 1 MiB chunks of the file and a checkpoint falls inside a chunk. */
START_TEST(refused_records_in_many_big_batches_are_reported_once)
{
	/* 60 records of ~450 kB, every 7th refused (a number beyond numeric's
	 * range); 8 per batch, so about 3.6 MB (four 1 MiB chunks) a batch. */
	char *job = submit("ndjson",
	                   "convert_to((SELECT string_agg(format('{\"id\":%s,\"pad\":\"%s\"%s}',"
	                   " g, repeat('x', 450000), CASE WHEN g % 7 = 0 THEN ',\"v\":1e1000000'"
	                   " ELSE '' END), chr(10) ORDER BY g) FROM generate_series(1, 60) g)"
	                   " || chr(10), 'UTF8')",
	                   "{\"collection\":\"ahead\",\"batch_size\":8}");

	run_to_end(job, "completed");
	test_db_expectf(conn, "52/52/0",
	                "SELECT count(*) || '/' || count(DISTINCT record_key) || '/' || "
	                "count(*) FILTER (WHERE record_key::int %% 7 = 0) FROM importer.records "
	                "WHERE collection = 'ahead'");
	test_db_expectf(conn, "7,14,21,28,35,42,49,56",
	                "SELECT string_agg(record_index::text, ',' ORDER BY record_index) "
	                "FROM importer.import_errors WHERE job_id = '%s' "
	                "AND message = 'value overflows numeric format'",
	                job);
	test_db_expectf(conn, "8",
	                "SELECT count(*) FROM importer.import_errors WHERE job_id = '%s'", job);
	test_db_expectf(conn, "60/8/52/0/8",
	                "SELECT concat_ws('/', processed_items, failed_items, counts->>'inserted', "
	                "counts->>'updated', counts->>'failed') FROM importer.import_jobs "
	                "WHERE id = '%s'",
	                job);
	free(job);
}
END_TEST

/* Small records, many batches, a refused record in some: the same. */
START_TEST(refused_records_in_many_small_batches_are_reported_once)
{
	char *job = submit("ndjson",
	                   "convert_to((SELECT string_agg(format('{\"id\":%s,\"n\":\"%s\"%s}', g,"
	                   " repeat('y', 40), CASE WHEN g % 997 = 0 THEN ',\"v\":1e1000000'"
	                   " ELSE '' END), chr(10) ORDER BY g) FROM generate_series(1, 30000) g)"
	                   " || chr(10), 'UTF8')",
	                   "{\"collection\":\"small\",\"batch_size\":500}");

	run_to_end(job, "completed");
	test_db_expectf(
	    conn, "29970/29970",
	    "SELECT count(*) || '/' || count(DISTINCT record_key) FROM importer.records "
	    "WHERE collection = 'small'");
	test_db_expectf(conn, "30/30/true",
	                "SELECT count(*) || '/' || count(DISTINCT record_index) || '/' || "
	                "bool_and(record_index %% 997 = 0) FROM importer.import_errors "
	                "WHERE job_id = '%s'",
	                job);
	test_db_expectf(conn, "30000/30/29970/30",
	                "SELECT concat_ws('/', processed_items, failed_items, counts->>'inserted', "
	                "counts->>'failed') FROM importer.import_jobs WHERE id = '%s'",
	                job);
	free(job);
}
END_TEST

/* Submits a 100,000-row csv in batches of 1,000 into collection, starts
 * worker w on it, and returns the job's id once 3,000 rows committed: its
 * next batches are then being written. */
static char *start_big_import(const char *collection, struct test_proc *w)
{
	char options[96], sql[256], *job;

	snprintf(options, sizeof(options), "{\"collection\":\"%s\",\"batch_size\":1000}",
	         collection);
	job = submit("csv", BIG_CSV(100000), options);
	start_worker(w);
	snprintf(sql, sizeof(sql),
	         "SELECT processed_items >= 3000 FROM importer.import_jobs WHERE id = '%s'", job);
	ck_assert(test_db_wait_true(conn, sql, 60000));
	return job;
}

/* A lease that changes hands while a batch is being written (as a rescue and
 * a new claim would make it): the worker commits nothing more into the job. */
START_TEST(a_lease_lost_mid_import_commits_nothing_more)
{
	struct test_proc w;
	char *job = start_big_import("lf", &w), *at;

	/* Waits for the row lock of the batch being written, if any. */
	at = test_db_valuef(conn,
	                    "UPDATE importer.import_jobs SET lease_id = gen_random_uuid() "
	                    "WHERE id = '%s' RETURNING processed_items",
	                    job);
	ck_assert_msg(test_proc_wait_for(&w, "\"event\":\"job.lost\"", 10000), "%s", w.buf);
	ck_assert_int_eq(test_proc_stop(&w, SIGTERM, 10000), 0);
	test_db_expectf(conn, at, "SELECT count(*) FROM importer.records WHERE collection = 'lf'");
	test_db_expectf(conn, at,
	                "SELECT processed_items FROM importer.import_jobs WHERE id = '%s'", job);
	free(at);
	free(job);
}
END_TEST

/* The server loses the job's last batches (as an immediate crash loses
 * batches committed without waiting for their WAL flush) and the worker's
 * connection breaks while it waits between batches. It must take the job up
 * from the checkpoint the database holds, not from its own memory, or the
 * lost records never come back. */
START_TEST(a_connection_broken_between_batches_resumes_from_the_stored_checkpoint)
{
	struct test_proc w;
	const char *argv[] = {IMPORTER_WORKER_BIN, NULL};
	/* Housekeeping on the job connection every 100 ms finds the break
	 * while the worker waits out the 500 ms between batches. */
	const char *env[] = {database_env, "IMPORTER_POLL_INTERVAL_MS=100", NULL};
	char *job, *st, sql[256];

	PQclear(test_db_exec(conn, "UPDATE importer.settings SET value = '500' "
	                           "WHERE key = 'batch_pause_ms' AND user_id IS NULL"));
	job = submit("csv", BIG_CSV(2000), "{\"collection\":\"cb\",\"batch_size\":100}");
	test_proc_start(&w, argv, env);
	snprintf(sql, sizeof(sql),
	         "SELECT processed_items >= 200 FROM importer.import_jobs WHERE id = '%s'", job);
	ck_assert(test_db_wait_true(conn, sql, 30000));
	/* The row lock waits out a batch being written. */
	PQclear(test_db_exec(conn, "BEGIN"));
	test_db_expectf(conn, "processing",
	                "SELECT status FROM importer.import_jobs WHERE id = '%s' FOR UPDATE", job);
	test_db_execf(conn,
	              "UPDATE importer.import_jobs SET checkpoint = NULL, processed_items = 0,"
	              " failed_items = 0, progress = 0, counts = '{}' WHERE id = '%s'",
	              job);
	PQclear(test_db_exec(conn, "DELETE FROM importer.records WHERE collection = 'cb'"));
	PQclear(test_db_exec(conn, "UPDATE importer.settings SET value = '0' "
	                           "WHERE key = 'batch_pause_ms' AND user_id IS NULL"));
	test_db_expectf(conn, "1",
	                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
	                "WHERE application_name = 'importer-worker' AND datname = current_database()");
	PQclear(test_db_exec(conn, "COMMIT"));
	st = wait_status(job, "completed|failed", 60000);
	ck_assert_msg(test_proc_wait_for(&w, "\"event\":\"job.reattached\"", 1000), "%s", w.buf);
	ck_assert_int_eq(test_proc_stop(&w, SIGTERM, 10000), 0);
	ck_assert_str_eq(st, "completed");
	test_db_expectf(conn, "2000/2000",
	                "SELECT count(*) || '/' || count(DISTINCT record_key) FROM importer.records "
	                "WHERE collection = 'cb'");
	test_db_expectf(conn, "2000/0/2000",
	                "SELECT concat_ws('/', processed_items, failed_items, "
	                "counts->>'inserted') FROM importer.import_jobs WHERE id = '%s'",
	                job);
	free(st);
	free(job);
}
END_TEST

START_TEST(three_workers_run_sixty_jobs_of_four_users_once_each_and_fairly)
{
	struct test_proc w[3];

	PQclear(test_db_exec(
	    conn, "UPDATE importer.settings SET value = '1' "
	          "WHERE key = 'max_running_per_user' AND user_id IS NULL; "
	          "SELECT importer.submit_job('csv', convert_to('id,v' || chr(10) || "
	          "(SELECT string_agg(g || ',x', chr(10)) FROM generate_series(1, 300) g), "
	          "'UTF8'), jsonb_build_object('collection', 'fair' || u, 'batch_size', 100, "
	          "'user_id', '00000000-0000-4000-8000-00000000f00' || u)) "
	          "FROM generate_series(1, 4) u, generate_series(1, 15) j"));
	for (int i = 0; i < 3; i++)
		start_worker(&w[i]);
	ck_assert(test_db_wait_true(conn,
	                            "SELECT count(*) FILTER (WHERE status = 'completed') = 60 "
	                            "FROM importer.import_jobs",
	                            120000));
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(test_proc_stop(&w[i], SIGTERM, 10000), 0);
	PQclear(test_db_exec(conn, "UPDATE importer.settings SET value = '2' "
	                           "WHERE key = 'max_running_per_user' AND user_id IS NULL"));
	/* Each job ran once, start to end, on one worker. */
	test_db_expectf(conn, "60",
	                "SELECT count(*) FROM importer.import_logs WHERE event = 'job.started'");
	test_db_expectf(conn, "1200",
	                "SELECT count(*) FROM importer.records WHERE collection LIKE 'fair%%'");
	/* No user ever had two jobs processing at once. */
	test_db_expectf(conn, "0",
	                "SELECT count(*) FROM importer.import_jobs a JOIN importer.import_jobs b "
	                "ON a.user_id = b.user_id AND a.id < b.id "
	                "AND tstzrange(a.started_at, a.completed_at) && "
	                "tstzrange(b.started_at, b.completed_at)");
	/* And the work was spread over the workers. */
	test_db_expectf(conn, "t",
	                "SELECT count(DISTINCT worker_id) > 1 FROM importer.import_jobs");
}
END_TEST

START_TEST(a_cancel_requested_before_sigterm_is_not_lost)
{
	char *job =
	    test_db_valuef(conn,
	                   "SELECT importer.submit_job('csv', %s, "
	                   "'{\"collection\":\"sc\",\"batch_size\":100,\"user_id\":\"" USER "\"}')",
	                   BIG_CSV(20000));
	struct test_proc w;
	char *st;

	start_worker(&w);
	ck_assert_msg(test_proc_wait_for(&w, "\"event\":\"job.claimed\"", 10000), "%s", w.buf);
	/* Frozen mid-job, it is asked to cancel and then to shut down. */
	kill(w.pid, SIGSTOP);
	test_db_execf(conn,
	              "SELECT set_config('importer.user_id', '" USER "', false); "
	              "SELECT importer.cancel_job('%s')",
	              job);
	kill(w.pid, SIGTERM);
	kill(w.pid, SIGCONT);
	ck_assert_int_eq(test_proc_stop(&w, 0, 10000), 0);
	st = wait_status(job, "cancelled|pending|completed", 5000);
	ck_assert_str_eq(st, "cancelled");
	free(st);
	free(job);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_import");
	TCase *tc = tcase_create("db");

	tcase_add_unchecked_fixture(tc, create_database, NULL);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, csv_rfc4180_upsert_lands_every_row_exactly);
	tcase_add_test(tc, bad_records_become_errors_and_good_ones_land);
	tcase_add_test(tc, a_record_the_database_refuses_is_isolated_and_the_rest_land);
	tcase_add_test(tc, upsert_twice_is_deterministic_and_last_record_for_a_key_wins);
	tcase_add_test(tc, upsert_leaves_unchanged_records_as_they_are);
	tcase_add_test(tc, the_fence_and_the_fairness_count_use_their_own_keys);
	tcase_add_test(tc, append_refuses_existing_and_repeated_keys);
	tcase_add_test(tc, replace_swaps_the_collection_and_a_failed_replace_changes_nothing);
	tcase_add_test(tc, dry_run_reports_counts_and_writes_nothing);
	tcase_add_test(tc, ndjson_and_backup_import_by_id);
	tcase_add_test(tc, file_level_problems_fail_the_job_with_a_clear_message);
	tcase_add_test(tc, small_batches_checkpoint_and_sigterm_releases_to_another_worker);
	tcase_add_test(tc, progress_notifications_are_throttled_and_the_end_is_announced);
	tcase_add_test(tc, cancel_stops_a_running_import_quickly_and_keeps_what_committed);
	tcase_add_test(tc, a_killed_worker_loses_its_job_to_rescue_and_nothing_is_doubled);
	tcase_add_test(tc, a_stopped_worker_past_its_lease_is_rescued_and_cannot_commit_when_continued);
	tcase_add_test(tc, pause_then_resume_continues_from_the_checkpoint);
	tcase_add_test(tc, three_workers_run_sixty_jobs_of_four_users_once_each_and_fairly);
	tcase_add_test(tc, a_cancel_requested_before_sigterm_is_not_lost);
	tcase_add_test(tc, refused_records_in_many_big_batches_are_reported_once);
	tcase_add_test(tc, refused_records_in_many_small_batches_are_reported_once);
	tcase_add_test(tc, a_lease_lost_mid_import_commits_nothing_more);
	tcase_add_test(tc, a_connection_broken_between_batches_resumes_from_the_stored_checkpoint);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
