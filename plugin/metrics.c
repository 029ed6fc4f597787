/*
 * Counters of the plugin's decisions and of the change feed, published
 * every metrics_interval seconds from the tick as retained messages under
 * $SYS/fleetauth/ and summarised in one log line. The topic rules in
 * lib/fa_topic.c let only system_admin and system_operator read $SYS, and
 * the broker checks that rule on every delivery of these messages.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "fa_plugin.h"

#define FA_METRICS_PREFIX "$SYS/fleetauth/"

static const char *const request_level[FA_REQUEST_COUNT] = {
        [FA_REQUEST_CONNECT] = "connect",
        [FA_REQUEST_PUBLISH] = "publish",
        [FA_REQUEST_SUBSCRIBE] = "subscribe",
        [FA_REQUEST_DELIVERY] = "delivery",
};

/* Values computed once per publication from the counters and the state. */
struct snapshot_values {
	uint64_t accepted;
	uint64_t denied_by_request[FA_REQUEST_COUNT];
	uint64_t sessions_token;
	uint64_t sessions_device;
	uint64_t throttled_addresses;
	int64_t last_change_id;
	const char *db_state;
};

/* Outcome of one publication round, for a single error line. */
struct publish_round {
	unsigned failed;
	int last_error;
};

void fa_metrics_init(struct fa_plugin *plugin)
{
	memset(&plugin->metrics, 0, sizeof(plugin->metrics));
	plugin->metrics.lag_last_ms = -1;
	plugin->metrics.lag_max_ms = -1;
	plugin->metrics.last_publish_s = plugin->now_s;
}

/*
 * Records the lag of the change batch that the feed has just applied. The
 * lag of a row is its age when the fetch ran (change_log.at against the
 * database's clock) plus the time from sending the fetch to now, which
 * overstates it by up to the fetch's round trip. fetch_ms is the
 * fa_now_ms() value when the fetch was sent. The first batch after a
 * snapshot re-reads up to 10 s of changes the snapshot already contained,
 * so it advances the counted id without measuring or counting its rows.
 */
void fa_metrics_change_applied(struct fa_plugin *plugin, int64_t fetch_ms)
{
	struct fa_feed *feed = &plugin->feed;
	const struct fa_change_batch *batch = &feed->batch;
	struct fa_metrics *metrics = &plugin->metrics;
	int64_t elapsed_ms = fa_now_ms() - fetch_ms;

	if (batch->new_rows == 0) {
		feed->lag_skip_batch = false;
		return;
	}
	if (elapsed_ms < 0)
		elapsed_ms = 0;
	if (!feed->lag_skip_batch) {
		int64_t oldest_ms = batch->lag_oldest_age_ms + elapsed_ms;

		metrics->lag_last_ms = batch->lag_newest_age_ms + elapsed_ms;
		if (oldest_ms > metrics->lag_max_ms)
			metrics->lag_max_ms = oldest_ms;
		metrics->changes_applied += batch->new_rows;
	}
	feed->lag_counted_id = batch->lag_newest_id;
	feed->lag_skip_batch = false;
}

/*
 * Returns "connected" while the feed follows change_log, "stale" once no
 * query has succeeded for more than stale_after seconds (new CONNECTs are
 * then denied), and "reconnecting" in between and during a snapshot.
 */
static const char *db_state(const struct fa_plugin *plugin)
{
	if (plugin->state == NULL ||
	    plugin->now_s - plugin->last_db_ok_s > plugin->config.stale_after)
		return "stale";
	if (plugin->feed.phase == FA_FEED_FOLLOWING)
		return "connected";
	return "reconnecting";
}

static void count_sessions(const struct fa_plugin *plugin,
                           struct snapshot_values *values)
{
	const struct fa_session_table *table = &plugin->sessions;

	for (size_t i = 0; i < table->capacity; i++) {
		const struct fa_session *session = table->slots[i].session;

		if (session == NULL || session->closing)
			continue;
		if (session->kind == FA_IDENTITY_DEVICE)
			values->sessions_device++;
		else
			values->sessions_token++;
	}
}

static void compute_values(const struct fa_plugin *plugin,
                           struct snapshot_values *values)
{
	const struct fa_metrics *metrics = &plugin->metrics;

	memset(values, 0, sizeof(*values));
	values->accepted = metrics->accepted_token + metrics->accepted_device;
	for (int reason = 0; reason < FA_DENY_COUNT; reason++) {
		for (int request = 0; request < FA_REQUEST_COUNT; request++)
			values->denied_by_request[request] +=
			        metrics->denials[reason][request];
	}
	count_sessions(plugin, values);
	values->throttled_addresses = fa_throttle_blocked_count(plugin);
	values->last_change_id =
	        plugin->state != NULL ? plugin->state->change_id : -1;
	values->db_state = db_state(plugin);
}

/* Publishes value as a retained QoS 0 message on $SYS/fleetauth/level. */
static void publish_text(struct publish_round *round, const char *level,
                         const char *value)
{
	char topic[128];
	int rc;

	snprintf(topic, sizeof(topic), FA_METRICS_PREFIX "%s", level);
	rc = mosquitto_broker_publish_copy(NULL, topic, (int)strlen(value),
	                                   value, 0, true, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		round->failed++;
		round->last_error = rc;
	}
}

