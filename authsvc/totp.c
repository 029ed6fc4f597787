#include "totp.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <liboath/oath.h>

#include "fa_crypto.h"

#define TOTP_WINDOW 1

static pthread_once_t oath_once = PTHREAD_ONCE_INIT;
static int oath_status = OATH_OK;

static void init_oath(void)
{
	oath_status = oath_init();
}

static bool oath_ready(void)
{
	pthread_once(&oath_once, init_oath);
	return oath_status == OATH_OK;
}

fa_result fa_totp_new_seed(uint8_t seed[FA_TOTP_SEED_LEN],
                           char base32[FA_TOTP_BASE32_MAX])
{
	char *encoded = NULL;
	size_t encoded_len = 0;
	fa_result result;

	if (!oath_ready())
		return FA_ERR_CRYPTO;
	result = fa_random_bytes(seed, FA_TOTP_SEED_LEN);
	if (result != FA_OK)
		goto out;
	if (oath_base32_encode((const char *)seed, FA_TOTP_SEED_LEN, &encoded,
	                       &encoded_len) != OATH_OK ||
	    encoded_len >= FA_TOTP_BASE32_MAX) {
		result = FA_ERR_CRYPTO;
		goto out;
	}
	memcpy(base32, encoded, encoded_len);
	base32[encoded_len] = '\0';
out:
	if (encoded != NULL) {
		fa_wipe(encoded, encoded_len);
		free(encoded);
	}
	return result;
}

/* Appends s to out (size size, at *pos) with RFC 3986 percent-encoding. */
static bool append_encoded(char *out, size_t size, size_t *pos, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		bool plain = (*p >= 'A' && *p <= 'Z') ||
		             (*p >= 'a' && *p <= 'z') ||
		             (*p >= '0' && *p <= '9') || *p == '-' ||
		             *p == '_' || *p == '.' || *p == '~';

		if (*pos + 4 > size)
			return false;
		if (plain) {
			out[(*pos)++] = (char)*p;
			continue;
		}
		out[(*pos)++] = '%';
		out[(*pos)++] = hex[*p >> 4];
		out[(*pos)++] = hex[*p & 0x0f];
	}
	out[*pos] = '\0';
	return true;
}

static bool append_plain(char *out, size_t size, size_t *pos, const char *s)
{
	size_t len = strlen(s);

	if (*pos + len + 1 > size)
		return false;
	memcpy(out + *pos, s, len + 1);
	*pos += len;
	return true;
}

fa_result fa_totp_uri(const char *issuer, const char *user, const char *base32,
                      char **uri_out)
{
	size_t size =
	        3 * (2 * strlen(issuer) + strlen(user)) + strlen(base32) + 128;
	size_t pos = 0;
	char *uri;
	bool ok;

	*uri_out = NULL;
	uri = malloc(size);
	if (uri == NULL)
		return FA_ERR_NOMEM;
	ok = append_plain(uri, size, &pos, "otpauth://totp/") &&
	     append_encoded(uri, size, &pos, issuer) &&
	     append_plain(uri, size, &pos, ":") &&
	     append_encoded(uri, size, &pos, user) &&
	     append_plain(uri, size, &pos, "?secret=") &&
	     append_plain(uri, size, &pos, base32) &&
	     append_plain(uri, size, &pos, "&issuer=") &&
	     append_encoded(uri, size, &pos, issuer) &&
	     append_plain(uri, size, &pos,
	                  "&algorithm=SHA1&digits=6&period=30");
	if (!ok) {
		fa_wipe(uri, size);
		free(uri);
		return FA_ERR_INVALID;
	}
	*uri_out = uri;
	return FA_OK;
}

static bool code_valid(const char *code)
{
	size_t i;

	for (i = 0; i < FA_TOTP_DIGITS; i++) {
		if (code[i] < '0' || code[i] > '9')
			return false;
	}
	return code[FA_TOTP_DIGITS] == '\0';
}

