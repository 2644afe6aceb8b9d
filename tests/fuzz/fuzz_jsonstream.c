/* fuzz_jsonstream.c -- libFuzzer harness for worker/jsonstream.c.
 *
 * For each input, both readers (backup and NDJSON) must give the same events
 * fed whole, split at an input-derived point, and in 1..7-byte pieces; every
 * event must have sane offsets (and a backup element exactly the document's
 * bytes); a backup reader resumed after an input-chosen element, or an NDJSON
 * reader resumed after an input-chosen line, must give exactly the rest of the
 * events. Every record also goes through jsonstream_parse_object_tok.
 * Not built by CMake:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iworker -Icommon \
 *     $(pkg-config --cflags json-c) tests/fuzz/fuzz_jsonstream.c worker/jsonstream.c \
 *     common/jsonutil.c $(pkg-config --libs json-c) -o /tmp/fuzz_js
 *   /tmp/fuzz_js -max_total_time=60 -max_len=4096
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);      \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

struct events {
	char *buf; /* owned; serialised events */
	size_t len, cap;
	size_t nrec;                  /* element/line and error events so far */
	size_t mark;                  /* buf length just after event number `want` */
	size_t want;                  /* which record event to remember (1-based) */
	struct jsonstream_record pos; /* its offsets, index, line */
	char name[4096];              /* its collection name */
	const char *doc;              /* the whole input */
	size_t doc_len;
	uint64_t base; /* absolute offset of doc[0]'s position in this run */
	uint64_t last_end;
	struct json_tokener *tok; /* borrowed */
};

static void put(struct events *e, const void *p, size_t n)
{
	if (e->len + n > e->cap) {
		size_t cap = e->cap ? e->cap : 1024;
		while (cap < e->len + n)
			cap *= 2;
		e->buf = realloc(e->buf, cap);
		CHECK(e->buf != NULL);
		e->cap = cap;
	}
	memcpy(e->buf + e->len, p, n);
	e->len += n;
}

static void put_u64(struct events *e, uint64_t v)
{
	put(e, &v, sizeof(v));
}

static int on_event(const struct jsonstream_record *rec, void *arg, char kind)
{
	struct events *e = arg;
	struct json_object *obj = NULL;
	char err[128];

	CHECK(rec->start_offset <= rec->end_offset);
	CHECK(rec->start_offset >= e->last_end);
	CHECK(rec->end_offset <= e->base + e->doc_len);
	CHECK(rec->start_offset >= e->base);
	e->last_end = rec->end_offset;
	if (rec->data != NULL) {
		CHECK(rec->len <= rec->end_offset - rec->start_offset);
		CHECK(memcmp(rec->data, e->doc + (rec->start_offset - e->base), rec->len) == 0);
		if (rec->collection != NULL)
			CHECK(rec->len == rec->end_offset - rec->start_offset);
		if (jsonstream_parse_object_tok(e->tok, rec->data, rec->len, &obj, err,
		                                sizeof(err)) == 0) {
			CHECK(obj != NULL);
			json_object_put(obj);
			put(e, "+", 1);
		} else {
			CHECK(obj == NULL);
			put(e, err, strlen(err));
		}
	}
	put(e, &kind, 1);
	put_u64(e, rec->start_offset);
	put_u64(e, rec->end_offset);
	put_u64(e, rec->line);
	put_u64(e, rec->index);
	put(e, &rec->metadata, sizeof(rec->metadata));
	if (rec->collection != NULL) {
		CHECK(rec->collection[rec->collection_len] == '\0');
		put_u64(e, rec->collection_len);
		put(e, rec->collection, rec->collection_len);
	}
	if (rec->data != NULL)
		put(e, rec->data, rec->len);
	if (rec->message != NULL)
		put(e, rec->message, strlen(rec->message));
	if (kind != 'M' && ++e->nrec == e->want) {
		e->mark = e->len;
		e->pos = *rec;
		if (rec->collection != NULL) {
			CHECK(rec->collection_len < sizeof(e->name));
			memcpy(e->name, rec->collection, rec->collection_len);
		}
	}
	return 0;
}

static int on_record(const struct jsonstream_record *rec, void *arg)
{
	CHECK(rec->message == NULL);
	CHECK(rec->data != NULL || rec->metadata);
	return on_event(rec, arg, rec->metadata ? 'M' : 'E');
}

