/*
 * In-memory copy of everything a broker decision needs: users, devices,
 * active device certificates, load assignments, revoked families and access
 * tokens, and the token-signing keys. Lookups are hash-map reads that do not
 * allocate; updates come from the snapshot and change-feed code in db.c.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fa_plugin.h"

struct fa_state *fa_state_new(void)
{
	struct fa_state *state = calloc(1, sizeof(*state));

	if (state == NULL)
		return NULL;
	state->ring = fa_keyring_new();
	if (state->ring == NULL) {
		free(state);
		return NULL;
	}
	fa_map_init(&state->users, offsetof(struct fa_user_rec, id));
	fa_map_init(&state->devices, offsetof(struct fa_device_rec, id));
	fa_map_init(&state->certs, offsetof(struct fa_cert_rec, fingerprint));
	fa_map_init(&state->loads, offsetof(struct fa_load_rec, data));
	fa_map_init(&state->families, offsetof(struct fa_revoked_rec, id));
	fa_map_init(&state->jtis, offsetof(struct fa_revoked_rec, id));
	state->users.generation = &state->generation;
	state->devices.generation = &state->generation;
	state->certs.generation = &state->generation;
	state->loads.generation = &state->generation;
	state->families.generation = &state->generation;
	state->jtis.generation = &state->generation;
	return state;
}

void fa_state_free(struct fa_state *state)
{
	if (state == NULL)
		return;
	fa_map_free_all(&state->users);
	fa_map_free_all(&state->devices);
	fa_map_free_all(&state->certs);
	fa_map_free_all(&state->loads);
	fa_map_free_all(&state->families);
	fa_map_free_all(&state->jtis);
	fa_keyring_free(state->ring);
	free(state->keys);
	free(state);
}

static void copy_id(char out[FA_ID_MAX + 1], const char *in)
{
	size_t len = strnlen(in, FA_ID_MAX);

	memcpy(out, in, len);
	out[len] = '\0';
}

/* Puts record into map, freeing any record it replaces. */
static fa_result put_owned(struct fa_map *map, void *record)
{
	void *replaced = NULL;
	fa_result result = fa_map_put(map, record, &replaced);

	if (result != FA_OK) {
		free(record);
		return result;
	}
	free(replaced);
	return FA_OK;
}

static enum fa_user_status parse_user_status(const char *status)
{
	if (strcmp(status, "active") == 0)
		return FA_USER_ACTIVE;
	if (strcmp(status, "locked") == 0)
		return FA_USER_LOCKED;
	if (strcmp(status, "disabled") == 0)
		return FA_USER_DISABLED;
	return FA_USER_DELETED;
}

/* Adds or replaces a user. An unknown role is stored as FA_ROLE_NONE,
 * which no topic rule grants anything to. */
fa_result fa_state_put_user(struct fa_state *state, const char *id,
                            const char *carrier, const char *role,
                            const char *status)
{
	if (!fa_id_valid(id) || (carrier[0] != '\0' && !fa_id_valid(carrier)))
		return FA_ERR_INVALID;

	size_t len = strlen(id);
	struct fa_user_rec *user = calloc(1, sizeof(*user) + len + 1);

	if (user == NULL)
		return FA_ERR_NOMEM;
	memcpy(user->id, id, len + 1);
	copy_id(user->carrier, carrier);
	user->role = fa_role_parse(role);
	user->status = parse_user_status(status);
	return put_owned(&state->users, user);
}

static enum fa_device_status parse_device_status(const char *status)
{
	if (strcmp(status, "active") == 0)
		return FA_DEVICE_ACTIVE;
	if (strcmp(status, "pending") == 0)
		return FA_DEVICE_PENDING;
	return FA_DEVICE_REVOKED;
}

fa_result fa_state_put_device(struct fa_state *state, const char *id,
                              const char *carrier, const char *status)
{
	if (!fa_id_valid(id) || !fa_id_valid(carrier))
		return FA_ERR_INVALID;

	size_t len = strlen(id);
	struct fa_device_rec *device = calloc(1, sizeof(*device) + len + 1);

	if (device == NULL)
		return FA_ERR_NOMEM;
	memcpy(device->id, id, len + 1);
	copy_id(device->carrier, carrier);
	device->status = parse_device_status(status);
	return put_owned(&state->devices, device);
}

