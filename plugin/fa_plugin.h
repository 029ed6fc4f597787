/*
 * Internal interfaces of the Mosquitto plugin. Everything the callbacks
 * need lives in one struct fa_plugin that Mosquitto hands back as userdata.
 * No file keeps state in file-scope variables.
 */
#ifndef FA_PLUGIN_H
#define FA_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "fa_ids.h"
#include "fa_result.h"
#include "fa_roles.h"
#include "fa_token.h"
#include "fa_topic.h"

struct mosquitto;
struct fa_audit;
struct fa_windows;

/* ---- hash map (map.c) ---- */

/*
 * Open-addressing hash map of records. Each record is a caller-allocated
 * block that contains its own NUL-terminated key at key_offset. The map
 * stores the pointer and the key's hash. It never copies or frees records
 * on its own.
 */
struct fa_map_slot {
	uint64_t hash; /* 0: empty, 1: deleted */
	void *record;
};

struct fa_map {
	struct fa_map_slot *slots;
	size_t capacity; /* power of two, or 0 before the first insert */
	size_t count;
	size_t used; /* live plus deleted slots */
	size_t key_offset;
	/* When not NULL, incremented by every fa_map_put and fa_map_remove,
	 * so that the owner can tell that the map's contents changed. */
	uint64_t *generation;
};

void fa_map_init(struct fa_map *map, size_t key_offset);
uint64_t fa_map_hash(const char *key, size_t len);
void *fa_map_get(const struct fa_map *map, const char *key, size_t len);
fa_result fa_map_put(struct fa_map *map, void *record, void **replaced);
void *fa_map_remove(struct fa_map *map, const char *key, size_t len);
/* Frees every record with free() and the slot array. */
void fa_map_free_all(struct fa_map *map);
/* Drops the slot array only. */
void fa_map_release(struct fa_map *map);

/* ---- authorization state (state.c) ---- */

enum fa_user_status {
	FA_USER_ACTIVE = 1,
	FA_USER_LOCKED,
	FA_USER_DISABLED,
	FA_USER_DELETED
};

struct fa_user_rec {
	enum fa_role role;
	enum fa_user_status status;
	char carrier[FA_ID_MAX + 1]; /* empty for platform roles */
	char id[];
};

enum fa_device_status {
	FA_DEVICE_PENDING = 1,
	FA_DEVICE_ACTIVE,
	FA_DEVICE_REVOKED
};

struct fa_device_rec {
	enum fa_device_status status;
	char carrier[FA_ID_MAX + 1];
	char id[];
};

/* An active device certificate, keyed by lower-case hex SHA-256 of DER. */
struct fa_cert_rec {
	int64_t not_after;
	char device[FA_ID_MAX + 1];
	char fingerprint[];
};

/* Drivers of one load: key "carrier/load", then the driver ids packed as
 * NUL-terminated strings after the key. */
struct fa_load_rec {
	uint32_t key_len;
	uint32_t driver_count;
	char data[];
};

/* A revoked refresh-token family or access-token jti. */
struct fa_revoked_rec {
	int64_t expires_at;
	char id[];
};

struct fa_key_info {
	char kid[FA_ID_MAX + 1];
	int64_t publish_until; /* 0: no limit */
};

struct fa_state {
	struct fa_map users;
	struct fa_map devices;
	struct fa_map certs;
	struct fa_map loads;
	struct fa_map families;
	struct fa_map jtis;
	struct fa_keyring *ring;
	struct fa_key_info *keys;
	size_t key_count;
	size_t key_capacity;
	int64_t change_id; /* change_log id the snapshot reflects */
	/* Changes whenever a record in any map above is added, replaced or
	 * removed, and on every snapshot swap (fa_plugin_swap_state). Never 0
	 * once installed, and never repeats a value within one plugin. The
	 * ACL decision cache is valid only while it is unchanged. */
	uint64_t generation;
};

struct fa_state *fa_state_new(void);
void fa_state_free(struct fa_state *state);

fa_result fa_state_put_user(struct fa_state *state, const char *id,
                            const char *carrier, const char *role,
                            const char *status);
fa_result fa_state_put_device(struct fa_state *state, const char *id,
                              const char *carrier, const char *status);
fa_result fa_state_put_cert(struct fa_state *state, const char *fingerprint,
                            const char *device, int64_t not_after);
void fa_state_remove_certs_of(struct fa_state *state, const char *device);
fa_result fa_state_add_assignment(struct fa_state *state, const char *carrier,
                                  const char *load, const char *driver);
void fa_state_remove_load(struct fa_state *state, const char *carrier,
                          const char *load);
fa_result fa_state_put_revoked(struct fa_map *map, const char *id,
                               int64_t expires_at);
