/*
 * Topic rules. A concrete topic is split into levels and checked against
 * one table of rules. A subscription filter is checked by running the same
 * rules over every kind of topic the filter can match.
 *
 * The rules look only at the first RULE_DEPTH levels and at how many levels
 * there are, and they compare each level only with a few literals, the
 * identity's own id and carrier, or an assigned load. So for a wildcard
 * level it is enough to try each of those values plus one "fresh" value
 * that equals none of them, and for '#' every level count up to
 * RULE_DEPTH, where RULE_DEPTH stands for "RULE_DEPTH or more".
 */
#include "fa_topic.h"

#include <stddef.h>
#include <string.h>

#include "fa_ids.h"

#define TOPIC_MAX_LEN 65535
/* Levels 0-4 are named by the rules; level 5 stands for anything deeper. */
#define RULE_DEPTH 6

/* One level of a topic, pointing into the caller's string. s == NULL is a
 * fresh value: a valid id that equals no literal, id or carrier. */
struct level {
	const char *s;
	size_t len;
};

/* The levels the rules look at, and the level count capped at RULE_DEPTH. */
struct topic_view {
	struct level levels[RULE_DEPTH];
	size_t count;
};

/* Level comparisons ------------------------------------------------------ */

static bool level_equals(const struct level *l, const char *s, size_t len)
{
	return l->s != NULL && l->len == len && memcmp(l->s, s, len) == 0;
}

static bool level_is(const struct level *l, const char *literal)
{
	return level_equals(l, literal, strlen(literal));
}

static bool level_equals_str(const struct level *l, const char *s)
{
	return s != NULL && level_equals(l, s, strlen(s));
}

static bool level_id_valid(const struct level *l)
{
	return l->s == NULL || fa_id_valid_n(l->s, l->len);
}

/* Who may do what -------------------------------------------------------- */

/* A user of carrier whose role covers role (fleet_manager covers
 * dispatcher). Platform roles have no carrier and never match. */
static bool is_carrier_user(const struct fa_identity *who,
                            const struct level *carrier, enum fa_role role)
{
	return who->kind == FA_IDENTITY_USER &&
	       fa_role_is_carrier_role(who->role) &&
	       fa_role_covers(who->role, role) &&
	       level_equals_str(carrier, who->carrier);
}

/* Dispatchers and fleet managers of the carrier. */
static bool is_staff(const struct fa_identity *who, const struct level *c)
{
	return is_carrier_user(who, c, FA_ROLE_DISPATCHER);
}

static bool is_device(const struct fa_identity *who, const struct level *c,
                      const struct level *device)
{
	return who->kind == FA_IDENTITY_DEVICE &&
	       level_equals_str(c, who->carrier) &&
	       level_equals_str(device, who->id);
}

/* The driver named by the level, within the carrier. */
static bool is_self_driver(const struct fa_identity *who, const struct level *c,
                           const struct level *driver)
{
	return is_carrier_user(who, c, FA_ROLE_DRIVER) &&
	       level_equals_str(driver, who->id);
}

/* A driver assigned to the load. A fresh load has no assigned driver,
 * because only finitely many loads have assignments. */
static bool is_assigned_driver(const struct fa_identity *who,
                               const struct level *c, const struct level *load,
                               fa_assignment_lookup lookup, void *ctx)
{
	char load_id[FA_ID_MAX + 1];

	if (lookup == NULL || load->s == NULL || load->len > FA_ID_MAX)
		return false;
	if (!is_carrier_user(who, c, FA_ROLE_DRIVER))
		return false;
	memcpy(load_id, load->s, load->len);
	load_id[load->len] = '\0';
	return lookup(ctx, who->carrier, load_id, who->id);
}

/* Rules ------------------------------------------------------------------ */

static bool device_rule(const struct fa_identity *who,
                        const struct topic_view *t, enum fa_access access)
{
	const struct level *c = &t->levels[1];
	const struct level *device = &t->levels[3];
	const struct level *channel = &t->levels[4];

	if (t->count < 5)
		return false;
	if (level_is(channel, "telemetry")) {
		if (access == FA_ACCESS_WRITE)
			return is_device(who, c, device);
		return is_carrier_user(who, c, FA_ROLE_DISPATCHER) ||
		       is_carrier_user(who, c, FA_ROLE_FLEET_ANALYST);
	}
	if (level_is(channel, "commands")) {
		if (access == FA_ACCESS_WRITE)
			return is_staff(who, c);
		return is_device(who, c, device);
	}
	return false;
}

/*
 * fleet/{c}/loads/{load} and below: staff read and write everything. An
 * assigned driver reads everything except rate and below, and writes only
 * driver and below.
 */
