/*
 * Counters and histograms of fleetauthd and the GET /metrics handler.
 *
 * Every value is an atomic in static storage, indexed by a row (one route
 * and method, or an unmatched request by method) and a column (status code
 * or histogram bucket). Recording a request does a short search of the route
 * tables and a few relaxed atomic additions, with no lock and no
 * allocation. Only the /metrics handler allocates, for its response.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "metrics.h"

/* More routes than all modules define together; a route beyond this is
 * counted as unmatched, never dropped silently (see route_row). */
#define ROUTES_MAX 160

/* Methods of unmatched requests get one row each, the last is "other". */
static const char *const unmatched_methods[] = {
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other"};
#define UNMATCHED_ROWS                                                         \
	(sizeof(unmatched_methods) / sizeof(unmatched_methods[0]))
#define ROWS_MAX (ROUTES_MAX + UNMATCHED_ROWS)

/* Status codes that fleetauthd sends; anything else is counted under the
 * last column with status="other". */
static const int status_codes[] = {200, 201, 204, 400, 401, 403, 404,
                                   405, 409, 413, 415, 429, 500, 503};
#define STATUS_COLUMNS (sizeof(status_codes) / sizeof(status_codes[0]) + 1)

/* Upper bounds in seconds of the duration histogram buckets. */
static const double bucket_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5,   1.0,  2.5,   5.0,  10.0};
#define BUCKETS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))

static const char *const login_outcomes[FA_METRICS_LOGIN_OUTCOME_COUNT] = {
        "success",    "mfa_required", "bad_credentials",
        "mfa_failed", "locked",       "error"};
static const char *const refresh_outcomes[FA_METRICS_REFRESH_OUTCOME_COUNT] = {
        "success", "invalid", "reused", "error"};

/* The auth and device modules may be missing from a build. */
/* NOLINTBEGIN(readability-redundant-declaration): these add the weak
 * attribute to the declarations in service.h. */
extern const struct fa_route fa_auth_routes[] __attribute__((weak));
extern const struct fa_route fa_device_routes[] __attribute__((weak));
/* NOLINTEND(readability-redundant-declaration) */

static atomic_uint_fast64_t requests[ROWS_MAX][STATUS_COLUMNS];
/* Non-cumulative bucket counts; the last one is above every bound. The
 * exposition adds them up. */
static atomic_uint_fast64_t duration_buckets[ROWS_MAX][BUCKETS + 1];
static atomic_uint_fast64_t duration_sum_us[ROWS_MAX];
static atomic_uint_fast64_t logins[FA_METRICS_LOGIN_OUTCOME_COUNT];
static atomic_uint_fast64_t refreshes[FA_METRICS_REFRESH_OUTCOME_COUNT];
static atomic_uint_fast64_t refresh_reuses;
static atomic_uint_fast64_t lockouts;
static atomic_uint_fast64_t db_errors;

static void add(atomic_uint_fast64_t *counter, uint_fast64_t value)
{
	atomic_fetch_add_explicit(counter, value, memory_order_relaxed);
}

static uint_fast64_t get(atomic_uint_fast64_t *counter)
{
	return atomic_load_explicit(counter, memory_order_relaxed);
}

void fa_metrics_login(enum fa_metrics_login_outcome outcome)
{
	if ((unsigned)outcome < FA_METRICS_LOGIN_OUTCOME_COUNT)
		add(&logins[outcome], 1);
}

void fa_metrics_refresh(enum fa_metrics_refresh_outcome outcome)
{
	if ((unsigned)outcome < FA_METRICS_REFRESH_OUTCOME_COUNT)
		add(&refreshes[outcome], 1);
}

void fa_metrics_refresh_reuse(void)
{
	add(&refresh_reuses, 1);
}

void fa_metrics_lockout(void)
{
	add(&lockouts, 1);
}

void fa_metrics_db_error(void)
{
	add(&db_errors, 1);
}

/* Route tables in the order of routes.c; a missing module is NULL. */
static void route_tables(const struct fa_route *tables[3])
{
	tables[0] = fa_core_routes;
	tables[1] = fa_auth_routes;
	tables[2] = fa_device_routes;
}

/*
 * Returns the row of route: its position across all route tables. Pointers
 * are compared by address only, so a route outside every table (never
 * expected) or beyond ROUTES_MAX returns -1.
 */
static long route_row(const struct fa_route *route)
{
	const struct fa_route *tables[3];
	long row = 0;
	size_t i;

	route_tables(tables);
	for (i = 0; i < 3; i++) {
		const struct fa_route *entry;

		if (tables[i] == NULL)
			continue;
		for (entry = tables[i]; entry->method != NULL; entry++) {
			if (entry == route)
				return row < ROUTES_MAX ? row : -1;
			row++;
		}
	}
	return -1;
}

/* Row of a request that matched no route, by its method. */
static size_t unmatched_row(const char *method)
{
	size_t i;

	for (i = 0; i + 1 < UNMATCHED_ROWS; i++) {
		if (method != NULL && strcmp(method, unmatched_methods[i]) == 0)
			break;
	}
	return ROUTES_MAX + i;
}

