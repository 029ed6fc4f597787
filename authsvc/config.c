/* fleetauthd configuration: the option table, file and environment loading,
 * and the key-encryption keys named by the configuration. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "fa_config.h"
#include "forwarded.h"

#define OPT(name, type, def, min, max, help)                                   \
	{                                                                      \
#name, type, def, min, max,                                    \
		        offsetof(struct fa_service_config, name), help         \
	}

static struct fa_option options[] = {
        OPT(listen_address, FA_OPT_STRING, "127.0.0.1", 0, 0,
            "numeric IPv4 or IPv6 address the HTTP server binds to"),
        OPT(listen_port, FA_OPT_INT, "8080", 1, 65535,
            "TCP port of the HTTP server"),
        OPT(database_url, FA_OPT_STRING, NULL, 0, 0,
            "libpq connection string or postgresql:// URL (required)"),
        OPT(schema_dir, FA_OPT_STRING, FLEETAUTH_SCHEMA_DIR, 0, 0,
            "folder with the NNN_name.sql migrations"),
        OPT(kek_file, FA_OPT_STRING, "", 0, 0,
            "file with the current key-encryption key: 64 hex characters, "
            "mode 0600 or stricter (required by serve)"),
        OPT(kek_id, FA_OPT_STRING, "", 0, 0,
            "identifier stored next to secrets sealed with kek_file "
            "(required by serve)"),
        OPT(kek_previous, FA_OPT_STRING, "", 0, 0,
            "earlier keys still needed to open old secrets, as "
            "id:path,id:path"),
        OPT(issuer, FA_OPT_STRING, "fleetauth", 0, 0,
            "iss claim of access tokens"),
        OPT(audience, FA_OPT_STRING, "fleetauth-mqtt", 0, 0,
            "aud claim of access tokens"),
        OPT(access_token_ttl, FA_OPT_INT, "900", 60, 3600,
            "lifetime of access tokens in seconds"),
        OPT(refresh_token_days, FA_OPT_INT, "30", 7, 30,
            "lifetime of a refresh-token family in days"),
        OPT(bcrypt_cost, FA_OPT_INT, "12", 12, 31,
            "bcrypt cost factor of new password hashes (4 to 31 when "
            "FLEETAUTH_TEST_MODE=1)"),
        OPT(mfa_token_ttl, FA_OPT_INT, "300", 30, 900,
            "seconds between the password step and the MFA step of a login"),
        OPT(enrollment_code_ttl, FA_OPT_INT, "86400", 300, 2592000,
            "lifetime of a device enrollment code in seconds"),
        OPT(device_cert_days, FA_OPT_INT, "365", 1, 825,
            "validity of device certificates issued at enrollment and "
            "renewal, in days"),
        OPT(login_max_failures, FA_OPT_INT, "5", 1, 100,
            "failed logins per account or address before a lockout"),
        OPT(lockout_base, FA_OPT_INT, "30", 1, 86400,
            "first lockout in seconds, doubled on every further lockout"),
        OPT(worker_threads, FA_OPT_INT, "4", 1, 64,
            "HTTP worker threads, each with its own database connection"),
        OPT(max_body_bytes, FA_OPT_INT, "65536", 1024, 1048576,
            "largest accepted request body in bytes"),
        OPT(log_level, FA_OPT_STRING, "info", 0, 0,
            "debug, info, warning or error"),
        OPT(metrics_allow, FA_OPT_STRING, "127.0.0.1,::1", 0, 0,
            "client addresses allowed to read GET /metrics: numeric "
            "addresses separated by commas, or any"),
        OPT(trusted_proxies, FA_OPT_STRING, "", 0, 0,
            "reverse proxies whose X-Forwarded-For header names the client "
            "address: IP addresses or CIDR ranges separated by commas; "
            "empty trusts none"),
};

#define OPTION_COUNT (sizeof(options) / sizeof(options[0]))

void fa_config_print_help(void)
{
	size_t i;

	for (i = 0; i < OPTION_COUNT; i++) {
		const struct fa_option *opt = &options[i];

		printf("  %-20s %s", opt->name, opt->help);
		if (opt->default_value != NULL && opt->default_value[0] != '\0')
			printf(" [default %s]", opt->default_value);
		if (opt->type == FA_OPT_INT)
			printf(" [%lld..%lld]", opt->min, opt->max);
		printf("\n");
	}
}

/* Checks values that the table cannot express. */
static fa_result check_values(const struct fa_service_config *config, char *err,
                              size_t err_size)
{
	if (fa_log_parse_level(config->log_level) < 0) {
		snprintf(err, err_size,
		         "invalid log_level \"%s\": use debug, info, warning "
		         "or error",
		         config->log_level);
		return FA_ERR_INVALID;
	}
	if (config->listen_address[0] == '\0') {
		snprintf(err, err_size,
		         "invalid listen_address: set a numeric IP address "
		         "such as 127.0.0.1");
		return FA_ERR_INVALID;
	}
	if (config->issuer[0] == '\0' || config->audience[0] == '\0') {
		snprintf(err, err_size,
		         "issuer and audience must not be empty");
		return FA_ERR_INVALID;
	}
	return fa_proxy_list_check(config->trusted_proxies, err, err_size);
}