static bool load_rule(const struct fa_identity *who, const struct topic_view *t,
                      enum fa_access access, fa_assignment_lookup lookup,
                      void *ctx)
{
	const struct level *c = &t->levels[1];
	const struct level *load = &t->levels[3];
	const struct level *field = &t->levels[4];

	if (is_staff(who, c))
		return true;
	if (t->count >= 5 && level_is(field, "rate"))
		return false;
	if (access == FA_ACCESS_WRITE &&
	    (t->count < 5 || !level_is(field, "driver")))
		return false;
	return is_assigned_driver(who, c, load, lookup, ctx);
}

/* fleet/{c}/drivers/{driver}/inbox and /status, with nothing below. */
static bool driver_rule(const struct fa_identity *who,
                        const struct topic_view *t, enum fa_access access)
{
	const struct level *c = &t->levels[1];
	const struct level *driver = &t->levels[3];
	const struct level *box = &t->levels[4];

	if (t->count != 5)
		return false;
	if (level_is(box, "inbox")) {
		if (access == FA_ACCESS_WRITE)
			return is_staff(who, c);
		return is_self_driver(who, c, driver);
	}
	if (level_is(box, "status")) {
		if (access == FA_ACCESS_WRITE)
			return is_self_driver(who, c, driver);
		return is_staff(who, c);
	}
	return false;
}

/* $SYS and below: read-only, for system administrators and operators. */
static bool sys_rule(const struct fa_identity *who, enum fa_access access)
{
	return access == FA_ACCESS_READ && who->kind == FA_IDENTITY_USER &&
	       (who->carrier == NULL || who->carrier[0] == '\0') &&
	       fa_role_covers(who->role, FA_ROLE_SYSTEM_OPERATOR);
}

/* Decides READ or WRITE on one topic; everything not allowed is denied. */
static bool rules_allow(const struct fa_identity *who,
                        const struct topic_view *t, enum fa_access access,
                        fa_assignment_lookup lookup, void *ctx)
{
	const struct level *kind = &t->levels[2];

	if (t->count == 0)
		return false;
	if (level_is(&t->levels[0], "$SYS"))
		return sys_rule(who, access);
	if (!level_is(&t->levels[0], "fleet") || t->count < 4)
		return false;
	if (!level_id_valid(&t->levels[1]) || !level_id_valid(&t->levels[3]))
		return false;
	if (level_is(kind, "devices"))
		return device_rule(who, t, access);
	if (level_is(kind, "loads"))
		return load_rule(who, t, access, lookup, ctx);
	if (level_is(kind, "drivers"))
		return driver_rule(who, t, access);
	return false;
}

/* Concrete topics -------------------------------------------------------- */

/* Bytes that end a run of ordinary topic characters: the level separator,
 * the end of the string and the two wildcards. */
static const bool topic_stop[256] = {
        ['\0'] = true, ['/'] = true, ['+'] = true, ['#'] = true};

/* Splits a topic name into t. Fails on an empty or over-long topic and on
 * wildcard characters, which a topic name cannot contain. The inner loop
 * skips ordinary characters with one table lookup each, because every
 * concrete-topic check starts here. */
static bool parse_topic(const char *topic, struct topic_view *t)
{
	const char *start = topic;
	const char *p = topic;

	t->count = 0;
	for (;;) {
		while (!topic_stop[(unsigned char)*p])
			p++;
		if (p - topic > TOPIC_MAX_LEN)
			return false;
		if (*p == '+' || *p == '#')
			return false;
		if (t->count < RULE_DEPTH) {
			t->levels[t->count].s = start;
			t->levels[t->count].len = (size_t)(p - start);
			t->count++;
		}
		if (*p == '\0')
			break;
		p++;
		start = p;
	}
	return p != topic;
}

/* Filters ---------------------------------------------------------------- */

/* A parsed subscription filter: its first levels, which of them are '+',
 * how many levels precede a trailing '#', and whether there is one. */
struct filter_view {
	struct level levels[RULE_DEPTH];
	bool plus[RULE_DEPTH];
	size_t fixed;
	bool hash;
};

/* Checks one filter level: a wildcard must fill its level alone, and '#'
 * must be the last level. */
static bool filter_level_valid(const char *s, size_t len, bool last)
{
	if (len == 1 && s[0] == '#')
		return last;
	if (len == 1 && s[0] == '+')
		return true;
	return memchr(s, '+', len) == NULL && memchr(s, '#', len) == NULL;
}

static bool parse_filter(const char *filter, struct filter_view *f)
{
	const char *start = filter;
	const char *p = filter;
	size_t index = 0;

	memset(f, 0, sizeof(*f));
	if (*filter == '\0')
		return false;
	for (;; p++) {
		if (p - filter > TOPIC_MAX_LEN)
			return false;
		if (*p != '/' && *p != '\0')
			continue;
		size_t len = (size_t)(p - start);
		if (!filter_level_valid(start, len, *p == '\0'))
			return false;
		if (len == 1 && start[0] == '#') {
			f->hash = true;
			break;
		}
		if (index < RULE_DEPTH) {
			f->levels[index].s = start;
			f->levels[index].len = len;
			f->plus[index] = len == 1 && start[0] == '+';
		}
		index++;
		if (*p == '\0')
			break;
		start = p + 1;
	}
	f->fixed = index;
	return true;
}

