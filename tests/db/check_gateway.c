/* check_gateway.c -- the real importer-gateway over raw sockets: routes, auth, SSE.
 *
 * Each test starts the gateway binary on a free port against its own database
 * and talks HTTP/1.0 (no chunked encoding, the server closes at the end). Job
 * progress is driven with superuser UPDATEs, exactly what the worker does; the
 * triggers send the NOTIFYs. Waits are poll() with deadlines, never sleeps.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "jwt.h"
#include "test_db.h"

#define DB     TEST_DB_NAME
#define SECRET "gateway-test-secret"
#define USER_A "aaaaaaaa-0000-4000-8000-00000000000a"
#define USER_B "bbbbbbbb-0000-4000-8000-00000000000b"

static char database_env[4200];
static struct test_proc gw;
static int port;
static char tok_a[1024], tok_b[1024];

static void setup(void)
{
	char *url;

	test_db_create(DB);
	url = test_db_url(DB);
	snprintf(database_env, sizeof(database_env), "DATABASE_URL=%s", url);
	free(url);
}

static void start_gateway(void)
{
	const char *argv[] = {IMPORTER_GATEWAY_BIN, NULL};
	char addr[64];
	const char *env[] = {database_env,
			     addr,
			     "IMPORTER_JWT_SECRET=" SECRET,
			     "IMPORTER_MAX_UPLOAD_BYTES=100000",
			     "IMPORTER_SSE_HEARTBEAT_MS=200",
			     "IMPORTER_DB_POOL=2",
			     NULL};
	char *t;

	port = test_free_port();
	snprintf(addr, sizeof(addr), "IMPORTER_HTTP_ADDR=127.0.0.1:%d", port);
	test_proc_start(&gw, argv, env);
	ck_assert_msg(test_proc_wait_for(&gw, "\"event\":\"listen.ready\"", 10000), "%s", gw.buf);
	t = jwt_sign(SECRET, USER_A, (int64_t)time(NULL), 600);
	snprintf(tok_a, sizeof(tok_a), "%s", t);
	free(t);
	t = jwt_sign(SECRET, USER_B, (int64_t)time(NULL), 600);
	snprintf(tok_b, sizeof(tok_b), "%s", t);
	free(t);
}

static void stop_gateway(void)
{
	ck_assert_int_eq(test_proc_stop(&gw, SIGTERM, 10000), 0);
}

static int dial(void)
{
	struct sockaddr_in sa = {0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		ck_assert_int_gt(w, 0);
		p += w;
		n -= (size_t)w;
	}
}

/* Sends a request; token NULL = none; extra: more header lines ("X: y\r\n"). */
static int send_req(const char *method, const char *path, const char *token, const char *extra,
		    const char *body, size_t blen)
{
	char head[32768];
	int fd = dial();
	int n;

	if (token != NULL)
		n = snprintf(head, sizeof(head),
			     "%s %s HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer %s\r\n%s"
			     "Content-Length: %zu\r\n\r\n",
			     method, path, token, extra != NULL ? extra : "", blen);
	else
		n = snprintf(head, sizeof(head), "%s %s HTTP/1.0\r\nHost: x\r\n%sContent-Length: %zu\r\n\r\n",
			     method, path, extra != NULL ? extra : "", blen);
	ck_assert_int_lt(n, (int)sizeof(head));
	send_all(fd, head, (size_t)n);
	if (blen > 0)
		send_all(fd, body, blen);
	return fd;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads into buf (appending at *len) until needle appears or the deadline.
 * Returns true when found. */
static bool read_until(int fd, char *buf, size_t cap, size_t *len, const char *needle,
		       int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;

	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		long left = deadline - now_ms();
		ssize_t n;

		buf[*len] = '\0';
		if (needle != NULL && strstr(buf, needle) != NULL)
			return true;
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return false;
		n = read(fd, buf + *len, cap - 1 - *len);
		if (n <= 0)
			return needle == NULL;
		*len += (size_t)n;
	}
}

struct resp {
	int status;
	char raw[65536];
	const char *body;
};

