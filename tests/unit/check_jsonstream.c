/* check_jsonstream.c -- NDJSON splitter, backup tokenizer, record parser: every split, resume
 * at every boundary, limits, file- and record-level errors (ASan catches json-c ownership). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonstream.h"
#include "test_suite.h"

#define MAX 1024 /* max_record_bytes unless a test says otherwise */

/* ==== Event recording ==== */

/* Every callback appends one line describing the event to a memstream, after
 * checking what must hold for any event (the bytes are the document's own). */
struct rec_log {
	FILE *f;    /* open_memstream over text/size */
	char *text; /* owned */
	size_t size;
	const char *doc; /* the whole file, for checking offsets and bytes */
	size_t doc_len;
	uint64_t base;     /* absolute offset of doc[0] */
	int stop_after;    /* stop (return 1) at this event count; 0 = never */
	int events;        /* events so far */
	uint64_t last_end; /* end_offset of the previous event */
};

static void log_open(struct rec_log *l, const char *doc, size_t len, uint64_t base)
{
	memset(l, 0, sizeof(*l));
	l->f = open_memstream(&l->text, &l->size);
	ck_assert_ptr_nonnull(l->f);
	l->doc = doc;
	l->doc_len = len;
	l->base = base;
	l->last_end = base;
}

/* Closes the stream; returns the text (caller frees). */
static char *log_close(struct rec_log *l)
{
	fclose(l->f);
	return l->text;
}

static void put_bytes(FILE *f, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7F && c != '\\')
			fputc(c, f);
		else
			fprintf(f, "\\x%02x", c);
	}
}

static int record_event(char kind, const struct jsonstream_record *rec, void *arg)
{
	struct rec_log *l = arg;

	ck_assert_uint_le(rec->start_offset, rec->end_offset);
	ck_assert_uint_ge(rec->start_offset, l->last_end);
	ck_assert_uint_le(rec->end_offset, l->base + l->doc_len);
	l->last_end = rec->end_offset;
	if (rec->data != NULL) {
		ck_assert_uint_le(rec->len, rec->end_offset - rec->start_offset);
		ck_assert(memcmp(rec->data, l->doc + (rec->start_offset - l->base), rec->len) == 0);
	}
	fprintf(l->f, "%c ", kind);
	if (rec->collection != NULL) {
		ck_assert_uint_eq(rec->line, 0);
		ck_assert(rec->collection[rec->collection_len] == '\0');
		put_bytes(l->f, rec->collection, rec->collection_len);
		fprintf(l->f, "#%llu", (unsigned long long)rec->index);
	} else {
		ck_assert_uint_eq(rec->index, 0);
		fprintf(l->f, "L%llu", (unsigned long long)rec->line);
	}
	fprintf(l->f, " [%llu,%llu) ", (unsigned long long)rec->start_offset,
	        (unsigned long long)rec->end_offset);
	if (rec->message != NULL)
		fprintf(l->f, "!%s", rec->message);
	else if (rec->data != NULL)
		put_bytes(l->f, rec->data, rec->len);
	else
		fprintf(l->f, "(null)");
	fputc('\n', l->f);
	return l->stop_after != 0 && ++l->events >= l->stop_after;
}

static int on_record(const struct jsonstream_record *rec, void *arg)
{
	if (rec->metadata) {
		ck_assert_uint_eq(rec->index, 0);
		return record_event('M', rec, arg);
	}
	ck_assert_ptr_nonnull(rec->data);
	ck_assert_ptr_null(rec->message);
	if (rec->collection != NULL) /* a backup element holds exactly its bytes */
		ck_assert_uint_eq(rec->len, rec->end_offset - rec->start_offset);
	return record_event('E', rec, arg);
}

static int on_error(const struct jsonstream_record *rec, void *arg)
{
	ck_assert_ptr_null(rec->data);
	ck_assert_ptr_nonnull(rec->message);
	ck_assert(!rec->metadata);
	return record_event('X', rec, arg);
}

/* ==== Running the readers ==== */

/* Feeds doc[0..len) to a backup reader, cut at the sorted offsets cuts[0..ncuts)
 * (step > 0: in pieces of step bytes instead), then finishes. Returns the event
 * log followed by the outcome ("= ok" or "= error: ..."); caller frees. */
static char *run_backup_cuts(const char *doc, size_t len, size_t max,
                             const struct backup_position *resume, const size_t *cuts, size_t ncuts,
                             size_t step)
{
	struct rec_log l;
	struct backup_reader *r;
	uint64_t base = resume ? resume->byte_offset : 0;
	char err[256] = "";
	int rc = JSONSTREAM_OK;
	size_t at = 0, i = 0;

	log_open(&l, doc, len, base);
	r = backup_reader_new(max, resume, on_record, on_error, &l);
	ck_assert_ptr_nonnull(r);
	while (rc == JSONSTREAM_OK && at < len) {
		size_t next =
		    step ? (at + step < len ? at + step : len) : (i < ncuts ? cuts[i++] : len);
		rc = backup_reader_feed(r, doc + at, next - at, err, sizeof(err));
		at = next;
	}
	if (rc == JSONSTREAM_OK)
		rc = backup_reader_finish(r, err, sizeof(err));
	backup_reader_free(r);
	fprintf(l.f, "= %s%s\n",
	        rc == JSONSTREAM_OK        ? "ok"
	        : rc == JSONSTREAM_STOPPED ? "stopped"
	                                   : "error: ",
	        rc == JSONSTREAM_ERROR ? err : "");
	return log_close(&l);
}

