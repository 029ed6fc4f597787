/*
 * SQL the plugin runs and the code that turns rows into struct fa_state:
 * the full snapshot, the change_log fetch and the per-object reloads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "fa_crypto.h"
#include "fa_plugin.h"

/*
 * The snapshot runs as one string of statements so that it needs one round
 * trip. LISTEN comes first; the change fetch that follows every snapshot
 * covers notifications sent before LISTEN took effect. The watermark goes
 * back over the last 10 seconds of change_log, so that a transaction that
 * took its change_log id before the snapshot and committed after it is
 * still applied.
 */
const char fa_snapshot_sql[] =
        "LISTEN fleetauth_change;"
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
        "SELECT coalesce((SELECT min(id) - 1 FROM change_log"
        " WHERE at > clock_timestamp() - interval '10 seconds'),"
        " (SELECT max(id) FROM change_log), 0);"
        "SELECT id, carrier_id, status FROM devices;"
        "SELECT fingerprint_sha256, device_id,"
        " extract(epoch FROM not_after)::bigint"
        " FROM device_certificates WHERE status = 'active';"
        "SELECT id, coalesce(carrier_id, ''), role, status FROM users;"
        "SELECT carrier_id, load_id, driver_id FROM load_assignments;"
        "SELECT id, extract(epoch FROM expires_at)::bigint"
        " FROM refresh_families"
        " WHERE revoked_at IS NOT NULL AND expires_at > now();"
        "SELECT jti, extract(epoch FROM expires_at)::bigint"
        " FROM revoked_access_tokens WHERE expires_at > now();"
        "SELECT kid, alg, public_pem,"
        " coalesce(extract(epoch FROM publish_until)::bigint, 0)"
        " FROM signing_keys WHERE status = 'current'"
        " OR (status = 'previous'"
        " AND (publish_until IS NULL OR publish_until > now()));"
        "COMMIT";

enum snapshot_result {
	SNAP_LISTEN = 0,
	SNAP_BEGIN,
	SNAP_WATERMARK,
	SNAP_DEVICES,
	SNAP_CERTS,
	SNAP_USERS,
	SNAP_ASSIGNMENTS,
	SNAP_FAMILIES,
	SNAP_JTIS,
	SNAP_KEYS,
	SNAP_COMMIT,
	SNAP_COUNT
};

/* Reload kinds, in the order of the statements in the reload query. */
enum reload_kind {
	RELOAD_DEVICE = 0,
	RELOAD_USER,
	RELOAD_FAMILY,
	RELOAD_ACCESS_TOKEN,
	RELOAD_ASSIGNMENT,
	RELOAD_SIGNING_KEY,
	RELOAD_CERT /* same subjects as RELOAD_DEVICE */
};

int fa_snapshot_result_count(void)
{
	return SNAP_COUNT;
}

bool fa_snapshot_expects_rows(int index)
{
	return index >= SNAP_WATERMARK && index <= SNAP_KEYS;
}

static int64_t get_int64(const PGresult *result, int row, int column)
{
	return strtoll(PQgetvalue(result, row, column), NULL, 10);
}

/*
 * Applies one row of snapshot result number index to state. A row that
 * breaks an identifier rule is skipped with FA_ERR_INVALID and a message in
 * err; the caller logs it and goes on.
 */
fa_result fa_snapshot_row(struct fa_state *state, int index,
                          const PGresult *result, int row, char *err,
                          size_t err_size)
{
	const char *v0 = PQgetvalue(result, row, 0);
	fa_result status = FA_OK;

	switch (index) {
	case SNAP_WATERMARK:
		state->change_id = get_int64(result, row, 0);
		break;
	case SNAP_DEVICES:
		status = fa_state_put_device(state, v0,
		                             PQgetvalue(result, row, 1),
		                             PQgetvalue(result, row, 2));
		break;
	case SNAP_CERTS:
		status =
		        fa_state_put_cert(state, v0, PQgetvalue(result, row, 1),
		                          get_int64(result, row, 2));
		break;
	case SNAP_USERS:
		status = fa_state_put_user(
		        state, v0, PQgetvalue(result, row, 1),
		        PQgetvalue(result, row, 2), PQgetvalue(result, row, 3));
		break;
	case SNAP_ASSIGNMENTS:
		status = fa_state_add_assignment(state, v0,
		                                 PQgetvalue(result, row, 1),
		                                 PQgetvalue(result, row, 2));
		break;
	case SNAP_FAMILIES:
		status = fa_state_put_revoked(&state->families, v0,
		                              get_int64(result, row, 1));
		break;
	case SNAP_JTIS:
		status = fa_state_put_revoked(&state->jtis, v0,
		                              get_int64(result, row, 1));
		break;
	case SNAP_KEYS:
		return fa_state_put_key(state, v0, PQgetvalue(result, row, 1),
		                        PQgetvalue(result, row, 2),
		                        get_int64(result, row, 3), err,
		                        err_size);
	default:
		break;
	}
	if (status == FA_ERR_INVALID)
		snprintf(err, err_size,
		         "snapshot row skipped: invalid identifier in "
		         "result %d",
		         index);
	return status;
}

