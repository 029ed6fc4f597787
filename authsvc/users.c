/*
 * Users: create, list, read, change role or status, delete, and revoke all
 * sessions. A caller manages (creates, changes, deletes, revokes the
 * sessions of) only users whose role is strictly below its own, and may
 * give only such roles, so that nobody creates or promotes a peer. Only a
 * system_admin manages users of its own role.
 * A carrier-scoped caller can read only users of its own carrier, and a
 * request for any other user gets 404, so that its existence does not
 * leak.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "password.h"

#define PASSWORD_MAX_BYTES 1024
#define USER_PAGE_DEFAULT 100
#define USER_PAGE_MAX 500

struct user_row {
	char id[FA_ID_MAX + 1];
	enum fa_role role;
	char carrier[FA_ID_MAX + 1]; /* "" when the user has none */
	char status[16];
};

#define USER_COLUMNS                                                           \
	"id, role, carrier_id, status, "                                       \
	"to_char(created_at AT TIME ZONE 'UTC', "                              \
	"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "                                  \
	"to_char(updated_at AT TIME ZONE 'UTC', "                              \
	"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "                                  \
	"to_char(window_start, 'HH24:MI') || '-' || "                          \
	"to_char(window_end, 'HH24:MI')"

static cJSON *user_json(const PGresult *res, int row)
{
	cJSON *item = cJSON_CreateObject();
	const char *carrier = fa_db_value(res, row, 2);

	cJSON_AddStringToObject(item, "id", PQgetvalue(res, row, 0));
	cJSON_AddStringToObject(item, "username", PQgetvalue(res, row, 0));
	cJSON_AddStringToObject(item, "role", PQgetvalue(res, row, 1));
	if (carrier != NULL)
		cJSON_AddStringToObject(item, "carrier", carrier);
	else
		cJSON_AddNullToObject(item, "carrier");
	cJSON_AddStringToObject(item, "status", PQgetvalue(res, row, 3));
	cJSON_AddStringToObject(item, "created_at", PQgetvalue(res, row, 4));
	cJSON_AddStringToObject(item, "updated_at", PQgetvalue(res, row, 5));
	if (PQgetisnull(res, row, 6))
		cJSON_AddNullToObject(item, "access_window");
	else
		cJSON_AddStringToObject(item, "access_window",
		                        PQgetvalue(res, row, 6));
	return item;
}

/* An access window from a request: present is set when the field was
 * sent; start and end are "HH:MM", both empty when it is to be removed. */
struct access_window {
	bool present;
	char start[6];
	char end[6];
};

static bool hhmm_valid(const char *s)
{
	return strlen(s) == 5 && s[2] == ':' && s[0] >= '0' && s[0] <= '2' &&
	       s[1] >= '0' && s[1] <= '9' && (s[0] < '2' || s[1] <= '3') &&
	       s[3] >= '0' && s[3] <= '5' && s[4] >= '0' && s[4] <= '9';
}

/*
 * Reads the optional field access_window: "HH:MM-HH:MM" in the carrier's
 * time zone (UTC for users without a carrier), where an end before the
 * start spans midnight, or null to remove the window when null_allowed.
 * Replies 400 naming the value and returns false when it is malformed.
 */
static bool parse_window(struct fa_request *req, bool null_allowed,
                         struct access_window *window)
{
	const cJSON *item = NULL;
	const char *text;
	char detail[320];

	memset(window, 0, sizeof(*window));
	if (req->body != NULL)
		item = cJSON_GetObjectItemCaseSensitive(req->body,
		                                        "access_window");
	if (item == NULL)
		return true;
	if (cJSON_IsNull(item) && null_allowed) {
		window->present = true;
		return true;
	}
	text = cJSON_IsString(item) ? item->valuestring : NULL;
	if (text != NULL && strlen(text) == 11 && text[5] == '-') {
		memcpy(window->start, text, 5);
		memcpy(window->end, text + 6, 5);
		if (hhmm_valid(window->start) && hhmm_valid(window->end) &&
		    strcmp(window->start, window->end) != 0) {
			window->present = true;
			return true;
		}
	}
	snprintf(detail, sizeof(detail),
	         "access_window: got %s%.40s%s; use \"HH:MM-HH:MM\" with a "
	         "different start and end in the carrier's time zone, for "
	         "example \"06:00-18:00\" (\"22:00-06:00\" spans "
	         "midnight)%s",
	         text != NULL ? "\"" : "", text != NULL ? text : "a non-string",
	         text != NULL ? "\"" : "",
	         null_allowed ? ", or null to remove the window" : "");
	fa_reply_problem(req, 400, FA_PROBLEM_INVALID_FIELD, "Invalid field",
	                 detail);
	return false;
}

