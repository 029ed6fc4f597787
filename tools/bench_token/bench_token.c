/*
 * fleetauth-bench-token: measures, in one process and one thread,
 *   - fa_token_verify on an RS256 token (key parsed once into a keyring),
 *   - libjwt 1.10 jwt_decode on the same token with the PEM key, which
 *     parses the key on every call,
 *   - a bare RSA-2048 PKCS#1 v1.5 verify through EVP with a context set up
 *     once, the operation that `openssl speed rsa2048` counts as "verify",
 *   - fa_topic_allowed latency for three typical decisions.
 * Each rate is the median of several rounds, measured in thread CPU time.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "fa_crypto.h"
#include "fa_token.h"
#include "fa_topic.h"

#define MAX_ROUNDS 51
#define ACL_BATCH 1000

struct settings {
	long iterations;
	long rounds;
	long acl_calls;
};

/*
 * Returns the CPU time of the calling thread. Rates are per CPU-second, as
 * `openssl speed` reports them unless given -elapsed, so other processes on
 * a busy machine change them less than they would change wall-clock rates.
 */
static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *values, size_t count)
{
	qsort(values, count, sizeof(*values), compare_doubles);
	if (count % 2 == 1)
		return values[count / 2];
	return (values[count / 2 - 1] + values[count / 2]) / 2;
}

static void die(const char *operation)
{
	fprintf(stderr, "fleetauth-bench-token: %s failed\n", operation);
	exit(1);
}

/* Returns the PEM of pkey, public or private; the caller frees it. */
static char *key_to_pem(EVP_PKEY *pkey, int private_key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	char *pem = NULL;
	long len = 0;
	int ok = 0;

	if (bio == NULL)
		die("BIO_new");
	if (private_key)
		ok = PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL,
		                              NULL);
	else
		ok = PEM_write_bio_PUBKEY(bio, pkey);
	if (ok != 1)
		die("PEM export");
	len = BIO_get_mem_data(bio, &data);
	pem = malloc((size_t)len + 1);
	if (pem == NULL)
		die("malloc");
	memcpy(pem, data, (size_t)len);
	pem[len] = '\0';
	BIO_free(bio);
	return pem;
}

/*
 * Signs a typical access token with key. The header has no "typ" because
 * libjwt 1.10 rejects any typ other than "JWT", and both verifiers must
 * accept the same token.
 */
static char *make_token(EVP_PKEY *key)
{
	static const char header[] = "{\"alg\":\"RS256\",\"kid\":\"bench-1\"}";
	static const char payload[] =
	        "{\"iss\":\"https://auth.fleet.test\",\"aud\":\"fleet-mqtt\","
	        "\"sub\":\"drv-ann\",\"role\":\"driver\",\"carrier\":\"acme\","
	        "\"amr\":[\"pwd\",\"otp\"],\"fam\":\"fam-1\",\"did\":"
	        "\"phone-1\",\"iat\":1800000000,\"nbf\":1800000000,"
	        "\"exp\":1800000900,\"jti\":\"0f8e2c4a-9b1d-4e57-a3c6\"}";
	char *token = malloc(4096);
	uint8_t sig[512];
	size_t sig_len = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t n = 0;

	if (token == NULL || ctx == NULL)
		die("malloc");
	n = fa_b64url_encode((const uint8_t *)header, strlen(header), token,
	                     4096);
	token[n++] = '.';
	n += fa_b64url_encode((const uint8_t *)payload, strlen(payload),
	                      token + n, 4096 - n);
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(ctx, sig, &sig_len, (const uint8_t *)token, n) != 1)
		die("EVP_DigestSign");
	token[n++] = '.';
	fa_b64url_encode(sig, sig_len, token + n, 4096 - n);
	EVP_MD_CTX_free(ctx);
	return token;
}

static double rate_fa_verify(const struct fa_keyring *ring, const char *token,
                             long iterations)
{
	struct fa_verify_options options = {
	        .issuer = "https://auth.fleet.test",
	        .audience = "fleet-mqtt",
	        .now = 1800000060,
	        .leeway = 30,
	        .max_lifetime = 3600,
	};
	struct fa_token_claims claims;
	size_t len = strlen(token);
	double start = now_seconds();

	for (long i = 0; i < iterations; i++) {
		if (fa_token_verify(ring, token, len, &options, &claims) !=
		    FA_TOKEN_OK)
			die("fa_token_verify");
	}
	return (double)iterations / (now_seconds() - start);
}

