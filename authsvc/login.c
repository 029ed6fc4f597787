/*
 * HTTP handlers of the authentication module: password login, the TOTP
 * step, refresh, logout, and the fa_auth_routes table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fa_crypto.h"
#include "metrics.h"
#include "password.h"
#include "refresh.h"
#include "service.h"
#include "signing_keys.h"
#include "throttle.h"
#include "tokens.h"
#include "totp.h"

/* One message for unknown users and wrong passwords alike. */
#define LOGIN_FAILED "invalid username or password"
#define MFA_TOKEN_MAX 64
#define REFRESH_TOKEN_FIELD_MAX 128

/* The columns of a user that a login needs. */
struct user_row {
	char id[FA_ID_MAX + 1];
	char carrier[FA_ID_MAX + 1];
	char window[96];
	enum fa_role role;
	bool active;
	bool in_window;
	bool has_totp;
	char *password_hash; /* malloc'd; wiped and freed by user_clear */
};

static void user_clear(struct user_row *user)
{
	if (user->password_hash != NULL) {
		fa_wipe(user->password_hash, strlen(user->password_hash));
		free(user->password_hash);
	}
	memset(user, 0, sizeof(*user));
}

static void copy_cell(char *out, size_t size, const PGresult *res, int col)
{
	const char *value = fa_db_value(res, 0, col);

	snprintf(out, size, "%s", value != NULL ? value : "");
}

/*
 * Loads user id with its access-window state and whether TOTP is
 * confirmed. *found is false when there is no such user.
 */
static fa_result user_load(PGconn *db, const char *id, struct user_row *user,
                           bool *found)
{
	PGresult *res = NULL;
	fa_result result;

	memset(user, 0, sizeof(*user));
	*found = false;
	result = fa_db_exec(
	        db, &res,
	        "SELECT u.id, u.role, u.carrier_id, u.status = "
	        "'active', " FA_SQL_IN_WINDOW ", " FA_SQL_WINDOW_TEXT
	        ", u.password_hash, "
	        "EXISTS (SELECT 1 FROM user_totp t WHERE t.user_id = u.id AND "
	        "t.confirmed_at IS NOT NULL) FROM users u LEFT JOIN carriers c "
	        "ON c.id = u.carrier_id" FA_SQL_LOCAL_TIME "WHERE u.id = $1",
	        1, (const char *[]){id});
	if (result != FA_OK || PQntuples(res) != 1)
		goto out;
	*found = true;
	copy_cell(user->id, sizeof(user->id), res, 0);
	user->role = fa_role_parse(fa_db_value(res, 0, 1));
	copy_cell(user->carrier, sizeof(user->carrier), res, 2);
	user->active = fa_db_value(res, 0, 3)[0] == 't';
	user->in_window = fa_db_value(res, 0, 4)[0] == 't';
	copy_cell(user->window, sizeof(user->window), res, 5);
	user->has_totp = fa_db_value(res, 0, 7)[0] == 't';
	user->password_hash = strdup(fa_db_value(res, 0, 6));
	if (user->password_hash == NULL)
		result = FA_ERR_NOMEM;
out:
	PQclear(res);
	return result;
}

/* Records action with outcome and a reason in detail. */
static void audit_reason(struct fa_request *req, const char *action,
                         const char *target, const char *outcome,
                         const char *reason)
{
	cJSON *detail = cJSON_CreateObject();

	if (reason != NULL)
		cJSON_AddStringToObject(detail, "reason", reason);
	fa_audit(req, action, target, outcome, detail);
	cJSON_Delete(detail);
}

/* Replies 503 for a lost database and 500 for anything else. */
static void reply_internal(struct fa_request *req, fa_result result,
                           const char *what)
{
	fa_request_log(req, FA_LOG_ERROR, "%s failed: %s", what,
	               fa_result_str(result));
	if (strcmp(req->route->pattern, "/v1/auth/refresh") == 0)
		fa_metrics_refresh(FA_METRICS_REFRESH_ERROR);
	else if (strcmp(req->route->pattern, "/v1/auth/logout") != 0)
		fa_metrics_login(FA_METRICS_LOGIN_ERROR);
	if (result == FA_ERR_IO)
		fa_reply_db_error(req, result);
	else
		fa_reply_status(req, 500, NULL);
}

