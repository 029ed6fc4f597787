/* "devices" command group: provisioning, enrollment and revocation. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"

#define CTL_MAX_PEM 65536 /* bytes in a CSR file */

static const char *const device_fields[] = {
        "device_id",  "carrier",       "kind",       "label",
        "status",     "created_by",    "created_at", "enrolled_at",
        "revoked_at", "revoke_reason", NULL};

static const struct ctl_column device_columns[] = {
        {"ID", "device_id"},  {"CARRIER", "carrier"}, {"KIND", "kind"},
        {"STATUS", "status"}, {"LABEL", "label"},     {"CREATED", "created_at"},
        {NULL, NULL},
};

static int devices_provision(struct ctl *ctl, const struct ctl_args *args)
{
	const char *carrier = ctl_arg(ctl, "carrier");
	const char *kind = ctl_arg(ctl, "kind");
	cJSON *body = NULL;
	cJSON *json = NULL;
	int status = CTL_EXIT_FAILURE;

	(void)args;
	if (kind == NULL) {
		ctl_error(ctl, "missing --kind (truck or phone)");
		return CTL_EXIT_USAGE;
	}
	if (carrier != NULL && !ctl_check_id(ctl, "carrier id", carrier))
		return CTL_EXIT_USAGE;
	if (strcmp(kind, "truck") != 0 && strcmp(kind, "phone") != 0) {
		ctl_error(ctl, "invalid --kind: expected truck or phone");
		return CTL_EXIT_USAGE;
	}
	body = cJSON_CreateObject();
	if (body == NULL || !ctl_add_string(body, "carrier", carrier) ||
	    !ctl_add_string(body, "kind", kind) ||
	    !ctl_add_string(body, "label", ctl_arg(ctl, "label"))) {
		ctl_error(ctl, "out of memory");
		goto out;
	}
	if (!ctl_call(ctl, "POST", "/v1/devices", body, CTL_AUTH_REQUIRED,
	              &json))
		goto out;
	status = CTL_EXIT_OK;
	if (ctl->settings.json) {
		ctl_print_json(json);
		goto out;
	}
	ctl_print_object(json,
	                 (const char *const[]){"device_id", "enrollment_code",
	                                       "expires_at", NULL});
	printf("Give the enrollment code to the device; it works once. Enroll "
	       "with: fleetauthctl devices enroll --code-file FILE --csr "
	       "CSR --out CERT\n");
out:
	ctl_free_json_secret(json);
	cJSON_Delete(body);
	return status;
}