static char *run_backup(const char *doc, size_t len, size_t max)
{
	return run_backup_cuts(doc, len, max, NULL, NULL, 0, 0);
}

static char *run_ndjson_cuts(const char *doc, size_t len, size_t max, uint64_t base, uint64_t line,
                             const size_t *cuts, size_t ncuts, size_t step)
{
	struct rec_log l;
	struct ndjson_reader *r;
	char err[256] = "";
	int rc = JSONSTREAM_OK;
	size_t at = 0, i = 0;

	log_open(&l, doc, len, base);
	r = ndjson_reader_new(max, base, line, on_record, on_error, &l);
	ck_assert_ptr_nonnull(r);
	while (rc == JSONSTREAM_OK && at < len) {
		size_t next =
		    step ? (at + step < len ? at + step : len) : (i < ncuts ? cuts[i++] : len);
		rc = ndjson_reader_feed(r, doc + at, next - at, err, sizeof(err));
		at = next;
	}
	if (rc == JSONSTREAM_OK)
		rc = ndjson_reader_finish(r, err, sizeof(err));
	ndjson_reader_free(r);
	fprintf(l.f, "= %s%s\n",
	        rc == JSONSTREAM_OK        ? "ok"
	        : rc == JSONSTREAM_STOPPED ? "stopped"
	                                   : "error: ",
	        rc == JSONSTREAM_ERROR ? err : "");
	return log_close(&l);
}

static char *run_ndjson(const char *doc, size_t len, size_t max)
{
	return run_ndjson_cuts(doc, len, max, 0, 1, NULL, 0, 0);
}

/* Whole, every two-way split, every three-way split of short (<= 40 bytes) documents, and
 * 1-, 2- and 3-byte feeding all give the same events. Returns the whole run. */
static char *all_splits(bool backup, const char *doc, size_t len, size_t max)
{
	char *whole = backup ? run_backup(doc, len, max) : run_ndjson(doc, len, max);

	for (size_t i = 0; i <= len; i++) {
		for (size_t j = i; j <= len; j += (len <= 40 ? 1 : len)) {
			size_t cuts[2] = {i, j};
			char *got = backup ? run_backup_cuts(doc, len, max, NULL, cuts, 2, 0)
			                   : run_ndjson_cuts(doc, len, max, 0, 1, cuts, 2, 0);
			if (strcmp(got, whole) != 0)
				ck_abort_msg("cut at %zu,%zu:\n%s\nwhole:\n%s", i, j, got, whole);
			free(got);
		}
	}
	for (size_t step = 1; step <= 3; step++) {
		char *got = backup ? run_backup_cuts(doc, len, max, NULL, NULL, 0, step)
		                   : run_ndjson_cuts(doc, len, max, 0, 1, NULL, 0, step);
		if (strcmp(got, whole) != 0)
			ck_abort_msg("step %zu:\n%s\nwhole:\n%s", step, got, whole);
		free(got);
	}
	return whole;
}

static void expect_backup(const char *doc, size_t max, const char *want)
{
	char *got = all_splits(true, doc, strlen(doc), max);

	ck_assert_str_eq(got, want);
	free(got);
}

static void expect_ndjson_len(const char *doc, size_t len, size_t max, const char *want)
{
	char *got = all_splits(false, doc, len, max);

	ck_assert_str_eq(got, want);
	free(got);
}

static void expect_ndjson(const char *doc, size_t max, const char *want)
{
	expect_ndjson_len(doc, strlen(doc), max, want);
}

/* The file-level error of doc (any split), which must contain needle. */
static void expect_backup_error(const char *doc, size_t max, const char *needle)
{
	char *got = all_splits(true, doc, strlen(doc), max);
	char *eq = strstr(got, "= error: ");

	if (eq == NULL || strstr(eq, needle) == NULL)
		ck_abort_msg("want error containing \"%s\" for %s, got:\n%s", needle, doc, got);
	free(got);
}

/* ==== Backup ==== */

static const char MULTI[] =
    "{\"metadata\":{\"v\":1,\"tags\":[\"a\",\"]\"]},\n"
    " \"users\" : [ {\"id\":1,\"n\":\"a\\\"b\"} , {\"id\":2,\"s\":\"}]\\\\\"},\n"
    "   {\"id\":3,\"x\":[[],{}]} ],\n"
    " \"empty\":[],\n"
    " \"version\": 3,\n"
    " \"b\\u0075siness\\\"es\":[{\"id\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"},[1],\"s\",12.5e3,"
    "true,null],\n"
    " \"users\":[{\"id\":4}]\n"
    "}\n";

START_TEST(backup_multi_collection)
{
	expect_backup(MULTI, MAX,
	              "M metadata#0 [12,36) {\"v\":1,\"tags\":[\"a\",\"]\"]}\n"
	              "E users#0 [51,70) {\"id\":1,\"n\":\"a\\x5c\"b\"}\n"
	              "E users#1 [73,92) {\"id\":2,\"s\":\"}]\\x5c\\x5c\"}\n"
	              "E users#2 [97,117) {\"id\":3,\"x\":[[],{}]}\n"
	              "M version#0 [146,147) 3\n"
	              "E business\"es#0 [171,189) "
	              "{\"id\":\"\\xc3\\xa9\\xe2\\x82\\xac\\xf0\\x9f\\x98\\x80\"}\n"
	              "E business\"es#1 [190,193) [1]\n"
	              "E business\"es#2 [194,197) \"s\"\n"
	              "E business\"es#3 [198,204) 12.5e3\n"
	              "E business\"es#4 [205,209) true\n"
	              "E business\"es#5 [210,214) null\n"
	              "E users#0 [227,235) {\"id\":4}\n"
	              "= ok\n");
}
END_TEST

