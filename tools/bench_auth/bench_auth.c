/*
 * Measures fleetauthd's login and refresh rates on loopback and the raw
 * bcrypt rate of this machine, so that the two can be compared.
 *
 *   bench_auth bcrypt  [--count N] [--threads T] [--cost C]
 *   bench_auth hash    [--cost C]          (password in BENCH_PASSWORD)
 *   bench_auth login   --url URL --user ID [--count N] [--threads T]
 *   bench_auth refresh --url URL --user ID [--count N] [--threads T]
 *
 * login and refresh read the password from BENCH_PASSWORD and accept only
 * http URLs on a loopback address. Each request is timed from send to the
 * end of the response; the output gives the rate, the median and the 99th
 * percentile.
 */
#include <crypt.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "fa_crypto.h"
#include "password.h"

#define MAX_THREADS 64
#define MAX_COUNT 100000
#define TOKEN_MAX 128

struct options {
	const char *mode;
	const char *url;
	const char *user;
	const char *password;
	int count;
	int threads;
	int cost;
};

struct worker {
	const struct options *opt;
	int first; /* index of this worker's first sample */
	int count;
	double *samples; /* milliseconds, shared array */
	int errors;
	CURL *curl;
	char token[TOKEN_MAX];
	/* Released when every worker has done its untimed setup. */
	pthread_barrier_t *start;
};

struct buffer {
	char *data;
	size_t len;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Prints rate, median and p99 of n samples taken in wall_ms. */
static void report(const char *what, double *samples, int n, double wall_ms,
                   int errors, int threads)
{
	int p99 = (int)((double)n * 0.99);

	if (n == 0) {
		printf("%s: no samples\n", what);
		return;
	}
	if (p99 >= n)
		p99 = n - 1;
	qsort(samples, (size_t)n, sizeof(*samples), compare_double);
	printf("%s: %d in %.2f s with %d threads: %.1f/s, median %.2f ms, "
	       "p99 %.2f ms, errors %d\n",
	       what, n, wall_ms / 1000.0, threads,
	       (double)n / (wall_ms / 1000.0), samples[n / 2], samples[p99],
	       errors);
}

/* ------------------------------------------------------------------ */
/* Raw bcrypt                                                          */
/* ------------------------------------------------------------------ */

static void *bcrypt_worker(void *arg)
{
	struct worker *w = arg;
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *data = calloc(1, sizeof(*data));
	unsigned char salt[16];
	int i;

	if (data == NULL || fa_random_bytes(salt, sizeof(salt)) != FA_OK ||
	    crypt_gensalt_rn("$2b$", (unsigned long)w->opt->cost,
	                     (const char *)salt, sizeof(salt), setting,
	                     sizeof(setting)) == NULL)
		w->errors = w->count;
	pthread_barrier_wait(w->start);
	for (i = 0; i < w->count && w->errors == 0; i++) {
		double start = now_ms();

		if (crypt_rn("benchmark password", setting, data,
		             (int)sizeof(*data)) == NULL)
			w->errors++;
		w->samples[w->first + i] = now_ms() - start;
	}
	free(data);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                */
/* ------------------------------------------------------------------ */

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct buffer *buf = userdata;
	size_t len = size * nmemb;
	char *grown = realloc(buf->data, buf->len + len + 1);

	if (grown == NULL)
		return 0;
	memcpy(grown + buf->len, ptr, len);
	buf->len += len;
	grown[buf->len] = '\0';
	buf->data = grown;
	return len;
}

/*
 * POSTs body to URL + path on the worker's connection (kept alive) and
 * copies the refresh_token of a 200 response into w->token. Returns true
 * for a 200 with an access token.
 */
static bool post(struct worker *w, const char *path, const char *body)
{
	char url[512];
	struct buffer buf = {NULL, 0};
	struct curl_slist *headers = NULL;
	cJSON *json = NULL;
	const cJSON *refresh_token;
	long status = 0;
	bool ok = false;

	snprintf(url, sizeof(url), "%s%s", w->opt->url, path);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	curl_easy_setopt(w->curl, CURLOPT_URL, url);
	curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(w->curl, CURLOPT_WRITEDATA, &buf);
	curl_easy_setopt(w->curl, CURLOPT_TIMEOUT, 30L);
	if (curl_easy_perform(w->curl) != CURLE_OK)
		goto out;
	curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200 || buf.data == NULL)
		goto out;
	json = cJSON_Parse(buf.data);
	refresh_token = cJSON_GetObjectItemCaseSensitive(json, "refresh_token");
	if (!cJSON_IsString(
	            cJSON_GetObjectItemCaseSensitive(json, "access_token")) ||
	    !cJSON_IsString(refresh_token))
		goto out;
	snprintf(w->token, sizeof(w->token), "%s", refresh_token->valuestring);
	ok = true;
out:
	cJSON_Delete(json);
	curl_slist_free_all(headers);
	free(buf.data);
	return ok;
}

