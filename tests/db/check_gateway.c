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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hub.h"
#include "jwt.h"
#include "test_db.h"

#define DB     TEST_DB_NAME
#define SECRET "gateway-test-secret"
#define USER_A "aaaaaaaa-0000-4000-8000-00000000000a"
#define USER_B "bbbbbbbb-0000-4000-8000-00000000000b"
#define USER_C "cccccccc-0000-4000-8000-00000000000c"
#define USER_D "dddddddd-0000-4000-8000-00000000000d"
#define USER_E "eeeeeeee-0000-4000-8000-00000000000e"
#define USER_F "ffffffff-0000-4000-8000-00000000000f"

static char database_env[4200];
static struct test_proc gw;
static int port;
static char tok_a[1024], tok_b[1024], tok_c[1024], tok_d[1024], tok_e[1024];

static void setup(void)
{
	char *url;

	test_db_create(DB);
	url = test_db_url(DB);
	snprintf(database_env, sizeof(database_env), "DATABASE_URL=%s", url);
	free(url);
}

static void mint(const char *user, char *out, size_t outlen)
{
	char *t = jwt_sign(SECRET, user, (int64_t)time(NULL), 600);

	snprintf(out, outlen, "%s", t);
	free(t);
}

/* Starts the gateway; extra: one more "NAME=value" for its environment, or NULL. */
static void start_gateway_with(const char *extra)
{
	const char *argv[] = {IMPORTER_GATEWAY_BIN, NULL};
	char addr[64];
	const char *env[] = {database_env,
	                     addr,
	                     "IMPORTER_JWT_SECRET=" SECRET,
	                     "IMPORTER_MAX_UPLOAD_BYTES=100000",
	                     "IMPORTER_SSE_HEARTBEAT_MS=200",
	                     "IMPORTER_DB_POOL=2",
	                     extra,
	                     NULL};

	port = test_free_port();
	snprintf(addr, sizeof(addr), "IMPORTER_HTTP_ADDR=127.0.0.1:%d", port);
	test_proc_start(&gw, argv, env);
	ck_assert_msg(test_proc_wait_for(&gw, "\"event\":\"listen.ready\"", 10000), "%s", gw.buf);
	mint(USER_A, tok_a, sizeof(tok_a));
	mint(USER_B, tok_b, sizeof(tok_b));
	mint(USER_C, tok_c, sizeof(tok_c));
	mint(USER_D, tok_d, sizeof(tok_d));
	mint(USER_E, tok_e, sizeof(tok_e));
}

static void start_gateway(void)
{
	start_gateway_with(NULL);
}

static void stop_gateway(void)
{
	ck_assert_int_eq(test_proc_stop(&gw, SIGTERM, 10000), 0);
}

/* Connects to the gateway; rcvbuf > 0 shrinks the receive window first (it
 * must be set before connect), making a client that stops reading stall fast. */
static int dial_window(int rcvbuf)
{
	struct sockaddr_in sa = {0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static int dial(void)
{
	return dial_window(0);
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
		n = snprintf(head, sizeof(head),
		             "%s %s HTTP/1.0\r\nHost: x\r\n%sContent-Length: %zu\r\n\r\n", method,
		             path, extra != NULL ? extra : "", blen);
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
	/* A record keeps the id of the job that wrote it; once that job is
	 * deleted (id was, above; sql/0013 leaves the id in place) the route
	 * shows null. */
	{
		char live[64], want[160];

		submit_csv(live, sizeof(live));
		sql("INSERT INTO importer.records (user_id, collection, record_key, data, job_id) "
		    "VALUES ('" USER_A "', 'people', 'gone', '{}', '%s'), "
		    "('" USER_A "', 'people', 'kept', '{}', '%s')",
		    id, live);
		EXPECT(&r, 200, "GET", "/api/records?collection=people", tok_a, NULL, NULL, 0);
		ck_assert_msg(strstr(r.body, "\"record_key\" : \"gone\", \"data\" : {}, "
		                             "\"job_id\" : null") != NULL,
		              "%s", r.body);
		snprintf(want, sizeof(want),
		         "\"record_key\" : \"kept\", \"data\" : {}, \"job_id\" : \"%s\"", live);
		ck_assert_msg(strstr(r.body, want) != NULL, "%s", r.body);
	}
	sql_raw("DELETE FROM importer.records WHERE collection = 'people'");
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
	const char *none =
	    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
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

/* Opens an SSE stream over HTTP/1.1: the body comes in chunks (dechunk()). */
static int open_sse11(const char *path, const char *token, const char *extra)
{
	char head[4096];
	int fd = dial();
	int n = snprintf(head, sizeof(head),
	                 "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n%s\r\n", path,
	                 token, extra != NULL ? extra : "");

	ck_assert_int_lt(n, (int)sizeof(head));
	send_all(fd, head, (size_t)n);
	return fd;
}

/* Decodes the chunked body of the HTTP/1.1 response in raw (NUL-terminated):
 * every complete chunk, in order, into out (NUL-terminated). Fails the test
 * on anything that is not chunk framing. Returns the decoded length. */
static size_t dechunk(const char *raw, char *out, size_t cap)
{
	const char *p = strstr(raw, "\r\n\r\n"), *te = strstr(raw, "Transfer-Encoding: chunked");
	size_t n = 0;

	ck_assert_msg(p != NULL && te != NULL && te < p, "not a chunked response: %s", raw);
	for (p += 4; *p != '\0';) {
		const char *crlf = strstr(p, "\r\n");
		char *end;
		unsigned long size;

		if (crlf == NULL)
			break; /* a chunk header still on its way */
		size = strtoul(p, &end, 16);
		ck_assert_msg(end == crlf && end > p, "bad chunk header: %.40s", p);
		if (size == 0 || strlen(crlf + 2) < size + 2)
			break; /* the last chunk, or one still on its way */
		ck_assert_msg(strncmp(crlf + 2 + size, "\r\n", 2) == 0, "chunk of %lu without CRLF",
		              size);
		ck_assert_uint_lt(n + size, cap);
		memcpy(out + n, crlf + 2, size);
		n += size;
		p = crlf + 2 + size + 2;
	}
	out[n] = '\0';
	return n;
}

/* Opens an SSE stream at path from a client with a 2 KiB receive window. */
static int open_slow_sse(const char *path, const char *token, bool http11)
{
	char head[4096];
	int fd = dial_window(2048);
	int n = snprintf(head, sizeof(head),
	                 "GET %s HTTP/1.%d\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", path,
	                 http11 ? 1 : 0, token);

	ck_assert_int_lt(n, (int)sizeof(head));
	send_all(fd, head, (size_t)n);
	return fd;
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
	    " worker_id='w1' WHERE id='%s'",
	    id);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "\"progress\" : 40", 5000), "%s", buf);
	sql("INSERT INTO importer.import_logs (job_id, event, message) VALUES ('%s', 'batch',"
	    " 'wrote 2 records')",
	    id);
	/* (Taking the job was logged too: job.claimed comes first.) */
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "wrote 2 records", 5000), "%s", buf);
	{
		char *line = strstr(buf, "wrote 2 records"), *ev = NULL;

		for (p = strstr(buf, "event: "); p != NULL && p < line; p = strstr(p + 1, "event: "))
			ev = p;
		ck_assert_msg(ev != NULL && strncmp(ev, "event: log\n", 11) == 0, "%s", buf);
	}
	sql("UPDATE importer.import_jobs SET progress=70 WHERE id='%s'", id);
	sql("UPDATE importer.import_jobs SET status='completed', phase='done', progress=100"
	    " WHERE id='%s'",
	    id);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "event: end", 5000), "%s", buf);
	/* In order: 40 before 70 before completed (70 may be coalesced away). */
	{
		char *a = strstr(buf, "\"progress\" : 40"),
		     *c = strstr(buf, "\"status\" : \"completed\"");
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
	int fd, slow;
	struct resp r;

	start_gateway();
	/* A client that never reads, with a tiny receive buffer. */
	slow = open_slow_sse("/api/events", tok_a, false);
	fd = open_sse("/api/events", tok_a, NULL);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "retry: ", 5000), "%s", buf);
	submit_csv(id, sizeof(id));
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, id, 5000), "%s", buf);
	/* Many changes: the stalled client's queue overflows, the reader keeps up. */
	for (int i = 1; i <= 60; i++) {
		char q[512];

		snprintf(q, sizeof(q),
		         "UPDATE importer.import_jobs SET current_step = repeat('x', 4000) || %d"
		         " WHERE id = '%s'",
		         i, id);
		sql_raw(q);
	}
	sql("UPDATE importer.import_jobs SET status='failed', phase='done', error_message='boom'"
	    " WHERE id='%s'",
	    id);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "event: end", 10000), "%s",
	              buf + (len > 2000 ? len - 2000 : 0));
	ck_assert_ptr_nonnull(strstr(buf, "\"status\" : \"failed\""));
	(void)slow_buf;
	close(slow);
	close(fd);

	/* wait=true: 202 after wait_timeout, 200 once the job ends. */
	EXPECT(&r, 202, "POST", "/api/jobs?kind=noop&wait=true&wait_timeout=1", tok_a, NULL, NULL,
	       0);
	{
		int wfd =
		    send_req("POST", "/api/jobs?kind=noop&wait=true&wait_timeout=20&collection=w",
		             tok_a, NULL, NULL, 0);
		PGconn *c = test_db_connect(DB);
		PGresult *res;
		size_t wlen = 0;
		long t0 = now_ms();

		/* Wait until the job exists, then complete it like a worker. */
		for (;;) {
			res = test_db_exec(
			    c, "SELECT id FROM importer.import_jobs WHERE collection='w'");
			if (PQntuples(res) == 1 || now_ms() - t0 > 5000)
				break;
			PQclear(res);
			poll(NULL, 0, 20);
		}
		ck_assert_int_eq(PQntuples(res), 1);
		snprintf(path, sizeof(path), "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
		PQfinish(c);
		sql("UPDATE importer.import_jobs SET status='completed', phase='done' WHERE "
		    "id='%s'",
		    path);
		ck_assert_msg(read_until(wfd, buf, sizeof(buf), &wlen, NULL, 5000), "no answer");
		ck_assert_msg(strncmp(buf, "HTTP/1.0 200", 12) == 0 ||
		                  strncmp(buf, "HTTP/1.1 200", 12) == 0,
		              "%s", buf);
		close(wfd);
	}
	stop_gateway();
}
END_TEST

