/*
 * Mosquitto 2.0 plugin entry points (plugin API version 5): option parsing,
 * callback registration, the tick that drives the change feed and expiry,
 * and disconnecting clients that lost their rights.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "audit.h"
#include "side.h"
#include "windows.h"
#include "fa_config.h"
#include "fa_plugin.h"

#define CONFIG_FIELD(name) offsetof(struct fa_plugin_config, name)

static const struct fa_option plugin_options[] = {
        {"db_conninfo", FA_OPT_STRING, NULL, 0, 0, CONFIG_FIELD(db),
         "libpq connection string of the fleetauth database"},
        {"issuer", FA_OPT_STRING, "fleetauth", 0, 0, CONFIG_FIELD(issuer),
         "required iss claim of access tokens"},
        {"audience", FA_OPT_STRING, "fleetauth-mqtt", 0, 0,
         CONFIG_FIELD(audience), "required aud claim of access tokens"},
        {"leeway", FA_OPT_INT, "30", 0, 300, CONFIG_FIELD(leeway),
         "clock skew allowed on exp, nbf and iat, in seconds"},
        {"max_token_lifetime", FA_OPT_INT, "3600", 60, 86400,
         CONFIG_FIELD(max_token_lifetime),
         "largest exp - iat accepted, in seconds"},
        {"stale_after", FA_OPT_INT, "300", 1, 86400, CONFIG_FIELD(stale_after),
         "seconds without a working database before new CONNECTs are denied"},
        {"start_fail_closed", FA_OPT_BOOL, "false", 0, 0,
         CONFIG_FIELD(start_fail_closed),
         "start without the database and deny CONNECTs until it is loaded"},
        {"reconnect_max_delay", FA_OPT_INT, "30", 1, 3600,
         CONFIG_FIELD(reconnect_max_delay),
         "longest wait between database reconnect attempts, in seconds"},
        {"failed_connect_limit", FA_OPT_INT, "20", 0, 1000000,
         CONFIG_FIELD(failed_connect_limit),
         "failed CONNECTs per address per window before the address is "
         "refused; 0 disables"},
        {"failed_connect_window", FA_OPT_INT, "60", 1, 86400,
         CONFIG_FIELD(failed_connect_window),
         "length of the failed-CONNECT window, in seconds"},
        {"token_cache_size", FA_OPT_INT, "65536", 0, 16777216,
         CONFIG_FIELD(token_cache_size),
         "verified tokens kept in memory, in entries; 0 disables"},
        {"denial_log_interval", FA_OPT_INT, "10", 1, 3600,
         CONFIG_FIELD(denial_log_interval),
         "seconds between merged denial log lines per reason"},
        {"poll_interval", FA_OPT_INT, "5", 1, 300, CONFIG_FIELD(poll_interval),
         "seconds between change_log polls when no notification arrives"},
        {"metrics_interval", FA_OPT_INT, "10", 0, 3600,
         CONFIG_FIELD(metrics_interval),
         "seconds between publishing the counters on $SYS/fleetauth/ and "
         "logging their summary; 0 disables both"},
        {"audit_interval", FA_OPT_INT, "1", 0, 3600,
         CONFIG_FIELD(audit_interval),
         "seconds between writing queued denials to the audit trail; 0 "
         "disables"},
        {"audit_queue_size", FA_OPT_INT, "1000", 1, 1000000,
         CONFIG_FIELD(audit_queue_size),
         "distinct denials queued for the audit trail; more are only "
         "counted"},
};

#define OPTION_COUNT (sizeof(plugin_options) / sizeof(plugin_options[0]))

int64_t fa_now_ms(void)
{
	return fa_side_now_ms();
}

void fa_plugin_refresh_clock(struct fa_plugin *plugin)
{
	plugin->now_s = (int64_t)time(NULL);
}

/*
 * Parses Mosquitto's plugin_opt_* lines into config. On error logs a line
 * naming the option and its valid range and returns MOSQ_ERR_INVAL.
 */
static int parse_options(struct fa_plugin_config *config,
                         struct mosquitto_opt *options, int option_count)
{
	char err[256];

	if (fa_config_defaults(plugin_options, OPTION_COUNT, config) != FA_OK) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "fleetauth: out of memory");
		return MOSQ_ERR_NOMEM;
	}
	for (int i = 0; i < option_count; i++) {
		if (fa_config_set(plugin_options, OPTION_COUNT, config,
		                  options[i].key, options[i].value, err,
		                  sizeof(err)) != FA_OK) {
			mosquitto_log_printf(MOSQ_LOG_ERR,
			                     "fleetauth: plugin_opt_%s: %s",
			                     options[i].key, err);
			return MOSQ_ERR_INVAL;
		}
	}
	if (fa_config_check_required(plugin_options, OPTION_COUNT, config, err,
	                             sizeof(err)) != FA_OK) {
		mosquitto_log_printf(MOSQ_LOG_ERR,
		                     "fleetauth: %s (set it with "
		                     "plugin_opt_db_conninfo)",
		                     err);
		return MOSQ_ERR_INVAL;
	}
	return MOSQ_ERR_SUCCESS;
}