static bool login(struct worker *w)
{
	cJSON *body = cJSON_CreateObject();
	char *text;
	bool ok;

	cJSON_AddStringToObject(body, "username", w->opt->user);
	cJSON_AddStringToObject(body, "password", w->opt->password);
	text = cJSON_PrintUnformatted(body);
	ok = text != NULL && post(w, "/v1/auth/login", text);
	cJSON_free(text);
	cJSON_Delete(body);
	return ok;
}

static bool refresh(struct worker *w)
{
	char body[TOKEN_MAX + 32];

	snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", w->token);
	return post(w, "/v1/auth/refresh", body);
}

/* Times count logins, or one untimed login and count refreshes. */
static void *http_worker(void *arg)
{
	struct worker *w = arg;
	bool refreshing = strcmp(w->opt->mode, "refresh") == 0;
	int i;

	if (refreshing && !login(w))
		w->errors = w->count;
	pthread_barrier_wait(w->start);
	for (i = 0; i < w->count && w->errors < w->count; i++) {
		double start = now_ms();
		bool ok = refreshing ? refresh(w) : login(w);

		w->samples[w->first + i] = now_ms() - start;
		if (!ok)
			w->errors++;
		/* A failed refresh leaves no usable token: start over. */
		if (!ok && refreshing && !login(w)) {
			w->errors += w->count - i - 1;
			break;
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Main                                                                */
/* ------------------------------------------------------------------ */

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: bench_auth bcrypt  [--count N] [--threads T] "
	        "[--cost C]\n"
	        "       bench_auth hash    [--cost C]\n"
	        "       bench_auth login   --url URL --user ID [--count N] "
	        "[--threads T]\n"
	        "       bench_auth refresh --url URL --user ID [--count N] "
	        "[--threads T]\n"
	        "The password comes from BENCH_PASSWORD. URL must be "
	        "http://127.x.x.x:PORT or http://[::1]:PORT.\n");
}

static bool loopback_url(const char *url)
{
	return strncmp(url, "http://127.", 11) == 0 ||
	       strncmp(url, "http://[::1]:", 13) == 0;
}

/* Parses text as a whole decimal int. Returns false for anything else. */
static bool parse_int(const char *text, int *out)
{
	char *end = NULL;
	long value;

	errno = 0;
	value = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || value < INT_MIN ||
	    value > INT_MAX)
		return false;
	*out = (int)value;
	return true;
}

