/* args.h -- importctl's command line: commands, options, help texts.
 *
 * Pure: no I/O, no environment. main.c fills in IMPORTER_URL / IMPORTER_TOKEN
 * where no flag was given. Unless stated otherwise, pointer arguments are
 * borrowed for the duration of the call and not retained; strings stored in
 * struct cli_args point into argv.
 */
#ifndef IMPORTCTL_ARGS_H
#define IMPORTCTL_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cli_command {
	CMD_NONE,
	CMD_IMPORT,
	CMD_JOBS,
	CMD_SHOW,
	CMD_LOGS,
	CMD_ERRORS,
	CMD_CANCEL,
	CMD_PAUSE,
	CMD_RESUME,
	CMD_RETRY,
	CMD_DELETE,
	CMD_STATS,
	CMD_HELP,
	CMD_COUNT
};

struct cli_args {
	enum cli_command cmd;
	bool help;         /* --help: print the command's help and exit 0 */
	bool version;      /* --version */
	bool json;         /* --json: the API's JSON on stdout */
	const char *url;   /* --url (NULL: IMPORTER_URL) */
	const char *token; /* --token (NULL: IMPORTER_TOKEN) */
	const char *file;  /* import: FILE */
	const char *id;    /* show, logs, errors, cancel...: the job id */
	const char *kind;  /* import --kind (NULL: from FILE's extension) */
	const char *collection;
	const char *mode; /* upsert | append | replace */
	const char *key;
	const char *delimiter; /* import --delimiter (one character) */
	const char *status;    /* jobs --status */
	bool dry_run;
	bool follow;
	bool restart;                /* retry --restart */
	int64_t batch_size;          /* 0: server default */
	int64_t limit;               /* jobs --limit; 0: 20 */
	int64_t hours;               /* stats --hours; 0: 24 */
	enum cli_command help_topic; /* help COMMAND */
};

/* Parses argv[1..argc-1]. Options may come before or after the command and
 * its operands; "--name=value" and "--name value" both work; "--" ends the
 * options. Returns 0, or -1 with a one-line message in err (a usage error). */
int args_parse(int argc, char **argv, struct cli_args *out, char *err, size_t errlen);

/* The command's name ("import"), or "importctl" for CMD_NONE. */
const char *args_command_name(enum cli_command cmd);

/* The --help text of cmd (CMD_NONE: the overview). Returns: static text. */
const char *args_help(enum cli_command cmd);

/* The job kind implied by a file name's extension (.csv, .ndjson/.jsonl,
 * .json), or NULL. Returns: static text. */
const char *args_kind_from_file(const char *path);

#endif
