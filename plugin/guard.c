/*
 * Denial logging and CONNECT throttling. Denials are logged with client
 * id, username, address, topic and reason. Within denial_log_interval
 * seconds only the first denial per reason is logged at once. The rest
 * are counted and reported in one merged line.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "audit.h"
#include "fa_plugin.h"

/* Past this many tracked addresses, expired entries are purged and, if
 * that is not enough, the table is cleared. */
#define FA_THROTTLE_MAX_ADDRESSES 100000

static const char *const reason_text[FA_DENY_COUNT] = {
        [FA_DENY_THROTTLED] = "too many failed CONNECTs from this address",
        [FA_DENY_NOT_READY] = "no snapshot loaded yet",
        [FA_DENY_DB_STALE] = "database unavailable for longer than stale_after",
        [FA_DENY_BAD_USERNAME] = "invalid username",
        [FA_DENY_BAD_CLIENT_ID] = "client id does not belong to the identity",
        [FA_DENY_NO_CREDENTIALS] = "no token and no client certificate",
        [FA_DENY_TOKEN] = "token rejected",
        [FA_DENY_USER_INACTIVE] = "user missing or not active",
        [FA_DENY_ROLE_CHANGED] = "role or carrier changed since login",
        [FA_DENY_FAMILY_REVOKED] = "refresh-token family revoked",
        [FA_DENY_TOKEN_REVOKED] = "access token revoked",
        [FA_DENY_DEVICE_REVOKED] = "device missing or not active",
        [FA_DENY_CERT_UNKNOWN] = "certificate unknown or not active",
        [FA_DENY_CERT_EXPIRED] = "certificate expired",
        [FA_DENY_CERT_MISMATCH] = "certificate belongs to another device",
        [FA_DENY_NO_SESSION] = "client not authenticated by fleetauth",
        [FA_DENY_SESSION_EXPIRED] = "token expired",
        [FA_DENY_TOPIC] = "topic not allowed",
        [FA_DENY_OUTSIDE_WINDOW] = "outside the user's access window",
};

/* Short name of each reason: the topic level under $SYS/fleetauth/denials/
 * and detail.reason of audit rows. */
static const char *const reason_code[FA_DENY_COUNT] = {
        [FA_DENY_THROTTLED] = "throttled",
        [FA_DENY_NOT_READY] = "not_ready",
        [FA_DENY_DB_STALE] = "db_stale",
        [FA_DENY_BAD_USERNAME] = "bad_username",
        [FA_DENY_BAD_CLIENT_ID] = "bad_client_id",
        [FA_DENY_NO_CREDENTIALS] = "no_credentials",
        [FA_DENY_TOKEN] = "token_rejected",
        [FA_DENY_USER_INACTIVE] = "user_inactive",
        [FA_DENY_ROLE_CHANGED] = "role_changed",
        [FA_DENY_FAMILY_REVOKED] = "family_revoked",
        [FA_DENY_TOKEN_REVOKED] = "token_revoked",
        [FA_DENY_DEVICE_REVOKED] = "device_revoked",
        [FA_DENY_CERT_UNKNOWN] = "cert_unknown",
        [FA_DENY_CERT_EXPIRED] = "cert_expired",
        [FA_DENY_CERT_MISMATCH] = "cert_mismatch",
        [FA_DENY_NO_SESSION] = "no_session",
        [FA_DENY_SESSION_EXPIRED] = "session_expired",
        [FA_DENY_TOPIC] = "topic_denied",
        [FA_DENY_OUTSIDE_WINDOW] = "outside_window",
};

const char *fa_deny_reason_code(enum fa_deny_reason reason)
{
	if (reason >= FA_DENY_COUNT)
		return "allowed";
	return reason_code[reason];
}

/* Queues a denial for the audit trail; what ("CONNECT", "PUBLISH",
 * "SUBSCRIBE", "delivery") becomes the lower-case action. */
