/*
 * fleetauth-bench-mint: signs access tokens in bulk for fleetauth-loadgen.
 *
 *   fleetauth-bench-mint --key PEM --kid KID --prefix P --count N
 *       [--first I] [--role ROLE] [--carrier ID] [--ttl S]
 *       [--device-prefix D] [--issuer ISS] [--audience AUD]
 *
 * Prints one line per user P<i> for i = first .. first + count - 1:
 * "P<i> P<i> TOKEN <i>", the clients-file format of fleetauth-loadgen with
 * i as the %v field. Each token is RS256 with a fresh random jti, so
 * running the tool twice yields tokens that no broker has seen. The key
 * must be the RSA private key whose public half is in signing_keys. With
 * --device-prefix the token of P<i> carries "did": "D<i>", so that revoking
 * device D<i> disconnects that client (the scale scenarios use this).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "fa_crypto.h"
#include "fa_ids.h"

#define TOKEN_MAX 4096

struct mint_options {
	const char *key_path;
	const char *kid;
	const char *prefix;
	const char *role;
	const char *carrier;
	const char *device_prefix;
	const char *issuer;
	const char *audience;
	long first;
	long count;
	long ttl;
};

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: fleetauth-bench-mint --key PEM --kid KID --prefix P "
	        "--count N [options]\n"
	        "  --first I       first user number (default 1)\n"
	        "  --role ROLE     role claim (default driver)\n"
	        "  --carrier ID    carrier claim (required for carrier "
	        "roles)\n"
	        "  --ttl S         lifetime in seconds (default 900)\n"
	        "  --device-prefix D  bind the token of P<i> to device D<i> "
	        "(did claim)\n"
	        "  --issuer ISS    iss claim (default fleetauth)\n"
	        "  --audience AUD  aud claim (default fleetauth-mqtt)\n");
}

static int parse_long(const char *name, const char *text, long low, long high,
                      long *value)
{
	char *end;

	errno = 0;
	*value = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || *value < low ||
	    *value > high) {
		fprintf(stderr,
		        "invalid %s \"%s\": expected an integer from "
		        "%ld to %ld\n",
		        name, text, low, high);
		return -1;
	}
	return 0;
}

static int parse_options(int argc, char **argv, struct mint_options *o)
{
	static const struct option long_options[] = {
	        {"key", required_argument, NULL, 'k'},
	        {"kid", required_argument, NULL, 'K'},
	        {"prefix", required_argument, NULL, 'p'},
	        {"count", required_argument, NULL, 'n'},
	        {"first", required_argument, NULL, 'f'},
	        {"role", required_argument, NULL, 'r'},
	        {"carrier", required_argument, NULL, 'c'},
	        {"device-prefix", required_argument, NULL, 'd'},
	        {"ttl", required_argument, NULL, 't'},
	        {"issuer", required_argument, NULL, 'i'},
	        {"audience", required_argument, NULL, 'a'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0}};
	int opt, rc = 0;

	*o = (struct mint_options){.role = "driver",
	                           .issuer = "fleetauth",
	                           .audience = "fleetauth-mqtt",
	                           .first = 1,
	                           .ttl = 900};
	while (rc == 0 &&
	       (opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		switch (opt) {
		case 'k':
			o->key_path = optarg;
			break;
		case 'K':
			o->kid = optarg;
			break;
		case 'p':
			o->prefix = optarg;
			break;
		case 'r':
			o->role = optarg;
			break;
		case 'c':
			o->carrier = optarg;
			break;
		case 'd':
			o->device_prefix = optarg;
			break;
		case 'i':
			o->issuer = optarg;
			break;
		case 'a':
			o->audience = optarg;
			break;
		case 'n':
			rc = parse_long("--count", optarg, 1, 10000000,
			                &o->count);
			break;
		case 'f':
			rc = parse_long("--first", optarg, 0, 1000000000,
			                &o->first);
			break;
		case 't':
			rc = parse_long("--ttl", optarg, 60, 86400, &o->ttl);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			rc = -1;
			break;
		}
	}
	if (rc == 0 && (o->key_path == NULL || o->kid == NULL ||
	                o->prefix == NULL || o->count == 0)) {
		fprintf(stderr, "missing --key, --kid, --prefix or --count\n");
		rc = -1;
	}
	if (rc == 0 && o->carrier != NULL && !fa_id_valid(o->carrier)) {
		fprintf(stderr,
		        "invalid --carrier \"%s\": expected 1 to 64 "
		        "characters of [A-Za-z0-9_-]\n",
		        o->carrier);
		rc = -1;
	}
	if (rc != 0)
		usage(stderr);
	return rc;
}

static EVP_PKEY *read_key(const char *path)
{
	EVP_PKEY *key;
	FILE *file = fopen(path, "r");

	if (file == NULL) {
		perror(path);
		return NULL;
	}
	key = PEM_read_PrivateKey(file, NULL, NULL, NULL);
	(void)fclose(file); /* read-only: nothing is lost */
	if (key == NULL || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
		fprintf(stderr, "%s: not an RSA private key in PEM\n", path);
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

/* Appends "." and the RS256 signature of out[0..len) to out. Returns the
 * new length, or 0 when signing fails or out is too small. */
static size_t sign_rs256(EVP_PKEY *key, char *out, size_t len, size_t size)
{
	unsigned char signature[512];
	size_t sig_len = sizeof(signature), written;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	ok = ctx != NULL &&
	     EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
	     EVP_DigestSign(ctx, signature, &sig_len, (unsigned char *)out,
	                    len) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok || len + 2 >= size)
		return 0;
	out[len++] = '.';
	written = fa_b64url_encode(signature, sig_len, out + len, size - len);
	return written ? len + written : 0;
}

