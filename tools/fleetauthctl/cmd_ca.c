/* "ca" command group: read the fleet CA certificates that brokers and
 * devices trust. Creating and rotating the CA needs the key-encryption key,
 * so it is the server-side command "fleetauthd ca init", not an HTTP call. */
#include <stdio.h>

#include "ctl.h"

/* Prints the current CA certificate of GET /v1/ca in PEM, or the JSON reply
 * with --json. */
static int ca_show(struct ctl *ctl, const struct ctl_args *args)
{
	cJSON *json = NULL;
	const char *pem;

	(void)args;
	if (!ctl_call(ctl, "GET", "/v1/ca", NULL, CTL_AUTH_NONE, &json))
		return CTL_EXIT_FAILURE;
	if (ctl->settings.json) {
		ctl_print_json(json);
		cJSON_Delete(json);
		return CTL_EXIT_OK;
	}
	pem = ctl_json_str(json, "certificate");
	if (pem == NULL) {
		ctl_error(ctl, "response from %s has no \"certificate\"",
		          ctl->settings.url);
		cJSON_Delete(json);
		return CTL_EXIT_FAILURE;
	}
	fputs(pem, stdout);
	cJSON_Delete(json);
	return CTL_EXIT_OK;
}

static const struct ctl_command ca_commands[] = {
        {"show", NULL, 0, 0, "Print the current fleet CA certificate in PEM.",
         "No login is needed. A broker's cafile needs the previous CA "
         "certificate as well during a CA rotation: write both with the "
         "server-side command \"fleetauthd ca export\".",
         NULL, ca_show},
        {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};

const struct ctl_group ctl_group_ca = {
        "ca", "Show the current fleet CA certificate.", ca_commands};
