/* check_api.c -- the SQL API: submit forms, options, limits, idempotency, every state x op cell. */
#include <check.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_sql.h"
#include "test_db.h"

#define DB     TEST_DB_NAME
#define USER_A "aaaaaaaa-0000-4000-8000-00000000000a"
#define USER_B "bbbbbbbb-0000-4000-8000-00000000000b"
/* "id\n1\n" */
#define SMALL_CSV "'\\x69640a310a'::bytea"

#define ID_LEN   37
#define MIB      1048576
#define BYTEAOID 17

static PGconn *conn; /* superuser, one per test */

/* Runs sql with one binary bytea parameter ($1) and one optional text parameter
 * ($2). Returns: the result, whatever its status; caller frees. */
static PGresult *exec_bytes(PGconn *c, const char *sql, const char *data, size_t len,
                            const char *text)
{
	const char *vals[] = {data, text};
	const int lens[] = {(int)len, 0};
	const int fmts[] = {1, 0};
	const Oid types[] = {BYTEAOID, 0};

	return PQexecParams(c, sql, text != NULL ? 2 : 1, types, vals, lens, fmts, 0);
}

/* exec_bytes that must succeed with one value, copied into out. */
static void get_value_bytes(char *out, size_t outlen, PGconn *c, const char *sql, const char *data,
                            size_t len, const char *text)
{
	PGresult *res = exec_bytes(c, sql, data, len, text);

	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1, "%s\n-- %s",
	              sql, PQresultErrorMessage(res));
	ck_assert_uint_lt(strlen(PQgetvalue(res, 0, 0)), outlen);
	strcpy(out, PQgetvalue(res, 0, 0));
	PQclear(res);
}

static void expect_error_bytes(PGconn *c, const char *sqlstate, const char *sql, const char *data,
                               size_t len, const char *text)
{
	PGresult *res = exec_bytes(c, sql, data, len, text);
	const char *got = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR && got != NULL &&
	                  strcmp(got, sqlstate) == 0,
	              "%s\n-- expected SQLSTATE %s, got %s: %s", sql, sqlstate,
	              got != NULL ? got : "success", PQresultErrorMessage(res));
	PQclear(res);
}

/* The gateway's identity, session-wide: SET ROLE role and importer.user_id = user. */
static void act_as(PGconn *c, const char *role, const char *user)
{
	test_db_execf(
	    c,
	    "SELECT set_config('role', '%s', false), set_config('importer.user_id', '%s', "
	    "false)",
	    role, user);
}

static void act_as_superuser(PGconn *c)
{
	test_db_execf(c, "RESET ROLE; SELECT set_config('importer.user_id', '', false)");
}

/* A file of len bytes of CSV-looking text, different at every offset. */
static char *make_file(size_t len)
{
	char *buf = malloc(len);
	size_t used = 0;

	ck_assert_ptr_nonnull(buf);
	for (unsigned row = 0; used < len; row++) {
		char line[64];
		int n = snprintf(line, sizeof(line), "%u,name %u,%u\n", row, row * 7919u, row % 97);
		size_t take = len - used < (size_t)n ? len - used : (size_t)n;

		memcpy(buf + used, line, take);
		used += take;
	}
	return buf;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The result of the query sent on c, waiting on its socket until deadline_ms.
 * Returns: the first result (later ones are discarded); caller frees. */
static PGresult *await_result(PGconn *c, long deadline_ms)
{
	PGresult *res, *extra;

	for (;;) {
		ck_assert_msg(PQconsumeInput(c) == 1, "%s", PQerrorMessage(c));
		if (!PQisBusy(c))
			break;
		long left = deadline_ms - now_ms();
		struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};

		ck_assert_msg(left > 0, "no result before the deadline");
		poll(&p, 1, (int)left);
	}
	res = PQgetResult(c);
	while ((extra = PQgetResult(c)) != NULL)
		PQclear(extra);
	return res;
}

/* How a test brings a job into a state: a superuser UPDATE, as the worker would. */
static const struct {
	const char *name;
	const char *set; /* SET list, NULL for a fresh pending job */
} states[] = {
    {"pending", NULL},
    {"processing", "status = 'processing', phase = 'importing', worker_id = 'w-1', "
                   "lease_id = gen_random_uuid(), heartbeat_at = now(), progress = 40, "
                   "processed_items = 10, checkpoint = '{\"chunk\": 0, \"offset\": 123}'"},
    {"paused", "status = 'paused', phase = 'importing', progress = 40, processed_items = 10, "
               "checkpoint = '{\"chunk\": 0, \"offset\": 123}'"},
    {"completed", "status = 'completed', phase = 'done', progress = 100, processed_items = 20, "
                  "total_items = 20, total_is_estimate = false"},
    {"failed", "status = 'failed', phase = 'done', progress = 40, processed_items = 10, "
               "attempts = 3, rescues = 1, error_message = 'boom', "
               "checkpoint = '{\"chunk\": 0, \"offset\": 123}'"},
    {"cancelled", "status = 'cancelled', phase = 'done', progress = 40, processed_items = 10, "
                  "attempts = 1, checkpoint = '{\"chunk\": 0, \"offset\": 123}'"},
};

