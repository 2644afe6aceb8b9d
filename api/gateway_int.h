/* gateway_int.h -- the gateway's internals shared by gateway.c and routes.c.
 *
 * Not a public interface: only api/ includes it.
 */
#ifndef IMPORTER_GATEWAY_INT_H
#define IMPORTER_GATEWAY_INT_H

#include <event2/dns.h>
#include <event2/http.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "gateway.h"
#include "hub.h"
#include "pgpool.h"
#include "pglisten.h"

/* Route labels for metrics. */
enum route {
	R_HEALTHZ, R_READYZ, R_METRICS, R_JOBS_SUBMIT, R_JOBS_LIST, R_JOBS_CLEAR, R_JOB_GET,
	R_JOB_DELETE, R_JOB_ACTION, R_JOB_LOGS, R_JOB_ERRORS, R_JOB_EVENTS, R_EVENTS,
	R_UPLOAD_BEGIN, R_UPLOAD_CHUNK, R_RECORDS, R_STATS, R_STATIC, R_OTHER, R_COUNT
};

#define GW_MAX_CODES 16
#define GW_BUCKETS   14

struct gw_metrics {
	struct {
		int code;
		int64_t count;
	} by_status[R_COUNT][GW_MAX_CODES];
	int64_t hist[GW_BUCKETS]; /* cumulative at render time; raw counts here */
	double sum_s;
	int64_t count;
};

struct gateway {
	struct event_base *base;     /* borrowed */
	const struct config *cfg;    /* borrowed */
	struct gateway_options opts;
	struct evhttp *http;         /* owned */
	struct evhttp_bound_socket *sock; /* owned by http */
	int port;
	struct evdns_base *dns;      /* owned; resolves the database host off the loop */
	struct pglisten *listener;   /* owned */
	struct pgpool *pool;         /* owned */
	struct hub *hub;             /* owned */
	struct event *sigterm_ev;    /* owned */
	struct event *sigint_ev;     /* owned */
	struct event *drain_ev;      /* owned; after SIGTERM: waits for running requests */
	int64_t drain_deadline_us;   /* then what still waits on the database gets 503 */
	bool stopping;
	bool listen_started;
	int uploads;                 /* bodies over 1 MiB in flight */
	struct gw_metrics metrics;
};

/* One API request between dispatch and its reply. */
struct call {
	struct gateway *gw;          /* borrowed */
	struct evhttp_request *req;  /* borrowed; NULL once answered */
	enum route route;
	int64_t start_us;
	char user[40];               /* JWT subject */
	char job[40];                /* the {id} of the path, if any */
	bool is_upload;              /* counted in gw->uploads */
	bool wait;
	int64_t wait_timeout;
	int64_t limit;               /* page size asked for */
	/* Formats a successful result; NULL = the generic handling of the route. */
	void (*on_ok)(struct call *c, PGresult *res);
};

/* Records the reply's status for metrics (every reply goes through here). */
void gw_count(struct gateway *gw, enum route route, int status, int64_t start_us);

/* Answers and frees c. */
void call_reply_text(struct call *c, int status, const char *json);
void call_reply_error(struct call *c, int status, const char *code, const char *message);

/* Frees c without answering (its request was handed to the hub). */
void call_release(struct call *c);

/* Runs sql for c under c->user; the result comes to c->on_ok, errors are
 * answered here. Takes ownership of data (may be NULL) as the last parameter. */
void call_exec(struct call *c, const char *sql, int nparams, const struct pgpool_param *params,
	       char *data, size_t dlen, const char *then_sql);

/* Route handlers (routes.c). segs are the path segments after "api". */
void routes_dispatch(struct call *c, enum evhttp_cmd_type method, char **segs, int nsegs,
		     struct evkeyvalq *query);

/* Whether the route accepts ?access_token= (the SSE routes). */
bool routes_is_sse(char **segs, int nsegs);

int64_t gw_now_us(void);

#endif
