/* check_http_util.c -- SQLSTATE -> HTTP status, token redaction, parsing helpers. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "http_util.h"
#include "test_suite.h"

static void expect_status(const char *state, bool identity, int want, const char *want_code)
{
	const char *code = NULL;

	ck_assert_int_eq(http_status_for_sqlstate(state, identity, &code), want);
	ck_assert_str_eq(code, want_code);
}

START_TEST(sqlstates_map_to_design_statuses)
{
	expect_status("P0002", true, 404, "not_found");
	expect_status("55000", true, 409, "conflict");
	expect_status("53400", true, 429, "limit_exceeded");
	expect_status("22023", true, 400, "bad_request");
	expect_status("22P02", true, 400, "bad_request");
	expect_status("22003", true, 400, "bad_request");
	expect_status("22001", true, 400, "bad_request");
	expect_status("42501", true, 403, "forbidden");
	expect_status("42501", false, 401, "unauthorized");
	/* The database going away or refusing for now: 503, never 500. */
	expect_status("08006", true, 503, "unavailable");
	expect_status("08003", true, 503, "unavailable");
	expect_status("57P01", true, 503, "unavailable");
	expect_status("57P02", true, 503, "unavailable");
	expect_status("57P03", true, 503, "unavailable");
	expect_status("53300", true, 503, "unavailable");
	expect_status("40001", true, 503, "unavailable");
	expect_status("40P01", true, 503, "unavailable");
	expect_status("57014", true, 503, "unavailable");
	/* Everything else is ours: 500 (details only in the log). */
	expect_status("XX000", true, 500, "internal");
	expect_status("42P01", true, 500, "internal");
	expect_status("53200", true, 500, "internal");
	expect_status("", true, 500, "internal");
	expect_status(NULL, true, 500, "internal");
}
END_TEST

static void expect_redacted(const char *uri, const char *want)
{
	char out[256];

	memset(out, '#', sizeof(out));
	http_redact_uri(uri, out, sizeof(out));
	ck_assert_str_eq(out, want);
}

START_TEST(tokens_are_redacted)
{
	expect_redacted("/api/events?access_token=eyJ.abc.def", "/api/events?access_token=***");
	expect_redacted("/api/events?logs_for=x&access_token=eyJ.a.b&z=1",
	                "/api/events?logs_for=x&access_token=***&z=1");
	expect_redacted("/api/events?access_token=a&access_token=b",
	                "/api/events?access_token=***&access_token=***");
	expect_redacted("/api/events?ACCESS_TOKEN=secret", "/api/events?access_token=***");
	expect_redacted("/api/events?access_token=", "/api/events?access_token=***");
	/* Only a parameter named exactly so: not a suffix, not the path. */
	expect_redacted("/api/events?my_access_token=x", "/api/events?my_access_token=x");
	expect_redacted("/access_token=x", "/access_token=x");
	expect_redacted("/api/jobs", "/api/jobs");
	expect_redacted("", "");
}
END_TEST

START_TEST(redaction_respects_the_buffer)
{
	char out[16];
	char tiny[1] = {'#'};

	memset(out, '#', sizeof(out));
	http_redact_uri("/x?access_token=abcdefghijklmnop", out, sizeof(out));
	ck_assert_str_eq(out, "/x?access_token");
	ck_assert_ptr_null(strstr(out, "abc"));
	http_redact_uri("/x?access_token=abc", tiny, sizeof(tiny));
	ck_assert_int_eq(tiny[0], '\0');
	http_redact_uri("/x", tiny, 0); /* nothing written */
}
END_TEST

START_TEST(uuids)
{
	ck_assert(http_is_uuid("aaaaaaaa-0000-4000-8000-00000000000a"));
	ck_assert(http_is_uuid("AAAAAAAA-0000-4000-8000-00000000000A"));
	ck_assert(!http_is_uuid("aaaaaaaa-0000-4000-8000-00000000000"));
	ck_assert(!http_is_uuid("aaaaaaaa-0000-4000-8000-00000000000aa"));
	ck_assert(!http_is_uuid("aaaaaaaa00000-4000-8000-00000000000a"));
	ck_assert(!http_is_uuid("gaaaaaaa-0000-4000-8000-00000000000a"));
	ck_assert(!http_is_uuid("aaaaaaaa-0000-4000-8000-00000000000a\n"));
	ck_assert(!http_is_uuid(""));
	ck_assert(!http_is_uuid(NULL));
}
END_TEST

