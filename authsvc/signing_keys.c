#include "signing_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "fa_crypto.h"
#include "throttle.h"
#include "tokens.h"

#define RSA_MIN_BITS 2048
#define RSA_GENERATE_BITS 2048
/* Seconds between two rounds of fa_auth_housekeeping. */
#define HOUSEKEEPING_INTERVAL 60
/* Serializes rotations across replicas (pg_advisory_xact_lock key). */
#define ROTATION_LOCK_KEY "7262031900417"
#define AAD_PREFIX "signing_key:"

/*
 * The current private key, opened once and shared by the worker threads.
 * OpenSSL clears the key material when the last reference is freed.
 */
struct auth_state {
	pthread_mutex_t lock;
	char kid[FA_ID_MAX + 1];
	enum fa_alg alg;
	EVP_PKEY *key;
	int64_t housekeeping_at;
};

static void auth_state_free(void *state)
{
	struct auth_state *st = state;

	if (st == NULL)
		return;
	EVP_PKEY_free(st->key);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

/* Returns the module state, creating it on first use, or NULL. */
static struct auth_state *auth_state(struct fa_service *svc)
{
	struct auth_state *st;

	pthread_mutex_lock(&svc->module_lock);
	st = svc->auth_state;
	if (st == NULL) {
		st = calloc(1, sizeof(*st));
		if (st != NULL) {
			pthread_mutex_init(&st->lock, NULL);
			svc->auth_state = st;
			svc->auth_state_free = auth_state_free;
		}
	}
	pthread_mutex_unlock(&svc->module_lock);
	return st;
}

static const char *alg_name(enum fa_alg alg)
{
	return alg == FA_ALG_ES256 ? "ES256" : "RS256";
}

static bool alg_parse(const char *name, enum fa_alg *alg)
{
	if (strcmp(name, "RS256") == 0)
		*alg = FA_ALG_RS256;
	else if (strcmp(name, "ES256") == 0)
		*alg = FA_ALG_ES256;
	else
		return false;
	return true;
}

/* ------------------------------------------------------------------ */
/* Keys and their PEM forms                                            */
/* ------------------------------------------------------------------ */

/* Creates a fresh key: RSA 2048 for RS256, P-256 for ES256. */
static fa_result key_generate(enum fa_alg alg, EVP_PKEY **key_out)
{
	if (alg == FA_ALG_ES256)
		*key_out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else
		*key_out = EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
		                             (size_t)RSA_GENERATE_BITS);
	return *key_out != NULL ? FA_OK : FA_ERR_CRYPTO;
}

/* Checks that key suits alg: RSA of 2048 bits or more, or EC P-256. */
static fa_result key_check(EVP_PKEY *key, enum fa_alg alg, char *err,
                           size_t err_size)
{
	char group[64] = "";

	if (alg == FA_ALG_RS256) {
		if (!EVP_PKEY_is_a(key, "RSA") ||
		    EVP_PKEY_get_bits(key) < RSA_MIN_BITS) {
			snprintf(err, err_size,
			         "RS256 needs an RSA key of at least %d bits",
			         RSA_MIN_BITS);
			return FA_ERR_INVALID;
		}
		return FA_OK;
	}
	if (!EVP_PKEY_is_a(key, "EC") ||
	    !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME,
	                                    group, sizeof(group), NULL) ||
	    strcmp(group, "prime256v1") != 0) {
		snprintf(err, err_size, "ES256 needs an EC key on P-256");
		return FA_ERR_INVALID;
	}
	return FA_OK;
}

/* Copies the contents of a memory BIO into a NUL-terminated buffer. */
static fa_result bio_copy(BIO *bio, char **out, size_t *out_len)
{
	char *data = NULL;
	long len = BIO_get_mem_data(bio, &data);

	*out = NULL;
	if (len <= 0 || data == NULL)
		return FA_ERR_CRYPTO;
	*out = malloc((size_t)len + 1);
	if (*out == NULL)
		return FA_ERR_NOMEM;
	memcpy(*out, data, (size_t)len);
	(*out)[len] = '\0';
	if (out_len != NULL)
		*out_len = (size_t)len;
	return FA_OK;
}

/*
 * Writes the PKCS#8 private key and the SubjectPublicKeyInfo public key of
 * key as PEM. Both outputs are malloc'd; the caller wipes and frees
 * *private_out.
 */
