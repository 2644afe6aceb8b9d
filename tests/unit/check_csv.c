/* check_csv.c -- the CSV parser: grammar, offsets and lines, split and resume equivalence.
 *
 * Most tests render the parser's output (records, rejected records, the final
 * result) as one string and compare strings: a whole-buffer parse, every
 * two-way split, 1-byte feeding and a resume at every record boundary must all
 * render the same.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "test_suite.h"

#define BIG (1u << 20)

/* ck_assert() records every passing check (a write(2) each); the helpers
 * below run millions of checks, so they only call into Check on failure. */
#define REQUIRE(cond) do { \
		if (!(cond)) \
			ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond); \
	} while (0)

/* ==== Rendering the parser's output ==== */

struct out {
	struct csv_parser *p; /* borrowed; for csv_parser_line() in callbacks */
	char *s;              /* owned; rendered output */
	size_t len, cap;
	size_t nmarks;        /* record boundaries seen (records and rejections) */
	struct mark {
		uint64_t end;  /* the boundary's offset */
		uint64_t line; /* the line there */
		size_t len;    /* the output's length there */
	} *marks;             /* owned */
	int stop_after;       /* > 0: stop (return 7) after this many boundaries */
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	REQUIRE(n >= 0);
	if (o->len + (size_t)n + 1 > o->cap) {
		o->cap = (o->len + (size_t)n + 1) * 2;
		o->s = realloc(o->s, o->cap);
		REQUIRE(o->s != NULL);
	}
	va_start(ap, fmt);
	vsnprintf(o->s + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	o->len += (size_t)n;
}

static void out_free(struct out *o)
{
	free(o->s);
	free(o->marks);
}

static int mark(struct out *o)
{
	o->marks = realloc(o->marks, (o->nmarks + 1) * sizeof *o->marks);
	REQUIRE(o->marks != NULL);
	o->marks[o->nmarks].end = csv_parser_offset(o->p);
	o->marks[o->nmarks].line = csv_parser_line(o->p);
	o->marks[o->nmarks].len = o->len;
	o->nmarks++;
	return o->stop_after > 0 && o->nmarks == (size_t)o->stop_after ? 7 : 0;
}

static int record_cb(const struct csv_record *rec, void *arg)
{
	struct out *o = arg;
	size_t i, j;

	REQUIRE(rec->nfields >= 1);
	REQUIRE(rec->start < rec->end);
	REQUIRE(csv_parser_offset(o->p) == rec->end);
	put(o, "R %llu-%llu L%llu:", (unsigned long long)rec->start, (unsigned long long)rec->end,
	    (unsigned long long)rec->line);
	for (i = 0; i < rec->nfields; i++) {
		REQUIRE(rec->fields[i][rec->lens[i]] == '\0');
		put(o, " [");
		for (j = 0; j < rec->lens[i]; j++) {
			unsigned char c = (unsigned char)rec->fields[i][j];
			if (c >= 0x20 && c < 0x7f && c != '\\')
				put(o, "%c", c);
			else
				put(o, "\\x%02x", c);
		}
		put(o, "]");
	}
	put(o, "\n");
	return mark(o);
}

static int error_cb(enum csv_status st, uint64_t start, uint64_t end, uint64_t line, void *arg)
{
	struct out *o = arg;

	REQUIRE(start < end);
	REQUIRE(csv_parser_offset(o->p) == end);
	put(o, "E%d %llu-%llu L%llu\n", (int)st, (unsigned long long)start, (unsigned long long)end,
	    (unsigned long long)line);
	return mark(o);
}

/* Renders only the field lengths: "R start-end Lline: [len] [len]". */
static int lens_cb(const struct csv_record *rec, void *arg)
{
	struct out *o = arg;
	size_t i;

	put(o, "R %llu-%llu L%llu:", (unsigned long long)rec->start, (unsigned long long)rec->end,
	    (unsigned long long)rec->line);
	for (i = 0; i < rec->nfields; i++)
		put(o, " [%zu]", rec->lens[i]);
	put(o, "\n");
	return 0;
}

static void finish(struct out *o)
{
	uint64_t start = 0, line = 0;
	int rc = csv_parser_finish(o->p, record_cb, error_cb, o);
	enum csv_status st = csv_parser_error(o->p, &start, &line);

	if (st != CSV_OK)
		put(o, "F %d st%d %llu L%llu\n", rc, (int)st, (unsigned long long)start,
		    (unsigned long long)line);
	else
		put(o, "F %d\n", rc);
}

struct opts {
	char delim;
	size_t max;
};

static const struct opts dflt = {',', BIG};

/* Parses doc[from..len) as the input starting at offset `from` (the file's
 * start when from is 0), on line `line`, fed in pieces: cut at `split` when
 * piece is 0, else in pieces of `piece` bytes. Caller frees o->s. */
static void parse(struct out *o, struct opts op, const char *doc, size_t len, size_t from,
		  uint64_t line, size_t split, size_t piece)
{
	size_t at;

	memset(o, 0, sizeof *o);
	o->p = csv_parser_new(op.delim, op.max, from, from == 0);
	REQUIRE(o->p != NULL);
	csv_parser_set_line(o->p, line);
	if (piece == 0) {
		int rc = csv_parser_feed(o->p, doc + from, split - from, record_cb, error_cb, o);

		REQUIRE(rc == 0);
		rc = csv_parser_feed(o->p, doc + split, len - split, record_cb, error_cb, o);
		REQUIRE(rc == 0);
	} else {
		for (at = from; at < len; at += piece) {
			size_t n = len - at < piece ? len - at : piece;
			REQUIRE(csv_parser_feed(o->p, doc + at, n, record_cb, error_cb, o) == 0);
		}
	}
	finish(o);
	csv_parser_free(o->p);
	o->p = NULL;
}

/* The whole-buffer rendering; caller frees the result. */
static char *render(struct opts op, const char *doc, size_t len)
{
	struct out o;

	parse(&o, op, doc, len, 0, 1, len, 0);
	free(o.marks);
	return o.s;
}

#define EXPECT_RENDER(doc, expect) do { \
		char *got_ = render(dflt, doc, sizeof(doc) - 1); \
		ck_assert_str_eq(got_, expect); \
		free(got_); \
	} while (0)