/* Replies 429 with Retry-After for a locked account or address. */
static void reply_locked(struct fa_request *req, const char *action,
                         const char *user,
                         const struct fa_throttle_state *state)
{
	char seconds[24];
	char message[128];
	cJSON *detail = cJSON_CreateObject();

	snprintf(seconds, sizeof(seconds), "%lld", state->retry_after);
	cJSON_AddStringToObject(detail, "reason", "locked");
	cJSON_AddStringToObject(detail, "scope",
	                        state->scope == FA_THROTTLE_ADDRESS ? "address"
	                                                            : "user");
	cJSON_AddNumberToObject(detail, "retry_after",
	                        (double)state->retry_after);
	fa_audit(req, action, user, "denied", detail);
	cJSON_Delete(detail);
	fa_metrics_login(FA_METRICS_LOGIN_LOCKED);
	snprintf(message, sizeof(message),
	         "too many failed attempts: retry after %lld seconds",
	         state->retry_after);
	fa_reply_header(req, "Retry-After", seconds);
	fa_reply_problem(req, 429, FA_PROBLEM_THROTTLED,
	                 "Too many failed attempts", message);
}

/*
 * Checks the throttle for user and the client address. Returns true when
 * the attempt may go on; otherwise it has replied (429 or 503).
 */
static bool throttle_allows(struct fa_request *req, const char *action,
                            const char *user)
{
	struct fa_throttle_state state;
	fa_result result;

	result = fa_throttle_check(req->db, user, req->client_address, &state);
	if (result != FA_OK) {
		reply_internal(req, result, "throttle check");
		return false;
	}
	if (state.retry_after > 0) {
		reply_locked(req, action, user, &state);
		return false;
	}
	return true;
}

/* Counts a failed attempt (user may be NULL), records it and any lock it
 * caused. The caller replies. */
static void count_failure(struct fa_request *req, const char *action,
                          const char *user, const char *reason)
{
	struct fa_throttle_state state;
	cJSON *detail;

	audit_reason(req, action, user, "failure", reason);
	fa_metrics_login(strcmp(action, "login.totp") == 0
	                         ? FA_METRICS_LOGIN_MFA_FAILED
	                         : FA_METRICS_LOGIN_BAD_CREDENTIALS);
	if (fa_throttle_failure(req->db, &req->svc->config, user,
	                        req->client_address, &state) != FA_OK) {
		fa_request_log(req, FA_LOG_ERROR,
		               "counting a failed login failed");
		return;
	}
	if (state.retry_after == 0)
		return;
	fa_metrics_lockout();
	detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "scope",
	                        state.scope == FA_THROTTLE_ADDRESS ? "address"
	                                                           : "user");
	cJSON_AddNumberToObject(detail, "seconds", (double)state.retry_after);
	fa_audit(req, "login.lockout",
	         state.scope == FA_THROTTLE_ADDRESS ? req->client_address
	                                            : user,
	         "denied", detail);
	cJSON_Delete(detail);
}

static void reply_outside_window(struct fa_request *req, const char *action,
                                 const char *user, const char *window)
{
	char message[160];

	audit_reason(req, action, user, "denied", "outside_access_window");
	snprintf(message, sizeof(message), "access is allowed only during %s",
	         window);
	fa_reply_problem(req, 403, FA_PROBLEM_FORBIDDEN,
	                 "Outside access window", message);
}

/*
 * Signs an access token for claims and builds the 200 body with it and
 * refresh_token. *body_out is owned by the caller. http.c adds
 * Cache-Control: no-store to every response, so the tokens are not cached.
 */
static fa_result token_body(struct fa_request *req,
                            const struct fa_access_claims *claims,
                            const char *refresh_token, cJSON **body_out)
{
	char *access = NULL;
	cJSON *body;
	fa_result result;

	*body_out = NULL;
	result = fa_access_token_issue(req->svc, req->db, claims, &access);
	if (result != FA_OK) {
		if (result == FA_ERR_NOT_FOUND)
			fa_request_log(req, FA_LOG_ERROR,
			               "no current signing key: run "
			               "\"fleetauthd signing-key generate\"");
		return result;
	}
	body = cJSON_CreateObject();
	if (body == NULL ||
	    cJSON_AddStringToObject(body, "access_token", access) == NULL ||
	    cJSON_AddStringToObject(body, "refresh_token", refresh_token) ==
	            NULL ||
	    cJSON_AddStringToObject(body, "token_type", "Bearer") == NULL ||
	    cJSON_AddNumberToObject(
	            body, "expires_in",
	            (double)req->svc->config.access_token_ttl) == NULL) {
		cJSON_Delete(body);
		result = FA_ERR_NOMEM;
	} else {
		*body_out = body;
	}
	fa_wipe(access, strlen(access));
	free(access);
	return result;
}

