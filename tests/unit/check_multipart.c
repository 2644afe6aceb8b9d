/* check_multipart.c -- multipart/form-data: boundaries, file part, CRLF, hostile input. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"
#include "test_suite.h"

struct found {
	int rc;
	const char *data;
	size_t len;
	char fname[256];
};

static struct found parse(const char *boundary, const char *body, size_t len)
{
	struct found f = {0};

	f.rc = multipart_find_file(boundary, body, len, &f.data, &f.len, f.fname, sizeof(f.fname));
	if (f.rc == 0) { /* whatever it found lies inside the body */
		ck_assert(f.data >= body && f.data + f.len <= body + len);
	}
	return f;
}

#define PARSE(b, s) parse((b), (s), sizeof(s) - 1)

static void expect_file(struct found f, const char *data, const char *fname)
{
	ck_assert_int_eq(f.rc, 0);
	ck_assert_uint_eq(f.len, strlen(data));
	ck_assert(memcmp(f.data, data, f.len) == 0);
	ck_assert_str_eq(f.fname, fname);
}

START_TEST(boundary_from_content_type)
{
	char b[80];

	ck_assert_int_eq(multipart_boundary("multipart/form-data; boundary=XyZ", b, sizeof(b)), 0);
	ck_assert_str_eq(b, "XyZ");
	ck_assert_int_eq(multipart_boundary("Multipart/Form-Data;boundary=\"a b;c\"", b, sizeof(b)),
	                 0);
	ck_assert_str_eq(b, "a b;c");
	ck_assert_int_eq(
	    multipart_boundary("multipart/form-data; boundary=----WebKit12; charset=utf-8", b,
	                       sizeof(b)),
	    0);
	ck_assert_str_eq(b, "----WebKit12");
	ck_assert_int_eq(
	    multipart_boundary("multipart/form-data; charset=x; boundary=q", b, sizeof(b)), 0);
	ck_assert_str_eq(b, "q");
	/* Missing, empty, unterminated, too long, not form-data, no room. */
	ck_assert_int_eq(multipart_boundary("multipart/form-data", b, sizeof(b)), -1);
	ck_assert_int_eq(multipart_boundary("multipart/form-data; boundary=", b, sizeof(b)), -1);
	ck_assert_int_eq(multipart_boundary("multipart/form-data; boundary=\"abc", b, sizeof(b)),
	                 -1);
	ck_assert_int_eq(multipart_boundary("multipart/form-data; xboundary=abc", b, sizeof(b)),
	                 -1);
	ck_assert_int_eq(multipart_boundary("multipart/mixed; boundary=abc", b, sizeof(b)), -1);
	ck_assert_int_eq(multipart_boundary("text/csv", b, sizeof(b)), -1);
	ck_assert_int_eq(multipart_boundary(NULL, b, sizeof(b)), -1);
	ck_assert_int_eq(multipart_boundary("multipart/form-data; boundary=abcdef", b, 4), -1);
	{
		char ct[200];

		strcpy(ct, "multipart/form-data; boundary=");
		memset(ct + strlen(ct), 'a', 70);
		ct[30 + 70] = '\0';
		ck_assert_int_eq(multipart_boundary(ct, b, sizeof(b)), 0);
		ck_assert_uint_eq(strlen(b), 70);
		strcat(ct, "a");
		ck_assert_int_eq(multipart_boundary(ct, b, sizeof(b)), -1);
	}
}
END_TEST