/* The window for an SQL parameter: "HH:MM" or NULL when there is none. */
static const char *window_param(const char *hhmm)
{
	return hhmm[0] != '\0' ? hhmm : NULL;
}

static bool is_platform_role(enum fa_role role)
{
	return role == FA_ROLE_SYSTEM_ADMIN || role == FA_ROLE_SYSTEM_OPERATOR;
}

/* True when role covers some other role, that is, when it is not a leaf
 * of the hierarchy; only such roles manage users. */
static bool role_manages_users(enum fa_role role)
{
	int other;

	for (other = FA_ROLE_NONE + 1; other < FA_ROLE_COUNT; other++) {
		if ((enum fa_role)other != role &&
		    fa_role_covers(role, (enum fa_role)other))
			return true;
	}
	return false;
}

/* True when the caller's role is strictly above role in the hierarchy, or
 * the caller is a system_admin, which manages every role. */
static bool caller_manages(const struct fa_caller *caller, enum fa_role role)
{
	if (caller->role == FA_ROLE_SYSTEM_ADMIN)
		return true;
	return role_manages_users(caller->role) && caller->role != role &&
	       fa_role_covers(caller->role, role);
}

/* Decides whether the caller may read a user with role and carrier ("" for
 * none). */
static bool caller_sees(const struct fa_caller *caller, enum fa_role role,
                        const char *carrier)
{
	if (fa_caller_is_platform(caller))
		return true;
	if (caller->carrier[0] != '\0')
		return strcmp(caller->carrier, carrier) == 0;
	return carrier[0] == '\0' && fa_role_covers(caller->role, role);
}

/* Audits a denied request and replies 403. An open transaction is rolled
 * back first, because the audit row would otherwise go with it. */
static void deny(struct fa_request *req, const char *action, const char *target,
                 const char *why)
{
	cJSON *detail = cJSON_CreateObject();

	fa_db_rollback(req->db);

	cJSON_AddStringToObject(detail, "reason", why);
	fa_audit(req, action, target, "denied", detail);
	cJSON_Delete(detail);
	fa_reply_status(req, 403, why);
}

/*
 * Audits a request for a user the caller may not see as request.authorize
 * denied, as fa_require_carrier does for other objects, and replies the
 * same 404 as for a missing user. An open transaction is rolled back
 * first so that the audit row stays.
 */
static void deny_invisible(struct fa_request *req, const char *carrier)
{
	cJSON *detail = cJSON_CreateObject();

	fa_db_rollback(req->db);
	cJSON_AddStringToObject(detail, "carrier", carrier);
	fa_audit(req, "request.authorize", req->path, "denied", detail);
	cJSON_Delete(detail);
	fa_reply_status(req, 404, NULL);
}

/*
 * Reads the user named by the path into row (locking it with FOR UPDATE
 * when lock is set). Replies 404 and returns false when the user does not
 * exist, is deleted or is invisible to the caller, and *res_out is then
 * NULL.
 */
static bool load_user(struct fa_request *req, bool lock, PGresult **res_out,
                      struct user_row *row)
{
	const char *params[1] = {req->params[0]};
	const char *carrier;
	fa_result result;

	*res_out = NULL;
	result = fa_db_exec_one(req->db, res_out,
	                        lock ? "SELECT " USER_COLUMNS
	                               " FROM users WHERE id = $1 FOR UPDATE"
	                             : "SELECT " USER_COLUMNS
	                               " FROM users WHERE id = $1",
	                        1, params);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return false;
	}
	snprintf(row->id, sizeof(row->id), "%s", PQgetvalue(*res_out, 0, 0));
	row->role = fa_role_parse(PQgetvalue(*res_out, 0, 1));
	carrier = fa_db_value(*res_out, 0, 2);
	snprintf(row->carrier, sizeof(row->carrier), "%s",
	         carrier != NULL ? carrier : "");
	snprintf(row->status, sizeof(row->status), "%s",
	         PQgetvalue(*res_out, 0, 3));
	if (!caller_sees(&req->caller, row->role, row->carrier)) {
		PQclear(*res_out);
		*res_out = NULL;
		deny_invisible(req, row->carrier);
		return false;
	}
	if (lock && strcmp(row->status, "deleted") == 0) {
		PQclear(*res_out);
		*res_out = NULL;
		fa_reply_status(req, 404, NULL);
		return false;
	}
	return true;
}

