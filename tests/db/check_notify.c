/* check_notify.c -- NOTIFY: what workers and browsers hear after each change, and when nothing. */
#include <check.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_db.h"

#define DB     TEST_DB_NAME
#define USER_A "aaaaaaaa-0000-4000-8000-00000000000a"
/* "id\n1\n" */
#define SMALL_CSV "'\\x69640a310a'::bytea"

#define ID_LEN    37
#define MAX_NOTES 32

static PGconn *conn;     /* superuser: the operator, or the worker */
static PGconn *listener; /* LISTENs on every channel, like the worker and gateway together */
static int markers;

/* The notifications one step caused, in arrival order. */
struct notes {
	int n;
	struct {
		char channel[64];
		char payload[512];
	} v[MAX_NOTES];
};

/* One importer_events payload. */
struct event {
	char t[8];
	char job_id[ID_LEN];
	char user_id[ID_LEN];
	long long seq;
};

/* The single value of a query, as an integer. */
__attribute__((format(printf, 2, 3))) static long long get_int(PGconn *c, const char *fmt, ...)
{
	char sql[4096];
	char *v;
	long long n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	v = test_db_value(c, sql);
	n = atoll(v);
	free(v);
	return n;
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

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Everything the listener hears up to a marker that sender (idle, outside a
 * transaction) notifies now. Notifications reach a listener in commit order,
 * so out holds exactly what was committed since the previous collect(). */
static void collect(PGconn *sender, struct notes *out)
{
	char marker[32];
	long deadline = now_ms() + 10000;

	snprintf(marker, sizeof(marker), "m%d", ++markers);
	test_db_execf(sender, "NOTIFY test_marker, '%s'", marker);
	out->n = 0;
	for (;;) {
		PGnotify *n;
		struct pollfd p = {.fd = PQsocket(listener), .events = POLLIN};
		long left;

		ck_assert_msg(PQconsumeInput(listener) == 1, "%s", PQerrorMessage(listener));
		while ((n = PQnotifies(listener)) != NULL) {
			if (strcmp(n->relname, "test_marker") == 0 &&
			    strcmp(n->extra, marker) == 0) {
				PQfreemem(n);
				return;
			}
			ck_assert_int_lt(out->n, MAX_NOTES);
			snprintf(out->v[out->n].channel, sizeof(out->v[0].channel), "%s",
			         n->relname);
			snprintf(out->v[out->n].payload, sizeof(out->v[0].payload), "%s", n->extra);
			out->n++;
			PQfreemem(n);
		}
		left = deadline - now_ms();
		ck_assert_msg(left > 0, "marker %s not received in 10 s", marker);
		poll(&p, 1, (int)left);
	}
}

/* How many notifications on channel ns holds. */
static int count_on(const struct notes *ns, const char *channel)
{
	int k = 0;

	for (int i = 0; i < ns->n; i++)
		k += strcmp(ns->v[i].channel, channel) == 0;
	return k;
}

/* The payload of the nth (0-based) notification on channel; aborts if absent. */
static const char *payload_on(const struct notes *ns, const char *channel, int nth)
{
	for (int i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i].channel, channel) == 0 && nth-- == 0)
			return ns->v[i].payload;
	ck_abort_msg("no notification #%d on %s among %d", nth, channel, ns->n);
	return NULL;
}

/* Parses an importer_events payload: exactly {"t","job_id","user_id","seq"}. */
static void parse_event(const char *payload, struct event *ev)
{
	json_object *o = json_tokener_parse(payload);
	json_object *t, *job, *user, *seq;

	ck_assert_msg(o != NULL && json_object_is_type(o, json_type_object), "not an object: %s",
	              payload);
	ck_assert_msg(json_object_object_length(o) == 4, "expected 4 keys: %s", payload);
	ck_assert_msg(json_object_object_get_ex(o, "t", &t) &&
	                  json_object_is_type(t, json_type_string) &&
	                  json_object_object_get_ex(o, "job_id", &job) &&
	                  json_object_is_type(job, json_type_string) &&
	                  json_object_object_get_ex(o, "user_id", &user) &&
	                  json_object_is_type(user, json_type_string) &&
	                  json_object_object_get_ex(o, "seq", &seq) &&
	                  json_object_is_type(seq, json_type_int),
	              "bad event: %s", payload);
	snprintf(ev->t, sizeof(ev->t), "%s", json_object_get_string(t));
	snprintf(ev->job_id, sizeof(ev->job_id), "%s", json_object_get_string(job));
	snprintf(ev->user_id, sizeof(ev->user_id), "%s", json_object_get_string(user));
	ev->seq = json_object_get_int64(seq);
	json_object_put(o);
}

