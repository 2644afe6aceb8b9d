/* import.c -- one batch at a time of a csv, ndjson or backup job (see import.h).
 *
 * Position bookkeeping: `pos` is always a record boundary (the end of the last
 * record handed to a batch, or the start of the file) expressed both as an
 * absolute byte offset and as (chunk seq, offset in chunk), since chunks may
 * differ in size. Bytes read past pos (a partial record at a batch's end) are
 * simply read again by the next batch's fresh reader.
 *
 * Reading ahead: while the server writes a batch, the worker reads the next
 * one (read_ahead, from cached chunks only: the connection is busy), so that
 * parsing and writing overlap instead of taking turns. `written` is where
 * the batch being written ends, the checkpoint it commits; pos runs ahead.
 */
#include "import.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "pgtypes.h"
#include "csv.h"
#include "jsonstream.h"
#include "jsonutil.h"
#include "log.h"
#include "pgconn.h"

/* Keys longer than this are record errors (DESIGN.md). */
#define MAX_KEY_BYTES 512

struct position {
	uint64_t offset;        /* absolute byte offset */
	int64_t chunk_seq;      /* chunk holding that byte */
	uint64_t chunk_base;    /* absolute offset of that chunk's first byte */
	uint64_t line;          /* csv/ndjson: line number at offset */
	int64_t records;        /* data records consumed (good + failed) */
	char *collection;       /* owned; backup: collection being read, NULL before any */
	uint64_t element_index; /* backup: next element's index in it */
};

struct chunk {
	PGresult *res;          /* owned; holds the bytes (no copy) */
	const char *data;       /* in res */
	size_t len;
	int64_t seq;            /* -1 = none */
};

struct reader {
	struct csv_parser *csv;
	struct ndjson_reader *ndjson;
	struct backup_reader *backup;
};

struct import {
	PGconn *conn;           /* borrowed */
	struct job *job;        /* borrowed */
	/* policy */
	int64_t batch_rows, batch_bytes, batch_pause_ms, max_errors_stored, max_record_bytes;
	int64_t lease_ms;
	char delimiter;
	const char *key_name;   /* borrowed from job->payload; NULL = default */
	/* where reading has got to, and where the batch being written ends */
	struct position pos, written;
	/* the cached chunks: two, so the next batch's usually are at hand */
	struct chunk chunks[2];
	int64_t end_seq;        /* the first seq past the last chunk; -1 = not known yet */
	/* the reader; open between calls only when a read ahead stopped for a chunk */
	struct reader rd;
	bool reading;
	int64_t read_seq;       /* the chunk being fed to the reader */
	uint64_t read_base;     /* its absolute offset */
	size_t read_len;        /* its length */
	size_t read_off;        /* where in it to go on */
	/* csv */
	char **header;          /* owned; column names */
	size_t header_n;
	int key_col;            /* -1: the record number is the key */
	/* the batch being built and written, the next one read ahead meanwhile */
	struct batch batch, next;
	struct batch *filling;  /* the one records go to */
	bool ahead;             /* next was (begun to be) read: ahead_rc is gather()'s result */
	int ahead_rc;
	char ahead_err[128];
	struct json_tokener *tok; /* owned */
	struct csv_parser *csv; /* borrowed from rd while it is open */
	bool file_error;        /* a file-level problem was found: fail the job */
	char message[512];      /* its description */
	/* rate for the ETA */
	struct timespec started;
	uint64_t started_offset;
	bool logged_start;
	struct timespec announced; /* last progress commit that sent a NOTIFY */
	bool announced_once;
};

static void find_key_col(struct import *im);
static void reader_close(struct import *im, struct reader *r);

/* ==== Settings and checkpoint ==== */

static const char sql_settings[] =
	"SELECT importer.setting_int('batch_rows', $1), importer.setting_int('batch_bytes', $1),"
	"       importer.setting_int('batch_pause_ms', $1),"
	"       importer.setting_int('max_errors_stored', $1),"
	"       importer.setting_int('max_record_bytes', $1),"
	"       (SELECT count(*) FROM importer.import_errors WHERE job_id = $2),"
	"       importer.setting_int('lease_seconds', $1)";

static int64_t opt_int(struct json_object *obj, const char *key, int64_t def)
{
	int64_t v;

	return jsonutil_get_int64(obj, key, &v) ? v : def;
}