fa_result fa_state_put_cert(struct fa_state *state, const char *fingerprint,
                            const char *device, int64_t not_after)
{
	size_t len = strlen(fingerprint);

	if (len != 64 || !fa_id_valid(device))
		return FA_ERR_INVALID;

	struct fa_cert_rec *cert = calloc(1, sizeof(*cert) + len + 1);

	if (cert == NULL)
		return FA_ERR_NOMEM;
	memcpy(cert->fingerprint, fingerprint, len + 1);
	copy_id(cert->device, device);
	cert->not_after = not_after;
	return put_owned(&state->certs, cert);
}

/* Drops every certificate of device. Scans the whole certificate table,
 * which is fine for the rare device change. */
void fa_state_remove_certs_of(struct fa_state *state, const char *device)
{
	struct fa_map *map = &state->certs;

	for (size_t i = 0; i < map->capacity; i++) {
		struct fa_cert_rec *cert = map->slots[i].record;

		if (map->slots[i].hash < 2 || strcmp(cert->device, device) != 0)
			continue;
		fa_map_remove(map, cert->fingerprint,
		              strlen(cert->fingerprint));
		free(cert);
	}
}

/* Writes "carrier/load" into out; ids never contain '/'. */
static size_t load_key(char out[2 * FA_ID_MAX + 2], const char *carrier,
                       const char *load)
{
	size_t carrier_len = strnlen(carrier, FA_ID_MAX);
	size_t load_len = strnlen(load, FA_ID_MAX);

	memcpy(out, carrier, carrier_len);
	out[carrier_len] = '/';
	memcpy(out + carrier_len + 1, load, load_len);
	out[carrier_len + 1 + load_len] = '\0';
	return carrier_len + 1 + load_len;
}

static size_t load_size(const struct fa_load_rec *rec)
{
	const char *p = rec->data + rec->key_len + 1;

	for (uint32_t i = 0; i < rec->driver_count; i++)
		p += strlen(p) + 1;
	return (size_t)(p - rec->data);
}

static bool load_has_driver(const struct fa_load_rec *rec, const char *driver)
{
	const char *p = rec->data + rec->key_len + 1;

	for (uint32_t i = 0; i < rec->driver_count; i++) {
		if (strcmp(p, driver) == 0)
			return true;
		p += strlen(p) + 1;
	}
	return false;
}

/*
 * Adds driver to the load's record, growing the record by reallocation.
 * Loads usually have one or two drivers, so the record is one small block.
 */
fa_result fa_state_add_assignment(struct fa_state *state, const char *carrier,
                                  const char *load, const char *driver)
{
	char key[2 * FA_ID_MAX + 2];

	if (!fa_id_valid(carrier) || !fa_id_valid(load) || !fa_id_valid(driver))
		return FA_ERR_INVALID;

	size_t key_len = load_key(key, carrier, load);
	struct fa_load_rec *old = fa_map_get(&state->loads, key, key_len);
	size_t driver_len = strlen(driver);

	if (old != NULL && load_has_driver(old, driver))
		return FA_OK;

	size_t data_len = old ? load_size(old) : key_len + 1;
	struct fa_load_rec *rec =
	        malloc(sizeof(*rec) + data_len + driver_len + 1);

	if (rec == NULL)
		return FA_ERR_NOMEM;
	if (old != NULL) {
		memcpy(rec, old, sizeof(*rec) + data_len);
	} else {
		rec->key_len = (uint32_t)key_len;
		rec->driver_count = 0;
		memcpy(rec->data, key, key_len + 1);
	}
	memcpy(rec->data + data_len, driver, driver_len + 1);
	rec->driver_count++;
	return put_owned(&state->loads, rec);
}

void fa_state_remove_load(struct fa_state *state, const char *carrier,
                          const char *load)
{
	char key[2 * FA_ID_MAX + 2];
	size_t key_len = load_key(key, carrier, load);

	free(fa_map_remove(&state->loads, key, key_len));
}

fa_result fa_state_put_revoked(struct fa_map *map, const char *id,
                               int64_t expires_at)
{
	size_t len = strnlen(id, FA_ID_MAX + 1);

	if (len == 0 || len > FA_ID_MAX)
		return FA_ERR_INVALID;

	struct fa_revoked_rec *rec = calloc(1, sizeof(*rec) + len + 1);

	if (rec == NULL)
		return FA_ERR_NOMEM;
	memcpy(rec->id, id, len + 1);
	rec->expires_at = expires_at;
	return put_owned(map, rec);
}

