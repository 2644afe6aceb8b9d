/* csv.c -- incremental RFC 4180 parser (see csv.h for the grammar).
 *
 * One explicit state machine, resumable at any byte. Inside a field the work
 * is a table-driven scan that stops only at the few bytes that matter there,
 * followed by one memcpy of the whole span into the record buffer, so the
 * common unquoted case costs a table lookup per byte. Fields of a record are
 * stored back to back in one reused buffer, each followed by a NUL; their
 * pointers are computed only when the record is handed out.
 */
#include "csv.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_BUF    4096
#define INITIAL_FIELDS 64
#define BYTES_ONES     UINT64_C(0x0101010101010101) /* 0x01 in every byte */
#define BYTES_HIGHS    UINT64_C(0x8080808080808080) /* 0x80 in every byte */

enum state {
	ST_BOM,      /* at the file's start, matching a UTF-8 BOM (matched bytes held back) */
	ST_RECORD,   /* at a line start: a record, a blank line, or the end */
	ST_FIELD,    /* in a record, at a field's first byte (after a delimiter) */
	ST_UNQUOTED, /* inside an unquoted field */
	ST_QUOTED,   /* inside a quoted field */
	ST_QUOTE,    /* after a quote inside a quoted field: closing, or the first of "" */
	ST_CR,       /* after a CR that ended a line: an LF right after belongs to it */
};

struct csv_parser {
	enum state state;
	unsigned char delim;
	unsigned char bom_held;   /* ST_BOM: BOM bytes matched so far (not yet run) */
	bool cr_ends_record;      /* ST_CR: a record (not a blank line) ended at the CR */
	bool quoted_cr;           /* ST_QUOTED: last byte was a CR, so an LF is the same line end */
	enum csv_status bad;      /* current record: first record-level problem, or CSV_OK */
	enum csv_status error;    /* file-level error; sticky */
	uint64_t max_record_bytes;
	uint64_t pos;             /* absolute offset of the next byte to run */
	uint64_t line;            /* physical line at pos */
	uint64_t rec_start;       /* current record's first byte */
	uint64_t rec_line;        /* current record's first line */
	uint64_t err_start;       /* file-level error: its record's start */
	uint64_t err_line;        /* ... and line */
	char *buf;                /* owned; the record's fields, each followed by a NUL */
	size_t len;               /* bytes used in buf */
	size_t cap;               /* bytes allocated in buf */
	size_t field_start;       /* where the current field starts in buf */
	size_t *lens;             /* owned; lengths of the finished fields */
	const char **fields;      /* owned; filled in only when a record is emitted */
	size_t nfields;           /* finished fields of the current record */
	size_t fcap;              /* entries allocated in lens and fields */
	unsigned char stop_unquoted[256]; /* bytes that end a span in ST_UNQUOTED */
	unsigned char stop_quoted[256];   /* bytes that end a span in ST_QUOTED */
	uint64_t words_unquoted[3];       /* the same bytes, each repeated in a word */
	uint64_t words_quoted[3];
};

static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};

/* ==== Buffers ==== */

static int grow_buf(struct csv_parser *p, size_t need)
{
	size_t cap = p->cap;
	char *nb;

	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	nb = realloc(p->buf, cap);
	if (nb == NULL) {
		p->error = CSV_ERR_NOMEM;
		return -1;
	}
	p->buf = nb;
	p->cap = cap;
	return 0;
}

/* Appends n bytes of the current field, unless the record is already rejected
 * (then nothing of it is kept: that is what bounds memory while skipping). */
static inline int append(struct csv_parser *p, const unsigned char *src, size_t n)
{
	if (p->bad != CSV_OK || n == 0)
		return 0;
	if (n > p->cap - p->len && grow_buf(p, p->len + n) < 0)
		return -1;
	memcpy(p->buf + p->len, src, n);
	p->len += n;
	return 0;
}

/* Drops what was kept of the current record and remembers why. */
static void reject(struct csv_parser *p, enum csv_status st)
{
	if (p->bad != CSV_OK)
		return;
	p->bad = st;
	p->len = 0;
	p->nfields = 0;
	p->field_start = 0;
}

/* The record has grown to end at absolute offset `at` (terminator excluded). */
static inline void check_len(struct csv_parser *p, uint64_t at)
{
	if (at - p->rec_start > p->max_record_bytes)
		reject(p, CSV_ERR_TOO_LONG);
}