/* ==== Database outages, limits, logs_for, slow clients, shutdown ==== */

/* Runs a statement on the cluster's postgres database (ALTER DATABASE cannot
 * target the database it runs in). */
__attribute__((format(printf, 1, 2))) static char *admin_value(const char *fmt, ...)
{
	PGconn *c = test_db_connect("postgres");
	char q[1024], *v;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q, sizeof(q), fmt, ap);
	va_end(ap);
	v = test_db_value(c, q);
	PQfinish(c);
	return v;
}

/* Refuses (false) or allows new connections to the test database: existing
 * sessions stay, so the gateway's reconnects fail deterministically while the
 * test still talks to the database on a connection opened before. Never
 * touches the shared cluster itself. */
static void allow_connections(bool allow)
{
	PGconn *c = test_db_connect("postgres");
	char q[256];

	snprintf(q, sizeof(q), "ALTER DATABASE \"%s\" WITH ALLOW_CONNECTIONS %s", DB,
	         allow ? "true" : "false");
	PQclear(test_db_exec(c, q));
	PQfinish(c);
}

/* Terminates the backends of this test's gateway with application_name app
 * (only in this test's database: other build trees share the cluster) and
 * waits for them to be gone. Returns how many there were. */
static int terminate(const char *app)
{
	char *v = admin_value("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))"
	                      " FROM pg_stat_activity WHERE application_name = '%s'"
	                      " AND datname = '%s'",
	                      app, DB);
	int n = atoi(v);

	free(v);
	return n;
}

/* Polls path until it answers want (poll() between tries); false at the deadline. */
static bool wait_status(struct resp *r, const char *path, const char *token, int want,
                        int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;

	for (;;) {
		if (request(r, "GET", path, token, NULL, NULL, 0) == want)
			return true;
		if (now_ms() > deadline)
			return false;
		poll(NULL, 0, 20);
	}
}

START_TEST(listen_reconnect_resnapshots_streams)
{
	static char buf[1 << 18];
	char id[64], path[2048];
	size_t len = 0;
	struct resp r;
	PGconn *db;
	int fd;

	start_gateway();
	submit_csv(id, sizeof(id));
	snprintf(path, sizeof(path), "/api/jobs/%s/events", id);
	fd = open_sse(path, tok_a, NULL);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "\"status\" : \"pending\"", 5000),
	              "%s", buf);
	EXPECT(&r, 200, "GET", "/readyz", NULL, NULL, NULL, 0);
	db = test_db_connect(DB);
	allow_connections(false);
	ck_assert_int_eq(terminate("importer-gateway-listen"), 1);
	ck_assert_msg(wait_status(&r, "/readyz", NULL, 503, 5000), "%s", r.raw);
	ck_assert_ptr_nonnull(strstr(r.body, "\"listen\":false"));
	ck_assert_ptr_nonnull(strstr(r.body, "\"pool_live\":2")); /* only LISTEN was hit */
	/* A change while nobody listens: its NOTIFY is lost for good. */
	PQclear(test_db_exec(db, "UPDATE importer.import_jobs SET status='processing',"
	                         " phase='importing', progress=33, worker_id='w1'"
	                         " WHERE kind = 'csv' AND status = 'pending'"));
	/* Still unready while the database refuses the reconnect. */
	EXPECT(&r, 503, "GET", "/readyz", NULL, NULL, NULL, 0);
	allow_connections(true);
	ck_assert_msg(wait_status(&r, "/readyz", NULL, 200, 10000), "%s", r.raw);
	/* The fresh snapshot after the reconnect carries the missed change. */
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "\"progress\" : 33", 5000), "%s", buf);
	/* And the new LISTEN works: later changes still stream. */
	sql("UPDATE importer.import_jobs SET progress=66 WHERE id='%s'", id);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "\"progress\" : 66", 5000), "%s", buf);
	sql("UPDATE importer.import_jobs SET status='completed', phase='done', progress=100"
	    " WHERE id='%s'",
	    id);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "event: end", 5000), "%s", buf);
	close(fd);
	PQfinish(db);
	stop_gateway();
}
END_TEST

