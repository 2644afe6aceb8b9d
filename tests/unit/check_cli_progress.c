/* check_cli_progress.c -- importctl's progress line, summary, number, rate,
 * duration and timestamp formatting, and the moving-window rate. */
#include <check.h>
#include <string.h>

#include "progress.h"
#include "test_suite.h"

static struct progress_view running(void)
{
	struct progress_view v = {
	    .status = "processing",
	    .phase = "importing",
	    .percent = 45.7,
	    .processed = 45000,
	    .total = 100000,
	    .total_is_estimate = true,
	    .rate = 12345,
	    .eta_seconds = 4,
	};
	return v;
}

START_TEST(counts_rates_durations)
{
	char b[64];

	progress_fmt_count(0, b, sizeof(b));
	ck_assert_str_eq(b, "0");
	progress_fmt_count(999, b, sizeof(b));
	ck_assert_str_eq(b, "999");
	progress_fmt_count(1000, b, sizeof(b));
	ck_assert_str_eq(b, "1,000");
	progress_fmt_count(1234567, b, sizeof(b));
	ck_assert_str_eq(b, "1,234,567");
	progress_fmt_count(-1234, b, sizeof(b));
	ck_assert_str_eq(b, "-1,234");
	progress_fmt_count(INT64_MIN, b, sizeof(b));
	ck_assert_str_eq(b, "-9,223,372,036,854,775,808");

	progress_fmt_rate(-1, b, sizeof(b));
	ck_assert_str_eq(b, "- rec/s");
	progress_fmt_rate(850.4, b, sizeof(b));
	ck_assert_str_eq(b, "850 rec/s");
	progress_fmt_rate(12345, b, sizeof(b));
	ck_assert_str_eq(b, "12.3k rec/s");
	progress_fmt_rate(999999, b, sizeof(b));
	ck_assert_str_eq(b, "1.0M rec/s");
	progress_fmt_rate(2.5e6, b, sizeof(b));
	ck_assert_str_eq(b, "2.5M rec/s");

	progress_fmt_duration(-1, b, sizeof(b));
	ck_assert_str_eq(b, "?");
	progress_fmt_duration(0, b, sizeof(b));
	ck_assert_str_eq(b, "0:00");
	progress_fmt_duration(7, b, sizeof(b));
	ck_assert_str_eq(b, "0:07");
	progress_fmt_duration(723, b, sizeof(b));
	ck_assert_str_eq(b, "12:03");
	progress_fmt_duration(3723, b, sizeof(b));
	ck_assert_str_eq(b, "1:02:03");

	progress_fmt_elapsed(0.42, b, sizeof(b));
	ck_assert_str_eq(b, "0.4 s");
	progress_fmt_elapsed(59.94, b, sizeof(b));
	ck_assert_str_eq(b, "59.9 s");
	progress_fmt_elapsed(125.4, b, sizeof(b));
	ck_assert_str_eq(b, "2:05");
	progress_fmt_elapsed(-1, b, sizeof(b));
	ck_assert_str_eq(b, "?");
}
END_TEST

START_TEST(the_full_line)
{
	struct progress_view v = running();
	char b[256];
	size_t n = progress_render(&v, 100, b, sizeof(b));

	ck_assert_str_eq(b, "[##################......................]  45%  45,000/~100,000  "
	                    "12.3k rec/s  ETA 0:04  importing");
	ck_assert_uint_eq(n, strlen(b));
	ck_assert_uint_le(n, 100);
	/* No escape sequences or line breaks: the caller adds "\r" and "\033[K". */
	ck_assert_ptr_null(strpbrk(b, "\033\r\n"));
}
END_TEST

START_TEST(percent_is_never_rounded_up_to_100)
{
	struct progress_view v = running();
	char b[256];

	v.percent = 99.97;
	progress_render(&v, 100, b, sizeof(b));
	ck_assert_ptr_nonnull(strstr(b, " 99%"));
	ck_assert_ptr_nonnull(strstr(b, "#."));
	v.percent = 100;
	progress_render(&v, 100, b, sizeof(b));
	ck_assert_ptr_nonnull(strstr(b, "100%"));
	ck_assert_ptr_nonnull(strstr(b, "[########################################] 100%"));
	v.percent = -3;
	progress_render(&v, 100, b, sizeof(b));
	ck_assert_ptr_nonnull(strstr(b, "[....."));
	ck_assert_ptr_nonnull(strstr(b, "  0%"));
}
END_TEST