/* Moves job id into state (not "pending") by a superuser UPDATE. */
static void move_to(const char *id, const char *state)
{
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (strcmp(states[i].name, state) == 0) {
			if (states[i].set != NULL)
				test_db_execf(conn,
				              "UPDATE importer.import_jobs SET %s WHERE id = '%s'",
				              states[i].set, id);
			test_db_expectf(conn, state,
			                "SELECT status FROM importer.import_jobs WHERE id = '%s'",
			                id);
			return;
		}
	ck_abort_msg("unknown state %s", state);
}

/* A csv job submitted by user through the API, then moved into state by a superuser. */
static void new_job(char out[ID_LEN], const char *user, const char *state)
{
	act_as(conn, "importer_api", user);
	test_db_getf(out, ID_LEN, conn,
	             "SELECT importer.submit_job('csv', " SMALL_CSV ", "
	             "'{\"file_name\": \"people.csv\"}')");
	act_as_superuser(conn);
	move_to(out, state);
}

static void set_user_limit(const char *user, int max_active)
{
	test_db_execf(conn,
	              "INSERT INTO importer.settings (key, value, user_id) "
	              "VALUES ('max_active_jobs_per_user', '%d', '%s')",
	              max_active, user);
}

static void create_database(void)
{
	test_db_create(DB);
}

static void setup(void)
{
	conn = test_db_connect(DB);
	test_db_reset(conn);
}

static void teardown(void)
{
	PQfinish(conn);
	conn = NULL;
}

START_TEST(one_call_submit_stores_the_file_in_one_mib_chunks)
{
	const size_t len = 5 * MIB / 2;
	char *file = make_file(len);
	char job[ID_LEN];
	PGresult *res;

	act_as(conn, "importer_api", USER_A);
	get_value_bytes(job, sizeof(job), conn,
	                "SELECT importer.submit_job('csv', $1::bytea, "
	                "'{\"file_name\": \"uploads/people.csv\"}')",
	                file, len, NULL);
	/* The owner sees the new job at once. */
	test_db_expectf(conn, "pending", "SELECT status FROM importer.import_jobs WHERE id = '%s'",
	                job);
	act_as_superuser(conn);

	test_db_expectf(conn, "3 1048576 0 2 2621440",
	                "SELECT count(*) || ' ' || max(octet_length(c.data)) || ' ' || min(c.seq) "
	                "|| ' ' || max(c.seq) || ' ' || sum(octet_length(c.data)) "
	                "FROM importer.import_file_chunks c "
	                "JOIN importer.import_jobs j ON j.file_id = c.file_id WHERE j.id = '%s'",
	                job);
	res = exec_bytes(conn,
	                 "SELECT (SELECT string_agg(c.data, ''::bytea ORDER BY c.seq) "
	                 "FROM importer.import_file_chunks c WHERE c.file_id = j.file_id) = $1, "
	                 "f.size, f.sha256 = sha256($1), f.user_id "
	                 "FROM importer.import_jobs j "
	                 "JOIN importer.import_files f ON f.id = j.file_id WHERE j.id = $2",
	                 file, len, job);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1, "%s",
	              PQresultErrorMessage(res));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "t");
	ck_assert_str_eq(PQgetvalue(res, 0, 1), "2621440");
	ck_assert_str_eq(PQgetvalue(res, 0, 2), "t");
	ck_assert_str_eq(PQgetvalue(res, 0, 3), USER_A);
	PQclear(res);

	test_db_expectf(conn,
	                USER_A " csv uploads/people.csv 2621440 people upsert f pending queued 0 "
	                       "0 3 0 {\"file_name\": \"uploads/people.csv\"}",
	                "SELECT concat_ws(' ', user_id, kind, file_name, file_size, collection, "
	                "import_mode, dry_run, status, phase, progress, attempts, max_attempts, "
	                "priority, payload) FROM importer.import_jobs WHERE id = '%s'",
	                job);
	free(file);
}
END_TEST

