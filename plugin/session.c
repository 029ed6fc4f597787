/*
 * Sessions: one record per authenticated client, keyed by the client's
 * struct mosquitto pointer rather than its client id, because during a
 * session takeover the new client authenticates before the old one is
 * disconnected.
 */
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "fa_plugin.h"

/* Writes the pointer value as fixed-width lower-case hex. */
void fa_session_key(const struct mosquitto *client,
                    char out[2 * sizeof(void *) + 1])
{
	static const char digits[] = "0123456789abcdef";
	uintptr_t value = (uintptr_t)client;

	for (size_t i = 0; i < 2 * sizeof(void *); i++) {
		out[2 * sizeof(void *) - 1 - i] = digits[value & 0xf];
		value >>= 4;
	}
	out[2 * sizeof(void *)] = '\0';
}

/* Stores a copy of session, replacing any session of the same client. */
fa_result fa_session_put(struct fa_plugin *plugin,
                         const struct fa_session *session)
{
	struct fa_session *copy = malloc(sizeof(*copy));
	void *replaced = NULL;
	fa_result result;

	if (copy == NULL)
		return FA_ERR_NOMEM;
	*copy = *session;
	fa_session_key(copy->client, copy->key);
	result = fa_map_put(&plugin->sessions, copy, &replaced);
	if (result != FA_OK) {
		free(copy);
		return result;
	}
	free(replaced);
	return FA_OK;
}

struct fa_session *fa_session_get(struct fa_plugin *plugin,
                                  const struct mosquitto *client)
{
	char key[2 * sizeof(void *) + 1];

	fa_session_key(client, key);
	return fa_map_get(&plugin->sessions, key, 2 * sizeof(void *));
}

void fa_session_remove(struct fa_plugin *plugin, const struct mosquitto *client)
{
	char key[2 * sizeof(void *) + 1];

	fa_session_key(client, key);
	free(fa_map_remove(&plugin->sessions, key, 2 * sizeof(void *)));
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
		struct mosquitto **grown =
		        realloc(plugin->closing, capacity * sizeof(*grown));

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
	const struct fa_cert_rec *cert =
	        fa_map_get(&state->certs, session->fingerprint, 2 * 32);

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
	return fa_check_user_claims(plugin->state, session->id, session->role,
	                            session->carrier, session->family,
	                            session->jti, session->did);
}
