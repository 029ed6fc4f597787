/* GET /healthz (the process runs) and GET /readyz (the database responds
 * and has the schema version this binary was built for). */
#include <stdio.h>

#include "core.h"

void fa_health_live(struct fa_request *req)
{
	cJSON *reply = cJSON_CreateObject();

	cJSON_AddStringToObject(reply, "status", "ok");
	fa_reply_json(req, 200, reply);
}

void fa_health_ready(struct fa_request *req)
{
	PGconn *db = fa_db_worker(req->svc);
	long long version = 0;
	char detail[128];
	cJSON *reply;

	if (db == NULL || fa_schema_version(db, &version) != FA_OK) {
		fa_reply_status(req, 503, "the database is unavailable");
		return;
	}
	if (version != FLEETAUTH_SCHEMA_VERSION) {
		snprintf(detail, sizeof(detail),
		         "database schema version %lld, expected %d: %s",
		         version, FLEETAUTH_SCHEMA_VERSION,
		         version < FLEETAUTH_SCHEMA_VERSION
		                 ? "run fleetauthd migrate"
		                 : "upgrade fleetauthd");
		fa_reply_status(req, 503, detail);
		return;
	}
	reply = cJSON_CreateObject();
	cJSON_AddStringToObject(reply, "status", "ready");
	cJSON_AddNumberToObject(reply, "schema_version", (double)version);
	fa_reply_json(req, 200, reply);
}
