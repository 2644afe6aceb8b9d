/* commands.c -- the commands that are one request (or a few pages) and a
 * print: jobs, show, logs, errors, cancel/pause/resume/retry, delete, stats.
 *
 * import lives in import.c and following a job in follow.c. Pages are fetched
 * until the end, so `logs` and `errors` print everything; with --json, pages
 * are joined into one object of the API's shape.
 */
#include "commands.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "follow.h"
#include "jsonutil.h"
#include "progress.h"
#include "table.h"

#define PAGE_LOGS 1000

const char *cmd_status_text(const struct cli *cli, const char *status, char *buf, size_t len)
{
	const char *color = NULL;

	if (status == NULL)
		return "?";
	if (!cli->color)
		return status;
	if (strcmp(status, "completed") == 0)
		color = "32";
	else if (strcmp(status, "failed") == 0)
		color = "31";
	else if (strcmp(status, "cancelled") == 0 || strcmp(status, "paused") == 0)
		color = "33";
	else if (strcmp(status, "processing") == 0)
		color = "36";
	if (color == NULL)
		return status;
	snprintf(buf, len, "\033[%sm%s\033[0m", color, status);
	return buf;
}

/* "2026-11-25 08:15:02" from an RFC 3339 timestamp; "-" for none. */
static void short_time(const char *ts, char *buf, size_t len)
{
	if (ts == NULL || strlen(ts) < 19) {
		snprintf(buf, len, "-");
		return;
	}
	snprintf(buf, len, "%.10s %.8s", ts, ts + 11);
}

static void fmt_bytes(int64_t n, char *buf, size_t len)
{
	if (n < 1024)
		snprintf(buf, len, "%" PRId64 " B", n);
	else if (n < 1024 * 1024)
		snprintf(buf, len, "%.1f KiB", (double)n / 1024);
	else if (n < (int64_t)1024 * 1024 * 1024)
		snprintf(buf, len, "%.1f MiB", (double)n / (1024 * 1024));
	else
		snprintf(buf, len, "%.2f GiB", (double)n / (1024.0 * 1024 * 1024));
}

/* "45,000/~100,000" */
static void fmt_records(struct json_object *job, char *buf, size_t len)
{
	char done[32], total[32];
	int64_t t = cli_json_int(job, "total_items", -1);
	struct json_object *est;
	bool estimate = json_object_object_get_ex(job, "total_is_estimate", &est) &&
	                json_object_get_boolean(est);

	progress_fmt_count(cli_json_int(job, "processed_items", 0), done, sizeof(done));
	if (t < 0) {
		snprintf(buf, len, "%s", done);
		return;
	}
	progress_fmt_count(t, total, sizeof(total));
	snprintf(buf, len, "%s/%s%s", done, estimate ? "~" : "", total);
}

/* GET path; on success *out is the parsed object. Returns 0 or an exit code. */
static int get_json(struct cli *cli, const char *path, const char *what, struct json_object **out,
                    struct http_response *raw)
{
	struct http_response res;
	int rc;

	*out = NULL;
	if (http_call(cli->client, EVHTTP_REQ_GET, path, NULL, NULL, NULL, &res) != 0)
		return cli_error(cli, CLI_UNREACHABLE, "%s: %s", what, res.error);
	if (res.status != 200) {
		rc = cli_fail_response(cli, &res, what);
		http_response_free(&res);
		return rc;
	}
	*out = cli_parse_body(cli, &res);
	if (raw != NULL)
		*raw = res;
	else
		http_response_free(&res);
	if (*out == NULL) {
		if (raw != NULL)
			http_response_free(raw);
		return CLI_SERVER;
	}
	return 0;
}

/* ==== jobs ==== */

