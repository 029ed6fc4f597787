/* "users" and "carriers" command groups. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "fa_roles.h"

static const char *const user_fields[] = {
        "id",         "role",       "carrier",       "status",
        "created_at", "updated_at", "access_window", NULL};

static const struct ctl_column user_columns[] = {
        {"ID", "id"},         {"ROLE", "role"},          {"CARRIER", "carrier"},
        {"STATUS", "status"}, {"CREATED", "created_at"}, {NULL, NULL},
};

static bool check_role(struct ctl *ctl, const char *role)
{
	char clean[40];

	if (fa_role_parse(role) != FA_ROLE_NONE)
		return true;
	ctl_sanitize(role, clean, sizeof(clean));
	ctl_error(ctl,
	          "invalid role \"%s\": expected system_admin, "
	          "system_operator, fleet_manager, fleet_analyst, dispatcher, "
	          "driver, shipper_admin, shipping_coordinator, "
	          "account_manager or warehouse_user",
	          clean);
	return false;
}

static int users_create(struct ctl *ctl, const struct ctl_args *args)
{
	const char *id = args->positional[0];
	const char *role = ctl_arg(ctl, "role");
	const char *carrier = ctl_arg(ctl, "carrier");
	char *password = NULL;
	cJSON *body = NULL;
	cJSON *json = NULL;
	char message[160];
	int status = CTL_EXIT_FAILURE;

	if (!ctl_check_id(ctl, "user id", id))
		return CTL_EXIT_USAGE;
	if (role == NULL) {
		ctl_error(ctl, "missing --role (for example --role driver)");
		return CTL_EXIT_USAGE;
	}
	if (!check_role(ctl, role))
		return CTL_EXIT_USAGE;
	if (carrier != NULL && !ctl_check_id(ctl, "carrier id", carrier))
		return CTL_EXIT_USAGE;
	if (!ctl_read_password(ctl, ctl_arg(ctl, "password-file"), true,
	                       &password))
		goto out;
	body = cJSON_CreateObject();
	if (body == NULL || !ctl_add_string(body, "username", id) ||
	    !ctl_add_string(body, "role", role) ||
	    !ctl_add_string(body, "carrier", carrier) ||
	    !ctl_add_string(body, "access_window", ctl_arg(ctl, "window")) ||
	    !ctl_add_string(body, "password", password)) {
		ctl_error(ctl, "out of memory");
		goto out;
	}
	if (!ctl_call(ctl, "POST", "/v1/users", body, CTL_AUTH_REQUIRED, &json))
		goto out;
	snprintf(message, sizeof(message), "created user %s", id);
	status = ctl_finish(ctl, json, message, user_fields);
out:
	ctl_free_json_secret(body);
	ctl_free_secret(password);
	return status;
}

static int users_list(struct ctl *ctl, const struct ctl_args *args)
{
	const char *pairs[] = {"carrier", ctl_arg(ctl, "carrier"),
	                       "role",    ctl_arg(ctl, "role"),
	                       "status",  ctl_arg(ctl, "status"),
	                       "limit",   ctl_arg(ctl, "limit"),
	                       "after",   ctl_arg(ctl, "after"),
	                       NULL};
	char path[600];

	(void)args;
	if (pairs[1] != NULL && !ctl_check_id(ctl, "carrier id", pairs[1]))
		return CTL_EXIT_USAGE;
	if (pairs[3] != NULL && !check_role(ctl, pairs[3]))
		return CTL_EXIT_USAGE;
	if (!ctl_build_query(path, sizeof(path), "/v1/users", pairs)) {
		ctl_error(ctl, "query too long");
		return CTL_EXIT_USAGE;
	}
	return ctl_list(ctl, path, user_columns);
}

static int users_show(struct ctl *ctl, const struct ctl_args *args)
{
	cJSON *json = NULL;
	char path[128];

	if (!ctl_object_path(ctl, path, sizeof(path), "/v1/users", "user id",
	                     args->positional[0], ""))
		return CTL_EXIT_USAGE;
	if (!ctl_call(ctl, "GET", path, NULL, CTL_AUTH_REQUIRED, &json))
		return CTL_EXIT_FAILURE;
	return ctl_finish(ctl, json, NULL, user_fields);
}

/* PATCHes one member of a user and reports the result. */
static int patch_user(struct ctl *ctl, const char *id, const char *field,
                      const char *value, const char *done)
{
	cJSON *body = NULL;
	cJSON *json = NULL;
	char path[128];
	char message[160];
	int status = CTL_EXIT_FAILURE;

	if (!ctl_object_path(ctl, path, sizeof(path), "/v1/users", "user id",
	                     id, ""))
		return CTL_EXIT_USAGE;
	body = cJSON_CreateObject();
	if (body == NULL || !ctl_add_string(body, field, value)) {
		ctl_error(ctl, "out of memory");
		goto out;
	}
	if (!ctl_call(ctl, "PATCH", path, body, CTL_AUTH_REQUIRED, &json))
		goto out;
	snprintf(message, sizeof(message), "%s user %s", done, id);
	status = ctl_finish(ctl, json, message, user_fields);
out:
	cJSON_Delete(body);
	return status;
}