static fa_result key_to_pem(EVP_PKEY *key, char **private_out,
                            size_t *private_len, char **public_out)
{
	BIO *priv = BIO_new(BIO_s_secmem());
	BIO *pub = BIO_new(BIO_s_mem());
	fa_result result = FA_ERR_CRYPTO;

	*private_out = NULL;
	*public_out = NULL;
	if (priv == NULL || pub == NULL)
		goto out;
	if (!PEM_write_bio_PrivateKey(priv, key, NULL, NULL, 0, NULL, NULL) ||
	    !PEM_write_bio_PUBKEY(pub, key))
		goto out;
	result = bio_copy(priv, private_out, private_len);
	if (result != FA_OK)
		goto out;
	result = bio_copy(pub, public_out, NULL);
out:
	if (result != FA_OK && *private_out != NULL) {
		fa_wipe(*private_out, *private_len);
		free(*private_out);
		*private_out = NULL;
	}
	BIO_free(priv);
	BIO_free(pub);
	return result;
}

/* Reads a private key from a PEM file (unencrypted). */
static fa_result key_read_file(const char *path, EVP_PKEY **key_out)
{
	BIO *bio = BIO_new_file(path, "r");

	*key_out = NULL;
	if (bio == NULL)
		return FA_ERR_IO;
	*key_out = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	return *key_out != NULL ? FA_OK : FA_ERR_INVALID;
}

/* ------------------------------------------------------------------ */
/* Storage and rotation                                                */
/* ------------------------------------------------------------------ */

static void aad_for(const char *kid, char *out, size_t size)
{
	snprintf(out, size, "%s%s", AAD_PREFIX, kid);
}

/* Seals private_pem under the current KEK and hex-encodes it for a bytea
 * parameter. *hex_out is malloc'd and owned by the caller. */
static fa_result seal_private(const struct fa_service *svc, const char *kid,
                              const char *private_pem, size_t private_len,
                              char **hex_out)
{
	char aad[sizeof(AAD_PREFIX) + FA_ID_MAX];
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	fa_result result;

	*hex_out = NULL;
	aad_for(kid, aad, sizeof(aad));
	result = fa_seal(&svc->kek, private_pem, private_len, aad, &blob,
	                 &blob_len);
	if (result != FA_OK)
		return result;
	*hex_out = malloc(2 * blob_len + 3);
	if (*hex_out == NULL) {
		free(blob);
		return FA_ERR_NOMEM;
	}
	(*hex_out)[0] = '\\';
	(*hex_out)[1] = 'x';
	fa_hex_encode(blob, blob_len, *hex_out + 2);
	free(blob);
	return FA_OK;
}

/*
 * Stores key as the new current key in one transaction: the old current
 * key becomes previous, published until now + access_token_ttl +
 * FA_SIGNING_KEY_OVERLAP_EXTRA, and expired previous keys are retired.
 * Writes the new kid into kid_out and the previous kid (or "") into
 * previous_out.
 */
