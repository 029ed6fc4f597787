/*
 * Token verification tests. Keys are generated with OpenSSL when the test
 * starts and every token is signed here, with EVP or with libjwt.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "fa_crypto.h"
#include "fa_token.h"

#define NOW 1800000000LL
#define ISSUER "https://auth.fleet.test"
#define AUDIENCE "fleet-mqtt"

static EVP_PKEY *rsa_key;
static EVP_PKEY *rsa_other;
static EVP_PKEY *ec_key;
static char *rsa_pem;
static char *ec_pem;
static struct fa_keyring *ring;

static const struct fa_verify_options options = {
        .issuer = ISSUER,
        .audience = AUDIENCE,
        .now = NOW,
        .leeway = 30,
        .max_lifetime = 3600,
};

/* Key helpers ------------------------------------------------------------ */

/* Returns the PEM of pkey (public or private); the caller frees it. */
static char *key_to_pem(EVP_PKEY *pkey, int private_key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	char *pem = NULL;
	long len = 0;

	assert_non_null(bio);
	if (private_key)
		assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL,
		                                          0, NULL, NULL),
		                 1);
	else
		assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
	len = BIO_get_mem_data(bio, &data);
	pem = malloc((size_t)len + 1);
	assert_non_null(pem);
	memcpy(pem, data, (size_t)len);
	pem[len] = '\0';
	BIO_free(bio);
	return pem;
}

static int setup_keys(void **state)
{
	(void)state;
	rsa_key = EVP_RSA_gen(2048);
	rsa_other = EVP_RSA_gen(2048);
	ec_key = EVP_EC_gen("P-256");
	if (rsa_key == NULL || rsa_other == NULL || ec_key == NULL)
		return -1;
	rsa_pem = key_to_pem(rsa_key, 0);
	ec_pem = key_to_pem(ec_key, 0);
	ring = fa_keyring_new();
	if (ring == NULL)
		return -1;
	if (fa_keyring_add_pem(ring, "rsa-1", FA_ALG_RS256, rsa_pem) != FA_OK)
		return -1;
	if (fa_keyring_add_pem(ring, "ec-1", FA_ALG_ES256, ec_pem) != FA_OK)
		return -1;
	return 0;
}

static int teardown_keys(void **state)
{
	(void)state;
	fa_keyring_free(ring);
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(rsa_other);
	EVP_PKEY_free(ec_key);
	free(rsa_pem);
	free(ec_pem);
	return 0;
}

/* Token building --------------------------------------------------------- */

enum signer { SIGN_RS256, SIGN_ES256, SIGN_HS256, SIGN_NONE };

static size_t b64(const void *data, size_t len, char *out, size_t size)
{
	size_t n = fa_b64url_encode(data, len, out, size);

	assert_true(n > 0 || len == 0);
	return n;
}

/* Signs input with key; for ES256 the DER signature is turned into the
 * raw r || s form that JWS uses. */
static size_t sign_input(enum signer signer, EVP_PKEY *key, const char *input,
                         uint8_t *sig, size_t sig_size)
{
	EVP_MD_CTX *ctx = NULL;
	uint8_t der[128];
	size_t der_len = sizeof(der);
	unsigned int hmac_len = 0;

	if (signer == SIGN_NONE)
		return 0;
	if (signer == SIGN_HS256) {
		/* The classic confusion attack: the RSA public key PEM used
		 * as an HMAC secret. */
		assert_non_null(HMAC(
		        EVP_sha256(), rsa_pem, (int)strlen(rsa_pem),
		        (const uint8_t *)input, strlen(input), sig, &hmac_len));
		return hmac_len;
	}
	ctx = EVP_MD_CTX_new();
	assert_non_null(ctx);
	assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key),
	                 1);
	if (signer == SIGN_RS256) {
		size_t len = sig_size;
		assert_int_equal(EVP_DigestSign(ctx, sig, &len,
		                                (const uint8_t *)input,
		                                strlen(input)),
		                 1);
		EVP_MD_CTX_free(ctx);
		return len;
	}
	assert_int_equal(EVP_DigestSign(ctx, der, &der_len,
	                                (const uint8_t *)input, strlen(input)),
	                 1);
	EVP_MD_CTX_free(ctx);
	const uint8_t *p = der;
	ECDSA_SIG *ecdsa = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	assert_non_null(ecdsa);
	assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa), sig, 32), 32);
	assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa), sig + 32, 32),
	                 32);
	ECDSA_SIG_free(ecdsa);
	return 64;
}

/* Builds base64url(header).base64url(payload).signature into out. */
static void make_token(char *out, size_t size, const char *header,
                       const char *payload, enum signer signer, EVP_PKEY *key)
{
	char *input = malloc(size);
	uint8_t sig[512];
	size_t n = 0;

	assert_non_null(input);
	n = b64(header, strlen(header), input, size);
	input[n++] = '.';
	n += b64(payload, strlen(payload), input + n, size - n);
	size_t sig_len = sign_input(signer, key, input, sig, sizeof(sig));
	assert_true(n + 2 < size);
	memcpy(out, input, n);
	out[n++] = '.';
	b64(sig, sig_len, out + n, size - n);
	if (sig_len == 0)
		out[n] = '\0';
	free(input);
}

/* Default claims; each may be left out or replaced by a test. */
struct claim {
	const char *name;
	const char *json;
};

static const struct claim default_claims[] = {
        {"iss", "\"" ISSUER "\""}, {"aud", "\"" AUDIENCE "\""},
        {"sub", "\"drv-ann\""},    {"role", "\"driver\""},
        {"carrier", "\"acme\""},   {"amr", "[\"pwd\",\"otp\"]"},
        {"fam", "\"fam-1\""},      {"did", "\"phone-1\""},
        {"iat", "1799999940"},     {"nbf", "1799999940"},
        {"exp", "1800000840"},     {"jti", "\"jti-0001\""},
};

/* Returns the override for name, or NULL when there is none. */
static const struct claim *find_override(const struct claim *overrides,
                                         size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++) {
		if (strcmp(overrides[i].name, name) == 0)
			return &overrides[i];
	}
	return NULL;
}

/* Writes the default payload with each override applied: a claim with a
 * NULL json is left out, and a name not among the defaults is added. */