/* The database host by name: resolved off the event loop (evdns), so the
 * gateway serves as usual; a name that does not resolve leaves it up and
 * unready, saying why, and still answering. */
START_TEST(database_host_names_are_resolved_without_blocking_the_loop)
{
	char by_name[4300];
	struct resp r;

	/* A later keyword wins: the same server, reached as "localhost". */
	snprintf(by_name, sizeof(by_name), "%s host=localhost", database_env);
	start_gateway_with(NULL); /* for the port and tokens; replaced below */
	stop_gateway();
	{
		const char *argv[] = {IMPORTER_GATEWAY_BIN, NULL};
		char addr[64];
		const char *env[] = {by_name, addr, "IMPORTER_JWT_SECRET=" SECRET, NULL};

		snprintf(addr, sizeof(addr), "IMPORTER_HTTP_ADDR=127.0.0.1:%d", port);
		test_proc_start(&gw, argv, env);
		ck_assert_msg(test_proc_wait_for(&gw, "\"event\":\"listen.ready\"", 10000), "%s",
		              gw.buf);
		ck_assert_msg(wait_status(&r, "/readyz", NULL, 200, 10000), "%s", r.raw);
		EXPECT(&r, 200, "GET", "/api/jobs", tok_a, NULL, NULL, 0);
		stop_gateway();
		snprintf(by_name, sizeof(by_name),
		         "DATABASE_URL=postgresql://nobody@no-such-host.invalid:5432/x");
		test_proc_start(&gw, argv, env);
		ck_assert_msg(test_proc_wait_for(&gw, "could not resolve host", 30000), "%s", gw.buf);
		EXPECT(&r, 200, "GET", "/healthz", NULL, NULL, NULL, 0);
		EXPECT(&r, 503, "GET", "/readyz", NULL, NULL, NULL, 0);
		stop_gateway();
	}
}
END_TEST

START_TEST(pool_loss_gives_503_and_recovers)
{
	char id[64], path[256], raw[8192], *v;
	size_t len = 0;
	struct resp r;
	PGconn *lock;
	long t0;
	int fd;

	start_gateway();
	submit_csv(id, sizeof(id));
	snprintf(path, sizeof(path), "/api/jobs/%s", id);
	/* A request that waits on the database when its connection dies. */
	lock = test_db_connect(DB);
	PQclear(
	    test_db_exec(lock, "BEGIN; LOCK TABLE importer.import_jobs IN ACCESS EXCLUSIVE MODE"));
	fd = send_req("GET", path, tok_a, NULL, NULL, 0);
	t0 = now_ms();
	for (;;) {
		v = admin_value(
		    "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s'"
		    " AND application_name = 'importer-gateway' AND wait_event_type = 'Lock'",
		    DB);
		if (strcmp(v, "1") == 0 || now_ms() - t0 > 5000)
			break;
		free(v);
		poll(NULL, 0, 20);
	}
	ck_assert_str_eq(v, "1");
	free(v);
	allow_connections(false);
	ck_assert_int_eq(terminate("importer-gateway"), 2);
	ck_assert_msg(read_until(fd, raw, sizeof(raw), &len, NULL, 5000), "no answer: %s", raw);
	close(fd);
	ck_assert_msg(strncmp(raw, "HTTP/1.1 503", 12) == 0 ||
	                  strncmp(raw, "HTTP/1.0 503", 12) == 0,
	              "%s", raw);
	ck_assert_ptr_nonnull(strstr(raw, "Retry-After: 1"));
	ck_assert_ptr_nonnull(strstr(raw, "\"code\":\"unavailable\""));
	PQclear(test_db_exec(lock, "ROLLBACK"));
	PQfinish(lock);
	/* With no live connection: 503 at once, on every kind of route. */
	t0 = now_ms();
	EXPECT(&r, 503, "GET", path, tok_a, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.raw, "Retry-After: 1"));
	EXPECT(&r, 503, "POST", "/api/jobs?kind=noop", tok_a, NULL, NULL, 0);
	EXPECT(&r, 503, "GET", "/api/events", tok_a, NULL, NULL, 0);
	ck_assert_int_lt(now_ms() - t0, 2000);
	EXPECT(&r, 503, "GET", "/readyz", NULL, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.body, "\"pool_live\":0"));
	EXPECT(&r, 200, "GET", "/healthz", NULL, NULL, NULL, 0);
	/* The pool reconnects by itself once the database takes connections. */
	allow_connections(true);
	ck_assert_msg(wait_status(&r, path, tok_a, 200, 10000), "%s", r.raw);
	t0 = now_ms();
	while (request(&r, "GET", "/readyz", NULL, NULL, NULL, 0) != 200 ||
	       strstr(r.body, "\"pool_live\":2") == NULL) {
		ck_assert_msg(now_ms() - t0 < 10000, "%s", r.raw);
		poll(NULL, 0, 20);
	}
	EXPECT(&r, 200, "GET", "/metrics", NULL, NULL, NULL, 0);
	ck_assert_ptr_null(strstr(r.body, "status=\"500\""));
	stop_gateway();
}
END_TEST