static int end_field(struct csv_parser *p)
{
	if (p->bad != CSV_OK)
		return 0;
	if (p->nfields == CSV_MAX_FIELDS) {
		reject(p, CSV_ERR_TOO_MANY_FIELDS);
		return 0;
	}
	if (p->nfields == p->fcap) {
		size_t ncap = p->fcap * 2;
		size_t *nl = realloc(p->lens, ncap * sizeof *nl);
		const char **nf;

		if (nl == NULL)
			goto nomem;
		p->lens = nl;
		nf = realloc(p->fields, ncap * sizeof *nf);
		if (nf == NULL)
			goto nomem;
		p->fields = nf;
		p->fcap = ncap;
	}
	p->lens[p->nfields++] = p->len - p->field_start;
	if (p->len == p->cap && grow_buf(p, p->len + 1) < 0)
		return -1;
	p->buf[p->len++] = '\0';
	p->field_start = p->len;
	return 0;
nomem:
	p->error = CSV_ERR_NOMEM;
	return -1;
}

static void begin_record(struct csv_parser *p, uint64_t at)
{
	p->rec_start = at;
	p->rec_line = p->line;
	p->bad = CSV_OK;
	p->len = 0;
	p->nfields = 0;
	p->field_start = 0;
}

/* Hands the finished record (or its rejection) to the caller. */
static int emit(struct csv_parser *p, uint64_t end, csv_record_cb on_record, csv_error_cb on_error,
		void *arg)
{
	struct csv_record rec;
	size_t i, off = 0;

	if (p->bad != CSV_OK)
		return on_error != NULL ? on_error(p->bad, p->rec_start, end, p->rec_line, arg) : 0;
	if (on_record == NULL)
		return 0;
	for (i = 0; i < p->nfields; i++) {
		p->fields[i] = p->buf + off;
		off += p->lens[i] + 1;
	}
	rec.fields = p->fields;
	rec.lens = p->lens;
	rec.nfields = p->nfields;
	rec.start = p->rec_start;
	rec.end = end;
	rec.line = p->rec_line;
	return on_record(&rec, arg);
}

/* ==== The state machine ==== */

/* Bytes of v that are zero get their high bit set. Borrows can also flag
 * bytes above a zero byte, never below, so the lowest flag is exact. */
static inline uint64_t zero_bytes(uint64_t v)
{
	return (v - BYTES_ONES) & ~v & BYTES_HIGHS;
}

/* First byte in [q, e) that is one of the three stop bytes (stop[] has them
 * set; words[] holds each repeated eight times), or e. Eight bytes are tested
 * at once (SWAR): fields are usually short, so finding the exact position
 * without a second pass matters as much as going fast over long ones. */
static inline const unsigned char *scan(const unsigned char *q, const unsigned char *e,
					const unsigned char *stop, const uint64_t *words)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (e - q >= 8) {
		uint64_t v, m;

		memcpy(&v, q, 8);
		m = zero_bytes(v ^ words[0]) | zero_bytes(v ^ words[1]) | zero_bytes(v ^ words[2]);
		if (m != 0)
			return q + (__builtin_ctzll(m) >> 3);
		q += 8;
	}
#else
	(void)words;
#endif
	while (q < e && !stop[*q])
		q++;
	return q;
}

/* Runs n bytes starting at absolute offset p->pos. On return p->pos is just
 * past the last byte consumed: all of them, or up to the end of the record
 * whose callback stopped. */
