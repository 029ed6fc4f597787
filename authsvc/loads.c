/*
 * Loads and their driver assignments. Dispatchers, fleet managers and
 * system administrators change them; fleet analysts and platform roles may
 * also read them. The change_log trigger on load_assignments notifies the
 * brokers of every assignment change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#define LOAD_REFERENCE_MAX 200
#define LOAD_PAGE_DEFAULT 100
#define LOAD_PAGE_MAX 500

#define LOAD_COLUMNS                                                           \
	"l.carrier_id, l.id, l.reference, l.created_by, "                      \
	"to_char(l.created_at AT TIME ZONE 'UTC', "                            \
	"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "                                  \
	"coalesce((SELECT array_to_json(array_agg(a.driver_id "                \
	"ORDER BY a.driver_id))::text FROM load_assignments a "                \
	"WHERE a.carrier_id = l.carrier_id AND a.load_id = l.id), '[]')"

static cJSON *load_json(const PGresult *res, int row)
{
	cJSON *item = cJSON_CreateObject();

	cJSON_AddStringToObject(item, "carrier", PQgetvalue(res, row, 0));
	cJSON_AddStringToObject(item, "id", PQgetvalue(res, row, 1));
	cJSON_AddStringToObject(item, "reference", PQgetvalue(res, row, 2));
	cJSON_AddStringToObject(item, "created_by", PQgetvalue(res, row, 3));
	cJSON_AddStringToObject(item, "created_at", PQgetvalue(res, row, 4));
	cJSON_AddItemToObject(item, "drivers",
	                      cJSON_Parse(PQgetvalue(res, row, 5)));
	return item;
}

/*
 * Picks the carrier a request acts on. Carrier roles get their own (a
 * request for another one gets 404), and platform roles get the requested
 * one (400 when missing). Returns NULL after replying.
 */
static const char *acting_carrier(struct fa_request *req, const char *requested)
{
	if (req->caller.carrier[0] != '\0' &&
	    !fa_caller_is_platform(&req->caller)) {
		if (requested != NULL && !fa_require_carrier(req, requested))
			return NULL;
		return req->caller.carrier;
	}
	if (requested == NULL) {
		fa_reply_problem(req, 400, FA_PROBLEM_MISSING_FIELD,
		                 "Missing field",
		                 "carrier: required for callers without a "
		                 "carrier");
		return NULL;
	}
	if (!fa_require_carrier(req, requested))
		return NULL;
	return requested;
}

static bool may_read_loads(const struct fa_caller *caller)
{
	return fa_caller_is_platform(caller) ||
	       fa_role_covers(caller->role, FA_ROLE_DISPATCHER) ||
	       caller->role == FA_ROLE_FLEET_ANALYST;
}

static const char *const load_fields[] = {"carrier", "id", "reference", NULL};

void fa_loads_create(struct fa_request *req)
{
	const char *requested = NULL;
	const char *carrier;
	const char *id = NULL;
	const char *reference = "";
	const char *params[4];
	PGresult *res = NULL;
	fa_result result;

	if (!fa_require_role(req, FA_ROLE_DISPATCHER))
		return;
	if (!fa_json_only_fields(req, load_fields) ||
	    !fa_json_string(req, "carrier", false, FA_ID_MAX, FA_STR_ID,
	                    &requested) ||
	    !fa_json_string(req, "id", true, FA_ID_MAX, FA_STR_ID, &id) ||
	    !fa_json_string(req, "reference", false, LOAD_REFERENCE_MAX,
	                    FA_STR_TEXT, &reference))
		return;
	carrier = acting_carrier(req, requested);
	if (carrier == NULL)
		return;
	params[0] = carrier;
	params[1] = id;
	params[2] = reference;
	params[3] = req->caller.id;
	/* The INSERT ... SELECT inserts nothing for an unknown carrier. */
	result = fa_db_exec_one(
	        req->db, &res,
	        "WITH l AS (INSERT INTO loads (carrier_id, id, reference, "
	        "created_by) SELECT c.id, $2, $3, $4 FROM carriers c "
	        "WHERE c.id = $1 RETURNING *) "
	        "SELECT l.carrier_id, l.id, l.reference, l.created_by, "
	        "to_char(l.created_at AT TIME ZONE 'UTC', "
	        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '[]' FROM l",
	        4, params);
	fa_audit(req, "load.create", id,
	         result == FA_OK ? "success" : "failure", NULL);
	if (result == FA_ERR_NOT_FOUND)
		fa_reply_status(req, 404, "no such carrier");
	else if (result == FA_ERR_DENIED)
		fa_reply_status(req, 409, "a load with this id exists");
	else if (result != FA_OK)
		fa_reply_db_error(req, result);
	else
		fa_reply_json(req, 201, load_json(res, 0));
	PQclear(res);
}

