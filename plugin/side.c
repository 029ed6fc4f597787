/*
 * The plugin's side connection; see side.h.
 */
#include "side.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define CONNECT_TIMEOUT_MS 10000
#define QUERY_TIMEOUT_MS 15000
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000

void fa_side_init(struct fa_side *side, const char *conninfo,
                  const char *setup_sql, const char *what,
                  void (*log)(const char *message))
{
	memset(side, 0, sizeof(*side));
	side->conninfo = conninfo ? conninfo : "";
	side->setup_sql = setup_sql;
	side->what = what;
	side->log = log;
	side->backoff_ms = BACKOFF_MIN_MS;
}

int64_t fa_side_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fa_side_close(struct fa_side *side)
{
	if (side->conn != NULL)
		PQfinish(side->conn);
	side->conn = NULL;
	side->phase = FA_SIDE_DOWN;
}

static void copy_error(char *out, size_t size, const char *message)
{
	size_t n;

	snprintf(out, size, "%s", message ? message : "unknown error");
	n = strlen(out);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
		out[--n] = '\0';
}

void fa_side_fail(struct fa_side *side, int64_t now_ms, const char *why)
{
	char message[512];

	copy_error(side->error, sizeof(side->error), why);
	side->failures++;
	if (side->log != NULL) {
		snprintf(message, sizeof(message),
		         "%s connection failed (%s); next attempt in %lld ms",
		         side->what, side->error, (long long)side->backoff_ms);
		side->log(message);
	}
	fa_side_close(side);
	side->next_attempt_ms = now_ms + side->backoff_ms;
	side->backoff_ms *= 2;
	if (side->backoff_ms > BACKOFF_MAX_MS)
		side->backoff_ms = BACKOFF_MAX_MS;
}

static void start_connect(struct fa_side *side, int64_t now_ms)
{
	side->conn = PQconnectStart(side->conninfo);
	if (side->conn == NULL) {
		side->next_attempt_ms = now_ms + side->backoff_ms;
		return;
	}
	if (PQstatus(side->conn) == CONNECTION_BAD) {
		fa_side_fail(side, now_ms, PQerrorMessage(side->conn));
		return;
	}
	side->phase = FA_SIDE_CONNECTING;
	side->phase_started_ms = now_ms;
	side->poll = PGRES_POLLING_WRITING;
}

static bool socket_ready(PGconn *conn, short events)
{
	struct pollfd pfd = {.fd = PQsocket(conn), .events = events};

	if (pfd.fd < 0)
		return true;
	return poll(&pfd, 1, 0) != 0;
}

/* Returns FA_SIDE_READY once connected (and set up), else nothing. */
static enum fa_side_event poll_connect(struct fa_side *side, int64_t now_ms)
{
	if (now_ms - side->phase_started_ms > CONNECT_TIMEOUT_MS) {
		fa_side_fail(side, now_ms, "connection attempt timed out");
		return FA_SIDE_LOST;
	}
	if (!socket_ready(side->conn, side->poll == PGRES_POLLING_READING
	                                      ? POLLIN
	                                      : POLLOUT))
		return FA_SIDE_NOTHING;
	side->poll = PQconnectPoll(side->conn);
	if (side->poll == PGRES_POLLING_FAILED) {
		fa_side_fail(side, now_ms, PQerrorMessage(side->conn));
		return FA_SIDE_LOST;
	}
	if (side->poll != PGRES_POLLING_OK)
		return FA_SIDE_NOTHING;
	if (PQsetnonblocking(side->conn, 1) != 0) {
		fa_side_fail(side, now_ms, PQerrorMessage(side->conn));
		return FA_SIDE_LOST;
	}
	if (side->setup_sql == NULL) {
		side->phase = FA_SIDE_IDLE;
		return FA_SIDE_READY;
	}
	if (!PQsendQuery(side->conn, side->setup_sql)) {
		fa_side_fail(side, now_ms, PQerrorMessage(side->conn));
		return FA_SIDE_LOST;
	}
	side->phase = FA_SIDE_SETUP;
	side->phase_started_ms = now_ms;
	side->query_failed = false;
	return FA_SIDE_NOTHING;
}

static void take_one(struct fa_side *side, PGresult *res,
                     void (*take)(void *ctx, const PGresult *res), void *ctx)
{
	ExecStatusType status = PQresultStatus(res);

	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		side->query_failed = true;
		copy_error(side->error, sizeof(side->error),
		           PQresultErrorMessage(res));
		return;
	}
	if (side->phase == FA_SIDE_BUSY && take != NULL)
		take(ctx, res);
}

static enum fa_side_event
poll_result(struct fa_side *side, int64_t now_ms,
            void (*take)(void *ctx, const PGresult *res), void *ctx)
{
	PGresult *res;

	if (now_ms - side->phase_started_ms > QUERY_TIMEOUT_MS) {
		fa_side_fail(side, now_ms, "no answer from the database");
		return FA_SIDE_LOST;
	}
	if (PQflush(side->conn) < 0 || !PQconsumeInput(side->conn)) {
		fa_side_fail(side, now_ms, PQerrorMessage(side->conn));
		return FA_SIDE_LOST;
	}
	while (!PQisBusy(side->conn)) {
		res = PQgetResult(side->conn);
		if (res == NULL)
			break;
		take_one(side, res, take, ctx);
		PQclear(res);
	}
	if (PQisBusy(side->conn))
		return FA_SIDE_NOTHING;
	if (side->phase == FA_SIDE_SETUP) {
		if (side->query_failed) {
			fa_side_fail(side, now_ms, side->error);
			return FA_SIDE_LOST;
		}
		side->phase = FA_SIDE_IDLE;
		return FA_SIDE_READY;
	}
	side->phase = FA_SIDE_IDLE;
	if (side->query_failed)
		side->failures++;
	else
		side->backoff_ms = BACKOFF_MIN_MS;
	return FA_SIDE_DONE;
}

enum fa_side_event fa_side_tick(struct fa_side *side, int64_t now_ms, bool want,
                                void (*take)(void *ctx, const PGresult *res),
                                void *ctx)
{
	switch (side->phase) {
	case FA_SIDE_DOWN:
		if (want && now_ms >= side->next_attempt_ms)
			start_connect(side, now_ms);
		return FA_SIDE_NOTHING;
	case FA_SIDE_CONNECTING:
		return poll_connect(side, now_ms);
	case FA_SIDE_SETUP:
	case FA_SIDE_BUSY:
		return poll_result(side, now_ms, take, ctx);
	case FA_SIDE_IDLE:
		if (PQstatus(side->conn) == CONNECTION_BAD) {
			fa_side_fail(side, now_ms, PQerrorMessage(side->conn));
			return FA_SIDE_LOST;
		}
		return FA_SIDE_READY;
	}
	return FA_SIDE_NOTHING;
}

bool fa_side_send(struct fa_side *side, int64_t now_ms, const char *sql,
                  int count, const char *const *params)
{
	if (side->phase != FA_SIDE_IDLE)
		return false;
	if (!PQsendQueryParams(side->conn, sql, count, NULL, params, NULL, NULL,
	                       0) ||
	    PQflush(side->conn) < 0) {
		fa_side_fail(side, now_ms, PQerrorMessage(side->conn));
		return false;
	}
	side->phase = FA_SIDE_BUSY;
	side->phase_started_ms = now_ms;
	side->query_failed = false;
	return true;
}
