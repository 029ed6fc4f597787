/* "login", "logout", "refresh" and "totp": logins and the credentials
 * file. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

#define CTL_REFRESH_MARGIN 30 /* seconds before expiry to renew */

/*
 * Writes url, user and the tokens of a login response to the credentials
 * file with mode 0600. Returns false after printing an error.
 */
static bool save_login(struct ctl *ctl, const char *user, const cJSON *tokens)
{
	const char *access = ctl_json_str(tokens, "access_token");
	const char *refresh = ctl_json_str(tokens, "refresh_token");
	const cJSON *expires_in =
	        cJSON_GetObjectItemCaseSensitive(tokens, "expires_in");
	char expires_at[32];
	char err[512];

	if (access == NULL || refresh == NULL || !cJSON_IsNumber(expires_in)) {
		ctl_error(ctl, "login response lacks access_token, "
		               "refresh_token or expires_in");
		return false;
	}
	if (ctl->settings.credentials_path == NULL) {
		ctl_error(ctl, "no credentials file: HOME is not set; pass "
		               "--credentials FILE");
		return false;
	}
	snprintf(expires_at, sizeof(expires_at), "%lld",
	         (long long)time(NULL) + (long long)expires_in->valuedouble);
	const char *pairs[] = {"url",
	                       ctl->settings.url,
	                       "user",
	                       user ? user : "",
	                       "access_token",
	                       access,
	                       "refresh_token",
	                       refresh,
	                       "expires_at",
	                       expires_at,
	                       NULL};
	if (ctl_write_private_file(ctl->settings.credentials_path, pairs, err,
	                           sizeof(err)) != FA_OK) {
		ctl_error(ctl, "%s", err);
		return false;
	}
	return true;
}

/* Reads a TOTP code from --totp-file, or prompts for it. */
static bool read_code(struct ctl *ctl, char **out)
{
	const char *file = ctl_arg(ctl, "totp-file");
	char err[300];
	fa_result result;

	if (file != NULL)
		result = ctl_read_secret_file(file, out, err, sizeof(err));
	else
		result = ctl_prompt_secret("TOTP code", out, err, sizeof(err));
	if (result != FA_OK) {
		ctl_error(ctl, "TOTP code: %s", err);
		return false;
	}
	return true;
}

static bool valid_code(const char *code)
{
	size_t len = strlen(code);

	if (len < 6 || len > 8)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)code[i]))
			return false;
	}
	return true;
}

/* Sends a TOTP code for the MFA challenge of a login response; *tokens is
 * replaced by the token response. */
static bool answer_mfa(struct ctl *ctl, cJSON **tokens)
{
	const char *mfa_token = ctl_json_str(*tokens, "mfa_token");
	const char *code_option = ctl_arg(ctl, "totp");
	char *code = NULL;
	cJSON *body = NULL;
	cJSON *json = NULL;
	bool ok = false;

	if (mfa_token == NULL) {
		ctl_error(ctl, "login response asks for MFA but has no "
		               "mfa_token");
		return false;
	}
	if (code_option != NULL)
		code = strdup(code_option);
	else if (!read_code(ctl, &code))
		return false;
	if (code == NULL) {
		ctl_error(ctl, "out of memory");
		goto out;
	}
	if (!valid_code(code)) {
		ctl_error(ctl, "invalid TOTP code: expected 6 to 8 digits");
		goto out;
	}
	body = cJSON_CreateObject();
	if (body == NULL || !ctl_add_string(body, "mfa_token", mfa_token) ||
	    !ctl_add_string(body, "code", code)) {
		ctl_error(ctl, "out of memory");
		goto out;
	}
	ok = ctl_call(ctl, "POST", "/v1/auth/mfa/totp", body, CTL_AUTH_NONE,
	              &json);
	if (ok) {
		ctl_free_json_secret(*tokens);
		*tokens = json;
	}
out:
	ctl_free_json_secret(body);
	ctl_free_secret(code);
	return ok;
}

