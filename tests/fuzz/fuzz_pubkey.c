/*
 * Fuzzes public-key parsing for token verification (fa_keyring_add_pem).
 * The first byte picks the algorithm (bit 0) and whether the rest is PEM
 * text (bit 1 clear) or DER that the harness wraps into a "PUBLIC KEY" PEM
 * block (bit 1 set), which reaches the DER parser with every mutation. A key
 * that is accepted must be RSA of at least 2048 bits for RS256 or EC P-256
 * for ES256, checked here with OpenSSL directly.
 *
 * NOTE: fleetauthd parses device keys with parse_p256_key, a static
 * function in authsvc/device_keys.c, so that parser is reached only
 * through the HTTP API and is not fuzzed here.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "fa_token.h"
#include "fuzz_check.h"

static char *wrap_pem(const uint8_t *der, size_t len)
{
	size_t cap = 4 * (len / 3 + 1) + len / 48 + 128;
	char *pem = malloc(cap);
	int n;

	FUZZ_CHECK(pem != NULL);
	n = snprintf(pem, cap, "-----BEGIN PUBLIC KEY-----\n");
	for (size_t i = 0; i < len; i += 48) {
		size_t chunk = len - i < 48 ? len - i : 48;

		n += EVP_EncodeBlock((unsigned char *)pem + n, der + i,
		                     (int)chunk);
		pem[n++] = '\n';
	}
	snprintf(pem + n, cap - (size_t)n, "-----END PUBLIC KEY-----\n");
	return pem;
}

/* Checks with OpenSSL alone that pem contains a key that alg allows. */
static void check_key(const char *pem, enum fa_alg alg)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	char group[64] = "";
	size_t group_len = 0;

	FUZZ_CHECK(key != NULL);
	if (alg == FA_ALG_RS256) {
		FUZZ_CHECK(EVP_PKEY_is_a(key, "RSA"));
		FUZZ_CHECK(EVP_PKEY_get_bits(key) >= 2048);
	} else {
		FUZZ_CHECK(EVP_PKEY_is_a(key, "EC"));
		FUZZ_CHECK(EVP_PKEY_get_utf8_string_param(key, "group", group,
		                                          sizeof(group),
		                                          &group_len) == 1);
		FUZZ_CHECK(strcmp(group, "prime256v1") == 0);
	}
	EVP_PKEY_free(key);
	BIO_free(bio);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fa_keyring *ring;
	enum fa_alg alg;
	char *pem;
	fa_result result;

	if (size == 0 || size > 20000)
		return 0;
	alg = (data[0] & 1) ? FA_ALG_ES256 : FA_ALG_RS256;
	if (data[0] & 2)
		pem = wrap_pem(data + 1, size - 1);
	else
		pem = strndup((const char *)data + 1, size - 1);
	FUZZ_CHECK(pem != NULL);

	ring = fa_keyring_new();
	FUZZ_CHECK(ring != NULL);
	result = fa_keyring_add_pem(ring, "k1", alg, pem);
	if (result == FA_OK) {
		FUZZ_CHECK(fa_keyring_count(ring) == 1);
		check_key(pem, alg);
		FUZZ_CHECK(fa_keyring_remove(ring, "k1") == FA_OK);
	} else {
		FUZZ_CHECK(fa_keyring_count(ring) == 0);
	}
	FUZZ_CHECK(fa_keyring_count(ring) == 0);
	fa_keyring_free(ring);
	free(pem);
	return 0;
}