static int64_t int_or(const PGresult *res, int col, int64_t def)
{
	return PQgetisnull(res, 0, col) ? def : strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

static void free_header(struct import *im)
{
	for (size_t i = 0; i < im->header_n; i++)
		free(im->header[i]);
	free(im->header);
	im->header = NULL;
	im->header_n = 0;
}

/* dst = src, with a copy of its collection. Returns 0 or -1 (out of memory). */
static int position_copy(struct position *dst, const struct position *src)
{
	char *coll = NULL;

	if (src->collection != NULL && (coll = strdup(src->collection)) == NULL)
		return -1;
	free(dst->collection);
	*dst = *src;
	dst->collection = coll;
	return 0;
}

/* Reads the checkpoint written by checkpoint_json(). */
static void load_checkpoint(struct import *im)
{
	struct json_object *cp = im->job->checkpoint, *hdr;
	const char *coll;

	if (cp == NULL || !json_object_is_type(cp, json_type_object))
		return;
	im->pos.offset = (uint64_t)opt_int(cp, "byte_offset", 0);
	im->pos.chunk_seq = opt_int(cp, "chunk_seq", 0);
	im->pos.chunk_base = im->pos.offset - (uint64_t)opt_int(cp, "chunk_offset", 0);
	im->pos.line = (uint64_t)opt_int(cp, "line", 1);
	im->pos.records = opt_int(cp, "record_index", 0);
	im->pos.element_index = (uint64_t)opt_int(cp, "element_index", 0);
	coll = jsonutil_get_string(cp, "collection");
	im->pos.collection = coll != NULL ? strdup(coll) : NULL;
	if (json_object_object_get_ex(cp, "header", &hdr) &&
	    json_object_is_type(hdr, json_type_array)) {
		im->header_n = json_object_array_length(hdr);
		im->header = calloc(im->header_n ? im->header_n : 1, sizeof(*im->header));
		for (size_t i = 0; i < im->header_n; i++) {
			const char *name =
				json_object_get_string(json_object_array_get_idx(hdr, i));

			im->header[i] = strdup(name != NULL ? name : "");
		}
	}
}

/* The checkpoint at the end of the batch being written. */
static struct json_object *checkpoint_json(const struct import *im)
{
	struct json_object *cp = json_object_new_object();

	jsonutil_add(cp, "byte_offset", json_object_new_int64((int64_t)im->written.offset));
	jsonutil_add(cp, "chunk_seq", json_object_new_int64(im->written.chunk_seq));
	jsonutil_add(cp, "chunk_offset",
		     json_object_new_int64((int64_t)(im->written.offset - im->written.chunk_base)));
	jsonutil_add(cp, "record_index", json_object_new_int64(im->written.records));
	jsonutil_add(cp, "line", json_object_new_int64((int64_t)im->written.line));
	if (im->header != NULL) {
		struct json_object *hdr = json_object_new_array();

		for (size_t i = 0; i < im->header_n; i++)
			jsonutil_append(hdr, json_object_new_string(im->header[i]));
		jsonutil_add(cp, "header", hdr);
	}
	if (im->written.collection != NULL) {
		jsonutil_add(cp, "collection", json_object_new_string(im->written.collection));
		jsonutil_add(cp, "element_index",
			     json_object_new_int64((int64_t)im->written.element_index));
	}
	return cp;
}

struct import *import_new(PGconn *conn, struct job *job, char *err, size_t errlen)
{
	struct import *im = calloc(1, sizeof(*im));
	const char *params[] = {job->user_id, job->id};
	const char *delim;
	PGresult *res;

	if (im == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	im->conn = conn;
	im->job = job;
	im->chunks[0].seq = im->chunks[1].seq = -1;
	im->end_seq = -1;
	im->filling = &im->batch;
	im->key_col = -1;
	im->pos.line = 1;
	res = PQexecParams(conn, sql_settings, 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		pgconn_error(conn, res, err, errlen);
		PQclear(res);
		import_free(im);
		return NULL;
	}
	im->batch_rows = opt_int(job->payload, "batch_size", int_or(res, 0, 5000));
	im->batch_bytes = int_or(res, 1, 8 << 20);
	im->batch_pause_ms = int_or(res, 2, 0);
	im->max_errors_stored = int_or(res, 3, 10000) - int_or(res, 5, 0);
	im->max_record_bytes = int_or(res, 4, 16 << 20);
	im->lease_ms = int_or(res, 6, 15) * 1000;
	PQclear(res);
	delim = jsonutil_get_string(job->payload, "delimiter");
	im->delimiter = delim != NULL && delim[0] != '\0' ? delim[0] : ',';
	im->key_name = jsonutil_get_string(job->payload, "key");
	im->tok = jsonstream_tokener_new();
	load_checkpoint(im);
	if (im->header != NULL)
		find_key_col(im);
	clock_gettime(CLOCK_MONOTONIC, &im->started);
	im->started_offset = im->pos.offset;
	return im;
}

void import_free(struct import *im)
{
	if (im == NULL)
		return;
	if (im->reading)
		reader_close(im, &im->rd);
	batch_free(&im->batch);
	batch_free(&im->next);
	PQclear(im->chunks[0].res);
	PQclear(im->chunks[1].res);
	free_header(im);
	free(im->pos.collection);
	free(im->written.collection);
	if (im->tok != NULL)
		json_tokener_free(im->tok);
	free(im);
}

/* ==== Reading chunks ==== */

static const char sql_chunk[] =
	"SELECT data FROM importer.import_file_chunks WHERE file_id = $1 AND seq = $2";

static const struct chunk *cached_chunk(const struct import *im, int64_t seq)
{
	for (int i = 0; i < 2; i++)
		if (im->chunks[i].seq == seq)
			return &im->chunks[i];
	return NULL;
}

/* Makes chunk seq a cached one, in place of the one before it (chunks are
 * read in order). Offline (the connection is busy) it only looks.
 * Returns 1, 0 past the last chunk, 2 offline and not cached, -1 on error. */
static int load_chunk(struct import *im, int64_t seq, bool offline, char *err, size_t errlen)
{
	char seq_text[24];
	const char *params[] = {im->job->file_id, seq_text};
	struct chunk *slot = im->chunks[0].seq < im->chunks[1].seq ? &im->chunks[0] : &im->chunks[1];
	PGresult *res;
	int rc = -1;

	if (cached_chunk(im, seq) != NULL)
		return 1;
	if (im->end_seq >= 0 && seq >= im->end_seq)
		return 0;
	if (offline)
		return 2;
	snprintf(seq_text, sizeof(seq_text), "%" PRId64, seq);
	/* Binary result: the bytes as they are, no hex decoding. */
	res = PQexecParams(im->conn, sql_chunk, 2, NULL, params, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		pgconn_error(im->conn, res, err, errlen);
	} else if (PQntuples(res) == 0) {
		im->end_seq = seq;
		rc = 0;
	} else {
		PQclear(slot->res);
		slot->res = res;
		slot->data = PQgetvalue(res, 0, 0);
		slot->len = (size_t)PQgetlength(res, 0, 0);
		slot->seq = seq;
		return 1;
	}
	PQclear(res);
	return rc;
}

/* Before a write that the next batch is read during: caches the chunks that
 * batch most likely needs -- the one it starts in and the next -- so that
 * reading it seldom has to stop for one. Returns 0 or -1 (err). */
static int prefetch(struct import *im, char *err, size_t errlen)
{
	for (int64_t seq = im->pos.chunk_seq; seq <= im->pos.chunk_seq + 1; seq++) {
		int rc = load_chunk(im, seq, false, err, errlen);

		if (rc <= 0)
			return rc;
	}
	return 0;
}

/* ==== Records ==== */

static bool batch_full(const struct import *im)
{
	const struct batch *b = im->filling;

	return (int64_t)b->nrecords + (int64_t)b->nerrors >= im->batch_rows ||
	       (int64_t)b->bytes >= im->batch_bytes;
}

/* Moves pos to a record boundary at absolute offset end, which lies in the
 * chunk being fed (or at its very end: then the next chunk holds the next byte). */
static void advance(struct import *im, uint64_t end)
{
	im->pos.offset = end;
	im->pos.chunk_seq = im->read_seq;
	im->pos.chunk_base = im->read_base;
	if (end >= im->read_base + im->read_len) {
		im->pos.chunk_seq++;
		im->pos.chunk_base += im->read_len;
	}
}

static int record_error(struct import *im, const char *collection, const char *key,
			const char *message, const char *raw, size_t raw_len)
{
	im->pos.records++;
	return batch_add_error(im->filling, im->pos.records, collection, key, message, raw, raw_len);
}

/* The key of an object record: a string or a number under key_name. */
static const char *object_key(struct json_object *obj, const char *key_name, char *buf,
			      size_t buflen)
{
	struct json_object *v;
	const char *text;

	if (!json_object_object_get_ex(obj, key_name, &v))
		return NULL;
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return NULL;
	/* json-c keeps a double's text as written but clamps integers to 64
	 * bits: a clamped value could make two records share a key, so it is
	 * refused (as is a number too long to be a key). */
	text = json_object_to_json_string(v);
	if (strcmp(text, "18446744073709551615") == 0 || strcmp(text, "9223372036854775807") == 0 ||
	    strcmp(text, "-9223372036854775808") == 0 || strlen(text) >= buflen)
		return NULL;
	snprintf(buf, buflen, "%s", text);
	return buf;
}

/* Validates an object record's key and adds it to the batch. */
static int add_object(struct import *im, const char *collection, struct json_object *obj,
		      const char *raw, size_t raw_len)
{
	char buf[MAX_KEY_BYTES + 1];
	const char *key_name = im->key_name != NULL ? im->key_name : "id";
	const char *key = object_key(obj, key_name, buf, sizeof(buf));

	if (key == NULL || key[0] == '\0') {
		char msg[600];

		snprintf(msg, sizeof(msg),
			 "missing key: no string or (64-bit) number \"%.500s\"", key_name);
		return record_error(im, collection, NULL, msg, raw, raw_len);
	}
	if (strlen(key) > MAX_KEY_BYTES || !jsonstream_valid_text(key, strlen(key)))
		return record_error(im, collection, NULL, "key longer than 512 bytes or not text",
				    raw, raw_len);
	/* The record's own bytes, validated by jsonstream_parse_object(): json-c
	 * would clamp integers beyond 64 bits when writing it back out. */
	im->pos.records++;
	return batch_add_record(im->filling, collection, key, raw, raw_len, im->pos.records);
}

/* The key column: the key option, else "id" if present, else none (record numbers). */
static void find_key_col(struct import *im)
{
	im->key_col = -1;
	for (size_t i = 0; i < im->header_n; i++)
		if (strcmp(im->header[i], im->key_name != NULL ? im->key_name : "id") == 0) {
			im->key_col = (int)i;
			break;
		}
}

struct column_ref {
	const char *name; /* borrowed from the header */
	size_t index;     /* 0-based position */
};

/* Orders columns by name, then position. */
static int by_name_then_index(const void *a, const void *b)
{
	const struct column_ref *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c != 0 ? c : (x->index > y->index) - (x->index < y->index);
}

/* Finds the earliest column whose name an earlier column already has, as a
 * pairwise scan would, in O(n log n): a 65,536-column header compared pair
 * by pair held a worker for most of a minute. Returns 1 and the two
 * 0-based positions if there is one, 0 if not, -1 out of memory. */
static int duplicate_column(char **names, size_t n, size_t *first, size_t *second)
{
	struct column_ref *refs = malloc((n > 0 ? n : 1) * sizeof(*refs));
	int found = 0;

	if (refs == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		refs[i] = (struct column_ref){names[i], i};
	qsort(refs, n, sizeof(*refs), by_name_then_index);
	for (size_t i = 1; i < n; i++) {
		/* the first two of a run of equal names: its first and second use */
		if (strcmp(refs[i - 1].name, refs[i].name) != 0 ||
		    (i >= 2 && strcmp(refs[i - 2].name, refs[i].name) == 0))
			continue;
		if (!found || refs[i].index < *second) {
			*first = refs[i - 1].index;
			*second = refs[i].index;
			found = 1;
		}
	}
	free(refs);
	return found;
}

static int csv_header(struct import *im, const struct csv_record *rec)
{
	size_t first = 0, second = 0;
	int dup;

	im->header = calloc(rec->nfields, sizeof(*im->header));
	if (im->header == NULL)
		return -1;
	im->header_n = rec->nfields;
	for (size_t i = 0; i < rec->nfields; i++) {
		if (!jsonstream_valid_text(rec->fields[i], rec->lens[i])) {
			snprintf(im->message, sizeof(im->message),
				 "the header's column %zu is not valid UTF-8 text", i + 1);
			im->file_error = true;
			return 1;
		}
		im->header[i] = strdup(rec->fields[i]);
		if (im->header[i] == NULL)
			return -1;
	}
	dup = duplicate_column(im->header, im->header_n, &first, &second);
	if (dup < 0)
		return -1;
	if (dup > 0) {
		snprintf(im->message, sizeof(im->message),
			 "the header names column \"%.200s\" twice (columns %zu and %zu)",
			 im->header[second], first + 1, second + 1);
		im->file_error = true;
		return 1;
	}
	find_key_col(im);
	if (im->key_name != NULL && im->key_col < 0) {
		snprintf(im->message, sizeof(im->message), "key column \"%.200s\" is not in the header",
			 im->key_name);
		im->file_error = true;
		return 1;
	}
	return 0;
}


static int on_csv_record(const struct csv_record *rec, void *arg)
{
	struct import *im = arg;
	const char *coll = im->job->collection;
	struct json_object *obj;
	char keybuf[24], msg[256];
	const char *key;
	int rc;

	if (im->header == NULL) {
		rc = csv_header(im, rec);
		advance(im, rec->end);
		im->pos.line = csv_parser_line(im->csv);
		return rc;
	}
	if (rec->nfields != im->header_n) {
		snprintf(msg, sizeof(msg), "expected %zu fields, found %zu", im->header_n,
			 rec->nfields);
		rc = record_error(im, coll, NULL, msg, rec->fields[0], rec->lens[0]);
		goto out;
	}
	for (size_t i = 0; i < rec->nfields; i++) {
		if (!jsonstream_valid_text(rec->fields[i], rec->lens[i])) {
			snprintf(msg, sizeof(msg),
				 "field %zu (%.60s) is not valid UTF-8 text or holds a NUL byte", i + 1,
				 im->header[i]);
			rc = record_error(im, coll, NULL, msg, NULL, 0);
			goto out;
		}
	}
	if (im->key_col >= 0) {
		key = rec->fields[im->key_col];
		if (rec->lens[im->key_col] == 0 || rec->lens[im->key_col] > MAX_KEY_BYTES) {
			rc = record_error(im, coll, NULL,
					  rec->lens[im->key_col] == 0 ? "missing key"
								      : "key longer than 512 bytes",
					  rec->fields[0], rec->lens[0]);
			goto out;
		}
	} else {
		snprintf(keybuf, sizeof(keybuf), "%" PRId64, im->pos.records + 1);
		key = keybuf;
	}
	obj = json_object_new_object();
	for (size_t i = 0; i < rec->nfields; i++)
		json_object_object_add(obj, im->header[i],
				       json_object_new_string_len(rec->fields[i], (int)rec->lens[i]));
	{
		size_t len;
		const char *text = json_object_to_json_string_length(
			obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

		im->pos.records++;
		rc = batch_add_record(im->filling, coll, key, text, len, im->pos.records);
	}
	json_object_put(obj);
out:
	advance(im, rec->end);
	im->pos.line = csv_parser_line(im->csv);
	if (rc != 0)
		return -1;
	return batch_full(im) ? 1 : 0;
}

static int on_csv_error(enum csv_status st, uint64_t start, uint64_t end, uint64_t line, void *arg)
{
	struct import *im = arg;
	int rc;

	if (im->header == NULL) {
		/* Without its header no row can be read: the next row must not
		 * silently take its place. */
		snprintf(im->message, sizeof(im->message),
			 "the header row cannot be read: %s (line %" PRIu64 ")", csv_status_text(st),
			 line);
		im->file_error = true;
		return 1;
	}
	rc = record_error(im, im->job->collection, NULL, csv_status_text(st), NULL, 0);

	advance(im, end);
	im->pos.line = csv_parser_line(im->csv);
	if (rc != 0)
		return -1;
	return batch_full(im) ? 1 : 0;
}

/* backup: notes the element's collection and index in pos. A name that
 * cannot be stored (or checkpointed) is a file-level problem. */
static bool enter_collection(struct import *im, const struct jsonstream_record *rec)
{
	if (rec->collection_len == 0 || rec->collection_len > 128 ||
	    !jsonstream_valid_text(rec->collection, rec->collection_len)) {
		snprintf(im->message, sizeof(im->message),
			 "collection names must be 1 to 128 bytes of UTF-8 text without NUL "
			 "(element at byte %" PRIu64 ")",
			 rec->start_offset);
		im->file_error = true;
		return false;
	}
	if (im->pos.collection == NULL || strcmp(im->pos.collection, rec->collection) != 0) {
		free(im->pos.collection);
		im->pos.collection = strdup(rec->collection);
	}
	im->pos.element_index = rec->index + 1;
	return true;
}

static int on_json_record(const struct jsonstream_record *rec, void *arg)
{
	struct import *im = arg;
	const char *coll = im->job->collection;
	struct json_object *obj = NULL;
	char msg[256];
	int rc;

	if (rec->metadata)
		return 0; /* backup metadata: not a record */
	if (rec->collection != NULL) {
		if (!enter_collection(im, rec))
			return 1;
		coll = rec->collection;
	}
	if (jsonstream_parse_object_tok(im->tok, rec->data, rec->len, &obj, msg, sizeof(msg)) != 0) {
		rc = record_error(im, coll, NULL, msg, rec->data, rec->len);
		goto out;
	}
	rc = add_object(im, coll, obj, rec->data, rec->len);
	json_object_put(obj);
out:
	advance(im, rec->end_offset);
	if (rec->line > 0)
		im->pos.line = rec->line + 1;
	if (rc != 0)
		return -1;
	return batch_full(im) ? 1 : 0;
}

static int on_json_error(const struct jsonstream_record *rec, void *arg)
{
	struct import *im = arg;
	int rc;

	if (rec->collection != NULL && !enter_collection(im, rec))
		return 1;
	rc = record_error(im, rec->collection != NULL ? rec->collection : im->job->collection, NULL,
			  rec->message, NULL, 0);
	advance(im, rec->end_offset);
	if (rec->line > 0)
		im->pos.line = rec->line + 1;
	if (rc != 0)
		return -1;
	return batch_full(im) ? 1 : 0;
}

/* ==== Readers ==== */

static int reader_open(struct import *im, struct reader *r, char *err, size_t errlen)
{
	size_t max = (size_t)im->max_record_bytes;
	const char *kind = im->job->kind;

	memset(r, 0, sizeof(*r));
	if (strcmp(kind, "csv") == 0) {
		r->csv = csv_parser_new(im->delimiter, max, im->pos.offset, im->pos.offset == 0);
		if (r->csv != NULL)
			csv_parser_set_line(r->csv, im->pos.line);
		im->csv = r->csv;
	} else if (strcmp(kind, "ndjson") == 0) {
		r->ndjson = ndjson_reader_new(max, im->pos.offset, im->pos.line, on_json_record,
					      on_json_error, im);
	} else if (strcmp(kind, "backup") == 0) {
		struct backup_position at = {im->pos.offset, im->pos.collection,
					     im->pos.collection ? strlen(im->pos.collection) : 0,
					     im->pos.element_index};

		r->backup = backup_reader_new(max, im->pos.collection != NULL ? &at : NULL,
					      on_json_record, on_json_error, im);
	}
	if (r->csv == NULL && r->ndjson == NULL && r->backup == NULL) {
		snprintf(err, errlen, "cannot start a %s reader", kind);
		return -1;
	}
	return 0;
}

/* Describes a csv file-level error in im->message. */
static void csv_failure(struct import *im, struct csv_parser *p)
{
	uint64_t start = 0, line = 0;
	enum csv_status st = csv_parser_error(p, &start, &line);

	if (st == CSV_OK || st == CSV_ERR_NOMEM)
		return;
	snprintf(im->message, sizeof(im->message), "%s (record starting on line %" PRIu64
		 ", byte %" PRIu64 ")", csv_status_text(st), line, start);
	im->file_error = true;
}

/* Feeds or (data NULL) finishes. Returns 0 (all consumed), 1 (batch full), or
 * -1 (out of memory; file-level problems set im->file_error instead). */
static int reader_push(struct import *im, struct reader *r, const char *data, size_t len)
{
	char msg[sizeof(im->message)];
	int rc;

	if (r->csv != NULL) {
		rc = data != NULL ? csv_parser_feed(r->csv, data, len, on_csv_record, on_csv_error, im)
				  : csv_parser_finish(r->csv, on_csv_record, on_csv_error, im);
		if (rc < 0)
			csv_failure(im, r->csv);
	} else {
		msg[0] = '\0';
		if (r->ndjson != NULL)
			rc = data != NULL ? ndjson_reader_feed(r->ndjson, data, len, msg, sizeof(msg))
					  : ndjson_reader_finish(r->ndjson, msg, sizeof(msg));
		else
			rc = data != NULL ? backup_reader_feed(r->backup, data, len, msg, sizeof(msg))
					  : backup_reader_finish(r->backup, msg, sizeof(msg));
		if (rc == JSONSTREAM_ERROR && !im->file_error && msg[0] != '\0') {
			snprintf(im->message, sizeof(im->message), "%s", msg);
			im->file_error = true;
		}
	}
	if (im->file_error)
		return 0;
	return rc < 0 ? -1 : rc > 0 ? 1 : 0;
}

static void reader_close(struct import *im, struct reader *r)
{
	im->csv = NULL;
	csv_parser_free(r->csv);
	ndjson_reader_free(r->ndjson);
	backup_reader_free(r->backup);
}

/* Reads records from pos into im->filling until the batch is full or the
 * file ends. Offline (the connection is busy) it reads cached chunks only:
 * needing another, it stops and keeps its reader open, and the next call
 * goes on from there. Returns 1 at end of file, 0 when the batch is full, 2
 * when stopped for a chunk, -1 on a database or memory error (err); a
 * file-level problem sets im->file_error. */
static int gather(struct import *im, bool offline, char *err, size_t errlen)
{
	const struct chunk *c;
	int rc;

	if (!im->reading) {
		if (reader_open(im, &im->rd, err, errlen) != 0)
			return -1;
		im->reading = true;
		im->read_seq = im->pos.chunk_seq;
		im->read_base = im->pos.chunk_base;
		im->read_off = (size_t)(im->pos.offset - im->pos.chunk_base);
	}
	for (;;) {
		rc = load_chunk(im, im->read_seq, offline, err, errlen);
		if (rc == 2)
			return 2;
		if (rc <= 0)
			break;
		c = cached_chunk(im, im->read_seq);
		if (im->read_off > c->len) {
			snprintf(im->message, sizeof(im->message),
				 "the checkpoint does not match the stored file");
			im->file_error = true;
			break;
		}
		im->read_len = c->len;
		rc = reader_push(im, &im->rd, c->data + im->read_off, c->len - im->read_off);
		if (rc != 0 || im->file_error)
			break;
		im->read_base += c->len;
		im->read_seq++;
		im->read_off = 0;
	}
	if (rc == 0 && !im->file_error) { /* past the last chunk: end of file */
		rc = reader_push(im, &im->rd, NULL, 0);
		rc = rc == 0 ? 1 : rc > 0 ? 0 : -1;
	} else if (rc > 0) {
		rc = 0; /* the batch is full */
	} else if (rc < 0 && err[0] == '\0') {
		snprintf(err, errlen, "out of memory");
	}
	if (im->file_error)
		rc = 0;
	reader_close(im, &im->rd);
	im->reading = false;
	return rc;
}

/* batch_write()'s while_writing: reads the next batch into im->next while
 * the server writes im->batch, and, if it read all of it, prepares its
 * write too. */
static void read_ahead(void *arg)
{
	struct import *im = arg;

	im->filling = &im->next;
	im->ahead_err[0] = '\0';
	im->ahead_rc = gather(im, true, im->ahead_err, sizeof(im->ahead_err));
	im->filling = &im->batch;
	im->ahead = true;
	if ((im->ahead_rc == 0 || im->ahead_rc == 1) && !im->file_error &&
	    batch_prepare(&im->next, im->job->mode) != 0) {
		snprintf(im->ahead_err, sizeof(im->ahead_err), "out of memory");
		im->ahead_rc = -1;
	}
}

/* Makes im->batch the batch to write: the one read ahead (finished now if it
 * stopped for a chunk) or a new one. Returns as gather(), never 2. */
static int next_batch(struct import *im, char *err, size_t errlen)
{
	struct batch done = im->batch;
	int rc;

	if (!im->ahead) {
		batch_reset(&im->batch);
		return gather(im, false, err, errlen);
	}
	im->batch = im->next;
	im->next = done;
	batch_reset(&im->next);
	im->ahead = false;
	rc = im->ahead_rc;
	if (rc < 0)
		snprintf(err, errlen, "%s", im->ahead_err);
	else if (rc == 2)
		rc = gather(im, false, err, errlen);
	return rc;
}

/* ==== Committing a batch ==== */

static const char sql_progress[] =
	"UPDATE importer.import_jobs SET phase = 'importing', progress = $3,"
	" processed_items = $4, failed_items = $5, total_items = $6, total_is_estimate = true,"
	" counts = $7::jsonb, checkpoint = $8::jsonb, current_step = $9, eta_seconds = $10::int,"
	" heartbeat_at = clock_timestamp()"
	" WHERE id = $1 AND lease_id = $2";

static void count_add(struct json_object *obj, const char *key, int64_t n)
{
	int64_t v = 0;

	jsonutil_get_int64(obj, key, &v);
	jsonutil_add(obj, key, json_object_new_int64(v + n));
}

/* The per-collection object of counts, created on first use. Borrowed. */
static struct json_object *collection_counts(struct json_object *counts, const char *name)
{
	struct json_object *colls, *c;

	if (!json_object_object_get_ex(counts, "collections", &colls) ||
	    !json_object_is_type(colls, json_type_object)) {
		colls = json_object_new_object();
		jsonutil_add(counts, "collections", colls);
	}
	if (!json_object_object_get_ex(colls, name, &c)) {
		c = json_object_new_object();
		jsonutil_add(c, "inserted", json_object_new_int64(0));
		jsonutil_add(c, "updated", json_object_new_int64(0));
		jsonutil_add(c, "unchanged", json_object_new_int64(0));
		jsonutil_add(c, "failed", json_object_new_int64(0));
		jsonutil_add(colls, name, c);
	}
	return c;
}

/* Adds the written batch to the job's counters. */
static void tally_batch(struct import *im)
{
	struct json_object *counts = im->job->counts;

	for (size_t i = 0; i < im->batch.ntallies; i++) {
		struct batch_tally *t = &im->batch.tallies[i];
		struct json_object *c = collection_counts(counts, t->collection);

		count_add(counts, "inserted", t->inserted);
		count_add(counts, "updated", t->updated);
		count_add(counts, "unchanged", t->unchanged);
		count_add(c, "inserted", t->inserted);
		count_add(c, "updated", t->updated);
		count_add(c, "unchanged", t->unchanged);
	}
	for (size_t i = 0; i < im->batch.nerrors; i++) {
		const char *coll = im->batch.errors[i].collection;

		count_add(counts, "failed", 1);
		if (coll != NULL)
			count_add(collection_counts(counts, coll), "failed", 1);
	}
	im->job->processed_items = im->written.records;
	im->job->failed_items += (int64_t)im->batch.nerrors;
}

static double seconds_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* n with thousands separators ("45,000"), in buf (at least 28 bytes). */
static const char *thousands(int64_t n, char *buf)
{
	char digits[24];
	int len = snprintf(digits, sizeof(digits), "%" PRId64, n < 0 ? -n : n), o = 0;

	if (n < 0)
		buf[o++] = '-';
	for (int i = 0; i < len; i++) {
		if (i > 0 && (len - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
	return buf;
}

/* Progress commits closer together than this are not announced (NOTIFY). */
#define PROGRESS_NOTIFY_MS 250

/* Writes the step's progress and checkpoint; with and_commit, also commits,
 * in the same round trip. Returns 0, or -1 with err filled; *ended (when
 * and_commit) tells whether the COMMIT ran, i.e. no transaction is left open. */
static int write_progress(struct import *im, bool and_commit, bool *ended, char *err,
			  size_t errlen)
{
	struct job *job = im->job;
	uint64_t size = job->file_size > 0 ? (uint64_t)job->file_size : 1;
	uint64_t done = im->written.offset < size ? im->written.offset : size;
	int64_t progress = (int64_t)(done * 100 / size), total = job->processed_items;
	double rate = (double)(done - im->started_offset) / seconds_since(&im->started);
	char p_progress[24], p_processed[24], p_failed[24], p_total[24], p_eta[24], step[160];
	char first[32], last[32], estimate[32];
	struct json_object *cp = checkpoint_json(im);
	int rc;

	if (progress > 99)
		progress = 99; /* 100 only when done */
	if (done > 0)
		total = (int64_t)((double)job->processed_items * (double)size / (double)done);
	snprintf(p_progress, sizeof(p_progress), "%" PRId64, progress);
	snprintf(p_processed, sizeof(p_processed), "%" PRId64, job->processed_items);
	snprintf(p_failed, sizeof(p_failed), "%" PRId64, job->failed_items);
	snprintf(p_total, sizeof(p_total), "%" PRId64, total);
	if (rate > 0)
		snprintf(p_eta, sizeof(p_eta), "%.0f", (double)(size - done) / rate);
	else
		snprintf(p_eta, sizeof(p_eta), "0");
	snprintf(step, sizeof(step), "Importing records %s\u2013%s of ~%s",
		 thousands(job->processed_items - (int64_t)im->batch.nrecords -
				   (int64_t)im->batch.nerrors + 1,
			   first),
		 thousands(job->processed_items, last), thousands(total, estimate));
	{
		const char *params[] = {
			job->id, job->lease_id, p_progress, p_processed, p_failed, p_total,
			json_object_to_json_string_ext(job->counts, JSON_C_TO_STRING_PLAIN),
			json_object_to_json_string_ext(cp, JSON_C_TO_STRING_PLAIN), step, p_eta};

		/* Announce progress at most every PROGRESS_NOTIFY_MS (see 0007). */
		bool quiet = and_commit && im->announced_once &&
			     seconds_since(&im->announced) * 1000 < PROGRESS_NOTIFY_MS;
		const char *quiet_param[] = {quiet ? "on" : "off"};
		/* A batch in the middle of a job commits without waiting for its
		 * WAL flush: if the server crashes before the flush, the batch's
		 * records and its checkpoint are lost together and the job
		 * redoes it from the previous checkpoint (the file is stored).
		 * The job's last step, which ends it, commits durably. */
		const struct pgconn_stmt all[] = {
			{.sql = "SELECT set_config('synchronous_commit', 'off', true),"
				" set_config('importer.quiet_progress', $1, true)",
			 .nparams = 1,
			 .params = quiet_param},
			{.sql = sql_progress, .nparams = 10, .params = params},
			{.sql = "COMMIT"}};
		const struct pgconn_stmt *stmts = and_commit ? all : all + 1;
		int n = and_commit ? 3 : 1;
		PGresult *res[3];

		rc = pgconn_pipeline(im->conn, stmts, n, res, err, errlen);
		for (int i = 0; rc == 0 && i < n; i++) {
			ExecStatusType st = PQresultStatus(res[i]);

			if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
				pgconn_error(im->conn, res[i], err, errlen);
				rc = -1;
			}
		}
		if (and_commit)
			*ended = res[n - 1] != NULL &&
				 PQresultStatus(res[n - 1]) != PGRES_PIPELINE_ABORTED;
		if (rc == 0 && !quiet) {
			clock_gettime(CLOCK_MONOTONIC, &im->announced);
			im->announced_once = true;
		}
		for (int i = 0; i < n; i++)
			PQclear(res[i]);
	}
	json_object_put(cp);
	return rc;
}

static const char *const sql_swap[] = {
	/* what the swap will insert and update, per collection */
	"SELECT s.collection, count(*) FILTER (WHERE r.record_key IS NULL),"
	"       count(*) FILTER (WHERE r.record_key IS NOT NULL)"
	"  FROM importer.replace_staging s LEFT JOIN importer.records r"
	"    ON r.user_id = $1 AND r.collection = s.collection AND r.record_key = s.record_key"
	" WHERE s.job_id = $2 GROUP BY s.collection",
	"DELETE FROM importer.records WHERE user_id = $1 AND (collection = $3 OR collection IN"
	"  (SELECT collection FROM importer.replace_staging WHERE job_id = $2))",
	"INSERT INTO importer.records (user_id, collection, record_key, data, job_id)"
	" SELECT $1, collection, record_key, data, $2 FROM importer.replace_staging"
	"  WHERE job_id = $2",
	"DELETE FROM importer.replace_staging WHERE job_id = $2",
};

/* replace: swaps the staged records in for the job's collections (csv and
 * ndjson: the job's collection even when the file had no good record), inside
 * the final batch's transaction, and counts them. */
static int swap_in(struct import *im, char *err, size_t errlen)
{
	/* Typed, so a statement may leave a parameter unused. */
	static const Oid types[] = {UUIDOID, UUIDOID, TEXTOID};
	const char *params[] = {im->job->user_id, im->job->id, im->job->collection};

	for (size_t i = 0; i < sizeof(sql_swap) / sizeof(sql_swap[0]); i++) {
		PGresult *res =
			PQexecParams(im->conn, sql_swap[i], 3, types, params, NULL, NULL, 0);
		ExecStatusType st = PQresultStatus(res);

		if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
			pgconn_error(im->conn, res, err, errlen);
			PQclear(res);
			return -1;
		}
		for (int row = 0; i == 0 && row < PQntuples(res); row++) {
			struct json_object *c =
				collection_counts(im->job->counts, PQgetvalue(res, row, 0));
			int64_t ins = strtoll(PQgetvalue(res, row, 1), NULL, 10);
			int64_t upd = strtoll(PQgetvalue(res, row, 2), NULL, 10);

			count_add(im->job->counts, "inserted", ins);
			count_add(im->job->counts, "updated", upd);
			count_add(c, "inserted", ins);
			count_add(c, "updated", upd);
		}
		PQclear(res);
	}
	return 0;
}

/* replace from scratch (new, or retried with restart): drop old staging. */
static int clear_staging(struct import *im, char *err, size_t errlen)
{
	const char *params[] = {im->job->id};
	PGresult *res = PQexecParams(im->conn, "DELETE FROM importer.replace_staging WHERE job_id = $1",
				     1, NULL, params, NULL, NULL, 0);
	int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;

	if (rc != 0)
		pgconn_error(im->conn, res, err, errlen);
	PQclear(res);
	return rc;
}

static void rollback(PGconn *conn)
{
	PQclear(PQexec(conn, "ROLLBACK"));
}

static int commit(PGconn *conn, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, "COMMIT");
	int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;

	if (rc != 0)
		pgconn_error(conn, res, err, errlen);
	PQclear(res);
	return rc;
}

/* Ends the job (outside any transaction). */
static enum job_result end_job(struct import *im, enum job_end end, const char *message,
			       char *err, size_t errlen)
{
	int rc = job_end(im->conn, im->job, end, message, err, errlen);

	return rc > 0 ? JOB_DONE : rc == 0 ? JOB_LOST : JOB_RETRY;
}

enum job_result import_step(struct import *im, bool stopping, char *err, size_t errlen)
{
	bool cancel = false, pause = false;
	int eof, rc;

	err[0] = '\0';
	if (stopping)
		return end_job(im, JOB_END_RELEASED, NULL, err, errlen);
	if (im->job->file_size == 0 && im->pos.offset == 0)
		return end_job(im, JOB_END_FAILED, "the file is empty", err, errlen);
	eof = next_batch(im, err, errlen);
	if (eof < 0)
		return JOB_RETRY;
	if (im->file_error) {
		/* It may quote the file (a header name): keep it storable text. */
		jsonstream_scrub_text(im->message, strlen(im->message));
		return end_job(im, JOB_END_FAILED, im->message, err, errlen);
	}
	if (eof && strcmp(im->job->kind, "csv") == 0 && im->header == NULL)
		return end_job(im, JOB_END_FAILED, "the file has no header row", err, errlen);
	if (position_copy(&im->written, &im->pos) != 0) {
		snprintf(err, errlen, "out of memory");
		return JOB_RETRY;
	}

	rc = job_begin_batch(im->conn, im->job, im->lease_ms, &cancel, &pause, err, errlen);
	if (rc <= 0)
		return rc == 0 ? JOB_LOST : JOB_RETRY;
	if (cancel || pause) {
		/* What this step read is dropped; the committed checkpoint stays.
		 * Ending inside the fenced transaction (which holds the row lock)
		 * means a resume cannot slip in between. */
		rc = job_end(im->conn, im->job, cancel ? JOB_END_CANCELLED : JOB_END_PAUSED, NULL,
			     err, errlen);
		if (rc <= 0) {
			rollback(im->conn);
			return rc == 0 ? JOB_LOST : JOB_RETRY;
		}
		return commit(im->conn, err, errlen) == 0 ? JOB_DONE : JOB_RETRY;
	}
	if (!im->logged_start && im->job->checkpoint == NULL &&
	    strcmp(im->job->mode, "replace") == 0 && clear_staging(im, err, errlen) != 0)
		goto retry;
	if (!im->logged_start) {
		char msg[128];

		snprintf(msg, sizeof(msg), im->started_offset > 0 ? "resumed at byte %" PRIu64
								 : "started (byte %" PRIu64 ")",
			 im->started_offset);
		if (job_log(im->conn, im->job, "info", "job.started", msg, NULL, err, errlen) != 0)
			goto retry;
		im->logged_start = true;
	}
	if (!eof && prefetch(im, err, errlen) != 0)
		goto retry;
	if (batch_write(im->conn, &im->batch, im->job->user_id, im->job->id, im->job->mode,
			im->job->dry_run, eof ? NULL : read_ahead, im, err, errlen) != 0 ||
	    batch_write_errors(im->conn, &im->batch, im->job->user_id, im->job->id,
			       im->max_errors_stored, err, errlen) != 0)
		goto retry;
	im->max_errors_stored -= (int64_t)im->batch.nerrors;
	if (eof && !im->job->dry_run && strcmp(im->job->mode, "replace") == 0 &&
	    swap_in(im, err, errlen) != 0)
		goto retry;
	tally_batch(im);
	if (!eof) { /* progress, checkpoint and COMMIT in one round trip */
		bool ended;

		if (write_progress(im, true, &ended, err, errlen) == 0)
			return JOB_CONTINUE;
		if (!ended)
			rollback(im->conn);
		return JOB_RETRY;
	}
	if (write_progress(im, false, NULL, err, errlen) != 0)
		goto retry;
	{
		rc = job_end(im->conn, im->job, JOB_END_COMPLETED, NULL, err, errlen);
		if (rc <= 0) {
			rollback(im->conn);
			return rc == 0 ? JOB_LOST : JOB_RETRY;
		}
	}
	if (commit(im->conn, err, errlen) != 0)
		return JOB_RETRY;
	return JOB_DONE;
retry:
	rollback(im->conn);
	return JOB_RETRY;
}

int import_pause_ms(const struct import *im)
{
	return (int)im->batch_pause_ms;
}
