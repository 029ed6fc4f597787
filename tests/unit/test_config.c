#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fa_config.h"

struct settings {
	long long listen_port;
	char *database_url;
	bool verbose;
	char *tls_cert;
	char *issuer;
};

static const struct fa_option table[] = {
        {"listen_port", FA_OPT_INT, "8443", 1, 65535,
         offsetof(struct settings, listen_port), "TCP port to listen on"},
        {"database_url", FA_OPT_STRING, NULL, 0, 0,
         offsetof(struct settings, database_url), "PostgreSQL URL"},
        {"verbose", FA_OPT_BOOL, "false", 0, 0,
         offsetof(struct settings, verbose), "log debug messages"},
        {"tls_cert", FA_OPT_PATH, "/nonexistent/default.pem", 0, 0,
         offsetof(struct settings, tls_cert), "certificate file (PEM)"},
        {"issuer", FA_OPT_STRING, "https://auth.fleet.test", 0, 0,
         offsetof(struct settings, issuer), "iss claim of issued tokens"},
};
#define TABLE_SIZE (sizeof(table) / sizeof(table[0]))

static char dir[64];
static char err[512];

static int make_dir(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/fa-test-config-XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int remove_dir(void **state)
{
	(void)state;
	char path[128];
	static const char *const names[] = {"good.conf", "bad.conf",
	                                    "unknown.conf", "noeq.conf",
	                                    "cert.pem"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	return rmdir(dir);
}

static const char *write_file(const char *name, const char *content)
{
	static char path[128];
	FILE *file = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	file = fopen(path, "w");
	assert_non_null(file);
	assert_true(fputs(content, file) >= 0);
	assert_int_equal(fclose(file), 0);
	return path;
}

static void config_defaults_applied(void **state)
{
	(void)state;
	struct settings s = {0};

	assert_int_equal(fa_config_defaults(table, TABLE_SIZE, &s), FA_OK);
	assert_int_equal(s.listen_port, 8443);
	assert_false(s.verbose);
	/* A default path is not checked, so it may name a file that is
	 * created later. */
	assert_string_equal(s.tls_cert, "/nonexistent/default.pem");
	assert_string_equal(s.issuer, "https://auth.fleet.test");
	assert_null(s.database_url);
	fa_config_free(table, TABLE_SIZE, &s);
	assert_null(s.tls_cert);
	assert_null(s.issuer);
}

static void config_set_values(void **state)
{
	(void)state;
	struct settings s = {0};

	assert_int_equal(fa_config_set(table, TABLE_SIZE, &s, "listen_port",
	                               "1883", err, sizeof(err)),
	                 FA_OK);
	assert_int_equal(s.listen_port, 1883);
	static const char *const yes[] = {"true", "yes", "on", "1", "TRUE"};
	static const char *const no[] = {"false", "no", "off", "0", "Off"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		assert_int_equal(fa_config_set(table, TABLE_SIZE, &s, "verbose",
		                               yes[i], err, sizeof(err)),
		                 FA_OK);
		assert_true(s.verbose);
		assert_int_equal(fa_config_set(table, TABLE_SIZE, &s, "verbose",
		                               no[i], err, sizeof(err)),
		                 FA_OK);
		assert_false(s.verbose);
	}
	assert_int_equal(fa_config_set(table, TABLE_SIZE, &s, "database_url",
	                               "postgresql:///a", err, sizeof(err)),
	                 FA_OK);
	/* Setting a string twice replaces the first copy. */
	assert_int_equal(fa_config_set(table, TABLE_SIZE, &s, "database_url",
	                               "postgresql:///b", err, sizeof(err)),
	                 FA_OK);
	assert_string_equal(s.database_url, "postgresql:///b");
	fa_config_free(table, TABLE_SIZE, &s);
}

static void config_invalid_int(void **state)
{
	(void)state;
	struct settings s = {0};
	static const char *const bad[] = {
	        "abc",   "",    "0",
	        "65536", "-1",  "12x",
	        " 80",   "1e3", "99999999999999999999"};

	s.listen_port = 7;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char expected[256];
		assert_int_equal(fa_config_set(table, TABLE_SIZE, &s,
		                               "listen_port", bad[i], err,
		                               sizeof(err)),
		                 FA_ERR_INVALID);
		snprintf(expected, sizeof(expected),
		         "invalid value \"%s\" for option listen_port: "
		         "expected an integer from 1 to 65535",
		         bad[i]);
		assert_string_equal(err, expected);
		assert_int_equal(s.listen_port, 7);
	}
	assert_int_equal(fa_config_set(table, TABLE_SIZE, &s, "listen_port",
	                               "65535", err, sizeof(err)),
	                 FA_OK);
	assert_int_equal(s.listen_port, 65535);
}

static void config_invalid_bool(void **state)
{
	(void)state;
	struct settings s = {0};

	assert_int_equal(fa_config_set(table, TABLE_SIZE, &s, "verbose",
	                               "maybe", err, sizeof(err)),
	                 FA_ERR_INVALID);
	assert_string_equal(err, "invalid value \"maybe\" for option verbose: "
	                         "expected true or false");
}

static void config_path_must_be_readable(void **state)
{
	(void)state;
	struct settings s = {0};
	const char *cert = write_file("cert.pem", "-----BEGIN-----\n");
	char copy[128];

	snprintf(copy, sizeof(copy), "%s", cert);
	assert_int_equal(fa_config_set(table, TABLE_SIZE, &s, "tls_cert",
	                               "/nonexistent/cert.pem", err,
	                               sizeof(err)),
	                 FA_ERR_INVALID);
	assert_string_equal(err, "invalid value \"/nonexistent/cert.pem\" for "
	                         "option tls_cert: expected a readable file "
	                         "(No such file or directory)");
	assert_null(s.tls_cert);
	assert_int_equal(fa_config_set(table, TABLE_SIZE, &s, "tls_cert", dir,
	                               err, sizeof(err)),
	                 FA_ERR_INVALID);
	assert_non_null(strstr(err, "(not a regular file)"));
	assert_null(s.tls_cert);
	assert_int_equal(fa_config_set(table, TABLE_SIZE, &s, "tls_cert", copy,
	                               err, sizeof(err)),
	                 FA_OK);
	assert_string_equal(s.tls_cert, copy);
	fa_config_free(table, TABLE_SIZE, &s);
}

static void config_unknown_option(void **state)
{
	(void)state;
	struct settings s = {0};

	assert_int_equal(fa_config_set(table, TABLE_SIZE, &s, "foo", "1", err,
	                               sizeof(err)),
	                 FA_ERR_NOT_FOUND);
	assert_string_equal(err, "unknown option \"foo\"");
	/* Names are case-sensitive. */
	assert_int_equal(fa_config_set(table, TABLE_SIZE, &s, "Listen_Port",
	                               "1", err, sizeof(err)),
	                 FA_ERR_NOT_FOUND);
}

static void config_missing_required(void **state)
{
	(void)state;
	struct settings s = {0};

	assert_int_equal(fa_config_defaults(table, TABLE_SIZE, &s), FA_OK);
	assert_int_equal(fa_config_check_required(table, TABLE_SIZE, &s, err,
	                                          sizeof(err)),
	                 FA_ERR_INVALID);
	assert_string_equal(err, "missing required option database_url");
	assert_int_equal(fa_config_set(table, TABLE_SIZE, &s, "database_url",
	                               "postgresql:///x", err, sizeof(err)),
	                 FA_OK);
	assert_int_equal(fa_config_check_required(table, TABLE_SIZE, &s, err,
	                                          sizeof(err)),
	                 FA_OK);
	fa_config_free(table, TABLE_SIZE, &s);
}

static void config_file_loads(void **state)
{
	(void)state;
	struct settings s = {0};
	const char *path =
	        write_file("good.conf", "# fleetauthd settings\n"
	                                "\n"
	                                "listen_port = 9000\n"
	                                "   # indented comment\n"
	                                "database_url=postgresql:///fleet?x=1\n"
	                                "verbose = yes   \n");

	assert_int_equal(fa_config_load_file(table, TABLE_SIZE, &s, path, err,
	                                     sizeof(err)),
	                 FA_OK);
	assert_int_equal(s.listen_port, 9000);
	assert_string_equal(s.database_url, "postgresql:///fleet?x=1");
	assert_true(s.verbose);
	fa_config_free(table, TABLE_SIZE, &s);
}

static void config_file_errors_have_line(void **state)
{
	(void)state;
	struct settings s = {0};
	char expected[256];
	char path[128];

	snprintf(path, sizeof(path), "%s",
	         write_file("bad.conf", "# comment\nlisten_port = 80\n"
	                                "listen_port = abc\n"));
	assert_int_equal(fa_config_load_file(table, TABLE_SIZE, &s, path, err,
	                                     sizeof(err)),
	                 FA_ERR_INVALID);
	snprintf(expected, sizeof(expected),
	         "%s:3: invalid value \"abc\" for option listen_port: "
	         "expected an integer from 1 to 65535",
	         path);
	assert_string_equal(err, expected);

	snprintf(path, sizeof(path), "%s",
	         write_file("unknown.conf", "foo = 1\n"));
	assert_int_equal(fa_config_load_file(table, TABLE_SIZE, &s, path, err,
	                                     sizeof(err)),
	                 FA_ERR_NOT_FOUND);
	snprintf(expected, sizeof(expected), "%s:1: unknown option \"foo\"",
	         path);
	assert_string_equal(err, expected);

	snprintf(path, sizeof(path), "%s",
	         write_file("noeq.conf", "\nlisten_port 80\n"));
	assert_int_equal(fa_config_load_file(table, TABLE_SIZE, &s, path, err,
	                                     sizeof(err)),
	                 FA_ERR_INVALID);
	snprintf(expected, sizeof(expected),
	         "%s:2: expected \"name = value\", got \"listen_port 80\"",
	         path);
	assert_string_equal(err, expected);

	assert_int_equal(fa_config_load_file(table, TABLE_SIZE, &s,
	                                     "/nonexistent/fleetauthd.conf",
	                                     err, sizeof(err)),
	                 FA_ERR_IO);
	assert_string_equal(err, "/nonexistent/fleetauthd.conf: failed to "
	                         "open: No such file or directory");
	fa_config_free(table, TABLE_SIZE, &s);
}

static void config_environment(void **state)
{
	(void)state;
	struct settings s = {0};

	assert_int_equal(setenv("FATEST_LISTEN_PORT", "7000", 1), 0);
	assert_int_equal(setenv("FATEST_DATABASE_URL", "postgresql:///e", 1),
	                 0);
	assert_int_equal(fa_config_load_env(table, TABLE_SIZE, &s, "FATEST_",
	                                    err, sizeof(err)),
	                 FA_OK);
	assert_int_equal(s.listen_port, 7000);
	assert_string_equal(s.database_url, "postgresql:///e");

	/* The prefix gets its '_' when it lacks one. */
	assert_int_equal(setenv("FATEST_VERBOSE", "on", 1), 0);
	assert_int_equal(fa_config_load_env(table, TABLE_SIZE, &s, "FATEST",
	                                    err, sizeof(err)),
	                 FA_OK);
	assert_true(s.verbose);

	assert_int_equal(setenv("FATEST_LISTEN_PORT", "http", 1), 0);
	assert_int_equal(fa_config_load_env(table, TABLE_SIZE, &s, "FATEST_",
	                                    err, sizeof(err)),
	                 FA_ERR_INVALID);
	assert_string_equal(err, "environment variable FATEST_LISTEN_PORT: "
	                         "invalid value \"http\" for option "
	                         "listen_port: expected an integer from 1 to "
	                         "65535");
	unsetenv("FATEST_LISTEN_PORT");
	unsetenv("FATEST_DATABASE_URL");
	unsetenv("FATEST_VERBOSE");
	fa_config_free(table, TABLE_SIZE, &s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(config_defaults_applied),
	        cmocka_unit_test(config_set_values),
	        cmocka_unit_test(config_invalid_int),
	        cmocka_unit_test(config_invalid_bool),
	        cmocka_unit_test(config_path_must_be_readable),
	        cmocka_unit_test(config_unknown_option),
	        cmocka_unit_test(config_missing_required),
	        cmocka_unit_test(config_file_loads),
	        cmocka_unit_test(config_file_errors_have_line),
	        cmocka_unit_test(config_environment),
	};
	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
