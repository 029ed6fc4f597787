/*
 * Device module of fleetauthd: devices and their certificates
 * (devices.c), biometric device keys (device_keys.c) and API keys
 * (api_keys.c). The routes are in device_routes.c.
 */
#ifndef FA_DEVICES_H
#define FA_DEVICES_H

#include <stdbool.h>
#include <stddef.h>

#include "service.h"

/* SQL expression that formats a timestamptz column as RFC 3339 UTC. */
#define FA_SQL_TIME(column)                                                    \
	"to_char(" column " AT TIME ZONE 'UTC', "                              \
	"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* Failed attempts per client address and action before a 429, and the
 * window in seconds they are counted in. */
#define FA_DEVICE_THROTTLE_FAILURES 20
#define FA_DEVICE_THROTTLE_WINDOW 900

/* devices.c */
void fa_devices_create(struct fa_request *req);
void fa_devices_new_code(struct fa_request *req);
void fa_devices_enroll(struct fa_request *req);
void fa_devices_renew(struct fa_request *req);
void fa_devices_list(struct fa_request *req);
void fa_devices_get(struct fa_request *req);
void fa_devices_revoke(struct fa_request *req);
void fa_ca_get_certificate(struct fa_request *req);
void fa_ca_get_crl(struct fa_request *req);

/* device_keys.c */
void fa_device_keys_register(struct fa_request *req);
void fa_device_keys_list(struct fa_request *req);
void fa_device_keys_revoke(struct fa_request *req);
void fa_device_keys_challenge(struct fa_request *req);
void fa_device_keys_verify(struct fa_request *req);

/* api_keys.c */
void fa_api_keys_create(struct fa_request *req);
void fa_api_keys_list(struct fa_request *req);
void fa_api_keys_revoke(struct fa_request *req);

/*
 * Writes prefix followed by chars random characters of the lower-case
 * RFC 4648 base32 alphabet (5 bits each) into out. Fails with
 * FA_ERR_TOO_LARGE when out is too small.
 */
fa_result fa_device_random_id(const char *prefix, size_t chars, char *out,
                              size_t out_size);

/* Writes the SHA-256 of text as a bytea literal ("\x" and 64 hex digits)
 * for a text query parameter; out has room for 67 bytes. */
void fa_device_hash_param(const char *text, char out[67]);

/*
 * Returns true when the client address may try action again. Otherwise
 * replies 429 with Retry-After and returns false. Counts live in
 * login_failures under the key "<action>:<address>".
 */
bool fa_device_throttle_check(struct fa_request *req, const char *action);

/* Counts one failed attempt of action from the client address. */
void fa_device_throttle_fail(struct fa_request *req, const char *action);

/* Adds a string member, or JSON null when value is NULL. */
void fa_json_add_nullable(cJSON *object, const char *name, const char *value);

#endif
