/* process.h -- startup chores shared by the importer binaries.
 *
 * Loading the configuration, initialising the logger, a first-signal flag for
 * the time before an event loop runs, and the process.started log line.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_PROCESS_H
#define IMPORTER_PROCESS_H

#include <signal.h>

#include "config.h"

/* Loads cfg from the environment for components and initialises the logger
 * for component. On a bad configuration prints every problem to stderr and
 * exits with status 2 (startup only). */
void process_init(struct config *cfg, unsigned components, const char *component);

/* Installs SIGTERM/SIGINT handlers that raise the returned flag; an event
 * loop's signal events replace them later. SIGPIPE is ignored.
 * Returns: borrowed; valid for the life of the process. */
const volatile sig_atomic_t *process_stop_flag(void);

/* Logs process.started with the version and the effective, redacted config. */
void process_log_started(const struct config *cfg);

#endif
