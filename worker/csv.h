/* csv.h -- incremental (push-style) RFC 4180 parser for CSV files read in chunks.
 *
 * The caller feeds the file's bytes in pieces of any size and gets one
 * callback per record; the result does not depend on where the pieces are
 * split. Offsets are absolute, so a record's end can be checkpointed and a new
 * parser started there later. Memory is bounded by the largest accepted record
 * (max_record_bytes), never by the file. This module owns the CSV grammar only:
 * it does not validate UTF-8, NUL bytes or field counts (the caller does that
 * per record).
 *
 * Grammar (decisions beyond RFC 4180):
 *  - Records end with LF, CRLF or a lone CR, outside quotes. Inside quotes all
 *    three are kept as data. A physical line ends at any of the three.
 *  - A UTF-8 BOM (EF BB BF) is skipped only at the very start of the file
 *    (at_file_start); elsewhere its bytes are data.
 *  - Blank lines (a line terminator at the start of a line) are skipped; they
 *    yield no record but count in line numbers. A line holding only `""` or
 *    spaces is a record with one field.
 *  - A quote inside an unquoted field (ab"c) is kept literally (lenient).
 *  - Anything but a delimiter or line terminator after a closing quote
 *    ("ab"c or "ab" ,) is CSV_ERR_BAD_QUOTE: the record's end is found as
 *    usual (the rest of that field is read as unquoted, later fields normally,
 *    so quote state is kept) and the whole record is reported to on_error.
 *  - A record is too long when its raw bytes, without the line terminator,
 *    exceed max_record_bytes (CSV_ERR_TOO_LONG), or when it has more than
 *    CSV_MAX_FIELDS fields (CSV_ERR_TOO_MANY_FIELDS). Either is skipped
 *    without being buffered, keeping quote state, and reported to on_error.
 *  - An unterminated quoted field at end of input is a file-level error.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_CSV_H
#define IMPORTER_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Records with more fields than this are CSV_ERR_TOO_MANY_FIELDS (bounds the
 * per-field arrays to ~1 MiB however small the fields are). */
#define CSV_MAX_FIELDS 65536

struct csv_parser;

/* One record, as handed to csv_record_cb. Everything is borrowed; valid only
 * during the callback. */
struct csv_record {
	const char *const *fields; /* borrowed; unquoted, "" unescaped; each followed by a NUL
				      that lens[] does not count */
	const size_t *lens;        /* borrowed; field lengths (fields may hold NUL, CR, LF) */
	size_t nfields;            /* >= 1 */
	uint64_t start;            /* absolute offset of the record's first byte */
	uint64_t end;              /* absolute offset just past its line terminator (or EOF) */
	uint64_t line;             /* 1-based physical line where the record starts */
};

enum csv_status {
	CSV_OK = 0,
	CSV_ERR_UNTERMINATED_QUOTE, /* file-level: input ended inside a quoted field */
	CSV_ERR_BAD_QUOTE,          /* record-level: text after a closing quote */
	CSV_ERR_TOO_LONG,           /* record-level: over max_record_bytes */
	CSV_ERR_TOO_MANY_FIELDS,    /* record-level: over CSV_MAX_FIELDS fields */
	CSV_ERR_NOMEM,              /* out of memory; the parser is unusable */
};

/* Called once per record, the header row included (the caller decides what it
 * is). Return 0 to go on, non-zero (preferably positive) to stop: the feed
 * call then returns that value, having consumed input exactly up to rec->end.
 * Must not call csv_parser_feed/finish/free on the same parser. */
typedef int (*csv_record_cb)(const struct csv_record *rec, void *arg);

/* Called instead of csv_record_cb for a record the parser rejects (status
 * CSV_ERR_BAD_QUOTE, CSV_ERR_TOO_LONG or CSV_ERR_TOO_MANY_FIELDS). The record
 * spans [start, end) and starts on line; it is skipped and parsing goes on
 * with the next one. Return value as for csv_record_cb. */
typedef int (*csv_error_cb)(enum csv_status st, uint64_t start, uint64_t end, uint64_t line,
			    void *arg);

/* Creates a parser whose first input byte is at absolute offset start_offset,
 * on line 1 (see csv_parser_set_line()). at_file_start: the input begins the
 * file, so a UTF-8 BOM there is skipped. To resume from a checkpoint, pass a
 * record's end with at_file_start false.
 * Returns: new object; caller frees with csv_parser_free(). NULL if delimiter
 * is '"', CR or LF, if max_record_bytes is 0, or out of memory. */
struct csv_parser *csv_parser_new(char delimiter, size_t max_record_bytes, uint64_t start_offset,
				  bool at_file_start);

/* Sets the line number of the first input byte (default 1), for a parser
 * resumed at an offset whose line csv_parser_line() gave. Call before the
 * first feed. */
void csv_parser_set_line(struct csv_parser *p, uint64_t line);

/* Parses len bytes (the next piece of input; data may be NULL if len is 0),
 * calling on_record/on_error for every record that ends in it (either may be
 * NULL to ignore those). A record ending in CR is reported only once the next
 * byte (or the end of input) shows whether an LF belongs to it.
 * Returns: 0 when all of data was consumed; a callback's non-zero value when
 * it stopped (then resume by feeding from csv_parser_offset()); -1 on failure
 * (csv_parser_error() says why; the parser is then unusable). */
int csv_parser_feed(struct csv_parser *p, const char *data, size_t len, csv_record_cb on_record,
		    csv_error_cb on_error, void *arg) __attribute__((warn_unused_result));

/* Ends the input: reports a last record that lacks a line terminator.
 * Returns: 0; a callback's non-zero value; or -1 on a file-level error
 * (CSV_ERR_UNTERMINATED_QUOTE, the job fails) or out of memory, which
 * csv_parser_error() describes. Afterwards only csv_parser_free() and the
 * accessors may be called. */
int csv_parser_finish(struct csv_parser *p, csv_record_cb on_record, csv_error_cb on_error,
		      void *arg) __attribute__((warn_unused_result));

/* The file-level error after a -1 return, else CSV_OK. When start/line are
 * not NULL they receive where the offending record starts. */
enum csv_status csv_parser_error(const struct csv_parser *p, uint64_t *start, uint64_t *line);

/* Absolute offset of the next byte the parser expects. Inside a callback this
 * is the reported record's end. */
uint64_t csv_parser_offset(const struct csv_parser *p);

/* Physical line (1-based) at csv_parser_offset(). Inside a callback this is
 * the line at the record's end: store it with the checkpoint to resume with
 * exact line numbers. */
uint64_t csv_parser_line(const struct csv_parser *p);

/* Bytes of heap the parser holds now (for tests and statistics). */
size_t csv_parser_memory(const struct csv_parser *p);

/* Frees p. NULL-safe. */
void csv_parser_free(struct csv_parser *p);

/* A static English description of st ("record longer than max_record_bytes"). */
const char *csv_status_text(enum csv_status st);

#endif
