#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fa_topic.h"

/* Load assignments seen by the lookup callback. */
static const char *const assignments[][3] = {
        {"acme", "L1", "drv-ann"},
        {"acme", "L2", "drv-bob"},
        {"globex", "L1", "drv-gus"},
};

static int lookup_calls;

static bool lookup_assignment(void *ctx, const char *carrier, const char *load,
                              const char *driver)
{
	(void)ctx;
	lookup_calls++;
	for (size_t i = 0; i < sizeof(assignments) / sizeof(assignments[0]);
	     i++) {
		if (strcmp(assignments[i][0], carrier) == 0 &&
		    strcmp(assignments[i][1], load) == 0 &&
		    strcmp(assignments[i][2], driver) == 0)
			return true;
	}
	return false;
}

#define USER FA_IDENTITY_USER
#define DEVICE FA_IDENTITY_DEVICE

static const struct fa_identity truck = {DEVICE, "trk-1", "acme", FA_ROLE_NONE};
static const struct fa_identity truck_globex = {DEVICE, "trk-9", "globex",
                                                FA_ROLE_NONE};
static const struct fa_identity ann = {USER, "drv-ann", "acme", FA_ROLE_DRIVER};
static const struct fa_identity bob = {USER, "drv-bob", "acme", FA_ROLE_DRIVER};
static const struct fa_identity disp = {USER, "disp-1", "acme",
                                        FA_ROLE_DISPATCHER};
static const struct fa_identity disp_globex = {USER, "disp-9", "globex",
                                               FA_ROLE_DISPATCHER};
static const struct fa_identity manager = {USER, "fm-1", "acme",
                                           FA_ROLE_FLEET_MANAGER};
static const struct fa_identity analyst = {USER, "fa-1", "acme",
                                           FA_ROLE_FLEET_ANALYST};
static const struct fa_identity sysadmin = {USER, "root-1", NULL,
                                            FA_ROLE_SYSTEM_ADMIN};
static const struct fa_identity sysop = {USER, "ops-1", NULL,
                                         FA_ROLE_SYSTEM_OPERATOR};
static const struct fa_identity shipper = {USER, "ship-1", NULL,
                                           FA_ROLE_SHIPPER_ADMIN};
/* A platform role with a carrier set must still get no fleet topics. */
static const struct fa_identity sysadmin_acme = {USER, "root-2", "acme",
                                                 FA_ROLE_SYSTEM_ADMIN};
/* A user whose id equals a device id is not that device. */
static const struct fa_identity user_named_truck = {USER, "trk-1", "acme",
                                                    FA_ROLE_DRIVER};

#define R FA_ACCESS_READ
#define W FA_ACCESS_WRITE
#define S FA_ACCESS_SUBSCRIBE

struct topic_case {
	const struct fa_identity *who;
	const char *topic;
	enum fa_access access;
	bool allowed;
};

