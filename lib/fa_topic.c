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

/* Levels 1 (carrier) and 3 (device, load or driver) must be valid ids. */
#define ID_LEVEL_A 1
#define ID_LEVEL_B 3

/* One level of a topic, pointing into the caller's string. s == NULL is a
 * fresh value: a valid id that equals no literal, id or carrier. id_valid
 * is set only at the id levels, when the level is filled. */
struct level {
	const char *s;
	size_t len;
	bool id_valid;
};

/* The levels the rules look at, and the level count capped at RULE_DEPTH. */
struct topic_view {
	struct level levels[RULE_DEPTH];
	size_t count;
};

/*
 * The identity with everything the rules ask about it worked out once per
 * call: the lengths of its id and carrier and which role tests it passes.
 * A carrier user is a user of a carrier role with a carrier, and the
 * staff, driver and analyst flags include that condition.
 */
struct who_view {
	const struct fa_identity *identity;
	struct level id;
	struct level carrier; /* s == NULL for no carrier */
	bool device;
	bool staff;   /* carrier user covering dispatcher */
	bool driver;  /* carrier user covering driver */
	bool analyst; /* carrier user covering fleet analyst */
	bool sys;     /* user without a carrier covering system operator */
};

/* Byte classes for parsing: CLASS_ID for the bytes of an id
 * ([A-Za-z0-9_-]), CLASS_STOP for the bytes that end a run of ordinary
 * topic characters (the level separator, the end of the string and the two
 * wildcards), 0 for every other byte. */
#define CLASS_ID 1
#define CLASS_STOP 2

static const unsigned char char_class[256] = {
        ['\0'] = CLASS_STOP, ['/'] = CLASS_STOP, ['+'] = CLASS_STOP,
        ['#'] = CLASS_STOP,  ['-'] = CLASS_ID,   ['_'] = CLASS_ID,
        ['0'] = CLASS_ID,    ['1'] = CLASS_ID,   ['2'] = CLASS_ID,
        ['3'] = CLASS_ID,    ['4'] = CLASS_ID,   ['5'] = CLASS_ID,
        ['6'] = CLASS_ID,    ['7'] = CLASS_ID,   ['8'] = CLASS_ID,
        ['9'] = CLASS_ID,    ['A'] = CLASS_ID,   ['B'] = CLASS_ID,
        ['C'] = CLASS_ID,    ['D'] = CLASS_ID,   ['E'] = CLASS_ID,
        ['F'] = CLASS_ID,    ['G'] = CLASS_ID,   ['H'] = CLASS_ID,
        ['I'] = CLASS_ID,    ['J'] = CLASS_ID,   ['K'] = CLASS_ID,
        ['L'] = CLASS_ID,    ['M'] = CLASS_ID,   ['N'] = CLASS_ID,
        ['O'] = CLASS_ID,    ['P'] = CLASS_ID,   ['Q'] = CLASS_ID,
        ['R'] = CLASS_ID,    ['S'] = CLASS_ID,   ['T'] = CLASS_ID,
        ['U'] = CLASS_ID,    ['V'] = CLASS_ID,   ['W'] = CLASS_ID,
        ['X'] = CLASS_ID,    ['Y'] = CLASS_ID,   ['Z'] = CLASS_ID,
        ['a'] = CLASS_ID,    ['b'] = CLASS_ID,   ['c'] = CLASS_ID,
        ['d'] = CLASS_ID,    ['e'] = CLASS_ID,   ['f'] = CLASS_ID,
        ['g'] = CLASS_ID,    ['h'] = CLASS_ID,   ['i'] = CLASS_ID,
        ['j'] = CLASS_ID,    ['k'] = CLASS_ID,   ['l'] = CLASS_ID,
        ['m'] = CLASS_ID,    ['n'] = CLASS_ID,   ['o'] = CLASS_ID,
        ['p'] = CLASS_ID,    ['q'] = CLASS_ID,   ['r'] = CLASS_ID,
        ['s'] = CLASS_ID,    ['t'] = CLASS_ID,   ['u'] = CLASS_ID,
        ['v'] = CLASS_ID,    ['w'] = CLASS_ID,   ['x'] = CLASS_ID,
        ['y'] = CLASS_ID,    ['z'] = CLASS_ID};

/* Returns whether len bytes at s form a valid id, given whether every byte
 * is an id byte: the test of fa_id_valid_n without a second pass. */
static bool id_valid_len(bool all_id_bytes, size_t len)
{
	return all_id_bytes && len > 0 && len <= FA_ID_MAX;
}

/* The same test as fa_id_valid_n, by table lookup. */
static bool id_valid_n(const char *s, size_t len)
{
	bool all_id_bytes = true;

	for (size_t i = 0; i < len && all_id_bytes; i++)
		all_id_bytes = char_class[(unsigned char)s[i]] & CLASS_ID;
	return id_valid_len(all_id_bytes, len);
}

/* Sets level position of t and, at an id level, whether it is a valid id.
 * A fresh value (s == NULL) is a valid id. */
