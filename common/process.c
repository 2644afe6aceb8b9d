/* process.c -- startup chores shared by the binaries (see process.h).
 *
 * The stop flag is process-wide by nature: a signal handler can reach nothing
 * else.
 */
#include "process.h"

#include <event2/event.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static volatile sig_atomic_t stop_flag;

static void stop_handler(int sig)
{
	(void)sig;
	stop_flag = 1;
}

void process_init(struct config *cfg, unsigned components, const char *component)
{
	char err[2048];

	if (config_load(cfg, components, config_getenv, NULL, err, sizeof(err)) != 0) {
		log_init(component, LOG_INFO, 2);
		log_error("config.invalid", LF_STR("error", err));
		fprintf(stderr, "importer: invalid configuration:\n%s\n", err);
		exit(2);
	}
	log_init(component, cfg->log_level, 2);
}

const volatile sig_atomic_t *process_stop_flag(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = stop_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	return &stop_flag;
}

void process_log_started(const struct config *cfg)
{
	char db[512], listen[512];

	config_redact_url(cfg->database_url, db, sizeof(db));
	config_redact_url(cfg->listen_database_url, listen, sizeof(listen));
	log_info("process.started", LF_STR("version", IMPORTER_VERSION),
		 LF_STR("libevent", event_get_version()), LF_STR("json_c", json_c_version()),
		 LF_I64("libpq", PQlibVersion()), LF_STR("database_url", db),
		 LF_STR("listen_database_url", listen), LF_STR("http_addr", cfg->http_addr),
		 LF_STR("metrics_addr", cfg->metrics_addr), LF_I64("db_pool", cfg->db_pool),
		 LF_I64("max_upload_bytes", cfg->max_upload_bytes),
		 LF_BOOL("jwt_secret_set", cfg->jwt_secret != NULL),
		 LF_STR("log_level", log_level_name(cfg->log_level)));
}
