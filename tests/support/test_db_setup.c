/* test_db_setup.c -- ctest fixture: create and migrate importer_template.
 *
 * Every database test clones this template, so the migrations run once per
 * test run; a failure here fails every database test (fixture semantics).
 */
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "migrate.h"
#include "test_db.h"

int main(void)
{
	const char *url = getenv("IMPORTER_TEST_DATABASE_URL");
	PGconn *conn;
	char err[1024];
	int applied;

	log_init("test", LOG_WARN, 2);
	if (url == NULL || url[0] == '\0') {
		fprintf(stderr, "IMPORTER_TEST_DATABASE_URL is not set: run tests/run.sh\n");
		return 1;
	}
	if (test_db_recreate(url, TEST_DB_TEMPLATE, "template0", err, sizeof(err)) != 0) {
		fprintf(stderr, "cannot create %s: %s\n", TEST_DB_TEMPLATE, err);
		return 1;
	}
	conn = test_db_connect_url(url, TEST_DB_TEMPLATE, err, sizeof(err));
	if (conn == NULL) {
		fprintf(stderr, "cannot connect to %s: %s\n", TEST_DB_TEMPLATE, err);
		return 1;
	}
	applied =
	    migrate_apply(conn, migrations_embedded, migrations_embedded_count, err, sizeof(err));
	PQfinish(conn);
	if (applied < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("%s: %d migrations applied\n", TEST_DB_TEMPLATE, applied);
	return 0;
}
