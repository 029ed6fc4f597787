/*
 * JWT access-token verification over OpenSSL 3 EVP and cJSON.
 *
 * Keyring concurrency: fa_keyring_add_pem and fa_keyring_remove must not run
 * at the same time as any other call on the same ring. fa_token_verify only
 * reads the ring, its EVP_PKEYs and their prepared verify contexts
 * (EVP_PKEY_CTX_dup takes its source as const), so any number of threads
 * may verify concurrently against a ring that is not being modified. The plugin
 * modifies its ring from the broker's single thread between verifications;
 * fleetauthd builds its ring at start-up and then only verifies.
 */
#include "fa_token.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "fa_crypto.h"
#include "fa_roles.h"

#define RSA_MIN_BITS 2048
#define ES256_SIG_LEN 64
/* DER ECDSA-Sig-Value for P-256: 2 + 2 * (2 + 33) bytes at most. */
#define ES256_DER_MAX 72
/* Decoded size of the largest part a FA_TOKEN_MAX_LEN token can carry. */
#define PART_MAX (FA_TOKEN_MAX_LEN / 4 * 3 + 3)
/* Integers in JSON numbers are exact in a double up to 2^53. */
#define JSON_INT_MAX 9007199254740992.0

/*
 * A key with the SHA-256 implementation fetched once and a verify context
 * initialised for it once. Each verification hashes the signing input in
 * one call and verifies the digest with a duplicate of the context, which
 * skips the provider lookups of a fresh EVP_PKEY_verify_init. The
 * duplicate is needed because EVP_PKEY_verify writes to its context, so
 * one context cannot serve two threads.
 *
 * NOTE: concurrent duplicates of one context rely on EVP_PKEY_CTX_dup not
 * modifying its const source. openssl-threads(7) of OpenSSL 3.0 states
 * that a const parameter usually means this, but not always. test_token
 * runs four threads through it, and ThreadSanitizer cannot see inside
 * libcrypto.
 */
struct fa_key {
	char kid[FA_ID_MAX + 1];
	enum fa_alg alg;
	size_t sig_len; /* RSA modulus size in bytes; 0 for ES256 */
	EVP_PKEY *pkey;
	EVP_MD *sha256;
	EVP_PKEY_CTX *verify_template;
};

/* Keys sorted by kid, so lookups are a binary search. */
struct fa_keyring {
	struct fa_key *keys;
	size_t count;
	size_t capacity;
};

const char *fa_token_status_str(enum fa_token_status status)
{
	switch (status) {
	case FA_TOKEN_OK:
		return "ok";
	case FA_TOKEN_MALFORMED:
		return "malformed";
	case FA_TOKEN_TOO_LONG:
		return "too long";
	case FA_TOKEN_BAD_ALG:
		return "algorithm not allowed";
	case FA_TOKEN_UNKNOWN_KID:
		return "unknown key id";
	case FA_TOKEN_BAD_SIGNATURE:
		return "bad signature";
	case FA_TOKEN_EXPIRED:
		return "expired";
	case FA_TOKEN_NOT_YET_VALID:
		return "not yet valid";
	case FA_TOKEN_BAD_ISSUER:
		return "wrong issuer";
	case FA_TOKEN_BAD_AUDIENCE:
		return "wrong audience";
	case FA_TOKEN_BAD_CLAIMS:
		return "invalid claims";
	}
	return "unknown status";
}

/* Keyring ---------------------------------------------------------------- */

static void key_clear(struct fa_key *key)
{
	EVP_PKEY_CTX_free(key->verify_template);
	EVP_MD_free(key->sha256);
	EVP_PKEY_free(key->pkey);
	key->verify_template = NULL;
	key->sha256 = NULL;
	key->pkey = NULL;
}

struct fa_keyring *fa_keyring_new(void)
{
	return calloc(1, sizeof(struct fa_keyring));
}

void fa_keyring_free(struct fa_keyring *ring)
{
	if (ring == NULL)
		return;
	for (size_t i = 0; i < ring->count; i++)
		key_clear(&ring->keys[i]);
	free(ring->keys);
	free(ring);
}

size_t fa_keyring_count(const struct fa_keyring *ring)
{
	return ring == NULL ? 0 : ring->count;
}

/*
 * Finds kid (kid_len bytes) in ring. Returns its index and sets *found, or
 * returns the index where it would be inserted.
 */
