/*
 * Devices: provisioning with one-time enrollment codes, enrollment and
 * renewal from a CSR, listing, revocation, and the fleet CA's certificate
 * and CRL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca.h"
#include "devices.h"

/* 20 random bytes give a 32-character base32 code of 160 bits. */
#define ENROLLMENT_CODE_BYTES 20
#define ENROLLMENT_CODE_MAX 128
#define DEVICE_ID_CHARS 12
#define RENEW_SIGNATURE_MAX 1024
#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 500

static const char *const revoke_reasons[] = {
        "lost",  "stolen", "key_compromise", "decommissioned", "replaced",
        "other", NULL};

/* ------------------------------------------------------------------ */
/* Helpers shared by the device module                                 */
/* ------------------------------------------------------------------ */

static const char base32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

/* Encodes len bytes as unpadded base32 into out (8 * len / 5 + 2 bytes). */
static void base32_encode(const uint8_t *data, size_t len, char *out,
                          bool upper)
{
	unsigned int buffer = 0;
	int bits = 0;
	size_t i;
	size_t n = 0;

	for (i = 0; i < len; i++) {
		buffer = (buffer << 8) | data[i];
		bits += 8;
		while (bits >= 5) {
			char c = base32_alphabet[(buffer >> (bits - 5)) & 31];

			if (upper && c >= 'a' && c <= 'z')
				c = (char)(c - 'a' + 'A');
			out[n++] = c;
			bits -= 5;
		}
	}
	if (bits > 0) {
		char c = base32_alphabet[(buffer << (5 - bits)) & 31];

		if (upper && c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		out[n++] = c;
	}
	out[n] = '\0';
}

fa_result fa_device_random_id(const char *prefix, size_t chars, char *out,
                              size_t out_size)
{
	fa_result result;
	uint8_t bytes[40];
	char encoded[72];
	size_t need = (chars * 5 + 7) / 8;

	if (need > sizeof(bytes) || strlen(prefix) + chars + 1 > out_size)
		return FA_ERR_TOO_LARGE;
	result = fa_random_bytes(bytes, need);
	if (result != FA_OK)
		return result;
	base32_encode(bytes, need, encoded, false);
	encoded[chars] = '\0';
	snprintf(out, out_size, "%s%s", prefix, encoded);
	return FA_OK;
}

void fa_device_hash_param(const char *text, char out[67])
{
	uint8_t digest[FA_SHA256_LEN];

	fa_sha256(text, strlen(text), digest);
	out[0] = '\\';
	out[1] = 'x';
	fa_hex_encode(digest, sizeof(digest), out + 2);
}

void fa_json_add_nullable(cJSON *object, const char *name, const char *value)
{
	if (value == NULL)
		cJSON_AddNullToObject(object, name);
	else
		cJSON_AddStringToObject(object, name, value);
}

static void throttle_key(struct fa_request *req, const char *action, char *out,
                         size_t size)
{
	snprintf(out, size, "%s:%s", action, req->client_address);
}

bool fa_device_throttle_check(struct fa_request *req, const char *action)
{
	PGresult *res = NULL;
	char key[128];
	char retry[32];
	char window[16];
	long long wait;
	bool allowed = true;
	cJSON *detail;

	throttle_key(req, action, key, sizeof(key));
	snprintf(window, sizeof(window), "%d", FA_DEVICE_THROTTLE_WINDOW);
	if (fa_db_exec(req->db, &res,
	               "SELECT failures, ceil($2::int - extract(epoch FROM "
	               "now() - last_failure))::bigint FROM login_failures "
	               "WHERE scope = 'address' AND key = $1",
	               2, (const char *[]){key, window}) != FA_OK)
		return true; /* the handler's next statement reports it */
	if (PQntuples(res) == 1 && strtoll(fa_db_value(res, 0, 0), NULL, 10) >=
	                                   FA_DEVICE_THROTTLE_FAILURES) {
		detail = cJSON_CreateObject();
		cJSON_AddStringToObject(detail, "reason", "throttled");
		wait = strtoll(fa_db_value(res, 0, 1), NULL, 10);
		if (wait > 0) {
			allowed = false;
			snprintf(retry, sizeof(retry), "%lld", wait);
			fa_reply_header(req, "Retry-After", retry);
			fa_reply_status(req, 429,
			                "too many failed attempts from this "
			                "address; retry after the time in "
			                "Retry-After");
			fa_audit(req, action, NULL, "denied", detail);
		}
		cJSON_Delete(detail);
	}
	PQclear(res);
	return allowed;
}

void fa_device_throttle_fail(struct fa_request *req, const char *action)
{
	char key[128];
	char window[16];

	throttle_key(req, action, key, sizeof(key));
	snprintf(window, sizeof(window), "%d", FA_DEVICE_THROTTLE_WINDOW);
	if (fa_db_command(req->db,
	                  "INSERT INTO login_failures (scope, key, failures, "
	                  "last_failure) VALUES ('address', $1, 1, now()) "
	                  "ON CONFLICT (scope, key) DO UPDATE SET failures = "
	                  "CASE WHEN login_failures.last_failure < now() - "
	                  "make_interval(secs => $2::int) "
	                  "THEN 1 ELSE login_failures.failures + 1 END, "
	                  "last_failure = now()",
	                  2, (const char *[]){key, window}) != FA_OK)
		fa_request_log(req, FA_LOG_WARNING,
		               "recording a failed %s attempt failed", action);
}

/* ------------------------------------------------------------------ */
/* Provisioning                                                        */
/* ------------------------------------------------------------------ */

/*
 * Creates a new enrollment code for device_id inside the caller's
 * transaction, replacing any unused one. *code_out (malloc'd, 32 base32
 * characters) and *expires_out (malloc'd RFC 3339) belong to the caller.
 */
static fa_result insert_enrollment_code(struct fa_request *req,
                                        const char *device_id, char **code_out,
                                        char **expires_out)
{
	fa_result result;
	PGresult *res = NULL;
	uint8_t bytes[ENROLLMENT_CODE_BYTES];
	char code[48];
	char hash[67];
	char ttl[32];

	*code_out = NULL;
	*expires_out = NULL;
	result = fa_random_bytes(bytes, sizeof(bytes));
	if (result != FA_OK)
		return result;
	base32_encode(bytes, sizeof(bytes), code, true);
	fa_wipe(bytes, sizeof(bytes));
	fa_device_hash_param(code, hash);
	snprintf(ttl, sizeof(ttl), "%lld",
	         req->svc->config.enrollment_code_ttl);
	result = fa_db_command(req->db,
	                       "UPDATE enrollment_codes SET expires_at = now() "
	                       "WHERE device_id = $1 AND used_at IS NULL "
	                       "AND expires_at > now()",
	                       1, (const char *[]){device_id});
	if (result == FA_OK)
		result = fa_db_exec_one(
		        req->db, &res,
		        "INSERT INTO enrollment_codes (code_hash, device_id, "
		        "expires_at, created_by) VALUES ($1, $2, now() + "
		        "make_interval(secs => $3::bigint), $4) "
		        "RETURNING " FA_SQL_TIME("expires_at"),
		        4,
		        (const char *[]){hash, device_id, ttl, req->caller.id});
	if (result == FA_OK) {
		*code_out = strdup(code);
		*expires_out = strdup(fa_db_value(res, 0, 0));
		if (*code_out == NULL || *expires_out == NULL)
			result = FA_ERR_NOMEM;
	}
	fa_wipe(code, sizeof(code));
	PQclear(res);
	return result;
}

/* Inserts the principal and device rows under a fresh random id. */
static fa_result insert_device(struct fa_request *req, const char *carrier,
                               const char *kind, const char *label,
                               char *id_out, size_t id_size)
{
	fa_result result = FA_ERR_DENIED;
	const char *prefix = strcmp(kind, "truck") == 0 ? "trk-" : "phn-";
	PGresult *res = NULL;
	int attempt;

	for (attempt = 0; attempt < 3 && result == FA_ERR_DENIED; attempt++) {
		result = fa_device_random_id(prefix, DEVICE_ID_CHARS, id_out,
		                             id_size);
		if (result != FA_OK)
			return result;
		result = fa_db_exec_one(
		        req->db, &res,
		        "INSERT INTO principals (id, kind) VALUES ($1, "
		        "'device') ON CONFLICT DO NOTHING RETURNING id",
		        1, (const char *[]){id_out});
		PQclear(res);
		res = NULL;
		if (result == FA_ERR_NOT_FOUND)
			result = FA_ERR_DENIED;
	}
	if (result != FA_OK)
		return result;
	return fa_db_command(
	        req->db,
	        "INSERT INTO devices (id, carrier_id, device_type, "
	        "label, created_by) VALUES ($1, $2, $3, $4, $5)",
	        5,
	        (const char *[]){id_out, carrier, kind, label, req->caller.id});
}

static bool carrier_exists(struct fa_request *req, const char *carrier,
                           fa_result *result)
{
	PGresult *res = NULL;

	*result = fa_db_exec_one(req->db, &res,
	                         "SELECT 1 FROM carriers WHERE id = $1", 1,
	                         (const char *[]){carrier});
	PQclear(res);
	if (*result == FA_ERR_NOT_FOUND) {
		*result = FA_OK;
		return false;
	}
	return *result == FA_OK;
}

static cJSON *created_device_json(const char *id, const char *carrier,
                                  const char *kind, const char *label,
                                  const char *code, const char *expires)
{
	cJSON *body = cJSON_CreateObject();

	if (body == NULL)
		return NULL;
	cJSON_AddStringToObject(body, "device_id", id);
	cJSON_AddStringToObject(body, "carrier", carrier);
	cJSON_AddStringToObject(body, "kind", kind);
	cJSON_AddStringToObject(body, "label", label);
	cJSON_AddStringToObject(body, "status", "pending");
	cJSON_AddStringToObject(body, "enrollment_code", code);
	cJSON_AddStringToObject(body, "expires_at", expires);
	return body;
}

/*
 * POST /v1/devices {carrier?, kind, label?}: creates a pending device of
 * kind "truck" or "phone" and its one-time enrollment code. Carrier roles
 * may omit carrier (their own is used) and may not name another one.
 */
void fa_devices_create(struct fa_request *req)
{
	static const char *const fields[] = {"carrier", "kind", "label", NULL};
	fa_result result;
	const char *carrier = req->caller.carrier;
	const char *kind = NULL;
	const char *label = "";
	char id[FA_ID_MAX + 1];
	char *code = NULL;
	char *expires = NULL;
	cJSON *detail;

	if (!fa_require_role(req, FA_ROLE_DISPATCHER))
		return;
	if (!fa_json_only_fields(req, fields) ||
	    !fa_json_string(req, "carrier", false, FA_ID_MAX, FA_STR_ID,
	                    &carrier) ||
	    !fa_json_string(req, "kind", true, 16, FA_STR_NONEMPTY, &kind) ||
	    !fa_json_string(req, "label", false, 200, FA_STR_TEXT, &label))
		return;
	if (strcmp(kind, "truck") != 0 && strcmp(kind, "phone") != 0) {
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_FIELD,
		                 "Invalid field",
		                 "kind must be \"truck\" or \"phone\"");
		return;
	}
	if (carrier[0] == '\0') {
		fa_reply_problem(req, 400, FA_PROBLEM_MISSING_FIELD,
		                 "Missing field",
		                 "carrier is required for callers without "
		                 "a carrier");
		return;
	}
	if (!fa_require_carrier(req, carrier))
		return;
	if (!carrier_exists(req, carrier, &result)) {
		if (result != FA_OK)
			fa_reply_db_error(req, result);
		else
			fa_reply_status(req, 404, "carrier not found");
		return;
	}
	result = fa_db_begin(req->db);
	if (result != FA_OK)
		goto out;
	result = insert_device(req, carrier, kind, label, id, sizeof(id));
	if (result == FA_OK)
		result = insert_enrollment_code(req, id, &code, &expires);
	if (result == FA_OK) {
		detail = cJSON_CreateObject();
		cJSON_AddStringToObject(detail, "carrier", carrier);
		cJSON_AddStringToObject(detail, "kind", kind);
		result = fa_audit(req, "device.create", id, "success", detail);
		cJSON_Delete(detail);
	}
	if (result == FA_OK)
		result = fa_db_commit(req->db);
	if (result != FA_OK) {
		fa_db_rollback(req->db);
		goto out;
	}
	fa_reply_json(
	        req, 201,
	        created_device_json(id, carrier, kind, label, code, expires));
out:
	if (result != FA_OK)
		fa_reply_db_error(req, result);
	if (code != NULL)
		fa_wipe(code, strlen(code));
	free(code);
	free(expires);
}

