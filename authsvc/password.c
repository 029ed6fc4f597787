#include "password.h"

#include <crypt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fa_crypto.h"

#define BCRYPT_MIN_COST 4
#define BCRYPT_MAX_COST 31
#define SALT_BYTES 16
/* base64 of a 32-byte HMAC, with padding, plus NUL. */
#define PREHASH_LEN 45

/*
 * Key of the pre-hash HMAC. It is a fixed domain-separation label, not a
 * secret: the bcrypt hash is what protects the password.
 */
static const char prehash_key[] = "fleetauth bcrypt prehash v1";

/* Common passwords of at least FA_PASSWORD_MIN_LEN bytes, lower case. */
static const char *const common_passwords[] = {
        "123456789012",     "1234567890123",  "12345678901234",
        "123123123123",     "111111111111",   "000000000000",
        "aaaaaaaaaaaa",     "abcdefghijkl",   "abc123abc123",
        "password1234",     "password12345",  "password123456",
        "passwordpassword", "password123!",   "p@ssw0rd1234",
        "passw0rd1234",     "qwerty123456",   "qwertyuiop12",
        "qwertyuiop123",    "qwertyuiopasdf", "1q2w3e4r5t6y",
        "1qaz2wsx3edc",     "zaq12wsxcde3",   "iloveyou1234",
        "administrator",    "adminadmin123",  "letmein12345",
        "welcome12345",     "welcome123456",  "changeme1234",
        "trustno1trustno1", "football1234",   "baseball1234",
        "superman1234",     "sunshine1234",   "princess1234",
        "monkey123456",     "dragon123456",   "starwars1234",
        "fleetauth123",     "fleetauth1234",  "correcthorsebatterystaple",
};

static pthread_mutex_t dummy_lock = PTHREAD_MUTEX_INITIALIZER;
static char *dummy_hashes[BCRYPT_MAX_COST + 1];

/*
 * Writes the bytes that bcrypt hashes for password into out (size
 * PREHASH_LEN + FA_PASSWORD_BCRYPT_MAX). Passwords of up to 72 bytes are
 * copied; longer ones become base64(HMAC-SHA-256(prehash_key, password)).
 */
static fa_result bcrypt_input(const char *password, char *out, size_t size)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	size_t len = strlen(password);
	fa_result result = FA_OK;

	if (len <= FA_PASSWORD_BCRYPT_MAX) {
		memcpy(out, password, len + 1);
		goto out;
	}
	if (HMAC(EVP_sha256(), prehash_key, (int)strlen(prehash_key),
	         (const unsigned char *)password, len, mac, &mac_len) == NULL) {
		result = FA_ERR_CRYPTO;
		goto out;
	}
	if (size < PREHASH_LEN) {
		result = FA_ERR_INVALID;
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)out, mac, (int)mac_len);
out:
	fa_wipe(mac, sizeof(mac));
	return result;
}

static bool cost_valid(int cost)
{
	return cost >= BCRYPT_MIN_COST && cost <= BCRYPT_MAX_COST;
}

static bool length_valid(const char *password)
{
	size_t len = strnlen(password, FA_PASSWORD_MAX_LEN + 1);

	return len > 0 && len <= FA_PASSWORD_MAX_LEN;
}

/*
 * Runs bcrypt over password with setting (a salt or a full hash) and
 * copies the output into out (size CRYPT_OUTPUT_SIZE).
 */
static fa_result run_bcrypt(const char *password, const char *setting,
                            char *out)
{
	char input[PREHASH_LEN + FA_PASSWORD_BCRYPT_MAX + 1];
	struct crypt_data *data = NULL;
	fa_result result;

	result = bcrypt_input(password, input, sizeof(input));
	if (result != FA_OK)
		goto out;
	data = calloc(1, sizeof(*data));
	if (data == NULL) {
		result = FA_ERR_NOMEM;
		goto out;
	}
	if (crypt_rn(input, setting, data, (int)sizeof(*data)) == NULL ||
	    data->output[0] == '*') {
		result = FA_ERR_CRYPTO;
		goto out;
	}
	memcpy(out, data->output, CRYPT_OUTPUT_SIZE);
out:
	fa_wipe(input, sizeof(input));
	if (data != NULL) {
		fa_wipe(data, sizeof(*data));
		free(data);
	}
	return result;
}

