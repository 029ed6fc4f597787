/*
 * Fleet CA: CA creation, import and storage, device certificates and CRLs.
 * CSR checks are in ca_csr.c and the "fleetauthd ca" command in ca_cmd.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "fa_ids.h"
#include "service.h"

#define CA_SUBJECT_CN "fleetauth fleet CA"
#define CRL_MAX_AGE_SECONDS 3600
/* Device certificates start this many seconds in the past so that a device
 * whose clock is slightly behind accepts them. */
#define CERT_BACKDATE_SECONDS 300
#define SERIAL_BYTES 16

/*
 * Opened CA key and the last CRL, kept in svc->device_state. lock guards
 * every field; signing happens under it.
 */
struct device_state {
	pthread_mutex_t lock;
	long ca_id;
	X509 *ca_cert;
	EVP_PKEY *ca_key;
	long crl_ca_id;
	uint8_t crl_rows_hash[FA_SHA256_LEN];
	int64_t crl_built_at;
	uint8_t *crl_der;
	size_t crl_der_len;
};

void fa_issued_cert_clear(struct fa_issued_cert *cert)
{
	free(cert->pem);
	memset(cert, 0, sizeof(*cert));
}

static void device_state_free(void *state)
{
	struct device_state *ds = state;

	if (ds == NULL)
		return;
	X509_free(ds->ca_cert);
	EVP_PKEY_free(ds->ca_key);
	OPENSSL_free(ds->crl_der);
	pthread_mutex_destroy(&ds->lock);
	free(ds);
}

/* Returns the module state, creating it on first use; NULL when out of
 * memory. The state is owned by svc and freed at shutdown. */
static struct device_state *device_state_get(struct fa_service *svc)
{
	struct device_state *ds;

	pthread_mutex_lock(&svc->module_lock);
	ds = svc->device_state;
	if (ds == NULL) {
		ds = calloc(1, sizeof(*ds));
		if (ds != NULL) {
			pthread_mutex_init(&ds->lock, NULL);
			ds->ca_id = -1;
			ds->crl_ca_id = -1;
			svc->device_state = ds;
			svc->device_state_free = device_state_free;
		}
	}
	pthread_mutex_unlock(&svc->module_lock);
	return ds;
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static void set_err(char *err, size_t err_size, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_size, const char *format, ...)
{
	va_list ap;

	if (err == NULL || err_size == 0)
		return;
	va_start(ap, format);
	vsnprintf(err, err_size, format, ap);
	va_end(ap);
}

/* Copies the contents of a memory BIO into a malloc'd NUL-terminated
 * string. */
static fa_result bio_to_string(BIO *bio, char **out)
{
	char *data = NULL;
	long len;
	char *copy;

	*out = NULL;
	len = BIO_get_mem_data(bio, &data);
	if (len < 0)
		return FA_ERR_CRYPTO;
	copy = malloc((size_t)len + 1);
	if (copy == NULL)
		return FA_ERR_NOMEM;
	memcpy(copy, data, (size_t)len);
	copy[len] = '\0';
	*out = copy;
	return FA_OK;
}

static fa_result cert_to_pem(X509 *cert, char **out)
{
	fa_result result = FA_ERR_CRYPTO;
	BIO *bio;

	*out = NULL;
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL)
		return FA_ERR_NOMEM;
	if (PEM_write_bio_X509(bio, cert) == 1)
		result = bio_to_string(bio, out);
	BIO_free(bio);
	return result;
}

static X509 *cert_from_pem(const char *pem)
{
	BIO *bio;
	X509 *cert;

	bio = BIO_new_mem_buf(pem, -1);
	if (bio == NULL)
		return NULL;
	cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	return cert;
}

/* Decodes a bytea value in PostgreSQL's text output format. *out is
 * PQfreemem'd by the caller. */
static fa_result bytea_from_text(const char *text, unsigned char **out,
                                 size_t *out_len)
{
	*out = NULL;
	if (text == NULL)
		return FA_ERR_INVALID;
	*out = PQunescapeBytea((const unsigned char *)text, out_len);
	if (*out == NULL)
		return FA_ERR_NOMEM;
	return FA_OK;
}

