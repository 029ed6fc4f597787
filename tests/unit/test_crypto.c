#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fa_crypto.h"

static const char kek_hex[] =
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

static void make_kek(struct fa_kek *kek, uint8_t first_byte)
{
	memset(kek, 0, sizeof(*kek));
	snprintf(kek->id, sizeof(kek->id), "kek-test");
	for (int i = 0; i < 32; i++)
		kek->key[i] = (uint8_t)(first_byte + i);
}

/* b64url ----------------------------------------------------------------- */

struct b64_vector {
	const char *plain;
	const char *encoded;
};

/* RFC 4648, section 10, without padding. */
static const struct b64_vector vectors[] = {
        {"", ""},
        {"f", "Zg"},
        {"fo", "Zm8"},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg"},
        {"fooba", "Zm9vYmE"},
        {"foobar", "Zm9vYmFy"},
};

static void b64url_rfc4648_vectors(void **state)
{
	(void)state;
	char encoded[32];
	uint8_t decoded[32];
	size_t decoded_len = 0;

	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct b64_vector *v = &vectors[i];
		size_t n = fa_b64url_encode((const uint8_t *)v->plain,
		                            strlen(v->plain), encoded,
		                            sizeof(encoded));
		assert_int_equal(n, strlen(v->encoded));
		assert_string_equal(encoded, v->encoded);
		assert_int_equal(fa_b64url_decode(v->encoded,
		                                  strlen(v->encoded), decoded,
		                                  sizeof(decoded),
		                                  &decoded_len),
		                 FA_OK);
		assert_int_equal(decoded_len, strlen(v->plain));
		assert_memory_equal(decoded, v->plain, decoded_len);
	}
}

static void b64url_url_alphabet(void **state)
{
	(void)state;
	const uint8_t data[] = {0xfb, 0xff, 0xbf};
	char encoded[8];
	uint8_t decoded[8];
	size_t decoded_len = 0;

	assert_int_equal(
	        fa_b64url_encode(data, sizeof(data), encoded, sizeof(encoded)),
	        4);
	assert_string_equal(encoded, "-_-_");
	assert_int_equal(fa_b64url_decode("-_-_", 4, decoded, sizeof(decoded),
	                                  &decoded_len),
	                 FA_OK);
	assert_int_equal(decoded_len, 3);
	assert_memory_equal(decoded, data, 3);
}

static void b64url_rejects_bad_input(void **state)
{
	(void)state;
	uint8_t out[16];
	size_t out_len = 99;

	/* Padding, the standard alphabet, a length of 1 mod 4, stray bits
	 * in the last character, and whitespace. */
	assert_int_equal(
	        fa_b64url_decode("Zg==", 4, out, sizeof(out), &out_len),
	        FA_ERR_INVALID);
	assert_int_equal(out_len, 0);
	assert_int_equal(fa_b64url_decode("+/8", 3, out, sizeof(out), &out_len),
	                 FA_ERR_INVALID);
	assert_int_equal(
	        fa_b64url_decode("Zm9vY", 5, out, sizeof(out), &out_len),
	        FA_ERR_INVALID);
	assert_int_equal(fa_b64url_decode("Zh", 2, out, sizeof(out), &out_len),
	                 FA_ERR_INVALID);
	assert_int_equal(fa_b64url_decode("Zm9", 3, out, sizeof(out), &out_len),
	                 FA_ERR_INVALID);
	assert_int_equal(
	        fa_b64url_decode("Zm 9v", 5, out, sizeof(out), &out_len),
	        FA_ERR_INVALID);
	assert_int_equal(fa_b64url_decode("Zm9vYmFy", 8, out, 5, &out_len),
	                 FA_ERR_TOO_LARGE);
}

static void b64url_encode_small_buffer(void **state)
{
	(void)state;
	char out[5];

	/* "foob" needs 6 characters and the NUL. */
	assert_int_equal(
	        fa_b64url_encode((const uint8_t *)"foob", 4, out, sizeof(out)),
	        0);
	assert_int_equal(
	        fa_b64url_encode((const uint8_t *)"foo", 3, out, sizeof(out)),
	        4);
}

/* Hashes, hex, comparison ------------------------------------------------ */

static void sha256_abc_vector(void **state)
{
	(void)state;
	uint8_t digest[FA_SHA256_LEN];
	char hex[2 * FA_SHA256_LEN + 1];

	/* FIPS 180-2, appendix B.1. */
	fa_sha256("abc", 3, digest);
	fa_hex_encode(digest, sizeof(digest), hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223"
	                         "b00361a396177a9cb410ff61f20015ad");
}

static void ct_equal_compares_bytes(void **state)
{
	(void)state;
	const uint8_t a[] = {1, 2, 3, 4};
	const uint8_t b[] = {1, 2, 3, 4};
	const uint8_t c[] = {1, 2, 3, 5};

	assert_true(fa_ct_equal(a, b, sizeof(a)));
	assert_false(fa_ct_equal(a, c, sizeof(a)));
	assert_true(fa_ct_equal(a, c, 3));
}

