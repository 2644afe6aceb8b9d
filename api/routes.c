/* routes.c -- the HTTP API of DESIGN.md: matching, auth, parameters, results.
 *
 * Order of checks: route shape (404), method (405), token (401), parameters
 * (400), then one SQL statement under the caller's identity; SQLSTATEs map to
 * statuses in http_util.c. Job JSON comes ready-made from PostgreSQL.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_sql.h"
#include "gateway_int.h"
#include "http_util.h"
#include "jsonutil.h"
#include "jwt.h"
#include "log.h"
#include "multipart.h"

#define MAX_CHUNK   (8 * 1024 * 1024)
#define BIG_UPLOAD  (1024 * 1024)

static const char *const option_keys[] = {"collection", "mode",       "key",
					  "delimiter",  "file_name",  "dry_run",
					  "batch_size", "priority",   "max_attempts", NULL};

static const char *qget(struct evkeyvalq *q, const char *key)
{
	return evhttp_find_header(q, key);
}

/* 400 unless every query key is one of allowed (NULL-terminated lists). */
static bool only_keys(struct call *c, struct evkeyvalq *q, const char *const *a,
		      const char *const *b)
{
	for (struct evkeyval *kv = q->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
		bool ok = strcmp(kv->key, "access_token") == 0;

		for (int i = 0; !ok && a != NULL && a[i] != NULL; i++)
			ok = strcmp(kv->key, a[i]) == 0;
		for (int i = 0; !ok && b != NULL && b[i] != NULL; i++)
			ok = strcmp(kv->key, b[i]) == 0;
		if (!ok) {
			char msg[160];

			snprintf(msg, sizeof(msg), "unknown query parameter \"%.64s\"", kv->key);
			call_reply_error(c, 400, "bad_request", msg);
			return false;
		}
	}
	return true;
}

/* Reads an optional integer parameter; false (after answering 400) if bad. */
static bool qint(struct call *c, struct evkeyvalq *q, const char *key, int64_t lo, int64_t hi,
		 int64_t def, int64_t *out)
{
	const char *v = qget(q, key);
	char msg[160];

	*out = def;
	if (v == NULL || http_parse_int(v, lo, hi, out) == 0)
		return true;
	snprintf(msg, sizeof(msg), "%s must be an integer between %lld and %lld", key,
		 (long long)lo, (long long)hi);
	call_reply_error(c, 400, "bad_request", msg);
	return false;
}

static bool authenticate(struct call *c, struct evkeyvalq *q, bool allow_query)
{
	const char *token = http_bearer_token(c->req);
	char err[128];

	if (token == NULL && allow_query)
		token = qget(q, "access_token");
	if (token == NULL) {
		evhttp_add_header(evhttp_request_get_output_headers(c->req), "WWW-Authenticate",
				  "Bearer");
		call_reply_error(c, 401, "unauthorized", "missing bearer token");
		return false;
	}
	if (jwt_verify(c->gw->cfg->jwt_secret, token, (int64_t)time(NULL), c->user, err,
		       sizeof(err)) != 0) {
		c->user[0] = '\0';
		evhttp_add_header(evhttp_request_get_output_headers(c->req), "WWW-Authenticate",
				  "Bearer error=\"invalid_token\"");
		call_reply_error(c, 401, "unauthorized", err);
		return false;
	}
	return true;
}

/* ==== Result formatting ==== */

/* A job row (json, seq, status): 202 (or c->limit as status) + Location. */
static void job_ok(struct call *c, PGresult *res)
{
	if (PQntuples(res) != 1) {
		call_reply_error(c, 404, "not_found", "no such job");
		return;
	}
	call_reply_text(c, (int)(c->limit != 0 ? c->limit : 202), PQgetvalue(res, 0, 0));
}

