/* gateway.c -- the gateway's HTTP server, pool, LISTEN connection, metrics and shutdown.
 *
 * Routing and the API handlers live in routes.c, streams and waiters in
 * hub.c. Every reply of an API request goes through call_reply_*, which
 * counts it for /metrics. Shutdown order matters: streams end first, then the
 * pool fails what is still queued (503, while evhttp can still send), then
 * evhttp goes.
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
#include <time.h>

#include "channels.h"
#include "gateway_int.h"
#include "http_util.h"
#include "jsonutil.h"
#include "log.h"
#include "static.h"

static const char *const route_names[R_COUNT] = {
	"healthz",     "readyz",     "metrics",      "jobs_submit",  "jobs_list",
	"jobs_clear",  "job_get",    "job_delete",   "job_action",   "job_logs",
	"job_errors",  "job_events", "events",       "upload_begin", "upload_chunk",
	"records",     "stats",      "static",       "other",
};

static const double bucket_le[GW_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					     0.25,  0.5,    1,     2.5,  5,     10,  1e300};

void gateway_options_default(struct gateway_options *o)
{
	o->heartbeat_ms = 15000;
	o->http_timeout_s = 30;
	o->max_queue = 1024;
	o->max_uploads = 8;
	o->max_headers = 16384;
	o->sse_queue_bytes = 256 * 1024;
	o->drain_ms = 3000;
}

int64_t gw_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void gw_count(struct gateway *gw, enum route route, int status, int64_t start_us)
{
	struct gw_metrics *m = &gw->metrics;

	for (int i = 0; i < GW_MAX_CODES; i++) {
		if (m->by_status[route][i].code == 0)
			m->by_status[route][i].code = status;
		if (m->by_status[route][i].code == status) {
			m->by_status[route][i].count++;
			break;
		}
	}
	if (start_us > 0) {
		double s = (double)(gw_now_us() - start_us) / 1e6;
		int b = 0;

		while (b < GW_BUCKETS - 1 && s > bucket_le[b])
			b++;
		m->hist[b]++;
		m->sum_s += s;
		m->count++;
	}
}

void call_release(struct call *c)
{
	if (c->is_upload)
		c->gw->uploads--;
	free(c);
}

void call_reply_text(struct call *c, int status, const char *json)
{
	gw_count(c->gw, c->route, status, c->start_us);
	if (status == 204) {
		evhttp_send_reply(c->req, 204, "No Content", NULL);
	} else {
		if (status == 429 || status == 503)
			evhttp_add_header(evhttp_request_get_output_headers(c->req), "Retry-After",
					  "1");
		http_reply_text(c->req, status, json);
	}
	call_release(c);
}

void call_reply_error(struct call *c, int status, const char *code, const char *message)
{
	struct json_object *body = json_object_new_object();
	struct json_object *error = json_object_new_object();

	jsonutil_add(error, "code", json_object_new_string(code));
	jsonutil_add(error, "message", json_object_new_string(message));
	jsonutil_add(body, "error", error);
	call_reply_text(c, status,
			json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN |
								     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(body);
}

static void call_result_cb(const struct pgpool_result *r, void *arg)
{
	struct call *c = arg;
	const char *code;
	int status;

	if (r->unavailable) {
		call_reply_error(c, 503, "unavailable", "database unavailable");
		return;
	}
	if (r->res == NULL) {
		status = http_status_for_sqlstate(r->sqlstate, c->user[0] != '\0', &code);
		if (status == 500) {
			log_error("request.sql_error", LF_STR("route", route_names[c->route]),
				  LF_STR("sqlstate", r->sqlstate), LF_STR("error", r->message));
			call_reply_error(c, 500, code, "internal error");
			return;
		}
		call_reply_error(c, status, code, r->message);
		return;
	}
	c->on_ok(c, r->res);
}

void call_exec(struct call *c, const char *sql, int nparams, const struct pgpool_param *params,
	       char *data, size_t dlen, const char *then_sql)
{
	int rc;

	if (c->gw->stopping) {
		free(data);
		call_reply_error(c, 503, "unavailable", "shutting down");
		return;
	}
	if (data != NULL)
		rc = pgpool_exec_owned(c->gw->pool, c->user, sql, nparams, params, data, dlen,
				       then_sql, call_result_cb, c);
	else
		rc = pgpool_exec(c->gw->pool, c->user, sql, nparams, params, then_sql,
				 call_result_cb, c);
	if (rc != 0)
		call_reply_error(c, 503, "unavailable",
				 c->gw->stopping ? "shutting down" : "database unavailable or busy");
}

/* ==== Built-in routes ==== */

static void healthz_cb(struct evhttp_request *req, void *arg)
{
	struct gateway *gw = arg;

	gw_count(gw, R_HEALTHZ, 200, 0);
	http_reply_text(req, HTTP_OK, "{\"status\":\"ok\"}");
}