static void payload_with_claims(char *out, size_t size,
                                const struct claim *overrides, size_t count)
{
	size_t defaults = sizeof(default_claims) / sizeof(*default_claims);
	size_t n = 0;

	n += (size_t)snprintf(out + n, size - n, "{");
	for (size_t i = 0; i < defaults; i++) {
		const struct claim *c = &default_claims[i];
		const struct claim *o =
		        find_override(overrides, count, c->name);
		const char *value = o != NULL ? o->json : c->json;
		if (value == NULL)
			continue;
		n += (size_t)snprintf(out + n, size - n, "%s\"%s\":%s",
		                      n > 1 ? "," : "", c->name, value);
	}
	for (size_t i = 0; i < count; i++) {
		const struct claim *o = &overrides[i];
		if (o->json == NULL ||
		    find_override(default_claims, defaults, o->name) != NULL)
			continue;
		n += (size_t)snprintf(out + n, size - n, ",\"%s\":%s", o->name,
		                      o->json);
	}
	snprintf(out + n, size - n, "}");
}

/* Writes the default payload with claim name replaced by json (NULL: left
 * out). A name not among the defaults is added. */
static void payload_with(char *out, size_t size, const char *name,
                         const char *json)
{
	const struct claim override = {name, json};

	payload_with_claims(out, size, &override, name != NULL ? 1 : 0);
}

/* Writes text at offset at of out (size bytes), failing the test when it
 * does not fit. */
static void write_at(char *out, size_t size, size_t at, const char *text)
{
	size_t len = strlen(text);

	assert_true(at + len < size);
	memcpy(out + at, text, len + 1);
}

/* Replaces the closing brace of the JSON object in out with tail. */
static void replace_closing_brace(char *out, size_t size, const char *tail)
{
	size_t len = strlen(out);

	assert_true(len > 0);
	assert_int_equal(out[len - 1], '}');
	write_at(out, size, len - 1, tail);
}

#define RS_HEADER "{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"typ\":\"at+jwt\"}"
#define ES_HEADER "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"typ\":\"at+jwt\"}"

static enum fa_token_status verify_str(const char *token,
                                       struct fa_token_claims *claims)
{
	return fa_token_verify(ring, token, strlen(token), &options, claims);
}

/* Signs the default payload with one claim changed using RS256 and returns
 * the verification status. */
static enum fa_token_status verify_claim(const char *name, const char *json)
{
	char payload[1024];
	char token[4096];
	struct fa_token_claims claims;

	payload_with(payload, sizeof(payload), name, json);
	make_token(token, sizeof(token), RS_HEADER, payload, SIGN_RS256,
	           rsa_key);
	return verify_str(token, &claims);
}

static enum fa_token_status verify_header(const char *header,
                                          enum signer signer, EVP_PKEY *key)
{
	char payload[1024];
	char token[4096];
	struct fa_token_claims claims;

	payload_with(payload, sizeof(payload), NULL, NULL);
	make_token(token, sizeof(token), header, payload, signer, key);
	return verify_str(token, &claims);
}

/* Valid tokens ----------------------------------------------------------- */

static void token_valid_rs256(void **state)
{
	(void)state;
	char payload[1024];
	char token[4096];
	struct fa_token_claims claims;

	payload_with(payload, sizeof(payload), NULL, NULL);
	make_token(token, sizeof(token), RS_HEADER, payload, SIGN_RS256,
	           rsa_key);
	assert_int_equal(verify_str(token, &claims), FA_TOKEN_OK);
	assert_string_equal(claims.sub, "drv-ann");
	assert_string_equal(claims.carrier, "acme");
	assert_string_equal(claims.role, "driver");
	assert_string_equal(claims.jti, "jti-0001");
	assert_string_equal(claims.fam, "fam-1");
	assert_string_equal(claims.did, "phone-1");
	assert_string_equal(claims.kid, "rsa-1");
	assert_int_equal(claims.amr, FA_AMR_PWD | FA_AMR_OTP);
	assert_int_equal(claims.exp, 1800000840LL);
	assert_int_equal(claims.iat, 1799999940LL);
	assert_int_equal(claims.nbf, 1799999940LL);
}

static void token_valid_es256(void **state)
{
	(void)state;
	char payload[1024];
	char token[4096];
	struct fa_token_claims claims;

	payload_with(payload, sizeof(payload), "amr", "[\"hwk\",\"bio\"]");
	make_token(token, sizeof(token), ES_HEADER, payload, SIGN_ES256,
	           ec_key);
	assert_int_equal(verify_str(token, &claims), FA_TOKEN_OK);
	assert_string_equal(claims.kid, "ec-1");
	assert_int_equal(claims.amr, FA_AMR_HWK | FA_AMR_BIO);
}

static void token_optional_parts(void **state)
{
	(void)state;

	/* typ may be absent or the full media type; fam, did, nbf and amr
	 * may be absent; aud may be an array. */
	assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}",
	                               SIGN_RS256, rsa_key),
	                 FA_TOKEN_OK);
	assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":\"rsa-1\","
	                               "\"typ\":\"application/AT+JWT\"}",
	                               SIGN_RS256, rsa_key),
	                 FA_TOKEN_OK);
	assert_int_equal(verify_claim("fam", NULL), FA_TOKEN_OK);
	assert_int_equal(verify_claim("did", NULL), FA_TOKEN_OK);
	assert_int_equal(verify_claim("nbf", NULL), FA_TOKEN_OK);
	assert_int_equal(verify_claim("amr", NULL), FA_TOKEN_OK);
	assert_int_equal(verify_claim("aud", "[\"other\",\"" AUDIENCE "\"]"),
	                 FA_TOKEN_OK);
	/* A platform role has no carrier. */
	const struct claim platform[] = {{"role", "\"system_operator\""},
	                                 {"carrier", NULL}};
	char payload[1024];
	char token[4096];
	struct fa_token_claims claims;
	payload_with_claims(payload, sizeof(payload), platform, 2);
	make_token(token, sizeof(token), RS_HEADER, payload, SIGN_RS256,
	           rsa_key);
	assert_int_equal(verify_str(token, &claims), FA_TOKEN_OK);
	assert_string_equal(claims.role, "system_operator");
	assert_string_equal(claims.carrier, "");
}

