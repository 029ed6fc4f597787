/*
 * Sessions: one record per authenticated client, keyed by the client's
 * struct mosquitto pointer rather than its client id, because during a
 * session takeover the new client authenticates before the old one is
 * disconnected.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "fa_crypto.h"
#include "fa_plugin.h"
#include "windows.h"

#define SESSION_MIN_CAPACITY 16

/* Fibonacci hashing: the top bits of the pointer times 2^64 / phi. The low
 * 4 bits of a glibc malloc pointer are zero (16-byte alignment on x86-64),
 * and the multiplication moves the bits that do vary into the top bits
 * that pick the slot. */
static size_t slot_of(const struct fa_session_table *table,
                      const struct mosquitto *client)
{
	uint64_t value = (uint64_t)(uintptr_t)client;

	return (size_t)((value * 0x9e3779b97f4a7c15ULL) >> table->shift);
}

/* Returns the slot that contains client, or the empty slot where it would
 * go. The table must have a capacity and at least one empty slot. */
static struct fa_session_slot *find_slot(const struct fa_session_table *table,
                                         const struct mosquitto *client)
{
	size_t mask = table->capacity - 1;
	size_t i = slot_of(table, client);

	while (table->slots[i].client != NULL &&
	       table->slots[i].client != client)
		i = (i + 1) & mask;
	return &table->slots[i];
}

/* Doubles the slot array (or creates it) and reinserts every session. */
static fa_result grow(struct fa_session_table *table)
{
	size_t capacity =
	        table->capacity ? 2 * table->capacity : SESSION_MIN_CAPACITY;
	struct fa_session_table grown = {
	        .slots = calloc(capacity, sizeof(struct fa_session_slot)),
	        .capacity = capacity,
	        .count = table->count,
	        .shift = 64,
	};

	if (grown.slots == NULL)
		return FA_ERR_NOMEM;
	for (size_t c = capacity; c > 1; c >>= 1)
		grown.shift--;
	for (size_t i = 0; i < table->capacity; i++) {
		if (table->slots[i].client != NULL)
			*find_slot(&grown, table->slots[i].client) =
			        table->slots[i];
	}
	free(table->slots);
	*table = grown;
	return FA_OK;
}

void fa_session_table_free(struct fa_session_table *table)
{
	for (size_t i = 0; i < table->capacity; i++)
		free(table->slots[i].session);
	free(table->slots);
	memset(table, 0, sizeof(*table));
}

/* Stores a copy of session with an empty decision cache, replacing any
 * session of the same client. The table owns the copy. */
fa_result fa_session_put(struct fa_plugin *plugin,
                         const struct fa_session *session)
{
	struct fa_session_table *table = &plugin->sessions;
	struct fa_session *copy = NULL;
	struct fa_session_slot *slot;

	if (session->client == NULL)
		return FA_ERR_INVALID;
	copy = malloc(sizeof(*copy));
	if (copy == NULL)
		return FA_ERR_NOMEM;
	*copy = *session;
	memset(copy->decisions, 0, sizeof(copy->decisions));
	copy->decision_next = 0;
	if (2 * (table->count + 1) > table->capacity && grow(table) != FA_OK) {
		free(copy);
		return FA_ERR_NOMEM;
	}
	slot = find_slot(table, copy->client);
	if (slot->client == NULL) {
		slot->client = copy->client;
		table->count++;
	}
	free(slot->session);
	slot->session = copy;
	return FA_OK;
}

struct fa_session *fa_session_get(struct fa_plugin *plugin,
                                  const struct mosquitto *client)
{
	const struct fa_session_table *table = &plugin->sessions;

	if (table->capacity == 0 || client == NULL)
		return NULL;
	return find_slot(table, client)->session;
}

/*
 * Removes and frees the client's session. The entries after it in the same
 * probe run move back into the gap when their home slot allows it, so that
 * lookups still find them and no deleted markers build up.
 */