static size_t keyring_search(const struct fa_keyring *ring, const char *kid,
                             size_t kid_len, bool *found)
{
	size_t lo = 0;
	size_t hi = ring->count;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *k = ring->keys[mid].kid;
		int cmp = strncmp(k, kid, kid_len);
		if (cmp == 0 && k[kid_len] != '\0')
			cmp = 1;
		if (cmp == 0) {
			*found = true;
			return mid;
		}
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Checks that pkey suits alg: RSA of at least 2048 bits, or EC on P-256. */
static bool key_matches_alg(EVP_PKEY *pkey, enum fa_alg alg)
{
	char group[32];
	size_t group_len = 0;

	if (alg == FA_ALG_RS256) {
		return EVP_PKEY_is_a(pkey, "RSA") &&
		       EVP_PKEY_get_bits(pkey) >= RSA_MIN_BITS;
	}
	if (alg != FA_ALG_ES256 || !EVP_PKEY_is_a(pkey, "EC"))
		return false;
	if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
	                                   group, sizeof(group),
	                                   &group_len) != 1)
		return false;
	return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

static EVP_PKEY *parse_public_pem(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *pkey = NULL;

	if (bio == NULL)
		return NULL;
	pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	return pkey;
}

/*
 * Prepares a context that verifies a SHA-256 digest signed with pkey:
 * PKCS#1 v1.5 padding for RSA, a DER ECDSA-Sig-Value for EC. Returns NULL
 * on failure; the caller frees the context.
 */
static EVP_PKEY_CTX *make_verify_template(EVP_PKEY *pkey, const EVP_MD *md,
                                          enum fa_alg alg)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);

	if (ctx == NULL)
		return NULL;
	if (EVP_PKEY_verify_init(ctx) != 1)
		goto fail;
	if (alg == FA_ALG_RS256 &&
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1)
		goto fail;
	if (EVP_PKEY_CTX_set_signature_md(ctx, md) != 1)
		goto fail;
	return ctx;

fail:
	EVP_PKEY_CTX_free(ctx);
	return NULL;
}

static fa_result keyring_reserve(struct fa_keyring *ring)
{
	struct fa_key *keys = NULL;
	size_t capacity = 0;

	if (ring->count < ring->capacity)
		return FA_OK;
	capacity = ring->capacity == 0 ? 4 : ring->capacity * 2;
	keys = realloc(ring->keys, capacity * sizeof(*keys));
	if (keys == NULL)
		return FA_ERR_NOMEM;
	ring->keys = keys;
	ring->capacity = capacity;
	return FA_OK;
}

/*
 * Parses pem once and stores the key under kid, replacing any key with the
 * same kid. FA_ERR_INVALID for a bad kid, unparsable PEM or a key that does
 * not suit alg; FA_ERR_CRYPTO when OpenSSL cannot prepare a verify context;
 * FA_ERR_NOMEM on allocation failure. The ring owns the key.
 */
fa_result fa_keyring_add_pem(struct fa_keyring *ring, const char *kid,
                             enum fa_alg alg, const char *pem)
{
	fa_result result = FA_OK;
	struct fa_key key = {0};
	bool found = false;
	size_t index = 0;

	if (ring == NULL || !fa_id_valid(kid) || pem == NULL)
		return FA_ERR_INVALID;
	if (alg != FA_ALG_RS256 && alg != FA_ALG_ES256)
		return FA_ERR_INVALID;

	key.pkey = parse_public_pem(pem);
	if (key.pkey == NULL || !key_matches_alg(key.pkey, alg)) {
		result = FA_ERR_INVALID;
		goto out;
	}
	key.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (key.sha256 != NULL)
		key.verify_template =
		        make_verify_template(key.pkey, key.sha256, alg);
	if (key.verify_template == NULL) {
		result = FA_ERR_CRYPTO;
		goto out;
	}
	key.alg = alg;
	if (alg == FA_ALG_RS256)
		key.sig_len = (size_t)EVP_PKEY_get_size(key.pkey);
	memcpy(key.kid, kid, strlen(kid) + 1);

	index = keyring_search(ring, kid, strlen(kid), &found);
	if (found) {
		key_clear(&ring->keys[index]);
		ring->keys[index] = key;
		memset(&key, 0, sizeof(key));
		goto out;
	}
	result = keyring_reserve(ring);
	if (result != FA_OK)
		goto out;
	memmove(&ring->keys[index + 1], &ring->keys[index],
	        (ring->count - index) * sizeof(*ring->keys));
	ring->keys[index] = key;
	ring->count++;
	memset(&key, 0, sizeof(key));

out:
	key_clear(&key);
	return result;
}

