/*
 * API keys for service-to-service callers: "fak_" + 43 base64url
 * characters, shown once at creation and stored only as SHA-256. A key acts
 * with a role and carrier and may call only routes whose scope it holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices.h"

#define API_KEY_PREFIX "fak_"
#define API_KEY_SECRET_BYTES 32
/* "fak_" and the first 8 secret characters: enough to tell keys apart in a
 * listing, far too few to guess the rest. */
#define API_KEY_PREFIX_SHOWN 12
#define API_KEY_ID_CHARS 16
#define API_KEY_NAME_MAX 200
#define EXPIRES_IN_DEFAULT (90LL * 86400)
#define EXPIRES_IN_MIN 60LL
#define EXPIRES_IN_MAX (365LL * 86400)
#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 500

/* Every scope a key may hold. "*" allows every route, including routes
 * that have no scope of their own. */
static const char *const known_scopes[] = {"carriers:read",
                                           "carriers:write",
                                           "users:read",
                                           "users:write",
                                           "loads:read",
                                           "loads:write",
                                           "devices:read",
                                           "devices:write",
                                           "audit:read",
                                           "signing-keys:read",
                                           "signing-keys:write",
                                           "keys:admin",
                                           "*",
                                           NULL};

/* Scopes only a system administrator may grant: they reach keys that
 * authenticate others. */
static bool admin_only_scope(const char *scope)
{
	return strcmp(scope, "*") == 0 || strcmp(scope, "keys:admin") == 0 ||
	       strcmp(scope, "signing-keys:write") == 0;
}

static bool known_scope(const char *scope)
{
	size_t i;

	for (i = 0; known_scopes[i] != NULL; i++) {
		if (strcmp(scope, known_scopes[i]) == 0)
			return true;
	}
	return false;
}

/* Audits a refused key creation with reason and replies 403. */
static void deny_create(struct fa_request *req, const char *reason,
                        const char *message)
{
	cJSON *detail = cJSON_CreateObject();

	cJSON_AddStringToObject(detail, "reason", reason);
	fa_audit(req, "api_key.create", NULL, "denied", detail);
	cJSON_Delete(detail);
	fa_reply_status(req, 403, message);
}

static void reply_invalid(struct fa_request *req, const char *detail)
{
	fa_reply_problem(req, 400, FA_PROBLEM_INVALID_FIELD, "Invalid field",
	                 detail);
}

/*
 * Checks the scopes array (known names, no duplicates, admin-only scopes
 * only for system administrators) and writes it as a Postgres text[]
 * literal into out. Replies 400 or 403 and returns false otherwise.
 */
static bool scopes_literal(struct fa_request *req, const cJSON *scopes,
                           char *out, size_t size)
{
	const cJSON *item;
	const cJSON *other;
	char message[160];
	size_t used = 1;

	if (cJSON_GetArraySize(scopes) == 0) {
		reply_invalid(req, "scopes must name at least one scope");
		return false;
	}
	snprintf(out, size, "{");
	cJSON_ArrayForEach(item, scopes)
	{
		const char *scope = item->valuestring;

		if (!known_scope(scope)) {
			snprintf(message, sizeof(message),
			         "scope \"%.64s\" is unknown; see the scope "
			         "list in docs/api.md",
			         scope);
			reply_invalid(req, message);
			return false;
		}
		for (other = scopes->child; other != item;
		     other = other->next) {
			if (strcmp(other->valuestring, scope) == 0) {
				reply_invalid(req, "scopes lists a scope "
				                   "twice");
				return false;
			}
		}
		if (admin_only_scope(scope) &&
		    req->caller.role != FA_ROLE_SYSTEM_ADMIN) {
			deny_create(req, "admin-only scope",
			            "only a system_admin may grant the scopes "
			            "*, keys:admin and signing-keys:write");
			return false;
		}
		used += (size_t)snprintf(out + used, size - used, "%s\"%s\"",
		                         used > 1 ? "," : "", scope);
	}
	snprintf(out + used, size - used, "}");
	return true;
}

