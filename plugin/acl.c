/*
 * ACL check for every PUBLISH, SUBSCRIBE and delivery. The identity is
 * rebuilt from the current in-memory user or device record on each call,
 * so a change applied by the feed counts from the next message on. No
 * allocation and no I/O on this path.
 */
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "fa_plugin.h"
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

	/* TODO: enforce users.window_start and window_end (access hours in
	 * the carrier's time zone); the snapshot does not load them yet. */
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
 * Returns MOSQ_ERR_SUCCESS to allow and MOSQ_ERR_ACL_DENIED to deny.
 * UNSUBSCRIBE is always allowed because it can only take rights away.
 * NOTE: a client without a live session is denied everything. A message
 * that Mosquitto checks for an offline persistent session (clean session
 * false) is therefore dropped; no test covers that path.
 */
int fa_acl_check(struct fa_plugin *plugin, struct mosquitto *client,
                 const char *topic, int access)
{
	struct fa_identity who;
	enum fa_deny_reason reason = FA_DENY_TOPIC;
	const char *filter = topic;
	const struct fa_session *session;

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
	if (!current_identity(plugin, session, &who)) {
		reason = FA_DENY_USER_INACTIVE;
		goto deny;
	}
	if (access == MOSQ_ACL_SUBSCRIBE) {
		filter = fa_topic_unshare(topic);
		if (filter == NULL)
			goto deny;
	}
	if (fa_topic_allowed(&who, filter, map_access(access),
	                     fa_state_assigned, plugin->state))
		return MOSQ_ERR_SUCCESS;
deny:
	fa_metrics_count_denial(plugin, reason, request_of(access));
	fa_deny_log(plugin, reason, access_name(access), client,
	            mosquitto_client_username(client), topic, NULL);
	return MOSQ_ERR_ACL_DENIED;
}