static const struct topic_case cases[] = {
        /* Telemetry: the device publishes, carrier staff and analysts read. */
        {&truck, "fleet/acme/devices/trk-1/telemetry", W, true},
        {&truck, "fleet/acme/devices/trk-1/telemetry/gps", W, true},
        {&truck, "fleet/acme/devices/trk-1/telemetry/a/b/c/d", W, true},
        {&truck, "fleet/acme/devices/trk-1/telemetry", R, false},
        {&truck, "fleet/acme/devices/trk-2/telemetry", W, false},
        {&truck, "fleet/globex/devices/trk-1/telemetry", W, false},
        {&truck, "fleet/acme/devices/trk-1", W, false},
        {&truck, "fleet/acme/devices/trk-1/other", W, false},
        {&truck_globex, "fleet/globex/devices/trk-9/telemetry", W, true},
        {&truck_globex, "fleet/acme/devices/trk-9/telemetry", W, false},
        {&user_named_truck, "fleet/acme/devices/trk-1/telemetry", W, false},
        {&disp, "fleet/acme/devices/trk-1/telemetry", R, true},
        {&disp, "fleet/acme/devices/trk-1/telemetry/gps", R, true},
        {&disp, "fleet/acme/devices/trk-1/telemetry", W, false},
        {&manager, "fleet/acme/devices/trk-1/telemetry/gps", R, true},
        {&analyst, "fleet/acme/devices/trk-1/telemetry/gps", R, true},
        {&analyst, "fleet/acme/devices/trk-1/telemetry", W, false},
        {&ann, "fleet/acme/devices/trk-1/telemetry", R, false},
        {&disp_globex, "fleet/acme/devices/trk-1/telemetry", R, false},
        {&sysadmin, "fleet/acme/devices/trk-1/telemetry", R, false},
        {&sysadmin_acme, "fleet/acme/devices/trk-1/telemetry", R, false},
        {&shipper, "fleet/acme/devices/trk-1/telemetry", R, false},

        /* Commands: staff publish, the device reads. */
        {&disp, "fleet/acme/devices/trk-1/commands", W, true},
        {&disp, "fleet/acme/devices/trk-1/commands/reboot", W, true},
        {&manager, "fleet/acme/devices/trk-1/commands/reboot", W, true},
        {&analyst, "fleet/acme/devices/trk-1/commands/reboot", W, false},
        {&ann, "fleet/acme/devices/trk-1/commands/reboot", W, false},
        {&disp_globex, "fleet/acme/devices/trk-1/commands", W, false},
        {&sysadmin, "fleet/acme/devices/trk-1/commands", W, false},
        {&truck, "fleet/acme/devices/trk-1/commands", R, true},
        {&truck, "fleet/acme/devices/trk-1/commands/reboot", R, true},
        {&truck, "fleet/acme/devices/trk-1/commands", W, false},
        {&truck, "fleet/acme/devices/trk-2/commands", R, false},
        {&disp, "fleet/acme/devices/trk-1/commands", R, false},

        /* Loads: staff read and write everything under the load. */
        {&disp, "fleet/acme/loads/L1", R, true},
        {&disp, "fleet/acme/loads/L1", W, true},
        {&disp, "fleet/acme/loads/L1/status", W, true},
        {&disp, "fleet/acme/loads/L1/rate", R, true},
        {&disp, "fleet/acme/loads/L1/rate", W, true},
        {&disp, "fleet/acme/loads/L1/rate/history", R, true},
        {&disp, "fleet/acme/loads/L1/driver", R, true},
        {&disp, "fleet/acme/loads/L1/driver/eta", W, true},
        {&manager, "fleet/acme/loads/L9/rate", W, true},
        {&analyst, "fleet/acme/loads/L1", R, false},
        {&analyst, "fleet/acme/loads/L1/rate", R, false},
        {&disp_globex, "fleet/acme/loads/L1", R, false},
        {&sysadmin, "fleet/acme/loads/L1", R, false},
        {&truck, "fleet/acme/loads/L1", R, false},
        {&truck, "fleet/acme/loads/L1/driver", W, false},

        /* Loads: assigned drivers read all but rate, write only driver. */
        {&ann, "fleet/acme/loads/L1", R, true},
        {&ann, "fleet/acme/loads/L1/status", R, true},
        {&ann, "fleet/acme/loads/L1/stops/3", R, true},
        {&ann, "fleet/acme/loads/L1/driver", R, true},
        {&ann, "fleet/acme/loads/L1/driver/eta", R, true},
        {&ann, "fleet/acme/loads/L1/rate", R, false},
        {&ann, "fleet/acme/loads/L1/rate/history", R, false},
        {&ann, "fleet/acme/loads/L1/rate", W, false},
        {&ann, "fleet/acme/loads/L1/driver", W, true},
        {&ann, "fleet/acme/loads/L1/driver/eta", W, true},
        {&ann, "fleet/acme/loads/L1", W, false},
        {&ann, "fleet/acme/loads/L1/status", W, false},
        {&ann, "fleet/acme/loads/L2", R, false},
        {&ann, "fleet/acme/loads/L2/driver", W, false},
        {&bob, "fleet/acme/loads/L2/driver", W, true},
        {&bob, "fleet/acme/loads/L1", R, false},
        /* drv-gus is assigned L1 in globex; ann is not. */
        {&ann, "fleet/globex/loads/L1", R, false},

        /* Driver inbox and status. */
        {&disp, "fleet/acme/drivers/drv-ann/inbox", W, true},
        {&manager, "fleet/acme/drivers/drv-ann/inbox", W, true},
        {&disp, "fleet/acme/drivers/drv-ann/inbox", R, false},
        {&analyst, "fleet/acme/drivers/drv-ann/inbox", W, false},
        {&disp_globex, "fleet/acme/drivers/drv-ann/inbox", W, false},
        {&ann, "fleet/acme/drivers/drv-ann/inbox", R, true},
        {&ann, "fleet/acme/drivers/drv-ann/inbox", W, false},
        {&bob, "fleet/acme/drivers/drv-ann/inbox", R, false},
        {&ann, "fleet/acme/drivers/drv-ann/inbox/x", R, false},
        {&disp, "fleet/acme/drivers/drv-ann/inbox/x", W, false},
        {&ann, "fleet/acme/drivers/drv-ann/status", W, true},
        {&ann, "fleet/acme/drivers/drv-ann/status", R, false},
        {&bob, "fleet/acme/drivers/drv-ann/status", W, false},
        {&ann, "fleet/globex/drivers/drv-ann/status", W, false},
        {&disp, "fleet/acme/drivers/drv-ann/status", R, true},
        {&manager, "fleet/acme/drivers/drv-ann/status", R, true},
        {&disp, "fleet/acme/drivers/drv-ann/status", W, false},
        {&analyst, "fleet/acme/drivers/drv-ann/status", R, false},
        {&ann, "fleet/acme/drivers/drv-ann", R, false},
        {&ann, "fleet/acme/drivers/drv-ann/other", R, false},
        {&truck, "fleet/acme/drivers/trk-1/status", W, false},

        /* $SYS: read for system administrators and operators only. */
        {&sysadmin, "$SYS", R, true},
        {&sysadmin, "$SYS/broker/uptime", R, true},
        {&sysop, "$SYS/broker/clients/connected", R, true},
        {&sysadmin, "$SYS/broker/uptime", W, false},
        {&sysop, "$SYS/broker/uptime", W, false},
        {&sysadmin_acme, "$SYS/broker/uptime", R, false},
        {&shipper, "$SYS/broker/uptime", R, false},
        {&manager, "$SYS/broker/uptime", R, false},
        {&disp, "$SYS/broker/uptime", R, false},
        {&truck, "$SYS/broker/uptime", R, false},
        {&sysadmin, "$SYSX/broker", R, false},
        {&sysadmin, "$share/g/$SYS/x", R, false},
        {&sysadmin, "$other/x", R, false},

        /* Anything else, and malformed topics. */
        {&disp, "", R, false},
        {&disp, "fleet", R, false},
        {&disp, "fleet/acme", R, false},
        {&disp, "fleet/acme/loads", R, false},
        {&disp, "fleet/acme/trucks/trk-1/telemetry", R, false},
        {&disp, "Fleet/acme/loads/L1", R, false},
        {&disp, "/fleet/acme/loads/L1", R, false},
        {&disp, "fleet//loads/L1", R, false},
        {&disp, "fleet/acme/loads/", R, false},
        {&disp, "fleet/acme/loads//status", R, false},
        {&disp, "fleet/acme/loads/L.1", R, false},
        {&disp, "fleet/acme/loads/L 1", R, false},
        {&disp, "fleet/acme/loads/+", R, false},
        {&disp, "fleet/acme/loads/L1/#", R, false},
        {&disp, "fleet/acme/loads/L1/+", W, false},
        {&truck, "fleet/acme/devices/trk-1/telemetry/#", W, false},
        {&disp, "other/topic", R, false},
        {&disp, "fleet/acme/devices/trk-1/commands", 0, false},
        {&disp, "fleet/acme/devices/trk-1/commands", 8, false},

        /* Subscriptions: allowed only when every matched topic is. */
        {&disp, "fleet/acme/devices/+/telemetry/#", S, true},
        {&disp, "fleet/acme/devices/+/telemetry", S, true},
        {&disp, "fleet/acme/devices/trk-1/telemetry/+", S, true},
        {&disp, "fleet/acme/devices/#", S, false},
        {&disp, "fleet/acme/devices/+/+", S, false},
        {&disp, "fleet/acme/devices/+/commands", S, false},
        {&disp, "fleet/acme/#", S, false},
        {&disp, "fleet/+/devices/+/telemetry", S, false},
        {&disp, "#", S, false},
        {&disp, "+/acme/devices/trk-1/telemetry", S, false},
        {&disp, "fleet/acme/loads/+/#", S, true},
        {&disp, "fleet/acme/loads/#", S, false},
        {&disp, "fleet/acme/loads/+", S, true},
        {&disp, "fleet/acme/loads/+/rate", S, true},
        {&disp, "fleet/acme/drivers/+/status", S, true},
        {&disp, "fleet/acme/drivers/+/inbox", S, false},
        {&disp, "fleet/acme/drivers/+/+", S, false},
        {&disp, "fleet/acme/drivers/+/status/#", S, false},
        {&disp_globex, "fleet/acme/devices/+/telemetry/#", S, false},
        {&manager, "fleet/acme/devices/+/telemetry/#", S, true},
        {&manager, "fleet/acme/loads/+/#", S, true},
        {&analyst, "fleet/acme/devices/+/telemetry/#", S, true},
        {&analyst, "fleet/acme/loads/+", S, false},
        {&truck, "fleet/acme/devices/trk-1/commands/#", S, true},
        {&truck, "fleet/acme/devices/trk-1/commands", S, true},
        {&truck, "fleet/acme/devices/+/commands/#", S, false},
        {&truck, "fleet/acme/devices/trk-1/#", S, false},
        {&truck, "fleet/acme/devices/trk-1/telemetry", S, false},
        {&ann, "fleet/acme/loads/L1/#", S, false},
        {&ann, "fleet/acme/loads/L1/+", S, false},
        {&ann, "fleet/acme/loads/L1", S, true},
        {&ann, "fleet/acme/loads/L1/status", S, true},
        {&ann, "fleet/acme/loads/L1/driver/#", S, true},
        {&ann, "fleet/acme/loads/L1/stops/+", S, true},
        {&ann, "fleet/acme/loads/+/status", S, false},
        {&ann, "fleet/acme/loads/+", S, false},
        {&ann, "fleet/acme/loads/L2/status", S, false},
        {&ann, "fleet/acme/drivers/drv-ann/inbox", S, true},
        {&ann, "fleet/acme/drivers/drv-ann/+", S, false},
        {&ann, "fleet/acme/drivers/drv-ann/inbox/#", S, false},
        {&ann, "fleet/acme/drivers/+/inbox", S, false},
        {&sysadmin, "$SYS/#", S, true},
        {&sysop, "$SYS/broker/+", S, true},
        {&sysadmin, "#", S, false},
        {&sysadmin, "+/broker/uptime", S, false},
        {&disp, "$SYS/#", S, false},
        /* Malformed filters. */
        {&disp, "", S, false},
        {&disp, "fleet/acme/devices/+/telemetry/#/x", S, false},
        {&disp, "fleet/acme/devices/trk-1/telemetry#", S, false},
        {&disp, "fleet/acme/devices/trk+/telemetry", S, false},
        {&disp, "fleet/acme/devices/++/telemetry", S, false},
        {&disp, "fleet/acme/devices/+/telemetry/##", S, false},
        {&disp, "fleet/acme/devices/trk-1/telemetry/a#", S, false},
};