static fa_result key_install(struct fa_service *svc, PGconn *db, EVP_PKEY *key,
                             enum fa_alg alg, char kid_out[FA_ID_MAX + 1],
                             char previous_out[FA_ID_MAX + 1])
{
	char *private_pem = NULL;
	size_t private_len = 0;
	char *public_pem = NULL;
	char *sealed_hex = NULL;
	char overlap[32];
	PGresult *res = NULL;
	fa_result result;

	kid_out[0] = '\0';
	previous_out[0] = '\0';
	if (svc->kek.id[0] == '\0')
		return FA_ERR_NOT_FOUND;
	result = fa_random_id(kid_out);
	if (result != FA_OK)
		goto out;
	result = key_to_pem(key, &private_pem, &private_len, &public_pem);
	if (result != FA_OK)
		goto out;
	result = seal_private(svc, kid_out, private_pem, private_len,
	                      &sealed_hex);
	if (result != FA_OK)
		goto out;
	snprintf(overlap, sizeof(overlap), "%lld",
	         svc->config.access_token_ttl + FA_SIGNING_KEY_OVERLAP_EXTRA);

	result = fa_db_begin(db);
	if (result != FA_OK)
		goto out;
	result = fa_db_command(
	        db, "SELECT pg_advisory_xact_lock(" ROTATION_LOCK_KEY ")", 0,
	        NULL);
	if (result != FA_OK)
		goto rollback;
	result = fa_db_exec(db, &res,
	                    "UPDATE signing_keys SET status = 'previous', "
	                    "publish_until = now() + make_interval(secs => "
	                    "$1::int) WHERE status = 'current' RETURNING kid",
	                    1, (const char *[]){overlap});
	if (result != FA_OK)
		goto rollback;
	if (PQntuples(res) > 0)
		snprintf(previous_out, FA_ID_MAX + 1, "%s",
		         fa_db_value(res, 0, 0));
	result = fa_db_command(
	        db,
	        "INSERT INTO signing_keys (kid, alg, public_pem, private_enc, "
	        "kek_id, status) VALUES ($1, $2, $3, $4::bytea, $5, 'current')",
	        5,
	        (const char *[]){kid_out, alg_name(alg), public_pem, sealed_hex,
	                         svc->kek.id});
	if (result != FA_OK)
		goto rollback;
	result = fa_signing_keys_retire_expired(svc, db);
	if (result != FA_OK)
		goto rollback;
	result = fa_db_commit(db);
	if (result == FA_OK)
		fa_service_keyring_invalidate(svc);
	goto out;
rollback:
	fa_db_rollback(db);
out:
	PQclear(res);
	if (private_pem != NULL) {
		fa_wipe(private_pem, private_len);
		free(private_pem);
	}
	free(public_pem);
	free(sealed_hex);
	return result;
}

fa_result fa_signing_keys_retire_expired(struct fa_service *svc, PGconn *db)
{
	PGresult *res = NULL;
	fa_result result;

	result = fa_db_exec(db, &res,
	                    "UPDATE signing_keys SET status = 'retired' "
	                    "WHERE status = 'previous' AND publish_until <= "
	                    "now() RETURNING kid",
	                    0, NULL);
	if (result == FA_OK && PQntuples(res) > 0)
		fa_service_keyring_invalidate(svc);
	PQclear(res);
	return result;
}

/* ------------------------------------------------------------------ */
/* The current key in memory                                           */
/* ------------------------------------------------------------------ */

/* Opens the sealed private key of kid (bytea text in hex) with its KEK
 * and parses it. */
static fa_result open_private(struct fa_service *svc, const char *kid,
                              const char *kek_id, const char *sealed_text,
                              EVP_PKEY **key_out)
{
	const struct fa_kek *kek = fa_service_kek(svc, kek_id);
	char aad[sizeof(AAD_PREFIX) + FA_ID_MAX];
	unsigned char *blob = NULL;
	size_t blob_len = 0;
	uint8_t *plain = NULL;
	size_t plain_len = 0;
	BIO *bio = NULL;
	fa_result result;

	*key_out = NULL;
	if (kek == NULL) {
		fa_log(FA_LOG_ERROR,
		       (const char *[]){"kid", kid, "kek_id", kek_id, NULL},
		       "signing key is sealed under a KEK that is not loaded; "
		       "add that KEK to kek_previous");
		return FA_ERR_CRYPTO;
	}
	blob = PQunescapeBytea((const unsigned char *)sealed_text, &blob_len);
	if (blob == NULL)
		return FA_ERR_NOMEM;
	aad_for(kid, aad, sizeof(aad));
	result = fa_open(kek, blob, blob_len, aad, &plain, &plain_len);
	PQfreemem(blob);
	if (result != FA_OK) {
		fa_log(FA_LOG_ERROR, (const char *[]){"kid", kid, NULL},
		       "signing key does not open with its KEK");
		return result;
	}
	bio = BIO_new_mem_buf(plain, (int)plain_len);
	if (bio != NULL)
		*key_out = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (*key_out == NULL)
		result = FA_ERR_CRYPTO;
	BIO_free(bio);
	fa_wipe(plain, plain_len);
	free(plain);
	return result;
}

void fa_auth_housekeeping(struct fa_service *svc, PGconn *db)
{
	struct auth_state *st = auth_state(svc);
	int64_t now = fa_now();
	bool due;

	/* Inside a transaction a failed statement would abort the caller's
	 * work, so wait for the next call outside one. */
	if (st == NULL || PQtransactionStatus(db) != PQTRANS_IDLE)
		return;
	pthread_mutex_lock(&st->lock);
	due = now - st->housekeeping_at >= HOUSEKEEPING_INTERVAL;
	if (due)
		st->housekeeping_at = now;
	pthread_mutex_unlock(&st->lock);
	if (!due)
		return;
	if (fa_signing_keys_retire_expired(svc, db) != FA_OK)
		fa_log(FA_LOG_WARNING, NULL,
		       "retiring expired signing keys failed; retrying later");
	if (fa_throttle_prune(db) != FA_OK)
		fa_log(FA_LOG_WARNING, NULL,
		       "deleting stale login_failures and mfa_challenges rows "
		       "failed; retrying later");
}