static void submit_ok(struct call *c, PGresult *res)
{
	const char *json, *status;
	struct json_object *o;
	const char *id;
	char loc[80];

	if (PQntuples(res) != 1) {
		call_reply_error(c, 500, "internal", "submitted job not found");
		return;
	}
	json = PQgetvalue(res, 0, 0);
	status = PQgetvalue(res, 0, 2);
	o = json_tokener_parse(json);
	id = jsonutil_get_string(o, "id");
	if (id != NULL) {
		snprintf(loc, sizeof(loc), "/api/jobs/%.36s", id);
		evhttp_add_header(evhttp_request_get_output_headers(c->req), "Location", loc);
	}
	if (c->wait && id != NULL && !hub_is_terminal(status) && c->wait_timeout > 0) {
		struct gateway *gw = c->gw;
		struct evhttp_request *req = c->req;
		int64_t timeout = c->wait_timeout;
		char user[40], job[40];

		snprintf(user, sizeof(user), "%s", c->user);
		snprintf(job, sizeof(job), "%s", id);
		call_release(c); /* the hub answers req from now on */
		hub_wait(gw->hub, req, user, job, json, timeout);
		json_object_put(o);
		return;
	}
	call_reply_text(c, c->wait && hub_is_terminal(status) ? 200 : 202, json);
	json_object_put(o);
}

/* {"<key>":[rows' json col],"next":<cursor of the last row or null>} for a
 * page: rows beyond c->limit only say that there is a next page. */
static void page_reply(struct call *c, PGresult *res, const char *key, int json_col,
		       int cursor_col, bool cursor_is_number, int skip_null_col)
{
	struct evbuffer *buf = evbuffer_new();
	int n = PQntuples(res), shown = 0;
	const char *last = NULL;

	if (buf == NULL) {
		call_reply_error(c, 503, "unavailable", "out of memory");
		return;
	}
	evbuffer_add_printf(buf, "{\"%s\":[", key);
	for (int i = 0; i < n && shown < c->limit; i++) {
		if (skip_null_col >= 0 && PQgetisnull(res, i, skip_null_col))
			continue;
		evbuffer_add_printf(buf, "%s%s", shown > 0 ? "," : "", PQgetvalue(res, i, json_col));
		last = PQgetvalue(res, i, cursor_col);
		shown++;
	}
	if (shown == c->limit && last != NULL && (cursor_is_number || n > shown))
		evbuffer_add_printf(buf, cursor_is_number ? "],\"next\":%s}" : "],\"next\":\"%s\"}",
				    last);
	else
		evbuffer_add_printf(buf, "],\"next\":null}");
	evbuffer_add(buf, "", 1);
	call_reply_text(c, 200, (const char *)evbuffer_pullup(buf, -1));
	evbuffer_free(buf);
}

static void list_ok(struct call *c, PGresult *res)
{
	page_reply(c, res, "jobs", 0, 3, false, -1);
}

static void logs_ok(struct call *c, PGresult *res)
{
	if (PQntuples(res) == 0) {
		call_reply_error(c, 404, "not_found", "no such job");
		return;
	}
	page_reply(c, res, c->route == R_JOB_LOGS ? "logs" : "errors", 2, 1, true, 1);
}

static void records_ok(struct call *c, PGresult *res)
{
	page_reply(c, res, "records", 0, 1, false, -1);
}

static void single_json_ok(struct call *c, PGresult *res)
{
	call_reply_text(c, 200, PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "{}");
}

static void clear_ok(struct call *c, PGresult *res)
{
	char body[64];

	snprintf(body, sizeof(body), "{\"deleted\":%s}",
		 PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "0");
	call_reply_text(c, 200, body);
}

static void no_content_ok(struct call *c, PGresult *res)
{
	call_reply_text(c, 204, NULL);
}

static void upload_begin_ok(struct call *c, PGresult *res)
{
	char body[96], loc[80];
	const char *id = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";

	snprintf(loc, sizeof(loc), "/api/uploads/%.36s", id);
	evhttp_add_header(evhttp_request_get_output_headers(c->req), "Location", loc);
	snprintf(body, sizeof(body), "{\"upload_id\":\"%.36s\"}", id);
	call_reply_text(c, 201, body);
}