static int run(struct csv_parser *p, const unsigned char *s, size_t n, csv_record_cb on_record,
	       csv_error_cb on_error, void *arg)
{
	const unsigned char *q = s, *e = s + n, *t;
	const uint64_t base = p->pos;
	unsigned char c;
	int rc;

#define AT(ptr) (base + (uint64_t)((ptr) - s))
	while (q < e) {
		switch (p->state) {
		case ST_BOM: /* csv_parser_feed() resolves it before running */
			assert(!"ST_BOM in run()");
			p->state = ST_RECORD;
			break;
		case ST_RECORD:
			c = *q;
			if (c == '\n' || c == '\r') { /* blank line: skipped, counted */
				q++;
				p->line++;
				if (c == '\r') {
					p->state = ST_CR;
					p->cr_ends_record = false;
				}
				break;
			}
			begin_record(p, AT(q));
			p->state = ST_FIELD;
			/* fall through */
		case ST_FIELD:
			c = *q;
			if (c == '"') {
				q++;
				check_len(p, AT(q));
				p->state = ST_QUOTED;
				p->quoted_cr = false;
				break;
			}
			if (c == p->delim) {
				q++;
				check_len(p, AT(q));
				if (end_field(p) < 0)
					goto fail;
				break;
			}
			if (c == '\n' || c == '\r')
				goto end_record;
			p->state = ST_UNQUOTED;
			/* fall through */
		case ST_UNQUOTED:
			t = scan(q, e, p->stop_unquoted, p->words_unquoted);
			check_len(p, AT(t));
			if (append(p, q, (size_t)(t - q)) < 0)
				goto fail;
			q = t;
			if (q == e)
				break;
			if (*q != p->delim)
				goto end_record;
			q++;
			check_len(p, AT(q));
			if (end_field(p) < 0)
				goto fail;
			p->state = ST_FIELD;
			break;
		case ST_QUOTED:
			t = scan(q, e, p->stop_quoted, p->words_quoted);
			if (t != q) {
				check_len(p, AT(t));
				if (append(p, q, (size_t)(t - q)) < 0)
					goto fail;
				p->quoted_cr = false;
				q = t;
				if (q == e)
					break;
			}
			c = *q++;
			check_len(p, AT(q));
			if (c == '"') {
				p->state = ST_QUOTE;
				break;
			}
			/* CR or LF kept as data; CRLF is one line end */
			if (c == '\r' || !p->quoted_cr)
				p->line++;
			p->quoted_cr = c == '\r';
			if (append(p, &c, 1) < 0)
				goto fail;
			break;
		case ST_QUOTE:
			c = *q;
			if (c == '"') { /* "" is one quote */
				q++;
				check_len(p, AT(q));
				if (append(p, &c, 1) < 0)
					goto fail;
				p->state = ST_QUOTED;
				p->quoted_cr = false;
				break;
			}
			if (c == p->delim) {
				q++;
				check_len(p, AT(q));
				if (end_field(p) < 0)
					goto fail;
				p->state = ST_FIELD;
				break;
			}
			if (c == '\n' || c == '\r')
				goto end_record;
			/* text after the closing quote: reject the record, read on unquoted */
			reject(p, CSV_ERR_BAD_QUOTE);
			p->state = ST_UNQUOTED;
			break;
		case ST_CR:
			if (*q == '\n')
				q++;
			p->state = ST_RECORD;
			if (p->cr_ends_record) {
				p->cr_ends_record = false;
				p->pos = AT(q);
				rc = emit(p, p->pos, on_record, on_error, arg);
				if (rc != 0)
					return rc;
			}
			break;
		}
		continue;

end_record: /* q is at the CR or LF that ends the record */
		if (end_field(p) < 0)
			goto fail;
		c = *q++;
		p->line++;
		if (c == '\r') { /* the record is reported once we know whether an LF follows */
			p->state = ST_CR;
			p->cr_ends_record = true;
			continue;
		}
		p->state = ST_RECORD;
		p->pos = AT(q);
		rc = emit(p, p->pos, on_record, on_error, arg);
		if (rc != 0)
			return rc;
	}
	p->pos = AT(e);
	return 0;
fail:
	p->pos = AT(q);
	return -1;
#undef AT
}

/* Gives up matching a BOM: the bytes held back are data after all. */
static int release_bom(struct csv_parser *p, csv_record_cb on_record, csv_error_cb on_error,
		       void *arg)
{
	size_t held = p->bom_held;

	p->bom_held = 0;
	p->state = ST_RECORD;
	return held > 0 ? run(p, bom, held, on_record, on_error, arg) : 0;
}

/* ==== Public interface ==== */