static int login_run(struct ctl *ctl, const struct ctl_args *args)
{
	const char *user = args->positional[0];
	char *password = NULL;
	cJSON *body = NULL;
	cJSON *json = NULL;
	const cJSON *mfa;
	int status = CTL_EXIT_FAILURE;

	if (!ctl_check_id(ctl, "user name", user))
		return CTL_EXIT_USAGE;
	if (!ctl_read_password(ctl, ctl_arg(ctl, "password-file"), false,
	                       &password))
		goto out;
	body = cJSON_CreateObject();
	if (body == NULL || !ctl_add_string(body, "username", user) ||
	    !ctl_add_string(body, "password", password)) {
		ctl_error(ctl, "out of memory");
		goto out;
	}
	if (!ctl_call(ctl, "POST", "/v1/auth/login", body, CTL_AUTH_NONE,
	              &json))
		goto out;
	mfa = cJSON_GetObjectItemCaseSensitive(json, "mfa_required");
	if (mfa != NULL && !cJSON_IsFalse(mfa) && !answer_mfa(ctl, &json))
		goto out;
	if (ctl->settings.json) {
		ctl_print_json(json);
		status = CTL_EXIT_OK;
		goto out;
	}
	if (!save_login(ctl, user, json))
		goto out;
	printf("logged in as %s; tokens saved in %s\n", user,
	       ctl->settings.credentials_path);
	status = CTL_EXIT_OK;
out:
	ctl_free_json_secret(json);
	ctl_free_json_secret(body);
	ctl_free_secret(password);
	return status;
}

/* Sends refresh_token to /v1/auth/refresh; *tokens gets the new pair. */
static bool exchange_refresh(struct ctl *ctl, const char *refresh_token,
                             cJSON **tokens)
{
	cJSON *body = cJSON_CreateObject();
	bool ok = false;

	*tokens = NULL;
	if (body == NULL ||
	    !ctl_add_string(body, "refresh_token", refresh_token)) {
		ctl_error(ctl, "out of memory");
		goto out;
	}
	ok = ctl_call(ctl, "POST", "/v1/auth/refresh", body, CTL_AUTH_NONE,
	              tokens);
out:
	ctl_free_json_secret(body);
	return ok;
}

/* Replaces the settings' token with the new pair and saves it. */
static bool adopt_tokens(struct ctl *ctl, const cJSON *tokens)
{
	struct ctl_settings *settings = &ctl->settings;
	const char *access = ctl_json_str(tokens, "access_token");
	const char *refresh = ctl_json_str(tokens, "refresh_token");
	char *access_copy;
	char *refresh_copy;

	if (!save_login(ctl, settings->login_user, tokens))
		return false;
	access_copy = strdup(access);
	refresh_copy = strdup(refresh);
	if (access_copy == NULL || refresh_copy == NULL) {
		ctl_free_secret(access_copy);
		ctl_free_secret(refresh_copy);
		ctl_error(ctl, "out of memory");
		return false;
	}
	ctl_free_secret(settings->token);
	ctl_free_secret(settings->refresh_token);
	settings->token = access_copy;
	settings->refresh_token = refresh_copy;
	settings->expires_at = 0;
	return true;
}

fa_result ctl_login_refresh_if_expired(struct ctl *ctl, char *err,
                                       size_t err_size)
{
	struct ctl_settings *settings = &ctl->settings;
	cJSON *tokens = NULL;
	fa_result result = FA_OK;

	if (settings->token_source != CTL_CRED_LOGIN ||
	    settings->refresh_token == NULL || settings->expires_at == 0 ||
	    (long long)time(NULL) + CTL_REFRESH_MARGIN < settings->expires_at)
		return FA_OK;
	/* exchange_refresh prints its own error line; this one adds the
	 * advice. */
	if (!exchange_refresh(ctl, settings->refresh_token, &tokens) ||
	    !adopt_tokens(ctl, tokens)) {
		snprintf(err, err_size,
		         "the login in %s has expired and could not be "
		         "renewed; run \"fleetauthctl login\" again",
		         settings->credentials_path);
		result = FA_ERR_DENIED;
	}
	ctl_free_json_secret(tokens);
	return result;
}

