/*
 * Caller authentication (access tokens and API keys), the keyring of token
 * verification keys, and the role, carrier and scope checks that handlers
 * call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core.h"

#define API_KEY_PREFIX "fak_"
#define API_KEY_SECRET_LEN 43
#define KEYRING_REFRESH_SECONDS 60
#define KEYRING_UNKNOWN_KID_INTERVAL 5
#define TOKEN_LEEWAY_SECONDS 30
#define TOKEN_MAX_LIFETIME 3600

/* ------------------------------------------------------------------ */
/* Keyring                                                             */
/* ------------------------------------------------------------------ */

static enum fa_alg parse_alg(const char *name)
{
	if (strcmp(name, "RS256") == 0)
		return FA_ALG_RS256;
	if (strcmp(name, "ES256") == 0)
		return FA_ALG_ES256;
	return 0;
}

/* Builds a keyring from the signing keys that may still verify tokens. */
static fa_result load_keyring(PGconn *db, struct fa_keyring **ring_out)
{
	struct fa_keyring *ring = NULL;
	PGresult *res = NULL;
	fa_result result;
	int i;

	*ring_out = NULL;
	result = fa_db_exec(db, &res,
	                    "SELECT kid, alg, public_pem FROM signing_keys "
	                    "WHERE status IN ('current', 'previous') AND "
	                    "(publish_until IS NULL OR publish_until > now())",
	                    0, NULL);
	if (result != FA_OK)
		goto out;
	ring = fa_keyring_new();
	if (ring == NULL) {
		result = FA_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < PQntuples(res); i++) {
		const char *kid = PQgetvalue(res, i, 0);
		enum fa_alg alg = parse_alg(PQgetvalue(res, i, 1));

		if (alg == 0 ||
		    fa_keyring_add_pem(ring, kid, alg, PQgetvalue(res, i, 2)) !=
		            FA_OK)
			fa_log(FA_LOG_ERROR, (const char *[]){"kid", kid, NULL},
			       "skipping signing key: invalid algorithm or "
			       "public key");
	}
	*ring_out = ring;
	ring = NULL;
out:
	fa_keyring_free(ring);
	PQclear(res);
	return result;
}

/* Replaces svc->keyring with a fresh copy from the database. */
static void reload_keyring(struct fa_service *svc, PGconn *db)
{
	struct fa_keyring *ring = NULL;
	struct fa_keyring *old;

	if (load_keyring(db, &ring) != FA_OK)
		return;
	pthread_rwlock_wrlock(&svc->keyring_lock);
	old = svc->keyring;
	svc->keyring = ring;
	svc->keyring_loaded_at = fa_now();
	pthread_rwlock_unlock(&svc->keyring_lock);
	fa_keyring_free(old);
}

void fa_service_keyring_invalidate(struct fa_service *svc)
{
	pthread_rwlock_wrlock(&svc->keyring_lock);
	svc->keyring_loaded_at = 0;
	svc->keyring_reload_at = 0;
	pthread_rwlock_unlock(&svc->keyring_lock);
}

void fa_keyring_cleanup(struct fa_service *svc)
{
	fa_keyring_free(svc->keyring);
	svc->keyring = NULL;
}

static enum fa_token_status verify_once(struct fa_service *svc,
                                        const char *token,
                                        struct fa_token_claims *claims)
{
	struct fa_verify_options options = {
	        .issuer = svc->config.issuer,
	        .audience = svc->config.audience,
	        .now = fa_now(),
	        .leeway = TOKEN_LEEWAY_SECONDS,
	        .max_lifetime = TOKEN_MAX_LIFETIME,
	};
	enum fa_token_status status = FA_TOKEN_UNKNOWN_KID;

	pthread_rwlock_rdlock(&svc->keyring_lock);
	if (svc->keyring != NULL)
		status = fa_token_verify(svc->keyring, token, strlen(token),
		                         &options, claims);
	pthread_rwlock_unlock(&svc->keyring_lock);
	return status;
}

/* Decides whether an unknown kid may trigger a reload now; at most one
 * reload per KEYRING_UNKNOWN_KID_INTERVAL, so forged kids cannot flood
 * the database. */
static bool unknown_kid_reload_due(struct fa_service *svc)
{
	bool due = false;
	int64_t now = fa_now();

	pthread_rwlock_wrlock(&svc->keyring_lock);
	if (now - svc->keyring_reload_at >= KEYRING_UNKNOWN_KID_INTERVAL) {
		svc->keyring_reload_at = now;
		due = true;
	}
	pthread_rwlock_unlock(&svc->keyring_lock);
	return due;
}

enum fa_token_status fa_service_verify_token(struct fa_service *svc, PGconn *db,
                                             const char *token,
                                             struct fa_token_claims *claims)
{
	enum fa_token_status status;
	int64_t loaded_at;