void fa_state_remove_record(struct fa_map *map, const char *id);
fa_result fa_state_put_key(struct fa_state *state, const char *kid,
                           const char *alg, const char *pem,
                           int64_t publish_until, char *err, size_t err_size);
void fa_state_remove_key(struct fa_state *state, const char *kid);
/* Removes keys whose publish_until has passed; returns how many. */
size_t fa_state_expire_keys(struct fa_state *state, int64_t now);
void fa_state_expire_revoked(struct fa_state *state, int64_t now);
bool fa_state_assigned(void *ctx, const char *carrier, const char *load,
                       const char *driver);

/* ---- configuration (plugin.c) ---- */

struct fa_plugin_config {
	char *db;
	char *issuer;
	char *audience;
	long long leeway;
	long long max_token_lifetime;
	long long stale_after;
	bool start_fail_closed;
	long long reconnect_max_delay;
	long long failed_connect_limit;
	long long failed_connect_window;
	long long token_cache_size;
	long long denial_log_interval;
	long long poll_interval;
	long long metrics_interval;
	long long audit_interval;
	long long audit_queue_size;
};

/* ---- sessions (session.c) ---- */

/*
 * Per-session cache of recent ACL decisions (acl.c). Every entry can hold
 * any (access kind, topic), and a lookup compares all of them, so up to
 * FA_DECISION_SLOTS topics in use at once never evict each other. An entry
 * contains a copy of the topic, so a hash collision costs a miss and never
 * returns another topic's decision. Topics longer than
 * FA_DECISION_TOPIC_MAX bytes are not cached.
 * Size: FA_DECISION_SLOTS * 96 bytes = 384 bytes per session.
 */
#define FA_DECISION_SLOTS 4
#define FA_DECISION_TOPIC_MAX 80

struct fa_decision {
	uint64_t generation; /* state generation it was made under; 0: empty */
	uint32_t hash;       /* of access kind and topic, to skip memcmp */
	uint16_t topic_len;
	uint8_t access; /* MOSQ_ACL_READ, MOSQ_ACL_WRITE or MOSQ_ACL_SUBSCRIBE */
	uint8_t reason; /* FA_DENY_COUNT when allowed, else the denial reason */
	char topic[FA_DECISION_TOPIC_MAX];
};

struct fa_session {
	struct mosquitto *client;
	enum fa_identity_kind kind;
	enum fa_role role;
	int64_t exp; /* token expiry; certificate not_after for devices */
	char id[FA_ID_MAX + 1];
	char carrier[FA_ID_MAX + 1];
	char family[FA_ID_MAX + 1];
	char jti[FA_ID_MAX + 1];
	char did[FA_ID_MAX + 1];
	bool closing; /* disconnected; removed on the next tick */
	char fingerprint[2 * 32 + 1];
	char client_id[2 * FA_ID_MAX + 2];
	struct fa_decision decisions[FA_DECISION_SLOTS];
	uint8_t decision_next; /* entry that the next store replaces if none
	                        * is empty or stale */
};

/*
 * Open-addressing table of sessions keyed by the client pointer itself,
 * with linear probing and backward-shift deletion (no deleted markers).
 * A slot with client NULL is empty. The table owns the session records.
 */
struct fa_session_slot {
	const struct mosquitto *client;
	struct fa_session *session;
};

struct fa_session_table {
	struct fa_session_slot *slots;
	size_t capacity; /* power of two, or 0 before the first insert */
	size_t count;
	unsigned shift; /* 64 - log2(capacity), for the multiplicative hash */
};

/* Frees every session and the slot array. */
void fa_session_table_free(struct fa_session_table *table);

/* ---- denial log and throttling (guard.c) ---- */

enum fa_deny_reason {
	FA_DENY_THROTTLED = 0,
	FA_DENY_NOT_READY,
	FA_DENY_DB_STALE,
	FA_DENY_BAD_USERNAME,
	FA_DENY_BAD_CLIENT_ID,
	FA_DENY_NO_CREDENTIALS,
	FA_DENY_TOKEN,
	FA_DENY_USER_INACTIVE,
	FA_DENY_ROLE_CHANGED,
	FA_DENY_FAMILY_REVOKED,
	FA_DENY_TOKEN_REVOKED,
	FA_DENY_DEVICE_REVOKED,
	FA_DENY_CERT_UNKNOWN,
	FA_DENY_CERT_EXPIRED,
	FA_DENY_CERT_MISMATCH,
	FA_DENY_NO_SESSION,
	FA_DENY_SESSION_EXPIRED,
	FA_DENY_TOPIC,
	FA_DENY_OUTSIDE_WINDOW,
	FA_DENY_COUNT
};

