/* sse.h -- Server-Sent Events framing and sending.
 *
 * Formats one event (id:, event:, data: lines, blank line) into an evbuffer,
 * or once into a shared, reference-counted frame that every stream carrying
 * the event sends as is. Data from json_object_to_json_string_ext
 * (JSON_C_TO_STRING_PLAIN) or from PostgreSQL's json has no raw newline, but
 * any CR/LF is still split into several data: lines, so a payload can never
 * inject an event.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_SSE_H
#define IMPORTER_SSE_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Appends an event to buf: "id: <id>" when id >= 0, "event: <event>", data
 * lines, then an empty line. Returns 0 or -1. */
int sse_format(struct evbuffer *buf, const char *event, int64_t id, const char *data)
	__attribute__((warn_unused_result));

/* Appends "retry: <ms>\n\n". Returns 0 or -1. */
int sse_retry(struct evbuffer *buf, int ms) __attribute__((warn_unused_result));

/* Appends ": ping\n\n". Returns 0 or -1. */
int sse_ping(struct evbuffer *buf) __attribute__((warn_unused_result));

/* One event's bytes, formatted once, with its HTTP/1.1 chunk framing around
 * them, shared by every stream that sends it. Immutable once made. */
struct sse_frame;

/* The frame of the event sse_format() would append.
 * Returns: new frame with one reference (sse_frame_unref()); NULL when out of memory. */
struct sse_frame *sse_frame_new(const char *event, int64_t id, const char *data);

/* Frames of "retry: <ms>\n\n" and ": ping\n\n", as sse_retry() and sse_ping().
 * Returns: new frame with one reference; NULL when out of memory. */
struct sse_frame *sse_frame_retry(int ms);
struct sse_frame *sse_frame_ping(void);

/* Takes one more reference. Returns f. */
struct sse_frame *sse_frame_ref(struct sse_frame *f);

/* Drops one reference; the last one frees f. NULL-safe. */
void sse_frame_unref(struct sse_frame *f);

/* The id the frame was made with (-1 for none). */
int64_t sse_frame_id(const struct sse_frame *f);

/* The bytes to send: the event alone, or as one HTTP/1.1 chunk ("<hex>\r\n",
 * the event, "\r\n"). Borrowed from f; *len gets their length. */
const char *sse_frame_bytes(const struct sse_frame *f, bool chunked, size_t *len);

/* Sends f on a streaming reply whose connection is bev (chunked: the reply
 * uses chunked transfer encoding). When nothing is queued on bev, the bytes go
 * straight to the socket (no copy, no write event); whatever the socket does
 * not take at once, or everything when output is already queued, is appended
 * to bev's output by reference (f keeps a reference until sent), where the
 * bufferevent writes it (and reports a dead connection) as usual.
 * Returns 0, or -1 when out of memory (nothing was sent or queued). */
int sse_send(struct bufferevent *bev, struct sse_frame *f, bool chunked)
    __attribute__((warn_unused_result));

#endif
