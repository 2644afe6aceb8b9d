/* main.c -- importer-gateway: the HTTP API, SSE relay and web UI server. */
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "gateway.h"
#include "log.h"
#include "migrate.h"
#include "process.h"

static const char usage[] =
	"usage: importer-gateway [--migrate]   serve HTTP until SIGTERM\n"
	"       importer-gateway --version\n"
	"\n"
	"  --migrate   apply pending schema migrations first (DATABASE_URL must be\n"
	"              allowed to change the schema)\n"
	"\n"
	"Configuration comes from the environment: DATABASE_URL and\n"
	"IMPORTER_JWT_SECRET (required), IMPORTER_LISTEN_DATABASE_URL,\n"
	"IMPORTER_HTTP_ADDR, IMPORTER_DB_POOL, IMPORTER_MAX_UPLOAD_BYTES,\n"
	"IMPORTER_LOG_LEVEL. See README.md.\n";

int main(int argc, char **argv)
{
	struct event_base *base = NULL;
	struct gateway *gw = NULL;
	struct config cfg;
	bool migrate = false;
	char err[1024];
	int code = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--migrate") == 0) {
			migrate = true;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("importer-gateway %s\n", IMPORTER_VERSION);
			return 0;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			return 0;
		} else {
			fprintf(stderr, "importer-gateway: unknown argument \"%s\"\n%s", argv[i],
				usage);
			return 2;
		}
	}
	const volatile sig_atomic_t *stop = process_stop_flag();

	process_init(&cfg, CONFIG_GATEWAY, "gateway");
	process_log_started(&cfg);
	if (migrate) {
		int applied = migrate_url(cfg.database_url, (int)cfg.db_wait_ms, err, sizeof(err));

		if (applied < 0) {
			log_error("migrate.failed", LF_STR("error", err));
			goto out;
		}
		log_info("migrate.done", LF_I64("applied", applied));
	}
	base = event_base_new();
	gw = base != NULL ? gateway_new(base, &cfg) : NULL;
	if (gw == NULL || gateway_start(gw, err, sizeof(err)) != 0) {
		log_error("gateway.failed", LF_STR("error", gw == NULL ? "out of memory" : err));
		goto out;
	}
	if (!*stop) /* else a signal came before the loop's handlers took over */
		event_base_dispatch(base);
	code = 0;
	log_info("gateway.exited", LF_I64("code", code));
out:
	gateway_free(gw);
	if (base != NULL)
		event_base_free(base);
	config_free(&cfg);
	return code;
}