/* Offsets above were written by hand; they must point at the element text. */
START_TEST(backup_offsets_point_at_elements)
{
	ck_assert(memcmp(MULTI + 51, "{\"id\":1", 7) == 0);
	ck_assert(memcmp(MULTI + 171, "{\"id\":\"", 7) == 0);
	ck_assert(memcmp(MULTI + 227, "{\"id\":4}", 8) == 0);
}
END_TEST

START_TEST(backup_empty_things)
{
	expect_backup("{}", MAX, "= ok\n");
	expect_backup(" \r\n\t{ }\n\n", MAX, "= ok\n");
	expect_backup("{\"a\":[]}", MAX, "= ok\n");
	expect_backup("{\"a\":[ ],\"b\":[\n]}", MAX, "= ok\n");
	expect_backup("{\"\":[{}]}", MAX, "E #0 [5,7) {}\n= ok\n");
	expect_backup("{\"a\":[{},{}]}", MAX, "E a#0 [6,8) {}\nE a#1 [9,11) {}\n= ok\n");
}
END_TEST

START_TEST(backup_metadata_kinds)
{
	expect_backup(
	    "{\"s\":\"x,]}\",\"n\":-1.5,\"t\":true,\"z\":null,\"o\":{\"a\":[1]},\"c\":[2]}", MAX,
	    "M s#0 [5,11) \"x,]}\"\n"
	    "M n#0 [16,20) -1.5\n"
	    "M t#0 [25,29) true\n"
	    "M z#0 [34,38) null\n"
	    "M o#0 [43,52) {\"a\":[1]}\n"
	    "E c#0 [58,59) 2\n"
	    "= ok\n");
	/* Oversized metadata is not an error: data is NULL. */
	expect_backup("{\"meta\":{\"long\":\"0123456789\"},\"u\":[{}]}", 10,
	              "M meta#0 [8,29) (null)\n"
	              "E u#0 [35,37) {}\n"
	              "= ok\n");
}
END_TEST

START_TEST(backup_escaped_keys)
{
	expect_backup("{\"us\\u0065rs\":[1],\"a\\\\b\":[2],\"q\\\"\":[3],\"\\ud83d\\ude00\":[4],"
	              "\"n\\u0000\":[5]}",
	              MAX,
	              "E users#0 [15,16) 1\n"
	              "E a\\x5cb#0 [26,27) 2\n"
	              "E q\"#0 [36,37) 3\n"
	              "E \\xf0\\x9f\\x98\\x80#0 [55,56) 4\n"
	              "E n\\x00#0 [69,70) 5\n"
	              "= ok\n");
	expect_backup_error("{\"a\\x\":[]}", MAX, "invalid member name at byte 1");
}
END_TEST

START_TEST(backup_strings_with_structure)
{
	expect_backup("{\"c\":[{\"a\":\"{[\\\"]}\\\\\"},\"]\",\"\\\\\",\"\\\"\",{\"}\":\"[\"}]}",
	              MAX,
	              "E c#0 [6,22) {\"a\":\"{[\\x5c\"]}\\x5c\\x5c\"}\n"
	              "E c#1 [23,26) \"]\"\n"
	              "E c#2 [27,31) \"\\x5c\\x5c\"\n"
	              "E c#3 [32,36) \"\\x5c\"\"\n"
	              "E c#4 [37,46) {\"}\":\"[\"}\n"
	              "= ok\n");
}
END_TEST

START_TEST(backup_duplicate_collections)
{
	expect_backup("{\"a\":[1],\"a\":[2,3]}", MAX,
	              "E a#0 [6,7) 1\nE a#0 [14,15) 2\nE a#1 [16,17) 3\n= ok\n");
}
END_TEST

START_TEST(backup_bom)
{
	expect_backup("\xef\xbb\xbf{\"a\":[{}]}", MAX, "E a#0 [9,11) {}\n= ok\n");
	expect_backup_error("\xef\xbb{}", MAX, "expected '{' at byte 0");
	expect_backup_error(" \xef\xbb\xbf{}", MAX, "expected '{' at byte 1");
}
END_TEST

START_TEST(backup_oversized_element)
{
	/* max 10: the 11-byte element is skipped, its neighbours are intact. */
	expect_backup(
	    "{\"u\":[{\"a\":\"1\"},{\"a\":\"123\"},{\"b\":2},\"0123456789\",\"01234567\"]}", 10,
	    "E u#0 [6,15) {\"a\":\"1\"}\n"
	    "X u#1 [16,27) !record over max_record_bytes (10 bytes)\n"
	    "E u#2 [28,35) {\"b\":2}\n"
	    "X u#3 [36,48) !record over max_record_bytes (10 bytes)\n"
	    "E u#4 [49,59) \"01234567\"\n"
	    "= ok\n");
	/* A scalar is measured the same way, even when its end is only known
	 * from the next feed. */
	expect_backup("{\"u\":[12345678901,1234567890]}", 10,
	              "X u#0 [6,17) !record over max_record_bytes (10 bytes)\n"
	              "E u#1 [18,28) 1234567890\n"
	              "= ok\n");
}
END_TEST

/* Memory: a 1 MiB element with max 100 is never kept (ASan would not tell,
 * but the event and a small max prove it is not an error to hold it). */