static void set_level(struct topic_view *t, size_t position, const char *s,
                      size_t len)
{
	struct level *l = &t->levels[position];

	l->s = s;
	l->len = len;
	if (position == ID_LEVEL_A || position == ID_LEVEL_B)
		l->id_valid = s == NULL || id_valid_n(s, len);
}

/* Level comparisons ------------------------------------------------------ */

static bool level_equals(const struct level *l, const char *s, size_t len)
{
	return l->s != NULL && l->len == len && memcmp(l->s, s, len) == 0;
}

/* Compares with a string literal, whose length is a compile-time
 * constant. */
#define level_is(l, literal) level_equals((l), (literal), sizeof(literal) - 1)

/* Compares with an identity's id or carrier, which is NULL when absent. */
static bool level_equals_level(const struct level *l, const struct level *v)
{
	return v->s != NULL && level_equals(l, v->s, v->len);
}

/* Who may do what -------------------------------------------------------- */

/* A user of the carrier named by the level who passed a role test. */
static bool is_carrier_user(const struct who_view *who, bool role_test,
                            const struct level *carrier)
{
	return role_test && level_equals_level(carrier, &who->carrier);
}

/* Dispatchers and fleet managers of the carrier. */
static bool is_staff(const struct who_view *who, const struct level *c)
{
	return is_carrier_user(who, who->staff, c);
}

static bool is_device(const struct who_view *who, const struct level *c,
                      const struct level *device)
{
	return who->device && level_equals_level(c, &who->carrier) &&
	       level_equals_level(device, &who->id);
}

/* The driver named by the level, within the carrier. */
static bool is_self_driver(const struct who_view *who, const struct level *c,
                           const struct level *driver)
{
	return is_carrier_user(who, who->driver, c) &&
	       level_equals_level(driver, &who->id);
}

/* A driver assigned to the load. A fresh load has no assigned driver,
 * because only finitely many loads have assignments. */
static bool is_assigned_driver(const struct who_view *who,
                               const struct level *c, const struct level *load,
                               fa_assignment_lookup lookup, void *ctx)
{
	char load_id[FA_ID_MAX + 1];

	if (lookup == NULL || load->s == NULL || load->len > FA_ID_MAX)
		return false;
	if (!is_carrier_user(who, who->driver, c))
		return false;
	memcpy(load_id, load->s, load->len);
	load_id[load->len] = '\0';
	return lookup(ctx, who->identity->carrier, load_id, who->identity->id);
}

/* Rules ------------------------------------------------------------------ */

static bool device_rule(const struct who_view *who, const struct topic_view *t,
                        enum fa_access access)
{
	const struct level *c = &t->levels[1];
	const struct level *device = &t->levels[3];
	const struct level *channel = &t->levels[4];

