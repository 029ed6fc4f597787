/*
 * Biometric device keys: a phone registers a P-256 public key from its
 * hardware keystore (unlocked by the user's biometrics) while logged in with
 * TOTP, and later logs in by signing a single-use nonce with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>

#include "ca.h"
#include "devices.h"
#include "refresh.h"
#include "throttle.h"
#include "tokens.h"

#define PUBLIC_KEY_PEM_MAX 4096
#define KEY_ID_CHARS 16
#define KEYS_PER_USER_MAX 10
#define NONCE_BYTES 32
#define NONCE_TTL_SECONDS 60
/* Open (unused, unexpired) challenges one key may have at a time. A phone
 * needs one per login; the limit keeps a caller who knows a key id from
 * filling device_key_nonces. */
#define OPEN_NONCES_MAX 5
/* A DER ECDSA P-256 signature is at most 72 bytes. */
#define SIGNATURE_MAX 128

/* Parses a SubjectPublicKeyInfo PEM and accepts only EC P-256. *pem_out
 * receives the key re-encoded as PEM (malloc'd). */
static fa_result parse_p256_key(const char *pem, char **pem_out)
{
	fa_result result = FA_ERR_INVALID;
	EVP_PKEY *key = NULL;
	BIO *in;
	BIO *out = NULL;
	char group[64];
	char *data = NULL;
	long len;

	*pem_out = NULL;
	in = BIO_new_mem_buf(pem, -1);
	if (in == NULL)
		return FA_ERR_NOMEM;
	key = PEM_read_bio_PUBKEY(in, NULL, NULL, NULL);
	if (key == NULL || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
	    EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) != 1 ||
	    strcmp(group, SN_X9_62_prime256v1) != 0)
		goto out;
	out = BIO_new(BIO_s_mem());
	if (out == NULL || PEM_write_bio_PUBKEY(out, key) != 1) {
		result = FA_ERR_CRYPTO;
		goto out;
	}
	len = BIO_get_mem_data(out, &data);
	*pem_out = strndup(data, (size_t)len);
	result = *pem_out != NULL ? FA_OK : FA_ERR_NOMEM;
out:
	EVP_PKEY_free(key);
	BIO_free(in);
	BIO_free(out);
	ERR_clear_error();
	return result;
}

/* Replies 403 and audits when the caller is not a user whose token shows a
 * TOTP step (amr "otp"). */
static bool require_otp_user(struct fa_request *req)
{
	cJSON *detail;

	if (req->caller.kind == FA_CALLER_USER &&
	    (req->caller.amr & FA_AMR_OTP) != 0)
		return true;
	detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "reason", "login without otp");
	fa_audit(req, "device_key.register", NULL, "denied", detail);
	cJSON_Delete(detail);
	fa_reply_status(req, 403,
	                "registering a device key needs a user login that "
	                "included a TOTP code (amr otp)");
	return false;
}

/*
 * Checks the optional device a key is bound to: a phone of the caller's
 * carrier, not revoked, and not bound to another user. Replies and returns
 * false otherwise.
 */
static bool check_bound_device(struct fa_request *req, const char *device_id)
{
	fa_result result;
	PGresult *res = NULL;
	const char *owner;
	bool ok = false;

	result = fa_db_exec_one(req->db, &res,
	                        "SELECT carrier_id, device_type, status, "
	                        "user_id FROM devices WHERE id = $1",
	                        1, (const char *[]){device_id});
	if (result == FA_ERR_NOT_FOUND ||
	    (result == FA_OK &&
	     strcmp(fa_db_value(res, 0, 0), req->caller.carrier) != 0)) {
		fa_reply_status(req, 404,
		                "device_id names no device of your "
		                "carrier");
		goto out;
	}
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		goto out;
	}
	owner = fa_db_value(res, 0, 3);
	if (strcmp(fa_db_value(res, 0, 1), "phone") != 0)
		fa_reply_status(req, 400, "device_id must name a phone");
	else if (strcmp(fa_db_value(res, 0, 2), "revoked") == 0)
		fa_reply_status(req, 409, "the device is revoked");
	else if (owner != NULL && strcmp(owner, req->caller.id) != 0)
		fa_reply_status(req, 403, "the device belongs to another user");
	else
		ok = true;
out:
	PQclear(res);
	return ok;
}