/*
 * Checks both directions against libjwt 1.10, whose typ handling differs:
 * it rejects any typ other than "JWT" when decoding, and when encoding it
 * writes "typ": "JWT" over the caller's value. So its decoder gets a token
 * without typ, and a token it signs must be rejected as malformed.
 */
static void token_libjwt_interop(void **state)
{
	(void)state;
	char *private_pem = key_to_pem(rsa_key, 1);
	char payload[1024];
	char evp_token[4096];
	struct fa_token_claims claims;
	jwt_t *jwt = NULL;
	jwt_t *decoded = NULL;
	char *token = NULL;

	payload_with(payload, sizeof(payload), NULL, NULL);
	make_token(evp_token, sizeof(evp_token), RS_HEADER, payload, SIGN_RS256,
	           rsa_key);
	assert_int_equal(jwt_decode(&decoded, evp_token,
	                            (const unsigned char *)rsa_pem,
	                            (int)strlen(rsa_pem)),
	                 EINVAL);
	assert_null(decoded);
	make_token(evp_token, sizeof(evp_token),
	           "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", payload, SIGN_RS256,
	           rsa_key);
	assert_int_equal(verify_str(evp_token, &claims), FA_TOKEN_OK);
	assert_int_equal(jwt_decode(&decoded, evp_token,
	                            (const unsigned char *)rsa_pem,
	                            (int)strlen(rsa_pem)),
	                 0);
	assert_string_equal(jwt_get_grant(decoded, "sub"), "drv-ann");
	jwt_free(decoded);

	assert_int_equal(jwt_new(&jwt), 0);
	assert_int_equal(jwt_add_grants_json(jwt, payload), 0);
	assert_int_equal(jwt_add_header(jwt, "kid", "rsa-1"), 0);
	assert_int_equal(jwt_add_header(jwt, "typ", "at+jwt"), 0);
	assert_int_equal(jwt_set_alg(jwt, JWT_ALG_RS256,
	                             (const unsigned char *)private_pem,
	                             (int)strlen(private_pem)),
	                 0);
	token = jwt_encode_str(jwt);
	assert_non_null(token);
	assert_string_equal(jwt_get_header(jwt, "typ"), "JWT");
	assert_int_equal(verify_str(token, &claims), FA_TOKEN_MALFORMED);
	free(token);
	jwt_free(jwt);
	fa_wipe(private_pem, strlen(private_pem));
	free(private_pem);
}

/* Algorithm and key ------------------------------------------------------ */

static void token_alg_none_rejected(void **state)
{
	(void)state;

	assert_int_equal(verify_header("{\"alg\":\"none\",\"kid\":\"rsa-1\"}",
	                               SIGN_NONE, NULL),
	                 FA_TOKEN_BAD_ALG);
	assert_int_equal(verify_header("{\"alg\":\"none\",\"kid\":\"rsa-1\"}",
	                               SIGN_RS256, rsa_key),
	                 FA_TOKEN_BAD_ALG);
	assert_int_equal(verify_header("{\"alg\":\"None\",\"kid\":\"rsa-1\"}",
	                               SIGN_NONE, NULL),
	                 FA_TOKEN_BAD_ALG);
	assert_int_equal(
	        verify_header("{\"kid\":\"rsa-1\"}", SIGN_RS256, rsa_key),
	        FA_TOKEN_BAD_ALG);
	assert_int_equal(verify_header("{\"alg\":256,\"kid\":\"rsa-1\"}",
	                               SIGN_RS256, rsa_key),
	                 FA_TOKEN_BAD_ALG);
}

static void token_hs256_with_public_key(void **state)
{
	(void)state;

	assert_int_equal(verify_header("{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}",
	                               SIGN_HS256, NULL),
	                 FA_TOKEN_BAD_ALG);
	assert_int_equal(verify_header("{\"alg\":\"PS256\",\"kid\":\"rsa-1\"}",
	                               SIGN_RS256, rsa_key),
	                 FA_TOKEN_BAD_ALG);
	assert_int_equal(verify_header("{\"alg\":\"RS512\",\"kid\":\"rsa-1\"}",
	                               SIGN_RS256, rsa_key),
	                 FA_TOKEN_BAD_ALG);
}

static void token_alg_swapped_for_kid(void **state)
{
	(void)state;

	/* ES256 named on an RSA kid, and RS256 on an EC kid. */
	assert_int_equal(verify_header("{\"alg\":\"ES256\",\"kid\":\"rsa-1\"}",
	                               SIGN_ES256, ec_key),
	                 FA_TOKEN_BAD_ALG);
	assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":\"ec-1\"}",
	                               SIGN_RS256, rsa_key),
	                 FA_TOKEN_BAD_ALG);
}

static void token_kid_problems(void **state)
{
	(void)state;

	assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":\"rsa-9\"}",
	                               SIGN_RS256, rsa_key),
	                 FA_TOKEN_UNKNOWN_KID);
	assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":\"rsa\"}",
	                               SIGN_RS256, rsa_key),
	                 FA_TOKEN_UNKNOWN_KID);
	assert_int_equal(
	        verify_header("{\"alg\":\"RS256\",\"kid\":\"rsa-1/x\"}",
	                      SIGN_RS256, rsa_key),
	        FA_TOKEN_UNKNOWN_KID);
	assert_int_equal(
	        verify_header("{\"alg\":\"RS256\"}", SIGN_RS256, rsa_key),
	        FA_TOKEN_MALFORMED);
	assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":1}",
	                               SIGN_RS256, rsa_key),
	                 FA_TOKEN_MALFORMED);
	assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":null}",
	                               SIGN_RS256, rsa_key),
	                 FA_TOKEN_MALFORMED);
}

static void token_header_rules(void **state)
{
	(void)state;

	assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":\"rsa-1\","
	                               "\"typ\":\"JWT\"}",
	                               SIGN_RS256, rsa_key),
	                 FA_TOKEN_MALFORMED);
	assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":\"rsa-1\","
	                               "\"crit\":[\"exp\"]}",
	                               SIGN_RS256, rsa_key),
	                 FA_TOKEN_MALFORMED);
	/* Duplicate member names could be read differently elsewhere. */
	assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":\"rsa-1\","
	                               "\"alg\":\"none\"}",
	                               SIGN_RS256, rsa_key),
	                 FA_TOKEN_MALFORMED);
	assert_int_equal(verify_header("[\"RS256\"]", SIGN_RS256, rsa_key),
	                 FA_TOKEN_MALFORMED);
}

