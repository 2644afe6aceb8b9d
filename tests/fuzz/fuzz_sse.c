/* fuzz_sse.c -- libFuzzer harness for api/sse.c.
 *
 * Any text (the input up to its first NUL) framed by sse_format must parse
 * back, by the EventSource rules (lines end at CRLF, LF or CR; "data:" lines
 * joined by LF; a blank line ends the event), to exactly one event with the
 * same id, the same name and the same data with its line ends made LF. So a
 * CR or LF in a job's JSON or log message can never end an event early or
 * forge a field. The shared frame of the same event (sse_frame_new) must hold
 * exactly those bytes, bare and as one HTTP/1.1 chunk.
 * Built and run by tests/fuzz/run.sh.
 */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                      \
	do {                                                                          \
		if (!(x)) {                                                           \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
				#x);                                                  \
			abort();                                                      \
		}                                                                     \
	} while (0)

/* The input's text with CRLF and CR made LF: what a client must see. */
static char *normalised(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;

	CHECK(out != NULL);
	for (; *s != '\0'; s++) {
		if (*s == '\r') {
			*o++ = '\n';
			if (s[1] == '\n')
				s++;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const events[] = {"job", "log", "end", "deleted"};
	struct evbuffer *buf = evbuffer_new();
	const char *event = events[size > 0 ? data[0] % 4 : 0];
	int64_t id = size > 1 ? (data[1] % 3 == 0 ? -1 : (int64_t)data[1] * 1000003) : 7;
	char *text = malloc(size + 1), *want, *out, *line, *next, *got_data, *got_event = NULL;
	long long got_id = -1;
	size_t n, dlen = 0;
	int blank_lines = 0, ndata = 0;

	CHECK(buf != NULL && text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	CHECK(sse_format(buf, event, id, text) == 0);
	n = evbuffer_get_length(buf);
	out = malloc(n + 1);
	got_data = malloc(n + 1);
	CHECK(out != NULL && got_data != NULL);
	CHECK(evbuffer_remove(buf, out, n) == (int)n);
	out[n] = '\0';
	/* A shared frame holds the same bytes, bare and as one HTTP/1.1 chunk. */
	{
		struct sse_frame *f = sse_frame_new(event, id, text);
		size_t flen, clen;
		const char *bare, *chunk;
		char head[32];
		int hlen = snprintf(head, sizeof(head), "%zx\r\n", n);

		CHECK(f != NULL);
		bare = sse_frame_bytes(f, false, &flen);
		CHECK(flen == n && memcmp(bare, out, n) == 0);
		chunk = sse_frame_bytes(f, true, &clen);
		CHECK(clen == (size_t)hlen + n + 2 && memcmp(chunk, head, (size_t)hlen) == 0);
		CHECK(memcmp(chunk + hlen, out, n) == 0 &&
		      memcmp(chunk + hlen + n, "\r\n", 2) == 0);
		sse_frame_unref(f);
	}
	/* the frame uses LF only and ends with exactly one blank line */
	CHECK(memchr(out, '\r', n) == NULL);
	CHECK(n >= 2 && out[n - 1] == '\n' && out[n - 2] == '\n');
	got_data[0] = '\0';
	for (line = out; *line != '\0'; line = next + 1) {
		next = strchr(line, '\n');
		*next = '\0';
		if (*line == '\0') {
			blank_lines++;
			CHECK(next + 1 == out + n); /* the only blank line is the last */
			break;
		}
		if (strncmp(line, "id: ", 4) == 0) {
			CHECK(got_id == -1 && ndata == 0);
			got_id = strtoll(line + 4, NULL, 10);
		} else if (strncmp(line, "event: ", 7) == 0) {
			CHECK(got_event == NULL);
			got_event = line + 7;
		} else {
			CHECK(strncmp(line, "data: ", 6) == 0); /* no other field */
			if (ndata++ > 0)
				got_data[dlen++] = '\n'; /* data lines join with LF */
			memcpy(got_data + dlen, line + 6, strlen(line + 6));
			dlen += strlen(line + 6);
		}
	}
	got_data[dlen] = '\0';
	CHECK(blank_lines == 1);
	CHECK(got_id == (id >= 0 ? id : -1));
	CHECK(got_event != NULL && strcmp(got_event, event) == 0);
	want = normalised(text);
	CHECK(strcmp(got_data, want) == 0);
	free(want);
	free(got_data);
	free(out);
	free(text);
	evbuffer_free(buf);
	return 0;
}