/*
 * Reads a device's carrier, status, kind and label for an authorization
 * check. Replies 404 (also for another carrier's device) or the database
 * error and returns false when the caller may not see it.
 */
static bool load_visible_device(struct fa_request *req, const char *id,
                                PGresult **res_out)
{
	fa_result result;
	PGresult *res = NULL;

	*res_out = NULL;
	result = fa_db_exec_one(req->db, &res,
	                        "SELECT carrier_id, status, device_type, label "
	                        "FROM devices WHERE id = $1",
	                        1, (const char *[]){id});
	if (result == FA_ERR_NOT_FOUND) {
		fa_reply_status(req, 404, "device not found");
		return false;
	}
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return false;
	}
	if (!fa_require_carrier(req, fa_db_value(res, 0, 0))) {
		PQclear(res);
		return false;
	}
	*res_out = res;
	return true;
}

/*
 * POST /v1/devices/{id}/enrollment-code: replaces the enrollment code of a
 * device that has not enrolled yet (for example after the first expired).
 */
void fa_devices_new_code(struct fa_request *req)
{
	fa_result result;
	const char *id = req->params[0];
	PGresult *device = NULL;
	char *code = NULL;
	char *expires = NULL;

	if (!fa_require_role(req, FA_ROLE_DISPATCHER))
		return;
	if (!load_visible_device(req, id, &device))
		return;
	if (strcmp(fa_db_value(device, 0, 1), "pending") != 0) {
		fa_reply_status(req, 409,
		                "device is not pending: only a device that "
		                "has not enrolled gets a new code");
		goto done;
	}
	result = fa_db_begin(req->db);
	if (result == FA_OK)
		result = insert_enrollment_code(req, id, &code, &expires);
	if (result == FA_OK)
		result = fa_audit(req, "device.enrollment_code", id, "success",
		                  NULL);
	if (result == FA_OK)
		result = fa_db_commit(req->db);
	if (result != FA_OK) {
		fa_db_rollback(req->db);
		fa_reply_db_error(req, result);
		goto done;
	}
	fa_reply_json(req, 201,
	              created_device_json(id, fa_db_value(device, 0, 0),
	                                  fa_db_value(device, 0, 2),
	                                  fa_db_value(device, 0, 3), code,
	                                  expires));
done:
	if (code != NULL)
		fa_wipe(code, strlen(code));
	free(code);
	free(expires);
	PQclear(device);
}

