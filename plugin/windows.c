/*
 * Access windows in the broker; see windows.h. The set of users outside
 * their window is a sorted array of ids, searched with bsearch. It is
 * rebuilt whole from each query result and is usually short.
 */
#include "windows.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "side.h"

#define MAX_PERIOD_MS 15000
/* Asked this long after a window opens or closes, so that PostgreSQL's
 * clock is past the boundary. */
#define BOUNDARY_MARGIN_MS 500

/*
 * One row: the seconds until the nearest window start or end of any
 * active user with a window (60 when there is none, capped at 15 s by the
 * caller), and the ids of those outside their window, separated by commas
 * (fa_id has no commas). A window whose end is before its start spans
 * midnight.
 */
static const char windows_sql[] =
        "WITH w AS (SELECT u.id, "
        " CASE WHEN u.window_start <= u.window_end"
        "  THEN lt.t >= u.window_start AND lt.t < u.window_end"
        "  ELSE lt.t >= u.window_start OR lt.t < u.window_end END AS inside,"
        " least(mod(86400 + mod(extract(epoch FROM u.window_start - lt.t)"
        "  ::int, 86400), 86400), mod(86400 + mod(extract(epoch FROM"
        "  u.window_end - lt.t)::int, 86400), 86400)) AS next_s"
        " FROM users u LEFT JOIN carriers c ON c.id = u.carrier_id"
        " CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE"
        "  coalesce(c.time_zone, 'UTC'))::time AS t) lt"
        " WHERE u.window_start IS NOT NULL AND u.status = 'active') "
        "SELECT coalesce((SELECT min(CASE WHEN next_s = 0 THEN 86400"
        " ELSE next_s END) FROM w), 60), "
        " coalesce((SELECT string_agg(id, ',' ORDER BY id) FROM w"
        " WHERE NOT inside), '')";

struct fa_windows {
	char *conninfo;
	struct fa_side side;
	void (*log)(const char *message);
	char **ids; /* sorted */
	size_t count;
	char *text; /* the last answer's ids, as received */
	int64_t next_query_ms;
	bool changed; /* set by take_answer for fa_windows_tick */
};

struct fa_windows *fa_windows_new(const char *conninfo,
                                  void (*log)(const char *message))
{
	struct fa_windows *windows = calloc(1, sizeof(*windows));

	if (windows == NULL)
		return NULL;
	windows->conninfo = strdup(conninfo ? conninfo : "");
	windows->text = strdup("");
	if (windows->conninfo == NULL || windows->text == NULL) {
		fa_windows_free(windows);
		return NULL;
	}
	windows->log = log;
	fa_side_init(&windows->side, windows->conninfo, NULL, "access window",
	             log);
	return windows;
}

static void free_ids(struct fa_windows *windows)
{
	for (size_t i = 0; i < windows->count; i++)
		free(windows->ids[i]);
	free(windows->ids);
	windows->ids = NULL;
	windows->count = 0;
}

void fa_windows_free(struct fa_windows *windows)
{
	if (windows == NULL)
		return;
	fa_side_close(&windows->side);
	free_ids(windows);
	free(windows->text);
	free(windows->conninfo);
	free(windows);
}

static int compare_ids(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Splits text at commas into a new sorted array; false when out of
 * memory (the old set is kept). */
static bool rebuild(struct fa_windows *windows, const char *text)
{
	size_t count = text[0] != '\0';
	char **ids;
	size_t n = 0;

	for (const char *p = text; *p; p++)
		count += *p == ',';
	ids = calloc(count ? count : 1, sizeof(*ids));
	if (ids == NULL)
		return false;
	for (const char *p = text; count > 0 && n < count;) {
		size_t len = strcspn(p, ",");

		ids[n] = strndup(p, len);
		if (ids[n] == NULL) {
			while (n > 0)
				free(ids[--n]);
			free(ids);
			return false;
		}
		n++;
		p += len + (p[len] == ',');
	}
	qsort(ids, n, sizeof(*ids), compare_ids);
	free_ids(windows);
	windows->ids = ids;
	windows->count = n;
	return true;
}

bool fa_windows_apply(struct fa_windows *windows, const char *ids,
                      long long next_s, int64_t now_ms)
{
	int64_t wait_ms = next_s * 1000 + BOUNDARY_MARGIN_MS;
	char *copy;
	char message[160];

	if (next_s < 0 || wait_ms > MAX_PERIOD_MS)
		wait_ms = MAX_PERIOD_MS;
	windows->next_query_ms = now_ms + wait_ms;
	if (strcmp(ids, windows->text) == 0)
		return false;
	copy = strdup(ids);
	if (copy == NULL || !rebuild(windows, ids)) {
		free(copy);
		return false;
	}
	free(windows->text);
	windows->text = copy;
	if (windows->log != NULL) {
		snprintf(message, sizeof(message),
		         "users outside their access window: %zu",
		         windows->count);
		windows->log(message);
	}
	return true;
}

struct answer {
	struct fa_windows *windows;
	int64_t now_ms;
};

static void take_answer(void *ctx, const PGresult *res)
{
	struct answer *answer = ctx;

	if (PQntuples(res) != 1 || PQnfields(res) != 2)
		return;
	if (fa_windows_apply(answer->windows, PQgetvalue(res, 0, 1),
	                     strtoll(PQgetvalue(res, 0, 0), NULL, 10),
	                     answer->now_ms))
		answer->windows->changed = true;
}

bool fa_windows_tick(struct fa_windows *windows, int64_t now_ms)
{
	struct answer answer = {windows, now_ms};
	enum fa_side_event event;
	bool due;

	if (windows == NULL)
		return false;
	windows->changed = false;
	due = now_ms >= windows->next_query_ms;
	event = fa_side_tick(&windows->side, now_ms, due, take_answer, &answer);
	if (event == FA_SIDE_DONE && windows->side.query_failed) {
		/* A refused query is retried after the usual back-off. */
		fa_side_fail(&windows->side, now_ms, windows->side.error);
	} else if (windows->side.phase == FA_SIDE_IDLE && due) {
		fa_side_send(&windows->side, now_ms, windows_sql, 0, NULL);
	}
	return windows->changed;
}

bool fa_windows_outside(const struct fa_windows *windows, const char *user_id)
{
	if (windows == NULL || windows->count == 0 || user_id == NULL)
		return false;
	return bsearch(&user_id, windows->ids, windows->count,
	               sizeof(*windows->ids), compare_ids) != NULL;
}

size_t fa_windows_outside_count(const struct fa_windows *windows)
{
	return windows != NULL ? windows->count : 0;
}

int64_t fa_windows_next_query_ms(const struct fa_windows *windows)
{
	return windows->next_query_ms;
}
