/* sse.h -- Server-Sent Events framing.
 *
 * Formats one event (id:, event:, data: lines, blank line) into an evbuffer.
 * Data from json_object_to_json_string_ext(JSON_C_TO_STRING_PLAIN) or from
 * PostgreSQL's json has no raw newline, but any CR/LF is still split into
 * several data: lines, so a payload can never inject an event.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_SSE_H
#define IMPORTER_SSE_H

#include <event2/buffer.h>
#include <stdint.h>

/* Appends an event to buf: "id: <id>" when id >= 0, "event: <event>", data
 * lines, then an empty line. Returns 0 or -1. */
int sse_format(struct evbuffer *buf, const char *event, int64_t id, const char *data)
	__attribute__((warn_unused_result));

/* Appends "retry: <ms>\n\n". Returns 0 or -1. */
int sse_retry(struct evbuffer *buf, int ms) __attribute__((warn_unused_result));

/* Appends ": ping\n\n". Returns 0 or -1. */
int sse_ping(struct evbuffer *buf) __attribute__((warn_unused_result));

#endif
