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
#include "sse.h"

#define NBUCKETS 1024
#define ID_LEN   37

enum sub_kind { SUB_JOB, SUB_GLOBAL, SUB_WAIT };
enum sub_state { SUB_PENDING, SUB_LIVE, SUB_DONE };

struct user;

/* The last job seq a global stream sent for one job. */
struct seen {
	char job[ID_LEN];
	int64_t seq;
};

#define MAX_SEEN 256 /* per global stream; the oldest entry is evicted beyond */

struct sub {
	struct hub *hub;            /* borrowed */
	struct user *user;          /* borrowed; NULL once unlinked */
	struct sub *next, *prev;    /* in user->subs */
	enum sub_kind kind;
	enum sub_state state;
	struct evhttp_request *req; /* borrowed from evhttp; NULL once answered or gone */
	struct evhttp_connection *evcon; /* borrowed */
	char job[ID_LEN];           /* SUB_JOB, SUB_WAIT */
	char logs_for[ID_LEN];      /* job whose logs the stream carries, "" = none */
	int64_t last_log_id;
	int64_t last_seq;           /* SUB_JOB: last job seq sent */
	int64_t last_event_id;      /* from the request, -1 if absent */
	int64_t last_id;            /* largest id: written; for events without one */
	struct seen *seen;          /* owned; SUB_GLOBAL: last seq sent per job */
	int nseen, capseen;
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
	struct hub_stats stats;
	bool closing;
};

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
	free(s->seen);
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

static size_t pending_output(struct sub *s)
{
	struct bufferevent *bev;

	if (s->req == NULL || evhttp_request_get_connection(s->req) == NULL)
		return 0;
	bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(s->req));
	return bev != NULL ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

enum wr {
	WR_CLOSED,  /* the stream is (now) closed: s may be freed */
	WR_SENT,    /* queued on the connection */
	WR_DROPPED, /* dropped for a slow client (or out of memory) */
};

/* Writes one event. important: a state or terminal event that must not be
 * lost; others are dropped while the client is behind, which schedules a
 * fresh snapshot. On WR_CLOSED s is freed unless the caller holds a reference. */
static enum wr stream_write(struct sub *s, const char *event, int64_t id, const char *data,
			    bool important)
{
	struct hub *hub = s->hub;
	size_t pending = pending_output(s);
	struct evbuffer *buf;

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
	 * log line already sent (a log written after the state change). */
	if (id > 0 && id < s->last_id)
		id = s->last_id;
	buf = evbuffer_new();
	if (buf == NULL || sse_format(buf, event, id, data) != 0) {
		if (buf != NULL)
			evbuffer_free(buf);
		s->need_snapshot = true;
		return WR_DROPPED;
	}
	evhttp_send_reply_chunk(s->req, buf);
	evbuffer_free(buf);
	s->last_write_ms = now_ms();
	if (id > s->last_id)
		s->last_id = id;
	hub->stats.events_relayed++;
	return WR_SENT;
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
	int i, oldest = 0;

	if (s->kind == SUB_JOB)
		return &s->last_seq;
	for (i = 0; i < s->nseen; i++) {
		if (strcmp(s->seen[i].job, job) == 0)
			return &s->seen[i].seq;
		if (s->seen[i].seq < s->seen[oldest].seq)
			oldest = i;
	}
	if (s->nseen == MAX_SEEN) {
		i = oldest; /* long unchanged: the least likely to race */
	} else {
		if (s->nseen == s->capseen) {
			int cap = s->capseen == 0 ? 16 : s->capseen * 2;
			struct seen *n = realloc(s->seen, (size_t)cap * sizeof(*n));

			if (n == NULL)
				return NULL;
			s->seen = n;
			s->capseen = cap;
		}
		i = s->nseen++;
	}
	snprintf(s->seen[i].job, ID_LEN, "%s", job);
	s->seen[i].seq = 0;
	return &s->seen[i].seq;
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
	if (pgpool_exec(s->hub->pool, s->user->id, SQL_SSE_LOGS, 2, p, NULL, logs_done_cb, q) != 0) {
		hq_free(q);
		return -1;
	}
	return 0;
}

