/* args.c -- importctl's command line: a table of options per command.
 *
 * Owns the parsing and validation of argv and the --help texts. Knows nothing
 * of HTTP; values that the server also checks (mode, status...) are checked
 * here too so that a typo is a usage error (exit 2) before any request.
 */
#include "args.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIT(c)   (1u << (c))
#define ALL_CMDS 0xffffffffu
#define ID_CMDS                                                                                    \
	(BIT(CMD_SHOW) | BIT(CMD_LOGS) | BIT(CMD_ERRORS) | BIT(CMD_CANCEL) | BIT(CMD_PAUSE) |      \
	 BIT(CMD_RESUME) | BIT(CMD_RETRY) | BIT(CMD_DELETE))

enum opt_type { OPT_FLAG, OPT_STR, OPT_INT };

struct opt {
	const char *name; /* without the leading "--" */
	char short_name;  /* '-x', or 0 */
	enum opt_type type;
	unsigned commands; /* BIT(cmd) of the commands that accept it */
	size_t offset;     /* into struct cli_args */
	int64_t lo, hi;    /* OPT_INT range */
};

static const struct opt opts[] = {
    {"url", 0, OPT_STR, ALL_CMDS, offsetof(struct cli_args, url), 0, 0},
    {"token", 0, OPT_STR, ALL_CMDS, offsetof(struct cli_args, token), 0, 0},
    {"json", 0, OPT_FLAG, ALL_CMDS, offsetof(struct cli_args, json), 0, 0},
    {"help", 'h', OPT_FLAG, ALL_CMDS, offsetof(struct cli_args, help), 0, 0},
    {"version", 0, OPT_FLAG, ALL_CMDS, offsetof(struct cli_args, version), 0, 0},
    {"kind", 0, OPT_STR, BIT(CMD_IMPORT), offsetof(struct cli_args, kind), 0, 0},
    {"collection", 0, OPT_STR, BIT(CMD_IMPORT), offsetof(struct cli_args, collection), 0, 0},
    {"mode", 0, OPT_STR, BIT(CMD_IMPORT), offsetof(struct cli_args, mode), 0, 0},
    {"key", 0, OPT_STR, BIT(CMD_IMPORT), offsetof(struct cli_args, key), 0, 0},
    {"delimiter", 0, OPT_STR, BIT(CMD_IMPORT), offsetof(struct cli_args, delimiter), 0, 0},
    {"dry-run", 0, OPT_FLAG, BIT(CMD_IMPORT), offsetof(struct cli_args, dry_run), 0, 0},
    {"batch-size", 0, OPT_INT, BIT(CMD_IMPORT), offsetof(struct cli_args, batch_size), 1, 1000000},
    {"follow", 'f', OPT_FLAG, BIT(CMD_IMPORT) | BIT(CMD_LOGS), offsetof(struct cli_args, follow), 0,
     0},
    {"status", 0, OPT_STR, BIT(CMD_JOBS), offsetof(struct cli_args, status), 0, 0},
    {"limit", 'n', OPT_INT, BIT(CMD_JOBS), offsetof(struct cli_args, limit), 1, 10000},
    {"restart", 0, OPT_FLAG, BIT(CMD_RETRY), offsetof(struct cli_args, restart), 0, 0},
    {"hours", 0, OPT_INT, BIT(CMD_STATS), offsetof(struct cli_args, hours), 1, 8760},
    {NULL, 0, OPT_FLAG, 0, 0, 0, 0},
};

static const char *const command_names[CMD_COUNT] = {
    [CMD_NONE] = "importctl", [CMD_IMPORT] = "import", [CMD_JOBS] = "jobs",
    [CMD_SHOW] = "show",      [CMD_LOGS] = "logs",     [CMD_ERRORS] = "errors",
    [CMD_CANCEL] = "cancel",  [CMD_PAUSE] = "pause",   [CMD_RESUME] = "resume",
    [CMD_RETRY] = "retry",    [CMD_DELETE] = "delete", [CMD_STATS] = "stats",
    [CMD_HELP] = "help",
};

#define GLOBAL_HELP                                                                                \
	"Global options:\n"                                                                        \
	"  --url URL      gateway base URL (default: $IMPORTER_URL)\n"                             \
	"  --token JWT    bearer token (default: $IMPORTER_TOKEN)\n"                               \
	"  --json         print the API's JSON instead of tables\n"                                \
	"  -h, --help     this help\n"

