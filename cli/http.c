/* http.c -- importctl's HTTP client on evhttp (see http.h).
 *
 * Owns the connections, the requests in flight and the copies of answers.
 * evhttp frees a request after its completion callback; a connection must not
 * be freed from inside its own callbacks, so streams are freed from a
 * zero-timeout event of their own (or by http_client_free).
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct call {
	struct http_client *client; /* borrowed */
	struct call *next;          /* in client->calls */
	http_done_cb done_cb;
	void *arg;
	int error;         /* enum evhttp_request_error, -1 if none */
	int sys_errno;     /* errno when the error was reported */
	bool sending;      /* inside evhttp_make_request */
	bool failed_early; /* completed (failed) inside evhttp_make_request */
};

struct http_stream {
	struct http_client *client;     /* borrowed */
	struct http_stream *next;       /* in client->streams */
	struct evhttp_connection *conn; /* owned */
	struct event *free_ev;          /* owned; deferred free */
	struct evbuffer *errbody;       /* owned; body of a non-200 answer */
	http_data_cb data_cb;
	http_end_cb end_cb;
	void *arg;
	int error, sys_errno;
	bool ended;   /* end_cb was called (or must not be) */
	bool opening; /* inside evhttp_make_request */
	bool freeing;
};

struct http_client {
	struct event_base *base;        /* borrowed */
	struct evhttp_connection *conn; /* owned; keep-alive, ordinary requests */
	struct call *calls;             /* owned; in flight */
	struct http_stream *streams;    /* owned */
	char url[512];                  /* as given */
	char addr[INET6_ADDRSTRLEN];    /* resolved, numeric */
	unsigned short port;
	char host_header[300];
	char prefix[256]; /* path of the base URL without trailing '/' */
	char *auth;       /* owned; "Bearer ..." or NULL */
	int timeout_s;
};

