/* pgpool.c -- asynchronous request connections with reconnect (see pgpool.h).
 *
 * Each connection: DOWN (retry timer armed) -> CONNECTING (PQconnectPoll on
 * one-shot waits) -> IDLE <-> BUSY. Once connected a connection stays in
 * pipeline mode with a persistent read event, so a server that goes away is
 * noticed while idle too. A request is three pipelined queries' worth of
 * results: identity, work, then PGRES_PIPELINE_SYNC. No explicit BEGIN: the
 * statements before one Sync form one implicit transaction, which is rolled
 * back by the server on any error, so the session is clean after every
 * request, error or not (with BEGIN it would stay in an aborted transaction
 * and need a ROLLBACK).
 */
#include "pgpool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "log.h"
#include "pgconn.h"
#include "pgresolve.h"

/* TimeZone UTC so that timestamptz renders as RFC 3339 with +00:00. */
static const char identity_sql[] =
	"SELECT set_config('role','importer_api',true), set_config('importer.user_id',$1,true),"
	" set_config('TimeZone','UTC',true)";

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_IDLE, CONN_BUSY };

struct pgreq {
	struct pgreq *next;
	char user_id[40];
	char *sql;            /* owned */
	char *then_sql;       /* owned; NULL = none */
	int nparams;
	char **values;        /* owned, each owned */
	int *lengths;         /* owned */
	int *formats;         /* owned */
	pgpool_result_cb cb;
	void *cb_arg;         /* borrowed */
	bool urgent;
	bool *sent; /* borrowed; set when the request goes out */
};

struct pconn {
	struct pgpool *pool;  /* borrowed */
	int index;
	enum conn_state state;
	PGconn *conn;         /* owned; NULL while DOWN */
	struct event *io_ev;  /* owned; one-shot while connecting, persistent read after */
	struct event *wr_ev;  /* owned; one-shot write wait while a send is pending */
	struct event *retry_ev; /* owned */
	struct pgresolve *resolving; /* owned; the pending host lookup, if any */
	struct backoff backoff;
	struct pgreq *req;    /* owned; the running request (BUSY) */
	int stage;            /* queries whose results are complete */
	PGresult *work_res;   /* owned; result of the work query */
	PGresult *err_res;    /* owned; first error result */
};

struct pgpool {
	struct event_base *base; /* borrowed */
	struct evdns_base *dns;  /* borrowed; NULL = libpq resolves */
	char *url;               /* owned */
	char *app;               /* owned */
	int size;
	int max_queue;
	struct pconn *conns;     /* owned; size entries */
	struct pgreq *head, *tail; /* owned; waiting requests */
	struct pgreq *last_urgent; /* the last urgent one among them, NULL if none */
	int queued;
	bool closing;
	bool first_done;
	void (*on_first)(bool ok, void *arg);
	void *first_arg;         /* borrowed */
};

static void connect_step(struct pconn *c);
static void dispatch(struct pgpool *pool);
static struct pgreq *pop_head(struct pgpool *pool);

static void req_free(struct pgreq *r)
{
	if (r == NULL)
		return;
	for (int i = 0; r->values != NULL && i < r->nparams; i++)
		free(r->values[i]);
	free(r->values);
	free(r->lengths);
	free(r->formats);
	free(r->sql);
	free(r->then_sql);
	free(r);
}

static void finish(struct pgreq *r, PGresult *res, PGresult *err, bool unavailable,
		   const char *why)
{
	struct pgpool_result out = {0};

	if (unavailable) {
		out.unavailable = true;
		out.message = why != NULL ? why : "database unavailable";
	} else if (err != NULL) {
		out.sqlstate = PQresultErrorField(err, PG_DIAG_SQLSTATE);
		out.message = PQresultErrorField(err, PG_DIAG_MESSAGE_PRIMARY);
		if (out.message == NULL)
			out.message = "database error";
		if (out.sqlstate == NULL)
			out.unavailable = true; /* a client-side failure: connection trouble */
	} else {
		out.res = res;
	}
	r->cb(&out, r->cb_arg);
	req_free(r);
}

static void first_settled(struct pgpool *pool, bool ok)
{
	if (pool->first_done)
		return;
	pool->first_done = true;
	if (pool->on_first != NULL)
		pool->on_first(ok, pool->first_arg);
}

static void free_events(struct pconn *c)
{
	if (c->io_ev != NULL) {
		event_free(c->io_ev);
		c->io_ev = NULL;
	}
	if (c->wr_ev != NULL) {
		event_free(c->wr_ev);
		c->wr_ev = NULL;
	}
}

