/*
 * Change feed: a non-blocking libpq connection driven only from the
 * broker's tick. It LISTENs on fleetauth_change and, on each notification
 * and at least every poll_interval seconds (see fetch_interval_ms), sends
 * one query that fetches the change_log rows above the last applied id
 * and reloads the objects they name (fa_change_query_sql), then applies
 * them. When the connection is lost it reconnects with exponential backoff
 * and loads a full snapshot off to the side before following changes
 * again. Nothing here waits on the network: a result that is not complete
 * yet is taken at a later tick.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "fa_plugin.h"

#define FA_FEED_FIRST_BACKOFF_MS 1000
#define FA_FEED_QUERY_TIMEOUT_MS 30000
#define FA_FEED_CONNECT_TIMEOUT_MS 10000
/* Rows of a snapshot applied per tick, so that a large snapshot does not
 * stall the broker's loop for long. */
#define FA_FEED_ROWS_PER_TICK 20000

/* Maximum reads of the connection's socket per tick. libpq reads at most
 * 16 KiB per PQconsumeInput, and a burst of changes sends a notification
 * per change_log row plus the rows themselves. Ticks of an idle Mosquitto
 * 2.0.11 are 100 ms apart, so one read per tick would delay the feed by
 * several ticks. 64 reads take at most 1 MiB per tick. */
#define FA_FEED_READS_PER_TICK 64

void fa_feed_init(struct fa_plugin *plugin)
{
	memset(&plugin->feed, 0, sizeof(plugin->feed));
	plugin->feed.phase = FA_FEED_DOWN;
	plugin->feed.backoff_ms = FA_FEED_FIRST_BACKOFF_MS;
}

static void clear_query(struct fa_feed *feed)
{
	PQclear(feed->result);
	feed->result = NULL;
	for (int i = 0; i < FA_RELOAD_KINDS; i++) {
		PQclear(feed->reload_results[i]);
		feed->reload_results[i] = NULL;
	}
	fa_state_free(feed->building);
	feed->building = NULL;
	fa_change_batch_clear(&feed->batch);
	feed->query = FA_QUERY_NONE;
	feed->result_index = 0;
	feed->row = 0;
}

void fa_feed_close(struct fa_plugin *plugin)
{
	clear_query(&plugin->feed);
	PQfinish(plugin->feed.conn);
	plugin->feed.conn = NULL;
	plugin->feed.phase = FA_FEED_DOWN;
}

/* Copies a libpq message without its trailing newline. */
static void trim_message(char *out, size_t out_size, const char *message)
{
	snprintf(out, out_size, "%s", message ? message : "unknown error");
	out[strcspn(out, "\r\n")] = '\0';
}

/*
 * Drops the connection and schedules the next attempt. The first loss is
 * logged at warning level; repeated failed attempts only at debug level
 * until a connection works again.
 */
static void feed_lost(struct fa_plugin *plugin, const char *why)
{
	struct fa_feed *feed = &plugin->feed;
	int64_t now_ms = fa_now_ms();
	char message[256];

	trim_message(message, sizeof(message), why);
	if (!feed->loss_logged) {
		plugin->metrics.db_connection_losses++;
		mosquitto_log_printf(MOSQ_LOG_WARNING,
		                     "fleetauth: database unavailable: %s; "
		                     "deciding from the last loaded state "
		                     "and retrying in %lld ms",
		                     message, (long long)feed->backoff_ms);
		feed->loss_logged = true;
	} else {
		mosquitto_log_printf(MOSQ_LOG_DEBUG,
		                     "fleetauth: database still unavailable: "
		                     "%s",
		                     message);
	}
	fa_feed_close(plugin);
	if (feed->down_since_s == 0)
		feed->down_since_s = plugin->now_s;
	feed->next_attempt_ms = now_ms + feed->backoff_ms;
	feed->backoff_ms *= 2;
	if (feed->backoff_ms > plugin->config.reconnect_max_delay * 1000)
		feed->backoff_ms = plugin->config.reconnect_max_delay * 1000;
}

/* Marks a successful round trip to the database. */
static void feed_ok(struct fa_plugin *plugin)
{
	plugin->last_db_ok_s = plugin->now_s;
	plugin->feed.backoff_ms = FA_FEED_FIRST_BACKOFF_MS;
	plugin->feed.loss_logged = false;
}