START_TEST(narrow_terminals_drop_parts_and_never_wrap)
{
	struct progress_view v = running();
	char b[256];

	for (int w = 1; w <= 120; w++) {
		size_t n = progress_render(&v, w, b, sizeof(b));

		ck_assert_uint_le(n, (size_t)w);
		ck_assert_uint_eq(n, strlen(b));
	}
	/* 60 columns: the rate goes first, the bar stays. */
	progress_render(&v, 60, b, sizeof(b));
	ck_assert_ptr_null(strstr(b, "rec/s"));
	ck_assert_ptr_nonnull(strstr(b, "ETA 0:04"));
	ck_assert_ptr_nonnull(strstr(b, "importing"));
	ck_assert_ptr_nonnull(strstr(b, "] "));
	ck_assert_uint_eq(strlen(b), 60);
	/* 50 and 45: the ETA goes too, the bar shrinks to its 10 cells; 43:
	 * no room for the bar, so the ETA comes back; 40: not even for it. */
	progress_render(&v, 50, b, sizeof(b));
	ck_assert_str_eq(b, "[######.........]  45%  45,000/~100,000  importing");
	progress_render(&v, 45, b, sizeof(b));
	ck_assert_str_eq(b, "[####......]  45%  45,000/~100,000  importing");
	progress_render(&v, 43, b, sizeof(b));
	ck_assert_str_eq(b, " 45%  45,000/~100,000  ETA 0:04  importing");
	progress_render(&v, 40, b, sizeof(b));
	ck_assert_str_eq(b, " 45%  45,000/~100,000  importing");
}
END_TEST

START_TEST(unknown_values_and_stages)
{
	struct progress_view v = running();
	char b[256];

	v.total = -1;
	v.rate = -1;
	v.eta_seconds = -1;
	v.phase = "queued";
	v.status = "pending";
	progress_render(&v, 200, b, sizeof(b));
	ck_assert_ptr_nonnull(strstr(b, " 45,000  - rec/s  ETA ?  queued"));
	v.status = "paused";
	progress_render(&v, 200, b, sizeof(b));
	ck_assert_ptr_nonnull(strstr(b, "  paused"));
	/* An exact total has no "~". */
	v = running();
	v.total_is_estimate = false;
	progress_render(&v, 200, b, sizeof(b));
	ck_assert_ptr_nonnull(strstr(b, "45,000/100,000"));
}
END_TEST

START_TEST(plain_line_for_pipes)
{
	struct progress_view v = running();
	char b[256];

	progress_render_plain(&v, b, sizeof(b));
	ck_assert_str_eq(b, "importing: 45% 45,000/~100,000 records");
	v.phase = "done";
	v.percent = 100;
	v.total = 45000;
	v.total_is_estimate = false;
	progress_render_plain(&v, b, sizeof(b));
	ck_assert_str_eq(b, "done: 100% 45,000/45,000 records");
}
END_TEST

START_TEST(summaries)
{
	struct progress_summary s = {.status = "completed", .inserted = 1000, .updated = 20,
	                             .failed = 3, .seconds = 4.23};
	char b[256];

	progress_render_summary(&s, b, sizeof(b));
	ck_assert_str_eq(b, "completed in 4.2 s: 1,000 inserted, 20 updated, 3 failed");
	s.status = "failed";
	s.error_message = "unterminated quoted field at end of file";
	s.seconds = 61;
	progress_render_summary(&s, b, sizeof(b));
	ck_assert_str_eq(b, "failed in 1:01: 1,000 inserted, 20 updated, 3 failed: "
	                    "unterminated quoted field at end of file");
	s = (struct progress_summary){.status = "completed", .inserted = 2, .failed = 1,
	                              .seconds = 0.05, .dry_run = true, .error_message = ""};
	progress_render_summary(&s, b, sizeof(b));
	ck_assert_str_eq(b, "completed in 0.1 s: 2 inserted, 0 updated, 1 failed (dry run: nothing "
	                    "written)");
	/* Records an upsert left as they were are named only when there are some. */
	s = (struct progress_summary){
	    .status = "completed", .updated = 1, .unchanged = 4999, .seconds = 2};
	progress_render_summary(&s, b, sizeof(b));
	ck_assert_str_eq(b, "completed in 2.0 s: 0 inserted, 1 updated, 4,999 unchanged, 0 failed");
}
END_TEST

