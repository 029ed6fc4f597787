/*
 * Property test of fa_topic_allowed against a reference model.
 *
 * Each round generates a random fleet: carriers, users with roles, devices,
 * loads and driver assignments. Then it generates random requests, concrete
 * topics for READ and WRITE and filters for SUBSCRIBE. They are built from
 * the fleet's ids, the literal words of the topic table, fresh ids, invalid
 * ids, empty levels, wildcards, "$SYS" and "$share/" prefixes.
 *
 * The model is written from the table in docs/topics.md and shares no code
 * with lib/fa_topic.c. A concrete topic is looked up in the table directly.
 * A filter is expanded into every topic it matches over a finite universe:
 * the fleet's ids at id levels, the table's words at the other levels, and
 * a fresh id, an invalid id and an empty level everywhere. The model allows
 * the filter when each matched topic is readable, not counting topics where
 * a wildcard stands for an invalid id at an id level (no one can publish
 * there). The table inspects levels 0 to 4 and the level count only, so
 * deeper levels are expanded with one value, and '#' is expanded to at most
 * MODEL_DEPTH levels.
 *
 * The first disagreement is printed with the seed, case number and inputs,
 * and the program exits 1. FLEETAUTH_PROPERTY_SEED sets the seed (default
 * 1) and FLEETAUTH_PROPERTY_CASES the number of cases (default 300000).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fa_topic.h"

#define MAX_CARRIERS 3
#define MAX_USERS 10
#define MAX_DEVICES 4
#define MAX_LOADS 4
#define MAX_ASSIGNMENTS 8
#define MAX_LEVELS 9
/* Deepest topic the model builds for '#'; deeper topics decide the same
 * because the table names only levels 0 to 4. */
#define MODEL_DEPTH 8
#define UNIVERSE_MAX 96
#define CASES_PER_FLEET 500

/* Random numbers ---------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t next_random(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned pick(unsigned n)
{
	return (unsigned)(next_random() % n);
}

/* Fleet ------------------------------------------------------------------- */

struct user {
	char id[16];
	const char *carrier; /* NULL for platform roles */
	enum fa_role role;
};

struct device {
	char id[16];
	const char *carrier;
};

struct assignment {
	const char *carrier;
	const char *load;
	const char *user;
};

struct fleet {
	char carriers[MAX_CARRIERS][16];
	size_t carrier_count;
	struct user users[MAX_USERS];
	size_t user_count;
	struct device devices[MAX_DEVICES];
	size_t device_count;
	char loads[MAX_LOADS][16];
	const char *load_carrier[MAX_LOADS];
	size_t load_count;
	struct assignment assignments[MAX_ASSIGNMENTS];
	size_t assignment_count;
};

/* Ids that collide with words of the topic table, so that a rule that
 * compares the wrong level shows up. */
static const char *const tricky_ids[] = {"fleet",    "loads",  "rate",
                                         "driver",   "status", "telemetry",
                                         "commands", "inbox",  "devices"};

static void make_id(char *out, const char *prefix, size_t index)
{
	if (pick(8) == 0)
		snprintf(out, 16, "%s", tricky_ids[pick(9)]);
	else
		snprintf(out, 16, "%s%u", prefix, (unsigned)(index % 1000));
}