static const char *const help_texts[CMD_COUNT] = {
    [CMD_NONE] = "usage: importctl [--url URL] [--token JWT] [--json] COMMAND [ARGS]\n"
                 "\n"
                 "Submit import jobs to an importer gateway and follow, list and steer them.\n"
                 "\n"
                 "Commands:\n"
                 "  import FILE    upload FILE and submit an import job (--follow: live progress)\n"
                 "  jobs           list your jobs, newest first\n"
                 "  show ID        one job in detail\n"
                 "  logs ID        a job's log lines (--follow: until the job ends)\n"
                 "  errors ID      a job's record errors\n"
                 "  cancel ID      cancel a job\n"
                 "  pause ID       pause a job (it keeps its checkpoint)\n"
                 "  resume ID      queue a paused job again\n"
                 "  retry ID       run a failed or cancelled job again (--restart: from zero)\n"
                 "  delete ID      delete a finished job\n"
                 "  stats          jobs per kind and status, success rate\n"
                 "  help COMMAND   help on one command (also: importctl COMMAND --help)\n"
                 "\n" GLOBAL_HELP "  --version      print the version\n"
                 "\n"
                 "Exit status: 0 ok / completed, 1 job failed, 2 usage, 3 job cancelled,\n"
                 "4 server unreachable, 5 bad or missing token, 6 not found, 7 file unreadable,\n"
                 "8 request refused, 9 server error, 130 detached by a second Ctrl-C.\n",
    [CMD_IMPORT] =
        "usage: importctl import FILE [--kind K] [--collection C] [--mode M] [--key COL]\n"
        "                        [--delimiter D] [--dry-run] [--batch-size N] [--follow]\n"
        "\n"
        "Uploads FILE and submits an import job; prints the job id (--json: the job).\n"
        "Files over 8 MiB are sent in 1 MiB chunks (POST /api/uploads) and never held\n"
        "in memory whole.\n"
        "\n"
        "  --kind K          csv | ndjson | backup (default: from the extension:\n"
        "                    .csv, .ndjson/.jsonl, .json)\n"
        "  --collection C    where records go (default: FILE's name without extension)\n"
        "  --mode M          upsert (default) | append | replace\n"
        "  --key COL         the column / field that holds each record's key\n"
        "  --delimiter D     CSV delimiter (one character; default ,)\n"
        "  --dry-run         parse and validate only; write no records\n"
        "  --batch-size N    records per batch\n"
        "  -f, --follow      draw a live progress line until the job ends, then a\n"
        "                    summary; the exit status is the job's outcome (0 completed,\n"
        "                    1 failed, 3 cancelled). Ctrl-C cancels the job; a second\n"
        "                    Ctrl-C detaches and leaves it running.\n"
        "\n" GLOBAL_HELP,
    [CMD_JOBS] = "usage: importctl jobs [--status S] [--limit N]\n"
                 "\n"
                 "Lists your jobs, newest first.\n"
                 "\n"
                 "  --status S     pending | processing | paused | completed | failed | cancelled\n"
                 "  -n, --limit N  at most N jobs (default 20)\n"
                 "\n" GLOBAL_HELP,
    [CMD_SHOW] = "usage: importctl show ID\n"
                 "\n"
                 "Shows one job: status, phase, progress, counts, errors, timestamps.\n"
                 "\n" GLOBAL_HELP,
    [CMD_LOGS] = "usage: importctl logs ID [--follow]\n"
                 "\n"
                 "Prints the job's log lines (--json: one JSON object per line).\n"
                 "\n"
                 "  -f, --follow   keep printing new lines until the job ends; the exit status\n"
                 "                 is then the job's outcome (0 completed, 1 failed, 3 cancelled)\n"
                 "\n" GLOBAL_HELP,
    [CMD_ERRORS] = "usage: importctl errors ID\n"
                   "\n"
                   "Prints the job's record errors (record index, key, collection, message).\n"
                   "\n" GLOBAL_HELP,
    [CMD_CANCEL] = "usage: importctl cancel ID\n"
                   "\n"
                   "Cancels a pending, paused or running job. A running job stops within about\n"
                   "a second; what it committed stays (replace mode swaps nothing).\n"
                   "\n" GLOBAL_HELP,
    [CMD_PAUSE] = "usage: importctl pause ID\n"
                  "\n"
                  "Pauses a pending or running job; it keeps its checkpoint (resume continues).\n"
                  "\n" GLOBAL_HELP,
    [CMD_RESUME] = "usage: importctl resume ID\n"
                   "\n"
                   "Queues a paused job again; it continues from its checkpoint.\n"
                   "\n" GLOBAL_HELP,
    [CMD_RETRY] = "usage: importctl retry ID [--restart]\n"
                  "\n"
                  "Runs a failed or cancelled job again, from its checkpoint.\n"
                  "\n"
                  "  --restart      start from zero instead\n"
                  "\n" GLOBAL_HELP,
    [CMD_DELETE] = "usage: importctl delete ID\n"
                   "\n"
                   "Deletes a completed, failed or cancelled job with its logs and errors\n"
                   "(imported records stay).\n"
                   "\n" GLOBAL_HELP,
    [CMD_STATS] = "usage: importctl stats [--hours H]\n"
                  "\n"
                  "Jobs per kind and status and the success rate over the last H hours.\n"
                  "\n"
                  "  --hours H      the window (default 24)\n"
                  "\n" GLOBAL_HELP,
    [CMD_HELP] = "usage: importctl help [COMMAND]\n"
                 "\n"
                 "Prints the help of COMMAND, or the overview.\n",
};