START_TEST(rate_over_a_moving_window)
{
	struct rate_meter m;

	rate_meter_init(&m, 10);
	ck_assert(rate_meter_rate(&m) < 0);
	rate_meter_add(&m, 100.0, 0);
	ck_assert(rate_meter_rate(&m) < 0); /* one sample: no rate */
	rate_meter_add(&m, 102.0, 2000);
	ck_assert_double_eq_tol(rate_meter_rate(&m), 1000, 1e-9);
	/* A stall of 20 s: the old fast samples leave the window. */
	rate_meter_add(&m, 112.0, 2000);
	rate_meter_add(&m, 122.0, 2100);
	ck_assert_double_eq_tol(rate_meter_rate(&m), 10, 1e-9);
	/* A retry from zero starts over. */
	rate_meter_add(&m, 123.0, 0);
	ck_assert(rate_meter_rate(&m) < 0);
	/* The same instant twice keeps the newer count, no division by zero. */
	rate_meter_add(&m, 124.0, 100);
	rate_meter_add(&m, 124.0, 150);
	ck_assert_double_eq_tol(rate_meter_rate(&m), 150, 1e-9);
	/* More samples than the ring holds. */
	rate_meter_init(&m, 1000);
	for (int i = 0; i < 100; i++)
		rate_meter_add(&m, i, (int64_t)i * 7);
	ck_assert_double_eq_tol(rate_meter_rate(&m), 7, 1e-9);
}
END_TEST

START_TEST(rfc3339_timestamps)
{
	double a, b;

	ck_assert_int_eq(progress_parse_time("1970-01-01T00:00:00Z", &a), 0);
	ck_assert_double_eq(a, 0);
	ck_assert_int_eq(progress_parse_time("2026-11-25T08:15:02.25+00:00", &a), 0);
	ck_assert_double_eq_tol(a, 1795594502.25, 1e-6);
	ck_assert_int_eq(progress_parse_time("2026-11-25T09:15:02.25+01:00", &b), 0);
	ck_assert_double_eq_tol(a, b, 1e-6);
	ck_assert_int_eq(progress_parse_time("2024-02-29T23:59:59-00:30", &a), 0);
	ck_assert_double_eq_tol(a, 1709251199 + 1800, 1e-6);
	ck_assert_int_eq(progress_parse_time(NULL, &a), -1);
	ck_assert_int_eq(progress_parse_time("", &a), -1);
	ck_assert_int_eq(progress_parse_time("2026-11-25", &a), -1);
	ck_assert_int_eq(progress_parse_time("2026-13-25T00:00:00Z", &a), -1);
	ck_assert_int_eq(progress_parse_time("2026-11-25T00:00:00", &a), -1);
	ck_assert_int_eq(progress_parse_time("2026-11-25T00:00:00Zjunk", &a), -1);
}
END_TEST

static Suite *cli_progress_suite(void)
{
	Suite *s = suite_create("cli_progress");
	TCase *tc = tcase_create("render");

	tcase_add_test(tc, counts_rates_durations);
	tcase_add_test(tc, the_full_line);
	tcase_add_test(tc, percent_is_never_rounded_up_to_100);
	tcase_add_test(tc, narrow_terminals_drop_parts_and_never_wrap);
	tcase_add_test(tc, unknown_values_and_stages);
	tcase_add_test(tc, plain_line_for_pipes);
	tcase_add_test(tc, summaries);
	tcase_add_test(tc, rate_over_a_moving_window);
	tcase_add_test(tc, rfc3339_timestamps);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run_suite(cli_progress_suite());
}
