/* check_jsonutil.c -- ownership on success and failure (ASan catches a leak or double put). */
#include <check.h>
#include <stdlib.h>

#include "jsonutil.h"
#include "test_suite.h"

START_TEST(add_takes_ownership_on_success)
{
	struct json_object *obj = json_object_new_object();

	ck_assert_int_eq(jsonutil_add(obj, "k", json_object_new_string("v")), 0);
	ck_assert_str_eq(jsonutil_get_string(obj, "k"), "v");
	json_object_put(obj);
}
END_TEST

START_TEST(add_takes_ownership_on_failure)
{
	/* Adding to a non-object fails; the value must still be released. */
	ck_assert_int_eq(jsonutil_add(NULL, "k", json_object_new_string("v")), -1);
	struct json_object *arr = json_object_new_array();
	ck_assert_int_eq(jsonutil_add(arr, "k", json_object_new_string("v")), -1);
	json_object_put(arr);
}
END_TEST

START_TEST(append_owns)
{
	struct json_object *arr = json_object_new_array();

	ck_assert_int_eq(jsonutil_append(arr, json_object_new_int(1)), 0);
	ck_assert_int_eq(jsonutil_append(NULL, json_object_new_int(2)), -1);
	ck_assert_int_eq(json_object_array_length(arr), 1);
	json_object_put(arr);
}
END_TEST

START_TEST(getters_check_types)
{
	struct json_object *obj = json_tokener_parse("{\"s\":\"x\",\"n\":7,\"ns\":\"7\",\"b\":true}");
	int64_t n = 0;

	ck_assert_str_eq(jsonutil_get_string(obj, "s"), "x");
	ck_assert_ptr_null(jsonutil_get_string(obj, "n"));
	ck_assert_ptr_null(jsonutil_get_string(obj, "missing"));
	ck_assert(jsonutil_get_int64(obj, "n", &n) && n == 7);
	ck_assert(!jsonutil_get_int64(obj, "ns", &n));
	ck_assert(!jsonutil_get_int64(obj, "b", &n));
	json_object_put(obj);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("jsonutil");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, add_takes_ownership_on_success);
	tcase_add_test(tc, add_takes_ownership_on_failure);
	tcase_add_test(tc, append_owns);
	tcase_add_test(tc, getters_check_types);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