fa_result fa_totp_check(const uint8_t *seed, size_t seed_len, time_t now,
                        const char *code, int64_t last_step, int64_t *step_out)
{
	char expected[FA_TOTP_DIGITS + 1];
	int64_t current = (int64_t)now / FA_TOTP_STEP;
	int64_t matched = -1;
	int64_t step;

	*step_out = 0;
	if (code == NULL || !code_valid(code))
		return FA_ERR_INVALID;
	if (!oath_ready())
		return FA_ERR_CRYPTO;
	for (step = current - TOTP_WINDOW; step <= current + TOTP_WINDOW;
	     step++) {
		bool equal;

		if (oath_totp_generate((const char *)seed, seed_len,
		                       (time_t)(step * FA_TOTP_STEP),
		                       FA_TOTP_STEP, 0, FA_TOTP_DIGITS,
		                       expected) != OATH_OK) {
			fa_wipe(expected, sizeof(expected));
			return FA_ERR_CRYPTO;
		}
		equal = fa_ct_equal(expected, code, FA_TOTP_DIGITS);
		if (equal && step > last_step && matched < 0)
			matched = step;
	}
	fa_wipe(expected, sizeof(expected));
	if (matched < 0)
		return FA_ERR_DENIED;
	*step_out = matched;
	return FA_OK;
}

/* ------------------------------------------------------------------ */
/* Sealed seeds                                                        */
/* ------------------------------------------------------------------ */

#define TOTP_AAD_PREFIX "totp:"

fa_result fa_totp_seal_seed(const struct fa_service *svc, const char *user,
                            const uint8_t seed[FA_TOTP_SEED_LEN],
                            char **hex_out)
{
	char aad[sizeof(TOTP_AAD_PREFIX) + FA_ID_MAX];
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	fa_result result;

	*hex_out = NULL;
	snprintf(aad, sizeof(aad), "%s%s", TOTP_AAD_PREFIX, user);
	result = fa_seal(&svc->kek, seed, FA_TOTP_SEED_LEN, aad, &blob,
	                 &blob_len);
	if (result != FA_OK)
		return result;
	*hex_out = malloc(2 * blob_len + 3);
	if (*hex_out == NULL) {
		result = FA_ERR_NOMEM;
		goto out;
	}
	(*hex_out)[0] = '\\';
	(*hex_out)[1] = 'x';
	fa_hex_encode(blob, blob_len, *hex_out + 2);
out:
	free(blob);
	return result;
}

fa_result fa_totp_open_seed(const struct fa_service *svc, const char *user,
                            const char *kek_id, const char *sealed_text,
                            uint8_t seed[FA_TOTP_SEED_LEN])
{
	const struct fa_kek *kek = fa_service_kek(svc, kek_id);
	char aad[sizeof(TOTP_AAD_PREFIX) + FA_ID_MAX];
	unsigned char *blob = NULL;
	size_t blob_len = 0;
	uint8_t *plain = NULL;
	size_t plain_len = 0;
	fa_result result;

	if (kek == NULL)
		return FA_ERR_NOT_FOUND;
	blob = PQunescapeBytea((const unsigned char *)sealed_text, &blob_len);
	if (blob == NULL)
		return FA_ERR_NOMEM;
	snprintf(aad, sizeof(aad), "%s%s", TOTP_AAD_PREFIX, user);
	result = fa_open(kek, blob, blob_len, aad, &plain, &plain_len);
	PQfreemem(blob);
	if (result != FA_OK)
		return result;
	if (plain_len == FA_TOTP_SEED_LEN)
		memcpy(seed, plain, FA_TOTP_SEED_LEN);
	else
		result = FA_ERR_CRYPTO;
	fa_wipe(plain, plain_len);
	free(plain);
	return result;
}

/* ------------------------------------------------------------------ */
/* HTTP: enrollment                                                    */
/* ------------------------------------------------------------------ */

