/*
 * The plugin's queue of denials for the audit trail (plugin/audit.c):
 * merging, cutting and escaping, the bound on its size, and that a batch
 * survives a database that cannot be reached. The rows it writes through a
 * real broker and PostgreSQL are checked by
 * tests/integration/plugin/test_denial_audit.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

static int log_lines;

static void count_log(const char *message)
{
	assert_non_null(message);
	log_lines++;
}

static struct fa_audit *make_audit(size_t max_entries)
{
	struct fa_audit *audit =
	        fa_audit_new("host=/nonexistent/fleetauth-audit-test",
	                     "broker-a", 1000, max_entries, count_log);

	assert_non_null(audit);
	return audit;
}

/* Takes a batch and parses it; the caller frees the array. */
static cJSON *take_json(struct fa_audit *audit)
{
	char *text = fa_audit_take_batch(audit);
	cJSON *array;

	assert_non_null(text);
	array = cJSON_Parse(text);
	free(text);
	assert_non_null(array);
	assert_true(cJSON_IsArray(array));
	return array;
}

static const char *field(const cJSON *item, const char *name)
{
	const cJSON *value = cJSON_GetObjectItemCaseSensitive(item, name);

	return cJSON_IsString(value) ? value->valuestring : NULL;
}

static double number(const cJSON *item, const char *name)
{
	const cJSON *value = cJSON_GetObjectItemCaseSensitive(item, name);

	assert_true(cJSON_IsNumber(value));
	return value->valuedouble;
}

static void test_identical_denials_merge(void **state)
{
	struct fa_audit *audit = make_audit(16);
	cJSON *array;
	const cJSON *first;
	const cJSON *second;

	(void)state;
	for (int i = 0; i < 3; i++)
		fa_audit_denial(audit, 1000 + i, "publish", "topic", "drv-1",
		                "fleet/c1/loads/l9/rate", "127.0.0.1",
		                "drv-1:phone");
	fa_audit_denial(audit, 1005, "publish", "topic", "drv-1",
	                "fleet/c1/loads/l8/rate", "127.0.0.1", "drv-1:phone");
	assert_int_equal(fa_audit_pending(audit), 2);
	array = take_json(audit);
	assert_int_equal(cJSON_GetArraySize(array), 2);
	first = cJSON_GetArrayItem(array, 0);
	second = cJSON_GetArrayItem(array, 1);
	assert_string_equal(field(first, "action"), "publish");
	assert_string_equal(field(first, "reason"), "topic");
	assert_string_equal(field(first, "actor"), "drv-1");
	assert_string_equal(field(first, "target"), "fleet/c1/loads/l9/rate");
	assert_string_equal(field(first, "address"), "127.0.0.1");
	assert_string_equal(field(first, "client_id"), "drv-1:phone");
	assert_string_equal(field(first, "broker"), "broker-a");
	assert_int_equal((int)number(first, "count"), 3);
	assert_int_equal((int)number(first, "first"), 1000);
	assert_int_equal((int)number(first, "last"), 1002);
	assert_string_equal(field(second, "target"), "fleet/c1/loads/l8/rate");
	assert_int_equal((int)number(second, "count"), 1);
	cJSON_Delete(array);
	assert_int_equal(fa_audit_pending(audit), 0);
	assert_null(fa_audit_take_batch(audit));
	fa_audit_free(audit, 0);
}

static void test_other_address_is_another_entry(void **state)
{
	struct fa_audit *audit = make_audit(16);
	cJSON *array;

	(void)state;
	fa_audit_denial(audit, 1, "connect", "token", "drv-1", NULL, "10.0.0.1",
	                "drv-1");
	fa_audit_denial(audit, 1, "connect", "token", "drv-1", NULL, "10.0.0.2",
	                "drv-1");
	fa_audit_denial(audit, 1, "connect", "throttled", "drv-1", NULL,
	                "10.0.0.1", "drv-1");
	array = take_json(audit);
	assert_int_equal(cJSON_GetArraySize(array), 3);
	/* An empty target is sent as null, not as "". */
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(
	        cJSON_GetArrayItem(array, 0), "target")));
	cJSON_Delete(array);
	fa_audit_free(audit, 0);
}

