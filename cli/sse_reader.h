/* sse_reader.h -- an incremental text/event-stream parser (the WHATWG rules).
 *
 * Bytes go in as they arrive, in pieces of any size; each complete event comes
 * out through a callback with its type, data and id. Pure: no I/O. Unless
 * stated otherwise, pointer arguments are borrowed for the duration of the call.
 */
#ifndef IMPORTCTL_SSE_READER_H
#define IMPORTCTL_SSE_READER_H

#include <stdbool.h>
#include <stddef.h>

/* One event. event is "message" when the stream named none; id is the last
 * id seen on the stream so far (the Last-Event-ID to reconnect with), "" if
 * none. All strings borrowed for the duration of the callback. */
typedef void (*sse_event_cb)(const char *event, const char *data, const char *id, void *arg);

struct sse_reader {
	char *line; /* owned; the line being read */
	size_t line_len, line_cap;
	char *data; /* owned; data lines of the event being read, '\n'-joined */
	size_t data_len, data_cap;
	char event[64];   /* the event being read's type ("" = message) */
	char last_id[64]; /* the stream's last event id */
	long retry_ms;    /* the last retry: hint, -1 if none */
	bool after_cr;    /* the last byte was '\r': a following '\n' is part of it */
	bool seen_any;    /* the BOM check is done */
	size_t max_event; /* a line or an event's data over this fails the feed */
};

/* max_event: the largest event accepted (bytes of data). */
void sse_reader_init(struct sse_reader *r, size_t max_event);

/* Frees what the reader holds; it can be initialised again. */
void sse_reader_free(struct sse_reader *r);

/* Parses len bytes, calling cb for each event they complete. Returns 0, or -1
 * when a line or event is over max_event (the stream is then unusable). */
int sse_reader_feed(struct sse_reader *r, const char *bytes, size_t len, sse_event_cb cb,
                    void *arg);

#endif
