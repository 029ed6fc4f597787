/*
 * Unit tests of the plugin's session table and of the user and device
 * record cache on the ACL path, linked from the plugin sources without a
 * broker (see broker_stubs.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

/* A driver drv1 of carrier c1 assigned to load1, with a live session. */
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

/* Replaces drv1's record, which frees the record the session cached, and
 * bumps the generation as the plugin does after every reload. */
static void replace_driver(struct fa_plugin *plugin, const char *carrier,
                           const char *role, const char *status)
{
	assert_int_equal(
	        fa_state_put_user(plugin->state, "drv1", carrier, role, status),
	        FA_OK);
	plugin->record_generation++;
}

static void acl_cache_follows_user_changes(void **unused)
{
	(void)unused;
	char client_block;
	struct mosquitto *client = (struct mosquitto *)&client_block;
	struct fa_plugin *plugin = driver_setup(client);

	assert_int_equal(read_status(plugin, client), MOSQ_ERR_SUCCESS);
	/* Twice, so that the second check runs from the cache. */
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_SUCCESS);

	replace_driver(plugin, "c1", "driver", "disabled");
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_ACL_DENIED);
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_ACL_DENIED);

	replace_driver(plugin, "c1", "driver", "active");
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_SUCCESS);

	replace_driver(plugin, "c1", "dispatcher", "active");
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_ACL_DENIED);

	replace_driver(plugin, "c2", "driver", "active");
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_ACL_DENIED);

	fa_state_remove_record(&plugin->state->users, "drv1");
	plugin->record_generation++;
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_ACL_DENIED);

	replace_driver(plugin, "c1", "driver", "active");
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_SUCCESS);
	assert_int_equal(plugin->metrics.denials[FA_DENY_USER_INACTIVE]
	                                        [FA_REQUEST_DELIVERY],
	                 5);
	plugin_free(plugin);
}

/* A session stored again (a new CONNECT on a reused client pointer)
 * starts without the previous session's cached record. */
static void acl_cache_reset_on_put(void **unused)
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
	assert_false(fa_session_get(plugin, client)->record_cached);
	assert_int_equal(read_status(plugin, client), MOSQ_ERR_ACL_DENIED);
	plugin_free(plugin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(session_table_matches_model),
	        cmocka_unit_test(acl_cache_follows_user_changes),
	        cmocka_unit_test(acl_cache_reset_on_put),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
