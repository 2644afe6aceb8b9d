/* jsonstream.c -- NDJSON splitter, backup tokenizer and record parser (see jsonstream.h).
 *
 * Both readers scan the bytes themselves with tight loops (memchr for lines,
 * byte-class tables inside elements) and hand records over without copying
 * when a record lies wholly inside one feed; only a record that spans feeds is
 * gathered in a buffer, which never holds more than max_record_bytes (+1).
 * json-c only ever sees one record (or one member name) at a time.
 */
#include "jsonstream.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char BOM[3] = {0xEF, 0xBB, 0xBF};

/* ==== Shared helpers ==== */

static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool is_ws(unsigned char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Grows *buf to hold need bytes: doubling, but never past limit (>= need), so
 * a buffer stays within its record limit. */
static int reserve(char **buf, size_t *cap, size_t need, size_t limit)
{
	size_t n;
	char *nb;

	if (need <= *cap)
		return 0;
	n = *cap ? *cap : 256;
	while (n < need)
		n *= 2;
	if (n > limit)
		n = limit;
	nb = realloc(*buf, n);
	if (nb == NULL)
		return -1;
	*buf = nb;
	*cap = n;
	return 0;
}

static int append(char **buf, size_t *len, size_t *cap, const void *src, size_t n, size_t limit)
{
	if (n == 0)
		return 0;
	if (reserve(buf, cap, *len + n, limit) != 0)
		return -1;
	memcpy(*buf + *len, src, n);
	*len += n;
	return 0;
}

/* Length of the valid UTF-8 sequence at s (n bytes available, s[0] >= 0x80),
 * or 0 when it is invalid (RFC 3629 table: no overlongs, no surrogates, at
 * most U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	bool ok;

	if (c < 0xC2)
		return 0;
	if (c < 0xE0)
		return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c < 0xF0) {
		if (n < 3 || (s[2] & 0xC0) != 0x80)
			return 0;
		if (c == 0xE0)
			ok = s[1] >= 0xA0 && s[1] <= 0xBF;
		else if (c == 0xED)
			ok = s[1] >= 0x80 && s[1] <= 0x9F;
		else
			ok = (s[1] & 0xC0) == 0x80;
		return ok ? 3 : 0;
	}
	if (c < 0xF5) {
		if (n < 4 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
			return 0;
		if (c == 0xF0)
			ok = s[1] >= 0x90 && s[1] <= 0xBF;
		else if (c == 0xF4)
			ok = s[1] >= 0x80 && s[1] <= 0x8F;
		else
			ok = (s[1] & 0xC0) == 0x80;
		return ok ? 4 : 0;
	}
	return 0;
}

bool jsonstream_valid_text(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	size_t n;

	while (p < end) {
		if (*p >= 0x80) {
			if ((n = utf8_seq(p, (size_t)(end - p))) == 0)
				return false;
			p += n;
		} else if (*p == 0) {
			return false;
		} else {
			p++;
		}
	}
	return true;
}

void jsonstream_scrub_text(char *s, size_t len)
{
	unsigned char *p = (unsigned char *)s, *end = p + len;
	size_t n;

	while (p < end) {
		if (*p >= 0x80 && (n = utf8_seq(p, (size_t)(end - p))) != 0) {
			p += n;
		} else {
			if (*p >= 0x80 || *p == 0)
				*p = '?';
			p++;
		}
	}
}

/* ==== Record parsing ==== */

/* A string byte needing no attention: printable ASCII but '"' and '\\'. */
static bool str_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The 4 hex digits at s as a code unit, or -1. */
static long hex4(const unsigned char *s)
{
	long v = 0;

	for (int i = 0; i < 4; i++) {
		int h = hexval(s[i]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

static bool is_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* End of the JSON number at s[i], or 0 when it is not one (i < end always). */
static size_t lex_number(const unsigned char *s, size_t i, size_t len)
{
	if (s[i] == '-')
		i++;
	if (i == len || !is_digit(s[i]))
		return 0;
	if (s[i] == '0')
		i++;
	else
		while (i < len && is_digit(s[i]))
			i++;
	if (i < len && s[i] == '.') {
		if (++i == len || !is_digit(s[i]))
			return 0;
		while (i < len && is_digit(s[i]))
			i++;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		if (++i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i == len || !is_digit(s[i]))
			return 0;
		while (i < len && is_digit(s[i]))
			i++;
	}
	if (i < len && (is_alnum(s[i]) || s[i] == '.' || s[i] == '-' || s[i] == '+'))
		return 0;
	return i;
}

/* The lexical half of validation, which json-c (even strict) is too lenient
 * for: UTF-8, NUL and \u0000, control characters and escapes in strings,
 * numbers, and literals (json-c takes NaN, Infinity and single quotes).
 * Structure is left to json-c. Returns 0 or -1 with err. */
static int lex_check(const unsigned char *s, size_t len, char *err, size_t errlen)
{
	size_t i = 0, n;
	long u, lo;

	while (i < len) {
		unsigned char c = s[i];

		if (c == '"') {
			i++;
			for (;;) {
				while (i < len && str_plain(s[i]))
					i++;
				if (i == len) {
					fmt_err(err, errlen, "not valid JSON: unterminated string");
					return -1;
				}
				c = s[i];
				if (c == '"') {
					i++;
					break;
				}
				if (c == '\\') {
					if (i + 1 == len) {
						fmt_err(err, errlen,
						        "not valid JSON: unterminated string");
						return -1;
					}
					c = s[i + 1];
					if (c != 'u') {
						if (!strchr("\"\\/bfnrt", c) || c == 0) {
							fmt_err(err, errlen,
							        "not valid JSON: invalid escape at "
							        "byte %zu",
							        i);
							return -1;
						}
						i += 2;
						continue;
					}
					if (len - i < 6 || (u = hex4(s + i + 2)) < 0) {
						fmt_err(err, errlen,
						        "not valid JSON: invalid \\u escape at "
						        "byte %zu",
						        i);
						return -1;
					}
					if (u == 0) {
						fmt_err(err, errlen,
						        "\\u0000 (NUL) in a string at byte %zu", i);
						return -1;
					}
					if (u >= 0xD800 && u <= 0xDBFF) {
						if (len - i < 12 || s[i + 6] != '\\' ||
						    s[i + 7] != 'u' ||
						    (lo = hex4(s + i + 8)) < 0xDC00 ||
						    lo > 0xDFFF) {
							fmt_err(
							    err, errlen,
							    "unpaired surrogate escape at byte %zu",
							    i);
							return -1;
						}
						i += 12;
					} else if (u >= 0xDC00 && u <= 0xDFFF) {
						fmt_err(err, errlen,
						        "unpaired surrogate escape at byte %zu", i);
						return -1;
					} else {
						i += 6;
					}
					continue;
				}
				if (c >= 0x80) {
					if ((n = utf8_seq(s + i, len - i)) == 0) {
						fmt_err(err, errlen, "invalid UTF-8 at byte %zu",
						        i);
						return -1;
					}
					i += n;
					continue;
				}
				if (c == 0)
					fmt_err(err, errlen, "NUL byte at byte %zu", i);
				else
					fmt_err(err, errlen,
					        "not valid JSON: control character in a string at "
					        "byte %zu",
					        i);
				return -1;
			}
		} else if (is_ws(c) || c == '{' || c == '}' || c == '[' || c == ']' || c == ',' ||
		           c == ':') {
			i++;
		} else if (c == '-' || is_digit(c)) {
			if ((n = lex_number(s, i, len)) == 0) {
				fmt_err(err, errlen, "not valid JSON: bad number at byte %zu", i);
				return -1;
			}
			i = n;
		} else if (c == 't' || c == 'f' || c == 'n') {
			const char *lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
			size_t ll = strlen(lit);

			if (len - i < ll || memcmp(s + i, lit, ll) != 0 ||
			    (len - i > ll && is_alnum(s[i + ll]))) {
				fmt_err(err, errlen, "not valid JSON: unexpected token at byte %zu",
				        i);
				return -1;
			}
			i += ll;
		} else {
			if (c == 0)
				fmt_err(err, errlen, "NUL byte at byte %zu", i);
			else if (c >= 0x80 && utf8_seq(s + i, len - i) == 0)
				fmt_err(err, errlen, "invalid UTF-8 at byte %zu", i);
			else
				fmt_err(err, errlen,
				        "not valid JSON: unexpected character at byte %zu", i);
			return -1;
		}
	}
	return 0;
}

struct json_tokener *jsonstream_tokener_new(void)
{
	struct json_tokener *tok = json_tokener_new_ex(JSONSTREAM_MAX_DEPTH);

	if (tok != NULL)
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	return tok;
}

int jsonstream_parse_object_tok(struct json_tokener *tok, const char *buf, size_t len,
                                struct json_object **out, char *err, size_t errlen)
{
	const unsigned char *s = (const unsigned char *)buf;
	struct json_object *obj = NULL;
	enum json_tokener_error jerr;
	size_t end;

	*out = NULL;
	if (len > JSONSTREAM_MAX_RECORD_LIMIT) {
		fmt_err(err, errlen, "record over %zu bytes", JSONSTREAM_MAX_RECORD_LIMIT);
		return -1;
	}
	if (lex_check(s, len, err, errlen) != 0)
		return -1;
	json_tokener_reset(tok);
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	if (obj == NULL && jerr == json_tokener_continue) {
		/* Input ran out: a NUL ends a bare number ("123"); anything else
		 * stays incomplete. */
		obj = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		if (obj == NULL && jerr == json_tokener_continue)
			jerr = json_tokener_error_parse_eof;
		end = len;
	} else {
		end = json_tokener_get_parse_end(tok);
	}
	if (obj == NULL && jerr == json_tokener_success) {
		fmt_err(err, errlen, "not a JSON object (got null)"); /* json-c's null is NULL */
		return -1;
	}
	if (obj == NULL) {
		if (jerr == json_tokener_error_depth)
			fmt_err(err, errlen, "nesting deeper than %d", JSONSTREAM_MAX_DEPTH);
		else if (jerr == json_tokener_error_parse_eof)
			fmt_err(err, errlen, "not valid JSON: unexpected end of data");
		else
			fmt_err(err, errlen, "not valid JSON: %s at byte %zu",
			        json_tokener_error_desc(jerr), json_tokener_get_parse_end(tok));
		return -1;
	}
	while (end < len && is_ws(s[end]))
		end++;
	if (end < len) {
		fmt_err(err, errlen, "not valid JSON: data after the value at byte %zu", end);
		json_object_put(obj);
		return -1;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		fmt_err(err, errlen, "not a JSON object (got %s)",
		        json_type_to_name(json_object_get_type(obj)));
		json_object_put(obj);
		return -1;
	}
	*out = obj;
	return 0;
}

int jsonstream_parse_object(const char *buf, size_t len, struct json_object **out, char *err,
                            size_t errlen)
{
	struct json_tokener *tok = jsonstream_tokener_new();
	int rc;

	*out = NULL;
	if (tok == NULL) {
		fmt_err(err, errlen, "out of memory");
		return -1;
	}
	rc = jsonstream_parse_object_tok(tok, buf, len, out, err, errlen);
	json_tokener_free(tok);
	return rc;
}

/* ==== NDJSON ==== */

struct ndjson_reader {
	size_t max;                    /* max_record_bytes */
	uint64_t pos;                  /* absolute offset of the next byte to be fed */
	uint64_t line;                 /* number of the line being read */
	uint64_t line_start;           /* absolute offset of its first byte */
	char *buf;                     /* owned; the current line's bytes from earlier feeds */
	size_t buf_len;                /* bytes in buf */
	size_t buf_cap;                /* allocated, at most max + 1 */
	bool skipping;                 /* current line is over max: its bytes are dropped */
	bool dead;                     /* stopped, failed or finished */
	jsonstream_record_cb on_line;  /* may be NULL */
	jsonstream_record_cb on_error; /* may be NULL */
	void *cb_arg;                  /* borrowed */
	char msg[96];                  /* message of the error record being reported */
};

struct ndjson_reader *ndjson_reader_new(size_t max_record_bytes, uint64_t start_offset,
                                        uint64_t start_line, jsonstream_record_cb on_line,
                                        jsonstream_record_cb on_error, void *cb_arg)
{
	struct ndjson_reader *r;

	if (max_record_bytes == 0 || max_record_bytes > JSONSTREAM_MAX_RECORD_LIMIT ||
	    start_line == 0)
		return NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->max = max_record_bytes;
	r->pos = start_offset;
	r->line = start_line;
	r->line_start = start_offset;
	r->on_line = on_line;
	r->on_error = on_error;
	r->cb_arg = cb_arg;
	return r;
}

void ndjson_reader_free(struct ndjson_reader *r)
{
	if (r == NULL)
		return;
	free(r->buf);
	free(r);
}

/* Moves on to the next line, which starts at next. */
static void nd_next(struct ndjson_reader *r, uint64_t next)
{
	r->line++;
	r->line_start = next;
	r->buf_len = 0;
	r->skipping = false;
}

static int nd_oversize(struct ndjson_reader *r, uint64_t end_off)
{
	struct jsonstream_record rec = {0};

	snprintf(r->msg, sizeof(r->msg), "record over max_record_bytes (%zu bytes)", r->max);
	rec.start_offset = r->line_start;
	rec.end_offset = end_off;
	rec.line = r->line;
	rec.message = r->msg;
	nd_next(r, end_off);
	return r->on_error ? r->on_error(&rec, r->cb_arg) : 0;
}

/* Hands over line p[0..n) (terminator excluded but a CR) that ends at end_off. */
static int nd_line(struct ndjson_reader *r, const char *p, size_t n, uint64_t end_off)
{
	struct jsonstream_record rec = {0};
	uint64_t start = r->line_start;
	size_t i;

	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (n > r->max)
		return nd_oversize(r, end_off);
	if (start == 0 && n >= 3 && memcmp(p, BOM, 3) == 0) {
		p += 3;
		n -= 3;
		start += 3;
	}
	rec.line = r->line;
	nd_next(r, end_off);
	for (i = 0; i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'); i++)
		;
	if (i == n)
		return 0; /* blank */
	rec.data = p;
	rec.len = n;
	rec.start_offset = start;
	rec.end_offset = end_off;
	return r->on_line ? r->on_line(&rec, r->cb_arg) : 0;
}

int ndjson_reader_feed(struct ndjson_reader *r, const char *data, size_t len, char *err,
                       size_t errlen)
{
	const char *p, *end, *nl;
	size_t n;
	int rc;

	if (r->dead) {
		fmt_err(err, errlen, "ndjson reader used after it stopped");
		return JSONSTREAM_ERROR;
	}
	if (len == 0)
		return JSONSTREAM_OK; /* data may be NULL */
	p = data;
	end = data + len;
	while (p < end) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			/* The line goes on in the next feed. A line holding more
			 * than max + 1 bytes (a CR may follow) is over the limit
			 * whatever comes next, so stop keeping it. */
			n = (size_t)(end - p);
			if (r->skipping) {
				/* drop */
			} else if (n > r->max + 1 - r->buf_len) {
				r->skipping = true;
				r->buf_len = 0;
			} else if (append(&r->buf, &r->buf_len, &r->buf_cap, p, n, r->max + 1) !=
			           0) {
				r->dead = true;
				fmt_err(err, errlen, "out of memory");
				return JSONSTREAM_ERROR;
			}
			break;
		}
		n = (size_t)(nl - p);
		uint64_t end_off = r->pos + (uint64_t)(nl - data) + 1;
		if (r->skipping || n > r->max + 1 - r->buf_len) {
			rc = nd_oversize(r, end_off);
		} else if (r->buf_len == 0) {
			rc = nd_line(r, p, n, end_off); /* the common case: no copy */
		} else if (append(&r->buf, &r->buf_len, &r->buf_cap, p, n, r->max + 1) != 0) {
			r->dead = true;
			fmt_err(err, errlen, "out of memory");
			return JSONSTREAM_ERROR;
		} else {
			rc = nd_line(r, r->buf, r->buf_len, end_off);
		}
		if (rc != 0) {
			r->dead = true;
			return JSONSTREAM_STOPPED;
		}
		p = nl + 1;
	}
	r->pos += len;
	return JSONSTREAM_OK;
}

int ndjson_reader_finish(struct ndjson_reader *r, char *err, size_t errlen)
{
	int rc = 0;

	if (r->dead) {
		fmt_err(err, errlen, "ndjson reader used after it stopped");
		return JSONSTREAM_ERROR;
	}
	r->dead = true;
	if (r->skipping)
		rc = nd_oversize(r, r->pos);
	else if (r->buf_len > 0)
		rc = nd_line(r, r->buf, r->buf_len, r->pos);
	return rc != 0 ? JSONSTREAM_STOPPED : JSONSTREAM_OK;
}

/* ==== Backup ==== */

enum backup_state {
	B_START,         /* before the top-level '{' (a BOM may come first) */
	B_KEY_OR_CLOSE,  /* after '{': a member name or '}' */
	B_KEY_NEXT,      /* after ',' between members: a member name */
	B_KEY,           /* inside a member name */
	B_COLON,         /* after a member name: ':' */
	B_MEMBER_VALUE,  /* after ':': '[' opens a collection, anything else is metadata */
	B_ELEM_OR_CLOSE, /* after a collection's '[': its first element or ']' */
	B_ELEM,          /* after ',' in a collection: an element */
	B_VALUE,         /* inside an element or a metadata value */
	B_AFTER_ELEM,    /* after an element: ',' or ']' */
	B_AFTER_MEMBER,  /* after a member: ',' or '}' */
	B_END,           /* after the closing '}': whitespace only */
	B_DEAD,          /* failed, stopped or finished */
};

/* Byte classes for scanning inside a value. */
enum {
	V_STR = 1,    /* ends a run of string bytes: '"' '\\' */
	V_STRUCT = 2, /* matters outside strings: '"' '{' '}' '[' ']' */
	V_SCALAR = 4, /* ends a bare scalar: whitespace and structural characters */
};

static const unsigned char vclass[256] = {
    ['"'] = V_STR | V_STRUCT | V_SCALAR,
    ['\\'] = V_STR,
    ['{'] = V_STRUCT | V_SCALAR,
    ['}'] = V_STRUCT | V_SCALAR,
    ['['] = V_STRUCT | V_SCALAR,
    [']'] = V_STRUCT | V_SCALAR,
    [','] = V_SCALAR,
    [':'] = V_SCALAR,
    [' '] = V_SCALAR,
    ['\t'] = V_SCALAR,
    ['\n'] = V_SCALAR,
    ['\r'] = V_SCALAR,
};

struct backup_reader {
	size_t max;                      /* max_record_bytes */
	jsonstream_record_cb on_element; /* may be NULL */
	jsonstream_record_cb on_error;   /* may be NULL */
	void *cb_arg;                    /* borrowed */
	enum backup_state state;
	uint64_t pos;       /* absolute offset of the next byte to be fed */
	unsigned bom;       /* bytes of a BOM matched at the start of the file */
	char *name;         /* owned; current member name, unescaped, NUL-terminated */
	size_t name_len;    /* bytes in name */
	size_t name_cap;    /* allocated */
	char *key;          /* owned; '"' + raw bytes of the member name being read */
	size_t key_len;     /* bytes in key */
	size_t key_cap;     /* allocated */
	uint64_t key_start; /* absolute offset of the name's opening quote */
	bool key_esc;       /* the last byte fed was a backslash inside the name */
	bool collection;    /* the current member's value is an array */
	uint64_t index;     /* next element's index in the collection */
	/* The value being scanned (an element or a metadata member's value): */
	uint64_t vstart; /* absolute offset of its first byte */
	unsigned vdepth; /* brackets open inside it */
	bool in_str;     /* inside a string */
	bool esc;        /* the last byte fed was a backslash inside a string */
	bool scalar;     /* a bare number or literal: ends at a delimiter */
	bool oversize;   /* over max: its bytes are no longer kept */
	unsigned char stack[JSONSTREAM_MAX_DEPTH / 8]; /* bit d: bracket at depth d is '{' */
	char *buf;                /* owned; the value's bytes from earlier feeds */
	size_t buf_len;           /* bytes in buf */
	size_t buf_cap;           /* allocated, at most max */
	struct json_tokener *tok; /* owned; unescapes member names */
	char shown[80];           /* the name as quoted in messages */
	char msg[96];             /* message of the error record being reported */
};

struct backup_reader *backup_reader_new(size_t max_record_bytes,
                                        const struct backup_position *resume,
                                        jsonstream_record_cb on_element,
                                        jsonstream_record_cb on_error, void *cb_arg)
{
	struct backup_reader *r;

	if (max_record_bytes == 0 || max_record_bytes > JSONSTREAM_MAX_RECORD_LIMIT ||
	    (resume != NULL &&
	     (resume->collection == NULL || resume->collection_len > JSONSTREAM_MAX_RECORD_LIMIT)))
		return NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->max = max_record_bytes;
	r->on_element = on_element;
	r->on_error = on_error;
	r->cb_arg = cb_arg;
	r->state = B_START;
	if ((r->tok = json_tokener_new_ex(2)) == NULL)
		goto fail;
	if (reserve(&r->name, &r->name_cap, 1, SIZE_MAX) != 0)
		goto fail;
	r->name[0] = '\0';
	if (resume != NULL) {
		if (reserve(&r->name, &r->name_cap, resume->collection_len + 1, SIZE_MAX) != 0)
			goto fail;
		memcpy(r->name, resume->collection, resume->collection_len);
		r->name[resume->collection_len] = '\0';
		r->name_len = resume->collection_len;
		r->pos = resume->byte_offset;
		r->index = resume->element_index;
		r->collection = true;
		r->bom = 3; /* no BOM in the middle of a file */
		/* Exactly where the first reader was after element index - 1
		 * (or after the '[' for index 0), so the rest reads alike. */
		r->state = r->index > 0 ? B_AFTER_ELEM : B_ELEM_OR_CLOSE;
	}
	return r;
fail:
	backup_reader_free(r);
	return NULL;
}

void backup_reader_free(struct backup_reader *r)
{
	if (r == NULL)
		return;
	if (r->tok != NULL)
		json_tokener_free(r->tok);
	free(r->name);
	free(r->key);
	free(r->buf);
	free(r);
}

/* The current member name as it may appear in a message: printable ASCII,
 * cut short. */
static const char *shown_name(struct backup_reader *r)
{
	size_t i, o = 0;

	for (i = 0; i < r->name_len && o < 60; i++) {
		unsigned char c = (unsigned char)r->name[i];
		r->shown[o++] = c >= 0x20 && c < 0x7F && c != '"' && c != '\\' ? (char)c : '?';
	}
	if (i < r->name_len)
		o += (size_t)snprintf(r->shown + o, sizeof(r->shown) - o, "...");
	r->shown[o] = '\0';
	return r->shown;
}

static int b_fail(struct backup_reader *r, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A file-level error: the reader is done. */
static int b_fail(struct backup_reader *r, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	r->state = B_DEAD;
	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return JSONSTREAM_ERROR;
}

/* Where the reader is, for "unexpected end of file" and friends. */
static const char *where(struct backup_reader *r, char *out, size_t outlen)
{
	switch (r->state) {
	case B_KEY:
		snprintf(out, outlen, "inside a member name");
		break;
	case B_COLON:
	case B_MEMBER_VALUE:
		snprintf(out, outlen, "after member \"%s\"", shown_name(r));
		break;
	case B_ELEM_OR_CLOSE:
	case B_ELEM:
	case B_AFTER_ELEM:
		snprintf(out, outlen, "inside collection \"%s\"", shown_name(r));
		break;
	case B_VALUE:
		snprintf(out, outlen, "inside %s \"%s\"", r->collection ? "collection" : "member",
		         shown_name(r));
		break;
	default:
		snprintf(out, outlen, "inside the top-level object");
		break;
	}
	return out;
}

/* Starts scanning the value whose first byte, c, is at absolute offset off. */
static int start_value(struct backup_reader *r, unsigned char c, uint64_t off, char *err,
                       size_t errlen)
{
	char ctx[128];

	if (c == ',' || c == ']' || c == '}' || c == ':')
		return b_fail(r, err, errlen, "expected a value at byte %" PRIu64 " %s", off,
		              where(r, ctx, sizeof(ctx)));
	r->vstart = off;
	r->vdepth = 0;
	r->in_str = false;
	r->esc = false;
	r->scalar = false;
	r->oversize = false;
	r->buf_len = 0;
	if (c == '"') {
		r->in_str = true;
	} else if (c == '{' || c == '[') {
		/* At most depth 3 (object, array, this), far below the limit. */
		r->vdepth = 1;
		r->stack[0] = c == '{' ? 1 : 0;
	} else {
		r->scalar = true;
	}
	r->state = B_VALUE;
	return JSONSTREAM_OK;
}

/* Scans the value from p towards end. Returns where it stopped: at end, or
 * just past the value (at the delimiter after a scalar) with *done set; NULL
 * after a file-level error. */
static const unsigned char *scan_value(struct backup_reader *r, const unsigned char *p,
                                       const unsigned char *end, uint64_t base_off,
                                       const unsigned char *base, bool *done, char *err,
                                       size_t errlen)
{
	/* Depth of the value's own brackets is vdepth; the top-level object and
	 * a collection's array come on top. */
	unsigned outer = r->collection ? 2 : 1;
	unsigned d = r->vdepth;
	bool in_str = r->in_str;
	unsigned char c;

	*done = false;
	if (r->scalar) {
		while (p < end && !(vclass[*p] & V_SCALAR))
			p++;
		*done = p < end;
		return p;
	}
	if (r->esc) {
		p++; /* the escaped byte; p < end here */
		r->esc = false;
	}
	for (;;) {
		if (in_str) {
			while (p < end && !(vclass[*p] & V_STR))
				p++;
			if (p == end)
				break;
			if (*p == '\\') {
				if (end - p < 2) {
					r->esc = true;
					p = end;
					break;
				}
				p += 2;
				continue;
			}
			p++;
			in_str = false;
			if (d == 0) {
				*done = true;
				break;
			}
			continue;
		}
		while (p < end && !(vclass[*p] & V_STRUCT))
			p++;
		if (p == end)
			break;
		c = *p++;
		if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			if (outer + d + 1 > JSONSTREAM_MAX_DEPTH) {
				b_fail(r, err, errlen, "nesting deeper than %d at byte %" PRIu64,
				       JSONSTREAM_MAX_DEPTH, base_off + (uint64_t)(p - 1 - base));
				return NULL;
			}
			if (c == '{')
				r->stack[d / 8] |= (unsigned char)(1u << (d % 8));
			else
				r->stack[d / 8] &= (unsigned char)~(1u << (d % 8));
			d++;
		} else {
			bool obj = r->stack[(d - 1) / 8] & (1u << ((d - 1) % 8));
			if (c != (obj ? '}' : ']')) {
				b_fail(r, err, errlen,
				       "mismatched '%c' at byte %" PRIu64 " (expected '%c')", c,
				       base_off + (uint64_t)(p - 1 - base), obj ? '}' : ']');
				return NULL;
			}
			if (--d == 0) {
				*done = true;
				break;
			}
		}
	}
	r->vdepth = d;
	r->in_str = in_str;
	return p;
}

/* Calls cb (may be NULL) and turns a stop into JSONSTREAM_STOPPED. */
static int b_emit(struct backup_reader *r, jsonstream_record_cb cb, struct jsonstream_record *rec)
{
	if (cb == NULL || cb(rec, r->cb_arg) == 0)
		return JSONSTREAM_OK;
	r->state = B_DEAD;
	return JSONSTREAM_STOPPED;
}

/* The value ends at end_off; its bytes are buf (earlier feeds) + seg[0..n). */
static int value_done(struct backup_reader *r, const char *seg, size_t n, uint64_t end_off,
                      char *err, size_t errlen)
{
	struct jsonstream_record rec = {0};
	uint64_t total = end_off - r->vstart;
	bool fits = !r->oversize && total <= r->max;

	rec.start_offset = r->vstart;
	rec.end_offset = end_off;
	rec.collection = r->name;
	rec.collection_len = r->name_len;
	if (fits) {
		if (r->buf_len == 0) {
			rec.data = seg; /* the common case: no copy */
		} else {
			if (append(&r->buf, &r->buf_len, &r->buf_cap, seg, n, r->max) != 0)
				return b_fail(r, err, errlen, "out of memory");
			rec.data = r->buf;
		}
		rec.len = (size_t)total;
	}
	r->buf_len = 0;
	if (!r->collection) {
		r->state = B_AFTER_MEMBER;
		rec.metadata = true;
		return b_emit(r, r->on_element, &rec);
	}
	r->state = B_AFTER_ELEM;
	rec.index = r->index++;
	if (fits)
		return b_emit(r, r->on_element, &rec);
	snprintf(r->msg, sizeof(r->msg), "record over max_record_bytes (%zu bytes)", r->max);
	rec.message = r->msg;
	return b_emit(r, r->on_error, &rec);
}

/* The member name's closing quote was read: unescape it with json-c. */
static int key_done(struct backup_reader *r, char *err, size_t errlen)
{
	struct json_object *s;
	int rc = JSONSTREAM_OK;
	size_t n;

	json_tokener_reset(r->tok);
	s = json_tokener_parse_ex(r->tok, r->key, (int)r->key_len);
	if (s == NULL || !json_object_is_type(s, json_type_string) ||
	    json_tokener_get_parse_end(r->tok) != r->key_len) {
		rc = b_fail(r, err, errlen, "invalid member name at byte %" PRIu64, r->key_start);
		goto out;
	}
	n = (size_t)json_object_get_string_len(s);
	if (reserve(&r->name, &r->name_cap, n + 1, SIZE_MAX) != 0) {
		rc = b_fail(r, err, errlen, "out of memory");
		goto out;
	}
	memcpy(r->name, json_object_get_string(s), n);
	r->name[n] = '\0';
	r->name_len = n;
	r->state = B_COLON;
out:
	json_object_put(s);
	return rc;
}

int backup_reader_feed(struct backup_reader *r, const char *data, size_t len, char *err,
                       size_t errlen)
{
	const unsigned char *base = (const unsigned char *)data, *p, *end;
	const unsigned char *seg; /* first byte of the current value in this feed */
	const unsigned char *q;
	uint64_t off;
	bool done;
	int rc;

#define OFF(ptr) (r->pos + (uint64_t)((ptr)-base))
	if (r->state == B_DEAD) {
		fmt_err(err, errlen, "backup reader used after it stopped");
		return JSONSTREAM_ERROR;
	}
	if (len == 0)
		return JSONSTREAM_OK; /* data may be NULL */
	p = seg = base;
	end = base + len;
	while (p < end) {
		if (r->state != B_VALUE && r->state != B_KEY && r->state != B_START) {
			while (p < end && is_ws(*p))
				p++;
			if (p == end)
				break;
		}
		off = OFF(p);
		switch (r->state) {
		case B_START:
			if (is_ws(*p)) {
				p++;
			} else if (off < 3 && off == r->bom && *p == BOM[off]) {
				r->bom++;
				p++;
			} else if (*p == '{' && (r->bom == 0 || r->bom == 3)) {
				r->state = B_KEY_OR_CLOSE;
				p++;
			} else {
				return b_fail(r, err, errlen, "expected '{' at byte %" PRIu64,
				              r->bom == 1 || r->bom == 2 ? 0 : off);
			}
			break;
		case B_KEY_OR_CLOSE:
		case B_KEY_NEXT:
			if (*p == '}' && r->state == B_KEY_OR_CLOSE) {
				r->state = B_END;
				p++;
				break;
			}
			if (*p != '"')
				return b_fail(r, err, errlen, "expected %s at byte %" PRIu64,
				              r->state == B_KEY_OR_CLOSE ? "'\"' or '}'" : "'\"'",
				              off);
			r->key_len = 0;
			r->key_start = off;
			r->key_esc = false;
			if (append(&r->key, &r->key_len, &r->key_cap, "\"", 1, r->max + 2) != 0)
				return b_fail(r, err, errlen, "out of memory");
			r->state = B_KEY;
			p++;
			break;
		case B_KEY:
			q = p;
			if (r->key_esc) {
				q++;
				r->key_esc = false;
			}
			while (q < end && *q != '"') {
				if (*q == '\\') {
					if (end - q < 2) {
						r->key_esc = true;
						q = end;
						break;
					}
					q++;
				}
				q++;
			}
			if ((size_t)(q - p) + (q < end) > r->max + 2 - r->key_len)
				return b_fail(r, err, errlen,
				              "member name at byte %" PRIu64
				              " is longer than max_record_bytes",
				              r->key_start);
			if (append(&r->key, &r->key_len, &r->key_cap, p,
			           (size_t)(q - p) + (q < end), r->max + 2) != 0)
				return b_fail(r, err, errlen, "out of memory");
			if (q == end) {
				p = end;
				break;
			}
			p = q + 1;
			if ((rc = key_done(r, err, errlen)) != JSONSTREAM_OK)
				return rc;
			break;
		case B_COLON:
			if (*p != ':')
				return b_fail(r, err, errlen,
				              "expected ':' at byte %" PRIu64
				              " after member \"%s\"",
				              off, shown_name(r));
			r->state = B_MEMBER_VALUE;
			p++;
			break;
		case B_MEMBER_VALUE:
			if (*p == '[') {
				r->collection = true;
				r->index = 0;
				r->state = B_ELEM_OR_CLOSE;
				p++;
				break;
			}
			r->collection = false;
			if ((rc = start_value(r, *p, off, err, errlen)) != JSONSTREAM_OK)
				return rc;
			seg = p++;
			break;
		case B_ELEM_OR_CLOSE:
			if (*p == ']') {
				r->state = B_AFTER_MEMBER;
				p++;
				break;
			}
			/* fall through */
		case B_ELEM:
			if ((rc = start_value(r, *p, off, err, errlen)) != JSONSTREAM_OK)
				return rc;
			seg = p++;
			break;
		case B_VALUE:
			q = scan_value(r, p, end, r->pos, base, &done, err, errlen);
			if (q == NULL)
				return JSONSTREAM_ERROR;
			if (!done) {
				p = end; /* the value goes on: see below */
				break;
			}
			rc = value_done(r, (const char *)seg, (size_t)(q - seg), OFF(q), err,
			                errlen);
			if (rc != JSONSTREAM_OK)
				return rc;
			p = q;
			break;
		case B_AFTER_ELEM:
			if (*p == ',') {
				r->state = B_ELEM;
			} else if (*p == ']') {
				r->state = B_AFTER_MEMBER;
			} else {
				return b_fail(r, err, errlen,
				              "expected ',' or ']' at byte %" PRIu64
				              " in collection \"%s\"",
				              off, shown_name(r));
			}
			p++;
			break;
		case B_AFTER_MEMBER:
			if (*p == ',') {
				r->state = B_KEY_NEXT;
			} else if (*p == '}') {
				r->state = B_END;
			} else {
				return b_fail(r, err, errlen,
				              "expected ',' or '}' at byte %" PRIu64, off);
			}
			p++;
			break;
		case B_END:
			return b_fail(
			    r, err, errlen,
			    "unexpected data at byte %" PRIu64 " after the top-level object", off);
		case B_DEAD:
			return JSONSTREAM_ERROR; /* not reached */
		}
	}
	if (r->state == B_VALUE) {
		/* The value goes on in the next feed: keep its bytes, or give up
		 * keeping them once it is known to be too big. */
		uint64_t total = OFF(end) - r->vstart;
		if (r->oversize) {
			/* drop */
		} else if (total > r->max) {
			r->oversize = true;
			r->buf_len = 0;
		} else if (append(&r->buf, &r->buf_len, &r->buf_cap, seg, (size_t)(end - seg),
		                  r->max) != 0) {
			return b_fail(r, err, errlen, "out of memory");
		}
	}
	r->pos += len;
	return JSONSTREAM_OK;
#undef OFF
}

int backup_reader_finish(struct backup_reader *r, char *err, size_t errlen)
{
	char ctx[128];

	switch (r->state) {
	case B_END:
		r->state = B_DEAD;
		return JSONSTREAM_OK;
	case B_DEAD:
		fmt_err(err, errlen, "backup reader used after it stopped");
		return JSONSTREAM_ERROR;
	case B_START:
		if (r->pos == 0)
			return b_fail(r, err, errlen, "the file is empty");
		return b_fail(r, err, errlen,
		              "unexpected end of file at byte %" PRIu64 ": expected '{'", r->pos);
	default:
		return b_fail(r, err, errlen, "unexpected end of file at byte %" PRIu64 " %s",
		              r->pos, where(r, ctx, sizeof(ctx)));
	}
}
