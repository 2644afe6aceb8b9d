/* hub.c -- SSE streams and waiters demultiplexed by user and job (see hub.h).
 *
 * Lifetimes: a struct sub is referenced by its connection (until closed) and
 * by every query in flight for it; it is freed when the count drops to zero.
 * A struct user lives while it has subscribers or queries in flight. Freeing
 * is therefore never done under a callback that may still use the object.
 * A delivery may end the stream it writes to (and so drop the connection's
 * reference): whoever delivers to a sub it holds no other reference on takes
 * one around the call, and a write that reports WR_CLOSED means s may be gone
 * unless the caller holds such a reference.
 * Ordering: at most one job-refresh query per user is in flight, so job
 * states reach a user's streams in commit order; snapshots run on their own,
 * so each stream also remembers the last seq it sent per job and never sends
 * an older or equal one. Log lines are delivered by id, each stream
 * remembering the last one it got. The log and state queries of one commit
 * run on different connections, so a per-job stream that sees a terminal
 * state reads the log lines after it once more before sending "end".
 */
#include "hub.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "api_sql.h"
#include "http_util.h"
#include "jsonutil.h"
#include "log.h"
#include "seqmap.h"
#include "sse.h"

#define NBUCKETS 1024
#define ID_LEN   37

enum sub_kind { SUB_JOB, SUB_GLOBAL, SUB_WAIT };
enum sub_state { SUB_PENDING, SUB_LIVE, SUB_DONE };

struct user;

#define MAX_SEEN 256 /* per global stream; the oldest entry is evicted beyond */

struct sub {
	struct hub *hub;            /* borrowed */
	struct user *user;          /* borrowed; NULL once unlinked */
	struct sub *next, *prev;    /* in user->subs */
	enum sub_kind kind;
	enum sub_state state;
	struct evhttp_request *req; /* borrowed from evhttp; NULL once answered or gone */
	struct evhttp_connection *evcon; /* borrowed */
	bool chunked;                    /* the reply uses chunked transfer encoding */
	bool has_body;                   /* false for HEAD: nothing is sent */
	char job[ID_LEN];           /* SUB_JOB, SUB_WAIT */
	char logs_for[ID_LEN];      /* job whose logs the stream carries, "" = none */
	int64_t last_log_id;
	int64_t last_seq;           /* SUB_JOB: last job seq sent */
	int64_t last_event_id;      /* from the request, -1 if absent */
	int64_t last_id;            /* largest id: written; for events without one */
	struct seqmap seen;         /* owned; SUB_GLOBAL: last seq sent per job */
	int refs;
	bool need_snapshot;         /* dropped events: resend the state when drained */
	bool snap_inflight;
	bool dirty_while_pending;
	bool end_after_logs;        /* SUB_JOB terminal: logs query in flight, then "end" */
	int64_t end_seq;            /* SUB_JOB: seq of the terminal state */
	char end_status[16];        /* SUB_JOB: the terminal status */
	int64_t last_write_ms;
	char *wait_json;            /* owned; SUB_WAIT: latest job JSON */
	struct event *timer;        /* owned; SUB_WAIT timeout */
};

struct dirty {
	char job[ID_LEN];
	bool job_changed;
	bool log_written;
};

struct user {
	struct user *hnext;      /* hash chain */
	struct user *dnext;      /* dirty list */
	char id[ID_LEN];
	struct sub *subs;
	int nstreams;            /* SSE streams (not waiters) */
	int nwaiters;            /* wait=true requests held open */
	struct dirty *dirty;     /* owned */
	int ndirty, capdirty;
	bool on_dirty_list;
	bool refresh_inflight;
	struct snap *snaps;      /* snapshot queries waiting or running for its streams */
	int refs;                /* subs + queries in flight */
};

struct hub {
	struct event_base *base; /* borrowed */
	struct pgpool *pool;     /* borrowed */
	struct hub_options opts;
	hub_reply_cb on_reply;
	void *reply_arg;         /* borrowed */
	struct user *buckets[NBUCKETS];
	struct user *dirty_head; /* users with dirty jobs */
	struct event *flush_ev;  /* owned; activated once per loop iteration with work */
	struct event *tick_ev;   /* owned; heartbeats and resnapshots */
	int tick_ms;             /* tick_ev's period */
	struct sse_frame *ping;  /* owned; every heartbeat sends it */
	struct sse_frame *retry; /* owned; the retry hint at start and shutdown */
	struct snap *snap_head, *snap_tail; /* snapshot queries not yet handed to the pool */
	int snaps_at_pool; /* snapshot queries handed to the pool, not yet answered */
	int opening;       /* streams waiting for their first state */
	struct hub_stats stats;
	bool closing;
};

/* One snapshot query (SQL_SSE_JOB or SQL_SSE_GLOBAL) and the streams of one
 * user waiting for its answer: a burst of streams opening on the same job
 * costs one query, not one each. */
struct snap {
	struct hub *hub;
	struct user *user;  /* referenced */
	struct snap *unext; /* in user->snaps */
	struct snap *qnext; /* in the hub's queue while not handed to the pool */
	enum sub_kind kind; /* SUB_JOB or SUB_GLOBAL */
	char key[ID_LEN];   /* SUB_JOB: the job; SUB_GLOBAL: its logs_for, "" for none */
	bool sent;          /* set by the pool once the query went out: no more joiners */
	struct sub **subs;  /* owned array; each referenced */
	int nsubs, capsubs;
};

/* Snapshot queries handed to the pool at once; the rest wait in the hub, where
 * streams of the same user and job keep joining them. */
#define MAX_SNAPSHOTS_AT_POOL 64
/* Streams waiting for their first state beyond which a new one is refused
 * (503): the database is far behind. */
#define MAX_OPENING 16384

/* The queries that carry a change to live streams wait ahead of everything
 * else in the pool: they are what commit -> SSE latency is made of. */
static const struct pgpool_exec_opts live_query = {.urgent = true, .sent = NULL};