/* Encodes bytes as a bytea literal "\x<hex>" for a text parameter. */
static char *bytea_to_text(const uint8_t *data, size_t len)
{
	char *text;

	text = malloc(2 * len + 3);
	if (text == NULL)
		return NULL;
	text[0] = '\\';
	text[1] = 'x';
	fa_hex_encode(data, len, text + 2);
	return text;
}

static void lower_ascii(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
	}
}

/* ------------------------------------------------------------------ */
/* Certificate building                                                */
/* ------------------------------------------------------------------ */

/* Adds one extension given in OpenSSL's configuration syntax. */
static fa_result add_ext(X509 *cert, X509V3_CTX *ctx, int nid,
                         const char *value)
{
	X509_EXTENSION *ext;
	int ok;

	ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	if (ext == NULL)
		return FA_ERR_CRYPTO;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? FA_OK : FA_ERR_CRYPTO;
}

/* Sets a positive random serial of at most SERIAL_BYTES bytes. */
static fa_result set_random_serial(X509 *cert)
{
	fa_result result;
	uint8_t bytes[SERIAL_BYTES];
	BIGNUM *bn = NULL;

	do {
		result = fa_random_bytes(bytes, sizeof(bytes));
		if (result != FA_OK)
			return result;
		bytes[0] &= 0x7f;
		bn = BN_bin2bn(bytes, sizeof(bytes), bn);
		if (bn == NULL)
			return FA_ERR_NOMEM;
	} while (BN_is_zero(bn));
	result = FA_ERR_CRYPTO;
	if (BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL)
		result = FA_OK;
	BN_free(bn);
	return result;
}

/* Lower-case hex of the certificate serial without leading zeros. */
static fa_result serial_hex(X509 *cert, char *out, size_t out_size)
{
	BIGNUM *bn;
	char *hex;
	fa_result result = FA_ERR_CRYPTO;

	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	if (bn == NULL)
		return FA_ERR_CRYPTO;
	hex = BN_bn2hex(bn);
	/* BN_bn2hex prints whole bytes, so "0A..." can start with a zero. */
	if (hex != NULL && hex[0] == '0' && hex[1] != '\0')
		memmove(hex, hex + 1, strlen(hex));
	if (hex != NULL && strlen(hex) < out_size) {
		snprintf(out, out_size, "%s", hex);
		lower_ascii(out);
		result = FA_OK;
	}
	OPENSSL_free(hex);
	BN_free(bn);
	return result;
}

fa_result fa_cert_fingerprint(X509 *cert, char out[65])
{
	unsigned char *der = NULL;
	uint8_t digest[FA_SHA256_LEN];
	int len;

	len = i2d_X509(cert, &der);
	if (len <= 0)
		return FA_ERR_CRYPTO;
	fa_sha256(der, (size_t)len, digest);
	OPENSSL_free(der);
	fa_hex_encode(digest, sizeof(digest), out);
	return FA_OK;
}

/*
 * Builds the DNS name of a device: the id in lower case with '_' turned
 * into '-', under "devices.fleetauth.invalid" (a reserved name that never
 * resolves). Returns false when the id is not a valid DNS label.
 */
static bool device_dns_name(const char *device_id, char *out, size_t size)
{
	size_t len = strlen(device_id);
	size_t i;

	if (len == 0 || len > 63 || device_id[0] == '-' ||
	    device_id[len - 1] == '-' || device_id[0] == '_' ||
	    device_id[len - 1] == '_')
		return false;
	if ((size_t)snprintf(out, size, "%s.devices.fleetauth.invalid",
	                     device_id) >= size)
		return false;
	for (i = 0; i < len; i++) {
		if (out[i] == '_')
			out[i] = '-';
	}
	lower_ascii(out);
	return true;
}

