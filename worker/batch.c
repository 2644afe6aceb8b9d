/* batch.c -- gather, deduplicate and write one batch of records (see batch.h). */
#include "batch.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonstream.h"
#include "pgconn.h"
#include "pgtypes.h"

/* Longest excerpt of a bad record kept in import_errors.raw. */
#define RAW_EXCERPT 200

/* A record whose data is already what the file says is left as it is (no new
 * row version, no WAL for it, updated_at and job_id kept): re-importing an
 * unchanged file writes nothing. Such records are not RETURNed; the caller
 * counts them as unchanged (sent minus inserted and updated). */
static const char sql_upsert[] =
	"WITH w AS ("
	" INSERT INTO importer.records AS r (user_id, collection, record_key, data, job_id)"
	" SELECT $1, t.c, t.k, t.d::jsonb, $2"
	"   FROM unnest($3::text[], $4::text[], $5::text[]) AS t(c, k, d)"
	" ON CONFLICT (user_id, collection, record_key) DO UPDATE"
	"   SET data = EXCLUDED.data, job_id = EXCLUDED.job_id, updated_at = now()"
	"   WHERE r.data IS DISTINCT FROM EXCLUDED.data"
	" RETURNING r.collection, (r.xmax = 0) AS ins)"
	"SELECT collection, count(*) FILTER (WHERE ins), count(*) FILTER (WHERE NOT ins), ''"
	"  FROM w GROUP BY collection";

/* replace: stage (the last record for a key wins); counted at the swap. */
static const char sql_stage[] =
	"WITH w AS ("
	" INSERT INTO importer.replace_staging AS s (job_id, collection, record_key, data)"
	" SELECT $2, t.c, t.k, t.d::jsonb"
	"   FROM unnest($3::text[], $4::text[], $5::text[]) AS t(c, k, d)"
	" ON CONFLICT (job_id, collection, record_key) DO UPDATE SET data = EXCLUDED.data"
	" RETURNING 1)"
	"SELECT '', 0, 0, '' FROM w WHERE false";

/* Existing keys are refused: their ordinals come back as errors. */
static const char sql_append[] =
	"WITH t AS (SELECT * FROM unnest($3::text[], $4::text[], $5::text[])"
	"             WITH ORDINALITY AS t(c, k, d, n)),"
	" w AS ("
	" INSERT INTO importer.records AS r (user_id, collection, record_key, data, job_id)"
	" SELECT $1, t.c, t.k, t.d::jsonb, $2 FROM t"
	" ON CONFLICT (user_id, collection, record_key) DO NOTHING"
	" RETURNING r.collection, r.record_key)"
	"SELECT t.c, count(w.record_key), 0, string_agg(t.n::text, ',') FILTER (WHERE w.record_key IS NULL)"
	"  FROM t LEFT JOIN w ON w.collection = t.c AND w.record_key = t.k GROUP BY t.c";

/* What a write would do, without writing (the casts still validate).
 * replace rewrites every record it keeps, so it has no unchanged ones. */
static const char sql_dry_run[] =
	"WITH t AS (SELECT c, k, d::jsonb AS d, n FROM unnest($3::text[], $4::text[], $5::text[])"
	"             WITH ORDINALITY AS t(c, k, d, n))"
	"SELECT t.c, count(*) FILTER (WHERE r.record_key IS NULL),"
	"       count(*) FILTER (WHERE r.record_key IS NOT NULL AND ($6 = 'replace'"
	"                        OR $6 = 'upsert' AND r.data IS DISTINCT FROM t.d)),"
	"       string_agg(t.n::text, ',') FILTER (WHERE r.record_key IS NOT NULL AND $6 = 'append'),"
	"       count(*) FILTER (WHERE $6 = 'upsert' AND r.data = t.d)"
	"  FROM t LEFT JOIN importer.records r"
	"    ON r.user_id = $1 AND r.collection = t.c AND r.record_key = t.k"
	" GROUP BY t.c";

static const char sql_errors[] =
	"INSERT INTO importer.import_errors"
	" (job_id, user_id, record_index, record_key, collection, message, raw)"
	" SELECT $1, $2, t.i, t.k, t.c, t.m, t.r"
	"   FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])"
	"     AS t(i, k, c, m, r)";