void http_response_free(struct http_response *r)
{
	if (r == NULL)
		return;
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

const char *http_client_url(const struct http_client *c)
{
	return c->url;
}

char *http_encode(const char *s)
{
	return evhttp_encode_uri(s);
}

struct http_client *http_client_new(struct event_base *base, const char *base_url,
                                    const char *token, int timeout_s, bool *bad_url, char *err,
                                    size_t errlen)
{
	struct evhttp_uri *uri = NULL;
	struct http_client *c = NULL;
	struct addrinfo hints, *ai = NULL;
	const char *scheme, *host, *path;
	char bare[INET6_ADDRSTRLEN + 8];
	int port, rc;

	*bad_url = true;
	uri = evhttp_uri_parse(base_url);
	if (uri == NULL || (scheme = evhttp_uri_get_scheme(uri)) == NULL ||
	    (host = evhttp_uri_get_host(uri)) == NULL || host[0] == '\0') {
		snprintf(err, errlen, "bad URL '%.200s' (want http://HOST[:PORT])", base_url);
		goto fail;
	}
	if (strcmp(scheme, "http") != 0) {
		snprintf(err, errlen,
		         "URL scheme '%.20s' is not supported (only http://; put TLS in "
		         "front of the gateway and importctl on the inside)",
		         scheme);
		goto fail;
	}
	if (evhttp_uri_get_query(uri) != NULL || evhttp_uri_get_fragment(uri) != NULL) {
		snprintf(err, errlen, "the URL '%.200s' must not have a query or fragment",
		         base_url);
		goto fail;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	c->base = base;
	c->timeout_s = timeout_s;
	snprintf(c->url, sizeof(c->url), "%s", base_url);
	port = evhttp_uri_get_port(uri);
	c->port = (unsigned short)(port > 0 ? port : 80);
	snprintf(c->host_header, sizeof(c->host_header), "%s:%u", host, c->port);
	/* An IPv6 literal comes with its brackets; getaddrinfo wants it bare. */
	if (host[0] == '[' && strlen(host) > 2 && strlen(host) - 2 < sizeof(bare)) {
		memcpy(bare, host + 1, strlen(host) - 2);
		bare[strlen(host) - 2] = '\0';
		host = bare;
	}
	path = evhttp_uri_get_path(uri);
	snprintf(c->prefix, sizeof(c->prefix), "%s", path != NULL ? path : "");
	while (c->prefix[0] != '\0' && c->prefix[strlen(c->prefix) - 1] == '/')
		c->prefix[strlen(c->prefix) - 1] = '\0';
	/* Resolved once, here: a name that does not resolve is a clear error
	 * now rather than a vague connection failure later. */
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	*bad_url = false;
	rc = getaddrinfo(host, NULL, &hints, &ai);
	if (rc != 0 || ai == NULL) {
		snprintf(err, errlen, "cannot resolve host '%.100s': %s", host, gai_strerror(rc));
		goto fail;
	}
	if (ai->ai_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr,
		          c->addr, sizeof(c->addr));
	else
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr, c->addr,
		          sizeof(c->addr));
	freeaddrinfo(ai);
	if (token != NULL) {
		size_t n = strlen(token) + 8;

		c->auth = malloc(n);
		if (c->auth == NULL) {
			*bad_url = false;
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		snprintf(c->auth, n, "Bearer %s", token);
	}
	c->conn = evhttp_connection_base_new(base, NULL, c->addr, c->port);
	if (c->conn == NULL) {
		snprintf(err, errlen, "cannot create an HTTP connection");
		goto fail;
	}
	evhttp_connection_set_timeout(c->conn, timeout_s);
	evhttp_uri_free(uri);
	return c;
fail:
	if (uri != NULL)
		evhttp_uri_free(uri);
	http_client_free(c);
	return NULL;
}

static void stream_destroy(struct http_stream *s)
{
	struct http_stream **pp;

	for (pp = &s->client->streams; *pp != NULL; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	if (s->conn != NULL)
		evhttp_connection_free(s->conn); /* frees a request still in flight */
	if (s->free_ev != NULL)
		event_free(s->free_ev);
	if (s->errbody != NULL)
		evbuffer_free(s->errbody);
	free(s);
}

void http_client_free(struct http_client *c)
{
	if (c == NULL)
		return;
	while (c->streams != NULL)
		stream_destroy(c->streams);
	if (c->conn != NULL)
		evhttp_connection_free(c->conn); /* requests in flight: no callbacks */
	while (c->calls != NULL) {
		struct call *next = c->calls->next;

		free(c->calls);
		c->calls = next;
	}
	free(c->auth);
	free(c);
}

/* evhttp reports a refused connection as a bare EOF: one blocking connect
 * (at most 2 s, on the error path only) finds the reason. Returns errno, or 0
 * when the gateway accepts connections (so it closed this one). */
static int probe(const struct http_client *c)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct pollfd pfd;
	int fd, e = 0, flags;
	socklen_t el = sizeof(e);

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, c->addr, &((struct sockaddr_in *)(void *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)(void *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)(void *)&ss)->sin_port = htons(c->port);
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, c->addr, &((struct sockaddr_in6 *)(void *)&ss)->sin6_addr) ==
	           1) {
		((struct sockaddr_in6 *)(void *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)(void *)&ss)->sin6_port = htons(c->port);
		sl = sizeof(struct sockaddr_in6);
	} else {
		return 0;
	}
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		return errno;
	flags = fcntl(fd, F_GETFL, 0);
	(void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
		e = errno;
		if (e == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			e = poll(&pfd, 1, 2000) == 1 ? 0 : ETIMEDOUT;
			if (e == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
				e = errno;
		}
	}
	close(fd);
	return e;
}

/* What a failed request's error code means, for people. */
static void describe_error(int error, int sys_errno, char *buf, size_t len)
{
	if (sys_errno == ECONNREFUSED || sys_errno == EHOSTUNREACH || sys_errno == ENETUNREACH ||
	    sys_errno == ECONNRESET || sys_errno == ETIMEDOUT) {
		snprintf(buf, len, "%s", strerror(sys_errno));
		return;
	}
	switch (error) {
	case EVREQ_HTTP_TIMEOUT:
		snprintf(buf, len, "no answer in time");
		break;
	case EVREQ_HTTP_EOF:
		snprintf(buf, len, "the connection was closed before an answer");
		break;
	case EVREQ_HTTP_INVALID_HEADER:
		snprintf(buf, len, "not an HTTP answer");
		break;
	case EVREQ_HTTP_DATA_TOO_LONG:
		snprintf(buf, len, "answer too large");
		break;
	default:
		snprintf(buf, len, "connection failed");
		break;
	}
}

/* Copies an answer into res. req may be NULL (no answer). */
static void fill_response(const struct http_client *c, struct evhttp_request *req, int error,
                          int sys_errno, struct evbuffer *body, struct http_response *res)
{
	memset(res, 0, sizeof(*res));
	res->status = req != NULL ? evhttp_request_get_response_code(req) : 0;
	if (res->status == 0) {
		if (error != EVREQ_HTTP_TIMEOUT && sys_errno != ECONNREFUSED)
			sys_errno = probe(c);
		describe_error(error, sys_errno, res->error, sizeof(res->error));
		return;
	}
	{
		const char *loc =
		    evhttp_find_header(evhttp_request_get_input_headers(req), "Location");

		if (loc != NULL)
			snprintf(res->location, sizeof(res->location), "%s", loc);
	}
	if (body == NULL)
		body = evhttp_request_get_input_buffer(req);
	res->len = evbuffer_get_length(body);
	res->body = malloc(res->len + 1);
	if (res->body == NULL) {
		res->status = 0;
		res->len = 0;
		snprintf(res->error, sizeof(res->error), "out of memory");
		return;
	}
	if (res->len > 0)
		evbuffer_copyout(body, res->body, res->len);
	res->body[res->len] = '\0';
}

static void unlink_call(struct call *k)
{
	for (struct call **pp = &k->client->calls; *pp != NULL; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			return;
		}
}

static void call_error_cb(enum evhttp_request_error error, void *arg)
{
	struct call *k = arg;

	k->error = (int)error;
	k->sys_errno = errno;
}

static void call_done_cb(struct evhttp_request *req, void *arg)
{
	struct call *k = arg;
	struct http_response res;

	if (k->sending) { /* a synchronous failure: http_send reports it */
		k->failed_early = true;
		return;
	}
	fill_response(k->client, req, k->error, k->sys_errno, NULL, &res);
	unlink_call(k);
	k->done_cb(&res, k->arg);
	http_response_free(&res);
	free(k);
}

/* A request with the headers every request carries. */
static struct evhttp_request *new_request(struct http_client *c,
                                          void (*cb)(struct evhttp_request *, void *), void *arg,
                                          const char *content_type)
{
	struct evhttp_request *req = evhttp_request_new(cb, arg);
	struct evkeyvalq *h;

	if (req == NULL)
		return NULL;
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", c->host_header);
	evhttp_add_header(h, "User-Agent", "importctl/" IMPORTER_VERSION);
	if (c->auth != NULL)
		evhttp_add_header(h, "Authorization", c->auth);
	if (content_type != NULL)
		evhttp_add_header(h, "Content-Type", content_type);
	return req;
}

int http_send(struct http_client *c, enum evhttp_cmd_type method, const char *path,
              const char *content_type, const char *const *headers, struct evbuffer *body,
              http_done_cb done_cb, void *arg)
{
	struct call *k = calloc(1, sizeof(*k));
	struct evhttp_request *req;
	char uri[2048];

	if (k == NULL)
		return -1;
	if ((size_t)snprintf(uri, sizeof(uri), "%s%s", c->prefix, path) >= sizeof(uri)) {
		free(k);
		return -1;
	}
	k->client = c;
	k->done_cb = done_cb;
	k->arg = arg;
	k->error = -1;
	req = new_request(c, call_done_cb, k, content_type);
	if (req == NULL) {
		free(k);
		return -1;
	}
	evhttp_request_set_error_cb(req, call_error_cb);
	for (int i = 0; headers != NULL && headers[i] != NULL && headers[i + 1] != NULL; i += 2)
		evhttp_add_header(evhttp_request_get_output_headers(req), headers[i],
		                  headers[i + 1]);
	if (body != NULL && evbuffer_add_buffer(evhttp_request_get_output_buffer(req), body) != 0) {
		evhttp_request_free(req);
		free(k);
		return -1;
	}
	k->next = c->calls;
	c->calls = k;
	k->sending = true;
	if (evhttp_make_request(c->conn, req, method, uri) != 0 || k->failed_early) {
		/* evhttp has dropped req; done_cb must not run. */
		unlink_call(k);
		free(k);
		return -1;
	}
	k->sending = false;
	return 0;
}

struct sync_call {
	bool done;
	struct http_response *out;
};

static void sync_done_cb(struct http_response *res, void *arg)
{
	struct sync_call *s = arg;

	*s->out = *res;
	res->body = NULL; /* moved to s->out */
	s->done = true;
}

int http_call(struct http_client *c, enum evhttp_cmd_type method, const char *path,
              const char *content_type, const char *const *headers, struct evbuffer *body,
              struct http_response *out)
{
	struct sync_call s = {false, out};

	memset(out, 0, sizeof(*out));
	if (http_send(c, method, path, content_type, headers, body, sync_done_cb, &s) != 0) {
		snprintf(out->error, sizeof(out->error), "cannot send the request");
		return -1;
	}
	while (!s.done)
		if (event_base_loop(c->base, EVLOOP_ONCE) < 0) {
			snprintf(out->error, sizeof(out->error), "event loop failed");
			return -1;
		}
	return 0;
}

/* ==== Streams ==== */

static void stream_free_cb(evutil_socket_t fd, short what, void *arg)
{
	stream_destroy(arg);
}

void http_stream_free(struct http_stream *s)
{
	struct timeval zero = {0, 0};

	if (s == NULL || s->freeing)
		return;
	s->freeing = true;
	s->ended = true; /* no more callbacks */
	if (s->free_ev == NULL || event_add(s->free_ev, &zero) != 0)
		stream_destroy(s); /* (only when the event could not be made) */
}

static void stream_error_cb(enum evhttp_request_error error, void *arg)
{
	struct http_stream *s = arg;

	s->error = (int)error;
	s->sys_errno = errno;
}

static void stream_chunk_cb(struct evhttp_request *req, void *arg)
{
	struct http_stream *s = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);

	if (s->ended)
		return;
	if (evhttp_request_get_response_code(req) != 200) {
		evbuffer_add_buffer(s->errbody, in); /* the error answer, for end_cb */
		return;
	}
	while (evbuffer_get_length(in) > 0 && !s->ended) {
		struct evbuffer_iovec v;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		s->data_cb(v.iov_base, v.iov_len, s->arg);
		evbuffer_drain(in, v.iov_len);
	}
}