/* Every two-way split, 1-, 2- and 3-byte pieces, and a resume at every record
 * boundary render exactly like the whole-buffer parse. */
static void check_equivalence(struct opts op, const char *doc, size_t len)
{
	struct out whole, o;
	size_t split, piece, k;

	parse(&whole, op, doc, len, 0, 1, len, 0);
	for (split = 0; split <= len; split++) {
		parse(&o, op, doc, len, 0, 1, split, 0);
		if (strcmp(o.s, whole.s) != 0)
			ck_abort_msg("split at %zu:\n%s\nvs whole:\n%s", split,
			      o.s, whole.s);
		out_free(&o);
	}
	for (piece = 1; piece <= 3; piece++) {
		parse(&o, op, doc, len, 0, 1, 0, piece);
		if (strcmp(o.s, whole.s) != 0)
			ck_abort_msg("%zu-byte pieces:\n%s\nvs whole:\n%s",
			      piece, o.s, whole.s);
		out_free(&o);
	}
	for (k = 0; k < whole.nmarks; k++) {
		size_t from = (size_t)whole.marks[k].end;

		parse(&o, op, doc, len, from, whole.marks[k].line, from, 0);
		if (strcmp(o.s, whole.s + whole.marks[k].len) != 0)
			ck_abort_msg("resume at %zu:\n%s\nvs\n%s", from, o.s,
				     whole.s + whole.marks[k].len);
		out_free(&o);
		parse(&o, op, doc, len, from, whole.marks[k].line, 0, 1);
		REQUIRE(strcmp(o.s, whole.s + whole.marks[k].len) == 0);
		out_free(&o);
	}
	out_free(&whole);
}

#define CHECK_LIT(op, lit) check_equivalence(op, lit, sizeof(lit) - 1)

/* ==== Grammar ==== */

START_TEST(simple_records)
{
	EXPECT_RENDER("a,b,c\n1,22,333\n", "R 0-6 L1: [a] [b] [c]\n"
					"R 6-15 L2: [1] [22] [333]\n"
					"F 0\n");
}
END_TEST

