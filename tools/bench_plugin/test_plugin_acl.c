/*
 * Unit tests of the plugin's session table and of the per-session ACL
 * decision cache, linked from the plugin sources without a broker (see
 * broker_stubs.c). Every cached result is compared with the result of a
 * fresh decision or with the rule it must follow.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "fa_plugin.h"

#define CLIENTS 3000
#define OPERATIONS 200000
#define MANY_TOPICS 64

static struct fa_plugin *plugin_new(void)
{
	struct fa_plugin *plugin = calloc(1, sizeof(*plugin));

	assert_non_null(plugin);
	plugin->config.leeway = 30;
	plugin->config.denial_log_interval = 10;
	plugin->now_s = (int64_t)time(NULL);
	fa_map_init(&plugin->throttle,
	            offsetof(struct fa_throttle_rec, address));
	return plugin;
}

static void plugin_free(struct fa_plugin *plugin)
{
	fa_session_table_free(&plugin->sessions);
	fa_map_free_all(&plugin->throttle);
	fa_state_free(plugin->state);
	free(plugin);
}

/* A small deterministic generator, so that a failure reproduces. */
static uint64_t next_random(uint64_t *seed)
{
	*seed ^= *seed << 13;
	*seed ^= *seed >> 7;
	*seed ^= *seed << 17;
	return *seed;
}

/*
 * Random puts, replacements and removals over CLIENTS pointers, compared
 * after every step with a plain array. The pointers are neighbouring bytes
 * of one block, which gives long probe runs and exercises the
 * backward-shift removal.
 */
static void session_table_matches_model(void **unused)
{
	(void)unused;
	struct fa_plugin *plugin = plugin_new();
	char *clients = malloc(CLIENTS);
	int64_t *model = calloc(CLIENTS, sizeof(*model)); /* 0: absent */
	size_t live = 0;
	uint64_t seed = 0x9e3779b97f4a7c15ULL;

	assert_non_null(clients);
	assert_non_null(model);
	for (long step = 1; step <= OPERATIONS; step++) {
		size_t n = (size_t)(next_random(&seed) % CLIENTS);
		struct mosquitto *client = (struct mosquitto *)&clients[n];

		if (next_random(&seed) % 3 != 0) {
			struct fa_session session;

			memset(&session, 0, sizeof(session));
			session.client = client;
			session.exp = step;
			assert_int_equal(fa_session_put(plugin, &session),
			                 FA_OK);
			live += model[n] == 0;
			model[n] = step;
		} else {
			fa_session_remove(plugin, client);
			live -= model[n] != 0;
			model[n] = 0;
		}
		assert_int_equal(plugin->sessions.count, live);
		if (step % 1000 != 0)
			continue;
		for (size_t i = 0; i < CLIENTS; i++) {
			const struct fa_session *found = fa_session_get(
			        plugin, (struct mosquitto *)&clients[i]);

			if (model[i] == 0) {
				assert_null(found);
				continue;
			}
			assert_non_null(found);
			assert_int_equal(found->exp, model[i]);
		}
	}
	assert_null(fa_session_get(plugin, NULL));
	plugin_free(plugin);
	free(clients);
	free(model);
}

/*
 * A driver drv1 of carrier c1 assigned to load1, with a live session. The
 * state generation starts at 1, as after fa_plugin_swap_state.
 */
static struct fa_plugin *driver_setup(struct mosquitto *client)
{
	struct fa_plugin *plugin = plugin_new();
	struct fa_session session;

	plugin->state = fa_state_new();
	assert_non_null(plugin->state);
	assert_int_equal(fa_state_put_user(plugin->state, "drv1", "c1",
	                                   "driver", "active"),
	                 FA_OK);
	assert_int_equal(
	        fa_state_add_assignment(plugin->state, "c1", "load1", "drv1"),
	        FA_OK);
	plugin->state->generation = 1;
	memset(&session, 0, sizeof(session));
	session.client = client;
	session.kind = FA_IDENTITY_USER;
	session.role = FA_ROLE_DRIVER;
	session.exp = plugin->now_s + 3600;
	strcpy(session.id, "drv1");
	strcpy(session.carrier, "c1");
	assert_int_equal(fa_session_put(plugin, &session), FA_OK);
	return plugin;
}

static int read_status(struct fa_plugin *plugin, struct mosquitto *client)
{
	return fa_acl_check(plugin, client, "fleet/c1/loads/load1/status",
	                    MOSQ_ACL_READ);
}

