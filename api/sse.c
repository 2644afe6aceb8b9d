/* sse.c -- Server-Sent Events framing (see sse.h). */
#include "sse.h"

#include <string.h>

int sse_format(struct evbuffer *buf, const char *event, int64_t id, const char *data)
{
	const char *p = data;

	if (id >= 0 && evbuffer_add_printf(buf, "id: %lld\n", (long long)id) < 0)
		return -1;
	if (evbuffer_add_printf(buf, "event: %s\n", event) < 0)
		return -1;
	for (;;) {
		size_t n = strcspn(p, "\r\n");

		if (evbuffer_add(buf, "data: ", 6) != 0 || evbuffer_add(buf, p, n) != 0 ||
		    evbuffer_add(buf, "\n", 1) != 0)
			return -1;
		p += n;
		if (*p == '\0')
			break;
		if (p[0] == '\r' && p[1] == '\n')
			p++;
		p++;
	}
	return evbuffer_add(buf, "\n", 1);
}

int sse_retry(struct evbuffer *buf, int ms)
{
	return evbuffer_add_printf(buf, "retry: %d\n\n", ms) < 0 ? -1 : 0;
}

int sse_ping(struct evbuffer *buf)
{
	return evbuffer_add(buf, ": ping\n\n", 8);
}