fa_result fa_signing_key_current(struct fa_service *svc, PGconn *db,
                                 EVP_PKEY **key_out, enum fa_alg *alg,
                                 char kid[FA_ID_MAX + 1])
{
	struct auth_state *st = auth_state(svc);
	char cached[FA_ID_MAX + 1];
	EVP_PKEY *opened = NULL;
	PGresult *res = NULL;
	const char *sealed;
	enum fa_alg db_alg;
	fa_result result;

	*key_out = NULL;
	kid[0] = '\0';
	if (st == NULL)
		return FA_ERR_NOMEM;
	pthread_mutex_lock(&st->lock);
	snprintf(cached, sizeof(cached), "%s", st->kid);
	pthread_mutex_unlock(&st->lock);

	/* The sealed key is fetched only when the kid differs from ours. */
	result = fa_db_exec(db, &res,
	                    "SELECT kid, alg, CASE WHEN kid = $1 THEN NULL "
	                    "ELSE private_enc END, kek_id FROM signing_keys "
	                    "WHERE status = 'current'",
	                    1, (const char *[]){cached});
	if (result != FA_OK)
		goto out;
	if (PQntuples(res) == 0) {
		result = FA_ERR_NOT_FOUND;
		goto out;
	}
	sealed = fa_db_value(res, 0, 2);
	if (!alg_parse(fa_db_value(res, 0, 1), &db_alg)) {
		result = FA_ERR_INVALID;
		goto out;
	}
	if (sealed != NULL) {
		result = open_private(svc, fa_db_value(res, 0, 0),
		                      fa_db_value(res, 0, 3), sealed, &opened);
		if (result != FA_OK)
			goto out;
	}

	pthread_mutex_lock(&st->lock);
	if (opened != NULL) {
		EVP_PKEY_free(st->key);
		st->key = opened;
		st->alg = db_alg;
		snprintf(st->kid, sizeof(st->kid), "%s",
		         fa_db_value(res, 0, 0));
		opened = NULL;
	}
	/*
	 * Another thread may have cached a different kid since the query.
	 * Both were current moments ago, so either one produces tokens that
	 * verify during the overlap.
	 */
	if (st->key != NULL && EVP_PKEY_up_ref(st->key)) {
		*key_out = st->key;
		*alg = st->alg;
		snprintf(kid, FA_ID_MAX + 1, "%s", st->kid);
	} else {
		result = FA_ERR_NOT_FOUND;
	}
	pthread_mutex_unlock(&st->lock);
out:
	EVP_PKEY_free(opened);
	PQclear(res);
	return result;
}

fa_result fa_signing_key_check(struct fa_service *svc, PGconn *db,
                               char kid[FA_ID_MAX + 1])
{
	EVP_PKEY *key = NULL;
	enum fa_alg alg;
	fa_result result;

	result = fa_signing_key_current(svc, db, &key, &alg, kid);
	EVP_PKEY_free(key);
	return result;
}

/* ------------------------------------------------------------------ */
/* JWKS                                                                */
/* ------------------------------------------------------------------ */

/* Adds member name = base64url of the big-endian bytes of param. pad is
 * the fixed length for EC coordinates, 0 for the minimal length. */
static bool add_bn_member(cJSON *jwk, const char *name, EVP_PKEY *key,
                          const char *param, int pad)
{
	BIGNUM *bn = NULL;
	unsigned char bytes[1024];
	char text[1400];
	int len;
	bool ok = false;

	if (!EVP_PKEY_get_bn_param(key, param, &bn))
		return false;
	len = pad > 0 ? pad : BN_num_bytes(bn);
	if (len <= 0 || len > (int)sizeof(bytes))
		goto out;
	if (BN_bn2binpad(bn, bytes, len) != len)
		goto out;
	if (fa_b64url_encode(bytes, (size_t)len, text, sizeof(text)) == 0)
		goto out;
	ok = cJSON_AddStringToObject(jwk, name, text) != NULL;
out:
	BN_free(bn);
	return ok;
}

