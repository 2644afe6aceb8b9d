/* check_sse.c -- SSE framing: id/event/data lines, CR/LF/CRLF split, retry and ping;
 * shared frames and sse_send() over a socket pair. */
#include <check.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* A frame holds exactly what sse_format appends, bare or as one HTTP/1.1 chunk. */
static void expect_frame(const char *event, int64_t id, const char *data)
{
	struct evbuffer *buf = evbuffer_new();
	struct sse_frame *f = sse_frame_new(event, id, data);
	size_t n, blen, clen;
	const char *bare, *chunk;
	char head[32];
	int hlen;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(sse_format(buf, event, id, data), 0);
	n = evbuffer_get_length(buf);
	bare = sse_frame_bytes(f, false, &blen);
	ck_assert_uint_eq(blen, n);
	ck_assert_int_eq(memcmp(bare, evbuffer_pullup(buf, -1), n), 0);
	chunk = sse_frame_bytes(f, true, &clen);
	hlen = snprintf(head, sizeof(head), "%zx\r\n", n);
	ck_assert_uint_eq(clen, (size_t)hlen + n + 2);
	ck_assert_int_eq(memcmp(chunk, head, (size_t)hlen), 0);
	ck_assert_int_eq(memcmp(chunk + hlen, bare, n), 0);
	ck_assert_int_eq(memcmp(chunk + hlen + n, "\r\n", 2), 0);
	ck_assert_int_eq(sse_frame_id(f), id < 0 ? -1 : id);
	sse_frame_unref(f);
	evbuffer_free(buf);
}

START_TEST(frames_match_sse_format)
{
	char *big = malloc(70000);
	struct sse_frame *f;
	size_t len;

	expect_frame("job", 42, "{\"a\":1}");
	expect_frame("deleted", -1, "{}");
	expect_frame("e", 7, "a\r\nb\rc\n");
	expect_frame("job", 1, "");
	memset(big, 'z', 69999); /* a chunk header of 5 hex digits */
	big[69999] = '\0';
	expect_frame("log", 9007199254740993LL, big);
	free(big);
	f = sse_frame_ping();
	ck_assert_int_eq(memcmp(sse_frame_bytes(f, true, &len), "8\r\n: ping\n\n\r\n", 13), 0);
	ck_assert_uint_eq(len, 13);
	sse_frame_unref(f);
	f = sse_frame_retry(2000);
	ck_assert_int_eq(memcmp(sse_frame_bytes(f, false, &len), "retry: 2000\n\n", 13), 0);
	ck_assert_uint_eq(len, 13);
	/* References: the frame lives until the last one is dropped (ASan checks). */
	ck_assert_ptr_eq(sse_frame_ref(f), f);
	sse_frame_unref(f);
	sse_frame_unref(f);
	sse_frame_unref(NULL);
}
END_TEST

/* Reads from fd until want bytes arrived (the peer runs base meanwhile). */
static void read_exactly(struct event_base *base, int fd, char *out, size_t want)
{
	size_t got = 0;

	for (int spins = 0; got < want && spins < 100000; spins++) {
		ssize_t n = recv(fd, out + got, want - got, MSG_DONTWAIT);

		if (n > 0)
			got += (size_t)n;
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	ck_assert_uint_eq(got, want);
}

START_TEST(send_goes_straight_out_or_queues_by_reference)
{
	struct event_base *base = event_base_new();
	int sv[2], small = 4096;
	struct bufferevent *bev;
	struct sse_frame *a = sse_frame_new("job", 1, "first"), *b;
	char *data = malloc(200001), *got, *want;
	size_t alen, blen;
	const char *abytes, *bbytes;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	ck_assert_int_eq(evutil_make_socket_nonblocking(sv[0]), 0); /* as evhttp's are */
	bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	ck_assert_ptr_nonnull(bev);
	bufferevent_enable(bev, EV_WRITE);
	/* Nothing queued: the bytes go to the socket at once, nothing stays. */
	ck_assert_int_eq(sse_send(bev, a, true), 0);
	ck_assert_uint_eq(evbuffer_get_length(bufferevent_get_output(bev)), 0);
	abytes = sse_frame_bytes(a, true, &alen);
	got = malloc(400000);
	ck_assert_int_eq(recv(sv[1], got, 4096, 0), (ssize_t)alen);
	ck_assert_int_eq(memcmp(got, abytes, alen), 0);
	/* Larger than the socket takes: the rest is queued, in order, after it. */
	memset(data, 'q', 200000);
	data[200000] = '\0';
	b = sse_frame_new("job", 2, data);
	ck_assert_int_eq(sse_send(bev, b, true), 0);
	ck_assert_uint_gt(evbuffer_get_length(bufferevent_get_output(bev)), 0);
	/* Output queued: a later frame waits behind it, bare this time. */
	ck_assert_int_eq(sse_send(bev, a, false), 0);
	bbytes = sse_frame_bytes(b, true, &blen);
	want = malloc(blen);
	memcpy(want, bbytes, blen);
	sse_frame_unref(b); /* the queued part holds its own reference (ASan checks) */
	read_exactly(base, sv[1], got, blen);
	ck_assert_int_eq(memcmp(got, want, blen), 0);
	ck_assert_int_eq(memcmp(got, "30d59\r\nid: 2\nevent: job\ndata: qqq", 33), 0);
	abytes = sse_frame_bytes(a, false, &alen);
	read_exactly(base, sv[1], got, alen);
	ck_assert_int_eq(memcmp(got, abytes, alen), 0);
	ck_assert_uint_eq(evbuffer_get_length(bufferevent_get_output(bev)), 0);
	bufferevent_free(bev);
	sse_frame_unref(a);
	close(sv[1]);
	event_base_free(base);
	free(got);
	free(want);
	free(data);
}
END_TEST

/* A peer that is gone: the send reports nothing itself (no SIGPIPE either);
 * the bytes wait in the output, where the bufferevent meets the error. */
START_TEST(send_to_a_closed_peer_leaves_the_error_to_the_bufferevent)
{
	struct event_base *base = event_base_new();
	int sv[2];
	struct bufferevent *bev;
	struct sse_frame *f = sse_frame_new("job", 1, "x");

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	ck_assert_int_eq(sse_send(bev, f, true), 0);
	ck_assert_uint_gt(evbuffer_get_length(bufferevent_get_output(bev)), 0);
	bufferevent_free(bev); /* drops the queued reference */
	sse_frame_unref(f);
	event_base_free(base);
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
	tcase_add_test(tc, frames_match_sse_format);
	tcase_add_test(tc, send_goes_straight_out_or_queues_by_reference);
	tcase_add_test(tc, send_to_a_closed_peer_leaves_the_error_to_the_bufferevent);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run_suite(sse_suite());
}
