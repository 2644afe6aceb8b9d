/* follow.c -- following one job to its end (see follow.h).
 *
 * The per-job SSE stream is the source of events; the job row read with GET
 * is the truth whenever the stream was lost, so a drop can neither hang the
 * client (a job that ended meanwhile is seen at once) nor make it miss the
 * end. The loop stops exactly once, in finish().
 */
#include "follow.h"

#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "commands.h"
#include "jsonutil.h"
#include "progress.h"
#include "sse_reader.h"

#define STREAM_IDLE_S 45   /* the server's heartbeat comes at least every 15 s */
#define GIVE_UP_S     60.0 /* unreachable for this long: exit 4 */
#define MAX_EVENT     (16 << 20)

struct follow {
	struct cli *cli; /* borrowed */
	char job[40];
	enum follow_mode mode;
	struct http_stream *stream; /* owned; NULL between connections */
	struct sse_reader reader;   /* of the current connection */
	char last_id[64];           /* Last-Event-ID for the next connection */
	int64_t last_log_id;        /* log lines up to this one are printed */
	struct json_object *state;  /* owned; the last job state seen */
	char stage[32];             /* non-TTY: the phase last printed */
	struct rate_meter meter;
	bool line_drawn;         /* TTY: a progress line is on screen */
	struct event *sigint_ev; /* owned */
	struct event *retry_ev;  /* owned; reconnect timer */
	int sigints;
	bool cancel_sent;
	int drops;         /* consecutive connections that brought nothing */
	double down_since; /* first failure of the current outage, 0 if none */
	bool got_event;    /* the current connection delivered an event */
	bool finished;
	int exit_code;
	double t0;
};

static void open_stream(struct follow *f);
static void fetch_state(struct follow *f);

/* ==== Output ==== */