START_TEST(per_user_limits_answer_429)
{
	char raw[8192], ids[2][64], path[256];
	int fds[2];
	struct resp r;

	start_gateway();
	sql("INSERT INTO importer.settings (key, value, user_id) VALUES"
	    " ('max_sse_streams_per_user', '2', '" USER_C "'),"
	    " ('max_active_jobs_per_user', '2', '" USER_C "')");
	for (int i = 0; i < 2; i++) {
		size_t len = 0;

		fds[i] = open_sse("/api/events", tok_c, NULL);
		ck_assert_msg(read_until(fds[i], raw, sizeof(raw), &len, "retry: ", 5000), "%s",
		              raw);
	}
	/* The third stream of the same user: 429 JSON with Retry-After. */
	EXPECT(&r, 429, "GET", "/api/events", tok_c, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.raw, "Retry-After: "));
	ck_assert_ptr_nonnull(strstr(r.raw, "Content-Type: application/json"));
	ck_assert_ptr_nonnull(strstr(r.body, "\"code\":\"limit_exceeded\""));
	/* Another user is not affected. */
	{
		size_t len = 0;
		int fd = open_sse("/api/events", tok_d, NULL);

		ck_assert_msg(read_until(fd, raw, sizeof(raw), &len, "retry: ", 5000), "%s", raw);
		close(fd);
	}
	/* Closing a stream frees its slot. */
	close(fds[0]);
	{
		long deadline = now_ms() + 5000;
		size_t len;
		int fd;

		for (;;) {
			len = 0;
			fd = open_sse("/api/events", tok_c, NULL);
			if (read_until(fd, raw, sizeof(raw), &len, "retry: ", 5000))
				break;
			close(fd);
			ck_assert_msg(now_ms() < deadline, "%s", raw);
			poll(NULL, 0, 20);
		}
		close(fd);
	}
	close(fds[1]);

	/* Active jobs: the third submit is refused, a finished job frees a slot. */
	for (int i = 0; i < 2; i++) {
		EXPECT(&r, 202, "POST", "/api/jobs?kind=noop", tok_c, NULL, NULL, 0);
		json_str(r.body, "id", ids[i], sizeof(ids[i]));
	}
	EXPECT(&r, 429, "POST", "/api/jobs?kind=noop", tok_c, NULL, NULL, 0);
	ck_assert_ptr_nonnull(strstr(r.raw, "Retry-After: "));
	ck_assert_ptr_nonnull(strstr(r.body, "\"code\":\"limit_exceeded\""));
	snprintf(path, sizeof(path), "/api/jobs/%s/cancel", ids[0]);
	EXPECT(&r, 202, "POST", path, tok_c, NULL, NULL, 0);
	EXPECT(&r, 202, "POST", "/api/jobs?kind=noop", tok_c, NULL, NULL, 0);
	/* retry is checked against the same limit */
	snprintf(path, sizeof(path), "/api/jobs/%s/retry", ids[0]);
	EXPECT(&r, 429, "POST", path, tok_c, NULL, NULL, 0);
	sql("DELETE FROM importer.settings WHERE user_id = '" USER_C "'");
	stop_gateway();
}
END_TEST

START_TEST(global_stream_logs_for_one_job)
{
	static char buf[1 << 18];
	char j1[64], j2[64], jb[64], path[256];
	size_t len = 0;
	struct resp r;
	int fd;

	start_gateway();
	EXPECT(&r, 202, "POST", "/api/jobs?kind=csv", tok_d, NULL, "id\n1\n", 5);
	json_str(r.body, "id", j1, sizeof(j1));
	EXPECT(&r, 202, "POST", "/api/jobs?kind=csv", tok_d, NULL, "id\n1\n", 5);
	json_str(r.body, "id", j2, sizeof(j2));
	EXPECT(&r, 202, "POST", "/api/jobs?kind=csv", tok_b, NULL, "id\n1\n", 5);
	json_str(r.body, "id", jb, sizeof(jb));
	sql("INSERT INTO importer.import_logs (job_id, event, message) VALUES"
	    " ('%s', 'e', 'j1-history'), ('%s', 'e', 'j2-history'), ('%s', 'e', 'b-history')",
	    j1, j2, jb);
	/* Another user's job (or none) in logs_for: 404, like every route. */
	snprintf(path, sizeof(path), "/api/events?logs_for=%s", jb);
	EXPECT(&r, 404, "GET", path, tok_d, NULL, NULL, 0);
	ck_assert_ptr_null(strstr(r.raw, "b-history"));
	EXPECT(&r, 404, "GET", "/api/events?logs_for=00000000-0000-4000-8000-000000000000", tok_d,
	       NULL, NULL, 0);
	EXPECT(&r, 400, "GET", "/api/events?logs_for=nope", tok_d, NULL, NULL, 0);

	snprintf(path, sizeof(path), "/api/events?logs_for=%s", j1);
	fd = open_sse(path, tok_d, NULL);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "j1-history", 5000), "%s", buf);
	sql("INSERT INTO importer.import_logs (job_id, event, message) VALUES ('%s', 'e', "
	    "'j2-live')",
	    j2);
	sql("INSERT INTO importer.import_logs (job_id, event, message) VALUES ('%s', 'e', "
	    "'b-live')",
	    jb);
	sql("INSERT INTO importer.import_logs (job_id, event, message) VALUES ('%s', 'e', "
	    "'j1-live')",
	    j1);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "j1-live", 5000), "%s", buf);
	/* Job changes of both jobs arrive; log lines only of j1. */
	sql("UPDATE importer.import_jobs SET progress = 12 WHERE id = '%s'", j2);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "\"progress\" : 12", 5000), "%s", buf);
	ck_assert_ptr_null(strstr(buf, "j2-history"));
	ck_assert_ptr_null(strstr(buf, "j2-live"));
	ck_assert_ptr_null(strstr(buf, "b-history"));
	ck_assert_ptr_null(strstr(buf, "b-live"));
	ck_assert_ptr_nonnull(strstr(buf, "event: log"));
	close(fd);
	stop_gateway();
}
END_TEST

/* Like read_until, but looks for needle only from offset from on (for long streams). */
static bool read_until_at(int fd, char *buf, size_t cap, size_t *len, size_t from,
                          const char *needle, int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;
	size_t nl = strlen(needle);

	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		long left = deadline - now_ms();
		ssize_t n;

		buf[*len] = '\0';
		if (strstr(buf + from, needle) != NULL)
			return true;
		/* Only new bytes (and a needle's overlap) are searched next time. */
		if (*len > from + nl)
			from = *len - nl;
		if (left <= 0 || *len + 1 >= cap || poll(&pfd, 1, (int)left) <= 0)
			return false;
		n = read(fd, buf + *len, cap - 1 - *len);
		if (n <= 0)
			return false;
		*len += (size_t)n;
	}
}

/* The value of counter name (no labels) from /metrics. */
static long metric(const char *name)
{
	char needle[128];
	struct resp r;
	const char *p;

	snprintf(needle, sizeof(needle), "\n%s ", name);
	EXPECT(&r, 200, "GET", "/metrics", NULL, NULL, NULL, 0);
	p = strstr(r.body, needle);
	ck_assert_msg(p != NULL, "no %s in /metrics", name);
	return atol(p + strlen(needle));
}

static long dropped_events(void)
{
	return metric("importer_sse_events_dropped_total");
}