START_TEST(backup_oversized_large)
{
	size_t n = 1 << 20;
	char *doc = malloc(n + 64);
	size_t len = 0;

	len += (size_t)sprintf(doc, "{\"big\":[\"");
	memset(doc + len, 'x', n);
	len += n;
	len += (size_t)sprintf(doc + len, "\",{\"ok\":1}]}");
	char *got = run_backup_cuts(doc, len, 100, NULL, NULL, 0, 4096);
	char want[256];
	snprintf(want, sizeof(want),
	         "X big#0 [8,%zu) !record over max_record_bytes (100 bytes)\n"
	         "E big#1 [%zu,%zu) {\"ok\":1}\n= ok\n",
	         (size_t)8 + n + 2, (size_t)8 + n + 3, (size_t)8 + n + 11);
	ck_assert_str_eq(got, want);
	free(got);
	free(doc);
}
END_TEST

static char *nested(const char *head, int depth, const char *tail)
{
	size_t hl = strlen(head), tl = strlen(tail);
	char *s = malloc(hl + 2 * (size_t)depth + tl + 1);
	char *p = s;

	memcpy(p, head, hl);
	p += hl;
	for (int i = 0; i < depth; i++)
		*p++ = i % 2 ? '[' : '{';
	for (int i = depth - 1; i >= 0; i--)
		*p++ = i % 2 ? ']' : '}';
	memcpy(p, tail, tl + 1);
	return s;
}

/* Depth counting only needs brackets, so nested() alternates '{' and '['
 * without keys: the tokenizer leaves grammar inside elements to json-c. */
START_TEST(backup_depth_limit)
{
	/* 1 (top) + 1 (array) + 254 = 256: fine. */
	char *ok = nested("{\"a\":[", 254, "]}");
	char *bad = nested("{\"a\":[", 255, "]}");
	char *meta_ok = nested("{\"m\":", 255, "}");
	char *meta_bad = nested("{\"m\":", 256, "}");
	char *got = run_backup(ok, strlen(ok), 4096);

	ck_assert_ptr_nonnull(strstr(got, "E a#0 [6,514)"));
	ck_assert_ptr_nonnull(strstr(got, "= ok\n"));
	free(got);
	got = run_backup_cuts(bad, strlen(bad), 4096, NULL, NULL, 0, 1);
	ck_assert_str_eq(got, "= error: nesting deeper than 256 at byte 260\n");
	free(got);
	got = run_backup(meta_ok, strlen(meta_ok), 4096);
	ck_assert_ptr_nonnull(strstr(got, "= ok\n"));
	free(got);
	got = run_backup(meta_bad, strlen(meta_bad), 4096);
	ck_assert_str_eq(got, "= error: nesting deeper than 256 at byte 260\n");
	free(got);
	free(ok);
	free(bad);
	free(meta_ok);
	free(meta_bad);
}
END_TEST

START_TEST(backup_file_errors)
{
	expect_backup_error("", MAX, "the file is empty");
	expect_backup_error("  \n", MAX, "unexpected end of file at byte 3: expected '{'");
	expect_backup_error("[{\"a\":1}]", MAX, "expected '{' at byte 0");
	expect_backup_error("  42", MAX, "expected '{' at byte 2");
	expect_backup_error("garbage", MAX, "expected '{' at byte 0");
	expect_backup_error("{", MAX,
	                    "unexpected end of file at byte 1 inside the top-level object");
	expect_backup_error("{\"users\":[{\"id\":1},{\"id\"", MAX,
	                    "unexpected end of file at byte 24 inside collection \"users\"");
	expect_backup_error("{\"users\":[{\"id\":1}", MAX,
	                    "unexpected end of file at byte 18 inside collection \"users\"");
	expect_backup_error("{\"users\":[", MAX, "inside collection \"users\"");
	expect_backup_error("{\"users\":[1,", MAX, "inside collection \"users\"");
	expect_backup_error("{\"m\":{\"a\":", MAX,
	                    "unexpected end of file at byte 10 inside member \"m\"");
	expect_backup_error("{\"m\":12", MAX, "inside member \"m\"");
	expect_backup_error("{\"us", MAX, "inside a member name");
	expect_backup_error("{\"m\"", MAX, "after member \"m\"");
	expect_backup_error("{\"m\":", MAX, "after member \"m\"");
	expect_backup_error("{\"a\":[]", MAX, "inside the top-level object");
	expect_backup_error("{} x", MAX, "unexpected data at byte 3 after the top-level object");
	expect_backup_error("{}{}", MAX, "unexpected data at byte 2 after the top-level object");
	expect_backup_error("{\"a\":[]}]", MAX, "unexpected data at byte 8");
	expect_backup_error("{\"a\" 1}", MAX, "expected ':' at byte 5 after member \"a\"");
	expect_backup_error("{\"a\":[1 2]}", MAX,
	                    "expected ',' or ']' at byte 8 in collection \"a\"");
	expect_backup_error("{\"a\":[1,]}", MAX,
	                    "expected a value at byte 8 inside collection \"a\"");
	expect_backup_error("{\"a\":[,1]}", MAX,
	                    "expected a value at byte 6 inside collection \"a\"");
	expect_backup_error("{\"a\":[]1}", MAX, "expected ',' or '}' at byte 7");
	expect_backup_error("{\"a\":[],}", MAX, "expected '\"' at byte 8");
	expect_backup_error("{,}", MAX, "expected '\"' or '}' at byte 1");
	expect_backup_error("{\"a\":}", MAX, "expected a value at byte 5 after member \"a\"");
	expect_backup_error("{\"a\":[{\"b\":[1}]}", MAX,
	                    "mismatched '}' at byte 13 (expected ']')");
	expect_backup_error("{\"a\":{]}", MAX, "mismatched ']' at byte 6 (expected '}')");
	/* Names in messages are printable ASCII only. */
	expect_backup_error("{\"\xc3\xa9\\n\":[", MAX, "inside collection \"???\"");
}
END_TEST