static void audit_denial(struct fa_plugin *plugin, enum fa_deny_reason reason,
                         const char *what, struct mosquitto *client,
                         const char *username, const char *topic)
{
	char action[16];
	size_t n = 0;

	if (plugin->audit == NULL)
		return;
	for (; what[n] != '\0' && n + 1 < sizeof(action); n++)
		action[n] = (char)tolower((unsigned char)what[n]);
	action[n] = '\0';
	fa_audit_denial(plugin->audit, plugin->now_s, action,
	                fa_deny_reason_code(reason), username, topic,
	                mosquitto_client_address(client),
	                mosquitto_client_id(client));
}

const char *fa_deny_reason_str(enum fa_deny_reason reason)
{
	if (reason >= FA_DENY_COUNT)
		return "allowed";
	return reason_text[reason];
}

/*
 * Copies at most 128 bytes of an untrusted string for a log line, with
 * control and non-ASCII bytes replaced by '?', so a client cannot forge log
 * lines. NULL becomes "-".
 */
void fa_log_safe_copy(char *out, size_t out_size, const char *in)
{
	size_t i = 0;

	if (in == NULL)
		in = "-";
	for (; in[i] != '\0' && i + 1 < out_size && i < 128; i++) {
		unsigned char c = (unsigned char)in[i];

		out[i] = (char)((c < 0x20 || c > 0x7e) ? '?' : c);
	}
	out[i] = '\0';
}

static void emit_summary(struct fa_plugin *plugin, enum fa_deny_reason reason)
{
	struct fa_deny_slot *slot = &plugin->deny[reason];

	mosquitto_log_printf(MOSQ_LOG_NOTICE,
	                     "fleetauth: %llu more denials (%s) in the last "
	                     "%lld s; last: %s",
	                     (unsigned long long)slot->suppressed,
	                     fa_deny_reason_str(reason),
	                     (long long)(plugin->now_s - slot->window_start),
	                     slot->last);
	slot->suppressed = 0;
}

/*
 * Logs one denial. what names the request ("CONNECT", "PUBLISH",
 * "SUBSCRIBE", "delivery"); topic and detail may be NULL.
 */
void fa_deny_log(struct fa_plugin *plugin, enum fa_deny_reason reason,
                 const char *what, struct mosquitto *client,
                 const char *username, const char *topic, const char *detail)
{
	struct fa_deny_slot *slot = &plugin->deny[reason];
	char client_id[130];
	char user[130];
	char address[130];
	char topic_safe[130];

	audit_denial(plugin, reason, what, client, username, topic);
	fa_log_safe_copy(client_id, sizeof(client_id),
	                 mosquitto_client_id(client));
	fa_log_safe_copy(user, sizeof(user), username);
	fa_log_safe_copy(address, sizeof(address),
	                 mosquitto_client_address(client));
	fa_log_safe_copy(topic_safe, sizeof(topic_safe), topic);
	snprintf(slot->last, sizeof(slot->last),
	         "%s denied: %s%s%s; client_id=%s username=%s address=%s "
	         "topic=%s",
	         what, fa_deny_reason_str(reason),
	         detail && detail[0] ? ": " : "", detail ? detail : "",
	         client_id, user, address, topic_safe);
	if (plugin->now_s - slot->window_start <
	    plugin->config.denial_log_interval) {
		slot->suppressed++;
		return;
	}
	if (slot->suppressed > 0)
		emit_summary(plugin, reason);
	slot->window_start = plugin->now_s;
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleetauth: %s", slot->last);
}

/* Writes the merged line of every reason whose interval has ended, or of
 * every reason with suppressed denials when force is set. */
void fa_deny_flush(struct fa_plugin *plugin, bool force)
{
	for (int reason = 0; reason < FA_DENY_COUNT; reason++) {
		struct fa_deny_slot *slot = &plugin->deny[reason];

		if (slot->suppressed == 0)
			continue;
		if (!force && plugin->now_s - slot->window_start <
		                      plugin->config.denial_log_interval)
			continue;
		emit_summary(plugin, (enum fa_deny_reason)reason);
		slot->window_start = plugin->now_s;
	}
}

