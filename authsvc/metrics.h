/*
 * Prometheus metrics of fleetauthd, served by GET /metrics in the text
 * exposition format 0.0.4. Every counter is a C11 atomic in static storage,
 * so the recording functions below are thread-safe, never allocate and
 * never fail. They may be called from any thread at any time, also before
 * the HTTP server starts.
 */
#ifndef FA_METRICS_H
#define FA_METRICS_H

#include <stdbool.h>

struct fa_route;
struct fa_request;

/* Outcomes of a login attempt (password step or MFA step): the label value
 * of fleetauthd_logins_total{outcome}. */
enum fa_metrics_login_outcome {
	FA_METRICS_LOGIN_SUCCESS = 0,  /* tokens issued */
	FA_METRICS_LOGIN_MFA_REQUIRED, /* password accepted, MFA step pending */
	FA_METRICS_LOGIN_BAD_CREDENTIALS,
	FA_METRICS_LOGIN_MFA_FAILED, /* wrong or replayed TOTP code */
	FA_METRICS_LOGIN_LOCKED, /* rejected by an active lockout or throttle */
	FA_METRICS_LOGIN_ERROR,  /* database or internal error */
	FA_METRICS_LOGIN_OUTCOME_COUNT
};

/* Outcomes of POST /v1/auth/refresh: fleetauthd_refreshes_total{outcome}. */
enum fa_metrics_refresh_outcome {
	FA_METRICS_REFRESH_SUCCESS = 0,
	FA_METRICS_REFRESH_INVALID, /* unknown, expired or revoked token or
	                               family */
	FA_METRICS_REFRESH_REUSED,  /* a rotated token was presented again */
	FA_METRICS_REFRESH_ERROR,   /* database or internal error */
	FA_METRICS_REFRESH_OUTCOME_COUNT
};

/* Counts one login attempt. */
void fa_metrics_login(enum fa_metrics_login_outcome outcome);

/* Counts one refresh attempt. */
void fa_metrics_refresh(enum fa_metrics_refresh_outcome outcome);

/* Counts one detected reuse of a rotated refresh token (the family is
 * revoked), fleetauthd_refresh_reuse_detected_total. */
void fa_metrics_refresh_reuse(void);

/* Counts one lockout that starts (not each rejected attempt during it). */
void fa_metrics_lockout(void);

/* Counts one failed database statement or connection attempt. */
void fa_metrics_db_error(void);

/*
 * Counts one finished HTTP request. route is NULL when no route matched
 * (reported as route="unmatched"). seconds is the time from the first byte
 * of the request to the queued response.
 */
void fa_metrics_request(const struct fa_route *route, const char *method,
                        int status, double seconds);

/*
 * True when a client at the numeric address may read /metrics under the
 * metrics_allow option: a comma-separated list of numeric addresses, or
 * "any".
 */
bool fa_metrics_allowed(const char *allow_list, const char *address);

/* Handler of GET /metrics. */
void fa_metrics_serve(struct fa_request *req);

#endif