const char *args_command_name(enum cli_command cmd)
{
	return cmd > CMD_NONE && cmd < CMD_COUNT ? command_names[cmd] : "importctl";
}

const char *args_help(enum cli_command cmd)
{
	return help_texts[cmd > CMD_NONE && cmd < CMD_COUNT ? cmd : CMD_NONE];
}

static enum cli_command command_by_name(const char *name)
{
	for (int c = CMD_NONE + 1; c < CMD_COUNT; c++)
		if (strcmp(command_names[c], name) == 0)
			return (enum cli_command)c;
	return CMD_NONE;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	if (n < m)
		return false;
	for (size_t i = 0; i < m; i++) {
		char a = s[n - m + i];

		if (a >= 'A' && a <= 'Z')
			a = (char)(a - 'A' + 'a');
		if (a != suffix[i])
			return false;
	}
	return true;
}

const char *args_kind_from_file(const char *path)
{
	if (ends_with(path, ".csv"))
		return "csv";
	if (ends_with(path, ".ndjson") || ends_with(path, ".jsonl"))
		return "ndjson";
	if (ends_with(path, ".json"))
		return "backup";
	return NULL;
}

static bool one_of(const char *v, const char *const *allowed)
{
	for (int i = 0; allowed[i] != NULL; i++)
		if (strcmp(v, allowed[i]) == 0)
			return true;
	return false;
}

/* 8-4-4-4-12 hex digits: anything else is refused before a request. */
static bool is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		char c = s[i];
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? c != '-'
		         : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		             (c >= 'A' && c <= 'F')))
			return false;
	}
	return true;
}

static int parse_int(const char *v, int64_t lo, int64_t hi, int64_t *out)
{
	char *end;
	long long n;

	if (v[0] == '\0' || v[0] == ' ' || v[0] == '+')
		return -1;
	n = strtoll(v, &end, 10);
	if (*end != '\0' || n < lo || n > hi)
		return -1;
	*out = n;
	return 0;
}

/* Finds the option named by arg ("--name", "--name=v", "-x"); *value is the
 * inline "=v" part or NULL. */
