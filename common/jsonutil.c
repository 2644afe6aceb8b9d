/* jsonutil.c -- json-c helpers (see jsonutil.h). */
#include "jsonutil.h"

int jsonutil_add(struct json_object *obj, const char *key, struct json_object *val)
{
	if (!json_object_is_type(obj, json_type_object) ||
	    json_object_object_add(obj, key, val) != 0) {
		json_object_put(val);
		return -1;
	}
	return 0;
}

int jsonutil_append(struct json_object *arr, struct json_object *val)
{
	if (!json_object_is_type(arr, json_type_array) || json_object_array_add(arr, val) != 0) {
		json_object_put(val);
		return -1;
	}
	return 0;
}

const char *jsonutil_get_string(struct json_object *obj, const char *key)
{
	struct json_object *val;

	if (!json_object_object_get_ex(obj, key, &val) || !json_object_is_type(val, json_type_string))
		return NULL;
	return json_object_get_string(val);
}

bool jsonutil_get_int64(struct json_object *obj, const char *key, int64_t *out)
{
	struct json_object *val;

	if (!json_object_object_get_ex(obj, key, &val) || !json_object_is_type(val, json_type_int))
		return false;
	*out = json_object_get_int64(val);
	return true;
}