static int request(struct resp *r, const char *method, const char *path, const char *token,
		   const char *extra, const char *body, size_t blen)
{
	int fd = send_req(method, path, token, extra, body, blen);
	size_t len = 0;
	const char *sep;

	ck_assert_msg(read_until(fd, r->raw, sizeof(r->raw), &len, NULL, 10000), "%s %s: timeout",
		      method, path);
	close(fd);
	r->status = 0;
	sscanf(r->raw, "HTTP/1.%*d %d", &r->status);
	sep = strstr(r->raw, "\r\n\r\n");
	r->body = sep != NULL ? sep + 4 : "";
	return r->status;
}

#define EXPECT(r, want, ...)                                                                       \
	do {                                                                                       \
		int got_ = request((r), __VA_ARGS__);                                              \
		ck_assert_msg(got_ == (want), "expected %d, got %d: %s", (want), got_, (r)->raw);  \
	} while (0)

/* Copies the value of "key":"..." from a JSON text. */
static void json_str(const char *json, const char *key, char *out, size_t outlen)
{
	char pat[64];
	const char *p;
	size_t n;

	snprintf(pat, sizeof(pat), "\"%s\" : \"", key);
	p = strstr(json, pat);
	if (p == NULL) {
		snprintf(pat, sizeof(pat), "\"%s\":\"", key);
		p = strstr(json, pat);
	}
	ck_assert_msg(p != NULL, "no %s in %s", key, json);
	p += strlen(pat);
	n = strcspn(p, "\"");
	ck_assert_uint_lt(n, outlen);
	memcpy(out, p, n);
	out[n] = '\0';
}

static void submit_csv(char *id, size_t idlen)
{
	struct resp r;
	static const char csv[] = "id,name\n1,one\n2,two\n";

	EXPECT(&r, 202, "POST", "/api/jobs?kind=csv&collection=people", tok_a, NULL, csv,
	       sizeof(csv) - 1);
	json_str(r.body, "id", id, idlen);
	ck_assert_msg(strstr(r.raw, "Location: /api/jobs/") != NULL, "%s", r.raw);
}

static void sql_raw(const char *q)
{
	PGconn *c = test_db_connect(DB);

	PQclear(test_db_exec(c, q));
	PQfinish(c);
}

__attribute__((format(printf, 1, 2))) static void sql(const char *fmt, ...)
{
	char q[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q, sizeof(q), fmt, ap);
	va_end(ap);
	sql_raw(q);
}