static int print_jobs(struct cli *cli, struct json_object *jobs)
{
	static const char *const head[] = {"ID",      "STATUS", "KIND", "PROGRESS",
	                                   "RECORDS", "FAILED", "FILE", "CREATED"};
	struct table *t = table_new(8, head);
	size_t n = json_object_array_length(jobs);

	if (t == NULL)
		return cli_error(cli, CLI_SERVER, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct json_object *j = json_object_array_get_idx(jobs, i);
		char pct[16], rec[96], failed[32], created[32];
		const char *cells[8];

		snprintf(pct, sizeof(pct), "%d%%", (int)cli_json_double(j, "progress", 0));
		fmt_records(j, rec, sizeof(rec));
		progress_fmt_count(cli_json_int(j, "failed_items", 0), failed, sizeof(failed));
		short_time(cli_json_str(j, "created_at", NULL), created, sizeof(created));
		cells[0] = cli_json_str(j, "id", "?");
		cells[1] = cli_json_str(j, "status", "?");
		cells[2] = cli_json_str(j, "kind", "?");
		cells[3] = pct;
		cells[4] = rec;
		cells[5] = failed;
		cells[6] = cli_json_str(j, "file_name", "-");
		cells[7] = created;
		if (table_add(t, cells) != 0) {
			table_free(t);
			return cli_error(cli, CLI_SERVER, "out of memory");
		}
	}
	if (n == 0)
		fprintf(cli->out, "no jobs%s%s\n", cli->args->status != NULL ? " with status " : "",
		        cli->args->status != NULL ? cli->args->status : "");
	else
		table_print(t, cli->out, cli->color);
	table_free(t);
	return CLI_OK;
}

int cmd_jobs(struct cli *cli)
{
	int64_t want = cli->args->limit > 0 ? cli->args->limit : 20;
	struct json_object *all = json_object_new_array(), *page = NULL, *next = NULL;
	char cursor[128] = "";
	int rc = CLI_OK;

	if (all == NULL)
		return cli_error(cli, CLI_SERVER, "out of memory");
	while ((int64_t)json_object_array_length(all) < want) {
		int64_t left = want - (int64_t)json_object_array_length(all);
		char path[512];
		char *status = cli->args->status != NULL ? http_encode(cli->args->status) : NULL;
		char *cur = cursor[0] != '\0' ? http_encode(cursor) : NULL;
		struct json_object *jobs;

		snprintf(path, sizeof(path), "/api/jobs?limit=%" PRId64 "%s%s%s%s",
		         left > 100 ? (int64_t)100 : left, status != NULL ? "&status=" : "",
		         status != NULL ? status : "", cur != NULL ? "&cursor=" : "",
		         cur != NULL ? cur : "");
		free(status);
		free(cur);
		rc = get_json(cli, path, "jobs", &page, NULL);
		if (rc != 0)
			break;
		if (!json_object_object_get_ex(page, "jobs", &jobs) ||
		    !json_object_is_type(jobs, json_type_array)) {
			rc = cli_error(cli, CLI_SERVER, "jobs: the answer has no \"jobs\" array");
			break;
		}
		for (size_t i = 0; i < json_object_array_length(jobs); i++)
			jsonutil_append(all, json_object_get(json_object_array_get_idx(jobs, i)));
		json_object_put(next);
		next = NULL;
		{
			struct json_object *nv = NULL;

			if (json_object_object_get_ex(page, "next", &nv))
				next = json_object_get(nv);
		}
		if (jsonutil_get_string(page, "next") == NULL)
			break;
		snprintf(cursor, sizeof(cursor), "%s", jsonutil_get_string(page, "next"));
		json_object_put(page);
		page = NULL;
	}
	json_object_put(page);
	if (rc == CLI_OK) {
		if (cli->args->json) {
			struct json_object *o = json_object_new_object();

			jsonutil_add(o, "jobs", json_object_get(all));
			jsonutil_add(o, "next", json_object_get(next));
			cli_print_json(cli, o);
			json_object_put(o);
		} else {
			rc = print_jobs(cli, all);
		}
	}
	json_object_put(next);
	json_object_put(all);
	return rc;
}

/* ==== show ==== */

static void line(const struct cli *cli, const char *label, const char *value)
{
	fprintf(cli->out, "%-12s %s\n", label, value);
}

/* A counts object (the job's or one collection's) as text. */
static void counts_text(struct json_object *counts, char *buf, size_t len)
{
	progress_counts_text(
	    cli_json_int(counts, "inserted", 0), cli_json_int(counts, "updated", 0),
	    cli_json_int(counts, "unchanged", 0), cli_json_int(counts, "failed", 0), buf, len);
}

