/*
 * Fuzzes fa_topic_allowed and fa_topic_unshare with any byte string as topic
 * or filter, for a fixed set of identities of carrier "acme". Besides memory
 * errors it checks rules that hold for every input:
 *
 * - a topic with '+' or '#' is never readable or writable;
 * - a filter without wildcards is allowed exactly when its topic is readable;
 * - no carrier identity gets a fleet/ topic of another carrier, and a
 *   filter with '+' or '#' at the carrier level is always denied;
 * - a device writes only below its own telemetry;
 * - a driver never reads or subscribes below a load's "rate";
 * - platform roles never get fleet/ topics, and only they read $SYS.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fa_topic.h"
#include "fuzz_check.h"

/* The driver "drv-1" of carrier "acme" is assigned to load "L1" only. */
static bool assigned(void *ctx, const char *carrier, const char *load,
                     const char *driver)
{
	(void)ctx;
	return strcmp(carrier, "acme") == 0 && strcmp(load, "L1") == 0 &&
	       strcmp(driver, "drv-1") == 0;
}

static const struct fa_identity identities[] = {
        {FA_IDENTITY_USER, "drv-1", "acme", FA_ROLE_DRIVER},
        {FA_IDENTITY_USER, "drv-2", "acme", FA_ROLE_DRIVER},
        {FA_IDENTITY_USER, "disp-1", "acme", FA_ROLE_DISPATCHER},
        {FA_IDENTITY_USER, "fm-1", "acme", FA_ROLE_FLEET_MANAGER},
        {FA_IDENTITY_USER, "fa-1", "acme", FA_ROLE_FLEET_ANALYST},
        {FA_IDENTITY_USER, "sa-1", NULL, FA_ROLE_SYSTEM_ADMIN},
        {FA_IDENTITY_USER, "so-1", NULL, FA_ROLE_SYSTEM_OPERATOR},
        {FA_IDENTITY_USER, "ship-1", "acme", FA_ROLE_SHIPPER_ADMIN},
        {FA_IDENTITY_DEVICE, "dev-1", "acme", FA_ROLE_NONE},
        /* ids that look like topic syntax must not confuse the rules */
        {FA_IDENTITY_DEVICE, "+", "#", FA_ROLE_NONE},
        {FA_IDENTITY_USER, "fleet", "acme", FA_ROLE_DISPATCHER},
};

#define MAX_LEVELS 8

/* Splits s at '/' into at most MAX_LEVELS levels (the last one keeps the
 * rest); returns the level count. */
static size_t split(const char *s, const char *levels[MAX_LEVELS],
                    size_t lens[MAX_LEVELS])
{
	size_t n = 0;
	const char *start = s;

	for (const char *p = s;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		if (n < MAX_LEVELS) {
			levels[n] = start;
			lens[n] = (size_t)(p - start);
			n++;
		}
		if (*p == '\0')
			break;
		start = p + 1;
	}
	return n;
}

static bool level_is(const char *level, size_t len, const char *literal)
{
	return len == strlen(literal) && memcmp(level, literal, len) == 0;
}

static void check_identity(const struct fa_identity *who, const char *topic)
{
	const char *lv[MAX_LEVELS];
	size_t ln[MAX_LEVELS];
	size_t n = split(topic, lv, ln);
	bool wild = strpbrk(topic, "+#") != NULL;
	bool read =
	        fa_topic_allowed(who, topic, FA_ACCESS_READ, assigned, NULL);
	bool write =
	        fa_topic_allowed(who, topic, FA_ACCESS_WRITE, assigned, NULL);
	bool sub = fa_topic_allowed(who, topic, FA_ACCESS_SUBSCRIBE, assigned,
	                            NULL);
	bool any = read || write || sub;
	bool fleet = n >= 1 && level_is(lv[0], ln[0], "fleet");
	bool platform = who->kind == FA_IDENTITY_USER && who->carrier == NULL;

	if (wild) {
		FUZZ_CHECK(!read);
		FUZZ_CHECK(!write);
	} else {
		FUZZ_CHECK(sub == read);
	}
	if (fleet && any) {
		FUZZ_CHECK(!platform);
		FUZZ_CHECK(n >= 2 && who->carrier != NULL &&
		           level_is(lv[1], ln[1], who->carrier));
	}
	if (write && who->kind == FA_IDENTITY_DEVICE) {
		FUZZ_CHECK(n >= 5 && level_is(lv[2], ln[2], "devices"));
		FUZZ_CHECK(level_is(lv[3], ln[3], who->id));
		FUZZ_CHECK(level_is(lv[4], ln[4], "telemetry"));
	}
	if ((read || sub) && who->role == FA_ROLE_DRIVER && n >= 5 &&
	    level_is(lv[2], ln[2], "loads"))
		FUZZ_CHECK(!level_is(lv[4], ln[4], "rate"));
	if (n >= 1 && level_is(lv[0], ln[0], "$SYS")) {
		FUZZ_CHECK(!write);
		if (read)
			FUZZ_CHECK(platform);
	}
	/* Without an assignment lookup no driver reads any load. */
	if (who->role == FA_ROLE_DRIVER && fleet && n >= 3 &&
	    level_is(lv[2], ln[2], "loads"))
		FUZZ_CHECK(!fa_topic_allowed(who, topic, FA_ACCESS_READ, NULL,
		                             NULL));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *topic = malloc(size + 1);
	const char *unshared;

	FUZZ_CHECK(topic != NULL);
	memcpy(topic, data, size);
	topic[size] = '\0';

	for (size_t i = 0; i < sizeof(identities) / sizeof(identities[0]); i++)
		check_identity(&identities[i], topic);

	unshared = fa_topic_unshare(topic);
	if (strncmp(topic, "$share/", 7) != 0) {
		FUZZ_CHECK(unshared == topic);
	} else if (unshared != NULL) {
		FUZZ_CHECK(unshared > topic + 7 &&
		           unshared <= topic + strlen(topic));
		FUZZ_CHECK(unshared[-1] == '/' && unshared[0] != '\0');
		for (size_t i = 0;
		     i < sizeof(identities) / sizeof(identities[0]); i++)
			(void)fa_topic_allowed(&identities[i], unshared,
			                       FA_ACCESS_SUBSCRIBE, assigned,
			                       NULL);
	}
	free(topic);
	return 0;
}