/* The one importer_events notification in ns, which must be of kind t about job. */
static long long the_event(const struct notes *ns, const char *t, const char *job)
{
	struct event ev;

	ck_assert_int_eq(count_on(ns, "importer_events"), 1);
	parse_event(payload_on(ns, "importer_events", 0), &ev);
	ck_assert_str_eq(ev.t, t);
	ck_assert_str_eq(ev.job_id, job);
	ck_assert_str_eq(ev.user_id, USER_A);
	ck_assert_int_gt(ev.seq, 0);
	return ev.seq;
}

/* A job of user A's submitted through the API; what it sent is collected away. */
static void new_job(char out[ID_LEN], const char *kind)
{
	struct notes ns;

	act_as(conn, "importer_api", USER_A);
	if (strcmp(kind, "noop") == 0)
		test_db_getf(out, ID_LEN, conn, "SELECT importer.submit_job('noop', NULL::uuid)");
	else
		test_db_getf(out, ID_LEN, conn, "SELECT importer.submit_job('%s', " SMALL_CSV ")",
		             kind);
	act_as_superuser(conn);
	collect(conn, &ns);
}

static long long row_seq(const char *job)
{
	return get_int(conn, "SELECT seq FROM importer.import_jobs WHERE id = '%s'", job);
}

static void create_database(void)
{
	test_db_create(DB);
}

static void setup(void)
{
	struct notes ns;

	conn = test_db_connect(DB);
	test_db_reset(conn);
	listener = test_db_connect(DB);
	test_db_execf(listener,
	              "LISTEN importer_jobs; LISTEN importer_control; LISTEN importer_events; "
	              "LISTEN importer_notifications; LISTEN test_marker");
	collect(conn, &ns);
}

static void teardown(void)
{
	PQfinish(listener);
	PQfinish(conn);
	listener = conn = NULL;
}

START_TEST(submit_wakes_workers_and_browsers_once_it_commits)
{
	PGconn *gw = test_db_connect(DB);
	struct notes ns;
	char job[ID_LEN];
	const char *wake;

	test_db_execf(gw, "BEGIN");
	test_db_execf(gw, "SELECT set_config('role', 'importer_api', true), "
	                  "set_config('importer.user_id', '" USER_A "', true)");
	test_db_getf(job, sizeof(job), gw, "SELECT importer.submit_job('csv', " SMALL_CSV ")");
	/* Not committed yet: nobody hears of it. */
	collect(conn, &ns);
	ck_assert_int_eq(ns.n, 0);
	test_db_execf(gw, "COMMIT");
	collect(conn, &ns);
	ck_assert_int_eq(count_on(&ns, "importer_jobs"), 1);
	wake = payload_on(&ns, "importer_jobs", 0);
	ck_assert_msg(wake[0] == '\0' || strspn(wake, "0123456789") == strlen(wake),
	              "importer_jobs payload must be empty or a count: %s", wake);
	ck_assert_int_eq(the_event(&ns, "job", job), row_seq(job));
	ck_assert_int_eq(ns.n, 2);
	PQfinish(gw);
}
END_TEST

START_TEST(cancel_and_pause_reach_the_running_worker_on_importer_control)
{
	char running[ID_LEN], other[ID_LEN], queued[ID_LEN];
	struct notes ns;

	new_job(running, "noop");
	new_job(other, "noop");
	new_job(queued, "noop");
	test_db_execf(conn,
	              "UPDATE importer.import_jobs SET status = 'processing', worker_id = 'w-1', "
	              "lease_id = gen_random_uuid(), heartbeat_at = now() "
	              "WHERE id IN ('%s', '%s')",
	              running, other);
	collect(conn, &ns);
	ck_assert_int_eq(count_on(&ns, "importer_control"), 0);

	act_as(conn, "importer_api", USER_A);
	test_db_execf(conn, "SELECT importer.cancel_job('%s')", running);
	collect(conn, &ns);
	ck_assert_int_eq(count_on(&ns, "importer_control"), 1);
	ck_assert_str_eq(payload_on(&ns, "importer_control", 0), running);
	ck_assert_int_eq(the_event(&ns, "job", running), row_seq(running));

	test_db_execf(conn, "SELECT importer.pause_job('%s')", other);
	collect(conn, &ns);
	ck_assert_int_eq(count_on(&ns, "importer_control"), 1);
	ck_assert_str_eq(payload_on(&ns, "importer_control", 0), other);
	ck_assert_int_eq(the_event(&ns, "job", other), row_seq(other));

	/* Asking again changes nothing and says nothing. */
	test_db_execf(conn, "SELECT importer.cancel_job('%s')", running);
	test_db_execf(conn, "SELECT importer.pause_job('%s')", other);
	collect(conn, &ns);
	ck_assert_int_eq(ns.n, 0);

	/* A queued job is cancelled on the spot: browsers hear it, no worker needs to. */
	test_db_execf(conn, "SELECT importer.cancel_job('%s')", queued);
	collect(conn, &ns);
	ck_assert_int_eq(count_on(&ns, "importer_control"), 0);
	ck_assert_int_eq(the_event(&ns, "job", queued), row_seq(queued));
}
END_TEST