static void stream_done_cb(struct evhttp_request *req, void *arg)
{
	struct http_stream *s = arg;
	struct http_response res;

	if (s->ended)
		return;
	s->ended = true;
	if (s->opening)
		return; /* a synchronous failure: http_stream_open reports it */
	if (req != NULL && evhttp_request_get_response_code(req) != 200)
		evbuffer_add_buffer(s->errbody, evhttp_request_get_input_buffer(req));
	fill_response(s->client, req, s->error, s->sys_errno, s->errbody, &res);
	if (res.status == 200 && s->error >= 0) { /* the body broke off */
		res.status = 0;
		describe_error(s->error, s->sys_errno, res.error, sizeof(res.error));
	}
	s->end_cb(&res, s->arg);
	http_response_free(&res);
}

struct http_stream *http_stream_open(struct http_client *c, const char *path,
                                     const char *last_event_id, int idle_s, http_data_cb data_cb,
                                     http_end_cb end_cb, void *arg)
{
	struct http_stream *s = calloc(1, sizeof(*s));
	struct evhttp_request *req;
	char uri[2048];

	if (s == NULL)
		return NULL;
	s->client = c;
	s->data_cb = data_cb;
	s->end_cb = end_cb;
	s->arg = arg;
	s->error = -1;
	s->next = c->streams;
	c->streams = s;
	s->free_ev = event_new(c->base, -1, 0, stream_free_cb, s);
	s->errbody = evbuffer_new();
	s->conn = evhttp_connection_base_new(c->base, NULL, c->addr, c->port);
	if (s->free_ev == NULL || s->errbody == NULL || s->conn == NULL ||
	    (size_t)snprintf(uri, sizeof(uri), "%s%s", c->prefix, path) >= sizeof(uri))
		goto fail;
	/* The server sends a heartbeat at least every 15 s: a longer silence
	 * means the connection is gone without a FIN. */
	evhttp_connection_set_timeout(s->conn, idle_s);
	req = new_request(c, stream_done_cb, s, NULL);
	if (req == NULL)
		goto fail;
	evhttp_request_set_chunked_cb(req, stream_chunk_cb);
	evhttp_request_set_error_cb(req, stream_error_cb);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Accept", "text/event-stream");
	if (last_event_id != NULL && last_event_id[0] != '\0')
		evhttp_add_header(evhttp_request_get_output_headers(req), "Last-Event-ID",
		                  last_event_id);
	s->opening = true;
	if (evhttp_make_request(s->conn, req, EVHTTP_REQ_GET, uri) != 0 || s->ended)
		goto fail;
	s->opening = false;
	return s;
fail:
	stream_destroy(s);
	return NULL;
}