/* Drops the connection, fails its request and arms a reconnect. */
static void lost(struct pconn *c, const char *why)
{
	struct pgpool *pool = c->pool;
	struct pgreq *r = c->req;
	unsigned delay = backoff_next_ms(&c->backoff);
	struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
	char msg[256];

	snprintf(msg, sizeof(msg), "%s", why);
	msg[strcspn(msg, "\n")] = '\0';
	free_events(c); /* before PQfinish closes the descriptor */
	PQfinish(c->conn);
	c->conn = NULL;
	PQclear(c->work_res);
	PQclear(c->err_res);
	c->work_res = c->err_res = NULL;
	c->req = NULL;
	c->state = CONN_DOWN;
	log_warn("pool.lost", LF_I64("conn", c->index), LF_STR("error", msg),
		 LF_I64("retry_in_ms", delay));
	if (!pool->closing)
		evtimer_add(c->retry_ev, &tv);
	first_settled(pool, false);
	if (r != NULL)
		finish(r, NULL, NULL, true, "database connection lost");
	if (pgpool_live(pool) == 0) {
		/* Nobody can serve the waiting requests soon: fail them fast (503). */
		while (pool->head != NULL)
			finish(pop_head(pool), NULL, NULL, true, "database unavailable");
	}
}

static void read_cb(evutil_socket_t fd, short what, void *arg);

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pconn *c = arg;
	int rc = PQflush(c->conn);

	if (rc < 0) {
		lost(c, PQerrorMessage(c->conn));
		return;
	}
	if (rc > 0) {
		if (c->wr_ev == NULL)
			c->wr_ev = event_new(c->pool->base, PQsocket(c->conn), EV_WRITE, flush_cb, c);
		event_add(c->wr_ev, NULL);
	}
}

static void complete(struct pconn *c)
{
	struct pgreq *r = c->req;
	PGresult *work = c->work_res, *err = c->err_res;

	c->req = NULL;
	c->work_res = c->err_res = NULL;
	c->state = CONN_IDLE;
	/* The callback may queue more requests; dispatch afterwards. */
	finish(r, work, err, false, NULL);
	PQclear(work);
	PQclear(err);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pconn *c = arg;

	if (!PQconsumeInput(c->conn)) {
		lost(c, PQerrorMessage(c->conn));
		return;
	}
	while (c->state == CONN_BUSY && !PQisBusy(c->conn)) {
		PGresult *res = PQgetResult(c->conn);

		if (res == NULL) { /* one query's results are complete */
			c->stage++;
			continue;
		}
		switch (PQresultStatus(res)) {
		case PGRES_PIPELINE_SYNC:
			PQclear(res);
			complete(c);
			break;
		case PGRES_FATAL_ERROR:
			/* Also after the work's result: a failure at the implicit
			 * COMMIT (Sync) rolled that work back. */
			if (c->err_res == NULL)
				c->err_res = res;
			else
				PQclear(res);
			break;
		case PGRES_TUPLES_OK:
		case PGRES_COMMAND_OK:
			if (c->stage == (c->req->then_sql != NULL ? 2 : 1) && c->work_res == NULL)
				c->work_res = res;
			else
				PQclear(res);
			break;
		default: /* PGRES_PIPELINE_ABORTED and the rest */
			PQclear(res);
			break;
		}
	}
	if (c->state == CONN_IDLE) {
		if (PQstatus(c->conn) == CONNECTION_BAD) {
			lost(c, PQerrorMessage(c->conn));
			return;
		}
		dispatch(c->pool);
	}
}

static void start_request(struct pconn *c, struct pgreq *r)
{
	const char *id_param[1] = {r->user_id};

	c->req = r;
	c->stage = 0;
	c->state = CONN_BUSY;
	if (!PQsendQueryParams(c->conn, identity_sql, 1, NULL, id_param, NULL, NULL, 0) ||
	    !PQsendQueryParams(c->conn, r->sql, r->nparams, NULL, (const char *const *)r->values,
			       r->lengths, r->formats, 0) ||
	    (r->then_sql != NULL &&
	     !PQsendQueryParams(c->conn, r->then_sql, 0, NULL, NULL, NULL, NULL, 0)) ||
	    !PQpipelineSync(c->conn)) {
		lost(c, PQerrorMessage(c->conn));
		return;
	}
	if (r->sent != NULL)
		*r->sent = true;
	flush_cb(PQsocket(c->conn), EV_WRITE, c);
}

static struct pgreq *pop_head(struct pgpool *pool)
{
	struct pgreq *r = pool->head;

	pool->head = r->next;
	if (pool->head == NULL)
		pool->tail = NULL;
	if (pool->last_urgent == r)
		pool->last_urgent = NULL;
	pool->queued--;
	r->next = NULL;
	return r;
}