/* A query in flight. */
struct hq {
	struct hub *hub;
	struct user *user; /* referenced */
	struct sub *sub;   /* referenced; NULL for user-wide queries */
	char job[ID_LEN];
	char *ids;         /* owned; refresh: the job ids asked for, comma separated */
	int64_t after;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool hub_is_terminal(const char *status)
{
	return status != NULL && (strcmp(status, "completed") == 0 ||
				  strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0);
}

static unsigned hash_id(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % NBUCKETS;
}

static struct user *user_find(struct hub *hub, const char *id, bool create)
{
	unsigned b = hash_id(id);
	struct user *u;

	for (u = hub->buckets[b]; u != NULL; u = u->hnext)
		if (strcmp(u->id, id) == 0)
			return u;
	if (!create || (u = calloc(1, sizeof(*u))) == NULL)
		return NULL;
	snprintf(u->id, sizeof(u->id), "%s", id);
	u->hnext = hub->buckets[b];
	hub->buckets[b] = u;
	return u;
}

static void user_unref(struct hub *hub, struct user *u)
{
	struct user **pp;

	if (--u->refs > 0)
		return;
	for (pp = &hub->buckets[hash_id(u->id)]; *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == u) {
			*pp = u->hnext;
			break;
		}
	}
	for (pp = &hub->dirty_head; *pp != NULL; pp = &(*pp)->dnext) {
		if (*pp == u) {
			*pp = u->dnext;
			break;
		}
	}
	free(u->dirty);
	free(u);
}

/* Not inlined: once inlined into for_each_sub(), GCC 12 cannot see that the
 * extra reference taken there keeps s alive and warns of a use after free. */
__attribute__((noinline)) static void sub_unref(struct sub *s)
{
	if (--s->refs > 0)
		return;
	if (s->timer != NULL)
		event_free(s->timer);
	free(s->wait_json);
	seqmap_release(&s->seen);
	free(s);
}

static void sub_unlink(struct sub *s)
{
	struct user *u = s->user;

	if (u == NULL)
		return;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		u->subs = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	if (s->kind != SUB_WAIT) {
		u->nstreams--;
		s->hub->stats.streams--;
	} else {
		u->nwaiters--;
		s->hub->stats.waiters--;
	}
	s->user = NULL;
	user_unref(s->hub, u);
}

static void note_reply(struct hub *hub, struct evhttp_request *req, int status)
{
	if (hub->on_reply != NULL)
		hub->on_reply(req, status, hub->reply_arg);
}

static void conn_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct sub *s = arg;
	struct evhttp_request *req = s->req;

	/* The connection is going away: unlink first (B7). */
	s->req = NULL;
	s->state = SUB_DONE;
	sub_unlink(s);
	if (req != NULL && evhttp_request_get_connection(req) == NULL)
		evhttp_send_reply_end(req); /* detached: ours to release */
	sub_unref(s);
}

/* Ends a live stream ourselves (after "end" or at shutdown). */
static void stream_end(struct sub *s)
{
	struct evhttp_request *req = s->req;

	if (s->state == SUB_DONE)
		return;
	s->state = SUB_DONE;
	s->req = NULL;
	if (s->evcon != NULL)
		evhttp_connection_set_closecb(s->evcon, NULL, NULL);
	sub_unlink(s);
	if (req != NULL)
		evhttp_send_reply_end(req);
	sub_unref(s); /* the connection's reference */
}

static struct bufferevent *stream_bev(struct sub *s)
{
	struct evhttp_connection *evcon;

	if (s->req == NULL || (evcon = evhttp_request_get_connection(s->req)) == NULL)
		return NULL;
	return evhttp_connection_get_bufferevent(evcon);
}

static size_t pending_output(struct sub *s)
{
	struct bufferevent *bev = stream_bev(s);

	return bev != NULL ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

/* Puts frame f on s's connection (see sse_send). Returns 0 or -1. */
static int stream_put(struct sub *s, struct sse_frame *f)
{
	struct bufferevent *bev;

	if (!s->has_body)
		return 0;
	bev = stream_bev(s);
	return bev != NULL ? sse_send(bev, f, s->chunked) : -1;
}

/* One event for many streams: formatted (with its chunk framing) at the
 * first send and the same bytes shared by every stream it goes to. */
struct out_event {
	const char *event;
	int64_t id;
	const char *data;
	struct sse_frame *frame; /* owned; NULL until first sent */
};

static void out_event_done(struct out_event *e)
{
	sse_frame_unref(e->frame);
	e->frame = NULL;
}

enum wr {
	WR_CLOSED,  /* the stream is (now) closed: s may be freed */
	WR_SENT,    /* queued on the connection */
	WR_DROPPED, /* dropped for a slow client (or out of memory) */
};

/* Sends one event. important: a state or terminal event that must not be
 * lost; others are dropped while the client is behind, which schedules a
 * fresh snapshot. On WR_CLOSED s is freed unless the caller holds a reference. */
static enum wr stream_emit(struct sub *s, struct out_event *e, bool important)
{
	struct hub *hub = s->hub;
	size_t pending = pending_output(s);
	struct sse_frame *own = NULL, *f;
	int64_t id = e->id;
	int rc;

	if (s->state != SUB_LIVE || s->req == NULL)
		return WR_CLOSED;
	if (pending > hub->opts.hard_bytes) {
		/* Never reads: let it reconnect with Last-Event-ID later. */
		log_info("sse.dropped_client", LF_STR("user_id", s->user != NULL ? s->user->id : ""),
			 LF_I64("pending", (int64_t)pending));
		stream_end(s);
		return WR_CLOSED;
	}
	if (!important && pending > hub->opts.queue_bytes) {
		s->need_snapshot = true;
		hub->stats.dropped++;
		return WR_DROPPED;
	}
	/* Ids never go back on a stream: the id a client resumes from says
	 * what it has seen, and a job's state can be older (lower seq) than a
	 * log line already sent (a log written after the state change). Such a
	 * stream gets bytes of its own. */
	if (id > 0 && id < s->last_id) {
		id = s->last_id;
		f = own = sse_frame_new(e->event, id, e->data);
	} else {
		if (e->frame == NULL)
			e->frame = sse_frame_new(e->event, id, e->data);
		f = e->frame;
	}
	rc = f != NULL ? stream_put(s, f) : -1;
	sse_frame_unref(own);
	if (rc != 0) {
		s->need_snapshot = true;
		return WR_DROPPED;
	}
	s->last_write_ms = now_ms();
	if (id > s->last_id)
		s->last_id = id;
	hub->stats.events_relayed++;
	return WR_SENT;
}

/* stream_emit() of an event that goes to this one stream. */
static enum wr stream_write(struct sub *s, const char *event, int64_t id, const char *data,
                            bool important)
{
	struct out_event e = {event, id, data, NULL};
	enum wr w = stream_emit(s, &e, important);

	out_event_done(&e);
	return w;
}

/* ==== Waiters ==== */

static void waiter_answer(struct sub *s, int status)
{
	struct evhttp_request *req = s->req;

	if (s->state == SUB_DONE)
		return;
	s->state = SUB_DONE;
	s->req = NULL;
	sub_unlink(s);
	if (req != NULL) {
		note_reply(s->hub, req, status);
		http_reply_text(req, status, s->wait_json != NULL ? s->wait_json : "{}");
	}
	sub_unref(s);
}

static void waiter_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	waiter_answer(arg, 202);
}

