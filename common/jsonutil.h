/* jsonutil.h -- small json-c helpers that make ownership impossible to get wrong.
 *
 * json-c's *_add functions take our reference only on success; these helpers
 * take it always, so a call site never leaks on failure.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_JSONUTIL_H
#define IMPORTER_JSONUTIL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

/* Adds val (may be NULL for JSON null) to obj under key. Returns 0, or -1 on
 * failure. Takes ownership of val, also on failure. */
int jsonutil_add(struct json_object *obj, const char *key, struct json_object *val);

/* Appends val to the array arr. Returns 0 or -1. Takes ownership of val, also
 * on failure. */
int jsonutil_append(struct json_object *arr, struct json_object *val);

/* The string under key, or NULL when absent or not a string.
 * Returns: borrowed; valid while obj lives. */
const char *jsonutil_get_string(struct json_object *obj, const char *key);

/* Reads the integer under key into *out. Returns false when absent or not an
 * integer (a JSON string is not converted). */
bool jsonutil_get_int64(struct json_object *obj, const char *key, int64_t *out);

#endif