static void print_job(struct cli *cli, struct json_object *j)
{
	char buf[512], a[96], b[96], st[64];
	struct json_object *v, *counts, *colls;
	const char *s;
	int64_t eta = cli_json_int(j, "eta_seconds", -1);

	line(cli, "id:", cli_json_str(j, "id", "?"));
	snprintf(buf, sizeof(buf), "%s (phase %s)",
	         cmd_status_text(cli, cli_json_str(j, "status", "?"), st, sizeof(st)),
	         cli_json_str(j, "phase", "?"));
	line(cli, "status:", buf);
	snprintf(buf, sizeof(buf), "%s, mode %s%s", cli_json_str(j, "kind", "?"),
	         cli_json_str(j, "import_mode", "?"),
	         json_object_object_get_ex(j, "dry_run", &v) && json_object_get_boolean(v)
	             ? ", dry run"
	             : "");
	line(cli, "kind:", buf);
	fmt_bytes(cli_json_int(j, "file_size", 0), a, sizeof(a));
	snprintf(buf, sizeof(buf), "%s (%s)", cli_json_str(j, "file_name", "-"), a);
	line(cli, "file:", buf);
	line(cli, "collection:", cli_json_str(j, "collection", "-"));
	fmt_records(j, a, sizeof(a));
	progress_fmt_count(cli_json_int(j, "failed_items", 0), b, sizeof(b));
	snprintf(buf, sizeof(buf), "%d%%, %s records, %s failed",
	         (int)cli_json_double(j, "progress", 0), a, b);
	line(cli, "progress:", buf);
	if (eta >= 0 && !cli_status_is_terminal(cli_json_str(j, "status", NULL))) {
		progress_fmt_duration(eta, a, sizeof(a));
		line(cli, "eta:", a);
	}
	if (json_object_object_get_ex(j, "counts", &counts) &&
	    json_object_is_type(counts, json_type_object)) {
		counts_text(counts, buf, sizeof(buf));
		line(cli, "counts:", buf);
		if (json_object_object_get_ex(counts, "collections", &colls) &&
		    json_object_is_type(colls, json_type_object) &&
		    json_object_object_length(colls) > 1) {
			json_object_object_foreach(colls, name, cc)
			{
				int n = snprintf(buf, sizeof(buf), "  %s: ", name);

				if (n > 0 && (size_t)n < sizeof(buf))
					counts_text(cc, buf + n, sizeof(buf) - (size_t)n);
				line(cli, "", buf);
			}
		}
	}
	snprintf(buf, sizeof(buf), "%" PRId64 " of %" PRId64, cli_json_int(j, "attempts", 0),
	         cli_json_int(j, "max_attempts", 0));
	line(cli, "attempts:", buf);
	if ((s = cli_json_str(j, "error_message", NULL)) != NULL)
		line(cli, "error:", s);
	if (json_object_object_get_ex(j, "cancel_requested", &v) && json_object_get_boolean(v))
		line(cli, "requested:", "cancel");
	if (json_object_object_get_ex(j, "pause_requested", &v) && json_object_get_boolean(v))
		line(cli, "requested:", "pause");
	short_time(cli_json_str(j, "created_at", NULL), a, sizeof(a));
	line(cli, "created:", a);
	short_time(cli_json_str(j, "started_at", NULL), a, sizeof(a));
	line(cli, "started:", a);
	short_time(cli_json_str(j, "completed_at", NULL), a, sizeof(a));
	line(cli, "ended:", a);
}

int cmd_show(struct cli *cli)
{
	struct json_object *job;
	struct http_response raw;
	char path[128], what[64];
	int rc;

	snprintf(path, sizeof(path), "/api/jobs/%s", cli->args->id);
	snprintf(what, sizeof(what), "job %s", cli->args->id);
	rc = get_json(cli, path, what, &job, &raw);
	if (rc != 0)
		return rc;
	if (cli->args->json)
		fprintf(cli->out, "%s\n", raw.body);
	else
		print_job(cli, job);
	http_response_free(&raw);
	json_object_put(job);
	return CLI_OK;
}

/* ==== logs and errors ==== */

