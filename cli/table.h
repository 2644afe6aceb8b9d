/* table.h -- aligned text tables for people (the --json output is for scripts).
 *
 * Cells are copied; columns are as wide as their widest cell (counted in
 * UTF-8 characters); the last column is not padded. Unless stated otherwise,
 * pointer arguments are borrowed for the duration of the call.
 */
#ifndef IMPORTCTL_TABLE_H
#define IMPORTCTL_TABLE_H

#include <stdbool.h>
#include <stdio.h>

#define TABLE_MAX_COLS 8

struct table;

/* Returns: new table with ncols (<= TABLE_MAX_COLS) headers, caller frees with
 * table_free(); NULL when out of memory. */
struct table *table_new(int ncols, const char *const *headers);
void table_free(struct table *t);

/* Adds a row of ncols cells (NULL cells print as "-"). Returns 0 or -1. */
int table_add(struct table *t, const char *const *cells);

/* Prints the header and the rows; bold header when bold. */
void table_print(const struct table *t, FILE *out, bool bold);

#endif