/* ==== Delivering job states ==== */

static void logs_done_cb(const struct pgpool_result *r, void *arg);
static struct hq *hq_new(struct hub *hub, struct user *u, struct sub *s, const char *job,
			 int64_t after);
static void hq_free(struct hq *q);

/* Where s remembers the last seq it sent for job (created at 0), or NULL when
 * out of memory, which only loses the check against stale states. */
static int64_t *seen_slot(struct sub *s, const char *job)
{
	return s->kind == SUB_JOB ? &s->last_seq : seqmap_slot(&s->seen, job);
}

/* Sends "end" on a per-job stream and closes it. s may be freed on return
 * unless the caller holds a reference. */
static void job_stream_end(struct sub *s)
{
	char data[128];
	int64_t id = s->end_seq > s->last_id ? s->end_seq : s->last_id;

	snprintf(data, sizeof(data), "{\"id\":\"%s\",\"status\":\"%s\"}", s->job,
		 s->end_status);
	if (stream_write(s, "end", id, data, true) != WR_CLOSED)
		stream_end(s);
}

/* A per-job stream saw its terminal state: reads the log lines after
 * last_log_id once more (those of the same commit may still be on their way on
 * another connection); logs_done_cb then sends "end". Returns 0, or -1 when no
 * query went out. */
static int logs_then_end(struct sub *s)
{
	struct hq *q;
	char after_s[32];
	struct pgpool_param p[2] = {{s->job, strlen(s->job), false}, {after_s, 0, false}};

	if (s->user == NULL || (q = hq_new(s->hub, s->user, s, s->job, s->last_log_id)) == NULL)
		return -1;
	snprintf(after_s, sizeof(after_s), "%lld", (long long)s->last_log_id);
	p[1].len = strlen(after_s);
	if (pgpool_exec_ex(s->hub->pool, s->user->id, SQL_SSE_LOGS, 2, p, NULL, &live_query,
	                   logs_done_cb, q) != 0) {
		hq_free(q);
		return -1;
	}
	return 0;
}

/* One job's state read from the database, with the events it becomes on the
 * streams it goes to (their bytes shared among those streams). */
struct job_row {
	const char *json; /* borrowed from the result */
	int64_t seq;
	const char *status; /* borrowed from the result */
	const char *job_id; /* borrowed */
	bool terminal;
	char end_data[96];
	struct out_event job, end;
};

static void job_row_init(struct job_row *row, const char *json, int64_t seq, const char *status,
                         const char *job_id)
{
	row->json = json;
	row->seq = seq;
	row->status = status;
	row->job_id = job_id;
	row->terminal = hub_is_terminal(status);
	snprintf(row->end_data, sizeof(row->end_data), "{\"id\":\"%.36s\",\"status\":\"%.16s\"}",
	         job_id, status);
	row->job = (struct out_event){"job", seq, json, NULL};
	row->end = (struct out_event){"end", seq, row->end_data, NULL};
}

/* job_row_init() from row i of a result whose first columns are (job json,
 * seq, status); job_id is borrowed. */
static void job_row_from(struct job_row *row, const PGresult *res, int i, const char *job_id)
{
	job_row_init(row, PQgetvalue(res, i, 0), strtoll(PQgetvalue(res, i, 1), NULL, 10),
	             PQgetvalue(res, i, 2), job_id);
}

static void job_row_done(struct job_row *row)
{
	out_event_done(&row->job);
	out_event_done(&row->end);
}

/* One job row for sub s. s may be freed on return unless the caller holds a
 * reference. */
static void deliver_job(struct sub *s, struct job_row *row, bool snapshot)
{
	const char *json = row->json, *status = row->status, *job_id = row->job_id;
	int64_t seq = row->seq;
	bool terminal = row->terminal;
	int64_t *last, prev;
	enum wr w;

	if (s->state == SUB_PENDING) {
		s->dirty_while_pending = true;
		return;
	}
	if (s->state != SUB_LIVE)
		return;
	if (s->kind == SUB_WAIT) {
		char *copy = strdup(json);

		if (copy != NULL) {
			free(s->wait_json);
			s->wait_json = copy;
		}
		if (terminal)
			waiter_answer(s, 200);
		return;
	}
	if (s->kind == SUB_JOB && s->end_after_logs)
		return; /* ending: only the last log lines and "end" follow */
	last = seen_slot(s, job_id);
	prev = last != NULL ? *last : 0;
	if (last != NULL && seq <= prev)
		return; /* already sent, or a snapshot older than what was */
	w = stream_emit(s, &row->job, snapshot || terminal);
	if (w == WR_CLOSED)
		return;
	if (w == WR_SENT && last != NULL)
		*last = seq; /* a dropped state is resent by the next snapshot */
	if (!terminal)
		return;
	if (s->kind == SUB_JOB) {
		s->end_after_logs = true;
		s->end_seq = seq;
		snprintf(s->end_status, sizeof(s->end_status), "%s", status);
		if (logs_then_end(s) != 0)
			job_stream_end(s);
	} else if (!snapshot || prev > 0) {
		/* Finished while the stream was open (a snapshot may read it first). */
		(void)stream_emit(s, &row->end, true);
	}
}

