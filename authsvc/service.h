/*
 * Internal interface of fleetauthd, shared by every module in authsvc/.
 *
 * A module adds HTTP routes by defining a NULL-terminated route table
 * (fa_core_routes, fa_auth_routes, fa_device_routes). http.c parses and
 * checks the request (size, content type, JSON body, path parameters),
 * authenticates the caller, checks the API-key scope and then calls the
 * handler on one of the worker threads. A handler replies with exactly one
 * fa_reply_* call. A handler that sends no reply produces a 500.
 *
 * Memory: every string in struct fa_request belongs to the HTTP layer and
 * lives until the handler returns. Handlers copy what they keep.
 */
#ifndef FA_SERVICE_H
#define FA_SERVICE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "fa_crypto.h"
#include "fa_ids.h"
#include "fa_log.h"
#include "fa_result.h"
#include "fa_roles.h"
#include "fa_token.h"

/* Version of the newest schema/NNN_*.sql file; set by CMake. */
#ifndef FLEETAUTH_SCHEMA_VERSION
#define FLEETAUTH_SCHEMA_VERSION 0
#endif

#define FA_KEK_PREVIOUS_MAX 8
#define FA_SCOPES_MAX 16
#define FA_SCOPE_MAX 64
#define FA_PARAMS_MAX 4
#define FA_REQUEST_ID_LEN 32

/* ------------------------------------------------------------------ */
/* Configuration and process-wide state                               */
/* ------------------------------------------------------------------ */

/* Values of fleetauthd.conf; see docs/configuration.md for each option. */
struct fa_service_config {
	char *listen_address;
	long long listen_port;
	char *database_url;
	char *schema_dir;
	char *kek_file;
	char *kek_id;
	char *kek_previous; /* "id:path,id:path" or NULL */
	char *issuer;
	char *audience;
	long long access_token_ttl;   /* seconds */
	long long refresh_token_days; /* days */
	long long bcrypt_cost;
	long long mfa_token_ttl;       /* seconds */
	long long enrollment_code_ttl; /* seconds */
	long long device_cert_days;
	long long login_max_failures;
	long long lockout_base; /* seconds, doubled per lockout */
	long long worker_threads;
	long long max_body_bytes;
	char *log_level;
	char *metrics_allow;   /* "any" or "addr,addr"; see metrics.h */
	char *trusted_proxies; /* "addr,cidr,..." or ""; see forwarded.h */
};

/*
 * Process-wide state, created once by main.c and shared read-only by the
 * worker threads, except for the fields guarded by the two mutexes.
 */
struct fa_service {
	struct fa_service_config config;
	const char *config_path;
	bool test_mode; /* FLEETAUTH_TEST_MODE=1 in the environment */

	/* Key-encryption keys. kek seals new secrets; kek_previous open
	 * secrets sealed before a rotation. kek.id is empty when no KEK was
	 * loaded (commands that need no KEK). */
	struct fa_kek kek;
	struct fa_kek kek_previous[FA_KEK_PREVIOUS_MAX];
	size_t kek_previous_count;

	/* Public keys that verify access tokens, loaded from signing_keys.
	 * Use through fa_service_verify_token; readers hold keyring_lock
	 * for reading, a reload swaps the ring under the write lock. */
	pthread_rwlock_t keyring_lock;
	struct fa_keyring *keyring;
	int64_t keyring_loaded_at; /* seconds since the epoch, 0: never */
	int64_t keyring_reload_at; /* last reload for an unknown kid */

	/* Module-owned caches (for example the auth module's decrypted
	 * signing key). A module creates its state under module_lock on
	 * first use and sets the matching free function, which main.c calls
	 * at shutdown. */
	pthread_mutex_t module_lock;
	void *auth_state;
	void (*auth_state_free)(void *state);
	void *device_state;
	void (*device_state_free)(void *state);
};

/*
 * Returns the KEK with id kek_id (current or previous), or NULL when no
 * loaded key has that id. The key stays owned by svc.
 */
const struct fa_kek *fa_service_kek(const struct fa_service *svc,
                                    const char *kek_id);

/*
 * Makes the next token check reload the keyring from signing_keys. Call it
 * after changing a signing key's status in this process.
 */
void fa_service_keyring_invalidate(struct fa_service *svc);

/*
 * Verifies an access token against the keyring with the configured issuer
 * and audience. A keyring older than 60 seconds is reloaded from db first,
 * and an unknown kid triggers a reload at most once every 5 seconds. Fills
 * claims on FA_TOKEN_OK. Revocation is checked by fa_caller_authenticate, not
 * here.
 */
enum fa_token_status fa_service_verify_token(struct fa_service *svc, PGconn *db,
                                             const char *token,
                                             struct fa_token_claims *claims);