/* ------------------------------------------------------------------ */
/* Enrollment and renewal                                              */
/* ------------------------------------------------------------------ */

/* Inserts an issued certificate for device_id. */
static fa_result insert_certificate(struct fa_request *req,
                                    const char *device_id,
                                    const struct fa_issued_cert *cert)
{
	char not_before[32];
	char not_after[32];

	snprintf(not_before, sizeof(not_before), "%lld",
	         (long long)cert->not_before);
	snprintf(not_after, sizeof(not_after), "%lld",
	         (long long)cert->not_after);
	return fa_db_command(
	        req->db,
	        "INSERT INTO device_certificates (serial, device_id, "
	        "fingerprint_sha256, not_before, not_after, pem) VALUES ($1, "
	        "$2, $3, to_timestamp($4::bigint), to_timestamp($5::bigint), "
	        "$6)",
	        6,
	        (const char *[]){cert->serial, device_id, cert->fingerprint,
	                         not_before, not_after, cert->pem});
}

/* Builds {device_id, certificate, ca_chain, serial, ...}; NULL on error. */
static cJSON *issued_json(struct fa_request *req, const char *device_id,
                          const struct fa_issued_cert *cert)
{
	cJSON *body;
	char *chain = NULL;
	char time_text[32];
	struct tm tm;
	time_t t = cert->not_after;

	if (fa_ca_chain_pem(req->db, &chain) != FA_OK)
		return NULL;
	body = cJSON_CreateObject();
	if (body != NULL) {
		gmtime_r(&t, &tm);
		if (strftime(time_text, sizeof(time_text), "%Y-%m-%dT%H:%M:%SZ",
		             &tm) == 0)
			time_text[0] = '\0';
		cJSON_AddStringToObject(body, "device_id", device_id);
		cJSON_AddStringToObject(body, "certificate", cert->pem);
		cJSON_AddStringToObject(body, "ca_chain", chain);
		cJSON_AddStringToObject(body, "serial", cert->serial);
		cJSON_AddStringToObject(body, "fingerprint_sha256",
		                        cert->fingerprint);
		cJSON_AddStringToObject(body, "not_after", time_text);
	}
	free(chain);
	return body;
}