/* s may be freed on return unless the caller holds a reference. */
static void deliver_deleted(struct sub *s, const char *job)
{
	char data[96];

	if (s->state == SUB_PENDING) {
		s->dirty_while_pending = true;
		return;
	}
	if (s->state != SUB_LIVE)
		return;
	if (s->kind == SUB_WAIT) {
		waiter_answer(s, 202);
		return;
	}
	/* The delete's own seq is not read: the stream's position stands in. */
	snprintf(data, sizeof(data), "{\"id\":\"%s\"}", job);
	if (stream_write(s, "deleted", s->last_id, data, true) != WR_CLOSED && s->kind == SUB_JOB)
		stream_end(s);
}

static bool wants_job(const struct sub *s, const char *job)
{
	return s->kind == SUB_GLOBAL || strcmp(s->job, job) == 0;
}

static bool wants_logs(const struct sub *s, const char *job)
{
	return s->kind != SUB_WAIT && strcmp(s->logs_for, job) == 0;
}

static void schedule_flush(struct hub *hub);
static void request_snapshot(struct sub *s);
static void snap_pump(struct hub *hub);

/* Puts u on the dirty list (flush_cb reads only users on it) and schedules
 * the flush. */
static void flush_user_soon(struct hub *hub, struct user *u)
{
	if (!u->on_dirty_list) {
		u->on_dirty_list = true;
		u->dnext = hub->dirty_head;
		hub->dirty_head = u;
	}
	schedule_flush(hub);
}

static void mark_dirty(struct hub *hub, struct user *u, const char *job, bool job_changed,
		       bool log_written)
{
	int i;

	for (i = 0; i < u->ndirty; i++)
		if (strcmp(u->dirty[i].job, job) == 0)
			break;
	if (i == u->ndirty) {
		if (u->ndirty == u->capdirty) {
			int cap = u->capdirty == 0 ? 8 : u->capdirty * 2;
			struct dirty *d = realloc(u->dirty, (size_t)cap * sizeof(*d));

			if (d == NULL)
				return;
			u->dirty = d;
			u->capdirty = cap;
		}
		memset(&u->dirty[i], 0, sizeof(u->dirty[i]));
		snprintf(u->dirty[i].job, ID_LEN, "%s", job);
		u->ndirty++;
	}
	u->dirty[i].job_changed |= job_changed;
	u->dirty[i].log_written |= log_written;
	flush_user_soon(hub, u);
}

static struct hq *hq_new(struct hub *hub, struct user *u, struct sub *s, const char *job,
			 int64_t after)
{
	struct hq *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->hub = hub;
	q->user = u;
	u->refs++;
	q->sub = s;
	if (s != NULL)
		s->refs++;
	snprintf(q->job, sizeof(q->job), "%s", job != NULL ? job : "");
	q->after = after;
	return q;
}

static void hq_free(struct hq *q)
{
	if (q->sub != NULL)
		sub_unref(q->sub);
	user_unref(q->hub, q->user);
	free(q->ids);
	free(q);
}

static struct snap *snap_new(struct hub *hub, struct user *u, enum sub_kind kind, const char *key)
{
	struct snap *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->hub = hub;
	g->user = u;
	u->refs++;
	g->kind = kind;
	snprintf(g->key, sizeof(g->key), "%s", key);
	return g;
}

/* Queues a new g in its user's list and the hub's queue. */
static void snap_link(struct snap *g)
{
	struct hub *hub = g->hub;

	g->unext = g->user->snaps;
	g->user->snaps = g;
	if (hub->snap_tail != NULL)
		hub->snap_tail->qnext = g;
	else
		hub->snap_head = g;
	hub->snap_tail = g;
}

static void snap_pop(struct hub *hub)
{
	struct snap *g = hub->snap_head;

	hub->snap_head = g->qnext;
	if (hub->snap_head == NULL)
		hub->snap_tail = NULL;
	g->qnext = NULL;
}

static int snap_add(struct snap *g, struct sub *s)
{
	if (g->nsubs == g->capsubs) {
		int cap = g->capsubs == 0 ? 4 : g->capsubs * 2;
		struct sub **n = realloc(g->subs, (size_t)cap * sizeof(*n));

		if (n == NULL)
			return -1;
		g->subs = n;
		g->capsubs = cap;
	}
	g->subs[g->nsubs++] = s;
	s->refs++;
	return 0;
}

/* Takes answered g out of its user's list (it is out of the hub's queue). */
static void snap_detach(struct snap *g)
{
	for (struct snap **pp = &g->user->snaps; *pp != NULL; pp = &(*pp)->unext) {
		if (*pp == g) {
			*pp = g->unext;
			break;
		}
	}
}

static void snap_free(struct snap *g)
{
	user_unref(g->hub, g->user);
	free(g->subs);
	free(g);
}

static void refresh_done_cb(const struct pgpool_result *r, void *arg)
{
	struct hq *q = arg;
	struct user *u = q->user;
	char *ids = q->ids;

	u->refresh_inflight = false;
	if (r->res != NULL && ids != NULL) {
		int n = PQntuples(r->res);

		for (char *save = NULL, *id = strtok_r(ids, ",", &save); id != NULL;
		     id = strtok_r(NULL, ",", &save)) {
			int row = -1;

			struct job_row jr;

			for (int i = 0; i < n; i++)
				if (strcmp(PQgetvalue(r->res, i, 3), id) == 0)
					row = i;
			if (row >= 0)
				job_row_from(&jr, r->res, row, id);
			for (struct sub *s = u->subs, *next; s != NULL; s = next) {
				next = s->next;
				if (!wants_job(s, id))
					continue;
				s->refs++; /* delivery may end s */
				if (row < 0)
					deliver_deleted(s, id);
				else
					deliver_job(s, &jr, false);
				next = s->user == u ? s->next : next;
				sub_unref(s);
			}
			if (row >= 0)
				job_row_done(&jr);
		}
	} else if (r->res == NULL) {
		log_warn("sse.refresh_failed", LF_STR("error", r->message));
	}
	/* Changes heard of while this query ran (kept by flush_user for
	 * ordering): flush_cb took u off the dirty list, so put it back, or they
	 * would wait for the user's next notification (seen as a completion
	 * delivered with the next job's events, or never). */
	if (u->ndirty > 0)
		flush_user_soon(q->hub, u);
	hq_free(q);
}

