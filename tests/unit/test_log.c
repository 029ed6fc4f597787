#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "fa_log.h"

/* Output of the code under test: stderr redirected to a temporary file. */
static FILE *capture;
static int saved_stderr = -1;

static void capture_start(void)
{
	capture = tmpfile();
	assert_non_null(capture);
	assert_int_equal(fflush(stderr), 0);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_int_equal(dup2(fileno(capture), STDERR_FILENO), STDERR_FILENO);
}

/* Restores stderr and returns what was written; the caller frees it. */
static char *capture_stop(void)
{
	long len = 0;
	char *text = NULL;

	assert_int_equal(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
	close(saved_stderr);
	len = ftell(capture);
	assert_true(len >= 0);
	text = calloc(1, (size_t)len + 1);
	assert_non_null(text);
	rewind(capture);
	assert_int_equal(fread(text, 1, (size_t)len, capture), (size_t)len);
	assert_int_equal(fclose(capture), 0);
	return text;
}

/* Parses one line, which must be a complete JSON object. */
static cJSON *parse_line(const char *line)
{
	const char *end = NULL;
	cJSON *json = cJSON_ParseWithOpts(line, &end, 0);

	assert_non_null(json);
	assert_true(cJSON_IsObject(json));
	assert_int_equal(*end, '\n');
	return json;
}

static const char *member(const cJSON *json, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(json, name);

	assert_true(cJSON_IsString(item));
	return item->valuestring;
}

static void log_line_format(void **state)
{
	(void)state;
	char *text = NULL;
	cJSON *json = NULL;

	fa_log_set_level(FA_LOG_INFO);
	capture_start();
	fa_log(FA_LOG_INFO,
	       (const char *[]){"request_id", "r-1", "user", "drv-ann", NULL},
	       "login succeeded after %d attempts", 2);
	text = capture_stop();

	/* Exactly one line, ending in a newline. */
	assert_ptr_equal(strchr(text, '\n'), text + strlen(text) - 1);
	json = parse_line(text);
	const char *time = member(json, "time");
	/* 2026-12-04T16:00:00.123Z */
	assert_int_equal(strlen(time), 24);
	assert_int_equal(time[10], 'T');
	assert_int_equal(time[19], '.');
	assert_int_equal(time[23], 'Z');
	assert_string_equal(member(json, "level"), "info");
	assert_string_equal(member(json, "message"),
	                    "login succeeded after 2 attempts");
	assert_string_equal(member(json, "request_id"), "r-1");
	assert_string_equal(member(json, "user"), "drv-ann");
	cJSON_Delete(json);
	free(text);
}

static void log_escapes_strings(void **state)
{
	(void)state;
	char *text = NULL;
	cJSON *json = NULL;
	const char *hostile = "a\"b\\c\nd\te\x01f\x7f\xc3\xa9";

	fa_log_set_level(FA_LOG_DEBUG);
	capture_start();
	fa_log(FA_LOG_WARNING, (const char *[]){"we\"ird", hostile, NULL}, "%s",
	       hostile);
	text = capture_stop();

	/* The raw control characters must not reach the output. */
	assert_null(strchr(text, '\x01'));
	assert_null(strchr(text, '\t'));
	assert_ptr_equal(strchr(text, '\n'), text + strlen(text) - 1);
	json = parse_line(text);
	assert_string_equal(member(json, "level"), "warning");
	assert_string_equal(member(json, "message"), hostile);
	assert_string_equal(member(json, "we\"ird"), hostile);
	cJSON_Delete(json);
	free(text);
}

static void log_replaces_invalid_utf8(void **state)
{
	(void)state;
	char *text = NULL;
	cJSON *json = NULL;

	capture_start();
	/* A lone continuation byte, a truncated sequence, an overlong '/',
	 * and a UTF-16 surrogate. */
	fa_log(FA_LOG_ERROR, NULL, "x\x80y\xe2\x82z\xc0\xafw\xed\xa0\x80");
	text = capture_stop();
	json = parse_line(text);
	assert_string_equal(member(json, "message"),
	                    "x\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbdz"
	                    "\xef\xbf\xbd\xef\xbf\xbdw\xef\xbf\xbd\xef\xbf\xbd"
	                    "\xef\xbf\xbd");
	cJSON_Delete(json);
	free(text);
}

static void log_level_filter(void **state)
{
	(void)state;
	char *text = NULL;

	fa_log_set_level(FA_LOG_WARNING);
	capture_start();
	fa_log(FA_LOG_DEBUG, NULL, "hidden debug");
	fa_log(FA_LOG_INFO, NULL, "hidden info");
	fa_log(FA_LOG_ERROR, NULL, "shown error");
	text = capture_stop();
	assert_null(strstr(text, "hidden"));
	assert_non_null(strstr(text, "shown error"));
	fa_log_set_level(FA_LOG_INFO);
	free(text);
}

static void log_parse_level_names(void **state)
{
	(void)state;

	assert_int_equal(fa_log_parse_level("debug"), FA_LOG_DEBUG);
	assert_int_equal(fa_log_parse_level("info"), FA_LOG_INFO);
	assert_int_equal(fa_log_parse_level("warning"), FA_LOG_WARNING);
	assert_int_equal(fa_log_parse_level("error"), FA_LOG_ERROR);
	assert_int_equal(fa_log_parse_level("warn"), -1);
	assert_int_equal(fa_log_parse_level("INFO"), -1);
	assert_int_equal(fa_log_parse_level(NULL), -1);
}

static void log_long_line_stays_json(void **state)
{
	(void)state;
	size_t size = 20000;
	char *big = malloc(size);
	char *text = NULL;
	cJSON *json = NULL;

	assert_non_null(big);
	/* Quotes double in size when escaped, so the cut falls inside an
	 * escape sequence unless the writer handles it. */
	memset(big, '"', size - 1);
	big[size - 1] = '\0';
	fa_log_set_level(FA_LOG_INFO);
	capture_start();
	fa_log(FA_LOG_INFO, (const char *[]){"field", big, "after", "x", NULL},
	       "%s", big);
	text = capture_stop();
	assert_true(strlen(text) <= 8192);
	json = parse_line(text);
	assert_true(strlen(member(json, "message")) > 1000);
	/* Fields that no longer fit are dropped whole. */
	assert_null(cJSON_GetObjectItemCaseSensitive(json, "field"));
	cJSON_Delete(json);
	free(text);
	free(big);
}

/* Lines from several threads must not interleave: every line of the
 * output parses on its own and every message arrives. */
#define LOG_THREADS 4
#define LOG_LINES 200

static void *log_worker(void *arg)
{
	const char *name = arg;

	for (int i = 0; i < LOG_LINES; i++)
		fa_log(FA_LOG_INFO, (const char *[]){"thread", name, NULL},
		       "line %d from %s with some padding to make it longer", i,
		       name);
	return NULL;
}

static void log_threads_whole_lines(void **state)
{
	(void)state;
	static const char *const names[LOG_THREADS] = {"t0", "t1", "t2", "t3"};
	pthread_t threads[LOG_THREADS];
	int counts[LOG_THREADS] = {0};
	char *text = NULL;
	char *save = NULL;

	fa_log_set_level(FA_LOG_INFO);
	capture_start();
	for (int t = 0; t < LOG_THREADS; t++)
		assert_int_equal(pthread_create(&threads[t], NULL, log_worker,
		                                (void *)names[t]),
		                 0);
	for (int t = 0; t < LOG_THREADS; t++)
		assert_int_equal(pthread_join(threads[t], NULL), 0);
	text = capture_stop();

	for (char *line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		cJSON *json = cJSON_Parse(line);
		if (json == NULL)
			fail_msg("line is not JSON: %s", line);
		const char *thread = member(json, "thread");
		assert_int_equal(strlen(thread), 2);
		counts[thread[1] - '0']++;
		cJSON_Delete(json);
	}
	for (int t = 0; t < LOG_THREADS; t++)
		assert_int_equal(counts[t], LOG_LINES);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(log_line_format),
	        cmocka_unit_test(log_escapes_strings),
	        cmocka_unit_test(log_replaces_invalid_utf8),
	        cmocka_unit_test(log_level_filter),
	        cmocka_unit_test(log_parse_level_names),
	        cmocka_unit_test(log_long_line_stays_json),
	        cmocka_unit_test(log_threads_whole_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