fa_result fa_keyring_remove(struct fa_keyring *ring, const char *kid)
{
	bool found = false;
	size_t index = 0;

	if (ring == NULL || kid == NULL)
		return FA_ERR_INVALID;
	index = keyring_search(ring, kid, strlen(kid), &found);
	if (!found)
		return FA_ERR_NOT_FOUND;
	key_clear(&ring->keys[index]);
	memmove(&ring->keys[index], &ring->keys[index + 1],
	        (ring->count - index - 1) * sizeof(*ring->keys));
	ring->count--;
	return FA_OK;
}

/* Token parts ------------------------------------------------------------ */

/* The three dot-separated parts of a compact JWS, pointing into the token. */
struct jws_parts {
	const char *header;
	size_t header_len;
	const char *payload;
	size_t payload_len;
	const char *signature;
	size_t signature_len;
};

static bool split_token(const char *token, size_t len, struct jws_parts *p)
{
	const char *dot1 = memchr(token, '.', len);
	const char *dot2 = NULL;
	const char *end = token + len;

	if (dot1 == NULL)
		return false;
	dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1));
	if (dot2 == NULL || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
		return false;
	p->header = token;
	p->header_len = (size_t)(dot1 - token);
	p->payload = dot1 + 1;
	p->payload_len = (size_t)(dot2 - dot1 - 1);
	p->signature = dot2 + 1;
	p->signature_len = (size_t)(end - dot2 - 1);
	/* An empty signature passes here so that "alg": "none" is reported
	 * as a bad algorithm; verify_signature rejects it in any case. */
	return p->header_len > 0 && p->payload_len > 0;
}

/* 6-bit value of each base64url character; B64_INVALID for every other
 * byte. */
#define B64_INVALID 0xff
#define X B64_INVALID
static const uint8_t b64url_values[256] = {
        X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
        X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
        X,  X,  X,  X,  X,  X,  X,  X,  X,  62, X,  X,  52, 53, 54, 55, 56, 57,
        58, 59, 60, 61, X,  X,  X,  X,  X,  X,  X,  0,  1,  2,  3,  4,  5,  6,
        7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
        25, X,  X,  X,  X,  63, X,  26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36,
        37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, X,  X,  X,
        X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
        X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
        X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
        X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
        X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
        X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
        X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
        X,  X,  X,  X,
};
#undef X

/*
 * Decodes unpadded base64url into out (out_size bytes) and sets *out_len.
 * It accepts exactly what fa_b64url_decode accepts: a length of 1 mod 4, a
 * byte outside the alphabet or non-zero unused bits in the last character
 * is rejected. It is a table-driven copy of that decoder, four characters
 * per step, because decoding is on the hot path of every verification.
 */
static bool b64url_decode(const char *in, size_t len, uint8_t *out,
                          size_t out_size, size_t *out_len)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t full = len / 4;
	size_t rest = len % 4;
	size_t need = full * 3 + (rest == 0 ? 0 : rest - 1);
	size_t o = 0;
	uint32_t v = 0;

	if (rest == 1 || need > out_size)
		return false;
	for (size_t i = 0; i < full; i++, p += 4) {
		uint32_t a = b64url_values[p[0]];
		uint32_t b = b64url_values[p[1]];
		uint32_t c = b64url_values[p[2]];
		uint32_t d = b64url_values[p[3]];
		if (((a | b | c | d) & 0x80) != 0)
			return false;
		v = a << 18 | b << 12 | c << 6 | d;
		out[o++] = (uint8_t)(v >> 16);
		out[o++] = (uint8_t)(v >> 8);
		out[o++] = (uint8_t)v;
	}
	if (rest == 0) {
		*out_len = o;
		return true;
	}
	v = 0;
	for (size_t i = 0; i < rest; i++) {
		uint32_t a = b64url_values[p[i]];
		if (a == B64_INVALID)
			return false;
		v = v << 6 | a;
	}
	/* Two characters carry one byte and 4 unused bits, three carry two
	 * bytes and 2 unused bits. */
	if (rest == 2) {
		if ((v & 0xf) != 0)
			return false;
		out[o++] = (uint8_t)(v >> 4);
	} else {
		if ((v & 0x3) != 0)
			return false;
		out[o++] = (uint8_t)(v >> 10);
		out[o++] = (uint8_t)(v >> 2);
	}
	*out_len = o;
	return true;
}

/* JSON objects ----------------------------------------------------------- */

/*
 * A decoded header or payload is read through a flat view of its top-level
 * members. A small in-place parser builds the view for the common shape of
 * a token part: an object whose values are printable-ASCII strings without
 * escapes, integers of at most 15 digits, true, false, null, or arrays of
 * those scalars. For every such input it yields the values cJSON 1.7 would.
 * Anything else (escapes, non-ASCII bytes, fractions, exponents, nested
 * containers, more members than fit) is parsed by cJSON instead and copied
 * into the same view, so both paths accept the same documents.
 */