static void test_text_is_made_safe_and_cut(void **state)
{
	struct fa_audit *audit = make_audit(16);
	char long_topic[1000];
	cJSON *array;
	const cJSON *item;

	(void)state;
	memset(long_topic, 'a', sizeof(long_topic) - 1);
	long_topic[sizeof(long_topic) - 1] = '\0';
	fa_audit_denial(audit, 7, "subscribe", "topic", "dr\"v\\1\xff\n",
	                long_topic, "::1", "\xc3\xa9t\xc3\xa9");
	array = take_json(audit);
	item = cJSON_GetArrayItem(array, 0);
	assert_string_equal(field(item, "actor"), "dr\"v\\1??");
	assert_string_equal(field(item, "client_id"), "??t??");
	assert_int_equal(strlen(field(item, "target")), 255);
	assert_int_equal(strspn(field(item, "target"), "a"), 255);
	cJSON_Delete(array);
	fa_audit_free(audit, 0);
}

static void test_full_queue_counts_lost_denials(void **state)
{
	struct fa_audit *audit = make_audit(2);
	struct fa_audit_stats stats;
	char target[32];
	cJSON *array;
	const cJSON *lost;

	(void)state;
	for (int i = 0; i < 5; i++) {
		snprintf(target, sizeof(target), "fleet/c1/loads/l%d/rate", i);
		fa_audit_denial(audit, 100 + i, "publish", "topic", "drv-1",
		                target, "127.0.0.1", "drv-1");
	}
	/* A denial equal to a queued one still merges into it. */
	fa_audit_denial(audit, 200, "publish", "topic", "drv-1",
	                "fleet/c1/loads/l0/rate", "127.0.0.1", "drv-1");
	fa_audit_get_stats(audit, &stats);
	assert_int_equal(stats.queued, 3);
	assert_int_equal(stats.dropped, 3);
	array = take_json(audit);
	assert_int_equal(cJSON_GetArraySize(array), 3);
	assert_int_equal((int)number(cJSON_GetArrayItem(array, 0), "count"), 2);
	lost = cJSON_GetArrayItem(array, 2);
	assert_string_equal(field(lost, "action"), "lost");
	assert_string_equal(field(lost, "reason"), "queue_full");
	assert_int_equal((int)number(lost, "count"), 3);
	assert_int_equal((int)number(lost, "first"), 102);
	assert_int_equal((int)number(lost, "last"), 104);
	cJSON_Delete(array);
	/* The queue has room again after the batch was taken. */
	fa_audit_denial(audit, 300, "publish", "topic", "drv-2", "t", "a", "c");
	assert_int_equal(fa_audit_pending(audit), 1);
	fa_audit_free(audit, 0);
}

/* The database cannot be reached: ticks fail, log, back off, and keep the
 * batch. */
static void test_unreachable_database_keeps_the_batch(void **state)
{
	struct fa_audit *audit = make_audit(16);
	struct fa_audit_stats stats;

	(void)state;
	log_lines = 0;
	fa_audit_denial(audit, 1, "connect", "token", "drv-1", NULL,
	                "127.0.0.1", "drv-1");
	fa_audit_tick(audit, 1000);
	fa_audit_tick(audit, 1001);
	fa_audit_get_stats(audit, &stats);
	assert_true(stats.failures >= 1);
	assert_true(log_lines >= 1);
	assert_int_equal(stats.batches, 0);
	assert_int_equal(fa_audit_pending(audit), 1);
	/* Within the back-off no new attempt is made. */
	fa_audit_tick(audit, 1500);
	fa_audit_get_stats(audit, &stats);
	assert_int_equal(stats.failures, 1);
	fa_audit_free(audit, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_identical_denials_merge),
	        cmocka_unit_test(test_other_address_is_another_entry),
	        cmocka_unit_test(test_text_is_made_safe_and_cut),
	        cmocka_unit_test(test_full_queue_counts_lost_denials),
	        cmocka_unit_test(test_unreachable_database_keeps_the_batch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