START_TEST(chunked_upload_then_submit_creates_a_pending_job)
{
	const size_t len = 5 * MIB / 2;
	char *file = make_file(len);
	char fid[ID_LEN], job[ID_LEN], sql[256];
	PGresult *res;

	act_as(conn, "importer_api", USER_A);
	test_db_getf(fid, sizeof(fid), conn, "SELECT importer.begin_upload('dir/people.v2.csv')");
	snprintf(sql, sizeof(sql), "SELECT importer.append_chunk('%s', $2::int, $1)", fid);
	/* Out of order, and chunk 1 sent twice: the second copy replaces the first. */
	res = exec_bytes(conn, sql, file + 2 * MIB, len - 2 * MIB, "2");
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	res = exec_bytes(conn, sql, "garbage", 7, "1");
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	/* Gaps are refused at submit. */
	test_db_expect_errorf(conn, "22023", "SELECT importer.submit_job('csv', '%s'::uuid)", fid);
	res = exec_bytes(conn, sql, file, MIB, "0");
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	res = exec_bytes(conn, sql, file + MIB, MIB, "1");
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	test_db_expectf(conn, "2621440", "SELECT size FROM importer.import_files WHERE id = '%s'",
	                fid);

	test_db_getf(job, sizeof(job), conn,
	             "SELECT importer.submit_job('csv', '%s'::uuid, '{\"mode\": \"append\", "
	             "\"dry_run\": \"true\", \"key\": \"sku\", \"delimiter\": \";\", "
	             "\"batch_size\": \"500\", \"max_attempts\": 5, \"priority\": -3}')",
	             fid);
	test_db_expectf(conn,
	                USER_A " csv dir/people.v2.csv 2621440 people.v2 append t pending 5 -3",
	                "SELECT concat_ws(' ', user_id, kind, file_name, file_size, collection, "
	                "import_mode, dry_run, status, max_attempts, priority) "
	                "FROM importer.import_jobs WHERE id = '%s' AND file_id = '%s'",
	                job, fid);
	/* payload: the options, normalised to typed values. */
	test_db_expectf(conn, "t",
	                "SELECT payload = '{\"mode\": \"append\", \"dry_run\": true, "
	                "\"key\": \"sku\", "
	                "\"delimiter\": \";\", \"batch_size\": 500, \"max_attempts\": 5, "
	                "\"priority\": -3}'::jsonb FROM importer.import_jobs WHERE id = '%s'",
	                job);
	/* A submitted file is frozen. */
	test_db_expect_errorf(conn, "55000", "SELECT importer.append_chunk('%s', 3, " SMALL_CSV ")",
	                      fid);
	act_as_superuser(conn);

	res = exec_bytes(conn,
	                 "SELECT string_agg(data, ''::bytea ORDER BY seq) = $1, count(*) "
	                 "FROM importer.import_file_chunks WHERE file_id = $2",
	                 file, len, fid);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "t");
	ck_assert_str_eq(PQgetvalue(res, 0, 1), "3");
	PQclear(res);
	free(file);
}
END_TEST

START_TEST(collection_defaults_to_the_file_name_without_extension)
{
	const struct {
		const char *kind;
		const char *options;
		const char *want; /* collection | file_name */
	} cases[] = {
	    {"ndjson", "{\"file_name\": \"events.ndjson\"}", "events|events.ndjson"},
	    {"csv", "{\"file_name\": \"C:\\\\data\\\\people.csv\"}", "people|C:\\data\\people.csv"},
	    {"csv", "{\"file_name\": \"README\"}", "README|README"},
	    {"csv", "{}", "default|"},
	    {"csv", "{\"file_name\": \".csv\"}", "default|.csv"},
	    {"csv", "{\"file_name\": \"x.csv\", \"collection\": \"people\"}", "people|x.csv"},
	    {"backup", "{\"file_name\": \"dump.json\"}", "|dump.json"},
	};
	char job[ID_LEN];

	act_as(conn, "importer_api", USER_A);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		test_db_getf(job, sizeof(job), conn,
		             "SELECT importer.submit_job('%s', " SMALL_CSV ", '%s')", cases[i].kind,
		             cases[i].options);
		test_db_expectf(conn, cases[i].want,
		                "SELECT coalesce(collection, '') || '|' || coalesce(file_name, '') "
		                "FROM importer.import_jobs WHERE id = '%s'",
		                job);
	}
	/* noop needs no file. */
	test_db_getf(job, sizeof(job), conn, "SELECT importer.submit_job('noop', NULL::uuid)");
	test_db_expectf(conn, "noop pending t t upsert f",
	                "SELECT concat_ws(' ', kind, status, file_id IS NULL, collection IS NULL, "
	                "import_mode, dry_run) FROM importer.import_jobs WHERE id = '%s'",
	                job);
}
END_TEST

START_TEST(bad_kind_or_option_is_rejected_with_22023)
{
	const char *const calls[] = {
	    "submit_job('xml', " SMALL_CSV ")",
	    "submit_job('', " SMALL_CSV ")",
	    "submit_job('CSV', " SMALL_CSV ")",
	    "submit_job('csv', " SMALL_CSV ", '{\"colour\": \"red\"}')",
	    "submit_job('csv', " SMALL_CSV ", '{\"user\": \"" USER_B "\"}')",
	    "submit_job('csv', " SMALL_CSV ", '{\"mode\": \"merge\"}')",
	    "submit_job('csv', " SMALL_CSV ", '{\"mode\": 1}')",
	    "submit_job('csv', " SMALL_CSV ", '{\"delimiter\": \";;\"}')",
	    "submit_job('csv', " SMALL_CSV ", '{\"delimiter\": \"\"}')",
	    "submit_job('csv', " SMALL_CSV ", '{\"batch_size\": 0}')",
	    "submit_job('csv', " SMALL_CSV ", '{\"batch_size\": \"0\"}')",
	    "submit_job('csv', " SMALL_CSV ", '{\"batch_size\": 1.5}')",
	    "submit_job('csv', " SMALL_CSV ", '{\"priority\": 1}')",
	    "submit_job('csv', " SMALL_CSV ", '{\"priority\": \"10\"}')",
	    "submit_job('csv', " SMALL_CSV ", '{\"max_attempts\": 0}')",
	    "submit_job('csv', " SMALL_CSV ", '{\"dry_run\": \"maybe\"}')",
	    "submit_job('csv', " SMALL_CSV ", '{\"collection\": \"\"}')",
	    "submit_job('csv', " SMALL_CSV ", '[]')",
	    "submit_job('csv', NULL::uuid)",
	    "submit_job('noop', NULL::uuid, '{\"priority\": 1}')",
	};
	char job[ID_LEN];

	act_as(conn, "importer_api", USER_A);
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++)
		test_db_expect_errorf(conn, "22023", "SELECT importer.%s", calls[i]);
	/* Lowering one's own priority is fine. */
	test_db_getf(job, sizeof(job), conn,
	             "SELECT importer.submit_job('noop', NULL::uuid, '{\"priority\": -5}')");
	test_db_expectf(conn, "-5", "SELECT priority FROM importer.import_jobs WHERE id = '%s'",
	                job);
	act_as_superuser(conn);
	test_db_expectf(conn, "1 0",
	                "SELECT (SELECT count(*) FROM importer.import_jobs) || ' ' || "
	                "(SELECT count(*) FROM importer.import_files)");
}
END_TEST

