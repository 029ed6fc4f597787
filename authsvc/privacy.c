/*
 * Privacy requests on users: GET /v1/users/{id}/export returns every piece
 * of personal data stored about a user as one JSON document, and
 * POST /v1/users/{id}/erase removes it.
 *
 * Erasure keeps the user id, because it is the primary key that devices,
 * refresh families and the audit trail refer to, and gives it a random
 * pseudonym in erased_principals. audit_events is append-only, so its rows
 * are never changed; readers of the audit trail show the pseudonym instead
 * (FA_AUDIT_EVENT_SELECT). Ids are opaque identifiers chosen by the
 * operator, who must not use real names as ids.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* Audit events included in an export; a user with more gets the newest
 * ones and "audit_truncated": true. */
#define EXPORT_AUDIT_MAX 10000

/* Password hash of an erased user. login.c treats a hash that does not
 * start with "$2b$" as one that no password matches. */
#define ERASED_PASSWORD_HASH "!erased"

struct subject {
	char id[FA_ID_MAX + 1];
	enum fa_role role;
	char carrier[FA_ID_MAX + 1]; /* "" for platform roles */
};

/*
 * Reads the user of the path (any status, deleted ones included), locking
 * the row when lock is set. Replies 404 and returns false when it does not
 * exist.
 */
static bool load_subject(struct fa_request *req, bool lock, struct subject *s)
{
	const char *params[1] = {req->params[0]};
	PGresult *res = NULL;
	const char *carrier;
	fa_result result;

	result = fa_db_exec_one(req->db, &res,
	                        lock ? "SELECT id, role, carrier_id FROM users "
	                               "WHERE id = $1 FOR UPDATE"
	                             : "SELECT id, role, carrier_id FROM users "
	                               "WHERE id = $1",
	                        1, params);
	if (result == FA_ERR_NOT_FOUND) {
		fa_reply_status(req, 404, "no such user");
		return false;
	}
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return false;
	}
	snprintf(s->id, sizeof(s->id), "%s", PQgetvalue(res, 0, 0));
	s->role = fa_role_parse(PQgetvalue(res, 0, 1));
	carrier = fa_db_value(res, 0, 2);
	snprintf(s->carrier, sizeof(s->carrier), "%s",
	         carrier != NULL ? carrier : "");
	PQclear(res);
	return true;
}

/*
 * Decides who may export a user: the user, a system_admin, or a
 * fleet_manager of the user's carrier. Other callers of another carrier get
 * 404 so that the user's existence does not leak, and everyone else 403.
 * Denials are audited.
 */
static bool may_export(struct fa_request *req, const struct subject *s)
{
	const struct fa_caller *caller = &req->caller;
	bool same_carrier = caller->carrier[0] != '\0' &&
	                    strcmp(caller->carrier, s->carrier) == 0;

	if (caller->kind == FA_CALLER_USER && strcmp(caller->id, s->id) == 0)
		return true;
	if (caller->role == FA_ROLE_SYSTEM_ADMIN)
		return true;
	if (caller->role == FA_ROLE_FLEET_MANAGER && same_carrier)
		return true;
	if (caller->carrier[0] != '\0' && !same_carrier) {
		/* Audits request.authorize and replies 404. */
		fa_require_carrier(req, s->carrier);
		return false;
	}
	fa_audit(req, "user.export", s->id, "denied", NULL);
	fa_reply_status(req, 403,
	                "exporting a user needs system_admin, the "
	                "fleet_manager of the user's carrier, or the "
	                "user themself");
	return false;
}

/*
 * Runs sql (which returns one json value in one row) with the user id as
 * $1 and adds the parsed value to out under name. Returns the database
 * result; FA_ERR_INVALID when the value does not parse.
 */
