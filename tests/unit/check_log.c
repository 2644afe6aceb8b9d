/* check_log.c -- every log line is one parseable JSON object under PIPE_BUF. */
#include <check.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonutil.h"
#include "log.h"
#include "test_suite.h"

static int fds[2];

static void setup(void)
{
	ck_assert_int_eq(pipe(fds), 0);
	log_init("test", LOG_INFO, fds[1]);
}

static void teardown(void)
{
	close(fds[0]);
	close(fds[1]);
}

/* Reads what was logged so far and parses it as exactly one line. */
static struct json_object *read_line(void)
{
	static char buf[LOG_MAX_LINE * 2];
	ssize_t n;
	struct json_object *obj;

	close(fds[1]);
	fds[1] = -1;
	n = read(fds[0], buf, sizeof(buf) - 1);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_int_le(n, LOG_MAX_LINE);
	ck_assert_msg(buf[n - 1] == '\n' && strchr(buf, '\n') == buf + n - 1,
		      "expected exactly one line: %s", buf);
	obj = json_tokener_parse(buf);
	ck_assert_msg(obj != NULL, "not JSON: %s", buf);
	return obj;
}

START_TEST(fields_are_typed_and_escaped)
{
	struct json_object *obj;
	int64_t n = 0;

	log_info("job.claimed", LF_STR("job_id", "a\"b\nc"), LF_I64("n", 42),
		 LF_BOOL("ok", true), LF_STR("none", NULL));
	obj = read_line();
	ck_assert_str_eq(jsonutil_get_string(obj, "event"), "job.claimed");
	ck_assert_str_eq(jsonutil_get_string(obj, "level"), "info");
	ck_assert_str_eq(jsonutil_get_string(obj, "component"), "test");
	ck_assert_str_eq(jsonutil_get_string(obj, "job_id"), "a\"b\nc");
	ck_assert(jsonutil_get_int64(obj, "n", &n) && n == 42);
	ck_assert(jsonutil_get_int64(obj, "pid", &n) && n == getpid());
	ck_assert_ptr_nonnull(jsonutil_get_string(obj, "ts"));
	ck_assert_int_eq(strlen(jsonutil_get_string(obj, "ts")), 24);
	json_object_put(obj);
}
END_TEST

START_TEST(below_level_writes_nothing)
{
	char buf[16];

	log_debug("quiet", LF_STR("x", "y"));
	close(fds[1]);
	fds[1] = -1;
	ck_assert_int_eq(read(fds[0], buf, sizeof(buf)), 0);
}
END_TEST

START_TEST(level_check_comes_before_arguments)
{
	int evaluated = 0;

	log_debug("quiet", LF_I64("x", ++evaluated));
	ck_assert_int_eq(evaluated, 0);
}
END_TEST

START_TEST(huge_fields_keep_the_line_atomic)
{
	char *big = malloc(20000);
	struct json_object *obj;

	memset(big, 'x', 19999);
	big[19999] = '\0';
	log_error("big", LF_STR("a", big), LF_STR("b", big), LF_STR("c", big), LF_STR("d", big),
		  LF_STR("e", big), LF_STR("f", big));
	obj = read_line();
	ck_assert_str_eq(jsonutil_get_string(obj, "event"), "big");
	ck_assert_ptr_nonnull(strstr(jsonutil_get_string(obj, "f"), "..."));
	json_object_put(obj);
	free(big);
}
END_TEST

START_TEST(cut_keeps_utf8_valid)
{
	char s[LOG_MAX_FIELD + 8];
	struct json_object *obj;

	/* 'é' is two bytes; place one across the cut point. */
	memset(s, 'a', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	s[LOG_MAX_FIELD - 1] = (char)0xC3;
	s[LOG_MAX_FIELD] = (char)0xA9;
	log_info("utf8", LF_STR("s", s));
	obj = read_line();
	ck_assert_ptr_nonnull(jsonutil_get_string(obj, "s"));
	ck_assert_int_eq(strlen(jsonutil_get_string(obj, "s")), LOG_MAX_FIELD - 1 + 3);
	json_object_put(obj);
}
END_TEST

START_TEST(levels_parse)
{
	enum log_level l;

	ck_assert_int_eq(log_level_parse("warn", &l), 0);
	ck_assert_int_eq(l, LOG_WARN);
	ck_assert_int_eq(log_level_parse("WARN", &l), -1);
	ck_assert_str_eq(log_level_name(LOG_ERROR), "error");
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, fields_are_typed_and_escaped);
	tcase_add_test(tc, below_level_writes_nothing);
	tcase_add_test(tc, level_check_comes_before_arguments);
	tcase_add_test(tc, huge_fields_keep_the_line_atomic);
	tcase_add_test(tc, cut_keeps_utf8_valid);
	tcase_add_test(tc, levels_parse);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run_suite(log_suite());
}
