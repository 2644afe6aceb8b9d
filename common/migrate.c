/* migrate.c -- apply embedded migrations exactly once (see migrate.h).
 *
 * For each migration: BEGIN, take the advisory lock, make sure the bookkeeping
 * table exists, skip if recorded, else run the file and record it, COMMIT.
 * Taking the lock per migration (not once for all) keeps every migration its
 * own transaction while concurrent runners still see each other's commits.
 */
#include "migrate.h"

#include <stdbool.h>
#include <stdio.h>

#include "log.h"
#include "pgconn.h"

/* NOTICEs such as "relation already exists, skipping" are noise in service logs. */
static const char sql_prepare[] =
	"SELECT set_config('client_min_messages', 'warning', true), "
	"pg_advisory_xact_lock($1::bigint)";
static const char sql_bookkeeping[] =
	"CREATE SCHEMA IF NOT EXISTS importer;\n"
	"CREATE TABLE IF NOT EXISTS importer.schema_migrations (\n"
	"  version text PRIMARY KEY,\n"
	"  applied_at timestamptz NOT NULL DEFAULT now()\n"
	");\n";
static const char sql_is_applied[] =
	"SELECT 1 FROM importer.schema_migrations WHERE version = $1";
static const char sql_record[] =
	"INSERT INTO importer.schema_migrations (version) VALUES ($1)";

/* Runs a command expecting success; fills err otherwise. */
static bool run(PGconn *conn, const char *sql, int nparams, const char *const *params,
		ExecStatusType want, bool *found, char *err, size_t errlen)
{
	PGresult *res = nparams > 0 ? PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)
				    : PQexec(conn, sql);
	bool ok = PQresultStatus(res) == want;

	if (!ok)
		pgconn_error(conn, res, err, errlen);
	else if (found != NULL)
		*found = PQntuples(res) > 0;
	PQclear(res);
	return ok;
}

/* Runs a migration file: several statements, the last of which may return rows. */
static bool run_script(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok)
		pgconn_error(conn, res, err, errlen);
	PQclear(res);
	return ok;
}

static int apply_one(PGconn *conn, const struct migration *m, char *err, size_t errlen)
{
	char key[32], msg[512];
	const char *lock_params[] = {key};
	const char *version_params[] = {m->version};
	bool applied = false;

	snprintf(key, sizeof(key), "%lld", (long long)MIGRATE_LOCK_KEY);
	if (!run(conn, "BEGIN", 0, NULL, PGRES_COMMAND_OK, NULL, msg, sizeof(msg)) ||
	    !run(conn, sql_prepare, 1, lock_params, PGRES_TUPLES_OK, NULL, msg, sizeof(msg)) ||
	    !run(conn, sql_bookkeeping, 0, NULL, PGRES_COMMAND_OK, NULL, msg, sizeof(msg)) ||
	    !run(conn, sql_is_applied, 1, version_params, PGRES_TUPLES_OK, &applied, msg,
		 sizeof(msg)))
		goto fail;
	if (!applied && !run_script(conn, m->sql, msg, sizeof(msg)))
		goto fail;
	if (!applied && !run(conn, sql_record, 1, version_params, PGRES_COMMAND_OK, NULL, msg,
			     sizeof(msg)))
		goto fail;
	if (!run(conn, "COMMIT", 0, NULL, PGRES_COMMAND_OK, NULL, msg, sizeof(msg)))
		goto fail;
	return applied ? 0 : 1;
fail:
	snprintf(err, errlen, "migration %s: %s", m->version, msg);
	PQclear(PQexec(conn, "ROLLBACK"));
	return -1;
}

int migrate_apply(PGconn *conn, const struct migration *list, size_t n, char *err, size_t errlen)
{
	int applied = 0;

	for (size_t i = 0; i < n; i++) {
		int rc = apply_one(conn, &list[i], err, errlen);

		if (rc < 0)
			return -1;
		if (rc > 0)
			log_info("migration.applied", LF_STR("version", list[i].version));
		applied += rc;
	}
	return applied;
}

int migrate_url(const char *url, int timeout_ms, char *err, size_t errlen)
{
	PGconn *conn = pgconn_connect(url, "importer-migrate", timeout_ms, NULL, err, errlen);
	int rc;

	if (conn == NULL)
		return -1;
	rc = migrate_apply(conn, migrations_embedded, migrations_embedded_count, err, errlen);
	PQfinish(conn);
	return rc;
}
