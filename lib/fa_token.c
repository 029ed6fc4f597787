/*
 * JWT access-token verification over OpenSSL 3 EVP and cJSON.
 *
 * Keyring concurrency: fa_keyring_add_pem and fa_keyring_remove must not run
 * at the same time as any other call on the same ring. fa_token_verify only
 * reads the ring, its EVP_PKEYs and their prepared contexts
 * (EVP_MD_CTX_copy_ex takes its source as const), so any number of threads
 * may verify concurrently against a ring that is not being modified. The plugin
 * modifies its ring from the broker's single thread between verifications;
 * fleetauthd builds its ring at start-up and then only verifies.
 */
#include "fa_token.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "fa_crypto.h"
#include "fa_roles.h"

#define RSA_MIN_BITS 2048
#define ES256_SIG_LEN 64
/* DER ECDSA-Sig-Value for P-256: 2 + 2 * (2 + 33) bytes at most. */
#define ES256_DER_MAX 72
/* Decoded size of the largest part a FA_TOKEN_MAX_LEN token can carry. */
#define PART_MAX (FA_TOKEN_MAX_LEN / 4 * 3 + 3)
/* Integers in JSON numbers are exact in a double up to 2^53. */
#define JSON_INT_MAX 9007199254740992.0

/*
 * A key and a digest-verify context initialised for it once. Each
 * verification copies the context, which skips the provider lookups of a
 * fresh EVP_DigestVerifyInit.
 *
 * NOTE: concurrent copies of one context rely on EVP_MD_CTX_copy_ex not
 * modifying its const source. openssl-threads(7) of OpenSSL 3.0 states
 * that a const parameter usually means this, but not always. test_token
 * runs four threads through it, and ThreadSanitizer cannot see inside
 * libcrypto.
 */
struct fa_key {
	char kid[FA_ID_MAX + 1];
	enum fa_alg alg;
	EVP_PKEY *pkey;
	EVP_MD_CTX *verify_template;
};

/* Keys sorted by kid, so lookups are a binary search. */
struct fa_keyring {
	struct fa_key *keys;
	size_t count;
	size_t capacity;
};

const char *fa_token_status_str(enum fa_token_status status)
{
	switch (status) {
	case FA_TOKEN_OK:
		return "ok";
	case FA_TOKEN_MALFORMED:
		return "malformed";
	case FA_TOKEN_TOO_LONG:
		return "too long";
	case FA_TOKEN_BAD_ALG:
		return "algorithm not allowed";
	case FA_TOKEN_UNKNOWN_KID:
		return "unknown key id";
	case FA_TOKEN_BAD_SIGNATURE:
		return "bad signature";
	case FA_TOKEN_EXPIRED:
		return "expired";
	case FA_TOKEN_NOT_YET_VALID:
		return "not yet valid";
	case FA_TOKEN_BAD_ISSUER:
		return "wrong issuer";
	case FA_TOKEN_BAD_AUDIENCE:
		return "wrong audience";
	case FA_TOKEN_BAD_CLAIMS:
		return "invalid claims";
	}
	return "unknown status";
}

/* Keyring ---------------------------------------------------------------- */

static void key_clear(struct fa_key *key)
{
	EVP_MD_CTX_free(key->verify_template);
	EVP_PKEY_free(key->pkey);
	key->verify_template = NULL;
	key->pkey = NULL;
}

struct fa_keyring *fa_keyring_new(void)
{
	return calloc(1, sizeof(struct fa_keyring));
}

void fa_keyring_free(struct fa_keyring *ring)
{
	if (ring == NULL)
		return;
	for (size_t i = 0; i < ring->count; i++)
		key_clear(&ring->keys[i]);
	free(ring->keys);
	free(ring);
}

size_t fa_keyring_count(const struct fa_keyring *ring)
{
	return ring == NULL ? 0 : ring->count;
}

/*
 * Finds kid (kid_len bytes) in ring. Returns its index and sets *found, or
 * returns the index where it would be inserted.
 */