struct fa_deny_slot {
	int64_t window_start;
	uint64_t suppressed;
	char last[1024];
};

struct fa_throttle_rec {
	int64_t window_start;
	uint32_t failures;
	char address[];
};

/* ---- token cache (auth.c) ---- */

struct fa_token_cache_entry {
	uint8_t digest[32];
	uint64_t generation; /* valid while equal to the cache's generation */
	struct fa_token_claims claims;
};

/* ---- database feed (feed.c, db.c) ---- */

enum fa_feed_phase {
	FA_FEED_DOWN = 0,   /* waiting for the next connection attempt */
	FA_FEED_CONNECTING, /* PQconnectPoll in progress */
	FA_FEED_SNAPSHOT,   /* loading a full snapshot off to the side */
	FA_FEED_FOLLOWING   /* applying change_log rows */
};

enum fa_query_kind {
	FA_QUERY_NONE = 0,
	FA_QUERY_SNAPSHOT,
	FA_QUERY_CHANGES /* change rows and reloads in one round trip */
};

#define FA_RELOAD_KINDS 7
#define FA_CHANGE_BATCH 5000 /* change_log rows per change query */

/* Subjects named by one batch of change_log rows, per kind. */
struct fa_change_batch {
	char **subjects[FA_RELOAD_KINDS];
	char **carriers[FA_RELOAD_KINDS]; /* used for assignments */
	size_t count[FA_RELOAD_KINDS];
	size_t rows;
	int64_t next_watermark;
	/* Rows above the feed's lag_counted_id, for the change lag metric:
	 * how many, their highest id, and the ages of its row and of the
	 * oldest row in milliseconds, on the database clock at the fetch. */
	size_t new_rows;
	int64_t lag_newest_id;
	int64_t lag_newest_age_ms;
	int64_t lag_oldest_age_ms;
};

struct fa_feed {
	enum fa_feed_phase phase;
	PGconn *conn;
	int64_t next_attempt_ms;
	int64_t backoff_ms;
	int64_t down_since_s; /* 0 while connected */
	bool loss_logged;
	PostgresPollingStatusType connect_poll;
	/* the query in flight */
	enum fa_query_kind query;
	int64_t query_started_ms;
	int result_index;
	PGresult *result; /* result being consumed in chunks */
	int row;
	struct fa_state *building;
	PGresult *reload_results[FA_RELOAD_KINDS];
	struct fa_change_batch batch;
	/* change following */
	int64_t watermark; /* last change_log id applied */
	bool fetch_wanted;
	int64_t last_fetch_ms;
	/* Highest change_log id whose lag was measured or that a snapshot
	 * already covered; rows at or below it are not measured again. */
	int64_t lag_counted_id;
	bool lag_skip_batch; /* first batch after a snapshot: not measured */
};

/* ---- counters published on $SYS (metrics.c) ---- */

/* Request kinds that a denial is counted under. */
enum fa_request {
	FA_REQUEST_CONNECT = 0,
	FA_REQUEST_PUBLISH,
	FA_REQUEST_SUBSCRIBE,
	FA_REQUEST_DELIVERY,
	FA_REQUEST_COUNT
};

/*
 * Counters since the plugin started. They are plain integers because every
 * callback runs on the broker's single thread.
 */
struct fa_metrics {
	uint64_t accepted_token;
	uint64_t accepted_device;
	uint64_t denials[FA_DENY_COUNT][FA_REQUEST_COUNT];
	uint64_t token_cache_hits;
	uint64_t token_cache_misses;
	uint64_t throttle_limit_reached; /* times an address hit the limit */
	uint64_t db_connection_losses;
	uint64_t changes_applied; /* change_log rows whose lag was measured */
	int64_t lag_last_ms;      /* -1 until the first measured change */
	int64_t lag_max_ms;
	int64_t last_publish_s;
};

/* ---- the plugin ---- */

struct fa_plugin {
	void *identifier; /* mosquitto_plugin_id_t * */
	struct fa_plugin_config config;
	struct fa_state *state;     /* NULL until the first snapshot loads */
	struct fa_session_table sessions;
	struct mosquitto **closing; /* sessions to remove on the next tick */
	size_t closing_count;
	size_t closing_capacity;
	struct fa_map throttle;
	struct fa_deny_slot deny[FA_DENY_COUNT];
	struct fa_token_cache_entry *token_cache;
	size_t token_cache_size;
	uint64_t token_cache_generation;
	struct fa_feed feed;
	struct fa_metrics metrics;
	struct fa_audit *audit; /* NULL when audit_interval is 0 */
	struct fa_windows *windows; /* users outside their access window */
	int64_t now_s;         /* wall clock, refreshed on every callback */
	int64_t last_db_ok_s;  /* last time a query succeeded */
	int64_t last_sweep_s;  /* last expiry sweep over sessions */
	int64_t last_expire_s; /* last purge of expired revocations */
	int64_t last_throttle_purge_s;
	/* ticks counted per minute and logged at debug level */
	uint64_t ticks;
	int64_t ticks_since_s;
};