/* Signature -------------------------------------------------------------- */

static void token_bad_signature(void **state)
{
	(void)state;
	char payload[1024];
	char token[4096];
	char forged[4096];
	struct fa_token_claims claims;

	payload_with(payload, sizeof(payload), NULL, NULL);
	/* Signed by another RSA key. */
	make_token(token, sizeof(token), RS_HEADER, payload, SIGN_RS256,
	           rsa_other);
	assert_int_equal(verify_str(token, &claims), FA_TOKEN_BAD_SIGNATURE);

	/* One signature byte changed: flip a middle character. */
	make_token(token, sizeof(token), RS_HEADER, payload, SIGN_RS256,
	           rsa_key);
	size_t len = strlen(token);
	token[len - 20] = token[len - 20] == 'A' ? 'B' : 'A';
	assert_int_equal(verify_str(token, &claims), FA_TOKEN_BAD_SIGNATURE);

	/* Payload swapped for one with another subject. */
	make_token(token, sizeof(token), RS_HEADER, payload, SIGN_RS256,
	           rsa_key);
	payload_with(payload, sizeof(payload), "sub", "\"drv-bob\"");
	make_token(forged, sizeof(forged), RS_HEADER, payload, SIGN_RS256,
	           rsa_other);
	char *sig = strrchr(token, '.');
	char *forged_sig = strrchr(forged, '.');
	assert_non_null(sig);
	assert_non_null(forged_sig);
	write_at(forged, sizeof(forged), (size_t)(forged_sig - forged), sig);
	assert_int_equal(verify_str(forged, &claims), FA_TOKEN_BAD_SIGNATURE);

	/* ES256 with a bit flipped in s, and with a DER signature instead of
	 * raw r || s. */
	payload_with(payload, sizeof(payload), NULL, NULL);
	make_token(token, sizeof(token), ES_HEADER, payload, SIGN_ES256,
	           ec_key);
	len = strlen(token);
	token[len - 5] = token[len - 5] == 'A' ? 'B' : 'A';
	assert_int_equal(verify_str(token, &claims), FA_TOKEN_BAD_SIGNATURE);
	make_token(token, sizeof(token), ES_HEADER, payload, SIGN_RS256,
	           ec_key);
	assert_int_equal(verify_str(token, &claims), FA_TOKEN_BAD_SIGNATURE);
}

/* Claims ----------------------------------------------------------------- */

static void token_time_claims(void **state)
{
	(void)state;

	/* exp is exclusive and gets the 30 s leeway. */
	assert_int_equal(verify_claim("exp", "1799999970"), FA_TOKEN_EXPIRED);
	assert_int_equal(verify_claim("exp", "1799999971"), FA_TOKEN_OK);
	assert_int_equal(verify_claim("exp", "1700000000"), FA_TOKEN_EXPIRED);
	assert_int_equal(verify_claim("nbf", "1800000031"),
	                 FA_TOKEN_NOT_YET_VALID);
	assert_int_equal(verify_claim("nbf", "1800000030"), FA_TOKEN_OK);
	assert_int_equal(verify_claim("iat", "1800000100"),
	                 FA_TOKEN_NOT_YET_VALID);
	/* Lifetime over max_lifetime (3600 s), and exp before iat. */
	assert_int_equal(verify_claim("iat", "1799990000"),
	                 FA_TOKEN_BAD_CLAIMS);
	assert_int_equal(verify_claim("exp", "\"1800000840\""),
	                 FA_TOKEN_BAD_CLAIMS);
	assert_int_equal(verify_claim("exp", "1800000840.5"),
	                 FA_TOKEN_BAD_CLAIMS);
	assert_int_equal(verify_claim("exp", NULL), FA_TOKEN_BAD_CLAIMS);
	assert_int_equal(verify_claim("iat", NULL), FA_TOKEN_BAD_CLAIMS);
}

static void token_issuer_audience(void **state)
{
	(void)state;

	assert_int_equal(verify_claim("iss", "\"https://evil.test\""),
	                 FA_TOKEN_BAD_ISSUER);
	assert_int_equal(verify_claim("iss", NULL), FA_TOKEN_BAD_ISSUER);
	assert_int_equal(verify_claim("iss", "[\"" ISSUER "\"]"),
	                 FA_TOKEN_BAD_ISSUER);
	assert_int_equal(verify_claim("aud", "\"fleet-api\""),
	                 FA_TOKEN_BAD_AUDIENCE);
	assert_int_equal(verify_claim("aud", "[\"fleet-api\"]"),
	                 FA_TOKEN_BAD_AUDIENCE);
	assert_int_equal(verify_claim("aud", NULL), FA_TOKEN_BAD_AUDIENCE);
}

static void token_required_claims(void **state)
{
	(void)state;

	assert_int_equal(verify_claim("sub", NULL), FA_TOKEN_BAD_CLAIMS);
	assert_int_equal(verify_claim("jti", NULL), FA_TOKEN_BAD_CLAIMS);
	assert_int_equal(verify_claim("role", NULL), FA_TOKEN_BAD_CLAIMS);
	assert_int_equal(verify_claim("sub", "\"drv/ann\""),
	                 FA_TOKEN_BAD_CLAIMS);
	assert_int_equal(verify_claim("sub", "\"drv+ann\""),
	                 FA_TOKEN_BAD_CLAIMS);
	assert_int_equal(verify_claim("sub", "\"\""), FA_TOKEN_BAD_CLAIMS);
	assert_int_equal(verify_claim("sub", "42"), FA_TOKEN_BAD_CLAIMS);
	assert_int_equal(verify_claim("jti", "\"a b\""), FA_TOKEN_BAD_CLAIMS);
	assert_int_equal(verify_claim("carrier", "\"ac/me\""),
	                 FA_TOKEN_BAD_CLAIMS);
	assert_int_equal(verify_claim("fam", "\"#\""), FA_TOKEN_BAD_CLAIMS);
	assert_int_equal(verify_claim("did", "7"), FA_TOKEN_BAD_CLAIMS);
	assert_int_equal(verify_claim("role", "\"root\""), FA_TOKEN_BAD_CLAIMS);
	assert_int_equal(verify_claim("amr", "\"pwd\""), FA_TOKEN_BAD_CLAIMS);
	assert_int_equal(verify_claim("amr", "[1]"), FA_TOKEN_BAD_CLAIMS);
	/* A driver token without a carrier. */
	assert_int_equal(verify_claim("carrier", NULL), FA_TOKEN_BAD_CLAIMS);
}