static size_t keyring_search(const struct fa_keyring *ring, const char *kid,
                             size_t kid_len, bool *found)
{
	size_t lo = 0;
	size_t hi = ring->count;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *k = ring->keys[mid].kid;
		int cmp = strncmp(k, kid, kid_len);
		if (cmp == 0 && k[kid_len] != '\0')
			cmp = 1;
		if (cmp == 0) {
			*found = true;
			return mid;
		}
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Checks that pkey suits alg: RSA of at least 2048 bits, or EC on P-256. */
static bool key_matches_alg(EVP_PKEY *pkey, enum fa_alg alg)
{
	char group[32];
	size_t group_len = 0;

	if (alg == FA_ALG_RS256) {
		return EVP_PKEY_is_a(pkey, "RSA") &&
		       EVP_PKEY_get_bits(pkey) >= RSA_MIN_BITS;
	}
	if (alg != FA_ALG_ES256 || !EVP_PKEY_is_a(pkey, "EC"))
		return false;
	if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
	                                   group, sizeof(group),
	                                   &group_len) != 1)
		return false;
	return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

static EVP_PKEY *parse_public_pem(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *pkey = NULL;

	if (bio == NULL)
		return NULL;
	pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	return pkey;
}

/* Prepares a SHA-256 digest-verify context for pkey; NULL on failure. */
static EVP_MD_CTX *make_verify_template(EVP_PKEY *pkey)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL)
		return NULL;
	if (EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, pkey,
	                            NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static fa_result keyring_reserve(struct fa_keyring *ring)
{
	struct fa_key *keys = NULL;
	size_t capacity = 0;

	if (ring->count < ring->capacity)
		return FA_OK;
	capacity = ring->capacity == 0 ? 4 : ring->capacity * 2;
	keys = realloc(ring->keys, capacity * sizeof(*keys));
	if (keys == NULL)
		return FA_ERR_NOMEM;
	ring->keys = keys;
	ring->capacity = capacity;
	return FA_OK;
}

/*
 * Parses pem once and stores the key under kid, replacing any key with the
 * same kid. FA_ERR_INVALID for a bad kid, unparsable PEM or a key that does
 * not suit alg; FA_ERR_CRYPTO when OpenSSL cannot prepare a verify context;
 * FA_ERR_NOMEM on allocation failure. The ring owns the key.
 */
fa_result fa_keyring_add_pem(struct fa_keyring *ring, const char *kid,
                             enum fa_alg alg, const char *pem)
{
	fa_result result = FA_OK;
	struct fa_key key = {0};
	bool found = false;
	size_t index = 0;

	if (ring == NULL || !fa_id_valid(kid) || pem == NULL)
		return FA_ERR_INVALID;
	if (alg != FA_ALG_RS256 && alg != FA_ALG_ES256)
		return FA_ERR_INVALID;

	key.pkey = parse_public_pem(pem);
	if (key.pkey == NULL || !key_matches_alg(key.pkey, alg)) {
		result = FA_ERR_INVALID;
		goto out;
	}
	key.verify_template = make_verify_template(key.pkey);
	if (key.verify_template == NULL) {
		result = FA_ERR_CRYPTO;
		goto out;
	}
	key.alg = alg;
	memcpy(key.kid, kid, strlen(kid) + 1);

	index = keyring_search(ring, kid, strlen(kid), &found);
	if (found) {
		key_clear(&ring->keys[index]);
		ring->keys[index] = key;
		memset(&key, 0, sizeof(key));
		goto out;
	}
	result = keyring_reserve(ring);
	if (result != FA_OK)
		goto out;
	memmove(&ring->keys[index + 1], &ring->keys[index],
	        (ring->count - index) * sizeof(*ring->keys));
	ring->keys[index] = key;
	ring->count++;
	memset(&key, 0, sizeof(key));

out:
	key_clear(&key);
	return result;
}

fa_result fa_keyring_remove(struct fa_keyring *ring, const char *kid)
{
	bool found = false;
	size_t index = 0;

	if (ring == NULL || kid == NULL)
		return FA_ERR_INVALID;
	index = keyring_search(ring, kid, strlen(kid), &found);
	if (!found)
		return FA_ERR_NOT_FOUND;
	key_clear(&ring->keys[index]);
	memmove(&ring->keys[index], &ring->keys[index + 1],
	        (ring->count - index - 1) * sizeof(*ring->keys));
	ring->count--;
	return FA_OK;
}

/* Token parts ------------------------------------------------------------ */

/* The three dot-separated parts of a compact JWS, pointing into the token. */
struct jws_parts {
	const char *header;
	size_t header_len;
	const char *payload;
	size_t payload_len;
	const char *signature;
	size_t signature_len;
};

static bool split_token(const char *token, size_t len, struct jws_parts *p)
{
	const char *dot1 = memchr(token, '.', len);
	const char *dot2 = NULL;
	const char *end = token + len;

	if (dot1 == NULL)
		return false;
	dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1));
	if (dot2 == NULL || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
		return false;
	p->header = token;
	p->header_len = (size_t)(dot1 - token);
	p->payload = dot1 + 1;
	p->payload_len = (size_t)(dot2 - dot1 - 1);
	p->signature = dot2 + 1;
	p->signature_len = (size_t)(end - dot2 - 1);
	/* An empty signature passes here so that "alg": "none" is reported
	 * as a bad algorithm; verify_signature rejects it in any case. */
	return p->header_len > 0 && p->payload_len > 0;
}

