/*
 * Fuzzes the device CSR checks and signature helpers of fleetauthd
 * (authsvc/ca_csr.c). The first byte picks the entry point:
 *
 *   0: fa_csr_parse on the rest as PEM text
 *   1: fa_csr_parse_der on the rest as DER
 *   2: the rest as DER, wrapped into a PEM block, then fa_csr_parse
 *   3: fa_base64_decode_any on the rest as a string
 *   4: fa_cert_verify_sha256 with the rest as certificate PEM
 *
 * A request that passes must carry an EC P-256 key or an RSA key of 2048 to
 * 8192 bits and a self-signature that verifies, as ca.h promises. A request
 * that fails must leave *out NULL and write a message.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca.h"
#include "fa_crypto.h"
#include "fuzz_check.h"

static void check_accepted_key(X509_REQ *req)
{
	EVP_PKEY *key = X509_REQ_get0_pubkey(req);
	char group[64] = "";
	size_t group_len = 0;

	FUZZ_CHECK(key != NULL);
	FUZZ_CHECK(X509_REQ_verify(req, key) == 1);
	if (EVP_PKEY_is_a(key, "RSA")) {
		FUZZ_CHECK(EVP_PKEY_get_bits(key) >= 2048);
		FUZZ_CHECK(EVP_PKEY_get_bits(key) <= 8192);
		return;
	}
	FUZZ_CHECK(EVP_PKEY_is_a(key, "EC"));
	FUZZ_CHECK(EVP_PKEY_get_utf8_string_param(key, "group", group,
	                                          sizeof(group),
	                                          &group_len) == 1);
	FUZZ_CHECK(strcmp(group, "prime256v1") == 0 ||
	           strcmp(group, "P-256") == 0);
}

static void check_result(fa_result result, X509_REQ *req, const char *err)
{
	if (result == FA_OK) {
		FUZZ_CHECK(req != NULL);
		check_accepted_key(req);
	} else {
		FUZZ_CHECK(req == NULL);
		FUZZ_CHECK(err[0] != '\0');
	}
	X509_REQ_free(req);
}

/* Wraps der into a "CERTIFICATE REQUEST" PEM block; malloc'd. */
static char *wrap_pem(const uint8_t *der, size_t len, size_t *pem_len)
{
	size_t cap = 4 * (len / 3 + 1) + len / 48 + 128;
	char *pem = malloc(cap);
	int n;

	FUZZ_CHECK(pem != NULL);
	n = snprintf(pem, cap, "-----BEGIN CERTIFICATE REQUEST-----\n");
	for (size_t i = 0; i < len; i += 48) {
		size_t chunk = len - i < 48 ? len - i : 48;

		n += EVP_EncodeBlock((unsigned char *)pem + n, der + i,
		                     (int)chunk);
		pem[n++] = '\n';
	}
	n += snprintf(pem + n, cap - (size_t)n,
	              "-----END CERTIFICATE REQUEST-----\n");
	*pem_len = (size_t)n;
	return pem;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	X509_REQ *req = NULL;
	fa_result result;
	uint8_t mode;

	if (size == 0)
		return 0;
	mode = data[0] % 5;
	data++;
	size--;
	err[0] = '\0';
	/* A non-NULL start value, so that check_result catches a parser that
	 * fails without setting *out to NULL. */
	req = (X509_REQ *)data;

	switch (mode) {
	case 0: {
		char *pem = malloc(size > 0 ? size : 1);

		FUZZ_CHECK(pem != NULL);
		memcpy(pem, data, size);
		result = fa_csr_parse(pem, size, &req, err, sizeof(err));
		check_result(result, req, err);
		free(pem);
		break;
	}
	case 1:
		result = fa_csr_parse_der(data, size, &req, err, sizeof(err));
		check_result(result, req, err);
		break;
	case 2: {
		size_t pem_len = 0;
		char *pem;

		if (size > 12000)
			return 0;
		pem = wrap_pem(data, size, &pem_len);
		result = fa_csr_parse(pem, pem_len, &req, err, sizeof(err));
		check_result(result, req, err);
		free(pem);
		break;
	}
	case 3: {
		char *text = strndup((const char *)data, size);
		uint8_t out[512];
		size_t out_len = 99999;

		FUZZ_CHECK(text != NULL);
		result = fa_base64_decode_any(text, out, sizeof(out), &out_len);
		if (result == FA_OK)
			FUZZ_CHECK(out_len <= sizeof(out));
		free(text);
		break;
	}
	default: {
		char *pem = strndup((const char *)data, size);
		static const uint8_t message[] = "challenge";
		static const uint8_t signature[64] = {1};

		FUZZ_CHECK(pem != NULL);
		result = fa_cert_verify_sha256(pem, message, sizeof(message),
		                               signature, sizeof(signature));
		/* A fixed signature that no key produced cannot verify. */
		FUZZ_CHECK(result != FA_OK);
		free(pem);
		break;
	}
	}
	return 0;
}
