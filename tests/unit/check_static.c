/* check_static.c -- the embedded web UI as the gateway serves it (api/static.c).
 *
 * A real evhttp server whose only callback is static_serve runs in a child
 * process; the test speaks raw HTTP/1.1 to it over loopback, so it sees the
 * exact status line, headers and body a browser gets. No database needed.
 */
#include <arpa/inet.h>
#include <check.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "static.h"
#include "test_suite.h"

static pid_t server_pid;
static int server_port;

static void serve_cb(struct evhttp_request *req, void *arg)
{
	(void)static_serve(req);
}

static void server_start(void)
{
	struct event_base *base = event_base_new();
	struct evhttp *http = evhttp_new(base);
	struct evhttp_bound_socket *sock;
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);

	ck_assert_ptr_nonnull(http);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
	                                     EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
	                                     EVHTTP_REQ_OPTIONS);
	evhttp_set_gencb(http, serve_cb, NULL);
	sock = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	ck_assert_ptr_nonnull(sock);
	ck_assert_int_eq(
	    getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&sa, &salen), 0);
	server_port = ntohs(sa.sin_port);
	server_pid = fork();
	ck_assert_int_ge(server_pid, 0);
	if (server_pid == 0) {
		/* The child's own epoll set: the parent's frees must not reach it. */
		if (event_reinit(base) != 0)
			_exit(1);
		event_base_dispatch(base);
		_exit(0);
	}
	evhttp_free(http); /* the child holds its own copy of the socket */
	event_base_free(base);
}

static void server_stop(void)
{
	kill(server_pid, SIGKILL);
	waitpid(server_pid, NULL, 0);
}

struct resp {
	int status;
	char head[8192]; /* status line + headers */
	char *body;      /* malloc'd, NUL-terminated */
	size_t body_len;
};

/* Sends one request (Connection: close) and reads the whole answer. */
static void request(struct resp *r, const char *method, const char *target, const char *extra)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server_port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char req[2048];
	size_t cap = 1 << 16, len = 0;
	char *all = malloc(cap);
	char *sep;
	ssize_t n;
	int w;

	ck_assert_int_ge(fd, 0);
	ck_assert_ptr_nonnull(all);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	w = snprintf(req, sizeof(req),
	             "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n", method,
	             target, extra != NULL ? extra : "");
	ck_assert_int_eq(write(fd, req, (size_t)w), w);
	while ((n = read(fd, all + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 4096) {
			cap *= 2;
			all = realloc(all, cap);
			ck_assert_ptr_nonnull(all);
		}
	}
	close(fd);
	all[len] = '\0';
	sep = strstr(all, "\r\n\r\n");
	ck_assert_msg(sep != NULL, "no end of headers in: %s", all);
	ck_assert_uint_lt((size_t)(sep - all), sizeof(r->head));
	memcpy(r->head, all, (size_t)(sep - all) + 2);
	r->head[sep - all + 2] = '\0';
	r->body_len = len - (size_t)(sep + 4 - all);
	r->body = malloc(r->body_len + 1);
	memcpy(r->body, sep + 4, r->body_len);
	r->body[r->body_len] = '\0';
	ck_assert_int_eq(sscanf(all, "HTTP/1.1 %d", &r->status), 1);
	free(all);
}

/* The value of header name (case-insensitive), copied to out; NULL if absent. */
static const char *header(const struct resp *r, const char *name, char *out, size_t outlen)
{
	const char *p = strstr(r->head, "\r\n");
	size_t nlen = strlen(name);

	while (p != NULL && p[2] != '\0') {
		const char *line = p + 2, *end = strstr(line, "\r\n");

		if (end == NULL)
			break;
		if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;

			while (*v == ' ')
				v++;
			snprintf(out, outlen, "%.*s", (int)(end - v), v);
			return out;
		}
		p = end;
	}
	return NULL;
}

static void expect_header(const struct resp *r, const char *name, const char *want)
{
	char v[1024];

	ck_assert_msg(header(r, name, v, sizeof(v)) != NULL, "no %s header in:\n%s", name, r->head);
	ck_assert_str_eq(v, want);
}

