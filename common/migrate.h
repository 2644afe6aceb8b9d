/* migrate.h -- the embedded migrations and the runner that applies them.
 *
 * sql/NNNN_name.sql files are compiled into every binary (see
 * cmake/embed_sql.cmake), so a container needs no sql/ folder. The runner
 * applies each pending migration in its own transaction, serialised across
 * processes by a transaction-scoped advisory lock, and records it in
 * importer.schema_migrations: ten containers starting at once apply each
 * migration exactly once.
 *
 * Unless stated otherwise, pointer arguments are borrowed for the duration of
 * the call and not retained.
 */
#ifndef IMPORTER_MIGRATE_H
#define IMPORTER_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

struct migration {
	const char *version; /* file name without .sql, e.g. "0001_schema" */
	const char *sql;     /* the file's text; no BEGIN/COMMIT of its own */
};

/* The migrations compiled from sql/, in version order. */
extern const struct migration migrations_embedded[];
extern const size_t migrations_embedded_count;

/* The key of the advisory lock the runner holds while it applies one
 * migration (the one-bigint form, a lock space separate from the two-int form
 * that the SQL API uses for per-user locks). */
#define MIGRATE_LOCK_KEY 0x696d706f72746572LL /* "importer" */

/* Applies, in order, those of the n migrations in list that conn's database
 * has not recorded. conn must be idle and not in a transaction. Returns the
 * number applied (0 when up to date), or -1 with err naming the failing
 * version and PostgreSQL's message; the failing migration leaves nothing
 * behind and later ones are not tried. */
int migrate_apply(PGconn *conn, const struct migration *list, size_t n, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Connects to url (retrying for up to timeout_ms while the server starts) and
 * applies the embedded migrations. Returns the number applied, or -1 with err
 * filled. */
int migrate_url(const char *url, int timeout_ms, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