/* importer_wait_requests_open from /metrics. */
static long open_waits(void)
{
	struct resp r;
	const char *p;

	EXPECT(&r, 200, "GET", "/metrics", NULL, NULL, NULL, 0);
	p = strstr(r.body, "\nimporter_wait_requests_open ");
	ck_assert_ptr_nonnull(p);
	return atol(p + strlen("\nimporter_wait_requests_open "));
}

START_TEST(held_wait_requests_are_capped_per_user)
{
	int fds[HUB_MAX_WAITERS_PER_USER];
	char buf[8192];
	size_t len = 0;
	int extra;
	long t0;

	start_gateway();
	/* One job (a repeated Idempotency-Key creates no more), waited on many times. */
	for (int i = 0; i < HUB_MAX_WAITERS_PER_USER; i++)
		fds[i] = send_req("POST", "/api/jobs?kind=noop&wait=true&wait_timeout=30", tok_d,
		                  "Idempotency-Key: capped\r\n", NULL, 0);
	for (t0 = now_ms(); open_waits() < HUB_MAX_WAITERS_PER_USER && now_ms() - t0 < 10000;)
		poll(NULL, 0, 20);
	ck_assert_int_eq(open_waits(), HUB_MAX_WAITERS_PER_USER);
	/* One more is answered at once with the job as it is. */
	t0 = now_ms();
	extra = send_req("POST", "/api/jobs?kind=noop&wait=true&wait_timeout=30", tok_d,
	                 "Idempotency-Key: capped\r\n", NULL, 0);
	ck_assert_msg(read_until(extra, buf, sizeof(buf), &len, NULL, 5000), "no answer");
	ck_assert_msg(strncmp(buf + 9, "202", 3) == 0, "%s", buf);
	ck_assert_int_lt(now_ms() - t0, 3000);
	close(extra);
	for (int i = 0; i < HUB_MAX_WAITERS_PER_USER; i++)
		close(fds[i]);
	stop_gateway();
}
END_TEST

/* Run over HTTP/1.0 (_i = 0: raw event stream) and HTTP/1.1 (_i = 1: chunks,
 * whose framing must survive the partial writes to the stalled client). */
START_TEST(slow_client_drops_progress_then_resnapshots)
{
	static char fast[8 << 20], slow_buf[8 << 20], decoded[8 << 20];
	size_t flen = 0, slen = 0;
	char id[64], id2[64], needle[64], tok[1024];
	int fast_fd, slow_fd, i, first_drop = 0, job_events = 0;
	struct resp r;
	PGconn *db;
	char *after_end;
	bool http11 = _i == 1;

	start_gateway_with("IMPORTER_SSE_QUEUE_BYTES=4096");
	ck_assert_ptr_nonnull(strstr(gw.buf, "\"sse_queue_bytes\":4096"));
	/* A user of its own per run: the other run's jobs stay out of the way. */
	mint(http11 ? USER_F : USER_E, tok, sizeof(tok));
	EXPECT(&r, 202, "POST", "/api/jobs?kind=csv", tok, NULL, "id\n1\n", 5);
	json_str(r.body, "id", id, sizeof(id));
	/* A second job that stays active: its last change is dropped for the slow
	 * client and must come back in the snapshot after the drain. */
	EXPECT(&r, 202, "POST", "/api/jobs?kind=noop", tok, NULL, NULL, 0);
	json_str(r.body, "id", id2, sizeof(id2));
	/* The slow client reads its snapshot, then stops reading (tiny window). */
	slow_fd = open_slow_sse("/api/events", tok, http11);
	ck_assert_msg(read_until(slow_fd, slow_buf, sizeof(slow_buf), &slen, id, 5000), "%s",
	              slow_buf);
	fast_fd =
	    http11 ? open_sse11("/api/events", tok, NULL) : open_sse("/api/events", tok, NULL);
	ck_assert_msg(read_until(fast_fd, fast, sizeof(fast), &flen, id, 5000), "%s", fast);
	/* Progress in lock step: the fast client gets every state promptly while
	 * the slow one backs up, until the gateway has dropped events for it. */
	db = test_db_connect(DB);
	for (i = 1; i <= 400 && (first_drop == 0 || i < first_drop + 20); i++) {
		char q[256];
		size_t mark = flen;

		snprintf(q, sizeof(q),
		         "UPDATE importer.import_jobs SET status='processing', worker_id='w',"
		         " current_step = repeat('x', 16000) || %d, progress = %d WHERE id = '%s'",
		         i, i / 5, id);
		PQclear(test_db_exec(db, q));
		snprintf(needle, sizeof(needle), "x%d\"", i);
		ck_assert_msg(read_until_at(fast_fd, fast, sizeof(fast), &flen, mark, needle, 3000),
		              "fast client missed step %d", i);
		if (first_drop == 0 && i % 5 == 0 && dropped_events() > 0)
			first_drop = i;
	}
	ck_assert_msg(first_drop > 0, "no event was dropped after %d steps", i);
	{
		char q[256];
		size_t mark = flen;

		snprintf(
		    q, sizeof(q),
		    "UPDATE importer.import_jobs SET current_step = 'second-last' WHERE id = '%s'",
		    id2);
		PQclear(test_db_exec(db, q));
		ck_assert_msg(
		    read_until_at(fast_fd, fast, sizeof(fast), &flen, mark, "second-last", 3000),
		    "fast client missed the second job");
	}
	sql("UPDATE importer.import_jobs SET status='failed', phase='done', error_message='boom',"
	    " current_step='last' WHERE id = '%s'",
	    id);
	ck_assert_msg(read_until_at(fast_fd, fast, sizeof(fast), &flen, 0, "event: end", 5000),
	              "%s", fast + (flen > 2000 ? flen - 2000 : 0));
	/* Now the slow client reads: the terminal state and "end" were kept, and
	 * a fresh snapshot follows once its queue drained, with the dropped state
	 * of the second job (states already sent are not repeated). */
	if (!read_until_at(slow_fd, slow_buf, sizeof(slow_buf), &slen, 0, "event: end", 10000)) {
		test_proc_wait_for(&gw, "\"nothing\"", 100);
		ck_abort_msg("slow client: no end (%zu bytes): %s\nlog: %s", slen,
		             slow_buf + (slen > 300 ? slen - 300 : 0), gw.buf);
	}
	after_end = strstr(slow_buf, "event: end");
	ck_assert_msg(read_until_at(slow_fd, slow_buf, sizeof(slow_buf), &slen,
	                            (size_t)(after_end - slow_buf),
	                            "\"current_step\" : \"second-last\"", 5000),
	              "no snapshot after end: %s", after_end);
	ck_assert_ptr_nonnull(strstr(after_end, "event: job"));
	ck_assert_ptr_null(strstr(after_end, "\"current_step\" : \"last\""));
	/* Each step was one distinct state: fewer job events means drops. */
	for (const char *p = slow_buf; (p = strstr(p, "event: job")) != NULL && p < after_end; p++)
		job_events++;
	ck_assert_msg(job_events < i - 1, "the slow client got all %d progress events", i - 1);
	ck_assert_msg(strstr(slow_buf, "\"status\" : \"failed\"") < after_end, "%s", slow_buf);
	/* The fast client's stream stayed complete and in order. */
	for (int k = 1, at = 0; k < i; k++) {
		char *p;

		snprintf(needle, sizeof(needle), "x%d\"", k);
		p = strstr(fast + at, needle);
		ck_assert_msg(p != NULL, "fast client lacks step %d", k);
		at = (int)(p - fast);
	}
	if (http11) {
		/* Both streams are whole chunks up to what is still in flight. */
		dechunk(slow_buf, decoded, sizeof(decoded));
		ck_assert_ptr_nonnull(strstr(decoded, "\"status\" : \"failed\""));
		ck_assert_ptr_nonnull(strstr(decoded, "event: end\n"));
		dechunk(fast, decoded, sizeof(decoded));
		snprintf(needle, sizeof(needle), "x%d\"", i - 1);
		ck_assert_ptr_nonnull(strstr(decoded, needle));
	}
	{
		char q[256];

		snprintf(q, sizeof(q),
		         "UPDATE importer.import_jobs SET status='cancelled', phase='done'"
		         " WHERE id = '%s'",
		         id2);
		PQclear(test_db_exec(db, q));
	}
	PQfinish(db);
	close(slow_fd);
	close(fast_fd);
	stop_gateway();
}
END_TEST