START_TEST(job_routes_and_their_errors)
{
	struct resp r;
	char id[64], path[256], up[64];

	start_gateway();
	submit_csv(id, sizeof(id));
	snprintf(path, sizeof(path), "/api/jobs/%s", id);
	EXPECT(&r, 200, "GET", path, tok_a, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.body, "\"status\" : \"pending\""));
	ck_assert_ptr_nonnull(strstr(r.body, "\"collection\" : \"people\""));
	ck_assert_ptr_nonnull(strstr(r.body, "+00:00\""));
	/* B sees nothing of A's job, on every route. */
	EXPECT(&r, 404, "GET", path, tok_b, NULL, NULL, 0);
	EXPECT(&r, 404, "DELETE", path, tok_b, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.body, "\"error\":{\"code\":\"not_found\""));
	snprintf(path, sizeof(path), "/api/jobs/%s/cancel", id);
	EXPECT(&r, 404, "POST", path, tok_b, NULL, NULL, 0);
	snprintf(path, sizeof(path), "/api/jobs/%s/logs", id);
	EXPECT(&r, 404, "GET", path, tok_b, NULL, NULL, 0);
	EXPECT(&r, 200, "GET", path, tok_a, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.body, "{\"logs\":[],\"next\":null}"));
	snprintf(path, sizeof(path), "/api/jobs/%s/errors", id);
	EXPECT(&r, 404, "GET", path, tok_b, NULL, NULL, 0);
	EXPECT(&r, 200, "GET", path, tok_a, NULL, NULL, 0);
	snprintf(path, sizeof(path), "/api/jobs/%s/events", id);
	EXPECT(&r, 404, "GET", path, tok_b, NULL, NULL, 0);
	EXPECT(&r, 200, "GET", "/api/jobs", tok_b, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.body, "{\"jobs\":[],\"next\":null}"));
	EXPECT(&r, 200, "GET", "/api/jobs?limit=1", tok_a, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.body, id));

	/* Lifecycle through the API. */
	snprintf(path, sizeof(path), "/api/jobs/%s/pause", id);
	EXPECT(&r, 202, "POST", path, tok_a, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.body, "\"status\" : \"paused\""));
	snprintf(path, sizeof(path), "/api/jobs/%s/resume", id);
	EXPECT(&r, 202, "POST", path, tok_a, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.body, "\"status\" : \"pending\""));
	snprintf(path, sizeof(path), "/api/jobs/%s", id);
	EXPECT(&r, 409, "DELETE", path, tok_a, NULL, NULL, 0);
	snprintf(path, sizeof(path), "/api/jobs/%s/cancel", id);
	EXPECT(&r, 202, "POST", path, tok_a, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.body, "\"status\" : \"cancelled\""));
	EXPECT(&r, 409, "POST", path, tok_a, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.body, "\"code\":\"conflict\""));
	snprintf(path, sizeof(path), "/api/jobs/%s/retry?restart=true", id);
	EXPECT(&r, 202, "POST", path, tok_a, NULL, NULL, 0);
	snprintf(path, sizeof(path), "/api/jobs/%s/cancel", id);
	EXPECT(&r, 202, "POST", path, tok_a, NULL, NULL, 0);
	snprintf(path, sizeof(path), "/api/jobs/%s", id);
	EXPECT(&r, 204, "DELETE", path, tok_a, NULL, NULL, 0);
	EXPECT(&r, 404, "GET", path, tok_a, NULL, NULL, 0);

	/* Bad input: 400, 404, 405, never 500. */
	EXPECT(&r, 400, "GET", "/api/jobs/not-a-uuid", tok_a, NULL, NULL, 0);
	EXPECT(&r, 400, "GET", "/api/jobs?limit=101", tok_a, NULL, NULL, 0);
	EXPECT(&r, 400, "GET", "/api/jobs?cursor=garbage", tok_a, NULL, NULL, 0);
	EXPECT(&r, 400, "GET", "/api/jobs?status=sleeping", tok_a, NULL, NULL, 0);
	EXPECT(&r, 400, "POST", "/api/jobs", tok_a, NULL, NULL, 0);
	EXPECT(&r, 400, "POST", "/api/jobs?kind=pdf", tok_a, NULL, "x", 1);
	EXPECT(&r, 400, "POST", "/api/jobs?kind=csv", tok_a, NULL, NULL, 0);
	EXPECT(&r, 400, "POST", "/api/jobs?kind=csv&mode=sideways", tok_a, NULL, "a\n", 2);
	EXPECT(&r, 400, "POST", "/api/jobs?kind=noop&colour=red", tok_a, NULL, NULL, 0);
	EXPECT(&r, 404, "GET", "/api/nothing", tok_a, NULL, NULL, 0);
	EXPECT(&r, 404, "GET", "/nothing", NULL, NULL, NULL, 0);
	EXPECT(&r, 405, "PUT", "/api/jobs", tok_a, NULL, NULL, 0);
	EXPECT(&r, 405, "GET", "/api/uploads", tok_a, NULL, NULL, 0);
	{
		static char big[150000];

		memset(big, 'x', sizeof(big));
		EXPECT(&r, 413, "POST", "/api/jobs?kind=csv", tok_a, NULL, big, sizeof(big));
	}

	/* Chunked upload, then submit by upload_id. */
	EXPECT(&r, 201, "POST", "/api/uploads?file_name=big.csv", tok_a, NULL, NULL, 0);
	json_str(r.body, "upload_id", up, sizeof(up));
	snprintf(path, sizeof(path), "/api/uploads/%s/chunks/0", up);
	EXPECT(&r, 200, "PUT", path, tok_a, NULL, "id\n1\n", 5);
	EXPECT(&r, 404, "PUT", path, tok_b, NULL, "id\n1\n", 5);
	snprintf(path, sizeof(path), "/api/uploads/%s/chunks/x", up);
	EXPECT(&r, 400, "PUT", path, tok_a, NULL, "id\n1\n", 5);
	snprintf(path, sizeof(path), "/api/jobs?kind=csv&upload_id=%s", up);
	EXPECT(&r, 202, "POST", path, tok_a, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.body, "\"collection\" : \"big\""));

	/* multipart/form-data from a browser form. */
	{
		static const char form[] =
			"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n"
			"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; "
			"filename=\"pets.csv\"\r\nContent-Type: text/csv\r\n\r\nid\r\n7\r\n"
			"\r\n--XyZ--\r\n";

		EXPECT(&r, 202, "POST", "/api/jobs?kind=csv", tok_a,
		       "Content-Type: multipart/form-data; boundary=XyZ\r\n", form,
		       sizeof(form) - 1);
		ck_assert_ptr_nonnull(strstr(r.body, "\"file_name\" : \"pets.csv\""));
		ck_assert_ptr_nonnull(strstr(r.body, "\"file_size\" : 7,"));
	}
	/* Idempotency-Key returns the first job. */
	{
		char first[64], again[64];

		EXPECT(&r, 202, "POST", "/api/jobs?kind=noop", tok_a, "Idempotency-Key: k1\r\n",
		       NULL, 0);
		json_str(r.body, "id", first, sizeof(first));
		EXPECT(&r, 202, "POST", "/api/jobs?kind=noop", tok_a, "Idempotency-Key: k1\r\n",
		       NULL, 0);
		json_str(r.body, "id", again, sizeof(again));
		ck_assert_str_eq(first, again);
	}
	EXPECT(&r, 200, "GET", "/api/stats?hours=24", tok_a, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.body, "\"by_kind\""));
	EXPECT(&r, 400, "GET", "/api/stats?hours=0", tok_a, NULL, NULL, 0);
	EXPECT(&r, 200, "GET", "/api/records?collection=people", tok_a, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.body, "{\"records\":[],\"next\":null}"));
	EXPECT(&r, 400, "GET", "/api/records?after=zz", tok_a, NULL, NULL, 0);
	EXPECT(&r, 200, "DELETE", "/api/jobs?status=cancelled", tok_a, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.body, "{\"deleted\":"));
	EXPECT(&r, 400, "DELETE", "/api/jobs?status=pending", tok_a, NULL, NULL, 0);
	EXPECT(&r, 200, "GET", "/metrics", NULL, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.body, "importer_http_requests_total{route=\"job_get\","
					     "status=\"404\"}"));
	ck_assert_ptr_nonnull(strstr(r.body, "importer_db_pool_live 2"));
	stop_gateway();
}
END_TEST

