/* sse_fanout.c -- an SSE load client for tests/bench/gateway.sh.
 *
 * Opens CONNS streams (GET PATH on 127.0.0.1:PORT), each from a local address
 * 127.0.0.(FIRST + i % COUNT) so that more streams fit than one source
 * address has ephemeral ports, and keeps them open. A stream counts as open
 * once READY appears in it (after a 200 answer): "HTTP/1.1 200" itself, or
 * the first event the server sends. At most OPENING streams are opening at a
 * time, the same pace for both servers (the gateway takes a burst of all of
 * them at once too: tests/db/check_gateway.c, burst_of_stream_opens_all_answer_200;
 * its first event follows the stream's first state, hence READY). Writes "ready N" to
 * STATUS once N streams answered 200. Then, for every stream, notes the
 * CLOCK_REALTIME at which MARKER first appears in what it received, and
 * writes those times (nanoseconds, one per line) to OUT once every stream
 * saw it, or when TIMEOUT seconds have passed, or on SIGTERM; then exits
 * (0 when every stream saw the marker).
 *
 * usage: sse_fanout PORT PATH TOKEN CONNS FIRST COUNT MARKER STATUS OUT TIMEOUT READY
 * (OPENING is 50.)
 * (TOKEN "-" sends no Authorization header.)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct stream {
	struct client *c;      /* borrowed */
	struct bufferevent *bev; /* owned */
	bool ok;               /* answered 200 */
	bool ready;            /* READY seen */
	bool closed;
	int64_t seen_ns;       /* when the marker arrived, 0 = not yet */
};

#define OPENING 50