static void logs_done_cb(const struct pgpool_result *r, void *arg)
{
	struct hq *q = arg;
	struct user *u = q->user;
	struct sub *only = q->sub; /* referenced; a per-job stream's logs before "end" */
	int n = r->res != NULL ? PQntuples(r->res) : 0;
	/* Each line's bytes are shared by the streams it goes to. */
	struct out_event *lines = n > 0 ? calloc((size_t)n, sizeof(*lines)) : NULL;

	for (int i = 0; i < n && lines != NULL; i++)
		lines[i] = (struct out_event){"log", strtoll(PQgetvalue(r->res, i, 0), NULL, 10),
		                              PQgetvalue(r->res, i, 1), NULL};
	if (n > 0 && lines == NULL) {
		log_warn("sse.logs_failed", LF_STR("error", "out of memory"));
		n = 0; /* the streams read them again at their next snapshot */
	}
	for (struct sub *s = u->subs, *next; r->res != NULL && s != NULL; s = next) {
		next = s->next;
		if ((only != NULL && s != only) || !wants_logs(s, q->job) || s->state != SUB_LIVE)
			continue;
		s->refs++; /* a write may end s (hard_bytes) */
		for (int i = 0; i < n && s->state == SUB_LIVE; i++) {
			if (lines[i].id <= s->last_log_id)
				continue;
			s->last_log_id = lines[i].id;
			if (stream_emit(s, &lines[i], false) == WR_CLOSED)
				break;
		}
		/* More than one page: keep reading. */
		if (n == 500 && s->state == SUB_LIVE && !s->end_after_logs)
			mark_dirty(q->hub, u, q->job, false, true);
		next = s->user == u ? s->next : next;
		sub_unref(s);
	}
	if (only != NULL && only->end_after_logs && only->state == SUB_LIVE) {
		/* A full page: read on before the end. */
		if (n < 500 || logs_then_end(only) != 0)
			job_stream_end(only);
	}
	for (int i = 0; i < n; i++)
		out_event_done(&lines[i]);
	free(lines);
	hq_free(q);
}

static void flush_user(struct hub *hub, struct user *u)
{
	struct evbuffer *ids = NULL, *arr = NULL;
	int keep = 0;

	for (int i = 0; i < u->ndirty; i++) {
		struct dirty *d = &u->dirty[i];
		bool any_job = false, any_log = false;
		int64_t after = INT64_MAX;

		for (struct sub *s = u->subs; s != NULL; s = s->next) {
			if (d->job_changed && wants_job(s, d->job))
				any_job = true;
			if (d->log_written && wants_logs(s, d->job)) {
				any_log = true;
				if (s->state == SUB_LIVE && s->last_log_id < after)
					after = s->last_log_id;
			}
		}
		if (any_log && after != INT64_MAX) {
			struct hq *q = hq_new(hub, u, NULL, d->job, after);
			char after_s[32];
			struct pgpool_param p[2] = {{d->job, strlen(d->job), false},
						    {after_s, 0, false}};

			snprintf(after_s, sizeof(after_s), "%lld", (long long)after);
			p[1].len = strlen(after_s);
			if (q != NULL && pgpool_exec_ex(hub->pool, u->id, SQL_SSE_LOGS, 2, p, NULL,
			                                &live_query, logs_done_cb, q) != 0)
				hq_free(q);
		}
		if (any_job) {
			if (u->refresh_inflight) {
				/* Keep it for after the running refresh (ordering). */
				d->log_written = false;
				u->dirty[keep++] = *d;
				continue;
			}
			if (ids == NULL) {
				ids = evbuffer_new();
				arr = evbuffer_new();
			}
			if (ids != NULL && arr != NULL) {
				evbuffer_add_printf(ids, "%s%s", evbuffer_get_length(ids) ? "," : "",
						    d->job);
				evbuffer_add_printf(arr, "%s%s", evbuffer_get_length(arr) ? "," : "{",
						    d->job);
			}
		}
	}
	u->ndirty = keep;
	if (ids != NULL && arr != NULL && evbuffer_get_length(ids) > 0) {
		struct hq *q;
		struct pgpool_param p;

		evbuffer_add(arr, "}\0", 2);
		evbuffer_add(ids, "\0", 1);
		q = hq_new(hub, u, NULL, NULL, 0);
		if (q != NULL && (q->ids = strdup((const char *)evbuffer_pullup(ids, -1))) == NULL) {
			hq_free(q);
			q = NULL;
		}
		if (q != NULL) {
			p.value = (const char *)evbuffer_pullup(arr, -1);
			p.len = strlen(p.value);
			p.binary = false;
			u->refresh_inflight = true;
			if (pgpool_exec_ex(hub->pool, u->id, SQL_SSE_JOBS, 1, &p, NULL, &live_query,
			                   refresh_done_cb, q) != 0) {
				u->refresh_inflight = false;
				hq_free(q);
			}
		}
	}
	if (ids != NULL)
		evbuffer_free(ids);
	if (arr != NULL)
		evbuffer_free(arr);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hub *hub = arg;

	while (hub->dirty_head != NULL) {
		struct user *u = hub->dirty_head;

		hub->dirty_head = u->dnext;
		u->on_dirty_list = false;
		u->refs++;
		flush_user(hub, u);
		user_unref(hub, u);
	}
}