static bool window_open(const struct fa_plugin *plugin,
                        const struct fa_throttle_rec *rec)
{
	return plugin->now_s - rec->window_start <
	       plugin->config.failed_connect_window;
}

/* True when address reached failed_connect_limit within the window. */
bool fa_throttle_blocked(struct fa_plugin *plugin, const char *address)
{
	if (plugin->config.failed_connect_limit == 0 || address == NULL)
		return false;

	const struct fa_throttle_rec *rec =
	        fa_map_get(&plugin->throttle, address, strlen(address));

	return rec != NULL && window_open(plugin, rec) &&
	       rec->failures >= plugin->config.failed_connect_limit;
}

size_t fa_throttle_blocked_count(const struct fa_plugin *plugin)
{
	const struct fa_map *map = &plugin->throttle;
	size_t count = 0;

	if (plugin->config.failed_connect_limit == 0)
		return 0;
	for (size_t i = 0; i < map->capacity; i++) {
		const struct fa_throttle_rec *rec = map->slots[i].record;

		if (map->slots[i].hash >= 2 && window_open(plugin, rec) &&
		    rec->failures >= plugin->config.failed_connect_limit)
			count++;
	}
	return count;
}

void fa_throttle_purge(struct fa_plugin *plugin)
{
	struct fa_map *map = &plugin->throttle;

	for (size_t i = 0; i < map->capacity; i++) {
		struct fa_throttle_rec *rec = map->slots[i].record;

		if (map->slots[i].hash < 2 || window_open(plugin, rec))
			continue;
		fa_map_remove(map, rec->address, strlen(rec->address));
		free(rec);
	}
}

static struct fa_throttle_rec *throttle_record(struct fa_plugin *plugin,
                                               const char *address)
{
	struct fa_map *map = &plugin->throttle;
	size_t len = strlen(address);
	struct fa_throttle_rec *rec = fa_map_get(map, address, len);
	void *replaced = NULL;

	if (rec != NULL)
		return rec;
	if (map->count >= FA_THROTTLE_MAX_ADDRESSES) {
		fa_throttle_purge(plugin);
		if (map->count >= FA_THROTTLE_MAX_ADDRESSES) {
			mosquitto_log_printf(MOSQ_LOG_WARNING,
			                     "fleetauth: failed CONNECTs from "
			                     "more than %d addresses; "
			                     "clearing the throttle table",
			                     FA_THROTTLE_MAX_ADDRESSES);
			fa_map_free_all(map);
		}
	}
	rec = calloc(1, sizeof(*rec) + len + 1);
	if (rec == NULL)
		return NULL;
	memcpy(rec->address, address, len + 1);
	rec->window_start = plugin->now_s;
	if (fa_map_put(map, rec, &replaced) != FA_OK) {
		free(rec);
		return NULL;
	}
	return rec;
}

/* Counts one failed CONNECT from address. */
void fa_throttle_fail(struct fa_plugin *plugin, const char *address)
{
	if (plugin->config.failed_connect_limit == 0 || address == NULL)
		return;

	struct fa_throttle_rec *rec = throttle_record(plugin, address);

	if (rec == NULL)
		return;
	if (!window_open(plugin, rec)) {
		rec->window_start = plugin->now_s;
		rec->failures = 0;
	}
	rec->failures++;
	if (rec->failures == plugin->config.failed_connect_limit) {
		char safe[130];

		plugin->metrics.throttle_limit_reached++;
		fa_log_safe_copy(safe, sizeof(safe), address);
		mosquitto_log_printf(
		        MOSQ_LOG_WARNING,
		        "fleetauth: address %s reached %u failed "
		        "CONNECTs; refusing it for the rest of "
		        "the %lld s window",
		        safe, rec->failures,
		        (long long)plugin->config.failed_connect_window);
	}
}
