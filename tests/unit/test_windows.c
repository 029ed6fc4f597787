/*
 * The broker's set of users outside their access window (plugin/
 * windows.c): parsing of the query result, lookups, and when the next
 * query is due. The query itself runs against PostgreSQL in
 * tests/integration/plugin/test_access_window.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "windows.h"

static int log_lines;

static void count_log(const char *message)
{
	assert_non_null(message);
	log_lines++;
}

static struct fa_windows *make_windows(void)
{
	struct fa_windows *windows = fa_windows_new(
	        "host=/nonexistent/fleetauth-windows-test", count_log);

	assert_non_null(windows);
	return windows;
}

static void test_answer_sets_outside_users(void **state)
{
	struct fa_windows *windows = make_windows();

	(void)state;
	assert_false(fa_windows_outside(windows, "drv-1"));
	assert_true(fa_windows_apply(windows, "drv-3,drv-1,drv-2", 30, 1000));
	assert_int_equal(fa_windows_outside_count(windows), 3);
	assert_true(fa_windows_outside(windows, "drv-1"));
	assert_true(fa_windows_outside(windows, "drv-2"));
	assert_true(fa_windows_outside(windows, "drv-3"));
	assert_false(fa_windows_outside(windows, "drv-4"));
	assert_false(fa_windows_outside(windows, "drv-"));
	assert_false(fa_windows_outside(windows, NULL));
	fa_windows_free(windows);
}

static void test_same_answer_is_no_change(void **state)
{
	struct fa_windows *windows = make_windows();

	(void)state;
	log_lines = 0;
	assert_true(fa_windows_apply(windows, "drv-1", 30, 0));
	assert_false(fa_windows_apply(windows, "drv-1", 29, 1000));
	assert_int_equal(log_lines, 1);
	/* Everyone back inside. */
	assert_true(fa_windows_apply(windows, "", 60, 2000));
	assert_int_equal(fa_windows_outside_count(windows), 0);
	assert_false(fa_windows_outside(windows, "drv-1"));
	fa_windows_free(windows);
}

static void test_next_query_follows_the_boundary(void **state)
{
	struct fa_windows *windows = make_windows();

	(void)state;
	fa_windows_apply(windows, "", 5, 10000);
	assert_int_equal(fa_windows_next_query_ms(windows), 10000 + 5500);
	/* Never later than 15 s, so that edited windows take effect. */
	fa_windows_apply(windows, "", 3600, 10000);
	assert_int_equal(fa_windows_next_query_ms(windows), 10000 + 15000);
	fa_windows_apply(windows, "", -1, 10000);
	assert_int_equal(fa_windows_next_query_ms(windows), 10000 + 15000);
	fa_windows_free(windows);
}

/* Without a database the last result stays and the failure is logged. */
static void test_unreachable_database_keeps_the_set(void **state)
{
	struct fa_windows *windows = make_windows();

	(void)state;
	assert_true(fa_windows_apply(windows, "drv-1", 0, 0));
	log_lines = 0;
	for (int64_t now = 1000; now < 1100; now += 10)
		assert_false(fa_windows_tick(windows, now));
	assert_true(log_lines >= 1);
	assert_true(fa_windows_outside(windows, "drv-1"));
	fa_windows_free(windows);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_answer_sets_outside_users),
	        cmocka_unit_test(test_same_answer_is_no_change),
	        cmocka_unit_test(test_next_query_follows_the_boundary),
	        cmocka_unit_test(test_unreachable_database_keeps_the_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