static fa_result add_device_extensions(X509 *cert, X509 *ca_cert, EVP_PKEY *key,
                                       const char *device_id)
{
	fa_result result;
	X509V3_CTX ctx;
	char dns[128];
	char san[256];
	const char *usage = "critical,digitalSignature";

	X509V3_set_ctx(&ctx, ca_cert, cert, NULL, NULL, 0);
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA)
		usage = "critical,digitalSignature,keyEncipherment";
	if (device_dns_name(device_id, dns, sizeof(dns)))
		snprintf(san, sizeof(san), "URI:urn:fleetauth:device:%s,DNS:%s",
		         device_id, dns);
	else
		snprintf(san, sizeof(san), "URI:urn:fleetauth:device:%s",
		         device_id);
	result =
	        add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE");
	if (result == FA_OK)
		result = add_ext(cert, &ctx, NID_key_usage, usage);
	if (result == FA_OK)
		result = add_ext(cert, &ctx, NID_ext_key_usage, "clientAuth");
	if (result == FA_OK)
		result =
		        add_ext(cert, &ctx, NID_subject_key_identifier, "hash");
	if (result == FA_OK)
		result = add_ext(cert, &ctx, NID_authority_key_identifier,
		                 "keyid:always");
	if (result == FA_OK)
		result = add_ext(cert, &ctx, NID_subject_alt_name, san);
	return result;
}

/* Builds and signs a device certificate; *out is owned by the caller. */
static fa_result build_device_cert(X509 *ca_cert, EVP_PKEY *ca_key,
                                   EVP_PKEY *key, const char *device_id,
                                   const char *carrier, int days, time_t now,
                                   X509 **out)
{
	fa_result result = FA_ERR_CRYPTO;
	X509 *cert;
	X509_NAME *name;

	*out = NULL;
	cert = X509_new();
	if (cert == NULL)
		return FA_ERR_NOMEM;
	if (X509_set_version(cert, X509_VERSION_3) != 1)
		goto out;
	result = set_random_serial(cert);
	if (result != FA_OK)
		goto out;
	result = FA_ERR_CRYPTO;
	if (ASN1_TIME_adj(X509_getm_notBefore(cert), now, 0,
	                  -CERT_BACKDATE_SECONDS) == NULL ||
	    ASN1_TIME_adj(X509_getm_notAfter(cert), now, days, 0) == NULL)
		goto out;
	name = X509_get_subject_name(cert);
	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                               (const unsigned char *)device_id, -1, -1,
	                               0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	                               (const unsigned char *)carrier, -1, -1,
	                               0) != 1)
		goto out;
	if (X509_set_issuer_name(cert, X509_get_subject_name(ca_cert)) != 1 ||
	    X509_set_pubkey(cert, key) != 1)
		goto out;
	result = add_device_extensions(cert, ca_cert, key, device_id);
	if (result != FA_OK)
		goto out;
	result = FA_ERR_CRYPTO;
	if (X509_sign(cert, ca_key, EVP_sha256()) <= 0)
		goto out;
	*out = cert;
	cert = NULL;
	result = FA_OK;
out:
	X509_free(cert);
	ERR_clear_error();
	return result;
}

/* ------------------------------------------------------------------ */
/* CA generation, import and storage                                   */
/* ------------------------------------------------------------------ */

static EVP_PKEY *generate_key(const char *alg)
{
	if (strcmp(alg, "ec") == 0)
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (strcmp(alg, "rsa") == 0)
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
	return NULL;
}

fa_result fa_ca_generate(const char *alg, int days, X509 **cert_out,
                         EVP_PKEY **key_out)
{
	fa_result result = FA_ERR_CRYPTO;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	X509_NAME *name;
	X509V3_CTX ctx;

	*cert_out = NULL;
	*key_out = NULL;
	if (days < 1 || days > 36500)
		return FA_ERR_INVALID;
	if (strcmp(alg, "ec") != 0 && strcmp(alg, "rsa") != 0)
		return FA_ERR_INVALID;
	key = generate_key(alg);
	cert = X509_new();
	if (key == NULL || cert == NULL)
		goto out;
	if (X509_set_version(cert, X509_VERSION_3) != 1)
		goto out;
	result = set_random_serial(cert);
	if (result != FA_OK)
		goto out;
	result = FA_ERR_CRYPTO;
	if (X509_gmtime_adj(X509_getm_notBefore(cert), 0) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, NULL) == NULL)
		goto out;
	name = X509_get_subject_name(cert);
	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                               (const unsigned char *)CA_SUBJECT_CN, -1,
	                               -1, 0) != 1)
		goto out;
	if (X509_set_issuer_name(cert, name) != 1 ||
	    X509_set_pubkey(cert, key) != 1)
		goto out;
	X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
	result = add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:TRUE");
	if (result == FA_OK)
		result = add_ext(cert, &ctx, NID_key_usage,
		                 "critical,keyCertSign,cRLSign");
	if (result == FA_OK)
		result =
		        add_ext(cert, &ctx, NID_subject_key_identifier, "hash");
	if (result != FA_OK)
		goto out;
	result = FA_ERR_CRYPTO;
	if (X509_sign(cert, key, EVP_sha256()) <= 0)
		goto out;
	*cert_out = cert;
	*key_out = key;
	cert = NULL;
	key = NULL;
	result = FA_OK;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return result;
}

