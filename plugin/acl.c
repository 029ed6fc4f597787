/*
 * ACL check for every PUBLISH, SUBSCRIBE and delivery. The identity is
 * rebuilt from the current in-memory user or device record on each
 * decision, so a change applied by the feed counts from the next message
 * on. Each session caches its last few decisions (struct fa_decision),
 * tagged with the state generation, which every change of the state
 * advances, so a cached decision is never used after a change. No
 * allocation and no I/O on this path.
 */
#include <stdint.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "fa_plugin.h"
#include "windows.h"
#include "fa_topic.h"

/* Fills who from the session and current state; false when the session's
 * principal is no longer active or changed role or carrier. */
static bool current_identity(const struct fa_plugin *plugin,
                             const struct fa_session *session,
                             struct fa_identity *who)
{
	const struct fa_state *state = plugin->state;
	size_t len = strlen(session->id);

	who->kind = session->kind;
	who->id = session->id;
	if (session->kind == FA_IDENTITY_DEVICE) {
		const struct fa_device_rec *device =
		        fa_map_get(&state->devices, session->id, len);

		if (device == NULL || device->status != FA_DEVICE_ACTIVE)
			return false;
		who->carrier = device->carrier;
		who->role = FA_ROLE_NONE;
		return true;
	}

	const struct fa_user_rec *user =
	        fa_map_get(&state->users, session->id, len);

	if (user == NULL || user->status != FA_USER_ACTIVE ||
	    user->role != session->role ||
	    strcmp(user->carrier, session->carrier) != 0)
		return false;
	who->carrier = user->carrier[0] ? user->carrier : NULL;
	who->role = user->role;
	return true;
}

static enum fa_access map_access(int access)
{
	switch (access) {
	case MOSQ_ACL_READ:
		return FA_ACCESS_READ;
	case MOSQ_ACL_WRITE:
		return FA_ACCESS_WRITE;
	default:
		return FA_ACCESS_SUBSCRIBE;
	}
}

static enum fa_request request_of(int access)
{
	switch (access) {
	case MOSQ_ACL_READ:
		return FA_REQUEST_DELIVERY;
	case MOSQ_ACL_WRITE:
		return FA_REQUEST_PUBLISH;
	default:
		return FA_REQUEST_SUBSCRIBE;
	}
}

static const char *access_name(int access)
{
	switch (access) {
	case MOSQ_ACL_READ:
		return "delivery";
	case MOSQ_ACL_WRITE:
		return "PUBLISH";
	default:
		return "SUBSCRIBE";
	}
}

/*
 * Decides one request from the session and the current state without the
 * cache. Returns FA_DENY_COUNT to allow, else the denial reason.
 */
static enum fa_deny_reason decide(const struct fa_plugin *plugin,
                                  const struct fa_session *session,
                                  const char *topic, int access)
{
	struct fa_identity who;
	const char *filter = topic;

	if (!current_identity(plugin, session, &who))
		return FA_DENY_USER_INACTIVE;
	if (session->kind != FA_IDENTITY_DEVICE &&
	    fa_windows_outside(plugin->windows, session->id))
		return FA_DENY_OUTSIDE_WINDOW;
	if (access == MOSQ_ACL_SUBSCRIBE) {
		filter = fa_topic_unshare(topic);
		if (filter == NULL)
			return FA_DENY_TOPIC;
	}
	if (fa_topic_allowed(&who, filter, map_access(access),
	                     fa_state_assigned, plugin->state))
		return FA_DENY_COUNT;
	return FA_DENY_TOPIC;
}

_Static_assert(FA_DENY_COUNT <= UINT8_MAX, "reason must fit fa_decision");
_Static_assert(FA_DECISION_TOPIC_MAX <= UINT16_MAX,
               "topic length must fit fa_decision");
_Static_assert(FA_DECISION_SLOTS <= UINT8_MAX,
               "decision_next must index every entry");

_Static_assert(sizeof(struct fa_decision) == 96,
               "struct fa_decision size is documented in fa_plugin.h");

/* Reads up to 8 bytes as one word, zero-padded. */
static uint64_t load_word(const char *bytes, size_t len)
{
	uint64_t word = 0;

	memcpy(&word, bytes, len < sizeof(word) ? len : sizeof(word));
	return word;
}

/*
 * Hashes the access kind, the length and two 8-byte windows of the topic:
 * its last 8 bytes and 8 bytes from the middle, where the topics of one
 * session differ (ids and the last levels). The hash only filters: a match
 * is confirmed by comparing the whole topic.
 */