/* Seconds since the epoch. */
int64_t fa_now(void);

/* ------------------------------------------------------------------ */
/* Callers and requests                                               */
/* ------------------------------------------------------------------ */

enum fa_caller_kind {
	FA_CALLER_NONE = 0, /* public route, not authenticated */
	FA_CALLER_USER,     /* access token */
	FA_CALLER_API_KEY   /* fak_ API key */
};

/* Identity of the requester, set by the authentication step before the
 * handler runs. */
struct fa_caller {
	enum fa_caller_kind kind;
	char id[FA_ID_MAX + 1]; /* user id or API key id */
	enum fa_role role;
	char carrier[FA_ID_MAX + 1]; /* "" for platform roles */
	/* Users only: claims of the access token. */
	unsigned amr;            /* bit set of enum fa_amr */
	char fam[FA_ID_MAX + 1]; /* refresh family, "" when absent */
	char jti[FA_ID_MAX + 1];
	char did[FA_ID_MAX + 1]; /* bound device id, "" when absent */
	int64_t token_exp;
	/* API keys only: the key's scopes, "*" allows every scope. */
	char scopes[FA_SCOPES_MAX][FA_SCOPE_MAX + 1];
	size_t scope_count;
};

struct fa_header;

struct fa_request {
	struct fa_service *svc;
	/* This worker thread's connection; NULL only on FA_ROUTE_NO_DB
	 * routes. Reconnected by http.c when it was lost. */
	PGconn *db;
	const char *method;
	const char *path;
	const struct fa_route *route;
	/* Values of the {name} segments of the route pattern, in order.
	 * Each one satisfies fa_id_valid (others never reach a handler). */
	const char *params[FA_PARAMS_MAX];
	/* Parsed JSON object for FA_ROUTE_BODY routes (never NULL there),
	 * and for FA_ROUTE_BODY_OPTIONAL routes when a body was sent. */
	const cJSON *body;
	/* Numeric IP of the client, never NULL: the TCP peer, or the
	 * X-Forwarded-For entry when the peer is in trusted_proxies. Used
	 * by the login and enrollment throttles, audit records and logs. */
	const char *client_address;
	/* Numeric IP of the TCP peer, never NULL; metrics_allow checks it. */
	const char *peer_address;
	char request_id[FA_REQUEST_ID_LEN + 1];
	struct fa_caller caller;

	/* Response, private to http.c: handlers use fa_reply_*. */
	void *connection;
	int status;
	char *response_body;
	size_t response_len;
	const char *content_type;
	struct fa_header *headers;
};

typedef void (*fa_handler)(struct fa_request *req);

enum fa_route_flags {
	FA_ROUTE_PUBLIC = 1,        /* no authentication */
	FA_ROUTE_BODY = 2,          /* a JSON object body is required */
	FA_ROUTE_BODY_OPTIONAL = 4, /* a JSON object body may be sent */
	FA_ROUTE_NO_DB = 8          /* the handler needs no database */
};

/*
 * One route. pattern is a path such as "/v1/users/{id}/revoke-sessions";
 * each {name} segment matches one path segment and is handed to the handler
 * in req->params. A request body is rejected with 400 unless one of the
 * body flags is set. scope is the API-key scope the route needs, for
 * example "devices:write". An API key may call a route with a NULL scope
 * only when it has the "*" scope.
 */
struct fa_route {
	const char *method;
	const char *pattern;
	fa_handler handler;
	unsigned flags;
	const char *scope;
};

/* Route tables, each ended by an entry with a NULL method. */
extern const struct fa_route fa_core_routes[];
extern const struct fa_route fa_auth_routes[];
extern const struct fa_route fa_device_routes[];

/* Commands of other modules, run by "fleetauthd signing-key ..." and
 * "fleetauthd ca ...". argv[0] is the command name. Return the process
 * exit status. */
int fa_cmd_signing_key(struct fa_service *svc, int argc, char **argv);
int fa_cmd_ca(struct fa_service *svc, int argc, char **argv);

/* Value of a query parameter (URL-decoded), or NULL when absent. */
const char *fa_request_query(struct fa_request *req, const char *key);

/* Value of a request header (case-insensitive name), or NULL. */
const char *fa_request_header(struct fa_request *req, const char *name);

/*
 * Writes one log line with the request id, route and caller id added.
 * Never pass secrets, tokens or request bodies.
 */
void fa_request_log(struct fa_request *req, enum fa_log_level level,
                    const char *format, ...)
        __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------ */
/* Replies                                                             */
/* ------------------------------------------------------------------ */