/* Literals the rules compare at each level, in rules_allow and below. */
static const char *const level0_literals[] = {"fleet", NULL};
static const char *const level2_literals[] = {"devices", "loads", "drivers",
                                              NULL};
static const char *const level4_literals[] = {
        "telemetry", "commands", "rate", "driver", "inbox", "status", NULL};
static const char *const no_literals[] = {NULL};

/* "$SYS" is not among the level 0 values because MQTT wildcards at the
 * first level never match topics that start with '$'. */
static const char *const *literals_at(size_t position)
{
	switch (position) {
	case 0:
		return level0_literals;
	case 2:
		return level2_literals;
	case 4:
		return level4_literals;
	default:
		return no_literals;
	}
}

struct filter_check {
	const struct fa_identity *who;
	const struct filter_view *filter;
	fa_assignment_lookup lookup;
	void *ctx;
	struct topic_view topic;
};

static bool check_positions(struct filter_check *check, size_t position);

/* Tries value at a wildcard position, then the positions after it. */
static bool check_value(struct filter_check *check, size_t position,
                        const char *value)
{
	check->topic.levels[position].s = value;
	check->topic.levels[position].len = value != NULL ? strlen(value) : 0;
	return check_positions(check, position + 1);
}

/*
 * Fills positions from position onwards with every representative value
 * and returns false as soon as one resulting topic is denied for READ.
 * Values that are not valid ids are not tried at id positions: no one may
 * publish to such a topic, so no message can be delivered on it.
 */
static bool check_positions(struct filter_check *check, size_t position)
{
	const struct filter_view *f = check->filter;
	const struct fa_identity *who = check->who;

	if (position == check->topic.count)
		return rules_allow(who, &check->topic, FA_ACCESS_READ,
		                   check->lookup, check->ctx);
	if (position < f->fixed && !f->plus[position]) {
		check->topic.levels[position] = f->levels[position];
		return check_positions(check, position + 1);
	}
	for (const char *const *lit = literals_at(position); *lit; lit++) {
		if (!check_value(check, position, *lit))
			return false;
	}
	if (!check_value(check, position, who->id))
		return false;
	if (who->carrier != NULL && !check_value(check, position, who->carrier))
		return false;
	return check_value(check, position, NULL);
}

/*
 * Allows a filter only when every topic it matches is readable. Without '#'
 * the level count is fixed; with '#' it runs from the parent level (MQTT
 * "a/#" matches "a") to RULE_DEPTH.
 */
static bool filter_allowed(const struct fa_identity *who, const char *filter,
                           fa_assignment_lookup lookup, void *ctx)
{
	struct filter_view f;
	struct filter_check check;
	size_t first = 0;
	size_t last = 0;

	if (!parse_filter(filter, &f))
		return false;
	first = f.fixed < RULE_DEPTH ? f.fixed : RULE_DEPTH;
	last = f.hash ? RULE_DEPTH : first;
	if (first == 0)
		first = 1;

	memset(&check, 0, sizeof(check));
	check.who = who;
	check.filter = &f;
	check.lookup = lookup;
	check.ctx = ctx;
	for (size_t count = first; count <= last; count++) {
		check.topic.count = count;
		if (!check_positions(&check, 0))
			return false;
	}
	return true;
}

/* Public API ------------------------------------------------------------- */

bool fa_topic_allowed(const struct fa_identity *who, const char *topic,
                      enum fa_access access, fa_assignment_lookup lookup,
                      void *ctx)
{
	struct topic_view t;

	if (who == NULL || topic == NULL || who->id == NULL)
		return false;
	if (who->kind != FA_IDENTITY_USER && who->kind != FA_IDENTITY_DEVICE)
		return false;
	if (access == FA_ACCESS_SUBSCRIBE)
		return filter_allowed(who, topic, lookup, ctx);
	if (access != FA_ACCESS_READ && access != FA_ACCESS_WRITE)
		return false;
	if (!parse_topic(topic, &t))
		return false;
	return rules_allow(who, &t, access, lookup, ctx);
}

const char *fa_topic_unshare(const char *filter)
{
	static const char prefix[] = "$share/";
	const char *group = NULL;
	const char *slash = NULL;

	if (filter == NULL)
		return NULL;
	if (strncmp(filter, prefix, sizeof(prefix) - 1) != 0)
		return filter;
	group = filter + sizeof(prefix) - 1;
	slash = strchr(group, '/');
	if (slash == NULL || slash == group || slash[1] == '\0')
		return NULL;
	if (memchr(group, '+', (size_t)(slash - group)) != NULL ||
	    memchr(group, '#', (size_t)(slash - group)) != NULL)
		return NULL;
	return slash + 1;
}
