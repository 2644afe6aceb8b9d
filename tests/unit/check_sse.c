/* check_sse.c -- SSE framing: id/event/data lines, CR/LF/CRLF split, retry and ping. */
#include <check.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"
#include "test_suite.h"

/* Formats one event and compares the exact bytes. */
static void expect_event(const char *event, int64_t id, const char *data, const char *want)
{
	struct evbuffer *buf = evbuffer_new();
	size_t n;
	char *got;

	ck_assert_int_eq(sse_format(buf, event, id, data), 0);
	n = evbuffer_get_length(buf);
	got = calloc(1, n + 1);
	ck_assert_int_eq(evbuffer_remove(buf, got, n), (int)n);
	ck_assert_str_eq(got, want);
	free(got);
	evbuffer_free(buf);
}

START_TEST(one_line_with_and_without_id)
{
	expect_event("job", 42, "{\"a\":1}", "id: 42\nevent: job\ndata: {\"a\":1}\n\n");
	expect_event("job", 0, "{}", "id: 0\nevent: job\ndata: {}\n\n");
	expect_event("deleted", -1, "{}", "event: deleted\ndata: {}\n\n");
	expect_event("log", 9007199254740993LL, "x",
	             "id: 9007199254740993\nevent: log\ndata: x\n\n");
	expect_event("job", 1, "", "id: 1\nevent: job\ndata: \n\n");
}
END_TEST

START_TEST(line_breaks_become_data_lines)
{
	/* LF, CR and CRLF each end one line; CRLF is one break, not two. */
	expect_event("e", -1, "a\nb", "event: e\ndata: a\ndata: b\n\n");
	expect_event("e", -1, "a\rb", "event: e\ndata: a\ndata: b\n\n");
	expect_event("e", -1, "a\r\nb", "event: e\ndata: a\ndata: b\n\n");
	expect_event("e", -1, "a\n\rb", "event: e\ndata: a\ndata: \ndata: b\n\n");
	expect_event("e", -1, "a\r\n\r\nb", "event: e\ndata: a\ndata: \ndata: b\n\n");
	expect_event("e", -1, "a\r\r\nb", "event: e\ndata: a\ndata: \ndata: b\n\n");
	/* A trailing break is kept as an empty last line (the client rejoins
	 * the lines with LF, so "a\n" round-trips). */
	expect_event("e", -1, "a\n", "event: e\ndata: a\ndata: \n\n");
	expect_event("e", -1, "\r\n", "event: e\ndata: \ndata: \n\n");
	expect_event("e", -1, "a\r", "event: e\ndata: a\ndata: \n\n");
}
END_TEST

START_TEST(payload_cannot_inject_an_event)
{
	/* A blank line plus fields inside the data stay data lines. */
	expect_event("log", 5, "x\n\nevent: end\nid: 99\ndata: {}",
	             "id: 5\nevent: log\ndata: x\ndata: \ndata: event: end\ndata: id: 99\n"
	             "data: data: {}\n\n");
	expect_event("log", 5, "x\r\rretry: 1",
	             "id: 5\nevent: log\ndata: x\ndata: \ndata: retry: 1\n\n");
}
END_TEST

START_TEST(retry_and_ping)
{
	struct evbuffer *buf = evbuffer_new();
	char got[64] = "";

	ck_assert_int_eq(sse_retry(buf, 2000), 0);
	ck_assert_int_eq(sse_ping(buf), 0);
	ck_assert_int_eq(evbuffer_remove(buf, got, sizeof(got) - 1), 21);
	ck_assert_str_eq(got, "retry: 2000\n\n: ping\n\n");
	evbuffer_free(buf);
}
END_TEST

START_TEST(events_append_to_what_is_there)
{
	struct evbuffer *buf = evbuffer_new();
	char got[128] = "";

	ck_assert_int_eq(sse_format(buf, "job", 1, "{}"), 0);
	ck_assert_int_eq(sse_format(buf, "end", 2, "{}"), 0);
	ck_assert_int_eq(evbuffer_remove(buf, got, sizeof(got) - 1), 54);
	ck_assert_str_eq(got, "id: 1\nevent: job\ndata: {}\n\nid: 2\nevent: end\ndata: {}\n\n");
	evbuffer_free(buf);
}
END_TEST

START_TEST(large_data_is_written_whole)
{
	size_t n = 1 << 20;
	char *data = malloc(n + 1);
	struct evbuffer *buf = evbuffer_new();

	memset(data, 'q', n);
	data[n] = '\0';
	data[n / 2] = '\n';
	ck_assert_int_eq(sse_format(buf, "job", 7, data), 0);
	/* "id: 7\n" + "event: job\n" + 2 x "data: " + n - 1 + 2 x "\n" + "\n" */
	ck_assert_uint_eq(evbuffer_get_length(buf), 6 + 11 + 12 + (n - 1) + 2 + 1);
	evbuffer_free(buf);
	free(data);
}
END_TEST

static Suite *sse_suite(void)
{
	Suite *s = suite_create("sse");
	TCase *tc = tcase_create("framing");

	tcase_add_test(tc, one_line_with_and_without_id);
	tcase_add_test(tc, line_breaks_become_data_lines);
	tcase_add_test(tc, payload_cannot_inject_an_event);
	tcase_add_test(tc, retry_and_ping);
	tcase_add_test(tc, events_append_to_what_is_there);
	tcase_add_test(tc, large_data_is_written_whole);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run_suite(sse_suite());
}
