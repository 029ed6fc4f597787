/*
 * Checks of device certificate signing requests, and verification of the
 * SHA-256 signatures that renewals and device-key logins carry.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca.h"

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

fa_result fa_base64_decode_any(const char *in, uint8_t *out, size_t out_size,
                               size_t *out_len)
{
	fa_result result;
	size_t len = strlen(in);
	char *copy;
	size_t i;

	*out_len = 0;
	while (len > 0 && in[len - 1] == '=')
		len--;
	copy = malloc(len + 1);
	if (copy == NULL)
		return FA_ERR_NOMEM;
	for (i = 0; i < len; i++) {
		if (in[i] == '+')
			copy[i] = '-';
		else if (in[i] == '/')
			copy[i] = '_';
		else
			copy[i] = in[i];
	}
	copy[len] = '\0';
	result = fa_b64url_decode(copy, len, out, out_size, out_len);
	free(copy);
	return result;
}

/* ------------------------------------------------------------------ */
/* Signatures                                                          */
/* ------------------------------------------------------------------ */

fa_result fa_pkey_verify_sha256(EVP_PKEY *key, const uint8_t *data,
                                size_t data_len, const uint8_t *signature,
                                size_t signature_len)
{
	fa_result result = FA_ERR_DENIED;
	EVP_MD_CTX *md;

	md = EVP_MD_CTX_new();
	if (md == NULL)
		return FA_ERR_NOMEM;
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1) {
		result = FA_ERR_CRYPTO;
		goto out;
	}
	if (EVP_DigestVerify(md, signature, signature_len, data, data_len) == 1)
		result = FA_OK;
out:
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return result;
}

fa_result fa_cert_verify_sha256(const char *cert_pem, const uint8_t *data,
                                size_t data_len, const uint8_t *signature,
                                size_t signature_len)
{
	fa_result result;
	X509 *cert;
	BIO *bio;

	bio = BIO_new_mem_buf(cert_pem, -1);
	if (bio == NULL)
		return FA_ERR_NOMEM;
	cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (cert == NULL)
		return FA_ERR_CRYPTO;
	result = fa_pkey_verify_sha256(X509_get0_pubkey(cert), data, data_len,
	                               signature, signature_len);
	X509_free(cert);
	return result;
}

/* ------------------------------------------------------------------ */
/* CSR checks                                                          */
/* ------------------------------------------------------------------ */

/* Accepts EC P-256 and RSA of 2048 to 8192 bits. */
static fa_result check_device_key(EVP_PKEY *key, char *err, size_t err_size)
{
	char group[64];
	int bits;

	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
		if (EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) !=
		            1 ||
		    strcmp(group, SN_X9_62_prime256v1) != 0) {
			set_err(err, err_size,
			        "EC key on curve %s is not accepted: use "
			        "P-256 (prime256v1)",
			        EVP_PKEY_get_group_name(
			                key, group, sizeof(group), NULL) == 1
			                ? group
			                : "unknown");
			return FA_ERR_INVALID;
		}
		return FA_OK;
	}
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
		bits = EVP_PKEY_get_bits(key);
		if (bits < 2048) {
			set_err(err, err_size,
			        "RSA key of %d bits is too short: use at "
			        "least 2048 bits, or EC P-256",
			        bits);
			return FA_ERR_INVALID;
		}
		if (bits > 8192) {
			set_err(err, err_size,
			        "RSA key of %d bits is too long: use 2048 "
			        "to 8192 bits, or EC P-256",
			        bits);
			return FA_ERR_INVALID;
		}
		return FA_OK;
	}
	set_err(err, err_size,
	        "key type %s is not accepted: use EC P-256 or RSA of at "
	        "least 2048 bits",
	        OBJ_nid2sn(EVP_PKEY_get_base_id(key)));
	return FA_ERR_INVALID;
}

/* Rejects requested extensions other than the ones the CA replaces with
 * its own values anyway, and any request for CA:TRUE. */