static void chunk_ok(struct call *c, PGresult *res)
{
	char body[128];

	snprintf(body, sizeof(body), "{\"upload_id\":\"%s\",\"seq\":%lld,\"size\":%lld}", c->job,
		 (long long)c->wait_timeout, (long long)c->limit);
	call_reply_text(c, 200, body);
}

/* ==== Handlers ==== */

/* Takes the request body: the file part of a form, or the raw body.
 * Returns: new buffer (caller frees) or NULL when empty; *err set on failure. */
static char *take_body(struct call *c, size_t *len, char *fname, size_t fnamelen, bool *err)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(c->req), "Content-Type");
	size_t n = evbuffer_get_length(in);
	char boundary[80];
	char *out;

	*err = false;
	*len = 0;
	fname[0] = '\0';
	if (n == 0)
		return NULL;
	if (ct != NULL && strncmp(ct, "multipart/", 10) == 0) {
		const char *data;
		size_t dlen;
		unsigned char *body = evbuffer_pullup(in, -1);

		if (body == NULL || multipart_boundary(ct, boundary, sizeof(boundary)) != 0 ||
		    multipart_find_file(boundary, (const char *)body, n, &data, &dlen, fname,
					fnamelen) != 0) {
			*err = true;
			return NULL;
		}
		if (dlen == 0)
			return NULL;
		out = malloc(dlen);
		if (out == NULL) {
			*err = true;
			return NULL;
		}
		memcpy(out, data, dlen);
		evbuffer_drain(in, n);
		*len = dlen;
		return out;
	}
	out = malloc(n);
	if (out == NULL || evbuffer_remove(in, out, n) != (int)n) {
		free(out);
		*err = true;
		return NULL;
	}
	*len = n;
	return out;
}

static void submit_job(struct call *c, struct evkeyvalq *q)
{
	static const char *const extra[] = {"kind", "upload_id", "wait", "wait_timeout", NULL};
	const char *kind = qget(q, "kind"), *upload = qget(q, "upload_id");
	const char *idem = evhttp_find_header(evhttp_request_get_input_headers(c->req),
					      "Idempotency-Key");
	struct json_object *opts = NULL;
	char fname[256];
	char *body = NULL;
	size_t blen = 0;
	bool bad = false;

	if (!only_keys(c, q, option_keys, extra))
		return;
	if (kind == NULL || kind[0] == '\0') {
		call_reply_error(c, 400, "bad_request", "kind is required");
		return;
	}
	if (qget(q, "wait") != NULL && http_parse_bool(qget(q, "wait"), &c->wait) != 0) {
		call_reply_error(c, 400, "bad_request", "wait must be true or false");
		return;
	}
	if (!qint(c, q, "wait_timeout", 0, 3600, 300, &c->wait_timeout))
		return;
	if (upload != NULL && !http_is_uuid(upload)) {
		call_reply_error(c, 400, "bad_request", "upload_id must be a UUID");
		return;
	}
	if (evbuffer_get_length(evhttp_request_get_input_buffer(c->req)) > BIG_UPLOAD) {
		if (c->gw->uploads >= c->gw->opts.max_uploads) {
			call_reply_error(c, 503, "unavailable", "too many uploads in progress");
			return;
		}
		c->is_upload = true;
		c->gw->uploads++;
	}
	body = take_body(c, &blen, fname, sizeof(fname), &bad);
	if (bad) {
		call_reply_error(c, 400, "bad_request", "malformed multipart/form-data body");
		return;
	}
	if (upload != NULL && body != NULL) {
		free(body);
		call_reply_error(c, 400, "bad_request", "send either a body or upload_id, not both");
		return;
	}
	opts = json_object_new_object();
	for (int i = 0; option_keys[i] != NULL; i++) {
		const char *v = qget(q, option_keys[i]);

		if (v != NULL)
			jsonutil_add(opts, option_keys[i], json_object_new_string(v));
	}
	if (qget(q, "file_name") == NULL && fname[0] != '\0')
		jsonutil_add(opts, "file_name", json_object_new_string(fname));
	if (idem != NULL)
		jsonutil_add(opts, "idempotency_key", json_object_new_string(idem));
	{
		const char *text = json_object_to_json_string_ext(opts, JSON_C_TO_STRING_PLAIN);
		struct pgpool_param p[3] = {{kind, strlen(kind), false}, {text, strlen(text), false},
					    {upload, upload != NULL ? strlen(upload) : 0, false}};

		c->on_ok = submit_ok;
		if (upload != NULL)
			call_exec(c, SQL_SUBMIT_UPLOAD, 3, p, NULL, 0, SQL_JOB_LAST);
		else if (body != NULL)
			call_exec(c, SQL_SUBMIT_BYTES, 2, p, body, blen, SQL_JOB_LAST);
		else
			call_exec(c, SQL_SUBMIT_BYTES, 3, p, NULL, 0, SQL_JOB_LAST);
	}
	json_object_put(opts);
}