START_TEST(chunk_over_8_mib_is_rejected_with_22023)
{
	const size_t max = 8 * (size_t)MIB;
	char *big = make_file(max + 1);
	char fid[ID_LEN], sql[128];
	PGresult *res;

	act_as(conn, "importer_api", USER_A);
	test_db_getf(fid, sizeof(fid), conn, "SELECT importer.begin_upload('big.csv')");
	snprintf(sql, sizeof(sql), "SELECT importer.append_chunk('%s', 0, $1)", fid);
	expect_error_bytes(conn, "22023", sql, big, max + 1, NULL);
	res = exec_bytes(conn, sql, big, max, NULL);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	PQclear(res);
	test_db_expectf(conn, "8388608", "SELECT size FROM importer.import_files WHERE id = '%s'",
	                fid);
	free(big);
}
END_TEST

START_TEST(idempotency_key_returns_the_first_job)
{
	const char *submit = "SELECT importer.submit_job('csv', " SMALL_CSV
	                     ", '{\"idempotency_key\": \"k-1\", \"file_name\": \"a.csv\"}')";
	char first[ID_LEN], again[ID_LEN], other[ID_LEN], of_b[ID_LEN];

	act_as(conn, "importer_api", USER_A);
	test_db_getf(first, sizeof(first), conn, "%s", submit);
	test_db_getf(again, sizeof(again), conn, "%s", submit);
	ck_assert_str_eq(again, first);
	/* Even with other options, and even once the user is at their limit. */
	test_db_getf(again, sizeof(again), conn,
	             "SELECT importer.submit_job('noop', NULL::uuid, "
	             "'{\"idempotency_key\": \"k-1\", \"mode\": \"append\"}')");
	ck_assert_str_eq(again, first);
	act_as_superuser(conn);
	set_user_limit(USER_A, 1);
	act_as(conn, "importer_api", USER_A);
	test_db_getf(again, sizeof(again), conn, "%s", submit);
	ck_assert_str_eq(again, first);
	test_db_expect_errorf(conn, "53400",
	                      "SELECT importer.submit_job('csv', " SMALL_CSV ", "
	                      "'{\"idempotency_key\": \"k-2\"}')");
	act_as_superuser(conn);
	test_db_execf(conn, "DELETE FROM importer.settings WHERE user_id IS NOT NULL");
	act_as(conn, "importer_api", USER_A);
	test_db_getf(other, sizeof(other), conn,
	             "SELECT importer.submit_job('csv', " SMALL_CSV ", "
	             "'{\"idempotency_key\": \"k-2\"}')");
	ck_assert_str_ne(other, first);
	/* Keys are per user. */
	act_as(conn, "importer_api", USER_B);
	test_db_getf(of_b, sizeof(of_b), conn, "%s", submit);
	ck_assert_str_ne(of_b, first);
	act_as_superuser(conn);
	test_db_expectf(conn, "3 3",
	                "SELECT (SELECT count(*) FROM importer.import_jobs) || ' ' || "
	                "(SELECT count(*) FROM importer.import_files)");
}
END_TEST

START_TEST(twenty_concurrent_submits_respect_a_limit_of_five)
{
	enum { N = 20 };
	PGconn *cs[N];
	int ok = 0, limited = 0;
	long deadline;

	set_user_limit(USER_A, 5);
	for (int i = 0; i < N; i++) {
		cs[i] = test_db_connect(DB);
		act_as(cs[i], "importer_api", USER_A);
	}
	/* All twenty are in flight before any result is read. */
	for (int i = 0; i < N; i++)
		ck_assert_msg(PQsendQuery(cs[i], "SELECT importer.submit_job('csv', " SMALL_CSV
		                                 ", '{\"file_name\": \"race.csv\"}')") == 1,
		              "%s", PQerrorMessage(cs[i]));
	deadline = now_ms() + 20000;
	for (int i = 0; i < N; i++) {
		PGresult *res = await_result(cs[i], deadline);
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			ok++;
		else if (state != NULL && strcmp(state, "53400") == 0)
			limited++;
		else
			ck_abort_msg("submit %d: %s", i, PQresultErrorMessage(res));
		PQclear(res);
		PQfinish(cs[i]);
	}
	ck_assert_int_eq(ok, 5);
	ck_assert_int_eq(limited, 15);
	test_db_expectf(conn, "5 5",
	                "SELECT (SELECT count(*) FROM importer.import_jobs WHERE user_id = '" USER_A
	                "' AND status IN ('pending', 'processing', 'paused')) || ' ' || "
	                "(SELECT count(*) FROM importer.import_files WHERE user_id = '" USER_A
	                "')");
}
END_TEST