static void random_bytes_differ(void **state)
{
	(void)state;
	uint8_t a[32] = {0};
	uint8_t b[32] = {0};
	uint8_t zero[32] = {0};

	assert_int_equal(fa_random_bytes(a, sizeof(a)), FA_OK);
	assert_int_equal(fa_random_bytes(b, sizeof(b)), FA_OK);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, zero, sizeof(a));
}

static void wipe_clears_buffer(void **state)
{
	(void)state;
	uint8_t buf[16];
	uint8_t zero[16] = {0};

	memset(buf, 0xab, sizeof(buf));
	fa_wipe(buf, sizeof(buf));
	assert_memory_equal(buf, zero, sizeof(buf));
	fa_wipe(NULL, 4);
}

/* Seal and open ---------------------------------------------------------- */

static void seal_open_roundtrip(void **state)
{
	(void)state;
	struct fa_kek kek;
	const char secret[] = "JBSWY3DPEHPK3PXP";
	uint8_t *blob = NULL;
	uint8_t *plain = NULL;
	size_t blob_len = 0;
	size_t plain_len = 0;

	make_kek(&kek, 1);
	assert_int_equal(fa_seal(&kek, secret, strlen(secret), "totp:drv-ann",
	                         &blob, &blob_len),
	                 FA_OK);
	assert_int_equal(blob_len, 1 + 12 + strlen(secret) + 16);
	assert_int_equal(blob[0], 1);
	assert_memory_not_equal(blob + 13, secret, strlen(secret));
	assert_int_equal(fa_open(&kek, blob, blob_len, "totp:drv-ann", &plain,
	                         &plain_len),
	                 FA_OK);
	assert_int_equal(plain_len, strlen(secret));
	assert_string_equal((char *)plain, secret);
	fa_wipe(plain, plain_len);
	free(plain);
	free(blob);
}

static void seal_uses_fresh_nonce(void **state)
{
	(void)state;
	struct fa_kek kek;
	uint8_t *a = NULL;
	uint8_t *b = NULL;
	size_t a_len = 0;
	size_t b_len = 0;

	make_kek(&kek, 1);
	assert_int_equal(fa_seal(&kek, "same", 4, NULL, &a, &a_len), FA_OK);
	assert_int_equal(fa_seal(&kek, "same", 4, NULL, &b, &b_len), FA_OK);
	assert_int_equal(a_len, b_len);
	assert_memory_not_equal(a, b, a_len);
	free(a);
	free(b);
}

static void seal_empty_plaintext(void **state)
{
	(void)state;
	struct fa_kek kek;
	uint8_t *blob = NULL;
	uint8_t *plain = NULL;
	size_t blob_len = 0;
	size_t plain_len = 99;

	make_kek(&kek, 1);
	assert_int_equal(fa_seal(&kek, NULL, 0, "ctx", &blob, &blob_len),
	                 FA_OK);
	assert_int_equal(blob_len, 29);
	assert_int_equal(
	        fa_open(&kek, blob, blob_len, "ctx", &plain, &plain_len),
	        FA_OK);
	assert_int_equal(plain_len, 0);
	assert_string_equal((char *)plain, "");
	free(plain);
	free(blob);
}

/* Opens blob and expects want; out must stay NULL on failure. */
static void expect_open(const struct fa_kek *kek, const uint8_t *blob,
                        size_t len, const char *aad, fa_result want)
{
	uint8_t *plain = (uint8_t *)"sentinel";
	size_t plain_len = 99;

	assert_int_equal(fa_open(kek, blob, len, aad, &plain, &plain_len),
	                 want);
	if (want != FA_OK) {
		assert_null(plain);
		assert_int_equal(plain_len, 0);
	}
	free(want == FA_OK ? plain : NULL);
}

static void open_rejects_tampering(void **state)
{
	(void)state;
	struct fa_kek kek;
	struct fa_kek other;
	uint8_t *blob = NULL;
	size_t len = 0;

	make_kek(&kek, 1);
	make_kek(&other, 2);
	assert_int_equal(fa_seal(&kek, "seed", 4, "totp:drv-ann", &blob, &len),
	                 FA_OK);
	expect_open(&kek, blob, len, "totp:drv-ann", FA_OK);

	/* Tag, ciphertext and nonce each protected. */
	blob[len - 1] ^= 0x01;
	expect_open(&kek, blob, len, "totp:drv-ann", FA_ERR_CRYPTO);
	blob[len - 1] ^= 0x01;
	blob[13] ^= 0x80;
	expect_open(&kek, blob, len, "totp:drv-ann", FA_ERR_CRYPTO);
	blob[13] ^= 0x80;
	blob[1] ^= 0x01;
	expect_open(&kek, blob, len, "totp:drv-ann", FA_ERR_CRYPTO);
	blob[1] ^= 0x01;

	/* Wrong context, missing context, wrong key. */
	expect_open(&kek, blob, len, "totp:drv-bob", FA_ERR_CRYPTO);
	expect_open(&kek, blob, len, NULL, FA_ERR_CRYPTO);
	expect_open(&other, blob, len, "totp:drv-ann", FA_ERR_CRYPTO);

	/* Truncated blob and unknown version. */
	expect_open(&kek, blob, len - 1, "totp:drv-ann", FA_ERR_CRYPTO);
	expect_open(&kek, blob, 28, "totp:drv-ann", FA_ERR_INVALID);
	blob[0] = 2;
	expect_open(&kek, blob, len, "totp:drv-ann", FA_ERR_INVALID);
	free(blob);
}