/* A client that never reads, far past hard_bytes (16 x 1 KiB here) within one
 * delivery of log lines: the stream is closed in the middle of the loop over
 * its subscribers and nothing touches it afterwards (the ASan build aborts on
 * a use after free); the gateway keeps serving and exits 0. */
START_TEST(stalled_client_closed_during_log_delivery)
{
	static char buf[1 << 16];
	char id[64], path[256];
	size_t len = 0;
	int slow, fd;
	struct resp r;

	start_gateway_with("IMPORTER_SSE_QUEUE_BYTES=1024");
	EXPECT(&r, 202, "POST", "/api/jobs?kind=csv", tok_b, NULL, "id\n1\n", 5);
	json_str(r.body, "id", id, sizeof(id));
	snprintf(path, sizeof(path), "/api/events?logs_for=%s", id);
	slow = open_slow_sse(path, tok_b, false);
	/* Live once the retry hint is out; from here on it never reads. */
	ck_assert_msg(read_until(slow, buf, sizeof(buf), &len, "retry: ", 5000), "%s", buf);
	sql("INSERT INTO importer.import_logs (job_id, event, message)"
	    " SELECT '%s', 'e', repeat('x', 100000) FROM generate_series(1, 30)",
	    id);
	ck_assert_msg(test_proc_wait_for(&gw, "\"sse.dropped_client\"", 5000), "%s", gw.buf);
	/* Still serving: a request and a new stream. */
	snprintf(path, sizeof(path), "/api/jobs/%s", id);
	EXPECT(&r, 200, "GET", path, tok_b, NULL, NULL, 0);
	snprintf(path, sizeof(path), "/api/jobs/%s/events", id);
	fd = open_sse(path, tok_b, NULL);
	len = 0;
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "event: job", 5000), "%s", buf);
	close(fd);
	close(slow);
	sql("UPDATE importer.import_jobs SET status='cancelled', phase='done' WHERE id='%s'", id);
	stop_gateway();
	ck_assert_msg(strstr(gw.buf, "AddressSanitizer") == NULL, "%s", gw.buf);
}
END_TEST

/* One commit adds a log line and finishes the job: the log and state queries
 * run on different pool connections, so the state may arrive first. The
 * per-job stream must still show the line before "end". Repeated so the race
 * shows. */
START_TEST(job_stream_sends_final_log_lines_before_end)
{
	static char buf[1 << 16];
	struct resp r;

	start_gateway();
	for (int k = 0; k < 20; k++) {
		char id[64], path[256], line[32];
		const char *l, *e;
		size_t len = 0;
		int fd;

		EXPECT(&r, 202, "POST", "/api/jobs?kind=noop", tok_d, NULL, NULL, 0);
		json_str(r.body, "id", id, sizeof(id));
		snprintf(path, sizeof(path), "/api/jobs/%s/events", id);
		fd = open_sse(path, tok_d, NULL);
		ck_assert_msg(
		    read_until(fd, buf, sizeof(buf), &len, "\"status\" : \"pending\"", 5000), "%s",
		    buf);
		snprintf(line, sizeof(line), "final-line-%d", k);
		sql("BEGIN; INSERT INTO importer.import_logs (job_id, event, message) VALUES"
		    " ('%s', 'done', '%s'); UPDATE importer.import_jobs SET status='completed',"
		    " phase='done', progress=100 WHERE id='%s'; COMMIT",
		    id, line, id);
		ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "event: end", 5000), "%s",
		              buf);
		ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, NULL, 5000),
		              "stream not closed");
		close(fd);
		l = strstr(buf, line);
		e = strstr(buf, "event: end");
		ck_assert_msg(l != NULL && l < e, "run %d: no %s before end: %s", k, line, buf);
		ck_assert_ptr_nonnull(strstr(e, "\"status\":\"completed\""));
		/* The line before "event: end" is its id. */
		for (l = e - 1; l > buf && l[-1] != '\n'; l--)
			;
		ck_assert_msg(strncmp(l, "id: ", 4) == 0, "end without id: %s", buf);
	}
	stop_gateway();
}
END_TEST

/* Lets USER_F hold 5000 streams (the default is 20), submits a job of
 * USER_F that stays pending: tok (1024 bytes) gets USER_F's token, id (64)
 * the job, path its event route. */
static void job_for_many_streams(char *tok, char *id, char *path, size_t pathlen)
{
	struct resp r;

	sql("INSERT INTO importer.settings (key, value, user_id) VALUES"
	    " ('max_sse_streams_per_user', '5000', '" USER_F "') ON CONFLICT DO NOTHING");
	mint(USER_F, tok, 1024);
	EXPECT(&r, 202, "POST", "/api/jobs?kind=noop", tok, NULL, NULL, 0);
	json_str(r.body, "id", id, 64);
	snprintf(path, pathlen, "/api/jobs/%s/events", id);
}

/* Copies the event of stream text that holds marker (from the line after the
 * blank line before it to the blank line that ends it) to out. */
static void event_around(const char *text, const char *marker, char *out, size_t cap)
{
	const char *m = strstr(text, marker), *start, *end;

	ck_assert_msg(m != NULL, "no %s in %s", marker, text);
	for (start = m;
	     start > text && !(start[-1] == '\n' && start - 1 > text && start[-2] == '\n');)
		start--;
	end = strstr(m, "\n\n");
	ck_assert_ptr_nonnull(end);
	ck_assert_uint_lt((size_t)(end + 2 - start), cap);
	memcpy(out, start, (size_t)(end + 2 - start));
	out[end + 2 - start] = '\0';
}