START_TEST(retry_respects_the_active_job_limit)
{
	char pending[ID_LEN], failed[ID_LEN];

	new_job(pending, USER_A, "pending");
	new_job(failed, USER_A, "failed");
	set_user_limit(USER_A, 1);
	act_as(conn, "importer_api", USER_A);
	test_db_expect_errorf(conn, "53400", "SELECT * FROM importer.retry_job('%s')", failed);
	test_db_expect_errorf(conn, "53400", "SELECT * FROM importer.retry_job('%s', true)",
	                      failed);
	/* Another user is not affected by A's limit. */
	act_as_superuser(conn);
	test_db_expectf(conn, "failed", "SELECT status FROM importer.import_jobs WHERE id = '%s'",
	                failed);
	new_job(failed, USER_B, "failed");
	act_as(conn, "importer_api", USER_B);
	test_db_expectf(conn, "pending", "SELECT status FROM importer.retry_job('%s')", failed);
}
END_TEST

/* A submit by user that the active-job limit refuses. */
static void expect_limited(const char *user)
{
	act_as(conn, "importer_api", user);
	test_db_expect_errorf(conn, "53400",
	                      "SELECT importer.submit_job('csv', " SMALL_CSV
	                      ", '{\"file_name\": \"over.csv\"}')");
	act_as_superuser(conn);
}

/* "t" when user's floor is the created_at of job id. */
#define FLOOR_AT(user, id)                                                                     \
	"SELECT f.active_from = j.created_at FROM importer.user_active_floors f, "            \
	"importer.import_jobs j WHERE f.user_id = '" user "' AND j.id = '%s'"

/* The limit counts from the user's floor (sql/0016_held_horizon.sql): the
 * jobs that finished before the oldest active one are skipped; an active
 * job is counted however old it is or becomes active again. */
START_TEST(the_active_count_skips_finished_jobs_but_never_an_active_one)
{
	char a[ID_LEN], b[ID_LEN], c[ID_LEN], d[ID_LEN], e[ID_LEN], f[ID_LEN], old[ID_LEN];

	set_user_limit(USER_A, 3);
	new_job(a, USER_A, "pending");
	new_job(b, USER_A, "pending");
	test_db_execf(conn, "UPDATE importer.import_jobs SET created_at = now() - interval '1 hour' "
	                    "WHERE id = '%s'", b);
	new_job(c, USER_A, "completed"); /* finished at once */
	move_to(a, "completed");
	/* The floor rises to b, the oldest active job, and no further. */
	new_job(d, USER_A, "pending");
	test_db_expectf(conn, "t", FLOOR_AT(USER_A, "%s"), b);
	move_to(b, "completed");
	new_job(e, USER_A, "pending");
	test_db_expectf(conn, "t", FLOOR_AT(USER_A, "%s"), d);

	/* A job from before the floor, retried, lowers it and is counted. */
	new_job(old, USER_A, "failed");
	test_db_execf(conn, "UPDATE importer.import_jobs SET created_at = now() - interval '2 hours' "
	                    "WHERE id = '%s'", old);
	act_as(conn, "importer_api", USER_A);
	test_db_expectf(conn, "pending", "SELECT status FROM importer.retry_job('%s')", old);
	act_as_superuser(conn);
	test_db_expectf(conn, "t", FLOOR_AT(USER_A, "%s"), old);
	expect_limited(USER_A); /* d, e and old */

	/* Paused jobs count whole, below the floor too. */
	move_to(old, "paused");
	move_to(d, "completed");
	new_job(f, USER_A, "pending");
	test_db_expectf(conn, "t", FLOOR_AT(USER_A, "%s"), e);
	expect_limited(USER_A); /* e, f and the paused old */
	/* Resumed, it is below the floor no longer. */
	act_as(conn, "importer_api", USER_A);
	test_db_expectf(conn, "pending", "SELECT status FROM importer.resume_job('%s')", old);
	act_as_superuser(conn);
	test_db_expectf(conn, "t", FLOOR_AT(USER_A, "%s"), old);
	expect_limited(USER_A);
	test_db_expectf(conn, "3",
	                "SELECT count(*) FROM importer.import_jobs WHERE user_id = '" USER_A
	                "' AND status IN ('pending', 'processing', 'paused')");
}
END_TEST

/* A REPEATABLE READ transaction, whose snapshot may predate a floor raised
 * meanwhile, cannot make an older job active below it: it fails to
 * serialize instead. */