/* Revokes every open refresh family of user, and the change_log trigger
 * notifies the brokers. Sets *count to the number revoked. */
static fa_result revoke_families(PGconn *db, const char *user,
                                 const char *reason, long *count)
{
	const char *params[2] = {user, reason};
	PGresult *res = NULL;
	fa_result result;

	result = fa_db_exec(db, &res,
	                    "UPDATE refresh_families SET revoked_at = now(), "
	                    "revoke_reason = $2 WHERE user_id = $1 "
	                    "AND revoked_at IS NULL",
	                    2, params);
	if (result == FA_OK)
		*count = strtol(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return result;
}

/* ------------------------------------------------------------------ */
/* POST /v1/users                                                      */
/* ------------------------------------------------------------------ */

struct new_user {
	const char *username;
	const char *password;
	enum fa_role role;
	const char *carrier; /* NULL for none */
	struct access_window window;
};

static const char *const create_fields[] = {"username", "password",      "role",
                                            "carrier",  "access_window", NULL};

/* Applies the carrier rules of the target role; replies and returns false
 * on a violation. */
static bool resolve_carrier(struct fa_request *req, struct new_user *user)
{
	char detail[160];

	if (is_platform_role(user->role) && user->carrier != NULL) {
		snprintf(detail, sizeof(detail),
		         "carrier: must be absent for role %s",
		         fa_role_name(user->role));
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_FIELD,
		                 "Invalid field", detail);
		return false;
	}
	if (user->carrier == NULL && fa_role_is_carrier_role(user->role) &&
	    req->caller.carrier[0] != '\0')
		user->carrier = req->caller.carrier;
	if (user->carrier == NULL && fa_role_is_carrier_role(user->role)) {
		snprintf(detail, sizeof(detail),
		         "carrier: required for role %s",
		         fa_role_name(user->role));
		fa_reply_problem(req, 400, FA_PROBLEM_MISSING_FIELD,
		                 "Missing field", detail);
		return false;
	}
	if (user->carrier != NULL)
		return fa_require_carrier(req, user->carrier);
	if (!fa_caller_is_platform(&req->caller) &&
	    req->caller.carrier[0] != '\0') {
		deny(req, "user.create", user->username,
		     "a carrier user cannot create users without a carrier");
		return false;
	}
	return true;
}

static bool parse_new_user(struct fa_request *req, struct new_user *user)
{
	memset(user, 0, sizeof(*user));
	return fa_json_only_fields(req, create_fields) &&
	       fa_json_string(req, "username", true, FA_ID_MAX, FA_STR_ID,
	                      &user->username) &&
	       fa_json_string(req, "password", true, PASSWORD_MAX_BYTES, 0,
	                      &user->password) &&
	       fa_json_role(req, "role", true, &user->role) &&
	       fa_json_string(req, "carrier", false, FA_ID_MAX, FA_STR_ID,
	                      &user->carrier) &&
	       parse_window(req, false, &user->window);
}

/* Checks the password policy and hashes it; replies on failure. *hash_out
 * is malloc'd and owned by the caller. */
static bool hash_password(struct fa_request *req, const char *password,
                          char **hash_out)
{
	char err[200];
	char detail[256];

	*hash_out = NULL;
	err[0] = '\0';
	if (fa_password_check_policy(password, err, sizeof(err)) != FA_OK) {
		snprintf(detail, sizeof(detail), "password: %s", err);
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_FIELD,
		                 "Invalid field", detail);
		return false;
	}
	if (fa_password_hash(password, (int)req->svc->config.bcrypt_cost,
	                     hash_out) != FA_OK) {
		fa_request_log(req, FA_LOG_ERROR, "password hashing failed");
		fa_reply_status(req, 500, NULL);
		return false;
	}
	return true;
}