struct role_case {
	const char *role;
	const char *carrier;
	enum fa_token_status status;
};

/* Carrier roles need a carrier, platform roles must not have one, shipper
 * roles may have either; the same rules as the users table. */
static void token_role_carrier_rules(void **state)
{
	(void)state;
	static const struct role_case cases[] = {
	        {"\"driver\"", "\"acme\"", FA_TOKEN_OK},
	        {"\"fleet_manager\"", "\"acme\"", FA_TOKEN_OK},
	        {"\"dispatcher\"", NULL, FA_TOKEN_BAD_CLAIMS},
	        {"\"fleet_analyst\"", NULL, FA_TOKEN_BAD_CLAIMS},
	        {"\"system_admin\"", NULL, FA_TOKEN_OK},
	        {"\"system_admin\"", "\"acme\"", FA_TOKEN_BAD_CLAIMS},
	        {"\"system_operator\"", "\"acme\"", FA_TOKEN_BAD_CLAIMS},
	        {"\"shipper_admin\"", NULL, FA_TOKEN_OK},
	        {"\"shipper_admin\"", "\"acme\"", FA_TOKEN_OK},
	        {"\"warehouse_user\"", NULL, FA_TOKEN_OK},
	        {"\"none\"", NULL, FA_TOKEN_BAD_CLAIMS},
	        {"\"Driver\"", "\"acme\"", FA_TOKEN_BAD_CLAIMS},
	        {"7", "\"acme\"", FA_TOKEN_BAD_CLAIMS},
	};
	char payload[1024];
	char token[4096];
	struct fa_token_claims claims;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct claim overrides[] = {
		        {"role", cases[i].role}, {"carrier", cases[i].carrier}};
		payload_with_claims(payload, sizeof(payload), overrides, 2);
		make_token(token, sizeof(token), RS_HEADER, payload, SIGN_RS256,
		           rsa_key);
		enum fa_token_status got = verify_str(token, &claims);
		if (got != cases[i].status)
			fail_msg("role %s, carrier %s: expected \"%s\", got "
			         "\"%s\"",
			         cases[i].role,
			         cases[i].carrier ? cases[i].carrier : "absent",
			         fa_token_status_str(cases[i].status),
			         fa_token_status_str(got));
	}
}

static void token_duplicate_claim(void **state)
{
	(void)state;
	char payload[1024];
	char token[4096];
	struct fa_token_claims claims;

	payload_with(payload, sizeof(payload), NULL, NULL);
	/* Turn the closing brace into a second "sub". */
	replace_closing_brace(payload, sizeof(payload),
	                      ",\"sub\":\"drv-bob\"}");
	make_token(token, sizeof(token), RS_HEADER, payload, SIGN_RS256,
	           rsa_key);
	assert_int_equal(verify_str(token, &claims), FA_TOKEN_MALFORMED);
}

/* JSON outside the common shape ----------------------------------------- */

/* Signs header and payload (both JSON text) with rsa_key and verifies. */
static enum fa_token_status verify_json(const char *header, const char *payload,
                                        struct fa_token_claims *claims)
{
	char token[8192];

	make_token(token, sizeof(token), header, payload, SIGN_RS256, rsa_key);
	return verify_str(token, claims);
}

static void token_json_escapes_and_forms(void **state)
{
	(void)state;
	char payload[1024];
	struct fa_token_claims claims;

	/* An escaped character in a claim and in the kid. */
	payload_with(payload, sizeof(payload), "sub", "\"drv\\u002dann\"");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims), FA_TOKEN_OK);
	assert_string_equal(claims.sub, "drv-ann");
	payload_with(payload, sizeof(payload), NULL, NULL);
	assert_int_equal(
	        verify_json("{\"alg\":\"RS256\",\"kid\":\"rsa\\u002d1\"}",
	                    payload, &claims),
	        FA_TOKEN_OK);
	assert_string_equal(claims.kid, "rsa-1");

	/* Exponent and fraction forms of a NumericDate. */
	payload_with(payload, sizeof(payload), "exp", "1.80000084e9");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims), FA_TOKEN_OK);
	assert_int_equal(claims.exp, 1800000840LL);
	payload_with(payload, sizeof(payload), "exp", "1800000840.5");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims),
	                 FA_TOKEN_BAD_CLAIMS);
	payload_with(payload, sizeof(payload), "exp", "\"1800000840\"");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims),
	                 FA_TOKEN_BAD_CLAIMS);
	/* Leading zeros, which cJSON reads as a decimal number. */
	payload_with(payload, sizeof(payload), "exp", "0001800000840");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims), FA_TOKEN_OK);
	assert_int_equal(claims.exp, 1800000840LL);
	/* 16 digits, one more than the integers read without cJSON. */
	payload_with(payload, sizeof(payload), "iat", "1000000000000000");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims),
	                 FA_TOKEN_NOT_YET_VALID);
	payload_with(payload, sizeof(payload), "iat", "-1000000000000000");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims),
	                 FA_TOKEN_BAD_CLAIMS);

	/* Nested objects, non-ASCII text and true/null in ignored claims. */
	payload_with(payload, sizeof(payload), "cnf", "{\"jkt\":\"abc\"}");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims), FA_TOKEN_OK);
	payload_with(payload, sizeof(payload), "name", "\"J\xc3\xbcrgen\"");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims), FA_TOKEN_OK);
	payload_with(payload, sizeof(payload), "flag", "[true,null,1,\"x\"]");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims), FA_TOKEN_OK);

	/* Whitespace around every token. */
	assert_int_equal(
	        verify_json(
	                " {\n\t\"alg\" : \"RS256\" ,\r\n \"kid\":\"rsa-1\" } ",
	                payload, &claims),
	        FA_TOKEN_OK);

	/* Non-string amr element and aud array without a string match. */
	payload_with(payload, sizeof(payload), "amr", "[\"pwd\",1]");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims),
	                 FA_TOKEN_BAD_CLAIMS);
	payload_with(payload, sizeof(payload), "aud", "[1,null,\"other\"]");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims),
	                 FA_TOKEN_BAD_AUDIENCE);
	payload_with(payload, sizeof(payload), "aud",
	             "[\"other\",\"" AUDIENCE "\"]");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims), FA_TOKEN_OK);

	/* Not JSON, or not an object. */
	assert_int_equal(verify_json(RS_HEADER, "[1,2]", &claims),
	                 FA_TOKEN_MALFORMED);
	payload_with(payload, sizeof(payload), NULL, NULL);
	write_at(payload, sizeof(payload), strlen(payload), "x");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims),
	                 FA_TOKEN_MALFORMED);
	payload_with(payload, sizeof(payload), "sub", "\"drv-ann");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims),
	                 FA_TOKEN_MALFORMED);
	payload_with(payload, sizeof(payload), "exp", "truex");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims),
	                 FA_TOKEN_MALFORMED);
}

