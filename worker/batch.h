/* batch.h -- one batch of records and record errors, written set-based.
 *
 * Records are gathered in C, deduplicated (upsert: the last record for a key
 * wins; append: a repeated key is a record error), then written with one
 * INSERT … SELECT FROM unnest(…) statement. If PostgreSQL still rejects the
 * batch, it is bisected under SAVEPOINTs so that only the offending records
 * become record errors and the good ones land.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_BATCH_H
#define IMPORTER_BATCH_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct batch_record {
	char *collection;     /* owned */
	char *key;            /* owned */
	char *data;           /* owned; JSON object text */
	int64_t index;        /* 1-based data record number in the file */
};

struct batch_error {
	int64_t index;        /* 1-based data record number */
	char *key;            /* owned; may be NULL */
	char *collection;     /* owned; may be NULL */
	char *message;        /* owned */
	char *raw;            /* owned; excerpt of the record, may be NULL */
};

/* Per-collection outcome of a write. */
struct batch_tally {
	char *collection;     /* owned */
	int64_t inserted, updated, failed;
	int64_t unchanged;    /* upsert: existing records whose data was the same */
};

struct evbuffer;

struct batch {
	struct batch_record *records; /* owned */
	size_t nrecords, cap_records;
	struct batch_error *errors;   /* owned */
	size_t nerrors, cap_errors;
	size_t bytes;                 /* payload bytes gathered so far */
	struct batch_tally *tallies;  /* owned; filled by batch_write() */
	size_t ntallies;
	/* made by batch_prepare() (NULL order: not yet): the records to write
	 * (one per key, in key order; pointers into records) and the write's
	 * three parameters */
	struct batch_record **order;  /* owned */
	size_t norder;
	struct evbuffer *arrays[3];   /* owned */
};

/* Empties b, freeing what it owns, ready for reuse. */
void batch_reset(struct batch *b);

/* Frees everything b owns (not b itself). */
void batch_free(struct batch *b);

/* Adds a record; copies the strings. Returns 0 or -1 (out of memory). */
int batch_add_record(struct batch *b, const char *collection, const char *key, const char *data,
		     size_t data_len, int64_t index) __attribute__((warn_unused_result));

/* Adds a record error; copies the strings (raw is cut to a short excerpt,
 * on a UTF-8 boundary). Returns 0 or -1. */
int batch_add_error(struct batch *b, int64_t index, const char *collection, const char *key,
		    const char *message, const char *raw, size_t raw_len)
	__attribute__((warn_unused_result));

/* Gets b ready for batch_write() in mode: sorts and deduplicates its
 * records (keys repeated in append mode become errors of b) and builds the
 * write's parameters, so that the write only sends them. batch_write() does
 * it when the caller has not; a caller may do it ahead, while other work
 * waits. Add nothing to b after it. Returns 0 or -1 (out of memory). */
int batch_prepare(struct batch *b, const char *mode) __attribute__((warn_unused_result));

/* Writes the records into importer.records for user_id as job_id inside the
 * caller's open transaction. mode is "upsert", "append" or "replace" (which
 * stages the records in importer.replace_staging for the swap); dry_run writes
 * nothing but reports what would be inserted or updated. Records the
 * database rejects, and keys repeated in append mode, become errors of b.
 * Fills b->tallies. Returns 0, or -1 with err on a database failure that is
 * not about one record (the transaction is then aborted).
 * while_writing (may be NULL) is called once with arg while the server runs
 * the batch's write statement (see pgconn_pipeline_while(); it must not use
 * conn or b); not at all for a batch without records. */
int batch_write(PGconn *conn, struct batch *b, const char *user_id, const char *job_id,
		const char *mode, bool dry_run, void (*while_writing)(void *arg), void *arg,
		char *err, size_t errlen) __attribute__((warn_unused_result));

/* Inserts b's errors into importer.import_errors, at most max_rows of them.
 * Returns 0 or -1 with err. */
int batch_write_errors(PGconn *conn, const struct batch *b, const char *user_id,
		       const char *job_id, int64_t max_rows, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