static void make_fleet(struct fleet *f)
{
	memset(f, 0, sizeof(*f));
	f->carrier_count = 1 + pick(MAX_CARRIERS);
	for (size_t i = 0; i < f->carrier_count; i++)
		snprintf(f->carriers[i], 16, "c%u", (unsigned)i);
	f->user_count = 1 + pick(MAX_USERS);
	for (size_t i = 0; i < f->user_count; i++) {
		struct user *u = &f->users[i];

		make_id(u->id, "u", i);
		u->role = (enum fa_role)(1 + pick(FA_ROLE_COUNT - 1));
		if (u->role == FA_ROLE_SYSTEM_ADMIN ||
		    u->role == FA_ROLE_SYSTEM_OPERATOR)
			u->carrier = NULL;
		else
			u->carrier =
			        f->carriers[pick((unsigned)f->carrier_count)];
	}
	f->device_count = pick(MAX_DEVICES + 1);
	for (size_t i = 0; i < f->device_count; i++) {
		make_id(f->devices[i].id, "d", i);
		f->devices[i].carrier =
		        f->carriers[pick((unsigned)f->carrier_count)];
	}
	f->load_count = pick(MAX_LOADS + 1);
	for (size_t i = 0; i < f->load_count; i++) {
		make_id(f->loads[i], "L", i);
		f->load_carrier[i] =
		        f->carriers[pick((unsigned)f->carrier_count)];
	}
	if (f->load_count == 0)
		return;
	f->assignment_count = pick(MAX_ASSIGNMENTS + 1);
	for (size_t i = 0; i < f->assignment_count; i++) {
		size_t load = pick((unsigned)f->load_count);
		const struct user *u = &f->users[pick((unsigned)f->user_count)];

		/* Mostly within the load's carrier, sometimes across. */
		f->assignments[i].carrier = pick(6) == 0 && u->carrier != NULL
		                                    ? u->carrier
		                                    : f->load_carrier[load];
		f->assignments[i].load = f->loads[load];
		f->assignments[i].user = u->id;
	}
}

static bool assignment_exists(const struct fleet *f, const char *carrier,
                              const char *load, const char *user)
{
	for (size_t i = 0; i < f->assignment_count; i++) {
		const struct assignment *a = &f->assignments[i];

		if (strcmp(a->carrier, carrier) == 0 &&
		    strcmp(a->load, load) == 0 && strcmp(a->user, user) == 0)
			return true;
	}
	return false;
}

static bool lookup(void *ctx, const char *carrier, const char *load,
                   const char *driver)
{
	return assignment_exists(ctx, carrier, load, driver);
}

/* Reference model: one concrete topic ------------------------------------- */

/* True when role is role_below or one of the roles above it, written out
 * from the hierarchy in docs/topics.md. */
static bool model_role_includes(enum fa_role role, enum fa_role below)
{
	switch (below) {
	case FA_ROLE_DRIVER:
		return role == FA_ROLE_DRIVER || role == FA_ROLE_DISPATCHER ||
		       role == FA_ROLE_FLEET_MANAGER;
	case FA_ROLE_DISPATCHER:
		return role == FA_ROLE_DISPATCHER ||
		       role == FA_ROLE_FLEET_MANAGER;
	case FA_ROLE_FLEET_ANALYST:
		return role == FA_ROLE_FLEET_ANALYST ||
		       role == FA_ROLE_FLEET_MANAGER;
	default:
		return false;
	}
}

static bool model_id_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

struct request {
	const struct fleet *fleet;
	const struct fa_identity *who;
};

/* A user of the carrier whose role includes role. Platform and shipper
 * roles are never carrier users. */
static bool model_member(const struct request *r, const char *carrier,
                         enum fa_role role)
{
	const struct fa_identity *who = r->who;

	return who->kind == FA_IDENTITY_USER && who->carrier != NULL &&
	       strcmp(who->carrier, carrier) == 0 &&
	       model_role_includes(who->role, role);
}

static bool model_staff(const struct request *r, const char *carrier)
{
	return model_member(r, carrier, FA_ROLE_DISPATCHER);
}

static bool model_that_device(const struct request *r, const char *carrier,
                              const char *device)
{
	return r->who->kind == FA_IDENTITY_DEVICE &&
	       strcmp(r->who->carrier, carrier) == 0 &&
	       strcmp(r->who->id, device) == 0;
}

static bool model_that_driver(const struct request *r, const char *carrier,
                              const char *driver)
{
	return model_member(r, carrier, FA_ROLE_DRIVER) &&
	       strcmp(r->who->id, driver) == 0;
}

static bool model_assigned(const struct request *r, const char *carrier,
                           const char *load)
{
	return model_member(r, carrier, FA_ROLE_DRIVER) &&
	       assignment_exists(r->fleet, carrier, load, r->who->id);
}