void batch_reset(struct batch *b)
{
	for (size_t i = 0; i < b->nrecords; i++) {
		free(b->records[i].collection);
		free(b->records[i].key);
		free(b->records[i].data);
	}
	for (size_t i = 0; i < b->nerrors; i++) {
		free(b->errors[i].key);
		free(b->errors[i].collection);
		free(b->errors[i].message);
		free(b->errors[i].raw);
	}
	for (size_t i = 0; i < b->ntallies; i++)
		free(b->tallies[i].collection);
	b->nrecords = b->nerrors = b->ntallies = 0;
	b->bytes = 0;
	free(b->order);
	b->order = NULL;
	b->norder = 0;
	for (int a = 0; a < 3; a++) {
		if (b->arrays[a] != NULL)
			evbuffer_free(b->arrays[a]);
		b->arrays[a] = NULL;
	}
}

void batch_free(struct batch *b)
{
	batch_reset(b);
	free(b->records);
	free(b->errors);
	free(b->tallies);
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static char *dup_len(const char *s, size_t len)
{
	char *d = malloc(len + 1);

	if (d != NULL) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
	void *p;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 256;
	p = realloc(*arr, ncap * size);
	if (p == NULL)
		return -1;
	*arr = p;
	*cap = ncap;
	return 0;
}

int batch_add_record(struct batch *b, const char *collection, const char *key, const char *data,
		     size_t data_len, int64_t index)
{
	struct batch_record *r;

	if (grow((void **)&b->records, &b->cap_records, b->nrecords, sizeof(*r)) != 0)
		return -1;
	r = &b->records[b->nrecords];
	r->collection = strdup(collection);
	r->key = strdup(key);
	r->data = dup_len(data, data_len);
	r->index = index;
	b->nrecords++;
	b->bytes += data_len + strlen(key);
	return r->collection && r->key && r->data ? 0 : -1;
}

int batch_add_error(struct batch *b, int64_t index, const char *collection, const char *key,
		    const char *message, const char *raw, size_t raw_len)
{
	struct batch_error *e;

	if (grow((void **)&b->errors, &b->cap_errors, b->nerrors, sizeof(*e)) != 0)
		return -1;
	e = &b->errors[b->nerrors++];
	e->index = index;
	e->collection = dup_or_null(collection);
	e->key = dup_or_null(key);
	e->message = strdup(message);
	e->raw = NULL;
	/* Both go into text columns and may quote bad input: make them text. */
	if (e->message != NULL)
		jsonstream_scrub_text(e->message, strlen(e->message));
	if (raw != NULL) {
		size_t n = raw_len < RAW_EXCERPT ? raw_len : RAW_EXCERPT;

		/* Cut on a character boundary. */
		while (n > 0 && n < raw_len && ((unsigned char)raw[n] & 0xC0) == 0x80)
			n--;
		e->raw = dup_len(raw, n);
		if (e->raw != NULL)
			jsonstream_scrub_text(e->raw, n);
	}
	return e->message != NULL ? 0 : -1;
}

/* user_id, job_id, collections, keys, data, mode */
static const Oid param_types[] = {UUIDOID, UUIDOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
				  TEXTOID};

/* Appends s as one element of a PostgreSQL array literal (NULL as NULL). */
static void array_elem(struct evbuffer *buf, const char *s, bool first)
{
	if (!first)
		evbuffer_add(buf, ",", 1);
	if (s == NULL) {
		evbuffer_add(buf, "NULL", 4);
		return;
	}
	evbuffer_add(buf, "\"", 1);
	for (const char *p = s;;) {
		size_t run = strcspn(p, "\"\\");

		evbuffer_add(buf, p, run);
		p += run;
		if (*p == '\0')
			break;
		evbuffer_add(buf, "\\", 1);
		evbuffer_add(buf, p, 1);
		p++;
	}
	evbuffer_add(buf, "\"", 1);
}

/* text[] parameters of the record writes go in PostgreSQL's binary array
 * format (what array_recv reads): a header, then each element as a 4-byte
 * length and its bytes. The text literal form costs the server a quoting
 * parse of every byte (array_in), which measured at about half the time of
 * the whole write; this costs it a length check and a UTF-8 validation. */
static void put_be32(struct evbuffer *buf, uint32_t v)
{
	unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
			      (unsigned char)(v >> 8), (unsigned char)v};

	evbuffer_add(buf, b, 4);
}

static void binary_array_begin(struct evbuffer *buf, size_t n)
{
	put_be32(buf, 1);          /* dimensions */
	put_be32(buf, 0);          /* flags: no NULL elements */
	put_be32(buf, TEXTOID);    /* element type */
	put_be32(buf, (uint32_t)n);/* length of the dimension */
	put_be32(buf, 1);          /* its lower bound */
}