static int users_set_role(struct ctl *ctl, const struct ctl_args *args)
{
	if (!check_role(ctl, args->positional[1]))
		return CTL_EXIT_USAGE;
	return patch_user(ctl, args->positional[0], "role", args->positional[1],
	                  "changed the role of");
}

/* set-window USER_ID HH:MM-HH:MM|none: the service checks the format and
 * names the value when it is wrong. */
static int users_set_window(struct ctl *ctl, const struct ctl_args *args)
{
	const char *window = args->positional[1];
	cJSON *body = NULL;
	cJSON *json = NULL;
	char path[128];
	char message[160];
	int status = CTL_EXIT_FAILURE;

	if (strcmp(window, "none") == 0)
		window = NULL;
	if (!ctl_object_path(ctl, path, sizeof(path), "/v1/users", "user id",
	                     args->positional[0], ""))
		return CTL_EXIT_USAGE;
	body = cJSON_CreateObject();
	if (body == NULL ||
	    (window != NULL
	             ? !ctl_add_string(body, "access_window", window)
	             : cJSON_AddNullToObject(body, "access_window") == NULL)) {
		ctl_error(ctl, "out of memory");
		goto out;
	}
	if (!ctl_call(ctl, "PATCH", path, body, CTL_AUTH_REQUIRED, &json))
		goto out;
	snprintf(message, sizeof(message), "%s the access window of %s",
	         window != NULL ? "set" : "removed", args->positional[0]);
	status = ctl_finish(ctl, json, message, user_fields);
out:
	cJSON_Delete(body);
	return status;
}

static int users_lock(struct ctl *ctl, const struct ctl_args *args)
{
	return patch_user(ctl, args->positional[0], "status", "locked",
	                  "locked");
}

static int users_unlock(struct ctl *ctl, const struct ctl_args *args)
{
	return patch_user(ctl, args->positional[0], "status", "active",
	                  "unlocked");
}

/* Sends a request without a body to /v1/users/ID + suffix. */
static int user_action(struct ctl *ctl, const char *method, const char *id,
                       const char *suffix, const char *done)
{
	cJSON *json = NULL;
	char path[160];
	char message[160];

	if (!ctl_object_path(ctl, path, sizeof(path), "/v1/users", "user id",
	                     id, suffix))
		return CTL_EXIT_USAGE;
	if (!ctl_call(ctl, method, path, NULL, CTL_AUTH_REQUIRED, &json))
		return CTL_EXIT_FAILURE;
	snprintf(message, sizeof(message), "%s %s", done, id);
	return ctl_finish(ctl, json, message, NULL);
}

static int users_delete(struct ctl *ctl, const struct ctl_args *args)
{
	return user_action(ctl, "DELETE", args->positional[0], "",
	                   "deleted user");
}

static int users_revoke_sessions(struct ctl *ctl, const struct ctl_args *args)
{
	return user_action(ctl, "POST", args->positional[0], "/revoke-sessions",
	                   "revoked every session of");
}

/* Prints the export document as JSON whatever the output format, because
 * it is nested and meant to be saved as a file. */