/*
 * Starts a session for user: a refresh family with amr, its first token and
 * an access token. Runs in the transaction the caller opened on req->db
 * and commits it only when signing succeeded; rolls back otherwise. Replies
 * in every case.
 */
static void start_session(struct fa_request *req, const struct user_row *user,
                          unsigned amr, const char *action)
{
	char family[FA_ID_MAX + 1];
	char refresh[FA_REFRESH_TOKEN_LEN + 1] = "";
	struct fa_access_claims claims = {
	        .sub = user->id,
	        .role = user->role,
	        .carrier = user->carrier,
	        .amr = amr,
	        .fam = family,
	        .did = NULL,
	};
	cJSON *body = NULL;
	fa_result result;

	result = fa_refresh_family_create(req->db, &req->svc->config, user->id,
	                                  NULL, amr, family, refresh);
	if (result == FA_OK)
		result = token_body(req, &claims, refresh, &body);
	if (result == FA_OK)
		result = fa_db_commit(req->db);
	if (result != FA_OK) {
		fa_db_rollback(req->db);
		reply_internal(req, result, "starting a session");
		goto out;
	}
	fa_throttle_success(req->db, user->id);
	audit_reason(req, action, user->id, "success", NULL);
	fa_metrics_login(FA_METRICS_LOGIN_SUCCESS);
	fa_reply_json(req, 200, body);
	body = NULL;
out:
	cJSON_Delete(body);
	fa_wipe(refresh, sizeof(refresh));
}

/* Replies the MFA challenge after a correct password for a TOTP user. */
static void start_mfa(struct fa_request *req, const struct user_row *user)
{
	char token[FA_SECRET_B64_LEN + 1] = "";
	uint8_t hash[FA_SHA256_LEN];
	char hash_hex[67];
	char ttl[24];
	cJSON *detail;
	cJSON *body;
	fa_result result;

	result = fa_random_secret("", token, sizeof(token), hash);
	if (result != FA_OK) {
		reply_internal(req, result, "creating an MFA token");
		return;
	}
	fa_bytea_hex(hash, hash_hex);
	snprintf(ttl, sizeof(ttl), "%lld", req->svc->config.mfa_token_ttl);
	result = fa_db_command(
	        req->db,
	        "INSERT INTO mfa_challenges (token_hash, "
	        "user_id, expires_at, address) VALUES "
	        "($1::bytea, $2, now() + make_interval(secs => "
	        "$3::int), $4)",
	        4,
	        (const char *[]){hash_hex, user->id, ttl, req->client_address});
	if (result != FA_OK) {
		reply_internal(req, result, "storing an MFA token");
		goto out;
	}
	detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "mfa", "totp");
	fa_audit(req, "login.password", user->id, "success", detail);
	cJSON_Delete(detail);
	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "mfa_required", "totp");
	cJSON_AddStringToObject(body, "mfa_token", token);
	cJSON_AddNumberToObject(body, "expires_in",
	                        (double)req->svc->config.mfa_token_ttl);
	fa_metrics_login(FA_METRICS_LOGIN_MFA_REQUIRED);
	fa_reply_json(req, 200, body);
out:
	fa_wipe(token, sizeof(token));
}

/*
 * POST /v1/auth/login {username, password}. Order: throttle (before any
 * bcrypt work), user lookup, password (a dummy bcrypt run for unknown
 * users), status, access window, then tokens or the TOTP challenge.
 */
