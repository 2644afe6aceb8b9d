/* check_processes.c -- both binaries start, connect, listen, answer and stop cleanly. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_db.h"

#define DB TEST_DB_NAME

static char database_env[4200];

static void setup(void)
{
	char *url;

	test_db_create(DB);
	url = test_db_url(DB);
	snprintf(database_env, sizeof(database_env), "DATABASE_URL=%s", url);
	free(url);
}

/* A plain HTTP/1.0 GET; returns the status code and copies the body. */
static int http_get(int port, const char *path, char *body, size_t bodylen)
{
	struct sockaddr_in sa = {0};
	char req[256], resp[8192];
	size_t len = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM, 0), status = 0;
	const char *sep;

	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
	ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	while (len + 1 < sizeof(resp) && (n = read(fd, resp + len, sizeof(resp) - 1 - len)) > 0)
		len += (size_t)n;
	resp[len] = '\0';
	close(fd);
	sscanf(resp, "HTTP/1.%*d %d", &status);
	sep = strstr(resp, "\r\n\r\n");
	snprintf(body, bodylen, "%s", sep != NULL ? sep + 4 : "");
	return status;
}

START_TEST(worker_listens_and_exits_zero_on_sigterm)
{
	const char *argv[] = {IMPORTER_WORKER_BIN, NULL};
	const char *env[] = {database_env, "IMPORTER_LOG_LEVEL=debug", NULL};
	struct test_proc p;

	test_proc_start(&p, argv, env);
	ck_assert_msg(test_proc_wait_for(&p, "\"event\":\"process.started\"", 10000), "%s", p.buf);
	ck_assert_msg(test_proc_wait_for(&p, "\"event\":\"listen.ready\"", 10000), "%s", p.buf);
	/* The catch-up pass after LISTEN is acknowledged. */
	ck_assert_msg(test_proc_wait_for(&p, "\"reason\":\"listen.ready\"", 10000), "%s", p.buf);
	ck_assert_int_eq(test_proc_stop(&p, SIGTERM, 10000), 0);
}
END_TEST

START_TEST(worker_waiting_for_the_database_stops_on_sigterm)
{
	const char *argv[] = {IMPORTER_WORKER_BIN, NULL};
	const char *env[] = {"DATABASE_URL=postgresql://nobody@127.0.0.1:1/x", NULL};
	struct test_proc p;

	test_proc_start(&p, argv, env);
	ck_assert_msg(test_proc_wait_for(&p, "\"event\":\"db.connect_retry\"", 10000), "%s", p.buf);
	ck_assert_int_eq(test_proc_stop(&p, SIGTERM, 2000), 0);
}
END_TEST

START_TEST(worker_rejects_bad_configuration)
{
	const char *argv[] = {IMPORTER_WORKER_BIN, NULL};
	const char *env[] = {"DATABASE_URL=", "IMPORTER_LOG_LEVEL=loud", NULL};
	struct test_proc p;

	test_proc_start(&p, argv, env);
	ck_assert_msg(test_proc_wait_for(&p, "IMPORTER_LOG_LEVEL", 5000), "%s", p.buf);
	ck_assert_msg(strstr(p.buf, "DATABASE_URL") != NULL, "%s", p.buf);
	ck_assert_int_eq(test_proc_stop(&p, 0, 5000), 2);
}
END_TEST

START_TEST(gateway_answers_health_and_readiness_and_stops)
{
	const char *argv[] = {IMPORTER_GATEWAY_BIN, NULL};
	char addr[64], body[4096];
	int port = test_free_port();
	const char *env[] = {database_env, addr, "IMPORTER_JWT_SECRET=test-secret", NULL};
	struct test_proc p;

	snprintf(addr, sizeof(addr), "IMPORTER_HTTP_ADDR=127.0.0.1:%d", port);
	test_proc_start(&p, argv, env);
	ck_assert_msg(test_proc_wait_for(&p, "\"event\":\"listen.ready\"", 10000), "%s", p.buf);
	ck_assert_int_eq(http_get(port, "/healthz", body, sizeof(body)), 200);
	ck_assert_ptr_nonnull(strstr(body, "\"status\":\"ok\""));
	ck_assert_int_eq(http_get(port, "/readyz", body, sizeof(body)), 200);
	ck_assert_int_eq(http_get(port, "/no/such/route", body, sizeof(body)), 404);
	ck_assert_msg(strstr(body, "\"error\":{\"code\":\"not_found\"") != NULL, "%s", body);
	ck_assert_int_eq(test_proc_stop(&p, SIGTERM, 10000), 0);
}
END_TEST

START_TEST(gateway_is_unready_without_its_database)
{
	const char *argv[] = {IMPORTER_GATEWAY_BIN, NULL};
	char addr[64], body[4096];
	int port = test_free_port();
	const char *env[] = {"DATABASE_URL=postgresql://nobody@127.0.0.1:1/x", addr,
	                     "IMPORTER_JWT_SECRET=test-secret", NULL};
	struct test_proc p;

	snprintf(addr, sizeof(addr), "IMPORTER_HTTP_ADDR=127.0.0.1:%d", port);
	test_proc_start(&p, argv, env);
	ck_assert_msg(test_proc_wait_for(&p, "\"event\":\"listen.lost\"", 10000), "%s", p.buf);
	ck_assert_int_eq(http_get(port, "/healthz", body, sizeof(body)), 200);
	ck_assert_int_eq(http_get(port, "/readyz", body, sizeof(body)), 503);
	ck_assert_int_eq(test_proc_stop(&p, SIGTERM, 10000), 0);
}
END_TEST

START_TEST(gateway_requires_a_jwt_secret)
{
	const char *argv[] = {IMPORTER_GATEWAY_BIN, NULL};
	const char *env[] = {database_env, "IMPORTER_JWT_SECRET=", NULL};
	struct test_proc p;

	unsetenv("IMPORTER_JWT_SECRET");
	test_proc_start(&p, argv, env);
	ck_assert_msg(test_proc_wait_for(&p, "IMPORTER_JWT_SECRET", 5000), "%s", p.buf);
	ck_assert_int_eq(test_proc_stop(&p, 0, 5000), 2);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("processes");
	TCase *tc = tcase_create("db");

	tcase_add_unchecked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, worker_listens_and_exits_zero_on_sigterm);
	tcase_add_test(tc, worker_waiting_for_the_database_stops_on_sigterm);
	tcase_add_test(tc, worker_rejects_bad_configuration);
	tcase_add_test(tc, gateway_answers_health_and_readiness_and_stops);
	tcase_add_test(tc, gateway_is_unready_without_its_database);
	tcase_add_test(tc, gateway_requires_a_jwt_secret);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