/* Builds the JWK of one public key in PEM, or NULL. */
static cJSON *jwk_from_pem(const char *kid, const char *alg,
                           const char *public_pem)
{
	BIO *bio = BIO_new_mem_buf(public_pem, -1);
	EVP_PKEY *key = NULL;
	cJSON *jwk = cJSON_CreateObject();
	bool ok = false;

	if (bio == NULL || jwk == NULL)
		goto out;
	key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (key == NULL)
		goto out;
	if (EVP_PKEY_is_a(key, "RSA")) {
		ok = cJSON_AddStringToObject(jwk, "kty", "RSA") != NULL &&
		     add_bn_member(jwk, "n", key, OSSL_PKEY_PARAM_RSA_N, 0) &&
		     add_bn_member(jwk, "e", key, OSSL_PKEY_PARAM_RSA_E, 0);
	} else if (EVP_PKEY_is_a(key, "EC")) {
		ok = cJSON_AddStringToObject(jwk, "kty", "EC") != NULL &&
		     cJSON_AddStringToObject(jwk, "crv", "P-256") != NULL &&
		     add_bn_member(jwk, "x", key, OSSL_PKEY_PARAM_EC_PUB_X,
		                   32) &&
		     add_bn_member(jwk, "y", key, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
	}
	ok = ok && cJSON_AddStringToObject(jwk, "kid", kid) != NULL &&
	     cJSON_AddStringToObject(jwk, "alg", alg) != NULL &&
	     cJSON_AddStringToObject(jwk, "use", "sig") != NULL;
out:
	EVP_PKEY_free(key);
	BIO_free(bio);
	if (!ok) {
		cJSON_Delete(jwk);
		return NULL;
	}
	return jwk;
}

void fa_handle_jwks(struct fa_request *req)
{
	PGresult *res = NULL;
	cJSON *doc = cJSON_CreateObject();
	cJSON *keys = cJSON_AddArrayToObject(doc, "keys");
	fa_result result;
	int i;

	if (doc == NULL || keys == NULL) {
		fa_reply_status(req, 500, NULL);
		goto out;
	}
	fa_auth_housekeeping(req->svc, req->db);
	result = fa_db_exec(req->db, &res,
	                    "SELECT kid, alg, public_pem FROM signing_keys "
	                    "WHERE status = 'current' OR (status = 'previous' "
	                    "AND publish_until > now()) ORDER BY created_at "
	                    "DESC",
	                    0, NULL);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		goto out;
	}
	for (i = 0; i < PQntuples(res); i++) {
		cJSON *jwk = jwk_from_pem(fa_db_value(res, i, 0),
		                          fa_db_value(res, i, 1),
		                          fa_db_value(res, i, 2));

		if (jwk == NULL) {
			fa_request_log(req, FA_LOG_ERROR,
			               "public key of %s does not parse",
			               fa_db_value(res, i, 0));
			continue;
		}
		cJSON_AddItemToArray(keys, jwk);
	}
	/* A verifier that meets an unknown kid refetches at once, so the
	 * cache lifetime only delays when it drops a retired key. */
	fa_reply_header(req, "Cache-Control", "public, max-age=60");
	fa_reply_json(req, 200, doc);
	doc = NULL;
out:
	cJSON_Delete(doc);
	PQclear(res);
}

/* ------------------------------------------------------------------ */
/* HTTP: list and rotate                                               */
/* ------------------------------------------------------------------ */

static cJSON *key_row_json(const PGresult *res, int row)
{
	cJSON *item = cJSON_CreateObject();
	const char *until = fa_db_value(res, row, 4);

	if (item == NULL)
		return NULL;
	cJSON_AddStringToObject(item, "kid", fa_db_value(res, row, 0));
	cJSON_AddStringToObject(item, "alg", fa_db_value(res, row, 1));
	cJSON_AddStringToObject(item, "status", fa_db_value(res, row, 2));
	cJSON_AddStringToObject(item, "created_at", fa_db_value(res, row, 3));
	if (until != NULL)
		cJSON_AddStringToObject(item, "publish_until", until);
	else
		cJSON_AddNullToObject(item, "publish_until");
	return item;
}