static const char *access_name(enum fa_access access)
{
	switch (access) {
	case FA_ACCESS_READ:
		return "read";
	case FA_ACCESS_WRITE:
		return "write";
	case FA_ACCESS_SUBSCRIBE:
		return "subscribe";
	}
	return "invalid access";
}

static void topic_rules_table(void **state)
{
	(void)state;
	size_t failures = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct topic_case *c = &cases[i];
		bool got = fa_topic_allowed(c->who, c->topic, c->access,
		                            lookup_assignment, NULL);
		if (got != c->allowed) {
			print_error("case %zu: %s (%s) %s \"%s\": expected "
			            "%s, got %s\n",
			            i, c->who->id, fa_role_name(c->who->role),
			            access_name(c->access), c->topic,
			            c->allowed ? "allow" : "deny",
			            got ? "allow" : "deny");
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

/* Every concrete case that is allowed for READ must also be allowed as a
 * subscription filter without wildcards, and the other way round. */
static void topic_subscribe_matches_read(void **state)
{
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct topic_case *c = &cases[i];
		if (c->access != FA_ACCESS_READ || strpbrk(c->topic, "+#"))
			continue;
		bool read = fa_topic_allowed(c->who, c->topic, R,
		                             lookup_assignment, NULL);
		bool sub = fa_topic_allowed(c->who, c->topic, S,
		                            lookup_assignment, NULL);
		if (read != sub)
			fail_msg("case %zu \"%s\": read %d, subscribe %d", i,
			         c->topic, read, sub);
	}
}

static void topic_without_lookup_denies_drivers(void **state)
{
	(void)state;

	assert_false(
	        fa_topic_allowed(&ann, "fleet/acme/loads/L1", R, NULL, NULL));
	assert_true(
	        fa_topic_allowed(&disp, "fleet/acme/loads/L1", R, NULL, NULL));
}

static void topic_lookup_gets_ids(void **state)
{
	(void)state;

	lookup_calls = 0;
	assert_true(fa_topic_allowed(&ann, "fleet/acme/loads/L1/status", R,
	                             lookup_assignment, NULL));
	assert_int_equal(lookup_calls, 1);
	/* Staff never need the lookup, and invalid ids never reach it. */
	lookup_calls = 0;
	assert_true(fa_topic_allowed(&disp, "fleet/acme/loads/L1/status", R,
	                             lookup_assignment, NULL));
	assert_false(fa_topic_allowed(&ann, "fleet/acme/loads/L$1/status", R,
	                              lookup_assignment, NULL));
	assert_int_equal(lookup_calls, 0);
}

static void topic_null_arguments(void **state)
{
	(void)state;
	const struct fa_identity no_id = {USER, NULL, "acme",
	                                  FA_ROLE_DISPATCHER};
	const struct fa_identity bad_kind = {0, "disp-1", "acme",
	                                     FA_ROLE_DISPATCHER};

	assert_false(fa_topic_allowed(NULL, "fleet/acme/loads/L1", R,
	                              lookup_assignment, NULL));
	assert_false(fa_topic_allowed(&disp, NULL, R, lookup_assignment, NULL));
	assert_false(fa_topic_allowed(&no_id, "fleet/acme/loads/L1", R,
	                              lookup_assignment, NULL));
	assert_false(fa_topic_allowed(&bad_kind, "fleet/acme/loads/L1", R,
	                              lookup_assignment, NULL));
}

/* Builds "fleet/acme/devices/trk-1/telemetry/xxx..." of exactly len
 * bytes. */
static char *long_topic(size_t len)
{
	static const char prefix[] = "fleet/acme/devices/trk-1/telemetry/";
	char *topic = malloc(len + 1);

	assert_non_null(topic);
	memcpy(topic, prefix, sizeof(prefix) - 1);
	memset(topic + sizeof(prefix) - 1, 'x', len - (sizeof(prefix) - 1));
	topic[len] = '\0';
	return topic;
}

static void topic_length_limit(void **state)
{
	(void)state;
	char *max = long_topic(65535);
	char *over = long_topic(65536);

	assert_true(fa_topic_allowed(&truck, max, W, NULL, NULL));
	assert_true(fa_topic_allowed(&disp, max, R, NULL, NULL));
	assert_true(fa_topic_allowed(&disp, max, S, NULL, NULL));
	assert_false(fa_topic_allowed(&truck, over, W, NULL, NULL));
	assert_false(fa_topic_allowed(&disp, over, R, NULL, NULL));
	assert_false(fa_topic_allowed(&disp, over, S, NULL, NULL));
	free(max);
	free(over);
}

static void topic_name_wildcards_rejected(void **state)
{
	(void)state;
	static const char *const topics[] = {
	        "+/acme/devices/trk-1/telemetry/gps",
	        "fleet/acme/devices/trk-1/telemetry/#",
	        "fleet/acme/devices/trk-1/telemetry/g+s",
	        "fleet/acme/devices/trk-1/telemetry/gps#",
	        "fleet/acme/devices/trk-1/telemetry/a/b/c/d/+",
	        "fleet/acme/devices/trk-1/telemetry/a/b/c/d/e#f",
	};

	/* The same topic without the wildcard is allowed, so a rejection
	 * comes from the wildcard alone. */
	assert_true(fa_topic_allowed(
	        &truck, "fleet/acme/devices/trk-1/telemetry/a/b/c/d/e", W, NULL,
	        NULL));
	for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
		assert_false(
		        fa_topic_allowed(&truck, topics[i], W, NULL, NULL));
		assert_false(fa_topic_allowed(&disp, topics[i], R, NULL, NULL));
	}
}