/*
 * Decides the role and carrier of a new key. The role defaults to the
 * caller's and must be covered by it; carrier roles need a carrier and
 * platform roles have none. Callers of a carrier may only name their own.
 */
static bool key_role_and_carrier(struct fa_request *req, enum fa_role *role,
                                 const char **carrier)
{
	*role = req->caller.role;
	*carrier = req->caller.carrier[0] != '\0' ? req->caller.carrier : NULL;
	if (!fa_json_role(req, "role", false, role) ||
	    !fa_json_string(req, "carrier", false, FA_ID_MAX, FA_STR_ID,
	                    carrier))
		return false;
	if (!fa_role_covers(req->caller.role, *role)) {
		deny_create(req, "role above the caller's",
		            "a key's role must be your role or one below it");
		return false;
	}
	if (fa_role_is_carrier_role(*role) && *carrier == NULL) {
		reply_invalid(req, "carrier is required for a key with a "
		                   "carrier role");
		return false;
	}
	if (!fa_role_is_carrier_role(*role) && *carrier != NULL &&
	    fa_caller_is_platform(&req->caller)) {
		reply_invalid(req, "carrier must be absent for a key with a "
		                   "platform role");
		return false;
	}
	if (!fa_role_is_carrier_role(*role))
		*carrier = NULL;
	return *carrier == NULL || fa_require_carrier(req, *carrier);
}

static cJSON *created_key_json(const char *id, const char *key,
                               const char *name, const cJSON *scopes,
                               enum fa_role role, const char *carrier,
                               const char *expires_at)
{
	cJSON *body = cJSON_CreateObject();
	char prefix[API_KEY_PREFIX_SHOWN + 1];

	snprintf(prefix, sizeof(prefix), "%s", key);
	cJSON_AddStringToObject(body, "id", id);
	cJSON_AddStringToObject(body, "key", key);
	cJSON_AddStringToObject(body, "key_prefix", prefix);
	cJSON_AddStringToObject(body, "name", name);
	cJSON_AddItemToObject(body, "scopes", cJSON_Duplicate(scopes, true));
	cJSON_AddStringToObject(body, "role", fa_role_name(role));
	fa_json_add_nullable(body, "carrier", carrier);
	cJSON_AddStringToObject(body, "expires_at", expires_at);
	return body;
}

/* Inserts the key row; *expires_out receives the formatted expiry. */
static fa_result insert_key(struct fa_request *req, const char *id,
                            const char *key, const char *name,
                            const char *scopes, enum fa_role role,
                            const char *carrier, long long expires_in,
                            char *expires_out, size_t expires_size)
{
	fa_result result;
	PGresult *res = NULL;
	char prefix[API_KEY_PREFIX_SHOWN + 1];
	char hash[67];
	char seconds[24];

	snprintf(prefix, sizeof(prefix), "%s", key);
	fa_device_hash_param(key, hash);
	snprintf(seconds, sizeof(seconds), "%lld", expires_in);
	result = fa_db_exec_one(
	        req->db, &res,
	        "INSERT INTO api_keys (id, name, key_prefix, key_hash, role, "
	        "carrier_id, scopes, created_by, expires_at) VALUES ($1, $2, "
	        "$3, $4, $5, $6, $7::text[], $8, now() + make_interval(secs "
	        "=> $9::bigint)) RETURNING " FA_SQL_TIME("expires_at"),
	        9,
	        (const char *[]){id, name, prefix, hash, fa_role_name(role),
	                         carrier, scopes, req->caller.id, seconds});
	if (result == FA_OK)
		snprintf(expires_out, expires_size, "%s",
		         fa_db_value(res, 0, 0));
	PQclear(res);
	return result;
}

static fa_result new_secret(char *key, size_t size)
{
	fa_result result;
	uint8_t bytes[API_KEY_SECRET_BYTES];

	result = fa_random_bytes(bytes, sizeof(bytes));
	if (result != FA_OK)
		return result;
	memcpy(key, API_KEY_PREFIX, strlen(API_KEY_PREFIX));
	if (fa_b64url_encode(bytes, sizeof(bytes), key + strlen(API_KEY_PREFIX),
	                     size - strlen(API_KEY_PREFIX)) == 0)
		result = FA_ERR_TOO_LARGE;
	fa_wipe(bytes, sizeof(bytes));
	return result;
}

