/*
 * Token-signing keys: creation (generated or imported), sealed storage in
 * signing_keys, rotation with an overlap, the in-memory copy of the current
 * private key, the JWKS document and the HTTP handlers for them.
 */
#ifndef FA_SIGNING_KEYS_H
#define FA_SIGNING_KEYS_H

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "fa_result.h"
#include "service.h"

/*
 * Seconds added to access_token_ttl for the time a previous key stays
 * published after a rotation. It must be at least the leeway that token
 * verification allows on exp.
 */
#define FA_SIGNING_KEY_OVERLAP_EXTRA 60

/*
 * Returns the current signing key in *key_out (a new reference: the caller
 * frees it with EVP_PKEY_free), its algorithm and kid. Each call reads the
 * current kid from the database (one indexed row), so a rotation made by
 * another replica is picked up on the next token. The private key is
 * opened with its KEK only when the kid changes, and is otherwise served
 * from memory. Returns FA_ERR_NOT_FOUND when there is no current key,
 * FA_ERR_IO when the database is unreachable and FA_ERR_CRYPTO when the
 * key cannot be opened or parsed.
 */
fa_result fa_signing_key_current(struct fa_service *svc, PGconn *db,
                                 EVP_PKEY **key_out, enum fa_alg *alg,
                                 char kid[FA_ID_MAX + 1]);

/* Opens the current signing key like fa_signing_key_current and drops it,
 * for start-up and readiness checks. kid is filled when the row exists. */
fa_result fa_signing_key_check(struct fa_service *svc, PGconn *db,
                               char kid[FA_ID_MAX + 1]);

/*
 * Runs the module's periodic work, at most once a minute per process and
 * only when db is outside a transaction: retires previous keys whose
 * publish_until has passed and deletes stale login_failures rows and
 * expired MFA challenges (fa_throttle_prune). Failures are logged and
 * retried on a later call. The login, refresh and JWKS handlers call it,
 * so a replica that serves none of them does no housekeeping.
 */
void fa_auth_housekeeping(struct fa_service *svc, PGconn *db);

/*
 * Marks previous keys whose publish_until has passed as retired. Returns
 * FA_OK or the fa_db_* error.
 */
fa_result fa_signing_keys_retire_expired(struct fa_service *svc, PGconn *db);

/* Handlers of POST /v1/signing-keys/rotate, GET /v1/signing-keys and
 * GET /.well-known/jwks.json. */
void fa_handle_signing_key_rotate(struct fa_request *req);
void fa_handle_signing_key_list(struct fa_request *req);
void fa_handle_jwks(struct fa_request *req);

#endif