static bool result_ok(const PGresult *result)
{
	ExecStatusType status = PQresultStatus(result);

	return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

/* Feeds every row of one snapshot result into state. NOMEM stops the
 * load; an invalid row is logged and skipped. */
static fa_result consume_snapshot_result(struct fa_state *state, int index,
                                         const PGresult *result)
{
	char err[256];
	int rows = PQntuples(result);

	for (int row = 0; row < rows; row++) {
		fa_result status = fa_snapshot_row(state, index, result, row,
		                                   err, sizeof(err));

		if (status == FA_ERR_NOMEM)
			return status;
		if (status != FA_OK)
			mosquitto_log_printf(MOSQ_LOG_WARNING, "fleetauth: %s",
			                     err);
	}
	return FA_OK;
}

/*
 * Loads the full snapshot over the blocking connection opened at plugin
 * start, before the broker serves clients. On success the state is
 * installed and the connection handed to the change feed. On error err
 * describes what failed and the connection is closed.
 */
fa_result fa_load_snapshot_blocking(struct fa_plugin *plugin, char *err,
                                    size_t err_size)
{
	fa_result result = FA_ERR_IO;
	struct fa_state *state = NULL;
	PGresult *res = NULL;
	int index = 0;
	PGconn *conn = PQconnectdb(plugin->config.db);

	if (PQstatus(conn) != CONNECTION_OK) {
		snprintf(err, err_size, "connecting to the database failed: %s",
		         PQerrorMessage(conn));
		goto out;
	}
	state = fa_state_new();
	if (state == NULL) {
		result = FA_ERR_NOMEM;
		snprintf(err, err_size, "out of memory");
		goto out;
	}
	if (!PQsendQuery(conn, fa_snapshot_sql)) {
		snprintf(err, err_size, "snapshot query failed: %s",
		         PQerrorMessage(conn));
		goto out;
	}
	while ((res = PQgetResult(conn)) != NULL) {
		if (!result_ok(res)) {
			snprintf(err, err_size, "snapshot query failed: %s",
			         PQresultErrorMessage(res));
			goto out;
		}
		result = consume_snapshot_result(state, index, res);
		if (result != FA_OK) {
			snprintf(err, err_size, "out of memory");
			goto out;
		}
		result = FA_ERR_IO;
		PQclear(res);
		res = NULL;
		index++;
	}
	if (index != SNAP_COUNT) {
		snprintf(err, err_size, "snapshot query returned %d results",
		         index);
		goto out;
	}
	fa_plugin_swap_state(plugin, state);
	state = NULL;
	result = fa_feed_start_following(plugin, conn);
	conn = NULL;
out:
	PQclear(res);
	PQfinish(conn);
	fa_state_free(state);
	return result;
}

/* ---- change following ---- */

static enum reload_kind kind_of(const char *kind, bool *known)
{
	static const char *const names[] = {"device",     "user",
	                                    "family",     "access_token",
	                                    "assignment", "signing_key"};

	*known = true;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(kind, names[i]) == 0)
			return (enum reload_kind)i;
	}
	*known = false;
	return RELOAD_DEVICE;
}

static fa_result push_subject(struct fa_change_batch *batch,
                              enum reload_kind kind, const char *subject,
                              const char *carrier)
{
	size_t n = batch->count[kind];
	char **subjects =
	        realloc(batch->subjects[kind], (n + 1) * sizeof(*subjects));

	if (subjects == NULL)
		return FA_ERR_NOMEM;
	batch->subjects[kind] = subjects;

	char **carriers =
	        realloc(batch->carriers[kind], (n + 1) * sizeof(*carriers));

	if (carriers == NULL)
		return FA_ERR_NOMEM;
	batch->carriers[kind] = carriers;
	subjects[n] = strdup(subject);
	carriers[n] = strdup(carrier);
	if (subjects[n] == NULL || carriers[n] == NULL) {
		free(subjects[n]);
		free(carriers[n]);
		return FA_ERR_NOMEM;
	}
	batch->count[kind]++;
	return FA_OK;
}

void fa_change_batch_clear(struct fa_change_batch *batch)
{
	for (int kind = 0; kind < FA_RELOAD_KINDS; kind++) {
		for (size_t i = 0; i < batch->count[kind]; i++) {
			free(batch->subjects[kind][i]);
			free(batch->carriers[kind][i]);
		}
		free(batch->subjects[kind]);
		free(batch->carriers[kind]);
	}
	memset(batch, 0, sizeof(*batch));
}