/* Replies to a failed enrollment or renewal and audits why. The client sees
 * one message for every reason so that it cannot probe codes. */
static void deny_certificate_request(struct fa_request *req, const char *action,
                                     const char *target, const char *reason,
                                     const char *message)
{
	cJSON *detail = cJSON_CreateObject();

	cJSON_AddStringToObject(detail, "reason", reason);
	fa_audit(req, action, target, "denied", detail);
	cJSON_Delete(detail);
	fa_device_throttle_fail(req, action);
	fa_reply_status(req, 403, message);
}

static void upper_ascii_copy(const char *in, char *out, size_t size)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < size; i++) {
		char c = in[i];

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		out[i] = c;
	}
	out[i] = '\0';
}

/* Checks the CSR field; replies 400 and counts a failure when it is bad. */
static bool parse_csr_field(struct fa_request *req, const char *action,
                            const char *csr, X509_REQ **out)
{
	char err[256];

	if (fa_csr_parse(csr, strlen(csr), out, err, sizeof(err)) == FA_OK)
		return true;
	fa_device_throttle_fail(req, action);
	fa_reply_problem(req, 400, FA_PROBLEM_INVALID_FIELD, "Invalid field",
	                 err);
	return false;
}

/*
 * Runs the enrollment transaction for the code hash: locks the code and
 * its device, checks them, issues the certificate, marks the code used and
 * activates the device. On a denial returns FA_ERR_DENIED with *reason set
 * and leaves the transaction rolled back.
 */
static fa_result enroll_locked(struct fa_request *req, const char *hash,
                               X509_REQ *csr, char *device_id, size_t id_size,
                               struct fa_issued_cert *cert, const char **reason)
{
	fa_result result;
	PGresult *res = NULL;
	char carrier[FA_ID_MAX + 1];

	*reason = NULL;
	result = fa_db_begin(req->db);
	if (result != FA_OK)
		return result;
	result = fa_db_exec(
	        req->db, &res,
	        "SELECT e.device_id, d.carrier_id, d.status, "
	        "e.expires_at > now(), e.used_at IS NULL "
	        "FROM enrollment_codes e JOIN devices d ON d.id = e.device_id "
	        "WHERE e.code_hash = $1 FOR UPDATE OF e, d",
	        1, (const char *[]){hash});
	if (result != FA_OK)
		goto fail;
	if (PQntuples(res) != 1)
		*reason = "unknown_code";
	else if (strcmp(fa_db_value(res, 0, 4), "t") != 0)
		*reason = "code_already_used";
	else if (strcmp(fa_db_value(res, 0, 3), "t") != 0)
		*reason = "code_expired";
	else if (strcmp(fa_db_value(res, 0, 2), "pending") != 0)
		*reason = "device_not_pending";
	if (PQntuples(res) == 1)
		snprintf(device_id, id_size, "%s", fa_db_value(res, 0, 0));
	if (*reason != NULL) {
		result = FA_ERR_DENIED;
		goto fail;
	}
	snprintf(carrier, sizeof(carrier), "%s", fa_db_value(res, 0, 1));
	result = fa_ca_issue(req->svc, req->db, csr, device_id, carrier,
	                     (int)req->svc->config.device_cert_days, cert);
	if (result == FA_OK)
		result = insert_certificate(req, device_id, cert);
	if (result == FA_OK)
		result = fa_db_command(req->db,
		                       "UPDATE enrollment_codes SET used_at = "
		                       "now() WHERE code_hash = $1",
		                       1, (const char *[]){hash});
	if (result == FA_OK)
		result = fa_db_command(req->db,
		                       "UPDATE devices SET status = 'active', "
		                       "enrolled_at = now() WHERE id = $1",
		                       1, (const char *[]){device_id});
	if (result == FA_OK)
		result = fa_audit(req, "device.enroll", device_id, "success",
		                  NULL);
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

/*
 * POST /v1/devices/enroll {enrollment_code, csr}: public. Exchanges an
 * unused, unexpired enrollment code and a CSR for the device's first
 * certificate.
 */
void fa_devices_enroll(struct fa_request *req)
{
	static const char *const fields[] = {"enrollment_code", "csr", NULL};
	fa_result result;
	const char *code = NULL;
	const char *csr_pem = NULL;
	X509_REQ *csr = NULL;
	char normalized[ENROLLMENT_CODE_MAX + 1];
	char hash[67];
	char device_id[FA_ID_MAX + 1] = "";
	const char *reason = NULL;
	struct fa_issued_cert cert = {0};

	if (!fa_device_throttle_check(req, "device.enroll"))
		return;
	if (!fa_json_only_fields(req, fields) ||
	    !fa_json_string(req, "enrollment_code", true, ENROLLMENT_CODE_MAX,
	                    FA_STR_NONEMPTY | FA_STR_TEXT, &code) ||
	    !fa_json_string(req, "csr", true, FA_CSR_MAX_LEN, FA_STR_NONEMPTY,
	                    &csr_pem))
		return;
	if (!parse_csr_field(req, "device.enroll", csr_pem, &csr))
		return;
	upper_ascii_copy(code, normalized, sizeof(normalized));
	fa_device_hash_param(normalized, hash);
	fa_wipe(normalized, sizeof(normalized));
	result = enroll_locked(req, hash, csr, device_id, sizeof(device_id),
	                       &cert, &reason);
	if (result == FA_ERR_DENIED && reason != NULL) {
		deny_certificate_request(
		        req, "device.enroll",
		        device_id[0] != '\0' ? device_id : NULL, reason,
		        "enrollment_code is unknown, expired or already "
		        "used: ask a dispatcher for a new code");
		goto out;
	}
	if (result == FA_ERR_NOT_FOUND) {
		fa_request_log(req, FA_LOG_ERROR,
		               "no current fleet CA: run \"fleetauthd ca "
		               "init\"");
		fa_reply_status(req, 503, "the fleet CA is not set up");
		goto out;
	}
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		goto out;
	}
	fa_reply_json(req, 201, issued_json(req, device_id, &cert));
out:
	fa_issued_cert_clear(&cert);
	X509_REQ_free(csr);
}