void cmd_print_log(const struct cli *cli, struct json_object *log)
{
	struct json_object *details;
	const char *msg = cli_json_str(log, "message", NULL);
	char ts[32];

	if (cli->args->json) {
		cli_print_json(cli, log);
		fflush(cli->out);
		return;
	}
	short_time(cli_json_str(log, "ts", NULL), ts, sizeof(ts));
	fprintf(cli->out, "%s  %-5s  %s", ts, cli_json_str(log, "level", "?"),
	        cli_json_str(log, "event", "?"));
	if (msg != NULL && msg[0] != '\0')
		fprintf(cli->out, "  %s", msg);
	if (json_object_object_get_ex(log, "details", &details) && details != NULL &&
	    !(json_object_is_type(details, json_type_object) &&
	      json_object_object_length(details) == 0))
		fprintf(cli->out, "  %s",
		        json_object_to_json_string_ext(
		            details, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	fputc('\n', cli->out);
	fflush(cli->out);
}

/* Fetches every page of /api/jobs/ID/<what> after `after` into *all.
 * Returns 0 or an exit code; *last is the last item's id (logs). */
static int fetch_pages(struct cli *cli, const char *what, int64_t after, struct json_object *all,
                       int64_t *last)
{
	char path[160], label[80];
	int rc = 0;

	snprintf(label, sizeof(label), "%s of job %s", what, cli->args->id);
	for (;;) {
		struct json_object *page, *items;
		size_t n;

		snprintf(path, sizeof(path), "/api/jobs/%s/%s?limit=%d&after=%" PRId64,
		         cli->args->id, what, PAGE_LOGS, after);
		rc = get_json(cli, path, label, &page, NULL);
		if (rc != 0)
			return rc;
		if (!json_object_object_get_ex(page, what, &items) ||
		    !json_object_is_type(items, json_type_array)) {
			json_object_put(page);
			return cli_error(cli, CLI_SERVER, "%s: no \"%s\" array in the answer",
			                 label, what);
		}
		n = json_object_array_length(items);
		for (size_t i = 0; i < n; i++)
			jsonutil_append(all, json_object_get(json_object_array_get_idx(items, i)));
		if (n > 0 && last != NULL)
			*last = cli_json_int(json_object_array_get_idx(items, n - 1), "id", *last);
		after = cli_json_int(page, "next", -1);
		json_object_put(page);
		if (n < PAGE_LOGS || after < 0)
			return 0;
	}
}

int cmd_logs(struct cli *cli)
{
	struct json_object *all = json_object_new_array();
	int64_t last = 0;
	int rc;

	if (all == NULL)
		return cli_error(cli, CLI_SERVER, "out of memory");
	rc = fetch_pages(cli, "logs", 0, all, &last);
	if (rc == 0 && cli->args->json && !cli->args->follow) {
		struct json_object *o = json_object_new_object();

		jsonutil_add(o, "logs", json_object_get(all));
		jsonutil_add(o, "next", NULL);
		cli_print_json(cli, o);
		json_object_put(o);
	} else if (rc == 0) {
		for (size_t i = 0; i < json_object_array_length(all); i++)
			cmd_print_log(cli, json_object_array_get_idx(all, i));
	}
	json_object_put(all);
	if (rc != 0 || !cli->args->follow)
		return rc;
	return follow_job(cli, cli->args->id, FOLLOW_LOGS, last);
}

int cmd_errors(struct cli *cli)
{
	static const char *const head[] = {"RECORD", "KEY", "COLLECTION", "MESSAGE"};
	struct json_object *all = json_object_new_array();
	struct table *t = NULL;
	int rc;

	if (all == NULL)
		return cli_error(cli, CLI_SERVER, "out of memory");
	rc = fetch_pages(cli, "errors", 0, all, NULL);
	if (rc == 0 && cli->args->json) {
		struct json_object *o = json_object_new_object();

		jsonutil_add(o, "errors", json_object_get(all));
		jsonutil_add(o, "next", NULL);
		cli_print_json(cli, o);
		json_object_put(o);
	} else if (rc == 0 && json_object_array_length(all) == 0) {
		fprintf(cli->out, "no record errors\n");
	} else if (rc == 0 && (t = table_new(4, head)) != NULL) {
		for (size_t i = 0; i < json_object_array_length(all); i++) {
			struct json_object *e = json_object_array_get_idx(all, i);
			char idx[32];
			const char *cells[4];

			snprintf(idx, sizeof(idx), "%" PRId64, cli_json_int(e, "record_index", 0));
			cells[0] = idx;
			cells[1] = cli_json_str(e, "record_key", "-");
			cells[2] = cli_json_str(e, "collection", "-");
			cells[3] = cli_json_str(e, "message", "-");
			if (table_add(t, cells) != 0) {
				rc = cli_error(cli, CLI_SERVER, "out of memory");
				break;
			}
		}
		if (rc == 0)
			table_print(t, cli->out, cli->color);
	} else if (rc == 0) {
		rc = cli_error(cli, CLI_SERVER, "out of memory");
	}
	table_free(t);
	json_object_put(all);
	return rc;
}

/* ==== cancel, pause, resume, retry, delete ==== */

int cmd_action(struct cli *cli)
{
	const char *action = args_command_name(cli->args->cmd);
	struct http_response res;
	char path[160], what[96], st[64];
	struct json_object *job;
	int rc;

	snprintf(path, sizeof(path), "/api/jobs/%s/%s%s", cli->args->id, action,
	         cli->args->restart ? "?restart=true" : "");
	snprintf(what, sizeof(what), "%s %s", action, cli->args->id);
	if (http_call(cli->client, EVHTTP_REQ_POST, path, NULL, NULL, NULL, &res) != 0)
		return cli_error(cli, CLI_UNREACHABLE, "%s: %s", what, res.error);
	if (res.status != 200 && res.status != 202) {
		rc = cli_fail_response(cli, &res, what);
		http_response_free(&res);
		return rc;
	}
	if (cli->args->json) {
		fprintf(cli->out, "%s\n", res.body);
		http_response_free(&res);
		return CLI_OK;
	}
	job = cli_parse_body(cli, &res);
	http_response_free(&res);
	if (job == NULL)
		return CLI_SERVER;
	fprintf(cli->out, "%s: %s%s\n", cli_json_str(job, "id", cli->args->id),
	        cmd_status_text(cli, cli_json_str(job, "status", "?"), st, sizeof(st)),
	        cli->args->cmd == CMD_CANCEL &&
	                json_object_get_boolean(json_object_object_get(job, "cancel_requested")) &&
	                !cli_status_is_terminal(cli_json_str(job, "status", NULL))
	            ? " (cancel requested; the worker stops within about a second)"
	        : cli->args->cmd == CMD_PAUSE &&
	                json_object_get_boolean(json_object_object_get(job, "pause_requested")) &&
	                strcmp(cli_json_str(job, "status", ""), "paused") != 0
	            ? " (pause requested; the worker stops at the next batch)"
	            : "");
	json_object_put(job);
	return CLI_OK;
}

int cmd_delete(struct cli *cli)
{
	struct http_response res;
	char path[160], what[96];
	int rc;

	snprintf(path, sizeof(path), "/api/jobs/%s", cli->args->id);
	snprintf(what, sizeof(what), "delete %s", cli->args->id);
	if (http_call(cli->client, EVHTTP_REQ_DELETE, path, NULL, NULL, NULL, &res) != 0)
		return cli_error(cli, CLI_UNREACHABLE, "%s: %s", what, res.error);
	if (res.status != 204 && res.status != 200) {
		rc = cli_fail_response(cli, &res, what);
		http_response_free(&res);
		return rc;
	}
	http_response_free(&res);
	if (cli->args->json)
		fprintf(cli->out, "{\"id\":\"%s\",\"deleted\":true}\n", cli->args->id);
	else
		fprintf(cli->out, "%s: deleted\n", cli->args->id);
	return CLI_OK;
}

/* ==== stats ==== */

int cmd_stats(struct cli *cli)
{
	static const char *const head[] = {"KIND", "STATUS", "JOBS"};
	struct json_object *o, *by_kind;
	struct http_response raw;
	struct table *t;
	char path[64];
	double rate;
	int rc;

	snprintf(path, sizeof(path), "/api/stats?hours=%" PRId64,
	         cli->args->hours > 0 ? cli->args->hours : 24);
	rc = get_json(cli, path, "stats", &o, &raw);
	if (rc != 0)
		return rc;
	if (cli->args->json) {
		fprintf(cli->out, "%s\n", raw.body);
		goto out;
	}
	fprintf(cli->out, "last %" PRId64 " hours\n", cli_json_int(o, "hours", 24));
	if (json_object_object_get_ex(o, "by_kind", &by_kind) &&
	    json_object_is_type(by_kind, json_type_array) &&
	    json_object_array_length(by_kind) > 0 && (t = table_new(3, head)) != NULL) {
		for (size_t i = 0; i < json_object_array_length(by_kind); i++) {
			struct json_object *r = json_object_array_get_idx(by_kind, i);
			char count[32];
			const char *cells[3];

			progress_fmt_count(cli_json_int(r, "count", 0), count, sizeof(count));
			cells[0] = cli_json_str(r, "kind", "?");
			cells[1] = cli_json_str(r, "status", "?");
			cells[2] = count;
			(void)table_add(t, cells);
		}
		table_print(t, cli->out, cli->color);
		table_free(t);
	} else {
		fprintf(cli->out, "no jobs\n");
	}
	rate = cli_json_double(o, "success_rate", -1);
	if (rate >= 0)
		fprintf(cli->out, "success rate: %.1f%%\n", rate * 100);
	else
		fprintf(cli->out, "success rate: - (no finished jobs)\n");
out:
	http_response_free(&raw);
	json_object_put(o);
	return CLI_OK;
}