START_TEST(quoted_fields)
{
	EXPECT_RENDER("\"a,b\",\"say \"\"hi\"\"\",\"\"\"\"\n",
		  "R 0-24 L1: [a,b] [say \"hi\"] [\"]\n"
		  "F 0\n");
	/* newlines inside quotes are data and count as lines */
	EXPECT_RENDER("\"l1\nl2\",\"c\r\nd\",\"e\rf\"\nnext\n",
		  "R 0-21 L1: [l1\\x0al2] [c\\x0d\\x0ad] [e\\x0df]\n"
		  "R 21-26 L5: [next]\n"
		  "F 0\n");
	/* the delimiter, CR and LF may all end a quoted field's neighbour */
	EXPECT_RENDER("\"a\"\r\n\"b\"\r\"c\"",
		      "R 0-5 L1: [a]\nR 5-9 L2: [b]\nR 9-12 L3: [c]\nF 0\n");
}
END_TEST

START_TEST(line_terminators)
{
	EXPECT_RENDER("a,b\r\nc,d\r\n", "R 0-5 L1: [a] [b]\nR 5-10 L2: [c] [d]\nF 0\n");
	EXPECT_RENDER("a,b\rc,d\r", "R 0-4 L1: [a] [b]\nR 4-8 L2: [c] [d]\nF 0\n");
	EXPECT_RENDER("a\rb\nc\r\nd",
		      "R 0-2 L1: [a]\nR 2-4 L2: [b]\nR 4-7 L3: [c]\nR 7-8 L4: [d]\nF 0\n");
	/* CR then LF-blank-line is one terminator; CR CR is a record end plus a blank line */
	EXPECT_RENDER("a\r\rb\n", "R 0-2 L1: [a]\nR 3-5 L3: [b]\nF 0\n");
}
END_TEST

START_TEST(blank_lines_skipped_but_counted)
{
	EXPECT_RENDER("\n\nh\n\n\r\n\rx,y\n\n", "R 2-4 L3: [h]\nR 8-12 L7: [x] [y]\nF 0\n");
	EXPECT_RENDER("\r\n\r\n", "F 0\n");
	/* not blank: an empty quoted field, spaces, a lone delimiter */
	EXPECT_RENDER("\"\"\n \n,\n", "R 0-3 L1: []\nR 3-5 L2: [ ]\nR 5-7 L3: [] []\nF 0\n");
}
END_TEST

START_TEST(bom)
{
	EXPECT_RENDER("\xEF\xBB\xBFid,x\n", "R 3-8 L1: [id] [x]\nF 0\n");
	EXPECT_RENDER("\xEF\xBB\xBF", "F 0\n");
	EXPECT_RENDER("\xEF\xBB\xBF\"q\"", "R 3-6 L1: [q]\nF 0\n");
	/* a partial BOM is data */
	EXPECT_RENDER("\xEF\xBBx\n", "R 0-4 L1: [\\xef\\xbbx]\nF 0\n");
	EXPECT_RENDER("\xEF\xBB", "R 0-2 L1: [\\xef\\xbb]\nF 0\n");
	EXPECT_RENDER("\xEF", "R 0-1 L1: [\\xef]\nF 0\n");
	/* only at the file's start */
	EXPECT_RENDER("a\n\xEF\xBB\xBF\n", "R 0-2 L1: [a]\nR 2-6 L2: [\\xef\\xbb\\xbf]\nF 0\n");

	struct out o;
	const char doc[] = "\xEF\xBB\xBFid\n";
	parse(&o, dflt, doc, sizeof doc - 1, 3, 1, 3, 0); /* not at the file start */
	ck_assert_str_eq(o.s, "R 3-6 L1: [id]\nF 0\n");
	out_free(&o);
	memset(&o, 0, sizeof o);
	o.p = csv_parser_new(',', BIG, 0, false);
	ck_assert_int_eq(csv_parser_feed(o.p, doc, sizeof doc - 1, record_cb, error_cb, &o), 0);
	finish(&o);
	ck_assert_str_eq(o.s, "R 0-6 L1: [\\xef\\xbb\\xbfid]\nF 0\n");
	csv_parser_free(o.p);
	out_free(&o);
	CHECK_LIT(dflt, "\xEF\xBB\xBFh\r\n1\r\n");
	CHECK_LIT(dflt, "\xEF\xBBh\r\n1");
}
END_TEST