START_TEST(operator_update_streams_job_events_with_increasing_seq)
{
	const char *const steps[] = {
	    "status = 'processing', worker_id = 'w-1', heartbeat_at = now()",
	    "progress = 50, processed_items = 10, heartbeat_at = now()",
	    "current_step = 'importing rows'",
	    "status = 'failed', error_message = 'operator says no'",
	};
	char job[ID_LEN];
	struct notes ns;
	long long last = 0, seq;

	new_job(job, "csv");
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		test_db_execf(conn, "UPDATE importer.import_jobs SET %s WHERE id = '%s'", steps[i],
		              job);
		collect(conn, &ns);
		if (i == 0) {
			/* Taking the job is logged too (job.claimed): a log event
			 * follows the job event, with a later seq. */
			struct event ev;

			ck_assert_int_eq(count_on(&ns, "importer_events"), 2);
			parse_event(payload_on(&ns, "importer_events", 0), &ev);
			ck_assert_str_eq(ev.t, "job");
			seq = ev.seq;
			parse_event(payload_on(&ns, "importer_events", 1), &ev);
			ck_assert_str_eq(ev.t, "log");
			ck_assert_int_gt(ev.seq, seq);
		} else {
			seq = the_event(&ns, "job", job);
		}
		ck_assert_int_eq(seq, row_seq(job));
		ck_assert_msg(seq > last, "step %zu: seq %lld after %lld", i, seq, last);
		last = seq;
	}
	/* The failure also went to the owner's outbox. */
	ck_assert_int_eq(count_on(&ns, "importer_notifications"), 1);
	ck_assert_msg(strstr(payload_on(&ns, "importer_notifications", 0), "job.failed") != NULL,
	              "%s", payload_on(&ns, "importer_notifications", 0));
}
END_TEST

START_TEST(log_lines_stream_as_log_events)
{
	char job[ID_LEN];
	struct notes ns;
	long long id, job_seq, seq;
	struct event ev;

	new_job(job, "csv");
	job_seq = row_seq(job);
	id = get_int(conn,
	             "INSERT INTO importer.import_logs (job_id, event, message) "
	             "VALUES ('%s', 'batch.done', 'rows 1-10') RETURNING id",
	             job);
	collect(conn, &ns);
	ck_assert_int_eq(the_event(&ns, "log", job), id);
	ck_assert_int_gt(id, job_seq);
	ck_assert_int_eq(ns.n, 1);

	/* Several lines in one statement: events up to the newest line. */
	id = get_int(conn,
	             "WITH l AS (INSERT INTO importer.import_logs (job_id, event, message) "
	             "SELECT '%s', 'batch.done', 'line ' || g FROM generate_series(1, 3) g "
	             "RETURNING id) SELECT max(id) FROM l",
	             job);
	collect(conn, &ns);
	ck_assert_int_ge(count_on(&ns, "importer_events"), 1);
	seq = 0;
	for (int i = 0; i < count_on(&ns, "importer_events"); i++) {
		parse_event(payload_on(&ns, "importer_events", i), &ev);
		ck_assert_str_eq(ev.t, "log");
		ck_assert_str_eq(ev.job_id, job);
		ck_assert_int_gt(ev.seq, seq);
		seq = ev.seq;
	}
	ck_assert_int_eq(seq, id);
}
END_TEST

START_TEST(deleting_a_job_streams_a_job_event)
{
	char job[ID_LEN];
	struct notes ns;
	long long before;

	new_job(job, "csv");
	test_db_execf(conn, "UPDATE importer.import_jobs SET status = 'failed' WHERE id = '%s'",
	              job);
	before = row_seq(job);
	collect(conn, &ns);
	act_as(conn, "importer_api", USER_A);
	test_db_execf(conn, "SELECT importer.delete_job('%s')", job);
	act_as_superuser(conn);
	collect(conn, &ns);
	ck_assert_int_gt(the_event(&ns, "job", job), before);
}
END_TEST