void fa_state_remove_record(struct fa_map *map, const char *id)
{
	free(fa_map_remove(map, id, strlen(id)));
}

static struct fa_key_info *find_key(struct fa_state *state, const char *kid)
{
	for (size_t i = 0; i < state->key_count; i++) {
		if (strcmp(state->keys[i].kid, kid) == 0)
			return &state->keys[i];
	}
	return NULL;
}

/*
 * Adds a signing key to the keyring with its algorithm pinned. On error
 * writes the reason into err; the key is then left out, so tokens it
 * signed are rejected as unknown kid.
 */
fa_result fa_state_put_key(struct fa_state *state, const char *kid,
                           const char *alg, const char *pem,
                           int64_t publish_until, char *err, size_t err_size)
{
	enum fa_alg pinned;
	fa_result result;

	if (strcmp(alg, "RS256") == 0) {
		pinned = FA_ALG_RS256;
	} else if (strcmp(alg, "ES256") == 0) {
		pinned = FA_ALG_ES256;
	} else {
		snprintf(err, err_size, "signing key %s: unsupported alg", kid);
		return FA_ERR_INVALID;
	}
	if (!fa_id_valid(kid)) {
		snprintf(err, err_size, "signing key: invalid kid");
		return FA_ERR_INVALID;
	}
	result = fa_keyring_add_pem(state->ring, kid, pinned, pem);
	if (result != FA_OK) {
		snprintf(err, err_size, "signing key %s: %s", kid,
		         fa_result_str(result));
		return result;
	}

	struct fa_key_info *info = find_key(state, kid);

	if (info == NULL) {
		if (state->key_count == state->key_capacity) {
			size_t capacity = state->key_capacity
			                          ? 2 * state->key_capacity
			                          : 4;
			struct fa_key_info *keys =
			        realloc(state->keys, capacity * sizeof(*keys));

			if (keys == NULL) {
				fa_keyring_remove(state->ring, kid);
				return FA_ERR_NOMEM;
			}
			state->keys = keys;
			state->key_capacity = capacity;
		}
		info = &state->keys[state->key_count++];
		copy_id(info->kid, kid);
	}
	info->publish_until = publish_until;
	return FA_OK;
}

void fa_state_remove_key(struct fa_state *state, const char *kid)
{
	struct fa_key_info *info = find_key(state, kid);

	fa_keyring_remove(state->ring, kid);
	if (info == NULL)
		return;
	*info = state->keys[--state->key_count];
}

size_t fa_state_expire_keys(struct fa_state *state, int64_t now)
{
	size_t removed = 0;
	size_t i = 0;

	while (i < state->key_count) {
		struct fa_key_info *info = &state->keys[i];

		if (info->publish_until == 0 || info->publish_until > now) {
			i++;
			continue;
		}
		fa_keyring_remove(state->ring, info->kid);
		*info = state->keys[--state->key_count];
		removed++;
	}
	return removed;
}

static void expire_map(struct fa_map *map, int64_t now)
{
	for (size_t i = 0; i < map->capacity; i++) {
		struct fa_revoked_rec *rec = map->slots[i].record;

		if (map->slots[i].hash < 2 || rec->expires_at > now)
			continue;
		fa_map_remove(map, rec->id, strlen(rec->id));
		free(rec);
	}
}

/* Forgets revocations whose tokens have expired anyway. */
void fa_state_expire_revoked(struct fa_state *state, int64_t now)
{
	expire_map(&state->families, now);
	expire_map(&state->jtis, now);
}

/* fa_assignment_lookup over a struct fa_state. */
bool fa_state_assigned(void *ctx, const char *carrier, const char *load,
                       const char *driver)
{
	const struct fa_state *state = ctx;
	char key[2 * FA_ID_MAX + 2];

	if (strnlen(carrier, FA_ID_MAX + 1) > FA_ID_MAX ||
	    strnlen(load, FA_ID_MAX + 1) > FA_ID_MAX)
		return false;

	size_t key_len = load_key(key, carrier, load);
	const struct fa_load_rec *rec = fa_map_get(&state->loads, key, key_len);

	return rec != NULL && load_has_driver(rec, driver);
}