/* One change, many streams of one job: HTTP/1.1 streams (chunked), HTTP/1.0
 * ones (raw) and one that resumed from an id ahead of the job's seq all get
 * the same event bytes, the last one under its own (never lower) id. */
START_TEST(one_frame_reaches_many_streams_byte_identical)
{
	enum { N11 = 40, N10 = 4, N = N11 + N10 + 1 };
	static char raw[N][16384], body[N][16384];
	char id[64], path[256], first[4096] = "", ev[4096], tok[1024];
	size_t len[N] = {0};
	int fd[N];

	start_gateway();
	job_for_many_streams(tok, id, path, sizeof(path));
	for (int i = 0; i < N; i++)
		fd[i] = i < N11         ? open_sse11(path, tok, NULL)
		        : i < N11 + N10 ? open_sse(path, tok, NULL)
		                        : open_sse11(path, tok, "Last-Event-ID: 999999999\r\n");
	for (int i = 0; i < N; i++)
		ck_assert_msg(read_until(fd[i], raw[i], sizeof(raw[i]), &len[i],
		                         "\"status\" : \"pending\"", 5000),
		              "stream %d: %s", i, raw[i]);
	sql("UPDATE importer.import_jobs SET current_step = 'one-frame' WHERE id = '%s'", id);
	for (int i = 0; i < N; i++) {
		bool chunked = i < N11 || i == N - 1;
		const char *text = body[i];
		char *m;

		ck_assert_msg(read_until(fd[i], raw[i], sizeof(raw[i]), &len[i], "one-frame", 5000),
		              "stream %d: %s", i, raw[i]);
		m = strstr(raw[i], "one-frame");
		/* The whole event: up to its blank line (and, chunked, the chunk's end). */
		ck_assert(read_until_at(fd[i], raw[i], sizeof(raw[i]), &len[i],
		                        (size_t)(m - raw[i]), chunked ? "\n\n\r\n" : "\n\n", 5000));
		if (chunked)
			dechunk(raw[i], body[i], sizeof(body[i]));
		else
			text = strstr(raw[i], "\r\n\r\n") + 4;
		event_around(text, "one-frame", ev, sizeof(ev));
		if (i == N - 1) {
			ck_assert_msg(strncmp(ev, "id: 999999999\n", 14) == 0, "%s", ev);
			ck_assert_str_eq(strchr(ev, '\n'), strchr(first, '\n'));
		} else if (i == 0) {
			snprintf(first, sizeof(first), "%s", ev);
			ck_assert_msg(strncmp(first, "id: ", 4) == 0 &&
			                  strstr(first, "\nevent: job\ndata: {") != NULL,
			              "%s", first);
		} else {
			ck_assert_msg(strcmp(ev, first) == 0, "stream %d:\n%s\nstream 0:\n%s", i,
			              ev, first);
		}
	}
	for (int i = 0; i < N; i++)
		close(fd[i]);
	stop_gateway();
}
END_TEST

/* Over a thousand streams at once, most of them of different users, each
 * waiting for its first state: more than the pool's queue holds (1024), yet
 * every one answers 200 (the hub queues them and streams of the same job share
 * one query), and the change that follows reaches all of them. */
START_TEST(burst_of_stream_opens_all_answer_200)
{
	enum { USERS = 1100, SAME_JOB = 300, N = USERS + SAME_JOB };
	static int fds[N];
	static char tok[1024], buf[8192];
	char id[64], path[256], user[40];
	struct rlimit rl;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_msg(rl.rlim_max >= 2 * N, "needs %d descriptors, the hard limit is %lu", 2 * N,
	              (unsigned long)rl.rlim_max);
	rl.rlim_cur = rl.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	start_gateway();
	job_for_many_streams(tok, id, path, sizeof(path));
	/* Every request goes out before any answer is read. */
	for (int i = 0; i < N; i++) {
		if (i < SAME_JOB) {
			fds[i] = open_sse(path, tok, NULL);
			continue;
		}
		snprintf(user, sizeof(user), "%08x-1111-4000-8000-%012d", (unsigned)i, i);
		mint(user, buf, sizeof(buf));
		fds[i] = open_sse("/api/events", buf, NULL);
	}
	for (int i = 0; i < N; i++) {
		size_t len = 0;

		ck_assert_msg(read_until(fds[i], buf, sizeof(buf), &len, "retry: ", 60000),
		              "stream %d of %d: %s", i, N, buf);
		ck_assert_msg(strncmp(buf + 9, "200", 3) == 0, "stream %d: %s", i, buf);
	}
	sql("UPDATE importer.import_jobs SET current_step = 'after-the-burst' WHERE id = '%s'", id);
	for (int i = 0; i < SAME_JOB; i++) {
		size_t len = 0;

		ck_assert_msg(read_until(fds[i], buf, sizeof(buf), &len, "after-the-burst", 10000),
		              "stream %d: %s", i, buf);
	}
	for (int i = 0; i < N; i++)
		close(fds[i]);
	stop_gateway();
}
END_TEST

/* Waits until n of the gateway's pool backends wait for a lock. */
static void wait_lock_waiters(int n)
{
	long t0 = now_ms();
	char want[16];
	char *v;

	snprintf(want, sizeof(want), "%d", n);
	for (;;) {
		v = admin_value("SELECT count(*) FROM pg_stat_activity WHERE datname = '%s'"
		                " AND application_name = 'importer-gateway'"
		                " AND wait_event_type = 'Lock'",
		                DB);
		if (strcmp(v, want) == 0 || now_ms() - t0 > 5000)
			break;
		free(v);
		poll(NULL, 0, 20);
	}
	ck_assert_str_eq(v, want);
	free(v);
}