/* Resume at every element boundary (end_offset of element i with index i+1,
 * and the same past the whitespace that follows) gives exactly the events
 * after it, whole and fed byte by byte or 2 at a time. */
static void check_resume_everywhere(const char *doc, size_t max)
{
	size_t len = strlen(doc);
	char *whole = run_backup(doc, len, max);
	const char *line = whole;
	int checked = 0;

	while (*line != '=') {
		const char *nl = strchr(line, '\n');
		char name[64];
		unsigned long long idx, start, end;

		if (line[0] == 'E' || line[0] == 'X') {
			ck_assert_int_eq(
			    sscanf(line + 2, "%63[^#]#%llu [%llu,%llu)", name, &idx, &start, &end),
			    4);
			uint64_t offs[2] = {end, end};
			while (offs[1] < len && strchr(" \t\r\n", doc[offs[1]]))
				offs[1]++;
			for (int c = 0; c < 2; c++) {
				struct backup_position pos = {offs[c], name, strlen(name), idx + 1};
				for (size_t step = 0; step <= 2; step++) {
					char *got = run_backup_cuts(doc + pos.byte_offset,
					                            len - pos.byte_offset, max,
					                            &pos, NULL, 0, step);
					if (strcmp(got, nl + 1) != 0)
						ck_abort_msg("resume at %llu (%s#%llu) step "
						             "%zu:\n%s\nwant:\n%s",
						             (unsigned long long)pos.byte_offset,
						             name,
						             (unsigned long long)pos.element_index,
						             step, got, nl + 1);
					free(got);
				}
			}
			checked++;
		}
		line = nl + 1;
	}
	ck_assert_int_gt(checked, 0);
	free(whole);
}

START_TEST(backup_resume_every_boundary)
{
	check_resume_everywhere(MULTI, MAX);
	check_resume_everywhere(
	    "{\"a\":[1 , 2\n,\"x\" ,{\"k\":[]}],\"m\":{},\"b\":[[3],[4]] ,\"c\":[]}", MAX);
	check_resume_everywhere(
	    "{\"u\":[{\"a\":\"1\"},{\"a\":\"123\"},{\"b\":2},\"0123456789\",\"01234567\"]}", 10);
}
END_TEST

START_TEST(backup_resume_edges)
{
	/* Index 0: just past the '['. */
	struct backup_position first = {6, "a", 1, 0};
	char *got = run_backup_cuts(" 1, 2]}", 7, MAX, &first, NULL, 0, 0);
	ck_assert_str_eq(got, "E a#0 [7,8) 1\nE a#1 [10,11) 2\n= ok\n");
	free(got);
	struct backup_position empty = {6, "a", 1, 0};
	got = run_backup_cuts("],\"b\":[3]}", 10, MAX, &empty, NULL, 0, 0);
	ck_assert_str_eq(got, "E b#0 [13,14) 3\n= ok\n");
	free(got);
	/* A position that does not match the file is a file-level error. */
	struct backup_position wrong = {0, "a", 1, 0};
	got = run_backup_cuts(", 1]}", 5, MAX, &wrong, NULL, 0, 0);
	ck_assert_str_eq(got, "= error: expected a value at byte 0 inside collection \"a\"\n");
	free(got);
	struct backup_position at_elem = {100, "a", 1, 3};
	got = run_backup_cuts("{\"x\":1}]}", 9, MAX, &at_elem, NULL, 0, 0);
	ck_assert_str_eq(got, "= error: expected ',' or ']' at byte 100 in collection \"a\"\n");
	free(got);
}
END_TEST

START_TEST(backup_stop)
{
	struct rec_log l;
	char err[128];
	const char *doc = "{\"a\":[1,2,3]}";
	struct backup_reader *r;

	log_open(&l, doc, strlen(doc), 0);
	l.stop_after = 2;
	r = backup_reader_new(MAX, NULL, on_record, on_error, &l);
	ck_assert_int_eq(backup_reader_feed(r, doc, strlen(doc), err, sizeof(err)),
	                 JSONSTREAM_STOPPED);
	ck_assert_int_eq(backup_reader_feed(r, "x", 1, err, sizeof(err)), JSONSTREAM_ERROR);
	ck_assert_int_eq(backup_reader_finish(r, err, sizeof(err)), JSONSTREAM_ERROR);
	backup_reader_free(r);
	char *got = log_close(&l);
	ck_assert_str_eq(got, "E a#0 [6,7) 1\nE a#1 [8,9) 2\n");
	free(got);
}
END_TEST

START_TEST(backup_bad_args)
{
	struct backup_position nameless = {0, NULL, 0, 0};

	ck_assert_ptr_null(backup_reader_new(0, NULL, NULL, NULL, NULL));
	ck_assert_ptr_null(
	    backup_reader_new(JSONSTREAM_MAX_RECORD_LIMIT + 1, NULL, NULL, NULL, NULL));
	ck_assert_ptr_null(backup_reader_new(MAX, &nameless, NULL, NULL, NULL));
	backup_reader_free(NULL);
	/* NULL callbacks are allowed. */
	struct backup_reader *r = backup_reader_new(MAX, NULL, NULL, NULL, NULL);
	ck_assert_int_eq(backup_reader_feed(r, "{\"a\":[1]}", 9, NULL, 0), JSONSTREAM_OK);
	ck_assert_int_eq(backup_reader_finish(r, NULL, 0), JSONSTREAM_OK);
	backup_reader_free(r);
}
END_TEST