/*
 * Checks the renewal proof against every active, unexpired certificate of
 * the device (rows of serial, pem). Returns the matching row, or -1.
 */
static int find_proving_certificate(const PGresult *rows, const uint8_t *der,
                                    size_t der_len, const uint8_t *signature,
                                    size_t signature_len)
{
	int i;

	for (i = 0; i < PQntuples(rows); i++) {
		if (fa_cert_verify_sha256(fa_db_value(rows, i, 1), der, der_len,
		                          signature, signature_len) == FA_OK)
			return i;
	}
	return -1;
}

/* Renewal transaction; like enroll_locked it sets *reason on a denial. */
static fa_result renew_locked(struct fa_request *req, const char *device_id,
                              const uint8_t *der, size_t der_len,
                              const uint8_t *signature, size_t signature_len,
                              X509_REQ *csr, struct fa_issued_cert *cert,
                              const char **reason)
{
	fa_result result;
	PGresult *res = NULL;
	char carrier[FA_ID_MAX + 1];

	*reason = NULL;
	result = fa_db_begin(req->db);
	if (result != FA_OK)
		return result;
	result = fa_db_exec(
	        req->db, &res,
	        "SELECT d.carrier_id, c.pem, d.status FROM devices d "
	        "LEFT JOIN device_certificates c ON c.device_id = d.id "
	        "AND c.status = 'active' AND c.not_after > now() "
	        "WHERE d.id = $1 FOR UPDATE OF d",
	        1, (const char *[]){device_id});
	if (result != FA_OK)
		goto fail;
	if (PQntuples(res) == 0)
		*reason = "unknown_device";
	else if (strcmp(fa_db_value(res, 0, 2), "active") != 0)
		*reason = "device_not_active";
	else if (fa_db_value(res, 0, 1) == NULL)
		*reason = "no_valid_certificate";
	else if (find_proving_certificate(res, der, der_len, signature,
	                                  signature_len) < 0)
		*reason = "bad_signature";
	if (*reason != NULL) {
		result = FA_ERR_DENIED;
		goto fail;
	}
	snprintf(carrier, sizeof(carrier), "%s", fa_db_value(res, 0, 0));
	result = fa_ca_issue(req->svc, req->db, csr, device_id, carrier,
	                     (int)req->svc->config.device_cert_days, cert);
	if (result == FA_OK)
		result = fa_db_command(
		        req->db,
		        "UPDATE device_certificates SET status = "
		        "'superseded', revoked_at = now() WHERE device_id = "
		        "$1 AND status = 'active'",
		        1, (const char *[]){device_id});
	if (result == FA_OK)
		result = insert_certificate(req, device_id, cert);
	if (result == FA_OK)
		result = fa_audit(req, "device.renew", device_id, "success",
		                  NULL);
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

/*
 * POST /v1/devices/{id}/renew {csr, signature}: public. Issues a new
 * certificate when signature (base64) is a signature by the key of the
 * device's current certificate over the SHA-256 of the new CSR's DER. The
 * old certificate becomes superseded.
 */
void fa_devices_renew(struct fa_request *req)
{
	static const char *const fields[] = {"csr", "signature", NULL};
	fa_result result;
	const char *device_id = req->params[0];
	const char *csr_pem = NULL;
	const char *signature_text = NULL;
	uint8_t signature[RENEW_SIGNATURE_MAX];
	size_t signature_len = 0;
	uint8_t *der = NULL;
	size_t der_len = 0;
	X509_REQ *csr = NULL;
	const char *reason = NULL;
	struct fa_issued_cert cert = {0};

	if (!fa_device_throttle_check(req, "device.renew"))
		return;
	if (!fa_json_only_fields(req, fields) ||
	    !fa_json_string(req, "csr", true, FA_CSR_MAX_LEN, FA_STR_NONEMPTY,
	                    &csr_pem) ||
	    !fa_json_string(req, "signature", true,
	                    2 * (size_t)RENEW_SIGNATURE_MAX, FA_STR_NONEMPTY,
	                    &signature_text))
		return;
	if (fa_base64_decode_any(signature_text, signature, sizeof(signature),
	                         &signature_len) != FA_OK) {
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_FIELD,
		                 "Invalid field",
		                 "signature must be base64 (standard or "
		                 "URL alphabet)");
		return;
	}
	if (!parse_csr_field(req, "device.renew", csr_pem, &csr))
		return;
	result = fa_csr_pem_to_der(csr_pem, strlen(csr_pem), &der, &der_len);
	if (result == FA_OK)
		result = renew_locked(req, device_id, der, der_len, signature,
		                      signature_len, csr, &cert, &reason);
	if (result == FA_ERR_DENIED && reason != NULL)
		deny_certificate_request(
		        req, "device.renew", device_id, reason,
		        "renewal needs an active device, an unexpired "
		        "certificate and a signature by its key over the "
		        "SHA-256 of the new CSR");
	else if (result == FA_ERR_NOT_FOUND)
		fa_reply_status(req, 503, "the fleet CA is not set up");
	else if (result != FA_OK)
		fa_reply_db_error(req, result);
	else
		fa_reply_json(req, 201, issued_json(req, device_id, &cert));
	fa_issued_cert_clear(&cert);
	OPENSSL_free(der);
	X509_REQ_free(csr);
}