START_TEST(heartbeat_only_update_is_silent)
{
	char job[ID_LEN];
	struct notes ns;
	long long before, seq;

	new_job(job, "csv");
	test_db_execf(conn,
	              "UPDATE importer.import_jobs SET status = 'processing', worker_id = 'w-1', "
	              "lease_id = gen_random_uuid(), heartbeat_at = now() WHERE id = '%s'",
	              job);
	collect(conn, &ns);
	before = row_seq(job);

	test_db_execf(conn,
	              "UPDATE importer.import_jobs SET heartbeat_at = now() + interval '1 s' "
	              "WHERE id = '%s'",
	              job);
	test_db_execf(conn,
	              "UPDATE importer.import_jobs SET heartbeat_at = now() + interval '2 s' "
	              "WHERE id = '%s'",
	              job);
	/* Then a change a browser must see: it is the first thing heard. */
	test_db_execf(conn,
	              "UPDATE importer.import_jobs SET heartbeat_at = now(), progress = 10 "
	              "WHERE id = '%s'",
	              job);
	collect(conn, &ns);
	ck_assert_int_eq(ns.n, 1);
	seq = the_event(&ns, "job", job);
	ck_assert_int_eq(seq, row_seq(job));
	ck_assert_int_gt(seq, before);

	/* Nothing at all for a heartbeat on its own, and seq stays. */
	test_db_execf(conn,
	              "UPDATE importer.import_jobs SET heartbeat_at = now() + interval '3 s' "
	              "WHERE id = '%s'",
	              job);
	collect(conn, &ns);
	ck_assert_int_eq(ns.n, 0);
	ck_assert_int_eq(row_seq(job), seq);
}
END_TEST

/* Runs "UPDATE ... SET <set>" on job; returns whether it stamped a new seq
 * (and then that its one importer_events notification carries it). */
static bool update_stamps(const char *job, const char *set)
{
	struct notes ns;
	long long before = row_seq(job), after;

	test_db_execf(conn, "UPDATE importer.import_jobs SET %s WHERE id = '%s'", set, job);
	collect(conn, &ns);
	after = row_seq(job);
	if (after == before) {
		ck_assert_int_eq(ns.n, 0);
		return false;
	}
	ck_assert_int_eq(ns.n, 1);
	ck_assert_int_eq(the_event(&ns, "job", job), after);
	return true;
}

/* The stamp trigger compares row values: a column set to what it already
 * holds (NULLs and jsonb by value) is no change; any other column is. */
START_TEST(only_a_changed_value_stamps_seq)
{
	char job[ID_LEN];
	struct notes ns;

	new_job(job, "csv");
	collect(conn, &ns);
	ck_assert(!update_stamps(job,
	                         "heartbeat_at = now(), status = status, error_message = NULL, "
	                         "counts = counts::text::jsonb, checkpoint = checkpoint"));
	/* A jsonb document written with its keys in another order is the same value. */
	ck_assert(update_stamps(job, "payload = '{\"b\":1,\"a\":2}'"));
	ck_assert(!update_stamps(job, "payload = '{\"a\":2,\"b\":1}'"));
	/* NULL to a value, and a value inside a jsonb document, are changes. */
	ck_assert(update_stamps(job, "current_step = 'x'"));
	ck_assert(update_stamps(job, "payload = '{\"a\":2,\"b\":3}'"));
}
END_TEST

START_TEST(rolled_back_changes_are_silent)
{
	char job[ID_LEN];
	struct notes ns;

	new_job(job, "csv");
	test_db_execf(conn, "BEGIN");
	test_db_execf(conn, "UPDATE importer.import_jobs SET status = 'failed' WHERE id = '%s'",
	              job);
	test_db_execf(conn,
	              "INSERT INTO importer.import_logs (job_id, event, message) "
	              "VALUES ('%s', 'x', 'y')",
	              job);
	test_db_execf(conn, "SELECT importer.submit_job('noop', NULL::uuid, "
	                    "'{\"user_id\": \"" USER_A "\"}')");
	test_db_execf(conn, "SELECT set_config('importer.user_id', '" USER_A "', true)");
	test_db_execf(conn, "SELECT importer.cancel_job(importer.submit_job('noop', NULL::uuid))");
	test_db_execf(conn, "ROLLBACK");
	collect(conn, &ns);
	ck_assert_int_eq(ns.n, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("notify");
	TCase *tc = tcase_create("db");

	tcase_add_unchecked_fixture(tc, create_database, NULL);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, submit_wakes_workers_and_browsers_once_it_commits);
	tcase_add_test(tc, cancel_and_pause_reach_the_running_worker_on_importer_control);
	tcase_add_test(tc, operator_update_streams_job_events_with_increasing_seq);
	tcase_add_test(tc, log_lines_stream_as_log_events);
	tcase_add_test(tc, deleting_a_job_streams_a_job_event);
	tcase_add_test(tc, heartbeat_only_update_is_silent);
	tcase_add_test(tc, only_a_changed_value_stamps_seq);
	tcase_add_test(tc, rolled_back_changes_are_silent);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
