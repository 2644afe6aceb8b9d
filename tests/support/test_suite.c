/* test_suite.c -- run a Check suite and turn the outcome into an exit status. */
#include "test_suite.h"

#include <stdio.h>
#include <stdlib.h>

int test_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	/* CK_RUN_SUITE/CK_RUN_CASE naming nothing must not pass as success. */
	if (srunner_ntests_run(sr) == 0) {
		fprintf(stderr, "no test ran (check CK_RUN_SUITE / CK_RUN_CASE)\n");
		failed = 1;
	}
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