/* ------------------------------------------------------------------ */
/* Listing and details                                                 */
/* ------------------------------------------------------------------ */

/* Readers of devices: dispatchers, fleet analysts and everyone above them,
 * and system operators. Replies 403 for everyone else. */
static bool require_device_reader(struct fa_request *req)
{
	enum fa_role role = req->caller.role;

	if (fa_role_covers(role, FA_ROLE_DISPATCHER) ||
	    fa_role_covers(role, FA_ROLE_FLEET_ANALYST) ||
	    role == FA_ROLE_SYSTEM_OPERATOR)
		return true;
	return fa_require_role(req, FA_ROLE_DISPATCHER);
}

/* clang-format off */
#define DEVICE_COLUMNS \
	"d.id, d.carrier_id, d.device_type, d.label, d.status, " \
	"d.created_by, " FA_SQL_TIME("d.created_at") ", " \
	FA_SQL_TIME("d.enrolled_at") ", " FA_SQL_TIME("d.revoked_at") ", " \
	"d.revoke_reason"
/* clang-format on */

static cJSON *device_json(const PGresult *res, int row)
{
	cJSON *item = cJSON_CreateObject();

	if (item == NULL)
		return NULL;
	cJSON_AddStringToObject(item, "device_id", fa_db_value(res, row, 0));
	cJSON_AddStringToObject(item, "carrier", fa_db_value(res, row, 1));
	cJSON_AddStringToObject(item, "kind", fa_db_value(res, row, 2));
	cJSON_AddStringToObject(item, "label", fa_db_value(res, row, 3));
	cJSON_AddStringToObject(item, "status", fa_db_value(res, row, 4));
	cJSON_AddStringToObject(item, "created_by", fa_db_value(res, row, 5));
	cJSON_AddStringToObject(item, "created_at", fa_db_value(res, row, 6));
	fa_json_add_nullable(item, "enrolled_at", fa_db_value(res, row, 7));
	fa_json_add_nullable(item, "revoked_at", fa_db_value(res, row, 8));
	fa_json_add_nullable(item, "revoke_reason", fa_db_value(res, row, 9));
	return item;
}

/* Reads and checks the carrier, status and after filters of a listing. */
static bool list_filters(struct fa_request *req, const char **carrier,
                         const char **status, const char **after,
                         long long *limit)
{
	*status = fa_request_query(req, "status");
	if (!fa_query_id(req, "carrier", carrier) ||
	    !fa_query_id(req, "after", after) ||
	    !fa_query_int(req, "limit", 1, LIST_LIMIT_MAX, limit))
		return false;
	if (*status != NULL && strcmp(*status, "pending") != 0 &&
	    strcmp(*status, "active") != 0 && strcmp(*status, "revoked") != 0) {
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_PARAMETER,
		                 "Invalid parameter",
		                 "status must be pending, active or revoked");
		return false;
	}
	if (*carrier == NULL && !fa_caller_is_platform(&req->caller))
		*carrier = req->caller.carrier;
	if (*carrier != NULL && (*carrier)[0] == '\0')
		*carrier = NULL;
	if (*carrier == NULL && !fa_caller_is_platform(&req->caller)) {
		fa_reply_status(req, 403, "caller has no carrier");
		return false;
	}
	return *carrier == NULL || fa_require_carrier(req, *carrier);
}

/*
 * GET /v1/devices?carrier=&status=&limit=&after=: devices ordered by id,
 * at most limit (default 100) per page; "next" is the "after" of the next
 * page. Carrier roles see only their own carrier.
 */