static size_t status_column(int status)
{
	size_t i;

	for (i = 0; i + 1 < STATUS_COLUMNS; i++) {
		if (status_codes[i] == status)
			break;
	}
	return i;
}

void fa_metrics_request(const struct fa_route *route, const char *method,
                        int status, double seconds)
{
	long row = route != NULL ? route_row(route) : -1;
	size_t index = row >= 0 ? (size_t)row : unmatched_row(method);
	size_t bucket = 0;

	if (seconds < 0)
		seconds = 0;
	while (bucket < BUCKETS && seconds > bucket_bounds[bucket])
		bucket++;
	add(&requests[index][status_column(status)], 1);
	add(&duration_buckets[index][bucket], 1);
	add(&duration_sum_us[index], (uint_fast64_t)(seconds * 1e6 + 0.5));
}

/* Fills ip (16 bytes) from a numeric address; IPv4 and IPv4-mapped IPv6
 * addresses both become ::ffff:a.b.c.d. Returns false when not numeric. */
static bool parse_address(const char *text, unsigned char ip[16])
{
	unsigned char v4[4];

	if (inet_pton(AF_INET6, text, ip) == 1)
		return true;
	if (inet_pton(AF_INET, text, v4) != 1)
		return false;
	memset(ip, 0, 10);
	ip[10] = 0xff;
	ip[11] = 0xff;
	memcpy(ip + 12, v4, 4);
	return true;
}