static const struct opt *find_opt(const char *arg, const char **value)
{
	*value = NULL;
	if (arg[0] == '-' && arg[1] != '-' && arg[1] != '\0' && arg[2] == '\0') {
		for (const struct opt *o = opts; o->name != NULL; o++)
			if (o->short_name == arg[1])
				return o;
		return NULL;
	}
	if (strncmp(arg, "--", 2) != 0)
		return NULL;
	arg += 2;
	for (const struct opt *o = opts; o->name != NULL; o++) {
		size_t n = strlen(o->name);

		if (strncmp(arg, o->name, n) == 0 && (arg[n] == '\0' || arg[n] == '=')) {
			if (arg[n] == '=')
				*value = arg + n + 1;
			return o;
		}
	}
	return NULL;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* The checks that need the whole command line. */
static int validate(struct cli_args *a, char *err, size_t errlen)
{
	static const char *const kinds[] = {"csv", "ndjson", "backup", "noop", NULL};
	static const char *const modes[] = {"upsert", "append", "replace", NULL};
	static const char *const statuses[] = {"pending", "processing", "paused", "completed",
	                                       "failed",  "cancelled",  NULL};

	if (a->kind != NULL && !one_of(a->kind, kinds))
		return fail(err, errlen, "unknown --kind '%s' (csv, ndjson, backup%s)", a->kind,
		            ", noop");
	if (a->mode != NULL && !one_of(a->mode, modes))
		return fail(err, errlen, "unknown --mode '%s' (%s)", a->mode,
		            "upsert, append, replace");
	if (a->status != NULL && !one_of(a->status, statuses))
		return fail(err, errlen, "unknown --status '%s' (%s)", a->status,
		            "pending, processing, paused, completed, failed, cancelled");
	if (a->delimiter != NULL && strlen(a->delimiter) != 1)
		return fail(err, errlen, "--delimiter must be one character, not '%s'%s",
		            a->delimiter, "");
	if (a->collection != NULL && a->collection[0] == '\0')
		return fail(err, errlen, "--collection must not be empty%s%s", "", "");
	if (a->key != NULL && a->key[0] == '\0')
		return fail(err, errlen, "--key must not be empty%s%s", "", "");
	if (a->id != NULL && !is_uuid(a->id))
		return fail(err, errlen, "'%s' is not a job id (a UUID such as %s)", a->id,
		            "5b0e7c52-1f0a-4c39-9d3e-2a6f0c1d2e3f");
	if (a->cmd == CMD_IMPORT && a->kind == NULL && args_kind_from_file(a->file) == NULL)
		return fail(err, errlen,
		            "cannot tell the kind of '%s' from its name; pass --kind %s", a->file,
		            "csv|ndjson|backup");
	return 0;
}

int args_parse(int argc, char **argv, struct cli_args *out, char *err, size_t errlen)
{
	const char *operands[2] = {NULL, NULL};
	int noperands = 0;
	bool options_done = false;
	int wanted;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *value;
		const struct opt *o;

		if (!options_done && strcmp(arg, "--") == 0) {
			options_done = true;
			continue;
		}
		if (options_done || arg[0] != '-' || arg[1] == '\0') { /* "-" is an operand */
			if (out->cmd == CMD_NONE) {
				out->cmd = command_by_name(arg);
				if (out->cmd == CMD_NONE)
					return fail(err, errlen, "unknown command '%s'%s", arg,
					            " (importctl --help lists them)");
				continue;
			}
			if (noperands == 2)
				return fail(err, errlen, "%s: unexpected argument '%s'",
				            command_names[out->cmd], arg);
			operands[noperands++] = arg;
			continue;
		}
		o = find_opt(arg, &value);
		if (o == NULL)
			return fail(err, errlen, "unknown option '%s'%s", arg, "");
		if (out->cmd != CMD_NONE && (o->commands & BIT(out->cmd)) == 0)
			return fail(err, errlen, "%s does not take --%s", command_names[out->cmd],
			            o->name);
		if (o->type == OPT_FLAG) {
			if (value != NULL)
				return fail(err, errlen, "--%s takes no value%s", o->name, "");
			*(bool *)((char *)out + o->offset) = true;
			continue;
		}
		if (value == NULL) {
			if (i + 1 >= argc)
				return fail(err, errlen, "--%s needs a value%s", o->name, "");
			value = argv[++i];
		}
		if (o->type == OPT_STR) {
			*(const char **)((char *)out + o->offset) = value;
		} else if (parse_int(value, o->lo, o->hi, (int64_t *)((char *)out + o->offset)) !=
		           0) {
			char range[64];

			snprintf(range, sizeof(range), " (an integer from %lld to %lld)",
			         (long long)o->lo, (long long)o->hi);
			snprintf(err, errlen, "--%s: bad value '%.100s'%s", o->name, value, range);
			return -1;
		}
	}
	/* Options given before the command: check them against it now. */
	for (const struct opt *o = opts; out->cmd != CMD_NONE && o->name != NULL; o++) {
		const char *p = (const char *)out + o->offset;
		bool set = o->type == OPT_FLAG  ? *(const bool *)p
		           : o->type == OPT_STR ? *(const char *const *)p != NULL
		                                : *(const int64_t *)p != 0;

		if (set && (o->commands & BIT(out->cmd)) == 0)
			return fail(err, errlen, "%s does not take --%s", command_names[out->cmd],
			            o->name);
	}
	if (out->help || out->version)
		return 0;
	if (out->cmd == CMD_NONE)
		return fail(err, errlen, "no command given%s%s", " (importctl --help lists them)",
		            "");
	if (out->cmd == CMD_HELP) {
		if (noperands > 1)
			return fail(err, errlen, "help: unexpected argument '%s'%s", operands[1],
			            "");
		if (noperands == 1 && (out->help_topic = command_by_name(operands[0])) == CMD_NONE)
			return fail(err, errlen, "help: unknown command '%s'%s", operands[0], "");
		return 0;
	}
	wanted = out->cmd == CMD_IMPORT || (ID_CMDS & BIT(out->cmd)) ? 1 : 0;
	if (noperands < wanted)
		return fail(err, errlen, "%s: missing %s", command_names[out->cmd],
		            out->cmd == CMD_IMPORT ? "FILE" : "job ID");
	if (noperands > wanted)
		return fail(err, errlen, "%s: unexpected argument '%s'", command_names[out->cmd],
		            operands[wanted]);
	if (out->cmd == CMD_IMPORT)
		out->file = operands[0];
	else if (wanted == 1)
		out->id = operands[0];
	return validate(out, err, errlen);
}
