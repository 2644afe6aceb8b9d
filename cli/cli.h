/* cli.h -- what every importctl command shares: the context (loop, client,
 * arguments, terminal), the exit codes, and turning a failed answer into a
 * clear message and its exit code.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTCTL_CLI_H
#define IMPORTCTL_CLI_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "args.h"
#include "http.h"

/* Exit codes (README "EXIT STATUS"; docs/architecture.md). */
enum cli_exit {
	CLI_OK = 0,          /* done; a followed job completed */
	CLI_JOB_FAILED = 1,  /* a followed job failed */
	CLI_USAGE = 2,       /* bad command line or configuration */
	CLI_CANCELLED = 3,   /* a followed job was cancelled */
	CLI_UNREACHABLE = 4, /* no answer from the gateway */
	CLI_AUTH = 5,        /* token missing or refused (401, 403) */
	CLI_NOT_FOUND = 6,   /* no such job (404), or it was deleted while followed */
	CLI_FILE = 7,        /* the file to import cannot be read */
	CLI_REFUSED = 8,     /* the gateway refused the request (400, 409, 413, 429...) */
	CLI_SERVER = 9,      /* the gateway failed (5xx) or answered nonsense */
	CLI_DETACHED = 130,  /* a second Ctrl-C left a followed job running */
};

struct cli {
	struct event_base *base;     /* borrowed */
	struct http_client *client;  /* borrowed */
	const struct cli_args *args; /* borrowed */
	FILE *out;                   /* borrowed; stdout */
	FILE *err;                   /* borrowed; stderr */
	bool tty;                    /* out is a terminal: progress line, colour */
	bool color;                  /* tty and NO_COLOR unset */
};

/* Prints "importctl: <message>" to cli->err and returns code. */
int cli_error(const struct cli *cli, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* For an answer that is not the expected success: prints what went wrong
 * (what: "show 5b0e…", "upload") and returns the exit code that goes with it. */
int cli_fail_response(const struct cli *cli, const struct http_response *res, const char *what);

/* The exit code for a job's terminal status (completed 0, failed 1,
 * cancelled 3), CLI_SERVER for anything else. */
int cli_exit_for_status(const char *status);

/* True for completed, failed and cancelled. */
bool cli_status_is_terminal(const char *status);

/* Parses an answer's JSON body. Returns: new object, caller frees with
 * json_object_put(); NULL (after printing why) when the body is not JSON. */
struct json_object *cli_parse_body(const struct cli *cli, const struct http_response *res);

/* A number under key as a double (JSON int or double), def when absent/null. */
double cli_json_double(struct json_object *o, const char *key, double def);
/* An integer under key, def when absent/null. */
int64_t cli_json_int(struct json_object *o, const char *key, int64_t def);
/* A string under key, def when absent/null. Returns: borrowed. */
const char *cli_json_str(struct json_object *o, const char *key, const char *def);

/* Prints obj as the API would ("--json"), one line, and a newline. */
void cli_print_json(const struct cli *cli, struct json_object *obj);

/* Seconds on a monotonic clock. */
double cli_now(void);

#endif
