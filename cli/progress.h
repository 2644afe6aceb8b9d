/* progress.h -- the live progress line, the end-of-job summary and the
 * number / duration / rate formatting they share.
 *
 * Pure: everything renders into a caller's buffer; the caller decides where
 * it goes and whether a terminal sees "\r" and "\033[K" around it. Unless
 * stated otherwise, pointer arguments are borrowed for the duration of the call.
 */
#ifndef IMPORTCTL_PROGRESS_H
#define IMPORTCTL_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What one progress line shows (from the job JSON plus a client-side rate). */
struct progress_view {
	const char *status; /* borrowed; "processing"... */
	const char *phase;  /* borrowed; "queued", "reading", "importing"... */
	double percent;     /* 0..100 of the file's bytes */
	int64_t processed;  /* records committed (good + failed) */
	int64_t total;      /* records, estimate while running; <0 unknown */
	bool total_is_estimate;
	double rate;         /* records per second; <0 unknown */
	int64_t eta_seconds; /* <0 unknown */
};

/* "1,234,567". */
void progress_fmt_count(int64_t n, char *buf, size_t len);

/* "0:07", "12:03", "1:02:03"; "?" for a negative value. */
void progress_fmt_duration(int64_t seconds, char *buf, size_t len);

/* An elapsed time for summaries: "0.4 s", "12.3 s", "2:05". */
void progress_fmt_elapsed(double seconds, char *buf, size_t len);

/* "850 rec/s", "12.3k rec/s", "1.2M rec/s"; "- rec/s" when unknown (<0). */
void progress_fmt_rate(double per_second, char *buf, size_t len);

/* The live line, at most width columns (ASCII only, so bytes = columns):
 * "[#####.....]  45%  45,000/~100,000  12.3k rec/s  ETA 0:04  importing".
 * Parts are dropped from the right end of the priority list (bar, rate, ETA)
 * when the width is small. Returns the length written. */
size_t progress_render(const struct progress_view *v, int width, char *buf, size_t len);

/* The line for output that is not a terminal, printed once per phase change:
 * "importing: 45% 45,000/~100,000 records". Returns the length written. */
size_t progress_render_plain(const struct progress_view *v, char *buf, size_t len);

/* A moving window of (time, records) samples: the rate over the last few
 * seconds, so a pause or a slow start does not skew it forever. */
#define RATE_SAMPLES 32
struct rate_meter {
	double t[RATE_SAMPLES];  /* seconds, monotonic */
	int64_t n[RATE_SAMPLES]; /* records at t */
	int count, head;         /* ring: oldest at head when full */
	double window;           /* seconds of history that count (default 10) */
};

void rate_meter_init(struct rate_meter *m, double window_seconds);

/* Adds a sample; a count lower than the last (a retry from zero) restarts. */
void rate_meter_add(struct rate_meter *m, double t, int64_t records);

/* Records per second over the window, or -1 with under two samples or no time. */
double rate_meter_rate(const struct rate_meter *m);

/* "1,000 inserted, 20 updated, 3 failed", with ", N unchanged" after
 * "updated" when N > 0 (an upsert left records as they were). */
void progress_counts_text(int64_t inserted, int64_t updated, int64_t unchanged, int64_t failed,
			  char *buf, size_t len);

/* The summary after the end: "completed in 4.2 s: " and the counts
 * (progress_counts_text), plus " (dry run)" and, for failed jobs,
 * ": <error message>". */
struct progress_summary {
	const char *status; /* borrowed */
	int64_t inserted, updated, unchanged, failed;
	double seconds; /* <0 unknown */
	bool dry_run;
	const char *error_message; /* borrowed; may be NULL */
};
size_t progress_render_summary(const struct progress_summary *s, char *buf, size_t len);

/* Seconds since the epoch of an RFC 3339 timestamp ("2026-11-25T08:15:02.123+00:00",
 * "...Z"). Returns 0, or -1 when s is not one. */
int progress_parse_time(const char *s, double *out);

#endif
