/*
 * RFC 6238 TOTP with liboath: 20-byte seeds, SHA-1, 6 digits, 30-second
 * steps, one step of drift either way. A step is accepted only when it is
 * above the last accepted step, so a code cannot be used twice.
 */
#ifndef FA_TOTP_H
#define FA_TOTP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "fa_result.h"
#include "service.h"

#define FA_TOTP_SEED_LEN 20
#define FA_TOTP_DIGITS 6
#define FA_TOTP_STEP 30
/* base32 of 20 bytes is 32 characters. */
#define FA_TOTP_BASE32_MAX 33

/*
 * Fills seed with random bytes and writes its base32 form (no padding)
 * into base32 (size FA_TOTP_BASE32_MAX).
 */
fa_result fa_totp_new_seed(uint8_t seed[FA_TOTP_SEED_LEN],
                           char base32[FA_TOTP_BASE32_MAX]);

/*
 * Builds "otpauth://totp/ISSUER:USER?secret=...&issuer=ISSUER&..." for
 * authenticator apps. issuer and user are percent-encoded. *uri_out is
 * malloc'd, owned by the caller and contains the secret: wipe it after use.
 */
fa_result fa_totp_uri(const char *issuer, const char *user, const char *base32,
                      char **uri_out);

/*
 * Checks a 6-digit code against the steps now - 1, now and now + 1 that are
 * above last_step. Each candidate is compared in constant time and all of
 * them are computed, match or not. On a match sets *step_out to the matched
 * step and returns FA_OK; returns FA_ERR_DENIED for a wrong or replayed
 * code, FA_ERR_INVALID for a code that is not six digits, FA_ERR_CRYPTO if
 * liboath fails.
 */
fa_result fa_totp_check(const uint8_t *seed, size_t seed_len, time_t now,
                        const char *code, int64_t last_step, int64_t *step_out);

/* Label of the account in authenticator apps. */
#define FA_TOTP_ISSUER "fleetauth"

/*
 * Seals seed under the current KEK with aad "totp:<user>". *hex_out is a
 * bytea literal ("\x...") for a text query parameter, malloc'd and owned by
 * the caller.
 */
fa_result fa_totp_seal_seed(const struct fa_service *svc, const char *user,
                            const uint8_t seed[FA_TOTP_SEED_LEN],
                            char **hex_out);

/*
 * Opens the sealed seed of user (a bytea column in text form) with the KEK
 * named kek_id and writes it to seed. Returns FA_ERR_NOT_FOUND when that
 * KEK is not loaded and FA_ERR_CRYPTO when the blob does not open.
 */
fa_result fa_totp_open_seed(const struct fa_service *svc, const char *user,
                            const char *kek_id, const char *sealed_text,
                            uint8_t seed[FA_TOTP_SEED_LEN]);

/* Handlers of POST /v1/mfa/totp/enroll and POST /v1/mfa/totp/confirm. */
void fa_handle_totp_enroll(struct fa_request *req);
void fa_handle_totp_confirm(struct fa_request *req);

#endif