START_TEST(sigterm_drains_requests_and_ends_streams)
{
	static char sse[1 << 16], a[8192], b[8192];
	size_t slen = 0, alen = 0, blen = 0;
	char id[64], path[256];
	PGconn *jobs_lock, *records_lock;
	const char *snap;
	long t0;
	int sfd, afd, bfd, rc;

	start_gateway();
	submit_csv(id, sizeof(id));
	snprintf(path, sizeof(path), "/api/jobs/%s/events", id);
	sfd = open_sse(path, tok_a, NULL);
	ck_assert_msg(read_until(sfd, sse, sizeof(sse), &slen, "\"status\" : \"pending\"", 5000),
	              "%s", sse);
	snap = strstr(sse, "event: job");
	/* Two requests waiting on the database: one will be let through during
	 * the drain, the other is still stuck at its deadline. */
	jobs_lock = test_db_connect(DB);
	records_lock = test_db_connect(DB);
	PQclear(test_db_exec(jobs_lock,
	                     "BEGIN; LOCK TABLE importer.import_jobs IN ACCESS EXCLUSIVE MODE"));
	PQclear(test_db_exec(records_lock,
	                     "BEGIN; LOCK TABLE importer.records IN ACCESS EXCLUSIVE MODE"));
	snprintf(path, sizeof(path), "/api/jobs/%s", id);
	afd = send_req("GET", path, tok_a, NULL, NULL, 0);
	bfd = send_req("GET", "/api/records", tok_a, NULL, NULL, 0);
	wait_lock_waiters(2);

	t0 = now_ms();
	kill(gw.pid, SIGTERM);
	/* The stream ends at once, with a retry hint after its events. */
	ck_assert_msg(read_until(sfd, sse, sizeof(sse), &slen, NULL, 3000), "stream still open");
	ck_assert_ptr_nonnull(strstr(snap, "retry: "));
	close(sfd);
	/* No new connections are accepted. */
	{
		struct sockaddr_in sa = {0};
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		sa.sin_family = AF_INET;
		sa.sin_port = htons((uint16_t)port);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ck_assert_int_ne(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		close(fd);
	}
	/* The first request finishes normally once its lock is gone. */
	PQclear(test_db_exec(jobs_lock, "ROLLBACK"));
	ck_assert_msg(read_until(afd, a, sizeof(a), &alen, NULL, 3000), "no answer");
	ck_assert_msg(strstr(a, " 200 ") != NULL && strstr(a, id) != NULL, "%s", a);
	/* The second gets 503 at the drain deadline (3 s), then the process exits 0. */
	ck_assert_msg(read_until(bfd, b, sizeof(b), &blen, NULL, 6000), "no answer");
	ck_assert_msg(strstr(b, " 503 ") != NULL, "%s", b);
	ck_assert_ptr_nonnull(strstr(b, "Retry-After: 1"));
	ck_assert_ptr_nonnull(strstr(b, "\"code\":\"unavailable\""));
	rc = test_proc_stop(&gw, 0, 3000);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_lt(now_ms() - t0, 5000);
	PQclear(test_db_exec(records_lock, "ROLLBACK"));
	PQfinish(jobs_lock);
	PQfinish(records_lock);
	close(afd);
	close(bfd);
}
END_TEST

static long notifications(void)
{
	return metric("importer_notifications_received_total");
}

/* Waits until the gateway has received want notifications in all. */
static void wait_notifications(long want)
{
	long t0 = now_ms(), got;

	while ((got = notifications()) < want && now_ms() - t0 < 5000)
		poll(NULL, 0, 10);
	ck_assert_int_ge(got, want);
}

/* A user has one refresh query at a time (states in commit order): a change
 * heard of while it waits goes out as soon as it is answered, not only at the
 * user's next notification (there may be none). */
START_TEST(change_heard_during_a_refresh_follows_it)
{
	static char buf[1 << 16];
	char j1[64], j2[64], b1buf[8192], b2buf[8192];
	size_t len = 0, b1len = 0, b2len = 0;
	PGconn *lock;
	long n0;
	int fd, b1, b2;

	start_gateway();
	submit_csv(j1, sizeof(j1));
	submit_csv(j2, sizeof(j2));
	fd = open_sse("/api/events", tok_a, NULL);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, j1, 5000), "%s", buf);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, j2, 5000), "%s", buf);
	/* Both pool connections wait on a lock, so the refresh queries queue. */
	lock = test_db_connect(DB);
	PQclear(test_db_exec(lock, "BEGIN; LOCK TABLE importer.records IN ACCESS EXCLUSIVE MODE"));
	b1 = send_req("GET", "/api/records", tok_b, NULL, NULL, 0);
	b2 = send_req("GET", "/api/records", tok_b, NULL, NULL, 0);
	wait_lock_waiters(2);
	n0 = notifications();
	/* The first change's refresh is queued, the second arrives meanwhile. */
	sql("UPDATE importer.import_jobs SET current_step = 'one' WHERE id = '%s'", j1);
	wait_notifications(n0 + 1);
	sql("UPDATE importer.import_jobs SET current_step = 'two' WHERE id = '%s'", j2);
	wait_notifications(n0 + 2);
	PQclear(test_db_exec(lock, "ROLLBACK"));
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "\"current_step\" : \"one\"", 5000),
	              "%s", buf);
	ck_assert_msg(read_until(fd, buf, sizeof(buf), &len, "\"current_step\" : \"two\"", 5000),
	              "the change heard of during the refresh never came: %s",
	              buf + (len > 1000 ? len - 1000 : 0));
	ck_assert_msg(read_until(b1, b1buf, sizeof(b1buf), &b1len, NULL, 5000), "no answer");
	ck_assert_msg(read_until(b2, b2buf, sizeof(b2buf), &b2len, NULL, 5000), "no answer");
	ck_assert_msg(strstr(b1buf, " 200 ") != NULL, "%s", b1buf);
	PQfinish(lock);
	close(b1);
	close(b2);
	close(fd);
	stop_gateway();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gateway");
	TCase *tc = tcase_create("http"), *burst;

	tcase_add_unchecked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, job_routes_and_their_errors);
	tcase_add_test(tc, jwt_attacks_get_401);
	tcase_add_test(tc, sse_job_stream_snapshot_changes_end_and_reconnect);
	tcase_add_test(tc, sse_global_stream_wait_and_stalled_client);
	tcase_add_test(tc, listen_reconnect_resnapshots_streams);
	tcase_add_test(tc, pool_loss_gives_503_and_recovers);
	tcase_add_test(tc, per_user_limits_answer_429);
	tcase_add_test(tc, global_stream_logs_for_one_job);
	tcase_add_loop_test(tc, slow_client_drops_progress_then_resnapshots, 0, 2);
	tcase_add_test(tc, one_frame_reaches_many_streams_byte_identical);
	tcase_add_test(tc, stalled_client_closed_during_log_delivery);
	tcase_add_test(tc, job_stream_sends_final_log_lines_before_end);
	tcase_add_test(tc, sigterm_drains_requests_and_ends_streams);
	tcase_add_test(tc, change_heard_during_a_refresh_follows_it);
	tcase_add_test(tc, held_wait_requests_are_capped_per_user);
	tcase_add_test(tc, database_host_names_are_resolved_without_blocking_the_loop);
	suite_add_tcase(s, tc);
	/* Thousands of connections through the sanitizer build on a busy machine. */
	burst = tcase_create("burst");
	tcase_add_unchecked_fixture(burst, setup, NULL);
	tcase_set_timeout(burst, 240);
	tcase_add_test(burst, burst_of_stream_opens_all_answer_200);
	suite_add_tcase(s, burst);
	return test_run_suite(s);
}
