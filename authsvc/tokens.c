#include "tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "fa_crypto.h"
#include "signing_keys.h"

#define SECRET_BYTES 32
#define ID_BYTES 16

fa_result fa_random_id(char out[FA_RANDOM_ID_LEN + 1])
{
	uint8_t bytes[ID_BYTES];
	fa_result result;

	result = fa_random_bytes(bytes, sizeof(bytes));
	if (result != FA_OK)
		return result;
	if (fa_b64url_encode(bytes, sizeof(bytes), out, FA_RANDOM_ID_LEN + 1) !=
	    FA_RANDOM_ID_LEN)
		return FA_ERR_INVALID;
	return FA_OK;
}

fa_result fa_random_secret(const char *prefix, char *out, size_t out_size,
                           uint8_t hash[FA_SHA256_LEN])
{
	uint8_t bytes[SECRET_BYTES];
	size_t prefix_len = strlen(prefix);
	fa_result result;

	if (out_size < prefix_len + FA_SECRET_B64_LEN + 1)
		return FA_ERR_INVALID;
	result = fa_random_bytes(bytes, sizeof(bytes));
	if (result != FA_OK)
		goto out;
	memcpy(out, prefix, prefix_len + 1);
	if (fa_b64url_encode(bytes, sizeof(bytes), out + prefix_len,
	                     out_size - prefix_len) != FA_SECRET_B64_LEN) {
		result = FA_ERR_INVALID;
		goto out;
	}
	fa_sha256(out, strlen(out), hash);
out:
	fa_wipe(bytes, sizeof(bytes));
	return result;
}

void fa_bytea_hex(const uint8_t hash[FA_SHA256_LEN], char out[67])
{
	out[0] = '\\';
	out[1] = 'x';
	fa_hex_encode(hash, FA_SHA256_LEN, out + 2);
}

static bool present(const char *s)
{
	return s != NULL && s[0] != '\0';
}

static bool add_amr(cJSON *payload, unsigned amr)
{
	static const struct {
		unsigned bit;
		const char *name;
	} methods[] = {{FA_AMR_PWD, "pwd"},
	               {FA_AMR_OTP, "otp"},
	               {FA_AMR_HWK, "hwk"},
	               {FA_AMR_BIO, "bio"}};
	cJSON *array = cJSON_AddArrayToObject(payload, "amr");
	size_t i;

	if (array == NULL)
		return false;
	for (i = 0; i < sizeof(methods) / sizeof(*methods); i++) {
		if ((amr & methods[i].bit) != 0 &&
		    !cJSON_AddItemToArray(array,
		                          cJSON_CreateString(methods[i].name)))
			return false;
	}
	return true;
}

/* Builds the claims object. Returns NULL when out of memory. */
static cJSON *build_payload(const struct fa_service_config *config,
                            const struct fa_access_claims *claims, int64_t now)
{
	char jti[FA_RANDOM_ID_LEN + 1];
	cJSON *payload = cJSON_CreateObject();
	bool ok;

	if (payload == NULL || fa_random_id(jti) != FA_OK)
		goto fail;
	ok = cJSON_AddStringToObject(payload, "iss", config->issuer) &&
	     cJSON_AddStringToObject(payload, "aud", config->audience) &&
	     cJSON_AddStringToObject(payload, "sub", claims->sub) &&
	     cJSON_AddNumberToObject(payload, "iat", (double)now) &&
	     cJSON_AddNumberToObject(payload, "nbf", (double)now) &&
	     cJSON_AddNumberToObject(
	             payload, "exp",
	             (double)(now + config->access_token_ttl)) &&
	     cJSON_AddStringToObject(payload, "jti", jti) &&
	     cJSON_AddStringToObject(payload, "role",
	                             fa_role_name(claims->role)) &&
	     add_amr(payload, claims->amr);
	if (ok && present(claims->carrier))
		ok = cJSON_AddStringToObject(payload, "carrier",
		                             claims->carrier) != NULL;
	if (ok && present(claims->fam))
		ok = cJSON_AddStringToObject(payload, "fam", claims->fam) !=
		     NULL;
	if (ok && present(claims->did))
		ok = cJSON_AddStringToObject(payload, "did", claims->did) !=
		     NULL;
	if (ok)
		return payload;
fail:
	cJSON_Delete(payload);
	return NULL;
}

/* Appends the base64url form of len bytes of data at out + *pos. */
static bool append_b64url(char *out, size_t size, size_t *pos, const void *data,
                          size_t len)
{
	size_t written = fa_b64url_encode(data, len, out + *pos, size - *pos);

	if (written == 0 && len > 0)
		return false;
	*pos += written;
	return true;
}