/* True when an object has two members with the same name; cJSON would
 * silently use the first, while other parsers use the last. */
static bool has_duplicate_members(const cJSON *object)
{
	for (const cJSON *a = object->child; a != NULL; a = a->next) {
		for (const cJSON *b = a->next; b != NULL; b = b->next) {
			if (strcmp(a->string, b->string) == 0)
				return true;
		}
	}
	return false;
}

/*
 * Decodes one base64url part into buf (PART_MAX + 1 bytes) and parses it as
 * a JSON object. Returns NULL when any step fails; the caller frees the
 * result with cJSON_Delete.
 */
static cJSON *decode_json_part(const char *part, size_t len, char *buf)
{
	size_t decoded_len = 0;
	const char *end = NULL;
	cJSON *json = NULL;

	if (fa_b64url_decode(part, len, (uint8_t *)buf, PART_MAX,
	                     &decoded_len) != FA_OK)
		return NULL;
	if (memchr(buf, '\0', decoded_len) != NULL)
		return NULL;
	buf[decoded_len] = '\0';
	json = cJSON_ParseWithOpts(buf, &end, 1);
	if (json == NULL)
		return NULL;
	if (!cJSON_IsObject(json) || has_duplicate_members(json)) {
		cJSON_Delete(json);
		return NULL;
	}
	return json;
}

/* Header ----------------------------------------------------------------- */

static bool typ_allowed(const cJSON *typ)
{
	if (typ == NULL)
		return true;
	if (!cJSON_IsString(typ))
		return false;
	/* RFC 9068 names the type "at+jwt"; media type names are
	 * case-insensitive and may carry the "application/" prefix. */
	return strcasecmp(typ->valuestring, "at+jwt") == 0 ||
	       strcasecmp(typ->valuestring, "application/at+jwt") == 0;
}

/*
 * Checks the header and finds its key. Only RS256 and ES256 are accepted,
 * and the header's alg must be the algorithm the key was added with, so a
 * token cannot pick a weaker algorithm or reuse an RSA key as an HMAC
 * secret. A header with "crit" is rejected because no extension is
 * understood.
 */
