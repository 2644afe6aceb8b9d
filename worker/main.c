/* main.c -- importer-worker: run a worker, or apply migrations and exit. */
#include <event2/event.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "migrate.h"
#include "process.h"
#include "worker.h"

static const char usage[] =
	"usage: importer-worker [run]    claim and run import jobs until SIGTERM\n"
	"       importer-worker migrate  apply pending schema migrations and exit\n"
	"       importer-worker --version\n"
	"\n"
	"Configuration comes from the environment: DATABASE_URL (required),\n"
	"IMPORTER_LISTEN_DATABASE_URL, IMPORTER_LOG_LEVEL, IMPORTER_POLL_INTERVAL_MS,\n"
	"IMPORTER_METRICS_ADDR. See README.md.\n";

static int run_migrate(void)
{
	struct config cfg;
	char err[1024];
	int applied;

	process_init(&cfg, CONFIG_MIGRATE, "migrate");
	applied = migrate_url(cfg.database_url, (int)cfg.db_wait_ms, err, sizeof(err));
	config_free(&cfg);
	if (applied < 0) {
		log_error("migrate.failed", LF_STR("error", err));
		return 1;
	}
	log_info("migrate.done", LF_I64("applied", applied),
		 LF_I64("known", (int64_t)migrations_embedded_count));
	return 0;
}

static int run_worker(void)
{
	const volatile sig_atomic_t *stop = process_stop_flag();
	struct event_base *base = NULL;
	struct worker *w = NULL;
	struct config cfg;
	char err[1024];
	int code = 1;

	/* glibc raises its mmap threshold to the size of every large block it
	 * frees, after which a batch's parameter arrays and the file chunks
	 * (0.5-1 MiB each, two batches' worth alive while reading ahead) come
	 * from the heap and fragment it: the worker's RSS grew ~10 MiB over a
	 * long import. A fixed threshold keeps them mapped and returns them to
	 * the system when freed (tests/bench/worker_memory.sh). */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	process_init(&cfg, CONFIG_WORKER, "worker");
	process_log_started(&cfg);
	base = event_base_new();
	if (base == NULL) {
		log_error("worker.failed", LF_STR("error", "event_base_new failed"));
		goto out;
	}
	w = worker_new(base, &cfg);
	if (w == NULL || worker_start(w, stop, err, sizeof(err)) != 0) {
		if (*stop) { /* stopped while waiting for the database */
			code = 0;
			goto out;
		}
		log_error("worker.failed", LF_STR("error", w == NULL ? "out of memory" : err));
		goto out;
	}
	event_base_dispatch(base);
	code = worker_exit_code(w);
	log_info("worker.exited", LF_I64("code", code));
out:
	worker_free(w);
	if (base != NULL)
		event_base_free(base);
	config_free(&cfg);
	return code;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "run";

	if (argc > 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (strcmp(cmd, "run") == 0)
		return run_worker();
	if (strcmp(cmd, "migrate") == 0)
		return run_migrate();
	if (strcmp(cmd, "--version") == 0) {
		printf("importer-worker %s\n", IMPORTER_VERSION);
		return 0;
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	fprintf(stderr, "importer-worker: unknown command \"%s\"\n%s", cmd, usage);
	return 2;
}
