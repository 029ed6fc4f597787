/* Helpers shared by the command handlers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "fa_crypto.h"

const struct ctl_group *const ctl_groups[] = {
        &ctl_group_login,
        &ctl_group_logout,
        &ctl_group_refresh,
        &ctl_group_totp,
        &ctl_group_users,
        &ctl_group_carriers,
        &ctl_group_devices,
        &ctl_group_loads,
        &ctl_group_api_keys,
        &ctl_group_signing_keys,
        &ctl_group_ca,
        &ctl_group_audit,
        &ctl_group_status,
        NULL,
};

int ctl_finish(struct ctl *ctl, cJSON *json, const char *message,
               const char *const *names)
{
	if (json == NULL)
		return CTL_EXIT_FAILURE;
	if (ctl->settings.json) {
		ctl_print_json(json);
	} else {
		if (message != NULL)
			printf("%s\n", message);
		if (names != NULL)
			ctl_print_object(json, names);
	}
	cJSON_Delete(json);
	return CTL_EXIT_OK;
}

int ctl_list(struct ctl *ctl, const char *path,
             const struct ctl_column *columns)
{
	cJSON *json = NULL;
	const cJSON *items;
	const char *next;
	char clean[200];

	if (!ctl_call(ctl, "GET", path, NULL, CTL_AUTH_REQUIRED, &json))
		return CTL_EXIT_FAILURE;
	if (ctl->settings.json) {
		ctl_print_json(json);
		cJSON_Delete(json);
		return CTL_EXIT_OK;
	}
	items = ctl_items(json);
	if (items == NULL) {
		ctl_error(ctl, "response from %s has no \"items\" list",
		          ctl->settings.url);
		cJSON_Delete(json);
		return CTL_EXIT_FAILURE;
	}
	ctl_print_table(items, columns);
	next = ctl_json_str(json, "next");
	if (next != NULL && next[0] != '\0') {
		ctl_sanitize(next, clean, sizeof(clean));
		fprintf(stderr, "more results: repeat with --after %s\n",
		        clean);
	}
	cJSON_Delete(json);
	return CTL_EXIT_OK;
}

bool ctl_read_password(struct ctl *ctl, const char *file, bool confirm,
                       char **out)
{
	char err[300];
	char *again = NULL;

	*out = NULL;
	if (file != NULL) {
		if (ctl_read_secret_file(file, out, err, sizeof(err)) !=
		    FA_OK) {
			ctl_error(ctl, "password: %s", err);
			return false;
		}
		return true;
	}
	if (ctl_prompt_secret("Password", out, err, sizeof(err)) != FA_OK) {
		ctl_error(ctl, "%s", err);
		return false;
	}
	if (!confirm)
		return true;
	if (ctl_prompt_secret("Repeat password", &again, err, sizeof(err)) !=
	    FA_OK) {
		ctl_error(ctl, "%s", err);
		ctl_free_secret(*out);
		*out = NULL;
		return false;
	}
	if (strcmp(*out, again) != 0) {
		ctl_error(ctl, "the two passwords differ; nothing was changed");
		ctl_free_secret(*out);
		*out = NULL;
	}
	ctl_free_secret(again);
	return *out != NULL;
}

bool ctl_add_string(cJSON *object, const char *name, const char *value)
{
	if (value == NULL)
		return true;
	return cJSON_AddStringToObject(object, name, value) != NULL;
}

bool ctl_object_path(struct ctl *ctl, char *out, size_t out_size,
                     const char *prefix, const char *what, const char *id,
                     const char *suffix)
{
	int len;

	size_t kind_len = strlen(what);

	if (!ctl_check_id(ctl, what, id))
		return false;
	/* "user id" names the kind "user". */
	if (kind_len > 3 && strcmp(what + kind_len - 3, " id") == 0)
		kind_len -= 3;
	snprintf(ctl->object, sizeof(ctl->object), "%.*s \"%s\"",
	         (int)kind_len, what, id);
	len = snprintf(out, out_size, "%s/%s%s", prefix, id, suffix);
	return len > 0 && (size_t)len < out_size;
}

/* NOLINTNEXTLINE(misc-no-recursion): cJSON stops parsing at 1000 levels. */
static void wipe_strings(cJSON *json)
{
	cJSON *item;

	if (cJSON_IsString(json) && json->valuestring != NULL)
		fa_wipe(json->valuestring, strlen(json->valuestring));
	cJSON_ArrayForEach(item, json)
	{
		wipe_strings(item);
	}
}

void ctl_free_json_secret(cJSON *json)
{
	if (json == NULL)
		return;
	wipe_strings(json);
	cJSON_Delete(json);
}