#define KEY_COLUMNS                                                            \
	"kid, alg, status, to_char(created_at AT TIME ZONE 'UTC', "            \
	"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), to_char(publish_until AT TIME "    \
	"ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

void fa_handle_signing_key_list(struct fa_request *req)
{
	PGresult *res = NULL;
	cJSON *doc = NULL;
	cJSON *items;
	fa_result result;
	int i;

	if (!fa_require_role(req, FA_ROLE_SYSTEM_OPERATOR))
		return;
	result = fa_db_exec(req->db, &res,
	                    "SELECT " KEY_COLUMNS " FROM signing_keys "
	                    "ORDER BY created_at DESC, kid",
	                    0, NULL);
	if (result != FA_OK) {
		fa_reply_db_error(req, result);
		goto out;
	}
	doc = cJSON_CreateObject();
	items = cJSON_AddArrayToObject(doc, "items");
	if (items == NULL) {
		fa_reply_status(req, 500, NULL);
		goto out;
	}
	for (i = 0; i < PQntuples(res); i++)
		cJSON_AddItemToArray(items, key_row_json(res, i));
	fa_reply_json(req, 200, doc);
	doc = NULL;
out:
	cJSON_Delete(doc);
	PQclear(res);
}

/* Algorithm for a rotation: the body's "alg", else the current key's. */
static bool rotation_alg(struct fa_request *req, enum fa_alg *alg)
{
	static const char *const fields[] = {"alg", NULL};
	const char *name = NULL;
	PGresult *res = NULL;

	*alg = FA_ALG_RS256;
	if (req->body != NULL) {
		if (!fa_json_only_fields(req, fields) ||
		    !fa_json_string(req, "alg", false, 8, FA_STR_NONEMPTY,
		                    &name))
			return false;
		if (name != NULL && !alg_parse(name, alg)) {
			fa_reply_problem(req, 400, FA_PROBLEM_INVALID_FIELD,
			                 "Invalid field",
			                 "alg must be \"RS256\" or \"ES256\"");
			return false;
		}
		if (name != NULL)
			return true;
	}
	if (fa_db_exec(req->db, &res,
	               "SELECT alg FROM signing_keys WHERE status = 'current'",
	               0, NULL) == FA_OK &&
	    PQntuples(res) > 0)
		alg_parse(fa_db_value(res, 0, 0), alg);
	PQclear(res);
	return true;
}

void fa_handle_signing_key_rotate(struct fa_request *req)
{
	char kid[FA_ID_MAX + 1] = "";
	char previous[FA_ID_MAX + 1] = "";
	EVP_PKEY *key = NULL;
	PGresult *res = NULL;
	cJSON *detail = NULL;
	enum fa_alg alg;
	fa_result result;

	if (!fa_require_role(req, FA_ROLE_SYSTEM_ADMIN))
		return;
	if (!rotation_alg(req, &alg))
		return;
	result = key_generate(alg, &key);
	if (result == FA_OK)
		result =
		        key_install(req->svc, req->db, key, alg, kid, previous);
	detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "alg", alg_name(alg));
	if (previous[0] != '\0')
		cJSON_AddStringToObject(detail, "previous_kid", previous);
	if (result != FA_OK) {
		fa_audit(req, "signing_key.rotate", NULL, "failure", detail);
		fa_request_log(req, FA_LOG_ERROR, "key rotation failed: %s",
		               fa_result_str(result));
		if (result == FA_ERR_IO)
			fa_reply_db_error(req, result);
		else
			fa_reply_status(req, 500, NULL);
		goto out;
	}
	fa_audit(req, "signing_key.rotate", kid, "success", detail);
	result = fa_db_exec(req->db, &res,
	                    "SELECT " KEY_COLUMNS
	                    " FROM signing_keys WHERE kid = $1",
	                    1, (const char *[]){kid});
	if (result != FA_OK || PQntuples(res) != 1) {
		fa_reply_db_error(req, result != FA_OK ? result : FA_ERR_IO);
		goto out;
	}
	fa_reply_json(req, 200, key_row_json(res, 0));
out:
	cJSON_Delete(detail);
	EVP_PKEY_free(key);
	PQclear(res);
}

/* ------------------------------------------------------------------ */
/* fleetauthd signing-key ...                                          */
/* ------------------------------------------------------------------ */