static int users_export(struct ctl *ctl, const struct ctl_args *args)
{
	cJSON *json = NULL;
	char path[160];

	if (!ctl_object_path(ctl, path, sizeof(path), "/v1/users", "user id",
	                     args->positional[0], "/export"))
		return CTL_EXIT_USAGE;
	if (!ctl_call(ctl, "GET", path, NULL, CTL_AUTH_REQUIRED, &json))
		return CTL_EXIT_FAILURE;
	ctl_print_json(json);
	cJSON_Delete(json);
	return CTL_EXIT_OK;
}

static int users_erase(struct ctl *ctl, const struct ctl_args *args)
{
	static const char *const names[] = {"pseudonym",
	                                    "revoked_families",
	                                    "deleted_device_keys",
	                                    "deleted_totp",
	                                    "unbound_devices",
	                                    "deleted_assignments",
	                                    NULL};
	cJSON *json = NULL;
	char path[160];
	char message[160];

	if (ctl_arg(ctl, "yes") == NULL) {
		ctl_error(ctl, "erasing cannot be undone; repeat with --yes");
		return CTL_EXIT_USAGE;
	}
	if (!ctl_object_path(ctl, path, sizeof(path), "/v1/users", "user id",
	                     args->positional[0], "/erase"))
		return CTL_EXIT_USAGE;
	if (!ctl_call(ctl, "POST", path, NULL, CTL_AUTH_REQUIRED, &json))
		return CTL_EXIT_FAILURE;
	snprintf(message, sizeof(message), "erased the personal data of %s",
	         args->positional[0]);
	return ctl_finish(ctl, json, message, names);
}

static const struct ctl_option erase_options[] = {
        {"yes", NULL, "confirm the erasure, which cannot be undone"},
        {NULL, NULL, NULL},
};

static const struct ctl_option create_options[] = {
        {"role", "ROLE",
         "role of the new user: system_admin, system_operator, "
         "fleet_manager, fleet_analyst, dispatcher, driver, shipper_admin, "
         "shipping_coordinator, account_manager or warehouse_user"},
        {"carrier", "ID",
         "carrier the user belongs to, for fleet_manager, fleet_analyst, "
         "dispatcher and driver (default: your carrier; platform roles "
         "must give it); not allowed for platform roles"},
        {"password-file", "FILE",
         "read the initial password from the first line of FILE (\"-\" for "
         "standard input); without it the password is prompted for twice"},
        {"window", "HH:MM-HH:MM",
         "access window in the carrier's time zone (UTC without a "
         "carrier): logins, refreshes and broker sessions only inside it; "
         "22:00-06:00 spans midnight"},
        {NULL, NULL, NULL},
};

static const struct ctl_option list_options[] = {
        {"carrier", "ID", "only users of this carrier"},
        {"role", "ROLE", "only users with this role"},
        {"status", "STATUS",
         "only users in this status: active, locked, "
         "disabled"},
        {"limit", "N", "at most N users per page (the service caps it)"},
        {"after", "CURSOR",
         "continue after this cursor from the previous "
         "page"},
        {NULL, NULL, NULL},
};