static void binary_array_add(struct evbuffer *buf, const char *s)
{
	size_t len = strlen(s);

	put_be32(buf, (uint32_t)len);
	evbuffer_add(buf, s, len);
}

/* Finishes an array literal and returns its text (valid until buf is freed). */
static const char *array_text(struct evbuffer *buf)
{
	evbuffer_add(buf, "}", 2); /* the closing brace and a NUL */
	return (const char *)evbuffer_pullup(buf, -1);
}

static void tally_add(struct batch *b, const char *collection, int64_t ins, int64_t upd,
		      int64_t unchanged, int64_t failed)
{
	for (size_t i = 0; i < b->ntallies; i++) {
		if (strcmp(b->tallies[i].collection, collection) == 0) {
			b->tallies[i].inserted += ins;
			b->tallies[i].updated += upd;
			b->tallies[i].unchanged += unchanged;
			b->tallies[i].failed += failed;
			return;
		}
	}
	struct batch_tally *t = realloc(b->tallies, (b->ntallies + 1) * sizeof(*b->tallies));
	char *name = strdup(collection);

	if (t == NULL || name == NULL) { /* counts are lost, never the records */
		free(name);
		if (t != NULL)
			b->tallies = t;
		return;
	}
	b->tallies = t;
	b->tallies[b->ntallies++] = (struct batch_tally){.collection = name,
	                                                 .inserted = ins,
	                                                 .updated = upd,
	                                                 .failed = failed,
	                                                 .unchanged = unchanged};
}

static int cmp_record(const void *pa, const void *pb)
{
	const struct batch_record *a = *(struct batch_record *const *)pa;
	const struct batch_record *b = *(struct batch_record *const *)pb;
	int c = strcmp(a->collection, b->collection);

	if (c == 0)
		c = strcmp(a->key, b->key);
	if (c == 0)
		c = a->index < b->index ? -1 : a->index > b->index;
	return c;
}

/* Whether a failed statement is about the data (isolate the record) rather
 * than the connection or the transaction (give up on the batch). */
static bool is_record_error(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return state != NULL && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 ||
				 strncmp(state, "54", 2) == 0);
}

static bool exec_ok(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	PQclear(res);
	return ok;
}

struct write_ctx {
	PGconn *conn;
	struct batch *b;
	const char *user_id, *job_id, *mode;
	bool dry_run;
	void (*while_writing)(void *arg); /* cleared once called */
	void *arg;
	char *err;
	size_t errlen;
};

static int add_failed(struct batch *b, struct batch_record *r, const char *message)
{
	tally_add(b, r->collection, 0, 0, 0, 1);
	return batch_add_error(b, r->index, r->collection, r->key, message, r->data,
			       strlen(r->data));
}

/* The write's three array parameters (collections, keys, data) for
 * recs[lo, hi), in the binary array format. Returns 0 or -1 (out of
 * memory; what was made is freed). */
static int build_arrays(struct evbuffer *arrays[3], struct batch_record *const *recs, size_t lo,
			size_t hi)
{
	for (int a = 0; a < 3; a++) {
		if ((arrays[a] = evbuffer_new()) == NULL) {
			while (a-- > 0)
				evbuffer_free(arrays[a]);
			return -1;
		}
		binary_array_begin(arrays[a], hi - lo);
	}
	for (size_t i = lo; i < hi; i++) {
		binary_array_add(arrays[0], recs[i]->collection);
		binary_array_add(arrays[1], recs[i]->key);
		binary_array_add(arrays[2], recs[i]->data);
	}
	for (int a = 0; a < 3; a++)
		evbuffer_pullup(arrays[a], -1); /* one block, sent as it is */
	return 0;
}

