/* "loads" command group: loads and their driver assignments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const struct ctl_column load_columns[] = {
        {"ID", "id"},
        {"CARRIER", "carrier"},
        {"REFERENCE", "reference"},
        {"DRIVERS", "drivers"},
        {"CREATED", "created_at"},
        {NULL, NULL},
};

static int loads_create(struct ctl *ctl, const struct ctl_args *args)
{
	const char *id = args->positional[0];
	const char *carrier = ctl_arg(ctl, "carrier");
	cJSON *body = NULL;
	cJSON *json = NULL;
	char message[160];
	int status = CTL_EXIT_FAILURE;

	if (!ctl_check_id(ctl, "load id", id))
		return CTL_EXIT_USAGE;
	/* Without --carrier the server uses the caller's carrier and
	 * rejects the request from callers that have none. */
	if (carrier != NULL && !ctl_check_id(ctl, "carrier id", carrier))
		return CTL_EXIT_USAGE;
	body = cJSON_CreateObject();
	if (body == NULL || !ctl_add_string(body, "carrier", carrier) ||
	    !ctl_add_string(body, "id", id) ||
	    !ctl_add_string(body, "reference", ctl_arg(ctl, "reference"))) {
		ctl_error(ctl, "out of memory");
		goto out;
	}
	if (!ctl_call(ctl, "POST", "/v1/loads", body, CTL_AUTH_REQUIRED, &json))
		goto out;
	snprintf(message, sizeof(message), "created load %s of carrier %s", id,
	         ctl_json_str(json, "carrier") != NULL
	                 ? ctl_json_str(json, "carrier")
	                 : "(not returned)");
	status = ctl_finish(ctl, json, message, NULL);
out:
	cJSON_Delete(body);
	return status;
}

/* Builds /v1/loads/ID/assignment with ?carrier= when --carrier was given. */
static bool assignment_path(struct ctl *ctl, const char *id, char *out,
                            size_t out_size)
{
	const char *carrier = ctl_arg(ctl, "carrier");
	const char *pairs[] = {"carrier", carrier, NULL};
	char base[160];

	if (!ctl_object_path(ctl, base, sizeof(base), "/v1/loads", "load id",
	                     id, "/assignment"))
		return false;
	if (carrier != NULL && !ctl_check_id(ctl, "carrier id", carrier))
		return false;
	return ctl_build_query(out, out_size, base, pairs);
}

static int loads_assign(struct ctl *ctl, const struct ctl_args *args)
{
	const char *id = args->positional[0];
	const char *driver = args->positional[1];
	cJSON *body = NULL;
	cJSON *json = NULL;
	char path[300];
	char message[200];
	int status = CTL_EXIT_FAILURE;

	if (!ctl_check_id(ctl, "driver id", driver) ||
	    !assignment_path(ctl, id, path, sizeof(path)))
		return CTL_EXIT_USAGE;
	body = cJSON_CreateObject();
	if (body == NULL || !ctl_add_string(body, "driver", driver)) {
		ctl_error(ctl, "out of memory");
		goto out;
	}
	if (!ctl_call(ctl, "PUT", path, body, CTL_AUTH_REQUIRED, &json))
		goto out;
	snprintf(message, sizeof(message), "assigned load %s to driver %s", id,
	         driver);
	status = ctl_finish(ctl, json, message, NULL);
out:
	cJSON_Delete(body);
	return status;
}

static int loads_unassign(struct ctl *ctl, const struct ctl_args *args)
{
	const char *id = args->positional[0];
	cJSON *json = NULL;
	char path[300];
	char message[160];

	if (!assignment_path(ctl, id, path, sizeof(path)))
		return CTL_EXIT_USAGE;
	if (!ctl_call(ctl, "DELETE", path, NULL, CTL_AUTH_REQUIRED, &json))
		return CTL_EXIT_FAILURE;
	snprintf(message, sizeof(message),
	         "removed the driver assignment of load %s", id);
	return ctl_finish(ctl, json, message, NULL);
}

static int loads_list(struct ctl *ctl, const struct ctl_args *args)
{
	const char *pairs[] = {"carrier", ctl_arg(ctl, "carrier"),
	                       "limit",   ctl_arg(ctl, "limit"),
	                       "after",   ctl_arg(ctl, "after"),
	                       NULL};
	char path[600];

	(void)args;
	if (pairs[1] != NULL && !ctl_check_id(ctl, "carrier id", pairs[1]))
		return CTL_EXIT_USAGE;
	if (!ctl_build_query(path, sizeof(path), "/v1/loads", pairs)) {
		ctl_error(ctl, "query too long");
		return CTL_EXIT_USAGE;
	}
	return ctl_list(ctl, path, load_columns);
}

static const struct ctl_option create_options[] = {
        {"carrier", "ID",
         "carrier that owns the load (default: your own; required for "
         "platform roles)"},
        {"reference", "TEXT", "shipper's reference, up to 200 characters"},
        {NULL, NULL, NULL},
};

static const struct ctl_option assignment_options[] = {
        {"carrier", "ID",
         "carrier of the load; needed only by platform roles, whose requests "
         "carry no carrier of their own"},
        {NULL, NULL, NULL},
};

static const struct ctl_option list_options[] = {
        {"carrier", "ID", "only loads of this carrier"},
        {"limit", "N", "at most N loads per page"},
        {"after", "CURSOR", "continue after this cursor"},
        {NULL, NULL, NULL},
};

static const struct ctl_command loads_commands[] = {
        {"create", "LOAD_ID", 1, 1, "Create a load.", NULL, create_options,
         loads_create},
        {"assign", "LOAD_ID DRIVER_ID", 2, 2,
         "Assign a load to a driver, replacing the previous driver.",
         "The previous driver's subscriptions to the load's topics stop "
         "receiving messages within a second.",
         assignment_options, loads_assign},
        {"unassign", "LOAD_ID", 1, 1, "Remove a load's driver assignment.",
         NULL, assignment_options, loads_unassign},
        {"list", NULL, 0, 0, "List loads and their drivers.", NULL,
         list_options, loads_list},
        {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};

const struct ctl_group ctl_group_loads = {
        "loads", "Create loads and assign them to drivers.", loads_commands};