START_TEST(integers_and_booleans)
{
	int64_t v = -7;
	bool b = false;

	ck_assert_int_eq(http_parse_int("0", 0, 10, &v), 0);
	ck_assert_int_eq(v, 0);
	ck_assert_int_eq(http_parse_int("10", 0, 10, &v), 0);
	ck_assert_int_eq(v, 10);
	ck_assert_int_eq(http_parse_int("-3", -5, 10, &v), 0);
	ck_assert_int_eq(v, -3);
	ck_assert_int_eq(http_parse_int("9223372036854775807", 0, INT64_MAX, &v), 0);
	ck_assert_int_eq(v, INT64_MAX);
	v = 5;
	ck_assert_int_eq(http_parse_int("11", 0, 10, &v), -1);
	ck_assert_int_eq(http_parse_int("-1", 0, 10, &v), -1);
	ck_assert_int_eq(http_parse_int("", 0, 10, &v), -1);
	ck_assert_int_eq(http_parse_int(" 1", 0, 10, &v), -1);
	ck_assert_int_eq(http_parse_int("1 ", 0, 10, &v), -1);
	ck_assert_int_eq(http_parse_int("1x", 0, 10, &v), -1);
	ck_assert_int_eq(http_parse_int("0x1", 0, 10, &v), -1);
	ck_assert_int_eq(http_parse_int("99999999999999999999", 0, INT64_MAX, &v), -1);
	ck_assert_int_eq(http_parse_int(NULL, 0, 10, &v), -1);
	ck_assert_int_eq(v, 5); /* untouched on failure */

	ck_assert_int_eq(http_parse_bool("true", &b), 0);
	ck_assert(b);
	ck_assert_int_eq(http_parse_bool("FALSE", &b), 0);
	ck_assert(!b);
	ck_assert_int_eq(http_parse_bool("1", &b), 0);
	ck_assert(b);
	ck_assert_int_eq(http_parse_bool("0", &b), 0);
	ck_assert(!b);
	ck_assert_int_eq(http_parse_bool("yes", &b), -1);
	ck_assert_int_eq(http_parse_bool("", &b), -1);
	ck_assert_int_eq(http_parse_bool(NULL, &b), -1);
}
END_TEST

/* Found by tests/inputs (opt_collection_nul): "collection=ab%00cd" was
 * stored as collection "ab". */
START_TEST(encoded_nul_in_query)
{
	ck_assert(http_query_has_nul("collection=ab%00cd"));
	ck_assert(http_query_has_nul("%00"));
	ck_assert(http_query_has_nul("a=1&key=id%00"));
	ck_assert(!http_query_has_nul("a=%0a&b=%100&c=%20"));
	ck_assert(!http_query_has_nul("a=%0"));
	ck_assert(!http_query_has_nul("a=%"));
	ck_assert(!http_query_has_nul(""));
}
END_TEST

START_TEST(paths_split_into_segments)
{
	char buf[64], *segs[4];

	ck_assert_int_eq(http_split_path("/api/jobs/x/events", buf, sizeof(buf), segs, 4), 4);
	ck_assert_str_eq(segs[0], "api");
	ck_assert_str_eq(segs[3], "events");
	ck_assert_int_eq(http_split_path("//api//jobs/", buf, sizeof(buf), segs, 4), 2);
	ck_assert_str_eq(segs[1], "jobs");
	ck_assert_int_eq(http_split_path("/", buf, sizeof(buf), segs, 4), 0);
	ck_assert_int_eq(http_split_path("", buf, sizeof(buf), segs, 4), 0);
	ck_assert_int_eq(http_split_path("/a/b/c/d/e", buf, sizeof(buf), segs, 4), -1);
	ck_assert_int_eq(http_split_path("/0123456789", buf, 8, segs, 4), -1);
}
END_TEST

static Suite *http_util_suite(void)
{
	Suite *s = suite_create("http_util");
	TCase *tc = tcase_create("helpers");

	tcase_add_test(tc, sqlstates_map_to_design_statuses);
	tcase_add_test(tc, tokens_are_redacted);
	tcase_add_test(tc, redaction_respects_the_buffer);
	tcase_add_test(tc, uuids);
	tcase_add_test(tc, integers_and_booleans);
	tcase_add_test(tc, paths_split_into_segments);
	tcase_add_test(tc, encoded_nul_in_query);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run_suite(http_util_suite());
}