fa_result fa_ca_check_pair(X509 *cert, EVP_PKEY *key, char *err,
                           size_t err_size)
{
	fa_result result = FA_ERR_INVALID;

	if (X509_check_private_key(cert, key) != 1) {
		set_err(err, err_size,
		        "the private key does not belong to the certificate");
		goto out;
	}
	if (X509_check_ca(cert) != 1 ||
	    (X509_get_extension_flags(cert) & EXFLAG_CA) == 0) {
		set_err(err, err_size,
		        "the certificate is not a CA: it needs "
		        "basicConstraints CA:TRUE");
		goto out;
	}
	if ((X509_get_extension_flags(cert) & EXFLAG_KUSAGE) != 0 &&
	    (X509_get_key_usage(cert) & KU_KEY_CERT_SIGN) == 0) {
		set_err(err, err_size,
		        "the certificate's keyUsage lacks keyCertSign");
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0 ||
	    X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
		set_err(err, err_size,
		        "the certificate is expired or not yet valid");
		goto out;
	}
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA &&
	    EVP_PKEY_get_bits(key) < 2048) {
		set_err(err, err_size,
		        "the CA key has %d RSA bits: use at least 2048",
		        EVP_PKEY_get_bits(key));
		goto out;
	}
	result = FA_OK;
out:
	ERR_clear_error();
	return result;
}

/* Seals the PKCS#8 PEM of key under kek with AAD "fleet_ca:<id>". */
static fa_result seal_ca_key(const struct fa_kek *kek, EVP_PKEY *key,
                             const char *id, uint8_t **blob, size_t *blob_len)
{
	fa_result result = FA_ERR_CRYPTO;
	char aad[64];
	BIO *bio;
	char *data = NULL;
	long len;

	*blob = NULL;
	bio = BIO_new(BIO_s_secmem());
	if (bio == NULL)
		return FA_ERR_NOMEM;
	if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1)
		goto out;
	len = BIO_get_mem_data(bio, &data);
	if (len <= 0)
		goto out;
	snprintf(aad, sizeof(aad), "fleet_ca:%s", id);
	result = fa_seal(kek, data, (size_t)len, aad, blob, blob_len);
	fa_wipe(data, (size_t)len);
out:
	BIO_free(bio);
	return result;
}

fa_result fa_ca_store(PGconn *db, const struct fa_kek *kek, X509 *cert,
                      EVP_PKEY *key, long *id)
{
	fa_result result;
	PGresult *res = NULL;
	char id_text[32];
	char *cert_pem = NULL;
	char *blob_text = NULL;
	uint8_t *blob = NULL;
	size_t blob_len = 0;

	*id = -1;
	result = cert_to_pem(cert, &cert_pem);
	if (result != FA_OK)
		goto out;
	result = fa_db_begin(db);
	if (result != FA_OK)
		goto out;
	result = fa_db_exec_one(
	        db, &res,
	        "SELECT nextval(pg_get_serial_sequence('fleet_ca', 'id'))", 0,
	        NULL);
	if (result != FA_OK)
		goto rollback;
	snprintf(id_text, sizeof(id_text), "%s", fa_db_value(res, 0, 0));
	result = seal_ca_key(kek, key, id_text, &blob, &blob_len);
	if (result != FA_OK)
		goto rollback;
	blob_text = bytea_to_text(blob, blob_len);
	if (blob_text == NULL) {
		result = FA_ERR_NOMEM;
		goto rollback;
	}
	result = fa_db_command(db,
	                       "UPDATE fleet_ca SET status = 'retired' "
	                       "WHERE status = 'previous'",
	                       0, NULL);
	if (result == FA_OK)
		result = fa_db_command(db,
		                       "UPDATE fleet_ca SET status = "
		                       "'previous' WHERE status = 'current'",
		                       0, NULL);
	if (result == FA_OK)
		result = fa_db_command(
		        db,
		        "INSERT INTO fleet_ca (id, cert_pem, key_enc, kek_id, "
		        "status) VALUES ($1, $2, $3, $4, 'current')",
		        4,
		        (const char *[]){id_text, cert_pem, blob_text,
		                         kek->id});
	if (result != FA_OK)
		goto rollback;
	result = fa_db_commit(db);
	if (result == FA_OK)
		*id = strtol(id_text, NULL, 10);
	goto out;
rollback:
	fa_db_rollback(db);
out:
	PQclear(res);
	free(cert_pem);
	free(blob_text);
	free(blob);
	return result;
}