static void topic_name_high_bytes(void **state)
{
	(void)state;

	/* Bytes above 0x7f are ordinary characters in a deep level. */
	assert_true(fa_topic_allowed(
	        &truck, "fleet/acme/devices/trk-1/telemetry/\xff\x80", W, NULL,
	        NULL));
	assert_false(fa_topic_allowed(
	        &truck, "fleet/acme/devices/trk-1/\xfftelemetry/x", W, NULL,
	        NULL));
}

static void topic_unshare_prefix(void **state)
{
	(void)state;
	const char *plain = "fleet/acme/loads/L1";

	assert_ptr_equal(fa_topic_unshare(plain), plain);
	assert_string_equal(fa_topic_unshare("$share/g1/fleet/acme/loads/L1"),
	                    "fleet/acme/loads/L1");
	assert_string_equal(fa_topic_unshare("$share/g/#"), "#");
	assert_null(fa_topic_unshare("$share//fleet/acme"));
	assert_null(fa_topic_unshare("$share/g"));
	assert_null(fa_topic_unshare("$share/g/"));
	assert_null(fa_topic_unshare("$share/g+/fleet"));
	assert_null(fa_topic_unshare("$share/#/fleet"));
	assert_null(fa_topic_unshare(NULL));
	assert_string_equal(fa_topic_unshare("$shared/g/x"), "$shared/g/x");
}