static void expect_security_headers(const struct resp *r)
{
	char v[1024];

	ck_assert_ptr_nonnull(header(r, "Content-Security-Policy", v, sizeof(v)));
	ck_assert_ptr_nonnull(strstr(v, "default-src 'none'"));
	ck_assert_ptr_nonnull(strstr(v, "script-src 'self';"));
	ck_assert_ptr_nonnull(strstr(v, "connect-src 'self';"));
	ck_assert_ptr_nonnull(strstr(v, "frame-ancestors 'none'"));
	ck_assert_ptr_null(strstr(v, "unsafe"));
	expect_header(r, "X-Content-Type-Options", "nosniff");
	expect_header(r, "Referrer-Policy", "no-referrer");
	expect_header(r, "X-Frame-Options", "DENY");
}

static void resp_free(struct resp *r)
{
	free(r->body);
	r->body = NULL;
}

START_TEST(table_is_sorted_and_has_the_page)
{
	const struct static_asset *index = static_find("/index.html");

	ck_assert_uint_gt(static_assets_count, 2);
	for (size_t i = 0; i < static_assets_count; i++) {
		ck_assert_msg(static_assets[i].path[0] == '/', "%s", static_assets[i].path);
		ck_assert_uint_eq(strlen(static_assets[i].etag), 18); /* "16 hex digits" */
		if (i > 0)
			ck_assert_int_lt(strcmp(static_assets[i - 1].path, static_assets[i].path),
			                 0);
		ck_assert_ptr_eq(static_find(static_assets[i].path), &static_assets[i]);
	}
	ck_assert_ptr_nonnull(index);
	ck_assert_ptr_eq(static_find("/"), index);
	ck_assert_str_eq(index->content_type, "text/html; charset=utf-8");
	ck_assert_ptr_null(static_find(""));
	ck_assert_ptr_null(static_find(NULL));
	ck_assert_ptr_null(static_find("index.html"));
	ck_assert_ptr_null(static_find("/index.html/"));
	ck_assert_ptr_null(static_find("/INDEX.HTML"));
}
END_TEST

START_TEST(get_serves_each_asset_with_its_type)
{
	struct resp r;
	char v[256];

	server_start();
	for (size_t i = 0; i < static_assets_count; i++) {
		const struct static_asset *a = &static_assets[i];
		const char *ext = strrchr(a->path, '.');

		request(&r, "GET", a->path, NULL);
		ck_assert_int_eq(r.status, 200);
		expect_header(&r, "Content-Type", a->content_type);
		expect_header(&r, "ETag", a->etag);
		expect_header(&r, "Cache-Control", "no-cache");
		expect_security_headers(&r);
		ck_assert_uint_eq(r.body_len, a->len);
		ck_assert_int_eq(memcmp(r.body, a->data, a->len), 0);
		snprintf(v, sizeof(v), "%zu", a->len);
		expect_header(&r, "Content-Length", v);
		if (strcmp(ext, ".js") == 0)
			ck_assert_str_eq(a->content_type, "text/javascript; charset=utf-8");
		else if (strcmp(ext, ".css") == 0)
			ck_assert_str_eq(a->content_type, "text/css; charset=utf-8");
		else if (strcmp(ext, ".html") == 0)
			ck_assert_str_eq(a->content_type, "text/html; charset=utf-8");
		else if (strcmp(ext, ".svg") == 0)
			ck_assert_str_eq(a->content_type, "image/svg+xml");
		resp_free(&r);
	}
	/* "/" is the page; a query string does not change what is served. */
	request(&r, "GET", "/", NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "<!doctype html>"));
	expect_header(&r, "Content-Type", "text/html; charset=utf-8");
	expect_header(&r, "ETag", static_find("/index.html")->etag);
	resp_free(&r);
	request(&r, "GET", "/?utm=x", NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.body_len, static_find("/index.html")->len);
	resp_free(&r);
	server_stop();
}
END_TEST