bool fa_metrics_allowed(const char *allow_list, const char *address)
{
	unsigned char client[16];
	const char *p = allow_list;

	if (allow_list == NULL || address == NULL)
		return false;
	if (strcmp(allow_list, "any") == 0)
		return true;
	if (!parse_address(address, client))
		return false;
	while (*p != '\0') {
		size_t len = strcspn(p, ",");
		char entry[64];
		unsigned char allowed[16];

		while (len > 0 && *p == ' ') {
			p++;
			len--;
		}
		if (len > 0 && len < sizeof(entry)) {
			memcpy(entry, p, len);
			entry[len] = '\0';
			entry[strcspn(entry, " ")] = '\0';
			if (parse_address(entry, allowed) &&
			    memcmp(allowed, client, 16) == 0)
				return true;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return false;
}

/* Text of the exposition, grown as needed. failed is set once an
 * allocation failed; the handler then replies 500. */
struct text {
	char *data;
	size_t len;
	size_t size;
	bool failed;
};

static void append(struct text *t, const char *format, ...)
        __attribute__((format(printf, 2, 3)));

static void append(struct text *t, const char *format, ...)
{
	va_list args;
	int needed;

	if (t->failed)
		return;
	for (;;) {
		size_t room = t->size - t->len;

		va_start(args, format);
		needed = vsnprintf(t->data + t->len, room, format, args);
		va_end(args);
		if (needed < 0) {
			t->failed = true;
			return;
		}
		if ((size_t)needed < room) {
			t->len += (size_t)needed;
			return;
		}
		size_t size = t->size * 2 + (size_t)needed + 1;
		char *grown = realloc(t->data, size);

		if (grown == NULL) {
			t->failed = true;
			return;
		}
		t->data = grown;
		t->size = size;
	}
}

/* Route pattern and method of a row. Patterns contain only
 * [A-Za-z0-9_/{}.-], so they need no label escaping. */
static bool row_labels(size_t row, const char **route, const char **method)
{
	const struct fa_route *tables[3];
	size_t index = 0;
	size_t i;

	if (row >= ROUTES_MAX) {
		*route = "unmatched";
		*method = unmatched_methods[row - ROUTES_MAX];
		return true;
	}
	route_tables(tables);
	for (i = 0; i < 3; i++) {
		const struct fa_route *entry;

		if (tables[i] == NULL)
			continue;
		for (entry = tables[i]; entry->method != NULL; entry++) {
			if (index == row) {
				*route = entry->pattern;
				*method = entry->method;
				return true;
			}
			index++;
		}
	}
	return false;
}

static void write_requests(struct text *t)
{
	size_t row;
	size_t column;

	append(t, "# HELP fleetauthd_http_requests_total HTTP requests "
	          "answered, by route pattern, method and status.\n"
	          "# TYPE fleetauthd_http_requests_total counter\n");
	for (row = 0; row < ROWS_MAX; row++) {
		const char *route;
		const char *method;

		if (!row_labels(row, &route, &method))
			continue;
		for (column = 0; column < STATUS_COLUMNS; column++) {
			uint_fast64_t count = get(&requests[row][column]);
			char status[16];

			if (count == 0)
				continue;
			if (column + 1 < STATUS_COLUMNS)
				snprintf(status, sizeof(status), "%d",
				         status_codes[column]);
			else
				snprintf(status, sizeof(status), "other");
			append(t,
			       "fleetauthd_http_requests_total{route=\"%s\","
			       "method=\"%s\",status=\"%s\"} %llu\n",
			       route, method, status,
			       (unsigned long long)count);
		}
	}
}

/* Writes the histogram series of one row; rows without requests are left
 * out. */
static void write_duration_row(struct text *t, size_t row)
{
	uint_fast64_t counts[BUCKETS + 1];
	uint_fast64_t cumulative = 0;
	uint_fast64_t total = 0;
	const char *route;
	const char *method;
	size_t i;

	if (!row_labels(row, &route, &method))
		return;
	for (i = 0; i <= BUCKETS; i++) {
		counts[i] = get(&duration_buckets[row][i]);
		total += counts[i];
	}
	if (total == 0)
		return;
	for (i = 0; i < BUCKETS; i++) {
		cumulative += counts[i];
		append(t,
		       "fleetauthd_http_request_duration_seconds_bucket{"
		       "route=\"%s\",method=\"%s\",le=\"%g\"} %llu\n",
		       route, method, bucket_bounds[i],
		       (unsigned long long)cumulative);
	}
	append(t,
	       "fleetauthd_http_request_duration_seconds_bucket{route=\"%s\","
	       "method=\"%s\",le=\"+Inf\"} %llu\n",
	       route, method, (unsigned long long)total);
	append(t,
	       "fleetauthd_http_request_duration_seconds_sum{route=\"%s\","
	       "method=\"%s\"} %.6f\n",
	       route, method, (double)get(&duration_sum_us[row]) / 1e6);
	append(t,
	       "fleetauthd_http_request_duration_seconds_count{route=\"%s\","
	       "method=\"%s\"} %llu\n",
	       route, method, (unsigned long long)total);
}

static void write_durations(struct text *t)
{
	size_t row;

	append(t, "# HELP fleetauthd_http_request_duration_seconds Time from "
	          "the start of a request to its queued response.\n"
	          "# TYPE fleetauthd_http_request_duration_seconds "
	          "histogram\n");
	for (row = 0; row < ROWS_MAX; row++)
		write_duration_row(t, row);
}

/* Writes a counter family with one series per outcome; every outcome is
 * listed, also at zero, so that rates exist from the start. */
static void write_outcomes(struct text *t, const char *name, const char *help,
                           const char *const *labels,
                           atomic_uint_fast64_t *counters, size_t count)
{
	size_t i;

	append(t, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (i = 0; i < count; i++)
		append(t, "%s{outcome=\"%s\"} %llu\n", name, labels[i],
		       (unsigned long long)get(&counters[i]));
}

static void write_counter(struct text *t, const char *name, const char *help,
                          atomic_uint_fast64_t *counter)
{
	append(t, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help,
	       name, name, (unsigned long long)get(counter));
}

static void write_all(struct text *t)
{
	append(t,
	       "# HELP fleetauthd_build_info Version and expected schema "
	       "version of this fleetauthd binary.\n"
	       "# TYPE fleetauthd_build_info gauge\n"
	       "fleetauthd_build_info{version=\"%s\",schema=\"%d\"} 1\n",
	       FLEETAUTH_VERSION, FLEETAUTH_SCHEMA_VERSION);
	write_requests(t);
	write_durations(t);
	write_outcomes(t, "fleetauthd_logins_total",
	               "Login attempts (password and MFA steps) by outcome.",
	               login_outcomes, logins, FA_METRICS_LOGIN_OUTCOME_COUNT);
	write_outcomes(t, "fleetauthd_refreshes_total",
	               "Refresh-token exchanges by outcome.", refresh_outcomes,
	               refreshes, FA_METRICS_REFRESH_OUTCOME_COUNT);
	write_counter(t, "fleetauthd_refresh_reuse_detected_total",
	              "Rotated refresh tokens presented again; each revoked "
	              "its family.",
	              &refresh_reuses);
	write_counter(t, "fleetauthd_lockouts_total",
	              "Lockouts started after too many failed logins.",
	              &lockouts);
	write_counter(t, "fleetauthd_db_errors_total",
	              "Failed database statements and connection attempts.",
	              &db_errors);
}

/*
 * Replies the exposition text to clients whose address is listed in
 * metrics_allow and 403 to others. The counters are read one by one, so a
 * scrape during traffic may mix values from a few microseconds apart.
 */
void fa_metrics_serve(struct fa_request *req)
{
	struct text t = {NULL, 0, 0, false};

	/* The TCP peer, not the X-Forwarded-For client: a proxy in
	 * trusted_proxies must not open the metrics to everyone behind it. */
	if (!fa_metrics_allowed(req->svc->config.metrics_allow,
	                        req->peer_address)) {
		fa_reply_status(req, 403,
		                "the client address is not listed in the "
		                "metrics_allow option");
		return;
	}
	t.size = 16384;
	t.data = malloc(t.size);
	if (t.data == NULL) {
		fa_reply_status(req, 500, NULL);
		return;
	}
	write_all(&t);
	if (t.failed)
		fa_reply_status(req, 500, NULL);
	else
		fa_reply_bytes(req, 200,
		               "text/plain; version=0.0.4; "
		               "charset=utf-8",
		               t.data, t.len);
	free(t.data);
}