static int refresh_run(struct ctl *ctl, const struct ctl_args *args)
{
	const char *file = ctl_arg(ctl, "refresh-token-file");
	char *refresh_token = NULL;
	cJSON *tokens = NULL;
	char err[300];
	int status = CTL_EXIT_FAILURE;

	(void)args;
	if (file != NULL && !ctl->settings.json) {
		ctl_error(ctl, "--refresh-token-file needs --json, which "
		               "prints the new tokens");
		return CTL_EXIT_USAGE;
	}
	if (file != NULL) {
		if (ctl_read_secret_file(file, &refresh_token, err,
		                         sizeof(err)) != FA_OK) {
			ctl_error(ctl, "refresh token: %s", err);
			return CTL_EXIT_FAILURE;
		}
	} else if (ctl->settings.refresh_token == NULL ||
	           ctl->settings.token_source != CTL_CRED_LOGIN) {
		ctl_error(ctl, "no refresh token: run \"fleetauthctl login\" "
		               "or pass --refresh-token-file");
		return CTL_EXIT_FAILURE;
	}
	if (!exchange_refresh(ctl,
	                      refresh_token ? refresh_token
	                                    : ctl->settings.refresh_token,
	                      &tokens))
		goto out;
	if (ctl->settings.json) {
		if (file == NULL && !adopt_tokens(ctl, tokens))
			goto out;
		ctl_print_json(tokens);
	} else {
		if (!adopt_tokens(ctl, tokens))
			goto out;
		printf("renewed the login; tokens saved in %s\n",
		       ctl->settings.credentials_path);
	}
	status = CTL_EXIT_OK;
out:
	ctl_free_json_secret(tokens);
	ctl_free_secret(refresh_token);
	return status;
}

static int logout_run(struct ctl *ctl, const struct ctl_args *args)
{
	struct ctl_settings *settings = &ctl->settings;
	cJSON *body = NULL;
	cJSON *json = NULL;
	int status = CTL_EXIT_FAILURE;

	(void)args;
	if (settings->token_source != CTL_CRED_LOGIN ||
	    settings->refresh_token == NULL) {
		ctl_error(ctl, "not logged in: no credentials file at %s",
		          settings->credentials_path
		                  ? settings->credentials_path
		                  : "(HOME not set)");
		return CTL_EXIT_FAILURE;
	}
	body = cJSON_CreateObject();
	if (body == NULL ||
	    !ctl_add_string(body, "refresh_token", settings->refresh_token)) {
		ctl_error(ctl, "out of memory");
		goto out;
	}
	if (!ctl_call(ctl, "POST", "/v1/auth/logout", body, CTL_AUTH_NONE,
	              &json))
		goto out;
	if (unlink(settings->credentials_path) != 0 && errno != ENOENT) {
		ctl_error(ctl, "logged out, but cannot remove %s: %s",
		          settings->credentials_path, strerror(errno));
		goto out;
	}
	if (!settings->json)
		printf("logged out; removed %s\n", settings->credentials_path);
	else
		ctl_print_json(json);
	status = CTL_EXIT_OK;
out:
	cJSON_Delete(json);
	ctl_free_json_secret(body);
	return status;
}

static const struct ctl_option login_options[] = {
        {"password-file", "FILE",
         "read the password from the first line of FILE (\"-\" for standard "
         "input); without it the password is prompted for"},
        {"totp", "CODE",
         "6-digit TOTP code for accounts with TOTP; visible in the process "
         "list, but valid for one 30-second step only"},
        {"totp-file", "FILE",
         "read the TOTP code from the first line of FILE (\"-\" for "
         "standard input); without --totp or --totp-file it is prompted "
         "for"},
        {NULL, NULL, NULL},
};

