/* commands.h -- importctl's commands; each returns its exit code (cli.h).
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTCTL_COMMANDS_H
#define IMPORTCTL_COMMANDS_H

#include <json-c/json.h>

#include "cli.h"

int cmd_import(struct cli *cli); /* import.c */
int cmd_jobs(struct cli *cli);
int cmd_show(struct cli *cli);
int cmd_logs(struct cli *cli);
int cmd_errors(struct cli *cli);
int cmd_action(struct cli *cli); /* cancel, pause, resume, retry */
int cmd_delete(struct cli *cli);
int cmd_stats(struct cli *cli);

/* Prints one log line ({id,ts,level,event,message,details}) for people, or
 * as JSON with --json. */
void cmd_print_log(const struct cli *cli, struct json_object *log);

/* The status word, coloured on a colour terminal. Returns: static or
 * borrowed text. */
const char *cmd_status_text(const struct cli *cli, const char *status, char *buf, size_t len);

#endif