static fa_result count_active_keys(struct fa_request *req, long *count)
{
	fa_result result;
	PGresult *res = NULL;

	result = fa_db_exec_one(req->db, &res,
	                        "SELECT count(*) FROM device_keys WHERE "
	                        "user_id = $1 AND status = 'active'",
	                        1, (const char *[]){req->caller.id});
	if (result == FA_OK)
		*count = strtol(fa_db_value(res, 0, 0), NULL, 10);
	PQclear(res);
	return result;
}

/*
 * POST /v1/mfa/device-keys {public_key, device_id?}: registers a P-256
 * public key (SubjectPublicKeyInfo PEM) for the calling user. device_id
 * defaults to the device the caller's token is bound to.
 */
void fa_device_keys_register(struct fa_request *req)
{
	static const char *const fields[] = {"public_key", "device_id", NULL};
	fa_result result;
	const char *pem = NULL;
	const char *device_id = req->caller.did;
	char *normalized = NULL;
	char key_id[FA_ID_MAX + 1];
	long count = 0;
	cJSON *body;

	if (!require_otp_user(req) || !fa_json_only_fields(req, fields) ||
	    !fa_json_string(req, "public_key", true, PUBLIC_KEY_PEM_MAX,
	                    FA_STR_NONEMPTY, &pem) ||
	    !fa_json_string(req, "device_id", false, FA_ID_MAX, FA_STR_ID,
	                    &device_id))
		return;
	if (device_id[0] == '\0')
		device_id = NULL;
	result = parse_p256_key(pem, &normalized);
	if (result == FA_ERR_INVALID) {
		fa_reply_problem(
		        req, 400, FA_PROBLEM_INVALID_FIELD, "Invalid field",
		        "public_key must be a PEM SubjectPublicKeyInfo "
		        "of an EC P-256 (prime256v1) key");
		return;
	}
	if (result != FA_OK)
		goto out;
	if (device_id != NULL && !check_bound_device(req, device_id)) {
		free(normalized);
		return;
	}
	result = count_active_keys(req, &count);
	if (result != FA_OK)
		goto out;
	if (count >= KEYS_PER_USER_MAX) {
		fa_reply_status(req, 409,
		                "you have the maximum of 10 active device "
		                "keys: delete one first");
		free(normalized);
		return;
	}
	result = fa_device_random_id("dk-", KEY_ID_CHARS, key_id,
	                             sizeof(key_id));
	if (result == FA_OK)
		result = fa_db_command(req->db,
		                       "INSERT INTO device_keys (id, user_id, "
		                       "device_id, public_pem) VALUES ($1, $2, "
		                       "$3, $4)",
		                       4,
		                       (const char *[]){key_id, req->caller.id,
		                                        device_id, normalized});
	if (result != FA_OK)
		goto out;
	fa_audit(req, "device_key.register", key_id, "success", NULL);
	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "key_id", key_id);
	fa_json_add_nullable(body, "device_id", device_id);
	fa_reply_json(req, 201, body);
out:
	if (result != FA_OK)
		fa_reply_db_error(req, result);
	free(normalized);
}

/* clang-format off */
#define KEY_LIST_COLUMNS \
	"id, device_id, status, " FA_SQL_TIME("created_at") ", " \
	FA_SQL_TIME("revoked_at")
/* clang-format on */

/* GET /v1/mfa/device-keys: the calling user's device keys. */
void fa_device_keys_list(struct fa_request *req)
{
	fa_result result;
	PGresult *res = NULL;
	cJSON *body;
	cJSON *items;
	int i;

	if (req->caller.kind != FA_CALLER_USER) {
		fa_reply_status(req, 403, "only users have device keys");
		return;
	}
	result = fa_db_exec(req->db, &res,
	                    "SELECT " KEY_LIST_COLUMNS
	                    " FROM device_keys WHERE user_id = $1 "
	                    "ORDER BY created_at, id",
	                    1, (const char *[]){req->caller.id});
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	body = cJSON_CreateObject();
	items = cJSON_AddArrayToObject(body, "items");
	for (i = 0; i < PQntuples(res); i++) {
		cJSON *item = cJSON_CreateObject();

		cJSON_AddStringToObject(item, "key_id", fa_db_value(res, i, 0));
		fa_json_add_nullable(item, "device_id", fa_db_value(res, i, 1));
		cJSON_AddStringToObject(item, "status", fa_db_value(res, i, 2));
		cJSON_AddStringToObject(item, "created_at",
		                        fa_db_value(res, i, 3));
		fa_json_add_nullable(item, "revoked_at",
		                     fa_db_value(res, i, 4));
		cJSON_AddItemToArray(items, item);
	}
	PQclear(res);
	fa_reply_json(req, 200, body);
}