/*
 * Cross-checks the wildcard analysis against brute force. Random filters
 * are expanded into every concrete topic they match over a vocabulary: each
 * wildcard level takes every word, and '#' adds levels up to a total of
 * UNIVERSE_DEPTH. A filter must be allowed exactly when every expansion is
 * readable. The vocabulary contains every word the rules compare plus "x",
 * which no rule names.
 */
#define UNIVERSE_DEPTH 7

static const char *const vocabulary[] = {
        "fleet",    "acme",    "globex", "devices", "loads",  "drivers",
        "trk-1",    "drv-ann", "disp-1", "L1",      "L2",     "telemetry",
        "commands", "rate",    "driver", "inbox",   "status", "x"};
#define VOCABULARY_SIZE (sizeof(vocabulary) / sizeof(vocabulary[0]))

static const char *const position_words[][7] = {
        {"fleet", "fleet", "fleet", "x", NULL},
        {"acme", "acme", "globex", NULL},
        {"devices", "loads", "drivers", "x", NULL},
        {"trk-1", "drv-ann", "L1", "L2", "x", NULL},
        {"telemetry", "commands", "rate", "driver", "inbox", "status", NULL},
        {"x", "gps", NULL},
};

static uint32_t rng_state = 12345;

static uint32_t next_random(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return (rng_state >> 16) & 0x7fff;
}