/* Looks up levels[0..n) in the table of docs/topics.md. */
static bool model_topic(const struct request *r, char levels[][80], size_t n,
                        enum fa_access access)
{
	bool write = access == FA_ACCESS_WRITE;
	const char *c;
	const char *id;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (strpbrk(levels[i], "+#") != NULL)
			return false;
	}
	if (strcmp(levels[0], "$SYS") == 0)
		return !write && r->who->kind == FA_IDENTITY_USER &&
		       (r->who->role == FA_ROLE_SYSTEM_ADMIN ||
		        r->who->role == FA_ROLE_SYSTEM_OPERATOR);
	if (strcmp(levels[0], "fleet") != 0 || n < 4)
		return false;
	c = levels[1];
	id = levels[3];
	if (!model_id_valid(c) || !model_id_valid(id))
		return false;
	if (strcmp(levels[2], "devices") == 0 && n >= 5) {
		if (strcmp(levels[4], "telemetry") == 0)
			return write ? model_that_device(r, c, id)
			             : model_member(r, c, FA_ROLE_DISPATCHER) ||
			                       model_member(
			                               r, c,
			                               FA_ROLE_FLEET_ANALYST);
		if (strcmp(levels[4], "commands") == 0)
			return write ? model_staff(r, c)
			             : model_that_device(r, c, id);
		return false;
	}
	if (strcmp(levels[2], "loads") == 0) {
		if (n >= 5 && strcmp(levels[4], "rate") == 0)
			return model_staff(r, c);
		if (n >= 5 && strcmp(levels[4], "driver") == 0)
			return model_staff(r, c) || model_assigned(r, c, id);
		if (write)
			return model_staff(r, c);
		return model_staff(r, c) || model_assigned(r, c, id);
	}
	if (strcmp(levels[2], "drivers") == 0 && n == 5) {
		if (strcmp(levels[4], "inbox") == 0)
			return write ? model_staff(r, c)
			             : model_that_driver(r, c, id);
		if (strcmp(levels[4], "status") == 0)
			return write ? model_that_driver(r, c, id)
			             : model_staff(r, c);
	}
	return false;
}

/* Reference model: filters ------------------------------------------------ */

struct universe {
	const char *values[UNIVERSE_MAX];
	size_t count;
};

/* Candidate values for a wildcard level: ids at levels 1 and 3, words at
 * levels 0, 2 and 4 (the only ones the table compares there), plus a fresh
 * id, an invalid id and an empty level everywhere. Ids may equal words. */
struct universes {
	struct universe ids;
	struct universe words;
};

static const char *const literals[] = {
        "fleet",    "$SYS", "devices", "loads", "drivers", "telemetry",
        "commands", "rate", "driver",  "inbox", "status",  "other"};
#define LITERAL_COUNT (sizeof(literals) / sizeof(literals[0]))
/* A valid id that no fleet object has, and a value that is not an id. */
#define FRESH_ID "zz-fresh"
#define INVALID_ID "bad id!"

static void add_value(struct universe *u, const char *value)
{
	for (size_t i = 0; i < u->count; i++) {
		if (strcmp(u->values[i], value) == 0)
			return;
	}
	if (u->count < UNIVERSE_MAX)
		u->values[u->count++] = value;
}

static void add_common(struct universe *u)
{
	add_value(u, FRESH_ID);
	add_value(u, INVALID_ID);
	add_value(u, "");
}

static void make_universes(const struct fleet *f, struct universes *u)
{
	u->ids.count = 0;
	u->words.count = 0;
	for (size_t i = 0; i < LITERAL_COUNT; i++)
		add_value(&u->words, literals[i]);
	for (size_t i = 0; i < f->carrier_count; i++)
		add_value(&u->ids, f->carriers[i]);
	for (size_t i = 0; i < f->user_count; i++)
		add_value(&u->ids, f->users[i].id);
	for (size_t i = 0; i < f->device_count; i++)
		add_value(&u->ids, f->devices[i].id);
	for (size_t i = 0; i < f->load_count; i++)
		add_value(&u->ids, f->loads[i]);
	add_common(&u->ids);
	add_common(&u->words);
}