/* The key's owner may delete it, and so may a fleet manager (or anyone
 * above) of the owner's carrier. */
static bool may_revoke_key(struct fa_request *req, const char *owner,
                           const char *owner_carrier)
{
	if (req->caller.kind == FA_CALLER_USER &&
	    strcmp(req->caller.id, owner) == 0)
		return true;
	if (!fa_role_covers(req->caller.role, FA_ROLE_FLEET_MANAGER)) {
		fa_reply_status(req, 404, "device key not found");
		return false;
	}
	if (owner_carrier == NULL)
		return fa_require_role(req, FA_ROLE_SYSTEM_ADMIN);
	return fa_require_carrier(req, owner_carrier);
}

/* DELETE /v1/mfa/device-keys/{id}: revokes a device key. */
void fa_device_keys_revoke(struct fa_request *req)
{
	fa_result result;
	const char *id = req->params[0];
	PGresult *res = NULL;
	cJSON *body;

	result = fa_db_exec_one(req->db, &res,
	                        "SELECT k.user_id, u.carrier_id, k.status "
	                        "FROM device_keys k JOIN users u ON u.id = "
	                        "k.user_id WHERE k.id = $1",
	                        1, (const char *[]){id});
	if (result == FA_ERR_NOT_FOUND) {
		fa_reply_status(req, 404, "device key not found");
		return;
	}
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	if (!may_revoke_key(req, fa_db_value(res, 0, 0),
	                    fa_db_value(res, 0, 1)))
		goto out;
	if (strcmp(fa_db_value(res, 0, 2), "revoked") == 0) {
		fa_reply_status(req, 409, "device key is already revoked");
		goto out;
	}
	result = fa_db_command(req->db,
	                       "UPDATE device_keys SET status = 'revoked', "
	                       "revoked_at = now() WHERE id = $1",
	                       1, (const char *[]){id});
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		goto out;
	}
	fa_audit(req, "device_key.revoke", id, "success", NULL);
	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "key_id", id);
	cJSON_AddStringToObject(body, "status", "revoked");
	fa_reply_json(req, 200, body);
out:
	PQclear(res);
}

/* ------------------------------------------------------------------ */
/* Login with a device key                                             */
/* ------------------------------------------------------------------ */

/*
 * POST /v1/auth/device-key/challenge {key_id}: public. Returns a nonce
 * (32 random bytes, base64url) that the key must sign within 60 seconds.
 * Only the SHA-256 of the nonce is stored.
 */
/*
 * Returns true, after replying 429 or a database error, when key_id
 * already has OPEN_NONCES_MAX open challenges. Retry-After is the time
 * until the oldest of them expires.
 */
static bool too_many_open_nonces(struct fa_request *req, const char *key_id)
{
	PGresult *res = NULL;
	char retry[24];
	char message[128];
	cJSON *detail;
	fa_result result;

	result = fa_db_exec_one(
	        req->db, &res,
	        "SELECT count(*), ceil(extract(epoch FROM min(expires_at) - "
	        "now()))::bigint FROM device_key_nonces WHERE key_id = $1 AND "
	        "used_at IS NULL AND expires_at > now()",
	        1, (const char *[]){key_id});
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return true;
	}
	if (strtoll(fa_db_value(res, 0, 0), NULL, 10) < OPEN_NONCES_MAX) {
		PQclear(res);
		return false;
	}
	snprintf(retry, sizeof(retry), "%lld",
	         llabs(strtoll(fa_db_value(res, 0, 1), NULL, 10)) + 1);
	PQclear(res);
	detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "reason", "too_many_open_challenges");
	fa_audit(req, "device_key.challenge", key_id, "denied", detail);
	cJSON_Delete(detail);
	snprintf(message, sizeof(message),
	         "key %s already has %d open challenges: answer one, or "
	         "retry after %s seconds",
	         key_id, OPEN_NONCES_MAX, retry);
	fa_reply_header(req, "Retry-After", retry);
	fa_reply_problem(req, 429, FA_PROBLEM_THROTTLED,
	                 "Too many open challenges", message);
	return true;
}