static void handle_login(struct fa_request *req)
{
	static const char *const fields[] = {"username", "password", NULL};
	const char *username = NULL;
	const char *password = NULL;
	struct user_row user = {0};
	bool found = false;
	bool ok = false;
	fa_result result;

	if (!fa_json_only_fields(req, fields) ||
	    !fa_json_string(req, "username", true, FA_ID_MAX, FA_STR_ID,
	                    &username) ||
	    !fa_json_string(req, "password", true, FA_PASSWORD_MAX_LEN,
	                    FA_STR_NONEMPTY, &password))
		return;
	fa_auth_housekeeping(req->svc, req->db);
	if (!throttle_allows(req, "login", username))
		return;
	result = user_load(req->db, username, &user, &found);
	if (result != FA_OK) {
		reply_internal(req, result, "loading the user");
		goto out;
	}
	if (!found) {
		fa_password_verify_dummy(password,
		                         (int)req->svc->config.bcrypt_cost);
		count_failure(req, "login", username, "unknown_user");
		fa_reply_status(req, 401, LOGIN_FAILED);
		goto out;
	}
	result = fa_password_verify(password, user.password_hash, &ok);
	if (result != FA_OK && result != FA_ERR_INVALID) {
		reply_internal(req, result, "password check");
		goto out;
	}
	/* A hash such as "!" disables password login for the user. */
	if (result == FA_ERR_INVALID) {
		fa_password_verify_dummy(password,
		                         (int)req->svc->config.bcrypt_cost);
		if (user.password_hash[0] == '$')
			fa_request_log(
			        req, FA_LOG_WARNING,
			        "user %s has a password hash that is not "
			        "bcrypt $2b$; reset the password",
			        user.id);
	}
	if (!ok) {
		count_failure(req, "login", user.id, "wrong_password");
		fa_reply_status(req, 401, LOGIN_FAILED);
		goto out;
	}
	if (!user.active) {
		audit_reason(req, "login", user.id, "denied", "user_inactive");
		fa_metrics_login(FA_METRICS_LOGIN_BAD_CREDENTIALS);
		fa_reply_status(req, 401, LOGIN_FAILED);
		goto out;
	}
	if (!user.in_window) {
		reply_outside_window(req, "login", user.id, user.window);
		goto out;
	}
	/* The account counter is cleared only after the last factor, so
	 * that wrong TOTP codes keep counting towards the lockout. */
	if (user.has_totp) {
		start_mfa(req, &user);
		goto out;
	}
	result = fa_db_begin(req->db);
	if (result != FA_OK) {
		reply_internal(req, result, "starting a session");
		goto out;
	}
	start_session(req, &user, FA_AMR_PWD, "login");
out:
	user_clear(&user);
}

/* ------------------------------------------------------------------ */
/* TOTP step                                                           */
/* ------------------------------------------------------------------ */

/* Outcome of checking a TOTP code inside the MFA transaction. */
enum mfa_outcome {
	MFA_OK = 0,
	MFA_BAD_TOKEN, /* MFA token unknown, used or expired */
	MFA_MALFORMED, /* code is not six digits */
	MFA_WRONG_CODE,
	MFA_REPLAYED /* code of a step already accepted */
};

/* Returns the user id of a usable MFA token (copied into user), locking
 * its row, or MFA_BAD_TOKEN. */
static fa_result lock_challenge(PGconn *db, const char *hash_hex,
                                char user[FA_ID_MAX + 1],
                                enum mfa_outcome *outcome)
{
	PGresult *res = NULL;
	fa_result result;

	user[0] = '\0';
	result = fa_db_exec(db, &res,
	                    "SELECT user_id FROM mfa_challenges WHERE "
	                    "token_hash = $1::bytea AND used_at IS NULL AND "
	                    "expires_at > now() FOR UPDATE",
	                    1, (const char *[]){hash_hex});
	if (result == FA_OK && PQntuples(res) == 1)
		copy_cell(user, FA_ID_MAX + 1, res, 0);
	else if (result == FA_OK)
		*outcome = MFA_BAD_TOKEN;
	PQclear(res);
	return result;
}

/*
 * Checks code against the user's confirmed seed and moves last_step up to
 * the matched step with a conditional UPDATE, so that of two concurrent
 * requests with one code only one can succeed.
 */