fa_result fa_password_hash(const char *password, int cost, char **hash_out)
{
	unsigned char salt_bytes[SALT_BYTES];
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	char output[CRYPT_OUTPUT_SIZE];
	fa_result result;

	*hash_out = NULL;
	if (password == NULL || !cost_valid(cost) || !length_valid(password))
		return FA_ERR_INVALID;
	result = fa_random_bytes(salt_bytes, sizeof(salt_bytes));
	if (result != FA_OK)
		goto out;
	if (crypt_gensalt_rn("$2b$", (unsigned long)cost,
	                     (const char *)salt_bytes, (int)sizeof(salt_bytes),
	                     setting, (int)sizeof(setting)) == NULL) {
		result = FA_ERR_CRYPTO;
		goto out;
	}
	result = run_bcrypt(password, setting, output);
	if (result != FA_OK)
		goto out;
	*hash_out = strdup(output);
	if (*hash_out == NULL)
		result = FA_ERR_NOMEM;
out:
	fa_wipe(salt_bytes, sizeof(salt_bytes));
	fa_wipe(output, sizeof(output));
	return result;
}

fa_result fa_password_verify(const char *password, const char *hash, bool *ok)
{
	char output[CRYPT_OUTPUT_SIZE];
	size_t hash_len;
	fa_result result;

	*ok = false;
	if (password == NULL || hash == NULL || strncmp(hash, "$2b$", 4) != 0)
		return FA_ERR_INVALID;
	hash_len = strlen(hash);
	if (hash_len >= CRYPT_OUTPUT_SIZE)
		return FA_ERR_INVALID;
	/* Too long a password cannot match; still spend the bcrypt time. */
	if (!length_valid(password)) {
		result = run_bcrypt("", hash, output);
		goto out;
	}
	result = run_bcrypt(password, hash, output);
	if (result != FA_OK)
		goto out;
	*ok = strlen(output) == hash_len && fa_ct_equal(output, hash, hash_len);
out:
	fa_wipe(output, sizeof(output));
	return result;
}

/* Returns the dummy hash for cost, creating it on first use, or NULL. */
static const char *dummy_hash(int cost)
{
	unsigned char random[16];
	char password[2 * sizeof(random) + 1];
	const char *hash = NULL;

	if (!cost_valid(cost))
		return NULL;
	pthread_mutex_lock(&dummy_lock);
	if (dummy_hashes[cost] == NULL &&
	    fa_random_bytes(random, sizeof(random)) == FA_OK) {
		fa_hex_encode(random, sizeof(random), password);
		if (fa_password_hash(password, cost, &dummy_hashes[cost]) !=
		    FA_OK)
			dummy_hashes[cost] = NULL;
	}
	hash = dummy_hashes[cost];
	pthread_mutex_unlock(&dummy_lock);
	fa_wipe(random, sizeof(random));
	fa_wipe(password, sizeof(password));
	return hash;
}

void fa_password_verify_dummy(const char *password, int cost)
{
	const char *hash = dummy_hash(cost);
	bool ok = false;

	if (hash == NULL)
		return;
	(void)fa_password_verify(password != NULL ? password : "", hash, &ok);
}

/* Counts the UTF-8 characters of s: every byte that does not continue a
 * multi-byte sequence. */
static size_t utf8_length(const char *s)
{
	size_t count = 0;

	for (; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80)
			count++;
	}
	return count;
}

fa_result fa_password_check_policy(const char *password, char *err,
                                   size_t err_size)
{
	size_t len;
	size_t i;

	if (password == NULL) {
		snprintf(err, err_size, "password is missing");
		return FA_ERR_INVALID;
	}
	len = strnlen(password, FA_PASSWORD_MAX_LEN + 1);
	if (len < FA_PASSWORD_MIN_LEN ||
	    utf8_length(password) < FA_PASSWORD_MIN_LEN) {
		snprintf(err, err_size,
		         "password is too short: use at least %d characters",
		         FA_PASSWORD_MIN_LEN);
		return FA_ERR_INVALID;
	}
	if (len > FA_PASSWORD_MAX_LEN) {
		snprintf(err, err_size,
		         "password is too long: use at most %d bytes",
		         FA_PASSWORD_MAX_LEN);
		return FA_ERR_INVALID;
	}
	for (i = 0; i < sizeof(common_passwords) / sizeof(*common_passwords);
	     i++) {
		if (strcasecmp(password, common_passwords[i]) == 0) {
			snprintf(err, err_size,
			         "password is too common: choose another one");
			return FA_ERR_INVALID;
		}
	}
	return FA_OK;
}