START_TEST(jwt_attacks_get_401)
{
	struct resp r;
	char *t, bad[1200], big[20000];
	/* {"alg":"none","typ":"JWT"} . {"sub":A,"exp":9999999999} . (empty) */
	const char *none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
			   "eyJzdWIiOiJhYWFhYWFhYS0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMGEiLCJleHAiOjk5OTk5OTk5OTl9.";

	start_gateway();
	EXPECT(&r, 401, "GET", "/api/jobs", NULL, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.body, "\"code\":\"unauthorized\""));
	EXPECT(&r, 401, "GET", "/api/jobs", none, NULL, NULL, 0);
	t = jwt_sign("another-key", USER_A, (int64_t)time(NULL), 600);
	EXPECT(&r, 401, "GET", "/api/jobs", t, NULL, NULL, 0);
	free(t);
	t = jwt_sign(SECRET, USER_A, (int64_t)time(NULL) - 7200, 60); /* expired */
	EXPECT(&r, 401, "GET", "/api/jobs", t, NULL, NULL, 0);
	free(t);
	t = jwt_sign(SECRET, USER_A, (int64_t)time(NULL) + 3600, 60); /* not yet valid */
	EXPECT(&r, 401, "GET", "/api/jobs", t, NULL, NULL, 0);
	free(t);
	snprintf(bad, sizeof(bad), "%.*s", (int)strlen(tok_a) - 5, tok_a); /* truncated */
	EXPECT(&r, 401, "GET", "/api/jobs", bad, NULL, NULL, 0);
	/* A token only works as a query parameter on SSE routes. */
	snprintf(bad, sizeof(bad), "/api/jobs?access_token=%s", tok_a);
	EXPECT(&r, 401, "GET", bad, NULL, NULL, NULL, 0);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	request(&r, "GET", "/api/jobs", big, NULL, NULL, 0);
	ck_assert_msg(r.status == 401 || r.status == 413 || r.status == 431 || r.status == 400,
		      "%d", r.status);
	ck_assert_ptr_null(strstr(gw.buf, tok_a)); /* tokens never reach the log */
	stop_gateway();
}
END_TEST

