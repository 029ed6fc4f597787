/* The audit trail: fa_audit() appends to audit_events and logs the event;
 * GET /v1/audit pages through it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#define AUDIT_PAGE_DEFAULT 100
#define AUDIT_PAGE_MAX 500

fa_result fa_audit_record(PGconn *db, const char *actor, const char *action,
                          const char *target, const char *outcome,
                          const char *address, const char *request_id,
                          const cJSON *detail)
{
	char *detail_text = NULL;
	const char *params[7];
	fa_result result;

	if (detail != NULL) {
		detail_text = cJSON_PrintUnformatted(detail);
		if (detail_text == NULL)
			return FA_ERR_NOMEM;
	}
	params[0] = actor;
	params[1] = action;
	params[2] = target;
	params[3] = outcome;
	params[4] = address;
	params[5] = request_id;
	params[6] = detail_text;
	result = fa_db_command(db,
	                       "INSERT INTO audit_events (actor, action, "
	                       "target, outcome, address, request_id, detail) "
	                       "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
	                       7, params);
	fa_log(result == FA_OK ? FA_LOG_INFO : FA_LOG_ERROR,
	       (const char *[]){"audit", action, "actor", actor, "target",
	                        target != NULL ? target : "-", "outcome",
	                        outcome, "address",
	                        address != NULL ? address : "-", "request_id",
	                        request_id != NULL ? request_id : "-", "detail",
	                        detail_text != NULL ? detail_text : "{}", NULL},
	       result == FA_OK ? "audit event"
	                       : "audit event not stored in the database");
	free(detail_text);
	return result;
}

fa_result fa_audit(struct fa_request *req, const char *action,
                   const char *target, const char *outcome, const cJSON *detail)
{
	const char *actor =
	        req->caller.id[0] != '\0' ? req->caller.id : "anonymous";

	return fa_audit_record(req->db, actor, action, target, outcome,
	                       req->client_address, req->request_id, detail);
}

/* True for 1 to 64 characters of [a-z0-9._-], the form of action names. */
static bool action_valid(const char *s)
{
	size_t len = strlen(s);
	size_t i;

	if (len == 0 || len > 64)
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

cJSON *fa_audit_event_json(const PGresult *res, int row)
{
	cJSON *item = cJSON_CreateObject();
	const char *names[] = {"at",      "actor",   "action",    "target",
	                       "outcome", "address", "request_id"};
	const char *detail;
	size_t i;

	cJSON_AddNumberToObject(item, "id",
	                        strtod(PQgetvalue(res, row, 0), NULL));
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *value = fa_db_value(res, row, (int)i + 1);

		if (value != NULL)
			cJSON_AddStringToObject(item, names[i], value);
		else
			cJSON_AddNullToObject(item, names[i]);
	}
	detail = fa_db_value(res, row, 8);
	if (detail != NULL)
		cJSON_AddItemToObject(item, "detail", cJSON_Parse(detail));
	else
		cJSON_AddNullToObject(item, "detail");
	return item;
}

/* GET /v1/audit?after=ID&limit=N&action=A&actor=U */
void fa_audit_list(struct fa_request *req)
{
	long long after = 0;
	long long limit = AUDIT_PAGE_DEFAULT;
	const char *action = fa_request_query(req, "action");
	const char *actor = NULL;
	char after_text[24];
	char limit_text[24];
	const char *params[4];
	PGresult *res = NULL;
	cJSON *reply;
	cJSON *items;
	fa_result result;
	int rows;
	int i;

	if (!fa_caller_is_platform(&req->caller)) {
		fa_audit(req, "audit.list", NULL, "denied", NULL);
		fa_reply_status(req, 403,
		                "reading the audit trail needs "
		                "system_admin or system_operator");
		return;
	}
	if (!fa_query_int(req, "after", 0, INT64_MAX, &after) ||
	    !fa_query_int(req, "limit", 1, AUDIT_PAGE_MAX, &limit) ||
	    !fa_query_id(req, "actor", &actor))
		return;
	if (action != NULL && !action_valid(action)) {
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_PARAMETER,
		                 "Invalid query parameter",
		                 "action: use 1 to 64 characters of a-z, "
		                 "0-9, '.', '_' and '-'");
		return;
	}
	snprintf(after_text, sizeof(after_text), "%lld", after);
	snprintf(limit_text, sizeof(limit_text), "%lld", limit + 1);
	params[0] = after_text;
	params[1] = limit_text;
	params[2] = action;
	params[3] = actor;
	result = fa_db_exec(req->db, &res,
	                    FA_AUDIT_EVENT_SELECT
	                    " WHERE e.id > $1 "
	                    "AND ($3::text IS NULL OR e.action = $3) "
	                    "AND ($4::text IS NULL OR e.actor = $4 "
	                    "OR ea.pseudonym = $4) ORDER BY e.id LIMIT $2",
	                    4, params);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	reply = cJSON_CreateObject();
	items = cJSON_AddArrayToObject(reply, "items");
	rows = PQntuples(res);
	for (i = 0; i < rows && i < limit; i++)
		cJSON_AddItemToArray(items, fa_audit_event_json(res, i));
	if (rows > limit)
		cJSON_AddStringToObject(reply, "next",
		                        PQgetvalue(res, (int)limit - 1, 0));
	PQclear(res);
	fa_reply_json(req, 200, reply);
}
