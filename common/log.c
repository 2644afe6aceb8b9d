/* log.c -- JSON-lines logger (see log.h).
 *
 * Serialisation goes through json-c so escaping is always right. The logger's
 * settings are the one piece of process-wide mutable state in common/: a log
 * line must be writable from anywhere without threading a handle through.
 */
#include "log.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jsonutil.h"

static struct {
	char component[32];
	enum log_level min_level;
	int fd;
} logger = {"importer", LOG_INFO, 2};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *component, enum log_level min_level, int fd)
{
	snprintf(logger.component, sizeof(logger.component), "%s", component);
	logger.min_level = min_level;
	logger.fd = fd;
}

bool log_enabled(enum log_level level)
{
	return level >= logger.min_level;
}

int log_level_parse(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

const char *log_level_name(enum log_level level)
{
	return level_names[level];
}

static void format_ts(char *buf, size_t len)
{
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 now.tv_nsec / 1000000);
}

/* A string field, cut at max bytes (on a UTF-8 boundary) with a marker. */
static struct json_object *string_field(const char *s, size_t max)
{
	size_t len;

	if (s == NULL)
		return NULL;
	len = strlen(s);
	if (len <= max)
		return json_object_new_string_len(s, (int)len);
	while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
		max--;
	char buf[LOG_MAX_FIELD + 16];
	memcpy(buf, s, max);
	memcpy(buf + max, "...", 4);
	return json_object_new_string(buf);
}

static struct json_object *build_line(enum log_level level, const char *event, va_list ap,
				      size_t max_field)
{
	struct json_object *obj = json_object_new_object();
	char ts[64];

	format_ts(ts, sizeof(ts));
	jsonutil_add(obj, "ts", json_object_new_string(ts));
	jsonutil_add(obj, "level", json_object_new_string(level_names[level]));
	jsonutil_add(obj, "component", json_object_new_string(logger.component));
	jsonutil_add(obj, "pid", json_object_new_int64(getpid()));
	jsonutil_add(obj, "event", string_field(event, 128));
	for (;;) {
		struct log_field f = va_arg(ap, struct log_field);
		struct json_object *val = NULL;

		if (f.type == LF_T_END)
			break;
		switch (f.type) {
		case LF_T_STR:
			val = string_field(f.v.s, max_field);
			break;
		case LF_T_I64:
			val = json_object_new_int64(f.v.i);
			break;
		case LF_T_BOOL:
			val = json_object_new_boolean(f.v.b);
			break;
		case LF_T_DBL:
			val = json_object_new_double(f.v.d);
			break;
		case LF_T_END:
			break;
		}
		jsonutil_add(obj, f.key, val);
	}
	return obj;
}

void log_at(enum log_level level, const char *event, ...)
{
	/* Shrink string fields until the line fits in one atomic write. */
	static const size_t field_limits[] = {LOG_MAX_FIELD, 256, 64, 16};
	char line[LOG_MAX_LINE];
	size_t len = 0;
	int saved_errno = errno;

	if (!log_enabled(level))
		return;
	for (size_t i = 0; i < sizeof(field_limits) / sizeof(field_limits[0]); i++) {
		va_list ap;
		struct json_object *obj;
		const char *text;

		va_start(ap, event);
		obj = build_line(level, event, ap, field_limits[i]);
		va_end(ap);
		text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
								   JSON_C_TO_STRING_NOSLASHESCAPE);
		len = strlen(text);
		if (len + 1 < sizeof(line))
			memcpy(line, text, len);
		json_object_put(obj);
		if (len + 1 < sizeof(line))
			break;
		len = 0;
	}
	if (len == 0)
		len = (size_t)snprintf(line, sizeof(line) - 1,
				       "{\"level\":\"%s\",\"event\":\"log.too_long\"}",
				       level_names[level]);
	line[len++] = '\n';
	while (write(logger.fd, line, len) < 0 && errno == EINTR)
		;
	errno = saved_errno;
}