START_TEST(an_old_snapshot_cannot_make_a_job_active_below_a_newer_floor)
{
	char a[ID_LEN], b[ID_LEN];
	PGconn *rr = test_db_connect(DB);

	new_job(a, USER_A, "completed");
	test_db_execf(conn, "UPDATE importer.user_active_floors SET active_from = now() - "
	                    "interval '1 hour' WHERE user_id = '" USER_A "'");
	test_db_execf(rr, "BEGIN ISOLATION LEVEL REPEATABLE READ");
	/* its snapshot */
	test_db_expectf(rr, "t", "SELECT count(*) > 0 FROM importer.user_active_floors");
	new_job(b, USER_A, "completed"); /* raises the floor to now() */
	test_db_expect_errorf(rr, "40001",
	                      "INSERT INTO importer.import_jobs (user_id, kind, created_at) "
	                      "VALUES ('" USER_A "', 'noop', now() - interval '30 minutes')");
	test_db_execf(rr, "ROLLBACK");
	PQfinish(rr);
	test_db_expectf(conn, "t",
	                "SELECT active_from > now() - interval '1 minute' FROM "
	                "importer.user_active_floors WHERE user_id = '" USER_A "'");
}
END_TEST

enum op { CANCEL, PAUSE, RESUME, RETRY, RETRY_RESTART, DELETE };

/* SELECT <call>('<job id>'<args>) */
static const struct {
	const char *name;
	const char *call;
	const char *args;
} ops[] = {
    [CANCEL] = {"cancel", "status FROM importer.cancel_job", ""},
    [PAUSE] = {"pause", "status FROM importer.pause_job", ""},
    [RESUME] = {"resume", "status FROM importer.resume_job", ""},
    [RETRY] = {"retry", "status FROM importer.retry_job", ", false"},
    [RETRY_RESTART] = {"retry(restart)", "status FROM importer.retry_job", ", true"},
    [DELETE] = {"delete", "importer.delete_job", ""},
};

/* DESIGN.md's state x operation table. want: "55000" (refused, row untouched),
 * "=" (no-op: row untouched, not even re-stamped), "gone", or the new status. */
static const struct cell {
	const char *state;
	enum op op;
	const char *want;
	bool cancel_requested;
	bool pause_requested;
} cells[] = {
    {"pending", CANCEL, "cancelled", false, false},
    {"pending", PAUSE, "paused", false, false},
    {"pending", RESUME, "=", false, false},
    {"pending", RETRY, "55000", false, false},
    {"pending", RETRY_RESTART, "55000", false, false},
    {"pending", DELETE, "55000", false, false},
    {"processing", CANCEL, "processing", true, false},
    {"processing", PAUSE, "processing", false, true},
    {"processing", RESUME, "=", false, false},
    {"processing", RETRY, "55000", false, false},
    {"processing", RETRY_RESTART, "55000", false, false},
    {"processing", DELETE, "55000", false, false},
    {"paused", CANCEL, "cancelled", false, false},
    {"paused", PAUSE, "=", false, false},
    {"paused", RESUME, "pending", false, false},
    {"paused", RETRY, "55000", false, false},
    {"paused", RETRY_RESTART, "55000", false, false},
    {"paused", DELETE, "55000", false, false},
    {"completed", CANCEL, "55000", false, false},
    {"completed", PAUSE, "55000", false, false},
    {"completed", RESUME, "55000", false, false},
    {"completed", RETRY, "55000", false, false},
    {"completed", RETRY_RESTART, "55000", false, false},
    {"completed", DELETE, "gone", false, false},
    {"failed", CANCEL, "55000", false, false},
    {"failed", PAUSE, "55000", false, false},
    {"failed", RESUME, "55000", false, false},
    {"failed", RETRY, "pending", false, false},
    {"failed", RETRY_RESTART, "pending", false, false},
    {"failed", DELETE, "gone", false, false},
    {"cancelled", CANCEL, "55000", false, false},
    {"cancelled", PAUSE, "55000", false, false},
    {"cancelled", RESUME, "55000", false, false},
    {"cancelled", RETRY, "pending", false, false},
    {"cancelled", RETRY_RESTART, "pending", false, false},
    {"cancelled", DELETE, "gone", false, false},
};

#define N_CELLS (int)(sizeof(cells) / sizeof(cells[0]))

#define ROW_SQL "SELECT t::text FROM importer.import_jobs t WHERE id = '%s'"