void fa_device_keys_challenge(struct fa_request *req)
{
	static const char *const fields[] = {"key_id", NULL};
	fa_result result;
	const char *key_id = NULL;
	PGresult *res = NULL;
	uint8_t bytes[NONCE_BYTES];
	char nonce[64];
	char hash[67];
	char ttl[16];
	cJSON *body;

	if (!fa_json_only_fields(req, fields) ||
	    !fa_json_string(req, "key_id", true, FA_ID_MAX, FA_STR_ID, &key_id))
		return;
	result = fa_db_exec_one(req->db, &res,
	                        "SELECT status FROM device_keys WHERE id = $1",
	                        1, (const char *[]){key_id});
	if (result == FA_ERR_NOT_FOUND) {
		fa_reply_status(req, 404, "device key not found");
		return;
	}
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	if (strcmp(fa_db_value(res, 0, 0), "active") != 0) {
		PQclear(res);
		fa_audit(req, "device_key.challenge", key_id, "denied", NULL);
		fa_reply_status(req, 403,
		                "device key is revoked: register "
		                "a new one");
		return;
	}
	PQclear(res);
	res = NULL;
	if (too_many_open_nonces(req, key_id))
		return;
	result = fa_random_bytes(bytes, sizeof(bytes));
	if (result != FA_OK)
		goto out;
	fa_b64url_encode(bytes, sizeof(bytes), nonce, sizeof(nonce));
	fa_device_hash_param(nonce, hash);
	snprintf(ttl, sizeof(ttl), "%d", NONCE_TTL_SECONDS);
	result = fa_db_command(req->db,
	                       "DELETE FROM device_key_nonces WHERE key_id = "
	                       "$1 AND expires_at < now() - interval "
	                       "'1 hour'",
	                       1, (const char *[]){key_id});
	if (result == FA_OK)
		result = fa_db_exec_one(
		        req->db, &res,
		        "INSERT INTO device_key_nonces (nonce_hash, key_id, "
		        "expires_at) VALUES ($1, $2, now() + "
		        "make_interval(secs => $3::int)) "
		        "RETURNING " FA_SQL_TIME("expires_at"),
		        3, (const char *[]){hash, key_id, ttl});
	if (result != FA_OK)
		goto out;
	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "nonce", nonce);
	cJSON_AddStringToObject(body, "expires_at", fa_db_value(res, 0, 0));
	fa_reply_json(req, 200, body);
out:
	if (result != FA_OK)
		fa_reply_db_error(req, result);
	PQclear(res);
}

/*
 * Marks the nonce used if it is unused, unexpired and was issued for
 * key_id. Sets *reason when it is not. The nonce is spent even when the
 * signature later fails, so each nonce allows one attempt.
 */
static fa_result spend_nonce(struct fa_request *req, const char *hash,
                             const char *key_id, const char **reason)
{
	fa_result result;
	PGresult *res = NULL;

	*reason = NULL;
	result = fa_db_begin(req->db);
	if (result != FA_OK)
		return result;
	result = fa_db_exec(req->db, &res,
	                    "SELECT key_id, expires_at > now(), used_at IS "
	                    "NULL FROM device_key_nonces WHERE nonce_hash = $1 "
	                    "FOR UPDATE",
	                    1, (const char *[]){hash});
	if (result != FA_OK)
		goto fail;
	if (PQntuples(res) != 1 || strcmp(fa_db_value(res, 0, 0), key_id) != 0)
		*reason = "unknown nonce";
	else if (strcmp(fa_db_value(res, 0, 2), "t") != 0)
		*reason = "nonce already used";
	else if (strcmp(fa_db_value(res, 0, 1), "t") != 0)
		*reason = "nonce expired";
	if (PQntuples(res) == 1 && strcmp(fa_db_value(res, 0, 2), "t") == 0)
		result = fa_db_command(req->db,
		                       "UPDATE device_key_nonces SET used_at = "
		                       "now() WHERE nonce_hash = $1",
		                       1, (const char *[]){hash});
	if (result == FA_OK)
		result = fa_db_commit(req->db);
	if (result == FA_OK)
		goto out;
fail:
	fa_db_rollback(req->db);
out:
	PQclear(res);
	return result;
}

/* Login state of a device key and its user. */
struct key_login {
	char user[FA_ID_MAX + 1];
	char carrier[FA_ID_MAX + 1];
	char device[FA_ID_MAX + 1];
	enum fa_role role;
};