static fa_result check_code(struct fa_request *req, const char *user,
                            const char *code, enum mfa_outcome *outcome)
{
	uint8_t seed[FA_TOTP_SEED_LEN];
	char step_text[24];
	PGresult *res = NULL;
	int64_t last_step;
	int64_t step = 0;
	fa_result result;

	result = fa_db_exec(req->db, &res,
	                    "SELECT secret_enc, kek_id, last_step FROM "
	                    "user_totp WHERE user_id = $1 AND confirmed_at IS "
	                    "NOT NULL FOR UPDATE",
	                    1, (const char *[]){user});
	if (result != FA_OK)
		goto out;
	if (PQntuples(res) != 1) {
		*outcome = MFA_BAD_TOKEN;
		goto out;
	}
	result = fa_totp_open_seed(req->svc, user, fa_db_value(res, 0, 1),
	                           fa_db_value(res, 0, 0), seed);
	if (result != FA_OK)
		goto out;
	last_step = strtoll(fa_db_value(res, 0, 2), NULL, 10);
	result = fa_totp_check(seed, sizeof(seed), time(NULL), code, last_step,
	                       &step);
	if (result == FA_ERR_INVALID || result == FA_ERR_DENIED) {
		*outcome = MFA_MALFORMED;
		if (result == FA_ERR_DENIED)
			*outcome = fa_totp_check(seed, sizeof(seed), time(NULL),
			                         code, -1, &step) == FA_OK
			                   ? MFA_REPLAYED
			                   : MFA_WRONG_CODE;
		result = FA_OK;
		goto out;
	}
	if (result != FA_OK)
		goto out;
	snprintf(step_text, sizeof(step_text), "%lld", (long long)step);
	PQclear(res);
	res = NULL;
	result = fa_db_exec_one(req->db, &res,
	                        "UPDATE user_totp SET last_step = $2 WHERE "
	                        "user_id = $1 AND last_step < $2",
	                        2, (const char *[]){user, step_text});
	if (result == FA_ERR_NOT_FOUND) {
		*outcome = MFA_REPLAYED;
		result = FA_OK;
	}
out:
	fa_wipe(seed, sizeof(seed));
	PQclear(res);
	return result;
}

/* Replies and records a failed TOTP step after the rollback. */
static void mfa_failed(struct fa_request *req, const char *user,
                       enum mfa_outcome outcome)
{
	switch (outcome) {
	case MFA_BAD_TOKEN:
		audit_reason(req, "login.totp", user[0] ? user : NULL,
		             "failure", "invalid_mfa_token");
		fa_reply_status(req, 401,
		                "MFA token is invalid, expired or already "
		                "used: log in again");
		break;
	case MFA_MALFORMED:
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_FIELD,
		                 "Invalid field", "code must be 6 digits");
		break;
	case MFA_REPLAYED:
	case MFA_WRONG_CODE:
		count_failure(req, "login.totp", user,
		              outcome == MFA_REPLAYED ? "replayed_code"
		                                      : "wrong_code");
		fa_reply_status(req, 401, "invalid TOTP code");
		break;
	case MFA_OK:
		break;
	}
}

/*
 * POST /v1/auth/mfa/totp {mfa_token, code}. In one transaction: lock the
 * challenge, check the code and advance last_step, mark the challenge
 * used, re-check the user, create the session. A wrong code leaves the
 * challenge usable until it expires but counts towards the lockout.
 */