static uint32_t decision_hash(const char *topic, size_t len, int access)
{
	uint64_t tail = len >= 8 ? load_word(topic + len - 8, 8)
	                         : load_word(topic, len);
	uint64_t middle = len >= 16 ? load_word(topic + len / 2 - 4, 8) : 0;
	uint64_t hash = ((uint64_t)len << 8 | (uint64_t)(unsigned)access) ^
	                tail * 0x9e3779b97f4a7c15ULL ^
	                middle * 0xc2b2ae3d27d4eb4fULL;

	hash *= 0xff51afd7ed558ccdULL;
	return (uint32_t)(hash >> 32);
}

/* Returns the entry with exactly this access kind and topic stored under
 * the current state generation, or NULL. */
static const struct fa_decision *find_decision(const struct fa_session *session,
                                               uint64_t generation,
                                               uint32_t hash, const char *topic,
                                               size_t len, int access)
{
	for (size_t i = 0; i < FA_DECISION_SLOTS; i++) {
		const struct fa_decision *entry = &session->decisions[i];

		if (entry->hash == hash && entry->generation == generation &&
		    entry->topic_len == len && entry->access == access &&
		    memcmp(entry->topic, topic, len) == 0)
			return entry;
	}
	return NULL;
}

/* Picks the entry a new decision goes into: an empty or stale one if there
 * is one, else the entries in turn. */
static struct fa_decision *victim(struct fa_session *session,
                                  uint64_t generation)
{
	for (size_t i = 0; i < FA_DECISION_SLOTS; i++) {
		if (session->decisions[i].generation != generation)
			return &session->decisions[i];
	}

	size_t next = session->decision_next % FA_DECISION_SLOTS;

	session->decision_next = (uint8_t)((next + 1) % FA_DECISION_SLOTS);
	return &session->decisions[next];
}

/*
 * Decides one request through the session's decision cache. The cache key
 * is the exact access kind and topic bytes, and an entry counts only under
 * the state generation it was stored with. Returns FA_DENY_COUNT to allow,
 * else the denial reason.
 */
static enum fa_deny_reason decide_cached(const struct fa_plugin *plugin,
                                         struct fa_session *session,
                                         const char *topic, int access)
{
	uint64_t generation = plugin->state->generation;
	const struct fa_decision *found;
	struct fa_decision *entry;
	enum fa_deny_reason reason;
	uint32_t hash;
	size_t len;

	if (topic == NULL)
		return decide(plugin, session, topic, access);
	len = strnlen(topic, FA_DECISION_TOPIC_MAX + 1);
	if (len > FA_DECISION_TOPIC_MAX)
		return decide(plugin, session, topic, access);
	hash = decision_hash(topic, len, access);
	found = find_decision(session, generation, hash, topic, len, access);
	if (found != NULL)
		return (enum fa_deny_reason)found->reason;
	reason = decide(plugin, session, topic, access);
	entry = victim(session, generation);
	entry->generation = generation;
	entry->hash = hash;
	entry->topic_len = (uint16_t)len;
	entry->access = (uint8_t)access;
	entry->reason = (uint8_t)reason;
	memcpy(entry->topic, topic, len);
	return reason;
}

/*
 * Returns MOSQ_ERR_SUCCESS to allow and MOSQ_ERR_ACL_DENIED to deny.
 * UNSUBSCRIBE is always allowed because it can only take rights away. The
 * token expiry is checked before the decision cache, so an expired
 * session is denied even where an earlier decision allowed the topic.
 * NOTE: a client without a live session is denied everything. A message
 * that Mosquitto checks for an offline persistent session (clean session
 * false) is therefore dropped; no test covers that path.
 */
int fa_acl_check(struct fa_plugin *plugin, struct mosquitto *client,
                 const char *topic, int access)
{
	enum fa_deny_reason reason;
	struct fa_session *session;

	if (access == MOSQ_ACL_UNSUBSCRIBE)
		return MOSQ_ERR_SUCCESS;
	session = fa_session_get(plugin, client);
	if (session == NULL || plugin->state == NULL) {
		reason = FA_DENY_NO_SESSION;
		goto deny;
	}
	if (session->kind == FA_IDENTITY_USER &&
	    plugin->now_s >= session->exp + plugin->config.leeway) {
		reason = FA_DENY_SESSION_EXPIRED;
		goto deny;
	}
	reason = decide_cached(plugin, session, topic, access);
	if (reason == FA_DENY_COUNT)
		return MOSQ_ERR_SUCCESS;
deny:
	fa_metrics_count_denial(plugin, reason, request_of(access));
	fa_deny_log(plugin, reason, access_name(access), client,
	            mosquitto_client_username(client), topic, NULL);
	return MOSQ_ERR_ACL_DENIED;
}