	pthread_rwlock_rdlock(&svc->keyring_lock);
	loaded_at = svc->keyring_loaded_at;
	pthread_rwlock_unlock(&svc->keyring_lock);
	if (fa_now() - loaded_at >= KEYRING_REFRESH_SECONDS)
		reload_keyring(svc, db);

	status = verify_once(svc, token, claims);
	if (status == FA_TOKEN_UNKNOWN_KID && unknown_kid_reload_due(svc)) {
		reload_keyring(svc, db);
		status = verify_once(svc, token, claims);
	}
	return status;
}

/* ------------------------------------------------------------------ */
/* Authentication                                                      */
/* ------------------------------------------------------------------ */

static fa_result deny(struct fa_request *req, const char *reason)
{
	cJSON *detail = cJSON_CreateObject();

	cJSON_AddStringToObject(detail, "reason", reason);
	fa_audit(req, "request.authenticate", req->path, "denied", detail);
	cJSON_Delete(detail);
	fa_reply_header(req, "WWW-Authenticate", "Bearer");
	fa_reply_status(req, 401,
	                "send a valid access token or API key as "
	                "Authorization: Bearer");
	return FA_ERR_DENIED;
}

static bool secret_chars_valid(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* Copies the scopes of an api_keys row (as a JSON array) into caller. */
static void set_scopes(struct fa_caller *caller, const char *json_text)
{
	cJSON *array = cJSON_Parse(json_text);
	const cJSON *item;

	caller->scope_count = 0;
	cJSON_ArrayForEach(item, array)
	{
		if (caller->scope_count == FA_SCOPES_MAX)
			break;
		if (!cJSON_IsString(item) ||
		    strlen(item->valuestring) > FA_SCOPE_MAX)
			continue;
		snprintf(caller->scopes[caller->scope_count],
		         sizeof(caller->scopes[caller->scope_count]), "%s",
		         item->valuestring);
		caller->scope_count++;
	}
	cJSON_Delete(array);
}

static fa_result authenticate_api_key(struct fa_request *req, const char *key)
{
	uint8_t hash[FA_SHA256_LEN];
	char hash_hex[2 * FA_SHA256_LEN + 1];
	const char *params[1];
	PGresult *res = NULL;
	fa_result result;
	struct fa_caller *caller = &req->caller;
	const char *carrier;

	if (strlen(key) != strlen(API_KEY_PREFIX) + API_KEY_SECRET_LEN ||
	    !secret_chars_valid(key + strlen(API_KEY_PREFIX),
	                        API_KEY_SECRET_LEN))
		return deny(req, "malformed API key");
	fa_sha256(key, strlen(key), hash);
	fa_hex_encode(hash, sizeof(hash), hash_hex);
	params[0] = hash_hex;
	/* The lookup is by hash, so its timing reveals nothing about the
	 * secret of any stored key. */
	/* last_used_at is written at most once a minute per key, so that
	 * busy keys do not turn every request into a write. */
	result = fa_db_exec(req->db, &res,
	                    "WITH k AS (SELECT id, role, carrier_id, scopes, "
	                    "last_used_at FROM api_keys "
	                    "WHERE key_hash = decode($1, 'hex') "
	                    "AND revoked_at IS NULL AND expires_at > now()), "
	                    "used AS (UPDATE api_keys a SET last_used_at = "
	                    "now() FROM k WHERE a.id = k.id AND "
	                    "(k.last_used_at IS NULL OR k.last_used_at < "
	                    "now() - interval '60 seconds')) "
	                    "SELECT id, role, carrier_id, "
	                    "array_to_json(scopes)::text FROM k",
	                    1, params);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return result;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		return deny(req, "unknown, expired or revoked API key");
	}
	caller->kind = FA_CALLER_API_KEY;
	snprintf(caller->id, sizeof(caller->id), "%s", PQgetvalue(res, 0, 0));
	caller->role = fa_role_parse(PQgetvalue(res, 0, 1));
	carrier = fa_db_value(res, 0, 2);
	snprintf(caller->carrier, sizeof(caller->carrier), "%s",
	         carrier != NULL ? carrier : "");
	set_scopes(caller, PQgetvalue(res, 0, 3));
	PQclear(res);
	if (caller->role == FA_ROLE_NONE)
		return deny(req, "API key has an unknown role");
	return FA_OK;
}

/*
 * Checks the database state behind a verified token: the user is active
 * with the same role and carrier, and neither the token, its family nor
 * its bound device has been revoked.
 */