/* One job row (json, seq, status) for sub s. s may be freed on return unless
 * the caller holds a reference. */
static void deliver_job(struct sub *s, const char *json, int64_t seq, const char *status,
			const char *job_id, bool snapshot)
{
	bool terminal = hub_is_terminal(status);
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
	w = stream_write(s, "job", seq, json, snapshot || terminal);
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
		char data[128];

		snprintf(data, sizeof(data), "{\"id\":\"%.36s\",\"status\":\"%.16s\"}",
			 job_id, status);
		(void)stream_write(s, "end", seq, data, true);
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
	if (!u->on_dirty_list) {
		u->on_dirty_list = true;
		u->dnext = hub->dirty_head;
		hub->dirty_head = u;
	}
	schedule_flush(hub);
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

			for (int i = 0; i < n; i++)
				if (strcmp(PQgetvalue(r->res, i, 3), id) == 0)
					row = i;
			for (struct sub *s = u->subs, *next; s != NULL; s = next) {
				next = s->next;
				if (!wants_job(s, id))
					continue;
				s->refs++; /* delivery may end s */
				if (row < 0)
					deliver_deleted(s, id);
				else
					deliver_job(s, PQgetvalue(r->res, row, 0),
						    strtoll(PQgetvalue(r->res, row, 1), NULL, 10),
						    PQgetvalue(r->res, row, 2), id, false);
				next = s->user == u ? s->next : next;
				sub_unref(s);
			}
		}
	} else if (r->res == NULL) {
		log_warn("sse.refresh_failed", LF_STR("error", r->message));
	}
	if (u->ndirty > 0)
		schedule_flush(q->hub);
	hq_free(q);
}

