/* http_util.h -- small evhttp helpers shared by the gateway's routes.
 *
 * JSON replies and DESIGN.md's error shape, the SQLSTATE -> HTTP status map,
 * query-string access, UUID and integer parsing, bearer-token extraction and a
 * redacted form of a request URI for logs. No state of its own.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_HTTP_UTIL_H
#define IMPORTER_HTTP_UTIL_H

#include <event2/http.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sends status with a JSON text body (plus a newline) and the JSON content type. */
void http_reply_text(struct evhttp_request *req, int status, const char *json);

/* Sends status with body serialised. Takes ownership of body. */
void http_reply_json(struct evhttp_request *req, int status, struct json_object *body);

/* Sends {"error":{"code":code,"message":message}} with status. */
void http_reply_error(struct evhttp_request *req, int status, const char *code,
		      const char *message);

/* The HTTP status and error code for an SQLSTATE (DESIGN.md): P0002 404,
 * 55000 409, 53400 429, 22023/22P02/22003/22001 400, 42501 403 (401 when
 * has_identity is false); 503 "unavailable" for the database going away or
 * refusing work for now (class 08, 57P01-57P03, 53300, 40001, 40P01, 57014);
 * anything else 500. *code receives a static string. */
int http_status_for_sqlstate(const char *sqlstate, bool has_identity, const char **code);

/* Whether s is a canonical UUID (8-4-4-4-12 hex). */
bool http_is_uuid(const char *s);

/* Parses a decimal integer in [lo, hi]. Returns 0, or -1 if s is not one. */
int http_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
	__attribute__((warn_unused_result));

/* Parses true/false/1/0 (case-insensitive). Returns 0 or -1. */
int http_parse_bool(const char *s, bool *out) __attribute__((warn_unused_result));

/* The bearer token of the Authorization header, or NULL.
 * Returns: borrowed; valid while req lives. */
const char *http_bearer_token(struct evhttp_request *req);

/* Copies uri to out (cut to outlen - 1 bytes) with the value of any
 * access_token parameter (any letter case) replaced by "***" (for logs). */
void http_redact_uri(const char *uri, char *out, size_t outlen);

/* Whether a raw (still encoded) query string holds an encoded NUL ("%00"):
 * evhttp decodes into C strings, so "a%00b" would silently become "a". */
bool http_query_has_nul(const char *qs);

/* Splits a request path into at most max segments (no empty ones; "/a//b" is
 * "a","b"), copying into buf. Returns the number of segments, or -1 when there
 * are more than max or buf is too small. */
int http_split_path(const char *path, char *buf, size_t buflen, char **segs, int max);

#endif