static void readyz_cb(struct evhttp_request *req, void *arg)
{
	struct gateway *gw = arg;
	bool listening = pglisten_ready(gw->listener);
	int live = pgpool_live(gw->pool);
	bool ready = listening && live > 0 && !gw->stopping;
	struct json_object *body = json_object_new_object();

	jsonutil_add(body, "status", json_object_new_string(ready ? "ready" : "unready"));
	jsonutil_add(body, "listen", json_object_new_boolean(listening));
	jsonutil_add(body, "pool_live", json_object_new_int(live));
	jsonutil_add(body, "pool_size", json_object_new_int(pgpool_size(gw->pool)));
	gw_count(gw, R_READYZ, ready ? 200 : 503, 0);
	http_reply_json(req, ready ? HTTP_OK : 503, body);
}

static void metrics_cb(struct evhttp_request *req, void *arg)
{
	struct gateway *gw = arg;
	struct gw_metrics *m = &gw->metrics;
	struct evbuffer *buf = evbuffer_new();
	struct hub_stats hs;
	int64_t cum = 0;

	gw_count(gw, R_METRICS, 200, 0);
	hub_get_stats(gw->hub, &hs);
	evbuffer_add_printf(buf, "# HELP importer_http_requests_total HTTP requests answered.\n"
				 "# TYPE importer_http_requests_total counter\n");
	for (int r = 0; r < R_COUNT; r++)
		for (int i = 0; i < GW_MAX_CODES && m->by_status[r][i].code != 0; i++)
			evbuffer_add_printf(buf,
					    "importer_http_requests_total{route=\"%s\",status=\"%d\"} "
					    "%lld\n",
					    route_names[r], m->by_status[r][i].code,
					    (long long)m->by_status[r][i].count);
	evbuffer_add_printf(buf, "# HELP importer_http_request_duration_seconds Time to the reply "
				 "(streams: to the first byte).\n"
				 "# TYPE importer_http_request_duration_seconds histogram\n");
	for (int b = 0; b < GW_BUCKETS; b++) {
		cum += m->hist[b];
		if (b == GW_BUCKETS - 1)
			evbuffer_add_printf(buf,
					    "importer_http_request_duration_seconds_bucket{le=\"+Inf\"}"
					    " %lld\n",
					    (long long)cum);
		else
			evbuffer_add_printf(buf,
					    "importer_http_request_duration_seconds_bucket{le=\"%g\"}"
					    " %lld\n",
					    bucket_le[b], (long long)cum);
	}
	evbuffer_add_printf(buf,
			    "importer_http_request_duration_seconds_sum %.6f\n"
			    "importer_http_request_duration_seconds_count %lld\n"
			    "# TYPE importer_sse_streams_open gauge\nimporter_sse_streams_open %lld\n"
			    "# TYPE importer_wait_requests_open gauge\n"
			    "importer_wait_requests_open %lld\n"
			    "# TYPE importer_sse_events_relayed_total counter\n"
			    "importer_sse_events_relayed_total %lld\n"
			    "# TYPE importer_sse_events_dropped_total counter\n"
			    "importer_sse_events_dropped_total %lld\n"
			    "# TYPE importer_notifications_received_total counter\n"
			    "importer_notifications_received_total %lld\n"
			    "# TYPE importer_db_pool_size gauge\nimporter_db_pool_size %d\n"
			    "# TYPE importer_db_pool_live gauge\nimporter_db_pool_live %d\n"
			    "# TYPE importer_db_pool_busy gauge\nimporter_db_pool_busy %d\n"
			    "# TYPE importer_db_pool_queued gauge\nimporter_db_pool_queued %d\n"
			    "# TYPE importer_listen_ready gauge\nimporter_listen_ready %d\n",
			    m->sum_s, (long long)m->count, (long long)hs.streams,
			    (long long)hs.waiters, (long long)hs.events_relayed,
			    (long long)hs.dropped, (long long)hs.notifications,
			    pgpool_size(gw->pool), pgpool_live(gw->pool), pgpool_busy(gw->pool),
			    pgpool_queued(gw->pool), pglisten_ready(gw->listener) ? 1 : 0);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4");
	evhttp_send_reply(req, HTTP_OK, "OK", buf);
	evbuffer_free(buf);
}

/* Everything else: /api/... through routes.c, the rest is the web UI's
 * (static.c: its embedded files, else 404). */