/* Opens an SSE stream (HTTP/1.0: the body is the raw event stream). */
static int open_sse(const char *path, const char *token, const char *extra)
{
	return send_req("GET", path, token, extra, NULL, 0);
}

START_TEST(sse_job_stream_snapshot_changes_end_and_reconnect)
{
	char id[64], path[2048], buf[65536], hdr[64], *p;
	size_t len = 0;
	int fd, fd_b;
	struct resp r;

	start_gateway();
	submit_csv(id, sizeof(id));
	snprintf(path, sizeof(path), "/api/jobs/%s/events?access_token=%s", id, tok_a);
	fd = open_sse(path, NULL, NULL);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "\"status\" : \"pending\"", 5000),
		      "%s", buf);
	ck_assert_ptr_nonnull(strstr(buf, "Content-Type: text/event-stream"));
	ck_assert_ptr_nonnull(strstr(buf, "retry: "));
	ck_assert_ptr_nonnull(strstr(buf, "id: "));
	ck_assert_ptr_nonnull(strstr(buf, "event: job\ndata: {"));
	/* The stream survives idle time with heartbeats (interval 200 ms here). */
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, ": ping", 3000), "%s", buf);
	sql("UPDATE importer.import_jobs SET status='processing', phase='importing', progress=40,"
	    " worker_id='w1' WHERE id='%s'", id);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "\"progress\" : 40", 5000), "%s", buf);
	sql("INSERT INTO importer.import_logs (job_id, event, message) VALUES ('%s', 'batch',"
	    " 'wrote 2 records')", id);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "event: log", 5000), "%s", buf);
	p = strstr(buf, "event: log");
	ck_assert_ptr_nonnull(strstr(p, "wrote 2 records"));
	sql("UPDATE importer.import_jobs SET progress=70 WHERE id='%s'", id);
	sql("UPDATE importer.import_jobs SET status='completed', phase='done', progress=100"
	    " WHERE id='%s'", id);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "event: end", 5000), "%s", buf);
	/* In order: 40 before 70 before completed (70 may be coalesced away). */
	{
		char *a = strstr(buf, "\"progress\" : 40"), *c = strstr(buf, "\"status\" : \"completed\"");
		char *b = strstr(buf, "\"progress\" : 70");

		ck_assert_ptr_nonnull(a);
		ck_assert_ptr_nonnull(c);
		ck_assert(a < c && (b == NULL || (a < b && b < c)));
	}
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, NULL, 5000), "stream not closed");
	close(fd);

	/* Reconnect with Last-Event-ID 0: snapshot, then the log lines after it. */
	snprintf(path, sizeof(path), "/api/jobs/%s/events", id);
	len = 0;
	snprintf(hdr, sizeof(hdr), "Last-Event-ID: 1\r\n");
	fd = open_sse(path, tok_a, hdr);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "event: end", 5000), "%s", buf);
	ck_assert_ptr_nonnull(strstr(buf, "\"status\" : \"completed\""));
	close(fd);
	len = 0;
	fd = open_sse(path, tok_a, hdr);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "wrote 2 records", 5000), "%s", buf);
	close(fd);

	/* B: 404 on A's stream; the global stream of B shows nothing of A. */
	fd_b = 0;
	EXPECT(&r, 404, "GET", path, tok_b, NULL, NULL, 0);
	(void)fd_b;
	stop_gateway();
}
END_TEST

