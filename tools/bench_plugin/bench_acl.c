/*
 * Benchmark of the plugin's in-memory state and ACL check, without a
 * broker or database:
 *
 *   bench_plugin [ASSIGNMENTS [SESSIONS [BATCHES]]]
 *
 * Builds a state with ASSIGNMENTS load assignments (default 1,000,000, one
 * driver per load, 10,000 drivers in 10 carriers) and reports the build
 * time and the growth of the maximum resident set size. Then it times
 * fa_acl_check for allowed deliveries and subscriptions and for denied
 * publishes over SESSIONS driver sessions (default 10,000), each kind
 * twice. "uncached" advances the state generation before every call, so
 * that every check decides afresh, as after a change of the state.
 * "cached" repeats the same topics, so that the sessions' decision caches
 * serve them. Prints medians of per-call times measured in BATCHES (default
 * 2,000) batches of 1,000 calls. Times are CPU time of the thread, not
 * wall-clock time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "fa_plugin.h"

#define DRIVERS 10000
#define CARRIERS 10
#define BATCH 1000
#define MAX_BATCHES 2000

/* CPU time of this thread, so that other load on the machine does not
 * count. */
static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static long max_rss_kib(void)
{
	struct rusage usage;

	getrusage(RUSAGE_SELF, &usage);
	return usage.ru_maxrss;
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;

	return (x > y) - (x < y);
}

static void driver_name(char *out, size_t size, long i)
{
	snprintf(out, size, "drv-%05ld", i % DRIVERS);
}

static void carrier_name(char *out, size_t size, long i)
{
	snprintf(out, size, "carrier-%02ld", (i % DRIVERS) % CARRIERS);
}

static void fill_state(struct fa_state *state, long assignments)
{
	char driver[32];
	char carrier[32];
	char load[32];

	for (long i = 0; i < DRIVERS; i++) {
		driver_name(driver, sizeof(driver), i);
		carrier_name(carrier, sizeof(carrier), i);
		if (fa_state_put_user(state, driver, carrier, "driver",
		                      "active") != FA_OK)
			exit(1);
	}
	for (long i = 0; i < assignments; i++) {
		driver_name(driver, sizeof(driver), i);
		carrier_name(carrier, sizeof(carrier), i);
		snprintf(load, sizeof(load), "load-%07ld", i);
		if (fa_state_add_assignment(state, carrier, load, driver) !=
		    FA_OK) {
			fprintf(stderr, "bench_plugin: out of memory\n");
			exit(1);
		}
	}
}

/* Makes one untimed check per session, so that a cached run starts with
 * every session's decision in its cache. */
static void warm_up(struct fa_plugin *plugin, char *const *clients,
                    char (*topics)[128], long count, int access)
{
	for (long n = 0; n < count; n++)
		fa_acl_check(plugin, (struct mosquitto *)clients[n], topics[n],
		             access);
}

/*
 * Median per-call time in ns of fa_acl_check on topics[i % count]. With
 * cold set, the state generation advances before every call, which makes
 * every per-session cached decision stale, so each call decides afresh as
 * it would after a change of the state.
 */
static double time_acl(struct fa_plugin *plugin, char *const *clients,
                       char (*topics)[128], long count, int access,
                       int expected, int batches, bool cold)
{
	static double samples[MAX_BATCHES];
	long k = 0;

	for (int b = 0; b < batches; b++) {
		double start = now_ns();

		for (int i = 0; i < BATCH; i++, k++) {
			long n = k % count;

			if (cold)
				plugin->state->generation++;

			int rc = fa_acl_check(plugin,
			                      (struct mosquitto *)clients[n],
			                      topics[n], access);

			if (rc != expected) {
				fprintf(stderr,
				        "bench_plugin: unexpected "
				        "ACL result %d for %s\n",
				        rc, topics[n]);
				exit(1);
			}
		}
		samples[b] = (now_ns() - start) / BATCH;
	}
	qsort(samples, (size_t)batches, sizeof(samples[0]), compare_double);
	return samples[batches / 2];
}

/* Parses argv[index] as a whole decimal number, or returns fallback when
 * there is no such argument; -1 when the text is not a number. */
static long arg_long(int argc, char **argv, int index, long fallback)
{
	char *end = NULL;
	long value;

	if (argc <= index)
		return fallback;
	value = strtol(argv[index], &end, 10);
	return end != argv[index] && *end == '\0' ? value : -1;
}

