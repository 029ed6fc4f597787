/*
 * Queue of broker denials for the audit trail; see audit.h. The queue is
 * an array of distinct entries with an open-addressing index on their
 * hash. A batch is the whole queue turned into one JSON array, sent with
 * one SELECT broker_audit($1) on a non-blocking connection of its own, so
 * that a slow insert never holds up the change feed.
 */
#include "audit.h"

#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "side.h"

#define ACTION_MAX 16
#define REASON_MAX 32
#define ACTOR_MAX 192
#define TARGET_MAX 256
#define ADDRESS_MAX 64
#define CLIENT_MAX 192

/* A batch that the database refused this many times is given up. */
#define SEND_ATTEMPTS 3

static const char insert_sql[] = "SELECT broker_audit($1::jsonb)";
/* The brokers' role reads with default_transaction_read_only on; this
 * connection only calls broker_audit(), which needs a writable one. */
static const char setup_sql[] = "SET default_transaction_read_only = off; "
                                "SET statement_timeout = 10000";

struct entry {
	uint64_t hash;
	int64_t first_s;
	int64_t last_s;
	uint64_t count;
	char action[ACTION_MAX];
	char reason[REASON_MAX];
	char actor[ACTOR_MAX];
	char target[TARGET_MAX];
	char address[ADDRESS_MAX];
	char client_id[CLIENT_MAX];
};

struct fa_audit {
	char *conninfo;
	char *broker;
	int64_t interval_ms;
	size_t max_entries;
	struct entry *entries;
	size_t count;
	size_t capacity;
	uint32_t *index; /* entry number + 1; 0 marks an empty slot */
	size_t index_mask;
	uint64_t lost; /* denials dropped since the last batch */
	int64_t lost_first_s;
	int64_t lost_last_s;
	char *in_flight; /* batch being sent, or to send again */
	int attempts;    /* refused sends of in_flight */
	int64_t next_batch_ms;
	struct fa_side side;
	void (*log)(const char *message);
	struct fa_audit_stats stats;
};
static void audit_log(const struct fa_audit *audit, const char *format, ...)
        __attribute__((format(printf, 2, 3)));

static void audit_log(const struct fa_audit *audit, const char *format, ...)
{
	char message[512];
	va_list args;

	if (audit->log == NULL)
		return;
	va_start(args, format);
	vsnprintf(message, sizeof(message), format, args);
	va_end(args);
	audit->log(message);
}

struct fa_audit *fa_audit_new(const char *conninfo, const char *broker,
                              int64_t interval_ms, size_t max_entries,
                              void (*log)(const char *message))
{
	struct fa_audit *audit = calloc(1, sizeof(*audit));
	size_t slots = 16;

	if (audit == NULL)
		return NULL;
	if (max_entries == 0)
		max_entries = 1;
	while (slots < 2 * max_entries)
		slots *= 2;
	audit->conninfo = strdup(conninfo ? conninfo : "");
	audit->broker = strdup(broker ? broker : "");
	audit->index = calloc(slots, sizeof(*audit->index));
	if (audit->conninfo == NULL || audit->broker == NULL ||
	    audit->index == NULL) {
		fa_audit_free(audit, 0);
		return NULL;
	}
	audit->index_mask = slots - 1;
	audit->interval_ms = interval_ms > 0 ? interval_ms : 1000;
	audit->max_entries = max_entries;
	audit->log = log;
	fa_side_init(&audit->side, audit->conninfo, setup_sql, "audit", log);
	return audit;
}

/* Copies src into dst, keeping printable ASCII and writing '?' for any
 * other byte, and cuts it to fit. NULL becomes "". */
static void copy_field(char *dst, size_t size, const char *src)
{
	size_t n = 0;

	for (; src != NULL && src[n] != '\0' && n + 1 < size; n++) {
		unsigned char c = (unsigned char)src[n];

		dst[n] = (char)(c >= 0x20 && c < 0x7f ? c : '?');
	}
	dst[n] = '\0';
}

static uint64_t hash_bytes(uint64_t hash, const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		hash ^= *p;
		hash *= 0x100000001b3ULL;
	}
	/* A separator, so that ("ab", "c") and ("a", "bc") differ. */
	hash ^= 0xff;
	return hash * 0x100000001b3ULL;
}

static uint64_t entry_hash(const struct entry *e)
{
	uint64_t hash = 0xcbf29ce484222325ULL;

	hash = hash_bytes(hash, e->action);
	hash = hash_bytes(hash, e->reason);
	hash = hash_bytes(hash, e->actor);
	hash = hash_bytes(hash, e->target);
	hash = hash_bytes(hash, e->address);
	return hash_bytes(hash, e->client_id);
}

