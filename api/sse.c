/* sse.c -- Server-Sent Events framing and sending (see sse.h).
 *
 * One formatter writes an event's bytes (or only measures them, out == NULL),
 * so evbuffer appends and shared frames can never differ. A frame keeps room
 * for the longest chunk header in front of the event, so the chunked form is
 * one contiguous run of bytes: one send(), or one evbuffer reference.
 */
#include "sse.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define CHUNK_HEAD_MAX 18 /* 16 hex digits + CRLF */

struct sse_frame {
	int refs;
	int64_t id;       /* -1: none */
	size_t head_len;  /* the chunk header just before the event */
	size_t event_len; /* the event itself, at bytes + CHUNK_HEAD_MAX */
	char bytes[];     /* [padding][chunk header][event]["\r\n"] */
};

static size_t put(char *out, size_t at, const char *s, size_t n)
{
	if (out != NULL)
		memcpy(out + at, s, n);
	return at + n;
}

/* Writes the event to out (when not NULL); returns its length either way. */
static size_t format_event(char *out, const char *event, const char *idline, size_t idlen,
                           const char *data)
{
	size_t at = put(out, 0, idline, idlen);
	const char *p = data;

	at = put(out, at, "event: ", 7);
	at = put(out, at, event, strlen(event));
	at = put(out, at, "\n", 1);
	for (;;) {
		size_t n = strcspn(p, "\r\n");

		at = put(out, at, "data: ", 6);
		at = put(out, at, p, n);
		at = put(out, at, "\n", 1);
		p += n;
		if (*p == '\0')
			break;
		if (p[0] == '\r' && p[1] == '\n')
			p++;
		p++;
	}
	return put(out, at, "\n", 1);
}

static size_t id_line(char *buf, size_t size, int64_t id)
{
	return id >= 0 ? (size_t)snprintf(buf, size, "id: %" PRId64 "\n", id) : 0;
}

int sse_format(struct evbuffer *buf, const char *event, int64_t id, const char *data)
{
	char idline[32];
	size_t idlen = id_line(idline, sizeof(idline), id);
	size_t len = format_event(NULL, event, idline, idlen, data);
	struct evbuffer_iovec v;

	if (evbuffer_reserve_space(buf, (ev_ssize_t)len, &v, 1) != 1)
		return -1;
	format_event(v.iov_base, event, idline, idlen, data);
	v.iov_len = len;
	return evbuffer_commit_space(buf, &v, 1);
}

int sse_retry(struct evbuffer *buf, int ms)
{
	return evbuffer_add_printf(buf, "retry: %d\n\n", ms) < 0 ? -1 : 0;
}

int sse_ping(struct evbuffer *buf)
{
	return evbuffer_add(buf, ": ping\n\n", 8);
}

/* A frame with room for an event of len bytes; the caller writes them. */
static struct sse_frame *frame_alloc(size_t len, int64_t id)
{
	struct sse_frame *f = malloc(sizeof(*f) + CHUNK_HEAD_MAX + len + 2);
	char head[CHUNK_HEAD_MAX + 1];

	if (f == NULL)
		return NULL;
	f->refs = 1;
	f->id = id;
	f->event_len = len;
	f->head_len = (size_t)snprintf(head, sizeof(head), "%zx\r\n", len);
	memcpy(f->bytes + CHUNK_HEAD_MAX - f->head_len, head, f->head_len);
	memcpy(f->bytes + CHUNK_HEAD_MAX + len, "\r\n", 2);
	return f;
}

struct sse_frame *sse_frame_new(const char *event, int64_t id, const char *data)
{
	char idline[32];
	size_t idlen = id_line(idline, sizeof(idline), id);
	size_t len = format_event(NULL, event, idline, idlen, data);
	struct sse_frame *f = frame_alloc(len, id < 0 ? -1 : id);

	if (f != NULL)
		format_event(f->bytes + CHUNK_HEAD_MAX, event, idline, idlen, data);
	return f;
}

static struct sse_frame *frame_of_text(const char *text, size_t len)
{
	struct sse_frame *f = frame_alloc(len, -1);

	if (f != NULL)
		memcpy(f->bytes + CHUNK_HEAD_MAX, text, len);
	return f;
}

struct sse_frame *sse_frame_retry(int ms)
{
	char text[32];
	int n = snprintf(text, sizeof(text), "retry: %d\n\n", ms);

	return frame_of_text(text, (size_t)n);
}

struct sse_frame *sse_frame_ping(void)
{
	return frame_of_text(": ping\n\n", 8);
}

struct sse_frame *sse_frame_ref(struct sse_frame *f)
{
	f->refs++;
	return f;
}

void sse_frame_unref(struct sse_frame *f)
{
	if (f != NULL && --f->refs == 0)
		free(f);
}

int64_t sse_frame_id(const struct sse_frame *f)
{
	return f->id;
}

const char *sse_frame_bytes(const struct sse_frame *f, bool chunked, size_t *len)
{
	if (!chunked) {
		*len = f->event_len;
		return f->bytes + CHUNK_HEAD_MAX;
	}
	*len = f->head_len + f->event_len + 2;
	return f->bytes + CHUNK_HEAD_MAX - f->head_len;
}

static void unref_cb(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	sse_frame_unref(arg);
}

int sse_send(struct bufferevent *bev, struct sse_frame *f, bool chunked)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	size_t len, done = 0;
	const char *p = sse_frame_bytes(f, chunked, &len);

	if (evbuffer_get_length(out) == 0) {
		/* Nothing queued before it, so order holds. Errors (EAGAIN, a
		 * closed peer) are left to the bufferevent: it meets them again on
		 * its own write, and evhttp closes the connection as usual. */
		ssize_t n = send(bufferevent_getfd(bev), p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0)
			done = (size_t)n;
	}
	if (done == len)
		return 0;
	if (evbuffer_add_reference(out, p + done, len - done, unref_cb, sse_frame_ref(f)) != 0) {
		sse_frame_unref(f);
		return -1;
	}
	return 0;
}
