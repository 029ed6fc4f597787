#include "fa_crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "fa_ids.h"

#define SEAL_VERSION 1
#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16
#define SEAL_OVERHEAD (1 + SEAL_NONCE_LEN + SEAL_TAG_LEN)
#define KEK_HEX_LEN 64

fa_result fa_random_bytes(void *buf, size_t len)
{
	unsigned char *p = buf;

	/* RAND_bytes takes an int length, so large requests go in chunks. */
	while (len > 0) {
		int chunk = len > INT_MAX ? INT_MAX : (int)len;
		if (RAND_bytes(p, chunk) != 1)
			return FA_ERR_CRYPTO;
		p += chunk;
		len -= (size_t)chunk;
	}
	return FA_OK;
}

void fa_sha256(const void *data, size_t len, uint8_t out[FA_SHA256_LEN])
{
	unsigned int out_len = 0;

	/* EVP_Digest with the built-in SHA-256 fails only when memory runs
	 * out. The output is then all zeros, not stale bytes from the
	 * caller's buffer. */
	if (EVP_Digest(data, len, out, &out_len, EVP_sha256(), NULL) != 1)
		memset(out, 0, FA_SHA256_LEN);
}

void fa_hex_encode(const uint8_t *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[data[i] >> 4];
		out[2 * i + 1] = digits[data[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

bool fa_ct_equal(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

void fa_wipe(void *buf, size_t len)
{
	if (buf != NULL)
		OPENSSL_cleanse(buf, len);
}

/* Base64url ------------------------------------------------------------- */

static const char b64url_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t fa_b64url_encode(const uint8_t *data, size_t len, char *out,
                        size_t out_size)
{
	size_t need = len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
	size_t o = 0;
	size_t i = 0;

	if (out == NULL || out_size < need + 1)
		return 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16 |
		             (uint32_t)data[i + 1] << 8 | data[i + 2];
		out[o++] = b64url_alphabet[v >> 18];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
		out[o++] = b64url_alphabet[(v >> 6) & 63];
		out[o++] = b64url_alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)data[i] << 16;
		out[o++] = b64url_alphabet[v >> 18];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1]
		                                               << 8;
		out[o++] = b64url_alphabet[v >> 18];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
		out[o++] = b64url_alphabet[(v >> 6) & 63];
	}
	out[o] = '\0';
	return o;
}

/* Returns the 6-bit value of a base64url character, or -1. */
static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/*
 * Decodes unpadded base64url. A length of 1 mod 4 cannot occur, and the
 * unused low bits of the last character must be zero so that every byte
 * string has exactly one encoding.
 */
fa_result fa_b64url_decode(const char *in, size_t in_len, uint8_t *out,
                           size_t out_size, size_t *out_len)
{
	size_t need = in_len / 4 * 3 + (in_len % 4 == 0 ? 0 : in_len % 4 - 1);
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	if (out_len != NULL)
		*out_len = 0;
	if (in == NULL || in_len % 4 == 1)
		return FA_ERR_INVALID;
	if (need > out_size)
		return FA_ERR_TOO_LARGE;
	for (size_t i = 0; i < in_len; i++) {
		int v = b64url_value((unsigned char)in[i]);
		if (v < 0)
			return FA_ERR_INVALID;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return FA_ERR_INVALID;
	if (out_len != NULL)
		*out_len = o;
	return FA_OK;
}

/* Key-encryption keys ---------------------------------------------------- */

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reads up to size bytes; sets *len to the count. */
static fa_result read_small_file(int fd, char *buf, size_t size, size_t *len)
{
	size_t total = 0;

	while (total < size) {
		ssize_t n = read(fd, buf + total, size - total);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return FA_ERR_IO;
		if (n == 0)
			break;
		total += (size_t)n;
	}
	*len = total;
	return FA_OK;
}

static fa_result parse_kek_hex(const char *text, size_t len, uint8_t key[32])
{
	if (len == KEK_HEX_LEN + 1 && text[KEK_HEX_LEN] == '\n')
		len = KEK_HEX_LEN;
	if (len != KEK_HEX_LEN)
		return FA_ERR_INVALID;
	for (size_t i = 0; i < 32; i++) {
		int hi = hex_value((unsigned char)text[2 * i]);
		int lo = hex_value((unsigned char)text[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return FA_ERR_INVALID;
		key[i] = (uint8_t)(hi << 4 | lo);
	}
	return FA_OK;
}

/*
 * Loads a KEK from path into *kek. The file must be a regular file with no
 * group or other permission bits (FA_ERR_DENIED otherwise) holding exactly
 * 64 hex characters and an optional newline (FA_ERR_INVALID otherwise). On
 * any error *kek is wiped.
 */
fa_result fa_kek_load(const char *path, const char *id, struct fa_kek *kek)
{
	fa_result result = FA_OK;
	char text[KEK_HEX_LEN + 2];
	size_t len = 0;
	struct stat st;
	int fd = -1;

	if (kek == NULL)
		return FA_ERR_INVALID;
	fa_wipe(kek, sizeof(*kek));
	if (path == NULL || !fa_id_valid(id))
		return FA_ERR_INVALID;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		result = errno == ENOENT ? FA_ERR_NOT_FOUND : FA_ERR_IO;
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		result = FA_ERR_IO;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		result = FA_ERR_INVALID;
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		result = FA_ERR_DENIED;
		goto out;
	}
	result = read_small_file(fd, text, sizeof(text), &len);
	if (result != FA_OK)
		goto out;
	result = parse_kek_hex(text, len, kek->key);
	if (result != FA_OK)
		goto out;
	memcpy(kek->id, id, strlen(id) + 1);

out:
	fa_wipe(text, sizeof(text));
	if (fd >= 0)
		close(fd);
	if (result != FA_OK)
		fa_wipe(kek, sizeof(*kek));
	return result;
}

/* AES-256-GCM sealing ---------------------------------------------------- */

static fa_result gcm_init(EVP_CIPHER_CTX **ctx, const struct fa_kek *kek,
                          const uint8_t *nonce, const char *aad, int encrypt)
{
	int unused = 0;

	*ctx = EVP_CIPHER_CTX_new();
	if (*ctx == NULL)
		return FA_ERR_NOMEM;
	if (EVP_CipherInit_ex(*ctx, EVP_aes_256_gcm(), NULL, kek->key, nonce,
	                      encrypt) != 1)
		return FA_ERR_CRYPTO;
	if (aad != NULL &&
	    EVP_CipherUpdate(*ctx, NULL, &unused, (const uint8_t *)aad,
	                     (int)strlen(aad)) != 1)
		return FA_ERR_CRYPTO;
	return FA_OK;
}

/*
 * Seals plain under kek into a malloc'd blob
 * 1 | nonce(12) | ciphertext | tag(16). The nonce is random, which is safe
 * for far more than the number of secrets one KEK will ever seal.
 */
fa_result fa_seal(const struct fa_kek *kek, const void *plain, size_t len,
                  const char *aad, uint8_t **out, size_t *out_len)
{
	fa_result result = FA_OK;
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t *blob = NULL;
	int n = 0;
	int final_len = 0;

	if (out != NULL)
		*out = NULL;
	if (out_len != NULL)
		*out_len = 0;
	if (kek == NULL || out == NULL || out_len == NULL ||
	    (plain == NULL && len > 0))
		return FA_ERR_INVALID;
	if (len > INT_MAX - SEAL_OVERHEAD)
		return FA_ERR_TOO_LARGE;

	blob = malloc(len + SEAL_OVERHEAD);
	if (blob == NULL)
		return FA_ERR_NOMEM;
	blob[0] = SEAL_VERSION;
	result = fa_random_bytes(blob + 1, SEAL_NONCE_LEN);
	if (result != FA_OK)
		goto out;
	result = gcm_init(&ctx, kek, blob + 1, aad, 1);
	if (result != FA_OK)
		goto out;
	uint8_t *ct = blob + 1 + SEAL_NONCE_LEN;
	if (len > 0 && EVP_EncryptUpdate(ctx, ct, &n, plain, (int)len) != 1) {
		result = FA_ERR_CRYPTO;
		goto out;
	}
	if (EVP_EncryptFinal_ex(ctx, ct + n, &final_len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN,
	                        ct + len) != 1) {
		result = FA_ERR_CRYPTO;
		goto out;
	}
	*out = blob;
	*out_len = len + SEAL_OVERHEAD;
	blob = NULL;

out:
	EVP_CIPHER_CTX_free(ctx);
	free(blob);
	return result;
}

/*
 * Opens a blob made by fa_seal into a malloc'd, NUL-terminated buffer.
 * FA_ERR_INVALID for a short blob or unknown version, FA_ERR_CRYPTO when the
 * tag does not verify (wrong key, wrong aad or tampering). Nothing of the
 * plaintext is returned on failure.
 */
fa_result fa_open(const struct fa_kek *kek, const uint8_t *blob, size_t len,
                  const char *aad, uint8_t **out, size_t *out_len)
{
	fa_result result = FA_OK;
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t *plain = NULL;
	uint8_t tag[SEAL_TAG_LEN];
	size_t plain_len = 0;
	int n = 0;
	int final_len = 0;

	if (out != NULL)
		*out = NULL;
	if (out_len != NULL)
		*out_len = 0;
	if (kek == NULL || blob == NULL || out == NULL || out_len == NULL)
		return FA_ERR_INVALID;
	if (len < SEAL_OVERHEAD || blob[0] != SEAL_VERSION)
		return FA_ERR_INVALID;
	if (len > INT_MAX)
		return FA_ERR_TOO_LARGE;

	plain_len = len - SEAL_OVERHEAD;
	plain = malloc(plain_len + 1);
	if (plain == NULL)
		return FA_ERR_NOMEM;
	result = gcm_init(&ctx, kek, blob + 1, aad, 0);
	if (result != FA_OK)
		goto out;
	const uint8_t *ct = blob + 1 + SEAL_NONCE_LEN;
	if (plain_len > 0 &&
	    EVP_DecryptUpdate(ctx, plain, &n, ct, (int)plain_len) != 1) {
		result = FA_ERR_CRYPTO;
		goto out;
	}
	memcpy(tag, ct + plain_len, SEAL_TAG_LEN);
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, tag) !=
	            1 ||
	    EVP_DecryptFinal_ex(ctx, plain + n, &final_len) != 1) {
		result = FA_ERR_CRYPTO;
		goto out;
	}
	plain[plain_len] = '\0';
	*out = plain;
	*out_len = plain_len;
	plain = NULL;

out:
	EVP_CIPHER_CTX_free(ctx);
	if (plain != NULL) {
		fa_wipe(plain, plain_len + 1);
		free(plain);
	}
	return result;
}
