/* check_config.c -- configuration from a fake environment table. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "test_suite.h"

/* A fake environment: NULL-terminated name/value pairs. */
static const char *fake_getenv(const char *name, void *arg)
{
	const char *const *kv = arg;

	for (size_t i = 0; kv[i] != NULL; i += 2)
		if (strcmp(kv[i], name) == 0)
			return kv[i + 1];
	return NULL;
}

START_TEST(defaults_apply)
{
	const char *env[] = {"DATABASE_URL", "postgresql://u@h/db", NULL};
	struct config cfg;
	char err[512];

	ck_assert_int_eq(config_load(&cfg, CONFIG_WORKER, fake_getenv, env, err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.database_url, "postgresql://u@h/db");
	ck_assert_str_eq(cfg.listen_database_url, "postgresql://u@h/db");
	ck_assert_str_eq(cfg.http_addr, "0.0.0.0:8080");
	ck_assert_int_eq(cfg.max_upload_bytes, 64 * 1024 * 1024);
	ck_assert_int_eq(cfg.db_pool, 4);
	ck_assert_ptr_null(cfg.metrics_addr);
	ck_assert_int_eq(cfg.log_level, LOG_INFO);
	config_free(&cfg);
}
END_TEST

START_TEST(values_override_defaults)
{
	const char *env[] = {"DATABASE_URL", "a", "IMPORTER_LISTEN_DATABASE_URL", "b",
			     "IMPORTER_DB_POOL", "9", "IMPORTER_LOG_LEVEL", "debug",
			     "IMPORTER_HTTP_ADDR", "[::1]:0", "IMPORTER_JWT_SECRET", "s", NULL};
	struct config cfg;
	char err[512];

	ck_assert_int_eq(config_load(&cfg, CONFIG_GATEWAY, fake_getenv, env, err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.listen_database_url, "b");
	ck_assert_int_eq(cfg.db_pool, 9);
	ck_assert_int_eq(cfg.log_level, LOG_DEBUG);
	ck_assert_str_eq(cfg.http_addr, "[::1]:0");
	config_free(&cfg);
}
END_TEST

START_TEST(every_problem_is_reported)
{
	const char *env[] = {"IMPORTER_DB_POOL", "0", "IMPORTER_LOG_LEVEL", "loud",
			     "IMPORTER_MAX_UPLOAD_BYTES", "12abc", "IMPORTER_HTTP_ADDR", "nope",
			     NULL};
	struct config cfg;
	char err[1024];

	ck_assert_int_eq(config_load(&cfg, CONFIG_GATEWAY, fake_getenv, env, err, sizeof(err)),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "DATABASE_URL: required"));
	ck_assert_ptr_nonnull(strstr(err, "IMPORTER_JWT_SECRET: required"));
	ck_assert_ptr_nonnull(strstr(err, "IMPORTER_DB_POOL"));
	ck_assert_ptr_nonnull(strstr(err, "IMPORTER_LOG_LEVEL"));
	ck_assert_ptr_nonnull(strstr(err, "IMPORTER_MAX_UPLOAD_BYTES"));
	ck_assert_ptr_nonnull(strstr(err, "IMPORTER_HTTP_ADDR"));
	ck_assert_ptr_null(cfg.database_url);
}
END_TEST

START_TEST(jwt_secret_only_required_by_gateway)
{
	const char *env[] = {"DATABASE_URL", "x", NULL};
	struct config cfg;
	char err[512];

	ck_assert_int_eq(config_load(&cfg, CONFIG_WORKER, fake_getenv, env, err, sizeof(err)), 0);
	config_free(&cfg);
	ck_assert_int_eq(config_load(&cfg, CONFIG_GATEWAY, fake_getenv, env, err, sizeof(err)),
			 -1);
}
END_TEST

START_TEST(empty_string_is_rejected)
{
	const char *env[] = {"DATABASE_URL", "", NULL};
	struct config cfg;
	char err[512];

	ck_assert_int_eq(config_load(&cfg, CONFIG_WORKER, fake_getenv, env, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "must not be empty"));
}
END_TEST

START_TEST(urls_are_redacted)
{
	char out[256];

	config_redact_url("postgresql://app:s3cret@db:5432/x", out, sizeof(out));
	ck_assert_str_eq(out, "postgresql://app:***@db:5432/x");
	config_redact_url("host=db password=s3cret user=app", out, sizeof(out));
	ck_assert_str_eq(out, "host=db password=*** user=app");
	config_redact_url("postgresql://db/x?password=s3cret&sslmode=off", out, sizeof(out));
	ck_assert_str_eq(out, "postgresql://db/x?password=***&sslmode=off");
	config_redact_url("postgresql://app@db/x", out, sizeof(out));
	ck_assert_str_eq(out, "postgresql://app@db/x");
}
END_TEST

START_TEST(addresses_split)
{
	char host[64];
	int port;

	ck_assert_int_eq(config_split_addr("127.0.0.1:8080", host, sizeof(host), &port), 0);
	ck_assert_str_eq(host, "127.0.0.1");
	ck_assert_int_eq(port, 8080);
	ck_assert_int_eq(config_split_addr("[::1]:9", host, sizeof(host), &port), 0);
	ck_assert_str_eq(host, "::1");
	ck_assert_int_eq(config_split_addr("host:99999", host, sizeof(host), &port), -1);
	ck_assert_int_eq(config_split_addr(":80", host, sizeof(host), &port), -1);
	ck_assert_int_eq(config_split_addr("host:", host, sizeof(host), &port), -1);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, defaults_apply);
	tcase_add_test(tc, values_override_defaults);
	tcase_add_test(tc, every_problem_is_reported);
	tcase_add_test(tc, jwt_secret_only_required_by_gateway);
	tcase_add_test(tc, empty_string_is_rejected);
	tcase_add_test(tc, urls_are_redacted);
	tcase_add_test(tc, addresses_split);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_run_suite(config_suite());
}
