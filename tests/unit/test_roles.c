#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fa_roles.h"

static void roles_parse_roundtrip(void **state)
{
	(void)state;

	for (int r = FA_ROLE_NONE + 1; r < FA_ROLE_COUNT; r++) {
		const char *name = fa_role_name((enum fa_role)r);
		assert_string_not_equal(name, "none");
		assert_int_equal(fa_role_parse(name), r);
	}
	assert_string_equal(fa_role_name(FA_ROLE_FLEET_MANAGER),
	                    "fleet_manager");
	assert_int_equal(fa_role_parse("driver"), FA_ROLE_DRIVER);
}

static void roles_parse_rejects_unknown(void **state)
{
	(void)state;

	assert_int_equal(fa_role_parse(NULL), FA_ROLE_NONE);
	assert_int_equal(fa_role_parse(""), FA_ROLE_NONE);
	assert_int_equal(fa_role_parse("none"), FA_ROLE_NONE);
	assert_int_equal(fa_role_parse("Driver"), FA_ROLE_NONE);
	assert_int_equal(fa_role_parse("driver "), FA_ROLE_NONE);
	assert_int_equal(fa_role_parse("root"), FA_ROLE_NONE);
	assert_string_equal(fa_role_name(FA_ROLE_COUNT), "none");
	assert_string_equal(fa_role_name((enum fa_role) - 1), "none");
}

struct cover_case {
	enum fa_role role;
	enum fa_role other;
	bool covers;
};

static void roles_hierarchy_table(void **state)
{
	(void)state;
	static const struct cover_case cases[] = {
	        {FA_ROLE_SYSTEM_ADMIN, FA_ROLE_SYSTEM_ADMIN, true},
	        {FA_ROLE_SYSTEM_ADMIN, FA_ROLE_FLEET_MANAGER, true},
	        {FA_ROLE_SYSTEM_ADMIN, FA_ROLE_DRIVER, true},
	        {FA_ROLE_SYSTEM_ADMIN, FA_ROLE_SYSTEM_OPERATOR, true},
	        {FA_ROLE_SYSTEM_ADMIN, FA_ROLE_WAREHOUSE_USER, true},
	        {FA_ROLE_SYSTEM_OPERATOR, FA_ROLE_SYSTEM_ADMIN, false},
	        {FA_ROLE_SYSTEM_OPERATOR, FA_ROLE_DRIVER, false},
	        {FA_ROLE_FLEET_MANAGER, FA_ROLE_DISPATCHER, true},
	        {FA_ROLE_FLEET_MANAGER, FA_ROLE_FLEET_ANALYST, true},
	        {FA_ROLE_FLEET_MANAGER, FA_ROLE_DRIVER, true},
	        {FA_ROLE_FLEET_MANAGER, FA_ROLE_SYSTEM_ADMIN, false},
	        {FA_ROLE_FLEET_MANAGER, FA_ROLE_SHIPPER_ADMIN, false},
	        {FA_ROLE_DISPATCHER, FA_ROLE_DRIVER, true},
	        {FA_ROLE_DISPATCHER, FA_ROLE_FLEET_ANALYST, false},
	        {FA_ROLE_DISPATCHER, FA_ROLE_FLEET_MANAGER, false},
	        {FA_ROLE_FLEET_ANALYST, FA_ROLE_DRIVER, false},
	        {FA_ROLE_FLEET_ANALYST, FA_ROLE_DISPATCHER, false},
	        {FA_ROLE_DRIVER, FA_ROLE_DRIVER, true},
	        {FA_ROLE_DRIVER, FA_ROLE_DISPATCHER, false},
	        {FA_ROLE_SHIPPER_ADMIN, FA_ROLE_SHIPPING_COORDINATOR, true},
	        {FA_ROLE_SHIPPER_ADMIN, FA_ROLE_ACCOUNT_MANAGER, true},
	        {FA_ROLE_SHIPPER_ADMIN, FA_ROLE_WAREHOUSE_USER, true},
	        {FA_ROLE_SHIPPER_ADMIN, FA_ROLE_DRIVER, false},
	        {FA_ROLE_SHIPPING_COORDINATOR, FA_ROLE_WAREHOUSE_USER, true},
	        {FA_ROLE_SHIPPING_COORDINATOR, FA_ROLE_ACCOUNT_MANAGER, false},
	        {FA_ROLE_ACCOUNT_MANAGER, FA_ROLE_WAREHOUSE_USER, false},
	        {FA_ROLE_WAREHOUSE_USER, FA_ROLE_SHIPPING_COORDINATOR, false},
	        {FA_ROLE_NONE, FA_ROLE_NONE, false},
	        {FA_ROLE_NONE, FA_ROLE_DRIVER, false},
	        {FA_ROLE_SYSTEM_ADMIN, FA_ROLE_NONE, false},
	        {FA_ROLE_COUNT, FA_ROLE_DRIVER, false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct cover_case *c = &cases[i];
		if (fa_role_covers(c->role, c->other) != c->covers)
			fail_msg("fa_role_covers(%s, %s) should be %s",
			         fa_role_name(c->role), fa_role_name(c->other),
			         c->covers ? "true" : "false");
	}
}

static void roles_carrier_roles(void **state)
{
	(void)state;

	assert_true(fa_role_is_carrier_role(FA_ROLE_FLEET_MANAGER));
	assert_true(fa_role_is_carrier_role(FA_ROLE_FLEET_ANALYST));
	assert_true(fa_role_is_carrier_role(FA_ROLE_DISPATCHER));
	assert_true(fa_role_is_carrier_role(FA_ROLE_DRIVER));
	assert_false(fa_role_is_carrier_role(FA_ROLE_SYSTEM_ADMIN));
	assert_false(fa_role_is_carrier_role(FA_ROLE_SYSTEM_OPERATOR));
	assert_false(fa_role_is_carrier_role(FA_ROLE_SHIPPER_ADMIN));
	assert_false(fa_role_is_carrier_role(FA_ROLE_WAREHOUSE_USER));
	assert_false(fa_role_is_carrier_role(FA_ROLE_NONE));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(roles_parse_roundtrip),
	        cmocka_unit_test(roles_parse_rejects_unknown),
	        cmocka_unit_test(roles_hierarchy_table),
	        cmocka_unit_test(roles_carrier_roles),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
