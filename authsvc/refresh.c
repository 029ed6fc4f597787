#include "refresh.h"

#include <stdio.h>
#include <string.h>

#include "fa_crypto.h"

static const struct {
	unsigned bit;
	const char *name;
} amr_names[] = {{FA_AMR_PWD, "pwd"},
                 {FA_AMR_OTP, "otp"},
                 {FA_AMR_HWK, "hwk"},
                 {FA_AMR_BIO, "bio"}};

#define AMR_COUNT (sizeof(amr_names) / sizeof(*amr_names))

unsigned fa_amr_parse_array(const char *text)
{
	unsigned amr = 0;
	size_t i;

	if (text == NULL)
		return 0;
	for (i = 0; i < AMR_COUNT; i++) {
		size_t len = strlen(amr_names[i].name);
		const char *p = strstr(text, amr_names[i].name);

		if (p != NULL && p > text && (p[-1] == '{' || p[-1] == ',') &&
		    (p[len] == '}' || p[len] == ','))
			amr |= amr_names[i].bit;
	}
	return amr;
}

void fa_amr_format_array(unsigned amr, char *out, size_t size)
{
	size_t pos = (size_t)snprintf(out, size, "{");
	size_t i;

	for (i = 0; i < AMR_COUNT && pos < size; i++) {
		if ((amr & amr_names[i].bit) == 0)
			continue;
		pos += (size_t)snprintf(out + pos, size - pos, "%s%s",
		                        pos > 1 ? "," : "", amr_names[i].name);
	}
	if (pos < size)
		snprintf(out + pos, size - pos, "}");
}

/* Inserts a new token of family (expiring with the family). */
static fa_result insert_token(PGconn *db, const char *family,
                              char token[FA_REFRESH_TOKEN_LEN + 1])
{
	uint8_t hash[FA_SHA256_LEN];
	char hash_hex[67];
	PGresult *res = NULL;
	fa_result result;

	result = fa_random_secret(FA_REFRESH_PREFIX, token,
	                          FA_REFRESH_TOKEN_LEN + 1, hash);
	if (result != FA_OK)
		return result;
	fa_bytea_hex(hash, hash_hex);
	result =
	        fa_db_exec_one(db, &res,
	                       "INSERT INTO refresh_tokens (token_hash, "
	                       "family_id, expires_at) SELECT $1::bytea, id, "
	                       "expires_at FROM refresh_families WHERE id = $2",
	                       2, (const char *[]){hash_hex, family});
	PQclear(res);
	return result;
}

fa_result fa_refresh_family_create(PGconn *db,
                                   const struct fa_service_config *config,
                                   const char *user, const char *device,
                                   unsigned amr, char family[FA_ID_MAX + 1],
                                   char token[FA_REFRESH_TOKEN_LEN + 1])
{
	char days[24];
	char amr_text[32];
	fa_result result;

	token[0] = '\0';
	result = fa_random_id(family);
	if (result != FA_OK)
		return result;
	snprintf(days, sizeof(days), "%lld", config->refresh_token_days);
	fa_amr_format_array(amr, amr_text, sizeof(amr_text));
	result = fa_db_command(
	        db,
	        "INSERT INTO refresh_families (id, user_id, "
	        "device_id, amr, expires_at) VALUES ($1, $2, "
	        "$3, $4::text[], now() + make_interval(days => "
	        "$5::int))",
	        5, (const char *[]){family, user, device, amr_text, days});
	if (result != FA_OK)
		return result;
	return insert_token(db, family, token);
}

static void copy_value(char *out, size_t size, const PGresult *res, int col)
{
	const char *value = fa_db_value(res, 0, col);

	snprintf(out, size, "%s", value != NULL ? value : "");
}

static bool is_true(const PGresult *res, int col)
{
	const char *value = fa_db_value(res, 0, col);

	return value != NULL && value[0] == 't';
}

/* Columns: 0 family, 1 rotated, 2 expired, 3 revoked, 4 user, 5 device,
 * 6 amr, 7 active, 8 role, 9 carrier, 10 in window, 11 window text. */
static const char lookup_sql[] =
        "SELECT t.family_id, t.rotated_at IS NOT NULL, "
        "t.expires_at <= now() OR f.expires_at <= now(), "
        "f.revoked_at IS NOT NULL, f.user_id, f.device_id, f.amr, "
        "u.status = 'active', u.role, u.carrier_id, " FA_SQL_IN_WINDOW
        ", " FA_SQL_WINDOW_TEXT " FROM refresh_tokens t "
        "JOIN refresh_families f ON f.id = t.family_id "
        "JOIN users u ON u.id = f.user_id "
        "LEFT JOIN carriers c ON c.id = u.carrier_id" FA_SQL_LOCAL_TIME
        "WHERE t.token_hash = $1 FOR UPDATE OF t";