static void token_many_claims(void **state)
{
	(void)state;
	char extra[64][16];
	struct claim overrides[64];
	char payload[4096];
	struct fa_token_claims claims;

	/* Far more members and array elements than a typical token has. */
	for (int i = 0; i < 64; i++) {
		snprintf(extra[i], sizeof(extra[i]), "x%d", i);
		overrides[i].name = extra[i];
		overrides[i].json = "[\"a\",\"b\"]";
	}
	payload_with_claims(payload, sizeof(payload), overrides, 64);
	assert_int_equal(verify_json(RS_HEADER, payload, &claims), FA_TOKEN_OK);
	assert_string_equal(claims.sub, "drv-ann");

	/* A repeated claim at the end of the long payload. */
	replace_closing_brace(payload, sizeof(payload),
	                      ",\"sub\":\"drv-bob\"}");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims),
	                 FA_TOKEN_MALFORMED);
}

static void token_duplicate_escaped_name(void **state)
{
	(void)state;
	char payload[1024];
	struct fa_token_claims claims;

	/* "s\u0075b" is "sub" once the escape is decoded. */
	payload_with(payload, sizeof(payload), NULL, NULL);
	replace_closing_brace(payload, sizeof(payload),
	                      ",\"s\\u0075b\":\"drv-bob\"}");
	assert_int_equal(verify_json(RS_HEADER, payload, &claims),
	                 FA_TOKEN_MALFORMED);
	assert_int_equal(verify_json("{\"alg\":\"RS256\",\"kid\":\"rsa-1\","
	                             "\"\\u0061lg\":\"none\"}",
	                             payload, &claims),
	                 FA_TOKEN_MALFORMED);
	assert_int_equal(verify_json("{\"alg\":\"RS256\",\"kid\":\"rsa-1\","
	                             "\"kid\":\"rsa-1\"}",
	                             payload, &claims),
	                 FA_TOKEN_MALFORMED);
}

/*
 * Replaces the last character of a base64url part whose length is 2 or 3
 * mod 4 by the next one in the alphabet, which sets one of the unused low
 * bits. The result decodes to the same bytes in a lenient decoder.
 */
static void set_unused_bit(char *last)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                               "abcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *at = strchr(alphabet, *last);

	assert_non_null(at);
	*last = at[1];
}

static void token_noncanonical_base64(void **state)
{
	(void)state;
	/* 46-byte header: 62 characters, 2 mod 4. */
	static const char header[] =
	        "{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"typ\":\"at+jwt\"}";
	char payload[1024];
	char input[2048];
	char token[4096];
	uint8_t sig[512];
	struct fa_token_claims claims;

	for (int extra = 0; extra < 3; extra++) {
		/* Payload lengths of 0, 1 and 2 mod 3 in turn. */
		char pad[8] = "";
		memset(pad, 'p', (size_t)extra);
		payload_with(payload, sizeof(payload), "pad", "\"\"");
		snprintf(payload + strlen(payload) - 2, 16, "%s\"}", pad);
		size_t payload_len = strlen(payload);

		size_t n = b64(header, strlen(header), input, sizeof(input));
		size_t header_end = n;
		input[n++] = '.';
		n += b64(payload, payload_len, input + n, sizeof(input) - n);
		if (payload_len % 3 != 0)
			set_unused_bit(&input[n - 1]);
		size_t sig_len = sign_input(SIGN_RS256, rsa_key, input, sig,
		                            sizeof(sig));
		memcpy(token, input, n);
		token[n] = '.';
		b64(sig, sig_len, token + n + 1, sizeof(token) - n - 1);
		enum fa_token_status expected =
		        payload_len % 3 != 0 ? FA_TOKEN_MALFORMED : FA_TOKEN_OK;
		assert_int_equal(verify_str(token, &claims), expected);

		/* The header part, which is checked before the signature. */
		set_unused_bit(&token[header_end - 1]);
		assert_int_equal(verify_str(token, &claims),
		                 FA_TOKEN_MALFORMED);
	}
}

/* Structure and size ----------------------------------------------------- */

static void token_structure(void **state)
{
	(void)state;
	char payload[1024];
	char token[4096];
	char broken[4200];
	struct fa_token_claims claims;

	payload_with(payload, sizeof(payload), NULL, NULL);
	make_token(token, sizeof(token), RS_HEADER, payload, SIGN_RS256,
	           rsa_key);
	size_t len = strlen(token);
	size_t sig_start = (size_t)(strrchr(token, '.') - token) + 1;

	/* Truncated: the 342-character signature cut to 340 characters
	 * (255 whole bytes), or gone with its dot. */
	assert_int_equal(len - sig_start, 342);
	assert_int_equal(fa_token_verify(ring, token, sig_start + 340, &options,
	                                 &claims),
	                 FA_TOKEN_BAD_SIGNATURE);
	assert_int_equal(
	        fa_token_verify(ring, token, sig_start - 1, &options, &claims),
	        FA_TOKEN_MALFORMED);
	assert_int_equal(fa_token_verify(ring, token, 10, &options, &claims),
	                 FA_TOKEN_MALFORMED);
	assert_int_equal(fa_token_verify(ring, token, 0, &options, &claims),
	                 FA_TOKEN_MALFORMED);

	/* Extra dots. */
	snprintf(broken, sizeof(broken), "%s.", token);
	assert_int_equal(verify_str(broken, &claims), FA_TOKEN_MALFORMED);
	snprintf(broken, sizeof(broken), "%s.AAAA", token);
	assert_int_equal(verify_str(broken, &claims), FA_TOKEN_MALFORMED);
	snprintf(broken, sizeof(broken), ".%s", token);
	assert_int_equal(verify_str(broken, &claims), FA_TOKEN_MALFORMED);
	assert_int_equal(verify_str("..", &claims), FA_TOKEN_MALFORMED);
	assert_int_equal(verify_str("a.b.c.d", &claims), FA_TOKEN_MALFORMED);

	/* Padding and characters outside base64url. */
	snprintf(broken, sizeof(broken), "%s==", token);
	assert_int_equal(verify_str(broken, &claims), FA_TOKEN_MALFORMED);
	memcpy(broken, token, len + 1);
	broken[3] = '+';
	assert_int_equal(verify_str(broken, &claims), FA_TOKEN_MALFORMED);

	/* A NUL inside the length is not the end of the token. */
	memcpy(broken, token, len + 1);
	broken[len - 3] = '\0';
	assert_int_equal(fa_token_verify(ring, broken, len, &options, &claims),
	                 FA_TOKEN_MALFORMED);

	/* Arguments. */
	assert_int_equal(fa_token_verify(NULL, token, len, &options, &claims),
	                 FA_TOKEN_MALFORMED);
	assert_int_equal(fa_token_verify(ring, NULL, 0, &options, &claims),
	                 FA_TOKEN_MALFORMED);
}