/* Reads a whole PEM file of at most CTL_MAX_PEM bytes. */
static char *read_pem(struct ctl *ctl, const char *path)
{
	FILE *fp = fopen(path, "re");
	char *text = NULL;
	size_t len;

	if (fp == NULL) {
		ctl_error(ctl, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	text = calloc(1, CTL_MAX_PEM + 1);
	if (text == NULL) {
		ctl_error(ctl, "out of memory");
		goto out;
	}
	len = fread(text, 1, CTL_MAX_PEM + 1, fp);
	if (len > CTL_MAX_PEM || ferror(fp)) {
		ctl_error(ctl, "%s: %s", path,
		          len > CTL_MAX_PEM ? "larger than 64 KiB"
		                            : "read failed");
		free(text);
		text = NULL;
		goto out;
	}
	if (strstr(text, "-----BEGIN CERTIFICATE REQUEST-----") == NULL) {
		ctl_error(ctl,
		          "%s is not a PEM certificate request (expected "
		          "-----BEGIN CERTIFICATE REQUEST-----)",
		          path);
		free(text);
		text = NULL;
	}
out:
	fclose(fp);
	return text;
}

/* Writes text to path with mode 0644 through a temporary file. */
static bool write_public_file(struct ctl *ctl, const char *path,
                              const char *text)
{
	char temp[4096];
	size_t len = strlen(text);
	bool ok;
	int fd;

	if (snprintf(temp, sizeof(temp), "%s.XXXXXX", path) >=
	    (int)sizeof(temp)) {
		ctl_error(ctl, "path too long: %s", path);
		return false;
	}
	fd = mkstemp(temp);
	if (fd < 0) {
		ctl_error(ctl, "cannot create a file next to %s: %s", path,
		          strerror(errno));
		return false;
	}
	ok = fchmod(fd, 0644) == 0 && write(fd, text, len) == (ssize_t)len &&
	     fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (ok && rename(temp, path) != 0)
		ok = false;
	if (!ok) {
		ctl_error(ctl, "cannot write %s: %s", path, strerror(errno));
		unlink(temp);
	}
	return ok;
}

/* Joins the ca_chain member (an array of PEM strings or one string). */
static char *chain_text(const cJSON *json)
{
	const cJSON *chain = cJSON_GetObjectItemCaseSensitive(json, "ca_chain");
	const cJSON *item;
	size_t size = 1;
	size_t used = 0;
	char *text;

	if (cJSON_IsString(chain))
		return strdup(chain->valuestring);
	cJSON_ArrayForEach(item, chain)
	{
		if (cJSON_IsString(item))
			size += strlen(item->valuestring) + 1;
	}
	text = calloc(1, size);
	if (text == NULL)
		return NULL;
	cJSON_ArrayForEach(item, chain)
	{
		size_t len;

		if (!cJSON_IsString(item))
			continue;
		/* size has room for each string, a newline after each one, and
		 * the terminator. */
		len = strlen(item->valuestring);
		memcpy(text + used, item->valuestring, len);
		used += len;
		if (used > 0 && text[used - 1] != '\n')
			text[used++] = '\n';
	}
	text[used] = '\0';
	return text;
}

static bool read_enrollment_code(struct ctl *ctl, char **code)
{
	const char *code_option = ctl_arg(ctl, "code");
	const char *file = ctl_arg(ctl, "code-file");
	char err[300];

	*code = NULL;
	if ((code_option == NULL) == (file == NULL)) {
		ctl_error(ctl, "pass exactly one of --code and --code-file");
		return false;
	}
	if (code_option != NULL) {
		*code = strdup(code_option);
		if (*code == NULL)
			ctl_error(ctl, "out of memory");
		return *code != NULL;
	}
	if (ctl_read_secret_file(file, code, err, sizeof(err)) != FA_OK) {
		ctl_error(ctl, "enrollment code: %s", err);
		return false;
	}
	return true;
}

static bool save_certificates(struct ctl *ctl, const cJSON *json)
{
	const char *certificate = ctl_json_str(json, "certificate");
	const char *chain_out = ctl_arg(ctl, "chain-out");
	char *chain = NULL;
	bool ok;

	if (certificate == NULL) {
		ctl_error(ctl, "enrollment response has no certificate");
		return false;
	}
	if (!write_public_file(ctl, ctl_arg(ctl, "out"), certificate))
		return false;
	if (chain_out == NULL)
		return true;
	chain = chain_text(json);
	ok = chain != NULL && write_public_file(ctl, chain_out, chain);
	free(chain);
	return ok;
}

static int devices_enroll(struct ctl *ctl, const struct ctl_args *args)
{
	const char *csr_path = ctl_arg(ctl, "csr");
	const char *out_path = ctl_arg(ctl, "out");
	char *code = NULL;
	char *csr = NULL;
	cJSON *body = NULL;
	cJSON *json = NULL;
	int status = CTL_EXIT_FAILURE;

	(void)args;
	if (csr_path == NULL || out_path == NULL) {
		ctl_error(ctl, "missing --csr or --out");
		return CTL_EXIT_USAGE;
	}
	if (!read_enrollment_code(ctl, &code))
		goto out;
	csr = read_pem(ctl, csr_path);
	if (csr == NULL)
		goto out;
	body = cJSON_CreateObject();
	if (body == NULL || !ctl_add_string(body, "enrollment_code", code) ||
	    !ctl_add_string(body, "csr", csr)) {
		ctl_error(ctl, "out of memory");
		goto out;
	}
	if (!ctl_call(ctl, "POST", "/v1/devices/enroll", body, CTL_AUTH_NONE,
	              &json))
		goto out;
	if (!save_certificates(ctl, json))
		goto out;
	status = CTL_EXIT_OK;
	if (ctl->settings.json) {
		ctl_print_json(json);
	} else {
		const char *device = ctl_json_str(json, "device_id");
		char clean[80];

		ctl_sanitize(device ? device : "-", clean, sizeof(clean));
		printf("enrolled device %s; certificate written to %s\n", clean,
		       out_path);
	}
out:
	cJSON_Delete(json);
	ctl_free_json_secret(body);
	free(csr);
	ctl_free_secret(code);
	return status;
}

static int devices_list(struct ctl *ctl, const struct ctl_args *args)
{
	const char *pairs[] = {"carrier", ctl_arg(ctl, "carrier"),
	                       "status",  ctl_arg(ctl, "status"),
	                       "limit",   ctl_arg(ctl, "limit"),
	                       "after",   ctl_arg(ctl, "after"),
	                       NULL};
	char path[600];

	(void)args;
	if (pairs[1] != NULL && !ctl_check_id(ctl, "carrier id", pairs[1]))
		return CTL_EXIT_USAGE;
	if (!ctl_build_query(path, sizeof(path), "/v1/devices", pairs)) {
		ctl_error(ctl, "query too long");
		return CTL_EXIT_USAGE;
	}
	return ctl_list(ctl, path, device_columns);
}

static int devices_show(struct ctl *ctl, const struct ctl_args *args)
{
	cJSON *json = NULL;
	char path[128];

	if (!ctl_object_path(ctl, path, sizeof(path), "/v1/devices",
	                     "device id", args->positional[0], ""))
		return CTL_EXIT_USAGE;
	if (!ctl_call(ctl, "GET", path, NULL, CTL_AUTH_REQUIRED, &json))
		return CTL_EXIT_FAILURE;
	return ctl_finish(ctl, json, NULL, device_fields);
}

static int devices_revoke(struct ctl *ctl, const struct ctl_args *args)
{
	const char *id = args->positional[0];
	const char *reason = ctl_arg(ctl, "reason");
	cJSON *body = NULL;
	cJSON *json = NULL;
	char path[128];
	char message[160];
	int status = CTL_EXIT_FAILURE;

	if (reason == NULL || reason[0] == '\0') {
		ctl_error(ctl, "missing --reason (for example --reason lost)");
		return CTL_EXIT_USAGE;
	}
	if (!ctl_object_path(ctl, path, sizeof(path), "/v1/devices",
	                     "device id", id, "/revoke"))
		return CTL_EXIT_USAGE;
	body = cJSON_CreateObject();
	if (body == NULL || !ctl_add_string(body, "reason", reason)) {
		ctl_error(ctl, "out of memory");
		goto out;
	}
	if (!ctl_call(ctl, "POST", path, body, CTL_AUTH_REQUIRED, &json))
		goto out;
	snprintf(message, sizeof(message),
	         "revoked device %s; brokers disconnect it within a second",
	         id);
	status = ctl_finish(ctl, json, message, NULL);
out:
	cJSON_Delete(body);
	return status;
}

static const struct ctl_option provision_options[] = {
        {"carrier", "ID",
         "carrier that owns the device; required for platform roles, "
         "default: the caller's carrier"},
        {"kind", "KIND", "truck or phone (required)"},
        {"label", "TEXT", "free text shown in listings, up to 200 characters"},
        {NULL, NULL, NULL},
};

static const struct ctl_option enroll_options[] = {
        {"code", "CODE",
         "one-time enrollment code from \"devices provision\"; visible in "
         "the process list, so prefer --code-file"},
        {"code-file", "FILE",
         "read the enrollment code from the first line of FILE (\"-\" for "
         "standard input)"},
        {"csr", "FILE",
         "PEM certificate signing request made with the device's key, for "
         "example by openssl req (required)"},
        {"out", "FILE",
         "write the issued certificate (PEM) to FILE, replacing it "
         "(required)"},
        {"chain-out", "FILE", "write the fleet CA chain (PEM) to FILE"},
        {NULL, NULL, NULL},
};

static const struct ctl_option list_options[] = {
        {"carrier", "ID", "only devices of this carrier"},
        {"status", "STATUS",
         "only devices in this status: pending, active, "
         "revoked"},
        {"limit", "N", "at most N devices per page"},
        {"after", "CURSOR", "continue after this cursor"},
        {NULL, NULL, NULL},
};

static const struct ctl_option revoke_options[] = {
        {"reason", "REASON",
         "why the device is revoked: lost, stolen, key_compromise, "
         "decommissioned, replaced or other (required, recorded in the "
         "audit trail)"},
        {NULL, NULL, NULL},
};

static const struct ctl_command devices_commands[] = {
        {"provision", NULL, 0, 0,
         "Create a device and print its one-time enrollment code.", NULL,
         provision_options, devices_provision},
        {"enroll", NULL, 0, 0,
         "Send an enrollment code and a CSR; write the issued certificate.",
         "Needs no credentials: the enrollment code authenticates the "
         "request.",
         enroll_options, devices_enroll},
        {"list", NULL, 0, 0, "List devices.", NULL, list_options, devices_list},
        {"show", "DEVICE_ID", 1, 1, "Show one device.", NULL, NULL,
         devices_show},
        {"revoke", "DEVICE_ID", 1, 1,
         "Revoke a device and its certificates; brokers disconnect it.", NULL,
         revoke_options, devices_revoke},
        {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};

const struct ctl_group ctl_group_devices = {
        "devices", "Provision, enroll, list and revoke trucks and phones.",
        devices_commands};
