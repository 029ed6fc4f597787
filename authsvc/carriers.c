/* Carriers: POST /v1/carriers, GET /v1/carriers, GET /v1/carriers/{id}. */
#include <stdio.h>
#include <string.h>

#include "core.h"

#define CARRIER_NAME_MAX 200
#define TIME_ZONE_MAX 64
#define CARRIER_PAGE_DEFAULT 100
#define CARRIER_PAGE_MAX 500

static const char *const carrier_fields[] = {"id", "name", "time_zone", NULL};

static cJSON *carrier_json(const PGresult *res, int row)
{
	cJSON *item = cJSON_CreateObject();

	cJSON_AddStringToObject(item, "id", PQgetvalue(res, row, 0));
	cJSON_AddStringToObject(item, "name", PQgetvalue(res, row, 1));
	cJSON_AddStringToObject(item, "time_zone", PQgetvalue(res, row, 2));
	cJSON_AddStringToObject(item, "created_at", PQgetvalue(res, row, 3));
	return item;
}

#define CARRIER_COLUMNS                                                        \
	"id, name, time_zone, to_char(created_at AT TIME ZONE 'UTC', "         \
	"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* Replies 400 and returns false unless zone is a PostgreSQL time zone
 * name. */
static bool time_zone_valid(struct fa_request *req, const char *zone)
{
	const char *params[1] = {zone};
	PGresult *res = NULL;
	fa_result result;
	bool found;

	result = fa_db_exec(req->db, &res,
	                    "SELECT 1 FROM pg_timezone_names WHERE name = $1",
	                    1, params);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return false;
	}
	found = PQntuples(res) > 0;
	PQclear(res);
	if (!found)
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_FIELD,
		                 "Invalid field",
		                 "time_zone: unknown time zone; use an IANA "
		                 "name such as Europe/Berlin");
	return found;
}

void fa_carriers_create(struct fa_request *req)
{
	const char *id = NULL;
	const char *name = NULL;
	const char *zone = "UTC";
	const char *params[3];
	PGresult *res = NULL;
	cJSON *detail;
	fa_result result;

	if (!fa_require_role(req, FA_ROLE_SYSTEM_ADMIN))
		return;
	if (!fa_json_only_fields(req, carrier_fields) ||
	    !fa_json_string(req, "id", true, FA_ID_MAX, FA_STR_ID, &id) ||
	    !fa_json_string(req, "name", true, CARRIER_NAME_MAX,
	                    FA_STR_NONEMPTY | FA_STR_TEXT, &name) ||
	    !fa_json_string(req, "time_zone", false, TIME_ZONE_MAX,
	                    FA_STR_NONEMPTY | FA_STR_TEXT, &zone) ||
	    !time_zone_valid(req, zone))
		return;
	params[0] = id;
	params[1] = name;
	params[2] = zone;
	result = fa_db_exec(req->db, &res,
	                    "INSERT INTO carriers (id, name, time_zone) "
	                    "VALUES ($1, $2, $3) RETURNING " CARRIER_COLUMNS,
	                    3, params);
	detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "name", name);
	fa_audit(req, "carrier.create", id,
	         result == FA_OK ? "success" : "failure", detail);
	cJSON_Delete(detail);
	if (result == FA_ERR_DENIED) {
		fa_reply_status(req, 409, "a carrier with this id exists");
		return;
	}
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	fa_reply_json(req, 201, carrier_json(res, 0));
	PQclear(res);
}

void fa_carriers_list(struct fa_request *req)
{
	const char *after = NULL;
	long long limit = CARRIER_PAGE_DEFAULT;
	char limit_text[24];
	const char *params[2];
	PGresult *res = NULL;
	cJSON *reply;
	cJSON *items;
	fa_result result;
	int rows;
	int i;

	if (!fa_require_role(req, FA_ROLE_SYSTEM_ADMIN))
		return;
	if (!fa_query_id(req, "after", &after) ||
	    !fa_query_int(req, "limit", 1, CARRIER_PAGE_MAX, &limit))
		return;
	snprintf(limit_text, sizeof(limit_text), "%lld", limit + 1);
	params[0] = after;
	params[1] = limit_text;
	result = fa_db_exec(req->db, &res,
	                    "SELECT " CARRIER_COLUMNS " FROM carriers "
	                    "WHERE $1::text IS NULL OR id > $1 "
	                    "ORDER BY id LIMIT $2",
	                    2, params);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	reply = cJSON_CreateObject();
	items = cJSON_AddArrayToObject(reply, "items");
	rows = PQntuples(res);
	for (i = 0; i < rows && i < limit; i++)
		cJSON_AddItemToArray(items, carrier_json(res, i));
	if (rows > limit)
		cJSON_AddStringToObject(reply, "next",
		                        PQgetvalue(res, (int)limit - 1, 0));
	PQclear(res);
	fa_reply_json(req, 200, reply);
}

void fa_carriers_get(struct fa_request *req)
{
	const char *params[1] = {req->params[0]};
	PGresult *res = NULL;
	fa_result result;

	if (!fa_require_carrier(req, req->params[0]))
		return;
	result = fa_db_exec_one(req->db, &res,
	                        "SELECT " CARRIER_COLUMNS
	                        " FROM carriers WHERE id = $1",
	                        1, params);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	fa_reply_json(req, 200, carrier_json(res, 0));
	PQclear(res);
}
