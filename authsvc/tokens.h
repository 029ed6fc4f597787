/*
 * Access tokens: compact JWS (header alg, kid, typ "at+jwt") signed with
 * the current signing key through OpenSSL EVP, with the claims listed in
 * docs/tokens.md. Also the random identifiers and opaque secrets that the
 * auth module hands out.
 *
 * libjwt 1.10 is not used for signing because its encoder always replaces
 * the "typ" header with "JWT", and verification requires "at+jwt".
 */
#ifndef FA_TOKENS_H
#define FA_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "fa_result.h"
#include "service.h"

/* 16 random bytes in base64url: a valid fa_id of 22 characters. */
#define FA_RANDOM_ID_LEN 22
/* 32 random bytes in base64url. */
#define FA_SECRET_B64_LEN 43

/* Claims of one access token. Strings are borrowed. */
struct fa_access_claims {
	const char *sub;
	enum fa_role role;
	const char *carrier; /* NULL or "" for platform roles */
	unsigned amr;        /* bit set of enum fa_amr */
	const char *fam;     /* refresh family id */
	const char *did;     /* bound device id, NULL or "" when none */
};

/* Writes FA_RANDOM_ID_LEN base64url characters and a NUL into out. */
fa_result fa_random_id(char out[FA_RANDOM_ID_LEN + 1]);

/*
 * Writes prefix followed by the base64url form of 32 random bytes into out
 * (size out_size) and the SHA-256 of the whole string into hash. Used for
 * refresh tokens ("frt_") and MFA tokens (no prefix).
 */
fa_result fa_random_secret(const char *prefix, char *out, size_t out_size,
                           uint8_t hash[FA_SHA256_LEN]);

/* Writes the lower-case hex of a SHA-256 hash as a bytea literal
 * ("\x...") for a text-format query parameter. out has room for 67 bytes. */
void fa_bytea_hex(const uint8_t hash[FA_SHA256_LEN], char out[67]);

/*
 * Signs an access token for claims with the current signing key, valid for
 * access_token_ttl seconds. *token_out is malloc'd and owned by the caller
 * (free it, do not log it). Returns FA_ERR_NOT_FOUND when the database has
 * no current signing key, FA_ERR_IO when it is unreachable, FA_ERR_CRYPTO
 * when signing fails.
 */
fa_result fa_access_token_issue(struct fa_service *svc, PGconn *db,
                                const struct fa_access_claims *claims,
                                char **token_out);

#endif
