/* http.h -- importctl's HTTP client on libevent's evhttp.
 *
 * One client per gateway URL: a keep-alive connection for ordinary requests
 * (answered whole) and, per stream, a connection of its own whose body is
 * handed over as it arrives (Server-Sent Events). Requests are asynchronous;
 * http_call() runs the loop until one answer is in, for the simple commands.
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTCTL_HTTP_H
#define IMPORTCTL_HTTP_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stddef.h>

/* A finished request. status 0: no HTTP answer at all (see error). */
struct http_response {
	int status;
	char *body; /* owned; NUL-terminated (the body may hold NULs: use len) */
	size_t len;
	char error[160];   /* status 0: what went wrong ("connection refused"...) */
	char location[96]; /* the Location header, or "" */
};

void http_response_free(struct http_response *r);

struct http_client;

/* Parses base_url ("http://host[:port][/prefix]") and resolves its host.
 * token may be NULL (no Authorization header). timeout_s applies to ordinary
 * requests. Returns: new client, caller frees with http_client_free(); NULL
 * with a message in err, *bad_url telling a malformed URL (a usage error)
 * from a host that does not resolve. */
struct http_client *http_client_new(struct event_base *base, const char *base_url,
                                    const char *token, int timeout_s, bool *bad_url, char *err,
                                    size_t errlen);
void http_client_free(struct http_client *c);

/* The base URL as given (for messages). Returns: borrowed, valid while c lives. */
const char *http_client_url(const struct http_client *c);

/* Called once per request with the outcome; res is borrowed for the call. */
typedef void (*http_done_cb)(struct http_response *res, void *arg);

/* Sends method path (path and query, already encoded, relative to the base
 * URL's prefix, starting with '/'). body may be NULL; its contents are moved
 * into the request. headers: NULL, or extra "name", "value" pairs ending with
 * NULL. Returns 0 (done_cb will be called exactly once, never before this
 * returns), or -1 (done_cb is not called). */
int http_send(struct http_client *c, enum evhttp_cmd_type method, const char *path,
              const char *content_type, const char *const *headers, struct evbuffer *body,
              http_done_cb done_cb, void *arg);

/* http_send and run the loop until the answer is in (never from a callback).
 * Returns 0 with *out filled (caller frees with http_response_free), -1 when
 * the request could not be sent (out->error says why). */
int http_call(struct http_client *c, enum evhttp_cmd_type method, const char *path,
              const char *content_type, const char *const *headers, struct evbuffer *body,
              struct http_response *out);

/* ==== Streams ==== */

struct http_stream;

/* Body bytes as they arrive (status 200 only); borrowed for the call. */
typedef void (*http_data_cb)(const char *data, size_t len, void *arg);
/* The stream ended: res->status is the HTTP status (200: the server closed
 * it; other: an error answer, body in res), 0 when the connection failed or
 * went silent for idle_s (res->error). The stream must still be freed. */
typedef void (*http_end_cb)(struct http_response *res, void *arg);

/* GETs path on a connection of its own with Accept: text/event-stream and
 * Last-Event-ID (unless NULL or ""). idle_s: seconds without a byte after
 * which the stream counts as lost. Returns: new stream, caller frees with
 * http_stream_free() (also allowed from its callbacks: the free is then
 * deferred); NULL on failure. Retains arg until freed or ended. */
struct http_stream *http_stream_open(struct http_client *c, const char *path,
                                     const char *last_event_id, int idle_s, http_data_cb data_cb,
                                     http_end_cb end_cb, void *arg);
void http_stream_free(struct http_stream *s);

/* Percent-encodes s for a query value. Returns: new string, caller frees
 * with free(); NULL when out of memory. */
char *http_encode(const char *s);

#endif