/* Reads the "after" cursor of a listing: "carrier.load", the form of
 * "next". Replies 400 and returns false when it is malformed. */
static bool cursor_valid(struct fa_request *req, const char **out)
{
	const char *value = fa_request_query(req, "after");
	const char *dot;

	*out = NULL;
	if (value == NULL)
		return true;
	dot = strchr(value, '.');
	if (dot == NULL || !fa_id_valid_n(value, (size_t)(dot - value)) ||
	    !fa_id_valid(dot + 1)) {
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_PARAMETER,
		                 "Invalid query parameter",
		                 "after: use the next value of the previous "
		                 "page (carrier.load)");
		return false;
	}
	*out = value;
	return true;
}

void fa_loads_list(struct fa_request *req)
{
	const char *requested = NULL;
	const char *carrier = NULL;
	const char *after = NULL;
	long long limit = LOAD_PAGE_DEFAULT;
	char limit_text[24];
	const char *params[3];
	PGresult *res = NULL;
	cJSON *reply;
	cJSON *items;
	fa_result result;
	int rows;
	int i;

	if (!may_read_loads(&req->caller)) {
		fa_audit(req, "load.list", NULL, "denied", NULL);
		fa_reply_status(req, 403, "your role cannot list loads");
		return;
	}
	if (!fa_query_id(req, "carrier", &requested) ||
	    !cursor_valid(req, &after) ||
	    !fa_query_int(req, "limit", 1, LOAD_PAGE_MAX, &limit))
		return;
	carrier = requested;
	if (!fa_caller_is_platform(&req->caller)) {
		carrier = acting_carrier(req, requested);
		if (carrier == NULL)
			return;
	}
	snprintf(limit_text, sizeof(limit_text), "%lld", limit + 1);
	params[0] = carrier;
	params[1] = after;
	params[2] = limit_text;
	/* The cursor "carrier.load" is unique because '.' cannot occur in
	 * an identifier. */
	result = fa_db_exec(req->db, &res,
	                    "SELECT " LOAD_COLUMNS " FROM loads l "
	                    "WHERE ($1::text IS NULL OR l.carrier_id = $1) "
	                    "AND ($2::text IS NULL OR l.carrier_id || '.' || "
	                    "l.id > $2 COLLATE \"C\") "
	                    "ORDER BY l.carrier_id || '.' || l.id COLLATE "
	                    "\"C\" LIMIT $3",
	                    3, params);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	reply = cJSON_CreateObject();
	items = cJSON_AddArrayToObject(reply, "items");
	rows = PQntuples(res);
	for (i = 0; i < rows && i < limit; i++)
		cJSON_AddItemToArray(items, load_json(res, i));
	if (rows > limit) {
		char next[2 * FA_ID_MAX + 2];

		snprintf(next, sizeof(next), "%s.%s",
		         PQgetvalue(res, (int)limit - 1, 0),
		         PQgetvalue(res, (int)limit - 1, 1));
		cJSON_AddStringToObject(reply, "next", next);
	}
	PQclear(res);
	fa_reply_json(req, 200, reply);
}

/* ------------------------------------------------------------------ */
/* PUT and DELETE /v1/loads/{id}/assignment                            */
/* ------------------------------------------------------------------ */

static const char *const assignment_fields[] = {"driver", "carrier", NULL};

/* Locks the load row; replies 404 when it does not exist. */
static bool lock_load(struct fa_request *req, const char *carrier)
{
	const char *params[2] = {carrier, req->params[0]};
	PGresult *res = NULL;
	fa_result result;

	result = fa_db_exec_one(req->db, &res,
	                        "SELECT 1 FROM loads WHERE carrier_id = $1 "
	                        "AND id = $2 FOR UPDATE",
	                        2, params);
	PQclear(res);
	if (result == FA_ERR_NOT_FOUND)
		fa_reply_status(req, 404, "no such load");
	else if (result != FA_OK)
		fa_reply_db_error(req, result);
	return result == FA_OK;
}

/* Replies 400 unless driver is an active driver of carrier. The message
 * is the same for every cause so that it reveals nothing about users of
 * other carriers. */