/* Urgent requests go after the urgent ones already waiting, others last. */
static void push(struct pgpool *pool, struct pgreq *r)
{
	struct pgreq **at =
	    r->urgent ? (pool->last_urgent != NULL ? &pool->last_urgent->next : &pool->head)
	              : (pool->tail != NULL ? &pool->tail->next : &pool->head);

	r->next = *at;
	*at = r;
	if (r->next == NULL)
		pool->tail = r;
	if (r->urgent)
		pool->last_urgent = r;
	pool->queued++;
}

static void dispatch(struct pgpool *pool)
{
	for (int i = 0; i < pool->size && pool->head != NULL; i++) {
		struct pconn *c = &pool->conns[i];

		if (c->state != CONN_IDLE)
			continue;
		start_request(c, pop_head(pool));
	}
}

static void connected(struct pconn *c)
{
	if (PQsetnonblocking(c->conn, 1) != 0 || !PQenterPipelineMode(c->conn)) {
		lost(c, PQerrorMessage(c->conn));
		return;
	}
	free_events(c);
	c->io_ev = event_new(c->pool->base, PQsocket(c->conn), EV_READ | EV_PERSIST, read_cb, c);
	if (c->io_ev == NULL || event_add(c->io_ev, NULL) != 0) {
		lost(c, "cannot watch the connection");
		return;
	}
	c->state = CONN_IDLE;
	backoff_reset(&c->backoff);
	log_debug("pool.connected", LF_I64("conn", c->index));
	first_settled(c->pool, true);
	dispatch(c->pool);
}

static void connect_io_cb(evutil_socket_t fd, short what, void *arg)
{
	connect_step(arg);
}

static void arm_connect(struct pconn *c, short what)
{
	free_events(c);
	c->io_ev = event_new(c->pool->base, PQsocket(c->conn), what, connect_io_cb, c);
	if (c->io_ev == NULL || event_add(c->io_ev, NULL) != 0)
		lost(c, "cannot watch the connection");
}