void fa_session_remove(struct fa_plugin *plugin, const struct mosquitto *client)
{
	struct fa_session_table *table = &plugin->sessions;

	if (table->capacity == 0 || client == NULL)
		return;

	size_t mask = table->capacity - 1;
	struct fa_session_slot *slot = find_slot(table, client);
	size_t gap = (size_t)(slot - table->slots);

	if (slot->client == NULL)
		return;
	free(slot->session);
	table->count--;
	for (size_t j = (gap + 1) & mask; table->slots[j].client != NULL;
	     j = (j + 1) & mask) {
		size_t home = slot_of(table, table->slots[j].client);

		/* The entry at j may fill the gap unless its home slot lies
		 * cyclically in (gap, j]. */
		if (((j - home) & mask) < ((j - gap) & mask))
			continue;
		table->slots[gap] = table->slots[j];
		gap = j;
	}
	table->slots[gap].client = NULL;
	table->slots[gap].session = NULL;
}

/*
 * Marks the client's session as closing. Mosquitto 2.0.11 reports the
 * disconnect before it sends the client's will and checks the will with an
 * ACL WRITE, so the session stays until the next tick to let that check
 * see the identity. If the list cannot grow, the session is removed at once
 * and the will is denied.
 * NOTE: a will with an MQTT 5 will delay interval is sent after the session
 * is gone and is therefore denied.
 */
void fa_session_close(struct fa_plugin *plugin, struct mosquitto *client)
{
	struct fa_session *session = fa_session_get(plugin, client);

	if (session == NULL)
		return;
	if (plugin->closing_count == plugin->closing_capacity) {
		size_t capacity = plugin->closing_capacity
		                          ? 2 * plugin->closing_capacity
		                          : 64;
		struct mosquitto **grown = realloc(
		        plugin->closing, capacity * sizeof(struct mosquitto *));

		if (grown == NULL) {
			fa_session_remove(plugin, client);
			return;
		}
		plugin->closing = grown;
		plugin->closing_capacity = capacity;
	}
	session->closing = true;
	plugin->closing[plugin->closing_count++] = client;
}

/* Removes the sessions closed since the last tick. A session that was
 * replaced meanwhile (the broker reused the pointer for a new client that
 * authenticated) is no longer closing and stays. */
void fa_session_reap(struct fa_plugin *plugin)
{
	for (size_t i = 0; i < plugin->closing_count; i++) {
		const struct fa_session *session =
		        fa_session_get(plugin, plugin->closing[i]);

		if (session != NULL && session->closing)
			fa_session_remove(plugin, plugin->closing[i]);
	}
	plugin->closing_count = 0;
}

static enum fa_deny_reason check_device(const struct fa_plugin *plugin,
                                        const struct fa_session *session)
{
	const struct fa_state *state = plugin->state;
	const struct fa_device_rec *device =
	        fa_map_get(&state->devices, session->id, strlen(session->id));
	const struct fa_cert_rec *cert = fa_map_get(
	        &state->certs, session->fingerprint, 2 * (size_t)FA_SHA256_LEN);

	if (device == NULL || device->status != FA_DEVICE_ACTIVE)
		return FA_DENY_DEVICE_REVOKED;
	if (cert == NULL || strcmp(cert->device, session->id) != 0)
		return FA_DENY_CERT_UNKNOWN;
	if (cert->not_after <= plugin->now_s)
		return FA_DENY_CERT_EXPIRED;
	return FA_DENY_COUNT;
}

/*
 * Decides whether a connected client keeps its right to be connected under
 * the current state. A token client needs an unexpired token (with leeway),
 * an active user with the same role and carrier, and no revoked family,
 * token or device. A device needs an active device record and an active,
 * unexpired certificate. Returns FA_DENY_COUNT when the client may stay,
 * else the reason.
 */
enum fa_deny_reason fa_session_check(const struct fa_plugin *plugin,
                                     const struct fa_session *session)
{
	if (plugin->state == NULL)
		return FA_DENY_COUNT;
	if (session->kind == FA_IDENTITY_DEVICE)
		return check_device(plugin, session);
	if (plugin->now_s >= session->exp + plugin->config.leeway)
		return FA_DENY_SESSION_EXPIRED;
	if (fa_windows_outside(plugin->windows, session->id))
		return FA_DENY_OUTSIDE_WINDOW;
	return fa_check_user_claims(plugin->state, session->id, session->role,
	                            session->carrier, session->family,
	                            session->jti, session->did);
}