START_TEST(every_state_and_operation_behaves_as_designed)
{
	const struct cell *cell = &cells[_i];
	char job[ID_LEN], sql[256], before[4096], after[4096], label[64];
	PGresult *res;
	const char *state;

	snprintf(label, sizeof(label), "%s %s", cell->state, ops[cell->op].name);
	new_job(job, USER_A, cell->state);
	/* History the ops must keep or drop: one log line and one record error. */
	test_db_execf(conn,
	              "INSERT INTO importer.import_logs (job_id, event, message) "
	              "VALUES ('%s', 'test.line', 'hello'); "
	              "INSERT INTO importer.import_errors (job_id, record_index, message) "
	              "VALUES ('%s', 1, 'bad row')",
	              job, job);
	test_db_getf(before, sizeof(before), conn, ROW_SQL, job);

	act_as(conn, "importer_api", USER_A);
	snprintf(sql, sizeof(sql), "SELECT %s('%s'%s)", ops[cell->op].call, job,
	         ops[cell->op].args);
	res = PQexec(conn, sql);
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (strcmp(cell->want, "55000") == 0) {
		ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR && state != NULL &&
		                  strcmp(state, "55000") == 0,
		              "%s: expected 55000, got %s", label,
		              PQresultStatus(res) == PGRES_FATAL_ERROR ? PQresultErrorMessage(res)
		                                                       : "success");
	} else {
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", label,
		              PQresultErrorMessage(res));
		if (cell->op != DELETE)
			ck_assert_msg(strcmp(PQgetvalue(res, 0, 0),
			                     cell->want[0] == '=' ? cell->state : cell->want) == 0,
			              "%s: the op returned status %s", label,
			              PQgetvalue(res, 0, 0));
	}
	PQclear(res);
	act_as_superuser(conn);

	if (strcmp(cell->want, "55000") == 0 || strcmp(cell->want, "=") == 0) {
		test_db_getf(after, sizeof(after), conn, ROW_SQL, job);
		ck_assert_msg(strcmp(before, after) == 0, "%s changed the row:\n%s\n%s", label,
		              before, after);
		return;
	}
	if (strcmp(cell->want, "gone") == 0) {
		test_db_expectf(
		    conn, "0 0 0",
		    "SELECT (SELECT count(*) FROM importer.import_jobs WHERE id = '%s') "
		    "|| ' ' || (SELECT count(*) FROM importer.import_logs "
		    "WHERE job_id = '%s') "
		    "|| ' ' || (SELECT count(*) FROM importer.import_errors "
		    "WHERE job_id = '%s')",
		    job, job, job);
		return;
	}
	snprintf(sql, sizeof(sql), "%s %s %s", cell->want, cell->cancel_requested ? "t" : "f",
	         cell->pause_requested ? "t" : "f");
	test_db_expectf(conn, sql,
	                "SELECT concat_ws(' ', status, cancel_requested, pause_requested) "
	                "FROM importer.import_jobs WHERE id = '%s'",
	                job);
	if (strcmp(cell->want, "cancelled") == 0)
		test_db_expectf(conn, "t done",
		                "SELECT concat_ws(' ', completed_at <= now(), phase) "
		                "FROM importer.import_jobs WHERE id = '%s'",
		                job);
	if (strcmp(cell->want, "paused") == 0 || strcmp(cell->want, "processing") == 0)
		test_db_expectf(conn, "t",
		                "SELECT completed_at IS NULL FROM importer.import_jobs "
		                "WHERE id = '%s'",
		                job);
	if (strcmp(cell->want, "pending") == 0)
		test_db_expectf(conn, "queued t t t t",
		                "SELECT concat_ws(' ', phase, completed_at IS NULL, "
		                "error_message IS NULL, run_after <= now(), worker_id IS NULL) "
		                "FROM importer.import_jobs WHERE id = '%s'",
		                job);
	if (cell->op == RETRY)
		/* From the checkpoint: progress, counters and record errors stay. */
		test_db_expectf(
		    conn, "0 0 {\"chunk\": 0, \"offset\": 123} 40 10 1 1",
		    "SELECT concat_ws(' ', attempts, rescues, checkpoint, progress, "
		    "processed_items, (SELECT count(*) FROM importer.import_errors e "
		    "WHERE e.job_id = j.id), (SELECT count(*) FROM importer.import_logs l "
		    "WHERE l.job_id = j.id AND l.event = 'test.line')) "
		    "FROM importer.import_jobs j WHERE id = '%s'",
		    job);
	if (cell->op == RETRY_RESTART)
		/* From zero: checkpoint, progress, counters and errors go; logs stay. */
		test_db_expectf(
		    conn, "0 0 t 0 0 0 1",
		    "SELECT concat_ws(' ', attempts, rescues, checkpoint IS NULL, "
		    "progress, processed_items, "
		    "(SELECT count(*) FROM importer.import_errors e "
		    "WHERE e.job_id = j.id), (SELECT count(*) FROM importer.import_logs l "
		    "WHERE l.job_id = j.id AND l.event = 'test.line')) "
		    "FROM importer.import_jobs j WHERE id = '%s'",
		    job);
	/* The transition is in the job's log. */
	if (strcmp(cell->want, "pending") == 0)
		test_db_expectf(conn,
		                cell->op == RESUME        ? "job.resumed:resumed by its owner; waiting for a worker"
		                : cell->op == RETRY_RESTART ? "job.retried:retried from the beginning"
		                                            : "job.retried:retried from its checkpoint",
		                "SELECT string_agg(event || ':' || message, ',') FROM importer.import_logs "
		                "WHERE job_id = '%s' AND event LIKE 'job.%%'",
		                job);
}
END_TEST

/* Runs one of the gateway's statements (api_sql.h) with text parameters. */
static PGresult *exec_api(const char *sql, int n, const char *const *params)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);

	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s\n-- %s", sql,
	              PQresultErrorMessage(res));
	return res;
}

/* The SSE reads run through PL/pgSQL functions (sql/0012) whose job JSON must
 * be the one every other route sends, in every state, and whose log lines
 * must be those of GET /api/jobs/{id}/logs; row-level security applies. */
