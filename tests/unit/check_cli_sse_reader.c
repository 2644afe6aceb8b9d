/* check_cli_sse_reader.c -- importctl's text/event-stream parser: the WHATWG
 * rules, bytes split anywhere, and a round trip through the gateway's framing. */
#include <check.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"
#include "sse_reader.h"
#include "test_suite.h"

#define MAX_SEEN 16

struct seen {
	int n;
	char event[MAX_SEEN][64];
	char data[MAX_SEEN][256];
	char id[MAX_SEEN][64];
};

static void record_cb(const char *event, const char *data, const char *id, void *arg)
{
	struct seen *s = arg;

	ck_assert_int_lt(s->n, MAX_SEEN);
	snprintf(s->event[s->n], sizeof(s->event[0]), "%s", event);
	snprintf(s->data[s->n], sizeof(s->data[0]), "%s", data);
	snprintf(s->id[s->n], sizeof(s->id[0]), "%s", id);
	s->n++;
}

/* Feeds text in pieces of `step` bytes (0: all at once). */
static void feed(struct sse_reader *r, struct seen *s, const char *text, size_t step)
{
	size_t len = strlen(text);

	if (step == 0)
		step = len > 0 ? len : 1;
	for (size_t off = 0; off < len; off += step)
		ck_assert_int_eq(sse_reader_feed(r, text + off, len - off < step ? len - off : step,
		                                 record_cb, s),
		                 0);
}

static const char stream[] = "retry: 2000\n"
                             "\n"
                             ": ping\n"
                             "\n"
                             "id: 41\n"
                             "event: job\n"
                             "data: {\"status\":\"processing\"}\n"
                             "\n"
                             "id: 42\r\n"
                             "event: log\r\n"
                             "data: line one\r\n"
                             "data: line two\r\n"
                             "\r\n"
                             "id: 43\r"
                             "event: end\r"
                             "data:{\"status\":\"completed\"}\r"
                             "\r";

START_TEST(events_ids_and_line_endings)
{
	/* The same stream split at every possible piece size gives the same
	 * events: CRLF split between two reads is still one line break. */
	for (size_t step = 0; step <= sizeof(stream); step++) {
		struct sse_reader r;
		struct seen s = {0};

		sse_reader_init(&r, 1 << 20);
		feed(&r, &s, stream, step);
		ck_assert_int_eq(s.n, 3);
		ck_assert_str_eq(s.event[0], "job");
		ck_assert_str_eq(s.data[0], "{\"status\":\"processing\"}");
		ck_assert_str_eq(s.id[0], "41");
		ck_assert_str_eq(s.event[1], "log");
		ck_assert_str_eq(s.data[1], "line one\nline two");
		ck_assert_str_eq(s.id[1], "42");
		ck_assert_str_eq(s.event[2], "end");
		ck_assert_str_eq(s.data[2], "{\"status\":\"completed\"}");
		ck_assert_str_eq(s.id[2], "43");
		ck_assert_int_eq(r.retry_ms, 2000);
		ck_assert_str_eq(r.last_id, "43");
		sse_reader_free(&r);
	}
}
END_TEST

START_TEST(whatwg_details)
{
	struct sse_reader r;
	struct seen s = {0};

	sse_reader_init(&r, 1 << 20);
	/* BOM at the start; no event name = "message"; an event without data is
	 * not dispatched but its id sticks; an unknown field is ignored; only
	 * one space after the colon is stripped; "data" alone is an empty line. */
	feed(&r, &s,
	     "\xEF\xBB\xBF"
	     "data: first\n\n"
	     "id: 7\nevent: nothing\n\n"
	     "bogus: x\ndata:  two spaces\n\n"
	     "data\ndata\n\n"
	     "retry: soon\n\n"
	     "data: unfinished",
	     0);
	ck_assert_int_eq(s.n, 3);
	ck_assert_str_eq(s.event[0], "message");
	ck_assert_str_eq(s.data[0], "first");
	ck_assert_str_eq(s.id[0], "");
	ck_assert_str_eq(s.event[1], "message"); /* the event name was reset */
	ck_assert_str_eq(s.data[1], " two spaces");
	ck_assert_str_eq(s.id[1], "7");
	ck_assert_str_eq(s.data[2], "\n");
	ck_assert_int_eq(r.retry_ms, -1);
	/* The unfinished event comes once its blank line does. */
	feed(&r, &s, "\n\n", 0);
	ck_assert_int_eq(s.n, 4);
	ck_assert_str_eq(s.data[3], "unfinished");
	sse_reader_free(&r);
}
END_TEST

START_TEST(oversized_events_fail_the_stream)
{
	struct sse_reader r;
	struct seen s = {0};
	char big[200];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	sse_reader_init(&r, 100);
	ck_assert_int_eq(sse_reader_feed(&r, "data: ", 6, record_cb, &s), 0);
	ck_assert_int_eq(sse_reader_feed(&r, big, strlen(big), record_cb, &s), -1);
	sse_reader_free(&r);
	/* Many data lines adding up to too much fail as well. */
	sse_reader_init(&r, 100);
	for (int i = 0; i < 9; i++)
		ck_assert_int_eq(sse_reader_feed(&r, "data: 0123456789\n", 17, record_cb, &s), 0);
	ck_assert_int_eq(sse_reader_feed(&r, "data: 0123456789\n", 17, record_cb, &s), -1);
	ck_assert_int_eq(s.n, 0);
	sse_reader_free(&r);
	sse_reader_free(&r); /* twice is harmless */
}
END_TEST

/* What the gateway's sse_format writes, this reader reads back unchanged. */
START_TEST(round_trip_with_the_gateway_framing)
{
	static const char *const payloads[] = {"{\"a\":1}", "two\nlines", "", "x\r\ny",
	                                       "event: end\n\nid: 9"};
	struct evbuffer *buf = evbuffer_new();
	struct sse_reader r;
	struct seen s = {0};
	size_t n;
	char *text;

	ck_assert_int_eq(sse_retry(buf, 1500), 0);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(sse_format(buf, i % 2 ? "log" : "job", 100 + i, payloads[i]), 0);
		ck_assert_int_eq(sse_ping(buf), 0);
	}
	n = evbuffer_get_length(buf);
	text = calloc(1, n + 1);
	ck_assert_int_eq(evbuffer_remove(buf, text, n), (int)n);
	sse_reader_init(&r, 1 << 20);
	feed(&r, &s, text, 3);
	ck_assert_int_eq(s.n, 5);
	ck_assert_str_eq(s.data[0], "{\"a\":1}");
	ck_assert_str_eq(s.data[1], "two\nlines");
	ck_assert_str_eq(s.data[2], "");
	ck_assert_str_eq(s.data[3], "x\ny"); /* CRLF comes back as LF */
	ck_assert_str_eq(s.data[4], "event: end\n\nid: 9");
	ck_assert_str_eq(s.event[4], "job");
	ck_assert_str_eq(s.id[4], "104");
	ck_assert_int_eq(r.retry_ms, 1500);
	sse_reader_free(&r);
	free(text);
	evbuffer_free(buf);
}
END_TEST

static Suite *cli_sse_reader_suite(void)
{
	Suite *s = suite_create("cli_sse_reader");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, events_ids_and_line_endings);
	tcase_add_test(tc, whatwg_details);
	tcase_add_test(tc, oversized_events_fail_the_stream);
	tcase_add_test(tc, round_trip_with_the_gateway_framing);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run_suite(cli_sse_reader_suite());
}
