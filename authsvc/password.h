/*
 * Password hashing with bcrypt ($2b$, libxcrypt) and the password policy.
 *
 * bcrypt reads at most 72 bytes of its input. A password longer than that is
 * first reduced to base64(HMAC-SHA-256(key, password)), 44 characters, so
 * every byte of it counts; shorter passwords go to bcrypt unchanged.
 */
#ifndef FA_PASSWORD_H
#define FA_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#include "fa_result.h"

#define FA_PASSWORD_MIN_LEN 12
#define FA_PASSWORD_MAX_LEN 1024
/* Inputs longer than this are pre-hashed before bcrypt. */
#define FA_PASSWORD_BCRYPT_MAX 72

/*
 * Hashes password with a fresh 16-byte salt at the given bcrypt cost
 * (4 to 31). *hash_out is a malloc'd "$2b$..." string owned by the caller.
 * Returns FA_ERR_INVALID for a bad cost, a password that contains no bytes
 * or more than FA_PASSWORD_MAX_LEN bytes, FA_ERR_CRYPTO if libxcrypt fails.
 */
fa_result fa_password_hash(const char *password, int cost, char **hash_out);

/*
 * Checks password against a stored "$2b$" hash. *ok is true only on a
 * match; the hash outputs are compared in constant time. Returns FA_OK
 * whenever the check ran (match or not), FA_ERR_INVALID when hash is not a
 * bcrypt hash, FA_ERR_CRYPTO when libxcrypt fails.
 */
fa_result fa_password_verify(const char *password, const char *hash, bool *ok);

/*
 * Runs one bcrypt check of password against a fixed hash of the given cost
 * and discards the result. Used for unknown users so that the response
 * takes as long as it does for a known user with a wrong password.
 */
void fa_password_verify_dummy(const char *password, int cost);

/*
 * Applies the policy for a new password: at least FA_PASSWORD_MIN_LEN
 * UTF-8 characters, at most FA_PASSWORD_MAX_LEN bytes, and not on the
 * built-in list of common passwords (compared case-insensitively).
 * A C string cannot carry a NUL, so callers that take a length must
 * reject embedded NULs before calling. On failure writes a message for
 * the user into err and returns FA_ERR_INVALID.
 */
fa_result fa_password_check_policy(const char *password, char *err,
                                   size_t err_size);

#endif