/* Counts one denial; an out-of-range reason or request is ignored. Inline,
 * so that the ACL path and tools that compile acl.c alone need no
 * metrics.c. */
static inline void fa_metrics_count_denial(struct fa_plugin *plugin,
                                           enum fa_deny_reason reason,
                                           enum fa_request request)
{
	if (reason >= FA_DENY_COUNT || request >= FA_REQUEST_COUNT)
		return;
	plugin->metrics.denials[reason][request]++;
}

/* plugin.c */
int64_t fa_now_ms(void);
void fa_plugin_refresh_clock(struct fa_plugin *plugin);
void fa_plugin_swap_state(struct fa_plugin *plugin, struct fa_state *state);
void fa_plugin_kick_revoked(struct fa_plugin *plugin);

/* session.c */
fa_result fa_session_put(struct fa_plugin *plugin,
                         const struct fa_session *session);
struct fa_session *fa_session_get(struct fa_plugin *plugin,
                                  const struct mosquitto *client);
void fa_session_remove(struct fa_plugin *plugin,
                       const struct mosquitto *client);
void fa_session_close(struct fa_plugin *plugin, struct mosquitto *client);
void fa_session_reap(struct fa_plugin *plugin);
/* Returns FA_DENY_COUNT when the session may stay connected. */
enum fa_deny_reason fa_session_check(const struct fa_plugin *plugin,
                                     const struct fa_session *session);

/* auth.c */
int fa_auth_basic(struct fa_plugin *plugin, struct mosquitto *client,
                  const char *username, const char *password);
fa_result fa_token_cache_init(struct fa_plugin *plugin, size_t size);
void fa_token_cache_purge(struct fa_plugin *plugin);
void fa_token_cache_free(struct fa_plugin *plugin);
bool fa_client_id_matches(const char *client_id, const char *id);
enum fa_deny_reason fa_check_user_claims(const struct fa_state *state,
                                         const char *sub, enum fa_role role,
                                         const char *carrier,
                                         const char *family, const char *jti,
                                         const char *did);

/* acl.c */
int fa_acl_check(struct fa_plugin *plugin, struct mosquitto *client,
                 const char *topic, int access);

/* guard.c */
const char *fa_deny_reason_str(enum fa_deny_reason reason);
/* Short name of reason, such as "token_rejected" or "topic_denied". */
const char *fa_deny_reason_code(enum fa_deny_reason reason);
void fa_deny_log(struct fa_plugin *plugin, enum fa_deny_reason reason,
                 const char *what, struct mosquitto *client,
                 const char *username, const char *topic, const char *detail);
void fa_deny_flush(struct fa_plugin *plugin, bool force);
bool fa_throttle_blocked(struct fa_plugin *plugin, const char *address);
void fa_throttle_fail(struct fa_plugin *plugin, const char *address);
void fa_throttle_purge(struct fa_plugin *plugin);
/* Returns how many addresses are refused right now. */
size_t fa_throttle_blocked_count(const struct fa_plugin *plugin);
void fa_log_safe_copy(char *out, size_t out_size, const char *in);

/* metrics.c */
void fa_metrics_init(struct fa_plugin *plugin);
void fa_metrics_change_applied(struct fa_plugin *plugin, int64_t fetch_ms);
void fa_metrics_tick(struct fa_plugin *plugin);

/* db.c */
extern const char fa_snapshot_sql[];
fa_result fa_snapshot_row(struct fa_state *state, int index,
                          const PGresult *result, int row, char *err,
                          size_t err_size);
int fa_snapshot_result_count(void);
bool fa_snapshot_expects_rows(int index);
fa_result fa_load_snapshot_blocking(struct fa_plugin *plugin, char *err,
                                    size_t err_size);
fa_result fa_change_query_sql(int64_t watermark, char **sql);
fa_result fa_reload_apply(struct fa_plugin *plugin,
                          PGresult *const results[FA_RELOAD_KINDS]);
fa_result fa_changes_collect(struct fa_plugin *plugin, const PGresult *result);
void fa_change_batch_clear(struct fa_change_batch *batch);

/* feed.c */
void fa_feed_init(struct fa_plugin *plugin);
void fa_feed_tick(struct fa_plugin *plugin);
void fa_feed_close(struct fa_plugin *plugin);
fa_result fa_feed_start_following(struct fa_plugin *plugin, PGconn *conn);

#endif
