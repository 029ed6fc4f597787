/*
 * CONNECT authentication. A client that presents a TLS certificate is a
 * device: the certificate's SHA-256 fingerprint must map to an active
 * certificate of an active device whose id is the username. Any other
 * client presents an access token as password, verified locally against
 * the signing keys and then against the in-memory revocation state.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "fa_crypto.h"
#include "fa_plugin.h"
#include "windows.h"

/*
 * Allocates the verified-token cache of size entries and writes every byte
 * of it once. A cache that the kernel maps in lazily would add a page of
 * RSS for each token that lands in an untouched page, so RSS would grow
 * with every fresh token until the whole array is resident. Writing it now
 * makes the broker's RSS flat from the start: size *
 * sizeof(struct fa_token_cache_entry) bytes (about 31 MiB for 65536).
 */
fa_result fa_token_cache_init(struct fa_plugin *plugin, size_t size)
{
	size_t bytes;

	plugin->token_cache_size = size;
	plugin->token_cache_generation = 1;
	if (size == 0)
		return FA_OK;
	if (size > SIZE_MAX / sizeof(*plugin->token_cache))
		return FA_ERR_NOMEM;
	bytes = size * sizeof(*plugin->token_cache);
	plugin->token_cache = malloc(bytes);
	if (plugin->token_cache == NULL)
		return FA_ERR_NOMEM;
	/* fa_wipe and not memset: a compiler may turn malloc plus
	 * memset(0) into calloc, which touches nothing. */
	fa_wipe(plugin->token_cache, bytes);
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
	                     "fleetauth: token cache of %zu entries uses %zu "
	                     "KiB",
	                     size, bytes / 1024);
	return FA_OK;
}

/* Invalidates every entry in O(1) by moving to the next generation. */
void fa_token_cache_purge(struct fa_plugin *plugin)
{
	plugin->token_cache_generation++;
}

void fa_token_cache_free(struct fa_plugin *plugin)
{
	if (plugin->token_cache != NULL)
		fa_wipe(plugin->token_cache,
		        plugin->token_cache_size *
		                sizeof(*plugin->token_cache));
	free(plugin->token_cache);
	plugin->token_cache = NULL;
	plugin->token_cache_size = 0;
}

static struct fa_token_cache_entry *
cache_slot(struct fa_plugin *plugin, const uint8_t digest[FA_SHA256_LEN])
{
	uint64_t index = 0;

	memcpy(&index, digest, sizeof(index));
	return &plugin->token_cache[index % plugin->token_cache_size];
}

/* Copies cached claims for this token digest into claims; false on miss. */
static bool cache_lookup(struct fa_plugin *plugin,
                         const uint8_t digest[FA_SHA256_LEN],
                         struct fa_token_claims *claims)
{
	if (plugin->token_cache_size == 0)
		return false;

	const struct fa_token_cache_entry *entry = cache_slot(plugin, digest);

	if (entry->generation != plugin->token_cache_generation ||
	    !fa_ct_equal(entry->digest, digest, FA_SHA256_LEN))
		return false;
	*claims = entry->claims;
	return true;
}

static void cache_store(struct fa_plugin *plugin,
                        const uint8_t digest[FA_SHA256_LEN],
                        const struct fa_token_claims *claims)
{
	if (plugin->token_cache_size == 0)
		return;

	struct fa_token_cache_entry *entry = cache_slot(plugin, digest);

	memcpy(entry->digest, digest, FA_SHA256_LEN);
	entry->claims = *claims;
	entry->generation = plugin->token_cache_generation;
}

/*
 * True when client_id is id, or id followed by ':' and 1 to FA_ID_MAX
 * identifier characters. This rejects '+', '#', '/' and every other
 * character outside [A-Za-z0-9_-].
 */
bool fa_client_id_matches(const char *client_id, const char *id)
{
	size_t len = strlen(id);

	if (client_id == NULL || strncmp(client_id, id, len) != 0)
		return false;
	if (client_id[len] == '\0')
		return true;
	return client_id[len] == ':' && fa_id_valid(client_id + len + 1);
}

/*
 * Checks token claims against the current user and revocation state.
 * Returns FA_DENY_COUNT when they pass, else the reason. A role or carrier
 * that differs from the user's current one denies: the app logs in again to
 * get a token with the new role.
 */