static bool entry_same(const struct entry *a, const struct entry *b)
{
	return a->hash == b->hash && strcmp(a->action, b->action) == 0 &&
	       strcmp(a->reason, b->reason) == 0 &&
	       strcmp(a->actor, b->actor) == 0 &&
	       strcmp(a->target, b->target) == 0 &&
	       strcmp(a->address, b->address) == 0 &&
	       strcmp(a->client_id, b->client_id) == 0;
}

/* Makes room for one more entry; false when the queue is full or memory
 * ran out. */
static bool reserve_entry(struct fa_audit *audit)
{
	struct entry *grown;
	size_t capacity;

	if (audit->count >= audit->max_entries)
		return false;
	if (audit->count < audit->capacity)
		return true;
	capacity = audit->capacity ? audit->capacity * 2 : 16;
	if (capacity > audit->max_entries)
		capacity = audit->max_entries;
	grown = realloc(audit->entries, capacity * sizeof(*grown));
	if (grown == NULL)
		return false;
	audit->entries = grown;
	audit->capacity = capacity;
	return true;
}

static void count_lost(struct fa_audit *audit, int64_t now_s)
{
	if (audit->lost == 0)
		audit->lost_first_s = now_s;
	audit->lost++;
	audit->lost_last_s = now_s;
	audit->stats.dropped++;
}

void fa_audit_denial(struct fa_audit *audit, int64_t now_s, const char *action,
                     const char *reason, const char *actor, const char *target,
                     const char *address, const char *client_id)
{
	struct entry probe;
	size_t slot;

	if (audit == NULL)
		return;
	copy_field(probe.action, sizeof(probe.action), action);
	copy_field(probe.reason, sizeof(probe.reason), reason);
	copy_field(probe.actor, sizeof(probe.actor), actor);
	copy_field(probe.target, sizeof(probe.target), target);
	copy_field(probe.address, sizeof(probe.address), address);
	copy_field(probe.client_id, sizeof(probe.client_id), client_id);
	probe.hash = entry_hash(&probe);
	for (slot = probe.hash & audit->index_mask; audit->index[slot] != 0;
	     slot = (slot + 1) & audit->index_mask) {
		struct entry *e = &audit->entries[audit->index[slot] - 1];

		if (entry_same(e, &probe)) {
			e->count++;
			e->last_s = now_s;
			audit->stats.queued++;
			return;
		}
	}
	if (!reserve_entry(audit)) {
		count_lost(audit, now_s);
		return;
	}
	probe.first_s = now_s;
	probe.last_s = now_s;
	probe.count = 1;
	audit->entries[audit->count] = probe;
	audit->index[slot] = (uint32_t)(audit->count + 1);
	audit->count++;
	audit->stats.queued++;
}

/* ---- the batch as JSON ---- */

struct buffer {
	char *data;
	size_t len;
	size_t cap;
	bool failed;
};