static void handle_mfa_totp(struct fa_request *req)
{
	static const char *const fields[] = {"mfa_token", "code", NULL};
	const char *mfa_token = NULL;
	const char *code = NULL;
	char user_id[FA_ID_MAX + 1] = "";
	uint8_t hash[FA_SHA256_LEN];
	char hash_hex[67];
	struct user_row user = {0};
	enum mfa_outcome outcome = MFA_OK;
	bool found = false;
	fa_result result;

	if (!fa_json_only_fields(req, fields) ||
	    !fa_json_string(req, "mfa_token", true, MFA_TOKEN_MAX,
	                    FA_STR_NONEMPTY, &mfa_token) ||
	    !fa_json_string(req, "code", true, 16, FA_STR_NONEMPTY, &code))
		return;
	fa_sha256(mfa_token, strlen(mfa_token), hash);
	fa_bytea_hex(hash, hash_hex);

	/* First outside the transaction, so that a 429 can be audited. */
	result = lock_challenge(req->db, hash_hex, user_id, &outcome);
	if (result != FA_OK || outcome != MFA_OK)
		goto fail;
	if (!throttle_allows(req, "login.totp", user_id))
		return;
	result = fa_db_begin(req->db);
	if (result == FA_OK)
		result = lock_challenge(req->db, hash_hex, user_id, &outcome);
	if (result != FA_OK || outcome != MFA_OK)
		goto fail;
	result = check_code(req, user_id, code, &outcome);
	if (result != FA_OK || outcome != MFA_OK)
		goto fail;
	result = fa_db_command(req->db,
	                       "UPDATE mfa_challenges SET used_at = now() "
	                       "WHERE token_hash = $1::bytea",
	                       1, (const char *[]){hash_hex});
	if (result == FA_OK)
		result = user_load(req->db, user_id, &user, &found);
	if (result != FA_OK)
		goto fail;
	if (!found || !user.active) {
		fa_db_rollback(req->db);
		audit_reason(req, "login.totp", user_id, "denied",
		             "user_inactive");
		fa_reply_status(req, 401, LOGIN_FAILED);
		goto out;
	}
	if (!user.in_window) {
		fa_db_rollback(req->db);
		reply_outside_window(req, "login.totp", user.id, user.window);
		goto out;
	}
	start_session(req, &user, FA_AMR_PWD | FA_AMR_OTP, "login.totp");
	goto out;
fail:
	fa_db_rollback(req->db);
	if (result != FA_OK)
		reply_internal(req, result, "TOTP step");
	else
		mfa_failed(req, user_id, outcome);
out:
	user_clear(&user);
}

/* ------------------------------------------------------------------ */
/* Refresh and logout                                                  */
/* ------------------------------------------------------------------ */

/* Reads the refresh_token field. A value that cannot be a refresh token
 * gets 401, like an unknown one. */
static bool refresh_token_field(struct fa_request *req, const char *action,
                                const char **token)
{
	static const char *const fields[] = {"refresh_token", NULL};

	if (!fa_json_only_fields(req, fields) ||
	    !fa_json_string(req, "refresh_token", true, REFRESH_TOKEN_FIELD_MAX,
	                    FA_STR_NONEMPTY, token))
		return false;
	if (strlen(*token) == FA_REFRESH_TOKEN_LEN &&
	    strncmp(*token, FA_REFRESH_PREFIX, strlen(FA_REFRESH_PREFIX)) == 0)
		return true;
	audit_reason(req, action, NULL, "failure", "malformed_token");
	fa_reply_status(req, 401, "refresh token is invalid");
	return false;
}

static const char *refresh_reason(enum fa_refresh_outcome outcome)
{
	switch (outcome) {
	case FA_REFRESH_UNKNOWN:
		return "unknown_token";
	case FA_REFRESH_REUSED:
		return "reused_token";
	case FA_REFRESH_REVOKED:
		return "family_revoked";
	case FA_REFRESH_EXPIRED:
		return "expired";
	case FA_REFRESH_USER_INACTIVE:
		return "user_inactive";
	case FA_REFRESH_OUTSIDE_WINDOW:
		return "outside_access_window";
	case FA_REFRESH_OK:
		break;
	}
	return NULL;
}

/* Replies for every outcome but FA_REFRESH_OK. */
static void refresh_rejected(struct fa_request *req,
                             const struct fa_refresh_result *found)
{
	const char *user = found->user[0] != '\0' ? found->user : NULL;

	if (found->outcome == FA_REFRESH_REUSED) {
		fa_metrics_refresh(FA_METRICS_REFRESH_REUSED);
		fa_metrics_refresh_reuse();
	} else {
		fa_metrics_refresh(FA_METRICS_REFRESH_INVALID);
	}
	if (found->outcome == FA_REFRESH_OUTSIDE_WINDOW) {
		reply_outside_window(req, "refresh", user, found->window);
		return;
	}
	/* refresh.reuse_detected was recorded with the revocation. */
	if (found->outcome != FA_REFRESH_REUSED)
		audit_reason(req, "refresh", user, "failure",
		             refresh_reason(found->outcome));
	if (found->outcome == FA_REFRESH_REUSED)
		fa_reply_status(req, 401,
		                "refresh token was already used: the session "
		                "is revoked, log in again");
	else if (found->outcome == FA_REFRESH_UNKNOWN)
		fa_reply_status(req, 401, "refresh token is invalid");
	else
		fa_reply_status(req, 401,
		                "session is revoked or expired: log in again");
}