static double rate_libjwt(const char *pem, const char *token, long iterations)
{
	int pem_len = (int)strlen(pem);
	double start = now_seconds();

	for (long i = 0; i < iterations; i++) {
		jwt_t *jwt = NULL;
		if (jwt_decode(&jwt, token, (const unsigned char *)pem,
		               pem_len) != 0)
			die("jwt_decode");
		jwt_free(jwt);
	}
	return (double)iterations / (now_seconds() - start);
}

/* A bare RSA verify of a SHA-256 digest with a context prepared once. */
static double rate_raw_evp(EVP_PKEY *key, long iterations)
{
	EVP_PKEY_CTX *sign_ctx = EVP_PKEY_CTX_new(key, NULL);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
	uint8_t digest[32];
	uint8_t sig[512];
	size_t sig_len = sizeof(sig);
	double start = 0;

	memset(digest, 0x42, sizeof(digest));
	if (sign_ctx == NULL || ctx == NULL ||
	    EVP_PKEY_sign_init(sign_ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(sign_ctx, RSA_PKCS1_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(sign_ctx, EVP_sha256()) != 1 ||
	    EVP_PKEY_sign(sign_ctx, sig, &sig_len, digest, sizeof(digest)) != 1)
		die("EVP_PKEY_sign");
	if (EVP_PKEY_verify_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1)
		die("EVP_PKEY_verify_init");
	start = now_seconds();
	for (long i = 0; i < iterations; i++) {
		if (EVP_PKEY_verify(ctx, sig, sig_len, digest,
		                    sizeof(digest)) != 1)
			die("EVP_PKEY_verify");
	}
	double rate = (double)iterations / (now_seconds() - start);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_CTX_free(sign_ctx);
	return rate;
}

static bool bench_lookup(void *ctx, const char *carrier, const char *load,
                         const char *driver)
{
	(void)ctx;
	return strcmp(carrier, "acme") == 0 && strcmp(load, "L1") == 0 &&
	       strcmp(driver, "drv-ann") == 0;
}

struct acl_case {
	const char *label;
	struct fa_identity who;
	const char *topic;
	enum fa_access access;
};

static const struct acl_case acl_cases[] = {
        {"dispatcher reads telemetry",
         {FA_IDENTITY_USER, "disp-1", "acme", FA_ROLE_DISPATCHER},
         "fleet/acme/devices/trk-1/telemetry/gps",
         FA_ACCESS_READ},
        {"device publishes telemetry",
         {FA_IDENTITY_DEVICE, "trk-1", "acme", FA_ROLE_NONE},
         "fleet/acme/devices/trk-1/telemetry/gps",
         FA_ACCESS_WRITE},
        {"assigned driver reads load (with lookup)",
         {FA_IDENTITY_USER, "drv-ann", "acme", FA_ROLE_DRIVER},
         "fleet/acme/loads/L1/status",
         FA_ACCESS_READ},
        {"dispatcher subscribes telemetry/+/# filter",
         {FA_IDENTITY_USER, "disp-1", "acme", FA_ROLE_DISPATCHER},
         "fleet/acme/devices/+/telemetry/#",
         FA_ACCESS_SUBSCRIBE},
};

/* Median nanoseconds per call over batches of ACL_BATCH calls. */
static double acl_median_ns(const struct acl_case *c, long calls)
{
	long batches = calls / ACL_BATCH;
	double *ns = calloc((size_t)batches, sizeof(double));
	volatile int sink = 0;

	if (ns == NULL || batches == 0)
		die("calloc");
	for (long b = 0; b < batches; b++) {
		double start = now_seconds();
		for (int i = 0; i < ACL_BATCH; i++)
			sink += fa_topic_allowed(&c->who, c->topic, c->access,
			                         bench_lookup, NULL);
		ns[b] = (now_seconds() - start) * 1e9 / ACL_BATCH;
	}
	if (sink != batches * ACL_BATCH)
		die("fa_topic_allowed (expected every call to allow)");
	double result = median(ns, (size_t)batches);
	free(ns);
	return result;
}

static long parse_count(const char *text, const char *option, long max)
{
	char *end = NULL;
	long value = 0;

	errno = 0;
	value = strtol(text, &end, 10);
	if (errno != 0 || *end != '\0' || value < 1 || value > max) {
		fprintf(stderr,
		        "fleetauth-bench-token: invalid value \"%s\" for %s: "
		        "expected an integer from 1 to %ld\n",
		        text, option, max);
		exit(2);
	}
	return value;
}

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: fleetauth-bench-token [-n ITERATIONS] [-r ROUNDS] "
	        "[-a ACL_CALLS]\n"
	        "  -n  token verifications per round and verifier "
	        "(default 5000)\n"
	        "  -r  rounds; each rate printed is the median (default 5, "
	        "max %d)\n"
	        "  -a  fa_topic_allowed calls per ACL case, in batches of %d "
	        "(default 1000000)\n",
	        MAX_ROUNDS, ACL_BATCH);
}