/* ------------------------------------------------------------------ */
/* Loading the current CA                                              */
/* ------------------------------------------------------------------ */

/* Opens a sealed CA key. */
static fa_result open_ca_key(struct fa_service *svc, const char *id,
                             const char *kek_id, const char *blob_text,
                             EVP_PKEY **out)
{
	fa_result result;
	const struct fa_kek *kek;
	unsigned char *blob = NULL;
	size_t blob_len = 0;
	uint8_t *plain = NULL;
	size_t plain_len = 0;
	char aad[64];
	BIO *bio;

	*out = NULL;
	kek = fa_service_kek(svc, kek_id);
	if (kek == NULL) {
		fa_log(FA_LOG_ERROR,
		       (const char *[]){"ca_id", id, "kek_id", kek_id, NULL},
		       "fleet CA key is sealed under an unknown KEK; "
		       "configure it in kek_previous");
		return FA_ERR_CRYPTO;
	}
	result = bytea_from_text(blob_text, &blob, &blob_len);
	if (result != FA_OK)
		return result;
	snprintf(aad, sizeof(aad), "fleet_ca:%s", id);
	result = fa_open(kek, blob, blob_len, aad, &plain, &plain_len);
	PQfreemem(blob);
	if (result != FA_OK)
		return result;
	result = FA_ERR_CRYPTO;
	bio = BIO_new_mem_buf(plain, (int)plain_len);
	if (bio != NULL) {
		*out = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		BIO_free(bio);
	}
	if (*out != NULL)
		result = FA_OK;
	fa_wipe(plain, plain_len);
	free(plain);
	ERR_clear_error();
	return result;
}

/*
 * Makes ds hold the current CA from the database, opening its key only
 * when the current CA changed. Caller holds ds->lock.
 */
static fa_result load_current_ca(struct fa_service *svc, PGconn *db,
                                 struct device_state *ds)
{
	fa_result result;
	PGresult *res = NULL;
	const char *id_text;
	long id;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;

	result =
	        fa_db_exec(db, &res,
	                   "SELECT id, cert_pem, key_enc, kek_id FROM fleet_ca "
	                   "WHERE status = 'current'",
	                   0, NULL);
	if (result != FA_OK)
		return result;
	if (PQntuples(res) != 1) {
		result = FA_ERR_NOT_FOUND;
		goto out;
	}
	id_text = fa_db_value(res, 0, 0);
	id = strtol(id_text, NULL, 10);
	if (id == ds->ca_id && ds->ca_key != NULL)
		goto out;
	cert = cert_from_pem(fa_db_value(res, 0, 1));
	if (cert == NULL) {
		result = FA_ERR_CRYPTO;
		goto out;
	}
	result = open_ca_key(svc, id_text, fa_db_value(res, 0, 3),
	                     fa_db_value(res, 0, 2), &key);
	if (result != FA_OK)
		goto out;
	X509_free(ds->ca_cert);
	EVP_PKEY_free(ds->ca_key);
	ds->ca_cert = cert;
	ds->ca_key = key;
	ds->ca_id = id;
	cert = NULL;
	key = NULL;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	PQclear(res);
	return result;
}

fa_result fa_ca_issue(struct fa_service *svc, PGconn *db, X509_REQ *req,
                      const char *device_id, const char *carrier, int days,
                      struct fa_issued_cert *out)
{
	fa_result result;
	struct device_state *ds;
	X509 *cert = NULL;
	time_t now = (time_t)fa_now();