/* The intended use: tokenizer + jsonstream_parse_object per element. */
struct parse_count {
	struct json_tokener *tok;
	int ok, bad;
	char last_err[128];
};

static int parse_element(const struct jsonstream_record *rec, void *arg)
{
	struct parse_count *pc = arg;
	struct json_object *obj;

	if (rec->metadata)
		return 0;
	if (jsonstream_parse_object_tok(pc->tok, rec->data, rec->len, &obj, pc->last_err,
	                                sizeof(pc->last_err)) == 0) {
		pc->ok++;
		json_object_put(obj);
	} else {
		ck_assert_ptr_null(obj);
		pc->bad++;
	}
	return 0;
}

START_TEST(backup_with_parser)
{
	struct parse_count pc = {jsonstream_tokener_new(), 0, 0, ""};
	struct backup_reader *r = backup_reader_new(MAX, NULL, parse_element, NULL, &pc);
	char err[128];

	ck_assert_int_eq(backup_reader_feed(r, MULTI, strlen(MULTI), err, sizeof(err)),
	                 JSONSTREAM_OK);
	ck_assert_int_eq(backup_reader_finish(r, err, sizeof(err)), JSONSTREAM_OK);
	ck_assert_int_eq(pc.ok, 5);  /* 4 users, 1 business */
	ck_assert_int_eq(pc.bad, 5); /* [1], "s", 12.5e3, true, null */
	ck_assert_str_eq(pc.last_err, "not a JSON object (got null)");
	backup_reader_free(r);
	json_tokener_free(pc.tok);
}
END_TEST

/* ==== Record parser ==== */

static void expect_parse_ok(const char *s, size_t len)
{
	struct json_object *obj = NULL;
	char err[128] = "";

	if (jsonstream_parse_object(s, len, &obj, err, sizeof(err)) != 0)
		ck_abort_msg("parse of \"%s\" failed: %s", s, err);
	ck_assert(json_object_is_type(obj, json_type_object));
	json_object_put(obj);
}

static void expect_parse_err(const char *s, size_t len, const char *want)
{
	struct json_object *obj = (struct json_object *)&obj; /* must be reset to NULL */
	char err[128] = "";

	ck_assert_int_eq(jsonstream_parse_object(s, len, &obj, err, sizeof(err)), -1);
	ck_assert_ptr_null(obj);
	if (strstr(err, want) == NULL)
		ck_abort_msg("parse of \"%s\": want \"%s\", got \"%s\"", s, want, err);
}

#define OK(s)     expect_parse_ok((s), sizeof(s) - 1)
#define BAD(s, w) expect_parse_err((s), sizeof(s) - 1, (w))

START_TEST(parse_objects)
{
	OK("{}");
	OK(" \t{\"a\":1}\r\n ");
	OK("{\"a\":[1,-0.5e+3,true,false,null,{\"b\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}]}");
	OK("{\"e\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"}");
	OK("{\"s\":\"\\ud83d\\ude00\",\"t\":\"\\u00e9\"}");
	OK("{\"not nul\":\"\\\\u0000\"}"); /* an escaped backslash, then text */
	OK("{\"a\":0,\"b\":-0,\"c\":1E5}");
}
END_TEST

START_TEST(parse_record_errors)
{
	BAD("[1,2]", "not a JSON object (got array)");
	BAD("123", "not a JSON object (got int)");
	BAD("\"s\"", "not a JSON object (got string)");
	BAD("null", "not a JSON object (got null)");
	BAD("", "not valid JSON: unexpected end of data");
	BAD("{\"a\":1", "not valid JSON: unexpected end of data");
	BAD("{\"a\":1}x", "not valid JSON: unexpected character at byte 7");
	BAD("{\"a\":1} {}", "not valid JSON: unexpected character at byte 8");
	BAD("{\"a\":1,}", "not valid JSON");
	BAD("{'a':1}", "not valid JSON: unexpected character at byte 1");
	BAD("{\"a\":NaN}", "not valid JSON: unexpected character at byte 5");
	BAD("{\"a\":Infinity}", "not valid JSON");
	BAD("{\"a\":-Infinity}", "not valid JSON: bad number at byte 5");
	BAD("{\"a\":01}", "not valid JSON: bad number at byte 5");
	BAD("{\"a\":1.}", "not valid JSON: bad number");
	BAD("{\"a\":.5}", "not valid JSON");
	BAD("{\"a\":tru}", "not valid JSON: unexpected token at byte 5");
	BAD("{\"a\":truex}", "not valid JSON: unexpected token");
	BAD("{\"a\":\"x\ty\"}", "control character in a string at byte 7");
	BAD("{\"a\":\"\\x\"}", "invalid escape at byte 6");
	BAD("{\"a\":\"\\u12\"}", "invalid \\u escape at byte 6");
	BAD("{\"a\":\"abc}", "unterminated string");
	BAD("{\"a\":\"abc\\", "unterminated string");
	BAD("{\"a\":\"\\ud800\"}", "unpaired surrogate escape at byte 6");
	BAD("{\"a\":\"\\ude00\\ud800\"}", "unpaired surrogate escape at byte 6");
	BAD("{\"a\":\"\\ud800\\u0041\"}", "unpaired surrogate");
}
END_TEST

