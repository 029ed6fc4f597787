/*
 * Fuzzes fa_token_verify. The first input byte picks the mode:
 *
 *   bit 0 clear: the rest is a token as received. Its signature cannot be
 *                valid (the keys are generated at start), so verification
 *                must never succeed.
 *   bit 0 set:   the rest is "header JSON\nclaims JSON". The harness encodes
 *                both parts and signs them with the keyring's ES256 key (bit
 *                1 clear) or RS256 key (bit 1 set), so the claim checks run.
 *                A token that verifies must satisfy every documented claim
 *                rule.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "fa_crypto.h"
#include "fa_ids.h"
#include "fa_roles.h"
#include "fa_token.h"
#include "fuzz_check.h"

#define NOW 1700000000
#define LEEWAY 30
#define MAX_LIFETIME 3600
#define PART_MAX 4096

static struct fa_keyring *ring;
static EVP_PKEY *es_key;
static EVP_PKEY *rs_key;

static void add_public_key(EVP_PKEY *key, const char *kid, enum fa_alg alg)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long len;
	char *copy;

	FUZZ_CHECK(bio != NULL && PEM_write_bio_PUBKEY(bio, key) == 1);
	len = BIO_get_mem_data(bio, &pem);
	copy = strndup(pem, (size_t)len);
	FUZZ_CHECK(copy != NULL);
	FUZZ_CHECK(fa_keyring_add_pem(ring, kid, alg, copy) == FA_OK);
	free(copy);
	BIO_free(bio);
}

static void init_keys(void)
{
	if (ring != NULL)
		return;
	ring = fa_keyring_new();
	es_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	rs_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	FUZZ_CHECK(ring != NULL && es_key != NULL && rs_key != NULL);
	add_public_key(es_key, "k-es", FA_ALG_ES256);
	add_public_key(rs_key, "k-rs", FA_ALG_RS256);
}

/* Signs input with key and writes the JWS signature (raw r || s for EC)
 * base64url-encoded into out. Returns its length, 0 on failure. */
static size_t sign_part(EVP_PKEY *key, const char *input, size_t len, char *out,
                        size_t out_size)
{
	uint8_t der[600];
	uint8_t raw[64];
	size_t der_len = sizeof(der);
	const uint8_t *sig = der;
	size_t sig_len;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	FUZZ_CHECK(md != NULL);
	FUZZ_CHECK(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1);
	FUZZ_CHECK(EVP_DigestSign(md, der, &der_len, (const uint8_t *)input,
	                          len) == 1);
	EVP_MD_CTX_free(md);
	sig_len = der_len;
	if (key == es_key) {
		const uint8_t *p = der;
		ECDSA_SIG *ecdsa = d2i_ECDSA_SIG(NULL, &p, (long)der_len);

		FUZZ_CHECK(ecdsa != NULL);
		BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa), raw, 32);
		BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa), raw + 32, 32);
		ECDSA_SIG_free(ecdsa);
		sig = raw;
		sig_len = sizeof(raw);
	}
	return fa_b64url_encode(sig, sig_len, out, out_size);
}

/* Builds a signed token from "header\nclaims" into a malloc'd buffer. */
static char *make_signed(const uint8_t *data, size_t size, bool rsa,
                         size_t *token_len)
{
	const uint8_t *newline = memchr(data, '\n', size);
	size_t header_len = newline ? (size_t)(newline - data) : size;
	size_t claims_len = newline ? size - header_len - 1 : 0;
	size_t cap = 2 * (header_len + claims_len) + 1024;
	char *token = NULL;
	size_t len;

	*token_len = 0;
	if (header_len > PART_MAX || claims_len > PART_MAX)
		return NULL;
	token = malloc(cap);
	FUZZ_CHECK(token != NULL);
	len = fa_b64url_encode(data, header_len, token, cap);
	token[len++] = '.';
	len += fa_b64url_encode(newline ? newline + 1 : data, claims_len,
	                        token + len, cap - len);
	token[len] = '.';
	len += 1 + sign_part(rsa ? rs_key : es_key, token, len, token + len + 1,
	                     cap - len - 1);
	*token_len = len;
	return token;
}

/* Every rule that fa_token.h promises for a token that verified. */
static void check_claims(const struct fa_token_claims *c)
{
	enum fa_role role = fa_role_parse(c->role);

	FUZZ_CHECK(fa_id_valid(c->sub));
	FUZZ_CHECK(fa_id_valid(c->jti));
	FUZZ_CHECK(c->fam[0] == '\0' || fa_id_valid(c->fam));
	FUZZ_CHECK(c->did[0] == '\0' || fa_id_valid(c->did));
	FUZZ_CHECK(strcmp(c->kid, "k-es") == 0 || strcmp(c->kid, "k-rs") == 0);
	FUZZ_CHECK(role != FA_ROLE_NONE);
	if (fa_role_is_carrier_role(role))
		FUZZ_CHECK(fa_id_valid(c->carrier));
	if (role == FA_ROLE_SYSTEM_ADMIN || role == FA_ROLE_SYSTEM_OPERATOR)
		FUZZ_CHECK(c->carrier[0] == '\0');
	FUZZ_CHECK(c->exp + LEEWAY >= NOW);
	FUZZ_CHECK(c->iat - LEEWAY <= NOW);
	FUZZ_CHECK(c->nbf - LEEWAY <= NOW);
	FUZZ_CHECK(c->exp - c->iat <= MAX_LIFETIME);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fa_verify_options options = {
	        .issuer = "fleetauth",
	        .audience = "fleetauth-mqtt",
	        .now = NOW,
	        .leeway = LEEWAY,
	        .max_lifetime = MAX_LIFETIME,
	};
	struct fa_token_claims claims;
	enum fa_token_status status;
	char *token = NULL;
	size_t len = 0;
	uint8_t mode;

	if (size == 0)
		return 0;
	init_keys();
	mode = data[0];
	data++;
	size--;
	if (mode & 1) {
		token = make_signed(data, size, (mode & 2) != 0, &len);
		if (token == NULL)
			return 0;
	} else {
		/* An exact-size copy without a NUL, so that a read past len
		 * is caught by AddressSanitizer. */
		token = malloc(size > 0 ? size : 1);
		FUZZ_CHECK(token != NULL);
		memcpy(token, data, size);
		len = size;
	}
	memset(&claims, 0, sizeof(claims));
	status = fa_token_verify(ring, token, len, &options, &claims);
	FUZZ_CHECK(fa_token_status_str(status) != NULL);
	if (status == FA_TOKEN_OK) {
		FUZZ_CHECK(mode & 1);
		check_claims(&claims);
	}
	free(token);
	return 0;
}