START_TEST(custom_delimiters)
{
	static const char delims[] = {';', '\t', '|', ','};
	size_t i;

	for (i = 0; i < sizeof delims; i++) {
		struct opts op = {delims[i], BIG};
		char doc[64], expect[128];
		char *got;
		int n = snprintf(doc, sizeof doc, "a%cb,c;d\te|f%c\"x%cy\"\n", delims[i], delims[i],
				 delims[i]);

		/* the three separators that are not the delimiter stay inside the field */
		got = render(op, doc, (size_t)n);
		switch (delims[i]) {
		case ';':
			snprintf(expect, sizeof expect,
				 "R 0-%d L1: [a] [b,c] [d\\x09e|f] [x;y]\nF 0\n", n);
			break;
		case '\t':
			snprintf(expect, sizeof expect,
				 "R 0-%d L1: [a] [b,c;d] [e|f] [x\\x09y]\nF 0\n", n);
			break;
		case '|':
			snprintf(expect, sizeof expect,
				 "R 0-%d L1: [a] [b,c;d\\x09e] [f] [x|y]\nF 0\n", n);
			break;
		default:
			snprintf(expect, sizeof expect,
				 "R 0-%d L1: [a] [b] [c;d\\x09e|f] [x,y]\nF 0\n", n);
		}
		ck_assert_str_eq(got, expect);
		free(got);
		check_equivalence(op, doc, (size_t)n);
	}
}
END_TEST

START_TEST(empty_and_trailing_fields)
{
	EXPECT_RENDER(",,\n", "R 0-3 L1: [] [] []\nF 0\n");
	EXPECT_RENDER("a,b,\n", "R 0-5 L1: [a] [b] []\nF 0\n");
	EXPECT_RENDER("a,\"\",\n", "R 0-6 L1: [a] [] []\nF 0\n");
	EXPECT_RENDER("a,b,", "R 0-4 L1: [a] [b] []\nF 0\n");
	EXPECT_RENDER(",", "R 0-1 L1: [] []\nF 0\n");
}
END_TEST

START_TEST(final_record_without_newline)
{
	EXPECT_RENDER("h\nlast", "R 0-2 L1: [h]\nR 2-6 L2: [last]\nF 0\n");
	EXPECT_RENDER("h\n\"q,\"\"\"", "R 0-2 L1: [h]\nR 2-8 L2: [q,\"]\nF 0\n");
	EXPECT_RENDER("h\r", "R 0-2 L1: [h]\nF 0\n");
}
END_TEST

START_TEST(empty_file_and_header_only)
{
	EXPECT_RENDER("", "F 0\n");
	EXPECT_RENDER("id,name", "R 0-7 L1: [id] [name]\nF 0\n");
	EXPECT_RENDER("id,name\r\n", "R 0-9 L1: [id] [name]\nF 0\n");
}
END_TEST

START_TEST(nul_bytes_and_lenient_quotes)
{
	/* NUL is ordinary data; fields carry lengths */
	struct out o;
	const char doc[] = "a\0b,\"\0\"\n";
	parse(&o, dflt, doc, sizeof doc - 1, 0, 1, sizeof doc - 1, 0);
	ck_assert_str_eq(o.s, "R 0-8 L1: [a\\x00b] [\\x00]\nF 0\n");
	out_free(&o);
	/* a quote inside an unquoted field is kept */
	EXPECT_RENDER("ab\"c,d\"\"e,f\"\n", "R 0-13 L1: [ab\"c] [d\"\"e] [f\"]\nF 0\n");
}
END_TEST

