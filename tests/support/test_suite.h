/* test_suite.h -- the one main() every Check test binary shares. */
#ifndef IMPORTER_TEST_SUITE_H
#define IMPORTER_TEST_SUITE_H

#include <check.h>

/* Runs every test of s (honouring CK_FORK, CK_RUN_SUITE, CK_RUN_CASE) and
 * returns EXIT_SUCCESS only if at least one ran and none failed. Takes
 * ownership of s. */
int test_run_suite(Suite *s);

#endif