int main(int argc, char **argv)
{
	long assignments = arg_long(argc, argv, 1, 1000000);
	long sessions = arg_long(argc, argv, 2, 10000);
	long batches = arg_long(argc, argv, 3, MAX_BATCHES);
	struct fa_plugin *plugin = NULL;
	char *clients = NULL;
	char **client_ptrs = NULL;
	char(*read_topics)[128] = NULL;
	char(*deny_topics)[128] = NULL;
	long rss_before = max_rss_kib();
	double start;
	int status = 1;

	if (sessions > assignments || sessions < 1 || batches < 1 ||
	    batches > MAX_BATCHES) {
		fprintf(stderr,
		        "usage: bench_plugin [ASSIGNMENTS [SESSIONS "
		        "[BATCHES]]] with 1 <= SESSIONS <= ASSIGNMENTS "
		        "and 1 <= BATCHES <= %d\n",
		        MAX_BATCHES);
		return 2;
	}
	plugin = calloc(1, sizeof(*plugin));
	clients = calloc((size_t)sessions, 1);
	client_ptrs = calloc((size_t)sessions, sizeof(*client_ptrs));
	read_topics = calloc((size_t)sessions, 128);
	deny_topics = calloc((size_t)sessions, 128);
	if (plugin == NULL || clients == NULL || client_ptrs == NULL ||
	    read_topics == NULL || deny_topics == NULL) {
		fprintf(stderr, "bench_plugin: out of memory\n");
		goto out;
	}
	plugin->config.leeway = 30;
	plugin->config.denial_log_interval = 10;
	plugin->now_s = (int64_t)time(NULL);
	fa_map_init(&plugin->throttle,
	            offsetof(struct fa_throttle_rec, address));
	plugin->state = fa_state_new();
	if (plugin->state == NULL)
		goto out;
	plugin->state->generation = 1;

	start = now_ns();
	fill_state(plugin->state, assignments);
	printf("state: %ld assignments, %d users built in %.0f ms CPU, max RSS "
	       "grew by %ld MiB\n",
	       assignments, DRIVERS, (now_ns() - start) / 1e6,
	       (max_rss_kib() - rss_before) / 1024);

	for (long i = 0; i < sessions; i++) {
		struct fa_session session;

		memset(&session, 0, sizeof(session));
		session.client = (struct mosquitto *)&clients[i];
		session.kind = FA_IDENTITY_USER;
		session.role = FA_ROLE_DRIVER;
		session.exp = plugin->now_s + 3600;
		driver_name(session.id, sizeof(session.id), i);
		carrier_name(session.carrier, sizeof(session.carrier), i);
		snprintf(session.jti, sizeof(session.jti), "jti-%ld", i);
		if (fa_session_put(plugin, &session) != FA_OK)
			goto out;
		client_ptrs[i] = &clients[i];
		snprintf(read_topics[i], 128,
		         "fleet/%s/loads/load-%07ld/status", session.carrier,
		         i);
		snprintf(deny_topics[i], 128, "fleet/%s/loads/load-%07ld/rate",
		         session.carrier, i);
	}

	for (int cold = 1; cold >= 0; cold--) {
		const char *kind = cold ? "uncached" : "cached";

		if (!cold) {
			warm_up(plugin, client_ptrs, read_topics, sessions,
			        MOSQ_ACL_READ);
			warm_up(plugin, client_ptrs, read_topics, sessions,
			        MOSQ_ACL_SUBSCRIBE);
			warm_up(plugin, client_ptrs, deny_topics, sessions,
			        MOSQ_ACL_WRITE);
		}

		printf("ACL delivery allowed, %s:  median %.0f ns per check\n",
		       kind,
		       time_acl(plugin, client_ptrs, read_topics, sessions,
		                MOSQ_ACL_READ, MOSQ_ERR_SUCCESS, (int)batches,
		                cold));
		printf("ACL SUBSCRIBE allowed, %s: median %.0f ns per check\n",
		       kind,
		       time_acl(plugin, client_ptrs, read_topics, sessions,
		                MOSQ_ACL_SUBSCRIBE, MOSQ_ERR_SUCCESS,
		                (int)batches, cold));
		printf("ACL PUBLISH denied, %s:    median %.0f ns per check "
		       "(denial logging included)\n",
		       kind,
		       time_acl(plugin, client_ptrs, deny_topics, sessions,
		                MOSQ_ACL_WRITE, MOSQ_ERR_ACL_DENIED,
		                (int)batches, cold));
	}

	status = 0;
out:
	if (plugin != NULL) {
		fa_session_table_free(&plugin->sessions);
		fa_map_free_all(&plugin->throttle);
		fa_state_free(plugin->state);
	}
	free(plugin);
	free(clients);
	free(client_ptrs);
	free(read_topics);
	free(deny_topics);
	return status;
}
