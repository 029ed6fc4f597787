/*
 * Declarations shared by the core files of fleetauthd (main, config, HTTP
 * server, database, migrations, bootstrap). Modules use service.h only.
 */
#ifndef FA_CORE_H
#define FA_CORE_H

#include <stdbool.h>
#include <stddef.h>

#include "service.h"

#define FA_DEFAULT_CONFIG_PATH "/etc/fleetauth/fleetauthd.conf"

#ifndef FLEETAUTH_SCHEMA_DIR
#define FLEETAUTH_SCHEMA_DIR "/usr/share/fleetauth/schema"
#endif

#ifndef FLEETAUTH_VERSION
#define FLEETAUTH_VERSION "0.0.0"
#endif

/* config.c */

/*
 * Fills svc->config from defaults, then path (skipped when path is NULL and
 * the default file does not exist), then FLEETAUTHD_* environment
 * variables, and checks required options. With need_kek, also loads
 * kek_file and kek_previous. On error writes a message naming the option
 * or file into err.
 */
fa_result fa_service_init(struct fa_service *svc, const char *path,
                          bool need_kek, char *err, size_t err_size);

/* Frees the configuration and module state and wipes the KEKs. */
void fa_service_cleanup(struct fa_service *svc);

/* Prints every option with its default and help text to stdout. */
void fa_config_print_help(void);

/* http.c */

/* Serves HTTP until SIGINT or SIGTERM. Returns the process exit status. */
int fa_http_serve(struct fa_service *svc);

/* db.c */

/*
 * Returns the calling worker thread's connection, opening it or resetting
 * it when it was lost, or NULL when the database is unreachable. The
 * connection is closed when the thread exits.
 */
PGconn *fa_db_worker(struct fa_service *svc);

/* migrate.c */

/* Applies every pending migration; returns the process exit status. */
int fa_cmd_migrate(struct fa_service *svc);

/*
 * Reads the highest applied migration into *version (0 when the
 * schema_migrations table does not exist).
 */
fa_result fa_schema_version(PGconn *db, long long *version);

/* bootstrap.c */

int fa_cmd_bootstrap(struct fa_service *svc, int argc, char **argv);

/* audit.c */

/*
 * Start of a query over audit_events e that shows the pseudonym of an
 * erased principal (table erased_principals, joined as ea for the actor and
 * et for the target) in place of its id. The columns are those that
 * fa_audit_event_json reads. Append WHERE and ORDER BY clauses.
 */
#define FA_AUDIT_EVENT_SELECT                                                  \
	"SELECT e.id, to_char(e.at AT TIME ZONE 'UTC', "                       \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "                               \
	"COALESCE(ea.pseudonym, e.actor), e.action, "                          \
	"COALESCE(et.pseudonym, e.target), e.outcome, e.address, "             \
	"e.request_id, e.detail::text FROM audit_events e "                    \
	"LEFT JOIN erased_principals ea ON ea.id = e.actor "                   \
	"LEFT JOIN erased_principals et ON et.id = e.target"

/* Converts one row of an FA_AUDIT_EVENT_SELECT result into a new JSON
 * object owned by the caller. */
cJSON *fa_audit_event_json(const PGresult *res, int row);

/* kek.c */

/* Runs "fleetauthd kek status|rewrap"; returns the process exit status. */
int fa_cmd_kek(struct fa_service *svc, int argc, char **argv);

/* routes.c */

/*
 * Finds the route for method and path. On a match fills params (pointers
 * into path_copy, which routes.c modifies) and returns the route. Returns
 * NULL when nothing matched; *path_known is then true when some route has
 * this path with another method (405). A {param} segment that is not a
 * valid identifier never matches, so such paths end in 404.
 */
const struct fa_route *fa_route_find(const char *method, char *path_copy,
                                     const char *params[FA_PARAMS_MAX],
                                     bool *path_known);

/* Handlers of the core routes (carriers.c, users.c, loads.c, audit.c,
 * health.c). */
void fa_carriers_create(struct fa_request *req);
void fa_carriers_list(struct fa_request *req);
void fa_carriers_get(struct fa_request *req);
void fa_users_create(struct fa_request *req);
void fa_users_list(struct fa_request *req);
void fa_users_get(struct fa_request *req);
void fa_users_update(struct fa_request *req);
void fa_users_delete(struct fa_request *req);
void fa_users_revoke_sessions(struct fa_request *req);
void fa_users_export(struct fa_request *req);
void fa_users_erase(struct fa_request *req);
void fa_loads_create(struct fa_request *req);
void fa_loads_list(struct fa_request *req);
void fa_loads_assign(struct fa_request *req);
void fa_loads_unassign(struct fa_request *req);
void fa_audit_list(struct fa_request *req);
void fa_health_live(struct fa_request *req);
void fa_health_ready(struct fa_request *req);

/* Writes the methods of every route whose pattern matches path, separated
 * by ", ", into out (for the Allow header of a 405). */
void fa_route_allowed_methods(const char *path, char *out, size_t out_size);

/* auth.c */

/* Frees the keyring; called at shutdown. */
void fa_keyring_cleanup(struct fa_service *svc);

#endif