/* Field lengths around the 8-byte scanning steps, ended by each stop byte. */
START_TEST(long_fields_scan)
{
	static const char ends[] = {',', '\r', '\n'};
	char doc[256], expect[256];
	size_t n, e;

	for (e = 0; e < sizeof ends; e++) {
		for (n = 1; n < 70; n++) {
			struct out o;
			size_t len;

			/* n unquoted bytes; n bytes quoted, the middle one an escaped quote; y */
			memset(doc, 'x', n);
			len = n;
			doc[len++] = ends[e];
			doc[len++] = '"';
			memset(doc + len, '\xEE', n);
			doc[len + n / 2] = '"';
			len += n;
			memmove(doc + len - n + n / 2 + 1, doc + len - n + n / 2, n - n / 2);
			len++;
			doc[len++] = '"';
			doc[len++] = ends[e];
			doc[len++] = 'y';
			if (ends[e] == ',')
				snprintf(expect, sizeof expect, "R 0-%zu L1: [%zu] [%zu] [1]\n",
					 len, n, n);
			else
				snprintf(expect, sizeof expect,
					 "R 0-%zu L1: [%zu]\n"
					 "R %zu-%zu L2: [%zu]\nR %zu-%zu L3: [1]\n",
					 n + 1, n, n + 1, len - 1, n, len - 1, len);
			memset(&o, 0, sizeof o);
			o.p = csv_parser_new(',', BIG, 0, true);
			REQUIRE(csv_parser_feed(o.p, doc, len, lens_cb, NULL, &o) == 0);
			REQUIRE(csv_parser_finish(o.p, lens_cb, NULL, &o) == 0);
			if (strcmp(o.s, expect) != 0)
				ck_abort_msg("n=%zu end=%zu:\n%s\nvs\n%s", n, e, o.s, expect);
			csv_parser_free(o.p);
			out_free(&o);
			if (n % 9 == 0)
				check_equivalence(dflt, doc, len);
		}
	}
}
END_TEST

START_TEST(bad_quote_record_skipped)
{
	/* text after a closing quote rejects the record; the next one is intact */
	EXPECT_RENDER("h\n\"ab\"c,d\n1,2\n",
		      "R 0-2 L1: [h]\nE2 2-10 L2\nR 10-14 L3: [1] [2]\nF 0\n");
	EXPECT_RENDER("\"ab\" ,d\r\nx", "E2 0-9 L1\nR 9-10 L2: [x]\nF 0\n");
	/* the rejected record's end is still found with quote state kept */
	EXPECT_RENDER("\"a\"x,\"q\nr,\"\nnext\n", "E2 0-12 L1\nR 12-17 L3: [next]\nF 0\n");
	/* after the bad quote the field reads on unquoted: a quote there is literal */
	EXPECT_RENDER("\"a\"b\"c\nn\n", "E2 0-7 L1\nR 7-9 L2: [n]\nF 0\n");
	/* at end of input */
	EXPECT_RENDER("\"a\"b", "E2 0-4 L1\nF 0\n");
	CHECK_LIT(dflt, "\"ab\"c,d\n\"a\"x,\"q\r\nr,\"\r\"\"\"\"\"x\r\n1");
}
END_TEST

START_TEST(unterminated_quote_is_file_level)
{
	EXPECT_RENDER("h\n1,\"abc\ndef\n", "R 0-2 L1: [h]\nF -1 st1 2 L2\n");
	EXPECT_RENDER("\"", "F -1 st1 0 L1\n");
	EXPECT_RENDER("\"a\"\"", "F -1 st1 0 L1\n");

	/* sticky: later calls fail too */
	struct csv_parser *p = csv_parser_new(',', BIG, 0, true);
	ck_assert_int_eq(csv_parser_feed(p, "\"x", 2, NULL, NULL, NULL), 0);
	ck_assert_int_eq(csv_parser_finish(p, NULL, NULL, NULL), -1);
	ck_assert_int_eq(csv_parser_error(p, NULL, NULL), CSV_ERR_UNTERMINATED_QUOTE);
	ck_assert_int_eq(csv_parser_feed(p, "\"", 1, NULL, NULL, NULL), -1);
	ck_assert_int_eq(csv_parser_finish(p, NULL, NULL, NULL), -1);
	csv_parser_free(p);
}
END_TEST

/* ==== Limits ==== */

START_TEST(too_long_record_skipped)
{
	struct opts op = {',', 8};
	char *got;

	/* exactly 8 bytes is fine, 9 is not; the terminator does not count */
	got = render(op, "12345678\r\n123456789\r\nok\n", 24);
	ck_assert_str_eq(got, "R 0-10 L1: [12345678]\nE3 10-21 L2\nR 21-24 L3: [ok]\nF 0\n");
	free(got);
	/* quote state is kept while skipping: the newline and comma in quotes are data */
	got = render(op, "a,\"long\nfield,\n\"\"x\"\"\",z\nok,\"q\"\n", 30);
	ck_assert_str_eq(got, "E3 0-24 L1\nR 24-30 L4: [ok] [q]\nF 0\n");
	free(got);
	/* at end of input: reported; unterminated: file-level */
	got = render(op, "ok\n123456789", 12);
	ck_assert_str_eq(got, "R 0-3 L1: [ok]\nE3 3-12 L2\nF 0\n");
	free(got);
	got = render(op, "ok\n\"123456789", 13);
	ck_assert_str_eq(got, "R 0-3 L1: [ok]\nF -1 st1 3 L2\n");
	free(got);
	CHECK_LIT(op, "a,\"lo\r\nng\",z\r\nok,\"q\"\rx\"y\"zzzzzz\n12345678\n\"\"\"\"\"\"\"\"\"\n");
}
END_TEST