/*
 * POST /v1/api-keys {name, scopes, expires_in?, role?, carrier?}: creates
 * a key for system administrators (any scope) and fleet managers (their
 * own carrier, no admin-only scope). expires_in is in seconds, 90 days by
 * default and one year at most. The key is in the response only.
 */
void fa_api_keys_create(struct fa_request *req)
{
	static const char *const fields[] = {"name", "scopes",  "expires_in",
	                                     "role", "carrier", NULL};
	fa_result result;
	const char *name = NULL;
	const cJSON *scopes = NULL;
	long long expires_in = EXPIRES_IN_DEFAULT;
	enum fa_role role;
	const char *carrier;
	char scope_text[FA_SCOPES_MAX * (FA_SCOPE_MAX + 3) + 3];
	char id[FA_ID_MAX + 1];
	char key[64];
	char expires_at[32];
	cJSON *detail;

	if (!fa_require_role(req, FA_ROLE_FLEET_MANAGER) ||
	    !fa_json_only_fields(req, fields) ||
	    !fa_json_string(req, "name", true, API_KEY_NAME_MAX,
	                    FA_STR_NONEMPTY | FA_STR_TEXT, &name) ||
	    !fa_json_string_array(req, "scopes", true, FA_SCOPES_MAX,
	                          FA_SCOPE_MAX, FA_STR_NONEMPTY, &scopes) ||
	    !fa_json_int(req, "expires_in", false, EXPIRES_IN_MIN,
	                 EXPIRES_IN_MAX, &expires_in) ||
	    !key_role_and_carrier(req, &role, &carrier) ||
	    !scopes_literal(req, scopes, scope_text, sizeof(scope_text)))
		return;
	result = fa_device_random_id("ak-", API_KEY_ID_CHARS, id, sizeof(id));
	if (result == FA_OK)
		result = new_secret(key, sizeof(key));
	if (result == FA_OK)
		result = insert_key(req, id, key, name, scope_text, role,
		                    carrier, expires_in, expires_at,
		                    sizeof(expires_at));
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		goto out;
	}
	detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "name", name);
	cJSON_AddItemToObject(detail, "scopes", cJSON_Duplicate(scopes, true));
	cJSON_AddStringToObject(detail, "role", fa_role_name(role));
	fa_json_add_nullable(detail, "carrier", carrier);
	fa_audit(req, "api_key.create", id, "success", detail);
	cJSON_Delete(detail);
	fa_reply_json(req, 201,
	              created_key_json(id, key, name, scopes, role, carrier,
	                               expires_at));
out:
	fa_wipe(key, sizeof(key));
}

/* clang-format off */
#define KEY_COLUMNS \
	"id, name, key_prefix, role, carrier_id, " \
	"array_to_json(scopes)::text, created_by, " \
	FA_SQL_TIME("created_at") ", " FA_SQL_TIME("expires_at") ", " \
	FA_SQL_TIME("revoked_at") ", " FA_SQL_TIME("last_used_at") ", " \
	"CASE WHEN revoked_at IS NOT NULL THEN 'revoked' " \
	"WHEN expires_at <= now() THEN 'expired' ELSE 'active' END"
/* clang-format on */