/* Inserts the principal and the user in one transaction; replies. */
static void insert_user(struct fa_request *req, const struct new_user *user,
                        const char *hash)
{
	const char *params[6] = {user->username,
	                         fa_role_name(user->role),
	                         user->carrier,
	                         hash,
	                         window_param(user->window.start),
	                         window_param(user->window.end)};
	const char *carrier_params[1] = {user->carrier};
	PGresult *res = NULL;
	fa_result result;

	result = fa_db_begin(req->db);
	if (result != FA_OK)
		goto out;
	if (user->carrier != NULL) {
		result = fa_db_exec_one(req->db, &res,
		                        "SELECT 1 FROM carriers WHERE id = $1 "
		                        "FOR SHARE",
		                        1, carrier_params);
		PQclear(res);
		res = NULL;
		if (result != FA_OK)
			goto out;
	}
	result = fa_db_command(req->db,
	                       "INSERT INTO principals (id, kind) "
	                       "VALUES ($1, 'user')",
	                       1, params);
	if (result != FA_OK)
		goto out;
	result = fa_db_exec(req->db, &res,
	                    "INSERT INTO users (id, role, carrier_id, "
	                    "password_hash, window_start, window_end) "
	                    "VALUES ($1, $2, $3, $4, $5::time, $6::time) "
	                    "RETURNING " USER_COLUMNS,
	                    6, params);
	if (result != FA_OK)
		goto out;
	result = fa_audit(req, "user.create", user->username, "success", NULL);
	if (result != FA_OK)
		goto out;
	result = fa_db_commit(req->db);
out:
	fa_db_rollback(req->db);
	if (result == FA_OK)
		fa_reply_json(req, 201, user_json(res, 0));
	else if (result == FA_ERR_NOT_FOUND)
		fa_reply_status(req, 404, "no such carrier");
	else if (result == FA_ERR_DENIED)
		fa_reply_status(req, 409,
		                "the id is taken by a user or a "
		                "device");
	else
		fa_reply_db_error(req, result);
	PQclear(res);
}

void fa_users_create(struct fa_request *req)
{
	struct new_user user;
	char *hash = NULL;

	if (!parse_new_user(req, &user))
		return;
	if (!caller_manages(&req->caller, user.role)) {
		deny(req, "user.create", user.username,
		     "your role cannot create users with this role");
		return;
	}
	if (!resolve_carrier(req, &user))
		return;
	if (!hash_password(req, user.password, &hash))
		return;
	insert_user(req, &user, hash);
	fa_wipe(hash, strlen(hash));
	free(hash);
}

/* ------------------------------------------------------------------ */
/* GET /v1/users, GET /v1/users/{id}                                   */
/* ------------------------------------------------------------------ */

/* Filters of a user listing, as SQL parameters. */
struct user_filter {
	const char *carrier;
	const char *role;
	const char *status;
	const char *after;
	char roles[256]; /* text[] literal of visible roles, or "" */
	bool null_carrier_only;
};

/* Restricts the listing to what the caller may see; replies and returns
 * false when the caller asked for another carrier. */
static bool restrict_filter(struct fa_request *req, struct user_filter *f)
{
	const struct fa_caller *caller = &req->caller;
	size_t len;
	int role;

	if (fa_caller_is_platform(caller))
		return true;
	if (caller->carrier[0] != '\0') {
		if (f->carrier != NULL && !fa_require_carrier(req, f->carrier))
			return false;
		f->carrier = caller->carrier;
		return true;
	}
	/* A non-platform caller without a carrier can read users without a
	 * carrier whose roles it covers. */
	f->null_carrier_only = true;
	len = (size_t)snprintf(f->roles, sizeof(f->roles), "{");
	for (role = FA_ROLE_NONE + 1; role < FA_ROLE_COUNT; role++) {
		if (fa_role_covers(caller->role, (enum fa_role)role))
			len += (size_t)snprintf(
			        f->roles + len, sizeof(f->roles) - len, "%s%s",
			        len > 1 ? "," : "",
			        fa_role_name((enum fa_role)role));
	}
	snprintf(f->roles + len, sizeof(f->roles) - len, "}");
	return true;
}

