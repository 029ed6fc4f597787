/* Small crypto helpers over OpenSSL 3: random bytes, hashes, encodings,
 * constant-time comparison, wiping and AES-256-GCM sealing of secrets. */
#ifndef FA_CRYPTO_H
#define FA_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fa_result.h"

#define FA_SHA256_LEN 32
#define FA_KEK_ID_MAX 64

/* Fills buf with bytes from the OpenSSL CSPRNG. */
fa_result fa_random_bytes(void *buf, size_t len);

void fa_sha256(const void *data, size_t len, uint8_t out[FA_SHA256_LEN]);

/* Lower-case hex of len bytes into out, which must hold 2 * len + 1. */
void fa_hex_encode(const uint8_t *data, size_t len, char *out);

/* Constant-time equality of two buffers of the same length. */
bool fa_ct_equal(const void *a, const void *b, size_t len);

/* Overwrites len bytes in a way the compiler does not remove. */
void fa_wipe(void *buf, size_t len);

/*
 * Base64url without padding. fa_b64url_encode writes a NUL-terminated
 * string into out (size out_size, at least 4 * ceil(len / 3) + 1) and
 * returns its length, or 0 if out is too small. fa_b64url_decode accepts
 * only the base64url alphabet without padding and rejects non-canonical
 * trailing bits; it returns FA_ERR_INVALID or FA_ERR_TOO_LARGE on error.
 */
size_t fa_b64url_encode(const uint8_t *data, size_t len, char *out,
                        size_t out_size);
fa_result fa_b64url_decode(const char *in, size_t in_len, uint8_t *out,
                           size_t out_size, size_t *out_len);

/* A key-encryption key: 32 bytes and the id stored next to what it seals. */
struct fa_kek {
	char id[FA_KEK_ID_MAX + 1];
	uint8_t key[32];
};

/*
 * Loads a KEK from a file that contains 64 hex characters (an optional
 * trailing newline is allowed). Rejects a file readable by group or others
 * with FA_ERR_DENIED. id must satisfy fa_id_valid().
 */
fa_result fa_kek_load(const char *path, const char *id, struct fa_kek *kek);

/*
 * Seals plain with AES-256-GCM under kek. The output is
 * version byte 1 | 12-byte nonce | ciphertext | 16-byte tag; aad (may be
 * NULL) binds the blob to its context, for example "totp:drv-ann".
 * *out is malloc'd and owned by the caller.
 */
fa_result fa_seal(const struct fa_kek *kek, const void *plain, size_t len,
                  const char *aad, uint8_t **out, size_t *out_len);

/* Opens a blob made by fa_seal. *out is malloc'd, NUL-terminated for
 * convenience, owned by the caller, and should be wiped after use. Returns
 * FA_ERR_CRYPTO when the tag does not verify. */
fa_result fa_open(const struct fa_kek *kek, const uint8_t *blob, size_t len,
                  const char *aad, uint8_t **out, size_t *out_len);

#endif
