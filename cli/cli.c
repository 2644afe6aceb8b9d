/* cli.c -- exit codes, error messages and JSON helpers shared by the commands. */
#include "cli.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "jsonutil.h"

int cli_error(const struct cli *cli, int code, const char *fmt, ...)
{
	va_list ap;

	fputs("importctl: ", cli->err);
	va_start(ap, fmt);
	vfprintf(cli->err, fmt, ap);
	va_end(ap);
	fputc('\n', cli->err);
	fflush(cli->err);
	return code;
}

/* The message of an API error body {"error":{"code","message"}}, or the body
 * itself (cut) when it is not one. */
static void error_message(const struct http_response *res, char *buf, size_t len)
{
	struct json_object *o = res->body != NULL ? json_tokener_parse(res->body) : NULL, *e;
	const char *msg = NULL;

	if (o != NULL && json_object_object_get_ex(o, "error", &e))
		msg = jsonutil_get_string(e, "message");
	if (msg != NULL)
		snprintf(buf, len, "%s", msg);
	else if (res->body != NULL && res->len > 0)
		snprintf(buf, len, "%.*s", (int)(res->len < 200 ? res->len : 200), res->body);
	else
		snprintf(buf, len, "no details");
	/* One line: the body could hold anything. */
	for (char *p = buf; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r' || (unsigned char)*p < 0x20)
			*p = ' ';
	json_object_put(o);
}

int cli_fail_response(const struct cli *cli, const struct http_response *res, const char *what)
{
	char msg[256];

	if (res->status == 0)
		return cli_error(cli, CLI_UNREACHABLE, "%s: cannot reach the gateway at %s: %s",
		                 what, http_client_url(cli->client), res->error);
	error_message(res, msg, sizeof(msg));
	switch (res->status) {
	case 401:
		return cli_error(
		    cli, CLI_AUTH,
		    "%s: the gateway refused the token (401: %s); check IMPORTER_TOKEN "
		    "or --token",
		    what, msg);
	case 403:
		return cli_error(cli, CLI_AUTH, "%s: not allowed (403: %s)", what, msg);
	case 404:
		return cli_error(cli, CLI_NOT_FOUND, "%s: not found (404: %s)", what, msg);
	default:
		if (res->status >= 400 && res->status < 500)
			return cli_error(cli, CLI_REFUSED, "%s: refused by the gateway (%d: %s)",
			                 what, res->status, msg);
		return cli_error(cli, CLI_SERVER, "%s: the gateway failed (%d: %s)", what,
		                 res->status, msg);
	}
}

int cli_exit_for_status(const char *status)
{
	if (status == NULL)
		return CLI_SERVER;
	if (strcmp(status, "completed") == 0)
		return CLI_OK;
	if (strcmp(status, "failed") == 0)
		return CLI_JOB_FAILED;
	if (strcmp(status, "cancelled") == 0)
		return CLI_CANCELLED;
	return CLI_SERVER;
}

bool cli_status_is_terminal(const char *status)
{
	return status != NULL &&
	       (strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0 ||
	        strcmp(status, "cancelled") == 0);
}

struct json_object *cli_parse_body(const struct cli *cli, const struct http_response *res)
{
	struct json_object *o = res->body != NULL ? json_tokener_parse(res->body) : NULL;

	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		cli_error(cli, CLI_SERVER, "the gateway's answer (%d) is not a JSON object: %.120s",
		          res->status, res->body != NULL ? res->body : "");
		return NULL;
	}
	return o;
}

double cli_json_double(struct json_object *o, const char *key, double def)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
	    !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
		return def;
	return json_object_get_double(v);
}

int64_t cli_json_int(struct json_object *o, const char *key, int64_t def)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v))
		return def;
	if (json_object_is_type(v, json_type_int))
		return json_object_get_int64(v);
	if (json_object_is_type(v, json_type_double))
		return (int64_t)json_object_get_double(v);
	return def;
}

const char *cli_json_str(struct json_object *o, const char *key, const char *def)
{
	const char *s = o != NULL ? jsonutil_get_string(o, key) : NULL;

	return s != NULL ? s : def;
}

void cli_print_json(const struct cli *cli, struct json_object *obj)
{
	fprintf(cli->out, "%s\n",
	        json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
	                                                JSON_C_TO_STRING_NOSLASHESCAPE));
}

double cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
