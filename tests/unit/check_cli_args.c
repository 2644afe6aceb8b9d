/* check_cli_args.c -- importctl's command line: commands, options anywhere,
 * values, validation, and the usage errors a typo must produce. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "test_suite.h"

#define MAXARGS 32

static char err[256];

/* Parses the NULL-terminated words after "importctl". */
static int parse(struct cli_args *a, ...)
{
	char *argv[MAXARGS] = {"importctl"};
	int argc = 1;
	va_list ap;
	char *w;

	va_start(ap, a);
	while ((w = va_arg(ap, char *)) != NULL && argc < MAXARGS - 1)
		argv[argc++] = w;
	va_end(ap);
	argv[argc] = NULL;
	return args_parse(argc, argv, a, err, sizeof(err));
}

START_TEST(import_with_every_option)
{
	struct cli_args a;

	ck_assert_int_eq(parse(&a, "import", "data.csv", "--kind", "csv", "--collection=people",
	                       "--mode", "append", "--key", "email", "--dry-run", "--batch-size",
	                       "500", "--follow", "--delimiter", ";", NULL),
	                 0);
	ck_assert_int_eq(a.cmd, CMD_IMPORT);
	ck_assert_str_eq(a.file, "data.csv");
	ck_assert_str_eq(a.kind, "csv");
	ck_assert_str_eq(a.collection, "people");
	ck_assert_str_eq(a.mode, "append");
	ck_assert_str_eq(a.key, "email");
	ck_assert_str_eq(a.delimiter, ";");
	ck_assert(a.dry_run);
	ck_assert(a.follow);
	ck_assert_int_eq(a.batch_size, 500);
	ck_assert(!a.json);
}
END_TEST

START_TEST(global_options_before_or_after_the_command)
{
	struct cli_args a;

	ck_assert_int_eq(parse(&a, "--url", "http://h:1", "--json", "jobs", "--token", "t.t.t",
	                       "-n", "5", "--status", "failed", NULL),
	                 0);
	ck_assert_int_eq(a.cmd, CMD_JOBS);
	ck_assert_str_eq(a.url, "http://h:1");
	ck_assert_str_eq(a.token, "t.t.t");
	ck_assert(a.json);
	ck_assert_int_eq(a.limit, 5);
	ck_assert_str_eq(a.status, "failed");
	/* "--" ends options: a file named like one is still a file. */
	ck_assert_int_eq(parse(&a, "import", "--kind", "ndjson", "--", "--odd-name", NULL), 0);
	ck_assert_str_eq(a.file, "--odd-name");
	ck_assert_int_eq(parse(&a, "import", "-", "--kind", "csv", NULL), 0);
	ck_assert_str_eq(a.file, "-");
}
END_TEST

START_TEST(kind_from_the_file_name)
{
	struct cli_args a;

	ck_assert_str_eq(args_kind_from_file("a/b/people.CSV"), "csv");
	ck_assert_str_eq(args_kind_from_file("x.ndjson"), "ndjson");
	ck_assert_str_eq(args_kind_from_file("x.jsonl"), "ndjson");
	ck_assert_str_eq(args_kind_from_file("backup.json"), "backup");
	ck_assert_ptr_null(args_kind_from_file("notes.txt"));
	ck_assert_ptr_null(args_kind_from_file("csv"));
	ck_assert_int_eq(parse(&a, "import", "notes.txt", NULL), -1);
	ck_assert_ptr_nonnull(strstr(err, "--kind"));
	ck_assert_int_eq(parse(&a, "import", "notes.txt", "--kind", "ndjson", NULL), 0);
}
END_TEST

START_TEST(commands_with_an_id)
{
	static const char *const cmds[] = {"show",  "logs",   "errors", "cancel",
	                                   "pause", "resume", "retry",  "delete"};
	const char *id = "5B0E7C52-1f0a-4c39-9d3e-2a6f0c1d2e3f";
	struct cli_args a;

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		ck_assert_int_eq(parse(&a, cmds[i], id, NULL), 0);
		ck_assert_str_eq(a.id, id);
		ck_assert_str_eq(args_command_name(a.cmd), cmds[i]);
		ck_assert_int_eq(parse(&a, cmds[i], NULL), -1);
		ck_assert_ptr_nonnull(strstr(err, "missing job ID"));
		ck_assert_int_eq(parse(&a, cmds[i], "5b0e7c52", NULL), -1);
		ck_assert_ptr_nonnull(strstr(err, "not a job id"));
		ck_assert_int_eq(parse(&a, cmds[i], id, id, NULL), -1);
		ck_assert_ptr_nonnull(strstr(err, "unexpected argument"));
	}
	ck_assert_int_eq(parse(&a, "retry", id, "--restart", NULL), 0);
	ck_assert(a.restart);
	ck_assert_int_eq(parse(&a, "logs", id, "-f", NULL), 0);
	ck_assert(a.follow);
}
END_TEST