static bool valid_status(const char *s)
{
	static const char *const all[] = {"pending",   "processing", "paused",
					  "completed", "failed",     "cancelled", NULL};

	for (int i = 0; all[i] != NULL; i++)
		if (strcmp(s, all[i]) == 0)
			return true;
	return false;
}

static void list_jobs(struct call *c, struct evkeyvalq *q)
{
	static const char *const keys[] = {"status", "limit", "cursor", NULL};
	const char *status = qget(q, "status"), *cursor = qget(q, "cursor");
	char limit[32];

	if (!only_keys(c, q, keys, NULL) || !qint(c, q, "limit", 1, 100, 20, &c->limit))
		return;
	if (status != NULL && !valid_status(status)) {
		call_reply_error(c, 400, "bad_request", "unknown status");
		return;
	}
	snprintf(limit, sizeof(limit), "%lld", (long long)c->limit + 1);
	{
		struct pgpool_param p[3] = {{status, status ? strlen(status) : 0, false},
					    {cursor, cursor ? strlen(cursor) : 0, false},
					    {limit, strlen(limit), false}};

		c->on_ok = list_ok;
		call_exec(c, SQL_JOB_LIST, 3, p, NULL, 0, NULL);
	}
}

static void clear_jobs(struct call *c, struct evkeyvalq *q)
{
	static const char *const keys[] = {"status", NULL};
	const char *status = qget(q, "status");
	struct pgpool_param p = {status, status ? strlen(status) : 0, false};

	if (!only_keys(c, q, keys, NULL))
		return;
	c->on_ok = clear_ok;
	call_exec(c, SQL_JOB_CLEAR, 1, &p, NULL, 0, NULL);
}

static void job_action(struct call *c, const char *action, struct evkeyvalq *q)
{
	static const char *const retry_keys[] = {"restart", NULL};
	struct pgpool_param p[2] = {{c->job, strlen(c->job), false}, {"false", 5, false}};
	bool restart = false;
	const char *sql = strcmp(action, "cancel") == 0	  ? SQL_JOB_CANCEL
			  : strcmp(action, "pause") == 0  ? SQL_JOB_PAUSE
			  : strcmp(action, "resume") == 0 ? SQL_JOB_RESUME
							  : SQL_JOB_RETRY;

	if (!only_keys(c, q, sql == SQL_JOB_RETRY ? retry_keys : NULL, NULL))
		return;
	if (qget(q, "restart") != NULL && http_parse_bool(qget(q, "restart"), &restart) != 0) {
		call_reply_error(c, 400, "bad_request", "restart must be true or false");
		return;
	}
	if (restart)
		p[1] = (struct pgpool_param){"true", 4, false};
	c->on_ok = job_ok;
	c->limit = 202;
	call_exec(c, sql, sql == SQL_JOB_RETRY ? 2 : 1, p, NULL, 0, NULL);
}