struct client {
	struct event_base *base;
	struct stream *streams;
	int n, ready, seen, closed;
	int opened, port, first, count; /* streams started so far; where from/to */
	const char *marker, *ready_token, *status_path, *out_path;
	char request[4096];
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void write_status(struct client *c)
{
	FILE *f = fopen(c->status_path, "w");

	if (f == NULL)
		return;
	fprintf(f, "ready %d closed %d seen %d\n", c->ready, c->closed, c->seen);
	fclose(f);
}

static void finish(struct client *c)
{
	FILE *f = fopen(c->out_path, "w");

	if (f != NULL) {
		for (int i = 0; i < c->n; i++)
			if (c->streams[i].seen_ns != 0)
				fprintf(f, "%lld\n", (long long)c->streams[i].seen_ns);
		fclose(f);
	}
	write_status(c);
	event_base_loopbreak(c->base);
}

static void open_next(struct client *c);
static int open_stream(struct client *c, struct stream *s, int port, int src);

/* Says why a stream ended early (the first few per process). */
static void report_close(struct stream *s, const char *why)
{
	static int reported;

	if (reported++ < 5)
		fprintf(stderr, "sse_fanout: a stream ended %s: %s\n",
			s->ok ? "after its 200" : "before its 200", why);
}

static void close_stream(struct stream *s)
{
	if (s->closed)
		return;
	s->closed = true;
	s->c->closed++;
	bufferevent_free(s->bev);
	s->bev = NULL;
	write_status(s->c);
	if (!s->ready)
		open_next(s->c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct stream *s = arg;
	struct client *c = s->c;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t mlen = strlen(c->marker), rlen = strlen(c->ready_token), keep, len;
	struct evbuffer_ptr p;

	if (!s->ok) {
		unsigned char *head = evbuffer_pullup(in, 12);

		if (head == NULL)
			return;
		if (memcmp(head, "HTTP/1.1 200", 12) != 0) {
			char line[13];

			memcpy(line, head, 12);
			line[12] = '\0';
			report_close(s, line);
			close_stream(s);
			return;
		}
		s->ok = true;
	}
	if (!s->ready) {
		p = evbuffer_search(in, c->ready_token, rlen, NULL);
		if (p.pos < 0)
			goto keep_tail;
		s->ready = true;
		if (++c->ready == c->n || c->ready % 500 == 0)
			write_status(c);
		open_next(c);
	}
	if (s->seen_ns == 0) {
		p = evbuffer_search(in, c->marker, mlen, NULL);
		if (p.pos >= 0) {
			s->seen_ns = now_ns();
			if (++c->seen == c->n)
				finish(c);
		}
	}
keep_tail:
	/* Keep only a tail that may hold the start of a split token. */
	keep = mlen > rlen ? mlen : rlen;
	len = evbuffer_get_length(in);
	if (len > keep)
		evbuffer_drain(in, len - keep);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct stream *s = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		bufferevent_write(s->bev, s->c->request, strlen(s->c->request));
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		report_close(s, (what & BEV_EVENT_EOF) ? "closed by the server"
				: evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		close_stream(s);
	}
}

/* Starts the next stream, if any is left to start. */
static void open_next(struct client *c)
{
	struct stream *s;

	while (c->opened < c->n) {
		s = &c->streams[c->opened];
		if (open_stream(c, s, c->port, c->first + c->opened % c->count) == 0) {
			c->opened++;
			return;
		}
		fprintf(stderr, "sse_fanout: stream %d: %s\n", c->opened, strerror(errno));
		s->c = c;
		s->closed = true;
		c->closed++;
		c->opened++;
	}
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	finish(arg);
}

static int open_stream(struct client *c, struct stream *s, int port, int src)
{
	struct sockaddr_in local = {0}, remote = {0};
	evutil_socket_t fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	local.sin_family = AF_INET;
	local.sin_addr.s_addr = htonl(0x7f000000u | (unsigned)src);
#ifdef IP_BIND_ADDRESS_NO_PORT
	/* Pick the port at connect(), per destination: more streams per address. */
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &(int){1}, sizeof(int));
#endif
	if (bind(fd, (struct sockaddr *)&local, sizeof(local)) != 0 ||
	    evutil_make_socket_nonblocking(fd) != 0) {
		close(fd);
		return -1;
	}
	s->c = c;
	s->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		close(fd);
		return -1;
	}
	bufferevent_setcb(s->bev, on_read, NULL, on_event, s);
	bufferevent_enable(s->bev, EV_READ);
	remote.sin_family = AF_INET;
	remote.sin_port = htons((uint16_t)port);
	remote.sin_addr.s_addr = htonl(0x7f000001u);
	if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&remote, sizeof(remote)) != 0) {
		bufferevent_free(s->bev);
		s->bev = NULL;
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct client c = {0};
	struct event *stop_ev, *term_ev, *int_ev;
	struct timeval tv = {0, 0};
	int rc;

	if (argc != 12) {
		fputs("usage: sse_fanout PORT PATH TOKEN CONNS FIRST COUNT MARKER STATUS OUT TIMEOUT "
		      "READY\n",
		      stderr);
		return 2;
	}
	c.port = atoi(argv[1]);
	c.n = atoi(argv[4]);
	c.first = atoi(argv[5]);
	c.count = atoi(argv[6]);
	c.marker = argv[7];
	c.status_path = argv[8];
	c.out_path = argv[9];
	tv.tv_sec = atoi(argv[10]);
	c.ready_token = argv[11];
	if (c.port <= 0 || c.n <= 0 || c.first < 1 || c.count < 1 || c.first + c.count > 255 ||
	    !*c.marker || !*c.ready_token) {
		fputs("sse_fanout: bad arguments\n", stderr);
		return 2;
	}
	if (strcmp(argv[3], "-") == 0)
		rc = snprintf(c.request, sizeof(c.request),
			      "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
			      argv[2]);
	else
		rc = snprintf(c.request, sizeof(c.request),
			      "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
			      "Authorization: Bearer %s\r\n\r\n",
			      argv[2], argv[3]);
	if (rc < 0 || (size_t)rc >= sizeof(c.request)) {
		fputs("sse_fanout: request too long\n", stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	c.base = event_base_new();
	c.streams = calloc((size_t)c.n, sizeof(*c.streams));
	if (c.base == NULL || c.streams == NULL) {
		fputs("sse_fanout: out of memory\n", stderr);
		return 1;
	}
	for (int i = 0; i < OPENING; i++)
		open_next(&c);
	write_status(&c);
	stop_ev = evtimer_new(c.base, on_stop, &c);
	term_ev = evsignal_new(c.base, SIGTERM, on_stop, &c);
	int_ev = evsignal_new(c.base, SIGINT, on_stop, &c);
	evtimer_add(stop_ev, &tv);
	evsignal_add(term_ev, NULL);
	evsignal_add(int_ev, NULL);
	event_base_dispatch(c.base);
	rc = c.seen == c.n ? 0 : 1;
	for (int i = 0; i < c.n; i++)
		if (c.streams[i].bev != NULL)
			bufferevent_free(c.streams[i].bev);
	free(c.streams);
	event_free(stop_ev);
	event_free(term_ev);
	event_free(int_ev);
	event_base_free(c.base);
	return rc;
}