static int count_cb(const struct csv_record *rec, void *arg)
{
	struct out *o = arg;

	put(o, "R %llu-%llu L%llu %zu:[%.*s]\n", (unsigned long long)rec->start,
	    (unsigned long long)rec->end, (unsigned long long)rec->line, rec->nfields,
	    (int)rec->lens[0], rec->fields[0]);
	return 0;
}

START_TEST(too_long_record_bounded_memory)
{
	/* a 64 MiB record (quoted, with newlines) fed in 64 KiB pieces through a
	 * parser limited to 1 KiB: memory stays small, the next record is intact */
	struct out o;
	const size_t piece = 65536, npieces = 1024;
	char *chunk = malloc(piece);
	size_t i, peak = 0;
	char expect[128];

	memset(&o, 0, sizeof o);
	o.p = csv_parser_new(',', 1024, 0, true);
	for (i = 0; i < piece; i++)
		chunk[i] = i % 100 == 99 ? '\n' : i % 10 == 9 ? ',' : 'x';
	ck_assert_int_eq(csv_parser_feed(o.p, "h\n\"", 3, count_cb, error_cb, &o), 0);
	for (i = 0; i < npieces; i++) {
		ck_assert_int_eq(csv_parser_feed(o.p, chunk, piece, count_cb, error_cb, &o), 0);
		if (csv_parser_memory(o.p) > peak)
			peak = csv_parser_memory(o.p);
	}
	ck_assert_int_eq(csv_parser_feed(o.p, "\"\r\nnext,1\n", 10, count_cb, error_cb, &o), 0);
	finish(&o);
	ck_assert_uint_lt(peak, 16384);
	snprintf(expect, sizeof expect,
		 "R 0-2 L1 1:[h]\nE3 2-%zu L2\nR %zu-%zu L%zu 2:[next]\nF 0\n",
		 3 + piece * npieces + 3, 3 + piece * npieces + 3, 3 + piece * npieces + 10,
		 (size_t)2 + npieces * (piece / 100) + 1);
	ck_assert_str_eq(o.s, expect);
	csv_parser_free(o.p);
	out_free(&o);
	free(chunk);
}
END_TEST

START_TEST(too_many_fields)
{
	size_t n = CSV_MAX_FIELDS + 1, len = n * 2 + 3;
	char *doc = malloc(len);
	struct out o;
	size_t i;

	for (i = 0; i < n; i++) {
		doc[2 * i] = 'x';
		doc[2 * i + 1] = i + 1 < n ? ',' : '\n';
	}
	memcpy(doc + 2 * n, "a\n", 3);
	parse(&o, dflt, doc, len - 1, 0, 1, len - 1, 0);
	char expect[128];
	snprintf(expect, sizeof expect, "E4 0-%zu L1\nR %zu-%zu L2: [a]\nF 0\n", 2 * n, 2 * n,
		 2 * n + 2);
	ck_assert_str_eq(o.s, expect);
	out_free(&o);
	/* exactly CSV_MAX_FIELDS is accepted */
	doc[2 * (n - 2) + 1] = '\n';
	memset(&o, 0, sizeof o);
	o.p = csv_parser_new(',', BIG, 0, true);
	ck_assert_int_eq(csv_parser_feed(o.p, doc, 2 * (n - 1), count_cb, error_cb, &o), 0);
	ck_assert_int_eq(csv_parser_finish(o.p, count_cb, error_cb, &o), 0);
	snprintf(expect, sizeof expect, "R 0-%zu L1 %d:[x]\n", 2 * (n - 1), CSV_MAX_FIELDS);
	ck_assert_str_eq(o.s, expect);
	csv_parser_free(o.p);
	out_free(&o);
	free(doc);
}
END_TEST

/* ==== Splits, resume, stop ==== */