/* Writes order[lo, hi) under a savepoint; bisects on a record-level failure. */
static int write_range(struct write_ctx *w, size_t lo, size_t hi)
{
	struct batch_record *const *recs = w->b->order;
	/* All of them: the arrays batch_prepare() made; a part: its own. */
	bool whole = lo == 0 && hi == w->b->norder;
	struct evbuffer *own[3] = {NULL, NULL, NULL}, *const *arrays = whole ? w->b->arrays : own;
	const char *sql = w->dry_run			   ? sql_dry_run
			  : strcmp(w->mode, "append") == 0  ? sql_append
			  : strcmp(w->mode, "replace") == 0 ? sql_stage
							    : sql_upsert;
	const char *params[6];
	int lengths[6] = {0}, formats[6] = {0, 0, 1, 1, 1, 0};
	/* One round trip: the savepoint, the write (typed, so a statement may
	 * leave a parameter unused) and, if the write succeeds, the release. */
	const struct pgconn_stmt stmts[] = {
		{.sql = "SAVEPOINT batch_write"},
		{.sql = sql,
		 .nparams = 6,
		 .types = param_types,
		 .params = params,
		 .lengths = lengths,
		 .formats = formats},
		{.sql = "RELEASE SAVEPOINT batch_write"}};
	void (*work)(void *) = w->while_writing; /* the first write only */
	PGresult *sent[3], *res;
	int rc = -1;

	if (!whole && build_arrays(own, recs, lo, hi) != 0) {
		snprintf(w->err, w->errlen, "out of memory");
		return -1;
	}
	params[0] = w->user_id;
	params[1] = w->job_id;
	for (int a = 0; a < 3; a++) {
		lengths[2 + a] = (int)evbuffer_get_length(arrays[a]);
		params[2 + a] = (const char *)evbuffer_pullup(arrays[a], -1);
	}
	params[5] = w->mode;
	w->while_writing = NULL;
	if (pgconn_pipeline_while(w->conn, stmts, 3, sent, work, w->arg, w->err, w->errlen) != 0)
		goto out;
	res = sent[1];
	if (PQresultStatus(sent[0]) != PGRES_COMMAND_OK) {
		pgconn_error(w->conn, sent[0], w->err, w->errlen);
	} else if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		/* upsert returns only the records it wrote: every record sent
		 * counts as unchanged, less those inserted or updated below.
		 * The records are in collection order: one tally per run. */
		bool upsert = sql == sql_upsert;

		for (size_t i = lo, j; upsert && i < hi; i = j) {
			for (j = i + 1;
			     j < hi && strcmp(recs[j]->collection, recs[i]->collection) == 0; j++)
				;
			tally_add(w->b, recs[i]->collection, 0, 0, (int64_t)(j - i), 0);
		}
		for (int row = 0; row < PQntuples(res); row++) {
			const char *coll = PQgetvalue(res, row, 0);
			char *refused = PQgetvalue(res, row, 3);
			int64_t ins = strtoll(PQgetvalue(res, row, 1), NULL, 10);
			int64_t upd = strtoll(PQgetvalue(res, row, 2), NULL, 10);
			int64_t unchanged = 0;

			if (upsert)
				unchanged = -(ins + upd);
			else if (PQnfields(res) > 4) /* the dry run counts them */
				unchanged = strtoll(PQgetvalue(res, row, 4), NULL, 10);

			tally_add(w->b, coll, ins, upd, unchanged, 0);
			/* append: ordinals (1-based in this range) of existing keys */
			for (char *tok = strtok(refused, ","); tok != NULL; tok = strtok(NULL, ","))
				if (add_failed(w->b, recs[lo + (size_t)atoll(tok) - 1],
					       "key already exists (mode append)") != 0)
					goto out_clear;
		}
		if (PQresultStatus(sent[2]) == PGRES_COMMAND_OK)
			rc = 0;
		else
			pgconn_error(w->conn, sent[2], w->err, w->errlen);
	} else if (is_record_error(res)) {
		const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		char msg[512];

		/* What the user reads: the message, not libpq's "ERROR:  " form. */
		if (primary != NULL)
			snprintf(msg, sizeof(msg), "%s", primary);
		else
			pgconn_error(w->conn, res, msg, sizeof(msg));
		if (!exec_ok(w->conn, "ROLLBACK TO SAVEPOINT batch_write") ||
		    !exec_ok(w->conn, "RELEASE SAVEPOINT batch_write"))
			goto out_clear;
		if (hi - lo == 1)
			rc = add_failed(w->b, recs[lo], msg);
		else if (write_range(w, lo, lo + (hi - lo) / 2) == 0)
			rc = write_range(w, lo + (hi - lo) / 2, hi);
	} else {
		pgconn_error(w->conn, res, w->err, w->errlen);
	}
out_clear:
	for (int i = 0; i < 3; i++)
		PQclear(sent[i]);
out:
	for (int a = 0; a < 3; a++)
		if (own[a] != NULL)
			evbuffer_free(own[a]);
	return rc;
}