/* Problem types: https://fleetauth.dev/problems/<slug>. */
#define FA_PROBLEM_BASE "https://fleetauth.dev/problems/"
#define FA_PROBLEM_BAD_REQUEST FA_PROBLEM_BASE "bad-request"
#define FA_PROBLEM_INVALID_JSON FA_PROBLEM_BASE "invalid-json"
#define FA_PROBLEM_INVALID_FIELD FA_PROBLEM_BASE "invalid-field"
#define FA_PROBLEM_MISSING_FIELD FA_PROBLEM_BASE "missing-field"
#define FA_PROBLEM_UNKNOWN_FIELD FA_PROBLEM_BASE "unknown-field"
#define FA_PROBLEM_INVALID_PARAMETER FA_PROBLEM_BASE "invalid-parameter"
#define FA_PROBLEM_UNAUTHENTICATED FA_PROBLEM_BASE "unauthenticated"
#define FA_PROBLEM_FORBIDDEN FA_PROBLEM_BASE "forbidden"
#define FA_PROBLEM_NOT_FOUND FA_PROBLEM_BASE "not-found"
#define FA_PROBLEM_METHOD_NOT_ALLOWED FA_PROBLEM_BASE "method-not-allowed"
#define FA_PROBLEM_CONFLICT FA_PROBLEM_BASE "conflict"
#define FA_PROBLEM_TOO_LARGE FA_PROBLEM_BASE "too-large"
#define FA_PROBLEM_UNSUPPORTED_MEDIA_TYPE                                      \
	FA_PROBLEM_BASE "unsupported-media-type"
#define FA_PROBLEM_THROTTLED FA_PROBLEM_BASE "throttled"
#define FA_PROBLEM_UNAVAILABLE FA_PROBLEM_BASE "unavailable"
#define FA_PROBLEM_INTERNAL FA_PROBLEM_BASE "internal"

/* Replies status with body as application/json. Takes ownership of body
 * (frees it); a NULL body replies 500. */
void fa_reply_json(struct fa_request *req, int status, cJSON *body);

/*
 * Replies an application/problem+json {type, title, status, detail}. type is
 * one of the FA_PROBLEM_* values. detail is shown to the client: name the
 * field or value, never SQL text or internal state. detail may be NULL.
 */
void fa_reply_problem(struct fa_request *req, int status, const char *type,
                      const char *title, const char *detail);

/* Replies with the standard problem for status (400, 401, 403, 404, 409,
 * 413, 415, 429, 500, 503) and detail. */
void fa_reply_status(struct fa_request *req, int status, const char *detail);

/* Replies len bytes of data (copied) with content_type, for example a CRL
 * as application/pkix-crl. */
void fa_reply_bytes(struct fa_request *req, int status,
                    const char *content_type, const void *data, size_t len);

/* Adds a response header (both strings copied), for example Retry-After
 * before a 429. Call before or after the fa_reply_* call. */
void fa_reply_header(struct fa_request *req, const char *name,
                     const char *value);

/*
 * Replies the problem for a failed fa_db_* call: FA_ERR_IO 503,
 * FA_ERR_DENIED (unique violation) 409, FA_ERR_INVALID 400, FA_ERR_NOT_FOUND
 * 404, anything else 500.
 */
void fa_reply_db_error(struct fa_request *req, fa_result result);

/* ------------------------------------------------------------------ */
/* Validation of JSON bodies and query parameters                     */
/* ------------------------------------------------------------------ */

/* String checks for fa_json_string; combine with |. */
enum fa_string_flags {
	FA_STR_ID = 1,       /* fa_id_valid */
	FA_STR_NONEMPTY = 2, /* at least one character */
	FA_STR_TEXT = 4      /* no control characters (U+0000 to U+001F,
	                      * U+007F) and no bidirectional formatting
	                      * characters (U+200E, U+200F, U+202A to
	                      * U+202E, U+2066 to U+2069) */
};

/*
 * Each helper below checks one field of req->body. On failure it replies
 * 400 with a problem naming the field and returns false; the handler then
 * returns without another reply. An optional field that is absent leaves
 * *out unchanged (set the default first) and returns true; JSON null counts
 * as absent only for optional fields.
 */

/* Rejects any member of req->body whose name is not in allowed (a
 * NULL-terminated list). */
bool fa_json_only_fields(struct fa_request *req, const char *const *allowed);

/* A string of at most max_len bytes. http.c has already rejected bodies
 * that are not UTF-8 or contain NUL characters. *out points into
 * req->body. */
bool fa_json_string(struct fa_request *req, const char *field, bool required,
                    size_t max_len, unsigned flags, const char **out);

/* An integer (a JSON number without fraction) within [min, max]. */
bool fa_json_int(struct fa_request *req, const char *field, bool required,
                 long long min, long long max, long long *out);

bool fa_json_bool(struct fa_request *req, const char *field, bool required,
                  bool *out);

/* An array of 0 to max_items strings, each checked like fa_json_string.
 * *out points into req->body. */