START_TEST(etag_revalidation_answers_304)
{
	const struct static_asset *a = static_find("/app.js");
	struct resp r;
	char hdr[256];

	ck_assert_ptr_nonnull(a);
	server_start();
	snprintf(hdr, sizeof(hdr), "If-None-Match: %s\r\n", a->etag);
	request(&r, "GET", "/app.js", hdr);
	ck_assert_int_eq(r.status, 304);
	ck_assert_uint_eq(r.body_len, 0);
	expect_header(&r, "ETag", a->etag);
	expect_security_headers(&r);
	resp_free(&r);
	/* In a list, weak, or "*": still a match. */
	snprintf(hdr, sizeof(hdr), "If-None-Match: \"0000\", W/%s\r\n", a->etag);
	request(&r, "GET", "/app.js", hdr);
	ck_assert_int_eq(r.status, 304);
	resp_free(&r);
	request(&r, "GET", "/app.js", "If-None-Match: *\r\n");
	ck_assert_int_eq(r.status, 304);
	resp_free(&r);
	/* Another file's ETag, or a stale one: the full file. */
	snprintf(hdr, sizeof(hdr), "If-None-Match: %s\r\n", static_find("/index.html")->etag);
	request(&r, "GET", "/app.js", hdr);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.body_len, a->len);
	resp_free(&r);
	request(&r, "GET", "/app.js", "If-None-Match: \"deadbeefdeadbeef\"\r\n");
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	server_stop();
}
END_TEST

START_TEST(unknown_and_traversal_paths_are_404)
{
	static const char *const paths[] = {
	    "/nope.html",        "/index.html/",      "/INDEX.HTML",
	    "/../index.html",    "/web/index.html",   "/%2e%2e/etc/passwd",
	    "/..%2findex.html",  "/./index.html",     "/app.js/..",
	    "/../../etc/passwd", "/index.html%00.js", "/app.js.map",
	    "/CMakeLists.txt",   "/%69ndex.html",     NULL,
	};
	struct resp r;

	server_start();
	for (int i = 0; paths[i] != NULL; i++) {
		request(&r, "GET", paths[i], NULL);
		ck_assert_msg(r.status == 404 || r.status == 400, "%s: %d", paths[i], r.status);
		ck_assert_ptr_null(strstr(r.body, "<!doctype html>"));
		ck_assert_ptr_null(strstr(r.body, "root:"));
		resp_free(&r);
	}
	request(&r, "GET", "/nope.html", NULL);
	ck_assert_int_eq(r.status, 404);
	expect_header(&r, "Content-Type", "application/json");
	ck_assert_str_eq(r.body,
	                 "{\"error\":{\"code\":\"not_found\",\"message\":\"no such route\"}}\n");
	expect_security_headers(&r);
	resp_free(&r);
	server_stop();
}
END_TEST

START_TEST(other_methods_are_405_and_head_has_no_body)
{
	static const char *const methods[] = {"POST", "PUT", "DELETE", "OPTIONS", NULL};
	const struct static_asset *index = static_find("/index.html");
	struct resp r;
	char v[64];

	server_start();
	for (int i = 0; methods[i] != NULL; i++) {
		request(&r, methods[i], "/", "Content-Length: 0\r\n");
		ck_assert_msg(r.status == 405, "%s /: %d", methods[i], r.status);
		expect_header(&r, "Allow", "GET, HEAD");
		ck_assert_ptr_nonnull(strstr(r.body, "\"code\":\"method_not_allowed\""));
		resp_free(&r);
	}
	request(&r, "POST", "/nope.js", "Content-Length: 0\r\n");
	ck_assert_int_eq(r.status, 404);
	resp_free(&r);
	request(&r, "HEAD", "/", NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.body_len, 0);
	snprintf(v, sizeof(v), "%zu", index->len);
	expect_header(&r, "Content-Length", v);
	expect_header(&r, "Content-Type", "text/html; charset=utf-8");
	expect_header(&r, "ETag", index->etag);
	expect_security_headers(&r);
	resp_free(&r);
	request(&r, "HEAD", "/nope", NULL);
	ck_assert_int_eq(r.status, 404);
	ck_assert_uint_eq(r.body_len, 0);
	resp_free(&r);
	server_stop();
}
END_TEST

static Suite *static_suite(void)
{
	Suite *s = suite_create("static");
	TCase *tc = tcase_create("assets");

	tcase_add_test(tc, table_is_sorted_and_has_the_page);
	tcase_add_test(tc, get_serves_each_asset_with_its_type);
	tcase_add_test(tc, etag_revalidation_answers_304);
	tcase_add_test(tc, unknown_and_traversal_paths_are_404);
	tcase_add_test(tc, other_methods_are_405_and_head_has_no_body);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run_suite(static_suite());
}