void fa_devices_list(struct fa_request *req)
{
	fa_result result;
	const char *carrier = NULL;
	const char *status = NULL;
	const char *after = NULL;
	long long limit = LIST_LIMIT_DEFAULT;
	char limit_text[24];
	PGresult *res = NULL;
	cJSON *body;
	cJSON *items;
	int i;

	if (!require_device_reader(req) ||
	    !list_filters(req, &carrier, &status, &after, &limit))
		return;
	snprintf(limit_text, sizeof(limit_text), "%lld", limit);
	result = fa_db_exec(
	        req->db, &res,
	        "SELECT " DEVICE_COLUMNS " FROM devices d "
	        "WHERE ($1::text IS NULL OR d.carrier_id = $1) "
	        "AND ($2::text IS NULL OR d.status = $2) "
	        "AND ($3::text IS NULL OR d.id > $3) "
	        "ORDER BY d.id LIMIT $4::int",
	        4, (const char *[]){carrier, status, after, limit_text});
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	body = cJSON_CreateObject();
	items = cJSON_AddArrayToObject(body, "items");
	for (i = 0; i < PQntuples(res); i++)
		cJSON_AddItemToArray(items, device_json(res, i));
	if (PQntuples(res) == limit)
		cJSON_AddStringToObject(
		        body, "next", fa_db_value(res, PQntuples(res) - 1, 0));
	PQclear(res);
	fa_reply_json(req, 200, body);
}

/* clang-format off */
#define CERT_COLUMNS \
	"serial, fingerprint_sha256, " FA_SQL_TIME("not_before") ", " \
	FA_SQL_TIME("not_after") ", status, " FA_SQL_TIME("issued_at") ", " \
	FA_SQL_TIME("revoked_at")
/* clang-format on */

static cJSON *certificates_json(const PGresult *res)
{
	cJSON *list = cJSON_CreateArray();
	int i;

	for (i = 0; list != NULL && i < PQntuples(res); i++) {
		cJSON *item = cJSON_CreateObject();

		cJSON_AddStringToObject(item, "serial", fa_db_value(res, i, 0));
		cJSON_AddStringToObject(item, "fingerprint_sha256",
		                        fa_db_value(res, i, 1));
		cJSON_AddStringToObject(item, "not_before",
		                        fa_db_value(res, i, 2));
		cJSON_AddStringToObject(item, "not_after",
		                        fa_db_value(res, i, 3));
		cJSON_AddStringToObject(item, "status", fa_db_value(res, i, 4));
		cJSON_AddStringToObject(item, "issued_at",
		                        fa_db_value(res, i, 5));
		fa_json_add_nullable(item, "revoked_at",
		                     fa_db_value(res, i, 6));
		cJSON_AddItemToArray(list, item);
	}
	return list;
}

/*
 * GET /v1/devices/{id}: the device, the serial, fingerprint and validity of
 * its newest certificate at top level, and every certificate newest first.
 */
void fa_devices_get(struct fa_request *req)
{
	fa_result result;
	const char *id = req->params[0];
	PGresult *device = NULL;
	PGresult *certs = NULL;
	cJSON *body;
	cJSON *newest;
	static const char *const copied[] = {"serial", "fingerprint_sha256",
	                                     "not_before", "not_after"};
	size_t i;

	if (!require_device_reader(req) ||
	    !load_visible_device(req, id, &device))
		return;
	PQclear(device);
	result = fa_db_exec_one(req->db, &device,
	                        "SELECT " DEVICE_COLUMNS
	                        " FROM devices d WHERE d.id = $1",
	                        1, (const char *[]){id});
	if (result == FA_OK)
		result = fa_db_exec(req->db, &certs,
		                    "SELECT " CERT_COLUMNS
		                    " FROM device_certificates "
		                    "WHERE device_id = $1 "
		                    "ORDER BY issued_at DESC, serial",
		                    1, (const char *[]){id});
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		goto out;
	}
	body = device_json(device, 0);
	cJSON_AddItemToObject(body, "certificates", certificates_json(certs));
	newest = cJSON_GetArrayItem(cJSON_GetObjectItem(body, "certificates"),
	                            0);
	for (i = 0; i < sizeof(copied) / sizeof(copied[0]); i++) {
		const cJSON *value = cJSON_GetObjectItem(newest, copied[i]);

		if (cJSON_IsString(value))
			cJSON_AddStringToObject(body, copied[i],
			                        value->valuestring);
		else
			cJSON_AddNullToObject(body, copied[i]);
	}
	fa_reply_json(req, 200, body);
out:
	PQclear(device);
	PQclear(certs);
}

/* ------------------------------------------------------------------ */
/* Revocation                                                          */
/* ------------------------------------------------------------------ */

static bool valid_revoke_reason(const char *reason)
{
	size_t i;

	for (i = 0; revoke_reasons[i] != NULL; i++) {
		if (strcmp(reason, revoke_reasons[i]) == 0)
			return true;
	}
	return false;
}

/* Runs one counted UPDATE and stores its row count in detail under name. */
static fa_result count_update(struct fa_request *req, cJSON *detail,
                              const char *name, const char *sql,
                              const char *const *params, int nparams)
{
	fa_result result;
	PGresult *res = NULL;

	result = fa_db_exec(req->db, &res, sql, nparams, params);
	if (result == FA_OK)
		cJSON_AddNumberToObject(
		        detail, name,
		        (double)strtol(PQcmdTuples(res), NULL, 10));
	PQclear(res);
	return result;
}

/* The revocation writes; detail receives the counts. Caller holds the
 * transaction and the device row lock. */
