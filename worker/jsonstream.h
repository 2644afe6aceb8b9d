/* jsonstream.h -- push-style readers for NDJSON and JSON backup files, and the record parser.
 *
 * The worker reads an import file one chunk at a time and pushes the bytes in
 * here; a reader cuts them into records (an NDJSON line, one element of a
 * backup collection) and hands each to a callback with its absolute byte
 * offsets, so the caller can checkpoint after any record and resume there with
 * a new reader. Memory grows with the largest record (at most max_record_bytes),
 * never with the file. The readers only find record boundaries; parsing one
 * record is jsonstream_parse_object()'s job, and batching, counting and the
 * database are the caller's.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_JSONSTREAM_H
#define IMPORTER_JSONSTREAM_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest nesting accepted: in a record (jsonstream_parse_object) and anywhere
 * in a backup document (the top-level object counts as 1). */
#define JSONSTREAM_MAX_DEPTH 256

/* Largest max_record_bytes the constructors accept (json-c takes an int length). */
#define JSONSTREAM_MAX_RECORD_LIMIT ((size_t)1 << 30)

/* What the feed and finish functions return. After JSONSTREAM_ERROR or
 * JSONSTREAM_STOPPED a reader only accepts *_free(); other calls return
 * JSONSTREAM_ERROR. */
enum jsonstream_status {
	JSONSTREAM_ERROR = -1,  /* file-level problem (or out of memory); err says what */
	JSONSTREAM_OK = 0,      /* all bytes consumed */
	JSONSTREAM_STOPPED = 1, /* a callback returned non-zero; the rest was not read */
};

/* One record, or one record-level error, as handed to a callback. To resume
 * after it: NDJSON: ndjson_reader_new(max, end_offset, line + 1, ...); backup:
 * backup_reader_new(max, &(struct backup_position){end_offset, collection,
 * collection_len, index + 1}, ...). */
struct jsonstream_record {
	const char *data;       /* borrowed until the callback returns; not NUL-terminated.
	                           NULL in an error, and for oversized metadata */
	size_t len;             /* bytes at data (0 when data is NULL) */
	uint64_t start_offset;  /* absolute offset of the record's first byte */
	uint64_t end_offset;    /* absolute offset where reading resumes after it: NDJSON
	                           past the line's LF (or end of file), backup just past the
	                           element's last byte */
	uint64_t line;          /* NDJSON: 1-based line number; backup: 0 */
	uint64_t index;         /* backup: 0-based element index in the collection; NDJSON: 0 */
	const char *collection; /* backup: member name, unescaped, NUL-terminated, borrowed
	                           until the callback returns (may hold NUL or invalid UTF-8:
	                           check with jsonstream_valid_text); NDJSON: NULL */
	size_t collection_len;  /* bytes in collection, without the terminating NUL */
	bool metadata;          /* backup: a top-level member that is not an array (not a
	                           record: data is the member's value, index 0) */
	const char *message;    /* error callback only: what is wrong (ASCII); else NULL */
};

/* Called for each record and each record-level error. Returns 0 to go on, or
 * non-zero to stop: the feed or finish call then returns JSONSTREAM_STOPPED
 * without reading further (e.g. after a batch commit when a pause was
 * requested). */
typedef int (*jsonstream_record_cb)(const struct jsonstream_record *rec, void *arg);

/* ==== Record parsing ==== */

/* A json-c tokener set up as jsonstream_parse_object_tok() wants it (strict,
 * depth JSONSTREAM_MAX_DEPTH). Returns: new object; caller frees with
 * json_tokener_free(). NULL when out of memory. */
struct json_tokener *jsonstream_tokener_new(void);

/* Parses one record: buf[0..len) must be exactly one JSON object, optionally
 * surrounded by whitespace. Record-level problems -- not JSON (json-c strict
 * mode plus our own lexical check, which also refuses NaN, Infinity, raw
 * control characters in strings, bad escapes and unpaired surrogates), not an
 * object, data after the value, nesting deeper than JSONSTREAM_MAX_DEPTH,
 * invalid UTF-8, a NUL byte or \u0000 -- return -1 with a message (ASCII) in
 * err and *out set to NULL. Returns 0 on success.
 * Returns in *out: new object; caller frees with json_object_put(). */
int jsonstream_parse_object(const char *buf, size_t len, struct json_object **out, char *err,
                            size_t errlen) __attribute__((warn_unused_result));

/* Same, reusing tok (from jsonstream_tokener_new()) instead of allocating a
 * tokener per call; tok is reset first and may be reused afterwards. */