static int on_error(const struct jsonstream_record *rec, void *arg)
{
	CHECK(rec->message != NULL && rec->data == NULL && !rec->metadata);
	return on_event(rec, arg, 'X');
}

/* Runs one reader over doc, which starts at absolute offset base (a backup
 * reader resumes at resume, an NDJSON reader at line), in pieces: cut (if not
 * 0 and < len) splits it in two, step (if not 0) feeds step bytes at a time.
 * Appends the final status and error to e. */
static void run(bool backup, const char *doc, size_t len, size_t max, uint64_t base,
                const struct backup_position *resume, uint64_t line, size_t cut, size_t step,
                struct events *e)
{
	struct backup_reader *br = NULL;
	struct ndjson_reader *nr = NULL;
	char err[256] = "";
	int rc = JSONSTREAM_OK;
	size_t at = 0;

	e->doc = doc;
	e->doc_len = len;
	e->base = base;
	e->last_end = e->base;
	if (backup)
		br = backup_reader_new(max, resume, on_record, on_error, e);
	else
		nr = ndjson_reader_new(max, e->base, line, on_record, on_error, e);
	CHECK(br != NULL || nr != NULL);
	while (rc == JSONSTREAM_OK && at < len) {
		size_t next = step ? at + step : cut > at ? cut : len;
		if (next > len)
			next = len;
		rc = backup ? backup_reader_feed(br, doc + at, next - at, err, sizeof(err))
		            : ndjson_reader_feed(nr, doc + at, next - at, err, sizeof(err));
		at = next;
	}
	if (rc == JSONSTREAM_OK)
		rc = backup ? backup_reader_finish(br, err, sizeof(err))
		            : ndjson_reader_finish(nr, err, sizeof(err));
	CHECK(rc == JSONSTREAM_OK || rc == JSONSTREAM_ERROR);
	CHECK(backup || rc == JSONSTREAM_OK);
	put(e, "=", 1);
	put(e, &rc, sizeof(rc));
	if (rc == JSONSTREAM_ERROR)
		put(e, err, strlen(err));
	backup_reader_free(br);
	ndjson_reader_free(nr);
}

static void check_reader(bool backup, const char *doc, size_t len, size_t max, size_t cut,
                         size_t step, size_t want, struct json_tokener *tok)
{
	struct events whole = {.want = want, .tok = tok};
	struct events other = {.tok = tok};

	run(backup, doc, len, max, 0, NULL, 1, 0, 0, &whole);
	run(backup, doc, len, max, 0, NULL, 1, cut, 0, &other);
	CHECK(other.len == whole.len && memcmp(other.buf, whole.buf, whole.len) == 0);
	other.len = 0;
	run(backup, doc, len, max, 0, NULL, 1, 0, step, &other);
	CHECK(other.len == whole.len && memcmp(other.buf, whole.buf, whole.len) == 0);

	if (whole.mark != 0) {
		/* Resume just after record number `want`: the rest must match. */
		uint64_t off = whole.pos.end_offset;
		other.len = 0;
		if (backup) {
			struct backup_position pos = {off, whole.name, whole.pos.collection_len,
			                              whole.pos.index + 1};
			run(true, doc + off, len - off, max, off, &pos, 1,
			    cut > off ? cut - off : 0, 0, &other);
		} else {
			run(false, doc + off, len - off, max, off, NULL, whole.pos.line + 1,
			    cut > off ? cut - off : 0, 0, &other);
		}
		CHECK(other.len == whole.len - whole.mark &&
		      memcmp(other.buf, whole.buf + whole.mark, other.len) == 0);
	}
	free(whole.buf);
	free(other.buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct json_tokener *tok;
	const char *doc;
	size_t len, max, cut, step, want;

	if (size < 3)
		return 0;
	if (tok == NULL)
		tok = jsonstream_tokener_new();
	/* byte 0: max_record_bytes (small, to reach the limits); byte 1: split
	 * point and step; byte 2: which record to resume after. */
	max = data[0] & 0x80 ? 4096 : 1 + (size_t)(data[0] & 0x3f);
	doc = (const char *)data + 3;
	len = size - 3;
	cut = len ? (size_t)data[1] * len / 255 : 0;
	step = 1 + (data[1] & 7);
	want = 1 + data[2] % 16;
	check_reader(true, doc, len, max, cut, step, want, tok);
	check_reader(false, doc, len, max, cut, step, want, tok);
	return 0;
}