static void logs_done_cb(const struct pgpool_result *r, void *arg)
{
	struct hq *q = arg;
	struct user *u = q->user;
	struct sub *only = q->sub; /* referenced; a per-job stream's logs before "end" */
	int n = r->res != NULL ? PQntuples(r->res) : 0;

	for (struct sub *s = u->subs, *next; r->res != NULL && s != NULL; s = next) {
		next = s->next;
		if ((only != NULL && s != only) || !wants_logs(s, q->job) || s->state != SUB_LIVE)
			continue;
		s->refs++; /* a write may end s (hard_bytes) */
		for (int i = 0; i < n && s->state == SUB_LIVE; i++) {
			int64_t id = strtoll(PQgetvalue(r->res, i, 0), NULL, 10);

			if (id <= s->last_log_id)
				continue;
			s->last_log_id = id;
			if (stream_write(s, "log", id, PQgetvalue(r->res, i, 1), false) == WR_CLOSED)
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
			if (q != NULL && pgpool_exec(hub->pool, u->id, SQL_SSE_LOGS, 2, p, NULL,
						     logs_done_cb, q) != 0)
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
			if (pgpool_exec(hub->pool, u->id, SQL_SSE_JOBS, 1, &p, NULL, refresh_done_cb,
					q) != 0) {
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
	struct evbuffer *buf;

	evhttp_add_header(h, "Content-Type", "text/event-stream");
	evhttp_add_header(h, "Cache-Control", "no-cache");
	evhttp_add_header(h, "X-Accel-Buffering", "no");
	note_reply(s->hub, req, 200);
	evhttp_send_reply_start(req, 200, "OK");
	s->state = SUB_LIVE;
	s->evcon = evcon;
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
	buf = evbuffer_new();
	if (buf != NULL && sse_retry(buf, s->hub->opts.retry_ms) == 0)
		evhttp_send_reply_chunk(req, buf);
	if (buf != NULL)
		evbuffer_free(buf);
	s->last_write_ms = now_ms();
}

static void snapshot_done_cb(const struct pgpool_result *r, void *arg)
{
	struct hq *q = arg;
	struct sub *s = q->sub;
	struct hub *hub = q->hub;
	bool was_pending = s->state == SUB_PENDING;
	int n, limit_col = 4;

	s->snap_inflight = false;
	if (s->state == SUB_DONE)
		goto out;
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
		goto out;
	}
	n = PQntuples(r->res);
	if (s->kind != SUB_GLOBAL && n == 0) {
		if (was_pending)
			fail_pending(s, 404, "not_found", "no such job");
		else
			deliver_deleted(s, s->job);
		goto out;
	}
	if (was_pending) {
		int64_t limit = 20;

		if (n > 0 && !PQgetisnull(r->res, 0, limit_col))
			limit = strtoll(PQgetvalue(r->res, 0, limit_col), NULL, 10);
		if (s->kind == SUB_GLOBAL && n > 0 && strcmp(PQgetvalue(r->res, 0, 5), "t") != 0) {
			/* logs_for names a job the caller cannot see: 404 like every route. */
			fail_pending(s, 404, "not_found", "no such job");
			goto out;
		}
		if (s->kind != SUB_WAIT && s->user != NULL && s->user->nstreams > limit) {
			fail_pending(s, 429, "limit_exceeded", "too many event streams for this user");
			goto out;
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
	for (int i = 0; i < n && s->state == SUB_LIVE; i++) {
		const char *id = s->kind == SUB_GLOBAL ? PQgetvalue(r->res, i, 3) : s->job;

		if (PQgetisnull(r->res, i, 1))
			continue; /* global stream of a user without jobs */
		deliver_job(s, PQgetvalue(r->res, i, 0), strtoll(PQgetvalue(r->res, i, 1), NULL, 10),
			    PQgetvalue(r->res, i, 2), id, true);
	}
	if (s->state == SUB_LIVE && s->user != NULL) {
		if (s->logs_for[0] != '\0' && (was_pending || s->need_snapshot))
			mark_dirty(hub, s->user, s->logs_for, false, true);
		if (s->dirty_while_pending) {
			s->dirty_while_pending = false;
			request_snapshot(s);
		}
	}
out:
	hq_free(q);
}

static void request_snapshot(struct sub *s)
{
	struct hub *hub = s->hub;
	struct hq *q;
	struct pgpool_param p = {s->job, strlen(s->job), false};

	if (s->snap_inflight || s->user == NULL)
		return;
	if (s->kind == SUB_GLOBAL) /* $1: logs_for, NULL for none (checked under RLS) */
		p = (struct pgpool_param){s->logs_for[0] != '\0' ? s->logs_for : NULL,
					  strlen(s->logs_for), false};
	q = hq_new(hub, s->user, s, NULL, 0);
	if (q == NULL)
		return;
	s->snap_inflight = true;
	if (pgpool_exec(hub->pool, s->user->id, s->kind == SUB_GLOBAL ? SQL_SSE_GLOBAL : SQL_SSE_JOB,
			1, &p, NULL, snapshot_done_cb, q) != 0) {
		s->snap_inflight = false;
		hq_free(q);
		if (s->state == SUB_PENDING)
			fail_pending(s, 503, "unavailable", "database unavailable");
		else
			s->need_snapshot = true;
	}
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
	struct sub *s;

	if (hub->closing || (s = sub_new(hub, req, user, job_id != NULL ? SUB_JOB : SUB_GLOBAL,
					 job_id)) == NULL) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
		note_reply(hub, req, 503);
		http_reply_error(req, 503, "unavailable", "shutting down");
		return;
	}
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
		struct evbuffer *buf = evbuffer_new();

		if (buf != NULL && sse_ping(buf) == 0)
			evhttp_send_reply_chunk(s->req, buf);
		if (buf != NULL)
			evbuffer_free(buf);
		s->last_write_ms = now;
	}
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hub *hub = arg;
	int64_t now = now_ms();

	for_each_sub(hub, tick_one, &now);
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
	if (s->req != NULL) {
		struct evbuffer *buf = evbuffer_new();

		if (buf != NULL && sse_retry(buf, s->hub->opts.retry_ms) == 0)
			evhttp_send_reply_chunk(s->req, buf);
		if (buf != NULL)
			evbuffer_free(buf);
	}
	stream_end(s);
}

void hub_shutdown(struct hub *hub)
{
	hub->closing = true;
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
	if (hub->flush_ev == NULL || hub->tick_ev == NULL || event_add(hub->tick_ev, &tv) != 0) {
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