#define VIEW_MEMBERS 24
#define VIEW_ITEMS 32
/* 15 decimal digits are always exact in a double. */
#define FAST_INT_DIGITS 15

enum json_type { JSON_OTHER, JSON_STRING, JSON_NUMBER, JSON_ARRAY };

/* A scalar, or an element of an array member. */
struct json_item {
	enum json_type type;
	const char *string; /* NUL-terminated, for JSON_STRING */
	double number;      /* for JSON_NUMBER */
};

struct json_member {
	const char *name;
	struct json_item value;
	const struct json_item *items; /* for JSON_ARRAY */
	size_t item_count;
};

struct json_view {
	struct json_member *members;
	size_t count;
	struct json_member member_buf[VIEW_MEMBERS];
	struct json_item item_buf[VIEW_ITEMS];
	cJSON *tree;                      /* set when cJSON parsed the part */
	struct json_member *heap_members; /* cJSON path only */
	struct json_item *heap_items;     /* cJSON path only */
};

static void view_init(struct json_view *view)
{
	view->members = NULL;
	view->count = 0;
	view->tree = NULL;
	view->heap_members = NULL;
	view->heap_items = NULL;
}

static void view_free(struct json_view *view)
{
	cJSON_Delete(view->tree);
	free(view->heap_members);
	free(view->heap_items);
	view->tree = NULL;
	view->heap_members = NULL;
	view->heap_items = NULL;
	view->members = NULL;
	view->count = 0;
}

/* Returns the member called name, or NULL. */
static const struct json_member *view_get(const struct json_view *view,
                                          const char *name)
{
	for (size_t i = 0; i < view->count; i++) {
		if (strcmp(view->members[i].name, name) == 0)
			return &view->members[i];
	}
	return NULL;
}

static const char *view_string(const struct json_view *view, const char *name)
{
	const struct json_member *m = view_get(view, name);

	return m != NULL && m->value.type == JSON_STRING ? m->value.string
	                                                 : NULL;
}

/* True when two members have the same name; cJSON would silently use the
 * first, while other parsers use the last. */
static bool view_has_duplicates(const struct json_view *view)
{
	for (size_t i = 0; i < view->count; i++) {
		for (size_t j = i + 1; j < view->count; j++) {
			if (strcmp(view->members[i].name,
			           view->members[j].name) == 0)
				return true;
		}
	}
	return false;
}

