/*
 * Topic rules: decides whether an identity may publish to a topic, receive a
 * message on a topic, or subscribe to a filter. Pure functions over the
 * identity and one lookup callback; no I/O, no allocation.
 */
#ifndef FA_TOPIC_H
#define FA_TOPIC_H

#include <stdbool.h>

#include "fa_roles.h"

enum fa_access {
	FA_ACCESS_READ = 1,     /* a message delivered to the client */
	FA_ACCESS_WRITE = 2,    /* a PUBLISH from the client */
	FA_ACCESS_SUBSCRIBE = 4 /* a SUBSCRIBE filter, wildcards allowed */
};

enum fa_identity_kind { FA_IDENTITY_USER = 1, FA_IDENTITY_DEVICE = 2 };

struct fa_identity {
	enum fa_identity_kind kind;
	const char *id;      /* user id or device id */
	const char *carrier; /* NULL for platform roles */
	enum fa_role role;   /* FA_ROLE_NONE for devices */
};

/*
 * Returns true when driver is assigned to load of carrier. ctx is the
 * caller's state. Must not block.
 */
typedef bool (*fa_assignment_lookup)(void *ctx, const char *carrier,
                                     const char *load, const char *driver);

/*
 * Decides one request. topic is a concrete topic for READ and WRITE and a
 * filter for SUBSCRIBE (with any "$share/group/" prefix already removed).
 * A filter is allowed only if every topic it can match is allowed, not
 * counting topics with an invalid id at an id level. Publishing to those is
 * always denied, so no message can be delivered on them. Wildcards at the first
 * level do not match "$SYS" topics (MQTT 3.1.1, section 4.7.2). Returns
 * true to allow; everything not allowed by a rule is denied.
 */
bool fa_topic_allowed(const struct fa_identity *who, const char *topic,
                      enum fa_access access, fa_assignment_lookup lookup,
                      void *ctx);

/*
 * Strips a "$share/{group}/" prefix. Returns the filter after it, the input
 * unchanged when there is no prefix, or NULL when the prefix is malformed
 * (empty group, wildcard in group, nothing after the group).
 */
const char *fa_topic_unshare(const char *filter);

#endif