static const struct ctl_command users_commands[] = {
        {"create", "USER_ID", 1, 1,
         "Create a user. USER_ID is also the login name and the MQTT "
         "username.",
         NULL, create_options, users_create},
        {"list", NULL, 0, 0, "List users, one page at a time.", NULL,
         list_options, users_list},
        {"show", "USER_ID", 1, 1, "Show one user.", NULL, NULL, users_show},
        {"set-role", "USER_ID ROLE", 2, 2, "Change a user's role.",
         "The user's current access tokens stop working on the brokers; the "
         "user logs in again to get the new role.",
         NULL, users_set_role},
        {"set-window", "USER_ID HH:MM-HH:MM|none", 2, 2,
         "Set or remove a user's access window.",
         "The window is in the carrier's time zone. Outside it, logins and "
         "refreshes are refused and the brokers end the user's sessions "
         "within about a second. \"none\" removes the window.",
         NULL, users_set_window},
        {"lock", "USER_ID", 1, 1,
         "Lock a user: logins fail and brokers disconnect the user's "
         "clients.",
         NULL, NULL, users_lock},
        {"unlock", "USER_ID", 1, 1, "Unlock a locked user.", NULL, NULL,
         users_unlock},
        {"delete", "USER_ID", 1, 1,
         "Delete a user; the id stays reserved and cannot be reused.", NULL,
         NULL, users_delete},
        {"revoke-sessions", "USER_ID", 1, 1,
         "Revoke every refresh-token family of a user; brokers disconnect "
         "the clients that used those logins.",
         NULL, NULL, users_revoke_sessions},
        {"export", "USER_ID", 1, 1,
         "Print every piece of personal data stored about a user as JSON.",
         "Allowed for system_admin, the fleet_manager of the user's "
         "carrier, and the user themself. The audit events list the "
         "pseudonym of erased users in place of their id.",
         NULL, users_export},
        {"erase", "USER_ID", 1, 1,
         "Erase a user's personal data (system_admin; cannot be undone).",
         "Replaces the password hash with an unusable value, deletes the "
         "TOTP seed, device keys and load assignments, unbinds the user's "
         "phones, revokes every session and marks the user deleted. The id "
         "stays reserved, and the audit trail shows a random pseudonym in "
         "its place.",
         erase_options, users_erase},
        {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};

const struct ctl_group ctl_group_users = {
        "users", "Create, list, change and remove users; revoke sessions.",
        users_commands};

/* --- carriers --- */

static const struct ctl_column carrier_columns[] = {
        {"ID", "id"},
        {"NAME", "name"},
        {"TIME ZONE", "time_zone"},
        {"CREATED", "created_at"},
        {NULL, NULL},
};

static int carriers_create(struct ctl *ctl, const struct ctl_args *args)
{
	const char *id = args->positional[0];
	const char *name = ctl_arg(ctl, "name");
	cJSON *body = NULL;
	cJSON *json = NULL;
	char message[160];
	int status = CTL_EXIT_FAILURE;

	if (!ctl_check_id(ctl, "carrier id", id))
		return CTL_EXIT_USAGE;
	body = cJSON_CreateObject();
	if (body == NULL || !ctl_add_string(body, "id", id) ||
	    !ctl_add_string(body, "name", name ? name : id) ||
	    !ctl_add_string(body, "time_zone", ctl_arg(ctl, "time-zone"))) {
		ctl_error(ctl, "out of memory");
		goto out;
	}
	if (!ctl_call(ctl, "POST", "/v1/carriers", body, CTL_AUTH_REQUIRED,
	              &json))
		goto out;
	snprintf(message, sizeof(message), "created carrier %s", id);
	status = ctl_finish(ctl, json, message, NULL);
out:
	cJSON_Delete(body);
	return status;
}

static int carriers_list(struct ctl *ctl, const struct ctl_args *args)
{
	const char *pairs[] = {"limit", ctl_arg(ctl, "limit"), "after",
	                       ctl_arg(ctl, "after"), NULL};
	char path[400];

	(void)args;
	if (!ctl_build_query(path, sizeof(path), "/v1/carriers", pairs)) {
		ctl_error(ctl, "query too long");
		return CTL_EXIT_USAGE;
	}
	return ctl_list(ctl, path, carrier_columns);
}

static const struct ctl_option carrier_create_options[] = {
        {"name", "TEXT",
         "display name, 1 to 200 characters (default: the "
         "id)"},
        {"time-zone", "TZ",
         "IANA time zone for access windows, for example Europe/Berlin "
         "(default UTC)"},
        {NULL, NULL, NULL},
};

static const struct ctl_option carrier_list_options[] = {
        {"limit", "N", "at most N carriers per page"},
        {"after", "CURSOR", "continue after this cursor"},
        {NULL, NULL, NULL},
};

static const struct ctl_command carriers_commands[] = {
        {"create", "CARRIER_ID", 1, 1, "Create a carrier.", NULL,
         carrier_create_options, carriers_create},
        {"list", NULL, 0, 0, "List carriers.", NULL, carrier_list_options,
         carriers_list},
        {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};

const struct ctl_group ctl_group_carriers = {
        "carriers", "Create and list carriers.", carriers_commands};
