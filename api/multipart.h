/* multipart.h -- find the uploaded file in a multipart/form-data body.
 *
 * Works on the whole body in memory (libevent 2.1 buffers it before the
 * handler runs) with explicit bounds everywhere; never reads past len and
 * never needs a NUL terminator, so it is safe on arbitrary input (fuzzed
 * later). Only what a browser form sends is supported: CRLF line ends,
 * Content-Disposition with name= and filename=.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_MULTIPART_H
#define IMPORTER_MULTIPART_H

#include <stddef.h>

/* Copies the boundary parameter of a multipart/form-data Content-Type into
 * out. Returns 0, or -1 if content_type is not multipart/form-data with a
 * usable boundary (1..70 characters). */
int multipart_boundary(const char *content_type, char *out, size_t outlen)
	__attribute__((warn_unused_result));

/* Finds the file part: the first part with a filename, else the part named
 * "file". On success sets data and dlen to its contents (pointing into body),
 * copies the filename (possibly "") into fname and returns 0; returns -1 if
 * the body is malformed or has no such part. */
int multipart_find_file(const char *boundary, const char *body, size_t len, const char **data,
			size_t *dlen, char *fname, size_t fnamelen) __attribute__((warn_unused_result));

#endif