static void job_pages(struct call *c, struct evkeyvalq *q)
{
	static const char *const keys[] = {"after", "limit", NULL};
	int64_t after;
	char after_s[32], limit_s[32];

	if (!only_keys(c, q, keys, NULL) || !qint(c, q, "after", 0, INT64_MAX, 0, &after) ||
	    !qint(c, q, "limit", 1, 1000, 100, &c->limit))
		return;
	snprintf(after_s, sizeof(after_s), "%lld", (long long)after);
	snprintf(limit_s, sizeof(limit_s), "%lld", (long long)c->limit);
	{
		struct pgpool_param p[3] = {{c->job, strlen(c->job), false},
					    {after_s, strlen(after_s), false},
					    {limit_s, strlen(limit_s), false}};

		c->on_ok = logs_ok;
		call_exec(c, c->route == R_JOB_LOGS ? SQL_JOB_LOGS : SQL_JOB_ERRORS, 3, p, NULL, 0,
			  NULL);
	}
}

static void records(struct call *c, struct evkeyvalq *q)
{
	static const char *const keys[] = {"collection", "after", "limit", NULL};
	const char *coll = qget(q, "collection"), *after = qget(q, "after");
	char limit_s[32];

	if (!only_keys(c, q, keys, NULL) || !qint(c, q, "limit", 1, 1000, 100, &c->limit))
		return;
	snprintf(limit_s, sizeof(limit_s), "%lld", (long long)c->limit + 1);
	{
		struct pgpool_param p[3] = {{coll, coll ? strlen(coll) : 0, false},
					    {after, after ? strlen(after) : 0, false},
					    {limit_s, strlen(limit_s), false}};

		c->on_ok = records_ok;
		call_exec(c, SQL_RECORDS, 3, p, NULL, 0, NULL);
	}
}

static void stats(struct call *c, struct evkeyvalq *q)
{
	static const char *const keys[] = {"hours", NULL};
	int64_t hours;
	char hours_s[32];
	struct pgpool_param p = {hours_s, 0, false};

	if (!only_keys(c, q, keys, NULL) || !qint(c, q, "hours", 1, 8760, 24, &hours))
		return;
	snprintf(hours_s, sizeof(hours_s), "%lld", (long long)hours);
	p.len = strlen(hours_s);
	c->on_ok = single_json_ok;
	call_exec(c, SQL_STATS, 1, &p, NULL, 0, NULL);
}

static void upload_begin(struct call *c, struct evkeyvalq *q)
{
	static const char *const keys[] = {"file_name", NULL};
	const char *name = qget(q, "file_name");
	struct pgpool_param p = {name, name ? strlen(name) : 0, false};

	if (!only_keys(c, q, keys, NULL))
		return;
	c->on_ok = upload_begin_ok;
	call_exec(c, SQL_UPLOAD_BEGIN, 1, &p, NULL, 0, NULL);
}

static void upload_chunk(struct call *c, const char *seq_s, struct evkeyvalq *q)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	size_t n = evbuffer_get_length(in);
	struct pgpool_param p[2] = {{c->job, strlen(c->job), false}, {seq_s, strlen(seq_s), false}};
	char *data;

	if (!only_keys(c, q, NULL, NULL))
		return;
	if (http_parse_int(seq_s, 0, INT32_MAX, &c->wait_timeout) != 0) {
		call_reply_error(c, 400, "bad_request", "seq must be an integer >= 0");
		return;
	}
	if (n > MAX_CHUNK) {
		call_reply_error(c, 413, "too_large", "a chunk is at most 8 MiB");
		return;
	}
	if (n > BIG_UPLOAD) {
		if (c->gw->uploads >= c->gw->opts.max_uploads) {
			call_reply_error(c, 503, "unavailable", "too many uploads in progress");
			return;
		}
		c->is_upload = true;
		c->gw->uploads++;
	}
	data = malloc(n > 0 ? n : 1);
	if (data == NULL || (n > 0 && evbuffer_remove(in, data, n) != (int)n)) {
		free(data);
		call_reply_error(c, 503, "unavailable", "out of memory");
		return;
	}
	c->limit = (int64_t)n;
	c->on_ok = chunk_ok;
	call_exec(c, SQL_UPLOAD_CHUNK, 2, p, data, n, NULL);
}