	if (t->count < 5)
		return false;
	if (level_is(channel, "telemetry")) {
		if (access == FA_ACCESS_WRITE)
			return is_device(who, c, device);
		return is_carrier_user(who, who->staff, c) ||
		       is_carrier_user(who, who->analyst, c);
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
static bool load_rule(const struct who_view *who, const struct topic_view *t,
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
static bool driver_rule(const struct who_view *who, const struct topic_view *t,
                        enum fa_access access)
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

/* Decides READ or WRITE on one topic; everything not allowed is denied.
 * $SYS and below is read-only, for system administrators and operators. */
static bool rules_allow(const struct who_view *who, const struct topic_view *t,
                        enum fa_access access, fa_assignment_lookup lookup,
                        void *ctx)
{
	const struct level *kind = &t->levels[2];

	if (t->count == 0)
		return false;
	if (level_is(&t->levels[0], "$SYS"))
		return access == FA_ACCESS_READ && who->sys;
	if (!level_is(&t->levels[0], "fleet") || t->count < 4)
		return false;
	if (!t->levels[ID_LEVEL_A].id_valid || !t->levels[ID_LEVEL_B].id_valid)
		return false;
	if (level_is(kind, "devices"))
		return device_rule(who, t, access);
	if (level_is(kind, "loads"))
		return load_rule(who, t, access, lookup, ctx);
	if (level_is(kind, "drivers"))
		return driver_rule(who, t, access);
	return false;
}

/* Works out the identity's lengths and role tests once per call. */
static void who_view_init(struct who_view *view, const struct fa_identity *who)
{
	bool user = who->kind == FA_IDENTITY_USER;
	bool carrier_user = user && fa_role_is_carrier_role(who->role);

	memset(view, 0, sizeof(*view));
	view->identity = who;
	view->id.s = who->id;
	view->id.len = strlen(who->id);
	if (who->carrier != NULL) {
		view->carrier.s = who->carrier;
		view->carrier.len = strlen(who->carrier);
	}
	view->device = who->kind == FA_IDENTITY_DEVICE;
	view->staff =
	        carrier_user && fa_role_covers(who->role, FA_ROLE_DISPATCHER);
	view->driver =
	        carrier_user && fa_role_covers(who->role, FA_ROLE_DRIVER);
	view->analyst = carrier_user &&
	                fa_role_covers(who->role, FA_ROLE_FLEET_ANALYST);
	view->sys = user && (who->carrier == NULL || who->carrier[0] == '\0') &&
	            fa_role_covers(who->role, FA_ROLE_SYSTEM_OPERATOR);
}

/* Concrete topics -------------------------------------------------------- */

/* Splits a topic name into t and marks which id levels hold valid ids.
 * Fails on an empty or over-long topic and on wildcard characters, which a
 * topic name cannot contain. The inner loop classifies each byte with one
 * table lookup, because every concrete-topic check starts here. */
static bool parse_topic(const char *topic, struct topic_view *t)
{
	const char *start = topic;
	const char *p = topic;

	t->count = 0;
	for (;;) {
		unsigned all = CLASS_ID;
		unsigned c;

		while (!((c = char_class[(unsigned char)*p]) & CLASS_STOP)) {
			all &= c;
			p++;
		}
		if (p - topic > TOPIC_MAX_LEN)
			return false;
		if (*p == '+' || *p == '#')
			return false;
		if (t->count < RULE_DEPTH) {
			struct level *l = &t->levels[t->count];

			l->s = start;
			l->len = (size_t)(p - start);
			l->id_valid = id_valid_len(all != 0, l->len);
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

/* A literal the rules compare at some level, with its length. */
struct literal {
	const char *s;
	size_t len;
};

#define LITERAL(text)                                                          \
	{                                                                      \
		(text), sizeof(text) - 1                                       \
	}

/* Literals the rules compare at each level, in rules_allow and below. */
static const struct literal level0_literals[] = {LITERAL("fleet"), {NULL, 0}};
static const struct literal level2_literals[] = {
        LITERAL("devices"), LITERAL("loads"), LITERAL("drivers"), {NULL, 0}};
static const struct literal level4_literals[] = {LITERAL("telemetry"),
                                                 LITERAL("commands"),
                                                 LITERAL("rate"),
                                                 LITERAL("driver"),
                                                 LITERAL("inbox"),
                                                 LITERAL("status"),
                                                 {NULL, 0}};
static const struct literal no_literals[] = {{NULL, 0}};

/* "$SYS" is not among the level 0 values because MQTT wildcards at the
 * first level never match topics that start with '$'. */
static const struct literal *literals_at(size_t position)
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
	const struct who_view *who;
	const struct filter_view *filter;
	fa_assignment_lookup lookup;
	void *ctx;
	struct topic_view topic;
};

static bool check_positions(struct filter_check *check, size_t position);

/* Tries a value at a wildcard position, then the positions after it. */
/* NOLINTNEXTLINE(misc-no-recursion): depth <= RULE_DEPTH levels. */
static bool check_value(struct filter_check *check, size_t position,
                        const char *value, size_t len)
{
	set_level(&check->topic, position, value, len);
	return check_positions(check, position + 1);
}

/*
 * Fills positions from position onwards with every representative value
 * and returns false as soon as one resulting topic is denied for READ.
 * Values that are not valid ids are not tried at id positions: no one may
 * publish to such a topic, so no message can be delivered on it.
 */
/* NOLINTNEXTLINE(misc-no-recursion): depth <= RULE_DEPTH levels. */
static bool check_positions(struct filter_check *check, size_t position)
{
	const struct filter_view *f = check->filter;
	const struct who_view *who = check->who;

	if (position == check->topic.count)
		return rules_allow(who, &check->topic, FA_ACCESS_READ,
		                   check->lookup, check->ctx);
	if (position < f->fixed && !f->plus[position]) {
		const struct level *fixed = &f->levels[position];

		return check_value(check, position, fixed->s, fixed->len);
	}
	for (const struct literal *lit = literals_at(position); lit->s; lit++) {
		if (!check_value(check, position, lit->s, lit->len))
			return false;
	}
	if (!check_value(check, position, who->id.s, who->id.len))
		return false;
	if (who->carrier.s != NULL &&
	    !check_value(check, position, who->carrier.s, who->carrier.len))
		return false;
	return check_value(check, position, NULL, 0);
}

/*
 * Allows a filter only when every topic it matches is readable. Without '#'
 * the level count is fixed; with '#' it runs from the parent level (MQTT
 * "a/#" matches "a") to RULE_DEPTH.
 */
static bool filter_allowed(const struct who_view *who, const char *filter,
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
	/* cppcheck-suppress knownConditionTrueFalse ; set by parse_filter */
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
	struct who_view view;

	if (who == NULL || topic == NULL || who->id == NULL)
		return false;
	if (who->kind != FA_IDENTITY_USER && who->kind != FA_IDENTITY_DEVICE)
		return false;
	if (access != FA_ACCESS_SUBSCRIBE && access != FA_ACCESS_READ &&
	    access != FA_ACCESS_WRITE)
		return false;
	who_view_init(&view, who);
	if (access == FA_ACCESS_SUBSCRIBE)
		return filter_allowed(&view, topic, lookup, ctx);
	if (!parse_topic(topic, &t))
		return false;
	return rules_allow(&view, &t, access, lookup, ctx);
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