/*
 * Loads the key, its user and bound device and checks that the key is
 * active, the device not revoked, the user active and inside their access
 * window, and that signature verifies over the nonce. Sets *reason on a
 * denial.
 */
static fa_result check_key_login(struct fa_request *req, const char *key_id,
                                 const char *nonce, const uint8_t *signature,
                                 size_t signature_len, struct key_login *login,
                                 const char **reason)
{
	fa_result result;
	PGresult *res = NULL;
	EVP_PKEY *key = NULL;
	BIO *bio;

	*reason = NULL;
	result = fa_db_exec_one(
	        req->db, &res,
	        "SELECT k.public_pem, k.status, k.user_id, k.device_id, "
	        "coalesce(d.status, ''), u.status, u.role, "
	        "coalesce(u.carrier_id, ''), " FA_SQL_IN_WINDOW
	        " FROM device_keys k JOIN users u ON u.id = k.user_id "
	        "LEFT JOIN carriers c ON c.id = u.carrier_id "
	        "LEFT JOIN devices d ON d.id = k.device_id" FA_SQL_LOCAL_TIME
	        "WHERE k.id = $1",
	        1, (const char *[]){key_id});
	if (result == FA_ERR_NOT_FOUND) {
		*reason = "unknown key";
		return FA_OK;
	}
	if (result != FA_OK)
		return result;
	snprintf(login->user, sizeof(login->user), "%s",
	         fa_db_value(res, 0, 2));
	snprintf(login->device, sizeof(login->device), "%s",
	         fa_db_value(res, 0, 3) != NULL ? fa_db_value(res, 0, 3) : "");
	snprintf(login->carrier, sizeof(login->carrier), "%s",
	         fa_db_value(res, 0, 7));
	login->role = fa_role_parse(fa_db_value(res, 0, 6));
	if (strcmp(fa_db_value(res, 0, 1), "active") != 0)
		*reason = "key revoked";
	else if (strcmp(fa_db_value(res, 0, 4), "revoked") == 0)
		*reason = "device revoked";
	else if (strcmp(fa_db_value(res, 0, 5), "active") != 0)
		*reason = "user not active";
	else if (strcmp(fa_db_value(res, 0, 8), "t") != 0)
		*reason = "outside access window";
	if (*reason != NULL)
		goto out;
	bio = BIO_new_mem_buf(fa_db_value(res, 0, 0), -1);
	if (bio != NULL)
		key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (key == NULL) {
		result = FA_ERR_CRYPTO;
		goto out;
	}
	if (fa_pkey_verify_sha256(key, (const uint8_t *)nonce, strlen(nonce),
	                          signature, signature_len) != FA_OK)
		*reason = "bad signature";
out:
	EVP_PKEY_free(key);
	PQclear(res);
	ERR_clear_error();
	return result;
}

/* Creates a refresh family bound to the key's device and signs an access
 * token with amr hwk and bio; commits and replies the pair. */
static void issue_tokens(struct fa_request *req, const char *key_id,
                         const struct key_login *login)
{
	fa_result result;
	const unsigned amr = FA_AMR_HWK | FA_AMR_BIO;
	const char *device = login->device[0] != '\0' ? login->device : NULL;
	char family[FA_ID_MAX + 1];
	char refresh[FA_REFRESH_TOKEN_LEN + 1] = "";
	char *access = NULL;
	struct fa_access_claims claims = {0};
	cJSON *detail;
	cJSON *body;
	cJSON *amr_list;

	result = fa_db_begin(req->db);
	if (result == FA_OK)
		result = fa_refresh_family_create(req->db, &req->svc->config,
		                                  login->user, device, amr,
		                                  family, refresh);
	claims.sub = login->user;
	claims.role = login->role;
	claims.carrier = login->carrier;
	claims.amr = amr;
	claims.fam = family;
	claims.did = device;
	if (result == FA_OK)
		result = fa_access_token_issue(req->svc, req->db, &claims,
		                               &access);
	if (result == FA_OK) {
		detail = cJSON_CreateObject();
		cJSON_AddStringToObject(detail, "key_id", key_id);
		cJSON_AddStringToObject(detail, "family", family);
		result = fa_audit(req, "auth.device_key", login->user,
		                  "success", detail);
		cJSON_Delete(detail);
	}
	if (result == FA_OK)
		result = fa_throttle_success(req->db, login->user);
	if (result == FA_OK)
		result = fa_db_commit(req->db);
	if (result != FA_OK) {
		fa_db_rollback(req->db);
		if (result == FA_ERR_NOT_FOUND)
			fa_reply_status(req, 503,
			                "no token-signing key is "
			                "configured");
		else
			fa_reply_db_error(req, result);
		goto out;
	}
	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "access_token", access);
	cJSON_AddStringToObject(body, "token_type", "Bearer");
	cJSON_AddNumberToObject(body, "expires_in",
	                        (double)req->svc->config.access_token_ttl);
	cJSON_AddStringToObject(body, "refresh_token", refresh);
	amr_list = cJSON_AddArrayToObject(body, "amr");
	cJSON_AddItemToArray(amr_list, cJSON_CreateString("hwk"));
	cJSON_AddItemToArray(amr_list, cJSON_CreateString("bio"));
	fa_reply_json(req, 200, body);