START_TEST(sse_global_stream_wait_and_stalled_client)
{
	static char buf[1 << 20];
	char id[64], path[256], slow_buf[256];
	size_t len = 0;
	int fd, slow, rcv = 2048;
	struct resp r;

	start_gateway();
	/* A client that never reads, with a tiny receive buffer. */
	slow = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	{
		struct sockaddr_in sa = {0};
		char head[4096];
		int n;

		sa.sin_family = AF_INET;
		sa.sin_port = htons((uint16_t)port);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ck_assert_int_eq(connect(slow, (struct sockaddr *)&sa, sizeof(sa)), 0);
		n = snprintf(head, sizeof(head),
			     "GET /api/events HTTP/1.0\r\nAuthorization: Bearer %s\r\n\r\n", tok_a);
		send_all(slow, head, (size_t)n);
	}
	fd = open_sse("/api/events", tok_a, NULL);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "retry: ", 5000), "%s", buf);
	submit_csv(id, sizeof(id));
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, id, 5000), "%s", buf);
	/* Many changes: the stalled client's queue overflows, the reader keeps up. */
	for (int i = 1; i <= 60; i++) {
		char q[512];

		snprintf(q, sizeof(q),
			 "UPDATE importer.import_jobs SET current_step = repeat('x', 4000) || %d"
			 " WHERE id = '%s'", i, id);
		sql_raw(q);
	}
	sql("UPDATE importer.import_jobs SET status='failed', phase='done', error_message='boom'"
	    " WHERE id='%s'", id);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "event: end", 10000), "%s",
		      buf + (len > 2000 ? len - 2000 : 0));
	ck_assert_ptr_nonnull(strstr(buf, "\"status\" : \"failed\""));
	(void)slow_buf;
	close(slow);
	close(fd);

	/* wait=true: 202 after wait_timeout, 200 once the job ends. */
	EXPECT(&r, 202, "POST", "/api/jobs?kind=noop&wait=true&wait_timeout=1", tok_a, NULL, NULL, 0);
	{
		int wfd = send_req("POST", "/api/jobs?kind=noop&wait=true&wait_timeout=20&collection=w",
				   tok_a, NULL, NULL, 0);
		PGconn *c = test_db_connect(DB);
		PGresult *res;
		size_t wlen = 0;
		long t0 = now_ms();

		/* Wait until the job exists, then complete it like a worker. */
		for (;;) {
			res = test_db_exec(c, "SELECT id FROM importer.import_jobs WHERE collection='w'");
			if (PQntuples(res) == 1 || now_ms() - t0 > 5000)
				break;
			PQclear(res);
			poll(NULL, 0, 20);
		}
		ck_assert_int_eq(PQntuples(res), 1);
		snprintf(path, sizeof(path), "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
		PQfinish(c);
		sql("UPDATE importer.import_jobs SET status='completed', phase='done' WHERE id='%s'",
		    path);
		ck_assert_msg(read_until(wfd, buf, sizeof(buf), &wlen, NULL, 5000), "no answer");
		ck_assert_msg(strncmp(buf, "HTTP/1.0 200", 12) == 0 || strncmp(buf, "HTTP/1.1 200", 12) == 0,
			      "%s", buf);
		close(wfd);
	}
	stop_gateway();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gateway");
	TCase *tc = tcase_create("http");

	tcase_add_unchecked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, job_routes_and_their_errors);
	tcase_add_test(tc, jwt_attacks_get_401);
	tcase_add_test(tc, sse_job_stream_snapshot_changes_end_and_reconnect);
	tcase_add_test(tc, sse_global_stream_wait_and_stalled_client);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