static int term_width(const struct follow *f)
{
	struct winsize ws;

	if (ioctl(fileno(f->cli->out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
		return ws.ws_col - 1; /* the last column would wrap on some terminals */
	return 79;
}

static void clear_line(struct follow *f)
{
	if (f->line_drawn) {
		fputs("\r\033[K", f->cli->out);
		fflush(f->cli->out);
		f->line_drawn = false;
	}
}

static void view_of(struct follow *f, struct progress_view *v)
{
	struct json_object *j = f->state, *est;
	int64_t eta = cli_json_int(j, "eta_seconds", -1);

	memset(v, 0, sizeof(*v));
	v->status = cli_json_str(j, "status", NULL);
	v->phase = cli_json_str(j, "phase", NULL);
	v->percent = cli_json_double(j, "progress", 0);
	v->processed = cli_json_int(j, "processed_items", 0);
	v->total = cli_json_int(j, "total_items", -1);
	v->total_is_estimate =
	    json_object_object_get_ex(j, "total_is_estimate", &est) && json_object_get_boolean(est);
	v->rate = rate_meter_rate(&f->meter);
	if (eta < 0 && v->rate > 0 && v->total > v->processed)
		eta = (int64_t)((double)(v->total - v->processed) / v->rate + 0.5);
	v->eta_seconds = eta;
	if (json_object_get_boolean(json_object_object_get(j, "cancel_requested")) &&
	    !cli_status_is_terminal(v->status))
		v->phase = "cancelling";
}

static void render(struct follow *f)
{
	struct progress_view v;
	char buf[512];

	if (f->mode != FOLLOW_PROGRESS || f->cli->args->json || f->state == NULL)
		return;
	view_of(f, &v);
	if (f->cli->tty) {
		progress_render(&v, term_width(f), buf, sizeof(buf));
		fprintf(f->cli->out, "\r%s\033[K", buf);
		f->line_drawn = true;
		fflush(f->cli->out);
		return;
	}
	/* Not a terminal: one line per phase (or pause) change. */
	{
		const char *stage = v.status != NULL && strcmp(v.status, "paused") == 0 ? "paused"
		                    : v.phase != NULL                                   ? v.phase
		                                                                        : "?";

		if (strcmp(stage, f->stage) == 0)
			return;
		snprintf(f->stage, sizeof(f->stage), "%s", stage);
		progress_render_plain(&v, buf, sizeof(buf));
		fprintf(f->cli->out, "%s\n", buf);
		fflush(f->cli->out);
	}
}

static void summary(struct follow *f)
{
	struct json_object *j = f->state, *counts = NULL;
	struct progress_summary s;
	double a, b;
	char buf[1024], st[64];

	if (f->cli->args->json) {
		/* logs --follow --json is a stream of log objects only. */
		if (f->mode == FOLLOW_PROGRESS)
			cli_print_json(f->cli, j);
		return;
	}
	if (f->mode != FOLLOW_PROGRESS) {
		fprintf(f->cli->out, "job %s %s\n", f->job,
		        cmd_status_text(f->cli, cli_json_str(j, "status", "?"), st, sizeof(st)));
		return;
	}
	json_object_object_get_ex(j, "counts", &counts);
	memset(&s, 0, sizeof(s));
	s.status = cmd_status_text(f->cli, cli_json_str(j, "status", "?"), st, sizeof(st));
	s.inserted = cli_json_int(counts, "inserted", 0);
	s.updated = cli_json_int(counts, "updated", 0);
	s.unchanged = cli_json_int(counts, "unchanged", 0);
	s.failed = cli_json_int(counts, "failed", cli_json_int(j, "failed_items", 0));
	s.dry_run = json_object_get_boolean(json_object_object_get(j, "dry_run"));
	s.error_message = cli_json_str(j, "error_message", NULL);
	if (progress_parse_time(cli_json_str(j, "started_at", NULL), &a) == 0 &&
	    progress_parse_time(cli_json_str(j, "completed_at", NULL), &b) == 0 && b >= a)
		s.seconds = b - a;
	else
		s.seconds = cli_now() - f->t0;
	progress_render_summary(&s, buf, sizeof(buf));
	fprintf(f->cli->out, "%s\n", buf);
	if (s.failed > 0)
		fprintf(f->cli->out, "record errors: importctl errors %s\n", f->job);
	fflush(f->cli->out);
}

/* ==== The end ==== */

/* Stops following with code (and the summary when the job ended). */
static void finish(struct follow *f, int code)
{
	if (f->finished)
		return;
	f->finished = true;
	f->exit_code = code;
	if (f->stream != NULL) {
		http_stream_free(f->stream);
		f->stream = NULL;
	}
	if (f->retry_ev != NULL)
		event_del(f->retry_ev);
	event_base_loopbreak(f->cli->base);
}

static void finish_job(struct follow *f)
{
	render(f);
	clear_line(f);
	summary(f);
	finish(f, cli_exit_for_status(cli_json_str(f->state, "status", NULL)));
}

static void finish_failed(struct follow *f, const struct http_response *res, const char *what)
{
	clear_line(f);
	finish(f, cli_fail_response(f->cli, res, what));
}

/* Takes a job state (ownership of j). */
static void set_state(struct follow *f, struct json_object *j)
{
	json_object_put(f->state);
	f->state = j;
	rate_meter_add(&f->meter, cli_now(), cli_json_int(j, "processed_items", 0));
	render(f);
}

/* ==== Log lines after a reconnect found the job ended ==== */

static void logs_cb(struct http_response *res, void *arg);

static void fetch_logs(struct follow *f)
{
	char path[160];

	snprintf(path, sizeof(path), "/api/jobs/%s/logs?limit=1000&after=%" PRId64, f->job,
	         f->last_log_id);
	if (http_send(f->cli->client, EVHTTP_REQ_GET, path, NULL, NULL, NULL, logs_cb, f) != 0)
		finish_job(f); /* the state is known; the lines are a bonus */
}

static void logs_cb(struct http_response *res, void *arg)
{
	struct follow *f = arg;
	struct json_object *o, *logs;
	size_t n = 0;

	if (f->finished)
		return;
	o = res->status == 200 ? json_tokener_parse(res->body) : NULL;
	if (o != NULL && json_object_object_get_ex(o, "logs", &logs) &&
	    json_object_is_type(logs, json_type_array)) {
		n = json_object_array_length(logs);
		for (size_t i = 0; i < n; i++) {
			struct json_object *l = json_object_array_get_idx(logs, i);
			int64_t id = cli_json_int(l, "id", 0);

			if (id > f->last_log_id) {
				f->last_log_id = id;
				cmd_print_log(f->cli, l);
			}
		}
	}
	json_object_put(o);
	if (n == 1000)
		fetch_logs(f);
	else
		finish_job(f);
}

/* ==== Reconnecting ==== */

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct follow *f = arg;

	if (!f->finished)
		open_stream(f);
}

/* Opens the stream again after a pause that grows with each connection that
 * brought nothing (0.1 s, then doubling up to 5 s). */
static void schedule_reconnect(struct follow *f)
{
	double delay = 0.1;
	struct timeval tv;

	for (int i = 0; i < f->drops && delay < 5; i++)
		delay *= 2;
	if (delay > 5)
		delay = 5;
	tv.tv_sec = (time_t)delay;
	tv.tv_usec = (suseconds_t)((delay - (double)tv.tv_sec) * 1e6);
	event_add(f->retry_ev, &tv);
}

/* The gateway cannot be reached, or is failing: keep trying for GIVE_UP_S. */
static void outage(struct follow *f, const struct http_response *res, const char *what)
{
	double now = cli_now();

	if (f->down_since == 0)
		f->down_since = now;
	if (now - f->down_since > GIVE_UP_S) {
		finish_failed(f, res, what);
		return;
	}
	f->drops++;
	schedule_reconnect(f);
}

static void state_cb(struct http_response *res, void *arg)
{
	struct follow *f = arg;
	struct json_object *j;

	if (f->finished)
		return;
	if (res->status == 0 || res->status >= 500) {
		outage(f, res, "following the job");
		return;
	}
	if (res->status != 200) {
		finish_failed(f, res, "following the job");
		return;
	}
	f->down_since = 0;
	j = cli_parse_body(f->cli, res);
	if (j == NULL) {
		clear_line(f);
		finish(f, CLI_SERVER);
		return;
	}
	set_state(f, j);
	if (cli_status_is_terminal(cli_json_str(j, "status", NULL))) {
		if (f->mode == FOLLOW_LOGS)
			fetch_logs(f);
		else
			finish_job(f);
		return;
	}
	schedule_reconnect(f);
}

/* Reads the job row (after the stream was lost or ended). */
static void fetch_state(struct follow *f)
{
	char path[96];
	struct http_response res;

	snprintf(path, sizeof(path), "/api/jobs/%s", f->job);
	if (http_send(f->cli->client, EVHTTP_REQ_GET, path, NULL, NULL, NULL, state_cb, f) != 0) {
		memset(&res, 0, sizeof(res));
		snprintf(res.error, sizeof(res.error), "cannot send a request");
		outage(f, &res, "following the job");
	}
}

/* ==== The stream ==== */

static void event_cb(const char *event, const char *data, const char *id, void *arg)
{
	struct follow *f = arg;
	struct json_object *j;

	if (f->finished)
		return;
	if (id[0] != '\0')
		snprintf(f->last_id, sizeof(f->last_id), "%s", id);
	f->got_event = true;
	f->drops = 0;
	f->down_since = 0;
	if (strcmp(event, "job") == 0) {
		j = json_tokener_parse(data);
		if (j != NULL && json_object_is_type(j, json_type_object))
			set_state(f, j);
		else
			json_object_put(j);
	} else if (strcmp(event, "log") == 0) {
		j = json_tokener_parse(data);
		if (j != NULL && cli_json_int(j, "id", 0) > f->last_log_id) {
			f->last_log_id = cli_json_int(j, "id", 0);
			if (f->mode == FOLLOW_LOGS)
				cmd_print_log(f->cli, j);
		}
		json_object_put(j);
	} else if (strcmp(event, "end") == 0) {
		/* The job is over and its last log lines were sent: read the
		 * final row (counts, completed_at) and stop. */
		if (f->stream != NULL) {
			http_stream_free(f->stream);
			f->stream = NULL;
		}
		fetch_state(f);
	} else if (strcmp(event, "deleted") == 0) {
		clear_line(f);
		finish(f, cli_error(f->cli, CLI_NOT_FOUND, "job %s was deleted", f->job));
	}
}

static void data_cb(const char *data, size_t len, void *arg)
{
	struct follow *f = arg;

	if (f->finished || f->stream == NULL)
		return;
	if (sse_reader_feed(&f->reader, data, len, event_cb, f) != 0 && !f->finished &&
	    f->stream != NULL) {
		/* An event too large to be ours: drop this connection. */
		http_stream_free(f->stream);
		f->stream = NULL;
		f->drops++;
		fetch_state(f);
	}
}

static void end_cb(struct http_response *res, void *arg)
{
	struct follow *f = arg;

	if (f->finished)
		return;
	http_stream_free(f->stream);
	f->stream = NULL;
	if (res->status == 401 || res->status == 403 || res->status == 404) {
		finish_failed(f, res, "following the job");
		return;
	}
	if (!f->got_event)
		f->drops++;
	/* Closed by the server (restart, slow-client limit), refused for now
	 * (429, 503) or lost: the row says whether the job ended meanwhile. */
	fetch_state(f);
}

static void open_stream(struct follow *f)
{
	char path[96];
	struct http_response res;

	sse_reader_free(&f->reader);
	sse_reader_init(&f->reader, MAX_EVENT);
	f->got_event = false;
	snprintf(path, sizeof(path), "/api/jobs/%s/events", f->job);
	f->stream =
	    http_stream_open(f->cli->client, path, f->last_id, STREAM_IDLE_S, data_cb, end_cb, f);
	if (f->stream == NULL) {
		memset(&res, 0, sizeof(res));
		snprintf(res.error, sizeof(res.error), "cannot open a connection");
		outage(f, &res, "following the job");
	}
}

/* ==== Ctrl-C ==== */

static void cancel_cb(struct http_response *res, void *arg)
{
	struct follow *f = arg;

	if (f->finished)
		return;
	clear_line(f);
	if (res->status == 200 || res->status == 202)
		fprintf(f->cli->err,
		        "importctl: cancel requested for job %s (Ctrl-C again to "
		        "detach)\n",
		        f->job);
	else if (res->status == 409)
		fprintf(f->cli->err, "importctl: job %s has already ended\n", f->job);
	else
		(void)cli_fail_response(f->cli, res, "cancel");
	fflush(f->cli->err);
	render(f);
}

static void sigint_cb(evutil_socket_t sig, short what, void *arg)
{
	struct follow *f = arg;
	char path[96];

	if (f->finished)
		return;
	if (++f->sigints >= 2) {
		clear_line(f);
		fprintf(f->cli->err, "importctl: detached; job %s goes on%s (importctl show %s)\n",
		        f->job, f->cancel_sent ? " until its cancel takes effect" : "", f->job);
		finish(f, CLI_DETACHED);
		return;
	}
	clear_line(f);
	fprintf(f->cli->err, "importctl: cancelling job %s...\n", f->job);
	fflush(f->cli->err);
	snprintf(path, sizeof(path), "/api/jobs/%s/cancel", f->job);
	f->cancel_sent =
	    http_send(f->cli->client, EVHTTP_REQ_POST, path, NULL, NULL, NULL, cancel_cb, f) == 0;
	if (!f->cancel_sent)
		fprintf(f->cli->err, "importctl: could not send the cancel request\n");
}

int follow_job(struct cli *cli, const char *job_id, enum follow_mode mode, int64_t last_log_id)
{
	struct follow f;

	memset(&f, 0, sizeof(f));
	f.cli = cli;
	f.mode = mode;
	f.last_log_id = last_log_id;
	f.exit_code = CLI_SERVER;
	f.t0 = cli_now();
	snprintf(f.job, sizeof(f.job), "%s", job_id);
	/* logs --follow: the stream starts after the lines already printed. */
	if (mode == FOLLOW_LOGS)
		snprintf(f.last_id, sizeof(f.last_id), "%" PRId64, last_log_id);
	rate_meter_init(&f.meter, 10);
	sse_reader_init(&f.reader, MAX_EVENT);
	f.sigint_ev = evsignal_new(cli->base, SIGINT, sigint_cb, &f);
	f.retry_ev = evtimer_new(cli->base, retry_cb, &f);
	if (f.sigint_ev == NULL || f.retry_ev == NULL || event_add(f.sigint_ev, NULL) != 0) {
		f.exit_code = cli_error(cli, CLI_SERVER, "cannot set up the event loop");
		goto out;
	}
	open_stream(&f);
	while (!f.finished)
		if (event_base_loop(cli->base, 0) < 0) {
			f.exit_code = cli_error(cli, CLI_SERVER, "event loop failed");
			break;
		}
out:
	clear_line(&f);
	http_stream_free(f.stream);
	if (f.sigint_ev != NULL)
		event_free(f.sigint_ev);
	if (f.retry_ev != NULL)
		event_free(f.retry_ev);
	sse_reader_free(&f.reader);
	json_object_put(f.state);
	return f.exit_code;
}