static void schedule_flush(struct hub *hub)
{
	if (!hub->closing && !event_pending(hub->flush_ev, EV_TIMEOUT, NULL))
		event_active(hub->flush_ev, EV_TIMEOUT, 0);
}

void hub_notify(struct hub *hub, const char *payload)
{
	struct json_object *o = json_tokener_parse(payload);
	const char *t = jsonutil_get_string(o, "t");
	const char *job = jsonutil_get_string(o, "job_id");
	const char *user = jsonutil_get_string(o, "user_id");
	struct user *u;

	hub->stats.notifications++;
	if (t != NULL && job != NULL && user != NULL && http_is_uuid(job) &&
	    (u = user_find(hub, user, false)) != NULL)
		mark_dirty(hub, u, job, strcmp(t, "job") == 0, strcmp(t, "log") == 0);
	json_object_put(o);
}

/* ==== Snapshots and stream start ==== */

static void fail_pending(struct sub *s, int status, const char *code, const char *message)
{
	struct evhttp_request *req = s->req;

	s->hub->opening--;
	s->state = SUB_DONE;
	s->req = NULL;
	sub_unlink(s);
	if (req != NULL) {
		if (status == 429 || status == 503)
			evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
		note_reply(s->hub, req, status);
		http_reply_error(req, status, code, message);
	}
	sub_unref(s); /* the owner's reference */
}

/* Events are small writes a few milliseconds apart to a client that sends
 * nothing back: with Nagle's algorithm an event waits for the ACK of the one
 * before, which the client delays by up to 40 ms (this was the ~34 ms p99 of
 * commit -> SSE). Failure only costs latency. */
