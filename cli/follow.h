/* follow.h -- following one job to its end over its SSE stream.
 *
 * Draws the live progress line (or prints log lines), reconnects with
 * Last-Event-ID when the stream drops and re-reads the job's state each time,
 * turns a first Ctrl-C into a cancel request and a second into detaching.
 */
#ifndef IMPORTCTL_FOLLOW_H
#define IMPORTCTL_FOLLOW_H

#include <stdint.h>

#include "cli.h"

enum follow_mode {
	FOLLOW_PROGRESS, /* import --follow: progress line, then the summary */
	FOLLOW_LOGS,     /* logs --follow: new log lines as they come */
};

/* Follows job_id until it is completed, failed or cancelled, and returns the
 * exit code of its end (0, 1, 3), or of what stopped the following (4, 5, 6,
 * 9, 130). FOLLOW_LOGS: log lines after last_log_id are printed. */
int follow_job(struct cli *cli, const char *job_id, enum follow_mode mode, int64_t last_log_id);

#endif