static void put_bytes(struct buffer *b, const char *bytes, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		char *grown;

		while (b->len + n + 1 > cap)
			cap *= 2;
		grown = realloc(b->data, cap);
		if (grown == NULL) {
			b->failed = true;
			return;
		}
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, bytes, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void put_text(struct buffer *b, const char *text)
{
	put_bytes(b, text, strlen(text));
}

/* Writes ,"key":"value" or ,"key":null for an empty value. Values hold
 * printable ASCII only (copy_field), so only '"' and '\' need escaping. */
static void put_string(struct buffer *b, const char *key, const char *value)
{
	put_text(b, ",\"");
	put_text(b, key);
	put_text(b, "\":");
	if (value[0] == '\0') {
		put_text(b, "null");
		return;
	}
	put_text(b, "\"");
	for (const char *p = value; *p; p++) {
		if (*p == '"' || *p == '\\')
			put_text(b, "\\");
		put_bytes(b, p, 1);
	}
	put_text(b, "\"");
}

static void put_number(struct buffer *b, const char *key, long long value)
{
	char text[64];

	snprintf(text, sizeof(text), ",\"%s\":%lld", key, value);
	put_text(b, text);
}

static void put_entry(struct buffer *b, const struct fa_audit *audit,
                      const struct entry *e)
{
	put_text(b, b->len > 1 ? ",{" : "{");
	put_text(b, "\"action\":\"");
	put_text(b, e->action);
	put_text(b, "\"");
	put_string(b, "reason", e->reason);
	put_string(b, "actor", e->actor);
	put_string(b, "target", e->target);
	put_string(b, "address", e->address);
	put_string(b, "client_id", e->client_id);
	put_string(b, "broker", audit->broker);
	put_number(b, "count", (long long)e->count);
	put_number(b, "first", (long long)e->first_s);
	put_number(b, "last", (long long)e->last_s);
	put_text(b, "}");
}

char *fa_audit_take_batch(struct fa_audit *audit)
{
	struct buffer b = {0};

	if (audit->count == 0 && audit->lost == 0)
		return NULL;
	put_text(&b, "[");
	for (size_t i = 0; i < audit->count; i++)
		put_entry(&b, audit, &audit->entries[i]);
	if (audit->lost > 0) {
		struct entry lost = {.count = audit->lost,
		                     .first_s = audit->lost_first_s,
		                     .last_s = audit->lost_last_s};

		copy_field(lost.action, sizeof(lost.action), "lost");
		copy_field(lost.reason, sizeof(lost.reason), "queue_full");
		put_entry(&b, audit, &lost);
	}
	put_text(&b, "]");
	if (b.failed) {
		free(b.data);
		return NULL;
	}
	audit->count = 0;
	audit->lost = 0;
	memset(audit->index, 0,
	       (audit->index_mask + 1) * sizeof(*audit->index));
	return b.data;
}

size_t fa_audit_pending(const struct fa_audit *audit)
{
	return audit->count + (audit->lost > 0) + (audit->in_flight != NULL);
}

void fa_audit_get_stats(const struct fa_audit *audit,
                        struct fa_audit_stats *out)
{
	*out = audit->stats;
	out->failures = audit->side.failures;
}

/* ---- sending ---- */

static bool has_work(const struct fa_audit *audit)
{
	return audit->in_flight != NULL || audit->count > 0 || audit->lost > 0;
}

/* Adds the rows that broker_audit() reported as written. */
static void take_rows(void *ctx, const PGresult *res)
{
	struct fa_audit *audit = ctx;

	if (PQntuples(res) == 1)
		audit->stats.rows += strtoull(PQgetvalue(res, 0, 0), NULL, 10);
}

/* Forgets the batch once the insert wrote it. A refused batch is kept
 * for another attempt, and given up after SEND_ATTEMPTS refusals so that
 * one bad batch cannot hold up the batches after it. */
static void finish_send(struct fa_audit *audit)
{
	if (!audit->side.query_failed) {
		audit->stats.batches++;
		free(audit->in_flight);
		audit->in_flight = NULL;
		audit->attempts = 0;
		return;
	}
	if (++audit->attempts < SEND_ATTEMPTS) {
		audit_log(audit, "broker_audit() failed (%s); trying again",
		          audit->side.error);
		return;
	}
	audit_log(audit,
	          "broker_audit() failed %d times (%s); giving up a batch of "
	          "%zu bytes",
	          audit->attempts, audit->side.error, strlen(audit->in_flight));
	free(audit->in_flight);
	audit->in_flight = NULL;
	audit->attempts = 0;
}

static void maybe_send(struct fa_audit *audit, int64_t now_ms)
{
	const char *params[1];

	if (audit->in_flight == NULL) {
		if (now_ms < audit->next_batch_ms)
			return;
		audit->in_flight = fa_audit_take_batch(audit);
		if (audit->in_flight == NULL)
			return;
	}
	audit->next_batch_ms = now_ms + audit->interval_ms;
	params[0] = audit->in_flight;
	fa_side_send(&audit->side, now_ms, insert_sql, 1, params);
}

void fa_audit_tick(struct fa_audit *audit, int64_t now_ms)
{
	if (audit == NULL)
		return;
	if (fa_side_tick(&audit->side, now_ms, has_work(audit), take_rows,
	                 audit) == FA_SIDE_DONE)
		finish_send(audit);
	if (audit->side.phase == FA_SIDE_IDLE && has_work(audit))
		maybe_send(audit, now_ms);
}

/* Sends what is queued before the plugin unloads, giving up after
 * timeout_ms or after the first failed connection. */
static void final_flush(struct fa_audit *audit, int64_t timeout_ms)
{
	int64_t deadline = fa_side_now_ms() + timeout_ms;

	audit->next_batch_ms = 0;
	audit->side.next_attempt_ms = 0;
	while (has_work(audit) || audit->side.phase == FA_SIDE_BUSY ||
	       audit->side.phase == FA_SIDE_SETUP ||
	       audit->side.phase == FA_SIDE_CONNECTING) {
		int64_t now = fa_side_now_ms();

		if (now >= deadline || (audit->side.phase == FA_SIDE_DOWN &&
		                        now < audit->side.next_attempt_ms)) {
			audit_log(audit,
			          "%zu denial entries were not written to the "
			          "audit trail before the plugin stopped",
			          fa_audit_pending(audit));
			return;
		}
		fa_audit_tick(audit, now);
		poll(NULL, 0, 5);
	}
}

void fa_audit_free(struct fa_audit *audit, int64_t timeout_ms)
{
	if (audit == NULL)
		return;
	if (timeout_ms > 0 && audit->index != NULL)
		final_flush(audit, timeout_ms);
	fa_side_close(&audit->side);
	free(audit->in_flight);
	free(audit->entries);
	free(audit->index);
	free(audit->conninfo);
	free(audit->broker);
	free(audit);
}