/*
 * Installs a freshly loaded state, frees the old one and disconnects the
 * clients the new state no longer admits. The new state's generation
 * continues after the old one's, so that no ACL decision cached under the
 * old state matches.
 */
void fa_plugin_swap_state(struct fa_plugin *plugin, struct fa_state *state)
{
	struct fa_state *old = plugin->state;

	state->generation = (old != NULL ? old->generation : 0) + 1;
	plugin->state = state;
	fa_state_free(old);
	fa_token_cache_purge(plugin);
	fa_plugin_kick_revoked(plugin);
}

struct kick {
	struct mosquitto *client;
	char client_id[2 * FA_ID_MAX + 2];
	char id[FA_ID_MAX + 1];
	enum fa_deny_reason reason;
};

static void kick_one(struct fa_plugin *plugin, const struct kick *kick)
{
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
	                     "fleetauth: disconnecting client_id=%s "
	                     "identity=%s: %s",
	                     kick->client_id, kick->id,
	                     fa_deny_reason_str(kick->reason));
	mosquitto_kick_client_by_clientid(kick->client_id, false);
	/* In case the broker did not report the disconnect, forget the
	 * session so that every further ACL check for it is denied. */
	fa_session_remove(plugin, kick->client);
}

/*
 * Disconnects every connected client that lost its right to be connected.
 * The list is collected first because a kick can run the disconnect
 * callback, which removes sessions from the table being scanned.
 */
void fa_plugin_kick_revoked(struct fa_plugin *plugin)
{
	const struct fa_session_table *table = &plugin->sessions;
	struct kick *kicks = NULL;
	size_t count = 0;
	size_t capacity = 0;

	for (size_t i = 0; i < table->capacity; i++) {
		const struct fa_session *session = table->slots[i].session;

		if (session == NULL || session->closing)
			continue;

		enum fa_deny_reason reason = fa_session_check(plugin, session);

		if (reason == FA_DENY_COUNT)
			continue;
		if (count == capacity) {
			size_t grown = capacity ? 2 * capacity : 16;
			struct kick *more =
			        realloc(kicks, grown * sizeof(*kicks));

			if (more == NULL)
				break;
			kicks = more;
			capacity = grown;
		}
		kicks[count].client = session->client;
		kicks[count].reason = reason;
		memcpy(kicks[count].client_id, session->client_id,
		       sizeof(kicks[count].client_id));
		memcpy(kicks[count].id, session->id, sizeof(kicks[count].id));
		count++;
	}
	for (size_t i = 0; i < count; i++)
		kick_one(plugin, &kicks[i]);
	free(kicks);
}

/* Work done once per second: expiry of tokens and keys, and once per minute
 * the purge of revocations whose tokens have expired anyway. */
static void sweep(struct fa_plugin *plugin)
{
	plugin->last_sweep_s = plugin->now_s;
	if (plugin->state != NULL) {
		if (fa_state_expire_keys(plugin->state, plugin->now_s) > 0)
			fa_token_cache_purge(plugin);
		if (plugin->now_s - plugin->last_expire_s >= 60) {
			plugin->last_expire_s = plugin->now_s;
			fa_state_expire_revoked(plugin->state, plugin->now_s);
		}
		fa_plugin_kick_revoked(plugin);
	}
	if (plugin->now_s - plugin->last_throttle_purge_s >=
	    plugin->config.failed_connect_window) {
		plugin->last_throttle_purge_s = plugin->now_s;
		fa_throttle_purge(plugin);
	}
	fa_deny_flush(plugin, false);
	fa_metrics_tick(plugin);
	if (plugin->now_s - plugin->ticks_since_s >= 60) {
		mosquitto_log_printf(
		        MOSQ_LOG_DEBUG,
		        "fleetauth: %llu ticks in the last %lld s",
		        (unsigned long long)plugin->ticks,
		        (long long)(plugin->now_s - plugin->ticks_since_s));
		plugin->ticks = 0;
		plugin->ticks_since_s = plugin->now_s;
	}
}