static size_t word_count(const char *const *words)
{
	size_t n = 0;

	while (words[n] != NULL)
		n++;
	return n;
}

/* Writes a random filter of 1 to 6 levels, mostly 4 to 6, into out. */
static void random_filter(char *out, size_t out_size)
{
	size_t levels = next_random() % 4 == 0 ? 1 + next_random() % 3
	                                       : 4 + next_random() % 3;
	size_t plus_left = 2;
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < levels; i++) {
		const char *word = NULL;
		if (i > 0)
			len += (size_t)snprintf(out + len, out_size - len, "/");
		if (i == levels - 1 && i >= 3 && next_random() % 3 == 0) {
			word = "#";
		} else if (plus_left > 0 && next_random() % 4 == 0) {
			word = "+";
			plus_left--;
		} else {
			const char *const *words = position_words[i];
			word = words[next_random() % word_count(words)];
		}
		len += (size_t)snprintf(out + len, out_size - len, "%s", word);
	}
}

struct expansion {
	const struct fa_identity *who;
	const char *levels[UNIVERSE_DEPTH];
	size_t filter_levels;
	const char *filter[UNIVERSE_DEPTH];
	bool all_allowed;
	size_t topics;
};

static void check_expanded(struct expansion *e, size_t depth)
{
	char topic[512];
	size_t len = 0;

	for (size_t i = 0; i < depth; i++)
		len += (size_t)snprintf(topic + len, sizeof(topic) - len,
		                        "%s%s", i > 0 ? "/" : "", e->levels[i]);
	e->topics++;
	if (!fa_topic_allowed(e->who, topic, R, lookup_assignment, NULL))
		e->all_allowed = false;
}