static bool send_query(struct fa_plugin *plugin, const char *sql,
                       enum fa_query_kind kind)
{
	struct fa_feed *feed = &plugin->feed;

	if (!PQsendQuery(feed->conn, sql)) {
		feed_lost(plugin, PQerrorMessage(feed->conn));
		return false;
	}
	feed->query = kind;
	feed->query_started_ms = fa_now_ms();
	feed->result_index = 0;
	feed->row = 0;
	return true;
}

/*
 * Hands a connected, idle connection to the feed and starts following
 * changes from the installed state's watermark.
 */
fa_result fa_feed_start_following(struct fa_plugin *plugin, PGconn *conn)
{
	struct fa_feed *feed = &plugin->feed;

	if (PQsetnonblocking(conn, 1) != 0) {
		PQfinish(conn);
		return FA_ERR_IO;
	}
	feed->conn = conn;
	feed->phase = FA_FEED_FOLLOWING;
	feed->watermark = plugin->state->change_id;
	feed->fetch_wanted = true;
	feed->lag_skip_batch = true;
	feed->down_since_s = 0;
	feed_ok(plugin);
	return FA_OK;
}

static void start_connect(struct fa_plugin *plugin)
{
	struct fa_feed *feed = &plugin->feed;

	feed->conn = PQconnectStart(plugin->config.db);
	if (feed->conn == NULL) {
		feed_lost(plugin, "out of memory");
		return;
	}
	if (PQstatus(feed->conn) == CONNECTION_BAD) {
		feed_lost(plugin, PQerrorMessage(feed->conn));
		return;
	}
	feed->phase = FA_FEED_CONNECTING;
	feed->query_started_ms = fa_now_ms();
	feed->connect_poll = PGRES_POLLING_WRITING;
}

/* True when the connection's socket is ready for what libpq waits on. */
static bool socket_ready(PGconn *conn, PostgresPollingStatusType waiting)
{
	struct pollfd pfd = {.fd = PQsocket(conn)};

	if (pfd.fd < 0)
		return true;
	pfd.events = waiting == PGRES_POLLING_READING ? POLLIN : POLLOUT;
	return poll(&pfd, 1, 0) != 0;
}

static void start_snapshot(struct fa_plugin *plugin)
{
	struct fa_feed *feed = &plugin->feed;

	feed->building = fa_state_new();
	if (feed->building == NULL) {
		feed_lost(plugin, "out of memory");
		return;
	}
	if (send_query(plugin, fa_snapshot_sql, FA_QUERY_SNAPSHOT))
		feed->phase = FA_FEED_SNAPSHOT;
}

static void poll_connect(struct fa_plugin *plugin)
{
	struct fa_feed *feed = &plugin->feed;

	if (fa_now_ms() - feed->query_started_ms > FA_FEED_CONNECT_TIMEOUT_MS) {
		feed_lost(plugin, "connection attempt timed out");
		return;
	}
	if (!socket_ready(feed->conn, feed->connect_poll))
		return;
	feed->connect_poll = PQconnectPoll(feed->conn);
	if (feed->connect_poll == PGRES_POLLING_FAILED) {
		feed_lost(plugin, PQerrorMessage(feed->conn));
		return;
	}
	if (feed->connect_poll != PGRES_POLLING_OK)
		return;
	if (PQsetnonblocking(feed->conn, 1) != 0) {
		feed_lost(plugin, PQerrorMessage(feed->conn));
		return;
	}
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
	                     "fleetauth: database connection established; "
	                     "loading a full snapshot");
	start_snapshot(plugin);
}

static bool result_ok(const PGresult *result)
{
	ExecStatusType status = PQresultStatus(result);

	return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

/* Applies up to budget rows of the current snapshot result; returns false
 * when the budget ran out before the end of the result. */
static bool consume_snapshot_rows(struct fa_plugin *plugin, int *budget)
{
	struct fa_feed *feed = &plugin->feed;
	int rows = PQntuples(feed->result);
	char err[256];

	while (feed->row < rows) {
		if (*budget <= 0)
			return false;

		fa_result status = fa_snapshot_row(
		        feed->building, feed->result_index, feed->result,
		        feed->row, err, sizeof(err));

		if (status == FA_ERR_NOMEM) {
			feed_lost(plugin, "out of memory loading the snapshot");
			return false;
		}
		if (status != FA_OK)
			mosquitto_log_printf(MOSQ_LOG_WARNING, "fleetauth: %s",
			                     err);
		feed->row++;
		(*budget)--;
	}
	return true;
}

static void log_snapshot(const struct fa_state *state)
{
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
	                     "fleetauth: snapshot loaded: %zu users, %zu "
	                     "devices, %zu certificates, %zu loads with "
	                     "drivers, %zu revoked families, %zu revoked "
	                     "tokens, %zu signing keys, change id %lld",
	                     state->users.count, state->devices.count,
	                     state->certs.count, state->loads.count,
	                     state->families.count, state->jtis.count,
	                     state->key_count, (long long)state->change_id);
}