static void parse_args(int argc, char **argv, struct settings *s)
{
	int opt = 0;

	s->iterations = 5000;
	s->rounds = 5;
	s->acl_calls = 1000000;
	while ((opt = getopt(argc, argv, "n:r:a:h")) != -1) {
		switch (opt) {
		case 'n':
			s->iterations = parse_count(optarg, "-n", 100000000);
			break;
		case 'r':
			s->rounds = parse_count(optarg, "-r", MAX_ROUNDS);
			break;
		case 'a':
			s->acl_calls = parse_count(optarg, "-a", 1000000000);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (s->acl_calls < ACL_BATCH)
		s->acl_calls = ACL_BATCH;
}

int main(int argc, char **argv)
{
	struct settings s;
	double fa[MAX_ROUNDS];
	double libjwt[MAX_ROUNDS];
	double raw[MAX_ROUNDS];
	EVP_PKEY *key = NULL;
	struct fa_keyring *ring = NULL;

	parse_args(argc, argv, &s);
	key = EVP_RSA_gen(2048);
	if (key == NULL)
		die("RSA key generation");
	char *public_pem = key_to_pem(key, 0);
	char *token = make_token(key);
	ring = fa_keyring_new();
	if (ring == NULL || fa_keyring_add_pem(ring, "bench-1", FA_ALG_RS256,
	                                       public_pem) != FA_OK)
		die("fa_keyring_add_pem");

	/* Rounds interleave the three verifiers so that frequency changes
	 * and neighbours on the machine affect all of them alike. */
	for (long r = 0; r < s.rounds; r++) {
		fa[r] = rate_fa_verify(ring, token, s.iterations);
		libjwt[r] = rate_libjwt(public_pem, token, s.iterations);
		raw[r] = rate_raw_evp(key, s.iterations);
	}
	double fa_rate = median(fa, (size_t)s.rounds);
	double libjwt_rate = median(libjwt, (size_t)s.rounds);
	double raw_rate = median(raw, (size_t)s.rounds);

	printf("RS256 (RSA-2048) verification, single thread, %ld "
	       "iterations x %ld rounds, median rate per CPU-second:\n",
	       s.iterations, s.rounds);
	printf("  fa_token_verify (cached EVP_PKEY):  %10.0f tokens/s  "
	       "(%.1f us each)\n",
	       fa_rate, 1e6 / fa_rate);
	printf("  libjwt %s jwt_decode (PEM per call): %10.0f tokens/s  "
	       "(%.1f us each)\n",
	       "1.10", libjwt_rate, 1e6 / libjwt_rate);
	printf("  raw EVP_PKEY_verify (RSA-2048):     %10.0f verifies/s "
	       "(%.1f us each)\n",
	       raw_rate, 1e6 / raw_rate);
	printf("  ratio fa_token_verify / libjwt:      %.2f\n",
	       fa_rate / libjwt_rate);
	printf("  ratio fa_token_verify / raw EVP:     %.2f\n",
	       fa_rate / raw_rate);

	printf("fa_topic_allowed, median CPU ns per call over batches of %d "
	       "(%ld calls per case):\n",
	       ACL_BATCH, s.acl_calls);
	for (size_t i = 0; i < sizeof(acl_cases) / sizeof(acl_cases[0]); i++)
		printf("  %-45s %8.1f ns\n", acl_cases[i].label,
		       acl_median_ns(&acl_cases[i], s.acl_calls));

	fa_keyring_free(ring);
	free(public_pem);
	free(token);
	EVP_PKEY_free(key);
	return 0;
}