static bool parse_filter(struct fa_request *req, struct user_filter *f,
                         long long *limit)
{
	enum fa_role role;

	memset(f, 0, sizeof(*f));
	if (!fa_query_id(req, "carrier", &f->carrier) ||
	    !fa_query_id(req, "after", &f->after) ||
	    !fa_query_int(req, "limit", 1, USER_PAGE_MAX, limit))
		return false;
	f->role = fa_request_query(req, "role");
	f->status = fa_request_query(req, "status");
	if (f->role != NULL) {
		role = fa_role_parse(f->role);
		if (role == FA_ROLE_NONE) {
			fa_reply_problem(req, 400, FA_PROBLEM_INVALID_PARAMETER,
			                 "Invalid query parameter",
			                 "role: unknown role name");
			return false;
		}
	}
	if (f->status != NULL && strcmp(f->status, "active") != 0 &&
	    strcmp(f->status, "locked") != 0 &&
	    strcmp(f->status, "disabled") != 0 &&
	    strcmp(f->status, "deleted") != 0) {
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_PARAMETER,
		                 "Invalid query parameter",
		                 "status: use active, locked, disabled or "
		                 "deleted");
		return false;
	}
	return restrict_filter(req, f);
}

void fa_users_list(struct fa_request *req)
{
	struct user_filter filter;
	long long limit = USER_PAGE_DEFAULT;
	char limit_text[24];
	const char *params[7];
	PGresult *res = NULL;
	cJSON *reply;
	cJSON *items;
	fa_result result;
	int rows;
	int i;

	if (!fa_caller_is_platform(&req->caller) &&
	    !role_manages_users(req->caller.role)) {
		deny(req, "user.list", NULL, "your role cannot list users");
		return;
	}
	if (!parse_filter(req, &filter, &limit))
		return;
	snprintf(limit_text, sizeof(limit_text), "%lld", limit + 1);
	params[0] = filter.carrier;
	params[1] = filter.role;
	params[2] = filter.status;
	params[3] = filter.after;
	params[4] = filter.roles[0] != '\0' ? filter.roles : NULL;
	params[5] = filter.null_carrier_only ? "true" : "false";
	params[6] = limit_text;
	result = fa_db_exec(
	        req->db, &res,
	        "SELECT " USER_COLUMNS " FROM users "
	        "WHERE ($1::text IS NULL OR carrier_id = $1) "
	        "AND ($2::text IS NULL OR role = $2) "
	        "AND (($3::text IS NULL AND status <> 'deleted') "
	        "OR status = $3) "
	        "AND ($4::text IS NULL OR id > $4) "
	        "AND ($5::text[] IS NULL OR role = ANY ($5::text[])) "
	        "AND (NOT $6::bool OR carrier_id IS NULL) "
	        "ORDER BY id LIMIT $7",
	        7, params);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	reply = cJSON_CreateObject();
	items = cJSON_AddArrayToObject(reply, "items");
	rows = PQntuples(res);
	for (i = 0; i < rows && i < limit; i++)
		cJSON_AddItemToArray(items, user_json(res, i));
	if (rows > limit)
		cJSON_AddStringToObject(reply, "next",
		                        PQgetvalue(res, (int)limit - 1, 0));
	PQclear(res);
	fa_reply_json(req, 200, reply);
}

/* GET /v1/users/{id}: the user themselves, platform roles, and roles that
 * manage users. */
void fa_users_get(struct fa_request *req)
{
	struct user_row row;
	PGresult *res = NULL;
	bool self = req->caller.kind == FA_CALLER_USER &&
	            strcmp(req->caller.id, req->params[0]) == 0;

	if (!self && !fa_caller_is_platform(&req->caller) &&
	    !role_manages_users(req->caller.role)) {
		deny(req, "user.read", req->params[0],
		     "your role can read only your own user");
		return;
	}
	if (!load_user(req, false, &res, &row))
		return;
	fa_reply_json(req, 200, user_json(res, 0));
	PQclear(res);
}

/* ------------------------------------------------------------------ */
/* PATCH and DELETE /v1/users/{id}                                     */
/* ------------------------------------------------------------------ */

static const char *const patch_fields[] = {"role", "status", "access_window",
                                           NULL};

