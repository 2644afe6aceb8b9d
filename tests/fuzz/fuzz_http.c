/* fuzz_http.c -- libFuzzer harness for the gateway's URL, query and route helpers.
 *
 * The input is a request target as a client sends it. It goes the way
 * api_cb takes it: evhttp's URI parser, http_split_path, routes_is_sse,
 * http_query_has_nul, evhttp_parse_query_str, then every value through
 * http_parse_int / http_parse_bool / http_is_uuid, and the whole target
 * through http_redact_uri. Checks: segments are non-empty and hold no '/';
 * an accepted integer is in range and prints back to the same value; an
 * accepted UUID is 8-4-4-4-12 hex; a query with an encoded NUL is flagged;
 * the redacted copy fits its buffer and never shows an access_token value.
 * Built and run by tests/fuzz/run.sh.
 */
#include <ctype.h>
#include <stdbool.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway_int.h" /* routes_is_sse */
#include "http_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


#define CHECK(x)                                                                      \
	do {                                                                          \
		if (!(x)) {                                                           \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
				#x);                                                  \
			abort();                                                      \
		}                                                                     \
	} while (0)

static void check_value(const char *v)
{
	int64_t n;
	bool b;
	char back[32];

	if (http_parse_int(v, -5, 1000000, &n) == 0) {
		CHECK(n >= -5 && n <= 1000000);
		snprintf(back, sizeof(back), "%lld", (long long)n);
		CHECK(http_parse_int(back, -5, 1000000, &n) == 0 && strtoll(back, NULL, 10) == n);
	}
	if (http_parse_bool(v, &b) == 0)
		CHECK(strlen(v) <= 5);
	if (http_is_uuid(v)) {
		CHECK(strlen(v) == 36);
		for (int i = 0; i < 36; i++)
			CHECK(i == 8 || i == 13 || i == 18 || i == 23 ? v[i] == '-'
								       : isxdigit((unsigned char)v[i]));
	}
}

static const char mask[] = "access_token=***";

/* Whether out holds value somewhere other than across a mask the redaction
 * wrote: the text before a masked parameter followed by the start of the
 * mask can spell the value without leaking it (",.cui?" + "acce", the fuzz
 * smoke of 2026-12-07 evening; tests/fuzz/regressions/http/). */
static bool holds_outside_masks(const char *out, const char *value)
{
	size_t n = strlen(value), m = strlen(mask);

	for (const char *q = strstr(out, value); q != NULL; q = strstr(q + 1, value)) {
		bool across_mask = false;

		for (const char *k = strstr(out, mask); k != NULL && k < q + n;
		     k = strstr(k + 1, mask))
			if (k + m > q)
				across_mask = true;
		if (!across_mask)
			return true;
	}
	return false;
}

/* The redacted copy must not contain the value of an access_token parameter
 * of the query (checked for values of 6+ characters that occur nowhere else
 * in the URI, so that the same text elsewhere does not count). Only the query
 * counts: "&access_token=" in the path, before the first '?', or in the
 * fragment is no parameter (the first fuzz smoke of 2026-12-07 flagged one in
 * the path; tests/fuzz/regressions/http/). */
static void check_redaction(const char *uri)
{
	char out[256];
	const char *query = strchr(uri, '?'), *p = query, *end;

	http_redact_uri(uri, out, sizeof(out));
	CHECK(strlen(out) < sizeof(out));
	if (query == NULL)
		return;
	end = query + strcspn(query, "#");
	while ((p = strstr(p, "access_token=")) != NULL && p < end) {
		char value[128];
		size_t n;

		p += strlen("access_token=");
		if (p[-14] != '?' && p[-14] != '&')
			continue; /* part of another parameter's name or value */
		n = strcspn(p, "&#");
		if (n < 6 || n >= sizeof(value) || strlen(uri) >= sizeof(out))
			continue;
		memcpy(value, p, n);
		value[n] = '\0';
		if (strstr(strstr(uri, value) + 1, value) != NULL)
			continue; /* the value also occurs elsewhere in the URI */
		CHECK(!holds_outside_masks(out, value));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *target = malloc(size + 1), buf[512], *segs[8];
	struct evhttp_uri *uri;
	struct evkeyvalq q = {NULL, &q.tqh_first};
	const char *path, *qs;
	int n;

	CHECK(target != NULL);
	memcpy(target, data, size);
	target[size] = '\0';
	check_redaction(target);
	uri = evhttp_uri_parse_with_flags(target, EVHTTP_URI_NONCONFORMANT);
	if (uri != NULL) {
		path = evhttp_uri_get_path(uri);
		qs = evhttp_uri_get_query(uri);
		n = path != NULL ? http_split_path(path, buf, sizeof(buf), segs, 8) : -1;
		CHECK(n >= -1 && n <= 8);
		for (int i = 0; i < n; i++) {
			CHECK(segs[i][0] != '\0' && strchr(segs[i], '/') == NULL);
			CHECK(segs[i] >= buf && segs[i] < buf + sizeof(buf));
			check_value(segs[i]);
		}
		if (n > 0)
			(void)routes_is_sse(segs, n);
		if (qs != NULL) {
			if (strstr(qs, "%00") != NULL)
				CHECK(http_query_has_nul(qs));
			if (!http_query_has_nul(qs) && evhttp_parse_query_str(qs, &q) == 0) {
				for (struct evkeyval *kv = q.tqh_first; kv != NULL; kv = kv->next.tqe_next)
					check_value(kv->value);
			}
			evhttp_clear_headers(&q);
		}
		evhttp_uri_free(uri);
	}
	free(target);
	return 0;
}
