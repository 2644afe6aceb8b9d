/* multipart.c -- multipart/form-data file extraction (see multipart.h). */
#include "multipart.h"

#include <stdbool.h>
#include <string.h>
#include <stdio.h>
#include <strings.h>

/* memmem without _GNU_SOURCE. */
static const char *find(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
	if (nlen == 0 || hlen < nlen)
		return NULL;
	for (size_t i = 0; i + nlen <= hlen; i++) {
		if (hay[i] == needle[0] && memcmp(hay + i, needle, nlen) == 0)
			return hay + i;
	}
	return NULL;
}

int multipart_boundary(const char *content_type, char *out, size_t outlen)
{
	const char *p;
	size_t n;

	if (content_type == NULL || strncasecmp(content_type, "multipart/form-data", 19) != 0)
		return -1;
	for (p = content_type + 19; *p != '\0'; p++) {
		if (strncasecmp(p, "boundary=", 9) == 0 && (p[-1] == ';' || p[-1] == ' '))
			break;
	}
	if (*p == '\0')
		return -1;
	p += 9;
	if (*p == '"') {
		p++;
		n = strcspn(p, "\"");
		if (p[n] != '"')
			return -1;
	} else {
		n = strcspn(p, "; \t");
	}
	if (n == 0 || n > 70 || n + 1 > outlen)
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

/* Copies the value of param (e.g. "filename") from a header line into out. */
static bool header_param(const char *line, size_t len, const char *param, char *out,
			 size_t outlen)
{
	size_t plen = strlen(param);

	for (size_t i = 0; i + plen + 1 < len; i++) {
		size_t j, k = 0;

		if ((i > 0 && line[i - 1] != ' ' && line[i - 1] != ';') ||
		    strncasecmp(line + i, param, plen) != 0 || line[i + plen] != '=')
			continue;
		j = i + plen + 1;
		if (j < len && line[j] == '"') {
			for (j++; j < len && line[j] != '"'; j++)
				if (k + 1 < outlen)
					out[k++] = line[j];
		} else {
			for (; j < len && line[j] != ';' && line[j] != ' '; j++)
				if (k + 1 < outlen)
					out[k++] = line[j];
		}
		if (outlen > 0)
			out[k] = '\0';
		return true;
	}
	return false;
}

int multipart_find_file(const char *boundary, const char *body, size_t len, const char **data,
			size_t *dlen, char *fname, size_t fnamelen)
{
	char delim[80];
	size_t dl = strlen(boundary) + 2;
	const char *p, *end = body + len;
	const char *named = NULL;
	size_t named_len = 0;

	if (dl + 2 > sizeof(delim))
		return -1;
	delim[0] = '\r';
	delim[1] = '\n';
	delim[2] = '-';
	delim[3] = '-';
	memcpy(delim + 4, boundary, dl - 2);
	/* The first delimiter may open the body without a preceding CRLF. */
	if (len >= dl && memcmp(body, delim + 2, dl) == 0)
		p = body + dl;
	else if ((p = find(body, len, delim, dl + 2)) != NULL)
		p += dl + 2;
	else
		return -1;
	for (;;) {
		const char *hdr_end, *next, *line;
		bool has_filename = false, is_file = false;
		char name[64] = "", fn[256] = "";

		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
			break; /* closing delimiter */
		while (p < end && (*p == ' ' || *p == '\t'))
			p++; /* transport padding (RFC 2046) */
		if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
			return -1;
		p += 2;
		/* Searching from the delimiter line's CRLF finds the empty line that
		 * ends a part without any header too (then hdr_end = p - 2). */
		hdr_end = find(p - 2, (size_t)(end - p + 2), "\r\n\r\n", 4);
		if (hdr_end == NULL)
			return -1;
		for (line = p; line < hdr_end;) {
			const char *eol = find(line, (size_t)(hdr_end + 2 - line), "\r\n", 2);
			size_t ll = (size_t)(eol - line);

			if (ll > 20 && strncasecmp(line, "Content-Disposition:", 20) == 0) {
				has_filename = header_param(line, ll, "filename", fn, sizeof(fn));
				if (header_param(line, ll, "name", name, sizeof(name)))
					is_file = strcmp(name, "file") == 0;
			}
			line = eol + 2;
		}
		p = hdr_end + 4;
		next = find(p, (size_t)(end - p), delim, dl + 2);
		if (next == NULL)
			return -1;
		if (has_filename) {
			*data = p;
			*dlen = (size_t)(next - p);
			if (fnamelen > 0)
				snprintf(fname, fnamelen, "%s", fn);
			return 0;
		}
		if (is_file && named == NULL) {
			named = p;
			named_len = (size_t)(next - p);
		}
		p = next + dl + 2;
	}
	if (named == NULL)
		return -1;
	*data = named;
	*dlen = named_len;
	if (fnamelen > 0)
		fname[0] = '\0';
	return 0;
}