/*
 * POST /v1/auth/refresh {refresh_token}. Rotates the token and signs a new
 * access token with the family's amr and the user's current role; the
 * rotation commits only after signing succeeded.
 */
static void handle_refresh(struct fa_request *req)
{
	const char *token = NULL;
	struct fa_refresh_result found;
	struct fa_access_claims claims;
	cJSON *body = NULL;
	fa_result result;

	if (!refresh_token_field(req, "refresh", &token))
		return;
	fa_auth_housekeeping(req->svc, req->db);
	result = fa_refresh_rotate(req, token, &found);
	if (result != FA_OK) {
		reply_internal(req, result, "refresh");
		return;
	}
	if (found.outcome != FA_REFRESH_OK) {
		refresh_rejected(req, &found);
		return;
	}
	claims = (struct fa_access_claims){
	        .sub = found.user,
	        .role = found.role,
	        .carrier = found.carrier,
	        .amr = found.amr,
	        .fam = found.family,
	        .did = found.device,
	};
	result = token_body(req, &claims, found.token, &body);
	if (result == FA_OK)
		result = fa_db_commit(req->db);
	if (result != FA_OK) {
		fa_db_rollback(req->db);
		reply_internal(req, result, "refresh");
		goto out;
	}
	audit_reason(req, "refresh", found.user, "success", NULL);
	fa_metrics_refresh(FA_METRICS_REFRESH_SUCCESS);
	fa_reply_json(req, 200, body);
	body = NULL;
out:
	cJSON_Delete(body);
	fa_wipe(found.token, sizeof(found.token));
}

/* POST /v1/auth/logout {refresh_token}: revokes the token's family, which
 * also ends its access tokens. */
static void handle_logout(struct fa_request *req)
{
	const char *token = NULL;
	char family[FA_ID_MAX + 1];
	char user[FA_ID_MAX + 1];
	cJSON *detail;
	cJSON *body;
	bool found = false;
	fa_result result;

	if (!refresh_token_field(req, "logout", &token))
		return;
	result = fa_refresh_revoke(req->db, token, "logout", &found, family,
	                           user);
	if (result != FA_OK) {
		reply_internal(req, result, "logout");
		return;
	}
	if (!found) {
		audit_reason(req, "logout", NULL, "failure", "unknown_token");
		fa_reply_status(req, 401, "refresh token is invalid");
		return;
	}
	detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "family", family);
	fa_audit(req, "logout", user, "success", detail);
	cJSON_Delete(detail);
	body = cJSON_CreateObject();
	cJSON_AddBoolToObject(body, "revoked", true);
	fa_reply_json(req, 200, body);
}

const struct fa_route fa_auth_routes[] = {
        {"POST", "/v1/auth/login", handle_login,
         FA_ROUTE_PUBLIC | FA_ROUTE_BODY, NULL},
        {"POST", "/v1/auth/mfa/totp", handle_mfa_totp,
         FA_ROUTE_PUBLIC | FA_ROUTE_BODY, NULL},
        {"POST", "/v1/auth/refresh", handle_refresh,
         FA_ROUTE_PUBLIC | FA_ROUTE_BODY, NULL},
        {"POST", "/v1/auth/logout", handle_logout,
         FA_ROUTE_PUBLIC | FA_ROUTE_BODY, NULL},
        {"POST", "/v1/mfa/totp/enroll", fa_handle_totp_enroll, 0, NULL},
        {"POST", "/v1/mfa/totp/confirm", fa_handle_totp_confirm, FA_ROUTE_BODY,
         NULL},
        {"GET", "/.well-known/jwks.json", fa_handle_jwks, FA_ROUTE_PUBLIC,
         NULL},
        {"GET", "/v1/signing-keys", fa_handle_signing_key_list, 0,
         "signing-keys:read"},
        {"POST", "/v1/signing-keys/rotate", fa_handle_signing_key_rotate,
         FA_ROUTE_BODY_OPTIONAL, "signing-keys:write"},
        {NULL, NULL, NULL, 0, NULL},
};