/* Writes the base64url of text at out + len; returns the new length or 0. */
static size_t append_b64(const char *text, char *out, size_t len, size_t size)
{
	size_t written = fa_b64url_encode((const uint8_t *)text, strlen(text),
	                                  out + len, size - len);

	return written ? len + written : 0;
}

static int mint_one(const struct mint_options *o, EVP_PKEY *key,
                    const char *sub, long index, char *token, size_t size)
{
	char header[256], claims[1024], carrier[128] = "", did[128] = "";
	char jti[33];
	unsigned char random[16];
	long long now = (long long)time(NULL);
	size_t len, i;

	if (fa_random_bytes(random, sizeof(random)) != FA_OK)
		return -1;
	for (i = 0; i < sizeof(random); i++)
		snprintf(jti + 2 * i, 3, "%02x", random[i]);
	if (o->carrier != NULL)
		snprintf(carrier, sizeof(carrier), ",\"carrier\":\"%s\"",
		         o->carrier);
	if (o->device_prefix != NULL)
		snprintf(did, sizeof(did), ",\"did\":\"%s%ld\"",
		         o->device_prefix, index);
	snprintf(header, sizeof(header),
	         "{\"alg\":\"RS256\",\"kid\":\"%s\",\"typ\":\"at+jwt\"}",
	         o->kid);
	snprintf(claims, sizeof(claims),
	         "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"%s\","
	         "\"role\":\"%s\"%s%s,\"amr\":[\"pwd\"],\"iat\":%lld,"
	         "\"nbf\":%lld,\"exp\":%lld,\"jti\":\"%s\"}",
	         o->issuer, o->audience, sub, o->role, carrier, did, now, now,
	         now + o->ttl, jti);
	len = append_b64(header, token, 0, size);
	if (len == 0 || len + 1 >= size)
		return -1;
	token[len++] = '.';
	len = append_b64(claims, token, len, size);
	if (len == 0)
		return -1;
	return sign_rs256(key, token, len, size) ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct mint_options options;
	char token[TOKEN_MAX], sub[FA_ID_MAX + 1];
	EVP_PKEY *key = NULL;
	long i;
	int result = 1;

	if (parse_options(argc, argv, &options) != 0)
		return 2;
	key = read_key(options.key_path);
	if (key == NULL)
		goto out;
	for (i = options.first; i < options.first + options.count; i++) {
		snprintf(sub, sizeof(sub), "%s%ld", options.prefix, i);
		if (!fa_id_valid(sub)) {
			fprintf(stderr,
			        "invalid user id \"%s\": expected 1 "
			        "to 64 characters of [A-Za-z0-9_-]\n",
			        sub);
			goto out;
		}
		if (mint_one(&options, key, sub, i, token, sizeof(token)) !=
		    0) {
			fprintf(stderr, "signing the token for %s failed\n",
			        sub);
			goto out;
		}
		printf("%s %s %s %ld\n", sub, sub, token, i);
	}
	if (fflush(stdout) != 0) {
		perror("stdout");
		goto out;
	}
	result = 0;
out:
	fa_wipe(token, sizeof(token));
	EVP_PKEY_free(key);
	return result;
}