/* Only users (not API keys) have TOTP; replies 403 for anyone else. */
static bool require_user(struct fa_request *req)
{
	if (req->caller.kind == FA_CALLER_USER)
		return true;
	fa_audit(req, "mfa.totp.enroll", NULL, "denied", NULL);
	fa_reply_problem(req, 403, FA_PROBLEM_FORBIDDEN, "Forbidden",
	                 "TOTP belongs to users: authenticate with an access "
	                 "token, not an API key");
	return false;
}

/* Stores a new unconfirmed seed for user, replacing an unconfirmed one.
 * Returns FA_ERR_DENIED when TOTP is already confirmed. */
static fa_result store_seed(struct fa_request *req, const uint8_t *seed)
{
	const char *user = req->caller.id;
	char *sealed = NULL;
	PGresult *res = NULL;
	fa_result result;

	result = fa_totp_seal_seed(req->svc, user, seed, &sealed);
	if (result != FA_OK)
		return result;
	result = fa_db_exec_one(
	        req->db, &res,
	        "INSERT INTO user_totp (user_id, secret_enc, kek_id) VALUES "
	        "($1, $2::bytea, $3) ON CONFLICT (user_id) DO UPDATE SET "
	        "secret_enc = EXCLUDED.secret_enc, kek_id = EXCLUDED.kek_id, "
	        "last_step = 0, created_at = now() WHERE "
	        "user_totp.confirmed_at IS NULL",
	        3, (const char *[]){user, sealed, req->svc->kek.id});
	if (result == FA_ERR_NOT_FOUND)
		result = FA_ERR_DENIED;
	PQclear(res);
	free(sealed);
	return result;
}

void fa_handle_totp_enroll(struct fa_request *req)
{
	uint8_t seed[FA_TOTP_SEED_LEN];
	char base32[FA_TOTP_BASE32_MAX] = "";
	char *uri = NULL;
	cJSON *body = NULL;
	fa_result result;

	if (!require_user(req))
		return;
	result = fa_totp_new_seed(seed, base32);
	if (result == FA_OK)
		result = store_seed(req, seed);
	if (result == FA_ERR_DENIED) {
		fa_audit(req, "mfa.totp.enroll", req->caller.id, "denied",
		         NULL);
		fa_reply_problem(req, 409, FA_PROBLEM_CONFLICT, "Conflict",
		                 "TOTP is already enabled for this user");
		goto out;
	}
	if (result == FA_OK)
		result = fa_totp_uri(FA_TOTP_ISSUER, req->caller.id, base32,
		                     &uri);
	if (result != FA_OK) {
		fa_request_log(req, FA_LOG_ERROR, "TOTP enrollment failed: %s",
		               fa_result_str(result));
		fa_reply_db_error(req,
		                  result == FA_ERR_IO ? result : FA_ERR_CRYPTO);
		goto out;
	}
	fa_audit(req, "mfa.totp.enroll", req->caller.id, "success", NULL);
	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "secret", base32);
	cJSON_AddStringToObject(body, "otpauth_uri", uri);
	fa_reply_json(req, 200, body);
out:
	fa_wipe(seed, sizeof(seed));
	fa_wipe(base32, sizeof(base32));
	if (uri != NULL) {
		fa_wipe(uri, strlen(uri));
		free(uri);
	}
}

/* Replies for a confirmation that did not go through and records it. */
static void confirm_failed(struct fa_request *req, int status,
                           const char *reason, const char *message)
{
	cJSON *detail = cJSON_CreateObject();

	cJSON_AddStringToObject(detail, "reason", reason);
	fa_audit(req, "mfa.totp.confirm", req->caller.id, "failure", detail);
	cJSON_Delete(detail);
	if (status == 400)
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_FIELD,
		                 "Invalid field", message);
	else
		fa_reply_status(req, status, message);
}