static const char tricky[] =
	"\xEF\xBB\xBFid,name,note\r\n"
	"1,\"a,b\",\"say \"\"hi\"\"\"\r\n"
	"\n"
	"2,\"multi\r\nline\rx\nend\",\r"
	"3,,\"\"\n"
	"\r\n\r"
	"\"q\"\"\",x\"y,\"\"\"\"\r\n"
	"\"bad\"quote,\"with\r\nnewline\"\n"
	"4,\"ends in cr\r\",\"\n\"\r"
	"5,tail,\"\"\"\"";

START_TEST(every_split_equivalence)
{
	struct opts small = {',', 12};
	char *got = render(dflt, tricky, sizeof tricky - 1);

	ck_assert_str_eq(got, "R 3-17 L1: [id] [name] [note]\n"
			      "R 17-39 L2: [1] [a,b] [say \"hi\"]\n"
			      "R 40-63 L4: [2] [multi\\x0d\\x0aline\\x0dx\\x0aend] []\n"
			      "R 63-69 L8: [3] [] []\n"
			      "R 72-88 L11: [q\"] [x\"y] [\"]\n"
			      "E2 88-115 L12\n"
			      "R 115-135 L14: [4] [ends in cr\\x0d] [\\x0a]\n"
			      "R 135-146 L17: [5] [tail] [\"]\n"
			      "F 0\n");
	free(got);
	check_equivalence(dflt, tricky, sizeof tricky - 1);
	check_equivalence(small, tricky, sizeof tricky - 1);
	check_equivalence((struct opts){';', BIG}, tricky, sizeof tricky - 1);
}
END_TEST

/* A deterministic stream of small documents over an alphabet that hits every
 * state, checked like the tricky one (a small fuzzer that always runs). */
START_TEST(random_documents)
{
	static const char alphabet[] = "ab,;\"\"\r\n\n\xEF\xBB\xBF";
	unsigned seed = 12345;
	char doc[48];
	int round;

	for (round = 0; round < 3000; round++) {
		size_t len, i;
		struct opts op = {round % 3 == 0 ? ';' : ',', round % 2 ? 5 : BIG};

		seed = seed * 1103515245u + 12345u;
		len = (seed >> 16) % sizeof doc;
		for (i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			doc[i] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
		}
		if (round % 5 == 0 && len >= 3)
			memcpy(doc, "\xEF\xBB\xBF", 3);
		check_equivalence(op, doc, len);
	}
}
END_TEST

START_TEST(stop_and_continue)
{
	/* a callback's non-zero value stops the feed right after that record; feeding
	 * the rest from csv_parser_offset() continues as if nothing happened */
	static const char doc[] = "a\r\nb\r\"c\"x\rd\re";
	size_t len = sizeof doc - 1;
	struct out whole, o;
	int stop;

	parse(&whole, dflt, doc, len, 0, 1, len, 0);
	for (stop = 1; stop <= 4; stop++) {
		size_t split;

		for (split = 0; split <= len; split++) {
			size_t at = 0;
			int rc;

			memset(&o, 0, sizeof o);
			o.p = csv_parser_new(',', BIG, 0, true);
			o.stop_after = stop;
			rc = csv_parser_feed(o.p, doc, split, record_cb, error_cb, &o);
			if (rc == 0) {
				at = split;
				rc = csv_parser_feed(o.p, doc + at, len - at, record_cb, error_cb,
						     &o);
			}
			ck_assert_int_eq(rc, 7);
			at = (size_t)csv_parser_offset(o.p);
			ck_assert_uint_eq(at, whole.marks[stop - 1].end);
			rc = csv_parser_feed(o.p, doc + at, len - at, record_cb, error_cb, &o);
			ck_assert_int_eq(rc, 0);
			finish(&o);
			ck_assert_str_eq(o.s, whole.s);
			csv_parser_free(o.p);
			out_free(&o);
		}
	}
	out_free(&whole);
}
END_TEST

START_TEST(resume_offsets_and_lines)
{
	/* the caller's view: checkpoint (end, line) of the second record, start over */
	static const char doc[] = "h1,h2\r\n\"x\ny\",1\r\n\n3,4\n";
	struct out o;

	parse(&o, dflt, doc, sizeof doc - 1, 16, 4, 16, 0);
	ck_assert_str_eq(o.s, "R 17-21 L5: [3] [4]\nF 0\n");
	out_free(&o);
	check_equivalence(dflt, doc, sizeof doc - 1);
}
END_TEST

