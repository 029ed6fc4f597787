/* GET /healthz (the process runs) and GET /readyz (the database responds,
 * has the schema version this binary was built for, and the current
 * signing key opens with the configured key-encryption keys). */
#include <stdio.h>

#include "core.h"
#include "signing_keys.h"

void fa_health_live(struct fa_request *req)
{
	cJSON *reply = cJSON_CreateObject();

	cJSON_AddStringToObject(reply, "status", "ok");
	fa_reply_json(req, 200, reply);
}

/* Replies 503 and returns false when the current signing key cannot be
 * opened, because then every login fails. No key at all is ready: the
 * first one may be added after start. */
static bool signing_key_ready(struct fa_request *req, PGconn *db)
{
	char kid[FA_ID_MAX + 1] = "";
	fa_result result;

	result = fa_signing_key_check(req->svc, db, kid);
	if (result == FA_OK || result == FA_ERR_NOT_FOUND)
		return true;
	fa_request_log(req, FA_LOG_ERROR, "signing key %s: %s",
	               kid[0] != '\0' ? kid : "(unknown kid)",
	               fa_result_str(result));
	fa_reply_status(req, 503,
	                result == FA_ERR_CRYPTO
	                        ? "the current signing key does not open "
	                          "with the configured key-encryption keys"
	                        : "the database is unavailable");
	return false;
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
	if (!signing_key_ready(req, db))
		return;
	reply = cJSON_CreateObject();
	cJSON_AddStringToObject(reply, "status", "ready");
	cJSON_AddNumberToObject(reply, "schema_version", (double)version);
	fa_reply_json(req, 200, reply);
}
