/*
 * Unit tests of fleetauthctl's parts that need no service: option parsing,
 * problem rendering, tables, URL building and the private-file checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl.h"

static const struct ctl_option test_options[] = {
        {"role", "ROLE", "role"},
        {"force", NULL, "flag"},
        {"scope", "SCOPE", "scope"},
        {NULL, NULL, NULL},
};

static const struct ctl_command test_command = {
        "create", "USER_ID", 1, 1, "Create.", NULL, test_options, NULL};

/* Parses a command line given as a NULL-terminated list of words. */
static fa_result parse_words(struct ctl_args *args,
                             struct ctl_settings *settings, bool *help,
                             char *err, size_t err_size, ...)
{
	char *words[16];
	int count = 0;
	va_list ap;

	va_start(ap, err_size);
	for (char *w = va_arg(ap, char *); w != NULL && count < 16;
	     w = va_arg(ap, char *))
		words[count++] = w;
	va_end(ap);
	return ctl_args_parse(&test_command, count, words, args, settings, help,
	                      err, err_size);
}

static void args_parse_options_and_positional(void **state)
{
	struct ctl_settings settings = {0};
	struct ctl_args args;
	char err[256] = "";
	bool help = true;

	(void)state;
	assert_int_equal(parse_words(&args, &settings, &help, err, sizeof(err),
	                             "drv-ann", "--role", "driver", "--force",
	                             "--scope=a", "--scope", "b", "--json",
	                             "--timeout=30", (char *)NULL),
	                 FA_OK);
	assert_false(help);
	assert_int_equal(args.positional_count, 1);
	assert_string_equal(args.positional[0], "drv-ann");
	assert_string_equal(args.values[0], "driver");
	assert_string_equal(args.values[1], "");
	assert_int_equal(args.list_counts[2], 2);
	assert_string_equal(args.lists[2][0], "a");
	assert_string_equal(args.lists[2][1], "b");
	assert_true(settings.json);
	assert_int_equal(settings.timeout, 30);
	ctl_settings_free(&settings);
}

static void args_parse_rejects_bad_input(void **state)
{
	struct ctl_settings settings = {0};
	struct ctl_args args;
	char err[256] = "";
	bool help = false;

	(void)state;
	assert_int_equal(parse_words(&args, &settings, &help, err, sizeof(err),
	                             "x", "--nope", (char *)NULL),
	                 FA_ERR_INVALID);
	assert_non_null(strstr(err, "unknown option --nope"));
	assert_int_equal(parse_words(&args, &settings, &help, err, sizeof(err),
	                             "x", "--role", (char *)NULL),
	                 FA_ERR_INVALID);
	assert_non_null(strstr(err, "needs a value"));
	assert_int_equal(parse_words(&args, &settings, &help, err, sizeof(err),
	                             (char *)NULL),
	                 FA_ERR_INVALID);
	assert_non_null(strstr(err, "missing argument"));
	assert_int_equal(parse_words(&args, &settings, &help, err, sizeof(err),
	                             "a", "b", (char *)NULL),
	                 FA_ERR_INVALID);
	assert_non_null(strstr(err, "unexpected argument \"b\""));
	assert_int_equal(parse_words(&args, &settings, &help, err, sizeof(err),
	                             "a", "--force=1", (char *)NULL),
	                 FA_ERR_INVALID);
	assert_non_null(strstr(err, "takes no value"));
	assert_int_equal(parse_words(&args, &settings, &help, err, sizeof(err),
	                             "a", "--timeout", "0", (char *)NULL),
	                 FA_ERR_INVALID);
	assert_non_null(strstr(err, "--timeout"));
	assert_int_equal(parse_words(&args, &settings, &help, err, sizeof(err),
	                             "a", "-x", (char *)NULL),
	                 FA_ERR_INVALID);
	ctl_settings_free(&settings);
}

static void args_parse_help_skips_checks(void **state)
{
	struct ctl_settings settings = {0};
	struct ctl_args args;
	char err[256] = "";
	bool help = false;

	(void)state;
	assert_int_equal(parse_words(&args, &settings, &help, err, sizeof(err),
	                             "--help", (char *)NULL),
	                 FA_OK);
	assert_true(help);
}

static void args_double_dash_ends_options(void **state)
{
	struct ctl_settings settings = {0};
	struct ctl_args args;
	char err[256] = "";
	bool help = false;

	(void)state;
	assert_int_equal(parse_words(&args, &settings, &help, err, sizeof(err),
	                             "--", "--odd", (char *)NULL),
	                 FA_OK);
	assert_string_equal(args.positional[0], "--odd");
}

