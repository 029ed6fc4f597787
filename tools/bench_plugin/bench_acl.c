/*
 * Benchmark of the plugin's in-memory state and ACL check, without a
 * broker or database:
 *
 *   bench_plugin [ASSIGNMENTS [SESSIONS]]
 *
 * Builds a state with ASSIGNMENTS load assignments (default 1,000,000, one
 * driver per load, 10,000 drivers in 10 carriers) and reports the build
 * time and the growth of the maximum resident set size. Then it times
 * fa_acl_check for allowed deliveries and subscriptions and for denied
 * publishes over SESSIONS driver sessions (default 10,000). Prints medians of per-call
 * times measured in batches of 1,000 calls. Times are CPU time of the
 * thread, not wall-clock time.
 */
#include <stdarg.h>
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
#define BATCHES 2000

/* The broker functions that the plugin sources call. */
void mosquitto_log_printf(int level, const char *fmt, ...)
{
	(void)level;
	(void)fmt;
}

const char *mosquitto_client_id(const struct mosquitto *client)
{
	(void)client;
	return "bench";
}

const char *mosquitto_client_address(const struct mosquitto *client)
{
	(void)client;
	return "127.0.0.1";
}

const char *mosquitto_client_username(const struct mosquitto *client)
{
	(void)client;
	return "bench";
}

void *mosquitto_client_certificate(const struct mosquitto *client)
{
	(void)client;
	return NULL;
}

int mosquitto_set_username(struct mosquitto *client, const char *username)
{
	(void)client;
	(void)username;
	return MOSQ_ERR_SUCCESS;
}

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

/* Median per-call time in ns of fa_acl_check on topics[i % count]. */
static double time_acl(struct fa_plugin *plugin, char *const *clients,
                       char (*topics)[128], long count, int access,
                       int expected)
{
	static double samples[BATCHES];
	long k = 0;

	for (int b = 0; b < BATCHES; b++) {
		double start = now_ns();

		for (int i = 0; i < BATCH; i++, k++) {
			long n = k % count;
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
	qsort(samples, BATCHES, sizeof(samples[0]), compare_double);
	return samples[BATCHES / 2];
}

int main(int argc, char **argv)
{
	long assignments = argc > 1 ? atol(argv[1]) : 1000000;
	long sessions = argc > 2 ? atol(argv[2]) : 10000;
	struct fa_plugin *plugin = calloc(1, sizeof(*plugin));
	char *clients = calloc((size_t)sessions, 1);
	char **client_ptrs = calloc((size_t)sessions, sizeof(*client_ptrs));
	char(*read_topics)[128] = calloc((size_t)sessions, 128);
	char(*deny_topics)[128] = calloc((size_t)sessions, 128);
	long rss_before = max_rss_kib();
	double start;

	if (plugin == NULL || clients == NULL || client_ptrs == NULL ||
	    read_topics == NULL || deny_topics == NULL ||
	    sessions > assignments || sessions < 1) {
		fprintf(stderr, "usage: bench_plugin [ASSIGNMENTS [SESSIONS]] "
		                "with 1 <= SESSIONS <= ASSIGNMENTS\n");
		return 2;
	}
	plugin->config.leeway = 30;
	plugin->config.denial_log_interval = 10;
	plugin->now_s = (int64_t)time(NULL);
	fa_map_init(&plugin->sessions, offsetof(struct fa_session, key));
	fa_map_init(&plugin->throttle,
	            offsetof(struct fa_throttle_rec, address));
	plugin->state = fa_state_new();
	if (plugin->state == NULL)
		return 1;

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
			return 1;
		client_ptrs[i] = &clients[i];
		snprintf(read_topics[i], 128,
		         "fleet/%s/loads/load-%07ld/status", session.carrier,
		         i);
		snprintf(deny_topics[i], 128, "fleet/%s/loads/load-%07ld/rate",
		         session.carrier, i);
	}

	printf("ACL delivery allowed:  median %.0f ns per check\n",
	       time_acl(plugin, client_ptrs, read_topics, sessions,
	                MOSQ_ACL_READ, MOSQ_ERR_SUCCESS));
	printf("ACL SUBSCRIBE allowed: median %.0f ns per check\n",
	       time_acl(plugin, client_ptrs, read_topics, sessions,
	                MOSQ_ACL_SUBSCRIBE, MOSQ_ERR_SUCCESS));
	printf("ACL PUBLISH denied:    median %.0f ns per check (denial "
	       "logging included)\n",
	       time_acl(plugin, client_ptrs, deny_topics, sessions,
	                MOSQ_ACL_WRITE, MOSQ_ERR_ACL_DENIED));

	fa_map_free_all(&plugin->sessions);
	fa_map_free_all(&plugin->throttle);
	fa_state_free(plugin->state);
	free(plugin);
	free(clients);
	free(client_ptrs);
	free(read_topics);
	free(deny_topics);
	return 0;
}