int jsonstream_parse_object_tok(struct json_tokener *tok, const char *buf, size_t len,
                                struct json_object **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Whether s[0..len) is valid UTF-8 (RFC 3629: no overlongs, surrogates or
 * code points above U+10FFFF) without NUL bytes, i.e. storable as PostgreSQL text. */
bool jsonstream_valid_text(const char *s, size_t len);

/* Makes s[0..len) storable as text in place: every byte that is not part of
 * a valid UTF-8 sequence, and every NUL, becomes '?'. For excerpts and
 * messages that quote user data. */
void jsonstream_scrub_text(char *s, size_t len);

/* ==== NDJSON: one JSON value per line ==== */

/* Lines end in LF or CRLF; the last one may lack it. A line is handed over
 * without its terminator; lines of only spaces, tabs and CRs are skipped (they
 * still count in line numbers). A UTF-8 BOM at byte 0 is dropped from line 1.
 * A line of more than max_record_bytes bytes (terminator excluded) goes to
 * on_error instead, without being buffered. */
struct ndjson_reader;

/* Starts reading at absolute offset start_offset, which is the start of line
 * number start_line (1 for a new file). on_line and on_error may be NULL
 * (ignored). Retains cb_arg until ndjson_reader_free().
 * Returns: new object; caller frees with ndjson_reader_free(). NULL when
 * max_record_bytes is 0 or over JSONSTREAM_MAX_RECORD_LIMIT, start_line is 0,
 * or out of memory. */
struct ndjson_reader *ndjson_reader_new(size_t max_record_bytes, uint64_t start_offset,
                                        uint64_t start_line, jsonstream_record_cb on_line,
                                        jsonstream_record_cb on_error, void *cb_arg);

/* Consumes data[0..len) (the next bytes of the file), calling back for every
 * line completed. Returns a jsonstream_status; JSONSTREAM_ERROR only when out
 * of memory or misused. */
int ndjson_reader_feed(struct ndjson_reader *r, const char *data, size_t len, char *err,
                       size_t errlen) __attribute__((warn_unused_result));

/* End of file: hands over a last line without LF. Returns a jsonstream_status. */
int ndjson_reader_finish(struct ndjson_reader *r, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Frees r. NULL-safe. */
void ndjson_reader_free(struct ndjson_reader *r);

/* ==== Backup: {"metadata":{...},"users":[{...},...],"businesses":[...]} ==== */

/* The document is one JSON object. Each member whose value is an array is a
 * collection: every element of it (whatever its type) goes to on_element, in
 * document order; duplicate names are simply read again. Any other member is
 * metadata: it goes to on_element too, with metadata set (data NULL when it is
 * over max_record_bytes), and is never an error. An element over
 * max_record_bytes goes to on_error and is skipped without being buffered.
 * Inside elements only strings, brackets and depth are tracked; grammar is
 * left to jsonstream_parse_object(). File-level problems (not an object at the
 * top, broken structure between elements, mismatched brackets, nesting deeper
 * than JSONSTREAM_MAX_DEPTH, data after the closing brace, truncation) make
 * feed or finish return JSONSTREAM_ERROR with a message naming the byte offset.
 * A UTF-8 BOM at byte 0 is skipped. */
struct backup_reader;

/* A checkpoint: inside the array of collection, before element element_index.
 * byte_offset is the end_offset of element element_index - 1, i.e. just past
 * its last byte, before the ',' or ']' that follows it (any offset in the
 * whitespace after it works too); for element_index 0, just past the '['.
 * The resumed reader is then in exactly the state the first one was in, so it
 * reports exactly the rest: that collection's remaining elements, then the
 * rest of the document, file-level errors included. A position that does not
 * match the file shows up as a file-level error (or garbage records) -- the
 * reader cannot tell. */
struct backup_position {
	uint64_t byte_offset;   /* absolute offset to resume at */
	const char *collection; /* borrowed; the collection name (unescaped) */
	size_t collection_len;  /* bytes in collection */
	uint64_t element_index; /* index of the next element in that collection */
};

/* Starts a reader at the start of the file (resume NULL) or at a checkpoint
 * (the name is copied). on_element and on_error may be NULL (ignored). Retains
 * cb_arg until backup_reader_free().
 * Returns: new object; caller frees with backup_reader_free(). NULL when
 * max_record_bytes is 0 or over JSONSTREAM_MAX_RECORD_LIMIT, resume has a NULL
 * or over-long collection, or out of memory. */
struct backup_reader *backup_reader_new(size_t max_record_bytes,
                                        const struct backup_position *resume,
                                        jsonstream_record_cb on_element,
                                        jsonstream_record_cb on_error, void *cb_arg);

/* Consumes data[0..len) (the next bytes of the file, starting at the resume
 * offset for a resumed reader), calling back for every element completed.
 * Returns a jsonstream_status; JSONSTREAM_ERROR fills err. */
int backup_reader_feed(struct backup_reader *r, const char *data, size_t len, char *err,
                       size_t errlen) __attribute__((warn_unused_result));

/* End of file: JSONSTREAM_OK only if the top-level object was closed (and, for
 * a new reader, there was one). Returns a jsonstream_status; err says e.g.
 * "unexpected end of file inside collection \"users\"". */
int backup_reader_finish(struct backup_reader *r, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Frees r. NULL-safe. */
void backup_reader_free(struct backup_reader *r);

#endif