static enum fa_token_status check_header(const struct fa_keyring *ring,
                                         const cJSON *header,
                                         const struct fa_key **key)
{
	const cJSON *alg = cJSON_GetObjectItemCaseSensitive(header, "alg");
	const cJSON *kid = cJSON_GetObjectItemCaseSensitive(header, "kid");
	const cJSON *typ = cJSON_GetObjectItemCaseSensitive(header, "typ");
	enum fa_alg expected_alg = 0;
	bool found = false;
	size_t index = 0;

	if (!cJSON_IsString(alg))
		return FA_TOKEN_BAD_ALG;
	if (strcmp(alg->valuestring, "RS256") == 0)
		expected_alg = FA_ALG_RS256;
	else if (strcmp(alg->valuestring, "ES256") == 0)
		expected_alg = FA_ALG_ES256;
	else
		return FA_TOKEN_BAD_ALG;
	if (!cJSON_IsString(kid) || !typ_allowed(typ) ||
	    cJSON_GetObjectItemCaseSensitive(header, "crit") != NULL)
		return FA_TOKEN_MALFORMED;
	if (!fa_id_valid(kid->valuestring))
		return FA_TOKEN_UNKNOWN_KID;
	index = keyring_search(ring, kid->valuestring, strlen(kid->valuestring),
	                       &found);
	if (!found)
		return FA_TOKEN_UNKNOWN_KID;
	if (ring->keys[index].alg != expected_alg)
		return FA_TOKEN_BAD_ALG;
	*key = &ring->keys[index];
	return FA_TOKEN_OK;
}

/* Signature -------------------------------------------------------------- */

/*
 * Converts a JWS ES256 signature (r and s as 32-byte big-endian integers)
 * into the DER ECDSA-Sig-Value that OpenSSL verifies. Returns the DER
 * length, or 0 on failure.
 */
static size_t es256_raw_to_der(const uint8_t raw[ES256_SIG_LEN],
                               uint8_t der[ES256_DER_MAX])
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(raw, 32, NULL);
	BIGNUM *s = BN_bin2bn(raw + 32, 32, NULL);
	unsigned char *p = der;
	size_t der_len = 0;

	if (sig == NULL || r == NULL || s == NULL)
		goto out;
	if (ECDSA_SIG_set0(sig, r, s) != 1)
		goto out;
	r = NULL;
	s = NULL;
	if (i2d_ECDSA_SIG(sig, NULL) > ES256_DER_MAX)
		goto out;
	int n = i2d_ECDSA_SIG(sig, &p);
	if (n > 0)
		der_len = (size_t)n;

out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	return der_len;
}

/*
 * Verifies the signature over "header.payload". The raw signature must
 * have the length the key implies: the modulus size for RSA, 64 bytes for
 * ES256.
 */
static enum fa_token_status verify_signature(const struct fa_key *key,
                                             const struct jws_parts *parts)
{
	uint8_t raw[PART_MAX];
	uint8_t der[ES256_DER_MAX];
	const uint8_t *sig = raw;
	size_t sig_len = 0;
	EVP_MD_CTX *ctx = NULL;
	enum fa_token_status status = FA_TOKEN_BAD_SIGNATURE;

	if (fa_b64url_decode(parts->signature, parts->signature_len, raw,
	                     sizeof(raw), &sig_len) != FA_OK)
		return FA_TOKEN_MALFORMED;
	if (key->alg == FA_ALG_ES256) {
		if (sig_len != ES256_SIG_LEN)
			return FA_TOKEN_BAD_SIGNATURE;
		sig_len = es256_raw_to_der(raw, der);
		if (sig_len == 0)
			return FA_TOKEN_BAD_SIGNATURE;
		sig = der;
	} else if (sig_len != (size_t)EVP_PKEY_get_size(key->pkey)) {
		return FA_TOKEN_BAD_SIGNATURE;
	}

	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return FA_TOKEN_BAD_SIGNATURE;
	if (EVP_MD_CTX_copy_ex(ctx, key->verify_template) != 1)
		goto out;
	/* The signing input is the header, the dot and the payload. */
	size_t input_len = parts->header_len + 1 + parts->payload_len;
	if (EVP_DigestVerifyUpdate(ctx, parts->header, input_len) != 1)
		goto out;
	if (EVP_DigestVerifyFinal(ctx, sig, sig_len) == 1)
		status = FA_TOKEN_OK;

out:
	EVP_MD_CTX_free(ctx);
	return status;
}

/* Claims ----------------------------------------------------------------- */