static fa_result check_token_state(struct fa_request *req,
                                   const struct fa_token_claims *claims)
{
	const char *params[5] = {claims->sub, claims->role, claims->carrier,
	                         claims->jti, claims->fam};
	const char *did_params[1] = {claims->did};
	PGresult *res = NULL;
	fa_result result;

	result = fa_db_exec(
	        req->db, &res,
	        "SELECT 1 FROM users u WHERE u.id = $1 AND u.status = 'active' "
	        "AND u.role = $2 AND coalesce(u.carrier_id, '') = $3 "
	        "AND NOT EXISTS (SELECT 1 FROM revoked_access_tokens "
	        "WHERE jti = $4) "
	        "AND ($5 = '' OR EXISTS (SELECT 1 FROM refresh_families f "
	        "WHERE f.id = $5 AND f.user_id = u.id "
	        "AND f.revoked_at IS NULL))",
	        5, params);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return result;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		return deny(req, "token revoked or user changed");
	}
	PQclear(res);
	if (claims->did[0] == '\0')
		return FA_OK;
	result = fa_db_exec(req->db, &res,
	                    "SELECT 1 FROM devices WHERE id = $1 "
	                    "AND status <> 'revoked'",
	                    1, did_params);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return result;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		return deny(req, "bound device revoked");
	}
	PQclear(res);
	return FA_OK;
}

static fa_result authenticate_token(struct fa_request *req, const char *token)
{
	struct fa_token_claims claims;
	enum fa_token_status status;
	struct fa_caller *caller = &req->caller;
	fa_result result;

	if (strlen(token) > FA_TOKEN_MAX_LEN)
		return deny(req, "token too long");
	status = fa_service_verify_token(req->svc, req->db, token, &claims);
	if (status != FA_TOKEN_OK)
		return deny(req, fa_token_status_str(status));
	result = check_token_state(req, &claims);
	if (result != FA_OK)
		return result;
	caller->kind = FA_CALLER_USER;
	snprintf(caller->id, sizeof(caller->id), "%s", claims.sub);
	caller->role = fa_role_parse(claims.role);
	snprintf(caller->carrier, sizeof(caller->carrier), "%s",
	         claims.carrier);
	caller->amr = claims.amr;
	snprintf(caller->fam, sizeof(caller->fam), "%s", claims.fam);
	snprintf(caller->jti, sizeof(caller->jti), "%s", claims.jti);
	snprintf(caller->did, sizeof(caller->did), "%s", claims.did);
	caller->token_exp = claims.exp;
	fa_wipe(&claims, sizeof(claims));
	return FA_OK;
}

fa_result fa_caller_authenticate(struct fa_request *req)
{
	const char *header = fa_request_header(req, "Authorization");
	const char *scheme = "Bearer ";
	const char *credential;

	memset(&req->caller, 0, sizeof(req->caller));
	if (header == NULL)
		return deny(req, "missing Authorization header");
	if (strncasecmp(header, scheme, strlen(scheme)) != 0)
		return deny(req, "Authorization scheme is not Bearer");
	credential = header + strlen(scheme);
	while (*credential == ' ')
		credential++;
	if (strncmp(credential, API_KEY_PREFIX, strlen(API_KEY_PREFIX)) == 0)
		return authenticate_api_key(req, credential);
	return authenticate_token(req, credential);
}

/* ------------------------------------------------------------------ */
/* Authorization helpers                                               */
/* ------------------------------------------------------------------ */

bool fa_caller_is_platform(const struct fa_caller *caller)
{
	return caller->role == FA_ROLE_SYSTEM_ADMIN ||
	       caller->role == FA_ROLE_SYSTEM_OPERATOR;
}

bool fa_caller_has_scope(const struct fa_caller *caller, const char *scope)
{
	size_t i;

	if (caller->kind != FA_CALLER_API_KEY)
		return true;
	for (i = 0; i < caller->scope_count; i++) {
		if (strcmp(caller->scopes[i], "*") == 0 ||
		    strcmp(caller->scopes[i], scope) == 0)
			return true;
	}
	return false;
}

bool fa_require_role(struct fa_request *req, enum fa_role role)
{
	cJSON *detail;

	if (fa_role_covers(req->caller.role, role))
		return true;
	detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "needed_role", fa_role_name(role));
	cJSON_AddStringToObject(detail, "caller_role",
	                        fa_role_name(req->caller.role));
	fa_audit(req, "request.authorize", req->path, "denied", detail);
	cJSON_Delete(detail);
	fa_reply_status(req, 403, "your role does not allow this request");
	return false;
}

bool fa_require_carrier(struct fa_request *req, const char *carrier)
{
	cJSON *detail;

	if (fa_caller_is_platform(&req->caller))
		return true;
	if (req->caller.carrier[0] != '\0' &&
	    strcmp(req->caller.carrier, carrier) == 0)
		return true;
	detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "carrier", carrier);
	fa_audit(req, "request.authorize", req->path, "denied", detail);
	cJSON_Delete(detail);
	fa_reply_status(req, 404, "no such carrier or object");
	return false;
}