int batch_prepare(struct batch *b, const char *mode)
{
	bool append = strcmp(mode, "append") == 0;
	size_t n = 0, ndups = 0, nrecords = b->nrecords;
	struct batch_record **recs, **dups = NULL;
	int rc = -1;

	if (b->order != NULL) /* prepared already */
		return 0;
	/* At least one slot: a non-NULL order marks b prepared, records or not. */
	recs = malloc((nrecords ? nrecords : 1) * sizeof(*recs));
	dups = malloc((nrecords ? nrecords : 1) * sizeof(*dups));
	if (recs == NULL || dups == NULL)
		goto out;
	for (size_t i = 0; i < nrecords; i++)
		recs[i] = &b->records[i];
	qsort(recs, nrecords, sizeof(*recs), cmp_record);
	/* One record per key: upsert keeps the last in file order, append keeps
	 * the first and refuses the others. */
	for (size_t i = 0; i < nrecords; i++) {
		bool same_next = i + 1 < nrecords &&
				 strcmp(recs[i]->collection, recs[i + 1]->collection) == 0 &&
				 strcmp(recs[i]->key, recs[i + 1]->key) == 0;
		bool same_prev = n > 0 && strcmp(recs[n - 1]->collection, recs[i]->collection) == 0 &&
				 strcmp(recs[n - 1]->key, recs[i]->key) == 0;

		if (append ? !same_prev : !same_next)
			recs[n++] = recs[i];
		else if (append)
			dups[ndups++] = recs[i];
	}
	/* Adding errors never moves b->records, which the pointers point into. */
	for (size_t i = 0; i < ndups; i++)
		if (add_failed(b, dups[i], "key repeated in the file (mode append)") != 0)
			goto out;
	if (n > 0 && build_arrays(b->arrays, recs, 0, n) != 0)
		goto out;
	b->order = recs;
	b->norder = n;
	recs = NULL;
	rc = 0;
out:
	free(dups);
	free(recs);
	return rc;
}

int batch_write(PGconn *conn, struct batch *b, const char *user_id, const char *job_id,
		const char *mode, bool dry_run, void (*while_writing)(void *arg), void *arg,
		char *err, size_t errlen)
{
	struct write_ctx w = {.conn = conn, .b = b, .user_id = user_id, .job_id = job_id,
			      .mode = mode, .dry_run = dry_run, .while_writing = while_writing,
			      .arg = arg, .err = err, .errlen = errlen};

	if (b->nrecords == 0)
		return 0;
	if (batch_prepare(b, mode) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return b->norder > 0 ? write_range(&w, 0, b->norder) : 0;
}

int batch_write_errors(PGconn *conn, const struct batch *b, const char *user_id,
		       const char *job_id, int64_t max_rows, char *err, size_t errlen)
{
	struct evbuffer *is, *ks, *cs, *ms, *rs;
	size_t n = b->nerrors < (size_t)(max_rows > 0 ? max_rows : 0) ? b->nerrors
								      : (size_t)(max_rows > 0 ? max_rows : 0);
	const char *params[7];
	PGresult *res;
	int rc;

	if (n == 0)
		return 0;
	is = evbuffer_new();
	ks = evbuffer_new();
	cs = evbuffer_new();
	ms = evbuffer_new();
	rs = evbuffer_new();
	evbuffer_add(is, "{", 1);
	evbuffer_add(ks, "{", 1);
	evbuffer_add(cs, "{", 1);
	evbuffer_add(ms, "{", 1);
	evbuffer_add(rs, "{", 1);
	for (size_t i = 0; i < n; i++) {
		char idx[32];

		snprintf(idx, sizeof(idx), "%lld", (long long)b->errors[i].index);
		array_elem(is, b->errors[i].index > 0 ? idx : NULL, i == 0);
		array_elem(ks, b->errors[i].key, i == 0);
		array_elem(cs, b->errors[i].collection, i == 0);
		array_elem(ms, b->errors[i].message, i == 0);
		array_elem(rs, b->errors[i].raw, i == 0);
	}
	params[0] = job_id;
	params[1] = user_id;
	params[2] = array_text(is);
	params[3] = array_text(ks);
	params[4] = array_text(cs);
	params[5] = array_text(ms);
	params[6] = array_text(rs);
	res = PQexecParams(conn, sql_errors, 7, NULL, params, NULL, NULL, 0);
	rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
	if (rc != 0)
		pgconn_error(conn, res, err, errlen);
	PQclear(res);
	evbuffer_free(is);
	evbuffer_free(ks);
	evbuffer_free(cs);
	evbuffer_free(ms);
	evbuffer_free(rs);
	return rc;
}
