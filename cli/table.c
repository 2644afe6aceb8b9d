/* table.c -- aligned text tables (see table.h). */
#include "table.h"

#include <stdlib.h>
#include <string.h>

struct table {
	int ncols;
	size_t nrows, cap;
	char **cells; /* owned; (nrows + 1) * ncols, row 0 = headers */
	size_t width[TABLE_MAX_COLS];
};

/* Characters, not bytes: continuation bytes of UTF-8 do not count. Control
 * characters are printed as '?' (see put_cell), so they count as one. */
static size_t text_width(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

static int add_row(struct table *t, const char *const *cells)
{
	if (t->nrows + 1 >= t->cap) {
		size_t cap = t->cap > 0 ? t->cap * 2 : 16;
		char **p = realloc(t->cells, cap * (size_t)t->ncols * sizeof(*p));

		if (p == NULL)
			return -1;
		t->cells = p;
		t->cap = cap;
	}
	for (int i = 0; i < t->ncols; i++) {
		const char *v = cells[i] != NULL ? cells[i] : "-";
		char *copy = strdup(v);
		size_t w;

		if (copy == NULL) {
			for (int j = 0; j < i; j++)
				free(t->cells[t->nrows * (size_t)t->ncols + (size_t)j]);
			return -1;
		}
		t->cells[t->nrows * (size_t)t->ncols + (size_t)i] = copy;
		w = text_width(copy);
		if (w > t->width[i])
			t->width[i] = w;
	}
	t->nrows++;
	return 0;
}

struct table *table_new(int ncols, const char *const *headers)
{
	struct table *t;

	if (ncols < 1 || ncols > TABLE_MAX_COLS || (t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->ncols = ncols;
	if (add_row(t, headers) != 0) {
		table_free(t);
		return NULL;
	}
	return t;
}

void table_free(struct table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

int table_add(struct table *t, const char *const *cells)
{
	return add_row(t, cells);
}

/* A cell's text with control characters (from the data) made harmless. */
static void put_cell(const char *s, FILE *out)
{
	for (; *s != '\0'; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, out);
}

void table_print(const struct table *t, FILE *out, bool bold)
{
	for (size_t r = 0; r < t->nrows; r++) {
		if (r == 0 && bold)
			fputs("\033[1m", out);
		for (int i = 0; i < t->ncols; i++) {
			const char *cell = t->cells[r * (size_t)t->ncols + (size_t)i];

			put_cell(cell, out);
			if (i + 1 < t->ncols)
				fprintf(out, "%*s", (int)(t->width[i] - text_width(cell) + 2), "");
		}
		if (r == 0 && bold)
			fputs("\033[0m", out);
		fputc('\n', out);
	}
}
