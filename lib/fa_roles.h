/* Roles and their hierarchy. */
#ifndef FA_ROLES_H
#define FA_ROLES_H

#include <stdbool.h>

enum fa_role {
	FA_ROLE_NONE = 0, /* devices, and anything unparsed */
	FA_ROLE_SYSTEM_ADMIN,
	FA_ROLE_SYSTEM_OPERATOR,
	FA_ROLE_FLEET_MANAGER,
	FA_ROLE_FLEET_ANALYST,
	FA_ROLE_DISPATCHER,
	FA_ROLE_DRIVER,
	FA_ROLE_SHIPPER_ADMIN,
	FA_ROLE_SHIPPING_COORDINATOR,
	FA_ROLE_ACCOUNT_MANAGER,
	FA_ROLE_WAREHOUSE_USER,
	FA_ROLE_COUNT
};

/* Parses a wire name such as "fleet_manager"; FA_ROLE_NONE if unknown. */
enum fa_role fa_role_parse(const char *name);

/* Wire name of a role, or "none". */
const char *fa_role_name(enum fa_role role);

/*
 * True when role is above or equal to other in the hierarchy:
 * system_admin > fleet_manager, shipper_admin, system_operator;
 * fleet_manager > dispatcher, fleet_analyst; dispatcher > driver;
 * shipper_admin > shipping_coordinator, account_manager;
 * shipping_coordinator > warehouse_user. The relation is transitive.
 */
bool fa_role_covers(enum fa_role role, enum fa_role other);

/* True for roles that belong to one carrier (fleet_manager, fleet_analyst,
 * dispatcher, driver). */
bool fa_role_is_carrier_role(enum fa_role role);

#endif