static void open_stream(struct call *c, struct evkeyvalq *q, bool one_job)
{
	static const char *const keys[] = {"logs_for", NULL};
	const char *logs_for = qget(q, "logs_for");
	const char *lei = evhttp_find_header(evhttp_request_get_input_headers(c->req),
					     "Last-Event-ID");
	int64_t last = -1;
	struct gateway *gw = c->gw;
	struct evhttp_request *req = c->req;
	char user[40], job[40];

	if (!only_keys(c, q, one_job ? NULL : keys, NULL))
		return;
	if (logs_for != NULL && !http_is_uuid(logs_for)) {
		call_reply_error(c, 400, "bad_request", "logs_for must be a job UUID");
		return;
	}
	if (lei != NULL && lei[0] != '\0' && http_parse_int(lei, 0, INT64_MAX, &last) != 0) {
		call_reply_error(c, 400, "bad_request", "Last-Event-ID must be an event id");
		return;
	}
	snprintf(user, sizeof(user), "%s", c->user);
	snprintf(job, sizeof(job), "%s", c->job);
	call_release(c); /* the hub answers req from now on */
	hub_open_stream(gw->hub, req, user, one_job ? job : NULL, logs_for, last);
}

/* ==== Dispatch ==== */

bool routes_is_sse(char **segs, int nsegs)
{
	return (nsegs == 1 && strcmp(segs[0], "events") == 0) ||
	       (nsegs == 3 && strcmp(segs[0], "jobs") == 0 && strcmp(segs[2], "events") == 0);
}

static bool method_ok(struct call *c, enum evhttp_cmd_type m, int allowed, const char *allow)
{
	if (m == EVHTTP_REQ_HEAD)
		m = EVHTTP_REQ_GET;
	if ((int)m & allowed)
		return true;
	evhttp_add_header(evhttp_request_get_output_headers(c->req), "Allow", allow);
	call_reply_error(c, 405, "method_not_allowed", "method not allowed on this route");
	return false;
}

void routes_dispatch(struct call *c, enum evhttp_cmd_type m, char **segs, int n,
		     struct evkeyvalq *q)
{
	const int GET = EVHTTP_REQ_GET, POST = EVHTTP_REQ_POST, DEL = EVHTTP_REQ_DELETE,
		  PUT = EVHTTP_REQ_PUT;
	bool sse = routes_is_sse(segs, n);
	const char *id = NULL;