static void api_cb(struct evhttp_request *req, void *arg)
{
	struct gateway *gw = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	const char *qs = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	struct evkeyvalq query;
	char buf[512];
	char *segs[8];
	int n;
	bool is_api;
	struct call *c = calloc(1, sizeof(*c));

	if (log_enabled(LOG_DEBUG)) {
		char uri_log[512];

		http_redact_uri(evhttp_request_get_uri(req), uri_log, sizeof(uri_log));
		log_debug("http.request", LF_STR("uri", uri_log));
	}
	if (c == NULL) {
		http_reply_error(req, 503, "unavailable", "out of memory");
		return;
	}
	c->gw = gw;
	c->req = req;
	c->route = R_OTHER;
	c->start_us = gw_now_us();
	query.tqh_first = NULL;
	query.tqh_last = &query.tqh_first;
	n = path != NULL ? http_split_path(path, buf, sizeof(buf), segs, 8) : -1;
	/* "/api" and "/api/..." (even one too long to split) are the API's;
	 * every other path is the web UI's. */
	is_api = n > 0 ? strcmp(segs[0], "api") == 0
		       : path != NULL && strncmp(path, "/api/", 5) == 0;
	if (!is_api) {
		gw_count(gw, R_STATIC, static_serve(req), c->start_us);
		call_release(c);
		return;
	}
	if (n < 1) {
		call_reply_error(c, 404, "not_found", "no such route");
		return;
	}
	if (qs != NULL && http_query_has_nul(qs)) {
		call_reply_error(c, 400, "bad_request", "the query string must not contain %00");
		return;
	}
	if (qs != NULL && evhttp_parse_query_str(qs, &query) != 0) {
		call_reply_error(c, 400, "bad_request", "malformed query string");
		return;
	}
	routes_dispatch(c, evhttp_request_get_command(req), segs + 1, n - 1, &query);
	evhttp_clear_headers(&query);
}

/* ==== LISTEN ==== */

static void notify_cb(const char *channel, const char *payload, void *arg)
{
	struct gateway *gw = arg;

	if (strcmp(channel, CHANNEL_EVENTS) == 0)
		hub_notify(gw->hub, payload);
}

static void listen_state_cb(bool ready, void *arg)
{
	struct gateway *gw = arg;

	/* Notifications were lost while away: every subscriber re-reads. */
	if (ready)
		hub_resync(gw->hub);
}

static void pool_first_cb(bool ok, void *arg)
{
	struct gateway *gw = arg;

	/* Starting LISTEN only now means listen.ready implies a usable pool,
	 * which is what the readiness probe (and its tests) mean by ready. */
	if (!gw->listen_started) {
		gw->listen_started = true;
		pglisten_start(gw->listener);
	}
}

static void hub_replied_cb(struct evhttp_request *req, int status, void *arg)
{
	struct gateway *gw = arg;
	const char *uri = evhttp_request_get_uri(req);

	gw_count(gw, strstr(uri, "/events") != NULL ? R_JOB_EVENTS : R_JOBS_SUBMIT, status, 0);
}

/* ==== Lifecycle ==== */

static void exit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gateway *gw = arg;

	event_base_loopexit(gw->base, NULL);
}

/* After the drain: give the last replies a moment to flush, then leave. */
static void leave_soon(struct gateway *gw)
{
	struct timeval flush = {0, 200000};

	if (gw->drain_ev != NULL)
		event_del(gw->drain_ev);
	if (event_base_once(gw->base, -1, EV_TIMEOUT, exit_cb, gw, &flush) != 0)
		event_base_loopexit(gw->base, NULL);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gateway *gw = arg;
	int waiting = pgpool_busy(gw->pool) + pgpool_queued(gw->pool);

	if (waiting == 0) {
		log_info("gateway.drained");
		leave_soon(gw);
	} else if (gw_now_us() >= gw->drain_deadline_us) {
		/* Their callbacks answer 503 now, while the loop can still send. */
		log_warn("gateway.drain_timeout", LF_I64("requests", waiting));
		pgpool_shutdown(gw->pool);
		leave_soon(gw);
	}
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct gateway *gw = arg;
	struct timeval tick = {0, 20000};

	if (gw->stopping) {
		log_info("gateway.fast_exit", LF_I64("signal", sig));
		event_base_loopbreak(gw->base);
		return;
	}
	gw->stopping = true;
	log_info("gateway.stopping", LF_I64("signal", sig));
	/* Stop accepting, end the streams with a retry hint, let requests that
	 * wait on the database finish (or 503 them at the deadline), give the
	 * replies a moment to flush, then leave the loop. */
	if (gw->sock != NULL) {
		evhttp_del_accept_socket(gw->http, gw->sock);
		gw->sock = NULL;
	}
	hub_shutdown(gw->hub);
	gw->drain_deadline_us = gw_now_us() + (int64_t)gw->opts.drain_ms * 1000;
	gw->drain_ev = event_new(gw->base, -1, EV_PERSIST, drain_cb, gw);
	if (gw->drain_ev == NULL || event_add(gw->drain_ev, &tick) != 0) {
		pgpool_shutdown(gw->pool);
		leave_soon(gw);
	}
}