START_TEST(file_part_among_fields)
{
	expect_file(PARSE("XyZ",
	                  "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n"
	                  "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; "
	                  "filename=\"pets.csv\"\r\nContent-Type: text/csv\r\n\r\n"
	                  "id\r\n7\r\n\r\n--XyZ--\r\n"),
	            "id\r\n7\r\n", "pets.csv");
	/* A preamble before the first boundary; an epilogue after the last. */
	expect_file(PARSE("b", "This is a preamble\r\n--b\r\nContent-Disposition: form-data; "
	                       "name=\"f\"; filename=\"x.csv\"\r\n\r\nA,B\r\n--b--\r\nepilogue"),
	            "A,B", "x.csv");
	/* Unquoted parameters, header names in any case. */
	expect_file(PARSE("b", "--b\r\ncontent-disposition: form-data; name=up; filename=u.ndjson"
	                       "\r\n\r\n{}\r\n--b--"),
	            "{}", "u.ndjson");
	/* A part named "file" without filename, when no part has a filename. */
	expect_file(PARSE("b", "--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nno\r\n"
	                       "--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nyes\r\n"
	                       "--b--\r\n"),
	            "yes", "");
	/* An empty file. */
	expect_file(PARSE("b", "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\""
	                       "\r\n\r\n\r\n--b--\r\n"),
	            "", "");
}
END_TEST

START_TEST(boundary_lookalikes_in_the_data)
{
	/* The boundary text inside the data, but not at a line start; a CRLF and
	 * dashes that do not complete the delimiter; binary bytes and NULs. */
	static const char body[] = "--zz\r\nContent-Disposition: form-data; name=\"file\"; "
	                           "filename=\"d.bin\"\r\n\r\n"
	                           "a--zz\r\n-\r\n--z\r\n--\r\n\0\xff--zzz"
	                           "\r\n--zz--\r\n";

	static const char data[] = "a--zz\r\n-\r\n--z\r\n--\r\n\0\xff--zzz";
	struct found f = parse("zz", body, sizeof(body) - 1);

	ck_assert_int_eq(f.rc, 0);
	ck_assert_uint_eq(f.len, sizeof(data) - 1);
	ck_assert(memcmp(f.data, data, f.len) == 0);
	ck_assert_str_eq(f.fname, "d.bin");
}
END_TEST

