#include "fa_roles.h"

#include <string.h>

static const char *const role_names[FA_ROLE_COUNT] = {
        [FA_ROLE_NONE] = "none",
        [FA_ROLE_SYSTEM_ADMIN] = "system_admin",
        [FA_ROLE_SYSTEM_OPERATOR] = "system_operator",
        [FA_ROLE_FLEET_MANAGER] = "fleet_manager",
        [FA_ROLE_FLEET_ANALYST] = "fleet_analyst",
        [FA_ROLE_DISPATCHER] = "dispatcher",
        [FA_ROLE_DRIVER] = "driver",
        [FA_ROLE_SHIPPER_ADMIN] = "shipper_admin",
        [FA_ROLE_SHIPPING_COORDINATOR] = "shipping_coordinator",
        [FA_ROLE_ACCOUNT_MANAGER] = "account_manager",
        [FA_ROLE_WAREHOUSE_USER] = "warehouse_user",
};

/* The hierarchy is a tree: each role's direct superior, FA_ROLE_NONE at the
 * top (system_admin) and for roles outside the tree. */
static const enum fa_role role_parent[FA_ROLE_COUNT] = {
        [FA_ROLE_NONE] = FA_ROLE_NONE,
        [FA_ROLE_SYSTEM_ADMIN] = FA_ROLE_NONE,
        [FA_ROLE_SYSTEM_OPERATOR] = FA_ROLE_SYSTEM_ADMIN,
        [FA_ROLE_FLEET_MANAGER] = FA_ROLE_SYSTEM_ADMIN,
        [FA_ROLE_FLEET_ANALYST] = FA_ROLE_FLEET_MANAGER,
        [FA_ROLE_DISPATCHER] = FA_ROLE_FLEET_MANAGER,
        [FA_ROLE_DRIVER] = FA_ROLE_DISPATCHER,
        [FA_ROLE_SHIPPER_ADMIN] = FA_ROLE_SYSTEM_ADMIN,
        [FA_ROLE_SHIPPING_COORDINATOR] = FA_ROLE_SHIPPER_ADMIN,
        [FA_ROLE_ACCOUNT_MANAGER] = FA_ROLE_SHIPPER_ADMIN,
        [FA_ROLE_WAREHOUSE_USER] = FA_ROLE_SHIPPING_COORDINATOR,
};

static bool role_in_range(enum fa_role role)
{
	return role > FA_ROLE_NONE && role < FA_ROLE_COUNT;
}

enum fa_role fa_role_parse(const char *name)
{
	if (name == NULL)
		return FA_ROLE_NONE;
	for (int i = FA_ROLE_NONE + 1; i < FA_ROLE_COUNT; i++) {
		if (strcmp(name, role_names[i]) == 0)
			return (enum fa_role)i;
	}
	return FA_ROLE_NONE;
}

const char *fa_role_name(enum fa_role role)
{
	if (!role_in_range(role))
		return "none";
	return role_names[role];
}

/* Walks up from other towards the root; the tree has at most four levels. */
bool fa_role_covers(enum fa_role role, enum fa_role other)
{
	if (!role_in_range(role) || !role_in_range(other))
		return false;
	for (enum fa_role r = other; r != FA_ROLE_NONE; r = role_parent[r]) {
		if (r == role)
			return true;
	}
	return false;
}

bool fa_role_is_carrier_role(enum fa_role role)
{
	return role == FA_ROLE_FLEET_MANAGER || role == FA_ROLE_FLEET_ANALYST ||
	       role == FA_ROLE_DISPATCHER || role == FA_ROLE_DRIVER;
}