static void finish_snapshot(struct fa_plugin *plugin)
{
	struct fa_feed *feed = &plugin->feed;
	struct fa_state *state = feed->building;

	if (feed->result_index != fa_snapshot_result_count()) {
		feed_lost(plugin, "snapshot query returned too few results");
		return;
	}
	feed->building = NULL;
	feed->query = FA_QUERY_NONE;
	if (feed->down_since_s != 0)
		mosquitto_log_printf(
		        MOSQ_LOG_NOTICE,
		        "fleetauth: database back after %lld s",
		        (long long)(plugin->now_s - feed->down_since_s));
	feed->down_since_s = 0;
	log_snapshot(state);
	fa_plugin_swap_state(plugin, state);
	feed->watermark = state->change_id;
	feed->phase = FA_FEED_FOLLOWING;
	feed->fetch_wanted = true;
	feed->lag_skip_batch = true;
}

static void finish_reload(struct fa_plugin *plugin)
{
	struct fa_feed *feed = &plugin->feed;
	bool advanced = feed->batch.next_watermark > feed->watermark;
	bool full = feed->batch.rows >= FA_CHANGE_BATCH;

	if (fa_reload_apply(plugin, feed->reload_results) != FA_OK) {
		feed_lost(plugin, "out of memory applying changes");
		return;
	}
	feed->watermark = feed->batch.next_watermark;
	fa_metrics_change_applied(plugin, feed->last_fetch_ms);
	clear_query(feed);
	fa_plugin_kick_revoked(plugin);
	if (full && advanced)
		feed->fetch_wanted = true;
}

/* Called when PQgetResult returned NULL: the query is complete. */
static void finish_query(struct fa_plugin *plugin)
{
	struct fa_feed *feed = &plugin->feed;

	feed_ok(plugin);
	switch (feed->query) {
	case FA_QUERY_SNAPSHOT:
		finish_snapshot(plugin);
		break;
	case FA_QUERY_CHANGES:
		if (feed->batch.rows == 0) {
			/* Nothing to measure, so the next batch after a
			 * snapshot holds only changes made since. */
			feed->lag_skip_batch = false;
			clear_query(feed);
			break;
		}
		finish_reload(plugin);
		break;
	case FA_QUERY_NONE:
		break;
	}
}

/*
 * Takes one finished result of the change query: BEGIN, the change rows,
 * FA_RELOAD_KINDS reload selects, COMMIT (see fa_change_query_sql). Keeps
 * the reload results in the feed and frees the others.
 */
static bool take_result(struct fa_plugin *plugin, PGresult *res)
{
	struct fa_feed *feed = &plugin->feed;
	int index = feed->result_index++;

	if (index == 1) {
		fa_result status = fa_changes_collect(plugin, res);

		PQclear(res);
		if (status != FA_OK) {
			feed_lost(plugin, "out of memory reading changes");
			return false;
		}
		return true;
	}
	if (index >= 2 && index < 2 + FA_RELOAD_KINDS) {
		feed->reload_results[index - 2] = res;
		return true;
	}
	PQclear(res);
	return true;
}

/*
 * Consumes whatever results libpq has ready without waiting. A snapshot
 * result is applied in chunks of FA_FEED_ROWS_PER_TICK rows per tick.
 */