START_TEST(no_file_part_or_no_boundary)
{
	/* Only ordinary fields. */
	ck_assert_int_eq(PARSE("b", "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
	                            "--b--\r\n")
	                     .rc,
	                 -1);
	/* The boundary never appears, or appears only with the wrong name. */
	ck_assert_int_eq(PARSE("b", "just a raw csv\r\nid\r\n1\r\n").rc, -1);
	ck_assert_int_eq(PARSE("XyZ", "--Other\r\nContent-Disposition: form-data; name=\"file\"; "
	                              "filename=\"a\"\r\n\r\nx\r\n--Other--\r\n")
	                     .rc,
	                 -1);
	/* An empty body, and a body that is only the closing delimiter. */
	ck_assert_int_eq(parse("b", "", 0).rc, -1);
	ck_assert_int_eq(PARSE("b", "--b--\r\n").rc, -1);
	/* A file part that is never closed. */
	ck_assert_int_eq(PARSE("b", "--b\r\nContent-Disposition: form-data; name=\"file\"; "
	                            "filename=\"a\"\r\n\r\nunterminated")
	                     .rc,
	                 -1);
	/* Headers that never end. */
	ck_assert_int_eq(PARSE("b", "--b\r\nContent-Disposition: form-data; name=\"file\"").rc, -1);
	/* A boundary too long for any delimiter. */
	{
		char big[200];

		memset(big, 'b', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		ck_assert_int_eq(PARSE(big, "--b\r\n\r\n").rc, -1);
	}
}
END_TEST

START_TEST(crlf_handling)
{
	/* Bare LF line ends are not a browser's form: refused, never misread. */
	ck_assert_int_eq(PARSE("b", "--b\nContent-Disposition: form-data; name=\"file\"; "
	                            "filename=\"a\"\n\nx\n--b--\n")
	                     .rc,
	                 -1);
	/* Transport padding (spaces, tabs) after a delimiter is allowed (RFC 2046). */
	expect_file(PARSE("b", "--b \t\r\nContent-Disposition: form-data; name=\"file\"; "
	                       "filename=\"p\"\r\n\r\npad\r\n--b  \r\n"
	                       "Content-Disposition: form-data; name=\"z\"\r\n\r\n1\r\n--b--"),
	            "pad", "p");
	/* A part with no headers at all is skipped, the file after it found. */
	expect_file(PARSE("b", "--b\r\n\r\nnaked\r\n--b\r\nContent-Disposition: form-data; "
	                       "name=\"file\"; filename=\"n\"\r\n\r\nafter\r\n--b--\r\n"),
	            "after", "n");
	/* Data that keeps its own CRLFs and ends in one. */
	expect_file(PARSE("b", "--b\r\nContent-Disposition: form-data; name=\"file\"; "
	                       "filename=\"c\"\r\n\r\n\r\n\r\nx\r\n\r\n\r\n--b--\r\n"),
	            "\r\n\r\nx\r\n\r\n", "c");
	/* Garbage after a delimiter instead of CRLF or "--". */
	ck_assert_int_eq(PARSE("b", "--bX\r\nContent-Disposition: form-data; name=\"file\"; "
	                            "filename=\"a\"\r\n\r\nx\r\n--b--")
	                     .rc,
	                 -1);
}
END_TEST

START_TEST(huge_headers_and_names_are_bounded)
{
	size_t big = 200000, n = 0;
	char *body = malloc(big + 20000);
	struct found f;

	n += (size_t)sprintf(body + n, "--b\r\nX-Filler: ");
	memset(body + n, 'h', big);
	n += big;
	n += (size_t)sprintf(body + n, "\r\nContent-Disposition: form-data; name=\"");
	memset(body + n, 'n', 5000); /* longer than any name buffer */
	n += 5000;
	n += (size_t)sprintf(body + n, "\"; filename=\"");
	memset(body + n, 'f', 5000);
	n += 5000;
	n += (size_t)sprintf(body + n, "\"\r\n\r\nDATA\r\n--b--\r\n");
	f = parse("b", body, n);
	ck_assert_int_eq(f.rc, 0);
	ck_assert_uint_eq(f.len, 4);
	ck_assert(memcmp(f.data, "DATA", 4) == 0);
	ck_assert_uint_eq(strlen(f.fname), 255); /* cut to the caller's buffer */
	{
		char small[8];
		const char *d;
		size_t dl;

		ck_assert_int_eq(multipart_find_file("b", body, n, &d, &dl, small, sizeof(small)),
		                 0);
		ck_assert_str_eq(small, "fffffff");
	}
	free(body);
}
END_TEST

START_TEST(every_truncation_is_safe)
{
	static const char form[] =
	    "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n"
	    "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; "
	    "filename=\"pets.csv\"\r\n\r\nid\r\n7\r\n--XyZ--\r\n";
	size_t full = sizeof(form) - 1;

	/* Each prefix in its own allocation, so ASan sees any read past the end. */
	for (size_t len = 0; len <= full; len++) {
		char *copy = malloc(len > 0 ? len : 1);
		struct found f;

		memcpy(copy, form, len);
		f = parse("XyZ", copy, len);
		if (f.rc == 0) /* only once the file's closing delimiter is in */
			ck_assert_uint_eq(f.len,
			                  5); /* "id\r\n7": the last CRLF is the delimiter's */
		free(copy);
	}
}
END_TEST

static Suite *multipart_suite(void)
{
	Suite *s = suite_create("multipart");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, boundary_from_content_type);
	tcase_add_test(tc, file_part_among_fields);
	tcase_add_test(tc, boundary_lookalikes_in_the_data);
	tcase_add_test(tc, no_file_part_or_no_boundary);
	tcase_add_test(tc, crlf_handling);
	tcase_add_test(tc, huge_headers_and_names_are_bounded);
	tcase_add_test(tc, every_truncation_is_safe);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run_suite(multipart_suite());
}
