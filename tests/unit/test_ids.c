#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fa_ids.h"
#include "fa_result.h"

static void ids_accept_valid(void **state)
{
	(void)state;
	char longest[FA_ID_MAX + 1];

	memset(longest, 'a', FA_ID_MAX);
	longest[FA_ID_MAX] = '\0';
	assert_true(fa_id_valid("a"));
	assert_true(fa_id_valid("drv-ann"));
	assert_true(fa_id_valid("Truck_07"));
	assert_true(fa_id_valid("0123456789"));
	assert_true(fa_id_valid(longest));
}

static void ids_reject_invalid(void **state)
{
	(void)state;
	char too_long[FA_ID_MAX + 2];
	static const char *const bad[] = {
	        "",     "a/b",         "a+b", "a#b",  "a b",  "a.b",
	        "$SYS", "caf\xc3\xa9", "a:b", "a\tb", "a\nb", "\xff",
	};

	memset(too_long, 'a', FA_ID_MAX + 1);
	too_long[FA_ID_MAX + 1] = '\0';
	assert_false(fa_id_valid(NULL));
	assert_false(fa_id_valid(too_long));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (fa_id_valid(bad[i]))
			fail_msg("id \"%s\" was accepted", bad[i]);
	}
}

static void ids_length_bounded_variant(void **state)
{
	(void)state;
	const char text[] = "drv-ann/status";

	assert_true(fa_id_valid_n(text, 7));
	assert_false(fa_id_valid_n(text, 8));
	assert_false(fa_id_valid_n(text, 0));
	assert_false(fa_id_valid_n(NULL, 3));
	/* An embedded NUL is not an id character. */
	assert_false(fa_id_valid_n("ab\0cd", 5));
}

static void result_strings_distinct(void **state)
{
	(void)state;

	assert_string_equal(fa_result_str(FA_OK), "ok");
	assert_string_equal(fa_result_str(FA_ERR_INVALID), "invalid input");
	for (int a = FA_OK; a <= FA_ERR_DENIED; a++) {
		for (int b = a + 1; b <= FA_ERR_DENIED; b++)
			assert_string_not_equal(fa_result_str(a),
			                        fa_result_str(b));
	}
	assert_string_equal(fa_result_str((fa_result)99), "unknown result");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(ids_accept_valid),
	        cmocka_unit_test(ids_reject_invalid),
	        cmocka_unit_test(ids_length_bounded_variant),
	        cmocka_unit_test(result_strings_distinct),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
