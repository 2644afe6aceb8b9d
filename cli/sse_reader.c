/* sse_reader.c -- text/event-stream parsing (see sse_reader.h).
 *
 * Follows the HTML standard's "event stream interpretation": lines end with
 * CRLF, LF or CR; "field: value" (one optional space after the colon); a line
 * starting with ':' is a comment; a blank line dispatches the event, and an
 * event without data lines is not dispatched.
 */
#include "sse_reader.h"

#include <stdlib.h>
#include <string.h>

void sse_reader_init(struct sse_reader *r, size_t max_event)
{
	memset(r, 0, sizeof(*r));
	r->retry_ms = -1;
	r->max_event = max_event;
}

void sse_reader_free(struct sse_reader *r)
{
	free(r->line);
	free(r->data);
	r->line = r->data = NULL;
	r->line_len = r->line_cap = r->data_len = r->data_cap = 0;
}

static int reserve(char **buf, size_t *cap, size_t need)
{
	size_t n = *cap > 0 ? *cap : 256;
	char *p;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	p = realloc(*buf, n);
	if (p == NULL)
		return -1;
	*buf = p;
	*cap = n;
	return 0;
}

static void dispatch(struct sse_reader *r, sse_event_cb cb, void *arg)
{
	if (r->data != NULL && r->data_len > 0) {
		r->data[r->data_len - 1] = '\0'; /* the last data line's '\n' */
		cb(r->event[0] != '\0' ? r->event : "message", r->data, r->last_id, arg);
	}
	r->data_len = 0;
	r->event[0] = '\0';
}

/* One complete line (NUL-terminated, without its end). */
static int process_line(struct sse_reader *r, char *line, size_t len, sse_event_cb cb, void *arg)
{
	char *colon, *value;
	size_t vlen;

	if (len == 0) {
		dispatch(r, cb, arg);
		return 0;
	}
	if (line[0] == ':')
		return 0;
	colon = memchr(line, ':', len);
	if (colon != NULL) {
		*colon = '\0';
		value = colon + 1;
		if (*value == ' ')
			value++;
	} else {
		value = line + len; /* the whole line is the field name, value "" */
	}
	vlen = strlen(value);
	if (strcmp(line, "data") == 0) {
		if (r->data_len + vlen + 1 > r->max_event ||
		    reserve(&r->data, &r->data_cap, r->data_len + vlen + 2) != 0)
			return -1;
		memcpy(r->data + r->data_len, value, vlen);
		r->data_len += vlen;
		r->data[r->data_len++] = '\n';
	} else if (strcmp(line, "event") == 0) {
		size_t n = vlen < sizeof(r->event) - 1 ? vlen : sizeof(r->event) - 1;

		memcpy(r->event, value, n);
		r->event[n] = '\0';
	} else if (strcmp(line, "id") == 0) {
		if (vlen < sizeof(r->last_id)) /* (the standard ignores ids with a NUL) */
			memcpy(r->last_id, value, vlen + 1);
	} else if (strcmp(line, "retry") == 0) {
		char *end;
		long ms = strtol(value, &end, 10);

		if (vlen > 0 && *end == '\0' && value[0] >= '0' && value[0] <= '9')
			r->retry_ms = ms;
	}
	return 0;
}

int sse_reader_feed(struct sse_reader *r, const char *bytes, size_t len, sse_event_cb cb, void *arg)
{
	for (size_t i = 0; i < len; i++) {
		char c = bytes[i];

		if (r->after_cr) {
			r->after_cr = false;
			if (c == '\n')
				continue;
		}
		if (c == '\r' || c == '\n') {
			r->after_cr = c == '\r';
			if (reserve(&r->line, &r->line_cap, r->line_len + 1) != 0)
				return -1;
			r->line[r->line_len] = '\0';
			/* A UTF-8 BOM at the very start of the stream is skipped. */
			if (!r->seen_any && r->line_len >= 3 &&
			    memcmp(r->line, "\xEF\xBB\xBF", 3) == 0) {
				memmove(r->line, r->line + 3, r->line_len - 2);
				r->line_len -= 3;
			}
			r->seen_any = true;
			if (process_line(r, r->line, r->line_len, cb, arg) != 0)
				return -1;
			r->line_len = 0;
			continue;
		}
		if (r->line_len + 1 > r->max_event ||
		    reserve(&r->line, &r->line_cap, r->line_len + 2) != 0)
			return -1;
		r->line[r->line_len++] = c;
	}
	return 0;
}