/* Fills out from the locked row and decides the outcome. */
static void read_row(const PGresult *res, struct fa_refresh_result *out)
{
	copy_value(out->family, sizeof(out->family), res, 0);
	copy_value(out->user, sizeof(out->user), res, 4);
	copy_value(out->device, sizeof(out->device), res, 5);
	copy_value(out->carrier, sizeof(out->carrier), res, 9);
	copy_value(out->window, sizeof(out->window), res, 11);
	out->amr = fa_amr_parse_array(fa_db_value(res, 0, 6));
	out->role = fa_role_parse(fa_db_value(res, 0, 8));
	if (is_true(res, 1))
		out->outcome = is_true(res, 3) ? FA_REFRESH_REVOKED
		                               : FA_REFRESH_REUSED;
	else if (is_true(res, 3))
		out->outcome = FA_REFRESH_REVOKED;
	else if (is_true(res, 2))
		out->outcome = FA_REFRESH_EXPIRED;
	else if (!is_true(res, 7))
		out->outcome = FA_REFRESH_USER_INACTIVE;
	else if (!is_true(res, 10))
		out->outcome = FA_REFRESH_OUTSIDE_WINDOW;
	else
		out->outcome = FA_REFRESH_OK;
}

/* Revokes the family of a reused token and records it; the caller
 * commits. */
static fa_result revoke_reused(struct fa_request *req,
                               const struct fa_refresh_result *out)
{
	cJSON *detail = cJSON_CreateObject();
	fa_result result;

	result =
	        fa_db_command(req->db,
	                      "UPDATE refresh_families SET revoked_at = now(), "
	                      "revoke_reason = 'reuse' WHERE id = $1 AND "
	                      "revoked_at IS NULL",
	                      1, (const char *[]){out->family});
	if (result != FA_OK)
		goto out;
	cJSON_AddStringToObject(detail, "family", out->family);
	result = fa_audit(req, "refresh.reuse_detected", out->user, "denied",
	                  detail);
out:
	cJSON_Delete(detail);
	return result;
}

fa_result fa_refresh_rotate(struct fa_request *req, const char *token,
                            struct fa_refresh_result *out)
{
	uint8_t hash[FA_SHA256_LEN];
	char hash_hex[67];
	PGresult *res = NULL;
	fa_result result;

	memset(out, 0, sizeof(*out));
	out->outcome = FA_REFRESH_UNKNOWN;
	fa_sha256(token, strlen(token), hash);
	fa_bytea_hex(hash, hash_hex);
	result = fa_db_begin(req->db);
	if (result != FA_OK)
		return result;
	result = fa_db_exec(req->db, &res, lookup_sql, 1,
	                    (const char *[]){hash_hex});
	if (result != FA_OK)
		goto rollback;
	if (PQntuples(res) != 1)
		goto rollback;
	read_row(res, out);
	if (out->outcome == FA_REFRESH_REUSED) {
		result = revoke_reused(req, out);
		if (result != FA_OK)
			goto rollback;
		result = fa_db_commit(req->db);
		goto out;
	}
	if (out->outcome != FA_REFRESH_OK)
		goto rollback;
	result = fa_db_command(req->db,
	                       "UPDATE refresh_tokens SET rotated_at = now() "
	                       "WHERE token_hash = $1::bytea",
	                       1, (const char *[]){hash_hex});
	if (result != FA_OK)
		goto rollback;
	result = insert_token(req->db, out->family, out->token);
	if (result != FA_OK)
		goto rollback;
	goto out;
rollback:
	fa_db_rollback(req->db);
out:
	if (result != FA_OK) {
		fa_wipe(out->token, sizeof(out->token));
		out->outcome = FA_REFRESH_UNKNOWN;
	}
	PQclear(res);
	return result;
}

fa_result fa_refresh_revoke(PGconn *db, const char *token, const char *reason,
                            bool *found, char family[FA_ID_MAX + 1],
                            char user[FA_ID_MAX + 1])
{
	uint8_t hash[FA_SHA256_LEN];
	char hash_hex[67];
	PGresult *res = NULL;
	fa_result result;

	*found = false;
	family[0] = '\0';
	user[0] = '\0';
	fa_sha256(token, strlen(token), hash);
	fa_bytea_hex(hash, hash_hex);
	/* A family revoked earlier keeps its first time and reason. */
	result = fa_db_exec(db, &res,
	                    "WITH revoked AS (UPDATE refresh_families f SET "
	                    "revoked_at = now(), revoke_reason = $2 FROM "
	                    "refresh_tokens t WHERE t.token_hash = $1::bytea "
	                    "AND f.id = t.family_id AND f.revoked_at IS NULL "
	                    "RETURNING f.id) "
	                    "SELECT f.id, f.user_id FROM refresh_tokens t JOIN "
	                    "refresh_families f ON f.id = t.family_id WHERE "
	                    "t.token_hash = $1::bytea",
	                    2, (const char *[]){hash_hex, reason});
	if (result == FA_OK && PQntuples(res) == 1) {
		*found = true;
		copy_value(family, FA_ID_MAX + 1, res, 0);
		copy_value(user, FA_ID_MAX + 1, res, 1);
	}
	PQclear(res);
	return result;
}