static void token_size_limit(void **state)
{
	(void)state;
	size_t size = (size_t)FA_TOKEN_MAX_LEN * 2;
	char *padding = malloc(size);
	char *payload = malloc(size);
	char *token = malloc(size);
	struct fa_token_claims claims;
	size_t len = 0;

	assert_non_null(padding);
	assert_non_null(payload);
	assert_non_null(token);
	/* Grow an unknown claim until the token is exactly at the limit, then
	 * one byte over. */
	for (size_t pad = 5700; pad > 0; pad--) {
		memset(padding, 'x', pad + 2);
		padding[0] = '"';
		padding[pad + 1] = '"';
		padding[pad + 2] = '\0';
		payload_with(payload, size, "pad", padding);
		make_token(token, size, RS_HEADER, payload, SIGN_RS256,
		           rsa_key);
		len = strlen(token);
		if (len <= FA_TOKEN_MAX_LEN)
			break;
	}
	assert_true(len > FA_TOKEN_MAX_LEN - 4);
	assert_int_equal(verify_str(token, &claims), FA_TOKEN_OK);

	memset(token, 'A', FA_TOKEN_MAX_LEN + 1);
	token[FA_TOKEN_MAX_LEN + 1] = '\0';
	assert_int_equal(verify_str(token, &claims), FA_TOKEN_TOO_LONG);
	free(padding);
	free(payload);
	free(token);
}

static void token_claims_untouched_on_failure(void **state)
{
	(void)state;
	char payload[1024];
	char token[4096];
	struct fa_token_claims claims;
	struct fa_token_claims before;

	memset(&claims, 0x5a, sizeof(claims));
	before = claims;
	payload_with(payload, sizeof(payload), "exp", "1700000000");
	make_token(token, sizeof(token), RS_HEADER, payload, SIGN_RS256,
	           rsa_key);
	assert_int_equal(verify_str(token, &claims), FA_TOKEN_EXPIRED);
	assert_memory_equal(&claims, &before, sizeof(claims));
}

/* Keyring ---------------------------------------------------------------- */

static void keyring_rejects_weak_keys(void **state)
{
	(void)state;
	struct fa_keyring *r = fa_keyring_new();
	EVP_PKEY *small = EVP_RSA_gen(1024);
	EVP_PKEY *p384 = EVP_EC_gen("P-384");
	char *small_pem = key_to_pem(small, 0);
	char *p384_pem = key_to_pem(p384, 0);

	assert_non_null(r);
	assert_int_equal(fa_keyring_add_pem(r, "k", FA_ALG_RS256, small_pem),
	                 FA_ERR_INVALID);
	assert_int_equal(fa_keyring_add_pem(r, "k", FA_ALG_ES256, p384_pem),
	                 FA_ERR_INVALID);
	assert_int_equal(fa_keyring_add_pem(r, "k", FA_ALG_ES256, rsa_pem),
	                 FA_ERR_INVALID);
	assert_int_equal(fa_keyring_add_pem(r, "k", FA_ALG_RS256, ec_pem),
	                 FA_ERR_INVALID);
	assert_int_equal(fa_keyring_add_pem(r, "k", FA_ALG_RS256, "junk"),
	                 FA_ERR_INVALID);
	assert_int_equal(fa_keyring_add_pem(r, "k/1", FA_ALG_RS256, rsa_pem),
	                 FA_ERR_INVALID);
	assert_int_equal(fa_keyring_add_pem(r, "k", 3, rsa_pem),
	                 FA_ERR_INVALID);
	assert_int_equal(fa_keyring_count(r), 0);
	fa_keyring_free(r);
	EVP_PKEY_free(small);
	EVP_PKEY_free(p384);
	free(small_pem);
	free(p384_pem);
}

static void keyring_add_replace_remove(void **state)
{
	(void)state;
	struct fa_keyring *r = fa_keyring_new();
	static const char *const kids[] = {"m", "c", "x", "a", "k", "z", "b"};
	char *other_pem = key_to_pem(rsa_other, 0);
	char payload[1024];
	char token[4096];
	struct fa_token_claims claims;

	assert_non_null(r);
	for (size_t i = 0; i < sizeof(kids) / sizeof(kids[0]); i++)
		assert_int_equal(
		        fa_keyring_add_pem(r, kids[i], FA_ALG_RS256, other_pem),
		        FA_OK);
	assert_int_equal(fa_keyring_add_pem(r, "rsa-1", FA_ALG_RS256, rsa_pem),
	                 FA_OK);
	assert_int_equal(fa_keyring_count(r), 8);

	payload_with(payload, sizeof(payload), NULL, NULL);
	make_token(token, sizeof(token), RS_HEADER, payload, SIGN_RS256,
	           rsa_key);
	assert_int_equal(
	        fa_token_verify(r, token, strlen(token), &options, &claims),
	        FA_TOKEN_OK);

	/* Replacing the key under the same kid takes effect at once. */
	assert_int_equal(
	        fa_keyring_add_pem(r, "rsa-1", FA_ALG_RS256, other_pem), FA_OK);
	assert_int_equal(fa_keyring_count(r), 8);
	assert_int_equal(
	        fa_token_verify(r, token, strlen(token), &options, &claims),
	        FA_TOKEN_BAD_SIGNATURE);

	assert_int_equal(fa_keyring_remove(r, "rsa-1"), FA_OK);
	assert_int_equal(fa_keyring_remove(r, "rsa-1"), FA_ERR_NOT_FOUND);
	assert_int_equal(fa_keyring_count(r), 7);
	assert_int_equal(
	        fa_token_verify(r, token, strlen(token), &options, &claims),
	        FA_TOKEN_UNKNOWN_KID);
	for (size_t i = 0; i < sizeof(kids) / sizeof(kids[0]); i++)
		assert_int_equal(fa_keyring_remove(r, kids[i]), FA_OK);
	assert_int_equal(fa_keyring_count(r), 0);
	fa_keyring_free(r);
	free(other_pem);
}