/* NOLINTNEXTLINE(misc-no-recursion): the depth is at most UNIVERSE_DEPTH. */
static void expand(struct expansion *e, size_t position)
{
	if (!e->all_allowed)
		return;
	if (position == e->filter_levels) {
		check_expanded(e, position);
		return;
	}
	const char *f = e->filter[position];
	if (strcmp(f, "#") == 0) {
		/* '#' matches the parent level itself... */
		if (position > 0)
			check_expanded(e, position);
		/* ...and one or more levels below it. */
		if (position + 1 < UNIVERSE_DEPTH) {
			e->filter[position + 1] = "#";
			for (size_t w = 0; w < VOCABULARY_SIZE; w++) {
				e->levels[position] = vocabulary[w];
				size_t saved = e->filter_levels;
				e->filter_levels = position + 2;
				expand(e, position + 1);
				e->filter_levels = saved;
			}
			e->filter[position + 1] = NULL;
		}
		return;
	}
	if (strcmp(f, "+") == 0) {
		for (size_t w = 0; w < VOCABULARY_SIZE; w++) {
			e->levels[position] = vocabulary[w];
			expand(e, position + 1);
		}
		return;
	}
	e->levels[position] = f;
	expand(e, position + 1);
}

static void topic_wildcards_match_expansion(void **state)
{
	(void)state;
	const struct fa_identity *const people[] = {
	        &truck,   &ann,     &bob,         &disp,
	        &manager, &analyst, &disp_globex, &sysadmin};
	size_t allowed_filters = 0;

	for (int round = 0; round < 40000; round++) {
		char filter[256];
		char copy[256];
		struct expansion e;
		char *save = NULL;

		random_filter(filter, sizeof(filter));
		memset(&e, 0, sizeof(e));
		e.who = people[(size_t)round %
		               (sizeof(people) / sizeof(people[0]))];
		e.all_allowed = true;
		snprintf(copy, sizeof(copy), "%s", filter);
		for (char *level = strtok_r(copy, "/", &save); level;
		     level = strtok_r(NULL, "/", &save))
			e.filter[e.filter_levels++] = level;
		expand(&e, 0);

		bool got = fa_topic_allowed(e.who, filter, S, lookup_assignment,
		                            NULL);
		if (got != e.all_allowed)
			fail_msg("%s subscribe \"%s\": analysis says %s, "
			         "expansion over %zu topics says %s",
			         e.who->id, filter, got ? "allow" : "deny",
			         e.topics, e.all_allowed ? "allow" : "deny");
		if (got)
			allowed_filters++;
	}
	/* The generator must produce allowed filters too, or the check
	 * proves little. */
	print_message("%zu of 40000 filters allowed\n", allowed_filters);
	assert_true(allowed_filters > 200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(topic_rules_table),
	        cmocka_unit_test(topic_subscribe_matches_read),
	        cmocka_unit_test(topic_without_lookup_denies_drivers),
	        cmocka_unit_test(topic_lookup_gets_ids),
	        cmocka_unit_test(topic_null_arguments),
	        cmocka_unit_test(topic_length_limit),
	        cmocka_unit_test(topic_name_wildcards_rejected),
	        cmocka_unit_test(topic_name_high_bytes),
	        cmocka_unit_test(topic_unshare_prefix),
	        cmocka_unit_test(topic_wildcards_match_expansion),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
