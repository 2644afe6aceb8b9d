/* static.c -- serves the embedded web UI (see static.h). */
#include "static.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The page loads its own scripts, styles and images and talks to its own
 * origin; nothing inline, nothing from elsewhere, no framing. */
#define CSP                                                                                        \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "                \
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "              \
	"form-action 'self'; frame-ancestors 'none'"

const struct static_asset *static_find(const char *path)
{
	size_t lo = 0, hi = static_assets_count;

	if (path == NULL)
		return NULL;
	if (strcmp(path, "/") == 0)
		path = "/index.html";
	while (lo < hi) { /* the table is sorted by path */
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(path, static_assets[mid].path);

		if (cmp == 0)
			return &static_assets[mid];
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Whether an If-None-Match header names etag (a list, or "*"). Weak
 * validators match too: for GET the comparison is the weak one (RFC 9110). */
static bool etag_matches(const char *header, const char *etag)
{
	size_t elen = strlen(etag);
	const char *p = header;

	while (*p != '\0') {
		size_t n;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '*')
			return true;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		n = strcspn(p, ",");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == elen && memcmp(p, etag, elen) == 0)
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

/* DESIGN.md's error shape, as the API's routes answer. */
static void send_error(struct evhttp_request *req, int status, const char *reason, const char *code,
                       const char *message)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evbuffer *buf = evbuffer_new();

	evhttp_add_header(out, "Content-Type", "application/json");
	if (buf != NULL && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
		evbuffer_add_printf(buf, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code,
		                    message);
	evhttp_send_reply(req, status, reason, buf);
	if (buf != NULL)
		evbuffer_free(buf);
}

int static_serve(struct evhttp_request *req)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const struct static_asset *a = static_find(uri != NULL ? evhttp_uri_get_path(uri) : NULL);
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const char *inm;
	char len[32];

	evhttp_add_header(out, "Content-Security-Policy", CSP);
	evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(out, "Referrer-Policy", "no-referrer");
	evhttp_add_header(out, "X-Frame-Options", "DENY");
	if (a == NULL) {
		send_error(req, HTTP_NOTFOUND, "Not Found", "not_found", "no such route");
		return HTTP_NOTFOUND;
	}
	if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
		evhttp_add_header(out, "Allow", "GET, HEAD");
		send_error(req, HTTP_BADMETHOD, "Method Not Allowed", "method_not_allowed",
		           "method not allowed on this route");
		return HTTP_BADMETHOD;
	}
	/* The URLs carry no version, so browsers revalidate every time and
	 * get a 304 while the binary is the same. */
	evhttp_add_header(out, "Cache-Control", "no-cache");
	evhttp_add_header(out, "ETag", a->etag);
	inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
	if (inm != NULL && etag_matches(inm, a->etag)) {
		evhttp_send_reply(req, HTTP_NOTMODIFIED, "Not Modified", NULL);
		return HTTP_NOTMODIFIED;
	}
	evhttp_add_header(out, "Content-Type", a->content_type);
	if (m == EVHTTP_REQ_HEAD) {
		/* evhttp sends no body for HEAD, and no length unless told. */
		snprintf(len, sizeof(len), "%zu", a->len);
		evhttp_add_header(out, "Content-Length", len);
		evhttp_send_reply(req, HTTP_OK, "OK", NULL);
	} else {
		struct evbuffer *buf = evbuffer_new();

		if (buf == NULL || evbuffer_add_reference(buf, a->data, a->len, NULL, NULL) != 0) {
			if (buf != NULL)
				evbuffer_free(buf);
			send_error(req, HTTP_SERVUNAVAIL, "Service Unavailable", "unavailable",
			           "out of memory");
			return HTTP_SERVUNAVAIL;
		}
		evhttp_send_reply(req, HTTP_OK, "OK", buf);
		evbuffer_free(buf);
	}
	return HTTP_OK;
}