struct expansion {
	const struct request *request;
	const struct universes *universes;
	char filter[MAX_LEVELS][80];
	size_t filter_count; /* levels before a trailing '#' */
	/* A filter without '#' expands to up to MAX_LEVELS levels. */
	char topic[MAX_LEVELS][80];
};

/* True when the filter has a wildcard at position: '+', or a level that
 * the trailing '#' covers. */
static bool is_wildcard(const struct expansion *e, size_t position)
{
	return position >= e->filter_count ||
	       strcmp(e->filter[position], "+") == 0;
}

/* A topic that a wildcard fills with an invalid id at an id level cannot
 * carry a message, so it does not count against the filter. An invalid id
 * written in the filter itself is judged like the same topic: denied. */
static bool wildcard_gave_invalid_id(const struct expansion *e, size_t n)
{
	if (n == 0 || strcmp(e->topic[0], "fleet") != 0)
		return false;
	if (n > 1 && is_wildcard(e, 1) && !model_id_valid(e->topic[1]))
		return true;
	return n > 3 && is_wildcard(e, 3) && !model_id_valid(e->topic[3]);
}

/* Fills topic positions from position to n - 1 and checks every topic;
 * false when one is not readable. */
/* NOLINTNEXTLINE(misc-no-recursion): the depth is n, at most MAX_LEVELS. */
static bool expand(struct expansion *e, size_t position, size_t n)
{
	if (position == n) {
		if (wildcard_gave_invalid_id(e, n))
			return true;
		return model_topic(e->request, e->topic, n, FA_ACCESS_READ);
	}
	if (position < e->filter_count &&
	    strcmp(e->filter[position], "+") != 0) {
		snprintf(e->topic[position], sizeof(e->topic[position]), "%s",
		         e->filter[position]);
		return expand(e, position + 1, n);
	}
	if (position > 4) {
		/* The table does not look at levels deeper than 4. */
		/* cppcheck-suppress arrayIndexOutOfBoundsCond ; position < n,
		 * and model_filter passes n <= MAX_LEVELS, the row count. */
		snprintf(e->topic[position], sizeof(e->topic[position]), "x");
		return expand(e, position + 1, n);
	}
	const struct universe *u = position == 1 || position == 3
	                                   ? &e->universes->ids
	                                   : &e->universes->words;

	for (size_t i = 0; i < u->count; i++) {
		const char *value = u->values[i];

		/* Wildcards at the first level never match '$' topics. */
		if (position == 0 && value[0] == '$')
			continue;
		snprintf(e->topic[position], sizeof(e->topic[position]), "%s",
		         value);
		if (!expand(e, position + 1, n))
			return false;
	}
	return true;
}

/* Splits text at '/' into levels; returns the count, or MAX_LEVELS + 1 if
 * there are too many. */
static size_t split_levels(const char *text, char levels[][80])
{
	size_t n = 0;
	const char *start = text;

	for (const char *p = text;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		if (n == MAX_LEVELS)
			return MAX_LEVELS + 1;
		snprintf(levels[n], 80, "%.*s", (int)(p - start), start);
		n++;
		if (*p == '\0')
			break;
		start = p + 1;
	}
	return n;
}

static bool model_filter(const struct request *r, const struct universes *u,
                         const char *filter)
{
	struct expansion e;
	size_t n;
	bool hash = false;
	size_t first;
	size_t last;

	if (filter[0] == '\0')
		return false;
	memset(&e, 0, sizeof(e));
	e.request = r;
	e.universes = u;
	n = split_levels(filter, e.filter);
	if (n > MAX_LEVELS)
		return false;
	for (size_t i = 0; i < n; i++) {
		const char *level = e.filter[i];

		if (strcmp(level, "#") == 0) {
			if (i != n - 1)
				return false;
			hash = true;
		} else if (strcmp(level, "+") != 0 &&
		           strpbrk(level, "+#") != NULL) {
			return false;
		}
	}
	e.filter_count = hash ? n - 1 : n;
	/* "a/#" matches "a" too; "#" alone matches every topic. */
	first = e.filter_count == 0 ? 1 : e.filter_count;
	last = hash ? MODEL_DEPTH : e.filter_count;
	for (size_t count = first; count <= last; count++) {
		if (!expand(&e, 0, count))
			return false;
	}
	return true;
}