static bool driver_valid(struct fa_request *req, const char *carrier,
                         const char *driver)
{
	const char *params[2] = {driver, carrier};
	PGresult *res = NULL;
	fa_result result;

	result = fa_db_exec_one(req->db, &res,
	                        "SELECT 1 FROM users WHERE id = $1 "
	                        "AND carrier_id = $2 AND role = 'driver' "
	                        "AND status = 'active' FOR SHARE",
	                        2, params);
	PQclear(res);
	if (result == FA_ERR_NOT_FOUND)
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_FIELD,
		                 "Invalid field",
		                 "driver: not an active driver of this "
		                 "carrier");
	else if (result != FA_OK)
		fa_reply_db_error(req, result);
	return result == FA_OK;
}

static fa_result replace_assignment(struct fa_request *req, const char *carrier,
                                    const char *driver)
{
	const char *params[4] = {carrier, req->params[0], driver,
	                         req->caller.id};
	fa_result result;

	result = fa_db_command(req->db,
	                       "DELETE FROM load_assignments "
	                       "WHERE carrier_id = $1 AND load_id = $2 "
	                       "AND driver_id <> $3",
	                       3, params);
	if (result != FA_OK)
		return result;
	return fa_db_command(req->db,
	                     "INSERT INTO load_assignments (carrier_id, "
	                     "load_id, driver_id, assigned_by) "
	                     "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
	                     4, params);
}

static cJSON *assignment_json(const char *carrier, const char *load,
                              const char *driver)
{
	cJSON *reply = cJSON_CreateObject();
	cJSON *drivers;

	cJSON_AddStringToObject(reply, "carrier", carrier);
	cJSON_AddStringToObject(reply, "load", load);
	drivers = cJSON_AddArrayToObject(reply, "drivers");
	if (driver != NULL)
		cJSON_AddItemToArray(drivers, cJSON_CreateString(driver));
	return reply;
}

static void audit_assignment(struct fa_request *req, const char *action,
                             const char *carrier, const char *driver,
                             const char *outcome)
{
	cJSON *detail = cJSON_CreateObject();

	cJSON_AddStringToObject(detail, "carrier", carrier);
	if (driver != NULL)
		cJSON_AddStringToObject(detail, "driver", driver);
	fa_audit(req, action, req->params[0], outcome, detail);
	cJSON_Delete(detail);
}

/* The carrier of an assignment request: body field or query parameter. */
static bool requested_carrier(struct fa_request *req, const char **out)
{
	*out = NULL;
	if (!fa_json_string(req, "carrier", false, FA_ID_MAX, FA_STR_ID, out))
		return false;
	if (*out == NULL)
		return fa_query_id(req, "carrier", out);
	return true;
}

void fa_loads_assign(struct fa_request *req)
{
	const char *requested = NULL;
	const char *carrier;
	const char *driver = NULL;
	fa_result result;

	if (!fa_require_role(req, FA_ROLE_DISPATCHER))
		return;
	if (!fa_json_only_fields(req, assignment_fields) ||
	    !fa_json_string(req, "driver", true, FA_ID_MAX, FA_STR_ID,
	                    &driver) ||
	    !requested_carrier(req, &requested))
		return;
	carrier = acting_carrier(req, requested);
	if (carrier == NULL)
		return;
	result = fa_db_begin(req->db);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	if (!lock_load(req, carrier) || !driver_valid(req, carrier, driver))
		goto out;
	result = replace_assignment(req, carrier, driver);
	if (result == FA_OK) {
		audit_assignment(req, "load.assign", carrier, driver,
		                 "success");
		result = fa_db_commit(req->db);
	}
	if (result == FA_OK)
		fa_reply_json(req, 200,
		              assignment_json(carrier, req->params[0], driver));
	else
		fa_reply_db_error(req, result);
out:
	fa_db_rollback(req->db);
}

void fa_loads_unassign(struct fa_request *req)
{
	const char *requested = NULL;
	const char *carrier;
	const char *params[2];
	fa_result result;

	if (!fa_require_role(req, FA_ROLE_DISPATCHER))
		return;
	if (!fa_query_id(req, "carrier", &requested))
		return;
	carrier = acting_carrier(req, requested);
	if (carrier == NULL)
		return;
	result = fa_db_begin(req->db);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	if (!lock_load(req, carrier))
		goto out;
	params[0] = carrier;
	params[1] = req->params[0];
	result = fa_db_command(req->db,
	                       "DELETE FROM load_assignments "
	                       "WHERE carrier_id = $1 AND load_id = $2",
	                       2, params);
	if (result == FA_OK) {
		audit_assignment(req, "load.unassign", carrier, NULL,
		                 "success");
		result = fa_db_commit(req->db);
	}
	if (result == FA_OK)
		fa_reply_json(req, 200,
		              assignment_json(carrier, req->params[0], NULL));
	else
		fa_reply_db_error(req, result);
out:
	fa_db_rollback(req->db);
}