/* Counts the session's cache entries that hold a decision for the current
 * state generation. */
static size_t current_entries(struct fa_plugin *plugin,
                              struct mosquitto *client)
{
	const struct fa_session *session = fa_session_get(plugin, client);
	size_t count = 0;

	for (size_t i = 0; i < FA_DECISION_SLOTS; i++)
		count += session->decisions[i].generation ==
		         plugin->state->generation;
	return count;
}

/* Every map change advances the state generation, so that the feed's
 * reloads need no bump of their own. */
static void state_generation_advances(void **unused)
{
	(void)unused;
	struct fa_state *state = fa_state_new();
	uint64_t before;

	assert_non_null(state);
	before = state->generation;
	assert_int_equal(
	        fa_state_put_user(state, "u1", "c1", "driver", "active"),
	        FA_OK);
	assert_true(state->generation > before);
	before = state->generation;
	assert_int_equal(fa_state_add_assignment(state, "c1", "l1", "u1"),
	                 FA_OK);
	assert_true(state->generation > before);
	before = state->generation;
	fa_state_remove_load(state, "c1", "l1");
	assert_true(state->generation > before);
	before = state->generation;
	fa_state_remove_record(&state->users, "u1");
	assert_true(state->generation > before);
	before = state->generation;
	assert_int_equal(fa_state_put_device(state, "d1", "c1", "active"),
	                 FA_OK);
	assert_true(state->generation > before);
	before = state->generation;
	assert_int_equal(fa_state_put_revoked(&state->families, "f1", 0),
	                 FA_OK);
	assert_true(state->generation > before);
	before = state->generation;
	fa_state_expire_revoked(state, 1);
	assert_true(state->generation > before);
	fa_state_free(state);
}

/* The second identical check is served from the cache. */
static void cache_stores_decision(void **unused)
{
	(void)unused;
	char client_block;
	struct mosquitto *client = (struct mosquitto *)&client_block;
	struct fa_plugin *plugin = driver_setup(client);

	assert_int_equal(current_entries(plugin, client), 0);
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_SUCCESS);
	assert_int_equal(current_entries(plugin, client), 1);
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_SUCCESS);
	assert_int_equal(current_entries(plugin, client), 1);
	plugin_free(plugin);
}

/* Removing the assignment denies the next delivery although an allow for
 * the same topic is cached, and adding it back allows it again. */
static void cache_follows_unassignment(void **unused)
{
	(void)unused;
	char client_block;
	struct mosquitto *client = (struct mosquitto *)&client_block;
	struct fa_plugin *plugin = driver_setup(client);

	assert_int_equal(read_status(plugin, client), MOSQ_ERR_SUCCESS);
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_SUCCESS);
	fa_state_remove_load(plugin->state, "c1", "load1");
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_ACL_DENIED);
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_ACL_DENIED);
	assert_int_equal(
	        fa_state_add_assignment(plugin->state, "c1", "load1", "drv1"),
	        FA_OK);
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_SUCCESS);
	assert_int_equal(
	        plugin->metrics.denials[FA_DENY_TOPIC][FA_REQUEST_DELIVERY], 2);
	plugin_free(plugin);
}

/* Replacing or removing the user record, as a reload does, counts from
 * the next check on, with the reason of a fresh decision. */
static void cache_follows_user_changes(void **unused)
{
	(void)unused;
	char client_block;
	struct mosquitto *client = (struct mosquitto *)&client_block;
	struct fa_plugin *plugin = driver_setup(client);
	struct fa_state *state = plugin->state;

	assert_int_equal(read_status(plugin, client), MOSQ_ERR_SUCCESS);
	assert_int_equal(
	        fa_state_put_user(state, "drv1", "c1", "driver", "disabled"),
	        FA_OK);
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_ACL_DENIED);
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_ACL_DENIED);
	assert_int_equal(
	        fa_state_put_user(state, "drv1", "c1", "driver", "active"),
	        FA_OK);
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_SUCCESS);
	assert_int_equal(
	        fa_state_put_user(state, "drv1", "c1", "dispatcher", "active"),
	        FA_OK);
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_ACL_DENIED);
	assert_int_equal(
	        fa_state_put_user(state, "drv1", "c2", "driver", "active"),
	        FA_OK);
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_ACL_DENIED);
	fa_state_remove_record(&state->users, "drv1");
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_ACL_DENIED);
	assert_int_equal(
	        fa_state_put_user(state, "drv1", "c1", "driver", "active"),
	        FA_OK);
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_SUCCESS);
	assert_int_equal(plugin->metrics.denials[FA_DENY_USER_INACTIVE]
	                                        [FA_REQUEST_DELIVERY],
	                 5);
	plugin_free(plugin);
}

