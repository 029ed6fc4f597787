/*
 * Broker denials in the audit trail. The plugin queues each denial in
 * memory and merges identical ones (same action, reason, actor, target,
 * address and client id) into one entry with a count. About once per
 * interval it sends the queue to broker_audit() in PostgreSQL over a side
 * connection (side.h), from the broker's tick. A batch that fails is sent
 * again after the next connection, so a database outage delays audit rows
 * but does not lose them. When the queue is full, further denials are only
 * counted, and that count is written as one "broker.lost" row.
 */
#ifndef FA_AUDIT_H
#define FA_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct fa_audit;

struct fa_audit_stats {
	uint64_t queued;   /* denials taken into the queue */
	uint64_t dropped;  /* denials not queued because the queue was full */
	uint64_t rows;     /* rows broker_audit() reported as written */
	uint64_t batches;  /* batches written */
	uint64_t failures; /* batches or connections that failed */
};

/*
 * Makes a queue that sends to the database named by conninfo every
 * interval_ms, holding at most max_entries distinct denials. broker names
 * this broker in every row (for example its host name); log, when not
 * NULL, receives one line for each failure. Returns NULL when out of
 * memory. conninfo and broker are copied. Times passed to the functions
 * below are CLOCK_MONOTONIC milliseconds (now_ms) or Unix seconds (now_s).
 */
struct fa_audit *fa_audit_new(const char *conninfo, const char *broker,
                              int64_t interval_ms, size_t max_entries,
                              void (*log)(const char *message));

/* Sends what is queued, waiting up to timeout_ms in all, then closes the
 * connection and frees the queue. For plugin cleanup only: it blocks. */
void fa_audit_free(struct fa_audit *audit, int64_t timeout_ms);

/*
 * Queues one denial. action is "connect", "publish", "subscribe" or
 * "delivery"; reason is a short code such as "token" or "topic". Any string may
 * be NULL. Text outside printable ASCII is replaced by '?' and long values are
 * cut.
 */
void fa_audit_denial(struct fa_audit *audit, int64_t now_s, const char *action,
                     const char *reason, const char *actor, const char *target,
                     const char *address, const char *client_id);

/* Advances the side connection and sends a batch when one is due. */
void fa_audit_tick(struct fa_audit *audit, int64_t now_ms);

/* Distinct denials waiting, including a batch in flight or to resend. */
size_t fa_audit_pending(const struct fa_audit *audit);

void fa_audit_get_stats(const struct fa_audit *audit,
                        struct fa_audit_stats *out);

/*
 * Writes the queued entries as the JSON array that broker_audit() takes
 * and empties the queue. Returns a malloc'd string the caller frees, or
 * NULL when the queue is empty or memory ran out (the queue is then kept).
 */
char *fa_audit_take_batch(struct fa_audit *audit);

#endif