struct csv_parser *csv_parser_new(char delimiter, size_t max_record_bytes, uint64_t start_offset,
				  bool at_file_start)
{
	struct csv_parser *p;

	if (delimiter == '"' || delimiter == '\r' || delimiter == '\n' || max_record_bytes == 0)
		return NULL;
	p = calloc(1, sizeof *p);
	if (p == NULL)
		return NULL;
	p->buf = malloc(INITIAL_BUF);
	p->lens = malloc(INITIAL_FIELDS * sizeof *p->lens);
	p->fields = malloc(INITIAL_FIELDS * sizeof *p->fields);
	if (p->buf == NULL || p->lens == NULL || p->fields == NULL) {
		csv_parser_free(p);
		return NULL;
	}
	p->cap = INITIAL_BUF;
	p->fcap = INITIAL_FIELDS;
	p->delim = (unsigned char)delimiter;
	p->state = at_file_start ? ST_BOM : ST_RECORD;
	p->max_record_bytes = max_record_bytes;
	p->pos = start_offset;
	p->line = 1;
	p->bad = CSV_OK;
	p->error = CSV_OK;
	p->stop_unquoted[p->delim] = 1;
	p->stop_unquoted['\r'] = 1;
	p->stop_unquoted['\n'] = 1;
	p->stop_quoted['"'] = 1;
	p->stop_quoted['\r'] = 1;
	p->stop_quoted['\n'] = 1;
	p->words_unquoted[0] = BYTES_ONES * p->delim;
	p->words_unquoted[1] = p->words_quoted[1] = BYTES_ONES * '\r';
	p->words_unquoted[2] = p->words_quoted[2] = BYTES_ONES * '\n';
	p->words_quoted[0] = BYTES_ONES * '"';
	return p;
}

void csv_parser_set_line(struct csv_parser *p, uint64_t line)
{
	p->line = line;
}

int csv_parser_feed(struct csv_parser *p, const char *data, size_t len, csv_record_cb on_record,
		    csv_error_cb on_error, void *arg)
{
	const unsigned char *d = (const unsigned char *)data;
	int rc;

	if (p->error != CSV_OK)
		return -1;
	if (p->state == ST_BOM) {
		while (len > 0 && p->bom_held < 3 && *d == bom[p->bom_held]) {
			p->bom_held++;
			d++;
			len--;
		}
		if (p->bom_held == 3) {
			p->pos += 3;
			p->bom_held = 0;
			p->state = ST_RECORD;
		} else if (len == 0) {
			return 0; /* still undecided */
		} else if ((rc = release_bom(p, on_record, on_error, arg)) != 0) {
			return rc;
		}
	}
	return len > 0 ? run(p, d, len, on_record, on_error, arg) : 0;
}

int csv_parser_finish(struct csv_parser *p, csv_record_cb on_record, csv_error_cb on_error,
		      void *arg)
{
	int rc;

	if (p->error != CSV_OK)
		return -1;
	if (p->state == ST_BOM && (rc = release_bom(p, on_record, on_error, arg)) != 0)
		return rc;
	switch (p->state) {
	case ST_BOM:
	case ST_RECORD:
		break;
	case ST_CR:
		p->state = ST_RECORD;
		if (p->cr_ends_record) {
			p->cr_ends_record = false;
			return emit(p, p->pos, on_record, on_error, arg);
		}
		break;
	case ST_QUOTED:
		p->error = CSV_ERR_UNTERMINATED_QUOTE;
		p->err_start = p->rec_start;
		p->err_line = p->rec_line;
		return -1;
	case ST_FIELD:
	case ST_UNQUOTED:
	case ST_QUOTE:
		if (end_field(p) < 0)
			return -1;
		p->state = ST_RECORD;
		return emit(p, p->pos, on_record, on_error, arg);
	}
	return 0;
}

enum csv_status csv_parser_error(const struct csv_parser *p, uint64_t *start, uint64_t *line)
{
	if (start != NULL)
		*start = p->err_start;
	if (line != NULL)
		*line = p->err_line;
	return p->error;
}

uint64_t csv_parser_offset(const struct csv_parser *p)
{
	return p->pos + p->bom_held;
}

uint64_t csv_parser_line(const struct csv_parser *p)
{
	return p->line;
}

size_t csv_parser_memory(const struct csv_parser *p)
{
	return sizeof *p + p->cap + p->fcap * (sizeof *p->lens + sizeof *p->fields);
}

void csv_parser_free(struct csv_parser *p)
{
	if (p == NULL)
		return;
	free(p->buf);
	free(p->lens);
	free(p->fields);
	free(p);
}

const char *csv_status_text(enum csv_status st)
{
	switch (st) {
	case CSV_OK:
		return "ok";
	case CSV_ERR_UNTERMINATED_QUOTE:
		return "unterminated quoted field at end of file";
	case CSV_ERR_BAD_QUOTE:
		return "unexpected character after a closing quote";
	case CSV_ERR_TOO_LONG:
		return "record longer than max_record_bytes";
	case CSV_ERR_TOO_MANY_FIELDS:
		return "record with too many fields";
	case CSV_ERR_NOMEM:
		return "out of memory";
	}
	return "unknown CSV status";
}