static void problem_uses_title_and_detail(void **state)
{
	cJSON *problem = cJSON_Parse(
	        "{\"type\":\"https://fleetauth.dev/problems/conflict\","
	        "\"title\":\"Conflict\",\"status\":409,"
	        "\"detail\":\"user \\\"drv-ann\\\" already exists\"}");
	char line[300];

	(void)state;
	assert_non_null(problem);
	ctl_render_problem(409, problem, "", line, sizeof(line));
	assert_string_equal(
	        line, "HTTP 409 conflict: user \"drv-ann\" already exists");
	cJSON_Delete(problem);
}

static void problem_without_body_and_retry(void **state)
{
	char line[300];

	(void)state;
	ctl_render_problem(503, NULL, "", line, sizeof(line));
	assert_string_equal(line, "HTTP 503 service unavailable");
	ctl_render_problem(429, NULL, "7", line, sizeof(line));
	assert_string_equal(line,
	                    "HTTP 429 too many requests (retry after 7 s)");
}

static void problem_strips_control_characters(void **state)
{
	cJSON *problem = cJSON_Parse("{\"title\":\"Bad\\nRequest\","
	                             "\"detail\":\"x\\u001b[31my\"}");
	char line[300];

	(void)state;
	ctl_render_problem(400, problem, NULL, line, sizeof(line));
	assert_string_equal(line, "HTTP 400 bad?request: x?[31my");
	cJSON_Delete(problem);
}

/* Runs ctl_print_table with stdout sent to a temporary file and returns
 * what it printed (malloc'd). */
static char *capture_table(const cJSON *items, const struct ctl_column *columns)
{
	FILE *capture = tmpfile();
	int saved = dup(STDOUT_FILENO);
	char *text = calloc(1, 4096);

	assert_non_null(capture);
	assert_true(saved >= 0);
	assert_non_null(text);
	assert_int_equal(fflush(stdout), 0);
	assert_int_equal(dup2(fileno(capture), STDOUT_FILENO), STDOUT_FILENO);
	ctl_print_table(items, columns);
	assert_int_equal(fflush(stdout), 0);
	assert_int_equal(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
	close(saved);
	rewind(capture);
	assert_true(fread(text, 1, 4095, capture) > 0);
	assert_int_equal(fclose(capture), 0);
	return text;
}

static void table_aligns_columns(void **state)
{
	static const struct ctl_column columns[] = {
	        {"ID", "id"}, {"ROLE", "role"}, {"N", "n"}, {NULL, NULL}};
	cJSON *items = cJSON_Parse(
	        "[{\"id\":\"drv-ann\",\"role\":\"driver\",\"n\":3},"
	        "{\"id\":\"x\",\"role\":null,\"n\":[\"a\",\"b\"]}]");
	char *text;

	(void)state;
	text = capture_table(items, columns);
	assert_string_equal(text, "ID       ROLE    N\n"
	                          "drv-ann  driver  3\n"
	                          "x        -       a,b\n");
	free(text);
	cJSON_Delete(items);
}

static void url_escape_and_query(void **state)
{
	const char *pairs[] = {"carrier", "acme",  "after", NULL,
	                       "q",       "a b&c", NULL};
	char out[128];

	(void)state;
	assert_true(ctl_url_escape("a/b c", out, sizeof(out)));
	assert_string_equal(out, "a%2Fb%20c");
	assert_true(ctl_build_query(out, sizeof(out), "/v1/users", pairs));
	assert_string_equal(out, "/v1/users?carrier=acme&q=a%20b%26c");
	assert_false(ctl_url_escape("abcdef", out, 4));
}

static void loopback_check_uses_parsed_host(void **state)
{
	(void)state;
	assert_true(ctl_url_is_loopback("http://127.0.0.1:8080"));
	assert_true(ctl_url_is_loopback("http://127.1.2.3/"));
	assert_true(ctl_url_is_loopback("http://[::1]:8080"));
	assert_true(ctl_url_is_loopback("http://localhost"));
	assert_false(ctl_url_is_loopback("http://127.example.net:8080"));
	assert_false(ctl_url_is_loopback("http://127.0.0.1@example.net/"));
	assert_false(ctl_url_is_loopback("http://localhost.example.net"));
	assert_false(ctl_url_is_loopback("http://10.0.0.1:8080"));
	assert_false(ctl_url_is_loopback("not a url"));
}

/* Creates a scratch directory. */
static void scratch_dir(char *dir, size_t size)
{
	snprintf(dir, size, "/tmp/fleetauthctl-unit-XXXXXX");
	assert_non_null(mkdtemp(dir));
}

static void config_rejects_group_readable_file(void **state)
{
	struct ctl_settings settings;
	char dir[64];
	char path[128];
	char err[512] = "";
	FILE *fp;

	(void)state;
	scratch_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/ctl.conf", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_true(fputs("url = http://127.0.0.1:9\n", fp) >= 0);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(ctl_settings_init(&settings), FA_OK);
	free(settings.url);
	settings.url = NULL;
	settings.config_path = strdup(path);
	assert_int_equal(ctl_settings_load_files(&settings, err, sizeof(err)),
	                 FA_ERR_DENIED);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "chmod 600"));
	ctl_settings_free(&settings);

	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(ctl_settings_init(&settings), FA_OK);
	free(settings.url);
	settings.url = NULL;
	settings.config_path = strdup(path);
	assert_int_equal(ctl_settings_load_files(&settings, err, sizeof(err)),
	                 FA_OK);
	assert_string_equal(settings.url, "http://127.0.0.1:9");
	ctl_settings_free(&settings);
	unlink(path);
	rmdir(dir);
}