static void publish_u64(struct publish_round *round, const char *level,
                        uint64_t value)
{
	char text[24];

	snprintf(text, sizeof(text), "%" PRIu64, value);
	publish_text(round, level, text);
}

static void publish_i64(struct publish_round *round, const char *level,
                        int64_t value)
{
	char text[24];

	snprintf(text, sizeof(text), "%" PRId64, value);
	publish_text(round, level, text);
}

/* Publishes the per-reason totals under denials/REASON and, for requests
 * that have been denied for that reason, denials/REASON/REQUEST. */
static void publish_denials(struct publish_round *round,
                            const struct fa_metrics *metrics)
{
	char level[96];

	for (int reason = 0; reason < FA_DENY_COUNT; reason++) {
		uint64_t total = 0;

		for (int request = 0; request < FA_REQUEST_COUNT; request++) {
			uint64_t count = metrics->denials[reason][request];

			total += count;
			if (count == 0)
				continue;
			snprintf(level, sizeof(level), "denials/%s/%s",
			         fa_deny_reason_code(
			                 (enum fa_deny_reason)reason),
			         request_level[request]);
			publish_u64(round, level, count);
		}
		snprintf(level, sizeof(level), "denials/%s",
		         fa_deny_reason_code((enum fa_deny_reason)reason));
		publish_u64(round, level, total);
	}
}

static void publish_all(struct publish_round *round,
                        const struct fa_plugin *plugin,
                        const struct snapshot_values *values)
{
	const struct fa_metrics *metrics = &plugin->metrics;
	const uint64_t *denied = values->denied_by_request;

	publish_u64(round, "connects/accepted", values->accepted);
	publish_u64(round, "connects/accepted/token", metrics->accepted_token);
	publish_u64(round, "connects/accepted/device",
	            metrics->accepted_device);
	publish_u64(round, "connects/denied", denied[FA_REQUEST_CONNECT]);
	publish_u64(round, "acl/denied/publish", denied[FA_REQUEST_PUBLISH]);
	publish_u64(round, "acl/denied/subscribe",
	            denied[FA_REQUEST_SUBSCRIBE]);
	publish_u64(round, "acl/denied/delivery", denied[FA_REQUEST_DELIVERY]);
	publish_denials(round, metrics);
	publish_u64(round, "sessions/token", values->sessions_token);
	publish_u64(round, "sessions/device", values->sessions_device);
	publish_text(round, "db/state", values->db_state);
	publish_u64(round, "db/connection_losses",
	            metrics->db_connection_losses);
	publish_i64(round, "changes/last_id", values->last_change_id);
	publish_u64(round, "changes/applied", metrics->changes_applied);
	publish_i64(round, "changes/lag_ms", metrics->lag_last_ms);
	publish_i64(round, "changes/lag_max_ms", metrics->lag_max_ms);
	publish_u64(round, "token_cache/hits", metrics->token_cache_hits);
	publish_u64(round, "token_cache/misses", metrics->token_cache_misses);
	publish_u64(round, "throttle/addresses", values->throttled_addresses);
	publish_u64(round, "throttle/limit_reached",
	            metrics->throttle_limit_reached);
}

static void log_summary(const struct fa_plugin *plugin,
                        const struct snapshot_values *values)
{
	const struct fa_metrics *metrics = &plugin->metrics;
	const uint64_t *denied = values->denied_by_request;

	mosquitto_log_printf(
	        MOSQ_LOG_INFO,
	        "fleetauth: metrics: connects accepted=%" PRIu64
	        " denied=%" PRIu64 "; denied publish=%" PRIu64
	        " subscribe=%" PRIu64 " delivery=%" PRIu64
	        "; sessions token=%" PRIu64 " device=%" PRIu64
	        "; db=%s change_id=%" PRId64 " lag_ms=%" PRId64
	        " lag_max_ms=%" PRId64 "; token cache hits=%" PRIu64
	        " misses=%" PRIu64 "; throttled addresses=%" PRIu64,
	        values->accepted, denied[FA_REQUEST_CONNECT],
	        denied[FA_REQUEST_PUBLISH], denied[FA_REQUEST_SUBSCRIBE],
	        denied[FA_REQUEST_DELIVERY], values->sessions_token,
	        values->sessions_device, values->db_state,
	        values->last_change_id, metrics->lag_last_ms,
	        metrics->lag_max_ms, metrics->token_cache_hits,
	        metrics->token_cache_misses, values->throttled_addresses);
}

/*
 * Called from the once-per-second sweep. When metrics_interval seconds
 * have passed since the last round, publishes every counter and writes
 * the summary line. A failed publish is logged once per round with the
 * broker's error code.
 */
void fa_metrics_tick(struct fa_plugin *plugin)
{
	struct snapshot_values values;
	struct publish_round round = {0, MOSQ_ERR_SUCCESS};

	if (plugin->config.metrics_interval <= 0 ||
	    plugin->now_s - plugin->metrics.last_publish_s <
	            plugin->config.metrics_interval)
		return;
	plugin->metrics.last_publish_s = plugin->now_s;
	compute_values(plugin, &values);
	publish_all(&round, plugin, &values);
	log_summary(plugin, &values);
	if (round.failed > 0)
		mosquitto_log_printf(MOSQ_LOG_WARNING,
		                     "fleetauth: publishing %u metrics on "
		                     "$SYS/fleetauth/ failed: %s",
		                     round.failed,
		                     mosquitto_strerror(round.last_error));
}