static fa_result load_one_kek(struct fa_kek *kek, const char *id,
                              const char *path, const char *option, char *err,
                              size_t err_size)
{
	fa_result result;

	if (!fa_id_valid(id)) {
		snprintf(err, err_size,
		         "invalid key id \"%s\" in %s: use 1 to 64 characters "
		         "of A-Z, a-z, 0-9, '_' and '-'",
		         id, option);
		return FA_ERR_INVALID;
	}
	result = fa_kek_load(path, id, kek);
	if (result == FA_ERR_DENIED) {
		snprintf(err, err_size,
		         "key file %s (%s) is readable by group or others: "
		         "run chmod 600 %s",
		         path, option, path);
	} else if (result == FA_ERR_NOT_FOUND || result == FA_ERR_IO) {
		snprintf(err, err_size,
		         "cannot read key file %s (%s): %s; check the path "
		         "and its permissions",
		         path, option, fa_result_str(result));
	} else if (result != FA_OK) {
		snprintf(err, err_size,
		         "invalid key file %s (%s): it must contain exactly "
		         "64 hex characters",
		         path, option);
	}
	return result;
}

/* Parses kek_previous ("id:path,id:path") and loads each key. */
static fa_result load_previous_keks(struct fa_service *svc, char *err,
                                    size_t err_size)
{
	fa_result result = FA_OK;
	char *list = NULL;
	char *entry;
	char *save = NULL;

	if (svc->config.kek_previous == NULL ||
	    svc->config.kek_previous[0] == '\0')
		return FA_OK;
	list = strdup(svc->config.kek_previous);
	if (list == NULL)
		return FA_ERR_NOMEM;
	for (entry = strtok_r(list, ",", &save); entry != NULL;
	     entry = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(entry, ':');

		if (colon == NULL || colon[1] == '\0') {
			snprintf(err, err_size,
			         "invalid kek_previous entry \"%s\": use "
			         "id:path",
			         entry);
			result = FA_ERR_INVALID;
			goto out;
		}
		if (svc->kek_previous_count == FA_KEK_PREVIOUS_MAX) {
			snprintf(err, err_size,
			         "kek_previous lists more than %d keys",
			         FA_KEK_PREVIOUS_MAX);
			result = FA_ERR_TOO_LARGE;
			goto out;
		}
		*colon = '\0';
		result = load_one_kek(
		        &svc->kek_previous[svc->kek_previous_count], entry,
		        colon + 1, "kek_previous", err, err_size);
		if (result != FA_OK)
			goto out;
		svc->kek_previous_count++;
	}
out:
	free(list);
	return result;
}