static int on_tick(int event, void *event_data, void *userdata)
{
	struct fa_plugin *plugin = userdata;

	(void)event;
	(void)event_data;
	plugin->ticks++;
	fa_plugin_refresh_clock(plugin);
	fa_session_reap(plugin);
	fa_feed_tick(plugin);
	fa_audit_tick(plugin->audit, fa_now_ms());
	if (fa_windows_tick(plugin->windows, fa_now_ms()) &&
	    plugin->state != NULL) {
		/* Cached ACL decisions predate the change. */
		plugin->state->generation++;
		fa_plugin_kick_revoked(plugin);
	}
	if (plugin->now_s != plugin->last_sweep_s)
		sweep(plugin);
	return MOSQ_ERR_SUCCESS;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	struct fa_plugin *plugin = userdata;

	(void)event;
	fa_plugin_refresh_clock(plugin);
	return fa_auth_basic(plugin, ed->client, ed->username, ed->password);
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;

	(void)event;
	return fa_acl_check(userdata, ed->client, ed->topic, ed->access);
}

static int on_disconnect(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ed = event_data;

	(void)event;
	fa_session_close(userdata, ed->client);
	return MOSQ_ERR_SUCCESS;
}

/*
 * Applies changed options on a broker reload (SIGHUP). db,
 * start_fail_closed and token_cache_size take effect only on restart.
 */
static int on_reload(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_reload *ed = event_data;
	struct fa_plugin *plugin = userdata;
	struct fa_plugin_config fresh;

	(void)event;
	memset(&fresh, 0, sizeof(fresh));
	if (parse_options(&fresh, ed->options, ed->option_count) !=
	    MOSQ_ERR_SUCCESS) {
		mosquitto_log_printf(MOSQ_LOG_ERR,
		                     "fleetauth: reload ignored; keeping "
		                     "the previous options");
		fa_config_free(plugin_options, OPTION_COUNT, &fresh);
		return MOSQ_ERR_SUCCESS;
	}
	if (strcmp(fresh.db, plugin->config.db) != 0 ||
	    fresh.token_cache_size != plugin->config.token_cache_size ||
	    fresh.start_fail_closed != plugin->config.start_fail_closed)
		mosquitto_log_printf(MOSQ_LOG_WARNING,
		                     "fleetauth: db, token_cache_size and "
		                     "start_fail_closed changes need a "
		                     "broker restart");

	/* keep the restart-only options, take the rest */
	free(fresh.db);
	fresh.db = plugin->config.db;
	plugin->config.db = NULL;
	fresh.token_cache_size = plugin->config.token_cache_size;
	fresh.start_fail_closed = plugin->config.start_fail_closed;
	fa_config_free(plugin_options, OPTION_COUNT, &plugin->config);
	plugin->config = fresh;
	fa_token_cache_purge(plugin);
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleetauth: options reloaded");
	return MOSQ_ERR_SUCCESS;
}

static const struct {
	int event;
	MOSQ_FUNC_generic_callback callback;
} callbacks[] = {
        {MOSQ_EVT_BASIC_AUTH, on_basic_auth},
        {MOSQ_EVT_ACL_CHECK, on_acl_check},
        {MOSQ_EVT_TICK, on_tick},
        {MOSQ_EVT_DISCONNECT, on_disconnect},
        {MOSQ_EVT_RELOAD, on_reload},
};

#define CALLBACK_COUNT (sizeof(callbacks) / sizeof(callbacks[0]))

static void plugin_free(struct fa_plugin *plugin)
{
	if (plugin == NULL)
		return;
	fa_audit_free(plugin->audit, 2000);
	fa_windows_free(plugin->windows);
	fa_feed_close(plugin);
	fa_state_free(plugin->state);
	fa_session_table_free(&plugin->sessions);
	free(plugin->closing);
	fa_map_free_all(&plugin->throttle);
	fa_token_cache_free(plugin);
	fa_config_free(plugin_options, OPTION_COUNT, &plugin->config);
	free(plugin);
}

static struct fa_plugin *plugin_new(void)
{
	struct fa_plugin *plugin = calloc(1, sizeof(*plugin));

	if (plugin == NULL)
		return NULL;
	fa_map_init(&plugin->throttle,
	            offsetof(struct fa_throttle_rec, address));
	fa_feed_init(plugin);
	fa_plugin_refresh_clock(plugin);
	fa_metrics_init(plugin);
	plugin->last_sweep_s = plugin->now_s;
	plugin->last_throttle_purge_s = plugin->now_s;
	plugin->ticks_since_s = plugin->now_s;
	return plugin;
}

/* Loads the first snapshot, or with start_fail_closed schedules it for the
 * tick. Returns MOSQ_ERR_SUCCESS or an error that stops the broker. */