static void config_reports_unknown_key_with_line(void **state)
{
	struct ctl_settings settings;
	char dir[64];
	char path[128];
	char err[512] = "";
	FILE *fp;

	(void)state;
	scratch_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/ctl.conf", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_true(fputs("# comment\n\nurl = http://127.0.0.1:9\n"
	                  "colour = blue\n",
	                  fp) >= 0);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(ctl_settings_init(&settings), FA_OK);
	settings.config_path = strdup(path);
	assert_int_equal(ctl_settings_load_files(&settings, err, sizeof(err)),
	                 FA_ERR_INVALID);
	assert_non_null(strstr(err, "line 4"));
	assert_non_null(strstr(err, "colour"));
	ctl_settings_free(&settings);
	unlink(path);
	rmdir(dir);
}

static void private_file_written_with_mode_0600(void **state)
{
	const char *pairs[] = {"access_token", "abc", NULL};
	char dir[64];
	char path[128];
	char err[256] = "";
	char line[64] = "";
	struct stat st;
	FILE *fp;

	(void)state;
	scratch_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/sub/credentials", dir);
	assert_int_equal(ctl_write_private_file(path, pairs, err, sizeof(err)),
	                 FA_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	fp = fopen(path, "r");
	assert_non_null(fp);
	assert_non_null(fgets(line, sizeof(line), fp));
	assert_int_equal(fclose(fp), 0);
	assert_string_equal(line, "access_token = abc\n");
	unlink(path);
	snprintf(path, sizeof(path), "%s/sub", dir);
	rmdir(path);
	rmdir(dir);
}

static void sanitize_replaces_controls_keeps_utf8(void **state)
{
	char out[32];

	(void)state;
	ctl_sanitize("a\tb\x7f\xc3\xa9", out, sizeof(out));
	assert_string_equal(out, "a?b?\xc3\xa9");
	ctl_sanitize("abcdef", out, 4);
	assert_string_equal(out, "abc");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(args_parse_options_and_positional),
	        cmocka_unit_test(args_parse_rejects_bad_input),
	        cmocka_unit_test(args_parse_help_skips_checks),
	        cmocka_unit_test(args_double_dash_ends_options),
	        cmocka_unit_test(problem_uses_title_and_detail),
	        cmocka_unit_test(problem_without_body_and_retry),
	        cmocka_unit_test(problem_strips_control_characters),
	        cmocka_unit_test(table_aligns_columns),
	        cmocka_unit_test(url_escape_and_query),
	        cmocka_unit_test(loopback_check_uses_parsed_host),
	        cmocka_unit_test(config_rejects_group_readable_file),
	        cmocka_unit_test(config_reports_unknown_key_with_line),
	        cmocka_unit_test(private_file_written_with_mode_0600),
	        cmocka_unit_test(sanitize_replaces_controls_keeps_utf8),
	};

	/* Keep the environment from feeding settings into the tests. */
	unsetenv("FLEETAUTH_URL");
	unsetenv("FLEETAUTH_TOKEN");
	unsetenv("FLEETAUTH_API_KEY");
	unsetenv("FLEETAUTH_ADMIN_KEY");
	setenv("XDG_STATE_HOME", "/nonexistent-fleetauthctl-test", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