/* A state installed in place of the old one starts one generation later,
 * so that an allow cached under the old state does not apply. This is
 * what fa_plugin_swap_state does before it frees the old state. */
static void cache_follows_new_state(void **unused)
{
	(void)unused;
	char client_block;
	struct mosquitto *client = (struct mosquitto *)&client_block;
	struct fa_plugin *plugin = driver_setup(client);
	struct fa_state *fresh = fa_state_new();

	assert_non_null(fresh);
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_SUCCESS);
	assert_int_equal(
	        fa_state_put_user(fresh, "drv1", "c1", "driver", "active"),
	        FA_OK);
	fresh->generation = plugin->state->generation + 1;
	fa_state_free(plugin->state);
	plugin->state = fresh;
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_ACL_DENIED);
	plugin_free(plugin);
}

/* An expired token is denied even though an allow is cached. */
static void cache_checks_expiry_first(void **unused)
{
	(void)unused;
	char client_block;
	struct mosquitto *client = (struct mosquitto *)&client_block;
	struct fa_plugin *plugin = driver_setup(client);
	const struct fa_session *session = fa_session_get(plugin, client);

	assert_int_equal(read_status(plugin, client), MOSQ_ERR_SUCCESS);
	plugin->now_s = session->exp + plugin->config.leeway;
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_ACL_DENIED);
	assert_int_equal(plugin->metrics.denials[FA_DENY_SESSION_EXPIRED]
	                                        [FA_REQUEST_DELIVERY],
	                 1);
	plugin_free(plugin);
}

/*
 * Many topics of one session share the few cache slots, half of them
 * allowed and half denied, and each access kind on the same topic is kept
 * apart. Every result must equal the rule, whatever the entry held before.
 */
static void cache_keeps_topics_apart(void **unused)
{
	(void)unused;
	char client_block;
	struct mosquitto *client = (struct mosquitto *)&client_block;
	struct fa_plugin *plugin = driver_setup(client);
	char topic[128];

	for (int i = 0; i < MANY_TOPICS; i += 2) {
		char load[16];

		snprintf(load, sizeof(load), "load%d", 100 + i);
		assert_int_equal(fa_state_add_assignment(plugin->state, "c1",
		                                         load, "drv1"),
		                 FA_OK);
	}
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < MANY_TOPICS; i++) {
			int expected = i % 2 == 0 ? MOSQ_ERR_SUCCESS
			                          : MOSQ_ERR_ACL_DENIED;

			snprintf(topic, sizeof(topic),
			         "fleet/c1/loads/load%d/driver/pos", 100 + i);
			assert_int_equal(fa_acl_check(plugin, client, topic,
			                              MOSQ_ACL_READ),
			                 expected);
			assert_int_equal(fa_acl_check(plugin, client, topic,
			                              MOSQ_ACL_WRITE),
			                 expected);
			snprintf(topic, sizeof(topic),
			         "fleet/c1/loads/load%d/rate", 100 + i);
			assert_int_equal(fa_acl_check(plugin, client, topic,
			                              MOSQ_ACL_READ),
			                 MOSQ_ERR_ACL_DENIED);
			snprintf(topic, sizeof(topic),
			         "fleet/c1/loads/load%d/status", 100 + i);
			/* A driver may read status but not publish to it. */
			assert_int_equal(fa_acl_check(plugin, client, topic,
			                              MOSQ_ACL_WRITE),
			                 MOSQ_ERR_ACL_DENIED);
			assert_int_equal(fa_acl_check(plugin, client, topic,
			                              MOSQ_ACL_READ),
			                 expected);
		}
	}
	plugin_free(plugin);
}

/* Returns the session's cache entry for access and topic, or fails. */
static struct fa_decision *entry_of(struct fa_plugin *plugin,
                                    struct mosquitto *client, int access,
                                    const char *topic)
{
	struct fa_session *session = fa_session_get(plugin, client);
	size_t len = strlen(topic);

	for (size_t i = 0; i < FA_DECISION_SLOTS; i++) {
		struct fa_decision *entry = &session->decisions[i];

		if (entry->access == access && entry->topic_len == len &&
		    memcmp(entry->topic, topic, len) == 0)
			return entry;
	}
	fail_msg("no cache entry for %s", topic);
	return NULL;
}