START_TEST(parse_nul_and_utf8)
{
	BAD("{\"a\":\"\\u0000\"}", "\\u0000 (NUL) in a string at byte 6");
	BAD("{\"a\\u0000\":1}", "\\u0000 (NUL) in a string at byte 3");
	BAD("{\"a\":\"x\0\"}", "NUL byte at byte 7");
	BAD("{\"a\":1}\0", "NUL byte at byte 7");
	BAD("{\"a\":\"\xc0\x80\"}", "invalid UTF-8 at byte 6");     /* overlong NUL */
	BAD("{\"a\":\"\xe0\x80\xaf\"}", "invalid UTF-8 at byte 6"); /* overlong */
	BAD("{\"a\":\"\xed\xa0\x80\"}", "invalid UTF-8 at byte 6"); /* surrogate */
	BAD("{\"a\":\"\xf4\x90\x80\x80\"}", "invalid UTF-8");       /* > U+10FFFF */
	BAD("{\"a\":\"\xf5\x80\x80\x80\"}", "invalid UTF-8");
	BAD("{\"a\":\"\x80\"}", "invalid UTF-8 at byte 6"); /* stray continuation */
	BAD("{\"a\":\"\xc3\"}", "invalid UTF-8 at byte 6"); /* cut short */
	BAD("{\"a\":\"\xe2\x82\"}", "invalid UTF-8");
	BAD("{\"a\":1,\xff:2}", "invalid UTF-8 at byte 7");
	BAD("{\"a\":1,\xc3\xa9:2}", "not valid JSON: unexpected character at byte 7");
}
END_TEST

START_TEST(parse_depth)
{
	/* Objects nested 256 deep are fine, 257 is a record error. */
	for (int depth = 255; depth <= 257; depth++) {
		char *s = malloc((size_t)depth * 8 + 8);
		size_t n = 0;
		struct json_object *obj;
		char err[128];
		for (int i = 0; i < depth - 1; i++)
			n += (size_t)sprintf(s + n, "{\"a\":");
		n += (size_t)sprintf(s + n, "{}");
		for (int i = 0; i < depth - 1; i++)
			s[n++] = '}';
		int rc = jsonstream_parse_object(s, n, &obj, err, sizeof(err));
		if (depth <= 256) {
			ck_assert_int_eq(rc, 0);
			json_object_put(obj);
		} else {
			ck_assert_int_eq(rc, -1);
			ck_assert_str_eq(err, "nesting deeper than 256");
		}
		free(s);
	}
}
END_TEST

START_TEST(parse_tokener_reuse)
{
	struct json_tokener *tok = jsonstream_tokener_new();
	struct json_object *obj;
	char err[128];

	ck_assert_int_eq(jsonstream_parse_object_tok(tok, "{\"a\":[", 6, &obj, err, sizeof(err)),
	                 -1);
	ck_assert_int_eq(jsonstream_parse_object_tok(tok, "{\"b\":2}", 7, &obj, err, sizeof(err)),
	                 0);
	ck_assert_int_eq(json_object_object_length(obj), 1);
	json_object_put(obj);
	ck_assert_int_eq(jsonstream_parse_object_tok(tok, "[]", 2, &obj, err, sizeof(err)), -1);
	ck_assert_int_eq(jsonstream_parse_object_tok(tok, "{\"c\":3}", 7, &obj, err, sizeof(err)),
	                 0);
	json_object_put(obj);
	json_tokener_free(tok);
}
END_TEST

START_TEST(valid_text)
{
	ck_assert(jsonstream_valid_text("users", 5));
	ck_assert(jsonstream_valid_text("", 0));
	ck_assert(jsonstream_valid_text("\xc3\xa9\xf0\x9f\x98\x80", 6));
	ck_assert(!jsonstream_valid_text("a\0b", 3));
	ck_assert(!jsonstream_valid_text("\xc3", 1));
	ck_assert(!jsonstream_valid_text("\xed\xb0\x80", 3));
}
END_TEST

/* ==== NDJSON ==== */

START_TEST(ndjson_lines)
{
	expect_ndjson("{\"a\":1}\n{\"b\":2}\r\n\n   \r\n{\"c\":3}", MAX,
	              "E L1 [0,8) {\"a\":1}\n"
	              "E L2 [8,17) {\"b\":2}\n"
	              "E L5 [23,30) {\"c\":3}\n"
	              "= ok\n");
	expect_ndjson("{}\n", MAX, "E L1 [0,3) {}\n= ok\n");
	expect_ndjson("{}\r\n", MAX, "E L1 [0,4) {}\n= ok\n");
	expect_ndjson("{}\r", MAX, "E L1 [0,3) {}\n= ok\n");
	expect_ndjson("", MAX, "= ok\n");
	expect_ndjson("\n\n \t\r\n\r", MAX, "= ok\n");
	/* The splitter does not judge content; CR inside a line stays. */
	expect_ndjson("a\rb\nnot json\n", MAX, "E L1 [0,4) a\\x0db\nE L2 [4,13) not json\n= ok\n");
	expect_ndjson("\xef\xbb\xbf{\"a\":1}\n{}", MAX,
	              "E L1 [3,11) {\"a\":1}\nE L2 [11,13) {}\n= ok\n");
	static const char nul[] = "{\"s\":\"\xe2\x82\xac\"}\n{\"n\":\"\0\"}\n";
	expect_ndjson_len(nul, sizeof(nul) - 1, MAX,
	                  "E L1 [0,12) {\"s\":\"\\xe2\\x82\\xac\"}\n"
	                  "E L2 [12,22) {\"n\":\"\\x00\"}\n"
	                  "= ok\n");
}
END_TEST