/* Turns a DER ECDSA signature into the 64-byte r || s form of JWS. */
static bool ecdsa_der_to_raw(const unsigned char *der, size_t der_len,
                             unsigned char raw[64])
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	const BIGNUM *r = NULL;
	const BIGNUM *s = NULL;
	bool ok;

	if (sig == NULL)
		return false;
	ECDSA_SIG_get0(sig, &r, &s);
	ok = BN_bn2binpad(r, raw, 32) == 32 &&
	     BN_bn2binpad(s, raw + 32, 32) == 32;
	ECDSA_SIG_free(sig);
	return ok;
}

/* Signs input with key (SHA-256; PKCS #1 v1.5 for RSA) and writes the JWS
 * signature bytes into sig (size 512). */
static fa_result sign_input(EVP_PKEY *key, enum fa_alg alg, const char *input,
                            size_t input_len, unsigned char *sig,
                            size_t *sig_len)
{
	unsigned char der[512];
	size_t der_len = sizeof(der);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	fa_result result = FA_ERR_CRYPTO;

	if (ctx == NULL)
		return FA_ERR_NOMEM;
	if (EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, key, NULL) !=
	            1 ||
	    EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)input,
	                   input_len) != 1)
		goto out;
	if (alg == FA_ALG_ES256) {
		if (!ecdsa_der_to_raw(der, der_len, sig))
			goto out;
		*sig_len = 64;
	} else {
		memcpy(sig, der, der_len);
		*sig_len = der_len;
	}
	result = FA_OK;
out:
	EVP_MD_CTX_free(ctx);
	return result;
}

/*
 * Encodes header and payload, signs them and writes the compact JWS into a
 * malloc'd *token_out.
 */
static fa_result encode_jws(EVP_PKEY *key, enum fa_alg alg, const char *kid,
                            const cJSON *payload, char **token_out)
{
	char *header_text = NULL;
	char *payload_text = NULL;
	cJSON *header = cJSON_CreateObject();
	unsigned char sig[512];
	size_t sig_len = 0;
	size_t size;
	size_t pos = 0;
	char *token = NULL;
	fa_result result = FA_ERR_NOMEM;

	*token_out = NULL;
	if (header == NULL ||
	    !cJSON_AddStringToObject(header, "alg",
	                             alg == FA_ALG_ES256 ? "ES256" : "RS256") ||
	    !cJSON_AddStringToObject(header, "kid", kid) ||
	    !cJSON_AddStringToObject(header, "typ", "at+jwt"))
		goto out;
	header_text = cJSON_PrintUnformatted(header);
	payload_text = cJSON_PrintUnformatted(payload);
	if (header_text == NULL || payload_text == NULL)
		goto out;
	size = 4 * (strlen(header_text) + strlen(payload_text) + sizeof(sig)) /
	               3 +
	       16;
	token = malloc(size);
	if (token == NULL)
		goto out;
	result = FA_ERR_CRYPTO;
	if (!append_b64url(token, size, &pos, header_text, strlen(header_text)))
		goto out;
	token[pos++] = '.';
	if (!append_b64url(token, size, &pos, payload_text,
	                   strlen(payload_text)))
		goto out;
	result = sign_input(key, alg, token, pos, sig, &sig_len);
	if (result != FA_OK)
		goto out;
	result = FA_ERR_CRYPTO;
	token[pos++] = '.';
	if (!append_b64url(token, size, &pos, sig, sig_len))
		goto out;
	*token_out = token;
	token = NULL;
	result = FA_OK;
out:
	free(token);
	cJSON_free(header_text);
	cJSON_free(payload_text);
	cJSON_Delete(header);
	return result;
}

fa_result fa_access_token_issue(struct fa_service *svc, PGconn *db,
                                const struct fa_access_claims *claims,
                                char **token_out)
{
	char kid[FA_ID_MAX + 1];
	EVP_PKEY *key = NULL;
	cJSON *payload = NULL;
	enum fa_alg alg = FA_ALG_RS256;
	fa_result result;

	*token_out = NULL;
	result = fa_signing_key_current(svc, db, &key, &alg, kid);
	if (result != FA_OK)
		goto out;
	payload = build_payload(&svc->config, claims, fa_now());
	if (payload == NULL) {
		result = FA_ERR_NOMEM;
		goto out;
	}
	result = encode_jws(key, alg, kid, payload, token_out);
out:
	cJSON_Delete(payload);
	EVP_PKEY_free(key);
	return result;
}