struct gateway *gateway_new(struct event_base *base, const struct config *cfg,
			    const struct gateway_options *opts)
{
	struct gateway *gw = calloc(1, sizeof(*gw));

	if (gw == NULL)
		return NULL;
	gw->base = base;
	gw->cfg = cfg;
	if (opts != NULL)
		gw->opts = *opts;
	else
		gateway_options_default(&gw->opts);
	return gw;
}

static int bind_http(struct gateway *gw, char *err, size_t errlen)
{
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
						     EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
						     EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
	/* Uploads are whole request bodies (libevent 2.1 buffers them); larger
	 * files go through the chunked upload routes. */
	evhttp_set_max_body_size(gw->http, (ev_ssize_t)gw->cfg->max_upload_bytes);
	evhttp_set_max_headers_size(gw->http, (ev_ssize_t)gw->opts.max_headers);
	evhttp_set_timeout(gw->http, gw->opts.http_timeout_s);
	evhttp_set_cb(gw->http, "/healthz", healthz_cb, gw);
	evhttp_set_cb(gw->http, "/readyz", readyz_cb, gw);
	evhttp_set_cb(gw->http, "/metrics", metrics_cb, gw);
	evhttp_set_gencb(gw->http, api_cb, gw);
	gw->sock = evhttp_bind_socket_with_handle(gw->http, host, (ev_uint16_t)port);
	if (gw->sock == NULL) {
		snprintf(err, errlen, "cannot listen on %s", gw->cfg->http_addr);
		return -1;
	}
	if (getsockname(evhttp_bound_socket_get_fd(gw->sock), (struct sockaddr *)&ss, &sslen) ==
	    0) {
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
	struct hub_options ho = {
		.heartbeat_ms = gw->opts.heartbeat_ms,
		.retry_ms = 2000,
		.queue_bytes = gw->opts.sse_queue_bytes,
		.hard_bytes = gw->opts.sse_queue_bytes * 16,
	};

	if (bind_http(gw, err, errlen) != 0)
		return -1;
	gw->sigterm_ev = evsignal_new(gw->base, SIGTERM, signal_cb, gw);
	gw->sigint_ev = evsignal_new(gw->base, SIGINT, signal_cb, gw);
	/* Name servers from /etc/resolv.conf, names from /etc/hosts. */
	gw->dns = evdns_base_new(gw->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	gw->listener = pglisten_new(gw->base, gw->dns, gw->cfg->listen_database_url,
				    "importer-gateway-listen", channels, notify_cb, listen_state_cb, gw);
	gw->pool = pgpool_new(gw->base, gw->dns, gw->cfg->database_url, "importer-gateway",
			      (int)gw->cfg->db_pool, gw->opts.max_queue);
	gw->hub = gw->pool != NULL ? hub_new(gw->base, gw->pool, &ho, hub_replied_cb, gw) : NULL;
	if (gw->dns == NULL || gw->sigterm_ev == NULL || gw->sigint_ev == NULL || gw->listener == NULL ||
	    gw->pool == NULL || gw->hub == NULL || event_add(gw->sigterm_ev, NULL) != 0 ||
	    event_add(gw->sigint_ev, NULL) != 0) {
		snprintf(err, errlen, "cannot set up the event loop");
		return -1;
	}
	pgpool_start(gw->pool, pool_first_cb, gw);
	log_info("gateway.started", LF_STR("http_addr", gw->cfg->http_addr),
		 LF_I64("port", gw->port), LF_I64("db_pool", gw->cfg->db_pool),
		 LF_I64("heartbeat_ms", gw->opts.heartbeat_ms),
		 LF_I64("sse_queue_bytes", (int64_t)gw->opts.sse_queue_bytes));
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
	gw->stopping = true;
	if (gw->hub != NULL)
		hub_shutdown(gw->hub);
	pgpool_free(gw->pool); /* fails what is queued: 503 while evhttp still exists */
	gw->pool = NULL;
	hub_free(gw->hub);
	if (gw->http != NULL)
		evhttp_free(gw->http);
	pglisten_free(gw->listener);
	if (gw->sigterm_ev != NULL)
		event_free(gw->sigterm_ev);
	if (gw->sigint_ev != NULL)
		event_free(gw->sigint_ev);
	if (gw->drain_ev != NULL)
		event_free(gw->drain_ev);
	if (gw->dns != NULL) {
		/* Cancelled lookups are answered (and freed) by deferred
		 * callbacks: with every other event of ours gone, let the loop
		 * run them once. */
		evdns_base_free(gw->dns, 1);
		event_base_loop(gw->base, EVLOOP_NONBLOCK);
	}
	free(gw);
}