static int load_first_snapshot(struct fa_plugin *plugin)
{
	char err[512];
	int64_t started_ms = fa_now_ms();

	if (fa_load_snapshot_blocking(plugin, err, sizeof(err)) == FA_OK) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
		                     "fleetauth: snapshot loaded in %lld ms: "
		                     "%zu users, %zu devices, %zu "
		                     "certificates, %zu loads with drivers, "
		                     "%zu signing keys",
		                     (long long)(fa_now_ms() - started_ms),
		                     plugin->state->users.count,
		                     plugin->state->devices.count,
		                     plugin->state->certs.count,
		                     plugin->state->loads.count,
		                     plugin->state->key_count);
		return MOSQ_ERR_SUCCESS;
	}
	err[strcspn(err, "\r\n")] = '\0';
	if (!plugin->config.start_fail_closed) {
		mosquitto_log_printf(MOSQ_LOG_ERR,
		                     "fleetauth: %s; not starting (set "
		                     "plugin_opt_start_fail_closed true to "
		                     "start and deny every CONNECT until the "
		                     "database is reachable)",
		                     err);
		return MOSQ_ERR_UNKNOWN;
	}
	mosquitto_log_printf(MOSQ_LOG_WARNING,
	                     "fleetauth: %s; starting with every CONNECT "
	                     "denied until the snapshot loads",
	                     err);
	plugin->feed.loss_logged = true;
	plugin->feed.down_since_s = plugin->now_s;
	return MOSQ_ERR_SUCCESS;
}

static void side_log(const char *message)
{
	mosquitto_log_printf(MOSQ_LOG_WARNING, "fleetauth: %s", message);
}

/* Access-window lines are mostly changes of the set, which are expected. */
static void windows_log(const char *message)
{
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleetauth: %s", message);
}

/* Sets up the queue of denials for the audit trail, unless audit_interval
 * is 0. Rows name this broker by its host name. */
static int start_audit(struct fa_plugin *plugin)
{
	char host[256] = "";

	if (plugin->config.audit_interval == 0)
		return MOSQ_ERR_SUCCESS;
	if (gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "unknown");
	plugin->audit = fa_audit_new(
	        plugin->config.db, host, plugin->config.audit_interval * 1000,
	        (size_t)plugin->config.audit_queue_size, side_log);
	return plugin->audit != NULL ? MOSQ_ERR_SUCCESS : MOSQ_ERR_NOMEM;
}

int mosquitto_plugin_version(int supported_version_count,
                             const int *supported_versions)
{
	(void)supported_version_count;
	(void)supported_versions;
	return 5;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *options, int option_count)
{
	struct fa_plugin *plugin = plugin_new();
	int rc;

	*userdata = NULL;
	if (plugin == NULL)
		return MOSQ_ERR_NOMEM;
	plugin->identifier = identifier;
	rc = parse_options(&plugin->config, options, option_count);
	if (rc != MOSQ_ERR_SUCCESS)
		goto error;
	if (fa_token_cache_init(
	            plugin, (size_t)plugin->config.token_cache_size) != FA_OK) {
		rc = MOSQ_ERR_NOMEM;
		goto error;
	}
	rc = start_audit(plugin);
	if (rc != MOSQ_ERR_SUCCESS)
		goto error;
	plugin->windows = fa_windows_new(plugin->config.db, windows_log);
	if (plugin->windows == NULL) {
		rc = MOSQ_ERR_NOMEM;
		goto error;
	}
	rc = load_first_snapshot(plugin);
	if (rc != MOSQ_ERR_SUCCESS)
		goto error;
	for (size_t i = 0; i < CALLBACK_COUNT; i++) {
		rc = mosquitto_callback_register(identifier, callbacks[i].event,
		                                 callbacks[i].callback, NULL,
		                                 plugin);
		if (rc != MOSQ_ERR_SUCCESS) {
			mosquitto_log_printf(MOSQ_LOG_ERR,
			                     "fleetauth: registering callback "
			                     "for event %d failed: error %d",
			                     callbacks[i].event, rc);
			goto error;
		}
	}
	*userdata = plugin;
	return MOSQ_ERR_SUCCESS;
error:
	for (size_t i = 0; i < CALLBACK_COUNT; i++)
		mosquitto_callback_unregister(identifier, callbacks[i].event,
		                              callbacks[i].callback, NULL);
	plugin_free(plugin);
	return rc;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options,
                             int option_count)
{
	struct fa_plugin *plugin = userdata;

	(void)options;
	(void)option_count;
	if (plugin == NULL)
		return MOSQ_ERR_SUCCESS;
	for (size_t i = 0; i < CALLBACK_COUNT; i++)
		mosquitto_callback_unregister(plugin->identifier,
		                              callbacks[i].event,
		                              callbacks[i].callback, NULL);
	fa_deny_flush(plugin, true);
	plugin_free(plugin);
	return MOSQ_ERR_SUCCESS;
}
