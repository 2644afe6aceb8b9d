/* fuzz_multipart.c -- libFuzzer harness for api/multipart.c.
 *
 * Two properties. (1) Arbitrary input: the first line is a Content-Type, the
 * rest a body; whatever multipart_boundary and multipart_find_file accept, the
 * boundary is 1..70 bytes and the file lies inside the body, and nothing is
 * read outside it (ASan). (2) Round trip: the input used as a file's contents
 * inside a well-formed form body (with a boundary it does not contain) comes
 * back byte for byte, with its file name.
 * Built and run by tests/fuzz/run.sh.
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                      \
	do {                                                                          \
		if (!(x)) {                                                           \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
				#x);                                                  \
			abort();                                                      \
		}                                                                     \
	} while (0)

static void arbitrary(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t ctlen = nl != NULL ? (size_t)(nl - data) : size;
	char *ct = malloc(ctlen + 1), boundary[80], fname[64];
	const char *file;
	size_t flen, blen;
	char *body;

	CHECK(ct != NULL);
	memcpy(ct, data, ctlen);
	ct[ctlen] = '\0';
	if (multipart_boundary(ct, boundary, sizeof(boundary)) != 0) {
		/* still exercise the body parser with a fixed boundary */
		snprintf(boundary, sizeof(boundary), "XyZ");
	}
	CHECK(strlen(boundary) >= 1 && strlen(boundary) <= 70);
	blen = nl != NULL ? size - ctlen - 1 : 0;
	body = malloc(blen > 0 ? blen : 1); /* exact size: ASan sees any over-read */
	CHECK(body != NULL);
	memcpy(body, nl != NULL ? (const char *)nl + 1 : "", blen);
	memset(fname, 'x', sizeof(fname));
	if (multipart_find_file(boundary, body, blen, &file, &flen, fname, sizeof(fname)) == 0) {
		CHECK(file >= body && file <= body + blen);
		CHECK(flen <= (size_t)(body + blen - file));
		CHECK(memchr(fname, '\0', sizeof(fname)) != NULL);
	}
	free(body);
	free(ct);
}

static void round_trip(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"a.csv", "", "../../etc/passwd", "d q.json"};
	const char *name = names[size > 0 ? data[0] % 4 : 0];
	char boundary[80], fname[64];
	char *body;
	const char *file;
	size_t flen, n = 0, cap = size + 512;
	int b = 0;

	/* a boundary that cannot occur in the contents */
	do {
		snprintf(boundary, sizeof(boundary), "----fuzzBoundary%d", b++);
	} while (memmem(data, size, boundary, strlen(boundary)) != NULL);
	body = malloc(cap);
	CHECK(body != NULL);
	n += (size_t)snprintf(body + n, cap - n,
			      "--%s\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n"
			      "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
			      "Content-Type: text/csv\r\n\r\n",
			      boundary, boundary, name);
	memcpy(body + n, data, size);
	n += size;
	n += (size_t)snprintf(body + n, cap - n, "\r\n--%s--\r\n", boundary);
	CHECK(n < cap);
	CHECK(multipart_find_file(boundary, body, n, &file, &flen, fname, sizeof(fname)) == 0);
	CHECK(flen == size && memcmp(file, data, size) == 0);
	CHECK(strcmp(fname, name) == 0);
	free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	arbitrary(data, size);
	round_trip(data, size);
	return 0;
}
