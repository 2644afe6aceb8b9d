/* http_util.c -- evhttp helpers: JSON replies, status mapping, parsing (see http_util.h). */
#include "http_util.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsonutil.h"

void http_reply_text(struct evhttp_request *req, int status, const char *json)
{
	struct evbuffer *buf = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	if (buf != NULL)
		evbuffer_add_printf(buf, "%s\n", json);
	evhttp_send_reply(req, status, NULL, buf);
	if (buf != NULL)
		evbuffer_free(buf);
}

void http_reply_json(struct evhttp_request *req, int status, struct json_object *body)
{
	http_reply_text(req, status,
			json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN |
								     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(body);
}

void http_reply_error(struct evhttp_request *req, int status, const char *code,
		      const char *message)
{
	struct json_object *body = json_object_new_object();
	struct json_object *error = json_object_new_object();

	jsonutil_add(error, "code", json_object_new_string(code));
	jsonutil_add(error, "message", json_object_new_string(message));
	jsonutil_add(body, "error", error);
	http_reply_json(req, status, body);
}

int http_status_for_sqlstate(const char *sqlstate, bool has_identity, const char **code)
{
	static const struct {
		const char *state;
		int status;
		const char *code;
	} map[] = {
		{"P0002", 404, "not_found"},       {"55000", 409, "conflict"},
		{"53400", 429, "limit_exceeded"},  {"22023", 400, "bad_request"},
		{"22P02", 400, "bad_request"},     {"22003", 400, "bad_request"},
		{"22001", 400, "bad_request"},     {"42501", 403, "forbidden"},
	};

	/* The database going away or refusing work for now is not the request's
	 * fault: 503 (with Retry-After), never 500. Class 08 connection
	 * exceptions, 57P01..57P03 shutdown / cannot connect now, 53300 too many
	 * connections, 40001/40P01 serialization failure / deadlock, 57014
	 * statement timeout. */
	if (sqlstate != NULL &&
	    (strncmp(sqlstate, "08", 2) == 0 || strcmp(sqlstate, "57P01") == 0 ||
	     strcmp(sqlstate, "57P02") == 0 || strcmp(sqlstate, "57P03") == 0 ||
	     strcmp(sqlstate, "53300") == 0 || strcmp(sqlstate, "40001") == 0 ||
	     strcmp(sqlstate, "40P01") == 0 || strcmp(sqlstate, "57014") == 0)) {
		*code = "unavailable";
		return 503;
	}
	for (size_t i = 0; sqlstate != NULL && i < sizeof(map) / sizeof(map[0]); i++) {
		if (strcmp(sqlstate, map[i].state) != 0)
			continue;
		if (map[i].status == 403 && !has_identity) {
			*code = "unauthorized";
			return 401;
		}
		*code = map[i].code;
		return map[i].status;
	}
	*code = "internal";
	return 500;
}

bool http_is_uuid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	if (s == NULL || strlen(s) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		if (shape[i] == '-' ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

int http_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	char *end;
	long long v;

	if (s == NULL || s[0] == '\0' || isspace((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int http_parse_bool(const char *s, bool *out)
{
	if (s == NULL)
		return -1;
	if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0)
		*out = true;
	else if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

const char *http_bearer_token(struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");

	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return h;
}

void http_redact_uri(const char *uri, char *out, size_t outlen)
{
	size_t o = 0;

	if (outlen == 0)
		return;
	for (const char *p = uri; *p != '\0' && o + 1 < outlen;) {
		bool at_param = p > uri && (p[-1] == '?' || p[-1] == '&');

		/* Case-insensitive: evhttp_find_header() also takes ACCESS_TOKEN. */
		if (at_param && strncasecmp(p, "access_token=", 13) == 0) {
			const char *mask = "access_token=***";

			for (const char *m = mask; *m != '\0' && o + 1 < outlen; m++)
				out[o++] = *m;
			p += 13;
			while (*p != '\0' && *p != '&')
				p++;
			continue;
		}
		out[o++] = *p++;
	}
	out[o] = '\0';
}

bool http_query_has_nul(const char *qs)
{
	for (const char *p = strchr(qs, '%'); p != NULL; p = strchr(p + 1, '%'))
		if (p[1] == '0' && p[2] == '0')
			return true;
	return false;
}

int http_split_path(const char *path, char *buf, size_t buflen, char **segs, int max)
{
	int n = 0;
	size_t len = strlen(path);
	char *p;

	if (len + 1 > buflen)
		return -1;
	memcpy(buf, path, len + 1);
	p = buf;
	while (*p != '\0') {
		while (*p == '/')
			*p++ = '\0';
		if (*p == '\0')
			break;
		if (n == max)
			return -1;
		segs[n++] = p;
		while (*p != '\0' && *p != '/')
			p++;
	}
	return n;
}