static fa_result revoke_rows(struct fa_request *req, const char *id,
                             const char *reason, cJSON *detail)
{
	fa_result result;
	const char *const one[] = {id};

	result = fa_db_command(req->db,
	                       "UPDATE devices SET status = 'revoked', "
	                       "revoked_at = now(), revoke_reason = $2 "
	                       "WHERE id = $1",
	                       2, (const char *[]){id, reason});
	if (result == FA_OK)
		result = count_update(
		        req, detail, "certificates_revoked",
		        "UPDATE device_certificates SET status = 'revoked', "
		        "revoked_at = coalesce(revoked_at, now()) WHERE "
		        "device_id = $1 AND status IN ('active', "
		        "'superseded')",
		        one, 1);
	if (result == FA_OK)
		result = count_update(
		        req, detail, "families_revoked",
		        "UPDATE refresh_families SET revoked_at = now(), "
		        "revoke_reason = 'device revoked' WHERE device_id = "
		        "$1 AND revoked_at IS NULL",
		        one, 1);
	if (result == FA_OK)
		result = count_update(
		        req, detail, "device_keys_revoked",
		        "UPDATE device_keys SET status = 'revoked', revoked_at "
		        "= now() WHERE device_id = $1 AND status = 'active'",
		        one, 1);
	if (result == FA_OK)
		result = fa_db_command(req->db,
		                       "UPDATE enrollment_codes SET expires_at "
		                       "= now() WHERE device_id = $1 AND "
		                       "used_at IS NULL AND expires_at > now()",
		                       1, one);
	return result;
}

/*
 * POST /v1/devices/{id}/revoke {reason}: fleet managers and above. In one
 * transaction revokes the device, its certificates, every refresh-token
 * family bound to it and its device keys; the change_log triggers then
 * notify the brokers.
 */
void fa_devices_revoke(struct fa_request *req)
{
	static const char *const fields[] = {"reason", NULL};
	fa_result result;
	const char *id = req->params[0];
	const char *reason = NULL;
	PGresult *device = NULL;
	PGresult *locked = NULL;
	cJSON *detail = NULL;
	cJSON *body;

	if (!fa_require_role(req, FA_ROLE_FLEET_MANAGER) ||
	    !fa_json_only_fields(req, fields) ||
	    !fa_json_string(req, "reason", true, 32, FA_STR_NONEMPTY, &reason))
		return;
	if (!valid_revoke_reason(reason)) {
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_FIELD,
		                 "Invalid field",
		                 "reason must be one of lost, stolen, "
		                 "key_compromise, decommissioned, replaced, "
		                 "other");
		return;
	}
	if (!load_visible_device(req, id, &device))
		return;
	result = fa_db_begin(req->db);
	if (result != FA_OK)
		goto out;
	result = fa_db_exec_one(req->db, &locked,
	                        "SELECT status FROM devices WHERE id = $1 "
	                        "FOR UPDATE",
	                        1, (const char *[]){id});
	if (result != FA_OK)
		goto rollback;
	if (strcmp(fa_db_value(locked, 0, 0), "revoked") == 0) {
		fa_db_rollback(req->db);
		fa_reply_status(req, 409, "device is already revoked");
		goto done;
	}
	detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "reason", reason);
	cJSON_AddStringToObject(detail, "carrier", fa_db_value(device, 0, 0));
	result = revoke_rows(req, id, reason, detail);
	if (result == FA_OK)
		result = fa_audit(req, "device.revoke", id, "success", detail);
	if (result == FA_OK)
		result = fa_db_commit(req->db);
	if (result != FA_OK)
		goto rollback;
	body = cJSON_Duplicate(detail, true);
	cJSON_AddStringToObject(body, "device_id", id);
	cJSON_AddStringToObject(body, "status", "revoked");
	fa_reply_json(req, 200, body);
	goto done;
rollback:
	fa_db_rollback(req->db);
out:
	fa_reply_db_error(req, result);
done:
	cJSON_Delete(detail);
	PQclear(device);
	PQclear(locked);
}

/* ------------------------------------------------------------------ */
/* Fleet CA                                                            */
/* ------------------------------------------------------------------ */

/* GET /v1/ca: public. {certificate} with the current CA certificate. */
void fa_ca_get_certificate(struct fa_request *req)
{
	fa_result result;
	char *pem = NULL;
	cJSON *body;

	result = fa_ca_chain_pem(req->db, &pem);
	if (result == FA_ERR_NOT_FOUND) {
		fa_reply_problem(req, 404, FA_PROBLEM_NOT_FOUND, "Not found",
		                 "no fleet CA has been set up");
		return;
	}
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "certificate", pem);
	free(pem);
	fa_reply_json(req, 200, body);
}

/* GET /v1/ca/crl?format=pem|der: public. The CRL of the fleet CA. */
void fa_ca_get_crl(struct fa_request *req)
{
	fa_result result;
	const char *format = fa_request_query(req, "format");
	bool pem = true;
	uint8_t *crl = NULL;
	size_t crl_len = 0;

	if (format != NULL && strcmp(format, "der") == 0)
		pem = false;
	else if (format != NULL && strcmp(format, "pem") != 0) {
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_PARAMETER,
		                 "Invalid parameter",
		                 "format must be pem or der");
		return;
	}
	result = fa_ca_crl(req->svc, req->db, pem, &crl, &crl_len);
	if (result == FA_ERR_NOT_FOUND) {
		fa_reply_problem(req, 404, FA_PROBLEM_NOT_FOUND, "Not found",
		                 "no fleet CA has been set up");
		return;
	}
	if (result != FA_OK) {
		fa_request_log(req, FA_LOG_ERROR, "building the CRL failed: %s",
		               fa_result_str(result));
		fa_reply_db_error(req, result);
		return;
	}
	fa_reply_bytes(req, 200,
	               pem ? "application/x-pem-file" : "application/pkix-crl",
	               crl, crl_len);
	free(crl);
}
