/*
 * A non-blocking PostgreSQL connection for the plugin's side work (the
 * audit queue, access windows), apart from the change feed's, advanced
 * from the broker's tick. It connects when its owner wants it, runs an
 * optional setup statement once per connection, runs one query at a time,
 * and after a failure waits 1 s, doubling up to 30 s, before it connects
 * again.
 */
#ifndef FA_SIDE_H
#define FA_SIDE_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

enum fa_side_phase {
	FA_SIDE_DOWN = 0,
	FA_SIDE_CONNECTING,
	FA_SIDE_SETUP,
	FA_SIDE_IDLE,
	FA_SIDE_BUSY
};

/* Outcome of one fa_side_tick. */
enum fa_side_event {
	FA_SIDE_NOTHING = 0,
	FA_SIDE_READY, /* connected and idle: a query may be sent */
	FA_SIDE_DONE,  /* the query finished; see query_failed and error */
	FA_SIDE_LOST   /* the connection failed; a query in flight is lost */
};

struct fa_side {
	const char *conninfo;  /* not owned */
	const char *setup_sql; /* not owned; NULL for none */
	const char *what;      /* names the connection in log lines */
	void (*log)(const char *message);
	PGconn *conn;
	enum fa_side_phase phase;
	PostgresPollingStatusType poll;
	int64_t phase_started_ms;
	int64_t next_attempt_ms;
	int64_t backoff_ms;
	bool query_failed;
	char error[256];
	uint64_t failures; /* failed connections and queries */
};

void fa_side_init(struct fa_side *side, const char *conninfo,
                  const char *setup_sql, const char *what,
                  void (*log)(const char *message));
void fa_side_close(struct fa_side *side);

/* Returns CLOCK_MONOTONIC in milliseconds, the clock of every now_ms here. */
int64_t fa_side_now_ms(void);

/*
 * Advances the connection without waiting on the socket. When want is false
 * a connection that is down stays down. NOTE: PQconnectStart resolves a
 * host name synchronously, so conninfo should give host as an address (as
 * tools/stack does) or the first tick of each attempt can wait on DNS. Each
 * result of the query in flight is passed to take (when not NULL) before
 * FA_SIDE_DONE is returned. Times are CLOCK_MONOTONIC milliseconds.
 */
enum fa_side_event fa_side_tick(struct fa_side *side, int64_t now_ms, bool want,
                                void (*take)(void *ctx, const PGresult *res),
                                void *ctx);

/* Sends a query on an idle connection (text parameters). Returns false,
 * with the connection dropped, when it could not be sent. */
bool fa_side_send(struct fa_side *side, int64_t now_ms, const char *sql,
                  int count, const char *const *params);

/* Drops the connection after a failure the owner found, and schedules the
 * next attempt. */
void fa_side_fail(struct fa_side *side, int64_t now_ms, const char *why);

#endif
