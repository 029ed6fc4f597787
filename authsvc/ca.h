/*
 * Fleet CA: creating or importing the CA, checking device CSRs, issuing
 * device certificates and building CRLs. The CA private key is stored in
 * table fleet_ca, sealed with fa_seal under a key-encryption key with AAD
 * "fleet_ca:<id>". The opened key is cached in memory for signing.
 */
#ifndef FA_CA_H
#define FA_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <libpq-fe.h>
#include <openssl/x509.h>

#include "fa_crypto.h"
#include "fa_result.h"

struct fa_service;

#define FA_CA_DEFAULT_DAYS 3650
/* Device certificates live device_cert_days (fleetauthd.conf), at most
 * this long: the limit browsers once set for TLS certificates, kept here so
 * that a lost device's certificate cannot outlive a fleet's records. */
#define FA_DEVICE_CERT_MAX_DAYS 825
/* Largest CSR PEM accepted; an RSA 8192 request is about 4 KiB. */
#define FA_CSR_MAX_LEN 16384
#define FA_CRL_VALID_SECONDS 86400

struct fa_issued_cert {
	char serial[33];      /* lower-case hex without leading zeros */
	char fingerprint[65]; /* SHA-256 of the DER, lower-case hex */
	time_t not_before;
	time_t not_after;
	char *pem; /* malloc'd, freed by fa_issued_cert_clear */
};

void fa_issued_cert_clear(struct fa_issued_cert *cert);

/*
 * Parses a PEM certificate signing request of at most FA_CSR_MAX_LEN bytes
 * and checks it. The self-signature must verify and the key must be EC
 * P-256 or RSA of 2048 to 8192 bits. Requested extensions may only be
 * subjectAltName, keyUsage, extendedKeyUsage, subjectKeyIdentifier and
 * basicConstraints without CA:TRUE. The subject is not checked because the
 * CA writes its own. On failure returns FA_ERR_INVALID and writes a message
 * for the client into err. *out is owned by the caller (X509_REQ_free).
 */
fa_result fa_csr_parse(const char *pem, size_t len, X509_REQ **out, char *err,
                       size_t err_size);

/* Same checks for a DER-encoded request. */
fa_result fa_csr_parse_der(const uint8_t *der, size_t len, X509_REQ **out,
                           char *err, size_t err_size);

/* Decodes the first CERTIFICATE REQUEST block of a PEM text into DER.
 * *der is OPENSSL_malloc'd and owned by the caller (OPENSSL_free). */
fa_result fa_csr_pem_to_der(const char *pem, size_t len, uint8_t **der,
                            size_t *der_len);

/*
 * Generates a self-signed CA certificate with subject
 * "CN=fleetauth fleet CA", basicConstraints CA:TRUE (critical) and keyUsage
 * keyCertSign and cRLSign, valid for days days. alg is "ec" (P-256) or
 * "rsa" (3072 bits). *cert and *key are owned by the caller.
 */
fa_result fa_ca_generate(const char *alg, int days, X509 **cert,
                         EVP_PKEY **key);

/*
 * Checks that key is the private key of cert and that cert is a usable CA
 * (basicConstraints CA:TRUE, keyCertSign, currently valid). Writes the
 * reason into err on FA_ERR_INVALID.
 */
fa_result fa_ca_check_pair(X509 *cert, EVP_PKEY *key, char *err,
                           size_t err_size);

/*
 * Stores cert and key as the current fleet CA: the key is sealed under kek,
 * the CA that was current becomes previous, all in one transaction. *id
 * receives the new row id.
 */
fa_result fa_ca_store(PGconn *db, const struct fa_kek *kek, X509 *cert,
                      EVP_PKEY *key, long *id);

/*
 * Issues a device certificate for the public key in req: subject
 * CN=<device_id>, O=<carrier>, SAN URI urn:fleetauth:device:<device_id>
 * and a DNS name, keyUsage digitalSignature (plus keyEncipherment for RSA),
 * extendedKeyUsage clientAuth, a positive 128-bit random serial, valid for
 * days days. Returns FA_ERR_NOT_FOUND when there is no current CA and
 * FA_ERR_CRYPTO when its key cannot be opened. The caller owns out and
 * clears it with fa_issued_cert_clear.
 */
fa_result fa_ca_issue(struct fa_service *svc, PGconn *db, X509_REQ *req,
                      const char *device_id, const char *carrier, int days,
                      struct fa_issued_cert *out);

/* Writes the lower-case hex SHA-256 of the certificate's DER into out. */
fa_result fa_cert_fingerprint(X509 *cert, char out[65]);

/* Returns the PEM of the current CA certificate in *out (malloc'd). */
fa_result fa_ca_chain_pem(PGconn *db, char **out);

/*
 * Builds a CRL signed by the current CA listing every revoked or superseded
 * device certificate that has not expired, with its revocation time and
 * reason. nextUpdate is FA_CRL_VALID_SECONDS after thisUpdate. A CRL is
 * rebuilt (and fleet_ca.crl_number incremented) only when the revoked set
 * changed or the cached one is older than an hour. *out (malloc'd, owned by
 * the caller) receives DER, or PEM when pem is true.
 */
fa_result fa_ca_crl(struct fa_service *svc, PGconn *db, bool pem, uint8_t **out,
                    size_t *out_len);

/*
 * Verifies that signature (DER ECDSA, or PKCS#1 v1.5 for RSA) was made by
 * key over the SHA-256 of data. Returns FA_ERR_DENIED when it does not
 * verify.
 */
fa_result fa_pkey_verify_sha256(EVP_PKEY *key, const uint8_t *data,
                                size_t data_len, const uint8_t *signature,
                                size_t signature_len);

/* Same with the public key of a PEM certificate. */
fa_result fa_cert_verify_sha256(const char *cert_pem, const uint8_t *data,
                                size_t data_len, const uint8_t *signature,
                                size_t signature_len);

/*
 * Decodes base64 (standard or URL alphabet, padding optional) into out
 * (size out_size). Returns FA_ERR_INVALID for other characters and
 * FA_ERR_TOO_LARGE when out is too small.
 */
fa_result fa_base64_decode_any(const char *in, uint8_t *out, size_t out_size,
                               size_t *out_len);

#endif