static bool parse_patch(struct fa_request *req, enum fa_role *role,
                        const char **status, struct access_window *window)
{
	*role = FA_ROLE_NONE;
	*status = NULL;
	if (!fa_json_only_fields(req, patch_fields) ||
	    !fa_json_role(req, "role", false, role) ||
	    !fa_json_string(req, "status", false, 16, FA_STR_NONEMPTY,
	                    status) ||
	    !parse_window(req, true, window))
		return false;
	if (*role == FA_ROLE_NONE && *status == NULL && !window->present) {
		fa_reply_problem(req, 400, FA_PROBLEM_MISSING_FIELD,
		                 "Missing field",
		                 "role, status, access_window: send at least "
		                 "one");
		return false;
	}
	if (*status != NULL && strcmp(*status, "active") != 0 &&
	    strcmp(*status, "locked") != 0 &&
	    strcmp(*status, "disabled") != 0) {
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_FIELD,
		                 "Invalid field",
		                 "status: use active, locked or disabled");
		return false;
	}
	return true;
}

/* Checks that the caller may change row: not themselves, and strictly
 * above both the old and the new role (see caller_manages). Replies 403
 * and audits the denial when not. */
static bool may_change(struct fa_request *req, const char *action,
                       const struct user_row *row, enum fa_role new_role)
{
	if (req->caller.kind == FA_CALLER_USER &&
	    strcmp(req->caller.id, row->id) == 0) {
		deny(req, action, row->id,
		     "you cannot change your own role, status or "
		     "access window");
		return false;
	}
	if (!caller_manages(&req->caller, row->role) ||
	    (new_role != FA_ROLE_NONE &&
	     !caller_manages(&req->caller, new_role))) {
		deny(req, action, row->id,
		     "your role cannot manage users with this role");
		return false;
	}
	return true;
}

/* Rejects a role that does not fit the user's carrier. */
static bool role_fits_carrier(struct fa_request *req,
                              const struct user_row *row, enum fa_role role)
{
	if (role == FA_ROLE_NONE)
		return true;
	if (fa_role_is_carrier_role(role) && row->carrier[0] == '\0') {
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_FIELD,
		                 "Invalid field",
		                 "role: needs a user with a carrier");
		return false;
	}
	if (is_platform_role(role) && row->carrier[0] != '\0') {
		fa_reply_problem(req, 400, FA_PROBLEM_INVALID_FIELD,
		                 "Invalid field",
		                 "role: a platform role cannot belong to a "
		                 "carrier");
		return false;
	}
	return true;
}

/* Updates role, status and access window, revoking sessions when role or
 * status takes rights away, and replies with the user. Runs inside the open
 * transaction. A new window needs no revocation: logins and refreshes
 * outside it are refused, and the brokers end sessions outside it. */
static fa_result update_user(struct fa_request *req, const struct user_row *row,
                             enum fa_role role, const char *status,
                             const struct access_window *window,
                             PGresult **res_out)
{
	const char *params[6] = {row->id,
	                         role != FA_ROLE_NONE ? fa_role_name(role)
	                                              : NULL,
	                         status,
	                         window->present ? "true" : "false",
	                         window_param(window->start),
	                         window_param(window->end)};
	cJSON *detail;
	fa_result result;
	long revoked = 0;

	result = fa_db_exec(req->db, res_out,
	                    "UPDATE users SET role = coalesce($2, role), "
	                    "status = coalesce($3, status), "
	                    "window_start = CASE WHEN $4::bool THEN $5::time "
	                    "ELSE window_start END, "
	                    "window_end = CASE WHEN $4::bool THEN $6::time "
	                    "ELSE window_end END, "
	                    "updated_at = now() WHERE id = $1 "
	                    "RETURNING " USER_COLUMNS,
	                    6, params);
	if (result != FA_OK)
		return result;
	if ((role != FA_ROLE_NONE && role != row->role) ||
	    (status != NULL && strcmp(status, "active") != 0)) {
		result = revoke_families(req->db, row->id, "user_changed",
		                         &revoked);
		if (result != FA_OK)
			return result;
	}
	detail = cJSON_CreateObject();
	if (role != FA_ROLE_NONE)
		cJSON_AddStringToObject(detail, "role", fa_role_name(role));
	if (status != NULL)
		cJSON_AddStringToObject(detail, "status", status);
	if (window->present && PQgetisnull(*res_out, 0, 6))
		cJSON_AddNullToObject(detail, "access_window");
	else if (window->present)
		cJSON_AddStringToObject(detail, "access_window",
		                        PQgetvalue(*res_out, 0, 6));
	cJSON_AddNumberToObject(detail, "revoked_families", (double)revoked);
	result = fa_audit(req, "user.update", row->id, "success", detail);
	cJSON_Delete(detail);
	return result;
}