/* Records a row not seen before for the change lag metric. Rows arrive in
 * id order, so the last one is the newest. */
static void note_lag(struct fa_change_batch *batch, int64_t id, double age)
{
	int64_t age_ms = age > 0.0 ? (int64_t)(age * 1000.0) : 0;

	if (batch->new_rows == 0 || age_ms > batch->lag_oldest_age_ms)
		batch->lag_oldest_age_ms = age_ms;
	batch->new_rows++;
	batch->lag_newest_id = id;
	batch->lag_newest_age_ms = age_ms;
}

/*
 * Collects the subjects of the change_log rows in result (columns id, kind,
 * carrier_id, subject, age in seconds) into the feed's batch and computes
 * the next watermark. A gap in the ids younger than 10 seconds may be a
 * transaction that has not committed yet, so the watermark stops before it
 * and the rows after it are fetched again next time. Reloading them twice
 * is harmless. Rows with invalid identifiers are skipped with a warning.
 */
fa_result fa_changes_collect(struct fa_plugin *plugin, const PGresult *result)
{
	struct fa_change_batch *batch = &plugin->feed.batch;
	int64_t watermark = plugin->feed.watermark;
	bool contiguous = true;
	int rows = PQntuples(result);

	batch->rows = (size_t)rows;
	for (int row = 0; row < rows; row++) {
		int64_t id = get_int64(result, row, 0);
		const char *kind_name = PQgetvalue(result, row, 1);
		const char *carrier = PQgetvalue(result, row, 2);
		const char *subject = PQgetvalue(result, row, 3);
		double age = strtod(PQgetvalue(result, row, 4), NULL);
		bool known;
		enum reload_kind kind = kind_of(kind_name, &known);

		if (contiguous && id != watermark + 1 && age < 10.0)
			contiguous = false;
		if (contiguous)
			watermark = id;
		/* NOTE: a row that commits after a higher id was counted
		 * is applied but never measured for the lag metric. */
		if (id > plugin->feed.lag_counted_id)
			note_lag(batch, id, age);
		if (!known || !fa_id_valid(subject) ||
		    (kind == RELOAD_ASSIGNMENT && !fa_id_valid(carrier))) {
			mosquitto_log_printf(MOSQ_LOG_WARNING,
			                     "fleetauth: change_log row %lld "
			                     "skipped: invalid kind or subject",
			                     (long long)id);
			continue;
		}
		if (push_subject(batch, kind, subject, carrier) != FA_OK)
			return FA_ERR_NOMEM;
		if (kind == RELOAD_DEVICE &&
		    push_subject(batch, RELOAD_CERT, subject, carrier) != FA_OK)
			return FA_ERR_NOMEM;
	}
	batch->next_watermark = watermark;
	return FA_OK;
}

/*
 * The change query: one transaction that reads the next batch of change_log
 * rows above the watermark and, in the same round trip, reloads every
 * object those rows name. Each reload SELECT repeats the batch as the CTE
 * "c". REPEATABLE READ gives every statement the same snapshot, so c contains
 * the same rows as the first SELECT. Results: BEGIN, the change rows (id,
 * kind, carrier_id, subject, age in seconds), one SELECT per reload kind
 * in enum reload_kind order, COMMIT. The %1$lld is the watermark and %2$d
 * the batch size.
 */
/* One statement per block of lines. */
/* clang-format off */
#define FA_CHANGE_BATCH_CTE                                                    \
	"WITH c AS (SELECT kind, carrier_id, subject FROM change_log"          \
	" WHERE id > %1$lld ORDER BY id LIMIT %2$d) "

