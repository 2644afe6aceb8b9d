/* pglisten.c -- async LISTEN connection with reconnect (see pglisten.h).
 *
 * States: DOWN (retry timer armed) -> CONNECTING (PQconnectPoll driven by
 * one-shot read/write waits) -> LISTENING (LISTEN sent, reply pending) ->
 * READY. Any failure goes back to DOWN. PQsocket() is read again every time an
 * event is armed, since the descriptor changes across connections.
 */
#include "pglisten.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "log.h"
#include "pgconn.h"
#include "pgresolve.h"

enum pglisten_state { PGLISTEN_DOWN, PGLISTEN_CONNECTING, PGLISTEN_LISTENING, PGLISTEN_READY };

struct pglisten {
	struct event_base *base;    /* borrowed */
	struct evdns_base *dns;     /* borrowed; NULL = libpq resolves */
	struct pgresolve *resolving; /* owned; the pending lookup, if any */
	char *url;                  /* owned */
	char *app;                  /* owned */
	char *listen_sql;           /* owned; "LISTEN a; LISTEN b;" */
	pglisten_notify_cb on_notify;
	pglisten_state_cb on_state;
	void *arg;                  /* borrowed */
	enum pglisten_state state;
	PGconn *conn;               /* owned; NULL while DOWN */
	struct event *io_ev;        /* owned; one-shot while connecting, persistent after */
	struct event *retry_ev;     /* owned; one-shot reconnect timer */
	struct backoff backoff;     /* reset on every successful LISTEN */
};

static void connect_step(struct pglisten *pl);

static void arm_io(struct pglisten *pl, short what, event_callback_fn cb)
{
	if (pl->io_ev != NULL)
		event_free(pl->io_ev);
	pl->io_ev = event_new(pl->base, PQsocket(pl->conn), what, cb, pl);
	event_add(pl->io_ev, NULL);
}

/* Drops the connection and schedules a reconnect. */
static void lost(struct pglisten *pl, const char *why)
{
	bool was_ready = pl->state == PGLISTEN_READY;
	unsigned delay = backoff_next_ms(&pl->backoff);
	struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
	char msg[256];

	snprintf(msg, sizeof(msg), "%s", why);
	msg[strcspn(msg, "\n")] = '\0';
	if (pl->io_ev != NULL) {
		event_free(pl->io_ev); /* before PQfinish closes its descriptor */
		pl->io_ev = NULL;
	}
	PQfinish(pl->conn);
	pl->conn = NULL;
	pl->state = PGLISTEN_DOWN;
	log_warn("listen.lost", LF_STR("error", msg), LF_I64("retry_in_ms", delay));
	evtimer_add(pl->retry_ev, &tv);
	if (was_ready && pl->on_state != NULL)
		pl->on_state(false, pl->arg);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pglisten *pl = arg;
	PGnotify *n;

	if (!PQconsumeInput(pl->conn)) {
		lost(pl, PQerrorMessage(pl->conn));
		return;
	}
	while (pl->state == PGLISTEN_LISTENING && !PQisBusy(pl->conn)) {
		PGresult *res = PQgetResult(pl->conn);

		if (res == NULL) { /* the LISTEN command is complete */
			pl->state = PGLISTEN_READY;
			backoff_reset(&pl->backoff);
			log_info("listen.ready");
			if (pl->on_state != NULL)
				pl->on_state(true, pl->arg);
			break;
		}
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			char err[256];

			pgconn_error(pl->conn, res, err, sizeof(err));
			PQclear(res);
			lost(pl, err);
			return;
		}
		PQclear(res);
	}
	while (pl->conn != NULL && (n = PQnotifies(pl->conn)) != NULL) {
		pl->on_notify(n->relname, n->extra, pl->arg);
		PQfreemem(n);
	}
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pglisten *pl = arg;
	int rc = PQflush(pl->conn);

	if (rc < 0)
		lost(pl, PQerrorMessage(pl->conn));
	else if (rc > 0)
		arm_io(pl, EV_WRITE, flush_cb);
	else
		arm_io(pl, EV_READ | EV_PERSIST, read_cb);
}

