/* "api-keys" and "signing-keys" command groups. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "fa_roles.h"

#define CTL_MAX_KEY_DAYS 365 /* the service caps key lifetime at a year */

static const struct ctl_column api_key_columns[] = {
        {"ID", "id"},
        {"NAME", "name"},
        {"PREFIX", "key_prefix"},
        {"ROLE", "role"},
        {"CARRIER", "carrier"},
        {"SCOPES", "scopes"},
        {"EXPIRES", "expires_at"},
        {"STATUS", "status"},
        {NULL, NULL},
};

/* Builds the request body of "api-keys create" from the options. */
static cJSON *api_key_body(struct ctl *ctl)
{
	const char *role = ctl_arg(ctl, "role");
	const char *carrier = ctl_arg(ctl, "carrier");
	const char *days_text = ctl_arg(ctl, "expires-days");
	const char *const *scopes;
	int scope_count = 0;
	long days = 0;
	cJSON *body = NULL;
	cJSON *array;

	scopes = ctl_arg_list(ctl, "scope", &scope_count);
	if (ctl_arg(ctl, "name") == NULL || scope_count == 0) {
		ctl_error(ctl, "missing --name or --scope");
		return NULL;
	}
	if (role != NULL && fa_role_parse(role) == FA_ROLE_NONE) {
		ctl_error(ctl, "invalid --role \"%.40s\"", role);
		return NULL;
	}
	if ((carrier != NULL && !ctl_check_id(ctl, "carrier id", carrier)) ||
	    (days_text != NULL &&
	     !ctl_parse_long(ctl, "--expires-days", days_text, 1,
	                     CTL_MAX_KEY_DAYS, &days)))
		return NULL;
	body = cJSON_CreateObject();
	array = cJSON_AddArrayToObject(body, "scopes");
	if (body == NULL || array == NULL ||
	    !ctl_add_string(body, "name", ctl_arg(ctl, "name")) ||
	    !ctl_add_string(body, "role", role) ||
	    !ctl_add_string(body, "carrier", carrier) ||
	    (days > 0 && cJSON_AddNumberToObject(body, "expires_in",
	                                         (double)days * 86400) == NULL))
		goto fail;
	for (int i = 0; i < scope_count; i++) {
		if (!cJSON_AddItemToArray(array, cJSON_CreateString(scopes[i])))
			goto fail;
	}
	return body;
fail:
	ctl_error(ctl, "out of memory");
	cJSON_Delete(body);
	return NULL;
}

static int api_keys_create(struct ctl *ctl, const struct ctl_args *args)
{
	cJSON *body = NULL;
	cJSON *json = NULL;
	const char *key;
	int status = CTL_EXIT_FAILURE;

	(void)args;
	body = api_key_body(ctl);
	if (body == NULL)
		return CTL_EXIT_USAGE;
	if (!ctl_call(ctl, "POST", "/v1/api-keys", body, CTL_AUTH_REQUIRED,
	              &json))
		goto out;
	status = CTL_EXIT_OK;
	if (ctl->settings.json) {
		ctl_print_json(json);
		goto out;
	}
	key = ctl_json_str(json, "key");
	ctl_print_object(json, (const char *const[]){
	                               "id", "name", "role", "carrier",
	                               "scopes", "expires_at", "key", NULL});
	if (key != NULL)
		printf("The key is shown only now; store it in a secret "
		       "store.\n");
out:
	ctl_free_json_secret(json);
	cJSON_Delete(body);
	return status;
}

static int api_keys_list(struct ctl *ctl, const struct ctl_args *args)
{
	const char *pairs[] = {"limit", ctl_arg(ctl, "limit"), "after",
	                       ctl_arg(ctl, "after"), NULL};
	char path[400];

	(void)args;
	if (!ctl_build_query(path, sizeof(path), "/v1/api-keys", pairs)) {
		ctl_error(ctl, "query too long");
		return CTL_EXIT_USAGE;
	}
	return ctl_list(ctl, path, api_key_columns);
}