out:
	if (access != NULL)
		fa_wipe(access, strlen(access));
	free(access);
	fa_wipe(refresh, sizeof(refresh));
}

/* Audits a failed device-key login, counts it against the address (and
 * the user when known) and replies 401. */
static void deny_key_login(struct fa_request *req, const char *key_id,
                           const char *user, const char *reason)
{
	struct fa_throttle_state state = {0};
	cJSON *detail = cJSON_CreateObject();

	cJSON_AddStringToObject(detail, "reason", reason);
	cJSON_AddStringToObject(detail, "key_id", key_id);
	fa_audit(req, "auth.device_key", user, "denied", detail);
	cJSON_Delete(detail);
	fa_throttle_failure(req->db, &req->svc->config, user,
	                    req->client_address, &state);
	fa_reply_header(req, "WWW-Authenticate", "Bearer");
	fa_reply_status(req, 401,
	                "device-key login failed: request a new nonce and "
	                "sign it with the registered key");
}

static bool throttled(struct fa_request *req, const char *user)
{
	struct fa_throttle_state state = {0};
	char retry[24];

	if (fa_throttle_check(req->db, user, req->client_address, &state) !=
	            FA_OK ||
	    state.retry_after == 0)
		return false;
	snprintf(retry, sizeof(retry), "%lld", state.retry_after);
	fa_reply_header(req, "Retry-After", retry);
	fa_reply_status(req, 429,
	                "too many failed logins; retry after the time in "
	                "Retry-After");
	return true;
}

/*
 * POST /v1/auth/device-key/verify {key_id, nonce, signature}: public.
 * signature is the base64 DER ECDSA signature by the device key over the
 * SHA-256 of the nonce string's bytes. On success returns an access token
 * and a refresh token with amr ["hwk", "bio"].
 */
void fa_device_keys_verify(struct fa_request *req)
{
	static const char *const fields[] = {"key_id", "nonce", "signature",
	                                     NULL};
	fa_result result;
	const char *key_id = NULL;
	const char *nonce = NULL;
	const char *signature_text = NULL;
	uint8_t signature[SIGNATURE_MAX];
	size_t signature_len = 0;
	char hash[67];
	const char *reason = NULL;
	struct key_login login = {0};

	if (!fa_json_only_fields(req, fields) ||
	    !fa_json_string(req, "key_id", true, FA_ID_MAX, FA_STR_ID,
	                    &key_id) ||
	    !fa_json_string(req, "nonce", true, 64, FA_STR_NONEMPTY, &nonce) ||
	    !fa_json_string(req, "signature", true, 2 * (size_t)SIGNATURE_MAX,
	                    FA_STR_NONEMPTY, &signature_text))
		return;
	if (fa_base64_decode_any(signature_text, signature, sizeof(signature),
	                         &signature_len) != FA_OK) {
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_FIELD,
		                 "Invalid field",
		                 "signature must be base64 of a DER ECDSA "
		                 "signature");
		return;
	}
	if (throttled(req, NULL))
		return;
	fa_device_hash_param(nonce, hash);
	result = spend_nonce(req, hash, key_id, &reason);
	if (result == FA_OK && reason == NULL)
		result = check_key_login(req, key_id, nonce, signature,
		                         signature_len, &login, &reason);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	if (reason != NULL) {
		deny_key_login(req, key_id,
		               login.user[0] != '\0' ? login.user : NULL,
		               reason);
		return;
	}
	if (throttled(req, login.user))
		return;
	issue_tokens(req, key_id, &login);
}