/*
 * Checks code against the pending seed of the caller inside the open
 * transaction and marks TOTP confirmed. Sets *reason for a failed
 * confirmation; returns a fa_db_* error only for database failures.
 */
static fa_result confirm_seed(struct fa_request *req, const char *code,
                              const char **reason)
{
	uint8_t seed[FA_TOTP_SEED_LEN];
	char step_text[24];
	PGresult *res = NULL;
	int64_t step = 0;
	fa_result result;

	*reason = NULL;
	result = fa_db_exec(req->db, &res,
	                    "SELECT secret_enc, kek_id, confirmed_at IS NOT "
	                    "NULL, last_step FROM user_totp WHERE user_id = $1 "
	                    "FOR UPDATE",
	                    1, (const char *[]){req->caller.id});
	if (result != FA_OK)
		goto out;
	if (PQntuples(res) != 1) {
		*reason = "not_enrolled";
		goto out;
	}
	if (fa_db_value(res, 0, 2)[0] == 't') {
		*reason = "already_enabled";
		goto out;
	}
	result = fa_totp_open_seed(req->svc, req->caller.id,
	                           fa_db_value(res, 0, 1),
	                           fa_db_value(res, 0, 0), seed);
	if (result != FA_OK)
		goto out;
	result =
	        fa_totp_check(seed, sizeof(seed), time(NULL), code,
	                      strtoll(fa_db_value(res, 0, 3), NULL, 10), &step);
	if (result == FA_ERR_INVALID || result == FA_ERR_DENIED) {
		*reason = result == FA_ERR_INVALID ? "malformed_code"
		                                   : "wrong_code";
		result = FA_OK;
		goto out;
	}
	if (result != FA_OK)
		goto out;
	snprintf(step_text, sizeof(step_text), "%lld", (long long)step);
	result = fa_db_command(req->db,
	                       "UPDATE user_totp SET confirmed_at = now(), "
	                       "last_step = $2 WHERE user_id = $1",
	                       2, (const char *[]){req->caller.id, step_text});
out:
	fa_wipe(seed, sizeof(seed));
	PQclear(res);
	return result;
}

void fa_handle_totp_confirm(struct fa_request *req)
{
	static const char *const fields[] = {"code", NULL};
	const char *code = NULL;
	const char *reason = NULL;
	cJSON *body;
	fa_result result;

	if (!require_user(req) || !fa_json_only_fields(req, fields) ||
	    !fa_json_string(req, "code", true, 16, FA_STR_NONEMPTY, &code))
		return;
	result = fa_db_begin(req->db);
	if (result == FA_OK)
		result = confirm_seed(req, code, &reason);
	if (result == FA_OK && reason == NULL)
		result = fa_db_commit(req->db);
	else
		fa_db_rollback(req->db);
	if (result != FA_OK) {
		fa_request_log(req, FA_LOG_ERROR,
		               "TOTP confirmation failed: %s",
		               fa_result_str(result));
		fa_reply_db_error(req,
		                  result == FA_ERR_IO ? result : FA_ERR_CRYPTO);
		return;
	}
	if (reason != NULL && strcmp(reason, "not_enrolled") == 0) {
		confirm_failed(req, 404, reason,
		               "no TOTP enrollment is pending: call POST "
		               "/v1/mfa/totp/enroll first");
		return;
	}
	if (reason != NULL && strcmp(reason, "already_enabled") == 0) {
		confirm_failed(req, 409, reason,
		               "TOTP is already enabled for this user");
		return;
	}
	if (reason != NULL) {
		confirm_failed(req, 400, reason,
		               "code does not match: enter the current "
		               "6-digit code from the authenticator app");
		return;
	}
	fa_audit(req, "mfa.totp.confirm", req->caller.id, "success", NULL);
	body = cJSON_CreateObject();
	cJSON_AddBoolToObject(body, "totp_enabled", true);
	fa_reply_json(req, 200, body);
}