static fa_result load_keks(struct fa_service *svc, char *err, size_t err_size)
{
	fa_result result;

	if (svc->config.kek_file[0] == '\0' || svc->config.kek_id[0] == '\0') {
		snprintf(err, err_size,
		         "missing option %s: set kek_file and kek_id in the "
		         "configuration file or FLEETAUTHD_KEK_FILE and "
		         "FLEETAUTHD_KEK_ID",
		         svc->config.kek_file[0] == '\0' ? "kek_file"
		                                         : "kek_id");
		return FA_ERR_INVALID;
	}
	result = load_one_kek(&svc->kek, svc->config.kek_id,
	                      svc->config.kek_file, "kek_file", err, err_size);
	if (result != FA_OK)
		return result;
	return load_previous_keks(svc, err, err_size);
}

/* Test mode allows cheap bcrypt costs so that test suites run quickly. */
static void set_bcrypt_minimum(long long minimum)
{
	size_t i;

	for (i = 0; i < OPTION_COUNT; i++) {
		if (strcmp(options[i].name, "bcrypt_cost") == 0)
			options[i].min = minimum;
	}
}

static bool file_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

fa_result fa_service_init(struct fa_service *svc, const char *path,
                          bool need_kek, char *err, size_t err_size)
{
	fa_result result;
	const char *test_mode = getenv("FLEETAUTH_TEST_MODE");

	memset(svc, 0, sizeof(*svc));
	pthread_rwlock_init(&svc->keyring_lock, NULL);
	pthread_mutex_init(&svc->module_lock, NULL);
	svc->test_mode = test_mode != NULL && strcmp(test_mode, "1") == 0;
	set_bcrypt_minimum(svc->test_mode ? 4 : 12);

	result = fa_config_defaults(options, OPTION_COUNT, &svc->config);
	if (result != FA_OK) {
		snprintf(err, err_size, "cannot apply defaults: %s",
		         fa_result_str(result));
		return result;
	}
	if (path == NULL && file_exists(FA_DEFAULT_CONFIG_PATH))
		path = FA_DEFAULT_CONFIG_PATH;
	svc->config_path = path;
	if (path != NULL) {
		result = fa_config_load_file(options, OPTION_COUNT,
		                             &svc->config, path, err, err_size);
		if (result != FA_OK)
			return result;
	}
	result = fa_config_load_env(options, OPTION_COUNT, &svc->config,
	                            "FLEETAUTHD_", err, err_size);
	if (result != FA_OK)
		return result;
	result = fa_config_check_required(options, OPTION_COUNT, &svc->config,
	                                  err, err_size);
	if (result != FA_OK)
		return result;
	result = check_values(&svc->config, err, err_size);
	if (result != FA_OK)
		return result;
	fa_log_set_level(fa_log_parse_level(svc->config.log_level));
	if (need_kek)
		return load_keks(svc, err, err_size);
	return FA_OK;
}

void fa_service_cleanup(struct fa_service *svc)
{
	if (svc->auth_state != NULL && svc->auth_state_free != NULL)
		svc->auth_state_free(svc->auth_state);
	if (svc->device_state != NULL && svc->device_state_free != NULL)
		svc->device_state_free(svc->device_state);
	fa_keyring_cleanup(svc);
	fa_wipe(&svc->kek, sizeof(svc->kek));
	fa_wipe(svc->kek_previous, sizeof(svc->kek_previous));
	fa_config_free(options, OPTION_COUNT, &svc->config);
	pthread_rwlock_destroy(&svc->keyring_lock);
	pthread_mutex_destroy(&svc->module_lock);
}

const struct fa_kek *fa_service_kek(const struct fa_service *svc,
                                    const char *kek_id)
{
	size_t i;

	if (kek_id == NULL || kek_id[0] == '\0')
		return NULL;
	if (svc->kek.id[0] != '\0' && strcmp(svc->kek.id, kek_id) == 0)
		return &svc->kek;
	for (i = 0; i < svc->kek_previous_count; i++) {
		if (strcmp(svc->kek_previous[i].id, kek_id) == 0)
			return &svc->kek_previous[i];
	}
	return NULL;
}

int64_t fa_now(void)
{
	return (int64_t)time(NULL);
}