static void token_status_strings(void **state)
{
	(void)state;

	assert_string_equal(fa_token_status_str(FA_TOKEN_OK), "ok");
	assert_string_equal(fa_token_status_str(FA_TOKEN_EXPIRED), "expired");
	for (int a = FA_TOKEN_OK; a <= FA_TOKEN_BAD_CLAIMS; a++) {
		for (int b = a + 1; b <= FA_TOKEN_BAD_CLAIMS; b++)
			assert_string_not_equal(fa_token_status_str(a),
			                        fa_token_status_str(b));
	}
}

/* Verifies RS256 and ES256 tokens from several threads on one ring, the
 * way fleetauthd uses it. Each thread counts its successes. */
#define VERIFY_THREADS 4
#define VERIFY_PER_THREAD 100

struct verify_job {
	const char *tokens[2];
	int ok;
};

static void *verify_worker(void *arg)
{
	struct verify_job *job = arg;
	struct fa_token_claims claims;

	for (int i = 0; i < VERIFY_PER_THREAD; i++) {
		const char *token = job->tokens[i % 2];
		if (fa_token_verify(ring, token, strlen(token), &options,
		                    &claims) == FA_TOKEN_OK)
			job->ok++;
	}
	return NULL;
}

static void token_concurrent_verify(void **state)
{
	(void)state;
	char payload[1024];
	char rs_token[4096];
	char es_token[4096];
	pthread_t threads[VERIFY_THREADS];
	struct verify_job jobs[VERIFY_THREADS];

	payload_with(payload, sizeof(payload), NULL, NULL);
	make_token(rs_token, sizeof(rs_token), RS_HEADER, payload, SIGN_RS256,
	           rsa_key);
	make_token(es_token, sizeof(es_token), ES_HEADER, payload, SIGN_ES256,
	           ec_key);
	for (int t = 0; t < VERIFY_THREADS; t++) {
		jobs[t].tokens[0] = rs_token;
		jobs[t].tokens[1] = es_token;
		jobs[t].ok = 0;
		assert_int_equal(pthread_create(&threads[t], NULL,
		                                verify_worker, &jobs[t]),
		                 0);
	}
	for (int t = 0; t < VERIFY_THREADS; t++) {
		assert_int_equal(pthread_join(threads[t], NULL), 0);
		assert_int_equal(jobs[t].ok, VERIFY_PER_THREAD);
	}
}

/*
 * Changes one to three characters of a valid token at random (to another
 * base64url character, '.', or a byte outside the alphabet) and checks
 * that no changed token verifies. Under the sanitizer build this also
 * exercises the decoders with odd input.
 */
static void token_mutations_rejected(void **state)
{
	(void)state;
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
	                               "nopqrstuvwxyz0123456789-_.=+/\x01\xff";
	char payload[1024];
	char token[4096];
	char mutated[4096];
	struct fa_token_claims claims;
	uint32_t seed = 2024;

	payload_with(payload, sizeof(payload), NULL, NULL);
	make_token(token, sizeof(token), ES_HEADER, payload, SIGN_ES256,
	           ec_key);
	size_t len = strlen(token);
	for (int round = 0; round < 3000; round++) {
		memcpy(mutated, token, len + 1);
		int changes = 1 + round % 3;
		for (int c = 0; c < changes; c++) {
			seed = seed * 1103515245u + 12345u;
			size_t at = (seed >> 8) % len;
			seed = seed * 1103515245u + 12345u;
			mutated[at] =
			        alphabet[(seed >> 8) % (sizeof(alphabet) - 1)];
		}
		if (memcmp(mutated, token, len) == 0)
			continue;
		if (verify_str(mutated, &claims) == FA_TOKEN_OK)
			fail_msg("mutated token verified: %s", mutated);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(token_valid_rs256),
	        cmocka_unit_test(token_valid_es256),
	        cmocka_unit_test(token_optional_parts),
	        cmocka_unit_test(token_libjwt_interop),
	        cmocka_unit_test(token_alg_none_rejected),
	        cmocka_unit_test(token_hs256_with_public_key),
	        cmocka_unit_test(token_alg_swapped_for_kid),
	        cmocka_unit_test(token_kid_problems),
	        cmocka_unit_test(token_header_rules),
	        cmocka_unit_test(token_bad_signature),
	        cmocka_unit_test(token_time_claims),
	        cmocka_unit_test(token_issuer_audience),
	        cmocka_unit_test(token_required_claims),
	        cmocka_unit_test(token_role_carrier_rules),
	        cmocka_unit_test(token_duplicate_claim),
	        cmocka_unit_test(token_json_escapes_and_forms),
	        cmocka_unit_test(token_many_claims),
	        cmocka_unit_test(token_duplicate_escaped_name),
	        cmocka_unit_test(token_noncanonical_base64),
	        cmocka_unit_test(token_structure),
	        cmocka_unit_test(token_size_limit),
	        cmocka_unit_test(token_claims_untouched_on_failure),
	        cmocka_unit_test(keyring_rejects_weak_keys),
	        cmocka_unit_test(keyring_add_replace_remove),
	        cmocka_unit_test(token_status_strings),
	        cmocka_unit_test(token_concurrent_verify),
	        cmocka_unit_test(token_mutations_rejected),
	};
	return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