static fa_result check_requested_extensions(X509_REQ *req, char *err,
                                            size_t err_size)
{
	fa_result result = FA_OK;
	STACK_OF(X509_EXTENSION) * exts;
	BASIC_CONSTRAINTS *bc;
	char name[80];
	int i;

	exts = X509_REQ_get_extensions(req);
	for (i = 0; exts != NULL && i < sk_X509_EXTENSION_num(exts); i++) {
		X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);
		int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));

		if (nid == NID_subject_alt_name || nid == NID_key_usage ||
		    nid == NID_ext_key_usage ||
		    nid == NID_subject_key_identifier)
			continue;
		if (nid == NID_basic_constraints) {
			bc = X509V3_EXT_d2i(ext);
			if (bc != NULL && !bc->ca) {
				BASIC_CONSTRAINTS_free(bc);
				continue;
			}
			BASIC_CONSTRAINTS_free(bc);
			set_err(err, err_size,
			        "the CSR requests basicConstraints CA:TRUE; "
			        "device certificates cannot be CAs");
			result = FA_ERR_INVALID;
			break;
		}
		OBJ_obj2txt(name, sizeof(name), X509_EXTENSION_get_object(ext),
		            0);
		set_err(err, err_size,
		        "the CSR requests extension %s, which is not "
		        "accepted: request no extensions, or only "
		        "subjectAltName, keyUsage, extendedKeyUsage",
		        name);
		result = FA_ERR_INVALID;
		break;
	}
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return result;
}

fa_result fa_csr_parse_der(const uint8_t *der, size_t len, X509_REQ **out,
                           char *err, size_t err_size)
{
	fa_result result = FA_ERR_INVALID;
	const unsigned char *p = der;
	X509_REQ *req;
	EVP_PKEY *key;

	*out = NULL;
	req = d2i_X509_REQ(NULL, &p, (long)len);
	if (req == NULL || p != der + len) {
		set_err(err, err_size,
		        "csr is not a valid PKCS#10 certificate request");
		goto out;
	}
	key = X509_REQ_get0_pubkey(req);
	if (key == NULL) {
		set_err(err, err_size, "csr has no readable public key");
		goto out;
	}
	if (X509_REQ_verify(req, key) != 1) {
		set_err(err, err_size,
		        "csr signature does not verify with its public key");
		goto out;
	}
	result = check_device_key(key, err, err_size);
	if (result != FA_OK)
		goto out;
	result = check_requested_extensions(req, err, err_size);
	if (result != FA_OK)
		goto out;
	*out = req;
	req = NULL;
out:
	X509_REQ_free(req);
	ERR_clear_error();
	return result;
}

fa_result fa_csr_pem_to_der(const char *pem, size_t len, uint8_t **der,
                            size_t *der_len)
{
	fa_result result = FA_ERR_INVALID;
	unsigned char *data = NULL;
	long data_len = 0;
	char *name = NULL;
	char *header = NULL;
	BIO *bio;

	*der = NULL;
	*der_len = 0;
	if (len > FA_CSR_MAX_LEN)
		return FA_ERR_TOO_LARGE;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL)
		return FA_ERR_NOMEM;
	if (PEM_read_bio(bio, &name, &header, &data, &data_len) != 1)
		goto out;
	if (strcmp(name, PEM_STRING_X509_REQ) != 0 &&
	    strcmp(name, PEM_STRING_X509_REQ_OLD) != 0)
		goto out;
	if (header[0] != '\0' || data_len <= 0)
		goto out;
	*der = data;
	*der_len = (size_t)data_len;
	data = NULL;
	result = FA_OK;
out:
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	BIO_free(bio);
	ERR_clear_error();
	return result;
}

fa_result fa_csr_parse(const char *pem, size_t len, X509_REQ **out, char *err,
                       size_t err_size)
{
	fa_result result;
	uint8_t *der = NULL;
	size_t der_len = 0;

	*out = NULL;
	result = fa_csr_pem_to_der(pem, len, &der, &der_len);
	if (result == FA_ERR_TOO_LARGE) {
		set_err(err, err_size, "csr is longer than %d bytes",
		        FA_CSR_MAX_LEN);
		return FA_ERR_INVALID;
	}
	if (result != FA_OK) {
		set_err(err, err_size,
		        "csr is not a PEM \"CERTIFICATE REQUEST\" block");
		return FA_ERR_INVALID;
	}
	result = fa_csr_parse_der(der, der_len, out, err, err_size);
	OPENSSL_free(der);
	return result;
}