/* KEK files -------------------------------------------------------------- */

static char kek_dir[64];

static int make_kek_dir(void **state)
{
	(void)state;
	snprintf(kek_dir, sizeof(kek_dir), "/tmp/fa-test-kek-XXXXXX");
	return mkdtemp(kek_dir) == NULL ? -1 : 0;
}

static int remove_kek_dir(void **state)
{
	(void)state;
	char path[128];
	static const char *const names[] = {"good",  "good-nl", "group",
	                                    "short", "nonhex",  "double-nl",
	                                    "long"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", kek_dir, names[i]);
		unlink(path);
	}
	return rmdir(kek_dir);
}

static const char *write_kek_file(const char *name, const char *content,
                                  mode_t mode)
{
	static char path[128];
	FILE *file = NULL;

	snprintf(path, sizeof(path), "%s/%s", kek_dir, name);
	file = fopen(path, "w");
	assert_non_null(file);
	assert_true(fputs(content, file) >= 0);
	assert_int_equal(fclose(file), 0);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void kek_load_accepts_private_hex(void **state)
{
	(void)state;
	struct fa_kek kek;
	struct fa_kek expected;

	make_kek(&expected, 0);
	assert_int_equal(fa_kek_load(write_kek_file("good", kek_hex, 0600),
	                             "kek-2026", &kek),
	                 FA_OK);
	assert_string_equal(kek.id, "kek-2026");
	assert_memory_equal(kek.key, expected.key, 32);

	char with_newline[80];
	snprintf(with_newline, sizeof(with_newline), "%s\n", kek_hex);
	assert_int_equal(
	        fa_kek_load(write_kek_file("good-nl", with_newline, 0400),
	                    "kek-2026", &kek),
	        FA_OK);
	assert_memory_equal(kek.key, expected.key, 32);
}

static void kek_load_rejects_bad_files(void **state)
{
	(void)state;
	struct fa_kek kek;
	char text[160];

	assert_int_equal(fa_kek_load(write_kek_file("group", kek_hex, 0640),
	                             "kek-1", &kek),
	                 FA_ERR_DENIED);
	assert_int_equal(fa_kek_load(write_kek_file("group", kek_hex, 0604),
	                             "kek-1", &kek),
	                 FA_ERR_DENIED);
	assert_int_equal(fa_kek_load(write_kek_file("short", "00ff", 0600),
	                             "kek-1", &kek),
	                 FA_ERR_INVALID);
	snprintf(text, sizeof(text), "%.63sg", kek_hex);
	assert_int_equal(fa_kek_load(write_kek_file("nonhex", text, 0600),
	                             "kek-1", &kek),
	                 FA_ERR_INVALID);
	snprintf(text, sizeof(text), "%s\n\n", kek_hex);
	assert_int_equal(fa_kek_load(write_kek_file("double-nl", text, 0600),
	                             "kek-1", &kek),
	                 FA_ERR_INVALID);
	snprintf(text, sizeof(text), "%s00", kek_hex);
	assert_int_equal(
	        fa_kek_load(write_kek_file("long", text, 0600), "kek-1", &kek),
	        FA_ERR_INVALID);
	assert_int_equal(fa_kek_load(write_kek_file("good", kek_hex, 0600),
	                             "kek/1", &kek),
	                 FA_ERR_INVALID);
	assert_int_equal(
	        fa_kek_load("/nonexistent/fleetauth-kek", "kek-1", &kek),
	        FA_ERR_NOT_FOUND);
	assert_int_equal(fa_kek_load(kek_dir, "kek-1", &kek), FA_ERR_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(b64url_rfc4648_vectors),
	        cmocka_unit_test(b64url_url_alphabet),
	        cmocka_unit_test(b64url_rejects_bad_input),
	        cmocka_unit_test(b64url_encode_small_buffer),
	        cmocka_unit_test(sha256_abc_vector),
	        cmocka_unit_test(ct_equal_compares_bytes),
	        cmocka_unit_test(random_bytes_differ),
	        cmocka_unit_test(wipe_clears_buffer),
	        cmocka_unit_test(seal_open_roundtrip),
	        cmocka_unit_test(seal_uses_fresh_nonce),
	        cmocka_unit_test(seal_empty_plaintext),
	        cmocka_unit_test(open_rejects_tampering),
	        cmocka_unit_test(kek_load_accepts_private_hex),
	        cmocka_unit_test(kek_load_rejects_bad_files),
	};
	return cmocka_run_group_tests(tests, make_kek_dir, remove_kek_dir);
}