	memset(out, 0, sizeof(*out));
	if (days < 1 || days > FA_DEVICE_CERT_MAX_DAYS)
		return FA_ERR_INVALID;
	ds = device_state_get(svc);
	if (ds == NULL)
		return FA_ERR_NOMEM;
	pthread_mutex_lock(&ds->lock);
	result = load_current_ca(svc, db, ds);
	if (result == FA_OK)
		result = build_device_cert(ds->ca_cert, ds->ca_key,
		                           X509_REQ_get0_pubkey(req), device_id,
		                           carrier, days, now, &cert);
	pthread_mutex_unlock(&ds->lock);
	if (result != FA_OK)
		goto out;
	result = serial_hex(cert, out->serial, sizeof(out->serial));
	if (result == FA_OK)
		result = fa_cert_fingerprint(cert, out->fingerprint);
	if (result == FA_OK)
		result = cert_to_pem(cert, &out->pem);
	if (result != FA_OK)
		goto out;
	out->not_before = now - CERT_BACKDATE_SECONDS;
	out->not_after = now + (time_t)days * 86400;
out:
	if (result != FA_OK)
		fa_issued_cert_clear(out);
	X509_free(cert);
	return result;
}

fa_result fa_ca_chain_pem(PGconn *db, char **out)
{
	fa_result result;
	PGresult *res = NULL;

	*out = NULL;
	result = fa_db_exec_one(
	        db, &res,
	        "SELECT cert_pem FROM fleet_ca WHERE status = 'current'", 0,
	        NULL);
	if (result != FA_OK)
		return result;
	*out = strdup(fa_db_value(res, 0, 0));
	PQclear(res);
	return *out != NULL ? FA_OK : FA_ERR_NOMEM;
}

/* ------------------------------------------------------------------ */
/* CRL                                                                 */
/* ------------------------------------------------------------------ */

/* CRL reason code (RFC 5280 section 5.3.1) for a stored revocation, or -1
 * to leave the reason out, which RFC 5280 prefers to "unspecified". */
static int crl_reason(const char *cert_status, const char *device_reason)
{
	if (strcmp(cert_status, "superseded") == 0)
		return CRL_REASON_SUPERSEDED;
	if (strcmp(device_reason, "key_compromise") == 0 ||
	    strcmp(device_reason, "lost") == 0 ||
	    strcmp(device_reason, "stolen") == 0)
		return CRL_REASON_KEY_COMPROMISE;
	if (strcmp(device_reason, "decommissioned") == 0)
		return CRL_REASON_CESSATION_OF_OPERATION;
	if (strcmp(device_reason, "replaced") == 0)
		return CRL_REASON_SUPERSEDED;
	return -1;
}

static fa_result add_revoked(X509_CRL *crl, const char *serial,
                             time_t revoked_at, int reason)
{
	fa_result result = FA_ERR_CRYPTO;
	X509_REVOKED *entry;
	BIGNUM *bn = NULL;
	ASN1_INTEGER *number = NULL;
	ASN1_TIME *when = NULL;
	ASN1_ENUMERATED *code = NULL;

	entry = X509_REVOKED_new();
	if (entry == NULL || BN_hex2bn(&bn, serial) == 0)
		goto out;
	number = BN_to_ASN1_INTEGER(bn, NULL);
	when = ASN1_TIME_set(NULL, revoked_at);
	if (number == NULL || when == NULL ||
	    X509_REVOKED_set_serialNumber(entry, number) != 1 ||
	    X509_REVOKED_set_revocationDate(entry, when) != 1)
		goto out;
	if (reason >= 0) {
		code = ASN1_ENUMERATED_new();
		if (code == NULL || ASN1_ENUMERATED_set(code, reason) != 1 ||
		    X509_REVOKED_add1_ext_i2d(entry, NID_crl_reason, code, 0,
		                              0) != 1)
			goto out;
	}
	if (X509_CRL_add0_revoked(crl, entry) != 1)
		goto out;
	entry = NULL;
	result = FA_OK;
out:
	X509_REVOKED_free(entry);
	BN_free(bn);
	ASN1_INTEGER_free(number);
	ASN1_TIME_free(when);
	ASN1_ENUMERATED_free(code);
	return result;
}