static cJSON *key_json(const PGresult *res, int row)
{
	cJSON *item = cJSON_CreateObject();

	cJSON_AddStringToObject(item, "id", fa_db_value(res, row, 0));
	cJSON_AddStringToObject(item, "name", fa_db_value(res, row, 1));
	cJSON_AddStringToObject(item, "key_prefix", fa_db_value(res, row, 2));
	cJSON_AddStringToObject(item, "role", fa_db_value(res, row, 3));
	fa_json_add_nullable(item, "carrier", fa_db_value(res, row, 4));
	cJSON_AddItemToObject(item, "scopes",
	                      cJSON_Parse(fa_db_value(res, row, 5)));
	cJSON_AddStringToObject(item, "created_by", fa_db_value(res, row, 6));
	cJSON_AddStringToObject(item, "created_at", fa_db_value(res, row, 7));
	cJSON_AddStringToObject(item, "expires_at", fa_db_value(res, row, 8));
	fa_json_add_nullable(item, "revoked_at", fa_db_value(res, row, 9));
	fa_json_add_nullable(item, "last_used_at", fa_db_value(res, row, 10));
	cJSON_AddStringToObject(item, "status", fa_db_value(res, row, 11));
	return item;
}

/*
 * GET /v1/api-keys?carrier=&limit=&after=: keys without their secrets,
 * ordered by id, at most limit (default 100) per page. Platform callers see
 * every key (or one carrier's), fleet managers their carrier's.
 */
void fa_api_keys_list(struct fa_request *req)
{
	fa_result result;
	const char *carrier = NULL;
	const char *after = NULL;
	long long limit = LIST_LIMIT_DEFAULT;
	char limit_text[24];
	PGresult *res = NULL;
	cJSON *body;
	cJSON *items;
	int i;

	if (!fa_require_role(req, FA_ROLE_FLEET_MANAGER) ||
	    !fa_query_id(req, "carrier", &carrier) ||
	    !fa_query_id(req, "after", &after) ||
	    !fa_query_int(req, "limit", 1, LIST_LIMIT_MAX, &limit))
		return;
	if (!fa_caller_is_platform(&req->caller)) {
		if (carrier != NULL && !fa_require_carrier(req, carrier))
			return;
		carrier = req->caller.carrier;
	}
	snprintf(limit_text, sizeof(limit_text), "%lld", limit);
	result = fa_db_exec(req->db, &res,
	                    "SELECT " KEY_COLUMNS " FROM api_keys "
	                    "WHERE ($1::text IS NULL OR carrier_id = $1) "
	                    "AND ($2::text IS NULL OR id > $2) "
	                    "ORDER BY id LIMIT $3::int",
	                    3, (const char *[]){carrier, after, limit_text});
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	body = cJSON_CreateObject();
	items = cJSON_AddArrayToObject(body, "items");
	for (i = 0; i < PQntuples(res); i++)
		cJSON_AddItemToArray(items, key_json(res, i));
	if (PQntuples(res) == limit)
		cJSON_AddStringToObject(
		        body, "next", fa_db_value(res, PQntuples(res) - 1, 0));
	PQclear(res);
	fa_reply_json(req, 200, body);
}

/* DELETE /v1/api-keys/{id}: revokes a key at once. */
void fa_api_keys_revoke(struct fa_request *req)
{
	fa_result result;
	const char *id = req->params[0];
	PGresult *res = NULL;
	const char *carrier;
	cJSON *body;

	if (!fa_require_role(req, FA_ROLE_FLEET_MANAGER))
		return;
	result = fa_db_exec_one(req->db, &res,
	                        "SELECT carrier_id, revoked_at IS NOT NULL "
	                        "FROM api_keys WHERE id = $1",
	                        1, (const char *[]){id});
	if (result == FA_ERR_NOT_FOUND) {
		fa_reply_status(req, 404, "API key not found");
		return;
	}
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	carrier = fa_db_value(res, 0, 0);
	if (!fa_require_carrier(req, carrier != NULL ? carrier : ""))
		goto out;
	if (strcmp(fa_db_value(res, 0, 1), "t") == 0) {
		fa_reply_status(req, 409, "API key is already revoked");
		goto out;
	}
	result = fa_db_command(req->db,
	                       "UPDATE api_keys SET revoked_at = now() WHERE "
	                       "id = $1 AND revoked_at IS NULL",
	                       1, (const char *[]){id});
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		goto out;
	}
	fa_audit(req, "api_key.revoke", id, "success", NULL);
	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "id", id);
	cJSON_AddStringToObject(body, "status", "revoked");
	fa_reply_json(req, 200, body);
out:
	PQclear(res);
}