/*
 * An entry with the lookup's hash but another access kind or other topic
 * bytes, as a hash collision would leave, is not used. The entries are
 * altered in place to stand for such a collision, with an allow that the
 * lookup must not return.
 */
static void cache_ignores_hash_collisions(void **unused)
{
	(void)unused;
	char client_block;
	struct mosquitto *client = (struct mosquitto *)&client_block;
	struct fa_plugin *plugin = driver_setup(client);
	const char *assigned = "fleet/c1/loads/load1/status";
	const char *other = "fleet/c1/loads/load2/status";
	struct fa_decision *entry;

	/* A driver may read the status of an assigned load but not write. */
	assert_int_equal(fa_acl_check(plugin, client, assigned, MOSQ_ACL_WRITE),
	                 MOSQ_ERR_ACL_DENIED);
	entry = entry_of(plugin, client, MOSQ_ACL_WRITE, assigned);
	entry->access = MOSQ_ACL_READ;
	entry->reason = FA_DENY_COUNT;
	assert_int_equal(fa_acl_check(plugin, client, assigned, MOSQ_ACL_WRITE),
	                 MOSQ_ERR_ACL_DENIED);

	/* load2 is not assigned. Its entry gets load1's bytes. */
	assert_int_equal(fa_acl_check(plugin, client, other, MOSQ_ACL_READ),
	                 MOSQ_ERR_ACL_DENIED);
	entry = entry_of(plugin, client, MOSQ_ACL_READ, other);
	memcpy(entry->topic, assigned, strlen(assigned));
	entry->reason = FA_DENY_COUNT;
	assert_int_equal(fa_acl_check(plugin, client, other, MOSQ_ACL_READ),
	                 MOSQ_ERR_ACL_DENIED);
	plugin_free(plugin);
}

/* Topics longer than a cache entry's topic buffer are decided every time
 * and never stored. */
static void cache_skips_long_topics(void **unused)
{
	(void)unused;
	char client_block;
	struct mosquitto *client = (struct mosquitto *)&client_block;
	struct fa_plugin *plugin = driver_setup(client);
	char topic[FA_DECISION_TOPIC_MAX + 64];
	int len =
	        snprintf(topic, sizeof(topic), "fleet/c1/loads/load1/driver/");

	while ((size_t)len < FA_DECISION_TOPIC_MAX + 8)
		topic[len++] = 'x';
	topic[len] = '\0';
	assert_int_equal(fa_acl_check(plugin, client, topic, MOSQ_ACL_READ),
	                 MOSQ_ERR_SUCCESS);
	assert_int_equal(current_entries(plugin, client), 0);
	fa_state_remove_load(plugin->state, "c1", "load1");
	assert_int_equal(fa_acl_check(plugin, client, topic, MOSQ_ACL_READ),
	                 MOSQ_ERR_ACL_DENIED);
	plugin_free(plugin);
}

/* A session stored again (a new CONNECT on a reused client pointer) starts
 * with an empty cache and is decided for its own identity. */
static void cache_reset_on_put(void **unused)
{
	(void)unused;
	char client_block;
	struct mosquitto *client = (struct mosquitto *)&client_block;
	struct fa_plugin *plugin = driver_setup(client);
	struct fa_session session;

	assert_int_equal(read_status(plugin, client), MOSQ_ERR_SUCCESS);
	session = *fa_session_get(plugin, client);
	strcpy(session.carrier, "c2");
	assert_int_equal(fa_session_put(plugin, &session), FA_OK);
	assert_int_equal(current_entries(plugin, client), 0);
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_ACL_DENIED);
	plugin_free(plugin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(session_table_matches_model),
	        cmocka_unit_test(state_generation_advances),
	        cmocka_unit_test(cache_stores_decision),
	        cmocka_unit_test(cache_follows_unassignment),
	        cmocka_unit_test(cache_follows_user_changes),
	        cmocka_unit_test(cache_follows_new_state),
	        cmocka_unit_test(cache_checks_expiry_first),
	        cmocka_unit_test(cache_keeps_topics_apart),
	        cmocka_unit_test(cache_ignores_hash_collisions),
	        cmocka_unit_test(cache_skips_long_topics),
	        cmocka_unit_test(cache_reset_on_put),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