static void set_nodelay(evutil_socket_t fd)
{
	int one = 1;

	if (fd >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void start_stream(struct sub *s)
{
	struct evhttp_request *req = s->req;
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const char *te;

	evhttp_add_header(h, "Content-Type", "text/event-stream");
	evhttp_add_header(h, "Cache-Control", "no-cache");
	evhttp_add_header(h, "X-Accel-Buffering", "no");
	note_reply(s->hub, req, 200);
	evhttp_send_reply_start(req, 200, "OK");
	s->hub->opening--;
	s->state = SUB_LIVE;
	s->evcon = evcon;
	/* Events bypass evhttp_send_reply_chunk() (see sse_send), so frame them
	 * as evhttp would: chunked for HTTP/1.1, raw for 1.0 (the connection
	 * then ends the stream), nothing for HEAD. */
	te = evhttp_find_header(h, "Transfer-Encoding");
	s->chunked = te != NULL && evutil_ascii_strcasecmp(te, "chunked") == 0;
	s->has_body = evhttp_request_get_command(req) != EVHTTP_REQ_HEAD;
	if (evcon != NULL) {
		struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
		struct timeval wr = {60, 0};

		evhttp_connection_set_closecb(evcon, conn_close_cb, s);
		/* An idle stream is normal: no read timeout; a client that stops
		 * reading for a minute is dropped by the write timeout. */
		if (bev != NULL) {
			bufferevent_set_timeouts(bev, NULL, &wr);
			set_nodelay(bufferevent_getfd(bev));
		}
	}
	(void)stream_put(s, s->hub->retry); /* only a hint */
	s->last_write_ms = now_ms();
}

/* The first state (or a fresh snapshot) of stream s, from r, whose rows
 * (n of them, NULL when r failed) are shared by every stream of the query. */
static void snapshot_apply(struct sub *s, const struct pgpool_result *r, struct job_row *rows,
                           int n)
{
	struct hub *hub = s->hub;
	bool was_pending = s->state == SUB_PENDING;
	int limit_col = 4;

	if (s->state == SUB_DONE)
		return;
	if (r->res == NULL) {
		if (was_pending) {
			const char *code;
			int status = r->unavailable ? 503
						    : http_status_for_sqlstate(r->sqlstate, true, &code);

			fail_pending(s, status, r->unavailable ? "unavailable" : code,
				     r->unavailable ? "database unavailable" : r->message);
		} else {
			s->need_snapshot = true; /* try again on the next tick */
		}
		return;
	}
	if (s->kind != SUB_GLOBAL && n == 0) {
		if (was_pending)
			fail_pending(s, 404, "not_found", "no such job");
		else
			deliver_deleted(s, s->job);
		return;
	}
	if (was_pending) {
		int64_t limit = 20;

		if (n > 0 && !PQgetisnull(r->res, 0, limit_col))
			limit = strtoll(PQgetvalue(r->res, 0, limit_col), NULL, 10);
		if (s->kind == SUB_GLOBAL && n > 0 && strcmp(PQgetvalue(r->res, 0, 5), "t") != 0) {
			/* logs_for names a job the caller cannot see: 404 like every route. */
			fail_pending(s, 404, "not_found", "no such job");
			return;
		}
		if (s->kind != SUB_WAIT && s->user != NULL && s->user->nstreams > limit) {
			fail_pending(s, 429, "limit_exceeded", "too many event streams for this user");
			return;
		}
		if (s->kind == SUB_JOB) {
			int64_t max_log = PQgetisnull(r->res, 0, 3)
						  ? 0
						  : strtoll(PQgetvalue(r->res, 0, 3), NULL, 10);

			s->last_log_id = s->last_event_id >= 0 ? s->last_event_id : max_log;
		} else if (s->kind == SUB_GLOBAL) {
			s->last_log_id = s->last_event_id >= 0 ? s->last_event_id : 0;
		}
		start_stream(s);
	}
	for (int i = 0; i < n && s->state == SUB_LIVE; i++)
		if (rows[i].job_id != NULL) /* NULL: global stream of a user without jobs */
			deliver_job(s, &rows[i], true);
	if (s->state == SUB_LIVE && s->user != NULL) {
		if (s->logs_for[0] != '\0' && (was_pending || s->need_snapshot))
			mark_dirty(hub, s->user, s->logs_for, false, true);
		if (s->dirty_while_pending) {
			s->dirty_while_pending = false;
			request_snapshot(s);
		}
	}
}

static void snap_finish(struct snap *g, const struct pgpool_result *r)
{
	static const struct pgpool_result no_memory = {.unavailable = true,
	                                               .message = "out of memory"};
	int n = r->res != NULL ? PQntuples(r->res) : 0;
	struct job_row *rows = n > 0 ? calloc((size_t)n, sizeof(*rows)) : NULL;

	snap_detach(g);
	if (n > 0 && rows == NULL) {
		r = &no_memory;
		n = 0;
	}
	for (int i = 0; i < n; i++) {
		if (PQgetisnull(r->res, i, 1))
			continue;
		job_row_from(&rows[i], r->res, i,
		             g->kind == SUB_GLOBAL ? PQgetvalue(r->res, i, 3) : g->key);
	}
	for (int i = 0; i < g->nsubs; i++) {
		struct sub *s = g->subs[i];

		s->snap_inflight = false;
		snapshot_apply(s, r, rows, n);
		sub_unref(s);
	}
	for (int i = 0; i < n; i++)
		if (rows[i].job_id != NULL)
			job_row_done(&rows[i]);
	free(rows);
	snap_free(g);
}

static void snapshot_done_cb(const struct pgpool_result *r, void *arg)
{
	struct snap *g = arg;
	struct hub *hub = g->hub;

	hub->snaps_at_pool--;
	snap_finish(g, r);
	snap_pump(hub);
}

/* Hands waiting snapshot queries to the pool, at most MAX_SNAPSHOTS_AT_POOL
 * at a time, so that a burst of new streams leaves room in the pool's queue
 * for everything else and keeps joining queries not yet sent. */
static void snap_pump(struct hub *hub)
{
	while (hub->snap_head != NULL && hub->snaps_at_pool < MAX_SNAPSHOTS_AT_POOL) {
		struct snap *g = hub->snap_head;
		struct pgpool_param p = {g->key[0] != '\0' ? g->key : NULL, strlen(g->key), false};
		struct pgpool_exec_opts o = {.urgent = false, .sent = &g->sent};

		/* $1: the job, or a global stream's logs_for (NULL for none; checked
		 * under RLS). Once closing, the pool may be gone. */
		if (!hub->closing &&
		    pgpool_exec_ex(hub->pool, g->user->id,
		                   g->kind == SUB_GLOBAL ? SQL_SSE_GLOBAL : SQL_SSE_JOB, 1, &p,
		                   NULL, &o, snapshot_done_cb, g) == 0) {
			snap_pop(hub);
			hub->snaps_at_pool++;
			continue;
		}
		if (!hub->closing && pgpool_live(hub->pool) > 0)
			break; /* the pool's queue is full: go on when it drains (or next tick) */
		/* No database, or shutting down: the waiting streams learn it now (503). */
		snap_pop(hub);
		snap_finish(g, &(struct pgpool_result){.unavailable = true,
		                                       .message = "database unavailable"});
	}
}

/* Reads the state of s's job(s) anew: s joins the query of another stream of
 * the same user that waits for the same one, unless that query has been sent
 * already (its snapshot could predate a change s has heard of). */
static void request_snapshot(struct sub *s)
{
	struct hub *hub = s->hub;
	const char *key = s->kind == SUB_GLOBAL ? s->logs_for : s->job;
	struct snap *g, *fresh = NULL;

	if (s->snap_inflight || s->user == NULL)
		return;
	for (g = s->user->snaps; g != NULL; g = g->unext)
		if (!g->sent && g->kind == s->kind && strcmp(g->key, key) == 0)
			break;
	if (g == NULL && (fresh = snap_new(hub, s->user, s->kind, key)) != NULL)
		g = fresh;
	if (g == NULL || snap_add(g, s) != 0) {
		if (fresh != NULL)
			snap_free(fresh);
		if (s->state == SUB_PENDING)
			fail_pending(s, 503, "unavailable", "out of memory");
		else
			s->need_snapshot = true;
		return;
	}
	if (fresh != NULL)
		snap_link(fresh);
	s->snap_inflight = true;
	snap_pump(hub);
}

static struct sub *sub_new(struct hub *hub, struct evhttp_request *req, const char *user,
			   enum sub_kind kind, const char *job)
{
	struct user *u = user_find(hub, user, true);
	struct sub *s = u != NULL ? calloc(1, sizeof(*s)) : NULL;

	if (s == NULL)
		return NULL;
	s->hub = hub;
	s->kind = kind;
	s->req = req;
	s->refs = 1;
	s->last_event_id = -1;
	seqmap_init(&s->seen, MAX_SEEN);
	snprintf(s->job, sizeof(s->job), "%s", job != NULL ? job : "");
	s->user = u;
	u->refs++;
	s->next = u->subs;
	if (u->subs != NULL)
		u->subs->prev = s;
	u->subs = s;
	if (kind == SUB_WAIT) {
		u->nwaiters++;
		hub->stats.waiters++;
	} else {
		u->nstreams++;
		hub->stats.streams++;
	}
	return s;
}

void hub_open_stream(struct hub *hub, struct evhttp_request *req, const char *user,
		     const char *job_id, const char *logs_for, int64_t last_event_id)
{
	struct sub *s = NULL;
	const char *why = hub->closing ? "shutting down"
	                  : hub->opening >= MAX_OPENING
	                      ? "too many streams waiting for the database"
	                      : "out of memory";

	if (!hub->closing && hub->opening < MAX_OPENING)
		s = sub_new(hub, req, user, job_id != NULL ? SUB_JOB : SUB_GLOBAL, job_id);
	if (s == NULL) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
		note_reply(hub, req, 503);
		http_reply_error(req, 503, "unavailable", why);
		return;
	}
	hub->opening++;
	s->last_event_id = last_event_id;
	if (last_event_id > 0)
		s->last_id = last_event_id;
	if (job_id != NULL)
		snprintf(s->logs_for, sizeof(s->logs_for), "%s", job_id);
	else if (logs_for != NULL)
		snprintf(s->logs_for, sizeof(s->logs_for), "%s", logs_for);
	request_snapshot(s);
}

void hub_wait(struct hub *hub, struct evhttp_request *req, const char *user, const char *job_id,
	      const char *job_json, int64_t timeout_s)
{
	struct user *u = user_find(hub, user, false);
	struct timeval tv = {timeout_s, 0};
	struct sub *s = NULL;

	/* Held requests cost a descriptor each: past the cap a user gets the
	 * job as it is now (202), exactly what a wait that timed out answers. */
	if (!hub->closing && (u == NULL || u->nwaiters < HUB_MAX_WAITERS_PER_USER))
		s = sub_new(hub, req, user, SUB_WAIT, job_id);
	if (s == NULL) {
		note_reply(hub, req, 202);
		http_reply_text(req, 202, job_json);
		return;
	}
	s->state = SUB_LIVE;
	s->wait_json = strdup(job_json);
	s->timer = evtimer_new(hub->base, waiter_timeout_cb, s);
	if (s->wait_json == NULL || s->timer == NULL || evtimer_add(s->timer, &tv) != 0) {
		waiter_answer(s, 202);
		return;
	}
	/* The job may have finished before we subscribed: read it once more. */
	mark_dirty(hub, s->user, job_id, true, false);
}

/* ==== Heartbeats, resync, shutdown ==== */

static void for_each_sub(struct hub *hub, void (*fn)(struct sub *s, void *arg), void *arg)
{
	for (int b = 0; b < NBUCKETS; b++) {
		for (struct user *u = hub->buckets[b], *unext; u != NULL; u = unext) {
			u->refs++; /* fn may drop the last subscriber */
			for (struct sub *s = u->subs, *next; s != NULL; s = next) {
				next = s->next;
				s->refs++;
				fn(s, arg);
				next = s->user == u ? s->next : next;
				sub_unref(s);
			}
			unext = u->hnext;
			user_unref(hub, u);
		}
	}
}

static void tick_one(struct sub *s, void *arg)
{
	struct hub *hub = s->hub;
	int64_t now = *(int64_t *)arg;

	if (s->state != SUB_LIVE || s->kind == SUB_WAIT)
		return;
	if (s->need_snapshot && pending_output(s) < hub->opts.queue_bytes / 2) {
		request_snapshot(s);
		if (s->snap_inflight)
			s->need_snapshot = false;
	}
	/* Ticks are tick_ms apart: ping one tick early so no gap exceeds heartbeat_ms. */
	if (now - s->last_write_ms >= hub->opts.heartbeat_ms - hub->tick_ms &&
	    pending_output(s) < hub->opts.queue_bytes) {
		(void)stream_put(s, hub->ping); /* a failed one is retried next tick */
		s->last_write_ms = now;
	}
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hub *hub = arg;
	int64_t now = now_ms();

	for_each_sub(hub, tick_one, &now);
	snap_pump(hub); /* snapshots the pool's full queue turned away */
}

static void resync_one(struct sub *s, void *arg)
{
	if (s->state != SUB_LIVE)
		return;
	if (s->kind == SUB_WAIT) {
		mark_dirty(s->hub, s->user, s->job, true, false);
		return;
	}
	s->need_snapshot = true; /* also re-reads logs after the snapshot */
	request_snapshot(s);
}

void hub_resync(struct hub *hub)
{
	for_each_sub(hub, resync_one, NULL);
}

static void shutdown_one(struct sub *s, void *arg)
{
	if (s->state != SUB_LIVE)
		return;
	if (s->kind == SUB_WAIT) {
		waiter_answer(s, 202);
		return;
	}
	if (s->req != NULL)
		(void)stream_put(s, s->hub->retry); /* only a hint */
	stream_end(s);
}

void hub_shutdown(struct hub *hub)
{
	hub->closing = true;
	snap_pump(hub); /* fails the snapshots still waiting here (503) */
	for_each_sub(hub, shutdown_one, NULL);
	if (hub->tick_ev != NULL)
		event_del(hub->tick_ev);
}

void hub_get_stats(const struct hub *hub, struct hub_stats *out)
{
	*out = hub->stats;
}

struct hub *hub_new(struct event_base *base, struct pgpool *pool, const struct hub_options *opts,
		    hub_reply_cb on_reply, void *arg)
{
	struct hub *hub = calloc(1, sizeof(*hub));
	/* Half the interval, at most 1 s, so a ping comes before it elapses. */
	int period = opts->heartbeat_ms / 2 > 1000 ? 1000
		     : opts->heartbeat_ms / 2 < 1  ? 1
						   : opts->heartbeat_ms / 2;
	struct timeval tv = {period / 1000, (period % 1000) * 1000};

	if (hub == NULL)
		return NULL;
	hub->base = base;
	hub->pool = pool;
	hub->tick_ms = period;
	hub->opts = *opts;
	hub->on_reply = on_reply;
	hub->reply_arg = arg;
	hub->flush_ev = event_new(base, -1, 0, flush_cb, hub);
	hub->tick_ev = event_new(base, -1, EV_PERSIST, tick_cb, hub);
	hub->ping = sse_frame_ping();
	hub->retry = sse_frame_retry(opts->retry_ms);
	if (hub->flush_ev == NULL || hub->tick_ev == NULL || hub->ping == NULL ||
	    hub->retry == NULL || event_add(hub->tick_ev, &tv) != 0) {
		hub_free(hub);
		return NULL;
	}
	return hub;
}

void hub_free(struct hub *hub)
{
	if (hub == NULL)
		return;
	hub_shutdown(hub);
	if (hub->flush_ev != NULL)
		event_free(hub->flush_ev);
	if (hub->tick_ev != NULL)
		event_free(hub->tick_ev);
	sse_frame_unref(hub->ping);
	sse_frame_unref(hub->retry);
	/* Users still referenced by pending subs (whose queries were failed by
	 * pgpool_free before this) are gone by now; free any stragglers. */
	for (int b = 0; b < NBUCKETS; b++) {
		while (hub->buckets[b] != NULL) {
			struct user *u = hub->buckets[b];

			hub->buckets[b] = u->hnext;
			free(u->dirty);
			free(u);
		}
	}
	free(hub);
}