/*
 * Copies an optional string claim that must be a valid id. Absent leaves
 * out empty; present but not a valid id string fails.
 */
static bool copy_id_claim(const cJSON *payload, const char *name,
                          char out[FA_ID_MAX + 1], bool required)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(payload, name);

	out[0] = '\0';
	if (item == NULL)
		return !required;
	if (!cJSON_IsString(item) || !fa_id_valid(item->valuestring))
		return false;
	memcpy(out, item->valuestring, strlen(item->valuestring) + 1);
	return true;
}

/* Reads a NumericDate claim: an integral JSON number within 2^53. */
static bool read_time_claim(const cJSON *payload, const char *name,
                            int64_t *out, bool required)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(payload, name);

	*out = 0;
	if (item == NULL)
		return !required;
	if (!cJSON_IsNumber(item))
		return false;
	double v = item->valuedouble;
	/* The negated range test also rejects NaN. */
	if (!(v >= -JSON_INT_MAX && v <= JSON_INT_MAX))
		return false;
	if (v != (double)(int64_t)v)
		return false;
	*out = (int64_t)v;
	return true;
}

/* Reads amr as a bit set; unknown methods are ignored because RFC 8176
 * defines more than the four this product issues. */
static bool read_amr(const cJSON *payload, unsigned *amr)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(payload, "amr");
	const cJSON *item = NULL;

	*amr = 0;
	if (list == NULL)
		return true;
	if (!cJSON_IsArray(list))
		return false;
	cJSON_ArrayForEach(item, list)
	{
		if (!cJSON_IsString(item))
			return false;
		if (strcmp(item->valuestring, "pwd") == 0)
			*amr |= FA_AMR_PWD;
		else if (strcmp(item->valuestring, "otp") == 0)
			*amr |= FA_AMR_OTP;
		else if (strcmp(item->valuestring, "hwk") == 0)
			*amr |= FA_AMR_HWK;
		else if (strcmp(item->valuestring, "bio") == 0)
			*amr |= FA_AMR_BIO;
	}
	return true;
}

/*
 * Reads role, which must be a known role name. As in the users table, a
 * carrier role needs a carrier and a platform role (system_admin,
 * system_operator) must not have one. Shipper roles may have either.
 */
static bool read_role(const cJSON *payload, struct fa_token_claims *claims)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(payload, "role");
	enum fa_role role = FA_ROLE_NONE;
	bool has_carrier = claims->carrier[0] != '\0';

	if (!cJSON_IsString(item))
		return false;
	role = fa_role_parse(item->valuestring);
	if (role == FA_ROLE_NONE)
		return false;
	if (fa_role_is_carrier_role(role) && !has_carrier)
		return false;
	if ((role == FA_ROLE_SYSTEM_ADMIN || role == FA_ROLE_SYSTEM_OPERATOR) &&
	    has_carrier)
		return false;
	memcpy(claims->role, fa_role_name(role),
	       strlen(fa_role_name(role)) + 1);
	return true;
}

static bool read_claims(const cJSON *payload, struct fa_token_claims *claims)
{
	return copy_id_claim(payload, "sub", claims->sub, true) &&
	       copy_id_claim(payload, "jti", claims->jti, true) &&
	       copy_id_claim(payload, "carrier", claims->carrier, false) &&
	       copy_id_claim(payload, "fam", claims->fam, false) &&
	       copy_id_claim(payload, "did", claims->did, false) &&
	       read_time_claim(payload, "exp", &claims->exp, true) &&
	       read_time_claim(payload, "iat", &claims->iat, true) &&
	       read_time_claim(payload, "nbf", &claims->nbf, false) &&
	       read_role(payload, claims) && read_amr(payload, &claims->amr);
}

static bool issuer_matches(const cJSON *payload, const char *issuer)
{
	const cJSON *iss = cJSON_GetObjectItemCaseSensitive(payload, "iss");

	return issuer != NULL && cJSON_IsString(iss) &&
	       strcmp(iss->valuestring, issuer) == 0;
}