static bool parse_options(int argc, char **argv, struct options *opt)
{
	int i;

	*opt = (struct options){.count = 100, .threads = 1, .cost = 12};
	if (argc < 2)
		return false;
	opt->mode = argv[1];
	opt->password = getenv("BENCH_PASSWORD");
	for (i = 2; i + 1 < argc; i += 2) {
		const char *value = argv[i + 1];
		bool valid = true;

		if (strcmp(argv[i], "--url") == 0)
			opt->url = value;
		else if (strcmp(argv[i], "--user") == 0)
			opt->user = value;
		else if (strcmp(argv[i], "--count") == 0)
			valid = parse_int(value, &opt->count);
		else if (strcmp(argv[i], "--threads") == 0)
			valid = parse_int(value, &opt->threads);
		else if (strcmp(argv[i], "--cost") == 0)
			valid = parse_int(value, &opt->cost);
		else
			valid = false;
		if (!valid)
			return false;
	}
	if (i != argc || opt->count < 1 || opt->count > MAX_COUNT ||
	    opt->threads < 1 || opt->threads > MAX_THREADS || opt->cost < 4 ||
	    opt->cost > 31)
		return false;
	if (strcmp(opt->mode, "bcrypt") == 0)
		return true;
	if (opt->password == NULL || opt->password[0] == '\0') {
		fprintf(stderr, "bench_auth: set BENCH_PASSWORD\n");
		return false;
	}
	if (strcmp(opt->mode, "hash") == 0)
		return true;
	if (strcmp(opt->mode, "login") != 0 &&
	    strcmp(opt->mode, "refresh") != 0)
		return false;
	if (opt->url == NULL || opt->user == NULL) {
		fprintf(stderr, "bench_auth: --url and --user are required\n");
		return false;
	}
	if (!loopback_url(opt->url)) {
		fprintf(stderr, "bench_auth: %s is not a loopback http URL\n",
		        opt->url);
		return false;
	}
	return true;
}

/* Runs opt->threads workers over opt->count samples and reports. */
static int run_workers(const struct options *opt, void *(*fn)(void *),
                       const char *what)
{
	struct worker workers[MAX_THREADS];
	pthread_t threads[MAX_THREADS];
	pthread_barrier_t barrier;
	double *samples = calloc((size_t)opt->count, sizeof(double));
	int per = opt->count / opt->threads;
	int errors = 0;
	double start;
	int i;

	if (samples == NULL)
		return 1;
	pthread_barrier_init(&barrier, NULL, (unsigned)opt->threads + 1);
	for (i = 0; i < opt->threads; i++) {
		workers[i] = (struct worker){
		        .opt = opt,
		        .first = i * per,
		        .count = i == opt->threads - 1 ? opt->count - i * per
		                                       : per,
		        .samples = samples,
		        .start = &barrier,
		};
		if (fn == http_worker)
			workers[i].curl = curl_easy_init();
	}
	for (i = 0; i < opt->threads; i++)
		pthread_create(&threads[i], NULL, fn, &workers[i]);
	/* The clock starts after every worker's setup (salt, first login). */
	pthread_barrier_wait(&barrier);
	start = now_ms();
	for (i = 0; i < opt->threads; i++) {
		pthread_join(threads[i], NULL);
		errors += workers[i].errors;
		if (workers[i].curl != NULL)
			curl_easy_cleanup(workers[i].curl);
		fa_wipe(workers[i].token, sizeof(workers[i].token));
	}
	report(what, samples, opt->count, now_ms() - start, errors,
	       opt->threads);
	pthread_barrier_destroy(&barrier);
	free(samples);
	return errors == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct options opt;
	char *hash = NULL;
	char what[64];
	int status;

	if (!parse_options(argc, argv, &opt)) {
		usage(stderr);
		return 2;
	}
	if (strcmp(opt.mode, "hash") == 0) {
		if (fa_password_hash(opt.password, opt.cost, &hash) != FA_OK)
			return 1;
		printf("%s\n", hash);
		free(hash);
		return 0;
	}
	if (strcmp(opt.mode, "bcrypt") == 0) {
		snprintf(what, sizeof(what), "bcrypt cost %d", opt.cost);
		return run_workers(&opt, bcrypt_worker, what);
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	status = run_workers(&opt, http_worker, opt.mode);
	curl_global_cleanup();
	return status;
}