static fa_result add_json_query(PGconn *db, cJSON *out, const char *name,
                                const char *sql, const char *id)
{
	const char *params[1] = {id};
	PGresult *res = NULL;
	cJSON *value;
	fa_result result;

	result = fa_db_exec_one(db, &res, sql, 1, params);
	if (result != FA_OK)
		return result;
	value = cJSON_Parse(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (value == NULL)
		return FA_ERR_INVALID;
	cJSON_AddItemToObject(out, name, value);
	return FA_OK;
}

/* Queries of the export sections, each returning one json value. */
static const struct {
	const char *name;
	const char *sql;
} export_sections[] = {
        {"profile",
         "SELECT row_to_json(x) FROM (SELECT u.id, u.role, "
         "u.carrier_id AS carrier, u.status, u.window_start, u.window_end, "
         "u.created_at, u.updated_at, ep.pseudonym, ep.erased_at "
         "FROM users u LEFT JOIN erased_principals ep ON ep.id = u.id "
         "WHERE u.id = $1) x"},
        {"totp",
         "SELECT json_build_object('enrolled', count(*) > 0, "
         "'confirmed_at', max(confirmed_at), 'created_at', max(created_at)) "
         "FROM user_totp WHERE user_id = $1"},
        {"devices",
         "SELECT COALESCE(json_agg(x ORDER BY x.id), '[]') FROM (SELECT id, "
         "carrier_id AS carrier, device_type, label, status, created_at, "
         "enrolled_at, revoked_at FROM devices WHERE user_id = $1) x"},
        {"device_keys",
         "SELECT COALESCE(json_agg(x ORDER BY x.id), '[]') FROM (SELECT id, "
         "device_id, public_pem, status, created_at, revoked_at "
         "FROM device_keys WHERE user_id = $1) x"},
        {"loads",
         "SELECT COALESCE(json_agg(x ORDER BY x.assigned_at), '[]') FROM "
         "(SELECT a.carrier_id AS carrier, a.load_id, l.reference, "
         "a.assigned_by, a.assigned_at FROM load_assignments a JOIN loads l "
         "ON l.carrier_id = a.carrier_id AND l.id = a.load_id "
         "WHERE a.driver_id = $1) x"},
        {"refresh_families",
         "SELECT COALESCE(json_agg(x ORDER BY x.created_at), '[]') FROM "
         "(SELECT id, device_id, amr, created_at, expires_at, revoked_at, "
         "revoke_reason FROM refresh_families WHERE user_id = $1) x"},
};

#define EXPORT_SECTION_COUNT                                                   \
	(sizeof(export_sections) / sizeof(export_sections[0]))

/* Adds "audit_events" (actor or target is the user, pseudonyms applied,
 * oldest first) and "audit_truncated". */
static fa_result add_audit_events(PGconn *db, cJSON *out, const char *id)
{
	char limit[24];
	const char *params[2] = {id, limit};
	PGresult *res = NULL;
	cJSON *items;
	fa_result result;
	int rows;
	int i;

	snprintf(limit, sizeof(limit), "%d", EXPORT_AUDIT_MAX + 1);
	result = fa_db_exec(db, &res,
	                    "SELECT * FROM (" FA_AUDIT_EVENT_SELECT
	                    " WHERE e.actor = $1 OR e.target = $1 "
	                    "ORDER BY e.id DESC LIMIT $2::int) newest "
	                    "ORDER BY 1",
	                    2, params);
	if (result != FA_OK)
		return result;
	rows = PQntuples(res);
	items = cJSON_AddArrayToObject(out, "audit_events");
	/* The query returns EXPORT_AUDIT_MAX + 1 rows at most, oldest first;
	 * a full result drops the oldest one. */
	for (i = rows > EXPORT_AUDIT_MAX ? 1 : 0; i < rows; i++)
		cJSON_AddItemToArray(items, fa_audit_event_json(res, i));
	cJSON_AddBoolToObject(out, "audit_truncated", rows > EXPORT_AUDIT_MAX);
	PQclear(res);
	return FA_OK;
}

/* Builds the whole export document of user id into *out (caller owns). */
static fa_result build_export(PGconn *db, const char *id, cJSON **out)
{
	fa_result result = FA_OK;
	cJSON *doc;
	size_t i;

	*out = NULL;
	doc = cJSON_CreateObject();
	if (doc == NULL)
		return FA_ERR_NOMEM;
	cJSON_AddStringToObject(doc, "user", id);
	for (i = 0; i < EXPORT_SECTION_COUNT && result == FA_OK; i++)
		result = add_json_query(db, doc, export_sections[i].name,
		                        export_sections[i].sql, id);
	if (result == FA_OK)
		result = add_audit_events(db, doc, id);
	if (result != FA_OK) {
		cJSON_Delete(doc);
		return result;
	}
	*out = doc;
	return FA_OK;
}

/* GET /v1/users/{id}/export. The sections are read in one REPEATABLE READ
 * transaction, so they are consistent with each other. */
void fa_users_export(struct fa_request *req)
{
	struct subject s;
	cJSON *doc = NULL;
	fa_result result;

	if (!load_subject(req, false, &s) || !may_export(req, &s))
		return;
	result = fa_db_command(
	        req->db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0,
	        NULL);
	if (result == FA_OK)
		result = build_export(req->db, s.id, &doc);
	fa_db_rollback(req->db);
	if (result != FA_OK) {
		fa_request_log(req, FA_LOG_ERROR,
		               "export of user %s failed: %s", s.id,
		               fa_result_str(result));
		fa_reply_db_error(req, result);
		return;
	}
	fa_audit(req, "user.export", s.id, "success", NULL);
	fa_reply_json(req, 200, doc);
}

/* ------------------------------------------------------------------ */
/* POST /v1/users/{id}/erase                                          */
/* ------------------------------------------------------------------ */

/* Counts of what an erasure removed, reported and audited. */
struct erasure {
	char pseudonym[32];
	long revoked_families;
	long device_keys;
	long totp;
	long unbound_devices;
	long assignments;
};

/* Runs one statement with the user id as $1 and adds the number of rows it
 * changed to *count (count may be NULL). */
static fa_result erase_step(PGconn *db, const char *sql, const char *id,
                            long *count)
{
	const char *params[1] = {id};
	PGresult *res = NULL;
	fa_result result;

	result = fa_db_exec(db, &res, sql, 1, params);
	if (result == FA_OK && count != NULL)
		*count += strtol(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return result;
}

/* Statements of an erasure, in order; the counts go into struct erasure at
 * the given offset, or nowhere for (size_t)-1. */
#define NO_COUNT ((size_t)-1)
static const struct {
	const char *sql;
	size_t count_offset;
} erase_steps[] = {
        {"UPDATE users SET password_hash = '" ERASED_PASSWORD_HASH "', "
         "status = 'deleted', window_start = NULL, window_end = NULL, "
         "updated_at = now() WHERE id = $1",
         NO_COUNT},
        {"UPDATE refresh_families SET revoked_at = now(), "
         "revoke_reason = 'user_erased' WHERE user_id = $1 "
         "AND revoked_at IS NULL",
         offsetof(struct erasure, revoked_families)},
        {"DELETE FROM user_totp WHERE user_id = $1",
         offsetof(struct erasure, totp)},
        {"DELETE FROM mfa_challenges WHERE user_id = $1", NO_COUNT},
        {"DELETE FROM device_key_nonces WHERE key_id IN "
         "(SELECT id FROM device_keys WHERE user_id = $1)",
         NO_COUNT},
        {"DELETE FROM device_keys WHERE user_id = $1",
         offsetof(struct erasure, device_keys)},
        {"UPDATE devices SET user_id = NULL WHERE user_id = $1",
         offsetof(struct erasure, unbound_devices)},
        {"DELETE FROM load_assignments WHERE driver_id = $1",
         offsetof(struct erasure, assignments)},
        {"DELETE FROM login_failures WHERE scope = 'user' AND key = $1",
         NO_COUNT},
};

#define ERASE_STEP_COUNT (sizeof(erase_steps) / sizeof(erase_steps[0]))

/* Runs every erase step and records the pseudonym; inside the caller's
 * transaction. */
static fa_result erase_user(PGconn *db, const char *id, struct erasure *e)
{
	uint8_t random[8];
	fa_result result;
	size_t i;

	result = fa_random_bytes(random, sizeof(random));
	if (result != FA_OK)
		return result;
	memcpy(e->pseudonym, "erased-", 7);
	fa_hex_encode(random, sizeof(random), e->pseudonym + 7);
	for (i = 0; i < ERASE_STEP_COUNT; i++) {
		long *count = NULL;

		if (erase_steps[i].count_offset != NO_COUNT)
			count = (long *)((char *)e +
			                 erase_steps[i].count_offset);
		result = erase_step(db, erase_steps[i].sql, id, count);
		if (result != FA_OK)
			return result;
	}
	return fa_db_command(
	        db,
	        "INSERT INTO erased_principals (id, pseudonym) VALUES ($1, $2)",
	        2, (const char *const[]){id, e->pseudonym});
}

static cJSON *erasure_json(const char *id, const struct erasure *e)
{
	cJSON *item = cJSON_CreateObject();

	cJSON_AddStringToObject(item, "user", id);
	cJSON_AddStringToObject(item, "pseudonym", e->pseudonym);
	cJSON_AddNumberToObject(item, "revoked_families",
	                        (double)e->revoked_families);
	cJSON_AddNumberToObject(item, "deleted_device_keys",
	                        (double)e->device_keys);
	cJSON_AddNumberToObject(item, "deleted_totp", (double)e->totp);
	cJSON_AddNumberToObject(item, "unbound_devices",
	                        (double)e->unbound_devices);
	cJSON_AddNumberToObject(item, "deleted_assignments",
	                        (double)e->assignments);
	return item;
}

/* Replies 409 and returns false when id is already in erased_principals. */
static bool not_yet_erased(struct fa_request *req, const char *id)
{
	PGresult *res = NULL;
	fa_result result;

	result = fa_db_exec(req->db, &res,
	                    "SELECT 1 FROM erased_principals WHERE id = $1", 1,
	                    (const char *const[]){id});
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return false;
	}
	if (PQntuples(res) > 0) {
		PQclear(res);
		fa_reply_status(req, 409, "this user is already erased");
		return false;
	}
	PQclear(res);
	return true;
}

/*
 * POST /v1/users/{id}/erase (system_admin). Removes the user's personal data
 * in one transaction, revokes every session (the change_log triggers tell
 * the brokers), records the pseudonym and audits the erasure with counts.
 * Replies 200 with the counts, 409 when already erased or for the caller's
 * own account.
 */
void fa_users_erase(struct fa_request *req)
{
	static const char *const no_fields[] = {NULL};
	struct erasure e;
	struct subject s;
	cJSON *detail;
	fa_result result;

	memset(&e, 0, sizeof(e));
	if (!fa_json_only_fields(req, no_fields) ||
	    !fa_require_role(req, FA_ROLE_SYSTEM_ADMIN))
		return;
	if (strcmp(req->caller.id, req->params[0]) == 0) {
		fa_reply_status(req, 409,
		                "you cannot erase your own account; ask "
		                "another system_admin");
		return;
	}
	result = fa_db_begin(req->db);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	if (!load_subject(req, true, &s) || !not_yet_erased(req, s.id))
		goto out;
	result = erase_user(req->db, s.id, &e);
	if (result == FA_OK) {
		detail = erasure_json(s.id, &e);
		cJSON_DeleteItemFromObject(detail, "user");
		result = fa_audit(req, "user.erase", s.id, "success", detail);
		cJSON_Delete(detail);
	}
	if (result == FA_OK)
		result = fa_db_commit(req->db);
	if (result != FA_OK) {
		fa_request_log(req, FA_LOG_ERROR, "erasing user %s failed: %s",
		               s.id, fa_result_str(result));
		fa_reply_db_error(req, result);
		goto out;
	}
	fa_reply_json(req, 200, erasure_json(s.id, &e));
out:
	fa_db_rollback(req->db);
}