START_TEST(ndjson_oversized)
{
	/* max 8: 8 bytes fit (with or without CR), 9 do not. */
	expect_ndjson("12345678\n123456789\r\n12345678\r\nabc\n123456789", 8,
	              "E L1 [0,9) 12345678\n"
	              "X L2 [9,20) !record over max_record_bytes (8 bytes)\n"
	              "E L3 [20,30) 12345678\n"
	              "E L4 [30,34) abc\n"
	              "X L5 [34,43) !record over max_record_bytes (8 bytes)\n"
	              "= ok\n");
	/* A long line fed in small pieces is dropped, not gathered. */
	char *doc = malloc(100003);
	memset(doc, 'x', 100000);
	memcpy(doc + 100000, "\n{}", 3);
	char *got = run_ndjson_cuts(doc, 100003, 8, 0, 1, NULL, 0, 7);
	ck_assert_str_eq(got, "X L1 [0,100001) !record over max_record_bytes (8 bytes)\n"
	                      "E L2 [100001,100003) {}\n= ok\n");
	free(got);
	free(doc);
}
END_TEST

START_TEST(ndjson_resume_every_line)
{
	const char *doc =
	    "{\"a\":1}\r\n\n{\"b\":\"\xc3\xa9\"}\n123456789\n  \n{\"c\":3}\n{\"d\":4}";
	size_t len = strlen(doc);
	char *whole = run_ndjson(doc, len, 8 + 4);
	const char *line = whole;

	while (*line != '=') {
		unsigned long long ln, start, end;
		const char *nl = strchr(line, '\n');
		ck_assert_int_eq(sscanf(line + 2, "L%llu [%llu,%llu)", &ln, &start, &end), 3);
		for (size_t step = 0; step <= 1; step++) {
			char *got =
			    run_ndjson_cuts(doc + end, len - end, 12, end, ln + 1, NULL, 0, step);
			ck_assert_str_eq(got, nl + 1);
			free(got);
		}
		line = nl + 1;
	}
	free(whole);
}
END_TEST

START_TEST(ndjson_stop_and_args)
{
	struct rec_log l;
	char err[128];
	const char *doc = "{}\n{}\n{}\n";
	struct ndjson_reader *r;

	log_open(&l, doc, strlen(doc), 0);
	l.stop_after = 1;
	r = ndjson_reader_new(MAX, 0, 1, on_record, on_error, &l);
	ck_assert_int_eq(ndjson_reader_feed(r, doc, strlen(doc), err, sizeof(err)),
	                 JSONSTREAM_STOPPED);
	ck_assert_int_eq(ndjson_reader_feed(r, doc, 1, err, sizeof(err)), JSONSTREAM_ERROR);
	ck_assert_int_eq(ndjson_reader_finish(r, err, sizeof(err)), JSONSTREAM_ERROR);
	ndjson_reader_free(r);
	char *got = log_close(&l);
	ck_assert_str_eq(got, "E L1 [0,3) {}\n");
	free(got);

	ck_assert_ptr_null(ndjson_reader_new(0, 0, 1, NULL, NULL, NULL));
	ck_assert_ptr_null(ndjson_reader_new(MAX, 0, 0, NULL, NULL, NULL));
	ck_assert_ptr_null(
	    ndjson_reader_new(JSONSTREAM_MAX_RECORD_LIMIT + 1, 0, 1, NULL, NULL, NULL));
	ndjson_reader_free(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("jsonstream");
	TCase *tb = tcase_create("backup");
	TCase *tp = tcase_create("parse");
	TCase *tn = tcase_create("ndjson");

	tcase_set_timeout(tb, 60);
	tcase_add_test(tb, backup_multi_collection);
	tcase_add_test(tb, backup_offsets_point_at_elements);
	tcase_add_test(tb, backup_empty_things);
	tcase_add_test(tb, backup_metadata_kinds);
	tcase_add_test(tb, backup_escaped_keys);
	tcase_add_test(tb, backup_strings_with_structure);
	tcase_add_test(tb, backup_duplicate_collections);
	tcase_add_test(tb, backup_bom);
	tcase_add_test(tb, backup_oversized_element);
	tcase_add_test(tb, backup_oversized_large);
	tcase_add_test(tb, backup_depth_limit);
	tcase_add_test(tb, backup_file_errors);
	tcase_add_test(tb, backup_resume_every_boundary);
	tcase_add_test(tb, backup_resume_edges);
	tcase_add_test(tb, backup_stop);
	tcase_add_test(tb, backup_bad_args);
	tcase_add_test(tb, backup_with_parser);
	suite_add_tcase(s, tb);

	tcase_add_test(tp, parse_objects);
	tcase_add_test(tp, parse_record_errors);
	tcase_add_test(tp, parse_nul_and_utf8);
	tcase_add_test(tp, parse_depth);
	tcase_add_test(tp, parse_tokener_reuse);
	tcase_add_test(tp, valid_text);
	suite_add_tcase(s, tp);

	tcase_set_timeout(tn, 60);
	tcase_add_test(tn, ndjson_lines);
	tcase_add_test(tn, ndjson_oversized);
	tcase_add_test(tn, ndjson_resume_every_line);
	tcase_add_test(tn, ndjson_stop_and_args);
	suite_add_tcase(s, tn);
	return test_run_suite(s);
}