static void process_results(struct fa_plugin *plugin)
{
	struct fa_feed *feed = &plugin->feed;
	int budget = FA_FEED_ROWS_PER_TICK;

	while (feed->query != FA_QUERY_NONE && feed->conn != NULL) {
		if (feed->result == NULL) {
			if (PQisBusy(feed->conn))
				return;

			PGresult *res = PQgetResult(feed->conn);

			if (res == NULL) {
				finish_query(plugin);
				continue;
			}
			if (!result_ok(res)) {
				char message[256];

				trim_message(message, sizeof(message),
				             PQresultErrorMessage(res));
				PQclear(res);
				feed_lost(plugin, message);
				return;
			}
			plugin->last_db_ok_s = plugin->now_s;
			if (feed->query != FA_QUERY_SNAPSHOT) {
				if (!take_result(plugin, res))
					return;
				continue;
			}
			feed->result = res;
			feed->row = 0;
		}
		if (!consume_snapshot_rows(plugin, &budget))
			return;
		PQclear(feed->result);
		feed->result = NULL;
		feed->result_index++;
	}
}

/* Sends the change query for the rows above the watermark. */
static void send_fetch(struct fa_plugin *plugin)
{
	struct fa_feed *feed = &plugin->feed;
	char *sql = NULL;

	fa_change_batch_clear(&feed->batch);
	if (fa_change_query_sql(feed->watermark, &sql) != FA_OK) {
		feed_lost(plugin, "out of memory building the change query");
		return;
	}
	if (!send_query(plugin, sql, FA_QUERY_CHANGES)) {
		free(sql);
		return;
	}
	free(sql);
	feed->fetch_wanted = false;
	feed->last_fetch_ms = feed->query_started_ms;
}

/*
 * Returns the longest wait between change fetches in milliseconds:
 * poll_interval, shortened to half of stale_after. A completed fetch is
 * what keeps last_db_ok_s fresh, so on an idle database a longer wait would
 * deny CONNECTs as stale while the database works.
 */
static int64_t fetch_interval_ms(const struct fa_plugin *plugin)
{
	int64_t poll_ms = plugin->config.poll_interval * 1000;
	int64_t stale_ms = plugin->config.stale_after * 1000 / 2;

	return stale_ms < poll_ms ? stale_ms : poll_ms;
}

/*
 * Reads what the socket holds, up to FA_FEED_READS_PER_TICK reads, and
 * takes the notifications. Returns false when the connection was lost.
 */
static bool read_input(struct fa_plugin *plugin)
{
	struct fa_feed *feed = &plugin->feed;
	PGnotify *notify;

	for (int reads = 0; reads < FA_FEED_READS_PER_TICK; reads++) {
		if (!PQconsumeInput(feed->conn) ||
		    PQstatus(feed->conn) == CONNECTION_BAD) {
			feed_lost(plugin, PQerrorMessage(feed->conn));
			return false;
		}
		while ((notify = PQnotifies(feed->conn)) != NULL) {
			feed->fetch_wanted = true;
			PQfreemem(notify);
		}
		if (!socket_ready(feed->conn, PGRES_POLLING_READING))
			break;
	}
	return true;
}

/* Reads input, notifications and results on an established connection. */
static void service(struct fa_plugin *plugin)
{
	struct fa_feed *feed = &plugin->feed;
	int64_t now_ms = fa_now_ms();

	if (PQflush(feed->conn) < 0) {
		feed_lost(plugin, PQerrorMessage(feed->conn));
		return;
	}
	if (!read_input(plugin))
		return;
	if (feed->query != FA_QUERY_NONE &&
	    now_ms - feed->query_started_ms > FA_FEED_QUERY_TIMEOUT_MS) {
		feed_lost(plugin, "query timed out");
		return;
	}
	process_results(plugin);
	if (feed->conn == NULL || feed->phase != FA_FEED_FOLLOWING ||
	    feed->query != FA_QUERY_NONE)
		return;
	if (!feed->fetch_wanted &&
	    now_ms - feed->last_fetch_ms < fetch_interval_ms(plugin))
		return;
	send_fetch(plugin);
}

/* Advances the feed by whatever can be done without waiting. */
void fa_feed_tick(struct fa_plugin *plugin)
{
	struct fa_feed *feed = &plugin->feed;

	switch (feed->phase) {
	case FA_FEED_DOWN:
		if (fa_now_ms() >= feed->next_attempt_ms)
			start_connect(plugin);
		break;
	case FA_FEED_CONNECTING:
		poll_connect(plugin);
		break;
	case FA_FEED_SNAPSHOT:
	case FA_FEED_FOLLOWING:
		service(plugin);
		break;
	}
}