START_TEST(sse_reads_match_the_routes_and_respect_rls)
{
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		char id[ID_LEN], ids[ID_LEN + 2];
		const char *one[] = {id};
		const char *arr[] = {ids};
		const char *logs[] = {id, "0", "500"};
		PGresult *want, *got;

		new_job(id, USER_A, states[i].name);
		test_db_execf(conn,
		              "UPDATE importer.import_jobs SET error_details = '{\"row\": 3}', "
		              "current_step = 'step', eta_seconds = 7 WHERE id = '%s'", id);
		test_db_execf(conn,
		              "INSERT INTO importer.import_logs (job_id, user_id, level, event, message, "
		              "details) SELECT id, user_id, l, 'e.' || l, 'line ' || l, "
		              "jsonb_build_object('l', l) FROM importer.import_jobs, "
		              "unnest(ARRAY['info', 'warn', 'error']) l WHERE id = '%s'", id);
		snprintf(ids, sizeof(ids), "{%s}", id);
		PQclear(test_db_exec(conn, "SET TimeZone = 'UTC'"));
		act_as(conn, "importer_api", USER_A);

		want = exec_api(SQL_JOB_GET, 1, one);
		got = exec_api(SQL_SSE_JOBS, 1, arr);
		ck_assert_int_eq(PQntuples(want), 1);
		ck_assert_int_eq(PQntuples(got), 1);
		for (int c = 0; c < 3; c++) /* job JSON, seq, status */
			ck_assert_str_eq(PQgetvalue(got, 0, c), PQgetvalue(want, 0, c));
		ck_assert_str_eq(PQgetvalue(got, 0, 3), id);
		PQclear(want);
		PQclear(got);

		want = exec_api(SQL_JOB_LOGS, 3, logs);
		got = exec_api(SQL_SSE_LOGS, 2, logs);
		ck_assert_int_ge(PQntuples(got), 3); /* and lifecycle lines */
		ck_assert_int_eq(PQntuples(want), PQntuples(got));
		for (int r = 0; r < PQntuples(got); r++) {
			ck_assert_str_eq(PQgetvalue(got, r, 0), PQgetvalue(want, r, 1));
			ck_assert_str_eq(PQgetvalue(got, r, 1), PQgetvalue(want, r, 2));
		}
		PQclear(want);
		PQclear(got);

		/* Another user sees neither the job nor its lines. */
		act_as(conn, "importer_api", USER_B);
		got = exec_api(SQL_SSE_JOBS, 1, arr);
		ck_assert_int_eq(PQntuples(got), 0);
		PQclear(got);
		got = exec_api(SQL_SSE_LOGS, 2, logs);
		ck_assert_int_eq(PQntuples(got), 0);
		PQclear(got);
		act_as_superuser(conn);
	}
}
END_TEST

START_TEST(clear_jobs_deletes_only_the_callers_finished_jobs)
{
	const char *const mine[] = {"completed", "completed", "failed",
	                            "cancelled", "pending",   "processing"};
	char job[ID_LEN];

	for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++)
		new_job(job, USER_A, mine[i]);
	new_job(job, USER_B, "completed");
	new_job(job, USER_B, "failed");

	act_as(conn, "importer_api", USER_A);
	test_db_expect_errorf(conn, "22023", "SELECT importer.clear_jobs('pending')");
	test_db_expect_errorf(conn, "22023", "SELECT importer.clear_jobs('processing')");
	test_db_expect_errorf(conn, "22023", "SELECT importer.clear_jobs('paused')");
	test_db_expect_errorf(conn, "22023", "SELECT importer.clear_jobs('bogus')");
	test_db_expectf(conn, "1", "SELECT importer.clear_jobs('failed')");
	test_db_expectf(conn, "cancelled completed completed pending processing",
	                "SELECT string_agg(status, ' ' ORDER BY status) FROM importer.import_jobs");
	test_db_expectf(conn, "3", "SELECT importer.clear_jobs()");
	test_db_expectf(conn, "pending processing",
	                "SELECT string_agg(status, ' ' ORDER BY status) FROM importer.import_jobs");
	test_db_expectf(conn, "0", "SELECT importer.clear_jobs()");
	test_db_expectf(conn, "0", "SELECT importer.clear_jobs('completed')");
	act_as_superuser(conn);
	test_db_expectf(conn, "completed failed",
	                "SELECT string_agg(status, ' ' ORDER BY status) FROM importer.import_jobs "
	                "WHERE user_id = '" USER_B "'");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("db");

	tcase_add_unchecked_fixture(tc, create_database, NULL);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, one_call_submit_stores_the_file_in_one_mib_chunks);
	tcase_add_test(tc, chunked_upload_then_submit_creates_a_pending_job);
	tcase_add_test(tc, collection_defaults_to_the_file_name_without_extension);
	tcase_add_test(tc, bad_kind_or_option_is_rejected_with_22023);
	tcase_add_test(tc, chunk_over_8_mib_is_rejected_with_22023);
	tcase_add_test(tc, idempotency_key_returns_the_first_job);
	tcase_add_test(tc, twenty_concurrent_submits_respect_a_limit_of_five);
	tcase_add_test(tc, retry_respects_the_active_job_limit);
	tcase_add_test(tc, the_active_count_skips_finished_jobs_but_never_an_active_one);
	tcase_add_test(tc, an_old_snapshot_cannot_make_a_job_active_below_a_newer_floor);
	tcase_add_loop_test(tc, every_state_and_operation_behaves_as_designed, 0, N_CELLS);
	tcase_add_test(tc, clear_jobs_deletes_only_the_callers_finished_jobs);
	tcase_add_test(tc, sse_reads_match_the_routes_and_respect_rls);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