static char *skip_space(char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* Parses a string without escapes at p (on the opening quote) in place:
 * the closing quote becomes NUL. Returns the byte after it, or NULL. */
static char *fast_string(char *p, const char **out)
{
	char *start = ++p;

	while (*p >= 0x20 && *p <= 0x7e && *p != '"' && *p != '\\')
		p++;
	if (*p != '"')
		return NULL;
	*p = '\0';
	*out = start;
	return p + 1;
}

/* Parses -?(0|[1-9][0-9]*) with at most FAST_INT_DIGITS digits, not
 * followed by a fraction or exponent. Returns the byte after it, or NULL. */
static char *fast_integer(char *p, double *out)
{
	bool negative = *p == '-';
	int64_t value = 0;
	int digits = 0;

	if (negative)
		p++;
	if (*p == '0' && p[1] >= '0' && p[1] <= '9')
		return NULL;
	while (*p >= '0' && *p <= '9' && digits < FAST_INT_DIGITS) {
		value = value * 10 + (*p - '0');
		p++;
		digits++;
	}
	if (digits == 0 || (*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' ||
	    *p == 'E' || *p == '+' || *p == '-')
		return NULL;
	/* Negating the double keeps "-0" as -0.0, as strtod returns it. */
	*out = negative ? -(double)value : (double)value;
	return p;
}

/* Parses a string, integer, true, false or null. Returns the byte after
 * it, or NULL when it is anything else. */
static char *fast_scalar(char *p, struct json_item *item)
{
	item->type = JSON_OTHER;
	item->string = NULL;
	item->number = 0;
	if (*p == '"') {
		item->type = JSON_STRING;
		return fast_string(p, &item->string);
	}
	if (*p == '-' || (*p >= '0' && *p <= '9')) {
		item->type = JSON_NUMBER;
		return fast_integer(p, &item->number);
	}
	if (strncmp(p, "true", 4) == 0 || strncmp(p, "null", 4) == 0)
		return p + 4;
	if (strncmp(p, "false", 5) == 0)
		return p + 5;
	return NULL;
}

/* Parses an array of scalars at p (on the '['). Returns the byte after the
 * ']', or NULL. */
static char *fast_array(char *p, struct json_view *view, size_t *used,
                        struct json_member *member)
{
	member->value.type = JSON_ARRAY;
	member->value.string = NULL;
	member->value.number = 0;
	member->items = &view->item_buf[*used];
	member->item_count = 0;
	p = skip_space(p + 1);
	if (*p == ']')
		return p + 1;
	for (;;) {
		if (*used == VIEW_ITEMS)
			return NULL;
		p = fast_scalar(p, &view->item_buf[*used]);
		if (p == NULL)
			return NULL;
		(*used)++;
		member->item_count++;
		p = skip_space(p);
		if (*p == ']')
			return p + 1;
		if (*p != ',')
			return NULL;
		p = skip_space(p + 1);
	}
}

/* Builds the view from the NUL-terminated text in place. False when the
 * text is outside the subset described above, which is not necessarily
 * invalid JSON. */
static bool fast_parse(char *text, struct json_view *view)
{
	char *p = skip_space(text);
	size_t items_used = 0;

	view->members = view->member_buf;
	view->count = 0;
	if (*p != '{')
		return false;
	p = skip_space(p + 1);
	if (*p == '}')
		return *skip_space(p + 1) == '\0';
	for (;;) {
		struct json_member *m = &view->member_buf[view->count];
		if (view->count == VIEW_MEMBERS || *p != '"')
			return false;
		p = fast_string(p, &m->name);
		if (p == NULL)
			return false;
		p = skip_space(p);
		if (*p != ':')
			return false;
		p = skip_space(p + 1);
		m->items = NULL;
		m->item_count = 0;
		if (*p == '[')
			p = fast_array(p, view, &items_used, m);
		else
			p = fast_scalar(p, &m->value);
		if (p == NULL)
			return false;
		view->count++;
		p = skip_space(p);
		if (*p == '}')
			return *skip_space(p + 1) == '\0';
		if (*p != ',')
			return false;
		p = skip_space(p + 1);
	}
}

static void item_from_cjson(const cJSON *node, struct json_item *item)
{
	item->type = JSON_OTHER;
	item->string = NULL;
	item->number = 0;
	if (cJSON_IsString(node)) {
		item->type = JSON_STRING;
		item->string = node->valuestring;
	} else if (cJSON_IsNumber(node)) {
		item->type = JSON_NUMBER;
		item->number = node->valuedouble;
	}
}

/* Copies the top-level members of a parsed object into the view. Arrays
 * keep their elements; objects and other values become JSON_OTHER. */
static bool view_from_cjson(cJSON *tree, struct json_view *view)
{
	size_t members = 0;
	size_t items = 0;
	const cJSON *m = NULL;
	const cJSON *e = NULL;

	view->tree = tree;
	cJSON_ArrayForEach(m, tree)
	{
		members++;
		if (cJSON_IsArray(m))
			items += (size_t)cJSON_GetArraySize(m);
	}
	view->heap_members = calloc(members + 1, sizeof(*view->heap_members));
	view->heap_items = calloc(items + 1, sizeof(*view->heap_items));
	if (view->heap_members == NULL || view->heap_items == NULL)
		return false;
	view->members = view->heap_members;
	items = 0;
	cJSON_ArrayForEach(m, tree)
	{
		struct json_member *out = &view->heap_members[view->count++];
		out->name = m->string;
		item_from_cjson(m, &out->value);
		if (!cJSON_IsArray(m))
			continue;
		out->value.type = JSON_ARRAY;
		out->items = &view->heap_items[items];
		cJSON_ArrayForEach(e, m)
		{
			item_from_cjson(e, &view->heap_items[items++]);
			out->item_count++;
		}
	}
	return true;
}

/*
 * Decodes one base64url part into buf (PART_MAX + 1 bytes) and builds a
 * view of it as a JSON object. The view points into buf and, on the cJSON
 * path, into a tree it owns; release it with view_free even on failure.
 * Returns false when the part is not valid base64url, not a JSON object or
 * has a repeated member name.
 */
static bool decode_json_part(const char *part, size_t len, char *buf,
                             struct json_view *view)
{
	size_t decoded_len = 0;
	const char *end = NULL;
	cJSON *tree = NULL;

	view->count = 0;
	if (!b64url_decode(part, len, (uint8_t *)buf, PART_MAX, &decoded_len))
		return false;
	if (memchr(buf, '\0', decoded_len) != NULL)
		return false;
	buf[decoded_len] = '\0';
	if (fast_parse(buf, view))
		return !view_has_duplicates(view);

	/* fast_parse may have written NULs into buf, so decode again. */
	view->count = 0;
	(void)b64url_decode(part, len, (uint8_t *)buf, PART_MAX, &decoded_len);
	buf[decoded_len] = '\0';
	tree = cJSON_ParseWithOpts(buf, &end, 1);
	if (tree == NULL)
		return false;
	if (!cJSON_IsObject(tree)) {
		cJSON_Delete(tree);
		return false;
	}
	if (!view_from_cjson(tree, view))
		return false;
	return !view_has_duplicates(view);
}

/* Header ----------------------------------------------------------------- */

static bool typ_allowed(const struct json_member *typ)
{
	if (typ == NULL)
		return true;
	if (typ->value.type != JSON_STRING)
		return false;
	/* RFC 9068 names the type "at+jwt"; media type names are
	 * case-insensitive and may carry the "application/" prefix. */
	return strcasecmp(typ->value.string, "at+jwt") == 0 ||
	       strcasecmp(typ->value.string, "application/at+jwt") == 0;
}

/*
 * Checks the header and finds its key. Only RS256 and ES256 are accepted,
 * and the header's alg must be the algorithm the key was added with, so a
 * token cannot pick a weaker algorithm or reuse an RSA key as an HMAC
 * secret. A header with "crit" is rejected because no extension is
 * understood.
 */
static enum fa_token_status check_header(const struct fa_keyring *ring,
                                         const struct json_view *header,
                                         const struct fa_key **key)
{
	const char *alg = view_string(header, "alg");
	const char *kid = view_string(header, "kid");
	const struct json_member *typ = view_get(header, "typ");
	enum fa_alg expected_alg = 0;
	bool found = false;
	size_t index = 0;

	if (alg == NULL)
		return FA_TOKEN_BAD_ALG;
	if (strcmp(alg, "RS256") == 0)
		expected_alg = FA_ALG_RS256;
	else if (strcmp(alg, "ES256") == 0)
		expected_alg = FA_ALG_ES256;
	else
		return FA_TOKEN_BAD_ALG;
	if (kid == NULL || !typ_allowed(typ) ||
	    view_get(header, "crit") != NULL)
		return FA_TOKEN_MALFORMED;
	if (!fa_id_valid(kid))
		return FA_TOKEN_UNKNOWN_KID;
	index = keyring_search(ring, kid, strlen(kid), &found);
	if (!found)
		return FA_TOKEN_UNKNOWN_KID;
	if (ring->keys[index].alg != expected_alg)
		return FA_TOKEN_BAD_ALG;
	*key = &ring->keys[index];
	return FA_TOKEN_OK;
}

/* Signature -------------------------------------------------------------- */

/*
 * Converts a JWS ES256 signature (r and s as 32-byte big-endian integers)
 * into the DER ECDSA-Sig-Value that OpenSSL verifies. Returns the DER
 * length, or 0 on failure.
 */
static size_t es256_raw_to_der(const uint8_t raw[ES256_SIG_LEN],
                               uint8_t der[ES256_DER_MAX])
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(raw, 32, NULL);
	BIGNUM *s = BN_bin2bn(raw + 32, 32, NULL);
	unsigned char *p = der;
	size_t der_len = 0;

	if (sig == NULL || r == NULL || s == NULL)
		goto out;
	if (ECDSA_SIG_set0(sig, r, s) != 1)
		goto out;
	r = NULL;
	s = NULL;
	if (i2d_ECDSA_SIG(sig, NULL) > ES256_DER_MAX)
		goto out;
	int n = i2d_ECDSA_SIG(sig, &p);
	if (n > 0)
		der_len = (size_t)n;

out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	return der_len;
}

/*
 * Verifies the signature over "header.payload": SHA-256 of the signing input
 * in one call, then a public-key verify of that digest with a duplicate of
 * the key's prepared context. The raw signature must have the length the
 * key implies: the modulus size for RSA, 64 bytes for ES256.
 */
static enum fa_token_status verify_signature(const struct fa_key *key,
                                             const struct jws_parts *parts)
{
	uint8_t raw[PART_MAX];
	uint8_t der[ES256_DER_MAX];
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	const uint8_t *sig = raw;
	size_t sig_len = 0;
	EVP_PKEY_CTX *ctx = NULL;
	enum fa_token_status status = FA_TOKEN_BAD_SIGNATURE;

	if (!b64url_decode(parts->signature, parts->signature_len, raw,
	                   sizeof(raw), &sig_len))
		return FA_TOKEN_MALFORMED;
	if (key->alg == FA_ALG_ES256) {
		if (sig_len != ES256_SIG_LEN)
			return FA_TOKEN_BAD_SIGNATURE;
		sig_len = es256_raw_to_der(raw, der);
		if (sig_len == 0)
			return FA_TOKEN_BAD_SIGNATURE;
		sig = der;
	} else if (sig_len != key->sig_len) {
		return FA_TOKEN_BAD_SIGNATURE;
	}

	/* The signing input is the header, the dot and the payload. */
	size_t input_len = parts->header_len + 1 + parts->payload_len;
	if (EVP_Digest(parts->header, input_len, digest, &digest_len,
	               key->sha256, NULL) != 1)
		return FA_TOKEN_BAD_SIGNATURE;
	ctx = EVP_PKEY_CTX_dup(key->verify_template);
	if (ctx == NULL)
		return FA_TOKEN_BAD_SIGNATURE;
	if (EVP_PKEY_verify(ctx, sig, sig_len, digest, digest_len) == 1)
		status = FA_TOKEN_OK;
	EVP_PKEY_CTX_free(ctx);
	return status;
}

/* Claims ----------------------------------------------------------------- */

/*
 * Copies an optional string claim that must be a valid id. Absent leaves
 * out empty; present but not a valid id string fails.
 */
static bool copy_id_claim(const struct json_view *payload, const char *name,
                          char out[FA_ID_MAX + 1], bool required)
{
	const struct json_member *item = view_get(payload, name);

	out[0] = '\0';
	if (item == NULL)
		return !required;
	if (item->value.type != JSON_STRING || !fa_id_valid(item->value.string))
		return false;
	memcpy(out, item->value.string, strlen(item->value.string) + 1);
	return true;
}

/* Reads a NumericDate claim: an integral JSON number within 2^53. */
static bool read_time_claim(const struct json_view *payload, const char *name,
                            int64_t *out, bool required)
{
	const struct json_member *item = view_get(payload, name);

	*out = 0;
	if (item == NULL)
		return !required;
	if (item->value.type != JSON_NUMBER)
		return false;
	double v = item->value.number;
	/* The negated range test also rejects NaN. */
	if (!(v >= -JSON_INT_MAX && v <= JSON_INT_MAX))
		return false;
	if (v != (double)(int64_t)v)
		return false;
	*out = (int64_t)v;
	return true;
}

/* Reads amr as a bit set; unknown methods are ignored because RFC 8176
 * defines more than the four this product issues. */
static bool read_amr(const struct json_view *payload, unsigned *amr)
{
	const struct json_member *list = view_get(payload, "amr");

	*amr = 0;
	if (list == NULL)
		return true;
	if (list->value.type != JSON_ARRAY)
		return false;
	for (size_t i = 0; i < list->item_count; i++) {
		const struct json_item *item = &list->items[i];
		if (item->type != JSON_STRING)
			return false;
		if (strcmp(item->string, "pwd") == 0)
			*amr |= FA_AMR_PWD;
		else if (strcmp(item->string, "otp") == 0)
			*amr |= FA_AMR_OTP;
		else if (strcmp(item->string, "hwk") == 0)
			*amr |= FA_AMR_HWK;
		else if (strcmp(item->string, "bio") == 0)
			*amr |= FA_AMR_BIO;
	}
	return true;
}

/*
 * Reads role, which must be a known role name. As in the users table, a
 * carrier role needs a carrier and a platform role (system_admin,
 * system_operator) must not have one. Shipper roles may have either.
 */
static bool read_role(const struct json_view *payload,
                      struct fa_token_claims *claims)
{
	const char *name = view_string(payload, "role");
	enum fa_role role = FA_ROLE_NONE;
	bool has_carrier = claims->carrier[0] != '\0';

	if (name == NULL)
		return false;
	role = fa_role_parse(name);
	if (role == FA_ROLE_NONE)
		return false;
	if (fa_role_is_carrier_role(role) && !has_carrier)
		return false;
	if ((role == FA_ROLE_SYSTEM_ADMIN || role == FA_ROLE_SYSTEM_OPERATOR) &&
	    has_carrier)
		return false;
	memcpy(claims->role, fa_role_name(role),
	       strlen(fa_role_name(role)) + 1);
	return true;
}

static bool read_claims(const struct json_view *payload,
                        struct fa_token_claims *claims)
{
	return copy_id_claim(payload, "sub", claims->sub, true) &&
	       copy_id_claim(payload, "jti", claims->jti, true) &&
	       copy_id_claim(payload, "carrier", claims->carrier, false) &&
	       copy_id_claim(payload, "fam", claims->fam, false) &&
	       copy_id_claim(payload, "did", claims->did, false) &&
	       read_time_claim(payload, "exp", &claims->exp, true) &&
	       read_time_claim(payload, "iat", &claims->iat, true) &&
	       read_time_claim(payload, "nbf", &claims->nbf, false) &&
	       read_role(payload, claims) && read_amr(payload, &claims->amr);
}

static bool issuer_matches(const struct json_view *payload, const char *issuer)
{
	const char *iss = view_string(payload, "iss");

	return issuer != NULL && iss != NULL && strcmp(iss, issuer) == 0;
}

/* aud is a string or an array of strings (RFC 7519, section 4.1.3). */
static bool audience_matches(const struct json_view *payload,
                             const char *audience)
{
	const struct json_member *aud = view_get(payload, "aud");

	if (audience == NULL || aud == NULL)
		return false;
	if (aud->value.type == JSON_STRING)
		return strcmp(aud->value.string, audience) == 0;
	if (aud->value.type != JSON_ARRAY)
		return false;
	for (size_t i = 0; i < aud->item_count; i++) {
		const struct json_item *item = &aud->items[i];
		if (item->type == JSON_STRING &&
		    strcmp(item->string, audience) == 0)
			return true;
	}
	return false;
}

/* Checks the claims' times against options->now with leeway: exp is the
 * first second at which the token is no longer accepted. */
static enum fa_token_status check_times(const struct fa_token_claims *c,
                                        const struct fa_verify_options *o)
{
	int64_t leeway = o->leeway > 0 ? o->leeway : 0;
	bool has_nbf = c->nbf != 0;

	if (o->now >= c->exp + leeway)
		return FA_TOKEN_EXPIRED;
	if (c->iat > o->now + leeway || (has_nbf && c->nbf > o->now + leeway))
		return FA_TOKEN_NOT_YET_VALID;
	if (c->exp <= c->iat)
		return FA_TOKEN_BAD_CLAIMS;
	if (o->max_lifetime > 0 && c->exp - c->iat > o->max_lifetime)
		return FA_TOKEN_BAD_CLAIMS;
	return FA_TOKEN_OK;
}

static enum fa_token_status check_payload(const struct json_view *payload,
                                          const struct fa_verify_options *o,
                                          struct fa_token_claims *claims)
{
	if (!issuer_matches(payload, o->issuer))
		return FA_TOKEN_BAD_ISSUER;
	if (!audience_matches(payload, o->audience))
		return FA_TOKEN_BAD_AUDIENCE;
	if (!read_claims(payload, claims))
		return FA_TOKEN_BAD_CLAIMS;
	return check_times(claims, o);
}

/*
 * Verifies a compact JWS access token: size, structure, header and key,
 * signature, then issuer, audience, claims and times, in that order, and
 * returns the first failure. Decoded parts live on the stack; only a part
 * outside the fast parser's subset makes cJSON allocate a tree, which is
 * freed before returning. claims is written only on FA_TOKEN_OK. A missing
 * or non-string kid, or a "typ" other than at+jwt, is FA_TOKEN_MALFORMED.
 */
enum fa_token_status fa_token_verify(const struct fa_keyring *ring,
                                     const char *token, size_t len,
                                     const struct fa_verify_options *options,
                                     struct fa_token_claims *claims)
{
	char buf[PART_MAX + 1];
	struct jws_parts parts;
	struct fa_token_claims local;
	const struct fa_key *key = NULL;
	struct json_view header;
	struct json_view payload;
	enum fa_token_status status = FA_TOKEN_MALFORMED;

	if (ring == NULL || token == NULL || options == NULL || claims == NULL)
		return FA_TOKEN_MALFORMED;
	if (len > FA_TOKEN_MAX_LEN)
		return FA_TOKEN_TOO_LONG;
	if (!split_token(token, len, &parts))
		return FA_TOKEN_MALFORMED;

	view_init(&header);
	view_init(&payload);
	/* The header view points into buf, which the payload reuses, so the
	 * header is checked completely before the payload is decoded. */
	if (!decode_json_part(parts.header, parts.header_len, buf, &header))
		goto out;
	status = check_header(ring, &header, &key);
	if (status != FA_TOKEN_OK)
		goto out;
	status = verify_signature(key, &parts);
	if (status != FA_TOKEN_OK)
		goto out;

	if (!decode_json_part(parts.payload, parts.payload_len, buf,
	                      &payload)) {
		status = FA_TOKEN_MALFORMED;
		goto out;
	}
	memset(&local, 0, sizeof(local));
	status = check_payload(&payload, options, &local);
	if (status != FA_TOKEN_OK)
		goto out;
	memcpy(local.kid, key->kid, strlen(key->kid) + 1);
	*claims = local;

out:
	view_free(&header);
	view_free(&payload);
	return status;
}