enum fa_deny_reason fa_check_user_claims(const struct fa_state *state,
                                         const char *sub, enum fa_role role,
                                         const char *carrier,
                                         const char *family, const char *jti,
                                         const char *did)
{
	const struct fa_user_rec *user =
	        fa_map_get(&state->users, sub, strlen(sub));

	if (user == NULL || user->status != FA_USER_ACTIVE)
		return FA_DENY_USER_INACTIVE;
	if (role == FA_ROLE_NONE || role != user->role ||
	    strcmp(carrier, user->carrier) != 0)
		return FA_DENY_ROLE_CHANGED;
	if (family[0] != '\0' &&
	    fa_map_get(&state->families, family, strlen(family)) != NULL)
		return FA_DENY_FAMILY_REVOKED;
	if (fa_map_get(&state->jtis, jti, strlen(jti)) != NULL)
		return FA_DENY_TOKEN_REVOKED;
	if (did[0] != '\0') {
		const struct fa_device_rec *device =
		        fa_map_get(&state->devices, did, strlen(did));

		if (device == NULL || device->status == FA_DEVICE_REVOKED)
			return FA_DENY_DEVICE_REVOKED;
	}
	return FA_DENY_COUNT;
}

/* Verifies the token or takes its claims from the cache. */
static enum fa_deny_reason verify_token(struct fa_plugin *plugin,
                                        const char *token,
                                        struct fa_token_claims *claims,
                                        char *detail, size_t detail_size)
{
	const struct fa_plugin_config *config = &plugin->config;
	uint8_t digest[FA_SHA256_LEN];
	size_t len = strnlen(token, FA_TOKEN_MAX_LEN + 1);

	if (len > FA_TOKEN_MAX_LEN) {
		snprintf(detail, detail_size, "%s",
		         fa_token_status_str(FA_TOKEN_TOO_LONG));
		return FA_DENY_TOKEN;
	}
	fa_sha256(token, len, digest);
	if (cache_lookup(plugin, digest, claims)) {
		plugin->metrics.token_cache_hits++;
		/* the same rule as fa_token_verify: expired at exp + leeway */
		if (plugin->now_s < claims->exp + config->leeway)
			return FA_DENY_COUNT;
		snprintf(detail, detail_size, "%s",
		         fa_token_status_str(FA_TOKEN_EXPIRED));
		return FA_DENY_TOKEN;
	}

	plugin->metrics.token_cache_misses++;

	struct fa_verify_options options = {
	        .issuer = config->issuer,
	        .audience = config->audience,
	        .now = plugin->now_s,
	        .leeway = (int)config->leeway,
	        .max_lifetime = (int)config->max_token_lifetime,
	};
	enum fa_token_status status = fa_token_verify(
	        plugin->state->ring, token, len, &options, claims);

	if (status != FA_TOKEN_OK) {
		snprintf(detail, detail_size, "%s",
		         fa_token_status_str(status));
		return FA_DENY_TOKEN;
	}
	cache_store(plugin, digest, claims);
	return FA_DENY_COUNT;
}

static enum fa_deny_reason
auth_token(struct fa_plugin *plugin, const char *username, const char *password,
           struct fa_session *session, char *detail, size_t detail_size)
{
	struct fa_token_claims claims;
	enum fa_deny_reason reason;

	if (password == NULL || password[0] == '\0')
		return FA_DENY_NO_CREDENTIALS;
	reason = verify_token(plugin, password, &claims, detail, detail_size);
	if (reason != FA_DENY_COUNT)
		goto out;
	if (username != NULL && strcmp(username, claims.sub) != 0) {
		snprintf(detail, detail_size,
		         "username is not the token's sub");
		reason = FA_DENY_BAD_USERNAME;
		goto out;
	}

	enum fa_role role = fa_role_parse(claims.role);

	reason = fa_check_user_claims(plugin->state, claims.sub, role,
	                              claims.carrier, claims.fam, claims.jti,
	                              claims.did);
	if (reason == FA_DENY_COUNT &&
	    fa_windows_outside(plugin->windows, claims.sub))
		reason = FA_DENY_OUTSIDE_WINDOW;
	if (reason != FA_DENY_COUNT)
		goto out;
	session->kind = FA_IDENTITY_USER;
	session->role = role;
	session->exp = claims.exp;
	memcpy(session->id, claims.sub, sizeof(session->id));
	memcpy(session->carrier, claims.carrier, sizeof(session->carrier));
	memcpy(session->family, claims.fam, sizeof(session->family));
	memcpy(session->jti, claims.jti, sizeof(session->jti));
	memcpy(session->did, claims.did, sizeof(session->did));
out:
	fa_wipe(&claims, sizeof(claims));
	return reason;
}

static enum fa_deny_reason auth_device(struct fa_plugin *plugin, X509 *cert,
                                       const char *username,
                                       struct fa_session *session)
{
	const struct fa_state *state = plugin->state;
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	char fingerprint[2 * FA_SHA256_LEN + 1];

	if (X509_digest(cert, EVP_sha256(), digest, &digest_len) != 1 ||
	    digest_len != FA_SHA256_LEN)
		return FA_DENY_CERT_UNKNOWN;
	fa_hex_encode(digest, FA_SHA256_LEN, fingerprint);