static int api_keys_revoke(struct ctl *ctl, const struct ctl_args *args)
{
	cJSON *json = NULL;
	char path[128];
	char message[160];

	if (!ctl_object_path(ctl, path, sizeof(path), "/v1/api-keys",
	                     "API key id", args->positional[0], ""))
		return CTL_EXIT_USAGE;
	if (!ctl_call(ctl, "DELETE", path, NULL, CTL_AUTH_REQUIRED, &json))
		return CTL_EXIT_FAILURE;
	snprintf(message, sizeof(message), "revoked API key %s",
	         args->positional[0]);
	return ctl_finish(ctl, json, message, NULL);
}

static const struct ctl_option create_options[] = {
        {"name", "TEXT",
         "what the key is for, 1 to 200 characters "
         "(required)"},
        {"role", "ROLE",
         "role the key acts with, for example dispatcher; your own role or "
         "one below it (default: your role)"},
        {"carrier", "ID",
         "carrier the key is limited to; required for carrier roles "
         "(default: your carrier)"},
        {"scope", "SCOPE",
         "scope the key may use, for example devices:write, or * for every "
         "scope; give it once per scope, at least once"},
        {"expires-days", "DAYS",
         "days until the key expires, 1 to 365 (default 90)"},
        {NULL, NULL, NULL},
};

static const struct ctl_option list_options[] = {
        {"limit", "N", "at most N keys per page"},
        {"after", "CURSOR", "continue after this cursor"},
        {NULL, NULL, NULL},
};

static const struct ctl_command api_keys_commands[] = {
        {"create", NULL, 0, 0,
         "Create an API key for a service and print the key once.", NULL,
         create_options, api_keys_create},
        {"list", NULL, 0, 0, "List API keys (never the keys themselves).", NULL,
         list_options, api_keys_list},
        {"revoke", "KEY_ID", 1, 1, "Revoke an API key.", NULL, NULL,
         api_keys_revoke},
        {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};

const struct ctl_group ctl_group_api_keys = {
        "api-keys", "Create, list and revoke service API keys.",
        api_keys_commands};

/* --- signing keys --- */

static const struct ctl_column signing_key_columns[] = {
        {"KID", "kid"},
        {"ALG", "alg"},
        {"STATUS", "status"},
        {"CREATED", "created_at"},
        {"PUBLISHED UNTIL", "publish_until"},
        {NULL, NULL},
};

static int signing_keys_rotate(struct ctl *ctl, const struct ctl_args *args)
{
	const char *alg = ctl_arg(ctl, "alg");
	cJSON *body = NULL;
	cJSON *json = NULL;
	int status = CTL_EXIT_FAILURE;

	(void)args;
	if (alg != NULL && strcmp(alg, "RS256") != 0 &&
	    strcmp(alg, "ES256") != 0) {
		ctl_error(ctl, "invalid --alg: expected RS256 or ES256");
		return CTL_EXIT_USAGE;
	}
	if (alg != NULL) {
		body = cJSON_CreateObject();
		if (body == NULL || !ctl_add_string(body, "alg", alg)) {
			ctl_error(ctl, "out of memory");
			goto out;
		}
	}
	if (!ctl_call(ctl, "POST", "/v1/signing-keys/rotate", body,
	              CTL_AUTH_REQUIRED, &json))
		goto out;
	status = ctl_finish(ctl, json,
	                    "rotated the signing key; the previous key stays "
	                    "published until its tokens expire",
	                    NULL);
out:
	cJSON_Delete(body);
	return status;
}

static int signing_keys_list(struct ctl *ctl, const struct ctl_args *args)
{
	(void)args;
	return ctl_list(ctl, "/v1/signing-keys", signing_key_columns);
}

static const struct ctl_option rotate_options[] = {
        {"alg", "ALG",
         "algorithm of the new key: RS256 or ES256 (default: "
         "the current key's)"},
        {NULL, NULL, NULL},
};

static const struct ctl_command signing_keys_commands[] = {
        {"rotate", NULL, 0, 0,
         "Generate a new token-signing key and make it current.", NULL,
         rotate_options, signing_keys_rotate},
        {"list", NULL, 0, 0, "List signing keys and their status.", NULL, NULL,
         signing_keys_list},
        {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};

const struct ctl_group ctl_group_signing_keys = {
        "signing-keys", "Rotate and list the access-token signing keys.",
        signing_keys_commands};