	if (m == EVHTTP_REQ_HEAD)
		m = EVHTTP_REQ_GET;
	/* Route shape and method first. */
	if (n == 1 && strcmp(segs[0], "jobs") == 0) {
		if (!method_ok(c, m, GET | POST | DEL, "GET, POST, DELETE"))
			return;
		c->route = m == EVHTTP_REQ_GET ? R_JOBS_LIST
			   : m == EVHTTP_REQ_POST ? R_JOBS_SUBMIT
						  : R_JOBS_CLEAR;
	} else if (n == 2 && strcmp(segs[0], "jobs") == 0) {
		if (!method_ok(c, m, GET | DEL, "GET, DELETE"))
			return;
		c->route = m == EVHTTP_REQ_GET ? R_JOB_GET : R_JOB_DELETE;
		id = segs[1];
	} else if (n == 3 && strcmp(segs[0], "jobs") == 0 &&
		   (strcmp(segs[2], "cancel") == 0 || strcmp(segs[2], "pause") == 0 ||
		    strcmp(segs[2], "resume") == 0 || strcmp(segs[2], "retry") == 0)) {
		if (!method_ok(c, m, POST, "POST"))
			return;
		c->route = R_JOB_ACTION;
		id = segs[1];
	} else if (n == 3 && strcmp(segs[0], "jobs") == 0 &&
		   (strcmp(segs[2], "logs") == 0 || strcmp(segs[2], "errors") == 0 ||
		    strcmp(segs[2], "events") == 0)) {
		if (!method_ok(c, m, GET, "GET"))
			return;
		c->route = segs[2][0] == 'l' ? R_JOB_LOGS : segs[2][0] == 'e' && segs[2][1] == 'r'
								    ? R_JOB_ERRORS
								    : R_JOB_EVENTS;
		id = segs[1];
	} else if (n == 1 && strcmp(segs[0], "events") == 0) {
		if (!method_ok(c, m, GET, "GET"))
			return;
		c->route = R_EVENTS;
	} else if (n == 1 && strcmp(segs[0], "uploads") == 0) {
		if (!method_ok(c, m, POST, "POST"))
			return;
		c->route = R_UPLOAD_BEGIN;
	} else if (n == 4 && strcmp(segs[0], "uploads") == 0 && strcmp(segs[2], "chunks") == 0) {
		if (!method_ok(c, m, PUT, "PUT"))
			return;
		c->route = R_UPLOAD_CHUNK;
		id = segs[1];
	} else if (n == 1 && (strcmp(segs[0], "records") == 0 || strcmp(segs[0], "stats") == 0)) {
		if (!method_ok(c, m, GET, "GET"))
			return;
		c->route = segs[0][0] == 'r' ? R_RECORDS : R_STATS;
	} else {
		call_reply_error(c, 404, "not_found", "no such route");
		return;
	}
	if (!authenticate(c, q, sse))
		return;
	if (id != NULL) {
		if (!http_is_uuid(id)) {
			call_reply_error(c, 400, "bad_request", "the id must be a UUID");
			return;
		}
		snprintf(c->job, sizeof(c->job), "%s", id);
	}
	switch (c->route) {
	case R_JOBS_LIST:
		list_jobs(c, q);
		break;
	case R_JOBS_SUBMIT:
		submit_job(c, q);
		break;
	case R_JOBS_CLEAR:
		clear_jobs(c, q);
		break;
	case R_JOB_GET:
		if (!only_keys(c, q, NULL, NULL))
			return;
		c->on_ok = job_ok;
		c->limit = 200;
		{
			struct pgpool_param p = {c->job, strlen(c->job), false};

			call_exec(c, SQL_JOB_GET, 1, &p, NULL, 0, NULL);
		}
		break;
	case R_JOB_DELETE:
		if (!only_keys(c, q, NULL, NULL))
			return;
		c->on_ok = no_content_ok;
		{
			struct pgpool_param p = {c->job, strlen(c->job), false};

			call_exec(c, SQL_JOB_DELETE, 1, &p, NULL, 0, NULL);
		}
		break;
	case R_JOB_ACTION:
		job_action(c, segs[2], q);
		break;
	case R_JOB_LOGS:
	case R_JOB_ERRORS:
		job_pages(c, q);
		break;
	case R_JOB_EVENTS:
		open_stream(c, q, true);
		break;
	case R_EVENTS:
		open_stream(c, q, false);
		break;
	case R_UPLOAD_BEGIN:
		upload_begin(c, q);
		break;
	case R_UPLOAD_CHUNK:
		upload_chunk(c, segs[3], q);
		break;
	case R_RECORDS:
		records(c, q);
		break;
	case R_STATS:
		stats(c, q);
		break;
	default:
		call_reply_error(c, 404, "not_found", "no such route");
		break;
	}
}