/* aud is a string or an array of strings (RFC 7519, section 4.1.3). */
static bool audience_matches(const cJSON *payload, const char *audience)
{
	const cJSON *aud = cJSON_GetObjectItemCaseSensitive(payload, "aud");
	const cJSON *item = NULL;

	if (audience == NULL || aud == NULL)
		return false;
	if (cJSON_IsString(aud))
		return strcmp(aud->valuestring, audience) == 0;
	if (!cJSON_IsArray(aud))
		return false;
	cJSON_ArrayForEach(item, aud)
	{
		if (cJSON_IsString(item) &&
		    strcmp(item->valuestring, audience) == 0)
			return true;
	}
	return false;
}

/* Checks the claims' times against options->now with leeway: exp is the
 * first second at which the token is no longer accepted. */
static enum fa_token_status check_times(const struct fa_token_claims *c,
                                        const struct fa_verify_options *o)
{
	int64_t leeway = o->leeway > 0 ? o->leeway : 0;
	bool has_nbf = c->nbf != 0;

	if (o->now >= c->exp + leeway)
		return FA_TOKEN_EXPIRED;
	if (c->iat > o->now + leeway || (has_nbf && c->nbf > o->now + leeway))
		return FA_TOKEN_NOT_YET_VALID;
	if (c->exp <= c->iat)
		return FA_TOKEN_BAD_CLAIMS;
	if (o->max_lifetime > 0 && c->exp - c->iat > o->max_lifetime)
		return FA_TOKEN_BAD_CLAIMS;
	return FA_TOKEN_OK;
}

static enum fa_token_status check_payload(const cJSON *payload,
                                          const struct fa_verify_options *o,
                                          struct fa_token_claims *claims)
{
	if (!issuer_matches(payload, o->issuer))
		return FA_TOKEN_BAD_ISSUER;
	if (!audience_matches(payload, o->audience))
		return FA_TOKEN_BAD_AUDIENCE;
	if (!read_claims(payload, claims))
		return FA_TOKEN_BAD_CLAIMS;
	return check_times(claims, o);
}

/*
 * Verifies a compact JWS access token: size, structure, header and key,
 * signature, then issuer, audience, claims and times, in that order, and
 * returns the first failure. Decoded parts live on the stack; cJSON
 * allocates its trees, which are freed before returning. claims is written
 * only on FA_TOKEN_OK. A missing or non-string kid, or a "typ" other than
 * at+jwt, is FA_TOKEN_MALFORMED.
 */
enum fa_token_status fa_token_verify(const struct fa_keyring *ring,
                                     const char *token, size_t len,
                                     const struct fa_verify_options *options,
                                     struct fa_token_claims *claims)
{
	char buf[PART_MAX + 1];
	struct jws_parts parts;
	struct fa_token_claims local;
	const struct fa_key *key = NULL;
	cJSON *header = NULL;
	cJSON *payload = NULL;
	enum fa_token_status status = FA_TOKEN_MALFORMED;

	if (ring == NULL || token == NULL || options == NULL || claims == NULL)
		return FA_TOKEN_MALFORMED;
	if (len > FA_TOKEN_MAX_LEN)
		return FA_TOKEN_TOO_LONG;
	if (!split_token(token, len, &parts))
		return FA_TOKEN_MALFORMED;

	header = decode_json_part(parts.header, parts.header_len, buf);
	if (header == NULL)
		goto out;
	status = check_header(ring, header, &key);
	if (status != FA_TOKEN_OK)
		goto out;
	status = verify_signature(key, &parts);
	if (status != FA_TOKEN_OK)
		goto out;

	payload = decode_json_part(parts.payload, parts.payload_len, buf);
	if (payload == NULL) {
		status = FA_TOKEN_MALFORMED;
		goto out;
	}
	memset(&local, 0, sizeof(local));
	status = check_payload(payload, options, &local);
	if (status != FA_TOKEN_OK)
		goto out;
	memcpy(local.kid, key->kid, strlen(key->kid) + 1);
	*claims = local;

out:
	cJSON_Delete(header);
	cJSON_Delete(payload);
	return status;
}