bool fa_json_string_array(struct fa_request *req, const char *field,
                          bool required, size_t max_items, size_t max_len,
                          unsigned flags, const cJSON **out);

/* A role name; FA_ROLE_NONE is never accepted. */
bool fa_json_role(struct fa_request *req, const char *field, bool required,
                  enum fa_role *out);

/* Query parameter that must satisfy fa_id_valid when present. *out is NULL
 * when absent. */
bool fa_query_id(struct fa_request *req, const char *key, const char **out);

/* Decimal query parameter within [min, max]; *out unchanged when absent. */
bool fa_query_int(struct fa_request *req, const char *key, long long min,
                  long long max, long long *out);

/* ------------------------------------------------------------------ */
/* Authorization                                                       */
/* ------------------------------------------------------------------ */

/*
 * True when the caller's role covers role (fa_role_covers). Otherwise
 * replies 403, audits the denial and returns false.
 */
bool fa_require_role(struct fa_request *req, enum fa_role role);

/*
 * True when the caller may act on objects of carrier: the caller belongs to
 * that carrier or has a platform role (system_admin, system_operator).
 * Otherwise replies 404 (so that other carriers' objects stay invisible),
 * audits the denial and returns false.
 */
bool fa_require_carrier(struct fa_request *req, const char *carrier);

/* True for system_admin and system_operator. */
bool fa_caller_is_platform(const struct fa_caller *caller);

/* True when an API-key caller has scope or "*"; always true for users. */
bool fa_caller_has_scope(const struct fa_caller *caller, const char *scope);

/*
 * Authenticates the Authorization header. An access token needs a valid
 * signature and claims, an active user with the same role and carrier, and
 * no revocation of its jti, family or bound device. An API key is looked up
 * by hash, must be neither expired nor revoked, and gets last_used_at
 * updated (at most once a minute). Fills req->caller and returns FA_OK, or
 * replies 401 (or 503 when the database is down), audits and returns an error.
 */
fa_result fa_caller_authenticate(struct fa_request *req);

/* ------------------------------------------------------------------ */
/* Audit                                                               */
/* ------------------------------------------------------------------ */

/*
 * Appends one row to audit_events (actor = caller id or "anonymous", the
 * client address and request id) and logs it as one JSON line. outcome is
 * "success", "denied" or "failure". detail may be NULL and must hold no
 * secret. Runs on req->db, so inside a transaction it commits or rolls back
 * with it.
 */
fa_result fa_audit(struct fa_request *req, const char *action,
                   const char *target, const char *outcome,
                   const cJSON *detail);

/* Same for commands run outside a request (bootstrap, key import). address
 * and request_id may be NULL. */
fa_result fa_audit_record(PGconn *db, const char *actor, const char *action,
                          const char *target, const char *outcome,
                          const char *address, const char *request_id,
                          const cJSON *detail);

/* ------------------------------------------------------------------ */
/* Database                                                            */
/* ------------------------------------------------------------------ */

/*
 * All helpers run parameterized statements (PQexecParams, text format).
 * Results: FA_OK; FA_ERR_IO when the connection is lost or the server is
 * unavailable; FA_ERR_DENIED for a unique violation (SQLSTATE 23505);
 * FA_ERR_INVALID for other integrity or data errors (classes 22 and 23);
 * FA_ERR_NOT_FOUND from fa_db_exec_one when no row matched; FA_ERR_IO for
 * any other server error. Errors are logged without parameter values.
 */

/* Opens a connection to database_url for commands (migrate, bootstrap,
 * module commands). The caller owns *conn_out and closes it with PQfinish. */
fa_result fa_db_connect(const struct fa_service *svc, PGconn **conn_out);

/*
 * Runs sql with nparams text parameters (NULL entries are SQL NULL). On
 * FA_OK *res_out contains the result (PGRES_COMMAND_OK or PGRES_TUPLES_OK),
 * owned by the caller (PQclear); on error *res_out is NULL.
 */
fa_result fa_db_exec(PGconn *db, PGresult **res_out, const char *sql,
                     int nparams, const char *const *params);

/* Same, but FA_ERR_NOT_FOUND unless the statement returned or changed at
 * least one row. */
fa_result fa_db_exec_one(PGconn *db, PGresult **res_out, const char *sql,
                         int nparams, const char *const *params);

/* Runs a statement and discards its result. */
fa_result fa_db_command(PGconn *db, const char *sql, int nparams,
                        const char *const *params);

fa_result fa_db_begin(PGconn *db);
fa_result fa_db_commit(PGconn *db);
/* Rolls back, ignoring errors; safe to call when no transaction is open. */
void fa_db_rollback(PGconn *db);

/* Value of a result cell, NULL for SQL NULL. */
const char *fa_db_value(const PGresult *res, int row, int column);

#endif