void fa_users_update(struct fa_request *req)
{
	struct user_row row;
	enum fa_role role;
	const char *status;
	struct access_window window;
	PGresult *res = NULL;
	PGresult *updated = NULL;
	fa_result result;

	if (!parse_patch(req, &role, &status, &window))
		return;
	result = fa_db_begin(req->db);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	if (!load_user(req, true, &res, &row) ||
	    !may_change(req, "user.update", &row, role) ||
	    !role_fits_carrier(req, &row, role))
		goto out;
	result = update_user(req, &row, role, status, &window, &updated);
	if (result == FA_OK)
		result = fa_db_commit(req->db);
	if (result == FA_OK)
		fa_reply_json(req, 200, user_json(updated, 0));
	else
		fa_reply_db_error(req, result);
out:
	fa_db_rollback(req->db);
	PQclear(res);
	PQclear(updated);
}

static fa_result delete_user(struct fa_request *req, const struct user_row *row,
                             PGresult **res_out)
{
	const char *params[1] = {row->id};
	cJSON *detail;
	fa_result result;
	long revoked = 0;

	result = fa_db_exec(req->db, res_out,
	                    "UPDATE users SET status = 'deleted', "
	                    "updated_at = now() WHERE id = $1 "
	                    "RETURNING " USER_COLUMNS,
	                    1, params);
	if (result != FA_OK)
		return result;
	result = revoke_families(req->db, row->id, "user_deleted", &revoked);
	if (result != FA_OK)
		return result;
	detail = cJSON_CreateObject();
	cJSON_AddNumberToObject(detail, "revoked_families", (double)revoked);
	result = fa_audit(req, "user.delete", row->id, "success", detail);
	cJSON_Delete(detail);
	return result;
}

/* A deleted user keeps its row and personal data (username, role,
 * carrier), so that the audit trail and assignments still resolve.
 * POST /v1/users/{id}/erase (privacy.c) removes the personal data. */
void fa_users_delete(struct fa_request *req)
{
	struct user_row row;
	PGresult *res = NULL;
	PGresult *deleted = NULL;
	fa_result result;

	result = fa_db_begin(req->db);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	if (!load_user(req, true, &res, &row) ||
	    !may_change(req, "user.delete", &row, FA_ROLE_NONE))
		goto out;
	result = delete_user(req, &row, &deleted);
	if (result == FA_OK)
		result = fa_db_commit(req->db);
	if (result == FA_OK)
		fa_reply_json(req, 200, user_json(deleted, 0));
	else
		fa_reply_db_error(req, result);
out:
	fa_db_rollback(req->db);
	PQclear(res);
	PQclear(deleted);
}

/* POST /v1/users/{id}/revoke-sessions: the user themselves or a caller
 * who manages them. */
void fa_users_revoke_sessions(struct fa_request *req)
{
	struct user_row row;
	PGresult *res = NULL;
	cJSON *detail;
	cJSON *reply;
	fa_result result;
	long revoked = 0;
	bool self = req->caller.kind == FA_CALLER_USER &&
	            strcmp(req->caller.id, req->params[0]) == 0;
	static const char *const no_fields[] = {NULL};

	if (!fa_json_only_fields(req, no_fields) ||
	    !load_user(req, false, &res, &row))
		return;
	PQclear(res);
	if (!self && !caller_manages(&req->caller, row.role)) {
		deny(req, "user.revoke_sessions", row.id,
		     "your role cannot manage users with this role");
		return;
	}
	result = revoke_families(req->db, row.id, "sessions_revoked", &revoked);
	detail = cJSON_CreateObject();
	cJSON_AddNumberToObject(detail, "revoked_families", (double)revoked);
	fa_audit(req, "user.revoke_sessions", row.id,
	         result == FA_OK ? "success" : "failure", detail);
	cJSON_Delete(detail);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		return;
	}
	reply = cJSON_CreateObject();
	cJSON_AddStringToObject(reply, "user", row.id);
	cJSON_AddNumberToObject(reply, "revoked_families", (double)revoked);
	fa_reply_json(req, 200, reply);
}
