/* log.h -- structured logging: one JSON object per line on stderr.
 *
 * Each line carries ts, level, component, pid, event and typed fields. The
 * level is checked before any argument is evaluated. Lines are written with a
 * single write(2) and kept under PIPE_BUF so lines of concurrent processes
 * sharing a pipe never interleave. The logger is process-wide state, set once
 * at startup by log_init().
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_LOG_H
#define IMPORTER_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

enum log_field_type { LF_T_END, LF_T_STR, LF_T_I64, LF_T_BOOL, LF_T_DBL };

struct log_field {
	enum log_field_type type;
	const char *key; /* borrowed */
	union {
		const char *s; /* borrowed; NULL is written as JSON null */
		int64_t i;
		bool b;
		double d;
	} v;
};

#define LF_STR(k, x)  ((struct log_field){LF_T_STR, (k), {.s = (x)}})
#define LF_I64(k, x)  ((struct log_field){LF_T_I64, (k), {.i = (int64_t)(x)}})
#define LF_BOOL(k, x) ((struct log_field){LF_T_BOOL, (k), {.b = (x)}})
#define LF_DBL(k, x)  ((struct log_field){LF_T_DBL, (k), {.d = (double)(x)}})
#define LF_END        ((struct log_field){LF_T_END, NULL, {.s = NULL}})

/* Longest string field value written; longer values are cut and marked. */
#define LOG_MAX_FIELD 1024
/* Longest line written, newline included (PIPE_BUF on Linux). */
#define LOG_MAX_LINE 4096

/* Sets the component name ("worker", "gateway"), the minimum level and the
 * file descriptor lines go to (2 for stderr). component is copied. */
void log_init(const char *component, enum log_level min_level, int fd);

/* Whether a line at level would be written. */
bool log_enabled(enum log_level level);

/* Writes one line: event (a stable noun.verb key), then the fields up to
 * LF_END. Use the log_* macros, which add LF_END and check the level first. */
void log_at(enum log_level level, const char *event, ...);

/* Parses "debug", "info", "warn", "error". Returns 0, or -1 if unknown. */
int log_level_parse(const char *name, enum log_level *out);

/* The name of level, as written in the "level" field. */
const char *log_level_name(enum log_level level);

#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_enabled(LOG_DEBUG))                                                        \
			log_at(LOG_DEBUG, __VA_ARGS__, LF_END);                                    \
	} while (0)
#define log_info(...)                                                                              \
	do {                                                                                       \
		if (log_enabled(LOG_INFO))                                                         \
			log_at(LOG_INFO, __VA_ARGS__, LF_END);                                     \
	} while (0)
#define log_warn(...)                                                                              \
	do {                                                                                       \
		if (log_enabled(LOG_WARN))                                                         \
			log_at(LOG_WARN, __VA_ARGS__, LF_END);                                     \
	} while (0)
#define log_error(...)                                                                             \
	do {                                                                                       \
		if (log_enabled(LOG_ERROR))                                                        \
			log_at(LOG_ERROR, __VA_ARGS__, LF_END);                                    \
	} while (0)

#endif