/* Adds the CRL number and the authority key identifier. */
static fa_result add_crl_extensions(X509_CRL *crl, X509 *ca_cert,
                                    const char *crl_number)
{
	fa_result result = FA_ERR_CRYPTO;
	BIGNUM *bn = NULL;
	ASN1_INTEGER *number = NULL;
	X509V3_CTX ctx;
	X509_EXTENSION *aki = NULL;

	if (BN_dec2bn(&bn, crl_number) == 0)
		goto out;
	number = BN_to_ASN1_INTEGER(bn, NULL);
	if (number == NULL ||
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, number, 0, 0) != 1)
		goto out;
	X509V3_set_ctx(&ctx, ca_cert, NULL, NULL, crl, 0);
	aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier,
	                          "keyid:always");
	if (aki == NULL || X509_CRL_add_ext(crl, aki, -1) != 1)
		goto out;
	result = FA_OK;
out:
	X509_EXTENSION_free(aki);
	ASN1_INTEGER_free(number);
	BN_free(bn);
	return result;
}

/* Builds and signs a CRL from rows (serial, revoked epoch, cert status,
 * device reason). */
static fa_result build_crl(X509 *ca_cert, EVP_PKEY *ca_key,
                           const PGresult *rows, const char *crl_number,
                           time_t now, X509_CRL **out)
{
	fa_result result = FA_ERR_CRYPTO;
	X509_CRL *crl;
	ASN1_TIME *this_update = NULL;
	ASN1_TIME *next_update = NULL;
	int i;

	*out = NULL;
	crl = X509_CRL_new();
	if (crl == NULL)
		return FA_ERR_NOMEM;
	this_update = ASN1_TIME_set(NULL, now);
	next_update = ASN1_TIME_set(NULL, now + FA_CRL_VALID_SECONDS);
	if (this_update == NULL || next_update == NULL ||
	    X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1 ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca_cert)) !=
	            1 ||
	    X509_CRL_set1_lastUpdate(crl, this_update) != 1 ||
	    X509_CRL_set1_nextUpdate(crl, next_update) != 1)
		goto out;
	for (i = 0; i < PQntuples(rows); i++) {
		const char *status = fa_db_value(rows, i, 2);
		const char *reason = fa_db_value(rows, i, 3);

		result = add_revoked(
		        crl, fa_db_value(rows, i, 0),
		        (time_t)strtoll(fa_db_value(rows, i, 1), NULL, 10),
		        crl_reason(status, reason));
		if (result != FA_OK)
			goto out;
	}
	result = add_crl_extensions(crl, ca_cert, crl_number);
	if (result != FA_OK)
		goto out;
	result = FA_ERR_CRYPTO;
	if (X509_CRL_sort(crl) != 1 ||
	    X509_CRL_sign(crl, ca_key, EVP_sha256()) <= 0)
		goto out;
	*out = crl;
	crl = NULL;
	result = FA_OK;
out:
	ASN1_TIME_free(this_update);
	ASN1_TIME_free(next_update);
	X509_CRL_free(crl);
	ERR_clear_error();
	return result;
}