static const char change_query_format[] =
	"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
	"SELECT id, kind, coalesce(carrier_id, ''), subject,"
	" extract(epoch FROM clock_timestamp() - at)"
	" FROM change_log WHERE id > %1$lld ORDER BY id LIMIT %2$d;"

	FA_CHANGE_BATCH_CTE
	"SELECT id, carrier_id, status FROM devices"
	" WHERE id IN (SELECT subject FROM c WHERE kind = 'device');"

	FA_CHANGE_BATCH_CTE
	"SELECT id, coalesce(carrier_id, ''), role, status FROM users"
	" WHERE id IN (SELECT subject FROM c WHERE kind = 'user');"

	FA_CHANGE_BATCH_CTE
	"SELECT id, extract(epoch FROM expires_at)::bigint"
	" FROM refresh_families WHERE revoked_at IS NOT NULL"
	" AND expires_at > now()"
	" AND id IN (SELECT subject FROM c WHERE kind = 'family');"

	FA_CHANGE_BATCH_CTE
	"SELECT jti, extract(epoch FROM expires_at)::bigint"
	" FROM revoked_access_tokens WHERE expires_at > now()"
	" AND jti IN (SELECT subject FROM c WHERE kind = 'access_token');"

	FA_CHANGE_BATCH_CTE
	"SELECT carrier_id, load_id, driver_id FROM load_assignments"
	" WHERE (carrier_id, load_id) IN"
	" (SELECT carrier_id, subject FROM c WHERE kind = 'assignment');"

	FA_CHANGE_BATCH_CTE
	"SELECT kid, alg, public_pem,"
	" coalesce(extract(epoch FROM publish_until)::bigint, 0)"
	" FROM signing_keys WHERE (status = 'current'"
	" OR (status = 'previous' AND (publish_until IS NULL"
	" OR publish_until > now())))"
	" AND kid IN (SELECT subject FROM c WHERE kind = 'signing_key');"

	FA_CHANGE_BATCH_CTE
	"SELECT fingerprint_sha256, device_id,"
	" extract(epoch FROM not_after)::bigint"
	" FROM device_certificates WHERE status = 'active'"
	" AND device_id IN (SELECT subject FROM c WHERE kind = 'device');"

	"COMMIT";
/* clang-format on */

/*
 * Builds the change query for the rows above watermark (see
 * change_query_format). *sql is malloc'd and owned by the caller.
 */
fa_result fa_change_query_sql(int64_t watermark, char **sql)
{
	int len;

	*sql = NULL;
	len = snprintf(NULL, 0, change_query_format, (long long)watermark,
	               FA_CHANGE_BATCH);
	if (len < 0)
		return FA_ERR_INVALID;
	*sql = malloc((size_t)len + 1);
	if (*sql == NULL)
		return FA_ERR_NOMEM;
	snprintf(*sql, (size_t)len + 1, change_query_format,
	         (long long)watermark, FA_CHANGE_BATCH);
	return FA_OK;
}

/* Removes every subject of one kind from state before the reloaded rows
 * are inserted, so that a row that no longer exists stays removed. */
static void remove_subjects(struct fa_state *state,
                            const struct fa_change_batch *batch,
                            enum reload_kind kind)
{
	for (size_t i = 0; i < batch->count[kind]; i++) {
		const char *subject = batch->subjects[kind][i];

		switch (kind) {
		case RELOAD_DEVICE:
			fa_state_remove_record(&state->devices, subject);
			break;
		case RELOAD_USER:
			fa_state_remove_record(&state->users, subject);
			break;
		case RELOAD_FAMILY:
			fa_state_remove_record(&state->families, subject);
			break;
		case RELOAD_ACCESS_TOKEN:
			break; /* a revoked jti is never un-revoked */
		case RELOAD_ASSIGNMENT:
			fa_state_remove_load(state, batch->carriers[kind][i],
			                     subject);
			break;
		case RELOAD_SIGNING_KEY:
			fa_state_remove_key(state, subject);
			break;
		case RELOAD_CERT:
			fa_state_remove_certs_of(state, subject);
			break;
		}
	}
}

/* Maps a reload kind to the snapshot result with the same columns. */
static const int reload_to_snapshot[FA_RELOAD_KINDS] = {
        [RELOAD_DEVICE] = SNAP_DEVICES,
        [RELOAD_USER] = SNAP_USERS,
        [RELOAD_FAMILY] = SNAP_FAMILIES,
        [RELOAD_ACCESS_TOKEN] = SNAP_JTIS,
        [RELOAD_ASSIGNMENT] = SNAP_ASSIGNMENTS,
        [RELOAD_SIGNING_KEY] = SNAP_KEYS,
        [RELOAD_CERT] = SNAP_CERTS,
};

/*
 * Applies a completed reload to the live state in one go, so that no
 * broker decision uses a half-applied batch. Purges the token cache when
 * users, families, tokens or keys changed. The results stay owned by the
 * caller.
 */
fa_result fa_reload_apply(struct fa_plugin *plugin,
                          PGresult *const results[FA_RELOAD_KINDS])
{
	struct fa_state *state = plugin->state;
	const struct fa_change_batch *batch = &plugin->feed.batch;
	fa_result result;

	for (int kind = 0; kind < FA_RELOAD_KINDS; kind++) {
		remove_subjects(state, batch, (enum reload_kind)kind);
		result = consume_snapshot_result(
		        state, reload_to_snapshot[kind], results[kind]);
		if (result != FA_OK)
			return result;
	}
	if (batch->count[RELOAD_USER] || batch->count[RELOAD_FAMILY] ||
	    batch->count[RELOAD_ACCESS_TOKEN] ||
	    batch->count[RELOAD_SIGNING_KEY])
		fa_token_cache_purge(plugin);
	state->change_id = batch->next_watermark;
	return FA_OK;
}
