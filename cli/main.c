/* main.c -- importctl: the terminal client of the importer gateway.
 *
 * Thin: parse the command line, read IMPORTER_URL / IMPORTER_TOKEN where no
 * flag was given, build the loop and the client, run the command, exit with
 * its code (cli.h).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "commands.h"

#define REQUEST_TIMEOUT_S 60

static int run(struct cli *cli)
{
	switch (cli->args->cmd) {
	case CMD_IMPORT:
		return cmd_import(cli);
	case CMD_JOBS:
		return cmd_jobs(cli);
	case CMD_SHOW:
		return cmd_show(cli);
	case CMD_LOGS:
		return cmd_logs(cli);
	case CMD_ERRORS:
		return cmd_errors(cli);
	case CMD_CANCEL:
	case CMD_PAUSE:
	case CMD_RESUME:
	case CMD_RETRY:
		return cmd_action(cli);
	case CMD_DELETE:
		return cmd_delete(cli);
	case CMD_STATS:
		return cmd_stats(cli);
	default:
		return CLI_USAGE;
	}
}

int main(int argc, char **argv)
{
	struct cli_args args;
	struct cli cli = {0};
	struct event_base *base = NULL;
	struct http_client *client = NULL;
	const char *url, *token, *no_color = getenv("NO_COLOR"), *term = getenv("TERM");
	char err[512];
	bool bad_url;
	int rc;

	/* A gateway that closes early must not kill us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	cli.out = stdout;
	cli.err = stderr;
	cli.args = &args;
	if (args_parse(argc, argv, &args, err, sizeof(err)) != 0) {
		fprintf(stderr, "importctl: %s\n", err);
		if (args.cmd != CMD_NONE && args.cmd != CMD_HELP)
			fprintf(stderr, "(importctl %s --help for its usage)\n",
			        args_command_name(args.cmd));
		return CLI_USAGE;
	}
	if (args.version) {
		printf("importctl %s\n", IMPORTER_VERSION);
		return CLI_OK;
	}
	if (args.help || args.cmd == CMD_HELP) {
		/* "help --help" is help's help; "help import" is import's. */
		fputs(args_help(args.cmd == CMD_HELP && !args.help ? args.help_topic : args.cmd),
		      stdout);
		return CLI_OK;
	}
	url = args.url != NULL ? args.url : getenv("IMPORTER_URL");
	token = args.token != NULL ? args.token : getenv("IMPORTER_TOKEN");
	if (url == NULL || url[0] == '\0') {
		fprintf(stderr, "importctl: no gateway URL: set IMPORTER_URL or pass --url "
		                "(deploy/local/run.sh prints the export)\n");
		return CLI_USAGE;
	}
	if (token == NULL || token[0] == '\0') {
		fprintf(stderr, "importctl: no token: set IMPORTER_TOKEN or pass --token "
		                "(importer-gateway token --sub USER_UUID mints one)\n");
		return CLI_AUTH;
	}
	cli.tty = isatty(fileno(stdout)) == 1;
	cli.color = cli.tty && (no_color == NULL || no_color[0] == '\0') &&
	            (term == NULL || strcmp(term, "dumb") != 0);
	if ((base = event_base_new()) == NULL) {
		fprintf(stderr, "importctl: cannot create an event loop\n");
		return CLI_SERVER;
	}
	client = http_client_new(base, url, token, REQUEST_TIMEOUT_S, &bad_url, err, sizeof(err));
	if (client == NULL) {
		fprintf(stderr, "importctl: %s\n", err);
		event_base_free(base);
		return bad_url ? CLI_USAGE : CLI_UNREACHABLE;
	}
	cli.base = base;
	cli.client = client;
	rc = run(&cli);
	fflush(stdout);
	http_client_free(client);
	event_base_free(base);
	return rc;
}