/* SHA-256 over every cell of rows, to notice a changed revoked set. */
static void hash_rows(const PGresult *rows, uint8_t out[FA_SHA256_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int len = 0;
	int i;
	int j;

	memset(out, 0, FA_SHA256_LEN);
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto out;
	for (i = 0; i < PQntuples(rows); i++) {
		for (j = 0; j < PQnfields(rows); j++) {
			const char *v = PQgetvalue(rows, i, j);

			EVP_DigestUpdate(md, v, strlen(v) + 1);
		}
	}
	EVP_DigestFinal_ex(md, out, &len);
out:
	EVP_MD_CTX_free(md);
}

/* Increments fleet_ca.crl_number of the current CA and builds a new CRL
 * into ds. Caller holds ds->lock and has loaded the current CA. */
static fa_result rebuild_crl(PGconn *db, struct device_state *ds,
                             const PGresult *rows,
                             const uint8_t rows_hash[FA_SHA256_LEN])
{
	fa_result result;
	PGresult *res = NULL;
	char id_text[32];
	X509_CRL *crl = NULL;
	unsigned char *der = NULL;
	int der_len;
	time_t now = (time_t)fa_now();

	snprintf(id_text, sizeof(id_text), "%ld", ds->ca_id);
	result = fa_db_exec_one(db, &res,
	                        "UPDATE fleet_ca SET crl_number = crl_number "
	                        "+ 1 WHERE id = $1 RETURNING crl_number",
	                        1, (const char *[]){id_text});
	if (result != FA_OK)
		return result;
	result = build_crl(ds->ca_cert, ds->ca_key, rows,
	                   fa_db_value(res, 0, 0), now, &crl);
	if (result != FA_OK)
		goto out;
	der_len = i2d_X509_CRL(crl, &der);
	if (der_len <= 0) {
		result = FA_ERR_CRYPTO;
		goto out;
	}
	OPENSSL_free(ds->crl_der);
	ds->crl_der = der;
	ds->crl_der_len = (size_t)der_len;
	ds->crl_ca_id = ds->ca_id;
	ds->crl_built_at = (int64_t)now;
	memcpy(ds->crl_rows_hash, rows_hash, FA_SHA256_LEN);
out:
	X509_CRL_free(crl);
	PQclear(res);
	return result;
}

/* Converts the cached DER CRL to the requested format; *out is malloc'd. */
static fa_result crl_output(const uint8_t *der, size_t der_len, bool pem,
                            uint8_t **out, size_t *out_len)
{
	fa_result result = FA_ERR_CRYPTO;
	const unsigned char *p = der;
	X509_CRL *crl = NULL;
	BIO *bio = NULL;
	char *text = NULL;

	*out = NULL;
	*out_len = 0;
	if (!pem) {
		*out = malloc(der_len);
		if (*out == NULL)
			return FA_ERR_NOMEM;
		memcpy(*out, der, der_len);
		*out_len = der_len;
		return FA_OK;
	}
	crl = d2i_X509_CRL(NULL, &p, (long)der_len);
	bio = BIO_new(BIO_s_mem());
	if (crl == NULL || bio == NULL || PEM_write_bio_X509_CRL(bio, crl) != 1)
		goto out;
	result = bio_to_string(bio, &text);
	if (result != FA_OK)
		goto out;
	*out = (uint8_t *)text;
	*out_len = strlen(text);
out:
	X509_CRL_free(crl);
	BIO_free(bio);
	return result;
}

fa_result fa_ca_crl(struct fa_service *svc, PGconn *db, bool pem, uint8_t **out,
                    size_t *out_len)
{
	fa_result result;
	struct device_state *ds;
	PGresult *rows = NULL;
	uint8_t rows_hash[FA_SHA256_LEN];

	*out = NULL;
	*out_len = 0;
	ds = device_state_get(svc);
	if (ds == NULL)
		return FA_ERR_NOMEM;
	result = fa_db_exec(
	        db, &rows,
	        "SELECT c.serial, "
	        "extract(epoch FROM coalesce(c.revoked_at, d.revoked_at, "
	        "c.issued_at))::bigint, c.status, "
	        "coalesce(d.revoke_reason, '') "
	        "FROM device_certificates c JOIN devices d "
	        "ON d.id = c.device_id "
	        "WHERE c.status IN ('revoked', 'superseded') "
	        "AND c.not_after > now() ORDER BY c.serial",
	        0, NULL);
	if (result != FA_OK)
		return result;
	hash_rows(rows, rows_hash);
	pthread_mutex_lock(&ds->lock);
	result = load_current_ca(svc, db, ds);
	if (result != FA_OK)
		goto unlock;
	if (ds->crl_der == NULL || ds->crl_ca_id != ds->ca_id ||
	    memcmp(ds->crl_rows_hash, rows_hash, FA_SHA256_LEN) != 0 ||
	    fa_now() - ds->crl_built_at > CRL_MAX_AGE_SECONDS)
		result = rebuild_crl(db, ds, rows, rows_hash);
	if (result == FA_OK)
		result = crl_output(ds->crl_der, ds->crl_der_len, pem, out,
		                    out_len);
unlock:
	pthread_mutex_unlock(&ds->lock);
	PQclear(rows);
	return result;
}
