/* config.h -- process settings read once from the environment.
 *
 * One table in config.c lists every variable with its type, default and
 * range. config_load() validates all of them and reports every bad one at
 * once; the result is immutable afterwards (no reload: restart to change).
 * Policy (limits, batch sizes) lives in importer.settings, not here.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_CONFIG_H
#define IMPORTER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

/* Which program is loading: decides which variables are required. */
enum config_component {
	CONFIG_WORKER = 1 << 0,
	CONFIG_GATEWAY = 1 << 1,
	CONFIG_MIGRATE = 1 << 2,
};

struct config {
	char *database_url;        /* owned; DATABASE_URL */
	char *listen_database_url; /* owned; IMPORTER_LISTEN_DATABASE_URL, default DATABASE_URL */
	char *http_addr;           /* owned; IMPORTER_HTTP_ADDR host:port */
	char *jwt_secret;          /* owned; IMPORTER_JWT_SECRET */
	int64_t max_upload_bytes;  /* IMPORTER_MAX_UPLOAD_BYTES */
	int64_t db_pool;           /* IMPORTER_DB_POOL */
	int64_t db_wait_ms;        /* IMPORTER_DB_WAIT_MS: how long migrate waits for the database */
	char *metrics_addr;        /* owned; IMPORTER_METRICS_ADDR, NULL = off */
	enum log_level log_level;  /* IMPORTER_LOG_LEVEL */
	int64_t poll_interval_ms;  /* IMPORTER_POLL_INTERVAL_MS: safety-net poll */
	int64_t sse_heartbeat_ms;  /* IMPORTER_SSE_HEARTBEAT_MS: SSE ": ping" interval */
	int64_t sse_queue_bytes;   /* IMPORTER_SSE_QUEUE_BYTES: per-stream queue before dropping */
};

/* Looks a variable up; returns NULL when unset. */
typedef const char *(*config_getenv_fn)(const char *name, void *arg);

/* The process environment, for config_load(). */
const char *config_getenv(const char *name, void *arg);

/* Fills cfg from getenv_fn (pass config_getenv, NULL for the real
 * environment). components is a mask of enum config_component deciding what is
 * required. Returns 0, or -1 with every problem listed in err (one per line);
 * on failure cfg holds nothing to free. */
int config_load(struct config *cfg, unsigned components, config_getenv_fn getenv_fn, void *arg,
		char *err, size_t errlen) __attribute__((warn_unused_result));

/* Frees the strings in cfg (not cfg itself). NULL-safe. */
void config_free(struct config *cfg);

/* Copies url to out with any password replaced by "***" (for logs). */
void config_redact_url(const char *url, char *out, size_t outlen);

/* Splits "host:port" (IPv6 as "[::1]:port"). Returns 0, or -1 if malformed.
 * host receives at most hostlen-1 bytes. */
int config_split_addr(const char *addr, char *host, size_t hostlen, int *port);

#endif