static void connect_step(struct pconn *c)
{
	switch (PQconnectPoll(c->conn)) {
	case PGRES_POLLING_READING:
		arm_connect(c, EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		arm_connect(c, EV_WRITE);
		break;
	case PGRES_POLLING_OK:
		connected(c);
		break;
	default:
		lost(c, PQerrorMessage(c->conn));
		break;
	}
}

static void opened_cb(PGconn *conn, const char *error, void *arg)
{
	struct pconn *c = arg;

	c->resolving = NULL;
	c->conn = conn;
	if (conn == NULL || PQstatus(conn) == CONNECTION_BAD) {
		lost(c, conn != NULL ? PQerrorMessage(conn) : error);
		return;
	}
	connect_step(c);
}

static void conn_start(struct pconn *c)
{
	if (c->state != CONN_DOWN || c->pool->closing)
		return;
	c->state = CONN_CONNECTING;
	c->resolving = pgresolve_open(c->pool->dns, c->pool->url, c->pool->app, opened_cb, c);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_start(arg);
}

struct pgpool *pgpool_new(struct event_base *base, struct evdns_base *dns, const char *url,
			  const char *app, int size, int max_queue)
{
	struct pgpool *pool = calloc(1, sizeof(*pool));

	if (pool == NULL)
		return NULL;
	pool->base = base;
	pool->dns = dns;
	pool->size = size;
	pool->max_queue = max_queue;
	pool->url = strdup(url);
	pool->app = strdup(app);
	pool->conns = calloc((size_t)size, sizeof(*pool->conns));
	if (pool->url == NULL || pool->app == NULL || pool->conns == NULL) {
		pool->size = 0;
		pgpool_free(pool);
		return NULL;
	}
	for (int i = 0; i < size; i++) {
		struct pconn *c = &pool->conns[i];

		c->pool = pool;
		c->index = i;
		c->state = CONN_DOWN;
		backoff_init(&c->backoff, 100, 5000);
		c->backoff.seed = (unsigned)i * 7919u + 17u; /* spread the reconnects */
		c->retry_ev = evtimer_new(base, retry_cb, c);
		if (c->retry_ev == NULL) {
			pgpool_free(pool);
			return NULL;
		}
	}
	return pool;
}

void pgpool_start(struct pgpool *pool, void (*on_first)(bool ok, void *arg), void *arg)
{
	pool->on_first = on_first;
	pool->first_arg = arg;
	for (int i = 0; i < pool->size; i++)
		conn_start(&pool->conns[i]);
}

static int enqueue(struct pgpool *pool, const char *user_id, const char *sql, int nparams,
                   const struct pgpool_param *params, char *owned, size_t owned_len,
                   const char *then_sql, const struct pgpool_exec_opts *opts, pgpool_result_cb cb,
                   void *cb_arg)
{
	int total = nparams + (owned != NULL ? 1 : 0);
	struct pgreq *r = NULL;

	if (pool->closing || pool->queued >= pool->max_queue || pgpool_live(pool) == 0)
		goto fail;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		goto fail;
	r->nparams = total;
	r->sql = strdup(sql);
	if (then_sql != NULL && (r->then_sql = strdup(then_sql)) == NULL)
		goto fail;
	r->values = calloc((size_t)total + 1, sizeof(*r->values));
	r->lengths = calloc((size_t)total + 1, sizeof(*r->lengths));
	r->formats = calloc((size_t)total + 1, sizeof(*r->formats));
	if (r->sql == NULL || r->values == NULL || r->lengths == NULL || r->formats == NULL)
		goto fail;
	snprintf(r->user_id, sizeof(r->user_id), "%s", user_id != NULL ? user_id : "");
	for (int i = 0; i < nparams; i++) {
		if (params[i].value == NULL)
			continue;
		r->values[i] = malloc(params[i].len + 1);
		if (r->values[i] == NULL)
			goto fail;
		memcpy(r->values[i], params[i].value, params[i].len);
		r->values[i][params[i].len] = '\0';
		r->lengths[i] = (int)params[i].len;
		r->formats[i] = params[i].binary ? 1 : 0;
	}
	if (owned != NULL) {
		r->values[nparams] = owned;
		r->lengths[nparams] = (int)owned_len;
		r->formats[nparams] = 1;
		owned = NULL;
	}
	r->cb = cb;
	r->cb_arg = cb_arg;
	if (opts != NULL) {
		r->urgent = opts->urgent;
		r->sent = opts->sent;
	}
	push(pool, r);
	dispatch(pool);
	return 0;
fail:
	free(owned);
	req_free(r);
	return -1;
}

int pgpool_exec(struct pgpool *pool, const char *user_id, const char *sql, int nparams,
		const struct pgpool_param *params, const char *then_sql, pgpool_result_cb cb,
		void *cb_arg)
{
	return enqueue(pool, user_id, sql, nparams, params, NULL, 0, then_sql, NULL, cb, cb_arg);
}

int pgpool_exec_ex(struct pgpool *pool, const char *user_id, const char *sql, int nparams,
                   const struct pgpool_param *params, const char *then_sql,
                   const struct pgpool_exec_opts *opts, pgpool_result_cb cb, void *cb_arg)
{
	return enqueue(pool, user_id, sql, nparams, params, NULL, 0, then_sql, opts, cb, cb_arg);
}

int pgpool_exec_owned(struct pgpool *pool, const char *user_id, const char *sql, int nparams,
		      const struct pgpool_param *params, char *data, size_t len,
		      const char *then_sql, pgpool_result_cb cb, void *cb_arg)
{
	if (data == NULL)
		data = malloc(1); /* an empty bytea, not NULL */
	return enqueue(pool, user_id, sql, nparams, params, data, len, then_sql, NULL, cb, cb_arg);
}

int pgpool_live(const struct pgpool *pool)
{
	int n = 0;

	for (int i = 0; pool != NULL && i < pool->size; i++)
		n += pool->conns[i].state == CONN_IDLE || pool->conns[i].state == CONN_BUSY;
	return n;
}

int pgpool_busy(const struct pgpool *pool)
{
	int n = 0;

	for (int i = 0; pool != NULL && i < pool->size; i++)
		n += pool->conns[i].state == CONN_BUSY;
	return n;
}

int pgpool_queued(const struct pgpool *pool)
{
	return pool != NULL ? pool->queued : 0;
}

int pgpool_size(const struct pgpool *pool)
{
	return pool != NULL ? pool->size : 0;
}

void pgpool_shutdown(struct pgpool *pool)
{
	pool->closing = true;
	while (pool->head != NULL)
		finish(pop_head(pool), NULL, NULL, true, "shutting down");
	for (int i = 0; i < pool->size; i++) {
		struct pconn *c = &pool->conns[i];
		struct pgreq *r = c->req;

		/* Detach everything first: a callback may look at the pool. */
		c->req = NULL;
		pgresolve_cancel(c->resolving);
		c->resolving = NULL;
		free_events(c);
		if (c->retry_ev != NULL)
			event_del(c->retry_ev);
		PQfinish(c->conn);
		c->conn = NULL;
		PQclear(c->work_res);
		PQclear(c->err_res);
		c->work_res = c->err_res = NULL;
		c->state = CONN_DOWN;
		if (r != NULL)
			finish(r, NULL, NULL, true, "shutting down");
	}
}

void pgpool_free(struct pgpool *pool)
{
	if (pool == NULL)
		return;
	pgpool_shutdown(pool);
	for (int i = 0; i < pool->size; i++)
		if (pool->conns[i].retry_ev != NULL)
			event_free(pool->conns[i].retry_ev);
	free(pool->conns);
	free(pool->url);
	free(pool->app);
	free(pool);
}