static void send_listen(struct pglisten *pl)
{
	if (PQsetnonblocking(pl->conn, 1) != 0 || !PQsendQuery(pl->conn, pl->listen_sql)) {
		lost(pl, PQerrorMessage(pl->conn));
		return;
	}
	pl->state = PGLISTEN_LISTENING;
	flush_cb(PQsocket(pl->conn), EV_WRITE, pl);
}

static void connect_io_cb(evutil_socket_t fd, short what, void *arg)
{
	connect_step(arg);
}

static void connect_step(struct pglisten *pl)
{
	switch (PQconnectPoll(pl->conn)) {
	case PGRES_POLLING_READING:
		arm_io(pl, EV_READ, connect_io_cb);
		break;
	case PGRES_POLLING_WRITING:
		arm_io(pl, EV_WRITE, connect_io_cb);
		break;
	case PGRES_POLLING_OK:
		send_listen(pl);
		break;
	default:
		lost(pl, PQerrorMessage(pl->conn));
		break;
	}
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	pglisten_start(arg);
}

static void opened_cb(PGconn *conn, const char *error, void *arg)
{
	struct pglisten *pl = arg;

	pl->resolving = NULL;
	pl->conn = conn;
	if (conn == NULL || PQstatus(conn) == CONNECTION_BAD) {
		lost(pl, conn != NULL ? PQerrorMessage(conn) : error);
		return;
	}
	connect_step(pl);
}

void pglisten_start(struct pglisten *pl)
{
	if (pl->state != PGLISTEN_DOWN)
		return;
	pl->state = PGLISTEN_CONNECTING;
	pl->resolving = pgresolve_open(pl->dns, pl->url, pl->app, opened_cb, pl);
}

struct pglisten *pglisten_new(struct event_base *base, struct evdns_base *dns, const char *url,
			      const char *app, const char *const *channels,
			      pglisten_notify_cb on_notify, pglisten_state_cb on_state, void *arg)
{
	struct pglisten *pl = calloc(1, sizeof(*pl));
	size_t len = 1;

	if (pl == NULL)
		return NULL;
	for (size_t i = 0; channels[i] != NULL; i++)
		len += strlen(channels[i]) + sizeof("LISTEN \"\";");
	pl->listen_sql = calloc(1, len);
	pl->url = strdup(url);
	pl->app = strdup(app);
	pl->retry_ev = evtimer_new(base, retry_cb, pl);
	if (pl->listen_sql == NULL || pl->url == NULL || pl->app == NULL || pl->retry_ev == NULL) {
		pglisten_free(pl);
		return NULL;
	}
	for (size_t i = 0; channels[i] != NULL; i++) {
		strcat(pl->listen_sql, "LISTEN \"");
		strcat(pl->listen_sql, channels[i]);
		strcat(pl->listen_sql, "\";");
	}
	pl->base = base;
	pl->dns = dns;
	pl->on_notify = on_notify;
	pl->on_state = on_state;
	pl->arg = arg;
	pl->state = PGLISTEN_DOWN;
	backoff_init(&pl->backoff, 100, 10000);
	return pl;
}

bool pglisten_ready(const struct pglisten *pl)
{
	return pl != NULL && pl->state == PGLISTEN_READY;
}

void pglisten_free(struct pglisten *pl)
{
	if (pl == NULL)
		return;
	pgresolve_cancel(pl->resolving);
	if (pl->io_ev != NULL)
		event_free(pl->io_ev);
	if (pl->retry_ev != NULL)
		event_free(pl->retry_ev);
	PQfinish(pl->conn);
	free(pl->listen_sql);
	free(pl->url);
	free(pl->app);
	free(pl);
}