/* Each of these is a usage error with a message naming the problem. */
START_TEST(usage_errors)
{
	static const struct {
		const char *words[6];
		const char *says;
	} cases[] = {
	    {{NULL}, "no command"},
	    {{"frobnicate", NULL}, "unknown command 'frobnicate'"},
	    {{"jobs", "--bogus", NULL}, "unknown option '--bogus'"},
	    {{"jobs", "--follow", NULL}, "jobs does not take --follow"},
	    {{"--dry-run", "jobs", NULL}, "jobs does not take --dry-run"},
	    {{"show", "5b0e7c52-1f0a-4c39-9d3e-2a6f0c1d2e3f", "--restart", NULL}, "--restart"},
	    {{"import", "a.csv", "--mode", "merge", NULL}, "unknown --mode 'merge'"},
	    {{"import", "a.csv", "--kind", "xml", NULL}, "unknown --kind 'xml'"},
	    {{"import", "a.csv", "--batch-size", "0", NULL}, "--batch-size: bad value '0'"},
	    {{"import", "a.csv", "--batch-size", "12x", NULL}, "bad value '12x'"},
	    {{"import", "a.csv", "--batch-size", NULL}, "--batch-size needs a value"},
	    {{"import", "a.csv", "--delimiter", ";;", NULL}, "one character"},
	    {{"import", "a.csv", "--collection=", NULL}, "--collection must not be empty"},
	    {{"import", "a.csv", "--dry-run=yes", NULL}, "takes no value"},
	    {{"import", NULL}, "missing FILE"},
	    {{"jobs", "--status", "done", NULL}, "unknown --status 'done'"},
	    {{"jobs", "--limit", "-1", NULL}, "--limit: bad value"},
	    {{"jobs", "extra", NULL}, "unexpected argument 'extra'"},
	    {{"help", "nope", NULL}, "unknown command 'nope'"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cli_args a;
		char *argv[8] = {"importctl"};
		int argc = 1;

		for (int k = 0; cases[i].words[k] != NULL; k++)
			argv[argc++] = (char *)cases[i].words[k];
		ck_assert_int_eq(args_parse(argc, argv, &a, err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, cases[i].says) != NULL, "case %zu: '%s' lacks '%s'", i,
		              err, cases[i].says);
	}
}
END_TEST

START_TEST(help_and_version)
{
	struct cli_args a;

	/* --help needs no operands and wins over everything missing. */
	ck_assert_int_eq(parse(&a, "import", "--help", NULL), 0);
	ck_assert(a.help);
	ck_assert_int_eq(a.cmd, CMD_IMPORT);
	ck_assert_int_eq(parse(&a, "-h", NULL), 0);
	ck_assert(a.help);
	ck_assert_int_eq(parse(&a, "help", "logs", NULL), 0);
	ck_assert_int_eq(a.cmd, CMD_HELP);
	ck_assert_int_eq(a.help_topic, CMD_LOGS);
	ck_assert_int_eq(parse(&a, "--version", NULL), 0);
	ck_assert(a.version);
	/* Every command has its own help text naming it. */
	for (int c = CMD_NONE + 1; c < CMD_COUNT; c++) {
		char want[64];

		snprintf(want, sizeof(want), "usage: importctl %s", args_command_name(c));
		ck_assert_ptr_nonnull(strstr(args_help(c), want));
	}
	ck_assert_ptr_nonnull(strstr(args_help(CMD_NONE), "Exit status"));
}
END_TEST

static Suite *cli_args_suite(void)
{
	Suite *s = suite_create("cli_args");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, import_with_every_option);
	tcase_add_test(tc, global_options_before_or_after_the_command);
	tcase_add_test(tc, kind_from_the_file_name);
	tcase_add_test(tc, commands_with_an_id);
	tcase_add_test(tc, usage_errors);
	tcase_add_test(tc, help_and_version);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run_suite(cli_args_suite());
}