/* "$share/{group}/{filter}" is judged on {filter}; a malformed prefix is
 * denied. Returns NULL when denied. */
static const char *model_unshare(const char *filter)
{
	const char *group;
	const char *slash;

	if (strncmp(filter, "$share/", 7) != 0)
		return filter;
	group = filter + 7;
	slash = strchr(group, '/');
	if (slash == NULL || slash == group || slash[1] == '\0')
		return NULL;
	for (const char *p = group; p < slash; p++) {
		if (*p == '+' || *p == '#')
			return NULL;
	}
	return slash + 1;
}

/* Generators -------------------------------------------------------------- */

static const char *random_id(const struct fleet *f,
                             const struct fa_identity *who)
{
	switch (pick(9)) {
	case 0:
		return f->carriers[pick((unsigned)f->carrier_count)];
	case 1:
		return f->users[pick((unsigned)f->user_count)].id;
	case 2:
		return f->device_count
		               ? f->devices[pick((unsigned)f->device_count)].id
		               : FRESH_ID;
	case 3:
		return f->load_count ? f->loads[pick((unsigned)f->load_count)]
		                     : FRESH_ID;
	case 4:
		return who->id;
	case 5:
		return who->carrier != NULL ? who->carrier : "c0";
	case 6:
		return FRESH_ID;
	case 7:
		return pick(2) ? INVALID_ID : "";
	default:
		return literals[pick(LITERAL_COUNT)];
	}
}

/* Builds a topic (wildcards false) or filter shaped like the table's
 * topics most of the time, and random otherwise. */
static void random_topic(const struct fleet *f, const struct fa_identity *who,
                         bool wildcards, char *out, size_t size)
{
	static const char *const kinds[] = {"devices", "loads", "drivers"};
	static const char *const fields[] = {"telemetry", "commands", "rate",
	                                     "driver",    "inbox",    "status",
	                                     "eta"};
	size_t n = 1 + pick(7);
	size_t len = 0;
	bool shaped = pick(4) != 0;

	out[0] = '\0';
	if (wildcards && pick(10) == 0)
		len += (size_t)snprintf(out, size, "$share/%s/",
		                        pick(8)   ? "g1"
		                        : pick(2) ? "+"
		                                  : "");
	for (size_t i = 0; i < n; i++) {
		const char *level;

		if (shaped && i == 0)
			level = pick(12) ? "fleet" : "$SYS";
		else if (shaped && i == 1 && pick(3))
			level = who->carrier != NULL ? who->carrier : "c0";
		else if (shaped && i == 3 && pick(3) == 0)
			level = who->id;
		else if (shaped && i == 3 && f->assignment_count && pick(2))
			level = f
			                ->assignments[pick(
			                        (unsigned)f->assignment_count)]
			                .load;
		else if (shaped && i == 2)
			level = kinds[pick(3)];
		else if (shaped && i == 4)
			level = fields[pick(7)];
		else
			level = random_id(f, who);
		if (wildcards && pick(4) == 0)
			level = pick(3) ? "+" : "#";
		else if (wildcards && pick(40) == 0)
			level = "a+";
		len += (size_t)snprintf(out + len, size - len, "%s%s",
		                        i ? "/" : "", level);
		if (strcmp(level, "#") == 0 && pick(4))
			break;
	}
}

static void random_identity(const struct fleet *f, struct fa_identity *who)
{
	if (f->device_count > 0 && pick(4) == 0) {
		const struct device *d =
		        &f->devices[pick((unsigned)f->device_count)];

		who->kind = FA_IDENTITY_DEVICE;
		who->id = d->id;
		who->carrier = d->carrier;
		who->role = FA_ROLE_NONE;
		return;
	}
	const struct user *u = &f->users[pick((unsigned)f->user_count)];

	who->kind = FA_IDENTITY_USER;
	who->id = u->id;
	who->carrier = u->carrier;
	who->role = u->role;
}

/* Runner ------------------------------------------------------------------ */

