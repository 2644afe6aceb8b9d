/* gateway.c -- the gateway's HTTP server skeleton, readiness and shutdown.
 *
 * Routes answer JSON; unknown routes get DESIGN.md's error shape. The HTTP API
 * proper (jobs, uploads, SSE) hangs off this server.
 */
#include "gateway.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "channels.h"
#include "jsonutil.h"
#include "log.h"
#include "pglisten.h"

struct gateway {
	struct event_base *base;    /* borrowed */
	const struct config *cfg;   /* borrowed */
	struct evhttp *http;        /* owned */
	int port;                   /* bound port */
	struct pglisten *listener;  /* owned */
	struct event *sigterm_ev;   /* owned */
	struct event *sigint_ev;    /* owned */
	bool stopping;
};

/* Sends a JSON body with status; takes ownership of body. */
static void reply_json(struct evhttp_request *req, int status, struct json_object *body)
{
	struct evbuffer *buf = evbuffer_new();
	const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evbuffer_add_printf(buf, "%s\n", text);
	evhttp_send_reply(req, status, NULL, buf);
	evbuffer_free(buf);
	json_object_put(body);
}

static void reply_error(struct evhttp_request *req, int status, const char *code,
			const char *message)
{
	struct json_object *body = json_object_new_object();
	struct json_object *error = json_object_new_object();

	jsonutil_add(error, "code", json_object_new_string(code));
	jsonutil_add(error, "message", json_object_new_string(message));
	jsonutil_add(body, "error", error);
	reply_json(req, status, body);
}

static void healthz_cb(struct evhttp_request *req, void *arg)
{
	struct json_object *body = json_object_new_object();

	jsonutil_add(body, "status", json_object_new_string("ok"));
	reply_json(req, HTTP_OK, body);
}

static void readyz_cb(struct evhttp_request *req, void *arg)
{
	struct gateway *gw = arg;
	bool listening = pglisten_ready(gw->listener);
	struct json_object *body = json_object_new_object();

	jsonutil_add(body, "status", json_object_new_string(listening ? "ready" : "unready"));
	jsonutil_add(body, "listen", json_object_new_boolean(listening));
	reply_json(req, listening && !gw->stopping ? HTTP_OK : 503, body);
}

static void fallback_cb(struct evhttp_request *req, void *arg)
{
	reply_error(req, HTTP_NOTFOUND, "not_found", "no such route");
}

static void notify_cb(const char *channel, const char *payload, void *arg)
{
	log_debug("gateway.notify", LF_STR("channel", channel), LF_STR("payload", payload));
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct gateway *gw = arg;

	if (gw->stopping) {
		event_base_loopbreak(gw->base);
		return;
	}
	gw->stopping = true;
	log_info("gateway.stopping", LF_I64("signal", sig));
	event_base_loopexit(gw->base, NULL);
}

struct gateway *gateway_new(struct event_base *base, const struct config *cfg)
{
	struct gateway *gw = calloc(1, sizeof(*gw));

	if (gw == NULL)
		return NULL;
	gw->base = base;
	gw->cfg = cfg;
	return gw;
}

static int bind_http(struct gateway *gw, char *err, size_t errlen)
{
	struct evhttp_bound_socket *sock;
	struct sockaddr_storage ss;
	ev_socklen_t sslen = sizeof(ss);
	char host[256];
	int port;

	if (config_split_addr(gw->cfg->http_addr, host, sizeof(host), &port) != 0) {
		snprintf(err, errlen, "bad IMPORTER_HTTP_ADDR \"%s\"", gw->cfg->http_addr);
		return -1;
	}
	gw->http = evhttp_new(gw->base);
	if (gw->http == NULL) {
		snprintf(err, errlen, "evhttp_new failed");
		return -1;
	}
	evhttp_set_default_content_type(gw->http, "application/json");
	evhttp_set_allowed_methods(gw->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
						     EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
	evhttp_set_cb(gw->http, "/healthz", healthz_cb, gw);
	evhttp_set_cb(gw->http, "/readyz", readyz_cb, gw);
	evhttp_set_gencb(gw->http, fallback_cb, gw);
	sock = evhttp_bind_socket_with_handle(gw->http, host, (ev_uint16_t)port);
	if (sock == NULL) {
		snprintf(err, errlen, "cannot listen on %s", gw->cfg->http_addr);
		return -1;
	}
	if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &sslen) == 0) {
		if (ss.ss_family == AF_INET)
			gw->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			gw->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	return 0;
}

int gateway_start(struct gateway *gw, char *err, size_t errlen)
{
	static const char *const channels[] = {CHANNEL_EVENTS, NULL};

	if (bind_http(gw, err, errlen) != 0)
		return -1;
	gw->sigterm_ev = evsignal_new(gw->base, SIGTERM, signal_cb, gw);
	gw->sigint_ev = evsignal_new(gw->base, SIGINT, signal_cb, gw);
	gw->listener = pglisten_new(gw->base, gw->cfg->listen_database_url, "importer-gateway-listen",
				    channels, notify_cb, NULL, gw);
	if (gw->sigterm_ev == NULL || gw->sigint_ev == NULL || gw->listener == NULL ||
	    event_add(gw->sigterm_ev, NULL) != 0 || event_add(gw->sigint_ev, NULL) != 0) {
		snprintf(err, errlen, "cannot set up the event loop");
		return -1;
	}
	pglisten_start(gw->listener);
	log_info("gateway.started", LF_STR("http_addr", gw->cfg->http_addr),
		 LF_I64("port", gw->port));
	return 0;
}

int gateway_port(const struct gateway *gw)
{
	return gw->port;
}

void gateway_free(struct gateway *gw)
{
	if (gw == NULL)
		return;
	if (gw->http != NULL)
		evhttp_free(gw->http);
	pglisten_free(gw->listener);
	if (gw->sigterm_ev != NULL)
		event_free(gw->sigterm_ev);
	if (gw->sigint_ev != NULL)
		event_free(gw->sigint_ev);
	free(gw);
}