static void print_usage(FILE *out)
{
	fprintf(out,
	        "usage: fleetauthd signing-key generate --alg RS256|ES256\n"
	        "       fleetauthd signing-key import --alg RS256|ES256 "
	        "--file PEM\n"
	        "Stores a new current token-signing key; the old current key "
	        "stays\npublished as previous until its tokens expire.\n");
}

struct key_command {
	const char *action;
	const char *alg;
	const char *file;
};

/* Parses argv into cmd; prints the problem and returns false on error. */
static bool parse_key_command(int argc, char **argv, struct key_command *cmd)
{
	int i;

	memset(cmd, 0, sizeof(*cmd));
	if (argc < 2) {
		print_usage(stderr);
		return false;
	}
	cmd->action = argv[1];
	for (i = 2; i < argc; i++) {
		const char **slot = NULL;

		if (strcmp(argv[i], "--alg") == 0)
			slot = &cmd->alg;
		else if (strcmp(argv[i], "--file") == 0)
			slot = &cmd->file;
		if (slot == NULL || i + 1 >= argc) {
			fprintf(stderr,
			        "signing-key: unknown or incomplete "
			        "option \"%s\"\n",
			        argv[i]);
			print_usage(stderr);
			return false;
		}
		*slot = argv[++i];
	}
	if (strcmp(cmd->action, "generate") != 0 &&
	    strcmp(cmd->action, "import") != 0) {
		fprintf(stderr, "signing-key: unknown action \"%s\"\n",
		        cmd->action);
		print_usage(stderr);
		return false;
	}
	if (strcmp(cmd->action, "import") == 0 && cmd->file == NULL) {
		fprintf(stderr, "signing-key import: --file is required\n");
		return false;
	}
	return true;
}

/* Loads or generates the key that cmd names and checks it. */
static fa_result command_key(const struct key_command *cmd, enum fa_alg alg,
                             EVP_PKEY **key_out)
{
	char err[128];
	fa_result result;

	if (strcmp(cmd->action, "generate") == 0)
		return key_generate(alg, key_out);
	result = key_read_file(cmd->file, key_out);
	if (result != FA_OK) {
		fprintf(stderr,
		        "signing-key import: cannot read an unencrypted PEM "
		        "private key from %s\n",
		        cmd->file);
		return result;
	}
	result = key_check(*key_out, alg, err, sizeof(err));
	if (result != FA_OK)
		fprintf(stderr, "signing-key import: %s: %s\n", cmd->file, err);
	return result;
}

int fa_cmd_signing_key(struct fa_service *svc, int argc, char **argv)
{
	struct key_command cmd;
	char kid[FA_ID_MAX + 1] = "";
	char previous[FA_ID_MAX + 1] = "";
	EVP_PKEY *key = NULL;
	PGconn *db = NULL;
	cJSON *detail = NULL;
	enum fa_alg alg = FA_ALG_RS256;
	fa_result result;
	int status = 1;

	if (!parse_key_command(argc, argv, &cmd))
		return 2;
	if (cmd.alg != NULL && !alg_parse(cmd.alg, &alg)) {
		fprintf(stderr,
		        "signing-key: --alg must be RS256 or ES256, "
		        "not \"%s\"\n",
		        cmd.alg);
		return 2;
	}
	if (svc->kek.id[0] == '\0') {
		fprintf(stderr, "signing-key: no KEK loaded; set kek_file and "
		                "kek_id in the configuration\n");
		return 1;
	}
	if (command_key(&cmd, alg, &key) != FA_OK)
		goto out;
	result = fa_db_connect(svc, &db);
	if (result != FA_OK) {
		fprintf(stderr, "signing-key: cannot connect to the "
		                "database\n");
		goto out;
	}
	result = key_install(svc, db, key, alg, kid, previous);
	detail = cJSON_CreateObject();
	cJSON_AddStringToObject(detail, "alg", alg_name(alg));
	cJSON_AddStringToObject(detail, "source", cmd.action);
	if (result != FA_OK) {
		fprintf(stderr, "signing-key: storing the key failed: %s\n",
		        fa_result_str(result));
		goto out;
	}
	fa_audit_record(db, "fleetauthd", "signing_key.create", kid, "success",
	                NULL, NULL, detail);
	printf("%s %s\n", kid, alg_name(alg));
	status = 0;
out:
	cJSON_Delete(detail);
	EVP_PKEY_free(key);
	if (db != NULL)
		PQfinish(db);
	return status;
}