static const struct ctl_command login_commands[] = {
        {NULL, "USER_ID", 1, 1,
         "Log in with password and, when enrolled, TOTP.",
         "Saves the access and refresh tokens in the credentials file (mode "
         "0600), which later commands use when no other credential is set; "
         "an expired access token is renewed from the refresh token on the "
         "next command. With --json the token response is printed instead "
         "and nothing is saved.",
         login_options, login_run},
        {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};

const struct ctl_group ctl_group_login = {
        "login", "Log in and save tokens in the credentials file.",
        login_commands};

static const struct ctl_command logout_commands[] = {
        {NULL, NULL, 0, 0,
         "Revoke the saved login's refresh-token family and remove the "
         "credentials file.",
         NULL, NULL, logout_run},
        {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};

const struct ctl_group ctl_group_logout = {"logout", "End the saved login.",
                                           logout_commands};

static const struct ctl_option refresh_options[] = {
        {"refresh-token-file", "FILE",
         "exchange the refresh token in the first line of FILE (\"-\" for "
         "standard input) instead of the saved one; needs --json, which "
         "prints the new pair"},
        {NULL, NULL, NULL},
};

static const struct ctl_command refresh_commands[] = {
        {NULL, NULL, 0, 0,
         "Exchange a refresh token for a new access and refresh token.",
         "Each refresh token works once. Presenting one that was already "
         "exchanged revokes its whole login (reuse detection).",
         refresh_options, refresh_run},
        {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};

const struct ctl_group ctl_group_refresh = {
        "refresh", "Renew tokens with a refresh token.", refresh_commands};

/* --- totp --- */

static int totp_enroll(struct ctl *ctl, const struct ctl_args *args)
{
	cJSON *json = NULL;
	const char *secret;
	const char *uri;

	(void)args;
	if (!ctl_call(ctl, "POST", "/v1/mfa/totp/enroll", NULL,
	              CTL_AUTH_REQUIRED, &json))
		return CTL_EXIT_FAILURE;
	if (ctl->settings.json) {
		ctl_print_json(json);
		ctl_free_json_secret(json);
		return CTL_EXIT_OK;
	}
	secret = ctl_json_str(json, "secret");
	uri = ctl_json_str(json, "otpauth_uri");
	if (secret == NULL || uri == NULL) {
		ctl_error(ctl, "response lacks secret or otpauth_uri");
		ctl_free_json_secret(json);
		return CTL_EXIT_FAILURE;
	}
	/* The user asked for this one-time secret: print it once. */
	printf("otpauth URI: %s\nsecret:      %s\n", uri, secret);
	printf("Add it to an authenticator app, then run: fleetauthctl totp "
	       "confirm CODE\n");
	ctl_free_json_secret(json);
	return CTL_EXIT_OK;
}

static int totp_confirm(struct ctl *ctl, const struct ctl_args *args)
{
	const char *code = args->positional[0];
	cJSON *body = NULL;
	cJSON *json = NULL;
	int status = CTL_EXIT_FAILURE;

	if (!valid_code(code)) {
		ctl_error(ctl, "invalid TOTP code: expected 6 to 8 digits");
		return CTL_EXIT_USAGE;
	}
	body = cJSON_CreateObject();
	if (body == NULL || !ctl_add_string(body, "code", code)) {
		ctl_error(ctl, "out of memory");
		goto out;
	}
	if (!ctl_call(ctl, "POST", "/v1/mfa/totp/confirm", body,
	              CTL_AUTH_REQUIRED, &json))
		goto out;
	status = ctl_finish(ctl, json,
	                    "TOTP confirmed; logins now ask for a code", NULL);
out:
	ctl_free_json_secret(body);
	return status;
}

static const struct ctl_command totp_commands[] = {
        {"enroll", NULL, 0, 0,
         "Start TOTP enrollment for the logged-in user and print the secret "
         "and otpauth URI once.",
         "Run it with the user's own access token (after \"fleetauthctl "
         "login\" or with --token). TOTP is active only after \"totp "
         "confirm\".",
         NULL, totp_enroll},
        {"confirm", "CODE", 1, 1,
         "Confirm TOTP enrollment with a current code from the "
         "authenticator.",
         NULL, NULL, totp_confirm},
        {NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};

const struct ctl_group ctl_group_totp = {
        "totp", "Enroll the logged-in user in TOTP.", totp_commands};
