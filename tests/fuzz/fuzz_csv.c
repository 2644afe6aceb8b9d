/* fuzz_csv.c -- libFuzzer harness for worker/csv.c: splits and resumes must not matter.
 *
 * The input is parsed whole, split in two at a position derived from its
 * first byte, in 1-byte pieces, and resumed from a record boundary chosen by
 * its second byte; all runs must produce the same stream of records,
 * rejections and final result. Offsets must be monotonic and inside the input.
 * The third byte picks the delimiter and a small or large max_record_bytes.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -Iworker -Icommon \
 *	tests/fuzz/fuzz_csv.c worker/csv.c -o /tmp/fuzz_csv
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond) do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

/* The rendered output of one run. */
struct run {
	struct csv_parser *p; /* borrowed */
	uint64_t lo, hi;      /* the input's absolute range */
	uint64_t last_end;    /* end of the previous boundary */
	uint64_t last_line;   /* line at it */
	unsigned char *s;     /* owned; rendered events */
	size_t len, cap;
	size_t nmarks;
	struct {
		uint64_t end, line; /* a record boundary and the line there */
		size_t len;         /* rendered length there */
	} *marks;             /* owned */
};

static void put(struct run *r, const void *src, size_t n)
{
	if (r->len + n > r->cap) {
		r->cap = (r->len + n) * 2 + 64;
		r->s = realloc(r->s, r->cap);
		REQUIRE(r->s != NULL);
	}
	memcpy(r->s + r->len, src, n);
	r->len += n;
}

static void put_u64(struct run *r, uint64_t v)
{
	put(r, &v, sizeof v);
}

/* Checks a boundary [start, end) on line and remembers it. */
static void boundary(struct run *r, uint64_t start, uint64_t end, uint64_t line)
{
	REQUIRE(start >= r->last_end);
	REQUIRE(start < end);
	REQUIRE(end <= r->hi);
	REQUIRE(line >= r->last_line);
	REQUIRE(csv_parser_offset(r->p) == end);
	REQUIRE(csv_parser_line(r->p) > line || (csv_parser_line(r->p) == line && end == r->hi));
	r->last_end = end;
	r->last_line = csv_parser_line(r->p);
	r->marks = realloc(r->marks, (r->nmarks + 1) * sizeof *r->marks);
	REQUIRE(r->marks != NULL);
	r->marks[r->nmarks].end = end;
	r->marks[r->nmarks].line = csv_parser_line(r->p);
	r->marks[r->nmarks].len = r->len;
	r->nmarks++;
}

static int record_cb(const struct csv_record *rec, void *arg)
{
	struct run *r = arg;
	size_t i, total = 0;

	REQUIRE(rec->nfields >= 1);
	put(r, "R", 1);
	put_u64(r, rec->start);
	put_u64(r, rec->end);
	put_u64(r, rec->line);
	put_u64(r, rec->nfields);
	for (i = 0; i < rec->nfields; i++) {
		REQUIRE(rec->fields[i][rec->lens[i]] == '\0');
		put_u64(r, rec->lens[i]);
		put(r, rec->fields[i], rec->lens[i]);
		total += rec->lens[i];
	}
	REQUIRE(total <= rec->end - rec->start);
	boundary(r, rec->start, rec->end, rec->line);
	return 0;
}

static int error_cb(enum csv_status st, uint64_t start, uint64_t end, uint64_t line, void *arg)
{
	struct run *r = arg;

	REQUIRE(st == CSV_ERR_BAD_QUOTE || st == CSV_ERR_TOO_LONG || st == CSV_ERR_TOO_MANY_FIELDS);
	put(r, "E", 1);
	put_u64(r, (uint64_t)st);
	put_u64(r, start);
	put_u64(r, end);
	put_u64(r, line);
	boundary(r, start, end, line);
	return 0;
}

/* Parses buf[from..size) (absolute offsets from `from`) in pieces that end at
 * split, then every `piece` bytes (0: one piece). */
static void parse(struct run *r, char delim, size_t max, const uint8_t *buf, size_t size,
		  size_t from, uint64_t line, size_t split, size_t piece)
{
	uint64_t err_start = 0, err_line = 0;
	enum csv_status st;
	size_t at = from;
	int rc;

	memset(r, 0, sizeof *r);
	r->lo = r->last_end = from;
	r->hi = size;
	r->last_line = line;
	r->p = csv_parser_new(delim, max, from, from == 0);
	REQUIRE(r->p != NULL);
	csv_parser_set_line(r->p, line);
	if (split > from) {
		rc = csv_parser_feed(r->p, (const char *)buf + at, split - at, record_cb, error_cb,
				     r);
		REQUIRE(rc == 0);
		at = split;
	}
	while (at < size) {
		size_t n = piece == 0 || size - at < piece ? size - at : piece;

		rc = csv_parser_feed(r->p, (const char *)buf + at, n, record_cb, error_cb, r);
		REQUIRE(rc == 0);
		at += n;
	}
	REQUIRE(csv_parser_offset(r->p) == size);
	rc = csv_parser_finish(r->p, record_cb, error_cb, r);
	st = csv_parser_error(r->p, &err_start, &err_line);
	REQUIRE(rc == 0 || rc == -1);
	REQUIRE((rc == -1) == (st != CSV_OK));
	REQUIRE(st == CSV_OK || st == CSV_ERR_UNTERMINATED_QUOTE);
	put(r, "F", 1);
	put_u64(r, (uint64_t)st);
	if (st != CSV_OK) {
		REQUIRE(err_start >= r->last_end && err_start < size);
		put_u64(r, err_start);
		put_u64(r, err_line);
	}
	csv_parser_free(r->p);
	r->p = NULL;
}

static void same(const struct run *a, const unsigned char *s, size_t len)
{
	REQUIRE(a->len == len);
	REQUIRE(memcmp(a->s, s, len) == 0);
}

static void done(struct run *r)
{
	free(r->s);
	free(r->marks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char delims[] = {',', ';', '\t', '|'};
	struct run whole, other;
	uint8_t b0 = size > 0 ? data[0] : 0;
	uint8_t b1 = size > 1 ? data[1] : 0;
	uint8_t b2 = size > 2 ? data[2] : 0;
	char delim = delims[b2 & 3];
	size_t max = b2 & 4 ? (size_t)(b2 >> 3) + 1 : (size_t)1 << 20;
	size_t split = size * b0 / 255;

	parse(&whole, delim, max, data, size, 0, 1, size, 0);

	parse(&other, delim, max, data, size, 0, 1, split, 0);
	same(&other, whole.s, whole.len);
	done(&other);

	parse(&other, delim, max, data, size, 0, 1, 0, 1);
	same(&other, whole.s, whole.len);
	done(&other);

	if (whole.nmarks > 0) {
		size_t k = b1 % whole.nmarks;
		size_t from = (size_t)whole.marks[k].end;

		size_t half = from + (size - from) / 2;

		parse(&other, delim, max, data, size, from, whole.marks[k].line, half, 0);
		same(&other, whole.s + whole.marks[k].len, whole.len - whole.marks[k].len);
		done(&other);
	}
	done(&whole);
	return 0;
}