static void print_fleet(const struct fleet *f)
{
	fprintf(stderr, "  assignments (carrier/load/user):");
	for (size_t i = 0; i < f->assignment_count; i++)
		fprintf(stderr, " %s/%s/%s", f->assignments[i].carrier,
		        f->assignments[i].load, f->assignments[i].user);
	fprintf(stderr, "\n");
}

static const char *access_name(enum fa_access access)
{
	return access == FA_ACCESS_READ    ? "read"
	       : access == FA_ACCESS_WRITE ? "write"
	                                   : "subscribe";
}

int main(void)
{
	const char *seed_text = getenv("FLEETAUTH_PROPERTY_SEED");
	const char *cases_text = getenv("FLEETAUTH_PROPERTY_CASES");
	uint64_t seed = seed_text ? strtoull(seed_text, NULL, 0) : 1;
	long cases = cases_text ? strtol(cases_text, NULL, 10) : 300000;
	long allowed[3] = {0, 0, 0};
	struct fleet fleet;
	struct universes universes;

	if (cases <= 0) {
		fprintf(stderr,
		        "FLEETAUTH_PROPERTY_CASES must be a positive "
		        "number, got '%s'\n",
		        cases_text);
		return 2;
	}
	rng_state = seed;
	for (long i = 0; i < cases; i++) {
		struct fa_identity who;
		struct request request;
		enum fa_access access;
		char topic[512];
		const char *judged;
		bool got;
		bool want;

		if (i % CASES_PER_FLEET == 0) {
			make_fleet(&fleet);
			make_universes(&fleet, &universes);
		}
		random_identity(&fleet, &who);
		request.fleet = &fleet;
		request.who = &who;
		access = (enum fa_access[]){FA_ACCESS_READ, FA_ACCESS_WRITE,
		                            FA_ACCESS_SUBSCRIBE}[pick(3)];
		random_topic(&fleet, &who, access == FA_ACCESS_SUBSCRIBE, topic,
		             sizeof(topic));
		if (access == FA_ACCESS_SUBSCRIBE) {
			/* The plugin removes "$share/group/" first and denies
			 * a malformed prefix. */
			judged = fa_topic_unshare(topic);
			got = judged != NULL &&
			      fa_topic_allowed(&who, judged, access, lookup,
			                       &fleet);
			judged = model_unshare(topic);
			want = judged != NULL &&
			       model_filter(&request, &universes, judged);
		} else {
			char levels[MAX_LEVELS][80];
			size_t n = split_levels(topic, levels);

			got = fa_topic_allowed(&who, topic, access, lookup,
			                       &fleet);
			want = n <= MAX_LEVELS &&
			       model_topic(&request, levels, n, access);
		}
		if (got != want) {
			fprintf(stderr,
			        "disagreement at case %ld, seed %" PRIu64
			        " (FLEETAUTH_PROPERTY_SEED=%" PRIu64 ")\n"
			        "  identity: %s id=%s carrier=%s role=%s\n"
			        "  %s \"%s\": fa_topic_allowed=%s, model=%s\n",
			        i, seed, seed,
			        who.kind == FA_IDENTITY_USER ? "user"
			                                     : "device",
			        who.id, who.carrier ? who.carrier : "(none)",
			        fa_role_name(who.role), access_name(access),
			        topic, got ? "allow" : "deny",
			        want ? "allow" : "deny");
			print_fleet(&fleet);
			return 1;
		}
		if (got)
			allowed[access == FA_ACCESS_READ    ? 0
			        : access == FA_ACCESS_WRITE ? 1
			                                    : 2]++;
	}
	printf("%ld cases agree (seed %" PRIu64 "); allowed: %ld read, %ld "
	       "write, %ld subscribe\n",
	       cases, seed, allowed[0], allowed[1], allowed[2]);
	/* A generator that never produces an allowed request tests nothing. */
	if (allowed[0] == 0 || allowed[1] == 0 || allowed[2] == 0) {
		fprintf(stderr,
		        "the generator produced no allowed request for "
		        "some access type; the test checks too little\n");
		return 1;
	}
	return 0;
}
