/* main.c -- importer-gateway: the HTTP API, SSE relay and web UI server. */
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "config.h"
#include "gateway.h"
#include "jwt.h"
#include "log.h"
#include "migrate.h"
#include "process.h"

static const char usage[] =
	"usage: importer-gateway [--migrate]   serve HTTP until SIGTERM\n"
	"       importer-gateway token --sub UUID [--ttl SECONDS]\n"
	"                                      print a development token signed with\n"
	"                                      IMPORTER_JWT_SECRET (default ttl 3600)\n"
	"       importer-gateway --version\n"
	"\n"
	"  --migrate   apply pending schema migrations first (DATABASE_URL must be\n"
	"              allowed to change the schema)\n"
	"\n"
	"Configuration comes from the environment: DATABASE_URL and\n"
	"IMPORTER_JWT_SECRET (required), IMPORTER_LISTEN_DATABASE_URL,\n"
	"IMPORTER_HTTP_ADDR, IMPORTER_DB_POOL, IMPORTER_MAX_UPLOAD_BYTES,\n"
	"IMPORTER_LOG_LEVEL, IMPORTER_SSE_HEARTBEAT_MS, IMPORTER_SSE_QUEUE_BYTES.\n"
	"See README.md.\n";

/* importer-gateway token --sub UUID [--ttl SECONDS] */
static int run_token(int argc, char **argv)
{
	const char *secret = getenv("IMPORTER_JWT_SECRET");
	const char *sub = NULL;
	long long ttl = 3600;
	char *token, *end;

	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--sub") == 0 && i + 1 < argc) {
			sub = argv[++i];
		} else if (strcmp(argv[i], "--ttl") == 0 && i + 1 < argc) {
			ttl = strtoll(argv[++i], &end, 10);
			if (*end != '\0' || ttl < 1 || ttl > 10LL * 365 * 86400) {
				fprintf(stderr, "importer-gateway token: --ttl must be 1..315360000 "
						"seconds\n");
				return 2;
			}
		} else {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (sub == NULL || !jwt_is_uuid(sub)) {
		fprintf(stderr, "importer-gateway token: --sub must be a user UUID\n");
		return 2;
	}
	if (secret == NULL || secret[0] == '\0') {
		fprintf(stderr, "importer-gateway token: IMPORTER_JWT_SECRET is not set\n");
		return 2;
	}
	token = jwt_sign(secret, sub, (int64_t)time(NULL), ttl);
	if (token == NULL) {
		fprintf(stderr, "importer-gateway token: cannot sign\n");
		return 1;
	}
	printf("%s\n", token);
	free(token);
	return 0;
}

/* Many idle SSE clients need many descriptors: raise the soft limit to the hard one. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_warn("process.nofile_unchanged");
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_info("process.nofile", LF_I64("limit", (int64_t)rl.rlim_cur));
}

int main(int argc, char **argv)
{
	struct gateway_options opts;
	struct event_base *base = NULL;
	struct gateway *gw = NULL;
	struct config cfg;
	bool migrate = false;
	char err[1024];
	int code = 1;

	if (argc > 1 && strcmp(argv[1], "token") == 0)
		return run_token(argc, argv);
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
	gateway_options_default(&opts);
	opts.heartbeat_ms = (int)cfg.sse_heartbeat_ms;
	opts.sse_queue_bytes = (size_t)cfg.sse_queue_bytes;
	raise_nofile();
	if (migrate) {
		int applied = migrate_url(cfg.database_url, (int)cfg.db_wait_ms, err, sizeof(err));

		if (applied < 0) {
			log_error("migrate.failed", LF_STR("error", err));
			goto out;
		}
		log_info("migrate.done", LF_I64("applied", applied));
	}
	base = event_base_new();
	gw = base != NULL ? gateway_new(base, &cfg, &opts) : NULL;
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
