/* config.c -- the table of environment variables and their validation. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum cfg_type { CFG_STR, CFG_INT, CFG_LEVEL, CFG_ADDR };

struct cfg_entry {
	const char *name;
	enum cfg_type type;
	size_t offset;
	const char *def;     /* NULL = no default */
	int64_t min, max;    /* for CFG_INT */
	unsigned required;   /* mask of components that need it */
};

#define OFF(f) offsetof(struct config, f)

/* Alphabetical. IMPORTER_LISTEN_DATABASE_URL defaults to DATABASE_URL below. */
static const struct cfg_entry entries[] = {
	{"DATABASE_URL", CFG_STR, OFF(database_url), NULL, 0, 0,
	 CONFIG_WORKER | CONFIG_GATEWAY | CONFIG_MIGRATE},
	{"IMPORTER_DB_POOL", CFG_INT, OFF(db_pool), "4", 1, 256, 0},
	{"IMPORTER_DB_WAIT_MS", CFG_INT, OFF(db_wait_ms), "60000", 0, 3600000, 0},
	{"IMPORTER_HTTP_ADDR", CFG_ADDR, OFF(http_addr), "0.0.0.0:8080", 0, 0, 0},
	{"IMPORTER_JWT_SECRET", CFG_STR, OFF(jwt_secret), NULL, 0, 0, CONFIG_GATEWAY},
	{"IMPORTER_LISTEN_DATABASE_URL", CFG_STR, OFF(listen_database_url), NULL, 0, 0, 0},
	{"IMPORTER_LOG_LEVEL", CFG_LEVEL, OFF(log_level), "info", 0, 0, 0},
	/* At most 1 GiB: PostgreSQL's limit for one bytea value. */
	{"IMPORTER_MAX_UPLOAD_BYTES", CFG_INT, OFF(max_upload_bytes), "67108864", 1,
	 INT64_C(1) << 30, 0},
	{"IMPORTER_METRICS_ADDR", CFG_ADDR, OFF(metrics_addr), NULL, 0, 0, 0},
	{"IMPORTER_POLL_INTERVAL_MS", CFG_INT, OFF(poll_interval_ms), "5000", 10, 600000, 0},
	{"IMPORTER_SSE_HEARTBEAT_MS", CFG_INT, OFF(sse_heartbeat_ms), "15000", 10, 15000, 0},
	{"IMPORTER_SSE_QUEUE_BYTES", CFG_INT, OFF(sse_queue_bytes), "262144", 1024, 67108864, 0},
};

const char *config_getenv(const char *name, void *arg)
{
	(void)arg;
	return getenv(name);
}

static void append_err(char *err, size_t errlen, const char *fmt, ...)
{
	size_t used = strlen(err);
	va_list ap;

	if (used + 1 >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + used, errlen - used, fmt, ap);
	va_end(ap);
	used = strlen(err);
	if (used + 1 < errlen) {
		err[used] = '\n';
		err[used + 1] = '\0';
	}
}

int config_split_addr(const char *addr, char *host, size_t hostlen, int *port)
{
	const char *colon, *hs = addr, *he;
	char *end;
	long p;

	if (addr[0] == '[') {
		he = strchr(addr, ']');
		if (he == NULL || he[1] != ':')
			return -1;
		hs = addr + 1;
		colon = he + 1;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL)
			return -1;
		he = colon;
	}
	if (he == hs || (size_t)(he - hs) >= hostlen)
		return -1;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || p < 0 || p > 65535)
		return -1;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	*port = (int)p;
	return 0;
}

static bool parse_value(const struct cfg_entry *e, const char *val, struct config *cfg, char *err,
			size_t errlen)
{
	char *field = (char *)cfg + e->offset;
	char host[256];
	int port;

	switch (e->type) {
	case CFG_ADDR:
		if (config_split_addr(val, host, sizeof(host), &port) != 0) {
			append_err(err, errlen, "%s: expected host:port, got \"%s\"", e->name, val);
			return false;
		}
		/* fall through */
	case CFG_STR:
		if (val[0] == '\0') {
			append_err(err, errlen, "%s: must not be empty", e->name);
			return false;
		}
		*(char **)field = strdup(val);
		return true;
	case CFG_INT: {
		char *end;
		long long n;

		errno = 0;
		n = strtoll(val, &end, 10);
		if (errno != 0 || end == val || *end != '\0' || n < e->min || n > e->max) {
			append_err(err, errlen, "%s: expected an integer in %lld..%lld, got \"%s\"",
				   e->name, (long long)e->min, (long long)e->max, val);
			return false;
		}
		*(int64_t *)field = n;
		return true;
	}
	case CFG_LEVEL:
		if (log_level_parse(val, (enum log_level *)field) != 0) {
			append_err(err, errlen,
				   "%s: expected debug, info, warn or error, got \"%s\"", e->name,
				   val);
			return false;
		}
		return true;
	}
	return false;
}

int config_load(struct config *cfg, unsigned components, config_getenv_fn getenv_fn, void *arg,
		char *err, size_t errlen)
{
	bool ok = true;

	memset(cfg, 0, sizeof(*cfg));
	if (errlen > 0)
		err[0] = '\0';
	for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
		const struct cfg_entry *e = &entries[i];
		const char *val = getenv_fn(e->name, arg);

		if (val == NULL)
			val = e->def;
		if (val == NULL) {
			if (e->required & components) {
				append_err(err, errlen, "%s: required but not set", e->name);
				ok = false;
			}
			continue;
		}
		if (!parse_value(e, val, cfg, err, errlen))
			ok = false;
	}
	if (ok && cfg->listen_database_url == NULL && cfg->database_url != NULL)
		cfg->listen_database_url = strdup(cfg->database_url);
	if (!ok) {
		config_free(cfg);
		/* Drop the trailing newline of the last message. */
		size_t len = strlen(err);
		if (len > 0 && err[len - 1] == '\n')
			err[len - 1] = '\0';
		return -1;
	}
	return 0;
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->database_url);
	free(cfg->listen_database_url);
	free(cfg->http_addr);
	free(cfg->jwt_secret);
	free(cfg->metrics_addr);
	memset(cfg, 0, sizeof(*cfg));
}

void config_redact_url(const char *url, char *out, size_t outlen)
{
	const char *scheme, *at, *colon;

	if (url == NULL) {
		snprintf(out, outlen, "(unset)");
		return;
	}
	/* URI form: scheme://user:password@host... */
	scheme = strstr(url, "://");
	if (scheme != NULL) {
		const char *auth = scheme + 3;
		const char *slash = strchr(auth, '/');

		at = strchr(auth, '@');
		if (at != NULL && (slash == NULL || at < slash)) {
			colon = memchr(auth, ':', (size_t)(at - auth));
			if (colon != NULL) {
				snprintf(out, outlen, "%.*s:***%s", (int)(colon - url), url, at);
				return;
			}
		}
	}
	/* keyword=value form, or a password in the query string. */
	const char *pw = strstr(url, "password=");
	if (pw != NULL) {
		const char *end = pw + strcspn(pw, " &");
		snprintf(out, outlen, "%.*spassword=***%s", (int)(pw - url), url, end);
		return;
	}
	snprintf(out, outlen, "%s", url);
}
