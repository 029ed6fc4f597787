/*
 * Access-token verification with OpenSSL directly. Keys are parsed once into
 * a keyring; each check decodes the JWT, pins the algorithm to the key named
 * by kid, verifies the signature and then the time and audience claims.
 */
#ifndef FA_TOKEN_H
#define FA_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "fa_ids.h"
#include "fa_result.h"

#define FA_TOKEN_MAX_LEN 8192

enum fa_alg { FA_ALG_RS256 = 1, FA_ALG_ES256 = 2 };

enum fa_amr { FA_AMR_PWD = 1, FA_AMR_OTP = 2, FA_AMR_HWK = 4, FA_AMR_BIO = 8 };

enum fa_token_status {
	FA_TOKEN_OK = 0,
	FA_TOKEN_MALFORMED,   /* not three base64url parts of valid JSON */
	FA_TOKEN_TOO_LONG,    /* longer than FA_TOKEN_MAX_LEN */
	FA_TOKEN_BAD_ALG,     /* alg none, HS*, or not the key's algorithm */
	FA_TOKEN_UNKNOWN_KID, /* no key with that kid in the keyring */
	FA_TOKEN_BAD_SIGNATURE,
	FA_TOKEN_EXPIRED,
	FA_TOKEN_NOT_YET_VALID, /* nbf or iat in the future beyond leeway */
	FA_TOKEN_BAD_ISSUER,
	FA_TOKEN_BAD_AUDIENCE,
	FA_TOKEN_BAD_CLAIMS /* a required claim missing or invalid */
};

/* Short lower-case text for logs, for example "expired". */
const char *fa_token_status_str(enum fa_token_status status);

struct fa_keyring;

struct fa_keyring *fa_keyring_new(void);
void fa_keyring_free(struct fa_keyring *ring);

/* Parses a PEM public key (SubjectPublicKeyInfo) and adds or replaces it
 * under kid. RS256 needs an RSA key of at least 2048 bits, ES256 a P-256
 * key; anything else is FA_ERR_INVALID. */
fa_result fa_keyring_add_pem(struct fa_keyring *ring, const char *kid,
                             enum fa_alg alg, const char *pem);

/* Removes kid; FA_ERR_NOT_FOUND if it was not there. */
fa_result fa_keyring_remove(struct fa_keyring *ring, const char *kid);

size_t fa_keyring_count(const struct fa_keyring *ring);

struct fa_verify_options {
	const char *issuer;
	const char *audience;
	int64_t now;      /* seconds since the epoch */
	int leeway;       /* seconds allowed on exp, nbf and iat */
	int max_lifetime; /* seconds; larger exp - iat is rejected; 0: none */
};

struct fa_token_claims {
	char sub[FA_ID_MAX + 1];
	char carrier[FA_ID_MAX + 1]; /* empty when absent */
	char role[32];
	char jti[FA_ID_MAX + 1];
	char fam[FA_ID_MAX + 1]; /* empty when absent */
	char did[FA_ID_MAX + 1]; /* empty when absent */
	char kid[FA_ID_MAX + 1];
	unsigned amr; /* bit set of enum fa_amr */
	int64_t exp;
	int64_t nbf;
	int64_t iat;
};

/*
 * Verifies token (len bytes, need not be NUL-terminated) against ring.
 * claims is filled only on FA_TOKEN_OK. sub, jti, fam, did and carrier must
 * satisfy fa_id_valid() when present; sub, jti, exp, iat and role are
 * required. role must be a known role name; carrier must be present for
 * carrier roles and absent for system_admin and system_operator. A header
 * without a string kid, with a typ other than "at+jwt", with "crit", or with a
 * repeated member is FA_TOKEN_MALFORMED. issuer and audience in options are
 * required; NULL matches no token.
 *
 * Thread-safe for concurrent calls on one ring that is not being modified:
 * each call verifies with its own duplicate of the key's prepared
 * EVP_PKEY_CTX, because EVP_PKEY_verify writes to its context, and keeps no
 * per-thread state. fa_keyring_add_pem and fa_keyring_remove must not run
 * concurrently with anything else on the same ring.
 */
enum fa_token_status fa_token_verify(const struct fa_keyring *ring,
                                     const char *token, size_t len,
                                     const struct fa_verify_options *options,
                                     struct fa_token_claims *claims);

#endif
