/* check_worker_metrics.c -- a real worker serves Prometheus text on IMPORTER_METRICS_ADDR. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "test_db.h"
#include "test_suite.h"

#define DB     TEST_DB_NAME
#define USER_A "00000000-0000-4000-8000-0000000000a1"
#define USER_C "00000000-0000-4000-8000-0000000000c1" /* may run nothing: stays pending */

static char database_env[4200];

static void create_database(void)
{
	test_db_create_env(DB, database_env, sizeof(database_env));
}

static PGconn *conn;

static void setup(void)
{
	conn = test_db_connect(DB);
	PQclear(
	    test_db_exec(conn, "TRUNCATE importer.import_jobs CASCADE; LISTEN importer_events"));
}

static void teardown(void)
{
	PQfinish(conn);
	conn = NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* GET path from 127.0.0.1:port with HTTP/1.0. Returns the status code (-1 if
 * no answer) and the body in a new string the caller frees. */
static int http_get(int port, const char *path, char **body)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	size_t len = 0, cap = 65536;
	char *buf = calloc(1, cap + 1), req[256], *sep;
	int fd = socket(AF_INET, SOCK_STREAM, 0), status = -1;
	ssize_t n;

	ck_assert(buf != NULL && fd >= 0);
	*body = NULL;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto out;
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
	ck_assert(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
	while (len < cap && (n = read(fd, buf + len, cap - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		status = -1;
	sep = strstr(buf, "\r\n\r\n");
	*body = strdup(sep != NULL ? sep + 4 : "");
out:
	close(fd);
	free(buf);
	return status;
}

/* The value of the sample whose line starts with prefix ("name" or
 * "name{labels}") followed by a space; -1 when absent. */
static double sample(const char *text, const char *prefix)
{
	size_t plen = strlen(prefix);

	for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (strncmp(p, prefix, plen) == 0 && p[plen] == ' ')
			return strtod(p + plen + 1, NULL);
	return -1;
}

static int start_worker(struct test_proc *p)
{
	const char *argv[] = {IMPORTER_WORKER_BIN, NULL};
	int port = test_free_port();
	char addr_env[64];
	const char *env[] = {database_env, addr_env, "IMPORTER_POLL_INTERVAL_MS=500", NULL};

	snprintf(addr_env, sizeof(addr_env), "IMPORTER_METRICS_ADDR=127.0.0.1:%d", port);
	test_proc_start(p, argv, env);
	ck_assert_msg(test_proc_wait_for(p, "\"event\":\"listen.ready\"", 10000), "%s", p->buf);
	ck_assert_msg(strstr(p->buf, "\"event\":\"metrics.listening\"") != NULL, "%s", p->buf);
	return port;
}

START_TEST(metrics_count_jobs_records_batches_and_read_the_queue)
{
	struct test_proc w;
	char *body = NULL, *job, want[128];
	int port;
	bool seen = false;

	/* USER_C may run no job at all: its two csv jobs stay pending, one of
	 * them runnable for 90 s already, one not runnable before an hour. */
	PQclear(test_db_exec(
	    conn,
	    "INSERT INTO importer.settings (key, value, user_id) VALUES "
	    "('max_running_per_user', '0', '" USER_C "') ON CONFLICT (key, user_id) DO NOTHING; "
	    "SELECT importer.submit_job('csv', convert_to('id' || chr(10) || '1', 'UTF8'), "
	    "'{\"user_id\":\"" USER_C "\"}') FROM generate_series(1, 3); "
	    "UPDATE importer.import_jobs SET run_after = now() - interval '90 seconds' "
	    "WHERE id = (SELECT min(id::text)::uuid FROM importer.import_jobs); "
	    "UPDATE importer.import_jobs SET run_after = now() + interval '1 hour' "
	    "WHERE id = (SELECT max(id::text)::uuid FROM importer.import_jobs)"));
	/* USER_A: 300 rows in batches of 100 with one ragged row, a file that
	 * fails (unterminated quote), and five noop jobs. */
	PQclear(test_db_exec(
	    conn,
	    "SELECT importer.submit_job('csv', convert_to('id,v' || chr(10) || (SELECT "
	    "string_agg(CASE WHEN g = 7 THEN g::text ELSE g || ',x' END, chr(10)) FROM "
	    "generate_series(1, 300) g), 'UTF8'), '{\"user_id\":\"" USER_A "\","
	    "\"collection\":\"m\",\"batch_size\":100}'); "
	    "SELECT importer.submit_job('csv', convert_to('id,v' || chr(10) || '1,\"x', 'UTF8'), "
	    "'{\"user_id\":\"" USER_A "\"}'); "
	    "SELECT importer.submit_job('noop', NULL::uuid, '{\"user_id\":\"" USER_A "\"}') "
	    "FROM generate_series(1, 5)"));
	port = start_worker(&w);
	ck_assert_msg(
	    test_db_wait_true(conn,
	                      "SELECT count(*) FILTER (WHERE status = 'completed') = 6 AND "
	                      "count(*) FILTER (WHERE status = 'failed') = 1 "
	                      "FROM importer.import_jobs WHERE user_id = '" USER_A "'",
	                      60000),
	    "USER_A's jobs did not end: %s", w.buf);

	ck_assert_int_eq(http_get(port, "/metrics", &body), 200);
	ck_assert_double_eq(sample(body, "importer_worker_jobs_claimed_total"), 2);
	ck_assert_double_eq(sample(body, "importer_worker_jobs_completed_total"), 1);
	ck_assert_double_eq(sample(body, "importer_worker_jobs_failed_total"), 1);
	ck_assert_double_eq(sample(body, "importer_worker_jobs_cancelled_total"), 0);
	ck_assert_double_eq(sample(body, "importer_worker_jobs_ended_total{outcome=\"completed\"}"),
	                    1);
	ck_assert_double_eq(sample(body, "importer_worker_jobs_ended_total{outcome=\"failed\"}"),
	                    1);
	ck_assert_double_eq(sample(body, "importer_worker_noop_jobs_completed_total"), 5);
	ck_assert_double_eq(sample(body, "importer_worker_records_imported_total"), 299);
	ck_assert_double_eq(sample(body, "importer_worker_record_errors_total"), 1);
	ck_assert_double_ge(sample(body, "importer_worker_batch_duration_seconds_count"), 3);
	ck_assert_double_eq(
	    sample(body, "importer_worker_batch_duration_seconds_bucket{le=\"+Inf\"}"),
	    sample(body, "importer_worker_batch_duration_seconds_count"));
	ck_assert_double_gt(sample(body, "importer_worker_batch_duration_seconds_sum"), 0);
	ck_assert_double_eq(sample(body, "importer_worker_busy"), 0);
	ck_assert_ptr_null(strstr(body, "importer_worker_current_job{"));
	ck_assert_double_eq(sample(body, "importer_queue_pending_jobs"), 2);
	ck_assert_double_ge(sample(body, "importer_queue_oldest_pending_age_seconds"), 89);
	ck_assert_double_lt(sample(body, "importer_queue_oldest_pending_age_seconds"), 150);
	ck_assert_ptr_nonnull(
	    strstr(body, "# TYPE importer_worker_batch_duration_seconds histogram"));
	ck_assert_ptr_nonnull(strstr(body, "importer_worker_info{worker_id=\""));
	free(body);
	ck_assert_int_eq(http_get(port, "/nothing", &body), 404);
	free(body);

	/* While a job runs, it is the current job. */
	job = test_db_value(
	    conn, "SELECT importer.submit_job('csv', convert_to('id,v' || chr(10) || (SELECT "
	          "string_agg(g || ',x', chr(10)) FROM generate_series(1, 20000) g), 'UTF8'), "
	          "'{\"user_id\":\"" USER_A "\",\"collection\":\"big\",\"batch_size\":50}')");
	snprintf(want, sizeof(want), "importer_worker_current_job{job_id=\"%s\",kind=\"csv\"}",
	         job);
	for (long deadline = test_now_ms() + 20000; !seen && test_now_ms() < deadline;) {
		ck_assert_int_eq(http_get(port, "/metrics", &body), 200);
		seen = sample(body, want) == 1 && sample(body, "importer_worker_busy") == 1;
		free(body);
		if (!seen)
			sleep_ms(20);
	}
	ck_assert_msg(seen, "never saw %s", want);
	/* SIGTERM still releases the job and exits 0 with the endpoint open. */
	ck_assert_int_eq(test_proc_stop(&w, SIGTERM, 10000), 0);
	free(job);
}
END_TEST

START_TEST(an_address_in_use_stops_the_worker_at_start)
{
	const char *argv[] = {IMPORTER_WORKER_BIN, NULL};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char addr_env[64];
	const char *env[] = {database_env, addr_env, NULL};
	struct test_proc w;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 1) == 0);
	ck_assert(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
	snprintf(addr_env, sizeof(addr_env), "IMPORTER_METRICS_ADDR=127.0.0.1:%d",
	         ntohs(sa.sin_port));
	test_proc_start(&w, argv, env);
	ck_assert_msg(test_proc_wait_for(&w, "cannot listen", 10000), "%s", w.buf);
	ck_assert_int_eq(test_proc_stop(&w, 0, 10000), 1);
	close(fd);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_metrics");
	TCase *tc = tcase_create("db");

	tcase_add_unchecked_fixture(tc, create_database, NULL);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, metrics_count_jobs_records_batches_and_read_the_queue);
	tcase_add_test(tc, an_address_in_use_stops_the_worker_at_start);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