	const struct fa_cert_rec *rec = fa_map_get(&state->certs, fingerprint,
	                                           2 * (size_t)FA_SHA256_LEN);

	if (rec == NULL)
		return FA_DENY_CERT_UNKNOWN;
	if (username == NULL || strcmp(rec->device, username) != 0)
		return FA_DENY_CERT_MISMATCH;
	if (rec->not_after <= plugin->now_s)
		return FA_DENY_CERT_EXPIRED;

	const struct fa_device_rec *device =
	        fa_map_get(&state->devices, username, strlen(username));

	if (device == NULL || device->status != FA_DEVICE_ACTIVE)
		return FA_DENY_DEVICE_REVOKED;
	session->kind = FA_IDENTITY_DEVICE;
	session->role = FA_ROLE_NONE;
	session->exp = rec->not_after;
	memcpy(session->id, device->id, strlen(device->id) + 1);
	memcpy(session->carrier, device->carrier, sizeof(session->carrier));
	memcpy(session->fingerprint, fingerprint, sizeof(fingerprint));
	return FA_DENY_COUNT;
}

/* Runs the checks that do not depend on the credential. */
static enum fa_deny_reason precheck(struct fa_plugin *plugin,
                                    const char *username, const char *address)
{
	if (fa_throttle_blocked(plugin, address))
		return FA_DENY_THROTTLED;
	if (plugin->state == NULL)
		return FA_DENY_NOT_READY;
	if (plugin->now_s - plugin->last_db_ok_s > plugin->config.stale_after)
		return FA_DENY_DB_STALE;
	if (username != NULL && !fa_id_valid(username))
		return FA_DENY_BAD_USERNAME;
	return FA_DENY_COUNT;
}

static enum fa_deny_reason
authenticate(struct fa_plugin *plugin, struct mosquitto *client,
             const char *username, const char *password,
             struct fa_session *session, char *detail, size_t detail_size)
{
	const char *client_id = mosquitto_client_id(client);
	X509 *cert = mosquitto_client_certificate(client);
	enum fa_deny_reason reason;

	if (cert != NULL) {
		reason = auth_device(plugin, cert, username, session);
		X509_free(cert);
	} else {
		reason = auth_token(plugin, username, password, session, detail,
		                    detail_size);
	}
	if (reason != FA_DENY_COUNT)
		return reason;
	if (!fa_client_id_matches(client_id, session->id))
		return FA_DENY_BAD_CLIENT_ID;
	snprintf(session->client_id, sizeof(session->client_id), "%s",
	         client_id);
	session->client = client;
	return FA_DENY_COUNT;
}

/*
 * Handles MOSQ_EVT_BASIC_AUTH. Decides every CONNECT itself (never defers),
 * including those without a username. Returns MOSQ_ERR_SUCCESS or
 * MOSQ_ERR_AUTH; every denial is counted against the client's address and
 * logged without the password.
 */
int fa_auth_basic(struct fa_plugin *plugin, struct mosquitto *client,
                  const char *username, const char *password)
{
	const char *address = mosquitto_client_address(client);
	struct fa_session session;
	char detail[96] = "";
	enum fa_deny_reason reason = precheck(plugin, username, address);

	memset(&session, 0, sizeof(session));
	if (reason == FA_DENY_COUNT)
		reason = authenticate(plugin, client, username, password,
		                      &session, detail, sizeof(detail));
	if (reason == FA_DENY_COUNT) {
		if (fa_session_put(plugin, &session) != FA_OK) {
			mosquitto_log_printf(MOSQ_LOG_ERR,
			                     "fleetauth: out of memory "
			                     "storing a session; CONNECT "
			                     "denied");
			return MOSQ_ERR_AUTH;
		}
		if (username == NULL)
			mosquitto_set_username(client, session.id);
		if (session.kind == FA_IDENTITY_DEVICE)
			plugin->metrics.accepted_device++;
		else
			plugin->metrics.accepted_token++;
		return MOSQ_ERR_SUCCESS;
	}
	/* Denials caused by the broker's own state are not the client's
	 * failures and do not count towards the throttle. */
	if (reason != FA_DENY_THROTTLED && reason != FA_DENY_NOT_READY &&
	    reason != FA_DENY_DB_STALE)
		fa_throttle_fail(plugin, address);
	if (reason == FA_DENY_DB_STALE)
		snprintf(detail, sizeof(detail),
		         "no working database for %lld s",
		         (long long)(plugin->now_s - plugin->last_db_ok_s));
	fa_metrics_count_denial(plugin, reason, FA_REQUEST_CONNECT);
	fa_deny_log(plugin, reason, "CONNECT", client, username, NULL, detail);
	return MOSQ_ERR_AUTH;
}