/* ==== API ==== */

START_TEST(constructor_rejects_bad_arguments)
{
	ck_assert_ptr_null(csv_parser_new('"', BIG, 0, true));
	ck_assert_ptr_null(csv_parser_new('\r', BIG, 0, true));
	ck_assert_ptr_null(csv_parser_new('\n', BIG, 0, true));
	ck_assert_ptr_null(csv_parser_new(',', 0, 0, true));
	csv_parser_free(NULL);
}
END_TEST

START_TEST(offsets_start_anywhere)
{
	struct csv_parser *p = csv_parser_new('\t', BIG, 1000000007, false);
	struct out o;

	memset(&o, 0, sizeof o);
	o.p = p;
	csv_parser_set_line(p, 41);
	ck_assert_uint_eq(csv_parser_offset(p), 1000000007);
	ck_assert_int_eq(csv_parser_feed(p, NULL, 0, record_cb, error_cb, &o), 0);
	ck_assert_int_eq(csv_parser_feed(p, "a\tb\n\nc", 6, record_cb, error_cb, &o), 0);
	ck_assert_uint_eq(csv_parser_offset(p), 1000000013);
	ck_assert_uint_eq(csv_parser_line(p), 43);
	finish(&o);
	ck_assert_str_eq(o.s, "R 1000000007-1000000011 L41: [a] [b]\n"
			      "R 1000000012-1000000013 L43: [c]\nF 0\n");
	csv_parser_free(p);
	out_free(&o);
}
END_TEST

START_TEST(status_texts)
{
	ck_assert_str_eq(csv_status_text(CSV_OK), "ok");
	ck_assert_str_eq(csv_status_text(CSV_ERR_TOO_LONG), "record longer than max_record_bytes");
	ck_assert_ptr_nonnull(strstr(csv_status_text(CSV_ERR_UNTERMINATED_QUOTE), "quote"));
	ck_assert_ptr_nonnull(strstr(csv_status_text(CSV_ERR_BAD_QUOTE), "quote"));
	ck_assert_ptr_nonnull(strstr(csv_status_text(CSV_ERR_TOO_MANY_FIELDS), "fields"));
	ck_assert_ptr_nonnull(strstr(csv_status_text(CSV_ERR_NOMEM), "memory"));
	ck_assert_str_eq(csv_status_text((enum csv_status)99), "unknown CSV status");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("csv");
	TCase *grammar = tcase_create("grammar");
	TCase *limits = tcase_create("limits");
	TCase *stream = tcase_create("stream");
	TCase *api = tcase_create("api");

	tcase_add_test(grammar, simple_records);
	tcase_add_test(grammar, quoted_fields);
	tcase_add_test(grammar, line_terminators);
	tcase_add_test(grammar, blank_lines_skipped_but_counted);
	tcase_add_test(grammar, bom);
	tcase_add_test(grammar, custom_delimiters);
	tcase_add_test(grammar, empty_and_trailing_fields);
	tcase_add_test(grammar, final_record_without_newline);
	tcase_add_test(grammar, empty_file_and_header_only);
	tcase_add_test(grammar, nul_bytes_and_lenient_quotes);
	tcase_add_test(grammar, long_fields_scan);
	tcase_add_test(grammar, bad_quote_record_skipped);
	tcase_add_test(grammar, unterminated_quote_is_file_level);
	suite_add_tcase(s, grammar);

	tcase_add_test(limits, too_long_record_skipped);
	tcase_add_test(limits, too_long_record_bounded_memory);
	tcase_add_test(limits, too_many_fields);
	tcase_set_timeout(limits, 60);
	suite_add_tcase(s, limits);

	tcase_add_test(stream, every_split_equivalence);
	tcase_add_test(stream, random_documents);
	tcase_add_test(stream, stop_and_continue);
	tcase_add_test(stream, resume_offsets_and_lines);
	tcase_set_timeout(stream, 120);
	suite_add_tcase(s, stream);

	tcase_add_test(api, constructor_rejects_bad_arguments);
	tcase_add_test(api, offsets_start_anywhere);
	tcase_add_test(api, status_texts);
	suite_add_tcase(s, api);
	return test_run_suite(s);
}
